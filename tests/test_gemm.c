/* irmae_sgemm against the scalar reference on every SIMD path this CPU has,
   awkward sizes, all transposes, alpha/beta cases; and bit-identical results
   for 1 and 2 threads. */
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"
#include <stdio.h>
#include <math.h>

static int passed = 0, failed = 0;
#define CHECK(cond, ...) do { if (cond) passed++; else { failed++; printf("FAIL: "); printf(__VA_ARGS__); printf("\n"); } } while (0)

static void fill(float *x, size_t n, irmae_rng *r) { size_t i; for (i = 0; i < n; i++) x[i] = irmae_rng_uniform(r) * 2.0f - 1.0f; }

/* one comparison; returns 1 if within tolerance */
static int compare(int ta, int tb, int m, int n, int k, float alpha, float beta, irmae_rng *r)
{
    int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 1, ldc = n + 2;
    size_t asz = (size_t)(ta ? k : m) * lda + 1, bsz = (size_t)(tb ? n : k) * ldb + 1, csz = (size_t)m * ldc + 1;
    float *a = (float *)malloc(asz * 4), *b = (float *)malloc(bsz * 4);
    float *c1 = (float *)malloc(csz * 4), *c2 = (float *)malloc(csz * 4);
    int i, j, ok = 1;
    fill(a, asz, r); fill(b, bsz, r); fill(c1, csz, r);
    memcpy(c2, c1, csz * 4);
    if (beta == 0.0f) for (i = 0; i < m; i++) c1[(size_t)i * ldc] = NAN; /* beta 0 must ignore C */
    irmae_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c1, ldc);
    irmae_sgemm_ref(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c2, ldc);
    for (i = 0; i < m && ok; i++) {
        for (j = 0; j < n; j++) {
            /* float32 accumulation of k products of |x| <= 1: error grows ~ sqrt(k) eps, bound it by k eps */
            double tol = 4.0 * FLT_EPSILON * (k + 2) * (fabs(alpha) + fabs(beta) + 1.0);
            double d = fabs((double)c1[(size_t)i * ldc + j] - c2[(size_t)i * ldc + j]);
            if (!(d <= tol)) { ok = 0; printf("  (%d,%d) got %g want %g\n", i, j, c1[(size_t)i * ldc + j], c2[(size_t)i * ldc + j]); break; }
        }
        if (c1[(size_t)i * ldc + n] != c2[(size_t)i * ldc + n]) { ok = 0; printf("  wrote past row end\n"); }
    }
    free(a); free(b); free(c1); free(c2);
    return ok;
}

int main(void)
{
    static const int sizes[] = {1, 3, 7, 17, 100, 255, 1000};
    int levels[] = {IRMAE_SIMD_SCALAR, IRMAE_SIMD_AVX2, IRMAE_SIMD_AVX512, IRMAE_SIMD_NEON};
    irmae_rng r = irmae_rng_seed(42);
    int li, got, ta, tb, im, in, ik;
    /* IRMAE_TEST_QUICK=1 (emulators): sizes up to 100 only, plus the two large cases */
    int nsizes = getenv("IRMAE_TEST_QUICK") ? 5 : 7;
    for (li = 0; li < 4; li++) {
        got = irmae_simd_force(levels[li]);
        if (got != levels[li]) { printf("SKIP: %s path not available on this CPU\n", irmae_simd_name(levels[li])); continue; }
        printf("path %s\n", irmae_simd_name(got));
        for (ta = 0; ta < 2; ta++)
            for (tb = 0; tb < 2; tb++)
                for (im = 0; im < nsizes; im++)
                    for (in = 0; in < nsizes; in++)
                        for (ik = 0; ik < nsizes; ik++) {
                            int m = sizes[im], n = sizes[in], k = sizes[ik];
                            float alpha = (ik % 3 == 0) ? 1.0f : -0.5f, beta = (in % 3 == 0) ? 0.0f : (in % 3 == 1 ? 1.0f : 0.25f);
                            if ((double)m * n * k > 3e7) continue; /* the reference is slow */
                            CHECK(compare(ta, tb, m, n, k, alpha, beta, &r), "%s ta=%d tb=%d m=%d n=%d k=%d alpha=%g beta=%g",
                                  irmae_simd_name(got), ta, tb, m, n, k, alpha, beta);
                        }
        /* deeper than one KC slice and wider than one NC block */
        CHECK(compare(0, 0, 37, 3100, 600, 1.0f, 1.0f, &r), "%s big 37x3100x600", irmae_simd_name(got));
        CHECK(compare(1, 1, 500, 70, 300, 2.0f, 0.5f, &r), "%s big 500x70x300", irmae_simd_name(got));
    }
    /* The x86 FMA paths (AVX2 and AVX-512) compute every element of C as
       one chain of FMAs in k order with the same epilogue: the same bits,
       whatever their tile sizes (full and edge tiles, any alpha and beta). */
    if (irmae_simd_force(IRMAE_SIMD_AVX512) != IRMAE_SIMD_AVX512) {
        printf("SKIP: AVX2 vs AVX-512 bit identity: no AVX-512 on this CPU\n");
    } else {
        static const int shp[][3] = {{37, 3100, 600}, {64, 2048, 512}, {33, 17, 1000}, {100, 255, 7}, {8, 32, 256}, {129, 65, 300}};
        int si;
        for (si = 0; si < (int)(sizeof shp / sizeof shp[0]); si++)
            for (ta = 0; ta < 2; ta++)
                for (tb = 0; tb < 2; tb++) {
                    int m = shp[si][0], n = shp[si][1], k = shp[si][2], lda = ta ? m : k, ldb = tb ? k : n;
                    float alpha = si % 2 ? 1.0f : -0.75f, beta = si % 3 == 0 ? 0.0f : si % 3 == 1 ? 1.0f : 0.3f;
                    float *a = (float *)malloc((size_t)m * k * 4), *b = (float *)malloc((size_t)k * n * 4);
                    float *c1 = (float *)malloc((size_t)m * n * 4), *c2 = (float *)malloc((size_t)m * n * 4);
                    fill(a, (size_t)m * k, &r); fill(b, (size_t)k * n, &r); fill(c1, (size_t)m * n, &r);
                    memcpy(c2, c1, (size_t)m * n * 4);
                    irmae_simd_force(IRMAE_SIMD_AVX2);
                    irmae_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c1, n);
                    irmae_simd_force(IRMAE_SIMD_AVX512);
                    irmae_sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c2, n);
                    CHECK(memcmp(c1, c2, (size_t)m * n * 4) == 0, "avx2 and avx512 differ: ta=%d tb=%d %dx%dx%d beta=%g",
                          ta, tb, m, n, k, beta);
                    free(a); free(b); free(c1); free(c2);
                }
    }
    irmae_simd_force(IRMAE_SIMD_BEST);
#ifdef _OPENMP
    { /* thread-count independence, bit for bit */
        int m = 300, n = 500, k = 700;
        float *a = (float *)malloc((size_t)m * k * 4), *b = (float *)malloc((size_t)k * n * 4);
        float *c1 = (float *)malloc((size_t)m * n * 4), *c2 = (float *)malloc((size_t)m * n * 4);
        fill(a, (size_t)m * k, &r); fill(b, (size_t)k * n, &r);
        omp_set_num_threads(1);
        irmae_sgemm(0, 1, m, n, k, 1.0f, a, k, b, k, 0.0f, c1, n);
        omp_set_num_threads(2);
        irmae_sgemm(0, 1, m, n, k, 1.0f, a, k, b, k, 0.0f, c2, n);
        CHECK(memcmp(c1, c2, (size_t)m * n * 4) == 0, "1 vs 2 threads differ");
        free(a); free(b); free(c1); free(c2);
    }
#else
    printf("SKIP: built without OpenMP, thread-count check not run\n");
#endif
    irmae_sgemm_release();
    printf("test_gemm: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
