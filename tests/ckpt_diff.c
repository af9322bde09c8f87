/* ckpt_diff.c - compares the parameters of two checkpoints of the same
   configuration (used by tests/test_mpi.sh).

     ckpt_diff A.ckpt B.ckpt TOL

   Prints the largest absolute difference of a parameter, the largest
   difference relative to that parameter's size (|a - b| / max(|a|, |b|)),
   how many parameters differ at all, and the step of each file.
   Exit status: 0 when both load, have the same configuration and step, and
   every |a - b| <= TOL; 1 otherwise; 2 on a usage error. */
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

int main(int argc, char **argv)
{
    irmae_model a, b;
    double tol, max_abs = 0.0, max_rel = 0.0;
    size_t i, differ = 0, worst = 0;
    int rc, status = 1;
    if (argc != 4) { fprintf(stderr, "usage: ckpt_diff A.ckpt B.ckpt TOL\n"); return 2; }
    tol = atof(argv[3]);
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    if ((rc = irmae_checkpoint_load(&a, NULL, argv[1])) || (rc = irmae_checkpoint_load(&b, NULL, argv[2]))) {
        fprintf(stderr, "ckpt_diff: %s\n", irmae_error_detail());
        goto done;
    }
    if (a.n_params != b.n_params || a.step != b.step) {
        fprintf(stderr, "ckpt_diff: %lu parameters at step %lld vs %lu at step %lld\n", (unsigned long)a.n_params,
                a.step, (unsigned long)b.n_params, b.step);
        goto done;
    }
    for (i = 0; i < a.n_params; i++) {
        double x = a.params[i], y = b.params[i], d = fabs(x - y), s = fmax(fabs(x), fabs(y));
        if (!(d == d)) d = INFINITY; /* a NaN on one side is infinitely wrong */
        if (d > 0) differ++;
        if (d > max_abs) { max_abs = d; worst = i; }
        if (s > 0 && d / s > max_rel) max_rel = d / s;
    }
    printf("step %lld: %lu parameters, %lu differ; max |a-b| %.3g (parameter %lu: %.9g vs %.9g), "
           "max |a-b|/max(|a|,|b|) %.3g; tolerance %.3g\n", a.step, (unsigned long)a.n_params,
           (unsigned long)differ, max_abs, (unsigned long)worst, a.params[worst], b.params[worst], max_rel, tol);
    status = max_abs <= tol ? 0 : 1;
done:
    irmae_model_free(&a);
    irmae_model_free(&b);
    return status;
}
