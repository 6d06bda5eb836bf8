#!/usr/bin/python3
"""bench_torch.py: the cases of `./demo bench`, written in PyTorch, for comparison.

The model is gpt3.h's, layer for layer and FLOP for FLOP: a GPT-2/GPT-3 style
float32 decoder (token + position embeddings, pre-LayerNorm blocks with a fused
qkv Linear(C, 3C), attention projection, Linear(C, 4C) -> GELU (tanh) ->
Linear(4C, C), final LayerNorm, logits tied to the token embedding). Attention
is written by hand (torch 1.13 has no scaled_dot_product_attention): scores,
mask, softmax, @ v. With local_window W > 0 the odd layers (1, 3, 5, ...) are
banded, position t seeing s with t-W < s <= t, done the way a PyTorch user
would: a band mask on the dense T x T score matrix (so it saves no work).
A training step is zero_grad + forward + cross-entropy + backward + AdamW
(lr 1e-4, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on the 2-D weight
matrices only, as gpt3.h does); no dropout, no gradient clipping.

Run one case per process, so that the peak RSS is that case's:

    /usr/bin/python3 dev/bench_torch.py --case small_b4_t64 [--threads 2] [--runs 5]
    /usr/bin/python3 dev/bench_torch.py --list

stdout gets only "case<TAB>metric<TAB>value" lines (diagnostics go to stderr):

    small_b4_t64, teach_b8_t256, teach_banded_b2_t1024_w128   (training steps)
        ms_per_step   median of R timed steps after 2 warm-up steps
        tokens_per_s  B*T*1000 / ms_per_step
        peak_rss_mb   ru_maxrss of this process at the end, in MB
    small_generate    (the small model, batch 1, no_grad, hand-written KV cache)
        tokens_per_s  128 / time of 128 single-token decoding steps after a
                      64-token prompt; median of R runs (default 3) after 1 warm-up
        prefill_ms    the 64-token prompt pass alone (torch-only extra)
        peak_rss_mb
    attention_t2048   one attention core, q, k, v of (1, 12, 2048, 64), forward
                      + backward of sum(out * fixed random tensor)
        dense_ms, banded_ms (W = 256), ratio = banded_ms / dense_ms; medians
        of R (default 5) after warm-up, dense and banded alternating

--threads N sets torch.set_num_threads(N) and, before torch is imported,
OMP_NUM_THREADS=N, which the OpenBLAS under Debian's torch also reads.
--runs R overrides the number of timed repetitions of every case.
"""

import argparse
import math
import os
import resource
import statistics
import sys
import time

# name -> (config, batch, seq_len) for the training cases; config keys:
# L layers, C channels, NH heads, V vocabulary, maxT positions, W local window.
SMALL = dict(L=12, C=768, NH=12, V=50257, maxT=2048, W=256)
TEACH = dict(L=6, C=384, NH=6, V=256, maxT=256, W=0)
TEACH_BANDED = dict(L=6, C=384, NH=6, V=256, maxT=1024, W=128)
TRAIN_CASES = {
    "small_b4_t64": (SMALL, 4, 64),
    "teach_b8_t256": (TEACH, 8, 256),
    "teach_banded_b2_t1024_w128": (TEACH_BANDED, 2, 1024),
}
CASES = list(TRAIN_CASES) + ["small_generate", "attention_t2048"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def emit(case, metric, value):
    print(f"{case}\t{metric}\t{value:.6g}", flush=True)


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kB on Linux


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--case", choices=CASES)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=None,
                   help="timed repetitions (default 5; 3 for small_generate)")
    p.add_argument("--list", action="store_true", help="print the case names")
    a = p.parse_args()
    if not a.list and not a.case:
        p.error("--case NAME or --list is required")
    if a.runs is not None and a.runs < 1:
        p.error("--runs must be at least 1")
    return a


args = parse_args()
if args.list:
    print("\n".join(CASES))
    sys.exit(0)

# OpenBLAS sizes its thread pool when the library loads, i.e. at `import torch`.
os.environ["OMP_NUM_THREADS"] = str(args.threads)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


# ---------------------------------------------------------------------------
# the model

class Block(nn.Module):
    def __init__(self, C, NH):
        super().__init__()
        self.NH = NH
        self.ln1 = nn.LayerNorm(C, eps=1e-5)
        self.qkv = nn.Linear(C, 3 * C)
        self.attproj = nn.Linear(C, C)
        self.ln2 = nn.LayerNorm(C, eps=1e-5)
        self.fc = nn.Linear(C, 4 * C)
        self.fcproj = nn.Linear(4 * C, C)

    def heads(self, x):
        """(B, T, 3C) -> q, k, v each (B, NH, T, hs)"""
        B, T, C3 = x.shape
        hs = C3 // 3 // self.NH
        return [t.view(B, T, self.NH, hs).transpose(1, 2) for t in x.split(C3 // 3, dim=2)]

    def mlp(self, x):
        return self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))

    def forward(self, x, masked_out):
        """masked_out: bool (T, T), True where attention is not allowed"""
        B, T, C = x.shape
        q, k, v = self.heads(self.qkv(self.ln1(x)))
        y = attention(q, k, v, masked_out)
        x = x + self.attproj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.mlp(x)

    def forward_cached(self, x, kcache, vcache, t0):
        """x: (1, T, C) positions t0..t0+T-1; appends k, v into the caches
        (1, NH, Tmax, hs) and attends over everything cached so far."""
        B, T, C = x.shape
        q, k, v = self.heads(self.qkv(self.ln1(x)))
        kcache[:, :, t0:t0 + T] = k
        vcache[:, :, t0:t0 + T] = v
        K, V = kcache[:, :, :t0 + T], vcache[:, :, :t0 + T]
        masked_out = None
        if T > 1:  # prompt: causal; one new token sees every cached position
            masked_out = torch.ones(T, t0 + T, dtype=torch.bool).triu(t0 + 1)
        y = attention(q, K, V, masked_out)
        x = x + self.attproj(y.transpose(1, 2).contiguous().view(B, T, C))
        return x + self.mlp(x)


def attention(q, k, v, masked_out):
    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))
    if masked_out is not None:
        att = att.masked_fill(masked_out, float("-inf"))
    return F.softmax(att, dim=-1) @ v


def causal_mask(T, W=0):
    """True where position t may NOT attend to s: s > t, and with W > 0 also s <= t-W."""
    t = torch.arange(T).view(T, 1)
    s = torch.arange(T).view(1, T)
    allowed = s <= t
    if W > 0:
        allowed &= s > t - W
    return ~allowed


class GPT(nn.Module):
    def __init__(self, L, C, NH, V, maxT, W):
        super().__init__()
        self.W = W
        self.wte = nn.Embedding(V, C)
        self.wpe = nn.Embedding(maxT, C)
        self.blocks = nn.ModuleList(Block(C, NH) for _ in range(L))
        self.lnf = nn.LayerNorm(C, eps=1e-5)
        with torch.no_grad():
            for p in self.parameters():
                if p.dim() == 2:
                    p.normal_(0.0, 0.02)
        self._masks = {}

    def masks(self, T):
        if T not in self._masks:
            self._masks[T] = (causal_mask(T), causal_mask(T, self.W))
        return self._masks[T]

    def forward(self, idx, targets):
        B, T = idx.shape
        dense, banded = self.masks(T)
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for l, block in enumerate(self.blocks):
            x = block(x, banded if (self.W > 0 and l % 2 == 1) else dense)
        logits = F.linear(self.lnf(x), self.wte.weight)
        return F.cross_entropy(logits.view(B * T, -1), targets.view(B * T))

    def new_cache(self, Tmax):
        NH = self.blocks[0].NH
        hs = self.wte.weight.size(1) // NH
        return [(torch.zeros(1, NH, Tmax, hs), torch.zeros(1, NH, Tmax, hs)) for _ in self.blocks]

    def forward_cached(self, idx, cache, t0):
        """idx (1, T) at positions t0..; returns the logits (1, V) of the last position"""
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(t0, t0 + T))
        for block, (kc, vc) in zip(self.blocks, cache):
            x = block.forward_cached(x, kc, vc, t0)
        return F.linear(self.lnf(x[:, -1]), self.wte.weight)


def adamw(model):
    decay = [p for p in model.parameters() if p.dim() == 2]  # wte, wpe, qkv/attproj/fc/fcproj weights
    other = [p for p in model.parameters() if p.dim() != 2]  # biases, LayerNorm
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                              {"params": other, "weight_decay": 0.0}],
                             lr=1e-4, betas=(0.9, 0.95), eps=1e-8)


# ---------------------------------------------------------------------------
# the cases

def bench_train(case, runs):
    cfg, B, T = TRAIN_CASES[case]
    model = GPT(**cfg)
    opt = adamw(model)
    nparams = sum(p.numel() for p in model.parameters())
    log(f"{case}: {nparams / 1e6:.1f}M parameters, B={B} T={T}, {runs} timed steps")
    idx = torch.randint(cfg["V"], (B, T))
    targets = torch.randint(cfg["V"], (B, T))

    def step():
        opt.zero_grad(set_to_none=False)
        loss = model(idx, targets)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(2):
        step()
    times = []
    for i in range(runs):
        t0 = time.perf_counter()
        loss = step()
        times.append((time.perf_counter() - t0) * 1000)
        log(f"  step {i}: {times[-1]:.1f} ms, loss {loss:.4f}")
    ms = statistics.median(times)
    emit(case, "ms_per_step", ms)
    emit(case, "tokens_per_s", B * T * 1000.0 / ms)
    emit(case, "peak_rss_mb", peak_rss_mb())


def bench_generate(case, runs, prompt_len=64, new_tokens=128):
    model = GPT(**SMALL).eval()
    log(f"{case}: prompt {prompt_len}, {new_tokens} new tokens, {runs} timed runs")
    prompt = torch.randint(SMALL["V"], (1, prompt_len))

    def run():
        cache = model.new_cache(prompt_len + new_tokens)
        t0 = time.perf_counter()
        logits = model.forward_cached(prompt, cache, 0)
        t1 = time.perf_counter()
        for t in range(prompt_len, prompt_len + new_tokens):
            tok = torch.multinomial(F.softmax(logits, dim=-1), 1)
            logits = model.forward_cached(tok, cache, t)
        t2 = time.perf_counter()
        return (t1 - t0) * 1000, t2 - t1

    with torch.no_grad():
        run()
        prefill, decode = [], []
        for i in range(runs):
            p, d = run()
            prefill.append(p)
            decode.append(d)
            log(f"  run {i}: prefill {p:.1f} ms, decode {new_tokens / d:.1f} tokens/s")
    emit(case, "tokens_per_s", new_tokens / statistics.median(decode))
    emit(case, "prefill_ms", statistics.median(prefill))
    emit(case, "peak_rss_mb", peak_rss_mb())


def bench_attention(case, runs, T=2048, NH=12, hs=64, W=256):
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, NH, T, hs, requires_grad=True) for _ in range(3))
    g = torch.randn(1, NH, T, hs)
    masks = {"dense": causal_mask(T), "banded": causal_mask(T, W)}

    def once(mask):
        for t in (q, k, v):
            t.grad = None
        t0 = time.perf_counter()
        (attention(q, k, v, mask) * g).sum().backward()
        return (time.perf_counter() - t0) * 1000

    # dense and banded alternate, so that a drifting machine shifts both alike
    times = {name: [] for name in masks}
    for i in range(runs + 1):
        for name, mask in masks.items():
            ms = once(mask)
            if i > 0:  # the first round is the warm-up
                times[name].append(ms)
    res = {}
    for name, ts in times.items():
        res[name] = statistics.median(ts)
        log(f"{case} {name}: " + " ".join(f"{x:.1f}" for x in ts) + " ms")
    emit(case, "dense_ms", res["dense"])
    emit(case, "banded_ms", res["banded"])
    emit(case, "ratio", res["banded"] / res["dense"])


def main():
    torch.set_num_threads(args.threads)
    torch.manual_seed(1234)
    log(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if args.case in TRAIN_CASES:
        bench_train(args.case, args.runs or 5)
    elif args.case == "small_generate":
        bench_generate(args.case, args.runs or 3)
    else:
        bench_attention(args.case, args.runs or 5)


if __name__ == "__main__":
    main()
