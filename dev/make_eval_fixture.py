"""
Build the fixture of `./demo eval`: a tiny GPT-2 in Hugging Face's layout
whose tokens are bytes (V 256, maxT 64), converted with
dev/convert_hf_gpt2.py, a few multiple-choice and completion items, and what
eval must compute for them, worked out here independently of the C code:

  - the prompts: K demonstrations drawn as demo.c's draw_demonstrations
    draws them (splitmix64, as gpt3_rng_u32), each its context, " " and its
    correct completion, a blank line after each, then the item's context;
    the oldest demonstrations dropped until the longest choice fits in
    maxT, an item too long alone keeping its last tokens;
  - every choice's log-likelihood after its prompt, by a float64 PyTorch
    GPT-2 in Hugging Face's convention (dev/make_hf_fixture.py's hf_forward).

It writes, in fixtures/eval_tiny/: model.ckpt (the converted model),
mc.jsonl, mc_train.jsonl, cloze.jsonl (the items), and mc.expected.jsonl /
cloze.expected.jsonl: the lines `./demo eval --details` must write for
`--shots 0,2 --train mc_train.jsonl --seed 7` and `--shots 1 --seed 7`
(same ids, log-likelihoods to 1e-5 relative: the test compares them).

Usage (from the repo root):  /usr/bin/python3 dev/make_eval_fixture.py
"""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_hf_fixture as hf  # noqa: E402  (the GPT-2 writer and forward)

OUT = "fixtures/eval_tiny"
hf.N_EMBD, hf.N_LAYER, hf.N_HEAD, hf.N_POSITIONS, hf.VOCAB_SIZE = 16, 2, 2, 64, 256
SEED, MASK = 7, (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15

MC = [
    ("The cat sat on the", ["mat", "moon", "idea"], 0),
    ("Water boils at", ["100 degrees", "cold"], 0),
    ("A long context that leaves little room for demonstrations: one two three", ["four", "five"], 1),
    ("Snow is", [" white", "black", "green"], 0),
]
MC_TRAIN = [
    ("Red and", ["blue", "sky"], 0),
    ("Day and", ["chair", "night"], 1),
    ("Up and", ["down", "over"], 0),
    ("Salt and", ["pepper", "wheel"], 0),
]
CLOZE = [("One, two,", "three"), ("A, B,", "C"), ("North, south, east,", "west")]


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


class Rng:
    """gpt3_rng_seed / gpt3_rng_u32."""
    def __init__(self, seed):
        self.state = seed & MASK

    def u32(self):
        self.state = (self.state + GOLDEN) & MASK
        return mix64(self.state) >> 32


def draw(seed, K, i, pool_count, same_file):
    rng, demo = Rng(seed * GOLDEN + K * 1000003 + i), []
    while len(demo) < K:
        j = rng.u32() % pool_count
        if not (same_file and j == i) and j not in demo:
            demo.append(j)
    return demo


def continuation(text):
    return text if text[0].isspace() else " " + text


def prompt(item, pool, demo, first):
    out = ""
    for j in demo[first:]:
        context, choices, label = pool[j]
        out += context + continuation(choices[label]) + "\n\n"
    return out + item[0]


def context_ids(item, pool, demo, longest, max_t):
    room = max_t - longest
    for first in range(len(demo) + 1):
        ids = list(prompt(item, pool, demo, first).encode("utf-8"))
        if len(ids) <= room:
            break
    return ids[-room:] if len(ids) > room else ids


def log_likelihood(params, context, choice):
    logits = torch.from_numpy(hf.hf_forward(params, context + choice))
    logp = torch.log_softmax(logits, dim=-1)
    return float(sum(logp[len(context) - 1 + j, t] for j, t in enumerate(choice)))


def expected_lines(params, items, pool, same_file, shots, cloze):
    lines = []
    for K in shots:
        for i, item in enumerate(items):
            demo = draw(SEED, K, i, len(pool), same_file)
            choices = [list(continuation(c).encode("utf-8")) for c in item[1]]
            ctx = context_ids(item, pool, demo, max(len(c) for c in choices), hf.N_POSITIONS)
            lps = [log_likelihood(params, ctx, c) for c in choices]
            pred = max(range(len(lps)), key=lambda c: (lps[c], -c))
            chars = [sum(1 for b in continuation(c).encode("utf-8") if b & 0xC0 != 0x80) for c in item[1]]
            lines.append({"item": i, "shots": K, "label": item[2], "predicted": 0 if cloze else pred,
                          "context_ids": ctx,
                          "choices": [{"ids": c, "logprob": lp, "tokens": len(c), "characters": n}
                                      for c, lp, n in zip(choices, lps, chars)]})
    return lines


def write_jsonl(path, rows):
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def main():
    gen = torch.Generator().manual_seed(SEED)
    params = hf.make_params(gen)
    os.makedirs(OUT, exist_ok=True)
    work = tempfile.mkdtemp()
    try:
        hf.write_safetensors(os.path.join(work, "model.safetensors"),
                             {k: v for k, v in params.items() if not hf.is_buffer(k)})
        hf.write_config(os.path.join(work, "config.json"), hf.hf_config())
        hf.convert_or_die(work, os.path.join(OUT, "model.ckpt"))
    finally:
        shutil.rmtree(work)
    mc = [(c, ch, l) for c, ch, l in MC]
    cloze = [(c, [t], 0) for c, t in CLOZE]
    write_jsonl(os.path.join(OUT, "mc.jsonl"), [{"context": c, "choices": ch, "label": l} for c, ch, l in MC])
    write_jsonl(os.path.join(OUT, "mc_train.jsonl"),
                [{"ctx": c, "endings": ch, "label": str(l)} for c, ch, l in MC_TRAIN])  # HellaSwag's fields
    write_jsonl(os.path.join(OUT, "cloze.jsonl"), [{"context": c, "target": t} for c, t in CLOZE])
    write_jsonl(os.path.join(OUT, "mc.expected.jsonl"),
                expected_lines(params, mc, MC_TRAIN, False, [0, 2], False))
    write_jsonl(os.path.join(OUT, "cloze.expected.jsonl"),
                expected_lines(params, cloze, cloze, True, [1], True))
    print(f"wrote {OUT}/")


if __name__ == "__main__":
    main()
