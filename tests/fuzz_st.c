/* libFuzzer target: safetensors import (irmae_import_safetensors_mem) into
   an initialised micro model (1 x 4 x 4, linear, n = 2, l = 1: the corpus
   seed build/corpus_ckpt/micro.safetensors, written by build/test_ckpt, is
   its export). On success every parameter is finite and Adam's state is
   fresh; on failure the code is a named one and the model is unchanged.
   With libFuzzer:  clang -g -O1 -fsanitize=fuzzer,address,undefined tests/fuzz_st.c -o build/fuzz_st -lm
   Without:         cc -g -O1 -fsanitize=address,undefined tests/fuzz_st.c tests/fuzz_main.c -o build/fuzz_st_run -lm */
#define IRMAE_MAX_ALLOC ((size_t)64 << 20)
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"
#include <string.h>
#include "micro.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static irmae_model g_m;
static float *g_keep;

static void fz_setup(void)
{
    irmae_config c = micro_config();
    irmae_rng r = irmae_rng_seed(1);
    if (irmae_model_init(&g_m, &c, &r)) abort();
    g_keep = (float *)malloc(g_m.n_params * sizeof(float));
    if (!g_keep) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t k;
    int rc;
    if (!g_keep) fz_setup();
    memcpy(g_keep, g_m.params, g_m.n_params * sizeof(float));
    rc = irmae_import_safetensors_mem(&g_m, data, size);
    if (rc == 0) {
        for (k = 0; k < g_m.n_params; k++)
            if (!isfinite(g_m.params[k]) || g_m.adam_m[k] != 0.0f || g_m.adam_v[k] != 0.0f) abort();
        if (g_m.step != 0) abort();
    } else if (rc < IRMAE_ERR_MISMATCH || memcmp(g_keep, g_m.params, g_m.n_params * sizeof(float)) != 0) {
        abort();
    }
    return 0;
}
