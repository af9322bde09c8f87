/* ---------------------------------------------------------------------- */
/* Model analysis                                                         */
/* ---------------------------------------------------------------------- */

IRMAEDEF int irmae_model_spectrum(irmae_model *m, const float *x, int count, irmae_spectrum *s)
{
    float *z;
    int rc;
    if (!m || !m->params || !x || !s) return irmae__fail(IRMAE_ERR_ARG, "model_spectrum: NULL pointer");
    if (count < 2) return irmae__fail(IRMAE_ERR_ARG, "model_spectrum: %d images (need 2 or more)", count);
    z = (float *)irmae__alloc((size_t)count, (size_t)m->cfg.n * sizeof(float));
    if (!z) return irmae__fail(IRMAE_ERR_NOMEM, "model_spectrum: codes of %d images", count);
    rc = irmae_model_encode(m, x, count, z);
    if (!rc) rc = irmae_spectrum_compute(s, z, count, m->cfg.n);
    irmae__free(z);
    return rc;
}

IRMAEDEF int irmae_model_interpolate(irmae_model *m, const float *xa, const float *xb, int steps, float *out)
{
    float *z;
    int rc, i, j, n;
    if (!m || !m->params || !xa || !xb || !out) return irmae__fail(IRMAE_ERR_ARG, "model_interpolate: NULL pointer");
    if (steps < 2) return irmae__fail(IRMAE_ERR_ARG, "model_interpolate: %d steps (need 2 or more)", steps);
    n = m->cfg.n;
    z = (float *)irmae__alloc((size_t)steps + 2, (size_t)n * sizeof(float));
    if (!z) return irmae__fail(IRMAE_ERR_NOMEM, "model_interpolate: %d steps", steps);
    rc = irmae_model_encode(m, xa, 1, z + (size_t)steps * n);
    if (!rc) rc = irmae_model_encode(m, xb, 1, z + (size_t)(steps + 1) * n);
    if (!rc) {
        const float *za = z + (size_t)steps * n, *zb = za + n;
        for (i = 0; i < steps; i++) {
            float t = (float)i / (float)(steps - 1);
            for (j = 0; j < n; j++) z[(size_t)i * n + j] = (1.0f - t) * za[j] + t * zb[j];
        }
        rc = irmae_model_decode(m, z, steps, out);
    }
    irmae__free(z);
    return rc;
}
