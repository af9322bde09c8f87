/* Layers, networks and models: finite-difference gradient checks of every
   layer type and of the IRMAE, AE (+L1/L2) and VAE losses with respect to
   every parameter tensor and the input; preset parameter counts; collapse
   equivalence; Adam against a hand-computed step; the shapes generator;
   thread-count independence; bad arguments. */
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"
#include "paths.h"
#include <stdio.h>
#include <math.h>
#include <time.h>

static int passed = 0, failed = 0;
#define CHECK(cond, ...) do { if (cond) passed++; else { failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

static void fill(float *x, size_t n, irmae_rng *r, float scale)
{
    size_t i;
    for (i = 0; i < n; i++) x[i] = (irmae_rng_uniform(r) * 2.0f - 1.0f) * scale;
}

/* ---- layer-level checks: objective L = sum(out * R) in double ---------- */

typedef void (*act_fwd)(float *, const float *, size_t);
typedef void (*act_bwd)(float *, const float *, const float *, size_t);

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    size_t i;
    for (i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static void check_activation(const char *name, act_fwd f, act_bwd b, irmae_rng *r)
{
    enum { N = 257 };
    float x[N], y[N], R[N], g[N], xp[N], yp[N];
    int i, bad = 0;
    fill(x, N, r, 3.0f);
    fill(R, N, r, 1.0f);
    for (i = 0; i < N; i++) if (fabsf(x[i]) < 1e-2f) x[i] = 0.5f; /* keep ReLU away from its kink */
    f(y, x, N);
    b(g, R, y, N);
    for (i = 0; i < N; i++) {
        /* central difference on one input: d/dx_i sum(R * f(x)) = R_i f'(x_i) */
        double h = 1e-3, fp, fm;
        memcpy(xp, x, sizeof x);
        xp[i] = x[i] + (float)h; f(yp, xp, N); fp = (double)R[i] * yp[i];
        xp[i] = x[i] - (float)h; f(yp, xp, N); fm = (double)R[i] * yp[i];
        /* float32 outputs of size <= 1: rounding 6e-8 / 2h = 3e-5, plus curvature h^2 */
        if (fabs((fp - fm) / (2 * h) - g[i]) > 1e-4 + 1e-3 * fabs(g[i])) bad++;
    }
    CHECK(bad == 0, "%s backward vs finite differences: %d of %d off", name, bad, N);
    /* in-place use is allowed */
    memcpy(xp, x, sizeof x);
    f(xp, xp, N);
    CHECK(memcmp(xp, y, sizeof y) == 0, "%s forward in place differs", name);
}

static void check_linear(int batch, int in_f, int out_f, int bias, irmae_rng *r)
{
    size_t nx = (size_t)batch * in_f, nw = (size_t)out_f * in_f, ny = (size_t)batch * out_f, i;
    float *x = (float *)malloc(nx * 4), *w = (float *)malloc(nw * 4), *b = (float *)malloc(out_f * 4);
    float *y = (float *)malloc(ny * 4), *R = (float *)malloc(ny * 4), *dx = (float *)malloc(nx * 4);
    float *dw = (float *)calloc(nw, 4), *db = (float *)calloc(out_f, 4);
    int bad = 0;
    fill(x, nx, r, 1); fill(w, nw, r, 1); fill(b, out_f, r, 1); fill(R, ny, r, 1);
    irmae_linear_forward(y, x, w, bias ? b : NULL, batch, in_f, out_f);
    irmae_linear_backward(dx, dw, bias ? db : NULL, R, x, w, batch, in_f, out_f);
    /* L is linear in each argument, so the central difference is exact up to rounding */
    {
        float *params[3]; float *grads[3]; size_t sizes[3]; int t;
        params[0] = x; grads[0] = dx; sizes[0] = nx;
        params[1] = w; grads[1] = dw; sizes[1] = nw;
        params[2] = b; grads[2] = db; sizes[2] = bias ? (size_t)out_f : 0;
        for (t = 0; t < 3; t++)
            for (i = 0; i < sizes[t]; i += 1 + sizes[t] / 40) {
                float keep = params[t][i];
                double fp, fm, fd, h = 0.25;
                params[t][i] = keep + (float)h;
                irmae_linear_forward(y, x, w, bias ? b : NULL, batch, in_f, out_f); fp = dot(y, R, ny);
                params[t][i] = keep - (float)h;
                irmae_linear_forward(y, x, w, bias ? b : NULL, batch, in_f, out_f); fm = dot(y, R, ny);
                params[t][i] = keep;
                fd = (fp - fm) / (2 * h);
                /* rounding of ny outputs ~ |y| eps each, summed: ~ ny * in_f * 6e-8 */
                if (fabs(fd - grads[t][i]) > 1e-6 * (double)ny * in_f + 1e-4 * fabs(fd)) bad++;
            }
    }
    CHECK(bad == 0, "linear %dx%d->%d bias %d: %d gradient entries off", batch, in_f, out_f, bias, bad);
    /* accumulation: a second backward doubles dw */
    {
        float *dw2 = (float *)malloc(nw * 4);
        memcpy(dw2, dw, nw * 4);
        irmae_linear_backward(NULL, dw, NULL, R, x, w, batch, in_f, out_f);
        for (i = 0, bad = 0; i < nw; i++) if (fabsf(dw[i] - 2 * dw2[i]) > 1e-5f * (1 + fabsf(dw2[i]))) bad++;
        CHECK(bad == 0, "linear backward does not accumulate into dw");
        free(dw2);
    }
    free(x); free(w); free(b); free(y); free(R); free(dx); free(dw); free(db);
}

/* ---- model-level finite differences ----------------------------------- */

/* loss of the model at the current parameters with the VAE noise fixed */
static double model_loss_fixed(irmae_model *m, const float *x, int B, irmae_rng noise)
{
    m->rng = noise;
    if (irmae_model_forward_backward(m, NULL, NULL, x, B)) return NAN;
    return m->last_loss; /* the double-precision sum, not the rounded float */
}

/* Compares the analytic derivative an of the loss in the entry *p with
   central differences at three steps. The loss is computed in float32, so
   its value carries rounding noise of a few 1e-8 relative (measured here:
   ~3e-8 absolute on a loss of 0.7): the difference quotient at step h has
   noise ~ 2e-7 |loss| / h. A ReLU kink within h of the point spoils that
   step; smaller steps avoid it. The entry passes when one step agrees within
   the noise, 1% of |an|, and 2e-5. A wrong gradient (a missing term, a
   transposed index) fails at every step. */
static int compare_entry(irmae_model *m, const float *x, int B, irmae_rng noise, float *p, double an)
{
    static const double steps[3] = {1e-2, 2.5e-3, 6e-4};
    float keep = *p;
    double base = fabs(model_loss_fixed(m, x, B, noise));
    int t;
    for (t = 0; t < 3; t++) {
        double h = steps[t], fp, fm, fd;
        *p = keep + (float)h; fp = model_loss_fixed(m, x, B, noise);
        *p = keep - (float)h; fm = model_loss_fixed(m, x, B, noise);
        *p = keep;
        fd = (fp - fm) / (2 * h);
        if (fabs(fd - an) <= 2e-5 + 1e-2 * fabs(an) + 2e-7 * base / h) return 1;
    }
    return 0;
}

/* Checks d loss / d params (sampled entries of every parameter tensor) and
   d loss / d x against central differences. */
static void check_model_grads(const char *name, const irmae_config *cfg, int B, unsigned seed)
{
    irmae_rng r = irmae_rng_seed(seed), noise;
    irmae_model m;
    size_t nx, i;
    float *x, *dx, *g;
    int L, bad = 0, checked = 0, rc;
    float loss;
    rc = irmae_model_init(&m, cfg, &r);
    CHECK(rc == 0, "%s: init failed: %s", name, irmae_error_detail());
    if (rc) return;
    nx = (size_t)B * cfg->in_c * cfg->in_h * cfg->in_w;
    x = (float *)malloc(nx * 4); dx = (float *)malloc(nx * 4);
    g = (float *)malloc(m.n_params * 4);
    for (i = 0; i < nx; i++) x[i] = irmae_rng_uniform(&r);
    /* move the weights off PyTorch's small init so that every term matters */
    for (i = 0; i < m.n_params; i++) m.params[i] *= 2.0f;
    noise = m.rng;
    m.rng = noise;
    rc = irmae_model_forward_backward(&m, &loss, dx, x, B);
    CHECK(rc == 0 && isfinite(loss), "%s: forward_backward rc %d loss %g", name, rc, loss);
    memcpy(g, m.grads, m.n_params * 4);

    /* every parameter tensor: each layer's weight and bias, and each map */
    for (L = -1; L < m.n_layers + m.cfg.l; L++) {
        size_t off, cnt, step;
        if (L < 0) continue;
        if (L < m.n_layers) {
            int part;
            for (part = 0; part < 2; part++) {
                off = part ? m.layers[L].b_off : m.layers[L].w_off;
                cnt = part ? m.layers[L].n_b : m.layers[L].n_w;
                if (!cnt) continue;
                step = cnt / 7 + 1;
                for (i = 0; i < cnt; i += step) {
                    double an = g[off + i];
                    int v = compare_entry(&m, x, B, noise, m.params + off + i, an);
                    checked++;
                    if (!v) {
                        bad++;
                        printf("  %s layer %d %s[%lu]: analytic %.6g\n", name, L,
                               part ? "bias" : "weight", (unsigned long)i, an);
                    }
                }
            }
        } else {
            int j = L - m.n_layers;
            off = m.maps_off + (size_t)j * m.cfg.n * m.cfg.n;
            cnt = (size_t)m.cfg.n * m.cfg.n;
            for (i = 0; i < cnt; i += cnt / 6 + 1) {
                double an = g[off + i];
                int v = compare_entry(&m, x, B, noise, m.params + off + i, an);
                checked++;
                if (!v) {
                    bad++;
                    printf("  %s map %d [%lu]: analytic %.6g\n", name, j + 1, (unsigned long)i, an);
                }
            }
        }
    }
    /* the input */
    for (i = 0; i < nx; i += nx / 11 + 1) {
        int v = compare_entry(&m, x, B, noise, x + i, dx[i]);
        checked++;
        if (!v) {
            bad++;
            printf("  %s input [%lu]: analytic %.6g\n", name, (unsigned long)i, dx[i]);
        }
    }
    CHECK(bad == 0, "%s: %d of %d gradient entries disagree with finite differences", name, bad, checked);
    printf("  %s: %d gradient entries checked against finite differences\n", name, checked);
    free(x); free(dx); free(g);
    irmae_model_free(&m);
}

/* irmae_model_features_backward: for L = sum(de * features(x)), the encoder
   gradients match central differences, the decoder and the maps get none. */
static double feat_dot(irmae_model *m, const float *x, int B, const float *de, float *e)
{
    size_t i;
    double s = 0.0;
    if (irmae_model_features(m, e, x, B)) return NAN;
    for (i = 0; i < (size_t)B * m->cfg.n; i++) s += (double)de[i] * e[i];
    return s;
}

static void check_features_backward(const char *name, const irmae_config *cfg, int B, unsigned seed)
{
    irmae_rng r = irmae_rng_seed(seed);
    irmae_model m;
    size_t nx, ne, i, off, enc_end;
    float *x, *de, *e, *g;
    int L, bad = 0, checked = 0, nonzero_dec = 0, rc;
    rc = irmae_model_init(&m, cfg, &r);
    CHECK(rc == 0, "%s: init failed: %s", name, irmae_error_detail());
    if (rc) return;
    nx = (size_t)B * cfg->in_c * cfg->in_h * cfg->in_w;
    ne = (size_t)B * cfg->n;
    x = (float *)malloc(nx * 4); de = (float *)malloc(ne * 4); e = (float *)malloc(ne * 4);
    g = (float *)malloc(m.n_params * 4);
    for (i = 0; i < nx; i++) x[i] = irmae_rng_uniform(&r);
    for (i = 0; i < ne; i++) de[i] = irmae_rng_uniform(&r) * 2.0f - 1.0f;
    for (i = 0; i < m.n_params; i++) m.params[i] *= 2.0f;
    for (i = 0; i < m.n_params; i++) m.grads[i] = 1.0f; /* must be overwritten, not added to */
    rc = irmae_model_features_backward(&m, x, de, B);
    CHECK(rc == 0, "%s: features_backward rc %d: %s", name, rc, irmae_error_detail());
    memcpy(g, m.grads, m.n_params * 4);
    enc_end = m.maps_off; /* encoder parameters come first, then the maps, then the decoder */
    for (L = 0; L < m.n_enc; L++) {
        int part;
        for (part = 0; part < 2; part++) {
            size_t cnt = part ? m.layers[L].n_b : m.layers[L].n_w, step;
            off = part ? m.layers[L].b_off : m.layers[L].w_off;
            if (!cnt) continue;
            CHECK(off + cnt <= enc_end, "%s: encoder layer %d lies before the decoder", name, L);
            step = cnt / 9 + 1;
            for (i = 0; i < cnt; i += step) {
                float *p = m.params + off + i, keep = *p;
                double best = 1e30, an = g[off + i], h;
                int k;
                for (k = 0; k < 3; k++) { /* three step sizes: step past ReLU kinks */
                    double fp, fm, num, err;
                    h = 1e-2 / (double)(1 << (2 * k));
                    *p = keep + (float)h; fp = feat_dot(&m, x, B, de, e);
                    *p = keep - (float)h; fm = feat_dot(&m, x, B, de, e);
                    *p = keep;
                    num = (fp - fm) / (((double)(keep + (float)h)) - ((double)(keep - (float)h)));
                    err = fabs(num - an) / (fabs(num) + fabs(an) + 1e-2);
                    if (err < best) best = err;
                }
                checked++;
                if (best > 2e-2) {
                    bad++;
                    printf("  %s features_backward layer %d %s[%lu]: analytic %.6g, rel err %.3g\n", name, L,
                           part ? "bias" : "weight", (unsigned long)i, an, best);
                }
            }
        }
    }
    for (i = enc_end; i < m.n_params; i++) nonzero_dec += g[i] != 0.0f;
    CHECK(bad == 0 && checked > 0, "%s: features_backward: %d of %d encoder gradient entries disagree", name, bad, checked);
    CHECK(nonzero_dec == 0, "%s: features_backward left %d non-zero decoder/map gradients", name, nonzero_dec);
    printf("  %s: features_backward, %d encoder gradient entries checked\n", name, checked);
    CHECK(irmae_model_features_backward(&m, x, de, m.cfg.max_batch + 1) == IRMAE_ERR_ARG, "%s: batch > max_batch", name);
    CHECK(irmae_model_features_backward(&m, x, NULL, B) == IRMAE_ERR_ARG, "%s: NULL gradient", name);
    free(x); free(de); free(e); free(g);
    irmae_model_free(&m);
}

/* a small conv/convT network with odd sizes, strides and paddings */
static irmae_config small_conv_config(int kind, int l)
{
    irmae_config c = irmae_preset(IRMAE_PRESET_SHAPES);
    c.in_c = 2; c.in_h = 7; c.in_w = 7;
    c.n = 5; c.l = l; c.kind = kind; c.max_batch = 4;
    c.n_enc = 0; c.n_dec = 0;
    c.enc[c.n_enc++] = irmae_layer_conv(3, 3, 2, 1);    /* 7 -> 4 */
    c.enc[c.n_enc++] = irmae_layer_act(IRMAE_LAYER_RELU);
    c.enc[c.n_enc++] = irmae_layer_conv(4, 2, 1, 0);    /* 4 -> 3 */
    c.enc[c.n_enc++] = irmae_layer_act(IRMAE_LAYER_TANH);
    c.enc[c.n_enc++] = irmae_layer_flatten();
    c.enc[c.n_enc++] = irmae_layer_linear(IRMAE_CODE, 1);
    c.dec[c.n_dec++] = irmae_layer_linear(3 * 3 * 3, 0);
    c.dec[c.n_dec++] = irmae_layer_act(IRMAE_LAYER_SIGMOID);
    c.dec[c.n_dec++] = irmae_layer_reshape(3, 3, 3);
    c.dec[c.n_dec++] = irmae_layer_convt(4, 3, 2, 1);   /* 3 -> 5 */
    c.dec[c.n_dec++] = irmae_layer_act(IRMAE_LAYER_RELU);
    c.dec[c.n_dec++] = irmae_layer_convt(2, 3, 1, 0);   /* 5 -> 7 */
    return c;
}

/* a decoder that upsamples (nearest, by 2 and by 3) and convolves at stride 1,
   the layer added through the layer table */
static irmae_config small_upsample_config(int l)
{
    irmae_config c = small_conv_config(IRMAE_KIND_AE, l);
    c.in_c = 2; c.in_h = 6; c.in_w = 6; c.n = 4;
    c.n_enc = 0; c.n_dec = 0;
    c.enc[c.n_enc++] = irmae_layer_conv(3, 3, 2, 1);    /* 6 -> 3 */
    c.enc[c.n_enc++] = irmae_layer_act(IRMAE_LAYER_RELU);
    c.enc[c.n_enc++] = irmae_layer_flatten();
    c.enc[c.n_enc++] = irmae_layer_linear(IRMAE_CODE, 1);
    c.dec[c.n_dec++] = irmae_layer_linear(3 * 1 * 1, 1);
    c.dec[c.n_dec++] = irmae_layer_reshape(3, 1, 1);
    c.dec[c.n_dec++] = irmae_layer_upsample(3);         /* 1 -> 3 */
    c.dec[c.n_dec++] = irmae_layer_conv(4, 3, 1, 1);    /* 3 -> 3 */
    c.dec[c.n_dec++] = irmae_layer_act(IRMAE_LAYER_RELU);
    c.dec[c.n_dec++] = irmae_layer_upsample(2);         /* 3 -> 6 */
    c.dec[c.n_dec++] = irmae_layer_conv(2, 3, 1, 1);    /* 6 -> 6 */
    return c;
}

/* The upsampling layer against its definition: decoding a code through a
   model whose decoder is reshape + upsample(s) gives out[c][y][x] =
   z[c][y / s][x / s] exactly; its backward (features of a 1-layer encoder
   would not reach it, so through the whole model's dx) is checked by the
   gradient checks above. Bad scales and overflowing sizes are named errors. */
static void test_upsample(void)
{
    irmae_config c = irmae_preset(IRMAE_PRESET_SHAPES);
    irmae_model m;
    irmae_rng r = irmae_rng_seed(61);
    float z[2 * 12], y[2 * 3 * 8 * 8];
    int i, ch, yy, xx, bad = 0, s;
    c.in_c = 3; c.in_h = 8; c.in_w = 8; c.n = 12; c.l = 0; c.max_batch = 2; c.out_act = IRMAE_OUT_NONE;
    c.n_enc = c.n_dec = 0;
    c.enc[c.n_enc++] = irmae_layer_flatten();
    c.enc[c.n_enc++] = irmae_layer_linear(IRMAE_CODE, 0);
    c.dec[c.n_dec++] = irmae_layer_reshape(3, 2, 2);
    c.dec[c.n_dec++] = irmae_layer_upsample(4);
    CHECK(irmae_model_init(&m, &c, &r) == 0, "upsample model: %s", irmae_error_detail());
    CHECK(m.n_params == (size_t)12 * 192, "upsample has no parameters: %lu", (unsigned long)m.n_params);
    for (i = 0; i < 24; i++) z[i] = (float)i - 7.5f;
    CHECK(irmae_model_decode(&m, y, z, 2) == 0, "upsample decode");
    for (i = 0; i < 2; i++)
        for (ch = 0; ch < 3; ch++)
            for (yy = 0; yy < 8; yy++)
                for (xx = 0; xx < 8; xx++)
                    bad += y[((i * 3 + ch) * 8 + yy) * 8 + xx] != z[i * 12 + ch * 4 + (yy / 4) * 2 + xx / 4];
    CHECK(bad == 0, "upsample: %d pixels differ from z[c][y/s][x/s]", bad);
    irmae_model_free(&m);
    for (s = -1; s <= 65; s += 66) {
        c.dec[1] = irmae_layer_upsample(s);
        CHECK(irmae_model_init(&m, &c, &r) == IRMAE_ERR_ARG && strstr(irmae_error_detail(), "upsampling scale"),
              "upsample scale %d: %s", s, irmae_error_detail());
    }
    c.dec[1] = irmae_layer_upsample(3); /* 2 x 2 -> 6 x 6, not the 8 x 8 image */
    CHECK(irmae_model_init(&m, &c, &r) == IRMAE_ERR_SHAPE, "upsample to the wrong size: %s", irmae_error_detail());
    /* an unknown layer type is refused by name, never run as a copy */
    c.dec[1] = irmae_layer_upsample(4);
    c.dec[1].type = 99;
    CHECK(irmae_model_init(&m, &c, &r) == IRMAE_ERR_ARG && strstr(irmae_error_detail(), "unknown type 99"),
          "unknown layer type: %s", irmae_error_detail());
}

/* the shapes preset's layer types at a quarter of the size: conv-only code path */
static irmae_config small_allconv_config(int l)
{
    irmae_config c = irmae_preset(IRMAE_PRESET_SHAPES);
    c.in_c = 3; c.in_h = 8; c.in_w = 8; c.n = 6; c.l = l; c.max_batch = 3;
    c.n_enc = 0; c.n_dec = 0;
    c.enc[c.n_enc++] = irmae_layer_conv(4, 4, 2, 1);    /* 8 -> 4 */
    c.enc[c.n_enc++] = irmae_layer_act(IRMAE_LAYER_RELU);
    c.enc[c.n_enc++] = irmae_layer_conv(8, 4, 2, 1);    /* 4 -> 2 */
    c.enc[c.n_enc++] = irmae_layer_act(IRMAE_LAYER_RELU);
    c.enc[c.n_enc++] = irmae_layer_conv(IRMAE_CODE, 2, 1, 0);
    c.dec[c.n_dec++] = irmae_layer_convt(8, 2, 1, 0);
    c.dec[c.n_dec++] = irmae_layer_act(IRMAE_LAYER_RELU);
    c.dec[c.n_dec++] = irmae_layer_convt(4, 4, 2, 1);
    c.dec[c.n_dec++] = irmae_layer_act(IRMAE_LAYER_RELU);
    c.dec[c.n_dec++] = irmae_layer_convt(3, 4, 2, 1);
    return c;
}

static void test_presets(void)
{
    irmae_config c = irmae_preset(IRMAE_PRESET_SHAPES);
    CHECK(c.n == 32 && irmae_config_param_count(&c) == 1445859, "shapes l=0: %lu", (unsigned long)irmae_config_param_count(&c));
    c.l = 8;
    CHECK(irmae_config_param_count(&c) == 1454051, "shapes l=8: %lu", (unsigned long)irmae_config_param_count(&c));
    c = irmae_preset(IRMAE_PRESET_MNIST);
    CHECK(c.n == 128 && irmae_config_param_count(&c) == 2041057, "mnist l=0: %lu", (unsigned long)irmae_config_param_count(&c));
    c.l = 8;
    CHECK(irmae_config_param_count(&c) == 2172129, "mnist l=8: %lu", (unsigned long)irmae_config_param_count(&c));
    c = irmae_preset(IRMAE_PRESET_CELEBA64);
    /* conv 3->128->256->512->1024 (4,2,1), linear 16384->128, linear 128->65536,
       convT 1024->512->256->128 (4,2,1), convT 128->3 (1,1,0), all with bias */
    {
        size_t want = (128 * 3 * 16 + 128) + (256 * 128 * 16 + 256) + (512 * 256 * 16 + 512) +
                      (1024 * 512 * 16 + 1024) + (16384 * 128 + 128) + (128 * 65536 + 65536) +
                      (1024 * 512 * 16 + 512) + (512 * 256 * 16 + 256) + (256 * 128 * 16 + 128) + (128 * 3 + 3);
        CHECK(irmae_config_param_count(&c) == want, "celeba64: %lu want %lu",
              (unsigned long)irmae_config_param_count(&c), (unsigned long)want);
    }
    /* the VAE's encoder outputs 2n */
    c = irmae_preset(IRMAE_PRESET_MNIST);
    c.kind = IRMAE_KIND_VAE;
    CHECK(irmae_config_param_count(&c) == 2041057 + 1024 * 128 + 128, "mnist vae: %lu", (unsigned long)irmae_config_param_count(&c));
}

static void test_init_distribution(void)
{
    /* PyTorch default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); convT fan_in = out * k * k */
    irmae_rng r = irmae_rng_seed(3);
    irmae_config c = irmae_preset(IRMAE_PRESET_SHAPES);
    irmae_model m;
    int i;
    c.l = 2; c.max_batch = 2;
    CHECK(irmae_model_init(&m, &c, &r) == 0, "init shapes");
    for (i = 0; i < m.n_layers; i++) {
        const irmae_layer *L = &m.layers[i];
        double fan, bound, maxabs = 0, mean = 0;
        size_t j;
        if (!L->n_w) continue;
        fan = L->spec.type == IRMAE_LAYER_CONVT ? (double)L->out_c * L->spec.k * L->spec.k
                                                : (double)L->in_c * L->spec.k * L->spec.k;
        bound = 1.0 / sqrt(fan);
        for (j = 0; j < L->n_w; j++) {
            double v = m.params[L->w_off + j];
            if (fabs(v) > maxabs) maxabs = fabs(v);
            mean += v * v;
        }
        mean /= (double)L->n_w; /* E[v^2] = bound^2 / 3 */
        CHECK(maxabs <= bound && maxabs > 0.9 * bound, "layer %d: max |w| %g, bound %g", i, maxabs, bound);
        CHECK(fabs(mean / (bound * bound / 3.0) - 1.0) < 6.0 / sqrt((double)L->n_w) + 0.02,
              "layer %d: E[w^2] %g, want %g", i, mean, bound * bound / 3.0);
    }
    irmae_model_free(&m);
}

static void test_collapse(void)
{
    irmae_rng r = irmae_rng_seed(11);
    irmae_config c = irmae_preset(IRMAE_PRESET_SHAPES);
    irmae_model m;
    enum { N = 37 }; /* more than one batch chunk */
    float *x, *e, *z, *w;
    int i, j, k, bad = 0;
    c.l = 4; c.max_batch = 16;
    CHECK(irmae_model_init(&m, &c, &r) == 0, "init");
    x = (float *)malloc((size_t)N * 3 * 32 * 32 * 4);
    e = (float *)malloc(N * 32 * 4); z = (float *)malloc(N * 32 * 4); w = (float *)malloc(32 * 32 * 4);
    { irmae_dataset ds; irmae_shapes_make(&ds, NULL, N, &r); memcpy(x, ds.x, (size_t)N * 3 * 32 * 32 * 4); irmae_dataset_free(&ds); }
    CHECK(irmae_model_features(&m, e, x, N) == 0, "features");
    CHECK(irmae_model_encode(&m, z, x, N) == 0, "encode");
    CHECK(irmae_model_collapse(&m, w) == 0, "collapse");
    for (i = 0; i < N; i++)
        for (j = 0; j < 32; j++) {
            double s = 0, mag = 0;
            for (k = 0; k < 32; k++) { s += (double)w[j * 32 + k] * e[i * 32 + k]; mag += fabs((double)w[j * 32 + k] * e[i * 32 + k]); }
            if (fabs(s - z[i * 32 + j]) > 1e-5 * (mag + 1e-3)) bad++;
        }
    CHECK(bad == 0, "encode != collapsed matrix x features in %d entries", bad);
    irmae_model_free(&m);
    free(x); free(e); free(z); free(w);
}

static void test_adam(void)
{
    /* two steps by hand, in double, on a tiny model's parameters */
    irmae_rng r = irmae_rng_seed(5);
    irmae_config c = small_conv_config(IRMAE_KIND_AE, 1);
    irmae_model m;
    size_t i, np;
    double *p, *mm, *vv;
    int t, bad = 0;
    c.lr = 0.01f; c.beta1 = 0.8f; c.beta2 = 0.9f; c.eps = 1e-3f;
    CHECK(irmae_model_init(&m, &c, &r) == 0, "init");
    np = m.n_params;
    p = (double *)malloc(np * 8); mm = (double *)calloc(np, 8); vv = (double *)calloc(np, 8);
    for (i = 0; i < np; i++) p[i] = m.params[i];
    for (t = 1; t <= 2; t++) {
        for (i = 0; i < np; i++) m.grads[i] = (float)((double)(i % 13) - 6.0) * (t == 1 ? 0.1f : -0.3f);
        for (i = 0; i < np; i++) {
            double g = m.grads[i];
            mm[i] = 0.8 * mm[i] + 0.2 * g;
            vv[i] = 0.9 * vv[i] + 0.1 * g * g;
            p[i] -= 0.01 * (mm[i] / (1 - pow(0.8, t))) / (sqrt(vv[i] / (1 - pow(0.9, t))) + 1e-3);
        }
        irmae_model_adam_step(&m);
    }
    for (i = 0; i < np; i++) if (fabs(p[i] - m.params[i]) > 1e-6 * (1 + fabs(p[i]))) bad++;
    CHECK(bad == 0 && m.step == 2, "Adam differs from the hand-computed steps in %d of %lu", bad, (unsigned long)np);
    { /* the vector and scalar paths of Adam and ReLU give the same bits */
        float *p0 = (float *)malloc(np * 4), *m0 = (float *)malloc(np * 4), *v0 = (float *)malloc(np * 4);
        float *p1 = (float *)malloc(np * 4), *y0 = (float *)malloc(np * 4), *y1 = (float *)malloc(np * 4);
        int level = irmae_simd_level();
        memcpy(p0, m.params, np * 4); memcpy(m0, m.adam_m, np * 4); memcpy(v0, m.adam_v, np * 4);
        irmae_simd_force(IRMAE_SIMD_SCALAR);
        irmae_model_adam_step(&m);
        irmae_relu_forward(y0, m.grads, np);
        memcpy(p1, m.params, np * 4);
        memcpy(m.params, p0, np * 4); memcpy(m.adam_m, m0, np * 4); memcpy(m.adam_v, v0, np * 4);
        m.step--;
        irmae_simd_force(level);
        irmae_model_adam_step(&m);
        irmae_relu_forward(y1, m.grads, np);
        CHECK(memcmp(p1, m.params, np * 4) == 0 && memcmp(y0, y1, np * 4) == 0,
              "Adam/ReLU: scalar and %s paths differ", irmae_simd_name(level));
        free(p0); free(m0); free(v0); free(p1); free(y0); free(y1);
    }
    free(p); free(mm); free(vv);
    irmae_model_free(&m);
}

/* The standalone optimiser: irmae_adam_update on a plain buffer (odd length,
   so every vector path has a tail) equals the formula in double and gives
   the model's bits; irmae_grad_clip's norm, scaling and NaN pass-through;
   irmae_softmax_xent against its definition and finite differences. */
static void test_optimiser(void)
{
    enum { N = 1037 };                 /* not a multiple of 8 or 16: every vector path has a tail */
    float p[N], mm[N], vv[N], g[N], big[3 * 16384 + 5];
    double pd[N], md[N], vd[N], norm, want;
    irmae_adam hp;
    int i, t, bad = 0;
    hp.lr = 0.02f; hp.beta1 = 0.7f; hp.beta2 = 0.95f; hp.eps = 1e-4f;
    for (i = 0; i < N; i++) { pd[i] = p[i] = 0.01f * (float)(i % 17) - 0.08f; mm[i] = vv[i] = 0.0f; md[i] = vd[i] = 0.0; }
    for (t = 1; t <= 3; t++) {
        for (i = 0; i < N; i++) g[i] = (float)((i * 7 + t) % 11 - 5) * 0.05f;
        for (i = 0; i < N; i++) {
            md[i] = 0.7 * md[i] + 0.3 * g[i];
            vd[i] = 0.95 * vd[i] + 0.05 * (double)g[i] * g[i];
            pd[i] -= 0.02 * (md[i] / (1 - pow(0.7, t))) / (sqrt(vd[i] / (1 - pow(0.95, t))) + 1e-4);
        }
        CHECK(irmae_adam_update(p, mm, vv, g, N, t, &hp) == 0, "adam_update step %d", t);
    }
    for (i = 0; i < N; i++) if (fabs(pd[i] - p[i]) > 1e-5 * (1 + fabs(pd[i]))) bad++;
    CHECK(bad == 0, "adam_update differs from the formula in %d of %d", bad, N);
    CHECK(irmae_adam_update(p, mm, vv, g, N, 0, &hp) == IRMAE_ERR_ARG, "adam_update: step 0 is refused");
    CHECK(irmae_adam_update(p, NULL, vv, g, N, 1, &hp) == IRMAE_ERR_ARG, "adam_update: NULL moment");
    hp.beta2 = 1.0f;
    CHECK(irmae_adam_update(p, mm, vv, g, N, 1, &hp) == IRMAE_ERR_ARG, "adam_update: beta2 = 1 is refused");
    { /* the model's Adam is this function on its buffers: the same bits */
        irmae_rng r = irmae_rng_seed(71);
        irmae_config c = small_conv_config(IRMAE_KIND_AE, 2);
        irmae_model m;
        float *q, *qm, *qv;
        size_t k;
        CHECK(irmae_model_init(&m, &c, &r) == 0, "init");
        q = (float *)malloc(m.n_params * 4); qm = (float *)calloc(m.n_params, 4); qv = (float *)calloc(m.n_params, 4);
        memcpy(q, m.params, m.n_params * 4);
        for (k = 0; k < m.n_params; k++) m.grads[k] = (float)((int)(k % 23) - 11) * 0.01f;
        hp.lr = c.lr; hp.beta1 = c.beta1; hp.beta2 = c.beta2; hp.eps = c.eps;
        irmae_model_adam_step(&m);
        irmae_adam_update(q, qm, qv, m.grads, m.n_params, 1, &hp);
        CHECK(memcmp(q, m.params, m.n_params * 4) == 0 && memcmp(qv, m.adam_v, m.n_params * 4) == 0,
              "model Adam and irmae_adam_update differ");
        free(q); free(qm); free(qv);
        irmae_model_free(&m);
    }
    /* clipping: the norm over more than one block, scaling to max_norm, NaN left alone */
    for (i = 0, want = 0; i < (int)(sizeof big / sizeof big[0]); i++) {
        big[i] = (float)((i % 9) - 4) * 0.25f;
        want += (double)big[i] * big[i];
    }
    want = sqrt(want);
    norm = irmae_grad_clip(big, sizeof big / sizeof big[0], 0.0f);
    CHECK(fabs(norm - want) <= 1e-12 * want, "grad_clip norm %.17g, want %.17g", norm, want);
    norm = irmae_grad_clip(big, sizeof big / sizeof big[0], 2.0f);
    CHECK(fabs(norm - want) <= 1e-12 * want, "grad_clip returns the norm before clipping");
    norm = irmae_grad_clip(big, sizeof big / sizeof big[0], 0.0f);
    CHECK(fabs(norm - 2.0) < 1e-5, "after clipping to 2 the norm is %.9g", norm);
    norm = irmae_grad_clip(big, sizeof big / sizeof big[0], 1e9f);
    CHECK(fabs(norm - 2.0) < 1e-5, "a larger max_norm leaves the gradients alone (%.9g)", norm);
    {
        float keep0 = big[0], keep1 = big[40000];
        big[20000] = (float)NAN;
        norm = irmae_grad_clip(big, sizeof big / sizeof big[0], 1.0f);
        CHECK(isnan(norm) && big[0] == keep0 && big[40000] == keep1, "grad_clip with a NaN: norm %g, nothing scaled", norm);
    }
    { /* softmax cross-entropy: the loss by definition, the gradient by finite differences */
        float z[3 * 5], dz[3 * 5];
        int lab[3] = { 4, 0, 2 }, badlab[3] = { 4, 5, 0 };
        double loss, lp, lm, ref = 0.0;
        int b, j;
        for (i = 0; i < 15; i++) z[i] = 0.3f * (float)((i * 5) % 7) - 0.9f + (i == 3 ? 40.0f : 0.0f);
        for (b = 0; b < 3; b++) {
            double s = 0.0;
            for (j = 0; j < 5; j++) s += exp((double)z[b * 5 + j]);
            ref += (log(s) - z[b * 5 + lab[b]]) / 3.0;
        }
        CHECK(irmae_softmax_xent(dz, &loss, z, lab, 3, 5) == 0 && fabs(loss - ref) < 1e-9 * (1 + ref),
              "softmax_xent loss %.12g, by definition %.12g", loss, ref);
        for (i = 0, bad = 0; i < 15; i++) {
            float keep = z[i];
            z[i] = keep + 1e-2f; irmae_softmax_xent(NULL, &lp, z, lab, 3, 5);
            z[i] = keep - 1e-2f; irmae_softmax_xent(NULL, &lm, z, lab, 3, 5);
            z[i] = keep;
            if (fabs((lp - lm) / (2e-2) - dz[i]) > 1e-4 + 1e-3 * fabs(dz[i])) bad++;
        }
        CHECK(bad == 0, "softmax_xent gradient differs from finite differences in %d of 15", bad);
        CHECK(irmae_softmax_xent(dz, &loss, z, badlab, 3, 5) == IRMAE_ERR_ARG && strstr(irmae_error_detail(), "label 5"),
              "softmax_xent names a label out of range: %s", irmae_error_detail());
        z[7] = (float)INFINITY;
        CHECK(irmae_softmax_xent(dz, &loss, z, lab, 3, 5) == IRMAE_ERR_NUMERIC, "softmax_xent with an infinite logit");
    }
}

static void test_shapes(void)
{
    irmae_rng a = irmae_rng_seed(9), b = irmae_rng_seed(9), c = irmae_rng_seed(10);
    irmae_dataset d1, d2, d3;
    irmae_shape f[2000];
    int i, kinds[2] = {0, 0}, sizes[9] = {0}, bad = 0, xs_lo = 0, xs_hi = 0;
    CHECK(irmae_shapes_make(&d1, f, 2000, &a) == 0, "shapes_make");
    CHECK(irmae_shapes_make(&d2, NULL, 2000, &b) == 0, "shapes_make");
    CHECK(irmae_shapes_make(&d3, NULL, 50, &c) == 0, "shapes_make");
    CHECK(memcmp(d1.x, d2.x, (size_t)2000 * 3 * 32 * 32 * 4) == 0, "same seed, different images");
    CHECK(memcmp(d1.x, d3.x, (size_t)50 * 3 * 32 * 32 * 4) != 0, "different seeds, same images");
    CHECK(d1.c == 3 && d1.h == 32 && d1.w == 32, "shape %dx%dx%d", d1.c, d1.h, d1.w);
    for (i = 0; i < 2000; i++) {
        const float *img = irmae_dataset_image(&d1, i);
        int p, lit = 0;
        if (f[i].r < 0 || f[i].r >= 1 || f[i].g < 0 || f[i].g >= 1 || f[i].b < 0 || f[i].b >= 1) bad++;
        if (f[i].x < 8 || f[i].x > 24 || f[i].y < 8 || f[i].y > 24 || f[i].size < 3 || f[i].size > 8) bad++;
        if (f[i].kind != d1.labels[i]) bad++;
        kinds[f[i].kind]++;
        sizes[f[i].size]++;
        xs_lo += f[i].x == 8; xs_hi += f[i].x == 24;
        /* the anchor pixel is the colour (both kinds cover it), background is black */
        if (img[f[i].y * 32 + f[i].x] != f[i].r || img[1024 + f[i].y * 32 + f[i].x] != f[i].g) bad++;
        if (img[0] != 0.0f || img[1023] != 0.0f) bad++;
        /* hard edges: every pixel is either black or the colour */
        for (p = 0; p < 1024; p++) {
            if (img[p] == f[i].r && img[1024 + p] == f[i].g && img[2048 + p] == f[i].b) lit++;
            else if (img[p] != 0 || img[1024 + p] != 0 || img[2048 + p] != 0) bad++;
        }
        /* area: square side^2 exactly; circle ~ pi r^2 (lattice points) */
        if (f[i].kind == IRMAE_SHAPE_SQUARE && lit != f[i].size * f[i].size) bad++;
        if (f[i].kind == IRMAE_SHAPE_CIRCLE && fabs(lit - 3.14159 * f[i].size * f[i].size) > 4.0 * f[i].size + 4) bad++;
    }
    CHECK(bad == 0, "shapes: %d violations of the factor ranges / drawing", bad);
    CHECK(kinds[0] > 900 && kinds[1] > 900, "kinds %d circles %d squares", kinds[0], kinds[1]);
    CHECK(sizes[3] > 200 && sizes[8] > 200 && xs_lo > 50 && xs_hi > 50, "factor extremes not reached");
    irmae_dataset_free(&d1); irmae_dataset_free(&d2); irmae_dataset_free(&d3);
}

static void test_threads(void)
{
#ifdef _OPENMP
    irmae_config c = irmae_preset(IRMAE_PRESET_SHAPES);
    irmae_model m1, m2;
    irmae_dataset ds;
    irmae_rng r = irmae_rng_seed(21), r1 = irmae_rng_seed(22), r2 = irmae_rng_seed(22);
    float l1 = 0, l2 = 0;
    /* IRMAE_TEST_QUICK (emulators): 2 steps instead of 6 */
    int s, same = 1, threads = omp_get_max_threads(), steps = getenv("IRMAE_TEST_QUICK") ? 2 : 6;
    c.l = 2; c.max_batch = 32;
    irmae_shapes_make(&ds, NULL, 32 * 6, &r);
    irmae_model_init(&m1, &c, &r1);
    irmae_model_init(&m2, &c, &r2);
    for (s = 0; s < steps; s++) {
        omp_set_num_threads(1);
        irmae_model_train_step(&m1, &l1, irmae_dataset_image(&ds, 32 * s), 32);
        omp_set_num_threads(2);
        irmae_model_train_step(&m2, &l2, irmae_dataset_image(&ds, 32 * s), 32);
        if (memcmp(&l1, &l2, sizeof l1) != 0) same = 0;
    }
    omp_set_num_threads(threads);
    CHECK(same && memcmp(m1.params, m2.params, m1.n_params * 4) == 0 &&
          memcmp(m1.adam_v, m2.adam_v, m1.n_params * 4) == 0, "1 and 2 threads differ after %d steps", steps);
    irmae_model_free(&m1); irmae_model_free(&m2); irmae_dataset_free(&ds);
#else
    printf("SKIP: built without OpenMP, thread-count check not run\n");
#endif
}

/* The x86 FMA paths give the same bits: a model trained on the AVX2 path
   and one trained on the AVX-512 path have equal parameters and Adam state
   (so a training run may be resumed on either kind of CPU). */
static void test_paths_identical(void)
{
    static const int presets[2] = {IRMAE_PRESET_SHAPES, IRMAE_PRESET_MNIST};
    int pi;
    if (irmae_simd_force(IRMAE_SIMD_AVX512) != IRMAE_SIMD_AVX512) {
        printf("SKIP: AVX2 vs AVX-512 training bit identity: no AVX-512 on this CPU\n");
        irmae_simd_force(IRMAE_SIMD_BEST);
        return;
    }
    for (pi = 0; pi < 2; pi++) {
        irmae_config c = irmae_preset(presets[pi]);
        irmae_model m1, m2;
        irmae_dataset ds;
        irmae_rng r = irmae_rng_seed(31), r1 = irmae_rng_seed(32), r2 = irmae_rng_seed(32);
        float l1 = 0, l2 = 0;
        int s, same = 1, steps = getenv("IRMAE_TEST_QUICK") ? 2 : 4;
        c.max_batch = 32;
        if (presets[pi] == IRMAE_PRESET_SHAPES) irmae_shapes_make(&ds, NULL, 32 * steps, &r);
        else {
            size_t i;
            irmae_dataset_alloc(&ds, 32 * steps, 1, 32, 32, 0);
            for (i = 0; i < (size_t)32 * steps * 1024; i++) ds.x[i] = irmae_rng_uniform(&r);
        }
        irmae_model_init(&m1, &c, &r1);
        irmae_model_init(&m2, &c, &r2);
        for (s = 0; s < steps; s++) {
            irmae_simd_force(IRMAE_SIMD_AVX2);
            irmae_model_train_step(&m1, &l1, irmae_dataset_image(&ds, 32 * s), 32);
            irmae_simd_force(IRMAE_SIMD_AVX512);
            irmae_model_train_step(&m2, &l2, irmae_dataset_image(&ds, 32 * s), 32);
            if (memcmp(&l1, &l2, sizeof l1) != 0) same = 0;
        }
        CHECK(same && memcmp(m1.params, m2.params, m1.n_params * 4) == 0 &&
              memcmp(m1.adam_m, m2.adam_m, m1.n_params * 4) == 0 &&
              memcmp(m1.adam_v, m2.adam_v, m1.n_params * 4) == 0,
              "preset %d: avx2 and avx512 training differ after %d steps", presets[pi], steps);
        irmae_model_free(&m1); irmae_model_free(&m2); irmae_dataset_free(&ds);
    }
    irmae_simd_force(IRMAE_SIMD_BEST);
}

/* ReLU forward/backward on every SIMD path: the same bits as the scalar
   loops, on awkward sizes, with NaN, -0.0 and infinities in the input */
static void test_relu_paths(irmae_rng *r)
{
    static const size_t sizes[] = {1, 7, 15, 16, 17, 100, 1000, 4099, 10007};
    size_t si, i, n;
    int li;
    for (si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        float *x, *d, *y0, *y1, *g0, *g1;
        n = sizes[si];
        x = (float *)malloc(n * 4); d = (float *)malloc(n * 4);
        y0 = (float *)malloc(n * 4); y1 = (float *)malloc(n * 4);
        g0 = (float *)malloc(n * 4); g1 = (float *)malloc(n * 4);
        for (i = 0; i < n; i++) {
            x[i] = irmae_rng_uniform(r) - 0.5f;
            d[i] = irmae_rng_uniform(r) - 0.5f;
            if (i % 13 == 3) x[i] = -0.0f;
            if (i % 17 == 5) x[i] = NAN;
            if (i % 19 == 7) x[i] = -INFINITY;
        }
        irmae_simd_force(IRMAE_SIMD_SCALAR);
        irmae_relu_forward(y0, x, n);
        irmae_relu_backward(g0, d, x, n);
        for (li = 1; li < 4; li++) {
            if (irmae_simd_force(test_paths[li]) != test_paths[li]) continue;
            memset(y1, 0xAB, n * 4); memset(g1, 0xAB, n * 4);
            irmae_relu_forward(y1, x, n);
            irmae_relu_backward(g1, d, x, n);
            CHECK(memcmp(y0, y1, n * 4) == 0 && memcmp(g0, g1, n * 4) == 0,
                  "relu on the %s path differs from scalar, n = %lu", irmae_simd_name(test_paths[li]), (unsigned long)n);
        }
        free(x); free(d); free(y0); free(y1); free(g0); free(g1);
    }
    irmae_simd_force(IRMAE_SIMD_BEST);
}

/* Numerics do not drift: 10 training steps of the shapes preset give the
   parameters and Adam state whose FNV-1a hash is committed here (computed
   on the AVX2/AVX-512 paths, which give the same bits). A change of kernels,
   lowering or model code that changes any bit of training fails this test;
   if the change is meant to, say so in the commit and update the constant.
   Only where the constant was computed: x86-64 with AVX2, glibc's libm
   (expf, logf, ... of other libms may round differently). */
static void test_golden(void)
{
#if defined(__x86_64__) && defined(__GLIBC__) && !defined(IRMAE_NO_SIMD)
    const unsigned long long want = 0x740fe72de4250c3dull;
    irmae_config c = irmae_preset(IRMAE_PRESET_SHAPES);
    irmae_model m;
    irmae_dataset ds;
    irmae_rng r = irmae_rng_seed(51), r1 = irmae_rng_seed(52);
    unsigned long long h = 1469598103934665603ull;
    const unsigned char *b[3];
    size_t i, j;
    float loss;
    int s;
    if (irmae_simd_force(IRMAE_SIMD_AVX2) != IRMAE_SIMD_AVX2) {
        printf("SKIP: golden training hash: no AVX2 on this CPU\n");
        irmae_simd_force(IRMAE_SIMD_BEST);
        return;
    }
    irmae_simd_force(IRMAE_SIMD_BEST);
    c.max_batch = 16;
    irmae_shapes_make(&ds, NULL, 160, &r);
    irmae_model_init(&m, &c, &r1);
    for (s = 0; s < 10; s++) irmae_model_train_step(&m, &loss, irmae_dataset_image(&ds, 16 * s), 16);
    b[0] = (const unsigned char *)m.params; b[1] = (const unsigned char *)m.adam_m; b[2] = (const unsigned char *)m.adam_v;
    for (j = 0; j < 3; j++)
        for (i = 0; i < m.n_params * sizeof(float); i++) { h ^= b[j][i]; h *= 1099511628211ull; }
    CHECK(h == want, "golden training hash 0x%016llx, committed 0x%016llx (numerics changed)", h, want);
    irmae_model_free(&m); irmae_dataset_free(&ds);
#else
    printf("SKIP: golden training hash: computed on x86-64 with glibc only\n");
#endif
}

/* irmae_profile_*: off by default (nothing accumulates); on, every phase of
   a conv model's training step gets time and the phases add up to at most
   the step's wall time (they never overlap) */
static void test_profile(void)
{
    irmae_config c = irmae_preset(IRMAE_PRESET_SHAPES);
    irmae_model m;
    irmae_dataset ds;
    irmae_rng r = irmae_rng_seed(41), r1 = irmae_rng_seed(42);
    double sec[IRMAE_PHASE_COUNT], sum = 0.0, t0, wall;
    float loss;
    /* IRMAE_TEST_QUICK (emulators): steps of 4 images instead of 16 */
    const int B = getenv("IRMAE_TEST_QUICK") ? 4 : 16;
    int p, zero = 1;
    c.max_batch = B;
    irmae_shapes_make(&ds, NULL, B, &r);
    irmae_model_init(&m, &c, &r1);
    irmae_profile_read(NULL, 1);
    irmae_model_train_step(&m, &loss, ds.x, B);
    irmae_profile_read(sec, 0);
    for (p = 0; p < IRMAE_PHASE_COUNT; p++) if (sec[p] != 0.0) zero = 0;
    CHECK(zero, "profile accumulates while disabled");
    irmae_profile_enable(1);
    t0 = irmae__clock();
    irmae_model_train_step(&m, &loss, ds.x, B);
    irmae_model_train_step(&m, &loss, ds.x, B);
    wall = irmae__clock() - t0;
    irmae_profile_enable(0);
    irmae_profile_read(sec, 1);
    { /* the clock's tick: phases shorter than it may read 0 (Windows' clocks) */
        double a = irmae__clock(), b;
        while ((b = irmae__clock()) == a) { }
        for (p = 0; p < IRMAE_PHASE_COUNT; p++) {
            sum += sec[p];
            CHECK(sec[p] > 0.0 || (b - a > 1e-5 && p != IRMAE_PHASE_GEMM), "phase %s got no time", irmae_phase_name(p));
        }
    }
    CHECK(sum <= wall * 1.01 + 1e-4, "phases sum to %g s, more than the steps' %g s", sum, wall);
    CHECK(sec[IRMAE_PHASE_GEMM] > 0.2 * wall, "gemm %g s of %g s", sec[IRMAE_PHASE_GEMM], wall);
    irmae_profile_read(sec, 0);
    CHECK(sec[IRMAE_PHASE_GEMM] == 0.0, "reset did not zero the profile");
    CHECK(!strcmp(irmae_phase_name(IRMAE_PHASE_LOWER), "lower") && !strcmp(irmae_phase_name(99), "unknown"),
          "phase names");
    irmae_model_free(&m); irmae_dataset_free(&ds);
}

static void test_training_reduces_loss(void)
{
    irmae_rng r = irmae_rng_seed(4);
    irmae_config c = irmae_preset(IRMAE_PRESET_SHAPES);
    irmae_model m;
    irmae_dataset ds;
    float first = 0, loss = 0, end = 0;
    int s;
    c.l = 2; c.max_batch = 32; c.lr = 1e-3f;
    irmae_shapes_make(&ds, NULL, 32 * 8, &r);
    irmae_model_init(&m, &c, &r);
    if (getenv("IRMAE_TEST_QUICK")) {
        /* emulators: 1/48 of the work, 10 steps on one batch of 4 */
        irmae_model_loss(&m, &first, ds.x, 4);
        for (s = 0; s < 10; s++) irmae_model_train_step(&m, &loss, ds.x, 4);
        irmae_model_loss(&m, &end, ds.x, 4);
        CHECK(end < 0.75f * first, "IRMAE_TEST_QUICK: 10 Adam steps on 4 shapes: loss %g -> %g", first, end);
        printf("IRMAE_TEST_QUICK: 10 steps on 4 shapes instead of 60 on 256: loss %g -> %g\n", first, end);
        irmae_model_free(&m); irmae_dataset_free(&ds);
        return;
    }
    irmae_model_loss(&m, &first, ds.x, 32);
    for (s = 0; s < 60; s++) irmae_model_train_step(&m, &loss, irmae_dataset_image(&ds, 32 * (s % 8)), 32);
    irmae_model_loss(&m, &end, ds.x, 32);
    CHECK(end < 0.5f * first, "60 Adam steps on 256 shapes: loss %g -> %g", first, end);
    irmae_model_free(&m); irmae_dataset_free(&ds);
}

static void test_bad_args(void)
{
    irmae_rng r = irmae_rng_seed(1);
    irmae_config c = irmae_preset(IRMAE_PRESET_SHAPES), bad;
    irmae_model m;
    irmae_dataset ds;
    float buf[64], loss;
    CHECK(irmae_model_init(NULL, &c, &r) == IRMAE_ERR_ARG, "NULL model");
    CHECK(irmae_model_init(&m, NULL, &r) == IRMAE_ERR_ARG, "NULL cfg");
    CHECK(irmae_model_init(&m, &c, NULL) == IRMAE_ERR_ARG, "NULL rng");
    bad = c; bad.n = 0;
    CHECK(irmae_model_init(&m, &bad, &r) == IRMAE_ERR_ARG, "n = 0");
    bad = c; bad.l = -1;
    CHECK(irmae_model_init(&m, &bad, &r) == IRMAE_ERR_ARG, "l = -1");
    bad = c; bad.max_batch = 0;
    CHECK(irmae_model_init(&m, &bad, &r) == IRMAE_ERR_ARG, "max_batch = 0");
    bad = c; bad.in_h = 31;
    CHECK(irmae_model_init(&m, &bad, &r) < 0, "decoder output mismatch accepted");
    bad = c; bad.dec[bad.n_dec - 1].out = 4;
    CHECK(irmae_model_init(&m, &bad, &r) == IRMAE_ERR_SHAPE, "decoder channel mismatch: %s", irmae_error_detail());
    bad = c; bad.enc[0].stride = 0;
    CHECK(irmae_model_init(&m, &bad, &r) < 0, "stride 0 accepted");
    bad = c; bad.enc[0].k = -3;
    CHECK(irmae_model_init(&m, &bad, &r) < 0, "negative kernel accepted");
    bad = c; bad.n_enc = IRMAE_MAX_LAYERS + 1;
    CHECK(irmae_model_init(&m, &bad, &r) == IRMAE_ERR_ARG, "too many layers");
    bad = c; bad.enc[0].type = 99;
    CHECK(irmae_model_init(&m, &bad, &r) == IRMAE_ERR_ARG, "unknown layer type");
    bad = c; bad.kind = IRMAE_KIND_VAE; bad.l = 2;
    CHECK(irmae_model_init(&m, &bad, &r) == IRMAE_ERR_ARG, "VAE with maps");
    bad = c; bad.in_c = 100000; bad.in_h = 100000; bad.in_w = 100000;
    CHECK(irmae_model_init(&m, &bad, &r) < 0, "huge input accepted");
    bad = c; bad.beta1 = 1.0f;
    CHECK(irmae_model_init(&m, &bad, &r) == IRMAE_ERR_ARG, "beta1 = 1");
    CHECK(strlen(irmae_error_detail()) > 0, "no detail message");
    c.max_batch = 4;
    CHECK(irmae_model_init(&m, &c, &r) == 0, "init");
    CHECK(irmae_model_train_step(&m, &loss, NULL, 4) == IRMAE_ERR_ARG, "NULL batch");
    CHECK(irmae_model_train_step(&m, &loss, buf, 5) == IRMAE_ERR_ARG, "batch > max_batch");
    CHECK(irmae_model_train_step(&m, &loss, buf, 0) == IRMAE_ERR_ARG, "batch 0");
    CHECK(irmae_model_encode(&m, buf, buf, -1) == IRMAE_ERR_ARG, "count -1");
    CHECK(irmae_model_decode(&m, buf, NULL, 1) == IRMAE_ERR_ARG, "decode NULL");
    CHECK(irmae_model_collapse(&m, NULL) == IRMAE_ERR_ARG, "collapse NULL");
    { /* a NaN input gives a named error, not garbage */
        float *x = (float *)calloc(4 * 3 * 32 * 32, 4);
        x[17] = NAN;
        CHECK(irmae_model_train_step(&m, &loss, x, 4) == IRMAE_ERR_NUMERIC, "NaN input not caught");
        free(x);
    }
    { /* a non-finite weight: the guard names the step and the tensor */
        float *x = (float *)calloc(4 * 3 * 32 * 32, 4);
        int rc;
        m.params[m.layers[m.n_layers - 2].w_off + 5] = INFINITY;
        rc = irmae_model_train_step(&m, &loss, x, 4);
        CHECK(rc == IRMAE_ERR_NUMERIC && strstr(irmae_error_detail(), "step 1") != NULL,
              "inf weight: rc %d, detail '%s'", rc, irmae_error_detail());
        CHECK(m.step == 0, "a failed step must not update the model (step %lld)", m.step);
        free(x);
    }
    irmae_model_free(&m);
    { /* gradient clipping scales to the requested norm, and only when larger */
        irmae_config cc = small_conv_config(IRMAE_KIND_AE, 2);
        irmae_model mc;
        float *x = (float *)malloc(4 * 2 * 7 * 7 * 4);
        double n0, n1 = 0;
        size_t i;
        int k;
        for (k = 0; k < 4 * 2 * 7 * 7; k++) x[k] = irmae_rng_uniform(&r);
        irmae_model_init(&mc, &cc, &r);
        irmae_model_forward_backward(&mc, &loss, NULL, x, 4);
        n0 = mc.last_grad_norm;
        mc.cfg.grad_clip = (float)(n0 / 4);
        irmae_model_forward_backward(&mc, &loss, NULL, x, 4);
        for (i = 0; i < mc.n_params; i++) n1 += (double)mc.grads[i] * mc.grads[i];
        CHECK(fabs(sqrt(n1) - n0 / 4) < 1e-4 * n0 && fabs(mc.last_grad_norm - n0) < 1e-6 * n0,
              "clipping: norm %g -> %g, want %g", n0, sqrt(n1), n0 / 4);
        mc.cfg.grad_clip = (float)(n0 * 4);
        irmae_model_forward_backward(&mc, &loss, NULL, x, 4);
        for (i = 0, n1 = 0; i < mc.n_params; i++) n1 += (double)mc.grads[i] * mc.grads[i];
        CHECK(fabs(sqrt(n1) - n0) < 1e-5 * n0, "clipping changed a gradient below the limit");
        irmae_model_free(&mc);
        free(x);
    }
    CHECK(irmae_linear_forward(buf, buf, buf, NULL, 0, 2, 2) == IRMAE_ERR_ARG, "linear batch 0");
    CHECK(irmae_linear_forward(buf, buf, NULL, NULL, 1, 2, 2) == IRMAE_ERR_ARG, "linear NULL w");
    CHECK(irmae_linear_backward(buf, buf, NULL, NULL, buf, buf, 1, 2, 2) == IRMAE_ERR_ARG, "linear NULL dout");
    CHECK(irmae_dataset_alloc(&ds, -1, 3, 32, 32, 0) == IRMAE_ERR_ARG, "dataset n -1");
    CHECK(irmae_dataset_alloc(&ds, 1 << 30, 1 << 30, 1 << 30, 1 << 30, 0) < 0, "dataset overflow accepted");
    CHECK(irmae_dataset_alloc(NULL, 1, 1, 1, 1, 0) == IRMAE_ERR_ARG, "dataset NULL");
    CHECK(irmae_shapes_make(&ds, NULL, 0, &r) == IRMAE_ERR_ARG, "shapes count 0");
    CHECK(strcmp(irmae_error_string(IRMAE_ERR_NOMEM), "out of memory") == 0 &&
          strcmp(irmae_error_string(12345), "unknown error") == 0, "error strings");
}

int main(void)
{
    irmae_rng r = irmae_rng_seed(1234);
    irmae_config c;
    int li;
    test_presets();
    check_activation("relu", irmae_relu_forward, irmae_relu_backward, &r);
    check_activation("tanh", irmae_tanh_forward, irmae_tanh_backward, &r);
    check_activation("sigmoid", irmae_sigmoid_forward, irmae_sigmoid_backward, &r);
    check_linear(1, 1, 1, 1, &r);
    check_linear(3, 17, 5, 1, &r);
    check_linear(7, 100, 3, 0, &r);
    check_linear(33, 64, 65, 1, &r);
    /* whole models: every parameter tensor and the input, on every kernel
       path this CPU has (forced in turn; the others are reported skipped) */
    for (li = 0; li < 4; li++) {
    char tag[64];
    if (!test_path_begin(test_paths[li], "model gradient checks")) continue;
    printf("  gradient checks on the %s path\n", irmae_simd_name(test_paths[li]));
#define TAG(s) (snprintf(tag, sizeof tag, "%s [%s]", s, irmae_simd_name(test_paths[li])), tag)
    c = small_conv_config(IRMAE_KIND_AE, 0);
    check_model_grads(TAG("AE"), &c, 3, 1);
    c = small_conv_config(IRMAE_KIND_AE, 3);
    check_model_grads(TAG("IRMAE l=3"), &c, 3, 2);
    c = small_conv_config(IRMAE_KIND_AE, 0); c.code_l1 = 0.3f;
    check_model_grads(TAG("AE+L1"), &c, 2, 3);
    c = small_conv_config(IRMAE_KIND_AE, 0); c.code_l2 = 0.5f;
    check_model_grads(TAG("AE+L2"), &c, 2, 4);
    c = small_conv_config(IRMAE_KIND_VAE, 0); c.vae_beta = 0.7f;
    check_model_grads(TAG("VAE"), &c, 3, 5);
    c = small_allconv_config(2);
    check_model_grads(TAG("IRMAE conv-only l=2"), &c, 2, 6);
    c = small_allconv_config(0); c.out_act = IRMAE_OUT_NONE;
    check_model_grads(TAG("AE conv-only, no out_act"), &c, 1, 7);
    c = small_upsample_config(2);
    check_model_grads(TAG("IRMAE l=2, upsampling decoder"), &c, 2, 8);
#undef TAG
    }
    irmae_simd_force(IRMAE_SIMD_BEST);
    c = small_conv_config(IRMAE_KIND_AE, 3);
    check_features_backward("IRMAE l=3", &c, 3, 11);
    c = small_conv_config(IRMAE_KIND_VAE, 0);
    check_features_backward("VAE", &c, 2, 12);
    test_upsample();
    test_init_distribution();
    test_collapse();
    test_adam();
    test_optimiser();
    test_shapes();
    test_threads();
    test_paths_identical();
    test_relu_paths(&r);
    test_golden();
    test_profile();
    test_training_reduces_loss();
    test_bad_args();
    irmae_sgemm_release();
    printf("test_model: %d passed, %d failed\n", passed, failed);
    return failed != 0;
}
