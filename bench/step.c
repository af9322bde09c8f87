/* Times irmae_model_train_step on its own, for comparing two versions of
   irmae.h in alternation on a noisy machine (the same step, the same data,
   one process per run):

     cc -O2 -fopenmp -I. bench/step.c -o build/step-new -lm
     cc -O2 -fopenmp -I/path/to/old bench/step.c -o build/step-old -lm
     for i in 1 2 3 4 5; do for b in old new; do
       OMP_NUM_THREADS=2 OMP_PROC_BIND=true build/step-$b 0 60; done; done

   Arguments: preset (0 mnist with l = 8, 1 shapes with l = 2), steps;
   STEP_BATCH sets the batch (default 32). The images are uniform random
   numbers in [0, 1); 3 warm-up steps are not timed. Prints ms per step. */
#if !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#endif
#define IRMAE_IMPLEMENTATION
#include "irmae.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
    const int shapes = argc > 1 && atoi(argv[1]) != 0, steps = argc > 2 ? atoi(argv[2]) : 50;
    const int batch = getenv("STEP_BATCH") ? atoi(getenv("STEP_BATCH")) : 32;
    irmae_config cfg = irmae_preset(shapes ? IRMAE_PRESET_SHAPES : IRMAE_PRESET_MNIST);
    irmae_rng rng = irmae_rng_seed(1);
    irmae_model m;
    size_t per, i;
    float *x;
    double t;
    int s;
    if (steps < 1 || batch < 1) { fprintf(stderr, "usage: step PRESET STEPS (STEP_BATCH=B)\n"); return 2; }
    cfg.l = shapes ? 2 : 8;
    cfg.max_batch = batch;
    if (irmae_model_init(&m, &cfg, &rng)) { fprintf(stderr, "%s\n", irmae_error_detail()); return 1; }
    per = (size_t)cfg.in_c * 32 * 32;
    x = (float *)malloc(4 * (size_t)batch * per * sizeof(float));
    if (!x) return 1;
    for (i = 0; i < 4 * (size_t)batch * per; i++) x[i] = irmae_rng_uniform(&rng);
    for (s = 0; s < 3; s++) irmae_model_train_step(&m, NULL, x, batch);
    t = now();
    for (s = 0; s < steps; s++)
        if (irmae_model_train_step(&m, NULL, x + (size_t)(s % 4) * batch * per, batch)) {
            fprintf(stderr, "%s\n", irmae_error_detail());
            return 1;
        }
    t = now() - t;
    printf("%s batch=%d %.2f ms/step %.1f img/s loss %.5f\n", shapes ? "shapes" : "mnist", batch,
           1e3 * t / steps, steps * batch / t, m.last_loss);
    irmae_model_free(&m);
    free(x);
    return 0;
}
