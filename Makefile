# irmae.h - build, test, demo, bench.
#   make            build examples and tests (warning-free with -Wall -Wextra -pedantic)
#   make test       run the test suite (each program exits non-zero on failure)
#   make demo       train AE vs IRMAE on synthetic shapes, print both spectra
#   make bench      benchmarks (GEMM, training throughput)
#   make fuzz       libFuzzer targets for the loaders, bounded time (needs clang)
#   make mpi        ./irmae-mpi: the CLI built with mpicc -DIRMAE_MPI (train under mpirun)
#   make bench-mpi  images/s with 1 and 2 MPI ranks
#   make test-mpi   MPI tests (SKIP without mpicc/mpirun; OpenMPI: openmpi-bin libopenmpi-dev)
# Variables: CC, CFLAGS, NO_OPENMP=1 (build without OpenMP), WERROR=1 (CI), MPICC.

CC      ?= cc
CXX     ?= c++
CFLAGS  ?= -O2
STD     ?= -std=c99
WARN     = -Wall -Wextra -pedantic
ifeq ($(WERROR),1)
WARN    += -Werror
endif
ifneq ($(NO_OPENMP),1)
OMP      = -fopenmp
endif
ALLFLAGS = $(CFLAGS) $(STD) $(WARN) $(OMP)
LDLIBS   = -lm
B        = build
PYTHON  ?= /usr/bin/python3
MPICC   ?= mpicc
MPICXX  ?= mpicxx
FUZZ_SECONDS ?= 60

TESTS    = test_gemm test_conv test_model test_analysis test_pngw test_loaders test_ckpt ckpt_kill
TEST_BINS = $(addprefix $(B)/,$(TESTS))
EXAMPLES = $(B)/shapes irmae $(B)/mnist

.PHONY: all test demo bench bench-torch fuzz clean check-cxx check-header test-asan test-neon test-valgrind mpi test-mpi bench-mpi
SHELL = /bin/bash

all: $(TEST_BINS) $(EXAMPLES)

$(B):
	mkdir -p $(B)

$(B)/%: tests/%.c irmae.h | $(B)
	$(CC) $(ALLFLAGS) $< -o $@ $(LDLIBS)

$(B)/shapes: examples/shapes.c irmae.h | $(B)
	$(CC) $(ALLFLAGS) $< -o $@ $(LDLIBS)

$(B)/mnist: examples/mnist.c irmae.h | $(B)
	$(CC) $(ALLFLAGS) $< -o $@ $(LDLIBS)

# the command-line tool (./irmae help)
irmae: examples/irmae.c irmae.h
	$(CC) $(ALLFLAGS) $< -o $@ $(LDLIBS)

# The header must compile as C++ and link from two translation units.
check-cxx: | $(B)
	$(CXX) $(CFLAGS) -x c++ $(WARN) $(OMP) -DIRMAE_IMPLEMENTATION -fsyntax-only irmae.h
	@echo "check-cxx: 1 passed, 0 failed"

check-header: | $(B)
	$(CC) $(ALLFLAGS) -c tests/tu_impl.c -o $(B)/tu_impl.o
	$(CC) $(ALLFLAGS) -c tests/tu_user.c -o $(B)/tu_user.o
	$(CC) $(ALLFLAGS) $(B)/tu_impl.o $(B)/tu_user.o -o $(B)/tu_link $(LDLIBS)
	$(B)/tu_link

test: all check-cxx check-header
	@IRMAE_PYTHON=$(PYTHON) sh tests/run.sh $(TEST_BINS) "sh tests/test_cli.sh ./irmae"

demo: $(B)/shapes
	OMP_PROC_BIND=true $(B)/shapes --out demo-out

# Benchmarks: measured FMA peak, sgemm on square sizes and on every GEMM
# shape of a training step, training img/s and MFU for 1 and 2 threads.
# With libopenblas-dev installed, OpenBLAS is measured in the same run, with
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (this machine sets them to values
# that halve OpenBLAS); without it, irmae alone. BENCH_ARGS picks sections
# (peak squares gemm train mem; default all).
BENCH_ARGS ?=
bench: | $(B)
	@if printf '#include <cblas.h>\nint main(void){return 0;}\n' | \
	    $(CC) -x c - -o $(B)/have_openblas -lopenblas 2>/dev/null; then \
	  echo "bench: OpenBLAS found, measured in the same run"; \
	  $(CC) $(CFLAGS) $(STD) $(WARN) $(OMP) -DIRMAE_BENCH_OPENBLAS bench/bench.c -o $(B)/bench -lopenblas $(LDLIBS) && \
	  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_PROC_BIND=true $(B)/bench $(BENCH_ARGS); \
	else \
	  echo "bench: no OpenBLAS (apt-get install libopenblas-dev for the ratio columns)"; \
	  $(CC) $(CFLAGS) $(STD) $(WARN) $(OMP) bench/bench.c -o $(B)/bench $(LDLIBS) && \
	  OMP_PROC_BIND=true $(B)/bench $(BENCH_ARGS); \
	fi

# The same models in PyTorch (Debian's python3-torch), in its best
# configuration on this machine (see README).
# MFU uses the FMA peak that bench.c measures (its `peak` section).
bench-torch: | $(B)
	@if $(PYTHON) -c 'import torch' 2>/dev/null; then \
	  $(CC) $(CFLAGS) $(STD) $(WARN) $(OMP) bench/bench.c -o $(B)/bench-peak $(LDLIBS) && \
	  peak=$$(OMP_PROC_BIND=true $(B)/bench-peak peak | tee /dev/stderr | \
	          sed -n 's/^peak threads=\([0-9]*\) .*gflops=\([0-9.]*\)$$/\1:\2/p' | paste -sd, -) && \
	  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS=1 \
	    GLIBC_TUNABLES=glibc.malloc.trim_threshold=4000000000:glibc.malloc.mmap_threshold=4000000000 \
	    $(PYTHON) bench/torch_peer.py --peak-gflops "$$peak"; \
	else echo "SKIP: bench-torch needs python3-torch"; fi

# Loaders and writers under AddressSanitizer + UndefinedBehaviorSanitizer.
SAN_TESTS = test_loaders test_pngw test_model test_conv
test-asan: | $(B)
	@for t in $(SAN_TESTS); do \
	  $(CC) -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
	    $(STD) $(WARN) tests/$$t.c -o $(B)/$$t-asan $(LDLIBS) || exit 1; done
	@IRMAE_PYTHON=$(PYTHON) IRMAE_FAST=1 sh tests/run.sh $(addprefix $(B)/,$(addsuffix -asan,$(SAN_TESTS)))

# A short training run under valgrind: no leaks, no invalid accesses
# (built without OpenMP: libgomp's thread pool confuses the leak checker).
test-valgrind: | $(B)
	$(CC) -O1 -g $(STD) $(WARN) tests/vg_train.c -o $(B)/vg_train $(LDLIBS)
	valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=1 \
	  $(B)/vg_train

# aarch64 (NEON) build of the kernel and model tests, run under qemu-user.
ARM_CC ?= aarch64-linux-gnu-gcc
test-neon: | $(B)
	$(ARM_CC) $(CFLAGS) $(STD) $(WARN) -static tests/test_gemm.c -o $(B)/test_gemm-arm64 -lm
	$(ARM_CC) $(CFLAGS) $(STD) $(WARN) -static tests/test_conv.c -o $(B)/test_conv-arm64 -lm
	@IRMAE_TEST_QUICK=1 sh tests/run.sh "qemu-aarch64 $(B)/test_gemm-arm64" "qemu-aarch64 $(B)/test_conv-arm64"

# libFuzzer targets (clang); each runs FUZZ_SECONDS on a seed corpus made of
# the committed test files. Without libFuzzer, fuzz_main.c replays files.
FUZZERS = png idx gzip ckpt
fuzz: | $(B)
	@for f in $(FUZZERS); do \
	  clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all tests/fuzz_$$f.c -o $(B)/fuzz_$$f -lm || exit 1; \
	  mkdir -p $(B)/corpus_$$f; cp tests/data/* $(B)/corpus_$$f/; done
	$(MAKE) $(B)/test_ckpt && IRMAE_CKPT_CORPUS=$(B)/corpus_ckpt $(B)/test_ckpt > /dev/null
	@for f in $(FUZZERS); do \
	  echo "== fuzz_$$f for $(FUZZ_SECONDS) s"; \
	  $(B)/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -print_final_stats=1 $(B)/corpus_$$f 2>&1 | \
	    grep -E "stat::number_of_executed_units|ERROR|SUMMARY|crash|leak" ; \
	  test $${PIPESTATUS[0]:-0} -eq 0 || exit 1; done

# MPI (optional): the CLI whose train runs data-parallel under mpirun, the
# library's MPI test, and the MPI block compiled as C++. Without mpicc the
# test prints SKIP.
mpi: irmae-mpi

irmae-mpi: examples/irmae.c irmae.h
	$(MPICC) $(ALLFLAGS) -DIRMAE_MPI $< -o $@ $(LDLIBS)

$(B)/test_mpi_lib: tests/test_mpi_lib.c irmae.h | $(B)
	$(MPICC) $(ALLFLAGS) $< -o $@ $(LDLIBS)

$(B)/ckpt_diff: tests/ckpt_diff.c irmae.h | $(B)
	$(CC) $(ALLFLAGS) $< -o $@ $(LDLIBS)

test-mpi: $(B)/ckpt_diff irmae
	@if command -v $(MPICC) >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory irmae-mpi $(B)/test_mpi_lib && \
	  $(MPICXX) $(CFLAGS) -x c++ $(WARN) $(OMP) -DIRMAE_MPI -DIRMAE_IMPLEMENTATION -fsyntax-only irmae.h || exit 1; fi
	@sh tests/run.sh "sh tests/test_mpi.sh"

# Data-parallel throughput with 1 and 2 ranks, one OpenMP thread each.
BENCH_MPI_STEPS ?= 20
bench-mpi: | $(B)
	$(MPICC) $(CFLAGS) $(STD) $(WARN) $(OMP) bench/bench_mpi.c -o $(B)/bench_mpi $(LDLIBS)
	@for np in 1 2; do OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
	  mpirun --oversubscribe -np $$np $(B)/bench_mpi $(BENCH_MPI_STEPS) || exit 1; done

clean:
	rm -rf $(B) demo-out irmae irmae-mpi
