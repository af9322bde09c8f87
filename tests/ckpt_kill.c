/* Crash safety of irmae_checkpoint_save (POSIX; prints SKIP elsewhere).
   A child process (this program re-executed with --child) resumes from the
   checkpoint, then trains a small model and saves the checkpoint after every
   step. The parent kills it with SIGKILL after a random 3..100 ms, then loads
   the checkpoint: it must load (never a torn or half-written file), its step
   must be >= the step seen at the previous kill, its (epoch, batch) must match
   that step, and parameters, Adam moments and rng must equal those of a
   reference run the parent replays deterministically to the same step. The
   next round's child resumes from that checkpoint. At least 50 rounds, at
   most ~25 s.
   Build: cc -O2 -std=c99 -Wall -Wextra -pedantic -fopenmp tests/ckpt_kill.c -o build/ckpt_kill -lm
   Run:   build/ckpt_kill            (files in $IRMAE_TMPDIR, default /tmp)
   Modes: build/ckpt_kill --child CKPT   (used by the parent) */
#if !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L
#endif
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32)
int main(void)
{
    printf("SKIP: ckpt_kill needs fork/kill (POSIX)\n");
    printf("test_ckpt_kill: 0 passed, 0 failed\n");
    return 0;
}
#else
#include <unistd.h>
#include <signal.h>
#include <time.h>
#include <sys/types.h>
#include <sys/wait.h>

static int passed = 0, failed = 0;
#define CHECK(cond, ...) do { if (cond) passed++; else { failed++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } } while (0)

#define ROUNDS_MIN 50
#define ROUNDS_MAX 80
#define TIME_BUDGET 25.0
#define BATCH 8
#define NIMG 64

/* The model: 3 x 16 x 16 images, two convs, a linear code of 8, l = 2;
   ~13k parameters, a ~160 KB checkpoint (so a save takes a little while). */
static irmae_config kill_cfg(void)
{
    irmae_config c = irmae_preset(IRMAE_PRESET_SHAPES);
    c.in_c = 3; c.in_h = c.in_w = 16;
    c.n = 8; c.l = 2; c.max_batch = BATCH; c.lr = 1e-3f;
    c.n_enc = c.n_dec = 0;
    memset(c.enc, 0, sizeof c.enc);
    memset(c.dec, 0, sizeof c.dec);
    c.enc[c.n_enc++] = irmae_layer_conv(16, 4, 2, 1);      /* 16 x 8 x 8 */
    c.enc[c.n_enc++] = irmae_layer_act(IRMAE_LAYER_RELU);
    c.enc[c.n_enc++] = irmae_layer_conv(32, 4, 2, 1);      /* 32 x 4 x 4 */
    c.enc[c.n_enc++] = irmae_layer_act(IRMAE_LAYER_RELU);
    c.enc[c.n_enc++] = irmae_layer_flatten();
    c.enc[c.n_enc++] = irmae_layer_linear(IRMAE_CODE, 1);
    c.dec[c.n_dec++] = irmae_layer_linear(32 * 4 * 4, 1);
    c.dec[c.n_dec++] = irmae_layer_act(IRMAE_LAYER_RELU);
    c.dec[c.n_dec++] = irmae_layer_reshape(32, 4, 4);
    c.dec[c.n_dec++] = irmae_layer_convt(16, 4, 2, 1);
    c.dec[c.n_dec++] = irmae_layer_act(IRMAE_LAYER_RELU);
    c.dec[c.n_dec++] = irmae_layer_convt(3, 4, 2, 1);
    return c;
}

static void make_data(irmae_dataset *ds)
{
    irmae_rng r = irmae_rng_seed(17);
    int i;
    size_t k, per = 3 * 16 * 16;
    irmae_dataset_alloc(ds, NIMG, 3, 16, 16, 0);
    for (i = 0; i < NIMG; i++)
        for (k = 0; k < per; k++) ds->x[(size_t)i * per + k] = irmae_rng_uniform(&r);
}

static void fresh(irmae_model *m, irmae_train_state *ts)
{
    irmae_config cfg = kill_cfg();
    irmae_rng r = irmae_rng_seed(123);
    irmae_model_init(m, &cfg, &r);
    ts->epoch = 0; ts->batch = 0; ts->data_rng = irmae_rng_seed(456);
}

/* One step of the loop of irmae_train_state's convention. */
static int step(irmae_model *m, irmae_train_state *ts, const irmae_dataset *ds, int *perm, float *x)
{
    irmae_rng r = ts->data_rng;
    int rc, nb = NIMG / BATCH;
    irmae_shuffle(perm, NIMG, &r);
    irmae_dataset_gather(ds, x, perm + (size_t)ts->batch * BATCH, BATCH);
    rc = irmae_model_train_step(m, NULL, x, BATCH);
    if (++ts->batch == nb) { ts->data_rng = r; ts->epoch++; ts->batch = 0; }
    return rc;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* --child: resume, then step + save until killed (or 60 s, if orphaned). */
static int child(const char *path)
{
    irmae_model m;
    irmae_train_state ts;
    irmae_dataset ds;
    int perm[NIMG];
    float *x = (float *)malloc(sizeof(float) * BATCH * 3 * 16 * 16);
    double t0 = now();
    make_data(&ds);
    memset(&m, 0, sizeof m);
    if (irmae_checkpoint_load(&m, &ts, path)) { fprintf(stderr, "child: load: %s\n", irmae_error_detail()); return 3; }
    while (now() - t0 < 60.0) {
        if (step(&m, &ts, &ds, perm, x)) { fprintf(stderr, "child: step: %s\n", irmae_error_detail()); return 4; }
        if (irmae_checkpoint_save(path, &m, &ts)) { fprintf(stderr, "child: save: %s\n", irmae_error_detail()); return 5; }
    }
    return 6;
}

int main(int argc, char **argv)
{
    const char *dir = getenv("IRMAE_TMPDIR");
    char path[700], tmp[720];
    irmae_model ref, m;
    irmae_train_state ref_ts, ts;
    irmae_dataset ds;
    irmae_rng kr = irmae_rng_seed(2718);
    int perm[NIMG], round, bad_load = 0, bad_order = 0, bad_state = 0, bad_exit = 0, tmp_seen = 0, advanced = 0;
    long long prev = 0, max_jump = 0;
    long slow = 1;
    int rounds_min = ROUNDS_MIN;
    float *x;
    double t0, t_sleep = 0.0;
    if (argc == 3 && strcmp(argv[1], "--child") == 0) return child(argv[2]);
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    snprintf(path, sizeof path, "%s/irmae_ckpt_kill_%ld.ckpt", dir && *dir ? dir : "/tmp", (long)getpid());
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    x = (float *)malloc(sizeof(float) * BATCH * 3 * 16 * 16);
    make_data(&ds);
    fresh(&ref, &ref_ts);
    CHECK(irmae_checkpoint_save(path, &ref, &ref_ts) == 0, "initial save: %s", irmae_error_detail());
    t0 = now();
    /* under an emulator ($IRMAE_TEST_EXEC) a child starts, steps and saves ~40x
       slower: kill delays x 40, at least 12 rounds */
    if (getenv("IRMAE_TEST_EXEC") && *getenv("IRMAE_TEST_EXEC")) { slow = 40; rounds_min = 12; }
    if (getenv("IRMAE_TEST_SLOW") && atol(getenv("IRMAE_TEST_SLOW")) > 0) slow = atol(getenv("IRMAE_TEST_SLOW"));
    for (round = 0; round < ROUNDS_MAX && (round < rounds_min || now() - t0 < 10.0) && now() - t0 < TIME_BUDGET * (slow > 1 ? 4 : 1); round++) {
        pid_t pid;
        int status = 0, rc;
        long ms = (3 + (long)(irmae_rng_u64(&kr) % 98)) * slow;
        struct timespec d;
        fflush(stdout);
        pid = fork();
        if (pid < 0) { CHECK(0, "fork failed"); break; }
        if (pid == 0) {
            /* single-threaded, as the parent (a tiny model: OpenMP threads
               only add contention, badly so on a loaded machine) */
            /* $IRMAE_TEST_EXEC names an emulator to run the child under
               (qemu-s390x: the emulated binary cannot exec itself natively) */
            char *args[5], *emu = getenv("IRMAE_TEST_EXEC");
            setenv("OMP_NUM_THREADS", "1", 1);
            if (emu && *emu) {
                args[0] = emu; args[1] = argv[0]; args[2] = (char *)"--child"; args[3] = path; args[4] = NULL;
                execvp(emu, args);
            } else {
                args[0] = argv[0]; args[1] = (char *)"--child"; args[2] = path; args[3] = NULL;
                execv(argv[0], args);
            }
            _exit(127);
        }
        d.tv_sec = ms / 1000; d.tv_nsec = (ms % 1000) * 1000000L;
        nanosleep(&d, NULL);
        t_sleep += (double)ms / 1000.0;
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
            if (!bad_exit++) printf("round %d: the child ended on its own (status %d)\n", round, status);
        }
        if (access(tmp, F_OK) == 0) tmp_seen++; /* killed between creating the .tmp and the rename */
        memset(&m, 0, sizeof m);
        rc = irmae_checkpoint_load(&m, &ts, path);
        if (rc) {
            if (!bad_load++) printf("round %d: load failed after a kill at %ld ms: %s\n", round, ms, irmae_error_detail());
            irmae_checkpoint_save(path, &ref, &ref_ts); /* so that the next child can resume */
            prev = ref.step;
            continue;
        }
        if (m.step < prev) { if (!bad_order++) printf("round %d: step went back from %lld to %lld\n", round, prev, m.step); }
        if (ts.epoch * (NIMG / BATCH) + ts.batch != m.step) bad_state++;
        while (ref.step < m.step) step(&ref, &ref_ts, &ds, perm, x);
        if (ref.step != m.step || memcmp(ref.params, m.params, ref.n_params * sizeof(float)) ||
            memcmp(ref.adam_m, m.adam_m, ref.n_params * sizeof(float)) || memcmp(ref.adam_v, m.adam_v, ref.n_params * sizeof(float)) ||
            memcmp(&ref.rng, &m.rng, sizeof ref.rng) || ref_ts.epoch != ts.epoch || ref_ts.batch != ts.batch ||
            memcmp(&ref_ts.data_rng, &ts.data_rng, sizeof ts.data_rng)) {
            if (!bad_state++) printf("round %d: state at step %lld differs from the replay\n", round, m.step);
        }
        if (m.step > prev) advanced++;
        if (m.step - prev > max_jump) max_jump = m.step - prev;
        prev = m.step;
        irmae_model_free(&m);
    }
    CHECK(round >= rounds_min, "only %d rounds in %.1f s", round, now() - t0);
    CHECK(bad_exit == 0, "%d children were not killed by SIGKILL", bad_exit);
    CHECK(bad_load == 0, "%d of %d checkpoints did not load after a kill", bad_load, round);
    CHECK(bad_order == 0, "%d times the step went backwards", bad_order);
    CHECK(bad_state == 0, "%d loaded states differ from the deterministic replay", bad_state);
    CHECK(advanced >= round / 4, "training advanced in only %d of %d rounds", advanced, round);
    printf("ckpt_kill: %d kills in %.1f s (%.1f s asleep), final step %lld (%lld parameters, %d rounds advanced, "
           "largest advance %lld steps), killed with a .tmp file present %d times; failed loads %d, steps backwards %d, "
           "states differing from the replay %d\n",
           round, now() - t0, t_sleep, prev, (long long)ref.n_params, advanced, max_jump, tmp_seen, bad_load, bad_order, bad_state);
    remove(path);
    remove(tmp);
    irmae_model_free(&ref);
    irmae_dataset_free(&ds);
    free(x);
    printf("test_ckpt_kill: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
#endif
