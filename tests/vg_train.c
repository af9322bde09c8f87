/* A short training run for valgrind: a small conv IRMAE, 20 Adam steps,
   spectrum, checkpoint save and load into a fresh model, PNG grid; then
   everything freed. Run under valgrind by `make test-valgrind` (no leaks, no
   invalid accesses). */
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"
#include <stdio.h>

int main(void)
{
    irmae_rng r = irmae_rng_seed(3);
    irmae_config c = irmae_preset(IRMAE_PRESET_SHAPES);
    irmae_model m, m2;
    irmae_dataset ds;
    irmae_spectrum s;
    irmae_train_state ts;
    float loss = 0, first = 0, *y;
    int step, ok = 1;
    c.in_c = 3; c.in_h = 8; c.in_w = 8; c.n = 6; c.l = 2; c.max_batch = 8; c.lr = 1e-3f;
    c.n_enc = 0; c.n_dec = 0;
    c.enc[c.n_enc++] = irmae_layer_conv(8, 4, 2, 1);
    c.enc[c.n_enc++] = irmae_layer_act(IRMAE_LAYER_RELU);
    c.enc[c.n_enc++] = irmae_layer_flatten();
    c.enc[c.n_enc++] = irmae_layer_linear(IRMAE_CODE, 1);
    c.dec[c.n_dec++] = irmae_layer_linear(8 * 4 * 4, 1);
    c.dec[c.n_dec++] = irmae_layer_act(IRMAE_LAYER_RELU);
    c.dec[c.n_dec++] = irmae_layer_reshape(8, 4, 4);
    c.dec[c.n_dec++] = irmae_layer_convt(3, 4, 2, 1);
    if (irmae_dataset_alloc(&ds, 32, 3, 8, 8, 0)) return 1;
    for (step = 0; step < 32 * 3 * 64; step++) ds.x[step] = irmae_rng_uniform(&r);
    if (irmae_model_init(&m, &c, &r)) { printf("%s\n", irmae_error_detail()); return 1; }
    for (step = 0; step < 20; step++) {
        ok &= irmae_model_train_step(&m, &loss, irmae_dataset_image(&ds, 8 * (step % 4)), 8) == 0;
        if (step == 0) first = loss;
    }
    ok &= loss < first;
    ok &= irmae_model_spectrum(&m, &s, ds.x, ds.n) == 0;
    irmae_spectrum_free(&s);
    memset(&ts, 0, sizeof ts);
    ok &= irmae_checkpoint_save("build/vg_train.ckpt", &m, &ts) == 0;
    memset(&m2, 0, sizeof m2);
    ok &= irmae_checkpoint_load(&m2, &ts, "build/vg_train.ckpt") == 0;
    ok &= memcmp(m.params, m2.params, m.n_params * sizeof(float)) == 0;
    y = (float *)malloc((size_t)8 * 3 * 64 * sizeof(float));
    ok &= irmae_model_encode(&m2, y, ds.x, 8) == 0 && irmae_model_decode(&m2, y, y, 8) == 0;
    ok &= irmae_png_write_grid("build/vg_train.png", y, 8, 3, 8, 8, 4, 1, 0.0f, 1.0f) == 0;
    free(y);
    irmae_model_free(&m);
    irmae_model_free(&m2);
    irmae_dataset_free(&ds);
    irmae_sgemm_release();
    printf("test_vg_train: %d passed, %d failed\n", ok, !ok);
    return !ok;
}
