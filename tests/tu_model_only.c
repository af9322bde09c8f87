/* tu_model_only.c - a program that uses only the model (data sets, layers,
   optimiser, training, encoding), built by `make test-options` with each of
   IRMAE_NO_WRITERS, IRMAE_NO_LOADERS, IRMAE_NO_CODECS, IRMAE_NO_ANALYSIS,
   IRMAE_NO_CHECKPOINTS and with all of them: it must compile warning-free
   and train. (The Makefile also checks with nm that the parts left out are
   not in the object file.) */
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"
#include <math.h>
#include <stdio.h>

int main(void)
{
    irmae_rng rng = irmae_rng_seed(3);
    irmae_dataset ds;
    irmae_config cfg = irmae_preset(IRMAE_PRESET_SHAPES);
    irmae_model m;
    float first = 0.0f, loss = 0.0f, z[16 * 32];
    int s, passed = 0, failed = 0;
    cfg.l = 2; cfg.max_batch = 16; cfg.lr = 1e-3f;
    if (irmae_shapes_make(&ds, NULL, 16, &rng) || irmae_model_init(&m, &cfg, &rng)) {
        printf("setup: %s\ntest_model_only: 0 passed, 1 failed\n", irmae_error_detail());
        return 1;
    }
    for (s = 0; s < 20; s++) {
        if (irmae_model_train_step(&m, &loss, ds.x, 16)) { failed++; break; }
        if (s == 0) first = loss;
    }
    if (isfinite(loss) && loss < first) passed++;
    else { failed++; printf("FAIL training: loss %g after 20 steps, %g at the first\n", loss, first); }
    if (irmae_model_encode(&m, z, ds.x, 16) == 0 && isfinite(z[0])) passed++;
    else { failed++; printf("FAIL encode: %s\n", irmae_error_detail()); }
    printf("model only: loss %.4f -> %.4f in 20 steps\n", first, loss);
    irmae_model_free(&m);
    irmae_dataset_free(&ds);
    irmae_sgemm_release();
    printf("test_model_only: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
