#!/bin/sh
# Paired comparison of two versions of gpt3.h on this machine (see ab_main.c):
#   dev/ab_compare.sh OLD.h NEW.h step small 16
#   dev/ab_compare.sh OLD.h NEW.h matmul lmhead dinp 12
#   dev/ab_compare.sh OLD.h NEW.h attention teach|dense|banded 20
#   dev/ab_compare.sh OLD.h NEW.h generate 20
# e.g. OLD.h from `git show HEAD~1:gpt3.h > /tmp/old.h`. Nothing else should
# run on the machine meanwhile. OMP_NUM_THREADS sets the threads (default all).
# For a change of a few percent, run it again with OLD and NEW swapped: on
# the teach step the side compiled first measured 1.3-1.9% faster whichever
# header it was (where each side's memory lands), and the average of the two
# orders cancels that.
set -eu
if [ $# -lt 3 ]; then
    echo "usage: $0 OLD.h NEW.h step small|teach RUNS | matmul LAYER PRODUCT RUNS | attention teach|dense|banded RUNS | generate RUNS" >&2
    exit 2
fi
old=$(realpath "$1"); new=$(realpath "$2"); shift 2
dir=$(dirname "$0"); out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flags="-O3 -march=native -fno-math-errno -fopenmp"
${CC:-gcc} $flags -c -DHEADER="\"$old\"" -D'AB(name)=old_##name' "$dir/ab_variant.c" -o "$out/old.o"
${CC:-gcc} $flags -c -DHEADER="\"$new\"" -D'AB(name)=new_##name' "$dir/ab_variant.c" -o "$out/new.o"
${CC:-gcc} $flags "$dir/ab_main.c" "$out/old.o" "$out/new.o" -o "$out/ab" -lm
"$out/ab" "$@"
