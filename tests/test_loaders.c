#define IRMAE_IMPLEMENTATION
#include "../irmae.h"

/* Tests of the hardened loaders: inflate / zlib / gzip, PNG, IDX / MNIST,
   image folders, shuffling and batch gathering.
   Run from the repository root:
     cc -O2 -std=c99 -Wall -Wextra -pedantic -fopenmp tests/test_loaders.c -o build/test_loaders -lm
     ./build/test_loaders
   Uses tests/data/ (committed), writes scratch files under build/.
   Optional: $IRMAE_PYTHON (default /usr/bin/python3) with pypng generates
   the full PNG suite (tests/gen_pngsuite.py); $IRMAE_MNIST_DIR (default
   ../shared/data/mnist-subset) holds the real MNIST subset. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(_WIN32)
#include <direct.h>
#define MKDIR(p) _mkdir(p)
#else
#include <sys/stat.h>
#define MKDIR(p) mkdir(p, 0777)
#endif

static int g_pass, g_fail, g_skip;

#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (cond) g_pass++;                                                       \
        else {                                                                    \
            g_fail++;                                                             \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                           \
            printf(__VA_ARGS__);                                                  \
            printf("  [detail: %s]\n", irmae_error_detail());                     \
        }                                                                         \
    } while (0)

static void skip(const char *why)
{
    printf("SKIP: %s\n", why);
    g_skip++;
}

/* A named error: a known negative code with a detail message. */
static int named(int rc)
{
    return rc < 0 && rc >= IRMAE_ERR_MISMATCH && strcmp(irmae_error_string(rc), "unknown error") != 0 &&
           irmae_error_detail()[0] != 0;
}

/* ---------------------------------------------------------------- buffers */

typedef struct { unsigned char *p; size_t n, cap; } buf;

static void buf_put(buf *b, const void *d, size_t n)
{
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->n + n) nc *= 2;
        b->p = (unsigned char *)realloc(b->p, nc);
        if (!b->p) { printf("out of memory\n"); exit(2); }
        b->cap = nc;
    }
    if (n) memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void buf_u8(buf *b, unsigned v) { unsigned char c = (unsigned char)v; buf_put(b, &c, 1); }
static void buf_be32(buf *b, uint32_t v)
{
    unsigned char c[4];
    c[0] = (unsigned char)(v >> 24); c[1] = (unsigned char)(v >> 16); c[2] = (unsigned char)(v >> 8); c[3] = (unsigned char)v;
    buf_put(b, c, 4);
}
static void buf_le32(buf *b, uint32_t v)
{
    unsigned char c[4];
    c[0] = (unsigned char)v; c[1] = (unsigned char)(v >> 8); c[2] = (unsigned char)(v >> 16); c[3] = (unsigned char)(v >> 24);
    buf_put(b, c, 4);
}
static void buf_free(buf *b) { free(b->p); memset(b, 0, sizeof *b); }

static unsigned char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    unsigned char *p;
    long n;
    *size = 0;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = (unsigned char *)malloc(n > 0 ? (size_t)n : 1);
    if (p && n > 0 && fread(p, 1, (size_t)n, f) != (size_t)n) { free(p); p = NULL; }
    fclose(f);
    if (p) *size = (size_t)(n > 0 ? n : 0);
    return p;
}

static int write_all(const char *path, const void *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return 0;
    ok = fwrite(d, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

/* Must match lines_text() in gen_pngsuite.py. */
static void lines_text(buf *b, int n)
{
    char line[128];
    int i;
    for (i = 0; i < n; i++) {
        int len = snprintf(line, sizeof line, "line %d: the quick brown fox jumps over %d lazy dogs\n", i, i * i % 97);
        buf_put(b, line, (size_t)len);
    }
}

/* ----------------------------------------------------- deflate by hand */

typedef struct { buf b; unsigned acc; int nb; } bw_t;

static void bw_bits(bw_t *w, unsigned v, int n)
{
    int i;
    for (i = 0; i < n; i++) {
        if ((v >> i) & 1) w->acc |= 1u << w->nb;
        if (++w->nb == 8) { buf_u8(&w->b, w->acc); w->acc = 0; w->nb = 0; }
    }
}
/* a Huffman code goes out most significant bit first */
static void bw_code(bw_t *w, unsigned code, int len)
{
    int i;
    for (i = len - 1; i >= 0; i--) bw_bits(w, (code >> i) & 1, 1);
}
static void bw_flush(bw_t *w)
{
    if (w->nb) { buf_u8(&w->b, w->acc); w->acc = 0; w->nb = 0; }
}
static void fixed_lit(bw_t *w, int sym)
{
    if (sym < 144) bw_code(w, 0x30u + (unsigned)sym, 8);
    else if (sym < 256) bw_code(w, 0x190u + (unsigned)(sym - 144), 9);
    else if (sym < 280) bw_code(w, (unsigned)(sym - 256), 7);
    else bw_code(w, 0xC0u + (unsigned)(sym - 280), 8);
}
/* RFC 1951 3.2.2 canonical codes */
static void canon(const int *lens, int n, unsigned *codes)
{
    int bl[16] = { 0 }, i, b;
    unsigned next[16], code = 0;
    for (i = 0; i < n; i++) bl[lens[i]]++;
    bl[0] = 0;
    for (b = 1; b < 16; b++) { code = (code + (unsigned)bl[b - 1]) << 1; next[b] = code; }
    for (i = 0; i < n; i++) if (lens[i]) codes[i] = next[lens[i]]++;
}
static void dyn_begin(bw_t *w, int hlit, int hdist, int hclen, const int cl[19], unsigned codes[19])
{
    static const int order[19] = { 16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15 };
    int i;
    bw_bits(w, 1, 1);
    bw_bits(w, 2, 2);
    bw_bits(w, (unsigned)(hlit - 257), 5);
    bw_bits(w, (unsigned)(hdist - 1), 5);
    bw_bits(w, (unsigned)(hclen - 4), 4);
    for (i = 0; i < hclen; i++) bw_bits(w, (unsigned)cl[order[i]], 3);
    canon(cl, 19, codes);
}
static void cl_sym(bw_t *w, const int cl[19], const unsigned codes[19], int sym, unsigned extra)
{
    bw_code(w, codes[sym], cl[sym]);
    if (sym == 16) bw_bits(w, extra, 2);
    if (sym == 17) bw_bits(w, extra, 3);
    if (sym == 18) bw_bits(w, extra, 7);
}

/* zlib / gzip / PNG made of stored blocks */
static void deflate_stored(buf *o, const unsigned char *d, size_t n)
{
    size_t off = 0;
    do {
        size_t k = n - off > 65535 ? 65535 : n - off;
        buf_u8(o, off + k == n ? 1 : 0);
        buf_u8(o, (unsigned)(k & 255)); buf_u8(o, (unsigned)(k >> 8));
        buf_u8(o, (unsigned)(~k & 255)); buf_u8(o, (unsigned)((~k >> 8) & 255));
        buf_put(o, d + off, k);
        off += k;
    } while (off < n);
}
static void zlib_stored(buf *o, const unsigned char *d, size_t n)
{
    buf_u8(o, 0x78); buf_u8(o, 0x01);
    deflate_stored(o, d, n);
    buf_be32(o, irmae_adler32(1, d, n));
}
static void gzip_stored(buf *o, const unsigned char *d, size_t n)
{
    static const unsigned char hdr[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3 };
    buf_put(o, hdr, 10);
    deflate_stored(o, d, n);
    buf_le32(o, irmae_crc32(0, d, n));
    buf_le32(o, (uint32_t)n);
}

static void png_sig(buf *b)
{
    static const unsigned char sig[8] = { 137, 80, 78, 71, 13, 10, 26, 10 };
    buf_put(b, sig, 8);
}
static void png_chunk(buf *b, const char *type, const void *d, size_t n)
{
    size_t at;
    buf_be32(b, (uint32_t)n);
    at = b->n;
    buf_put(b, type, 4);
    buf_put(b, d, n);
    buf_be32(b, irmae_crc32(0, b->p + at, n + 4));
}
static void png_ihdr(buf *b, uint32_t w, uint32_t h, int depth, int ctype, int interlace)
{
    buf t = { 0, 0, 0 };
    buf_be32(&t, w); buf_be32(&t, h);
    buf_u8(&t, (unsigned)depth); buf_u8(&t, (unsigned)ctype); buf_u8(&t, 0); buf_u8(&t, 0); buf_u8(&t, (unsigned)interlace);
    png_chunk(b, "IHDR", t.p, t.n);
    buf_free(&t);
}
/* IDAT (one chunk) of h rows of rowbytes unfiltered bytes, filter byte ft */
static void png_idat_rows(buf *b, const unsigned char *rows, size_t rowbytes, size_t h, int ft)
{
    buf raw = { 0, 0, 0 }, z = { 0, 0, 0 };
    size_t y;
    for (y = 0; y < h; y++) { buf_u8(&raw, (unsigned)ft); buf_put(&raw, rows + y * rowbytes, rowbytes); }
    zlib_stored(&z, raw.p, raw.n);
    png_chunk(b, "IDAT", z.p, z.n);
    buf_free(&raw); buf_free(&z);
}
/* Recomputes every chunk CRC of a (mutated) PNG, as far as lengths allow. */
static void png_fix_crcs(unsigned char *p, size_t n)
{
    size_t pos = 8;
    while (pos + 12 <= n) {
        uint32_t len = ((uint32_t)p[pos] << 24) | ((uint32_t)p[pos + 1] << 16) | ((uint32_t)p[pos + 2] << 8) | p[pos + 3];
        uint32_t c;
        if (len > n - pos - 12) break;
        c = irmae_crc32(0, p + pos + 4, (size_t)len + 4);
        p[pos + 8 + len] = (unsigned char)(c >> 24); p[pos + 9 + len] = (unsigned char)(c >> 16);
        p[pos + 10 + len] = (unsigned char)(c >> 8); p[pos + 11 + len] = (unsigned char)c;
        pos += 12 + (size_t)len;
    }
}

/* ------------------------------------------------------------- inflate */

static int inflate_eq(const buf *src, size_t max_out, const char *want, size_t want_n)
{
    unsigned char *o = NULL;
    size_t n = 0;
    int rc = irmae_inflate(&o, &n, src->p, src->n, max_out), ok;
    ok = rc == 0 && o != NULL && n == want_n && (want_n == 0 || memcmp(o, want, want_n) == 0);
    irmae_free_buffer(o);
    return ok;
}

static int inflate_rc(const buf *src)
{
    unsigned char *o = (unsigned char *)1;
    size_t n = 7;
    int rc = irmae_inflate(&o, &n, src->p, src->n, 0);
    if (rc) { if (o != NULL || n != 0) return 999; }
    else irmae_free_buffer(o);
    return rc;
}

static void every_truncation(const char *what, const unsigned char *p, size_t n, int kind, int step)
{
    size_t k, full_n = 0;
    int bad = 0, tested = 0, prefixes = 0;
    unsigned char *full = NULL;
    if (kind == 2 && irmae_gzip_decompress(&full, &full_n, p, n, 0) != 0) full = NULL;
    for (k = 0; k < n; k += (step > 1 && k >= 256 && k + 256 < n) ? (size_t)step : 1) {
        unsigned char *cp = (unsigned char *)malloc(k ? k : 1), *o = NULL;
        size_t on = 0;
        int rc;
        irmae_image img;
        irmae_idx idx;
        if (k) memcpy(cp, p, k);
        irmae_error_clear();
        switch (kind) {
        case 0: rc = irmae_inflate(&o, &on, cp, k, 0); break;
        case 1: rc = irmae_zlib_decompress(&o, &on, cp, k, 0); break;
        case 2: rc = irmae_gzip_decompress(&o, &on, cp, k, 0); break;
        case 3: rc = irmae_png_decode(&img, cp, k, 0); if (!rc) irmae_image_free(&img); break;
        default: rc = irmae_idx_parse(&idx, cp, k); if (!rc) irmae_idx_free(&idx); break;
        }
        if (!rc && kind == 2 && full && on <= full_n && memcmp(o, full, on) == 0) {
            prefixes++; /* a cut at a member boundary: a valid shorter file */
            irmae_free_buffer(o);
            free(cp);
            continue;
        }
        if (!rc) irmae_free_buffer(o);
        if (!named(rc)) {
            if (bad < 3) printf("  truncation of %s to %lu bytes: rc %d (%s)\n", what, (unsigned long)k, rc, irmae_error_detail());
            bad++;
        }
        tested++;
        free(cp);
    }
    CHECK(bad == 0, "%s: %d of %d truncations not rejected with a named error", what, bad, tested);
    if (prefixes) printf("truncations of %s: %d cut at member boundaries decode to a prefix\n", what, prefixes);
    irmae_free_buffer(full);
}

static void test_inflate(void)
{
    static const char hello[] = "hello";
    buf s = { 0, 0, 0 };
    bw_t w;
    int cl[19], i;
    unsigned codes[19], v;
    unsigned char *o;
    size_t n;
    int rc;

    /* stored block */
    buf_u8(&s, 1); buf_u8(&s, 5); buf_u8(&s, 0); buf_u8(&s, 0xfa); buf_u8(&s, 0xff); buf_put(&s, hello, 5);
    CHECK(inflate_eq(&s, 0, hello, 5), "stored block 'hello'");
    CHECK(inflate_eq(&s, 5, hello, 5), "limit equal to the output size");
    o = NULL; n = 0;
    rc = irmae_inflate(&o, &n, s.p, s.n, 4);
    CHECK(rc == IRMAE_ERR_LIMIT && o == NULL && n == 0, "limit 4 < 5 bytes gives LIMIT, got %d", rc);
    every_truncation("stored block", s.p, s.n, 0, 1);
    buf_u8(&s, 0);
    CHECK(inflate_rc(&s) == IRMAE_ERR_FORMAT, "byte after the final block");
    s.p[3] = 0xfb; s.n--;
    CHECK(inflate_rc(&s) == IRMAE_ERR_FORMAT, "stored LEN/NLEN mismatch");
    buf_free(&s);

    /* empty fixed block: 03 00 */
    buf_u8(&s, 3); buf_u8(&s, 0);
    o = NULL; n = 99;
    rc = irmae_inflate(&o, &n, s.p, s.n, 0);
    CHECK(rc == 0 && o != NULL && n == 0, "empty fixed block: rc %d n %lu", rc, (unsigned long)n);
    irmae_free_buffer(o);
    buf_free(&s);

    /* fixed Huffman: a b c, then length 9 distance 3, then end of block */
    memset(&w, 0, sizeof w);
    bw_bits(&w, 1, 1); bw_bits(&w, 1, 2);
    fixed_lit(&w, 'a'); fixed_lit(&w, 'b'); fixed_lit(&w, 'c');
    fixed_lit(&w, 263); bw_code(&w, 2, 5);
    fixed_lit(&w, 256);
    bw_flush(&w);
    CHECK(inflate_eq(&w.b, 0, "abcabcabcabc", 12), "fixed Huffman with a back-reference");
    every_truncation("fixed block", w.b.p, w.b.n, 0, 1);
    buf_free(&w.b);

    /* stored (not final) followed by fixed (final) */
    memset(&w, 0, sizeof w);
    bw_bits(&w, 0, 1); bw_bits(&w, 0, 2); bw_flush(&w);
    buf_u8(&w.b, 2); buf_u8(&w.b, 0); buf_u8(&w.b, 0xfd); buf_u8(&w.b, 0xff); buf_put(&w.b, "xy", 2);
    bw_bits(&w, 1, 1); bw_bits(&w, 1, 2); fixed_lit(&w, 'z'); fixed_lit(&w, 259); bw_code(&w, 2, 5); fixed_lit(&w, 256);
    bw_flush(&w);
    CHECK(inflate_eq(&w.b, 0, "xyzxyzxy", 8), "stored + fixed blocks, overlapping copy");
    buf_free(&w.b);

    /* reserved block type */
    buf_u8(&s, 7);
    CHECK(inflate_rc(&s) == IRMAE_ERR_FORMAT, "block type 3");
    buf_free(&s);

    /* distance farther back than the output */
    memset(&w, 0, sizeof w);
    bw_bits(&w, 1, 1); bw_bits(&w, 1, 2); fixed_lit(&w, 'a'); fixed_lit(&w, 257); bw_code(&w, 1, 5); fixed_lit(&w, 256);
    bw_flush(&w);
    CHECK(inflate_rc(&w.b) == IRMAE_ERR_FORMAT, "distance 2 after 1 byte");
    buf_free(&w.b);
    /* distance 0 bytes back on empty output */
    memset(&w, 0, sizeof w);
    bw_bits(&w, 1, 1); bw_bits(&w, 1, 2); fixed_lit(&w, 257); bw_code(&w, 0, 5); fixed_lit(&w, 256);
    bw_flush(&w);
    CHECK(inflate_rc(&w.b) == IRMAE_ERR_FORMAT, "distance 1 on empty output");
    buf_free(&w.b);
    /* invalid literal/length symbol 286 and distance symbol 30 */
    memset(&w, 0, sizeof w);
    bw_bits(&w, 1, 1); bw_bits(&w, 1, 2); fixed_lit(&w, 'a'); fixed_lit(&w, 286); fixed_lit(&w, 256);
    bw_flush(&w);
    CHECK(inflate_rc(&w.b) == IRMAE_ERR_FORMAT, "literal/length symbol 286");
    buf_free(&w.b);
    memset(&w, 0, sizeof w);
    bw_bits(&w, 1, 1); bw_bits(&w, 1, 2); fixed_lit(&w, 'a'); fixed_lit(&w, 'a'); fixed_lit(&w, 257); bw_code(&w, 30, 5); fixed_lit(&w, 256);
    bw_flush(&w);
    CHECK(inflate_rc(&w.b) == IRMAE_ERR_FORMAT, "distance symbol 30");
    buf_free(&w.b);

    /* output limit inside a long run: 'a' then 10000 x (258, distance 1) */
    memset(&w, 0, sizeof w);
    bw_bits(&w, 1, 1); bw_bits(&w, 1, 2); fixed_lit(&w, 'a');
    for (i = 0; i < 10000; i++) { fixed_lit(&w, 285); bw_code(&w, 0, 5); }
    fixed_lit(&w, 256);
    bw_flush(&w);
    o = NULL; n = 0;
    rc = irmae_inflate(&o, &n, w.b.p, w.b.n, 1000000);
    CHECK(rc == IRMAE_ERR_LIMIT && o == NULL, "2.58 MB run under a 1 MB limit: rc %d", rc);
    rc = irmae_inflate(&o, &n, w.b.p, w.b.n, 0);
    CHECK(rc == 0 && n == 2580001 && o[0] == 'a' && o[n - 1] == 'a', "2.58 MB run, default limit: rc %d n %lu", rc, (unsigned long)n);
    irmae_free_buffer(o);
    buf_free(&w.b);

    /* a dynamic block: literal 'a' and end-of-block of length 1, one distance code */
    memset(cl, 0, sizeof cl);
    cl[1] = 1; cl[18] = 1;
    memset(&w, 0, sizeof w);
    dyn_begin(&w, 257, 1, 18, cl, codes);
    cl_sym(&w, cl, codes, 18, 97 - 11);
    cl_sym(&w, cl, codes, 1, 0);
    cl_sym(&w, cl, codes, 18, 138 - 11);
    cl_sym(&w, cl, codes, 18, 20 - 11);
    cl_sym(&w, cl, codes, 1, 0); /* 256 */
    cl_sym(&w, cl, codes, 1, 0); /* distance 0: a single 1-bit code, allowed */
    bw_code(&w, 0, 1); bw_code(&w, 0, 1); bw_code(&w, 0, 1); bw_code(&w, 1, 1);
    bw_flush(&w);
    CHECK(inflate_eq(&w.b, 0, "aaa", 3), "hand-made dynamic block");
    every_truncation("dynamic block", w.b.p, w.b.n, 0, 1);
    buf_free(&w.b);

    /* dynamic header errors */
    memset(&w, 0, sizeof w);
    bw_bits(&w, 1, 1); bw_bits(&w, 2, 2); bw_bits(&w, 30, 5); bw_bits(&w, 0, 5); bw_bits(&w, 0, 4);
    for (i = 0; i < 4; i++) bw_bits(&w, 1, 3);
    bw_flush(&w);
    CHECK(inflate_rc(&w.b) == IRMAE_ERR_FORMAT, "HLIT = 287");
    buf_free(&w.b);
    memset(&w, 0, sizeof w);
    bw_bits(&w, 1, 1); bw_bits(&w, 2, 2); bw_bits(&w, 0, 5); bw_bits(&w, 30, 5); bw_bits(&w, 0, 4);
    for (i = 0; i < 4; i++) bw_bits(&w, 1, 3);
    bw_flush(&w);
    CHECK(inflate_rc(&w.b) == IRMAE_ERR_FORMAT, "HDIST = 31");
    buf_free(&w.b);

    memset(cl, 0, sizeof cl);
    cl[16] = cl[17] = cl[18] = cl[0] = 1;
    memset(&w, 0, sizeof w); dyn_begin(&w, 257, 1, 4, cl, codes); bw_bits(&w, 0, 16); bw_flush(&w);
    CHECK(inflate_rc(&w.b) == IRMAE_ERR_FORMAT, "over-subscribed code-length code");
    buf_free(&w.b);

    memset(cl, 0, sizeof cl);
    cl[18] = 1;
    memset(&w, 0, sizeof w); dyn_begin(&w, 257, 1, 4, cl, codes); bw_bits(&w, 0, 16); bw_flush(&w);
    CHECK(inflate_rc(&w.b) == IRMAE_ERR_FORMAT, "incomplete code-length code");
    buf_free(&w.b);

    memset(cl, 0, sizeof cl);
    cl[16] = 1; cl[18] = 1;
    memset(&w, 0, sizeof w); dyn_begin(&w, 257, 1, 4, cl, codes);
    cl_sym(&w, cl, codes, 16, 0); bw_bits(&w, 0, 16); bw_flush(&w);
    CHECK(inflate_rc(&w.b) == IRMAE_ERR_FORMAT, "repeat 16 with no previous length");
    buf_free(&w.b);

    memset(&w, 0, sizeof w); dyn_begin(&w, 257, 1, 4, cl, codes);
    cl_sym(&w, cl, codes, 18, 127); cl_sym(&w, cl, codes, 18, 127); bw_bits(&w, 0, 16); bw_flush(&w);
    CHECK(inflate_rc(&w.b) == IRMAE_ERR_FORMAT, "repeat overruns the 258 lengths");
    buf_free(&w.b);

    memset(cl, 0, sizeof cl);
    cl[0] = 2; cl[1] = 2; cl[18] = 1;
    memset(&w, 0, sizeof w); dyn_begin(&w, 257, 1, 18, cl, codes);
    cl_sym(&w, cl, codes, 18, 127); cl_sym(&w, cl, codes, 18, 118 - 11);
    cl_sym(&w, cl, codes, 0, 0); cl_sym(&w, cl, codes, 1, 0); bw_bits(&w, 0, 16); bw_flush(&w);
    CHECK(inflate_rc(&w.b) == IRMAE_ERR_FORMAT, "no end-of-block code");
    buf_free(&w.b);

    memset(cl, 0, sizeof cl);
    cl[1] = 2; cl[2] = 2; cl[18] = 1;
    memset(&w, 0, sizeof w); dyn_begin(&w, 257, 1, 18, cl, codes);
    cl_sym(&w, cl, codes, 2, 0); cl_sym(&w, cl, codes, 18, 127); cl_sym(&w, cl, codes, 18, 117 - 11);
    cl_sym(&w, cl, codes, 2, 0); cl_sym(&w, cl, codes, 1, 0); bw_bits(&w, 0, 16); bw_flush(&w);
    CHECK(inflate_rc(&w.b) == IRMAE_ERR_FORMAT, "incomplete literal/length code");
    buf_free(&w.b);

    /* over-subscribed literal/length code: three codes of length 1 */
    memset(cl, 0, sizeof cl);
    cl[1] = 1; cl[18] = 1;
    memset(&w, 0, sizeof w); dyn_begin(&w, 257, 1, 18, cl, codes);
    cl_sym(&w, cl, codes, 1, 0); cl_sym(&w, cl, codes, 1, 0);
    cl_sym(&w, cl, codes, 18, 127); cl_sym(&w, cl, codes, 18, 117 - 11);
    cl_sym(&w, cl, codes, 1, 0); cl_sym(&w, cl, codes, 1, 0); bw_bits(&w, 0, 16); bw_flush(&w);
    CHECK(inflate_rc(&w.b) == IRMAE_ERR_FORMAT, "over-subscribed literal/length code");
    buf_free(&w.b);

    /* arguments */
    v = 0;
    CHECK(irmae_inflate(&o, &n, NULL, 3, 0) == IRMAE_ERR_ARG, "NULL src");
    CHECK(irmae_inflate(NULL, &n, &v, 1, 0) == IRMAE_ERR_ARG, "NULL out");
    CHECK(irmae_inflate(&o, &n, NULL, 0, 0) == IRMAE_ERR_TRUNCATED, "empty input");
}

/* ---------------------------------------------------------- zlib, gzip */

static unsigned char *load_data(const char *name, size_t *n)
{
    char path[512];
    unsigned char *p;
    snprintf(path, sizeof path, "tests/data/%s", name);
    p = read_all(path, n);
    CHECK(p != NULL, "cannot read %s (run from the repository root)", path);
    return p;
}

static void test_zlib_gzip(void)
{
    buf text = { 0, 0, 0 }, t50 = { 0, 0, 0 }, z = { 0, 0, 0 };
    unsigned char *p, *o;
    size_t n, on;
    int rc;
    lines_text(&text, 200);
    lines_text(&t50, 50);

    p = load_data("lines200.zz", &n);
    if (p) {
        rc = irmae_zlib_decompress(&o, &on, p, n, 0);
        CHECK(rc == 0 && on == text.n && memcmp(o, text.p, on) == 0, "lines200.zz (dynamic Huffman): rc %d", rc);
        if (!rc) irmae_free_buffer(o);
        every_truncation("lines200.zz", p, n, 1, 1);
        p[n - 1] ^= 1;
        CHECK(irmae_zlib_decompress(&o, &on, p, n, 0) == IRMAE_ERR_CHECKSUM, "Adler-32 mismatch");
        p[n - 1] ^= 1;
        CHECK(irmae_zlib_decompress(&o, &on, p, n, text.n - 1) == IRMAE_ERR_LIMIT, "zlib limit");
        CHECK(irmae_inflate(&o, &on, p + 2, n - 6, 0) == 0 && on == text.n, "raw inflate of the zlib body");
        irmae_free_buffer(o);
        free(p);
    }
    zlib_stored(&z, text.p, text.n);
    rc = irmae_zlib_decompress(&o, &on, z.p, z.n, 0);
    CHECK(rc == 0 && on == text.n && memcmp(o, text.p, on) == 0, "stored zlib");
    if (!rc) irmae_free_buffer(o);
    z.p[0] = 0x79; /* CM 9 */
    CHECK(irmae_zlib_decompress(&o, &on, z.p, z.n, 0) == IRMAE_ERR_FORMAT, "CM != 8");
    z.p[0] = 0x88; z.p[1] = 0x1c; /* CINFO 8, FCHECK valid: 0x881c % 31 == 0 */
    CHECK((0x881c % 31) == 0 && irmae_zlib_decompress(&o, &on, z.p, z.n, 0) == IRMAE_ERR_FORMAT, "CINFO 8");
    z.p[0] = 0x78; z.p[1] = 0x02;
    CHECK(irmae_zlib_decompress(&o, &on, z.p, z.n, 0) == IRMAE_ERR_FORMAT, "bad FCHECK");
    z.p[1] = 0x20; /* FDICT, FCHECK 0: 0x7820 % 31 == 0 */
    CHECK((0x7820 % 31) == 0 && irmae_zlib_decompress(&o, &on, z.p, z.n, 0) == IRMAE_ERR_UNSUPPORTED, "FDICT");
    z.p[1] = 0x01;
    buf_u8(&z, 0);
    CHECK(irmae_zlib_decompress(&o, &on, z.p, z.n, 0) == IRMAE_ERR_FORMAT, "byte after the Adler-32");
    buf_free(&z);

    p = load_data("lines200.gz", &n);
    if (p) {
        rc = irmae_gzip_decompress(&o, &on, p, n, 0);
        CHECK(rc == 0 && on == text.n && memcmp(o, text.p, on) == 0, "lines200.gz: rc %d", rc);
        if (!rc) irmae_free_buffer(o);
        every_truncation("lines200.gz", p, n, 2, 1);
        p[n - 8] ^= 0x10;
        CHECK(irmae_gzip_decompress(&o, &on, p, n, 0) == IRMAE_ERR_CHECKSUM, "gzip CRC-32 mismatch");
        p[n - 8] ^= 0x10;
        p[n - 4] ^= 1;
        CHECK(irmae_gzip_decompress(&o, &on, p, n, 0) == IRMAE_ERR_CHECKSUM, "gzip ISIZE mismatch");
        p[n - 4] ^= 1;
        p[3] |= 0x20;
        CHECK(irmae_gzip_decompress(&o, &on, p, n, 0) == IRMAE_ERR_FORMAT, "gzip reserved flag");
        p[3] &= 0x1f;
        p[2] = 7;
        CHECK(irmae_gzip_decompress(&o, &on, p, n, 0) == IRMAE_ERR_FORMAT, "gzip CM 7");
        p[2] = 8;
        free(p);
    }
    p = load_data("multi.gz", &n);
    if (p) {
        size_t hdr2, i;
        rc = irmae_gzip_decompress(&o, &on, p, n, 0);
        CHECK(rc == 0 && on == 13 + t50.n && memcmp(o, "first member\n", 13) == 0 && memcmp(o + 13, t50.p, t50.n) == 0,
              "multi.gz: 3 members (FEXTRA, FNAME, FCOMMENT, FHCRC, empty member, zero padding): rc %d", rc);
        if (!rc) irmae_free_buffer(o);
        every_truncation("multi.gz", p, n, 2, 1);
        /* find the second member: the first 1f 8b 08 1e after offset 10 */
        for (hdr2 = 10; hdr2 + 4 < n; hdr2++)
            if (p[hdr2] == 0x1f && p[hdr2 + 1] == 0x8b && p[hdr2 + 2] == 8 && p[hdr2 + 3] == 0x1e) break;
        CHECK(hdr2 + 4 < n, "second member with FHCRC found");
        if (hdr2 + 4 < n) {
            for (i = hdr2 + 10; i < n && p[i] != 'w'; i++) {}
            p[i] ^= 1; /* inside FEXTRA: only the header CRC notices */
            CHECK(irmae_gzip_decompress(&o, &on, p, n, 0) == IRMAE_ERR_CHECKSUM, "FHCRC mismatch");
            p[i] ^= 1;
        }
        p[n - 1] = 7; /* garbage instead of zero padding */
        CHECK(irmae_gzip_decompress(&o, &on, p, n, 0) == IRMAE_ERR_FORMAT, "garbage after the last member");
        CHECK(irmae_gzip_decompress(&o, &on, p, n, 13 + t50.n - 1) == IRMAE_ERR_LIMIT, "gzip limit over members");
        free(p);
    }
    gzip_stored(&z, t50.p, t50.n);
    gzip_stored(&z, text.p, text.n);
    rc = irmae_gzip_decompress(&o, &on, z.p, z.n, 0);
    CHECK(rc == 0 && on == t50.n + text.n && memcmp(o + t50.n, text.p, text.n) == 0, "two stored gzip members");
    if (!rc) irmae_free_buffer(o);
    buf_free(&z);
    CHECK(irmae_gzip_decompress(&o, &on, NULL, 0, 0) == IRMAE_ERR_TRUNCATED, "empty gzip input");
    CHECK(irmae_gzip_decompress(&o, &on, "\x1f\x8c", 2, 0) == IRMAE_ERR_FORMAT, "bad gzip magic");
    buf_free(&text);
    buf_free(&t50);
}

/* ---------------------------------------------------------------- PNG */

/* Compares decoding of NAME.png with the NAME.wK.raw files in dir. */
static int png_vs_raw(const char *dir, const char *name, int w, int h, int c0, const int *wants, int nwants)
{
    char path[600];
    unsigned char *file, *raw;
    size_t fn, rn;
    int i, ok = 1;
    snprintf(path, sizeof path, "%s/%s.png", dir, name);
    file = read_all(path, &fn);
    if (!file) { printf("  cannot read %s\n", path); return 0; }
    for (i = 0; i < nwants; i++) {
        irmae_image img;
        int want = wants[i], c = want ? want : c0, rc;
        snprintf(path, sizeof path, "%s/%s.w%d.raw", dir, name, want);
        raw = read_all(path, &rn);
        rc = irmae_png_decode(&img, file, fn, want);
        if (!raw || rc || img.w != w || img.h != h || img.c != c || rn != (size_t)w * h * c ||
            memcmp(img.pixels, raw, rn) != 0) {
            if (ok) printf("  %s want %d: rc %d (%s) got %dx%dx%d\n", name, want, rc, irmae_error_detail(), img.w, img.h, img.c);
            ok = 0;
        }
        irmae_image_free(&img);
        free(raw);
    }
    free(file);
    return ok;
}

static int run_manifest(const char *dir, const char *manifest, const int *wants, int nwants, int *count)
{
    char path[600], name[256];
    FILE *f;
    int w, h, c0, bad = 0;
    *count = 0;
    snprintf(path, sizeof path, "%s/%s", dir, manifest);
    f = fopen(path, "r");
    if (!f) return -1;
    while (fscanf(f, "%255s %d %d %d", name, &w, &h, &c0) == 4) {
        if (!png_vs_raw(dir, name, w, h, c0, wants, nwants)) bad++;
        (*count)++;
    }
    fclose(f);
    return bad;
}

static int png_rc(const buf *b, int want)
{
    irmae_image img;
    int rc;
    memset(&img, 0x55, sizeof img);
    rc = irmae_png_decode(&img, b->p, b->n, want);
    if (rc) { if (img.pixels || img.w || img.h || img.c) return 999; }
    else irmae_image_free(&img);
    return rc;
}

/* A valid 8-bit grey 4x3 PNG with extra chunks hooks. */
static void grey_png(buf *b, int idat_split)
{
    static const unsigned char rows[12] = { 0, 50, 100, 150, 200, 250, 1, 2, 3, 4, 5, 255 };
    buf raw = { 0, 0, 0 }, z = { 0, 0, 0 };
    int y;
    png_sig(b);
    png_ihdr(b, 4, 3, 8, 0, 0);
    for (y = 0; y < 3; y++) { buf_u8(&raw, 0); buf_put(&raw, rows + 4 * y, 4); }
    zlib_stored(&z, raw.p, raw.n);
    if (idat_split > 0 && (size_t)idat_split < z.n) {
        png_chunk(b, "IDAT", z.p, (size_t)idat_split);
        png_chunk(b, "IDAT", z.p + idat_split, z.n - (size_t)idat_split);
    } else {
        png_chunk(b, "IDAT", z.p, z.n);
    }
    png_chunk(b, "IEND", NULL, 0);
    buf_free(&raw); buf_free(&z);
}

static void test_png_crafted(void)
{
    static const unsigned char grey_rows[12] = { 0, 50, 100, 150, 200, 250, 1, 2, 3, 4, 5, 255 };
    buf b = { 0, 0, 0 }, t = { 0, 0, 0 };
    irmae_image img;
    unsigned char px[64], pal[12];
    int rc, k, ok;
    size_t zn;

    grey_png(&b, 0);
    rc = irmae_png_decode(&img, b.p, b.n, 0);
    CHECK(rc == 0 && img.w == 4 && img.h == 3 && img.c == 1 && memcmp(img.pixels, grey_rows, 12) == 0, "grey 4x3: rc %d", rc);
    irmae_image_free(&img);
    rc = irmae_png_decode(&img, b.p, b.n, 4);
    CHECK(rc == 0 && img.c == 4 && img.pixels[4 * 5] == 250 && img.pixels[4 * 5 + 1] == 250 && img.pixels[4 * 5 + 3] == 255,
          "grey -> RGBA");
    irmae_image_free(&img);
    every_truncation("grey 4x3 png", b.p, b.n, 3, 1);
    zn = b.n;
    buf_free(&b);
    /* IDAT split at every position */
    ok = 1;
    for (k = 1; k < (int)zn; k++) {
        grey_png(&b, k);
        rc = irmae_png_decode(&img, b.p, b.n, 1);
        if (rc || memcmp(img.pixels, grey_rows, 12) != 0) ok = 0;
        irmae_image_free(&img);
        buf_free(&b);
    }
    CHECK(ok, "IDAT split at every byte decodes the same");

    /* bad CRC in IHDR, IDAT, and an ancillary chunk */
    grey_png(&b, 0);
    b.p[8 + 8 + 13] ^= 1;
    CHECK(png_rc(&b, 0) == IRMAE_ERR_CHECKSUM, "IHDR CRC");
    b.p[8 + 8 + 13] ^= 1;
    b.p[b.n - 12 - 1] ^= 0x40; /* last byte of the IDAT CRC */
    CHECK(png_rc(&b, 0) == IRMAE_ERR_CHECKSUM, "IDAT CRC");
    buf_free(&b);

    /* chunk rules on a small grey image */
#define GREY_START(w_, h_, d_, ct_) do { buf_free(&b); png_sig(&b); png_ihdr(&b, (w_), (h_), (d_), (ct_), 0); } while (0)
#define GREY_IDAT() png_idat_rows(&b, grey_rows, 4, 3, 0)
#define END() png_chunk(&b, "IEND", NULL, 0)
    GREY_START(4, 3, 8, 0); png_chunk(&b, "tEXt", "a\0b", 3); png_chunk(&b, "zzZz", "x", 1); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == 0, "unknown ancillary chunks skipped");
    buf_put(&b, "trailing garbage", 16);
    CHECK(png_rc(&b, 0) == 0, "bytes after IEND ignored");
    GREY_START(4, 3, 8, 0); png_chunk(&b, "ZZZZ", "x", 1); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_UNSUPPORTED, "unknown critical chunk");
    GREY_START(4, 3, 8, 0); png_chunk(&b, "a1cd", "x", 1); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "chunk type with a digit");
    GREY_START(4, 3, 8, 0); GREY_IDAT();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_TRUNCATED, "no IEND");
    GREY_START(4, 3, 8, 0); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "no IDAT");
    GREY_START(4, 3, 8, 0); GREY_IDAT(); png_chunk(&b, "IEND", "x", 1);
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "IEND with data");
    GREY_START(4, 3, 8, 0); GREY_IDAT(); png_chunk(&b, "tEXt", "a\0b", 3); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "IDAT chunks not consecutive");
    GREY_START(4, 3, 8, 0); png_ihdr(&b, 4, 3, 8, 0, 0); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "two IHDR");
    buf_free(&b); png_sig(&b); png_chunk(&b, "tEXt", "a\0b", 3); png_ihdr(&b, 4, 3, 8, 0, 0); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "IHDR not first");
    buf_free(&b); png_sig(&b); png_chunk(&b, "IHDR", "\0\0\0\4\0\0\0\3\10\0\0\0", 12); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "IHDR of 12 bytes");
    GREY_START(0, 3, 8, 0); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "width 0");
    GREY_START(4, 0, 8, 0); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "height 0");
    GREY_START(0x80000000u, 3, 8, 0); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "width 2^31");
    GREY_START(40000, 3, 8, 0); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_LIMIT, "width 40000 > IRMAE_MAX_IMAGE_DIM");
    GREY_START(30000, 30000, 8, 0); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_LIMIT, "30000 x 30000 > IRMAE_MAX_IMAGE_PIXELS");
    GREY_START(8192, 8192, 16, 6); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "8192^2 RGBA16 header with 15 bytes of data (no huge allocation)");
    GREY_START(4, 3, 4, 2); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "RGB at 4 bits");
    GREY_START(4, 3, 16, 3); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "palette at 16 bits");
    GREY_START(4, 3, 8, 5); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "colour type 5");
    buf_free(&b); png_sig(&b); png_ihdr(&b, 4, 3, 8, 0, 2); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "interlace method 2");
    buf_free(&b); png_sig(&b); png_chunk(&b, "IHDR", "\0\0\0\4\0\0\0\3\10\0\1\0\0", 13); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "compression method 1");
    GREY_START(4, 3, 8, 0); png_idat_rows(&b, grey_rows, 4, 3, 5); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "filter type 5");
    GREY_START(4, 4, 8, 0); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "too little image data");
    GREY_START(4, 2, 8, 0); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "too much image data");
    GREY_START(4, 3, 8, 0);
    {   /* IDAT holding a stream whose Adler-32 is wrong */
        buf raw = { 0, 0, 0 }, z = { 0, 0, 0 };
        int y;
        for (y = 0; y < 3; y++) { buf_u8(&raw, 0); buf_put(&raw, grey_rows + 4 * y, 4); }
        zlib_stored(&z, raw.p, raw.n);
        z.p[z.n - 1] ^= 1;
        png_chunk(&b, "IDAT", z.p, z.n);
        buf_free(&raw); buf_free(&z);
    }
    END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_CHECKSUM, "IDAT zlib Adler-32");
    GREY_START(4, 3, 8, 0); png_chunk(&b, "PLTE", "\1\2\3", 3); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "PLTE in a grey image");
    GREY_START(4, 3, 8, 4); png_chunk(&b, "tRNS", "\0\1", 2); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "tRNS in grey+alpha");
    GREY_START(4, 3, 8, 6); png_chunk(&b, "tRNS", "\0\1\0\1\0\1", 6); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "tRNS in RGBA");
    GREY_START(4, 3, 8, 0); png_chunk(&b, "tRNS", "\0\1\0", 3); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "grey tRNS of 3 bytes");
    GREY_START(4, 3, 8, 0); png_chunk(&b, "tRNS", "\0\144", 2); png_chunk(&b, "tRNS", "\0\144", 2); GREY_IDAT(); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "two tRNS");
    GREY_START(4, 3, 8, 0); GREY_IDAT(); png_chunk(&b, "tRNS", "\0\144", 2); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "tRNS after IDAT");
    GREY_START(4, 3, 8, 0); png_chunk(&b, "tRNS", "\0\144", 2); GREY_IDAT(); END();
    rc = irmae_png_decode(&img, b.p, b.n, 0);
    CHECK(rc == 0 && img.c == 2 && img.pixels[2 * 2] == 100 && img.pixels[2 * 2 + 1] == 0 && img.pixels[1] == 255,
          "grey tRNS key 100 -> alpha 0");
    irmae_image_free(&img);

    /* palette images: 8-bit indices */
    memset(pal, 0, sizeof pal);
    pal[0] = 10; pal[1] = 20; pal[2] = 30; pal[3] = 200; pal[4] = 100; pal[5] = 50;
    px[0] = 0; px[1] = 1; px[2] = 1; px[3] = 0;
    GREY_START(2, 2, 8, 3); png_chunk(&b, "PLTE", pal, 6); png_chunk(&b, "tRNS", "\200", 1); png_idat_rows(&b, px, 2, 2, 0); END();
    rc = irmae_png_decode(&img, b.p, b.n, 0);
    CHECK(rc == 0 && img.c == 4 && img.pixels[0] == 10 && img.pixels[3] == 128 && img.pixels[4] == 200 && img.pixels[7] == 255,
          "palette + tRNS -> RGBA: rc %d", rc);
    irmae_image_free(&img);
    rc = irmae_png_decode(&img, b.p, b.n, 1);
    /* grey of (200, 100, 50): (77*200 + 150*100 + 29*50 + 128) >> 8 = 124 */
    CHECK(rc == 0 && img.c == 1 && img.pixels[1] == 124 && img.pixels[0] == ((77 * 10 + 150 * 20 + 29 * 30 + 128) >> 8),
          "palette -> grey (BT.601 in 1/256ths): %d", rc ? -1 : img.pixels[1]);
    irmae_image_free(&img);
    px[3] = 2;
    GREY_START(2, 2, 8, 3); png_chunk(&b, "PLTE", pal, 6); png_idat_rows(&b, px, 2, 2, 0); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "palette index 2 of 2 entries");
    px[3] = 0;
    GREY_START(2, 2, 8, 3); png_idat_rows(&b, px, 2, 2, 0); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "palette image without PLTE");
    GREY_START(2, 2, 8, 3); png_chunk(&b, "PLTE", pal, 4); png_idat_rows(&b, px, 2, 2, 0); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "PLTE of 4 bytes");
    GREY_START(2, 2, 8, 3); png_chunk(&b, "PLTE", pal, 0); png_idat_rows(&b, px, 2, 2, 0); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "empty PLTE");
    GREY_START(2, 2, 1, 3); png_chunk(&b, "PLTE", pal, 9); px[0] = 0x40; px[1] = 0x80; png_idat_rows(&b, px, 1, 2, 0); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "3 PLTE entries at 1 bit");
    GREY_START(2, 2, 8, 3); png_chunk(&b, "PLTE", pal, 6); png_chunk(&b, "PLTE", pal, 6); png_idat_rows(&b, px, 2, 2, 0); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "two PLTE");
    GREY_START(2, 2, 8, 3); png_chunk(&b, "tRNS", "\200", 1); png_chunk(&b, "PLTE", pal, 6); png_idat_rows(&b, px, 2, 2, 0); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "tRNS before PLTE");
    GREY_START(2, 2, 8, 3); png_chunk(&b, "PLTE", pal, 6); png_chunk(&b, "tRNS", "\1\2\3", 3); png_idat_rows(&b, px, 2, 2, 0); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "tRNS longer than the palette");
    GREY_START(2, 2, 8, 3); png_chunk(&b, "PLTE", pal, 6); png_idat_rows(&b, px, 2, 2, 0); png_chunk(&b, "PLTE", pal, 6); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "PLTE after IDAT");
    GREY_START(2, 2, 8, 2); png_chunk(&b, "tRNS", "\0\1\0\2\0\3", 6); png_chunk(&b, "PLTE", pal, 6);
    px[0] = 1; px[1] = 2; px[2] = 3; memset(px + 3, 9, 9); png_idat_rows(&b, px, 6, 2, 0); END();
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "PLTE after tRNS (RGB)");

    /* 16-bit rounding and low-depth scaling */
    {
        static const unsigned char g16[8] = { 0x01, 0x01, 0x01, 0x81, 0x01, 0x82, 0xff, 0xff }; /* 257 385 386 65535 */
        static const unsigned char want16[4] = { 1, 1, 2, 255 };
        GREY_START(4, 1, 16, 0); png_idat_rows(&b, g16, 8, 1, 0); END();
        rc = irmae_png_decode(&img, b.p, b.n, 0);
        CHECK(rc == 0 && memcmp(img.pixels, want16, 4) == 0, "16 -> 8 bits rounds (v*255+32767)/65535");
        irmae_image_free(&img);
        px[0] = 0x6c; /* 2-bit samples 1 2 3 0 */
        GREY_START(4, 1, 2, 0); png_idat_rows(&b, px, 1, 1, 0); END();
        rc = irmae_png_decode(&img, b.p, b.n, 0);
        CHECK(rc == 0 && img.pixels[0] == 85 && img.pixels[1] == 170 && img.pixels[2] == 255 && img.pixels[3] == 0, "2-bit grey scaled");
        irmae_image_free(&img);
        px[0] = 0x3f; /* 4-bit samples 3 15 */
        GREY_START(2, 1, 4, 0); png_idat_rows(&b, px, 1, 1, 0); END();
        rc = irmae_png_decode(&img, b.p, b.n, 0);
        CHECK(rc == 0 && img.pixels[0] == 51 && img.pixels[1] == 255, "4-bit grey scaled");
        irmae_image_free(&img);
        px[0] = 0xa0; /* 1-bit 1 0 1 */
        GREY_START(3, 1, 1, 0); png_idat_rows(&b, px, 1, 1, 0); END();
        rc = irmae_png_decode(&img, b.p, b.n, 0);
        CHECK(rc == 0 && img.pixels[0] == 255 && img.pixels[1] == 0 && img.pixels[2] == 255, "1-bit grey: 1 -> 255");
        irmae_image_free(&img);
    }

    /* misc */
    grey_png(&b, 0);
    b.p[0] = 0x88;
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "bad signature");
    b.p[0] = 137;
    CHECK(png_rc(&b, 5) == IRMAE_ERR_ARG, "want_channels 5");
    CHECK(irmae_png_decode(NULL, b.p, b.n, 0) == IRMAE_ERR_ARG, "NULL out");
    b.p[8] = 0x80; /* IHDR length 2^31 + 13 */
    CHECK(png_rc(&b, 0) == IRMAE_ERR_FORMAT, "chunk length > 2^31 - 1");
    b.n = 5;
    CHECK(png_rc(&b, 0) == IRMAE_ERR_TRUNCATED, "5-byte file");
    CHECK(irmae_png_load(&img, "tests/data/no-such-file.png", 0) == IRMAE_ERR_IO, "missing file");
    buf_free(&b);
    buf_free(&t);
#undef GREY_START
#undef GREY_IDAT
#undef END
}

static const char *const committed_pngs[] = { "p_rgba8_i", "p_pal2_trns", "p_grey16", "p_grey1_trns_i",
                                              "p_rgb16_trns_i", "p_ga8" };

static void test_png_files(void)
{
    static const int w04[2] = { 0, 4 }, wall[5] = { 0, 1, 2, 3, 4 };
    char cmd[1200], path[300];
    const char *py = getenv("IRMAE_PYTHON");
    int count = 0, bad, i;
    irmae_image img;

    bad = run_manifest("tests/data", "pngs.txt", w04, 2, &count);
    CHECK(bad == 0 && count == 6, "committed PNGs: %d of %d differ from their raws", bad, count);
    snprintf(path, sizeof path, "tests/data/%s.png", committed_pngs[0]);
    CHECK(irmae_png_load(&img, path, 3) == 0 && img.w == 7 && img.h == 5 && img.c == 3, "irmae_png_load");
    irmae_image_free(&img);

    for (i = 0; i < 6; i++) {
        size_t n;
        unsigned char *p;
        snprintf(path, sizeof path, "%s.png", committed_pngs[i]);
        p = load_data(path, &n);
        if (p) every_truncation(path, p, n, 3, 1);
        free(p);
    }

    if (!py || !*py) py = "/usr/bin/python3";
    snprintf(cmd, sizeof cmd, "\"%s\" -c \"import png\" > /dev/null 2>&1", py);
    if (system(cmd) != 0) {
        skip("python with pypng not found ($IRMAE_PYTHON, default /usr/bin/python3): PNG suite not run");
        return;
    }
    MKDIR("build");
    snprintf(cmd, sizeof cmd, "\"%s\" tests/gen_pngsuite.py build/pngsuite > /dev/null", py);
    if (system(cmd) != 0) {
        CHECK(0, "tests/gen_pngsuite.py failed");
        return;
    }
    bad = run_manifest("build/pngsuite", "manifest.txt", wall, 5, &count);
    CHECK(bad == 0 && count > 250, "PNG suite (pypng and per-row filters): %d of %d files differ", bad, count);
    printf("png suite: %d files x 5 channel choices, %d differ\n", count, bad);
}

/* ------------------------------------------------------------ corruption */

static void corrupt_file(const char *name, int kind, int flips, uint64_t seed, int fix_crc)
{
    size_t n, i;
    unsigned char *p = load_data(name, &n), *cp;
    irmae_rng rng = irmae_rng_seed(seed);
    int bad = 0, valid = 0;
    if (!p) return;
    cp = (unsigned char *)malloc(n);
    for (i = 0; i < (size_t)flips; i++) {
        unsigned char *o = NULL;
        size_t on, at;
        int rc, nf = 1 + (int)(irmae_rng_u64(&rng) % 3), f;
        irmae_image img;
        irmae_idx idx;
        memcpy(cp, p, n);
        for (f = 0; f < nf; f++) {
            at = (size_t)(irmae_rng_u64(&rng) % n);
            if (fix_crc && at < 8) at = 8 + (size_t)(irmae_rng_u64(&rng) % (n - 8));
            if (irmae_rng_u64(&rng) & 1) cp[at] ^= (unsigned char)(1u << (irmae_rng_u64(&rng) % 8));
            else cp[at] = (unsigned char)irmae_rng_u64(&rng);
        }
        if (fix_crc) png_fix_crcs(cp, n);
        irmae_error_clear();
        switch (kind) {
        case 1: rc = irmae_zlib_decompress(&o, &on, cp, n, 0); break;
        case 2: rc = irmae_gzip_decompress(&o, &on, cp, n, 0); break;
        case 3:
            rc = irmae_png_decode(&img, cp, n, (int)(i % 5));
            if (!rc && (img.w <= 0 || img.h <= 0 || !img.pixels)) rc = 12345;
            if (!rc) irmae_image_free(&img);
            break;
        default: rc = irmae_idx_parse(&idx, cp, n); if (!rc) irmae_idx_free(&idx); break;
        }
        if (kind == 1 || kind == 2) { if (!rc) irmae_free_buffer(o); }
        if (rc == 0) valid++;
        else if (!named(rc)) { if (bad < 3) printf("  %s mutation %lu: rc %d\n", name, (unsigned long)i, rc); bad++; }
    }
    CHECK(bad == 0, "%s: %d of %d mutations gave no named error", name, bad, flips);
    printf("mutations of %-34s %5d tried, %5d still valid, the rest named errors%s\n", name, flips, valid,
           fix_crc ? " (CRCs recomputed)" : "");
    free(cp);
    free(p);
}

static void test_corruption(void)
{
    int i;
    char name[128];
    for (i = 0; i < 6; i++) {
        snprintf(name, sizeof name, "%s.png", committed_pngs[i]);
        corrupt_file(name, 3, 1500, 100 + (uint64_t)i, 0);
        corrupt_file(name, 3, 1500, 200 + (uint64_t)i, 1);
    }
    corrupt_file("lines200.zz", 1, 2000, 11, 0);
    corrupt_file("lines200.gz", 2, 2000, 12, 0);
    corrupt_file("multi.gz", 2, 2000, 13, 0);
    corrupt_file("mnist100-labels-idx1-ubyte.gz", 4, 1000, 14, 0);
    corrupt_file("mnist100-images-idx3-ubyte.gz", 4, 300, 15, 0);
}

/* ---------------------------------------------------------------- IDX */

static void idx_header(buf *b, int type, int rank, const uint32_t *dims)
{
    int k;
    buf_u8(b, 0); buf_u8(b, 0); buf_u8(b, (unsigned)type); buf_u8(b, (unsigned)rank);
    for (k = 0; k < rank; k++) buf_be32(b, dims[k]);
}

static int idx_rc(const buf *b)
{
    irmae_idx x;
    int rc;
    memset(&x, 0x33, sizeof x);
    rc = irmae_idx_parse(&x, b->p, b->n);
    if (rc) { if (x.data || x.rank || x.size || x.dims[0]) return 999; }
    else irmae_idx_free(&x);
    return rc;
}

static void test_idx(void)
{
    buf b = { 0, 0, 0 }, g = { 0, 0, 0 };
    uint32_t dims[5] = { 3, 2, 5, 1, 1 };
    unsigned char body[30];
    irmae_idx x;
    int rc, i;
    size_t k;
    for (i = 0; i < 30; i++) body[i] = (unsigned char)(i * 7);

    idx_header(&b, 8, 3, dims); buf_put(&b, body, 30);
    rc = irmae_idx_parse(&x, b.p, b.n);
    CHECK(rc == 0 && x.rank == 3 && x.dims[0] == 3 && x.dims[1] == 2 && x.dims[2] == 5 && x.dims[3] == 0 && x.size == 30 &&
          memcmp(x.data, body, 30) == 0, "rank-3 IDX");
    irmae_idx_free(&x);
    every_truncation("raw IDX", b.p, b.n, 4, 1);
    for (k = 0; k < b.n; k++) {
        buf t = { 0, 0, 0 };
        buf_put(&t, b.p, k);
        if (idx_rc(&t) != IRMAE_ERR_TRUNCATED) break;
        buf_free(&t);
    }
    CHECK(k == b.n, "every truncation of a raw IDX is TRUNCATED (failed at %lu)", (unsigned long)k);
    gzip_stored(&g, b.p, b.n);
    rc = irmae_idx_parse(&x, g.p, g.n);
    CHECK(rc == 0 && x.size == 30 && memcmp(x.data, body, 30) == 0, "gzipped IDX");
    irmae_idx_free(&x);
    every_truncation("gzipped IDX", g.p, g.n, 4, 1);
    buf_free(&g);
    buf_u8(&b, 0);
    CHECK(idx_rc(&b) == IRMAE_ERR_FORMAT, "one byte too many");
    buf_free(&b);

    idx_header(&b, 8, 3, dims); buf_put(&b, body, 29);
    CHECK(idx_rc(&b) == IRMAE_ERR_TRUNCATED, "one byte short");
    buf_free(&b);
    buf_u8(&b, 0); buf_u8(&b, 1); buf_u8(&b, 8); buf_u8(&b, 1); buf_be32(&b, 1); buf_u8(&b, 5);
    CHECK(idx_rc(&b) == IRMAE_ERR_FORMAT, "bad magic");
    buf_free(&b);
    idx_header(&b, 0x0D, 1, dims); buf_put(&b, body, 12);
    CHECK(idx_rc(&b) == IRMAE_ERR_UNSUPPORTED, "float elements");
    buf_free(&b);
    idx_header(&b, 0x07, 1, dims); buf_put(&b, body, 3);
    CHECK(idx_rc(&b) == IRMAE_ERR_FORMAT, "element type 0x07");
    buf_free(&b);
    idx_header(&b, 8, 0, dims);
    CHECK(idx_rc(&b) == IRMAE_ERR_FORMAT, "rank 0");
    buf_free(&b);
    idx_header(&b, 8, 5, dims); buf_put(&b, body, 30);
    CHECK(idx_rc(&b) == IRMAE_ERR_UNSUPPORTED, "rank 5");
    buf_free(&b);
    dims[0] = 0x80000000u;
    idx_header(&b, 8, 1, dims);
    CHECK(idx_rc(&b) == IRMAE_ERR_LIMIT, "dimension 2^31");
    buf_free(&b);
    dims[0] = 0x7fffffffu; dims[1] = 0x7fffffffu; dims[2] = 0x7fffffffu;
    idx_header(&b, 8, 3, dims);
    CHECK(idx_rc(&b) == IRMAE_ERR_LIMIT, "dimensions overflow / exceed IRMAE_MAX_ALLOC");
    buf_free(&b);
    dims[0] = 0; dims[1] = 28;
    idx_header(&b, 8, 2, dims);
    rc = irmae_idx_parse(&x, b.p, b.n);
    CHECK(rc == 0 && x.size == 0 && x.data != NULL, "zero dimension allowed");
    irmae_idx_free(&x);
    buf_free(&b);
    CHECK(irmae_idx_load(&x, "tests/data/missing.idx") == IRMAE_ERR_IO, "missing IDX file");
}

/* PyTorch's bilinear, align_corners=False, written out directly. */
static float torch_bilinear(const float *src, int ih, int iw, int oh, int ow, int y, int x)
{
    float sy = (float)ih / (float)oh, sx = (float)iw / (float)ow;
    float fy = ((float)y + 0.5f) * sy - 0.5f, fx = ((float)x + 0.5f) * sx - 0.5f;
    int y0, x0, y1, x1;
    float ly, lx;
    if (fy < 0) fy = 0;
    if (fx < 0) fx = 0;
    y0 = (int)fy; x0 = (int)fx;
    y1 = y0 < ih - 1 ? y0 + 1 : y0;
    x1 = x0 < iw - 1 ? x0 + 1 : x0;
    ly = fy - (float)y0; lx = fx - (float)x0;
    return (1 - ly) * ((1 - lx) * src[y0 * iw + x0] + lx * src[y0 * iw + x1]) +
           ly * ((1 - lx) * src[y1 * iw + x0] + lx * src[y1 * iw + x1]);
}

/* v / 255 rounded to a float. Returning it rounds away excess precision
   (FLT_EVAL_METHOD 1 on s390x evaluates float expressions in double, so an
   inline (float)v / 255.0f compared with a stored float may differ). */
static float div255(int v) { return (float)v / 255.0f; }

static void test_mnist_slice(void)
{
    static const int hist100[10] = { 6, 14, 11, 12, 17, 6, 11, 9, 4, 10 };
    const char *im = "tests/data/mnist100-images-idx3-ubyte.gz", *lb = "tests/data/mnist100-labels-idx1-ubyte.gz";
    irmae_idx xi, xl;
    irmae_dataset ds, d32, dpm;
    int rc, i, hist[10] = { 0 }, ok;
    size_t k, n;
    unsigned char *p;
    float maxerr = 0;

    rc = irmae_idx_load(&xi, im);
    CHECK(rc == 0 && xi.rank == 3 && xi.dims[0] == 100 && xi.dims[1] == 28 && xi.dims[2] == 28 &&
          irmae_crc32(0, xi.data, xi.size) == 0x934c235au, "MNIST slice images (CRC-32 of the pixels)");
    rc = irmae_idx_load(&xl, lb);
    CHECK(rc == 0 && xl.rank == 1 && xl.dims[0] == 100 && irmae_crc32(0, xl.data, xl.size) == 0x83855216u, "MNIST slice labels");
    if (xl.data) for (i = 0; i < 100; i++) if (xl.data[i] < 10) hist[xl.data[i]]++;
    CHECK(memcmp(hist, hist100, sizeof hist) == 0, "label histogram of the slice");

    rc = irmae_mnist_load(&ds, im, lb, 0, 0, 0);
    CHECK(rc == 0 && ds.n == 100 && ds.c == 1 && ds.h == 28 && ds.w == 28 && ds.labels, "mnist_load 28x28");
    ok = rc == 0 && xi.data;
    for (k = 0; ok && k < 100 * 784; k++)
        if (ds.x[k] != div255(xi.data[k])) ok = 0;
    for (i = 0; ok && i < 100; i++) if (ds.labels[i] != xl.data[i]) ok = 0;
    CHECK(ok, "28x28 values are v / 255 exactly, labels as in the file");
    rc = irmae_mnist_load(&dpm, im, lb, 0, 0, 1);
    ok = rc == 0;
    for (k = 0; ok && k < 100 * 784; k++)
        if (fabsf(dpm.x[k] - ((float)xi.data[k] / 127.5f - 1.0f)) > 1e-6f) ok = 0;
    CHECK(ok, "range [-1, 1]");
    irmae_dataset_free(&dpm);
    rc = irmae_mnist_load(&d32, im, lb, 32, 32, 0);
    CHECK(rc == 0 && d32.h == 32 && d32.w == 32, "mnist_load 32x32");
    if (rc == 0 && ds.x) {
        int y, x;
        for (i = 0; i < 100; i++)
            for (y = 0; y < 32; y++)
                for (x = 0; x < 32; x++) {
                    float e = fabsf(d32.x[(size_t)i * 1024 + (size_t)y * 32 + (size_t)x] -
                                    torch_bilinear(ds.x + (size_t)i * 784, 28, 28, 32, 32, y, x));
                    if (e > maxerr) maxerr = e;
                }
        CHECK(maxerr < 1e-5f, "28 -> 32 equals PyTorch bilinear (align_corners=False): max err %g", (double)maxerr);
        printf("mnist 28->32 resize vs PyTorch formula: max abs error %.3g\n", (double)maxerr);
    }
    irmae_dataset_free(&d32);
    irmae_dataset_free(&ds);

    /* count mismatch: a raw labels file with 99 labels */
    {
        buf b = { 0, 0, 0 };
        uint32_t d99 = 99;
        idx_header(&b, 8, 1, &d99);
        buf_put(&b, xl.data ? xl.data : (const unsigned char *)"", xl.data ? 99 : 0);
        MKDIR("build");
        CHECK(write_all("build/test_loaders_labels99.idx", b.p, b.n), "write build/test_loaders_labels99.idx");
        rc = irmae_mnist_load(&ds, im, "build/test_loaders_labels99.idx", 0, 0, 0);
        CHECK(rc == IRMAE_ERR_MISMATCH && ds.x == NULL, "100 images, 99 labels: %d", rc);
        rc = irmae_mnist_load(&ds, lb, lb, 0, 0, 0);
        CHECK(rc == IRMAE_ERR_SHAPE, "labels as images: %d", rc);
        buf_free(&b);
    }
    irmae_idx_free(&xi);
    irmae_idx_free(&xl);

    p = load_data("mnist100-labels-idx1-ubyte.gz", &n);
    if (p) every_truncation("mnist100 labels .gz", p, n, 4, 1);
    free(p);
    p = load_data("mnist100-images-idx3-ubyte.gz", &n);
    if (p) every_truncation("mnist100 images .gz (every prefix near the ends, every 7th inside)", p, n, 4, 7);
    free(p);
}

static void test_mnist_real(void)
{
    static const int want[10] = { 1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978 };
    const char *dir = getenv("IRMAE_MNIST_DIR");
    char a[600], b[600];
    irmae_dataset tr, te;
    irmae_idx slice;
    int hist[10] = { 0 }, i, rc, ok, other = 0;
    FILE *f;
    clock_t t0;
    if (!dir || !*dir) dir = "../shared/data/mnist-subset";
    snprintf(a, sizeof a, "%s/train-images-idx3-ubyte.gz", dir);
    f = fopen(a, "rb");
    if (!f) {
        printf("SKIP: real MNIST not found in %s (set IRMAE_MNIST_DIR)\n", dir);
        g_skip++;
        return;
    }
    fclose(f);
    t0 = clock();
    snprintf(b, sizeof b, "%s/train-labels-idx1-ubyte.gz", dir);
    rc = irmae_mnist_load(&tr, a, b, 32, 32, 0);
    CHECK(rc == 0 && tr.n == 8000 && tr.h == 32, "MNIST train: rc %d n %d", rc, tr.n);
    snprintf(a, sizeof a, "%s/t10k-images-idx3-ubyte.gz", dir);
    snprintf(b, sizeof b, "%s/t10k-labels-idx1-ubyte.gz", dir);
    rc = irmae_mnist_load(&te, a, b, 32, 32, 0);
    CHECK(rc == 0 && te.n == 2000, "MNIST test: rc %d n %d", rc, te.n);
    printf("real MNIST (10,000 images, gunzip + resize to 32x32): %.2f s\n", (double)(clock() - t0) / CLOCKS_PER_SEC);
    for (i = 0; i < tr.n; i++) { if (tr.labels[i] >= 0 && tr.labels[i] < 10) hist[tr.labels[i]]++; else other++; }
    for (i = 0; i < te.n; i++) { if (te.labels[i] >= 0 && te.labels[i] < 10) hist[te.labels[i]]++; else other++; }
    CHECK(memcmp(hist, want, sizeof hist) == 0 && other == 0,
          "class histogram %d %d %d %d %d %d %d %d %d %d", hist[0], hist[1], hist[2], hist[3], hist[4], hist[5], hist[6],
          hist[7], hist[8], hist[9]);
    printf("MNIST histogram over 10,000: 0:%d 1:%d 2:%d 3:%d 4:%d 5:%d 6:%d 7:%d 8:%d 9:%d\n", hist[0], hist[1], hist[2],
           hist[3], hist[4], hist[5], hist[6], hist[7], hist[8], hist[9]);
    /* the committed slice is the first 100 training records */
    snprintf(a, sizeof a, "%s/train-images-idx3-ubyte.gz", dir);
    rc = irmae_idx_load(&slice, a);
    ok = rc == 0 && slice.dims[0] == 8000;
    if (ok) {
        irmae_idx s100;
        ok = irmae_idx_load(&s100, "tests/data/mnist100-images-idx3-ubyte.gz") == 0 && memcmp(s100.data, slice.data, 78400) == 0;
        irmae_idx_free(&s100);
    }
    CHECK(ok, "tests/data slice equals the first 100 training images");
    irmae_idx_free(&slice);
    irmae_dataset_free(&tr);
    irmae_dataset_free(&te);
}

/* -------------------------------------------------------- image folders */

/* writes an RGB 8-bit PNG (stored zlib) of w x h from rgb */
static int write_rgb_png(const char *path, const unsigned char *rgb, int w, int h)
{
    buf b = { 0, 0, 0 };
    int ok;
    png_sig(&b);
    png_ihdr(&b, (uint32_t)w, (uint32_t)h, 8, 2, 0);
    png_idat_rows(&b, rgb, (size_t)w * 3, (size_t)h, 0);
    png_chunk(&b, "IEND", NULL, 0);
    ok = write_all(path, b.p, b.n);
    buf_free(&b);
    return ok;
}

static void test_images(void)
{
    static const char *const names[5] = { "img_b.png", "img_a.png", "img_c.PNG", "img_e.png", "img_d.png" };
    static const int order[5] = { 1, 0, 2, 4, 3 }; /* sorted position -> index in names */
    const char *dir = "build/test_loaders_imgs";
    char path[300];
    unsigned char rgb[20 * 16 * 3];
    irmae_dataset ds;
    int i, x, y, ch, rc, ok;
    float err;

    MKDIR("build");
    MKDIR(dir);
    for (i = 0; i < 5; i++) {
        for (y = 0; y < 16; y++)
            for (x = 0; x < 20; x++) {
                unsigned char *q = rgb + (y * 20 + x) * 3;
                if (i == 4) { q[0] = (unsigned char)(x + 10 * y); q[1] = (unsigned char)(3 * x); q[2] = (unsigned char)(7 * y); }
                else { q[0] = (unsigned char)(10 * i); q[1] = (unsigned char)(20 * i + 5); q[2] = (unsigned char)(30 * i + 7); }
            }
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        CHECK(write_rgb_png(path, rgb, 20, 16), "write %s", path);
    }
    snprintf(path, sizeof path, "%s/notes.txt", dir);
    write_all(path, "not an image", 12);
    snprintf(path, sizeof path, "%s/img.pngx", dir);
    write_all(path, "not an image", 12);

    rc = irmae_images_load(&ds, dir, 3, 0, 0, 0, 0);
    CHECK(rc == 0 && ds.n == 5 && ds.c == 3 && ds.h == 16 && ds.w == 20 && ds.labels == NULL, "images_load: rc %d n %d", rc, ds.n);
    ok = rc == 0;
    for (i = 0; ok && i < 5; i++) {
        int src = order[i];
        const float *im = irmae_dataset_image(&ds, i);
        if (src == 4) {
            if (im[0 * 320 + 3 * 20 + 5] != div255(5 + 30) || im[1 * 320 + 3 * 20 + 5] != div255(15) ||
                im[2 * 320 + 3 * 20 + 5] != div255(21)) ok = 0;
        } else {
            for (ch = 0; ch < 3; ch++)
                if (im[ch * 320 + 7] != div255(ch == 0 ? 10 * src : ch == 1 ? 20 * src + 5 : 30 * src + 7)) ok = 0;
        }
    }
    CHECK(ok, "files in name order, CHW planes, v / 255");
    irmae_dataset_free(&ds);

    /* crop 9 of 20 x 16: left = round(5.5) = 6, top = round(3.5) = 4 (halves to even) */
    rc = irmae_images_load(&ds, dir, 1, 0, 0, 9, 0);
    CHECK(rc == 0 && ds.h == 9 && ds.w == 9 && ds.c == 1, "crop 9");
    if (!rc) {
        const float *im = irmae_dataset_image(&ds, 3); /* img_d.png = names[4], the gradient */
        int g = (77 * (6 + 40) + 150 * 18 + 29 * 28 + 128) >> 8;
        CHECK(fabsf(im[0] - (float)g / 255.0f) < 1e-7f, "crop offset (6, 4) like torchvision: %g vs %g", (double)im[0] * 255, (double)g);
    }
    irmae_dataset_free(&ds);

    /* crop 12 then shrink to 5 x 5 (factor 2.4) and enlarge to 15 x 15; constant images stay constant */
    rc = irmae_images_load(&ds, dir, 4, 5, 5, 12, 1);
    ok = rc == 0 && ds.c == 4 && ds.h == 5;
    err = 0;
    for (i = 0; ok && i < 5; i++) {
        int src = order[i];
        const float *im = irmae_dataset_image(&ds, i);
        if (src == 4) continue; /* the gradient */
        for (x = 0; x < 25; x++) {
            float e0 = fabsf(im[x] - ((float)(10 * src) / 127.5f - 1.0f));
            float e3 = fabsf(im[3 * 25 + x] - 1.0f);
            if (e0 > err) err = e0;
            if (e3 > err) err = e3;
        }
    }
    CHECK(ok && err < 1e-5f, "shrunk constant images stay constant in [-1, 1], alpha 1: err %g", (double)err);
    /* the shrunk gradient against a direct 2-D triangle filter */
    if (ok) {
        const float *im = irmae_dataset_image(&ds, 3);
        double s = 12.0 / 5.0;
        float maxe = 0;
        int oy, ox, iy, ix;
        for (oy = 0; oy < 5; oy++)
            for (ox = 0; ox < 5; ox++) {
                double acc = 0, wsum = 0, cy = (oy + 0.5) * s, cx = (ox + 0.5) * s;
                for (iy = 0; iy < 12; iy++)
                    for (ix = 0; ix < 12; ix++) {
                        double ty = fabs((iy + 0.5 - cy) / s), tx = fabs((ix + 0.5 - cx) / s);
                        double wgt = (ty < 1 ? 1 - ty : 0) * (tx < 1 ? 1 - tx : 0);
                        int sx = ix + 4, sy = iy + 2; /* crop 12 of 20 x 16: left 4, top 2 */
                        acc += wgt * (double)(sx + 10 * sy);
                        wsum += wgt;
                    }
                acc = acc / wsum / 127.5 - 1.0;
                if (fabsf(im[oy * 5 + ox] - (float)acc) > maxe) maxe = fabsf(im[oy * 5 + ox] - (float)acc);
            }
        CHECK(maxe < 1e-5f, "shrinking = triangle filter widened by the scale (PIL/antialias bilinear): err %g", (double)maxe);
    }
    irmae_dataset_free(&ds);

    rc = irmae_images_load(&ds, dir, 3, 0, 0, 17, 0);
    CHECK(rc == IRMAE_ERR_SHAPE, "crop 17 > height 16");
    CHECK(irmae_images_load(&ds, dir, 5, 0, 0, 0, 0) == IRMAE_ERR_ARG, "c = 5");
    CHECK(irmae_images_load(&ds, dir, 3, 8, 0, 0, 0) == IRMAE_ERR_ARG, "only out_h");
    CHECK(irmae_images_load(&ds, "build/no-such-folder", 3, 0, 0, 0, 0) == IRMAE_ERR_IO, "missing folder");
    MKDIR("build/test_loaders_empty");
    write_all("build/test_loaders_empty/readme.txt", "x", 1);
    CHECK(irmae_images_load(&ds, "build/test_loaders_empty", 3, 0, 0, 0, 0) == IRMAE_ERR_IO, "folder without PNGs");
    /* a smaller image: sizes differ without resize; a broken file is named */
    snprintf(path, sizeof path, "%s/img_f.png", dir);
    write_rgb_png(path, rgb, 10, 8);
    CHECK(irmae_images_load(&ds, dir, 3, 0, 0, 0, 0) == IRMAE_ERR_SHAPE, "different sizes without out_h/out_w");
    rc = irmae_images_load(&ds, dir, 3, 8, 8, 0, 0);
    CHECK(rc == 0 && ds.n == 6, "different sizes with a resize");
    irmae_dataset_free(&ds);
    write_all(path, "\211PNG\r\n\032\nbroken", 14);
    rc = irmae_images_load(&ds, dir, 3, 8, 8, 0, 0);
    CHECK(rc == IRMAE_ERR_TRUNCATED && strstr(irmae_error_detail(), "img_f.png") != NULL && ds.x == NULL,
          "a broken PNG names the file: %d", rc);
    remove(path);
}

/* ------------------------------------------------------- shuffle, gather */

static void test_shuffle_gather(void)
{
    int perm[10], perm2[10], seen[10], i, t, ok, counts[6] = { 0 }, first[10] = { 0 };
    irmae_rng r1 = irmae_rng_seed(5), r2 = irmae_rng_seed(5), r3 = irmae_rng_seed(6);
    irmae_dataset ds;
    float out[3 * 4];
    int idx[3] = { 3, 0, 3 }, badidx[2] = { 1, 5 };

    CHECK(irmae_shuffle(perm, 10, &r1) == 0 && irmae_shuffle(perm2, 10, &r2) == 0 && memcmp(perm, perm2, sizeof perm) == 0,
          "same seed, same order");
    memset(seen, 0, sizeof seen);
    ok = 1;
    for (i = 0; i < 10; i++) { if (perm[i] < 0 || perm[i] > 9 || seen[perm[i]]++) ok = 0; }
    CHECK(ok, "a permutation of 0..9");
    irmae_shuffle(perm2, 10, &r3);
    CHECK(memcmp(perm, perm2, sizeof perm) != 0, "another seed, another order");
    CHECK(irmae_shuffle(NULL, 0, NULL) == 0 && irmae_shuffle(perm, -1, &r1) == IRMAE_ERR_ARG &&
          irmae_shuffle(NULL, 3, &r1) == IRMAE_ERR_ARG, "shuffle arguments");
    /* uniform: the 6 orders of 3 over 60000 draws (sd ~ 91), first element of 10 over 60000 (sd ~ 73) */
    for (t = 0; t < 60000; t++) {
        irmae_shuffle(perm, 3, &r1);
        counts[perm[0] * 2 + (perm[1] > perm[2])]++;
        irmae_shuffle(perm2, 10, &r1);
        first[perm2[0]]++;
    }
    ok = 1;
    for (i = 0; i < 6; i++) if (counts[i] < 9500 || counts[i] > 10500) ok = 0;
    for (i = 0; i < 10; i++) if (first[i] < 5600 || first[i] > 6400) ok = 0;
    CHECK(ok, "uniform shuffles: %d %d %d %d %d %d", counts[0], counts[1], counts[2], counts[3], counts[4], counts[5]);

    CHECK(irmae_dataset_alloc(&ds, 5, 1, 2, 2, 1) == 0, "alloc");
    for (i = 0; i < 20; i++) ds.x[i] = (float)(100 * (i / 4) + i % 4);
    for (i = 0; i < 12; i++) out[i] = -1;
    CHECK(irmae_dataset_gather(&ds, out, idx, 3) == 0 && out[0] == 300 && out[3] == 303 && out[4] == 0 && out[8] == 300 &&
          out[11] == 303, "gather 3, 0, 3");
    for (i = 0; i < 12; i++) out[i] = -1;
    CHECK(irmae_dataset_gather(&ds, out, badidx, 2) == IRMAE_ERR_ARG && out[0] == -1, "index 5 of 5 rejected before writing");
    CHECK(irmae_dataset_gather(&ds, out, idx, -1) == IRMAE_ERR_ARG, "count -1");
    irmae_dataset_free(&ds);
}

int main(void)
{
    clock_t t0 = clock();
    test_inflate();
    test_zlib_gzip();
    test_png_crafted();
    test_png_files();
    test_corruption();
    test_idx();
    test_mnist_slice();
    test_mnist_real();
    test_images();
    test_shuffle_gather();
    printf("(%.1f s cpu, %d skipped)\n", (double)(clock() - t0) / CLOCKS_PER_SEC, g_skip);
    printf("test_loaders: %d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
