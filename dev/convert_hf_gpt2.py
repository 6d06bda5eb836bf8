"""
Convert a Hugging Face GPT-2 checkpoint (config.json + model.safetensors) into
a gpt3.h checkpoint.

This script is the reference: `./demo convert HF_DIR OUT.ckpt` does the same
in C, without Python, and test_cli.sh checks that it writes the same bytes as
this script on the fixtures of dev/make_hf_variants.py.

GPT-2 is GPT-3 without the banded attention layers (local_window 0), so any
GPT-2 size works: gpt2 (124M), gpt2-medium (355M), gpt2-large (774M),
gpt2-xl (1.5B), or a fine-tune of one of them.

Usage (from the repo root):

    /usr/bin/python3 dev/convert_hf_gpt2.py HF_DIR OUT.ckpt

HF_DIR is a folder with the two files the Hugging Face hub serves for a model:
config.json and model.safetensors (or a sharded model-0000N-of-0000M.safetensors
set with its model.safetensors.index.json). Only numpy is needed: the
safetensors format is simple enough to read directly (see SafetensorsFile).

Running the real GPT-2 (124M) weights:

    mkdir -p gpt2
    curl -L -o gpt2/config.json       https://huggingface.co/gpt2/resolve/main/config.json
    curl -L -o gpt2/model.safetensors https://huggingface.co/gpt2/resolve/main/model.safetensors
    #   (or: wget -P gpt2 https://huggingface.co/gpt2/resolve/main/config.json
    #        wget -P gpt2 https://huggingface.co/gpt2/resolve/main/model.safetensors)
    #   The larger sizes are the same URLs with gpt2-medium, gpt2-large or
    #   gpt2-xl in place of gpt2 (the hub also names them openai-community/gpt2...).
    /usr/bin/python3 dev/convert_hf_gpt2.py gpt2 gpt2.ckpt
    ./demo generate --model gpt2.ckpt --encoder fixtures/gpt2/encoder.json \\
        --bpe fixtures/gpt2/vocab.bpe --prompt "Hello, my name is"

(the demo's `generate` command and its GPT-2 tokenizer files are work in
progress; the checkpoint itself loads with gpt3_load today.)

Output sizes (float32): gpt2 124,439,808 parameters, 498 MB; gpt2-medium 1.4 GB;
gpt2-large 3.1 GB; gpt2-xl 6.2 GB (about 20 s). Tensors are read and written
one at a time, so the converter needs little more memory than twice the largest
single tensor (the token embedding: 320 MB for gpt2-xl; about 0.5 GB in all).

What the conversion does. Hugging Face's GPT-2 computes its linear layers with
"Conv1D" modules whose weight is stored (in_features, out_features) and applied
as y = x @ W + b. gpt3.h stores weights (out_features, in_features) and applies
y = x @ W^T + b, like torch.nn.Linear. So the four weight matrices of every
block (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj) are transposed; all
other tensors are copied as they are. c_attn's output columns are q, k, v in
that order, which is also the order of the rows of our qkvw, so no reordering
is needed. The output head (lm_head) is tied to the token embedding wte in
GPT-2, and gpt3.h does the same, so lm_head.weight is not stored.

The gpt3.h checkpoint format: 256 little-endian int32 (magic "GPT3"
0x33545047, version 1, max_seq_len, vocab_size, num_layers, num_heads,
channels, local_window, then zeros), then every parameter as little-endian
float32, in this order (L layers, C channels, V vocab, maxT positions):
    wte (V,C)  wpe (maxT,C)  ln1w (L,C)  ln1b (L,C)  qkvw (L,3C,C)  qkvb (L,3C)
    attprojw (L,C,C)  attprojb (L,C)  ln2w (L,C)  ln2b (L,C)  fcw (L,4C,C)
    fcb (L,4C)  fcprojw (L,C,4C)  fcprojb (L,C)  lnfw (C)  lnfb (C)

Errors (a missing file or tensor, a wrong shape, an unsupported dtype, a file
that is not safetensors or is truncated, a config gpt3.h cannot run) are
reported in one line on stderr and the converter exits with status 1, leaving
any previous OUT.ckpt untouched: the output is written to a temporary file and
renamed into place only when complete.
"""
import argparse
import json
import math
import os
import sys

import numpy as np

CKPT_MAGIC = 0x33545047          # "GPT3" as little-endian bytes
CKPT_VERSION = 1
CKPT_HEADER_INTS = 256
LN_EPS = 1e-5                    # gpt3.h's LayerNorm epsilon

# GELUs that are the tanh approximation gpt3.h computes:
#   gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
# ("gelu_fast" is the same formula with sqrt(2/pi) written out as 0.7978845608)
TANH_GELUS = {"gelu_new", "gelu_pytorch_tanh", "gelu_fast"}
EXACT_GELU = "gelu"              # x Phi(x): differs from the tanh form by < 1e-3

# Tensors in a Hugging Face GPT-2 file that we do not convert:
#   h.N.attn.bias, h.N.attn.masked_bias   causal-mask buffers older versions saved
#   lm_head.weight                        the output head, tied to wte
IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")
LM_HEAD = "lm_head.weight"


class ConvertError(Exception):
    """A problem with the input that stops the conversion (printed by main)."""


def warn(message):
    print(f"warning: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------
# Reading safetensors
#
# A .safetensors file is:
#   8 bytes    N, the length of the header, unsigned 64-bit little-endian
#   N bytes    a JSON object {name: {"dtype": "F32", "shape": [rows, cols],
#              "data_offsets": [begin, end]}, ..., "__metadata__": {...}}
#   the data   every tensor's raw little-endian bytes, row-major; a tensor's
#              offsets count from the start of the data (byte 8 + N)
# ---------------------------------------------------------------------------

# the dtypes we convert, as the numpy dtype of their raw bytes
SAFETENSORS_DTYPES = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),     # bfloat16: the upper 16 bits of a float32
}
MAX_HEADER_BYTES = 100 * 1024 * 1024   # the limit the safetensors library sets


class SafetensorsFile:
    """The tensors of one .safetensors file: the header is read when the file is
    opened, each tensor's data only when read() asks for it."""

    def __init__(self, path):
        self.path = path
        if not os.path.isfile(path):
            raise ConvertError(f"{path}: no such file")
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            start = f.read(8)
            n = int.from_bytes(start, "little") if len(start) == 8 else 0
            # a bad header length usually means another format: say which
            if len(start) < 8 or n < 2 or n > MAX_HEADER_BYTES:
                raise ConvertError(f"{path}: not a safetensors file{self._guess(start)}")
            header_bytes = f.read(n)
        if len(header_bytes) < n:
            raise ConvertError(f"{path}: not a safetensors file, or truncated: its header "
                               f"should be {n} bytes but the file has only {size}")
        try:
            header = json.loads(header_bytes.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ConvertError(f"{path}: not a safetensors file (its header is not JSON)")
        if not isinstance(header, dict):
            raise ConvertError(f"{path}: not a safetensors file (its header is not a JSON object)")
        header.pop("__metadata__", None)

        self.data_start = 8 + n
        data_size = size - self.data_start
        self.tensors = {}
        for name, info in header.items():
            try:
                dtype, shape = info["dtype"], [int(d) for d in info["shape"]]
                begin, end = (int(o) for o in info["data_offsets"])
            except (TypeError, KeyError, ValueError):
                raise ConvertError(f"{path}: not a safetensors file (bad header entry "
                                   f"for {name!r})")
            if not 0 <= begin <= end:
                raise ConvertError(f"{path}: corrupt header: tensor {name} has data "
                                   f"offsets [{begin}, {end}]")
            if end > data_size:
                raise ConvertError(f"{path}: truncated: tensor {name} needs bytes up to "
                                   f"{self.data_start + end} but the file has {size}")
            self.tensors[name] = (dtype, tuple(shape), begin, end)

    @staticmethod
    def _guess(start):
        """A hint for the common wrong files, from their first bytes."""
        if start.startswith(b"PK"):
            return (" (it is a zip archive: probably a PyTorch pytorch_model.bin; "
                    "download model.safetensors instead)")
        if start.startswith(b"version "):
            return (" (it is a Git LFS pointer, not the data: run `git lfs pull` "
                    "or download the file with curl/wget)")
        if start[:1] in (b"{", b"<"):
            return " (it looks like JSON or HTML: was the download an error page?)"
        return " (the first 8 bytes are not a plausible header length)"

    def read(self, name):
        """Tensor `name` as a new float32 array in native byte order."""
        dtype, shape, begin, end = self.tensors[name]
        if dtype not in SAFETENSORS_DTYPES:
            raise ConvertError(f"{self.path}: tensor {name} has unsupported dtype "
                               f"{dtype} (supported: {', '.join(SAFETENSORS_DTYPES)})")
        raw_dtype = SAFETENSORS_DTYPES[dtype]
        count = math.prod(shape)
        if end - begin != count * raw_dtype.itemsize:
            raise ConvertError(f"{self.path}: corrupt header: tensor {name} of shape "
                               f"{list(shape)} and dtype {dtype} should take "
                               f"{count * raw_dtype.itemsize} bytes, not {end - begin}")
        # read just this tensor's bytes (the offsets were checked against the file size)
        raw = np.fromfile(self.path, dtype=raw_dtype, count=count,
                          offset=self.data_start + begin).reshape(shape)
        if dtype == "BF16":
            # put the 16 stored bits on top of 16 zero bits: that float32 is the value
            return (raw.astype(np.uint32) << 16).view(np.float32)
        return raw.astype(np.float32, copy=False)   # F32 is used as read; F16 widened


class TensorStore:
    """Every tensor of a model, across one file or a sharded set, by name.

    Names are stored without the "transformer." prefix that GPT2LMHeadModel
    puts on everything but lm_head, so "transformer.h.0.ln_1.weight" and
    "h.0.ln_1.weight" (the hub's gpt2 file) both become "h.0.ln_1.weight"."""

    PREFIX = "transformer."

    def __init__(self, hf_dir):
        single = os.path.join(hf_dir, "model.safetensors")
        index = os.path.join(hf_dir, "model.safetensors.index.json")
        if os.path.isfile(single):
            files = [single]
        elif os.path.isfile(index):
            with open(index) as f:
                weight_map = json.load(f).get("weight_map", {})
            files = [os.path.join(hf_dir, shard) for shard in sorted(set(weight_map.values()))]
        else:
            hint = ""
            if os.path.isfile(os.path.join(hf_dir, "pytorch_model.bin")):
                hint = (" (there is a pytorch_model.bin: download model.safetensors "
                        "from the same hub page instead)")
            raise ConvertError(f"{single}: no such file{hint}")
        self.files = [SafetensorsFile(path) for path in files]
        self.where = {}       # short name -> (SafetensorsFile, name in that file)
        for st in self.files:
            for name in st.tensors:
                short = name[len(self.PREFIX):] if name.startswith(self.PREFIX) else name
                if short in self.where:
                    raise ConvertError(f"{st.path}: tensor {short} is stored twice")
                self.where[short] = (st, name)

    def __contains__(self, name):
        return name in self.where

    def dtype(self, name):
        st, full = self.where[name]
        return st.tensors[full][0]

    def shape(self, name):
        st, full = self.where[name]
        return st.tensors[full][1]

    def read(self, name):
        st, full = self.where[name]
        return st.read(full)


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------

def read_config(path):
    """The gpt3.h config of the Hugging Face GPT-2 described by config.json."""
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: no such file")
    try:
        with open(path) as f:
            hf = json.load(f)
    except ValueError as e:
        raise ConvertError(f"{path}: not valid JSON ({e})")

    def get(*keys):
        for key in keys:
            if hf.get(key) is not None:
                value = hf[key]
                if not isinstance(value, int) or value < 1:
                    raise ConvertError(f"{path}: {key} must be a positive integer, not {value!r}")
                return value
        raise ConvertError(f"{path}: missing {' or '.join(keys)}")

    cfg = dict(max_seq_len=get("n_positions", "n_ctx"), vocab_size=get("vocab_size"),
               num_layers=get("n_layer"), num_heads=get("n_head"),
               channels=get("n_embd"), local_window=0)
    C = cfg["channels"]
    if C % cfg["num_heads"] != 0:
        raise ConvertError(f"{path}: n_embd {C} does not divide by n_head {cfg['num_heads']}")

    # the GPT-2 variations gpt3.h does not implement
    if hf.get("model_type", "gpt2") != "gpt2":
        warn(f"model_type is {hf['model_type']!r}, not 'gpt2': converting it as GPT-2 anyway")
    if hf.get("n_inner") not in (None, 4 * C):
        raise ConvertError(f"{path}: n_inner {hf['n_inner']} is not 4 * n_embd = {4 * C}; "
                           "gpt3.h's MLP is always 4C wide")
    if hf.get("scale_attn_weights", True) is False:
        raise ConvertError(f"{path}: scale_attn_weights is false; gpt3.h always scales "
                           "attention by 1/sqrt(head size)")
    if hf.get("scale_attn_by_inverse_layer_idx", False):
        raise ConvertError(f"{path}: scale_attn_by_inverse_layer_idx is not supported by gpt3.h")
    if hf.get("add_cross_attention", False):
        raise ConvertError(f"{path}: add_cross_attention (an encoder-decoder model) is not "
                           "supported by gpt3.h")

    eps = hf.get("layer_norm_epsilon", LN_EPS)
    if not math.isclose(eps, LN_EPS, rel_tol=1e-6):
        warn(f"layer_norm_epsilon is {eps}, gpt3.h uses {LN_EPS}: outputs will differ slightly")
    act = hf.get("activation_function", "gelu_new")
    if act == EXACT_GELU:
        warn("activation_function is 'gelu' (exact, erf-based); gpt3.h computes the tanh "
             "approximation, which differs from it by less than 1e-3 per activation")
    elif act not in TANH_GELUS:
        raise ConvertError(f"{path}: activation_function {act!r} is not supported "
                           f"(gpt3.h computes the tanh GELU: {', '.join(sorted(TANH_GELUS))})")
    cfg["activation_function"], cfg["layer_norm_epsilon"] = act, eps
    return cfg


def layout(cfg):
    """Our 16 tensors in checkpoint order, each as
    (our name, [Hugging Face names, one per layer or just one], HF shape, transpose).
    Transposed tensors are Conv1D weights, stored (in, out) by Hugging Face."""
    L, C, V, maxT = cfg["num_layers"], cfg["channels"], cfg["vocab_size"], cfg["max_seq_len"]

    def per_layer(suffix):
        return [f"h.{l}.{suffix}" for l in range(L)]

    return [
        ("wte",      ["wte.weight"],                (V, C),         False),
        ("wpe",      ["wpe.weight"],                (maxT, C),      False),
        ("ln1w",     per_layer("ln_1.weight"),      (C,),           False),
        ("ln1b",     per_layer("ln_1.bias"),        (C,),           False),
        ("qkvw",     per_layer("attn.c_attn.weight"), (C, 3 * C),   True),
        ("qkvb",     per_layer("attn.c_attn.bias"), (3 * C,),       False),
        ("attprojw", per_layer("attn.c_proj.weight"), (C, C),       True),
        ("attprojb", per_layer("attn.c_proj.bias"), (C,),           False),
        ("ln2w",     per_layer("ln_2.weight"),      (C,),           False),
        ("ln2b",     per_layer("ln_2.bias"),        (C,),           False),
        ("fcw",      per_layer("mlp.c_fc.weight"),  (C, 4 * C),     True),
        ("fcb",      per_layer("mlp.c_fc.bias"),    (4 * C,),       False),
        ("fcprojw",  per_layer("mlp.c_proj.weight"), (4 * C, C),    True),
        ("fcprojb",  per_layer("mlp.c_proj.bias"),  (C,),           False),
        ("lnfw",     ["ln_f.weight"],               (C,),           False),
        ("lnfb",     ["ln_f.bias"],                 (C,),           False),
    ]


def check_tensors(store, cfg):
    """Every tensor we need is there with a supported dtype and the right shape.
    Checked before any output is written. Returns (the dtypes seen, the number
    of tensors in the file that are not converted)."""
    needed, dtypes = set(), set()
    for _, hf_names, shape, _ in layout(cfg):
        for name in hf_names:
            needed.add(name)
            if name not in store:
                raise ConvertError(f"missing tensor {name} (expected shape {list(shape)})")
            dtype = store.dtype(name)
            if dtype not in SAFETENSORS_DTYPES:
                raise ConvertError(f"tensor {name} has unsupported dtype {dtype} "
                                   f"(supported: {', '.join(SAFETENSORS_DTYPES)})")
            if store.shape(name) != shape:
                raise ConvertError(f"tensor {name} has shape {list(store.shape(name))}, "
                                   f"expected {list(shape)} for this config.json")
            dtypes.add(dtype)
    ignored = [n for n in store.where if n == LM_HEAD or n.endswith(IGNORED_SUFFIXES)]
    unknown = sorted(n for n in store.where if n not in needed and n not in ignored)
    if unknown:
        shown = ", ".join(unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        warn(f"ignoring {len(unknown)} tensor(s) GPT-2 does not use: {shown}")
    return dtypes, len(ignored) + len(unknown)


def check_lm_head(store, wte):
    """lm_head.weight, where a file has it, should be a copy of wte (tied)."""
    if LM_HEAD not in store:
        return
    if store.dtype(LM_HEAD) not in SAFETENSORS_DTYPES:
        warn(f"lm_head.weight has dtype {store.dtype(LM_HEAD)}: not compared with wte")
        return
    if store.shape(LM_HEAD) != wte.shape:
        warn(f"lm_head.weight has shape {list(store.shape(LM_HEAD))}, not wte's "
             f"{list(wte.shape)}; gpt3.h ties the output head to wte and ignores it")
    elif not np.array_equal(store.read(LM_HEAD), wte):
        warn("lm_head.weight differs from wte.weight (the head was not tied): gpt3.h "
             "ties the output head to wte, so the converted model's logits will differ")


def convert(hf_dir, out_path):
    """Convert HF_DIR to OUT_PATH; returns the number of parameters written."""
    out_dir = os.path.dirname(os.path.abspath(out_path))
    if not os.path.isdir(out_dir):
        raise ConvertError(f"{out_path}: the folder {out_dir} does not exist")
    cfg = read_config(os.path.join(hf_dir, "config.json"))
    store = TensorStore(hf_dir)
    dtypes, n_skipped = check_tensors(store, cfg)

    C, L = cfg["channels"], cfg["num_layers"]
    print(f"config: vocab_size {cfg['vocab_size']}, max_seq_len {cfg['max_seq_len']}, "
          f"layers {L}, heads {cfg['num_heads']}, channels {C}, activation "
          f"{cfg['activation_function']}, layer_norm_epsilon {cfg['layer_norm_epsilon']}")
    print(f"input: {', '.join(st.path for st in store.files)} "
          f"({'/'.join(sorted(dtypes))}, {len(store.where)} tensors, {n_skipped} not converted)")

    header = np.zeros(CKPT_HEADER_INTS, dtype="<i4")
    header[:8] = [CKPT_MAGIC, CKPT_VERSION, cfg["max_seq_len"], cfg["vocab_size"], L,
                  cfg["num_heads"], C, cfg["local_window"]]

    # write to a temporary file next to the output, then rename it into place
    # (a rename within one folder is atomic: readers see the old file or the new one)
    tmp_path = f"{out_path}.{os.getpid()}.tmp"
    n_params, n_nonfinite = 0, 0
    try:
        with open(tmp_path, "wb") as f:
            f.write(header.tobytes())
            for our_name, hf_names, _, transpose in layout(cfg):
                # a per-layer tensor (L, ...) is the L layers' tensors one after another
                for name in hf_names:
                    w = store.read(name)
                    if our_name == "wte":
                        check_lm_head(store, w)
                    if transpose:
                        w = w.T               # Conv1D (in, out) -> Linear (out, in)
                    n_nonfinite += int(np.count_nonzero(~np.isfinite(w)))
                    np.ascontiguousarray(w, dtype="<f4").tofile(f)
                    n_params += w.size
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, out_path)
    except BaseException:                 # any failure, Ctrl-C included: no half file
        if os.path.exists(tmp_path):
            os.unlink(tmp_path)
        raise
    if n_nonfinite:
        warn(f"{n_nonfinite} parameters are NaN or infinite")

    size = os.path.getsize(out_path)
    assert size == 4 * (CKPT_HEADER_INTS + n_params)
    print(f"parameters: {n_params:,}")
    print(f"wrote {out_path}: {size:,} bytes ({size / 2**20:.2f} MiB)")
    return n_params


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="Convert a Hugging Face GPT-2 (config.json + model.safetensors) "
                    "into a gpt3.h checkpoint.")
    parser.add_argument("hf_dir", help="folder with config.json and model.safetensors")
    parser.add_argument("out", help="the gpt3.h checkpoint to write, e.g. gpt2.ckpt")
    args = parser.parse_args(argv)
    try:
        convert(args.hf_dir, args.out)
    except (ConvertError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
