/* shapes.c - AE versus IRMAE on the synthetic shapes data set.

   Trains a plain autoencoder (l = 0) and an IRMAE (l extra linear maps) on
   the same images in the same order, then compares the spectra of their
   latent codes on held-out images: IRMAE's collapses to a few directions
   (the data has 7 factors), the AE's does not.

   Build:  cc -O2 -fopenmp -I. examples/shapes.c -o shapes -lm
   Run:    ./shapes [--images N] [--epochs E] [--l L] [--lr LR] [--batch B]
                    [--val N] [--seed S] [--out DIR]
   Writes to DIR: recon.png (rows: input, AE, IRMAE), interp_ae.png,
   interp_irmae.png, spectra.csv, spectra.svg. */
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _WIN32
#include <direct.h>
#define make_dir(p) _mkdir(p)
#else
#include <sys/stat.h>
#define make_dir(p) mkdir(p, 0755)
#endif

typedef struct { int images, epochs, l, batch, val; float lr; unsigned long seed; const char *out; } options;

static int parse(int argc, char **argv, options *o)
{
    int i;
    for (i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--images")) o->images = atoi(v);
        else if (!strcmp(k, "--epochs")) o->epochs = atoi(v);
        else if (!strcmp(k, "--l")) o->l = atoi(v);
        else if (!strcmp(k, "--lr")) o->lr = (float)atof(v);
        else if (!strcmp(k, "--batch")) o->batch = atoi(v);
        else if (!strcmp(k, "--val")) o->val = atoi(v);
        else if (!strcmp(k, "--seed")) o->seed = strtoul(v, NULL, 10);
        else if (!strcmp(k, "--out")) o->out = v;
        else return 0;
    }
    return i == argc && o->images >= o->batch && o->epochs > 0 && o->l > 0 && o->batch > 0 &&
           o->batch <= 128 && o->val >= 16 && o->lr > 0;   /* val >= 16: the 10 shown + 4 pairs */
}

static double seconds(void) { return (double)time(NULL); }

static const char *path(const options *o, const char *name)
{
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s/%s", o->out, name);
    return buf;
}

#define TRY(call) do { int rc_ = (call); if (rc_) { fprintf(stderr, "shapes: %s\n", irmae_error_detail()); return 1; } } while (0)

/* The codes of n images through m, then their reconstructions into out. */
static int reconstruct(irmae_model *m, const float *x, int n, float *codes, float *out)
{
    int rc = irmae_model_encode(m, codes, x, n);
    return rc ? rc : irmae_model_decode(m, out, codes, n);
}

int main(int argc, char **argv)
{
    enum { SHOW = 10, PAIRS = 4, STEPS = 10 };   /* images per row of the PNG grids */
    options o = {20000, 3, 2, 32, 2000, 5e-4f, 1, "demo-out"};
    irmae_rng rng;
    irmae_dataset train, val;
    irmae_config cfg;
    irmae_model ae, ir;
    irmae_spectrum s_ae, s_ir;
    const irmae_spectrum *spectra[2];
    const char *names[2] = {"AE", "IRMAE"};
    int *order, epoch, i, j;
    size_t img;                                  /* floats per image: 3 x 32 x 32 */
    float *batch, *recon, *codes, *interp;
    char title[128];
    double t0 = seconds();

    if (!parse(argc, argv, &o)) {
        fprintf(stderr, "usage: %s [--images N] [--epochs E] [--l L] [--lr LR] [--batch B<=128] "
                        "[--val N>=16] [--seed S] [--out DIR]\n", argv[0]);
        return 2;
    }
    rng = irmae_rng_seed(o.seed);
    TRY(irmae_shapes_make(&train, NULL, o.images, &rng));
    TRY(irmae_shapes_make(&val, NULL, o.val, &rng));
    img = (size_t)train.c * train.h * train.w;

    /* the same initial encoder/decoder for both: seed each from a copy of rng */
    cfg = irmae_preset(IRMAE_PRESET_SHAPES);
    cfg.lr = o.lr;
    cfg.max_batch = o.batch;
    {
        irmae_rng r1 = rng, r2 = rng;
        TRY(irmae_model_init(&ae, &cfg, &r1));
        cfg.l = o.l;
        TRY(irmae_model_init(&ir, &cfg, &r2));
        rng = r2;
    }
    printf("shapes: %d training images, %d held out; AE and IRMAE l=%d, n=%d, lr %g, batch %d, "
           "%d epochs, pixels in [0,1]\n", o.images, o.val, o.l, cfg.n, o.lr, o.batch, o.epochs);

    order = (int *)malloc((size_t)o.images * sizeof(int));
    batch = (float *)malloc((size_t)o.batch * img * sizeof(float));
    recon = (float *)malloc((size_t)3 * SHOW * img * sizeof(float));        /* rows: input, AE, IRMAE */
    codes = (float *)malloc((size_t)SHOW * cfg.n * sizeof(float));
    interp = (float *)malloc((size_t)PAIRS * STEPS * img * sizeof(float));
    if (!order || !batch || !recon || !codes || !interp) { fprintf(stderr, "shapes: out of memory\n"); return 1; }

    for (epoch = 1; epoch <= o.epochs; epoch++) {
        double loss_ae = 0, loss_ir = 0;
        int steps = 0;
        TRY(irmae_shuffle(order, o.images, &rng));          /* a new order every epoch */
        for (i = 0; i + o.batch <= o.images; i += o.batch, steps++) {
            float l1, l2;
            TRY(irmae_dataset_gather(&train, batch, order + i, o.batch));
            TRY(irmae_model_train_step(&ae, &l1, batch, o.batch));   /* the same batch for both */
            TRY(irmae_model_train_step(&ir, &l2, batch, o.batch));
            loss_ae += l1; loss_ir += l2;
        }
        TRY(irmae_model_spectrum(&ae, &s_ae, val.x, val.n));
        TRY(irmae_model_spectrum(&ir, &s_ir, val.x, val.n));
        printf("epoch %d/%d  mse AE %.5f IRMAE %.5f  rank@1%% AE %d IRMAE %d  rank@0.1%% AE %d IRMAE %d  (%.0f s)\n",
               epoch, o.epochs, loss_ae / steps, loss_ir / steps, s_ae.rank_1pct, s_ir.rank_1pct,
               s_ae.rank_01pct, s_ir.rank_01pct, seconds() - t0);
        fflush(stdout);
        if (epoch < o.epochs) { irmae_spectrum_free(&s_ae); irmae_spectrum_free(&s_ir); }
    }

    /* spectra: the paper's Fig. 2 */
    printf("\nnormalised singular values of the code covariance (%d held-out images):\n", o.val);
    printf("  i      AE        IRMAE\n");
    for (i = 0; i < 12; i++) printf("%3d  %.6f  %.6f\n", i + 1, s_ae.normalized[i], s_ir.normalized[i]);
    printf("entropy rank: AE %.2f IRMAE %.2f\n", s_ae.entropy_rank, s_ir.entropy_rank);
    make_dir(o.out);
    spectra[0] = &s_ae; spectra[1] = &s_ir;
    snprintf(title, sizeof title, "shapes, n = %d: AE vs IRMAE (l = %d)", cfg.n, o.l);
    TRY(irmae_spectra_write_csv(path(&o, "spectra.csv"), spectra, names, 2));
    TRY(irmae_spectra_write_svg(path(&o, "spectra.svg"), spectra, names, 2, title));

    /* reconstructions of SHOW held-out images: input row, AE row, IRMAE row */
    memcpy(recon, val.x, (size_t)SHOW * img * sizeof(float));
    TRY(reconstruct(&ae, val.x, SHOW, codes, recon + (size_t)SHOW * img));
    TRY(reconstruct(&ir, val.x, SHOW, codes, recon + (size_t)2 * SHOW * img));
    TRY(irmae_png_write_grid(path(&o, "recon.png"), recon, 3 * SHOW, 3, 32, 32, SHOW, 2, 0.0f, 1.0f));

    /* interpolations between PAIRS pairs of held-out images, one row per pair */
    for (j = 0; j < 2; j++) {
        irmae_model *m = j == 0 ? &ae : &ir;
        for (i = 0; i < PAIRS; i++)
            TRY(irmae_model_interpolate(m, interp + (size_t)i * STEPS * img, irmae_dataset_image(&val, 2 * i),
                                        irmae_dataset_image(&val, 2 * i + 1), STEPS));
        TRY(irmae_png_write_grid(path(&o, j == 0 ? "interp_ae.png" : "interp_irmae.png"), interp, PAIRS * STEPS,
                                 3, 32, 32, STEPS, 2, 0.0f, 1.0f));
    }
    printf("wrote %s/{recon.png,interp_ae.png,interp_irmae.png,spectra.csv,spectra.svg}\n", o.out);
    printf("rank@1%% AE=%d IRMAE=%d rank@0.1%% AE=%d IRMAE=%d\n",
           s_ae.rank_1pct, s_ir.rank_1pct, s_ae.rank_01pct, s_ir.rank_01pct);

    irmae_spectrum_free(&s_ae); irmae_spectrum_free(&s_ir);
    irmae_model_free(&ae); irmae_model_free(&ir);
    irmae_dataset_free(&train); irmae_dataset_free(&val);
    free(order); free(batch); free(recon); free(codes); free(interp);
    irmae_sgemm_release(); /* the GEMM's packing buffers of this thread */
    return 0;
}
