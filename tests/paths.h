/* paths.h - the kernel paths a test runs on, for tests that check every
   SIMD path (test_conv, test_model). Include after irmae.h.

   Every path this CPU has is forced in turn; an absent one prints a SKIP
   line. Under IRMAE_TEST_QUICK=1 (emulators) only the best path runs: the
   scalar path is checked natively by the IRMAE_NO_SIMD build. */
#include <stdio.h>
#include <stdlib.h>

static const int test_paths[4] = {IRMAE_SIMD_SCALAR, IRMAE_SIMD_AVX2, IRMAE_SIMD_AVX512, IRMAE_SIMD_NEON};

/* 1 when `what` is to be checked on path `level`, which is then forced;
   0 (after a SKIP line) when it is not. */
static int test_path_begin(int level, const char *what)
{
    if (getenv("IRMAE_TEST_QUICK") && level != irmae_simd_force(IRMAE_SIMD_BEST)) {
        printf("SKIP: %s on the %s path: IRMAE_TEST_QUICK checks the best path only\n", what, irmae_simd_name(level));
        return 0;
    }
    if (irmae_simd_force(level) != level) {
        printf("SKIP: %s on the %s path: not available on this CPU\n", what, irmae_simd_name(level));
        return 0;
    }
    return 1;
}
