/* ---------------------------------------------------------------------- */
/* Analysis: covariance, eigen-solver, spectrum, Gaussian / GMM, PCA,     */
/* Frechet distance                                                       */
/* ---------------------------------------------------------------------- */

/* Rows per block when accumulating centred outer products. Parallel regions
   are opened only around coarse work (outer products of a block of rows, a
   whole E-step, a matrix product): the eigen-solver's steps are too small
   (a region per Householder step or QR sweep ran 5-20x slower than serial
   on a loaded 2-core machine), so it is serial. */
#define IRMAE__ANA_CHUNK 256

/* uniform double in [0, 1) with 53 random bits */
static double irmae__ana_u01(irmae_rng *r)
{
    return (double)(irmae_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* n doubles times m, zero-filled; NULL on overflow or failure */
static double *irmae__ana_dalloc(size_t a, size_t b)
{
    size_t t;
    if (!irmae__mul(&t, a, b)) return NULL;
    return (double *)irmae__alloc(t, sizeof(double));
}

/* dot product with four running sums: breaks the add latency chain (the
   compiler may not reorder a floating-point reduction itself); the order is
   fixed, so results are reproducible */
static double irmae__ana_dot(const double *a, const double *b, int n)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

/* Checks count >= mincount, n > 0, and that count * n floats and n * n
   doubles are addressable. */
static int irmae__ana_dims(const char *fn, int count, int mincount, int n)
{
    size_t t;
    if (count < mincount)
        return irmae__fail(IRMAE_ERR_ARG, "%s: count %d < %d", fn, count, mincount);
    if (n <= 0) return irmae__fail(IRMAE_ERR_ARG, "%s: dimension %d <= 0", fn, n);
    if (!irmae__mul3(&t, (size_t)count, (size_t)n, sizeof(float)) ||
        !irmae__mul3(&t, (size_t)n, (size_t)n, sizeof(double)))
        return irmae__fail(IRMAE_ERR_OVERFLOW, "%s: %d x %d does not fit in memory", fn, count, n);
    return IRMAE_OK;
}

/* First NaN/Inf in a count x n float array -> IRMAE_ERR_NUMERIC naming it. */
static int irmae__ana_finite_f(const char *fn, const char *what, const float *x, int count, int n)
{
    size_t total = (size_t)count * (size_t)n, i;
    for (i = 0; i < total; i++)
        if (!(fabs((double)x[i]) <= DBL_MAX))
            return irmae__fail(IRMAE_ERR_NUMERIC, "%s: %s[%lu][%lu] is not finite", fn, what,
                               (unsigned long)(i / (size_t)n), (unsigned long)(i % (size_t)n));
    return IRMAE_OK;
}

/* s (n x n, upper triangle with diagonal) += c^T c, c is rows x n row-major.
   Each thread owns whole rows of s and sums over c's rows in order, so the
   result does not depend on the thread count. */
static void irmae__ana_syrk_upper(double *s, const double *c, int rows, int n)
{
    int i;
    IRMAE__OMP(parallel for if((double)rows * n * n >= 4194304.0) schedule(dynamic, 8))
    for (i = 0; i < n; i++) {
        double *si = s + (size_t)i * n;
        int r = 0, j;
        for (; r + 4 <= rows; r += 4) { /* four rows per pass over s_i */
            const double *c0 = c + (size_t)r * n, *c1 = c0 + n, *c2 = c1 + n, *c3 = c2 + n;
            double f0 = c0[i], f1 = c1[i], f2 = c2[i], f3 = c3[i];
            if (f0 == 0.0 && f1 == 0.0 && f2 == 0.0 && f3 == 0.0) continue;
            for (j = i; j < n; j++) si[j] += (f0 * c0[j] + f1 * c1[j]) + (f2 * c2[j] + f3 * c3[j]);
        }
        for (; r < rows; r++) {
            const double *cr = c + (size_t)r * n;
            double f = cr[i];
            if (f == 0.0) continue;
            for (j = i; j < n; j++) si[j] += f * cr[j];
        }
    }
}

/* Copies the upper triangle of s (n x n) onto the lower one. */
static void irmae__ana_mirror(double *s, int n)
{
    int i, j;
    for (i = 1; i < n; i++)
        for (j = 0; j < i; j++) s[(size_t)i * n + j] = s[(size_t)j * n + i];
}

/* s = sum_r w_r (x_r - mu)(x_r - mu)^T (full n x n) and dev = sum_r w_r (x_r - mu);
   w NULL means all weights 1, else w_r >= 0. Returns 0 or IRMAE_ERR_NOMEM. */
static int irmae__ana_scatter(double *s, double *dev, const float *x, const double *w,
                              const double *mu, int count, int n)
{
    double *buf = irmae__ana_dalloc((size_t)IRMAE__ANA_CHUNK, (size_t)n);
    int r0, j;
    if (!buf) return IRMAE_ERR_NOMEM;
    memset(s, 0, (size_t)n * (size_t)n * sizeof(double));
    memset(dev, 0, (size_t)n * sizeof(double));
    for (r0 = 0; r0 < count; r0 += IRMAE__ANA_CHUNK) {
        int rows = count - r0 < IRMAE__ANA_CHUNK ? count - r0 : IRMAE__ANA_CHUNK, r;
        for (r = 0; r < rows; r++) {
            const float *xr = x + (size_t)(r0 + r) * n;
            double *br = buf + (size_t)r * n;
            double wr = w ? w[r0 + r] : 1.0, sw = w ? sqrt(wr) : 1.0;
            for (j = 0; j < n; j++) {
                double dj = (double)xr[j] - mu[j];
                dev[j] += wr * dj;
                br[j] = sw * dj;
            }
        }
        irmae__ana_syrk_upper(s, buf, rows, n);
    }
    irmae__ana_mirror(s, n);
    irmae__free(buf);
    return IRMAE_OK;
}

/* Unchecked core of irmae_covariance: mean (n, required) and cov. */
static int irmae__ana_cov(double *cov, double *mean, const float *x, int count, int n)
{
    double *dev = irmae__ana_dalloc((size_t)n, 1);
    int r, i, j, rc;
    if (!dev) return IRMAE_ERR_NOMEM;
    for (j = 0; j < n; j++) mean[j] = 0.0;
    for (r = 0; r < count; r++) {
        const float *xr = x + (size_t)r * n;
        for (j = 0; j < n; j++) mean[j] += (double)xr[j];
    }
    for (j = 0; j < n; j++) mean[j] /= (double)count;
    rc = irmae__ana_scatter(cov, dev, x, NULL, mean, count, n);
    if (rc == IRMAE_OK) {
        /* second-pass correction: subtract (sum of deviations)^2 / count */
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) {
                double *cij = cov + (size_t)i * n + j;
                *cij = (*cij - dev[i] * dev[j] / (double)count) / (double)(count - 1);
            }
    }
    irmae__free(dev);
    return rc;
}

IRMAEDEF int irmae_covariance(double *cov, double *mean, const float *x, int count, int n)
{
    double *mu;
    int rc;
    if (!cov || !x) return irmae__fail(IRMAE_ERR_ARG, "covariance: %s is NULL", !cov ? "cov" : "x");
    if ((rc = irmae__ana_dims("covariance", count, 2, n)) != IRMAE_OK) return rc;
    if ((rc = irmae__ana_finite_f("covariance", "x", x, count, n)) != IRMAE_OK) return rc;
    mu = mean ? mean : irmae__ana_dalloc((size_t)n, 1);
    if (!mu) return irmae__fail(IRMAE_ERR_NOMEM, "covariance: mean of %d", n);
    rc = irmae__ana_cov(cov, mu, x, count, n);
    if (mu != mean) irmae__free(mu);
    if (rc) return irmae__fail(rc, "covariance: work buffers for n = %d", n);
    return IRMAE_OK;
}

/* ---- symmetric eigen-solver ------------------------------------------ */

/* Householder vector of one step, in place: v (m entries) holds x on entry
   and v = x - alpha e1 on exit, with alpha = -sign(x0) |x| (no cancellation).
   *ek = alpha; returns tau = 2 / v.v, or 0 (and *ek = x0) when x is already
   a multiple of e1. */
static double irmae__ana_reflector(double *v, int m, double *ek)
{
    double x0 = v[0], sigma, norm, alpha;
    sigma = irmae__ana_dot(v + 1, v + 1, m - 1);
    if (sigma == 0.0) { *ek = x0; return 0.0; }
    norm = sqrt(x0 * x0 + sigma);
    alpha = x0 >= 0.0 ? -norm : norm;
    v[0] = x0 - alpha;
    *ek = alpha;
    return 2.0 / (v[0] * v[0] + sigma);
}

/* Householder reduction of the symmetric w (n x n, full storage) to
   tridiagonal form T = Q^T w Q: diagonal d (n), off-diagonal e (n - 1).
   The reflector of step k, H_k = I - tau[k] v v^T acting on indices k+1..n-1,
   is left in row k of w (columns k+1..n-1); Q = H_0 H_1 ... H_{n-3}.
   Step k updates the trailing block S -= v q^T + q v^T, q = p - (tau/2)(v.p) v,
   p = tau S v. The next step's reflector comes from the first updated row,
   so its product p' = tau' S' v' is accumulated in the same pass over S (one
   sweep over the block per step instead of two). scratch: 2 n doubles. */
static void irmae__ana_tridiag(double *w, int n, double *d, double *e, double *tau, double *scratch)
{
    double *p = scratch, *p2 = scratch + n, *sw;
    int k, i, j;
    if (n >= 3) { /* step 0: reflector and p */
        double *v = w + 1, *s = w + (size_t)n + 1;
        int m = n - 1;
        tau[0] = irmae__ana_reflector(v, m, &e[0]);
        if (tau[0] != 0.0)
            for (i = 0; i < m; i++) p[i] = tau[0] * irmae__ana_dot(s + (size_t)i * n, v, m);
    }
    for (k = 0; k + 2 < n; k++) {
        int m = n - k - 1, next = k + 3 < n;
        double *v = w + (size_t)k * n + k + 1;       /* this step's reflector (row k) */
        double *s = w + (size_t)(k + 1) * n + k + 1; /* trailing m x m block */
        double *v2 = s + 1;                          /* next reflector: row k+1, m-1 entries */
        double t = tau[k], t2 = 0.0, kk = 0.0;
        d[k] = w[(size_t)k * n + k];
        if (t != 0.0) { /* q = p - (t/2)(v.p) v, then row 0 of S */
            kk = 0.5 * t * irmae__ana_dot(v, p, m);
            for (i = 0; i < m; i++) p[i] -= kk * v[i];
            for (j = 0; j < m; j++) s[j] -= v[0] * p[j] + p[0] * v[j];
        }
        if (next) t2 = tau[k + 1] = irmae__ana_reflector(v2, m - 1, &e[k + 1]);
        if (t == 0.0 && t2 == 0.0) continue;
        for (i = 1; i < m; i++) {
            double *si = s + (size_t)i * n;
            if (t != 0.0) {
                double vi = v[i], qi = p[i];
                /* column 0 (= column k+1) of rows below is never read again */
                for (j = 1; j < m; j++) si[j] -= vi * p[j] + qi * v[j];
            }
            if (t2 != 0.0) p2[i - 1] = t2 * irmae__ana_dot(si + 1, v2, m - 1);
        }
        sw = p; p = p2; p2 = sw;
    }
    if (n >= 2) {
        d[n - 2] = w[(size_t)(n - 2) * n + n - 2];
        e[n - 2] = w[(size_t)(n - 2) * n + n - 1];
    }
    d[n - 1] = w[(size_t)(n - 1) * n + n - 1];
}

/* z = Q^T (n x n) from the reflectors left in w by irmae__ana_tridiag. */
static void irmae__ana_form_qt(double *z, const double *w, const double *tau, int n)
{
    int k, r;
    memset(z, 0, (size_t)n * (size_t)n * sizeof(double));
    for (r = 0; r < n; r++) z[(size_t)r * n + r] = 1.0;
    for (k = n - 3; k >= 0; k--) {
        const double *v = w + (size_t)k * n + k + 1;
        int m = n - k - 1;
        double t = tau[k];
        if (t == 0.0) continue;
        /* z <- z H_k; rows above k+1 are unit vectors orthogonal to v */
        for (r = k + 1; r < n; r++) {
            double *zr = z + (size_t)r * n + k + 1;
            double dot = t * irmae__ana_dot(zr, v, m);
            int j;
            for (j = 0; j < m; j++) zr[j] -= dot * v[j];
        }
    }
}

/* Applies the rotations of one QR sweep over rows l..m of z (n columns):
   for k = l..m-1, rows (k, k+1) <- [c s; -s c] (rows k, k+1). Blocks of 64
   columns keep the touched rows in cache. */
static void irmae__ana_apply_rot(double *z, int n, int l, int m, const double *cs)
{
    int nb = (n + 63) / 64, b;
    for (b = 0; b < nb; b++) {
        int j0 = b * 64, j1 = j0 + 64 < n ? j0 + 64 : n, k, j;
        for (k = l; k < m; k++) {
            double c = cs[2 * (k - l)], s = cs[2 * (k - l) + 1];
            double *zp = z + (size_t)k * n, *zq = zp + n;
            for (j = j0; j < j1; j++) {
                double pv = zp[j], qv = zq[j];
                zp[j] = c * pv + s * qv;
                zq[j] = c * qv - s * pv;
            }
        }
    }
}

/* is the off-diagonal e negligible next to its diagonal neighbours a, b? */
static int irmae__ana_negligible(double e, double a, double b, double floor_abs)
{
    double ae = fabs(e);
    return ae <= DBL_EPSILON * (fabs(a) + fabs(b)) || ae <= floor_abs;
}

/* Implicit symmetric QR with Wilkinson shifts on the tridiagonal (d, e).
   z (rows = vectors, n x n) is rotated along when non-NULL; cs holds
   2 (n - 1) doubles of scratch. Returns 0 or IRMAE_ERR_CONVERGENCE. */
static int irmae__ana_tridiag_qr(double *d, double *e, int n, double *z, double *cs)
{
    double tnorm = 0.0, floor_abs;
    int i, m = n - 1, iter = 0;
    for (i = 0; i < n; i++) {
        double r = fabs(d[i]) + (i + 1 < n ? fabs(e[i]) : 0.0) + (i > 0 ? fabs(e[i - 1]) : 0.0);
        if (r > tnorm) tnorm = r;
    }
    floor_abs = DBL_EPSILON * DBL_EPSILON * tnorm;
    while (m > 0) {
        int l, k;
        double mu, x, y;
        if (irmae__ana_negligible(e[m - 1], d[m - 1], d[m], floor_abs)) {
            e[m - 1] = 0.0;
            m--;
            iter = 0;
            continue;
        }
        for (l = m - 1; l > 0; l--)
            if (irmae__ana_negligible(e[l - 1], d[l - 1], d[l], floor_abs)) { e[l - 1] = 0.0; break; }
        if (++iter > 100) return IRMAE_ERR_CONVERGENCE;
        {   /* Wilkinson shift: eigenvalue of the trailing 2x2 nearer d[m] */
            double half = 0.5 * (d[m - 1] - d[m]), b = e[m - 1], r = hypot(half, b);
            mu = d[m] - b * (b / (half + (half >= 0.0 ? r : -r)));
        }
        x = d[l] - mu;
        y = e[l];
        for (k = l; k < m; k++) {
            double r = hypot(x, y), c, s, a, b, dd;
            if (r == 0.0) { c = 1.0; s = 0.0; } else { c = x / r; s = y / r; }
            if (k > l) e[k - 1] = r;
            a = d[k]; b = e[k]; dd = d[k + 1];
            d[k] = c * c * a + 2.0 * c * s * b + s * s * dd;
            d[k + 1] = s * s * a - 2.0 * c * s * b + c * c * dd;
            e[k] = (c * c - s * s) * b + c * s * (dd - a);
            if (k + 1 < m) { y = s * e[k + 1]; e[k + 1] *= c; } /* bulge at (k, k+2) */
            x = e[k];
            cs[2 * (k - l)] = c;
            cs[2 * (k - l) + 1] = s;
        }
        if (z) irmae__ana_apply_rot(z, n, l, m, cs);
    }
    return IRMAE_OK;
}

IRMAEDEF int irmae_eigh(const double *a, int n, double *eigenvalues, double *vectors)
{
    double *w, *e, *tau, *cs, amax = 0.0, *d = eigenvalues;
    size_t nn, i, j;
    int ex = 0, rc, k;
    if (!a || !eigenvalues)
        return irmae__fail(IRMAE_ERR_ARG, "eigh: %s is NULL", !a ? "a" : "eigenvalues");
    if (n <= 0) return irmae__fail(IRMAE_ERR_ARG, "eigh: n = %d <= 0", n);
    if (!irmae__mul3(&nn, (size_t)n, (size_t)n, sizeof(double)))
        return irmae__fail(IRMAE_ERR_OVERFLOW, "eigh: %d x %d doubles", n, n);
    nn = (size_t)n * (size_t)n;
    for (i = 0; i < nn; i++)
        if (!(fabs(a[i]) <= DBL_MAX))
            return irmae__fail(IRMAE_ERR_NUMERIC, "eigh: a[%lu][%lu] is not finite",
                               (unsigned long)(i / (size_t)n), (unsigned long)(i % (size_t)n));
    w = irmae__ana_dalloc(nn, 1);
    e = irmae__ana_dalloc((size_t)n, 1);
    tau = irmae__ana_dalloc((size_t)n, 1);
    cs = irmae__ana_dalloc((size_t)n, 2);
    if (!w || !e || !tau || !cs) {
        irmae__free(w); irmae__free(e); irmae__free(tau); irmae__free(cs);
        return irmae__fail(IRMAE_ERR_NOMEM, "eigh: work space for n = %d", n);
    }
    for (i = 0; i < (size_t)n; i++)
        for (j = 0; j < (size_t)n; j++) {
            double v = 0.5 * a[i * n + j] + 0.5 * a[j * n + i];
            w[i * n + j] = v;
            if (fabs(v) > amax) amax = fabs(v);
        }
    rc = IRMAE_OK;
    if (amax == 0.0) {
        for (i = 0; i < (size_t)n; i++) d[i] = 0.0;
        if (vectors) {
            memset(vectors, 0, nn * sizeof(double));
            for (i = 0; i < (size_t)n; i++) vectors[i * n + i] = 1.0;
        }
    } else {
        /* scale by a power of two (exact) so that max |w| is in [0.5, 1) */
        (void)frexp(amax, &ex);
        for (i = 0; i < nn; i++) w[i] = ldexp(w[i], -ex);
        irmae__ana_tridiag(w, n, d, e, tau, cs);
        if (vectors) irmae__ana_form_qt(vectors, w, tau, n);
        rc = irmae__ana_tridiag_qr(d, e, n, vectors, cs);
        if (rc == IRMAE_OK) {
            /* selection sort, descending, rows of vectors alongside */
            for (k = 0; k + 1 < n; k++) {
                int best = k, q;
                for (q = k + 1; q < n; q++) if (d[q] > d[best]) best = q;
                if (best != k) {
                    double t = d[k]; d[k] = d[best]; d[best] = t;
                    if (vectors) {
                        double *rk = vectors + (size_t)k * n, *rb = vectors + (size_t)best * n;
                        for (j = 0; j < (size_t)n; j++) { t = rk[j]; rk[j] = rb[j]; rb[j] = t; }
                    }
                }
            }
            for (i = 0; i < (size_t)n; i++) d[i] = ldexp(d[i], ex);
            if (vectors) /* re-normalise (rounding drift only) */
                for (i = 0; i < (size_t)n; i++) {
                    double *r = vectors + i * n, s2 = 0.0;
                    for (j = 0; j < (size_t)n; j++) s2 += r[j] * r[j];
                    s2 = 1.0 / sqrt(s2);
                    for (j = 0; j < (size_t)n; j++) r[j] *= s2;
                }
        }
    }
    irmae__free(w); irmae__free(e); irmae__free(tau); irmae__free(cs);
    if (rc) return irmae__fail(rc, "eigh: QR iteration on the %d x %d tridiagonal matrix", n, n);
    return IRMAE_OK;
}

/* ---- spectrum --------------------------------------------------------- */

IRMAEDEF void irmae_spectrum_free(irmae_spectrum *s)
{
    if (!s) return;
    irmae__free(s->values);
    irmae__free(s->normalized);
    memset(s, 0, sizeof *s);
}

IRMAEDEF int irmae_spectrum_rank(const irmae_spectrum *s, double threshold)
{
    int i, r = 0;
    if (!s || !s->normalized || s->n <= 0)
        return irmae__fail(IRMAE_ERR_ARG, "spectrum_rank: empty spectrum");
    if (threshold != threshold) return irmae__fail(IRMAE_ERR_ARG, "spectrum_rank: threshold is NaN");
    for (i = 0; i < s->n; i++) r += s->normalized[i] >= threshold;
    return r;
}

IRMAEDEF int irmae_spectrum_compute(irmae_spectrum *s, const float *codes, int count, int n)
{
    double *cov, sum = 0.0, h = 0.0;
    int rc, i;
    if (!s) return irmae__fail(IRMAE_ERR_ARG, "spectrum_compute: s is NULL");
    memset(s, 0, sizeof *s);
    if (!codes) return irmae__fail(IRMAE_ERR_ARG, "spectrum_compute: codes is NULL");
    if ((rc = irmae__ana_dims("spectrum_compute", count, 2, n)) != IRMAE_OK) return rc;
    cov = irmae__ana_dalloc((size_t)n, (size_t)n);
    s->values = irmae__ana_dalloc((size_t)n, 1);
    s->normalized = irmae__ana_dalloc((size_t)n, 1);
    if (!cov || !s->values || !s->normalized) {
        irmae__free(cov);
        irmae_spectrum_free(s);
        return irmae__fail(IRMAE_ERR_NOMEM, "spectrum_compute: n = %d", n);
    }
    rc = irmae_covariance(cov, NULL, codes, count, n);
    if (rc == IRMAE_OK) rc = irmae_eigh(cov, n, s->values, NULL);
    irmae__free(cov);
    if (rc) { irmae_spectrum_free(s); return rc; }
    s->n = n;
    for (i = 0; i < n; i++) {
        double v = s->values[i] > 0.0 ? s->values[i] : 0.0;
        s->normalized[i] = s->values[0] > 0.0 ? v / s->values[0] : 0.0;
        sum += v;
    }
    s->rank_1pct = irmae_spectrum_rank(s, 0.01);
    s->rank_01pct = irmae_spectrum_rank(s, 0.001);
    if (sum > 0.0) {
        for (i = 0; i < n; i++) {
            double p = (s->values[i] > 0.0 ? s->values[i] : 0.0) / sum;
            if (p > 0.0) h -= p * log(p);
        }
        s->entropy_rank = exp(h);
    }
    return IRMAE_OK;
}

/* validates the (spectra, names, count) arguments of the writers; *maxn out */
static int irmae__ana_check_spectra(const char *fn, const char *path, const irmae_spectrum *const *sp,
                                    int count, int *maxn)
{
    int i;
    if (!path || !sp) return irmae__fail(IRMAE_ERR_ARG, "%s: %s is NULL", fn, !path ? "path" : "spectra");
    if (count <= 0) return irmae__fail(IRMAE_ERR_ARG, "%s: count %d <= 0", fn, count);
    *maxn = 0;
    for (i = 0; i < count; i++) {
        if (!sp[i] || !sp[i]->normalized || sp[i]->n <= 0)
            return irmae__fail(IRMAE_ERR_ARG, "%s: spectrum %d is NULL or empty", fn, i);
        if (sp[i]->n > *maxn) *maxn = sp[i]->n;
    }
    return IRMAE_OK;
}

/* finishes a file written with stdio: IO error if anything failed */
static int irmae__ana_close(FILE *f, const char *fn, const char *path)
{
    int bad = ferror(f);
    if (fclose(f) != 0) bad = 1;
    if (bad) return irmae__fail(IRMAE_ERR_IO, "%s: writing '%s' failed", fn, path);
    return IRMAE_OK;
}

IRMAEDEF int irmae_spectra_write_csv(const char *path, const irmae_spectrum *const *spectra,
                                     const char *const *names, int count)
{
    FILE *f;
    int maxn, rc, i, s;
    if ((rc = irmae__ana_check_spectra("spectra_write_csv", path, spectra, count, &maxn)) != IRMAE_OK)
        return rc;
    f = fopen(path, "wb");
    if (!f) return irmae__fail(IRMAE_ERR_IO, "spectra_write_csv: cannot open '%s'", path);
    fputs("index", f);
    for (s = 0; s < count; s++) {
        const char *nm = names ? names[s] : NULL;
        fputc(',', f);
        if (!nm) fprintf(f, "spectrum %d", s + 1);
        else if (strpbrk(nm, ",\"\r\n")) {
            const char *c;
            fputc('"', f);
            for (c = nm; *c; c++) { if (*c == '"') fputc('"', f); fputc(*c, f); }
            fputc('"', f);
        } else fputs(nm, f);
    }
    fputs("\n", f);
    for (i = 0; i < maxn; i++) {
        fprintf(f, "%d", i + 1);
        for (s = 0; s < count; s++) {
            fputc(',', f);
            if (i < spectra[s]->n) fprintf(f, "%.17g", spectra[s]->normalized[i]);
        }
        fputs("\n", f);
    }
    return irmae__ana_close(f, "spectra_write_csv", path);
}

/* Length of the XML-safe UTF-8 character at s (1..4), 0 if it is not valid
   UTF-8 or not an XML 1.0 character. *s != 0. */
static int irmae__ana_utf8_len(const unsigned char *s)
{
    unsigned c = s[0], c1;
    if (c < 0x80) return (c >= 0x20 || c == 0x09 || c == 0x0A || c == 0x0D) ? 1 : 0;
    c1 = s[1];
    if (c >= 0xC2 && c <= 0xDF) return (c1 & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if ((c1 & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && c1 < 0xA0) return 0;                       /* overlong */
        if (c == 0xED && c1 >= 0xA0) return 0;                      /* surrogates */
        if (c == 0xEF && c1 == 0xBF && (s[2] == 0xBE || s[2] == 0xBF)) return 0; /* U+FFFE/F */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if ((c1 & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && c1 < 0x90) return 0;                       /* overlong */
        if (c == 0xF4 && c1 >= 0x90) return 0;                      /* > U+10FFFF */
        return 4;
    }
    return 0;
}

/* writes s as XML character data / attribute text; returns its length in
   characters (for layout) */
static int irmae__ana_xml_text(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    int chars = 0;
    while (*p) {
        int len = irmae__ana_utf8_len(p);
        chars++;
        if (len == 0) { fputc('?', f); p++; continue; }
        if (len == 1) {
            switch (*p) {
            case '&': fputs("&amp;", f); break;
            case '<': fputs("&lt;", f); break;
            case '>': fputs("&gt;", f); break;
            case '"': fputs("&quot;", f); break;
            case '\'': fputs("&apos;", f); break;
            case '\t': case '\n': case '\r': fputc(' ', f); break;
            default: fputc(*p, f);
            }
        } else fwrite(p, 1, (size_t)len, f);
        p += len;
    }
    return chars;
}

/* number of characters irmae__ana_xml_text would count */
static int irmae__ana_text_chars(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    int chars = 0;
    while (*p) {
        int len = irmae__ana_utf8_len(p);
        p += len ? len : 1;
        chars++;
    }
    return chars;
}

/* tick step from {1, 2, 5} x 10^k giving about `target` intervals */
static double irmae__ana_nice_step(double range, int target)
{
    double raw = range / target, p, f;
    if (!(raw > 0.0)) return 1.0;
    p = pow(10.0, floor(log10(raw)));
    f = raw / p;
    return (f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0) * p;
}

IRMAEDEF int irmae_spectra_write_svg(const char *path, const irmae_spectrum *const *spectra,
                                     const char *const *names, int count, const char *title)
{
    static const char *const colors[10] = {
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"
    };
    const double W = 720.0, H = 480.0, left = 72.0, right = 700.0, top = 48.0, bottom = 416.0;
    const double pw = right - left, ph = bottom - top;
    FILE *f;
    int maxn, rc, s, i, maxchars = 0;
    double xmax, step, t, lw, lx, ly;
    char defname[32];
    if ((rc = irmae__ana_check_spectra("spectra_write_svg", path, spectra, count, &maxn)) != IRMAE_OK)
        return rc;
    f = fopen(path, "wb");
    if (!f) return irmae__fail(IRMAE_ERR_IO, "spectra_write_svg: cannot open '%s'", path);
    xmax = maxn < 2 ? 2.0 : (double)maxn;
#define IRMAE__SVG_X(v) (left + ((v) - 1.0) / (xmax - 1.0) * pw)
#define IRMAE__SVG_Y(v) (top + (1.0 - (v)) * ph)
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", W, H);
    if (title) {
        fprintf(f, "<text x=\"%.1f\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">", 0.5 * (left + right));
        irmae__ana_xml_text(f, title);
        fputs("</text>\n", f);
    }
    /* horizontal grid and y ticks: 0, 0.1, ..., 1 (labels every 0.2) */
    fputs("<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n", f);
    for (i = 0; i <= 10; i++)
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n",
                left, IRMAE__SVG_Y(i * 0.1), right, IRMAE__SVG_Y(i * 0.1));
    fputs("</g>\n<g stroke=\"#000000\" stroke-width=\"1\">\n", f);
    for (i = 0; i <= 10; i++)
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n",
                left - (i % 2 ? 3.0 : 6.0), IRMAE__SVG_Y(i * 0.1), left, IRMAE__SVG_Y(i * 0.1));
    /* x ticks at multiples of a nice step (and at 1 when the step is >= 5) */
    step = irmae__ana_nice_step(xmax - 1.0, 8);
    if (step < 1.0) step = 1.0;
    if (step >= 5.0)
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n",
                IRMAE__SVG_X(1.0), bottom, IRMAE__SVG_X(1.0), bottom + 6.0);
    for (t = step; t <= xmax + 1e-9; t += step)
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n",
                IRMAE__SVG_X(t), bottom, IRMAE__SVG_X(t), bottom + 6.0);
    fputs("</g>\n", f);
    /* axes */
    fprintf(f, "<path d=\"M%.2f %.2f L%.2f %.2f L%.2f %.2f\" fill=\"none\" stroke=\"#000000\" stroke-width=\"1.2\"/>\n",
            left, top, left, bottom, right, bottom);
    /* tick labels */
    fputs("<g fill=\"#000000\">\n", f);
    for (i = 0; i <= 10; i += 2)
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%.1f</text>\n",
                left - 9.0, IRMAE__SVG_Y(i * 0.1) + 4.0, i * 0.1);
    if (step >= 5.0)
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">1</text>\n", IRMAE__SVG_X(1.0), bottom + 20.0);
    for (t = step; t <= xmax + 1e-9; t += step)
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%.0f</text>\n",
                IRMAE__SVG_X(t), bottom + 20.0, t);
    fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"13\">singular value index</text>\n",
            0.5 * (left + right), H - 20.0);
    fprintf(f, "<text x=\"18\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"13\" "
               "transform=\"rotate(-90 18 %.2f)\">normalized singular value</text>\n",
            0.5 * (top + bottom), 0.5 * (top + bottom));
    fputs("</g>\n", f);
    /* curves */
    for (s = 0; s < count; s++) {
        const irmae_spectrum *sp = spectra[s];
        const char *col = colors[s % 10];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" stroke-linejoin=\"round\" points=\"", col);
        for (i = 0; i < sp->n; i++) {
            double v = sp->normalized[i];
            if (!(v >= 0.0)) v = 0.0;
            if (v > 1.0) v = 1.0;
            fprintf(f, "%s%.2f,%.2f", i ? " " : "", IRMAE__SVG_X(i + 1.0), IRMAE__SVG_Y(v));
        }
        fputs("\"/>\n", f);
        if (maxn <= 64) {
            fprintf(f, "<g fill=\"%s\">\n", col);
            for (i = 0; i < sp->n; i++) {
                double v = sp->normalized[i];
                if (!(v >= 0.0)) v = 0.0;
                if (v > 1.0) v = 1.0;
                fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"2.5\"/>\n", IRMAE__SVG_X(i + 1.0), IRMAE__SVG_Y(v));
            }
            fputs("</g>\n", f);
        }
    }
    /* legend, top right inside the plot */
    for (s = 0; s < count; s++) {
        int c;
        if (names && names[s]) c = irmae__ana_text_chars(names[s]);
        else { sprintf(defname, "spectrum %d", s + 1); c = (int)strlen(defname); }
        if (c > maxchars) maxchars = c;
    }
    lw = 44.0 + 7.0 * maxchars;
    if (lw > pw - 20.0) lw = pw - 20.0;
    lx = right - lw - 10.0;
    ly = top + 10.0;
    fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#ffffff\" "
               "fill-opacity=\"0.85\" stroke=\"#999999\"/>\n", lx, ly, lw, 8.0 + 18.0 * count);
    for (s = 0; s < count; s++) {
        double yy = ly + 16.0 + 18.0 * s;
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" stroke-width=\"2.5\"/>\n",
                lx + 8.0, yy - 4.0, lx + 32.0, yy - 4.0, colors[s % 10]);
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\">", lx + 38.0, yy);
        if (names && names[s]) irmae__ana_xml_text(f, names[s]);
        else fprintf(f, "spectrum %d", s + 1);
        fputs("</text>\n", f);
    }
    fputs("</svg>\n", f);
#undef IRMAE__SVG_X
#undef IRMAE__SVG_Y
    return irmae__ana_close(f, "spectra_write_svg", path);
}

/* ---- Cholesky --------------------------------------------------------- */

/* In-place lower Cholesky factor of the symmetric a (n x n, full storage);
   the upper triangle is zeroed. A pivot <= tol = 64 n eps max(diag) counts
   as zero: with strict == 0 its column of L is set to zero (semi-definite
   matrices), with strict != 0 it is a failure. A pivot below -tol
   (indefinite) always fails. Returns 0, or 1 with the column in *bad. */
static int irmae__ana_chol(double *a, int n, int strict, int *bad)
{
    double maxd = 0.0, tol;
    int i, j, k;
    for (i = 0; i < n; i++)
        if (fabs(a[(size_t)i * n + i]) > maxd) maxd = fabs(a[(size_t)i * n + i]);
    tol = 64.0 * n * DBL_EPSILON * maxd;
    for (j = 0; j < n; j++) {
        double *aj = a + (size_t)j * n, s = aj[j];
        for (k = 0; k < j; k++) s -= aj[k] * aj[k];
        if (s <= tol) {
            if (strict || s < -tol || !(s == s)) { *bad = j; return 1; }
            for (i = j; i < n; i++) a[(size_t)i * n + j] = 0.0;
            continue;
        }
        aj[j] = sqrt(s);
        for (i = j + 1; i < n; i++) {
            double *ai = a + (size_t)i * n, t = ai[j];
            for (k = 0; k < j; k++) t -= ai[k] * aj[k];
            ai[j] = t / aj[j];
        }
    }
    for (i = 0; i < n; i++)
        for (j = i + 1; j < n; j++) a[(size_t)i * n + j] = 0.0;
    return 0;
}

/* out (n) = mean + L z with z ~ N(0, I) drawn into z (n) */
static void irmae__ana_draw(float *out, const double *mean, const double *l, double *z, int n, irmae_rng *rng)
{
    int i, j;
    for (j = 0; j < n; j++) z[j] = (double)irmae_rng_normal(rng);
    for (i = 0; i < n; i++) {
        const double *li = l + (size_t)i * n;
        double v = mean[i];
        for (j = 0; j <= i; j++) v += li[j] * z[j];
        out[i] = (float)v;
    }
}

static int irmae__ana_check_reg(const char *fn, double reg)
{
    if (!(reg >= 0.0) || reg > DBL_MAX) return irmae__fail(IRMAE_ERR_ARG, "%s: reg = %g (need finite >= 0)", fn, reg);
    return IRMAE_OK;
}

/* ---- Gaussian --------------------------------------------------------- */

IRMAEDEF void irmae_gauss_free(irmae_gauss *g)
{
    if (!g) return;
    irmae__free(g->mean);
    irmae__free(g->chol);
    memset(g, 0, sizeof *g);
}

IRMAEDEF int irmae_gauss_fit(irmae_gauss *g, const float *x, int count, int n, double reg)
{
    int rc, i, bad = 0;
    if (!g) return irmae__fail(IRMAE_ERR_ARG, "gauss_fit: g is NULL");
    memset(g, 0, sizeof *g);
    if (!x) return irmae__fail(IRMAE_ERR_ARG, "gauss_fit: x is NULL");
    if ((rc = irmae__ana_check_reg("gauss_fit", reg)) != IRMAE_OK) return rc;
    if ((rc = irmae__ana_dims("gauss_fit", count, 2, n)) != IRMAE_OK) return rc;
    g->mean = irmae__ana_dalloc((size_t)n, 1);
    g->chol = irmae__ana_dalloc((size_t)n, (size_t)n);
    if (!g->mean || !g->chol) {
        irmae_gauss_free(g);
        return irmae__fail(IRMAE_ERR_NOMEM, "gauss_fit: n = %d", n);
    }
    rc = irmae_covariance(g->chol, g->mean, x, count, n);
    if (rc) { irmae_gauss_free(g); return rc; }
    for (i = 0; i < n; i++) g->chol[(size_t)i * n + i] += reg;
    if (irmae__ana_chol(g->chol, n, 0, &bad)) {
        irmae_gauss_free(g);
        return irmae__fail(IRMAE_ERR_NUMERIC, "gauss_fit: covariance not positive semi-definite at column %d", bad);
    }
    g->n = n;
    return IRMAE_OK;
}

IRMAEDEF int irmae_gauss_sample(const irmae_gauss *g, irmae_rng *rng, float *out, int count)
{
    double *z;
    size_t t;
    int i;
    if (!g || !g->mean || !g->chol || g->n <= 0)
        return irmae__fail(IRMAE_ERR_ARG, "gauss_sample: g is NULL or not fitted");
    if (!rng || !out) return irmae__fail(IRMAE_ERR_ARG, "gauss_sample: %s is NULL", !rng ? "rng" : "out");
    if (count <= 0) return irmae__fail(IRMAE_ERR_ARG, "gauss_sample: count %d <= 0", count);
    if (!irmae__mul3(&t, (size_t)count, (size_t)g->n, sizeof(float)))
        return irmae__fail(IRMAE_ERR_OVERFLOW, "gauss_sample: %d x %d", count, g->n);
    z = irmae__ana_dalloc((size_t)g->n, 1);
    if (!z) return irmae__fail(IRMAE_ERR_NOMEM, "gauss_sample: n = %d", g->n);
    for (i = 0; i < count; i++)
        irmae__ana_draw(out + (size_t)i * g->n, g->mean, g->chol, z, g->n, rng);
    irmae__free(z);
    return IRMAE_OK;
}

/* ---- Gaussian mixture (EM) -------------------------------------------- */

IRMAEDEF void irmae_gmm_free(irmae_gmm *g)
{
    if (!g) return;
    irmae__free(g->weights);
    irmae__free(g->means);
    irmae__free(g->chols);
    memset(g, 0, sizeof *g);
}

/* squared distance between a float row and a double vector */
static double irmae__ana_dist2(const float *x, const double *c, int n)
{
    double s = 0.0;
    int j;
    for (j = 0; j < n; j++) { double d = (double)x[j] - c[j]; s += d * d; }
    return s;
}

/* work space of one EM run */
typedef struct irmae__gmm_work {
    double *resp;    /* count x k responsibilities */
    double *lse;     /* count: log p(x_i) */
    double *wcol;    /* count: one column of resp */
    double *scat;    /* n x n */
    double *dev;     /* n */
    double *gcov;    /* n x n: covariance of all the data (+ reg I) */
    double *gmean;   /* n */
    double *logdet;  /* k */
    int *assign;     /* count */
} irmae__gmm_work;

/* M-step from the responsibilities. init != 0 is the hard-assignment start:
   components with fewer than n + 1 members take the global covariance.
   Returns 0 or an error code (detail set). */
static int irmae__gmm_mstep(irmae_gmm *g, irmae__gmm_work *wk, const float *x, int count, double reg, int init)
{
    int k = g->k, n = g->n, c, i, j, bad = 0;
    double wsum = 0.0;
    for (c = 0; c < k; c++) {
        double nk = 0.0, *mu = g->means + (size_t)c * n, *l = g->chols + (size_t)c * n * n;
        int use_global;
        for (i = 0; i < count; i++) { wk->wcol[i] = wk->resp[(size_t)i * k + c]; nk += wk->wcol[i]; }
        use_global = init ? nk < (double)n + 1.0 : nk < 1e-8;
        if (nk > 0.0) { /* else keep the previous mean */
            for (j = 0; j < n; j++) mu[j] = 0.0;
            for (i = 0; i < count; i++) {
                const float *xi = x + (size_t)i * n;
                double wi = wk->wcol[i];
                if (wi == 0.0) continue;
                for (j = 0; j < n; j++) mu[j] += wi * (double)xi[j];
            }
            for (j = 0; j < n; j++) mu[j] /= nk;
        }
        g->weights[c] = nk / (double)count;
        wsum += g->weights[c];
        if (!use_global) {
            if (irmae__ana_scatter(l, wk->dev, x, wk->wcol, mu, count, n))
                return irmae__fail(IRMAE_ERR_NOMEM, "gmm_fit: scatter buffer for n = %d", n);
            for (i = 0; i < n; i++)
                for (j = 0; j < n; j++) {
                    double *lij = l + (size_t)i * n + j;
                    *lij = (*lij - wk->dev[i] * wk->dev[j] / nk) / nk;
                }
            for (i = 0; i < n; i++) l[(size_t)i * n + i] += reg;
            if (irmae__ana_chol(l, n, 1, &bad)) use_global = 1; /* collapsed: restart from global */
        }
        if (use_global) {
            memcpy(l, wk->gcov, (size_t)n * n * sizeof(double));
            if (irmae__ana_chol(l, n, 1, &bad))
                return irmae__fail(IRMAE_ERR_NUMERIC, "gmm_fit: covariance singular at column %d "
                                   "(codes are rank-deficient: use reg > 0)", bad);
        }
        wk->logdet[c] = 0.0;
        for (i = 0; i < n; i++) wk->logdet[c] += 2.0 * log(l[(size_t)i * n + i]);
    }
    if (!(wsum > 0.0)) return irmae__fail(IRMAE_ERR_NUMERIC, "gmm_fit: all component weights vanished");
    for (c = 0; c < k; c++) g->weights[c] /= wsum;
    return IRMAE_OK;
}

/* E-step: responsibilities and log p(x_i); returns the mean log-likelihood,
   or +HUGE_VAL when a thread could not get its scratch. Points go in groups
   of four (lanes), solving L y = x - mu for all four at once so that each
   row of L is loaded once per group; a short last group repeats its first
   point in the spare lanes. Every lane sums in the same order, so a point's
   result does not depend on its group or on the thread count. */
static double irmae__gmm_estep(const irmae_gmm *g, irmae__gmm_work *wk, const float *x, int count)
{
    const double log2pi = 1.8378770664093454836;
    int k = g->k, n = g->n, i, groups = (count + 3) / 4;
    double total = 0.0;
    IRMAE__OMP(parallel if((double)count * k * n * n >= 65536.0))
    {
        double *y = (double *)irmae__alloc((size_t)n * 4, sizeof(double)); /* y[a*4 + lane] */
        int gi;
        IRMAE__OMP(for schedule(static))
        for (gi = 0; gi < groups; gi++) {
            int p0 = gi * 4, lanes = count - p0 < 4 ? count - p0 : 4, c, a, b, q;
            const float *xp[4];
            if (!y) { for (q = 0; q < lanes; q++) wk->lse[p0 + q] = HUGE_VAL; continue; }
            for (q = 0; q < 4; q++) xp[q] = x + (size_t)(p0 + (q < lanes ? q : 0)) * n;
            for (c = 0; c < k; c++) {
                const double *l = g->chols + (size_t)c * n * n, *mu = g->means + (size_t)c * n;
                double q0 = 0.0, q1 = 0.0, q2 = 0.0, q3 = 0.0;
                for (a = 0; a < n; a++) { /* y = L^-1 (x - mu), four points */
                    const double *la = l + (size_t)a * n;
                    double t0 = (double)xp[0][a] - mu[a], t1 = (double)xp[1][a] - mu[a];
                    double t2 = (double)xp[2][a] - mu[a], t3 = (double)xp[3][a] - mu[a], inv = 1.0 / la[a];
                    for (b = 0; b < a; b++) {
                        const double lb = la[b], *yb = y + (size_t)b * 4;
                        t0 -= lb * yb[0]; t1 -= lb * yb[1]; t2 -= lb * yb[2]; t3 -= lb * yb[3];
                    }
                    t0 *= inv; t1 *= inv; t2 *= inv; t3 *= inv;
                    y[(size_t)a * 4] = t0; y[(size_t)a * 4 + 1] = t1;
                    y[(size_t)a * 4 + 2] = t2; y[(size_t)a * 4 + 3] = t3;
                    q0 += t0 * t0; q1 += t1 * t1; q2 += t2 * t2; q3 += t3 * t3;
                }
                {
                    double lw = g->weights[c] > 0.0 ? log(g->weights[c]) : -HUGE_VAL;
                    double base = lw - 0.5 * (n * log2pi + wk->logdet[c]), qq[4];
                    qq[0] = q0; qq[1] = q1; qq[2] = q2; qq[3] = q3;
                    for (q = 0; q < lanes; q++) /* log terms first, resp later */
                        wk->resp[(size_t)(p0 + q) * k + c] = g->weights[c] > 0.0 ? base - 0.5 * qq[q] : -HUGE_VAL;
                }
            }
            for (q = 0; q < lanes; q++) {
                double *lp = wk->resp + (size_t)(p0 + q) * k, mx = -HUGE_VAL, sum = 0.0, lse;
                for (c = 0; c < k; c++) if (lp[c] > mx) mx = lp[c];
                for (c = 0; c < k; c++) sum += exp(lp[c] - mx);
                lse = mx + log(sum);
                wk->lse[p0 + q] = lse;
                for (c = 0; c < k; c++) lp[c] = exp(lp[c] - lse);
            }
        }
        irmae__free(y);
    }
    for (i = 0; i < count; i++) {
        if (wk->lse[i] == HUGE_VAL) return HUGE_VAL;
        total += wk->lse[i];
    }
    return total / (double)count;
}

static void irmae__gmm_work_free(irmae__gmm_work *wk)
{
    irmae__free(wk->resp); irmae__free(wk->lse); irmae__free(wk->wcol);
    irmae__free(wk->scat); irmae__free(wk->dev); irmae__free(wk->gcov);
    irmae__free(wk->gmean); irmae__free(wk->logdet);
    irmae__free(wk->assign);
}

IRMAEDEF int irmae_gmm_fit(irmae_gmm *g, const float *x, int count, int n, int k, int max_iter,
                           double tol, double reg, irmae_rng *rng)
{
    irmae__gmm_work wk;
    size_t t;
    int rc, i, j, c, it;
    double ll, prev;
    if (!g) return irmae__fail(IRMAE_ERR_ARG, "gmm_fit: g is NULL");
    memset(g, 0, sizeof *g);
    if (!x || !rng) return irmae__fail(IRMAE_ERR_ARG, "gmm_fit: %s is NULL", !x ? "x" : "rng");
    if ((rc = irmae__ana_dims("gmm_fit", count, 2, n)) != IRMAE_OK) return rc;
    if (k < 1 || k > count) return irmae__fail(IRMAE_ERR_ARG, "gmm_fit: k = %d not in [1, count = %d]", k, count);
    if (max_iter < 1) return irmae__fail(IRMAE_ERR_ARG, "gmm_fit: max_iter = %d < 1", max_iter);
    if (!(tol >= 0.0) || tol > DBL_MAX) return irmae__fail(IRMAE_ERR_ARG, "gmm_fit: tol = %g", tol);
    if ((rc = irmae__ana_check_reg("gmm_fit", reg)) != IRMAE_OK) return rc;
    if (!irmae__mul3(&t, (size_t)k, (size_t)n * (size_t)n, sizeof(double)) ||
        !irmae__mul3(&t, (size_t)count, (size_t)k, sizeof(double)))
        return irmae__fail(IRMAE_ERR_OVERFLOW, "gmm_fit: k = %d, n = %d, count = %d", k, n, count);
    if ((rc = irmae__ana_finite_f("gmm_fit", "x", x, count, n)) != IRMAE_OK) return rc;

    memset(&wk, 0, sizeof wk);
    g->k = k; g->n = n;
    g->weights = irmae__ana_dalloc((size_t)k, 1);
    g->means = irmae__ana_dalloc((size_t)k, (size_t)n);
    g->chols = irmae__ana_dalloc((size_t)k, (size_t)n * n);
    wk.resp = irmae__ana_dalloc((size_t)count, (size_t)k);
    wk.lse = irmae__ana_dalloc((size_t)count, 1);
    wk.wcol = irmae__ana_dalloc((size_t)count, 1);
    wk.scat = irmae__ana_dalloc((size_t)n, (size_t)n);
    wk.dev = irmae__ana_dalloc((size_t)n, 1);
    wk.gcov = irmae__ana_dalloc((size_t)n, (size_t)n);
    wk.gmean = irmae__ana_dalloc((size_t)n, 1);
    wk.logdet = irmae__ana_dalloc((size_t)k, 1);
    wk.assign = (int *)irmae__alloc((size_t)count, sizeof(int));
    if (!g->weights || !g->means || !g->chols || !wk.resp || !wk.lse || !wk.wcol || !wk.scat ||
        !wk.dev || !wk.gcov || !wk.gmean || !wk.logdet || !wk.assign) {
        rc = irmae__fail(IRMAE_ERR_NOMEM, "gmm_fit: k = %d, n = %d, count = %d", k, n, count);
        goto done;
    }
    if ((rc = irmae__ana_cov(wk.gcov, wk.gmean, x, count, n)) != IRMAE_OK) {
        rc = irmae__fail(rc, "gmm_fit: global covariance");
        goto done;
    }
    for (i = 0; i < n; i++) wk.gcov[(size_t)i * n + i] += reg;

    /* k-means++ seeding: first centre uniform, then proportional to D^2 */
    {
        double *dist = wk.lse; /* reused as D^2 */
        int first = irmae_rng_int(rng, 0, count - 1);
        for (j = 0; j < n; j++) g->means[j] = (double)x[(size_t)first * n + j];
        for (i = 0; i < count; i++) dist[i] = irmae__ana_dist2(x + (size_t)i * n, g->means, n);
        for (c = 1; c < k; c++) {
            double total = 0.0, u, cum = 0.0;
            int pick = count - 1;
            double *mu = g->means + (size_t)c * n;
            for (i = 0; i < count; i++) total += dist[i];
            if (total > 0.0) {
                u = irmae__ana_u01(rng) * total;
                for (i = 0; i < count; i++) {
                    cum += dist[i];
                    if (cum > u) { pick = i; break; }
                }
                while (dist[pick] == 0.0 && pick > 0) pick--; /* rounding at the end */
            } else pick = irmae_rng_int(rng, 0, count - 1);
            for (j = 0; j < n; j++) mu[j] = (double)x[(size_t)pick * n + j];
            for (i = 0; i < count; i++) {
                double d2 = irmae__ana_dist2(x + (size_t)i * n, mu, n);
                if (d2 < dist[i]) dist[i] = d2;
            }
        }
    }
    /* a few Lloyd iterations */
    for (it = 0; it < 20; it++) {
        int changed = 0;
        for (i = 0; i < count; i++) {
            const float *xi = x + (size_t)i * n;
            int best = 0;
            double bd = irmae__ana_dist2(xi, g->means, n);
            for (c = 1; c < k; c++) {
                double d2 = irmae__ana_dist2(xi, g->means + (size_t)c * n, n);
                if (d2 < bd) { bd = d2; best = c; }
            }
            if (it == 0 || wk.assign[i] != best) changed = 1;
            wk.assign[i] = best;
        }
        if (!changed) break;
        for (c = 0; c < k; c++) {
            double *mu = g->means + (size_t)c * n, cnt = 0.0;
            for (j = 0; j < n; j++) wk.dev[j] = 0.0;
            for (i = 0; i < count; i++)
                if (wk.assign[i] == c) {
                    const float *xi = x + (size_t)i * n;
                    for (j = 0; j < n; j++) wk.dev[j] += (double)xi[j];
                    cnt += 1.0;
                }
            if (cnt > 0.0) for (j = 0; j < n; j++) mu[j] = wk.dev[j] / cnt;
        }
    }
    /* hard-assignment statistics, then EM */
    for (i = 0; i < count; i++)
        for (c = 0; c < k; c++) wk.resp[(size_t)i * k + c] = wk.assign[i] == c ? 1.0 : 0.0;
    if ((rc = irmae__gmm_mstep(g, &wk, x, count, reg, 1)) != IRMAE_OK) goto done;
    ll = irmae__gmm_estep(g, &wk, x, count);
    if (ll == HUGE_VAL) { rc = irmae__fail(IRMAE_ERR_NOMEM, "gmm_fit: E-step scratch"); goto done; }
    g->iters = 0;
    for (it = 0; it < max_iter; it++) {
        if ((rc = irmae__gmm_mstep(g, &wk, x, count, reg, 0)) != IRMAE_OK) goto done;
        prev = ll;
        ll = irmae__gmm_estep(g, &wk, x, count);
        g->iters++;
        if (ll == HUGE_VAL) { rc = irmae__fail(IRMAE_ERR_NOMEM, "gmm_fit: E-step scratch"); goto done; }
        if (!(fabs(ll) <= DBL_MAX)) {
            rc = irmae__fail(IRMAE_ERR_NUMERIC, "gmm_fit: log-likelihood not finite at iteration %d", it + 1);
            goto done;
        }
        if (fabs(ll - prev) <= tol * fabs(prev)) break;
    }
    g->loglik = ll;
    rc = IRMAE_OK;
done:
    irmae__gmm_work_free(&wk);
    if (rc) irmae_gmm_free(g);
    return rc;
}

IRMAEDEF int irmae_gmm_sample(const irmae_gmm *g, irmae_rng *rng, float *out, int count)
{
    double *z;
    size_t t;
    int i, n;
    if (!g || !g->weights || !g->means || !g->chols || g->k <= 0 || g->n <= 0)
        return irmae__fail(IRMAE_ERR_ARG, "gmm_sample: g is NULL or not fitted");
    if (!rng || !out) return irmae__fail(IRMAE_ERR_ARG, "gmm_sample: %s is NULL", !rng ? "rng" : "out");
    if (count <= 0) return irmae__fail(IRMAE_ERR_ARG, "gmm_sample: count %d <= 0", count);
    n = g->n;
    if (!irmae__mul3(&t, (size_t)count, (size_t)n, sizeof(float)))
        return irmae__fail(IRMAE_ERR_OVERFLOW, "gmm_sample: %d x %d", count, n);
    z = irmae__ana_dalloc((size_t)n, 1);
    if (!z) return irmae__fail(IRMAE_ERR_NOMEM, "gmm_sample: n = %d", n);
    for (i = 0; i < count; i++) {
        double u = irmae__ana_u01(rng), cum = 0.0;
        int c, pick = -1;
        for (c = 0; c < g->k; c++) {
            cum += g->weights[c];
            if (u < cum) { pick = c; break; }
        }
        if (pick < 0) /* rounding: last component with weight */
            for (pick = g->k - 1; pick > 0 && !(g->weights[pick] > 0.0); pick--) {}
        irmae__ana_draw(out + (size_t)i * n, g->means + (size_t)pick * n,
                        g->chols + (size_t)pick * n * n, z, n, rng);
    }
    irmae__free(z);
    return IRMAE_OK;
}

/* ---- PCA -------------------------------------------------------------- */

IRMAEDEF void irmae_pca_free(irmae_pca *p)
{
    if (!p) return;
    irmae__free(p->mean);
    irmae__free(p->axes);
    irmae__free(p->stddev);
    memset(p, 0, sizeof *p);
}

IRMAEDEF int irmae_pca_fit(irmae_pca *p, const float *x, int count, int n)
{
    double *cov;
    int rc, i, j;
    if (!p) return irmae__fail(IRMAE_ERR_ARG, "pca_fit: p is NULL");
    memset(p, 0, sizeof *p);
    if (!x) return irmae__fail(IRMAE_ERR_ARG, "pca_fit: x is NULL");
    if ((rc = irmae__ana_dims("pca_fit", count, 2, n)) != IRMAE_OK) return rc;
    cov = irmae__ana_dalloc((size_t)n, (size_t)n);
    p->mean = irmae__ana_dalloc((size_t)n, 1);
    p->axes = irmae__ana_dalloc((size_t)n, (size_t)n);
    p->stddev = irmae__ana_dalloc((size_t)n, 1);
    if (!cov || !p->mean || !p->axes || !p->stddev) {
        irmae__free(cov);
        irmae_pca_free(p);
        return irmae__fail(IRMAE_ERR_NOMEM, "pca_fit: n = %d", n);
    }
    rc = irmae_covariance(cov, p->mean, x, count, n);
    if (rc == IRMAE_OK) rc = irmae_eigh(cov, n, p->stddev, p->axes);
    irmae__free(cov);
    if (rc) { irmae_pca_free(p); return rc; }
    for (i = 0; i < n; i++) {
        double *ax = p->axes + (size_t)i * n, big = 0.0;
        int at = 0;
        p->stddev[i] = p->stddev[i] > 0.0 ? sqrt(p->stddev[i]) : 0.0;
        for (j = 0; j < n; j++) if (fabs(ax[j]) > big) { big = fabs(ax[j]); at = j; }
        if (ax[at] < 0.0) for (j = 0; j < n; j++) ax[j] = -ax[j];
    }
    p->n = n;
    return IRMAE_OK;
}

IRMAEDEF int irmae_pca_grid(const irmae_pca *p, int rows, int cols, double span, float *out)
{
    size_t t;
    int r, c, j, n;
    if (!p || !p->mean || !p->axes || !p->stddev || p->n <= 0)
        return irmae__fail(IRMAE_ERR_ARG, "pca_grid: p is NULL or not fitted");
    if (!out) return irmae__fail(IRMAE_ERR_ARG, "pca_grid: out is NULL");
    if (rows <= 0 || cols <= 0) return irmae__fail(IRMAE_ERR_ARG, "pca_grid: %d x %d grid", rows, cols);
    if (!(span >= 0.0) || span > DBL_MAX) return irmae__fail(IRMAE_ERR_ARG, "pca_grid: span = %g", span);
    n = p->n;
    if (!irmae__mul3(&t, (size_t)rows, (size_t)cols, (size_t)n) || !irmae__mul(&t, t, sizeof(float)))
        return irmae__fail(IRMAE_ERR_OVERFLOW, "pca_grid: %d x %d x %d", rows, cols, n);
    for (r = 0; r < rows; r++) {
        double a = rows > 1 ? span * (double)(2 * r - (rows - 1)) / (double)(rows - 1) : 0.0;
        for (c = 0; c < cols; c++) {
            double b = cols > 1 ? span * (double)(2 * c - (cols - 1)) / (double)(cols - 1) : 0.0;
            float *o = out + ((size_t)r * cols + c) * n;
            double sa = a * p->stddev[0], sb = n > 1 ? b * p->stddev[1] : 0.0;
            for (j = 0; j < n; j++) {
                double v = p->mean[j] + sa * p->axes[j];
                if (n > 1) v += sb * p->axes[(size_t)n + j];
                o[j] = (float)v;
            }
        }
    }
    return IRMAE_OK;
}

/* ---- Frechet distance ------------------------------------------------- */

/* c = a b, all n x n */
static void irmae__ana_dgemm(double *c, const double *a, const double *b, int n)
{
    int i;
    IRMAE__OMP(parallel for if(n >= 128) schedule(static))
    for (i = 0; i < n; i++) {
        double *ci = c + (size_t)i * n;
        int q, j;
        for (j = 0; j < n; j++) ci[j] = 0.0;
        for (q = 0; q < n; q++) {
            double aiq = a[(size_t)i * n + q];
            const double *bq = b + (size_t)q * n;
            for (j = 0; j < n; j++) ci[j] += aiq * bq[j];
        }
    }
}

IRMAEDEF int irmae_frechet_distance(const float *a, int na, const float *b, int nb, int d, double *out)
{
    double *ca = NULL, *cb = NULL, *ma = NULL, *mb = NULL, *vals = NULL, *vecs = NULL, *sq = NULL, *tmp = NULL;
    double diff2 = 0.0, tra = 0.0, trb = 0.0, trs = 0.0, fd;
    int rc, i, j;
    if (!a || !b || !out)
        return irmae__fail(IRMAE_ERR_ARG, "frechet_distance: %s is NULL", !a ? "a" : !b ? "b" : "out");
    if ((rc = irmae__ana_dims("frechet_distance (a)", na, 2, d)) != IRMAE_OK) return rc;
    if ((rc = irmae__ana_dims("frechet_distance (b)", nb, 2, d)) != IRMAE_OK) return rc;
    ca = irmae__ana_dalloc((size_t)d, (size_t)d);
    cb = irmae__ana_dalloc((size_t)d, (size_t)d);
    vecs = irmae__ana_dalloc((size_t)d, (size_t)d);
    sq = irmae__ana_dalloc((size_t)d, (size_t)d);
    tmp = irmae__ana_dalloc((size_t)d, (size_t)d);
    ma = irmae__ana_dalloc((size_t)d, 1);
    mb = irmae__ana_dalloc((size_t)d, 1);
    vals = irmae__ana_dalloc((size_t)d, 1);
    if (!ca || !cb || !vecs || !sq || !tmp || !ma || !mb || !vals) {
        rc = irmae__fail(IRMAE_ERR_NOMEM, "frechet_distance: d = %d", d);
        goto done;
    }
    if ((rc = irmae_covariance(ca, ma, a, na, d)) != IRMAE_OK) goto done;
    if ((rc = irmae_covariance(cb, mb, b, nb, d)) != IRMAE_OK) goto done;
    for (i = 0; i < d; i++) {
        double df = ma[i] - mb[i];
        diff2 += df * df;
        tra += ca[(size_t)i * d + i];
        trb += cb[(size_t)i * d + i];
    }
    /* sq = Ca^1/2 = V^T diag(sqrt(max(lambda, 0))) V (rows of V = vectors) */
    if ((rc = irmae_eigh(ca, d, vals, vecs)) != IRMAE_OK) goto done;
    for (i = 0; i < d; i++) {
        double s = vals[i] > 0.0 ? sqrt(sqrt(vals[i])) : 0.0; /* lambda^1/4 per side */
        double *vi = vecs + (size_t)i * d;
        for (j = 0; j < d; j++) vi[j] *= s;
    }
    memset(sq, 0, (size_t)d * d * sizeof(double));
    irmae__ana_syrk_upper(sq, vecs, d, d);
    irmae__ana_mirror(sq, d);
    /* M = sq Cb sq, symmetrised */
    irmae__ana_dgemm(tmp, sq, cb, d);
    irmae__ana_dgemm(vecs, tmp, sq, d);
    for (i = 0; i < d; i++)
        for (j = 0; j <= i; j++) {
            double m = 0.5 * (vecs[(size_t)i * d + j] + vecs[(size_t)j * d + i]);
            vecs[(size_t)i * d + j] = m;
            vecs[(size_t)j * d + i] = m;
        }
    if ((rc = irmae_eigh(vecs, d, vals, NULL)) != IRMAE_OK) goto done;
    for (i = 0; i < d; i++) trs += vals[i] > 0.0 ? sqrt(vals[i]) : 0.0;
    fd = diff2 + tra + trb - 2.0 * trs;
    *out = fd > 0.0 ? fd : 0.0;
    rc = IRMAE_OK;
done:
    irmae__free(ca); irmae__free(cb); irmae__free(vecs); irmae__free(sq);
    irmae__free(tmp); irmae__free(ma); irmae__free(mb); irmae__free(vals);
    return rc;
}
