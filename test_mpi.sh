#!/usr/bin/env bash
# The data-parallel CLI over MPI: build it with `make mpi` (Open MPI:
# openmpi-bin, libopenmpi-dev), then ./test_mpi.sh. Two processes on two
# cores (--oversubscribe), one thread each: this checks the mechanics and
# the guarantees, not speed.
set -u
cd "$(dirname "$0")"
if ! grep -q MPI_Init ./demo 2>/dev/null; then
    echo "test_mpi.sh: ./demo is not the MPI build: run make mpi first"
    exit 1
fi
W=$(mktemp -d /tmp/gpt3mpi.XXXXXX)
trap 'rm -rf "$W"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); printf 'ok   %s\n' "$1"; }
bad() { failed=$((failed + 1)); printf 'FAIL %s\n' "$1"; }
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
RUN="timeout 120 mpirun --oversubscribe -x OMP_NUM_THREADS=1"
train() { # ranks, out folder, more flags
    n=$1 out=$2
    shift 2
    $RUN -np "$n" ./demo train --data "$W/text" --model tiny --batch 4 --steps 20 --eval-every 10 --out "$W/$out" "$@" \
        >"$W/$out.log" 2>&1
}
# the largest |difference| of two checkpoints' parameters (after the 256-int header)
cat >"$W/ckdiff.c" <<'EOF'
#include <math.h>
#include <stdio.h>
int main(int argc, char **argv) {
    FILE *f = argc == 3 ? fopen(argv[1], "rb") : NULL, *g = argc == 3 ? fopen(argv[2], "rb") : NULL;
    float x, y;
    double worst = 0;
    long n = 0;
    if (!f || !g || fseek(f, 1024, SEEK_SET) || fseek(g, 1024, SEEK_SET)) return 2;
    for (; fread(&x, 4, 1, f) == 1 && fread(&y, 4, 1, g) == 1; n++) worst = fmax(worst, fabs((double)x - y));
    printf("%.2e\n", n > 0 ? worst : 1.0);
    return 0;
}
EOF
cc -O2 -o "$W/ckdiff" "$W/ckdiff.c" -lm
within() { awk -v d="$1" -v t="$2" 'BEGIN { exit !(d + 0 <= t + 0) }'; }

./demo prepare --input fixtures/tokenizer/bench.txt --out "$W/text" 2>/dev/null # fixed text: the tolerances below were measured on it
train 2 a && train 2 b && cmp -s "$W/a/model.ckpt" "$W/b/model.ckpt" &&
    ok "mpi: 2 processes, the same seed twice: the same bits (Open MPI's reduction order is set by N and the sizes)" ||
    bad "mpi: 2 processes twice differ: $(tail -n 1 "$W/b.log")"
# The same global batch on 1 process: each rank's gradient is of its share's
# mean loss, and their mean is rounded otherwise than the mean over the whole
# batch in one pass; AdamW carries those last bits into its steps
train 1 one && d=$("$W/ckdiff" "$W/one/model.ckpt" "$W/a/model.ckpt") && within "$d" 1e-5 &&
    ok "mpi: 2 processes = 1 process on the same global batch, 20 steps: parameters within $d (tol 1e-5; rounding)" ||
    bad "mpi: 2 processes against 1: parameters differ by ${d:-?}: $(tail -n 1 "$W/one.log")"
val() { awk -F'\t' '$1 == 20 { print $3 }' "$W/$1/metrics.tsv"; }
within "$(awk -v a="$(val one)" -v b="$(val a)" 'BEGIN { d = a - b; print (d < 0 ? -d : d) + (a == "" || a == "-") }')" 1e-4 &&
    ok "mpi: the validation loss, each process its rows of every batch: $(val a) on 2, $(val one) on 1 (tol 1e-4)" ||
    bad "mpi: the validation loss on 2 processes $(val a), on 1 $(val one)"
OMP_NUM_THREADS=1 ./demo train --data "$W/text" --model tiny --batch 4 --steps 20 --eval-every 10 --out "$W/plain" \
    >"$W/plain.log" 2>&1 && cmp -s "$W/plain/model.ckpt" "$W/one/model.ckpt" &&
    ok "mpi: 1 process under mpirun = the same build started without it (MPI not started): the same bits" ||
    bad "mpi: mpirun -np 1 differs from a plain run: $(tail -n 1 "$W/plain.log")"
# resume: with the same N, the same bits; with another N, within rounding
train 2 r2 --stop-after 10 && train 2 r2 --resume && cmp -s "$W/r2/model.ckpt" "$W/a/model.ckpt" &&
    ok "mpi: stopped at step 10 and resumed on 2 processes: the same bits as a straight run" ||
    bad "mpi: resume on 2 processes differs: $(tail -n 1 "$W/r2.log")"
train 2 r1 --stop-after 10 && train 1 r1 --resume && d=$("$W/ckdiff" "$W/r1/model.ckpt" "$W/a/model.ckpt") &&
    within "$d" 1e-5 &&
    ok "mpi: saved on 2 processes, resumed on 1: within $d of the straight run on 2 (tol 1e-5)" ||
    bad "mpi: resume on another N: ${d:-?}: $(tail -n 1 "$W/r1.log")"
# ZeRO-1: each process keeps AdamW's moments for its share and updates it
# alone; each parameter's update is the same arithmetic as without shards
train 2 zero --zero 1 && cmp -s "$W/zero/model.ckpt" "$W/a/model.ckpt" &&
    cmp -s "$W/zero/model.ckpt.state" "$W/a/model.ckpt.state" &&
    ok "mpi: ZeRO-1 on 2 processes = plain data parallelism: the same bits (checkpoint and AdamW state)" ||
    bad "mpi: ZeRO-1 on 2 differs from plain: $(tail -n 1 "$W/zero.log")"
moments() { sed -n 's/.*AdamW moments \([0-9.]*\) MB.*/\1/p' "$1"; }
within "$(moments "$W/zero.log")" "$(awk -v m="$(moments "$W/a.log")" 'BEGIN { print m / 2 + 0.01 }')" &&
    ok "mpi: ZeRO-1's moments per process: $(moments "$W/zero.log") MB on 2, $(moments "$W/a.log") MB without" ||
    bad "mpi: ZeRO-1's moments per process: $(moments "$W/zero.log") MB, without $(moments "$W/a.log") MB"
train 3 zero3 --batch 6 --zero 1 && train 3 plain3 --batch 6 && cmp -s "$W/zero3/model.ckpt" "$W/plain3/model.ckpt" &&
    cmp -s "$W/zero3/model.ckpt.state" "$W/plain3/model.ckpt.state" &&
    ok "mpi: ZeRO-1 on 3 processes (shares of unequal size) = plain on 3: the same bits" ||
    bad "mpi: ZeRO-1 on 3 differs from plain: $(tail -n 1 "$W/zero3.log")"
train 2 zr --zero 1 --stop-after 10 && train 2 zr --zero 1 --resume && cmp -s "$W/zr/model.ckpt" "$W/a/model.ckpt" &&
    ok "mpi: ZeRO-1 stopped at step 10 and resumed on 2 processes: the same bits as a straight run" ||
    bad "mpi: ZeRO-1 resume on 2 differs: $(tail -n 1 "$W/zr.log")"
train 2 zx --batch 6 --zero 1 --stop-after 10 && train 3 zx --batch 6 --zero 1 --resume &&
    d=$("$W/ckdiff" "$W/zx/model.ckpt" "$W/plain3/model.ckpt") && within "$d" 1e-5 &&
    ok "mpi: ZeRO-1 saved on 2 processes, resumed on 3: within $d of the straight run on 3 (tol 1e-5)" ||
    bad "mpi: ZeRO-1 resume on another N: ${d:-?}: $(tail -n 1 "$W/zx.log")"
train 2 z2 --zero 2
grep -q "only stages 0 (off) and 1" "$W/z2.log" && ok "mpi: --zero 2 (not built): said" ||
    bad "mpi: --zero 2: $(head -n 1 "$W/z2.log")"
# the header's ZeRO-1 calls themselves (test_mpi.c): the step, the save, the gather
mpicc -O2 -Wall -Wextra -Werror -o "$W/test_mpi" test_mpi.c -lm || bad "mpi api: test_mpi.c does not compile"
for n in 2 3; do
    (cd "$W" && $RUN -np "$n" ./test_mpi) >"$W/api$n.log" 2>&1
    status=$?
    while read -r line; do
        case "$line" in "ok "*) ok "mpi api: ${line#ok }" ;; "FAIL "*) bad "mpi api: ${line#FAIL }" ;; esac
    done <"$W/api$n.log"
    [ "$status" -eq 0 ] || grep -q FAIL "$W/api$n.log" || bad "mpi api on $n processes: exit $status: $(tail -n 1 "$W/api$n.log")"
done
# faults: a clear message and the job ends
train 2 odd --batch 3
grep -q "does not divide among 2 processes" "$W/odd.log" && ok "mpi: a batch that 2 processes cannot share: said" ||
    bad "mpi: batch 3 on 2 processes: $(head -n 1 "$W/odd.log")"
./demo prepare --input gpt3.h --out "$W/other" 2>/dev/null
$RUN -np 1 ./demo train --data "$W/text" --model tiny --batch 4 --steps 5 --out "$W/mixed" : \
    -np 1 ./demo train --data "$W/other" --model tiny --batch 4 --steps 5 --out "$W/mixed" >"$W/mixed.log" 2>&1
grep -q "do not agree on the model, the flags, the data" "$W/mixed.log" &&
    ok "mpi: processes given other data: said, and the job ended" ||
    bad "mpi: other data on one process: $(head -n 1 "$W/mixed.log")"
$RUN -np 2 ./demo generate --model "$W/a/model.ckpt" --prompt x >"$W/gen.log" 2>&1
grep -q "only train runs" "$W/gen.log" && ok "mpi: another command on 2 processes: said" ||
    bad "mpi: generate on 2 processes: $(head -n 1 "$W/gen.log")"
cc -O0 -o "$W/plain_demo" demo.c -lm
$RUN -np 2 "$W/plain_demo" train --data "$W/text" --model tiny --batch 4 --steps 5 --out "$W/plainmpi" >"$W/plainmpi.log" 2>&1
[ "$(grep -c "built without MPI" "$W/plainmpi.log")" = 1 ] && [ ! -f "$W/plainmpi/model.ckpt" ] &&
    ok "mpi: the build without MPI started by mpirun on 2 processes: said once, nothing trained" ||
    bad "mpi: the plain build under mpirun: $(head -n 1 "$W/plainmpi.log")"
# a process that dies mid-run: the other must not wait for it for ever
$RUN -np 2 ./demo train --data "$W/text" --model mini --batch 4 --steps 100000 --out "$W/dead" >"$W/dead.log" 2>&1 &
job=$!
for _ in $(seq 50); do [ -f "$W/dead/metrics.tsv" ] && [ "$(wc -l <"$W/dead/metrics.tsv")" -gt 3 ] && break; sleep 0.2; done
victim=
for p in /proc/[0-9]*; do # the last of the training processes (pgrep may not be installed)
    { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -q "^./demo train --data $W/text --model mini" && victim=${p#/proc/}
done
start=$(date +%s)
[ -n "$victim" ] && kill -9 "$victim"
wait "$job"
status=$?
took=$(($(date +%s) - start))
[ -n "$victim" ] && [ "$status" -ne 0 ] && [ "$status" -ne 124 ] && [ "$took" -lt 60 ] &&
    ok "mpi: a process killed mid-run: the job ended in ${took} s (exit $status), none hung" ||
    bad "mpi: a killed process: exit $status after ${took} s (victim ${victim:-none})"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
