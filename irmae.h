/* irmae.h - Implicit Rank-Minimizing Autoencoders in one C header.

   IRMAE (Jing, Zbontar & LeCun, NeurIPS 2020, arXiv 2010.00679) is a plain
   autoencoder with l extra square n x n linear maps, without bias and without
   activation, between the encoder and the decoder. Their product is a single
   linear map, so the network can express nothing a plain AE cannot, yet
   gradient descent on the deep linear chain drifts toward low-rank solutions:
   the covariance of the codes ends up with few large eigenvalues, i.e. a
   latent space of low effective dimension, learned with a plain MSE loss.
   After training, the l maps collapse into one matrix (inference costs what a
   plain AE costs).

   Do this:
       #define IRMAE_IMPLEMENTATION
   before you include this file in *one* C or C++ file to create the
   implementation. Other files include it without the define.

   Quick start: one epoch on 10,000 synthetic shapes (the paper trains 100
   epochs of 50,000; examples/shapes.c is the whole program). `make test`
   compiles and runs these lines as they stand here.

       irmae_rng rng = irmae_rng_seed(1);
       irmae_dataset train;
       irmae_config cfg = irmae_preset(IRMAE_PRESET_SHAPES);
       irmae_model m;
       if (irmae_shapes_make(&train, NULL, 10000, &rng)) return 1;  // 7 factors
       cfg.l = 2;                                       // the extra linear maps
       if (irmae_model_init(&m, &cfg, &rng)) { puts(irmae_error_detail()); return 1; }
       for (int i = 0; i + 32 <= train.n; i += 32)
           irmae_model_train_step(&m, NULL, irmae_dataset_image(&train, i), 32);
       printf("last batch: loss %.4f\n", m.last_loss);
       irmae_model_free(&m);
       irmae_dataset_free(&train);

   Build:  cc -O2 -fopenmp prog.c -lm     (the same without -fopenmp works)

   Conventions. Arguments come in one order everywhere, as in
   memcpy(dst, src, n): the object whose function it is (the irmae_model *
   of irmae_model_*, the irmae_dataset * of irmae_dataset_*, a struct the
   call fills or frees) first; then what the call writes (output buffers,
   out-parameters, the file it creates; a buffer updated in place counts as
   written); then what it reads; then sizes (a count may follow the buffer
   it describes); options and the RNG last. Two functions keep the order
   their users know: irmae_sgemm (BLAS's) and irmae_crc32 / irmae_adler32
   (zlib's running value first). Every fallible function returns 0
   (IRMAE_OK) or a negative IRMAE_ERR_* code, and irmae_error_detail() says
   which check failed.

   Contents. Each section has a tag: search for it to jump to the section's
   declarations (first hit) and then to its implementation (second hit).
       @errors       status codes, irmae_error_detail()
       @rng          xoshiro256** random numbers
       @checksums    CRC-32, Adler-32
       @gemm         sgemm: packing, AVX-512 / AVX2 / NEON / scalar micro-kernels
       @conv         conv2d / conv-transpose2d: im2col, col2im, phase planes
       @layers       linear, ReLU, tanh, sigmoid on batches
       @optimiser    Adam, gradient-norm clipping, softmax cross-entropy
       @model        configurations, presets, the model and its training step;
                     in the implementation: @layer-types (one block and one
                     table row per layer type, e.g. @upsample), @forward,
                     @backward, @inference
       @mpi          data-parallel training (only with IRMAE_MPI)
       @datasets     data sets, synthetic shapes
       @deflate      DEFLATE / zlib compression, PNG writing
       @loaders      untrusted files: @inflate, @png, @idx, @resample, @mnist
                     (MNIST, image folders, shuffling, minibatches)
       @analysis     covariance, eigen-solver, spectrum, GMM, PCA, Frechet
       @checkpoints  checkpoints, safetensors export, NumPy .npy arrays
       @model-analysis  the spectrum of a model's codes, interpolation
   (@portability, in the implementation only: includes, SIMD detection, OpenMP.)

   Configuration macros (define before including):
       IRMAE_STATIC            make every function static to this translation unit
       IRMAEDEF                override the storage class of the public functions
       IRMAE_MALLOC(sz) / IRMAE_FREE(p)   allocator (define both or neither)
       IRMAE_ASSERT(x)         assertion for programmer errors (default: assert)
       IRMAE_NO_SIMD           use only the portable scalar kernels
       IRMAE_MAX_LAYERS        layers per encoder/decoder list (default 32)
       IRMAE_CONV_CHUNK_FLOATS largest convolution workspace before the batch
                               is split into chunks (default 1 Mi floats)
       IRMAE_MAX_IMAGE_DIM     largest PNG width/height accepted (default 32768)
       IRMAE_MAX_IMAGE_PIXELS  largest PNG pixel count accepted (default 2^28)
       IRMAE_MAX_ALLOC         largest single allocation a loader makes (2^31 B)
       IRMAE_MPI               data-parallel training over MPI (includes <mpi.h>;
                               build with mpicc): irmae_model_train_step_mpi()

   Parts you can leave out (define before including, in every file that
   includes irmae.h; the model, its kernels, the optimiser and the data sets
   always stay):
       IRMAE_NO_WRITERS        DEFLATE/zlib compression and PNG writing (@deflate)
       IRMAE_NO_LOADERS        inflate, zlib, gzip, PNG, IDX/MNIST and image-folder
                               readers (@loaders)
       IRMAE_NO_CODECS         both of the above
       IRMAE_NO_ANALYSIS       covariance, eigen-solver, spectra, GMM, PCA, Frechet, plots
                               and the model's spectrum / interpolation (@analysis)
       IRMAE_NO_CHECKPOINTS    checkpoints, the safetensors export, .npy arrays (@checkpoints)
   (MPI is left out unless IRMAE_MPI is defined.)

   Version 0.2.0. MIT licence at the end of this file.
*/
#ifndef IRMAE_H
#define IRMAE_H

#include <stddef.h>
#include <stdint.h>

#define IRMAE_VERSION_MAJOR 0
#define IRMAE_VERSION_MINOR 2
#define IRMAE_VERSION_PATCH 0

#ifndef IRMAEDEF
#ifdef IRMAE_STATIC
#if defined(__GNUC__) || defined(__clang__)
#define IRMAEDEF static __attribute__((unused)) /* no warning for what a file does not call */
#else
#define IRMAEDEF static
#endif
#else
#define IRMAEDEF extern
#endif
#endif

#ifndef IRMAE_MAX_LAYERS
#define IRMAE_MAX_LAYERS 32
#endif
#ifdef IRMAE_NO_CODECS
#ifndef IRMAE_NO_WRITERS
#define IRMAE_NO_WRITERS
#endif
#ifndef IRMAE_NO_LOADERS
#define IRMAE_NO_LOADERS
#endif
#endif
/* limits of the loaders (see @loaders) */
#ifndef IRMAE_MAX_IMAGE_DIM
#define IRMAE_MAX_IMAGE_DIM 32768
#endif
#ifndef IRMAE_MAX_IMAGE_PIXELS
#define IRMAE_MAX_IMAGE_PIXELS ((size_t)1 << 28)
#endif
#ifndef IRMAE_MAX_ALLOC
#define IRMAE_MAX_ALLOC ((size_t)1 << 31)
#endif

#ifdef IRMAE_MPI /* data-parallel training over MPI (see "MPI" in the model section) */
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1 /* the C API only, also from C++ */
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================== */
/* Errors                                                           @errors */
/* ======================================================================== */

/* Every fallible function returns 0 (IRMAE_OK) or one of these negative codes.
   irmae_error_string() names a code (stateless); irmae_error_detail() returns
   a thread-local sentence about the last failure on this thread (which check,
   which argument, which offset). */
enum {
    IRMAE_OK = 0,
    IRMAE_ERR_ARG = -1,         /* invalid argument: NULL, size <= 0, bad enum */
    IRMAE_ERR_NOMEM = -2,       /* allocation failed */
    IRMAE_ERR_OVERFLOW = -3,    /* a size computation overflows */
    IRMAE_ERR_IO = -4,          /* a file could not be opened, read or written */
    IRMAE_ERR_FORMAT = -5,      /* malformed input data */
    IRMAE_ERR_TRUNCATED = -6,   /* input ends too early */
    IRMAE_ERR_CHECKSUM = -7,    /* CRC-32 / Adler-32 mismatch */
    IRMAE_ERR_LIMIT = -8,       /* input exceeds a configured limit */
    IRMAE_ERR_UNSUPPORTED = -9, /* valid but not supported */
    IRMAE_ERR_SHAPE = -10,      /* shapes or sizes do not fit together */
    IRMAE_ERR_NUMERIC = -11,    /* a NaN or an infinity appeared */
    IRMAE_ERR_CONVERGENCE = -12,/* an iterative solver did not converge */
    IRMAE_ERR_VERSION = -13,    /* file written by a newer format version */
    IRMAE_ERR_MISMATCH = -14    /* data does not match the model/configuration */
};

/* Name of a status code ("invalid argument", ...). Never NULL. */
IRMAEDEF const char *irmae_error_string(int code);
/* Detail of the last error set on the calling thread ("" if none). */
IRMAEDEF const char *irmae_error_detail(void);
/* Clears the detail of the calling thread. */
IRMAEDEF void irmae_error_clear(void);

/* ======================================================================== */
/* Random numbers                                                      @rng */
/* ======================================================================== */

/* xoshiro256** seeded through splitmix64. State is explicit: same seed, same
   bits, on every platform. */
typedef struct irmae_rng { uint64_t s[4]; } irmae_rng;

IRMAEDEF irmae_rng irmae_rng_seed(uint64_t seed);
IRMAEDEF uint64_t irmae_rng_u64(irmae_rng *r);
/* uniform in [0, 1) with 24 random bits */
IRMAEDEF float irmae_rng_uniform(irmae_rng *r);
/* uniform integer in [lo, hi] (inclusive, unbiased) */
IRMAEDEF int irmae_rng_int(irmae_rng *r, int lo, int hi);
/* standard normal (Box-Muller in double) */
IRMAEDEF float irmae_rng_normal(irmae_rng *r);

/* ======================================================================== */
/* Checksums                                                     @checksums */
/* ======================================================================== */

/* CRC-32 (ISO-HDLC, as PNG/gzip). Start with crc = 0; chain calls. */
IRMAEDEF uint32_t irmae_crc32(uint32_t crc, const void *data, size_t len);
/* Adler-32 (zlib). Start with adler = 1; chain calls. */
IRMAEDEF uint32_t irmae_adler32(uint32_t adler, const void *data, size_t len);

/* ======================================================================== */
/* Kernels: GEMM                                                      @gemm */
/* ======================================================================== */

/* C = alpha * op(A) * op(B) + beta * C, row-major, op(X) = X or X^T.
   op(A) is m x k, op(B) is k x n, C is m x n. lda/ldb/ldc are row strides
   of the matrices as stored. beta == 0 ignores (overwrites) C's contents,
   so C may hold NaN garbage. m, n or k <= 0 is a no-op on A/B (k <= 0 only
   scales C by beta). Dispatches to the fastest path the CPU supports. */
IRMAEDEF void irmae_sgemm(int trans_a, int trans_b, int m, int n, int k,
                          float alpha, const float *a, int lda,
                          const float *b, int ldb,
                          float beta, float *c, int ldc);
/* The plain scalar reference (the tests' ground truth). Same contract. */
IRMAEDEF void irmae_sgemm_ref(int trans_a, int trans_b, int m, int n, int k,
                              float alpha, const float *a, int lda,
                              const float *b, int ldb,
                              float beta, float *c, int ldc);

/* SIMD paths that irmae_sgemm may use. irmae_simd_force() restricts
   dispatch (for tests and benchmarks) to at most the given level; it returns
   the level now in use (the best the CPU supports up to the request). The
   environment variable IRMAE_SIMD=scalar|avx2|avx512|neon does the same at
   the first call. */
enum { IRMAE_SIMD_SCALAR = 0, IRMAE_SIMD_AVX2 = 1, IRMAE_SIMD_AVX512 = 2,
       IRMAE_SIMD_NEON = 3, IRMAE_SIMD_BEST = 100 };
IRMAEDEF int irmae_simd_force(int level);
/* Frees the calling thread's GEMM packing buffers (they are otherwise kept
   for the life of the thread, so that training steps never allocate). */
IRMAEDEF void irmae_sgemm_release(void);
IRMAEDEF int irmae_simd_level(void);
IRMAEDEF const char *irmae_simd_name(int level);

/* Where the time goes: an opt-in profile of the library's work by phase,
   for benchmarks and for users tuning their own models. Off by default
   (then it costs one branch per timed region). While on, each phase's
   seconds accumulate for the calling thread (the work a call hands to
   OpenMP threads is counted once, as the caller's wall time): GEMM (the
   micro-kernels and small products), packing (GEMM operand copies),
   lowering (im2col, col2im and the gathers/scatters of the convolutions),
   elementwise (activations, the convolutions' bias adds and gradients), loss (the
   reconstruction loss, KL and code penalties with their gradients), Adam
   (the update and the finite-gradient check before it). Time outside these
   is the caller's "other". Without OpenMP the clock is the processor time
   of the process (clock()), which is the wall time of a single thread. */
enum { IRMAE_PHASE_GEMM = 0, IRMAE_PHASE_PACK, IRMAE_PHASE_LOWER, IRMAE_PHASE_ELEMWISE,
       IRMAE_PHASE_LOSS, IRMAE_PHASE_ADAM, IRMAE_PHASE_COUNT };
IRMAEDEF void irmae_profile_enable(int on);
/* seconds[IRMAE_PHASE_COUNT] <- the calling thread's totals since the last
   reset; reset != 0 zeroes them afterwards. */
IRMAEDEF void irmae_profile_read(double *seconds, int reset);
IRMAEDEF const char *irmae_phase_name(int phase); /* "gemm", "pack", ... */

/* ======================================================================== */
/* Kernels: convolution                                               @conv */
/* ======================================================================== */

/* 2-D convolution and transposed convolution on NCHW float32 tensors, with
   the semantics of torch.nn.Conv2d (cross-correlation) and
   torch.nn.ConvTranspose2d: square kernel k x k, the same stride and zero
   padding in both directions, no dilation, no groups, no output_padding.

   Output sizes:   conv2d   out = (in + 2 pad - k) / stride + 1
                   convT2d  out = (in - 1) stride - 2 pad + k
   Weight layouts (as PyTorch): conv2d [out_c, in_c, k, k],
   convT2d [in_c, out_c, k, k]; bias [out_c] or NULL.

   The fast kernels lower the convolution to one irmae_sgemm per chunk of
   images (im2col / col2im) and run the copies in parallel with OpenMP. Each
   thread owns the values it writes and every sum has a fixed order, so the
   results are bit-identical for any number of threads. The *_ref functions
   are plain direct loops accumulating in double (the tests' ground truth).

   Tensors must not overlap each other (out vs in, din vs dout, ...). */
typedef struct irmae_conv_desc {
    int batch;                 /* N images */
    int in_c, in_h, in_w;      /* input  C x H x W */
    int out_c, out_h, out_w;   /* output C x H x W (computed by the init functions) */
    int k, stride, pad;        /* square kernel, same stride/pad in both directions */
    int transposed;            /* 0: conv2d, 1: conv-transpose2d */
} irmae_conv_desc;

/* Fills *d for a conv2d (transposed = 0) / conv-transpose2d (transposed = 1)
   and computes out_h/out_w. Checks: all sizes and stride > 0, 0 <= pad < k,
   output >= 1 in both directions (IRMAE_ERR_SHAPE otherwise), and that no
   size used anywhere (tensors, weights, workspace, GEMM dimensions, which are
   ints) overflows (IRMAE_ERR_OVERFLOW). Non-positive sizes / bad pad give
   IRMAE_ERR_ARG, as does d == NULL. On failure *d is zeroed. */
IRMAEDEF int irmae_conv2d_desc(irmae_conv_desc *d, int batch, int in_c, int in_h, int in_w,
                               int out_c, int k, int stride, int pad);
IRMAEDEF int irmae_convt2d_desc(irmae_conv_desc *d, int batch, int in_c, int in_h, int in_w,
                                int out_c, int k, int stride, int pad);

/* Number of floats of scratch the fast kernels need for this desc (0 when
   they need none: then `work` may be NULL). Monotone (non-decreasing) in
   d->batch: a workspace sized for a desc serves every desc that differs only
   by a smaller batch. 0 as well for an invalid desc (and d == NULL). The
   amount is bounded by working in chunks of images: at most
   IRMAE_CONV_CHUNK_FLOATS floats (define it before the implementation;
   default 1 Mi floats = 4 MB), or one image's worth when a single image
   needs more. The chunk size depends only on the desc, never on threads. */
IRMAEDEF size_t irmae_conv_workspace(const irmae_conv_desc *d);

/* conv2d forward: out [N, out_c, out_h, out_w] = conv(in [N, in_c, in_h, in_w],
   w [out_c, in_c, k, k]) + b [out_c] (b may be NULL). out is overwritten.
   work: irmae_conv_workspace(d) floats (contents ignored and clobbered).
   Errors: IRMAE_ERR_ARG for a NULL out/in/w/work (work only when the
   workspace is non-zero), a transposed desc, or a desc whose fields are
   inconsistent (re-validated). */
IRMAEDEF int irmae_conv2d_forward(float *out, const float *in, const float *w, const float *b,
                                  const irmae_conv_desc *d, float *work);
/* conv2d backward: given dout [N, out_c, out_h, out_w]:
   din [N, in_c, in_h, in_w] is OVERWRITTEN with dL/din (may be NULL: skipped);
   dw [out_c, in_c, k, k] += dL/dw and db [out_c] += dL/db (ACCUMULATED; either
   may be NULL). dout is always required; in is required when dw != NULL and
   w when din != NULL; work only when din or dw is requested (db alone needs
   none). Errors as the forward. */
IRMAEDEF int irmae_conv2d_backward(float *din, float *dw, float *db, const float *dout,
                                   const float *in, const float *w,
                                   const irmae_conv_desc *d, float *work);
/* conv-transpose2d forward: out [N, out_c, out_h, out_w] from in [N, in_c,
   in_h, in_w], w [in_c, out_c, k, k], b [out_c] or NULL. Same contracts as
   irmae_conv2d_forward (desc must be transposed). */
IRMAEDEF int irmae_convt2d_forward(float *out, const float *in, const float *w, const float *b,
                                   const irmae_conv_desc *d, float *work);
/* conv-transpose2d backward: din overwritten (or NULL), dw [in_c, out_c, k, k]
   and db [out_c] accumulated (or NULL). Same contracts as irmae_conv2d_backward. */
IRMAEDEF int irmae_convt2d_backward(float *din, float *dw, float *db, const float *dout,
                                    const float *in, const float *w,
                                    const irmae_conv_desc *d, float *work);

/* Plain direct-loop references (double accumulation, no workspace, single
   thread). Same shapes, contracts and errors as the fast functions above. */
IRMAEDEF int irmae_conv2d_forward_ref(float *out, const float *in, const float *w, const float *b,
                                      const irmae_conv_desc *d);
IRMAEDEF int irmae_conv2d_backward_ref(float *din, float *dw, float *db, const float *dout,
                                       const float *in, const float *w, const irmae_conv_desc *d);
IRMAEDEF int irmae_convt2d_forward_ref(float *out, const float *in, const float *w, const float *b,
                                       const irmae_conv_desc *d);
IRMAEDEF int irmae_convt2d_backward_ref(float *din, float *dw, float *db, const float *dout,
                                        const float *in, const float *w, const irmae_conv_desc *d);

/* ======================================================================== */
/* Layers                                                           @layers */
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
/* Optimiser: Adam, gradient clipping, softmax cross-entropy     @optimiser */
/* ======================================================================== */

/* Adam (Kingma & Ba, as torch.optim.Adam without weight decay). For the
   update number step (1, 2, ...) and every i < count:
       m = beta1 m + (1 - beta1) g,   v = beta2 v + (1 - beta2) g^2,
       p -= (lr / (1 - beta1^step)) m / (sqrt(v / (1 - beta2^step)) + eps)
   params, m and v are updated in place (m and v start at zero); grads is
   read. Every SIMD path does the same float operations in the same order
   (no fused multiply-add) and threads own fixed chunks, so the result does
   not depend on the CPU or the thread count. The model's
   irmae_model_adam_step is this on its parameter buffer.
   Errors: IRMAE_ERR_ARG (NULL pointer, step < 1, lr < 0, betas outside
   [0, 1), eps <= 0). */
typedef struct irmae_adam { float lr, beta1, beta2, eps; } irmae_adam;
IRMAEDEF int irmae_adam_update(float *params, float *m, float *v, const float *grads, size_t count,
                              long long step, const irmae_adam *hp);
/* Returns the global L2 norm of grads[0..count), summed in double in a
   fixed order (the same bits for any thread count). If max_norm > 0 and the
   norm is larger, scales every gradient by max_norm / norm (as
   torch.nn.utils.clip_grad_norm_). A norm that is not finite (a NaN or an
   infinity among the gradients) is returned as it is and nothing is
   scaled. NULL grads: 0 for count 0, else NaN. */
IRMAEDEF double irmae_grad_clip(float *grads, size_t count, float max_norm);
/* Softmax cross-entropy of batch rows of logits (classes each) against
   integer labels: *loss (may be NULL) = the mean over the rows of
   -log softmax(logits)[label] (in double, max-shifted: no overflow);
   dlogits (may be NULL) = d loss / d logits = (softmax - onehot) / batch.
   Errors: IRMAE_ERR_ARG (NULL logits/labels, batch or classes <= 0, a label
   outside 0..classes-1), IRMAE_ERR_NUMERIC (a logit is not finite). */
IRMAEDEF int irmae_softmax_xent(float *dlogits, double *loss, const float *logits, const int *labels,
                                int batch, int classes);

/* ======================================================================== */
/* Networks and models                                               @model */
/* ======================================================================== */

enum {
    IRMAE_LAYER_CONV = 1,   /* conv2d, weight [out, in, k, k] */
    IRMAE_LAYER_CONVT,      /* conv-transpose2d, weight [in, out, k, k] */
    IRMAE_LAYER_LINEAR,     /* on the flattened input, weight [out, in] */
    IRMAE_LAYER_RELU,
    IRMAE_LAYER_TANH,
    IRMAE_LAYER_SIGMOID,
    IRMAE_LAYER_RESHAPE,    /* to c x h x w (c = 0: flatten to features x 1 x 1) */
    IRMAE_LAYER_UPSAMPLE    /* nearest-neighbour, by an integer scale (stride field) */
};

/* As the output size of the encoder's last layer: "the code", i.e. n (or 2n
   for the VAE, which outputs a mean and a log-variance). */
#define IRMAE_CODE (-1)

/* One layer of an encoder or decoder list. Build them with the helpers below. */
typedef struct irmae_layer_spec {
    int type;              /* IRMAE_LAYER_* */
    int out;               /* conv/convT channels or linear features, or IRMAE_CODE */
    int k, stride, pad;    /* conv/convT: square kernel, stride, padding; upsample: scale in stride */
    int bias;              /* conv/convT/linear: 1 = with bias */
    int c, h, w;           /* reshape target */
} irmae_layer_spec;

IRMAEDEF irmae_layer_spec irmae_layer_conv(int out, int k, int stride, int pad);
IRMAEDEF irmae_layer_spec irmae_layer_convt(int out, int k, int stride, int pad);
IRMAEDEF irmae_layer_spec irmae_layer_linear(int out, int bias);
IRMAEDEF irmae_layer_spec irmae_layer_act(int type); /* IRMAE_LAYER_RELU / TANH / SIGMOID */
IRMAEDEF irmae_layer_spec irmae_layer_reshape(int c, int h, int w);
IRMAEDEF irmae_layer_spec irmae_layer_flatten(void);
/* nearest-neighbour upsampling, as torch.nn.Upsample(scale_factor=scale): h x w -> (scale h) x (scale w), 1 <= scale <= 64 */
IRMAEDEF irmae_layer_spec irmae_layer_upsample(int scale);

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
    float grad_clip;            /* > 0: scale gradients so their global L2 norm <= grad_clip */
    int max_batch;              /* largest batch; workspaces are sized for it once */
    int range_pm1;              /* 0: pixels in [0,1] (default), 1: in [-1,1] */
} irmae_config;

/* The architectures of the paper (README.md lists them layer by layer), with
   the paper's training settings: lr 1e-4, betas (0.9, 0.999), eps 1e-8,
   l = 0, n = 32 (shapes) or 128 (mnist, celeba64); max_batch 128 (shapes,
   mnist) or 32 (celeba64, whose activations take 4x the memory per image). */
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
    float *sum_work;                 /* MPI builds: the gradient sum's receive buffer, */
    size_t sum_work_cap;             /* allocated at the first step, then reused */
    size_t act_per_image;            /* floats of all layers' outputs for one image */
    /* last step's loss terms (mean over the batch) */
    double last_loss, last_recon, last_reg;
    double last_grad_norm;           /* global L2 norm of the gradients (before clipping) */
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
   NULL) gets d loss / d x. Numeric guard: IRMAE_ERR_NUMERIC if the loss or
   any gradient is not finite, with a detail naming the step and the layer.
   With cfg.grad_clip > 0 the gradients are scaled to that global L2 norm
   when larger (m->last_grad_norm keeps the norm before clipping). */
IRMAEDEF int irmae_model_forward_backward(irmae_model *m, float *loss, float *dx, const float *x, int batch);
/* One Adam step with the current grads (bias-corrected). */
IRMAEDEF int irmae_model_adam_step(irmae_model *m);
/* forward_backward + adam_step. */
IRMAEDEF int irmae_model_train_step(irmae_model *m, float *loss, const float *x, int batch);
/* Loss of a batch without touching grads (VAE: with the mean code, no noise). */
IRMAEDEF int irmae_model_loss(irmae_model *m, float *loss, const float *x, int batch);

/* Codes z (count x n) of count images: after the l maps; the mean for the VAE. */
IRMAEDEF int irmae_model_encode(irmae_model *m, float *z, const float *x, int count);
/* Encoder features e (count x n) before the linear maps (the VAE: the mean). */
IRMAEDEF int irmae_model_features(irmae_model *m, float *e, const float *x, int count);
/* Supervised training of the encoder (the paper's fully supervised
   reference): with de = dL/de (batch x n) of some loss L on the features
   e = the features of x (irmae_model_features), zeroes the gradients and back-propagates de
   through the encoder (the VAE: into the mean; the log-variance gets no
   gradient). Decoder and map gradients stay 0; irmae_model_adam_step then
   updates the model. The encoder's forward pass is recomputed here, so the
   call depends only on its arguments. batch <= max_batch. */
IRMAEDEF int irmae_model_features_backward(irmae_model *m, const float *x, const float *de, int batch);
/* Images (count x C x H x W) decoded from codes z (count x n). */
IRMAEDEF int irmae_model_decode(irmae_model *m, float *out, const float *z, int count);
/* The l maps multiplied into one n x n matrix W = W_l ... W_1 (identity for
   l = 0), so that z = W e. */
IRMAEDEF int irmae_model_collapse(const irmae_model *m, float *w);

#ifdef IRMAE_MPI
/* ---- MPI: data-parallel training (build with mpicc -DIRMAE_MPI) ---------
   Every rank holds the same model and takes its own contiguous slice of every
   global batch (irmae_mpi_shard: sizes differ by at most one when the batch
   is not divisible by the number of ranks; a rank may get 0 images). Each
   rank computes the gradient of ITS mean loss, weighs it by
   local_batch / global_batch, and the weighted gradients are summed over the
   ranks, so the sum is the gradient of the global-batch mean. The sum has a
   fixed order: irmae_mpi_allreduce_sum() moves data with MPI_Alltoallv and
   MPI_Allgatherv (no arithmetic inside MPI) and adds the contributions in
   rank order 0, 1, .., N-1 in double, so the result depends on (N, count)
   only, never on timing or on the MPI library's choice of algorithm, and
   every rank gets the same bits. The numeric guard and gradient clipping then
   run on the summed (identical) gradients, so every rank takes the same
   decision and the same Adam step. Errors on any rank (a NaN in one rank's
   loss, a failed allocation) are exchanged before the gradient sum: every
   rank returns the code of the lowest failing rank, and its detail reads
   "rank r of N: <that rank's detail>"; no rank is left waiting. */

/* The slice of a global batch of `global_batch` images that rank `rank` of
   `size` trains on: images [*offset, *offset + *count). */
IRMAEDEF void irmae_mpi_shard(int *offset, int *count, int global_batch, int rank, int size);
/* buf[0..count) <- the sum over the ranks of comm of their buf, in rank order
   (see above); collective. Memory: one temporary of about count floats
   (irmae_model_forward_backward_mpi keeps its own in the model instead).
   Errors: IRMAE_ERR_LIMIT (count > INT_MAX), IRMAE_ERR_NOMEM, IRMAE_ERR_IO
   (an MPI call failed). */
IRMAEDEF int irmae_mpi_allreduce_sum(float *buf, size_t count, MPI_Comm comm);
/* Collective agreement on a status: every rank passes its own rc and gets
   back the rc of the lowest rank whose rc is not 0 (0 if none); *first_rank
   (may be NULL) gets that rank (-1 if none). When some rank failed, the
   detail of every rank becomes "rank r of N: <detail of rank r>". */
IRMAEDEF int irmae_mpi_agree(int *first_rank, int rc, MPI_Comm comm);
/* forward_backward over the ranks of comm: x holds this rank's shard
   (irmae_mpi_shard(&offset, &count, global_batch, rank, size)) of the global batch; on
   return every rank holds the same gradients of the global-batch mean loss
   (after the guard and clipping, as irmae_model_forward_backward), *loss
   (may be NULL) the global mean loss. Collective: every rank must call it
   with the same global_batch. The VAE's noise is drawn per global image, as
   one process would. */
IRMAEDEF int irmae_model_forward_backward_mpi(irmae_model *m, float *loss, const float *x, int global_batch,
                                              MPI_Comm comm);
/* forward_backward_mpi + adam_step (the same step on every rank). */
IRMAEDEF int irmae_model_train_step_mpi(irmae_model *m, float *loss, const float *x, int global_batch, MPI_Comm comm);
#endif /* IRMAE_MPI */
/* ======================================================================== */
/* Data sets                                                      @datasets */
/* ======================================================================== */

/* n images of c x h x w floats (CHW, one image after the other), with
   optional integer labels. Owns its memory: free with irmae_dataset_free(). */
typedef struct irmae_dataset {
    int n, c, h, w;
    float *x;       /* n * c * h * w values */
    int *labels;    /* n labels, or NULL */
} irmae_dataset;

/* Allocates a zero-filled data set (labels too when with_labels != 0). */
IRMAEDEF int irmae_dataset_alloc(irmae_dataset *ds, int n, int c, int h, int w, int with_labels);
IRMAEDEF void irmae_dataset_free(irmae_dataset *ds);
/* Pointer to image i (c * h * w floats); NULL if i is out of range. */
IRMAEDEF float *irmae_dataset_image(const irmae_dataset *ds, int i);

/* The synthetic shapes data set of the paper: 3 x 32 x 32, black background,
   one filled shape per image with hard edges. Seven factors: colour (r, g, b)
   uniform in [0,1], anchor x, y uniform integers in [8, 24], size uniform
   integer in [3, 8], kind circle (radius = size, centred on the anchor) or
   square (side = size, top-left corner on the anchor; clipped at the border).
   Pixels in [0,1]. labels[i] = kind (0 circle, 1 square). */
typedef struct irmae_shape { float r, g, b; int x, y, size, kind; } irmae_shape;
enum { IRMAE_SHAPE_CIRCLE = 0, IRMAE_SHAPE_SQUARE = 1 };
IRMAEDEF irmae_shape irmae_shape_random(irmae_rng *rng);
/* Draws s into img (3 x h x w floats, cleared first). */
IRMAEDEF void irmae_shape_draw(float *img, const irmae_shape *s, int h, int w);
/* count images drawn from rng; factors (count entries, may be NULL) gets each image's factors. */
IRMAEDEF int irmae_shapes_make(irmae_dataset *ds, irmae_shape *factors, int count, irmae_rng *rng);
/* Maps every value v of the data set to lo + v (hi - lo), e.g. [0,1] -> [-1,1]. */
IRMAEDEF int irmae_dataset_rescale(irmae_dataset *ds, float lo, float hi);
/* Fills perm[0..n) with 0..n-1 and shuffles it (Fisher-Yates, each swap
   index from irmae_rng_int): the same rng state gives the same order.
   Errors: IRMAE_ERR_ARG (NULL perm or rng with n > 0, n < 0). */
IRMAEDEF int irmae_shuffle(int *perm, int n, irmae_rng *rng);
/* Copies images idx[0..count) of ds into out (count * c * h * w floats, one
   image after the other), e.g. a shuffled minibatch. Every index is checked
   before anything is written. Errors: IRMAE_ERR_ARG (NULL pointer, count < 0,
   an index outside 0..n-1: the detail names its position). */
IRMAEDEF int irmae_dataset_gather(const irmae_dataset *ds, float *out, const int *idx, int count);

#ifndef IRMAE_NO_WRITERS
/* ======================================================================== */
/* Data: DEFLATE / zlib compression, PNG writing                   @deflate */
/* ======================================================================== */

/* Raw DEFLATE (RFC 1951) of src[0..size) into a new buffer (*out, *out_size),
   owned by the caller: free it with irmae_free_buffer().
   level 0 = stored blocks only; 1..9 = LZ77 (32 KiB window, lengths 3..258,
   hash chains; 1..3 greedy, 4..9 lazy matching, longer searches at higher
   levels) with a per-block choice of fixed Huffman, dynamic Huffman (optimal
   length-limited codes: 15 bits for literal/length and distance codes,
   7 bits for the code-length code) or stored, whichever is smallest; runs of
   stored blocks are merged, so incompressible data grows by ~5 bytes per
   64 KiB. level -1 means 6. Memory: a fixed ~1 MiB of tables plus the output.
   src may be NULL only when size == 0. On error *out = NULL, *out_size = 0.
   Errors: IRMAE_ERR_ARG (NULL out/out_size/src, level outside -1..9),
   IRMAE_ERR_NOMEM. */
IRMAEDEF int irmae_deflate(unsigned char **out, size_t *out_size, const void *src, size_t size, int level);
/* zlib stream (RFC 1950): 2-byte header (32 KiB window, FLEVEL from level,
   valid FCHECK, no dictionary), raw DEFLATE as irmae_deflate(), big-endian
   Adler-32 of src. Same ownership and errors as irmae_deflate(). */
IRMAEDEF int irmae_zlib_compress(unsigned char **out, size_t *out_size, const void *src, size_t size, int level);
/* Frees a buffer returned by irmae_deflate / irmae_zlib_compress /
   irmae_png_encode. NULL is a no-op. */
IRMAEDEF void irmae_free_buffer(void *p);

/* Encodes 8-bit pixels (row-major, channels interleaved, w * h * c bytes,
   no row padding) as a PNG: c = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA.
   Non-interlaced; each row gets the filter (None/Sub/Up/Average/Paeth) with
   the minimum sum of absolute (signed) filtered bytes; the rows are zlib
   compressed at level 6 and split into IDAT chunks of at most 64 KiB.
   *out (free with irmae_free_buffer) and *out_size receive the file bytes.
   Errors: IRMAE_ERR_ARG (NULL pointer, w or h <= 0, c not in 1..4),
   IRMAE_ERR_OVERFLOW (w * c + 1) * h does not fit in memory sizes,
   IRMAE_ERR_NOMEM. */
IRMAEDEF int irmae_png_encode(unsigned char **out, size_t *out_size, const unsigned char *pixels, int w, int h, int c);
/* irmae_png_encode() and write the bytes to the file at path (created or
   truncated). Errors: those of irmae_png_encode, IRMAE_ERR_ARG for a NULL
   path, IRMAE_ERR_IO (open/write/close failed; the detail names the path). */
IRMAEDEF int irmae_png_write(const char *path, const unsigned char *pixels, int w, int h, int c);
/* Writes `count` float images (CHW, c = 1 grey or 3 RGB, each c * h * w
   values, one after the other) as one PNG grid, `cols` images per row
   (cols > count is reduced to count), with `pad` >= 0 pixels of mid-grey
   (128) around and between the cells; empty cells of the last row are grey
   too. Grid size: (cols * w + (cols + 1) * pad) x (rows * h + (rows + 1) * pad).
   A value v becomes round(255 * clamp((v - lo) / (hi - lo), 0, 1)); NaN maps
   to 0. hi < lo inverts the scale.
   Errors: IRMAE_ERR_ARG (NULL path/images, count/h/w/cols <= 0, pad < 0,
   c not 1 or 3, lo or hi not finite, lo == hi), IRMAE_ERR_OVERFLOW (grid
   larger than 2^31 - 1 pixels on a side or in memory), and those of
   irmae_png_write. */
IRMAEDEF int irmae_png_write_grid(const char *path, const float *images, int count, int c,
                                  int h, int w, int cols, int pad, float lo, float hi);
#endif /* IRMAE_NO_WRITERS */
#ifndef IRMAE_NO_LOADERS
/* ======================================================================== */
/* Data: loaders for untrusted files (inflate, zlib, gzip, PNG, IDX/MNIST, */
/* image folders)                                                 @loaders */
/* ======================================================================== */

/* Every loader treats its input as hostile: each length, offset, count and
   size product is checked before use, nothing is read past the end of the
   input, every allocation is bounded by the limits below, and a failure
   returns a named IRMAE_ERR_* code whose irmae_error_detail() names the
   check and the byte offset. Outputs are zeroed (NULL, 0) on every error.

   Limits (define before including the implementation to change them):
     IRMAE_MAX_IMAGE_DIM     largest PNG width or height       (32768)
     IRMAE_MAX_IMAGE_PIXELS  largest PNG width * height        (1 << 28)
     IRMAE_MAX_ALLOC         largest single buffer in bytes: a file read into
                             memory, a decompressed stream, an image
                             ((size_t)1 << 31)
   Exceeding one gives IRMAE_ERR_LIMIT. */

/* --- DEFLATE decoding --------------------------------------------------- */

/* Decodes a raw DEFLATE stream (RFC 1951: stored, fixed and dynamic Huffman
   blocks) that fills src[0..size) exactly (bytes after the final block are an
   error; the unused bits of the last byte are ignored). *out receives a new
   buffer of *out_size bytes, owned by the caller: free it with
   irmae_free_buffer(). The output may not exceed max_out bytes (0 means
   IRMAE_MAX_ALLOC; larger values are capped to IRMAE_MAX_ALLOC).
   Huffman tables are checked as zlib does: over-subscribed code lengths are
   rejected, incomplete codes are rejected except a literal/length or distance
   code with a single 1-bit code (or no distance code at all); every repeat of
   the code-length code, every length and distance symbol (286-287, 30-31 are
   invalid) and every distance (not farther back than the output so far) is
   checked. A stream with an empty output gives a 1-byte buffer and
   *out_size = 0.
   Errors: IRMAE_ERR_ARG (NULL out/out_size, NULL src with size > 0),
   IRMAE_ERR_FORMAT (invalid data), IRMAE_ERR_TRUNCATED (input ends inside the
   stream), IRMAE_ERR_LIMIT (output would exceed the limit), IRMAE_ERR_NOMEM. */
IRMAEDEF int irmae_inflate(unsigned char **out, size_t *out_size, const void *src, size_t size, size_t max_out);
/* A zlib stream (RFC 1950) that fills src[0..size) exactly: CM must be 8 with
   a window (CINFO) <= 32 KiB, the header check FCHECK must hold, a preset
   dictionary (FDICT) is IRMAE_ERR_UNSUPPORTED, the big-endian Adler-32 of the
   output is verified (IRMAE_ERR_CHECKSUM). Otherwise as irmae_inflate(). */
IRMAEDEF int irmae_zlib_decompress(unsigned char **out, size_t *out_size, const void *src, size_t size, size_t max_out);
/* A gzip file (RFC 1952), possibly several members, whose outputs are
   concatenated (like gzip -d). FEXTRA, FNAME and FCOMMENT are skipped, FHCRC
   (CRC-16 of the header) is verified, reserved flag bits are an error, and
   each member's CRC-32 and ISIZE (length mod 2^32) are verified
   (IRMAE_ERR_CHECKSUM). Zero bytes after a member are ignored (padding);
   anything else after a member must be another member (IRMAE_ERR_FORMAT).
   Otherwise as irmae_inflate(); max_out bounds the total output. */
IRMAEDEF int irmae_gzip_decompress(unsigned char **out, size_t *out_size, const void *src, size_t size, size_t max_out);

/* --- PNG decoding ------------------------------------------------------- */

/* An 8-bit image: h rows of w pixels of c interleaved channels
   (c = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA), no row padding.
   Owns pixels: free with irmae_image_free(). */
typedef struct irmae_image { int w, h, c; unsigned char *pixels; } irmae_image;

/* Decodes a PNG file held in memory. Supported: every colour type (0 grey,
   2 RGB, 3 palette, 4 grey+alpha, 6 RGBA) with every bit depth the spec allows
   for it (1/2/4/8/16 grey, 1/2/4/8 palette, 8/16 otherwise), PLTE, tRNS,
   Adam7 interlacing, the five filters, any number of IDAT chunks.
   Checked: the signature, every chunk's CRC, chunk lengths, IHDR first and
   valid, PLTE (not for grey, once, before tRNS and IDAT, 1..2^depth entries
   for palette images), tRNS (once, before IDAT, after PLTE, right length,
   not on grey+alpha or RGBA images), IDAT chunks consecutive and present, an
   IEND chunk (bytes after IEND are ignored), unknown critical chunks
   (IRMAE_ERR_UNSUPPORTED; unknown ancillary chunks are skipped), filter
   types, palette indices, and that the image data decompresses to exactly the
   size the header implies (bytes after the end of the zlib stream inside
   IDAT are ignored, as libpng does).
   want_channels: 0 keeps the file's channels (grey 1, grey+alpha 2, RGB 3,
   RGBA 4; palette gives 3, or 4 when a tRNS chunk is present; grey or RGB
   with tRNS gain an alpha channel: 0 where the pixel equals the tRNS colour
   exactly, at full bit depth, 255 elsewhere); 1..4 converts to that many
   channels. Colour to grey: Y = (77 R + 150 G + 29 B + 128) >> 8 (BT.601
   weights in 1/256ths); dropping alpha does not composite. 16-bit samples
   become (v * 255 + 32767) / 65535; grey samples of 1, 2 or 4 bits are
   scaled to 0..255 (v * 255 / (2^depth - 1)); palette indices select PLTE
   entries as they are.
   out is zeroed on error.
   Errors: IRMAE_ERR_ARG (NULL out, NULL data with size > 0, want_channels
   outside 0..4), IRMAE_ERR_FORMAT, IRMAE_ERR_TRUNCATED, IRMAE_ERR_CHECKSUM,
   IRMAE_ERR_UNSUPPORTED, IRMAE_ERR_LIMIT (IRMAE_MAX_IMAGE_DIM,
   IRMAE_MAX_IMAGE_PIXELS, IRMAE_MAX_ALLOC), IRMAE_ERR_NOMEM. */
IRMAEDEF int irmae_png_decode(irmae_image *out, const void *data, size_t size, int want_channels);
/* Reads the file at path (at most IRMAE_MAX_ALLOC bytes) and decodes it as
   irmae_png_decode(). Adds IRMAE_ERR_IO (the detail names the path). */
IRMAEDEF int irmae_png_load(irmae_image *out, const char *path, int want_channels);
/* Frees the pixels and zeroes *img. NULL is a no-op. */
IRMAEDEF void irmae_image_free(irmae_image *img);

/* --- IDX (MNIST) -------------------------------------------------------- */

/* An IDX array of unsigned bytes: rank 1..4, dims[0..rank) (others 0), size =
   product of the dims = number of bytes in data (row-major, as in the file).
   Owns data: free with irmae_idx_free(). */
typedef struct irmae_idx { int rank; int dims[4]; unsigned char *data; size_t size; } irmae_idx;

/* Parses an IDX file held in memory; a gzip file (magic 1f 8b) is
   decompressed first (output bounded by IRMAE_MAX_ALLOC). Checks: magic
   (two zero bytes), element type (0x08 unsigned byte; the other IDX types
   0x09, 0x0B, 0x0C, 0x0D, 0x0E give IRMAE_ERR_UNSUPPORTED, anything else
   IRMAE_ERR_FORMAT), rank 1..4 (0 FORMAT, > 4 UNSUPPORTED), each dimension
   <= INT_MAX, and the exact size: fewer bytes than the header implies is
   IRMAE_ERR_TRUNCATED, more is IRMAE_ERR_FORMAT. Dimensions of 0 are allowed
   (size 0, data a 1-byte buffer). *out is zeroed on error.
   Errors: IRMAE_ERR_ARG, IRMAE_ERR_FORMAT, IRMAE_ERR_TRUNCATED,
   IRMAE_ERR_UNSUPPORTED, IRMAE_ERR_LIMIT, IRMAE_ERR_NOMEM, and those of
   irmae_gzip_decompress(). */
IRMAEDEF int irmae_idx_parse(irmae_idx *out, const void *data, size_t size);
/* irmae_idx_parse() of the file at path. Adds IRMAE_ERR_IO; the detail of
   every error names the path. */
IRMAEDEF int irmae_idx_load(irmae_idx *out, const char *path);
/* Frees the data and zeroes *idx. NULL is a no-op. */
IRMAEDEF void irmae_idx_free(irmae_idx *idx);

/* Loads MNIST-style IDX files (plain or gzipped) as a data set of n grey
   images (c = 1): images_path must hold a rank-3 array n x rows x cols,
   labels_path a rank-1 array of n labels (different n: IRMAE_ERR_MISMATCH;
   other ranks: IRMAE_ERR_SHAPE; n = 0: IRMAE_ERR_FORMAT). Labels go to
   ds->labels as they are (0..255). Pixels v become v / 255 in [0, 1], or
   v / 127.5 - 1 in [-1, 1] when range_pm1 != 0. out_h x out_w (0 keeps rows
   / cols, independently) resizes with irmae's resampler (see
   irmae_images_load: for enlarging, e.g. 28 -> 32, it equals PyTorch's
   F.interpolate(mode="bilinear", align_corners=False, antialias=False)).
   *ds is zeroed on error. Errors: IRMAE_ERR_ARG (NULL pointer, negative
   size), those of irmae_idx_load(), IRMAE_ERR_NOMEM. */
IRMAEDEF int irmae_mnist_load(irmae_dataset *ds, const char *images_path, const char *labels_path,
                              int out_h, int out_w, int range_pm1);

/* --- Image folders, batches --------------------------------------------- */

/* Loads every file whose name ends in ".png" (any case) in folder (not its
   subfolders), in strcmp order of the names, as a data set of n images of
   c channels (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA; converted as
   irmae_png_decode with want_channels = c), CHW floats in [0, 1] (v / 255)
   or [-1, 1] (v / 127.5 - 1) when range_pm1 != 0. No labels.
   crop > 0 first cuts the centred crop x crop square, with torchvision's
   CenterCrop offsets (top = round((h - crop) / 2), halves rounded to even);
   an image smaller than crop is IRMAE_ERR_SHAPE. Then out_h x out_w > 0
   resizes with a separable triangle (bilinear) filter evaluated at pixel
   centres: enlarging, this is exactly bilinear interpolation with
   align_corners=False (PyTorch F.interpolate, edge pixels clamped);
   shrinking by a factor s, the triangle is widened to a support of s pixels
   on each side and the weights renormalised, so every source pixel counts
   (an area-like average, the antialiased bilinear of PIL's resize and of
   torchvision's Resize(antialias=True)). CelebA protocol: crop = 148,
   out 64 x 64. out_h = out_w = 0 keeps the (cropped) size, and then every
   image must have the same size (IRMAE_ERR_SHAPE otherwise).
   *ds is zeroed on error. Errors: IRMAE_ERR_ARG (NULL pointer, c outside
   1..4, negative sizes, only one of out_h/out_w set), IRMAE_ERR_IO (folder
   cannot be listed, or has no .png file), IRMAE_ERR_SHAPE, the errors of
   irmae_png_load() (the detail names the file), IRMAE_ERR_NOMEM. */
IRMAEDEF int irmae_images_load(irmae_dataset *ds, const char *folder, int c, int out_h, int out_w,
                               int crop, int range_pm1);

#endif /* IRMAE_NO_LOADERS */
#ifndef IRMAE_NO_ANALYSIS
/* ======================================================================== */
/* Analysis: covariance, eigen-solver, spectrum, Gaussian / GMM, PCA,      */
/* Frechet distance                                              @analysis */
/* ======================================================================== */

/* All numerics here run in double. Inputs are row vectors: `x` is a
   count x n row-major float array (one code per row). Every function
   checks its arguments (NULL, sizes <= 0, count < 2 where a covariance is
   needed, size overflow) and its input values (NaN/Inf give
   IRMAE_ERR_NUMERIC with the offending row and column in the detail). */

/* Unbiased covariance (divides by count - 1; count >= 2) and mean of the
   count rows of x (count x n floats). cov: n x n doubles (caller's buffer,
   written in full, symmetric); mean: n doubles or NULL. Two passes (mean,
   then centred products with the rounding correction of the second pass).
   Errors: ARG, OVERFLOW, NOMEM, NUMERIC. */
IRMAEDEF int irmae_covariance(double *cov, double *mean, const float *x, int count, int n);

/* Symmetric eigen-decomposition by Householder tridiagonalisation and
   implicit QR with Wilkinson shifts. a: n x n (read only; (a + a^T) / 2 is
   used, so only a symmetric a makes sense). eigenvalues: n doubles out, in
   descending order. vectors: n x n doubles or NULL; row i is the unit
   eigenvector of eigenvalues[i]. The matrix is scaled by a power of two
   internally, so values from 1e-300 to 1e300 are fine. Accuracy: absolute
   errors about n * DBL_EPSILON * max|a|. Cost O(n^3), single-threaded
   (CPU time on a 2-core AMD EPYC: n = 512 0.06 s values only, 0.25 s with
   vectors; n = 1024 0.5 s / 2.7 s). Errors: ARG, OVERFLOW, NOMEM, NUMERIC (NaN/Inf in a),
   CONVERGENCE (more than 100 QR sweeps for one eigenvalue; not seen). */
IRMAEDEF int irmae_eigh(double *eigenvalues, double *vectors, const double *a, int n);

/* Spectrum of the code covariance (the paper's Fig. 2 and its numbers). */
typedef struct irmae_spectrum {
    int n;
    double *values;      /* n eigenvalues of the covariance, descending (owned) */
    double *normalized;  /* max(values, 0) / values[0] (owned); zeros if values[0] <= 0 */
    int rank_1pct;       /* count normalized >= 0.01 */
    int rank_01pct;      /* count normalized >= 0.001 */
    double entropy_rank; /* exp(H(p)), p_i = max(s_i, 0) / sum; 0 if all s_i <= 0 */
} irmae_spectrum;

/* Spectrum of the covariance of codes (count x n floats, count >= 2).
   On success s owns its arrays (free with irmae_spectrum_free); on failure s
   is zeroed. Errors: as irmae_covariance and irmae_eigh. */
IRMAEDEF int irmae_spectrum_compute(irmae_spectrum *s, const float *codes, int count, int n);
/* Frees the arrays and zeroes s (NULL is fine). */
IRMAEDEF void irmae_spectrum_free(irmae_spectrum *s);
/* Count of normalized values >= threshold (e.g. 0.01); IRMAE_ERR_ARG if s is
   NULL/empty or threshold is NaN. */
IRMAEDEF int irmae_spectrum_rank(const irmae_spectrum *s, double threshold);

/* CSV: header "index,<name1>,<name2>,..." then one row per index 1..max n
   with the normalized values of each spectrum (%.17g; an empty cell where a
   spectrum is shorter). names may be NULL, and so may any entry ("spectrum
   <i>" is used); names with ',', '"' or line breaks are quoted (RFC 4180).
   Errors: ARG, IO. */
IRMAEDEF int irmae_spectra_write_csv(const char *path, const irmae_spectrum *const *spectra,
                                     const char *const *names, int count);
/* SVG line plot (the paper's Fig. 2): x = index 1..n, y = normalized singular
   value on a linear axis 0..1, one coloured polyline per spectrum (markers
   when n <= 64), axes with ticks and labels, a legend with the names, a
   title (may be NULL). Standalone UTF-8 XML with no external resources;
   names and title are escaped (invalid UTF-8 and control bytes become '?').
   Errors: ARG, IO. */
IRMAEDEF int irmae_spectra_write_svg(const char *path, const irmae_spectrum *const *spectra,
                                     const char *const *names, int count, const char *title);

/* SVG line plot of any x-y series (training trajectories: rank or MSE
   against images seen, one line per model and seed). Points with a
   non-finite x or y (or y <= 0 on a log axis) are left out and break the
   line. Axes span the finite points with ticks at 1/2/5 x 10^k (log_y:
   decades); labels print 12000 as 12k and 5000000 as 5M. Text is escaped
   as in irmae_spectra_write_svg. Errors: ARG (NULL path or series, count
   outside 1..64, a series with points but NULL x or y, no point to draw),
   IO. */
typedef struct irmae_plot_series {
    const char *name;           /* legend text (NULL: "series k") */
    const double *x, *y;        /* points x[i], y[i] for i < n */
    int n;
} irmae_plot_series;
typedef struct irmae_plot_opts {
    const char *title, *x_label, *y_label; /* each may be NULL */
    int log_y;                  /* 1: logarithmic y axis */
    int markers;                /* 1: a dot on every point */
} irmae_plot_opts;
IRMAEDEF int irmae_plot_write_svg(const char *path, const irmae_plot_series *series, int count,
                                  const irmae_plot_opts *opts);

/* One full-covariance Gaussian. chol is the lower Cholesky factor L of
   cov + reg * I (cov as irmae_covariance, unbiased; n x n row-major, upper
   part zero), so samples are mean + L z.
   A positive semi-definite but singular matrix (e.g. reg = 0 on rank-
   deficient IRMAE codes) is accepted: its L has zero columns where the pivot
   vanishes, and L L^T still equals the matrix. */
typedef struct irmae_gauss { int n; double *mean; double *chol; } irmae_gauss;
/* Fits to x (count x n floats, count >= 2), reg >= 0. g owns its arrays on
   success and is zeroed on failure. Errors: ARG, OVERFLOW, NOMEM, NUMERIC
   (non-finite data, or a clearly indefinite matrix). */
IRMAEDEF int irmae_gauss_fit(irmae_gauss *g, const float *x, int count, int n, double reg);
/* Writes count samples (count x n floats) to out. Errors: ARG, OVERFLOW. */
IRMAEDEF int irmae_gauss_sample(const irmae_gauss *g, float *out, int count, irmae_rng *rng);
IRMAEDEF void irmae_gauss_free(irmae_gauss *g);

/* Gaussian mixture with full covariances, fitted by EM. */
typedef struct irmae_gmm {
    int k, n;
    double *weights; /* k, sum 1 (owned) */
    double *means;   /* k x n (owned) */
    double *chols;   /* k x n x n lower Cholesky factors of the component covariances + reg I (owned) */
    double loglik;   /* mean log-likelihood per point of the returned parameters */
    int iters;       /* EM iterations (M-steps) done */
} irmae_gmm;
/* x: count x n floats, 1 <= k <= count, count >= 2, max_iter >= 1, tol >= 0,
   reg >= 0 (use reg > 0 on rank-deficient codes: a singular component
   covariance is an IRMAE_ERR_NUMERIC). Init: k-means++ seeding from rng,
   a few Lloyd iterations, hard-assignment statistics. Stops after max_iter
   iterations or when |L_t - L_{t-1}| <= tol * |L_{t-1}| (L = mean
   log-likelihood). Deterministic for a given rng state, whatever the thread
   count. One iteration costs about count k n^2 multiply-adds (E-step
   triangular solves + M-step scatter; ~0.3 s CPU for count = 10000, n = 128,
   k = 4). Component covariances are maximum-likelihood (divide by the
   component's weight sum); a component that collapses restarts from the
   covariance of all the data. g owns its arrays on success, zeroed on failure. Errors: ARG,
   OVERFLOW, NOMEM, NUMERIC. */
IRMAEDEF int irmae_gmm_fit(irmae_gmm *g, const float *x, int count, int n, int k, int max_iter,
                           double tol, double reg, irmae_rng *rng);
/* count samples (count x n floats): component by weight, then mean + L z. */
IRMAEDEF int irmae_gmm_sample(const irmae_gmm *g, float *out, int count, irmae_rng *rng);
IRMAEDEF void irmae_gmm_free(irmae_gmm *g);

/* PCA of x (count x n floats, count >= 2): mean (n), axes (n x n, row i is
   the i-th principal axis, unit length, descending variance), stddev (n,
   sqrt of the covariance eigenvalues, negatives from rounding read as 0).
   The sign of each axis is fixed so that its largest-magnitude entry is
   positive. Owns its arrays; zeroed on failure. */
typedef struct irmae_pca { int n; double *mean; double *axes; double *stddev; } irmae_pca;
IRMAEDEF int irmae_pca_fit(irmae_pca *p, const float *x, int count, int n);
/* out (rows*cols x n floats): code (r, c) at row r * cols + c is
   mean + a * stddev[0] * axes[0] + b * stddev[1] * axes[1], a = -span ..
   +span down the rows and b = -span .. +span across the columns (a single
   row or column sits at 0; the centre cell of an odd x odd grid is exactly
   the mean). span = 2 for the paper. With n == 1 the second axis is absent.
   Errors: ARG (rows/cols <= 0, span < 0 or not finite), OVERFLOW. */
IRMAEDEF int irmae_pca_grid(const irmae_pca *p, float *out, int rows, int cols, double span);
IRMAEDEF void irmae_pca_free(irmae_pca *p);

/* Frechet distance between Gaussians fitted to a (na x d floats) and b
   (nb x d floats), na, nb >= 2:
   |mu_a - mu_b|^2 + tr(Ca + Cb - 2 (Ca^1/2 Cb Ca^1/2)^1/2), with the square
   roots taken through symmetric eigen-decompositions (negative eigenvalues
   from rounding read as 0; a negative total from rounding is returned as 0).
   This is the formula of FID; the features are whatever the caller passes.
   Errors: ARG, OVERFLOW, NOMEM, NUMERIC. */
IRMAEDEF int irmae_frechet_distance(double *out, const float *a, int na, const float *b, int nb, int d);
/* ======================================================================== */
/* Model analysis                                           @model-analysis */
/* ======================================================================== */

/* Spectrum of the codes z (after the l maps; the VAE's mean) of `count`
   images x (count x C x H x W): covariance, eigenvalues, ranks. Free s with
   irmae_spectrum_free(). */
IRMAEDEF int irmae_model_spectrum(irmae_model *m, irmae_spectrum *s, const float *x, int count);
/* Decodes (1 - t) z_a + t z_b for `steps` values of t evenly spaced in
   [0, 1] (steps >= 2), z_a/z_b the codes of images xa/xb; out gets steps images. */
IRMAEDEF int irmae_model_interpolate(irmae_model *m, float *out, const float *xa, const float *xb, int steps);

#endif /* IRMAE_NO_ANALYSIS */
#ifndef IRMAE_NO_CHECKPOINTS
/* ======================================================================== */
/* Checkpoints, export, .npy arrays                            @checkpoints */
/* ======================================================================== */

/* A checkpoint holds everything needed to continue training exactly: the
   whole configuration, the parameters, Adam's moments m and v and its step,
   the model's RNG (VAE sampling) and the state of the training loop below.
   The format is defined byte by byte (every integer little-endian, floats as
   their IEEE-754 bit patterns in a little-endian uint32), so a file written
   on any machine reads the same on any other:

     header   20 bytes: magic "IRMAECKP", u32 format version (1),
              u32 section count (5), u32 CRC-32 of the 16 bytes before it
     sections, in this order, each laid out as
              4-byte tag, u64 payload length, payload,
              u32 CRC-32 of tag + length + payload:
       "CONF" i32 in_c, in_h, in_w, n, l, kind, out_act, max_batch, range_pm1;
              f32 code_l1, code_l2, vae_beta, lr, beta1, beta2, eps, grad_clip;
              i32 n_enc, n_dec; then n_enc + n_dec layer specs (encoder
              first), each i32 type, out, k, stride, pad, bias, c, h, w;
              u64 parameter count (must equal the count the config implies)
       "TRST" i64 Adam step, u64 x 4 model rng, i64 epoch, i64 batch,
              u64 x 4 data_rng (88 bytes)
       "PARM" f32 x parameter count (the parameters, irmae_model.params order)
       "ADMM" f32 x parameter count (Adam m)
       "ADMV" f32 x parameter count (Adam v)
     nothing after the last section.

   Readers check everything before they touch the model: the magic
   (IRMAE_ERR_FORMAT), the version (0 is FORMAT, newer than this library is
   IRMAE_ERR_VERSION, checked before anything else of the file), every length
   against the bytes left (IRMAE_ERR_TRUNCATED), every CRC
   (IRMAE_ERR_CHECKSUM), tags, order and trailing bytes (FORMAT), the
   configuration as irmae_model_init() would (FORMAT, or IRMAE_ERR_LIMIT for
   more layers than IRMAE_MAX_LAYERS or a workspace larger than
   IRMAE_MAX_ALLOC bytes), the stored parameter count and the three tensor
   lengths against the configuration (FORMAT), and that step, epoch and batch
   are >= 0 (FORMAT). The detail message names the check and the offset. */

/* What a training loop needs besides the model to continue exactly.
   Convention: data_rng is the state of the data-order RNG at the start of
   epoch `epoch`, BEFORE that epoch's shuffle; `batch` is the number of
   minibatches of that epoch already trained. A resumed loop copies
   data_rng, shuffles with the copy (getting the same permutation as the
   interrupted run), skips `batch` minibatches, and at the end of the epoch
   stores the copy's state as the next epoch's data_rng. */
typedef struct irmae_train_state {
    long long epoch;
    long long batch;
    irmae_rng data_rng;
} irmae_train_state;

/* Atomic save of model m (initialised) and ts (NULL: zeros stored) to path.
   Writes "<path>.tmp" in the same directory, flushes it to the disk
   (POSIX fsync, Windows _commit), renames it over path (POSIX rename,
   Windows MoveFileExA with MOVEFILE_REPLACE_EXISTING | WRITE_THROUGH), then
   syncs the directory (POSIX, best effort). A crash at any instant leaves
   either the old file or the new one at path, never a mix; a failed save
   removes the .tmp file and leaves path as it was. The file is streamed
   through a 64 KiB buffer (no second copy of the model in memory).
   Errors: IRMAE_ERR_ARG (NULL path/m, m not initialised, a negative
   m->step, ts->epoch or ts->batch), IRMAE_ERR_IO
   (open/write/sync/rename failed; the detail names the file),
   IRMAE_ERR_OVERFLOW, IRMAE_ERR_NOMEM. */
IRMAEDEF int irmae_checkpoint_save(const char *path, const irmae_model *m, const irmae_train_state *ts);

/* Loads a checkpoint: reads the whole file (at most IRMAE_MAX_ALLOC bytes)
   and decodes it with irmae_checkpoint_decode(). *m must be either zeroed
   (memset, or after irmae_model_free()) or an initialised model.
   ts (may be NULL) receives the training-loop state. Errors: those of
   irmae_checkpoint_decode() plus IRMAE_ERR_IO and IRMAE_ERR_LIMIT (file
   too large); the detail names the file. On any error *m and *ts are
   unchanged. */
IRMAEDEF int irmae_checkpoint_load(irmae_model *m, irmae_train_state *ts, const char *path);

/* The checkpoint of m and ts (NULL: zeros) as a new buffer *out of *size
   bytes; free it with irmae_free_buffer(). On error *out = NULL, *size = 0.
   Errors: IRMAE_ERR_ARG (as irmae_checkpoint_save, NULL out/size),
   IRMAE_ERR_OVERFLOW, IRMAE_ERR_NOMEM. */
IRMAEDEF int irmae_checkpoint_encode(unsigned char **out, size_t *size, const irmae_model *m,
                                     const irmae_train_state *ts);

/* Decodes a checkpoint held in memory (data[0..size), untrusted), after
   validating all of it (see above). If m->params == NULL, *m becomes a new
   model built from the stored configuration (irmae_model_init, then the
   stored parameters, moments, step and rng; gradients zero); free it with
   irmae_model_free(). Otherwise the stored configuration must equal m->cfg
   field by field (the used layer specs only), else IRMAE_ERR_MISMATCH with a
   detail naming the first different field, and the stored state is copied
   into m (gradients zeroed). ts (may be NULL) receives epoch, batch and
   data_rng. On any error *m and *ts are unchanged. Memory: nothing is
   allocated before the whole input has been validated; a new model needs
   16 bytes per parameter (bounded by 4 x size) plus its workspace for
   cfg.max_batch, which must not exceed IRMAE_MAX_ALLOC bytes.
   Errors: IRMAE_ERR_ARG (NULL m, NULL data with size > 0), IRMAE_ERR_FORMAT,
   IRMAE_ERR_TRUNCATED, IRMAE_ERR_CHECKSUM, IRMAE_ERR_VERSION,
   IRMAE_ERR_LIMIT, IRMAE_ERR_OVERFLOW, IRMAE_ERR_MISMATCH, IRMAE_ERR_NOMEM. */
IRMAEDEF int irmae_checkpoint_decode(irmae_model *m, irmae_train_state *ts, const void *data, size_t size);

/* Reads and validates only the header and the configuration section of the
   checkpoint at path (the rest of the file is not read). *cfg is zeroed on
   error (unused layer specs are zero on success). Errors: as
   irmae_checkpoint_load(), minus those of the later sections. */
IRMAEDEF int irmae_checkpoint_read_config(irmae_config *cfg, const char *path);

/* Exports the weights of m (initialised) as a safetensors file (8-byte
   little-endian header length, a JSON header padded with spaces to a
   multiple of 8 bytes, then the tensors as little-endian float32, in the
   order listed), written atomically as irmae_checkpoint_save() does.
   Tensor names are those of the equivalent PyTorch model
       encoder = nn.Sequential(<one module per encoder layer spec>)
       maps    = nn.Sequential(l x nn.Linear(n, n, bias=False))   W_1 .. W_l
       decoder = nn.Sequential(<one module per decoder layer spec>, out_act)
   (conv -> nn.Conv2d, convT -> nn.ConvTranspose2d, linear -> nn.Linear,
   relu/tanh/sigmoid -> nn.ReLU/nn.Tanh/nn.Sigmoid, flatten -> nn.Flatten(),
   reshape -> nn.Unflatten(1, (c, h, w)), upsample -> nn.Upsample(scale_factor=s,
   mode="nearest"); the output activation, when there
   is one, is the decoder's last module):
       encoder.<i>.weight / .bias, maps.<j>.weight, decoder.<i>.weight / .bias,
       collapsed.weight (n x n, W_l ... W_1 as irmae_model_collapse; the
       identity for l = 0).
   Layouts as in memory: conv [out, in, k, k], convT [in, out, k, k],
   linear [out, in]. "__metadata__" holds strings: "format" ("pt"), "n",
   "l", "kind" ("ae" or "vae"), "in_c", "in_h", "in_w", "range" ("0,1" or
   "-1,1"), "out_act", "irmae_version", "irmae_config" (the whole
   configuration: the checkpoint's CONF section in hex, which
   irmae_safetensors_read_config reads back), and "layers", a JSON text
   {"encoder": [...], "decoder": [...]} with one object per module: "type"
   (conv, convT, linear, relu, tanh, sigmoid, flatten, unflatten, upsample),
   "in" and "out" shapes [c, h, w], and k/stride/pad/bias, the unflatten
   "shape" or the upsample "scale".
   Errors: IRMAE_ERR_ARG, IRMAE_ERR_IO, IRMAE_ERR_OVERFLOW, IRMAE_ERR_NOMEM. */
IRMAEDEF int irmae_export_safetensors(const char *path, const irmae_model *m);

/* Loads weights from a safetensors file into m (initialised, of the
   configuration the weights belong to): the layout irmae_export_safetensors
   writes, i.e. PyTorch's names and shapes (a state_dict of the model
   described there, saved by any safetensors writer). Every parameter tensor
   of m must be present exactly once with its shape, dtype F32, F16 or BF16
   (converted to float); "collapsed.weight" may be present (checked for its
   shape, not loaded: it is derived from the maps); any other tensor is an
   error. The file is untrusted: the header length (at most 100 MB), the
   JSON (strict: strings, non-negative integers, the three fields of a
   tensor exactly once), dtypes, shapes and data_offsets (each tensor's
   bytes exactly its dtype x shape, all tensors tiling the data without
   overlap or hole) are checked before anything is loaded, and a value that
   is not finite is refused. On success m holds the weights, Adam's moments
   are zero and m->step is 0; on error m is unchanged.
   Errors: IRMAE_ERR_ARG, IRMAE_ERR_IO, IRMAE_ERR_FORMAT, IRMAE_ERR_TRUNCATED,
   IRMAE_ERR_LIMIT, IRMAE_ERR_UNSUPPORTED (another dtype), IRMAE_ERR_MISMATCH
   (missing / extra / misshapen tensor), IRMAE_ERR_NUMERIC, IRMAE_ERR_NOMEM. */
IRMAEDEF int irmae_import_safetensors(irmae_model *m, const char *path);
/* The same on a file held in memory (data[0..size)). */
IRMAEDEF int irmae_import_safetensors_mem(irmae_model *m, const void *data, size_t size);
/* The configuration stored in the "irmae_config" metadata string that
   irmae_export_safetensors writes (the checkpoint's CONF section in hex),
   validated as a checkpoint's. A file without it is IRMAE_ERR_FORMAT. */
IRMAEDEF int irmae_safetensors_read_config(irmae_config *cfg, const char *path);

/* NumPy .npy arrays of float32, for codes going to and from Python
   (numpy.load / numpy.save read and write them as they are).
   irmae_npy_write writes rows x cols floats (C order; cols = 0 writes the
   1-D array of rows values) as format version 1.0: the magic "\x93NUMPY",
   version 1.0, a little-endian u16 header length, the header
   "{'descr': '<f4', 'fortran_order': False, 'shape': (rows, cols), }"
   padded with spaces and a final '\n' so the data starts at a multiple of
   64 bytes, then the values little-endian. The file is written atomically
   (as checkpoints). Errors: IRMAE_ERR_ARG (NULL path / data, rows < 1,
   cols < 0), IRMAE_ERR_OVERFLOW, IRMAE_ERR_NOMEM, IRMAE_ERR_IO. */
IRMAEDEF int irmae_npy_write(const char *path, const float *data, int rows, int cols);
/* Parses a .npy held in memory (data[0..size), untrusted): versions 1.0,
   2.0 and 3.0 (u16 / u32 header lengths); the header must be the Python
   dict literal numpy writes, with exactly the keys 'descr' ('<f4'; '|f4'
   and '>f4' are refused: IRMAE_ERR_UNSUPPORTED, as any other dtype),
   'fortran_order' (False; True is IRMAE_ERR_UNSUPPORTED) and 'shape' (a
   tuple of one or two non-negative ints, each at most INT_MAX; 1-D arrays
   read as rows x 1), ended by '\n'; the data must be exactly rows x cols x 4
   bytes (at most IRMAE_MAX_ALLOC). *out (free with irmae_free_buffer) gets
   the values; *rows, *cols the shape. Outputs are zeroed on error; the
   detail names the check and the byte offset.
   Errors: IRMAE_ERR_ARG (NULL pointer), IRMAE_ERR_FORMAT (magic, header
   syntax, missing / duplicate / unknown keys, trailing bytes),
   IRMAE_ERR_TRUNCATED, IRMAE_ERR_UNSUPPORTED (dtype, Fortran order, rank
   0 or > 2, an empty array), IRMAE_ERR_LIMIT, IRMAE_ERR_NOMEM. */
IRMAEDEF int irmae_npy_parse(float **out, int *rows, int *cols, const void *data, size_t size);
/* irmae_npy_parse of the file at path (at most IRMAE_MAX_ALLOC bytes). */
IRMAEDEF int irmae_npy_load(float **out, int *rows, int *cols, const char *path);
#endif /* IRMAE_NO_CHECKPOINTS */
#ifdef __cplusplus
}
#endif
#endif /* IRMAE_H */

/* ======================================================================== */
/* ======================================================================== */
/*                            IMPLEMENTATION                                */
/* ======================================================================== */
/* ======================================================================== */
#ifdef IRMAE_IMPLEMENTATION
#ifndef IRMAE_IMPLEMENTATION_DONE
#define IRMAE_IMPLEMENTATION_DONE

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <stdarg.h>
#include <math.h>
#include <float.h>
#include <limits.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* ---------------------------------------------------------------------- */
/* Config and portability                                    @portability */
/* ---------------------------------------------------------------------- */

#if defined(IRMAE_MALLOC) && !defined(IRMAE_FREE) || !defined(IRMAE_MALLOC) && defined(IRMAE_FREE)
#error "irmae.h: define both IRMAE_MALLOC and IRMAE_FREE, or neither"
#endif
#ifndef IRMAE_MALLOC
#define IRMAE_MALLOC(sz) malloc(sz)
#define IRMAE_FREE(p) free(p)
#endif
#ifndef IRMAE_ASSERT
#include <assert.h>
#define IRMAE_ASSERT(x) assert(x)
#endif

#if defined(__cplusplus) && __cplusplus >= 201103L
#define IRMAE__THREAD_LOCAL thread_local
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L && !defined(__STDC_NO_THREADS__)
#define IRMAE__THREAD_LOCAL _Thread_local
#elif defined(_MSC_VER)
#define IRMAE__THREAD_LOCAL __declspec(thread)
#elif defined(__GNUC__) || defined(__clang__)
#define IRMAE__THREAD_LOCAL __thread
#else
#define IRMAE__THREAD_LOCAL /* no TLS: the detail message is shared */
#endif

#if defined(__GNUC__) || defined(__clang__)
#define IRMAE__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define IRMAE__PRINTF(f, a)
#endif

#ifdef _OPENMP
#if defined(_MSC_VER) && !defined(__clang__)
#define IRMAE__PRAGMA(x) __pragma(x) /* MSVC before VS 2019 16.6 has no _Pragma */
#else
#define IRMAE__PRAGMA(x) _Pragma(#x)
#endif
#define IRMAE__OMP(x) IRMAE__PRAGMA(omp x)
#else
#define IRMAE__OMP(x)
#endif

/* The phase profile (irmae_profile_enable): per-thread totals, a global switch. */
static int irmae__prof_on = 0;
static IRMAE__THREAD_LOCAL double irmae__prof_s[IRMAE_PHASE_COUNT];
static double irmae__clock(void)
{
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return (double)clock() / (double)CLOCKS_PER_SEC;
#endif
}
/* t0 = IRMAE__PROF_T0(); ...work...; IRMAE__PROF_ADD(phase, t0); */
#define IRMAE__PROF_T0() (irmae__prof_on ? irmae__clock() : 0.0)
#define IRMAE__PROF_ADD(phase, t0) \
    do { if (irmae__prof_on) irmae__prof_s[phase] += irmae__clock() - (t0); } while (0)

IRMAEDEF void irmae_profile_enable(int on) { irmae__prof_on = on != 0; }

IRMAEDEF void irmae_profile_read(double *seconds, int reset)
{
    int i;
    for (i = 0; i < IRMAE_PHASE_COUNT; i++) {
        if (seconds) seconds[i] = irmae__prof_s[i];
        if (reset) irmae__prof_s[i] = 0.0;
    }
}

IRMAEDEF const char *irmae_phase_name(int phase)
{
    static const char *const names[IRMAE_PHASE_COUNT] = {"gemm", "pack", "lower", "elementwise", "loss", "adam"};
    return phase >= 0 && phase < IRMAE_PHASE_COUNT ? names[phase] : "unknown";
}

/* Alignment for every buffer the library allocates (cache line / AVX-512). */
#define IRMAE__ALIGN 64

/* Allocation: aligned, overflow-checked, zero-filled. The pointer to the
   block handed out by IRMAE_MALLOC is kept just before the aligned block. */
static void *irmae__alloc(size_t count, size_t size)
{
    size_t bytes, total;
    unsigned char *raw, *p;
    if (count == 0 || size == 0) { count = 1; size = 1; }
    if (count > (size_t)-1 / size) return NULL;
    bytes = count * size;
    if (bytes > (size_t)-1 - IRMAE__ALIGN - sizeof(void *)) return NULL;
    total = bytes + IRMAE__ALIGN + sizeof(void *);
    raw = (unsigned char *)IRMAE_MALLOC(total);
    if (!raw) return NULL;
    p = raw + sizeof(void *);
    p += (IRMAE__ALIGN - ((uintptr_t)p % IRMAE__ALIGN)) % IRMAE__ALIGN;
    memcpy(p - sizeof(void *), &raw, sizeof(void *));
    memset(p, 0, bytes);
    return p;
}
static void irmae__free(void *p)
{
    void *raw;
    if (!p) return;
    memcpy(&raw, (unsigned char *)p - sizeof(void *), sizeof(void *));
    IRMAE_FREE(raw);
}

/* ---------------------------------------------------------------------- */
/* Errors                                                         @errors */
/* ---------------------------------------------------------------------- */

static IRMAE__THREAD_LOCAL char irmae__detail[512];

IRMAEDEF const char *irmae_error_string(int code)
{
    switch (code) {
    case IRMAE_OK: return "ok";
    case IRMAE_ERR_ARG: return "invalid argument";
    case IRMAE_ERR_NOMEM: return "out of memory";
    case IRMAE_ERR_OVERFLOW: return "size overflow";
    case IRMAE_ERR_IO: return "i/o error";
    case IRMAE_ERR_FORMAT: return "malformed data";
    case IRMAE_ERR_TRUNCATED: return "truncated data";
    case IRMAE_ERR_CHECKSUM: return "checksum mismatch";
    case IRMAE_ERR_LIMIT: return "limit exceeded";
    case IRMAE_ERR_UNSUPPORTED: return "unsupported";
    case IRMAE_ERR_SHAPE: return "shape mismatch";
    case IRMAE_ERR_NUMERIC: return "non-finite value";
    case IRMAE_ERR_CONVERGENCE: return "no convergence";
    case IRMAE_ERR_VERSION: return "unsupported format version";
    case IRMAE_ERR_MISMATCH: return "configuration mismatch";
    default: return "unknown error";
    }
}

IRMAEDEF const char *irmae_error_detail(void) { return irmae__detail; }
IRMAEDEF void irmae_error_clear(void) { irmae__detail[0] = 0; }

/* Sets the detail message and returns code, so that failures read
   `return irmae__fail(IRMAE_ERR_ARG, "conv2d: stride %d <= 0", s);` */
static int irmae__fail(int code, const char *fmt, ...) IRMAE__PRINTF(2, 3);
static int irmae__fail(int code, const char *fmt, ...)
{
    va_list ap;
    int len;
    snprintf(irmae__detail, sizeof irmae__detail, "%s: ", irmae_error_string(code));
    len = (int)strlen(irmae__detail);
    va_start(ap, fmt);
    vsnprintf(irmae__detail + len, sizeof irmae__detail - (size_t)len, fmt, ap);
    va_end(ap);
    return code;
}

/* Overflow-checked size arithmetic: *out = a * b (and a * b * c). */
static int irmae__mul(size_t *out, size_t a, size_t b)
{
    if (b != 0 && a > (size_t)-1 / b) return 0;
    *out = a * b;
    return 1;
}
static int irmae__mul3(size_t *out, size_t a, size_t b, size_t c)
{
    size_t t;
    return irmae__mul(&t, a, b) && irmae__mul(out, t, c);
}
/* Product of positive ints as size_t; 0 if any is <= 0 or it overflows. */
static size_t irmae__count(int a, int b, int c, int d)
{
    size_t r;
    if (a <= 0 || b <= 0 || c <= 0 || d <= 0) return 0;
    if (!irmae__mul3(&r, (size_t)a, (size_t)b, (size_t)c)) return 0;
    if (!irmae__mul(&r, r, (size_t)d)) return 0;
    return r;
}

/* ---------------------------------------------------------------------- */
/* Random numbers                                                    @rng */
/* ---------------------------------------------------------------------- */

static uint64_t irmae__splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

IRMAEDEF irmae_rng irmae_rng_seed(uint64_t seed)
{
    irmae_rng r;
    int i;
    for (i = 0; i < 4; i++) r.s[i] = irmae__splitmix(&seed);
    return r;
}

static uint64_t irmae__rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

IRMAEDEF uint64_t irmae_rng_u64(irmae_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = irmae__rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = irmae__rotl(s[3], 45);
    return result;
}

IRMAEDEF float irmae_rng_uniform(irmae_rng *r)
{
    return (float)(irmae_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

IRMAEDEF int irmae_rng_int(irmae_rng *r, int lo, int hi)
{
    uint64_t range, limit, x;
    if (hi <= lo) return lo;
    range = (uint64_t)((int64_t)hi - (int64_t)lo) + 1;
    limit = (uint64_t)-1 - ((uint64_t)-1) % range; /* reject the biased tail */
    do x = irmae_rng_u64(r); while (x >= limit);
    return (int)((int64_t)lo + (int64_t)(x % range));
}

IRMAEDEF float irmae_rng_normal(irmae_rng *r)
{
    /* u1 in (0, 1] so log() is finite */
    double u1 = ((double)(irmae_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(irmae_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* ---------------------------------------------------------------------- */
/* Checksums                                                   @checksums */
/* ---------------------------------------------------------------------- */

IRMAEDEF uint32_t irmae_crc32(uint32_t crc, const void *data, size_t len)
{
    static uint32_t table[256];
    static volatile int ready = 0;
    const unsigned char *p = (const unsigned char *)data;
    if (!ready) { /* idempotent: racing threads write identical values */
        uint32_t i, j, c;
        for (i = 0; i < 256; i++) {
            for (c = i, j = 0; j < 8; j++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    crc = ~crc;
    while (len--) crc = table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

IRMAEDEF uint32_t irmae_adler32(uint32_t adler, const void *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;
    uint32_t a = adler & 0xFFFF, b = adler >> 16;
    while (len) {
        size_t n = len < 5552 ? len : 5552; /* largest block without overflow */
        len -= n;
        while (n--) { a += *p++; b += a; }
        a %= 65521; b %= 65521;
    }
    return (b << 16) | a;
}

/* ---------------------------------------------------------------------- */
/* Bytes and files                                                 @files */
/* ---------------------------------------------------------------------- */

#if !defined(IRMAE_NO_LOADERS) || !defined(IRMAE_NO_CHECKPOINTS)
/* The platform's directory listing (loaders) and durable writes
   (checkpoints): fsync with open / write / close on a file descriptor
   (POSIX; stdio's fileno is not declared in strict C99 mode), _commit +
   MoveFileExA on Windows. */
#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <io.h>
#else
#include <dirent.h>
#include <unistd.h>
#include <fcntl.h>
#endif

/* A little-endian integer from bytes, whatever the host's byte order. */
static uint32_t irmae__cd_le32(const unsigned char *p)
{
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | (uint32_t)p[0];
}

/* The calling thread's detail of the failure rc without its "<name of rc>: "
   prefix, copied into msg (cap bytes), for re-failing with more context. */
static void irmae__detail_body(int rc, char *msg, size_t cap)
{
    const char *d = irmae_error_detail();
    size_t skip = strlen(irmae_error_string(rc)) + 2, len;
    if (strlen(d) >= skip && strncmp(d, irmae_error_string(rc), skip - 2) == 0) d += skip;
    len = strlen(d);
    if (len > cap - 1) len = cap - 1;
    memcpy(msg, d, len);
    msg[len] = 0;
}
/* Re-fails with the current detail plus the name of the file. */
static int irmae__cd_tag_path(int rc, const char *path)
{
    char msg[400];
    irmae__detail_body(rc, msg, sizeof msg);
    return irmae__fail(rc, "%s (file '%.200s')", msg, path);
}
/* Reads a whole file (at most IRMAE_MAX_ALLOC bytes) into a new buffer. */
static int irmae__cd_read_file(const char *path, unsigned char **out, size_t *out_size)
{
    FILE *f;
    unsigned char *buf = NULL, *nb;
    size_t len = 0, cap = 0, got;
    *out = NULL; *out_size = 0;
    if (!path) return irmae__fail(IRMAE_ERR_ARG, "read: path is NULL");
    f = fopen(path, "rb");
    if (!f) return irmae__fail(IRMAE_ERR_IO, "read: cannot open '%.300s'", path);
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            if (cap >= (size_t)IRMAE_MAX_ALLOC) {
                /* full at the limit: one more byte means too large */
                unsigned char probe;
                if (fread(&probe, 1, 1, f) == 1) {
                    fclose(f); irmae__free(buf);
                    return irmae__fail(IRMAE_ERR_LIMIT, "read: '%.300s' is larger than IRMAE_MAX_ALLOC (%lu bytes)",
                                       path, (unsigned long)IRMAE_MAX_ALLOC);
                }
                break;
            }
            if (ncap > (size_t)IRMAE_MAX_ALLOC || ncap < cap) ncap = (size_t)IRMAE_MAX_ALLOC;
            nb = (unsigned char *)irmae__alloc(ncap, 1);
            if (!nb) { fclose(f); irmae__free(buf); return irmae__fail(IRMAE_ERR_NOMEM, "read: %lu bytes for '%.300s'", (unsigned long)ncap, path); }
            if (len) memcpy(nb, buf, len);
            irmae__free(buf);
            buf = nb; cap = ncap;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        fclose(f); irmae__free(buf);
        return irmae__fail(IRMAE_ERR_IO, "read: error reading '%.300s' after %lu bytes", path, (unsigned long)len);
    }
    fclose(f);
    if (!buf) { /* cannot happen (the first pass allocates), kept for clarity */
        buf = (unsigned char *)irmae__alloc(1, 1);
        if (!buf) return irmae__fail(IRMAE_ERR_NOMEM, "read: 1 byte");
    }
    *out = buf; *out_size = len;
    return IRMAE_OK;
}
#endif /* the loaders or the checkpoints */

/* ---------------------------------------------------------------------- */
/* Kernels: GEMM                                                    @gemm */
/* ---------------------------------------------------------------------- */

IRMAEDEF void irmae_sgemm_ref(int trans_a, int trans_b, int m, int n, int k,
                              float alpha, const float *a, int lda,
                              const float *b, int ldb,
                              float beta, float *c, int ldc)
{
    int i, j, p;
    if (m <= 0 || n <= 0) return;
    for (i = 0; i < m; i++)
        for (j = 0; j < n; j++) {
            double s = 0;
            for (p = 0; p < k; p++) {
                float av = trans_a ? a[(size_t)p * lda + i] : a[(size_t)i * lda + p];
                float bv = trans_b ? b[(size_t)j * ldb + p] : b[(size_t)p * ldb + j];
                s += (double)av * bv;
            }
            c[(size_t)i * ldc + j] = (float)(alpha * s) +
                (beta == 0.0f ? 0.0f : beta * c[(size_t)i * ldc + j]);
        }
}

/* The fast GEMM (after Goto / BLIS): for each KC-deep slice of the depth
   and each block of MC rows, the block of op(A) is packed into MR-row
   micro-panels (zero-padded) by the whole team; then every NR-column
   micro-panel of op(B) is packed, into a buffer on the packing thread's
   stack, by the thread that uses it, and a register-blocked micro-kernel
   computes each MR x NR tile of that column panel from it and one A
   micro-panel. The B panel is written and read back in L1, and one barrier
   ends a block (there were three with a shared B buffer). Each thread takes
   a contiguous run of column panels (static schedule): a convolution's
   packer then reads mostly the images this thread prepared or wrote in the
   step's earlier static loops, from its own cache (measured on an AMD EPYC
   Zen 5, two threads: handing the panels out one at a time made a mnist
   step 1.17x and a shapes step 1.13x slower).
   Slices run in order and each tile of a slice is one kernel call on the
   same panels, whichever thread makes it: every element of C sees the same
   additions in the same order whatever the number of threads, so results
   are bit-identical for any thread count. The A buffer is allocated once
   per calling thread (irmae_sgemm_release frees it). */

#define IRMAE__KC 256           /* depth of a slice: B micro-panel stays in L1 */
#define IRMAE__MC 480           /* rows of A packed at once: ~480 KB, in L2 */
#define IRMAE__MR_MAX 16
#define IRMAE__NR_MAX 32
/* the packed A block of a calling thread, in floats */
#define IRMAE__GEMM_BUF_FLOATS ((size_t)IRMAE__KC * (IRMAE__MC + IRMAE__MR_MAX))

/* micro-kernel: c[0:MR, 0:NR] = alpha * pa * pb + beta * c (beta == 0: no read) */
typedef void (*irmae__ukernel)(int kc, const float *pa, const float *pb,
                               float *c, int ldc, float alpha, float beta);

/* portable micro-kernel, 4 x 16; plain loops that compilers vectorise */
static void irmae__ukernel_scalar(int kc, const float *pa, const float *pb,
                                  float *c, int ldc, float alpha, float beta)
{
    float acc[4][16];
    int i, j, p;
    memset(acc, 0, sizeof acc);
    for (p = 0; p < kc; p++, pa += 4, pb += 16)
        for (i = 0; i < 4; i++)
            for (j = 0; j < 16; j++) acc[i][j] += pa[i] * pb[j];
    for (i = 0; i < 4; i++)
        for (j = 0; j < 16; j++)
            c[(size_t)i * ldc + j] = alpha * acc[i][j] +
                (beta == 0.0f ? 0.0f : beta * c[(size_t)i * ldc + j]);
}

/* x86 SIMD: GCC/clang compile each kernel for its ISA (target attribute) and
   ask the CPU with __builtin_cpu_supports; MSVC compiles the intrinsics
   without attributes and asks with __cpuid/__cpuidex/_xgetbv. */
#if !defined(IRMAE_NO_SIMD) && (((defined(__GNUC__) || defined(__clang__)) && \
    (defined(__x86_64__) || defined(__i386__))) || (defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))))
#define IRMAE__X86 1
#include <immintrin.h>
#if defined(__GNUC__) || defined(__clang__)
#define IRMAE__TARGET(isa) __attribute__((target(isa)))
#define IRMAE__CPU_HAS(isa) __builtin_cpu_supports(isa)
#else
#include <intrin.h>
#define IRMAE__TARGET(isa)
#define IRMAE__CPU_HAS(isa) irmae__cpu_has(isa)
/* "avx2", "fma", "avx512f": CPUID bits, and the OS saves the registers */
static int irmae__cpu_has(const char *isa)
{
    int r1[4], r7[4];
    unsigned long long xcr0;
    __cpuid(r1, 1);
    if (!(r1[2] & (1 << 27))) return 0;                 /* OSXSAVE */
    xcr0 = _xgetbv(0);
    if ((xcr0 & 6) != 6) return 0;                       /* XMM + YMM state */
    __cpuidex(r7, 7, 0);
    if (!strcmp(isa, "fma")) return (r1[2] >> 12) & 1;
    if (!strcmp(isa, "avx2")) return (r7[1] >> 5) & 1;
    if (!strcmp(isa, "avx512f")) return ((r7[1] >> 16) & 1) && (xcr0 & 0xE6) == 0xE6;
    return 0;
}
#endif

/* AVX2 + FMA micro-kernel, 6 x 16: 12 ymm accumulators. */
IRMAE__TARGET("avx2,fma")
static void irmae__ukernel_avx2(int kc, const float *pa, const float *pb,
                                float *c, int ldc, float alpha, float beta)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    __m256 va, vb0, vb1, valpha, vbeta;
    int p, i;
    for (p = 0; p < kc; p++, pa += 6, pb += 16) {
        vb0 = _mm256_loadu_ps(pb);
        vb1 = _mm256_loadu_ps(pb + 8);
        va = _mm256_broadcast_ss(pa + 0); c00 = _mm256_fmadd_ps(va, vb0, c00); c01 = _mm256_fmadd_ps(va, vb1, c01);
        va = _mm256_broadcast_ss(pa + 1); c10 = _mm256_fmadd_ps(va, vb0, c10); c11 = _mm256_fmadd_ps(va, vb1, c11);
        va = _mm256_broadcast_ss(pa + 2); c20 = _mm256_fmadd_ps(va, vb0, c20); c21 = _mm256_fmadd_ps(va, vb1, c21);
        va = _mm256_broadcast_ss(pa + 3); c30 = _mm256_fmadd_ps(va, vb0, c30); c31 = _mm256_fmadd_ps(va, vb1, c31);
        va = _mm256_broadcast_ss(pa + 4); c40 = _mm256_fmadd_ps(va, vb0, c40); c41 = _mm256_fmadd_ps(va, vb1, c41);
        va = _mm256_broadcast_ss(pa + 5); c50 = _mm256_fmadd_ps(va, vb0, c50); c51 = _mm256_fmadd_ps(va, vb1, c51);
    }
    {
        __m256 acc[12];
        acc[0] = c00; acc[1] = c01; acc[2] = c10; acc[3] = c11; acc[4] = c20; acc[5] = c21;
        acc[6] = c30; acc[7] = c31; acc[8] = c40; acc[9] = c41; acc[10] = c50; acc[11] = c51;
        valpha = _mm256_set1_ps(alpha);
        vbeta = _mm256_set1_ps(beta);
        for (i = 0; i < 6; i++) {
            float *row = c + (size_t)i * ldc;
            __m256 r0 = _mm256_mul_ps(valpha, acc[2 * i]), r1 = _mm256_mul_ps(valpha, acc[2 * i + 1]);
            if (beta != 0.0f) {
                r0 = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(row), r0);
                r1 = _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(row + 8), r1);
            }
            _mm256_storeu_ps(row, r0);
            _mm256_storeu_ps(row + 8, r1);
        }
    }
}

/* AVX-512 micro-kernels. The accumulators are named variables (not an array)
   so they stay in zmm registers at any optimisation level: gcc 12 at -O2
   does not unroll a loop over an accumulator array and then keeps it on
   the stack. Each k step loads two 16-float vectors of the B panel and
   multiplies them by broadcasts of the A panel (folded into the FMA's
   memory operand by the compiler). Every element of C is one chain of FMAs
   in k order, as in the AVX2 kernel: the two kernels give the same bits. */
#define IRMAE__Z_ROW(i)                                                     \
    va = _mm512_set1_ps(pa[i]);                                             \
    c##i##a = _mm512_fmadd_ps(va, vb0, c##i##a);                            \
    c##i##b = _mm512_fmadd_ps(va, vb1, c##i##b)
#define IRMAE__Z_STORE(i)                                                   \
    do {                                                                    \
        float *row = c + (size_t)(i) * ldc;                                 \
        __m512 r0 = _mm512_mul_ps(valpha, c##i##a), r1 = _mm512_mul_ps(valpha, c##i##b); \
        if (beta != 0.0f) {                                                 \
            r0 = _mm512_fmadd_ps(vbeta, _mm512_loadu_ps(row), r0);          \
            r1 = _mm512_fmadd_ps(vbeta, _mm512_loadu_ps(row + 16), r1);     \
        }                                                                   \
        _mm512_storeu_ps(row, r0);                                          \
        _mm512_storeu_ps(row + 16, r1);                                     \
    } while (0)

/* 8 x 32: 16 accumulators (two 512-bit FMA pipes x 4 cycles of latency
   need 8 independent chains). Measured on a Zen 5 against 12 x 32 (24
   accumulators): 8 x 32 is faster on square sizes (176 vs 162 GFLOP/s at
   512^3, one thread) and wastes no rows on the model's M = 32, 64, 128, ...
   (12 rows leave partial tiles there). */
IRMAE__TARGET("avx512f")
static void irmae__ukernel_avx512(int kc, const float *pa, const float *pb,
                                  float *c, int ldc, float alpha, float beta)
{
    __m512 c0a = _mm512_setzero_ps(), c0b = c0a, c1a = c0a, c1b = c0a, c2a = c0a, c2b = c0a,
           c3a = c0a, c3b = c0a, c4a = c0a, c4b = c0a, c5a = c0a, c5b = c0a,
           c6a = c0a, c6b = c0a, c7a = c0a, c7b = c0a;
    __m512 va, vb0, vb1, valpha, vbeta;
    int p;
    for (p = 0; p < kc; p++, pa += 8, pb += 32) {
        vb0 = _mm512_loadu_ps(pb);
        vb1 = _mm512_loadu_ps(pb + 16);
        IRMAE__Z_ROW(0); IRMAE__Z_ROW(1); IRMAE__Z_ROW(2); IRMAE__Z_ROW(3);
        IRMAE__Z_ROW(4); IRMAE__Z_ROW(5); IRMAE__Z_ROW(6); IRMAE__Z_ROW(7);
    }
    valpha = _mm512_set1_ps(alpha);
    vbeta = _mm512_set1_ps(beta);
    IRMAE__Z_STORE(0); IRMAE__Z_STORE(1); IRMAE__Z_STORE(2); IRMAE__Z_STORE(3);
    IRMAE__Z_STORE(4); IRMAE__Z_STORE(5); IRMAE__Z_STORE(6); IRMAE__Z_STORE(7);
}

#endif

#if !defined(IRMAE_NO_SIMD) && defined(__aarch64__)
#define IRMAE__NEON 1
#include <arm_neon.h>
/* NEON micro-kernel, 8 x 12: 24 q-register accumulators. */
static void irmae__ukernel_neon(int kc, const float *pa, const float *pb,
                                float *c, int ldc, float alpha, float beta)
{
    float32x4_t acc[8][3];
    int p, i, j;
    for (i = 0; i < 8; i++)
        for (j = 0; j < 3; j++) acc[i][j] = vdupq_n_f32(0.0f);
    for (p = 0; p < kc; p++, pa += 8, pb += 12) {
        float32x4_t b0 = vld1q_f32(pb), b1 = vld1q_f32(pb + 4), b2 = vld1q_f32(pb + 8);
        float32x4_t a0 = vld1q_f32(pa), a1 = vld1q_f32(pa + 4);
        acc[0][0] = vfmaq_laneq_f32(acc[0][0], b0, a0, 0); acc[0][1] = vfmaq_laneq_f32(acc[0][1], b1, a0, 0); acc[0][2] = vfmaq_laneq_f32(acc[0][2], b2, a0, 0);
        acc[1][0] = vfmaq_laneq_f32(acc[1][0], b0, a0, 1); acc[1][1] = vfmaq_laneq_f32(acc[1][1], b1, a0, 1); acc[1][2] = vfmaq_laneq_f32(acc[1][2], b2, a0, 1);
        acc[2][0] = vfmaq_laneq_f32(acc[2][0], b0, a0, 2); acc[2][1] = vfmaq_laneq_f32(acc[2][1], b1, a0, 2); acc[2][2] = vfmaq_laneq_f32(acc[2][2], b2, a0, 2);
        acc[3][0] = vfmaq_laneq_f32(acc[3][0], b0, a0, 3); acc[3][1] = vfmaq_laneq_f32(acc[3][1], b1, a0, 3); acc[3][2] = vfmaq_laneq_f32(acc[3][2], b2, a0, 3);
        acc[4][0] = vfmaq_laneq_f32(acc[4][0], b0, a1, 0); acc[4][1] = vfmaq_laneq_f32(acc[4][1], b1, a1, 0); acc[4][2] = vfmaq_laneq_f32(acc[4][2], b2, a1, 0);
        acc[5][0] = vfmaq_laneq_f32(acc[5][0], b0, a1, 1); acc[5][1] = vfmaq_laneq_f32(acc[5][1], b1, a1, 1); acc[5][2] = vfmaq_laneq_f32(acc[5][2], b2, a1, 1);
        acc[6][0] = vfmaq_laneq_f32(acc[6][0], b0, a1, 2); acc[6][1] = vfmaq_laneq_f32(acc[6][1], b1, a1, 2); acc[6][2] = vfmaq_laneq_f32(acc[6][2], b2, a1, 2);
        acc[7][0] = vfmaq_laneq_f32(acc[7][0], b0, a1, 3); acc[7][1] = vfmaq_laneq_f32(acc[7][1], b1, a1, 3); acc[7][2] = vfmaq_laneq_f32(acc[7][2], b2, a1, 3);
    }
    for (i = 0; i < 8; i++) {
        float *row = c + (size_t)i * ldc;
        for (j = 0; j < 3; j++) {
            float32x4_t r = vmulq_n_f32(acc[i][j], alpha);
            if (beta != 0.0f) r = vfmaq_n_f32(r, vld1q_f32(row + 4 * j), beta);
            vst1q_f32(row + 4 * j, r);
        }
    }
}
#endif

typedef struct irmae__gemm_path { int level, mr, nr; irmae__ukernel kernel; } irmae__gemm_path;

static int irmae__simd_cpu_best(void)
{
#if defined(IRMAE__X86)
    if (IRMAE__CPU_HAS("avx512f")) return IRMAE_SIMD_AVX512;
    if (IRMAE__CPU_HAS("avx2") && IRMAE__CPU_HAS("fma")) return IRMAE_SIMD_AVX2;
    return IRMAE_SIMD_SCALAR;
#elif defined(IRMAE__NEON)
    return IRMAE_SIMD_NEON;
#else
    return IRMAE_SIMD_SCALAR;
#endif
}

static int irmae__simd_current = -1; /* -1: not chosen yet */

static int irmae__simd_parse_env(void)
{
    const char *e = getenv("IRMAE_SIMD");
    if (!e) return IRMAE_SIMD_BEST;
    if (!strcmp(e, "scalar")) return IRMAE_SIMD_SCALAR;
    if (!strcmp(e, "avx2")) return IRMAE_SIMD_AVX2;
    if (!strcmp(e, "avx512")) return IRMAE_SIMD_AVX512;
    if (!strcmp(e, "neon")) return IRMAE_SIMD_NEON;
    return IRMAE_SIMD_BEST;
}

IRMAEDEF int irmae_simd_force(int level)
{
    int best = irmae__simd_cpu_best();
    /* x86 levels are ordered scalar < avx2 < avx512; NEON is all or nothing */
    if (level == IRMAE_SIMD_BEST) irmae__simd_current = best;
    else if (level == IRMAE_SIMD_SCALAR || best == IRMAE_SIMD_SCALAR) irmae__simd_current = IRMAE_SIMD_SCALAR;
    else if (best == IRMAE_SIMD_NEON) irmae__simd_current = IRMAE_SIMD_NEON;
    else if (level == IRMAE_SIMD_NEON) irmae__simd_current = IRMAE_SIMD_SCALAR;
    else irmae__simd_current = level < best ? level : best;
    return irmae__simd_current;
}

IRMAEDEF int irmae_simd_level(void)
{
    if (irmae__simd_current < 0) irmae_simd_force(irmae__simd_parse_env());
    return irmae__simd_current;
}

IRMAEDEF const char *irmae_simd_name(int level)
{
    switch (level) {
    case IRMAE_SIMD_SCALAR: return "scalar";
    case IRMAE_SIMD_AVX2: return "avx2";
    case IRMAE_SIMD_AVX512: return "avx512";
    case IRMAE_SIMD_NEON: return "neon";
    default: return "unknown";
    }
}

static irmae__gemm_path irmae__gemm_select(void)
{
    irmae__gemm_path p;
    p.level = irmae_simd_level();
    p.mr = 4; p.nr = 16; p.kernel = irmae__ukernel_scalar;
#if defined(IRMAE__X86)
    if (p.level == IRMAE_SIMD_AVX512) { p.mr = 8; p.nr = 32; p.kernel = irmae__ukernel_avx512; }
    else if (p.level == IRMAE_SIMD_AVX2) { p.mr = 6; p.nr = 16; p.kernel = irmae__ukernel_avx2; }
#elif defined(IRMAE__NEON)
    if (p.level == IRMAE_SIMD_NEON) { p.mr = 8; p.nr = 12; p.kernel = irmae__ukernel_neon; }
#endif
    return p;
}

/* Per-calling-thread packing buffers, allocated at first use, fixed size. */
static IRMAE__THREAD_LOCAL float *irmae__gemm_buf = NULL;

IRMAEDEF void irmae_sgemm_release(void)
{
    irmae__free(irmae__gemm_buf);
    irmae__gemm_buf = NULL;
}

/* op(A)[i][p] and op(B)[p][j] */
#define IRMAE__AT(a, lda, ta, i, p) ((ta) ? (a)[(size_t)(p) * (lda) + (i)] : (a)[(size_t)(i) * (lda) + (p)])

#if defined(IRMAE__X86)
/* The transposing copies of packing, 8 x 8 at a time with AVX2 shuffles:
   d[q * ds + i] = s[i * ss + q] for q < 8 and i < rows (rows is 6 or 8:
   exactly rows floats of each output row are written; missing input rows
   are never read). Pure data movement: the packed panels are the same bits
   as the scalar loops'. */
IRMAE__TARGET("avx2,fma")
static void irmae__transpose8_avx2(float *d, size_t ds, const float *s, size_t ss, int rows)
{
    __m256 r[8], t[8], u[8], o;
    int i;
    for (i = 0; i < 8; i++) r[i] = i < rows ? _mm256_loadu_ps(s + (size_t)i * ss) : _mm256_setzero_ps();
    for (i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (i = 0; i < 2; i++) { /* u[4i + c]: columns c and c + 4 of rows 4i .. 4i + 3 */
        u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
        u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
        u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
        u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (i = 0; i < 8; i++) {
        float *dq = d + (size_t)i * ds;
        o = i < 4 ? _mm256_permute2f128_ps(u[i], u[i + 4], 0x20)
                  : _mm256_permute2f128_ps(u[i - 4], u[i], 0x31);
        if (rows == 8) _mm256_storeu_ps(dq, o);
        else { /* 6 */
            _mm_storeu_ps(dq, _mm256_castps256_ps128(o));
            _mm_store_sd((double *)(void *)(dq + 4), _mm_castps_pd(_mm256_extractf128_ps(o, 1)));
        }
    }
}
#endif

/* rows x n block moves: dst[i ds + j] (+)= src[i ss + j] (GEMM packing, the
   phase-plane forms of the convolutions). The AVX2 form serves the AVX-512
   path too where n is not a multiple of 16, and it uses no masked loads/stores:
   a masked load of what a masked store just wrote is not forwarded from the
   store buffer on current x86 cores, and the phase-plane adds do exactly
   that. */
#if defined(IRMAE__X86)
IRMAE__TARGET("avx2")
static void irmae__rows_avx2(float *dst, size_t ds, const float *src, size_t ss, int rows, int n, int add)
{
    int i, j;
    /* the model's small feature maps (rows of 4 and 8 floats): one move per row */
    if (n == 4) {
        for (i = 0; i < rows; i++, dst += ds, src += ss)
            _mm_storeu_ps(dst, add ? _mm_add_ps(_mm_loadu_ps(dst), _mm_loadu_ps(src)) : _mm_loadu_ps(src));
        return;
    }
    if (n == 8) {
        for (i = 0; i < rows; i++, dst += ds, src += ss)
            _mm256_storeu_ps(dst, add ? _mm256_add_ps(_mm256_loadu_ps(dst), _mm256_loadu_ps(src))
                                      : _mm256_loadu_ps(src));
        return;
    }
    for (i = 0; i < rows; i++, dst += ds, src += ss) {
        for (j = 0; j + 8 <= n; j += 8) {
            __m256 v = _mm256_loadu_ps(src + j);
            if (add) v = _mm256_add_ps(_mm256_loadu_ps(dst + j), v);
            _mm256_storeu_ps(dst + j, v);
        }
        if (j + 4 <= n) {
            __m128 v = _mm_loadu_ps(src + j);
            if (add) v = _mm_add_ps(_mm_loadu_ps(dst + j), v);
            _mm_storeu_ps(dst + j, v);
            j += 4;
        }
        for (; j < n; j++) dst[j] = add ? dst[j] + src[j] : src[j];
    }
}

/* Rows of a multiple of 16 floats with whole 512-bit moves (the 16-float
   rows of the mnist decoder's col2im, the 32-float rows of B panels): no
   masks, so the phase-plane adds' reads of what the previous tap wrote are
   forwarded as with AVX2. The same adds: the same bits. */
IRMAE__TARGET("avx512f")
static void irmae__rows16_avx512(float *dst, size_t ds, const float *src, size_t ss, int rows, int n, int add)
{
    int i, j;
    for (i = 0; i < rows; i++, dst += ds, src += ss)
        for (j = 0; j < n; j += 16) {
            __m512 v = _mm512_loadu_ps(src + j);
            if (add) v = _mm512_add_ps(_mm512_loadu_ps(dst + j), v);
            _mm512_storeu_ps(dst + j, v);
        }
}
#endif
static void irmae__rows(float *dst, size_t ds, const float *src, size_t ss, int rows, int n, int add, int vec)
{
    int i, j;
#if defined(IRMAE__X86)
    if (vec == 2 && (n & 15) == 0) { irmae__rows16_avx512(dst, ds, src, ss, rows, n, add); return; }
    if (vec) { irmae__rows_avx2(dst, ds, src, ss, rows, n, add); return; }
#else
    (void)vec;
#endif
    for (i = 0; i < rows; i++, dst += ds, src += ss)
        for (j = 0; j < n; j++) dst[j] = add ? dst[j] + src[j] : src[j];
}

/* pack rows [i0, i0+mc) x depth [p0, p0+kc) of op(A) into MR-row micro-panels:
   panel[p * mr + i] = op(A)[i0 + i][p0 + p]; loops read memory contiguously */
static void irmae__pack_a(float *dst, const float *a, int lda, int ta, int i0, int mc,
                          int p0, int kc, int mr, int vec)
{
    int panels = (mc + mr - 1) / mr, ip;
    IRMAE__OMP(for schedule(static))
    for (ip = 0; ip < panels; ip++) {
        float *d = dst + (size_t)ip * mr * kc;
        int rows = mc - ip * mr < mr ? mc - ip * mr : mr, i, p;
        if (ta) { /* op(A)[i][p] = a[p][i]: rows of a are contiguous in i */
            irmae__rows(d, (size_t)mr, a + (size_t)p0 * lda + i0 + ip * mr, (size_t)lda, kc, rows, 0, vec);
            if (rows < mr)
                for (p = 0; p < kc; p++)
                    for (i = rows; i < mr; i++) d[(size_t)p * mr + i] = 0.0f;
        } else { /* a transpose, done in blocks of 16 depths to stay in L1 */
            int pb = 0, q;
#if defined(IRMAE__X86)
            if (vec && rows == mr && (mr == 6 || mr == 8)) { /* 8 depths x 6 or 8 rows at a time */
                const float *src = a + (size_t)(i0 + ip * mr) * lda + p0;
                for (; pb + 8 <= kc; pb += 8)
                    irmae__transpose8_avx2(d + (size_t)pb * mr, (size_t)mr, src + pb, (size_t)lda, mr);
            }
#else
            (void)vec;
#endif
            for (; pb < kc; pb += 16) {
                int qn = kc - pb < 16 ? kc - pb : 16;
                for (i = 0; i < rows; i++) {
                    const float *src = a + (size_t)(i0 + ip * mr + i) * lda + p0 + pb;
                    for (q = 0; q < qn; q++) d[(size_t)(pb + q) * mr + i] = src[q];
                }
                for (; i < mr; i++)
                    for (q = 0; q < qn; q++) d[(size_t)(pb + q) * mr + i] = 0.0f;
            }
        }
    }
}

/* pack depth [p0, p0+kc) x columns [j0, j0+nc) of op(B) into NR-column micro-panels:
   panel[p * nr + j] = op(B)[p0 + p][j0 + j]. Called by one thread (for one panel). */
static void irmae__pack_b(float *dst, const float *b, int ldb, int tb, int p0, int kc,
                          int j0, int nc, int nr, int vec)
{
    int panels = (nc + nr - 1) / nr, jp;
    for (jp = 0; jp < panels; jp++) {
        float *d = dst + (size_t)jp * nr * kc;
        int cols = nc - jp * nr < nr ? nc - jp * nr : nr, j, p;
        if (!tb) {
            const float *src = b + (size_t)p0 * ldb + j0 + jp * nr;
            /* full panels: fixed-size copies the compiler turns into vector moves
               (a memcpy call per 48..128-byte row costs more than the copy) */
            if (vec && cols == nr)
                irmae__rows(d, (size_t)nr, src, (size_t)ldb, kc, nr, 0, vec);
            else if (cols == 16 && nr == 16)
                for (p = 0; p < kc; p++, src += ldb) memcpy(d + (size_t)p * 16, src, 16 * sizeof(float));
            else if (cols == 12 && nr == 12)
                for (p = 0; p < kc; p++, src += ldb) memcpy(d + (size_t)p * 12, src, 12 * sizeof(float));
            else if (cols == 32 && nr == 32)
                for (p = 0; p < kc; p++, src += ldb) memcpy(d + (size_t)p * 32, src, 32 * sizeof(float));
            else
                for (p = 0; p < kc; p++, src += ldb) {
                    for (j = 0; j < cols; j++) d[(size_t)p * nr + j] = src[j];
                    for (; j < nr; j++) d[(size_t)p * nr + j] = 0.0f;
                }
        } else { /* op(B)[p][j] = b[j][p]: a transpose, in blocks of 16 depths */
            int pb = 0, q;
#if defined(IRMAE__X86)
            if (vec && cols == nr && nr % 8 == 0) { /* 8 depths x 8 columns at a time */
                const float *src = b + (size_t)(j0 + jp * nr) * ldb + p0;
                for (; pb + 8 <= kc; pb += 8)
                    for (j = 0; j < nr; j += 8)
                        irmae__transpose8_avx2(d + (size_t)pb * nr + j, (size_t)nr,
                                               src + (size_t)j * ldb + pb, (size_t)ldb, 8);
            }
#else
            (void)vec;
#endif
            for (; pb < kc; pb += 16) {
                int qn = kc - pb < 16 ? kc - pb : 16;
                for (j = 0; j < cols; j++) {
                    const float *src = b + (size_t)(j0 + jp * nr + j) * ldb + p0 + pb;
                    for (q = 0; q < qn; q++) d[(size_t)(pb + q) * nr + j] = src[q];
                }
                for (; j < nr; j++)
                    for (q = 0; q < qn; q++) d[(size_t)(pb + q) * nr + j] = 0.0f;
            }
        }
    }
}

/* small products: no packing, i-p-j loops (vectorised over j) or dot products */
#if defined(IRMAE__X86)
/* The same loops with AVX2 + FMA: row updates 8 columns at a time, dot
   products with 8 partial sums. */
IRMAE__TARGET("avx2,fma")
static void irmae__sgemm_small_avx2(int ta, int tb, int m, int n, int k, float alpha,
                                    const float *a, int lda, const float *b, int ldb,
                                    float beta, float *c, int ldc)
{
    int i, j, p;
    for (i = 0; i < m; i++) {
        float *ci = c + (size_t)i * ldc;
        if (beta == 0.0f) for (j = 0; j < n; j++) ci[j] = 0.0f;
        else if (beta != 1.0f) for (j = 0; j < n; j++) ci[j] *= beta;
        if (!tb) {
            for (p = 0; p < k; p++) {
                float av = alpha * IRMAE__AT(a, lda, ta, i, p);
                const float *bp = b + (size_t)p * ldb;
                __m256 va = _mm256_set1_ps(av);
                for (j = 0; j + 8 <= n; j += 8)
                    _mm256_storeu_ps(ci + j, _mm256_fmadd_ps(va, _mm256_loadu_ps(bp + j), _mm256_loadu_ps(ci + j)));
                for (; j < n; j++) ci[j] += av * bp[j];
            }
        } else {
            for (j = 0; j < n; j++) {
                const float *bj = b + (size_t)j * ldb;
                float s = 0.0f, part[8];
                __m256 acc = _mm256_setzero_ps();
                p = 0;
                if (!ta) {
                    const float *ai = a + (size_t)i * lda;
                    for (; p + 8 <= k; p += 8)
                        acc = _mm256_fmadd_ps(_mm256_loadu_ps(ai + p), _mm256_loadu_ps(bj + p), acc);
                }
                _mm256_storeu_ps(part, acc);
                s = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
                for (; p < k; p++) s += IRMAE__AT(a, lda, ta, i, p) * bj[p];
                ci[j] += alpha * s;
            }
        }
    }
}
#endif

static void irmae__sgemm_small(int ta, int tb, int m, int n, int k, float alpha,
                               const float *a, int lda, const float *b, int ldb,
                               float beta, float *c, int ldc)
{
    int i, j, p;
#if defined(IRMAE__X86)
    if (irmae_simd_level() >= IRMAE_SIMD_AVX2) {
        irmae__sgemm_small_avx2(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
#endif
    for (i = 0; i < m; i++) {
        float *ci = c + (size_t)i * ldc;
        if (beta == 0.0f) for (j = 0; j < n; j++) ci[j] = 0.0f;
        else if (beta != 1.0f) for (j = 0; j < n; j++) ci[j] *= beta;
        if (!tb) {
            for (p = 0; p < k; p++) {
                float av = alpha * IRMAE__AT(a, lda, ta, i, p);
                const float *bp = b + (size_t)p * ldb;
                for (j = 0; j < n; j++) ci[j] += av * bp[j];
            }
        } else {
            for (j = 0; j < n; j++) {
                const float *bj = b + (size_t)j * ldb;
                float s = 0.0f;
                for (p = 0; p < k; p++) s += IRMAE__AT(a, lda, ta, i, p) * bj[p];
                ci[j] += alpha * s;
            }
        }
    }
}

/* An operand of the packed GEMM: an explicit matrix (fn == NULL: p, ld and
   trans, packed by irmae__pack_a / irmae__pack_b), or a packer that writes
   the micro-panels itself. The convolutions use packers to build panels
   straight from their NCHW tensors: no im2col matrix written and read back,
   no transposing copy (an implicit GEMM). A packer fills the w-wide
   micro-panels of outer indices [r0, r0 + rn) (rows of op(A), columns of
   op(B)) over depth [p0, p0 + kc): panel t, at dst + t w kc, holds element
   (outer r0 + t w + i, depth p0 + p) at p w + i, and zeros for outer indices
   past r0 + rn. A packer of op(A) is called by every thread of the GEMM's
   team and shares the work with an orphaned omp for, whose barrier ends the
   packing; a packer of op(B) is called by one thread for one panel. The
   panels hold the values that packing the explicit matrix would, so the
   products are the same bits. */
typedef void (*irmae__packer)(const void *ctx, float *dst, int r0, int rn, int p0, int kc, int w, int vec);
typedef struct irmae__operand {
    const float *p;
    int ld, trans;
    irmae__packer fn;
    const void *ctx;
} irmae__operand;

/* irmae_sgemm packs when this holds; smaller and skinny products take the
   unpacked loops (irmae__sgemm_small) */
/* multiply-adds from which a product is worth waking the team for */
#define IRMAE__GEMM_PAR_MIN 262144.0
#define IRMAE__GEMM_PACKS(m, n, k) ((double)(m) * (n) * (k) > 32768.0 && (m) >= 4)

/* C = alpha op(A) op(B) + beta C through packed panels (m, n, k > 0,
   alpha != 0). IRMAE_ERR_NOMEM when the packing buffers cannot be allocated. */
static int irmae__gemm(int m, int n, int k, float alpha, const irmae__operand *A,
                       const irmae__operand *B, float beta, float *c, int ldc)
{
    irmae__gemm_path path;
    float *pa_all;
    int pc, ic, vec;
    double t0 = IRMAE__PROF_T0(), tpack = 0.0;
    if (!irmae__gemm_buf) {
        irmae__gemm_buf = (float *)irmae__alloc(IRMAE__GEMM_BUF_FLOATS, sizeof(float));
        if (!irmae__gemm_buf)
            return irmae__fail(IRMAE_ERR_NOMEM, "sgemm: no memory for the packing buffer (%lu floats)",
                               (unsigned long)IRMAE__GEMM_BUF_FLOATS);
    }
    pa_all = irmae__gemm_buf;
    path = irmae__gemm_select();
    /* packers: 0 plain, 1 AVX2, 2 AVX-512 (AVX-512 CPUs have AVX2) */
    vec = path.level == IRMAE_SIMD_AVX512 ? 2 : path.level == IRMAE_SIMD_AVX2;
    for (pc = 0; pc < k; pc += IRMAE__KC) {
        int kc = k - pc < IRMAE__KC ? k - pc : IRMAE__KC;
        float beta_eff = pc == 0 ? beta : 1.0f;
        for (ic = 0; ic < m; ic += IRMAE__MC) {
            int mc = m - ic < IRMAE__MC ? m - ic : IRMAE__MC;
            int mpanels = (mc + path.mr - 1) / path.mr, npanels = (n + path.nr - 1) / path.nr;
            int par = (double)mc * n * kc >= IRMAE__GEMM_PAR_MIN;
            (void)par;
            IRMAE__OMP(parallel if(par))
            {
                /* this thread's B micro-panel (kc x nr), 64-byte aligned */
                float pb_raw[IRMAE__KC * IRMAE__NR_MAX + 16];
                float *pb = pb_raw + ((64 - (uintptr_t)pb_raw % 64) % 64) / sizeof(float);
                double tp = IRMAE__PROF_T0();
                int team = 1, groups, units, u;
#if defined(_OPENMP)
                team = omp_get_num_threads();
#endif
                if (A->fn) A->fn(A->ctx, pa_all, ic, mc, pc, kc, path.mr, vec);
                else irmae__pack_a(pa_all, A->p, A->ld, A->trans, ic, mc, pc, kc, path.mr, vec);
                /* the packing loop ends in a barrier: the caller's thread times it */
                IRMAE__OMP(master)
                tpack += IRMAE__PROF_T0() - tp;
                /* a unit of work: one column panel, packed once and run against
                   every A micro-panel; with fewer than 2 column panels a thread, the
                   A panels are cut into groups and each group packs the column
                   panel again (more units, each the same kernel calls) */
                groups = npanels >= 2 * team ? 1 : (2 * team + npanels - 1) / npanels;
                if (groups > mpanels) groups = mpanels;
                units = npanels * groups;
                IRMAE__OMP(for schedule(static) nowait)
                for (u = 0; u < units; u++) {
                    const int jp = u / groups, gr = u % groups;
                    const int ip0 = (int)((long)mpanels * gr / groups), ip1 = (int)((long)mpanels * (gr + 1) / groups);
                    const int j0 = jp * path.nr, cols = n - j0 < path.nr ? n - j0 : path.nr;
                    int ip;
                    double tb = IRMAE__PROF_T0();
                    if (B->fn) B->fn(B->ctx, pb, j0, cols, pc, kc, path.nr, vec);
                    else irmae__pack_b(pb, B->p, B->ld, B->trans, pc, kc, j0, cols, path.nr, vec);
                    if (irmae__prof_on) {
#if defined(_OPENMP)
                        if (omp_get_thread_num() == 0)
#endif
                        tpack += IRMAE__PROF_T0() - tb;
                    }
                    for (ip = ip0; ip < ip1; ip++) {
                        int i0 = ic + ip * path.mr;
                        int rows = m - i0 < path.mr ? m - i0 : path.mr;
                        const float *pa = pa_all + (size_t)ip * path.mr * kc;
                        float *cij = c + (size_t)i0 * ldc + j0;
                        if (rows == path.mr && cols == path.nr) {
                            path.kernel(kc, pa, pb, cij, ldc, alpha, beta_eff);
                        } else { /* edge tile: the valid part of C is copied to a scratch
                                    tile, updated by the same kernel (so with the same
                                    epilogue arithmetic as a full tile) and copied back */
                            float tmp[IRMAE__MR_MAX * IRMAE__NR_MAX];
                            int i;
                            if (beta_eff != 0.0f) {
                                memset(tmp, 0, sizeof tmp);
                                for (i = 0; i < rows; i++)
                                    memcpy(tmp + i * path.nr, cij + (size_t)i * ldc, (size_t)cols * sizeof(float));
                            }
                            path.kernel(kc, pa, pb, tmp, path.nr, alpha, beta_eff);
                            for (i = 0; i < rows; i++)
                                memcpy(cij + (size_t)i * ldc, tmp + i * path.nr, (size_t)cols * sizeof(float));
                        }
                    }
                }
            } /* the region's end is the barrier: the next block packs A again */
        }
    }
    if (irmae__prof_on) {
        irmae__prof_s[IRMAE_PHASE_PACK] += tpack;
        irmae__prof_s[IRMAE_PHASE_GEMM] += irmae__clock() - t0 - tpack;
    }
    return IRMAE_OK;
}

IRMAEDEF void irmae_sgemm(int trans_a, int trans_b, int m, int n, int k,
                          float alpha, const float *a, int lda,
                          const float *b, int ldb,
                          float beta, float *c, int ldc)
{
    irmae__operand A, B;
    double t0 = IRMAE__PROF_T0();
    if (m <= 0 || n <= 0) return;
    A.p = a; A.ld = lda; A.trans = trans_a; A.fn = NULL; A.ctx = NULL;
    B.p = b; B.ld = ldb; B.trans = trans_b; B.fn = NULL; B.ctx = NULL;
    if (k <= 0 || alpha == 0.0f) /* C = beta * C */
        irmae__sgemm_small(0, 0, m, n, 0, 0.0f, a, lda, b, ldb, beta, c, ldc);
    /* small products, and skinny ones with fewer rows than a micro-tile
       (packing would cost more than it saves); and without memory for packing */
    else if (!IRMAE__GEMM_PACKS(m, n, k) || irmae__gemm(m, n, k, alpha, &A, &B, beta, c, ldc))
        irmae__sgemm_small(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else return; /* irmae__gemm timed itself */
    IRMAE__PROF_ADD(IRMAE_PHASE_GEMM, t0);
}

/* ---------------------------------------------------------------------- */
/* Kernels: convolution                                             @conv */
/* ---------------------------------------------------------------------- */

/* Both operators are expressed through one geometry: an "image side" X
   (cx channels of hx x wx, the side that im2col reads and col2im writes)
   and a "matrix side" Y (cy channels of hy x wy = P positions), related by
   Y = Wc * im2col(X) with Wc a [cy, kc = cx k k] matrix:
     conv2d:  X = input,  Y = output, Wc = w  [out_c, in_c k k]
     convT2d: X = output, Y = input,  Wc = w  [in_c, out_c k k]
   (a transposed convolution is the adjoint of the convolution that maps
   its output back to its input, and PyTorch's [in, out, k, k] layout is
   exactly that convolution's weight). Then
     conv forward  = convT backward-data = Y <- Wc im2col(X)
     conv backward-data = convT forward  = X <- col2im(Wc^T Y)
     dWc += Y im2col(X)^T for both.
   The batch is processed in chunks of `imgs` images; im2col writes a
   [kc, imgs P] matrix (column n P + q is position q of image n), Y is
   gathered to / scattered from a [cy, imgs P] matrix, so each GEMM has
   N = imgs P even for tiny feature maps. The chunk size depends only on
   the desc (never on the thread count), so sums have a fixed order. */

/* Soft cap on the workspace, in floats (default 1 Mi floats = 4 MB). The
   lowered matrix a transposed convolution's GEMM writes and its col2im reads
   back (and the backward-data pass's) is then closer to the core: measured
   on an AMD EPYC Zen 5, mnist l=8, one thread, medians of alternating runs,
   1 Mi against 2 Mi: batch 32 0.976x the step time, batch 128 0.90x; two
   threads 0.98x; shapes 0.99-1.00x; 768 Ki the same as 1 Mi, 512 Ki
   1.03-1.06x slower. The results do not depend on it (irmae__conv_chunk). A
   single image that needs more gets a one-image chunk. */
#ifndef IRMAE_CONV_CHUNK_FLOATS
#define IRMAE_CONV_CHUNK_FLOATS ((size_t)1 << 20)
#endif
/* A 1x1, stride-1, pad-0 layer skips im2col and runs one GEMM per image
   on the NCHW tensors directly when an image has at least this many
   positions (below it the batched path's larger GEMM wins). */
#define IRMAE__CONV_DIRECT_MIN_P 64
/* Copies smaller than this many floats run on one thread. */
#define IRMAE__CONV_PAR_MIN 32768

typedef struct irmae__cgeom {
    int batch;
    int cx, hx, wx;   /* image side */
    int cy, hy, wy;   /* matrix side */
    int k, s, p;
    int kc;           /* cx * k * k */
    int P;            /* hy * wy */
    size_t planex;    /* hx * wx */
    size_t imgx;      /* cx * hx * wx */
    size_t imgy;      /* cy * P */
} irmae__cgeom;

/* 1 if a * b * c (all > 0) <= INT_MAX */
static int irmae__conv_int_ok(int a, int b, int c)
{
    int64_t t = (int64_t)a * (int64_t)b;
    if (t > INT_MAX) return 0;
    return t * (int64_t)c <= INT_MAX;
}

/* Validates d (fields re-derived from the sizes, so an edited or garbage desc
   is caught). `code` 0 reports the natural error code, otherwise `code` is
   returned for every failure. */
static int irmae__conv_check(const irmae_conv_desc *d, int transposed, int code, const char *fn)
{
    int64_t oh, ow;
    size_t t, kc, px, py;
    const char *kind = transposed ? "convt2d" : "conv2d";
    if (!d) return irmae__fail(IRMAE_ERR_ARG, "%s: desc is NULL", fn);
    if (d->transposed != transposed)
        return irmae__fail(IRMAE_ERR_ARG, "%s: desc.transposed = %d, expected %d (%s)",
                           fn, d->transposed, transposed, kind);
    if (d->batch <= 0 || d->in_c <= 0 || d->in_h <= 0 || d->in_w <= 0 || d->out_c <= 0)
        return irmae__fail(code ? code : IRMAE_ERR_ARG,
                           "%s: sizes must be > 0 (batch %d, in %d x %d x %d, out_c %d)",
                           fn, d->batch, d->in_c, d->in_h, d->in_w, d->out_c);
    if (d->k <= 0 || d->stride <= 0)
        return irmae__fail(code ? code : IRMAE_ERR_ARG, "%s: kernel %d and stride %d must be > 0",
                           fn, d->k, d->stride);
    if (d->pad < 0 || d->pad >= d->k)
        return irmae__fail(code ? code : IRMAE_ERR_ARG, "%s: pad %d outside [0, k = %d)",
                           fn, d->pad, d->k);
    if (!transposed) {
        int64_t eh = (int64_t)d->in_h + 2 * (int64_t)d->pad - d->k;
        int64_t ew = (int64_t)d->in_w + 2 * (int64_t)d->pad - d->k;
        if (eh < 0 || ew < 0)
            return irmae__fail(code ? code : IRMAE_ERR_SHAPE,
                               "%s: kernel %d larger than padded input %d x %d (pad %d)",
                               fn, d->k, d->in_h, d->in_w, d->pad);
        oh = eh / d->stride + 1;
        ow = ew / d->stride + 1;
    } else {
        oh = ((int64_t)d->in_h - 1) * d->stride - 2 * (int64_t)d->pad + d->k;
        ow = ((int64_t)d->in_w - 1) * d->stride - 2 * (int64_t)d->pad + d->k;
        if (oh < 1 || ow < 1)
            return irmae__fail(code ? code : IRMAE_ERR_SHAPE,
                               "%s: output %lld x %lld < 1 (in %d x %d, k %d, stride %d, pad %d)",
                               fn, (long long)oh, (long long)ow, d->in_h, d->in_w, d->k,
                               d->stride, d->pad);
    }
    if (oh > INT_MAX || ow > INT_MAX)
        return irmae__fail(code ? code : IRMAE_ERR_OVERFLOW, "%s: output %lld x %lld overflows int",
                           fn, (long long)oh, (long long)ow);
    if (d->out_h != (int)oh || d->out_w != (int)ow)
        return irmae__fail(code ? code : IRMAE_ERR_ARG,
                           "%s: desc out %d x %d inconsistent with computed %lld x %lld",
                           fn, d->out_h, d->out_w, (long long)oh, (long long)ow);
    /* every size below is used as a size_t (tensors, workspace) or as an int
       (GEMM dimensions / leading dimensions, plane and row loops) */
    t = irmae__count(d->batch, d->in_c, d->in_h, d->in_w);
    if (!t || t > (size_t)-1 / sizeof(float))
        return irmae__fail(code ? code : IRMAE_ERR_OVERFLOW, "%s: input tensor %d x %d x %d x %d overflows",
                           fn, d->batch, d->in_c, d->in_h, d->in_w);
    t = irmae__count(d->batch, d->out_c, d->out_h, d->out_w);
    if (!t || t > (size_t)-1 / sizeof(float))
        return irmae__fail(code ? code : IRMAE_ERR_OVERFLOW, "%s: output tensor %d x %d x %d x %d overflows",
                           fn, d->batch, d->out_c, d->out_h, d->out_w);
    t = irmae__count(d->in_c, d->out_c, d->k, d->k);
    if (!t || t > (size_t)-1 / sizeof(float))
        return irmae__fail(code ? code : IRMAE_ERR_OVERFLOW, "%s: weights %d x %d x %d x %d overflow",
                           fn, d->out_c, d->in_c, d->k, d->k);
    if (!irmae__conv_int_ok(d->batch, d->in_c, 1) || !irmae__conv_int_ok(d->batch, d->out_c, 1))
        return irmae__fail(code ? code : IRMAE_ERR_OVERFLOW, "%s: batch %d x channels (%d, %d) exceeds INT_MAX",
                           fn, d->batch, d->in_c, d->out_c);
    if (!irmae__conv_int_ok(d->in_h, d->in_w, 1) || !irmae__conv_int_ok(d->out_h, d->out_w, 1) ||
        (int64_t)d->in_h + 2 * (int64_t)d->k > INT_MAX || (int64_t)d->in_w + 2 * (int64_t)d->k > INT_MAX ||
        (int64_t)d->out_h + 2 * (int64_t)d->k > INT_MAX || (int64_t)d->out_w + 2 * (int64_t)d->k > INT_MAX)
        return irmae__fail(code ? code : IRMAE_ERR_OVERFLOW,
                           "%s: a feature map (%d x %d or %d x %d, k %d) exceeds the int range",
                           fn, d->in_h, d->in_w, d->out_h, d->out_w, d->k);
    px = (size_t)d->in_h * (size_t)d->in_w;
    py = (size_t)d->out_h * (size_t)d->out_w;
    if (!irmae__conv_int_ok(transposed ? d->out_c : d->in_c, d->k, d->k))
        return irmae__fail(code ? code : IRMAE_ERR_OVERFLOW, "%s: im2col rows (%d x %d x %d) exceed INT_MAX",
                           fn, transposed ? d->out_c : d->in_c, d->k, d->k);
    kc = (size_t)(transposed ? d->out_c : d->in_c) * (size_t)d->k * (size_t)d->k;
    /* one image's workspace: (kc + cy) * P floats, in bytes */
    if (!irmae__mul3(&t, kc + (size_t)(transposed ? d->in_c : d->out_c),
                     transposed ? px : py, sizeof(float)))
        return irmae__fail(code ? code : IRMAE_ERR_OVERFLOW, "%s: workspace for one image overflows", fn);
    return IRMAE_OK;
}

/* d must be valid */
static irmae__cgeom irmae__conv_geom(const irmae_conv_desc *d)
{
    irmae__cgeom g;
    g.batch = d->batch;
    if (!d->transposed) {
        g.cx = d->in_c; g.hx = d->in_h; g.wx = d->in_w;
        g.cy = d->out_c; g.hy = d->out_h; g.wy = d->out_w;
    } else {
        g.cx = d->out_c; g.hx = d->out_h; g.wx = d->out_w;
        g.cy = d->in_c; g.hy = d->in_h; g.wy = d->in_w;
    }
    g.k = d->k; g.s = d->stride; g.p = d->pad;
    g.kc = g.cx * g.k * g.k;
    g.P = g.hy * g.wy;
    g.planex = (size_t)g.hx * (size_t)g.wx;
    g.imgx = g.planex * (size_t)g.cx;
    g.imgy = (size_t)g.P * (size_t)g.cy;
    return g;
}

static int irmae__conv_direct(const irmae__cgeom *g)
{
    return g->k == 1 && g->s == 1 && g->p == 0 && g->P >= IRMAE__CONV_DIRECT_MIN_P;
}

/* workspace floats per image: the lowered matrix [kc, P] and the matrix
   side [cy, P], or the zero-padded image side if that is more */
static size_t irmae__conv_per_image(const irmae__cgeom *g)
{
    const size_t low = ((size_t)g->kc + (size_t)g->cy) * (size_t)g->P;
    const size_t pad = (size_t)g->cx * (size_t)(g->hx + 2 * g->p) * (size_t)(g->wx + 2 * g->p);
    return low > pad ? low : pad;
}

/* images per chunk: a pure function of the geometry, >= 1, <= batch */
/* Chunks hold a multiple of `gran` images when the cap allows: then
   imgs P is a multiple of the GEMM's depth slice IRMAE__KC, so the weight
   gradient (a sum over the positions of the batch, one GEMM per chunk)
   adds the same slices in the same order as one GEMM over the whole
   batch would: the results do not depend on the chunk size. */
static int irmae__conv_chunk(const irmae__cgeom *g)
{
    size_t per = irmae__conv_per_image(g);
    size_t cap = IRMAE_CONV_CHUNK_FLOATS / per, gran = (size_t)IRMAE__KC, a = (size_t)g->P, b = gran;
    while (b) { size_t t = a % b; a = b; b = t; }   /* a = gcd(P, KC) */
    gran /= a;
    if (cap >= gran) cap -= cap % gran;
    if (cap < 1) cap = 1;
    if (cap > (size_t)(INT_MAX / g->P)) cap = (size_t)(INT_MAX / g->P);
    if (cap > (size_t)g->batch) cap = (size_t)g->batch;
    return (int)cap;
}

static size_t irmae__conv_ws(const irmae__cgeom *g)
{
    if (irmae__conv_direct(g)) return 0;
    return irmae__conv_per_image(g) * (size_t)irmae__conv_chunk(g);
}

static int irmae__conv_init(irmae_conv_desc *d, int transposed, const char *fn, int batch, int in_c,
                            int in_h, int in_w, int out_c, int k, int stride, int pad)
{
    int rc;
    if (!d) return irmae__fail(IRMAE_ERR_ARG, "%s: desc is NULL", fn);
    memset(d, 0, sizeof *d);
    d->batch = batch; d->in_c = in_c; d->in_h = in_h; d->in_w = in_w; d->out_c = out_c;
    d->k = k; d->stride = stride; d->pad = pad; d->transposed = transposed;
    if (transposed) {
        int64_t oh = ((int64_t)in_h - 1) * stride - 2 * (int64_t)pad + k;
        int64_t ow = ((int64_t)in_w - 1) * stride - 2 * (int64_t)pad + k;
        d->out_h = oh >= INT_MIN && oh <= INT_MAX ? (int)oh : 0;
        d->out_w = ow >= INT_MIN && ow <= INT_MAX ? (int)ow : 0;
    } else if (stride > 0) {
        int64_t eh = (int64_t)in_h + 2 * (int64_t)pad - k, ew = (int64_t)in_w + 2 * (int64_t)pad - k;
        d->out_h = eh >= 0 && eh / stride + 1 <= INT_MAX ? (int)(eh / stride + 1) : 0;
        d->out_w = ew >= 0 && ew / stride + 1 <= INT_MAX ? (int)(ew / stride + 1) : 0;
    }
    rc = irmae__conv_check(d, transposed, 0, fn);
    if (rc) memset(d, 0, sizeof *d);
    return rc;
}

IRMAEDEF int irmae_conv2d_desc(irmae_conv_desc *d, int batch, int in_c, int in_h, int in_w,
                               int out_c, int k, int stride, int pad)
{
    return irmae__conv_init(d, 0, "conv2d_desc", batch, in_c, in_h, in_w, out_c, k, stride, pad);
}

IRMAEDEF int irmae_convt2d_desc(irmae_conv_desc *d, int batch, int in_c, int in_h, int in_w,
                                int out_c, int k, int stride, int pad)
{
    return irmae__conv_init(d, 1, "convt2d_desc", batch, in_c, in_h, in_w, out_c, k, stride, pad);
}

IRMAEDEF size_t irmae_conv_workspace(const irmae_conv_desc *d)
{
    irmae__cgeom g;
    if (!d || (d->transposed != 0 && d->transposed != 1)) return 0;
    if (irmae__conv_check(d, d->transposed, 0, "conv_workspace")) return 0;
    g = irmae__conv_geom(d);
    return irmae__conv_ws(&g);
}

/* Valid output positions o in [*lo, *hi) along one axis for kernel offset
   off = kj - pad: 0 <= o * s + off < n_in, o < n_out. */
static void irmae__conv_range(int *lo, int *hi, int off, int s, int n_in, int n_out)
{
    int a = off >= 0 ? 0 : (-off + s - 1) / s;
    int b = n_in - 1 - off < 0 ? 0 : (n_in - 1 - off) / s + 1;
    if (a > n_out) a = n_out;
    if (b > n_out) b = n_out;
    if (b < a) b = a;
    *lo = a; *hi = b;
}

#if defined(IRMAE__X86)
/* Stride-2 rows of im2col / col2im with AVX2: 8 outputs from two loads and
   a shuffle. `avail` floats are addressable from src (im2col) or dst
   (col2im) within the image row; groups that would touch more are done by
   the scalar tail, so nothing outside the row is read or written. */
IRMAE__TARGET("avx2,fma")
static void irmae__gather2_avx2(float *dst, const float *src, int n, int avail)
{
    int i = 0;
    for (; i + 8 <= n && 2 * i + 16 <= avail; i += 8) { /* dst[i] = src[2 i] */
        __m256 a = _mm256_loadu_ps(src + 2 * i), b = _mm256_loadu_ps(src + 2 * i + 8);
        __m256 e = _mm256_shuffle_ps(a, b, 0x88); /* a0 a2 b0 b2 | a4 a6 b4 b6 */
        _mm256_storeu_ps(dst + i, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), 0xD8)));
    }
    for (; i < n; i++) dst[i] = src[2 * i];
}

IRMAE__TARGET("avx2,fma")
static void irmae__scatter2_add_avx2(float *dst, const float *src, int n, int avail)
{
    int i = 0;
    const __m256 z = _mm256_setzero_ps();
    for (; i + 8 <= n && 2 * i + 16 <= avail; i += 8) { /* dst[2 i] += src[i] */
        __m256 v = _mm256_loadu_ps(src + i);
        __m256 q = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), 0xD8)); /* s0 s1 s4 s5 | s2 s3 s6 s7 */
        __m256 lo = _mm256_unpacklo_ps(q, z), hi = _mm256_unpackhi_ps(q, z);    /* s0 0 s1 0 .. s3 0 | s4 0 .. s7 0 */
        /* odd positions get + 0.0f: the same value (a -0.0f becomes +0.0f) */
        _mm256_storeu_ps(dst + 2 * i, _mm256_add_ps(_mm256_loadu_ps(dst + 2 * i), lo));
        _mm256_storeu_ps(dst + 2 * i + 8, _mm256_add_ps(_mm256_loadu_ps(dst + 2 * i + 8), hi));
    }
    for (; i < n; i++) dst[2 * i] += src[i];
}

/* The same with AVX-512, 16 outputs at a time; what is left goes to the AVX2
   forms, so every element is handled exactly as there (the same bits). */
IRMAE__TARGET("avx512f")
static void irmae__gather2_avx512(float *dst, const float *src, int n, int avail)
{
    int i = 0;
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (; i + 16 <= n && 2 * i + 32 <= avail; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_permutex2var_ps(_mm512_loadu_ps(src + 2 * i), even,
                                                         _mm512_loadu_ps(src + 2 * i + 16)));
    irmae__gather2_avx2(dst + i, src + 2 * i, n - i, avail - 2 * i);
}

IRMAE__TARGET("avx512f")
static void irmae__scatter2_add_avx512(float *dst, const float *src, int n, int avail)
{
    int i = 0;
    const __m512i lo_i = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    const __m512i hi_i = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    for (; i + 16 <= n && 2 * i + 32 <= avail; i += 16) { /* odd positions + 0.0f, as in the AVX2 form */
        __m512 v = _mm512_loadu_ps(src + i);
        __m512 lo = _mm512_maskz_permutexvar_ps((__mmask16)0x5555, lo_i, v);
        __m512 hi = _mm512_maskz_permutexvar_ps((__mmask16)0x5555, hi_i, v);
        _mm512_storeu_ps(dst + 2 * i, _mm512_add_ps(_mm512_loadu_ps(dst + 2 * i), lo));
        _mm512_storeu_ps(dst + 2 * i + 16, _mm512_add_ps(_mm512_loadu_ps(dst + 2 * i + 16), hi));
    }
    irmae__scatter2_add_avx2(dst + 2 * i, src + i, n - i, avail - 2 * i);
}
/* 0: plain loops, 1: AVX2, 2: AVX-512 */
#define IRMAE__CONV_VEC() (irmae_simd_level() == IRMAE_SIMD_AVX512 ? 2 : irmae_simd_level() == IRMAE_SIMD_AVX2)
#else
#define IRMAE__CONV_VEC() 0
#endif

/* Stride 2 through phase planes. With stride 2, image pixel (ih, iw) =
   (2 r + a, 2 q + b) belongs to phase (a, b), and tap (ki, kj) of output
   position (oh, ow) reads pixel (2 (oh + dy) + a, 2 (ow + dx) + b) with
   ki - pad = 2 dy + a (floor division): it reads row oh + dy, column
   ow + dx of phase plane (a, b). So one plane (image, channel) is split once
   into its four phase planes, padded with zeros to cover every shift of the
   kernel, and then every row of im2col is a unit-stride copy from a phase
   plane (no bounds tests, no strided gathers); col2im accumulates into
   phase planes with unit-stride adds and interleaves them into the image
   once. Every value is moved, or summed in the same (ki, kj) order, exactly
   as by the direct loops: the results are the same bits. */
typedef struct irmae__ph2 {
    int d0;        /* floor(-pad / 2): the smallest shift of a tap */
    int hr, wr;    /* padded phase plane: rows r in [d0, d0 + hr), columns q in [d0, d0 + wr) */
    size_t plane;  /* hr * wr floats */
} irmae__ph2;

/* Four phase planes on the stack up to this many floats (32 KB, images up to
   about 64 x 64); larger planes take the direct loops. */
#define IRMAE__PH2_MAX 8192

static int irmae__fdiv2(int v) { return v >= 0 ? v / 2 : -((1 - v) / 2); }

/* 1 if the phase-plane form applies to g */
static int irmae__ph2_geom(irmae__ph2 *h, const irmae__cgeom *g)
{
    int d1;
    if (g->s != 2) return 0;
    h->d0 = irmae__fdiv2(-g->p);
    d1 = irmae__fdiv2(g->k - 1 - g->p);
    h->hr = g->hy + d1 - h->d0;
    h->wr = g->wy + d1 - h->d0;
    h->plane = (size_t)h->hr * (size_t)h->wr;
    return 4 * h->plane <= IRMAE__PH2_MAX;
}

/* dst[0 .. n) = v, and row[2 i] = e[i], row[2 i + 1] = o[i] for i < pairs:
   the fills and the interleave of the phase-plane forms (gcc -O2 does not
   vectorise loops that need a scalar tail). Pure data movement. */
#if defined(IRMAE__X86)
IRMAE__TARGET("avx2")
static void irmae__fill_avx2(float *dst, size_t n, float v)
{
    size_t i = 0;
    const __m256 vv = _mm256_set1_ps(v);
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, vv);
    for (; i < n; i++) dst[i] = v;
}

IRMAE__TARGET("avx2")
static void irmae__interleave2_avx2(float *row, const float *e, const float *o, int pairs)
{
    int i = 0;
    for (; i + 8 <= pairs; i += 8) {
        __m256 a = _mm256_loadu_ps(e + i), b = _mm256_loadu_ps(o + i);
        __m256 lo = _mm256_unpacklo_ps(a, b), hi = _mm256_unpackhi_ps(a, b); /* e0 o0 e1 o1 | e4 o4 e5 o5 */
        _mm256_storeu_ps(row + 2 * i, _mm256_permute2f128_ps(lo, hi, 0x20));
        _mm256_storeu_ps(row + 2 * i + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
    }
    for (; i < pairs; i++) { row[2 * i] = e[i]; row[2 * i + 1] = o[i]; }
}
#endif
static void irmae__fill(float *dst, size_t n, float v, int vec)
{
    size_t i;
#if defined(IRMAE__X86)
    if (vec) { irmae__fill_avx2(dst, n, v); return; }
#else
    (void)vec;
#endif
    for (i = 0; i < n; i++) dst[i] = v;
}

/* dst[0 .. n) = 0 on the whole team, in 64 KB blocks: the model's gradient
   buffer (8.7 MB for mnist) is cleared every step, and one thread's memset
   of it left the other thread idle. Same bits on any thread count. */
static void irmae__zero(float *dst, size_t n)
{
    const size_t blk = 16384;
    const ptrdiff_t nb = (ptrdiff_t)((n + blk - 1) / blk);
    ptrdiff_t b;
    IRMAE__OMP(parallel for schedule(static) if(n > 8 * blk))
    for (b = 0; b < nb; b++) {
        const size_t lo = (size_t)b * blk, len = n - lo < blk ? n - lo : blk;
        memset(dst + lo, 0, len * sizeof(float));
    }
}

/* dst[i] = src[i] + v, i < n (dst == src allowed): the convolutions' bias */
#if defined(IRMAE__X86)
IRMAE__TARGET("avx2")
static void irmae__add_const_avx2(float *dst, const float *src, int n, float v)
{
    int i = 0;
    const __m256 vv = _mm256_set1_ps(v);
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_add_ps(_mm256_loadu_ps(src + i), vv));
    if (i + 4 <= n) {
        _mm_storeu_ps(dst + i, _mm_add_ps(_mm_loadu_ps(src + i), _mm256_castps256_ps128(vv)));
        i += 4;
    }
    for (; i < n; i++) dst[i] = src[i] + v;
}
#endif
static void irmae__add_const(float *dst, const float *src, int n, float v, int vec)
{
    int i;
#if defined(IRMAE__X86)
    if (vec) { irmae__add_const_avx2(dst, src, n, v); return; }
#else
    (void)vec;
#endif
    for (i = 0; i < n; i++) dst[i] = src[i] + v;
}

static void irmae__interleave2(float *row, const float *e, const float *o, int pairs, int vec)
{
    int i;
#if defined(IRMAE__X86)
    if (vec) { irmae__interleave2_avx2(row, e, o, pairs); return; }
#else
    (void)vec;
#endif
    for (i = 0; i < pairs; i++) { row[2 * i] = e[i]; row[2 * i + 1] = o[i]; }
}


/* q[4 planes] <- the zero-padded phase planes of one image plane xp (hx x wx) */
static void irmae__ph2_split(float *q, const float *xp, const irmae__cgeom *g, const irmae__ph2 *h, int vec)
{
    int a, b, rr;
    for (a = 0; a < 2; a++)
        for (b = 0; b < 2; b++) {
            float *qp = q + (size_t)(2 * a + b) * h->plane;
            /* columns qq with 0 <= 2 (qq + d0) + b < wx */
            int lo = -h->d0, hi = irmae__fdiv2(g->wx - 1 - b) - h->d0 + 1, qq;
            if (lo < 0) lo = 0;
            if (hi > h->wr) hi = h->wr;
            if (hi < lo) hi = lo;
            for (rr = 0; rr < h->hr; rr++) {
                float *row = qp + (size_t)rr * h->wr;
                const int ih = 2 * (rr + h->d0) + a;
                const float *src;
                if (ih < 0 || ih >= g->hx) {
                    irmae__fill(row, (size_t)h->wr, 0.0f, vec);
                    continue;
                }
                src = xp + (size_t)ih * g->wx + 2 * (lo + h->d0) + b;
                for (qq = 0; qq < lo; qq++) row[qq] = 0.0f;
#if defined(IRMAE__X86)
                if (vec == 2) irmae__gather2_avx512(row + lo, src, hi - lo, g->wx - (2 * (lo + h->d0) + b));
                else if (vec) irmae__gather2_avx2(row + lo, src, hi - lo, g->wx - (2 * (lo + h->d0) + b));
                else
#endif
                for (qq = lo; qq < hi; qq++) row[qq] = src[2 * (qq - lo)];
                for (qq = hi; qq < h->wr; qq++) row[qq] = 0.0f;
            }
        }
}

static void irmae__im2col_s2(float *col, size_t ld, const float *x, int imgs, const irmae__cgeom *g,
                             const irmae__ph2 *h)
{
    int t;
    const int planes = imgs * g->cx, kk = g->k * g->k, vec = IRMAE__CONV_VEC();
    IRMAE__OMP(parallel for schedule(static) if ((size_t)g->kc * ld >= IRMAE__CONV_PAR_MIN))
    for (t = 0; t < planes; t++) {
        float q[IRMAE__PH2_MAX];
        const int n = t / g->cx, c = t % g->cx;
        int ki, kj;
        irmae__ph2_split(q, x + (size_t)n * g->imgx + (size_t)c * g->planex, g, h, vec);
        for (ki = 0; ki < g->k; ki++)
            for (kj = 0; kj < g->k; kj++) {
                const int a = (ki - g->p) - 2 * irmae__fdiv2(ki - g->p), dy = irmae__fdiv2(ki - g->p);
                const int b = (kj - g->p) - 2 * irmae__fdiv2(kj - g->p), dx = irmae__fdiv2(kj - g->p);
                const float *src = q + (size_t)(2 * a + b) * h->plane + (size_t)(dy - h->d0) * h->wr + (dx - h->d0);
                float *dst = col + (size_t)(c * kk + ki * g->k + kj) * ld + (size_t)n * (size_t)g->P;
                irmae__rows(dst, (size_t)g->wy, src, (size_t)h->wr, g->hy, g->wy, 0, vec);
            }
    }
}

static void irmae__col2im_s2(float *x, const float *col, size_t ld, int imgs, const irmae__cgeom *g,
                             const float *bias, const irmae__ph2 *h)
{
    int t;
    const int planes = imgs * g->cx, kk = g->k * g->k, vec = IRMAE__CONV_VEC();
    IRMAE__OMP(parallel for schedule(static) if ((size_t)g->kc * ld >= IRMAE__CONV_PAR_MIN))
    for (t = 0; t < planes; t++) {
        float q[IRMAE__PH2_MAX];
        const int n = t / g->cx, c = t % g->cx;
        float *xp = x + (size_t)n * g->imgx + (size_t)c * g->planex;
        const float bv = bias ? bias[c] : 0.0f;
        int ki, kj, ih, iw;
        irmae__fill(q, 4 * h->plane, bv, vec);
        for (ki = 0; ki < g->k; ki++)
            for (kj = 0; kj < g->k; kj++) {
                const int a = (ki - g->p) - 2 * irmae__fdiv2(ki - g->p), dy = irmae__fdiv2(ki - g->p);
                const int b = (kj - g->p) - 2 * irmae__fdiv2(kj - g->p), dx = irmae__fdiv2(kj - g->p);
                float *dst = q + (size_t)(2 * a + b) * h->plane + (size_t)(dy - h->d0) * h->wr + (dx - h->d0);
                const float *src = col + (size_t)(c * kk + ki * g->k + kj) * ld + (size_t)n * (size_t)g->P;
                irmae__rows(dst, (size_t)h->wr, src, (size_t)g->wy, g->hy, g->wy, 1, vec);
            }
        /* interleave the phases into the image; pixels no tap reaches keep the bias */
        for (ih = 0; ih < g->hx; ih++) {
            const int rr = (ih >> 1) - h->d0, a = ih & 1;
            float *row = xp + (size_t)ih * g->wx;
            if (rr < 0 || rr >= h->hr) {
                for (iw = 0; iw < g->wx; iw++) row[iw] = bv;
                continue;
            }
            {
                const float *e = q + (size_t)(2 * a) * h->plane + (size_t)rr * h->wr - h->d0;  /* phase b = 0 */
                const float *o = e + h->plane;                                               /* phase b = 1 */
                /* column iw reads column (iw >> 1) - d0 of its phase: in range for
                   iw in [2 d0, 2 (d0 + wr)) */
                int lo = 2 * h->d0 < 0 ? 0 : 2 * h->d0, hi = 2 * (h->d0 + h->wr) < g->wx ? 2 * (h->d0 + h->wr) : g->wx;
                for (iw = 0; iw < lo && iw < g->wx; iw++) row[iw] = bv;
                iw = lo;
                if (hi - lo >= 2) { /* lo is even: pairs (e, o) */
                    irmae__interleave2(row + lo, e + (lo >> 1), o + (lo >> 1), (hi - lo) / 2, vec);
                    iw = lo + 2 * ((hi - lo) / 2);
                }
                for (; iw < hi; iw++) row[iw] = (iw & 1 ? o : e)[iw >> 1];
                for (iw = hi > lo ? hi : lo; iw < g->wx; iw++) row[iw] = bv;
            }
        }
    }
}

/* col [kc, ld] (columns n P .. n P + P - 1 for image n < imgs) <- patches of
   x (imgs images of the image side). Each thread owns whole rows of col. */
static void irmae__im2col_direct(float *col, size_t ld, const float *x, int imgs, const irmae__cgeom *g)
{
    int r;
    const int kk = g->k * g->k, vec = IRMAE__CONV_VEC();
    (void)vec;
    IRMAE__OMP(parallel for schedule(static) if ((size_t)g->kc * ld >= IRMAE__CONV_PAR_MIN))
    for (r = 0; r < g->kc; r++) {
        const int c = r / kk, ki = (r / g->k) % g->k, kj = r % g->k, off = kj - g->p;
        int lo, hi, n, oh, ow;
        irmae__conv_range(&lo, &hi, off, g->s, g->wx, g->wy);
        for (n = 0; n < imgs; n++) {
            const float *xp = x + (size_t)n * g->imgx + (size_t)c * g->planex;
            float *dst = col + (size_t)r * ld + (size_t)n * (size_t)g->P;
            for (oh = 0; oh < g->hy; oh++, dst += g->wy) {
                const int ih = oh * g->s - g->p + ki;
                const float *row;
                if (ih < 0 || ih >= g->hx) {
                    memset(dst, 0, (size_t)g->wy * sizeof(float));
                    continue;
                }
                row = xp + (size_t)ih * (size_t)g->wx;
                for (ow = 0; ow < lo; ow++) dst[ow] = 0.0f;
                if (g->s == 1) {
                    if (hi > lo) memcpy(dst + lo, row + (lo + off), (size_t)(hi - lo) * sizeof(float));
                } else {
                    const int s = g->s;
#if defined(IRMAE__X86)
                    if (s == 2 && vec) {
                        if (hi > lo) (vec == 2 ? irmae__gather2_avx512 : irmae__gather2_avx2)
                                         (dst + lo, row + 2 * lo + off, hi - lo, g->wx - (2 * lo + off));
                    } else
#endif
                    for (ow = lo; ow < hi; ow++) dst[ow] = row[ow * s + off];
                }
                for (ow = hi; ow < g->wy; ow++) dst[ow] = 0.0f;
            }
        }
    }
}

/* Small feature maps: one table per call of the source pixel of every
   (tap, position) pair of a plane (tap-major, -1 where the kernel reads
   padding), then one pass of loads and stores per plane. There the rows
   of the other forms are 1 to 8 floats and their per-row overhead costs
   more than the copies (measured on a Zen 5: the 128 x 4 x 4 -> 2 x 2
   layer's im2col was 3.7 ns per float). Values are moved, or summed in
   (ki, kj) order, exactly as by the direct loops: the same bits. */
#define IRMAE__TAB_MAX 4096
/* Positions per plane up to which the table is used: im2col up to 64
   (8 x 8), col2im up to 16 (4 x 4). Measured on a Zen 5, batch 32, k 4 s 2
   p 1, the lowering of a conv forward + backward-data pass: 2 x 2 outputs
   0.70 ms with the table vs 2.78 ms with the phase planes, 4 x 4 1.05 vs
   1.57, but 8 x 8 1.85 vs 1.48 and 16 x 16 0.72 vs 0.43 (the scattered adds
   of col2im lose there); the forward pass alone (im2col) at 8 x 8: 0.54 and
   0.71 vs 0.89 and 0.85 in two runs, at 16 x 16 0.27 vs 0.18 */
#define IRMAE__TAB_IM2COL_P 64
#define IRMAE__TAB_COL2IM_P 16
static int irmae__tab_build(int *tab, const irmae__cgeom *g, int max_p)
{
    int ki, kj, oh, ow, e = 0;
    if (g->P > max_p || (size_t)g->k * (size_t)g->k * (size_t)g->P > IRMAE__TAB_MAX) return 0;
    for (ki = 0; ki < g->k; ki++)
        for (kj = 0; kj < g->k; kj++)
            for (oh = 0; oh < g->hy; oh++)
                for (ow = 0; ow < g->wy; ow++) {
                    const int ih = oh * g->s - g->p + ki, iw = ow * g->s - g->p + kj;
                    tab[e++] = ih >= 0 && ih < g->hx && iw >= 0 && iw < g->wx ? ih * g->wx + iw : -1;
                }
    return 1;
}

static void irmae__im2col_tab(float *col, size_t ld, const float *x, int imgs, const irmae__cgeom *g,
                              const int *tab)
{
    int t;
    const int planes = imgs * g->cx, kk = g->k * g->k, P = g->P;
    IRMAE__OMP(parallel for schedule(static) if ((size_t)g->kc * ld >= IRMAE__CONV_PAR_MIN))
    for (t = 0; t < planes; t++) {
        const int n = t / g->cx, c = t % g->cx;
        const float *xp = x + (size_t)n * g->imgx + (size_t)c * g->planex;
        float *dst = col + (size_t)c * kk * ld + (size_t)n * (size_t)P;
        const int *e = tab;
        int tap, q;
        for (tap = 0; tap < kk; tap++, dst += ld, e += P)
            for (q = 0; q < P; q++) dst[q] = e[q] >= 0 ? xp[e[q]] : 0.0f;
    }
}

static void irmae__col2im_tab(float *x, const float *col, size_t ld, int imgs, const irmae__cgeom *g,
                              const float *bias, const int *tab)
{
    int t;
    const int planes = imgs * g->cx, kk = g->k * g->k, P = g->P, vec = IRMAE__CONV_VEC();
    IRMAE__OMP(parallel for schedule(static) if ((size_t)g->kc * ld >= IRMAE__CONV_PAR_MIN))
    for (t = 0; t < planes; t++) {
        const int n = t / g->cx, c = t % g->cx;
        float *xp = x + (size_t)n * g->imgx + (size_t)c * g->planex;
        const float *src = col + (size_t)c * kk * ld + (size_t)n * (size_t)P;
        const int *e = tab;
        int tap, q;
        irmae__fill(xp, g->planex, bias ? bias[c] : 0.0f, vec);
        for (tap = 0; tap < kk; tap++, src += ld, e += P)
            for (q = 0; q < P; q++)
                if (e[q] >= 0) xp[e[q]] += src[q];
    }
}

/* im2col: stride 2 through phase planes when they fit, else the direct loops */
static void irmae__im2col(float *col, size_t ld, const float *x, int imgs, const irmae__cgeom *g)
{
    double t0_ = IRMAE__PROF_T0();
    irmae__ph2 h;
    int tab[IRMAE__TAB_MAX];
    if (irmae__tab_build(tab, g, IRMAE__TAB_IM2COL_P)) irmae__im2col_tab(col, ld, x, imgs, g, tab);
    else if (irmae__ph2_geom(&h, g)) irmae__im2col_s2(col, ld, x, imgs, g, &h);
    else irmae__im2col_direct(col, ld, x, imgs, g);
    IRMAE__PROF_ADD(IRMAE_PHASE_LOWER, t0_);
}

/* x (imgs images of the image side) <- bias (or 0) + col2im(col): every
   plane (image, channel) is owned by one thread and summed over (ki, kj, oh,
   ow) in that fixed order. */
static void irmae__col2im_direct(float *x, const float *col, size_t ld, int imgs, const irmae__cgeom *g,
                                 const float *bias)
{
    int t;
    const int planes = imgs * g->cx, vec = IRMAE__CONV_VEC();
    IRMAE__OMP(parallel for schedule(static) if ((size_t)g->kc * ld >= IRMAE__CONV_PAR_MIN))
    for (t = 0; t < planes; t++) {
        const int n = t / g->cx, c = t % g->cx;
        float *xp = x + (size_t)n * g->imgx + (size_t)c * g->planex;
        const float bv = bias ? bias[c] : 0.0f;
        int ki, kj, oh, ow;
        irmae__fill(xp, g->planex, bv, vec);
        for (ki = 0; ki < g->k; ki++)
            for (kj = 0; kj < g->k; kj++) {
                const int off = kj - g->p;
                const float *src = col + (size_t)((c * g->k + ki) * g->k + kj) * ld + (size_t)n * (size_t)g->P;
                int lo, hi;
                irmae__conv_range(&lo, &hi, off, g->s, g->wx, g->wy);
                if (hi <= lo) continue;
                for (oh = 0; oh < g->hy; oh++, src += g->wy) {
                    const int ih = oh * g->s - g->p + ki;
                    float *row;
                    if (ih < 0 || ih >= g->hx) continue;
                    row = xp + (size_t)ih * (size_t)g->wx;
                    if (g->s == 1) {
                        float *rr = row + (lo + off);
                        const float *ss = src + lo;
                        const int len = hi - lo;
                        for (ow = 0; ow < len; ow++) rr[ow] += ss[ow];
                    } else {
                        const int s = g->s;
#if defined(IRMAE__X86)
                        if (s == 2 && vec)
                            (vec == 2 ? irmae__scatter2_add_avx512 : irmae__scatter2_add_avx2)
                                (row + 2 * lo + off, src + lo, hi - lo, g->wx - (2 * lo + off));
                        else
#endif
                        for (ow = lo; ow < hi; ow++) row[ow * s + off] += src[ow];
                    }
                }
            }
    }
}

/* col2im: stride 2 through phase planes when they fit, else the direct loops */
static void irmae__col2im(float *x, const float *col, size_t ld, int imgs, const irmae__cgeom *g,
                          const float *bias)
{
    double t0_ = IRMAE__PROF_T0();
    irmae__ph2 h;
    int tab[IRMAE__TAB_MAX];
    if (irmae__tab_build(tab, g, IRMAE__TAB_COL2IM_P)) irmae__col2im_tab(x, col, ld, imgs, g, bias, tab);
    else if (irmae__ph2_geom(&h, g)) irmae__col2im_s2(x, col, ld, imgs, g, bias, &h);
    else irmae__col2im_direct(x, col, ld, imgs, g, bias);
    IRMAE__PROF_ADD(IRMAE_PHASE_LOWER, t0_);
}

/* y (imgs images of c x P) <- m [c, ld] + bias (bias may be NULL) */
static void irmae__conv_scatter(float *y, const float *m, size_t ld, int imgs, int c, int P,
                                const float *bias)
{
    double t0_ = IRMAE__PROF_T0();
    {
        int t;
        const int planes = imgs * c, vec = IRMAE__CONV_VEC();
        IRMAE__OMP(parallel for schedule(static) if ((size_t)planes * (size_t)P >= IRMAE__CONV_PAR_MIN))
        for (t = 0; t < planes; t++) {
            const int n = t / c, ch = t % c;
            float *dst = y + (size_t)t * (size_t)P;
            const float *src = m + (size_t)ch * ld + (size_t)n * (size_t)P;
            if (bias) irmae__add_const(dst, src, P, bias[ch], vec);
            else memcpy(dst, src, (size_t)P * sizeof(float));
        }
    }
    IRMAE__PROF_ADD(IRMAE_PHASE_LOWER, t0_);
}

/* Packers (see irmae__operand) that build GEMM panels straight from the
   tensors of one chunk of images: x is the image side, y the matrix side
   (NCHW, cy x P per image), positions q = n P + (oy wy + ox). */
typedef struct irmae__cpack {
    const irmae__cgeom *g;
    const float *x, *y;
    const irmae__ph2 *h;   /* irmae__pk_cols: the phase planes of x (stride 2), or NULL */
} irmae__cpack;

/* A = y as a [cy, imgs P] matrix (outer: channels, depth: positions), the
   left operand of the weight gradient: a transpose of each image's channel
   rows, 8 positions x 6 or 8 channels at a time with AVX2 */
static void irmae__pk_ychan(const void *ctx, float *dst, int r0, int rn, int p0, int kc, int w, int vec)
{
    const irmae__cpack *cp = (const irmae__cpack *)ctx;
    const irmae__cgeom *g = cp->g;
    const int panels = (rn + w - 1) / w;
    int t;
    IRMAE__OMP(for schedule(static))
    for (t = 0; t < panels; t++) {
        float *d = dst + (size_t)t * w * kc;
        const int rows = rn - t * w < w ? rn - t * w : w;
        int p = 0, i, u;
        while (p < kc) { /* a run of positions of one image */
            const int q = p0 + p, n = q / g->P, pos = q % g->P;
            const float *src = cp->y + (size_t)n * g->imgy + (size_t)(r0 + t * w) * g->P + pos;
            const int run = g->P - pos < kc - p ? g->P - pos : kc - p;
            u = 0;
#if defined(IRMAE__X86)
            if (vec && rows == w && (w == 6 || w == 8))
                for (; u + 8 <= run; u += 8)
                    irmae__transpose8_avx2(d + (size_t)(p + u) * w, (size_t)w, src + u, (size_t)g->P, w);
#else
            (void)vec;
#endif
            for (; u < run; u++) {
                float *dq = d + (size_t)(p + u) * w;
                for (i = 0; i < rows; i++) dq[i] = src[(size_t)i * g->P + u];
                for (; i < w; i++) dq[i] = 0.0f;
            }
            p += run;
        }
    }
}

/* B = y as a [cy, imgs P] matrix (outer: positions, depth: channels), the
   right operand of Wc^T Y: row copies of each image's positions */
static void irmae__pk_ypos(const void *ctx, float *dst, int r0, int rn, int p0, int kc, int w, int vec)
{
    const irmae__cpack *cp = (const irmae__cpack *)ctx;
    const irmae__cgeom *g = cp->g;
    const int panels = (rn + w - 1) / w;
    int t;
    for (t = 0; t < panels; t++) {
        float *d = dst + (size_t)t * w * kc;
        const int cols = rn - t * w < w ? rn - t * w : w;
        int j = 0, p;
        while (j < cols) {
            const int q = r0 + t * w + j, n = q / g->P, pos = q % g->P;
            const int run = g->P - pos < cols - j ? g->P - pos : cols - j;
            irmae__rows(d + j, (size_t)w, cp->y + (size_t)n * g->imgy + (size_t)p0 * g->P + pos, (size_t)g->P,
                        kc, run, 0, vec);
            j += run;
        }
        if (cols < w)
            for (p = 0; p < kc; p++) irmae__fill(d + (size_t)p * w + cols, (size_t)(w - cols), 0.0f, 0);
    }
}

/* B = im2col(x)^T (outer: taps (c, ki, kj), depth: positions), the right
   operand of the weight gradient, from x padded with zeros (irmae__conv_pad:
   every patch lies inside): for each position its patch, k floats of an
   image row per (c, ki) */
static void irmae__pk_patches(const void *ctx, float *dst, int r0, int rn, int p0, int kc, int w, int vec)
{
    const irmae__cpack *cp = (const irmae__cpack *)ctx;
    const irmae__cgeom *g = cp->g;
    const int panels = (rn + w - 1) / w, k = g->k, kk = g->k * g->k, pw = g->wx + 2 * g->p;
    const size_t pplane = (size_t)pw * (size_t)(g->hx + 2 * g->p);
    int t;
    (void)vec;
    for (t = 0; t < panels; t++) {
        float *d = dst + (size_t)t * w * kc;
        const int j0 = r0 + t * w, cols = rn - t * w < w ? rn - t * w : w;
        int n = p0 / g->P, oy = (p0 % g->P) / g->wy, ox = (p0 % g->P) % g->wy, p;
        for (p = 0; p < kc; p++, d += w) {
            /* the patch's top-left pixel in plane j0 / kk of image n */
            const float *o = cp->x + ((size_t)n * g->cx + (size_t)(j0 / kk)) * pplane +
                             (size_t)(oy * g->s) * pw + (size_t)(ox * g->s);
            int j = 0, ki = (j0 % kk) / k, kj = (j0 % kk) % k;
            if (k == 4 && ki == 0 && kj == 0) /* whole channels: their 4 rows of 4 */
                for (; j + 16 <= cols; j += 16, o += pplane) {
                    memcpy(d + j, o, 4 * sizeof(float));
                    memcpy(d + j + 4, o + pw, 4 * sizeof(float));
                    memcpy(d + j + 8, o + 2 * (size_t)pw, 4 * sizeof(float));
                    memcpy(d + j + 12, o + 3 * (size_t)pw, 4 * sizeof(float));
                }
            if (k == 4 && kj == 0) /* rows of 4: one move each */
                for (; j + 4 <= cols; j += 4) {
                    memcpy(d + j, o + (size_t)ki * pw, 4 * sizeof(float));
                    if (++ki == 4) { ki = 0; o += pplane; }
                }
            for (; j < cols; j++) {
                d[j] = o[(size_t)ki * pw + kj];
                if (++kj == k) { kj = 0; if (++ki == k) { ki = 0; o += pplane; } }
            }
            for (; j < w; j++) d[j] = 0.0f;
            if (++ox == g->wy) { ox = 0; if (++oy == g->hy) { oy = 0; n++; } }
        }
    }
}

/* xp <- the planes of imgs images of the image side x, padded with g->p
   zeros on every side ((hx + 2p) x (wx + 2p) floats a plane) */
static void irmae__conv_pad(float *xp, const float *x, int imgs, const irmae__cgeom *g)
{
    double t0_ = IRMAE__PROF_T0();
    {
        const int planes = imgs * g->cx, pw = g->wx + 2 * g->p, ph = g->hx + 2 * g->p, vec = IRMAE__CONV_VEC();
        int t;
        IRMAE__OMP(parallel for schedule(static) if ((size_t)planes * (size_t)pw * ph >= IRMAE__CONV_PAR_MIN))
        for (t = 0; t < planes; t++) {
            float *d = xp + (size_t)t * pw * ph;
            const float *src = x + (size_t)t * g->planex;
            int r;
            irmae__fill(d, (size_t)g->p * pw, 0.0f, vec);
            for (r = 0, d += (size_t)g->p * pw; r < g->hx; r++, d += pw, src += g->wx) {
                irmae__fill(d, (size_t)g->p, 0.0f, 0);
                memcpy(d + g->p, src, (size_t)g->wx * sizeof(float));
                irmae__fill(d + g->p + g->wx, (size_t)g->p, 0.0f, 0);
            }
            irmae__fill(d, (size_t)g->p * pw, 0.0f, vec);
        }
    }
    IRMAE__PROF_ADD(IRMAE_PHASE_LOWER, t0_);
}

/* Implicit im2col for Wc im2col(X): the image side is first copied once
   into a form in which the taps of an output row are contiguous: with
   stride 1 the zero-padded planes (irmae__conv_pad), with stride 2 each
   plane's four zero-padded phase planes (irmae__ph2_split, as im2col_s2
   uses). Then irmae__pk_cols packs B = im2col(X) (outer: positions, depth:
   taps) with unit-stride copies, one per tap and run of positions of one
   output row, and the [kc, imgs P] matrix is never written. The panels hold
   what packing the explicit im2col would (the same values: the products
   are the same bits). Other strides, and inputs for which the prepared
   copy would not fit where im2col's matrix goes, keep the explicit form. */
/* 1 if the prepared copy applies to g (h: its phase planes for stride 2) */
static int irmae__cols_prep(const irmae__cgeom *g, irmae__ph2 *h)
{
    size_t per;
    if (g->s == 1) per = (size_t)(g->hx + 2 * g->p) * (size_t)(g->wx + 2 * g->p);
    else if (irmae__ph2_geom(h, g)) per = 4 * h->plane;
    else return 0;
    /* it must fit in the part of the workspace im2col's matrix takes */
    return per * (size_t)g->cx <= (size_t)g->kc * (size_t)g->P;
}

static void irmae__cols_prepare(float *xq, const float *x, int imgs, const irmae__cgeom *g, const irmae__ph2 *h)
{
    if (g->s == 1) { irmae__conv_pad(xq, x, imgs, g); return; }
    {
        double t0_ = IRMAE__PROF_T0();
        const int planes = imgs * g->cx, vec = IRMAE__CONV_VEC();
        int t;
        IRMAE__OMP(parallel for schedule(static) if ((size_t)planes * 4 * h->plane >= IRMAE__CONV_PAR_MIN))
        for (t = 0; t < planes; t++)
            irmae__ph2_split(xq + (size_t)t * 4 * h->plane, x + (size_t)t * g->planex, g, h, vec);
        IRMAE__PROF_ADD(IRMAE_PHASE_LOWER, t0_);
    }
}

/* the copies of irmae__pk_cols for one panel: for each tap p, runs u of
   len[u] floats from x + tap[p] + base[u] to d + p w + off[u]; zeros in
   columns [cols, w) */
static void irmae__cols_copy(float *d, int w, int kc, const float *x, const size_t *tap, const size_t *base,
                             const int *off, const int *len, int runs, int cols, int vec)
{
    int p, u, j;
    for (p = 0; p < kc; p++, d += w) {
        for (u = 0; u < runs; u++) {
            const float *src = x + tap[p] + base[u];
            float *o = d + off[u];
            if (len[u] >= 8) irmae__rows(o, 0, src, 0, 1, len[u], 0, vec);
            else for (j = 0; j < len[u]; j++) o[j] = src[j];
        }
        for (j = cols; j < w; j++) d[j] = 0.0f;
    }
}

#if defined(IRMAE__X86)
/* The same with AVX-512 masked moves: a run of up to 32 floats (w <= 32) is
   one or two load/store pairs whatever its length; masked-off lanes are
   neither read nor written */
IRMAE__TARGET("avx512f")
static void irmae__cols_copy_avx512(float *d, int w, int kc, const float *x, const size_t *tap,
                                    const size_t *base, const int *off, const int *len, int runs, int cols)
{
    __mmask16 m0[IRMAE__NR_MAX], m1[IRMAE__NR_MAX], z0, z1;
    const __m512 zero = _mm512_setzero_ps();
    /* lanes [cols, w) of the 32 (0 < cols <= w <= 32: both shifts < 32) */
    const unsigned tail = cols < w ? ((1u << (w - cols)) - 1u) << cols : 0u;
    int p, u;
    for (u = 0; u < runs; u++) {
        const unsigned m = len[u] >= 32 ? 0xFFFFFFFFu : (1u << len[u]) - 1u;
        m0[u] = (__mmask16)(m & 0xFFFFu);
        m1[u] = (__mmask16)(m >> 16);
    }
    z0 = (__mmask16)(tail & 0xFFFFu);
    z1 = (__mmask16)(tail >> 16);
    for (p = 0; p < kc; p++, d += w) {
        const float *xs = x + tap[p];
        for (u = 0; u < runs; u++) {
            const float *src = xs + base[u];
            float *o = d + off[u];
            _mm512_mask_storeu_ps(o, m0[u], _mm512_maskz_loadu_ps(m0[u], src));
            if (m1[u]) _mm512_mask_storeu_ps(o + 16, m1[u], _mm512_maskz_loadu_ps(m1[u], src + 16));
        }
        if (z0) _mm512_mask_storeu_ps(d, z0, zero);
        if (z1) _mm512_mask_storeu_ps(d + 16, z1, zero);
    }
}
#endif

#define IRMAE__PK_KK 64 /* kernels up to 8 x 8 take the table of irmae__pk_cols */
/* the offset of tap (ki, kj) within a channel of the prepared copy (row
   stride rs): in its phase plane for stride 2 (ki - pad = 2 dy + a,
   kj - pad = 2 dx + b), in the padded plane for stride 1 */
static size_t irmae__pk_tap(const irmae__cgeom *g, const irmae__ph2 *h, int rs, int ki, int kj)
{
    if (h) {
        const int dy = irmae__fdiv2(ki - g->p), a = (ki - g->p) - 2 * dy;
        const int dx = irmae__fdiv2(kj - g->p), b = (kj - g->p) - 2 * dx;
        return (size_t)(2 * a + b) * h->plane + (size_t)(dy - h->d0) * rs + (size_t)(dx - h->d0);
    }
    return (size_t)ki * rs + (size_t)kj;
}

static void irmae__pk_cols(const void *ctx, float *dst, int r0, int rn, int p0, int kc, int w, int vec)
{
    const irmae__cpack *cp = (const irmae__cpack *)ctx;
    const irmae__cgeom *g = cp->g;
    const irmae__ph2 *h = cp->h;
    const int panels = (rn + w - 1) / w, k = g->k, kk = g->k * g->k;
    /* row stride of the prepared planes, floats per channel */
    const int rs = h ? h->wr : g->wx + 2 * g->p;
    const size_t cplane = h ? 4 * h->plane : (size_t)rs * (size_t)(g->hx + 2 * g->p);
    size_t tap[IRMAE__KC];   /* the offset of each tap of the slice */
    size_t kt[IRMAE__PK_KK]; /* the offset of each (ki, kj) within a channel */
    int t, p, c = p0 / kk, e = p0 % kk, ki, kj;
    /* a packer of op(B) runs once a panel: the (ki, kj) offsets are computed
       once, and the slice's taps are sums */
    for (ki = 0; ki < k && kk <= IRMAE__PK_KK; ki++)
        for (kj = 0; kj < k; kj++) kt[ki * k + kj] = irmae__pk_tap(g, h, rs, ki, kj);
    for (p = 0; p < kc; p++) {
        tap[p] = (kk <= IRMAE__PK_KK ? kt[e] : irmae__pk_tap(g, h, rs, e / k, e % k)) + (size_t)c * cplane;
        if (++e == kk) { e = 0; c++; }
    }
    for (t = 0; t < panels; t++) {
        float *d = dst + (size_t)t * w * kc;
        const int j0 = r0 + t * w, cols = rn - t * w < w ? rn - t * w : w;
        size_t base[IRMAE__NR_MAX];
        int off[IRMAE__NR_MAX], len[IRMAE__NR_MAX], runs = 0, i = 0;
        while (i < cols) { /* runs of positions within one output row */
            const int q = j0 + i, n = q / g->P, pos = q % g->P, oy = pos / g->wy, ox = pos % g->wy;
            const int l = g->wy - ox < cols - i ? g->wy - ox : cols - i;
            base[runs] = (size_t)n * (size_t)g->cx * cplane + (size_t)oy * rs + (size_t)ox;
            off[runs] = i; len[runs++] = l;
            i += l;
        }
#if defined(IRMAE__X86)
        if (vec == 2 && w <= 32) {
            irmae__cols_copy_avx512(d, w, kc, cp->x, tap, base, off, len, runs, cols);
            continue;
        }
#endif
        irmae__cols_copy(d, w, kc, cp->x, tap, base, off, len, runs, cols, vec);
    }
}

static irmae__operand irmae__opnd(const float *p, int ld, int trans, irmae__packer fn, const void *ctx)
{
    irmae__operand o;
    o.p = p; o.ld = ld; o.trans = trans; o.fn = fn; o.ctx = ctx;
    return o;
}

/* 1 if irmae__conv_wcols packs im2col(X) implicitly for a chunk of np
   positions: a GEMM that packs, a prepared copy that fits, and either
   AVX-512 (masked moves copy a short run as fast as a long one) or planes
   larger than those of im2col's table form (measured on a Zen 5, batch 32,
   one thread: with AVX-512 the implicit form of every plane size trains
   mnist ~4% and shapes ~2% faster than the explicit one; with AVX2 the
   short runs of small planes made mnist ~10% slower, larger planes alone
   ~5% faster) */
static int irmae__cols_implicit(const irmae__cgeom *g, int np, irmae__ph2 *h)
{
    return irmae__cols_prep(g, h) && (IRMAE__CONV_VEC() == 2 || g->P > IRMAE__TAB_IM2COL_P) && IRMAE__GEMM_PACKS(g->cy, np, g->kc);
}

/* ym [cy, imgs P] = Wc im2col(x) for a chunk of imgs images of the image
   side x, through work's first kc imgs P floats: implicitly (irmae__pk_cols)
   where irmae__cols_implicit says so, else im2col + sgemm */
static int irmae__conv_wcols(float *ym, const float *w, const float *x, int imgs, const irmae__cgeom *g,
                             float *work)
{
    const int np = imgs * g->P;
    irmae__ph2 h;
    if (irmae__cols_implicit(g, np, &h)) {
        irmae__cpack cp;
        irmae__operand A = irmae__opnd(w, g->kc, 0, NULL, NULL), B;
        irmae__cols_prepare(work, x, imgs, g, &h);
        cp.g = g; cp.x = work; cp.y = NULL; cp.h = g->s == 1 ? NULL : &h;
        B = irmae__opnd(NULL, 0, 0, irmae__pk_cols, &cp);
        return irmae__gemm(g->cy, np, g->kc, 1.0f, &A, &B, 0.0f, ym, np);
    }
    irmae__im2col(work, (size_t)np, x, imgs, g);
    irmae_sgemm(0, 0, g->cy, np, g->kc, 1.0f, w, g->kc, work, np, 0.0f, ym, np);
    return IRMAE_OK;
}

/* c_i = op(a) b_i for the images i < batch of a 1 x 1 layer (b_i = b + i sb,
   c_i = c + i sc, both n wide): one GEMM per image. Products too small to
   pack run side by side on the team, an image each, through the same
   unpacked loops irmae_sgemm would use (the same bits; the mnist decoder's
   32 -> 1 output layer ran on one thread). */
static void irmae__gemm_images(int batch, int ta, int m, int n, int k, const float *a, int lda,
                               const float *b, size_t sb, float *c, size_t sc)
{
    int i;
    if (IRMAE__GEMM_PACKS(m, n, k)) {
        for (i = 0; i < batch; i++)
            irmae_sgemm(ta, 0, m, n, k, 1.0f, a, lda, b + (size_t)i * sb, n, 0.0f, c + (size_t)i * sc, n);
        return;
    }
    {
        double t0 = IRMAE__PROF_T0();
        IRMAE__OMP(parallel for schedule(static) if((double)batch * m * n * k >= IRMAE__GEMM_PAR_MIN))
        for (i = 0; i < batch; i++)
            irmae__sgemm_small(ta, 0, m, n, k, 1.0f, a, lda, b + (size_t)i * sb, n, 0.0f, c + (size_t)i * sc, n);
        IRMAE__PROF_ADD(IRMAE_PHASE_GEMM, t0);
    }
}

/* y (n images of c x P) += bias per channel */
static void irmae__conv_add_bias(float *y, int n, int c, size_t P, const float *bias)
{
    double t0_ = IRMAE__PROF_T0();
    {
        int t;
        const int planes = n * c, vec = IRMAE__CONV_VEC();
        IRMAE__OMP(parallel for schedule(static) if ((size_t)planes * P >= IRMAE__CONV_PAR_MIN))
        for (t = 0; t < planes; t++) /* P <= INT_MAX: irmae__conv_check */
            irmae__add_const(y + (size_t)t * P, y + (size_t)t * P, (int)P, bias[t % c], vec);
    }
    IRMAE__PROF_ADD(IRMAE_PHASE_ELEMWISE, t0_);
}

/* db[ch] += sum over images and positions of y (n images of c x P), in
   double, images then positions in order. Each sum is one chain of
   dependent adds, so a thread runs eight channels side by side (eight
   independent chains, an add's latency times the FP pipes: the latency is
   hidden, every sum keeps its order and its bits). */
static void irmae__conv_bias_grad(float *db, const float *y, int n, int c, size_t P)
{
    double t0_ = IRMAE__PROF_T0();
    {
        int g8;
        const int groups = (c + 7) / 8;
        IRMAE__OMP(parallel for schedule(static) if ((size_t)n * (size_t)c * P >= IRMAE__CONV_PAR_MIN))
        for (g8 = 0; g8 < groups; g8++) {
            const int ch = 8 * g8, nch = c - ch < 8 ? c - ch : 8;
            double sums[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
            int i, q8;
            for (i = 0; i < n; i++) {
                const float *r0 = y + ((size_t)i * (size_t)c + (size_t)ch) * P;
                size_t q;
                if (nch == 8) {
                    double s0 = sums[0], s1 = sums[1], s2 = sums[2], s3 = sums[3];
                    double s4 = sums[4], s5 = sums[5], s6 = sums[6], s7 = sums[7];
                    for (q = 0; q < P; q++) {
                        s0 += (double)r0[q]; s1 += (double)r0[P + q];
                        s2 += (double)r0[2 * P + q]; s3 += (double)r0[3 * P + q];
                        s4 += (double)r0[4 * P + q]; s5 += (double)r0[5 * P + q];
                        s6 += (double)r0[6 * P + q]; s7 += (double)r0[7 * P + q];
                    }
                    sums[0] = s0; sums[1] = s1; sums[2] = s2; sums[3] = s3;
                    sums[4] = s4; sums[5] = s5; sums[6] = s6; sums[7] = s7;
                } else {
                    for (q8 = 0; q8 < nch; q8++) {
                        double sq = sums[q8];
                        for (q = 0; q < P; q++) sq += (double)r0[(size_t)q8 * P + q];
                        sums[q8] = sq;
                    }
                }
            }
            for (q8 = 0; q8 < nch; q8++) db[ch + q8] = (float)((double)db[ch + q8] + sums[q8]);
        }
    }
    IRMAE__PROF_ADD(IRMAE_PHASE_ELEMWISE, t0_);
}

/* Common entry checks of the fast functions. */
static int irmae__conv_enter(irmae__cgeom *g, const irmae_conv_desc *d, int transposed,
                             const char *fn, const float *work, int need_work)
{
    int rc = irmae__conv_check(d, transposed, IRMAE_ERR_ARG, fn);
    if (rc) return rc;
    *g = irmae__conv_geom(d);
    if (need_work && !work && irmae__conv_ws(g) > 0)
        return irmae__fail(IRMAE_ERR_ARG, "%s: work is NULL (%lu floats needed)", fn,
                           (unsigned long)irmae__conv_ws(g));
    return IRMAE_OK;
}

IRMAEDEF int irmae_conv2d_forward(float *out, const float *in, const float *w, const float *b,
                                  const irmae_conv_desc *d, float *work)
{
    irmae__cgeom g;
    int rc = irmae__conv_enter(&g, d, 0, "conv2d_forward", work, 1), n0, imgs, cap;
    if (rc) return rc;
    if (!out || !in || !w)
        return irmae__fail(IRMAE_ERR_ARG, "conv2d_forward: %s is NULL", !out ? "out" : !in ? "in" : "w");
    if (irmae__conv_direct(&g)) {
        /* out_n [cy, P] = w [cy, cx] in_n [cx, P] */
        irmae__gemm_images(g.batch, 0, g.cy, g.P, g.cx, w, g.cx, in, g.imgx, out, g.imgy);
        if (b) irmae__conv_add_bias(out, g.batch, g.cy, (size_t)g.P, b);
        return IRMAE_OK;
    }
    cap = irmae__conv_chunk(&g);
    for (n0 = 0; n0 < g.batch; n0 += imgs) {
        const int np = (imgs = g.batch - n0 < cap ? g.batch - n0 : cap) * g.P;
        float *ym = work + (size_t)g.kc * (size_t)np;
        if ((rc = irmae__conv_wcols(ym, w, in + (size_t)n0 * g.imgx, imgs, &g, work))) return rc;
        irmae__conv_scatter(out + (size_t)n0 * g.imgy, ym, (size_t)np, imgs, g.cy, g.P, b);
    }
    return IRMAE_OK;
}

IRMAEDEF int irmae_conv2d_backward(float *din, float *dw, float *db, const float *dout,
                                   const float *in, const float *w,
                                   const irmae_conv_desc *d, float *work)
{
    irmae__cgeom g;
    int rc = irmae__conv_enter(&g, d, 0, "conv2d_backward", work, din || dw), n0, imgs, cap, n;
    if (rc) return rc;
    if (!dout) return irmae__fail(IRMAE_ERR_ARG, "conv2d_backward: dout is NULL");
    if (dw && !in) return irmae__fail(IRMAE_ERR_ARG, "conv2d_backward: in is NULL (needed for dw)");
    if (din && !w) return irmae__fail(IRMAE_ERR_ARG, "conv2d_backward: w is NULL (needed for din)");
    if (db) irmae__conv_bias_grad(db, dout, g.batch, g.cy, (size_t)g.P);
    if (!din && !dw) return IRMAE_OK;
    if (irmae__conv_direct(&g)) {
        /* dw [cy, cx] += dout_n [cy, P] in_n^T, image after image; din_n [cx, P] = w^T dout_n */
        if (dw)
            for (n = 0; n < g.batch; n++)
                irmae_sgemm(0, 1, g.cy, g.cx, g.P, 1.0f, dout + (size_t)n * g.imgy, g.P, in + (size_t)n * g.imgx, g.P,
                            1.0f, dw, g.cx);
        if (din) irmae__gemm_images(g.batch, 1, g.cx, g.P, g.cy, w, g.cx, dout, g.imgy, din, g.imgx);
        return IRMAE_OK;
    }
    cap = irmae__conv_chunk(&g);
    for (n0 = 0; n0 < g.batch; n0 += imgs) {
        const int np = (imgs = g.batch - n0 < cap ? g.batch - n0 : cap) * g.P;
        irmae__cpack cp;
        irmae__operand A, B;
        cp.g = &g; cp.x = work; cp.y = dout + (size_t)n0 * g.imgy; cp.h = NULL;
        if (dw) { /* dw [cy, kc] += dout [cy, np] im2col(in)^T, both packed from the tensors */
            irmae__conv_pad(work, in + (size_t)n0 * g.imgx, imgs, &g);
            A = irmae__opnd(NULL, 0, 0, irmae__pk_ychan, &cp);
            B = irmae__opnd(NULL, 0, 0, irmae__pk_patches, &cp);
            if ((rc = irmae__gemm(g.cy, g.kc, np, 1.0f, &A, &B, 1.0f, dw, g.kc))) return rc;
        }
        if (din) { /* col [kc, np] = w^T dout, then col2im */
            A = irmae__opnd(w, g.kc, 1, NULL, NULL);
            B = irmae__opnd(NULL, 0, 0, irmae__pk_ypos, &cp);
            if ((rc = irmae__gemm(g.kc, np, g.cy, 1.0f, &A, &B, 0.0f, work, np))) return rc;
            irmae__col2im(din + (size_t)n0 * g.imgx, work, (size_t)np, imgs, &g, NULL);
        }
    }
    return IRMAE_OK;
}

IRMAEDEF int irmae_convt2d_forward(float *out, const float *in, const float *w, const float *b,
                                   const irmae_conv_desc *d, float *work)
{
    irmae__cgeom g;
    int rc = irmae__conv_enter(&g, d, 1, "convt2d_forward", work, 1), n0, imgs, cap;
    if (rc) return rc;
    if (!out || !in || !w)
        return irmae__fail(IRMAE_ERR_ARG, "convt2d_forward: %s is NULL", !out ? "out" : !in ? "in" : "w");
    if (irmae__conv_direct(&g)) {
        /* out_n [cx, P] = w^T in_n, w is [cy, cx] */
        irmae__gemm_images(g.batch, 1, g.cx, g.P, g.cy, w, g.cx, in, g.imgy, out, g.imgx);
        if (b) irmae__conv_add_bias(out, g.batch, g.cx, g.planex, b);
        return IRMAE_OK;
    }
    cap = irmae__conv_chunk(&g);
    for (n0 = 0; n0 < g.batch; n0 += imgs) { /* col [kc, np] = w^T in, then col2im */
        const int np = (imgs = g.batch - n0 < cap ? g.batch - n0 : cap) * g.P;
        irmae__cpack cp;
        irmae__operand A = irmae__opnd(w, g.kc, 1, NULL, NULL), B;
        cp.g = &g; cp.x = NULL; cp.y = in + (size_t)n0 * g.imgy; cp.h = NULL;
        B = irmae__opnd(NULL, 0, 0, irmae__pk_ypos, &cp);
        if ((rc = irmae__gemm(g.kc, np, g.cy, 1.0f, &A, &B, 0.0f, work, np))) return rc;
        irmae__col2im(out + (size_t)n0 * g.imgx, work, (size_t)np, imgs, &g, b);
    }
    return IRMAE_OK;
}

IRMAEDEF int irmae_convt2d_backward(float *din, float *dw, float *db, const float *dout,
                                    const float *in, const float *w,
                                    const irmae_conv_desc *d, float *work)
{
    irmae__cgeom g;
    int rc = irmae__conv_enter(&g, d, 1, "convt2d_backward", work, din || dw), n0, imgs, cap, n;
    if (rc) return rc;
    if (!dout) return irmae__fail(IRMAE_ERR_ARG, "convt2d_backward: dout is NULL");
    if (dw && !in) return irmae__fail(IRMAE_ERR_ARG, "convt2d_backward: in is NULL (needed for dw)");
    if (din && !w) return irmae__fail(IRMAE_ERR_ARG, "convt2d_backward: w is NULL (needed for din)");
    if (db) irmae__conv_bias_grad(db, dout, g.batch, g.cx, g.planex);
    if (!din && !dw) return IRMAE_OK;
    if (irmae__conv_direct(&g)) {
        /* dw [cy, cx] += in_n [cy, P] dout_n^T, image after image; din_n [cy, P] = w dout_n */
        if (dw)
            for (n = 0; n < g.batch; n++)
                irmae_sgemm(0, 1, g.cy, g.cx, g.P, 1.0f, in + (size_t)n * g.imgy, g.P, dout + (size_t)n * g.imgx, g.P,
                            1.0f, dw, g.cx);
        if (din) irmae__gemm_images(g.batch, 0, g.cy, g.P, g.cx, w, g.cx, dout, g.imgx, din, g.imgy);
        return IRMAE_OK;
    }
    cap = irmae__conv_chunk(&g);
    for (n0 = 0; n0 < g.batch; n0 += imgs) {
        const int np = (imgs = g.batch - n0 < cap ? g.batch - n0 : cap) * g.P;
        float *ym = work + (size_t)g.kc * (size_t)np;
        if (dw) { /* dw [cy, kc] += in [cy, np] im2col(dout)^T, both packed from the tensors */
            irmae__cpack cp;
            irmae__operand A, B;
            cp.g = &g; cp.x = work; cp.y = in + (size_t)n0 * g.imgy; cp.h = NULL;
            irmae__conv_pad(work, dout + (size_t)n0 * g.imgx, imgs, &g);
            A = irmae__opnd(NULL, 0, 0, irmae__pk_ychan, &cp);
            B = irmae__opnd(NULL, 0, 0, irmae__pk_patches, &cp);
            if ((rc = irmae__gemm(g.cy, g.kc, np, 1.0f, &A, &B, 1.0f, dw, g.kc))) return rc;
        }
        if (din) { /* din = scatter(w im2col(dout)) */
            if ((rc = irmae__conv_wcols(ym, w, dout + (size_t)n0 * g.imgx, imgs, &g, work))) return rc;
            irmae__conv_scatter(din + (size_t)n0 * g.imgy, ym, (size_t)np, imgs, g.cy, g.P, NULL);
        }
    }
    return IRMAE_OK;
}

/* ---- plain references: direct loops, double accumulation ---- */

/* index helpers for the references */
#define IRMAE__IX4(a, b, c, dd, B, C, D) \
    ((((size_t)(a) * (size_t)(B) + (size_t)(b)) * (size_t)(C) + (size_t)(c)) * (size_t)(D) + (size_t)(dd))

IRMAEDEF int irmae_conv2d_forward_ref(float *out, const float *in, const float *w, const float *b,
                                      const irmae_conv_desc *d)
{
    int n, o, c, oy, ox, ki, kj;
    int rc = irmae__conv_check(d, 0, IRMAE_ERR_ARG, "conv2d_forward_ref");
    if (rc) return rc;
    if (!out || !in || !w)
        return irmae__fail(IRMAE_ERR_ARG, "conv2d_forward_ref: %s is NULL", !out ? "out" : !in ? "in" : "w");
    for (n = 0; n < d->batch; n++)
        for (o = 0; o < d->out_c; o++)
            for (oy = 0; oy < d->out_h; oy++)
                for (ox = 0; ox < d->out_w; ox++) {
                    double s = 0.0;
                    for (c = 0; c < d->in_c; c++)
                        for (ki = 0; ki < d->k; ki++) {
                            const int iy = oy * d->stride - d->pad + ki;
                            if (iy < 0 || iy >= d->in_h) continue;
                            for (kj = 0; kj < d->k; kj++) {
                                const int ix = ox * d->stride - d->pad + kj;
                                if (ix < 0 || ix >= d->in_w) continue;
                                s += (double)w[IRMAE__IX4(o, c, ki, kj, d->in_c, d->k, d->k)] *
                                     (double)in[IRMAE__IX4(n, c, iy, ix, d->in_c, d->in_h, d->in_w)];
                            }
                        }
                    if (b) s += (double)b[o];
                    out[IRMAE__IX4(n, o, oy, ox, d->out_c, d->out_h, d->out_w)] = (float)s;
                }
    return IRMAE_OK;
}

/* db[c] += sum of y over images and positions (reference order) */
static void irmae__conv_bias_grad_ref(float *db, const float *y, int n, int c, int h, int w)
{
    int ch, i, q;
    for (ch = 0; ch < c; ch++) {
        double s = 0.0;
        for (i = 0; i < n; i++)
            for (q = 0; q < h * w; q++) s += (double)y[((size_t)i * (size_t)c + (size_t)ch) * (size_t)h * (size_t)w + (size_t)q];
        db[ch] = (float)((double)db[ch] + s);
    }
}

IRMAEDEF int irmae_conv2d_backward_ref(float *din, float *dw, float *db, const float *dout,
                                       const float *in, const float *w, const irmae_conv_desc *d)
{
    int n, o, c, y, x, ki, kj;
    const int st = d ? d->stride : 1, pd = d ? d->pad : 0;
    int rc = irmae__conv_check(d, 0, IRMAE_ERR_ARG, "conv2d_backward_ref");
    if (rc) return rc;
    if (!dout) return irmae__fail(IRMAE_ERR_ARG, "conv2d_backward_ref: dout is NULL");
    if (dw && !in) return irmae__fail(IRMAE_ERR_ARG, "conv2d_backward_ref: in is NULL (needed for dw)");
    if (din && !w) return irmae__fail(IRMAE_ERR_ARG, "conv2d_backward_ref: w is NULL (needed for din)");
    if (db) irmae__conv_bias_grad_ref(db, dout, d->batch, d->out_c, d->out_h, d->out_w);
    if (dw)
        for (o = 0; o < d->out_c; o++)
            for (c = 0; c < d->in_c; c++)
                for (ki = 0; ki < d->k; ki++)
                    for (kj = 0; kj < d->k; kj++) {
                        double s = 0.0;
                        const size_t wi = IRMAE__IX4(o, c, ki, kj, d->in_c, d->k, d->k);
                        for (n = 0; n < d->batch; n++)
                            for (y = 0; y < d->out_h; y++) {
                                const int iy = y * st - pd + ki;
                                if (iy < 0 || iy >= d->in_h) continue;
                                for (x = 0; x < d->out_w; x++) {
                                    const int ix = x * st - pd + kj;
                                    if (ix < 0 || ix >= d->in_w) continue;
                                    s += (double)dout[IRMAE__IX4(n, o, y, x, d->out_c, d->out_h, d->out_w)] *
                                         (double)in[IRMAE__IX4(n, c, iy, ix, d->in_c, d->in_h, d->in_w)];
                                }
                            }
                        dw[wi] = (float)((double)dw[wi] + s);
                    }
    if (din)
        for (n = 0; n < d->batch; n++)
            for (c = 0; c < d->in_c; c++)
                for (y = 0; y < d->in_h; y++)
                    for (x = 0; x < d->in_w; x++) {
                        double s = 0.0;
                        for (o = 0; o < d->out_c; o++)
                            for (ki = 0; ki < d->k; ki++) {
                                const int ty = y + pd - ki;
                                if (ty < 0 || ty % st || ty / st >= d->out_h) continue;
                                for (kj = 0; kj < d->k; kj++) {
                                    const int tx = x + pd - kj;
                                    if (tx < 0 || tx % st || tx / st >= d->out_w) continue;
                                    s += (double)dout[IRMAE__IX4(n, o, ty / st, tx / st, d->out_c, d->out_h, d->out_w)] *
                                         (double)w[IRMAE__IX4(o, c, ki, kj, d->in_c, d->k, d->k)];
                                }
                            }
                        din[IRMAE__IX4(n, c, y, x, d->in_c, d->in_h, d->in_w)] = (float)s;
                    }
    return IRMAE_OK;
}

IRMAEDEF int irmae_convt2d_forward_ref(float *out, const float *in, const float *w, const float *b,
                                       const irmae_conv_desc *d)
{
    int n, o, c, y, x, ki, kj;
    int rc = irmae__conv_check(d, 1, IRMAE_ERR_ARG, "convt2d_forward_ref");
    if (rc) return rc;
    if (!out || !in || !w)
        return irmae__fail(IRMAE_ERR_ARG, "convt2d_forward_ref: %s is NULL", !out ? "out" : !in ? "in" : "w");
    /* out[n,o,y,x] = b[o] + sum in[n,c,iy,ix] w[c,o,ki,kj] over y = iy s - p + ki */
    for (n = 0; n < d->batch; n++)
        for (o = 0; o < d->out_c; o++)
            for (y = 0; y < d->out_h; y++)
                for (x = 0; x < d->out_w; x++) {
                    double s = 0.0;
                    for (c = 0; c < d->in_c; c++)
                        for (ki = 0; ki < d->k; ki++) {
                            const int ty = y + d->pad - ki;
                            if (ty < 0 || ty % d->stride || ty / d->stride >= d->in_h) continue;
                            for (kj = 0; kj < d->k; kj++) {
                                const int tx = x + d->pad - kj;
                                if (tx < 0 || tx % d->stride || tx / d->stride >= d->in_w) continue;
                                s += (double)in[IRMAE__IX4(n, c, ty / d->stride, tx / d->stride, d->in_c, d->in_h, d->in_w)] *
                                     (double)w[IRMAE__IX4(c, o, ki, kj, d->out_c, d->k, d->k)];
                            }
                        }
                    if (b) s += (double)b[o];
                    out[IRMAE__IX4(n, o, y, x, d->out_c, d->out_h, d->out_w)] = (float)s;
                }
    return IRMAE_OK;
}

IRMAEDEF int irmae_convt2d_backward_ref(float *din, float *dw, float *db, const float *dout,
                                        const float *in, const float *w, const irmae_conv_desc *d)
{
    int n, o, c, y, x, ki, kj;
    const int st = d ? d->stride : 1, pd = d ? d->pad : 0;
    int rc = irmae__conv_check(d, 1, IRMAE_ERR_ARG, "convt2d_backward_ref");
    if (rc) return rc;
    if (!dout) return irmae__fail(IRMAE_ERR_ARG, "convt2d_backward_ref: dout is NULL");
    if (dw && !in) return irmae__fail(IRMAE_ERR_ARG, "convt2d_backward_ref: in is NULL (needed for dw)");
    if (din && !w) return irmae__fail(IRMAE_ERR_ARG, "convt2d_backward_ref: w is NULL (needed for din)");
    if (db) irmae__conv_bias_grad_ref(db, dout, d->batch, d->out_c, d->out_h, d->out_w);
    /* dw[c,o,ki,kj] += sum in[n,c,y,x] dout[n,o,y s - p + ki, x s - p + kj] */
    if (dw)
        for (c = 0; c < d->in_c; c++)
            for (o = 0; o < d->out_c; o++)
                for (ki = 0; ki < d->k; ki++)
                    for (kj = 0; kj < d->k; kj++) {
                        double s = 0.0;
                        const size_t wi = IRMAE__IX4(c, o, ki, kj, d->out_c, d->k, d->k);
                        for (n = 0; n < d->batch; n++)
                            for (y = 0; y < d->in_h; y++) {
                                const int oy = y * st - pd + ki;
                                if (oy < 0 || oy >= d->out_h) continue;
                                for (x = 0; x < d->in_w; x++) {
                                    const int ox = x * st - pd + kj;
                                    if (ox < 0 || ox >= d->out_w) continue;
                                    s += (double)in[IRMAE__IX4(n, c, y, x, d->in_c, d->in_h, d->in_w)] *
                                         (double)dout[IRMAE__IX4(n, o, oy, ox, d->out_c, d->out_h, d->out_w)];
                                }
                            }
                        dw[wi] = (float)((double)dw[wi] + s);
                    }
    /* din[n,c,y,x] = sum dout[n,o,y s - p + ki, x s - p + kj] w[c,o,ki,kj] */
    if (din)
        for (n = 0; n < d->batch; n++)
            for (c = 0; c < d->in_c; c++)
                for (y = 0; y < d->in_h; y++)
                    for (x = 0; x < d->in_w; x++) {
                        double s = 0.0;
                        for (o = 0; o < d->out_c; o++)
                            for (ki = 0; ki < d->k; ki++) {
                                const int oy = y * st - pd + ki;
                                if (oy < 0 || oy >= d->out_h) continue;
                                for (kj = 0; kj < d->k; kj++) {
                                    const int ox = x * st - pd + kj;
                                    if (ox < 0 || ox >= d->out_w) continue;
                                    s += (double)dout[IRMAE__IX4(n, o, oy, ox, d->out_c, d->out_h, d->out_w)] *
                                         (double)w[IRMAE__IX4(c, o, ki, kj, d->out_c, d->k, d->k)];
                                }
                            }
                        din[IRMAE__IX4(n, c, y, x, d->in_c, d->in_h, d->in_w)] = (float)s;
                    }
    return IRMAE_OK;
}

#undef IRMAE__IX4

/* ---------------------------------------------------------------------- */
/* Layers                                                         @layers */
/* ---------------------------------------------------------------------- */

/* Elementwise loops run in parallel only when there is enough work to pay
   for waking the threads. Each thread owns a contiguous range: the results do
   not depend on the thread count. */
#define IRMAE__PAR_MIN 32768
/* block size of the fixed-order gradient-norm sum */
#define IRMAE__NORM_BLOCK 16384

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

/* ReLU on AVX2 when the dispatcher allows it; max(x, 0) returns 0 for NaN
   like the scalar comparison below, so both paths give the same bits. */
#if defined(IRMAE__X86)
IRMAE__TARGET("avx2")
static void irmae__relu_fwd_avx2(float *out, const float *in, size_t n)
{
    size_t i = 0;
    __m256 z = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_max_ps(_mm256_loadu_ps(in + i), z));
    for (; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}
IRMAE__TARGET("avx2")
static void irmae__relu_bwd_avx2(float *din, const float *dout, const float *out, size_t n)
{
    size_t i = 0;
    __m256 z = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        __m256 mask = _mm256_cmp_ps(_mm256_loadu_ps(out + i), z, _CMP_GT_OQ);
        _mm256_storeu_ps(din + i, _mm256_and_ps(mask, _mm256_loadu_ps(dout + i)));
    }
    for (; i < n; i++) din[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}
/* AVX-512: 16 at a time, the tail with masks (max and the > 0 mask as above) */
IRMAE__TARGET("avx512f")
static void irmae__relu_fwd_avx512(float *out, const float *in, size_t n)
{
    size_t i = 0;
    const __m512 z = _mm512_setzero_ps();
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, _mm512_maskz_max_ps((__mmask16)0xFFFF, _mm512_loadu_ps(in + i), z));
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(out + i, k, _mm512_maskz_max_ps((__mmask16)0xFFFF, _mm512_maskz_loadu_ps(k, in + i), z));
    }
}
IRMAE__TARGET("avx512f")
static void irmae__relu_bwd_avx512(float *din, const float *dout, const float *out, size_t n)
{
    size_t i = 0;
    const __m512 z = _mm512_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        __mmask16 pos = _mm512_cmp_ps_mask(_mm512_loadu_ps(out + i), z, _CMP_GT_OQ);
        _mm512_storeu_ps(din + i, _mm512_maskz_mov_ps(pos, _mm512_loadu_ps(dout + i)));
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1u);
        __mmask16 pos = _mm512_mask_cmp_ps_mask(k, _mm512_maskz_loadu_ps(k, out + i), z, _CMP_GT_OQ);
        _mm512_mask_storeu_ps(din + i, k, _mm512_maskz_mov_ps(pos, _mm512_maskz_loadu_ps(k, dout + i)));
    }
}
#endif

/* Elementwise work is cut into fixed chunks so that each thread owns whole
   chunks and the vector/scalar split of every element is thread-independent. */
#define IRMAE__CHUNK 4096
#define IRMAE__CHUNKED(count, call)                                                    \
    do {                                                                               \
        size_t n_ = (count);                                                           \
        ptrdiff_t c_, nc_ = (ptrdiff_t)((n_ + IRMAE__CHUNK - 1) / IRMAE__CHUNK);       \
        IRMAE__OMP(parallel for schedule(static) if(n_ > IRMAE__PAR_MIN))              \
        for (c_ = 0; c_ < nc_; c_++) {                                                 \
            size_t o = (size_t)c_ * IRMAE__CHUNK;                                      \
            size_t len = n_ - o < IRMAE__CHUNK ? n_ - o : IRMAE__CHUNK;                \
            call;                                                                      \
        }                                                                              \
    } while (0)

static void irmae__relu_fwd_chunk(float *out, const float *in, size_t n)
{
    size_t i;
#if defined(IRMAE__X86)
    if (irmae_simd_level() == IRMAE_SIMD_AVX512) { irmae__relu_fwd_avx512(out, in, n); return; }
    if (irmae_simd_level() == IRMAE_SIMD_AVX2) { irmae__relu_fwd_avx2(out, in, n); return; }
#endif
    for (i = 0; i < n; i++) out[i] = in[i] > 0.0f ? in[i] : 0.0f;
}
static void irmae__relu_bwd_chunk(float *din, const float *dout, const float *out, size_t n)
{
    size_t i;
#if defined(IRMAE__X86)
    if (irmae_simd_level() == IRMAE_SIMD_AVX512) { irmae__relu_bwd_avx512(din, dout, out, n); return; }
    if (irmae_simd_level() == IRMAE_SIMD_AVX2) { irmae__relu_bwd_avx2(din, dout, out, n); return; }
#endif
    for (i = 0; i < n; i++) din[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

IRMAEDEF void irmae_relu_forward(float *out, const float *in, size_t count)
{
    double t0 = IRMAE__PROF_T0();
    IRMAE__CHUNKED(count, irmae__relu_fwd_chunk(out + o, in + o, len));
    IRMAE__PROF_ADD(IRMAE_PHASE_ELEMWISE, t0);
}
IRMAEDEF void irmae_relu_backward(float *din, const float *dout, const float *out, size_t count)
{
    double t0 = IRMAE__PROF_T0();
    IRMAE__CHUNKED(count, irmae__relu_bwd_chunk(din + o, dout + o, out + o, len));
    IRMAE__PROF_ADD(IRMAE_PHASE_ELEMWISE, t0);
}
IRMAEDEF void irmae_tanh_forward(float *out, const float *in, size_t count)
{
    double t0 = IRMAE__PROF_T0();
    IRMAE__ELEMENTWISE(count, out[i] = tanhf(in[i]));
    IRMAE__PROF_ADD(IRMAE_PHASE_ELEMWISE, t0);
}
IRMAEDEF void irmae_tanh_backward(float *din, const float *dout, const float *out, size_t count)
{
    double t0 = IRMAE__PROF_T0();
    IRMAE__ELEMENTWISE(count, din[i] = dout[i] * (1.0f - out[i] * out[i]));
    IRMAE__PROF_ADD(IRMAE_PHASE_ELEMWISE, t0);
}
IRMAEDEF void irmae_sigmoid_forward(float *out, const float *in, size_t count)
{
    double t0 = IRMAE__PROF_T0();
    /* written so that exp never overflows */
    IRMAE__ELEMENTWISE(count, {
        float v = in[i];
        if (v >= 0.0f) out[i] = 1.0f / (1.0f + expf(-v));
        else { float e = expf(v); out[i] = e / (1.0f + e); }
    });
    IRMAE__PROF_ADD(IRMAE_PHASE_ELEMWISE, t0);
}
IRMAEDEF void irmae_sigmoid_backward(float *din, const float *dout, const float *out, size_t count)
{
    double t0 = IRMAE__PROF_T0();
    IRMAE__ELEMENTWISE(count, din[i] = dout[i] * out[i] * (1.0f - out[i]));
    IRMAE__PROF_ADD(IRMAE_PHASE_ELEMWISE, t0);
}

/* ---------------------------------------------------------------------- */
/* Optimiser: Adam, gradient clipping, softmax cross-entropy   @optimiser */
/* ---------------------------------------------------------------------- */

/* One Adam update of n parameters. The AVX2 version does the same float
   operations in the same order (no fused multiply-add), so both paths give
   the same bits. */
typedef struct irmae__adam_k { float lr, b1, b2, s1, s2, eps, inv_bc2; } irmae__adam_k;

#if defined(IRMAE__X86)
IRMAE__TARGET("avx2")
static void irmae__adam_avx2(float *p, const float *g, float *mm, float *vv, size_t n, const irmae__adam_k *k)
{
    size_t i = 0;
    __m256 b1 = _mm256_set1_ps(k->b1), b2 = _mm256_set1_ps(k->b2), s1 = _mm256_set1_ps(k->s1);
    __m256 s2 = _mm256_set1_ps(k->s2), lr = _mm256_set1_ps(k->lr), eps = _mm256_set1_ps(k->eps);
    __m256 ib = _mm256_set1_ps(k->inv_bc2);
    for (; i + 8 <= n; i += 8) {
        __m256 gi = _mm256_loadu_ps(g + i);
        __m256 mi = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(mm + i)), _mm256_mul_ps(s1, gi));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(vv + i)), _mm256_mul_ps(_mm256_mul_ps(s2, gi), gi));
        __m256 den = _mm256_add_ps(_mm256_sqrt_ps(_mm256_mul_ps(vi, ib)), eps);
        _mm256_storeu_ps(mm + i, mi);
        _mm256_storeu_ps(vv + i, vi);
        _mm256_storeu_ps(p + i, _mm256_sub_ps(_mm256_loadu_ps(p + i), _mm256_div_ps(_mm256_mul_ps(lr, mi), den)));
    }
    for (; i < n; i++) {
        float gi = g[i], mi = k->b1 * mm[i] + k->s1 * gi, vi = k->b2 * vv[i] + k->s2 * gi * gi;
        mm[i] = mi; vv[i] = vi;
        p[i] -= k->lr * mi / (sqrtf(vi * k->inv_bc2) + k->eps);
    }
}
/* AVX-512: the same operations in the same order, the tail with masks. No
   FMA: the scalar and AVX2 forms round the products separately. An AVX-512
   target allows FMA, and in GNU modes (-ffp-contract=fast, gcc's default
   outside -std=c99/c11) gcc would fuse mul + add intrinsics into one;
   the multiplies with an explicit rounding mode (round to nearest, the
   default) cannot be fused. (The maskz forms of the intrinsics keep gcc's
   -Wmaybe-uninitialized quiet about _mm512_undefined_ps in C++.) */
#define IRMAE__MUL512(a, b) _mm512_maskz_mul_round_ps((__mmask16)0xFFFF, (a), (b), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
IRMAE__TARGET("avx512f")
static void irmae__adam_avx512(float *p, const float *g, float *mm, float *vv, size_t n, const irmae__adam_k *k)
{
    size_t i;
    const __m512 b1 = _mm512_set1_ps(k->b1), b2 = _mm512_set1_ps(k->b2), s1 = _mm512_set1_ps(k->s1);
    const __m512 s2 = _mm512_set1_ps(k->s2), lr = _mm512_set1_ps(k->lr), eps = _mm512_set1_ps(k->eps);
    const __m512 ib = _mm512_set1_ps(k->inv_bc2);
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 gi = _mm512_loadu_ps(g + i);
        __m512 mi = _mm512_add_ps(IRMAE__MUL512(b1, _mm512_loadu_ps(mm + i)), IRMAE__MUL512(s1, gi));
        __m512 vi = _mm512_add_ps(IRMAE__MUL512(b2, _mm512_loadu_ps(vv + i)), IRMAE__MUL512(IRMAE__MUL512(s2, gi), gi));
        __m512 den = _mm512_add_ps(_mm512_maskz_sqrt_ps((__mmask16)0xFFFF, IRMAE__MUL512(vi, ib)), eps);
        _mm512_storeu_ps(mm + i, mi);
        _mm512_storeu_ps(vv + i, vi);
        _mm512_storeu_ps(p + i, _mm512_sub_ps(_mm512_loadu_ps(p + i), _mm512_div_ps(IRMAE__MUL512(lr, mi), den)));
    }
    if (i < n) {
        __mmask16 km = (__mmask16)((1u << (n - i)) - 1u);
        __m512 gi = _mm512_maskz_loadu_ps(km, g + i);
        __m512 mi = _mm512_add_ps(IRMAE__MUL512(b1, _mm512_maskz_loadu_ps(km, mm + i)), IRMAE__MUL512(s1, gi));
        __m512 vi = _mm512_add_ps(IRMAE__MUL512(b2, _mm512_maskz_loadu_ps(km, vv + i)),
                                  IRMAE__MUL512(IRMAE__MUL512(s2, gi), gi));
        __m512 den = _mm512_add_ps(_mm512_maskz_sqrt_ps((__mmask16)0xFFFF, IRMAE__MUL512(vi, ib)), eps);
        _mm512_mask_storeu_ps(mm + i, km, mi);
        _mm512_mask_storeu_ps(vv + i, km, vi);
        _mm512_mask_storeu_ps(p + i, km, _mm512_sub_ps(_mm512_maskz_loadu_ps(km, p + i),
                                                       _mm512_div_ps(IRMAE__MUL512(lr, mi), den)));
    }
}
#endif

static void irmae__adam_chunk(float *p, const float *g, float *mm, float *vv, size_t n, const irmae__adam_k *k)
{
    size_t i;
#if defined(IRMAE__X86)
    if (irmae_simd_level() == IRMAE_SIMD_AVX512) { irmae__adam_avx512(p, g, mm, vv, n, k); return; }
    if (irmae_simd_level() == IRMAE_SIMD_AVX2) { irmae__adam_avx2(p, g, mm, vv, n, k); return; }
#endif
    for (i = 0; i < n; i++) {
        float gi = g[i], mi = k->b1 * mm[i] + k->s1 * gi, vi = k->b2 * vv[i] + k->s2 * gi * gi;
        mm[i] = mi; vv[i] = vi;
        p[i] -= k->lr * mi / (sqrtf(vi * k->inv_bc2) + k->eps);
    }
}

IRMAEDEF int irmae_adam_update(float *params, float *m, float *v, const float *grads, size_t count,
                              long long step, const irmae_adam *hp)
{
    double bc1, bc2, t0;
    irmae__adam_k k;
    if (!params || !m || !v || !grads || !hp) return irmae__fail(IRMAE_ERR_ARG, "adam_update: NULL pointer");
    if (step < 1) return irmae__fail(IRMAE_ERR_ARG, "adam_update: step %lld (the first is 1)", step);
    if (!(hp->lr >= 0.0f) || !(hp->beta1 >= 0.0f && hp->beta1 < 1.0f) || !(hp->beta2 >= 0.0f && hp->beta2 < 1.0f) ||
        !(hp->eps > 0.0f))
        return irmae__fail(IRMAE_ERR_ARG, "adam_update: lr %g betas %g %g eps %g", hp->lr, hp->beta1, hp->beta2, hp->eps);
    bc1 = 1.0 - pow((double)hp->beta1, (double)step);
    bc2 = 1.0 - pow((double)hp->beta2, (double)step);
    /* p -= lr * (m / bc1) / (sqrt(v / bc2) + eps) */
    k.lr = (float)(hp->lr / bc1);
    k.b1 = hp->beta1; k.b2 = hp->beta2; k.s1 = 1.0f - hp->beta1; k.s2 = 1.0f - hp->beta2; k.eps = hp->eps;
    k.inv_bc2 = (float)(1.0 / bc2);
    t0 = IRMAE__PROF_T0();
    IRMAE__CHUNKED(count, irmae__adam_chunk(params + o, grads + o, m + o, v + o, len, &k));
    IRMAE__PROF_ADD(IRMAE_PHASE_ADAM, t0);
    return IRMAE_OK;
}

/* The norm in a fixed order: blocks of IRMAE__NORM_BLOCK squares summed in
   double (in parallel), then the blocks' sums added in sequence, so the
   result does not depend on the number of threads. Blocks are taken in
   groups whose sums fit a stack array, so nothing is allocated. */
#define IRMAE__NORM_GROUP 256
IRMAEDEF double irmae_grad_clip(float *grads, size_t count, float max_norm)
{
    size_t nb = (count + IRMAE__NORM_BLOCK - 1) / IRMAE__NORM_BLOCK, g0;
    double part[IRMAE__NORM_GROUP], total = 0.0, norm;
    if (!grads) return count ? (double)NAN : 0.0;
    for (g0 = 0; g0 < nb; g0 += IRMAE__NORM_GROUP) {
        ptrdiff_t bq, bi, ng = (ptrdiff_t)(nb - g0 < IRMAE__NORM_GROUP ? nb - g0 : IRMAE__NORM_GROUP);
        /* eight blocks side by side per thread: eight independent chains of
           adds (an add's latency times the FP pipes), each block's sum in its
           own order (the same bits as one block at a time) */
        IRMAE__OMP(parallel for schedule(static) if(ng > 8))
        for (bq = 0; bq < (ng + 7) / 8; bq++) {
            const size_t j0 = (g0 + 8 * (size_t)bq) * IRMAE__NORM_BLOCK;
            const float *b0 = grads + j0;
            size_t j, len[8];
            double sums[8];
            int q;
            for (q = 0; q < 8; q++) {
                size_t lo = j0 + (size_t)q * IRMAE__NORM_BLOCK, hi = lo + IRMAE__NORM_BLOCK;
                sums[q] = 0.0;
                if (8 * bq + q >= ng || lo >= count) { len[q] = 0; continue; }
                len[q] = (hi > count ? count : hi) - lo;
            }
            if (len[7] == IRMAE__NORM_BLOCK) {
                const size_t B_ = IRMAE__NORM_BLOCK;
                double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0, s5 = 0.0, s6 = 0.0, s7 = 0.0;
                for (j = 0; j < B_; j++) {
                    s0 += (double)b0[j] * b0[j]; s1 += (double)b0[B_ + j] * b0[B_ + j];
                    s2 += (double)b0[2 * B_ + j] * b0[2 * B_ + j]; s3 += (double)b0[3 * B_ + j] * b0[3 * B_ + j];
                    s4 += (double)b0[4 * B_ + j] * b0[4 * B_ + j]; s5 += (double)b0[5 * B_ + j] * b0[5 * B_ + j];
                    s6 += (double)b0[6 * B_ + j] * b0[6 * B_ + j]; s7 += (double)b0[7 * B_ + j] * b0[7 * B_ + j];
                }
                sums[0] = s0; sums[1] = s1; sums[2] = s2; sums[3] = s3;
                sums[4] = s4; sums[5] = s5; sums[6] = s6; sums[7] = s7;
            } else {
                for (q = 0; q < 8; q++) {
                    const float *bb = b0 + (size_t)q * IRMAE__NORM_BLOCK;
                    double sq = 0.0;
                    for (j = 0; j < len[q]; j++) sq += (double)bb[j] * bb[j];
                    sums[q] = sq;
                }
            }
            for (q = 0; q < 8 && 8 * bq + q < ng; q++) part[8 * bq + q] = sums[q];
        }
        for (bi = 0; bi < ng; bi++) total += part[bi];
    }
    norm = sqrt(total);
    if (isfinite(total) && max_norm > 0.0f && norm > max_norm) {
        float scale = (float)(max_norm / norm);
        ptrdiff_t j, np = (ptrdiff_t)count;
        IRMAE__OMP(parallel for schedule(static) if(np > IRMAE__PAR_MIN))
        for (j = 0; j < np; j++) grads[j] *= scale;
    }
    return norm;
}

IRMAEDEF int irmae_softmax_xent(float *dlogits, double *loss, const float *logits, const int *labels,
                                int batch, int classes)
{
    int i, j;
    double sum_loss = 0.0;
    if (loss) *loss = 0.0;
    if (!logits || !labels) return irmae__fail(IRMAE_ERR_ARG, "softmax_xent: NULL logits or labels");
    if (batch <= 0 || classes <= 0)
        return irmae__fail(IRMAE_ERR_ARG, "softmax_xent: batch %d, %d classes", batch, classes);
    for (i = 0; i < batch; i++)
        if (labels[i] < 0 || labels[i] >= classes)
            return irmae__fail(IRMAE_ERR_ARG, "softmax_xent: label %d of row %d not in 0..%d", labels[i], i, classes - 1);
    for (i = 0; i < batch; i++) {
        const float *z = logits + (size_t)i * classes;
        double mx = z[0], sum = 0.0;
        for (j = 1; j < classes; j++) if (z[j] > mx) mx = z[j];
        for (j = 0; j < classes; j++) sum += exp((double)z[j] - mx);
        if (dlogits) {
            float *d = dlogits + (size_t)i * classes;
            for (j = 0; j < classes; j++) d[j] = (float)(exp((double)z[j] - mx) / sum / batch);
            d[labels[i]] -= 1.0f / (float)batch;
        }
        sum_loss -= (double)z[labels[i]] - mx - log(sum);
    }
    if (loss) *loss = sum_loss / batch;
    return isfinite(sum_loss) ? IRMAE_OK : irmae__fail(IRMAE_ERR_NUMERIC, "softmax_xent: loss is %g", sum_loss);
}

/* ---------------------------------------------------------------------- */
/* Networks and models                                             @model */
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
IRMAEDEF irmae_layer_spec irmae_layer_upsample(int scale)
{ return irmae__spec(IRMAE_LAYER_UPSAMPLE, 0, 0, scale, 0, 0); }

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

/* ---- Layer types: one block each, one row each in irmae__layer_types ---- @layer-types
   Everything the model does with a layer goes through the row of its type:
   the output shape and parameter sizes (resolve), PyTorch's fan-in for the
   initialisation, the convolution scratch, forward, backward, the weight's
   PyTorch shape and the export's description. A type that the table does
   not have is refused by name when the model is planned, so no layer ever
   reaches a forward or backward pass it does not own.
   Checkpoints store the nine fields of every spec as they are, whatever the
   type, so a new type that fits them needs no new file format.
   To add a type: an IRMAE_LAYER_* value and a spec helper in the
   declarations, one block of functions here and one row in the table. */

typedef struct irmae__layer_type {
    int type;                 /* IRMAE_LAYER_* */
    const char *name;         /* for messages */
    /* fills L->out_c/out_h/out_w and L->n_w/n_b from L->spec (out already
       resolved from IRMAE_CODE) and L->in_c/in_h/in_w; errors name the layer */
    int (*resolve)(irmae_layer *L, const char *where, int index);
    /* fan-in of PyTorch's default initialisation; NULL: no parameters */
    double (*fan_in)(const irmae_layer *L);
    /* *floats = scratch for a batch of `batch`; non-zero if the layer is
       invalid at that batch (a size overflows); NULL: never any scratch */
    int (*workspace)(const irmae_layer *L, int batch, size_t *floats);
    /* out = L(in) for B images */
    int (*forward)(irmae_model *m, const irmae_layer *L, float *out, const float *in, int B);
    /* din (NULL: not needed) from dout, with the forward's input and output;
       parameter gradients ACCUMULATE into m->grads */
    int (*backward)(irmae_model *m, const irmae_layer *L, float *din, const float *dout,
                    const float *in, const float *out, int B);
    /* PyTorch's shape of the weight, returns its rank; NULL: no weight */
    int (*weight_shape)(const irmae_layer *L, size_t *shape);
    /* the export's type name; appends the type's own JSON fields
       (",\"k\":4,...") to extra */
    const char *(*describe)(const irmae_layer *L, char *extra, size_t cap);
} irmae__layer_type;

static size_t irmae__layer_out_size(const irmae_layer *L)
{ return (size_t)L->out_c * L->out_h * L->out_w; }
static size_t irmae__layer_in_size(const irmae_layer *L)
{ return (size_t)L->in_c * L->in_h * L->in_w; }
static size_t irmae__image_size(const irmae_model *m)
{ return (size_t)m->cfg.in_c * m->cfg.in_h * m->cfg.in_w; }
/* the row of a layer's type in the table below */
static const irmae__layer_type *irmae__lt(const irmae_layer *L);
/* the weight and bias of L in m's parameters, and their gradients */
static const float *irmae__lw(const irmae_model *m, const irmae_layer *L) { return m->params + L->w_off; }
static const float *irmae__lb(const irmae_model *m, const irmae_layer *L) { return L->n_b ? m->params + L->b_off : NULL; }
static float *irmae__ldw(irmae_model *m, const irmae_layer *L) { return m->grads + L->w_off; }
static float *irmae__ldb(irmae_model *m, const irmae_layer *L) { return L->n_b ? m->grads + L->b_off : NULL; }
static const char *irmae__bias_json(const irmae_layer *L) { return L->n_b ? "true" : "false"; }

/* ---- conv and convT (IRMAE_LAYER_CONV, IRMAE_LAYER_CONVT) ---- */

/* The convolution descriptor of a conv/convT layer at batch size batch;
   non-zero (the desc function's error) if it is invalid. */
static int irmae__conv_desc_of(irmae_conv_desc *d, const irmae_layer *L, int batch)
{
    const irmae_layer_spec *s = &L->spec;
    return s->type == IRMAE_LAYER_CONV
        ? irmae_conv2d_desc(d, batch, L->in_c, L->in_h, L->in_w, L->out_c, s->k, s->stride, s->pad)
        : irmae_convt2d_desc(d, batch, L->in_c, L->in_h, L->in_w, L->out_c, s->k, s->stride, s->pad);
}
static int irmae__conv_resolve(irmae_layer *L, const char *where, int index)
{
    const irmae_layer_spec *s = &L->spec;
    irmae_conv_desc d;
    int rc;
    L->out_c = s->out;
    if ((rc = irmae__conv_desc_of(&d, L, 1)))
        return irmae__fail(rc, "%s layer %d (%s %d->%d k%d s%d p%d on %dx%d) is invalid", where, index,
                           irmae__lt(L)->name, L->in_c, s->out, s->k, s->stride,
                           s->pad, L->in_h, L->in_w);
    L->out_h = d.out_h; L->out_w = d.out_w;
    L->n_w = irmae__count(L->in_c, L->out_c, s->k, s->k);
    L->n_b = s->bias ? (size_t)L->out_c : 0;
    return IRMAE_OK;
}
/* PyTorch: fan-in of a conv is in * k * k; of a convT, the weight's dim 1 (out) * k * k */
static double irmae__conv_fan_in(const irmae_layer *L)
{
    return (double)(L->spec.type == IRMAE_LAYER_CONV ? L->in_c : L->out_c) * L->spec.k * L->spec.k;
}
static int irmae__conv_workspace_of(const irmae_layer *L, int batch, size_t *floats)
{
    irmae_conv_desc d;
    int rc = irmae__conv_desc_of(&d, L, batch);
    *floats = rc ? 0 : irmae_conv_workspace(&d);
    return rc;
}
static int irmae__conv_forward(irmae_model *m, const irmae_layer *L, float *out, const float *in, int B)
{
    irmae_conv_desc d;
    int rc = irmae__conv_desc_of(&d, L, B);
    if (rc) return rc;
    return L->spec.type == IRMAE_LAYER_CONV ? irmae_conv2d_forward(out, in, irmae__lw(m, L), irmae__lb(m, L), &d, m->work)
                                            : irmae_convt2d_forward(out, in, irmae__lw(m, L), irmae__lb(m, L), &d, m->work);
}
static int irmae__conv_backward(irmae_model *m, const irmae_layer *L, float *din, const float *dout,
                                const float *in, const float *out, int B)
{
    irmae_conv_desc d;
    int rc = irmae__conv_desc_of(&d, L, B);
    (void)out;
    if (rc) return rc;
    return L->spec.type == IRMAE_LAYER_CONV
        ? irmae_conv2d_backward(din, irmae__ldw(m, L), irmae__ldb(m, L), dout, in, irmae__lw(m, L), &d, m->work)
        : irmae_convt2d_backward(din, irmae__ldw(m, L), irmae__ldb(m, L), dout, in, irmae__lw(m, L), &d, m->work);
}
/* conv2d [out, in, k, k], convT2d [in, out, k, k] */
static int irmae__conv_weight_shape(const irmae_layer *L, size_t *shape)
{
    int conv = L->spec.type == IRMAE_LAYER_CONV;
    shape[0] = (size_t)(conv ? L->out_c : L->in_c);
    shape[1] = (size_t)(conv ? L->in_c : L->out_c);
    shape[2] = shape[3] = (size_t)L->spec.k;
    return 4;
}
static const char *irmae__conv_describe(const irmae_layer *L, char *extra, size_t cap)
{
    snprintf(extra, cap, ",\"k\":%d,\"stride\":%d,\"pad\":%d,\"bias\":%s", L->spec.k, L->spec.stride,
             L->spec.pad, irmae__bias_json(L));
    return irmae__lt(L)->name; /* "conv" or "convT" */
}

/* ---- linear (IRMAE_LAYER_LINEAR): on the flattened input ---- */

static int irmae__linear_resolve(irmae_layer *L, const char *where, int index)
{
    if (L->spec.out <= 0)
        return irmae__fail(IRMAE_ERR_ARG, "%s layer %d: linear with %d outputs", where, index, L->spec.out);
    L->out_c = L->spec.out; L->out_h = 1; L->out_w = 1;
    L->n_w = irmae__count((int)irmae__layer_in_size(L), L->out_c, 1, 1);
    L->n_b = L->spec.bias ? (size_t)L->out_c : 0;
    return IRMAE_OK;
}
static double irmae__linear_fan_in(const irmae_layer *L) { return (double)irmae__layer_in_size(L); }
static int irmae__linear_forward_l(irmae_model *m, const irmae_layer *L, float *out, const float *in, int B)
{
    return irmae_linear_forward(out, in, irmae__lw(m, L), irmae__lb(m, L), B, (int)irmae__layer_in_size(L), L->out_c);
}
static int irmae__linear_backward_l(irmae_model *m, const irmae_layer *L, float *din, const float *dout,
                                    const float *in, const float *out, int B)
{
    (void)out;
    return irmae_linear_backward(din, irmae__ldw(m, L), irmae__ldb(m, L), dout, in, irmae__lw(m, L), B,
                                 (int)irmae__layer_in_size(L), L->out_c);
}
static int irmae__linear_weight_shape(const irmae_layer *L, size_t *shape)
{
    shape[0] = (size_t)L->out_c;
    shape[1] = irmae__layer_in_size(L);
    return 2;
}
static const char *irmae__linear_describe(const irmae_layer *L, char *extra, size_t cap)
{
    snprintf(extra, cap, ",\"bias\":%s", irmae__bias_json(L));
    return "linear";
}

/* ---- activations (IRMAE_LAYER_RELU, _TANH, _SIGMOID): same shape, no parameters ---- */

static int irmae__same_shape(irmae_layer *L, const char *where, int index)
{
    (void)L; (void)where; (void)index; /* out_* = in_*, set by the caller */
    return IRMAE_OK;
}
static const char *irmae__act_describe(const irmae_layer *L, char *extra, size_t cap)
{
    if (cap) extra[0] = 0;
    return irmae__lt(L)->name; /* "relu", "tanh", "sigmoid" */
}
#define IRMAE__LCOUNT(L, B) (irmae__layer_out_size(L) * (size_t)(B))
static int irmae__relu_fw(irmae_model *m, const irmae_layer *L, float *out, const float *in, int B)
{ (void)m; irmae_relu_forward(out, in, IRMAE__LCOUNT(L, B)); return IRMAE_OK; }
static int irmae__relu_bw(irmae_model *m, const irmae_layer *L, float *din, const float *dout,
                          const float *in, const float *out, int B)
{ (void)m; (void)in; if (din) irmae_relu_backward(din, dout, out, IRMAE__LCOUNT(L, B)); return IRMAE_OK; }
static int irmae__tanh_fw(irmae_model *m, const irmae_layer *L, float *out, const float *in, int B)
{ (void)m; irmae_tanh_forward(out, in, IRMAE__LCOUNT(L, B)); return IRMAE_OK; }
static int irmae__tanh_bw(irmae_model *m, const irmae_layer *L, float *din, const float *dout,
                          const float *in, const float *out, int B)
{ (void)m; (void)in; if (din) irmae_tanh_backward(din, dout, out, IRMAE__LCOUNT(L, B)); return IRMAE_OK; }
static int irmae__sigmoid_fw(irmae_model *m, const irmae_layer *L, float *out, const float *in, int B)
{ (void)m; irmae_sigmoid_forward(out, in, IRMAE__LCOUNT(L, B)); return IRMAE_OK; }
static int irmae__sigmoid_bw(irmae_model *m, const irmae_layer *L, float *din, const float *dout,
                             const float *in, const float *out, int B)
{ (void)m; (void)in; if (din) irmae_sigmoid_backward(din, dout, out, IRMAE__LCOUNT(L, B)); return IRMAE_OK; }

/* ---- reshape (IRMAE_LAYER_RESHAPE): the same values in the same order ---- */

static int irmae__reshape_resolve(irmae_layer *L, const char *where, int index)
{
    const irmae_layer_spec *s = &L->spec;
    size_t in_f = irmae__layer_in_size(L);
    if (s->c == 0) { L->out_c = (int)in_f; L->out_h = 1; L->out_w = 1; return IRMAE_OK; }
    if (irmae__count(s->c, s->h, s->w, 1) != in_f)
        return irmae__fail(IRMAE_ERR_SHAPE, "%s layer %d: cannot reshape %d x %d x %d to %d x %d x %d",
                           where, index, L->in_c, L->in_h, L->in_w, s->c, s->h, s->w);
    L->out_c = s->c; L->out_h = s->h; L->out_w = s->w;
    return IRMAE_OK;
}
static int irmae__reshape_forward(irmae_model *m, const irmae_layer *L, float *out, const float *in, int B)
{ (void)m; memcpy(out, in, IRMAE__LCOUNT(L, B) * sizeof(float)); return IRMAE_OK; }
static int irmae__reshape_backward(irmae_model *m, const irmae_layer *L, float *din, const float *dout,
                                   const float *in, const float *out, int B)
{ (void)m; (void)in; (void)out; if (din) memcpy(din, dout, IRMAE__LCOUNT(L, B) * sizeof(float)); return IRMAE_OK; }
static const char *irmae__reshape_describe(const irmae_layer *L, char *extra, size_t cap)
{
    if (L->spec.c == 0) { if (cap) extra[0] = 0; return "flatten"; }
    snprintf(extra, cap, ",\"shape\":[%d,%d,%d]", L->spec.c, L->spec.h, L->spec.w);
    return "unflatten";
}

/* ---- nearest-neighbour upsampling (IRMAE_LAYER_UPSAMPLE) ---- @upsample
   As torch.nn.Upsample(scale_factor=s, mode="nearest") with an integer s:
   out[c][y][x] = in[c][y / s][x / s], out is (s h) x (s w). Its backward
   sums each s x s block of dout, row by row (a fixed order: the same bits
   for any thread count). Decoders use it with a stride-1 conv instead of a
   strided convT to avoid checkerboard artefacts. */

static int irmae__upsample_resolve(irmae_layer *L, const char *where, int index)
{
    int s = L->spec.stride;
    if (s < 1 || s > 64)
        return irmae__fail(IRMAE_ERR_ARG, "%s layer %d: upsampling scale %d (1..64)", where, index, s);
    if (L->in_h > INT_MAX / s || L->in_w > INT_MAX / s)
        return irmae__fail(IRMAE_ERR_OVERFLOW, "%s layer %d: %d x %d upsampled %d times", where, index,
                           L->in_h, L->in_w, s);
    L->out_h = L->in_h * s; L->out_w = L->in_w * s;
    return IRMAE_OK;
}
static int irmae__upsample_forward(irmae_model *m, const irmae_layer *L, float *out, const float *in, int B)
{
    ptrdiff_t p, planes = (ptrdiff_t)B * L->in_c;
    int s = L->spec.stride, h = L->in_h, w = L->in_w;
    double t0 = IRMAE__PROF_T0();
    (void)m;
    IRMAE__OMP(parallel for schedule(static) if(IRMAE__LCOUNT(L, B) > IRMAE__PAR_MIN))
    for (p = 0; p < planes; p++) {
        const float *src = in + (size_t)p * h * w;
        float *dst = out + (size_t)p * h * w * s * s;
        int y, x, r, k;
        for (y = 0; y < h; y++) {
            float *row = dst + (size_t)y * s * w * s;
            for (x = 0; x < w; x++)
                for (k = 0; k < s; k++) row[(size_t)x * s + k] = src[(size_t)y * w + x];
            for (r = 1; r < s; r++) memcpy(row + (size_t)r * w * s, row, (size_t)w * s * sizeof(float));
        }
    }
    IRMAE__PROF_ADD(IRMAE_PHASE_LOWER, t0);
    return IRMAE_OK;
}
static int irmae__upsample_backward(irmae_model *m, const irmae_layer *L, float *din, const float *dout,
                                    const float *in, const float *out, int B)
{
    ptrdiff_t p, planes = (ptrdiff_t)B * L->in_c;
    int s = L->spec.stride, h = L->in_h, w = L->in_w;
    double t0;
    (void)m; (void)in; (void)out;
    if (!din) return IRMAE_OK;
    t0 = IRMAE__PROF_T0();
    IRMAE__OMP(parallel for schedule(static) if(IRMAE__LCOUNT(L, B) > IRMAE__PAR_MIN))
    for (p = 0; p < planes; p++) {
        const float *src = dout + (size_t)p * h * w * s * s;
        float *dst = din + (size_t)p * h * w;
        int y, x, r, k;
        for (y = 0; y < h; y++)
            for (x = 0; x < w; x++) {
                float acc = 0.0f;
                for (r = 0; r < s; r++)
                    for (k = 0; k < s; k++) acc += src[((size_t)y * s + r) * w * s + (size_t)x * s + k];
                dst[(size_t)y * w + x] = acc;
            }
    }
    IRMAE__PROF_ADD(IRMAE_PHASE_LOWER, t0);
    return IRMAE_OK;
}
static const char *irmae__upsample_describe(const irmae_layer *L, char *extra, size_t cap)
{
    snprintf(extra, cap, ",\"scale\":%d", L->spec.stride);
    return "upsample";
}
#undef IRMAE__LCOUNT

/* The table: one row per layer type. */
static const irmae__layer_type irmae__layer_types[] = {
    { IRMAE_LAYER_CONV, "conv", irmae__conv_resolve, irmae__conv_fan_in, irmae__conv_workspace_of,
      irmae__conv_forward, irmae__conv_backward, irmae__conv_weight_shape, irmae__conv_describe },
    { IRMAE_LAYER_CONVT, "convT", irmae__conv_resolve, irmae__conv_fan_in, irmae__conv_workspace_of,
      irmae__conv_forward, irmae__conv_backward, irmae__conv_weight_shape, irmae__conv_describe },
    { IRMAE_LAYER_LINEAR, "linear", irmae__linear_resolve, irmae__linear_fan_in, NULL,
      irmae__linear_forward_l, irmae__linear_backward_l, irmae__linear_weight_shape, irmae__linear_describe },
    { IRMAE_LAYER_RELU, "relu", irmae__same_shape, NULL, NULL, irmae__relu_fw, irmae__relu_bw, NULL, irmae__act_describe },
    { IRMAE_LAYER_TANH, "tanh", irmae__same_shape, NULL, NULL, irmae__tanh_fw, irmae__tanh_bw, NULL, irmae__act_describe },
    { IRMAE_LAYER_SIGMOID, "sigmoid", irmae__same_shape, NULL, NULL, irmae__sigmoid_fw, irmae__sigmoid_bw, NULL,
      irmae__act_describe },
    { IRMAE_LAYER_RESHAPE, "reshape", irmae__reshape_resolve, NULL, NULL, irmae__reshape_forward,
      irmae__reshape_backward, NULL, irmae__reshape_describe },
    { IRMAE_LAYER_UPSAMPLE, "upsample", irmae__upsample_resolve, NULL, NULL, irmae__upsample_forward,
      irmae__upsample_backward, NULL, irmae__upsample_describe }
};

/* The row of a type; NULL for a type the table does not have. */
static const irmae__layer_type *irmae__layer_type_of(int type)
{
    size_t i;
    for (i = 0; i < sizeof irmae__layer_types / sizeof irmae__layer_types[0]; i++)
        if (irmae__layer_types[i].type == type) return &irmae__layer_types[i];
    return NULL;
}
/* The row of a layer of a planned model (irmae__layer_resolve checked that it exists). */
static const irmae__layer_type *irmae__lt(const irmae_layer *L) { return irmae__layer_type_of(L->spec.type); }

/* Resolves one layer given its input shape: shapes and parameter sizes. */
static int irmae__layer_resolve(irmae_layer *L, const irmae_layer_spec *s, int c, int h, int w,
                                int code_dim, const char *where, int index)
{
    const irmae__layer_type *t = irmae__layer_type_of(s->type);
    size_t in_f = irmae__count(c, h, w, 1);
    int rc;
    memset(L, 0, sizeof *L);
    L->spec = *s;
    if (s->out == IRMAE_CODE) L->spec.out = code_dim;
    L->in_c = c; L->in_h = h; L->in_w = w;
    L->out_c = c; L->out_h = h; L->out_w = w;
    if (!in_f || in_f > INT_MAX)
        return irmae__fail(IRMAE_ERR_SHAPE, "%s layer %d: input %d x %d x %d", where, index, c, h, w);
    if (!t) return irmae__fail(IRMAE_ERR_ARG, "%s layer %d: unknown type %d", where, index, s->type);
    if (!t->resolve || !t->forward || !t->backward || !t->describe)
        return irmae__fail(IRMAE_ERR_UNSUPPORTED, "%s layer %d: layer type %s has no resolve, forward, backward "
                           "or describe in the table", where, index, t->name);
    if ((rc = t->resolve(L, where, index))) return rc;
    if (t->fan_in && !L->n_w)
        return irmae__fail(IRMAE_ERR_OVERFLOW, "%s layer %d: weight size overflows", where, index);
    if (L->n_w && (!t->fan_in || !t->weight_shape))
        return irmae__fail(IRMAE_ERR_UNSUPPORTED, "%s layer %d: layer type %s has parameters but no fan_in or "
                           "weight_shape in the table", where, index, t->name);
    if (!irmae__count(L->out_c, L->out_h, L->out_w, 1) ||
        irmae__count(L->out_c, L->out_h, L->out_w, 1) > INT_MAX)
        return irmae__fail(IRMAE_ERR_SHAPE, "%s layer %d: output size overflows", where, index);
    return IRMAE_OK;
}

/* out_act as a layer type (IRMAE_OUT_AUTO resolved); 0 for IRMAE_OUT_NONE, -1 if unknown. */
static int irmae__out_act_type(const irmae_config *cfg)
{
    int a = cfg->out_act;
    if (a == IRMAE_OUT_AUTO) a = cfg->kind == IRMAE_KIND_VAE ? IRMAE_OUT_SIGMOID : IRMAE_OUT_TANH;
    return a == IRMAE_OUT_TANH ? IRMAE_LAYER_TANH : a == IRMAE_OUT_SIGMOID ? IRMAE_LAYER_SIGMOID
         : a == IRMAE_OUT_NONE ? 0 : -1;
}

/* Resolves all layers of cfg into m->layers, computing parameter offsets.
   Does not allocate. */
static int irmae__model_plan(irmae_model *m, const irmae_config *cfg)
{
    int i, c, h, w, rc, out_type;
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
    out_type = irmae__out_act_type(cfg);
    if (out_type < 0) return irmae__fail(IRMAE_ERR_ARG, "config: unknown out_act %d", cfg->out_act);
    if (cfg->kind == IRMAE_KIND_VAE && out_type != IRMAE_LAYER_SIGMOID)
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
        else if (out_type == 0) break;
        else spec = irmae_layer_act(out_type);
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
    m->act_per_image = act;
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
    irmae__free(m->sum_work);
    memset(m, 0, sizeof *m);
}

/* Workspace sizes, in floats, of a planned model for cfg->max_batch: the
   activations, the two gradient ping-pong buffers (maxio each), the codes of
   every linear map, the VAE noise and the largest layer scratch. Used by
   irmae_model_init and by the checkpoint reader (which bounds the memory a
   file may ask for before allocating). 0 if a size overflows. */
typedef struct { size_t acts, maxio, codes, eps, work; } irmae__sizes;

static int irmae__model_sizes(const irmae_model *m, const irmae_config *cfg, irmae__sizes *z)
{
    size_t B = (size_t)cfg->max_batch, maxio = 0;
    int i;
    z->work = 0;
    for (i = 0; i < m->n_layers; i++) {
        const irmae_layer *L = &m->layers[i];
        const irmae__layer_type *t = irmae__lt(L);
        size_t io = irmae__layer_out_size(L) > irmae__layer_in_size(L) ? irmae__layer_out_size(L) : irmae__layer_in_size(L);
        if (io > maxio) maxio = io;
        if (t->workspace) {
            size_t ws;
            if (t->workspace(L, cfg->max_batch, &ws)) return 0;
            if (ws > z->work) z->work = ws;
        }
    }
    return irmae__mul(&z->acts, m->act_per_image, B) && irmae__mul(&z->maxio, maxio, B) &&
           irmae__mul3(&z->codes, (size_t)cfg->l + 1, B, (size_t)cfg->n) && irmae__mul(&z->eps, B, (size_t)cfg->n);
}

IRMAEDEF int irmae_model_init(irmae_model *m, const irmae_config *cfg, irmae_rng *rng)
{
    int i, rc, B;
    irmae__sizes z;
    if (!m || !cfg || !rng) return irmae__fail(IRMAE_ERR_ARG, "model_init: NULL pointer");
    memset(m, 0, sizeof *m);
    rc = irmae__model_plan(m, cfg);
    if (rc) { memset(m, 0, sizeof *m); return rc; }
    m->cfg = *cfg;
    B = cfg->max_batch;
    if (!irmae__model_sizes(m, cfg, &z)) {
        memset(m, 0, sizeof *m);
        return irmae__fail(IRMAE_ERR_OVERFLOW, "model_init: workspace for batch %d overflows", B);
    }
    m->params = (float *)irmae__alloc(m->n_params, sizeof(float));
    m->grads = (float *)irmae__alloc(m->n_params, sizeof(float));
    m->adam_m = (float *)irmae__alloc(m->n_params, sizeof(float));
    m->adam_v = (float *)irmae__alloc(m->n_params, sizeof(float));
    m->acts = (float *)irmae__alloc(z.acts, sizeof(float));
    m->codes = (float *)irmae__alloc(z.codes, sizeof(float));
    m->vae_eps = (float *)irmae__alloc(z.eps, sizeof(float));
    m->grad_a = (float *)irmae__alloc(z.maxio, sizeof(float));
    m->grad_b = (float *)irmae__alloc(z.maxio, sizeof(float));
    m->work = (float *)irmae__alloc(z.work, sizeof(float));
    if (!m->params || !m->grads || !m->adam_m || !m->adam_v || !m->acts || !m->codes ||
        !m->vae_eps || !m->grad_a || !m->grad_b || !m->work) {
        irmae_model_free(m);
        return irmae__fail(IRMAE_ERR_NOMEM, "model_init: %lu parameters, batch %d",
                           (unsigned long)m->n_params, B);
    }
    /* PyTorch's default initialisation, layer by layer in order */
    for (i = 0; i < m->n_layers; i++) {
        const irmae_layer *L = &m->layers[i];
        float bound;
        if (i == m->n_enc)
            irmae__uniform_fill(m->params + m->maps_off, (size_t)cfg->l * cfg->n * cfg->n,
                                (float)(1.0 / sqrt((double)cfg->n)), rng);
        if (!L->n_w) continue;
        bound = (float)(1.0 / sqrt(irmae__lt(L)->fan_in(L)));
        irmae__uniform_fill(m->params + L->w_off, L->n_w, bound, rng);
        irmae__uniform_fill(m->params + L->b_off, L->n_b, bound, rng);
    }
    m->rng = irmae_rng_seed(irmae_rng_u64(rng));
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

/* ---- The forward pass ---------------------------------------------------- @forward
   One forward pass serves training (irmae_model_forward_backward), the
   loss of a batch (irmae_model_loss) and inference (encode, features,
   decode): image -> encoder layers -> e -> the code stage (the VAE's
   sampling or mean, the l maps, the code term of the loss) -> z -> decoder
   layers -> output activation -> image. Every layer's output stays in
   m->acts for the backward pass. */

/* Layers [from, to) on h (B images); *y gets the last output. */
static int irmae__layers_forward(irmae_model *m, int from, int to, const float *h, int B, const float **y)
{
    int i, rc;
    for (i = from; i < to; i++) {
        float *out = irmae__act(m, i, B);
        if ((rc = irmae__lt(&m->layers[i])->forward(m, &m->layers[i], out, h, B))) return rc;
        h = out;
    }
    *y = h;
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

static int irmae__is_vae(const irmae_model *m) { return m->cfg.kind == IRMAE_KIND_VAE; }

/* The code stage. The VAE: e = [mu | logvar] per image, z = mu + exp(logvar / 2) eps
   with fresh noise eps (sample != 0, kept in m->vae_eps for the backward pass)
   or z = mu; *reg = beta * KL(N(mu, sigma) || N(0, 1)), the mean over the
   batch's B x n entries. The AE/IRMAE: z = W_l .. W_1 e and *reg = the mean
   of code_l1 |z| + code_l2 z^2. Returns z (B x n, in m->codes). */
static const float *irmae__code_forward(irmae_model *m, const float *e, int B, int sample, double *reg)
{
    int i, j, n = m->cfg.n;
    size_t blk = (size_t)B * n, k;
    double r = 0.0, t0;
    float *z;
    if (irmae__is_vae(m)) {
        t0 = IRMAE__PROF_T0();
        z = m->codes;
        for (i = 0; i < B; i++)
            for (j = 0; j < n; j++) {
                float mu = e[(size_t)i * 2 * n + j], lv = e[(size_t)i * 2 * n + n + j];
                if (sample) {
                    float ep = irmae_rng_normal(&m->rng);
                    m->vae_eps[(size_t)i * n + j] = ep;
                    z[(size_t)i * n + j] = mu + expf(0.5f * lv) * ep;
                } else z[(size_t)i * n + j] = mu;
                r += -0.5 * (1.0 + lv - (double)mu * mu - exp((double)lv));
            }
        r *= m->cfg.vae_beta / (double)blk;
    } else {
        z = irmae__maps_forward(m, e, B);
        t0 = IRMAE__PROF_T0();
        for (k = 0; k < blk; k++) {
            if (m->cfg.code_l1 != 0.0f) r += m->cfg.code_l1 * fabs((double)z[k]);
            if (m->cfg.code_l2 != 0.0f) r += m->cfg.code_l2 * (double)z[k] * z[k];
        }
        r /= (double)blk;
    }
    IRMAE__PROF_ADD(IRMAE_PHASE_LOSS, t0);
    *reg = r;
    return z;
}

/* What one forward pass leaves for the loss and the backward pass. */
typedef struct irmae__pass {
    const float *e;   /* encoder output, B x code_dim (the VAE: [mu | logvar]) */
    const float *z;   /* the decoder's input, B x n */
    const float *y;   /* the output image, B x C x H x W */
    double reg;       /* the code term of the loss */
} irmae__pass;

static int irmae__forward(irmae_model *m, const float *x, int B, int sample, irmae__pass *p)
{
    int rc;
    if ((rc = irmae__layers_forward(m, 0, m->n_enc, x, B, &p->e))) return rc;
    p->z = irmae__code_forward(m, p->e, B, sample, &p->reg);
    return irmae__layers_forward(m, m->n_enc, m->n_layers, p->z, B, &p->y);
}

/* The VAE's BCE works on the logits: the input of the output sigmoid, i.e.
   the output of the layer before it, or z when the decoder is that sigmoid. */
static const float *irmae__logits(irmae_model *m, const float *z, int B)
{
    return m->n_layers - 1 == m->n_enc ? z : irmae__act(m, m->n_layers - 2, B);
}

/* Reconstruction loss of a batch whose forward pass is p: the mean over
   pixels of (y - x)^2 (AE/IRMAE) or of the BCE of the logits a against x
   (the VAE: max(a,0) - a x + log(1 + exp(-|a|))). dy (NULL: not wanted)
   receives d loss / d y, or for the VAE d loss / d a = (sigmoid(a) - x) / count. */
static double irmae__recon_loss(irmae_model *m, const irmae__pass *p, const float *x, int B, float *dy)
{
    size_t count = irmae__image_size(m) * (size_t)B, i;
    double sum = 0.0, inv = 1.0 / (double)count, t0 = IRMAE__PROF_T0();
    const float *y = p->y;
    if (irmae__is_vae(m)) {
        const float *a = irmae__logits(m, p->z, B);
        for (i = 0; i < count; i++) {
            double av = a[i];
            sum += (av > 0 ? av : 0) - av * x[i] + log1p(exp(-fabs(av)));
            if (dy) dy[i] = (float)((y[i] - x[i]) * inv);
        }
    } else {
        for (i = 0; i < count; i++) {
            double d = (double)y[i] - x[i];
            sum += d * d;
            if (dy) dy[i] = (float)(2.0 * d * inv);
        }
    }
    IRMAE__PROF_ADD(IRMAE_PHASE_LOSS, t0);
    return sum * inv;
}

/* ---- The backward pass --------------------------------------------------- @backward
   The ping-pong buffers m->grad_a / m->grad_b carry d loss / d (a layer's
   output) down the network; *g is the current gradient, *gn the other
   buffer, swapped after every stage. */
static void irmae__swap(float **g, float **gn) { float *t = *g; *g = *gn; *gn = t; }

/* Layers (from, to] backwards, to >= from; in of layer from is `in0`.
   din of layer `from` goes to `din0` (NULL: not computed) instead of *gn. */
static int irmae__layers_backward(irmae_model *m, int from, int to, const float *in0, int B,
                                  float **g, float **gn, float *din0, int din0_set)
{
    int i, rc;
    for (i = to; i >= from; i--) {
        const float *in = i == from ? in0 : irmae__act(m, i - 1, B);
        float *din = i == from && din0_set ? din0 : *gn;
        if ((rc = irmae__lt(&m->layers[i])->backward(m, &m->layers[i], din, *g, in, irmae__act(m, i, B), B)))
            return rc;
        irmae__swap(g, gn);
    }
    return IRMAE_OK;
}

/* The code stage backwards: from *g = d loss / d z to *g = d loss / d e. */
static void irmae__code_backward(irmae_model *m, const irmae__pass *p, int B, float **g, float **gn)
{
    int i, j, n = m->cfg.n;
    size_t blk = (size_t)B * n;
    const float *e = p->e, *z = p->z;
    float *dz = *g;
    double t0 = IRMAE__PROF_T0();
    if (irmae__is_vae(m)) {
        /* into d/d[mu | logvar], with the KL term's own gradient */
        double s = m->cfg.vae_beta / (double)blk;
        for (i = 0; i < B; i++)
            for (j = 0; j < n; j++) {
                float mu = e[(size_t)i * 2 * n + j], lv = e[(size_t)i * 2 * n + n + j];
                float d = dz[(size_t)i * n + j], ep = m->vae_eps[(size_t)i * n + j];
                (*gn)[(size_t)i * 2 * n + j] = d + (float)(s * mu);
                (*gn)[(size_t)i * 2 * n + n + j] = d * ep * 0.5f * expf(0.5f * lv) +
                                                   (float)(s * 0.5 * (exp((double)lv) - 1.0));
            }
        irmae__swap(g, gn);
        IRMAE__PROF_ADD(IRMAE_PHASE_LOSS, t0);
        return;
    }
    /* the code penalties, then back through the maps: dz_{j-1} = dz_j W_j, dW_j += dz_j^T z_{j-1} */
    for (i = 0; i < (int)blk; i++) {
        float zi = z[i];
        if (m->cfg.code_l1 != 0.0f) dz[i] += (float)(m->cfg.code_l1 / (double)blk) * (zi > 0.0f ? 1.0f : zi < 0.0f ? -1.0f : 0.0f);
        if (m->cfg.code_l2 != 0.0f) dz[i] += (float)(2.0 * m->cfg.code_l2 / (double)blk) * zi;
    }
    IRMAE__PROF_ADD(IRMAE_PHASE_LOSS, t0);
    for (j = m->cfg.l; j >= 1; j--) {
        const float *wj = m->params + m->maps_off + (size_t)(j - 1) * n * n;
        float *dwj = m->grads + m->maps_off + (size_t)(j - 1) * n * n;
        irmae_sgemm(1, 0, n, n, B, 1.0f, *g, n, m->codes + (j - 1) * blk, n, 1.0f, dwj, n);
        irmae_sgemm(0, 0, B, n, n, 1.0f, *g, n, wj, n, 0.0f, *gn, n);
        irmae__swap(g, gn);
    }
}

/* Names the parameter tensor that holds params[off] ("encoder layer 3 weight"). */
static void irmae__param_name(const irmae_model *m, size_t off, char *buf, size_t cap)
{
    int i;
    if (off >= m->maps_off && off < m->maps_off + (size_t)m->cfg.l * m->cfg.n * m->cfg.n) {
        snprintf(buf, cap, "linear map %d", (int)((off - m->maps_off) / ((size_t)m->cfg.n * m->cfg.n)) + 1);
        return;
    }
    for (i = 0; i < m->n_layers; i++) {
        const irmae_layer *L = &m->layers[i];
        int enc = i < m->n_enc;
        if (off >= L->w_off && off < L->w_off + L->n_w + L->n_b) {
            snprintf(buf, cap, "%s layer %d %s", enc ? "encoder" : "decoder", enc ? i : i - m->n_enc,
                     off < L->w_off + L->n_w ? "weight" : "bias");
            return;
        }
    }
    snprintf(buf, cap, "parameter %lu", (unsigned long)off);
}

/* The gradient norm, the finiteness check naming the first bad tensor, and
   the optional clipping (irmae_grad_clip). */
static int irmae__grad_guard(irmae_model *m)
{
    double t0 = IRMAE__PROF_T0();
    m->last_grad_norm = irmae_grad_clip(m->grads, m->n_params, m->cfg.grad_clip);
    IRMAE__PROF_ADD(IRMAE_PHASE_ADAM, t0);
    if (!isfinite(m->last_grad_norm)) {
        size_t j;
        char name[96];
        for (j = 0; j < m->n_params && isfinite(m->grads[j]); j++) {}
        irmae__param_name(m, j < m->n_params ? j : 0, name, sizeof name);
        return irmae__fail(IRMAE_ERR_NUMERIC, "gradient of %s is %g at step %lld", name,
                           j < m->n_params ? m->grads[j] : 0.0f, m->step + 1);
    }
    return IRMAE_OK;
}

/* guard = 0: no numeric guard / clipping (the MPI version runs it after the sum). */
static int irmae__forward_backward(irmae_model *m, const float *x, int B, float *loss, float *dx, int guard)
{
    irmae__pass p;
    float *g = m->grad_a, *gn = m->grad_b;
    int rc;
    double recon;
    if ((rc = irmae__check_batch(m, x, B, "forward_backward"))) return rc;
    if ((rc = irmae__forward(m, x, B, 1, &p))) return rc;
    irmae__zero(m->grads, m->n_params);
    recon = irmae__recon_loss(m, &p, x, B, g);
    m->last_recon = recon; m->last_reg = p.reg; m->last_loss = recon + p.reg;
    if (loss) *loss = (float)m->last_loss;
    if (!isfinite(m->last_loss))
        return irmae__fail(IRMAE_ERR_NUMERIC, "forward_backward: loss is %g at step %lld", m->last_loss, m->step + 1);
    /* the decoder (the VAE starts below its sigmoid: g is d loss / d logits) */
    if ((rc = irmae__layers_backward(m, m->n_enc, irmae__is_vae(m) ? m->n_layers - 2 : m->n_layers - 1,
                                     p.z, B, &g, &gn, NULL, 0))) return rc;
    irmae__code_backward(m, &p, B, &g, &gn);
    if ((rc = irmae__layers_backward(m, 0, m->n_enc - 1, x, B, &g, &gn, dx, 1))) return rc;
    if (guard && (rc = irmae__grad_guard(m))) return rc;
    if (dx) { /* x is also the target: add d recon / d target */
        size_t count = (size_t)B * irmae__image_size(m), k;
        double inv = 1.0 / (double)count;
        if (irmae__is_vae(m)) { /* d/dx of BCE with logits a: -a */
            const float *a = irmae__logits(m, p.z, B);
            for (k = 0; k < count; k++) dx[k] -= (float)(a[k] * inv);
        } else {
            for (k = 0; k < count; k++) dx[k] -= (float)(2.0 * ((double)p.y[k] - x[k]) * inv);
        }
    }
    return IRMAE_OK;
}

IRMAEDEF int irmae_model_forward_backward(irmae_model *m, float *loss, float *dx, const float *x, int B)
{
    return irmae__forward_backward(m, x, B, loss, dx, 1);
}

IRMAEDEF int irmae_model_features_backward(irmae_model *m, const float *x, const float *de, int B)
{
    const float *e;
    float *g = m ? m->grad_a : NULL, *gn = m ? m->grad_b : NULL;
    int i, rc, n;
    if ((rc = irmae__check_batch(m, x, B, "features_backward"))) return rc;
    if (!de) return irmae__fail(IRMAE_ERR_ARG, "features_backward: NULL gradient");
    n = m->cfg.n;
    if ((rc = irmae__layers_forward(m, 0, m->n_enc, x, B, &e))) return rc;
    irmae__zero(m->grads, m->n_params);
    for (i = 0; i < B; i++) { /* d/de, laid out as the encoder output (the VAE's is [mu | logvar]) */
        memcpy(g + (size_t)i * m->code_dim, de + (size_t)i * n, (size_t)n * sizeof(float));
        if (m->code_dim > n) memset(g + (size_t)i * m->code_dim + n, 0, (size_t)(m->code_dim - n) * sizeof(float));
    }
    if ((rc = irmae__layers_backward(m, 0, m->n_enc - 1, x, B, &g, &gn, NULL, 1))) return rc;
    return irmae__grad_guard(m);
}

IRMAEDEF int irmae_model_adam_step(irmae_model *m)
{
    irmae_adam hp;
    int rc;
    if (!m || !m->params) return irmae__fail(IRMAE_ERR_ARG, "adam_step: model not initialised");
    hp.lr = m->cfg.lr; hp.beta1 = m->cfg.beta1; hp.beta2 = m->cfg.beta2; hp.eps = m->cfg.eps;
    rc = irmae_adam_update(m->params, m->adam_m, m->adam_v, m->grads, m->n_params, m->step + 1, &hp);
    if (!rc) m->step++;
    return rc;
}

IRMAEDEF int irmae_model_train_step(irmae_model *m, float *loss, const float *x, int batch)
{
    int rc = irmae_model_forward_backward(m, loss, NULL, x, batch);
    if (rc) return rc;
    return irmae_model_adam_step(m);
}

/* ---- Inference: the forward pass's stages on any number of images ---- @inference */

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
    if ((rc = irmae__layers_forward(m, 0, m->n_enc, x, B, &e))) return rc;
    for (i = 0; i < B; i++) /* the VAE's e is [mu | logvar]: keep mu */
        memcpy(out + (size_t)i * n, e + (size_t)i * m->code_dim, (size_t)n * sizeof(float));
    return IRMAE_OK;
}

static int irmae__encode_chunk(irmae_model *m, const float *x, int B, float *z)
{
    const float *e;
    double reg;
    int rc = irmae__layers_forward(m, 0, m->n_enc, x, B, &e);
    if (rc) return rc;
    memcpy(z, irmae__code_forward(m, e, B, 0, &reg), (size_t)B * m->cfg.n * sizeof(float));
    return IRMAE_OK;
}

static int irmae__decode_chunk(irmae_model *m, const float *z, int B, float *out)
{
    const float *y;
    int rc = irmae__layers_forward(m, m->n_enc, m->n_layers, z, B, &y);
    if (rc) return rc;
    memcpy(out, y, (size_t)B * irmae__image_size(m) * sizeof(float));
    return IRMAE_OK;
}

static int irmae__check_io(const irmae_model *m, const void *in, int count, const void *out, const char *fn)
{
    if (!m || !m->params) return irmae__fail(IRMAE_ERR_ARG, "%s: model not initialised", fn);
    if (!in || !out) return irmae__fail(IRMAE_ERR_ARG, "%s: NULL pointer", fn);
    if (count <= 0) return irmae__fail(IRMAE_ERR_ARG, "%s: count %d", fn, count);
    return IRMAE_OK;
}

IRMAEDEF int irmae_model_features(irmae_model *m, float *e, const float *x, int count)
{
    int rc = irmae__check_io(m, x, count, e, "model_features");
    return rc ? rc : irmae__chunks(m, x, irmae__image_size(m), count, e, (size_t)m->cfg.n, irmae__features_chunk);
}

IRMAEDEF int irmae_model_encode(irmae_model *m, float *z, const float *x, int count)
{
    int rc = irmae__check_io(m, x, count, z, "model_encode");
    return rc ? rc : irmae__chunks(m, x, irmae__image_size(m), count, z, (size_t)m->cfg.n, irmae__encode_chunk);
}

IRMAEDEF int irmae_model_decode(irmae_model *m, float *out, const float *z, int count)
{
    int rc = irmae__check_io(m, z, count, out, "model_decode");
    return rc ? rc : irmae__chunks(m, z, (size_t)m->cfg.n, count, out, irmae__image_size(m), irmae__decode_chunk);
}

IRMAEDEF int irmae_model_loss(irmae_model *m, float *loss, const float *x, int batch)
{
    irmae__pass p;
    int rc;
    if ((rc = irmae__check_batch(m, x, batch, "model_loss"))) return rc;
    if (!loss) return irmae__fail(IRMAE_ERR_ARG, "model_loss: NULL loss");
    if ((rc = irmae__forward(m, x, batch, 0, &p))) return rc;
    *loss = (float)(irmae__recon_loss(m, &p, x, batch, NULL) + p.reg);
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
#ifdef IRMAE_MPI
/* ---------------------------------------------------------------------- */
/* MPI: data-parallel training (only with -DIRMAE_MPI)               @mpi */
/* ---------------------------------------------------------------------- */

IRMAEDEF void irmae_mpi_shard(int *offset, int *count, int global_batch, int rank, int size)
{
    long long b = global_batch > 0 ? global_batch : 0, s = size > 0 ? size : 1, r = rank;
    long long lo = b * r / s, hi = b * (r + 1) / s;
    if (offset) *offset = (int)lo;
    if (count) *count = (int)(hi - lo);
}

/* Chunk r of `count` items split over `size` ranks: [off, off + len). */
static void irmae__mpi_chunk(size_t count, int r, int size, int *off, int *len)
{
    uint64_t lo = (uint64_t)count * (uint64_t)r / (uint64_t)size;
    uint64_t hi = (uint64_t)count * (uint64_t)(r + 1) / (uint64_t)size;
    *off = (int)lo;
    *len = (int)(hi - lo);
}

/* Reduce-scatter + allgather with the arithmetic done here, in rank order:
   rank r owns chunk r; MPI_Alltoallv brings it every rank's copy of chunk r
   (received in rank order), rank r adds them in double in the order 0..N-1,
   then MPI_Allgatherv hands every rank all the summed chunks. Per rank this
   sends and receives 2 (N - 1) / N x count floats, as a ring allreduce does. */
/* The sum with a caller-kept receive buffer (*work, *cap floats; grown here
   when too small, so a training loop allocates it once). */
static int irmae__mpi_sum(float *buf, size_t count, MPI_Comm comm, float **work, size_t *cap)
{
    int size = 1, rank = 0, r, my_off, my_len, ok, mpi_ok = 1;
    int *scount = NULL, *sdisp, *rcount, *rdisp;
    float *tmp;
    size_t need;
    if (MPI_Comm_size(comm, &size) != MPI_SUCCESS || MPI_Comm_rank(comm, &rank) != MPI_SUCCESS)
        return irmae__fail(IRMAE_ERR_IO, "mpi_allreduce_sum: MPI_Comm_size/rank failed");
    if (size == 1 || count == 0) return IRMAE_OK;
    if (!buf) return irmae__fail(IRMAE_ERR_ARG, "mpi_allreduce_sum: NULL buffer");
    if (count > (size_t)INT_MAX) return irmae__fail(IRMAE_ERR_LIMIT, "mpi_allreduce_sum: %lu floats (> INT_MAX)",
                                                     (unsigned long)count);
    irmae__mpi_chunk(count, rank, size, &my_off, &my_len);
    need = (size_t)size * (size_t)(my_len > 0 ? my_len : 1);
    if (*cap < need) {
        irmae__free(*work);
        *work = (float *)irmae__alloc(need, sizeof(float));
        *cap = *work ? need : 0;
    }
    tmp = *work;
    scount = (int *)irmae__alloc((size_t)size * 4, sizeof(int)); /* 16 bytes a rank: from the heap, no page faults */
    ok = scount && tmp ? IRMAE_OK : irmae__fail(IRMAE_ERR_NOMEM, "mpi_allreduce_sum: %d ranks x %d floats", size, my_len);
    if ((ok = irmae_mpi_agree(NULL, ok, comm))) { /* all ranks stop, or none */
        irmae__free(scount);
        return ok;
    }
    sdisp = scount + size; rcount = sdisp + size; rdisp = rcount + size;
    for (r = 0; r < size; r++) {
        irmae__mpi_chunk(count, r, size, &sdisp[r], &scount[r]); /* my copy of chunk r goes to rank r */
        rcount[r] = my_len;                                       /* rank r's copy of my chunk */
        rdisp[r] = r * my_len;
    }
    if (MPI_Alltoallv(buf, scount, sdisp, MPI_FLOAT, tmp, rcount, rdisp, MPI_FLOAT, comm) != MPI_SUCCESS) mpi_ok = 0;
    if (mpi_ok) {
        ptrdiff_t j, len = my_len;
        IRMAE__OMP(parallel for schedule(static) if(len > IRMAE__PAR_MIN))
        for (j = 0; j < len; j++) {
            double s = 0.0;
            int q;
            for (q = 0; q < size; q++) s += (double)tmp[(size_t)q * (size_t)len + (size_t)j];
            buf[(size_t)my_off + (size_t)j] = (float)s;
        }
        /* the counts and displacements of every chunk are scount / sdisp */
        if (MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, scount, sdisp, MPI_FLOAT, comm) != MPI_SUCCESS)
            mpi_ok = 0;
    }
    irmae__free(scount);
    return mpi_ok ? IRMAE_OK : irmae__fail(IRMAE_ERR_IO, "mpi_allreduce_sum: an MPI collective failed");
}

IRMAEDEF int irmae_mpi_allreduce_sum(float *buf, size_t count, MPI_Comm comm)
{
    float *work = NULL;
    size_t cap = 0;
    int rc = irmae__mpi_sum(buf, count, comm, &work, &cap);
    irmae__free(work);
    return rc;
}

/* Every rank's detail becomes "rank first of N: <the detail of rank first>" (collective). */
static void irmae__mpi_share_detail(int first, MPI_Comm comm)
{
    int size = 1;
    char one[sizeof irmae__detail];
    MPI_Comm_size(comm, &size);
    memcpy(one, irmae__detail, sizeof one);
    MPI_Bcast(one, (int)sizeof one, MPI_CHAR, first, comm);
    one[sizeof one - 1] = 0;
    snprintf(irmae__detail, sizeof irmae__detail, "rank %d of %d: %.480s", first, size, one); /* fits: 26 + 480 < 512 */
}

/* No allocation here, so this cannot fail on one rank and not on another:
   MIN-reduce of (rc ? rank : N) finds the lowest failing rank, which then
   broadcasts its rc and its detail. Integer MIN is exact, so the answer is
   the same on every rank whatever the reduction algorithm. */
IRMAEDEF int irmae_mpi_agree(int *first_rank, int rc, MPI_Comm comm)
{
    int size = 1, rank = 0, enc, first = 0;
    if (first_rank) *first_rank = -1;
    if (MPI_Comm_size(comm, &size) != MPI_SUCCESS || MPI_Comm_rank(comm, &rank) != MPI_SUCCESS)
        return irmae__fail(IRMAE_ERR_IO, "mpi_agree: MPI_Comm_size/rank failed");
    enc = rc != 0 ? rank : size;
    if (MPI_Allreduce(&enc, &first, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS)
        return irmae__fail(IRMAE_ERR_IO, "mpi_agree: MPI_Allreduce failed");
    if (first >= size) return IRMAE_OK;
    MPI_Bcast(&rc, 1, MPI_INT, first, comm);
    irmae__mpi_share_detail(first, comm);
    if (first_rank) *first_rank = first;
    return rc;
}

IRMAEDEF int irmae_model_forward_backward_mpi(irmae_model *m, float *loss, const float *x, int B, MPI_Comm comm)
{
    int size = 1, rank = 0, off = 0, lb = 0, rc = IRMAE_OK, r;
    double mine[3], *all;
    irmae_rng rng0;
    if (!m || !m->params) return irmae__fail(IRMAE_ERR_ARG, "forward_backward_mpi: model not initialised");
    if (MPI_Comm_size(comm, &size) != MPI_SUCCESS || MPI_Comm_rank(comm, &rank) != MPI_SUCCESS)
        return irmae__fail(IRMAE_ERR_IO, "forward_backward_mpi: MPI_Comm_size/rank failed");
    all = (double *)irmae__alloc((size_t)size * 3, sizeof(double));
    rng0 = m->rng;
    irmae_mpi_shard(&off, &lb, B, rank, size);
    if (!all) rc = irmae__fail(IRMAE_ERR_NOMEM, "forward_backward_mpi: %d ranks", size);
    else if (B <= 0 || B > m->cfg.max_batch)
        rc = irmae__fail(IRMAE_ERR_ARG, "forward_backward_mpi: global batch %d not in [1, %d]", B, m->cfg.max_batch);
    else if (lb > 0) {
        if (irmae__is_vae(m)) { /* the noise of images 0..off-1 belongs to the ranks before */
            size_t k, skip = 2 * (size_t)off * (size_t)m->cfg.n; /* irmae_rng_normal takes 2 draws */
            for (k = 0; k < skip; k++) irmae_rng_u64(&m->rng);
        }
        rc = irmae__forward_backward(m, x, lb, NULL, NULL, 0);
    } else {
        irmae__zero(m->grads, m->n_params);
        m->last_loss = m->last_recon = m->last_reg = 0.0;
    }
    /* any failure anywhere (a NaN loss on one rank, memory) stops every rank here */
    if ((rc = irmae_mpi_agree(NULL, rc, comm))) { irmae__free(all); return rc; }
    if (lb > 0 && lb != B) { /* gradient of (lb / B) x my mean loss */
        float w = (float)((double)lb / (double)B);
        ptrdiff_t j, np = (ptrdiff_t)m->n_params;
        IRMAE__OMP(parallel for schedule(static) if(np > IRMAE__PAR_MIN))
        for (j = 0; j < np; j++) m->grads[j] *= w;
    }
    /* the global mean loss: weighted local means added in rank order, the same bits everywhere */
    mine[0] = m->last_loss * lb / B; mine[1] = m->last_recon * lb / B; mine[2] = m->last_reg * lb / B;
    if (MPI_Allgather(mine, 3, MPI_DOUBLE, all, 3, MPI_DOUBLE, comm) != MPI_SUCCESS) {
        irmae__free(all);
        return irmae__fail(IRMAE_ERR_IO, "forward_backward_mpi: MPI_Allgather failed");
    }
    m->last_loss = m->last_recon = m->last_reg = 0.0;
    for (r = 0; r < size; r++) {
        m->last_loss += all[(size_t)r * 3];
        m->last_recon += all[(size_t)r * 3 + 1];
        m->last_reg += all[(size_t)r * 3 + 2];
    }
    irmae__free(all);
    if (loss) *loss = (float)m->last_loss;
    if (irmae__is_vae(m)) { /* every rank ends where one process would: after the noise of all B images */
        size_t k, skip = 2 * (size_t)B * (size_t)m->cfg.n;
        m->rng = rng0;
        for (k = 0; k < skip; k++) irmae_rng_u64(&m->rng);
    }
    if ((rc = irmae__mpi_sum(m->grads, m->n_params, comm, &m->sum_work, &m->sum_work_cap))) return rc;
    /* the same gradients on every rank: the same norm, the same guard decision, the same clipping */
    return irmae__grad_guard(m);
}

IRMAEDEF int irmae_model_train_step_mpi(irmae_model *m, float *loss, const float *x, int global_batch, MPI_Comm comm)
{
    int rc = irmae_model_forward_backward_mpi(m, loss, x, global_batch, comm);
    if (rc) return rc;
    return irmae_model_adam_step(m);
}
#endif /* IRMAE_MPI */
/* ---------------------------------------------------------------------- */
/* Data sets                                                    @datasets */
/* ---------------------------------------------------------------------- */

IRMAEDEF int irmae_dataset_alloc(irmae_dataset *ds, int n, int c, int h, int w, int with_labels)
{
    size_t count;
    if (!ds) return irmae__fail(IRMAE_ERR_ARG, "dataset_alloc: ds is NULL");
    memset(ds, 0, sizeof *ds);
    count = irmae__count(n, c, h, w);
    if (!count)
        return irmae__fail(n <= 0 || c <= 0 || h <= 0 || w <= 0 ? IRMAE_ERR_ARG : IRMAE_ERR_OVERFLOW,
                           "dataset_alloc: %d x %d x %d x %d", n, c, h, w);
    ds->x = (float *)irmae__alloc(count, sizeof(float));
    ds->labels = with_labels ? (int *)irmae__alloc((size_t)n, sizeof(int)) : NULL;
    if (!ds->x || (with_labels && !ds->labels)) {
        irmae_dataset_free(ds);
        return irmae__fail(IRMAE_ERR_NOMEM, "dataset_alloc: %d images of %dx%dx%d", n, c, h, w);
    }
    ds->n = n; ds->c = c; ds->h = h; ds->w = w;
    return IRMAE_OK;
}

IRMAEDEF void irmae_dataset_free(irmae_dataset *ds)
{
    if (!ds) return;
    irmae__free(ds->x);
    irmae__free(ds->labels);
    memset(ds, 0, sizeof *ds);
}

IRMAEDEF float *irmae_dataset_image(const irmae_dataset *ds, int i)
{
    if (!ds || !ds->x || i < 0 || i >= ds->n) return NULL;
    return ds->x + (size_t)i * ds->c * ds->h * ds->w;
}

IRMAEDEF irmae_shape irmae_shape_random(irmae_rng *rng)
{
    irmae_shape s;
    s.r = irmae_rng_uniform(rng);
    s.g = irmae_rng_uniform(rng);
    s.b = irmae_rng_uniform(rng);
    s.x = irmae_rng_int(rng, 8, 24);
    s.y = irmae_rng_int(rng, 8, 24);
    s.size = irmae_rng_int(rng, 3, 8);
    s.kind = irmae_rng_int(rng, 0, 1);
    return s;
}

IRMAEDEF void irmae_shape_draw(float *img, const irmae_shape *s, int h, int w)
{
    int y, x;
    size_t plane = (size_t)h * w;
    memset(img, 0, 3 * plane * sizeof(float));
    for (y = 0; y < h; y++)
        for (x = 0; x < w; x++) {
            int inside, dx = x - s->x, dy = y - s->y;
            if (s->kind == IRMAE_SHAPE_CIRCLE) inside = dx * dx + dy * dy <= s->size * s->size;
            else inside = dx >= 0 && dx < s->size && dy >= 0 && dy < s->size;
            if (inside) {
                size_t p = (size_t)y * w + x;
                img[p] = s->r; img[plane + p] = s->g; img[2 * plane + p] = s->b;
            }
        }
}

IRMAEDEF int irmae_shapes_make(irmae_dataset *ds, irmae_shape *factors, int count, irmae_rng *rng)
{
    int i, rc;
    if (!ds || !rng) return irmae__fail(IRMAE_ERR_ARG, "shapes_make: NULL pointer");
    if ((rc = irmae_dataset_alloc(ds, count, 3, 32, 32, 1))) return rc;
    for (i = 0; i < count; i++) {
        irmae_shape s = irmae_shape_random(rng);
        irmae_shape_draw(irmae_dataset_image(ds, i), &s, 32, 32);
        ds->labels[i] = s.kind;
        if (factors) factors[i] = s;
    }
    return IRMAE_OK;
}

IRMAEDEF int irmae_dataset_rescale(irmae_dataset *ds, float lo, float hi)
{
    size_t i, count;
    if (!ds || !ds->x) return irmae__fail(IRMAE_ERR_ARG, "dataset_rescale: empty data set");
    count = (size_t)ds->n * ds->c * ds->h * ds->w;
    for (i = 0; i < count; i++) ds->x[i] = lo + ds->x[i] * (hi - lo);
    return IRMAE_OK;
}

IRMAEDEF int irmae_shuffle(int *perm, int n, irmae_rng *rng)
{
    int i, j, t;
    if (n < 0) return irmae__fail(IRMAE_ERR_ARG, "shuffle: n = %d", n);
    if (n > 0 && (!perm || !rng)) return irmae__fail(IRMAE_ERR_ARG, "shuffle: perm or rng is NULL");
    for (i = 0; i < n; i++) perm[i] = i;
    for (i = n - 1; i > 0; i--) {
        j = irmae_rng_int(rng, 0, i);
        t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    return IRMAE_OK;
}

IRMAEDEF int irmae_dataset_gather(const irmae_dataset *ds, float *out, const int *idx, int count)
{
    size_t per;
    int i;
    if (!ds || (count > 0 && (!idx || !out)) || count < 0)
        return irmae__fail(IRMAE_ERR_ARG, "gather: NULL pointer or count %d < 0", count);
    if (count == 0) return IRMAE_OK;
    if (!ds->x) return irmae__fail(IRMAE_ERR_ARG, "gather: empty data set");
    for (i = 0; i < count; i++)
        if (idx[i] < 0 || idx[i] >= ds->n)
            return irmae__fail(IRMAE_ERR_ARG, "gather: idx[%d] = %d outside 0..%d", i, idx[i], ds->n - 1);
    per = (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
    for (i = 0; i < count; i++)
        memcpy(out + (size_t)i * per, ds->x + (size_t)idx[i] * per, per * sizeof(float));
    return IRMAE_OK;
}

#ifndef IRMAE_NO_WRITERS
/* ---------------------------------------------------------------------- */
/* Data: DEFLATE / zlib compression, PNG writing                 @deflate */
/* ---------------------------------------------------------------------- */

/* Growable output buffer with an LSB-first bit accumulator (DEFLATE packs
   bits starting at the least significant bit of each byte). An allocation
   failure is sticky in `err`, so the writers need not check every call. */
typedef struct irmae__bitw {
    unsigned char *buf;
    size_t len, cap;
    uint64_t acc;   /* pending bits, oldest at bit 0 */
    int nacc;       /* number of pending bits (< 32 between calls) */
    int err;
    size_t hint;    /* if nonzero: the output should not exceed this, so grow no further */
} irmae__bitw;

static int irmae__bitw_reserve(irmae__bitw *w, size_t extra)
{
    size_t need, ncap;
    unsigned char *nb;
    if (w->err) return 0;
    if (extra > (size_t)-1 - w->len) { w->err = 1; return 0; }
    need = w->len + extra;
    if (need <= w->cap) return 1;
    ncap = w->cap ? w->cap : 1024;
    while (ncap < need) {
        if (ncap > (size_t)-1 / 2) { ncap = need; break; }
        ncap *= 2;
    }
    if (w->hint && need <= w->hint && ncap > w->hint) ncap = w->hint;
    nb = (unsigned char *)irmae__alloc(ncap, 1);
    if (!nb) { w->err = 1; return 0; }
    if (w->len) memcpy(nb, w->buf, w->len);
    irmae__free(w->buf);
    w->buf = nb;
    w->cap = ncap;
    return 1;
}

/* Appends the n (<= 32) low bits of `bits`; bits above n must be zero. */
static void irmae__bitw_bits(irmae__bitw *w, uint32_t bits, int n)
{
    w->acc |= (uint64_t)bits << w->nacc;
    w->nacc += n;
    if (w->nacc >= 32) {
        if (w->len + 4 <= w->cap || irmae__bitw_reserve(w, 4)) {
            unsigned char *p = w->buf + w->len;
            p[0] = (unsigned char)(w->acc & 0xFF);
            p[1] = (unsigned char)((w->acc >> 8) & 0xFF);
            p[2] = (unsigned char)((w->acc >> 16) & 0xFF);
            p[3] = (unsigned char)((w->acc >> 24) & 0xFF);
            w->len += 4;
        }
        w->acc >>= 32;
        w->nacc -= 32;
    }
}

/* Flushes pending bits, padding the last byte with zero bits. */
static void irmae__bitw_align(irmae__bitw *w)
{
    while (w->nacc > 0) {
        if (irmae__bitw_reserve(w, 1)) w->buf[w->len++] = (unsigned char)(w->acc & 0xFF);
        w->acc >>= 8;
        w->nacc -= 8;
    }
    w->acc = 0;
    w->nacc = 0;
}

/* Appends whole bytes; the writer must be byte aligned. */
static void irmae__bitw_bytes(irmae__bitw *w, const unsigned char *p, size_t n)
{
    if (n && irmae__bitw_reserve(w, n)) {
        memcpy(w->buf + w->len, p, n);
        w->len += n;
    }
}

#define IRMAE__DEF_HASH_BITS 16
#define IRMAE__DEF_WSIZE 32768u            /* window: largest DEFLATE distance */
#define IRMAE__DEF_WMASK (IRMAE__DEF_WSIZE - 1u)
#define IRMAE__DEF_BLOCK 16384             /* LZ77 symbols per block */
#define IRMAE__DEF_MAXLEAF 288

/* Base values and extra-bit counts of the length codes 257..285 and of the
   distance codes 0..29 (RFC 1951, 3.2.5). */
static const unsigned short irmae__def_lbase[29] = {
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
    35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258 };
static const unsigned char irmae__def_lextra[29] = {
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
    3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0 };
static const unsigned short irmae__def_dbase[30] = {
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
    257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577 };
static const unsigned char irmae__def_dextra[30] = {
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
    7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13 };
/* Order in which the code-length code lengths are sent. */
static const unsigned char irmae__def_clorder[19] = {
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15 };

/* Match-finder settings per level: a match at least `good` long quarters the
   next search; `lazy` = 0 means greedy parsing, otherwise a match at least
   `lazy` long is taken without trying the next position; the search stops at
   a match `nice` long or after `chain` candidates. */
static const unsigned short irmae__def_cfg[10][4] = {
    /* good lazy nice chain */
    {  0,   0,   0,    0 },  /* 0: stored only */
    {  4,   0,   8,    4 },
    {  4,   0,  16,    8 },
    {  4,   0,  32,   32 },
    {  4,   4,  16,   16 },
    {  8,  16,  32,   32 },
    {  8,  16, 128,  128 },
    {  8,  32, 128,  256 },
    { 32, 128, 258, 1024 },
    { 32, 258, 258, 4096 } };

/* Package-merge list item: sym >= 0 is a leaf, -1 a package of two items of
   the previous list. */
typedef struct irmae__pm_item { uint32_t w; int sym; } irmae__pm_item;

typedef struct irmae__deflate {
    size_t head[1u << IRMAE__DEF_HASH_BITS];   /* newest position + 1 per hash, 0 = none */
    size_t prev[IRMAE__DEF_WSIZE];             /* previous position + 1 with the same hash */
    unsigned short sym_l[IRMAE__DEF_BLOCK];    /* literal byte or match length */
    unsigned short sym_d[IRMAE__DEF_BLOCK];    /* 0 for a literal, else distance */
    size_t nsym;
    int have_pend;                             /* stored bytes waiting to be written */
    size_t pend_start, pend_end;
    unsigned char len_code[259];               /* match length -> length code - 257 */
    unsigned char dist_lo[256], dist_hi[256];  /* distance - 1 (< 256, or >> 7) -> code */
    unsigned char fix_llen[288], fix_dlen[30];
    unsigned short fix_lcode[288], fix_dcode[30];
    irmae__pm_item leaves[IRMAE__DEF_MAXLEAF];
    irmae__pm_item pm[15][2 * IRMAE__DEF_MAXLEAF];
} irmae__deflate;

/* Optimal code lengths (at most `limit` bits) for the n frequencies, by the
   package-merge algorithm. At least two symbols always get a code (unused
   ones are given weight 1), so every code is complete, as zlib's inflate
   demands. len[] receives 0 for unused symbols. */
static void irmae__huff_lengths(irmae__deflate *s, const uint32_t *freq, int n, int limit,
                                unsigned char *len)
{
    irmae__pm_item *lv = s->leaves, t;
    int m = 0, i, j, keep, cnt, sel;
    memset(len, 0, (size_t)n);
    for (i = 0; i < n; i++)
        if (freq[i]) { lv[m].w = freq[i]; lv[m].sym = i; m++; }
    for (i = 0; m < 2 && i < n; i++)
        if (!freq[i]) { lv[m].w = 1; lv[m].sym = i; m++; }
    for (i = 1; i < m; i++) {   /* insertion sort by (weight, symbol) */
        t = lv[i];
        for (j = i; j > 0 && (lv[j - 1].w > t.w || (lv[j - 1].w == t.w && lv[j - 1].sym > t.sym)); j--)
            lv[j] = lv[j - 1];
        lv[j] = t;
    }
    keep = 2 * m - 2;
    memcpy(s->pm[0], lv, (size_t)m * sizeof *lv);
    cnt = m;
    for (j = 1; j < limit; j++) {
        const irmae__pm_item *pl = s->pm[j - 1];
        irmae__pm_item *cl = s->pm[j];
        int np = cnt / 2, a = 0, b = 0, k = 0;
        while (k < keep && (a < m || b < np)) {
            uint32_t pw = b < np ? pl[2 * b].w + pl[2 * b + 1].w : 0;
            if (a < m && (b >= np || lv[a].w <= pw)) cl[k++] = lv[a++];
            else { cl[k].w = pw; cl[k].sym = -1; k++; b++; }
        }
        cnt = k;
    }
    /* The first 2m - 2 items of the last list are selected; a selected
       package selects its two items in the list below. A symbol's code
       length is the number of its selected leaves. */
    sel = keep < cnt ? keep : cnt;
    for (j = limit - 1; j >= 0; j--) {
        const irmae__pm_item *cl = s->pm[j];
        int np = 0;
        for (i = 0; i < sel; i++) {
            if (cl[i].sym >= 0) len[cl[i].sym]++;
            else np++;
        }
        sel = 2 * np;
    }
}

/* Canonical Huffman codes from lengths, bit-reversed for LSB-first output. */
static void irmae__huff_codes(const unsigned char *len, int n, unsigned short *code)
{
    int count[16], next[16], i, b, c = 0;
    memset(count, 0, sizeof count);
    for (i = 0; i < n; i++) count[len[i]]++;
    count[0] = 0;
    next[0] = 0;
    for (b = 1; b < 16; b++) { c = (c + count[b - 1]) << 1; next[b] = c; }
    for (i = 0; i < n; i++) {
        int l = len[i], v, r = 0;
        code[i] = 0;
        if (!l) continue;
        v = next[l]++;
        for (b = 0; b < l; b++) { r = (r << 1) | (v & 1); v >>= 1; }
        code[i] = (unsigned short)r;
    }
}

static void irmae__deflate_init(irmae__deflate *s)
{
    int i, c;
    for (c = 0; c < 29; c++) {
        int hi = c == 28 ? 258 : irmae__def_lbase[c] + (1 << irmae__def_lextra[c]) - 1;
        for (i = irmae__def_lbase[c]; i <= hi; i++) s->len_code[i] = (unsigned char)c;
    }
    for (c = 0; c < 30; c++) {
        int lo = irmae__def_dbase[c] - 1, hi = lo + (1 << irmae__def_dextra[c]);
        for (i = lo; i < hi; i++) {
            if (i < 256) s->dist_lo[i] = (unsigned char)c;
            else s->dist_hi[i >> 7] = (unsigned char)c;
        }
    }
    for (i = 0; i < 288; i++) s->fix_llen[i] = (unsigned char)(i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8);
    for (i = 0; i < 30; i++) s->fix_dlen[i] = 5;
    irmae__huff_codes(s->fix_llen, 288, s->fix_lcode);
    irmae__huff_codes(s->fix_dlen, 30, s->fix_dcode);
}

static int irmae__deflate_dcode(const irmae__deflate *s, unsigned dist)
{
    return dist <= 256 ? s->dist_lo[dist - 1] : s->dist_hi[(dist - 1) >> 7];
}

/* Stored blocks for p[0..n) (n == 0 gives one empty block); BFINAL on the
   last one when `last`. */
static void irmae__deflate_stored(irmae__bitw *w, const unsigned char *p, size_t n, int last)
{
    do {
        size_t k = n < 65535 ? n : 65535;
        unsigned char hdr[4];
        irmae__bitw_bits(w, (last && k == n) ? 1u : 0u, 3); /* BFINAL, BTYPE = 00 */
        irmae__bitw_align(w);
        hdr[0] = (unsigned char)(k & 0xFF); hdr[1] = (unsigned char)(k >> 8);
        hdr[2] = (unsigned char)(~k & 0xFF); hdr[3] = (unsigned char)((~k >> 8) & 0xFF);
        irmae__bitw_bytes(w, hdr, 4);
        irmae__bitw_bytes(w, p, k);
        p += k;
        n -= k;
    } while (n > 0);
}

static uint64_t irmae__deflate_nchunks(size_t n) { return n == 0 ? 1 : (uint64_t)((n - 1) / 65535 + 1); }

/* Writes the Huffman-coded symbols of the current block. */
static void irmae__deflate_symbols(const irmae__deflate *s, irmae__bitw *w,
                                   const unsigned char *llen, const unsigned short *lcode,
                                   const unsigned char *dlen, const unsigned short *dcode)
{
    size_t t;
    for (t = 0; t < s->nsym; t++) {
        unsigned lv = s->sym_l[t], dv = s->sym_d[t];
        if (!dv) { irmae__bitw_bits(w, lcode[lv], llen[lv]); continue; }
        {
            int lc = s->len_code[lv], dc = irmae__deflate_dcode(s, dv);
            irmae__bitw_bits(w, lcode[257 + lc], llen[257 + lc]);
            if (irmae__def_lextra[lc]) irmae__bitw_bits(w, lv - irmae__def_lbase[lc], irmae__def_lextra[lc]);
            irmae__bitw_bits(w, dcode[dc], dlen[dc]);
            if (irmae__def_dextra[dc]) irmae__bitw_bits(w, dv - irmae__def_dbase[dc], irmae__def_dextra[dc]);
        }
    }
    irmae__bitw_bits(w, lcode[256], llen[256]);
}

/* Ends the current block, which holds s->nsym symbols covering src[bstart..bend):
   writes it as fixed Huffman, dynamic Huffman or (merged into a run of)
   stored blocks, whichever costs the fewest bits. */
static void irmae__deflate_block(irmae__deflate *s, irmae__bitw *w, const unsigned char *src,
                                 size_t bstart, size_t bend, int last)
{
    uint32_t lf[286], df[30], cf[19];
    unsigned char ll[286], dl[30], cll[19], all[316], rle_sym[316], rle_extra[316];
    unsigned short lc[286], dc[30], clc[19];
    uint64_t xbits = 0, fixed_bits, dyn_bits, stored_bits, blen = (uint64_t)(bend - bstart);
    int hlit, hdist, hclen, nrle = 0, total, i;
    size_t t;

    memset(lf, 0, sizeof lf); memset(df, 0, sizeof df); memset(cf, 0, sizeof cf);
    for (t = 0; t < s->nsym; t++) {
        unsigned lv = s->sym_l[t], dv = s->sym_d[t];
        if (!dv) { lf[lv]++; continue; }
        {
            int l = s->len_code[lv], d = irmae__deflate_dcode(s, dv);
            lf[257 + l]++; df[d]++;
            xbits += irmae__def_lextra[l] + irmae__def_dextra[d];
        }
    }
    lf[256] = 1;

    /* fixed Huffman */
    fixed_bits = 3 + xbits;
    for (i = 0; i < 286; i++) fixed_bits += (uint64_t)lf[i] * s->fix_llen[i];
    for (i = 0; i < 30; i++) fixed_bits += (uint64_t)df[i] * 5;

    /* dynamic Huffman: code lengths, then the run-length coded header */
    irmae__huff_lengths(s, lf, 286, 15, ll);
    irmae__huff_lengths(s, df, 30, 15, dl);
    for (hlit = 286; hlit > 257 && !ll[hlit - 1]; hlit--) {}
    for (hdist = 30; hdist > 1 && !dl[hdist - 1]; hdist--) {}
    memcpy(all, ll, (size_t)hlit);
    memcpy(all + hlit, dl, (size_t)hdist);
    total = hlit + hdist;
    for (i = 0; i < total;) {
        int v = all[i], run = 1, r;
        while (i + run < total && all[i + run] == v) run++;
        i += run;
        if (v == 0) {
            r = run;
            while (r >= 11) {
                int k = r < 138 ? r : 138;
                rle_sym[nrle] = 18; rle_extra[nrle++] = (unsigned char)(k - 11); r -= k;
            }
            if (r >= 3) { rle_sym[nrle] = 17; rle_extra[nrle++] = (unsigned char)(r - 3); r = 0; }
            while (r-- > 0) { rle_sym[nrle] = 0; rle_extra[nrle++] = 0; }
        } else {
            rle_sym[nrle] = (unsigned char)v; rle_extra[nrle++] = 0;
            r = run - 1;
            while (r >= 3) {
                int k = r < 6 ? r : 6;
                rle_sym[nrle] = 16; rle_extra[nrle++] = (unsigned char)(k - 3); r -= k;
            }
            while (r-- > 0) { rle_sym[nrle] = (unsigned char)v; rle_extra[nrle++] = 0; }
        }
    }
    for (i = 0; i < nrle; i++) cf[rle_sym[i]]++;
    irmae__huff_lengths(s, cf, 19, 7, cll);
    for (hclen = 19; hclen > 4 && !cll[irmae__def_clorder[hclen - 1]]; hclen--) {}
    dyn_bits = 3 + 14 + 3 * (uint64_t)hclen + xbits;
    for (i = 0; i < nrle; i++)
        dyn_bits += cll[rle_sym[i]] + (rle_sym[i] == 16 ? 2 : rle_sym[i] == 17 ? 3 : rle_sym[i] == 18 ? 7 : 0);
    for (i = 0; i < 286; i++) dyn_bits += (uint64_t)lf[i] * ll[i];
    for (i = 0; i < 30; i++) dyn_bits += (uint64_t)df[i] * dl[i];

    /* stored: extending a pending run costs only the new bytes (and headers
       of any extra 65535-byte pieces) */
    if (s->have_pend) {
        size_t plen = s->pend_end - s->pend_start;
        stored_bits = 8 * blen + 40 * (irmae__deflate_nchunks(plen + (size_t)blen) - irmae__deflate_nchunks(plen));
    } else {
        uint64_t pos = (uint64_t)w->len * 8 + (uint64_t)w->nacc;
        stored_bits = 3 + (8 - (pos + 3) % 8) % 8 + 32 + 8 * blen + 40 * (irmae__deflate_nchunks((size_t)blen) - 1);
    }

    if (stored_bits < fixed_bits && stored_bits < dyn_bits) {
        if (!s->have_pend) { s->have_pend = 1; s->pend_start = bstart; }
        s->pend_end = bend;
        if (last) {
            irmae__deflate_stored(w, src + s->pend_start, s->pend_end - s->pend_start, 1);
            s->have_pend = 0;
        }
    } else {
        if (s->have_pend) {
            irmae__deflate_stored(w, src + s->pend_start, s->pend_end - s->pend_start, 0);
            s->have_pend = 0;
        }
        if (fixed_bits <= dyn_bits) {
            irmae__bitw_bits(w, last ? 3u : 2u, 3); /* BFINAL, BTYPE = 01 */
            irmae__deflate_symbols(s, w, s->fix_llen, s->fix_lcode, s->fix_dlen, s->fix_dcode);
        } else {
            irmae__huff_codes(ll, 286, lc);
            irmae__huff_codes(dl, 30, dc);
            irmae__huff_codes(cll, 19, clc);
            irmae__bitw_bits(w, last ? 5u : 4u, 3); /* BFINAL, BTYPE = 10 */
            irmae__bitw_bits(w, (uint32_t)(hlit - 257), 5);
            irmae__bitw_bits(w, (uint32_t)(hdist - 1), 5);
            irmae__bitw_bits(w, (uint32_t)(hclen - 4), 4);
            for (i = 0; i < hclen; i++) irmae__bitw_bits(w, cll[irmae__def_clorder[i]], 3);
            for (i = 0; i < nrle; i++) {
                int sym = rle_sym[i];
                irmae__bitw_bits(w, clc[sym], cll[sym]);
                if (sym >= 16) irmae__bitw_bits(w, rle_extra[i], sym == 16 ? 2 : sym == 17 ? 3 : 7);
            }
            irmae__deflate_symbols(s, w, ll, lc, dl, dc);
        }
    }
    s->nsym = 0;
}

#define IRMAE__DEF_HASH(p) \
    ((uint32_t)((((uint32_t)(p)[0] << 16) | ((uint32_t)(p)[1] << 8) | (uint32_t)(p)[2]) * 2654435761u) \
     >> (32 - IRMAE__DEF_HASH_BITS))

static void irmae__deflate_insert(irmae__deflate *s, const unsigned char *src, size_t p)
{
    uint32_t h = IRMAE__DEF_HASH(src + p);
    s->prev[p & IRMAE__DEF_WMASK] = s->head[h];
    s->head[h] = p + 1;
}

/* Longest match for position i (already inserted) longer than `best`, among
   at most `chain` earlier positions within 32 KiB. Returns its length (0 if
   none) and sets *dist. */
static unsigned irmae__deflate_find(const irmae__deflate *s, const unsigned char *src, size_t n,
                                    size_t i, unsigned best, unsigned chain, unsigned nice,
                                    unsigned *dist)
{
    const unsigned char *cur = src + i;
    size_t cand = s->prev[i & IRMAE__DEF_WMASK];
    unsigned maxlen = n - i < 258 ? (unsigned)(n - i) : 258u, found = 0;
    if (nice > maxlen) nice = maxlen;
    if (best >= maxlen) return 0;
    while (cand && chain--) {
        size_t c = cand - 1, d = i - c;
        const unsigned char *m = src + c;
        if (d > IRMAE__DEF_WSIZE) break;
        if (m[best] == cur[best] && m[best - 1] == cur[best - 1] && m[0] == cur[0] && m[1] == cur[1]) {
            unsigned l = 2;
            while (l < maxlen && m[l] == cur[l]) l++;
            if (l > best) {
                best = l; *dist = (unsigned)d; found = 1;
                if (l >= nice) break;
            }
        }
        /* the slot of a position exactly one window back now belongs to i */
        if (d == IRMAE__DEF_WSIZE) break;
        cand = s->prev[c & IRMAE__DEF_WMASK];
    }
    if (!found || (best == 3 && *dist > 4096)) return 0; /* a far 3-match rarely pays */
    return best;
}

static void irmae__deflate_emit(irmae__deflate *s, irmae__bitw *w, const unsigned char *src,
                                unsigned l, unsigned d, size_t *bstart, size_t done)
{
    s->sym_l[s->nsym] = (unsigned short)l;
    s->sym_d[s->nsym] = (unsigned short)d;
    if (++s->nsym == IRMAE__DEF_BLOCK) {
        irmae__deflate_block(s, w, src, *bstart, done, 0);
        *bstart = done;
    }
}

/* The whole raw DEFLATE stream of src[0..n) at level 0..9. */
static void irmae__deflate_run(irmae__deflate *s, irmae__bitw *w, const unsigned char *src, size_t n, int level)
{
    unsigned good, lazy, nice, chain, plen = 0, pdist = 0;
    size_t i = 0, bstart = 0, p;
    int pending = 0;
    if (level == 0) { irmae__deflate_stored(w, src, n, 1); return; }
    good = irmae__def_cfg[level][0]; lazy = irmae__def_cfg[level][1];
    nice = irmae__def_cfg[level][2]; chain = irmae__def_cfg[level][3];
    irmae__deflate_init(s);
    while (i < n && !w->err) {
        unsigned len = 0, dist = 0;
        if (n - i >= 3) {
            irmae__deflate_insert(s, src, i);
            if (pending && plen >= 3)
                len = irmae__deflate_find(s, src, n, i, plen, plen >= good ? chain >> 2 : chain, nice, &dist);
            else
                len = irmae__deflate_find(s, src, n, i, 2, chain, nice, &dist);
        }
        if (pending) {
            if (plen >= 3 && len <= plen) { /* the match at i - 1 wins */
                size_t end = i - 1 + plen;
                for (p = i + 1; p < end; p++)
                    if (n - p >= 3) irmae__deflate_insert(s, src, p);
                irmae__deflate_emit(s, w, src, plen, pdist, &bstart, end);
                i = end;
                pending = 0;
                continue;
            }
            irmae__deflate_emit(s, w, src, src[i - 1], 0, &bstart, i);
            pending = 0;
        }
        if (len >= 3 && (lazy == 0 || len >= lazy)) {
            size_t end = i + len;
            for (p = i + 1; p < end; p++)
                if (n - p >= 3) irmae__deflate_insert(s, src, p);
            irmae__deflate_emit(s, w, src, len, dist, &bstart, end);
            i = end;
        } else {
            pending = 1; plen = len; pdist = dist;
            i++;
        }
    }
    if (w->err) return;
    if (pending) irmae__deflate_emit(s, w, src, src[n - 1], 0, &bstart, n); /* a literal: a match
        pending at n - 1 would be shorter than 3 */
    irmae__deflate_block(s, w, src, bstart, n, 1);
}

/* An upper bound of the raw DEFLATE size of n bytes (levels 0..9): every
   block costs at most what storing it would (5 bytes per 65535-byte piece
   plus up to 1 byte of padding per run of stored blocks), and every block
   but the last covers at least IRMAE__DEF_BLOCK bytes. Saturates. */
static size_t irmae__deflate_bound(size_t n)
{
    size_t extra = 6 * (n / IRMAE__DEF_BLOCK + 1) + 5 * (n / 65535 + 1) + 16;
    return n > (size_t)-1 - extra ? (size_t)-1 : n + extra;
}

/* Compresses into w (which may already hold a header); zlib = 1 adds the
   zlib header and trailer. Returns a status. */
static int irmae__compress(irmae__bitw *w, const void *src, size_t size, int level, int zlib,
                           const char *who)
{
    irmae__deflate *s = NULL;
    if (level == -1) level = 6;
    if (level < 0 || level > 9) return irmae__fail(IRMAE_ERR_ARG, "%s: level %d not in -1..9", who, level);
    if (!src && size) return irmae__fail(IRMAE_ERR_ARG, "%s: src is NULL with size %lu", who, (unsigned long)size);
    if (!irmae__bitw_reserve(w, size / 8 + 64))
        return irmae__fail(IRMAE_ERR_NOMEM, "%s: output buffer for %lu bytes", who, (unsigned long)size);
    if (zlib) {
        unsigned cmf = 0x78, flg = (unsigned)(level <= 1 ? 0 : level <= 5 ? 1 : level == 6 ? 2 : 3) << 6;
        unsigned char hdr[2];
        flg += (31 - (cmf * 256 + flg) % 31) % 31;
        hdr[0] = (unsigned char)cmf; hdr[1] = (unsigned char)flg;
        irmae__bitw_bytes(w, hdr, 2);
    }
    if (level > 0) {
        s = (irmae__deflate *)irmae__alloc(1, sizeof *s);
        if (!s) return irmae__fail(IRMAE_ERR_NOMEM, "%s: match-finder tables", who);
    }
    irmae__deflate_run(s, w, (const unsigned char *)src, size, level);
    irmae__free(s);
    irmae__bitw_align(w);
    if (zlib) {
        uint32_t a = irmae_adler32(1, src, size);
        unsigned char tr[4];
        tr[0] = (unsigned char)(a >> 24); tr[1] = (unsigned char)((a >> 16) & 0xFF);
        tr[2] = (unsigned char)((a >> 8) & 0xFF); tr[3] = (unsigned char)(a & 0xFF);
        irmae__bitw_bytes(w, tr, 4);
    }
    if (w->err) return irmae__fail(IRMAE_ERR_NOMEM, "%s: output buffer for %lu bytes", who, (unsigned long)size);
    return IRMAE_OK;
}

static int irmae__compress_api(const void *src, size_t size, int level, unsigned char **out,
                               size_t *out_size, int zlib, const char *who)
{
    irmae__bitw w;
    int rc;
    if (out) *out = NULL;
    if (out_size) *out_size = 0;
    if (!out || !out_size) return irmae__fail(IRMAE_ERR_ARG, "%s: out or out_size is NULL", who);
    memset(&w, 0, sizeof w);
    w.hint = irmae__deflate_bound(size);
    if (w.hint < (size_t)-1 - 6) w.hint += 6;
    rc = irmae__compress(&w, src, size, level, zlib, who);
    if (rc) { irmae__free(w.buf); return rc; }
    *out = w.buf;
    *out_size = w.len;
    return IRMAE_OK;
}

IRMAEDEF int irmae_deflate(unsigned char **out, size_t *out_size, const void *src, size_t size, int level)
{
    return irmae__compress_api(src, size, level, out, out_size, 0, "deflate");
}

IRMAEDEF int irmae_zlib_compress(unsigned char **out, size_t *out_size, const void *src, size_t size, int level)
{
    return irmae__compress_api(src, size, level, out, out_size, 1, "zlib_compress");
}

IRMAEDEF void irmae_free_buffer(void *p) { irmae__free(p); }

static void irmae__put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)((v >> 16) & 0xFF);
    p[2] = (unsigned char)((v >> 8) & 0xFF); p[3] = (unsigned char)(v & 0xFF);
}

/* Writes one PNG chunk at p (12 + n bytes); returns the end. */
static unsigned char *irmae__png_chunk(unsigned char *p, const char *type, const unsigned char *data, size_t n)
{
    irmae__put_be32(p, (uint32_t)n);
    memcpy(p + 4, type, 4);
    if (n) memcpy(p + 8, data, n);
    irmae__put_be32(p + 8 + n, irmae_crc32(0, p + 4, n + 4));
    return p + 12 + n;
}

static int irmae__paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc) return a;
    return pb <= pc ? b : c;
}

/* |x| of a filtered byte read as a signed 8-bit value */
#define IRMAE__ABS8(x) ((unsigned)((x) & 0xFF) < 128u ? (unsigned)((x) & 0xFF) : 256u - (unsigned)((x) & 0xFF))

#define IRMAE__PNG_IDAT_MAX 65536u

IRMAEDEF int irmae_png_encode(unsigned char **out, size_t *out_size, const unsigned char *pixels, int w, int h, int c)
{
    static const unsigned char sig[8] = { 137, 80, 78, 71, 13, 10, 26, 10 };
    static const unsigned char ctype[5] = { 0, 0, 4, 2, 6 };
    static const unsigned char zeros[33] = { 0 };
    size_t rowbytes, fsize, nidat, zlen, k;
    unsigned char *filt, *buf, *p, ihdr[13];
    irmae__bitw z;
    int y, rc;
    if (out) *out = NULL;
    if (out_size) *out_size = 0;
    if (!pixels || !out || !out_size) return irmae__fail(IRMAE_ERR_ARG, "png_encode: NULL pixels, out or out_size");
    if (w <= 0 || h <= 0) return irmae__fail(IRMAE_ERR_ARG, "png_encode: size %d x %d", w, h);
    if (c < 1 || c > 4) return irmae__fail(IRMAE_ERR_ARG, "png_encode: %d channels (1..4)", c);
    if (!irmae__mul(&rowbytes, (size_t)w, (size_t)c) || rowbytes >= (size_t)PTRDIFF_MAX ||
        !irmae__mul(&fsize, rowbytes + 1, (size_t)h) || fsize > (size_t)PTRDIFF_MAX / 2)
        return irmae__fail(IRMAE_ERR_OVERFLOW, "png_encode: %d x %d x %d image", w, h, c);
    filt = (unsigned char *)irmae__alloc(fsize, 1);
    if (!filt) return irmae__fail(IRMAE_ERR_NOMEM, "png_encode: %lu bytes of filtered rows", (unsigned long)fsize);

    /* Per row, the filter whose output has the smallest sum of |signed byte|. */
    IRMAE__OMP(parallel for schedule(static))
    for (y = 0; y < h; y++) {
        const unsigned char *row = pixels + (size_t)y * rowbytes;
        const unsigned char *up = y ? row - rowbytes : NULL;
        unsigned char *o = filt + (size_t)y * (rowbytes + 1);
        unsigned long sum[5] = { 0, 0, 0, 0, 0 };
        size_t x;
        int f, best = 0;
        for (x = 0; x < rowbytes; x++) {
            int v = row[x], a = x >= (size_t)c ? row[x - (size_t)c] : 0, b = up ? up[x] : 0;
            int cc = (up && x >= (size_t)c) ? up[x - (size_t)c] : 0;
            sum[0] += IRMAE__ABS8(v);
            sum[1] += IRMAE__ABS8(v - a);
            sum[2] += IRMAE__ABS8(v - b);
            sum[3] += IRMAE__ABS8(v - ((a + b) >> 1));
            sum[4] += IRMAE__ABS8(v - irmae__paeth(a, b, cc));
        }
        for (f = 1; f < 5; f++) if (sum[f] < sum[best]) best = f;
        o[0] = (unsigned char)best;
        for (x = 0; x < rowbytes; x++) {
            int v = row[x], a = x >= (size_t)c ? row[x - (size_t)c] : 0, b = up ? up[x] : 0;
            int cc = (up && x >= (size_t)c) ? up[x - (size_t)c] : 0, pred;
            switch (best) {
            case 0: pred = 0; break;
            case 1: pred = a; break;
            case 2: pred = b; break;
            case 3: pred = (a + b) >> 1; break;
            default: pred = irmae__paeth(a, b, cc); break;
            }
            o[1 + x] = (unsigned char)((v - pred) & 0xFF);
        }
    }

    /* The zlib stream is written after room for the signature, IHDR and the
       first IDAT header (41 bytes); the IDAT chunks are then framed in place,
       last chunk first, each moving up by 12 bytes per chunk before it. */
    memset(&z, 0, sizeof z);
    z.hint = irmae__deflate_bound(fsize);
    z.hint = z.hint > (size_t)-1 / 2 ? 0 : z.hint + 6 + 41 + 12 * (z.hint / IRMAE__PNG_IDAT_MAX + 2) + 16;
    irmae__bitw_bytes(&z, sig, 8); /* placeholder bytes, overwritten below */
    irmae__bitw_bytes(&z, zeros, 33);
    rc = z.err ? irmae__fail(IRMAE_ERR_NOMEM, "png_encode: output buffer")
               : irmae__compress(&z, filt, fsize, 6, 1, "png_encode");
    irmae__free(filt);
    if (rc) { irmae__free(z.buf); return rc; }
    zlen = z.len - 41;
    nidat = zlen / IRMAE__PNG_IDAT_MAX + (zlen % IRMAE__PNG_IDAT_MAX != 0);
    if (nidat > ((size_t)-1 - z.len) / 12 - 1 || !irmae__bitw_reserve(&z, 12 * nidat + 4)) {
        irmae__free(z.buf);
        return irmae__fail(IRMAE_ERR_NOMEM, "png_encode: %lu bytes of PNG", (unsigned long)(z.len + 12 * nidat + 4));
    }
    buf = z.buf;
    for (k = nidat; k-- > 0;) {
        size_t len = zlen - k * IRMAE__PNG_IDAT_MAX < IRMAE__PNG_IDAT_MAX ? zlen - k * IRMAE__PNG_IDAT_MAX : IRMAE__PNG_IDAT_MAX;
        unsigned char *d = buf + 33 + k * (IRMAE__PNG_IDAT_MAX + 12);
        memmove(d + 8, buf + 41 + k * IRMAE__PNG_IDAT_MAX, len);
        irmae__put_be32(d, (uint32_t)len);
        memcpy(d + 4, "IDAT", 4);
        irmae__put_be32(d + 8 + len, irmae_crc32(0, d + 4, len + 4));
    }
    memcpy(buf, sig, 8);
    irmae__put_be32(ihdr, (uint32_t)w);
    irmae__put_be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;              /* bit depth */
    ihdr[9] = ctype[c];       /* colour type */
    ihdr[10] = ihdr[11] = ihdr[12] = 0; /* deflate, adaptive filtering, no interlace */
    irmae__png_chunk(buf + 8, "IHDR", ihdr, 13);
    p = irmae__png_chunk(buf + 33 + 12 * nidat + zlen, "IEND", NULL, 0);
    *out = buf;
    *out_size = (size_t)(p - buf);
    return IRMAE_OK;
}

IRMAEDEF int irmae_png_write(const char *path, const unsigned char *pixels, int w, int h, int c)
{
    unsigned char *png;
    size_t n, wrote;
    FILE *f;
    int rc, bad;
    if (!path) return irmae__fail(IRMAE_ERR_ARG, "png_write: path is NULL");
    rc = irmae_png_encode(&png, &n, pixels, w, h, c);
    if (rc) return rc;
    f = fopen(path, "wb");
    if (!f) {
        irmae__free(png);
        return irmae__fail(IRMAE_ERR_IO, "png_write: cannot open '%s' for writing", path);
    }
    wrote = fwrite(png, 1, n, f);
    irmae__free(png);
    bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad || wrote != n)
        return irmae__fail(IRMAE_ERR_IO, "png_write: writing %lu bytes to '%s' failed (wrote %lu)",
                           (unsigned long)n, path, (unsigned long)wrote);
    return IRMAE_OK;
}

IRMAEDEF int irmae_png_write_grid(const char *path, const float *images, int count, int c,
                                  int h, int w, int cols, int pad, float lo, float hi)
{
    long long gw, gh;
    int rows, i, rc;
    size_t npix, gsize, plane;
    unsigned char *g;
    double scale;
    if (!path || !images) return irmae__fail(IRMAE_ERR_ARG, "png_write_grid: NULL path or images");
    if (count <= 0 || h <= 0 || w <= 0 || cols <= 0 || pad < 0)
        return irmae__fail(IRMAE_ERR_ARG, "png_write_grid: count %d, %d x %d, cols %d, pad %d",
                           count, h, w, cols, pad);
    if (c != 1 && c != 3) return irmae__fail(IRMAE_ERR_ARG, "png_write_grid: %d channels (1 or 3)", c);
    if (!(lo == lo && hi == hi) || lo - lo != 0.0f || hi - hi != 0.0f || lo == hi)
        return irmae__fail(IRMAE_ERR_ARG, "png_write_grid: value range [%g, %g]", (double)lo, (double)hi);
    if (!irmae__count(count, c, h, w))
        return irmae__fail(IRMAE_ERR_OVERFLOW, "png_write_grid: %d images of %d x %d x %d", count, c, h, w);
    if (cols > count) cols = count;
    rows = (count - 1) / cols + 1;
    gw = (long long)cols * w + (long long)(cols + 1) * pad;
    gh = (long long)rows * h + (long long)(rows + 1) * pad;
    if (gw > INT_MAX || gh > INT_MAX || !irmae__mul3(&gsize, (size_t)gw, (size_t)gh, (size_t)c))
        return irmae__fail(IRMAE_ERR_OVERFLOW, "png_write_grid: grid of %lld x %lld pixels", gw, gh);
    g = (unsigned char *)irmae__alloc(gsize, 1);
    if (!g) return irmae__fail(IRMAE_ERR_NOMEM, "png_write_grid: %lu bytes", (unsigned long)gsize);
    memset(g, 128, gsize);
    plane = (size_t)h * (size_t)w;
    npix = plane * (size_t)c;
    scale = 1.0 / ((double)hi - (double)lo);
    for (i = 0; i < count; i++) {
        const float *img = images + (size_t)i * npix;
        size_t x0 = (size_t)pad + (size_t)(i % cols) * (size_t)(w + pad);
        size_t y0 = (size_t)pad + (size_t)(i / cols) * (size_t)(h + pad);
        int ch, y, x;
        for (ch = 0; ch < c; ch++)
            for (y = 0; y < h; y++) {
                const float *src = img + (size_t)ch * plane + (size_t)y * (size_t)w;
                unsigned char *dst = g + ((y0 + (size_t)y) * (size_t)gw + x0) * (size_t)c + (size_t)ch;
                for (x = 0; x < w; x++) {
                    double t = ((double)src[x] - (double)lo) * scale;
                    if (!(t > 0.0)) t = 0.0; /* also NaN */
                    if (t > 1.0) t = 1.0;
                    dst[(size_t)x * (size_t)c] = (unsigned char)(t * 255.0 + 0.5);
                }
            }
    }
    rc = irmae_png_write(path, g, (int)gw, (int)gh, c);
    irmae__free(g);
    return rc;
}
#endif /* IRMAE_NO_WRITERS */
#ifndef IRMAE_NO_LOADERS
/* ---------------------------------------------------------------------- */
/* Data: loaders for untrusted files                             @loaders */
/* ---------------------------------------------------------------------- */

/* A big-endian integer from bytes (PNG, IDX). */
static uint32_t irmae__cd_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

/* The effective output limit of a decompressor: 0 and anything above
   IRMAE_MAX_ALLOC mean IRMAE_MAX_ALLOC. */
static size_t irmae__cd_limit(size_t max_out)
{
    return (max_out == 0 || max_out > (size_t)IRMAE_MAX_ALLOC) ? (size_t)IRMAE_MAX_ALLOC : max_out;
}

/* ---------------------------------------------------------------------- */
/* Inflate (RFC 1951)                                            @inflate */
/* ---------------------------------------------------------------------- */

/* Canonical Huffman decoding: a 10-bit lookup table resolves every code of
   at most 10 bits in one step; longer codes walk the canonical code one bit
   at a time using count[] and sym[]. */
#define IRMAE__INF_FAST 10

typedef struct irmae__inf_huff {
    uint16_t fast[1 << IRMAE__INF_FAST]; /* (length << 9) | symbol; 0 = not a short code */
    uint16_t count[16];                  /* number of codes of each length */
    uint16_t sym[288];                   /* symbols sorted by code */
} irmae__inf_huff;

typedef struct irmae__inf_out {
    unsigned char *p;
    size_t len, cap, limit;
} irmae__inf_out;

typedef struct irmae__inf {
    const unsigned char *src;
    size_t size, pos;   /* bytes of src, bytes moved into bitbuf so far */
    size_t base;        /* offset of src[0] in the caller's input, for messages */
    uint64_t bitbuf;    /* unread bits, LSB first (see irmae__inf_refill) */
    int bitcnt;
    const char *what;   /* "inflate", "zlib", "gzip", "png" */
    irmae__inf_out *o;
    int fixed_ready;
    irmae__inf_huff lit, dist, fixlit, fixdist;
} irmae__inf;

/* Byte offset (in the caller's input) of the next unread bit. */
static size_t irmae__inf_at(const irmae__inf *s)
{
    return s->base + s->pos - (size_t)(s->bitcnt / 8);
}

/* Tops bitbuf up to at least 56 bits while input lasts. With 8 bytes left
   it ORs in a whole 64-bit word and counts only the whole bytes that fit:
   the bits above bitcnt are then the next input bits, and ORing the same
   bytes in again at the same place later changes nothing. Near the end it
   goes byte by byte, and once the input is exhausted the bits above bitcnt
   are 0. */
static void irmae__inf_refill(irmae__inf *s)
{
    if (s->size - s->pos >= 8) {
        const unsigned char *p = s->src + s->pos;
        uint64_t v = (uint64_t)p[0] | ((uint64_t)p[1] << 8) | ((uint64_t)p[2] << 16) | ((uint64_t)p[3] << 24) |
                     ((uint64_t)p[4] << 32) | ((uint64_t)p[5] << 40) | ((uint64_t)p[6] << 48) | ((uint64_t)p[7] << 56);
        s->bitbuf |= v << s->bitcnt;
        s->pos += (size_t)((63 - s->bitcnt) >> 3);
        s->bitcnt |= 56;
        return;
    }
    while (s->bitcnt <= 56 && s->pos < s->size) {
        s->bitbuf |= (uint64_t)s->src[s->pos++] << s->bitcnt;
        s->bitcnt += 8;
    }
}

static int irmae__inf_trunc(const irmae__inf *s, const char *where)
{
    return irmae__fail(IRMAE_ERR_TRUNCATED, "%s: deflate data ends inside %s (input offset %lu)",
                       s->what, where, (unsigned long)(s->base + s->size));
}

/* Reads n <= 32 bits. */
static int irmae__inf_bits(irmae__inf *s, int n, unsigned *v, const char *where)
{
    if (s->bitcnt < n) irmae__inf_refill(s);
    if (s->bitcnt < n) return irmae__inf_trunc(s, where);
    *v = (unsigned)(s->bitbuf & ((((uint64_t)1) << n) - 1));
    s->bitbuf >>= n;
    s->bitcnt -= n;
    return IRMAE_OK;
}

/* Builds a decoder for n code lengths. kind: 0 code-length code, 1 literal/
   length, 2 distance. Checks the code as zlib does. */
static int irmae__inf_build(irmae__inf *s, irmae__inf_huff *h, const unsigned char *lens, int n, int kind)
{
    static const char *const names[3] = { "code-length", "literal/length", "distance" };
    uint16_t offs[17];
    int len, i, left, maxlen = 0, idx;
    unsigned code;
    memset(h->count, 0, sizeof h->count);
    for (i = 0; i < n; i++) h->count[lens[i]]++;
    h->count[0] = 0;
    left = 1;
    for (len = 1; len <= 15; len++) {
        left = left * 2 - h->count[len];
        if (left < 0)
            return irmae__fail(IRMAE_ERR_FORMAT, "%s: over-subscribed %s code (too many codes of length %d) in the block header before offset %lu",
                               s->what, names[kind], len, (unsigned long)irmae__inf_at(s));
        if (h->count[len]) maxlen = len;
    }
    if (left > 0 && (kind == 0 || maxlen > 1))
        return irmae__fail(IRMAE_ERR_FORMAT, "%s: incomplete %s code in the block header before offset %lu",
                           s->what, names[kind], (unsigned long)irmae__inf_at(s));
    offs[1] = 0;
    for (len = 1; len < 16; len++) offs[len + 1] = (uint16_t)(offs[len] + h->count[len]);
    for (i = 0; i < n; i++)
        if (lens[i]) h->sym[offs[lens[i]]++] = (uint16_t)i;
    memset(h->fast, 0, sizeof h->fast);
    code = 0; idx = 0;
    for (len = 1; len <= IRMAE__INF_FAST; len++) {
        for (i = 0; i < h->count[len]; i++, idx++, code++) {
            unsigned rev = 0, c = code, e;
            int k;
            for (k = 0; k < len; k++) { rev = (rev << 1) | (c & 1); c >>= 1; }
            for (e = rev; e < (1u << IRMAE__INF_FAST); e += 1u << len)
                h->fast[e] = (uint16_t)((len << 9) | h->sym[idx]);
        }
        code <<= 1;
    }
    return IRMAE_OK;
}

/* Decodes one symbol; returns it (>= 0) or a negative error. */
static int irmae__inf_decode(irmae__inf *s, const irmae__inf_huff *h, const char *where)
{
    unsigned e;
    int len, code, first, index, count;
    if (s->bitcnt < 15) irmae__inf_refill(s);
    e = h->fast[s->bitbuf & ((1u << IRMAE__INF_FAST) - 1)];
    if (e) {
        len = (int)(e >> 9);
        if (len > s->bitcnt) return irmae__inf_trunc(s, where);
        s->bitbuf >>= len;
        s->bitcnt -= len;
        return (int)(e & 511);
    }
    code = first = index = 0;
    for (len = 1; len <= 15; len++) {
        if (len > s->bitcnt) return irmae__inf_trunc(s, where);
        code |= (int)((s->bitbuf >> (len - 1)) & 1);
        count = h->count[len];
        if (code - first < count) {
            s->bitbuf >>= len;
            s->bitcnt -= len;
            return h->sym[index + code - first];
        }
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return irmae__fail(IRMAE_ERR_FORMAT, "%s: invalid %s code (unused bit pattern of an incomplete code) at offset %lu",
                       s->what, where, (unsigned long)irmae__inf_at(s));
}

/* Makes room for `need` more output bytes. */
static int irmae__inf_room(irmae__inf *s, size_t need)
{
    irmae__inf_out *o = s->o;
    size_t want, ncap;
    unsigned char *np;
    if (need > o->limit - o->len)
        return irmae__fail(IRMAE_ERR_LIMIT, "%s: output exceeds the limit of %lu bytes (input offset %lu)",
                           s->what, (unsigned long)o->limit, (unsigned long)irmae__inf_at(s));
    want = o->len + need;
    if (want <= o->cap) return IRMAE_OK;
    ncap = o->cap ? o->cap : 4096;
    while (ncap < want) ncap = ncap > o->limit / 2 ? o->limit : ncap * 2;
    if (ncap > o->limit) ncap = o->limit;
    np = (unsigned char *)irmae__alloc(ncap, 1);
    if (!np) return irmae__fail(IRMAE_ERR_NOMEM, "%s: output buffer of %lu bytes", s->what, (unsigned long)ncap);
    if (o->len) memcpy(np, o->p, o->len);
    irmae__free(o->p);
    o->p = np;
    o->cap = ncap;
    return IRMAE_OK;
}

static int irmae__inf_stored(irmae__inf *s)
{
    size_t n;
    unsigned len, nlen;
    int rc;
    /* skip to the byte boundary, then hand the whole bytes back to src */
    s->bitbuf >>= s->bitcnt & 7;
    s->bitcnt -= s->bitcnt & 7;
    s->pos -= (size_t)(s->bitcnt / 8);
    s->bitbuf = 0;
    s->bitcnt = 0;
    if (s->size - s->pos < 4) return irmae__inf_trunc(s, "a stored block header");
    len = (unsigned)s->src[s->pos] | ((unsigned)s->src[s->pos + 1] << 8);
    nlen = (unsigned)s->src[s->pos + 2] | ((unsigned)s->src[s->pos + 3] << 8);
    if (len != (~nlen & 0xFFFFu))
        return irmae__fail(IRMAE_ERR_FORMAT, "%s: stored block LEN %u does not match NLEN %u at offset %lu",
                           s->what, len, nlen, (unsigned long)(s->base + s->pos));
    s->pos += 4;
    n = len;
    if (s->size - s->pos < n) return irmae__inf_trunc(s, "a stored block");
    if ((rc = irmae__inf_room(s, n)) != 0) return rc;
    if (n) memcpy(s->o->p + s->o->len, s->src + s->pos, n);
    s->o->len += n;
    s->pos += n;
    return IRMAE_OK;
}

static int irmae__inf_codes(irmae__inf *s, const irmae__inf_huff *lit, const irmae__inf_huff *dist)
{
    static const uint16_t lbase[29] = { 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                        35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258 };
    static const unsigned char lext[29] = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                            3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0 };
    static const uint16_t dbase[30] = { 1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
                                        257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
                                        8193, 12289, 16385, 24577 };
    static const unsigned char dext[30] = { 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
                                            7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13 };
    irmae__inf_out *o = s->o;
    int sym, rc;
    unsigned extra = 0;
    size_t length, distance, i;
    unsigned char *d;
    const unsigned char *from;
    for (;;) {
        unsigned e;
        if (s->bitcnt < 15) irmae__inf_refill(s);
        e = lit->fast[s->bitbuf & ((1u << IRMAE__INF_FAST) - 1)];
        if (e && (int)(e >> 9) <= s->bitcnt) { /* inline fast path */
            s->bitbuf >>= e >> 9;
            s->bitcnt -= (int)(e >> 9);
            sym = (int)(e & 511);
        } else {
            sym = irmae__inf_decode(s, lit, "literal/length");
            if (sym < 0) return sym;
        }
        if (sym < 256) {
            if (o->len == o->cap && (rc = irmae__inf_room(s, 1)) != 0) return rc;
            o->p[o->len++] = (unsigned char)sym;
            continue;
        }
        if (sym == 256) return IRMAE_OK;
        sym -= 257;
        if (sym >= 29)
            return irmae__fail(IRMAE_ERR_FORMAT, "%s: invalid length symbol %d at offset %lu",
                               s->what, sym + 257, (unsigned long)irmae__inf_at(s));
        if ((rc = irmae__inf_bits(s, lext[sym], &extra, "length extra bits")) != 0) return rc;
        length = (size_t)lbase[sym] + extra;
        sym = irmae__inf_decode(s, dist, "distance");
        if (sym < 0) return sym;
        if (sym >= 30)
            return irmae__fail(IRMAE_ERR_FORMAT, "%s: invalid distance symbol %d at offset %lu",
                               s->what, sym, (unsigned long)irmae__inf_at(s));
        if ((rc = irmae__inf_bits(s, dext[sym], &extra, "distance extra bits")) != 0) return rc;
        distance = (size_t)dbase[sym] + extra;
        if (distance > o->len)
            return irmae__fail(IRMAE_ERR_FORMAT, "%s: distance %lu reaches before the start of the output (%lu bytes so far) at offset %lu",
                               s->what, (unsigned long)distance, (unsigned long)o->len, (unsigned long)irmae__inf_at(s));
        if ((rc = irmae__inf_room(s, length)) != 0) return rc;
        d = o->p + o->len;
        from = d - distance;
        if (distance >= length) memcpy(d, from, length);
        else for (i = 0; i < length; i++) d[i] = from[i]; /* overlapping: repeats the last distance bytes */
        o->len += length;
    }
}

static int irmae__inf_fixed(irmae__inf *s)
{
    unsigned char lens[288];
    int i, rc;
    if (!s->fixed_ready) {
        for (i = 0; i < 144; i++) lens[i] = 8;
        for (; i < 256; i++) lens[i] = 9;
        for (; i < 280; i++) lens[i] = 7;
        for (; i < 288; i++) lens[i] = 8;
        if ((rc = irmae__inf_build(s, &s->fixlit, lens, 288, 1)) != 0) return rc;
        for (i = 0; i < 32; i++) lens[i] = 5;
        if ((rc = irmae__inf_build(s, &s->fixdist, lens, 32, 2)) != 0) return rc;
        s->fixed_ready = 1;
    }
    return irmae__inf_codes(s, &s->fixlit, &s->fixdist);
}

static int irmae__inf_dynamic(irmae__inf *s)
{
    static const unsigned char order[19] = { 16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15 };
    unsigned char lens[288 + 32];
    unsigned hlit, hdist, hclen, v = 0, rep = 0;
    int i, n, sym, rc;
    unsigned char fill;
    if ((rc = irmae__inf_bits(s, 14, &v, "a dynamic block header")) != 0) return rc;
    hlit = (v & 31) + 257;
    hdist = ((v >> 5) & 31) + 1;
    hclen = (v >> 10) + 4;
    if (hlit > 286 || hdist > 30)
        return irmae__fail(IRMAE_ERR_FORMAT, "%s: dynamic block declares %u literal/length and %u distance codes (at most 286 and 30) at offset %lu",
                           s->what, hlit, hdist, (unsigned long)irmae__inf_at(s));
    memset(lens, 0, sizeof lens);
    for (i = 0; i < (int)hclen; i++) {
        if ((rc = irmae__inf_bits(s, 3, &v, "the code-length code lengths")) != 0) return rc;
        lens[order[i]] = (unsigned char)v;
    }
    if ((rc = irmae__inf_build(s, &s->lit, lens, 19, 0)) != 0) return rc; /* lit as scratch */
    n = (int)(hlit + hdist);
    memset(lens, 0, sizeof lens);
    for (i = 0; i < n;) {
        sym = irmae__inf_decode(s, &s->lit, "code-length");
        if (sym < 0) return sym;
        if (sym < 16) { lens[i++] = (unsigned char)sym; continue; }
        if (sym == 16) {
            if (i == 0)
                return irmae__fail(IRMAE_ERR_FORMAT, "%s: code-length repeat (16) with no previous length at offset %lu",
                                   s->what, (unsigned long)irmae__inf_at(s));
            fill = lens[i - 1];
            if ((rc = irmae__inf_bits(s, 2, &v, "a code-length repeat")) != 0) return rc;
            rep = 3 + v;
        } else if (sym == 17) {
            fill = 0;
            if ((rc = irmae__inf_bits(s, 3, &v, "a code-length repeat")) != 0) return rc;
            rep = 3 + v;
        } else {
            fill = 0;
            if ((rc = irmae__inf_bits(s, 7, &v, "a code-length repeat")) != 0) return rc;
            rep = 11 + v;
        }
        if (rep > (unsigned)(n - i))
            return irmae__fail(IRMAE_ERR_FORMAT, "%s: code-length repeat of %u overruns the %d lengths (at %d) at offset %lu",
                               s->what, rep, n, i, (unsigned long)irmae__inf_at(s));
        while (rep--) lens[i++] = fill;
    }
    if (lens[256] == 0)
        return irmae__fail(IRMAE_ERR_FORMAT, "%s: dynamic block has no end-of-block code (offset %lu)",
                           s->what, (unsigned long)irmae__inf_at(s));
    if ((rc = irmae__inf_build(s, &s->lit, lens, (int)hlit, 1)) != 0) return rc;
    if ((rc = irmae__inf_build(s, &s->dist, lens + hlit, (int)hdist, 2)) != 0) return rc;
    return irmae__inf_codes(s, &s->lit, &s->dist);
}

/* Decodes one DEFLATE stream from src[0..size), appending to o. *used gets
   the number of input bytes the stream occupies (the partial last byte
   counts). base is the offset of src in the caller's input (messages). */
static int irmae__inf_stream(const unsigned char *src, size_t size, size_t base, const char *what,
                             irmae__inf_out *o, size_t *used)
{
    irmae__inf *s;
    unsigned hdr = 0;
    int rc = IRMAE_OK, final = 0;
    *used = 0;
    s = (irmae__inf *)irmae__alloc(1, sizeof *s);
    if (!s) return irmae__fail(IRMAE_ERR_NOMEM, "%s: decoder state", what);
    s->src = src; s->size = size; s->pos = 0; s->base = base;
    s->bitbuf = 0; s->bitcnt = 0; s->what = what; s->o = o; s->fixed_ready = 0;
    while (!final) {
        size_t at = irmae__inf_at(s);
        if ((rc = irmae__inf_bits(s, 3, &hdr, "a block header")) != 0) break;
        final = (int)(hdr & 1);
        switch (hdr >> 1) {
        case 0: rc = irmae__inf_stored(s); break;
        case 1: rc = irmae__inf_fixed(s); break;
        case 2: rc = irmae__inf_dynamic(s); break;
        default:
            rc = irmae__fail(IRMAE_ERR_FORMAT, "%s: reserved block type 3 at offset %lu", what, (unsigned long)at);
            break;
        }
        if (rc) break;
    }
    if (!rc) *used = s->pos - (size_t)(s->bitcnt / 8);
    irmae__free(s);
    return rc;
}

static int irmae__inf_begin(irmae__inf_out *o, const void *src, size_t size, size_t max_out,
                            unsigned char **out, size_t *out_size, const char *what)
{
    if (out) *out = NULL;
    if (out_size) *out_size = 0;
    memset(o, 0, sizeof *o);
    if (!out || !out_size) return irmae__fail(IRMAE_ERR_ARG, "%s: out or out_size is NULL", what);
    if (!src && size) return irmae__fail(IRMAE_ERR_ARG, "%s: src is NULL with size %lu", what, (unsigned long)size);
    o->limit = irmae__cd_limit(max_out);
    return IRMAE_OK;
}

static int irmae__inf_finish(irmae__inf_out *o, int rc, unsigned char **out, size_t *out_size)
{
    if (!rc && !o->p) {
        o->p = (unsigned char *)irmae__alloc(1, 1);
        if (!o->p) rc = irmae__fail(IRMAE_ERR_NOMEM, "inflate: 1 byte");
    }
    if (rc) { irmae__free(o->p); memset(o, 0, sizeof *o); return rc; }
    *out = o->p;
    *out_size = o->len;
    return IRMAE_OK;
}

IRMAEDEF int irmae_inflate(unsigned char **out, size_t *out_size, const void *src, size_t size, size_t max_out)
{
    irmae__inf_out o;
    size_t used;
    int rc = irmae__inf_begin(&o, src, size, max_out, out, out_size, "inflate");
    if (rc) return rc;
    rc = irmae__inf_stream((const unsigned char *)src, size, 0, "inflate", &o, &used);
    if (!rc && used != size)
        rc = irmae__fail(IRMAE_ERR_FORMAT, "inflate: %lu bytes after the final block (offset %lu)",
                         (unsigned long)(size - used), (unsigned long)used);
    return irmae__inf_finish(&o, rc, out, out_size);
}

/* zlib stream at src[0..size): appends to o; *used = bytes occupied. */
static int irmae__inf_zlib(const unsigned char *p, size_t size, const char *what, irmae__inf_out *o, size_t *used)
{
    size_t n, start = o->len;
    uint32_t want, got;
    int rc;
    *used = 0;
    if (size < 2) return irmae__fail(IRMAE_ERR_TRUNCATED, "%s: zlib header needs 2 bytes, %lu present", what, (unsigned long)size);
    if ((p[0] & 15) != 8)
        return irmae__fail(IRMAE_ERR_FORMAT, "%s: zlib compression method %d (must be 8) at offset 0", what, p[0] & 15);
    if ((p[0] >> 4) > 7)
        return irmae__fail(IRMAE_ERR_FORMAT, "%s: zlib window size field %d (at most 7) at offset 0", what, p[0] >> 4);
    if ((((unsigned)p[0] << 8) | p[1]) % 31 != 0)
        return irmae__fail(IRMAE_ERR_FORMAT, "%s: zlib header check FCHECK fails (0x%02x%02x) at offset 0", what, p[0], p[1]);
    if (p[1] & 0x20)
        return irmae__fail(IRMAE_ERR_UNSUPPORTED, "%s: zlib stream needs a preset dictionary (FDICT) at offset 1", what);
    rc = irmae__inf_stream(p + 2, size - 2, 2, what, o, &n);
    if (rc) return rc;
    n += 2;
    if (size - n < 4)
        return irmae__fail(IRMAE_ERR_TRUNCATED, "%s: zlib Adler-32 trailer at offset %lu needs 4 bytes, %lu present",
                           what, (unsigned long)n, (unsigned long)(size - n));
    want = irmae__cd_be32(p + n);
    got = irmae_adler32(1, o->p ? o->p + start : NULL, o->len - start);
    if (want != got)
        return irmae__fail(IRMAE_ERR_CHECKSUM, "%s: zlib Adler-32 0x%08lx at offset %lu, data gives 0x%08lx",
                           what, (unsigned long)want, (unsigned long)n, (unsigned long)got);
    *used = n + 4;
    return IRMAE_OK;
}

IRMAEDEF int irmae_zlib_decompress(unsigned char **out, size_t *out_size, const void *src, size_t size, size_t max_out)
{
    irmae__inf_out o;
    size_t used;
    int rc = irmae__inf_begin(&o, src, size, max_out, out, out_size, "zlib");
    if (rc) return rc;
    rc = irmae__inf_zlib((const unsigned char *)src, size, "zlib", &o, &used);
    if (!rc && used != size)
        rc = irmae__fail(IRMAE_ERR_FORMAT, "zlib: %lu bytes after the end of the stream (offset %lu)",
                         (unsigned long)(size - used), (unsigned long)used);
    return irmae__inf_finish(&o, rc, out, out_size);
}

IRMAEDEF int irmae_gzip_decompress(unsigned char **out, size_t *out_size, const void *src, size_t size, size_t max_out)
{
    const unsigned char *p = (const unsigned char *)src;
    irmae__inf_out o;
    size_t pos = 0, start, hstart, used, xlen, member = 0;
    unsigned flg;
    uint32_t crc;
    int rc = irmae__inf_begin(&o, src, size, max_out, out, out_size, "gzip");
    if (rc) return rc;
    if (size == 0) rc = irmae__fail(IRMAE_ERR_TRUNCATED, "gzip: empty input");
    while (!rc && pos < size) {
        if (member > 0) { /* zero padding after a member is allowed */
            size_t z = pos;
            while (z < size && p[z] == 0) z++;
            if (z == size) break;
            pos = z;
        }
        hstart = pos;
        if (size - pos < 10) {
            if (p[pos] != 0x1f || (size - pos > 1 && p[pos + 1] != 0x8b))
                rc = irmae__fail(IRMAE_ERR_FORMAT, "gzip: bad magic at offset %lu (member %lu)", (unsigned long)pos, (unsigned long)member);
            else
                rc = irmae__fail(IRMAE_ERR_TRUNCATED, "gzip: member header at offset %lu needs 10 bytes, %lu present",
                                 (unsigned long)pos, (unsigned long)(size - pos));
            break;
        }
        if (p[pos] != 0x1f || p[pos + 1] != 0x8b) {
            rc = irmae__fail(IRMAE_ERR_FORMAT, "gzip: bad magic 0x%02x%02x at offset %lu (member %lu)",
                             p[pos], p[pos + 1], (unsigned long)pos, (unsigned long)member);
            break;
        }
        if (p[pos + 2] != 8) {
            rc = irmae__fail(IRMAE_ERR_FORMAT, "gzip: compression method %d (must be 8) at offset %lu", p[pos + 2], (unsigned long)(pos + 2));
            break;
        }
        flg = p[pos + 3];
        if (flg & 0xE0) {
            rc = irmae__fail(IRMAE_ERR_FORMAT, "gzip: reserved flag bits 0x%02x set at offset %lu", flg & 0xE0, (unsigned long)(pos + 3));
            break;
        }
        pos += 10;
        if (flg & 4) { /* FEXTRA */
            if (size - pos < 2) { rc = irmae__fail(IRMAE_ERR_TRUNCATED, "gzip: FEXTRA length at offset %lu", (unsigned long)pos); break; }
            xlen = (size_t)p[pos] | ((size_t)p[pos + 1] << 8);
            pos += 2;
            if (size - pos < xlen) { rc = irmae__fail(IRMAE_ERR_TRUNCATED, "gzip: FEXTRA field of %lu bytes at offset %lu", (unsigned long)xlen, (unsigned long)pos); break; }
            pos += xlen;
        }
        if (flg & 8) { /* FNAME */
            while (pos < size && p[pos]) pos++;
            if (pos == size) { rc = irmae__fail(IRMAE_ERR_TRUNCATED, "gzip: file name (FNAME) not terminated before the end (offset %lu)", (unsigned long)pos); break; }
            pos++;
        }
        if (flg & 16) { /* FCOMMENT */
            while (pos < size && p[pos]) pos++;
            if (pos == size) { rc = irmae__fail(IRMAE_ERR_TRUNCATED, "gzip: comment (FCOMMENT) not terminated before the end (offset %lu)", (unsigned long)pos); break; }
            pos++;
        }
        if (flg & 2) { /* FHCRC */
            unsigned want, got;
            if (size - pos < 2) { rc = irmae__fail(IRMAE_ERR_TRUNCATED, "gzip: header CRC at offset %lu", (unsigned long)pos); break; }
            want = (unsigned)p[pos] | ((unsigned)p[pos + 1] << 8);
            got = (unsigned)(irmae_crc32(0, p + hstart, pos - hstart) & 0xFFFFu);
            if (want != got) {
                rc = irmae__fail(IRMAE_ERR_CHECKSUM, "gzip: header CRC-16 0x%04x at offset %lu, header gives 0x%04x", want, (unsigned long)pos, got);
                break;
            }
            pos += 2;
        }
        start = o.len;
        rc = irmae__inf_stream(p + pos, size - pos, pos, "gzip", &o, &used);
        if (rc) break;
        pos += used;
        if (size - pos < 8) {
            rc = irmae__fail(IRMAE_ERR_TRUNCATED, "gzip: member trailer (CRC-32, ISIZE) at offset %lu needs 8 bytes, %lu present",
                             (unsigned long)pos, (unsigned long)(size - pos));
            break;
        }
        crc = irmae_crc32(0, o.p ? o.p + start : NULL, o.len - start);
        if (crc != irmae__cd_le32(p + pos)) {
            rc = irmae__fail(IRMAE_ERR_CHECKSUM, "gzip: CRC-32 0x%08lx at offset %lu, data gives 0x%08lx",
                             (unsigned long)irmae__cd_le32(p + pos), (unsigned long)pos, (unsigned long)crc);
            break;
        }
        if (irmae__cd_le32(p + pos + 4) != (uint32_t)((o.len - start) & 0xFFFFFFFFu)) {
            rc = irmae__fail(IRMAE_ERR_CHECKSUM, "gzip: ISIZE %lu at offset %lu, data has %lu bytes",
                             (unsigned long)irmae__cd_le32(p + pos + 4), (unsigned long)(pos + 4), (unsigned long)(o.len - start));
            break;
        }
        pos += 8;
        member++;
    }
    return irmae__inf_finish(&o, rc, out, out_size);
}

/* ---------------------------------------------------------------------- */
/* PNG decoding                                                      @png */
/* ---------------------------------------------------------------------- */

typedef struct irmae__pngd {
    uint32_t w, h;
    int depth, ctype, interlace;
    int nsamp;                 /* samples per pixel in the file */
    int npal, ntrns, has_trns;
    unsigned char pal[256 * 3];
    unsigned char trns[256];   /* palette alpha */
    unsigned trns_key[3];      /* grey or RGB key, full bit depth */
} irmae__pngd;

/* Bytes of one filtered row of pw pixels (without the filter byte); 0 if it
   overflows. */
static size_t irmae__pngd_rowbytes(const irmae__pngd *d, size_t pw)
{
    size_t bits;
    if (!irmae__mul(&bits, pw, (size_t)(d->nsamp * d->depth))) return 0;
    if (bits > (size_t)-1 - 7) return 0;
    return (bits + 7) / 8;
}

static unsigned irmae__pngd_sample(const unsigned char *row, size_t i, int depth)
{
    size_t bit;
    switch (depth) {
    case 8: return row[i];
    case 16: return ((unsigned)row[2 * i] << 8) | row[2 * i + 1];
    default:
        bit = i * (size_t)depth;
        return ((unsigned)row[bit >> 3] >> (8 - depth - (int)(bit & 7))) & ((1u << depth) - 1);
    }
}

static unsigned char irmae__pngd_to8(unsigned v, int depth)
{
    switch (depth) {
    case 1: return (unsigned char)(v * 255);
    case 2: return (unsigned char)(v * 85);
    case 4: return (unsigned char)(v * 17);
    case 16: return (unsigned char)((v * 255u + 32767u) / 65535u);
    default: return (unsigned char)v;
    }
}

/* Reverses the filter of one row in place. prior is the previous row of the
   same pass (NULL for the first row: all its bytes count as 0). */
static void irmae__pngd_unfilter(unsigned char *x, const unsigned char *prior, size_t n, size_t bpp, int ft)
{
    size_t i;
    if (!prior) { /* Up adds 0, Paeth predicts the left byte (same as Sub) */
        if (ft == 2) ft = 0;
        if (ft == 4) ft = 1;
    }
    switch (ft) {
    case 1:
        for (i = bpp; i < n; i++) x[i] = (unsigned char)(x[i] + x[i - bpp]);
        break;
    case 2:
        for (i = 0; i < n; i++) x[i] = (unsigned char)(x[i] + prior[i]);
        break;
    case 3:
        if (!prior) {
            for (i = bpp; i < n; i++) x[i] = (unsigned char)(x[i] + (x[i - bpp] >> 1));
        } else {
            for (i = 0; i < bpp && i < n; i++) x[i] = (unsigned char)(x[i] + (prior[i] >> 1));
            for (; i < n; i++) x[i] = (unsigned char)(x[i] + (((unsigned)x[i - bpp] + prior[i]) >> 1));
        }
        break;
    case 4:
        for (i = 0; i < bpp && i < n; i++) x[i] = (unsigned char)(x[i] + prior[i]); /* a = c = 0: predicts b */
        for (; i < n; i++) {
            int a = x[i - bpp], b = prior[i], c = prior[i - bpp];
            int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c); /* |p-a|, |p-b|, |p-c|, p = a+b-c */
            int pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
            x[i] = (unsigned char)(x[i] + pred);
        }
        break;
    default: break; /* 0: none */
    }
}

/* Converts one unfiltered row of pw pixels to RGBA8 in rgba[0..4 pw).
   Returns an error for a palette index out of range. */
static int irmae__pngd_row_rgba(const irmae__pngd *d, const unsigned char *row, size_t pw,
                                unsigned char *rgba, uint32_t y, uint32_t x0, uint32_t dx)
{
    size_t i;
    unsigned v[4];
    int k;
    if (d->depth == 8 && d->ctype != 3) { /* the common cases, without per-sample calls */
        unsigned char *q = rgba;
        const unsigned char *s = row;
        switch (d->ctype) {
        case 6: memcpy(rgba, row, 4 * pw); break;
        case 4: for (i = 0; i < pw; i++, q += 4, s += 2) { q[0] = q[1] = q[2] = s[0]; q[3] = s[1]; } break;
        case 2:
            for (i = 0; i < pw; i++, q += 4, s += 3) {
                q[0] = s[0]; q[1] = s[1]; q[2] = s[2];
                q[3] = (unsigned char)((d->has_trns && s[0] == d->trns_key[0] && s[1] == d->trns_key[1] &&
                                        s[2] == d->trns_key[2]) ? 0 : 255);
            }
            break;
        default:
            for (i = 0; i < pw; i++, q += 4, s++) {
                q[0] = q[1] = q[2] = s[0];
                q[3] = (unsigned char)((d->has_trns && s[0] == d->trns_key[0]) ? 0 : 255);
            }
            break;
        }
        return IRMAE_OK;
    }
    for (i = 0; i < pw; i++) {
        unsigned char *q = rgba + 4 * i;
        for (k = 0; k < d->nsamp; k++) v[k] = irmae__pngd_sample(row, i * (size_t)d->nsamp + (size_t)k, d->depth);
        switch (d->ctype) {
        case 0:
            q[0] = q[1] = q[2] = irmae__pngd_to8(v[0], d->depth);
            q[3] = (unsigned char)((d->has_trns && v[0] == d->trns_key[0]) ? 0 : 255);
            break;
        case 2:
            q[0] = irmae__pngd_to8(v[0], d->depth);
            q[1] = irmae__pngd_to8(v[1], d->depth);
            q[2] = irmae__pngd_to8(v[2], d->depth);
            q[3] = (unsigned char)((d->has_trns && v[0] == d->trns_key[0] && v[1] == d->trns_key[1] &&
                                    v[2] == d->trns_key[2]) ? 0 : 255);
            break;
        case 3:
            if ((int)v[0] >= d->npal)
                return irmae__fail(IRMAE_ERR_FORMAT, "png: palette index %u out of range (%d PLTE entries) at pixel (%lu, %lu)",
                                   v[0], d->npal, (unsigned long)(x0 + i * dx), (unsigned long)y);
            q[0] = d->pal[3 * v[0]]; q[1] = d->pal[3 * v[0] + 1]; q[2] = d->pal[3 * v[0] + 2];
            q[3] = (int)v[0] < d->ntrns ? d->trns[v[0]] : 255;
            break;
        case 4:
            q[0] = q[1] = q[2] = irmae__pngd_to8(v[0], d->depth);
            q[3] = irmae__pngd_to8(v[1], d->depth);
            break;
        default: /* 6 */
            q[0] = irmae__pngd_to8(v[0], d->depth);
            q[1] = irmae__pngd_to8(v[1], d->depth);
            q[2] = irmae__pngd_to8(v[2], d->depth);
            q[3] = irmae__pngd_to8(v[3], d->depth);
            break;
        }
    }
    return IRMAE_OK;
}

/* Writes pw RGBA8 pixels as outc channels at dst, step apart (bytes). */
static void irmae__pngd_pack(unsigned char *dst, size_t step, const unsigned char *q, size_t pw, int outc, int grey_src)
{
    size_t i;
    switch (outc) {
    case 1:
        if (grey_src) for (i = 0; i < pw; i++, q += 4, dst += step) dst[0] = q[0];
        else for (i = 0; i < pw; i++, q += 4, dst += step)
            dst[0] = (unsigned char)((77u * q[0] + 150u * q[1] + 29u * q[2] + 128u) >> 8);
        break;
    case 2:
        if (grey_src) for (i = 0; i < pw; i++, q += 4, dst += step) { dst[0] = q[0]; dst[1] = q[3]; }
        else for (i = 0; i < pw; i++, q += 4, dst += step) {
            dst[0] = (unsigned char)((77u * q[0] + 150u * q[1] + 29u * q[2] + 128u) >> 8);
            dst[1] = q[3];
        }
        break;
    case 3:
        for (i = 0; i < pw; i++, q += 4, dst += step) { dst[0] = q[0]; dst[1] = q[1]; dst[2] = q[2]; }
        break;
    default:
        if (step == 4) memcpy(dst, q, 4 * pw);
        else for (i = 0; i < pw; i++, q += 4, dst += step) { dst[0] = q[0]; dst[1] = q[1]; dst[2] = q[2]; dst[3] = q[3]; }
        break;
    }
}

static const char *irmae__pngd_name(const unsigned char *t, char *buf)
{
    int i, ok = 1;
    for (i = 0; i < 4; i++)
        if (!((t[i] >= 'A' && t[i] <= 'Z') || (t[i] >= 'a' && t[i] <= 'z'))) ok = 0;
    if (ok) { memcpy(buf, t, 4); buf[4] = 0; }
    else snprintf(buf, 16, "0x%02x%02x%02x%02x", t[0], t[1], t[2], t[3]);
    return buf;
}

/* Walks the chunks: validates them, fills d, and finds the IDAT run. */
static int irmae__pngd_chunks(const unsigned char *p, size_t size, irmae__pngd *d,
                              size_t *idat_first, size_t *idat_total)
{
    size_t pos = 8, total = 0;
    int seen_ihdr = 0, seen_plte = 0, idat_state = 0; /* 0 none yet, 1 in the run, 2 after it */
    uint32_t len, crc;
    char nm[16];
    for (;;) {
        const unsigned char *t, *c;
        if (size - pos < 12)
            return irmae__fail(IRMAE_ERR_TRUNCATED, "png: chunk header at offset %lu needs 12 bytes, %lu present (no IEND)",
                               (unsigned long)pos, (unsigned long)(size - pos));
        len = irmae__cd_be32(p + pos);
        t = p + pos + 4;
        c = p + pos + 8;
        irmae__pngd_name(t, nm);
        if (nm[0] == '0')
            return irmae__fail(IRMAE_ERR_FORMAT, "png: chunk type %s at offset %lu is not four letters", nm, (unsigned long)(pos + 4));
        if (len > 0x7FFFFFFFu)
            return irmae__fail(IRMAE_ERR_FORMAT, "png: chunk '%s' at offset %lu has length %lu > 2^31 - 1", nm, (unsigned long)pos, (unsigned long)len);
        if ((size_t)len > size - pos - 12)
            return irmae__fail(IRMAE_ERR_TRUNCATED, "png: chunk '%s' at offset %lu has length %lu, only %lu bytes follow",
                               nm, (unsigned long)pos, (unsigned long)len, (unsigned long)(size - pos - 12));
        crc = irmae_crc32(0, t, (size_t)len + 4);
        if (crc != irmae__cd_be32(c + len))
            return irmae__fail(IRMAE_ERR_CHECKSUM, "png: chunk '%s' at offset %lu: CRC 0x%08lx stored, 0x%08lx computed",
                               nm, (unsigned long)pos, (unsigned long)irmae__cd_be32(c + len), (unsigned long)crc);
        if (!seen_ihdr && memcmp(t, "IHDR", 4) != 0)
            return irmae__fail(IRMAE_ERR_FORMAT, "png: first chunk is '%s' at offset %lu, must be IHDR", nm, (unsigned long)pos);
        if (idat_state == 1 && memcmp(t, "IDAT", 4) != 0) idat_state = 2;
        if (memcmp(t, "IHDR", 4) == 0) {
            int ok;
            if (seen_ihdr) return irmae__fail(IRMAE_ERR_FORMAT, "png: second IHDR at offset %lu", (unsigned long)pos);
            if (len != 13) return irmae__fail(IRMAE_ERR_FORMAT, "png: IHDR length %lu (must be 13)", (unsigned long)len);
            seen_ihdr = 1;
            d->w = irmae__cd_be32(c);
            d->h = irmae__cd_be32(c + 4);
            d->depth = c[8];
            d->ctype = c[9];
            d->interlace = c[12];
            if (d->w == 0 || d->h == 0 || d->w > 0x7FFFFFFFu || d->h > 0x7FFFFFFFu)
                return irmae__fail(IRMAE_ERR_FORMAT, "png: IHDR size %lu x %lu (each must be 1..2^31-1) at offset 16",
                                   (unsigned long)d->w, (unsigned long)d->h);
            if (d->w > (uint32_t)IRMAE_MAX_IMAGE_DIM || d->h > (uint32_t)IRMAE_MAX_IMAGE_DIM)
                return irmae__fail(IRMAE_ERR_LIMIT, "png: IHDR size %lu x %lu exceeds IRMAE_MAX_IMAGE_DIM (%ld) at offset 16",
                                   (unsigned long)d->w, (unsigned long)d->h, (long)IRMAE_MAX_IMAGE_DIM);
            if ((size_t)d->w > (size_t)IRMAE_MAX_IMAGE_PIXELS / d->h)
                return irmae__fail(IRMAE_ERR_LIMIT, "png: IHDR size %lu x %lu exceeds IRMAE_MAX_IMAGE_PIXELS (%lu) at offset 16",
                                   (unsigned long)d->w, (unsigned long)d->h, (unsigned long)IRMAE_MAX_IMAGE_PIXELS);
            switch (d->ctype) {
            case 0: ok = d->depth == 1 || d->depth == 2 || d->depth == 4 || d->depth == 8 || d->depth == 16; d->nsamp = 1; break;
            case 3: ok = d->depth == 1 || d->depth == 2 || d->depth == 4 || d->depth == 8; d->nsamp = 1; break;
            case 2: ok = d->depth == 8 || d->depth == 16; d->nsamp = 3; break;
            case 4: ok = d->depth == 8 || d->depth == 16; d->nsamp = 2; break;
            case 6: ok = d->depth == 8 || d->depth == 16; d->nsamp = 4; break;
            default:
                return irmae__fail(IRMAE_ERR_FORMAT, "png: IHDR colour type %d (must be 0, 2, 3, 4 or 6) at offset 25", d->ctype);
            }
            if (!ok)
                return irmae__fail(IRMAE_ERR_FORMAT, "png: IHDR bit depth %d is not valid for colour type %d (offset 24)", d->depth, d->ctype);
            if (c[10] != 0) return irmae__fail(IRMAE_ERR_FORMAT, "png: IHDR compression method %d (must be 0) at offset 26", c[10]);
            if (c[11] != 0) return irmae__fail(IRMAE_ERR_FORMAT, "png: IHDR filter method %d (must be 0) at offset 27", c[11]);
            if (d->interlace > 1) return irmae__fail(IRMAE_ERR_FORMAT, "png: IHDR interlace method %d (must be 0 or 1) at offset 28", d->interlace);
        } else if (memcmp(t, "PLTE", 4) == 0) {
            if (d->ctype == 0 || d->ctype == 4)
                return irmae__fail(IRMAE_ERR_FORMAT, "png: PLTE at offset %lu in a grey image (colour type %d)", (unsigned long)pos, d->ctype);
            if (seen_plte) return irmae__fail(IRMAE_ERR_FORMAT, "png: second PLTE at offset %lu", (unsigned long)pos);
            if (idat_state) return irmae__fail(IRMAE_ERR_FORMAT, "png: PLTE after IDAT at offset %lu", (unsigned long)pos);
            if (d->has_trns) return irmae__fail(IRMAE_ERR_FORMAT, "png: PLTE after tRNS at offset %lu", (unsigned long)pos);
            if (len == 0 || len % 3 != 0 || len > 768)
                return irmae__fail(IRMAE_ERR_FORMAT, "png: PLTE length %lu at offset %lu (must be 3..768, a multiple of 3)",
                                   (unsigned long)len, (unsigned long)pos);
            if (d->ctype == 3 && (int)(len / 3) > (1 << d->depth))
                return irmae__fail(IRMAE_ERR_FORMAT, "png: PLTE has %lu entries at offset %lu, bit depth %d allows %d",
                                   (unsigned long)(len / 3), (unsigned long)pos, d->depth, 1 << d->depth);
            seen_plte = 1;
            d->npal = (int)(len / 3);
            memcpy(d->pal, c, len);
        } else if (memcmp(t, "tRNS", 4) == 0) {
            if (d->ctype == 4 || d->ctype == 6)
                return irmae__fail(IRMAE_ERR_FORMAT, "png: tRNS at offset %lu in an image with an alpha channel (colour type %d)",
                                   (unsigned long)pos, d->ctype);
            if (d->has_trns) return irmae__fail(IRMAE_ERR_FORMAT, "png: second tRNS at offset %lu", (unsigned long)pos);
            if (idat_state) return irmae__fail(IRMAE_ERR_FORMAT, "png: tRNS after IDAT at offset %lu", (unsigned long)pos);
            if (d->ctype == 3) {
                if (!seen_plte) return irmae__fail(IRMAE_ERR_FORMAT, "png: tRNS before PLTE at offset %lu", (unsigned long)pos);
                if (len == 0 || (int)len > d->npal)
                    return irmae__fail(IRMAE_ERR_FORMAT, "png: tRNS length %lu at offset %lu (must be 1..%d palette entries)",
                                       (unsigned long)len, (unsigned long)pos, d->npal);
                memcpy(d->trns, c, len);
                d->ntrns = (int)len;
            } else {
                int k, n = d->ctype == 0 ? 1 : 3;
                if (len != (uint32_t)(2 * n))
                    return irmae__fail(IRMAE_ERR_FORMAT, "png: tRNS length %lu at offset %lu (must be %d for colour type %d)",
                                       (unsigned long)len, (unsigned long)pos, 2 * n, d->ctype);
                for (k = 0; k < n; k++) d->trns_key[k] = ((unsigned)c[2 * k] << 8) | c[2 * k + 1];
            }
            d->has_trns = 1;
        } else if (memcmp(t, "IDAT", 4) == 0) {
            if (idat_state == 2)
                return irmae__fail(IRMAE_ERR_FORMAT, "png: IDAT at offset %lu after another chunk ended the IDAT run (IDATs must be consecutive)",
                                   (unsigned long)pos);
            if (d->ctype == 3 && !seen_plte)
                return irmae__fail(IRMAE_ERR_FORMAT, "png: palette image has no PLTE before IDAT (offset %lu)", (unsigned long)pos);
            if (idat_state == 0) *idat_first = pos;
            idat_state = 1;
            if ((size_t)len > (size_t)-1 - total)
                return irmae__fail(IRMAE_ERR_OVERFLOW, "png: IDAT lengths overflow at offset %lu", (unsigned long)pos);
            total += len;
        } else if (memcmp(t, "IEND", 4) == 0) {
            if (len != 0) return irmae__fail(IRMAE_ERR_FORMAT, "png: IEND at offset %lu has length %lu (must be 0)", (unsigned long)pos, (unsigned long)len);
            if (!idat_state) return irmae__fail(IRMAE_ERR_FORMAT, "png: IEND at offset %lu before any IDAT (no image data)", (unsigned long)pos);
            *idat_total = total;
            return IRMAE_OK; /* bytes after IEND are ignored */
        } else if (t[0] >= 'A' && t[0] <= 'Z') {
            return irmae__fail(IRMAE_ERR_UNSUPPORTED, "png: unknown critical chunk '%s' at offset %lu", nm, (unsigned long)pos);
        }
        /* unknown or unused ancillary chunks: skipped */
        pos += 12 + (size_t)len;
    }
}

IRMAEDEF int irmae_png_decode(irmae_image *out, const void *data, size_t size, int want_channels)
{
    static const unsigned char sig[8] = { 137, 80, 78, 71, 13, 10, 26, 10 };
    static const int ax0[7] = { 0, 4, 0, 2, 0, 1, 0 }, ay0[7] = { 0, 0, 4, 0, 2, 0, 1 };
    static const int adx[7] = { 8, 8, 4, 4, 2, 2, 1 }, ady[7] = { 8, 8, 8, 4, 4, 2, 2 };
    const unsigned char *p = (const unsigned char *)data;
    irmae__pngd *d = NULL;
    unsigned char *idat = NULL, *pix = NULL, *rgba = NULL, *row, *prior;
    irmae__inf_out o;
    size_t idat_first = 0, idat_total = 0, expected = 0, npix, outbytes, pos, used, off, rb, bpp;
    int rc = IRMAE_OK, pass, npass, outc;
    uint32_t y;

    memset(&o, 0, sizeof o);
    if (!out) return irmae__fail(IRMAE_ERR_ARG, "png: out is NULL");
    memset(out, 0, sizeof *out);
    if (!data && size) return irmae__fail(IRMAE_ERR_ARG, "png: data is NULL with size %lu", (unsigned long)size);
    if (want_channels < 0 || want_channels > 4)
        return irmae__fail(IRMAE_ERR_ARG, "png: want_channels %d (must be 0..4)", want_channels);
    if (size < 8) return irmae__fail(IRMAE_ERR_TRUNCATED, "png: %lu bytes, the signature alone has 8", (unsigned long)size);
    if (memcmp(p, sig, 8) != 0) return irmae__fail(IRMAE_ERR_FORMAT, "png: bad signature at offset 0");
    d = (irmae__pngd *)irmae__alloc(1, sizeof *d);
    if (!d) return irmae__fail(IRMAE_ERR_NOMEM, "png: decoder state");
    rc = irmae__pngd_chunks(p, size, d, &idat_first, &idat_total);
    if (rc) goto done;

    /* size of the filtered image data, pass by pass */
    npass = d->interlace ? 7 : 1;
    for (pass = 0; pass < npass; pass++) {
        size_t pw, ph, t;
        if (d->interlace) {
            pw = d->w > (uint32_t)ax0[pass] ? (d->w - (uint32_t)ax0[pass] + (uint32_t)adx[pass] - 1) / (uint32_t)adx[pass] : 0;
            ph = d->h > (uint32_t)ay0[pass] ? (d->h - (uint32_t)ay0[pass] + (uint32_t)ady[pass] - 1) / (uint32_t)ady[pass] : 0;
        } else { pw = d->w; ph = d->h; }
        if (!pw || !ph) continue;
        rb = irmae__pngd_rowbytes(d, pw);
        if (!rb || rb == (size_t)-1 || !irmae__mul(&t, ph, rb + 1) || t > (size_t)-1 - expected) {
            rc = irmae__fail(IRMAE_ERR_OVERFLOW, "png: image data size of %lu x %lu overflows", (unsigned long)d->w, (unsigned long)d->h);
            goto done;
        }
        expected += t;
    }
    if (expected > (size_t)IRMAE_MAX_ALLOC) {
        rc = irmae__fail(IRMAE_ERR_LIMIT, "png: %lu x %lu image needs %lu bytes of image data, above IRMAE_MAX_ALLOC",
                         (unsigned long)d->w, (unsigned long)d->h, (unsigned long)expected);
        goto done;
    }
    outc = want_channels;
    if (!outc) {
        switch (d->ctype) {
        case 0: outc = d->has_trns ? 2 : 1; break;
        case 4: outc = 2; break;
        case 6: outc = 4; break;
        default: outc = d->has_trns ? 4 : 3; break;
        }
    }
    npix = (size_t)d->w * d->h; /* <= IRMAE_MAX_IMAGE_PIXELS, checked */
    if (!irmae__mul(&outbytes, npix, (size_t)outc) || outbytes > (size_t)IRMAE_MAX_ALLOC) {
        rc = irmae__fail(IRMAE_ERR_LIMIT, "png: %lu x %lu x %d output exceeds IRMAE_MAX_ALLOC",
                         (unsigned long)d->w, (unsigned long)d->h, outc);
        goto done;
    }

    /* gather the IDAT run (the chunks were validated above) */
    idat = (unsigned char *)irmae__alloc(idat_total ? idat_total : 1, 1);
    if (!idat) { rc = irmae__fail(IRMAE_ERR_NOMEM, "png: %lu bytes of IDAT data", (unsigned long)idat_total); goto done; }
    for (pos = idat_first, off = 0; off < idat_total;) {
        size_t len = irmae__cd_be32(p + pos);
        if (memcmp(p + pos + 4, "IDAT", 4) == 0) { memcpy(idat + off, p + pos + 8, len); off += len; }
        pos += 12 + len;
    }

    /* inflate, at most the expected size; the buffer grows with the data
       actually decompressed, so a tiny file claiming a huge image does not
       allocate the huge buffer up front */
    o.limit = expected;
    o.cap = expected;
    if (expected > 4096 && idat_total < (expected - 4096) / 8) o.cap = idat_total * 8 + 4096;
    o.p = (unsigned char *)irmae__alloc(o.cap, 1);
    if (!o.p) { rc = irmae__fail(IRMAE_ERR_NOMEM, "png: %lu bytes of image data", (unsigned long)o.cap); goto done; }
    rc = irmae__inf_zlib(idat, idat_total, "png", &o, &used);
    if (rc == IRMAE_ERR_LIMIT) {
        rc = irmae__fail(IRMAE_ERR_FORMAT, "png: IDAT data decompresses to more than the %lu bytes a %lu x %lu image needs",
                         (unsigned long)expected, (unsigned long)d->w, (unsigned long)d->h);
        goto done;
    }
    if (rc) goto done;
    if (o.len != expected) {
        rc = irmae__fail(IRMAE_ERR_FORMAT, "png: IDAT data decompresses to %lu bytes, a %lu x %lu image needs %lu",
                         (unsigned long)o.len, (unsigned long)d->w, (unsigned long)d->h, (unsigned long)expected);
        goto done;
    }

    pix = (unsigned char *)irmae__alloc(outbytes, 1);
    rgba = (unsigned char *)irmae__alloc((size_t)d->w, 4);
    if (!pix || !rgba) { rc = irmae__fail(IRMAE_ERR_NOMEM, "png: %lu bytes of pixels", (unsigned long)outbytes); goto done; }
    bpp = (size_t)(d->nsamp * d->depth) / 8;
    if (bpp == 0) bpp = 1;
    off = 0;
    for (pass = 0; pass < npass; pass++) {
        size_t pw, ph, x0 = 0, y0 = 0, dx = 1, dy = 1, r;
        if (d->interlace) {
            x0 = (size_t)ax0[pass]; y0 = (size_t)ay0[pass]; dx = (size_t)adx[pass]; dy = (size_t)ady[pass];
            pw = d->w > x0 ? (d->w - x0 + dx - 1) / dx : 0;
            ph = d->h > y0 ? (d->h - y0 + dy - 1) / dy : 0;
        } else { pw = d->w; ph = d->h; }
        if (!pw || !ph) continue;
        rb = irmae__pngd_rowbytes(d, pw);
        prior = NULL;
        for (r = 0; r < ph; r++) {
            int ft = o.p[off];
            row = o.p + off + 1;
            if (ft > 4) {
                if (d->interlace)
                    rc = irmae__fail(IRMAE_ERR_FORMAT, "png: filter type %d in row %lu of Adam7 pass %d (offset %lu of the decompressed data)",
                                     ft, (unsigned long)r, pass + 1, (unsigned long)off);
                else
                    rc = irmae__fail(IRMAE_ERR_FORMAT, "png: filter type %d in row %lu (offset %lu of the decompressed data)",
                                     ft, (unsigned long)r, (unsigned long)off);
                goto done;
            }
            irmae__pngd_unfilter(row, prior, rb, bpp, ft);
            prior = row;
            off += rb + 1;
            y = (uint32_t)(y0 + r * dy);
            rc = irmae__pngd_row_rgba(d, row, pw, rgba, y, (uint32_t)x0, (uint32_t)dx);
            if (rc) goto done;
            irmae__pngd_pack(pix + ((size_t)y * d->w + x0) * (size_t)outc, dx * (size_t)outc, rgba, pw, outc,
                             d->ctype == 0 || d->ctype == 4);
        }
    }
    out->w = (int)d->w;
    out->h = (int)d->h;
    out->c = outc;
    out->pixels = pix;
    pix = NULL;

done:
    irmae__free(d);
    irmae__free(idat);
    irmae__free(o.p);
    irmae__free(pix);
    irmae__free(rgba);
    return rc;
}

IRMAEDEF int irmae_png_load(irmae_image *out, const char *path, int want_channels)
{
    unsigned char *buf;
    size_t size;
    int rc;
    if (!out) return irmae__fail(IRMAE_ERR_ARG, "png: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path) return irmae__fail(IRMAE_ERR_ARG, "png: path is NULL");
    if (want_channels < 0 || want_channels > 4)
        return irmae__fail(IRMAE_ERR_ARG, "png: want_channels %d (must be 0..4)", want_channels);
    rc = irmae__cd_read_file(path, &buf, &size);
    if (rc) return rc;
    rc = irmae_png_decode(out, buf, size, want_channels);
    irmae__free(buf);
    return rc ? irmae__cd_tag_path(rc, path) : IRMAE_OK;
}

IRMAEDEF void irmae_image_free(irmae_image *img)
{
    if (!img) return;
    irmae__free(img->pixels);
    memset(img, 0, sizeof *img);
}

/* ---------------------------------------------------------------------- */
/* IDX                                                               @idx */
/* ---------------------------------------------------------------------- */

static int irmae__idx_raw(const unsigned char *p, size_t size, irmae_idx *out, const char *what)
{
    size_t n = 1, hdr, k;
    int rank, type;
    if (size < 4) return irmae__fail(IRMAE_ERR_TRUNCATED, "idx: %s%lu bytes, the header needs at least 4", what, (unsigned long)size);
    if (p[0] != 0 || p[1] != 0) return irmae__fail(IRMAE_ERR_FORMAT, "idx: %sbad magic 0x%02x%02x at offset 0 (must be 0000)", what, p[0], p[1]);
    type = p[2];
    rank = p[3];
    if (type == 0x09 || type == 0x0B || type == 0x0C || type == 0x0D || type == 0x0E)
        return irmae__fail(IRMAE_ERR_UNSUPPORTED, "idx: %selement type 0x%02x at offset 2 (only 0x08, unsigned byte, is supported)", what, type);
    if (type != 0x08) return irmae__fail(IRMAE_ERR_FORMAT, "idx: %sunknown element type 0x%02x at offset 2", what, type);
    if (rank == 0) return irmae__fail(IRMAE_ERR_FORMAT, "idx: %srank 0 at offset 3", what);
    if (rank > 4) return irmae__fail(IRMAE_ERR_UNSUPPORTED, "idx: %srank %d at offset 3 (at most 4 supported)", what, rank);
    hdr = 4 + 4 * (size_t)rank;
    if (size < hdr) return irmae__fail(IRMAE_ERR_TRUNCATED, "idx: %s%lu bytes, a rank-%d header needs %lu", what, (unsigned long)size, rank, (unsigned long)hdr);
    for (k = 0; k < (size_t)rank; k++) {
        uint32_t dim = irmae__cd_be32(p + 4 + 4 * k);
        if (dim > (uint32_t)INT_MAX)
            return irmae__fail(IRMAE_ERR_LIMIT, "idx: %sdimension %lu = %lu at offset %lu exceeds INT_MAX", what, (unsigned long)k, (unsigned long)dim, (unsigned long)(4 + 4 * k));
        if (!irmae__mul(&n, n, (size_t)dim) || n > (size_t)IRMAE_MAX_ALLOC)
            return irmae__fail(IRMAE_ERR_LIMIT, "idx: %sdimensions up to %lu (offset %lu) exceed IRMAE_MAX_ALLOC bytes", what, (unsigned long)k, (unsigned long)(4 + 4 * k));
        out->dims[k] = (int)dim;
    }
    if (size - hdr < n)
        return irmae__fail(IRMAE_ERR_TRUNCATED, "idx: %s%lu bytes, the header (dims %d x %d x %d x %d) implies %lu",
                           what, (unsigned long)size, out->dims[0], out->dims[1], out->dims[2], out->dims[3], (unsigned long)(hdr + n));
    if (size - hdr > n)
        return irmae__fail(IRMAE_ERR_FORMAT, "idx: %s%lu bytes after the data at offset %lu (the header implies %lu bytes)",
                           what, (unsigned long)(size - hdr - n), (unsigned long)(hdr + n), (unsigned long)(hdr + n));
    out->data = (unsigned char *)irmae__alloc(n ? n : 1, 1);
    if (!out->data) return irmae__fail(IRMAE_ERR_NOMEM, "idx: %lu bytes", (unsigned long)n);
    if (n) memcpy(out->data, p + hdr, n);
    out->size = n;
    out->rank = rank;
    return IRMAE_OK;
}

IRMAEDEF int irmae_idx_parse(irmae_idx *out, const void *data, size_t size)
{
    const unsigned char *p = (const unsigned char *)data;
    unsigned char *buf;
    size_t n;
    int rc;
    if (!out) return irmae__fail(IRMAE_ERR_ARG, "idx: out is NULL");
    memset(out, 0, sizeof *out);
    if (!data && size) return irmae__fail(IRMAE_ERR_ARG, "idx: data is NULL with size %lu", (unsigned long)size);
    if (size >= 2 && p[0] == 0x1f && p[1] == 0x8b) {
        rc = irmae_gzip_decompress(&buf, &n, p, size, IRMAE_MAX_ALLOC);
        if (rc) return rc;
        rc = irmae__idx_raw(buf, n, out, "(decompressed) ");
        irmae__free(buf);
    } else {
        rc = irmae__idx_raw(p, size, out, "");
    }
    if (rc) memset(out, 0, sizeof *out);
    return rc;
}

IRMAEDEF int irmae_idx_load(irmae_idx *out, const char *path)
{
    unsigned char *buf;
    size_t size;
    int rc;
    if (!out) return irmae__fail(IRMAE_ERR_ARG, "idx: out is NULL");
    memset(out, 0, sizeof *out);
    rc = irmae__cd_read_file(path, &buf, &size);
    if (rc) return rc;
    rc = irmae_idx_parse(out, buf, size);
    irmae__free(buf);
    return rc ? irmae__cd_tag_path(rc, path) : IRMAE_OK;
}

IRMAEDEF void irmae_idx_free(irmae_idx *idx)
{
    if (!idx) return;
    irmae__free(idx->data);
    memset(idx, 0, sizeof *idx);
}

/* ---------------------------------------------------------------------- */
/* Resampling (separable triangle filter at pixel centres)      @resample */
/* ---------------------------------------------------------------------- */

/* Weights of one axis: output o reads in[first[o] .. first[o] + cnt[o]) with
   weights w[o * taps ..]. */
typedef struct irmae__rs_axis {
    int taps;
    int *first, *cnt;
    float *w;
} irmae__rs_axis;

static void irmae__rs_free(irmae__rs_axis *a)
{
    irmae__free(a->first); irmae__free(a->cnt); irmae__free(a->w);
    memset(a, 0, sizeof *a);
}

static int irmae__rs_init(irmae__rs_axis *a, int in, int out)
{
    double scale = (double)in / (double)out;
    double fs = scale > 1.0 ? scale : 1.0; /* filter scale: widen when shrinking */
    int o, j, lo, hi, n;
    memset(a, 0, sizeof *a);
    a->taps = (int)ceil(2.0 * fs) + 3; /* >= the number of pixels in [lo, hi] below */
    a->first = (int *)irmae__alloc((size_t)out, sizeof(int));
    a->cnt = (int *)irmae__alloc((size_t)out, sizeof(int));
    a->w = (float *)irmae__alloc((size_t)out, (size_t)a->taps * sizeof(float));
    if (!a->first || !a->cnt || !a->w) { irmae__rs_free(a); return irmae__fail(IRMAE_ERR_NOMEM, "resize: %d -> %d weights", in, out); }
    for (o = 0; o < out; o++) {
        double center = ((double)o + 0.5) * scale, sum = 0.0, wt, t;
        float *ws = a->w + (size_t)o * (size_t)a->taps;
        lo = (int)floor(center - fs - 0.5);
        hi = (int)ceil(center + fs - 0.5);
        if (lo < 0) lo = 0;
        if (hi > in - 1) hi = in - 1;
        /* drop pixels of zero weight at both ends */
        while (lo < hi && fabs(((double)lo + 0.5 - center) / fs) >= 1.0) lo++;
        while (hi > lo && fabs(((double)hi + 0.5 - center) / fs) >= 1.0) hi--;
        n = hi - lo + 1;
        if (n > a->taps) n = a->taps; /* cannot happen */
        for (j = 0; j < n; j++) {
            t = fabs(((double)(lo + j) + 0.5 - center) / fs);
            wt = t < 1.0 ? 1.0 - t : 0.0;
            ws[j] = (float)wt;
            sum += wt;
        }
        if (sum <= 0.0) { ws[0] = 1.0f; n = 1; sum = 1.0; } /* cannot happen: the nearest pixel weighs > 0 */
        for (j = 0; j < n; j++) ws[j] = (float)(ws[j] / sum);
        a->first[o] = lo;
        a->cnt[o] = n;
    }
    return IRMAE_OK;
}

/* Resizes one plane src (ih x iw) into dst (oh x ow); tmp holds ih * ow floats. */
static void irmae__rs_plane(float *dst, const float *src, float *tmp, int ih, int iw, int oh, int ow,
                            const irmae__rs_axis *ax, const irmae__rs_axis *ay)
{
    int y, x, j;
    for (y = 0; y < ih; y++)
        for (x = 0; x < ow; x++) {
            const float *wt = ax->w + (size_t)x * ax->taps;
            const float *s = src + (size_t)y * iw + ax->first[x];
            float acc = 0.0f;
            for (j = 0; j < ax->cnt[x]; j++) acc += wt[j] * s[j];
            tmp[(size_t)y * ow + x] = acc;
        }
    for (y = 0; y < oh; y++) {
        const float *wt = ay->w + (size_t)y * ay->taps;
        float *d = dst + (size_t)y * ow;
        for (x = 0; x < ow; x++) d[x] = 0.0f;
        for (j = 0; j < ay->cnt[y]; j++) {
            const float *s = tmp + (size_t)(ay->first[y] + j) * ow;
            float wj = wt[j];
            for (x = 0; x < ow; x++) d[x] += wj * s[x];
        }
    }
    (void)iw;
}

/* ---------------------------------------------------------------------- */
/* MNIST, image folders, batches                                   @mnist */
/* ---------------------------------------------------------------------- */

IRMAEDEF int irmae_mnist_load(irmae_dataset *ds, const char *images_path, const char *labels_path,
                              int out_h, int out_w, int range_pm1)
{
    irmae_idx im, lb;
    irmae__rs_axis ax, ay;
    float *plane = NULL, *tmp = NULL;
    int rc, n, ih, iw, i;
    size_t k, np;
    memset(&im, 0, sizeof im); memset(&lb, 0, sizeof lb);
    memset(&ax, 0, sizeof ax); memset(&ay, 0, sizeof ay);
    if (!ds) return irmae__fail(IRMAE_ERR_ARG, "mnist: ds is NULL");
    memset(ds, 0, sizeof *ds);
    if (!images_path || !labels_path) return irmae__fail(IRMAE_ERR_ARG, "mnist: a path is NULL");
    if (out_h < 0 || out_w < 0) return irmae__fail(IRMAE_ERR_ARG, "mnist: output size %d x %d", out_h, out_w);
    if ((rc = irmae_idx_load(&im, images_path)) != 0) goto done;
    if ((rc = irmae_idx_load(&lb, labels_path)) != 0) goto done;
    if (im.rank != 3) { rc = irmae__fail(IRMAE_ERR_SHAPE, "mnist: images file '%.200s' has rank %d (must be 3)", images_path, im.rank); goto done; }
    if (lb.rank != 1) { rc = irmae__fail(IRMAE_ERR_SHAPE, "mnist: labels file '%.200s' has rank %d (must be 1)", labels_path, lb.rank); goto done; }
    if (im.dims[0] != lb.dims[0]) {
        rc = irmae__fail(IRMAE_ERR_MISMATCH, "mnist: %d images in '%.200s' but %d labels in '%.200s'", im.dims[0], images_path, lb.dims[0], labels_path);
        goto done;
    }
    n = im.dims[0]; ih = im.dims[1]; iw = im.dims[2];
    if (n == 0 || ih == 0 || iw == 0) { rc = irmae__fail(IRMAE_ERR_FORMAT, "mnist: empty data set %d x %d x %d in '%.200s'", n, ih, iw, images_path); goto done; }
    if (!out_h) out_h = ih;
    if (!out_w) out_w = iw;
    if ((rc = irmae_dataset_alloc(ds, n, 1, out_h, out_w, 1)) != 0) goto done;
    np = (size_t)ih * (size_t)iw; /* <= im.size, fits */
    plane = (float *)irmae__alloc(np, sizeof(float));
    tmp = (float *)irmae__alloc((size_t)ih, (size_t)out_w * sizeof(float));
    if (!plane || !tmp) { rc = irmae__fail(IRMAE_ERR_NOMEM, "mnist: resize buffers"); goto done; }
    if ((rc = irmae__rs_init(&ax, iw, out_w)) != 0) goto done;
    if ((rc = irmae__rs_init(&ay, ih, out_h)) != 0) goto done;
    for (i = 0; i < n; i++) {
        const unsigned char *src = im.data + (size_t)i * np;
        float *dst = irmae_dataset_image(ds, i);
        size_t no = (size_t)out_h * (size_t)out_w;
        for (k = 0; k < np; k++) plane[k] = (float)src[k] / 255.0f;
        irmae__rs_plane(dst, plane, tmp, ih, iw, out_h, out_w, &ax, &ay);
        if (range_pm1) for (k = 0; k < no; k++) dst[k] = dst[k] * 2.0f - 1.0f;
        ds->labels[i] = lb.data[i];
    }
done:
    irmae_idx_free(&im);
    irmae_idx_free(&lb);
    irmae__rs_free(&ax);
    irmae__rs_free(&ay);
    irmae__free(plane);
    irmae__free(tmp);
    if (rc) irmae_dataset_free(ds);
    return rc;
}

/* Sorted list of the *.png names in a folder. */
typedef struct irmae__cd_names { char **v; int n, cap; } irmae__cd_names;

static void irmae__cd_names_free(irmae__cd_names *l)
{
    int i;
    for (i = 0; i < l->n; i++) irmae__free(l->v[i]);
    irmae__free(l->v);
    memset(l, 0, sizeof *l);
}

static int irmae__cd_names_add(irmae__cd_names *l, const char *name)
{
    size_t len = strlen(name), i;
    char *s;
    if (len < 4) return IRMAE_OK;
    for (i = 0; i < 4; i++) {
        char ch = name[len - 4 + i];
        if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
        if (ch != ".png"[i]) return IRMAE_OK;
    }
    if (l->n == l->cap) {
        int ncap = l->cap ? l->cap * 2 : 64;
        char **nv;
        if (l->cap > INT_MAX / 2) return irmae__fail(IRMAE_ERR_LIMIT, "images: more than %d files", l->cap);
        nv = (char **)irmae__alloc((size_t)ncap, sizeof(char *));
        if (!nv) return irmae__fail(IRMAE_ERR_NOMEM, "images: file list of %d names", ncap);
        if (l->n) memcpy(nv, l->v, (size_t)l->n * sizeof(char *));
        irmae__free(l->v);
        l->v = nv; l->cap = ncap;
    }
    s = (char *)irmae__alloc(len + 1, 1);
    if (!s) return irmae__fail(IRMAE_ERR_NOMEM, "images: file name");
    memcpy(s, name, len + 1);
    l->v[l->n++] = s;
    return IRMAE_OK;
}

static int irmae__cd_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int irmae__cd_list_png(const char *folder, irmae__cd_names *l)
{
    int rc = IRMAE_OK;
#if defined(_WIN32)
    char pattern[4096];
    WIN32_FIND_DATAA fd;
    HANDLE hf;
    if (strlen(folder) > sizeof pattern - 8) return irmae__fail(IRMAE_ERR_ARG, "images: folder name too long");
    snprintf(pattern, sizeof pattern, "%s\\*", folder);
    hf = FindFirstFileA(pattern, &fd);
    if (hf == INVALID_HANDLE_VALUE) return irmae__fail(IRMAE_ERR_IO, "images: cannot list folder '%.300s'", folder);
    do {
        if (!(fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)) rc = irmae__cd_names_add(l, fd.cFileName);
    } while (!rc && FindNextFileA(hf, &fd));
    FindClose(hf);
#else
    DIR *dir = opendir(folder);
    struct dirent *e;
    if (!dir) return irmae__fail(IRMAE_ERR_IO, "images: cannot open folder '%.300s'", folder);
    while (!rc && (e = readdir(dir)) != NULL) rc = irmae__cd_names_add(l, e->d_name);
    closedir(dir);
#endif
    if (rc) return rc;
    if (l->n == 0) return irmae__fail(IRMAE_ERR_IO, "images: no .png file in folder '%.300s'", folder);
    qsort(l->v, (size_t)l->n, sizeof(char *), irmae__cd_cmp_names);
    return IRMAE_OK;
}

/* torchvision's CenterCrop offset: round((size - crop) / 2), halves to even. */
static int irmae__cd_crop_off(int size, int crop)
{
    int diff = size - crop, half = diff / 2;
    if ((diff & 1) && (half & 1)) half++;
    return half;
}

IRMAEDEF int irmae_images_load(irmae_dataset *ds, const char *folder, int c, int out_h, int out_w,
                               int crop, int range_pm1)
{
    irmae__cd_names names;
    irmae__rs_axis ax, ay;
    irmae_image img;
    char *path = NULL;
    float *plane = NULL, *tmp = NULL;
    size_t flen, pcap = 0, no;
    int rc = IRMAE_OK, i, ch, x, y, oh, ow, ih, iw, top, left, ax_in = -1, ay_in = -1;
    memset(&names, 0, sizeof names);
    memset(&ax, 0, sizeof ax); memset(&ay, 0, sizeof ay);
    memset(&img, 0, sizeof img);
    if (!ds) return irmae__fail(IRMAE_ERR_ARG, "images: ds is NULL");
    memset(ds, 0, sizeof *ds);
    if (!folder) return irmae__fail(IRMAE_ERR_ARG, "images: folder is NULL");
    if (c < 1 || c > 4) return irmae__fail(IRMAE_ERR_ARG, "images: c = %d (must be 1..4)", c);
    if (out_h < 0 || out_w < 0 || crop < 0 || (out_h == 0) != (out_w == 0))
        return irmae__fail(IRMAE_ERR_ARG, "images: out %d x %d, crop %d (sizes >= 0, out_h and out_w both 0 or both > 0)", out_h, out_w, crop);
    if ((rc = irmae__cd_list_png(folder, &names)) != 0) goto done;
    flen = strlen(folder);
    for (i = 0; i < names.n; i++) {
        size_t need = flen + strlen(names.v[i]) + 2;
        const char *sep = (flen && (folder[flen - 1] == '/' || folder[flen - 1] == '\\')) ? "" : "/";
        if (need > pcap) {
            irmae__free(path);
            pcap = need * 2;
            path = (char *)irmae__alloc(pcap, 1);
            if (!path) { rc = irmae__fail(IRMAE_ERR_NOMEM, "images: path"); goto done; }
        }
        snprintf(path, pcap, "%s%s%s", folder, sep, names.v[i]);
        if ((rc = irmae_png_load(&img, path, c)) != 0) goto done;
        ih = crop ? crop : img.h;
        iw = crop ? crop : img.w;
        if (crop && (img.w < crop || img.h < crop)) {
            rc = irmae__fail(IRMAE_ERR_SHAPE, "images: '%.300s' is %d x %d, smaller than the crop %d", path, img.w, img.h, crop);
            goto done;
        }
        top = crop ? irmae__cd_crop_off(img.h, crop) : 0;
        left = crop ? irmae__cd_crop_off(img.w, crop) : 0;
        oh = out_h ? out_h : ih;
        ow = out_w ? out_w : iw;
        if (i == 0) {
            if ((rc = irmae_dataset_alloc(ds, names.n, c, oh, ow, 0)) != 0) goto done;
        } else if (oh != ds->h || ow != ds->w) {
            rc = irmae__fail(IRMAE_ERR_SHAPE, "images: '%.300s' gives %d x %d, the first image %d x %d (set out_h, out_w)", path, oh, ow, ds->h, ds->w);
            goto done;
        }
        if (iw != ax_in || ih != ay_in) { /* new input size: new weights and buffers */
            irmae__rs_free(&ax); irmae__rs_free(&ay);
            irmae__free(plane); irmae__free(tmp);
            plane = (float *)irmae__alloc((size_t)ih * (size_t)iw, sizeof(float));
            tmp = (float *)irmae__alloc((size_t)ih * (size_t)ow, sizeof(float));
            if (!plane || !tmp) { rc = irmae__fail(IRMAE_ERR_NOMEM, "images: %d x %d planes", ih, iw); goto done; }
            if ((rc = irmae__rs_init(&ax, iw, ow)) != 0) goto done;
            if ((rc = irmae__rs_init(&ay, ih, oh)) != 0) goto done;
            ax_in = iw; ay_in = ih;
        }
        no = (size_t)oh * (size_t)ow;
        for (ch = 0; ch < c; ch++) {
            float *dst = irmae_dataset_image(ds, i) + (size_t)ch * no;
            size_t k;
            for (y = 0; y < ih; y++)
                for (x = 0; x < iw; x++)
                    plane[(size_t)y * iw + x] =
                        (float)img.pixels[(((size_t)(y + top)) * img.w + (size_t)(x + left)) * (size_t)c + (size_t)ch] / 255.0f;
            irmae__rs_plane(dst, plane, tmp, ih, iw, oh, ow, &ax, &ay);
            if (range_pm1) for (k = 0; k < no; k++) dst[k] = dst[k] * 2.0f - 1.0f;
        }
        irmae_image_free(&img);
    }
done:
    irmae_image_free(&img);
    irmae__cd_names_free(&names);
    irmae__rs_free(&ax);
    irmae__rs_free(&ay);
    irmae__free(plane);
    irmae__free(tmp);
    irmae__free(path);
    if (rc) irmae_dataset_free(ds);
    return rc;
}


#endif /* IRMAE_NO_LOADERS */
#ifndef IRMAE_NO_ANALYSIS
/* ---------------------------------------------------------------------- */
/* Analysis: covariance, eigen-solver, spectrum, Gaussian / GMM, PCA,      */
/* Frechet distance                                              @analysis */
/* ---------------------------------------------------------------------- */

/* Rows per block when accumulating centred outer products. Parallel regions
   are opened only around coarse work (outer products of a block of rows, a
   whole E-step, a matrix product): the eigen-solver's steps are too small
   (a region per Householder step or QR sweep ran 5-20x slower than serial
   on a loaded 2-core machine), so it is serial. */
#define IRMAE__ANA_CHUNK 256

/* uniform double in [0, 1) with 53 random bits */
static double irmae__ana_u01(irmae_rng *r)
{
    return (double)(irmae_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* a x b doubles, zero-filled; NULL on overflow or failure */
static double *irmae__ana_dalloc(size_t a, size_t b)
{
    size_t t;
    if (!irmae__mul(&t, a, b)) return NULL;
    return (double *)irmae__alloc(t, sizeof(double));
}

/* dot product with four running sums: breaks the add latency chain (the
   compiler may not reorder a floating-point reduction itself); the order is
   fixed, so results are reproducible */
static double irmae__ana_dot(const double *a, const double *b, int n)
{
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

/* Checks count >= mincount, n > 0, and that count * n floats and n * n
   doubles are addressable. */
static int irmae__ana_dims(const char *fn, int count, int mincount, int n)
{
    size_t t;
    if (count < mincount)
        return irmae__fail(IRMAE_ERR_ARG, "%s: count %d < %d", fn, count, mincount);
    if (n <= 0) return irmae__fail(IRMAE_ERR_ARG, "%s: dimension %d <= 0", fn, n);
    if (!irmae__mul3(&t, (size_t)count, (size_t)n, sizeof(float)) ||
        !irmae__mul3(&t, (size_t)n, (size_t)n, sizeof(double)))
        return irmae__fail(IRMAE_ERR_OVERFLOW, "%s: %d x %d does not fit in memory", fn, count, n);
    return IRMAE_OK;
}

/* First NaN/Inf in a count x n float array -> IRMAE_ERR_NUMERIC naming it. */
static int irmae__ana_finite_f(const char *fn, const char *what, const float *x, int count, int n)
{
    size_t total = (size_t)count * (size_t)n, i;
    for (i = 0; i < total; i++)
        if (!(fabs((double)x[i]) <= DBL_MAX))
            return irmae__fail(IRMAE_ERR_NUMERIC, "%s: %s[%lu][%lu] is not finite", fn, what,
                               (unsigned long)(i / (size_t)n), (unsigned long)(i % (size_t)n));
    return IRMAE_OK;
}

/* s (n x n, upper triangle with diagonal) += c^T c, c is rows x n row-major.
   Each thread owns whole rows of s and sums over c's rows in order, so the
   result does not depend on the thread count. */
static void irmae__ana_syrk_upper(double *s, const double *c, int rows, int n)
{
    int i;
    IRMAE__OMP(parallel for if((double)rows * n * n >= 4194304.0) schedule(dynamic, 8))
    for (i = 0; i < n; i++) {
        double *si = s + (size_t)i * n;
        int r = 0, j;
        for (; r + 4 <= rows; r += 4) { /* four rows per pass over s_i */
            const double *c0 = c + (size_t)r * n, *c1 = c0 + n, *c2 = c1 + n, *c3 = c2 + n;
            double f0 = c0[i], f1 = c1[i], f2 = c2[i], f3 = c3[i];
            if (f0 == 0.0 && f1 == 0.0 && f2 == 0.0 && f3 == 0.0) continue;
            for (j = i; j < n; j++) si[j] += (f0 * c0[j] + f1 * c1[j]) + (f2 * c2[j] + f3 * c3[j]);
        }
        for (; r < rows; r++) {
            const double *cr = c + (size_t)r * n;
            double f = cr[i];
            if (f == 0.0) continue;
            for (j = i; j < n; j++) si[j] += f * cr[j];
        }
    }
}

/* Copies the upper triangle of s (n x n) onto the lower one. */
static void irmae__ana_mirror(double *s, int n)
{
    int i, j;
    for (i = 1; i < n; i++)
        for (j = 0; j < i; j++) s[(size_t)i * n + j] = s[(size_t)j * n + i];
}

/* s = sum_r w_r (x_r - mu)(x_r - mu)^T (full n x n) and dev = sum_r w_r (x_r - mu);
   w NULL means all weights 1, else w_r >= 0. Returns 0 or IRMAE_ERR_NOMEM. */
static int irmae__ana_scatter(double *s, double *dev, const float *x, const double *w,
                              const double *mu, int count, int n)
{
    double *buf = irmae__ana_dalloc((size_t)IRMAE__ANA_CHUNK, (size_t)n);
    int r0, j;
    if (!buf) return IRMAE_ERR_NOMEM;
    memset(s, 0, (size_t)n * (size_t)n * sizeof(double));
    memset(dev, 0, (size_t)n * sizeof(double));
    for (r0 = 0; r0 < count;) { /* r0 += rows at the end: no overflow near INT_MAX */
        int rows = count - r0 < IRMAE__ANA_CHUNK ? count - r0 : IRMAE__ANA_CHUNK, r;
        for (r = 0; r < rows; r++) {
            const float *xr = x + (size_t)(r0 + r) * n;
            double *br = buf + (size_t)r * n;
            double wr = w ? w[r0 + r] : 1.0, sw = w ? sqrt(wr) : 1.0;
            for (j = 0; j < n; j++) {
                double dj = (double)xr[j] - mu[j];
                dev[j] += wr * dj;
                br[j] = sw * dj;
            }
        }
        irmae__ana_syrk_upper(s, buf, rows, n);
        r0 += rows;
    }
    irmae__ana_mirror(s, n);
    irmae__free(buf);
    return IRMAE_OK;
}

/* Unchecked core of irmae_covariance: mean (n, required) and cov. */
static int irmae__ana_cov(double *cov, double *mean, const float *x, int count, int n)
{
    double *dev = irmae__ana_dalloc((size_t)n, 1);
    int r, i, j, rc;
    if (!dev) return IRMAE_ERR_NOMEM;
    for (j = 0; j < n; j++) mean[j] = 0.0;
    for (r = 0; r < count; r++) {
        const float *xr = x + (size_t)r * n;
        for (j = 0; j < n; j++) mean[j] += (double)xr[j];
    }
    for (j = 0; j < n; j++) mean[j] /= (double)count;
    rc = irmae__ana_scatter(cov, dev, x, NULL, mean, count, n);
    if (rc == IRMAE_OK) {
        /* second-pass correction: subtract (sum of deviations)^2 / count */
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) {
                double *cij = cov + (size_t)i * n + j;
                *cij = (*cij - dev[i] * dev[j] / (double)count) / (double)(count - 1);
            }
    }
    irmae__free(dev);
    return rc;
}

IRMAEDEF int irmae_covariance(double *cov, double *mean, const float *x, int count, int n)
{
    double *mu;
    int rc;
    if (!cov || !x) return irmae__fail(IRMAE_ERR_ARG, "covariance: %s is NULL", !cov ? "cov" : "x");
    if ((rc = irmae__ana_dims("covariance", count, 2, n)) != IRMAE_OK) return rc;
    if ((rc = irmae__ana_finite_f("covariance", "x", x, count, n)) != IRMAE_OK) return rc;
    mu = mean ? mean : irmae__ana_dalloc((size_t)n, 1);
    if (!mu) return irmae__fail(IRMAE_ERR_NOMEM, "covariance: mean of %d", n);
    rc = irmae__ana_cov(cov, mu, x, count, n);
    if (mu != mean) irmae__free(mu);
    if (rc) return irmae__fail(rc, "covariance: work buffers for n = %d", n);
    return IRMAE_OK;
}

/* ---- symmetric eigen-solver ------------------------------------------ */

/* Householder vector of one step, in place: v (m entries) holds x on entry
   and v = x - alpha e1 on exit, with alpha = -sign(x0) |x| (no cancellation).
   *ek = alpha; returns tau = 2 / v.v, or 0 (and *ek = x0) when x is already
   a multiple of e1. */
static double irmae__ana_reflector(double *v, int m, double *ek)
{
    double x0 = v[0], sigma, norm, alpha;
    sigma = irmae__ana_dot(v + 1, v + 1, m - 1);
    if (sigma == 0.0) { *ek = x0; return 0.0; }
    norm = sqrt(x0 * x0 + sigma);
    alpha = x0 >= 0.0 ? -norm : norm;
    v[0] = x0 - alpha;
    *ek = alpha;
    return 2.0 / (v[0] * v[0] + sigma);
}

/* Householder reduction of the symmetric w (n x n, full storage) to
   tridiagonal form T = Q^T w Q: diagonal d (n), off-diagonal e (n - 1).
   The reflector of step k, H_k = I - tau[k] v v^T acting on indices k+1..n-1,
   is left in row k of w (columns k+1..n-1); Q = H_0 H_1 ... H_{n-3}.
   Step k updates the trailing block S -= v q^T + q v^T, q = p - (tau/2)(v.p) v,
   p = tau S v. The next step's reflector comes from the first updated row,
   so its product p' = tau' S' v' is accumulated in the same pass over S (one
   sweep over the block per step instead of two). scratch: 2 n doubles. */
static void irmae__ana_tridiag(double *w, int n, double *d, double *e, double *tau, double *scratch)
{
    double *p = scratch, *p2 = scratch + n, *sw;
    int k, i, j;
    if (n >= 3) { /* step 0: reflector and p */
        double *v = w + 1, *s = w + (size_t)n + 1;
        int m = n - 1;
        tau[0] = irmae__ana_reflector(v, m, &e[0]);
        if (tau[0] != 0.0)
            for (i = 0; i < m; i++) p[i] = tau[0] * irmae__ana_dot(s + (size_t)i * n, v, m);
    }
    for (k = 0; k + 2 < n; k++) {
        int m = n - k - 1, next = k + 3 < n;
        double *v = w + (size_t)k * n + k + 1;       /* this step's reflector (row k) */
        double *s = w + (size_t)(k + 1) * n + k + 1; /* trailing m x m block */
        double *v2 = s + 1;                          /* next reflector: row k+1, m-1 entries */
        double t = tau[k], t2 = 0.0, kk = 0.0;
        d[k] = w[(size_t)k * n + k];
        if (t != 0.0) { /* q = p - (t/2)(v.p) v, then row 0 of S */
            kk = 0.5 * t * irmae__ana_dot(v, p, m);
            for (i = 0; i < m; i++) p[i] -= kk * v[i];
            for (j = 0; j < m; j++) s[j] -= v[0] * p[j] + p[0] * v[j];
        }
        if (next) t2 = tau[k + 1] = irmae__ana_reflector(v2, m - 1, &e[k + 1]);
        if (t == 0.0 && t2 == 0.0) continue;
        for (i = 1; i < m; i++) {
            double *si = s + (size_t)i * n;
            if (t != 0.0) {
                double vi = v[i], qi = p[i];
                /* column 0 (= column k+1) of rows below is never read again */
                for (j = 1; j < m; j++) si[j] -= vi * p[j] + qi * v[j];
            }
            if (t2 != 0.0) p2[i - 1] = t2 * irmae__ana_dot(si + 1, v2, m - 1);
        }
        sw = p; p = p2; p2 = sw;
    }
    if (n >= 2) {
        d[n - 2] = w[(size_t)(n - 2) * n + n - 2];
        e[n - 2] = w[(size_t)(n - 2) * n + n - 1];
    }
    d[n - 1] = w[(size_t)(n - 1) * n + n - 1];
}

/* z = Q^T (n x n) from the reflectors left in w by irmae__ana_tridiag. */
static void irmae__ana_form_qt(double *z, const double *w, const double *tau, int n)
{
    int k, r;
    memset(z, 0, (size_t)n * (size_t)n * sizeof(double));
    for (r = 0; r < n; r++) z[(size_t)r * n + r] = 1.0;
    for (k = n - 3; k >= 0; k--) {
        const double *v = w + (size_t)k * n + k + 1;
        int m = n - k - 1;
        double t = tau[k];
        if (t == 0.0) continue;
        /* z <- z H_k; rows above k+1 are unit vectors orthogonal to v */
        for (r = k + 1; r < n; r++) {
            double *zr = z + (size_t)r * n + k + 1;
            double dot = t * irmae__ana_dot(zr, v, m);
            int j;
            for (j = 0; j < m; j++) zr[j] -= dot * v[j];
        }
    }
}

/* Applies the rotations of one QR sweep over rows l..m of z (n columns):
   for k = l..m-1, rows (k, k+1) <- [c s; -s c] (rows k, k+1). Blocks of 64
   columns keep the touched rows in cache. */
static void irmae__ana_apply_rot(double *z, int n, int l, int m, const double *cs)
{
    int nb = (n + 63) / 64, b;
    for (b = 0; b < nb; b++) {
        int j0 = b * 64, j1 = j0 + 64 < n ? j0 + 64 : n, k, j;
        for (k = l; k < m; k++) {
            double c = cs[2 * (k - l)], s = cs[2 * (k - l) + 1];
            double *zp = z + (size_t)k * n, *zq = zp + n;
            for (j = j0; j < j1; j++) {
                double pv = zp[j], qv = zq[j];
                zp[j] = c * pv + s * qv;
                zq[j] = c * qv - s * pv;
            }
        }
    }
}

/* is the off-diagonal e negligible next to its diagonal neighbours a, b? */
static int irmae__ana_negligible(double e, double a, double b, double floor_abs)
{
    double ae = fabs(e);
    return ae <= DBL_EPSILON * (fabs(a) + fabs(b)) || ae <= floor_abs;
}

/* Implicit symmetric QR with Wilkinson shifts on the tridiagonal (d, e).
   z (rows = vectors, n x n) is rotated along when non-NULL; cs holds
   2 (n - 1) doubles of scratch. Returns 0 or IRMAE_ERR_CONVERGENCE. */
static int irmae__ana_tridiag_qr(double *d, double *e, int n, double *z, double *cs)
{
    double tnorm = 0.0, floor_abs;
    int i, m = n - 1, iter = 0;
    for (i = 0; i < n; i++) {
        double r = fabs(d[i]) + (i + 1 < n ? fabs(e[i]) : 0.0) + (i > 0 ? fabs(e[i - 1]) : 0.0);
        if (r > tnorm) tnorm = r;
    }
    floor_abs = DBL_EPSILON * DBL_EPSILON * tnorm;
    while (m > 0) {
        int l, k;
        double mu, x, y;
        if (irmae__ana_negligible(e[m - 1], d[m - 1], d[m], floor_abs)) {
            e[m - 1] = 0.0;
            m--;
            iter = 0;
            continue;
        }
        for (l = m - 1; l > 0; l--)
            if (irmae__ana_negligible(e[l - 1], d[l - 1], d[l], floor_abs)) { e[l - 1] = 0.0; break; }
        if (++iter > 100) return IRMAE_ERR_CONVERGENCE;
        {   /* Wilkinson shift: eigenvalue of the trailing 2x2 nearer d[m] */
            double half = 0.5 * (d[m - 1] - d[m]), b = e[m - 1], r = hypot(half, b);
            mu = d[m] - b * (b / (half + (half >= 0.0 ? r : -r)));
        }
        x = d[l] - mu;
        y = e[l];
        for (k = l; k < m; k++) {
            double r = hypot(x, y), c, s, a, b, dd;
            if (r == 0.0) { c = 1.0; s = 0.0; } else { c = x / r; s = y / r; }
            if (k > l) e[k - 1] = r;
            a = d[k]; b = e[k]; dd = d[k + 1];
            d[k] = c * c * a + 2.0 * c * s * b + s * s * dd;
            d[k + 1] = s * s * a - 2.0 * c * s * b + c * c * dd;
            e[k] = (c * c - s * s) * b + c * s * (dd - a);
            if (k + 1 < m) { y = s * e[k + 1]; e[k + 1] *= c; } /* bulge at (k, k+2) */
            x = e[k];
            cs[2 * (k - l)] = c;
            cs[2 * (k - l) + 1] = s;
        }
        if (z) irmae__ana_apply_rot(z, n, l, m, cs);
    }
    return IRMAE_OK;
}

IRMAEDEF int irmae_eigh(double *eigenvalues, double *vectors, const double *a, int n)
{
    double *w, *e, *tau, *cs, amax = 0.0, *d = eigenvalues;
    size_t nn, i, j;
    int ex = 0, rc, k;
    if (!a || !eigenvalues)
        return irmae__fail(IRMAE_ERR_ARG, "eigh: %s is NULL", !a ? "a" : "eigenvalues");
    if (n <= 0) return irmae__fail(IRMAE_ERR_ARG, "eigh: n = %d <= 0", n);
    if (!irmae__mul3(&nn, (size_t)n, (size_t)n, sizeof(double)))
        return irmae__fail(IRMAE_ERR_OVERFLOW, "eigh: %d x %d doubles", n, n);
    nn = (size_t)n * (size_t)n;
    for (i = 0; i < nn; i++)
        if (!(fabs(a[i]) <= DBL_MAX))
            return irmae__fail(IRMAE_ERR_NUMERIC, "eigh: a[%lu][%lu] is not finite",
                               (unsigned long)(i / (size_t)n), (unsigned long)(i % (size_t)n));
    w = irmae__ana_dalloc(nn, 1);
    e = irmae__ana_dalloc((size_t)n, 1);
    tau = irmae__ana_dalloc((size_t)n, 1);
    cs = irmae__ana_dalloc((size_t)n, 2);
    if (!w || !e || !tau || !cs) {
        irmae__free(w); irmae__free(e); irmae__free(tau); irmae__free(cs);
        return irmae__fail(IRMAE_ERR_NOMEM, "eigh: work space for n = %d", n);
    }
    for (i = 0; i < (size_t)n; i++)
        for (j = 0; j < (size_t)n; j++) {
            double v = 0.5 * a[i * n + j] + 0.5 * a[j * n + i];
            w[i * n + j] = v;
            if (fabs(v) > amax) amax = fabs(v);
        }
    rc = IRMAE_OK;
    if (amax == 0.0) {
        for (i = 0; i < (size_t)n; i++) d[i] = 0.0;
        if (vectors) {
            memset(vectors, 0, nn * sizeof(double));
            for (i = 0; i < (size_t)n; i++) vectors[i * n + i] = 1.0;
        }
    } else {
        /* scale by a power of two (exact) so that max |w| is in [0.5, 1) */
        (void)frexp(amax, &ex);
        for (i = 0; i < nn; i++) w[i] = ldexp(w[i], -ex);
        irmae__ana_tridiag(w, n, d, e, tau, cs);
        if (vectors) irmae__ana_form_qt(vectors, w, tau, n);
        rc = irmae__ana_tridiag_qr(d, e, n, vectors, cs);
        if (rc == IRMAE_OK) {
            /* selection sort, descending, rows of vectors alongside */
            for (k = 0; k + 1 < n; k++) {
                int best = k, q;
                for (q = k + 1; q < n; q++) if (d[q] > d[best]) best = q;
                if (best != k) {
                    double t = d[k]; d[k] = d[best]; d[best] = t;
                    if (vectors) {
                        double *rk = vectors + (size_t)k * n, *rb = vectors + (size_t)best * n;
                        for (j = 0; j < (size_t)n; j++) { t = rk[j]; rk[j] = rb[j]; rb[j] = t; }
                    }
                }
            }
            for (i = 0; i < (size_t)n; i++) d[i] = ldexp(d[i], ex);
            if (vectors) /* re-normalise (rounding drift only) */
                for (i = 0; i < (size_t)n; i++) {
                    double *r = vectors + i * n, s2 = 0.0;
                    for (j = 0; j < (size_t)n; j++) s2 += r[j] * r[j];
                    s2 = 1.0 / sqrt(s2);
                    for (j = 0; j < (size_t)n; j++) r[j] *= s2;
                }
        }
    }
    irmae__free(w); irmae__free(e); irmae__free(tau); irmae__free(cs);
    if (rc) return irmae__fail(rc, "eigh: QR iteration on the %d x %d tridiagonal matrix", n, n);
    return IRMAE_OK;
}

/* ---- spectrum --------------------------------------------------------- */

IRMAEDEF void irmae_spectrum_free(irmae_spectrum *s)
{
    if (!s) return;
    irmae__free(s->values);
    irmae__free(s->normalized);
    memset(s, 0, sizeof *s);
}

IRMAEDEF int irmae_spectrum_rank(const irmae_spectrum *s, double threshold)
{
    int i, r = 0;
    if (!s || !s->normalized || s->n <= 0)
        return irmae__fail(IRMAE_ERR_ARG, "spectrum_rank: empty spectrum");
    if (threshold != threshold) return irmae__fail(IRMAE_ERR_ARG, "spectrum_rank: threshold is NaN");
    for (i = 0; i < s->n; i++) r += s->normalized[i] >= threshold;
    return r;
}

IRMAEDEF int irmae_spectrum_compute(irmae_spectrum *s, const float *codes, int count, int n)
{
    double *cov, sum = 0.0, h = 0.0;
    int rc, i;
    if (!s) return irmae__fail(IRMAE_ERR_ARG, "spectrum_compute: s is NULL");
    memset(s, 0, sizeof *s);
    if (!codes) return irmae__fail(IRMAE_ERR_ARG, "spectrum_compute: codes is NULL");
    if ((rc = irmae__ana_dims("spectrum_compute", count, 2, n)) != IRMAE_OK) return rc;
    cov = irmae__ana_dalloc((size_t)n, (size_t)n);
    s->values = irmae__ana_dalloc((size_t)n, 1);
    s->normalized = irmae__ana_dalloc((size_t)n, 1);
    if (!cov || !s->values || !s->normalized) {
        irmae__free(cov);
        irmae_spectrum_free(s);
        return irmae__fail(IRMAE_ERR_NOMEM, "spectrum_compute: n = %d", n);
    }
    rc = irmae_covariance(cov, NULL, codes, count, n);
    if (rc == IRMAE_OK) rc = irmae_eigh(s->values, NULL, cov, n);
    irmae__free(cov);
    if (rc) { irmae_spectrum_free(s); return rc; }
    s->n = n;
    for (i = 0; i < n; i++) {
        double v = s->values[i] > 0.0 ? s->values[i] : 0.0;
        s->normalized[i] = s->values[0] > 0.0 ? v / s->values[0] : 0.0;
        sum += v;
    }
    s->rank_1pct = irmae_spectrum_rank(s, 0.01);
    s->rank_01pct = irmae_spectrum_rank(s, 0.001);
    if (sum > 0.0) {
        for (i = 0; i < n; i++) {
            double p = (s->values[i] > 0.0 ? s->values[i] : 0.0) / sum;
            if (p > 0.0) h -= p * log(p);
        }
        s->entropy_rank = exp(h);
    }
    return IRMAE_OK;
}

/* validates the (spectra, names, count) arguments of the writers; *maxn out */
static int irmae__ana_check_spectra(const char *fn, const char *path, const irmae_spectrum *const *sp,
                                    int count, int *maxn)
{
    int i;
    if (!path || !sp) return irmae__fail(IRMAE_ERR_ARG, "%s: %s is NULL", fn, !path ? "path" : "spectra");
    if (count <= 0) return irmae__fail(IRMAE_ERR_ARG, "%s: count %d <= 0", fn, count);
    *maxn = 0;
    for (i = 0; i < count; i++) {
        if (!sp[i] || !sp[i]->normalized || sp[i]->n <= 0)
            return irmae__fail(IRMAE_ERR_ARG, "%s: spectrum %d is NULL or empty", fn, i);
        if (sp[i]->n > *maxn) *maxn = sp[i]->n;
    }
    return IRMAE_OK;
}

/* finishes a file written with stdio: IO error if anything failed */
static int irmae__ana_close(FILE *f, const char *fn, const char *path)
{
    int bad = ferror(f);
    if (fclose(f) != 0) bad = 1;
    if (bad) return irmae__fail(IRMAE_ERR_IO, "%s: writing '%s' failed", fn, path);
    return IRMAE_OK;
}

IRMAEDEF int irmae_spectra_write_csv(const char *path, const irmae_spectrum *const *spectra,
                                     const char *const *names, int count)
{
    FILE *f;
    int maxn, rc, i, s;
    if ((rc = irmae__ana_check_spectra("spectra_write_csv", path, spectra, count, &maxn)) != IRMAE_OK)
        return rc;
    f = fopen(path, "wb");
    if (!f) return irmae__fail(IRMAE_ERR_IO, "spectra_write_csv: cannot open '%s'", path);
    fputs("index", f);
    for (s = 0; s < count; s++) {
        const char *nm = names ? names[s] : NULL;
        fputc(',', f);
        if (!nm) fprintf(f, "spectrum %d", s + 1);
        else if (strpbrk(nm, ",\"\r\n")) {
            const char *c;
            fputc('"', f);
            for (c = nm; *c; c++) { if (*c == '"') fputc('"', f); fputc(*c, f); }
            fputc('"', f);
        } else fputs(nm, f);
    }
    fputs("\n", f);
    for (i = 0; i < maxn; i++) {
        fprintf(f, "%d", i + 1);
        for (s = 0; s < count; s++) {
            fputc(',', f);
            if (i < spectra[s]->n) fprintf(f, "%.17g", spectra[s]->normalized[i]);
        }
        fputs("\n", f);
    }
    return irmae__ana_close(f, "spectra_write_csv", path);
}

/* Length of the XML-safe UTF-8 character at s (1..4), 0 if it is not valid
   UTF-8 or not an XML 1.0 character. *s != 0. */
static int irmae__ana_utf8_len(const unsigned char *s)
{
    unsigned c = s[0], c1;
    if (c < 0x80) return (c >= 0x20 || c == 0x09 || c == 0x0A || c == 0x0D) ? 1 : 0;
    c1 = s[1];
    if (c >= 0xC2 && c <= 0xDF) return (c1 & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if ((c1 & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && c1 < 0xA0) return 0;                       /* overlong */
        if (c == 0xED && c1 >= 0xA0) return 0;                      /* surrogates */
        if (c == 0xEF && c1 == 0xBF && (s[2] == 0xBE || s[2] == 0xBF)) return 0; /* U+FFFE/F */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if ((c1 & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && c1 < 0x90) return 0;                       /* overlong */
        if (c == 0xF4 && c1 >= 0x90) return 0;                      /* > U+10FFFF */
        return 4;
    }
    return 0;
}

/* writes s as XML character data / attribute text; returns its length in
   characters (for layout) */
static int irmae__ana_xml_text(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    int chars = 0;
    while (*p) {
        int len = irmae__ana_utf8_len(p);
        chars++;
        if (len == 0) { fputc('?', f); p++; continue; }
        if (len == 1) {
            switch (*p) {
            case '&': fputs("&amp;", f); break;
            case '<': fputs("&lt;", f); break;
            case '>': fputs("&gt;", f); break;
            case '"': fputs("&quot;", f); break;
            case '\'': fputs("&apos;", f); break;
            case '\t': case '\n': case '\r': fputc(' ', f); break;
            default: fputc(*p, f);
            }
        } else fwrite(p, 1, (size_t)len, f);
        p += len;
    }
    return chars;
}

/* number of characters irmae__ana_xml_text would count */
static int irmae__ana_text_chars(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    int chars = 0;
    while (*p) {
        int len = irmae__ana_utf8_len(p);
        p += len ? len : 1;
        chars++;
    }
    return chars;
}

/* tick step from {1, 2, 5} x 10^k giving about `target` intervals */
static double irmae__ana_nice_step(double range, int target)
{
    double raw = range / target, p, f;
    if (!(raw > 0.0)) return 1.0;
    p = pow(10.0, floor(log10(raw)));
    f = raw / p;
    return (f <= 1.0 ? 1.0 : f <= 2.0 ? 2.0 : f <= 5.0 ? 5.0 : 10.0) * p;
}

/* the start of a plot: XML declaration, svg element (W x H), white
   background, the title (may be NULL) centred at x = cx */
static void irmae__svg_begin(FILE *f, double W, double H, double cx, const char *title)
{
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H);
    fprintf(f, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", W, H);
    if (title) {
        fprintf(f, "<text x=\"%.1f\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">", cx);
        irmae__ana_xml_text(f, title);
        fputs("</text>\n", f);
    }
}

/* the plots' line colours */
static const char *const irmae__svg_colors[10] = {
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"
};

/* width of the legend box for these names */
static double irmae__svg_legend_width(const char *const *names, int count, const char *prefix, double pw)
{
    char defname[48];
    int s, maxchars = 0;
    double lw;
    for (s = 0; s < count; s++) {
        int c;
        if (names && names[s]) c = irmae__ana_text_chars(names[s]);
        else { sprintf(defname, "%.30s %d", prefix, s + 1); c = (int)strlen(defname); }
        if (c > maxchars) maxchars = c;
    }
    lw = 44.0 + 7.0 * maxchars;
    return lw > pw - 20.0 ? pw - 20.0 : lw;
}

/* legend box with its top left corner at (lx, ly); names[s] or "<prefix> s+1" */
static void irmae__svg_legend_at(FILE *f, const char *const *names, int count, const char *prefix,
                                 double lx, double ly, double lw)
{
    int s;
    fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" fill=\"#ffffff\" "
               "fill-opacity=\"0.85\" stroke=\"#999999\"/>\n", lx, ly, lw, 8.0 + 18.0 * count);
    for (s = 0; s < count; s++) {
        double yy = ly + 16.0 + 18.0 * s;
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" stroke-width=\"2.5\"/>\n",
                lx + 8.0, yy - 4.0, lx + 32.0, yy - 4.0, irmae__svg_colors[s % 10]);
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\">", lx + 38.0, yy);
        if (names && names[s]) irmae__ana_xml_text(f, names[s]);
        else fprintf(f, "%.30s %d", prefix, s + 1);
        fputs("</text>\n", f);
    }
}

/* legend at the top right inside a plot whose area ends at `right` (width pw) */
static void irmae__svg_legend(FILE *f, const char *const *names, int count, const char *prefix,
                              double right, double top, double pw)
{
    double lw = irmae__svg_legend_width(names, count, prefix, pw);
    irmae__svg_legend_at(f, names, count, prefix, right - lw - 10.0, top + 10.0, lw);
}

IRMAEDEF int irmae_spectra_write_svg(const char *path, const irmae_spectrum *const *spectra,
                                     const char *const *names, int count, const char *title)
{
    const char *const *colors = irmae__svg_colors;
    const double W = 720.0, H = 480.0, left = 72.0, right = 700.0, top = 48.0, bottom = 416.0;
    const double pw = right - left, ph = bottom - top;
    FILE *f;
    int maxn, rc, s, i;
    double xmax, step, t;
    if ((rc = irmae__ana_check_spectra("spectra_write_svg", path, spectra, count, &maxn)) != IRMAE_OK)
        return rc;
    f = fopen(path, "wb");
    if (!f) return irmae__fail(IRMAE_ERR_IO, "spectra_write_svg: cannot open '%s'", path);
    xmax = maxn < 2 ? 2.0 : (double)maxn;
#define IRMAE__SVG_X(v) (left + ((v) - 1.0) / (xmax - 1.0) * pw)
#define IRMAE__SVG_Y(v) (top + (1.0 - (v)) * ph)
    irmae__svg_begin(f, W, H, 0.5 * (left + right), title);
    /* horizontal grid and y ticks: 0, 0.1, ..., 1 (labels every 0.2) */
    fputs("<g stroke=\"#e0e0e0\" stroke-width=\"1\">\n", f);
    for (i = 0; i <= 10; i++)
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n",
                left, IRMAE__SVG_Y(i * 0.1), right, IRMAE__SVG_Y(i * 0.1));
    fputs("</g>\n<g stroke=\"#000000\" stroke-width=\"1\">\n", f);
    for (i = 0; i <= 10; i++)
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n",
                left - (i % 2 ? 3.0 : 6.0), IRMAE__SVG_Y(i * 0.1), left, IRMAE__SVG_Y(i * 0.1));
    /* x ticks at multiples of a nice step (and at 1 when the step is >= 5) */
    step = irmae__ana_nice_step(xmax - 1.0, 8);
    if (step < 1.0) step = 1.0;
    if (step >= 5.0)
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n",
                IRMAE__SVG_X(1.0), bottom, IRMAE__SVG_X(1.0), bottom + 6.0);
    for (t = step; t <= xmax + 1e-9; t += step)
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>\n",
                IRMAE__SVG_X(t), bottom, IRMAE__SVG_X(t), bottom + 6.0);
    fputs("</g>\n", f);
    /* axes */
    fprintf(f, "<path d=\"M%.2f %.2f L%.2f %.2f L%.2f %.2f\" fill=\"none\" stroke=\"#000000\" stroke-width=\"1.2\"/>\n",
            left, top, left, bottom, right, bottom);
    /* tick labels */
    fputs("<g fill=\"#000000\">\n", f);
    for (i = 0; i <= 10; i += 2)
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%.1f</text>\n",
                left - 9.0, IRMAE__SVG_Y(i * 0.1) + 4.0, i * 0.1);
    if (step >= 5.0)
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">1</text>\n", IRMAE__SVG_X(1.0), bottom + 20.0);
    for (t = step; t <= xmax + 1e-9; t += step)
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%.0f</text>\n",
                IRMAE__SVG_X(t), bottom + 20.0, t);
    fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"13\">singular value index</text>\n",
            0.5 * (left + right), H - 20.0);
    fprintf(f, "<text x=\"18\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"13\" "
               "transform=\"rotate(-90 18 %.2f)\">normalized singular value</text>\n",
            0.5 * (top + bottom), 0.5 * (top + bottom));
    fputs("</g>\n", f);
    /* curves */
    for (s = 0; s < count; s++) {
        const irmae_spectrum *sp = spectra[s];
        const char *col = colors[s % 10];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" stroke-linejoin=\"round\" points=\"", col);
        for (i = 0; i < sp->n; i++) {
            double v = sp->normalized[i];
            if (!(v >= 0.0)) v = 0.0;
            if (v > 1.0) v = 1.0;
            fprintf(f, "%s%.2f,%.2f", i ? " " : "", IRMAE__SVG_X(i + 1.0), IRMAE__SVG_Y(v));
        }
        fputs("\"/>\n", f);
        if (maxn <= 64) {
            fprintf(f, "<g fill=\"%s\">\n", col);
            for (i = 0; i < sp->n; i++) {
                double v = sp->normalized[i];
                if (!(v >= 0.0)) v = 0.0;
                if (v > 1.0) v = 1.0;
                fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"2.5\"/>\n", IRMAE__SVG_X(i + 1.0), IRMAE__SVG_Y(v));
            }
            fputs("</g>\n", f);
        }
    }
    irmae__svg_legend(f, names, count, "spectrum", right, top, pw);
    fputs("</svg>\n", f);
#undef IRMAE__SVG_X
#undef IRMAE__SVG_Y
    return irmae__ana_close(f, "spectra_write_svg", path);
}

/* a tick label: 12000 -> 12k, 5e6 -> 5M, 0.001 -> 0.001 */
static void irmae__svg_num(char *buf, double v)
{
    double a = fabs(v);
    if (a >= 1e6 && a < 1e15) sprintf(buf, "%gM", v / 1e6);
    else if (a >= 1e4 && a < 1e6) sprintf(buf, "%gk", v / 1e3);
    else sprintf(buf, "%g", fabs(v) < 1e-12 ? 0.0 : v);
}

/* 1 if the point is drawn */
static int irmae__plot_ok(const irmae_plot_opts *o, double x, double y)
{
    return isfinite(x) && isfinite(y) && (!o->log_y || y > 0.0);
}

/* y on the plot's axis scale */
static double irmae__plot_y(const irmae_plot_opts *o, double y) { return o->log_y ? log10(y) : y; }

IRMAEDEF int irmae_plot_write_svg(const char *path, const irmae_plot_series *series, int count,
                                  const irmae_plot_opts *opts)
{
    const double W = 720.0, H = 480.0, left = 80.0, right = 700.0, top = 48.0, bottom = 416.0;
    const double pw = right - left, ph = bottom - top;
    const char *names[64];
    irmae_plot_opts o;
    double x0 = HUGE_VAL, x1 = -HUGE_VAL, y0 = HUGE_VAL, y1 = -HUGE_VAL, step, t;
    char buf[64];
    FILE *f;
    int s, i, points = 0;
    if (!path || !series) return irmae__fail(IRMAE_ERR_ARG, "plot_write_svg: %s is NULL", !path ? "path" : "series");
    if (count < 1 || count > 64) return irmae__fail(IRMAE_ERR_ARG, "plot_write_svg: count %d outside 1..64", count);
    memset(&o, 0, sizeof o);
    if (opts) o = *opts;
    for (s = 0; s < count; s++) {
        const irmae_plot_series *p = &series[s];
        if (p->n < 0 || (p->n > 0 && (!p->x || !p->y)))
            return irmae__fail(IRMAE_ERR_ARG, "plot_write_svg: series %d has n = %d and x/y %s", s, p->n,
                               p->n < 0 ? "(n < 0)" : "NULL");
        for (i = 0; i < p->n; i++) {
            double x = p->x[i], y = p->y[i];
            if (!irmae__plot_ok(&o, x, y)) continue;
            y = irmae__plot_y(&o, y);
            if (x < x0) x0 = x;
            if (x > x1) x1 = x;
            if (y < y0) y0 = y;
            if (y > y1) y1 = y;
            points++;
        }
        names[s] = p->name;
    }
    if (!points) return irmae__fail(IRMAE_ERR_ARG, "plot_write_svg: no point to draw (all missing or non-finite)");
    if (x1 - x0 <= 0.0) { x0 -= 1.0; x1 += 1.0; }
    if (o.log_y) { y0 = floor(y0); y1 = ceil(y1); if (y1 <= y0) y1 = y0 + 1.0; }
    else {
        if (y1 - y0 <= 0.0) { y0 -= 1.0; y1 += 1.0; }
        step = irmae__ana_nice_step(y1 - y0, 6);
        y0 = floor(y0 / step) * step;
        y1 = ceil(y1 / step) * step;
    }
    f = fopen(path, "wb");
    if (!f) return irmae__fail(IRMAE_ERR_IO, "plot_write_svg: cannot open '%s'", path);
#define IRMAE__PX(v) (left + ((v) - x0) / (x1 - x0) * pw)
#define IRMAE__PY(v) (bottom - ((v) - y0) / (y1 - y0) * ph)
    irmae__svg_begin(f, W, H, 0.5 * (left + right), o.title);
    /* y grid, ticks and labels */
    step = o.log_y ? 1.0 : irmae__ana_nice_step(y1 - y0, 6);
    fputs("<g font-size=\"12\">\n", f);
    for (t = y0; t <= y1 + 1e-9 * step; t += step) {
        double yy = IRMAE__PY(t);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#e0e0e0\"/>\n", left, yy, right, yy);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#000000\"/>\n", left - 6.0, yy, left, yy);
        irmae__svg_num(buf, o.log_y ? pow(10.0, t) : t);
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\">%s</text>\n", left - 9.0, yy + 4.0, buf);
    }
    /* x ticks and labels */
    step = irmae__ana_nice_step(x1 - x0, 8);
    for (t = ceil(x0 / step - 1e-9) * step; t <= x1 + 1e-9 * step; t += step) {
        double xx = IRMAE__PX(t);
        fprintf(f, "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"#000000\"/>\n", xx, bottom, xx, bottom + 6.0);
        irmae__svg_num(buf, t);
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">%s</text>\n", xx, bottom + 20.0, buf);
    }
    fputs("</g>\n", f);
    fprintf(f, "<path d=\"M%.2f %.2f L%.2f %.2f L%.2f %.2f\" fill=\"none\" stroke=\"#000000\" stroke-width=\"1.2\"/>\n",
            left, top, left, bottom, right, bottom);
    if (o.x_label) {
        fprintf(f, "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"13\">", 0.5 * (left + right), H - 20.0);
        irmae__ana_xml_text(f, o.x_label);
        fputs("</text>\n", f);
    }
    if (o.y_label) {
        fprintf(f, "<text x=\"18\" y=\"%.2f\" text-anchor=\"middle\" font-size=\"13\" transform=\"rotate(-90 18 %.2f)\">",
                0.5 * (top + bottom), 0.5 * (top + bottom));
        irmae__ana_xml_text(f, o.y_label);
        fputs("</text>\n", f);
    }
    /* the series: one polyline per unbroken run of points */
    for (s = 0; s < count; s++) {
        const irmae_plot_series *p = &series[s];
        const char *col = irmae__svg_colors[s % 10];
        int open = 0;
        for (i = 0; i <= p->n; i++) {
            int ok = i < p->n && irmae__plot_ok(&o, p->x[i], p->y[i]);
            if (ok) {
                double y = irmae__plot_y(&o, p->y[i]);
                if (!open) fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" "
                                      "stroke-linejoin=\"round\" points=\"", col);
                fprintf(f, "%s%.2f,%.2f", open ? " " : "", IRMAE__PX(p->x[i]), IRMAE__PY(y));
                open = 1;
            } else if (open) {
                fputs("\"/>\n", f);
                open = 0;
            }
        }
        if (o.markers) {
            fprintf(f, "<g fill=\"%s\">\n", col);
            for (i = 0; i < p->n; i++) {
                if (!irmae__plot_ok(&o, p->x[i], p->y[i])) continue;
                fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"2.5\"/>\n", IRMAE__PX(p->x[i]),
                        IRMAE__PY(irmae__plot_y(&o, p->y[i])));
            }
            fputs("</g>\n", f);
        }
    }
    /* the legend goes to the corner of the plot that the lines cross least
       (each line sampled at 16 points per segment) */
    {
        const double lw = irmae__svg_legend_width(names, count, "series", pw), lh = 8.0 + 18.0 * count;
        double cx[4], cy[4];
        int hits[4] = {0, 0, 0, 0}, c, best = 0;
        cx[0] = right - lw - 10.0; cy[0] = top + 10.0;      /* top right */
        cx[1] = left + 10.0;       cy[1] = top + 10.0;      /* top left */
        cx[2] = right - lw - 10.0; cy[2] = bottom - lh - 10.0; /* bottom right */
        cx[3] = left + 10.0;       cy[3] = bottom - lh - 10.0; /* bottom left */
        for (s = 0; s < count; s++) {
            const irmae_plot_series *p = &series[s];
            for (i = 0; i + 1 < p->n; i++) {
                double ax, ay, bx, by;
                int k;
                if (!irmae__plot_ok(&o, p->x[i], p->y[i]) || !irmae__plot_ok(&o, p->x[i + 1], p->y[i + 1])) continue;
                ax = IRMAE__PX(p->x[i]); ay = IRMAE__PY(irmae__plot_y(&o, p->y[i]));
                bx = IRMAE__PX(p->x[i + 1]); by = IRMAE__PY(irmae__plot_y(&o, p->y[i + 1]));
                for (k = 0; k <= 16; k++) {
                    double px = ax + (bx - ax) * k / 16.0, py = ay + (by - ay) * k / 16.0;
                    for (c = 0; c < 4; c++)
                        hits[c] += px >= cx[c] && px <= cx[c] + lw && py >= cy[c] && py <= cy[c] + lh;
                }
            }
        }
        for (c = 1; c < 4; c++) if (hits[c] < hits[best]) best = c;
        irmae__svg_legend_at(f, names, count, "series", cx[best], cy[best], lw);
    }
#undef IRMAE__PX
#undef IRMAE__PY
    fputs("</svg>\n", f);
    return irmae__ana_close(f, "plot_write_svg", path);
}

/* ---- Cholesky --------------------------------------------------------- */

/* In-place lower Cholesky factor of the symmetric a (n x n, full storage);
   the upper triangle is zeroed. A pivot <= tol = 64 n eps max(diag) counts
   as zero: with strict == 0 its column of L is set to zero (semi-definite
   matrices), with strict != 0 it is a failure. A pivot below -tol
   (indefinite) always fails. Returns 0, or 1 with the column in *bad. */
static int irmae__ana_chol(double *a, int n, int strict, int *bad)
{
    double maxd = 0.0, tol;
    int i, j, k;
    for (i = 0; i < n; i++)
        if (fabs(a[(size_t)i * n + i]) > maxd) maxd = fabs(a[(size_t)i * n + i]);
    tol = 64.0 * n * DBL_EPSILON * maxd;
    for (j = 0; j < n; j++) {
        double *aj = a + (size_t)j * n, s = aj[j];
        for (k = 0; k < j; k++) s -= aj[k] * aj[k];
        if (s <= tol) {
            if (strict || s < -tol || !(s == s)) { *bad = j; return 1; }
            for (i = j; i < n; i++) a[(size_t)i * n + j] = 0.0;
            continue;
        }
        aj[j] = sqrt(s);
        for (i = j + 1; i < n; i++) {
            double *ai = a + (size_t)i * n, t = ai[j];
            for (k = 0; k < j; k++) t -= ai[k] * aj[k];
            ai[j] = t / aj[j];
        }
    }
    for (i = 0; i < n; i++)
        for (j = i + 1; j < n; j++) a[(size_t)i * n + j] = 0.0;
    return 0;
}

/* out (n) = mean + L z with z ~ N(0, I) drawn into z (n) */
static void irmae__ana_draw(float *out, const double *mean, const double *l, double *z, int n, irmae_rng *rng)
{
    int i, j;
    for (j = 0; j < n; j++) z[j] = (double)irmae_rng_normal(rng);
    for (i = 0; i < n; i++) {
        const double *li = l + (size_t)i * n;
        double v = mean[i];
        for (j = 0; j <= i; j++) v += li[j] * z[j];
        out[i] = (float)v;
    }
}

static int irmae__ana_check_reg(const char *fn, double reg)
{
    if (!(reg >= 0.0) || reg > DBL_MAX) return irmae__fail(IRMAE_ERR_ARG, "%s: reg = %g (need finite >= 0)", fn, reg);
    return IRMAE_OK;
}

/* ---- Gaussian --------------------------------------------------------- */

IRMAEDEF void irmae_gauss_free(irmae_gauss *g)
{
    if (!g) return;
    irmae__free(g->mean);
    irmae__free(g->chol);
    memset(g, 0, sizeof *g);
}

IRMAEDEF int irmae_gauss_fit(irmae_gauss *g, const float *x, int count, int n, double reg)
{
    int rc, i, bad = 0;
    if (!g) return irmae__fail(IRMAE_ERR_ARG, "gauss_fit: g is NULL");
    memset(g, 0, sizeof *g);
    if (!x) return irmae__fail(IRMAE_ERR_ARG, "gauss_fit: x is NULL");
    if ((rc = irmae__ana_check_reg("gauss_fit", reg)) != IRMAE_OK) return rc;
    if ((rc = irmae__ana_dims("gauss_fit", count, 2, n)) != IRMAE_OK) return rc;
    g->mean = irmae__ana_dalloc((size_t)n, 1);
    g->chol = irmae__ana_dalloc((size_t)n, (size_t)n);
    if (!g->mean || !g->chol) {
        irmae_gauss_free(g);
        return irmae__fail(IRMAE_ERR_NOMEM, "gauss_fit: n = %d", n);
    }
    rc = irmae_covariance(g->chol, g->mean, x, count, n);
    if (rc) { irmae_gauss_free(g); return rc; }
    for (i = 0; i < n; i++) g->chol[(size_t)i * n + i] += reg;
    if (irmae__ana_chol(g->chol, n, 0, &bad)) {
        irmae_gauss_free(g);
        return irmae__fail(IRMAE_ERR_NUMERIC, "gauss_fit: covariance not positive semi-definite at column %d", bad);
    }
    g->n = n;
    return IRMAE_OK;
}

IRMAEDEF int irmae_gauss_sample(const irmae_gauss *g, float *out, int count, irmae_rng *rng)
{
    double *z;
    size_t t;
    int i;
    if (!g || !g->mean || !g->chol || g->n <= 0)
        return irmae__fail(IRMAE_ERR_ARG, "gauss_sample: g is NULL or not fitted");
    if (!rng || !out) return irmae__fail(IRMAE_ERR_ARG, "gauss_sample: %s is NULL", !rng ? "rng" : "out");
    if (count <= 0) return irmae__fail(IRMAE_ERR_ARG, "gauss_sample: count %d <= 0", count);
    if (!irmae__mul3(&t, (size_t)count, (size_t)g->n, sizeof(float)))
        return irmae__fail(IRMAE_ERR_OVERFLOW, "gauss_sample: %d x %d", count, g->n);
    z = irmae__ana_dalloc((size_t)g->n, 1);
    if (!z) return irmae__fail(IRMAE_ERR_NOMEM, "gauss_sample: n = %d", g->n);
    for (i = 0; i < count; i++)
        irmae__ana_draw(out + (size_t)i * g->n, g->mean, g->chol, z, g->n, rng);
    irmae__free(z);
    return IRMAE_OK;
}

/* ---- Gaussian mixture (EM) -------------------------------------------- */

IRMAEDEF void irmae_gmm_free(irmae_gmm *g)
{
    if (!g) return;
    irmae__free(g->weights);
    irmae__free(g->means);
    irmae__free(g->chols);
    memset(g, 0, sizeof *g);
}

/* squared distance between a float row and a double vector */
static double irmae__ana_dist2(const float *x, const double *c, int n)
{
    double s = 0.0;
    int j;
    for (j = 0; j < n; j++) { double d = (double)x[j] - c[j]; s += d * d; }
    return s;
}

/* work space of one EM run */
typedef struct irmae__gmm_work {
    double *resp;    /* count x k responsibilities */
    double *lse;     /* count: log p(x_i) */
    double *wcol;    /* count: one column of resp */
    double *scat;    /* n x n */
    double *dev;     /* n */
    double *gcov;    /* n x n: covariance of all the data (+ reg I) */
    double *gmean;   /* n */
    double *logdet;  /* k */
    int *assign;     /* count */
} irmae__gmm_work;

/* M-step from the responsibilities. init != 0 is the hard-assignment start:
   components with fewer than n + 1 members take the global covariance.
   Returns 0 or an error code (detail set). */
static int irmae__gmm_mstep(irmae_gmm *g, irmae__gmm_work *wk, const float *x, int count, double reg, int init)
{
    int k = g->k, n = g->n, c, i, j, bad = 0;
    double wsum = 0.0;
    for (c = 0; c < k; c++) {
        double nk = 0.0, *mu = g->means + (size_t)c * n, *l = g->chols + (size_t)c * n * n;
        int use_global;
        for (i = 0; i < count; i++) { wk->wcol[i] = wk->resp[(size_t)i * k + c]; nk += wk->wcol[i]; }
        use_global = init ? nk < (double)n + 1.0 : nk < 1e-8;
        if (nk > 0.0) { /* else keep the previous mean */
            for (j = 0; j < n; j++) mu[j] = 0.0;
            for (i = 0; i < count; i++) {
                const float *xi = x + (size_t)i * n;
                double wi = wk->wcol[i];
                if (wi == 0.0) continue;
                for (j = 0; j < n; j++) mu[j] += wi * (double)xi[j];
            }
            for (j = 0; j < n; j++) mu[j] /= nk;
        }
        g->weights[c] = nk / (double)count;
        wsum += g->weights[c];
        if (!use_global) {
            if (irmae__ana_scatter(l, wk->dev, x, wk->wcol, mu, count, n))
                return irmae__fail(IRMAE_ERR_NOMEM, "gmm_fit: scatter buffer for n = %d", n);
            for (i = 0; i < n; i++)
                for (j = 0; j < n; j++) {
                    double *lij = l + (size_t)i * n + j;
                    *lij = (*lij - wk->dev[i] * wk->dev[j] / nk) / nk;
                }
            for (i = 0; i < n; i++) l[(size_t)i * n + i] += reg;
            if (irmae__ana_chol(l, n, 1, &bad)) use_global = 1; /* collapsed: restart from global */
        }
        if (use_global) {
            memcpy(l, wk->gcov, (size_t)n * n * sizeof(double));
            if (irmae__ana_chol(l, n, 1, &bad))
                return irmae__fail(IRMAE_ERR_NUMERIC, "gmm_fit: covariance singular at column %d "
                                   "(codes are rank-deficient: use reg > 0)", bad);
        }
        wk->logdet[c] = 0.0;
        for (i = 0; i < n; i++) wk->logdet[c] += 2.0 * log(l[(size_t)i * n + i]);
    }
    if (!(wsum > 0.0)) return irmae__fail(IRMAE_ERR_NUMERIC, "gmm_fit: all component weights vanished");
    for (c = 0; c < k; c++) g->weights[c] /= wsum;
    return IRMAE_OK;
}

/* E-step: responsibilities and log p(x_i); returns the mean log-likelihood,
   or +HUGE_VAL when a thread could not get its scratch. Points go in groups
   of four (lanes), solving L y = x - mu for all four at once so that each
   row of L is loaded once per group; a short last group repeats its first
   point in the spare lanes. Every lane sums in the same order, so a point's
   result does not depend on its group or on the thread count. */
static double irmae__gmm_estep(const irmae_gmm *g, irmae__gmm_work *wk, const float *x, int count)
{
    const double log2pi = 1.8378770664093454836;
    int k = g->k, n = g->n, i, groups = (count + 3) / 4;
    double total = 0.0;
    IRMAE__OMP(parallel if((double)count * k * n * n >= 65536.0))
    {
        double *y = (double *)irmae__alloc((size_t)n * 4, sizeof(double)); /* y[a*4 + lane] */
        int gi;
        IRMAE__OMP(for schedule(static))
        for (gi = 0; gi < groups; gi++) {
            int p0 = gi * 4, lanes = count - p0 < 4 ? count - p0 : 4, c, a, b, q;
            const float *xp[4];
            if (!y) { for (q = 0; q < lanes; q++) wk->lse[p0 + q] = HUGE_VAL; continue; }
            for (q = 0; q < 4; q++) xp[q] = x + (size_t)(p0 + (q < lanes ? q : 0)) * n;
            for (c = 0; c < k; c++) {
                const double *l = g->chols + (size_t)c * n * n, *mu = g->means + (size_t)c * n;
                double q0 = 0.0, q1 = 0.0, q2 = 0.0, q3 = 0.0;
                for (a = 0; a < n; a++) { /* y = L^-1 (x - mu), four points */
                    const double *la = l + (size_t)a * n;
                    double t0 = (double)xp[0][a] - mu[a], t1 = (double)xp[1][a] - mu[a];
                    double t2 = (double)xp[2][a] - mu[a], t3 = (double)xp[3][a] - mu[a], inv = 1.0 / la[a];
                    for (b = 0; b < a; b++) {
                        const double lb = la[b], *yb = y + (size_t)b * 4;
                        t0 -= lb * yb[0]; t1 -= lb * yb[1]; t2 -= lb * yb[2]; t3 -= lb * yb[3];
                    }
                    t0 *= inv; t1 *= inv; t2 *= inv; t3 *= inv;
                    y[(size_t)a * 4] = t0; y[(size_t)a * 4 + 1] = t1;
                    y[(size_t)a * 4 + 2] = t2; y[(size_t)a * 4 + 3] = t3;
                    q0 += t0 * t0; q1 += t1 * t1; q2 += t2 * t2; q3 += t3 * t3;
                }
                {
                    double lw = g->weights[c] > 0.0 ? log(g->weights[c]) : -HUGE_VAL;
                    double base = lw - 0.5 * (n * log2pi + wk->logdet[c]), qq[4];
                    qq[0] = q0; qq[1] = q1; qq[2] = q2; qq[3] = q3;
                    for (q = 0; q < lanes; q++) /* log terms first, resp later */
                        wk->resp[(size_t)(p0 + q) * k + c] = g->weights[c] > 0.0 ? base - 0.5 * qq[q] : -HUGE_VAL;
                }
            }
            for (q = 0; q < lanes; q++) {
                double *lp = wk->resp + (size_t)(p0 + q) * k, mx = -HUGE_VAL, sum = 0.0, lse;
                for (c = 0; c < k; c++) if (lp[c] > mx) mx = lp[c];
                for (c = 0; c < k; c++) sum += exp(lp[c] - mx);
                lse = mx + log(sum);
                wk->lse[p0 + q] = lse;
                for (c = 0; c < k; c++) lp[c] = exp(lp[c] - lse);
            }
        }
        irmae__free(y);
    }
    for (i = 0; i < count; i++) {
        if (wk->lse[i] == HUGE_VAL) return HUGE_VAL;
        total += wk->lse[i];
    }
    return total / (double)count;
}

static void irmae__gmm_work_free(irmae__gmm_work *wk)
{
    irmae__free(wk->resp); irmae__free(wk->lse); irmae__free(wk->wcol);
    irmae__free(wk->scat); irmae__free(wk->dev); irmae__free(wk->gcov);
    irmae__free(wk->gmean); irmae__free(wk->logdet);
    irmae__free(wk->assign);
}

IRMAEDEF int irmae_gmm_fit(irmae_gmm *g, const float *x, int count, int n, int k, int max_iter,
                           double tol, double reg, irmae_rng *rng)
{
    irmae__gmm_work wk;
    size_t t;
    int rc, i, j, c, it;
    double ll, prev;
    if (!g) return irmae__fail(IRMAE_ERR_ARG, "gmm_fit: g is NULL");
    memset(g, 0, sizeof *g);
    if (!x || !rng) return irmae__fail(IRMAE_ERR_ARG, "gmm_fit: %s is NULL", !x ? "x" : "rng");
    if ((rc = irmae__ana_dims("gmm_fit", count, 2, n)) != IRMAE_OK) return rc;
    if (k < 1 || k > count) return irmae__fail(IRMAE_ERR_ARG, "gmm_fit: k = %d not in [1, count = %d]", k, count);
    if (max_iter < 1) return irmae__fail(IRMAE_ERR_ARG, "gmm_fit: max_iter = %d < 1", max_iter);
    if (!(tol >= 0.0) || tol > DBL_MAX) return irmae__fail(IRMAE_ERR_ARG, "gmm_fit: tol = %g", tol);
    if ((rc = irmae__ana_check_reg("gmm_fit", reg)) != IRMAE_OK) return rc;
    if (!irmae__mul3(&t, (size_t)k, (size_t)n * (size_t)n, sizeof(double)) ||
        !irmae__mul3(&t, (size_t)count, (size_t)k, sizeof(double)))
        return irmae__fail(IRMAE_ERR_OVERFLOW, "gmm_fit: k = %d, n = %d, count = %d", k, n, count);
    if ((rc = irmae__ana_finite_f("gmm_fit", "x", x, count, n)) != IRMAE_OK) return rc;

    memset(&wk, 0, sizeof wk);
    g->k = k; g->n = n;
    g->weights = irmae__ana_dalloc((size_t)k, 1);
    g->means = irmae__ana_dalloc((size_t)k, (size_t)n);
    g->chols = irmae__ana_dalloc((size_t)k, (size_t)n * n);
    wk.resp = irmae__ana_dalloc((size_t)count, (size_t)k);
    wk.lse = irmae__ana_dalloc((size_t)count, 1);
    wk.wcol = irmae__ana_dalloc((size_t)count, 1);
    wk.scat = irmae__ana_dalloc((size_t)n, (size_t)n);
    wk.dev = irmae__ana_dalloc((size_t)n, 1);
    wk.gcov = irmae__ana_dalloc((size_t)n, (size_t)n);
    wk.gmean = irmae__ana_dalloc((size_t)n, 1);
    wk.logdet = irmae__ana_dalloc((size_t)k, 1);
    wk.assign = (int *)irmae__alloc((size_t)count, sizeof(int));
    if (!g->weights || !g->means || !g->chols || !wk.resp || !wk.lse || !wk.wcol || !wk.scat ||
        !wk.dev || !wk.gcov || !wk.gmean || !wk.logdet || !wk.assign) {
        rc = irmae__fail(IRMAE_ERR_NOMEM, "gmm_fit: k = %d, n = %d, count = %d", k, n, count);
        goto done;
    }
    if ((rc = irmae__ana_cov(wk.gcov, wk.gmean, x, count, n)) != IRMAE_OK) {
        rc = irmae__fail(rc, "gmm_fit: global covariance");
        goto done;
    }
    for (i = 0; i < n; i++) wk.gcov[(size_t)i * n + i] += reg;

    /* k-means++ seeding: first centre uniform, then proportional to D^2 */
    {
        double *dist = wk.lse; /* reused as D^2 */
        int first = irmae_rng_int(rng, 0, count - 1);
        for (j = 0; j < n; j++) g->means[j] = (double)x[(size_t)first * n + j];
        for (i = 0; i < count; i++) dist[i] = irmae__ana_dist2(x + (size_t)i * n, g->means, n);
        for (c = 1; c < k; c++) {
            double total = 0.0, u, cum = 0.0;
            int pick = count - 1;
            double *mu = g->means + (size_t)c * n;
            for (i = 0; i < count; i++) total += dist[i];
            if (total > 0.0) {
                u = irmae__ana_u01(rng) * total;
                for (i = 0; i < count; i++) {
                    cum += dist[i];
                    if (cum > u) { pick = i; break; }
                }
                while (dist[pick] == 0.0 && pick > 0) pick--; /* rounding at the end */
            } else pick = irmae_rng_int(rng, 0, count - 1);
            for (j = 0; j < n; j++) mu[j] = (double)x[(size_t)pick * n + j];
            for (i = 0; i < count; i++) {
                double d2 = irmae__ana_dist2(x + (size_t)i * n, mu, n);
                if (d2 < dist[i]) dist[i] = d2;
            }
        }
    }
    /* a few Lloyd iterations */
    for (it = 0; it < 20; it++) {
        int changed = 0;
        for (i = 0; i < count; i++) {
            const float *xi = x + (size_t)i * n;
            int best = 0;
            double bd = irmae__ana_dist2(xi, g->means, n);
            for (c = 1; c < k; c++) {
                double d2 = irmae__ana_dist2(xi, g->means + (size_t)c * n, n);
                if (d2 < bd) { bd = d2; best = c; }
            }
            if (it == 0 || wk.assign[i] != best) changed = 1;
            wk.assign[i] = best;
        }
        if (!changed) break;
        for (c = 0; c < k; c++) {
            double *mu = g->means + (size_t)c * n, cnt = 0.0;
            for (j = 0; j < n; j++) wk.dev[j] = 0.0;
            for (i = 0; i < count; i++)
                if (wk.assign[i] == c) {
                    const float *xi = x + (size_t)i * n;
                    for (j = 0; j < n; j++) wk.dev[j] += (double)xi[j];
                    cnt += 1.0;
                }
            if (cnt > 0.0) for (j = 0; j < n; j++) mu[j] = wk.dev[j] / cnt;
        }
    }
    /* hard-assignment statistics, then EM */
    for (i = 0; i < count; i++)
        for (c = 0; c < k; c++) wk.resp[(size_t)i * k + c] = wk.assign[i] == c ? 1.0 : 0.0;
    if ((rc = irmae__gmm_mstep(g, &wk, x, count, reg, 1)) != IRMAE_OK) goto done;
    ll = irmae__gmm_estep(g, &wk, x, count);
    if (ll == HUGE_VAL) { rc = irmae__fail(IRMAE_ERR_NOMEM, "gmm_fit: E-step scratch"); goto done; }
    g->iters = 0;
    for (it = 0; it < max_iter; it++) {
        if ((rc = irmae__gmm_mstep(g, &wk, x, count, reg, 0)) != IRMAE_OK) goto done;
        prev = ll;
        ll = irmae__gmm_estep(g, &wk, x, count);
        g->iters++;
        if (ll == HUGE_VAL) { rc = irmae__fail(IRMAE_ERR_NOMEM, "gmm_fit: E-step scratch"); goto done; }
        if (!(fabs(ll) <= DBL_MAX)) {
            rc = irmae__fail(IRMAE_ERR_NUMERIC, "gmm_fit: log-likelihood not finite at iteration %d", it + 1);
            goto done;
        }
        if (fabs(ll - prev) <= tol * fabs(prev)) break;
    }
    g->loglik = ll;
    rc = IRMAE_OK;
done:
    irmae__gmm_work_free(&wk);
    if (rc) irmae_gmm_free(g);
    return rc;
}

IRMAEDEF int irmae_gmm_sample(const irmae_gmm *g, float *out, int count, irmae_rng *rng)
{
    double *z;
    size_t t;
    int i, n;
    if (!g || !g->weights || !g->means || !g->chols || g->k <= 0 || g->n <= 0)
        return irmae__fail(IRMAE_ERR_ARG, "gmm_sample: g is NULL or not fitted");
    if (!rng || !out) return irmae__fail(IRMAE_ERR_ARG, "gmm_sample: %s is NULL", !rng ? "rng" : "out");
    if (count <= 0) return irmae__fail(IRMAE_ERR_ARG, "gmm_sample: count %d <= 0", count);
    n = g->n;
    if (!irmae__mul3(&t, (size_t)count, (size_t)n, sizeof(float)))
        return irmae__fail(IRMAE_ERR_OVERFLOW, "gmm_sample: %d x %d", count, n);
    z = irmae__ana_dalloc((size_t)n, 1);
    if (!z) return irmae__fail(IRMAE_ERR_NOMEM, "gmm_sample: n = %d", n);
    for (i = 0; i < count; i++) {
        double u = irmae__ana_u01(rng), cum = 0.0;
        int c, pick = -1;
        for (c = 0; c < g->k; c++) {
            cum += g->weights[c];
            if (u < cum) { pick = c; break; }
        }
        if (pick < 0) /* rounding: last component with weight */
            for (pick = g->k - 1; pick > 0 && !(g->weights[pick] > 0.0); pick--) {}
        irmae__ana_draw(out + (size_t)i * n, g->means + (size_t)pick * n,
                        g->chols + (size_t)pick * n * n, z, n, rng);
    }
    irmae__free(z);
    return IRMAE_OK;
}

/* ---- PCA -------------------------------------------------------------- */

IRMAEDEF void irmae_pca_free(irmae_pca *p)
{
    if (!p) return;
    irmae__free(p->mean);
    irmae__free(p->axes);
    irmae__free(p->stddev);
    memset(p, 0, sizeof *p);
}

IRMAEDEF int irmae_pca_fit(irmae_pca *p, const float *x, int count, int n)
{
    double *cov;
    int rc, i, j;
    if (!p) return irmae__fail(IRMAE_ERR_ARG, "pca_fit: p is NULL");
    memset(p, 0, sizeof *p);
    if (!x) return irmae__fail(IRMAE_ERR_ARG, "pca_fit: x is NULL");
    if ((rc = irmae__ana_dims("pca_fit", count, 2, n)) != IRMAE_OK) return rc;
    cov = irmae__ana_dalloc((size_t)n, (size_t)n);
    p->mean = irmae__ana_dalloc((size_t)n, 1);
    p->axes = irmae__ana_dalloc((size_t)n, (size_t)n);
    p->stddev = irmae__ana_dalloc((size_t)n, 1);
    if (!cov || !p->mean || !p->axes || !p->stddev) {
        irmae__free(cov);
        irmae_pca_free(p);
        return irmae__fail(IRMAE_ERR_NOMEM, "pca_fit: n = %d", n);
    }
    rc = irmae_covariance(cov, p->mean, x, count, n);
    if (rc == IRMAE_OK) rc = irmae_eigh(p->stddev, p->axes, cov, n);
    irmae__free(cov);
    if (rc) { irmae_pca_free(p); return rc; }
    for (i = 0; i < n; i++) {
        double *ax = p->axes + (size_t)i * n, big = 0.0;
        int at = 0;
        p->stddev[i] = p->stddev[i] > 0.0 ? sqrt(p->stddev[i]) : 0.0;
        for (j = 0; j < n; j++) if (fabs(ax[j]) > big) { big = fabs(ax[j]); at = j; }
        if (ax[at] < 0.0) for (j = 0; j < n; j++) ax[j] = -ax[j];
    }
    p->n = n;
    return IRMAE_OK;
}

IRMAEDEF int irmae_pca_grid(const irmae_pca *p, float *out, int rows, int cols, double span)
{
    size_t t;
    int r, c, j, n;
    if (!p || !p->mean || !p->axes || !p->stddev || p->n <= 0)
        return irmae__fail(IRMAE_ERR_ARG, "pca_grid: p is NULL or not fitted");
    if (!out) return irmae__fail(IRMAE_ERR_ARG, "pca_grid: out is NULL");
    if (rows <= 0 || cols <= 0) return irmae__fail(IRMAE_ERR_ARG, "pca_grid: %d x %d grid", rows, cols);
    if (!(span >= 0.0) || span > DBL_MAX) return irmae__fail(IRMAE_ERR_ARG, "pca_grid: span = %g", span);
    n = p->n;
    if (!irmae__mul3(&t, (size_t)rows, (size_t)cols, (size_t)n) || !irmae__mul(&t, t, sizeof(float)))
        return irmae__fail(IRMAE_ERR_OVERFLOW, "pca_grid: %d x %d x %d", rows, cols, n);
    for (r = 0; r < rows; r++) {
        double a = rows > 1 ? span * (double)(2 * r - (rows - 1)) / (double)(rows - 1) : 0.0;
        for (c = 0; c < cols; c++) {
            double b = cols > 1 ? span * (double)(2 * c - (cols - 1)) / (double)(cols - 1) : 0.0;
            float *o = out + ((size_t)r * cols + c) * n;
            double sa = a * p->stddev[0], sb = n > 1 ? b * p->stddev[1] : 0.0;
            for (j = 0; j < n; j++) {
                double v = p->mean[j] + sa * p->axes[j];
                if (n > 1) v += sb * p->axes[(size_t)n + j];
                o[j] = (float)v;
            }
        }
    }
    return IRMAE_OK;
}

/* ---- Frechet distance ------------------------------------------------- */

/* c = a b, all n x n */
static void irmae__ana_dgemm(double *c, const double *a, const double *b, int n)
{
    int i;
    IRMAE__OMP(parallel for if(n >= 128) schedule(static))
    for (i = 0; i < n; i++) {
        double *ci = c + (size_t)i * n;
        int q, j;
        for (j = 0; j < n; j++) ci[j] = 0.0;
        for (q = 0; q < n; q++) {
            double aiq = a[(size_t)i * n + q];
            const double *bq = b + (size_t)q * n;
            for (j = 0; j < n; j++) ci[j] += aiq * bq[j];
        }
    }
}

IRMAEDEF int irmae_frechet_distance(double *out, const float *a, int na, const float *b, int nb, int d)
{
    double *ca = NULL, *cb = NULL, *ma = NULL, *mb = NULL, *vals = NULL, *vecs = NULL, *sq = NULL, *tmp = NULL;
    double diff2 = 0.0, tra = 0.0, trb = 0.0, trs = 0.0, fd;
    int rc, i, j;
    if (!a || !b || !out)
        return irmae__fail(IRMAE_ERR_ARG, "frechet_distance: %s is NULL", !a ? "a" : !b ? "b" : "out");
    if ((rc = irmae__ana_dims("frechet_distance (a)", na, 2, d)) != IRMAE_OK) return rc;
    if ((rc = irmae__ana_dims("frechet_distance (b)", nb, 2, d)) != IRMAE_OK) return rc;
    ca = irmae__ana_dalloc((size_t)d, (size_t)d);
    cb = irmae__ana_dalloc((size_t)d, (size_t)d);
    vecs = irmae__ana_dalloc((size_t)d, (size_t)d);
    sq = irmae__ana_dalloc((size_t)d, (size_t)d);
    tmp = irmae__ana_dalloc((size_t)d, (size_t)d);
    ma = irmae__ana_dalloc((size_t)d, 1);
    mb = irmae__ana_dalloc((size_t)d, 1);
    vals = irmae__ana_dalloc((size_t)d, 1);
    if (!ca || !cb || !vecs || !sq || !tmp || !ma || !mb || !vals) {
        rc = irmae__fail(IRMAE_ERR_NOMEM, "frechet_distance: d = %d", d);
        goto done;
    }
    if ((rc = irmae_covariance(ca, ma, a, na, d)) != IRMAE_OK) goto done;
    if ((rc = irmae_covariance(cb, mb, b, nb, d)) != IRMAE_OK) goto done;
    for (i = 0; i < d; i++) {
        double df = ma[i] - mb[i];
        diff2 += df * df;
        tra += ca[(size_t)i * d + i];
        trb += cb[(size_t)i * d + i];
    }
    /* sq = Ca^1/2 = V^T diag(sqrt(max(lambda, 0))) V (rows of V = vectors) */
    if ((rc = irmae_eigh(vals, vecs, ca, d)) != IRMAE_OK) goto done;
    for (i = 0; i < d; i++) {
        double s = vals[i] > 0.0 ? sqrt(sqrt(vals[i])) : 0.0; /* lambda^1/4 per side */
        double *vi = vecs + (size_t)i * d;
        for (j = 0; j < d; j++) vi[j] *= s;
    }
    memset(sq, 0, (size_t)d * d * sizeof(double));
    irmae__ana_syrk_upper(sq, vecs, d, d);
    irmae__ana_mirror(sq, d);
    /* M = sq Cb sq, symmetrised */
    irmae__ana_dgemm(tmp, sq, cb, d);
    irmae__ana_dgemm(vecs, tmp, sq, d);
    for (i = 0; i < d; i++)
        for (j = 0; j <= i; j++) {
            double m = 0.5 * (vecs[(size_t)i * d + j] + vecs[(size_t)j * d + i]);
            vecs[(size_t)i * d + j] = m;
            vecs[(size_t)j * d + i] = m;
        }
    if ((rc = irmae_eigh(vals, NULL, vecs, d)) != IRMAE_OK) goto done;
    for (i = 0; i < d; i++) trs += vals[i] > 0.0 ? sqrt(vals[i]) : 0.0;
    fd = diff2 + tra + trb - 2.0 * trs;
    *out = fd > 0.0 ? fd : 0.0;
    rc = IRMAE_OK;
done:
    irmae__free(ca); irmae__free(cb); irmae__free(vecs); irmae__free(sq);
    irmae__free(tmp); irmae__free(ma); irmae__free(mb); irmae__free(vals);
    return rc;
}
/* ---------------------------------------------------------------------- */
/* Model analysis                                         @model-analysis */
/* ---------------------------------------------------------------------- */

IRMAEDEF int irmae_model_spectrum(irmae_model *m, irmae_spectrum *s, const float *x, int count)
{
    float *z;
    int rc;
    if (!m || !m->params || !x || !s) return irmae__fail(IRMAE_ERR_ARG, "model_spectrum: NULL pointer");
    if (count < 2) return irmae__fail(IRMAE_ERR_ARG, "model_spectrum: %d images (need 2 or more)", count);
    z = (float *)irmae__alloc((size_t)count, (size_t)m->cfg.n * sizeof(float));
    if (!z) return irmae__fail(IRMAE_ERR_NOMEM, "model_spectrum: codes of %d images", count);
    rc = irmae_model_encode(m, z, x, count);
    if (!rc) rc = irmae_spectrum_compute(s, z, count, m->cfg.n);
    irmae__free(z);
    return rc;
}

IRMAEDEF int irmae_model_interpolate(irmae_model *m, float *out, const float *xa, const float *xb, int steps)
{
    float *z;
    int rc, i, j, n;
    if (!m || !m->params || !xa || !xb || !out) return irmae__fail(IRMAE_ERR_ARG, "model_interpolate: NULL pointer");
    if (steps < 2) return irmae__fail(IRMAE_ERR_ARG, "model_interpolate: %d steps (need 2 or more)", steps);
    n = m->cfg.n;
    z = (float *)irmae__alloc((size_t)steps + 2, (size_t)n * sizeof(float));
    if (!z) return irmae__fail(IRMAE_ERR_NOMEM, "model_interpolate: %d steps", steps);
    rc = irmae_model_encode(m, z + (size_t)steps * n, xa, 1);
    if (!rc) rc = irmae_model_encode(m, z + (size_t)(steps + 1) * n, xb, 1);
    if (!rc) {
        const float *za = z + (size_t)steps * n, *zb = za + n;
        for (i = 0; i < steps; i++) {
            float t = (float)i / (float)(steps - 1);
            for (j = 0; j < n; j++) z[(size_t)i * n + j] = (1.0f - t) * za[j] + t * zb[j];
        }
        rc = irmae_model_decode(m, out, z, steps);
    }
    irmae__free(z);
    return rc;
}

#endif /* IRMAE_NO_ANALYSIS */
#ifndef IRMAE_NO_CHECKPOINTS
/* ---------------------------------------------------------------------- */
/* Checkpoints, export, .npy arrays                          @checkpoints */
/* ---------------------------------------------------------------------- */

#define IRMAE__CK_VERSION 1u
#define IRMAE__CK_NSECT 5u
#define IRMAE__CK_HEADER 20u
#define IRMAE__CK_TRST_LEN 88u
#define IRMAE__CK_NINT 9          /* int fields of the config before the floats */
#define IRMAE__CK_NFLT 8          /* float fields */
#define IRMAE__CK_NSPEC 9         /* int fields of a layer spec */
#define IRMAE__CK_CONF_FIXED 76u  /* 9 ints, 8 floats, n_enc, n_dec */
#define IRMAE__CK_CONF_MAX (IRMAE__CK_CONF_FIXED + 4u * IRMAE__CK_NSPEC * 2u * IRMAE_MAX_LAYERS + 8u)
#define IRMAE__CKW_CAP 65536

static const unsigned char irmae__ck_magic[8] = { 'I', 'R', 'M', 'A', 'E', 'C', 'K', 'P' };
static const char irmae__ck_tags[5][5] = { "CONF", "TRST", "PARM", "ADMM", "ADMV" };
static const char *const irmae__ck_int_names[IRMAE__CK_NINT] = {
    "in_c", "in_h", "in_w", "n", "l", "kind", "out_act", "max_batch", "range_pm1" };
static const char *const irmae__ck_flt_names[IRMAE__CK_NFLT] = {
    "code_l1", "code_l2", "vae_beta", "lr", "beta1", "beta2", "eps", "grad_clip" };
static const char *const irmae__ck_spec_names[IRMAE__CK_NSPEC] = {
    "type", "out", "k", "stride", "pad", "bias", "c", "h", "w" };

/* The config's fields in file order (const configs are only read through these). */
static int *irmae__ck_int(irmae_config *c, int i)
{
    switch (i) {
    case 0: return &c->in_c;  case 1: return &c->in_h;    case 2: return &c->in_w;
    case 3: return &c->n;     case 4: return &c->l;       case 5: return &c->kind;
    case 6: return &c->out_act; case 7: return &c->max_batch; default: return &c->range_pm1;
    }
}
static float *irmae__ck_flt(irmae_config *c, int i)
{
    switch (i) {
    case 0: return &c->code_l1; case 1: return &c->code_l2; case 2: return &c->vae_beta;
    case 3: return &c->lr;      case 4: return &c->beta1;   case 5: return &c->beta2;
    case 6: return &c->eps;     default: return &c->grad_clip;
    }
}
static int *irmae__ck_spec(irmae_layer_spec *s, int i)
{
    switch (i) {
    case 0: return &s->type;   case 1: return &s->out; case 2: return &s->k;
    case 3: return &s->stride; case 4: return &s->pad; case 5: return &s->bias;
    case 6: return &s->c;      case 7: return &s->h;   default: return &s->w;
    }
}

/* Little-endian bytes, whatever the host's byte order. */
static void irmae__ck_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v & 0xFF); p[1] = (unsigned char)((v >> 8) & 0xFF);
    p[2] = (unsigned char)((v >> 16) & 0xFF); p[3] = (unsigned char)((v >> 24) & 0xFF);
}
static void irmae__ck_le64(unsigned char *p, uint64_t v)
{
    int i;
    for (i = 0; i < 8; i++) p[i] = (unsigned char)((v >> (8 * i)) & 0xFF);
}
static uint64_t irmae__ck_rd64(const unsigned char *p)
{
    return (uint64_t)irmae__cd_le32(p) | ((uint64_t)irmae__cd_le32(p + 4) << 32);
}
static uint32_t irmae__ck_fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float irmae__ck_bitsf(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
/* two's complement back to a signed value without implementation-defined casts */
static int irmae__ck_i32(uint32_t u) { return u <= 0x7FFFFFFFu ? (int)u : -(int)(~u) - 1; }
static long long irmae__ck_i64(uint64_t u)
{
    return u <= 0x7FFFFFFFFFFFFFFFull ? (long long)u : -(long long)(~u) - 1;
}

/* ---- streaming writer: memory or file, with a running CRC-32 ----------- */

typedef struct irmae__ckw {
    unsigned char *mem;          /* memory sink (to_file == 0): exact size */
    size_t mem_len, mem_cap;
    int to_file;
#if defined(_WIN32)
    FILE *fp;
#else
    int fd;
#endif
    int err;                     /* sticky: a write failed */
    uint32_t crc;                /* CRC-32 of everything put since the last reset */
    size_t blen;
    unsigned char buf[IRMAE__CKW_CAP];
} irmae__ckw;

static void irmae__ckw_flush(irmae__ckw *w)
{
    size_t n = w->blen, done = 0;
    w->blen = 0;
    if (w->err || n == 0) return;
    if (!w->to_file) {
        if (n > w->mem_cap - w->mem_len) { w->err = 1; return; }
        memcpy(w->mem + w->mem_len, w->buf, n);
        w->mem_len += n;
        return;
    }
#if defined(_WIN32)
    if (fwrite(w->buf, 1, n, w->fp) != n) w->err = 1;
    (void)done;
#else
    while (done < n) {
        ssize_t r = write(w->fd, w->buf + done, n - done);
        if (r <= 0) { w->err = 1; return; }
        done += (size_t)r;
    }
#endif
}

static void irmae__ckw_put(irmae__ckw *w, const void *data, size_t n)
{
    const unsigned char *p = (const unsigned char *)data;
    w->crc = irmae_crc32(w->crc, p, n);
    while (n) {
        size_t k = IRMAE__CKW_CAP - w->blen;
        if (k > n) k = n;
        memcpy(w->buf + w->blen, p, k);
        w->blen += k; p += k; n -= k;
        if (w->blen == IRMAE__CKW_CAP) irmae__ckw_flush(w);
    }
}
static void irmae__ckw_u32(irmae__ckw *w, uint32_t v) { unsigned char b[4]; irmae__ck_le32(b, v); irmae__ckw_put(w, b, 4); }
static void irmae__ckw_u64(irmae__ckw *w, uint64_t v) { unsigned char b[8]; irmae__ck_le64(b, v); irmae__ckw_put(w, b, 8); }
static void irmae__ckw_floats(irmae__ckw *w, const float *x, size_t n)
{
    unsigned char b[4096];
    while (n) {
        size_t k = n < 1024 ? n : 1024, i;
        for (i = 0; i < k; i++) irmae__ck_le32(b + 4 * i, irmae__ck_fbits(x[i]));
        irmae__ckw_put(w, b, 4 * k);
        x += k; n -= k;
    }
}
/* A section: tag and length start a new CRC; irmae__ckw_end appends it. */
static void irmae__ckw_begin(irmae__ckw *w, int sect, uint64_t len)
{
    w->crc = 0;
    irmae__ckw_put(w, irmae__ck_tags[sect], 4);
    irmae__ckw_u64(w, len);
}
static void irmae__ckw_end(irmae__ckw *w) { irmae__ckw_u32(w, w->crc); }

/* Re-fails with `code` and "<what>: <the current detail without its prefix>". */
static int irmae__ck_refail(int rc, int code, const char *what)
{
    char msg[400];
    irmae__detail_body(rc, msg, sizeof msg);
    return irmae__fail(code, "%s: %s", what, msg);
}

/* ---- atomic file writes --------------------------------------------------- */

typedef void (*irmae__ck_emitter)(irmae__ckw *w, const void *ctx);

#if !defined(_WIN32)
/* fsync of the directory holding path, so that the rename itself is durable.
   Best effort: some file systems refuse to sync a directory. */
static void irmae__ck_sync_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t n = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    char *dir = (char *)irmae__alloc(n + 1, 1);
    int fd;
    if (!dir) return;
    memcpy(dir, !slash ? "." : slash == path ? "/" : path, n);
    dir[n] = 0;
    fd = open(dir, O_RDONLY);
    if (fd >= 0) { (void)fsync(fd); (void)close(fd); }
    irmae__free(dir);
}
#endif

/* Streams emit(ctx) into "<path>.tmp", syncs it, renames it over path. */
static int irmae__ck_write_atomic(const char *path, irmae__ck_emitter emit, const void *ctx, const char *fn)
{
    size_t plen = strlen(path);
    char *tmp;
    irmae__ckw *w;
    int bad = 0;
    const char *step = "write";
    tmp = (char *)irmae__alloc(plen + 5, 1);
    w = (irmae__ckw *)irmae__alloc(1, sizeof *w);
    if (!tmp || !w) {
        irmae__free(tmp); irmae__free(w);
        return irmae__fail(IRMAE_ERR_NOMEM, "%s: buffers for '%.300s'", fn, path);
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    w->to_file = 1;
#if defined(_WIN32)
    w->fp = fopen(tmp, "wb");
    if (!w->fp) {
        irmae__free(w); irmae__free(tmp);
        return irmae__fail(IRMAE_ERR_IO, "%s: cannot create '%.300s.tmp'", fn, path);
    }
    emit(w, ctx);
    irmae__ckw_flush(w);
    bad = w->err;
    if (!bad && fflush(w->fp) != 0) { bad = 1; step = "flush"; }
    if (!bad && _commit(_fileno(w->fp)) != 0) { bad = 1; step = "commit"; }
    if (fclose(w->fp) != 0 && !bad) { bad = 1; step = "close"; }
    if (!bad && !MoveFileExA(tmp, path, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) { bad = 1; step = "rename"; }
#else
    w->fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (w->fd < 0) {
        irmae__free(w); irmae__free(tmp);
        return irmae__fail(IRMAE_ERR_IO, "%s: cannot create '%.300s.tmp'", fn, path);
    }
    emit(w, ctx);
    irmae__ckw_flush(w);
    bad = w->err;
    if (!bad && fsync(w->fd) != 0) { bad = 1; step = "fsync"; }
    if (close(w->fd) != 0 && !bad) { bad = 1; step = "close"; }
    if (!bad && rename(tmp, path) != 0) { bad = 1; step = "rename"; }
    if (!bad) irmae__ck_sync_dir(path);
#endif
    if (bad) remove(tmp);
    irmae__free(w);
    irmae__free(tmp);
    if (bad) return irmae__fail(IRMAE_ERR_IO, "%s: %s of '%.300s' failed (the old file, if any, is unchanged)",
                                fn, step, path);
    return IRMAE_OK;
}

/* ---- checkpoint encoding ---------------------------------------------------- */

typedef struct irmae__ck_src { const irmae_model *m; const irmae_train_state *ts; size_t conf_len; } irmae__ck_src;

/* Sizes of the CONF payload and of the whole file; 0 on overflow. */
static int irmae__ck_sizes(const irmae_model *m, size_t *conf_len, size_t *total)
{
    size_t t, p4;
    *conf_len = IRMAE__CK_CONF_FIXED + 4u * IRMAE__CK_NSPEC * (size_t)(m->cfg.n_enc + m->cfg.n_dec) + 8u;
    if (!irmae__mul(&p4, m->n_params, 4)) return 0;
    t = IRMAE__CK_HEADER + IRMAE__CK_NSECT * 16u + *conf_len + IRMAE__CK_TRST_LEN;
    if (p4 > ((size_t)-1 - t) / 3) return 0;
    *total = t + 3 * p4;
    return 1;
}

/* The CONF payload of m: the config's fields in file order, the layer specs, the parameter count. */
static void irmae__ckw_conf(irmae__ckw *w, const irmae_model *m)
{
    irmae_config *cfg = (irmae_config *)&m->cfg; /* read only */
    int i, j;
    for (i = 0; i < IRMAE__CK_NINT; i++) irmae__ckw_u32(w, (uint32_t)*irmae__ck_int(cfg, i));
    for (i = 0; i < IRMAE__CK_NFLT; i++) irmae__ckw_u32(w, irmae__ck_fbits(*irmae__ck_flt(cfg, i)));
    irmae__ckw_u32(w, (uint32_t)cfg->n_enc);
    irmae__ckw_u32(w, (uint32_t)cfg->n_dec);
    for (i = 0; i < cfg->n_enc + cfg->n_dec; i++) {
        irmae_layer_spec *s = i < cfg->n_enc ? &cfg->enc[i] : &cfg->dec[i - cfg->n_enc];
        for (j = 0; j < IRMAE__CK_NSPEC; j++) irmae__ckw_u32(w, (uint32_t)*irmae__ck_spec(s, j));
    }
    irmae__ckw_u64(w, (uint64_t)m->n_params);
}

/* The CONF payload of m into out (IRMAE__CK_CONF_MAX bytes); returns its length. */
static size_t irmae__ck_conf_bytes(unsigned char *out, const irmae_model *m)
{
    size_t len = IRMAE__CK_CONF_FIXED + 4u * IRMAE__CK_NSPEC * (size_t)(m->cfg.n_enc + m->cfg.n_dec) + 8u;
    irmae__ckw *w = (irmae__ckw *)irmae__alloc(1, sizeof *w);
    if (!w) return 0;
    w->mem = out; w->mem_cap = IRMAE__CK_CONF_MAX;
    irmae__ckw_conf(w, m);
    irmae__ckw_flush(w);
    len = w->err ? 0 : w->mem_len;
    irmae__free(w);
    return len;
}

static void irmae__ck_emit(irmae__ckw *w, const void *ctx)
{
    const irmae__ck_src *src = (const irmae__ck_src *)ctx;
    const irmae_model *m = src->m;
    uint64_t p4 = (uint64_t)m->n_params * 4u;
    int i;
    /* header */
    w->crc = 0;
    irmae__ckw_put(w, irmae__ck_magic, 8);
    irmae__ckw_u32(w, IRMAE__CK_VERSION);
    irmae__ckw_u32(w, IRMAE__CK_NSECT);
    irmae__ckw_u32(w, w->crc);
    /* CONF */
    irmae__ckw_begin(w, 0, src->conf_len);
    irmae__ckw_conf(w, m);
    irmae__ckw_end(w);
    /* TRST */
    irmae__ckw_begin(w, 1, IRMAE__CK_TRST_LEN);
    irmae__ckw_u64(w, (uint64_t)m->step);
    for (i = 0; i < 4; i++) irmae__ckw_u64(w, m->rng.s[i]);
    irmae__ckw_u64(w, src->ts ? (uint64_t)src->ts->epoch : 0u);
    irmae__ckw_u64(w, src->ts ? (uint64_t)src->ts->batch : 0u);
    for (i = 0; i < 4; i++) irmae__ckw_u64(w, src->ts ? src->ts->data_rng.s[i] : 0u);
    irmae__ckw_end(w);
    /* tensors */
    irmae__ckw_begin(w, 2, p4); irmae__ckw_floats(w, m->params, m->n_params); irmae__ckw_end(w);
    irmae__ckw_begin(w, 3, p4); irmae__ckw_floats(w, m->adam_m, m->n_params); irmae__ckw_end(w);
    irmae__ckw_begin(w, 4, p4); irmae__ckw_floats(w, m->adam_v, m->n_params); irmae__ckw_end(w);
}

static int irmae__ck_check_model(const irmae_model *m, const irmae_train_state *ts, const char *fn)
{
    if (!m || !m->params || !m->adam_m || !m->adam_v)
        return irmae__fail(IRMAE_ERR_ARG, "%s: model is NULL or not initialised", fn);
    if (m->step < 0 || (ts && (ts->epoch < 0 || ts->batch < 0)))
        return irmae__fail(IRMAE_ERR_ARG, "%s: negative step %.0f, epoch %.0f or batch %.0f", fn, (double)m->step,
                           ts ? (double)ts->epoch : 0.0, ts ? (double)ts->batch : 0.0);
    if (m->cfg.n_enc < 1 || m->cfg.n_enc > IRMAE_MAX_LAYERS || m->cfg.n_dec < 1 || m->cfg.n_dec > IRMAE_MAX_LAYERS)
        return irmae__fail(IRMAE_ERR_ARG, "%s: model has %d / %d layers", fn, m->cfg.n_enc, m->cfg.n_dec);
    return IRMAE_OK;
}

IRMAEDEF int irmae_checkpoint_encode(unsigned char **out, size_t *size, const irmae_model *m,
                                     const irmae_train_state *ts)
{
    irmae__ck_src src;
    irmae__ckw *w;
    size_t total;
    int rc;
    if (out) *out = NULL;
    if (size) *size = 0;
    if (!out || !size) return irmae__fail(IRMAE_ERR_ARG, "checkpoint_encode: NULL out or size");
    if ((rc = irmae__ck_check_model(m, ts, "checkpoint_encode"))) return rc;
    src.m = m; src.ts = ts;
    if (!irmae__ck_sizes(m, &src.conf_len, &total))
        return irmae__fail(IRMAE_ERR_OVERFLOW, "checkpoint_encode: %lu parameters", (unsigned long)m->n_params);
    w = (irmae__ckw *)irmae__alloc(1, sizeof *w);
    if (w) w->mem = (unsigned char *)irmae__alloc(total, 1);
    if (!w || !w->mem) {
        if (w) irmae__free(w);
        return irmae__fail(IRMAE_ERR_NOMEM, "checkpoint_encode: %lu bytes", (unsigned long)total);
    }
    w->mem_cap = total;
    irmae__ck_emit(w, &src);
    irmae__ckw_flush(w);
    IRMAE_ASSERT(!w->err && w->mem_len == total);
    *out = w->mem;
    *size = total;
    irmae__free(w);
    return IRMAE_OK;
}

IRMAEDEF int irmae_checkpoint_save(const char *path, const irmae_model *m, const irmae_train_state *ts)
{
    irmae__ck_src src;
    size_t total;
    int rc;
    if (!path || !*path) return irmae__fail(IRMAE_ERR_ARG, "checkpoint_save: NULL or empty path");
    if ((rc = irmae__ck_check_model(m, ts, "checkpoint_save"))) return rc;
    src.m = m; src.ts = ts;
    if (!irmae__ck_sizes(m, &src.conf_len, &total))
        return irmae__fail(IRMAE_ERR_OVERFLOW, "checkpoint_save: %lu parameters", (unsigned long)m->n_params);
    return irmae__ck_write_atomic(path, irmae__ck_emit, &src, "checkpoint_save");
}

/* ---- checkpoint decoding ---------------------------------------------------- */

typedef struct irmae__ck_view {
    irmae_config cfg;
    size_t n_params, workspace;      /* workspace: bytes irmae_model_init adds for max_batch */
    long long step, epoch, batch;
    irmae_rng rng, data_rng;
    const unsigned char *tensor[3];  /* PARM, ADMM, ADMV payloads */
} irmae__ck_view;

static int irmae__ck_header(const unsigned char *p, size_t size)
{
    uint32_t v, crc, want;
    if (size < 8) {
        if (size && memcmp(p, irmae__ck_magic, size) != 0)
            return irmae__fail(IRMAE_ERR_FORMAT, "checkpoint: bad magic at offset 0 (not an irmae checkpoint)");
        return irmae__fail(IRMAE_ERR_TRUNCATED, "checkpoint: %lu bytes, the magic needs 8", (unsigned long)size);
    }
    if (memcmp(p, irmae__ck_magic, 8) != 0)
        return irmae__fail(IRMAE_ERR_FORMAT, "checkpoint: bad magic at offset 0 (not an irmae checkpoint)");
    if (size < 12)
        return irmae__fail(IRMAE_ERR_TRUNCATED, "checkpoint: %lu bytes, the version ends at 12", (unsigned long)size);
    v = irmae__cd_le32(p + 8);
    if (v == 0) return irmae__fail(IRMAE_ERR_FORMAT, "checkpoint: format version 0 at offset 8");
    if (v > IRMAE__CK_VERSION)
        return irmae__fail(IRMAE_ERR_VERSION, "checkpoint: format version %lu at offset 8, this library reads up to %u",
                           (unsigned long)v, IRMAE__CK_VERSION);
    if (size < IRMAE__CK_HEADER)
        return irmae__fail(IRMAE_ERR_TRUNCATED, "checkpoint: %lu bytes, the header needs %u",
                           (unsigned long)size, IRMAE__CK_HEADER);
    crc = irmae__cd_le32(p + 16);
    want = irmae_crc32(0, p, 16);
    if (crc != want)
        return irmae__fail(IRMAE_ERR_CHECKSUM, "checkpoint: header CRC at offset 16 is %08lx, the bytes give %08lx",
                           (unsigned long)crc, (unsigned long)want);
    if (irmae__cd_le32(p + 12) != IRMAE__CK_NSECT)
        return irmae__fail(IRMAE_ERR_FORMAT, "checkpoint: %lu sections at offset 12, version 1 has %u",
                           (unsigned long)irmae__cd_le32(p + 12), IRMAE__CK_NSECT);
    return IRMAE_OK;
}

/* Section `sect` at *pos: exact payload length `want`, or at most `max` when
   want == (size_t)-1. Checks tag, length, bytes left and CRC. */
static int irmae__ck_section(const unsigned char *p, size_t size, size_t *pos, int sect,
                             size_t want, size_t max, const unsigned char **payload, size_t *len)
{
    size_t at = *pos, left = size - at, n;
    uint64_t len64;
    uint32_t crc, got;
    const char *tag = irmae__ck_tags[sect];
    if (left < 12)
        return irmae__fail(IRMAE_ERR_TRUNCATED, "checkpoint: section '%s' at offset %lu: %lu bytes left, its header needs 12",
                           tag, (unsigned long)at, (unsigned long)left);
    if (memcmp(p + at, tag, 4) != 0)
        return irmae__fail(IRMAE_ERR_FORMAT, "checkpoint: expected section '%s' at offset %lu, found bytes %02x %02x %02x %02x",
                           tag, (unsigned long)at, p[at], p[at + 1], p[at + 2], p[at + 3]);
    len64 = irmae__ck_rd64(p + at + 4);
    if (want != (size_t)-1 && len64 != (uint64_t)want)
        return irmae__fail(IRMAE_ERR_FORMAT, "checkpoint: section '%s' at offset %lu has length %.0f, the configuration implies %lu",
                           tag, (unsigned long)at, (double)len64, (unsigned long)want);
    if (want == (size_t)-1 && len64 > (uint64_t)max)
        return irmae__fail(IRMAE_ERR_LIMIT, "checkpoint: section '%s' at offset %lu has length %.0f, more than the %lu bytes "
                           "of the largest configuration (IRMAE_MAX_LAYERS %d)",
                           tag, (unsigned long)at, (double)len64, (unsigned long)max, IRMAE_MAX_LAYERS);
    if (len64 > (uint64_t)(left - 12) || (left - 12) - (size_t)len64 < 4)
        return irmae__fail(IRMAE_ERR_TRUNCATED, "checkpoint: section '%s' at offset %lu: %.0f payload bytes and a CRC, %lu bytes left",
                           tag, (unsigned long)at, (double)len64, (unsigned long)(left - 12));
    n = (size_t)len64;
    crc = irmae__cd_le32(p + at + 12 + n);
    got = irmae_crc32(0, p + at, 12 + n);
    if (crc != got)
        return irmae__fail(IRMAE_ERR_CHECKSUM, "checkpoint: section '%s' at offset %lu: CRC %08lx stored at offset %lu, the bytes give %08lx",
                           tag, (unsigned long)at, (unsigned long)crc, (unsigned long)(at + 12 + n), (unsigned long)got);
    *payload = p + at + 12;
    *len = n;
    *pos = at + 12 + n + 4;
    return IRMAE_OK;
}

/* Bytes of workspace irmae_model_init allocates for a planned model (the
   buffers besides the four parameter-sized ones). 0 if a size overflows. */
static size_t irmae__ck_workspace(const irmae_model *pm, const irmae_config *cfg)
{
    irmae__sizes z;
    size_t total;
    if (!irmae__model_sizes(pm, cfg, &z)) return 0;
    total = z.acts;
    if (z.maxio > ((size_t)-1 - total) / 2) return 0;
    total += 2 * z.maxio;
    if (z.codes > (size_t)-1 - total) return 0;
    total += z.codes;
    if (z.eps > (size_t)-1 - total) return 0;
    total += z.eps;
    if (z.work > (size_t)-1 - total) return 0;
    total += z.work;
    return irmae__mul(&total, total, sizeof(float)) ? total : 0;
}

/* CONF payload q[0..len) (file offset base) -> v->cfg, v->n_params, v->workspace. */
static int irmae__ck_conf(const unsigned char *q, size_t len, size_t base, irmae__ck_view *v)
{
    irmae_config *c = &v->cfg;
    irmae_model *pm;
    int ne, nd, i, j, rc;
    size_t off, want;
    uint64_t stored;
    memset(c, 0, sizeof *c);
    if (len < IRMAE__CK_CONF_FIXED + 8u)
        return irmae__fail(IRMAE_ERR_FORMAT, "checkpoint: configuration at offset %lu has %lu bytes, at least %u needed",
                           (unsigned long)base, (unsigned long)len, IRMAE__CK_CONF_FIXED + 8u);
    ne = irmae__ck_i32(irmae__cd_le32(q + IRMAE__CK_CONF_FIXED - 8u));
    nd = irmae__ck_i32(irmae__cd_le32(q + IRMAE__CK_CONF_FIXED - 4u));
    if (ne > IRMAE_MAX_LAYERS || nd > IRMAE_MAX_LAYERS)
        return irmae__fail(IRMAE_ERR_LIMIT, "checkpoint: %d encoder / %d decoder layers at offset %lu, IRMAE_MAX_LAYERS is %d",
                           ne, nd, (unsigned long)(base + IRMAE__CK_CONF_FIXED - 8u), IRMAE_MAX_LAYERS);
    if (ne < 1 || nd < 1)
        return irmae__fail(IRMAE_ERR_FORMAT, "checkpoint: %d encoder / %d decoder layers at offset %lu",
                           ne, nd, (unsigned long)(base + IRMAE__CK_CONF_FIXED - 8u));
    want = IRMAE__CK_CONF_FIXED + 4u * IRMAE__CK_NSPEC * (size_t)(ne + nd) + 8u;
    if (len != want)
        return irmae__fail(IRMAE_ERR_FORMAT, "checkpoint: configuration at offset %lu has %lu bytes, %d + %d layers need %lu",
                           (unsigned long)base, (unsigned long)len, ne, nd, (unsigned long)want);
    for (i = 0; i < IRMAE__CK_NINT; i++) *irmae__ck_int(c, i) = irmae__ck_i32(irmae__cd_le32(q + 4 * i));
    for (i = 0; i < IRMAE__CK_NFLT; i++) *irmae__ck_flt(c, i) = irmae__ck_bitsf(irmae__cd_le32(q + 36 + 4 * i));
    c->n_enc = ne; c->n_dec = nd;
    off = IRMAE__CK_CONF_FIXED;
    for (i = 0; i < ne + nd; i++) {
        irmae_layer_spec *s = i < ne ? &c->enc[i] : &c->dec[i - ne];
        for (j = 0; j < IRMAE__CK_NSPEC; j++, off += 4) *irmae__ck_spec(s, j) = irmae__ck_i32(irmae__cd_le32(q + off));
    }
    stored = irmae__ck_rd64(q + off);
    pm = (irmae_model *)irmae__alloc(1, sizeof *pm);
    if (!pm) return irmae__fail(IRMAE_ERR_NOMEM, "checkpoint: planning the model");
    rc = irmae__model_plan(pm, c);
    if (rc) {
        irmae__free(pm);
        return irmae__ck_refail(rc, rc == IRMAE_ERR_LIMIT || rc == IRMAE_ERR_OVERFLOW ? rc : IRMAE_ERR_FORMAT,
                                "checkpoint: the configuration is invalid");
    }
    v->n_params = pm->n_params;
    v->workspace = irmae__ck_workspace(pm, c);
    irmae__free(pm);
    if (stored != (uint64_t)v->n_params)
        return irmae__fail(IRMAE_ERR_FORMAT, "checkpoint: %.0f parameters stored at offset %lu, the configuration has %lu",
                           (double)stored, (unsigned long)(base + off), (unsigned long)v->n_params);
    return IRMAE_OK;
}

/* Validates a whole checkpoint (or, conf_only, its header and CONF). */
static int irmae__ck_parse(const unsigned char *p, size_t size, irmae__ck_view *v, int conf_only)
{
    size_t pos = IRMAE__CK_HEADER, len, p4;
    const unsigned char *q;
    int rc, i;
    memset(v, 0, sizeof *v);
    if ((rc = irmae__ck_header(p, size))) return rc;
    if ((rc = irmae__ck_section(p, size, &pos, 0, (size_t)-1, IRMAE__CK_CONF_MAX, &q, &len))) return rc;
    if ((rc = irmae__ck_conf(q, len, (size_t)(q - p), v))) return rc;
    if (conf_only) return IRMAE_OK;
    if ((rc = irmae__ck_section(p, size, &pos, 1, IRMAE__CK_TRST_LEN, 0, &q, &len))) return rc;
    v->step = irmae__ck_i64(irmae__ck_rd64(q));
    for (i = 0; i < 4; i++) v->rng.s[i] = irmae__ck_rd64(q + 8 + 8 * i);
    v->epoch = irmae__ck_i64(irmae__ck_rd64(q + 40));
    v->batch = irmae__ck_i64(irmae__ck_rd64(q + 48));
    for (i = 0; i < 4; i++) v->data_rng.s[i] = irmae__ck_rd64(q + 56 + 8 * i);
    if (v->step < 0 || v->epoch < 0 || v->batch < 0)
        return irmae__fail(IRMAE_ERR_FORMAT, "checkpoint: negative step %.0f, epoch %.0f or batch %.0f at offset %lu",
                           (double)v->step, (double)v->epoch, (double)v->batch, (unsigned long)(q - p));
    if (!irmae__mul(&p4, v->n_params, 4))
        return irmae__fail(IRMAE_ERR_LIMIT, "checkpoint: %lu parameters", (unsigned long)v->n_params);
    for (i = 0; i < 3; i++) {
        if ((rc = irmae__ck_section(p, size, &pos, 2 + i, p4, 0, &q, &len))) return rc;
        v->tensor[i] = q;
    }
    if (pos != size)
        return irmae__fail(IRMAE_ERR_FORMAT, "checkpoint: %lu bytes after the last section (offset %lu)",
                           (unsigned long)(size - pos), (unsigned long)pos);
    return IRMAE_OK;
}

/* Field-by-field comparison of the stored configuration with a model's. */
static int irmae__ck_compare(const irmae_config *file, const irmae_config *model)
{
    irmae_config *a = (irmae_config *)file, *b = (irmae_config *)model; /* read only */
    int i, j;
    for (i = 0; i < IRMAE__CK_NINT; i++)
        if (*irmae__ck_int(a, i) != *irmae__ck_int(b, i))
            return irmae__fail(IRMAE_ERR_MISMATCH, "checkpoint: config field %s is %d in the file, %d in the model",
                               irmae__ck_int_names[i], *irmae__ck_int(a, i), *irmae__ck_int(b, i));
    for (i = 0; i < IRMAE__CK_NFLT; i++)
        if (irmae__ck_fbits(*irmae__ck_flt(a, i)) != irmae__ck_fbits(*irmae__ck_flt(b, i)))
            return irmae__fail(IRMAE_ERR_MISMATCH, "checkpoint: config field %s is %.9g in the file, %.9g in the model",
                               irmae__ck_flt_names[i], (double)*irmae__ck_flt(a, i), (double)*irmae__ck_flt(b, i));
    if (a->n_enc != b->n_enc || a->n_dec != b->n_dec)
        return irmae__fail(IRMAE_ERR_MISMATCH, "checkpoint: %d encoder / %d decoder layers in the file, %d / %d in the model",
                           a->n_enc, a->n_dec, b->n_enc, b->n_dec);
    for (i = 0; i < a->n_enc + a->n_dec; i++) {
        irmae_layer_spec *sa = i < a->n_enc ? &a->enc[i] : &a->dec[i - a->n_enc];
        irmae_layer_spec *sb = i < a->n_enc ? &b->enc[i] : &b->dec[i - a->n_enc];
        for (j = 0; j < IRMAE__CK_NSPEC; j++)
            if (*irmae__ck_spec(sa, j) != *irmae__ck_spec(sb, j))
                return irmae__fail(IRMAE_ERR_MISMATCH, "checkpoint: %s layer %d field %s is %d in the file, %d in the model",
                                   i < a->n_enc ? "encoder" : "decoder", i < a->n_enc ? i : i - a->n_enc,
                                   irmae__ck_spec_names[j], *irmae__ck_spec(sa, j), *irmae__ck_spec(sb, j));
    }
    return IRMAE_OK;
}

static void irmae__ck_read_floats(float *dst, const unsigned char *src, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) dst[i] = irmae__ck_bitsf(irmae__cd_le32(src + 4 * i));
}

static void irmae__ck_apply(irmae_model *m, const irmae__ck_view *v)
{
    irmae__ck_read_floats(m->params, v->tensor[0], v->n_params);
    irmae__ck_read_floats(m->adam_m, v->tensor[1], v->n_params);
    irmae__ck_read_floats(m->adam_v, v->tensor[2], v->n_params);
    memset(m->grads, 0, v->n_params * sizeof(float));
    m->step = v->step;
    m->rng = v->rng;
}

IRMAEDEF int irmae_checkpoint_decode(irmae_model *m, irmae_train_state *ts, const void *data, size_t size)
{
    irmae__ck_view *v;
    int rc;
    if (!m) return irmae__fail(IRMAE_ERR_ARG, "checkpoint_decode: model is NULL");
    if (!data && size) return irmae__fail(IRMAE_ERR_ARG, "checkpoint_decode: NULL data with size %lu", (unsigned long)size);
    v = (irmae__ck_view *)irmae__alloc(1, sizeof *v);
    if (!v) return irmae__fail(IRMAE_ERR_NOMEM, "checkpoint_decode: view");
    rc = irmae__ck_parse((const unsigned char *)data, size, v, 0);
    if (rc) { irmae__free(v); return rc; }
    if (m->params) {
        rc = irmae__ck_compare(&v->cfg, &m->cfg);
        if (!rc && (m->n_params != v->n_params || !m->grads || !m->adam_m || !m->adam_v))
            rc = irmae__fail(IRMAE_ERR_MISMATCH, "checkpoint: %lu parameters in the file, %lu in the model",
                             (unsigned long)v->n_params, (unsigned long)m->n_params);
        if (!rc) irmae__ck_apply(m, v);
    } else if (v->workspace == 0 || v->workspace > (size_t)IRMAE_MAX_ALLOC) {
        rc = irmae__fail(IRMAE_ERR_LIMIT, "checkpoint: the model's workspace for max_batch %d needs %.0f bytes, "
                         "more than IRMAE_MAX_ALLOC (%.0f)", v->cfg.max_batch,
                         v->workspace ? (double)v->workspace : HUGE_VAL, (double)IRMAE_MAX_ALLOC);
    } else {
        irmae_model *t = (irmae_model *)irmae__alloc(1, sizeof *t);
        irmae_rng r = irmae_rng_seed(0);
        if (!t) rc = irmae__fail(IRMAE_ERR_NOMEM, "checkpoint_decode: model");
        else if ((rc = irmae_model_init(t, &v->cfg, &r)) == IRMAE_OK) {
            irmae__ck_apply(t, v);
            *m = *t;
        }
        irmae__free(t);
    }
    if (!rc && ts) { ts->epoch = v->epoch; ts->batch = v->batch; ts->data_rng = v->data_rng; }
    irmae__free(v);
    return rc;
}

IRMAEDEF int irmae_checkpoint_load(irmae_model *m, irmae_train_state *ts, const char *path)
{
    unsigned char *buf;
    size_t size;
    int rc;
    if (!path || !m) return irmae__fail(IRMAE_ERR_ARG, "checkpoint_load: NULL path or model");
    if ((rc = irmae__cd_read_file(path, &buf, &size))) return rc;
    rc = irmae_checkpoint_decode(m, ts, buf, size);
    irmae__free(buf);
    return rc ? irmae__cd_tag_path(rc, path) : IRMAE_OK;
}

IRMAEDEF int irmae_checkpoint_read_config(irmae_config *cfg, const char *path)
{
    const size_t cap = IRMAE__CK_HEADER + 12u + IRMAE__CK_CONF_MAX + 4u;
    unsigned char *buf;
    irmae__ck_view *v;
    size_t got;
    FILE *f;
    int rc, bad;
    if (cfg) memset(cfg, 0, sizeof *cfg);
    if (!path || !cfg) return irmae__fail(IRMAE_ERR_ARG, "checkpoint_read_config: NULL path or cfg");
    f = fopen(path, "rb");
    if (!f) return irmae__fail(IRMAE_ERR_IO, "checkpoint_read_config: cannot open '%.300s'", path);
    buf = (unsigned char *)irmae__alloc(cap, 1);
    v = (irmae__ck_view *)irmae__alloc(1, sizeof *v);
    if (!buf || !v) {
        fclose(f); irmae__free(buf); irmae__free(v);
        return irmae__fail(IRMAE_ERR_NOMEM, "checkpoint_read_config: buffers");
    }
    got = fread(buf, 1, cap, f);
    bad = ferror(f) != 0;
    fclose(f);
    if (bad) rc = irmae__fail(IRMAE_ERR_IO, "checkpoint_read_config: error reading '%.300s'", path);
    else {
        /* every check on the prefix read is exact: a CONF section longer than
           the largest configuration is refused before the bytes are needed */
        rc = irmae__ck_parse(buf, got, v, 1);
        if (rc) rc = irmae__cd_tag_path(rc, path);
        else *cfg = v->cfg;
    }
    irmae__free(buf);
    irmae__free(v);
    return rc;
}

/* ---- safetensors export ------------------------------------------------------ */

/* A growable string (sticky allocation failure). */
typedef struct irmae__sb { char *s; size_t len, cap; int err; } irmae__sb;

static void irmae__sb_raw(irmae__sb *b, const char *s, size_t n)
{
    if (b->err) return;
    if (n >= b->cap - b->len || !b->s) {
        size_t ncap = b->cap ? b->cap : 1024;
        char *ns;
        while (ncap - b->len <= n) {
            if (ncap > (size_t)-1 / 2) { b->err = 1; return; }
            ncap *= 2;
        }
        ns = (char *)irmae__alloc(ncap, 1);
        if (!ns) { b->err = 1; return; }
        if (b->len) memcpy(ns, b->s, b->len);
        irmae__free(b->s);
        b->s = ns; b->cap = ncap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}
static void irmae__sb_fmt(irmae__sb *b, const char *fmt, ...) IRMAE__PRINTF(2, 3);
static void irmae__sb_fmt(irmae__sb *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) { b->err = 1; return; }
    irmae__sb_raw(b, tmp, (size_t)n);
}
static void irmae__sb_u64(irmae__sb *b, uint64_t v)
{
    char d[24];
    int i = 23;
    d[i] = 0;
    do { d[--i] = (char)('0' + (int)(v % 10)); v /= 10; } while (v);
    irmae__sb_raw(b, d + i, (size_t)(23 - i));
}

typedef struct irmae__st_tensor {
    char name[32];
    int rank;
    size_t shape[4];
    const float *data;
    size_t count;
} irmae__st_tensor;

typedef struct irmae__st_src {
    const irmae__st_tensor *t;
    int nt;
    const char *header;
    size_t header_len;           /* padded to a multiple of 8 */
} irmae__st_src;

static void irmae__st_emit(irmae__ckw *w, const void *ctx)
{
    const irmae__st_src *s = (const irmae__st_src *)ctx;
    int i;
    irmae__ckw_u64(w, (uint64_t)s->header_len);
    irmae__ckw_put(w, s->header, s->header_len);
    for (i = 0; i < s->nt; i++) irmae__ckw_floats(w, s->t[i].data, s->t[i].count);
}

/* One module of the "layers" JSON text: the type's name and fields from its row. */
static void irmae__st_layer_json(irmae__sb *b, const irmae_layer *L, int first)
{
    char extra[160];
    const char *type = irmae__lt(L)->describe(L, extra, sizeof extra);
    irmae__sb_fmt(b, "%s{\"type\":\"%s\",\"in\":[%d,%d,%d],\"out\":[%d,%d,%d]%s}", first ? "" : ",",
                  type, L->in_c, L->in_h, L->in_w, L->out_c, L->out_h, L->out_w, extra);
}

/* Adds the weight (and bias) tensors of layer L named <prefix>.<index>. */
static void irmae__st_layer_tensors(irmae__st_tensor *t, int *nt, const irmae_model *m, const irmae_layer *L,
                                    const char *prefix, int index)
{
    irmae__st_tensor *w;
    if (!L->n_w) return;
    w = &t[(*nt)++];
    memset(w, 0, sizeof *w);
    snprintf(w->name, sizeof w->name, "%s.%d.weight", prefix, index);
    w->data = m->params + L->w_off;
    w->count = L->n_w;
    w->rank = irmae__lt(L)->weight_shape(L, w->shape);
    if (L->n_b) {
        irmae__st_tensor *b = &t[(*nt)++];
        memset(b, 0, sizeof *b);
        snprintf(b->name, sizeof b->name, "%s.%d.bias", prefix, index);
        b->data = m->params + L->b_off;
        b->count = L->n_b;
        b->rank = 1; b->shape[0] = L->n_b;
    }
}

/* The tensors of m in file order (encoder, maps, decoder, collapsed) into t
   (2 n_layers + l + 1 entries); returns their number. */
static int irmae__st_list(irmae__st_tensor *t, const irmae_model *m, const float *collapsed)
{
    int i, j, nt = 0, n = m->cfg.n;
    for (i = 0; i < m->n_enc; i++) irmae__st_layer_tensors(t, &nt, m, &m->layers[i], "encoder", i);
    for (j = 0; j < m->cfg.l; j++) {
        irmae__st_tensor *w = &t[nt++];
        memset(w, 0, sizeof *w);
        snprintf(w->name, sizeof w->name, "maps.%d.weight", j);
        w->rank = 2; w->shape[0] = w->shape[1] = (size_t)n;
        w->data = m->params + m->maps_off + (size_t)j * n * n;
        w->count = (size_t)n * n;
    }
    for (i = m->n_enc; i < m->n_layers; i++) irmae__st_layer_tensors(t, &nt, m, &m->layers[i], "decoder", i - m->n_enc);
    {
        irmae__st_tensor *w = &t[nt++];
        memset(w, 0, sizeof *w);
        snprintf(w->name, sizeof w->name, "collapsed.weight");
        w->rank = 2; w->shape[0] = w->shape[1] = (size_t)n;
        w->data = collapsed;
        w->count = (size_t)n * n;
    }
    return nt;
}

IRMAEDEF int irmae_export_safetensors(const char *path, const irmae_model *m)
{
    irmae__st_tensor *t = NULL;
    irmae__st_src src;
    irmae__sb hdr, lay;
    float *collapsed = NULL;
    int nt = 0, i, j, n, rc, out_act;
    size_t maxt, off = 0;
    const char *sep;
    if (!path || !*path) return irmae__fail(IRMAE_ERR_ARG, "export_safetensors: NULL or empty path");
    if ((rc = irmae__ck_check_model(m, NULL, "export_safetensors"))) return rc;
    n = m->cfg.n;
    memset(&hdr, 0, sizeof hdr);
    memset(&lay, 0, sizeof lay);
    maxt = 2 * (size_t)m->n_layers + (size_t)m->cfg.l + 1;
    t = (irmae__st_tensor *)irmae__alloc(maxt, sizeof *t);
    collapsed = (float *)irmae__alloc((size_t)n * n, sizeof(float));
    if (!t || !collapsed) { rc = irmae__fail(IRMAE_ERR_NOMEM, "export_safetensors: %lu tensors", (unsigned long)maxt); goto done; }
    if ((rc = irmae_model_collapse(m, collapsed))) goto done;

    nt = irmae__st_list(t, m, collapsed);

    /* the layer list, as JSON text stored in a metadata string */
    irmae__sb_raw(&lay, "{\"encoder\":[", 12);
    for (i = 0; i < m->n_enc; i++) irmae__st_layer_json(&lay, &m->layers[i], i == 0);
    irmae__sb_raw(&lay, "],\"decoder\":[", 13);
    for (i = m->n_enc; i < m->n_layers; i++) irmae__st_layer_json(&lay, &m->layers[i], i == m->n_enc);
    irmae__sb_raw(&lay, "]}", 2);

    out_act = m->cfg.out_act == IRMAE_OUT_AUTO ? (m->cfg.kind == IRMAE_KIND_VAE ? IRMAE_OUT_SIGMOID : IRMAE_OUT_TANH)
                                               : m->cfg.out_act;
    irmae__sb_fmt(&hdr, "{\"__metadata__\":{\"format\":\"pt\",\"irmae_version\":\"%d.%d.%d\",\"n\":\"%d\",\"l\":\"%d\","
                  "\"kind\":\"%s\",\"in_c\":\"%d\",\"in_h\":\"%d\",\"in_w\":\"%d\",\"range\":\"%s\",\"out_act\":\"%s\",\"layers\":\"",
                  IRMAE_VERSION_MAJOR, IRMAE_VERSION_MINOR, IRMAE_VERSION_PATCH, n, m->cfg.l,
                  m->cfg.kind == IRMAE_KIND_VAE ? "vae" : "ae", m->cfg.in_c, m->cfg.in_h, m->cfg.in_w,
                  m->cfg.range_pm1 ? "-1,1" : "0,1",
                  out_act == IRMAE_OUT_TANH ? "tanh" : out_act == IRMAE_OUT_SIGMOID ? "sigmoid" : "none");
    for (i = 0; !lay.err && i < (int)lay.len; i++) {  /* escape the quotes of the JSON text */
        if (lay.s[i] == '"' || lay.s[i] == '\\') irmae__sb_raw(&hdr, "\\", 1);
        irmae__sb_raw(&hdr, lay.s + i, 1);
    }
    irmae__sb_raw(&hdr, "\",\"irmae_config\":\"", 18);
    {   /* the whole configuration: the checkpoint's CONF payload, in hex */
        unsigned char conf[IRMAE__CK_CONF_MAX];
        size_t clen = irmae__ck_conf_bytes(conf, m), k;
        for (k = 0; k < clen; k++) irmae__sb_fmt(&hdr, "%02x", conf[k]);
    }
    irmae__sb_raw(&hdr, "\"}", 2);
    for (i = 0; i < nt; i++) {
        size_t bytes = t[i].count * sizeof(float);
        irmae__sb_fmt(&hdr, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", t[i].name);
        for (j = 0, sep = ""; j < t[i].rank; j++, sep = ",") {
            irmae__sb_raw(&hdr, sep, strlen(sep));
            irmae__sb_u64(&hdr, (uint64_t)t[i].shape[j]);
        }
        irmae__sb_raw(&hdr, "],\"data_offsets\":[", 18);
        irmae__sb_u64(&hdr, (uint64_t)off);
        irmae__sb_raw(&hdr, ",", 1);
        irmae__sb_u64(&hdr, (uint64_t)(off + bytes));
        irmae__sb_raw(&hdr, "]}", 2);
        off += bytes;
    }
    irmae__sb_raw(&hdr, "}", 1);
    while (!hdr.err && hdr.len % 8) irmae__sb_raw(&hdr, " ", 1);
    if (hdr.err || lay.err) { rc = irmae__fail(IRMAE_ERR_NOMEM, "export_safetensors: header"); goto done; }
    src.t = t; src.nt = nt; src.header = hdr.s; src.header_len = hdr.len;
    rc = irmae__ck_write_atomic(path, irmae__st_emit, &src, "export_safetensors");
done:
    irmae__free(t);
    irmae__free(collapsed);
    irmae__free(hdr.s);
    irmae__free(lay.s);
    return rc;
}


/* ---- safetensors import ------------------------------------------------------ */

/* A strict reader of the safetensors JSON header (untrusted): a cursor over
   s[0..n), file offsets base + i in the messages. */
typedef struct irmae__js { const char *s; size_t n, i, base; } irmae__js;

static void irmae__js_ws(irmae__js *j)
{
    while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' || j->s[j->i] == '\r')) j->i++;
}
static int irmae__js_at(irmae__js *j, char c)
{
    irmae__js_ws(j);
    return j->i < j->n && j->s[j->i] == c;
}
static int irmae__js_expect(irmae__js *j, char c)
{
    if (irmae__js_at(j, c)) { j->i++; return IRMAE_OK; }
    return irmae__fail(IRMAE_ERR_FORMAT, "safetensors: expected '%c' in the header at offset %lu", c,
                       (unsigned long)(j->base + j->i));
}
/* A JSON string into buf (cap bytes, NUL-terminated; NULL: skipped). Escapes
   are decoded; \u escapes must be ASCII. A longer string is IRMAE_ERR_LIMIT. */
static int irmae__js_str(irmae__js *j, char *buf, size_t cap, size_t *len)
{
    size_t k = 0;
    if (!irmae__js_at(j, '"'))
        return irmae__fail(IRMAE_ERR_FORMAT, "safetensors: expected a string in the header at offset %lu", (unsigned long)(j->base + j->i));
    j->i++;
    for (;;) {
        char c;
        if (j->i >= j->n) return irmae__fail(IRMAE_ERR_FORMAT, "safetensors: unterminated string in the header");
        c = j->s[j->i++];
        if (c == '"') break;
        if ((unsigned char)c < 0x20)
            return irmae__fail(IRMAE_ERR_FORMAT, "safetensors: control character in a string at offset %lu", (unsigned long)(j->base + j->i - 1));
        if (c == '\\') {
            if (j->i >= j->n) return irmae__fail(IRMAE_ERR_FORMAT, "safetensors: unterminated escape in the header");
            c = j->s[j->i++];
            if (c == 'n') c = '\n'; else if (c == 't') c = '\t'; else if (c == 'r') c = '\r';
            else if (c == 'b') c = '\b'; else if (c == 'f') c = '\f';
            else if (c == 'u') {
                unsigned v = 0;
                int d;
                for (d = 0; d < 4; d++) {
                    char h = j->i < j->n ? j->s[j->i++] : 0;
                    v = v * 16 + (unsigned)(h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 :
                                            h >= 'A' && h <= 'F' ? h - 'A' + 10 : 99);
                    if (v > 0xFFFF) return irmae__fail(IRMAE_ERR_FORMAT, "safetensors: bad \\u escape at offset %lu", (unsigned long)(j->base + j->i));
                }
                if (v >= 0x80 && buf) return irmae__fail(IRMAE_ERR_UNSUPPORTED, "safetensors: a non-ASCII name at offset %lu", (unsigned long)(j->base + j->i));
                c = (char)(v & 0x7F);
            } else if (c != '"' && c != '\\' && c != '/')
                return irmae__fail(IRMAE_ERR_FORMAT, "safetensors: bad escape '\\%c' at offset %lu", c, (unsigned long)(j->base + j->i - 1));
        }
        if (buf) {
            if (k + 1 >= cap) return irmae__fail(IRMAE_ERR_LIMIT, "safetensors: a string longer than %lu bytes at offset %lu",
                                                 (unsigned long)(cap - 1), (unsigned long)(j->base + j->i));
            buf[k] = c;
        }
        k++;
    }
    if (buf) buf[k] = 0;
    if (len) *len = k;
    return IRMAE_OK;
}
/* A non-negative JSON integer (no sign, fraction or exponent), at most 2^53. */
static int irmae__js_uint(irmae__js *j, uint64_t *v)
{
    int digits = 0;
    irmae__js_ws(j);
    *v = 0;
    while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9') {
        *v = *v * 10 + (uint64_t)(j->s[j->i++] - '0');
        if (++digits > 16) return irmae__fail(IRMAE_ERR_LIMIT, "safetensors: an integer over 2^53 at offset %lu", (unsigned long)(j->base + j->i));
    }
    if (!digits || (j->i < j->n && (j->s[j->i] == '.' || j->s[j->i] == 'e' || j->s[j->i] == 'E')))
        return irmae__fail(IRMAE_ERR_FORMAT, "safetensors: expected a non-negative integer at offset %lu", (unsigned long)(j->base + j->i));
    return IRMAE_OK;
}
/* [u, u, ...] with at most max entries */
static int irmae__js_uints(irmae__js *j, uint64_t *v, int max, int *count)
{
    int rc;
    *count = 0;
    if ((rc = irmae__js_expect(j, '['))) return rc;
    if (irmae__js_at(j, ']')) { j->i++; return IRMAE_OK; }
    for (;;) {
        if (*count >= max) return irmae__fail(IRMAE_ERR_UNSUPPORTED, "safetensors: more than %d entries in a list at offset %lu", max, (unsigned long)(j->base + j->i));
        if ((rc = irmae__js_uint(j, &v[(*count)++]))) return rc;
        if (irmae__js_at(j, ',')) { j->i++; continue; }
        return irmae__js_expect(j, ']');
    }
}

/* One tensor of the header. */
typedef struct irmae__st_entry {
    char name[128];
    int dtype;                 /* bytes per value: 4 F32, 2 F16, 3 BF16 (2 bytes) */
    int rank;
    uint64_t shape[4], begin, end;
} irmae__st_entry;

enum { IRMAE__ST_F32 = 4, IRMAE__ST_F16 = 2, IRMAE__ST_BF16 = 3 };

/* The header {"__metadata__": {...}, "name": {"dtype", "shape", "data_offsets"}, ...}:
   up to cap entries into e (*ne), the "irmae_config" metadata string into conf_hex. */
static int irmae__st_header(irmae__js *j, irmae__st_entry *e, int cap, int *ne, char *conf_hex, size_t hex_cap)
{
    char key[128];
    int rc, meta = 0;
    *ne = 0;
    conf_hex[0] = 0;
    if ((rc = irmae__js_expect(j, '{'))) return rc;
    if (irmae__js_at(j, '}')) { j->i++; return IRMAE_OK; }
    for (;;) {
        if ((rc = irmae__js_str(j, key, sizeof key, NULL))) return rc;
        if ((rc = irmae__js_expect(j, ':'))) return rc;
        if (!strcmp(key, "__metadata__")) {
            if (meta++) return irmae__fail(IRMAE_ERR_FORMAT, "safetensors: __metadata__ twice");
            if ((rc = irmae__js_expect(j, '{'))) return rc;
            if (irmae__js_at(j, '}')) j->i++;
            else for (;;) {
                char mk[64];
                size_t len;
                if ((rc = irmae__js_str(j, mk, sizeof mk, NULL))) return rc;
                if ((rc = irmae__js_expect(j, ':'))) return rc;
                if (!strcmp(mk, "irmae_config")) rc = irmae__js_str(j, conf_hex, hex_cap, &len);
                else rc = irmae__js_str(j, NULL, 0, &len);
                if (rc) return rc;
                if (irmae__js_at(j, ',')) { j->i++; continue; }
                if ((rc = irmae__js_expect(j, '}'))) return rc;
                break;
            }
        } else {
            irmae__st_entry *t;
            char field[32], dt[16];
            int seen = 0, n2, k;
            uint64_t off[3];
            for (k = 0; k < *ne; k++)
                if (!strcmp(e[k].name, key)) return irmae__fail(IRMAE_ERR_FORMAT, "safetensors: tensor '%s' twice", key);
            if (*ne >= cap) return irmae__fail(IRMAE_ERR_MISMATCH, "safetensors: extra tensor '%s' (the model has %d)", key, cap - 1);
            t = &e[(*ne)++];
            memset(t, 0, sizeof *t);
            memcpy(t->name, key, sizeof t->name);
            if ((rc = irmae__js_expect(j, '{'))) return rc;
            for (;;) {
                int bit;
                if ((rc = irmae__js_str(j, field, sizeof field, NULL))) return rc;
                if ((rc = irmae__js_expect(j, ':'))) return rc;
                bit = !strcmp(field, "dtype") ? 1 : !strcmp(field, "shape") ? 2 : !strcmp(field, "data_offsets") ? 4 : 0;
                if (!bit || (seen & bit))
                    return irmae__fail(IRMAE_ERR_FORMAT, "safetensors: tensor '%s': %s field '%s'", key, bit ? "repeated" : "unknown", field);
                seen |= bit;
                if (bit == 1) {
                    if ((rc = irmae__js_str(j, dt, sizeof dt, NULL))) return rc;
                    t->dtype = !strcmp(dt, "F32") ? IRMAE__ST_F32 : !strcmp(dt, "F16") ? IRMAE__ST_F16 : !strcmp(dt, "BF16") ? IRMAE__ST_BF16 : 0;
                    if (!t->dtype) return irmae__fail(IRMAE_ERR_UNSUPPORTED, "safetensors: tensor '%s' has dtype %s (F32, F16 and BF16 are read)", key, dt);
                } else if (bit == 2) {
                    if ((rc = irmae__js_uints(j, t->shape, 4, &t->rank))) return rc;
                } else {
                    if ((rc = irmae__js_uints(j, off, 2, &n2))) return rc;
                    if (n2 != 2) return irmae__fail(IRMAE_ERR_FORMAT, "safetensors: tensor '%s': data_offsets needs 2 numbers", key);
                    t->begin = off[0]; t->end = off[1];
                }
                if (irmae__js_at(j, ',')) { j->i++; continue; }
                if ((rc = irmae__js_expect(j, '}'))) return rc;
                break;
            }
            if (seen != 7) return irmae__fail(IRMAE_ERR_FORMAT, "safetensors: tensor '%s' lacks %s", key,
                                              !(seen & 1) ? "dtype" : !(seen & 2) ? "shape" : "data_offsets");
        }
        if (irmae__js_at(j, ',')) { j->i++; continue; }
        if ((rc = irmae__js_expect(j, '}'))) return rc;
        break;
    }
    irmae__js_ws(j);
    if (j->i != j->n) return irmae__fail(IRMAE_ERR_FORMAT, "safetensors: bytes after the header's JSON at offset %lu", (unsigned long)(j->base + j->i));
    return IRMAE_OK;
}

/* IEEE half / bfloat16 bits to float */
static float irmae__half(unsigned h)
{
    unsigned sign = (h >> 15) & 1, ex = (h >> 10) & 31, man = h & 1023;
    float v;
    if (ex == 0) v = (float)ldexp((double)man, -24);
    else if (ex == 31) v = man ? (float)NAN : (float)HUGE_VAL;
    else v = (float)ldexp((double)(man | 1024), (int)ex - 25);
    return sign ? -v : v;
}

/* Validated header of a safetensors file in memory: the entries and where the data starts. */
typedef struct irmae__st_file { irmae__st_entry *e; int ne; size_t data_off, data_len; char conf_hex[2 * IRMAE__CK_CONF_MAX + 1]; } irmae__st_file;

static int irmae__st_parse(irmae__st_file *f, const unsigned char *p, size_t size, int cap)
{
    uint64_t hlen;
    irmae__js j;
    int rc, i, k, nonempty, steps;
    size_t at;
    if (size < 8) return irmae__fail(IRMAE_ERR_TRUNCATED, "safetensors: %lu bytes, the header length needs 8", (unsigned long)size);
    hlen = (uint64_t)irmae__cd_le32(p) | ((uint64_t)irmae__cd_le32(p + 4) << 32);
    if (hlen > 100000000u) return irmae__fail(IRMAE_ERR_LIMIT, "safetensors: header of %.0f bytes (the format's limit is 100 MB)", (double)hlen);
    if (hlen > size - 8) return irmae__fail(IRMAE_ERR_TRUNCATED, "safetensors: header of %.0f bytes, %lu left after the length", (double)hlen, (unsigned long)(size - 8));
    j.s = (const char *)p + 8; j.n = (size_t)hlen; j.i = 0; j.base = 8;
    if ((rc = irmae__st_header(&j, f->e, cap, &f->ne, f->conf_hex, sizeof f->conf_hex))) return rc;
    f->data_off = 8 + (size_t)hlen; f->data_len = size - f->data_off;
    /* every tensor: its byte size matches dtype x shape, inside the data; together they tile it (no overlap, no hole) */
    for (i = 0; i < f->ne; i++) {
        irmae__st_entry *t = &f->e[i];
        uint64_t count = 1, bytes;
        for (k = 0; k < t->rank; k++) {
            if (t->shape[k] > (uint64_t)INT_MAX) return irmae__fail(IRMAE_ERR_LIMIT, "safetensors: tensor '%s' dimension %d is %.0f", t->name, k, (double)t->shape[k]);
            count *= t->shape[k];
            if (count > (uint64_t)IRMAE_MAX_ALLOC) return irmae__fail(IRMAE_ERR_LIMIT, "safetensors: tensor '%s' is too large", t->name);
        }
        bytes = count * (t->dtype == IRMAE__ST_F32 ? 4u : 2u);
        if (t->begin > t->end || t->end > (uint64_t)f->data_len)
            return irmae__fail(IRMAE_ERR_FORMAT, "safetensors: tensor '%s' data_offsets [%.0f, %.0f] outside the %lu data bytes",
                               t->name, (double)t->begin, (double)t->end, (unsigned long)f->data_len);
        if (t->end - t->begin != bytes)
            return irmae__fail(IRMAE_ERR_FORMAT, "safetensors: tensor '%s' has %.0f bytes, its dtype and shape need %.0f",
                               t->name, (double)(t->end - t->begin), (double)bytes);
    }
    /* walk the non-empty tensors in data order, each starting where the last
       ended: every one visited and the walk ending at the end of the data
       means no overlap and no hole */
    for (i = 0, nonempty = 0; i < f->ne; i++) nonempty += f->e[i].end > f->e[i].begin;
    for (at = 0, steps = 0; steps < nonempty; steps++) {
        int next = -1;
        for (i = 0; i < f->ne; i++)
            if (f->e[i].begin == at && f->e[i].end > f->e[i].begin) { next = i; break; }
        if (next < 0) break;
        at = (size_t)f->e[next].end;
    }
    if (steps != nonempty || at != f->data_len)
        return irmae__fail(IRMAE_ERR_FORMAT, "safetensors: the tensors do not tile the %lu data bytes: overlap or hole at data offset %lu",
                           (unsigned long)f->data_len, (unsigned long)at);
    return IRMAE_OK;
}

IRMAEDEF int irmae_import_safetensors_mem(irmae_model *m, const void *data, size_t size)
{
    irmae__st_tensor *want = NULL;
    irmae__st_file *f = NULL;
    float *stage = NULL;
    const unsigned char *p = (const unsigned char *)data;
    int rc, nw, i, k, cap;
    if (!m || !m->params) return irmae__fail(IRMAE_ERR_ARG, "import_safetensors: model is NULL or not initialised");
    if (!data && size) return irmae__fail(IRMAE_ERR_ARG, "import_safetensors: NULL data");
    cap = 2 * m->n_layers + m->cfg.l + 1;
    want = (irmae__st_tensor *)irmae__alloc((size_t)cap, sizeof *want);
    f = (irmae__st_file *)irmae__alloc(1, sizeof *f);
    if (f) f->e = (irmae__st_entry *)irmae__alloc((size_t)cap, sizeof *f->e);
    stage = (float *)irmae__alloc(m->n_params, sizeof(float));
    if (!want || !f || !f->e || !stage) { rc = irmae__fail(IRMAE_ERR_NOMEM, "import_safetensors: %d tensors", cap); goto done; }
    nw = irmae__st_list(want, m, NULL);
    if ((rc = irmae__st_parse(f, p, size, cap))) goto done;
    memcpy(stage, m->params, m->n_params * sizeof(float));
    for (i = 0; i < f->ne; i++) {
        const irmae__st_entry *t = &f->e[i];
        const irmae__st_tensor *w = NULL;
        const unsigned char *src = p + f->data_off + (size_t)t->begin;
        float *dst;
        size_t c;
        for (k = 0; k < nw; k++) if (!strcmp(want[k].name, t->name)) { w = &want[k]; break; }
        if (!w) { rc = irmae__fail(IRMAE_ERR_MISMATCH, "safetensors: extra tensor '%s': the model has no such parameter", t->name); goto done; }
        if (t->rank != w->rank) { rc = irmae__fail(IRMAE_ERR_MISMATCH, "safetensors: tensor '%s' has rank %d, the model's %d", t->name, t->rank, w->rank); goto done; }
        for (k = 0; k < w->rank; k++)
            if (t->shape[k] != (uint64_t)w->shape[k]) {
                rc = irmae__fail(IRMAE_ERR_MISMATCH, "safetensors: tensor '%s' dimension %d is %.0f, the model's %lu", t->name, k,
                                 (double)t->shape[k], (unsigned long)w->shape[k]);
                goto done;
            }
        if (!w->data) continue;       /* collapsed.weight: derived from the maps, not loaded */
        dst = stage + (w->data - m->params);
        for (c = 0; c < w->count; c++) {
            float v = t->dtype == IRMAE__ST_F32 ? irmae__ck_bitsf(irmae__cd_le32(src + 4 * c))
                    : t->dtype == IRMAE__ST_F16 ? irmae__half((unsigned)src[2 * c] | ((unsigned)src[2 * c + 1] << 8))
                    : irmae__ck_bitsf(((uint32_t)src[2 * c] << 16) | ((uint32_t)src[2 * c + 1] << 24));
            if (!isfinite(v)) { rc = irmae__fail(IRMAE_ERR_NUMERIC, "safetensors: tensor '%s' holds %g at index %lu", t->name, v, (unsigned long)c); goto done; }
            dst[c] = v;
        }
    }
    for (k = 0; k < nw; k++) {
        if (!want[k].data) continue;
        for (i = 0; i < f->ne && strcmp(f->e[i].name, want[k].name); i++) {}
        if (i == f->ne) { rc = irmae__fail(IRMAE_ERR_MISMATCH, "safetensors: missing tensor '%s'", want[k].name); goto done; }
    }
    /* all checked: the weights, fresh Adam moments, step 0 */
    memcpy(m->params, stage, m->n_params * sizeof(float));
    memset(m->adam_m, 0, m->n_params * sizeof(float));
    memset(m->adam_v, 0, m->n_params * sizeof(float));
    irmae__zero(m->grads, m->n_params);
    m->step = 0;
    rc = IRMAE_OK;
done:
    irmae__free(want);
    if (f) irmae__free(f->e);
    irmae__free(f);
    irmae__free(stage);
    return rc;
}

IRMAEDEF int irmae_import_safetensors(irmae_model *m, const char *path)
{
    unsigned char *buf;
    size_t size;
    int rc;
    if (!m || !path) return irmae__fail(IRMAE_ERR_ARG, "import_safetensors: NULL model or path");
    if ((rc = irmae__cd_read_file(path, &buf, &size))) return rc;
    rc = irmae_import_safetensors_mem(m, buf, size);
    irmae__free(buf);
    return rc ? irmae__cd_tag_path(rc, path) : IRMAE_OK;
}

IRMAEDEF int irmae_safetensors_read_config(irmae_config *cfg, const char *path)
{
    unsigned char *buf = NULL, *conf = NULL;
    irmae__st_file *f = NULL;
    irmae__ck_view *v = NULL;
    size_t size, len, k;
    int rc;
    if (cfg) memset(cfg, 0, sizeof *cfg);
    if (!cfg || !path) return irmae__fail(IRMAE_ERR_ARG, "safetensors_read_config: NULL cfg or path");
    if ((rc = irmae__cd_read_file(path, &buf, &size))) return rc;
    f = (irmae__st_file *)irmae__alloc(1, sizeof *f);
    if (f) f->e = (irmae__st_entry *)irmae__alloc(4 * IRMAE_MAX_LAYERS + 1026, sizeof *f->e);
    conf = (unsigned char *)irmae__alloc(IRMAE__CK_CONF_MAX, 1);
    v = (irmae__ck_view *)irmae__alloc(1, sizeof *v);
    if (!f || !f->e || !conf || !v) { rc = irmae__fail(IRMAE_ERR_NOMEM, "safetensors_read_config"); goto done; }
    if ((rc = irmae__st_parse(f, buf, size, 4 * IRMAE_MAX_LAYERS + 1026))) goto done;
    len = strlen(f->conf_hex);
    if (len == 0) { rc = irmae__fail(IRMAE_ERR_FORMAT, "safetensors: no irmae_config in __metadata__ (give the architecture flags)"); goto done; }
    if (len % 2 || len / 2 > IRMAE__CK_CONF_MAX) { rc = irmae__fail(IRMAE_ERR_FORMAT, "safetensors: irmae_config of %lu hex digits", (unsigned long)len); goto done; }
    for (k = 0; k < len / 2; k++) {
        int hi = f->conf_hex[2 * k], lo = f->conf_hex[2 * k + 1], a, b;
        a = hi >= '0' && hi <= '9' ? hi - '0' : hi >= 'a' && hi <= 'f' ? hi - 'a' + 10 : -1;
        b = lo >= '0' && lo <= '9' ? lo - '0' : lo >= 'a' && lo <= 'f' ? lo - 'a' + 10 : -1;
        if (a < 0 || b < 0) { rc = irmae__fail(IRMAE_ERR_FORMAT, "safetensors: irmae_config is not lower-case hex"); goto done; }
        conf[k] = (unsigned char)(a * 16 + b);
    }
    if ((rc = irmae__ck_conf(conf, len / 2, 0, v))) goto done;
    *cfg = v->cfg;
done:
    irmae__free(buf);
    if (f) irmae__free(f->e);
    irmae__free(f);
    irmae__free(conf);
    irmae__free(v);
    return rc ? irmae__cd_tag_path(rc, path) : IRMAE_OK;
}

/* ---- NumPy .npy ---------------------------------------------------------- */

typedef struct irmae__npy_src { const float *data; size_t count; const char *header; size_t header_len; } irmae__npy_src;

static void irmae__npy_emit(irmae__ckw *w, const void *ctx)
{
    const irmae__npy_src *s = (const irmae__npy_src *)ctx;
    unsigned char pre[10] = { 0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0 };
    pre[8] = (unsigned char)(s->header_len & 0xFF);
    pre[9] = (unsigned char)(s->header_len >> 8);
    irmae__ckw_put(w, pre, 10);
    irmae__ckw_put(w, s->header, s->header_len);
    irmae__ckw_floats(w, s->data, s->count);
}

IRMAEDEF int irmae_npy_write(const char *path, const float *data, int rows, int cols)
{
    char header[128];
    irmae__npy_src src;
    size_t len;
    int n;
    if (!path || !*path || !data) return irmae__fail(IRMAE_ERR_ARG, "npy_write: NULL path or data");
    if (rows < 1 || cols < 0) return irmae__fail(IRMAE_ERR_ARG, "npy_write: shape %d x %d", rows, cols);
    if (cols == 0) n = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d,), }", rows);
    else n = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows, cols);
    if (n < 0 || (size_t)n >= sizeof header - 64) return irmae__fail(IRMAE_ERR_OVERFLOW, "npy_write: header");
    len = (size_t)n;
    while ((10 + len + 1) % 64) header[len++] = ' ';  /* the data starts at a multiple of 64 */
    header[len++] = '\n';
    if (!irmae__mul(&src.count, (size_t)rows, cols ? (size_t)cols : 1) || src.count > (size_t)-1 / 4)
        return irmae__fail(IRMAE_ERR_OVERFLOW, "npy_write: %d x %d floats", rows, cols);
    src.data = data; src.header = header; src.header_len = len;
    return irmae__ck_write_atomic(path, irmae__npy_emit, &src, "npy_write");
}

/* The header dict: a cursor over header text h[0..n) (file offset base). */
typedef struct irmae__npy_cur { const char *h; size_t n, i, base; } irmae__npy_cur;

static void irmae__npy_ws(irmae__npy_cur *c) { while (c->i < c->n && (c->h[c->i] == ' ' || c->h[c->i] == '\t')) c->i++; }
static int irmae__npy_expect(irmae__npy_cur *c, char ch, const char *what)
{
    irmae__npy_ws(c);
    if (c->i >= c->n || c->h[c->i] != ch)
        return irmae__fail(IRMAE_ERR_FORMAT, "npy: expected '%c' (%s) at offset %lu", ch, what, (unsigned long)(c->base + c->i));
    c->i++;
    return IRMAE_OK;
}
/* a quoted string (' or "), without escapes, into buf */
static int irmae__npy_str(irmae__npy_cur *c, char *buf, size_t cap)
{
    char q;
    size_t k = 0;
    irmae__npy_ws(c);
    if (c->i >= c->n || (c->h[c->i] != '\'' && c->h[c->i] != '"'))
        return irmae__fail(IRMAE_ERR_FORMAT, "npy: expected a quoted string at offset %lu", (unsigned long)(c->base + c->i));
    q = c->h[c->i++];
    while (c->i < c->n && c->h[c->i] != q) {
        if (c->h[c->i] == '\\' || k + 1 >= cap)
            return irmae__fail(IRMAE_ERR_FORMAT, "npy: string at offset %lu is too long or escaped", (unsigned long)(c->base + c->i));
        buf[k++] = c->h[c->i++];
    }
    if (c->i >= c->n) return irmae__fail(IRMAE_ERR_FORMAT, "npy: unterminated string at offset %lu", (unsigned long)(c->base + c->i));
    c->i++;
    buf[k] = 0;
    return IRMAE_OK;
}

static int irmae__npy_header(irmae__npy_cur *c, int *rank, size_t *shape)
{
    int seen[3] = { 0, 0, 0 }, rc;
    char key[32], val[32];
    if ((rc = irmae__npy_expect(c, '{', "the header dict"))) return rc;
    for (;;) {
        int k;
        irmae__npy_ws(c);
        if (c->i < c->n && c->h[c->i] == '}') { c->i++; break; }
        if ((rc = irmae__npy_str(c, key, sizeof key))) return rc;
        k = !strcmp(key, "descr") ? 0 : !strcmp(key, "fortran_order") ? 1 : !strcmp(key, "shape") ? 2 : -1;
        if (k < 0) return irmae__fail(IRMAE_ERR_FORMAT, "npy: unknown header key '%s' at offset %lu", key, (unsigned long)(c->base + c->i));
        if (seen[k]++) return irmae__fail(IRMAE_ERR_FORMAT, "npy: header key '%s' twice", key);
        if ((rc = irmae__npy_expect(c, ':', "after a key"))) return rc;
        irmae__npy_ws(c);
        if (k == 0) {
            if ((rc = irmae__npy_str(c, val, sizeof val))) return rc;
            if (strcmp(val, "<f4"))
                return irmae__fail(IRMAE_ERR_UNSUPPORTED, "npy: dtype '%s'; only little-endian float32 ('<f4') is read", val);
        } else if (k == 1) {
            if (c->n - c->i >= 5 && !memcmp(c->h + c->i, "False", 5)) c->i += 5;
            else if (c->n - c->i >= 4 && !memcmp(c->h + c->i, "True", 4))
                return irmae__fail(IRMAE_ERR_UNSUPPORTED, "npy: Fortran order; only C order is read");
            else return irmae__fail(IRMAE_ERR_FORMAT, "npy: fortran_order is not True or False at offset %lu", (unsigned long)(c->base + c->i));
        } else {
            if ((rc = irmae__npy_expect(c, '(', "the shape tuple"))) return rc;
            *rank = 0;
            for (;;) {
                size_t v = 0;
                int digits = 0;
                irmae__npy_ws(c);
                if (c->i < c->n && c->h[c->i] == ')') { c->i++; break; }
                while (c->i < c->n && c->h[c->i] >= '0' && c->h[c->i] <= '9') {
                    v = v * 10 + (size_t)(c->h[c->i++] - '0');
                    if (v > (size_t)INT_MAX)
                        return irmae__fail(IRMAE_ERR_LIMIT, "npy: a dimension larger than %d at offset %lu", INT_MAX, (unsigned long)(c->base + c->i));
                    digits++;
                }
                if (!digits) return irmae__fail(IRMAE_ERR_FORMAT, "npy: expected a dimension at offset %lu", (unsigned long)(c->base + c->i));
                if (*rank >= 2) return irmae__fail(IRMAE_ERR_UNSUPPORTED, "npy: more than 2 dimensions; arrays of codes are 1-D or 2-D");
                shape[(*rank)++] = v;
                irmae__npy_ws(c);
                if (c->i < c->n && c->h[c->i] == ',') { c->i++; continue; }
                if ((rc = irmae__npy_expect(c, ')', "the end of the shape"))) return rc;
                break;
            }
        }
        irmae__npy_ws(c);
        if (c->i < c->n && c->h[c->i] == ',') { c->i++; continue; }
        if ((rc = irmae__npy_expect(c, '}', "the end of the header dict"))) return rc;
        break;
    }
    if (!seen[0] || !seen[1] || !seen[2])
        return irmae__fail(IRMAE_ERR_FORMAT, "npy: the header lacks '%s'", !seen[0] ? "descr" : !seen[1] ? "fortran_order" : "shape");
    while (c->i < c->n && (c->h[c->i] == ' ' || c->h[c->i] == '\t')) c->i++;
    if (c->i + 1 != c->n || c->h[c->i] != '\n')
        return irmae__fail(IRMAE_ERR_FORMAT, "npy: the header does not end with spaces and '\\n' (offset %lu)", (unsigned long)(c->base + c->i));
    return IRMAE_OK;
}

IRMAEDEF int irmae_npy_parse(float **out, int *rows, int *cols, const void *data, size_t size)
{
    const unsigned char *p = (const unsigned char *)data;
    irmae__npy_cur c;
    size_t hlen, pre, shape[2] = { 0, 0 }, count, i;
    int rank = 0, rc;
    float *v;
    if (out) *out = NULL;
    if (rows) *rows = 0;
    if (cols) *cols = 0;
    if (!out || !rows || !cols || (!data && size)) return irmae__fail(IRMAE_ERR_ARG, "npy_parse: NULL pointer");
    if (size < 6 || memcmp(p, "\x93NUMPY", 6) != 0) {
        if (size < 6 && (size == 0 || memcmp(p, "\x93NUMPY", size) == 0))
            return irmae__fail(IRMAE_ERR_TRUNCATED, "npy: %lu bytes, the magic needs 6", (unsigned long)size);
        return irmae__fail(IRMAE_ERR_FORMAT, "npy: bad magic at offset 0 (not a .npy file)");
    }
    if (size < 8) return irmae__fail(IRMAE_ERR_TRUNCATED, "npy: %lu bytes, the version ends at 8", (unsigned long)size);
    if (p[6] < 1 || p[6] > 3 || p[7] != 0)
        return irmae__fail(IRMAE_ERR_UNSUPPORTED, "npy: format version %d.%d at offset 6 (1.0, 2.0 and 3.0 are read)", p[6], p[7]);
    pre = p[6] == 1 ? 10 : 12;
    if (size < pre) return irmae__fail(IRMAE_ERR_TRUNCATED, "npy: %lu bytes, the header length ends at %lu", (unsigned long)size, (unsigned long)pre);
    hlen = p[6] == 1 ? (size_t)p[8] | ((size_t)p[9] << 8) : (size_t)irmae__cd_le32(p + 8);
    if (hlen > size - pre)
        return irmae__fail(IRMAE_ERR_TRUNCATED, "npy: header of %lu bytes at offset %lu, %lu bytes left",
                           (unsigned long)hlen, (unsigned long)pre, (unsigned long)(size - pre));
    c.h = (const char *)p + pre; c.n = hlen; c.i = 0; c.base = pre;
    if ((rc = irmae__npy_header(&c, &rank, shape))) return rc;
    if (rank == 0) return irmae__fail(IRMAE_ERR_UNSUPPORTED, "npy: a 0-d array (a scalar); codes are 1-D or 2-D");
    if (rank == 1) shape[1] = 1;
    if (shape[0] == 0 || shape[1] == 0)
        return irmae__fail(IRMAE_ERR_UNSUPPORTED, "npy: an empty array (%lu x %lu)", (unsigned long)shape[0], (unsigned long)shape[1]);
    if (!irmae__mul(&count, shape[0], shape[1]) || count > (size_t)IRMAE_MAX_ALLOC / 4)
        return irmae__fail(IRMAE_ERR_LIMIT, "npy: %lu x %lu floats exceed IRMAE_MAX_ALLOC", (unsigned long)shape[0], (unsigned long)shape[1]);
    if (size - pre - hlen < count * 4)
        return irmae__fail(IRMAE_ERR_TRUNCATED, "npy: %lu x %lu floats need %lu bytes at offset %lu, %lu are there",
                           (unsigned long)shape[0], (unsigned long)shape[1], (unsigned long)(count * 4),
                           (unsigned long)(pre + hlen), (unsigned long)(size - pre - hlen));
    if (size - pre - hlen > count * 4)
        return irmae__fail(IRMAE_ERR_FORMAT, "npy: %lu bytes after the data (offset %lu)",
                           (unsigned long)(size - pre - hlen - count * 4), (unsigned long)(pre + hlen + count * 4));
    v = (float *)irmae__alloc(count, sizeof(float));
    if (!v) return irmae__fail(IRMAE_ERR_NOMEM, "npy: %lu floats", (unsigned long)count);
    for (i = 0; i < count; i++) v[i] = irmae__ck_bitsf(irmae__cd_le32(p + pre + hlen + 4 * i));
    *out = v; *rows = (int)shape[0]; *cols = (int)shape[1];
    return IRMAE_OK;
}

IRMAEDEF int irmae_npy_load(float **out, int *rows, int *cols, const char *path)
{
    unsigned char *buf;
    size_t size;
    int rc;
    if (out) *out = NULL;
    if (rows) *rows = 0;
    if (cols) *cols = 0;
    if (!out || !rows || !cols || !path) return irmae__fail(IRMAE_ERR_ARG, "npy_load: NULL pointer");
    if ((rc = irmae__cd_read_file(path, &buf, &size))) return rc;
    rc = irmae_npy_parse(out, rows, cols, buf, size);
    irmae__free(buf);
    return rc ? irmae__cd_tag_path(rc, path) : IRMAE_OK;
}

#endif /* IRMAE_NO_CHECKPOINTS */
#endif /* IRMAE_IMPLEMENTATION_DONE */
#endif /* IRMAE_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
MIT License

Copyright (c) 2026 the irmae.h authors

Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
*/
