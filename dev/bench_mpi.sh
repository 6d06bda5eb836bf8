#!/usr/bin/env bash
# Data parallelism on this machine, side by side: 1 process x 1 thread,
# 1 x 2 threads, and 2 processes x 1 thread without and with ZeRO-1, for
# the teach and GPT-3 Small cases. Prints tokens/s (the median of the
# steps after the first two), the share of the steps spent in MPI, AdamW's
# moments and the peak resident memory per process, as train reports them.
# Needs the MPI build: make mpi. Usage: dev/bench_mpi.sh [steps]
set -eu
cd "$(dirname "$0")/.."
steps=${1:-10}
grep -q MPI_Init ./demo || { echo "dev/bench_mpi.sh: run make mpi first"; exit 1; }
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
W=$(mktemp -d /tmp/gpt3bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
./demo prepare --input README.md --out "$W/bytes" 2>/dev/null
./demo prepare --input README.md --out "$W/bpe" --encoder fixtures/gpt2/encoder.json --bpe fixtures/gpt2/vocab.bpe 2>/dev/null
echo "CPU: $(grep -m1 "model name" /proc/cpuinfo | sed "s/.*: //"), family $(grep -m1 "cpu family" /proc/cpuinfo | sed "s/.*: //") model $(grep -m1 "^model\s" /proc/cpuinfo | sed "s/.*: //")"
echo "flags: $(grep -m1 -o 'avx512f\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')cores: $(nproc)"
mpirun --version | head -n 1
printf '\n| case | run | tokens/s | communication | AdamW moments / process | peak resident / process |\n|---|---|---:|---:|---:|---:|\n'
run() { # label, case label, ranks, threads, data, more flags
    label=$1 what=$2 n=$3 threads=$4 data=$5
    shift 5
    out="$W/run"
    rm -rf "$out"
    bind=core # a process a core; one process of 2 threads needs both
    [ "$n" = 1 ] && bind=none
    mpirun --oversubscribe --bind-to "$bind" -np "$n" -x OMP_NUM_THREADS="$threads" ./demo train --data "$W/$data" --steps "$steps" \
        --eval-every 100000 --save-every 100000 --out "$out" "$@" >"$W/log" 2>&1 || { cat "$W/log"; exit 1; }
    rate=$(awk -F'\t' 'NR > 3 { print $6 }' "$out/metrics.tsv" | sort -n | awk '{ r[NR] = $1 } END { print r[int((NR + 1) / 2)] }')
    comm=$(sed -n 's/^communication: \([0-9]*%\).*/\1/p' "$W/log")
    moments=$(sed -n 's/.*AdamW moments \([0-9.]*\) MB.*/\1 MB/p' "$W/log")
    peak=$(sed -n 's/.*peak resident \([0-9.]*\) MB.*/\1 MB/p' "$W/log")
    echo "| $what | $label | $rate | ${comm:--} | $moments | $peak |"
}
for c in "teach, B 8, T 256|bytes|--model teach --batch 8 --seq 256" "GPT-3 Small, B 4, T 64|bpe|--model small --batch 4 --seq 64"; do
    IFS='|' read -r what data flags <<<"$c"
    # shellcheck disable=SC2086
    {
        run "1 process x 1 thread" "$what" 1 1 "$data" $flags
        run "1 process x 2 threads" "$what" 1 2 "$data" $flags
        run "2 processes x 1 thread" "$what" 2 1 "$data" $flags
        run "2 x 1, ZeRO-1" "$what" 2 1 "$data" $flags --zero 1
    }
done
