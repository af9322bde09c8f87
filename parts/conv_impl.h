/* ---------------------------------------------------------------------- */
/* Kernels: convolution                                                   */
/* ---------------------------------------------------------------------- */

/* Both operators are expressed through one geometry: an "image side" X
   (cx channels of hx x wx, the side that im2col reads and col2im writes)
   and a "matrix side" Y (cy channels of hy x wy = P positions), related by
   Y = Wc * im2col(X) with Wc a [cy, kc = cx k k] matrix:
     conv2d:  X = input,  Y = output, Wc = w  [out_c, in_c k k]
     convT2d: X = output, Y = input,  Wc = w  [in_c, out_c k k]
   (a transposed convolution is the adjoint of the convolution that maps
   its output back to its input, and PyTorch's [in, out, k, k] layout is
   exactly that convolution's weight). Then
     conv forward  = convT backward-data = Y <- Wc im2col(X)
     conv backward-data = convT forward  = X <- col2im(Wc^T Y)
     dWc += Y im2col(X)^T for both.
   The batch is processed in chunks of `imgs` images; im2col writes a
   [kc, imgs P] matrix (column n P + q is position q of image n), Y is
   gathered to / scattered from a [cy, imgs P] matrix, so each GEMM has
   N = imgs P even for tiny feature maps. The chunk size depends only on
   the desc (never on the thread count), so sums have a fixed order. */

/* Soft cap on the workspace, in floats (default 8 Mi floats = 32 MB). A
   single image that needs more gets a one-image chunk. */
#ifndef IRMAE_CONV_CHUNK_FLOATS
#define IRMAE_CONV_CHUNK_FLOATS ((size_t)8 << 20)
#endif
/* A 1x1, stride-1, pad-0 layer skips im2col and runs one GEMM per image
   on the NCHW tensors directly when an image has at least this many
   positions (below it the batched path's larger GEMM wins). */
#define IRMAE__CONV_DIRECT_MIN_P 64
/* Copies smaller than this many floats run on one thread. */
#define IRMAE__CONV_PAR_MIN 32768

typedef struct irmae__cgeom {
    int batch;
    int cx, hx, wx;   /* image side */
    int cy, hy, wy;   /* matrix side */
    int k, s, p;
    int kc;           /* cx * k * k */
    int P;            /* hy * wy */
    size_t planex;    /* hx * wx */
    size_t imgx;      /* cx * hx * wx */
    size_t imgy;      /* cy * P */
} irmae__cgeom;

/* 1 if a * b * c (all > 0) <= INT_MAX */
static int irmae__conv_int_ok(int a, int b, int c)
{
    int64_t t = (int64_t)a * (int64_t)b;
    if (t > INT_MAX) return 0;
    return t * (int64_t)c <= INT_MAX;
}

/* Validates d (fields re-derived from the sizes, so an edited or garbage desc
   is caught). `code` 0 reports the natural error code, otherwise `code` is
   returned for every failure. */
static int irmae__conv_check(const irmae_conv_desc *d, int transposed, int code, const char *fn)
{
    int64_t oh, ow;
    size_t t, kc, px, py;
    const char *kind = transposed ? "convt2d" : "conv2d";
    if (!d) return irmae__fail(IRMAE_ERR_ARG, "%s: desc is NULL", fn);
    if (d->transposed != transposed)
        return irmae__fail(IRMAE_ERR_ARG, "%s: desc.transposed = %d, expected %d (%s)",
                           fn, d->transposed, transposed, kind);
    if (d->batch <= 0 || d->in_c <= 0 || d->in_h <= 0 || d->in_w <= 0 || d->out_c <= 0)
        return irmae__fail(code ? code : IRMAE_ERR_ARG,
                           "%s: sizes must be > 0 (batch %d, in %d x %d x %d, out_c %d)",
                           fn, d->batch, d->in_c, d->in_h, d->in_w, d->out_c);
    if (d->k <= 0 || d->stride <= 0)
        return irmae__fail(code ? code : IRMAE_ERR_ARG, "%s: kernel %d and stride %d must be > 0",
                           fn, d->k, d->stride);
    if (d->pad < 0 || d->pad >= d->k)
        return irmae__fail(code ? code : IRMAE_ERR_ARG, "%s: pad %d outside [0, k = %d)",
                           fn, d->pad, d->k);
    if (!transposed) {
        int64_t eh = (int64_t)d->in_h + 2 * (int64_t)d->pad - d->k;
        int64_t ew = (int64_t)d->in_w + 2 * (int64_t)d->pad - d->k;
        if (eh < 0 || ew < 0)
            return irmae__fail(code ? code : IRMAE_ERR_SHAPE,
                               "%s: kernel %d larger than padded input %d x %d (pad %d)",
                               fn, d->k, d->in_h, d->in_w, d->pad);
        oh = eh / d->stride + 1;
        ow = ew / d->stride + 1;
    } else {
        oh = ((int64_t)d->in_h - 1) * d->stride - 2 * (int64_t)d->pad + d->k;
        ow = ((int64_t)d->in_w - 1) * d->stride - 2 * (int64_t)d->pad + d->k;
        if (oh < 1 || ow < 1)
            return irmae__fail(code ? code : IRMAE_ERR_SHAPE,
                               "%s: output %lld x %lld < 1 (in %d x %d, k %d, stride %d, pad %d)",
                               fn, (long long)oh, (long long)ow, d->in_h, d->in_w, d->k,
                               d->stride, d->pad);
    }
    if (oh > INT_MAX || ow > INT_MAX)
        return irmae__fail(code ? code : IRMAE_ERR_OVERFLOW, "%s: output %lld x %lld overflows int",
                           fn, (long long)oh, (long long)ow);
    if (d->out_h != (int)oh || d->out_w != (int)ow)
        return irmae__fail(code ? code : IRMAE_ERR_ARG,
                           "%s: desc out %d x %d inconsistent with computed %lld x %lld",
                           fn, d->out_h, d->out_w, (long long)oh, (long long)ow);
    /* every size below is used as a size_t (tensors, workspace) or as an int
       (GEMM dimensions / leading dimensions, plane and row loops) */
    t = irmae__count(d->batch, d->in_c, d->in_h, d->in_w);
    if (!t || t > (size_t)-1 / sizeof(float))
        return irmae__fail(code ? code : IRMAE_ERR_OVERFLOW, "%s: input tensor %d x %d x %d x %d overflows",
                           fn, d->batch, d->in_c, d->in_h, d->in_w);
    t = irmae__count(d->batch, d->out_c, d->out_h, d->out_w);
    if (!t || t > (size_t)-1 / sizeof(float))
        return irmae__fail(code ? code : IRMAE_ERR_OVERFLOW, "%s: output tensor %d x %d x %d x %d overflows",
                           fn, d->batch, d->out_c, d->out_h, d->out_w);
    t = irmae__count(d->in_c, d->out_c, d->k, d->k);
    if (!t || t > (size_t)-1 / sizeof(float))
        return irmae__fail(code ? code : IRMAE_ERR_OVERFLOW, "%s: weights %d x %d x %d x %d overflow",
                           fn, d->out_c, d->in_c, d->k, d->k);
    if (!irmae__conv_int_ok(d->batch, d->in_c, 1) || !irmae__conv_int_ok(d->batch, d->out_c, 1))
        return irmae__fail(code ? code : IRMAE_ERR_OVERFLOW, "%s: batch %d x channels (%d, %d) exceeds INT_MAX",
                           fn, d->batch, d->in_c, d->out_c);
    if (!irmae__conv_int_ok(d->in_h, d->in_w, 1) || !irmae__conv_int_ok(d->out_h, d->out_w, 1) ||
        (int64_t)d->in_h + 2 * (int64_t)d->k > INT_MAX || (int64_t)d->in_w + 2 * (int64_t)d->k > INT_MAX ||
        (int64_t)d->out_h + 2 * (int64_t)d->k > INT_MAX || (int64_t)d->out_w + 2 * (int64_t)d->k > INT_MAX)
        return irmae__fail(code ? code : IRMAE_ERR_OVERFLOW,
                           "%s: a feature map (%d x %d or %d x %d, k %d) exceeds the int range",
                           fn, d->in_h, d->in_w, d->out_h, d->out_w, d->k);
    px = (size_t)d->in_h * (size_t)d->in_w;
    py = (size_t)d->out_h * (size_t)d->out_w;
    if (!irmae__conv_int_ok(transposed ? d->out_c : d->in_c, d->k, d->k))
        return irmae__fail(code ? code : IRMAE_ERR_OVERFLOW, "%s: im2col rows (%d x %d x %d) exceed INT_MAX",
                           fn, transposed ? d->out_c : d->in_c, d->k, d->k);
    kc = (size_t)(transposed ? d->out_c : d->in_c) * (size_t)d->k * (size_t)d->k;
    /* one image's workspace: (kc + cy) * P floats, in bytes */
    if (!irmae__mul3(&t, kc + (size_t)(transposed ? d->in_c : d->out_c),
                     transposed ? px : py, sizeof(float)))
        return irmae__fail(code ? code : IRMAE_ERR_OVERFLOW, "%s: workspace for one image overflows", fn);
    return IRMAE_OK;
}

/* d must be valid */
static irmae__cgeom irmae__conv_geom(const irmae_conv_desc *d)
{
    irmae__cgeom g;
    g.batch = d->batch;
    if (!d->transposed) {
        g.cx = d->in_c; g.hx = d->in_h; g.wx = d->in_w;
        g.cy = d->out_c; g.hy = d->out_h; g.wy = d->out_w;
    } else {
        g.cx = d->out_c; g.hx = d->out_h; g.wx = d->out_w;
        g.cy = d->in_c; g.hy = d->in_h; g.wy = d->in_w;
    }
    g.k = d->k; g.s = d->stride; g.p = d->pad;
    g.kc = g.cx * g.k * g.k;
    g.P = g.hy * g.wy;
    g.planex = (size_t)g.hx * (size_t)g.wx;
    g.imgx = g.planex * (size_t)g.cx;
    g.imgy = (size_t)g.P * (size_t)g.cy;
    return g;
}

static int irmae__conv_direct(const irmae__cgeom *g)
{
    return g->k == 1 && g->s == 1 && g->p == 0 && g->P >= IRMAE__CONV_DIRECT_MIN_P;
}

/* images per chunk: a pure function of the geometry, >= 1, <= batch */
static int irmae__conv_chunk(const irmae__cgeom *g)
{
    size_t per = ((size_t)g->kc + (size_t)g->cy) * (size_t)g->P;
    size_t cap = IRMAE_CONV_CHUNK_FLOATS / per;
    if (cap < 1) cap = 1;
    if (cap > (size_t)(INT_MAX / g->P)) cap = (size_t)(INT_MAX / g->P);
    if (cap > (size_t)g->batch) cap = (size_t)g->batch;
    return (int)cap;
}

static size_t irmae__conv_ws(const irmae__cgeom *g)
{
    if (irmae__conv_direct(g)) return 0;
    return ((size_t)g->kc + (size_t)g->cy) * (size_t)g->P * (size_t)irmae__conv_chunk(g);
}

static int irmae__conv_init(irmae_conv_desc *d, int transposed, const char *fn, int batch, int in_c,
                            int in_h, int in_w, int out_c, int k, int stride, int pad)
{
    int rc;
    if (!d) return irmae__fail(IRMAE_ERR_ARG, "%s: desc is NULL", fn);
    memset(d, 0, sizeof *d);
    d->batch = batch; d->in_c = in_c; d->in_h = in_h; d->in_w = in_w; d->out_c = out_c;
    d->k = k; d->stride = stride; d->pad = pad; d->transposed = transposed;
    if (transposed) {
        int64_t oh = ((int64_t)in_h - 1) * stride - 2 * (int64_t)pad + k;
        int64_t ow = ((int64_t)in_w - 1) * stride - 2 * (int64_t)pad + k;
        d->out_h = oh >= INT_MIN && oh <= INT_MAX ? (int)oh : 0;
        d->out_w = ow >= INT_MIN && ow <= INT_MAX ? (int)ow : 0;
    } else if (stride > 0) {
        int64_t eh = (int64_t)in_h + 2 * (int64_t)pad - k, ew = (int64_t)in_w + 2 * (int64_t)pad - k;
        d->out_h = eh >= 0 && eh / stride + 1 <= INT_MAX ? (int)(eh / stride + 1) : 0;
        d->out_w = ew >= 0 && ew / stride + 1 <= INT_MAX ? (int)(ew / stride + 1) : 0;
    }
    rc = irmae__conv_check(d, transposed, 0, fn);
    if (rc) memset(d, 0, sizeof *d);
    return rc;
}

IRMAEDEF int irmae_conv2d_desc(irmae_conv_desc *d, int batch, int in_c, int in_h, int in_w,
                               int out_c, int k, int stride, int pad)
{
    return irmae__conv_init(d, 0, "conv2d_desc", batch, in_c, in_h, in_w, out_c, k, stride, pad);
}

IRMAEDEF int irmae_convt2d_desc(irmae_conv_desc *d, int batch, int in_c, int in_h, int in_w,
                                int out_c, int k, int stride, int pad)
{
    return irmae__conv_init(d, 1, "convt2d_desc", batch, in_c, in_h, in_w, out_c, k, stride, pad);
}

IRMAEDEF size_t irmae_conv_workspace(const irmae_conv_desc *d)
{
    irmae__cgeom g;
    if (!d || (d->transposed != 0 && d->transposed != 1)) return 0;
    if (irmae__conv_check(d, d->transposed, 0, "conv_workspace")) return 0;
    g = irmae__conv_geom(d);
    return irmae__conv_ws(&g);
}

/* Valid output positions o in [*lo, *hi) along one axis for kernel offset
   off = kj - pad: 0 <= o * s + off < n_in, o < n_out. */
static void irmae__conv_range(int *lo, int *hi, int off, int s, int n_in, int n_out)
{
    int a = off >= 0 ? 0 : (-off + s - 1) / s;
    int b = n_in - 1 - off < 0 ? 0 : (n_in - 1 - off) / s + 1;
    if (a > n_out) a = n_out;
    if (b > n_out) b = n_out;
    if (b < a) b = a;
    *lo = a; *hi = b;
}

/* col [kc, ld] (columns n P .. n P + P - 1 for image n < imgs) <- patches of
   x (imgs images of the image side). Each thread owns whole rows of col. */
static void irmae__im2col(float *col, size_t ld, const float *x, int imgs, const irmae__cgeom *g)
{
    int r;
    const int kk = g->k * g->k;
    IRMAE__OMP(parallel for schedule(static) if ((size_t)g->kc * ld >= IRMAE__CONV_PAR_MIN))
    for (r = 0; r < g->kc; r++) {
        const int c = r / kk, ki = (r / g->k) % g->k, kj = r % g->k, off = kj - g->p;
        int lo, hi, n, oh, ow;
        irmae__conv_range(&lo, &hi, off, g->s, g->wx, g->wy);
        for (n = 0; n < imgs; n++) {
            const float *xp = x + (size_t)n * g->imgx + (size_t)c * g->planex;
            float *dst = col + (size_t)r * ld + (size_t)n * (size_t)g->P;
            for (oh = 0; oh < g->hy; oh++, dst += g->wy) {
                const int ih = oh * g->s - g->p + ki;
                const float *row;
                if (ih < 0 || ih >= g->hx) {
                    memset(dst, 0, (size_t)g->wy * sizeof(float));
                    continue;
                }
                row = xp + (size_t)ih * (size_t)g->wx;
                for (ow = 0; ow < lo; ow++) dst[ow] = 0.0f;
                if (g->s == 1) {
                    if (hi > lo) memcpy(dst + lo, row + (lo + off), (size_t)(hi - lo) * sizeof(float));
                } else {
                    const int s = g->s;
                    for (ow = lo; ow < hi; ow++) dst[ow] = row[ow * s + off];
                }
                for (ow = hi; ow < g->wy; ow++) dst[ow] = 0.0f;
            }
        }
    }
}

/* x (imgs images of the image side) <- bias (or 0) + col2im(col): every
   plane (image, channel) is owned by one thread and summed over (ki, kj, oh,
   ow) in that fixed order. */
static void irmae__col2im(float *x, const float *col, size_t ld, int imgs, const irmae__cgeom *g,
                          const float *bias)
{
    int t;
    const int planes = imgs * g->cx;
    IRMAE__OMP(parallel for schedule(static) if ((size_t)g->kc * ld >= IRMAE__CONV_PAR_MIN))
    for (t = 0; t < planes; t++) {
        const int n = t / g->cx, c = t % g->cx;
        float *xp = x + (size_t)n * g->imgx + (size_t)c * g->planex;
        const float bv = bias ? bias[c] : 0.0f;
        size_t i;
        int ki, kj, oh, ow;
        for (i = 0; i < g->planex; i++) xp[i] = bv;
        for (ki = 0; ki < g->k; ki++)
            for (kj = 0; kj < g->k; kj++) {
                const int off = kj - g->p;
                const float *src = col + (size_t)((c * g->k + ki) * g->k + kj) * ld + (size_t)n * (size_t)g->P;
                int lo, hi;
                irmae__conv_range(&lo, &hi, off, g->s, g->wx, g->wy);
                if (hi <= lo) continue;
                for (oh = 0; oh < g->hy; oh++, src += g->wy) {
                    const int ih = oh * g->s - g->p + ki;
                    float *row;
                    if (ih < 0 || ih >= g->hx) continue;
                    row = xp + (size_t)ih * (size_t)g->wx;
                    if (g->s == 1) {
                        float *rr = row + (lo + off);
                        const float *ss = src + lo;
                        const int len = hi - lo;
                        for (ow = 0; ow < len; ow++) rr[ow] += ss[ow];
                    } else {
                        const int s = g->s;
                        for (ow = lo; ow < hi; ow++) row[ow * s + off] += src[ow];
                    }
                }
            }
    }
}

/* m [c, ld] (columns n P ..) <- y (imgs images of c x P) */
static void irmae__conv_gather(float *m, size_t ld, const float *y, int imgs, int c, int P)
{
    int t;
    const int planes = imgs * c;
    IRMAE__OMP(parallel for schedule(static) if ((size_t)planes * (size_t)P >= IRMAE__CONV_PAR_MIN))
    for (t = 0; t < planes; t++) {
        const int n = t / c, ch = t % c;
        memcpy(m + (size_t)ch * ld + (size_t)n * (size_t)P, y + (size_t)t * (size_t)P,
               (size_t)P * sizeof(float));
    }
}

/* y (imgs images of c x P) <- m [c, ld] + bias (bias may be NULL) */
static void irmae__conv_scatter(float *y, const float *m, size_t ld, int imgs, int c, int P,
                                const float *bias)
{
    int t;
    const int planes = imgs * c;
    IRMAE__OMP(parallel for schedule(static) if ((size_t)planes * (size_t)P >= IRMAE__CONV_PAR_MIN))
    for (t = 0; t < planes; t++) {
        const int n = t / c, ch = t % c;
        float *dst = y + (size_t)t * (size_t)P;
        const float *src = m + (size_t)ch * ld + (size_t)n * (size_t)P;
        if (bias) {
            const float bv = bias[ch];
            int q;
            for (q = 0; q < P; q++) dst[q] = src[q] + bv;
        } else {
            memcpy(dst, src, (size_t)P * sizeof(float));
        }
    }
}

/* y (n images of c x P) += bias per channel */
static void irmae__conv_add_bias(float *y, int n, int c, size_t P, const float *bias)
{
    int t;
    const int planes = n * c;
    IRMAE__OMP(parallel for schedule(static) if ((size_t)planes * P >= IRMAE__CONV_PAR_MIN))
    for (t = 0; t < planes; t++) {
        float *dst = y + (size_t)t * P;
        const float bv = bias[t % c];
        size_t q;
        for (q = 0; q < P; q++) dst[q] += bv;
    }
}

/* db[ch] += sum over images and positions of y (n images of c x P), in
   double, images then positions in order; one thread per channel. */
static void irmae__conv_bias_grad(float *db, const float *y, int n, int c, size_t P)
{
    int ch;
    IRMAE__OMP(parallel for schedule(static) if ((size_t)n * (size_t)c * P >= IRMAE__CONV_PAR_MIN))
    for (ch = 0; ch < c; ch++) {
        double s = 0.0;
        int i;
        for (i = 0; i < n; i++) {
            const float *src = y + ((size_t)i * (size_t)c + (size_t)ch) * P;
            size_t q;
            for (q = 0; q < P; q++) s += (double)src[q];
        }
        db[ch] = (float)((double)db[ch] + s);
    }
}

/* Common entry checks of the fast functions. */
static int irmae__conv_enter(irmae__cgeom *g, const irmae_conv_desc *d, int transposed,
                             const char *fn, const float *work, int need_work)
{
    int rc = irmae__conv_check(d, transposed, IRMAE_ERR_ARG, fn);
    if (rc) return rc;
    *g = irmae__conv_geom(d);
    if (need_work && !work && irmae__conv_ws(g) > 0)
        return irmae__fail(IRMAE_ERR_ARG, "%s: work is NULL (%lu floats needed)", fn,
                           (unsigned long)irmae__conv_ws(g));
    return IRMAE_OK;
}

IRMAEDEF int irmae_conv2d_forward(float *out, const float *in, const float *w, const float *b,
                                  const irmae_conv_desc *d, float *work)
{
    irmae__cgeom g;
    int rc = irmae__conv_enter(&g, d, 0, "conv2d_forward", work, 1), n0, imgs, cap, n;
    if (rc) return rc;
    if (!out || !in || !w)
        return irmae__fail(IRMAE_ERR_ARG, "conv2d_forward: %s is NULL", !out ? "out" : !in ? "in" : "w");
    if (irmae__conv_direct(&g)) {
        /* out_n [cy, P] = w [cy, cx] in_n [cx, P] */
        for (n = 0; n < g.batch; n++)
            irmae_sgemm(0, 0, g.cy, g.P, g.cx, 1.0f, w, g.cx, in + (size_t)n * g.imgx, g.P,
                        0.0f, out + (size_t)n * g.imgy, g.P);
        if (b) irmae__conv_add_bias(out, g.batch, g.cy, (size_t)g.P, b);
        return IRMAE_OK;
    }
    cap = irmae__conv_chunk(&g);
    for (n0 = 0; n0 < g.batch; n0 += imgs) {
        const int np = (imgs = g.batch - n0 < cap ? g.batch - n0 : cap) * g.P;
        float *col = work, *ym = work + (size_t)g.kc * (size_t)np;
        irmae__im2col(col, (size_t)np, in + (size_t)n0 * g.imgx, imgs, &g);
        irmae_sgemm(0, 0, g.cy, np, g.kc, 1.0f, w, g.kc, col, np, 0.0f, ym, np);
        irmae__conv_scatter(out + (size_t)n0 * g.imgy, ym, (size_t)np, imgs, g.cy, g.P, b);
    }
    return IRMAE_OK;
}

IRMAEDEF int irmae_conv2d_backward(float *din, float *dw, float *db, const float *dout,
                                   const float *in, const float *w,
                                   const irmae_conv_desc *d, float *work)
{
    irmae__cgeom g;
    int rc = irmae__conv_enter(&g, d, 0, "conv2d_backward", work, din || dw), n0, imgs, cap, n;
    if (rc) return rc;
    if (!dout) return irmae__fail(IRMAE_ERR_ARG, "conv2d_backward: dout is NULL");
    if (dw && !in) return irmae__fail(IRMAE_ERR_ARG, "conv2d_backward: in is NULL (needed for dw)");
    if (din && !w) return irmae__fail(IRMAE_ERR_ARG, "conv2d_backward: w is NULL (needed for din)");
    if (db) irmae__conv_bias_grad(db, dout, g.batch, g.cy, (size_t)g.P);
    if (!din && !dw) return IRMAE_OK;
    if (irmae__conv_direct(&g)) {
        for (n = 0; n < g.batch; n++) {
            const float *dy = dout + (size_t)n * g.imgy;
            /* dw [cy, cx] += dout_n [cy, P] in_n^T; din_n [cx, P] = w^T dout_n */
            if (dw) irmae_sgemm(0, 1, g.cy, g.cx, g.P, 1.0f, dy, g.P, in + (size_t)n * g.imgx, g.P,
                                1.0f, dw, g.cx);
            if (din) irmae_sgemm(1, 0, g.cx, g.P, g.cy, 1.0f, w, g.cx, dy, g.P,
                                 0.0f, din + (size_t)n * g.imgx, g.P);
        }
        return IRMAE_OK;
    }
    cap = irmae__conv_chunk(&g);
    for (n0 = 0; n0 < g.batch; n0 += imgs) {
        const int np = (imgs = g.batch - n0 < cap ? g.batch - n0 : cap) * g.P;
        float *col = work, *ym = work + (size_t)g.kc * (size_t)np;
        irmae__conv_gather(ym, (size_t)np, dout + (size_t)n0 * g.imgy, imgs, g.cy, g.P);
        if (dw) {
            irmae__im2col(col, (size_t)np, in + (size_t)n0 * g.imgx, imgs, &g);
            irmae_sgemm(0, 1, g.cy, g.kc, np, 1.0f, ym, np, col, np, 1.0f, dw, g.kc);
        }
        if (din) {
            irmae_sgemm(1, 0, g.kc, np, g.cy, 1.0f, w, g.kc, ym, np, 0.0f, col, np);
            irmae__col2im(din + (size_t)n0 * g.imgx, col, (size_t)np, imgs, &g, NULL);
        }
    }
    return IRMAE_OK;
}

IRMAEDEF int irmae_convt2d_forward(float *out, const float *in, const float *w, const float *b,
                                   const irmae_conv_desc *d, float *work)
{
    irmae__cgeom g;
    int rc = irmae__conv_enter(&g, d, 1, "convt2d_forward", work, 1), n0, imgs, cap, n;
    if (rc) return rc;
    if (!out || !in || !w)
        return irmae__fail(IRMAE_ERR_ARG, "convt2d_forward: %s is NULL", !out ? "out" : !in ? "in" : "w");
    if (irmae__conv_direct(&g)) {
        /* out_n [cx, P] = w^T in_n, w is [cy, cx] */
        for (n = 0; n < g.batch; n++)
            irmae_sgemm(1, 0, g.cx, g.P, g.cy, 1.0f, w, g.cx, in + (size_t)n * g.imgy, g.P,
                        0.0f, out + (size_t)n * g.imgx, g.P);
        if (b) irmae__conv_add_bias(out, g.batch, g.cx, g.planex, b);
        return IRMAE_OK;
    }
    cap = irmae__conv_chunk(&g);
    for (n0 = 0; n0 < g.batch; n0 += imgs) {
        const int np = (imgs = g.batch - n0 < cap ? g.batch - n0 : cap) * g.P;
        float *col = work, *ym = work + (size_t)g.kc * (size_t)np;
        irmae__conv_gather(ym, (size_t)np, in + (size_t)n0 * g.imgy, imgs, g.cy, g.P);
        irmae_sgemm(1, 0, g.kc, np, g.cy, 1.0f, w, g.kc, ym, np, 0.0f, col, np);
        irmae__col2im(out + (size_t)n0 * g.imgx, col, (size_t)np, imgs, &g, b);
    }
    return IRMAE_OK;
}

IRMAEDEF int irmae_convt2d_backward(float *din, float *dw, float *db, const float *dout,
                                    const float *in, const float *w,
                                    const irmae_conv_desc *d, float *work)
{
    irmae__cgeom g;
    int rc = irmae__conv_enter(&g, d, 1, "convt2d_backward", work, din || dw), n0, imgs, cap, n;
    if (rc) return rc;
    if (!dout) return irmae__fail(IRMAE_ERR_ARG, "convt2d_backward: dout is NULL");
    if (dw && !in) return irmae__fail(IRMAE_ERR_ARG, "convt2d_backward: in is NULL (needed for dw)");
    if (din && !w) return irmae__fail(IRMAE_ERR_ARG, "convt2d_backward: w is NULL (needed for din)");
    if (db) irmae__conv_bias_grad(db, dout, g.batch, g.cx, g.planex);
    if (!din && !dw) return IRMAE_OK;
    if (irmae__conv_direct(&g)) {
        for (n = 0; n < g.batch; n++) {
            const float *dx = dout + (size_t)n * g.imgx;
            /* dw [cy, cx] += in_n [cy, P] dout_n^T; din_n [cy, P] = w dout_n */
            if (dw) irmae_sgemm(0, 1, g.cy, g.cx, g.P, 1.0f, in + (size_t)n * g.imgy, g.P, dx, g.P,
                                1.0f, dw, g.cx);
            if (din) irmae_sgemm(0, 0, g.cy, g.P, g.cx, 1.0f, w, g.cx, dx, g.P,
                                 0.0f, din + (size_t)n * g.imgy, g.P);
        }
        return IRMAE_OK;
    }
    cap = irmae__conv_chunk(&g);
    for (n0 = 0; n0 < g.batch; n0 += imgs) {
        const int np = (imgs = g.batch - n0 < cap ? g.batch - n0 : cap) * g.P;
        float *col = work, *ym = work + (size_t)g.kc * (size_t)np;
        irmae__im2col(col, (size_t)np, dout + (size_t)n0 * g.imgx, imgs, &g);
        if (dw) {
            irmae__conv_gather(ym, (size_t)np, in + (size_t)n0 * g.imgy, imgs, g.cy, g.P);
            irmae_sgemm(0, 1, g.cy, g.kc, np, 1.0f, ym, np, col, np, 1.0f, dw, g.kc);
        }
        if (din) {
            irmae_sgemm(0, 0, g.cy, np, g.kc, 1.0f, w, g.kc, col, np, 0.0f, ym, np);
            irmae__conv_scatter(din + (size_t)n0 * g.imgy, ym, (size_t)np, imgs, g.cy, g.P, NULL);
        }
    }
    return IRMAE_OK;
}

/* ---- plain references: direct loops, double accumulation ---- */

/* index helpers for the references */
#define IRMAE__IX4(a, b, c, dd, B, C, D) \
    ((((size_t)(a) * (size_t)(B) + (size_t)(b)) * (size_t)(C) + (size_t)(c)) * (size_t)(D) + (size_t)(dd))

IRMAEDEF int irmae_conv2d_forward_ref(float *out, const float *in, const float *w, const float *b,
                                      const irmae_conv_desc *d)
{
    int n, o, c, oy, ox, ki, kj;
    int rc = irmae__conv_check(d, 0, IRMAE_ERR_ARG, "conv2d_forward_ref");
    if (rc) return rc;
    if (!out || !in || !w)
        return irmae__fail(IRMAE_ERR_ARG, "conv2d_forward_ref: %s is NULL", !out ? "out" : !in ? "in" : "w");
    for (n = 0; n < d->batch; n++)
        for (o = 0; o < d->out_c; o++)
            for (oy = 0; oy < d->out_h; oy++)
                for (ox = 0; ox < d->out_w; ox++) {
                    double s = 0.0;
                    for (c = 0; c < d->in_c; c++)
                        for (ki = 0; ki < d->k; ki++) {
                            const int iy = oy * d->stride - d->pad + ki;
                            if (iy < 0 || iy >= d->in_h) continue;
                            for (kj = 0; kj < d->k; kj++) {
                                const int ix = ox * d->stride - d->pad + kj;
                                if (ix < 0 || ix >= d->in_w) continue;
                                s += (double)w[IRMAE__IX4(o, c, ki, kj, d->in_c, d->k, d->k)] *
                                     (double)in[IRMAE__IX4(n, c, iy, ix, d->in_c, d->in_h, d->in_w)];
                            }
                        }
                    if (b) s += (double)b[o];
                    out[IRMAE__IX4(n, o, oy, ox, d->out_c, d->out_h, d->out_w)] = (float)s;
                }
    return IRMAE_OK;
}

/* db[c] += sum of y over images and positions (reference order) */
static void irmae__conv_bias_grad_ref(float *db, const float *y, int n, int c, int h, int w)
{
    int ch, i, q;
    for (ch = 0; ch < c; ch++) {
        double s = 0.0;
        for (i = 0; i < n; i++)
            for (q = 0; q < h * w; q++) s += (double)y[((size_t)i * (size_t)c + (size_t)ch) * (size_t)h * (size_t)w + (size_t)q];
        db[ch] = (float)((double)db[ch] + s);
    }
}

IRMAEDEF int irmae_conv2d_backward_ref(float *din, float *dw, float *db, const float *dout,
                                       const float *in, const float *w, const irmae_conv_desc *d)
{
    int n, o, c, y, x, ki, kj;
    const int st = d ? d->stride : 1, pd = d ? d->pad : 0;
    int rc = irmae__conv_check(d, 0, IRMAE_ERR_ARG, "conv2d_backward_ref");
    if (rc) return rc;
    if (!dout) return irmae__fail(IRMAE_ERR_ARG, "conv2d_backward_ref: dout is NULL");
    if (dw && !in) return irmae__fail(IRMAE_ERR_ARG, "conv2d_backward_ref: in is NULL (needed for dw)");
    if (din && !w) return irmae__fail(IRMAE_ERR_ARG, "conv2d_backward_ref: w is NULL (needed for din)");
    if (db) irmae__conv_bias_grad_ref(db, dout, d->batch, d->out_c, d->out_h, d->out_w);
    if (dw)
        for (o = 0; o < d->out_c; o++)
            for (c = 0; c < d->in_c; c++)
                for (ki = 0; ki < d->k; ki++)
                    for (kj = 0; kj < d->k; kj++) {
                        double s = 0.0;
                        const size_t wi = IRMAE__IX4(o, c, ki, kj, d->in_c, d->k, d->k);
                        for (n = 0; n < d->batch; n++)
                            for (y = 0; y < d->out_h; y++) {
                                const int iy = y * st - pd + ki;
                                if (iy < 0 || iy >= d->in_h) continue;
                                for (x = 0; x < d->out_w; x++) {
                                    const int ix = x * st - pd + kj;
                                    if (ix < 0 || ix >= d->in_w) continue;
                                    s += (double)dout[IRMAE__IX4(n, o, y, x, d->out_c, d->out_h, d->out_w)] *
                                         (double)in[IRMAE__IX4(n, c, iy, ix, d->in_c, d->in_h, d->in_w)];
                                }
                            }
                        dw[wi] = (float)((double)dw[wi] + s);
                    }
    if (din)
        for (n = 0; n < d->batch; n++)
            for (c = 0; c < d->in_c; c++)
                for (y = 0; y < d->in_h; y++)
                    for (x = 0; x < d->in_w; x++) {
                        double s = 0.0;
                        for (o = 0; o < d->out_c; o++)
                            for (ki = 0; ki < d->k; ki++) {
                                const int ty = y + pd - ki;
                                if (ty < 0 || ty % st || ty / st >= d->out_h) continue;
                                for (kj = 0; kj < d->k; kj++) {
                                    const int tx = x + pd - kj;
                                    if (tx < 0 || tx % st || tx / st >= d->out_w) continue;
                                    s += (double)dout[IRMAE__IX4(n, o, ty / st, tx / st, d->out_c, d->out_h, d->out_w)] *
                                         (double)w[IRMAE__IX4(o, c, ki, kj, d->in_c, d->k, d->k)];
                                }
                            }
                        din[IRMAE__IX4(n, c, y, x, d->in_c, d->in_h, d->in_w)] = (float)s;
                    }
    return IRMAE_OK;
}

IRMAEDEF int irmae_convt2d_forward_ref(float *out, const float *in, const float *w, const float *b,
                                       const irmae_conv_desc *d)
{
    int n, o, c, y, x, ki, kj;
    int rc = irmae__conv_check(d, 1, IRMAE_ERR_ARG, "convt2d_forward_ref");
    if (rc) return rc;
    if (!out || !in || !w)
        return irmae__fail(IRMAE_ERR_ARG, "convt2d_forward_ref: %s is NULL", !out ? "out" : !in ? "in" : "w");
    /* out[n,o,y,x] = b[o] + sum in[n,c,iy,ix] w[c,o,ki,kj] over y = iy s - p + ki */
    for (n = 0; n < d->batch; n++)
        for (o = 0; o < d->out_c; o++)
            for (y = 0; y < d->out_h; y++)
                for (x = 0; x < d->out_w; x++) {
                    double s = 0.0;
                    for (c = 0; c < d->in_c; c++)
                        for (ki = 0; ki < d->k; ki++) {
                            const int ty = y + d->pad - ki;
                            if (ty < 0 || ty % d->stride || ty / d->stride >= d->in_h) continue;
                            for (kj = 0; kj < d->k; kj++) {
                                const int tx = x + d->pad - kj;
                                if (tx < 0 || tx % d->stride || tx / d->stride >= d->in_w) continue;
                                s += (double)in[IRMAE__IX4(n, c, ty / d->stride, tx / d->stride, d->in_c, d->in_h, d->in_w)] *
                                     (double)w[IRMAE__IX4(c, o, ki, kj, d->out_c, d->k, d->k)];
                            }
                        }
                    if (b) s += (double)b[o];
                    out[IRMAE__IX4(n, o, y, x, d->out_c, d->out_h, d->out_w)] = (float)s;
                }
    return IRMAE_OK;
}

IRMAEDEF int irmae_convt2d_backward_ref(float *din, float *dw, float *db, const float *dout,
                                        const float *in, const float *w, const irmae_conv_desc *d)
{
    int n, o, c, y, x, ki, kj;
    const int st = d ? d->stride : 1, pd = d ? d->pad : 0;
    int rc = irmae__conv_check(d, 1, IRMAE_ERR_ARG, "convt2d_backward_ref");
    if (rc) return rc;
    if (!dout) return irmae__fail(IRMAE_ERR_ARG, "convt2d_backward_ref: dout is NULL");
    if (dw && !in) return irmae__fail(IRMAE_ERR_ARG, "convt2d_backward_ref: in is NULL (needed for dw)");
    if (din && !w) return irmae__fail(IRMAE_ERR_ARG, "convt2d_backward_ref: w is NULL (needed for din)");
    if (db) irmae__conv_bias_grad_ref(db, dout, d->batch, d->out_c, d->out_h, d->out_w);
    /* dw[c,o,ki,kj] += sum in[n,c,y,x] dout[n,o,y s - p + ki, x s - p + kj] */
    if (dw)
        for (c = 0; c < d->in_c; c++)
            for (o = 0; o < d->out_c; o++)
                for (ki = 0; ki < d->k; ki++)
                    for (kj = 0; kj < d->k; kj++) {
                        double s = 0.0;
                        const size_t wi = IRMAE__IX4(c, o, ki, kj, d->out_c, d->k, d->k);
                        for (n = 0; n < d->batch; n++)
                            for (y = 0; y < d->in_h; y++) {
                                const int oy = y * st - pd + ki;
                                if (oy < 0 || oy >= d->out_h) continue;
                                for (x = 0; x < d->in_w; x++) {
                                    const int ox = x * st - pd + kj;
                                    if (ox < 0 || ox >= d->out_w) continue;
                                    s += (double)in[IRMAE__IX4(n, c, y, x, d->in_c, d->in_h, d->in_w)] *
                                         (double)dout[IRMAE__IX4(n, o, oy, ox, d->out_c, d->out_h, d->out_w)];
                                }
                            }
                        dw[wi] = (float)((double)dw[wi] + s);
                    }
    /* din[n,c,y,x] = sum dout[n,o,y s - p + ki, x s - p + kj] w[c,o,ki,kj] */
    if (din)
        for (n = 0; n < d->batch; n++)
            for (c = 0; c < d->in_c; c++)
                for (y = 0; y < d->in_h; y++)
                    for (x = 0; x < d->in_w; x++) {
                        double s = 0.0;
                        for (o = 0; o < d->out_c; o++)
                            for (ki = 0; ki < d->k; ki++) {
                                const int oy = y * st - pd + ki;
                                if (oy < 0 || oy >= d->out_h) continue;
                                for (kj = 0; kj < d->k; kj++) {
                                    const int ox = x * st - pd + kj;
                                    if (ox < 0 || ox >= d->out_w) continue;
                                    s += (double)dout[IRMAE__IX4(n, o, oy, ox, d->out_c, d->out_h, d->out_w)] *
                                         (double)w[IRMAE__IX4(c, o, ki, kj, d->out_c, d->k, d->k)];
                                }
                            }
                        din[IRMAE__IX4(n, c, y, x, d->in_c, d->in_h, d->in_w)] = (float)s;
                    }
    return IRMAE_OK;
}

#undef IRMAE__IX4

