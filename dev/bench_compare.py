#!/usr/bin/python3
"""bench_compare.py: gpt3.h's `./demo bench` side by side with the same cases in PyTorch.

    /usr/bin/python3 dev/bench_compare.py [--threads N] [--runs R] [--markdown]

(any directory: the script works from the repo root, the parent of dev/). Use a
python that has torch; the PyTorch cases run under the same interpreter unless
--python says otherwise. It:

 1. runs `./demo bench --tsv --threads N [--runs R]` (after `make demo` if
    ./demo is missing) and reads its "case<TAB>metric<TAB>value" lines;
    --demo-tsv FILE reads a saved copy of that output instead, --demo BIN
    times another build (AVX2's on an AVX-512 machine: one compiled with
    -march=native -mno-avx512f; then --coretype HASWELL gives PyTorch's
    OpenBLAS its AVX2 kernels too);
 2. runs dev/bench_torch.py once per case per environment, each in its own
    process (so each peak RSS is one case's), with OMP_NUM_THREADS=N and
    --threads N, in two environments:
      as installed: OPENBLAS_CORETYPE, OMP_WAIT_POLICY, MALLOC_TRIM_THRESHOLD_
                    and MALLOC_MMAP_THRESHOLD_ removed;
      tuned:        OPENBLAS_CORETYPE=SKYLAKEX (when the CPU has avx512f),
                    OMP_WAIT_POLICY=PASSIVE, MALLOC_TRIM_THRESHOLD_=16 GiB and
                    MALLOC_MMAP_THRESHOLD_=4 GiB (big tensors stay on the heap
                    instead of being mmap'd, page-faulted and unmapped on every
                    use; checked below that glibc takes the value);
 3. runs `node dev/bench_tiktoken.mjs` when node and dev/node_modules/tiktoken
    are there (OpenAI's tokenizer on the same text);
 4. prints the table: for every (case, metric) both sides have, gpt3.h's
    value, torch as installed, torch tuned, and gpt3.h against tuned torch as
    a factor where > 1 means gpt3.h is better (times and peak RSS:
    torch / gpt3.h; tokens/s and MB/s: gpt3.h / torch); then the measured
    machine peak and bandwidth, and the figures only gpt3.h reports.

--markdown prints Markdown tables to paste into README.md. --cases a,b limits
the PyTorch cases (dev/bench_torch.py --list names them). Progress goes to
stderr, the report to stdout.
"""

import argparse
import datetime
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_TORCH = os.path.join(REPO, "dev", "bench_torch.py")
BENCH_TIKTOKEN = os.path.join(REPO, "dev", "bench_tiktoken.mjs")

TUNING_VARS = ("OPENBLAS_CORETYPE", "OMP_WAIT_POLICY", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")
MMAP_THRESHOLD = 4 << 30
MMAP_THRESHOLD_CAPPED = 32 << 20  # glibc's mallopt() limit on 64-bit, if the env value is refused

# metrics where less is better; every other compared metric is a rate
LOWER_IS_BETTER = {"ms_per_step", "dense_ms", "banded_ms", "ratio", "peak_rss_mb", "prefill_ms"}
COMPARED = LOWER_IS_BETTER | {"tokens_per_s"}
MACHINE_ROWS = [("peak", "gflops_1thread"), ("peak", "gflops_all"), ("bandwidth", "gb_s")]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def parse_tsv(text):
    """{(case, metric): value} from "case<TAB>metric<TAB>value" lines, in order;
    lines without exactly three fields or with a non-number value are skipped"""
    out = {}
    for line in text.splitlines():
        f = line.rstrip("\r").split("\t")
        if len(f) != 3:
            continue
        try:
            out[(f[0], f[1])] = float(f[2])
        except ValueError:
            continue
    return out


def cpu_info():
    model, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                key = key.strip()
                if key == "model name" and model == "unknown CPU":
                    model = val.strip()
                elif key == "flags" and not flags:
                    flags = set(val.split())
    except OSError:
        pass
    return model, flags


# ---------------------------------------------------------------------------
# running the two sides

def run_demo(threads, runs, demo="./demo"):
    if demo == "./demo" and not os.path.exists("./demo"):
        log("bench_compare: ./demo missing, running make demo")
        subprocess.run(["make", "demo"], check=True, stdout=sys.stderr)
    cmd = [demo, "bench", "--tsv", "--threads", str(threads)]
    if runs:
        cmd += ["--runs", str(runs)]
    log("bench_compare: " + " ".join(cmd))
    p = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)  # its stderr: straight through
    if p.returncode != 0:
        log(f"bench_compare: ./demo bench failed (exit {p.returncode}); gpt3.h's column stays empty")
    return parse_tsv(p.stdout)


def torch_envs(threads, flags, coretype=None):
    """(as installed, tuned) environments for dev/bench_torch.py, and the MMAP note;
    coretype: OpenBLAS's kernel set for both (HASWELL: AVX2, as on a CPU without AVX-512)"""
    base = {k: v for k, v in os.environ.items() if k not in TUNING_VARS}
    if coretype:
        base["OPENBLAS_CORETYPE"] = coretype
    base["OMP_NUM_THREADS"] = str(threads)
    base["OPENBLAS_VERBOSE"] = "2"  # OpenBLAS names the kernel set it picked on stderr
    tuned = dict(base, OMP_WAIT_POLICY="PASSIVE", MALLOC_TRIM_THRESHOLD_=str(16 << 30),
                 MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD))
    if "avx512f" in flags and not coretype:
        tuned["OPENBLAS_CORETYPE"] = "SKYLAKEX"
    # glibc ignores an M_MMAP_THRESHOLD it thinks too big (mallopt caps it at
    # 32 MiB on 64-bit); check that a 64 MiB malloc really comes from the heap.
    taken = mmap_threshold_taken(tuned)
    note = f"MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD}: " + {True: "taken by glibc (64 MiB malloc from the heap)",
                                                           False: "refused by glibc", None: "not checked"}[taken]
    if taken is False:
        tuned["MALLOC_MMAP_THRESHOLD_"] = str(MMAP_THRESHOLD_CAPPED)
        note += f", using {MMAP_THRESHOLD_CAPPED}"
    return base, tuned, note


PROBE = r"""
import ctypes
libc = ctypes.CDLL("libc.so.6")
class M(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc.mallinfo2.restype = M
libc.malloc.restype = ctypes.c_void_p
before = libc.mallinfo2().hblkhd
p = libc.malloc(64 << 20)
print("heap" if libc.mallinfo2().hblkhd == before else "mmap")
libc.free(ctypes.c_void_p(p))
"""


def mmap_threshold_taken(env):
    try:
        p = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"heap": True, "mmap": False}.get(p.stdout.strip())


def run_torch(python, case, threads, runs, env, label):
    """one case in its own process: ({(case, metric): value}, OpenBLAS core name or None)"""
    cmd = [python, BENCH_TORCH, "--case", case, "--threads", str(threads)]
    if runs:
        cmd += ["--runs", str(runs)]
    log(f"bench_compare: torch {label}: {case}")
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    core = None
    for line in p.stderr:  # stdout is a few lines: no risk of its pipe filling meanwhile
        if line.startswith("Core: "):
            core = line[6:].strip()
        else:
            log(f"  [{label}] {line.rstrip()}")
    out = p.stdout.read()
    if p.wait() != 0:
        log(f"bench_compare: torch {label} {case} failed (exit {p.returncode})")
    return parse_tsv(out), core


def run_tiktoken():
    if not shutil.which("node") or not os.path.isdir(os.path.join(REPO, "dev", "node_modules", "tiktoken")):
        log("bench_compare: no node or no dev/node_modules/tiktoken: tiktoken skipped (cd dev && npm ci)")
        return {}
    log("bench_compare: node dev/bench_tiktoken.mjs")
    p = subprocess.run(["node", BENCH_TIKTOKEN], stdout=subprocess.PIPE, text=True)
    return parse_tsv(p.stdout)


def torch_version(python):
    p = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], capture_output=True, text=True)
    return p.stdout.strip() or "not importable"


# ---------------------------------------------------------------------------
# the report

def fmt(v):
    if v is None:
        return "-"
    a = abs(v)
    if v == int(v) and a < 1e9:
        return str(int(v))
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def factor(metric, ours, theirs):
    """> 1 means gpt3.h is better"""
    if ours is None or theirs is None or ours <= 0 or theirs <= 0:
        return "-"
    r = theirs / ours if metric in LOWER_IS_BETTER else ours / theirs
    return f"{r:.2f}x"


def table(headers, rows, markdown):
    """rows of strings; the first two columns are left-aligned, the rest right"""
    if not rows:
        return []
    if markdown:
        lines = ["| " + " | ".join(headers) + " |",
                 "|" + "|".join("---" if i < 2 else "---:" for i in range(len(headers))) + "|"]
        return lines + ["| " + " | ".join(r) + " |" for r in rows]
    w = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    cell = lambda i, x: x.ljust(w[i]) if i < 2 else x.rjust(w[i])  # noqa: E731
    lines = ["  ".join(cell(i, h) for i, h in enumerate(headers)).rstrip()]
    lines.append("  ".join("-" * n for n in w))
    return lines + ["  ".join(cell(i, x) for i, x in enumerate(r)).rstrip() for r in rows]


def report(demo, installed, tuned, tik, info, all_cases, markdown):
    out = []

    def section(title, lines):
        if lines:
            out.extend(["", f"**{title}**" if markdown else title, ""] + lines)

    for k, v in info:
        out.append(f"- {k}: {v}" if markdown else f"{k}: {v}")

    torch_keys = list(dict.fromkeys(list(installed) + list(tuned)))
    both = [k for k in torch_keys if k in demo]
    rows = [[c, m, fmt(demo[(c, m)]), fmt(installed.get((c, m))), fmt(tuned.get((c, m))),
             factor(m, demo[(c, m)], tuned.get((c, m)))] for c, m in both]
    section("gpt3.h vs PyTorch (factor > 1: gpt3.h is better; times and memory torch/gpt3.h, rates gpt3.h/torch)",
            table(["case", "metric", "gpt3.h", "torch as installed", "torch tuned", "gpt3.h vs tuned torch"],
                  rows, markdown))

    tt = tik.get(("tokenizer", "tiktoken_mb_per_s"))
    rows = [["tokenizer", m, fmt(v), fmt(tt), factor(m, v, tt)]
            for (c, m), v in demo.items() if c == "tokenizer" and m.startswith("mb_per_s")]
    if not rows and tt is not None:
        rows = [["tokenizer", "mb_per_s", "-", fmt(tt), "-"]]
    section("tokenizer vs OpenAI tiktoken (r50k_base, npm WASM build), MB/s",
            table(["case", "metric", "gpt3.h", "tiktoken", "gpt3.h vs tiktoken"], rows, markdown))

    rows = [[c, m, fmt(demo[(c, m)])] for c, m in MACHINE_ROWS if (c, m) in demo]
    section("the machine, as ./demo bench measured it",
            table(["case", "metric", "value"], rows, markdown))
    threads, one, every = (demo.get(("peak", k)) for k in ("threads", "gflops_1thread", "gflops_all"))
    if threads and one and every and threads > 1 and every < 0.75 * threads * one:
        out.extend(["", f"warning: {threads:.0f} threads reached {every / one:.1f}x one thread's peak: the cores "
                        "were busy with other work, so this run's figures are not comparable to others"])

    shown = set(both) | set(MACHINE_ROWS) | {k for k in demo if k[0] == "tokenizer" and k[1].startswith("mb_per_s")}
    # with --cases, the skipped cases' comparable figures are left out, not called gpt3.h-only
    skipped = {c for c, _ in demo} & set(all_cases) - {c for c, _ in torch_keys}
    rows = [[c, m, fmt(v)] for (c, m), v in demo.items()
            if (c, m) not in shown and not (c in skipped and m in COMPARED)]
    section("gpt3.h only (gflops, peak_pct: % of the measured FMA peak; gb_s, bound_pct: "
            "weight bytes read per second and % of the bandwidth bound)",
            table(["case", "metric", "gpt3.h"], rows, markdown))

    rows = [[c, m, fmt(installed.get((c, m))), fmt(tuned.get((c, m)))] for c, m in torch_keys if (c, m) not in demo]
    section("PyTorch only", table(["case", "metric", "torch as installed", "torch tuned"], rows, markdown))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--runs", type=int, default=None, help="timed runs per case (default: each side's own)")
    ap.add_argument("--markdown", action="store_true", help="Markdown tables for README.md")
    ap.add_argument("--demo", default="./demo", help="the demo binary to time (e.g. one built with -mno-avx512f)")
    ap.add_argument("--coretype", help="OPENBLAS_CORETYPE for both PyTorch runs (HASWELL: its AVX2 kernels)")
    ap.add_argument("--demo-tsv", metavar="FILE", help="read ./demo bench --tsv output from FILE instead of running it")
    ap.add_argument("--cases", help="comma-separated PyTorch cases to run (default: all)")
    ap.add_argument("--python", default=sys.executable, help="interpreter with torch for dev/bench_torch.py")
    ap.add_argument("--no-tiktoken", action="store_true", help="skip node dev/bench_tiktoken.mjs")
    a = ap.parse_args()
    os.chdir(REPO)

    model, flags = cpu_info()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    if a.demo_tsv:
        with open(a.demo_tsv) as f:
            demo = parse_tsv(f.read())
    else:
        demo = run_demo(a.threads, a.runs, a.demo)

    all_cases = cases = subprocess.run([a.python, BENCH_TORCH, "--list"], capture_output=True, text=True,
                           check=True).stdout.split()
    if a.cases:
        wanted = a.cases.split(",")
        unknown = [c for c in wanted if c not in cases]
        if unknown:
            ap.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(cases)}")
        cases = [c for c in cases if c in wanted]
    env_installed, env_tuned, mmap_note = torch_envs(a.threads, flags, a.coretype)
    installed, tuned, cores = {}, {}, {}
    for case in cases:
        for label, env, into in (("as installed", env_installed, installed), ("tuned", env_tuned, tuned)):
            got, core = run_torch(a.python, case, a.threads, a.runs, env, label)
            into.update(got)
            if core:
                cores[label] = core

    tik = {} if a.no_tiktoken else run_tiktoken()

    tuned_vars = " ".join(f"{k}={env_tuned[k]}" for k in TUNING_VARS if k in env_tuned)
    info = [("date", started),
            ("CPU", f"{model}, {os.cpu_count()} logical CPUs"),
            ("threads", a.threads),
            ("torch", f"{torch_version(a.python)} ({a.python}); OpenBLAS kernels: as installed "
                      f"{cores.get('as installed', '?')}, tuned {cores.get('tuned', '?')}"),
            ("torch tuned environment", tuned_vars),
            ("inherited by both", " ".join(f"{k}={v}" for k, v in sorted(env_installed.items())
                                           if k.startswith(("OPENBLAS_", "OMP_", "GOMP_", "MALLOC_", "KMP_"))
                                           and k not in ("OPENBLAS_VERBOSE", "OMP_NUM_THREADS")) or "-"),
            ("glibc check", mmap_note),
            ("gpt3.h", f"from {a.demo_tsv}" if a.demo_tsv else "./demo bench --tsv"),
            ("runs", a.runs if a.runs else "each side's default")]
    print("\n".join(report(demo, installed, tuned, tik, info, all_cases, a.markdown)))


if __name__ == "__main__":
    main()
