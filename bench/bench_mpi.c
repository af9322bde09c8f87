/* bench_mpi.c - data-parallel training throughput over MPI (make bench-mpi).

     mpirun -np N build/bench_mpi [steps]

   For the shapes preset (l = 2) and the mnist preset (l = 8), global batch
   32: a few warm-up steps, then `steps` timed train steps (every rank waits
   at a barrier before the clock starts and stops), images/s = steps x 32 /
   time, plus the time of the gradient sum alone (irmae_mpi_allreduce_sum of
   the parameter count). Inputs: shapes images for the shapes preset,
   uniform [0,1) noise for the mnist preset (the step costs the same). One
   OpenMP thread per rank unless OMP_NUM_THREADS says otherwise. */
#define IRMAE_MPI
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"

#include <stdio.h>
#include <stdlib.h>

static void run(const char *name, irmae_config cfg, int steps, int rank, int size)
{
    irmae_model m;
    irmae_rng r = irmae_rng_seed(1);
    irmae_dataset ds;
    int B = 32, off, lb, s, rc = 0;
    size_t per = (size_t)cfg.in_c * cfg.in_h * cfg.in_w, i;
    double t0, t_step, t_sum;
    cfg.max_batch = B;
    irmae_mpi_shard(&off, &lb, B, rank, size);
    if (irmae_model_init(&m, &cfg, &r)) { fprintf(stderr, "init: %s\n", irmae_error_detail()); MPI_Abort(MPI_COMM_WORLD, 1); }
    if (cfg.in_c == 3) rc = irmae_shapes_make(&ds, NULL, B, &r);
    else if (!(rc = irmae_dataset_alloc(&ds, B, cfg.in_c, cfg.in_h, cfg.in_w, 0)))
        for (i = 0; i < (size_t)B * per; i++) ds.x[i] = irmae_rng_uniform(&r);
    if (rc) MPI_Abort(MPI_COMM_WORLD, 1);
    for (s = 0; s < 3 && !rc; s++) rc = irmae_model_train_step_mpi(&m, NULL, ds.x + (size_t)off * per, B, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = MPI_Wtime();
    for (s = 0; s < steps && !rc; s++) rc = irmae_model_train_step_mpi(&m, NULL, ds.x + (size_t)off * per, B, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    t_step = (MPI_Wtime() - t0) / steps;
    t0 = MPI_Wtime();
    for (s = 0; s < steps && !rc; s++) rc = irmae_mpi_allreduce_sum(m.grads, m.n_params, MPI_COMM_WORLD);
    MPI_Barrier(MPI_COMM_WORLD);
    t_sum = (MPI_Wtime() - t0) / steps;
    if (rc) { fprintf(stderr, "rank %d: %s\n", rank, irmae_error_detail()); MPI_Abort(MPI_COMM_WORLD, 1); }
    if (rank == 0)
        printf("%-14s %d rank(s), batch %d (%d per rank): %7.1f images/s, %6.1f ms/step, gradient sum %5.2f ms "
               "(%lu parameters, %.2f MB)\n", name, size, B, lb, B / t_step, 1e3 * t_step, 1e3 * t_sum,
               (unsigned long)m.n_params, 4.0 * m.n_params / 1e6);
    irmae_dataset_free(&ds);
    irmae_model_free(&m);
}

int main(int argc, char **argv)
{
    int rank, size, steps;
    irmae_config c;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    steps = argc > 1 ? atoi(argv[1]) : 20;
    if (steps < 1) steps = 1;
    c = irmae_preset(IRMAE_PRESET_SHAPES); c.l = 2;
    run("shapes l=2", c, steps, rank, size);
    c = irmae_preset(IRMAE_PRESET_MNIST); c.l = 8;
    run("mnist l=8", c, steps, rank, size);
    MPI_Finalize();
    return 0;
}
