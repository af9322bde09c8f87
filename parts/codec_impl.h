/* ---------------------------------------------------------------------- */
/* Data: loaders for untrusted files                                      */
/* ---------------------------------------------------------------------- */

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#else
#include <dirent.h>
#endif

static uint32_t irmae__cd_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}
static uint32_t irmae__cd_le32(const unsigned char *p)
{
    return ((uint32_t)p[3] << 24) | ((uint32_t)p[2] << 16) | ((uint32_t)p[1] << 8) | (uint32_t)p[0];
}

/* The effective output limit of a decompressor: 0 and anything above
   IRMAE_MAX_ALLOC mean IRMAE_MAX_ALLOC. */
static size_t irmae__cd_limit(size_t max_out)
{
    return (max_out == 0 || max_out > (size_t)IRMAE_MAX_ALLOC) ? (size_t)IRMAE_MAX_ALLOC : max_out;
}

/* Re-fails with the current detail plus the name of the file. */
static int irmae__cd_tag_path(int rc, const char *path)
{
    char msg[400];
    const char *d = irmae_error_detail();
    size_t skip = strlen(irmae_error_string(rc)) + 2, len; /* "<name>: " prefix */
    if (strlen(d) >= skip && strncmp(d, irmae_error_string(rc), skip - 2) == 0) d += skip;
    len = strlen(d);
    if (len > sizeof msg - 1) len = sizeof msg - 1;
    memcpy(msg, d, len);
    msg[len] = 0;
    return irmae__fail(rc, "%s (file '%.200s')", msg, path);
}

/* Reads a whole file (at most IRMAE_MAX_ALLOC bytes) into a new buffer. */
static int irmae__cd_read_file(const char *path, unsigned char **out, size_t *out_size)
{
    FILE *f;
    unsigned char *buf = NULL, *nb;
    size_t len = 0, cap = 0, got;
    *out = NULL; *out_size = 0;
    if (!path) return irmae__fail(IRMAE_ERR_ARG, "read: path is NULL");
    f = fopen(path, "rb");
    if (!f) return irmae__fail(IRMAE_ERR_IO, "read: cannot open '%.300s'", path);
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            if (cap >= (size_t)IRMAE_MAX_ALLOC) {
                /* full at the limit: one more byte means too large */
                unsigned char probe;
                if (fread(&probe, 1, 1, f) == 1) {
                    fclose(f); irmae__free(buf);
                    return irmae__fail(IRMAE_ERR_LIMIT, "read: '%.300s' is larger than IRMAE_MAX_ALLOC (%lu bytes)",
                                       path, (unsigned long)IRMAE_MAX_ALLOC);
                }
                break;
            }
            if (ncap > (size_t)IRMAE_MAX_ALLOC || ncap < cap) ncap = (size_t)IRMAE_MAX_ALLOC;
            nb = (unsigned char *)irmae__alloc(ncap, 1);
            if (!nb) { fclose(f); irmae__free(buf); return irmae__fail(IRMAE_ERR_NOMEM, "read: %lu bytes for '%.300s'", (unsigned long)ncap, path); }
            if (len) memcpy(nb, buf, len);
            irmae__free(buf);
            buf = nb; cap = ncap;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    if (ferror(f)) {
        fclose(f); irmae__free(buf);
        return irmae__fail(IRMAE_ERR_IO, "read: error reading '%.300s' after %lu bytes", path, (unsigned long)len);
    }
    fclose(f);
    if (!buf) { /* cannot happen (the first pass allocates), kept for clarity */
        buf = (unsigned char *)irmae__alloc(1, 1);
        if (!buf) return irmae__fail(IRMAE_ERR_NOMEM, "read: 1 byte");
    }
    *out = buf; *out_size = len;
    return IRMAE_OK;
}

/* ---------------------------------------------------------------------- */
/* Inflate (RFC 1951)                                                     */
/* ---------------------------------------------------------------------- */

/* Canonical Huffman decoding: a 10-bit lookup table resolves every code of
   at most 10 bits in one step; longer codes walk the canonical code one bit
   at a time using count[] and sym[]. */
#define IRMAE__INF_FAST 10

typedef struct irmae__inf_huff {
    uint16_t fast[1 << IRMAE__INF_FAST]; /* (length << 9) | symbol; 0 = not a short code */
    uint16_t count[16];                  /* number of codes of each length */
    uint16_t sym[288];                   /* symbols sorted by code */
} irmae__inf_huff;

typedef struct irmae__inf_out {
    unsigned char *p;
    size_t len, cap, limit;
} irmae__inf_out;

typedef struct irmae__inf {
    const unsigned char *src;
    size_t size, pos;   /* bytes of src, bytes moved into bitbuf so far */
    size_t base;        /* offset of src[0] in the caller's input, for messages */
    uint64_t bitbuf;    /* unread bits, LSB first (see irmae__inf_refill) */
    int bitcnt;
    const char *what;   /* "inflate", "zlib", "gzip", "png" */
    irmae__inf_out *o;
    int fixed_ready;
    irmae__inf_huff lit, dist, fixlit, fixdist;
} irmae__inf;

/* Byte offset (in the caller's input) of the next unread bit. */
static size_t irmae__inf_at(const irmae__inf *s)
{
    return s->base + s->pos - (size_t)(s->bitcnt / 8);
}

/* Tops bitbuf up to at least 56 bits while input lasts. With 8 bytes left
   it ORs in a whole 64-bit word and counts only the whole bytes that fit:
   the bits above bitcnt are then the next input bits, and ORing the same
   bytes in again at the same place later changes nothing. Near the end it
   goes byte by byte, and once the input is exhausted the bits above bitcnt
   are 0. */
static void irmae__inf_refill(irmae__inf *s)
{
    if (s->size - s->pos >= 8) {
        const unsigned char *p = s->src + s->pos;
        uint64_t v = (uint64_t)p[0] | ((uint64_t)p[1] << 8) | ((uint64_t)p[2] << 16) | ((uint64_t)p[3] << 24) |
                     ((uint64_t)p[4] << 32) | ((uint64_t)p[5] << 40) | ((uint64_t)p[6] << 48) | ((uint64_t)p[7] << 56);
        s->bitbuf |= v << s->bitcnt;
        s->pos += (size_t)((63 - s->bitcnt) >> 3);
        s->bitcnt |= 56;
        return;
    }
    while (s->bitcnt <= 56 && s->pos < s->size) {
        s->bitbuf |= (uint64_t)s->src[s->pos++] << s->bitcnt;
        s->bitcnt += 8;
    }
}

static int irmae__inf_trunc(const irmae__inf *s, const char *where)
{
    return irmae__fail(IRMAE_ERR_TRUNCATED, "%s: deflate data ends inside %s (input offset %lu)",
                       s->what, where, (unsigned long)(s->base + s->size));
}

/* Reads n <= 32 bits. */
static int irmae__inf_bits(irmae__inf *s, int n, unsigned *v, const char *where)
{
    if (s->bitcnt < n) irmae__inf_refill(s);
    if (s->bitcnt < n) return irmae__inf_trunc(s, where);
    *v = (unsigned)(s->bitbuf & ((((uint64_t)1) << n) - 1));
    s->bitbuf >>= n;
    s->bitcnt -= n;
    return IRMAE_OK;
}

/* Builds a decoder for n code lengths. kind: 0 code-length code, 1 literal/
   length, 2 distance. Checks the code as zlib does. */
static int irmae__inf_build(irmae__inf *s, irmae__inf_huff *h, const unsigned char *lens, int n, int kind)
{
    static const char *const names[3] = { "code-length", "literal/length", "distance" };
    uint16_t offs[17];
    int len, i, left, maxlen = 0, idx;
    unsigned code;
    memset(h->count, 0, sizeof h->count);
    for (i = 0; i < n; i++) h->count[lens[i]]++;
    h->count[0] = 0;
    left = 1;
    for (len = 1; len <= 15; len++) {
        left = left * 2 - h->count[len];
        if (left < 0)
            return irmae__fail(IRMAE_ERR_FORMAT, "%s: over-subscribed %s code (too many codes of length %d) in the block header before offset %lu",
                               s->what, names[kind], len, (unsigned long)irmae__inf_at(s));
        if (h->count[len]) maxlen = len;
    }
    if (left > 0 && (kind == 0 || maxlen > 1))
        return irmae__fail(IRMAE_ERR_FORMAT, "%s: incomplete %s code in the block header before offset %lu",
                           s->what, names[kind], (unsigned long)irmae__inf_at(s));
    offs[1] = 0;
    for (len = 1; len < 16; len++) offs[len + 1] = (uint16_t)(offs[len] + h->count[len]);
    for (i = 0; i < n; i++)
        if (lens[i]) h->sym[offs[lens[i]]++] = (uint16_t)i;
    memset(h->fast, 0, sizeof h->fast);
    code = 0; idx = 0;
    for (len = 1; len <= IRMAE__INF_FAST; len++) {
        for (i = 0; i < h->count[len]; i++, idx++, code++) {
            unsigned rev = 0, c = code, e;
            int k;
            for (k = 0; k < len; k++) { rev = (rev << 1) | (c & 1); c >>= 1; }
            for (e = rev; e < (1u << IRMAE__INF_FAST); e += 1u << len)
                h->fast[e] = (uint16_t)((len << 9) | h->sym[idx]);
        }
        code <<= 1;
    }
    return IRMAE_OK;
}

/* Decodes one symbol; returns it (>= 0) or a negative error. */
static int irmae__inf_decode(irmae__inf *s, const irmae__inf_huff *h, const char *where)
{
    unsigned e;
    int len, code, first, index, count;
    if (s->bitcnt < 15) irmae__inf_refill(s);
    e = h->fast[s->bitbuf & ((1u << IRMAE__INF_FAST) - 1)];
    if (e) {
        len = (int)(e >> 9);
        if (len > s->bitcnt) return irmae__inf_trunc(s, where);
        s->bitbuf >>= len;
        s->bitcnt -= len;
        return (int)(e & 511);
    }
    code = first = index = 0;
    for (len = 1; len <= 15; len++) {
        if (len > s->bitcnt) return irmae__inf_trunc(s, where);
        code |= (int)((s->bitbuf >> (len - 1)) & 1);
        count = h->count[len];
        if (code - first < count) {
            s->bitbuf >>= len;
            s->bitcnt -= len;
            return h->sym[index + code - first];
        }
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    return irmae__fail(IRMAE_ERR_FORMAT, "%s: invalid %s code (unused bit pattern of an incomplete code) at offset %lu",
                       s->what, where, (unsigned long)irmae__inf_at(s));
}

/* Makes room for `need` more output bytes. */
static int irmae__inf_room(irmae__inf *s, size_t need)
{
    irmae__inf_out *o = s->o;
    size_t want, ncap;
    unsigned char *np;
    if (need > o->limit - o->len)
        return irmae__fail(IRMAE_ERR_LIMIT, "%s: output exceeds the limit of %lu bytes (input offset %lu)",
                           s->what, (unsigned long)o->limit, (unsigned long)irmae__inf_at(s));
    want = o->len + need;
    if (want <= o->cap) return IRMAE_OK;
    ncap = o->cap ? o->cap : 4096;
    while (ncap < want) ncap = ncap > o->limit / 2 ? o->limit : ncap * 2;
    if (ncap > o->limit) ncap = o->limit;
    np = (unsigned char *)irmae__alloc(ncap, 1);
    if (!np) return irmae__fail(IRMAE_ERR_NOMEM, "%s: output buffer of %lu bytes", s->what, (unsigned long)ncap);
    if (o->len) memcpy(np, o->p, o->len);
    irmae__free(o->p);
    o->p = np;
    o->cap = ncap;
    return IRMAE_OK;
}

static int irmae__inf_stored(irmae__inf *s)
{
    size_t n;
    unsigned len, nlen;
    int rc;
    /* skip to the byte boundary, then hand the whole bytes back to src */
    s->bitbuf >>= s->bitcnt & 7;
    s->bitcnt -= s->bitcnt & 7;
    s->pos -= (size_t)(s->bitcnt / 8);
    s->bitbuf = 0;
    s->bitcnt = 0;
    if (s->size - s->pos < 4) return irmae__inf_trunc(s, "a stored block header");
    len = (unsigned)s->src[s->pos] | ((unsigned)s->src[s->pos + 1] << 8);
    nlen = (unsigned)s->src[s->pos + 2] | ((unsigned)s->src[s->pos + 3] << 8);
    if (len != (~nlen & 0xFFFFu))
        return irmae__fail(IRMAE_ERR_FORMAT, "%s: stored block LEN %u does not match NLEN %u at offset %lu",
                           s->what, len, nlen, (unsigned long)(s->base + s->pos));
    s->pos += 4;
    n = len;
    if (s->size - s->pos < n) return irmae__inf_trunc(s, "a stored block");
    if ((rc = irmae__inf_room(s, n)) != 0) return rc;
    if (n) memcpy(s->o->p + s->o->len, s->src + s->pos, n);
    s->o->len += n;
    s->pos += n;
    return IRMAE_OK;
}

static int irmae__inf_codes(irmae__inf *s, const irmae__inf_huff *lit, const irmae__inf_huff *dist)
{
    static const uint16_t lbase[29] = { 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
                                        35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258 };
    static const unsigned char lext[29] = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
                                            3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0 };
    static const uint16_t dbase[30] = { 1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
                                        257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145,
                                        8193, 12289, 16385, 24577 };
    static const unsigned char dext[30] = { 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
                                            7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13 };
    irmae__inf_out *o = s->o;
    int sym, rc;
    unsigned extra;
    size_t length, distance, i;
    unsigned char *d;
    const unsigned char *from;
    for (;;) {
        unsigned e;
        if (s->bitcnt < 15) irmae__inf_refill(s);
        e = lit->fast[s->bitbuf & ((1u << IRMAE__INF_FAST) - 1)];
        if (e && (int)(e >> 9) <= s->bitcnt) { /* inline fast path */
            s->bitbuf >>= e >> 9;
            s->bitcnt -= (int)(e >> 9);
            sym = (int)(e & 511);
        } else {
            sym = irmae__inf_decode(s, lit, "literal/length");
            if (sym < 0) return sym;
        }
        if (sym < 256) {
            if (o->len == o->cap && (rc = irmae__inf_room(s, 1)) != 0) return rc;
            o->p[o->len++] = (unsigned char)sym;
            continue;
        }
        if (sym == 256) return IRMAE_OK;
        sym -= 257;
        if (sym >= 29)
            return irmae__fail(IRMAE_ERR_FORMAT, "%s: invalid length symbol %d at offset %lu",
                               s->what, sym + 257, (unsigned long)irmae__inf_at(s));
        if ((rc = irmae__inf_bits(s, lext[sym], &extra, "length extra bits")) != 0) return rc;
        length = (size_t)lbase[sym] + extra;
        sym = irmae__inf_decode(s, dist, "distance");
        if (sym < 0) return sym;
        if (sym >= 30)
            return irmae__fail(IRMAE_ERR_FORMAT, "%s: invalid distance symbol %d at offset %lu",
                               s->what, sym, (unsigned long)irmae__inf_at(s));
        if ((rc = irmae__inf_bits(s, dext[sym], &extra, "distance extra bits")) != 0) return rc;
        distance = (size_t)dbase[sym] + extra;
        if (distance > o->len)
            return irmae__fail(IRMAE_ERR_FORMAT, "%s: distance %lu reaches before the start of the output (%lu bytes so far) at offset %lu",
                               s->what, (unsigned long)distance, (unsigned long)o->len, (unsigned long)irmae__inf_at(s));
        if ((rc = irmae__inf_room(s, length)) != 0) return rc;
        d = o->p + o->len;
        from = d - distance;
        if (distance >= length) memcpy(d, from, length);
        else for (i = 0; i < length; i++) d[i] = from[i]; /* overlapping: repeats the last distance bytes */
        o->len += length;
    }
}

static int irmae__inf_fixed(irmae__inf *s)
{
    unsigned char lens[288];
    int i, rc;
    if (!s->fixed_ready) {
        for (i = 0; i < 144; i++) lens[i] = 8;
        for (; i < 256; i++) lens[i] = 9;
        for (; i < 280; i++) lens[i] = 7;
        for (; i < 288; i++) lens[i] = 8;
        if ((rc = irmae__inf_build(s, &s->fixlit, lens, 288, 1)) != 0) return rc;
        for (i = 0; i < 32; i++) lens[i] = 5;
        if ((rc = irmae__inf_build(s, &s->fixdist, lens, 32, 2)) != 0) return rc;
        s->fixed_ready = 1;
    }
    return irmae__inf_codes(s, &s->fixlit, &s->fixdist);
}

static int irmae__inf_dynamic(irmae__inf *s)
{
    static const unsigned char order[19] = { 16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15 };
    unsigned char lens[288 + 32];
    unsigned hlit, hdist, hclen, v, rep;
    int i, n, sym, rc;
    unsigned char fill;
    if ((rc = irmae__inf_bits(s, 14, &v, "a dynamic block header")) != 0) return rc;
    hlit = (v & 31) + 257;
    hdist = ((v >> 5) & 31) + 1;
    hclen = (v >> 10) + 4;
    if (hlit > 286 || hdist > 30)
        return irmae__fail(IRMAE_ERR_FORMAT, "%s: dynamic block declares %u literal/length and %u distance codes (at most 286 and 30) at offset %lu",
                           s->what, hlit, hdist, (unsigned long)irmae__inf_at(s));
    memset(lens, 0, sizeof lens);
    for (i = 0; i < (int)hclen; i++) {
        if ((rc = irmae__inf_bits(s, 3, &v, "the code-length code lengths")) != 0) return rc;
        lens[order[i]] = (unsigned char)v;
    }
    if ((rc = irmae__inf_build(s, &s->lit, lens, 19, 0)) != 0) return rc; /* lit as scratch */
    n = (int)(hlit + hdist);
    memset(lens, 0, sizeof lens);
    for (i = 0; i < n;) {
        sym = irmae__inf_decode(s, &s->lit, "code-length");
        if (sym < 0) return sym;
        if (sym < 16) { lens[i++] = (unsigned char)sym; continue; }
        if (sym == 16) {
            if (i == 0)
                return irmae__fail(IRMAE_ERR_FORMAT, "%s: code-length repeat (16) with no previous length at offset %lu",
                                   s->what, (unsigned long)irmae__inf_at(s));
            fill = lens[i - 1];
            if ((rc = irmae__inf_bits(s, 2, &v, "a code-length repeat")) != 0) return rc;
            rep = 3 + v;
        } else if (sym == 17) {
            fill = 0;
            if ((rc = irmae__inf_bits(s, 3, &v, "a code-length repeat")) != 0) return rc;
            rep = 3 + v;
        } else {
            fill = 0;
            if ((rc = irmae__inf_bits(s, 7, &v, "a code-length repeat")) != 0) return rc;
            rep = 11 + v;
        }
        if (rep > (unsigned)(n - i))
            return irmae__fail(IRMAE_ERR_FORMAT, "%s: code-length repeat of %u overruns the %d lengths (at %d) at offset %lu",
                               s->what, rep, n, i, (unsigned long)irmae__inf_at(s));
        while (rep--) lens[i++] = fill;
    }
    if (lens[256] == 0)
        return irmae__fail(IRMAE_ERR_FORMAT, "%s: dynamic block has no end-of-block code (offset %lu)",
                           s->what, (unsigned long)irmae__inf_at(s));
    if ((rc = irmae__inf_build(s, &s->lit, lens, (int)hlit, 1)) != 0) return rc;
    if ((rc = irmae__inf_build(s, &s->dist, lens + hlit, (int)hdist, 2)) != 0) return rc;
    return irmae__inf_codes(s, &s->lit, &s->dist);
}

/* Decodes one DEFLATE stream from src[0..size), appending to o. *used gets
   the number of input bytes the stream occupies (the partial last byte
   counts). base is the offset of src in the caller's input (messages). */
static int irmae__inf_stream(const unsigned char *src, size_t size, size_t base, const char *what,
                             irmae__inf_out *o, size_t *used)
{
    irmae__inf *s;
    unsigned hdr = 0;
    int rc = IRMAE_OK, final = 0;
    *used = 0;
    s = (irmae__inf *)irmae__alloc(1, sizeof *s);
    if (!s) return irmae__fail(IRMAE_ERR_NOMEM, "%s: decoder state", what);
    s->src = src; s->size = size; s->pos = 0; s->base = base;
    s->bitbuf = 0; s->bitcnt = 0; s->what = what; s->o = o; s->fixed_ready = 0;
    while (!final) {
        size_t at = irmae__inf_at(s);
        if ((rc = irmae__inf_bits(s, 3, &hdr, "a block header")) != 0) break;
        final = (int)(hdr & 1);
        switch (hdr >> 1) {
        case 0: rc = irmae__inf_stored(s); break;
        case 1: rc = irmae__inf_fixed(s); break;
        case 2: rc = irmae__inf_dynamic(s); break;
        default:
            rc = irmae__fail(IRMAE_ERR_FORMAT, "%s: reserved block type 3 at offset %lu", what, (unsigned long)at);
            break;
        }
        if (rc) break;
    }
    if (!rc) *used = s->pos - (size_t)(s->bitcnt / 8);
    irmae__free(s);
    return rc;
}

static int irmae__inf_begin(irmae__inf_out *o, const void *src, size_t size, size_t max_out,
                            unsigned char **out, size_t *out_size, const char *what)
{
    if (out) *out = NULL;
    if (out_size) *out_size = 0;
    memset(o, 0, sizeof *o);
    if (!out || !out_size) return irmae__fail(IRMAE_ERR_ARG, "%s: out or out_size is NULL", what);
    if (!src && size) return irmae__fail(IRMAE_ERR_ARG, "%s: src is NULL with size %lu", what, (unsigned long)size);
    o->limit = irmae__cd_limit(max_out);
    return IRMAE_OK;
}

static int irmae__inf_finish(irmae__inf_out *o, int rc, unsigned char **out, size_t *out_size)
{
    if (!rc && !o->p) {
        o->p = (unsigned char *)irmae__alloc(1, 1);
        if (!o->p) rc = irmae__fail(IRMAE_ERR_NOMEM, "inflate: 1 byte");
    }
    if (rc) { irmae__free(o->p); memset(o, 0, sizeof *o); return rc; }
    *out = o->p;
    *out_size = o->len;
    return IRMAE_OK;
}

IRMAEDEF int irmae_inflate(const void *src, size_t size, size_t max_out,
                           unsigned char **out, size_t *out_size)
{
    irmae__inf_out o;
    size_t used;
    int rc = irmae__inf_begin(&o, src, size, max_out, out, out_size, "inflate");
    if (rc) return rc;
    rc = irmae__inf_stream((const unsigned char *)src, size, 0, "inflate", &o, &used);
    if (!rc && used != size)
        rc = irmae__fail(IRMAE_ERR_FORMAT, "inflate: %lu bytes after the final block (offset %lu)",
                         (unsigned long)(size - used), (unsigned long)used);
    return irmae__inf_finish(&o, rc, out, out_size);
}

/* zlib stream at src[0..size): appends to o; *used = bytes occupied. */
static int irmae__inf_zlib(const unsigned char *p, size_t size, const char *what, irmae__inf_out *o, size_t *used)
{
    size_t n, start = o->len;
    uint32_t want, got;
    int rc;
    *used = 0;
    if (size < 2) return irmae__fail(IRMAE_ERR_TRUNCATED, "%s: zlib header needs 2 bytes, %lu present", what, (unsigned long)size);
    if ((p[0] & 15) != 8)
        return irmae__fail(IRMAE_ERR_FORMAT, "%s: zlib compression method %d (must be 8) at offset 0", what, p[0] & 15);
    if ((p[0] >> 4) > 7)
        return irmae__fail(IRMAE_ERR_FORMAT, "%s: zlib window size field %d (at most 7) at offset 0", what, p[0] >> 4);
    if ((((unsigned)p[0] << 8) | p[1]) % 31 != 0)
        return irmae__fail(IRMAE_ERR_FORMAT, "%s: zlib header check FCHECK fails (0x%02x%02x) at offset 0", what, p[0], p[1]);
    if (p[1] & 0x20)
        return irmae__fail(IRMAE_ERR_UNSUPPORTED, "%s: zlib stream needs a preset dictionary (FDICT) at offset 1", what);
    rc = irmae__inf_stream(p + 2, size - 2, 2, what, o, &n);
    if (rc) return rc;
    n += 2;
    if (size - n < 4)
        return irmae__fail(IRMAE_ERR_TRUNCATED, "%s: zlib Adler-32 trailer at offset %lu needs 4 bytes, %lu present",
                           what, (unsigned long)n, (unsigned long)(size - n));
    want = irmae__cd_be32(p + n);
    got = irmae_adler32(1, o->p ? o->p + start : NULL, o->len - start);
    if (want != got)
        return irmae__fail(IRMAE_ERR_CHECKSUM, "%s: zlib Adler-32 0x%08lx at offset %lu, data gives 0x%08lx",
                           what, (unsigned long)want, (unsigned long)n, (unsigned long)got);
    *used = n + 4;
    return IRMAE_OK;
}

IRMAEDEF int irmae_zlib_decompress(const void *src, size_t size, size_t max_out,
                                   unsigned char **out, size_t *out_size)
{
    irmae__inf_out o;
    size_t used;
    int rc = irmae__inf_begin(&o, src, size, max_out, out, out_size, "zlib");
    if (rc) return rc;
    rc = irmae__inf_zlib((const unsigned char *)src, size, "zlib", &o, &used);
    if (!rc && used != size)
        rc = irmae__fail(IRMAE_ERR_FORMAT, "zlib: %lu bytes after the end of the stream (offset %lu)",
                         (unsigned long)(size - used), (unsigned long)used);
    return irmae__inf_finish(&o, rc, out, out_size);
}

IRMAEDEF int irmae_gzip_decompress(const void *src, size_t size, size_t max_out,
                                   unsigned char **out, size_t *out_size)
{
    const unsigned char *p = (const unsigned char *)src;
    irmae__inf_out o;
    size_t pos = 0, start, hstart, used, xlen, member = 0;
    unsigned flg;
    uint32_t crc;
    int rc = irmae__inf_begin(&o, src, size, max_out, out, out_size, "gzip");
    if (rc) return rc;
    if (size == 0) rc = irmae__fail(IRMAE_ERR_TRUNCATED, "gzip: empty input");
    while (!rc && pos < size) {
        if (member > 0) { /* zero padding after a member is allowed */
            size_t z = pos;
            while (z < size && p[z] == 0) z++;
            if (z == size) break;
            pos = z;
        }
        hstart = pos;
        if (size - pos < 10) {
            if (p[pos] != 0x1f || (size - pos > 1 && p[pos + 1] != 0x8b))
                rc = irmae__fail(IRMAE_ERR_FORMAT, "gzip: bad magic at offset %lu (member %lu)", (unsigned long)pos, (unsigned long)member);
            else
                rc = irmae__fail(IRMAE_ERR_TRUNCATED, "gzip: member header at offset %lu needs 10 bytes, %lu present",
                                 (unsigned long)pos, (unsigned long)(size - pos));
            break;
        }
        if (p[pos] != 0x1f || p[pos + 1] != 0x8b) {
            rc = irmae__fail(IRMAE_ERR_FORMAT, "gzip: bad magic 0x%02x%02x at offset %lu (member %lu)",
                             p[pos], p[pos + 1], (unsigned long)pos, (unsigned long)member);
            break;
        }
        if (p[pos + 2] != 8) {
            rc = irmae__fail(IRMAE_ERR_FORMAT, "gzip: compression method %d (must be 8) at offset %lu", p[pos + 2], (unsigned long)(pos + 2));
            break;
        }
        flg = p[pos + 3];
        if (flg & 0xE0) {
            rc = irmae__fail(IRMAE_ERR_FORMAT, "gzip: reserved flag bits 0x%02x set at offset %lu", flg & 0xE0, (unsigned long)(pos + 3));
            break;
        }
        pos += 10;
        if (flg & 4) { /* FEXTRA */
            if (size - pos < 2) { rc = irmae__fail(IRMAE_ERR_TRUNCATED, "gzip: FEXTRA length at offset %lu", (unsigned long)pos); break; }
            xlen = (size_t)p[pos] | ((size_t)p[pos + 1] << 8);
            pos += 2;
            if (size - pos < xlen) { rc = irmae__fail(IRMAE_ERR_TRUNCATED, "gzip: FEXTRA field of %lu bytes at offset %lu", (unsigned long)xlen, (unsigned long)pos); break; }
            pos += xlen;
        }
        if (flg & 8) { /* FNAME */
            while (pos < size && p[pos]) pos++;
            if (pos == size) { rc = irmae__fail(IRMAE_ERR_TRUNCATED, "gzip: file name (FNAME) not terminated before the end (offset %lu)", (unsigned long)pos); break; }
            pos++;
        }
        if (flg & 16) { /* FCOMMENT */
            while (pos < size && p[pos]) pos++;
            if (pos == size) { rc = irmae__fail(IRMAE_ERR_TRUNCATED, "gzip: comment (FCOMMENT) not terminated before the end (offset %lu)", (unsigned long)pos); break; }
            pos++;
        }
        if (flg & 2) { /* FHCRC */
            unsigned want, got;
            if (size - pos < 2) { rc = irmae__fail(IRMAE_ERR_TRUNCATED, "gzip: header CRC at offset %lu", (unsigned long)pos); break; }
            want = (unsigned)p[pos] | ((unsigned)p[pos + 1] << 8);
            got = (unsigned)(irmae_crc32(0, p + hstart, pos - hstart) & 0xFFFFu);
            if (want != got) {
                rc = irmae__fail(IRMAE_ERR_CHECKSUM, "gzip: header CRC-16 0x%04x at offset %lu, header gives 0x%04x", want, (unsigned long)pos, got);
                break;
            }
            pos += 2;
        }
        start = o.len;
        rc = irmae__inf_stream(p + pos, size - pos, pos, "gzip", &o, &used);
        if (rc) break;
        pos += used;
        if (size - pos < 8) {
            rc = irmae__fail(IRMAE_ERR_TRUNCATED, "gzip: member trailer (CRC-32, ISIZE) at offset %lu needs 8 bytes, %lu present",
                             (unsigned long)pos, (unsigned long)(size - pos));
            break;
        }
        crc = irmae_crc32(0, o.p ? o.p + start : NULL, o.len - start);
        if (crc != irmae__cd_le32(p + pos)) {
            rc = irmae__fail(IRMAE_ERR_CHECKSUM, "gzip: CRC-32 0x%08lx at offset %lu, data gives 0x%08lx",
                             (unsigned long)irmae__cd_le32(p + pos), (unsigned long)pos, (unsigned long)crc);
            break;
        }
        if (irmae__cd_le32(p + pos + 4) != (uint32_t)((o.len - start) & 0xFFFFFFFFu)) {
            rc = irmae__fail(IRMAE_ERR_CHECKSUM, "gzip: ISIZE %lu at offset %lu, data has %lu bytes",
                             (unsigned long)irmae__cd_le32(p + pos + 4), (unsigned long)(pos + 4), (unsigned long)(o.len - start));
            break;
        }
        pos += 8;
        member++;
    }
    return irmae__inf_finish(&o, rc, out, out_size);
}

/* ---------------------------------------------------------------------- */
/* PNG decoding                                                           */
/* ---------------------------------------------------------------------- */

typedef struct irmae__pngd {
    uint32_t w, h;
    int depth, ctype, interlace;
    int nsamp;                 /* samples per pixel in the file */
    int npal, ntrns, has_trns;
    unsigned char pal[256 * 3];
    unsigned char trns[256];   /* palette alpha */
    unsigned trns_key[3];      /* grey or RGB key, full bit depth */
} irmae__pngd;

/* Bytes of one filtered row of pw pixels (without the filter byte); 0 if it
   overflows. */
static size_t irmae__pngd_rowbytes(const irmae__pngd *d, size_t pw)
{
    size_t bits;
    if (!irmae__mul(&bits, pw, (size_t)(d->nsamp * d->depth))) return 0;
    if (bits > (size_t)-1 - 7) return 0;
    return (bits + 7) / 8;
}

static unsigned irmae__pngd_sample(const unsigned char *row, size_t i, int depth)
{
    size_t bit;
    switch (depth) {
    case 8: return row[i];
    case 16: return ((unsigned)row[2 * i] << 8) | row[2 * i + 1];
    default:
        bit = i * (size_t)depth;
        return ((unsigned)row[bit >> 3] >> (8 - depth - (int)(bit & 7))) & ((1u << depth) - 1);
    }
}

static unsigned char irmae__pngd_to8(unsigned v, int depth)
{
    switch (depth) {
    case 1: return (unsigned char)(v * 255);
    case 2: return (unsigned char)(v * 85);
    case 4: return (unsigned char)(v * 17);
    case 16: return (unsigned char)((v * 255u + 32767u) / 65535u);
    default: return (unsigned char)v;
    }
}

/* Reverses the filter of one row in place. prior is the previous row of the
   same pass (NULL for the first row: all its bytes count as 0). */
static void irmae__pngd_unfilter(unsigned char *x, const unsigned char *prior, size_t n, size_t bpp, int ft)
{
    size_t i;
    if (!prior) { /* Up adds 0, Paeth predicts the left byte (same as Sub) */
        if (ft == 2) ft = 0;
        if (ft == 4) ft = 1;
    }
    switch (ft) {
    case 1:
        for (i = bpp; i < n; i++) x[i] = (unsigned char)(x[i] + x[i - bpp]);
        break;
    case 2:
        for (i = 0; i < n; i++) x[i] = (unsigned char)(x[i] + prior[i]);
        break;
    case 3:
        if (!prior) {
            for (i = bpp; i < n; i++) x[i] = (unsigned char)(x[i] + (x[i - bpp] >> 1));
        } else {
            for (i = 0; i < bpp && i < n; i++) x[i] = (unsigned char)(x[i] + (prior[i] >> 1));
            for (; i < n; i++) x[i] = (unsigned char)(x[i] + (((unsigned)x[i - bpp] + prior[i]) >> 1));
        }
        break;
    case 4:
        for (i = 0; i < bpp && i < n; i++) x[i] = (unsigned char)(x[i] + prior[i]); /* a = c = 0: predicts b */
        for (; i < n; i++) {
            int a = x[i - bpp], b = prior[i], c = prior[i - bpp];
            int pa = abs(b - c), pb = abs(a - c), pc = abs(a + b - 2 * c); /* |p-a|, |p-b|, |p-c|, p = a+b-c */
            int pred = (pa <= pb && pa <= pc) ? a : (pb <= pc ? b : c);
            x[i] = (unsigned char)(x[i] + pred);
        }
        break;
    default: break; /* 0: none */
    }
}

/* Converts one unfiltered row of pw pixels to RGBA8 in rgba[0..4 pw).
   Returns an error for a palette index out of range. */
static int irmae__pngd_row_rgba(const irmae__pngd *d, const unsigned char *row, size_t pw,
                                unsigned char *rgba, uint32_t y, uint32_t x0, uint32_t dx)
{
    size_t i;
    unsigned v[4];
    int k;
    if (d->depth == 8 && d->ctype != 3) { /* the common cases, without per-sample calls */
        unsigned char *q = rgba;
        const unsigned char *s = row;
        switch (d->ctype) {
        case 6: memcpy(rgba, row, 4 * pw); break;
        case 4: for (i = 0; i < pw; i++, q += 4, s += 2) { q[0] = q[1] = q[2] = s[0]; q[3] = s[1]; } break;
        case 2:
            for (i = 0; i < pw; i++, q += 4, s += 3) {
                q[0] = s[0]; q[1] = s[1]; q[2] = s[2];
                q[3] = (unsigned char)((d->has_trns && s[0] == d->trns_key[0] && s[1] == d->trns_key[1] &&
                                        s[2] == d->trns_key[2]) ? 0 : 255);
            }
            break;
        default:
            for (i = 0; i < pw; i++, q += 4, s++) {
                q[0] = q[1] = q[2] = s[0];
                q[3] = (unsigned char)((d->has_trns && s[0] == d->trns_key[0]) ? 0 : 255);
            }
            break;
        }
        return IRMAE_OK;
    }
    for (i = 0; i < pw; i++) {
        unsigned char *q = rgba + 4 * i;
        for (k = 0; k < d->nsamp; k++) v[k] = irmae__pngd_sample(row, i * (size_t)d->nsamp + (size_t)k, d->depth);
        switch (d->ctype) {
        case 0:
            q[0] = q[1] = q[2] = irmae__pngd_to8(v[0], d->depth);
            q[3] = (unsigned char)((d->has_trns && v[0] == d->trns_key[0]) ? 0 : 255);
            break;
        case 2:
            q[0] = irmae__pngd_to8(v[0], d->depth);
            q[1] = irmae__pngd_to8(v[1], d->depth);
            q[2] = irmae__pngd_to8(v[2], d->depth);
            q[3] = (unsigned char)((d->has_trns && v[0] == d->trns_key[0] && v[1] == d->trns_key[1] &&
                                    v[2] == d->trns_key[2]) ? 0 : 255);
            break;
        case 3:
            if ((int)v[0] >= d->npal)
                return irmae__fail(IRMAE_ERR_FORMAT, "png: palette index %u out of range (%d PLTE entries) at pixel (%lu, %lu)",
                                   v[0], d->npal, (unsigned long)(x0 + i * dx), (unsigned long)y);
            q[0] = d->pal[3 * v[0]]; q[1] = d->pal[3 * v[0] + 1]; q[2] = d->pal[3 * v[0] + 2];
            q[3] = (int)v[0] < d->ntrns ? d->trns[v[0]] : 255;
            break;
        case 4:
            q[0] = q[1] = q[2] = irmae__pngd_to8(v[0], d->depth);
            q[3] = irmae__pngd_to8(v[1], d->depth);
            break;
        default: /* 6 */
            q[0] = irmae__pngd_to8(v[0], d->depth);
            q[1] = irmae__pngd_to8(v[1], d->depth);
            q[2] = irmae__pngd_to8(v[2], d->depth);
            q[3] = irmae__pngd_to8(v[3], d->depth);
            break;
        }
    }
    return IRMAE_OK;
}

/* Writes pw RGBA8 pixels as outc channels at dst, step apart (bytes). */
static void irmae__pngd_pack(unsigned char *dst, size_t step, const unsigned char *q, size_t pw, int outc, int grey_src)
{
    size_t i;
    switch (outc) {
    case 1:
        if (grey_src) for (i = 0; i < pw; i++, q += 4, dst += step) dst[0] = q[0];
        else for (i = 0; i < pw; i++, q += 4, dst += step)
            dst[0] = (unsigned char)((77u * q[0] + 150u * q[1] + 29u * q[2] + 128u) >> 8);
        break;
    case 2:
        if (grey_src) for (i = 0; i < pw; i++, q += 4, dst += step) { dst[0] = q[0]; dst[1] = q[3]; }
        else for (i = 0; i < pw; i++, q += 4, dst += step) {
            dst[0] = (unsigned char)((77u * q[0] + 150u * q[1] + 29u * q[2] + 128u) >> 8);
            dst[1] = q[3];
        }
        break;
    case 3:
        for (i = 0; i < pw; i++, q += 4, dst += step) { dst[0] = q[0]; dst[1] = q[1]; dst[2] = q[2]; }
        break;
    default:
        if (step == 4) memcpy(dst, q, 4 * pw);
        else for (i = 0; i < pw; i++, q += 4, dst += step) { dst[0] = q[0]; dst[1] = q[1]; dst[2] = q[2]; dst[3] = q[3]; }
        break;
    }
}

static const char *irmae__pngd_name(const unsigned char *t, char *buf)
{
    int i, ok = 1;
    for (i = 0; i < 4; i++)
        if (!((t[i] >= 'A' && t[i] <= 'Z') || (t[i] >= 'a' && t[i] <= 'z'))) ok = 0;
    if (ok) { memcpy(buf, t, 4); buf[4] = 0; }
    else snprintf(buf, 16, "0x%02x%02x%02x%02x", t[0], t[1], t[2], t[3]);
    return buf;
}

/* Walks the chunks: validates them, fills d, and finds the IDAT run. */
static int irmae__pngd_chunks(const unsigned char *p, size_t size, irmae__pngd *d,
                              size_t *idat_first, size_t *idat_total)
{
    size_t pos = 8, total = 0;
    int seen_ihdr = 0, seen_plte = 0, idat_state = 0; /* 0 none yet, 1 in the run, 2 after it */
    uint32_t len, crc;
    char nm[16];
    for (;;) {
        const unsigned char *t, *c;
        if (size - pos < 12)
            return irmae__fail(IRMAE_ERR_TRUNCATED, "png: chunk header at offset %lu needs 12 bytes, %lu present (no IEND)",
                               (unsigned long)pos, (unsigned long)(size - pos));
        len = irmae__cd_be32(p + pos);
        t = p + pos + 4;
        c = p + pos + 8;
        irmae__pngd_name(t, nm);
        if (nm[0] == '0')
            return irmae__fail(IRMAE_ERR_FORMAT, "png: chunk type %s at offset %lu is not four letters", nm, (unsigned long)(pos + 4));
        if (len > 0x7FFFFFFFu)
            return irmae__fail(IRMAE_ERR_FORMAT, "png: chunk '%s' at offset %lu has length %lu > 2^31 - 1", nm, (unsigned long)pos, (unsigned long)len);
        if ((size_t)len > size - pos - 12)
            return irmae__fail(IRMAE_ERR_TRUNCATED, "png: chunk '%s' at offset %lu has length %lu, only %lu bytes follow",
                               nm, (unsigned long)pos, (unsigned long)len, (unsigned long)(size - pos - 12));
        crc = irmae_crc32(0, t, (size_t)len + 4);
        if (crc != irmae__cd_be32(c + len))
            return irmae__fail(IRMAE_ERR_CHECKSUM, "png: chunk '%s' at offset %lu: CRC 0x%08lx stored, 0x%08lx computed",
                               nm, (unsigned long)pos, (unsigned long)irmae__cd_be32(c + len), (unsigned long)crc);
        if (!seen_ihdr && memcmp(t, "IHDR", 4) != 0)
            return irmae__fail(IRMAE_ERR_FORMAT, "png: first chunk is '%s' at offset %lu, must be IHDR", nm, (unsigned long)pos);
        if (idat_state == 1 && memcmp(t, "IDAT", 4) != 0) idat_state = 2;
        if (memcmp(t, "IHDR", 4) == 0) {
            int ok;
            if (seen_ihdr) return irmae__fail(IRMAE_ERR_FORMAT, "png: second IHDR at offset %lu", (unsigned long)pos);
            if (len != 13) return irmae__fail(IRMAE_ERR_FORMAT, "png: IHDR length %lu (must be 13)", (unsigned long)len);
            seen_ihdr = 1;
            d->w = irmae__cd_be32(c);
            d->h = irmae__cd_be32(c + 4);
            d->depth = c[8];
            d->ctype = c[9];
            d->interlace = c[12];
            if (d->w == 0 || d->h == 0 || d->w > 0x7FFFFFFFu || d->h > 0x7FFFFFFFu)
                return irmae__fail(IRMAE_ERR_FORMAT, "png: IHDR size %lu x %lu (each must be 1..2^31-1) at offset 16",
                                   (unsigned long)d->w, (unsigned long)d->h);
            if (d->w > (uint32_t)IRMAE_MAX_IMAGE_DIM || d->h > (uint32_t)IRMAE_MAX_IMAGE_DIM)
                return irmae__fail(IRMAE_ERR_LIMIT, "png: IHDR size %lu x %lu exceeds IRMAE_MAX_IMAGE_DIM (%ld) at offset 16",
                                   (unsigned long)d->w, (unsigned long)d->h, (long)IRMAE_MAX_IMAGE_DIM);
            if ((size_t)d->w > (size_t)IRMAE_MAX_IMAGE_PIXELS / d->h)
                return irmae__fail(IRMAE_ERR_LIMIT, "png: IHDR size %lu x %lu exceeds IRMAE_MAX_IMAGE_PIXELS (%lu) at offset 16",
                                   (unsigned long)d->w, (unsigned long)d->h, (unsigned long)IRMAE_MAX_IMAGE_PIXELS);
            switch (d->ctype) {
            case 0: ok = d->depth == 1 || d->depth == 2 || d->depth == 4 || d->depth == 8 || d->depth == 16; d->nsamp = 1; break;
            case 3: ok = d->depth == 1 || d->depth == 2 || d->depth == 4 || d->depth == 8; d->nsamp = 1; break;
            case 2: ok = d->depth == 8 || d->depth == 16; d->nsamp = 3; break;
            case 4: ok = d->depth == 8 || d->depth == 16; d->nsamp = 2; break;
            case 6: ok = d->depth == 8 || d->depth == 16; d->nsamp = 4; break;
            default:
                return irmae__fail(IRMAE_ERR_FORMAT, "png: IHDR colour type %d (must be 0, 2, 3, 4 or 6) at offset 25", d->ctype);
            }
            if (!ok)
                return irmae__fail(IRMAE_ERR_FORMAT, "png: IHDR bit depth %d is not valid for colour type %d (offset 24)", d->depth, d->ctype);
            if (c[10] != 0) return irmae__fail(IRMAE_ERR_FORMAT, "png: IHDR compression method %d (must be 0) at offset 26", c[10]);
            if (c[11] != 0) return irmae__fail(IRMAE_ERR_FORMAT, "png: IHDR filter method %d (must be 0) at offset 27", c[11]);
            if (d->interlace > 1) return irmae__fail(IRMAE_ERR_FORMAT, "png: IHDR interlace method %d (must be 0 or 1) at offset 28", d->interlace);
        } else if (memcmp(t, "PLTE", 4) == 0) {
            if (d->ctype == 0 || d->ctype == 4)
                return irmae__fail(IRMAE_ERR_FORMAT, "png: PLTE at offset %lu in a grey image (colour type %d)", (unsigned long)pos, d->ctype);
            if (seen_plte) return irmae__fail(IRMAE_ERR_FORMAT, "png: second PLTE at offset %lu", (unsigned long)pos);
            if (idat_state) return irmae__fail(IRMAE_ERR_FORMAT, "png: PLTE after IDAT at offset %lu", (unsigned long)pos);
            if (d->has_trns) return irmae__fail(IRMAE_ERR_FORMAT, "png: PLTE after tRNS at offset %lu", (unsigned long)pos);
            if (len == 0 || len % 3 != 0 || len > 768)
                return irmae__fail(IRMAE_ERR_FORMAT, "png: PLTE length %lu at offset %lu (must be 3..768, a multiple of 3)",
                                   (unsigned long)len, (unsigned long)pos);
            if (d->ctype == 3 && (int)(len / 3) > (1 << d->depth))
                return irmae__fail(IRMAE_ERR_FORMAT, "png: PLTE has %lu entries at offset %lu, bit depth %d allows %d",
                                   (unsigned long)(len / 3), (unsigned long)pos, d->depth, 1 << d->depth);
            seen_plte = 1;
            d->npal = (int)(len / 3);
            memcpy(d->pal, c, len);
        } else if (memcmp(t, "tRNS", 4) == 0) {
            if (d->ctype == 4 || d->ctype == 6)
                return irmae__fail(IRMAE_ERR_FORMAT, "png: tRNS at offset %lu in an image with an alpha channel (colour type %d)",
                                   (unsigned long)pos, d->ctype);
            if (d->has_trns) return irmae__fail(IRMAE_ERR_FORMAT, "png: second tRNS at offset %lu", (unsigned long)pos);
            if (idat_state) return irmae__fail(IRMAE_ERR_FORMAT, "png: tRNS after IDAT at offset %lu", (unsigned long)pos);
            if (d->ctype == 3) {
                if (!seen_plte) return irmae__fail(IRMAE_ERR_FORMAT, "png: tRNS before PLTE at offset %lu", (unsigned long)pos);
                if (len == 0 || (int)len > d->npal)
                    return irmae__fail(IRMAE_ERR_FORMAT, "png: tRNS length %lu at offset %lu (must be 1..%d palette entries)",
                                       (unsigned long)len, (unsigned long)pos, d->npal);
                memcpy(d->trns, c, len);
                d->ntrns = (int)len;
            } else {
                int k, n = d->ctype == 0 ? 1 : 3;
                if (len != (uint32_t)(2 * n))
                    return irmae__fail(IRMAE_ERR_FORMAT, "png: tRNS length %lu at offset %lu (must be %d for colour type %d)",
                                       (unsigned long)len, (unsigned long)pos, 2 * n, d->ctype);
                for (k = 0; k < n; k++) d->trns_key[k] = ((unsigned)c[2 * k] << 8) | c[2 * k + 1];
            }
            d->has_trns = 1;
        } else if (memcmp(t, "IDAT", 4) == 0) {
            if (idat_state == 2)
                return irmae__fail(IRMAE_ERR_FORMAT, "png: IDAT at offset %lu after another chunk ended the IDAT run (IDATs must be consecutive)",
                                   (unsigned long)pos);
            if (d->ctype == 3 && !seen_plte)
                return irmae__fail(IRMAE_ERR_FORMAT, "png: palette image has no PLTE before IDAT (offset %lu)", (unsigned long)pos);
            if (idat_state == 0) *idat_first = pos;
            idat_state = 1;
            if ((size_t)len > (size_t)-1 - total)
                return irmae__fail(IRMAE_ERR_OVERFLOW, "png: IDAT lengths overflow at offset %lu", (unsigned long)pos);
            total += len;
        } else if (memcmp(t, "IEND", 4) == 0) {
            if (len != 0) return irmae__fail(IRMAE_ERR_FORMAT, "png: IEND at offset %lu has length %lu (must be 0)", (unsigned long)pos, (unsigned long)len);
            if (!idat_state) return irmae__fail(IRMAE_ERR_FORMAT, "png: IEND at offset %lu before any IDAT (no image data)", (unsigned long)pos);
            *idat_total = total;
            return IRMAE_OK; /* bytes after IEND are ignored */
        } else if (t[0] >= 'A' && t[0] <= 'Z') {
            return irmae__fail(IRMAE_ERR_UNSUPPORTED, "png: unknown critical chunk '%s' at offset %lu", nm, (unsigned long)pos);
        }
        /* unknown or unused ancillary chunks: skipped */
        pos += 12 + (size_t)len;
    }
}

IRMAEDEF int irmae_png_decode(const void *data, size_t size, int want_channels, irmae_image *out)
{
    static const unsigned char sig[8] = { 137, 80, 78, 71, 13, 10, 26, 10 };
    static const int ax0[7] = { 0, 4, 0, 2, 0, 1, 0 }, ay0[7] = { 0, 0, 4, 0, 2, 0, 1 };
    static const int adx[7] = { 8, 8, 4, 4, 2, 2, 1 }, ady[7] = { 8, 8, 8, 4, 4, 2, 2 };
    const unsigned char *p = (const unsigned char *)data;
    irmae__pngd *d = NULL;
    unsigned char *idat = NULL, *pix = NULL, *rgba = NULL, *row, *prior;
    irmae__inf_out o;
    size_t idat_first = 0, idat_total = 0, expected = 0, npix, outbytes, pos, used, off, rb, bpp;
    int rc = IRMAE_OK, pass, npass, outc;
    uint32_t y;

    memset(&o, 0, sizeof o);
    if (!out) return irmae__fail(IRMAE_ERR_ARG, "png: out is NULL");
    memset(out, 0, sizeof *out);
    if (!data && size) return irmae__fail(IRMAE_ERR_ARG, "png: data is NULL with size %lu", (unsigned long)size);
    if (want_channels < 0 || want_channels > 4)
        return irmae__fail(IRMAE_ERR_ARG, "png: want_channels %d (must be 0..4)", want_channels);
    if (size < 8) return irmae__fail(IRMAE_ERR_TRUNCATED, "png: %lu bytes, the signature alone has 8", (unsigned long)size);
    if (memcmp(p, sig, 8) != 0) return irmae__fail(IRMAE_ERR_FORMAT, "png: bad signature at offset 0");
    d = (irmae__pngd *)irmae__alloc(1, sizeof *d);
    if (!d) return irmae__fail(IRMAE_ERR_NOMEM, "png: decoder state");
    rc = irmae__pngd_chunks(p, size, d, &idat_first, &idat_total);
    if (rc) goto done;

    /* size of the filtered image data, pass by pass */
    npass = d->interlace ? 7 : 1;
    for (pass = 0; pass < npass; pass++) {
        size_t pw, ph, t;
        if (d->interlace) {
            pw = d->w > (uint32_t)ax0[pass] ? (d->w - (uint32_t)ax0[pass] + (uint32_t)adx[pass] - 1) / (uint32_t)adx[pass] : 0;
            ph = d->h > (uint32_t)ay0[pass] ? (d->h - (uint32_t)ay0[pass] + (uint32_t)ady[pass] - 1) / (uint32_t)ady[pass] : 0;
        } else { pw = d->w; ph = d->h; }
        if (!pw || !ph) continue;
        rb = irmae__pngd_rowbytes(d, pw);
        if (!rb || rb == (size_t)-1 || !irmae__mul(&t, ph, rb + 1) || t > (size_t)-1 - expected) {
            rc = irmae__fail(IRMAE_ERR_OVERFLOW, "png: image data size of %lu x %lu overflows", (unsigned long)d->w, (unsigned long)d->h);
            goto done;
        }
        expected += t;
    }
    if (expected > (size_t)IRMAE_MAX_ALLOC) {
        rc = irmae__fail(IRMAE_ERR_LIMIT, "png: %lu x %lu image needs %lu bytes of image data, above IRMAE_MAX_ALLOC",
                         (unsigned long)d->w, (unsigned long)d->h, (unsigned long)expected);
        goto done;
    }
    outc = want_channels;
    if (!outc) {
        switch (d->ctype) {
        case 0: outc = d->has_trns ? 2 : 1; break;
        case 4: outc = 2; break;
        case 6: outc = 4; break;
        default: outc = d->has_trns ? 4 : 3; break;
        }
    }
    npix = (size_t)d->w * d->h; /* <= IRMAE_MAX_IMAGE_PIXELS, checked */
    if (!irmae__mul(&outbytes, npix, (size_t)outc) || outbytes > (size_t)IRMAE_MAX_ALLOC) {
        rc = irmae__fail(IRMAE_ERR_LIMIT, "png: %lu x %lu x %d output exceeds IRMAE_MAX_ALLOC",
                         (unsigned long)d->w, (unsigned long)d->h, outc);
        goto done;
    }

    /* gather the IDAT run (the chunks were validated above) */
    idat = (unsigned char *)irmae__alloc(idat_total ? idat_total : 1, 1);
    if (!idat) { rc = irmae__fail(IRMAE_ERR_NOMEM, "png: %lu bytes of IDAT data", (unsigned long)idat_total); goto done; }
    for (pos = idat_first, off = 0; off < idat_total;) {
        size_t len = irmae__cd_be32(p + pos);
        if (memcmp(p + pos + 4, "IDAT", 4) == 0) { memcpy(idat + off, p + pos + 8, len); off += len; }
        pos += 12 + len;
    }

    /* inflate, at most the expected size; the buffer grows with the data
       actually decompressed, so a tiny file claiming a huge image does not
       allocate the huge buffer up front */
    o.limit = expected;
    o.cap = expected;
    if (expected > 4096 && idat_total < (expected - 4096) / 8) o.cap = idat_total * 8 + 4096;
    o.p = (unsigned char *)irmae__alloc(o.cap, 1);
    if (!o.p) { rc = irmae__fail(IRMAE_ERR_NOMEM, "png: %lu bytes of image data", (unsigned long)o.cap); goto done; }
    rc = irmae__inf_zlib(idat, idat_total, "png", &o, &used);
    if (rc == IRMAE_ERR_LIMIT) {
        rc = irmae__fail(IRMAE_ERR_FORMAT, "png: IDAT data decompresses to more than the %lu bytes a %lu x %lu image needs",
                         (unsigned long)expected, (unsigned long)d->w, (unsigned long)d->h);
        goto done;
    }
    if (rc) goto done;
    if (o.len != expected) {
        rc = irmae__fail(IRMAE_ERR_FORMAT, "png: IDAT data decompresses to %lu bytes, a %lu x %lu image needs %lu",
                         (unsigned long)o.len, (unsigned long)d->w, (unsigned long)d->h, (unsigned long)expected);
        goto done;
    }

    pix = (unsigned char *)irmae__alloc(outbytes, 1);
    rgba = (unsigned char *)irmae__alloc((size_t)d->w, 4);
    if (!pix || !rgba) { rc = irmae__fail(IRMAE_ERR_NOMEM, "png: %lu bytes of pixels", (unsigned long)outbytes); goto done; }
    bpp = (size_t)(d->nsamp * d->depth) / 8;
    if (bpp == 0) bpp = 1;
    off = 0;
    for (pass = 0; pass < npass; pass++) {
        size_t pw, ph, x0 = 0, y0 = 0, dx = 1, dy = 1, r;
        if (d->interlace) {
            x0 = (size_t)ax0[pass]; y0 = (size_t)ay0[pass]; dx = (size_t)adx[pass]; dy = (size_t)ady[pass];
            pw = d->w > x0 ? (d->w - x0 + dx - 1) / dx : 0;
            ph = d->h > y0 ? (d->h - y0 + dy - 1) / dy : 0;
        } else { pw = d->w; ph = d->h; }
        if (!pw || !ph) continue;
        rb = irmae__pngd_rowbytes(d, pw);
        prior = NULL;
        for (r = 0; r < ph; r++) {
            int ft = o.p[off];
            row = o.p + off + 1;
            if (ft > 4) {
                if (d->interlace)
                    rc = irmae__fail(IRMAE_ERR_FORMAT, "png: filter type %d in row %lu of Adam7 pass %d (offset %lu of the decompressed data)",
                                     ft, (unsigned long)r, pass + 1, (unsigned long)off);
                else
                    rc = irmae__fail(IRMAE_ERR_FORMAT, "png: filter type %d in row %lu (offset %lu of the decompressed data)",
                                     ft, (unsigned long)r, (unsigned long)off);
                goto done;
            }
            irmae__pngd_unfilter(row, prior, rb, bpp, ft);
            prior = row;
            off += rb + 1;
            y = (uint32_t)(y0 + r * dy);
            rc = irmae__pngd_row_rgba(d, row, pw, rgba, y, (uint32_t)x0, (uint32_t)dx);
            if (rc) goto done;
            irmae__pngd_pack(pix + ((size_t)y * d->w + x0) * (size_t)outc, dx * (size_t)outc, rgba, pw, outc,
                             d->ctype == 0 || d->ctype == 4);
        }
    }
    out->w = (int)d->w;
    out->h = (int)d->h;
    out->c = outc;
    out->pixels = pix;
    pix = NULL;

done:
    irmae__free(d);
    irmae__free(idat);
    irmae__free(o.p);
    irmae__free(pix);
    irmae__free(rgba);
    return rc;
}

IRMAEDEF int irmae_png_load(const char *path, int want_channels, irmae_image *out)
{
    unsigned char *buf;
    size_t size;
    int rc;
    if (!out) return irmae__fail(IRMAE_ERR_ARG, "png: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path) return irmae__fail(IRMAE_ERR_ARG, "png: path is NULL");
    if (want_channels < 0 || want_channels > 4)
        return irmae__fail(IRMAE_ERR_ARG, "png: want_channels %d (must be 0..4)", want_channels);
    rc = irmae__cd_read_file(path, &buf, &size);
    if (rc) return rc;
    rc = irmae_png_decode(buf, size, want_channels, out);
    irmae__free(buf);
    return rc ? irmae__cd_tag_path(rc, path) : IRMAE_OK;
}

IRMAEDEF void irmae_image_free(irmae_image *img)
{
    if (!img) return;
    irmae__free(img->pixels);
    memset(img, 0, sizeof *img);
}

/* ---------------------------------------------------------------------- */
/* IDX                                                                    */
/* ---------------------------------------------------------------------- */

static int irmae__idx_raw(const unsigned char *p, size_t size, irmae_idx *out, const char *what)
{
    size_t n = 1, hdr, k;
    int rank, type;
    if (size < 4) return irmae__fail(IRMAE_ERR_TRUNCATED, "idx: %s%lu bytes, the header needs at least 4", what, (unsigned long)size);
    if (p[0] != 0 || p[1] != 0) return irmae__fail(IRMAE_ERR_FORMAT, "idx: %sbad magic 0x%02x%02x at offset 0 (must be 0000)", what, p[0], p[1]);
    type = p[2];
    rank = p[3];
    if (type == 0x09 || type == 0x0B || type == 0x0C || type == 0x0D || type == 0x0E)
        return irmae__fail(IRMAE_ERR_UNSUPPORTED, "idx: %selement type 0x%02x at offset 2 (only 0x08, unsigned byte, is supported)", what, type);
    if (type != 0x08) return irmae__fail(IRMAE_ERR_FORMAT, "idx: %sunknown element type 0x%02x at offset 2", what, type);
    if (rank == 0) return irmae__fail(IRMAE_ERR_FORMAT, "idx: %srank 0 at offset 3", what);
    if (rank > 4) return irmae__fail(IRMAE_ERR_UNSUPPORTED, "idx: %srank %d at offset 3 (at most 4 supported)", what, rank);
    hdr = 4 + 4 * (size_t)rank;
    if (size < hdr) return irmae__fail(IRMAE_ERR_TRUNCATED, "idx: %s%lu bytes, a rank-%d header needs %lu", what, (unsigned long)size, rank, (unsigned long)hdr);
    for (k = 0; k < (size_t)rank; k++) {
        uint32_t dim = irmae__cd_be32(p + 4 + 4 * k);
        if (dim > (uint32_t)INT_MAX)
            return irmae__fail(IRMAE_ERR_LIMIT, "idx: %sdimension %lu = %lu at offset %lu exceeds INT_MAX", what, (unsigned long)k, (unsigned long)dim, (unsigned long)(4 + 4 * k));
        if (!irmae__mul(&n, n, (size_t)dim) || n > (size_t)IRMAE_MAX_ALLOC)
            return irmae__fail(IRMAE_ERR_LIMIT, "idx: %sdimensions up to %lu (offset %lu) exceed IRMAE_MAX_ALLOC bytes", what, (unsigned long)k, (unsigned long)(4 + 4 * k));
        out->dims[k] = (int)dim;
    }
    if (size - hdr < n)
        return irmae__fail(IRMAE_ERR_TRUNCATED, "idx: %s%lu bytes, the header (dims %d x %d x %d x %d) implies %lu",
                           what, (unsigned long)size, out->dims[0], out->dims[1], out->dims[2], out->dims[3], (unsigned long)(hdr + n));
    if (size - hdr > n)
        return irmae__fail(IRMAE_ERR_FORMAT, "idx: %s%lu bytes after the data at offset %lu (the header implies %lu bytes)",
                           what, (unsigned long)(size - hdr - n), (unsigned long)(hdr + n), (unsigned long)(hdr + n));
    out->data = (unsigned char *)irmae__alloc(n ? n : 1, 1);
    if (!out->data) return irmae__fail(IRMAE_ERR_NOMEM, "idx: %lu bytes", (unsigned long)n);
    if (n) memcpy(out->data, p + hdr, n);
    out->size = n;
    out->rank = rank;
    return IRMAE_OK;
}

IRMAEDEF int irmae_idx_parse(const void *data, size_t size, irmae_idx *out)
{
    const unsigned char *p = (const unsigned char *)data;
    unsigned char *buf;
    size_t n;
    int rc;
    if (!out) return irmae__fail(IRMAE_ERR_ARG, "idx: out is NULL");
    memset(out, 0, sizeof *out);
    if (!data && size) return irmae__fail(IRMAE_ERR_ARG, "idx: data is NULL with size %lu", (unsigned long)size);
    if (size >= 2 && p[0] == 0x1f && p[1] == 0x8b) {
        rc = irmae_gzip_decompress(p, size, IRMAE_MAX_ALLOC, &buf, &n);
        if (rc) return rc;
        rc = irmae__idx_raw(buf, n, out, "(decompressed) ");
        irmae__free(buf);
    } else {
        rc = irmae__idx_raw(p, size, out, "");
    }
    if (rc) memset(out, 0, sizeof *out);
    return rc;
}

IRMAEDEF int irmae_idx_load(const char *path, irmae_idx *out)
{
    unsigned char *buf;
    size_t size;
    int rc;
    if (!out) return irmae__fail(IRMAE_ERR_ARG, "idx: out is NULL");
    memset(out, 0, sizeof *out);
    rc = irmae__cd_read_file(path, &buf, &size);
    if (rc) return rc;
    rc = irmae_idx_parse(buf, size, out);
    irmae__free(buf);
    return rc ? irmae__cd_tag_path(rc, path) : IRMAE_OK;
}

IRMAEDEF void irmae_idx_free(irmae_idx *idx)
{
    if (!idx) return;
    irmae__free(idx->data);
    memset(idx, 0, sizeof *idx);
}

/* ---------------------------------------------------------------------- */
/* Resampling (separable triangle filter at pixel centres)                */
/* ---------------------------------------------------------------------- */

/* Weights of one axis: output o reads in[first[o] .. first[o] + cnt[o]) with
   weights w[o * taps ..]. */
typedef struct irmae__rs_axis {
    int taps;
    int *first, *cnt;
    float *w;
} irmae__rs_axis;

static void irmae__rs_free(irmae__rs_axis *a)
{
    irmae__free(a->first); irmae__free(a->cnt); irmae__free(a->w);
    memset(a, 0, sizeof *a);
}

static int irmae__rs_init(irmae__rs_axis *a, int in, int out)
{
    double scale = (double)in / (double)out;
    double fs = scale > 1.0 ? scale : 1.0; /* filter scale: widen when shrinking */
    int o, j, lo, hi, n;
    memset(a, 0, sizeof *a);
    a->taps = (int)ceil(2.0 * fs) + 3; /* >= the number of pixels in [lo, hi] below */
    a->first = (int *)irmae__alloc((size_t)out, sizeof(int));
    a->cnt = (int *)irmae__alloc((size_t)out, sizeof(int));
    a->w = (float *)irmae__alloc((size_t)out, (size_t)a->taps * sizeof(float));
    if (!a->first || !a->cnt || !a->w) { irmae__rs_free(a); return irmae__fail(IRMAE_ERR_NOMEM, "resize: %d -> %d weights", in, out); }
    for (o = 0; o < out; o++) {
        double center = ((double)o + 0.5) * scale, sum = 0.0, wt, t;
        float *ws = a->w + (size_t)o * (size_t)a->taps;
        lo = (int)floor(center - fs - 0.5);
        hi = (int)ceil(center + fs - 0.5);
        if (lo < 0) lo = 0;
        if (hi > in - 1) hi = in - 1;
        /* drop pixels of zero weight at both ends */
        while (lo < hi && fabs(((double)lo + 0.5 - center) / fs) >= 1.0) lo++;
        while (hi > lo && fabs(((double)hi + 0.5 - center) / fs) >= 1.0) hi--;
        n = hi - lo + 1;
        if (n > a->taps) n = a->taps; /* cannot happen */
        for (j = 0; j < n; j++) {
            t = fabs(((double)(lo + j) + 0.5 - center) / fs);
            wt = t < 1.0 ? 1.0 - t : 0.0;
            ws[j] = (float)wt;
            sum += wt;
        }
        if (sum <= 0.0) { ws[0] = 1.0f; n = 1; sum = 1.0; } /* cannot happen: the nearest pixel weighs > 0 */
        for (j = 0; j < n; j++) ws[j] = (float)(ws[j] / sum);
        a->first[o] = lo;
        a->cnt[o] = n;
    }
    return IRMAE_OK;
}

/* Resizes one plane src (ih x iw) into dst (oh x ow); tmp holds ih * ow floats. */
static void irmae__rs_plane(float *dst, const float *src, float *tmp, int ih, int iw, int oh, int ow,
                            const irmae__rs_axis *ax, const irmae__rs_axis *ay)
{
    int y, x, j;
    for (y = 0; y < ih; y++)
        for (x = 0; x < ow; x++) {
            const float *wt = ax->w + (size_t)x * ax->taps;
            const float *s = src + (size_t)y * iw + ax->first[x];
            float acc = 0.0f;
            for (j = 0; j < ax->cnt[x]; j++) acc += wt[j] * s[j];
            tmp[(size_t)y * ow + x] = acc;
        }
    for (y = 0; y < oh; y++) {
        const float *wt = ay->w + (size_t)y * ay->taps;
        float *d = dst + (size_t)y * ow;
        for (x = 0; x < ow; x++) d[x] = 0.0f;
        for (j = 0; j < ay->cnt[y]; j++) {
            const float *s = tmp + (size_t)(ay->first[y] + j) * ow;
            float wj = wt[j];
            for (x = 0; x < ow; x++) d[x] += wj * s[x];
        }
    }
    (void)iw;
}

/* ---------------------------------------------------------------------- */
/* MNIST, image folders, batches                                          */
/* ---------------------------------------------------------------------- */

IRMAEDEF int irmae_mnist_load(irmae_dataset *ds, const char *images_path, const char *labels_path,
                              int out_h, int out_w, int range_pm1)
{
    irmae_idx im, lb;
    irmae__rs_axis ax, ay;
    float *plane = NULL, *tmp = NULL;
    int rc, n, ih, iw, i;
    size_t k, np;
    memset(&im, 0, sizeof im); memset(&lb, 0, sizeof lb);
    memset(&ax, 0, sizeof ax); memset(&ay, 0, sizeof ay);
    if (!ds) return irmae__fail(IRMAE_ERR_ARG, "mnist: ds is NULL");
    memset(ds, 0, sizeof *ds);
    if (!images_path || !labels_path) return irmae__fail(IRMAE_ERR_ARG, "mnist: a path is NULL");
    if (out_h < 0 || out_w < 0) return irmae__fail(IRMAE_ERR_ARG, "mnist: output size %d x %d", out_h, out_w);
    if ((rc = irmae_idx_load(images_path, &im)) != 0) goto done;
    if ((rc = irmae_idx_load(labels_path, &lb)) != 0) goto done;
    if (im.rank != 3) { rc = irmae__fail(IRMAE_ERR_SHAPE, "mnist: images file '%.200s' has rank %d (must be 3)", images_path, im.rank); goto done; }
    if (lb.rank != 1) { rc = irmae__fail(IRMAE_ERR_SHAPE, "mnist: labels file '%.200s' has rank %d (must be 1)", labels_path, lb.rank); goto done; }
    if (im.dims[0] != lb.dims[0]) {
        rc = irmae__fail(IRMAE_ERR_MISMATCH, "mnist: %d images in '%.200s' but %d labels in '%.200s'", im.dims[0], images_path, lb.dims[0], labels_path);
        goto done;
    }
    n = im.dims[0]; ih = im.dims[1]; iw = im.dims[2];
    if (n == 0 || ih == 0 || iw == 0) { rc = irmae__fail(IRMAE_ERR_FORMAT, "mnist: empty data set %d x %d x %d in '%.200s'", n, ih, iw, images_path); goto done; }
    if (!out_h) out_h = ih;
    if (!out_w) out_w = iw;
    if ((rc = irmae_dataset_alloc(ds, n, 1, out_h, out_w, 1)) != 0) goto done;
    np = (size_t)ih * (size_t)iw; /* <= im.size, fits */
    plane = (float *)irmae__alloc(np, sizeof(float));
    tmp = (float *)irmae__alloc((size_t)ih, (size_t)out_w * sizeof(float));
    if (!plane || !tmp) { rc = irmae__fail(IRMAE_ERR_NOMEM, "mnist: resize buffers"); goto done; }
    if ((rc = irmae__rs_init(&ax, iw, out_w)) != 0) goto done;
    if ((rc = irmae__rs_init(&ay, ih, out_h)) != 0) goto done;
    for (i = 0; i < n; i++) {
        const unsigned char *src = im.data + (size_t)i * np;
        float *dst = irmae_dataset_image(ds, i);
        size_t no = (size_t)out_h * (size_t)out_w;
        for (k = 0; k < np; k++) plane[k] = (float)src[k] / 255.0f;
        irmae__rs_plane(dst, plane, tmp, ih, iw, out_h, out_w, &ax, &ay);
        if (range_pm1) for (k = 0; k < no; k++) dst[k] = dst[k] * 2.0f - 1.0f;
        ds->labels[i] = lb.data[i];
    }
done:
    irmae_idx_free(&im);
    irmae_idx_free(&lb);
    irmae__rs_free(&ax);
    irmae__rs_free(&ay);
    irmae__free(plane);
    irmae__free(tmp);
    if (rc) irmae_dataset_free(ds);
    return rc;
}

/* Sorted list of the *.png names in a folder. */
typedef struct irmae__cd_names { char **v; int n, cap; } irmae__cd_names;

static void irmae__cd_names_free(irmae__cd_names *l)
{
    int i;
    for (i = 0; i < l->n; i++) irmae__free(l->v[i]);
    irmae__free(l->v);
    memset(l, 0, sizeof *l);
}

static int irmae__cd_names_add(irmae__cd_names *l, const char *name)
{
    size_t len = strlen(name), i;
    char *s;
    if (len < 4) return IRMAE_OK;
    for (i = 0; i < 4; i++) {
        char ch = name[len - 4 + i];
        if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
        if (ch != ".png"[i]) return IRMAE_OK;
    }
    if (l->n == l->cap) {
        int ncap = l->cap ? l->cap * 2 : 64;
        char **nv;
        if (l->cap > INT_MAX / 2) return irmae__fail(IRMAE_ERR_LIMIT, "images: more than %d files", l->cap);
        nv = (char **)irmae__alloc((size_t)ncap, sizeof(char *));
        if (!nv) return irmae__fail(IRMAE_ERR_NOMEM, "images: file list of %d names", ncap);
        if (l->n) memcpy(nv, l->v, (size_t)l->n * sizeof(char *));
        irmae__free(l->v);
        l->v = nv; l->cap = ncap;
    }
    s = (char *)irmae__alloc(len + 1, 1);
    if (!s) return irmae__fail(IRMAE_ERR_NOMEM, "images: file name");
    memcpy(s, name, len + 1);
    l->v[l->n++] = s;
    return IRMAE_OK;
}

static int irmae__cd_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int irmae__cd_list_png(const char *folder, irmae__cd_names *l)
{
    int rc = IRMAE_OK;
#if defined(_WIN32)
    char pattern[4096];
    WIN32_FIND_DATAA fd;
    HANDLE hf;
    if (strlen(folder) > sizeof pattern - 8) return irmae__fail(IRMAE_ERR_ARG, "images: folder name too long");
    snprintf(pattern, sizeof pattern, "%s\\*", folder);
    hf = FindFirstFileA(pattern, &fd);
    if (hf == INVALID_HANDLE_VALUE) return irmae__fail(IRMAE_ERR_IO, "images: cannot list folder '%.300s'", folder);
    do {
        if (!(fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)) rc = irmae__cd_names_add(l, fd.cFileName);
    } while (!rc && FindNextFileA(hf, &fd));
    FindClose(hf);
#else
    DIR *dir = opendir(folder);
    struct dirent *e;
    if (!dir) return irmae__fail(IRMAE_ERR_IO, "images: cannot open folder '%.300s'", folder);
    while (!rc && (e = readdir(dir)) != NULL) rc = irmae__cd_names_add(l, e->d_name);
    closedir(dir);
#endif
    if (rc) return rc;
    if (l->n == 0) return irmae__fail(IRMAE_ERR_IO, "images: no .png file in folder '%.300s'", folder);
    qsort(l->v, (size_t)l->n, sizeof(char *), irmae__cd_cmp_names);
    return IRMAE_OK;
}

/* torchvision's CenterCrop offset: round((size - crop) / 2), halves to even. */
static int irmae__cd_crop_off(int size, int crop)
{
    int diff = size - crop, half = diff / 2;
    if ((diff & 1) && (half & 1)) half++;
    return half;
}

IRMAEDEF int irmae_images_load(irmae_dataset *ds, const char *folder, int c, int out_h, int out_w,
                               int crop, int range_pm1)
{
    irmae__cd_names names;
    irmae__rs_axis ax, ay;
    irmae_image img;
    char *path = NULL;
    float *plane = NULL, *tmp = NULL;
    size_t flen, pcap = 0, no;
    int rc = IRMAE_OK, i, ch, x, y, oh, ow, ih, iw, top, left, ax_in = -1, ay_in = -1;
    memset(&names, 0, sizeof names);
    memset(&ax, 0, sizeof ax); memset(&ay, 0, sizeof ay);
    memset(&img, 0, sizeof img);
    if (!ds) return irmae__fail(IRMAE_ERR_ARG, "images: ds is NULL");
    memset(ds, 0, sizeof *ds);
    if (!folder) return irmae__fail(IRMAE_ERR_ARG, "images: folder is NULL");
    if (c < 1 || c > 4) return irmae__fail(IRMAE_ERR_ARG, "images: c = %d (must be 1..4)", c);
    if (out_h < 0 || out_w < 0 || crop < 0 || (out_h == 0) != (out_w == 0))
        return irmae__fail(IRMAE_ERR_ARG, "images: out %d x %d, crop %d (sizes >= 0, out_h and out_w both 0 or both > 0)", out_h, out_w, crop);
    if ((rc = irmae__cd_list_png(folder, &names)) != 0) goto done;
    flen = strlen(folder);
    for (i = 0; i < names.n; i++) {
        size_t need = flen + strlen(names.v[i]) + 2;
        const char *sep = (flen && (folder[flen - 1] == '/' || folder[flen - 1] == '\\')) ? "" : "/";
        if (need > pcap) {
            irmae__free(path);
            pcap = need * 2;
            path = (char *)irmae__alloc(pcap, 1);
            if (!path) { rc = irmae__fail(IRMAE_ERR_NOMEM, "images: path"); goto done; }
        }
        snprintf(path, pcap, "%s%s%s", folder, sep, names.v[i]);
        if ((rc = irmae_png_load(path, c, &img)) != 0) goto done;
        ih = crop ? crop : img.h;
        iw = crop ? crop : img.w;
        if (crop && (img.w < crop || img.h < crop)) {
            rc = irmae__fail(IRMAE_ERR_SHAPE, "images: '%.300s' is %d x %d, smaller than the crop %d", path, img.w, img.h, crop);
            goto done;
        }
        top = crop ? irmae__cd_crop_off(img.h, crop) : 0;
        left = crop ? irmae__cd_crop_off(img.w, crop) : 0;
        oh = out_h ? out_h : ih;
        ow = out_w ? out_w : iw;
        if (i == 0) {
            if ((rc = irmae_dataset_alloc(ds, names.n, c, oh, ow, 0)) != 0) goto done;
        } else if (oh != ds->h || ow != ds->w) {
            rc = irmae__fail(IRMAE_ERR_SHAPE, "images: '%.300s' gives %d x %d, the first image %d x %d (set out_h, out_w)", path, oh, ow, ds->h, ds->w);
            goto done;
        }
        if (iw != ax_in || ih != ay_in) { /* new input size: new weights and buffers */
            irmae__rs_free(&ax); irmae__rs_free(&ay);
            irmae__free(plane); irmae__free(tmp);
            plane = (float *)irmae__alloc((size_t)ih * (size_t)iw, sizeof(float));
            tmp = (float *)irmae__alloc((size_t)ih * (size_t)ow, sizeof(float));
            if (!plane || !tmp) { rc = irmae__fail(IRMAE_ERR_NOMEM, "images: %d x %d planes", ih, iw); goto done; }
            if ((rc = irmae__rs_init(&ax, iw, ow)) != 0) goto done;
            if ((rc = irmae__rs_init(&ay, ih, oh)) != 0) goto done;
            ax_in = iw; ay_in = ih;
        }
        no = (size_t)oh * (size_t)ow;
        for (ch = 0; ch < c; ch++) {
            float *dst = irmae_dataset_image(ds, i) + (size_t)ch * no;
            size_t k;
            for (y = 0; y < ih; y++)
                for (x = 0; x < iw; x++)
                    plane[(size_t)y * iw + x] =
                        (float)img.pixels[(((size_t)(y + top)) * img.w + (size_t)(x + left)) * (size_t)c + (size_t)ch] / 255.0f;
            irmae__rs_plane(dst, plane, tmp, ih, iw, oh, ow, &ax, &ay);
            if (range_pm1) for (k = 0; k < no; k++) dst[k] = dst[k] * 2.0f - 1.0f;
        }
        irmae_image_free(&img);
    }
done:
    irmae_image_free(&img);
    irmae__cd_names_free(&names);
    irmae__rs_free(&ax);
    irmae__rs_free(&ay);
    irmae__free(plane);
    irmae__free(tmp);
    irmae__free(path);
    if (rc) irmae_dataset_free(ds);
    return rc;
}

IRMAEDEF int irmae_shuffle(int *perm, int n, irmae_rng *rng)
{
    int i, j, t;
    if (n < 0) return irmae__fail(IRMAE_ERR_ARG, "shuffle: n = %d", n);
    if (n > 0 && (!perm || !rng)) return irmae__fail(IRMAE_ERR_ARG, "shuffle: perm or rng is NULL");
    for (i = 0; i < n; i++) perm[i] = i;
    for (i = n - 1; i > 0; i--) {
        j = irmae_rng_int(rng, 0, i);
        t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
    return IRMAE_OK;
}

IRMAEDEF int irmae_dataset_gather(const irmae_dataset *ds, const int *idx, int count, float *out)
{
    size_t per;
    int i;
    if (!ds || (count > 0 && (!idx || !out)) || count < 0)
        return irmae__fail(IRMAE_ERR_ARG, "gather: NULL pointer or count %d < 0", count);
    if (count == 0) return IRMAE_OK;
    if (!ds->x) return irmae__fail(IRMAE_ERR_ARG, "gather: empty data set");
    for (i = 0; i < count; i++)
        if (idx[i] < 0 || idx[i] >= ds->n)
            return irmae__fail(IRMAE_ERR_ARG, "gather: idx[%d] = %d outside 0..%d", i, idx[i], ds->n - 1);
    per = (size_t)ds->c * (size_t)ds->h * (size_t)ds->w;
    for (i = 0; i < count; i++)
        memcpy(out + (size_t)i * per, ds->x + (size_t)idx[i] * per, per * sizeof(float));
    return IRMAE_OK;
}
