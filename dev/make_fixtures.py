"""
Generate reference fixtures for testing gpt3.h against PyTorch.

For each config (see CONFIGS below) this script builds a tiny GPT-3 in PyTorch,
computing everything in float64, and writes two files:

  <name>.ckpt  the model's parameters, in the same checkpoint format that
               gpt3.h loads: a 256 x int32 header (magic, version, config),
               then every parameter tensor as float32, in the flat order below.
  <name>.ref   the expected results for one fixed batch: the inputs/targets,
               the logits and loss of the first forward pass, every parameter
               gradient of that pass (before clipping), the pre-clip gradient
               norm and loss of each of K training steps, and the parameters
               after the K-th AdamW step.

The C test loads <name>.ckpt, runs its own forward/backward/update on the
inputs and targets stored in <name>.ref, and compares each quantity against
the reference within a float32 tolerance. Because the reference is computed in
float64 from the exact float32 parameters stored in the checkpoint, any
difference seen by the test comes from the C implementation alone.

The two configs cover both attention patterns: "dense" uses causal attention
in every layer; "banded" (local_window > 0) alternates dense causal layers
(even l) with locally banded causal layers (odd l), as in GPT-3.

Usage (from the repo root):  python3 dev/make_fixtures.py [outdir]   (default fixtures/)
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

CONFIGS = {
    # name: model config + batch size B and sequence length T of the test batch
    "dense": dict(max_seq_len=16, vocab_size=61, num_layers=2, num_heads=2,
                  channels=16, local_window=0, B=2, T=12),
    "banded": dict(max_seq_len=16, vocab_size=53, num_layers=3, num_heads=3,
                   channels=12, local_window=3, B=2, T=11),
}
SEED = 1337
STEPS = 4                                           # K training steps
LR, BETA1, BETA2, EPS, WEIGHT_DECAY, MAX_NORM = 1e-2, 0.9, 0.95, 1e-8, 0.1, 1.0
CKPT_MAGIC, REF_MAGIC = 0x33545047, 0x46455247      # "GPT3", "GREF" as little-endian bytes
# the weight matrices: initialised N(0, 0.1) and the only tensors with weight decay
# (biases and LayerNorm parameters are also stored as (L, C) arrays, so test by name)
MATRICES = {"wte", "wpe", "qkvw", "attprojw", "fcw", "fcprojw"}

def param_shapes(c):
    """The 16 parameter tensors, in the flat order used by the checkpoint."""
    V, maxT, L, C = c["vocab_size"], c["max_seq_len"], c["num_layers"], c["channels"]
    return [("wte", (V, C)), ("wpe", (maxT, C)),
            ("ln1w", (L, C)), ("ln1b", (L, C)),
            ("qkvw", (L, 3 * C, C)), ("qkvb", (L, 3 * C)),
            ("attprojw", (L, C, C)), ("attprojb", (L, C)),
            ("ln2w", (L, C)), ("ln2b", (L, C)),
            ("fcw", (L, 4 * C, C)), ("fcb", (L, 4 * C)),
            ("fcprojw", (L, C, 4 * C)), ("fcprojb", (L, C)),
            ("lnfw", (C,)), ("lnfb", (C,))]

def init_params(c):
    """Random float32 parameters (not GPT's init: just large enough to be non-trivial)."""
    params = {}
    for name, shape in param_shapes(c):
        if name in MATRICES:                        # weight matrices
            p = 0.1 * torch.randn(shape)
        elif name in ("ln1w", "ln2w", "lnfw"):      # LayerNorm gains: around 1
            p = 1.0 + 0.1 * torch.randn(shape)
        else:                                       # biases, LayerNorm biases
            p = 0.05 * torch.randn(shape)
        params[name] = p.float()
    return params

def attn_mask(T, layer, W):
    """(T,T) boolean mask, True where position t (row) may attend to s (column)."""
    t = torch.arange(T).view(T, 1)
    s = torch.arange(T).view(1, T)
    allowed = s <= t                                # dense causal
    if W > 0 and layer % 2 == 1:                    # locally banded layer
        allowed = allowed & (s > t - W)
    return allowed

def gelu(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))

def linear(p, h, name, l):
    """Layer l's Linear `name` (qkvw, attprojw, fcw, fcprojw): h W^T + b."""
    return h @ p[name][l].T + p[name[:-1] + "b"][l]


def blocks(p, c, x, linear=linear):
    """The L blocks and the final LayerNorm on x_0 (B,S,C); linear(p, h, name, l)
    computes each Linear layer (make_finetune_fixtures.py adds LoRA's)."""
    B, S, _ = x.shape
    C, NH, L, W = c["channels"], c["num_heads"], c["num_layers"], c["local_window"]
    hs = C // NH
    for l in range(L):
        # attention block
        h = F.layer_norm(x, (C,), p["ln1w"][l], p["ln1b"][l], eps=1e-5)
        qkv = linear(p, h, "qkvw", l)                             # (B,S,3C)
        q, k, v = qkv.split(C, dim=2)
        q, k, v = (z.view(B, S, NH, hs).transpose(1, 2) for z in (q, k, v))  # (B,NH,S,hs)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(hs)        # (B,NH,S,S)
        scores = scores.masked_fill(~attn_mask(S, l, W), float("-inf"))
        out = F.softmax(scores, dim=-1) @ v                       # (B,NH,S,hs)
        out = out.transpose(1, 2).contiguous().view(B, S, C)      # heads side by side
        x = x + linear(p, out, "attprojw", l)
        # MLP block
        h = F.layer_norm(x, (C,), p["ln2w"][l], p["ln2b"][l], eps=1e-5)
        x = x + linear(p, gelu(linear(p, h, "fcw", l)), "fcprojw", l)
    return F.layer_norm(x, (C,), p["lnfw"], p["lnfb"], eps=1e-5)


def forward(p, c, inputs, targets):
    """The GPT-3 forward pass; returns (logits (B,T,V), mean cross-entropy loss)."""
    B, T = inputs.shape
    x = blocks(p, c, p["wte"][inputs] + p["wpe"][:T])
    logits = x @ p["wte"].T                                       # tied embedding, no bias
    loss = F.cross_entropy(logits.view(B * T, -1), targets.view(-1), ignore_index=-1)
    return logits, loss

def make_batch(c):
    """Random inputs and targets; about 20% of targets are -1 (ignored by the loss)."""
    B, T, V = c["B"], c["T"], c["vocab_size"]
    inputs = torch.randint(0, V, (B, T))
    targets = torch.randint(0, V, (B, T))
    ignore = torch.rand(B, T) < 0.2
    for b in range(B):                              # every sequence has an ignored position...
        if not ignore[b].any():
            ignore[b, torch.randint(0, T, (1,)).item()] = True
    if ignore.all():                                # ...and at least one position counts
        ignore[0, 0] = False
    targets[ignore] = -1
    return inputs, targets

def f32(t):
    return t.detach().numpy().astype("<f4").ravel().tobytes()

def i32(values):
    return np.asarray(values).astype("<i4").ravel().tobytes()

def make_fixture(name, c, outdir):
    torch.manual_seed(SEED)
    init = init_params(c)                           # float32, stored exactly in the checkpoint
    inputs, targets = make_batch(c)
    names = [n for n, _ in param_shapes(c)]
    params = {n: torch.nn.Parameter(init[n].double()) for n in names}
    plist = [params[n] for n in names]
    decay = [params[n] for n in names if n in MATRICES]
    no_decay = [params[n] for n in names if n not in MATRICES]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WEIGHT_DECAY},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(BETA1, BETA2), eps=EPS)

    losses, norms = [], []
    for step in range(STEPS):
        opt.zero_grad(set_to_none=True)
        logits, loss = forward(params, c, inputs, targets)
        loss.backward()
        if step == 0:                               # step 1 reference: logits, loss, raw grads
            logits1, loss1 = logits.detach().clone(), loss.item()
            grads1 = torch.cat([p.grad.detach().flatten() for p in plist]).clone()
        norm = torch.nn.utils.clip_grad_norm_(plist, max_norm=MAX_NORM)
        norms.append(norm.item())
        losses.append(loss.item())
        opt.step()
    params_after = torch.cat([p.detach().flatten() for p in plist])
    num_params = params_after.numel()

    # checkpoint: 256 x int32 header, then the float32 parameters
    header = np.zeros(256, dtype="<i4")
    header[:8] = [CKPT_MAGIC, 1, c["max_seq_len"], c["vocab_size"], c["num_layers"],
                  c["num_heads"], c["channels"], c["local_window"]]
    ckpt_path = os.path.join(outdir, name + ".ckpt")
    with open(ckpt_path, "wb") as f:
        f.write(header.tobytes())
        for n in names:
            f.write(f32(init[n]))

    # reference: header, hyperparameters, batch, then the expected results
    B, T, V = c["B"], c["T"], c["vocab_size"]
    header = np.zeros(16, dtype="<i4")
    header[:7] = [REF_MAGIC, 1, B, T, STEPS, V, num_params]
    hyper = torch.tensor([LR, BETA1, BETA2, EPS, WEIGHT_DECAY, MAX_NORM, 0, 0])
    ref_path = os.path.join(outdir, name + ".ref")
    with open(ref_path, "wb") as f:
        f.write(header.tobytes())
        f.write(f32(hyper))
        f.write(i32(inputs))
        f.write(i32(targets))
        f.write(f32(logits1))
        f.write(f32(torch.tensor([loss1])))
        f.write(f32(grads1))
        f.write(f32(torch.tensor(norms)))
        f.write(f32(torch.tensor(losses)))
        f.write(f32(params_after))

    # self-check: re-read both files and compare sizes and headers with the formats
    ckpt = open(ckpt_path, "rb").read()
    assert len(ckpt) == 4 * (256 + num_params), "checkpoint size mismatch"
    assert np.frombuffer(ckpt[:32], "<i4")[0] == CKPT_MAGIC
    assert sum(math.prod(s) for _, s in param_shapes(c)) == num_params
    ref = open(ref_path, "rb").read()
    expected = 4 * (16 + 8 + 2 * B * T + B * T * V + 1 + num_params + 2 * STEPS + num_params)
    assert len(ref) == expected, "reference size mismatch"
    assert list(np.frombuffer(ref[:28], "<i4")) == [REF_MAGIC, 1, B, T, STEPS, V, num_params]
    assert (targets >= 0).any() and (targets < 0).any(dim=1).all()

    print(f"{name:6s}: params {num_params}, step-1 loss {loss1:.6f}, grad norm {norms[0]:.6f}, "
          f"loss after {STEPS} steps {losses[-1]:.6f} -> {ckpt_path}, {ref_path}")

def check_banded_mask():
    """Layer 1 of the banded config: row t must allow exactly min(t+1, W) positions."""
    c = CONFIGS["banded"]
    W, T = c["local_window"], c["T"]
    mask = attn_mask(T, 1, W)
    for t in range(T):
        assert mask[t].sum().item() == min(t + 1, W), f"banded mask row {t} is wrong"
        assert mask[t, max(0, t - W + 1):t + 1].all()   # ...and they are the last W up to t
    assert attn_mask(T, 0, W).sum(dim=1).tolist() == list(range(1, T + 1))  # layer 0 dense

if __name__ == "__main__":
    outdir = sys.argv[1] if len(sys.argv) > 1 else "fixtures"
    os.makedirs(outdir, exist_ok=True)
    for name, c in CONFIGS.items():
        make_fixture(name, c, outdir)
    check_banded_mask()
    print("banded mask check OK")
