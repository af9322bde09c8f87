/* test_mpi_lib.c - the MPI part of irmae.h, run under mpirun with any
   number of ranks (tests/test_mpi.sh uses 1, 2 and 3):

     mpirun -np 2 build/test_mpi_lib

   Checks: irmae_mpi_shard covers a batch with contiguous slices; the
   fixed-order sum is bit-exact against the rank-order sum computed locally
   and identical on every rank; forward_backward_mpi on shards gives the
   gradient (and loss, and clipped gradient norm) of one process on the
   whole batch, also with an uneven split and with ranks that get no image,
   and for the VAE (noise drawn per global image); a few train steps match
   one process; a NaN on one rank makes every rank return
   IRMAE_ERR_NUMERIC with that rank named; irmae_mpi_agree.
   Rank 0 prints one line per check and "test_mpi_lib: N passed, M failed";
   every rank exits non-zero if any rank saw a failure. */
#define IRMAE_MPI
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

static int g_rank, g_size, g_pass, g_fail;

/* A check every rank evaluates; it passes only if it passed everywhere. */
static void check(int ok, const char *fmt, ...)
{
    int all = 0;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (all) g_pass++; else g_fail++;
    if (!ok) fprintf(stderr, "rank %d: FAIL %s\n", g_rank, msg);
    if (g_rank == 0) printf("%s %s\n", all ? "ok  " : "FAIL", msg);
}

static void test_shard(void)
{
    int b, s, r, ok = 1;
    for (b = 0; b <= 20; b++)
        for (s = 1; s <= 5; s++) {
            int next = 0, lo = b, hi = 0;
            for (r = 0; r < s; r++) {
                int off, cnt;
                irmae_mpi_shard(&off, &cnt, b, r, s);
                if (off != next || cnt < 0) ok = 0;
                next = off + cnt;
                if (cnt < lo) lo = cnt;
                if (cnt > hi) hi = cnt;
            }
            if (next != b || hi - lo > 1) ok = 0;
        }
    check(ok, "irmae_mpi_shard: contiguous slices covering the batch, sizes within 1");
}

/* Rank q's value of element i: signs and magnitudes over many decades. */
static float value(int q, size_t i, size_t count)
{
    irmae_rng r = irmae_rng_seed((uint64_t)q * 1000003u + i * 7919u + count);
    float m = irmae_rng_uniform(&r) * 2.0f - 1.0f;
    return m * powf(10.0f, (float)irmae_rng_int(&r, -6, 6));
}

static void test_sum(void)
{
    static const size_t counts[] = {1, 2, 3, 17, 1000, 100003};
    size_t k, i;
    for (k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        size_t n = counts[k];
        float *buf = (float *)malloc(n * sizeof(float));
        int rc, same = 1, exact = 1;
        uint32_t crc, crc0;
        for (i = 0; i < n; i++) buf[i] = value(g_rank, i, n);
        rc = irmae_mpi_allreduce_sum(buf, n, MPI_COMM_WORLD);
        for (i = 0; i < n; i++) {
            double s = 0.0;
            int q;
            for (q = 0; q < g_size; q++) s += (double)value(q, i, n);
            if (memcmp(&buf[i], &(float){(float)s}, sizeof(float))) exact = 0;
        }
        crc = crc0 = irmae_crc32(0, buf, n * sizeof(float));
        MPI_Bcast(&crc0, 1, MPI_UINT32_T, 0, MPI_COMM_WORLD);
        same = crc == crc0;
        check(rc == 0 && exact && same, "allreduce_sum of %lu floats: bit-exact rank-order sum, the same on every rank",
              (unsigned long)n);
        free(buf);
    }
}

static double max_abs(const float *a, size_t n)
{
    double m = 0.0;
    size_t i;
    for (i = 0; i < n; i++) if (fabs(a[i]) > m) m = fabs(a[i]);
    return m;
}

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0.0;
    size_t i;
    for (i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d == d)) return INFINITY;
        if (d > m) m = d;
    }
    return m;
}

static int same_on_all_ranks(const void *p, size_t bytes)
{
    uint32_t crc = irmae_crc32(0, p, bytes), crc0 = crc;
    MPI_Bcast(&crc0, 1, MPI_UINT32_T, 0, MPI_COMM_WORLD);
    return crc == crc0;
}

/* forward_backward_mpi on the shards vs forward_backward on the whole batch.
   Tolerance: the two differ only by the order of float additions (the
   batch sum inside each GEMM is split at the shard boundaries, then the
   shards are added); measured max |diff| / max |g| is ~1e-7, a missing or
   wrong local_batch / global_batch weight gives ~1e-1. */
static void test_grads(const char *name, irmae_config cfg, int B, const float *x)
{
    irmae_model ref, dist;
    irmae_rng r1 = irmae_rng_seed(5), r2 = irmae_rng_seed(5);
    int off, lb, rc1, rc2;
    float l1 = 0, l2 = 0;
    double gmax, d;
    irmae_mpi_shard(&off, &lb, B, g_rank, g_size);
    cfg.max_batch = B;
    rc1 = irmae_model_init(&ref, &cfg, &r1);
    rc2 = irmae_model_init(&dist, &cfg, &r2);
    if (rc1 || rc2) { check(0, "%s: model_init", name); return; }
    rc1 = irmae_model_forward_backward(&ref, &l1, NULL, x, B);
    rc2 = irmae_model_forward_backward_mpi(&dist, &l2, x + (size_t)off * 3 * 32 * 32, B, MPI_COMM_WORLD);
    gmax = max_abs(ref.grads, ref.n_params);
    d = max_diff(ref.grads, dist.grads, ref.n_params);
    check(rc1 == 0 && rc2 == 0 && gmax > 0 && d <= 1e-5 * gmax,
          "%s, batch %d over %d ranks: gradient of one process (max |diff| %.2g, max |g| %.2g)", name, B, g_size, d, gmax);
    check(fabs((double)l1 - l2) <= 1e-6 * fabs((double)l1) && fabs(ref.last_grad_norm - dist.last_grad_norm) <=
          1e-5 * ref.last_grad_norm, "%s: global mean loss %.7g (one process %.7g), grad norm %.6g (%.6g)", name, l2, l1,
          dist.last_grad_norm, ref.last_grad_norm);
    check(same_on_all_ranks(dist.grads, dist.n_params * sizeof(float)) && same_on_all_ranks(&l2, sizeof l2),
          "%s: gradients and loss bit-identical on every rank", name);
    if (cfg.kind == IRMAE_KIND_VAE)
        check(!memcmp(&ref.rng, &dist.rng, sizeof ref.rng), "%s: the noise RNG ends where one process's does", name);
    irmae_model_free(&ref);
    irmae_model_free(&dist);
}

/* A few Adam steps on shards vs one process: parameters within 1e-6 (see test_mpi.sh for the argument). */
static void test_steps(irmae_config cfg, int B, const float *x, int steps)
{
    irmae_model ref, dist;
    irmae_rng r1 = irmae_rng_seed(9), r2 = irmae_rng_seed(9);
    int off, lb, s, rc = 0;
    double d;
    irmae_mpi_shard(&off, &lb, B, g_rank, g_size);
    cfg.max_batch = B;
    if (irmae_model_init(&ref, &cfg, &r1) || irmae_model_init(&dist, &cfg, &r2)) { check(0, "steps: init"); return; }
    for (s = 0; s < steps && !rc; s++) {
        const float *xs = x + (size_t)s * B * 3 * 32 * 32;
        rc = irmae_model_train_step(&ref, NULL, xs, B);
        if (!rc) rc = irmae_model_train_step_mpi(&dist, NULL, xs + (size_t)off * 3 * 32 * 32, B, MPI_COMM_WORLD);
    }
    d = max_diff(ref.params, dist.params, ref.n_params);
    check(rc == 0 && d <= 1e-6 && dist.step == steps, "%d train steps of batch %d: parameters of one process (max |diff| %.2g)",
          steps, B, d);
    check(same_on_all_ranks(dist.params, dist.n_params * sizeof(float)) &&
          same_on_all_ranks(dist.adam_v, dist.n_params * sizeof(float)), "%d train steps: parameters and Adam state bit-identical on every rank", steps);
    irmae_model_free(&ref);
    irmae_model_free(&dist);
}

static void test_errors(irmae_config cfg, int B, float *x)
{
    irmae_model m;
    irmae_rng r = irmae_rng_seed(2);
    int off, lb, rc, first = -2, bad = g_size - 1;
    char want[64];
    float save;
    irmae_mpi_shard(&off, &lb, B, g_rank, g_size);
    cfg.max_batch = B;
    if (irmae_model_init(&m, &cfg, &r)) { check(0, "errors: init"); return; }
    save = x[(size_t)off * 3 * 32 * 32];
    if (g_rank == bad) x[(size_t)off * 3 * 32 * 32] = NAN; /* only the last rank sees it */
    rc = irmae_model_forward_backward_mpi(&m, NULL, x + (size_t)off * 3 * 32 * 32, B, MPI_COMM_WORLD);
    x[(size_t)off * 3 * 32 * 32] = save;
    snprintf(want, sizeof want, "rank %d of %d", bad, g_size);
    check(rc == IRMAE_ERR_NUMERIC && strstr(irmae_error_detail(), want) != NULL,
          "a NaN on rank %d only: every rank returns IRMAE_ERR_NUMERIC (\"%s\")", bad, irmae_error_detail());
    rc = irmae_model_forward_backward_mpi(&m, NULL, x + (size_t)off * 3 * 32 * 32, B, MPI_COMM_WORLD);
    check(rc == 0, "the next step works again on every rank");
    rc = irmae_mpi_agree(&first, g_rank == bad ? IRMAE_ERR_IO : 0, MPI_COMM_WORLD);
    check(rc == IRMAE_ERR_IO && first == bad, "irmae_mpi_agree: the failing rank's code and number everywhere");
    rc = irmae_mpi_agree(&first, 0, MPI_COMM_WORLD);
    check(rc == 0 && first == -1, "irmae_mpi_agree: 0 when no rank failed");
    irmae_model_free(&m);
}

int main(int argc, char **argv)
{
    irmae_dataset ds;
    irmae_rng r = irmae_rng_seed(11);
    irmae_config cfg = irmae_preset(IRMAE_PRESET_SHAPES), vae;
    int fails;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (irmae_shapes_make(&ds, NULL, 40, &r)) { fprintf(stderr, "shapes_make failed\n"); MPI_Abort(MPI_COMM_WORLD, 1); }
    test_shard();
    test_sum();
    cfg.l = 2;
    test_grads("irmae l=2", cfg, 7, ds.x);
    test_grads("irmae l=2", cfg, 1, ds.x); /* every rank but one has no image */
    cfg.grad_clip = 0.01f;
    test_grads("irmae l=2, clipped to 0.01", cfg, 5, ds.x);
    cfg.grad_clip = 0.0f;
    vae = irmae_preset(IRMAE_PRESET_SHAPES);
    vae.kind = IRMAE_KIND_VAE;
    test_grads("vae", vae, 6, ds.x);
    test_steps(cfg, 8, ds.x, 4);
    test_errors(cfg, 6, ds.x);
    irmae_dataset_free(&ds);
    MPI_Allreduce(&g_fail, &fails, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (g_rank == 0) printf("test_mpi_lib: %d passed, %d failed (%d ranks)\n", g_pass, g_fail, g_size);
    MPI_Finalize();
    return fails ? 1 : 0;
}
