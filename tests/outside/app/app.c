/* A tiny program outside the repository that uses irmae.h the way a user
   would: the implementation in this file, a short training run, a check. */
#define IRMAE_IMPLEMENTATION
#include <irmae.h>
#include <stdio.h>

int main(void)
{
    irmae_rng rng = irmae_rng_seed(1);
    irmae_dataset train;
    irmae_config cfg = irmae_preset(IRMAE_PRESET_SHAPES);
    irmae_model m;
    float first = 0, last = 0;
    int i, ok;
    /* 12 Adam steps on one batch of 8 images: the loss must go down */
    cfg.l = 2; cfg.max_batch = 8; cfg.lr = 1e-3f;
    if (irmae_shapes_make(&train, NULL, 32, &rng) || irmae_model_init(&m, &cfg, &rng)) {
        printf("init failed: %s\n", irmae_error_detail());
        return 1;
    }
    for (i = 0; i < 12; i++) {
        float loss = 0;
        if (irmae_model_train_step(&m, &loss, irmae_dataset_image(&train, 0), 8)) return 1;
        if (i == 0) first = loss;
        last = loss;
    }
    ok = m.n_params == 1445859 + 2 * 32 * 32 && last < first; /* shapes preset, l = 2 */
    printf("outside app: %lu parameters, loss %.4f -> %.4f, SIMD %s: %s\n", (unsigned long)m.n_params,
           (double)first, (double)last, irmae_simd_name(irmae_simd_level()), ok ? "ok" : "FAIL");
    irmae_model_free(&m);
    irmae_dataset_free(&train);
    return ok ? 0 : 1;
}
