"""
Build the fixtures of `./demo convert` (the C converter of Hugging Face GPT-2
weights): the tiny GPT-2 of fixtures/hf_tiny in the other forms Hugging Face
stores a model in, each with the checkpoint dev/convert_hf_gpt2.py (the
reference) makes of it. test_cli.sh checks that `./demo convert` writes the
same bytes.

From fixtures/hf_tiny/model.safetensors (float32, made by make_hf_fixture.py)
this writes, in fixtures/hf_tiny:
  model_f16.ckpt          the reference's conversion of model_f16.safetensors
                          (float16, "transformer." names, lm_head.weight; made
                          by make_hf_fixture.py)
  model_bf16.safetensors  the model in bfloat16 (rounded to nearest even, as
                          torch does), the hub's names (no prefix, no buffers)
  model_bf16.ckpt         its conversion
  sharded/                a sharded set as transformers saves a large model:
                          config.json, model.safetensors.index.json and two
                          shards, "transformer." names and lm_head.weight;
                          float16 but ln_f in bfloat16 (two dtypes in one
                          model), with float16's special values planted in
                          h.1.mlp.c_fc.weight (a transposed Conv1D weight):
                          signed zeros, subnormals, the extreme normals,
                          infinities and quiet NaNs with payloads
  sharded.ckpt            its conversion

Only numpy is needed. Every check below must hold, or the script stops: each
expected checkpoint is also built here independently of the reference (the
float16/bfloat16 values widened, the layers stacked, the Conv1D weights
transposed) and compared bit for bit. Running it again writes the same bytes.

Usage (from the repo root):  /usr/bin/python3 dev/make_hf_variants.py
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from convert_hf_gpt2 import CKPT_HEADER_INTS, SafetensorsFile, layout, read_config  # noqa: E402

FIXTURE = os.path.relpath(os.path.join(HERE, "..", "fixtures", "hf_tiny"))
CONVERTER = os.path.join(HERE, "convert_hf_gpt2.py")

# float16 bit patterns: +0, -0, the smallest subnormal (2^-24) and its
# negative, the largest subnormal, the smallest normal (2^-14), the largest
# normal (65504), +inf, -inf, quiet NaNs with payloads (signalling NaNs are
# left out: numpy keeps their bits, F16C hardware conversion quiets them)
F16_SPECIALS = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF,
                0x7C00, 0xFC00, 0x7E00, 0xFE01, 0x7FFF, 0x0155, 0x83FE]


def to_bf16_bits(a):
    """float32 -> bfloat16 bits (uint16), rounding to nearest even like torch."""
    bits = np.ascontiguousarray(a, np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")


def stored_bits(a, dtype):
    """The bytes a float32 array is stored as in `dtype` (F16 and BF16 round)."""
    if dtype == "F16":
        return np.ascontiguousarray(a.astype("<f2"))
    if dtype == "BF16":
        return to_bf16_bits(a)
    return np.ascontiguousarray(a.astype("<f4"))


def widen(raw, dtype):
    """Stored bits -> float32, exactly (independent of the reference's reader)."""
    if dtype == "BF16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.view("<f2").astype(np.float32) if raw.dtype == np.dtype("<u2") else raw.astype(np.float32)


def raw_bits(st, name):
    """Tensor `name` of a SafetensorsFile as its stored 16-bit patterns."""
    _, shape, begin, end = st.tensors[name]
    return np.fromfile(st.path, "<u2", (end - begin) // 2, offset=st.data_start + begin).reshape(shape)


def write_safetensors(path, tensors):
    """Write {name: (dtype, raw little-endian array)} as a .safetensors file."""
    header, chunks, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, (dtype, raw) in tensors.items():
        data = raw.tobytes()
        header[name] = {"dtype": dtype, "shape": list(raw.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)          # padded to 8 bytes, as safetensors does
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little") + text + b"".join(chunks))
    return offset


def convert(hf_dir, out_path):
    r = subprocess.run([sys.executable, CONVERTER, hf_dir, out_path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"the reference converter failed on {hf_dir}:\n{r.stdout}{r.stderr}")
    return r.stderr


def expected_ckpt(cfg, values):
    """The checkpoint's bytes built from {HF name: float32 array}: our tensors
    in order, layers one after another, Conv1D weights transposed."""
    header = np.zeros(CKPT_HEADER_INTS, "<i4")
    header[:8] = [0x33545047, 1, cfg["max_seq_len"], cfg["vocab_size"], cfg["num_layers"],
                  cfg["num_heads"], cfg["channels"], 0]
    parts = [header.tobytes()]
    for _, names, _, transpose in layout(cfg):
        for name in names:
            a = values[name].T if transpose else values[name]
            parts.append(np.ascontiguousarray(a, "<f4").tobytes())
    return b"".join(parts)


def check_conversion(cfg, hf_dir, ckpt, values):
    err = convert(hf_dir, ckpt)
    with open(ckpt, "rb") as f:
        got = f.read()
    assert got == expected_ckpt(cfg, values), f"{ckpt}: not the expected bytes"
    print(f"  {os.path.relpath(ckpt)}: {len(got)} bytes, as expected"
          + (f" ({err.strip()})" if err.strip() else ""))


def variant(params, dtype_of, prefix):
    """{stored name: (dtype, raw)} and {HF name: the float32 values stored}."""
    stored, values = {}, {}
    for name, a in params.items():
        dtype = dtype_of(name)
        raw = stored_bits(a, dtype)
        stored[prefix + name] = (dtype, raw)
        values[name] = widen(raw, dtype)
    return stored, values


def single_file_folder(work, fixture, weights):
    """A folder in work with config.json and `weights` as model.safetensors."""
    d = os.path.join(work, weights.split(".")[0])
    os.makedirs(d)
    shutil.copy(os.path.join(fixture, "config.json"), d)
    shutil.copy(os.path.join(fixture, weights), os.path.join(d, "model.safetensors"))
    return d


def main():
    cfg = read_config(os.path.join(FIXTURE, "config.json"))
    st = SafetensorsFile(os.path.join(FIXTURE, "model.safetensors"))
    params = {n: st.read(n) for n in st.tensors
              if not n.endswith((".attn.bias", ".attn.masked_bias"))}
    print("wrote:")

    # the float16 file make_hf_fixture.py wrote: its conversion
    f16 = SafetensorsFile(os.path.join(FIXTURE, "model_f16.safetensors"))
    values = {n[len("transformer."):]: widen(raw_bits(f16, n), "F16")
              for n in f16.tensors if n != "lm_head.weight"}
    with tempfile.TemporaryDirectory() as work:
        check_conversion(cfg, single_file_folder(work, FIXTURE, "model_f16.safetensors"),
                         os.path.join(FIXTURE, "model_f16.ckpt"), values)

    # bfloat16, the hub's names
    stored, values = variant(params, lambda n: "BF16", "")
    write_safetensors(os.path.join(FIXTURE, "model_bf16.safetensors"), stored)
    with tempfile.TemporaryDirectory() as work:
        check_conversion(cfg, single_file_folder(work, FIXTURE, "model_bf16.safetensors"),
                         os.path.join(FIXTURE, "model_bf16.ckpt"), values)

    # two shards: float16 (ln_f in bfloat16), special values planted, lm_head tied
    planted = dict(params)
    fc = planted["h.1.mlp.c_fc.weight"].copy()
    specials = np.array(F16_SPECIALS, "<u2").view("<f2").astype(np.float32)
    fc.reshape(-1)[5:5 + 7 * len(specials):7] = specials     # spread over rows and columns
    planted["h.1.mlp.c_fc.weight"] = fc
    planted["lm_head.weight"] = planted["wte.weight"]
    stored, values = variant(planted, lambda n: "BF16" if n.startswith("ln_f.") else "F16",
                             "transformer.")
    stored["lm_head.weight"] = stored.pop("transformer.lm_head.weight")
    sharded = os.path.join(FIXTURE, "sharded")
    shutil.rmtree(sharded, ignore_errors=True)
    os.makedirs(sharded)
    shutil.copy(os.path.join(FIXTURE, "config.json"), sharded)
    names = list(stored)
    first = [n for n in names if n.startswith(("transformer.wte", "transformer.wpe", "transformer.h.0."))]
    shards = {"model-00001-of-00002.safetensors": first,
              "model-00002-of-00002.safetensors": [n for n in names if n not in first]}
    total, weight_map = 0, {}
    for shard, members in shards.items():
        total += write_safetensors(os.path.join(sharded, shard), {n: stored[n] for n in members})
        weight_map.update({n: shard for n in members})
    with open(os.path.join(sharded, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f,
                  indent=2, sort_keys=True)
        f.write("\n")
    check_conversion(cfg, sharded, os.path.join(FIXTURE, "sharded.ckpt"), values)


if __name__ == "__main__":
    main()
