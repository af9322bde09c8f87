/* ======================================================================== */
/* Layers                                                                   */
/* ======================================================================== */

/* Forward/backward pairs on batches. Outputs first, then inputs, then sizes.
   Backward functions overwrite the input gradient (din) and ACCUMULATE (+=)
   into parameter gradients (dw, db); zero those explicitly. */

/* Linear: in [batch, in_f], w [out_f, in_f], b [out_f] or NULL,
   out [batch, out_f]: out = in w^T + b. */
IRMAEDEF int irmae_linear_forward(float *out, const float *in, const float *w, const float *b,
                                  int batch, int in_f, int out_f);
/* din [batch, in_f] (NULL: not computed), dw [out_f, in_f], db [out_f] (either NULL: skipped). */
IRMAEDEF int irmae_linear_backward(float *din, float *dw, float *db, const float *dout,
                                   const float *in, const float *w, int batch, int in_f, int out_f);
/* Elementwise activations on count values; backward uses the forward's
   output y (din may alias dout; out may alias in). */
IRMAEDEF void irmae_relu_forward(float *out, const float *in, size_t count);
IRMAEDEF void irmae_relu_backward(float *din, const float *dout, const float *out, size_t count);
IRMAEDEF void irmae_tanh_forward(float *out, const float *in, size_t count);
IRMAEDEF void irmae_tanh_backward(float *din, const float *dout, const float *out, size_t count);
IRMAEDEF void irmae_sigmoid_forward(float *out, const float *in, size_t count);
IRMAEDEF void irmae_sigmoid_backward(float *din, const float *dout, const float *out, size_t count);

/* ======================================================================== */
/* Networks and models                                                      */
/* ======================================================================== */

enum {
    IRMAE_LAYER_CONV = 1,   /* conv2d, weight [out, in, k, k] */
    IRMAE_LAYER_CONVT,      /* conv-transpose2d, weight [in, out, k, k] */
    IRMAE_LAYER_LINEAR,     /* on the flattened input, weight [out, in] */
    IRMAE_LAYER_RELU,
    IRMAE_LAYER_TANH,
    IRMAE_LAYER_SIGMOID,
    IRMAE_LAYER_RESHAPE     /* to c x h x w (c = 0: flatten to features x 1 x 1) */
};

/* As the output size of the encoder's last layer: "the code", i.e. n (or 2n
   for the VAE, which outputs a mean and a log-variance). */
#define IRMAE_CODE (-1)

/* One layer of an encoder or decoder list. Build them with the helpers below. */
typedef struct irmae_layer_spec {
    int type;              /* IRMAE_LAYER_* */
    int out;               /* conv/convT channels or linear features, or IRMAE_CODE */
    int k, stride, pad;    /* conv/convT: square kernel, stride, padding */
    int bias;              /* conv/convT/linear: 1 = with bias */
    int c, h, w;           /* reshape target */
} irmae_layer_spec;

IRMAEDEF irmae_layer_spec irmae_layer_conv(int out, int k, int stride, int pad);
IRMAEDEF irmae_layer_spec irmae_layer_convt(int out, int k, int stride, int pad);
IRMAEDEF irmae_layer_spec irmae_layer_linear(int out, int bias);
IRMAEDEF irmae_layer_spec irmae_layer_act(int type); /* IRMAE_LAYER_RELU / TANH / SIGMOID */
IRMAEDEF irmae_layer_spec irmae_layer_reshape(int c, int h, int w);
IRMAEDEF irmae_layer_spec irmae_layer_flatten(void);

enum { IRMAE_KIND_AE = 0,  /* AE (l = 0) or IRMAE (l > 0), optional L1/L2 code penalty */
       IRMAE_KIND_VAE = 1  /* mean/log-variance, reparameterised, BCE + beta KL */ };
enum { IRMAE_OUT_AUTO = 0, /* tanh for AE/IRMAE, sigmoid for the VAE */
       IRMAE_OUT_TANH, IRMAE_OUT_SIGMOID, IRMAE_OUT_NONE };
enum { IRMAE_PRESET_SHAPES = 0, IRMAE_PRESET_MNIST = 1, IRMAE_PRESET_CELEBA64 = 2 };

/* Everything that defines a model. A plain value: copy it, store it. */
typedef struct irmae_config {
    int in_c, in_h, in_w;       /* image shape */
    int n;                      /* code size */
    int l;                      /* number of extra n x n linear maps (0 = AE) */
    int kind;                   /* IRMAE_KIND_AE or IRMAE_KIND_VAE */
    int out_act;                /* IRMAE_OUT_*: activation after the decoder */
    int n_enc, n_dec;           /* layers used in enc[] and dec[] */
    irmae_layer_spec enc[IRMAE_MAX_LAYERS];  /* image -> code (ends with IRMAE_CODE outputs) */
    irmae_layer_spec dec[IRMAE_MAX_LAYERS];  /* code (n x 1 x 1) -> image, without out_act */
    float code_l1, code_l2;     /* AE: weight of mean |z| / mean z^2 penalty (0 = none) */
    float vae_beta;             /* VAE: weight of the KL term (0.1 as the authors) */
    float lr, beta1, beta2, eps;/* Adam */
    int max_batch;              /* largest batch; workspaces are sized for it once */
    int range_pm1;              /* 0: pixels in [0,1] (default), 1: in [-1,1] */
} irmae_config;

/* The architectures of the paper (DESIGN.md), with the paper's training
   settings: lr 1e-4, betas (0.9, 0.999), eps 1e-8, max_batch 128, l = 0,
   n = 32 (shapes) or 128 (mnist, celeba64). */
IRMAEDEF irmae_config irmae_preset(int preset);

/* A layer as resolved for a model: shapes, parameter offsets, activation offsets. */
typedef struct irmae_layer {
    irmae_layer_spec spec;
    int in_c, in_h, in_w, out_c, out_h, out_w;
    size_t w_off, b_off, n_w, n_b;   /* into params/grads (n_b = 0: no bias) */
    size_t act_off;                  /* output of this layer in acts, per max batch */
} irmae_layer;

typedef struct irmae_model {
    irmae_config cfg;
    int n_layers, n_enc;             /* layers[0..n_enc) encoder, then decoder (+ out_act) */
    irmae_layer layers[2 * IRMAE_MAX_LAYERS + 1];
    int code_dim;                    /* encoder output size: n, or 2n for the VAE */
    size_t n_params;
    float *params, *grads, *adam_m, *adam_v;   /* one buffer each, n_params floats */
    size_t maps_off;                 /* the l maps: params + maps_off, l blocks of n x n, W_1 first */
    long long step;                  /* Adam steps taken */
    irmae_rng rng;                   /* VAE sampling */
    /* workspaces, sized once for cfg.max_batch */
    float *acts;                     /* every layer's output */
    float *codes;                    /* (l + 1) x batch x n: e = z_0, z_1 .. z_l; VAE: sampled z */
    float *vae_eps;                  /* VAE noise batch x n */
    float *grad_a, *grad_b;          /* ping-pong activation gradients */
    float *work;                     /* convolution workspace */
    size_t max_act;                  /* largest per-image activation (floats) */
    /* last step's loss terms (mean over the batch) */
    double last_loss, last_recon, last_reg;
} irmae_model;

/* Validates cfg (shapes must chain; the decoder must output the image shape),
   allocates everything once, and initialises parameters as PyTorch does:
   U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases. */
IRMAEDEF int irmae_model_init(irmae_model *m, const irmae_config *cfg, irmae_rng *rng);
IRMAEDEF void irmae_model_free(irmae_model *m);
/* Parameters of a configuration without building it (0 on invalid cfg). */
IRMAEDEF size_t irmae_config_param_count(const irmae_config *cfg);

/* Forward + backward on a batch x (batch x C x H x W): grads are zeroed,
   then hold d loss / d params; *loss (may be NULL) gets the loss; dx (may be
   NULL) gets d loss / d x. IRMAE_ERR_NUMERIC if the loss is not finite. */
IRMAEDEF int irmae_model_forward_backward(irmae_model *m, const float *x, int batch, float *loss, float *dx);
/* One Adam step with the current grads (bias-corrected). */
IRMAEDEF int irmae_model_adam_step(irmae_model *m);
/* forward_backward + adam_step. */
IRMAEDEF int irmae_model_train_step(irmae_model *m, const float *x, int batch, float *loss);
/* Loss of a batch without touching grads (VAE: with the mean code, no noise). */
IRMAEDEF int irmae_model_loss(irmae_model *m, const float *x, int batch, float *loss);

/* Codes z (count x n) of count images: after the l maps; the mean for the VAE. */
IRMAEDEF int irmae_model_encode(irmae_model *m, const float *x, int count, float *z);
/* Encoder features e (count x n) before the linear maps (the VAE: the mean). */
IRMAEDEF int irmae_model_features(irmae_model *m, const float *x, int count, float *e);
/* Images (count x C x H x W) decoded from codes z (count x n). */
IRMAEDEF int irmae_model_decode(irmae_model *m, const float *z, int count, float *out);
/* The l maps multiplied into one n x n matrix W = W_l ... W_1 (identity for
   l = 0), so that z = W e. */
IRMAEDEF int irmae_model_collapse(const irmae_model *m, float *w);
