# irmae.h - build, test, demo, bench.
#   make            build examples and tests (warning-free with -Wall -Wextra -pedantic)
#   make test       run the test suite (each program exits non-zero on failure)
#   make demo       train AE vs IRMAE on synthetic shapes, print both spectra
#   make bench      benchmarks (GEMM, training throughput)
#   make fuzz       libFuzzer targets for the loaders, bounded time (needs clang)
#   make mpi        ./irmae-mpi: the CLI built with mpicc -DIRMAE_MPI (train under mpirun)
#   make bench-mpi  images/s with 1 and 2 MPI ranks
#   make test-mpi   MPI tests (SKIP without mpicc/mpirun; OpenMPI: openmpi-bin libopenmpi-dev)
#   make install PREFIX=/usr/local [DESTDIR=]   irmae.h + irmae.pc; make uninstall
#   make test-windows / test-s390x / test-neon   cross builds run under wine / qemu
#   make test-install  pkg-config, CMake add_subdirectory and FetchContent users
#   make test-options  IRMAE_STATIC, IRMAE_NO_SIMD, no OpenMP, GNU C / C++ modes, custom allocator, 2 TUs,
#                      the parts left out (IRMAE_NO_CODECS / _ANALYSIS / _CHECKPOINTS ...)
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
EXAMPLES = $(B)/shapes irmae $(B)/mnist $(B)/step

.PHONY: all test demo bench bench-torch fuzz clean check-cxx check-header test-asan test-neon test-valgrind \
        install uninstall test-install test-windows test-s390x test-s390x-1 test-s390x-2 test-options mpi test-mpi bench-mpi
SHELL = /bin/bash

all: $(TEST_BINS) $(EXAMPLES)

$(B):
	mkdir -p $(B)

$(B)/%: tests/%.c irmae.h tests/paths.h tests/micro.h | $(B)
	$(CC) $(ALLFLAGS) $< -o $@ $(LDLIBS)

$(B)/shapes: examples/shapes.c irmae.h | $(B)
	$(CC) $(ALLFLAGS) $< -o $@ $(LDLIBS)

$(B)/mnist: examples/mnist.c irmae.h | $(B)
	$(CC) $(ALLFLAGS) $< -o $@ $(LDLIBS)

# times one training step (bench/step.c: comparing two versions of irmae.h)
$(B)/step: bench/step.c irmae.h | $(B)
	$(CC) $(ALLFLAGS) -I. $< -o $@ $(LDLIBS)

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
	@IRMAE_PYTHON=$(PYTHON) sh tests/run.sh $(TEST_BINS) "sh tests/test_cli.sh ./irmae" \
	  "sh tests/test_snippets.sh $(CC) $(ALLFLAGS)"

demo: $(B)/shapes
	OMP_PROC_BIND=true $(B)/shapes --out demo-out

# Benchmarks: measured FMA peak, sgemm on square sizes and on every GEMM
# shape of a training step, training img/s and MFU for 1 and 2 threads.
# With libopenblas-dev installed, OpenBLAS is measured in the same run, with
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (some machines set them to values
# that halve OpenBLAS), except where OpenBLAS does not know the CPU model and
# would run generic SSE3 kernels: bench/openblas_core.sh then names the core
# for the CPU's instructions (OPENBLAS_CORE=detect|NAME overrides); without
# OpenBLAS, irmae alone. BENCH_ARGS picks sections
# (peak squares gemm train mem; default all).
BENCH_ARGS ?=
# the environment both benchmarks run OpenBLAS in (openblas_core.sh prints
# OPENBLAS_CORETYPE=NAME, or nothing where OpenBLAS knows the CPU)
BLAS_ENV = env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $$(sh bench/openblas_core.sh $(B) $(CC))
bench: | $(B)
	@if printf '#include <cblas.h>\nint main(void){return 0;}\n' | \
	    $(CC) -x c - -o $(B)/have_openblas -lopenblas 2>/dev/null; then \
	  echo "bench: OpenBLAS found, measured in the same run"; \
	  $(CC) $(CFLAGS) $(STD) $(WARN) $(OMP) -DIRMAE_BENCH_OPENBLAS bench/bench.c -o $(B)/bench -lopenblas $(LDLIBS) && \
	  $(BLAS_ENV) OMP_PROC_BIND=true $(B)/bench $(BENCH_ARGS); \
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
	  ldconfig -p 2>/dev/null | grep -q libopenblas || \
	    echo "bench-torch: note: no OpenBLAS found (apt-get install libopenblas-dev): Debian's PyTorch then uses the reference BLAS, ~10x slower"; \
	  $(CC) $(CFLAGS) $(STD) $(WARN) $(OMP) bench/bench.c -o $(B)/bench-peak $(LDLIBS) && \
	  OMP_PROC_BIND=true $(B)/bench-peak peak > $(B)/bench-peak.txt && cat $(B)/bench-peak.txt && \
	  peak=$$(sed -n 's/^peak threads=\([0-9]*\) .*gflops=\([0-9.]*\)$$/\1:\2/p' $(B)/bench-peak.txt | paste -sd, -) && \
	  $(BLAS_ENV) OPENBLAS_NUM_THREADS=1 \
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

# Cross builds (static, no OpenMP) run under an emulator. Every test program
# runs, with IRMAE_TEST_QUICK=1 (smaller sizes where a test allows it);
# IRMAE_TEST_EXEC tells the tests that re-execute themselves (test_ckpt,
# ckpt_kill) to go through the emulator. test_cli.sh drives a native binary
# through a shell script and is reported as skipped.
CROSS_TESTS = $(TESTS)
CROSS_FLAGS = $(CFLAGS) $(STD) $(WARN) -static
CLI_SKIP = "sh tests/skip.sh test_cli"

# aarch64 (NEON) under qemu-user.
ARM_CC ?= aarch64-linux-gnu-gcc
$(B)/arm64/%: tests/%.c irmae.h tests/paths.h
	@mkdir -p $(@D)
	$(ARM_CC) $(CROSS_FLAGS) $< -o $@ -lm
test-neon: $(addprefix $(B)/arm64/,$(CROSS_TESTS))
	@IRMAE_TEST_QUICK=1 IRMAE_TEST_EXEC=qemu-aarch64 IRMAE_PYTHON=$(PYTHON) sh tests/run.sh \
	  $(foreach t,$(CROSS_TESTS),"qemu-aarch64 $(B)/arm64/$(t)") \
	  $(CLI_SKIP)" the shell-driven CLI test runs natively (make test), not under qemu-aarch64"

# Big-endian: s390x under qemu-user. Besides the suite (which loads the
# committed x86-64 checkpoint tests/data/xendian.ckpt and checks that this
# host writes the same bytes), the s390x build writes its own reference files
# and the native build loads them.
S390X_CC ?= s390x-linux-gnu-gcc
$(B)/s390x/%: tests/%.c irmae.h tests/paths.h
	@mkdir -p $(@D)
	$(S390X_CC) $(CROSS_FLAGS) $< -o $@ -lm
# The suite runs as two halves that `make -j2` runs side by side (emulated
# s390x arithmetic is ~100x slower than native: one half alone takes as
# long as the whole aarch64 suite).
S390X_1 = test_model test_gemm test_conv test_loaders
S390X_2 = $(filter-out $(S390X_1),$(CROSS_TESTS))
test-s390x: test-s390x-1 test-s390x-2
test-s390x-1: $(addprefix $(B)/s390x/,$(S390X_1))
	@IRMAE_TEST_QUICK=1 IRMAE_TEST_EXEC=qemu-s390x IRMAE_PYTHON=$(PYTHON) sh tests/run.sh \
	  $(foreach t,$(S390X_1),"qemu-s390x $(B)/s390x/$(t)")
test-s390x-2: $(addprefix $(B)/s390x/,$(S390X_2)) $(B)/test_ckpt
	qemu-s390x $(B)/s390x/test_ckpt --write-xendian $(B)/s390x
	@IRMAE_TEST_QUICK=1 IRMAE_TEST_EXEC=qemu-s390x IRMAE_PYTHON=$(PYTHON) sh tests/run.sh \
	  $(foreach t,$(S390X_2),"qemu-s390x $(B)/s390x/$(t)") \
	  "$(B)/test_ckpt --xendian $(B)/s390x" \
	  $(CLI_SKIP)" the shell-driven CLI test runs natively (make test), not under qemu-s390x"

# Windows: mingw-w64, -Werror, OpenMP, static; the suite runs under Wine.
# The Python peers are Linux programs the .exe cannot start: those checks
# print SKIP. ckpt_kill (fork/SIGKILL) prints SKIP on Windows.
MINGW_CC ?= x86_64-w64-mingw32-gcc
WINE ?= $(firstword $(wildcard /usr/lib/wine/wine64 /usr/bin/wine64 /usr/bin/wine) wine64)
WIN_ENV = WINEPREFIX=$(abspath $(B))/wineprefix WINEDEBUG=-all
# The suite under Wine runs at the quick sizes (IRMAE_TEST_QUICK, as in the
# emulated and the clang and scalar builds of .ci/run: smaller sizes, and the
# largest convolution shapes only in the native make test); WIN_QUICK=0 runs
# the full sizes under Wine too.
WIN_QUICK ?= 1
WIN_FLAGS = $(CFLAGS) $(STD) $(WARN) -Werror -fopenmp -static
$(B)/win/%.exe: tests/%.c irmae.h tests/paths.h
	@mkdir -p $(@D)
	$(MINGW_CC) $(WIN_FLAGS) $< -o $@ -lm
$(B)/win/ex_%.exe: examples/%.c irmae.h
	@mkdir -p $(@D)
	$(MINGW_CC) $(WIN_FLAGS) $< -o $@ -lm
test-windows: $(foreach t,$(TESTS),$(B)/win/$(t).exe) $(foreach e,shapes mnist irmae,$(B)/win/ex_$(e).exe)
	$(MINGW_CC) $(WIN_FLAGS) -c tests/tu_impl.c -o $(B)/win/tu_impl.o
	$(MINGW_CC) $(WIN_FLAGS) -c tests/tu_user.c -o $(B)/win/tu_user.o
	$(MINGW_CC) $(WIN_FLAGS) $(B)/win/tu_impl.o $(B)/win/tu_user.o -o $(B)/win/tu_link.exe -lm
	$(MINGW_CC) $(WIN_FLAGS) -DIRMAE_STATIC -DIRMAE_NO_SIMD -c tests/tu_impl.c -o $(B)/win/tu_static.o
	@$(WIN_ENV) $(if $(filter 1,$(WIN_QUICK)),IRMAE_TEST_QUICK=1) sh tests/run.sh "$(WINE) $(B)/win/tu_link.exe" \
	  $(foreach t,$(TESTS),"$(WINE) $(B)/win/$(t).exe") \
	  $(CLI_SKIP)" a POSIX shell script (mktemp, pipes, exit codes); the examples (CLI included) are only built for Windows"

# libFuzzer targets (clang); each runs FUZZ_SECONDS on a seed corpus made of
# the committed test files. Without libFuzzer, fuzz_main.c replays files.
FUZZERS = png idx gzip ckpt npy st
# Each target is its own job (`make -j2 fuzz` runs two at a time); a
# fuzzer that finds a crash, a leak or an overrun fails the build.
.PHONY: $(addprefix fuzz-run-,$(FUZZERS))
fuzz: $(addprefix fuzz-run-,$(FUZZERS))
$(B)/fuzz_%: tests/fuzz_%.c irmae.h | $(B)
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all $< -o $@ -lm
# the seed corpora: the committed test files, and the checkpoints and
# safetensors files that test_ckpt writes
$(B)/corpus.stamp: $(B)/test_ckpt $(wildcard tests/data/*)
	@for f in $(FUZZERS); do mkdir -p $(B)/corpus_$$f && cp tests/data/* $(B)/corpus_$$f/; done
	IRMAE_CKPT_CORPUS=$(B)/corpus_ckpt $(B)/test_ckpt > /dev/null
	cp $(B)/corpus_ckpt/micro.safetensors $(B)/corpus_st/
	touch $@
$(addprefix fuzz-run-,$(FUZZERS)): fuzz-run-%: $(B)/fuzz_% $(B)/corpus.stamp
	@$(B)/fuzz_$* -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -print_final_stats=1 $(B)/corpus_$* \
	  > $(B)/fuzz_$*.log 2>&1; rc=$$?; \
	  echo "== fuzz_$* for $(FUZZ_SECONDS) s (exit $$rc)"; \
	  grep -E "stat::number_of_executed_units|ERROR|SUMMARY|crash|leak" $(B)/fuzz_$*.log; \
	  test $$rc -eq 0

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

# Compile-time options, each built with -Werror and run: IRMAE_STATIC in two
# files linked together, IRMAE_NO_SIMD, no OpenMP, a custom allocator
# (check-header's two translation units count every call).
test-options: | $(B)
	$(CC) $(ALLFLAGS) -Werror -c tests/tu_static_a.c -o $(B)/opt_static_a.o
	$(CC) $(ALLFLAGS) -Werror -c tests/tu_static_b.c -o $(B)/opt_static_b.o
	@if nm -g $(B)/opt_static_a.o $(B)/opt_static_b.o | grep -i ' [TDBR] irmae'; then \
	  echo "IRMAE_STATIC: the symbols above are exported"; exit 1; fi
	$(CC) $(ALLFLAGS) $(B)/opt_static_a.o $(B)/opt_static_b.o -o $(B)/opt_static $(LDLIBS)
	$(CC) $(CFLAGS) $(STD) $(WARN) -Werror -DIRMAE_NO_SIMD tests/test_gemm.c -o $(B)/opt_nosimd $(LDLIBS)
	$(CC) $(CFLAGS) $(STD) $(WARN) -Werror tests/test_conv.c -o $(B)/opt_noomp $(LDLIBS)
	@# GNU modes contract a * b + c into FMAs (-ffp-contract=fast): the SIMD
	@# paths must still agree bit for bit and match the golden training hash
	$(CC) $(CFLAGS) -std=gnu11 $(WARN) -Werror $(OMP) tests/test_model.c -o $(B)/opt_gnu_model $(LDLIBS)
	$(CXX) $(CFLAGS) -x c++ -std=gnu++17 $(WARN) -Werror $(OMP) tests/test_gemm.c -o $(B)/opt_cxx_gemm $(LDLIBS)
	@# parts left out: each macro alone and all together must build; the
	@# parts must be gone from the object (nm), and the program must train
	for d in IRMAE_NO_WRITERS IRMAE_NO_LOADERS IRMAE_NO_CODECS IRMAE_NO_ANALYSIS IRMAE_NO_CHECKPOINTS; do \
	  $(CC) $(ALLFLAGS) -Werror -D$$d -c tests/tu_model_only.c -o $(B)/opt_$$d.o || exit 1; done
	$(CC) $(ALLFLAGS) -Werror -DIRMAE_NO_CODECS -DIRMAE_NO_ANALYSIS -DIRMAE_NO_CHECKPOINTS \
	  tests/tu_model_only.c -o $(B)/opt_model_only $(LDLIBS)
	$(CXX) $(CFLAGS) -x c++ $(WARN) -Werror $(OMP) -DIRMAE_NO_CODECS -DIRMAE_NO_ANALYSIS -DIRMAE_NO_CHECKPOINTS \
	  -fsyntax-only tests/tu_model_only.c
	@check() { if nm $(B)/$$1.o | grep -q " T $$2$$"; then echo "$$1: $$2 is still compiled"; exit 1; fi; }; \
	  check opt_IRMAE_NO_WRITERS irmae_png_encode && check opt_IRMAE_NO_LOADERS irmae_png_decode && \
	  check opt_IRMAE_NO_CODECS irmae_inflate && check opt_IRMAE_NO_CODECS irmae_deflate && \
	  check opt_IRMAE_NO_ANALYSIS irmae_eigh && check opt_IRMAE_NO_CHECKPOINTS irmae_checkpoint_save && \
	  if ! nm $(B)/opt_IRMAE_NO_ANALYSIS.o | grep -q ' T irmae_png_decode$$'; then \
	    echo "control: irmae_png_decode should be in opt_IRMAE_NO_ANALYSIS.o"; exit 1; fi; \
	  echo "parts left out: 7 passed, 0 failed"
	$(MAKE) --no-print-directory check-header
	@IRMAE_TEST_QUICK=1 sh tests/run.sh $(B)/opt_static $(B)/opt_nosimd $(B)/opt_noomp $(B)/opt_gnu_model $(B)/opt_cxx_gemm \
	  $(B)/opt_model_only

# make install PREFIX=... DESTDIR=...: the header and a pkg-config file.
PREFIX ?= /usr/local
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(PREFIX)/lib/pkgconfig
VERSION = $(shell sed -n 's/^.define IRMAE_VERSION_\(MAJOR\|MINOR\|PATCH\) //p' irmae.h | paste -sd.)
install:
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 irmae.h $(DESTDIR)$(INCLUDEDIR)/irmae.h
	@# pkg-config file: a single header, nothing to link but libm; OpenMP is
	@# optional (add -fopenmp to compile and link flags to use every core)
	printf '%s\n' '# irmae.h: define IRMAE_IMPLEMENTATION in one file; -fopenmp optional' \
	  'prefix=$(PREFIX)' 'includedir=$(INCLUDEDIR)' '' 'Name: irmae' \
	  'Description: Implicit Rank-Minimizing Autoencoders in one C header' \
	  'Version: $(VERSION)' 'Cflags: -I$${includedir}' 'Libs: -lm' > $(DESTDIR)$(PKGCONFIGDIR)/irmae.pc
uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/irmae.h $(DESTDIR)$(PKGCONFIGDIR)/irmae.pc

# The three ways a project uses irmae.h, each built and run from outside:
# pkg-config after make install, CMake add_subdirectory, CMake FetchContent.
test-install:
	@sh tests/outside/run.sh "$(CC)"

clean:
	rm -rf $(B) demo-out irmae irmae-mpi
