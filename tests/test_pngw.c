#define IRMAE_IMPLEMENTATION
#include "../irmae.h"

/* Tests of the compressing side of irmae.h's image I/O: irmae_deflate,
   irmae_zlib_compress, irmae_png_encode / _write / _write_grid.

   Every stream is checked twice, independently of irmae.h's own inflate:
   1. by the small reference inflater below (written for this test only:
      strict, slow, rejects over-subscribed and incomplete codes), plus a
      PNG chunk parser and unfilter, so the test means something with only
      a C compiler;
   2. by Python's zlib and pypng (tests/png_check.py) when $IRMAE_PYTHON
      (default /usr/bin/python3) has them; otherwise those checks print
      SKIP and are not counted.

   Build and run from the repository root:
     cc -O2 -std=c99 -Wall -Wextra -pedantic -fopenmp tests/test_pngw.c -o build/test_pngw -lm
     ./build/test_pngw
   Temporary files go to $IRMAE_TMPDIR (default /tmp), prefixed
   irmae_pngw_<pid>_, and are removed at the end. */

#include <time.h>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#define TP_PID() ((long)getpid())
#else
#define TP_PID() ((long)time(NULL))
#endif

static int g_pass = 0, g_fail = 0;

#define CHECK(cond, ...) do { \
        if (cond) g_pass++; \
        else { g_fail++; printf("FAIL %s:%d: ", __FILE__, __LINE__); printf(__VA_ARGS__); printf("\n"); } \
    } while (0)

/* ====================================================================== */
/* Reference inflater (RFC 1951), for this test only                      */
/* ====================================================================== */

typedef struct ref_stats {
    int stored, fixed, dynamic;          /* blocks of each type */
    int max_llen, max_dlen, max_cllen;   /* longest code lengths in dynamic headers */
    size_t matches;
} ref_stats;

typedef struct ref_in {
    const unsigned char *p;
    size_t n, pos;      /* pos: next byte */
    uint32_t bits;
    int nbits;
    int err;
} ref_in;

static uint32_t ref_bits(ref_in *r, int need)
{
    uint32_t v;
    while (r->nbits < need) {
        if (r->pos >= r->n) { r->err = 1; return 0; }
        r->bits |= (uint32_t)r->p[r->pos++] << r->nbits;
        r->nbits += 8;
    }
    v = r->bits & (uint32_t)((1ul << need) - 1);
    r->bits >>= need;
    r->nbits -= need;
    return v;
}

typedef struct ref_huff {
    int count[16];      /* codes per length */
    int sym[320];       /* symbols ordered by (length, value) */
} ref_huff;

/* 0 ok; -1 over-subscribed; -2 incomplete (also a lone code: the encoder
   under test promises complete codes); -3 no codes at all. */
static int ref_huff_build(ref_huff *h, const unsigned char *len, int n)
{
    int offs[16], i, l, left = 1, total = 0;
    memset(h->count, 0, sizeof h->count);
    for (i = 0; i < n; i++) h->count[len[i]]++;
    for (l = 1; l < 16; l++) {
        left = left * 2 - h->count[l];
        if (left < 0) return -1;
        total += h->count[l];
    }
    if (total == 0) return -3;
    if (left > 0) return -2;
    offs[1] = 0;
    for (l = 1; l < 15; l++) offs[l + 1] = offs[l] + h->count[l];
    for (i = 0; i < n; i++) if (len[i]) h->sym[offs[len[i]]++] = i;
    return 0;
}

/* Canonical decoding one bit at a time: the codes of length l are the
   consecutive integers first .. first + count[l] - 1. */
static int ref_decode(ref_in *r, const ref_huff *h)
{
    int code = 0, first = 0, index = 0, l;
    for (l = 1; l < 16; l++) {
        code |= (int)ref_bits(r, 1);
        if (r->err) return -1;
        if (code - first < h->count[l]) return h->sym[index + code - first];
        index += h->count[l];
        first = (first + h->count[l]) << 1;
        code <<= 1;
    }
    return -1;
}

typedef struct ref_out { unsigned char *p; size_t n, cap, limit; } ref_out;

static int ref_put(ref_out *o, unsigned char b)
{
    if (o->n >= o->limit) return -1;
    if (o->n == o->cap) {
        size_t nc = o->cap ? o->cap * 2 : 4096;
        unsigned char *q = (unsigned char *)realloc(o->p, nc);
        if (!q) return -1;
        o->p = q; o->cap = nc;
    }
    o->p[o->n++] = b;
    return 0;
}

static const int ref_lbase[29] = { 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51,
                                   59, 67, 83, 99, 115, 131, 163, 195, 227, 258 };
static const int ref_lext[29] = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4,
                                  5, 5, 5, 5, 0 };
static const int ref_dbase[30] = { 1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385,
                                   513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577 };
static const int ref_dext[30] = { 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10,
                                  10, 11, 11, 12, 12, 13, 13 };

static int ref_codes(ref_in *r, ref_out *o, const ref_huff *lh, const ref_huff *dh, ref_stats *st)
{
    for (;;) {
        int s = ref_decode(r, lh), len, d, dist, i;
        if (s < 0) return -10;
        if (s < 256) { if (ref_put(o, (unsigned char)s)) return -11; continue; }
        if (s == 256) return 0;
        s -= 257;
        if (s >= 29) return -12;
        len = ref_lbase[s] + (int)ref_bits(r, ref_lext[s]);
        d = ref_decode(r, dh);
        if (d < 0 || d >= 30) return -13;
        dist = ref_dbase[d] + (int)ref_bits(r, ref_dext[d]);
        if (r->err) return -14;
        if ((size_t)dist > o->n || dist > 32768) return -15;
        for (i = 0; i < len; i++)
            if (ref_put(o, o->p[o->n - (size_t)dist])) return -11;
        st->matches++;
    }
}

/* Inflates the raw DEFLATE stream in[0..n) (output at most `limit` bytes).
   *used = bytes consumed. 0 ok, negative on any error. */
static int ref_inflate(const unsigned char *in, size_t n, size_t limit, unsigned char **out,
                       size_t *outn, size_t *used, ref_stats *st)
{
    static const int order[19] = { 16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15 };
    ref_in r;
    ref_out o;
    ref_huff lh, dh, ch;
    int last = 0, rc = 0;
    memset(&r, 0, sizeof r);
    memset(&o, 0, sizeof o);
    memset(st, 0, sizeof *st);
    r.p = in; r.n = n; o.limit = limit;
    while (!last && rc == 0) {
        int type;
        last = (int)ref_bits(&r, 1);
        type = (int)ref_bits(&r, 2);
        if (r.err) { rc = -1; break; }
        if (type == 0) {
            unsigned len, nlen, i;
            r.bits = 0; r.nbits = 0; /* the rest of the byte is padding */
            if (r.pos + 4 > r.n) { rc = -2; break; }
            len = r.p[r.pos] | (unsigned)r.p[r.pos + 1] << 8;
            nlen = r.p[r.pos + 2] | (unsigned)r.p[r.pos + 3] << 8;
            r.pos += 4;
            if ((len ^ 0xFFFFu) != nlen) { rc = -3; break; }
            if (r.pos + len > r.n) { rc = -4; break; }
            for (i = 0; i < len && rc == 0; i++) if (ref_put(&o, r.p[r.pos + i])) rc = -11;
            r.pos += len;
            st->stored++;
        } else if (type == 1) {
            unsigned char l[288];
            int i;
            for (i = 0; i < 288; i++) l[i] = (unsigned char)(i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8);
            ref_huff_build(&lh, l, 288);
            for (i = 0; i < 30; i++) l[i] = 5;
            /* 30 codes of 5 bits are incomplete; fixed codes are exempt */
            memset(dh.count, 0, sizeof dh.count);
            dh.count[5] = 30;
            for (i = 0; i < 30; i++) dh.sym[i] = i;
            rc = ref_codes(&r, &o, &lh, &dh, st);
            st->fixed++;
        } else if (type == 2) {
            unsigned char cl[19], lens[316];
            int hlit = (int)ref_bits(&r, 5) + 257, hdist = (int)ref_bits(&r, 5) + 1;
            int hclen = (int)ref_bits(&r, 4) + 4, i, k = 0;
            if (hlit > 286 || hdist > 30) { rc = -5; break; }
            memset(cl, 0, sizeof cl);
            for (i = 0; i < hclen; i++) {
                cl[order[i]] = (unsigned char)ref_bits(&r, 3);
                if (cl[order[i]] > st->max_cllen) st->max_cllen = cl[order[i]];
            }
            if (r.err || ref_huff_build(&ch, cl, 19)) { rc = -6; break; }
            while (k < hlit + hdist) {
                int s = ref_decode(&r, &ch), rep = 0, val = 0;
                if (s < 0) { rc = -7; break; }
                if (s < 16) { lens[k++] = (unsigned char)s; continue; }
                if (s == 16) { if (k == 0) { rc = -8; break; } val = lens[k - 1]; rep = 3 + (int)ref_bits(&r, 2); }
                else if (s == 17) rep = 3 + (int)ref_bits(&r, 3);
                else rep = 11 + (int)ref_bits(&r, 7);
                if (k + rep > hlit + hdist) { rc = -9; break; }
                while (rep--) lens[k++] = (unsigned char)val;
            }
            if (rc) break;
            if (lens[256] == 0) { rc = -16; break; }
            for (i = 0; i < hlit; i++) if (lens[i] > st->max_llen) st->max_llen = lens[i];
            for (i = 0; i < hdist; i++) if (lens[hlit + i] > st->max_dlen) st->max_dlen = lens[hlit + i];
            if (ref_huff_build(&lh, lens, hlit) || ref_huff_build(&dh, lens + hlit, hdist)) { rc = -17; break; }
            rc = ref_codes(&r, &o, &lh, &dh, st);
            st->dynamic++;
        } else {
            rc = -18;
        }
        if (r.err && rc == 0) rc = -19;
    }
    *out = o.p; *outn = o.n;
    *used = r.pos; /* the bit reader never holds a whole unread byte at the end */
    if (rc) { free(o.p); *out = NULL; *outn = 0; }
    return rc;
}

/* Checks a zlib stream: header, FCHECK, inflate, Adler-32, no trailing bytes.
   Returns 0 if it decodes to exactly raw[0..n). */
static int ref_zlib_check(const unsigned char *z, size_t zn, const unsigned char *raw, size_t n,
                          ref_stats *st, char *why, size_t whyn)
{
    unsigned char *o = NULL;
    size_t on = 0, used = 0, i;
    uint32_t a, want;
    int rc;
    if (zn < 6) { snprintf(why, whyn, "only %lu bytes", (unsigned long)zn); return -1; }
    if ((z[0] & 15) != 8 || (z[0] >> 4) > 7 || (z[0] * 256u + z[1]) % 31 != 0 || (z[1] & 0x20)) {
        snprintf(why, whyn, "bad header %02x %02x", z[0], z[1]); return -1;
    }
    rc = ref_inflate(z + 2, zn - 6, n + 1, &o, &on, &used, st);
    if (rc) { snprintf(why, whyn, "inflate error %d", rc); return -1; }
    if (used != zn - 6) {
        snprintf(why, whyn, "stream ends at %lu of %lu", (unsigned long)used, (unsigned long)(zn - 6));
        free(o); return -1;
    }
    if (on != n || (n && memcmp(o, raw, n) != 0)) {
        for (i = 0; i < on && i < n && o[i] == raw[i]; i++) {}
        snprintf(why, whyn, "output %lu bytes, expected %lu, first difference at %lu",
                 (unsigned long)on, (unsigned long)n, (unsigned long)i);
        free(o); return -1;
    }
    free(o);
    a = irmae_adler32(1, raw, n);
    want = (uint32_t)z[zn - 4] << 24 | (uint32_t)z[zn - 3] << 16 | (uint32_t)z[zn - 2] << 8 | z[zn - 1];
    if (a != want) { snprintf(why, whyn, "adler %08lx, stored %08lx", (unsigned long)a, (unsigned long)want); return -1; }
    return 0;
}

/* ====================================================================== */
/* Reference PNG reader (chunks, CRCs, unfilter), for this test only      */
/* ====================================================================== */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int ref_paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc) return a;
    if (pb <= pc) return b;
    return c;
}

/* Decodes a PNG written by irmae_png_encode (8-bit, types 0/2/4/6, no
   interlace). Returns malloc'd pixels, or NULL with a reason. Also returns
   the filter type of every row (filters[h], malloc'd) and the IDAT count. */
static unsigned char *ref_png_decode(const unsigned char *png, size_t n, int *w, int *h, int *c,
                                     unsigned char **filters, int *nidat, char *why, size_t whyn)
{
    static const unsigned char sig[8] = { 137, 80, 78, 71, 13, 10, 26, 10 };
    unsigned char *idat = NULL, *raw = NULL, *pix = NULL, *ft = NULL;
    size_t idn = 0, pos = 8, rawn = 0, used = 0, stride, y, x;
    int seen_ihdr = 0, seen_iend = 0, ctype = -1, ok = 0, bpp;
    ref_stats st;
    *nidat = 0; *filters = NULL;
    if (n < 8 || memcmp(png, sig, 8)) { snprintf(why, whyn, "bad signature"); return NULL; }
    while (pos < n) {
        uint32_t len, crc;
        const unsigned char *type, *data;
        if (seen_iend) { snprintf(why, whyn, "bytes after IEND"); goto done; }
        if (n - pos < 12) { snprintf(why, whyn, "truncated chunk at %lu", (unsigned long)pos); goto done; }
        len = be32(png + pos);
        if (len > n - pos - 12) { snprintf(why, whyn, "chunk length %lu too long", (unsigned long)len); goto done; }
        type = png + pos + 4; data = type + 4;
        crc = be32(data + len);
        if (irmae_crc32(0, type, len + 4) != crc) { snprintf(why, whyn, "bad CRC in %.4s", (const char *)type); goto done; }
        if (!memcmp(type, "IHDR", 4)) {
            if (pos != 8 || len != 13) { snprintf(why, whyn, "IHDR misplaced or %lu long", (unsigned long)len); goto done; }
            *w = (int)be32(data); *h = (int)be32(data + 4);
            ctype = data[9];
            if (data[8] != 8 || data[10] || data[11] || data[12]) { snprintf(why, whyn, "IHDR fields"); goto done; }
            seen_ihdr = 1;
        } else if (!memcmp(type, "IDAT", 4)) {
            unsigned char *q;
            if (!seen_ihdr) { snprintf(why, whyn, "IDAT before IHDR"); goto done; }
            q = (unsigned char *)realloc(idat, idn + len + 1);
            if (!q) { snprintf(why, whyn, "realloc"); goto done; }
            idat = q;
            memcpy(idat + idn, data, len);
            idn += len;
            (*nidat)++;
        } else if (!memcmp(type, "IEND", 4)) {
            if (len) { snprintf(why, whyn, "IEND with data"); goto done; }
            seen_iend = 1;
        } else {
            snprintf(why, whyn, "unexpected chunk %.4s", (const char *)type); goto done;
        }
        pos += 12 + len;
    }
    if (!seen_iend || !*nidat) { snprintf(why, whyn, "no IEND or no IDAT"); goto done; }
    *c = ctype == 0 ? 1 : ctype == 4 ? 2 : ctype == 2 ? 3 : ctype == 6 ? 4 : 0;
    if (!*c || *w <= 0 || *h <= 0) { snprintf(why, whyn, "colour type %d or size", ctype); goto done; }
    bpp = *c;
    stride = (size_t)*w * (size_t)bpp;
    if (idn < 6 || (idat[0] * 256u + idat[1]) % 31 != 0 || (idat[0] & 15) != 8) { snprintf(why, whyn, "zlib header"); goto done; }
    if (ref_inflate(idat + 2, idn - 6, (stride + 1) * (size_t)*h, &raw, &rawn, &used, &st)) {
        snprintf(why, whyn, "IDAT does not inflate"); goto done;
    }
    if (rawn != (stride + 1) * (size_t)*h || used != idn - 6 || irmae_adler32(1, raw, rawn) != be32(idat + idn - 4)) {
        snprintf(why, whyn, "IDAT size/adler"); goto done;
    }
    pix = (unsigned char *)malloc(stride * (size_t)*h + 1);
    ft = (unsigned char *)malloc((size_t)*h + 1);
    if (!pix || !ft) { snprintf(why, whyn, "malloc"); goto done; }
    for (y = 0; y < (size_t)*h; y++) {
        const unsigned char *in = raw + y * (stride + 1);
        unsigned char *row = pix + y * stride, *up = y ? row - stride : NULL;
        int f = in[0];
        ft[y] = (unsigned char)f;
        if (f > 4) { snprintf(why, whyn, "filter %d in row %lu", f, (unsigned long)y); goto done; }
        for (x = 0; x < stride; x++) {
            int a = x >= (size_t)bpp ? row[x - (size_t)bpp] : 0, b = up ? up[x] : 0;
            int cc = up && x >= (size_t)bpp ? up[x - (size_t)bpp] : 0, pred = 0;
            if (f == 1) pred = a;
            else if (f == 2) pred = b;
            else if (f == 3) pred = (a + b) / 2;
            else if (f == 4) pred = ref_paeth(a, b, cc);
            row[x] = (unsigned char)((in[1 + x] + pred) & 255);
        }
    }
    ok = 1;
done:
    free(idat); free(raw);
    if (!ok) { free(pix); free(ft); return NULL; }
    *filters = ft;
    return pix;
}

/* The filter the minimum-sum-of-absolute-differences rule picks for row y. */
static int expected_filter(const unsigned char *pix, int w, int c, int y)
{
    size_t stride = (size_t)w * (size_t)c, x;
    const unsigned char *row = pix + (size_t)y * stride, *up = y ? row - stride : NULL;
    long sum[5] = { 0, 0, 0, 0, 0 };
    int f, best = 0;
    for (x = 0; x < stride; x++) {
        int a = x >= (size_t)c ? row[x - (size_t)c] : 0, b = up ? up[x] : 0;
        int cc = up && x >= (size_t)c ? up[x - (size_t)c] : 0;
        int r[5], k;
        r[0] = row[x]; r[1] = row[x] - a; r[2] = row[x] - b; r[3] = row[x] - (a + b) / 2;
        r[4] = row[x] - ref_paeth(a, b, cc);
        for (k = 0; k < 5; k++) { int v = (signed char)(unsigned char)(r[k] & 255); sum[k] += v < 0 ? -v : v; }
    }
    for (f = 1; f < 5; f++) if (sum[f] < sum[best]) best = f;
    return best;
}

/* ====================================================================== */
/* Temporary files and the Python peer                                    */
/* ====================================================================== */

static char g_tmp[512];          /* "<dir>/irmae_pngw_<pid>_" */
static char **g_files = NULL;
static int g_nfiles = 0, g_capfiles = 0;
static char g_python[512];
static int g_have_python = 0;
static FILE *g_manifest = NULL;
static int g_nmanifest = 0;
static char g_manifest_path[600], g_result_path[600];

typedef struct pending_zsize { int line; size_t mine; const char *what; } pending_zsize;
static pending_zsize g_zs[64];
static int g_nzs = 0;

static const char *tmp_name(const char *name)
{
    static char buf[8][700];
    static int k = 0;
    char *p = buf[k++ & 7];
    snprintf(p, 700, "%s%s", g_tmp, name);
    return p;
}

static void remember(const char *path)
{
    if (g_nfiles == g_capfiles) {
        int nc = g_capfiles ? 2 * g_capfiles : 256;
        char **q = (char **)realloc(g_files, (size_t)nc * sizeof *q);
        if (!q) return;
        g_files = q; g_capfiles = nc;
    }
    g_files[g_nfiles] = (char *)malloc(strlen(path) + 1);
    if (g_files[g_nfiles]) strcpy(g_files[g_nfiles++], path);
}

static int write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok;
    if (!f) return 0;
    ok = fwrite(p, 1, n, f) == n;
    ok = (fclose(f) == 0) && ok;
    remember(path);
    return ok;
}

static void python_init(void)
{
    const char *env = getenv("IRMAE_PYTHON"), *dir = getenv("IRMAE_TMPDIR");
    char cmd[1200];
    snprintf(g_tmp, sizeof g_tmp, "%s/irmae_pngw_%ld_", dir && *dir ? dir : "/tmp", TP_PID());
    snprintf(g_python, sizeof g_python, "%s", env && *env ? env : "/usr/bin/python3");
    snprintf(cmd, sizeof cmd, "'%s' -c 'import zlib, png' > /dev/null 2>&1", g_python);
    g_have_python = system(cmd) == 0;
    if (!g_have_python) {
        printf("SKIP: %s cannot import zlib and png (pypng); the Python cross-checks are not run\n", g_python);
        return;
    }
    snprintf(g_manifest_path, sizeof g_manifest_path, "%s", tmp_name("manifest.txt"));
    snprintf(g_result_path, sizeof g_result_path, "%s", tmp_name("results.txt"));
    g_manifest = fopen(g_manifest_path, "w");
    remember(g_manifest_path);
    remember(g_result_path);
    if (!g_manifest) { printf("SKIP: cannot write %s; no Python cross-checks\n", g_manifest_path); g_have_python = 0; }
}

/* Queues a Python check; returns its manifest line number (or -1). */
static int py_queue(const char *fmt, ...)
{
    va_list ap;
    if (!g_have_python) return -1;
    va_start(ap, fmt);
    vfprintf(g_manifest, fmt, ap);
    va_end(ap);
    fputc('\n', g_manifest);
    return g_nmanifest++;
}

/* Runs the queued checks in one interpreter and counts them. */
static void py_run(void)
{
    char cmd[2000], line[1024];
    FILE *f;
    int *seen, i;
    size_t *val;
    if (!g_have_python) return;
    fclose(g_manifest);
    g_manifest = NULL;
    snprintf(cmd, sizeof cmd, "'%s' tests/png_check.py batch '%s' > '%s' 2>&1", g_python, g_manifest_path, g_result_path);
    (void)system(cmd);
    seen = (int *)calloc((size_t)g_nmanifest + 1, sizeof *seen);
    val = (size_t *)calloc((size_t)g_nmanifest + 1, sizeof *val);
    f = fopen(g_result_path, "r");
    if (!f || !seen || !val) { CHECK(0, "python results %s unreadable", g_result_path); free(seen); free(val); if (f) fclose(f); return; }
    while (fgets(line, sizeof line, f)) {
        int idx;
        char st[16];
        unsigned long v = 0;
        if (sscanf(line, "%d %15s %lu", &idx, st, &v) >= 2 && idx >= 0 && idx < g_nmanifest) {
            seen[idx] = strcmp(st, "OK") == 0 ? 1 : 2;
            val[idx] = (size_t)v;
            if (seen[idx] == 2) printf("python: %s", line);
        } else {
            printf("python says: %s", line);
        }
    }
    fclose(f);
    {
        int ok = 0, bad = 0;
        for (i = 0; i < g_nmanifest; i++) { if (seen[i] == 1) ok++; else bad++; }
        CHECK(bad == 0, "python peer: %d of %d checks failed or missing", bad, g_nmanifest);
        g_pass += ok - (bad == 0); /* count each Python check individually */
        printf("python peer (%s): %d of %d zlib/pypng checks passed\n", g_python, ok, g_nmanifest);
    }
    for (i = 0; i < g_nzs; i++) {
        size_t theirs = g_zs[i].line >= 0 && seen[g_zs[i].line] == 1 ? val[g_zs[i].line] : 0;
        if (!theirs) { CHECK(0, "no zlib size for %s", g_zs[i].what); continue; }
        printf("  %-34s irmae %8lu  python zlib %8lu  ratio %.4f\n", g_zs[i].what, (unsigned long)g_zs[i].mine,
               (unsigned long)theirs, (double)g_zs[i].mine / (double)theirs);
        if (strstr(g_zs[i].what, "level 6") || strstr(g_zs[i].what, "level 9"))
            CHECK((double)g_zs[i].mine <= 1.03 * (double)theirs, "%s: %lu bytes vs zlib %lu (> 3%% larger)",
                  g_zs[i].what, (unsigned long)g_zs[i].mine, (unsigned long)theirs);
    }
    free(seen); free(val);
}

static void cleanup(void)
{
    int i;
    const char *keep = getenv("IRMAE_KEEP_TMP");
    for (i = 0; i < g_nfiles; i++) {
        if (!(keep && *keep)) remove(g_files[i]);
        free(g_files[i]);
    }
    free(g_files);
}

/* ====================================================================== */
/* Inputs                                                                 */
/* ====================================================================== */

enum { K_RANDOM, K_ZEROS, K_RUNS, K_TEXT, K_SKEWED, K_COUNT };
static const char *kind_name[K_COUNT] = { "random", "zeros", "runs", "text", "skewed" };

static void make_text(unsigned char *p, size_t n, irmae_rng *r)
{
    static char vocab[400][12];
    static int vlen[400], ready = 0;
    size_t i = 0;
    int col = 0;
    if (!ready) {
        irmae_rng v = irmae_rng_seed(77);
        int k, j;
        for (k = 0; k < 400; k++) {
            vlen[k] = irmae_rng_int(&v, 1, 10);
            for (j = 0; j < vlen[k]; j++) vocab[k][j] = (char)('a' + irmae_rng_int(&v, 0, 25));
        }
        ready = 1;
    }
    while (i < n) {
        float u = irmae_rng_uniform(r);
        int k = (int)(400.0f * u * u * u), j; /* a few words are frequent */
        for (j = 0; j < vlen[k] && i < n; j++) p[i++] = (unsigned char)vocab[k][j];
        col += vlen[k] + 1;
        if (i < n) {
            int q = irmae_rng_int(r, 0, 15);
            p[i++] = (unsigned char)(col > 70 ? '\n' : q == 0 ? ',' : q == 1 ? '.' : ' ');
            if (col > 70) col = 0;
        }
    }
}

static void make_input(unsigned char *p, size_t n, int kind, irmae_rng *r)
{
    size_t i = 0;
    switch (kind) {
    case K_RANDOM: for (i = 0; i < n; i++) p[i] = (unsigned char)(irmae_rng_u64(r) >> 56); break;
    case K_ZEROS: memset(p, 0, n); break;
    case K_RUNS:
        while (i < n) {
            unsigned char v = (unsigned char)(irmae_rng_u64(r) >> 56);
            int len = irmae_rng_int(r, 1, 600);
            while (len-- > 0 && i < n) p[i++] = v;
        }
        break;
    case K_TEXT: make_text(p, n, r); break;
    default: /* geometric byte distribution: deep Huffman trees */
        for (i = 0; i < n; i++) {
            uint64_t x = irmae_rng_u64(r), y = irmae_rng_u64(r);
            int k = 0;
            while (!(x & 1) && k < 40) { x >>= 1; k++; }
            /* P(k) = 2^-(k+1); spread the common values a bit */
            p[i] = (unsigned char)(k * 5 + (int)(y & 3) * (k < 3));
        }
        break;
    }
}

/* ====================================================================== */
/* Tests                                                                  */
/* ====================================================================== */

static void test_huffman_lengths(void)
{
    irmae__deflate *s = (irmae__deflate *)calloc(1, sizeof *s);
    uint32_t f[286];
    unsigned char len[286];
    irmae_rng r = irmae_rng_seed(5);
    int trial, i;
    if (!s) { CHECK(0, "calloc"); return; }
    for (trial = 0; trial < 300; trial++) {
        int n = trial < 100 ? 286 : trial < 200 ? 30 : 19, limit = n == 19 ? 7 : 15, used = 0, maxl = 0;
        uint64_t cost = 0, huff = 0;
        double kraft = 0;
        uint64_t w[300];
        int m = 0, nz = 0;
        for (i = 0; i < n; i++) {
            int mode = trial % 4;
            f[i] = 0;
            if (irmae_rng_int(&r, 0, 3) == 0 && trial % 5) continue; /* some unused */
            if (mode == 0) f[i] = (uint32_t)irmae_rng_int(&r, 1, 1000);
            else if (mode == 1) f[i] = i < 40 ? (uint32_t)1 << (i % 24) : 1u; /* very skewed */
            else if (mode == 2) { uint32_t a = 1, b = 1, t; int k; for (k = 0; k < i % 30; k++) { t = a + b; a = b; b = t; } f[i] = a; }
            else f[i] = (uint32_t)irmae_rng_int(&r, 1, 3);
        }
        if (trial == 7) { memset(f, 0, sizeof f); f[3] = 9; }      /* one symbol */
        if (trial == 8) { memset(f, 0, sizeof f); }                /* none */
        irmae__huff_lengths(s, f, n, limit, len);
        for (i = 0; i < n; i++) {
            if (len[i]) { kraft += ldexp(1.0, -len[i]); used++; if (len[i] > maxl) maxl = len[i]; }
            else if (f[i]) break;
            cost += (uint64_t)f[i] * len[i];
            if (f[i]) w[m++] = f[i];
        }
        CHECK(i == n, "trial %d: symbol %d has frequency %lu but no code", trial, i, (unsigned long)f[i]);
        CHECK(kraft == 1.0 && used >= 2 && maxl <= limit, "trial %d: kraft %.9f, %d codes, max %d > %d?",
              trial, kraft, used, maxl, limit);
        /* plain Huffman cost (unlimited lengths): sum of all merge weights */
        nz = m;
        while (m > 1) {
            int a = 0, b = 1, k;
            if (w[b] < w[a]) { a = 1; b = 0; }
            for (k = 2; k < m; k++) {
                if (w[k] < w[a]) { b = a; a = k; } else if (w[k] < w[b]) b = k;
            }
            w[a] += w[b]; huff += w[a];
            w[b] = w[--m];
        }
        /* optimal: equal to Huffman when Huffman fits the limit; the limit
           can only cost more */
        CHECK(cost >= huff, "trial %d: cost %lu below Huffman %lu", trial, (unsigned long)cost, (unsigned long)huff);
        if (maxl < limit && nz >= 2) CHECK(cost == huff, "trial %d: cost %lu, Huffman %lu", trial, (unsigned long)cost, (unsigned long)huff);
        if (trial == 2) printf("huffman: skewed 286-symbol set -> max length %d, cost %lu vs unlimited %lu\n",
                               maxl, (unsigned long)cost, (unsigned long)huff);
    }
    free(s);
}

static void test_streams(void)
{
    static const size_t sizes[] = { 0, 1, 2, 3, 257, 258, 259, 32768, 32769, 65535, 65536, 100000, 1u << 20 };
    const int nsizes = (int)(sizeof sizes / sizeof sizes[0]);
    irmae_rng r = irmae_rng_seed(2024);
    int kind, si, level, ok_all = 1;
    size_t bytes_in = 0;
    clock_t t0 = clock();
    for (kind = 0; kind < K_COUNT; kind++) {
        for (si = 0; si < nsizes; si++) {
            size_t n = sizes[si];
            unsigned char *src = (unsigned char *)malloc(n + 1);
            char rawpath[640];
            size_t zsz[10];
            if (!src) { CHECK(0, "malloc"); return; }
            make_input(src, n, kind, &r);
            snprintf(rawpath, sizeof rawpath, "%s", tmp_name(""));
            snprintf(rawpath + strlen(rawpath), sizeof rawpath - strlen(rawpath), "%s_%lu.raw", kind_name[kind], (unsigned long)n);
            if (g_have_python) CHECK(write_file(rawpath, src, n), "write %s", rawpath);
            for (level = 0; level <= 9; level++) {
                unsigned char *z = NULL, *d = NULL;
                size_t zn = 0, dn = 0;
                ref_stats st;
                char why[200];
                int rc1 = irmae_zlib_compress(&z, &zn, src, n, level);
                int rc2 = irmae_deflate(&d, &dn, src, n, level);
                bytes_in += n;
                zsz[level] = zn;
                if (rc1 || rc2) { CHECK(0, "%s %lu level %d: rc %d %d", kind_name[kind], (unsigned long)n, level, rc1, rc2); ok_all = 0; continue; }
                /* deterministic: the zlib stream is the raw stream in a wrapper */
                if (!(zn == dn + 6 && memcmp(z + 2, d, dn) == 0)) {
                    CHECK(0, "%s %lu level %d: zlib body differs from irmae_deflate", kind_name[kind], (unsigned long)n, level);
                    ok_all = 0;
                }
                if (ref_zlib_check(z, zn, src, n, &st, why, sizeof why)) {
                    CHECK(0, "%s %lu level %d: %s", kind_name[kind], (unsigned long)n, level, why);
                    ok_all = 0;
                } else {
                    g_pass++;
                    if (level == 0) CHECK(st.fixed == 0 && st.dynamic == 0, "level 0 used Huffman blocks");
                    /* 1..3 literals: a fixed block (<= 34 bits) beats stored (>= 48) and dynamic */
                    if (level > 0 && n >= 1 && n <= 3)
                        CHECK(st.fixed == 1 && st.stored == 0 && st.dynamic == 0, "%s %lu level %d: %d/%d/%d blocks",
                              kind_name[kind], (unsigned long)n, level, st.stored, st.fixed, st.dynamic);
                    if (kind == K_TEXT && n >= 32768 && level >= 1)
                        CHECK(st.dynamic > 0 && st.matches > 0, "text %lu level %d: %d dynamic blocks, %lu matches",
                              (unsigned long)n, level, st.dynamic, (unsigned long)st.matches);
                    if (kind == K_SKEWED && n == (1u << 20) && level == 9)
                        printf("skewed 1 MiB level 9: %d dynamic blocks, longest codes lit/len %d dist %d code-length %d\n",
                               st.dynamic, st.max_llen, st.max_dlen, st.max_cllen);
                }
                {   /* no block may cost more than storing it would */
                    size_t bound = n + 6 * (n / 16384 + 1) + 5 * (n / 65535 + 1) + 6;
                    CHECK(zn <= bound, "%s %lu level %d: %lu bytes > bound %lu", kind_name[kind], (unsigned long)n,
                          level, (unsigned long)zn, (unsigned long)bound);
                }
                if (kind == K_RANDOM && n > 0) {
                    /* stored fallback: 5 bytes per 65535-byte piece (+ header/trailer) */
                    size_t bound = n + 5 * ((n + 65534) / 65535) + 6;
                    if (level >= 1) CHECK(zn <= bound, "random %lu level %d: %lu bytes > %lu", (unsigned long)n, level,
                                          (unsigned long)zn, (unsigned long)bound);
                }
                if (g_have_python && (n <= 65536 || level == 0 || level == 1 || level == 6 || level == 9)) {
                    char zpath[700];
                    snprintf(zpath, sizeof zpath, "%s_%d.z", rawpath, level);
                    if (write_file(zpath, z, zn)) py_queue("zlib %s %s", zpath, rawpath);
                    else CHECK(0, "write %s", zpath);
                }
                irmae_free_buffer(z);
                irmae_free_buffer(d);
            }
            if (kind == K_ZEROS && n == (1u << 20))
                CHECK(zsz[1] < 8000 && zsz[6] < 2000, "zeros 1 MiB: level 1 %lu, level 6 %lu bytes", (unsigned long)zsz[1], (unsigned long)zsz[6]);
            if ((kind == K_TEXT || kind == K_RUNS) && n >= 65536) {
                CHECK(zsz[9] <= zsz[1] && zsz[1] < zsz[0] / 2, "%s %lu: level 0 %lu, 1 %lu, 9 %lu", kind_name[kind],
                      (unsigned long)n, (unsigned long)zsz[0], (unsigned long)zsz[1], (unsigned long)zsz[9]);
            }
            if (n == (1u << 20)) {
                printf("%-7s 1 MiB: level 0..9 ->", kind_name[kind]);
                for (level = 0; level <= 9; level++) printf(" %lu", (unsigned long)zsz[level]);
                printf("\n");
                if (g_have_python && g_nzs + 3 <= 64 && kind != K_ZEROS) {
                    static char names[K_COUNT][3][40];
                    int li, lv[3] = { 1, 6, 9 };
                    for (li = 0; li < 3; li++) {
                        snprintf(names[kind][li], 40, "%s 1 MiB level %d", kind_name[kind], lv[li]);
                        g_zs[g_nzs].what = names[kind][li];
                        g_zs[g_nzs].mine = zsz[lv[li]];
                        g_zs[g_nzs].line = py_queue("zsize %s %d", rawpath, lv[li]);
                        g_nzs++;
                    }
                }
            }
            free(src);
        }
    }
    {   /* alternating random / text segments: runs of stored blocks between Huffman blocks */
        size_t n = 400000, i, seg = 40000;
        unsigned char *src = (unsigned char *)malloc(n);
        static const int lv[3] = { 1, 6, 9 };
        if (!src) { CHECK(0, "malloc"); return; }
        for (i = 0; i < n; i += seg) make_input(src + i, n - i < seg ? n - i : seg, (i / seg) % 2 ? K_TEXT : K_RANDOM, &r);
        if (g_have_python) write_file(tmp_name("mixed.raw"), src, n);
        for (si = 0; si < 3; si++) {
            unsigned char *z = NULL;
            size_t zn = 0;
            ref_stats st;
            char why[200];
            int rc = irmae_zlib_compress(&z, &zn, src, n, lv[si]);
            if (rc || ref_zlib_check(z, zn, src, n, &st, why, sizeof why)) {
                CHECK(0, "mixed level %d: rc %d, %s", lv[si], rc, rc ? "" : why);
            } else {
                CHECK(st.stored > 0 && st.dynamic > 0, "mixed level %d: %d stored, %d dynamic blocks", lv[si], st.stored, st.dynamic);
                CHECK(zn < n * 3 / 4, "mixed level %d: %lu bytes", lv[si], (unsigned long)zn);
                if (si == 1) printf("mixed random/text 400 kB level 6: %lu bytes, %d stored + %d dynamic + %d fixed blocks\n",
                                    (unsigned long)zn, st.stored, st.dynamic, st.fixed);
                if (g_have_python) {
                    char zp[64];
                    snprintf(zp, sizeof zp, "mixed_%d.z", lv[si]);
                    if (write_file(tmp_name(zp), z, zn)) py_queue("zlib %s %s", tmp_name(zp), tmp_name("mixed.raw"));
                }
            }
            irmae_free_buffer(z);
        }
        free(src);
    }
    printf("streams: %s, %.1f MB compressed + reference-inflated in %.1f s\n", ok_all ? "all round-trip" : "FAILURES",
           (double)bytes_in / 1e6, (double)(clock() - t0) / CLOCKS_PER_SEC);
}

/* Encodes, decodes with the reference reader, compares, checks the filter
   choice and queues the pypng check. Returns the PNG size (0 on failure). */
static size_t png_roundtrip(const unsigned char *pix, int w, int h, int c, const char *what)
{
    unsigned char *png = NULL, *dec, *ft = NULL;
    size_t n = 0;
    int rc = irmae_png_encode(&png, &n, pix, w, h, c), dw = 0, dh = 0, dc = 0, nidat = 0, y, badf = -1;
    char why[200], path[640];
    if (rc) { CHECK(0, "%s: png_encode rc %d (%s)", what, rc, irmae_error_detail()); return 0; }
    dec = ref_png_decode(png, n, &dw, &dh, &dc, &ft, &nidat, why, sizeof why);
    if (!dec) { CHECK(0, "%s: %s", what, why); irmae_free_buffer(png); return 0; }
    CHECK(dw == w && dh == h && dc == c && memcmp(dec, pix, (size_t)w * h * c) == 0,
          "%s: decoded %dx%dx%d differs", what, dw, dh, dc);
    for (y = 0; y < h && badf < 0; y++) if (ft[y] != expected_filter(pix, w, c, y)) badf = y;
    CHECK(badf < 0, "%s: row %d uses filter %d, the heuristic says %d", what, badf, badf >= 0 ? ft[badf] : 0,
          badf >= 0 ? expected_filter(pix, w, c, badf) : 0);
    {   /* 8 signature + 25 IHDR + 12 IEND + 12 per IDAT; IDATs hold 64 KiB each but the last */
        size_t zlen = n - 45 - 12 * (size_t)nidat;
        CHECK(nidat >= 1 && (size_t)nidat == (zlen + 65535) / 65536, "%s: %d IDAT chunks for %lu zlib bytes",
              what, nidat, (unsigned long)zlen);
    }
    if (g_have_python) {
        char rpath[700];
        snprintf(path, sizeof path, "%s", tmp_name(what));
        snprintf(rpath, sizeof rpath, "%s.raw", path);
        strcat(path, ".png");
        if (write_file(path, png, n) && write_file(rpath, pix, (size_t)w * h * c))
            py_queue("png %s %s %d %d %d", path, rpath, w, h, c);
        else CHECK(0, "write %s", path);
    }
    free(dec); free(ft);
    irmae_free_buffer(png);
    return n;
}

static void test_png(void)
{
    static const int dims[][2] = { { 1, 1 }, { 3, 7 }, { 17, 5 }, { 64, 64 }, { 1000, 3 } };
    irmae_rng r = irmae_rng_seed(9);
    int c, di, pat, i;
    for (c = 1; c <= 4; c++)
        for (di = 0; di < 5; di++)
            for (pat = 0; pat < 2; pat++) {
                int w = dims[di][0], h = dims[di][1], x, y, k;
                unsigned char *pix = (unsigned char *)malloc((size_t)w * h * c);
                char what[64];
                if (!pix) { CHECK(0, "malloc"); return; }
                for (y = 0; y < h; y++)
                    for (x = 0; x < w; x++)
                        for (k = 0; k < c; k++)
                            pix[((size_t)y * w + x) * c + k] = pat == 0
                                ? (unsigned char)((x * 255 / (w > 1 ? w - 1 : 1) + y * 3 + k * 40) & 255)
                                : (unsigned char)(irmae_rng_u64(&r) >> 56);
                snprintf(what, sizeof what, "png_c%d_%dx%d_%s", c, w, h, pat ? "noise" : "grad");
                png_roundtrip(pix, w, h, c, what);
                free(pix);
            }
    {   /* large enough for several IDAT chunks */
        int w = 256, h = 256, cc = 4;
        unsigned char *pix = (unsigned char *)malloc((size_t)w * h * cc), *png, *dec, *ft;
        size_t n;
        int dw, dh, dc, nidat = 0;
        char why[200];
        if (!pix) { CHECK(0, "malloc"); return; }
        for (i = 0; i < w * h * cc; i++) pix[i] = (unsigned char)(irmae_rng_u64(&r) >> 56);
        png_roundtrip(pix, w, h, cc, "png_c4_256x256_noise");
        if (irmae_png_encode(&png, &n, pix, w, h, cc) == 0) {
            dec = ref_png_decode(png, n, &dw, &dh, &dc, &ft, &nidat, why, sizeof why);
            CHECK(dec && nidat >= 4, "256x256 RGBA noise: %d IDAT chunks, %lu bytes", nidat, (unsigned long)n);
            printf("png: 256x256 RGBA noise -> %lu bytes (raw %d) in %d IDAT chunks\n", (unsigned long)n, w * h * cc, nidat);
            free(dec); free(ft);
            irmae_free_buffer(png);
        } else CHECK(0, "encode 256x256 noise");
        free(pix);
    }
    {   /* compression must be real on smooth images */
        int w = 256, h = 256, x, y;
        unsigned char *pix = (unsigned char *)malloc((size_t)w * h * 3);
        size_t n, raw = (size_t)w * h * 3;
        if (!pix) { CHECK(0, "malloc"); return; }
        for (y = 0; y < h; y++)
            for (x = 0; x < w; x++) {
                unsigned char *p = pix + ((size_t)y * w + x) * 3;
                p[0] = (unsigned char)x; p[1] = (unsigned char)y; p[2] = (unsigned char)((x + y) / 2);
            }
        n = png_roundtrip(pix, w, h, 3, "png_gradient_256");
        printf("png: 256x256 RGB gradient -> %lu bytes = %.2f%% of raw %lu\n", (unsigned long)n, 100.0 * n / raw, (unsigned long)raw);
        CHECK(n > 0 && n < raw / 10, "gradient PNG %lu bytes, not under 10%% of %lu", (unsigned long)n, (unsigned long)raw);
        for (y = 0; y < h; y++)
            for (x = 0; x < w; x++) {
                unsigned char *p = pix + ((size_t)y * w + x) * 3;
                int in = (x - 120) * (x - 120) + (y - 140) * (y - 140) <= 60 * 60;
                p[0] = (unsigned char)(in ? 230 : 0); p[1] = (unsigned char)(in ? 90 : 0); p[2] = (unsigned char)(in ? 20 : 0);
            }
        n = png_roundtrip(pix, w, h, 3, "png_circle_256");
        printf("png: 256x256 RGB circle on black -> %lu bytes = %.2f%% of raw\n", (unsigned long)n, 100.0 * n / raw);
        CHECK(n > 0 && n < raw / 10, "circle PNG %lu bytes, not under 10%% of %lu", (unsigned long)n, (unsigned long)raw);
        free(pix);
    }
    {   /* a big image: linear time */
        int w = 2048, h = 1024, x, y;
        size_t n = 0;
        unsigned char *pix = (unsigned char *)malloc((size_t)w * h * 4), *png = NULL;
        clock_t t0;
        double secs;
        if (!pix) { CHECK(0, "malloc"); return; }
        for (y = 0; y < h; y++)
            for (x = 0; x < w; x++) {
                unsigned char *p = pix + ((size_t)y * w + x) * 4;
                p[0] = (unsigned char)(x >> 3); p[1] = (unsigned char)(y >> 2);
                p[2] = (unsigned char)((x ^ y) & 0xF0); p[3] = (unsigned char)(irmae_rng_u64(&r) >> 62);
            }
        t0 = clock();
        CHECK(irmae_png_encode(&png, &n, pix, w, h, 4) == 0, "2048x1024 encode");
        secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
        printf("png: 2048x1024 RGBA (8 MiB) -> %lu bytes in %.2f s cpu\n", (unsigned long)n, secs);
        if (png) {
            unsigned char *ft = NULL, *dec;
            int dw, dh, dc, ni;
            char why[200];
            dec = ref_png_decode(png, n, &dw, &dh, &dc, &ft, &ni, why, sizeof why);
            CHECK(dec && dw == w && dh == h && dc == 4 && memcmp(dec, pix, (size_t)w * h * 4) == 0, "2048x1024: %s", dec ? "pixels differ" : why);
            free(dec); free(ft);
        }
        irmae_free_buffer(png);
        free(pix);
    }
}

static void test_grid(void)
{
    /* 5 RGB images of 4 x 2 (h x w), 3 per row, pad 1 -> 10 x 11 */
    float img[5 * 3 * 4 * 2];
    int i, count = 5, c = 3, h = 4, w = 2, cols = 3, pad = 1, gw = 10, gh = 11;
    unsigned char expect[11 * 10 * 3], *png = NULL, *dec, *ft;
    const char *path = tmp_name("grid.png");
    FILE *f;
    size_t n = 0;
    int dw, dh, dc, ni, k, y, x;
    char why[200];
    for (i = 0; i < 5 * 3 * 4 * 2; i++) img[i] = -1.5f + 0.05f * (float)i; /* spans below lo and above hi */
    img[7] = (float)NAN;
    memset(expect, 128, sizeof expect);
    for (k = 0; k < count; k++)
        for (i = 0; i < c; i++)
            for (y = 0; y < h; y++)
                for (x = 0; x < w; x++) {
                    float v = img[((k * c + i) * h + y) * w + x];
                    double t = ((double)v + 1.0) / 2.0; /* lo = -1, hi = 1 */
                    int gx = pad + (k % cols) * (w + pad) + x, gy = pad + (k / cols) * (h + pad) + y;
                    unsigned char b = v != v ? 0 : t <= 0 ? 0 : t >= 1 ? 255 : (unsigned char)floor(t * 255.0 + 0.5);
                    expect[(gy * gw + gx) * 3 + i] = b;
                }
    CHECK(irmae_png_write_grid(path, img, count, c, h, w, cols, pad, -1.0f, 1.0f) == 0, "grid: %s", irmae_error_detail());
    remember(path);
    f = fopen(path, "rb");
    if (f) {
        static unsigned char buf[1 << 16];
        n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        png = buf;
    }
    CHECK(png && n > 0, "grid file %s not readable", path);
    if (!png) return;
    dec = ref_png_decode(png, n, &dw, &dh, &dc, &ft, &ni, why, sizeof why);
    CHECK(dec && dw == gw && dh == gh && dc == 3, "grid: %s %dx%dx%d", dec ? "" : why, dw, dh, dc);
    if (dec && dw == gw && dh == gh && dc == 3) {
        CHECK(memcmp(dec, expect, sizeof expect) == 0, "grid pixels differ");
        CHECK(dec[0] == 128 && expect[(1 * gw + 1) * 3] == 0, "grid: pad grey / clamp");
    }
    free(dec); free(ft);
    if (g_have_python) {
        const char *rp = tmp_name("grid.raw");
        if (write_file(rp, expect, sizeof expect)) py_queue("png %s %s %d %d 3", path, rp, gw, gh);
    }
    /* grey, cols > count (reduced to count), no padding */
    {
        float g1[2 * 3 * 3];
        for (i = 0; i < 18; i++) g1[i] = (float)i;
        path = tmp_name("grid1.png");
        CHECK(irmae_png_write_grid(path, g1, 2, 1, 3, 3, 8, 0, 0.0f, 17.0f) == 0, "grey grid");
        remember(path);
        f = fopen(path, "rb");
        png = NULL;
        if (f) {
            static unsigned char buf2[4096];
            n = fread(buf2, 1, sizeof buf2, f);
            fclose(f);
            png = buf2;
        }
        dec = png ? ref_png_decode(png, n, &dw, &dh, &dc, &ft, &ni, why, sizeof why) : NULL;
        CHECK(dec && dw == 6 && dh == 3 && dc == 1, "grey grid size %dx%dx%d", dw, dh, dc);
        if (dec && dw == 6 && dh == 3) {
            /* image 1 pixel (y=2,x=2) = 17 -> 255; image 0 pixel (1,1) = 4 -> round(60) */
            CHECK(dec[2 * 6 + 5] == 255 && dec[1 * 6 + 1] == 60 && dec[0] == 0, "grey grid values %d %d %d",
                  dec[2 * 6 + 5], dec[1 * 6 + 1], dec[0]);
        }
        free(dec);
        if (dec) free(ft);
    }
    CHECK(irmae_png_write_grid(path, img, 5, 2, 4, 2, 3, 1, -1.f, 1.f) == IRMAE_ERR_ARG, "grid c=2");
    CHECK(irmae_png_write_grid(path, img, 5, 3, 4, 2, 3, 1, 1.f, 1.f) == IRMAE_ERR_ARG, "grid lo == hi");
    CHECK(irmae_png_write_grid(path, img, 5, 3, 4, 2, 3, 1, (float)NAN, 1.f) == IRMAE_ERR_ARG, "grid NaN lo");
    CHECK(irmae_png_write_grid(path, img, 5, 3, 4, 2, 3, 1, 0.f, (float)INFINITY) == IRMAE_ERR_ARG, "grid inf hi");
    CHECK(irmae_png_write_grid(path, img, 0, 3, 4, 2, 3, 1, 0.f, 1.f) == IRMAE_ERR_ARG, "grid count 0");
    CHECK(irmae_png_write_grid(path, img, 5, 3, 4, 2, 0, 1, 0.f, 1.f) == IRMAE_ERR_ARG, "grid cols 0");
    CHECK(irmae_png_write_grid(path, img, 5, 3, 4, 2, 3, -1, 0.f, 1.f) == IRMAE_ERR_ARG, "grid pad -1");
    CHECK(irmae_png_write_grid(NULL, img, 5, 3, 4, 2, 3, 1, 0.f, 1.f) == IRMAE_ERR_ARG, "grid NULL path");
    CHECK(irmae_png_write_grid(path, NULL, 5, 3, 4, 2, 3, 1, 0.f, 1.f) == IRMAE_ERR_ARG, "grid NULL images");
    CHECK(irmae_png_write_grid(path, img, 1, 3, 4, 2, 1, INT_MAX / 2, 0.f, 1.f) == IRMAE_ERR_OVERFLOW, "grid pad overflow");
}

static void test_bad_args(void)
{
    unsigned char px[16] = { 0 }, *o = (unsigned char *)px;
    size_t n = 99;
    char bad[800];
    int rc;
    CHECK(irmae_deflate(&o, &n, NULL, 10, 6) == IRMAE_ERR_ARG && o == NULL && n == 0, "deflate NULL src");
    CHECK(irmae_deflate(&o, &n, px, 10, 10) == IRMAE_ERR_ARG, "deflate level 10");
    CHECK(irmae_deflate(&o, &n, px, 10, -2) == IRMAE_ERR_ARG, "deflate level -2");
    CHECK(irmae_deflate(NULL, &n, px, 10, 6) == IRMAE_ERR_ARG, "deflate NULL out");
    CHECK(irmae_zlib_compress(&o, NULL, px, 10, 6) == IRMAE_ERR_ARG, "zlib NULL out_size");
    rc = irmae_deflate(&o, &n, NULL, 0, 6);
    CHECK(rc == 0 && n == 2 && o && o[0] == 0x03 && o[1] == 0x00, "deflate of nothing: rc %d, %lu bytes", rc, (unsigned long)n);
    irmae_free_buffer(o);
    rc = irmae_zlib_compress(&o, &n, px, 16, -1); /* -1 = 6 */
    CHECK(rc == 0 && o && o[0] == 0x78 && o[1] == 0x9C, "zlib level -1 header %02x %02x", o ? o[0] : 0, o ? o[1] : 0);
    irmae_free_buffer(o);
    rc = irmae_zlib_compress(&o, &n, px, 16, 9);
    CHECK(rc == 0 && o && o[0] == 0x78 && o[1] == 0xDA, "zlib level 9 header");
    irmae_free_buffer(o);
    rc = irmae_zlib_compress(&o, &n, px, 16, 1);
    CHECK(rc == 0 && o && o[0] == 0x78 && o[1] == 0x01, "zlib level 1 header");
    irmae_free_buffer(o);
    irmae_free_buffer(NULL);

    o = px;
    CHECK(irmae_png_encode(&o, &n, NULL, 1, 1, 1) == IRMAE_ERR_ARG && o == NULL, "png NULL pixels");
    CHECK(irmae_png_encode(NULL, &n, px, 1, 1, 1) == IRMAE_ERR_ARG, "png NULL out");
    CHECK(irmae_png_encode(&o, NULL, px, 1, 1, 1) == IRMAE_ERR_ARG, "png NULL out_size");
    CHECK(irmae_png_encode(&o, &n, px, 0, 1, 1) == IRMAE_ERR_ARG, "png w 0");
    CHECK(irmae_png_encode(&o, &n, px, 1, -1, 1) == IRMAE_ERR_ARG, "png h -1");
    CHECK(irmae_png_encode(&o, &n, px, 1, 1, 0) == IRMAE_ERR_ARG, "png c 0");
    CHECK(irmae_png_encode(&o, &n, px, 1, 1, 5) == IRMAE_ERR_ARG, "png c 5");
    CHECK(irmae_png_encode(&o, &n, px, INT_MAX, INT_MAX, 4) == IRMAE_ERR_OVERFLOW && o == NULL, "png overflow: %s", irmae_error_detail());
    CHECK(irmae_png_write(NULL, px, 1, 1, 1) == IRMAE_ERR_ARG, "png_write NULL path");
    snprintf(bad, sizeof bad, "%s", tmp_name("no/such/dir/x.png"));
    rc = irmae_png_write(bad, px, 2, 2, 1);
    CHECK(rc == IRMAE_ERR_IO && strstr(irmae_error_detail(), bad) != NULL, "png_write bad dir: rc %d, '%s'", rc, irmae_error_detail());
    {
#if defined(_WIN32)
        FILE *f = NULL; /* Windows has no /dev/full (Wine maps the name to a plain file) */
#else
        FILE *f = fopen("/dev/full", "wb");
#endif
        if (f) {
            unsigned char *big = (unsigned char *)calloc(256 * 256 * 3, 1);
            int i;
            fclose(f);
            for (i = 0; big && i < 256 * 256 * 3; i++) big[i] = (unsigned char)(i * 7919 >> 3); /* ~100 KB of PNG */
            rc = big ? irmae_png_write("/dev/full", big, 256, 256, 3) : 0;
            CHECK(rc == IRMAE_ERR_IO && strstr(irmae_error_detail(), "/dev/full"), "png_write /dev/full: rc %d", rc);
            free(big);
        } else {
            printf("SKIP: no /dev/full (Windows or no such device); the write-error check is not run\n");
        }
    }
}

/* The checker itself: the single-file command forms, and that it notices a mismatch. */
static void test_checker(void)
{
    unsigned char pix[2 * 3 * 3], *png = NULL, *z = NULL;
    size_t n = 0, zn = 0;
    char cmd[3000], a[700], b[700], bad[700];
    int i, rc;
    if (!g_have_python) { printf("SKIP: checker self-test (no Python peer)\n"); return; }
    for (i = 0; i < 18; i++) pix[i] = (unsigned char)(i * 13);
    snprintf(a, sizeof a, "%s", tmp_name("self.png"));
    snprintf(b, sizeof b, "%s", tmp_name("self.raw"));
    snprintf(bad, sizeof bad, "%s", tmp_name("self_bad.raw"));
    if (irmae_png_encode(&png, &n, pix, 3, 2, 3) || irmae_zlib_compress(&z, &zn, pix, 18, 6)) { CHECK(0, "encode"); return; }
    write_file(a, png, n);
    write_file(b, pix, 18);
    pix[17] ^= 1;
    write_file(bad, pix, 18);
    snprintf(cmd, sizeof cmd, "'%s' tests/png_check.py '%s' '%s' 3 2 3 > /dev/null", g_python, a, b);
    rc = system(cmd);
    CHECK(rc == 0, "png_check.py png mode: status %d", rc);
    snprintf(cmd, sizeof cmd, "'%s' tests/png_check.py '%s' '%s' 3 2 3 > /dev/null", g_python, a, bad);
    rc = system(cmd);
    CHECK(rc != 0, "png_check.py accepted a wrong raw file");
    snprintf(cmd, sizeof cmd, "'%s' tests/png_check.py '%s' '%s' 2 3 3 > /dev/null", g_python, a, b);
    rc = system(cmd);
    CHECK(rc != 0, "png_check.py accepted wrong dimensions");
    snprintf(a, sizeof a, "%s", tmp_name("self.z"));
    write_file(a, z, zn);
    snprintf(cmd, sizeof cmd, "'%s' tests/png_check.py zlib '%s' '%s' > /dev/null", g_python, a, b);
    rc = system(cmd);
    CHECK(rc == 0, "png_check.py zlib mode: status %d", rc);
    snprintf(cmd, sizeof cmd, "'%s' tests/png_check.py zlib '%s' '%s' > /dev/null", g_python, a, bad);
    rc = system(cmd);
    CHECK(rc != 0, "png_check.py zlib mode accepted a wrong raw file");
    irmae_free_buffer(png);
    irmae_free_buffer(z);
}

int main(void)
{
    python_init();
    test_huffman_lengths();
    test_bad_args();
    test_streams();
    test_png();
    test_grid();
    test_checker();
    py_run();
    cleanup();
    printf("test_pngw: %d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
