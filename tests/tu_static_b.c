/* Second file of the IRMAE_STATIC check (see tu_static_a.c). */
#define IRMAE_STATIC
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"
#include <stdio.h>

unsigned long tu_static_a_crc(const char *s, size_t n);

int main(void)
{
    irmae_config c = irmae_preset(IRMAE_PRESET_MNIST);
    irmae_rng r = irmae_rng_seed(3);
    irmae_model m;
    int passed = 0, failed = 0;
#define T(cond) do { if (cond) passed++; else { failed++; printf("FAIL: %s\n", #cond); } } while (0)
    T(tu_static_a_crc("123456789", 9) == 0xCBF43926ul);
    T(irmae_crc32(0, "123456789", 9) == 0xCBF43926u);
    c.l = 8;
    T(irmae_config_param_count(&c) == 2172129);
    c.max_batch = 2;
    T(irmae_model_init(&m, &c, &r) == 0 && m.n_params == 2172129);
    irmae_model_free(&m);
    irmae_sgemm_release();
    printf("test_static: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
