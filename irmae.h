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

   Quick start (see examples/shapes.c for the whole program):

       irmae_rng rng = irmae_rng_seed(1);
       irmae_dataset train;
       irmae_shapes_make(&train, 50000, &rng);          // synthetic, 7 factors
       irmae_config cfg = irmae_preset(IRMAE_PRESET_SHAPES);
       cfg.l = 2;                                       // the extra linear maps
       irmae_model m;
       if (irmae_model_init(&m, &cfg, &rng)) { puts(irmae_error_detail()); }
       for (int i = 0; i + 32 <= train.n; i += 32)
           irmae_model_train_step(&m, irmae_dataset_image(&train, i), 32, NULL);
       irmae_model_free(&m); irmae_dataset_free(&train);

   Build:  cc -O2 -fopenmp prog.c -lm     (the same without -fopenmp works)

   Configuration macros (define before including):
       IRMAE_STATIC            make every function static to this translation unit
       IRMAEDEF                override the storage class of the public functions
       IRMAE_MALLOC(sz) / IRMAE_FREE(p)   allocator (define both or neither)
       IRMAE_ASSERT(x)         assertion for programmer errors (default: assert)
       IRMAE_NO_SIMD           use only the portable scalar kernels
       IRMAE_MAX_LAYERS        layers per encoder/decoder list (default 32)

   Version 0.1.0. MIT licence at the end of this file.
*/
#ifndef IRMAE_H
#define IRMAE_H

#include <stddef.h>
#include <stdint.h>

#define IRMAE_VERSION_MAJOR 0
#define IRMAE_VERSION_MINOR 1
#define IRMAE_VERSION_PATCH 0

#ifndef IRMAEDEF
#ifdef IRMAE_STATIC
#define IRMAEDEF static
#else
#define IRMAEDEF extern
#endif
#endif

#ifndef IRMAE_MAX_LAYERS
#define IRMAE_MAX_LAYERS 32
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================== */
/* Errors                                                                   */
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
/* Random numbers                                                           */
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
/* Checksums                                                                */
/* ======================================================================== */

/* CRC-32 (ISO-HDLC, as PNG/gzip). Start with crc = 0; chain calls. */
IRMAEDEF uint32_t irmae_crc32(uint32_t crc, const void *data, size_t len);
/* Adler-32 (zlib). Start with adler = 1; chain calls. */
IRMAEDEF uint32_t irmae_adler32(uint32_t adler, const void *data, size_t len);

/* ======================================================================== */
/* Kernels: GEMM                                                            */
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

#include "parts/conv_decl.h"
#include "parts/model_decl.h"
/* ======================================================================== */
/* Data sets                                                                */
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

/* The synthetic shapes data set (DESIGN.md): 3 x 32 x 32, black background,
   one filled shape per image with hard edges. Seven factors: colour (r, g, b)
   uniform in [0,1], anchor x, y uniform integers in [8, 24], size uniform
   integer in [3, 8], kind circle (radius = size, centred on the anchor) or
   square (side = size, top-left corner on the anchor; clipped at the border).
   Pixels in [0,1]. labels[i] = kind (0 circle, 1 square). */
typedef struct irmae_shape { float r, g, b; int x, y, size, kind; } irmae_shape;
enum { IRMAE_SHAPE_CIRCLE = 0, IRMAE_SHAPE_SQUARE = 1 };
IRMAEDEF irmae_shape irmae_shape_random(irmae_rng *rng);
/* Draws s into img (3 x h x w floats, cleared first). */
IRMAEDEF void irmae_shape_draw(float *img, int h, int w, const irmae_shape *s);
/* count images drawn from rng; factors (count entries, may be NULL) gets each image's factors. */
IRMAEDEF int irmae_shapes_make(irmae_dataset *ds, int count, irmae_rng *rng, irmae_shape *factors);
/* Maps every value v of the data set to lo + v (hi - lo), e.g. [0,1] -> [-1,1]. */
IRMAEDEF int irmae_dataset_rescale(irmae_dataset *ds, float lo, float hi);

#include "parts/pngw_decl.h"
#include "parts/codec_decl.h"
#include "parts/analysis_decl.h"
#include "parts/tail_decl.h"

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
#include <string.h>
#include <stdarg.h>
#include <math.h>
#include <float.h>
#include <limits.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* ---------------------------------------------------------------------- */
/* Config and portability                                                 */
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
#define IRMAE__PRAGMA(x) _Pragma(#x)
#define IRMAE__OMP(x) IRMAE__PRAGMA(omp x)
static int irmae__nthreads(void) { return omp_get_max_threads(); }
static int irmae__thread_id(void) { return omp_get_thread_num(); }
#else
#define IRMAE__OMP(x)
static int irmae__nthreads(void) { return 1; }
static int irmae__thread_id(void) { return 0; }
#endif

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
/* Errors                                                                 */
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
/* Random numbers                                                         */
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
/* Checksums                                                              */
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
/* Kernels: GEMM                                                          */
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

/* The fast GEMM (after Goto / BLIS): C is cut into NC-column blocks; for
   each KC-deep slice, the slice of op(B) is packed into NR-column micro-panels
   and the slice of op(A) into MR-row micro-panels (zero-padded), and a
   register-blocked micro-kernel computes each MR x NR tile of C from one
   A micro-panel and one B micro-panel. The tiles of one slice are split
   among threads so that each thread owns whole tiles, and slices run in order:
   every element of C sees the same additions in the same order whatever the
   number of threads, so results are bit-identical for any thread count.
   Packing buffers are allocated once per calling thread (irmae_sgemm_release
   frees them). */

#define IRMAE__KC 256           /* depth of a slice: B micro-panel stays in L1 */
#define IRMAE__MC 480           /* rows of A packed at once: ~480 KB, in L2 */
#define IRMAE__NC 3072          /* columns of B packed at once: 3 MB, in L3 */
#define IRMAE__MR_MAX 16
#define IRMAE__NR_MAX 32

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

#if !defined(IRMAE_NO_SIMD) && (defined(__GNUC__) || defined(__clang__)) && \
    (defined(__x86_64__) || defined(__i386__))
#define IRMAE__X86 1
#include <immintrin.h>

/* AVX2 + FMA micro-kernel, 6 x 16: 12 ymm accumulators. */
__attribute__((target("avx2,fma")))
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

/* AVX-512 micro-kernel, 12 x 32: 24 zmm accumulators. */
__attribute__((target("avx512f")))
static void irmae__ukernel_avx512(int kc, const float *pa, const float *pb,
                                  float *c, int ldc, float alpha, float beta)
{
    __m512 acc[24];
    __m512 vb0, vb1, va, valpha, vbeta;
    int p, i;
    for (i = 0; i < 24; i++) acc[i] = _mm512_setzero_ps();
    for (p = 0; p < kc; p++, pa += 12, pb += 32) {
        vb0 = _mm512_loadu_ps(pb);
        vb1 = _mm512_loadu_ps(pb + 16);
        for (i = 0; i < 12; i++) { /* fully unrolled by the compiler */
            va = _mm512_set1_ps(pa[i]);
            acc[2 * i] = _mm512_fmadd_ps(va, vb0, acc[2 * i]);
            acc[2 * i + 1] = _mm512_fmadd_ps(va, vb1, acc[2 * i + 1]);
        }
    }
    valpha = _mm512_set1_ps(alpha);
    vbeta = _mm512_set1_ps(beta);
    for (i = 0; i < 12; i++) {
        float *row = c + (size_t)i * ldc;
        __m512 r0 = _mm512_mul_ps(valpha, acc[2 * i]), r1 = _mm512_mul_ps(valpha, acc[2 * i + 1]);
        if (beta != 0.0f) {
            r0 = _mm512_fmadd_ps(vbeta, _mm512_loadu_ps(row), r0);
            r1 = _mm512_fmadd_ps(vbeta, _mm512_loadu_ps(row + 16), r1);
        }
        _mm512_storeu_ps(row, r0);
        _mm512_storeu_ps(row + 16, r1);
    }
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
    if (__builtin_cpu_supports("avx512f")) return IRMAE_SIMD_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return IRMAE_SIMD_AVX2;
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
    if (p.level == IRMAE_SIMD_AVX512) { p.mr = 12; p.nr = 32; p.kernel = irmae__ukernel_avx512; }
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

/* pack rows [i0, i0+mc) x depth [p0, p0+kc) of op(A) into MR-row micro-panels:
   panel[p * mr + i] = op(A)[i0 + i][p0 + p]; loops read memory contiguously */
static void irmae__pack_a(float *dst, const float *a, int lda, int ta, int i0, int mc,
                          int p0, int kc, int mr)
{
    int panels = (mc + mr - 1) / mr, ip;
    IRMAE__OMP(for schedule(static))
    for (ip = 0; ip < panels; ip++) {
        float *d = dst + (size_t)ip * mr * kc;
        int rows = mc - ip * mr < mr ? mc - ip * mr : mr, i, p;
        if (ta) { /* op(A)[i][p] = a[p][i]: rows of a are contiguous in i */
            for (p = 0; p < kc; p++) {
                const float *src = a + (size_t)(p0 + p) * lda + i0 + ip * mr;
                for (i = 0; i < rows; i++) d[(size_t)p * mr + i] = src[i];
                for (; i < mr; i++) d[(size_t)p * mr + i] = 0.0f;
            }
        } else { /* a transpose, done in blocks of 16 depths to stay in L1 */
            int pb, q;
            for (pb = 0; pb < kc; pb += 16) {
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
   panel[p * nr + j] = op(B)[p0 + p][j0 + j] */
static void irmae__pack_b(float *dst, const float *b, int ldb, int tb, int p0, int kc,
                          int j0, int nc, int nr)
{
    int panels = (nc + nr - 1) / nr, jp;
    IRMAE__OMP(for schedule(static))
    for (jp = 0; jp < panels; jp++) {
        float *d = dst + (size_t)jp * nr * kc;
        int cols = nc - jp * nr < nr ? nc - jp * nr : nr, j, p;
        if (!tb) {
            for (p = 0; p < kc; p++) {
                memcpy(d + (size_t)p * nr, b + (size_t)(p0 + p) * ldb + j0 + jp * nr, (size_t)cols * sizeof(float));
                for (j = cols; j < nr; j++) d[(size_t)p * nr + j] = 0.0f;
            }
        } else { /* op(B)[p][j] = b[j][p]: a transpose, in blocks of 16 depths */
            int pb, q;
            for (pb = 0; pb < kc; pb += 16) {
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
static void irmae__sgemm_small(int ta, int tb, int m, int n, int k, float alpha,
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

IRMAEDEF void irmae_sgemm(int trans_a, int trans_b, int m, int n, int k,
                          float alpha, const float *a, int lda,
                          const float *b, int ldb,
                          float beta, float *c, int ldc)
{
    irmae__gemm_path path;
    float *pa_all, *pb;
    int jc, pc, ic, nthreads;
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == 0.0f) { /* C = beta * C */
        irmae__sgemm_small(0, 0, m, n, 0, 0.0f, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    if ((double)m * n * k <= 32768.0) {
        irmae__sgemm_small(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    nthreads = irmae__nthreads();
    if (!irmae__gemm_buf) {
        irmae__gemm_buf = (float *)irmae__alloc((size_t)IRMAE__KC * (IRMAE__NC + IRMAE__NR_MAX) +
                                                (size_t)IRMAE__KC * (IRMAE__MC + IRMAE__MR_MAX), sizeof(float));
        if (!irmae__gemm_buf) { /* no memory: still give the right answer */
            irmae__sgemm_small(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
            return;
        }
    }
    pb = irmae__gemm_buf;
    pa_all = irmae__gemm_buf + (size_t)IRMAE__KC * (IRMAE__NC + IRMAE__NR_MAX);
    path = irmae__gemm_select();
    (void)nthreads;
    for (jc = 0; jc < n; jc += IRMAE__NC) {
        int nc = n - jc < IRMAE__NC ? n - jc : IRMAE__NC;
        for (pc = 0; pc < k; pc += IRMAE__KC) {
            int kc = k - pc < IRMAE__KC ? k - pc : IRMAE__KC;
            float beta_eff = pc == 0 ? beta : 1.0f;
            for (ic = 0; ic < m; ic += IRMAE__MC) {
                int mc = m - ic < IRMAE__MC ? m - ic : IRMAE__MC;
                int mpanels = (mc + path.mr - 1) / path.mr, npanels = (nc + path.nr - 1) / path.nr;
                int tiles = mpanels * npanels, t;
                int par = (double)mc * nc * kc >= 262144.0; /* worth waking threads */
                (void)par;
                IRMAE__OMP(parallel if(par))
                {
                    if (ic == 0) irmae__pack_b(pb, b, ldb, trans_b, pc, kc, jc, nc, path.nr);
                    irmae__pack_a(pa_all, a, lda, trans_a, ic, mc, pc, kc, path.mr);
                    /* tile order: column panel outer, so each B micro-panel stays in L1 */
                    IRMAE__OMP(for schedule(static))
                    for (t = 0; t < tiles; t++) {
                        int jp = t / mpanels, ip = t % mpanels;
                        int i0 = ic + ip * path.mr, j0 = jc + jp * path.nr;
                        int rows = m - i0 < path.mr ? m - i0 : path.mr;
                        int cols = n - j0 < path.nr ? n - j0 : path.nr;
                        const float *pa = pa_all + (size_t)ip * path.mr * kc;
                        const float *pbj = pb + (size_t)jp * path.nr * kc;
                        float *cij = c + (size_t)i0 * ldc + j0;
                        if (rows == path.mr && cols == path.nr) {
                            path.kernel(kc, pa, pbj, cij, ldc, alpha, beta_eff);
                        } else { /* edge tile: compute into a scratch tile, copy the valid part */
                            float tmp[IRMAE__MR_MAX * IRMAE__NR_MAX];
                            int i, j;
                            path.kernel(kc, pa, pbj, tmp, path.nr, alpha, 0.0f);
                            for (i = 0; i < rows; i++)
                                for (j = 0; j < cols; j++)
                                    cij[(size_t)i * ldc + j] = tmp[i * path.nr + j] +
                                        (beta_eff == 0.0f ? 0.0f : beta_eff * cij[(size_t)i * ldc + j]);
                        }
                    }
                }
            }
        }
    }
}

#include "parts/conv_impl.h"
#include "parts/model_impl.h"
/* ---------------------------------------------------------------------- */
/* Data sets                                                              */
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

IRMAEDEF void irmae_shape_draw(float *img, int h, int w, const irmae_shape *s)
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

IRMAEDEF int irmae_shapes_make(irmae_dataset *ds, int count, irmae_rng *rng, irmae_shape *factors)
{
    int i, rc;
    if (!ds || !rng) return irmae__fail(IRMAE_ERR_ARG, "shapes_make: NULL pointer");
    if ((rc = irmae_dataset_alloc(ds, count, 3, 32, 32, 1))) return rc;
    for (i = 0; i < count; i++) {
        irmae_shape s = irmae_shape_random(rng);
        irmae_shape_draw(irmae_dataset_image(ds, i), 32, 32, &s);
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

#include "parts/pngw_impl.h"
#include "parts/codec_impl.h"
#include "parts/analysis_impl.h"
#include "parts/tail_impl.h"

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
