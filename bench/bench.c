/* bench/bench.c - benchmarks for irmae.h: measured FMA peak, irmae_sgemm on
   square sizes and on every GEMM shape of one training step, training
   throughput (img/s, MFU) and the memory high-water mark of a training run.

   Build (from the repository root):
       cc -O2 -fopenmp bench/bench.c -o build/bench -lm
       cc -O2 -fopenmp -DIRMAE_BENCH_OPENBLAS bench/bench.c -o build/bench_openblas -lopenblas -lm
   Run:
       OMP_PROC_BIND=true build/bench [peak] [list] [squares] [gemm] [paths] [train] [mem]
   No argument: peak gemm paths train mem. paths = every SIMD path side by side; list = the GEMM shapes of a training
   step without timing; squares = the square sizes only; gemm = squares and
   every shape of the list.
   Environment:
       IRMAE_BENCH_SECONDS   training time per configuration, seconds (default 3)
       IRMAE_BENCH_REPS      repetitions per GEMM measurement, median taken (default 5)
       IRMAE_BENCH_MIN_TIME  minimum duration of one GEMM repetition, seconds (default 0.1)
       IRMAE_BENCH_THREADS   thread counts, comma separated (default "1,2")
       IRMAE_SIMD            scalar|avx2|avx512|neon: restrict irmae's kernels (see irmae.h)

   The benchmark calls only the public API (the memory estimate reads the
   private IRMAE__KC/NC/MC macros when they exist, to size the GEMM packing
   buffer; nothing else of the internals). The GEMM shapes of a training
   step are derived from the model's resolved layer list (m.layers) with the
   lowering that irmae.h's convolution and model sections use: im2col/col2im
   convolutions with one GEMM per chunk of images (chunk size recovered from
   irmae_conv_workspace), 1x1 stride-1 convolutions with >= 64 positions as
   one GEMM per image, linear layers and the l maps as plain GEMMs. If the
   lowering changes, update collect_conv() / collect_linear() / collect_maps().
   The sum of the listed GEMM FLOPs is printed next to the analytic count so a
   mismatch shows. */
#if !defined(_GNU_SOURCE)
#define _GNU_SOURCE
#endif
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>

#if defined(__linux__)
#include <unistd.h>
#include <sys/types.h>
#include <sys/wait.h>
#define BENCH_LINUX 1
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef IRMAE_BENCH_OPENBLAS
#include <cblas.h>
#if defined(BENCH_LINUX)
#include <sched.h>
#include <dirent.h>
#define BENCH_AFFINITY 1
#endif
#endif

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define BENCH_X86 1
#elif defined(__aarch64__)
#include <arm_neon.h>
#define BENCH_NEON 1
#endif

/* ------------------------------------------------------------------------ */
/* settings, timing, small helpers                                           */
/* ------------------------------------------------------------------------ */

#define MAX_THREADS_LIST 8
static int g_threads[MAX_THREADS_LIST], g_nthreads = 0;
static int g_reps = 5;
static double g_min_time = 0.1;
static double g_train_seconds = 3.0;
static double g_peak[MAX_THREADS_LIST][4]; /* GFLOP/s [entry of g_threads][IRMAE_SIMD_*], 0 = not measured */

static double now(void)
{
#ifdef _OPENMP
    return omp_get_wtime();
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#endif
}

static void set_threads(int t)
{
#ifdef _OPENMP
    omp_set_num_threads(t);
#endif
#ifdef IRMAE_BENCH_OPENBLAS
    openblas_set_num_threads(t);
#endif
    (void)t;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void sleep_ms(int ms)
{
#ifdef BENCH_LINUX
    usleep((useconds_t)ms * 1000u);
#else
    double t0 = now();
    while (now() - t0 < 1e-3 * ms) { }
#endif
}

static double env_double(const char *name, double def)
{
    const char *e = getenv(name);
    char *end;
    double v;
    if (!e || !*e) return def;
    v = strtod(e, &end);
    return end != e && v > 0.0 ? v : def;
}

/* "load=1.00 0.95 0.90" from /proc/loadavg (the machine may be shared) */
static void print_load(const char *when)
{
#ifdef BENCH_LINUX
    FILE *f = fopen("/proc/loadavg", "r");
    double a = 0, b = 0, c = 0;
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
            printf("# load average %s: %.2f %.2f %.2f (1/5/15 min)\n", when, a, b, c);
        fclose(f);
    }
#else
    (void)when;
#endif
}

/* "cpu: AMD EPYC (family 26 model 2), avx512f avx2 fma" from /proc/cpuinfo
   and the compiler's CPU checks */
static void print_cpu(void)
{
    char name[128] = "unknown", line[512];
    int fam = -1, model = -1;
#ifdef BENCH_LINUX
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        while (fgets(line, sizeof line, f)) {
            char *v = strchr(line, ':');
            if (!v) continue;
            v++;
            while (*v == ' ' || *v == '\t') v++;
            v[strcspn(v, "\n")] = 0;
            if (!strncmp(line, "model name", 10) && !strcmp(name, "unknown")) sprintf(name, "%.127s", v);
            else if (!strncmp(line, "cpu family", 10) && fam < 0) fam = atoi(v);
            else if (!strncmp(line, "model\t", 6) && model < 0) model = atoi(v);
            else if (!strncmp(line, "processor", 9) && fam >= 0) break;
        }
        fclose(f);
    }
#else
    (void)line;
#endif
    printf("cpu: %s", name);
    if (fam >= 0) printf(" (family %d model %d)", fam, model);
#if defined(BENCH_X86)
    printf(",%s%s%s%s", __builtin_cpu_supports("avx512f") ? " avx512f" : "",
           __builtin_cpu_supports("avx512bw") ? " avx512bw" : "", __builtin_cpu_supports("avx2") ? " avx2" : "",
           __builtin_cpu_supports("fma") ? " fma" : "");
#endif
    printf("; irmae path: %s\n", irmae_simd_name(irmae_simd_level()));
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench: %s failed: %s (%s)\n", what, irmae_error_string(rc), irmae_error_detail());
    exit(1);
}

static void *xalloc(size_t count, size_t size)
{
    void *p = calloc(count ? count : 1, size);
    if (!p) { fprintf(stderr, "bench: out of memory\n"); exit(1); }
    return p;
}

static int thread_index(int t)
{
    int i;
    for (i = 0; i < g_nthreads; i++)
        if (g_threads[i] == t) return i;
    return -1;
}

/* ------------------------------------------------------------------------ */
/* FMA peak: register-only multiply-add chains, one per thread               */
/* ------------------------------------------------------------------------ */

/* Each function runs `iters` iterations of a fixed number of independent
   FMA chains (enough to cover latency x throughput on current cores) and
   returns a value derived from the accumulators so nothing is optimised
   away. x -> x * m + c with m just below 1 converges to c / (1 - m) = 1: no
   overflow, no denormals. */
#define PEAK_CHAINS 12

static float peak_scalar(long iters, int *flops_per_iter)
{
    float a[PEAK_CHAINS], s = 0.0f;
    const float m = 0.999999f, c = 1e-6f;
    long it;
    int j;
    for (j = 0; j < PEAK_CHAINS; j++) a[j] = 1.0f + 0.001f * (float)j;
    for (it = 0; it < iters; it++)
        for (j = 0; j < PEAK_CHAINS; j++) a[j] = a[j] * m + c;
    for (j = 0; j < PEAK_CHAINS; j++) s += a[j];
    *flops_per_iter = 2 * PEAK_CHAINS;
    return s;
}

#if defined(BENCH_X86)
__attribute__((target("avx2,fma")))
static float peak_avx2(long iters, int *flops_per_iter)
{
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
    __m256 a0 = _mm256_set1_ps(1.00f), a1 = _mm256_set1_ps(1.01f), a2 = _mm256_set1_ps(1.02f),
           a3 = _mm256_set1_ps(1.03f), a4 = _mm256_set1_ps(1.04f), a5 = _mm256_set1_ps(1.05f),
           a6 = _mm256_set1_ps(1.06f), a7 = _mm256_set1_ps(1.07f), a8 = _mm256_set1_ps(1.08f),
           a9 = _mm256_set1_ps(1.09f), a10 = _mm256_set1_ps(1.10f), a11 = _mm256_set1_ps(1.11f);
    float out[8];
    long it;
    for (it = 0; it < iters; it++) {
        a0 = _mm256_fmadd_ps(a0, m, c); a1 = _mm256_fmadd_ps(a1, m, c);
        a2 = _mm256_fmadd_ps(a2, m, c); a3 = _mm256_fmadd_ps(a3, m, c);
        a4 = _mm256_fmadd_ps(a4, m, c); a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c); a7 = _mm256_fmadd_ps(a7, m, c);
        a8 = _mm256_fmadd_ps(a8, m, c); a9 = _mm256_fmadd_ps(a9, m, c);
        a10 = _mm256_fmadd_ps(a10, m, c); a11 = _mm256_fmadd_ps(a11, m, c);
    }
    a0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                       _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    a0 = _mm256_add_ps(a0, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    _mm256_storeu_ps(out, a0);
    *flops_per_iter = 12 * 8 * 2;
    return out[0] + out[7];
}

/* 16 chains in named variables (an array is not unrolled at -O2 and then
   lives on the stack: that measured 49 GFLOP/s on a Zen 5 whose real peak
   is about 226); 16 >= latency 4 x 2 pipes with room to spare */
__attribute__((target("avx512f")))
static float peak_avx512(long iters, int *flops_per_iter)
{
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-6f);
    __m512 a0 = _mm512_set1_ps(1.00f), a1 = _mm512_set1_ps(1.01f), a2 = _mm512_set1_ps(1.02f),
           a3 = _mm512_set1_ps(1.03f), a4 = _mm512_set1_ps(1.04f), a5 = _mm512_set1_ps(1.05f),
           a6 = _mm512_set1_ps(1.06f), a7 = _mm512_set1_ps(1.07f), a8 = _mm512_set1_ps(1.08f),
           a9 = _mm512_set1_ps(1.09f), a10 = _mm512_set1_ps(1.10f), a11 = _mm512_set1_ps(1.11f),
           a12 = _mm512_set1_ps(1.12f), a13 = _mm512_set1_ps(1.13f), a14 = _mm512_set1_ps(1.14f),
           a15 = _mm512_set1_ps(1.15f);
    float out[16];
    long it;
    for (it = 0; it < iters; it++) {
        a0 = _mm512_fmadd_ps(a0, m, c); a1 = _mm512_fmadd_ps(a1, m, c);
        a2 = _mm512_fmadd_ps(a2, m, c); a3 = _mm512_fmadd_ps(a3, m, c);
        a4 = _mm512_fmadd_ps(a4, m, c); a5 = _mm512_fmadd_ps(a5, m, c);
        a6 = _mm512_fmadd_ps(a6, m, c); a7 = _mm512_fmadd_ps(a7, m, c);
        a8 = _mm512_fmadd_ps(a8, m, c); a9 = _mm512_fmadd_ps(a9, m, c);
        a10 = _mm512_fmadd_ps(a10, m, c); a11 = _mm512_fmadd_ps(a11, m, c);
        a12 = _mm512_fmadd_ps(a12, m, c); a13 = _mm512_fmadd_ps(a13, m, c);
        a14 = _mm512_fmadd_ps(a14, m, c); a15 = _mm512_fmadd_ps(a15, m, c);
    }
    a0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                       _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    a8 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)),
                       _mm512_add_ps(_mm512_add_ps(a12, a13), _mm512_add_ps(a14, a15)));
    _mm512_storeu_ps(out, _mm512_add_ps(a0, a8));
    *flops_per_iter = 16 * 16 * 2;
    return out[0] + out[15];
}
#endif

#if defined(BENCH_NEON)
static float peak_neon(long iters, int *flops_per_iter)
{
    float32x4_t a[16];
    const float32x4_t m = vdupq_n_f32(0.999999f), c = vdupq_n_f32(1e-6f);
    long it;
    int j;
    for (j = 0; j < 16; j++) a[j] = vdupq_n_f32(1.0f + 0.01f * (float)j);
    for (it = 0; it < iters; it++)
        for (j = 0; j < 16; j++) a[j] = vfmaq_f32(c, a[j], m);
    for (j = 1; j < 16; j++) a[0] = vaddq_f32(a[0], a[j]);
    *flops_per_iter = 16 * 4 * 2;
    return vgetq_lane_f32(a[0], 0);
}
#endif

typedef float (*peak_fn)(long, int *);
static volatile float g_sink;

/* GFLOP/s of `nt` threads each running fn for iters iterations (wall time). */
static double peak_once(peak_fn fn, int nt, long iters)
{
    double t0, t1;
    int fpi = 0;
    float s = 0.0f;
    set_threads(nt);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) reduction(+ : s)
    {
        int f;
#pragma omp barrier
#pragma omp master
        t0 = now();
#pragma omp barrier
        s += fn(iters, &f);
#pragma omp master
        fpi = f;
    }
    t1 = now();
#else
    t0 = now();
    s = fn(iters, &fpi);
    t1 = now();
#endif
    g_sink = s;
    return (double)nt * (double)iters * (double)fpi / (t1 - t0) * 1e-9;
}

/* best of max(g_reps, 10) runs of >= g_min_time each: other processes can
   only slow the loop down, so on a shared machine the maximum is the best
   estimate of what the cores can do */
static double peak_measure(peak_fn fn, int nt)
{
    long iters = 1000;
    double v[64], t0;
    int r, reps = g_reps < 10 ? 10 : g_reps < 64 ? g_reps : 63;
    for (;;) { /* calibrate on one thread */
        t0 = now();
        peak_once(fn, 1, iters);
        if (now() - t0 >= g_min_time) break;
        iters *= 2;
    }
    for (r = 0; r < reps; r++) v[r] = peak_once(fn, nt, iters);
    qsort(v, (size_t)reps, sizeof *v, cmp_double);
    return v[reps - 1];
}

/* the FMA loop of a path, NULL if this build has none */
static peak_fn peak_fn_of(int level)
{
    switch (level) {
    case IRMAE_SIMD_SCALAR: return peak_scalar;
#if defined(BENCH_X86)
    case IRMAE_SIMD_AVX2: return peak_avx2;
    case IRMAE_SIMD_AVX512: return peak_avx512;
#elif defined(BENCH_NEON)
    case IRMAE_SIMD_NEON: return peak_neon;
#endif
    default: return NULL;
    }
}

/* 1 if irmae.h can run path `level` on this CPU (the current choice is kept) */
static int path_available(int level)
{
    int cur = irmae_simd_level(), ok = irmae_simd_force(level) == level;
    irmae_simd_force(cur);
    return ok;
}

/* the FMA peak of path `level` on t threads (measured once) */
static double peak_of(int t, int level)
{
    int i = thread_index(t);
    peak_fn fn = peak_fn_of(level);
    if (i < 0 || level < 0 || level > 3 || !fn) return 0.0;
    if (g_peak[i][level] <= 0.0) g_peak[i][level] = peak_measure(fn, t);
    return g_peak[i][level];
}

/* peak of the path irmae_sgemm uses now: ratios and MFU are against it */
static double peak_for(int t) { return peak_of(t, irmae_simd_level()); }

static void section_peak(void)
{
    int i, level;
    printf("\n# FMA peak: register-only FMA chains per thread (enough independent chains for latency x pipes), "
           "best of %d runs of >= %.2f s, for every path this CPU has\n", g_reps < 10 ? 10 : g_reps, g_min_time);
    for (i = 0; i < g_nthreads; i++) {
        int t = g_threads[i];
        for (level = 0; level < 4; level++)
            if (peak_fn_of(level) && path_available(level))
                printf("peak-isa threads=%d isa=%s gflops=%.1f\n", t, irmae_simd_name(level), peak_of(t, level));
        printf("peak threads=%d path=%s gflops=%.1f\n", t, irmae_simd_name(irmae_simd_level()), peak_for(t));
    }
    fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* GEMM shapes of a training step                                            */
/* ------------------------------------------------------------------------ */

typedef struct bshape {
    int ta, tb, m, n, k, beta1; /* beta1: C is accumulated (beta = 1), else beta = 0 */
    int calls;                  /* calls per training step */
    char where[192];            /* where it is used (layers, " + " separated) */
} bshape;

#define MAX_SHAPES 256
typedef struct shapelist {
    bshape s[MAX_SHAPES];
    int n;
    long long calls;            /* GEMM calls per step */
    double flops;               /* GEMM FLOPs per step */
} shapelist;

static void add_shape(shapelist *L, int ta, int tb, int m, int n, int k, int beta1, int count,
                      const char *where)
{
    int i;
    L->calls += count;
    L->flops += 2.0 * m * n * (double)k * count;
    for (i = 0; i < L->n; i++) {
        bshape *s = &L->s[i];
        if (s->ta == ta && s->tb == tb && s->m == m && s->n == n && s->k == k && s->beta1 == beta1) {
            size_t len = strlen(s->where);
            s->calls += count;
            if (!strstr(s->where, where) && len + 3 + strlen(where) < sizeof s->where)
                sprintf(s->where + len, " + %s", where);
            return;
        }
    }
    if (L->n == MAX_SHAPES) { fprintf(stderr, "bench: too many GEMM shapes\n"); exit(1); }
    {
        bshape *s = &L->s[L->n++];
        s->ta = ta; s->tb = tb; s->m = m; s->n = n; s->k = k; s->beta1 = beta1; s->calls = count;
        sprintf(s->where, "%.191s", where);
    }
}

/* the desc of a conv / convT layer of a model for batch B */
static int layer_desc(irmae_conv_desc *d, const irmae_layer *ly, int B)
{
    return ly->spec.type == IRMAE_LAYER_CONVT
        ? irmae_convt2d_desc(d, B, ly->in_c, ly->in_h, ly->in_w, ly->out_c, ly->spec.k, ly->spec.stride, ly->spec.pad)
        : irmae_conv2d_desc(d, B, ly->in_c, ly->in_h, ly->in_w, ly->out_c, ly->spec.k, ly->spec.stride, ly->spec.pad);
}

/* one conv/convT layer, pass 0 = forward, 1 = backward (din only if need_din);
   mirrors irmae_conv2d_* / irmae_convt2d_* in irmae.h */
static void collect_conv(shapelist *L, const irmae_layer *ly, int B, int pass, int need_din, const char *name)
{
    irmae_conv_desc d;
    int tr = ly->spec.type == IRMAE_LAYER_CONVT, rc, cx, cy, P, kc, chunk, n0;
    size_t ws, per;
    char where[80];
    rc = layer_desc(&d, ly, B);
    if (rc) die("conv desc", rc);
    /* image side X (im2col reads it), matrix side Y, Wc [cy, kc] */
    cx = tr ? d.out_c : d.in_c;
    cy = tr ? d.in_c : d.out_c;
    P = tr ? d.in_h * d.in_w : d.out_h * d.out_w;
    kc = cx * d.k * d.k;
    ws = irmae_conv_workspace(&d);
    if (ws == 0) { /* direct 1x1: one GEMM per image on the NCHW tensors */
        if (pass == 0) {
            sprintf(where, "%s fwd (1x1, per image)", name);
            if (!tr) add_shape(L, 0, 0, cy, P, cx, 0, B, where);
            else add_shape(L, 1, 0, cx, P, cy, 0, B, where);
        } else {
            sprintf(where, "%s bwd-w (1x1, per image)", name);
            add_shape(L, 0, 1, cy, cx, P, 1, B, where);
            if (need_din) {
                sprintf(where, "%s bwd-data (1x1, per image)", name);
                if (!tr) add_shape(L, 1, 0, cx, P, cy, 0, B, where);
                else add_shape(L, 0, 0, cy, P, cx, 0, B, where);
            }
        }
        return;
    }
    per = ((size_t)kc + (size_t)cy) * (size_t)P;
    chunk = (int)(ws / per);
    if (chunk < 1 || ws % per) {
        fprintf(stderr, "bench: %s: workspace %lu is not a multiple of (kc + cy) P = %lu; "
                "the conv lowering changed, update collect_conv()\n", name, (unsigned long)ws, (unsigned long)per);
        if (chunk < 1) chunk = 1;
    }
    for (n0 = 0; n0 < B; n0 += chunk) {
        int imgs = B - n0 < chunk ? B - n0 : chunk, np = imgs * P;
        if (pass == 0) {
            sprintf(where, "%s fwd (%d img/chunk)", name, imgs);
            if (!tr) add_shape(L, 0, 0, cy, np, kc, 0, 1, where);
            else add_shape(L, 1, 0, kc, np, cy, 0, 1, where);
        } else {
            sprintf(where, "%s bwd-w (%d img/chunk)", name, imgs);
            add_shape(L, 0, 1, cy, kc, np, 1, 1, where);
            if (need_din) {
                sprintf(where, "%s bwd-data (%d img/chunk)", name, imgs);
                if (!tr) add_shape(L, 1, 0, kc, np, cy, 0, 1, where);
                else add_shape(L, 0, 0, cy, np, kc, 0, 1, where);
            }
        }
    }
}

/* mirrors irmae_linear_forward / irmae_linear_backward */
static void collect_linear(shapelist *L, const irmae_layer *ly, int B, int pass, int need_din, const char *name)
{
    int in_f = ly->in_c * ly->in_h * ly->in_w, out_f = ly->out_c;
    char where[80];
    if (pass == 0) {
        sprintf(where, "%s fwd", name);
        add_shape(L, 0, 1, B, out_f, in_f, 0, 1, where);
    } else {
        if (need_din) {
            sprintf(where, "%s bwd-data", name);
            add_shape(L, 0, 0, B, in_f, out_f, 0, 1, where);
        }
        sprintf(where, "%s bwd-w", name);
        add_shape(L, 1, 0, out_f, in_f, B, 1, 1, where);
    }
}

/* mirrors the maps part of irmae_model_forward_backward */
static void collect_maps(shapelist *L, int l, int n, int B, int pass)
{
    char where[80];
    if (l <= 0) return;
    if (pass == 0) {
        sprintf(where, "maps x%d fwd", l);
        add_shape(L, 0, 1, B, n, n, 0, l, where);
    } else {
        sprintf(where, "maps x%d bwd-w", l);
        add_shape(L, 1, 0, n, n, B, 1, l, where);
        sprintf(where, "maps x%d bwd-data", l);
        add_shape(L, 0, 0, B, n, n, 0, l, where);
    }
}

static void layer_name(char *buf, const irmae_model *m, int i)
{
    const irmae_layer *ly = &m->layers[i];
    const char *part = i < m->n_enc ? "enc" : "dec";
    int idx = i < m->n_enc ? i : i - m->n_enc;
    if (ly->spec.type == IRMAE_LAYER_CONV || ly->spec.type == IRMAE_LAYER_CONVT)
        sprintf(buf, "%s%d %s %d->%d k%d s%d p%d %dx%d", part, idx,
                ly->spec.type == IRMAE_LAYER_CONV ? "conv" : "convT", ly->in_c, ly->out_c,
                ly->spec.k, ly->spec.stride, ly->spec.pad, ly->in_h, ly->in_w);
    else
        sprintf(buf, "%s%d linear %d->%d", part, idx, ly->in_c * ly->in_h * ly->in_w, ly->out_c);
}

/* every GEMM of irmae_model_train_step(m, x, B) (VAE not covered: AE/IRMAE only) */
static void collect_step(shapelist *L, const irmae_model *m, int B)
{
    int i;
    char name[64];
    memset(L, 0, sizeof *L);
    for (i = 0; i < m->n_layers; i++) { /* forward: encoder, maps, decoder */
        const irmae_layer *ly = &m->layers[i];
        if (i == m->n_enc) collect_maps(L, m->cfg.l, m->cfg.n, B, 0);
        layer_name(name, m, i);
        if (ly->spec.type == IRMAE_LAYER_CONV || ly->spec.type == IRMAE_LAYER_CONVT)
            collect_conv(L, ly, B, 0, 1, name);
        else if (ly->spec.type == IRMAE_LAYER_LINEAR)
            collect_linear(L, ly, B, 0, 1, name);
    }
    for (i = m->n_layers - 1; i >= 0; i--) { /* backward; layer 0 gets no din (dx == NULL) */
        const irmae_layer *ly = &m->layers[i];
        layer_name(name, m, i);
        if (ly->spec.type == IRMAE_LAYER_CONV || ly->spec.type == IRMAE_LAYER_CONVT)
            collect_conv(L, ly, B, 1, i > 0, name);
        else if (ly->spec.type == IRMAE_LAYER_LINEAR)
            collect_linear(L, ly, B, 1, i > 0, name);
        if (i == m->n_enc) collect_maps(L, m->cfg.l, m->cfg.n, B, 1);
    }
}

/* multiply-adds x 2 of the forward pass of one image: conv, convT, linear, the l maps */
static double forward_flops(const irmae_model *m)
{
    double f = 2.0 * m->cfg.l * (double)m->cfg.n * m->cfg.n;
    int i;
    for (i = 0; i < m->n_layers; i++) {
        const irmae_layer *ly = &m->layers[i];
        double kk = (double)ly->spec.k * ly->spec.k;
        if (ly->spec.type == IRMAE_LAYER_CONV)
            f += 2.0 * ly->out_c * ly->out_h * (double)ly->out_w * ly->in_c * kk;
        else if (ly->spec.type == IRMAE_LAYER_CONVT)
            f += 2.0 * ly->in_c * ly->in_h * (double)ly->in_w * ly->out_c * kk;
        else if (ly->spec.type == IRMAE_LAYER_LINEAR)
            f += 2.0 * ly->in_c * ly->in_h * (double)ly->in_w * ly->out_c;
    }
    return f;
}

/* ------------------------------------------------------------------------ */
/* GEMM timing                                                               */
/* ------------------------------------------------------------------------ */

typedef struct gresult {
    int ta, tb, m, n, k, beta1, threads;
    double irmae, blas;         /* GFLOP/s (median), 0 = not measured */
    double irmae_best, blas_best; /* GFLOP/s (best repetition) */
} gresult;
#define MAX_RESULTS 1024
static gresult g_res[MAX_RESULTS];
static int g_nres = 0;

static gresult *result_for(const bshape *s, int t)
{
    int i;
    for (i = 0; i < g_nres; i++) {
        gresult *r = &g_res[i];
        if (r->ta == s->ta && r->tb == s->tb && r->m == s->m && r->n == s->n && r->k == s->k &&
            r->beta1 == s->beta1 && r->threads == t) return r;
    }
    if (g_nres == MAX_RESULTS) { fprintf(stderr, "bench: too many results\n"); exit(1); }
    {
        gresult *r = &g_res[g_nres++];
        memset(r, 0, sizeof *r);
        r->ta = s->ta; r->tb = s->tb; r->m = s->m; r->n = s->n; r->k = s->k; r->beta1 = s->beta1;
        r->threads = t;
        return r;
    }
}

static void fill_random(float *p, size_t n, irmae_rng *rng)
{
    size_t i;
    for (i = 0; i < n; i++) p[i] = 2.0f * irmae_rng_uniform(rng) - 1.0f;
}

static void run_gemm(int use_blas, const bshape *s, const float *a, int lda, const float *b, int ldb,
                     float *c, int ldc, long reps)
{
    long r;
    float beta = s->beta1 ? 1.0f : 0.0f;
#ifdef IRMAE_BENCH_OPENBLAS
    if (use_blas) {
        for (r = 0; r < reps; r++)
            cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans,
                        s->m, s->n, s->k, 1.0f, a, lda, b, ldb, beta, c, ldc);
        return;
    }
#endif
    (void)use_blas;
    for (r = 0; r < reps; r++)
        irmae_sgemm(s->ta, s->tb, s->m, s->n, s->k, 1.0f, a, lda, b, ldb, beta, c, ldc);
}

/* GFLOP/s: median of g_reps repetitions, each >= g_min_time (*best: the fastest) */
static double time_gemm(const bshape *s, int use_blas, double *best)
{
    int lda = s->ta ? s->m : s->k, ldb = s->tb ? s->k : s->n, ldc = s->n, r, reps_n;
    size_t na = (size_t)s->m * s->k, nb = (size_t)s->k * s->n, nc = (size_t)s->m * s->n;
    float *a = (float *)xalloc(na, sizeof(float)), *b = (float *)xalloc(nb, sizeof(float));
    float *c = (float *)xalloc(nc, sizeof(float));
    irmae_rng rng = irmae_rng_seed(42);
    double v[64], t0, t, flop = 2.0 * s->m * s->n * (double)s->k;
    long reps = 1;
    fill_random(a, na, &rng);
    fill_random(b, nb, &rng);
    fill_random(c, nc, &rng);
    run_gemm(use_blas, s, a, lda, b, ldb, c, ldc, 1); /* warm-up, first-use allocations */
    for (;;) {
        t0 = now();
        run_gemm(use_blas, s, a, lda, b, ldb, c, ldc, reps);
        t = now() - t0;
        if (t >= g_min_time) break;
        if (t < g_min_time / 16) reps *= 8;
        else reps = (long)(reps * (1.1 * g_min_time / t)) + 1;
    }
    reps_n = g_reps < 64 ? g_reps : 63;
    for (r = 0; r < reps_n; r++) {
        t0 = now();
        run_gemm(use_blas, s, a, lda, b, ldb, c, ldc, reps);
        v[r] = flop * (double)reps / (now() - t0) * 1e-9;
    }
    free(a); free(b); free(c);
    t = median(v, reps_n); /* sorts v */
    *best = v[reps_n - 1];
    return t;
}

#ifdef BENCH_AFFINITY
/* With OMP_PROC_BIND=true libgomp pins the initial thread to the first core
   before main() runs, and OpenBLAS's worker threads inherit that mask: all of
   them would share one core. For the OpenBLAS pass every thread of the
   process is allowed on every CPU (as without OMP_PROC_BIND), and the saved
   masks are restored afterwards. */
#define AFF_MAX 256
static int g_aff_n = 0;
static pid_t g_aff_tid[AFF_MAX];
static cpu_set_t g_aff_mask[AFF_MAX];

static void affinity_release(void)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    cpu_set_t all;
    long ncpu = sysconf(_SC_NPROCESSORS_CONF), i;
    CPU_ZERO(&all);
    for (i = 0; i < ncpu && i < CPU_SETSIZE; i++) CPU_SET((int)i, &all);
    g_aff_n = 0;
    if (!d) return;
    while ((e = readdir(d)) != NULL && g_aff_n < AFF_MAX) {
        pid_t tid = (pid_t)atoi(e->d_name);
        if (tid <= 0) continue;
        if (sched_getaffinity(tid, sizeof(cpu_set_t), &g_aff_mask[g_aff_n]) != 0) continue;
        g_aff_tid[g_aff_n++] = tid;
        sched_setaffinity(tid, sizeof all, &all);
    }
    closedir(d);
}

static void affinity_restore(void)
{
    int i;
    for (i = 0; i < g_aff_n; i++) sched_setaffinity(g_aff_tid[i], sizeof(cpu_set_t), &g_aff_mask[i]);
    g_aff_n = 0;
}
#endif

/* measure (once, cached) every shape of the lists on t threads; irmae first,
   then OpenBLAS in a separate pass so neither library's idle-spinning
   worker threads steal cycles from the other */
static void measure_lists(shapelist **lists, int nlists, int t)
{
    int li, i, pass;
    for (pass = 0; pass < 2; pass++) {
#ifndef IRMAE_BENCH_OPENBLAS
        if (pass == 1) break;
#endif
        set_threads(t);
#ifdef BENCH_AFFINITY
        if (pass == 1) affinity_release();
#endif
        sleep_ms(300);
        for (li = 0; li < nlists; li++)
            for (i = 0; i < lists[li]->n; i++) {
                gresult *r = result_for(&lists[li]->s[i], t);
                if (pass == 0 && r->irmae <= 0.0) r->irmae = time_gemm(&lists[li]->s[i], 0, &r->irmae_best);
                if (pass == 1 && r->blas <= 0.0) r->blas = time_gemm(&lists[li]->s[i], 1, &r->blas_best);
            }
#ifdef BENCH_AFFINITY
        if (pass == 1) affinity_restore();
#endif
    }
}

static void print_shape_line(const bshape *s, int t, double peak, int with_calls)
{
    gresult *r = result_for(s, t);
    char shape[96];
    sprintf(shape, "%c%c m=%d n=%d k=%d beta=%d", s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', s->m, s->n, s->k, s->beta1);
    printf("gemm threads=%d %-36s", t, shape);
    if (with_calls) printf(" calls=%-3d", s->calls);
    printf(" gflops=%6.1f peak=%5.1f%% best=%6.1f", r->irmae, peak > 0 ? 100.0 * r->irmae / peak : 0.0,
           r->irmae_best);
#ifdef IRMAE_BENCH_OPENBLAS
    printf(" openblas=%6.1f irmae/openblas=%.2f best=%.2f", r->blas, r->blas > 0 ? r->irmae / r->blas : 0.0,
           r->blas_best > 0 ? r->irmae_best / r->blas_best : 0.0);
#endif
    if (with_calls) printf("  # %s", s->where);
    printf("\n");
}

/* estimated GEMM seconds of one step from the measured rates */
static double step_gemm_seconds(const shapelist *L, int t, int blas)
{
    double sec = 0.0;
    int i;
    for (i = 0; i < L->n; i++) {
        const bshape *s = &L->s[i];
        gresult *r = result_for(s, t);
        double g = blas ? r->blas : r->irmae;
        if (g <= 0.0) return 0.0;
        sec += 2.0 * s->m * s->n * (double)s->k * s->calls / (g * 1e9);
    }
    return sec;
}

/* ------------------------------------------------------------------------ */
/* configurations: mnist l=8, shapes l=2; batch 32, 128                      */
/* ------------------------------------------------------------------------ */

typedef struct bconf { int preset, l; const char *name; } bconf;
static const bconf g_confs[2] = { { IRMAE_PRESET_MNIST, 8, "mnist" }, { IRMAE_PRESET_SHAPES, 2, "shapes" } };
static const int g_batches[2] = { 32, 128 };

static void make_model(irmae_model *m, const bconf *c, int max_batch)
{
    irmae_config cfg = irmae_preset(c->preset);
    irmae_rng rng = irmae_rng_seed(1);
    int rc;
    cfg.l = c->l;
    cfg.max_batch = max_batch;
    if ((rc = irmae_model_init(m, &cfg, &rng))) die("irmae_model_init", rc);
}

/* count images of the preset's input: shapes via irmae_shapes_make, mnist uniform [0,1] */
static float *make_data(const bconf *c, int count, irmae_dataset *ds)
{
    irmae_rng rng = irmae_rng_seed(7);
    int rc;
    if (c->preset == IRMAE_PRESET_SHAPES) {
        if ((rc = irmae_shapes_make(ds, NULL, count, &rng))) die("irmae_shapes_make", rc);
    } else {
        size_t i, n;
        if ((rc = irmae_dataset_alloc(ds, count, 1, 32, 32, 0))) die("irmae_dataset_alloc", rc);
        n = (size_t)count * 32 * 32;
        for (i = 0; i < n; i++) ds->x[i] = irmae_rng_uniform(&rng);
    }
    return ds->x;
}

static shapelist g_lists[2][2]; /* [conf][batch] */
static int g_lists_ready = 0;

static void build_lists(void)
{
    int ci, bi;
    if (g_lists_ready) return;
    for (ci = 0; ci < 2; ci++) {
        irmae_model m;
        make_model(&m, &g_confs[ci], 128);
        for (bi = 0; bi < 2; bi++) collect_step(&g_lists[ci][bi], &m, g_batches[bi]);
        irmae_model_free(&m);
    }
    g_lists_ready = 1;
}

/* the GEMM shapes of one training step per configuration, without timing */
static void section_list(void)
{
    int ci, bi, i;
    build_lists();
    printf("\n# GEMM calls of one irmae_model_train_step, derived from m.layers (see the top of bench.c)\n");
    for (ci = 0; ci < 2; ci++)
        for (bi = 0; bi < 2; bi++) {
            const shapelist *L = &g_lists[ci][bi];
            printf("\n## preset=%s l=%d batch=%d: %lld GEMM calls, %d distinct shapes, %.3f GFLOP "
                   "(%.3f MFLOP per image)\n", g_confs[ci].name, g_confs[ci].l, g_batches[bi], L->calls, L->n,
                   L->flops * 1e-9, L->flops / g_batches[bi] * 1e-6);
            for (i = 0; i < L->n; i++) {
                const bshape *sh = &L->s[i];
                printf("shape %c%c m=%d n=%d k=%d beta=%d calls=%d  # %s\n", sh->ta ? 'T' : 'N',
                       sh->tb ? 'T' : 'N', sh->m, sh->n, sh->k, sh->beta1, sh->calls, sh->where);
            }
        }
    fflush(stdout);
}

/* with_steps = 0: square sizes only */
static void section_gemm(int with_steps)
{
    static const int sq[5] = { 64, 128, 256, 512, 1024 };
    shapelist squares, *lists[5];
    int ti, i, ci, bi;
    memset(&squares, 0, sizeof squares);
    for (i = 0; i < 5; i++) add_shape(&squares, 0, 0, sq[i], sq[i], sq[i], 0, 1, "square");
    build_lists();
    lists[0] = &squares;
    for (ci = 0; ci < 2; ci++)
        for (bi = 0; bi < 2; bi++) lists[1 + 2 * ci + bi] = &g_lists[ci][bi];
    printf("\n# sgemm GFLOP/s (simd=%s): median of %d repetitions of >= %.2f s each (best = the fastest "
           "repetition); peak%% = median / measured FMA peak for that thread count\n",
           irmae_simd_name(irmae_simd_level()), g_reps, g_min_time);
    printf("# shape: NN/NT/TN/TT = trans_a trans_b, C[m x n] (+)= op(A)[m x k] op(B)[k x n]; "
           "calls = calls per training step\n");
    for (ti = 0; ti < g_nthreads; ti++) {
        int t = g_threads[ti];
        double peak = peak_for(t);
        measure_lists(lists, with_steps ? 5 : 1, t);
        printf("\n## threads=%d, square sizes (NN, beta=0)\n", t);
        for (i = 0; i < squares.n; i++) print_shape_line(&squares.s[i], t, peak, 0);
        for (ci = 0; ci < 2 && with_steps; ci++)
            for (bi = 0; bi < 2; bi++) {
                const shapelist *L = &g_lists[ci][bi];
                double est = step_gemm_seconds(L, t, 0);
                printf("\n## threads=%d, one training step of preset=%s l=%d batch=%d: "
                       "%lld GEMM calls, %d distinct shapes, %.3f GFLOP\n",
                       t, g_confs[ci].name, g_confs[ci].l, g_batches[bi], L->calls, L->n, L->flops * 1e-9);
                for (i = 0; i < L->n; i++) print_shape_line(&L->s[i], t, peak, 1);
                printf("gemm-step threads=%d preset=%s batch=%d est_ms=%.2f gflops=%.1f",
                       t, g_confs[ci].name, g_batches[bi], est * 1e3, est > 0 ? L->flops / est * 1e-9 : 0.0);
#ifdef IRMAE_BENCH_OPENBLAS
                {
                    double eb = step_gemm_seconds(L, t, 1);
                    printf(" openblas_est_ms=%.2f", eb * 1e3);
                }
#endif
                printf("  (sum over the shapes of calls x time of one call)\n");
            }
        fflush(stdout);
    }
}

/* ------------------------------------------------------------------------ */
/* training throughput                                                       */
/* ------------------------------------------------------------------------ */

#define TRAIN_WINDOWS 5
#define POOL_BATCHES 4

/* result of training one configuration for g_train_seconds */
typedef struct trate {
    double img_s, step_ms, loss;          /* medians over the windows; last loss */
    double lo, hi;                        /* first and last window, img/s */
    double phase_ms[IRMAE_PHASE_COUNT];   /* per step, from irmae_profile_read */
    double prof_step_ms;                  /* step time while profiled */
} trate;

/* trains configuration ci, batch B, on t threads: TRAIN_WINDOWS timed
   windows, then (with_phases) as many steps again with the phase profile on */
static trate train_rate(int ci, int B, int t, int with_phases)
{
    const bconf *c = &g_confs[ci];
    int w, rc, step = 0, p;
    irmae_model m;
    irmae_dataset ds;
    const float *pool;
    double ips[TRAIN_WINDOWS], ms[TRAIN_WINDOWS], win = g_train_seconds / TRAIN_WINDOWS;
    size_t img = c->preset == IRMAE_PRESET_SHAPES ? 3 * 32 * 32 : 32 * 32;
    float loss = 0.0f;
    trate r;
    memset(&r, 0, sizeof r);
    set_threads(t);
    make_model(&m, c, B);
    pool = make_data(c, POOL_BATCHES * B, &ds);
    for (w = 0; w < 3; w++, step++)
        if ((rc = irmae_model_train_step(&m, &loss, pool + (size_t)(step % POOL_BATCHES) * B * img, B)))
            die("train_step", rc);
    for (w = 0; w < TRAIN_WINDOWS; w++) {
        double t0 = now(), el;
        int n = 0;
        do {
            if ((rc = irmae_model_train_step(&m, &loss, pool + (size_t)(step % POOL_BATCHES) * B * img, B)))
                die("train_step", rc);
            step++; n++;
            el = now() - t0;
        } while (el < win || n < 2);
        ips[w] = (double)n * B / el;
        ms[w] = el / n * 1e3;
    }
    r.lo = ips[0]; r.hi = ips[TRAIN_WINDOWS - 1];
    r.img_s = median(ips, TRAIN_WINDOWS);
    r.step_ms = median(ms, TRAIN_WINDOWS);
    if (with_phases) {
        double sec[IRMAE_PHASE_COUNT], t0 = now(), el;
        int n = 0;
        irmae_profile_read(NULL, 1);
        irmae_profile_enable(1);
        do {
            if ((rc = irmae_model_train_step(&m, &loss, pool + (size_t)(step % POOL_BATCHES) * B * img, B)))
                die("train_step", rc);
            step++; n++;
            el = now() - t0;
        } while (el < 0.5 * g_train_seconds || n < 2);
        irmae_profile_enable(0);
        irmae_profile_read(sec, 1);
        for (p = 0; p < IRMAE_PHASE_COUNT; p++) r.phase_ms[p] = sec[p] / n * 1e3;
        r.prof_step_ms = el / n * 1e3;
    }
    r.loss = loss;
    irmae_dataset_free(&ds);
    irmae_model_free(&m);
    return r;
}

static void print_phases(const bconf *c, int t, int B, const trate *r)
{
    double sum = 0.0;
    int p;
    printf("  phases preset=%s threads=%d batch=%d step_ms=%.2f:", c->name, t, B, r->prof_step_ms);
    for (p = 0; p < IRMAE_PHASE_COUNT; p++) {
        sum += r->phase_ms[p];
        printf(" %s=%.2f (%.0f%%)", irmae_phase_name(p), r->phase_ms[p], 100.0 * r->phase_ms[p] / r->prof_step_ms);
    }
    printf(" other=%.2f (%.0f%%)\n", r->prof_step_ms - sum, 100.0 * (r->prof_step_ms - sum) / r->prof_step_ms);
}

static void section_train(void)
{
    int ci, bi, ti;
    build_lists();
    printf("\n# training throughput: irmae_model_train_step (forward, backward, Adam), simd=%s, "
           "warm-up 3 steps, %d windows over >= %.1f s, median img/s; "
           "mfu = FLOP/s / measured FMA peak of the %s path, FLOP per image = 3 x forward FLOPs; "
           "phases: where a step's time goes (irmae_profile_enable), other = the rest\n",
           irmae_simd_name(irmae_simd_level()), TRAIN_WINDOWS, g_train_seconds, irmae_simd_name(irmae_simd_level()));
    for (ci = 0; ci < 2; ci++) {
        irmae_model m0;
        double f;
        make_model(&m0, &g_confs[ci], 32);
        f = forward_flops(&m0);
        printf("flops preset=%s l=%d params=%lu fwd_mflop_per_img=%.3f train_mflop_per_img=%.3f "
               "gemm_mflop_per_img=%.3f\n", g_confs[ci].name, g_confs[ci].l, (unsigned long)m0.n_params,
               f * 1e-6, 3.0 * f * 1e-6, g_lists[ci][1].flops / 128.0 * 1e-6);
        irmae_model_free(&m0);
    }
    for (ci = 0; ci < 2; ci++)
        for (bi = 0; bi < 2; bi++)
            for (ti = 0; ti < g_nthreads; ti++) {
                const bconf *c = &g_confs[ci];
                int B = g_batches[bi], t = g_threads[ti];
                irmae_model m0;
                double fpi, peak = peak_for(t), est;
                trate r;
                make_model(&m0, c, B);
                fpi = 3.0 * forward_flops(&m0);
                irmae_model_free(&m0);
                r = train_rate(ci, B, t, 1);
                printf("train preset=%s l=%d threads=%d batch=%d img/s=%.1f mfu=%.1f%%\n",
                       c->name, c->l, t, B, r.img_s, peak > 0 ? 100.0 * r.img_s * fpi / (peak * 1e9) : 0.0);
                est = step_gemm_seconds(&g_lists[ci][bi], t, 0);
                printf("  info: step_ms=%.2f loss=%.5f", r.step_ms, r.loss);
                if (est > 0) printf(" gemm_est_ms=%.2f (%.0f%% of the step)", est * 1e3, 100.0 * est * 1e3 / r.step_ms);
                printf(" windows_img/s=%.0f..%.0f\n", r.lo, r.hi);
                print_phases(c, t, B, &r);
                fflush(stdout);
            }
}

/* Every conv, convT and linear layer of the two presets on its own (batch 32,
   random tensors, hot caches), forward and backward, at each thread count:
   the median time of a call and its phases, and the speedup of the last
   thread count over the first. What a layer loses here it loses in a
   training step too; a step can lose more (its data moves between the
   cores' caches from one layer to the next, which an isolated call does not
   see), so compare the sum with the train section's step. */
static double layer_call(const irmae_layer *ly, int pass, int need_din, const irmae_conv_desc *d, float **t)
{
    /* t: in, out, w, b, din, dw, db, work */
    double t0 = now();
    int rc = 0, B = d->batch;
    if (ly->spec.type == IRMAE_LAYER_LINEAR) {
        int in_f = ly->in_c * ly->in_h * ly->in_w, out_f = ly->out_c;
        rc = pass == 0 ? irmae_linear_forward(t[1], t[0], t[2], t[3], B, in_f, out_f)
                       : irmae_linear_backward(need_din ? t[4] : NULL, t[5], t[6], t[1], t[0], t[2], B, in_f, out_f);
    } else if (ly->spec.type == IRMAE_LAYER_CONV) {
        rc = pass == 0 ? irmae_conv2d_forward(t[1], t[0], t[2], t[3], d, t[7])
                       : irmae_conv2d_backward(need_din ? t[4] : NULL, t[5], t[6], t[1], t[0], t[2], d, t[7]);
    } else {
        rc = pass == 0 ? irmae_convt2d_forward(t[1], t[0], t[2], t[3], d, t[7])
                       : irmae_convt2d_backward(need_din ? t[4] : NULL, t[5], t[6], t[1], t[0], t[2], d, t[7]);
    }
    if (rc) die("layer call", rc);
    return now() - t0;
}

static void section_layers(void)
{
    int ci, i, pass, ti, r, ph;
    const int B = 32;
    printf("\n# layers on their own (batch %d, hot caches): median ms of a call [gemm pack lower] per thread count, "
           "speedup = first / last thread count\n", B);
    for (ci = 0; ci < 2; ci++) {
        irmae_model m;
        double sum[MAX_THREADS_LIST];
        memset(sum, 0, sizeof sum);
        make_model(&m, &g_confs[ci], B);
        for (i = 0; i < m.n_layers; i++) {
            const irmae_layer *ly = &m.layers[i];
            irmae_conv_desc d;
            float *t[8];
            size_t n[8];
            char name[64];
            int k, rc = 0;
            if (ly->spec.type != IRMAE_LAYER_CONV && ly->spec.type != IRMAE_LAYER_CONVT &&
                ly->spec.type != IRMAE_LAYER_LINEAR) continue;
            memset(&d, 0, sizeof d);
            d.batch = B; /* all a linear layer's call reads of it */
            if (ly->spec.type != IRMAE_LAYER_LINEAR && (rc = layer_desc(&d, ly, B))) die("conv desc", rc);
            n[0] = n[4] = (size_t)B * ly->in_c * ly->in_h * ly->in_w;
            n[1] = (size_t)B * ly->out_c * ly->out_h * ly->out_w;
            n[2] = n[5] = (size_t)ly->in_c * ly->in_h * ly->in_w * ly->out_c;
            if (ly->spec.type != IRMAE_LAYER_LINEAR) n[2] = n[5] = (size_t)ly->in_c * ly->out_c * ly->spec.k * ly->spec.k;
            n[3] = n[6] = (size_t)ly->out_c;
            n[7] = ly->spec.type == IRMAE_LAYER_LINEAR ? 1 : irmae_conv_workspace(&d) + 1;
            for (k = 0; k < 8; k++) {
                size_t j;
                if (!(t[k] = (float *)malloc(n[k] * sizeof(float)))) die("malloc", IRMAE_ERR_NOMEM);
                for (j = 0; j < n[k]; j++) t[k][j] = (float)((j * 2654435761u) % 1000u) * 1e-3f - 0.5f;
            }
            layer_name(name, &m, i);
            for (pass = 0; pass < 2; pass++) {
                double ms[MAX_THREADS_LIST];
                printf("layer preset=%s %-34s %s:", g_confs[ci].name, name, pass ? "bwd" : "fwd");
                for (ti = 0; ti < g_nthreads; ti++) {
                    double v[16], prof[IRMAE_PHASE_COUNT], phs[3] = {0, 0, 0};
                    int calls = 1, reps = g_reps < 16 ? g_reps : 16;
                    set_threads(g_threads[ti]);
                    for (r = 0; r < 3; r++) layer_call(ly, pass, i > 0, &d, t);
                    while (calls < (1 << 20)) { /* enough calls for g_min_time */
                        double s = 0.0;
                        for (r = 0; r < calls; r++) s += layer_call(ly, pass, i > 0, &d, t);
                        if (s >= g_min_time) break;
                        calls *= 2;
                    }
                    irmae_profile_enable(1);
                    for (k = 0; k < reps; k++) {
                        double s = 0.0;
                        irmae_profile_read(prof, 1);
                        for (r = 0; r < calls; r++) s += layer_call(ly, pass, i > 0, &d, t);
                        v[k] = s / calls;
                        irmae_profile_read(prof, 1);
                        for (ph = 0; ph < 3; ph++) phs[ph] += prof[ph] / calls / reps;
                    }
                    irmae_profile_enable(0);
                    ms[ti] = 1e3 * median(v, reps);
                    sum[ti] += ms[ti];
                    printf(" %dt %.3f [%.3f %.3f %.3f]", g_threads[ti], ms[ti], 1e3 * phs[0], 1e3 * phs[1], 1e3 * phs[2]);
                }
                if (g_nthreads > 1) printf(" speedup %.2f", ms[0] / ms[g_nthreads - 1]);
                printf("\n");
                fflush(stdout);
            }
            for (k = 0; k < 8; k++) free(t[k]);
        }
        printf("layers preset=%s sum:", g_confs[ci].name);
        for (ti = 0; ti < g_nthreads; ti++) printf(" %dt %.2f ms", g_threads[ti], sum[ti]);
        if (g_nthreads > 1) printf(" speedup %.2f", sum[0] / sum[g_nthreads - 1]);
        printf("\n");
        irmae_model_free(&m);
    }
}

/* Every SIMD path this CPU has, side by side on one thread: square GEMMs and
   the batch-32 training step; the dispatcher's choice must be the fastest. */
static void section_paths(void)
{
    static const int sq[3] = { 256, 512, 1024 };
    int level, i, ci, best = irmae_simd_level(), nlev = 0, levels[4];
    double gf[4][3], ips[4][2];
    shapelist squares;
    memset(&squares, 0, sizeof squares);
    for (i = 0; i < 3; i++) add_shape(&squares, 0, 0, sq[i], sq[i], sq[i], 0, 1, "square");
    printf("\n# every SIMD path of this CPU on 1 thread (dispatch picks %s): sgemm GFLOP/s (median) "
           "and training img/s (batch 32)\n", irmae_simd_name(best));
    set_threads(1);
    for (level = 0; level < 4; level++) {
        if (!path_available(level)) continue;
        irmae_simd_force(level);
        for (i = 0; i < 3; i++) {
            double bst;
            gf[nlev][i] = time_gemm(&squares.s[i], 0, &bst);
        }
        for (ci = 0; ci < 2; ci++) ips[nlev][ci] = train_rate(ci, 32, 1, 0).img_s;
        printf("path %-6s sgemm256=%6.1f sgemm512=%6.1f sgemm1024=%6.1f (peak %5.1f%% at 512) "
               "mnist_img/s=%6.1f shapes_img/s=%6.1f\n", irmae_simd_name(level), gf[nlev][0], gf[nlev][1],
               gf[nlev][2], 100.0 * gf[nlev][1] / peak_of(1, level), ips[nlev][0], ips[nlev][1]);
        levels[nlev++] = level;
        fflush(stdout);
    }
    irmae_simd_force(best);
    for (i = 0; i < nlev; i++) {
        int j, fastest_gemm = 1, fastest_train = 1;
        if (levels[i] != best) continue;
        for (j = 0; j < nlev; j++) {
            if (gf[j][1] > gf[i][1] * 1.02) fastest_gemm = 0;
            if (ips[j][0] > ips[i][0] * 1.02 || ips[j][1] > ips[i][1] * 1.02) fastest_train = 0;
        }
        printf("dispatch %s: %s for sgemm 512, %s for training (2%% noise margin)\n", irmae_simd_name(best),
               fastest_gemm ? "fastest" : "NOT the fastest", fastest_train ? "fastest" : "NOT the fastest");
    }
}

/* ------------------------------------------------------------------------ */
/* memory: a fresh process per configuration, VmHWM vs. the expected size     */
/* ------------------------------------------------------------------------ */

/* kB value of a "Key:   123 kB" line of /proc/self/status, -1 if unavailable */
static long proc_status_kb(const char *key)
{
#ifdef BENCH_LINUX
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t kl = strlen(key);
    long v = -1;
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, kl) && line[kl] == ':') { v = strtol(line + kl + 1, NULL, 10); break; }
    fclose(f);
    return v;
#else
    (void)key;
    return -1;
#endif
}

static double mb(double bytes) { return bytes / (1024.0 * 1024.0); }

static void mem_child(int ci, int B)
{
    const bconf *c = &g_confs[ci];
    long rss0 = proc_status_kb("VmRSS"), hwm;
    irmae_model m;
    irmae_dataset ds;
    const float *pool;
    size_t img = c->preset == IRMAE_PRESET_SHAPES ? 3 * 32 * 32 : 32 * 32, maxio = 0, ws = 0;
    double state, acts, codes, grads, work, pack = 0.0, data, total;
    int i, rc, t = g_threads[g_nthreads - 1];
    float loss;
    set_threads(t);
    make_model(&m, c, B);
    pool = make_data(c, POOL_BATCHES * B, &ds);
    for (i = 0; i < 5; i++)
        if ((rc = irmae_model_train_step(&m, &loss, pool + (size_t)(i % POOL_BATCHES) * B * img, B)))
            die("train_step", rc);
    hwm = proc_status_kb("VmHWM");
    for (i = 0; i < m.n_layers; i++) {
        const irmae_layer *ly = &m.layers[i];
        size_t in = (size_t)ly->in_c * ly->in_h * ly->in_w, out = (size_t)ly->out_c * ly->out_h * ly->out_w;
        if (in > maxio) maxio = in;
        if (out > maxio) maxio = out;
        if (ly->spec.type == IRMAE_LAYER_CONV || ly->spec.type == IRMAE_LAYER_CONVT) {
            irmae_conv_desc d;
            if (ly->spec.type == IRMAE_LAYER_CONV)
                rc = irmae_conv2d_desc(&d, B, ly->in_c, ly->in_h, ly->in_w, ly->out_c, ly->spec.k, ly->spec.stride, ly->spec.pad);
            else
                rc = irmae_convt2d_desc(&d, B, ly->in_c, ly->in_h, ly->in_w, ly->out_c, ly->spec.k, ly->spec.stride, ly->spec.pad);
            if (!rc && irmae_conv_workspace(&d) > ws) ws = irmae_conv_workspace(&d);
        }
    }
    state = 4.0 * 4.0 * (double)m.n_params;                      /* params, grads, Adam m, v */
    acts = 4.0 * (double)m.act_per_image * B;                           /* every layer's output */
    codes = 4.0 * ((double)(m.cfg.l + 1) * B * m.cfg.n + (double)B * m.cfg.n); /* codes + vae_eps */
    grads = 4.0 * 2.0 * (double)maxio * B;                        /* activation-gradient ping-pong */
    work = 4.0 * (double)ws;                                      /* conv workspace */
#if defined(IRMAE__GEMM_BUF_FLOATS)
    pack = 4.0 * (double)IRMAE__GEMM_BUF_FLOATS;
#endif
    data = 4.0 * (double)POOL_BATCHES * B * img;
    total = state + acts + codes + grads + work + pack;
    printf("mem preset=%s l=%d batch=%d threads=%d vmhwm_mb=%.1f start_rss_mb=%.1f growth_mb=%.1f "
           "expected_mb=%.1f (params+grads+adam %.1f, activations %.1f, act-grads %.1f, conv-work %.1f, "
           "codes %.2f, gemm-pack %.1f) + bench data %.1f\n",
           c->name, c->l, B, t, hwm / 1024.0, rss0 / 1024.0, (hwm - rss0) / 1024.0, mb(total),
           mb(state), mb(acts), mb(grads), mb(work), mb(codes), mb(pack), mb(data));
    fflush(stdout);
    irmae_dataset_free(&ds);
    irmae_model_free(&m);
}

static void section_mem(void)
{
    int ci, bi;
    printf("\n# peak memory of a training run (5 steps, max_batch = batch), each in a fresh process: "
           "VmHWM of /proc/self/status vs. the buffers the model allocates\n");
    fflush(stdout);
    for (ci = 0; ci < 2; ci++)
        for (bi = 0; bi < 2; bi++) {
#ifdef BENCH_LINUX
            pid_t pid;
            char a1[16], a2[16];
            sprintf(a1, "%d", ci);
            sprintf(a2, "%d", g_batches[bi]);
            fflush(stdout);
            pid = fork();
            if (pid == 0) {
                char *argv[5];
                argv[0] = (char *)"bench";
                argv[1] = (char *)"--mem-child";
                argv[2] = a1;
                argv[3] = a2;
                argv[4] = NULL;
                execv("/proc/self/exe", argv);
                _exit(127);
            } else if (pid > 0) {
                int st = 0;
                waitpid(pid, &st, 0);
                if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) printf("mem: child failed (status %d)\n", st);
            } else {
                mem_child(ci, g_batches[bi]);
            }
#else
            mem_child(ci, g_batches[bi]); /* same process: the high-water mark accumulates */
#endif
        }
}

/* ------------------------------------------------------------------------ */

static void parse_threads(void)
{
    const char *e = getenv("IRMAE_BENCH_THREADS");
    g_nthreads = 0;
    if (e && *e) {
        const char *p = e;
        while (*p && g_nthreads < MAX_THREADS_LIST) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p) break;
            if (v > 0 && v < 1024) g_threads[g_nthreads++] = (int)v;
            p = *end == ',' ? end + 1 : end;
            if (*end != ',') break;
        }
    }
    if (g_nthreads == 0) { g_threads[0] = 1; g_threads[1] = 2; g_nthreads = 2; }
}

int main(int argc, char **argv)
{
    int do_peak = 0, do_gemm = 0, do_train = 0, do_mem = 0, do_list = 0, do_squares = 0, do_paths = 0,
        do_layers = 0, i;
    const char *bind = getenv("OMP_PROC_BIND");
    parse_threads();
    g_reps = (int)env_double("IRMAE_BENCH_REPS", 5.0);
    if (g_reps < 1) g_reps = 1;
    g_min_time = env_double("IRMAE_BENCH_MIN_TIME", 0.1);
    g_train_seconds = env_double("IRMAE_BENCH_SECONDS", 3.0);
    if (argc == 4 && !strcmp(argv[1], "--mem-child")) {
        mem_child(atoi(argv[2]) ? 1 : 0, atoi(argv[3]));
        return 0;
    }
    for (i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "peak")) do_peak = 1;
        else if (!strcmp(argv[i], "gemm")) do_gemm = 1;
        else if (!strcmp(argv[i], "list")) do_list = 1;
        else if (!strcmp(argv[i], "squares")) do_squares = 1;
        else if (!strcmp(argv[i], "train")) do_train = 1;
        else if (!strcmp(argv[i], "mem")) do_mem = 1;
        else if (!strcmp(argv[i], "paths")) do_paths = 1;
        else if (!strcmp(argv[i], "layers")) do_layers = 1;
        else {
            fprintf(stderr, "usage: %s [peak] [list] [squares] [gemm] [paths] [train] [layers] [mem]\n", argv[0]);
            return 2;
        }
    }
    if (!do_peak && !do_gemm && !do_train && !do_mem && !do_list && !do_squares && !do_paths && !do_layers)
        do_peak = do_gemm = do_paths = do_train = do_layers = do_mem = 1;
    printf("irmae bench: irmae.h %d.%d.%d, simd=%s, OMP_PROC_BIND=%s, threads=",
           IRMAE_VERSION_MAJOR, IRMAE_VERSION_MINOR, IRMAE_VERSION_PATCH,
           irmae_simd_name(irmae_simd_level()), bind ? bind : "(unset)");
    for (i = 0; i < g_nthreads; i++) printf(i ? ",%d" : "%d", g_threads[i]);
#ifdef _OPENMP
    printf(" (omp max %d)", omp_get_max_threads());
#else
    printf(" (no OpenMP: every thread count runs on one thread)");
#endif
#ifdef IRMAE_BENCH_OPENBLAS
    printf(", OpenBLAS %s (core %s, OPENBLAS_CORETYPE=%s)", openblas_get_config(), openblas_get_corename(),
           getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)");
#endif
    printf("\n");
    print_cpu();
    if (!bind) printf("note: set OMP_PROC_BIND=true for stable numbers\n");
    print_load("at start");
    if (do_peak) section_peak();
    if (do_list) section_list();
    if (do_squares && !do_gemm) { section_gemm(0); print_load("after squares"); }
    if (do_gemm) { section_gemm(1); print_load("after gemm"); }
    if (do_paths) { section_paths(); print_load("after paths"); }
    if (do_train) { section_train(); print_load("after train"); }
    if (do_layers) { section_layers(); print_load("after layers"); }
    if (do_mem) section_mem();
    return 0;
}
