#!/usr/bin/env bash
# fault_sweep.sh - every allocation, or every write, of the CLI's commands
# made to fail in turn, under AddressSanitizer and UBSan.
#
#   dev/fault_sweep.sh [--writes | --both] [--max N] [--offset K] [COMMAND_NAME ...]
#
# Builds demo.c with dev/fault_inject.h and the sanitizers, makes small
# inputs in a temporary folder, and runs each command below once to count
# its allocations (with --writes: its writes to files; --both: both), then
# once per allocation k with FAULT_ALLOC_FAIL=k (FAULT_WRITE_FAIL=k), at
# most --max runs a command (default 400), spread evenly: every step-th,
# from the (1 + K mod step)-th (--offset K, default 0; CI gives each
# commit its own K, so that its samples differ). Each run must:
#   - end without a sanitizer report (memory errors, undefined behaviour,
#     leaks) and without a signal;
#   - when its failure was reached: for an allocation, exit non-zero saying
#     "out of memory", or exit 0 (an allocation it can do without); for a
#     write, say what failed (a line that starts with "demo"), whatever
#     its exit status;
#   - leave no temporary file (*.tmp, *.new) behind (but the checkpoint
#     of a save that failed after its commit point, which it names);
#   - where the command continues a run (resume), leave a checkpoint that
#     loads: the last save, or the new one.
# Prints a line per command, and each place whose failure broke a rule
# once; exits non-zero if any run broke one.
set -uo pipefail
cd "$(dirname "$0")/.."
KINDS=ALLOC
MAX=400
OFFSET=0
while [ $# -gt 0 ]; do
    case $1 in
        --writes) KINDS=WRITE; shift ;;
        --both) KINDS="ALLOC WRITE"; shift ;;
        --max) MAX=$2; shift 2 ;;
        --offset) OFFSET=$2; shift 2 ;;
        *) break ;;
    esac
done
ONLY=" $* "
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
DEMO=$W/demo_fault
cc -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
    -Wall -Wextra -fopenmp -include dev/fault_inject.h -o "$DEMO" demo.c -lm || exit 1
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 OMP_NUM_THREADS=2
export FAULT_STACK=1 # a broken run shows where its call failed

D=data/finetune
ENC=fixtures/gpt2/encoder.json BPE=fixtures/gpt2/vocab.bpe
head -c 20000 fixtures/tokenizer/bench.txt >"$W/text.txt"
$DEMO prepare --input "$W/text.txt" --out "$W/text" 2>/dev/null
$DEMO bpe-train --input "$W/text.txt" --vocab-size 300 --out "$W/bpe" 2>/dev/null
$DEMO prepare --input "$W/text.txt" --out "$W/bpetext" --encoder "$W/bpe/encoder.json" --bpe "$W/bpe/vocab.bpe" 2>/dev/null
$DEMO train --data "$W/text" --model tiny --batch 2 --seq 32 --steps 2 --out "$W/run0" >/dev/null 2>&1
head -n 40 $D/sentiment.train.tsv >"$W/s.tsv"
head -n 120 $D/ner.dev.conll >"$W/n.conll"
head -n 30 $D/qa.dev.tsv >"$W/q.tsv"
$DEMO finetune --task classify --init tiny --context 64 --epochs 1 --batch 8 --train "$W/s.tsv" \
    --dev "$W/s.tsv" --test "$W/s.tsv" --out "$W/ft" >/dev/null 2>&1
$DEMO finetune --task ner --init tiny --context 64 --epochs 2 --batch 8 --train "$W/n.conll" --dev "$W/n.conll" \
    --test "$W/n.conll" --lora-rank 2 --out "$W/ftstop0" --stop-after 2 >/dev/null 2>&1
echo "Hello, world! It's 2026." >"$W/hello.txt"
$DEMO encode --encoder $ENC --bpe $BPE <"$W/hello.txt" >"$W/hello.ids" 2>/dev/null
FT="finetune --init tiny --context 64 --epochs 1 --batch 8 --out $W/out"

# name | command line: $W is the scratch folder, outputs go to $W/out, and
# $W/run is a saved run (2 steps) put back before each run, as is
# $W/ftrun, a fine-tuning run stopped at step 2 of its first epoch
COMMANDS=(
"prepare|prepare --input $W/text.txt --out $W/out/p"
"prepare-bpe|prepare --input $W/text.txt --out $W/out/p --encoder $W/bpe/encoder.json --bpe $W/bpe/vocab.bpe"
"bpe-train|bpe-train --input $W/text.txt --vocab-size 290 --out $W/out"
"encode|encode --encoder $ENC --bpe $BPE <$W/text.txt"
"decode|decode --encoder $ENC --bpe $BPE <$W/hello.ids"
"train|train --data $W/text --model tiny --batch 2 --seq 32 --steps 2 --eval-every 1 --eval-batches 1 --out $W/out"
"train-bpe|train --data $W/bpetext --model tiny --batch 2 --seq 32 --steps 1 --out $W/out/bperun"
"resume|train --data $W/text --model tiny --batch 2 --seq 32 --steps 4 --save-every 1 --out $W/run --resume"
"generate|generate --model $W/run/model.ckpt --prompt Hello --max-tokens 4"
"finetune|$FT --task classify --train $W/s.tsv --dev $W/s.tsv --test $W/s.tsv"
"finetune-ner|$FT --task ner --train $W/n.conll --dev $W/n.conll --test $W/n.conll"
"finetune-gen|$FT --task generate --train $W/q.tsv --dev $W/q.tsv --test $W/q.tsv"
"finetune-lora|$FT --task classify --train $W/s.tsv --dev $W/s.tsv --test $W/s.tsv --lora-rank 4 --trainable head --augment 0.3"
"finetune-prompt|$FT --task generate --train $W/q.tsv --dev $W/q.tsv --test $W/q.tsv --prompt-tuning 8 --prompt-init Answer:"
"finetune-pgd|$FT --task ner --train $W/n.conll --dev $W/n.conll --test $W/n.conll --adversarial pgd --adv-steps 2 --trainable top:1"
"finetune-resume|finetune --task ner --init tiny --context 64 --epochs 2 --batch 8 --train $W/n.conll --dev $W/n.conll --test $W/n.conll --lora-rank 2 --out $W/ftrun --resume"
"finetune-distill|$FT --task classify --train $W/s.tsv --dev $W/s.tsv --test $W/s.tsv --teacher $W/ft/model.ckpt --adversarial fgm"
"predict|predict --model $W/ft/model.ckpt --input $W/s.tsv --report $W/out/r.txt"
"eval|eval --model fixtures/eval_tiny/model.ckpt --task fixtures/eval_tiny/mc.jsonl --train fixtures/eval_tiny/mc_train.jsonl --shots 0,1 --details $W/out/d.jsonl --plot $W/out/eval.svg"
"attention|attention --model fixtures/dense.ckpt --text 0112340112340112 --out $W/out/a.svg --dump $W/out/a.tsv"
"convert|convert fixtures/hf_tiny $W/out/c.ckpt"
)

# Put the scratch outputs and the saved run back as they were.
fresh() { rm -rf "$W/out" "$W/run" "$W/ftrun"; mkdir -p "$W/out"; cp -r "$W/run0" "$W/run"; cp -r "$W/ftstop0" "$W/ftrun"; }

# Run command line `line` (named name) once per allocation or write
# (KIND ALLOC or WRITE), at most MAX times; adds to failures.
sweep() {
    local name=$1 line=$2 KIND=$3 what=allocation counts allocations writes total step k rc why said left site
    local runs=0 broke=0 recovered=0
    [ $KIND = WRITE ] && what=write
    fresh
    counts=$(FAULT_COUNT=1 bash -c "$DEMO $line" 2>&1 >/dev/null | grep "^fault_inject: .* allocations, .* writes$" | tail -n 1)
    if [ -z "$counts" ]; then echo "$name: does not run without a fault"; failures=$((failures + 1)); return; fi
    read -r _ allocations _ writes _ <<<"$counts"
    total=$allocations; [ $KIND = WRITE ] && total=$writes
    step=$(( (total + MAX - 1) / MAX )); [ $step -lt 1 ] && step=1
    for ((k = 1 + OFFSET % step; k <= total; k += step)); do
        fresh
        env FAULT_${KIND}_FAIL=$k bash -c "$DEMO $line" >/dev/null 2>"$W/err"
        rc=$?
        runs=$((runs + 1))
        why=""
        if grep -q "Sanitizer\|runtime error" "$W/err"; then why="sanitizer report"
        elif [ $rc -ge 128 ]; then why="signal $((rc - 128))"
        elif grep -q "^fault_inject: .* $k failed" "$W/err"; then
            said=$(grep -c "^demo" "$W/err")
            if [ $KIND = WRITE ] && [ "$said" = 0 ]; then why="exit $rc without saying what failed"
            elif [ $KIND = ALLOC ] && [ $rc != 0 ] && ! grep -q -i "out of memory" "$W/err"; then
                why="exit $rc without saying out of memory"
            fi
            [ $rc = 0 ] && recovered=$((recovered + 1))
        fi
        # (a save that failed after its commit point leaves its checkpoint
        # in model.ckpt.tmp, and says so: --resume puts it in place)
        left=$(find "$W/out" "$W/run" "$W/ftrun" -name '*.tmp' -o -name '*.new' 2>/dev/null | head -n 1)
        [[ "$left" == */model.ckpt.tmp ]] && grep -q -- "--resume puts it there" "$W/err" && left=""
        [ -z "$why" ] && [ -n "$left" ] && why="left $(basename "$left")"
        if [ -z "$why" ] && [ $name = resume ] &&
            ! $DEMO generate --model "$W/run/model.ckpt" --prompt a --max-tokens 1 >/dev/null 2>&1; then
            why="the run's checkpoint does not load"
        fi
        if [ -n "$why" ]; then
            broke=$((broke + 1))
            # the failed call's caller: one report for each place
            site=$(grep -m 1 -E "^ +#3 " "$W/err" | sed 's/.* in //')
            if [[ "$seen" != *"|$site|"* ]]; then
                seen="$seen|$site|"
                echo "  $name, $what $k: $why"
                { grep -E -m 3 "^ +#[3-5] " "$W/err"; grep -E "^demo|Sanitizer|runtime error" "$W/err" | head -n 8; } |
                    sed 's/^ */    /'
            fi
        fi
    done
    echo "$name: $total ${what}s, $runs runs, $broke broke a rule, $recovered carried on (exit 0)"
    failures=$((failures + broke))
}

failures=0 seen=""
for entry in "${COMMANDS[@]}"; do
    name=${entry%%|*} line=${entry#*|}
    [ "$ONLY" != "  " ] && [[ "$ONLY" != *" $name "* ]] && continue
    for kind in $KINDS; do sweep "$name" "$line" $kind; done
done
[ $failures = 0 ] && echo "fault sweep: all runs kept the rules" || echo "fault sweep: $failures runs broke a rule"
[ $failures = 0 ]
