"""
Build the test fixture of dev/convert_hf_gpt2.py: a tiny random GPT-2 saved
exactly as Hugging Face saves one, its converted gpt3.h checkpoint, and the
logits the checkpoint must produce.

The script
  1. initialises a tiny GPT-2 (C 16, L 2, NH 2, maxT 32, V 67) with random
     float32 parameters under Hugging Face's names and shapes, and writes
        config.json             as GPT2Config writes it
        model.safetensors       float32, names without the "transformer."
                                prefix and with the h.N.attn.bias /
                                attn.masked_bias buffers, like the hub's gpt2
        model_f16.safetensors   the same model in float16, laid out as a
                                recent transformers saves GPT2LMHeadModel:
                                "transformer." prefix, lm_head.weight, no buffers
     (with a small safetensors writer of our own: no safetensors package needed);
  2. computes reference logits for one token sequence (B 1, T 20) in float64
     with a PyTorch GPT-2 written in Hugging Face's convention (Conv1D weights
     stored (in, out), y = x @ W + b);
  3. runs the converter on the folder, giving model.ckpt, and checks, with a
     second float64 GPT-2 in numpy that reads model.ckpt in gpt3.h's layout
     (weights (out, in), y = x @ W^T + b), that it gives the same logits to
     1e-12: the transposes and the tensor order are right;
  4. converts the float16 copy too and checks it (exact float16 values, logits
     close to the float32 reference);
  5. writes reference.bin, read by the C test: 8 int32 (magic "HFRF"
     0x46524648, version 1, T, V, 0, 0, 0, 0), int32 tokens[T], then
     float32 logits[T * V], row-major (t, v);
  6. runs the converter's self-checks in a temporary folder: broken inputs
     (missing tensor, wrong shape, unsupported dtype, truncated file, a file
     that is not safetensors, ...) must make it exit non-zero with a clear
     message and leave an existing output file alone; bfloat16 input and an
     untied lm_head must convert (the latter with a warning).

The C test loads fixtures/hf_tiny/model.ckpt with gpt3_load, runs the tokens
of reference.bin through gpt3_forward and compares its logits with the ones
stored there. Everything is seeded: running the script again writes the same
bytes.

Usage (from the repo root):  /usr/bin/python3 dev/make_hf_fixture.py [outdir]
                             (default fixtures/hf_tiny)
"""
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
CONVERTER = os.path.join(HERE, "convert_hf_gpt2.py")

N_EMBD, N_LAYER, N_HEAD, N_POSITIONS, VOCAB_SIZE = 16, 2, 2, 32, 67   # V odd on purpose
T = 20                                   # length of the reference token sequence
SEED = 20240607
CKPT_MAGIC, REF_MAGIC = 0x33545047, 0x46524648   # "GPT3", "HFRF" as little-endian bytes
LN_EPS = 1e-5

# How close the float64 GPT-2s must agree, and the float16 model to the float32 one
# (float16 keeps 11 significant bits: relative rounding error up to 2^-11 per weight).
EXACT_TOL = 1e-12
F16_TOL = 1e-2


# ---------------------------------------------------------------------------
# The tiny GPT-2, in Hugging Face's names and shapes
# ---------------------------------------------------------------------------

def hf_config():
    """config.json as transformers' GPT2Config.to_json_file writes it (sorted keys)."""
    return {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "bos_token_id": VOCAB_SIZE - 1,
        "embd_pdrop": 0.1,
        "eos_token_id": VOCAB_SIZE - 1,
        "initializer_range": 0.02,
        "layer_norm_epsilon": LN_EPS,
        "model_type": "gpt2",
        "n_ctx": N_POSITIONS,
        "n_embd": N_EMBD,
        "n_head": N_HEAD,
        "n_inner": None,
        "n_layer": N_LAYER,
        "n_positions": N_POSITIONS,
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.1,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.1,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "torch_dtype": "float32",
        "transformers_version": "4.40.0",
        "use_cache": True,
        "vocab_size": VOCAB_SIZE,
    }


def make_params(gen):
    """Random float32 parameters, {Hugging Face name: array}, in state_dict order.
    Not GPT-2's initialisation: larger, so every activation is non-trivial.
    Weights N(0, 0.2), biases N(0, 0.1), LayerNorm scales 1 + N(0, 0.1)."""
    C = N_EMBD

    def randn(*shape, mean=0.0, std):
        return (mean + std * torch.randn(shape, generator=gen, dtype=torch.float32)).numpy()

    p = {"wte.weight": randn(VOCAB_SIZE, C, std=0.2),
         "wpe.weight": randn(N_POSITIONS, C, std=0.2)}
    for l in range(N_LAYER):
        h = f"h.{l}."
        p[h + "ln_1.weight"] = randn(C, mean=1.0, std=0.1)
        p[h + "ln_1.bias"] = randn(C, std=0.1)
        # the causal-mask buffers older transformers versions saved with the weights
        p[h + "attn.bias"] = np.tril(np.ones((N_POSITIONS, N_POSITIONS), np.float32))[None, None]
        p[h + "attn.masked_bias"] = np.array(-1e4, np.float32)          # shape ()
        # Conv1D weights are (in_features, out_features)
        p[h + "attn.c_attn.weight"] = randn(C, 3 * C, std=0.2)
        p[h + "attn.c_attn.bias"] = randn(3 * C, std=0.1)
        p[h + "attn.c_proj.weight"] = randn(C, C, std=0.2)
        p[h + "attn.c_proj.bias"] = randn(C, std=0.1)
        p[h + "ln_2.weight"] = randn(C, mean=1.0, std=0.1)
        p[h + "ln_2.bias"] = randn(C, std=0.1)
        p[h + "mlp.c_fc.weight"] = randn(C, 4 * C, std=0.2)
        p[h + "mlp.c_fc.bias"] = randn(4 * C, std=0.1)
        p[h + "mlp.c_proj.weight"] = randn(4 * C, C, std=0.2)
        p[h + "mlp.c_proj.bias"] = randn(C, std=0.1)
    p["ln_f.weight"] = randn(C, mean=1.0, std=0.1)
    p["ln_f.bias"] = randn(C, std=0.1)
    return p


def is_buffer(name):
    return name.endswith((".attn.bias", ".attn.masked_bias"))


# ---------------------------------------------------------------------------
# A minimal safetensors writer (the format is described in convert_hf_gpt2.py)
# ---------------------------------------------------------------------------

def to_bf16_bits(a):
    """float32 -> bfloat16 bits (uint16), rounding to nearest even like torch."""
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")


def from_bf16_bits(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


# safetensors dtype name -> how to turn a float32 array into its stored bytes
ENCODERS = {
    "F64": lambda a: a.astype("<f8"),
    "F32": lambda a: a.astype("<f4"),
    "F16": lambda a: a.astype("<f2"),
    "BF16": to_bf16_bits,
    "BOOL": lambda a: a.astype(np.bool_),
}


def write_safetensors(path, tensors, dtype="F32", dtypes=None):
    """Write {name: float32 array} as a .safetensors file, every tensor in
    `dtype` except those given their own in `dtypes` {name: dtype}."""
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, a in tensors.items():
        dt = (dtypes or {}).get(name, dtype)
        data = np.ascontiguousarray(ENCODERS[dt](a)).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)   # pad, as safetensors does, to 8 bytes
    with open(path, "wb") as f:
        f.write(len(header_bytes).to_bytes(8, "little"))
        f.write(header_bytes)
        for data in chunks:
            f.write(data)


def write_config(path, config):
    with open(path, "w") as f:
        f.write(json.dumps(config, indent=2, sort_keys=True) + "\n")


# ---------------------------------------------------------------------------
# GPT-2 in Hugging Face's convention (PyTorch, float64)
# ---------------------------------------------------------------------------

def hf_forward(params, tokens):
    """Logits (T, V) of one sequence, from {HF name: float32 array}, in float64."""
    p = {name: torch.from_numpy(a).double() for name, a in params.items()}
    C, NH = N_EMBD, N_HEAD
    hs = C // NH
    T_ = len(tokens)

    def conv1d(x, prefix):                      # HF's Conv1D: W is (in, out)
        return x @ p[prefix + ".weight"] + p[prefix + ".bias"]

    def layer_norm(x, prefix):
        mean = x.mean(-1, keepdim=True)
        var = ((x - mean) ** 2).mean(-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + LN_EPS) * p[prefix + ".weight"] + p[prefix + ".bias"]

    def gelu_new(x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))

    causal = torch.tril(torch.ones(T_, T_, dtype=torch.bool))
    x = p["wte.weight"][tokens] + p["wpe.weight"][:T_]              # (T, C)
    for l in range(N_LAYER):
        h = f"h.{l}."
        qkv = conv1d(layer_norm(x, h + "ln_1"), h + "attn.c_attn")  # (T, 3C)
        q, k, v = qkv.split(C, dim=-1)                              # c_attn's columns: q, k, v
        q, k, v = (z.view(T_, NH, hs).transpose(0, 1) for z in (q, k, v))   # (NH, T, hs)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hs)          # (NH, T, T)
        att = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
        y = (att @ v).transpose(0, 1).reshape(T_, C)                # heads side by side
        x = x + conv1d(y, h + "attn.c_proj")
        m = gelu_new(conv1d(layer_norm(x, h + "ln_2"), h + "mlp.c_fc"))
        x = x + conv1d(m, h + "mlp.c_proj")
    x = layer_norm(x, "ln_f")
    return (x @ p["wte.weight"].T).numpy()                          # lm_head tied to wte


# ---------------------------------------------------------------------------
# GPT-2 in gpt3.h's layout (numpy, float64), reading the converted checkpoint
# ---------------------------------------------------------------------------

def read_ckpt(path):
    """(config dict, {our tensor name: float32 array}) of a gpt3.h checkpoint."""
    header = np.fromfile(path, dtype="<i4", count=256)
    assert header[0] == CKPT_MAGIC and header[1] == 1, f"{path}: bad magic/version"
    maxT, V, L, NH, C, W = (int(v) for v in header[2:8])
    assert W == 0 and not header[8:].any()
    shapes = [("wte", (V, C)), ("wpe", (maxT, C)), ("ln1w", (L, C)), ("ln1b", (L, C)),
              ("qkvw", (L, 3 * C, C)), ("qkvb", (L, 3 * C)),
              ("attprojw", (L, C, C)), ("attprojb", (L, C)), ("ln2w", (L, C)), ("ln2b", (L, C)),
              ("fcw", (L, 4 * C, C)), ("fcb", (L, 4 * C)),
              ("fcprojw", (L, C, 4 * C)), ("fcprojb", (L, C)), ("lnfw", (C,)), ("lnfb", (C,))]
    data = np.fromfile(path, dtype="<f4", offset=4 * 256)
    w, at = {}, 0
    for name, shape in shapes:
        n = math.prod(shape)
        w[name] = data[at:at + n].reshape(shape)
        at += n
    assert at == data.size, f"{path}: {data.size - at} floats more than the header promises"
    return dict(max_seq_len=maxT, vocab_size=V, num_layers=L, num_heads=NH, channels=C), w


def our_forward(cfg, w, tokens):
    """Logits (T, V) from gpt3.h's tensors, in float64: y = x W^T + b (nn.Linear)."""
    w = {name: a.astype(np.float64) for name, a in w.items()}
    C, NH, L = cfg["channels"], cfg["num_heads"], cfg["num_layers"]
    hs = C // NH
    T_ = len(tokens)

    def linear(x, W, b):
        return x @ W.T + b

    def layer_norm(x, g, b):
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + LN_EPS) * g + b

    def gelu(x):
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))

    future = np.triu(np.ones((T_, T_), bool), k=1)                  # s > t: masked
    x = w["wte"][tokens] + w["wpe"][:T_]
    for l in range(L):
        qkv = linear(layer_norm(x, w["ln1w"][l], w["ln1b"][l]), w["qkvw"][l], w["qkvb"][l])
        out = np.empty((T_, C))
        for head in range(NH):                                      # one head at a time
            cols = slice(head * hs, (head + 1) * hs)
            q, k, v = qkv[:, cols], qkv[:, C:][:, cols], qkv[:, 2 * C:][:, cols]
            scores = np.where(future, -np.inf, q @ k.T / math.sqrt(hs))
            att = np.exp(scores - scores.max(-1, keepdims=True))
            out[:, cols] = (att / att.sum(-1, keepdims=True)) @ v
        x = x + linear(out, w["attprojw"][l], w["attprojb"][l])
        m = gelu(linear(layer_norm(x, w["ln2w"][l], w["ln2b"][l]), w["fcw"][l], w["fcb"][l]))
        x = x + linear(m, w["fcprojw"][l], w["fcprojb"][l])
    x = layer_norm(x, w["lnfw"], w["lnfb"])
    return x @ w["wte"].T


def expected_ckpt_tensors(params):
    """What the converter must write, built independently from the HF tensors:
    stack the layers, transpose the Conv1D weights."""
    def stack(suffix, transpose=False):
        return np.stack([params[f"h.{l}.{suffix}"].T if transpose else params[f"h.{l}.{suffix}"]
                         for l in range(N_LAYER)])
    return {"wte": params["wte.weight"], "wpe": params["wpe.weight"],
            "ln1w": stack("ln_1.weight"), "ln1b": stack("ln_1.bias"),
            "qkvw": stack("attn.c_attn.weight", True), "qkvb": stack("attn.c_attn.bias"),
            "attprojw": stack("attn.c_proj.weight", True), "attprojb": stack("attn.c_proj.bias"),
            "ln2w": stack("ln_2.weight"), "ln2b": stack("ln_2.bias"),
            "fcw": stack("mlp.c_fc.weight", True), "fcb": stack("mlp.c_fc.bias"),
            "fcprojw": stack("mlp.c_proj.weight", True), "fcprojb": stack("mlp.c_proj.bias"),
            "lnfw": params["ln_f.weight"], "lnfb": params["ln_f.bias"]}


def assert_same_tensors(got, want, what):
    for name in want:
        assert np.array_equal(got[name], want[name]), f"{what}: tensor {name} differs"


# ---------------------------------------------------------------------------
# Running the converter
# ---------------------------------------------------------------------------

def run_converter(hf_dir, out_path):
    """Run convert_hf_gpt2.py as a user would; returns (exit status, stdout, stderr)."""
    r = subprocess.run([sys.executable, CONVERTER, hf_dir, out_path],
                       capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr


def convert_or_die(hf_dir, out_path):
    rc, out, err = run_converter(hf_dir, out_path)
    if rc != 0:
        sys.exit(f"converter failed on {hf_dir}:\n{out}{err}")
    return out, err


def self_checks(params, work):
    """Broken inputs must fail clearly and leave the output alone; odd but valid
    inputs must convert. Returns the lines of a report."""
    report = []
    weights = {n: a for n, a in params.items() if not is_buffer(n)}

    def make_dir(name, tensors, dtypes=None, config=None):
        d = os.path.join(work, name)
        os.makedirs(d)
        write_config(os.path.join(d, "config.json"), config or hf_config())
        if tensors is not None:
            write_safetensors(os.path.join(d, "model.safetensors"), tensors, dtypes=dtypes)
        return d

    def expect_failure(label, d, message):
        out_path = os.path.join(d, "out.ckpt")
        with open(out_path, "wb") as f:
            f.write(b"previous output")
        rc, _, err = run_converter(d, out_path)
        assert rc != 0, f"self-check '{label}': the converter exited 0"
        assert message in err, f"self-check '{label}': expected {message!r} in:\n{err}"
        with open(out_path, "rb") as f:
            assert f.read() == b"previous output", f"self-check '{label}': output changed"
        assert not glob.glob(os.path.join(d, "*.tmp")), f"self-check '{label}': temp file left"
        report.append(f"  {label:26s} exit {rc}: {err.strip().splitlines()[-1]}")

    # a required tensor is missing
    d = make_dir("missing", {n: a for n, a in weights.items() if n != "h.1.mlp.c_fc.bias"})
    expect_failure("missing tensor", d, "missing tensor h.1.mlp.c_fc.bias")

    # c_attn stored (out, in), as if someone had already transposed it
    bad = dict(weights)
    bad["h.0.attn.c_attn.weight"] = bad["h.0.attn.c_attn.weight"].T
    d = make_dir("shape", bad)
    expect_failure("wrong shape", d, "h.0.attn.c_attn.weight has shape [48, 16], expected [16, 48]")

    # float64 is not a dtype GPT-2 files use
    d = make_dir("dtype", weights, dtypes={"h.0.ln_1.weight": "F64"})
    expect_failure("unsupported dtype", d, "unsupported dtype F64")

    # the download stopped part way
    d = make_dir("truncated", weights)
    path = os.path.join(d, "model.safetensors")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) * 2 // 3)
    expect_failure("truncated file", d, "truncated")

    # a PyTorch pytorch_model.bin (a zip archive) saved under the safetensors name
    d = make_dir("pickle", None)
    torch.save({n: torch.from_numpy(a) for n, a in weights.items()},
               os.path.join(d, "model.safetensors"))
    expect_failure("not safetensors (pickle)", d, "not a safetensors file")

    # an HTML error page saved by a failed download
    d = make_dir("html", None)
    with open(os.path.join(d, "model.safetensors"), "w") as f:
        f.write("<!DOCTYPE html><html><body>404 Not Found</body></html>\n")
    expect_failure("not safetensors (html)", d, "not a safetensors file")

    # no model.safetensors at all
    d = make_dir("nofile", None)
    expect_failure("missing model.safetensors", d, "no such file")

    # a config gpt3.h cannot run
    d = make_dir("relu", weights, config=dict(hf_config(), activation_function="relu"))
    expect_failure("unsupported activation", d, "activation_function 'relu' is not supported")

    # bfloat16 converts exactly: each value is the float32 with its low 16 bits zeroed
    d = make_dir("bf16", weights, dtypes={n: "BF16" for n in weights})
    convert_or_die(d, os.path.join(d, "out.ckpt"))
    _, got = read_ckpt(os.path.join(d, "out.ckpt"))
    want = expected_ckpt_tensors({n: from_bf16_bits(to_bf16_bits(a)) for n, a in params.items()})
    assert_same_tensors(got, want, "bf16")
    report.append(f"  {'bfloat16 input':26s} exit 0: every value equals the bf16-rounded weight")

    # an lm_head that is not a copy of wte converts, with a warning
    untied = dict(weights, **{"lm_head.weight": weights["wte.weight"] + 1})
    d = make_dir("untied", untied)
    _, err = convert_or_die(d, os.path.join(d, "out.ckpt"))
    assert "lm_head.weight differs from wte.weight" in err, err
    report.append(f"  {'untied lm_head':26s} exit 0: {err.strip().splitlines()[-1]}")
    return report


# ---------------------------------------------------------------------------

def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else "fixtures/hf_tiny"
    os.makedirs(outdir, exist_ok=True)
    gen = torch.Generator().manual_seed(SEED)
    params = make_params(gen)
    tokens = torch.randint(0, VOCAB_SIZE, (T,), generator=gen).numpy()

    # 1. the Hugging Face files
    write_config(os.path.join(outdir, "config.json"), hf_config())
    write_safetensors(os.path.join(outdir, "model.safetensors"), params)
    f16 = {"transformer." + n: a for n, a in params.items() if not is_buffer(n)}
    f16["lm_head.weight"] = params["wte.weight"]
    write_safetensors(os.path.join(outdir, "model_f16.safetensors"), f16, dtype="F16")

    # 2. the reference, in Hugging Face's convention
    ref = hf_forward(params, tokens)

    # 3. convert, and run the converted checkpoint in our layout
    ckpt_path = os.path.join(outdir, "model.ckpt")
    out, _ = convert_or_die(outdir, ckpt_path)
    print(out, end="")
    cfg, w = read_ckpt(ckpt_path)
    assert cfg == dict(max_seq_len=N_POSITIONS, vocab_size=VOCAB_SIZE, num_layers=N_LAYER,
                       num_heads=N_HEAD, channels=N_EMBD)
    assert_same_tensors(w, expected_ckpt_tensors(params), "model.ckpt")
    ours = our_forward(cfg, w, tokens)
    diff = np.abs(ours - ref).max()
    print(f"logits: max |logit| {np.abs(ref).max():.4f}, std {ref.std():.4f}")
    print(f"HF-convention (torch) vs gpt3.h-layout (numpy) float64 forward: "
          f"max |diff| {diff:.3e}  (tolerance {EXACT_TOL:g})")
    assert diff < EXACT_TOL, "the converted checkpoint does not reproduce the HF logits"

    # 4. the float16 copy: exact float16 values, logits close to float32's
    with tempfile.TemporaryDirectory() as work:
        shutil.copy(os.path.join(outdir, "config.json"), work)
        shutil.copy(os.path.join(outdir, "model_f16.safetensors"),
                    os.path.join(work, "model.safetensors"))
        convert_or_die(work, os.path.join(work, "model.ckpt"))
        cfg16, w16 = read_ckpt(os.path.join(work, "model.ckpt"))
    params16 = {n: a.astype(np.float16).astype(np.float32) for n, a in params.items()}
    assert_same_tensors(w16, expected_ckpt_tensors(params16), "F16 model.ckpt")
    ours16 = our_forward(cfg16, w16, tokens)
    exact16 = np.abs(ours16 - hf_forward(params16, tokens)).max()
    diff16 = np.abs(ours16 - ref).max()
    print(f"F16 copy: parameters equal the float16-rounded weights; its logits vs the "
          f"HF forward of those weights: max |diff| {exact16:.3e}; vs the float32 "
          f"reference: max |diff| {diff16:.3e}  (tolerance {F16_TOL:g})")
    assert exact16 < EXACT_TOL and diff16 < F16_TOL, "the F16 conversion is wrong"

    # 5. reference.bin for the C test
    ref_path = os.path.join(outdir, "reference.bin")
    with open(ref_path, "wb") as f:
        f.write(np.array([REF_MAGIC, 1, T, VOCAB_SIZE, 0, 0, 0, 0], "<i4").tobytes())
        f.write(tokens.astype("<i4").tobytes())
        f.write(ref.astype("<f4").tobytes())
    assert os.path.getsize(ref_path) == 4 * (8 + T + T * VOCAB_SIZE)

    # 6. the converter's handling of bad and unusual inputs
    with tempfile.TemporaryDirectory() as work:
        report = self_checks(params, work)
    print("converter self-checks passed:")
    print("\n".join(report))

    print("wrote:")
    for name in ("config.json", "model.safetensors", "model_f16.safetensors",
                 "model.ckpt", "reference.bin"):
        path = os.path.join(outdir, name)
        print(f"  {path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
