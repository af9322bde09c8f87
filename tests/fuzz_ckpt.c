/* libFuzzer target: checkpoint decoding (irmae_checkpoint_decode).
   Each input is decoded twice: as it is (the CRCs stop almost every
   mutation early), and with its header and section CRCs recomputed, so the
   fuzzer also reaches the configuration, train-state and tensor checks.
   Each decode goes into a zeroed model (on success: the model must
   re-encode to exactly the input bytes, then it is freed; on failure: it
   must still be zeroed and the code a named one) and into an initialised
   micro model (on failure: unchanged). IRMAE_MAX_ALLOC is lowered to 64 MB
   so that a valid configuration with a huge workspace is refused (LIMIT)
   instead of exhausting the fuzzer's memory.
   With libFuzzer:  clang -g -O1 -fsanitize=fuzzer,address,undefined tests/fuzz_ckpt.c -o build/fuzz_ckpt -lm
                    build/test_ckpt     (writes seeds into build/corpus_ckpt/ when it exists)
                    build/fuzz_ckpt -max_total_time=60 build/corpus_ckpt
   Without:         cc -g -O1 -fsanitize=address,undefined tests/fuzz_ckpt.c tests/fuzz_main.c -o build/fuzz_ckpt_run -lm
                    build/fuzz_ckpt_run build/corpus_ckpt/ * */
#define IRMAE_MAX_ALLOC ((size_t)64 << 20)
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"
#include <string.h>
#include "micro.h"
#include <string.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fz_trap(void) { abort(); }

static uint32_t fz_rd32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t fz_rd64(const unsigned char *p) { return (uint64_t)fz_rd32(p) | (uint64_t)fz_rd32(p + 4) << 32; }
static void fz_wr32(unsigned char *p, uint32_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24); }

static void fz_fix_crcs(unsigned char *p, size_t size)
{
    size_t pos = 20;
    if (size < 20) return;
    fz_wr32(p + 16, irmae_crc32(0, p, 16));
    while (size - pos >= 12) {
        uint64_t len = fz_rd64(p + pos + 4);
        if (len > (uint64_t)(size - pos - 12) || size - pos - 12 - (size_t)len < 4) return;
        fz_wr32(p + pos + 12 + (size_t)len, irmae_crc32(0, p + pos, 12 + (size_t)len));
        pos += 16 + (size_t)len;
    }
}

/* An initialised model to decode into: 1 x 4 x 4, linear, n = 2, l = 1. */
static irmae_model g_init;
static float *g_keep;
static int g_ready = 0;

static void fz_setup(void)
{
    irmae_config c = micro_config();
    irmae_rng r = irmae_rng_seed(1);
    if (irmae_model_init(&g_init, &c, &r)) fz_trap();
    g_keep = (float *)malloc(g_init.n_params * sizeof(float));
    memcpy(g_keep, g_init.params, g_init.n_params * sizeof(float));
    g_ready = 1;
}

static int fz_named(int rc)
{
    return rc == IRMAE_ERR_FORMAT || rc == IRMAE_ERR_TRUNCATED || rc == IRMAE_ERR_CHECKSUM ||
           rc == IRMAE_ERR_VERSION || rc == IRMAE_ERR_LIMIT || rc == IRMAE_ERR_OVERFLOW ||
           rc == IRMAE_ERR_NOMEM || rc == IRMAE_ERR_MISMATCH;
}

static void fz_decode(const unsigned char *data, size_t size)
{
    irmae_model m;
    irmae_train_state ts;
    int rc;
    memset(&m, 0, sizeof m);
    rc = irmae_checkpoint_decode(&m, &ts, data, size);
    if (rc == 0) {
        unsigned char *out = NULL;
        size_t n = 0;
        if (!m.params || !m.n_params || m.step < 0 || ts.epoch < 0 || ts.batch < 0) fz_trap();
        /* a decoded checkpoint re-encodes to the same bytes */
        if (irmae_checkpoint_encode(&out, &n, &m, &ts) || n != size || memcmp(out, data, size) != 0) fz_trap();
        irmae_free_buffer(out);
        irmae_model_free(&m);
    } else {
        irmae_model zero;
        memset(&zero, 0, sizeof zero);
        if (!fz_named(rc) || rc == IRMAE_ERR_MISMATCH || memcmp(&m, &zero, sizeof m) != 0) fz_trap();
    }
    /* into an initialised model: success only for a matching config; an
       error leaves it as it was */
    rc = irmae_checkpoint_decode(&g_init, NULL, data, size);
    if (rc == 0) {
        memcpy(g_init.params, g_keep, g_init.n_params * sizeof(float)); /* back to the reference */
        g_init.step = 0;
    } else if (!fz_named(rc) || memcmp(g_init.params, g_keep, g_init.n_params * sizeof(float)) != 0 || g_init.step != 0) {
        fz_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_ready) fz_setup();
    fz_decode(data, size);
    if (size >= 20 && memcmp(data, "IRMAECKP", 8) == 0) {
        unsigned char *cp = (unsigned char *)malloc(size);
        if (!cp) return 0;
        memcpy(cp, data, size);
        fz_fix_crcs(cp, size);
        fz_decode(cp, size);
        free(cp);
    }
    return 0;
}
