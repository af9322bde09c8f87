/* ======================================================================== */
/* Model analysis                                                           */
/* ======================================================================== */

/* Spectrum of the codes z (after the l maps; the VAE's mean) of `count`
   images x (count x C x H x W): covariance, eigenvalues, ranks. Free s with
   irmae_spectrum_free(). */
IRMAEDEF int irmae_model_spectrum(irmae_model *m, const float *x, int count, irmae_spectrum *s);
/* Decodes (1 - t) z_a + t z_b for `steps` values of t evenly spaced in
   [0, 1] (steps >= 2), z_a/z_b the codes of images xa/xb; out gets steps images. */
IRMAEDEF int irmae_model_interpolate(irmae_model *m, const float *xa, const float *xb, int steps, float *out);
