/* A second translation unit that only includes the declarations: linking it
   with tu_impl.c must give no duplicate or missing symbols, and every block
   the library takes from the custom allocator must come back to it. */
#include "../irmae.h"
#include <stdio.h>

extern size_t tu_allocs, tu_frees;

int main(void)
{
    irmae_rng r = irmae_rng_seed(7);
    irmae_config c = irmae_preset(IRMAE_PRESET_SHAPES);
    irmae_model m;
    irmae_dataset ds;
    float loss = 0;
    int passed = 0, failed = 0;
#define T(cond) do { if (cond) passed++; else { failed++; printf("FAIL: %s\n", #cond); } } while (0)
    T(irmae_config_param_count(&c) == 1445859);
    T(irmae_crc32(0, "123456789", 9) == 0xCBF43926u);
    T(irmae_adler32(1, "Wikipedia", 9) == 0x11E60398u);
    c.l = 2; c.max_batch = 8;
    T(irmae_shapes_make(&ds, NULL, 8, &r) == 0);
    T(irmae_model_init(&m, &c, &r) == 0);
    T(irmae_model_train_step(&m, &loss, ds.x, 8) == 0 && loss > 0);
    irmae_model_free(&m);
    irmae_dataset_free(&ds);
    irmae_sgemm_release();
    T(tu_allocs > 0 && tu_allocs == tu_frees);
    printf("custom allocator: %lu blocks allocated, %lu freed\n", (unsigned long)tu_allocs, (unsigned long)tu_frees);
    printf("test_header: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
