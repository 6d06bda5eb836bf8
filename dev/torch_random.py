"""
Random models against float64 PyTorch, beyond the two committed fixtures.

The committed fixtures (dev/make_fixtures.py) are tiny: C 12 and 16, T 11
and 12, so the fast kernels' blocking, the query blocks of attention and the
band's edges are checked against PyTorch only through the reference kernels
that test_gpt3 holds them to. This draws N random configurations (heads,
head sizes, layers, vocabularies, windows from 1 to past T, T from 2 past
one query block of 256, ignored targets), writes each as a fixture with
dev/make_fixtures.py's own code, and runs test_gpt3's comparison of the
committed fixtures on it (`./test_gpt3 --pytorch DIR NAME TOLERANCES`):
logits, the KV cache token by token, K training steps' losses and clipped
norms, the 16 gradients, the parameters after AdamW.

Tolerance: each error may be test_gpt3's tolerance for the committed
fixtures, or 10x PyTorch's own float32 error on the same model, whichever
is larger; PyTorch's error is the worst of three runs, the parameters as
stored and twice with half of them moved by one unit in the last place.
The second matters where the steps are ill-conditioned in float32: a loss
driven near 0, Adam's update of a gradient that is almost 0 (it divides
rounding noise by its own size), or random weights that make the three
steps chaotic.

Usage (from the repo root):
  /usr/bin/python3 dev/torch_random.py [--count N] [--seed S] [--large]
--large draws head sizes up to 64 (C up to 384) and T up to 700 (a few seconds a model).
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def draw_config(rng, large):
    channels = 1
    while channels < 2:  # LayerNorm of one channel is 0 whatever its input: no reference
        heads = rng.choice([1, 2, 3, 4, 6])
        head_size = rng.choice([1, 3, 8, 16, 24, 64] if large else [1, 3, 5, 8, 16, 32])
        channels = heads * head_size
    T = rng.choice([2, 3, rng.randint(3, 64), rng.randint(200, 700 if large else 300)])
    max_seq_len = T + rng.choice([0, 0, 1, rng.randint(2, 50)])
    window = rng.choice([0, 0, 1, 2, rng.randint(1, max(1, T)), T, T + rng.randint(1, 9)])
    return dict(max_seq_len=max_seq_len, vocab_size=rng.choice([2, 7, rng.randint(50, 1100)]),
                num_layers=rng.randint(1, 4), num_heads=heads, channels=channels,
                local_window=window, B=rng.randint(1, 3), T=T)


def read_reference(path):
    """dev/make_fixtures.py's .ref file: the float64 results, rounded to float32."""
    raw = open(path, "rb").read()
    _, _, B, T, K, V, P = np.frombuffer(raw[:28], "<i4")
    sizes = [("hyper", 8), ("inputs", B * T), ("targets", B * T), ("logits", B * T * V), ("loss", 1),
             ("grads", P), ("norms", K), ("losses", K), ("params", P)]
    ref, at = {}, 64
    for name, n in sizes:
        ref[name] = np.frombuffer(raw[at:at + 4 * n], "<f4").astype(np.float64)
        at += 4 * n
    return ref


def rel(a, b):
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    ref = np.sqrt((b * b).sum())
    diff = np.sqrt(((a - b) ** 2).sum())
    return diff / ref if ref > 0 else diff


def worst_tensor(c, ours, ref, skip_key_bias):
    worst, at, C = 0.0, 0, c["channels"]
    for name, shape in make_fixtures.param_shapes(c):
        n = int(np.prod(shape))
        if skip_key_bias and name == "qkvb":
            e = max(max(rel(ours[at + l * 3 * C + s:at + l * 3 * C + s + C],
                            ref[at + l * 3 * C + s:at + l * 3 * C + s + C]) for s in (0, 2 * C))
                    for l in range(c["num_layers"]))
        else:
            e = rel(ours[at:at + n], ref[at:at + n])
        worst, at = max(worst, e), at + n
    return worst


def float32_errors(c, seed, ref, steps, nudge):
    """PyTorch in float32 on the same model, batch and steps as the float64
    reference: its errors, measured as test_gpt3 measures ours. nudge > 0
    first moves about half the parameters by one unit in the last place
    (a draw seeded by nudge), as float32 rounding would."""
    torch.manual_seed(seed)
    init = make_fixtures.init_params(c)
    inputs, targets = make_fixtures.make_batch(c)
    names = [n for n, _ in make_fixtures.param_shapes(c)]
    if nudge:
        g = torch.Generator().manual_seed(nudge)
        for n in names:
            u = torch.rand(init[n].shape, generator=g, dtype=torch.float64) * 2 - 1
            init[n] = (init[n].double() * (1 + u * 2.0 ** -23)).float()
    params = {n: torch.nn.Parameter(init[n].clone()) for n in names}
    plist = [params[n] for n in names]
    opt = torch.optim.AdamW(
        [{"params": [params[n] for n in names if n in make_fixtures.MATRICES],
          "weight_decay": make_fixtures.WEIGHT_DECAY},
         {"params": [params[n] for n in names if n not in make_fixtures.MATRICES], "weight_decay": 0.0}],
        lr=make_fixtures.LR, betas=(make_fixtures.BETA1, make_fixtures.BETA2), eps=make_fixtures.EPS)
    e = dict(logits=0.0, loss=0.0, grads=0.0, norm=0.0)
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        logits, loss = make_fixtures.forward(params, c, inputs, targets)
        loss.backward()
        if step == 0:
            e["logits"] = rel(logits.detach(), ref["logits"])
            e["grads"] = worst_tensor(c, torch.cat([p.grad.flatten() for p in plist]).numpy(),
                                      ref["grads"], False)
        norm = torch.nn.utils.clip_grad_norm_(plist, max_norm=make_fixtures.MAX_NORM).item()
        e["loss"] = max(e["loss"], abs(loss.item() - ref["losses"][step]) / ref["losses"][step])
        e["norm"] = max(e["norm"], abs(norm - ref["norms"][step]) / ref["norms"][step])
        opt.step()
    e["params"] = worst_tensor(c, torch.cat([p.detach().flatten() for p in plist]).numpy(),
                               ref["params"], True)
    return e


# test_gpt3.c's, in the order of its command line
TOLERANCES = dict(logits=1e-5, loss=1e-6, grads=1e-4, norm=1e-5, params=1e-5)


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--count", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--large", action="store_true")
    args = ap.parse_args()
    root = os.path.dirname(HERE)
    subprocess.run(["make", "-s", "-C", root, "test_gpt3"], check=True)
    rng = random.Random(args.seed)
    make_fixtures.STEPS = 3
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.count):
            c = draw_config(rng, args.large)
            make_fixtures.SEED = args.seed * 1000 + i
            name = f"random{i}"
            with open(os.devnull, "w") as quiet:
                saved, sys.stdout = sys.stdout, quiet
                try:
                    make_fixtures.make_fixture(name, c, tmp)
                finally:
                    sys.stdout = saved
            ref = read_reference(os.path.join(tmp, name + ".ref"))
            runs = [float32_errors(c, make_fixtures.SEED, ref, make_fixtures.STEPS, nudge) for nudge in (0, 1, 2)]
            torch32 = {k: max(run[k] for run in runs) for k in runs[0]}
            tolerances = [f"{max(TOLERANCES[k], 10 * torch32[k]):.3g}" for k in TOLERANCES]
            shape = " ".join(f"{k} {v}" for k, v in c.items())
            out = subprocess.run([os.path.join(root, "test_gpt3"), "--pytorch", tmp, name] + tolerances,
                                 capture_output=True, text=True)
            torch_line = " ".join(f"{k} {v:.1e}" for k, v in torch32.items())
            lines = (out.stdout + out.stderr).strip().replace("\n", "\n    ")
            print(f"#{i} {shape}\n    {lines}\n    PyTorch float32's worst errors: {torch_line}", flush=True)
            failed += out.returncode != 0
    print(f"{args.count - failed} of {args.count} within tolerance")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
