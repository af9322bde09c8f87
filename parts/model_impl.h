/* ---------------------------------------------------------------------- */
/* Layers                                                                 */
/* ---------------------------------------------------------------------- */

/* Elementwise loops run in parallel only when there is enough work to pay
   for waking the threads. Each thread owns a contiguous range: the results do
   not depend on the thread count. */
#define IRMAE__PAR_MIN 32768

IRMAEDEF int irmae_linear_forward(float *out, const float *in, const float *w, const float *b,
                                  int batch, int in_f, int out_f)
{
    int i;
    if (!out || !in || !w) return irmae__fail(IRMAE_ERR_ARG, "linear_forward: NULL pointer");
    if (batch <= 0 || in_f <= 0 || out_f <= 0)
        return irmae__fail(IRMAE_ERR_ARG, "linear_forward: batch %d, in %d, out %d", batch, in_f, out_f);
    /* out[batch, out_f] = in[batch, in_f] * w[out_f, in_f]^T */
    irmae_sgemm(0, 1, batch, out_f, in_f, 1.0f, in, in_f, w, in_f, 0.0f, out, out_f);
    if (b)
        for (i = 0; i < batch; i++) {
            float *o = out + (size_t)i * out_f;
            int j;
            for (j = 0; j < out_f; j++) o[j] += b[j];
        }
    return IRMAE_OK;
}

IRMAEDEF int irmae_linear_backward(float *din, float *dw, float *db, const float *dout,
                                   const float *in, const float *w, int batch, int in_f, int out_f)
{
    int i, j;
    if (!dout || (dw && !in) || (din && !w))
        return irmae__fail(IRMAE_ERR_ARG, "linear_backward: NULL pointer");
    if (batch <= 0 || in_f <= 0 || out_f <= 0)
        return irmae__fail(IRMAE_ERR_ARG, "linear_backward: batch %d, in %d, out %d", batch, in_f, out_f);
    /* din[batch, in_f] = dout[batch, out_f] * w[out_f, in_f] */
    if (din) irmae_sgemm(0, 0, batch, in_f, out_f, 1.0f, dout, out_f, w, in_f, 0.0f, din, in_f);
    /* dw[out_f, in_f] += dout^T * in */
    if (dw) irmae_sgemm(1, 0, out_f, in_f, batch, 1.0f, dout, out_f, in, in_f, 1.0f, dw, in_f);
    if (db)
        for (i = 0; i < batch; i++)
            for (j = 0; j < out_f; j++) db[j] += dout[(size_t)i * out_f + j];
    return IRMAE_OK;
}

/* n is a size_t, OpenMP wants a signed loop variable */
#define IRMAE__ELEMENTWISE(count, body)                                        \
    do {                                                                       \
        ptrdiff_t i_, n_ = (ptrdiff_t)(count);                                 \
        IRMAE__OMP(parallel for schedule(static) if(n_ > IRMAE__PAR_MIN))      \
        for (i_ = 0; i_ < n_; i_++) { size_t i = (size_t)i_; body; }          \
    } while (0)

IRMAEDEF void irmae_relu_forward(float *out, const float *in, size_t count)
{
    IRMAE__ELEMENTWISE(count, out[i] = in[i] > 0.0f ? in[i] : 0.0f);
}
IRMAEDEF void irmae_relu_backward(float *din, const float *dout, const float *out, size_t count)
{
    IRMAE__ELEMENTWISE(count, din[i] = out[i] > 0.0f ? dout[i] : 0.0f);
}
IRMAEDEF void irmae_tanh_forward(float *out, const float *in, size_t count)
{
    IRMAE__ELEMENTWISE(count, out[i] = tanhf(in[i]));
}
IRMAEDEF void irmae_tanh_backward(float *din, const float *dout, const float *out, size_t count)
{
    IRMAE__ELEMENTWISE(count, din[i] = dout[i] * (1.0f - out[i] * out[i]));
}
IRMAEDEF void irmae_sigmoid_forward(float *out, const float *in, size_t count)
{
    /* written so that exp never overflows */
    IRMAE__ELEMENTWISE(count, {
        float v = in[i];
        if (v >= 0.0f) out[i] = 1.0f / (1.0f + expf(-v));
        else { float e = expf(v); out[i] = e / (1.0f + e); }
    });
}
IRMAEDEF void irmae_sigmoid_backward(float *din, const float *dout, const float *out, size_t count)
{
    IRMAE__ELEMENTWISE(count, din[i] = dout[i] * out[i] * (1.0f - out[i]));
}

/* ---------------------------------------------------------------------- */
/* Networks and models                                                    */
/* ---------------------------------------------------------------------- */

static irmae_layer_spec irmae__spec(int type, int out, int k, int stride, int pad, int bias)
{
    irmae_layer_spec s;
    memset(&s, 0, sizeof s);
    s.type = type; s.out = out; s.k = k; s.stride = stride; s.pad = pad; s.bias = bias;
    return s;
}
IRMAEDEF irmae_layer_spec irmae_layer_conv(int out, int k, int stride, int pad)
{ return irmae__spec(IRMAE_LAYER_CONV, out, k, stride, pad, 1); }
IRMAEDEF irmae_layer_spec irmae_layer_convt(int out, int k, int stride, int pad)
{ return irmae__spec(IRMAE_LAYER_CONVT, out, k, stride, pad, 1); }
IRMAEDEF irmae_layer_spec irmae_layer_linear(int out, int bias)
{ return irmae__spec(IRMAE_LAYER_LINEAR, out, 0, 0, 0, bias); }
IRMAEDEF irmae_layer_spec irmae_layer_act(int type)
{ return irmae__spec(type, 0, 0, 0, 0, 0); }
IRMAEDEF irmae_layer_spec irmae_layer_reshape(int c, int h, int w)
{
    irmae_layer_spec s = irmae__spec(IRMAE_LAYER_RESHAPE, 0, 0, 0, 0, 0);
    s.c = c; s.h = h; s.w = w;
    return s;
}
IRMAEDEF irmae_layer_spec irmae_layer_flatten(void) { return irmae_layer_reshape(0, 1, 1); }

IRMAEDEF irmae_config irmae_preset(int preset)
{
    irmae_config c;
    int i, relu = IRMAE_LAYER_RELU;
    memset(&c, 0, sizeof c);
    c.kind = IRMAE_KIND_AE;
    c.out_act = IRMAE_OUT_AUTO;
    c.vae_beta = 0.1f;
    c.lr = 1e-4f; c.beta1 = 0.9f; c.beta2 = 0.999f; c.eps = 1e-8f;
    c.max_batch = 128;
    if (preset == IRMAE_PRESET_SHAPES) {
        static const int ch[4] = {32, 64, 128, 256};
        c.in_c = 3; c.in_h = c.in_w = 32; c.n = 32;
        for (i = 0; i < 4; i++) {
            c.enc[c.n_enc++] = irmae_layer_conv(ch[i], 4, 2, 1);
            c.enc[c.n_enc++] = irmae_layer_act(relu);
        }
        c.enc[c.n_enc++] = irmae_layer_conv(IRMAE_CODE, 2, 1, 0);
        c.dec[c.n_dec++] = irmae_layer_convt(256, 2, 1, 0);
        c.dec[c.n_dec++] = irmae_layer_act(relu);
        for (i = 2; i >= 0; i--) {
            c.dec[c.n_dec++] = irmae_layer_convt(ch[i], 4, 2, 1);
            c.dec[c.n_dec++] = irmae_layer_act(relu);
        }
        c.dec[c.n_dec++] = irmae_layer_convt(3, 4, 2, 1);
    } else if (preset == IRMAE_PRESET_MNIST) {
        static const int ch[4] = {32, 64, 128, 256};
        c.in_c = 1; c.in_h = c.in_w = 32; c.n = 128;
        for (i = 0; i < 4; i++) {
            c.enc[c.n_enc++] = irmae_layer_conv(ch[i], 4, 2, 1);
            c.enc[c.n_enc++] = irmae_layer_act(relu);
        }
        c.enc[c.n_enc++] = irmae_layer_flatten();
        c.enc[c.n_enc++] = irmae_layer_linear(IRMAE_CODE, 1);
        c.dec[c.n_dec++] = irmae_layer_linear(128 * 8 * 8, 1);
        c.dec[c.n_dec++] = irmae_layer_act(relu);
        c.dec[c.n_dec++] = irmae_layer_reshape(128, 8, 8);
        c.dec[c.n_dec++] = irmae_layer_convt(64, 4, 2, 1);
        c.dec[c.n_dec++] = irmae_layer_act(relu);
        c.dec[c.n_dec++] = irmae_layer_convt(32, 4, 2, 1);
        c.dec[c.n_dec++] = irmae_layer_act(relu);
        c.dec[c.n_dec++] = irmae_layer_convt(1, 1, 1, 0);
    } else if (preset == IRMAE_PRESET_CELEBA64) {
        static const int ch[4] = {128, 256, 512, 1024};
        c.in_c = 3; c.in_h = c.in_w = 64; c.n = 128;
        c.max_batch = 32;
        for (i = 0; i < 4; i++) {
            c.enc[c.n_enc++] = irmae_layer_conv(ch[i], 4, 2, 1);
            c.enc[c.n_enc++] = irmae_layer_act(relu);
        }
        c.enc[c.n_enc++] = irmae_layer_flatten();
        c.enc[c.n_enc++] = irmae_layer_linear(IRMAE_CODE, 1);
        c.dec[c.n_dec++] = irmae_layer_linear(1024 * 8 * 8, 1);
        c.dec[c.n_dec++] = irmae_layer_reshape(1024, 8, 8);
        for (i = 2; i >= 0; i--) {
            c.dec[c.n_dec++] = irmae_layer_convt(ch[i], 4, 2, 1);
            c.dec[c.n_dec++] = irmae_layer_act(relu);
        }
        c.dec[c.n_dec++] = irmae_layer_convt(3, 1, 1, 0);
    }
    return c;
}

/* Resolves one layer given its input shape; fills shapes and parameter sizes. */
static int irmae__layer_resolve(irmae_layer *L, const irmae_layer_spec *s, int c, int h, int w,
                                int code_dim, const char *where, int index)
{
    irmae_conv_desc d;
    int out = s->out == IRMAE_CODE ? code_dim : s->out, rc;
    size_t in_f = irmae__count(c, h, w, 1);
    memset(L, 0, sizeof *L);
    L->spec = *s;
    L->spec.out = out;
    L->in_c = c; L->in_h = h; L->in_w = w;
    L->out_c = c; L->out_h = h; L->out_w = w;
    if (!in_f || in_f > INT_MAX)
        return irmae__fail(IRMAE_ERR_SHAPE, "%s layer %d: input %d x %d x %d", where, index, c, h, w);
    switch (s->type) {
    case IRMAE_LAYER_CONV:
    case IRMAE_LAYER_CONVT:
        rc = s->type == IRMAE_LAYER_CONV ? irmae_conv2d_desc(&d, 1, c, h, w, out, s->k, s->stride, s->pad)
                                         : irmae_convt2d_desc(&d, 1, c, h, w, out, s->k, s->stride, s->pad);
        if (rc) return irmae__fail(rc, "%s layer %d (%s %d->%d k%d s%d p%d on %dx%d) is invalid",
                                   where, index, s->type == IRMAE_LAYER_CONV ? "conv" : "convT",
                                   c, out, s->k, s->stride, s->pad, h, w);
        L->out_c = out; L->out_h = d.out_h; L->out_w = d.out_w;
        L->n_w = irmae__count(c, out, s->k, s->k);
        L->n_b = s->bias ? (size_t)out : 0;
        break;
    case IRMAE_LAYER_LINEAR:
        if (out <= 0) return irmae__fail(IRMAE_ERR_ARG, "%s layer %d: linear with %d outputs", where, index, out);
        L->out_c = out; L->out_h = 1; L->out_w = 1;
        L->n_w = irmae__count((int)in_f, out, 1, 1);
        L->n_b = s->bias ? (size_t)out : 0;
        break;
    case IRMAE_LAYER_RELU: case IRMAE_LAYER_TANH: case IRMAE_LAYER_SIGMOID:
        break;
    case IRMAE_LAYER_RESHAPE:
        if (s->c == 0) { L->out_c = (int)in_f; L->out_h = 1; L->out_w = 1; }
        else {
            if (irmae__count(s->c, s->h, s->w, 1) != in_f)
                return irmae__fail(IRMAE_ERR_SHAPE, "%s layer %d: cannot reshape %d x %d x %d to %d x %d x %d",
                                   where, index, c, h, w, s->c, s->h, s->w);
            L->out_c = s->c; L->out_h = s->h; L->out_w = s->w;
        }
        break;
    default:
        return irmae__fail(IRMAE_ERR_ARG, "%s layer %d: unknown type %d", where, index, s->type);
    }
    if ((s->type == IRMAE_LAYER_CONV || s->type == IRMAE_LAYER_CONVT || s->type == IRMAE_LAYER_LINEAR) && !L->n_w)
        return irmae__fail(IRMAE_ERR_OVERFLOW, "%s layer %d: weight size overflows", where, index);
    if (!irmae__count(L->out_c, L->out_h, L->out_w, 1) ||
        irmae__count(L->out_c, L->out_h, L->out_w, 1) > INT_MAX)
        return irmae__fail(IRMAE_ERR_SHAPE, "%s layer %d: output size overflows", where, index);
    return IRMAE_OK;
}

static size_t irmae__layer_out_size(const irmae_layer *L)
{ return (size_t)L->out_c * L->out_h * L->out_w; }
static size_t irmae__layer_in_size(const irmae_layer *L)
{ return (size_t)L->in_c * L->in_h * L->in_w; }

/* Resolves all layers of cfg into m->layers, computing parameter offsets.
   Does not allocate. */
static int irmae__model_plan(irmae_model *m, const irmae_config *cfg)
{
    int i, c, h, w, rc, out_act;
    size_t off = 0, act = 0, nn;
    if (cfg->in_c <= 0 || cfg->in_h <= 0 || cfg->in_w <= 0)
        return irmae__fail(IRMAE_ERR_ARG, "config: image %d x %d x %d", cfg->in_c, cfg->in_h, cfg->in_w);
    if (cfg->n <= 0 || cfg->l < 0 || cfg->max_batch <= 0)
        return irmae__fail(IRMAE_ERR_ARG, "config: n %d, l %d, max_batch %d", cfg->n, cfg->l, cfg->max_batch);
    if (cfg->kind != IRMAE_KIND_AE && cfg->kind != IRMAE_KIND_VAE)
        return irmae__fail(IRMAE_ERR_ARG, "config: unknown kind %d", cfg->kind);
    if (cfg->n_enc <= 0 || cfg->n_enc > IRMAE_MAX_LAYERS || cfg->n_dec <= 0 || cfg->n_dec > IRMAE_MAX_LAYERS)
        return irmae__fail(IRMAE_ERR_ARG, "config: %d encoder / %d decoder layers (1..%d)",
                           cfg->n_enc, cfg->n_dec, IRMAE_MAX_LAYERS);
    if (cfg->n > 1 << 20 || cfg->l > 1024)
        return irmae__fail(IRMAE_ERR_LIMIT, "config: n %d or l %d too large", cfg->n, cfg->l);
    out_act = cfg->out_act;
    if (out_act == IRMAE_OUT_AUTO) out_act = cfg->kind == IRMAE_KIND_VAE ? IRMAE_OUT_SIGMOID : IRMAE_OUT_TANH;
    if (out_act < IRMAE_OUT_TANH || out_act > IRMAE_OUT_NONE)
        return irmae__fail(IRMAE_ERR_ARG, "config: unknown out_act %d", cfg->out_act);
    if (cfg->kind == IRMAE_KIND_VAE && out_act != IRMAE_OUT_SIGMOID)
        return irmae__fail(IRMAE_ERR_ARG, "config: the VAE's BCE loss needs a sigmoid output");
    if (cfg->kind == IRMAE_KIND_VAE && cfg->l != 0)
        return irmae__fail(IRMAE_ERR_ARG, "config: the VAE takes no linear maps (l = %d)", cfg->l);
    if (!(cfg->lr >= 0.0f) || !(cfg->beta1 >= 0.0f && cfg->beta1 < 1.0f) || !(cfg->beta2 >= 0.0f && cfg->beta2 < 1.0f) || !(cfg->eps > 0.0f))
        return irmae__fail(IRMAE_ERR_ARG, "config: Adam lr %g betas %g %g eps %g", cfg->lr, cfg->beta1, cfg->beta2, cfg->eps);

    m->code_dim = cfg->kind == IRMAE_KIND_VAE ? 2 * cfg->n : cfg->n;
    m->n_layers = 0;
    c = cfg->in_c; h = cfg->in_h; w = cfg->in_w;
    for (i = 0; i < cfg->n_enc + cfg->n_dec + 1; i++) {
        irmae_layer *L = &m->layers[m->n_layers];
        irmae_layer_spec spec;
        const char *where = i < cfg->n_enc ? "encoder" : "decoder";
        int idx = i < cfg->n_enc ? i : i - cfg->n_enc;
        if (i == cfg->n_enc) {
            /* the code: encoder must have produced code_dim values */
            if (irmae__count(c, h, w, 1) != (size_t)m->code_dim)
                return irmae__fail(IRMAE_ERR_SHAPE, "encoder outputs %d x %d x %d, the code needs %d values",
                                   c, h, w, m->code_dim);
            m->n_enc = m->n_layers;
            /* the l maps sit between encoder and decoder parameters */
            if (!irmae__mul3(&nn, (size_t)cfg->n, (size_t)cfg->n, (size_t)cfg->l) || off > (size_t)-1 / 2 - nn)
                return irmae__fail(IRMAE_ERR_OVERFLOW, "config: %d maps of %d x %d", cfg->l, cfg->n, cfg->n);
            m->maps_off = off;
            off += nn;
            c = cfg->n; h = 1; w = 1;
        }
        if (i < cfg->n_enc) spec = cfg->enc[i];
        else if (i < cfg->n_enc + cfg->n_dec) spec = cfg->dec[i - cfg->n_enc];
        else if (out_act == IRMAE_OUT_NONE) break;
        else spec = irmae_layer_act(out_act == IRMAE_OUT_TANH ? IRMAE_LAYER_TANH : IRMAE_LAYER_SIGMOID);
        if (i >= cfg->n_enc && spec.out == IRMAE_CODE)
            return irmae__fail(IRMAE_ERR_ARG, "decoder layer %d: IRMAE_CODE is for the encoder", idx);
        rc = irmae__layer_resolve(L, &spec, c, h, w, m->code_dim, where, idx);
        if (rc) return rc;
        L->w_off = off; off += L->n_w;
        L->b_off = off; off += L->n_b;
        L->act_off = act; act += irmae__layer_out_size(L);
        c = L->out_c; h = L->out_h; w = L->out_w;
        m->n_layers++;
    }
    if (c != cfg->in_c || h != cfg->in_h || w != cfg->in_w)
        return irmae__fail(IRMAE_ERR_SHAPE, "decoder outputs %d x %d x %d, the images are %d x %d x %d",
                           c, h, w, cfg->in_c, cfg->in_h, cfg->in_w);
    m->n_params = off;
    m->max_act = act; /* total activation floats per image */
    return IRMAE_OK;
}

IRMAEDEF size_t irmae_config_param_count(const irmae_config *cfg)
{
    irmae_model *m;
    size_t n = 0;
    if (!cfg) return 0;
    m = (irmae_model *)irmae__alloc(1, sizeof *m);
    if (!m) return 0;
    if (irmae__model_plan(m, cfg) == IRMAE_OK) n = m->n_params;
    irmae__free(m);
    return n;
}

static void irmae__uniform_fill(float *p, size_t count, float bound, irmae_rng *rng)
{
    size_t i;
    for (i = 0; i < count; i++) p[i] = (2.0f * irmae_rng_uniform(rng) - 1.0f) * bound;
}

IRMAEDEF void irmae_model_free(irmae_model *m)
{
    if (!m) return;
    irmae__free(m->params); irmae__free(m->grads); irmae__free(m->adam_m); irmae__free(m->adam_v);
    irmae__free(m->acts); irmae__free(m->codes); irmae__free(m->vae_eps);
    irmae__free(m->grad_a); irmae__free(m->grad_b); irmae__free(m->work);
    memset(m, 0, sizeof *m);
}

static irmae_conv_desc irmae__layer_desc(const irmae_layer *L, int batch)
{
    irmae_conv_desc d;
    if (L->spec.type == IRMAE_LAYER_CONV)
        irmae_conv2d_desc(&d, batch, L->in_c, L->in_h, L->in_w, L->out_c, L->spec.k, L->spec.stride, L->spec.pad);
    else
        irmae_convt2d_desc(&d, batch, L->in_c, L->in_h, L->in_w, L->out_c, L->spec.k, L->spec.stride, L->spec.pad);
    return d;
}

IRMAEDEF int irmae_model_init(irmae_model *m, const irmae_config *cfg, irmae_rng *rng)
{
    int i, rc, B;
    size_t work = 0, maxio = 0, acts, codes;
    if (!m || !cfg || !rng) return irmae__fail(IRMAE_ERR_ARG, "model_init: NULL pointer");
    memset(m, 0, sizeof *m);
    rc = irmae__model_plan(m, cfg);
    if (rc) { memset(m, 0, sizeof *m); return rc; }
    m->cfg = *cfg;
    B = cfg->max_batch;
    for (i = 0; i < m->n_layers; i++) {
        const irmae_layer *L = &m->layers[i];
        size_t io = irmae__layer_out_size(L) > irmae__layer_in_size(L) ? irmae__layer_out_size(L) : irmae__layer_in_size(L);
        if (io > maxio) maxio = io;
        if (L->spec.type == IRMAE_LAYER_CONV || L->spec.type == IRMAE_LAYER_CONVT) {
            irmae_conv_desc d = irmae__layer_desc(L, B);
            size_t ws = irmae_conv_workspace(&d);
            if (ws > work) work = ws;
        }
    }
    if (!irmae__mul(&acts, m->max_act, (size_t)B) || !irmae__mul(&maxio, maxio, (size_t)B) ||
        !irmae__mul3(&codes, (size_t)(cfg->l + 1), (size_t)B, (size_t)cfg->n)) {
        memset(m, 0, sizeof *m);
        return irmae__fail(IRMAE_ERR_OVERFLOW, "model_init: workspace for batch %d overflows", B);
    }
    m->params = (float *)irmae__alloc(m->n_params, sizeof(float));
    m->grads = (float *)irmae__alloc(m->n_params, sizeof(float));
    m->adam_m = (float *)irmae__alloc(m->n_params, sizeof(float));
    m->adam_v = (float *)irmae__alloc(m->n_params, sizeof(float));
    m->acts = (float *)irmae__alloc(acts, sizeof(float));
    m->codes = (float *)irmae__alloc(codes, sizeof(float));
    m->vae_eps = (float *)irmae__alloc((size_t)B * cfg->n, sizeof(float));
    m->grad_a = (float *)irmae__alloc(maxio, sizeof(float));
    m->grad_b = (float *)irmae__alloc(maxio, sizeof(float));
    m->work = (float *)irmae__alloc(work, sizeof(float));
    if (!m->params || !m->grads || !m->adam_m || !m->adam_v || !m->acts || !m->codes ||
        !m->vae_eps || !m->grad_a || !m->grad_b || !m->work) {
        irmae_model_free(m);
        return irmae__fail(IRMAE_ERR_NOMEM, "model_init: %lu parameters, batch %d",
                           (unsigned long)m->n_params, B);
    }
    /* PyTorch's default initialisation, layer by layer in order */
    for (i = 0; i < m->n_layers; i++) {
        const irmae_layer *L = &m->layers[i];
        double fan_in;
        float bound;
        if (i == m->n_enc)
            irmae__uniform_fill(m->params + m->maps_off, (size_t)cfg->l * cfg->n * cfg->n,
                                (float)(1.0 / sqrt((double)cfg->n)), rng);
        if (!L->n_w) continue;
        if (L->spec.type == IRMAE_LAYER_CONV) fan_in = (double)L->in_c * L->spec.k * L->spec.k;
        else if (L->spec.type == IRMAE_LAYER_CONVT) fan_in = (double)L->out_c * L->spec.k * L->spec.k;
        else fan_in = (double)irmae__layer_in_size(L);
        bound = (float)(1.0 / sqrt(fan_in));
        irmae__uniform_fill(m->params + L->w_off, L->n_w, bound, rng);
        irmae__uniform_fill(m->params + L->b_off, L->n_b, bound, rng);
    }
    m->rng = irmae_rng_seed(irmae_rng_u64(rng));
    return IRMAE_OK;
}

/* Forward of layer L on batch B: out = L(in). */
static int irmae__layer_forward(irmae_model *m, const irmae_layer *L, float *out, const float *in, int B)
{
    const float *w = m->params + L->w_off, *b = L->n_b ? m->params + L->b_off : NULL;
    size_t count = irmae__layer_out_size(L) * (size_t)B;
    irmae_conv_desc d;
    switch (L->spec.type) {
    case IRMAE_LAYER_CONV:
        d = irmae__layer_desc(L, B);
        return irmae_conv2d_forward(out, in, w, b, &d, m->work);
    case IRMAE_LAYER_CONVT:
        d = irmae__layer_desc(L, B);
        return irmae_convt2d_forward(out, in, w, b, &d, m->work);
    case IRMAE_LAYER_LINEAR:
        return irmae_linear_forward(out, in, w, b, B, (int)irmae__layer_in_size(L), L->out_c);
    case IRMAE_LAYER_RELU: irmae_relu_forward(out, in, count); return IRMAE_OK;
    case IRMAE_LAYER_TANH: irmae_tanh_forward(out, in, count); return IRMAE_OK;
    case IRMAE_LAYER_SIGMOID: irmae_sigmoid_forward(out, in, count); return IRMAE_OK;
    default: /* reshape: same memory order */
        memcpy(out, in, count * sizeof(float));
        return IRMAE_OK;
    }
}

/* Backward of layer L: din (NULL: not needed) from dout; accumulates into grads. */
static int irmae__layer_backward(irmae_model *m, const irmae_layer *L, float *din, const float *dout,
                                 const float *in, const float *out, int B)
{
    const float *w = m->params + L->w_off;
    float *dw = m->grads + L->w_off, *db = L->n_b ? m->grads + L->b_off : NULL;
    size_t count = irmae__layer_out_size(L) * (size_t)B;
    irmae_conv_desc d;
    switch (L->spec.type) {
    case IRMAE_LAYER_CONV:
        d = irmae__layer_desc(L, B);
        return irmae_conv2d_backward(din, dw, db, dout, in, w, &d, m->work);
    case IRMAE_LAYER_CONVT:
        d = irmae__layer_desc(L, B);
        return irmae_convt2d_backward(din, dw, db, dout, in, w, &d, m->work);
    case IRMAE_LAYER_LINEAR:
        return irmae_linear_backward(din, dw, db, dout, in, w, B, (int)irmae__layer_in_size(L), L->out_c);
    default: break;
    }
    if (!din) return IRMAE_OK;
    switch (L->spec.type) {
    case IRMAE_LAYER_RELU: irmae_relu_backward(din, dout, out, count); break;
    case IRMAE_LAYER_TANH: irmae_tanh_backward(din, dout, out, count); break;
    case IRMAE_LAYER_SIGMOID: irmae_sigmoid_backward(din, dout, out, count); break;
    default: memcpy(din, dout, count * sizeof(float)); break;
    }
    return IRMAE_OK;
}

static float *irmae__act(irmae_model *m, int i, int B) { return m->acts + m->layers[i].act_off * (size_t)B; }

static int irmae__check_batch(const irmae_model *m, const void *p, int batch, const char *fn)
{
    if (!m || !m->params) return irmae__fail(IRMAE_ERR_ARG, "%s: model not initialised", fn);
    if (!p) return irmae__fail(IRMAE_ERR_ARG, "%s: NULL data", fn);
    if (batch <= 0 || batch > m->cfg.max_batch)
        return irmae__fail(IRMAE_ERR_ARG, "%s: batch %d not in 1..max_batch (%d)", fn, batch, m->cfg.max_batch);
    return IRMAE_OK;
}

/* Encoder layers [0, n_enc) on x; returns the encoder output e (B x code_dim). */
static int irmae__encode_batch(irmae_model *m, const float *x, int B, const float **e)
{
    int i, rc;
    const float *h = x;
    for (i = 0; i < m->n_enc; i++) {
        float *out = irmae__act(m, i, B);
        if ((rc = irmae__layer_forward(m, &m->layers[i], out, h, B))) return rc;
        h = out;
    }
    *e = h;
    return IRMAE_OK;
}

/* z_j = z_{j-1} W_j^T for j = 1..l; m->codes holds z_0 .. z_l (z_0 = e). */
static float *irmae__maps_forward(irmae_model *m, const float *e, int B)
{
    int j, n = m->cfg.n;
    size_t blk = (size_t)B * n;
    memcpy(m->codes, e, blk * sizeof(float));
    for (j = 1; j <= m->cfg.l; j++)
        irmae_sgemm(0, 1, B, n, n, 1.0f, m->codes + (j - 1) * blk, n,
                    m->params + m->maps_off + (size_t)(j - 1) * n * n, n, 0.0f, m->codes + j * blk, n);
    return m->codes + (size_t)m->cfg.l * blk;
}

/* Decoder layers on z; returns the output (the image). */
static int irmae__decode_batch(irmae_model *m, const float *z, int B, const float **y)
{
    int i, rc;
    const float *h = z;
    for (i = m->n_enc; i < m->n_layers; i++) {
        float *out = irmae__act(m, i, B);
        if ((rc = irmae__layer_forward(m, &m->layers[i], out, h, B))) return rc;
        h = out;
    }
    *y = h;
    return IRMAE_OK;
}

/* The VAE's output layer is a sigmoid whose input ("logits") the BCE uses. */
static int irmae__is_vae(const irmae_model *m) { return m->cfg.kind == IRMAE_KIND_VAE; }

/* Loss terms for a batch whose forward pass is done. If dy is not NULL, it
   receives d loss / d (decoder output), or, for the VAE, d loss / d logits;
   dz (B x n) receives d reg / d z (AE penalties) or is left alone. */
static double irmae__recon_loss(irmae_model *m, const float *x, int B, float *dy)
{
    const irmae_layer *last = &m->layers[m->n_layers - 1];
    size_t count = irmae__layer_out_size(last) * (size_t)B, i;
    double sum = 0.0, inv = 1.0 / (double)count;
    if (irmae__is_vae(m)) {
        /* BCE with logits a: max(a,0) - a x + log(1 + exp(-|a|)); gradient sigmoid(a) - x */
        const float *a = irmae__act(m, m->n_layers - 2 >= 0 ? m->n_layers - 2 : 0, B);
        const float *y = irmae__act(m, m->n_layers - 1, B);
        if (m->n_layers - 1 == m->n_enc) a = m->codes; /* decoder is only the sigmoid */
        for (i = 0; i < count; i++) {
            double av = a[i];
            sum += (av > 0 ? av : 0) - av * x[i] + log1p(exp(-fabs(av)));
            if (dy) dy[i] = (float)((y[i] - x[i]) * inv);
        }
    } else {
        const float *y = irmae__act(m, m->n_layers - 1, B);
        for (i = 0; i < count; i++) {
            double d = (double)y[i] - x[i];
            sum += d * d;
            if (dy) dy[i] = (float)(2.0 * d * inv);
        }
    }
    return sum * inv;
}

IRMAEDEF int irmae_model_forward_backward(irmae_model *m, const float *x, int B, float *loss, float *dx)
{
    const float *e, *y;
    float *z, *g, *gnext, *dz;
    int i, j, rc, n, last_bwd;
    size_t blk;
    double recon, reg = 0.0, total;
    if ((rc = irmae__check_batch(m, x, B, "forward_backward"))) return rc;
    n = m->cfg.n;
    blk = (size_t)B * n;
    if ((rc = irmae__encode_batch(m, x, B, &e))) return rc;
    if (irmae__is_vae(m)) {
        /* e = [mu | logvar] per image; z = mu + exp(logvar / 2) eps */
        z = m->codes;
        for (i = 0; i < B; i++)
            for (j = 0; j < n; j++) {
                float mu = e[(size_t)i * 2 * n + j], lv = e[(size_t)i * 2 * n + n + j];
                float ep = irmae_rng_normal(&m->rng);
                m->vae_eps[(size_t)i * n + j] = ep;
                z[(size_t)i * n + j] = mu + expf(0.5f * lv) * ep;
                reg += -0.5 * (1.0 + lv - (double)mu * mu - exp((double)lv));
            }
        reg *= m->cfg.vae_beta / (double)blk;
    } else {
        z = irmae__maps_forward(m, e, B);
        for (i = 0; i < (int)blk; i++) {
            if (m->cfg.code_l1 != 0.0f) reg += m->cfg.code_l1 * fabs((double)z[i]);
            if (m->cfg.code_l2 != 0.0f) reg += m->cfg.code_l2 * (double)z[i] * z[i];
        }
        reg /= (double)blk;
    }
    if ((rc = irmae__decode_batch(m, z, B, &y))) return rc;

    /* backward, starting from d loss / d output (or / d logits for the VAE) */
    memset(m->grads, 0, m->n_params * sizeof(float));
    g = m->grad_a; gnext = m->grad_b;
    recon = irmae__recon_loss(m, x, B, g);
    total = recon + reg;
    m->last_recon = recon; m->last_reg = reg; m->last_loss = total;
    if (loss) *loss = (float)total;
    if (!isfinite(total))
        return irmae__fail(IRMAE_ERR_NUMERIC, "forward_backward: loss is %g at step %lld", total, m->step + 1);
    last_bwd = irmae__is_vae(m) ? m->n_layers - 2 : m->n_layers - 1;
    for (i = last_bwd; i >= m->n_enc; i--) {
        const float *in = i == m->n_enc ? z : irmae__act(m, i - 1, B);
        if ((rc = irmae__layer_backward(m, &m->layers[i], gnext, g, in, irmae__act(m, i, B), B))) return rc;
        { float *t = g; g = gnext; gnext = t; }
    }
    /* g = d loss / d z (B x n) */
    dz = g;
    if (irmae__is_vae(m)) {
        /* into d/d[mu | logvar], written to gnext as the encoder output gradient */
        double s = m->cfg.vae_beta / (double)blk;
        for (i = 0; i < B; i++)
            for (j = 0; j < n; j++) {
                float mu = e[(size_t)i * 2 * n + j], lv = e[(size_t)i * 2 * n + n + j];
                float d = dz[(size_t)i * n + j], ep = m->vae_eps[(size_t)i * n + j];
                gnext[(size_t)i * 2 * n + j] = d + (float)(s * mu);
                gnext[(size_t)i * 2 * n + n + j] = d * ep * 0.5f * expf(0.5f * lv) +
                                                   (float)(s * 0.5 * (exp((double)lv) - 1.0));
            }
        { float *t = g; g = gnext; gnext = t; }
    } else {
        /* code penalties, then back through the maps: dz_{j-1} = dz_j W_j, dW_j += dz_j^T z_{j-1} */
        for (i = 0; i < (int)blk; i++) {
            float zi = z[i];
            if (m->cfg.code_l1 != 0.0f) dz[i] += (float)(m->cfg.code_l1 / (double)blk) * (zi > 0.0f ? 1.0f : zi < 0.0f ? -1.0f : 0.0f);
            if (m->cfg.code_l2 != 0.0f) dz[i] += (float)(2.0 * m->cfg.code_l2 / (double)blk) * zi;
        }
        for (j = m->cfg.l; j >= 1; j--) {
            const float *wj = m->params + m->maps_off + (size_t)(j - 1) * n * n;
            float *dwj = m->grads + m->maps_off + (size_t)(j - 1) * n * n;
            irmae_sgemm(1, 0, n, n, B, 1.0f, g, n, m->codes + (j - 1) * blk, n, 1.0f, dwj, n);
            irmae_sgemm(0, 0, B, n, n, 1.0f, g, n, wj, n, 0.0f, gnext, n);
            { float *t = g; g = gnext; gnext = t; }
        }
    }
    for (i = m->n_enc - 1; i >= 0; i--) {
        const float *in = i == 0 ? x : irmae__act(m, i - 1, B);
        float *din = i == 0 ? dx : gnext;
        if ((rc = irmae__layer_backward(m, &m->layers[i], din, g, in, irmae__act(m, i, B), B))) return rc;
        { float *t = g; g = gnext; gnext = t; }
    }
    if (dx) { /* x is also the target: add d recon / d target */
        size_t count = (size_t)B * irmae__layer_out_size(&m->layers[m->n_layers - 1]), k;
        double inv = 1.0 / (double)count;
        if (irmae__is_vae(m)) { /* d/dx of BCE with logits a: -a */
            const float *a = m->n_layers - 1 == m->n_enc ? m->codes : irmae__act(m, m->n_layers - 2, B);
            for (k = 0; k < count; k++) dx[k] -= (float)(a[k] * inv);
        } else {
            const float *yy = irmae__act(m, m->n_layers - 1, B);
            for (k = 0; k < count; k++) dx[k] -= (float)(2.0 * ((double)yy[k] - x[k]) * inv);
        }
    }
    return IRMAE_OK;
}

IRMAEDEF int irmae_model_adam_step(irmae_model *m)
{
    double bc1, bc2;
    float lr, b1, b2, eps, s1, s2;
    ptrdiff_t i, np;
    if (!m || !m->params) return irmae__fail(IRMAE_ERR_ARG, "adam_step: model not initialised");
    m->step++;
    b1 = m->cfg.beta1; b2 = m->cfg.beta2; eps = m->cfg.eps;
    bc1 = 1.0 - pow((double)b1, (double)m->step);
    bc2 = 1.0 - pow((double)b2, (double)m->step);
    /* p -= lr * (m / bc1) / (sqrt(v / bc2) + eps) */
    lr = (float)(m->cfg.lr / bc1);
    s1 = 1.0f - b1; s2 = 1.0f - b2;
    {
        float inv_bc2 = (float)(1.0 / bc2);
        float *p = m->params, *g = m->grads, *mm = m->adam_m, *vv = m->adam_v;
        np = (ptrdiff_t)m->n_params;
        IRMAE__OMP(parallel for schedule(static) if(np > IRMAE__PAR_MIN))
        for (i = 0; i < np; i++) {
            float gi = g[i];
            float mi = b1 * mm[i] + s1 * gi;
            float vi = b2 * vv[i] + s2 * gi * gi;
            mm[i] = mi; vv[i] = vi;
            p[i] -= lr * mi / (sqrtf(vi * inv_bc2) + eps);
        }
    }
    return IRMAE_OK;
}

IRMAEDEF int irmae_model_train_step(irmae_model *m, const float *x, int batch, float *loss)
{
    int rc = irmae_model_forward_backward(m, x, batch, loss, NULL);
    if (rc) return rc;
    return irmae_model_adam_step(m);
}

/* Runs f over count items in chunks of max_batch. */
static int irmae__chunks(irmae_model *m, const float *src, size_t src_stride, int count, float *dst,
                         size_t dst_stride, int (*f)(irmae_model *, const float *, int, float *))
{
    int i, rc;
    for (i = 0; i < count; i += m->cfg.max_batch) {
        int b = count - i < m->cfg.max_batch ? count - i : m->cfg.max_batch;
        if ((rc = f(m, src + (size_t)i * src_stride, b, dst + (size_t)i * dst_stride))) return rc;
    }
    return IRMAE_OK;
}

static int irmae__features_chunk(irmae_model *m, const float *x, int B, float *out)
{
    const float *e;
    int i, rc, n = m->cfg.n;
    if ((rc = irmae__encode_batch(m, x, B, &e))) return rc;
    for (i = 0; i < B; i++) /* the VAE's e is [mu | logvar]: keep mu */
        memcpy(out + (size_t)i * n, e + (size_t)i * m->code_dim, (size_t)n * sizeof(float));
    return IRMAE_OK;
}

static int irmae__encode_chunk(irmae_model *m, const float *x, int B, float *z)
{
    int rc = irmae__features_chunk(m, x, B, z);
    if (rc || irmae__is_vae(m)) return rc;
    memcpy(z, irmae__maps_forward(m, z, B), (size_t)B * m->cfg.n * sizeof(float));
    return IRMAE_OK;
}

static int irmae__decode_chunk(irmae_model *m, const float *z, int B, float *out)
{
    const float *y;
    int rc = irmae__decode_batch(m, z, B, &y);
    if (rc) return rc;
    memcpy(out, y, (size_t)B * m->cfg.in_c * m->cfg.in_h * m->cfg.in_w * sizeof(float));
    return IRMAE_OK;
}

static size_t irmae__image_size(const irmae_model *m)
{ return (size_t)m->cfg.in_c * m->cfg.in_h * m->cfg.in_w; }

static int irmae__check_io(const irmae_model *m, const void *in, int count, const void *out, const char *fn)
{
    if (!m || !m->params) return irmae__fail(IRMAE_ERR_ARG, "%s: model not initialised", fn);
    if (!in || !out) return irmae__fail(IRMAE_ERR_ARG, "%s: NULL pointer", fn);
    if (count <= 0) return irmae__fail(IRMAE_ERR_ARG, "%s: count %d", fn, count);
    return IRMAE_OK;
}

IRMAEDEF int irmae_model_features(irmae_model *m, const float *x, int count, float *e)
{
    int rc = irmae__check_io(m, x, count, e, "model_features");
    return rc ? rc : irmae__chunks(m, x, irmae__image_size(m), count, e, (size_t)m->cfg.n, irmae__features_chunk);
}

IRMAEDEF int irmae_model_encode(irmae_model *m, const float *x, int count, float *z)
{
    int rc = irmae__check_io(m, x, count, z, "model_encode");
    return rc ? rc : irmae__chunks(m, x, irmae__image_size(m), count, z, (size_t)m->cfg.n, irmae__encode_chunk);
}

IRMAEDEF int irmae_model_decode(irmae_model *m, const float *z, int count, float *out)
{
    int rc = irmae__check_io(m, z, count, out, "model_decode");
    return rc ? rc : irmae__chunks(m, z, (size_t)m->cfg.n, count, out, irmae__image_size(m), irmae__decode_chunk);
}

IRMAEDEF int irmae_model_loss(irmae_model *m, const float *x, int batch, float *loss)
{
    const float *e, *y;
    const float *z;
    int rc;
    double reg = 0.0;
    size_t i, blk;
    if ((rc = irmae__check_batch(m, x, batch, "model_loss"))) return rc;
    if (!loss) return irmae__fail(IRMAE_ERR_ARG, "model_loss: NULL loss");
    blk = (size_t)batch * m->cfg.n;
    if ((rc = irmae__encode_batch(m, x, batch, &e))) return rc;
    if (irmae__is_vae(m)) {
        int b, j, n = m->cfg.n;
        for (b = 0; b < batch; b++)
            for (j = 0; j < n; j++) {
                double mu = e[(size_t)b * 2 * n + j], lv = e[(size_t)b * 2 * n + n + j];
                m->codes[(size_t)b * n + j] = (float)mu;
                reg += -0.5 * (1.0 + lv - mu * mu - exp(lv));
            }
        reg *= m->cfg.vae_beta / (double)blk;
        z = m->codes;
    } else {
        z = irmae__maps_forward(m, e, batch);
        for (i = 0; i < blk; i++)
            reg += m->cfg.code_l1 * fabs((double)z[i]) + m->cfg.code_l2 * (double)z[i] * z[i];
        reg /= (double)blk;
    }
    if ((rc = irmae__decode_batch(m, z, batch, &y))) return rc;
    *loss = (float)(irmae__recon_loss(m, x, batch, NULL) + reg);
    return isfinite(*loss) ? IRMAE_OK : irmae__fail(IRMAE_ERR_NUMERIC, "model_loss: loss is %g", *loss);
}

IRMAEDEF int irmae_model_collapse(const irmae_model *m, float *w)
{
    int j, i, n;
    float *tmp;
    if (!m || !m->params || !w) return irmae__fail(IRMAE_ERR_ARG, "model_collapse: NULL pointer");
    n = m->cfg.n;
    memset(w, 0, (size_t)n * n * sizeof(float));
    for (i = 0; i < n; i++) w[(size_t)i * n + i] = 1.0f;
    if (m->cfg.l == 0) return IRMAE_OK;
    tmp = (float *)irmae__alloc((size_t)n * n, sizeof(float));
    if (!tmp) return irmae__fail(IRMAE_ERR_NOMEM, "model_collapse: %d x %d", n, n);
    /* W <- W_j W for j = 1..l, so W = W_l ... W_1 */
    for (j = 1; j <= m->cfg.l; j++) {
        irmae_sgemm(0, 0, n, n, n, 1.0f, m->params + m->maps_off + (size_t)(j - 1) * n * n, n, w, n, 0.0f, tmp, n);
        memcpy(w, tmp, (size_t)n * n * sizeof(float));
    }
    irmae__free(tmp);
    return IRMAE_OK;
}
