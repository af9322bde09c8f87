/* irmae.c - the command-line tool: train IRMAE / AE / VAE models, analyse
   them (spectrum, reconstructions, interpolations, samples, few-label
   classification, a Frechet distance) and export their weights.

   Build:  cc -O2 -std=c99 -Wall -Wextra -pedantic -fopenmp examples/irmae.c -o irmae -lm
           (the same line without -fopenmp works)
   Usage:  ./irmae help                 the tasks
           ./irmae <task> --help        every flag of a task, with defaults
           ./irmae train --data shapes --model irmae -l 2 --epochs 10 --out shapes.ckpt
           ./irmae spectrum --model shapes.ckpt --csv spectrum.csv --svg spectrum.svg

   Exit status: 0 done, 1 runtime error (the message carries the library's
   irmae_error_detail()), 2 usage error (unknown task or flag, bad value).

   Data sets (--data):
     shapes   generated from --seed: training images from one random stream,
              held-out images from another (3 x 32 x 32).
     mnist    --dir holds train-images-idx3-ubyte / train-labels-idx1-ubyte and
              t10k-images-idx3-ubyte / t10k-labels-idx1-ubyte (each optionally
              .gz); t10k is the held-out set. Resized 28 -> 32 (bilinear).
     images   --dir is a folder of PNG files, read in name order, converted to
              the model's channels and size (after an optional --crop); the
              last tenth of the files is held out and never trained on.

   Resuming: `train --resume FILE` restores the model, Adam's moments and the
   training loop's position from the checkpoint. Model flags given together
   with --resume must agree with the checkpoint; the data flags (--data,
   --dir, --count, --seed) are not stored and must be the same as in the
   first run. --grad-clip is stored: resuming keeps the checkpoint's, and a
   --grad-clip given with --resume replaces it (with a note on stderr).
   N steps straight and k steps + resume give bit-identical checkpoints.

   Several machines (MPI): built with mpicc -DIRMAE_MPI (make mpi ->
   ./irmae-mpi), `mpirun -np N ./irmae-mpi train <the same flags>` trains
   one model data-parallel: every rank loads the data and draws the same
   shuffle, takes its slice of every global batch of --batch images, and
   the gradients are summed over the ranks in a fixed order (irmae.h, "MPI").
   Rank 0 alone prints progress, computes the held-out rank and writes the
   checkpoint; every rank reads --resume (the train state is global, so a
   run can resume with a different N). Any rank failing during set-up (data,
   checkpoint) or a step stops every rank with exit status 1. Only train runs
   on several ranks; the other tasks run as one process.

   For tests only: the environment variable IRMAE_TEST_POISON=S puts a NaN
   into the minibatch of optimizer step S, to exercise the numeric guard;
   in the MPI build, IRMAE_MPI_TEST_FAIL_RANK=R makes rank R fail to load
   its training data (mnist/images: it reads a folder that does not exist;
   shapes: a plain error), to exercise the collective error exit. */
#define _POSIX_C_SOURCE 200809L
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <math.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef IRMAE_MPI
#include <mpi.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#define HAVE_ISATTY 1
#endif
#ifdef _WIN32
#include <direct.h>
#define make_dir(p) _mkdir(p)
#else
#include <sys/stat.h>
#define make_dir(p) mkdir(p, 0755)
#endif

/* ======================================================================== */
/* Tasks and flags                                                          */
/* ======================================================================== */

enum {
    T_TRAIN = 1 << 0, T_SPECTRUM = 1 << 1, T_RECON = 1 << 2, T_INTERP = 1 << 3,
    T_SAMPLE = 1 << 4, T_EXPORT = 1 << 5, T_CLASSIFY = 1 << 6, T_FRECHET = 1 << 7,
    T_ENCODE = 1 << 8, T_DECODE = 1 << 9, T_IMPORT = 1 << 10, T_PLOT = 1 << 11
};
#define T_ARCH (T_TRAIN | T_IMPORT) /* the flags that build a configuration */
#define T_DATA (T_TRAIN | T_SPECTRUM | T_RECON | T_INTERP | T_SAMPLE | T_CLASSIFY | T_FRECHET | T_ENCODE)
#define T_EVAL (T_SPECTRUM | T_RECON | T_INTERP | T_SAMPLE | T_FRECHET)
#define T_ALL 0xfff

#define MAX_MODELS 16
typedef struct strlist { const char *v[MAX_MODELS]; int n; } strlist;

/* Every flag of every task lands here. */
typedef struct options {
    /* data */
    const char *data, *dir;
    int count, crop, heldout;
    unsigned long long seed;
    int threads;
    /* model (train) */
    const char *preset, *kind, *range;
    int n, l;
    float beta, code_l1, code_l2;
    /* training */
    int epochs, batch, save_every;
    long long max_steps;
    float lr, grad_clip;
    const char *out, *resume, *plot_dir;
    /* analysis */
    const char *model;             /* the checkpoint the analysis tasks read */
    strlist models, names;
    const char *csv, *svg, *method;
    int cols, pairs, steps, fit, k;
    float span, reg;
    /* classification / Frechet distance */
    int labels, supervised, head_steps, head_batch, clf_epochs, train_count;
    const char *head;
    float head_lr;
    /* codes */
    int features;
    const char *codes, *weights;
    /* plot */
    strlist csvs, y_cols;
    const char *x_col, *title, *x_label, *y_label;
    float x_scale;
    int log_y, markers;
} options;

enum { F_INT, F_I64, F_U64, F_FLOAT, F_STR, F_CHOICE, F_LIST, F_SWITCH };

typedef struct flag_def {
    const char *name;     /* "--epochs" */
    unsigned tasks;       /* T_* mask of the tasks that take it */
    int type;             /* F_* */
    size_t off;           /* offsetof(options, field) */
    double lo, hi;        /* range of numbers (inclusive) */
    const char *choices;  /* F_CHOICE: "a|b|c" */
    const char *def;      /* default, parsed like a given value (NULL: none / see help) */
    const char *meta;     /* value name in the help */
    const char *help;
} flag_def;

#define OFF(f) offsetof(options, f)
#define BIG 1e9
static const flag_def FLAGS[] = {
    /* data */
    {"--data", (T_DATA & ~T_CLASSIFY) | T_IMPORT, F_CHOICE, OFF(data), 0, 0, "shapes|mnist|images", "shapes", "NAME",
     "data set: shapes (generated from --seed), mnist (IDX files in --dir), images (PNG files in --dir)"},
    {"--data", T_CLASSIFY, F_CHOICE, OFF(data), 0, 0, "mnist|shapes", "mnist", "NAME",
     "labelled data set: mnist (--dir) or shapes (label = circle/square)"},
    {"--dir", T_DATA, F_STR, OFF(dir), 0, 0, NULL, NULL, "DIR",
     "mnist: folder with train-*-ubyte[.gz] and t10k-*-ubyte[.gz]; images: folder of PNG files"},
    {"--crop", T_DATA, F_INT, OFF(crop), 0, 65536, NULL, "0", "N",
     "images: cut the centred N x N square before resizing (CelebA: 148)"},
    {"--seed", T_DATA, F_U64, OFF(seed), 0, 0, NULL, "1", "S",
     "random seed: shapes data, initialisation, data order, sampling"},
    {"--threads", T_ALL, F_INT, OFF(threads), 0, 4096, NULL, "0", "T",
     "OpenMP threads (0: one per CPU that the load average shows idle, or OMP_NUM_THREADS; ignored without OpenMP)"},

    /* train: data and model */
    {"--count", T_TRAIN, F_INT, OFF(count), 0, BIG, NULL, NULL, "N",
     "training images: shapes generates N (default 50000); mnist/images use the first N (default 0 = all)"},
    {"--heldout", T_TRAIN, F_INT, OFF(heldout), 0, BIG, NULL, "512", "N",
     "held-out images whose codes give the rank@1% printed after each epoch (0: skip)"},
    {"--preset", T_ARCH, F_CHOICE, OFF(preset), 0, 0, "shapes|mnist|celeba64", NULL, "NAME",
     "architecture (default: shapes for shapes, mnist for mnist, celeba64 for images)"},
    {"--n", T_ARCH, F_INT, OFF(n), 1, 65536, NULL, NULL, "N", "code size (default: the preset's, 32 or 128)"},
    {"--model", T_ARCH, F_CHOICE, OFF(kind), 0, 0, "ae|irmae|vae", "irmae", "KIND",
     "ae (l = 0), irmae (l linear maps), vae (BCE + beta KL, sigmoid output)"},
    {"-l", T_ARCH, F_INT, OFF(l), 0, 1024, NULL, NULL, "L",
     "irmae: number of n x n linear maps (default 2 with the shapes preset, 8 otherwise)"},
    {"--l", T_ARCH, F_INT, OFF(l), 0, 1024, NULL, NULL, "L", "same as -l"},
    {"--beta", T_ARCH, F_FLOAT, OFF(beta), 0, 1e30, NULL, "0.1", "B", "vae: weight of the KL term"},
    {"--code-l1", T_ARCH, F_FLOAT, OFF(code_l1), 0, 1e30, NULL, "0", "W", "ae/irmae: weight of a mean |z| penalty"},
    {"--code-l2", T_ARCH, F_FLOAT, OFF(code_l2), 0, 1e30, NULL, "0", "W", "ae/irmae: weight of a mean z^2 penalty"},
    {"--range", T_ARCH, F_CHOICE, OFF(range), 0, 0, "01|pm1", "01", "R",
     "pixel range: 01 = [0,1] (the paper's), pm1 = [-1,1] (not with vae)"},

    /* train: optimisation and checkpoints */
    {"--epochs", T_TRAIN, F_INT, OFF(epochs), 1, BIG, NULL, "100", "E",
     "epochs in total (with --resume: including those already done)"},
    {"--batch", T_ARCH, F_INT, OFF(batch), 1, 65536, NULL, NULL, "B",
     "minibatch size (default 32; with --resume: the checkpoint's)"},
    {"--lr", T_ARCH, F_FLOAT, OFF(lr), 0, 1e38, NULL, "1e-4", "LR", "Adam learning rate"},
    {"--grad-clip", T_ARCH, F_FLOAT, OFF(grad_clip), 0, 1e38, NULL, "0", "C",
     "scale gradients to global L2 norm <= C (0: off; stored in the checkpoint; given with --resume it replaces the stored value)"},
    {"--out", T_TRAIN, F_STR, OFF(out), 0, 0, NULL, NULL, "FILE",
     "checkpoint to write (default model.ckpt; with --resume: the resumed file)"},
    {"--save-every", T_TRAIN, F_INT, OFF(save_every), 0, BIG, NULL, "0", "STEPS",
     "also save every STEPS optimizer steps (a checkpoint is always saved at each epoch end)"},
    {"--max-steps", T_TRAIN, F_I64, OFF(max_steps), 0, 1e18, NULL, "0", "N",
     "stop (and save) once the model has taken N optimizer steps in total (0: no limit)"},
    {"--plot-dir", T_TRAIN, F_STR, OFF(plot_dir), 0, 0, NULL, NULL, "DIR",
     "after each epoch: DIR/spectrum.svg and DIR/recon.png of the held-out images, and a line of DIR/trajectory.csv "
     "(epoch, step, loss, rank@1%, rank@0.1%, entropy rank, held-out MSE, images/s); DIR is created"},
    {"--resume", T_TRAIN, F_STR, OFF(resume), 0, 0, NULL, NULL, "FILE",
     "continue exactly from this checkpoint (same data flags as the first run)"},

    /* analysis */
    {"--model", T_SPECTRUM, F_LIST, OFF(models), 0, 0, NULL, NULL, "FILE", "checkpoint (repeat to overlay up to 16 models)"},
    {"--name", T_SPECTRUM, F_LIST, OFF(names), 0, 0, NULL, NULL, "NAME", "legend name of the i-th --model (default: file name)"},
    {"--model", T_RECON | T_INTERP | T_SAMPLE | T_EXPORT | T_CLASSIFY | T_FRECHET | T_ENCODE | T_DECODE, F_STR, OFF(model), 0, 0, NULL,
     NULL, "FILE", "checkpoint (required)"},
    {"--count", T_SPECTRUM, F_INT, OFF(count), 2, BIG, NULL, "2000", "N", "held-out images whose codes are analysed"},
    {"--csv", T_SPECTRUM, F_STR, OFF(csv), 0, 0, NULL, NULL, "FILE", "write the normalised singular values as CSV"},
    {"--svg", T_SPECTRUM, F_STR, OFF(svg), 0, 0, NULL, NULL, "FILE", "write the spectra as an SVG plot"},
    {"--count", T_RECON, F_INT, OFF(count), 1, 100000, NULL, "16", "N", "held-out images to reconstruct"},
    {"--cols", T_RECON | T_SAMPLE | T_DECODE, F_INT, OFF(cols), 1, 1000, NULL, "8", "C", "images per grid row"},
    {"--pairs", T_INTERP, F_INT, OFF(pairs), 1, 10000, NULL, "4", "P", "pairs of held-out images (one grid row each)"},
    {"--steps", T_INTERP, F_INT, OFF(steps), 2, 1000, NULL, "10", "S", "images per interpolation, both ends included"},
    {"--method", T_SAMPLE, F_CHOICE, OFF(method), 0, 0, "mvg|gmm|pca", "mvg", "M",
     "mvg: one full-covariance Gaussian; gmm: mixture of --k Gaussians (EM); pca: grid over the first two axes"},
    {"--method", T_FRECHET, F_CHOICE, OFF(method), 0, 0, "mvg|gmm", "mvg", "M", "how the samples are drawn (as in sample)"},
    {"--count", T_SAMPLE, F_INT, OFF(count), 1, 100000, NULL, "64", "N",
     "images in the grid (pca: rounded up to whole rows of --cols)"},
    {"--fit", T_SAMPLE | T_FRECHET, F_INT, OFF(fit), 2, BIG, NULL, "2000", "N", "held-out images whose codes are fitted"},
    {"--k", T_SAMPLE | T_FRECHET, F_INT, OFF(k), 1, 1000, NULL, "4", "K", "gmm: mixture components"},
    {"--reg", T_SAMPLE | T_FRECHET, F_FLOAT, OFF(reg), 0, 1e30, NULL, "1e-6", "R",
     "mvg/gmm: added to the covariance diagonals"},
    {"--span", T_SAMPLE, F_FLOAT, OFF(span), 0, 1e6, NULL, "2", "S", "pca: the grid covers +-S standard deviations"},
    {"--out", T_RECON, F_STR, OFF(out), 0, 0, NULL, "reconstruct.png", "FILE",
     "PNG grid: rows of inputs, each followed by its row of reconstructions"},
    {"--out", T_INTERP, F_STR, OFF(out), 0, 0, NULL, "interpolate.png", "FILE", "PNG grid, one pair per row"},
    {"--out", T_SAMPLE, F_STR, OFF(out), 0, 0, NULL, "samples.png", "FILE", "PNG grid of samples"},
    {"--out", T_EXPORT, F_STR, OFF(out), 0, 0, NULL, "model.safetensors", "FILE", "safetensors file to write"},

    /* codes */
    {"--count", T_ENCODE, F_INT, OFF(count), 1, BIG, NULL, "2000", "N", "held-out images to encode"},
    {"--features", T_ENCODE, F_SWITCH, OFF(features), 0, 0, NULL, NULL, NULL,
     "write the encoder's features e (before the l maps; the VAE: the mean) instead of the codes z"},
    {"--out", T_ENCODE, F_STR, OFF(out), 0, 0, NULL, "codes.npy", "FILE", "NumPy .npy file of count x n float32"},
    {"--codes", T_DECODE, F_STR, OFF(codes), 0, 0, NULL, NULL, "FILE",
     "NumPy .npy of count x n float32 codes (little-endian f4, C order; numpy.save writes it)"},
    {"--out", T_DECODE, F_STR, OFF(out), 0, 0, NULL, "decoded.png", "FILE", "PNG grid of the decoded images"},
    {"--weights", T_IMPORT, F_STR, OFF(weights), 0, 0, NULL, NULL, "FILE",
     "safetensors file with the layout export writes (PyTorch names and shapes; F32, F16 or BF16)"},
    {"--out", T_IMPORT, F_STR, OFF(out), 0, 0, NULL, "model.ckpt", "FILE", "checkpoint to write (Adam's state fresh, step 0)"},

    /* classification */
    {"--labels", T_CLASSIFY, F_INT, OFF(labels), 1, BIG, NULL, "100", "N", "labelled training images (the first N)"},
    {"--head", T_CLASSIFY, F_CHOICE, OFF(head), 0, 0, "linear|mlp", "linear", "H",
     "linear: softmax regression; mlp: two hidden layers of n, ReLU, dropout 0.5"},
    {"--supervised", T_CLASSIFY, F_SWITCH, OFF(supervised), 0, 0, NULL, NULL, NULL,
     "the fully supervised reference: a fresh encoder of --model's architecture (initialised from --seed) "
     "trained together with the head on the labelled images, --head-steps steps at --head-lr"},
    {"--count", T_CLASSIFY, F_INT, OFF(count), 0, BIG, NULL, "0", "N",
     "test images (mnist: the first N of t10k, 0 = all; shapes: 0 = 2000)"},
    {"--head-steps", T_CLASSIFY, F_INT, OFF(head_steps), 1, BIG, NULL, "2000", "S", "Adam steps of the head"},
    {"--head-batch", T_CLASSIFY, F_INT, OFF(head_batch), 1, 65536, NULL, "64", "B", "head minibatch (at most --labels)"},
    {"--head-lr", T_CLASSIFY, F_FLOAT, OFF(head_lr), 0, 1e30, NULL, "1e-3", "LR", "head learning rate"},

    /* Frechet distance */
    {"--count", T_FRECHET, F_INT, OFF(count), 2, BIG, NULL, "1000", "N", "held-out images and samples compared"},
    {"--train-count", T_FRECHET, F_INT, OFF(train_count), 0, BIG, NULL, "0", "N",
     "images the feature classifier trains on (mnist: 0 = all; shapes: 0 = 10000)"},
    {"--clf-epochs", T_FRECHET, F_INT, OFF(clf_epochs), 1, 10000, NULL, "5", "E", "epochs of the feature classifier"},

    /* plot */
    {"--csv", T_PLOT, F_LIST, OFF(csvs), 0, 0, NULL, NULL, "FILE",
     "CSV with a header line (train --plot-dir's trajectory.csv, or any); one line per file, up to 16"},
    {"--name", T_PLOT, F_LIST, OFF(names), 0, 0, NULL, NULL, "NAME", "legend name of the i-th --csv (default: file name)"},
    {"--x", T_PLOT, F_STR, OFF(x_col), 0, 0, NULL, "step", "COL", "column of the x values"},
    {"--y", T_PLOT, F_LIST, OFF(y_cols), 0, 0, NULL, NULL, "COL",
     "column of the y values (default: rank_1pct); given once, for every --csv; given as often as --csv, the "
     "i-th for the i-th (two columns of one file: give the file twice)"},
    {"--x-scale", T_PLOT, F_FLOAT, OFF(x_scale), -1e30, 1e30, NULL, "1", "F",
     "multiply x by F (e.g. the batch size: steps -> images seen)"},
    {"--log-y", T_PLOT, F_SWITCH, OFF(log_y), 0, 0, NULL, NULL, NULL, "logarithmic y axis (values <= 0 left out)"},
    {"--markers", T_PLOT, F_SWITCH, OFF(markers), 0, 0, NULL, NULL, NULL, "a dot on every point"},
    {"--title", T_PLOT, F_STR, OFF(title), 0, 0, NULL, NULL, "TEXT", "title (default: y against x)"},
    {"--x-label", T_PLOT, F_STR, OFF(x_label), 0, 0, NULL, NULL, "TEXT", "x axis label (default: the column name)"},
    {"--y-label", T_PLOT, F_STR, OFF(y_label), 0, 0, NULL, NULL, "TEXT", "y axis label (default: the column name)"},
    {"--out", T_PLOT, F_STR, OFF(out), 0, 0, NULL, "plot.svg", "FILE", "SVG file to write"},
};
#define N_FLAGS ((int)(sizeof FLAGS / sizeof FLAGS[0]))

typedef struct task_def { const char *name; unsigned mask; const char *summary; } task_def;
static const task_def TASKS[] = {
    {"train", T_TRAIN, "train a model on shapes, MNIST or a folder of PNGs; checkpoints, exact resume"},
    {"spectrum", T_SPECTRUM, "normalised singular values of the code covariance; rank@1%, rank@0.1%, entropy rank, reconstruction MSE; CSV, SVG"},
    {"reconstruct", T_RECON, "held-out images and their reconstructions as a PNG grid"},
    {"interpolate", T_INTERP, "decode (1 - t) z_a + t z_b between pairs of held-out images, PNG grid"},
    {"sample", T_SAMPLE, "fit mvg / gmm / pca to held-out codes, decode samples, PNG grid"},
    {"export", T_EXPORT, "write the weights as safetensors (PyTorch names and layouts)"},
    {"encode", T_ENCODE, "codes (or --features) of held-out images as a NumPy .npy file (count x n float32)"},
    {"decode", T_DECODE, "decode the codes of a NumPy .npy file (count x n float32) into a PNG grid"},
    {"import", T_IMPORT, "a checkpoint from safetensors weights (e.g. trained in PyTorch); the configuration from the "
                         "file's metadata, else from train's architecture flags"},
    {"classify", T_CLASSIFY, "few-label classification on frozen encoder features; prints accuracy=<percent>"},
    {"frechet", T_FRECHET, "Frechet distance between held-out images and samples in the feature space of a "
                           "small MLP classifier trained here (not FID); prints frechet=, and frechet_recon= / frechet_real= as references"},
    {"plot", T_PLOT, "SVG line plot of two columns of CSV files (e.g. trajectory.csv of several runs: rank or MSE "
                     "against images seen), one line per file"},
};
#define N_TASKS ((int)(sizeof TASKS / sizeof TASKS[0]))

static const char *g_prog = "irmae";
/* MPI: this process's rank and the number of ranks (0 and 1 without MPI). */
static int g_rank = 0, g_size = 1;
static int g_quiet; /* set on ranks > 0 once errors are collective (rank 0 reports them) */
static char g_last_msg[1024]; /* the last runtime error message (MPI: rank 0 repeats a failed rank's) */
#ifdef IRMAE_MPI
static MPI_Comm g_comm;
#endif
static const task_def *g_task;
static unsigned char g_given[N_FLAGS];

/* ======================================================================== */
/* Messages                                                                 */
/* ======================================================================== */

static const char *task_name(void) { return g_task ? g_task->name : ""; }

/* A usage error: message, pointer to the help, exit status 2. */
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    if (g_rank != 0) return 2; /* the same flags on every rank: rank 0 speaks for all */
    fprintf(stderr, "%s%s%s: ", g_prog, g_task ? " " : "", task_name());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (g_task) fprintf(stderr, "\nRun '%s %s --help' for the flags.\n", g_prog, g_task->name);
    else fprintf(stderr, "\nRun '%s help' for the tasks.\n", g_prog);
    return 2;
}

/* A runtime error of ours: message, exit status 1. */
static int fail_msg(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_last_msg, sizeof g_last_msg, fmt, ap);
    va_end(ap);
    if (g_quiet) return 1;
    fprintf(stderr, "%s %s: %s\n", g_prog, task_name(), g_last_msg);
    return 1;
}

/* A runtime error of the library: what we were doing, then the detail
   (which starts with the error's name), or the name alone. */
static int fail_lib(int rc, const char *what)
{
    const char *d = irmae_error_detail();
    snprintf(g_last_msg, sizeof g_last_msg, "%s: %s", what, *d ? d : irmae_error_string(rc));
    if (g_quiet) return 1;
    fprintf(stderr, "%s %s: %s\n", g_prog, task_name(), g_last_msg);
    return 1;
}

/* In task functions: run a library call, on failure report it and clean up. */
#define TRY(call, what) do { int rc_ = (call); if (rc_) { status = fail_lib(rc_, what); goto done; } } while (0)
#define CHECK(cond, ...) do { if (!(cond)) { status = fail_msg(__VA_ARGS__); goto done; } } while (0)

/* ======================================================================== */
/* Flag parsing and help                                                    */
/* ======================================================================== */

static const task_def *find_task(const char *name)
{
    int i;
    for (i = 0; i < N_TASKS; i++) if (!strcmp(TASKS[i].name, name)) return &TASKS[i];
    return NULL;
}

static int find_flag(const char *name, size_t len)
{
    int i;
    for (i = 0; i < N_FLAGS; i++)
        if ((FLAGS[i].tasks & g_task->mask) && strlen(FLAGS[i].name) == len && !strncmp(FLAGS[i].name, name, len))
            return i;
    return -1;
}

/* Was the flag given on the command line (not just defaulted)? */
static int given(const char *name)
{
    int i;
    for (i = 0; i < N_FLAGS; i++)
        if (g_given[i] && !strcmp(FLAGS[i].name, name)) return 1;
    return 0;
}

static int choice_ok(const char *choices, const char *v)
{
    size_t len = strlen(v);
    const char *p = choices;
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && !strncmp(p, v, n)) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

/* Stores value v of flag f into o; 0 or 2 (usage error reported). */
static int set_flag(const flag_def *f, const char *v, options *o)
{
    char *end = NULL, *base = (char *)o + f->off;
    errno = 0;
    switch (f->type) {
    case F_INT: case F_I64: {
        long long x = strtoll(v, &end, 10);
        if (end == v || *end || errno) return usage_error("%s expects an integer, got '%s'", f->name, v);
        if ((double)x < f->lo || (double)x > f->hi)
            return usage_error("%s must be in [%.0f, %.0f], got %s", f->name, f->lo, f->hi, v);
        if (f->type == F_INT) *(int *)(void *)base = (int)x;
        else *(long long *)(void *)base = x;
        return 0;
    }
    case F_U64: {
        unsigned long long x;
        if (*v == '-' || *v == '+') return usage_error("%s expects an unsigned integer, got '%s'", f->name, v);
        x = strtoull(v, &end, 10);
        if (end == v || *end || errno) return usage_error("%s expects an unsigned integer, got '%s'", f->name, v);
        *(unsigned long long *)(void *)base = x;
        return 0;
    }
    case F_FLOAT: {
        double x = strtod(v, &end);
        if (end == v || *end || errno == ERANGE || !(x == x) || x > 1e300 || x < -1e300)
            return usage_error("%s expects a number, got '%s'", f->name, v);
        if (x < f->lo || x > f->hi) return usage_error("%s must be in [%g, %g], got %s", f->name, f->lo, f->hi, v);
        *(float *)(void *)base = (float)x;
        return 0;
    }
    case F_CHOICE:
        if (!choice_ok(f->choices, v)) return usage_error("%s must be one of %s, got '%s'", f->name, f->choices, v);
        *(const char **)(void *)base = v;
        return 0;
    case F_STR:
        if (!*v) return usage_error("%s expects a non-empty value", f->name);
        *(const char **)(void *)base = v;
        return 0;
    case F_LIST: {
        strlist *l = (strlist *)(void *)base;
        if (l->n >= MAX_MODELS) return usage_error("at most %d values of %s", MAX_MODELS, f->name);
        if (!*v) return usage_error("%s expects a non-empty value", f->name);
        l->v[l->n++] = v;
        return 0;
    }
    default:
        *(int *)(void *)base = 1;
        return 0;
    }
}

/* "  <left padded to 28> <text wrapped at 100 columns, indented>" */
static void print_wrapped(FILE *out, const char *left, const char *text)
{
    const int indent = 31, width = 100;
    int col;
    fprintf(out, "  %-28s", left);
    col = 2 + (int)strlen(left) > indent - 1 ? 2 + (int)strlen(left) : indent - 1;
    while (*text) {
        int len = (int)strcspn(text, " ");
        if (col + 1 + len > width && col > indent) { fprintf(out, "\n%*s", indent - 1, ""); col = indent - 1; }
        fprintf(out, " %.*s", len, text);
        col += 1 + len;
        text += len;
        while (*text == ' ') text++;
    }
    fputc('\n', out);
}

static void print_task_help(FILE *out, const task_def *t)
{
    int i;
    fprintf(out, "usage: %s %s [flags]\n  %s\n\nflags:\n", g_prog, t->name, t->summary);
    for (i = 0; i < N_FLAGS; i++) {
        const flag_def *f = &FLAGS[i];
        char left[64], text[512];
        if (!(f->tasks & t->mask)) continue;
        if (f->type == F_CHOICE) snprintf(left, sizeof left, "%s %s", f->name, f->choices);
        else if (f->meta) snprintf(left, sizeof left, "%s %s", f->name, f->meta);
        else snprintf(left, sizeof left, "%s", f->name);
        if (f->def) snprintf(text, sizeof text, "%s (default: %s)", f->help, f->def);
        else snprintf(text, sizeof text, "%s", f->help);
        print_wrapped(out, left, text);
    }
    fprintf(out, "  %-28s %s\n", "--help, -h", "this text");
    if (t->mask == T_TRAIN)
        fprintf(out, "\nProgress goes to stderr (one updating line; after each epoch the mean loss and the\n"
                     "rank@1%% of the held-out codes). A NaN or infinity stops training with exit status 1\n"
                     "and leaves the last checkpoint as it was.\n");
    fprintf(out, "\nExit status: 0 done, 1 runtime error, 2 usage error.\n");
}

static void print_help(FILE *out)
{
    int i;
    fprintf(out, "usage: %s <task> [flags]     (%s <task> --help lists the flags)\n\ntasks:\n", g_prog, g_prog);
    for (i = 0; i < N_TASKS; i++) fprintf(out, "  %-12s %s\n", TASKS[i].name, TASKS[i].summary);
    fprintf(out, "  %-12s %s\n", "help", "this text; 'help <task>' for a task's flags");
    fprintf(out, "\nexamples:\n"
                 "  %s train --data shapes --model irmae -l 2 --epochs 10 --out irmae.ckpt\n"
                 "  %s train --data shapes --model ae --epochs 10 --out ae.ckpt\n"
                 "  %s spectrum --model ae.ckpt --model irmae.ckpt --csv s.csv --svg s.svg\n"
                 "  %s train --data mnist --dir mnist/ -l 8 --epochs 20 --out mnist.ckpt\n"
                 "  %s classify --model mnist.ckpt --dir mnist/ --labels 100 --head mlp\n",
            g_prog, g_prog, g_prog, g_prog, g_prog);
}

/* Defaults, then argv[first..argc). 0 ok, 2 usage error, -1 help printed. */
static int parse_flags(int argc, char **argv, int first, options *o)
{
    int i, rc;
    memset(o, 0, sizeof *o);
    memset(g_given, 0, sizeof g_given);
    for (i = 0; i < N_FLAGS; i++)
        if ((FLAGS[i].tasks & g_task->mask) && FLAGS[i].def && (rc = set_flag(&FLAGS[i], FLAGS[i].def, o))) return rc;
    for (i = first; i < argc; i++) {
        const char *a = argv[i], *eq, *v;
        int f;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { if (g_rank == 0) print_task_help(stdout, g_task); return -1; }
        if (a[0] != '-') return usage_error("unexpected argument '%s' (flags start with -)", a);
        eq = strchr(a, '=');
        f = find_flag(a, eq ? (size_t)(eq - a) : strlen(a));
        if (f < 0) {
            if (eq) return usage_error("unknown flag '%.*s'", (int)(eq - a), a);
            return usage_error("unknown flag '%s'", a);
        }
        if (FLAGS[f].type == F_SWITCH) {
            if (eq) return usage_error("%s takes no value", FLAGS[f].name);
            v = "1";
        } else if (eq) {
            v = eq + 1;
        } else {
            if (i + 1 >= argc) return usage_error("%s needs a value (%s)", FLAGS[f].name, FLAGS[f].meta);
            v = argv[++i];
        }
        if (FLAGS[f].type != F_LIST && FLAGS[f].type != F_SWITCH && g_given[f])
            return usage_error("%s given twice", FLAGS[f].name);
        if ((rc = set_flag(&FLAGS[f], v, o))) return rc;
        g_given[f] = 1;
    }
    return 0;
}

/* ======================================================================== */
/* Small helpers: time, RNG streams, files                                  */
/* ======================================================================== */

static double now(void)
{
#if defined(_OPENMP)
    return omp_get_wtime();
#elif defined(CLOCK_MONOTONIC)
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#else
    return (double)clock() / CLOCKS_PER_SEC;
#endif
}

/* Independent random streams derived from --seed. */
enum { STREAM_INIT = 0, STREAM_ORDER = 1, STREAM_SHAPES_TRAIN = 2, STREAM_SHAPES_HELDOUT = 3, STREAM_TOOLS = 4 };
static irmae_rng stream(unsigned long long seed, int which)
{
    return irmae_rng_seed((uint64_t)seed * 8u + (uint64_t)which);
}

static int file_exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
#ifdef _WIN32
    const char *b = strrchr(path, '\\');
    if (b && (!s || b > s)) s = b;
#endif
    return s ? s + 1 : path;
}

/* --threads 0: one thread per CPU that other programs leave idle. OpenMP's
   threads spin while they wait for each other; when another program keeps
   a CPU busy, a team as large as the machine waits on its descheduled
   member at every barrier, and 2 threads can be many times slower than 1
   (seen here: spectrum took 5.5 minutes instead of 14 s). So the default
   counts the CPUs the 1-minute load average says are busy (Linux) and
   leaves them out; with OMP_NUM_THREADS set, OpenMP's own choice stands.
   --threads T always wins. */
static int auto_threads(void)
{
#ifdef _OPENMP
    int cpus = omp_get_num_procs(), busy = 0;
#if defined(__linux__)
    FILE *f = fopen("/proc/loadavg", "r");
    double load = 0.0;
    if (f) {
        if (fscanf(f, "%lf", &load) == 1 && load > 0.0) busy = (int)(load + 0.5);
        fclose(f);
    }
#endif
    return cpus - busy < 1 ? 1 : cpus - busy;
#else
    return 1;
#endif
}

static void set_threads(const options *o)
{
#ifdef _OPENMP
    if (o->threads > 0) omp_set_num_threads(o->threads);
    else if (!getenv("OMP_NUM_THREADS")) omp_set_num_threads(auto_threads());
#else
    (void)o;
    (void)auto_threads;
#endif
}

/* Loads a checkpoint into a new model (exit status 1 on failure). */
static int load_model(irmae_model *m, const char *path, irmae_train_state *ts)
{
    int rc;
    memset(m, 0, sizeof *m);
    if ((rc = irmae_checkpoint_load(m, ts, path))) return fail_lib(rc, "loading the model");
    return 0;
}

/* Writes images (model's shape) as a PNG grid in the model's pixel range. */
static int write_grid(const char *path, const irmae_model *m, const float *images, int count, int cols)
{
    float lo = m->cfg.range_pm1 ? -1.0f : 0.0f;
    int rc = irmae_png_write_grid(path, images, count, m->cfg.in_c, m->cfg.in_h, m->cfg.in_w, cols, 2, lo, 1.0f);
    if (rc) return fail_lib(rc, "writing the PNG grid");
    return 0;
}

static float *alloc_floats(size_t count, size_t per)
{
    if (per && count > (size_t)-1 / sizeof(float) / per) return NULL;
    return (float *)calloc(count ? count * per : 1, sizeof(float));
}

/* ======================================================================== */
/* Data sets by name                                                        */
/* ======================================================================== */

enum { SPLIT_TRAIN, SPLIT_HELDOUT };

/* dir/<base> or dir/<base>.gz into buf. 0 ok, 1 error reported. */
static int mnist_file(char *buf, size_t cap, const char *dir, const char *base)
{
    snprintf(buf, cap, "%s/%s", dir, base);
    if (file_exists(buf)) return 0;
    snprintf(buf, cap, "%s/%s.gz", dir, base);
    if (file_exists(buf)) return 0;
    return fail_msg("no %s/%s or %s.gz (the mnist data need --dir with the IDX files)", dir, base, base);
}

/* Loads one split of data set o->data in the shape and pixel range of cfg:
   count images (0: all; shapes needs count > 0). Exit status 0 / 1. */
static int load_split(irmae_dataset *ds, const options *o, const irmae_config *cfg, int split, int count)
{
    int rc;
#ifdef IRMAE_MPI
    options hooked;
#endif
    memset(ds, 0, sizeof *ds);
#ifdef IRMAE_MPI
    { /* test hook (see the top of this file): this rank cannot read its data */
        const char *fr = getenv("IRMAE_MPI_TEST_FAIL_RANK");
        if (fr && *fr && atoi(fr) == g_rank && split == SPLIT_TRAIN) {
            if (!strcmp(o->data, "shapes"))
                return fail_msg("cannot make the training data (test hook IRMAE_MPI_TEST_FAIL_RANK=%s)", fr);
            hooked = *o;
            hooked.dir = "/nonexistent/IRMAE_MPI_TEST_FAIL_RANK";
            o = &hooked;
        }
    }
#endif
    if (!strcmp(o->data, "shapes")) {
        irmae_rng r = stream(o->seed, split == SPLIT_TRAIN ? STREAM_SHAPES_TRAIN : STREAM_SHAPES_HELDOUT);
        if (cfg->in_c != 3 || cfg->in_h != 32 || cfg->in_w != 32)
            return fail_msg("the shapes data are 3 x 32 x 32 images; this model takes %d x %d x %d",
                            cfg->in_c, cfg->in_h, cfg->in_w);
        if ((rc = irmae_shapes_make(ds, NULL, count, &r))) return fail_lib(rc, "making the shapes data");
        if (cfg->range_pm1 && (rc = irmae_dataset_rescale(ds, -1.0f, 1.0f))) return fail_lib(rc, "rescaling");
    } else if (!strcmp(o->data, "mnist")) {
        char img[4096], lab[4096];
        const char *pre = split == SPLIT_TRAIN ? "train" : "t10k";
        char base[64];
        if (cfg->in_c != 1)
            return fail_msg("mnist images have 1 channel; this model takes %d", cfg->in_c);
        snprintf(base, sizeof base, "%s-images-idx3-ubyte", pre);
        if (mnist_file(img, sizeof img, o->dir, base)) return 1;
        snprintf(base, sizeof base, "%s-labels-idx1-ubyte", pre);
        if (mnist_file(lab, sizeof lab, o->dir, base)) return 1;
        if ((rc = irmae_mnist_load(ds, img, lab, cfg->in_h, cfg->in_w, cfg->range_pm1)))
            return fail_lib(rc, "loading mnist");
    } else {
        int hold, n;
        size_t per = (size_t)cfg->in_c * cfg->in_h * cfg->in_w;
        if ((rc = irmae_images_load(ds, o->dir, cfg->in_c, cfg->in_h, cfg->in_w, o->crop, cfg->range_pm1)))
            return fail_lib(rc, "loading the images");
        n = ds->n;
        hold = n / 10;
        if (hold == 0) {
            if (g_rank == 0)
                fprintf(stderr, "%s %s: note: only %d images, too few to hold a tenth out; "
                                "the held-out set is the training set\n", g_prog, task_name(), n);
        } else if (split == SPLIT_TRAIN) {
            ds->n = n - hold;
        } else {
            memmove(ds->x, ds->x + (size_t)(n - hold) * per, (size_t)hold * per * sizeof(float));
            ds->n = hold;
        }
    }
    if (count > 0 && count < ds->n) ds->n = count;
    return 0;
}

/* The data flags every data task needs. 0 ok, 2 usage error. */
static int check_data_flags(const options *o)
{
    if (strcmp(o->data, "shapes") && !o->dir) return usage_error("--data %s needs --dir", o->data);
    if (!strcmp(o->data, "shapes") && o->dir) return usage_error("--dir is for mnist/images, not shapes");
    if (o->crop && strcmp(o->data, "images")) return usage_error("--crop is for --data images");
    return 0;
}

/* ======================================================================== */
/* train                                                                    */
/* ======================================================================== */

static int preset_of(const char *name)
{
    return !strcmp(name, "shapes") ? IRMAE_PRESET_SHAPES : !strcmp(name, "mnist") ? IRMAE_PRESET_MNIST
                                                                                 : IRMAE_PRESET_CELEBA64;
}

/* The configuration the flags describe. 0 ok, 2 usage error. */
static int build_config(const options *o, irmae_config *cfg)
{
    const char *preset = o->preset ? o->preset : !strcmp(o->data, "shapes") ? "shapes"
                                               : !strcmp(o->data, "mnist") ? "mnist" : "celeba64";
    int vae = !strcmp(o->kind, "vae"), ae = !strcmp(o->kind, "ae");
    if (!strcmp(o->data, "shapes") && strcmp(preset, "shapes"))
        return usage_error("--data shapes (3 x 32 x 32) needs --preset shapes, not %s", preset);
    if (!strcmp(o->data, "mnist") && strcmp(preset, "mnist"))
        return usage_error("--data mnist (1 channel) needs --preset mnist, not %s", preset);
    *cfg = irmae_preset(preset_of(preset));
    if (given("--n")) cfg->n = o->n;
    if (given("-l") || given("--l")) {
        if (!strcmp(o->kind, "irmae") && o->l == 0) return usage_error("--model irmae needs -l >= 1 (-l 0 is --model ae)");
        if (!strcmp(o->kind, "irmae")) cfg->l = o->l;
        else if (o->l != 0) return usage_error("-l is for --model irmae (--model %s has no linear maps)", o->kind);
    } else if (!ae && !vae) {
        cfg->l = !strcmp(preset, "shapes") ? 2 : 8;
    }
    if (vae) {
        cfg->kind = IRMAE_KIND_VAE;
        if (!strcmp(o->range, "pm1")) return usage_error("--model vae needs --range 01 (its BCE loss wants [0,1] pixels)");
        if (o->code_l1 != 0.0f || o->code_l2 != 0.0f) return usage_error("--code-l1/--code-l2 are for ae/irmae");
    } else if (given("--beta")) {
        return usage_error("--beta is for --model vae");
    }
    cfg->vae_beta = o->beta;
    cfg->code_l1 = o->code_l1;
    cfg->code_l2 = o->code_l2;
    cfg->lr = o->lr;
    cfg->grad_clip = o->grad_clip;
    cfg->max_batch = o->batch;
    cfg->range_pm1 = !strcmp(o->range, "pm1");
    return 0;
}

/* With --resume the model comes from the checkpoint: every model flag given
   must agree with it. 0 ok, 2 usage error. */
static int check_resume_flags(const options *o, const irmae_config *c)
{
    irmae_config want;
    int rc;
    if ((rc = build_config(o, &want))) return rc;
    if (given("--preset") && (want.in_c != c->in_c || want.in_h != c->in_h || want.n_enc != c->n_enc ||
                              want.n_dec != c->n_dec))
        return usage_error("--preset %s does not match the checkpoint's architecture", o->preset);
    if (given("--n") && want.n != c->n) return usage_error("--n %d, but the checkpoint has n = %d", o->n, c->n);
    if (given("--model") && (want.kind != c->kind || (want.l > 0) != (c->l > 0)))
        return usage_error("--model %s does not match the checkpoint (%s, l = %d)", o->kind,
                           c->kind == IRMAE_KIND_VAE ? "vae" : c->l ? "irmae" : "ae", c->l);
    if ((given("-l") || given("--l")) && o->l != c->l) return usage_error("-l %d, but the checkpoint has l = %d", o->l, c->l);
    if (given("--beta") && want.vae_beta != c->vae_beta) return usage_error("--beta differs from the checkpoint's %g", c->vae_beta);
    if (given("--code-l1") && want.code_l1 != c->code_l1) return usage_error("--code-l1 differs from the checkpoint's %g", c->code_l1);
    if (given("--code-l2") && want.code_l2 != c->code_l2) return usage_error("--code-l2 differs from the checkpoint's %g", c->code_l2);
    if (given("--lr") && want.lr != c->lr) return usage_error("--lr %g differs from the checkpoint's %g", o->lr, c->lr);
    if (given("--range") && want.range_pm1 != c->range_pm1) return usage_error("--range %s differs from the checkpoint", o->range);
    if (given("--batch") && o->batch != c->max_batch)
        return usage_error("--batch %d, but the checkpoint was trained with batch %d", o->batch, c->max_batch);
    return 0;
}

static const char *kind_name(const irmae_config *c)
{
    return c->kind == IRMAE_KIND_VAE ? "VAE" : c->l ? "IRMAE" : c->code_l1 != 0.0f ? "AE+L1" : c->code_l2 != 0.0f ? "AE+L2" : "AE";
}

static void fmt_duration(char *buf, size_t cap, double s)
{
    if (!(s >= 0) || s > 1e8) snprintf(buf, cap, "?");
    else if (s < 60) snprintf(buf, cap, "%.0fs", s);
    else if (s < 3600) snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
    else snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
}

/* The progress line on stderr: updated in place on a terminal (at most 5
   times a second), a plain line every 30 s otherwise. */
typedef struct progress { double t0, last; int tty; long long done, total; int batch; } progress;

static void progress_show(progress *p, long long epoch, int epochs, int b, int spe, double loss, int force)
{
    double t = now(), rate, eta;
    char e[32];
    if (!force && t - p->last < (p->tty ? 0.2 : 30.0)) return;
    p->last = t;
    rate = p->done / (t - p->t0 > 1e-9 ? t - p->t0 : 1e-9);
    eta = rate > 0 ? (double)(p->total - p->done) / rate : -1;
    fmt_duration(e, sizeof e, eta);
    fprintf(stderr, "%sepoch %lld/%d  step %d/%d  %.0f img/s  ETA %s  loss %.6f%s", p->tty ? "\r\033[K" : "",
            epoch + 1, epochs, b, spe, rate * p->batch, e, loss, p->tty ? "" : "\n");
    fflush(stderr);
}

/* rank@1% of the codes of the held-out images (-1 if not available). */
static int heldout_rank(irmae_model *m, const irmae_dataset *held, double *entropy)
{
    irmae_spectrum s;
    int r;
    if (held->n < 2 || irmae_model_spectrum(m, &s, held->x, held->n)) return -1;
    r = s.rank_1pct;
    *entropy = s.entropy_rank;
    irmae_spectrum_free(&s);
    return r;
}

static int recon_mse(irmae_model *m, const irmae_dataset *set, double *mse);

/* --plot-dir: the held-out images' spectrum (SVG) and reconstructions (PNG,
   the first 8 over their reconstructions), and one line of the trajectory
   CSV (the header when the file is new). Returns 0 or 1 (reported). */
static int plot_epoch(const options *o, irmae_model *m, const irmae_dataset *held, long long epoch, double loss,
                      double img_per_s)
{
    char path[1200], title[96];
    irmae_spectrum s;
    const irmae_spectrum *sp[1];
    const char *names[1] = { "held-out codes" };
    size_t per = (size_t)m->cfg.in_c * m->cfg.in_h * m->cfg.in_w;
    int k = held->n < 8 ? held->n : 8, rc, status = 0, fresh;
    float *grid = alloc_floats((size_t)2 * k, per), *z = alloc_floats((size_t)k, (size_t)m->cfg.n);
    double mse = 0.0;
    FILE *f;
    if (!grid || !z) { free(grid); free(z); return fail_msg("out of memory"); }
    if ((rc = irmae_model_spectrum(m, &s, held->x, held->n))) { free(grid); free(z); return fail_lib(rc, "the held-out spectrum"); }
    sp[0] = &s;
    snprintf(title, sizeof title, "%s n = %d, epoch %lld: rank@1%% %d, entropy rank %.2f", kind_name(&m->cfg), m->cfg.n,
             epoch, s.rank_1pct, s.entropy_rank);
    snprintf(path, sizeof path, "%s/spectrum.svg", o->plot_dir);
    if ((rc = irmae_spectra_write_svg(path, sp, names, 1, title))) status = fail_lib(rc, "writing the spectrum");
    memcpy(grid, held->x, (size_t)k * per * sizeof(float));
    if (!status && ((rc = irmae_model_encode(m, z, held->x, k)) || (rc = irmae_model_decode(m, grid + (size_t)k * per, z, k))))
        status = fail_lib(rc, "reconstructing the held-out images");
    snprintf(path, sizeof path, "%s/recon.png", o->plot_dir);
    if (!status) status = write_grid(path, m, grid, 2 * k, k);
    if (!status) status = recon_mse(m, held, &mse);
    snprintf(path, sizeof path, "%s/trajectory.csv", o->plot_dir);
    f = fopen(path, "rb");
    fresh = f == NULL;
    if (f) fclose(f);
    if (!status && (f = fopen(path, "a")) != NULL) {
        if (fresh) fprintf(f, "epoch,step,loss,rank_1pct,rank_01pct,entropy_rank,heldout_mse,images_per_s\n");
        fprintf(f, "%lld,%lld,%.8g,%d,%d,%.6g,%.8g,%.1f\n", epoch, m->step, loss, s.rank_1pct, s.rank_01pct,
                s.entropy_rank, mse, img_per_s);
        if (fclose(f) != 0) status = fail_msg("cannot write %s", path);
    } else if (!status) status = fail_msg("cannot open %s", path);
    irmae_spectrum_free(&s);
    free(grid); free(z);
    return status;
}

/* MPI: every rank passes its status and gets the first failing rank's
   (0 if none); without MPI the status itself. */
static int all_agree(int status, int *first)
{
#ifdef IRMAE_MPI
    if (g_size > 1) return irmae_mpi_agree(first, status, g_comm);
#endif
    if (first) *first = status ? 0 : -1;
    return status;
}

/* Rank 0 writes the checkpoint; every rank learns whether it worked. */
static int save_checkpoint(const char *out, const irmae_model *m, const irmae_train_state *ts)
{
    int rc = g_rank == 0 ? irmae_checkpoint_save(out, m, ts) : 0;
    return all_agree(rc, NULL);
}

/* One optimizer step on the global batch (this rank's slice x of lb images). */
static int train_step(irmae_model *m, const float *x, int batch, float *loss)
{
#ifdef IRMAE_MPI
    if (g_size > 1) return irmae_model_train_step_mpi(m, loss, x, batch, g_comm);
#endif
    return irmae_model_train_step(m, loss, x, batch);
}

static int task_train(options *o)
{
    irmae_config cfg;
    irmae_model m;
    irmae_train_state ts, cur;
    irmae_dataset train, held;
    irmae_rng data_rng;
    progress pr;
    int status = 0, rc, batch = 0, spe = 0, *perm = NULL, stop = 0, off = 0, lb = 0, first;
    float *xb = NULL;
    const char *out = o->out ? o->out : o->resume ? o->resume : "model.ckpt";
    const char *poison_env = getenv("IRMAE_TEST_POISON");
    long long poison = poison_env ? atoll(poison_env) : 0, epoch, steps_run = 0;
    double t_start = now();

    memset(&m, 0, sizeof m);
    memset(&train, 0, sizeof train);
    memset(&held, 0, sizeof held);
    memset(&ts, 0, sizeof ts);
    memset(&cur, 0, sizeof cur);
    memset(&data_rng, 0, sizeof data_rng);
    /* Set-up: a failure on any rank goes to `agree`, where every rank learns of it. */
    if ((status = check_data_flags(o))) goto agree;
    if (!o->resume && !given("--batch")) o->batch = 32;
    if (o->resume) {
        irmae_config stored;
        if ((rc = irmae_checkpoint_read_config(&stored, o->resume))) { status = fail_lib(rc, "reading the checkpoint"); goto agree; }
        if (!given("--batch")) o->batch = stored.max_batch;
        if (!given("--model")) o->kind = stored.kind == IRMAE_KIND_VAE ? "vae" : stored.l ? "irmae" : "ae";
        if ((status = check_resume_flags(o, &stored))) goto agree;
    } else if ((status = build_config(o, &cfg))) {
        goto agree;
    }
    if (!strcmp(o->data, "shapes") && !o->count) o->count = 50000;
    if (!strcmp(o->data, "shapes") && o->count < o->batch) {
        status = usage_error("--count %d is smaller than one batch (%d)", o->count, o->batch);
        goto agree;
    }
    set_threads(o);

    /* the model: fresh from the flags, or the checkpoint */
    if (o->resume) {
        if (load_model(&m, o->resume, &ts)) { status = 1; goto agree; }
        if (given("--grad-clip") && o->grad_clip != m.cfg.grad_clip) { /* stored; a flag on resume overrides it */
            if (g_rank == 0)
                fprintf(stderr, "note: --grad-clip %g replaces the checkpoint's %g from here on\n", o->grad_clip,
                        m.cfg.grad_clip);
            m.cfg.grad_clip = o->grad_clip;
        }
        data_rng = ts.data_rng;
        if (g_rank == 0)
            fprintf(stderr, "resuming %s at epoch %lld, batch %lld (step %lld)\n", o->resume, ts.epoch, ts.batch, m.step);
    } else {
        irmae_rng r = stream(o->seed, STREAM_INIT);
        if ((rc = irmae_model_init(&m, &cfg, &r))) { status = fail_lib(rc, "building the model"); goto agree; }
        data_rng = stream(o->seed, STREAM_ORDER);
    }
    batch = m.cfg.max_batch;
    /* this rank's slice [off, off + lb) of every global batch (all of it with one process) */
#ifdef IRMAE_MPI
    irmae_mpi_shard(&off, &lb, batch, g_rank, g_size);
#else
    lb = batch;
#endif

    if (load_split(&train, o, &m.cfg, SPLIT_TRAIN, o->count)) { status = 1; goto agree; }
    if (o->plot_dir) {
        if (o->heldout < 2) { status = usage_error("--plot-dir needs --heldout 2 or more"); goto agree; }
        if (g_rank == 0) (void)make_dir(o->plot_dir); /* may exist; a failure shows when the files are written */
    }
    /* the held-out rank is rank 0's job */
    if (o->heldout > 0 && g_rank == 0 && load_split(&held, o, &m.cfg, SPLIT_HELDOUT, o->heldout)) { status = 1; goto agree; }
    spe = train.n / batch;
    if (spe <= 0) { status = fail_msg("%d training images are fewer than one batch of %d", train.n, batch); goto agree; }
    if (ts.batch > spe) {
        status = fail_msg("the checkpoint stopped at batch %lld of an epoch, but this data set has %d batches "
                          "per epoch (resume with the same --data, --dir, --count, --seed as the first run)", ts.batch, spe);
        goto agree;
    }
    perm = (int *)calloc((size_t)train.n, sizeof(int));
    xb = alloc_floats((size_t)(lb > 0 ? lb : 1), (size_t)m.cfg.in_c * m.cfg.in_h * m.cfg.in_w);
    if (!perm || !xb) status = fail_msg("out of memory");
agree:
    status = all_agree(status, &first);
    if (status) {
#ifdef IRMAE_MPI
        if (g_size > 1 && first > 0) { /* rank 0 repeats the message: output of the other ranks can be cut short */
            MPI_Bcast(g_last_msg, (int)sizeof g_last_msg, MPI_CHAR, first, g_comm);
            g_last_msg[sizeof g_last_msg - 1] = 0;
            if (g_rank == 0)
                fprintf(stderr, "%s train: rank %d of %d failed: %s; every rank stops\n", g_prog, first, g_size,
                        status == 2 ? "usage error" : g_last_msg);
        }
#endif
        goto done;
    }
    g_quiet = g_rank != 0; /* from here on every error is collective: rank 0 reports it */

    if (g_rank == 0) {
        fprintf(stderr, "train: %s, %d images %dx%dx%d in [%s], %s n=%d l=%d, %lu parameters, batch %d, lr %g, "
                "%d epochs, %d steps/epoch, checkpoint %s", o->data, train.n, m.cfg.in_c, m.cfg.in_h, m.cfg.in_w,
                m.cfg.range_pm1 ? "-1,1" : "0,1", kind_name(&m.cfg), m.cfg.n, m.cfg.l, (unsigned long)m.n_params,
                batch, m.cfg.lr, o->epochs, spe, out);
        if (g_size > 1) fprintf(stderr, ", %d MPI ranks (%d images per rank and step)", g_size, lb);
        fputc('\n', stderr);
    }

    memset(&pr, 0, sizeof pr);
    pr.t0 = pr.last = now();
#ifdef HAVE_ISATTY
    pr.tty = isatty(2);
#endif
    pr.batch = batch;
    pr.total = ts.epoch < o->epochs ? (o->epochs - ts.epoch) * (long long)spe - ts.batch : 0;
    if (o->max_steps > 0 && o->max_steps - m.step < pr.total) pr.total = o->max_steps - m.step > 0 ? o->max_steps - m.step : 0;

    for (epoch = ts.epoch; epoch < o->epochs && !stop; epoch++) {
        irmae_rng r = data_rng; /* the state at the start of the epoch, before its shuffle */
        int b = epoch == ts.epoch ? (int)ts.batch : 0, done_here = 0, rank;
        double loss_sum = 0.0, ent = 0.0, t_epoch = now();
        if (o->max_steps > 0 && m.step >= o->max_steps) break;
        TRY(irmae_shuffle(perm, train.n, &r), "shuffling"); /* the same permutation on every rank */
        for (; b < spe; b++) {
            float loss = 0.0f;
            rc = lb > 0 ? irmae_dataset_gather(&train, xb, perm + (size_t)b * batch + off, lb) : 0;
            rc = all_agree(rc, NULL);
            if (rc) { status = fail_lib(rc, "gathering a batch"); goto done; }
            if (poison > 0 && m.step + 1 == poison && off == 0 && lb > 0) xb[0] = (float)NAN; /* global image 0 */
            rc = train_step(&m, xb, batch, &loss);
            if (rc) {
                if (g_rank == 0) { /* the error is the same on every rank */
                    if (pr.tty) fputc('\n', stderr);
                    fprintf(stderr, "%s train: epoch %lld, batch %d: %s\n", g_prog, epoch + 1, b + 1,
                            *irmae_error_detail() ? irmae_error_detail() : irmae_error_string(rc));
                    fprintf(stderr, "%s train: stopped; %s was not overwritten (it holds the last good state, if any)\n",
                            g_prog, out);
                }
                status = 1;
                goto done;
            }
            steps_run++; pr.done++; done_here++;
            loss_sum += loss;
            if (g_rank == 0) progress_show(&pr, epoch, o->epochs, b + 1, spe, loss_sum / done_here, 0);
            if (b + 1 < spe) { /* mid-epoch saves; the epoch end saves below */
                int limit = o->max_steps > 0 && m.step >= o->max_steps;
                if (limit || (o->save_every > 0 && m.step % o->save_every == 0)) {
                    cur.epoch = epoch; cur.batch = b + 1; cur.data_rng = data_rng;
                    TRY(save_checkpoint(out, &m, &cur), "saving the checkpoint");
                }
                if (limit) { stop = 1; break; }
            }
        }
        if (stop) break;
        t_epoch = now() - t_epoch; /* the epoch's training time */
        data_rng = r; /* the next epoch starts from the state after this shuffle */
        cur.epoch = epoch + 1; cur.batch = 0; cur.data_rng = data_rng;
        TRY(save_checkpoint(out, &m, &cur), "saving the checkpoint");
        if (g_rank == 0) {
            rank = heldout_rank(&m, &held, &ent);
            if (pr.tty) fputs("\r\033[K", stderr); /* clear the progress line */
            fprintf(stderr, "epoch %lld/%d  mean loss %.6f  ", epoch + 1, o->epochs, done_here ? loss_sum / done_here : 0.0);
            if (rank >= 0) fprintf(stderr, "rank@1%% %d  entropy rank %.2f (%d held-out)  ", rank, ent, held.n);
            fprintf(stderr, "%.1f s\n", t_epoch);
            if (o->plot_dir && plot_epoch(o, &m, &held, epoch + 1, done_here ? loss_sum / done_here : 0.0,
                                          (double)done_here * batch / (t_epoch + 1e-9))) { status = 1; goto done; }
        }
    }
    if (steps_run == 0 && !stop) { /* nothing left to train: still leave a checkpoint at --out */
        cur.epoch = ts.epoch; cur.batch = ts.batch; cur.data_rng = data_rng;
        if (!o->resume || strcmp(out, o->resume)) TRY(save_checkpoint(out, &m, &cur), "saving the checkpoint");
        if (g_rank == 0) fprintf(stderr, "nothing to do: the checkpoint is at epoch %lld of %d\n", ts.epoch, o->epochs);
    }
    if (stop && pr.tty && g_rank == 0) fputc('\n', stderr);
    if (g_rank == 0)
        printf("saved %s: %s, step %lld, %lld steps in %.1f s%s\n", out, kind_name(&m.cfg), m.step, steps_run,
               now() - t_start, stop ? " (stopped by --max-steps)" : "");
done:
    free(perm);
    free(xb);
    irmae_dataset_free(&train);
    irmae_dataset_free(&held);
    irmae_model_free(&m);
    return status;
}

/* ======================================================================== */
/* spectrum, reconstruct, interpolate, sample, export                       */
/* ======================================================================== */

/* Mean squared reconstruction error (decode(encode(x)) vs x, per pixel, in
   the model's pixel range) over a set, in chunks of 256 images. */
static int recon_mse(irmae_model *m, const irmae_dataset *set, double *mse)
{
    size_t per = (size_t)m->cfg.in_c * m->cfg.in_h * m->cfg.in_w, k;
    float *z = alloc_floats(256, (size_t)m->cfg.n), *y = alloc_floats(256, per);
    double sum = 0.0;
    int i, rc = 0;
    *mse = 0.0;
    if (!z || !y) { free(z); free(y); return fail_msg("out of memory"); }
    for (i = 0; i < set->n && !rc; i += 256) {
        int cnt = set->n - i < 256 ? set->n - i : 256;
        const float *x = set->x + (size_t)i * per;
        if ((rc = irmae_model_encode(m, z, x, cnt)) || (rc = irmae_model_decode(m, y, z, cnt))) {
            rc = fail_lib(rc, "reconstructing the held-out images");
            break;
        }
        for (k = 0; k < (size_t)cnt * per; k++) sum += ((double)y[k] - x[k]) * ((double)y[k] - x[k]);
    }
    *mse = set->n ? sum / ((double)set->n * (double)per) : 0.0;
    free(z); free(y);
    return rc;
}

static int task_spectrum(const options *o)
{
    irmae_spectrum spec[MAX_MODELS];
    const irmae_spectrum *sp[MAX_MODELS];
    const char *names[MAX_MODELS];
    irmae_model m;
    irmae_dataset held;
    irmae_config held_cfg;
    int i, rc, status = 0, got = 0;
    double mse = 0.0;

    memset(spec, 0, sizeof spec);
    memset(&m, 0, sizeof m);
    memset(&held, 0, sizeof held);
    memset(&held_cfg, 0, sizeof held_cfg);
    if (o->models.n == 0) return usage_error("needs --model FILE (one or more)");
    if (o->names.n > o->models.n) return usage_error("%d --name for %d --model", o->names.n, o->models.n);
    if ((rc = check_data_flags(o))) return rc;
    set_threads(o);
    for (i = 0; i < o->models.n; i++) {
        names[i] = i < o->names.n ? o->names.v[i] : base_name(o->models.v[i]);
        if (load_model(&m, o->models.v[i], NULL)) { status = 1; goto done; }
        /* models of the same image shape and range share the held-out images */
        if (!held.x || held_cfg.in_c != m.cfg.in_c || held_cfg.in_h != m.cfg.in_h || held_cfg.in_w != m.cfg.in_w ||
            held_cfg.range_pm1 != m.cfg.range_pm1) {
            irmae_dataset_free(&held);
            if (load_split(&held, o, &m.cfg, SPLIT_HELDOUT, o->count)) { status = 1; goto done; }
            held_cfg = m.cfg;
        }
        CHECK(held.n >= 2, "need at least 2 held-out images, have %d", held.n);
        TRY(irmae_model_spectrum(&m, &spec[i], held.x, held.n), "computing the spectrum");
        got = i + 1;
        sp[i] = &spec[i];
        if (recon_mse(&m, &held, &mse)) { status = 1; goto done; }
        printf("%s: %s n=%d l=%d  rank@1%%=%d  rank@0.1%%=%d  entropy_rank=%.3f  mse=%.6f  (%d held-out images)\n",
               names[i], kind_name(&m.cfg), m.cfg.n, m.cfg.l, spec[i].rank_1pct, spec[i].rank_01pct,
               spec[i].entropy_rank, mse, held.n);
        irmae_model_free(&m);
    }
    if (o->csv) {
        TRY(irmae_spectra_write_csv(o->csv, sp, names, got), "writing the CSV");
        printf("wrote %s\n", o->csv);
    }
    if (o->svg) {
        char title[160];
        snprintf(title, sizeof title, "Normalised singular values of the code covariance (%s, %d held-out images)",
                 o->data, held.n);
        TRY(irmae_spectra_write_svg(o->svg, sp, names, got, title), "writing the SVG");
        printf("wrote %s\n", o->svg);
    }
done:
    for (i = 0; i < got; i++) irmae_spectrum_free(&spec[i]);
    irmae_model_free(&m);
    irmae_dataset_free(&held);
    return status;
}

/* Common start of the tasks on one model and its held-out images. */
static int open_model_and_data(const options *o, irmae_model *m, irmae_dataset *held, int count)
{
    int rc;
    memset(m, 0, sizeof *m);
    memset(held, 0, sizeof *held);
    if (!o->model) return usage_error("needs --model FILE");
    if ((rc = check_data_flags(o))) return rc;
    set_threads(o);
    if (load_model(m, o->model, NULL)) return 1;
    if (load_split(held, o, &m->cfg, SPLIT_HELDOUT, count)) return 1;
    return 0;
}

static int task_reconstruct(const options *o)
{
    irmae_model m;
    irmae_dataset held;
    float *grid = NULL, *z = NULL;
    size_t per, k, cells;
    double mse = 0.0;
    int status, count, cols, rows, r;

    if ((status = open_model_and_data(o, &m, &held, o->count))) goto done;
    count = held.n;
    cols = o->cols < count ? o->cols : count;
    rows = (count + cols - 1) / cols;
    per = (size_t)m.cfg.in_c * m.cfg.in_h * m.cfg.in_w;
    cells = (size_t)rows * 2 * cols;   /* grid rows alternate: inputs, their reconstructions */
    grid = alloc_floats(cells, per);
    z = alloc_floats((size_t)count, (size_t)m.cfg.n);
    CHECK(grid && z, "out of memory");
    if (m.cfg.range_pm1) for (k = 0; k < cells * per; k++) grid[k] = -1.0f; /* empty cells black */
    TRY(irmae_model_encode(&m, z, held.x, count), "encoding");
    for (r = 0; r < rows; r++) {
        int n = count - r * cols < cols ? count - r * cols : cols;
        float *in = grid + (size_t)(2 * r) * cols * per, *rec = in + (size_t)cols * per;
        memcpy(in, held.x + (size_t)r * cols * per, (size_t)n * per * sizeof(float));
        TRY(irmae_model_decode(&m, rec, z + (size_t)r * cols * m.cfg.n, n), "decoding");
    }
    if (write_grid(o->out, &m, grid, (int)cells, cols) || recon_mse(&m, &held, &mse)) { status = 1; goto done; }
    printf("reconstructed %d held-out images: mse=%.6f; wrote %s\n", count, mse, o->out);
done:
    free(grid);
    free(z);
    irmae_dataset_free(&held);
    irmae_model_free(&m);
    return status;
}

static int task_interpolate(const options *o)
{
    irmae_model m;
    irmae_dataset held;
    float *all = NULL;
    size_t per;
    int status, i;

    if ((status = open_model_and_data(o, &m, &held, 2 * o->pairs))) goto done;
    CHECK(held.n >= 2 * o->pairs, "%d pairs need %d held-out images, have %d", o->pairs, 2 * o->pairs, held.n);
    per = (size_t)m.cfg.in_c * m.cfg.in_h * m.cfg.in_w;
    all = alloc_floats((size_t)o->pairs * o->steps, per);
    CHECK(all, "out of memory");
    for (i = 0; i < o->pairs; i++)
        TRY(irmae_model_interpolate(&m, all + (size_t)i * o->steps * per, irmae_dataset_image(&held, 2 * i),
                                    irmae_dataset_image(&held, 2 * i + 1), o->steps), "interpolating");
    if (write_grid(o->out, &m, all, o->pairs * o->steps, o->steps)) { status = 1; goto done; }
    printf("interpolated %d pairs in %d steps; wrote %s\n", o->pairs, o->steps, o->out);
done:
    free(all);
    irmae_dataset_free(&held);
    irmae_model_free(&m);
    return status;
}

/* count codes (count x n) drawn as --method says from a model fitted to the
   codes of held-out images. 0 ok, else exit status (reported). */
static int sample_codes(const options *o, irmae_model *m, const irmae_dataset *held, float *out, int count,
                        int rows, int cols)
{
    irmae_gauss g;
    irmae_gmm mix;
    irmae_pca p;
    irmae_rng rng = stream(o->seed, STREAM_TOOLS);
    float *z = alloc_floats((size_t)held->n, (size_t)m->cfg.n);
    int status = 0, n = m->cfg.n;
    memset(&g, 0, sizeof g);
    memset(&mix, 0, sizeof mix);
    memset(&p, 0, sizeof p);
    CHECK(z, "out of memory");
    CHECK(held->n >= 2, "need at least 2 held-out images to fit, have %d", held->n);
    TRY(irmae_model_encode(m, z, held->x, held->n), "encoding");
    if (!strcmp(o->method, "mvg")) {
        TRY(irmae_gauss_fit(&g, z, held->n, n, o->reg), "fitting the Gaussian");
        TRY(irmae_gauss_sample(&g, out, count, &rng), "sampling");
        printf("mvg: one Gaussian fitted to %d codes (n = %d)\n", held->n, n);
    } else if (!strcmp(o->method, "gmm")) {
        CHECK(o->k <= held->n, "--k %d is more than the %d fitted codes", o->k, held->n);
        TRY(irmae_gmm_fit(&mix, z, held->n, n, o->k, 200, 1e-6, o->reg, &rng), "fitting the mixture");
        TRY(irmae_gmm_sample(&mix, out, count, &rng), "sampling");
        printf("gmm: %d components fitted to %d codes in %d EM iterations, mean log-likelihood %.4f\n",
               o->k, held->n, mix.iters, mix.loglik);
    } else {
        TRY(irmae_pca_fit(&p, z, held->n, n), "fitting the PCA");
        TRY(irmae_pca_grid(&p, out, rows, cols, o->span), "making the PCA grid");
        printf("pca: %d x %d grid over the first two axes at +-%g std (std %.4g, %.4g)\n", rows, cols, o->span,
               p.stddev[0], n > 1 ? p.stddev[1] : 0.0);
    }
done:
    irmae_gauss_free(&g);
    irmae_gmm_free(&mix);
    irmae_pca_free(&p);
    free(z);
    return status;
}

static int task_sample(const options *o)
{
    irmae_model m;
    irmae_dataset held;
    float *z = NULL, *img = NULL;
    int status, count = o->count, cols = o->cols, rows;

    if ((status = open_model_and_data(o, &m, &held, o->fit))) goto done;
    if (!strcmp(o->method, "pca")) {
        if (cols > count) cols = count;
        rows = (count + cols - 1) / cols;
        count = rows * cols;
    } else {
        rows = (count + cols - 1) / cols;
    }
    z = alloc_floats((size_t)count, (size_t)m.cfg.n);
    img = alloc_floats((size_t)count, (size_t)m.cfg.in_c * m.cfg.in_h * m.cfg.in_w);
    CHECK(z && img, "out of memory");
    if ((status = sample_codes(o, &m, &held, z, count, rows, cols))) goto done;
    TRY(irmae_model_decode(&m, img, z, count), "decoding");
    if (write_grid(o->out, &m, img, count, cols)) { status = 1; goto done; }
    printf("wrote %d samples to %s\n", count, o->out);
done:
    free(z);
    free(img);
    irmae_dataset_free(&held);
    irmae_model_free(&m);
    return status;
}

/* The codes z (or, --features, e) of --count held-out images to a .npy file. */
static int task_encode(const options *o)
{
    irmae_model m;
    irmae_dataset held;
    float *z = NULL;
    int status;
    if ((status = open_model_and_data(o, &m, &held, o->count))) goto done;
    z = alloc_floats((size_t)held.n, (size_t)m.cfg.n);
    CHECK(z, "out of memory");
    if (o->features) TRY(irmae_model_features(&m, z, held.x, held.n), "encoding");
    else TRY(irmae_model_encode(&m, z, held.x, held.n), "encoding");
    TRY(irmae_npy_write(o->out, z, held.n, m.cfg.n), "writing the codes");
    printf("wrote %s: %s of %d held-out images, %d x %d float32\n", o->out, o->features ? "features" : "codes",
           held.n, held.n, m.cfg.n);
done:
    free(z);
    irmae_dataset_free(&held);
    irmae_model_free(&m);
    return status;
}

/* The images decoded from the codes of a .npy file (count x n), as a PNG grid. */
static int task_decode(const options *o)
{
    irmae_model m;
    float *z = NULL, *y = NULL;
    int status = 0, rows = 0, cols = 0, rc;
    memset(&m, 0, sizeof m);
    if (!o->model) return usage_error("needs --model FILE");
    if (!o->codes) return usage_error("needs --codes FILE");
    set_threads(o);
    if (load_model(&m, o->model, NULL)) return 1;
    if ((rc = irmae_npy_load(&z, &rows, &cols, o->codes))) { status = fail_lib(rc, "reading the codes"); goto done; }
    CHECK(cols == m.cfg.n, "%s holds %d x %d values, the model's codes have n = %d", o->codes, rows, cols, m.cfg.n);
    y = alloc_floats((size_t)rows, (size_t)m.cfg.in_c * m.cfg.in_h * m.cfg.in_w);
    CHECK(y, "out of memory");
    TRY(irmae_model_decode(&m, y, z, rows), "decoding");
    if (write_grid(o->out, &m, y, rows, o->cols < rows ? o->cols : rows)) { status = 1; goto done; }
    printf("decoded %d codes of %s; wrote %s\n", rows, o->codes, o->out);
done:
    irmae_free_buffer(z);
    free(y);
    irmae_model_free(&m);
    return status;
}

/* A checkpoint from safetensors weights: the configuration stored in the
   file (export writes it), or, in a file without it, the one train's flags build. */
static int task_import(options *o)
{
    irmae_config cfg;
    irmae_model m;
    irmae_rng r = irmae_rng_seed(0); /* the initial values are all replaced */
    int status = 0, rc;
    memset(&m, 0, sizeof m);
    if (!o->weights) return usage_error("needs --weights FILE");
    if (!given("--batch")) o->batch = 32;
    rc = irmae_safetensors_read_config(&cfg, o->weights);
    if (rc == IRMAE_ERR_FORMAT && strstr(irmae_error_detail(), "no irmae_config")) {
        if ((status = build_config(o, &cfg))) return status;
        fprintf(stderr, "%s import: %s has no stored configuration; using the architecture flags\n", g_prog, o->weights);
    } else if (rc) {
        return fail_lib(rc, "reading the configuration");
    } else if (given("--preset") || given("--n") || given("--model") || given("-l") || given("--l")) {
        fprintf(stderr, "%s import: the configuration stored in %s is used; architecture flags are ignored\n", g_prog, o->weights);
    }
    set_threads(o);
    TRY(irmae_model_init(&m, &cfg, &r), "building the model");
    TRY(irmae_import_safetensors(&m, o->weights), "importing the weights");
    TRY(irmae_checkpoint_save(o->out, &m, NULL), "saving the checkpoint");
    printf("imported %s: %s n=%d l=%d, %lu parameters; wrote %s\n", o->weights, kind_name(&m.cfg), m.cfg.n, m.cfg.l,
           (unsigned long)m.n_params, o->out);
done:
    irmae_model_free(&m);
    return status;
}

static int task_export(const options *o)
{
    irmae_model m;
    int status = 0;
    if (!o->model) return usage_error("needs --model FILE");
    set_threads(o);
    if (load_model(&m, o->model, NULL)) return 1;
    TRY(irmae_export_safetensors(o->out, &m), "exporting");
    printf("wrote %s: %s n=%d l=%d, %lu parameters (+ collapsed.weight %d x %d)\n", o->out, kind_name(&m.cfg),
           m.cfg.n, m.cfg.l, (unsigned long)m.n_params, m.cfg.n, m.cfg.n);
done:
    irmae_model_free(&m);
    return status;
}

/* ======================================================================== */
/* A small MLP (classification heads, the Frechet feature classifier)       */
/* ======================================================================== */

/* Linear layers dims[0] -> dims[1] -> ... -> dims[layers]; ReLU and
   (inverted) dropout after every hidden layer; softmax cross-entropy; Adam.
   Built from the library's irmae_linear_* and irmae_relu_* layers. */
#define MLP_MAX 4
typedef struct mlp {
    int layers, dims[MLP_MAX + 1], max_batch;
    float dropout;
    size_t w_off[MLP_MAX], b_off[MLP_MAX], n_params;
    float *p, *g, *m, *v;          /* parameters, gradients, Adam moments */
    float *relu[MLP_MAX];          /* hidden layer i (1..layers-1): ReLU output */
    float *h[MLP_MAX];             /* ... after dropout (the next layer's input) */
    float *mask[MLP_MAX];          /* dropout multipliers (0 or 1 / (1 - p)) */
    float *logits, *d1, *d2;       /* output; two gradient buffers */
    long long t;                   /* Adam steps */
} mlp;

static void mlp_free(mlp *net)
{
    int i;
    free(net->p); free(net->g); free(net->m); free(net->v);
    for (i = 0; i < MLP_MAX; i++) { free(net->relu[i]); free(net->h[i]); free(net->mask[i]); }
    free(net->logits); free(net->d1); free(net->d2);
    memset(net, 0, sizeof *net);
}

static int mlp_init(mlp *net, const int *dims, int layers, int max_batch, float dropout, irmae_rng *rng)
{
    int i, widest = 0;
    size_t k;
    memset(net, 0, sizeof *net);
    net->layers = layers;
    net->max_batch = max_batch;
    net->dropout = dropout;
    for (i = 0; i <= layers; i++) {
        net->dims[i] = dims[i];
        if (dims[i] > widest) widest = dims[i];
    }
    for (i = 0; i < layers; i++) {
        net->w_off[i] = net->n_params; net->n_params += (size_t)dims[i + 1] * dims[i];
        net->b_off[i] = net->n_params; net->n_params += (size_t)dims[i + 1];
    }
    net->p = alloc_floats(net->n_params, 1); net->g = alloc_floats(net->n_params, 1);
    net->m = alloc_floats(net->n_params, 1); net->v = alloc_floats(net->n_params, 1);
    net->logits = alloc_floats((size_t)max_batch, (size_t)dims[layers]);
    net->d1 = alloc_floats((size_t)max_batch, (size_t)widest);
    net->d2 = alloc_floats((size_t)max_batch, (size_t)widest);
    if (!net->p || !net->g || !net->m || !net->v || !net->logits || !net->d1 || !net->d2) return -1;
    for (i = 1; i < layers; i++) {
        net->relu[i] = alloc_floats((size_t)max_batch, (size_t)dims[i]);
        net->h[i] = alloc_floats((size_t)max_batch, (size_t)dims[i]);
        net->mask[i] = alloc_floats((size_t)max_batch, (size_t)dims[i]);
        if (!net->relu[i] || !net->h[i] || !net->mask[i]) return -1;
    }
    for (i = 0; i < layers; i++) { /* PyTorch's nn.Linear default: U(-1/sqrt(in), 1/sqrt(in)) */
        float bound = 1.0f / sqrtf((float)dims[i]);
        for (k = net->w_off[i]; k < net->b_off[i] + (size_t)dims[i + 1]; k++)
            net->p[k] = (2.0f * irmae_rng_uniform(rng) - 1.0f) * bound;
    }
    return 0;
}

/* Forward of B rows of x; train != 0 applies dropout from rng. */
static void mlp_forward(mlp *net, const float *x, int B, int train, irmae_rng *rng)
{
    int i;
    size_t j, cnt;
    const float *in = x;
    for (i = 0; i < net->layers; i++) {
        float *out = i == net->layers - 1 ? net->logits : net->relu[i + 1];
        irmae_linear_forward(out, in, net->p + net->w_off[i], net->p + net->b_off[i], B, net->dims[i], net->dims[i + 1]);
        if (i == net->layers - 1) break;
        cnt = (size_t)B * net->dims[i + 1];
        irmae_relu_forward(out, out, cnt);
        for (j = 0; j < cnt; j++) {
            float keep = 1.0f;
            if (train && net->dropout > 0.0f)
                keep = irmae_rng_uniform(rng) < net->dropout ? 0.0f : 1.0f / (1.0f - net->dropout);
            net->mask[i + 1][j] = keep;
            net->h[i + 1][j] = out[j] * keep;
        }
        in = net->h[i + 1];
    }
}

/* Softmax cross-entropy of the logits against labels (the library's);
   gradient into net->d1 (mean over the batch). Returns the mean loss (NaN
   when a logit is not finite). */
static double mlp_loss(mlp *net, const int *labels, int B)
{
    double loss = 0.0;
    if (irmae_softmax_xent(net->d1, &loss, net->logits, labels, B, net->dims[net->layers])) return NAN;
    return loss;
}

/* Backward from net->d1 (d loss / d logits) and one Adam step; dx (NULL: not
   needed) receives d loss / d x, B x dims[0]. */
static void mlp_backward_adam(mlp *net, const float *x, int B, float lr, float *dx)
{
    int i;
    size_t k;
    float *d = net->d1, *dn = net->d2;
    irmae_adam hp;
    memset(net->g, 0, net->n_params * sizeof(float));
    for (i = net->layers - 1; i >= 0; i--) {
        const float *in = i == 0 ? x : net->h[i];
        irmae_linear_backward(i == 0 ? dx : dn, net->g + net->w_off[i], net->g + net->b_off[i], d, in,
                              net->p + net->w_off[i], B, net->dims[i], net->dims[i + 1]);
        if (i == 0) break;
        for (k = 0; k < (size_t)B * net->dims[i]; k++) dn[k] *= net->mask[i][k];
        irmae_relu_backward(dn, dn, net->relu[i], (size_t)B * net->dims[i]);
        { float *t = d; d = dn; dn = t; }
    }
    /* the library's Adam, with PyTorch's defaults */
    hp.lr = lr; hp.beta1 = 0.9f; hp.beta2 = 0.999f; hp.eps = 1e-8f;
    irmae_adam_update(net->p, net->m, net->v, net->g, net->n_params, ++net->t, &hp);
}

/* The next minibatch of rows of x (count x d) and their labels into xb, yb:
   consecutive entries of perm, reshuffled when fewer than batch are left
   (*pos = count on the first call). */
static void draw_batch(const float *x, const int *labels, int count, size_t d, int batch, int *perm, int *pos,
                       irmae_rng *rng, float *xb, int *yb)
{
    int i;
    if (*pos + batch > count) { irmae_shuffle(perm, count, rng); *pos = 0; }
    for (i = 0; i < batch; i++) {
        memcpy(xb + (size_t)i * d, x + (size_t)perm[*pos + i] * d, d * sizeof(float));
        yb[i] = labels[perm[*pos + i]];
    }
    *pos += batch;
}

/* Trains on rows x (count x dims[0]) with labels for `steps` minibatches of
   `batch` (reshuffled each pass). Returns the last pass's mean loss. */
static double mlp_train(mlp *net, const float *x, const int *labels, int count, int steps, int batch, float lr,
                        irmae_rng *rng, float *xb, int *yb, int *perm)
{
    int s, pos = count;
    double loss = 0.0;
    size_t d = (size_t)net->dims[0];
    for (s = 0; s < steps; s++) {
        draw_batch(x, labels, count, d, batch, perm, &pos, rng, xb, yb);
        mlp_forward(net, xb, batch, 1, rng);
        loss = mlp_loss(net, yb, batch);
        mlp_backward_adam(net, xb, batch, lr, NULL);
    }
    return loss;
}

/* Accuracy (percent) on count rows; also copies hidden layer `feat` (if
   feat_out) of every row. */
static double mlp_eval(mlp *net, const float *x, const int *labels, int count, int feat, float *feat_out)
{
    int i, j, b, right = 0, c = net->dims[net->layers];
    for (i = 0; i < count; i += net->max_batch) {
        int B = count - i < net->max_batch ? count - i : net->max_batch;
        mlp_forward(net, x + (size_t)i * net->dims[0], B, 0, NULL);
        if (feat_out)
            memcpy(feat_out + (size_t)i * net->dims[feat], net->h[feat], (size_t)B * net->dims[feat] * sizeof(float));
        for (b = 0; b < B && labels; b++) {
            const float *z = net->logits + (size_t)b * c;
            int best = 0;
            for (j = 1; j < c; j++) if (z[j] > z[best]) best = j;
            right += best == labels[i + b];
        }
    }
    return count ? 100.0 * right / count : 0.0;
}

static int count_classes(const irmae_dataset *a, const irmae_dataset *b)
{
    int i, c = 0;
    for (i = 0; i < a->n; i++) if (a->labels[i] + 1 > c) c = a->labels[i] + 1;
    for (i = 0; i < b->n; i++) if (b->labels[i] + 1 > c) c = b->labels[i] + 1;
    return c;
}

/* ======================================================================== */
/* classify                                                                 */
/* ======================================================================== */

/* --supervised: encoder and head trained together on the labelled images
   with softmax cross-entropy (the paper's fully supervised reference). The
   encoder is re-initialised (m gives only the architecture); both use Adam
   at --head-lr; the head sees the raw features (no standardisation, they
   move while training). */
static int classify_supervised(const options *o, irmae_model *m, const irmae_dataset *train,
                               const irmae_dataset *test, int classes, irmae_rng *rng)
{
    irmae_model enc;
    irmae_config cfg = m->cfg;
    mlp head;
    irmae_rng init = stream(o->seed, STREAM_TOOLS + 2);
    float *xb = NULL, *fb = NULL, *dfb = NULL, *ftest = NULL, *ftrain = NULL;
    int *yb = NULL, *perm = NULL, status = 0, rc, n = cfg.n, per, batch, s, pos, dims[4];
    double loss = 0.0, acc, train_acc;
    memset(&enc, 0, sizeof enc);
    memset(&head, 0, sizeof head);
    per = cfg.in_c * cfg.in_h * cfg.in_w;
    batch = o->head_batch < train->n ? o->head_batch : train->n;
    if (batch > cfg.max_batch) batch = cfg.max_batch;
    cfg.lr = o->head_lr;
    if ((rc = irmae_model_init(&enc, &cfg, &init))) { status = fail_lib(rc, "initialising the encoder"); goto done; }
    dims[0] = n;
    if (!strcmp(o->head, "linear")) {
        dims[1] = classes;
        CHECK(!mlp_init(&head, dims, 1, batch > 256 ? batch : 256, 0.0f, rng), "out of memory");
    } else {
        dims[1] = n; dims[2] = n; dims[3] = classes;
        CHECK(!mlp_init(&head, dims, 3, batch > 256 ? batch : 256, 0.5f, rng), "out of memory");
    }
    xb = alloc_floats((size_t)batch, (size_t)per);
    fb = alloc_floats((size_t)batch, (size_t)n);
    dfb = alloc_floats((size_t)batch, (size_t)n);
    ftrain = alloc_floats((size_t)train->n, (size_t)n);
    ftest = alloc_floats((size_t)test->n, (size_t)n);
    yb = (int *)calloc((size_t)batch, sizeof(int));
    perm = (int *)calloc((size_t)train->n, sizeof(int));
    CHECK(xb && fb && dfb && ftrain && ftest && yb && perm, "out of memory");
    for (s = 0, pos = train->n; s < o->head_steps; s++) {
        draw_batch(train->x, train->labels, train->n, (size_t)per, batch, perm, &pos, rng, xb, yb);
        TRY(irmae_model_features(&enc, fb, xb, batch), "encoding a batch");
        mlp_forward(&head, fb, batch, 1, rng);
        loss = mlp_loss(&head, yb, batch);
        mlp_backward_adam(&head, fb, batch, o->head_lr, dfb);
        TRY(irmae_model_features_backward(&enc, xb, dfb, batch), "back-propagating into the encoder");
        TRY(irmae_model_adam_step(&enc), "updating the encoder");
    }
    TRY(irmae_model_features(&enc, ftrain, train->x, train->n), "encoding the labelled images");
    TRY(irmae_model_features(&enc, ftest, test->x, test->n), "encoding the test images");
    train_acc = mlp_eval(&head, ftrain, train->labels, train->n, 0, NULL);
    acc = mlp_eval(&head, ftest, test->labels, test->n, 0, NULL);
    printf("classify: %s head and a fresh %s encoder (n = %d) trained together (supervised), %d labelled images, "
           "%d steps (final loss %.4f), %d test images\n", o->head, kind_name(&cfg), n, train->n, o->head_steps,
           loss, test->n);
    printf("train_accuracy=%.2f\n", train_acc);
    printf("accuracy=%.2f\n", acc);
done:
    mlp_free(&head);
    irmae_model_free(&enc);
    free(xb); free(fb); free(dfb); free(ftrain); free(ftest); free(yb); free(perm);
    return status;
}

static int task_classify(const options *o)
{
    irmae_model m;
    irmae_dataset train, test;
    mlp head;
    irmae_rng rng = stream(o->seed, STREAM_TOOLS);
    float *ftrain = NULL, *ftest = NULL, *xb = NULL;
    double *mean = NULL, *sd = NULL, acc, loss;
    int *yb = NULL, *perm = NULL, status = 0, rc, n, i, j, classes, batch, dims[4];

    memset(&m, 0, sizeof m);
    memset(&train, 0, sizeof train);
    memset(&test, 0, sizeof test);
    memset(&head, 0, sizeof head);
    if (!o->model) return usage_error("needs --model FILE");
    if ((rc = check_data_flags(o))) return rc;
    set_threads(o);
    if (load_model(&m, o->model, NULL)) return 1;
    /* labelled training images: the first --labels; shapes generates them */
    if (load_split(&train, o, &m.cfg, SPLIT_TRAIN, o->labels)) { status = 1; goto done; }
    if (load_split(&test, o, &m.cfg, SPLIT_HELDOUT, o->count ? o->count : !strcmp(o->data, "shapes") ? 2000 : 0)) {
        status = 1; goto done;
    }
    CHECK(train.labels && test.labels, "--data %s has no labels", o->data);
    if (train.n < o->labels)
        fprintf(stderr, "classify: note: only %d labelled images available (asked for %d)\n", train.n, o->labels);
    n = m.cfg.n;
    classes = count_classes(&train, &test);
    if (o->supervised) { status = classify_supervised(o, &m, &train, &test, classes, &rng); goto done; }
    ftrain = alloc_floats((size_t)train.n, (size_t)n);
    ftest = alloc_floats((size_t)test.n, (size_t)n);
    mean = (double *)calloc((size_t)n, sizeof(double));
    sd = (double *)calloc((size_t)n, sizeof(double));
    CHECK(ftrain && ftest && mean && sd, "out of memory");
    TRY(irmae_model_features(&m, ftrain, train.x, train.n), "encoding the labelled images");
    TRY(irmae_model_features(&m, ftest, test.x, test.n), "encoding the test images");

    /* standardise every feature with the labelled set's mean and spread */
    for (j = 0; j < n; j++) {
        double s = 0.0, ss = 0.0;
        for (i = 0; i < train.n; i++) s += ftrain[(size_t)i * n + j];
        mean[j] = s / train.n;
        for (i = 0; i < train.n; i++) ss += (ftrain[(size_t)i * n + j] - mean[j]) * (ftrain[(size_t)i * n + j] - mean[j]);
        sd[j] = train.n > 1 ? sqrt(ss / (train.n - 1)) : 0.0;
        if (!(sd[j] > 1e-8)) sd[j] = 1.0;
    }
    for (i = 0; i < train.n; i++) for (j = 0; j < n; j++)
        ftrain[(size_t)i * n + j] = (float)((ftrain[(size_t)i * n + j] - mean[j]) / sd[j]);
    for (i = 0; i < test.n; i++) for (j = 0; j < n; j++)
        ftest[(size_t)i * n + j] = (float)((ftest[(size_t)i * n + j] - mean[j]) / sd[j]);

    batch = o->head_batch < train.n ? o->head_batch : train.n;
    dims[0] = n;
    if (!strcmp(o->head, "linear")) {
        dims[1] = classes;
        CHECK(!mlp_init(&head, dims, 1, batch > 256 ? batch : 256, 0.0f, &rng), "out of memory");
    } else {
        dims[1] = n; dims[2] = n; dims[3] = classes;
        CHECK(!mlp_init(&head, dims, 3, batch > 256 ? batch : 256, 0.5f, &rng), "out of memory");
    }
    xb = alloc_floats((size_t)batch, (size_t)n);
    yb = (int *)calloc((size_t)batch, sizeof(int));
    perm = (int *)calloc((size_t)train.n, sizeof(int));
    CHECK(xb && yb && perm, "out of memory");
    loss = mlp_train(&head, ftrain, train.labels, train.n, o->head_steps, batch, o->head_lr, &rng, xb, yb, perm);
    acc = mlp_eval(&head, ftest, test.labels, test.n, 0, NULL);
    printf("classify: %s head on frozen %s features (n = %d), %d labelled images, %d steps (final loss %.4f), "
           "%d test images\n", o->head, kind_name(&m.cfg), n, train.n, o->head_steps, loss, test.n);
    printf("train_accuracy=%.2f\n", mlp_eval(&head, ftrain, train.labels, train.n, 0, NULL));
    printf("accuracy=%.2f\n", acc);
done:
    mlp_free(&head);
    free(ftrain); free(ftest); free(mean); free(sd); free(xb); free(yb); free(perm);
    irmae_dataset_free(&train);
    irmae_dataset_free(&test);
    irmae_model_free(&m);
    return status;
}

/* ======================================================================== */
/* frechet                                                                  */
/* ======================================================================== */

/* A Frechet distance between held-out images and decoded samples, in the
   feature space (the last hidden layer, 128 values) of a small pixel MLP
   classifier trained here on the labelled training images. The FID formula,
   but not Inception features: compare numbers only within this tool. Also
   printed, on the same scale: the distance of the model's reconstructions of
   the same held-out images, and of as many real training images (the floor
   of the distance at this sample size). */
static int task_frechet(const options *o)
{
    irmae_model m;
    irmae_dataset train, held;
    mlp clf;
    irmae_rng rng = stream(o->seed, STREAM_TOOLS + 1);
    float *z = NULL, *gen = NULL, *fa = NULL, *fb = NULL, *xb = NULL;
    int *yb = NULL, *perm = NULL, status = 0, rc, count, per, dims[4], classes, steps;
    double dist, dist_recon, dist_real = 0.0, acc;

    memset(&m, 0, sizeof m);
    memset(&train, 0, sizeof train);
    memset(&held, 0, sizeof held);
    memset(&clf, 0, sizeof clf);
    if (!o->model) return usage_error("needs --model FILE");
    if ((rc = check_data_flags(o))) return rc;
    if (!strcmp(o->data, "images")) return usage_error("frechet needs labels to train its feature classifier: --data mnist or shapes");
    set_threads(o);
    if (load_model(&m, o->model, NULL)) return 1;
    if (load_split(&train, o, &m.cfg, SPLIT_TRAIN, o->train_count ? o->train_count : !strcmp(o->data, "shapes") ? 10000 : 0)) {
        status = 1; goto done;
    }
    if (load_split(&held, o, &m.cfg, SPLIT_HELDOUT, o->count > o->fit ? o->count : o->fit)) { status = 1; goto done; }
    CHECK(train.labels && held.labels, "--data %s has no labels", o->data);
    count = o->count < held.n ? o->count : held.n;
    CHECK(count >= 2, "need at least 2 held-out images");
    per = m.cfg.in_c * m.cfg.in_h * m.cfg.in_w;
    classes = count_classes(&train, &held);

    /* the feature classifier: pixels -> 256 -> 128 -> classes */
    dims[0] = per; dims[1] = 256; dims[2] = 128; dims[3] = classes;
    CHECK(!mlp_init(&clf, dims, 3, 256, 0.0f, &rng), "out of memory");
    xb = alloc_floats(64, (size_t)per);
    yb = (int *)calloc(64, sizeof(int));
    perm = (int *)calloc((size_t)train.n, sizeof(int));
    CHECK(xb && yb && perm, "out of memory");
    CHECK(train.n >= 64, "the feature classifier needs at least 64 training images, have %d", train.n);
    steps = o->clf_epochs * (train.n / 64);
    mlp_train(&clf, train.x, train.labels, train.n, steps, 64, 1e-3f, &rng, xb, yb, perm);
    acc = mlp_eval(&clf, held.x, held.labels, count, 2, NULL);

    /* samples decoded from codes drawn as `sample --method` does */
    z = alloc_floats((size_t)count, (size_t)m.cfg.n);
    gen = alloc_floats((size_t)count, (size_t)per);
    fa = alloc_floats((size_t)count, 128);
    fb = alloc_floats((size_t)count, 128);
    CHECK(z && gen && fa && fb, "out of memory");
    {
        irmae_dataset fitset = held;
        fitset.n = o->fit < held.n ? o->fit : held.n;
        if ((status = sample_codes(o, &m, &fitset, z, count, 1, count))) goto done;
    }
    TRY(irmae_model_decode(&m, gen, z, count), "decoding");
    mlp_eval(&clf, held.x, NULL, count, 2, fa);
    mlp_eval(&clf, gen, NULL, count, 2, fb);
    TRY(irmae_frechet_distance(&dist, fa, count, fb, count, 128), "computing the Frechet distance");
    /* two references on the same scale: the model's reconstructions of the
       held-out images (what its decoder can reach), and real training images
       (the distance's floor at this sample size) */
    TRY(irmae_model_encode(&m, z, held.x, count), "encoding");
    TRY(irmae_model_decode(&m, gen, z, count), "decoding");
    mlp_eval(&clf, gen, NULL, count, 2, fb);
    TRY(irmae_frechet_distance(&dist_recon, fa, count, fb, count, 128), "computing the Frechet distance");
    if (train.n >= count) {
        mlp_eval(&clf, train.x, NULL, count, 2, fb);
        TRY(irmae_frechet_distance(&dist_real, fa, count, fb, count, 128), "computing the Frechet distance");
    }
    printf("frechet: %d held-out images vs %d %s samples, features of a pixel MLP (%d training images, "
           "held-out accuracy %.2f%%); not FID\n", count, count, o->method, train.n, acc);
    printf("frechet=%.6g\n", dist);
    printf("frechet_recon=%.6g  (reconstructions of the held-out images)\n", dist_recon);
    if (train.n >= count) printf("frechet_real=%.6g  (%d real training images)\n", dist_real, count);
done:
    mlp_free(&clf);
    free(z); free(gen); free(fa); free(fb); free(xb); free(yb); free(perm);
    irmae_dataset_free(&train);
    irmae_dataset_free(&held);
    irmae_model_free(&m);
    return status;
}

/* ======================================================================== */
/* plot                                                                     */
/* ======================================================================== */

#define PLOT_LINE 4096
#define PLOT_MAX_ROWS 1000000

/* index of column `name` in a header line (comma separated, trailing \r\n
   removed), or -1 */
static int csv_column(const char *header, const char *name)
{
    const char *p = header;
    const size_t len = strlen(name);
    int i;
    for (i = 0;; i++) {
        const char *q = strchr(p, ',');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == len && !strncmp(p, name, len)) return i;
        if (!q) return -1;
        p = q + 1;
    }
}

/* field `col` of a data line as a number: an empty field is a missing point
   (NaN); anything else that is not a whole number is an error */
static int csv_number(const char *line, int col, double *v)
{
    const char *p = line, *q;
    char *end, tmp[128];
    size_t len;
    int i;
    for (i = 0; i < col; i++) {
        p = strchr(p, ',');
        if (!p) return -1;
        p++;
    }
    q = strchr(p, ',');
    len = q ? (size_t)(q - p) : strlen(p);
    if (len >= sizeof tmp) return -1;
    memcpy(tmp, p, len);
    tmp[len] = 0;
    if (!len) { *v = (double)NAN; return 0; }
    *v = strtod(tmp, &end);
    return *end ? -1 : 0;
}

/* reads columns x and y of a CSV file into fresh arrays */
static int read_plot_csv(const options *o, const char *path, const char *y_col, double **xs, double **ys, int *n)
{
    FILE *f = fopen(path, "rb");
    char line[PLOT_LINE];
    int xc, yc, row = 0, cap = 0, lineno = 1;
    *xs = *ys = NULL;
    *n = 0;
    if (!f) return fail_msg("cannot open '%s'", path);
    if (!fgets(line, sizeof line, f)) { fclose(f); return fail_msg("%s: empty file (no header line)", path); }
    line[strcspn(line, "\r\n")] = 0;
    xc = csv_column(line, o->x_col);
    yc = csv_column(line, y_col);
    if (xc < 0 || yc < 0) {
        fclose(f);
        return fail_msg("%s: no column '%s' in the header", path, xc < 0 ? o->x_col : y_col);
    }
    while (fgets(line, sizeof line, f)) {
        double x, y;
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) { fclose(f); return fail_msg("%s:%d: line longer than %d bytes", path, lineno, PLOT_LINE - 1); }
        line[strcspn(line, "\r\n")] = 0;
        if (!line[0]) continue;
        if (csv_number(line, xc, &x) || csv_number(line, yc, &y)) {
            fclose(f);
            return fail_msg("%s:%d: column '%s' or '%s' is missing or not a number", path, lineno, o->x_col, y_col);
        }
        if (row == cap) {
            double *nx, *ny;
            if (cap >= PLOT_MAX_ROWS) { fclose(f); return fail_msg("%s: more than %d rows", path, PLOT_MAX_ROWS); }
            cap = cap ? 2 * cap : 256;
            nx = (double *)realloc(*xs, (size_t)cap * sizeof **xs);
            if (nx) *xs = nx;
            ny = nx ? (double *)realloc(*ys, (size_t)cap * sizeof **ys) : NULL;
            if (ny) *ys = ny;
            if (!nx || !ny) { fclose(f); return fail_msg("%s: out of memory at row %d", path, row); }
        }
        (*xs)[row] = x * (double)o->x_scale;
        (*ys)[row] = y;
        row++;
    }
    if (ferror(f)) { fclose(f); return fail_msg("%s: read error", path); }
    fclose(f);
    *n = row;
    return 0;
}

static int task_plot(const options *o)
{
    irmae_plot_series s[MAX_MODELS];
    irmae_plot_opts po;
    double *xs[MAX_MODELS], *ys[MAX_MODELS];
    char title[256];
    const char *y_col;
    int i, status = 0;
    memset(s, 0, sizeof s);
    memset(xs, 0, sizeof xs);
    memset(ys, 0, sizeof ys);
    if (o->csvs.n == 0) return usage_error("needs --csv FILE (one or more)");
    if (o->names.n > o->csvs.n) return usage_error("%d --name for %d --csv", o->names.n, o->csvs.n);
    if (o->y_cols.n > 1 && o->y_cols.n != o->csvs.n)
        return usage_error("%d --y for %d --csv (give one --y, or one per --csv)", o->y_cols.n, o->csvs.n);
    y_col = o->y_cols.n ? o->y_cols.v[0] : "rank_1pct";
    for (i = 0; i < o->csvs.n; i++) {
        const char *yi = o->y_cols.n > 1 ? o->y_cols.v[i] : y_col;
        s[i].name = i < o->names.n ? o->names.v[i] : base_name(o->csvs.v[i]);
        if (read_plot_csv(o, o->csvs.v[i], yi, &xs[i], &ys[i], &s[i].n)) { status = 1; goto done; }
        s[i].x = xs[i];
        s[i].y = ys[i];
    }
    memset(&po, 0, sizeof po);
    snprintf(title, sizeof title, "%s against %s", o->y_cols.n > 1 ? "values" : y_col, o->x_col);
    po.title = o->title ? o->title : title;
    po.x_label = o->x_label ? o->x_label : o->x_col;
    po.y_label = o->y_label ? o->y_label : o->y_cols.n > 1 ? "value" : y_col;
    po.log_y = o->log_y;
    po.markers = o->markers;
    TRY(irmae_plot_write_svg(o->out, s, o->csvs.n, &po), "writing the plot");
    printf("wrote %s (%d line%s)\n", o->out, o->csvs.n, o->csvs.n == 1 ? "" : "s");
done:
    for (i = 0; i < o->csvs.n; i++) { free(xs[i]); free(ys[i]); }
    return status;
}

/* ======================================================================== */
/* main                                                                     */
/* ======================================================================== */

static int run(int argc, char **argv)
{
    options o;
    int rc;
    if (argc < 2) { if (g_rank == 0) print_help(stderr); return 2; }
    if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        if (argc > 2) {
            g_task = find_task(argv[2]);
            if (!g_task) return usage_error("unknown task '%s'", argv[2]);
            if (g_rank == 0) print_task_help(stdout, g_task);
        } else if (g_rank == 0) {
            print_help(stdout);
        }
        return 0;
    }
    g_task = find_task(argv[1]);
    if (!g_task) return usage_error("unknown task '%s'", argv[1]);
    rc = parse_flags(argc, argv, 2, &o);
    if (rc) return rc < 0 ? 0 : rc;
    if (g_size > 1 && g_task->mask != T_TRAIN)
        return usage_error("only train runs on several MPI ranks; run %s as one process (without mpirun)", g_task->name);
    switch (g_task->mask) {
    case T_TRAIN: return task_train(&o);
    case T_SPECTRUM: return task_spectrum(&o);
    case T_RECON: return task_reconstruct(&o);
    case T_INTERP: return task_interpolate(&o);
    case T_SAMPLE: return task_sample(&o);
    case T_EXPORT: return task_export(&o);
    case T_ENCODE: return task_encode(&o);
    case T_DECODE: return task_decode(&o);
    case T_IMPORT: return task_import(&o);
    case T_CLASSIFY: return task_classify(&o);
    case T_PLOT: return task_plot(&o);
    default: return task_frechet(&o);
    }
}

int main(int argc, char **argv)
{
#ifdef IRMAE_MPI
    static char prog[64];
    int status;
    MPI_Init(&argc, &argv);
    g_comm = MPI_COMM_WORLD;
    MPI_Comm_rank(g_comm, &g_rank);
    MPI_Comm_size(g_comm, &g_size);
    if (g_size > 1) { /* messages say which rank wrote them */
        snprintf(prog, sizeof prog, "irmae (rank %d of %d)", g_rank, g_size);
        g_prog = prog;
    }
    status = run(argc, argv);
    MPI_Finalize();
    return status;
#else
    return run(argc, argv);
#endif
}
