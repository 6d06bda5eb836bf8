# gpt3.h - build the demo and the tests.
#   make            build demo and test_gpt3
#   make run        the main job: build the demo, train a small GPT-3 on this
#                   project's own text, show it writing (about 2 minutes)
#   make test       build and run the tests (test_gpt3, then test_cli.sh)
#   make sanitize   the same tests built with AddressSanitizer + UBSan
#   make bench      speed and memory: training, matmuls, attention, generation,
#                   tokenizer (dev/bench_compare.py: side by side with PyTorch)
#   make mpi        the CLI with MPI (mpicc): mpirun -np N ./demo train ...
#   make CC=clang   any C99 compiler works; OpenMP is used when it has it
CC ?= cc
OPT ?= -O3
WARN = -Wall -Wextra
# No fast-math optimisation, ever: it changes results and has broken
# GELU's backward in other projects. -fno-math-errno is not fast-math: sqrt
# is still correctly rounded, it only stops setting errno, which lets the
# compiler vectorise AdamW's sqrtf (about 4x faster there).
MATH = -fno-math-errno

# The host's own instruction set when the compiler can target it (the
# micro-kernel is chosen from it: AVX-512, AVX2+FMA, NEON or portable C):
# -march=native, or -mcpu=native where that is the spelling (GCC and clang
# on ARM). OpenMP: -fopenmp, or Apple clang's -Xpreprocessor -fopenmp with
# Homebrew's libomp where it is installed. Without either it still builds,
# and says what it left out.
probe = $(shell echo 'int main(void){return 0;}' | $(CC) $(1) -x c - -o /dev/null >/dev/null 2>&1 && echo yes)
NATIVE := $(if $(call probe,-march=native),-march=native,$(if $(call probe,-mcpu=native),-mcpu=native,))
LIBOMP := $(firstword $(wildcard /opt/homebrew/opt/libomp /usr/local/opt/libomp))
OPENMP := $(if $(call probe,-fopenmp),-fopenmp,$(if $(and $(LIBOMP),$(call probe,-Xpreprocessor -fopenmp -I$(LIBOMP)/include -L$(LIBOMP)/lib -lomp)),-Xpreprocessor -fopenmp -I$(LIBOMP)/include -L$(LIBOMP)/lib -lomp,))
ifeq ($(NATIVE),)
$(info gpt3.h: $(CC) takes neither -march=native nor -mcpu=native: built for its default CPU (x86-64: the portable micro-kernel; AArch64: NEON))
endif
ifeq ($(OPENMP),)
$(info gpt3.h: $(CC) has no OpenMP (on macOS: brew install libomp): built for one thread)
endif
CFLAGS ?= $(OPT) $(NATIVE)
ALL_CFLAGS = $(CFLAGS) $(MATH) $(WARN) $(OPENMP) $(EXTRA_CFLAGS)
LDLIBS = -lm

SAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all

.PHONY: all test sanitize run bench clean mpi

all: demo test_gpt3

demo: demo.c gpt3.h
	$(CC) $(ALL_CFLAGS) -o $@ demo.c $(LDLIBS)
	@echo "built ./demo: 'make run' (or ./demo) runs the main job, ./demo help lists the commands"

test_gpt3: test_gpt3.c gpt3.h
	$(CC) $(ALL_CFLAGS) -o $@ test_gpt3.c $(LDLIBS)

test: test_gpt3 demo
	./test_gpt3
	./test_cli.sh

test_gpt3_sanitize: test_gpt3.c gpt3.h
	$(CC) $(SAN_FLAGS) $(WARN) $(OPENMP) $(EXTRA_CFLAGS) -o $@ test_gpt3.c $(LDLIBS)

demo_sanitize: demo.c gpt3.h
	$(CC) $(SAN_FLAGS) $(WARN) $(OPENMP) $(EXTRA_CFLAGS) -o $@ demo.c $(LDLIBS)

sanitize: test_gpt3_sanitize demo_sanitize
	./test_gpt3_sanitize
	DEMO=./demo_sanitize QUICK=1 ./test_cli.sh

# The CLI with data parallelism over MPI (Open MPI: apt install openmpi-bin
# libopenmpi-dev): mpirun -np N ./demo train ...; test_mpi.sh tests it.
MPICC ?= mpicc
mpi: demo.c gpt3.h
	$(MPICC) $(ALL_CFLAGS) -DGPT3_MPI -o demo demo.c $(LDLIBS)
	@echo "built ./demo with MPI: mpirun -np N ./demo train --batch B ... (N divides B)"

run: demo
	./demo

bench: demo
	./demo bench

clean:
	rm -f demo test_gpt3 test_gpt3_sanitize demo_sanitize test_gpt3_arm64 *.o test_*.ckpt test_*.tmp
