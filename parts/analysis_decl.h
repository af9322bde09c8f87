/* ======================================================================== */
/* Analysis: covariance, eigen-solver, spectrum, Gaussian / GMM, PCA,       */
/* Frechet distance                                                         */
/* ======================================================================== */

/* All numerics here run in double. Inputs are row vectors: `x` is a
   count x n row-major float array (one code per row). Every function
   checks its arguments (NULL, sizes <= 0, count < 2 where a covariance is
   needed, size overflow) and its input values (NaN/Inf give
   IRMAE_ERR_NUMERIC with the offending row and column in the detail). */

/* Unbiased covariance (divides by count - 1; count >= 2) and mean of the
   count rows of x (count x n floats). cov: n x n doubles (caller's buffer,
   written in full, symmetric); mean: n doubles or NULL. Two passes (mean,
   then centred products with the rounding correction of the second pass).
   Errors: ARG, OVERFLOW, NOMEM, NUMERIC. */
IRMAEDEF int irmae_covariance(double *cov, double *mean, const float *x, int count, int n);

/* Symmetric eigen-decomposition by Householder tridiagonalisation and
   implicit QR with Wilkinson shifts. a: n x n (read only; (a + a^T) / 2 is
   used, so only a symmetric a makes sense). eigenvalues: n doubles out, in
   descending order. vectors: n x n doubles or NULL; row i is the unit
   eigenvector of eigenvalues[i]. The matrix is scaled by a power of two
   internally, so values from 1e-300 to 1e300 are fine. Accuracy: absolute
   errors about n * DBL_EPSILON * max|a|. Errors: ARG, OVERFLOW, NOMEM,
   NUMERIC (NaN/Inf in a), CONVERGENCE (not seen in practice). */
IRMAEDEF int irmae_eigh(const double *a, int n, double *eigenvalues, double *vectors);

/* Spectrum of the code covariance (the paper's Fig. 2 and its numbers). */
typedef struct irmae_spectrum {
    int n;
    double *values;      /* n eigenvalues of the covariance, descending (owned) */
    double *normalized;  /* max(values, 0) / values[0] (owned); zeros if values[0] <= 0 */
    int rank_1pct;       /* count normalized >= 0.01 */
    int rank_01pct;      /* count normalized >= 0.001 */
    double entropy_rank; /* exp(H(p)), p_i = max(s_i, 0) / sum; 0 if all s_i <= 0 */
} irmae_spectrum;

/* Spectrum of the covariance of codes (count x n floats, count >= 2).
   On success s owns its arrays (free with irmae_spectrum_free); on failure s
   is zeroed. Errors: as irmae_covariance and irmae_eigh. */
IRMAEDEF int irmae_spectrum_compute(irmae_spectrum *s, const float *codes, int count, int n);
/* Frees the arrays and zeroes s (NULL is fine). */
IRMAEDEF void irmae_spectrum_free(irmae_spectrum *s);
/* Count of normalized values >= threshold (e.g. 0.01); IRMAE_ERR_ARG if s is
   NULL/empty or threshold is NaN. */
IRMAEDEF int irmae_spectrum_rank(const irmae_spectrum *s, double threshold);

/* CSV: header "index,<name1>,<name2>,..." then one row per index 1..max n
   with the normalized values of each spectrum (%.17g; an empty cell where a
   spectrum is shorter). names may be NULL, and so may any entry ("spectrum
   <i>" is used); names with ',', '"' or line breaks are quoted (RFC 4180).
   Errors: ARG, IO. */
IRMAEDEF int irmae_spectra_write_csv(const char *path, const irmae_spectrum *const *spectra,
                                     const char *const *names, int count);
/* SVG line plot (the paper's Fig. 2): x = index 1..n, y = normalized singular
   value on a linear axis 0..1, one coloured polyline per spectrum (markers
   when n <= 64), axes with ticks and labels, a legend with the names, a
   title (may be NULL). Standalone UTF-8 XML with no external resources;
   names and title are escaped (invalid UTF-8 and control bytes become '?').
   Errors: ARG, IO. */
IRMAEDEF int irmae_spectra_write_svg(const char *path, const irmae_spectrum *const *spectra,
                                     const char *const *names, int count, const char *title);

/* One full-covariance Gaussian. chol is the lower Cholesky factor L of
   cov + reg * I (n x n row-major, upper part zero), so samples are mean + L z.
   A positive semi-definite but singular matrix (e.g. reg = 0 on rank-
   deficient IRMAE codes) is accepted: its L has zero columns where the pivot
   vanishes, and L L^T still equals the matrix. */
typedef struct irmae_gauss { int n; double *mean; double *chol; } irmae_gauss;
/* Fits to x (count x n floats, count >= 2), reg >= 0. g owns its arrays on
   success and is zeroed on failure. Errors: ARG, OVERFLOW, NOMEM, NUMERIC
   (non-finite data, or a clearly indefinite matrix). */
IRMAEDEF int irmae_gauss_fit(irmae_gauss *g, const float *x, int count, int n, double reg);
/* Writes count samples (count x n floats) to out. Errors: ARG, OVERFLOW. */
IRMAEDEF int irmae_gauss_sample(const irmae_gauss *g, irmae_rng *rng, float *out, int count);
IRMAEDEF void irmae_gauss_free(irmae_gauss *g);

/* Gaussian mixture with full covariances, fitted by EM. weights: k; means:
   k x n; chols: k x n x n lower Cholesky factors of the component
   covariances (+ reg * I). loglik: mean log-likelihood per point of the
   returned parameters; iters: EM iterations (M-steps) done. */
typedef struct irmae_gmm { int k, n; double *weights; double *means; double *chols; double loglik; int iters; } irmae_gmm;
/* x: count x n floats, 1 <= k <= count, count >= 2, max_iter >= 1, tol >= 0,
   reg >= 0 (use reg > 0 on rank-deficient codes: a singular component
   covariance is an IRMAE_ERR_NUMERIC). Init: k-means++ seeding from rng,
   a few Lloyd iterations, hard-assignment statistics. Stops after max_iter
   iterations or when |L_t - L_{t-1}| <= tol * |L_{t-1}| (L = mean
   log-likelihood). Deterministic for a given rng state, whatever the thread
   count. g owns its arrays on success, zeroed on failure. Errors: ARG,
   OVERFLOW, NOMEM, NUMERIC. */
IRMAEDEF int irmae_gmm_fit(irmae_gmm *g, const float *x, int count, int n, int k, int max_iter,
                           double tol, double reg, irmae_rng *rng);
/* count samples (count x n floats): component by weight, then mean + L z. */
IRMAEDEF int irmae_gmm_sample(const irmae_gmm *g, irmae_rng *rng, float *out, int count);
IRMAEDEF void irmae_gmm_free(irmae_gmm *g);

/* PCA of x (count x n floats, count >= 2): mean (n), axes (n x n, row i is
   the i-th principal axis, unit length, descending variance), stddev (n,
   sqrt of the covariance eigenvalues, negatives from rounding read as 0).
   The sign of each axis is fixed so that its largest-magnitude entry is
   positive. Owns its arrays; zeroed on failure. */
typedef struct irmae_pca { int n; double *mean; double *axes; double *stddev; } irmae_pca;
IRMAEDEF int irmae_pca_fit(irmae_pca *p, const float *x, int count, int n);
/* out (rows*cols x n floats): code (r, c) at row r * cols + c is
   mean + a * stddev[0] * axes[0] + b * stddev[1] * axes[1], a = -span ..
   +span down the rows and b = -span .. +span across the columns (a single
   row or column sits at 0; the middle row/column of an odd count is exactly
   the mean). span = 2 for the paper. With n == 1 the second axis is absent.
   Errors: ARG (rows/cols <= 0, span < 0 or not finite), OVERFLOW. */
IRMAEDEF int irmae_pca_grid(const irmae_pca *p, int rows, int cols, double span, float *out);
IRMAEDEF void irmae_pca_free(irmae_pca *p);

/* Frechet distance between Gaussians fitted to a (na x d floats) and b
   (nb x d floats), na, nb >= 2:
   |mu_a - mu_b|^2 + tr(Ca + Cb - 2 (Ca^1/2 Cb Ca^1/2)^1/2), with the square
   roots taken through symmetric eigen-decompositions (negative eigenvalues
   from rounding read as 0; a negative total from rounding is returned as 0).
   This is the formula of FID; the features are whatever the caller passes.
   Errors: ARG, OVERFLOW, NOMEM, NUMERIC. */
IRMAEDEF int irmae_frechet_distance(const float *a, int na, const float *b, int nb, int d, double *out);
