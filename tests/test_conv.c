/* test_conv.c - the conv2d / conv-transpose2d kernels of irmae.h.

   Fast (im2col + GEMM) vs the direct-loop references for forward,
   backward-data, backward-weights and backward-bias on many shapes;
   finite differences on the references; accumulate / overwrite contracts;
   the adjoint identity between convT and conv; invalid descs and NULL
   pointers; bit-identical results for 1 and 2 threads; a timing line.

   Build and run (from the repository root):
     cc -O2 -std=c99 -Wall -Wextra -pedantic -fopenmp tests/test_conv.c -o build/test_conv -lm
     ./build/test_conv */
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"
#include "paths.h"

#include <time.h>

static int g_pass = 0, g_fail = 0;
static double g_worst = 0.0; /* largest |fast - ref| / tolerance seen */

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (cond) g_pass++;                                                    \
        else {                                                                 \
            g_fail++;                                                          \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                        \
            printf(__VA_ARGS__);                                               \
            printf("\n");                                                      \
        }                                                                      \
    } while (0)

static float *falloc(size_t n)
{
    float *p = (float *)malloc((n ? n : 1) * sizeof(float));
    if (!p) { printf("out of memory (%lu floats)\n", (unsigned long)n); exit(2); }
    return p;
}

static void fill(float *x, size_t n, irmae_rng *r)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] = 2.0f * irmae_rng_uniform(r) - 1.0f;
}

static void fill_nan(float *x, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] = (float)NAN;
}

static float *absdup(const float *x, size_t n)
{
    float *y = falloc(n);
    size_t i;
    for (i = 0; i < n; i++) y[i] = fabsf(x[i]);
    return y;
}

static double now(void)
{
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

/* |a - b| <= tol_i with tol_i = 1e-6 + 4 eps sqrt(L) (1 + mag_i), where mag_i is
   the sum of |terms| of element i and L the reduction length. NaN fails. */
static int close_all(const char *what, const char *shape, const float *a, const float *b,
                     const float *mag, size_t n, double L)
{
    size_t i;
    double scale = 4.0 * FLT_EPSILON * sqrt(L);
    for (i = 0; i < n; i++) {
        double tol = 1e-6 + scale * (1.0 + (double)mag[i]);
        double err = fabs((double)a[i] - (double)b[i]);
        if (!(err <= tol)) {
            printf("  %s %s: element %lu fast %.9g ref %.9g (tol %.3g)\n", what, shape,
                   (unsigned long)i, (double)a[i], (double)b[i], tol);
            return 0;
        }
        if (err / tol > g_worst) g_worst = err / tol;
    }
    return 1;
}

static size_t nin(const irmae_conv_desc *d) { return (size_t)d->batch * d->in_c * d->in_h * d->in_w; }
static size_t nout(const irmae_conv_desc *d) { return (size_t)d->batch * d->out_c * d->out_h * d->out_w; }
static size_t nw(const irmae_conv_desc *d) { return (size_t)d->in_c * d->out_c * d->k * d->k; }

typedef int (*fwd_fn)(float *, const float *, const float *, const float *, const irmae_conv_desc *, float *);
typedef int (*bwd_fn)(float *, float *, float *, const float *, const float *, const float *,
                      const irmae_conv_desc *, float *);
typedef int (*fwd_ref_fn)(float *, const float *, const float *, const float *, const irmae_conv_desc *);
typedef int (*bwd_ref_fn)(float *, float *, float *, const float *, const float *, const float *,
                          const irmae_conv_desc *);

/* Fast vs reference on one shape: forward, backward-data, -weights, -bias.
   Returns 0 if the desc is invalid (not counted), 1 otherwise. */
static int test_shape(int transposed, int batch, int in_c, int in_h, int in_w, int out_c,
                      int k, int s, int p, irmae_rng *rng, int quiet)
{
    irmae_conv_desc d;
    char shape[160];
    size_t ni, no, nwt, ws;
    float *in, *w, *b, *out, *out_r, *dout, *din, *din_r, *dw, *dw_r, *db, *db_r, *work;
    float *ain, *aw, *ab, *adout, *mag, *magw, *magb, *zw, *zb;
    int rc, ok;
    double Lf, Ld, Lw;
    fwd_fn fwd = transposed ? irmae_convt2d_forward : irmae_conv2d_forward;
    bwd_fn bwd = transposed ? irmae_convt2d_backward : irmae_conv2d_backward;
    fwd_ref_fn fwdr = transposed ? irmae_convt2d_forward_ref : irmae_conv2d_forward_ref;
    bwd_ref_fn bwdr = transposed ? irmae_convt2d_backward_ref : irmae_conv2d_backward_ref;

    rc = transposed ? irmae_convt2d_desc(&d, batch, in_c, in_h, in_w, out_c, k, s, p)
                    : irmae_conv2d_desc(&d, batch, in_c, in_h, in_w, out_c, k, s, p);
    if (rc) return 0;
    sprintf(shape, "%s N%d %dx%dx%d -> %dx%dx%d k%d s%d p%d", transposed ? "convT" : "conv",
            batch, in_c, in_h, in_w, out_c, d.out_h, d.out_w, k, s, p);
    if (!quiet) printf("  %s\n", shape);
    ni = nin(&d); no = nout(&d); nwt = nw(&d);
    ws = irmae_conv_workspace(&d);
    in = falloc(ni); w = falloc(nwt); b = falloc((size_t)out_c);
    out = falloc(no); out_r = falloc(no); dout = falloc(no);
    din = falloc(ni); din_r = falloc(ni);
    dw = falloc(nwt); dw_r = falloc(nwt); db = falloc((size_t)out_c); db_r = falloc((size_t)out_c);
    work = ws ? falloc(ws) : NULL;
    fill(in, ni, rng); fill(w, nwt, rng); fill(b, (size_t)out_c, rng); fill(dout, no, rng);
    ain = absdup(in, ni); aw = absdup(w, nwt); ab = absdup(b, (size_t)out_c); adout = absdup(dout, no);

    /* reduction lengths */
    Lf = (double)(transposed ? in_c : in_c) * k * k + 1;
    Ld = (double)out_c * k * k;
    Lw = (double)batch * (transposed ? d.in_h * d.in_w : d.out_h * d.out_w);
    if (Lw < (double)batch * d.out_h * d.out_w) Lw = (double)batch * d.out_h * d.out_w;

    /* forward (output prefilled with NaN: it must be overwritten) */
    fill_nan(out, no);
    rc = fwd(out, in, w, b, &d, work);
    CHECK(rc == 0, "%s forward rc %d (%s)", shape, rc, irmae_error_detail());
    fwdr(out_r, in, w, b, &d);
    mag = falloc(no > ni ? no : ni);
    fwdr(mag, ain, aw, ab, &d);
    ok = close_all("forward", shape, out, out_r, mag, no, Lf);
    CHECK(ok, "%s forward", shape);

    /* forward without bias */
    rc = fwd(out, in, w, NULL, &d, work);
    fwdr(out_r, in, w, NULL, &d);
    ok = rc == 0 && close_all("forward nobias", shape, out, out_r, mag, no, Lf);
    CHECK(ok, "%s forward without bias", shape);

    /* backward: din overwritten (NaN prefill), dw/db accumulate onto random values */
    fill_nan(din, ni);
    fill(dw, nwt, rng); memcpy(dw_r, dw, nwt * sizeof(float));
    fill(db, (size_t)out_c, rng); memcpy(db_r, db, (size_t)out_c * sizeof(float));
    rc = bwd(din, dw, db, dout, in, w, &d, work);
    CHECK(rc == 0, "%s backward rc %d (%s)", shape, rc, irmae_error_detail());
    bwdr(din_r, dw_r, db_r, dout, in, w, &d);
    /* magnitudes: the reference on absolute values, dw/db from |initial| */
    magw = absdup(dw_r, nwt); magb = absdup(db_r, (size_t)out_c);
    zw = falloc(nwt); zb = falloc((size_t)out_c);
    memset(zw, 0, nwt * sizeof(float)); memset(zb, 0, (size_t)out_c * sizeof(float));
    bwdr(mag, zw, zb, adout, ain, aw, &d);
    {
        size_t i;
        for (i = 0; i < nwt; i++) magw[i] = 2.0f * fabsf(dw_r[i]) + zw[i];
        for (i = 0; i < (size_t)out_c; i++) magb[i] = 2.0f * fabsf(db_r[i]) + zb[i];
    }
    ok = close_all("backward-data", shape, din, din_r, mag, ni, Ld);
    CHECK(ok, "%s backward-data", shape);
    ok = close_all("backward-weights", shape, dw, dw_r, magw, nwt, Lw);
    CHECK(ok, "%s backward-weights", shape);
    ok = close_all("backward-bias", shape, db, db_r, magb, (size_t)out_c, Lw);
    CHECK(ok, "%s backward-bias", shape);

    /* each output alone (the others NULL) gives the same values */
    {
        float *din2 = falloc(ni), *dw2 = falloc(nwt), *db2 = falloc((size_t)out_c);
        memset(dw2, 0, nwt * sizeof(float)); memset(db2, 0, (size_t)out_c * sizeof(float));
        fill_nan(din2, ni);
        rc = bwd(din2, NULL, NULL, dout, NULL, w, &d, work);
        rc |= bwd(NULL, dw2, NULL, dout, in, NULL, &d, work);
        rc |= bwd(NULL, NULL, db2, dout, NULL, NULL, &d, NULL);
        /* dw2 started from 0: compare with ref from 0 */
        {
            float *dw0 = falloc(nwt), *db0 = falloc((size_t)out_c);
            memset(dw0, 0, nwt * sizeof(float)); memset(db0, 0, (size_t)out_c * sizeof(float));
            bwdr(NULL, dw0, db0, dout, in, NULL, &d);
            ok = rc == 0 && close_all("din alone", shape, din2, din_r, mag, ni, Ld) &&
                 close_all("dw alone", shape, dw2, dw0, zw, nwt, Lw) &&
                 close_all("db alone", shape, db2, db0, zb, (size_t)out_c, Lw);
            CHECK(ok, "%s backward outputs one at a time", shape);
            free(dw0); free(db0);
        }
        free(din2); free(dw2); free(db2);
    }

    free(in); free(w); free(b); free(out); free(out_r); free(dout); free(din); free(din_r);
    free(dw); free(dw_r); free(db); free(db_r); free(work); free(ain); free(aw); free(ab);
    free(adout); free(mag); free(magw); free(magb); free(zw); free(zb);
    return 1;
}

static void test_random_shapes(irmae_rng *rng)
{
    static const int batches[] = {1, 3}, chans[] = {1, 3, 17}, sizes[] = {1, 3, 7, 17, 32};
    static const int ks[] = {1, 2, 3, 4, 5}, ss[] = {1, 2, 3}, ps[] = {0, 1, 2};
    int t, done = 0, tried = 0, k, s, p;
    /* every valid (k, s, p) at least once for both operators, on awkward sizes */
    for (k = 1; k <= 5; k++)
        for (s = 1; s <= 3; s++)
            for (p = 0; p <= 2 && p < k; p++) {
                done += test_shape(0, 3, 3, 7, 17, 17, k, s, p, rng, 1);
                done += test_shape(1, 3, 17, 7, 3, 3, k, s, p, rng, 1);
                done += test_shape(0, 1, 17, 17, 7, 1, k, s, p, rng, 1);
                done += test_shape(1, 1, 1, 3, 1, 17, k, s, p, rng, 1);
            }
    /* kernels of 8 x 8 and 9 x 9: the implicit im2col packer keeps a table of
       the (ki, kj) offsets up to 64 taps a channel and computes them beyond */
    done += test_shape(0, 2, 3, 20, 19, 5, 8, 1, 3, rng, 1);
    done += test_shape(0, 2, 3, 20, 19, 5, 9, 1, 4, rng, 1);
    done += test_shape(0, 2, 3, 21, 22, 5, 9, 2, 3, rng, 1);
    done += test_shape(1, 2, 3, 6, 5, 4, 9, 2, 4, rng, 1);
    done += test_shape(1, 2, 3, 6, 7, 4, 8, 1, 2, rng, 1);
    /* random combinations */
    for (t = 0; t < 400; t++) {
        int tr = irmae_rng_int(rng, 0, 1);
        int bb = batches[irmae_rng_int(rng, 0, 1)];
        int ci = chans[irmae_rng_int(rng, 0, 2)], co = chans[irmae_rng_int(rng, 0, 2)];
        int h = sizes[irmae_rng_int(rng, 0, 4)], w = sizes[irmae_rng_int(rng, 0, 4)];
        int kk = ks[irmae_rng_int(rng, 0, 4)], st = ss[irmae_rng_int(rng, 0, 2)], pp = ps[irmae_rng_int(rng, 0, 2)];
        if (tr && (h > 17 || w > 17) && st > 1) { h = h > 17 ? 7 : h; w = w > 17 ? 7 : w; } /* keep convT outputs small */
        tried++;
        done += test_shape(tr, bb, ci, h, w, co, kk, st, pp, rng, 1);
    }
    printf("random/awkward shapes: %d valid shapes tested (%d random draws)\n", done, tried);
}

static void test_presets(irmae_rng *rng)
{
    printf("preset shapes:\n");
    /* shapes preset encoder / decoder */
    test_shape(0, 2, 3, 32, 32, 32, 4, 2, 1, rng, 0);
    test_shape(0, 2, 32, 16, 16, 64, 4, 2, 1, rng, 0);
    test_shape(0, 2, 128, 4, 4, 256, 4, 2, 1, rng, 0);
    test_shape(0, 3, 256, 2, 2, 32, 2, 1, 0, rng, 0);
    test_shape(1, 3, 32, 1, 1, 256, 2, 1, 0, rng, 0);
    test_shape(1, 2, 256, 2, 2, 128, 4, 2, 1, rng, 0);
    test_shape(1, 2, 32, 16, 16, 3, 4, 2, 1, rng, 0);
    /* mnist decoder */
    test_shape(1, 1, 128, 8, 8, 64, 4, 2, 1, rng, 0);
    test_shape(1, 3, 32, 32, 32, 1, 1, 1, 0, rng, 0);
    /* celeba64 decoder tail, 1x1 conv (direct path) both ways */
    test_shape(1, 2, 128, 64, 64, 3, 1, 1, 0, rng, 0);
    test_shape(0, 2, 17, 9, 9, 5, 1, 1, 0, rng, 0);
}

/* shapes large enough that the batch is split into several chunks */
static void test_chunks(irmae_rng *rng)
{
    irmae_conv_desc d1, d2, d3;
    size_t w1, w2, w3;
    irmae_conv2d_desc(&d1, 1, 4, 288, 288, 2, 3, 1, 1);
    irmae_conv2d_desc(&d2, 2, 4, 288, 288, 2, 3, 1, 1);
    irmae_conv2d_desc(&d3, 3, 4, 288, 288, 2, 3, 1, 1);
    w1 = irmae_conv_workspace(&d1); w2 = irmae_conv_workspace(&d2); w3 = irmae_conv_workspace(&d3);
    CHECK(w1 > 0 && w1 <= w2 && w2 <= w3, "workspace monotone in batch: %lu %lu %lu",
          (unsigned long)w1, (unsigned long)w2, (unsigned long)w3);
    CHECK(w3 < 3 * w1, "workspace bounded by chunking: batch 3 uses %lu floats, 1 image %lu",
          (unsigned long)w3, (unsigned long)w1);
    printf("chunked shapes (workspace %lu floats for batch 3, %lu for 1 image):\n",
           (unsigned long)w3, (unsigned long)w1);
    test_shape(0, 3, 4, 288, 288, 2, 3, 1, 1, rng, 0);
    test_shape(1, 3, 2, 288, 288, 4, 3, 1, 1, rng, 0);

    /* a desc with a smaller batch runs in a workspace sized for a larger one
       (the workspace is exactly sized: ASan catches overruns) */
    {
        irmae_conv_desc big, small;
        int rc;
        size_t ws;
        float *in, *w, *out, *out_r, *work;
        irmae_conv2d_desc(&big, 5, 3, 9, 9, 4, 3, 2, 1);
        irmae_conv2d_desc(&small, 2, 3, 9, 9, 4, 3, 2, 1);
        ws = irmae_conv_workspace(&big);
        CHECK(irmae_conv_workspace(&small) <= ws, "monotone workspace (small batch)");
        in = falloc(nin(&small)); w = falloc(nw(&small)); out = falloc(nout(&small));
        out_r = falloc(nout(&small)); work = falloc(ws);
        fill(in, nin(&small), rng); fill(w, nw(&small), rng);
        rc = irmae_conv2d_forward(out, in, w, NULL, &small, work);
        irmae_conv2d_forward_ref(out_r, in, w, NULL, &small);
        {
            size_t i;
            double e = 0;
            for (i = 0; i < nout(&small); i++) e = fmax(e, fabs((double)out[i] - out_r[i]));
            CHECK(rc == 0 && e < 1e-4, "smaller batch in a larger workspace: rc %d err %g", rc, e);
        }
        free(in); free(w); free(out); free(out_r); free(work);
    }
}

/* sum_i out_i r_i in double, r fixed */
static double dotd(const float *a, const float *b, size_t n)
{
    double s = 0;
    size_t i;
    for (i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

/* central differences of L = <forward(in, w, b), R> against the reference
   backward, for every element of in, w and b */
static void test_finite_diff(int transposed, int batch, int in_c, int in_h, int in_w, int out_c,
                             int k, int s, int p, irmae_rng *rng)
{
    irmae_conv_desc d;
    float *in, *w, *b, *out, *R, *din, *dw, *db;
    size_t ni, no, nwt, i;
    int rc, bad = 0, t;
    double worst = 0;
    fwd_ref_fn fwdr = transposed ? irmae_convt2d_forward_ref : irmae_conv2d_forward_ref;
    bwd_ref_fn bwdr = transposed ? irmae_convt2d_backward_ref : irmae_conv2d_backward_ref;
    rc = transposed ? irmae_convt2d_desc(&d, batch, in_c, in_h, in_w, out_c, k, s, p)
                    : irmae_conv2d_desc(&d, batch, in_c, in_h, in_w, out_c, k, s, p);
    CHECK(rc == 0, "finite-diff desc");
    if (rc) return;
    ni = nin(&d); no = nout(&d); nwt = nw(&d);
    in = falloc(ni); w = falloc(nwt); b = falloc((size_t)out_c); out = falloc(no); R = falloc(no);
    din = falloc(ni); dw = falloc(nwt); db = falloc((size_t)out_c);
    fill(in, ni, rng); fill(w, nwt, rng); fill(b, (size_t)out_c, rng); fill(R, no, rng);
    memset(dw, 0, nwt * sizeof(float)); memset(db, 0, (size_t)out_c * sizeof(float));
    bwdr(din, dw, db, R, in, w, &d);
    for (t = 0; t < 3; t++) {
        float *x = t == 0 ? in : t == 1 ? w : b;
        const float *g = t == 0 ? din : t == 1 ? dw : db;
        size_t n = t == 0 ? ni : t == 1 ? nwt : (size_t)out_c;
        for (i = 0; i < n; i++) {
            const float x0 = x[i], h = 0.25f;
            double lp, lm, fd, err;
            float xp = x0 + h, xm = x0 - h;
            x[i] = xp; fwdr(out, in, w, b, &d); lp = dotd(out, R, no);
            x[i] = xm; fwdr(out, in, w, b, &d); lm = dotd(out, R, no);
            x[i] = x0;
            fd = (lp - lm) / ((double)xp - (double)xm);
            err = fabs(fd - (double)g[i]) / (1.0 + fabs(fd));
            if (err > worst) worst = err;
            if (err > 1e-4 && bad++ < 3)
                printf("  finite diff %s %s[%lu]: numeric %.7g analytic %.7g\n",
                       transposed ? "convT" : "conv", t == 0 ? "in" : t == 1 ? "w" : "b",
                       (unsigned long)i, fd, (double)g[i]);
        }
    }
    CHECK(bad == 0, "finite differences of the %s reference backward (%d bad, worst rel %.2g)",
          transposed ? "convT" : "conv", bad, worst);
    printf("finite differences %s: %lu parameters/inputs, worst relative error %.2g\n",
           transposed ? "convT" : "conv", (unsigned long)(ni + nwt + (size_t)out_c), worst);
    free(in); free(w); free(b); free(out); free(R); free(din); free(dw); free(db);
}

/* dw and db accumulate: two calls from zero give twice one call; din is
   overwritten: two calls give identical bits */
static void test_accumulate(int transposed, irmae_rng *rng)
{
    irmae_conv_desc d;
    float *in, *w, *dout, *din1, *din2, *dw, *db, *dw1, *db1, *work;
    size_t ni, no, nwt, i, ws;
    int rc, f;
    double e = 0;
    bwd_fn bwd = transposed ? irmae_convt2d_backward : irmae_conv2d_backward;
    rc = transposed ? irmae_convt2d_desc(&d, 3, 5, 6, 7, 4, 4, 2, 1)
                    : irmae_conv2d_desc(&d, 3, 5, 13, 11, 4, 3, 2, 1);
    CHECK(rc == 0, "accumulate desc");
    ni = nin(&d); no = nout(&d); nwt = nw(&d); ws = irmae_conv_workspace(&d);
    in = falloc(ni); w = falloc(nwt); dout = falloc(no); din1 = falloc(ni); din2 = falloc(ni);
    dw = falloc(nwt); db = falloc(4); dw1 = falloc(nwt); db1 = falloc(4); work = falloc(ws);
    fill(in, ni, rng); fill(w, nwt, rng); fill(dout, no, rng);
    for (f = 0; f < 2; f++) { /* fast, then reference */
        memset(dw, 0, nwt * sizeof(float)); memset(db, 0, 4 * sizeof(float));
        if (f == 0) rc = bwd(din1, dw, db, dout, in, w, &d, work);
        else rc = (transposed ? irmae_convt2d_backward_ref : irmae_conv2d_backward_ref)(din1, dw, db, dout, in, w, &d);
        memcpy(dw1, dw, nwt * sizeof(float)); memcpy(db1, db, 4 * sizeof(float));
        fill(din2, ni, rng);
        if (f == 0) rc |= bwd(din2, dw, db, dout, in, w, &d, work);
        else rc |= (transposed ? irmae_convt2d_backward_ref : irmae_conv2d_backward_ref)(din2, dw, db, dout, in, w, &d);
        e = 0;
        /* plain comparisons, not fmax: gcc 12 for aarch64 crashes vectorising an fmax reduction */
        for (i = 0; i < nwt; i++) {
            double t = fabs((double)dw[i] - 2.0 * dw1[i]) / (1.0 + fabs(2.0 * dw1[i]));
            if (t > e) e = t;
        }
        for (i = 0; i < 4; i++) {
            double t = fabs((double)db[i] - 2.0 * db1[i]) / (1.0 + fabs(2.0 * db1[i]));
            if (t > e) e = t;
        }
        CHECK(rc == 0 && e < 1e-6, "%s %s: dw/db accumulate (second call gives 2x), rel err %g",
              transposed ? "convT" : "conv", f ? "ref" : "fast", e);
        CHECK(memcmp(din1, din2, ni * sizeof(float)) == 0, "%s %s: din overwritten, identical twice",
              transposed ? "convT" : "conv", f ? "ref" : "fast");
    }
    free(in); free(w); free(dout); free(din1); free(din2); free(dw); free(db); free(dw1); free(db1);
    free(work);
}

/* <convT(x), y> == <x, conv(y)> with one weight buffer [ci, co, k, k] */
static void test_adjoint(int batch, int ci, int hi, int wi, int co, int k, int s, int p, irmae_rng *rng)
{
    irmae_conv_desc dt, dc;
    float *x, *y, *w, *tx, *cy, *work;
    size_t nx, ny, nwt, ws, i;
    int rc, f;
    rc = irmae_convt2d_desc(&dt, batch, ci, hi, wi, co, k, s, p);
    rc |= irmae_conv2d_desc(&dc, batch, co, dt.out_h, dt.out_w, ci, k, s, p);
    CHECK(rc == 0 && dc.out_h == hi && dc.out_w == wi, "adjoint descs (conv of convT output gives %dx%d)",
          dc.out_h, dc.out_w);
    if (rc) return;
    nx = nin(&dt); ny = nout(&dt); nwt = nw(&dt);
    ws = irmae_conv_workspace(&dt);
    if (irmae_conv_workspace(&dc) > ws) ws = irmae_conv_workspace(&dc);
    x = falloc(nx); y = falloc(ny); w = falloc(nwt); tx = falloc(ny); cy = falloc(nx); work = falloc(ws);
    fill(x, nx, rng); fill(y, ny, rng); fill(w, nwt, rng);
    for (f = 0; f < 2; f++) {
        double a, b, m = 0;
        if (f == 0) {
            rc = irmae_convt2d_forward(tx, x, w, NULL, &dt, work);
            rc |= irmae_conv2d_forward(cy, y, w, NULL, &dc, work);
        } else {
            rc = irmae_convt2d_forward_ref(tx, x, w, NULL, &dt);
            rc |= irmae_conv2d_forward_ref(cy, y, w, NULL, &dc);
        }
        a = dotd(tx, y, ny);
        b = dotd(x, cy, nx);
        for (i = 0; i < ny; i++) m += fabs((double)tx[i] * y[i]);
        CHECK(rc == 0 && fabs(a - b) <= 1e-5 * (1.0 + m), "adjoint %s N%d %d->%d %dx%d k%d s%d p%d: %.9g vs %.9g",
              f ? "ref" : "fast", batch, ci, co, hi, wi, k, s, p, a, b);
    }
    free(x); free(y); free(w); free(tx); free(cy); free(work);
}

static void test_invalid(void)
{
    irmae_conv_desc d, ok, okt;
    float buf[4096];
    float *work;
    int rc;
    size_t ws;
    memset(buf, 0, sizeof buf);
#define BAD(call, code) \
    do { irmae_error_clear(); rc = (call); CHECK(rc == (code) && irmae_error_detail()[0], "%s -> %d (expected %d) %s", #call, rc, code, irmae_error_detail()); } while (0)
    BAD(irmae_conv2d_desc(&d, 0, 3, 8, 8, 4, 3, 1, 1), IRMAE_ERR_ARG);
    CHECK(d.batch == 0 && d.k == 0, "failed desc is zeroed");
    BAD(irmae_conv2d_desc(&d, 1, 0, 8, 8, 4, 3, 1, 1), IRMAE_ERR_ARG);
    BAD(irmae_conv2d_desc(&d, 1, 3, -1, 8, 4, 3, 1, 1), IRMAE_ERR_ARG);
    BAD(irmae_conv2d_desc(&d, 1, 3, 8, 0, 4, 3, 1, 1), IRMAE_ERR_ARG);
    BAD(irmae_conv2d_desc(&d, 1, 3, 8, 8, -4, 3, 1, 1), IRMAE_ERR_ARG);
    BAD(irmae_conv2d_desc(&d, 1, 3, 8, 8, 4, 0, 1, 0), IRMAE_ERR_ARG);
    BAD(irmae_conv2d_desc(&d, 1, 3, 8, 8, 4, 3, 0, 1), IRMAE_ERR_ARG);
    BAD(irmae_conv2d_desc(&d, 1, 3, 8, 8, 4, 3, -2, 1), IRMAE_ERR_ARG);
    BAD(irmae_conv2d_desc(&d, 1, 3, 8, 8, 4, 3, 1, -1), IRMAE_ERR_ARG);
    BAD(irmae_conv2d_desc(&d, 1, 3, 8, 8, 4, 3, 1, 3), IRMAE_ERR_ARG);   /* pad == k */
    BAD(irmae_convt2d_desc(&d, 1, 3, 8, 8, 4, 2, 2, 5), IRMAE_ERR_ARG);  /* pad > k */
    BAD(irmae_conv2d_desc(&d, 1, 3, 2, 8, 4, 5, 1, 1), IRMAE_ERR_SHAPE); /* 2 + 2 - 5 < 0 */
    BAD(irmae_conv2d_desc(&d, 1, 3, 8, 1, 4, 4, 1, 1), IRMAE_ERR_SHAPE); /* 1 + 2 - 4 < 0 */
    BAD(irmae_convt2d_desc(&d, 1, 3, 1, 1, 4, 2, 1, 1), IRMAE_ERR_SHAPE); /* 0 - 2 + 2 = 0 */
    BAD(irmae_convt2d_desc(&d, 1, 3, 5, 1, 4, 3, 3, 2), IRMAE_ERR_SHAPE); /* w: 0 - 4 + 3 < 1 */
    BAD(irmae_conv2d_desc(&d, 100000, 100000, 100000, 1, 4, 3, 1, 1), IRMAE_ERR_OVERFLOW);
    BAD(irmae_conv2d_desc(&d, 1, 4, 100000, 100000, 4, 3, 1, 1), IRMAE_ERR_OVERFLOW);
    BAD(irmae_conv2d_desc(&d, 100000, 100000, 100000, 100000, 100000, 3, 1, 1), IRMAE_ERR_OVERFLOW);
    BAD(irmae_conv2d_desc(&d, 1, 100000, 4, 4, 100000, 100000, 1, 1), IRMAE_ERR_SHAPE);
    BAD(irmae_conv2d_desc(&d, 1, 1000, 2000, 2000, 2, 2000, 1, 0), IRMAE_ERR_OVERFLOW); /* im2col rows */
    BAD(irmae_convt2d_desc(&d, 1, 1, 1 << 30, 1, 1, 4, 4, 0), IRMAE_ERR_OVERFLOW); /* output > INT_MAX */
    BAD(irmae_convt2d_desc(&d, 1, 1, INT_MAX, 1, 1, 2, INT_MAX, 0), IRMAE_ERR_OVERFLOW);
    BAD(irmae_conv2d_desc(&d, 1, 1, INT_MAX, 1, 1, 2, 1, 1), IRMAE_ERR_OVERFLOW);
    BAD(irmae_conv2d_desc(&d, INT_MAX, INT_MAX, INT_MAX, INT_MAX, INT_MAX, 3, 1, 1), IRMAE_ERR_OVERFLOW);
    BAD(irmae_conv2d_desc(NULL, 1, 3, 8, 8, 4, 3, 1, 1), IRMAE_ERR_ARG);
    CHECK(irmae_conv_workspace(NULL) == 0, "workspace(NULL) = 0");

    rc = irmae_conv2d_desc(&ok, 2, 3, 8, 8, 4, 3, 2, 1);
    CHECK(rc == 0 && ok.out_h == 4 && ok.out_w == 4, "conv2d_desc 8x8 k3 s2 p1 -> %dx%d", ok.out_h, ok.out_w);
    rc = irmae_convt2d_desc(&okt, 2, 4, 4, 4, 3, 4, 2, 1);
    CHECK(rc == 0 && okt.out_h == 8 && okt.out_w == 8, "convt2d_desc 4x4 k4 s2 p1 -> %dx%d", okt.out_h, okt.out_w);
    ws = irmae_conv_workspace(&ok);
    CHECK(ws > 0 && ws <= 2048, "workspace %lu", (unsigned long)ws);
    work = buf + 2048;

    /* wrong operator */
    BAD(irmae_convt2d_forward(buf, buf, buf, NULL, &ok, work), IRMAE_ERR_ARG);
    BAD(irmae_conv2d_forward(buf, buf, buf, NULL, &okt, work), IRMAE_ERR_ARG);
    BAD(irmae_convt2d_backward(buf, buf, buf, buf, buf, buf, &ok, work), IRMAE_ERR_ARG);
    BAD(irmae_conv2d_backward(buf, buf, buf, buf, buf, buf, &okt, work), IRMAE_ERR_ARG);
    BAD(irmae_conv2d_forward_ref(buf, buf, buf, NULL, &okt), IRMAE_ERR_ARG);
    BAD(irmae_convt2d_backward_ref(buf, buf, buf, buf, buf, buf, &ok), IRMAE_ERR_ARG);
    /* inconsistent desc fields */
    d = ok; d.out_h++;
    BAD(irmae_conv2d_forward(buf, buf, buf, NULL, &d, work), IRMAE_ERR_ARG);
    CHECK(irmae_conv_workspace(&d) == 0, "workspace of an inconsistent desc = 0");
    d = ok; d.k = 0;
    BAD(irmae_conv2d_backward(buf, buf, buf, buf, buf, buf, &d, work), IRMAE_ERR_ARG);
    d = ok; d.batch = 100000; d.in_c = 100000; /* overflow: reported as ERR_ARG by the kernels */
    BAD(irmae_conv2d_forward_ref(buf, buf, buf, NULL, &d), IRMAE_ERR_ARG);
    d = okt; d.transposed = 7;
    BAD(irmae_convt2d_forward(buf, buf, buf, NULL, &d, work), IRMAE_ERR_ARG);
    CHECK(irmae_conv_workspace(&d) == 0, "workspace of a desc with transposed = 7 is 0");
    d = okt; d.pad = 4;
    BAD(irmae_convt2d_forward_ref(buf, buf, buf, NULL, &d), IRMAE_ERR_ARG);

    /* NULL pointers */
    BAD(irmae_conv2d_forward(NULL, buf, buf, buf, &ok, work), IRMAE_ERR_ARG);
    BAD(irmae_conv2d_forward(buf, NULL, buf, buf, &ok, work), IRMAE_ERR_ARG);
    BAD(irmae_conv2d_forward(buf, buf, NULL, buf, &ok, work), IRMAE_ERR_ARG);
    BAD(irmae_conv2d_forward(buf, buf, buf, buf, NULL, work), IRMAE_ERR_ARG);
    BAD(irmae_conv2d_forward(buf, buf, buf, buf, &ok, NULL), IRMAE_ERR_ARG);
    BAD(irmae_convt2d_forward(NULL, buf, buf, buf, &okt, work), IRMAE_ERR_ARG);
    BAD(irmae_convt2d_forward(buf, NULL, buf, buf, &okt, work), IRMAE_ERR_ARG);
    BAD(irmae_convt2d_forward(buf, buf, NULL, buf, &okt, work), IRMAE_ERR_ARG);
    BAD(irmae_convt2d_forward(buf, buf, buf, buf, &okt, NULL), IRMAE_ERR_ARG);
    BAD(irmae_conv2d_forward_ref(NULL, buf, buf, buf, &ok), IRMAE_ERR_ARG);
    BAD(irmae_convt2d_forward_ref(buf, buf, NULL, buf, &okt), IRMAE_ERR_ARG);
    BAD(irmae_conv2d_backward(buf, buf, buf, NULL, buf, buf, &ok, work), IRMAE_ERR_ARG);
    BAD(irmae_conv2d_backward(NULL, buf, NULL, buf, NULL, buf, &ok, work), IRMAE_ERR_ARG); /* dw needs in */
    BAD(irmae_conv2d_backward(buf, NULL, NULL, buf, buf, NULL, &ok, work), IRMAE_ERR_ARG); /* din needs w */
    BAD(irmae_conv2d_backward(buf, NULL, NULL, buf, buf, buf, &ok, NULL), IRMAE_ERR_ARG);  /* work */
    BAD(irmae_conv2d_backward(buf, buf, buf, buf, buf, buf, NULL, work), IRMAE_ERR_ARG);
    BAD(irmae_convt2d_backward(buf, buf, buf, NULL, buf, buf, &okt, work), IRMAE_ERR_ARG);
    BAD(irmae_convt2d_backward(NULL, buf, NULL, buf, NULL, buf, &okt, work), IRMAE_ERR_ARG);
    BAD(irmae_convt2d_backward(buf, NULL, NULL, buf, buf, NULL, &okt, work), IRMAE_ERR_ARG);
    BAD(irmae_convt2d_backward(NULL, buf, NULL, buf, buf, buf, &okt, NULL), IRMAE_ERR_ARG);
    BAD(irmae_conv2d_backward_ref(buf, buf, buf, NULL, buf, buf, &ok), IRMAE_ERR_ARG);
    BAD(irmae_convt2d_backward_ref(NULL, buf, NULL, buf, NULL, buf, &okt), IRMAE_ERR_ARG);
#undef BAD
    /* optional pointers: b NULL, all gradients NULL, db alone needs no work */
    CHECK(irmae_conv2d_forward(buf, buf + 512, buf + 1024, NULL, &ok, work) == 0, "b = NULL is fine");
    CHECK(irmae_conv2d_backward(NULL, NULL, NULL, buf, NULL, NULL, &ok, NULL) == 0, "no gradient requested is a no-op");
    CHECK(irmae_convt2d_backward(NULL, NULL, buf + 1500, buf, NULL, NULL, &okt, NULL) == 0, "db alone needs no work");
    CHECK(irmae_convt2d_backward_ref(NULL, NULL, buf + 1500, buf, NULL, NULL, &okt) == 0, "ref db alone");
    /* a 1x1 stride-1 pad-0 layer on a large map needs no workspace */
    rc = irmae_convt2d_desc(&d, 2, 32, 32, 32, 1, 1, 1, 0);
    CHECK(rc == 0 && irmae_conv_workspace(&d) == 0, "1x1 convT on 32x32: workspace %lu",
          (unsigned long)irmae_conv_workspace(&d));
}

/* fast kernels give the same bits with 1 and 2 threads */
static void test_threads(irmae_rng *rng)
{
#ifdef _OPENMP
    static const int shapes[][9] = {
        /* transposed, batch, in_c, h, w, out_c, k, s, p */
        {0, 5, 3, 32, 32, 32, 4, 2, 1},
        {0, 4, 17, 17, 7, 3, 5, 3, 2},
        {1, 4, 64, 8, 8, 32, 4, 2, 1},
        {1, 3, 32, 32, 32, 1, 1, 1, 0},
        {0, 3, 4, 288, 288, 2, 3, 1, 1},
        {1, 6, 17, 3, 3, 17, 3, 2, 1},
    };
    int si, saved = omp_get_max_threads();
    for (si = 0; si < (int)(sizeof shapes / sizeof shapes[0]); si++) {
        const int *S = shapes[si];
        irmae_conv_desc d;
        size_t ni, no, nwt, ws;
        float *in, *w, *b, *dout, *work, *res[2][4];
        int t, rc;
        rc = S[0] ? irmae_convt2d_desc(&d, S[1], S[2], S[3], S[4], S[5], S[6], S[7], S[8])
                  : irmae_conv2d_desc(&d, S[1], S[2], S[3], S[4], S[5], S[6], S[7], S[8]);
        CHECK(rc == 0, "thread test desc %d", si);
        if (rc) continue;
        ni = nin(&d); no = nout(&d); nwt = nw(&d); ws = irmae_conv_workspace(&d);
        in = falloc(ni); w = falloc(nwt); b = falloc((size_t)d.out_c); dout = falloc(no);
        work = ws ? falloc(ws) : NULL;
        fill(in, ni, rng); fill(w, nwt, rng); fill(b, (size_t)d.out_c, rng); fill(dout, no, rng);
        for (t = 0; t < 2; t++) {
            omp_set_num_threads(t + 1);
            res[t][0] = falloc(no); res[t][1] = falloc(ni); res[t][2] = falloc(nwt); res[t][3] = falloc((size_t)d.out_c);
            memset(res[t][2], 0, nwt * sizeof(float)); memset(res[t][3], 0, (size_t)d.out_c * sizeof(float));
            if (S[0]) {
                rc = irmae_convt2d_forward(res[t][0], in, w, b, &d, work);
                rc |= irmae_convt2d_backward(res[t][1], res[t][2], res[t][3], dout, in, w, &d, work);
            } else {
                rc = irmae_conv2d_forward(res[t][0], in, w, b, &d, work);
                rc |= irmae_conv2d_backward(res[t][1], res[t][2], res[t][3], dout, in, w, &d, work);
            }
            CHECK(rc == 0, "thread test run %d", si);
        }
        CHECK(memcmp(res[0][0], res[1][0], no * sizeof(float)) == 0 &&
              memcmp(res[0][1], res[1][1], ni * sizeof(float)) == 0 &&
              memcmp(res[0][2], res[1][2], nwt * sizeof(float)) == 0 &&
              memcmp(res[0][3], res[1][3], (size_t)d.out_c * sizeof(float)) == 0,
              "shape %d: 1 and 2 threads give identical bits", si);
        for (t = 0; t < 2; t++) { free(res[t][0]); free(res[t][1]); free(res[t][2]); free(res[t][3]); }
        free(in); free(w); free(b); free(dout); free(work);
    }
    omp_set_num_threads(saved);
    printf("threads: 1 vs 2 threads compared on %d shapes\n", (int)(sizeof shapes / sizeof shapes[0]));
#else
    (void)rng;
    printf("SKIP: thread-count determinism (built without OpenMP)\n");
#endif
}

static void timing(irmae_rng *rng, int transposed, int in_c, int h, int out_c, int k, int s, int p)
{
    irmae_conv_desc d;
    size_t ni, no, nwt, ws;
    float *in, *w, *b, *out, *work;
    double t0, tf, tr, tb;
    int it, iters = 3;
    if (transposed) irmae_convt2d_desc(&d, 32, in_c, h, h, out_c, k, s, p);
    else irmae_conv2d_desc(&d, 32, in_c, h, h, out_c, k, s, p);
    ni = nin(&d); no = nout(&d); nwt = nw(&d); ws = irmae_conv_workspace(&d);
    in = falloc(ni); w = falloc(nwt); b = falloc((size_t)out_c); out = falloc(no);
    work = ws ? falloc(ws) : NULL;
    fill(in, ni, rng); fill(w, nwt, rng); fill(b, (size_t)out_c, rng);
    t0 = now();
    for (it = 0; it < iters; it++)
        if (transposed) irmae_convt2d_forward(out, in, w, b, &d, work);
        else irmae_conv2d_forward(out, in, w, b, &d, work);
    tf = (now() - t0) / iters;
    t0 = now();
    if (transposed) irmae_convt2d_forward_ref(out, in, w, b, &d);
    else irmae_conv2d_forward_ref(out, in, w, b, &d);
    tr = now() - t0;
    {
        float *din = falloc(ni), *dw = falloc(nwt), *db = falloc((size_t)out_c);
        memset(dw, 0, nwt * sizeof(float)); memset(db, 0, (size_t)out_c * sizeof(float));
        t0 = now();
        for (it = 0; it < iters; it++)
            if (transposed) irmae_convt2d_backward(din, dw, db, out, in, w, &d, work);
            else irmae_conv2d_backward(din, dw, db, out, in, w, &d, work);
        tb = (now() - t0) / iters;
        free(din); free(dw); free(db);
    }
    printf("timing %s N32 %dx%dx%d -> %dx%dx%d k%d s%d p%d (%s): forward fast %.2f ms ref %.2f ms (x%.1f), "
           "backward (din, dw, db) fast %.2f ms, workspace %.1f MB\n",
           transposed ? "convT" : "conv", in_c, h, h, out_c, d.out_h, d.out_w, k, s, p,
           irmae_simd_name(irmae_simd_level()), tf * 1e3, tr * 1e3, tr / tf, tb * 1e3,
           (double)ws * 4.0 / 1048576.0);
    free(in); free(w); free(b); free(out); free(work);
}

/* The stride-2 phase-plane lowering (irmae__im2col_s2 / irmae__col2im_s2)
   against the direct loops it replaces, bit for bit: im2col moves values,
   col2im sums them in the same (ki, kj) order. Odd and even sizes, kernels
   1..5, every padding, on the current path. */
static void test_phase_planes(irmae_rng *rng)
{
    static const int hw[][2] = {{1, 1}, {2, 3}, {5, 4}, {7, 7}, {8, 8}, {16, 16}, {17, 9}, {32, 32}, {33, 31}};
    int si, k, p, tr, checked = 0, skipped = 0;
    for (si = 0; si < (int)(sizeof hw / sizeof hw[0]); si++)
        for (k = 1; k <= 5; k++)
            for (p = 0; p < k; p++)
                for (tr = 0; tr < 2; tr++) {
                    irmae_conv_desc d;
                    irmae__cgeom g;
                    irmae__ph2 h;
                    float *x, *x1, *x2, *col, *c1, *c2, *bias;
                    size_t nx, ncol;
                    int rc = tr ? irmae_convt2d_desc(&d, 3, 2, hw[si][0], hw[si][1], 3, k, 2, p)
                                : irmae_conv2d_desc(&d, 3, 2, hw[si][0], hw[si][1], 3, k, 2, p);
                    if (rc) continue; /* kernel larger than the padded input */
                    g = irmae__conv_geom(&d);
                    if (!irmae__ph2_geom(&h, &g)) { skipped++; continue; }
                    nx = (size_t)g.batch * g.imgx;
                    ncol = (size_t)g.kc * g.batch * g.P;
                    x = falloc(nx); x1 = falloc(nx); x2 = falloc(nx);
                    col = falloc(ncol); c1 = falloc(ncol); c2 = falloc(ncol); bias = falloc((size_t)g.cx);
                    fill(x, nx, rng); fill(col, ncol, rng); fill(bias, (size_t)g.cx, rng);
                    fill_nan(c1, ncol); fill_nan(c2, ncol); fill_nan(x1, nx); fill_nan(x2, nx);
                    irmae__im2col_direct(c1, (size_t)g.batch * g.P, x, g.batch, &g);
                    irmae__im2col_s2(c2, (size_t)g.batch * g.P, x, g.batch, &g, &h);
                    CHECK(memcmp(c1, c2, ncol * sizeof(float)) == 0, "im2col_s2 != direct: %s %dx%d k%d p%d",
                          tr ? "convT" : "conv", hw[si][0], hw[si][1], k, p);
                    irmae__col2im_direct(x1, col, (size_t)g.batch * g.P, g.batch, &g, (si & 1) ? bias : NULL);
                    irmae__col2im_s2(x2, col, (size_t)g.batch * g.P, g.batch, &g, (si & 1) ? bias : NULL, &h);
                    CHECK(memcmp(x1, x2, nx * sizeof(float)) == 0, "col2im_s2 != direct: %s %dx%d k%d p%d",
                          tr ? "convT" : "conv", hw[si][0], hw[si][1], k, p);
                    checked++;
                    free(x); free(x1); free(x2); free(col); free(c1); free(c2); free(bias);
                }
    CHECK(checked > 100, "only %d phase-plane geometries checked", checked);
    printf("  phase planes (%s): %d geometries bit-identical to the direct loops, %d too large for them\n",
           irmae_simd_name(irmae_simd_level()), checked, skipped);
}

/* m [c, imgs P] (column n P + q = position q of image n) <- y (imgs images of c x P) */
static void gather_rows(float *m, const float *y, int imgs, int c, int P)
{
    int n, ch;
    for (n = 0; n < imgs; n++)
        for (ch = 0; ch < c; ch++)
            memcpy(m + (size_t)ch * imgs * P + (size_t)n * P, y + ((size_t)n * c + ch) * P, (size_t)P * sizeof(float));
}

/* the inverse of gather_rows, plus bias[ch] when bias is not NULL */
static void scatter_rows(float *y, const float *m, int imgs, int c, int P, const float *bias)
{
    int n, ch, q;
    for (n = 0; n < imgs; n++)
        for (ch = 0; ch < c; ch++)
            for (q = 0; q < P; q++)
                y[((size_t)n * c + ch) * P + q] = m[(size_t)ch * imgs * P + (size_t)n * P + q] + (bias ? bias[ch] : 0.0f);
}

/* The convolutions pack their GEMM panels straight from the tensors (the
   packers of irmae__gemm: patches for the weight gradient, channel rows
   and position rows of the matrix side). Each result equals, bit for bit,
   the GEMM of the explicit matrices (im2col, the gathered matrix side)
   through irmae_sgemm: odd channel counts (partial MR panels), planes of
   fewer positions than a micro-panel (panels spanning images, runs split at
   odd places), k = 3 and 5 (taps not aligned to panels), stride 3, patches
   at every border. */
static void test_packers(irmae_rng *rng)
{
    static const int shp[][8] = { /* batch, image-side c, h, w, matrix-side c, k, s, p */
        {3, 5, 9, 7, 6, 3, 1, 1}, {7, 3, 8, 8, 9, 4, 2, 1}, {20, 4, 4, 6, 10, 4, 2, 1},
        {4, 16, 16, 16, 33, 4, 2, 1}, {8, 3, 13, 11, 5, 5, 3, 2}, {20, 2, 6, 6, 7, 4, 2, 1},
        /* planes large enough for the implicit im2col of Wc im2col(X) */
        {2, 3, 34, 30, 8, 4, 2, 1}, {2, 4, 12, 11, 5, 3, 1, 1}, {3, 2, 19, 21, 6, 3, 2, 1},
        {2, 1, 32, 32, 32, 4, 2, 1}, {2, 7, 10, 40, 12, 2, 2, 0} };
    int si, tr, checked = 0, implicit = 0;
    for (si = 0; si < (int)(sizeof shp / sizeof shp[0]); si++)
        for (tr = 0; tr < 2; tr++) {
            const int *q = shp[si];
            irmae_conv_desc d;
            irmae__cgeom g;
            float *x, *y, *w, *b, *wk, *col, *ym, *dw1, *dw2, *x1, *x2;
            int np, rc;
            size_t nx, ny;
            if (!tr) rc = irmae_conv2d_desc(&d, q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]);
            else {
                const int oh = (q[2] + 2 * q[7] - q[5]) / q[6] + 1, ow = (q[3] + 2 * q[7] - q[5]) / q[6] + 1;
                rc = irmae_convt2d_desc(&d, q[0], q[4], oh, ow, q[1], q[5], q[6], q[7]);
            }
            if (rc) { CHECK(0, "packers: desc %d/%d: %s", si, tr, irmae_error_detail()); continue; }
            g = irmae__conv_geom(&d);
            np = g.batch * g.P;
            CHECK(irmae__conv_chunk(&g) == g.batch, "packers: shape %d needs one chunk", si);
            /* products large enough for the packed GEMM (irmae_sgemm's small path would sum differently) */
            CHECK(g.cy >= 4 && (double)g.cy * g.kc * np > 32768.0 && (double)g.kc * np * g.cy > 32768.0,
                  "packers: shape %d too small to test", si);
            nx = (size_t)g.batch * g.imgx; ny = (size_t)g.batch * g.imgy;
            x = falloc(nx); y = falloc(ny); w = falloc((size_t)g.cy * g.kc); b = falloc((size_t)(g.cx > g.cy ? g.cx : g.cy));
            wk = falloc(irmae_conv_workspace(&d)); col = falloc((size_t)g.kc * np); ym = falloc((size_t)g.cy * np);
            dw1 = falloc((size_t)g.cy * g.kc); dw2 = falloc((size_t)g.cy * g.kc); x1 = falloc(nx); x2 = falloc(nx);
            fill(x, nx, rng); fill(y, ny, rng); fill(w, (size_t)g.cy * g.kc, rng); fill(b, (size_t)(g.cx > g.cy ? g.cx : g.cy), rng);
            fill(dw1, (size_t)g.cy * g.kc, rng);
            memcpy(dw2, dw1, (size_t)g.cy * g.kc * sizeof(float)); /* the gradient accumulates */
            /* dWc += Y im2col(X)^T */
            if (!tr) rc = irmae_conv2d_backward(NULL, dw1, NULL, y, x, w, &d, wk);
            else rc = irmae_convt2d_backward(NULL, dw1, NULL, x, y, w, &d, wk);
            CHECK(rc == 0, "packers: backward %d/%d", si, tr);
            irmae__im2col(col, (size_t)np, x, g.batch, &g);
            gather_rows(ym, y, g.batch, g.cy, g.P);
            irmae_sgemm(0, 1, g.cy, g.kc, np, 1.0f, ym, np, col, np, 1.0f, dw2, g.kc);
            CHECK(memcmp(dw1, dw2, (size_t)g.cy * g.kc * sizeof(float)) == 0,
                  "packers: weight gradient of %s shape %d differs from the explicit GEMM", tr ? "convT" : "conv", si);
            /* X = col2im(Wc^T Y): conv backward-data, convT forward (with bias) */
            if (!tr) rc = irmae_conv2d_backward(x1, NULL, NULL, y, NULL, w, &d, wk);
            else rc = irmae_convt2d_forward(x1, y, w, b, &d, wk);
            CHECK(rc == 0, "packers: col2im side %d/%d", si, tr);
            irmae_sgemm(1, 0, g.kc, np, g.cy, 1.0f, w, g.kc, ym, np, 0.0f, col, np);
            irmae__col2im(x2, col, (size_t)np, g.batch, &g, tr ? b : NULL);
            CHECK(memcmp(x1, x2, nx * sizeof(float)) == 0,
                  "packers: %s of %s shape %d differs from the explicit GEMM", tr ? "forward" : "backward-data",
                  tr ? "convT" : "conv", si);
            /* Y = Wc im2col(X): conv forward (with bias), convT backward-data */
            {
                float *y1 = falloc(ny), *y2 = falloc(ny);
                irmae__ph2 h;
                implicit += irmae__cols_implicit(&g, np, &h);
                if (!tr) rc = irmae_conv2d_forward(y1, x, w, b, &d, wk);
                else rc = irmae_convt2d_backward(y1, NULL, NULL, x, NULL, w, &d, wk);
                CHECK(rc == 0, "packers: im2col side %d/%d", si, tr);
                irmae__im2col(col, (size_t)np, x, g.batch, &g);
                irmae_sgemm(0, 0, g.cy, np, g.kc, 1.0f, w, g.kc, col, np, 0.0f, ym, np);
                scatter_rows(y2, ym, g.batch, g.cy, g.P, tr ? NULL : b);
                CHECK(memcmp(y1, y2, ny * sizeof(float)) == 0,
                      "packers: %s of %s shape %d differs from explicit im2col + sgemm", tr ? "backward-data" : "forward",
                      tr ? "convT" : "conv", si);
                free(y1); free(y2);
            }
            checked++;
            free(x); free(y); free(w); free(b); free(wk); free(col); free(ym); free(dw1); free(dw2); free(x1); free(x2);
        }
    /* the implicit im2col must have been exercised, not only its fallback */
    CHECK(implicit >= 8, "packers: only %d products took the implicit im2col", implicit);
    printf("  packers (%s): %d geometries bit-identical to explicit im2col + sgemm (%d with implicit im2col)\n",
           irmae_simd_name(irmae_simd_level()), checked, implicit);
}

/* The weight gradient of a batch split into chunks equals, bit for bit, one
   GEMM over the whole batch's im2col (chunks hold multiples of KC / gcd(P, KC)
   images, so the depth slices line up). */
static void test_chunk_invariance(irmae_rng *rng)
{
    irmae_conv_desc d;
    irmae__cgeom g;
    float *x, *dy, *w, *dw1, *dw2, *col, *ym, *work;
    size_t ws, np;
    int cap;
    /* 157 images would fit the default cap; 157 x 64 positions is no multiple of 256 */
    if (irmae_conv2d_desc(&d, 170, 48, 16, 16, 64, 4, 2, 1)) { CHECK(0, "desc"); return; }
    g = irmae__conv_geom(&d);
    cap = irmae__conv_chunk(&g);
    np = (size_t)g.batch * g.P;
    ws = irmae_conv_workspace(&d);
    x = falloc(nin(&d)); dy = falloc(nout(&d)); w = falloc(nw(&d));
    dw1 = falloc(nw(&d)); dw2 = falloc(nw(&d)); work = falloc(ws);
    col = falloc((size_t)g.kc * np); ym = falloc((size_t)g.cy * np);
    fill(x, nin(&d), rng); fill(dy, nout(&d), rng); fill(w, nw(&d), rng);
    memset(dw1, 0, nw(&d) * 4); memset(dw2, 0, nw(&d) * 4);
    CHECK(cap < g.batch && (cap * g.P) % IRMAE__KC == 0, "chunk of %d images of %d positions for batch %d", cap, g.P, g.batch);
    CHECK(irmae_conv2d_backward(NULL, dw1, NULL, dy, x, w, &d, work) == 0, "backward");
    irmae__im2col(col, np, x, g.batch, &g);
    gather_rows(ym, dy, g.batch, g.cy, g.P);
    irmae_sgemm(0, 1, g.cy, g.kc, (int)np, 1.0f, ym, (int)np, col, (int)np, 1.0f, dw2, g.kc);
    CHECK(memcmp(dw1, dw2, nw(&d) * 4) == 0, "chunked weight gradient (chunks of %d) differs from one GEMM", cap);
    free(x); free(dy); free(w); free(dw1); free(dw2); free(col); free(ym); free(work);
}

int main(void)
{
    irmae_rng rng = irmae_rng_seed(20260517);
    double t0 = now();
    int li;
    test_invalid();
    /* every kernel path this CPU has, forced in turn */
    for (li = 0; li < 4; li++) {
        if (!test_path_begin(test_paths[li], "conv shapes")) continue;
        printf("path %s: ", irmae_simd_name(test_paths[li]));
        test_random_shapes(&rng);
        test_phase_planes(&rng);
        test_packers(&rng);
    }
    irmae_simd_force(IRMAE_SIMD_BEST);
    printf("  (%.1f s)\n", now() - t0);
    test_presets(&rng);
    printf("  (%.1f s)\n", now() - t0);
    /* IRMAE_TEST_QUICK=1 (emulators): the 288 x 288 chunking shapes and the
       timing line (minutes of emulated double-precision reference) are not run */
    if (getenv("IRMAE_TEST_QUICK")) printf("SKIP: chunked 288x288 shapes (IRMAE_TEST_QUICK: too slow under an emulator)\n");
    else test_chunks(&rng);
    printf("  (%.1f s)\n", now() - t0);
    test_finite_diff(0, 2, 3, 7, 6, 4, 3, 2, 1, &rng);
    test_finite_diff(1, 2, 3, 4, 5, 2, 3, 2, 1, &rng);
    test_accumulate(0, &rng);
    test_accumulate(1, &rng);
    test_adjoint(2, 5, 6, 5, 4, 4, 2, 1, &rng);
    test_adjoint(3, 3, 7, 2, 17, 5, 3, 2, &rng);
    test_adjoint(1, 32, 1, 1, 64, 2, 1, 0, &rng);
    test_adjoint(2, 8, 32, 32, 3, 1, 1, 0, &rng);
    test_threads(&rng);
    if (getenv("IRMAE_TEST_QUICK")) printf("SKIP: chunk invariance (IRMAE_TEST_QUICK: a 1 GFLOP product)\n");
    else test_chunk_invariance(&rng);
    printf("worst |fast - ref| / tolerance: %.3g\n", g_worst);
    if (getenv("IRMAE_TEST_QUICK")) printf("SKIP: timing line (IRMAE_TEST_QUICK)\n");
    else timing(&rng, 0, 32, 16, 64, 4, 2, 1);
    printf("test_conv: %d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
