#define IRMAE_IMPLEMENTATION
#include "../irmae.h"

/* Tests of the analysis section: covariance, eigen-solver, spectrum, CSV /
   SVG writers, Gaussian and GMM fitting and sampling, PCA and its grid,
   Frechet distance, argument checks.
   Build and run from the repository root:
     cc -O2 -std=c99 -Wall -Wextra -pedantic -fopenmp tests/test_analysis.c -o build/test_analysis -lm
     ./build/test_analysis
   Optional peer: IRMAE_PYTHON (default /usr/bin/python3) parses the SVG
   with xml.etree; missing -> SKIP. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include <limits.h>

static int g_pass = 0, g_fail = 0;

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (cond) g_pass++;                                               \
        else {                                                            \
            g_fail++;                                                     \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                   \
            printf(__VA_ARGS__);                                          \
            printf("\n");                                                 \
        }                                                                 \
    } while (0)

static double now_seconds(void)
{
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

static void *xalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) { printf("FAIL: out of memory in the test\n"); exit(2); }
    return p;
}
#define DALLOC(n) ((double *)xalloc((size_t)(n), sizeof(double)))
#define FALLOC(n) ((float *)xalloc((size_t)(n), sizeof(float)))

/* ---------------------------------------------------------------------- */
/* helpers                                                                */
/* ---------------------------------------------------------------------- */

/* q (n x n): rows orthonormal, from Gram-Schmidt (twice) on random normals */
static void random_orthogonal(double *q, int n, irmae_rng *rng)
{
    int i, j, k, pass;
    for (i = 0; i < n * n; i++) q[i] = irmae_rng_normal(rng);
    for (i = 0; i < n; i++) {
        double *qi = q + (size_t)i * n, nrm = 0.0;
        for (pass = 0; pass < 2; pass++)
            for (k = 0; k < i; k++) {
                const double *qk = q + (size_t)k * n;
                double dot = 0.0;
                for (j = 0; j < n; j++) dot += qi[j] * qk[j];
                for (j = 0; j < n; j++) qi[j] -= dot * qk[j];
            }
        for (j = 0; j < n; j++) nrm += qi[j] * qi[j];
        nrm = 1.0 / sqrt(nrm);
        for (j = 0; j < n; j++) qi[j] *= nrm;
    }
}

/* a = Q^T diag(d) Q = sum_i d_i q_i q_i^T (rows q_i of q) */
static void build_sym(double *a, const double *q, const double *d, int n)
{
    int i, j, k;
    memset(a, 0, (size_t)n * n * sizeof(double));
    for (k = 0; k < n; k++) {
        const double *qk = q + (size_t)k * n;
        if (d[k] == 0.0) continue;
        for (i = 0; i < n; i++) {
            double f = d[k] * qk[i];
            double *ai = a + (size_t)i * n;
            for (j = 0; j < n; j++) ai[j] += f * qk[j];
        }
    }
    for (i = 0; i < n; i++)
        for (j = 0; j < i; j++) { /* exact symmetry */
            double m = 0.5 * (a[(size_t)i * n + j] + a[(size_t)j * n + i]);
            a[(size_t)i * n + j] = a[(size_t)j * n + i] = m;
        }
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Reference: cyclic Jacobi (eigenvalues only, sorted descending). */
static void jacobi_eigenvalues(const double *a, int n, double *ev)
{
    double *m = DALLOC((size_t)n * n);
    int sweep, p, q, k;
    memcpy(m, a, (size_t)n * n * sizeof(double));
    for (sweep = 0; sweep < 100; sweep++) {
        double off = 0.0, tot = 0.0;
        for (p = 0; p < n * n; p++) tot += m[p] * m[p];
        for (p = 0; p < n; p++) for (q = p + 1; q < n; q++) off += m[p * n + q] * m[p * n + q];
        if (off <= 1e-30 * tot) break;
        for (p = 0; p < n; p++)
            for (q = p + 1; q < n; q++) {
                double apq = m[p * n + q], app, aqq, theta, t, c, s;
                if (apq == 0.0) continue;
                app = m[p * n + p]; aqq = m[q * n + q];
                theta = (aqq - app) / (2.0 * apq);
                t = (theta >= 0 ? 1.0 : -1.0) / (fabs(theta) + sqrt(theta * theta + 1.0));
                c = 1.0 / sqrt(t * t + 1.0); s = t * c;
                for (k = 0; k < n; k++) { /* columns p, q */
                    double mkp = m[k * n + p], mkq = m[k * n + q];
                    m[k * n + p] = c * mkp - s * mkq;
                    m[k * n + q] = s * mkp + c * mkq;
                }
                for (k = 0; k < n; k++) { /* rows p, q */
                    double mpk = m[p * n + k], mqk = m[q * n + k];
                    m[p * n + k] = c * mpk - s * mqk;
                    m[q * n + k] = s * mpk + c * mqk;
                }
            }
    }
    for (p = 0; p < n; p++) ev[p] = m[p * n + p];
    qsort(ev, (size_t)n, sizeof(double), cmp_desc);
    free(m);
}

/* Runs irmae_eigh on a and checks: descending order, eigenvalues against
   `known` (n values, any order; may be NULL), residuals |A v - l v|,
   orthonormality, and that the values-only call gives the same values. */
static void check_eigh(const char *label, const double *a, int n, const double *known, double tol)
{
    double *ev = DALLOC(n), *ev2 = DALLOC(n), *v = DALLOC((size_t)n * n), *ks = NULL;
    double scale = 0.0, worst_val = 0.0, worst_res = 0.0, worst_orth = 0.0;
    int rc, i, j, k, sorted = 1, same = 1;
    rc = irmae_eigh(ev, v, a, n);
    CHECK(rc == 0, "%s: eigh rc %d (%s)", label, rc, irmae_error_detail());
    if (rc) { free(ev); free(ev2); free(v); return; }
    for (i = 0; i < n; i++) {
        if (fabs(ev[i]) > scale) scale = fabs(ev[i]);
        if (i && ev[i] > ev[i - 1]) sorted = 0;
    }
    if (scale == 0.0) scale = 1.0;
    CHECK(sorted, "%s: eigenvalues not descending", label);
    if (known) {
        ks = DALLOC(n);
        memcpy(ks, known, (size_t)n * sizeof(double));
        qsort(ks, (size_t)n, sizeof(double), cmp_desc);
        for (i = 0; i < n; i++)
            if (fabs(ev[i] - ks[i]) > worst_val) worst_val = fabs(ev[i] - ks[i]);
        CHECK(worst_val <= tol * scale, "%s: eigenvalue error %.3g > %.3g * max", label, worst_val / scale, tol);
        free(ks);
    }
    for (i = 0; i < n; i++) {
        const double *vi = v + (size_t)i * n;
        for (j = 0; j < n; j++) {
            double r = -ev[i] * vi[j];
            const double *aj = a + (size_t)j * n;
            for (k = 0; k < n; k++) r += aj[k] * vi[k];
            if (fabs(r) > worst_res) worst_res = fabs(r);
        }
        for (j = 0; j <= i; j++) {
            const double *vj = v + (size_t)j * n;
            double dot = 0.0;
            for (k = 0; k < n; k++) dot += vi[k] * vj[k];
            dot -= i == j ? 1.0 : 0.0;
            if (fabs(dot) > worst_orth) worst_orth = fabs(dot);
        }
    }
    CHECK(worst_res <= tol * scale, "%s: residual |Av - lv| %.3g > %.3g * max", label, worst_res / scale, tol);
    CHECK(worst_orth <= tol, "%s: orthonormality error %.3g > %.3g", label, worst_orth, tol);
    rc = irmae_eigh(ev2, NULL, a, n);
    for (i = 0; i < n; i++) if (ev2[i] != ev[i]) same = 0;
    CHECK(rc == 0 && same, "%s: values-only call differs (rc %d)", label, rc);
    free(ev); free(ev2); free(v);
}

/* ---------------------------------------------------------------------- */
/* eigh                                                                   */
/* ---------------------------------------------------------------------- */

static void test_eigh(void)
{
    irmae_rng rng = irmae_rng_seed(11);
    static const int sizes[] = { 1, 2, 3, 7, 32, 128 };
    double *a, *q, *d, ev[8], v[64];
    char label[64];
    int s, i, n, rc;

    { /* 1x1 */
        double one = -3.5;
        rc = irmae_eigh(ev, v, &one, 1);
        CHECK(rc == 0 && ev[0] == -3.5 && v[0] == 1.0, "1x1: rc %d ev %g v %g", rc, ev[0], v[0]);
    }
    { /* diagonal with zeros, repeats, a negative */
        static const double dg[7] = { 3, 0, 0, -1, 3, 2, 0 };
        double dm[49];
        memset(dm, 0, sizeof dm);
        for (i = 0; i < 7; i++) dm[i * 7 + i] = dg[i];
        check_eigh("diag7", dm, 7, dg, 1e-14);
        rc = irmae_eigh(ev, v, dm, 7);
        CHECK(rc == 0 && ev[0] == 3 && ev[1] == 3 && ev[2] == 2 && ev[3] == 0 && ev[6] == -1,
              "diag7 exact values: %g %g %g %g %g", ev[0], ev[1], ev[2], ev[3], ev[6]);
    }
    { /* zero matrix */
        double z[16], zk[4] = { 0, 0, 0, 0 };
        memset(z, 0, sizeof z);
        check_eigh("zero4", z, 4, zk, 0.0);
    }
    { /* non-symmetric input: the symmetric part is used */
        double ns[4] = { 1, 2, 0, 1 }, kv[2] = { 2, 0 }, sy[4] = { 1, 1, 1, 1 };
        check_eigh("sym part", sy, 2, kv, 1e-15);
        rc = irmae_eigh(ev, NULL, ns, 2);
        CHECK(rc == 0 && fabs(ev[0] - kv[0]) < 1e-15 && fabs(ev[1] - kv[1]) < 1e-15,
              "asym: %g %g", ev[0], ev[1]);
    }
    /* random rotations of known spectra */
    for (s = 0; s < (int)(sizeof sizes / sizeof sizes[0]); s++) {
        n = sizes[s];
        a = DALLOC((size_t)n * n); q = DALLOC((size_t)n * n); d = DALLOC(n);
        random_orthogonal(q, n, &rng);
        for (i = 0; i < n; i++) d[i] = 10.0 * irmae_rng_normal(&rng);
        build_sym(a, q, d, n);
        sprintf(label, "QDQ' n=%d", n);
        check_eigh(label, a, n, d, 1e-10);
        /* repeated eigenvalues (clusters of 1, 2 and 0) */
        for (i = 0; i < n; i++) d[i] = (double)(i % 3) - (i % 5 == 4 ? 1.0 : 0.0);
        build_sym(a, q, d, n);
        sprintf(label, "repeated n=%d", n);
        check_eigh(label, a, n, d, 1e-10);
        free(a); free(q); free(d);
    }
    { /* rank-deficient: rank 5 of n = 32 (a covariance-like PSD matrix) */
        n = 32;
        a = DALLOC((size_t)n * n); q = DALLOC((size_t)n * n); d = DALLOC(n);
        random_orthogonal(q, n, &rng);
        for (i = 0; i < 5; i++) d[i] = 1.0 + i * i;
        build_sym(a, q, d, n);
        check_eigh("rank 5 of 32", a, n, d, 1e-10);
        /* the same, scaled by 1e200 and 1e-200 */
        for (i = 0; i < n * n; i++) a[i] *= 1e200;
        for (i = 0; i < 5; i++) d[i] *= 1e200;
        check_eigh("rank 5 of 32 x 1e200", a, n, d, 1e-10);
        for (i = 0; i < n; i++) d[i] = i < 5 ? (1.0 + i * i) * 1e-200 : 0.0;
        build_sym(a, q, d, n);
        check_eigh("rank 5 of 32 x 1e-200", a, n, d, 1e-10);
        free(a); free(q); free(d);
    }
    { /* Wilkinson W21+ (nearly equal pairs) and a random symmetric matrix
         against an independent Jacobi solver */
        double *ref, worst = 0.0;
        int t;
        for (t = 0; t < 2; t++) {
            n = t == 0 ? 21 : 40;
            a = DALLOC((size_t)n * n); ref = DALLOC(n); d = DALLOC(n);
            if (t == 0) {
                for (i = 0; i < n; i++) {
                    a[i * n + i] = fabs(10.0 - i);
                    if (i + 1 < n) a[i * n + i + 1] = a[(i + 1) * n + i] = 1.0;
                }
            } else {
                int j;
                for (i = 0; i < n; i++)
                    for (j = 0; j <= i; j++) a[i * n + j] = a[j * n + i] = irmae_rng_normal(&rng);
            }
            jacobi_eigenvalues(a, n, ref);
            check_eigh(t == 0 ? "W21+" : "random sym 40", a, n, ref, 1e-12);
            rc = irmae_eigh(d, NULL, a, n);
            worst = 0.0;
            for (i = 0; i < n; i++) if (fabs(d[i] - ref[i]) > worst) worst = fabs(d[i] - ref[i]);
            CHECK(rc == 0 && worst < 1e-12 * fabs(ref[0]), "%s vs Jacobi: %.3g",
                  t == 0 ? "W21+" : "random", worst);
            if (t == 0) /* the top pair of W21+ agrees to ~1e-14 */
                CHECK(fabs(d[0] - d[1]) < 1e-12 && d[0] > 10.74 && d[0] < 10.75, "W21+ top pair %.17g %.17g", d[0], d[1]);
            free(a); free(ref); free(d);
        }
    }
    { /* 512 x 512, timed (IRMAE_TEST_QUICK, for the emulators: 256 x 256) */
        double t0, t1;
        n = getenv("IRMAE_TEST_QUICK") ? 256 : 512;
        a = DALLOC((size_t)n * n); q = DALLOC((size_t)n * n); d = DALLOC(n);
        random_orthogonal(q, n, &rng);
        for (i = 0; i < n; i++) d[i] = i < n * 300 / 512 ? exp(-0.05 * i) : 0.0; /* decaying, rank 300 (150 at 256) */
        build_sym(a, q, d, n);
        t0 = now_seconds();
        {
            double *ev5 = DALLOC(n), *v5 = DALLOC((size_t)n * n);
            rc = irmae_eigh(ev5, v5, a, n);
            t1 = now_seconds();
            CHECK(rc == 0, "%d: rc %d", n, rc);
            printf("eigh %dx%d with vectors: %.3f s\n", n, n, t1 - t0);
            t0 = now_seconds();
            rc = irmae_eigh(ev5, NULL, a, n);
            t1 = now_seconds();
            printf("eigh %dx%d values only: %.3f s\n", n, n, t1 - t0);
            free(ev5); free(v5);
        }
        check_eigh(n == 512 ? "QDQ' n=512" : "QDQ' n=256", a, n, d, 1e-10);
        free(a); free(q); free(d);
    }
}

/* ---------------------------------------------------------------------- */
/* covariance                                                             */
/* ---------------------------------------------------------------------- */

static void test_covariance(void)
{
    irmae_rng rng = irmae_rng_seed(21);
    const int count = 1000, n = 9;
    float *x = FALLOC(count * n);
    double *cov = DALLOC(n * n), *cov2 = DALLOC(n * n), mean[9], ref[81], worst = 0.0, wm = 0.0;
    long double lm[9];
    int i, j, r, rc, sym = 1;
    for (r = 0; r < count; r++)
        for (j = 0; j < n; j++)
            x[r * n + j] = (float)(1000.0 + 10.0 * j + (1.0 + j) * irmae_rng_normal(&rng)
                                   + (j ? 0.5 * x[r * n + j - 1] - 500.0 : 0.0));
    rc = irmae_covariance(cov, mean, x, count, n);
    CHECK(rc == 0, "covariance rc %d", rc);
    /* naive reference in long double */
    for (j = 0; j < n; j++) {
        lm[j] = 0;
        for (r = 0; r < count; r++) lm[j] += x[r * n + j];
        lm[j] /= count;
        if (fabs((double)lm[j] - mean[j]) > wm) wm = fabs((double)lm[j] - mean[j]);
    }
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) {
            long double s = 0;
            for (r = 0; r < count; r++) s += (x[r * n + i] - lm[i]) * (x[r * n + j] - lm[j]);
            ref[i * n + j] = (double)(s / (count - 1));
        }
    for (i = 0; i < n * n; i++) {
        double e = fabs(cov[i] - ref[i]) / sqrt(ref[(i / n) * n + i / n] * ref[(i % n) * n + i % n]);
        if (e > worst) worst = e;
    }
    for (i = 0; i < n; i++) for (j = 0; j < n; j++) if (cov[i * n + j] != cov[j * n + i]) sym = 0;
    CHECK(worst < 1e-12, "covariance vs naive: %.3g", worst);
    CHECK(wm < 1e-12 * 1000, "mean vs naive: %.3g", wm);
    CHECK(sym, "covariance not exactly symmetric");
    rc = irmae_covariance(cov2, NULL, x, count, n);
    CHECK(rc == 0 && memcmp(cov, cov2, (size_t)n * n * sizeof(double)) == 0, "mean NULL path differs");
    { /* two points: exact */
        float two[4] = { 1, 2, 3, 5 };
        double c2[4], m2[2];
        rc = irmae_covariance(c2, m2, two, 2, 2);
        CHECK(rc == 0 && c2[0] == 2 && c2[1] == 3 && c2[2] == 3 && c2[3] == 4.5 && m2[0] == 2 && m2[1] == 3.5,
              "2-point covariance %g %g %g %g", c2[0], c2[1], c2[2], c2[3]);
    }
    { /* count not a multiple of the internal block, many rows */
        const int big = 64 * 3 + 7, nb = 3;
        float *xb = FALLOC(big * nb);
        double cb[9], mb[3];
        for (i = 0; i < big * nb; i++) xb[i] = (float)irmae_rng_normal(&rng);
        rc = irmae_covariance(cb, mb, xb, big, nb);
        {
            double s = 0, m0 = 0, m2 = 0;
            for (r = 0; r < big; r++) { m0 += xb[r * nb]; m2 += xb[r * nb + 2]; }
            m0 /= big;
            m2 /= big;
            for (r = 0; r < big; r++) s += (xb[r * nb] - m0) * (xb[r * nb + 2] - m2);
            s /= big - 1;
            CHECK(rc == 0 && fabs(cb[2] - s) < 1e-13, "covariance 199 rows: %.17g vs %.17g", cb[2], s);
        }
        free(xb);
    }
    free(x); free(cov); free(cov2);
}

/* ---------------------------------------------------------------------- */
/* spectrum                                                               */
/* ---------------------------------------------------------------------- */

/* 2n codes +-c_i e_i: mean 0, covariance exactly diag(2 c_i^2 / (2n - 1)) */
static float *design_codes(const double *c, int n)
{
    float *x = FALLOC(2 * n * n);
    int i;
    for (i = 0; i < n; i++) {
        x[(2 * i) * n + i] = (float)c[i];
        x[(2 * i + 1) * n + i] = (float)-c[i];
    }
    return x;
}

static void test_spectrum(void)
{
    irmae_rng rng = irmae_rng_seed(31);
    const int n = 32, count = 2000;
    double *q = DALLOC(n * n);
    float *codes = FALLOC(count * n);
    irmae_spectrum s;
    int rc, i, j, r, sorted = 1;

    /* 7-dim subspace of R^32 plus noise 1e-4 */
    random_orthogonal(q, n, &rng);
    for (r = 0; r < count; r++) {
        double z[7];
        for (i = 0; i < 7; i++) z[i] = irmae_rng_normal(&rng);
        for (j = 0; j < n; j++) {
            double v = 1e-4 * irmae_rng_normal(&rng);
            for (i = 0; i < 7; i++) v += z[i] * q[i * n + j];
            codes[r * n + j] = (float)v;
        }
    }
    rc = irmae_spectrum_compute(&s, codes, count, n);
    CHECK(rc == 0, "spectrum rc %d (%s)", rc, irmae_error_detail());
    if (rc == 0) {
        for (i = 1; i < n; i++) if (s.values[i] > s.values[i - 1]) sorted = 0;
        CHECK(s.n == n && sorted, "spectrum n %d, sorted %d", s.n, sorted);
        CHECK(s.normalized[0] == 1.0, "normalized[0] = %.17g", s.normalized[0]);
        CHECK(s.rank_1pct == 7, "7-dim subspace: rank@1%% = %d", s.rank_1pct);
        CHECK(s.rank_01pct == 7, "7-dim subspace: rank@0.1%% = %d", s.rank_01pct);
        CHECK(s.entropy_rank > 6.0 && s.entropy_rank <= 7.0 + 1e-6, "7-dim entropy rank %.4f", s.entropy_rank);
        CHECK(irmae_spectrum_rank(&s, 1e-5) == 7, "rank(1e-5) = %d", irmae_spectrum_rank(&s, 1e-5));
        CHECK(irmae_spectrum_rank(&s, 1e-11) == 32, "rank(1e-11) = %d (noise floor)", irmae_spectrum_rank(&s, 1e-11));
        CHECK(irmae_spectrum_rank(&s, 0.0) == 32 && irmae_spectrum_rank(&s, 1.0) >= 1,
              "rank(0) %d rank(1) %d", irmae_spectrum_rank(&s, 0.0), irmae_spectrum_rank(&s, 1.0));
        CHECK(s.normalized[7] < 1e-6 && s.normalized[7] > 1e-10, "noise level normalized[7] = %.3g", s.normalized[7]);
    }
    irmae_spectrum_free(&s);
    CHECK(s.values == NULL && s.n == 0, "spectrum_free zeroes");

    /* isotropic */
    {
        const int ci = 5000;
        float *iso = FALLOC(ci * n);
        for (i = 0; i < ci * n; i++) iso[i] = irmae_rng_normal(&rng);
        rc = irmae_spectrum_compute(&s, iso, ci, n);
        CHECK(rc == 0 && s.rank_1pct == 32 && s.rank_01pct == 32, "isotropic: rc %d rank %d", rc, s.rank_1pct);
        /* Marchenko-Pastur spread c = 32/5000: exp(H) ~ n (1 - c/2) */
        CHECK(rc == 0 && s.entropy_rank > 31.5 && s.entropy_rank <= 32.0, "isotropic entropy %.4f", s.entropy_rank);
        irmae_spectrum_free(&s);
        free(iso);
    }
    /* exactly identity covariance: entropy rank is n */
    {
        double c[16];
        float *x;
        for (i = 0; i < 16; i++) c[i] = 1.5;
        x = design_codes(c, 16);
        rc = irmae_spectrum_compute(&s, x, 32, 16);
        CHECK(rc == 0 && fabs(s.entropy_rank - 16.0) < 1e-10 && s.rank_1pct == 16,
              "identity: entropy %.17g rank %d", s.entropy_rank, s.rank_1pct);
        CHECK(rc == 0 && fabs(s.normalized[15] - 1.0) < 1e-12 && fabs(s.values[0] - 2 * 2.25 / 31) < 1e-14,
              "identity: values %.17g normalized[15] %.17g", s.values[0], s.normalized[15]);
        irmae_spectrum_free(&s);
        free(x);
    }
    /* known spectrum (4, 1, 1, 1/64, 1/256, 0) and the rank thresholds */
    {
        double c[6] = { 2, 1, 1, 0, 0.125, 0.0625 }, h, t = 6.01953125;
        float *x = design_codes(c, 6);
        rc = irmae_spectrum_compute(&s, x, 12, 6);
        /* normalized: 1, 0.25, 0.25, 0.0039, 0.00098, 0 */
        h = -(4.0 / t * log(4.0 / t) + 2.0 / t * log(1.0 / t) + 0.015625 / t * log(0.015625 / t)
              + 0.00390625 / t * log(0.00390625 / t));
        CHECK(rc == 0 && fabs(s.entropy_rank - exp(h)) < 1e-12, "known entropy %.17g vs %.17g", s.entropy_rank, exp(h));
        CHECK(rc == 0 && s.rank_1pct == 3 && s.rank_01pct == 4 && s.normalized[5] == 0.0 &&
              irmae_spectrum_rank(&s, 1e-4) == 5 && fabs(s.normalized[4] - 1.0 / 1024) < 1e-15,
              "known: rank@1%% %d rank@0.1%% %d rank(1e-4) %d", s.rank_1pct, s.rank_01pct, irmae_spectrum_rank(&s, 1e-4));
        irmae_spectrum_free(&s);
        free(x);
    }
    /* constant codes: everything zero */
    {
        float cst[12];
        for (i = 0; i < 12; i++) cst[i] = 3.0f;
        rc = irmae_spectrum_compute(&s, cst, 4, 3);
        CHECK(rc == 0 && s.values[0] == 0 && s.normalized[0] == 0 && s.rank_1pct == 0 && s.entropy_rank == 0,
              "constant codes: rc %d v0 %g rank %d H %g", rc, s.values[0], s.rank_1pct, s.entropy_rank);
        irmae_spectrum_free(&s);
    }
    free(q); free(codes);
}

/* ---------------------------------------------------------------------- */
/* CSV and SVG                                                            */
/* ---------------------------------------------------------------------- */

static char g_dir[64] = "";

static void out_path(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s%s", g_dir, name);
}

static char *read_file(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = (char *)xalloc((size_t)n + 1, 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) { fclose(f); free(buf); return NULL; }
    buf[n] = 0;
    fclose(f);
    if (len) *len = n;
    return buf;
}

/* splits one CSV line (RFC 4180 quoting) into at most max fields, in place */
static int csv_split(char *line, char **fields, int max)
{
    int nf = 0;
    char *p = line, *w;
    for (;;) {
        if (nf >= max) return -1;
        fields[nf++] = w = p;
        if (*p == '"') {
            p++;
            for (;;) {
                if (!*p) return -1;
                if (*p == '"') {
                    if (p[1] == '"') { *w++ = '"'; p += 2; continue; }
                    p++;
                    break;
                }
                *w++ = *p++;
            }
        } else
            while (*p && *p != ',') *w++ = *p++;
        if (*p == ',') { *w = 0; p++; continue; }
        *w = 0;
        if (*p) return -1;
        return nf;
    }
}

/* Minimal well-formedness check: tags balanced and properly nested, one root,
   quoted attributes, entities valid, no raw '<' in text/attributes, no
   control bytes. Returns 1 if fine, else 0 and a reason. */
static int xml_check(const char *s, char *why, size_t whysz)
{
    char stack[64][64];
    int depth = 0, roots = 0;
    const char *p = s;
    while (*p) {
        unsigned char ch = (unsigned char)*p;
        if (ch < 0x20 && ch != '\t' && ch != '\n' && ch != '\r') { snprintf(why, whysz, "control byte %u", ch); return 0; }
        if (*p == '&') {
            static const char *const ents[5] = { "&amp;", "&lt;", "&gt;", "&quot;", "&apos;" };
            int k, ok = 0;
            for (k = 0; k < 5; k++) if (!strncmp(p, ents[k], strlen(ents[k]))) ok = 1;
            if (!ok) { snprintf(why, whysz, "bad entity at %ld", (long)(p - s)); return 0; }
            p++;
            continue;
        }
        if (*p != '<') { p++; continue; }
        if (p[1] == '?') {
            const char *e = strstr(p, "?>");
            if (!e || p != s) { snprintf(why, whysz, "bad processing instruction"); return 0; }
            p = e + 2;
            continue;
        }
        if (p[1] == '/') {
            char name[64];
            int len = 0;
            p += 2;
            while (*p && *p != '>' && *p != ' ' && len < 63) name[len++] = *p++;
            name[len] = 0;
            while (*p == ' ') p++;
            if (*p != '>') { snprintf(why, whysz, "bad end tag %s", name); return 0; }
            if (depth == 0 || strcmp(stack[depth - 1], name)) {
                snprintf(why, whysz, "end tag %s does not match %s", name, depth ? stack[depth - 1] : "(none)");
                return 0;
            }
            depth--;
            p++;
            continue;
        }
        {
            char name[64];
            int len = 0, selfclose = 0;
            p++;
            while (*p && *p != '>' && *p != '/' && *p != ' ' && *p != '\n' && len < 63) name[len++] = *p++;
            name[len] = 0;
            if (!len) { snprintf(why, whysz, "empty tag name"); return 0; }
            while (*p && *p != '>') {
                if (*p == '"' || *p == '\'') {
                    char qc = *p++;
                    while (*p && *p != qc) {
                        if (*p == '<') { snprintf(why, whysz, "'<' in attribute of %s", name); return 0; }
                        if (*p == '&') {
                            if (strncmp(p, "&amp;", 5) && strncmp(p, "&lt;", 4) && strncmp(p, "&gt;", 4) &&
                                strncmp(p, "&quot;", 6) && strncmp(p, "&apos;", 6)) {
                                snprintf(why, whysz, "bad entity in attribute of %s", name);
                                return 0;
                            }
                        }
                        p++;
                    }
                    if (!*p) { snprintf(why, whysz, "unterminated attribute in %s", name); return 0; }
                    p++;
                    continue;
                }
                if (*p == '<') { snprintf(why, whysz, "'<' inside tag %s", name); return 0; }
                if (*p == '/' && p[1] == '>') selfclose = 1;
                p++;
            }
            if (!*p) { snprintf(why, whysz, "unterminated tag %s", name); return 0; }
            p++;
            if (depth == 0) roots++;
            if (!selfclose) {
                if (depth >= 64) { snprintf(why, whysz, "too deep"); return 0; }
                strcpy(stack[depth++], name);
            } else if (depth == 0 && roots > 1) { snprintf(why, whysz, "second root"); return 0; }
        }
    }
    if (depth != 0) { snprintf(why, whysz, "%d unclosed tags (innermost %s)", depth, stack[depth - 1]); return 0; }
    if (roots != 1) { snprintf(why, whysz, "%d root elements", roots); return 0; }
    return 1;
}

static int count_substr(const char *s, const char *sub)
{
    int c = 0;
    size_t l = strlen(sub);
    while ((s = strstr(s, sub)) != NULL) { c++; s += l; }
    return c;
}

static void test_writers(void)
{
    irmae_spectrum a, b, c;
    const irmae_spectrum *sp[3];
    const char *names[3] = { "AE", "IRMAE, l=2 \"deep\"", NULL };
    const char *bad_names[3] = { "a<b & c>d \"q\" 'r'", "\xce\xbb=2 \xc3\xbc\xff\x01 end", "tab\there" };
    char csv[128], svg[128], svg2[128], why[160], cmd[512];
    irmae_rng rng = irmae_rng_seed(41);
    float x[200 * 6];
    int rc, i;
    out_path(csv, sizeof csv, "test_analysis_spectra.csv");
    out_path(svg, sizeof svg, "test_analysis_spectra.svg");
    out_path(svg2, sizeof svg2, "test_analysis_spectra_long.svg");
    for (i = 0; i < 200 * 6; i++) x[i] = irmae_rng_normal(&rng) * (float)(1 + i % 6);
    rc = irmae_spectrum_compute(&a, x, 200, 6);
    rc |= irmae_spectrum_compute(&b, x, 100, 4);
    rc |= irmae_spectrum_compute(&c, x, 120, 5);
    CHECK(rc == 0, "writer spectra rc %d", rc);
    sp[0] = &a; sp[1] = &b; sp[2] = &c;

    /* CSV round trip */
    rc = irmae_spectra_write_csv(csv, sp, names, 3);
    CHECK(rc == 0, "write_csv rc %d (%s)", rc, irmae_error_detail());
    {
        long len = 0;
        char *buf = read_file(csv, &len), *line, *save;
        int row = 0, ok = 1;
        CHECK(buf != NULL, "csv not readable");
        if (buf) {
            line = buf;
            while (line && *line) {
                char *fields[8];
                int nf;
                save = strchr(line, '\n');
                if (save) *save = 0;
                nf = csv_split(line, fields, 8);
                if (row == 0) {
                    CHECK(nf == 4 && !strcmp(fields[0], "index") && !strcmp(fields[1], "AE") &&
                          !strcmp(fields[2], "IRMAE, l=2 \"deep\"") && !strcmp(fields[3], "spectrum 3"),
                          "csv header: %d fields", nf);
                } else {
                    int s;
                    if (nf != 4 || atoi(fields[0]) != row) { ok = 0; printf("csv row %d: %d fields\n", row, nf); }
                    else
                        for (s = 0; s < 3; s++) {
                            if (row <= sp[s]->n) {
                                char *end;
                                double v = strtod(fields[s + 1], &end);
                                if (*end || v != sp[s]->normalized[row - 1]) { ok = 0; printf("csv row %d col %d: '%s'\n", row, s, fields[s + 1]); }
                            } else if (fields[s + 1][0]) { ok = 0; printf("csv row %d col %d not empty\n", row, s); }
                        }
                }
                row++;
                line = save ? save + 1 : NULL;
            }
            CHECK(ok && row == 7, "csv body: ok %d, %d lines (want 7)", ok, row);
            free(buf);
        }
    }
    /* SVG */
    rc = irmae_spectra_write_svg(svg, sp, bad_names, 3, "Spectra: AE & IRMAE <l=2>");
    CHECK(rc == 0, "write_svg rc %d (%s)", rc, irmae_error_detail());
    {
        char *buf = read_file(svg, NULL);
        CHECK(buf != NULL, "svg not readable");
        if (buf) {
            CHECK(!strncmp(buf, "<?xml", 5) && strstr(buf, "<svg") != NULL, "svg header");
            CHECK(xml_check(buf, why, sizeof why), "svg not well-formed: %s", why);
            CHECK(count_substr(buf, "<polyline") == 3, "svg polylines %d", count_substr(buf, "<polyline"));
            CHECK(strstr(buf, "a&lt;b &amp; c&gt;d &quot;q&quot; &apos;r&apos;") != NULL, "svg name escaping");
            CHECK(strstr(buf, "\xce\xbb=2 \xc3\xbc?? end") != NULL, "svg utf-8 kept, invalid bytes replaced");
            CHECK(strstr(buf, "Spectra: AE &amp; IRMAE &lt;l=2&gt;") != NULL, "svg title escaping");
            CHECK(strchr(buf, '\xff') == NULL && strstr(buf, "href") == NULL, "svg: no raw invalid byte, no links");
            CHECK(count_substr(buf, "<circle") == 6 + 4 + 5, "svg markers %d", count_substr(buf, "<circle"));
            free(buf);
        }
    }
    /* long spectrum (no markers), NULL names and title */
    {
        irmae_spectrum big;
        const irmae_spectrum *one[1];
        float *xb = FALLOC(300 * 150);
        for (i = 0; i < 300 * 150; i++) xb[i] = irmae_rng_normal(&rng);
        rc = irmae_spectrum_compute(&big, xb, 300, 150);
        one[0] = &big;
        rc |= irmae_spectra_write_svg(svg2, one, NULL, 1, NULL);
        CHECK(rc == 0, "long svg rc %d", rc);
        {
            char *buf = read_file(svg2, NULL);
            if (buf) {
                char *pts = strstr(buf, "points=\"");
                int commas = 0;
                CHECK(xml_check(buf, why, sizeof why), "long svg not well-formed: %s", why);
                if (pts) for (pts += 8; *pts && *pts != '"'; pts++) commas += *pts == ',';
                CHECK(commas == 150, "long svg: %d points", commas);
                CHECK(strstr(buf, "spectrum 1") != NULL && strstr(buf, "<circle") == NULL, "long svg legend / markers");
                free(buf);
            } else CHECK(0, "long svg not readable");
        }
        irmae_spectrum_free(&big);
        free(xb);
    }
    /* python peer */
    {
        const char *py = getenv("IRMAE_PYTHON");
        FILE *pf;
        if (!py || !*py) py = "/usr/bin/python3";
        pf = fopen(py, "rb");
        if (!pf) printf("SKIP: python peer %s not found (SVG xml.etree parse)\n", py);
        else {
            int st;
            fclose(pf);
            snprintf(cmd, sizeof cmd,
                     "\"%s\" -c \"import sys, xml.etree.ElementTree as E\n"
                     "for p in sys.argv[1:]:\n"
                     "    r = E.parse(p).getroot()\n"
                     "    assert r.tag == '{http://www.w3.org/2000/svg}svg', r.tag\n"
                     "    assert len(r.findall('.//{http://www.w3.org/2000/svg}polyline')) >= 1\" \"%s\" \"%s\"",
                     py, svg, svg2);
            st = system(cmd);
            CHECK(st == 0, "python xml.etree could not parse the SVG files (status %d)", st);
        }
    }
    /* writer errors */
    {
        const irmae_spectrum *withnull[2];
        irmae_spectrum empty;
        memset(&empty, 0, sizeof empty);
        withnull[0] = &a; withnull[1] = NULL;
        CHECK(irmae_spectra_write_csv("/nonexistent-dir/x.csv", sp, names, 3) == IRMAE_ERR_IO, "csv io error");
        CHECK(irmae_spectra_write_svg("/nonexistent-dir/x.svg", sp, names, 3, "t") == IRMAE_ERR_IO, "svg io error");
        CHECK(irmae_spectra_write_csv(NULL, sp, names, 3) == IRMAE_ERR_ARG, "csv NULL path");
        CHECK(irmae_spectra_write_csv(csv, NULL, names, 3) == IRMAE_ERR_ARG, "csv NULL spectra");
        CHECK(irmae_spectra_write_csv(csv, sp, names, 0) == IRMAE_ERR_ARG, "csv count 0");
        CHECK(irmae_spectra_write_csv(csv, withnull, names, 2) == IRMAE_ERR_ARG, "csv NULL entry");
        withnull[1] = &empty;
        CHECK(irmae_spectra_write_svg(svg, withnull, names, 2, NULL) == IRMAE_ERR_ARG, "svg empty entry");
        CHECK(irmae_spectra_write_svg(svg, sp, names, -1, NULL) == IRMAE_ERR_ARG, "svg count -1");
    }
    irmae_spectrum_free(&a); irmae_spectrum_free(&b); irmae_spectrum_free(&c);
}

/* irmae_plot_write_svg: points land where the axes say, breaks at missing
   points, log axis by decades, labels, escaping, argument errors */
static char *plot_to_string(const char *path, const irmae_plot_series *s, int count,
                            const irmae_plot_opts *o, int *rc)
{
    *rc = irmae_plot_write_svg(path, s, count, o);
    return *rc ? NULL : read_file(path, NULL);
}

static void test_plot(void)
{
    const double nan = (double)NAN;
    double xa[6] = {0, 1e6, 2e6, 3e6, 4e6, 5e6}, ya[6] = {13, 11, 9, nan, 7, 6};
    double xb[3] = {0, 2.5e6, 5e6}, yb[3] = {0.3, 2.0, 9.7};
    double yl[4] = {1e-4, 0.0, 2e-3, 3e-3}, xl[4] = {10, 20, 30, 40};
    irmae_plot_series s[3];
    irmae_plot_opts o;
    char path[128], why[160], *buf;
    int rc, i;
    out_path(path, sizeof path, "test_analysis_plot.svg");
    memset(&o, 0, sizeof o);
    s[0].name = "IRMAE l=2 <seed 1> & co"; s[0].x = xa; s[0].y = ya; s[0].n = 6;
    s[1].name = "AE"; s[1].x = xb; s[1].y = yb; s[1].n = 3;
    s[2].name = NULL; s[2].x = xb; s[2].y = yb; s[2].n = 0;  /* empty: legend only */
    o.title = "rank@1% vs images"; o.x_label = "images seen"; o.y_label = "rank@1%"; o.markers = 1;
    buf = plot_to_string(path, s, 3, &o, &rc);
    CHECK(rc == 0 && buf, "plot rc %d (%s)", rc, irmae_error_detail());
    if (buf) {
        CHECK(xml_check(buf, why, sizeof why), "plot svg not well-formed: %s", why);
        /* series 0 is broken by its NaN: two lines; series 1 one line */
        CHECK(count_substr(buf, "<polyline") == 3, "plot polylines %d (want 3)", count_substr(buf, "<polyline"));
        CHECK(count_substr(buf, "<circle") == 5 + 3, "plot markers %d (want 8)", count_substr(buf, "<circle"));
        /* x spans 0..5M over [80, 700]; y 0..15 (0.3 .. 13 in steps of 5) over [416, 48] */
        CHECK(strstr(buf, "points=\"80.00,") != NULL, "plot: x = 0 at the left edge");
        CHECK(strstr(buf, "700.00,268.80") != NULL, "plot: (5M, 6) at the right edge, y = 416 - 6/15 * 368");
        CHECK(strstr(buf, ">5M</text>") && strstr(buf, ">1M</text>") && strstr(buf, ">15</text>") &&
              strstr(buf, ">0</text>"), "plot: tick labels 0, 15, 1M, 5M");
        CHECK(strstr(buf, "IRMAE l=2 &lt;seed 1&gt; &amp; co") && strstr(buf, "series 3") &&
              strstr(buf, "rank@1% vs images") && strstr(buf, "images seen"), "plot: legend and labels");
        free(buf);
    }
    /* log axis: y <= 0 is left out (and breaks the line), decades 1e-4 .. 1e-2 */
    s[0].name = "mse"; s[0].x = xl; s[0].y = yl; s[0].n = 4;
    memset(&o, 0, sizeof o);
    o.log_y = 1;
    buf = plot_to_string(path, s, 1, &o, &rc);
    CHECK(rc == 0 && buf, "log plot rc %d", rc);
    if (buf) {
        CHECK(xml_check(buf, why, sizeof why), "log plot not well-formed: %s", why);
        CHECK(count_substr(buf, "<polyline") == 2 && count_substr(buf, "<circle") == 0, "log plot: 2 lines, no markers");
        CHECK(strstr(buf, ">0.0001</text>") && strstr(buf, ">0.001</text>") && strstr(buf, ">0.01</text>"),
              "log plot: decade labels");
        CHECK(strstr(buf, "80.00,416.00") != NULL, "log plot: (10, 1e-4) at the bottom left");
        free(buf);
    }
    /* the legend takes the corner the lines leave free: a rising diagonal
       crosses the top right and bottom left corners (legend top left, at
       x = 80 + 10, y = 48 + 10); a falling one leaves the top right free */
    {
        double d[11], u[11];
        for (i = 0; i <= 10; i++) { d[i] = i; u[i] = 10 - i; }
        s[0].name = "diagonal"; s[0].x = d; s[0].y = d; s[0].n = 11;
        buf = plot_to_string(path, s, 1, NULL, &rc);
        CHECK(buf && strstr(buf, "<rect x=\"90.00\" y=\"58.00\"") != NULL, "plot legend top left for a rising line");
        free(buf);
        s[0].y = u;
        buf = plot_to_string(path, s, 1, NULL, &rc);
        CHECK(buf && strstr(buf, "<rect x=\"90.00\"") == NULL && strstr(buf, "y=\"58.00\" width") != NULL,
              "plot legend top right for a falling line");
        free(buf);
    }
    /* one point: the axes still have a width */
    s[0].x = xl; s[0].y = yl; s[0].n = 1;
    CHECK(irmae_plot_write_svg(path, s, 1, NULL) == 0, "one-point plot");
    /* errors */
    CHECK(irmae_plot_write_svg(NULL, s, 1, NULL) == IRMAE_ERR_ARG, "plot NULL path");
    CHECK(irmae_plot_write_svg(path, NULL, 1, NULL) == IRMAE_ERR_ARG, "plot NULL series");
    CHECK(irmae_plot_write_svg(path, s, 0, NULL) == IRMAE_ERR_ARG, "plot count 0");
    CHECK(irmae_plot_write_svg(path, s, 65, NULL) == IRMAE_ERR_ARG, "plot count 65");
    s[0].x = NULL; s[0].n = 2;
    CHECK(irmae_plot_write_svg(path, s, 1, NULL) == IRMAE_ERR_ARG, "plot NULL x");
    s[0].x = xl; s[0].n = -1;
    CHECK(irmae_plot_write_svg(path, s, 1, NULL) == IRMAE_ERR_ARG, "plot n < 0");
    s[0].x = xa; s[0].y = ya + 3; s[0].n = 1; /* only a NaN */
    CHECK(irmae_plot_write_svg(path, s, 1, NULL) == IRMAE_ERR_ARG &&
          strstr(irmae_error_detail(), "no point") != NULL, "plot with nothing to draw: %s", irmae_error_detail());
    s[0].y = yb; s[0].n = 3;
    CHECK(irmae_plot_write_svg("/nonexistent-dir/p.svg", s, 1, NULL) == IRMAE_ERR_IO, "plot io error");
}

/* ---------------------------------------------------------------------- */
/* Gaussian                                                               */
/* ---------------------------------------------------------------------- */

/* sample mean (n) and unbiased covariance (n x n) of rows, plain loops */
static void sample_stats(const float *x, int count, int n, double *mean, double *cov)
{
    int r, i, j;
    for (i = 0; i < n; i++) { mean[i] = 0; for (r = 0; r < count; r++) mean[i] += x[r * n + i]; mean[i] /= count; }
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) {
            double s = 0;
            for (r = 0; r < count; r++) s += (x[r * n + i] - mean[i]) * (x[r * n + j] - mean[j]);
            cov[i * n + j] = s / (count - 1);
        }
}

/* |m - mu_i| <= 5 sqrt(S_ii / N) and |C_ij - S_ij| <= 5 sqrt((S_ii S_jj + S_ij^2) / N) */
static void check_moments(const char *label, const double *m, const double *c, const double *mu,
                          const double *sig, int n, double N, double extra)
{
    int i, j, okm = 1, okc = 1;
    for (i = 0; i < n; i++) {
        if (fabs(m[i] - mu[i]) > 5.0 * sqrt(sig[i * n + i] / N)) {
            okm = 0;
            printf("  %s: mean[%d] %.5f vs %.5f\n", label, i, m[i], mu[i]);
        }
        for (j = 0; j < n; j++) {
            double tol = 5.0 * sqrt((sig[i * n + i] * sig[j * n + j] + sig[i * n + j] * sig[i * n + j]) / N) + extra;
            if (fabs(c[i * n + j] - sig[i * n + j]) > tol) {
                okc = 0;
                printf("  %s: cov[%d][%d] %.5f vs %.5f (tol %.4f)\n", label, i, j, c[i * n + j], sig[i * n + j], tol);
            }
        }
    }
    CHECK(okm, "%s: means outside 5 sigma", label);
    CHECK(okc, "%s: covariances outside 5 sigma", label);
}

/* x (count x n) = mu + L z, L lower (n x n) */
static void draw_gaussian(float *x, int count, int n, const double *mu, const double *l, irmae_rng *rng)
{
    double z[16];
    int r, i, j;
    for (r = 0; r < count; r++) {
        for (j = 0; j < n; j++) z[j] = irmae_rng_normal(rng);
        for (i = 0; i < n; i++) {
            double v = mu[i];
            for (j = 0; j <= i; j++) v += l[i * n + j] * z[j];
            x[r * n + i] = (float)v;
        }
    }
}

static void llt(const double *l, int n, double *out)
{
    int i, j, k;
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) {
            double s = 0;
            for (k = 0; k < n; k++) s += l[i * n + k] * l[j * n + k];
            out[i * n + j] = s;
        }
}

static void test_gauss(void)
{
    irmae_rng rng = irmae_rng_seed(51);
    const int n = 5, N = 20000, M = 20000;
    double mu[5] = { 1, -2, 3, 0.5, 10 }, l[25], sig[25], m[25], c[25], cv[25], fm[5];
    float *x = FALLOC(N * n), *y = FALLOC(M * n);
    irmae_gauss g;
    int i, j, rc, upper0 = 1;
    double worst = 0;
    memset(l, 0, sizeof l);
    for (i = 0; i < n; i++)
        for (j = 0; j <= i; j++) l[i * n + j] = i == j ? 0.5 + 0.3 * i : 0.4 * irmae_rng_normal(&rng);
    llt(l, n, sig);
    draw_gaussian(x, N, n, mu, l, &rng);
    rc = irmae_gauss_fit(&g, x, N, n, 0.0);
    CHECK(rc == 0 && g.n == n, "gauss_fit rc %d", rc);
    if (rc) { free(x); free(y); return; }
    for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (g.chol[i * n + j] != 0) upper0 = 0;
    CHECK(upper0, "gauss chol not lower triangular");
    llt(g.chol, n, c);
    check_moments("gauss fit vs truth", g.mean, c, mu, sig, n, N, 0.0);
    /* L L^T reproduces the covariance */
    irmae_covariance(cv, fm, x, N, n);
    for (i = 0; i < n * n; i++) if (fabs(c[i] - cv[i]) > worst) worst = fabs(c[i] - cv[i]);
    CHECK(worst < 1e-12 * cv[0] * 10, "gauss L L^T vs covariance %.3g", worst);
    /* samples of the fit */
    rc = irmae_gauss_sample(&g, y, M, &rng);
    CHECK(rc == 0, "gauss_sample rc %d", rc);
    sample_stats(y, M, n, m, cv);
    check_moments("gauss samples vs fit", m, cv, g.mean, c, n, M, 0.0);
    irmae_gauss_free(&g);
    CHECK(g.mean == NULL && g.chol == NULL, "gauss_free zeroes");

    /* reg adds to the diagonal */
    rc = irmae_gauss_fit(&g, x, N, n, 0.25);
    irmae_covariance(cv, fm, x, N, n);
    llt(g.chol, n, c);
    worst = 0;
    for (i = 0; i < n; i++) for (j = 0; j < n; j++)
        if (fabs(c[i * n + j] - cv[i * n + j] - (i == j ? 0.25 : 0.0)) > worst) worst = fabs(c[i * n + j] - cv[i * n + j] - (i == j ? 0.25 : 0.0));
    CHECK(rc == 0 && worst < 1e-12, "gauss reg: %.3g", worst);
    irmae_gauss_free(&g);

    /* rank-deficient data (3-dim subspace of R^6) with reg = 0 */
    {
        double q[36], proj, wp = 0, scale = 0;
        float *xr = FALLOC(500 * 6), *yr = FALLOC(1000 * 6);
        int r;
        random_orthogonal(q, 6, &rng);
        for (r = 0; r < 500; r++) {
            double z0 = irmae_rng_normal(&rng), z1 = 2 * irmae_rng_normal(&rng), z2 = 3 * irmae_rng_normal(&rng);
            for (j = 0; j < 6; j++) xr[r * 6 + j] = (float)(z0 * q[j] + z1 * q[6 + j] + z2 * q[12 + j]);
        }
        rc = irmae_gauss_fit(&g, xr, 500, 6, 0.0);
        CHECK(rc == 0, "rank-deficient gauss_fit rc %d (%s)", rc, irmae_error_detail());
        if (rc == 0) {
            rc = irmae_gauss_sample(&g, yr, 1000, &rng);
            for (r = 0; r < 1000; r++) {
                double nrm = 0;
                for (j = 0; j < 6; j++) nrm += (double)yr[r * 6 + j] * yr[r * 6 + j];
                if (nrm > scale) scale = nrm;
                for (i = 3; i < 6; i++) { /* components along the 3 unused directions */
                    proj = 0;
                    for (j = 0; j < 6; j++) proj += (yr[r * 6 + j] - g.mean[j]) * q[i * 6 + j];
                    if (fabs(proj) > wp) wp = fabs(proj);
                }
            }
            CHECK(rc == 0 && wp < 1e-5 * sqrt(scale), "rank-deficient samples leave the subspace by %.3g", wp);
            irmae_gauss_free(&g);
        }
        free(xr); free(yr);
    }
    free(x); free(y);
}

/* ---------------------------------------------------------------------- */
/* GMM                                                                    */
/* ---------------------------------------------------------------------- */

static void gmm_case(int n, uint64_t seed)
{
    irmae_rng rng = irmae_rng_seed(seed);
    const int K = 3, N = 4000, M = 30000;
    const double w[3] = { 0.5, 0.3, 0.2 };
    double mu[3][8], l[3][64], sig[3][64], q[64];
    float *x = FALLOC(N * n), *y = FALLOC(M * n);
    int *lab = (int *)xalloc((size_t)N, sizeof(int));
    irmae_gmm g, g2;
    char label[64];
    int c, i, j, r, rc, match[3], used[3] = { 0, 0, 0 }, ok = 1;
    /* means 12 apart along different axes; covariances Q^T diag(0.3..2) Q */
    for (c = 0; c < K; c++) {
        double d[8];
        for (j = 0; j < n; j++) mu[c][j] = (c == 1 && j == 0) || (c == 2 && j == 1) ? 12.0 : 0.0;
        mu[c][n - 1] += c == 0 ? -3.0 : 0.0;
        random_orthogonal(q, n, &rng);
        for (j = 0; j < n; j++) d[j] = 0.3 + 1.7 * (double)((j + c) % n) / (n > 1 ? n - 1 : 1);
        build_sym(sig[c], q, d, n);
        /* lower Cholesky of sig (test's own) */
        memset(l[c], 0, sizeof l[c]);
        for (j = 0; j < n; j++) {
            double s = sig[c][j * n + j];
            int k;
            for (k = 0; k < j; k++) s -= l[c][j * n + k] * l[c][j * n + k];
            l[c][j * n + j] = sqrt(s);
            for (i = j + 1; i < n; i++) {
                double t = sig[c][i * n + j];
                for (k = 0; k < j; k++) t -= l[c][i * n + k] * l[c][j * n + k];
                l[c][i * n + j] = t / l[c][j * n + j];
            }
        }
    }
    for (r = 0; r < N; r++) {
        double u = irmae_rng_uniform(&rng);
        c = u < w[0] ? 0 : u < w[0] + w[1] ? 1 : 2;
        lab[r] = c;
        draw_gaussian(x + r * n, 1, n, mu[c], l[c], &rng);
    }
    rc = irmae_gmm_fit(&g, x, N, n, K, 300, 1e-10, 1e-6, &rng);
    sprintf(label, "gmm %d-D", n);
    CHECK(rc == 0, "%s: rc %d (%s)", label, rc, irmae_error_detail());
    if (rc) { free(x); free(y); free(lab); return; }
    CHECK(g.k == K && g.n == n && g.iters >= 1 && g.iters <= 300 && fabs(g.loglik) < 1e300,
          "%s: k %d n %d iters %d loglik %g", label, g.k, g.n, g.iters, g.loglik);
    printf("%s: %d EM iterations, mean log-likelihood %.6f\n", label, g.iters, g.loglik);
    /* match fitted components to the truth by nearest mean */
    for (c = 0; c < K; c++) {
        double best = 1e300;
        match[c] = -1;
        for (i = 0; i < K; i++) {
            double d2 = 0;
            for (j = 0; j < n; j++) d2 += (g.means[i * n + j] - mu[c][j]) * (g.means[i * n + j] - mu[c][j]);
            if (d2 < best) { best = d2; match[c] = i; }
        }
        used[match[c]]++;
    }
    CHECK(used[0] == 1 && used[1] == 1 && used[2] == 1, "%s: components not one-to-one", label);
    if (used[0] == 1 && used[1] == 1 && used[2] == 1) {
        for (c = 0; c < K; c++) {
            int fc = match[c];
            double cf[64], wt = 5.0 * sqrt(w[c] * (1 - w[c]) / N);
            char l2[80];
            llt(g.chols + (size_t)fc * n * n, n, cf);
            snprintf(l2, sizeof l2, "%.60s comp %d", label, c);
            CHECK(fabs(g.weights[fc] - w[c]) <= wt, "%s: weight %.4f vs %.4f (tol %.4f)", l2, g.weights[fc], w[c], wt);
            check_moments(l2, g.means + (size_t)fc * n, cf, mu[c], sig[c], n, w[c] * N, 1e-6);
        }
    }
    /* deterministic: same seed, same bits */
    {
        irmae_rng r1 = irmae_rng_seed(seed + 1), r2 = irmae_rng_seed(seed + 1);
        irmae_gmm ga, gb;
        int rca = irmae_gmm_fit(&ga, x, N, n, K, 50, 1e-10, 1e-6, &r1);
        int rcb = irmae_gmm_fit(&gb, x, N, n, K, 50, 1e-10, 1e-6, &r2);
        CHECK(rca == 0 && rcb == 0 && ga.loglik == gb.loglik &&
              !memcmp(ga.means, gb.means, (size_t)K * n * sizeof(double)) &&
              !memcmp(ga.chols, gb.chols, (size_t)K * n * n * sizeof(double)), "%s: not deterministic", label);
        irmae_gmm_free(&ga); irmae_gmm_free(&gb);
    }
    /* k = 1 is the ML Gaussian: sample mean, covariance * (N-1)/N + reg */
    rc = irmae_gmm_fit(&g2, x, N, n, 1, 10, 0.0, 1e-3, &rng);
    {
        double cv[64], mm[8], cf[64], worst = 0;
        irmae_covariance(cv, mm, x, N, n);
        llt(g2.chols, n, cf);
        for (i = 0; i < n; i++) {
            if (fabs(g2.means[i] - mm[i]) > worst) worst = fabs(g2.means[i] - mm[i]);
            for (j = 0; j < n; j++) {
                double e = fabs(cf[i * n + j] - (cv[i * n + j] * (N - 1) / N + (i == j ? 1e-3 : 0.0)));
                if (e > worst) worst = e;
            }
        }
        CHECK(rc == 0 && worst < 1e-9 && g2.weights[0] == 1.0, "%s k=1 vs ML Gaussian: %.3g", label, worst);
        CHECK(rc == 0 && g.loglik > g2.loglik + 0.5, "%s: 3 components (%.4f) not better than 1 (%.4f)", label, g.loglik, g2.loglik);
        irmae_gmm_free(&g2);
    }
    /* sampling: fraction nearest to each true mean ~ fitted weights */
    rc = irmae_gmm_sample(&g, y, M, &rng);
    CHECK(rc == 0, "%s: gmm_sample rc %d", label, rc);
    {
        int cnt[3] = { 0, 0, 0 };
        for (r = 0; r < M; r++) {
            int best = 0;
            double bd = 1e300;
            for (c = 0; c < K; c++) {
                double d2 = 0;
                for (j = 0; j < n; j++) d2 += (y[r * n + j] - mu[c][j]) * (y[r * n + j] - mu[c][j]);
                if (d2 < bd) { bd = d2; best = c; }
            }
            cnt[best]++;
        }
        for (c = 0; c < K; c++) {
            double f = (double)cnt[c] / M, wf = used[0] == 1 && used[1] == 1 ? g.weights[match[c]] : w[c];
            if (fabs(f - wf) > 5.0 * sqrt(wf * (1 - wf) / M) + 2e-3) { ok = 0; printf("  %s sample frac %d: %.4f vs %.4f\n", label, c, f, wf); }
        }
        CHECK(ok, "%s: sample component fractions", label);
    }
    irmae_gmm_free(&g);
    CHECK(g.weights == NULL && g.k == 0, "gmm_free zeroes");
    free(x); free(y); free(lab);
}

/* the converged fit is at least as likely as the 12-iteration one */
static int loglik_ok(double final, double after12) { return final >= after12 - 1e-9; }

static void test_gmm(void)
{
    gmm_case(2, 61);
    gmm_case(5, 62);
    { /* overlapping mixture (means 2.5 sd apart): EM iterates, and its
         log-likelihood never decreases from one iteration to the next */
        irmae_rng rng = irmae_rng_seed(64);
        const int N = 3000;
        float *x = FALLOC(N * 2);
        double prev = -1e300, m0, m1;
        irmae_gmm g;
        int r, t, rc, mono = 1;
        for (r = 0; r < N; r++) {
            int c = irmae_rng_uniform(&rng) < 0.6f ? 0 : 1;
            x[r * 2] = (float)(2.5 * c + irmae_rng_normal(&rng));
            x[r * 2 + 1] = irmae_rng_normal(&rng);
        }
        for (t = 1; t <= 12; t++) {
            irmae_rng r1 = irmae_rng_seed(65);
            rc = irmae_gmm_fit(&g, x, N, 2, 2, t, 0.0, 1e-9, &r1);
            if (rc || g.iters != t || g.loglik < prev - 1e-9) {
                mono = 0;
                printf("  EM step %d: rc %d iters %d loglik %.12f (prev %.12f)\n", t, rc, g.iters, g.loglik, prev);
            }
            prev = g.loglik;
            irmae_gmm_free(&g);
        }
        CHECK(mono, "EM log-likelihood decreased");
        {
            irmae_rng r1 = irmae_rng_seed(65);
            rc = irmae_gmm_fit(&g, x, N, 2, 2, 1000, 1e-10, 1e-9, &r1);
            CHECK(rc == 0 && g.iters > 3, "overlapping GMM: rc %d, %d iterations", rc, g.iters);
            if (rc == 0) {
                printf("overlapping 2-D GMM: %d EM iterations, mean log-likelihood %.6f\n", g.iters, g.loglik);
                m0 = g.means[0] < g.means[2] ? g.means[0] : g.means[2];
                m1 = g.means[0] < g.means[2] ? g.means[2] : g.means[0];
                CHECK(fabs(m0) < 0.25 && fabs(m1 - 2.5) < 0.25 && loglik_ok(g.loglik, prev),
                      "overlapping GMM means %.3f %.3f", m0, m1);
                irmae_gmm_free(&g);
            }
        }
        free(x);
    }
    { /* rank-deficient data with reg = 0: named numeric error; with reg > 0: fine */
        irmae_rng rng = irmae_rng_seed(63);
        float x[300 * 3];
        irmae_gmm g;
        int r, rc;
        for (r = 0; r < 300; r++) {
            float z = irmae_rng_normal(&rng);
            x[r * 3] = z; x[r * 3 + 1] = 2 * z; x[r * 3 + 2] = (float)(r % 2) * 10.0f;
        }
        rc = irmae_gmm_fit(&g, x, 300, 3, 2, 50, 1e-8, 0.0, &rng);
        CHECK(rc == IRMAE_ERR_NUMERIC && g.weights == NULL, "gmm singular reg=0: rc %d", rc);
        rc = irmae_gmm_fit(&g, x, 300, 3, 2, 50, 1e-8, 1e-4, &rng);
        CHECK(rc == 0 && fabs(g.weights[0] - 0.5) < 1e-9, "gmm singular reg>0: rc %d w %g", rc, rc ? 0.0 : g.weights[0]);
        irmae_gmm_free(&g);
    }
}

/* ---------------------------------------------------------------------- */
/* PCA                                                                    */
/* ---------------------------------------------------------------------- */

static void test_pca(void)
{
    irmae_rng rng = irmae_rng_seed(71);
    const int n = 4, N = 20000;
    const double lam[4] = { 9, 4, 1, 0.25 }, mu[4] = { 1, 2, -3, 4 };
    double q[16], sig[16], l[16];
    float *x = FALLOC(N * n), *grid;
    irmae_pca p;
    int i, j, k, rc;
    random_orthogonal(q, n, &rng);
    build_sym(sig, q, lam, n);
    /* sample via L = Q^T diag(sqrt(lam)) (not triangular: draw by hand) */
    for (i = 0; i < n; i++) for (j = 0; j < n; j++) l[i * n + j] = q[j * n + i] * sqrt(lam[j]);
    for (k = 0; k < N; k++) {
        double z[4];
        for (j = 0; j < n; j++) z[j] = irmae_rng_normal(&rng);
        for (i = 0; i < n; i++) {
            double v = mu[i];
            for (j = 0; j < n; j++) v += l[i * n + j] * z[j];
            x[k * n + i] = (float)v;
        }
    }
    rc = irmae_pca_fit(&p, x, N, n);
    CHECK(rc == 0 && p.n == n, "pca_fit rc %d", rc);
    if (rc) { free(x); return; }
    for (i = 0; i < n; i++) {
        double dot = 0, theta2 = 0, big = 0, bigv = 0, sd = sqrt(lam[i]);
        for (j = 0; j < n; j++) {
            dot += p.axes[i * n + j] * q[i * n + j];
            if (fabs(p.axes[i * n + j]) > big) { big = fabs(p.axes[i * n + j]); bigv = p.axes[i * n + j]; }
        }
        for (j = 0; j < n; j++) if (j != i) theta2 += lam[i] * lam[j] / (N * (lam[i] - lam[j]) * (lam[i] - lam[j]));
        /* std relative error ~ 1/sqrt(2N); axis angle ~ sqrt(theta2) */
        CHECK(fabs(p.stddev[i] - sd) <= 5.0 * sd / sqrt(2.0 * N), "pca std[%d] %.5f vs %.5f", i, p.stddev[i], sd);
        CHECK(fabs(dot) >= cos(5.0 * sqrt(theta2)), "pca axis %d: |cos| %.6f < %.6f", i, fabs(dot), cos(5.0 * sqrt(theta2)));
        CHECK(bigv > 0, "pca axis %d sign convention", i);
        CHECK(fabs(p.mean[i] - mu[i]) <= 5.0 * sqrt(sig[i * n + i] / N), "pca mean[%d] %.5f vs %.5f", i, p.mean[i], mu[i]);
    }
    /* grid */
    grid = FALLOC(5 * 7 * n);
    rc = irmae_pca_grid(&p, grid, 5, 7, 2.0);
    CHECK(rc == 0, "pca_grid rc %d", rc);
    {
        int okc = 1, okr = 1, okcorner = 1;
        for (j = 0; j < n; j++) {
            double corner = p.mean[j] - 2 * p.stddev[0] * p.axes[j] - 2 * p.stddev[1] * p.axes[n + j];
            double lastcol = p.mean[j] + 1 * p.stddev[0] * p.axes[j] + 2 * p.stddev[1] * p.axes[n + j]; /* r=3: a=+1 */
            if (grid[(2 * 7 + 3) * n + j] != (float)p.mean[j]) okc = 0;               /* centre */
            if (fabs(grid[(0 * 7 + 0) * n + j] - corner) > 1e-5 * (1 + fabs(corner))) okcorner = 0;
            if (fabs(grid[(3 * 7 + 6) * n + j] - lastcol) > 1e-5 * (1 + fabs(lastcol))) okr = 0;
        }
        CHECK(okc, "pca_grid centre is not the mean");
        CHECK(okcorner, "pca_grid corner (-2, -2)");
        CHECK(okr, "pca_grid (a=+1, b=+2)");
        /* the centre row moves only along axis 1, the centre column only along axis 0 */
        for (k = 0; k < 7; k++) {
            double b = -2.0 + 4.0 * k / 6.0, err = 0;
            for (j = 0; j < n; j++) err += fabs(grid[(2 * 7 + k) * n + j] - (p.mean[j] + b * p.stddev[1] * p.axes[n + j]));
            if (err > 1e-5 * 10) okr = 0;
        }
        CHECK(okr, "pca_grid centre row");
    }
    rc = irmae_pca_grid(&p, grid, 1, 1, 2.0);
    CHECK(rc == 0 && grid[0] == (float)p.mean[0] && grid[3] == (float)p.mean[3], "pca_grid 1x1 is the mean");
    CHECK(irmae_pca_grid(&p, grid, 0, 3, 2.0) == IRMAE_ERR_ARG, "pca_grid rows 0");
    CHECK(irmae_pca_grid(&p, grid, 3, 3, -1.0) == IRMAE_ERR_ARG, "pca_grid span < 0");
    CHECK(irmae_pca_grid(&p, grid, 3, 3, sqrt(-1.0)) == IRMAE_ERR_ARG, "pca_grid span NaN");
    CHECK(irmae_pca_grid(&p, NULL, 3, 3, 2.0) == IRMAE_ERR_ARG, "pca_grid out NULL");
    CHECK(irmae_pca_grid(&p, grid, INT_MAX, INT_MAX, 2.0) == IRMAE_ERR_OVERFLOW || sizeof(size_t) > 8,
          "pca_grid overflow");
    irmae_pca_free(&p);
    CHECK(p.axes == NULL, "pca_free zeroes");
    { /* n = 1 */
        float one[5] = { 1, 2, 3, 4, 5 }, g3[3];
        rc = irmae_pca_fit(&p, one, 5, 1);
        CHECK(rc == 0 && p.axes[0] == 1.0 && fabs(p.stddev[0] - sqrt(2.5)) < 1e-12, "pca n=1");
        rc = irmae_pca_grid(&p, g3, 3, 1, 2.0);
        CHECK(rc == 0 && g3[1] == 3.0f && fabs(g3[0] - (3 - 2 * sqrt(2.5))) < 1e-5, "pca_grid n=1: %g %g", g3[0], g3[1]);
        irmae_pca_free(&p);
    }
    free(x); free(grid);
}

/* ---------------------------------------------------------------------- */
/* Frechet distance                                                       */
/* ---------------------------------------------------------------------- */

/* Gauss-Jordan inverse of a small matrix; returns 0 if singular */
static int invert(const double *a, double *inv, int n)
{
    double m[16 * 32];
    int i, j, k;
    for (i = 0; i < n; i++)
        for (j = 0; j < 2 * n; j++) m[i * 2 * n + j] = j < n ? a[i * n + j] : (j - n == i);
    for (k = 0; k < n; k++) {
        int piv = k;
        double t;
        for (i = k + 1; i < n; i++) if (fabs(m[i * 2 * n + k]) > fabs(m[piv * 2 * n + k])) piv = i;
        if (m[piv * 2 * n + k] == 0) return 0;
        for (j = 0; j < 2 * n; j++) { t = m[k * 2 * n + j]; m[k * 2 * n + j] = m[piv * 2 * n + j]; m[piv * 2 * n + j] = t; }
        t = m[k * 2 * n + k];
        for (j = 0; j < 2 * n; j++) m[k * 2 * n + j] /= t;
        for (i = 0; i < n; i++)
            if (i != k) {
                t = m[i * 2 * n + k];
                for (j = 0; j < 2 * n; j++) m[i * 2 * n + j] -= t * m[k * 2 * n + j];
            }
    }
    for (i = 0; i < n; i++) for (j = 0; j < n; j++) inv[i * n + j] = m[i * 2 * n + n + j];
    return 1;
}

/* tr sqrt(Ca Cb) by the Denman-Beavers iteration (independent of eigh) */
static double trace_sqrt_product(const double *ca, const double *cb, int n)
{
    double y[16], z[16], yi[16], zi[16];
    int it, i, j, k;
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) {
            double s = 0;
            for (k = 0; k < n; k++) s += ca[i * n + k] * cb[k * n + j];
            y[i * n + j] = s;
            z[i * n + j] = i == j;
        }
    for (it = 0; it < 60; it++) {
        if (!invert(y, yi, n) || !invert(z, zi, n)) break;
        for (i = 0; i < n * n; i++) { y[i] = 0.5 * (y[i] + zi[i]); z[i] = 0.5 * (z[i] + yi[i]); }
    }
    {
        double tr = 0;
        for (i = 0; i < n; i++) tr += y[i * n + i];
        return tr;
    }
}

static void test_frechet(void)
{
    irmae_rng rng = irmae_rng_seed(81);
    const int d = 8, na = 500;
    float *a = FALLOC(na * d), *b = FALLOC(na * d);
    double fd, prev = -1;
    int i, j, rc, mono = 1;
    for (i = 0; i < na; i++)
        for (j = 0; j < d; j++) a[i * d + j] = (float)((1 + j) * irmae_rng_normal(&rng) + (j ? 0.3 * a[i * d + j - 1] : 0));
    rc = irmae_frechet_distance(&fd, a, na, a, na, d);
    CHECK(rc == 0 && fabs(fd) < 1e-6, "frechet identical: %.3g (rc %d)", fd, rc);
    /* same set in another order */
    for (i = 0; i < na; i++) memcpy(b + i * d, a + (na - 1 - i) * d, d * sizeof(float));
    rc = irmae_frechet_distance(&fd, a, na, b, na, d);
    CHECK(rc == 0 && fabs(fd) < 1e-6, "frechet reordered: %.3g", fd);
    /* mean shift t along axis 0: distance t^2, increasing */
    {
        static const double ts[6] = { 0.0, 0.25, 0.5, 1.0, 2.0, 4.0 };
        int k;
        for (k = 0; k < 6; k++) {
            for (i = 0; i < na * d; i++) b[i] = a[i] + (i % d == 0 ? (float)ts[k] : 0.0f);
            rc = irmae_frechet_distance(&fd, a, na, b, na, d);
            CHECK(rc == 0 && fabs(fd - ts[k] * ts[k]) < 1e-4 * (1 + ts[k] * ts[k]), "frechet shift %.2f: %.8f", ts[k], fd);
            if (k && !(fd > prev)) mono = 0;
            prev = fd;
        }
        CHECK(mono, "frechet not increasing with the shift");
    }
    /* two diagonal Gaussians, exact covariances: closed form */
    {
        double ca[4] = { 0.5, 1.5, 2.0, 3.25 }, cb[4] = { 1.0, 0.25, 2.0, 5.0 };
        double ma[4] = { 1, 0, -2, 0 }, mb[4] = { 0, 2, -2, 0.5 }, expect = 0;
        float *xa = design_codes(ca, 4), *xb = design_codes(cb, 4);
        for (i = 0; i < 8; i++)
            for (j = 0; j < 4; j++) { xa[i * 4 + j] += (float)ma[j]; xb[i * 4 + j] += (float)mb[j]; }
        for (j = 0; j < 4; j++) {
            double va = 2 * ca[j] * ca[j] / 7, vb = 2 * cb[j] * cb[j] / 7;
            expect += (ma[j] - mb[j]) * (ma[j] - mb[j]) + (sqrt(va) - sqrt(vb)) * (sqrt(va) - sqrt(vb));
        }
        rc = irmae_frechet_distance(&fd, xa, 8, xb, 8, 4);
        CHECK(rc == 0 && fabs(fd - expect) < 1e-12 * expect, "frechet diagonal: %.17g vs %.17g", fd, expect);
        free(xa); free(xb);
    }
    /* general covariances vs Denman-Beavers, and symmetry */
    {
        const int n = 4, m = 300;
        float *xa = FALLOC(m * n), *xb = FALLOC(m * n);
        double ca[16], cb[16], ma[4], mb[4], expect, fd2;
        for (i = 0; i < m; i++)
            for (j = 0; j < n; j++) {
                xa[i * n + j] = (float)(irmae_rng_normal(&rng) + (j ? 0.8 * xa[i * n + j - 1] : 0));
                xb[i * n + j] = (float)(0.5 + 2 * irmae_rng_normal(&rng) - (j ? 0.5 * xb[i * n + j - 1] : 0));
            }
        irmae_covariance(ca, ma, xa, m, n);
        irmae_covariance(cb, mb, xb, m, n);
        expect = 0;
        for (j = 0; j < n; j++) expect += (ma[j] - mb[j]) * (ma[j] - mb[j]) + ca[j * n + j] + cb[j * n + j];
        expect -= 2 * trace_sqrt_product(ca, cb, n);
        rc = irmae_frechet_distance(&fd, xa, m, xb, m, n);
        rc |= irmae_frechet_distance(&fd2, xb, m, xa, m, n);
        CHECK(rc == 0 && fabs(fd - expect) < 1e-9 * expect, "frechet general: %.17g vs Denman-Beavers %.17g", fd, expect);
        CHECK(rc == 0 && fabs(fd - fd2) < 1e-9 * expect, "frechet not symmetric: %.17g %.17g", fd, fd2);
        free(xa); free(xb);
    }
    CHECK(irmae_frechet_distance(&fd, a, 1, a, na, d) == IRMAE_ERR_ARG, "frechet na = 1");
    CHECK(irmae_frechet_distance(&fd, a, na, a, na, 0) == IRMAE_ERR_ARG, "frechet d = 0");
    CHECK(irmae_frechet_distance(&fd, a, na, NULL, na, d) == IRMAE_ERR_ARG, "frechet NULL b");
    CHECK(irmae_frechet_distance(NULL, a, na, a, na, d) == IRMAE_ERR_ARG, "frechet NULL out");
    b[17] = (float)HUGE_VAL;
    CHECK(irmae_frechet_distance(&fd, a, na, b, na, d) == IRMAE_ERR_NUMERIC, "frechet Inf in b");
    free(a); free(b);
}

/* ---------------------------------------------------------------------- */
/* thread-count independence (OpenMP builds)                              */
/* ---------------------------------------------------------------------- */

static void test_threads(void)
{
#ifdef _OPENMP
    irmae_rng rng = irmae_rng_seed(91);
    const int N = 1200, n = 128;
    float *x = FALLOC(N * n);
    double *c1 = DALLOC(n * n), *c2 = DALLOC(n * n);
    irmae_gmm g1, g2;
    int i, rc1, rc2, saved = omp_get_max_threads();
    for (i = 0; i < N * n; i++) x[i] = irmae_rng_normal(&rng) + (float)((i / n) % 3) * 3.0f;
    omp_set_num_threads(1);
    rc1 = irmae_covariance(c1, NULL, x, N, n);
    {
        irmae_rng r = irmae_rng_seed(92);
        rc1 |= irmae_gmm_fit(&g1, x, N, 8, 3, 20, 0.0, 1e-6, &r); /* first N*8 values as 8-d rows */
    }
    omp_set_num_threads(saved > 1 ? saved : 2);
    rc2 = irmae_covariance(c2, NULL, x, N, n);
    {
        irmae_rng r = irmae_rng_seed(92);
        rc2 |= irmae_gmm_fit(&g2, x, N, 8, 3, 20, 0.0, 1e-6, &r);
    }
    omp_set_num_threads(saved);
    CHECK(rc1 == 0 && rc2 == 0 && !memcmp(c1, c2, (size_t)n * n * sizeof(double)),
          "covariance differs between 1 and %d threads", saved > 1 ? saved : 2);
    CHECK(rc1 == 0 && rc2 == 0 && g1.loglik == g2.loglik && !memcmp(g1.means, g2.means, 3 * 8 * sizeof(double)),
          "GMM differs between 1 and %d threads", saved > 1 ? saved : 2);
    irmae_gmm_free(&g1); irmae_gmm_free(&g2);
    free(x); free(c1); free(c2);
#else
    printf("SKIP: thread-count independence (built without OpenMP)\n");
#endif
}

/* ---------------------------------------------------------------------- */
/* bad arguments                                                          */
/* ---------------------------------------------------------------------- */

static void test_bad_args(void)
{
    float x[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, out[12];
    double cov[16], mean[4], a[4] = { 1, 0, 0, 1 }, ev[2];
    irmae_rng rng = irmae_rng_seed(1);
    irmae_spectrum s;
    irmae_gauss g;
    irmae_gmm gm;
    irmae_pca p;
    int rc;
    CHECK(irmae_covariance(NULL, mean, x, 3, 4) == IRMAE_ERR_ARG, "cov NULL");
    CHECK(irmae_covariance(cov, mean, NULL, 3, 4) == IRMAE_ERR_ARG, "cov x NULL");
    CHECK(irmae_covariance(cov, mean, x, 1, 4) == IRMAE_ERR_ARG, "cov count 1");
    CHECK(irmae_covariance(cov, mean, x, 3, 0) == IRMAE_ERR_ARG, "cov n 0");
    CHECK(irmae_covariance(cov, mean, x, 3, -2) == IRMAE_ERR_ARG, "cov n < 0");
    CHECK(irmae_covariance(cov, mean, x, 2, INT_MAX) == IRMAE_ERR_OVERFLOW || sizeof(size_t) > 8, "cov overflow");
    x[5] = (float)sqrt(-1.0);
    rc = irmae_covariance(cov, mean, x, 3, 4);
    CHECK(rc == IRMAE_ERR_NUMERIC && strstr(irmae_error_detail(), "x[1][1]") != NULL,
          "cov NaN: rc %d detail '%s'", rc, irmae_error_detail());
    x[5] = 6;
    CHECK(irmae_eigh(ev, NULL, NULL, 2) == IRMAE_ERR_ARG, "eigh NULL a");
    CHECK(irmae_eigh(NULL, NULL, a, 2) == IRMAE_ERR_ARG, "eigh NULL values");
    CHECK(irmae_eigh(ev, NULL, a, 0) == IRMAE_ERR_ARG, "eigh n 0");
    CHECK(irmae_eigh(ev, NULL, a, INT_MAX) == IRMAE_ERR_OVERFLOW || sizeof(size_t) > 8, "eigh overflow");
    a[1] = HUGE_VAL;
    CHECK(irmae_eigh(ev, NULL, a, 2) == IRMAE_ERR_NUMERIC, "eigh Inf");
    a[1] = sqrt(-1.0);
    CHECK(irmae_eigh(ev, NULL, a, 2) == IRMAE_ERR_NUMERIC, "eigh NaN");
    CHECK(irmae_spectrum_compute(NULL, x, 3, 4) == IRMAE_ERR_ARG, "spectrum NULL s");
    CHECK(irmae_spectrum_compute(&s, x, 1, 4) == IRMAE_ERR_ARG && s.values == NULL, "spectrum count 1");
    CHECK(irmae_spectrum_compute(&s, NULL, 3, 4) == IRMAE_ERR_ARG, "spectrum NULL codes");
    x[0] = (float)HUGE_VAL;
    CHECK(irmae_spectrum_compute(&s, x, 3, 4) == IRMAE_ERR_NUMERIC && s.values == NULL && s.n == 0, "spectrum Inf");
    x[0] = 1;
    CHECK(irmae_spectrum_rank(NULL, 0.01) == IRMAE_ERR_ARG, "rank NULL");
    memset(&s, 0, sizeof s);
    CHECK(irmae_spectrum_rank(&s, 0.01) == IRMAE_ERR_ARG, "rank empty");
    irmae_spectrum_free(NULL);
    irmae_spectrum_free(&s);
    CHECK(irmae_gauss_fit(&g, x, 3, 4, -1.0) == IRMAE_ERR_ARG && g.mean == NULL, "gauss reg < 0");
    CHECK(irmae_gauss_fit(&g, x, 3, 4, sqrt(-1.0)) == IRMAE_ERR_ARG, "gauss reg NaN");
    CHECK(irmae_gauss_fit(&g, x, 1, 4, 0.0) == IRMAE_ERR_ARG, "gauss count 1");
    CHECK(irmae_gauss_fit(NULL, x, 3, 4, 0.0) == IRMAE_ERR_ARG, "gauss NULL");
    memset(&g, 0, sizeof g);
    CHECK(irmae_gauss_sample(&g, out, 3, &rng) == IRMAE_ERR_ARG, "gauss_sample unfitted");
    CHECK(irmae_gauss_fit(&g, x, 3, 4, 0.0) == 0, "gauss fit 3x4");
    CHECK(irmae_gauss_sample(&g, out, 3, NULL) == IRMAE_ERR_ARG, "gauss_sample NULL rng");
    CHECK(irmae_gauss_sample(&g, out, 0, &rng) == IRMAE_ERR_ARG, "gauss_sample count 0");
    irmae_gauss_free(&g);
    irmae_gauss_free(NULL);
    CHECK(irmae_gmm_fit(&gm, x, 3, 4, 4, 10, 1e-6, 1e-6, &rng) == IRMAE_ERR_ARG && gm.weights == NULL, "gmm k > count");
    CHECK(irmae_gmm_fit(&gm, x, 3, 4, 0, 10, 1e-6, 1e-6, &rng) == IRMAE_ERR_ARG, "gmm k 0");
    CHECK(irmae_gmm_fit(&gm, x, 3, 4, 1, 0, 1e-6, 1e-6, &rng) == IRMAE_ERR_ARG, "gmm max_iter 0");
    CHECK(irmae_gmm_fit(&gm, x, 3, 4, 1, 10, -1.0, 1e-6, &rng) == IRMAE_ERR_ARG, "gmm tol < 0");
    CHECK(irmae_gmm_fit(&gm, x, 3, 4, 1, 10, 1e-6, -1e-6, &rng) == IRMAE_ERR_ARG, "gmm reg < 0");
    CHECK(irmae_gmm_fit(&gm, x, 3, 4, 1, 10, 1e-6, 1e-6, NULL) == IRMAE_ERR_ARG, "gmm rng NULL");
    CHECK(irmae_gmm_fit(&gm, x, 1, 4, 1, 10, 1e-6, 1e-6, &rng) == IRMAE_ERR_ARG, "gmm count 1");
    memset(&gm, 0, sizeof gm);
    CHECK(irmae_gmm_sample(&gm, out, 3, &rng) == IRMAE_ERR_ARG, "gmm_sample unfitted");
    irmae_gmm_free(NULL);
    CHECK(irmae_pca_fit(&p, x, 1, 4) == IRMAE_ERR_ARG && p.mean == NULL, "pca count 1");
    CHECK(irmae_pca_fit(NULL, x, 3, 4) == IRMAE_ERR_ARG, "pca NULL");
    memset(&p, 0, sizeof p);
    CHECK(irmae_pca_grid(&p, out, 2, 2, 2.0) == IRMAE_ERR_ARG, "pca_grid unfitted");
    irmae_pca_free(NULL);
}

int main(void)
{
    FILE *probe = fopen("build/.test_analysis_probe", "wb");
    if (probe) { fclose(probe); remove("build/.test_analysis_probe"); strcpy(g_dir, "build/"); }
    test_eigh();
    test_covariance();
    test_spectrum();
    test_writers();
    test_plot();
    test_gauss();
    test_gmm();
    test_pca();
    test_frechet();
    test_threads();
    test_bad_args();
    printf("test_analysis: %d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
