/* ======================================================================== */
/* Kernels: convolution                                                     */
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
   default 8 Mi floats = 32 MB), or one image's worth when a single image
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

