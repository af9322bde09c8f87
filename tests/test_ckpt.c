/* Checkpoints and safetensors export:
   - round trips (encode/decode, save/load, read_config) of small custom
     nets, a VAE and the shapes preset: config, parameters, Adam m/v/step,
     the model rng and the train state bit-identical, re-encoding identical;
     loading into a zeroed and into an initialised model; mismatching
     configurations give IRMAE_ERR_MISMATCH (detail names the field) and
     leave the model untouched;
   - every truncation of a small checkpoint is IRMAE_ERR_TRUNCATED, thousands
     of seeded random bit flips are rejected with a named error, hand-made
     bad headers / configs (CRCs recomputed) give the documented errors;
   - resuming is bit-exact: N steps straight == k steps, save, load into a
     fresh model (in this process and in a new process: this program re-runs
     itself with --resume), N - k more steps, for an IRMAE and a VAE (whose
     sampling uses the model rng); negative controls show the check can fail;
   - the safetensors export, checked by tests/safetensors_check.py (header,
     names, shapes, values, padding, and the checkpoint format itself with
     zlib's CRC-32) and tests/torch_check.py (the PyTorch model built from
     the metadata, weights loaded strictly, outputs compared to irmae.h's)
     with $IRMAE_PYTHON (default /usr/bin/python3); SKIP when missing.
   - writes a seed corpus for tests/fuzz_ckpt.c into $IRMAE_CKPT_CORPUS or
     build/corpus_ckpt/ when that directory exists.
   Build: cc -O2 -std=c99 -Wall -Wextra -pedantic -fopenmp tests/test_ckpt.c -o build/test_ckpt -lm
   Run from the repository root: build/test_ckpt */
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"
#include "micro.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#define TC_PID() ((long)getpid())
#else
#define TC_PID() ((long)time(NULL))
#endif

static int passed = 0, failed = 0;
#define CHECK(cond, ...) do { if (cond) passed++; else { failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static char g_tmp[600], g_python[600], g_argv0[600];
static int g_have_numpy = 0;
static char g_files[256][800];
static int g_nfiles = 0;

/* Files to remove at the end. */
static void remember(const char *path)
{
    if (g_nfiles < 256) { snprintf(g_files[g_nfiles], sizeof g_files[0], "%s", path); g_nfiles++; }
}

static const char *tmp_name(const char *leaf)
{
    static char buf[8][700];
    static int k = 0;
    char *b = buf[k++ & 7];
    snprintf(b, 700, "%s%s", g_tmp, leaf);
    remember(b);
    return b;
}

/* ---- configurations and data ------------------------------------------- */

/* 1 x 8 x 8 images: conv, relu, conv, relu, flatten, linear -> code;
   linear, relu, reshape, convT, relu, convT (+ tanh / sigmoid). */
static irmae_config tiny_cfg(int kind)
{
    irmae_config c = irmae_preset(IRMAE_PRESET_SHAPES);
    c.in_c = 1; c.in_h = c.in_w = 8;
    c.n = 4; c.l = kind == IRMAE_KIND_VAE ? 0 : 2;
    c.kind = kind;
    c.max_batch = 8;
    c.lr = 1e-3f;
    c.n_enc = c.n_dec = 0;
    memset(c.enc, 0, sizeof c.enc);
    memset(c.dec, 0, sizeof c.dec);
    c.enc[c.n_enc++] = irmae_layer_conv(4, 4, 2, 1);
    c.enc[c.n_enc++] = irmae_layer_act(IRMAE_LAYER_RELU);
    c.enc[c.n_enc++] = irmae_layer_conv(8, 4, 2, 1);
    c.enc[c.n_enc++] = irmae_layer_act(IRMAE_LAYER_RELU);
    c.enc[c.n_enc++] = irmae_layer_flatten();
    c.enc[c.n_enc++] = irmae_layer_linear(IRMAE_CODE, 1);
    c.dec[c.n_dec++] = irmae_layer_linear(32, 1);
    c.dec[c.n_dec++] = irmae_layer_act(IRMAE_LAYER_RELU);
    c.dec[c.n_dec++] = irmae_layer_reshape(8, 2, 2);
    c.dec[c.n_dec++] = irmae_layer_convt(4, 4, 2, 1);
    c.dec[c.n_dec++] = irmae_layer_act(IRMAE_LAYER_RELU);
    c.dec[c.n_dec++] = irmae_layer_convt(1, 4, 2, 1);
    return c;
}

/* 1 x 4 x 4 images, linear only: ~90 parameters, a ~1.5 KB checkpoint. */
static irmae_config micro_cfg(void) { return micro_config(); } /* tests/micro.h, as the fuzz targets */

/* 3 x 8 x 8 images; the decoder upsamples (nearest) and convolves at stride 1. */
static irmae_config upsample_cfg(void)
{
    irmae_config c = tiny_cfg(IRMAE_KIND_AE);
    c.in_c = 3; c.n = 6; c.l = 2;
    c.n_enc = c.n_dec = 0;
    memset(c.enc, 0, sizeof c.enc);
    memset(c.dec, 0, sizeof c.dec);
    c.enc[c.n_enc++] = irmae_layer_conv(4, 4, 2, 1);
    c.enc[c.n_enc++] = irmae_layer_act(IRMAE_LAYER_RELU);
    c.enc[c.n_enc++] = irmae_layer_conv(IRMAE_CODE, 4, 1, 0);
    c.dec[c.n_dec++] = irmae_layer_upsample(2);
    c.dec[c.n_dec++] = irmae_layer_conv(5, 3, 1, 1);
    c.dec[c.n_dec++] = irmae_layer_act(IRMAE_LAYER_RELU);
    c.dec[c.n_dec++] = irmae_layer_upsample(4);
    c.dec[c.n_dec++] = irmae_layer_conv(3, 3, 1, 1);
    return c;
}

/* count smooth images in [0, 1], deterministic in seed. */
static void make_data(irmae_dataset *ds, int count, int c, int h, int w, uint64_t seed)
{
    irmae_rng r = irmae_rng_seed(seed);
    int i, ch, y, x;
    irmae_dataset_alloc(ds, count, c, h, w, 0);
    for (i = 0; i < count; i++) {
        float *img = irmae_dataset_image(ds, i);
        for (ch = 0; ch < c; ch++) {
            float a = 1.5f * irmae_rng_uniform(&r), b = 1.5f * irmae_rng_uniform(&r), p = 6.0f * irmae_rng_uniform(&r);
            for (y = 0; y < h; y++)
                for (x = 0; x < w; x++)
                    img[((size_t)ch * h + y) * w + x] = 0.5f + 0.5f * (float)sin(a * x + b * y + p);
        }
    }
}

/* The training loop of irmae_train_state's convention: `steps` minibatches
   of `batch`, the epoch order from a copy of ts->data_rng. */
static int train(irmae_model *m, irmae_train_state *ts, const irmae_dataset *ds, int batch, int steps)
{
    int nb = ds->n / batch, b, rc = 0;
    int *perm = (int *)malloc(sizeof(int) * (size_t)ds->n);
    float *x = (float *)malloc(sizeof(float) * (size_t)batch * ds->c * ds->h * ds->w);
    while (steps > 0 && rc == 0) {
        irmae_rng r = ts->data_rng;
        irmae_shuffle(perm, ds->n, &r);
        for (b = (int)ts->batch; b < nb && steps > 0 && rc == 0; b++, steps--) {
            irmae_dataset_gather(ds, x, perm + (size_t)b * batch, batch);
            rc = irmae_model_train_step(m, NULL, x, batch);
            ts->batch = b + 1;
        }
        if (ts->batch >= nb) { ts->data_rng = r; ts->epoch++; ts->batch = 0; }
    }
    free(perm); free(x);
    return rc;
}

static int cfg_equal(const irmae_config *a, const irmae_config *b)
{
    int i;
    if (a->in_c != b->in_c || a->in_h != b->in_h || a->in_w != b->in_w || a->n != b->n || a->l != b->l ||
        a->kind != b->kind || a->out_act != b->out_act || a->n_enc != b->n_enc || a->n_dec != b->n_dec ||
        a->max_batch != b->max_batch || a->range_pm1 != b->range_pm1) return 0;
    if (memcmp(&a->code_l1, &b->code_l1, 4) || memcmp(&a->code_l2, &b->code_l2, 4) ||
        memcmp(&a->vae_beta, &b->vae_beta, 4) || memcmp(&a->lr, &b->lr, 4) || memcmp(&a->beta1, &b->beta1, 4) ||
        memcmp(&a->beta2, &b->beta2, 4) || memcmp(&a->eps, &b->eps, 4)) return 0;
    for (i = 0; i < a->n_enc; i++) if (memcmp(&a->enc[i], &b->enc[i], sizeof a->enc[i])) return 0;
    for (i = 0; i < a->n_dec; i++) if (memcmp(&a->dec[i], &b->dec[i], sizeof a->dec[i])) return 0;
    return 1;
}

/* Same state: config, parameters, moments, step, rng. */
static int model_equal(const irmae_model *a, const irmae_model *b)
{
    size_t bytes = a->n_params * sizeof(float);
    return a->n_params == b->n_params && cfg_equal(&a->cfg, &b->cfg) &&
           memcmp(a->params, b->params, bytes) == 0 && memcmp(a->adam_m, b->adam_m, bytes) == 0 &&
           memcmp(a->adam_v, b->adam_v, bytes) == 0 && a->step == b->step &&
           memcmp(&a->rng, &b->rng, sizeof a->rng) == 0;
}

static int ts_equal(const irmae_train_state *a, const irmae_train_state *b)
{
    return a->epoch == b->epoch && a->batch == b->batch && memcmp(&a->data_rng, &b->data_rng, sizeof a->data_rng) == 0;
}

/* A model of cfg trained `steps` steps on data from seed 5. */
static int trained_model(irmae_model *m, irmae_train_state *ts, const irmae_config *cfg, uint64_t seed, int steps)
{
    irmae_rng r = irmae_rng_seed(seed);
    irmae_dataset ds;
    int rc;
    memset(m, 0, sizeof *m);
    if ((rc = irmae_model_init(m, cfg, &r))) return rc;
    ts->epoch = 0; ts->batch = 0; ts->data_rng = irmae_rng_seed(seed + 1000);
    make_data(&ds, 16, cfg->in_c, cfg->in_h, cfg->in_w, 5);
    rc = train(m, ts, &ds, cfg->max_batch < 4 ? cfg->max_batch : 4, steps);
    irmae_dataset_free(&ds);
    return rc;
}

/* ---- byte helpers for hand-made files ----------------------------------- */

static uint32_t rd32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(unsigned char *p, uint32_t v) { p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24); }
static void wr64(unsigned char *p, uint64_t v) { wr32(p, (uint32_t)v); wr32(p + 4, (uint32_t)(v >> 32)); }

/* Recomputes the header CRC and the CRC of every section that fits. */
static void fix_crcs(unsigned char *p, size_t size)
{
    size_t pos = 20;
    if (size < 20) return;
    wr32(p + 16, irmae_crc32(0, p, 16));
    while (size - pos >= 12) {
        uint64_t len = rd64(p + pos + 4);
        if (len > (uint64_t)(size - pos - 12) || size - pos - 12 - (size_t)len < 4) return;
        wr32(p + pos + 12 + (size_t)len, irmae_crc32(0, p + pos, 12 + (size_t)len));
        pos += 16 + (size_t)len;
    }
}

static int write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return 0;
    ok = fwrite(p, 1, n, f) == n;
    return (fclose(f) == 0) && ok;
}

static int file_exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* Little-endian float32 dump (the python peers read it with numpy '<f4'). */
static int write_floats(const char *path, const float *x, size_t n)
{
    unsigned char *b = (unsigned char *)malloc(n * 4 + 1);
    size_t i;
    int ok;
    for (i = 0; i < n; i++) { uint32_t u; memcpy(&u, &x[i], 4); wr32(b + 4 * i, u); }
    ok = write_file(path, b, n * 4);
    free(b);
    return ok;
}

/* Appends n floats to f as little-endian float32, whatever the host order. */
static void fput_floats(FILE *f, const float *x, size_t n)
{
    unsigned char b[4];
    size_t i;
    for (i = 0; i < n; i++) { uint32_t u; memcpy(&u, &x[i], 4); wr32(b, u); fwrite(b, 1, 4, f); }
}

/* ---- tests ------------------------------------------------------------------ */

static void test_roundtrip(const char *name, const irmae_config *cfg, int steps)
{
    irmae_model a, b, c;
    irmae_train_state ts, ts2, ts3;
    irmae_config rc_cfg;
    unsigned char *buf = NULL, *buf2 = NULL;
    size_t size = 0, size2 = 0;
    irmae_rng r = irmae_rng_seed(77);
    const char *path = tmp_name("rt.ckpt");
    char tmpfile[720];
    int rc;
    rc = trained_model(&a, &ts, cfg, 11, steps);
    CHECK(rc == 0, "%s: training: %s", name, irmae_error_detail());
    if (rc) { irmae_model_free(&a); return; }
    ts.epoch = 12345678901LL; ts.batch = 7; /* arbitrary values survive too */
    rc = irmae_checkpoint_encode(&buf, &size, &a, &ts);
    CHECK(rc == 0 && buf && size > 0, "%s: encode: %s", name, irmae_error_detail());
    if (rc) { irmae_model_free(&a); return; }
    /* fixed layout: magic, version, count, then 'CONF' at 20, the first parameter */
    CHECK(memcmp(buf, "IRMAECKP", 8) == 0 && rd32(buf + 8) == 1 && rd32(buf + 12) == 5 &&
          rd32(buf + 16) == irmae_crc32(0, buf, 16) && memcmp(buf + 20, "CONF", 4) == 0, "%s: header bytes", name);
    CHECK(size == 20 + 5 * 16 + rd64(buf + 24) + 88 + 3 * 4 * (uint64_t)a.n_params, "%s: size %lu", name, (unsigned long)size);
    {
        size_t conf = (size_t)rd64(buf + 24), parm = 20 + 16 + conf + 16 + 88 + 12;
        uint32_t u;
        memcpy(&u, &a.params[0], 4);
        CHECK(memcmp(buf + parm - 12, "PARM", 4) == 0 && rd32(buf + parm) == u &&
              rd64(buf + 20 + 12 + conf - 8) == a.n_params, "%s: PARM payload, first value little-endian", name);
    }

    /* decode into a zeroed model */
    memset(&b, 0, sizeof b);
    memset(&ts2, 0, sizeof ts2);
    rc = irmae_checkpoint_decode(&b, &ts2, buf, size);
    CHECK(rc == 0, "%s: decode into a zeroed model: %s", name, irmae_error_detail());
    if (rc == 0) {
        CHECK(model_equal(&a, &b), "%s: decoded model differs", name);
        CHECK(ts_equal(&ts, &ts2), "%s: decoded train state differs", name);
        rc = irmae_checkpoint_encode(&buf2, &size2, &b, &ts2);
        CHECK(rc == 0 && size2 == size && memcmp(buf, buf2, size) == 0, "%s: re-encoding is not byte-identical", name);
        irmae_free_buffer(buf2);
        irmae_model_free(&b);
    }
    /* save / load into an initialised model of the same config (other seed) */
    rc = irmae_checkpoint_save(path, &a, &ts);
    CHECK(rc == 0, "%s: save: %s", name, irmae_error_detail());
    snprintf(tmpfile, sizeof tmpfile, "%s.tmp", path);
    CHECK(!file_exists(tmpfile), "%s: %s left behind", name, tmpfile);
    rc = irmae_model_init(&c, cfg, &r);
    CHECK(rc == 0, "init");
    memset(&ts3, 0, sizeof ts3);
    if (rc == 0) {
        rc = irmae_checkpoint_load(&c, &ts3, path);
        CHECK(rc == 0 && model_equal(&a, &c) && ts_equal(&ts, &ts3), "%s: load into an initialised model: rc %d %s",
              name, rc, irmae_error_detail());
        irmae_model_free(&c);
    }
    memset(&c, 0, sizeof c);
    rc = irmae_checkpoint_load(&c, NULL, path);
    CHECK(rc == 0 && model_equal(&a, &c), "%s: load into a zeroed model, ts NULL: %s", name, irmae_error_detail());
    irmae_model_free(&c);
    rc = irmae_checkpoint_read_config(&rc_cfg, path);
    CHECK(rc == 0 && cfg_equal(&rc_cfg, cfg), "%s: read_config: %s", name, irmae_error_detail());
    /* saving over an existing file replaces it */
    ts.batch = 3;
    rc = irmae_checkpoint_save(path, &a, &ts);
    memset(&ts3, 0, sizeof ts3);
    memset(&c, 0, sizeof c);
    CHECK(rc == 0 && irmae_checkpoint_load(&c, &ts3, path) == 0 && ts3.batch == 3, "%s: save over an existing file", name);
    irmae_model_free(&c);
    irmae_free_buffer(buf);
    irmae_model_free(&a);
}

/* A model loaded into with a different config is left as it was. */
static void test_mismatch(void)
{
    irmae_config cfg = tiny_cfg(IRMAE_KIND_AE), other;
    irmae_model a, m;
    irmae_train_state ts, ts2, keep_ts;
    unsigned char *buf = NULL;
    size_t size = 0;
    float *keep;
    irmae_rng r = irmae_rng_seed(3);
    int rc, t;
    const char *want[5] = { "field n ", "field lr ", "encoder layer 2 field k ", "decoder layers", "field max_batch " };
    if (trained_model(&a, &ts, &cfg, 1, 3) || irmae_checkpoint_encode(&buf, &size, &a, &ts)) { CHECK(0, "setup"); return; }
    for (t = 0; t < 5; t++) {
        other = cfg;
        if (t == 0) { other.n = 5; }
        if (t == 1) other.lr = 2e-3f;
        if (t == 2) { other.enc[2].k = 2; other.enc[2].pad = 0; } /* 4x4 -> 2x2 still */
        if (t == 3) { other.dec[other.n_dec++] = irmae_layer_act(IRMAE_LAYER_RELU); }
        if (t == 4) other.max_batch = 4;
        rc = irmae_model_init(&m, &other, &r);
        CHECK(rc == 0, "mismatch %d: init: %s", t, irmae_error_detail());
        if (rc) continue;
        keep = (float *)malloc(m.n_params * sizeof(float));
        memcpy(keep, m.params, m.n_params * sizeof(float));
        ts2.epoch = 99; ts2.batch = 98; ts2.data_rng = irmae_rng_seed(97);
        keep_ts = ts2;
        rc = irmae_checkpoint_decode(&m, &ts2, buf, size);
        CHECK(rc == IRMAE_ERR_MISMATCH && strstr(irmae_error_detail(), want[t]) != NULL,
              "mismatch %d: rc %d, detail '%s' (want '%s')", t, rc, irmae_error_detail(), want[t]);
        CHECK(memcmp(keep, m.params, m.n_params * sizeof(float)) == 0 && m.step == 0 && ts_equal(&ts2, &keep_ts),
              "mismatch %d: the model or ts was modified", t);
        free(keep);
        irmae_model_free(&m);
    }
    irmae_free_buffer(buf);
    irmae_model_free(&a);
}

static const char *code_name(int rc)
{
    switch (rc) {
    case IRMAE_ERR_FORMAT: return "FORMAT";
    case IRMAE_ERR_TRUNCATED: return "TRUNCATED";
    case IRMAE_ERR_CHECKSUM: return "CHECKSUM";
    case IRMAE_ERR_VERSION: return "VERSION";
    case IRMAE_ERR_LIMIT: return "LIMIT";
    default: return NULL;
    }
}

/* Every prefix is TRUNCATED; a byte more is FORMAT; nothing is allocated. */
static void test_truncation(const char *name, const irmae_config *cfg)
{
    irmae_model a, m, init;
    irmae_train_state ts;
    unsigned char *buf = NULL, *cp;
    size_t size = 0, k;
    int bad = 0, first_bad = -1, rc, bad_init = 0;
    irmae_rng r = irmae_rng_seed(8);
    float *keep;
    if (trained_model(&a, &ts, cfg, 2, 2) || irmae_checkpoint_encode(&buf, &size, &a, &ts)) { CHECK(0, "setup"); return; }
    irmae_model_init(&init, cfg, &r);
    keep = (float *)malloc(init.n_params * sizeof(float));
    memcpy(keep, init.params, init.n_params * sizeof(float));
    for (k = 0; k < size; k++) {
        cp = (unsigned char *)malloc(k ? k : 1); /* an exact-size copy: ASan sees any over-read */
        memcpy(cp, buf, k);
        memset(&m, 0, sizeof m);
        rc = irmae_checkpoint_decode(&m, NULL, cp, k);
        if (rc != IRMAE_ERR_TRUNCATED || m.params != NULL) { if (!bad++) first_bad = (int)k; }
        if (k % 61 == 0) {
            rc = irmae_checkpoint_decode(&init, NULL, cp, k);
            if (rc != IRMAE_ERR_TRUNCATED || memcmp(keep, init.params, init.n_params * sizeof(float)) || init.step) bad_init++;
        }
        free(cp);
    }
    CHECK(bad == 0, "%s: %d of %lu prefixes not rejected as TRUNCATED (first at length %d)", name, bad, (unsigned long)size, first_bad);
    CHECK(bad_init == 0, "%s: %d prefixes modified an initialised model", name, bad_init);
    cp = (unsigned char *)malloc(size + 1);
    memcpy(cp, buf, size);
    cp[size] = 0;
    memset(&m, 0, sizeof m);
    rc = irmae_checkpoint_decode(&m, NULL, cp, size + 1);
    CHECK(rc == IRMAE_ERR_FORMAT && m.params == NULL && strstr(irmae_error_detail(), "after the last section"),
          "%s: trailing byte: rc %d %s", name, rc, irmae_error_detail());
    free(cp);
    printf("%s: all %lu truncations rejected as TRUNCATED\n", name, (unsigned long)size);
    free(keep);
    irmae_model_free(&init);
    irmae_free_buffer(buf);
    irmae_model_free(&a);
}

/* Seeded random flips of 1..3 distinct bits: always rejected, named error. */
static void test_bitflips(const char *name, const irmae_config *cfg, int trials)
{
    irmae_model a, m, init;
    irmae_train_state ts;
    unsigned char *buf = NULL, *cp;
    size_t size = 0;
    int t, bad = 0, counts[5] = { 0, 0, 0, 0, 0 }, rc, i, bad_init = 0;
    irmae_rng r = irmae_rng_seed(2024), ri = irmae_rng_seed(9);
    float *keep;
    if (trained_model(&a, &ts, cfg, 4, 3) || irmae_checkpoint_encode(&buf, &size, &a, &ts)) { CHECK(0, "setup"); return; }
    irmae_model_init(&init, cfg, &ri);
    keep = (float *)malloc(init.n_params * sizeof(float));
    memcpy(keep, init.params, init.n_params * sizeof(float));
    cp = (unsigned char *)malloc(size);
    for (t = 0; t < trials; t++) {
        int nflip = 1 + t % 3;
        uint64_t bits[3];
        memcpy(cp, buf, size);
        for (i = 0; i < nflip; i++) {
            int j, dup;
            do {
                bits[i] = irmae_rng_u64(&r) % ((uint64_t)size * 8);
                for (dup = 0, j = 0; j < i; j++) dup |= bits[j] == bits[i];
            } while (dup);
            cp[bits[i] / 8] ^= (unsigned char)(1u << (bits[i] % 8));
        }
        memset(&m, 0, sizeof m);
        rc = irmae_checkpoint_decode(&m, NULL, cp, size);
        if (!code_name(rc) || m.params) {
            if (!bad++) printf("flip trial %d (bit %lu): rc %d %s\n", t, (unsigned long)bits[0], rc, irmae_error_detail());
            if (m.params) irmae_model_free(&m);
        } else {
            counts[rc == IRMAE_ERR_FORMAT ? 0 : rc == IRMAE_ERR_TRUNCATED ? 1 : rc == IRMAE_ERR_CHECKSUM ? 2 : rc == IRMAE_ERR_VERSION ? 3 : 4]++;
        }
        if (t % 16 == 0) {
            rc = irmae_checkpoint_decode(&init, NULL, cp, size);
            if (!code_name(rc) || memcmp(keep, init.params, init.n_params * sizeof(float)) || init.step) bad_init++;
        }
    }
    CHECK(bad == 0, "%s: %d of %d bit-flipped files accepted or given an unexpected code", name, bad, trials);
    CHECK(bad_init == 0, "%s: %d flipped files modified an initialised model", name, bad_init);
    CHECK(counts[2] > trials / 2, "%s: only %d CRC failures", name, counts[2]);
    printf("%s: %d flipped files (%lu bytes) rejected: FORMAT %d, TRUNCATED %d, CHECKSUM %d, VERSION %d, LIMIT %d\n",
           name, trials, (unsigned long)size, counts[0], counts[1], counts[2], counts[3], counts[4]);
    free(cp); free(keep);
    irmae_model_free(&init);
    irmae_free_buffer(buf);
    irmae_model_free(&a);
}

/* Hand-made bad files with valid CRCs: each check is reached and named. */
static void test_bad_headers(void)
{
    irmae_config cfg = tiny_cfg(IRMAE_KIND_AE), got;
    irmae_model a, m;
    irmae_train_state ts;
    unsigned char *buf = NULL, *cp;
    size_t size = 0, conf, trst;
    int rc, i;
    const char *path = tmp_name("bad.ckpt");
    if (trained_model(&a, &ts, &cfg, 6, 2) || irmae_checkpoint_encode(&buf, &size, &a, &ts)) { CHECK(0, "setup"); return; }
    conf = 32; trst = 32 + (size_t)rd64(buf + 24) + 4 + 12;
    cp = (unsigned char *)malloc(size);
#define BAD_CASE(label, edit, fix, want, needle) do { \
        memcpy(cp, buf, size); edit; if (fix) fix_crcs(cp, size); \
        memset(&m, 0, sizeof m); rc = irmae_checkpoint_decode(&m, NULL, cp, size); \
        CHECK(rc == (want) && m.params == NULL && strstr(irmae_error_detail(), needle), \
              "%s: rc %d (want %d), detail '%s' (want '%s')", label, rc, want, irmae_error_detail(), needle); \
        if (m.params) irmae_model_free(&m); } while (0)
    BAD_CASE("magic", cp[3] = 'X', 0, IRMAE_ERR_FORMAT, "magic");
    BAD_CASE("version 2", wr32(cp + 8, 2), 1, IRMAE_ERR_VERSION, "version 2");
    BAD_CASE("version 2, stale CRC", wr32(cp + 8, 2), 0, IRMAE_ERR_VERSION, "version 2");
    BAD_CASE("version 0", wr32(cp + 8, 0), 1, IRMAE_ERR_FORMAT, "version 0");
    BAD_CASE("header CRC", cp[16] ^= 1, 0, IRMAE_ERR_CHECKSUM, "header CRC");
    BAD_CASE("section count", wr32(cp + 12, 6), 1, IRMAE_ERR_FORMAT, "sections");
    BAD_CASE("tag", cp[20] = 'c', 1, IRMAE_ERR_FORMAT, "expected section 'CONF'");
    BAD_CASE("PARM bit", cp[trst + 88 + 4 + 12 + 5] ^= 0x10, 0, IRMAE_ERR_CHECKSUM, "'PARM'");
    BAD_CASE("ADMV CRC", cp[size - 1] ^= 0x80, 0, IRMAE_ERR_CHECKSUM, "'ADMV'");
    BAD_CASE("huge CONF length", wr64(cp + 24, (uint64_t)1 << 40), 1, IRMAE_ERR_LIMIT, "IRMAE_MAX_LAYERS");
    BAD_CASE("huge PARM length", wr64(cp + trst + 88 + 4 + 4, (uint64_t)-16), 1, IRMAE_ERR_FORMAT, "'PARM'");
    BAD_CASE("kind 7", wr32(cp + conf + 20, 7), 1, IRMAE_ERR_FORMAT, "kind 7");
    BAD_CASE("n 0", wr32(cp + conf + 12, 0), 1, IRMAE_ERR_FORMAT, "configuration is invalid");
    BAD_CASE("n_enc 33", wr32(cp + conf + 68, 33), 1, IRMAE_ERR_LIMIT, "IRMAE_MAX_LAYERS");
    BAD_CASE("n_enc 0", wr32(cp + conf + 68, 0), 1, IRMAE_ERR_FORMAT, "0 encoder");
    BAD_CASE("n_enc 5", wr32(cp + conf + 68, 5), 1, IRMAE_ERR_FORMAT, "need");
    BAD_CASE("layer type 99", wr32(cp + conf + 76, 99), 1, IRMAE_ERR_FORMAT, "unknown type 99");
    BAD_CASE("conv k 9", wr32(cp + conf + 76 + 8, 9), 1, IRMAE_ERR_FORMAT, "invalid");
    BAD_CASE("n_params", wr64(cp + trst - 16 - 8, a.n_params + 1), 1, IRMAE_ERR_FORMAT, "parameters stored");
    BAD_CASE("negative step", wr64(cp + trst, (uint64_t)-1), 1, IRMAE_ERR_FORMAT, "negative");
    BAD_CASE("negative batch", wr64(cp + trst + 48, (uint64_t)-5), 1, IRMAE_ERR_FORMAT, "negative");
    /* max_batch 2^30: valid config, but the workspace would be ~2^30 x 1 KB */
    BAD_CASE("max_batch 2^30", wr32(cp + conf + 28, 1u << 30), 1, IRMAE_ERR_LIMIT, "workspace");
    BAD_CASE("max_batch 2^31-1", wr32(cp + conf + 28, 0x7FFFFFFFu), 1, IRMAE_ERR_LIMIT, "workspace");
    BAD_CASE("image 30000x30000", (wr32(cp + conf + 4, 30000), wr32(cp + conf + 8, 30000)), 1, IRMAE_ERR_FORMAT, "invalid");
    /* the same max_batch into an initialised model: MISMATCH, nothing allocated */
    {
        irmae_rng r = irmae_rng_seed(1);
        irmae_model_init(&m, &cfg, &r);
        memcpy(cp, buf, size);
        wr32(cp + conf + 28, 1u << 30);
        fix_crcs(cp, size);
        rc = irmae_checkpoint_decode(&m, NULL, cp, size);
        CHECK(rc == IRMAE_ERR_MISMATCH && strstr(irmae_error_detail(), "max_batch"), "max_batch into initialised: %d", rc);
        irmae_model_free(&m);
    }
    /* a field changed and the CRCs recomputed is still a valid file */
    memcpy(cp, buf, size);
    wr64(cp + trst + 48, 3);
    fix_crcs(cp, size);
    memset(&m, 0, sizeof m);
    memset(&ts, 0, sizeof ts);
    rc = irmae_checkpoint_decode(&m, &ts, cp, size);
    CHECK(rc == 0 && ts.batch == 3, "edited batch with fixed CRCs: rc %d %s", rc, irmae_error_detail());
    irmae_model_free(&m);
    /* files: read_config and load name the file */
    write_file(path, cp, 40);
    rc = irmae_checkpoint_read_config(&got, path);
    CHECK(rc == IRMAE_ERR_TRUNCATED && strstr(irmae_error_detail(), path) && got.n == 0, "read_config truncated: %d %s", rc, irmae_error_detail());
    memcpy(cp, buf, size);
    cp[size / 2] ^= 4;
    write_file(path, cp, size);
    rc = irmae_checkpoint_read_config(&got, path);
    CHECK(rc == 0 && cfg_equal(&got, &cfg), "read_config ignores a damaged tensor section: %d", rc);
    memset(&m, 0, sizeof m);
    rc = irmae_checkpoint_load(&m, NULL, path);
    CHECK(rc == IRMAE_ERR_CHECKSUM && strstr(irmae_error_detail(), path) && m.params == NULL, "load damaged: %d %s", rc, irmae_error_detail());
    rc = irmae_checkpoint_load(&m, NULL, tmp_name("does-not-exist.ckpt"));
    CHECK(rc == IRMAE_ERR_IO && m.params == NULL, "load missing file: %d", rc);
    rc = irmae_checkpoint_read_config(&got, tmp_name("does-not-exist.ckpt"));
    CHECK(rc == IRMAE_ERR_IO, "read_config missing file: %d", rc);
    write_file(path, "IRMAECKP\x02\0\0\0", 12);
    rc = irmae_checkpoint_read_config(&got, path);
    CHECK(rc == IRMAE_ERR_VERSION, "read_config version 2: %d", rc);
    /* arguments */
    CHECK(irmae_checkpoint_decode(NULL, NULL, buf, size) == IRMAE_ERR_ARG, "decode NULL model");
    memset(&m, 0, sizeof m);
    CHECK(irmae_checkpoint_decode(&m, NULL, NULL, 5) == IRMAE_ERR_ARG, "decode NULL data");
    CHECK(irmae_checkpoint_decode(&m, NULL, NULL, 0) == IRMAE_ERR_TRUNCATED, "decode empty");
    {
        unsigned char *o = buf;
        size_t on = 1;
        CHECK(irmae_checkpoint_encode(&o, &on, &m, NULL) == IRMAE_ERR_ARG && o == NULL && on == 0, "encode uninitialised");
        CHECK(irmae_checkpoint_encode(NULL, &on, &a, NULL) == IRMAE_ERR_ARG, "encode NULL out");
    }
    CHECK(irmae_checkpoint_save(path, &m, NULL) == IRMAE_ERR_ARG, "save uninitialised");
    CHECK(irmae_checkpoint_save(NULL, &a, NULL) == IRMAE_ERR_ARG, "save NULL path");
    ts.batch = -1;
    CHECK(irmae_checkpoint_save(path, &a, &ts) == IRMAE_ERR_ARG, "save negative batch");
    ts.batch = 0;
    CHECK(irmae_export_safetensors(path, &m) == IRMAE_ERR_ARG, "export uninitialised");
    for (i = 0; i < 2; i++) {
        const char *p = i ? tmp_name("no/such/dir/x.safetensors") : tmp_name("no/such/dir/x.ckpt");
        char t2[720];
        rc = i ? irmae_export_safetensors(p, &a) : irmae_checkpoint_save(p, &a, NULL);
        snprintf(t2, sizeof t2, "%s.tmp", p);
        CHECK(rc == IRMAE_ERR_IO && strstr(irmae_error_detail(), p) && !file_exists(t2), "%s into a missing dir: %d %s",
              i ? "export" : "save", rc, irmae_error_detail());
    }
#undef BAD_CASE
    free(cp);
    irmae_free_buffer(buf);
    irmae_model_free(&a);
}

/* ---- resume ----------------------------------------------------------------- */

#define RESUME_N 37
#define RESUME_K 13
#define RESUME_BATCH 8

static void resume_setup(int kind, irmae_config *cfg, irmae_dataset *ds)
{
    *cfg = tiny_cfg(kind);
    make_data(ds, 64, 1, 8, 8, 21);
}

/* --resume mode: load ckpt into a fresh model, train `steps`, save to out. */
static int resume_child(int kind, const char *ckpt, int steps, const char *out)
{
    irmae_config cfg;
    irmae_dataset ds;
    irmae_model m;
    irmae_train_state ts;
    int rc;
    resume_setup(kind, &cfg, &ds);
    memset(&m, 0, sizeof m);
    rc = irmae_checkpoint_load(&m, &ts, ckpt);
    if (!rc) rc = cfg_equal(&m.cfg, &cfg) ? 0 : IRMAE_ERR_MISMATCH;
    if (!rc) rc = train(&m, &ts, &ds, RESUME_BATCH, steps);
    if (!rc) rc = irmae_checkpoint_save(out, &m, &ts);
    if (rc) fprintf(stderr, "resume child: %s\n", irmae_error_detail());
    irmae_model_free(&m);
    irmae_dataset_free(&ds);
    return rc ? 1 : 0;
}

static void test_resume(int kind)
{
    const char *name = kind == IRMAE_KIND_VAE ? "VAE" : "IRMAE l=2";
    irmae_config cfg;
    irmae_dataset ds;
    irmae_model ref, m, m2;
    irmae_train_state ts_ref, ts, ts2;
    irmae_rng r;
    const char *ck = tmp_name(kind ? "resume_vae.ckpt" : "resume_ae.ckpt");
    const char *out = tmp_name(kind ? "resume_vae_out.ckpt" : "resume_ae_out.ckpt");
    char cmd[2400];
    int rc;
    resume_setup(kind, &cfg, &ds);
    /* straight */
    r = irmae_rng_seed(7);
    irmae_model_init(&ref, &cfg, &r);
    ts_ref.epoch = 0; ts_ref.batch = 0; ts_ref.data_rng = irmae_rng_seed(99);
    rc = train(&ref, &ts_ref, &ds, RESUME_BATCH, RESUME_N);
    CHECK(rc == 0 && ref.step == RESUME_N && ts_ref.epoch == RESUME_N / 8 && ts_ref.batch == RESUME_N % 8,
          "%s: straight run: rc %d step %lld epoch %lld batch %lld", name, rc, ref.step, ts_ref.epoch, ts_ref.batch);
    /* k steps, save, free */
    r = irmae_rng_seed(7);
    irmae_model_init(&m, &cfg, &r);
    ts.epoch = 0; ts.batch = 0; ts.data_rng = irmae_rng_seed(99);
    rc = train(&m, &ts, &ds, RESUME_BATCH, RESUME_K);
    rc = rc ? rc : irmae_checkpoint_save(ck, &m, &ts);
    CHECK(rc == 0, "%s: first part: %s", name, irmae_error_detail());
    irmae_model_free(&m);
    /* load into a fresh model in this process */
    memset(&m, 0, sizeof m);
    rc = irmae_checkpoint_load(&m, &ts, ck);
    rc = rc ? rc : train(&m, &ts, &ds, RESUME_BATCH, RESUME_N - RESUME_K);
    CHECK(rc == 0 && model_equal(&ref, &m) && ts_equal(&ts_ref, &ts),
          "%s: resumed in-process run differs from the straight run (rc %d)", name, rc);
    irmae_model_free(&m);
    /* negative controls: a different data order, or (VAE) a different model rng */
    memset(&m, 0, sizeof m);
    rc = irmae_checkpoint_load(&m, &ts, ck);
    ts.data_rng = irmae_rng_seed(100);
    rc = rc ? rc : train(&m, &ts, &ds, RESUME_BATCH, RESUME_N - RESUME_K);
    CHECK(rc == 0 && memcmp(ref.params, m.params, ref.n_params * sizeof(float)) != 0,
          "%s: control: another data order gave the same parameters", name);
    irmae_model_free(&m);
    if (kind == IRMAE_KIND_VAE) {
        memset(&m, 0, sizeof m);
        rc = irmae_checkpoint_load(&m, &ts, ck);
        m.rng = irmae_rng_seed(5);
        rc = rc ? rc : train(&m, &ts, &ds, RESUME_BATCH, RESUME_N - RESUME_K);
        CHECK(rc == 0 && memcmp(ref.params, m.params, ref.n_params * sizeof(float)) != 0,
              "%s: control: another sampling rng gave the same parameters", name);
        irmae_model_free(&m);
    }
    /* a new process: this program with --resume */
    remove(out);
    /* $IRMAE_TEST_EXEC prefixes the command (an emulator: "qemu-s390x") */
    /* cmd.exe strips the first and the last quote of a command line that
       starts with one: the whole line gets an extra pair on Windows */
#if defined(_WIN32)
#define Q_OPEN "\""
#else
#define Q_OPEN ""
#endif
    snprintf(cmd, sizeof cmd, Q_OPEN "%s%s\"%s\" --resume %d \"%s\" %d \"%s\"" Q_OPEN, getenv("IRMAE_TEST_EXEC") ? getenv("IRMAE_TEST_EXEC") : "",
             getenv("IRMAE_TEST_EXEC") ? " " : "", g_argv0, kind, ck, RESUME_N - RESUME_K, out);
    fflush(stdout);
    rc = system(cmd);
    CHECK(rc == 0, "%s: '%s' returned %d", name, cmd, rc);
    memset(&m2, 0, sizeof m2);
    rc = irmae_checkpoint_load(&m2, &ts2, out);
    CHECK(rc == 0 && model_equal(&ref, &m2) && ts_equal(&ts_ref, &ts2),
          "%s: run resumed in a new process differs from the straight run (rc %d %s)", name, rc, irmae_error_detail());
    if (rc == 0) printf("%s: %d steps straight == %d + %d resumed (in-process and new process), %lu parameters bit-identical\n",
                        name, RESUME_N, RESUME_K, RESUME_N - RESUME_K, (unsigned long)ref.n_params);
    irmae_model_free(&m2);
    irmae_model_free(&ref);
    irmae_dataset_free(&ds);
}

/* ---- safetensors ------------------------------------------------------------ */

/* Appends the expected tensors of one layer list to the sidecar (by the
   PyTorch naming rules, from the config's specs) and their values to raw. */
static void side_layers(FILE *side, FILE *raw, const irmae_model *m, int from, int to, const char *prefix, int *first)
{
    int i;
    for (i = from; i < to; i++) {
        const irmae_layer *L = &m->layers[i];
        int t = L->spec.type, idx = i - from;
        if (t != IRMAE_LAYER_CONV && t != IRMAE_LAYER_CONVT && t != IRMAE_LAYER_LINEAR) continue;
        if (t == IRMAE_LAYER_LINEAR)
            fprintf(side, "%s[\"%s.%d.weight\",[%d,%d]]", *first ? "" : ",", prefix, idx, L->out_c, L->in_c * L->in_h * L->in_w);
        else if (t == IRMAE_LAYER_CONV)
            fprintf(side, "%s[\"%s.%d.weight\",[%d,%d,%d,%d]]", *first ? "" : ",", prefix, idx, L->out_c, L->in_c, L->spec.k, L->spec.k);
        else
            fprintf(side, "%s[\"%s.%d.weight\",[%d,%d,%d,%d]]", *first ? "" : ",", prefix, idx, L->in_c, L->out_c, L->spec.k, L->spec.k);
        *first = 0;
        fput_floats(raw, m->params + L->w_off, L->n_w);
        if (L->spec.bias) {
            fprintf(side, ",[\"%s.%d.bias\",[%d]]", prefix, idx, L->out_c);
            fput_floats(raw, m->params + L->b_off, L->n_b);
        }
    }
}

/* Python checks are queued and run at the end in one interpreter per
   script (importing torch takes ~2 s): each job is one tab-separated line
   of arguments; the script writes one result line per job, "ok" or "FAIL ...". */
typedef struct py_job { char args[2200]; char label[96]; int expect_ok, ran_ok; } py_job;
static py_job g_st_jobs[32], g_torch_jobs[16];
/* PyTorch -> irmae.h cases, checked once the Python jobs have run */
typedef struct import_case { char name[64], prefix[700], xs[700]; int job, count; float *orig; size_t n_params; } import_case;
static import_case g_imp[4];
static int g_nimp;
static int g_nst = 0, g_ntorch = 0;

static void py_queue(py_job *jobs, int *nj, int cap, int expect_ok, const char *label, const char *args)
{
    if (*nj >= cap) { CHECK(0, "too many python jobs"); return; }
    snprintf(jobs[*nj].args, sizeof jobs[*nj].args, "%s", args);
    snprintf(jobs[*nj].label, sizeof jobs[*nj].label, "%s", label);
    jobs[*nj].expect_ok = expect_ok;
    (*nj)++;
}

static void py_run(const char *script, py_job *jobs, int nj, const char *tag)
{
    char jobfile[700], resfile[720], cmd[2600], line[1200];
    FILE *f;
    int i, rc, got = 0, skipped = 0;
    if (nj == 0) return;
    snprintf(jobfile, sizeof jobfile, "%s", tmp_name(tag));
    snprintf(resfile, sizeof resfile, "%s.results", jobfile);
    remember(resfile);
    f = fopen(jobfile, "w");
    if (!f) { CHECK(0, "cannot write %s", jobfile); return; }
    for (i = 0; i < nj; i++) fprintf(f, "%s\n", jobs[i].args);
    fclose(f);
    remove(resfile);
    snprintf(cmd, sizeof cmd, "\"%s\" tests/%s --jobs \"%s\" \"%s\"", g_python, script, jobfile, resfile);
    fflush(stdout);
    rc = system(cmd);
    (void)rc; /* the result file is what counts */
    f = fopen(resfile, "r");
    if (!f) { CHECK(0, "%s wrote no results (%s)", script, cmd); return; }
    for (i = 0; i < nj && fgets(line, sizeof line, f); i++, got++) {
        int ok = strncmp(line, "ok", 2) == 0;
        jobs[i].ran_ok = ok;
        if (strncmp(line, "SKIP", 4) == 0) { if (!skipped++) printf("%s", line); continue; }
        if (jobs[i].expect_ok) {
            CHECK(ok, "%s: %s", jobs[i].label, line);
            if (ok && strlen(line) > 3) printf("%s: %s", jobs[i].label, line + 3);
        } else {
            CHECK(!ok && strncmp(line, "FAIL", 4) == 0, "%s: the checker did not notice (%s)", jobs[i].label, line);
        }
    }
    fclose(f);
    CHECK(got == nj, "%s: %d results for %d jobs", script, got, nj);
}

static void test_safetensors(const char *name, int id, const irmae_config *cfg, int count)
{
    irmae_model m;
    irmae_train_state ts;
    irmae_dataset ds;
    char st[700], side[700], raw[700], xs[700], ys[700], zs[700], ck[700], args[2200], label[96], leaf[64];
    FILE *fs, *fr;
    float *y, *z, *w;
    int first = 1, rc, j, n = cfg->n;
#define TMP(var, what) (snprintf(leaf, sizeof leaf, "st%d_%s", id, what), snprintf(var, sizeof var, "%s", tmp_name(leaf)))
    TMP(st, "m.safetensors"); TMP(side, "m.json"); TMP(raw, "m.raw"); TMP(xs, "x.f32");
    TMP(ys, "y.f32"); TMP(zs, "z.f32"); TMP(ck, "m.ckpt");
    /* IRMAE_TEST_QUICK (emulators): one step instead of three (Adam's moments are set after one) */
    if ((rc = trained_model(&m, &ts, cfg, 31, getenv("IRMAE_TEST_QUICK") ? 1 : 3))) {
        CHECK(0, "%s: setup %s", name, irmae_error_detail());
        return;
    }
    rc = irmae_export_safetensors(st, &m);
    CHECK(rc == 0, "%s: export: %s", name, irmae_error_detail());
    CHECK(irmae_checkpoint_save(ck, &m, &ts) == 0, "%s: save", name);
    /* the file starts with the header length and '{' */
    {
        FILE *f = fopen(st, "rb");
        unsigned char h[9];
        CHECK(f && fread(h, 1, 9, f) == 9 && rd64(h) % 8 == 0 && h[8] == '{', "%s: safetensors prefix", name);
        if (f) fclose(f);
    }
    if (!g_have_numpy) { printf("SKIP: %s: safetensors and checkpoint cross-checks (no numpy in %s)\n", name, g_python); irmae_model_free(&m); return; }
    /* sidecar: expected metadata, tensor names and shapes in order; raw values */
    fs = fopen(side, "w"); fr = fopen(raw, "wb");
    if (!fs || !fr) { CHECK(0, "cannot write %s / %s", side, raw); if (fs) fclose(fs); if (fr) fclose(fr); irmae_model_free(&m); return; }
    fprintf(fs, "{\"n\":\"%d\",\"l\":\"%d\",\"kind\":\"%s\",\"count\":%d,\"x\":\"%s\",\"y\":\"%s\",\"z\":\"%s\",\"tensors\":[",
            n, cfg->l, cfg->kind == IRMAE_KIND_VAE ? "vae" : "ae", count, xs, ys, zs);
    side_layers(fs, fr, &m, 0, m.n_enc, "encoder", &first);
    for (j = 0; j < cfg->l; j++) {
        fprintf(fs, ",[\"maps.%d.weight\",[%d,%d]]", j, n, n);
        fput_floats(fr, m.params + m.maps_off + (size_t)j * n * n, (size_t)n * n);
    }
    side_layers(fs, fr, &m, m.n_enc, m.n_layers, "decoder", &first);
    fprintf(fs, ",[\"collapsed.weight\",[%d,%d]]]}\n", n, n);
    w = (float *)malloc(sizeof(float) * (size_t)n * n);
    irmae_model_collapse(&m, w);
    fput_floats(fr, w, (size_t)n * n);
    free(w);
    fclose(fs); fclose(fr);
    /* input, codes and outputs for the PyTorch comparison */
    make_data(&ds, count, cfg->in_c, cfg->in_h, cfg->in_w, 1234);
    y = (float *)malloc(sizeof(float) * (size_t)count * cfg->in_c * cfg->in_h * cfg->in_w);
    z = (float *)malloc(sizeof(float) * (size_t)count * n);
    rc = irmae_model_encode(&m, z, ds.x, count);
    rc = rc ? rc : irmae_model_decode(&m, y, z, count);
    CHECK(rc == 0, "%s: encode/decode", name);
    write_floats(xs, ds.x, (size_t)count * cfg->in_c * cfg->in_h * cfg->in_w);
    write_floats(ys, y, (size_t)count * cfg->in_c * cfg->in_h * cfg->in_w);
    write_floats(zs, z, (size_t)count * n);
    irmae_dataset_free(&ds);

    snprintf(label, sizeof label, "%s: safetensors_check.py st", name);
    snprintf(args, sizeof args, "st\t%s\t%s\t%s", st, side, raw);
    py_queue(g_st_jobs, &g_nst, 32, 1, label, args);
    snprintf(label, sizeof label, "%s: safetensors_check.py ckpt", name);
    snprintf(args, sizeof args, "ckpt\t%s\t%s", ck, raw);
    py_queue(g_st_jobs, &g_nst, 32, 1, label, args);
    snprintf(label, sizeof label, "%s: torch_check.py", name);
    snprintf(args, sizeof args, "%s\t%s", st, side);
    py_queue(g_torch_jobs, &g_ntorch, 16, 1, label, args);
    if (id <= 3 && g_nimp < 4) { /* PyTorch -> irmae.h: trained in PyTorch, imported after the Python jobs ran */
        import_case *ic = &g_imp[g_nimp];
        ic->orig = (float *)malloc(m.n_params * sizeof(float));
        if (ic->orig) {
            memcpy(ic->orig, m.params, m.n_params * sizeof(float));
            ic->n_params = m.n_params;
            ic->count = count;
            ic->job = g_ntorch;
            snprintf(ic->name, sizeof ic->name, "%s", name);
            snprintf(ic->xs, sizeof ic->xs, "%s", xs);
            snprintf(leaf, sizeof leaf, "st%d_torch", id);
            snprintf(ic->prefix, sizeof ic->prefix, "%s", tmp_name(leaf));
            snprintf(label, sizeof label, "%s: PyTorch trains and saves", name);
            snprintf(args, sizeof args, "train\t%s\t%s\t%s", st, side, ic->prefix);
            py_queue(g_torch_jobs, &g_ntorch, 16, 1, label, args);
            g_nimp++;
        }
    }
    if (id == 0) {
        /* negative controls: one flipped bit of one weight, one wrong output */
        char rawbad[700], ybad[700], sidebad[700];
        FILE *fi = fopen(raw, "rb"), *fo;
        int ch, k = 0;
        TMP(rawbad, "bad.raw"); TMP(ybad, "bad_y.f32"); TMP(sidebad, "bad.json");
        fo = fopen(rawbad, "wb");
        if (fi && fo) while ((ch = getc(fi)) != EOF) putc(k++ == 40 ? ch ^ 1 : ch, fo);
        if (fi) fclose(fi);
        if (fo) fclose(fo);
        y[3] += 1e-3f;
        write_floats(ybad, y, (size_t)count * cfg->in_c * cfg->in_h * cfg->in_w);
        fs = fopen(sidebad, "w");
        if (fs) {
            fprintf(fs, "{\"n\":\"%d\",\"l\":\"%d\",\"kind\":\"ae\",\"count\":%d,\"x\":\"%s\",\"y\":\"%s\",\"z\":\"%s\",\"tensors\":[]}\n",
                    n, cfg->l, count, xs, ybad, zs);
            fclose(fs);
        }
        snprintf(label, sizeof label, "%s: control, one flipped weight bit (st)", name);
        snprintf(args, sizeof args, "st\t%s\t%s\t%s", st, side, rawbad);
        py_queue(g_st_jobs, &g_nst, 32, 0, label, args);
        snprintf(label, sizeof label, "%s: control, one flipped weight bit (ckpt)", name);
        snprintf(args, sizeof args, "ckpt\t%s\t%s", ck, rawbad);
        py_queue(g_st_jobs, &g_nst, 32, 0, label, args);
        snprintf(label, sizeof label, "%s: control, an output off by 1e-3", name);
        snprintf(args, sizeof args, "%s\t%s", st, sidebad);
        py_queue(g_torch_jobs, &g_ntorch, 16, 0, label, args);
    }
#undef TMP
    free(y); free(z);
    irmae_model_free(&m);
}

/* ---- fuzz corpus -------------------------------------------------------------- */

static void write_corpus(void)
{
    const char *env = getenv("IRMAE_CKPT_CORPUS");
    char dir[600], path[700];
    irmae_config cfgs[3];
    const char *names[3] = { "micro.ckpt", "tiny_ae.ckpt", "tiny_vae.ckpt" };
    int i, wrote = 0;
    snprintf(dir, sizeof dir, "%s", env && *env ? env : "build/corpus_ckpt");
    cfgs[0] = micro_cfg(); cfgs[1] = tiny_cfg(IRMAE_KIND_AE); cfgs[2] = tiny_cfg(IRMAE_KIND_VAE);
    for (i = 0; i < 3; i++) {
        irmae_model m;
        irmae_train_state ts;
        unsigned char *buf;
        size_t size;
        if (trained_model(&m, &ts, &cfgs[i], 40 + i, 2) == 0 && irmae_checkpoint_encode(&buf, &size, &m, &ts) == 0) {
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            wrote += write_file(path, buf, size);
            irmae_free_buffer(buf);
        }
        irmae_model_free(&m);
    }
    { /* the safetensors import target's seed: the micro model's export */
        irmae_model m;
        irmae_train_state ts;
        snprintf(path, sizeof path, "%s/micro.safetensors", dir);
        if (trained_model(&m, &ts, &cfgs[0], 40, 2) == 0 && irmae_export_safetensors(path, &m) == 0) wrote++;
        irmae_model_free(&m);
    }
    if (wrote) printf("fuzz corpus: %d checkpoints and a safetensors file written to %s/\n", wrote, dir);
}


/* ---- byte order: files committed from x86-64, compared on every host ------ */

/* tests/data/xendian.ckpt and tests/data/xendian.safetensors were written on
   x86-64 by `build/test_ckpt --write-xendian tests/data`. The model in them
   holds no computed value: every parameter, Adam moment, the step and the
   rng words are bit patterns hashed from their index, so every host (any
   byte order, any FLT_EVAL_METHOD) rebuilds exactly the same state. A host
   that read or wrote a multi-byte field in its own byte order would get
   other values on load, and other bytes on save. */
static uint32_t xe_bits(uint64_t i, uint32_t salt)
{
    uint64_t z = i * 0x9E3779B97F4A7C15ull + salt;
    uint32_t u;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    u = (uint32_t)(z >> 32);
    if (((u >> 23) & 0xFFu) == 0xFFu) u &= ~(1u << 23); /* no infinity or NaN */
    return u;
}
static float xe_float(uint64_t i, uint32_t salt)
{
    uint32_t u = xe_bits(i, salt);
    float f;
    if (salt == 3) u &= 0x7FFFFFFFu; /* Adam's v is >= 0 */
    memcpy(&f, &u, 4);
    return f;
}

static int xe_make(irmae_model *m, irmae_train_state *ts)
{
    irmae_config c = tiny_cfg(IRMAE_KIND_AE);
    irmae_rng r = irmae_rng_seed(8);
    size_t i;
    int k, rc;
    c.code_l1 = 0.25f; c.code_l2 = 1.0f / 1024.0f; c.grad_clip = 3.5f; c.max_batch = 5;
    memset(m, 0, sizeof *m);
    if ((rc = irmae_model_init(m, &c, &r)) != 0) return rc;
    for (i = 0; i < m->n_params; i++) {
        /* the maps get small multiples of 1/2: their product, the exported
           collapsed.weight, is exact whatever the kernel or the evaluation
           method; everything else is arbitrary bits */
        int in_maps = i >= m->maps_off && i < m->maps_off + (size_t)c.l * c.n * c.n;
        m->params[i] = in_maps ? (float)((int)(xe_bits(i, 1) % 7u) - 3) * 0.5f : xe_float(i, 1);
        m->adam_m[i] = xe_float(i, 2);
        m->adam_v[i] = xe_float(i, 3);
    }
    m->step = 0x0123456789ABll;
    for (k = 0; k < 4; k++) {
        m->rng.s[k] = ((uint64_t)xe_bits((uint64_t)k, 4) << 32) | xe_bits((uint64_t)k, 5);
        ts->data_rng.s[k] = ((uint64_t)xe_bits((uint64_t)k, 6) << 32) | xe_bits((uint64_t)k, 7);
    }
    ts->epoch = 0x11223344556ll;
    ts->batch = 0x0708090A;
    return 0;
}

static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *p = NULL;
    long len;
    *n = 0;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        p = (unsigned char *)malloc((size_t)len + 1);
        if (p && fread(p, 1, (size_t)len, f) == (size_t)len) *n = (size_t)len;
        else { free(p); p = NULL; }
    }
    fclose(f);
    return p;
}

/* 1 if the two files hold the same bytes; says where they first differ. */
static int same_bytes(const char *a, const char *b)
{
    size_t na, nb, i;
    unsigned char *pa = read_bytes(a, &na), *pb = read_bytes(b, &nb);
    int ok = pa && pb && na == nb && memcmp(pa, pb, na) == 0;
    if (pa && pb && !ok) {
        for (i = 0; i < na && i < nb && pa[i] == pb[i]; i++) {}
        printf("  %s (%lu bytes) and %s (%lu bytes) first differ at byte %lu\n", a, (unsigned long)na, b, (unsigned long)nb, (unsigned long)i);
    }
    free(pa); free(pb);
    return ok;
}

static int xe_write(const char *dir)
{
    irmae_model m;
    irmae_train_state ts;
    char p[700];
    int rc = xe_make(&m, &ts);
    if (!rc) { snprintf(p, sizeof p, "%s/xendian.ckpt", dir); rc = irmae_checkpoint_save(p, &m, &ts); }
    if (!rc) { snprintf(p, sizeof p, "%s/xendian.safetensors", dir); rc = irmae_export_safetensors(p, &m); }
    if (rc) printf("--write-xendian %s: %s\n", dir, irmae_error_detail());
    irmae_model_free(&m);
    return rc ? 1 : 0;
}

/* Loads dir/xendian.ckpt (written on some host) and checks every value
   against the hashed patterns; checks that this host writes the very same
   bytes (checkpoint and safetensors) from the same state. */
static void test_xendian(const char *dir)
{
    irmae_model want, got;
    irmae_train_state wts, gts;
    char ck[700], st[700];
    const char *ck2 = tmp_name("xe.ckpt"), *st2 = tmp_name("xe.safetensors");
    size_t i, bad = 0;
    union { uint32_t u; unsigned char b[4]; } probe;
    probe.u = 0x01020304u;
    printf("byte order: this host is %s-endian; reference files from %s/\n", probe.b[0] == 1 ? "big" : "little", dir);
    snprintf(ck, sizeof ck, "%s/xendian.ckpt", dir);
    snprintf(st, sizeof st, "%s/xendian.safetensors", dir);
    memset(&wts, 0, sizeof wts);
    if (xe_make(&want, &wts)) { CHECK(0, "xendian: model init: %s", irmae_error_detail()); return; }
    memset(&got, 0, sizeof got);
    CHECK(irmae_checkpoint_load(&got, &gts, ck) == 0, "xendian: load %s: %s", ck, irmae_error_detail());
    if (got.params) {
        for (i = 0; i < want.n_params && i < got.n_params; i++)
            if (memcmp(&got.params[i], &want.params[i], 4) || memcmp(&got.adam_m[i], &want.adam_m[i], 4) ||
                memcmp(&got.adam_v[i], &want.adam_v[i], 4)) bad++;
        CHECK(got.n_params == want.n_params && bad == 0, "xendian: %lu of %lu parameters / moments differ from the patterns",
              (unsigned long)bad, (unsigned long)want.n_params);
        CHECK(cfg_equal(&got.cfg, &want.cfg) && memcmp(&got.cfg.grad_clip, &want.cfg.grad_clip, 4) == 0,
              "xendian: configuration differs");
        CHECK(got.step == want.step && memcmp(&got.rng, &want.rng, sizeof got.rng) == 0 && ts_equal(&gts, &wts),
              "xendian: step %lld, rng or train state differ", got.step);
        CHECK(model_equal(&got, &want), "xendian: loaded model equals the pattern model");
        /* load + save reproduces the file */
        CHECK(irmae_checkpoint_save(ck2, &got, &gts) == 0 && same_bytes(ck, ck2), "xendian: re-saving %s gives other bytes", ck);
    }
    CHECK(irmae_checkpoint_save(ck2, &want, &wts) == 0 && same_bytes(ck, ck2), "xendian: this host's checkpoint differs from %s", ck);
    CHECK(irmae_export_safetensors(st2, &want) == 0 && same_bytes(st, st2), "xendian: this host's safetensors differs from %s", st);
    irmae_model_free(&got);
    irmae_model_free(&want);
}

/* ---- NumPy .npy ---------------------------------------------------------- */

/* A .npy file built by hand: version v, header text h, then nvals floats 0, 1, ... */
static size_t npy_build(unsigned char *buf, size_t cap, int v, const char *h, size_t nvals)
{
    size_t hl = strlen(h), pre = v == 1 ? 10 : 12, k;
    if (pre + hl + 4 * nvals > cap) return 0;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)v; buf[7] = 0;
    buf[8] = (unsigned char)(hl & 0xFF); buf[9] = (unsigned char)(hl >> 8);
    if (v != 1) { buf[10] = (unsigned char)(hl >> 16); buf[11] = (unsigned char)(hl >> 24); }
    memcpy(buf + pre, h, hl);
    for (k = 0; k < nvals; k++) {
        float f = (float)k;
        uint32_t u;
        memcpy(&u, &f, 4);
        buf[pre + hl + 4 * k] = (unsigned char)u; buf[pre + hl + 4 * k + 1] = (unsigned char)(u >> 8);
        buf[pre + hl + 4 * k + 2] = (unsigned char)(u >> 16); buf[pre + hl + 4 * k + 3] = (unsigned char)(u >> 24);
    }
    return pre + hl + 4 * nvals;
}

/* irmae_npy_write / _parse / _load: codes of a model round-trip bit-exactly
   and numpy reads them as the same float32 array; every prefix of a file is
   TRUNCATED; each malformed header is its named error; outputs stay zeroed. */
static void test_npy(void)
{
    static const struct { const char *header; size_t nvals; int version, want; const char *what; } bad[] = {
        { "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }\n", 6, 1, IRMAE_ERR_UNSUPPORTED, "float64" },
        { "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }\n", 6, 1, IRMAE_ERR_UNSUPPORTED, "big-endian" },
        { "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n", 6, 1, IRMAE_ERR_UNSUPPORTED, "Fortran order" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 1), }\n", 6, 1, IRMAE_ERR_UNSUPPORTED, "rank 3" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n", 1, 1, IRMAE_ERR_UNSUPPORTED, "a scalar" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }\n", 0, 1, IRMAE_ERR_UNSUPPORTED, "empty" },
        { "{'descr': '<f4', 'shape': (2, 3), }\n", 6, 1, IRMAE_ERR_FORMAT, "no fortran_order" },
        { "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 6, 1, IRMAE_ERR_FORMAT, "duplicate key" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}\n", 6, 1, IRMAE_ERR_FORMAT, "unknown key" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 6, 1, IRMAE_ERR_FORMAT, "no newline" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3) ", 6, 1, IRMAE_ERR_FORMAT, "unclosed dict" },
        { "{descr: '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 6, 1, IRMAE_ERR_FORMAT, "unquoted key" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 7, 1, IRMAE_ERR_FORMAT, "trailing bytes" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 5, 1, IRMAE_ERR_TRUNCATED, "short data" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 3), }\n", 6, 1, IRMAE_ERR_LIMIT, "huge dimension" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (2000000000, 2000000000), }\n", 6, 1, IRMAE_ERR_LIMIT, "huge product" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }\n", 6, 4, IRMAE_ERR_UNSUPPORTED, "version 4.0" },
    };
    irmae_config cfg = tiny_cfg(IRMAE_KIND_AE);
    irmae_model m;
    irmae_train_state ts;
    irmae_dataset ds;
    unsigned char buf[512], *file = NULL;
    const char *path = tmp_name("codes.npy"), *path1 = tmp_name("vec.npy"), *raw = tmp_name("codes.raw");
    float z[9 * 4], *back = NULL;
    int rows, cols, rc, i, bad_prefix = 0;
    size_t size, k, n;
    char args[2200];
    if (trained_model(&m, &ts, &cfg, 51, 2)) { CHECK(0, "npy: setup %s", irmae_error_detail()); return; }
    make_data(&ds, 9, cfg.in_c, cfg.in_h, cfg.in_w, 77);
    CHECK(irmae_model_encode(&m, z, ds.x, 9) == 0, "npy: encode");
    CHECK(irmae_npy_write(path, z, 9, cfg.n) == 0, "npy_write: %s", irmae_error_detail());
    CHECK(irmae_npy_load(&back, &rows, &cols, path) == 0 && rows == 9 && cols == cfg.n &&
          memcmp(back, z, sizeof z) == 0, "npy: the codes come back bit-exactly (%d x %d)", rows, cols);
    irmae_free_buffer(back); back = NULL;
    CHECK(irmae_npy_write(path1, z, 7, 0) == 0 && irmae_npy_load(&back, &rows, &cols, path1) == 0 && rows == 7 &&
          cols == 1 && memcmp(back, z, 7 * sizeof(float)) == 0, "npy: a 1-D array reads as 7 x 1");
    irmae_free_buffer(back); back = NULL;
    if (g_have_numpy) {
        write_floats(raw, z, sizeof z / sizeof z[0]);
        snprintf(args, sizeof args, "npy\t%s\t%s\t9\t%d", path, raw, cfg.n);
        py_queue(g_st_jobs, &g_nst, 32, 1, "npy: numpy.load of irmae_npy_write's codes", args);
        snprintf(args, sizeof args, "npy\t%s\t%s\t9\t%d", path, raw, cfg.n + 1);
        py_queue(g_st_jobs, &g_nst, 32, 0, "npy: control, the wrong shape", args);
    } else printf("SKIP: npy: numpy.load of irmae's file (no numpy in %s)\n", g_python);
    /* every prefix of the file is truncated, never read past its end */
    if ((file = read_bytes(path, &size)) != NULL) {
        for (k = 0; k < size; k++) {
            float *o = (float *)1;
            rows = cols = -1;
            rc = irmae_npy_parse(&o, &rows, &cols, file, k);
            if (rc != IRMAE_ERR_TRUNCATED || o || rows || cols) bad_prefix++;
        }
        CHECK(bad_prefix == 0, "npy: %d of %lu prefixes are not IRMAE_ERR_TRUNCATED with zeroed outputs",
              bad_prefix, (unsigned long)size);
        file[0] = 'X';
        CHECK(irmae_npy_parse(&back, &rows, &cols, file, size) == IRMAE_ERR_FORMAT, "npy: bad magic");
        free(file);
    } else CHECK(0, "npy: cannot read back %s", path);
    for (i = 0; i < (int)(sizeof bad / sizeof bad[0]); i++) {
        float *o = NULL;
        n = npy_build(buf, sizeof buf, bad[i].version, bad[i].header, bad[i].nvals);
        rc = irmae_npy_parse(&o, &rows, &cols, buf, n);
        CHECK(rc == bad[i].want && !o && rows == 0 && cols == 0, "npy %s: rc %d (%s), want %d", bad[i].what, rc,
              irmae_error_detail(), bad[i].want);
    }
    /* what numpy itself writes for (2, 3) float32 in versions 1.0 and 2.0, with double quotes */
    for (i = 1; i <= 2; i++) {
        float *o = NULL;
        n = npy_build(buf, sizeof buf, i, "{\"descr\": \"<f4\", \"fortran_order\": False, \"shape\": (2,3)}      \n", 6);
        CHECK(irmae_npy_parse(&o, &rows, &cols, buf, n) == 0 && rows == 2 && cols == 3 && o && o[5] == 5.0f,
              "npy version %d.0 with double quotes: %s", i, irmae_error_detail());
        irmae_free_buffer(o);
    }
    /* files numpy.save wrote (committed): (arange(24).reshape(6, 4) - 10) / 7 and linspace(-1, 1, 5), float32 */
    if (irmae_npy_load(&back, &rows, &cols, "tests/data/codes.npy") == 0) {
        int wrong = 0;
        for (i = 0; i < 24; i++) { /* assigned, so rounded to float where FLT_EVAL_METHOD > 0 (s390x) */
            float want = (float)(i - 10) / 7.0f;
            wrong += back[i] != want;
        }
        CHECK(rows == 6 && cols == 4 && wrong == 0, "npy: numpy's 6 x 4 file reads as %d x %d, %d values differ", rows, cols, wrong);
    } else CHECK(0, "npy: numpy's tests/data/codes.npy: %s", irmae_error_detail());
    irmae_free_buffer(back); back = NULL;
    CHECK(irmae_npy_load(&back, &rows, &cols, "tests/data/vec.npy") == 0 && rows == 5 && cols == 1 &&
          back[0] == -1.0f && back[2] == 0.0f && back[4] == 1.0f, "npy: numpy's 1-D file: %s", irmae_error_detail());
    irmae_free_buffer(back); back = NULL;
    CHECK(irmae_npy_write(path, z, 0, 4) == IRMAE_ERR_ARG && irmae_npy_parse(NULL, &rows, &cols, buf, n) == IRMAE_ERR_ARG,
          "npy: bad arguments");
    CHECK(irmae_npy_load(&back, &rows, &cols, tmp_name("none.npy")) == IRMAE_ERR_IO && !back, "npy: missing file");
    irmae_dataset_free(&ds);
    irmae_model_free(&m);
}

/* ---- safetensors import ------------------------------------------------------ */

/* The exported header of a file as text (malloc'd), and its data after it. */
static char *st_header(const unsigned char *f, size_t size, size_t *hlen)
{
    char *h;
    *hlen = (size_t)rd64(f);
    if (*hlen > size - 8) return NULL;
    h = (char *)malloc(*hlen + 1);
    if (!h) return NULL;
    memcpy(h, f + 8, *hlen);
    h[*hlen] = 0;
    return h;
}

/* A safetensors file: header text h (padded to a multiple of 8 as exported), then data[0..dlen). */
static unsigned char *st_make(const char *h, const unsigned char *data, size_t dlen, size_t *size)
{
    size_t hl = strlen(h), pad = (8 - hl % 8) % 8, k;
    unsigned char *f = (unsigned char *)malloc(8 + hl + pad + dlen);
    if (!f) return NULL;
    for (k = 0; k < 8; k++) f[k] = (unsigned char)(((uint64_t)(hl + pad) >> (8 * k)) & 0xFF);
    memcpy(f + 8, h, hl);
    memset(f + 8 + hl, ' ', pad);
    memcpy(f + 8 + hl + pad, data, dlen);
    *size = 8 + hl + pad + dlen;
    return f;
}

/* replaces the first occurrence of a in s by b (s has room: a fresh malloc'd copy is returned) */
static char *str_replace1(const char *s, const char *a, const char *b)
{
    const char *p = strstr(s, a);
    size_t la = strlen(a), lb = strlen(b), ls = strlen(s);
    char *r;
    if (!p) return NULL;
    r = (char *)malloc(ls - la + lb + 1);
    if (!r) return NULL;
    memcpy(r, s, (size_t)(p - s));
    memcpy(r + (p - s), b, lb);
    memcpy(r + (p - s) + lb, p + la, ls - (size_t)(p - s) - la + 1);
    return r;
}

/* irmae_import_safetensors: export -> import into a differently initialised
   model gives the same parameters bit for bit (Adam fresh); the stored
   configuration reads back; F16 / BF16 tensors convert within their
   rounding; every prefix and each malformed file is a named error that
   leaves the model untouched. */
static void test_import(void)
{
    irmae_config cfg = tiny_cfg(IRMAE_KIND_AE), back;
    irmae_model a, b;
    irmae_train_state ts;
    irmae_rng r = irmae_rng_seed(99);
    const char *st = tmp_name("imp.safetensors");
    unsigned char *file = NULL, *mod = NULL;
    char *h = NULL;
    size_t size, hlen, msize, k;
    int rc, bad = 0, i;
    float *keep;
    memset(&b, 0, sizeof b);
    if (trained_model(&a, &ts, &cfg, 61, 3)) { CHECK(0, "import: setup %s", irmae_error_detail()); return; }
    CHECK(irmae_export_safetensors(st, &a) == 0, "import: export");
    CHECK(irmae_safetensors_read_config(&back, st) == 0 && cfg_equal(&back, &a.cfg), "import: the stored configuration reads back: %s",
          irmae_error_detail());
    CHECK(irmae_model_init(&b, &back, &r) == 0, "import: init from the stored configuration");
    CHECK(memcmp(a.params, b.params, a.n_params * 4) != 0, "import: the fresh model differs before the import (control)");
    b.step = 5;
    CHECK(irmae_import_safetensors(&b, st) == 0, "import: %s", irmae_error_detail());
    CHECK(memcmp(a.params, b.params, a.n_params * 4) == 0 && b.step == 0, "import: parameters equal to the exported model's, step 0");
    for (k = 0; k < b.n_params && b.adam_m[k] == 0.0f && b.adam_v[k] == 0.0f; k++) {}
    CHECK(k == b.n_params, "import: Adam's moments are zero");
    keep = (float *)malloc(b.n_params * 4);
    file = read_bytes(st, &size);
    h = file ? st_header(file, size, &hlen) : NULL;
    if (!keep || !file || !h) { CHECK(0, "import: reading back %s", st); goto done; }
    memcpy(keep, b.params, b.n_params * 4);
    /* every prefix */
    for (k = 0; k < size; k += k < 64 ? 1 : 97) {
        rc = irmae_import_safetensors_mem(&b, file, k);
        if (!(rc == IRMAE_ERR_TRUNCATED || rc == IRMAE_ERR_FORMAT)) bad++;
    }
    CHECK(bad == 0, "import: %d prefixes are not TRUNCATED / FORMAT", bad);
    /* malformed headers: each edit of the exported header, and its named error */
    {
        static const struct { const char *from, *to; int want; const char *what; } ed[] = {
            { "\"encoder.0.weight\":{\"dtype\":\"F32\"", "\"encoder.0.weight\":{\"dtype\":\"I32\"", IRMAE_ERR_UNSUPPORTED, "dtype I32" },
            { "\"encoder.0.weight\":{\"dtype\":\"F32\",\"shape\":[4,1,4,4]", "\"encoder.0.weight\":{\"dtype\":\"F32\",\"shape\":[4,1,2,8]", IRMAE_ERR_MISMATCH, "wrong shape" },
            { "\"encoder.0.weight\":{\"dtype\":\"F32\",\"shape\":[4,1,4,4]", "\"encoder.0.weight\":{\"dtype\":\"F32\",\"shape\":[4,1,4,2]", IRMAE_ERR_FORMAT, "bytes do not fit the shape" },
            { "\"encoder.0.bias\"", "\"encoder.9.bias\"", IRMAE_ERR_MISMATCH, "extra tensor" },
            { "\"data_offsets\":[0,", "\"data_offsets\":[4,", IRMAE_ERR_FORMAT, "overlapping offsets" },
            { "\"__metadata__\"", "\"__metadata__\" x", IRMAE_ERR_FORMAT, "not JSON" },
            { "\"dtype\":\"F32\"", "\"dtype\":\"F32\",\"dtype\":\"F32\"", IRMAE_ERR_FORMAT, "a repeated field" },
        };
        for (i = 0; i < (int)(sizeof ed / sizeof ed[0]); i++) {
            char *h2 = str_replace1(h, ed[i].from, ed[i].to);
            if (!h2) { CHECK(0, "import: edit '%s' found nothing", ed[i].what); continue; }
            mod = st_make(h2, file + 8 + hlen, size - 8 - hlen, &msize);
            rc = mod ? irmae_import_safetensors_mem(&b, mod, msize) : -99;
            CHECK(rc == ed[i].want && memcmp(keep, b.params, b.n_params * 4) == 0, "import %s: rc %d (%s), want %d, model untouched",
                  ed[i].what, rc, irmae_error_detail(), ed[i].want);
            free(h2); free(mod); mod = NULL;
        }
    }
    /* a missing tensor: the file without its last tensor (collapsed.weight kept) */
    {
        char *p = strstr(h, ",\"decoder.5.bias\""), *h2 = str_replace1(h, "{", "{");
        if (p && h2) {
            char *q = strstr(h2 + (p - h) + 1, "}");
            memmove(h2 + (p - h), q + 1, strlen(q + 1) + 1);
            mod = st_make(h2, file + 8 + hlen, size - 8 - hlen, &msize);
            rc = mod ? irmae_import_safetensors_mem(&b, mod, msize) : -99;
            /* the bytes of decoder.5.bias are now a hole in the data */
            CHECK(rc == IRMAE_ERR_FORMAT && strstr(irmae_error_detail(), "tile"), "import: a hole is refused: %s", irmae_error_detail());
            free(mod); mod = NULL;
        } else CHECK(0, "import: no decoder.5.bias in the header");
        free(h2);
    }
    /* a missing tensor: weights of l = 2 into a model with l = 3 (maps.2.weight absent) */
    {
        irmae_config c3 = cfg;
        irmae_model m3;
        c3.l = 3;
        if (irmae_model_init(&m3, &c3, &r) == 0) {
            rc = irmae_import_safetensors(&m3, st);
            CHECK(rc == IRMAE_ERR_MISMATCH && strstr(irmae_error_detail(), "missing tensor 'maps.2.weight'"),
                  "import: a missing tensor is named: %s", irmae_error_detail());
            irmae_model_free(&m3);
        } else CHECK(0, "import: init l = 3");
    }
    /* the header length past the end */
    memcpy(keep, b.params, b.n_params * 4);
    file[5] = 0x7F;
    CHECK(irmae_import_safetensors_mem(&b, file, size) == IRMAE_ERR_LIMIT, "import: a header length of 2^46 is refused: %s", irmae_error_detail());
    file[5] = 0;
    /* a NaN weight */
    {
        size_t at = 8 + hlen + 8;   /* a value of the first tensor */
        unsigned char s0[4];
        memcpy(s0, file + at, 4);
        file[at] = 0; file[at + 1] = 0; file[at + 2] = 0xC0; file[at + 3] = 0x7F;
        CHECK(irmae_import_safetensors_mem(&b, file, size) == IRMAE_ERR_NUMERIC && memcmp(keep, b.params, b.n_params * 4) == 0,
              "import: a NaN is refused: %s", irmae_error_detail());
        memcpy(file + at, s0, 4);
    }
    CHECK(irmae_import_safetensors_mem(&b, file, size) == 0 && memcmp(a.params, b.params, a.n_params * 4) == 0,
          "import: the restored file imports again");
done:
    free(keep); free(file); free(h);
    irmae_model_free(&a);
    irmae_model_free(&b);
}

/* Reads n little-endian floats (as write_floats writes them and numpy's '<f4'), on any host */
static float *read_floats_n(const char *path, size_t n)
{
    size_t got, i;
    unsigned char *b = read_bytes(path, &got);
    float *f = (float *)malloc(n * sizeof(float) + 1);
    if (!b || !f || got != 4 * n) { free(b); free(f); return NULL; }
    for (i = 0; i < n; i++) { uint32_t u = rd32(b + 4 * i); memcpy(&f[i], &u, 4); }
    free(b);
    return f;
}

/* max |a - b| / max |b| */
static double rel_err(const float *a, const float *b, size_t n)
{
    double m = 1e-30, e = 0.0;
    size_t i;
    for (i = 0; i < n; i++) {
        if (fabs((double)b[i]) > m) m = fabs((double)b[i]);
        if (fabs((double)a[i] - b[i]) > e || a[i] != a[i]) e = a[i] != a[i] ? HUGE_VAL : fabs((double)a[i] - b[i]);
    }
    return e / m;
}

/* The PyTorch side trained each exported model 5 steps and saved it F32 /
   F16 / BF16 with a plain writer (and re-saved the untrained weights):
   irmae.h builds each model from the file's own metadata, imports it and
   must reproduce PyTorch's codes and outputs to 1e-5; the re-saved weights
   import byte-identical; F16 / BF16 weights lie within their format's
   rounding of the F32 ones. */
static void check_imports(void)
{
    static const char *dt[3] = { "F32", "F16", "BF16" };
    static const double rounding[3] = { 0.0, 1.0 / 2048, 1.0 / 256 };   /* half an ulp, relative */
    int c, d;
    for (c = 0; c < g_nimp; c++) {
        import_case *ic = &g_imp[c];
        char path[760];
        irmae_config cfg;
        irmae_model m;
        irmae_rng r = irmae_rng_seed(5);
        float *w32 = NULL, *x = NULL;
        size_t i, per = 0;
        if (!g_torch_jobs[ic->job].ran_ok) { free(ic->orig); continue; }   /* no torch: skipped and said so */
        snprintf(path, sizeof path, "%s.rt.safetensors", ic->prefix);
        remember(path);
        if (irmae_safetensors_read_config(&cfg, path) == 0 && irmae_model_init(&m, &cfg, &r) == 0) {
            CHECK(irmae_import_safetensors(&m, path) == 0 && m.n_params == ic->n_params &&
                  memcmp(m.params, ic->orig, m.n_params * sizeof(float)) == 0,
                  "%s: irmae -> PyTorch -> irmae leaves the weights byte-identical (%s)", ic->name, irmae_error_detail());
            irmae_model_free(&m);
        } else CHECK(0, "%s: %s: %s", ic->name, path, irmae_error_detail());
        for (d = 0; d < 3; d++) {
            float *z = NULL, *y = NULL, *zt = NULL, *yt = NULL;
            snprintf(path, sizeof path, "%s.%s.safetensors", ic->prefix, dt[d]);
            remember(path);
            if (irmae_safetensors_read_config(&cfg, path) || irmae_model_init(&m, &cfg, &r)) {
                CHECK(0, "%s %s: the stored configuration: %s", ic->name, dt[d], irmae_error_detail());
                continue;
            }
            per = (size_t)cfg.in_c * cfg.in_h * cfg.in_w;
            if (!x) x = read_floats_n(ic->xs, (size_t)ic->count * per);
            CHECK(irmae_import_safetensors(&m, path) == 0, "%s %s: import: %s", ic->name, dt[d], irmae_error_detail());
            z = (float *)malloc((size_t)ic->count * cfg.n * sizeof(float));
            y = (float *)malloc((size_t)ic->count * per * sizeof(float));
            snprintf(path, sizeof path, "%s.%s.z", ic->prefix, dt[d]); remember(path);
            zt = read_floats_n(path, (size_t)ic->count * cfg.n);
            snprintf(path, sizeof path, "%s.%s.y", ic->prefix, dt[d]); remember(path);
            yt = read_floats_n(path, (size_t)ic->count * per);
            if (x && z && y && zt && yt && irmae_model_encode(&m, z, x, ic->count) == 0 && irmae_model_decode(&m, y, z, ic->count) == 0) {
                double ez = rel_err(z, zt, (size_t)ic->count * cfg.n), ey = rel_err(y, yt, (size_t)ic->count * per);
                CHECK(ez <= 1e-5 && ey <= 1e-5, "%s: PyTorch-trained %s weights: codes %.2g, outputs %.2g from PyTorch's (tolerance 1e-5)",
                      ic->name, dt[d], ez, ey);
                printf("%s: PyTorch-trained weights saved %s, imported: codes %.2g, outputs %.2g from PyTorch's\n", ic->name, dt[d], ez, ey);
            } else CHECK(0, "%s %s: comparing with PyTorch's outputs", ic->name, dt[d]);
            if (d == 0) {
                w32 = (float *)malloc(m.n_params * sizeof(float));
                if (w32) memcpy(w32, m.params, m.n_params * sizeof(float));
                CHECK(w32 && memcmp(w32, ic->orig, m.n_params * sizeof(float)) != 0, "%s: PyTorch's training changed the weights", ic->name);
            } else if (w32) {
                size_t off = 0;
                for (i = 0; i < m.n_params; i++)
                    if (fabs((double)m.params[i] - w32[i]) > rounding[d] * fabs((double)w32[i]) + 1e-7 * (d == 1)) off++;
                CHECK(off == 0, "%s: %lu of %lu %s weights are off the F32 ones by more than their rounding", ic->name,
                      (unsigned long)off, (unsigned long)m.n_params, dt[d]);
            }
            free(z); free(y); free(zt); free(yt);
            irmae_model_free(&m);
        }
        free(w32); free(x); free(ic->orig);
    }
}

int main(int argc, char **argv)
{
    const char *env = getenv("IRMAE_PYTHON"), *dir = getenv("IRMAE_TMPDIR");
    char cmd[1400];
    irmae_config c;
    int i;
    if (argc == 6 && strcmp(argv[1], "--resume") == 0)
        return resume_child(atoi(argv[2]), argv[3], atoi(argv[4]), argv[5]);
    snprintf(g_argv0, sizeof g_argv0, "%s", argv[0]);
    snprintf(g_tmp, sizeof g_tmp, "%s/irmae_ckpt_%ld_", dir && *dir ? dir : "/tmp", TC_PID());
    /* --write-xendian DIR: write the byte-order reference files into DIR;
       --xendian DIR: only check reference files from DIR (another host's) */
    if (argc == 3 && strcmp(argv[1], "--write-xendian") == 0) return xe_write(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--xendian") == 0) {
        test_xendian(argv[2]);
        for (i = 0; i < g_nfiles; i++) remove(g_files[i]);
        printf("test_ckpt: %d passed, %d failed\n", passed, failed);
        return failed ? 1 : 0;
    }
    snprintf(g_python, sizeof g_python, "%s", env && *env ? env : "/usr/bin/python3");
    snprintf(cmd, sizeof cmd, "\"%s\" -c \"import numpy\" > /dev/null 2>&1", g_python);
    g_have_numpy = system(cmd) == 0;
    if (!g_have_numpy) printf("SKIP: %s cannot import numpy; the Python cross-checks are not run\n", g_python);

    test_xendian("tests/data");
    c = micro_cfg();
    test_roundtrip("micro", &c, 3);
    c = tiny_cfg(IRMAE_KIND_AE);
    test_roundtrip("tiny IRMAE", &c, 3);
    c = tiny_cfg(IRMAE_KIND_VAE);
    test_roundtrip("tiny VAE", &c, 3);
    c = irmae_preset(IRMAE_PRESET_SHAPES);
    c.l = 2; c.max_batch = 2;
    test_roundtrip("shapes l=2", &c, 1);
    test_mismatch();
    c = micro_cfg();
    test_truncation("micro", &c);
    c = tiny_cfg(IRMAE_KIND_AE);
    test_truncation("tiny", &c);
    c = micro_cfg();
    test_bitflips("micro", &c, 6000);
    c = tiny_cfg(IRMAE_KIND_VAE);
    test_bitflips("tiny VAE", &c, 3000);
    test_bad_headers();
    test_resume(IRMAE_KIND_AE);
    test_resume(IRMAE_KIND_VAE);
    c = tiny_cfg(IRMAE_KIND_AE);
    test_safetensors("tiny", 0, &c, 5);
    c = tiny_cfg(IRMAE_KIND_VAE);
    test_safetensors("tiny VAE", 1, &c, 5);
    c = micro_cfg();
    c.l = 0;
    test_safetensors("micro l=0", 2, &c, 3);
    c = irmae_preset(IRMAE_PRESET_SHAPES);
    c.l = 2; c.max_batch = 4;
    test_safetensors("shapes l=2", 3, &c, 4);
    c = irmae_preset(IRMAE_PRESET_MNIST);
    c.l = 8; c.max_batch = 4;
    test_safetensors("mnist l=8", 4, &c, 4);
    c = upsample_cfg();
    test_safetensors("upsampling decoder", 5, &c, 4);
    test_npy();
    test_import();
    py_run("safetensors_check.py", g_st_jobs, g_nst, "st_jobs.txt");
    py_run("torch_check.py", g_torch_jobs, g_ntorch, "torch_jobs.txt");
    check_imports();
    write_corpus();
    for (i = 0; i < g_nfiles; i++) {
        char t[740];
        size_t len = strlen(g_files[i]);
        remove(g_files[i]);
        if (len < 720) { memcpy(t, g_files[i], len); memcpy(t + len, ".tmp", 5); remove(t); }
    }
    printf("test_ckpt: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
