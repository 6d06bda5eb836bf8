"""
PyTorch references (float64) for fine-tuning: task heads, LoRA, soft
prompts, distillation, freezing and adversarial training (FGM, PGD).

dev/make_fixtures.py checks the language model's gradients and AdamW; this
script checks everything fine-tuning adds on top of them, on one small
banded model (fixtures/finetune/model.ckpt, V 61, L 3, NH 2, C 16, W 3).
Each case combines several techniques:

  lm_lora_distill     the LM loss with ignored targets, LoRA (r 2) on a
                      frozen model (freeze 0), distillation (alpha 0.4, tau 2)
  classes_prompt_fgm  a 3-class head on right-padded sequences, a soft
                      prompt of 2 vectors, the top block trained (freeze 1),
                      FGM (epsilon 0.5)
  tags_pgd_distill    a 4-tag head with ignored tags and padding, everything
                      trained, PGD (3 steps, epsilon 1, alpha 0.4),
                      distillation (alpha 0.5, tau 1.5)
  binary_lora         a binary head (BCE), LoRA (r 1) on a model that also
                      trains, distillation (alpha 0.3, tau 2)

For each: the loss, the perturbed loss (adversarial cases), every gradient
(model, adapters, head, prompt) of the first step, and STEPS steps of
clipping + torch.optim.AdamW with gpt3.h's groups: weight decay on the
model's matrices, the adapters and the head's weight; none on biases,
LayerNorms and the prompt; frozen tensors outside the optimizer. The
adapters' B and the head start random, not at gpt3.h's initial values, so
every gradient is non-trivial; the test overwrites its own with them.

Format of <case>.ref (little-endian):
  int32[32]  magic "GFTR", version 1, head kind (-1: the LM; 0 binary,
             1 classes, 2 tags), K, lora rank, prompt length N, trainable
             blocks (-1: all), has teacher, adversarial steps, B, T, STEPS,
             then the sizes P_model, P_lora, P_head, P_prompt; 0 after
  float32[16] lora alpha, distill alpha, tau, adversarial epsilon and
             alpha, lr, beta1, beta2, eps, weight decay, max norm; 0 after
  int32      inputs (B, T), lengths (B), labels: (B, T) for the LM and
             tags, (B) for binary and classes
  float32    teacher logits (the shape of the student's), if any
  float32    initial lora, head, prompt parameters
  float32    losses (STEPS), the first step's perturbed loss (1), norms
             (STEPS), first-step gradients of model, lora, head, prompt,
             then the parameters after STEPS steps in the same order

Usage (from the repo root): /usr/bin/python3 dev/make_finetune_fixtures.py [outdir]
(default fixtures/finetune). Deterministic (seed 4242).
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf  # noqa: E402

MODEL = dict(max_seq_len=16, vocab_size=61, num_layers=3, num_heads=2, channels=16, local_window=3)
SEED, STEPS = 4242, 3
LR, BETA1, BETA2, EPS, WEIGHT_DECAY, MAX_NORM = 1e-2, 0.9, 0.95, 1e-8, 0.1, 1.0
MAGIC = 0x52544647  # "GFTR"
LM, BINARY, CLASSES, TAGS = -1, 0, 1, 2

CASES = {
    "lm_lora_distill": dict(head=LM, K=0, lora=2, lora_alpha=4.0, prompt=0, blocks=0,
                            teacher=True, distill_alpha=0.4, tau=2.0, adv=0, eps=0.0, adv_alpha=0.0,
                            B=2, T=9),
    "classes_prompt_fgm": dict(head=CLASSES, K=3, lora=0, lora_alpha=0.0, prompt=2, blocks=1,
                               teacher=False, distill_alpha=0.0, tau=1.0, adv=1, eps=0.5, adv_alpha=0.0,
                               B=3, T=8),
    "tags_pgd_distill": dict(head=TAGS, K=4, lora=0, lora_alpha=0.0, prompt=0, blocks=-1,
                             teacher=True, distill_alpha=0.5, tau=1.5, adv=3, eps=1.0, adv_alpha=0.4,
                             B=2, T=10),
    "binary_lora": dict(head=BINARY, K=1, lora=1, lora_alpha=2.0, prompt=0, blocks=-1,
                        teacher=True, distill_alpha=0.3, tau=2.0, adv=0, eps=0.0, adv_alpha=0.0,
                        B=4, T=7),
}
LORA_MATRICES = [("qkvw", 1, 3), ("attprojw", 1, 1), ("fcw", 1, 4), ("fcprojw", 4, 1)]  # (in, out) x C


def lora_shapes(c, r):
    """gpt3.h's GPT3LoRA layout: per layer, A (r, in) then B (out, r) for each matrix in turn."""
    C = c["channels"]
    return [(l, name, (r, i * C), (o * C, r)) for l in range(c["num_layers"])
            for name, i, o in LORA_MATRICES]


def trains(name, layer, blocks, L):
    """gpt3__trains: the top `blocks` blocks and lnf; wte and wpe only when all train."""
    if blocks < 0 or blocks >= L:
        return True
    if name in ("wte", "wpe"):
        return False
    if name in ("lnfw", "lnfb"):
        return blocks > 0
    return layer >= L - blocks


def body(p, lora, case, inputs, prompt, delta):
    """x_0 = [prompt; wte[inputs]] + wpe (+ delta), the blocks, lnf; the prompt's
    rows dropped. Returns (h (B, T, C), x_0) with x_0 the tensor delta is added to."""
    c = MODEL
    B, T = inputs.shape
    C, N = c["channels"], case["prompt"]
    tokens = p["wte"][inputs]
    x = torch.cat([prompt.unsqueeze(0).expand(B, N, C), tokens], dim=1) if N else tokens
    x = x + p["wpe"][:N + T]
    x0 = x
    if delta is not None:
        x = x + delta
    scale = case["lora_alpha"] / case["lora"] if case["lora"] else 0.0

    def linear(p, h, name, l):  # y = h W^T + b, plus the adapter's s (h A^T) B^T
        y = mf.linear(p, h, name, l)
        if case["lora"]:
            A, Bm = lora[(l, name)]
            y = y + scale * (h @ A.T) @ Bm.T
        return y

    x = mf.blocks(p, c, x, linear)
    return x[:, N:], x0


def kd(student, teacher, tau):
    """Per row tau^2 KL(softmax(teacher / tau) || softmax(student / tau))."""
    log_p = F.log_softmax(teacher / tau, dim=-1)
    log_q = F.log_softmax(student / tau, dim=-1)
    return tau * tau * (log_p.exp() * (log_p - log_q)).sum(-1)


def loss_of(p, lora, head, case, batch, prompt, delta):
    """The mean loss of gpt3.h: ((1 - alpha) sum hard + alpha sum KD) / N over the rows that count."""
    inputs, lengths, labels, teacher = batch
    h, x0 = body(p, lora, case, inputs, prompt, delta)
    kind, K = case["head"], case["K"]
    if kind == LM:
        logits = h @ p["wte"].T
    elif kind == TAGS:
        logits = h @ head[0].T + head[1]
    else:
        last = h[torch.arange(h.shape[0]), lengths - 1]
        logits = last @ head[0].T + head[1]
    rows = logits.reshape(-1, max(K, 1) if kind != LM else MODEL["vocab_size"])
    y = labels.reshape(-1)
    if kind == TAGS:  # padding never counts
        T = inputs.shape[1]
        pad = torch.arange(T).view(1, T) >= lengths.view(-1, 1)
        y = torch.where(pad.reshape(-1), torch.full_like(y, -1), y)
    counted = y >= 0
    if kind == BINARY:
        z = rows[:, 0]
        hard = F.binary_cross_entropy_with_logits(z, y.double(), reduction="none")
    else:
        hard = F.cross_entropy(rows, y.clamp(min=0), reduction="none")
    hard = hard[counted].sum()
    total = hard
    if case["teacher"]:
        t = teacher.reshape(rows.shape)
        if kind == BINARY:  # logits (0, z)
            s2 = torch.stack([torch.zeros_like(rows[:, 0]), rows[:, 0]], -1)
            t2 = torch.stack([torch.zeros_like(t[:, 0]), t[:, 0]], -1)
            d = kd(s2, t2, case["tau"])
        else:
            d = kd(rows, t, case["tau"])
        total = (1 - case["distill_alpha"]) * hard + case["distill_alpha"] * d[counted].sum()
    return total / counted.sum(), x0


def make_batch(case, gen):
    B, T, K, V = case["B"], case["T"], case["K"], MODEL["vocab_size"]
    N = case["prompt"]
    inputs = torch.randint(0, V, (B, T), generator=gen)
    if case["head"] == LM:
        lengths = torch.full((B,), T)
        labels = torch.randint(0, V, (B, T), generator=gen)
        labels[torch.rand(B, T, generator=gen) < 0.25] = -1
        labels[0, 0] = 3
    else:
        lengths = torch.randint(max(1, T // 2), T + 1, (B,), generator=gen)
        lengths[0] = T
        if case["head"] == TAGS:
            labels = torch.randint(0, K, (B, T), generator=gen)
            labels[torch.rand(B, T, generator=gen) < 0.2] = -1
            labels[0, 0] = 1
        else:
            labels = torch.randint(0, 2 if case["head"] == BINARY else K, (B,), generator=gen)
    assert N + T <= MODEL["max_seq_len"]
    if not case["teacher"]:
        return inputs, lengths, labels, None
    rows = B * T if case["head"] in (LM, TAGS) else B
    width = MODEL["vocab_size"] if case["head"] == LM else case["K"]
    teacher = (2.0 * torch.randn(rows, width, generator=gen, dtype=torch.float64)).float()
    return inputs, lengths, labels, teacher


def adversarial_grads(params_list, p, lora, head, case, batch, prompt, x0_clean_grad):
    """The perturbed pass: r from FGM or PGD on the token rows, then the
    gradient of the loss at x_0 + r (r held fixed). Returns (grads, loss)."""
    B, T, C, N = case["B"], case["T"], MODEL["channels"], case["prompt"]
    delta = torch.zeros(B, N + T, C, dtype=torch.float64)
    g = x0_clean_grad
    steps = case["adv"]
    for k in range(1, steps + 1):
        size = case["eps"] if steps == 1 else case["adv_alpha"]
        for b in range(B):
            gb = g[b, N:]
            norm = gb.norm()
            if norm > 0:
                delta[b, N:] += size * gb / norm
            rn = delta[b, N:].norm()
            if rn > case["eps"]:
                delta[b, N:] *= case["eps"] / rn
        loss, x0 = loss_of(p, lora, head, case, batch, prompt, delta)
        if k < steps:  # PGD's next direction: dLoss/dx_0 at x_0 + r
            g = torch.autograd.grad(loss, x0, retain_graph=True)[0].detach()
    grads = torch.autograd.grad(loss, params_list, allow_unused=True)
    return grads, loss.item()


def make_case(name, case, init, outdir):
    gen = torch.Generator().manual_seed(SEED + sum(map(ord, name)))
    c, L = MODEL, MODEL["num_layers"]
    names = [n for n, _ in mf.param_shapes(c)]
    batch = make_batch(case, gen)
    # the model: one leaf a layer for the per-layer tensors (2 .. 13), so that a block can freeze
    p, model_leaves = {}, []  # model_leaves: (name, layer or None, leaf) in the flat order
    for i, n in enumerate(names):
        layers = range(L) if 2 <= i <= 13 else [None]
        leaves = []
        for l in layers:
            leaf = torch.nn.Parameter((init[n] if l is None else init[n][l]).double().clone())
            leaf.requires_grad_(trains(n, l, case["blocks"], L))
            model_leaves.append((n, l, leaf))
            leaves.append(leaf)
        p[n] = leaves if 2 <= i <= 13 else leaves[0]

    def random_leaf(shape, std):  # values a float32 holds exactly: the test starts from the same
        return torch.nn.Parameter((std * torch.randn(shape, generator=gen, dtype=torch.float64)).float().double())

    lora, lora_leaves = {}, []
    for l, mat, a_shape, b_shape in (lora_shapes(c, case["lora"]) if case["lora"] else []):
        lora[(l, mat)] = (random_leaf(a_shape, 0.3), random_leaf(b_shape, 0.3))
        lora_leaves += list(lora[(l, mat)])
    head, head_leaves = None, []
    if case["head"] != LM:
        head = (random_leaf((case["K"], c["channels"]), 0.3), random_leaf((case["K"],), 0.1))
        head_leaves = list(head)
    prompt = random_leaf((case["prompt"], c["channels"]), 0.3) if case["prompt"] else None
    prompt_leaves = [prompt] if prompt is not None else []
    initial = [x.detach().clone() for x in lora_leaves + head_leaves + prompt_leaves]

    decayed = [leaf for n, _, leaf in model_leaves if n in mf.MATRICES and leaf.requires_grad]
    plain = [leaf for n, _, leaf in model_leaves if n not in mf.MATRICES and leaf.requires_grad]
    groups = [{"params": decayed + lora_leaves + head_leaves[:1], "weight_decay": WEIGHT_DECAY},
              {"params": plain + head_leaves[1:] + prompt_leaves, "weight_decay": 0.0}]
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=LR, betas=(BETA1, BETA2), eps=EPS)
    every = [leaf for _, _, leaf in model_leaves] + lora_leaves + head_leaves + prompt_leaves
    trainable = [leaf for leaf in every if leaf.requires_grad]

    def assemble(value_of):
        """The four flat parts (model, adapters, head, prompt) of value_of(leaf), copied."""
        parts = [[leaf for _, _, leaf in model_leaves], lora_leaves, head_leaves, prompt_leaves]
        return [torch.cat([value_of(leaf).flatten() for leaf in part]).clone() if part else torch.zeros(0)
                for part in parts]

    def model_params():
        return {n: (torch.stack(list(p[n])) if isinstance(p[n], list) else p[n]) for n in names}

    losses, norms, adv_loss, grads1 = [], [], 0.0, None
    for step in range(STEPS):
        opt.zero_grad(set_to_none=True)
        mp = model_params()
        loss, x0 = loss_of(mp, lora, head, case, batch, prompt, None)
        wants = trainable + ([x0] if case["adv"] else [])
        g = torch.autograd.grad(loss, wants)
        grads = {id(leaf): gi for leaf, gi in zip(trainable, g)}
        if case["adv"]:
            mp = model_params()
            extra, perturbed = adversarial_grads(trainable, mp, lora, head, case, batch, prompt, g[-1])
            for leaf, e in zip(trainable, extra):
                if e is not None:
                    grads[id(leaf)] = grads[id(leaf)] + e
            if step == 0:
                adv_loss = perturbed
        for leaf in every:
            leaf.grad = grads.get(id(leaf), torch.zeros_like(leaf)).clone() if leaf.requires_grad else None
        if step == 0:  # frozen leaves: gradient 0
            grads1 = assemble(lambda leaf: leaf.grad if leaf.grad is not None else torch.zeros_like(leaf))
        losses.append(loss.item())
        norms.append(torch.nn.utils.clip_grad_norm_(trainable, MAX_NORM).item())
        opt.step()
    after = assemble(lambda leaf: leaf.detach())

    B, T = case["B"], case["T"]
    sizes = [t.numel() for t in after]
    header = np.zeros(32, dtype="<i4")
    header[:16] = [MAGIC, 1, case["head"], case["K"], case["lora"], case["prompt"], case["blocks"],
                   int(case["teacher"]), case["adv"], B, T, STEPS] + sizes
    hyper = np.zeros(16, dtype="<f4")
    hyper[:11] = [case["lora_alpha"], case["distill_alpha"], case["tau"], case["eps"], case["adv_alpha"],
                  LR, BETA1, BETA2, EPS, WEIGHT_DECAY, MAX_NORM]
    inputs, lengths, labels, teacher = batch
    path = os.path.join(outdir, name + ".ref")
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(hyper.tobytes())
        for ints in (inputs, lengths, labels):
            f.write(mf.i32(ints))
        if teacher is not None:
            f.write(mf.f32(teacher))
        for x in initial:
            f.write(mf.f32(x))
        f.write(mf.f32(torch.tensor(losses)))
        f.write(mf.f32(torch.tensor([adv_loss])))
        f.write(mf.f32(torch.tensor(norms)))
        for t in grads1 + after:
            f.write(mf.f32(t))
    print(f"{name:20s} loss {losses[0]:.6f} (perturbed {adv_loss:.6f}), norm {norms[0]:.6f}, "
          f"sizes {sizes} -> {path}")


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join("fixtures", "finetune")
    os.makedirs(outdir, exist_ok=True)
    torch.manual_seed(SEED)
    init = mf.init_params(MODEL)
    header = np.zeros(256, dtype="<i4")
    header[:8] = [mf.CKPT_MAGIC, 1, MODEL["max_seq_len"], MODEL["vocab_size"], MODEL["num_layers"],
                  MODEL["num_heads"], MODEL["channels"], MODEL["local_window"]]
    with open(os.path.join(outdir, "model.ckpt"), "wb") as f:
        f.write(header.tobytes())
        for n, _ in mf.param_shapes(MODEL):
            f.write(mf.f32(init[n]))
    for name, case in CASES.items():
        make_case(name, case, init, outdir)


if __name__ == "__main__":
    main()
