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
IRMAEDEF int irmae_simd_level(void);
IRMAEDEF const char *irmae_simd_name(int level);

#include "parts/conv_decl.h"
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

#include "parts/pngw_decl.h"
#include "parts/codec_decl.h"
#include "parts/analysis_decl.h"

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

IRMAEDEF void irmae_sgemm(int trans_a, int trans_b, int m, int n, int k,
                          float alpha, const float *a, int lda,
                          const float *b, int ldb,
                          float beta, float *c, int ldc)
{
    irmae_sgemm_ref(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

#include "parts/conv_impl.h"
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

#include "parts/pngw_impl.h"
#include "parts/codec_impl.h"
#include "parts/analysis_impl.h"

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
