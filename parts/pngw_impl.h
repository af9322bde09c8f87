/* ---------------------------------------------------------------------- */
/* Data: DEFLATE / zlib compression, PNG writing                          */
/* ---------------------------------------------------------------------- */

/* Growable output buffer with an LSB-first bit accumulator (DEFLATE packs
   bits starting at the least significant bit of each byte). An allocation
   failure is sticky in `err`, so the writers need not check every call. */
typedef struct irmae__bitw {
    unsigned char *buf;
    size_t len, cap;
    uint64_t acc;   /* pending bits, oldest at bit 0 */
    int nacc;       /* number of pending bits (< 32 between calls) */
    int err;
    size_t hint;    /* if nonzero: the output should not exceed this, so grow no further */
} irmae__bitw;

static int irmae__bitw_reserve(irmae__bitw *w, size_t extra)
{
    size_t need, ncap;
    unsigned char *nb;
    if (w->err) return 0;
    if (extra > (size_t)-1 - w->len) { w->err = 1; return 0; }
    need = w->len + extra;
    if (need <= w->cap) return 1;
    ncap = w->cap ? w->cap : 1024;
    while (ncap < need) {
        if (ncap > (size_t)-1 / 2) { ncap = need; break; }
        ncap *= 2;
    }
    if (w->hint && need <= w->hint && ncap > w->hint) ncap = w->hint;
    nb = (unsigned char *)irmae__alloc(ncap, 1);
    if (!nb) { w->err = 1; return 0; }
    if (w->len) memcpy(nb, w->buf, w->len);
    irmae__free(w->buf);
    w->buf = nb;
    w->cap = ncap;
    return 1;
}

/* Appends the n (<= 32) low bits of `bits`; bits above n must be zero. */
static void irmae__bitw_bits(irmae__bitw *w, uint32_t bits, int n)
{
    w->acc |= (uint64_t)bits << w->nacc;
    w->nacc += n;
    if (w->nacc >= 32) {
        if (w->len + 4 <= w->cap || irmae__bitw_reserve(w, 4)) {
            unsigned char *p = w->buf + w->len;
            p[0] = (unsigned char)(w->acc & 0xFF);
            p[1] = (unsigned char)((w->acc >> 8) & 0xFF);
            p[2] = (unsigned char)((w->acc >> 16) & 0xFF);
            p[3] = (unsigned char)((w->acc >> 24) & 0xFF);
            w->len += 4;
        }
        w->acc >>= 32;
        w->nacc -= 32;
    }
}

/* Flushes pending bits, padding the last byte with zero bits. */
static void irmae__bitw_align(irmae__bitw *w)
{
    while (w->nacc > 0) {
        if (irmae__bitw_reserve(w, 1)) w->buf[w->len++] = (unsigned char)(w->acc & 0xFF);
        w->acc >>= 8;
        w->nacc -= 8;
    }
    w->acc = 0;
    w->nacc = 0;
}

/* Appends whole bytes; the writer must be byte aligned. */
static void irmae__bitw_bytes(irmae__bitw *w, const unsigned char *p, size_t n)
{
    if (n && irmae__bitw_reserve(w, n)) {
        memcpy(w->buf + w->len, p, n);
        w->len += n;
    }
}

#define IRMAE__DEF_HASH_BITS 16
#define IRMAE__DEF_WSIZE 32768u            /* window: largest DEFLATE distance */
#define IRMAE__DEF_WMASK (IRMAE__DEF_WSIZE - 1u)
#define IRMAE__DEF_BLOCK 16384             /* LZ77 symbols per block */
#define IRMAE__DEF_MAXLEAF 288

/* Base values and extra-bit counts of the length codes 257..285 and of the
   distance codes 0..29 (RFC 1951, 3.2.5). */
static const unsigned short irmae__def_lbase[29] = {
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31,
    35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258 };
static const unsigned char irmae__def_lextra[29] = {
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2,
    3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0 };
static const unsigned short irmae__def_dbase[30] = {
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193,
    257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577 };
static const unsigned char irmae__def_dextra[30] = {
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6,
    7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13 };
/* Order in which the code-length code lengths are sent. */
static const unsigned char irmae__def_clorder[19] = {
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15 };

/* Match-finder settings per level: a match at least `good` long quarters the
   next search; `lazy` = 0 means greedy parsing, otherwise a match at least
   `lazy` long is taken without trying the next position; the search stops at
   a match `nice` long or after `chain` candidates. */
static const unsigned short irmae__def_cfg[10][4] = {
    /* good lazy nice chain */
    {  0,   0,   0,    0 },  /* 0: stored only */
    {  4,   0,   8,    4 },
    {  4,   0,  16,    8 },
    {  4,   0,  32,   32 },
    {  4,   4,  16,   16 },
    {  8,  16,  32,   32 },
    {  8,  16, 128,  128 },
    {  8,  32, 128,  256 },
    { 32, 128, 258, 1024 },
    { 32, 258, 258, 4096 } };

/* Package-merge list item: sym >= 0 is a leaf, -1 a package of two items of
   the previous list. */
typedef struct irmae__pm_item { uint32_t w; int sym; } irmae__pm_item;

typedef struct irmae__deflate {
    size_t head[1u << IRMAE__DEF_HASH_BITS];   /* newest position + 1 per hash, 0 = none */
    size_t prev[IRMAE__DEF_WSIZE];             /* previous position + 1 with the same hash */
    unsigned short sym_l[IRMAE__DEF_BLOCK];    /* literal byte or match length */
    unsigned short sym_d[IRMAE__DEF_BLOCK];    /* 0 for a literal, else distance */
    size_t nsym;
    int have_pend;                             /* stored bytes waiting to be written */
    size_t pend_start, pend_end;
    unsigned char len_code[259];               /* match length -> length code - 257 */
    unsigned char dist_lo[256], dist_hi[256];  /* distance - 1 (< 256, or >> 7) -> code */
    unsigned char fix_llen[288], fix_dlen[30];
    unsigned short fix_lcode[288], fix_dcode[30];
    irmae__pm_item leaves[IRMAE__DEF_MAXLEAF];
    irmae__pm_item pm[15][2 * IRMAE__DEF_MAXLEAF];
} irmae__deflate;

/* Optimal code lengths (at most `limit` bits) for the n frequencies, by the
   package-merge algorithm. At least two symbols always get a code (unused
   ones are given weight 1), so every code is complete, as zlib's inflate
   demands. len[] receives 0 for unused symbols. */
static void irmae__huff_lengths(irmae__deflate *s, const uint32_t *freq, int n, int limit,
                                unsigned char *len)
{
    irmae__pm_item *lv = s->leaves, t;
    int m = 0, i, j, keep, cnt, sel;
    memset(len, 0, (size_t)n);
    for (i = 0; i < n; i++)
        if (freq[i]) { lv[m].w = freq[i]; lv[m].sym = i; m++; }
    for (i = 0; m < 2 && i < n; i++)
        if (!freq[i]) { lv[m].w = 1; lv[m].sym = i; m++; }
    for (i = 1; i < m; i++) {   /* insertion sort by (weight, symbol) */
        t = lv[i];
        for (j = i; j > 0 && (lv[j - 1].w > t.w || (lv[j - 1].w == t.w && lv[j - 1].sym > t.sym)); j--)
            lv[j] = lv[j - 1];
        lv[j] = t;
    }
    keep = 2 * m - 2;
    memcpy(s->pm[0], lv, (size_t)m * sizeof *lv);
    cnt = m;
    for (j = 1; j < limit; j++) {
        const irmae__pm_item *pl = s->pm[j - 1];
        irmae__pm_item *cl = s->pm[j];
        int np = cnt / 2, a = 0, b = 0, k = 0;
        while (k < keep && (a < m || b < np)) {
            uint32_t pw = b < np ? pl[2 * b].w + pl[2 * b + 1].w : 0;
            if (a < m && (b >= np || lv[a].w <= pw)) cl[k++] = lv[a++];
            else { cl[k].w = pw; cl[k].sym = -1; k++; b++; }
        }
        cnt = k;
    }
    /* The first 2m - 2 items of the last list are selected; a selected
       package selects its two items in the list below. A symbol's code
       length is the number of its selected leaves. */
    sel = keep < cnt ? keep : cnt;
    for (j = limit - 1; j >= 0; j--) {
        const irmae__pm_item *cl = s->pm[j];
        int np = 0;
        for (i = 0; i < sel; i++) {
            if (cl[i].sym >= 0) len[cl[i].sym]++;
            else np++;
        }
        sel = 2 * np;
    }
}

/* Canonical Huffman codes from lengths, bit-reversed for LSB-first output. */
static void irmae__huff_codes(const unsigned char *len, int n, unsigned short *code)
{
    int count[16], next[16], i, b, c = 0;
    memset(count, 0, sizeof count);
    for (i = 0; i < n; i++) count[len[i]]++;
    count[0] = 0;
    next[0] = 0;
    for (b = 1; b < 16; b++) { c = (c + count[b - 1]) << 1; next[b] = c; }
    for (i = 0; i < n; i++) {
        int l = len[i], v, r = 0;
        code[i] = 0;
        if (!l) continue;
        v = next[l]++;
        for (b = 0; b < l; b++) { r = (r << 1) | (v & 1); v >>= 1; }
        code[i] = (unsigned short)r;
    }
}

static void irmae__deflate_init(irmae__deflate *s)
{
    int i, c;
    for (c = 0; c < 29; c++) {
        int hi = c == 28 ? 258 : irmae__def_lbase[c] + (1 << irmae__def_lextra[c]) - 1;
        for (i = irmae__def_lbase[c]; i <= hi; i++) s->len_code[i] = (unsigned char)c;
    }
    for (c = 0; c < 30; c++) {
        int lo = irmae__def_dbase[c] - 1, hi = lo + (1 << irmae__def_dextra[c]);
        for (i = lo; i < hi; i++) {
            if (i < 256) s->dist_lo[i] = (unsigned char)c;
            else s->dist_hi[i >> 7] = (unsigned char)c;
        }
    }
    for (i = 0; i < 288; i++) s->fix_llen[i] = (unsigned char)(i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8);
    for (i = 0; i < 30; i++) s->fix_dlen[i] = 5;
    irmae__huff_codes(s->fix_llen, 288, s->fix_lcode);
    irmae__huff_codes(s->fix_dlen, 30, s->fix_dcode);
}

static int irmae__deflate_dcode(const irmae__deflate *s, unsigned dist)
{
    return dist <= 256 ? s->dist_lo[dist - 1] : s->dist_hi[(dist - 1) >> 7];
}

/* Stored blocks for p[0..n) (n == 0 gives one empty block); BFINAL on the
   last one when `last`. */
static void irmae__deflate_stored(irmae__bitw *w, const unsigned char *p, size_t n, int last)
{
    do {
        size_t k = n < 65535 ? n : 65535;
        unsigned char hdr[4];
        irmae__bitw_bits(w, (last && k == n) ? 1u : 0u, 3); /* BFINAL, BTYPE = 00 */
        irmae__bitw_align(w);
        hdr[0] = (unsigned char)(k & 0xFF); hdr[1] = (unsigned char)(k >> 8);
        hdr[2] = (unsigned char)(~k & 0xFF); hdr[3] = (unsigned char)((~k >> 8) & 0xFF);
        irmae__bitw_bytes(w, hdr, 4);
        irmae__bitw_bytes(w, p, k);
        p += k;
        n -= k;
    } while (n > 0);
}

static uint64_t irmae__deflate_nchunks(size_t n) { return n == 0 ? 1 : (uint64_t)((n - 1) / 65535 + 1); }

/* Writes the Huffman-coded symbols of the current block. */
static void irmae__deflate_symbols(const irmae__deflate *s, irmae__bitw *w,
                                   const unsigned char *llen, const unsigned short *lcode,
                                   const unsigned char *dlen, const unsigned short *dcode)
{
    size_t t;
    for (t = 0; t < s->nsym; t++) {
        unsigned lv = s->sym_l[t], dv = s->sym_d[t];
        if (!dv) { irmae__bitw_bits(w, lcode[lv], llen[lv]); continue; }
        {
            int lc = s->len_code[lv], dc = irmae__deflate_dcode(s, dv);
            irmae__bitw_bits(w, lcode[257 + lc], llen[257 + lc]);
            if (irmae__def_lextra[lc]) irmae__bitw_bits(w, lv - irmae__def_lbase[lc], irmae__def_lextra[lc]);
            irmae__bitw_bits(w, dcode[dc], dlen[dc]);
            if (irmae__def_dextra[dc]) irmae__bitw_bits(w, dv - irmae__def_dbase[dc], irmae__def_dextra[dc]);
        }
    }
    irmae__bitw_bits(w, lcode[256], llen[256]);
}

/* Ends the current block, which holds s->nsym symbols covering src[bstart..bend):
   writes it as fixed Huffman, dynamic Huffman or (merged into a run of)
   stored blocks, whichever costs the fewest bits. */
static void irmae__deflate_block(irmae__deflate *s, irmae__bitw *w, const unsigned char *src,
                                 size_t bstart, size_t bend, int last)
{
    uint32_t lf[286], df[30], cf[19];
    unsigned char ll[286], dl[30], cll[19], all[316], rle_sym[316], rle_extra[316];
    unsigned short lc[286], dc[30], clc[19];
    uint64_t xbits = 0, fixed_bits, dyn_bits, stored_bits, blen = (uint64_t)(bend - bstart);
    int hlit, hdist, hclen, nrle = 0, total, i;
    size_t t;

    memset(lf, 0, sizeof lf); memset(df, 0, sizeof df); memset(cf, 0, sizeof cf);
    for (t = 0; t < s->nsym; t++) {
        unsigned lv = s->sym_l[t], dv = s->sym_d[t];
        if (!dv) { lf[lv]++; continue; }
        {
            int l = s->len_code[lv], d = irmae__deflate_dcode(s, dv);
            lf[257 + l]++; df[d]++;
            xbits += irmae__def_lextra[l] + irmae__def_dextra[d];
        }
    }
    lf[256] = 1;

    /* fixed Huffman */
    fixed_bits = 3 + xbits;
    for (i = 0; i < 286; i++) fixed_bits += (uint64_t)lf[i] * s->fix_llen[i];
    for (i = 0; i < 30; i++) fixed_bits += (uint64_t)df[i] * 5;

    /* dynamic Huffman: code lengths, then the run-length coded header */
    irmae__huff_lengths(s, lf, 286, 15, ll);
    irmae__huff_lengths(s, df, 30, 15, dl);
    for (hlit = 286; hlit > 257 && !ll[hlit - 1]; hlit--) {}
    for (hdist = 30; hdist > 1 && !dl[hdist - 1]; hdist--) {}
    memcpy(all, ll, (size_t)hlit);
    memcpy(all + hlit, dl, (size_t)hdist);
    total = hlit + hdist;
    for (i = 0; i < total;) {
        int v = all[i], run = 1, r;
        while (i + run < total && all[i + run] == v) run++;
        i += run;
        if (v == 0) {
            r = run;
            while (r >= 11) {
                int k = r < 138 ? r : 138;
                rle_sym[nrle] = 18; rle_extra[nrle++] = (unsigned char)(k - 11); r -= k;
            }
            if (r >= 3) { rle_sym[nrle] = 17; rle_extra[nrle++] = (unsigned char)(r - 3); r = 0; }
            while (r-- > 0) { rle_sym[nrle] = 0; rle_extra[nrle++] = 0; }
        } else {
            rle_sym[nrle] = (unsigned char)v; rle_extra[nrle++] = 0;
            r = run - 1;
            while (r >= 3) {
                int k = r < 6 ? r : 6;
                rle_sym[nrle] = 16; rle_extra[nrle++] = (unsigned char)(k - 3); r -= k;
            }
            while (r-- > 0) { rle_sym[nrle] = (unsigned char)v; rle_extra[nrle++] = 0; }
        }
    }
    for (i = 0; i < nrle; i++) cf[rle_sym[i]]++;
    irmae__huff_lengths(s, cf, 19, 7, cll);
    for (hclen = 19; hclen > 4 && !cll[irmae__def_clorder[hclen - 1]]; hclen--) {}
    dyn_bits = 3 + 14 + 3 * (uint64_t)hclen + xbits;
    for (i = 0; i < nrle; i++)
        dyn_bits += cll[rle_sym[i]] + (rle_sym[i] == 16 ? 2 : rle_sym[i] == 17 ? 3 : rle_sym[i] == 18 ? 7 : 0);
    for (i = 0; i < 286; i++) dyn_bits += (uint64_t)lf[i] * ll[i];
    for (i = 0; i < 30; i++) dyn_bits += (uint64_t)df[i] * dl[i];

    /* stored: extending a pending run costs only the new bytes (and headers
       of any extra 65535-byte pieces) */
    if (s->have_pend) {
        size_t plen = s->pend_end - s->pend_start;
        stored_bits = 8 * blen + 40 * (irmae__deflate_nchunks(plen + (size_t)blen) - irmae__deflate_nchunks(plen));
    } else {
        uint64_t pos = (uint64_t)w->len * 8 + (uint64_t)w->nacc;
        stored_bits = 3 + (8 - (pos + 3) % 8) % 8 + 32 + 8 * blen + 40 * (irmae__deflate_nchunks((size_t)blen) - 1);
    }

    if (stored_bits < fixed_bits && stored_bits < dyn_bits) {
        if (!s->have_pend) { s->have_pend = 1; s->pend_start = bstart; }
        s->pend_end = bend;
        if (last) {
            irmae__deflate_stored(w, src + s->pend_start, s->pend_end - s->pend_start, 1);
            s->have_pend = 0;
        }
    } else {
        if (s->have_pend) {
            irmae__deflate_stored(w, src + s->pend_start, s->pend_end - s->pend_start, 0);
            s->have_pend = 0;
        }
        if (fixed_bits <= dyn_bits) {
            irmae__bitw_bits(w, last ? 3u : 2u, 3); /* BFINAL, BTYPE = 01 */
            irmae__deflate_symbols(s, w, s->fix_llen, s->fix_lcode, s->fix_dlen, s->fix_dcode);
        } else {
            irmae__huff_codes(ll, 286, lc);
            irmae__huff_codes(dl, 30, dc);
            irmae__huff_codes(cll, 19, clc);
            irmae__bitw_bits(w, last ? 5u : 4u, 3); /* BFINAL, BTYPE = 10 */
            irmae__bitw_bits(w, (uint32_t)(hlit - 257), 5);
            irmae__bitw_bits(w, (uint32_t)(hdist - 1), 5);
            irmae__bitw_bits(w, (uint32_t)(hclen - 4), 4);
            for (i = 0; i < hclen; i++) irmae__bitw_bits(w, cll[irmae__def_clorder[i]], 3);
            for (i = 0; i < nrle; i++) {
                int sym = rle_sym[i];
                irmae__bitw_bits(w, clc[sym], cll[sym]);
                if (sym >= 16) irmae__bitw_bits(w, rle_extra[i], sym == 16 ? 2 : sym == 17 ? 3 : 7);
            }
            irmae__deflate_symbols(s, w, ll, lc, dl, dc);
        }
    }
    s->nsym = 0;
}

#define IRMAE__DEF_HASH(p) \
    ((uint32_t)((((uint32_t)(p)[0] << 16) | ((uint32_t)(p)[1] << 8) | (uint32_t)(p)[2]) * 2654435761u) \
     >> (32 - IRMAE__DEF_HASH_BITS))

static void irmae__deflate_insert(irmae__deflate *s, const unsigned char *src, size_t p)
{
    uint32_t h = IRMAE__DEF_HASH(src + p);
    s->prev[p & IRMAE__DEF_WMASK] = s->head[h];
    s->head[h] = p + 1;
}

/* Longest match for position i (already inserted) longer than `best`, among
   at most `chain` earlier positions within 32 KiB. Returns its length (0 if
   none) and sets *dist. */
static unsigned irmae__deflate_find(const irmae__deflate *s, const unsigned char *src, size_t n,
                                    size_t i, unsigned best, unsigned chain, unsigned nice,
                                    unsigned *dist)
{
    const unsigned char *cur = src + i;
    size_t cand = s->prev[i & IRMAE__DEF_WMASK];
    unsigned maxlen = n - i < 258 ? (unsigned)(n - i) : 258u, found = 0;
    if (nice > maxlen) nice = maxlen;
    if (best >= maxlen) return 0;
    while (cand && chain--) {
        size_t c = cand - 1, d = i - c;
        const unsigned char *m = src + c;
        if (d > IRMAE__DEF_WSIZE) break;
        if (m[best] == cur[best] && m[best - 1] == cur[best - 1] && m[0] == cur[0] && m[1] == cur[1]) {
            unsigned l = 2;
            while (l < maxlen && m[l] == cur[l]) l++;
            if (l > best) {
                best = l; *dist = (unsigned)d; found = 1;
                if (l >= nice) break;
            }
        }
        /* the slot of a position exactly one window back now belongs to i */
        if (d == IRMAE__DEF_WSIZE) break;
        cand = s->prev[c & IRMAE__DEF_WMASK];
    }
    if (!found || (best == 3 && *dist > 4096)) return 0; /* a far 3-match rarely pays */
    return best;
}

static void irmae__deflate_emit(irmae__deflate *s, irmae__bitw *w, const unsigned char *src,
                                unsigned l, unsigned d, size_t *bstart, size_t done)
{
    s->sym_l[s->nsym] = (unsigned short)l;
    s->sym_d[s->nsym] = (unsigned short)d;
    if (++s->nsym == IRMAE__DEF_BLOCK) {
        irmae__deflate_block(s, w, src, *bstart, done, 0);
        *bstart = done;
    }
}

/* The whole raw DEFLATE stream of src[0..n) at level 0..9. */
static void irmae__deflate_run(irmae__deflate *s, irmae__bitw *w, const unsigned char *src, size_t n, int level)
{
    unsigned good, lazy, nice, chain, plen = 0, pdist = 0;
    size_t i = 0, bstart = 0, p;
    int pending = 0;
    if (level == 0) { irmae__deflate_stored(w, src, n, 1); return; }
    good = irmae__def_cfg[level][0]; lazy = irmae__def_cfg[level][1];
    nice = irmae__def_cfg[level][2]; chain = irmae__def_cfg[level][3];
    irmae__deflate_init(s);
    while (i < n && !w->err) {
        unsigned len = 0, dist = 0;
        if (n - i >= 3) {
            irmae__deflate_insert(s, src, i);
            if (pending && plen >= 3)
                len = irmae__deflate_find(s, src, n, i, plen, plen >= good ? chain >> 2 : chain, nice, &dist);
            else
                len = irmae__deflate_find(s, src, n, i, 2, chain, nice, &dist);
        }
        if (pending) {
            if (plen >= 3 && len <= plen) { /* the match at i - 1 wins */
                size_t end = i - 1 + plen;
                for (p = i + 1; p < end; p++)
                    if (n - p >= 3) irmae__deflate_insert(s, src, p);
                irmae__deflate_emit(s, w, src, plen, pdist, &bstart, end);
                i = end;
                pending = 0;
                continue;
            }
            irmae__deflate_emit(s, w, src, src[i - 1], 0, &bstart, i);
            pending = 0;
        }
        if (len >= 3 && (lazy == 0 || len >= lazy)) {
            size_t end = i + len;
            for (p = i + 1; p < end; p++)
                if (n - p >= 3) irmae__deflate_insert(s, src, p);
            irmae__deflate_emit(s, w, src, len, dist, &bstart, end);
            i = end;
        } else {
            pending = 1; plen = len; pdist = dist;
            i++;
        }
    }
    if (w->err) return;
    if (pending) irmae__deflate_emit(s, w, src, src[n - 1], 0, &bstart, n); /* a literal: a match
        pending at n - 1 would be shorter than 3 */
    irmae__deflate_block(s, w, src, bstart, n, 1);
}

/* An upper bound of the raw DEFLATE size of n bytes (levels 0..9): every
   block costs at most what storing it would (5 bytes per 65535-byte piece
   plus up to 1 byte of padding per run of stored blocks), and every block
   but the last covers at least IRMAE__DEF_BLOCK bytes. Saturates. */
static size_t irmae__deflate_bound(size_t n)
{
    size_t extra = 6 * (n / IRMAE__DEF_BLOCK + 1) + 5 * (n / 65535 + 1) + 16;
    return n > (size_t)-1 - extra ? (size_t)-1 : n + extra;
}

/* Compresses into w (which may already hold a header); zlib = 1 adds the
   zlib header and trailer. Returns a status. */
static int irmae__compress(irmae__bitw *w, const void *src, size_t size, int level, int zlib,
                           const char *who)
{
    irmae__deflate *s = NULL;
    if (level == -1) level = 6;
    if (level < 0 || level > 9) return irmae__fail(IRMAE_ERR_ARG, "%s: level %d not in -1..9", who, level);
    if (!src && size) return irmae__fail(IRMAE_ERR_ARG, "%s: src is NULL with size %lu", who, (unsigned long)size);
    if (!irmae__bitw_reserve(w, size / 8 + 64))
        return irmae__fail(IRMAE_ERR_NOMEM, "%s: output buffer for %lu bytes", who, (unsigned long)size);
    if (zlib) {
        unsigned cmf = 0x78, flg = (unsigned)(level <= 1 ? 0 : level <= 5 ? 1 : level == 6 ? 2 : 3) << 6;
        unsigned char hdr[2];
        flg += (31 - (cmf * 256 + flg) % 31) % 31;
        hdr[0] = (unsigned char)cmf; hdr[1] = (unsigned char)flg;
        irmae__bitw_bytes(w, hdr, 2);
    }
    if (level > 0) {
        s = (irmae__deflate *)irmae__alloc(1, sizeof *s);
        if (!s) return irmae__fail(IRMAE_ERR_NOMEM, "%s: match-finder tables", who);
    }
    irmae__deflate_run(s, w, (const unsigned char *)src, size, level);
    irmae__free(s);
    irmae__bitw_align(w);
    if (zlib) {
        uint32_t a = irmae_adler32(1, src, size);
        unsigned char tr[4];
        tr[0] = (unsigned char)(a >> 24); tr[1] = (unsigned char)((a >> 16) & 0xFF);
        tr[2] = (unsigned char)((a >> 8) & 0xFF); tr[3] = (unsigned char)(a & 0xFF);
        irmae__bitw_bytes(w, tr, 4);
    }
    if (w->err) return irmae__fail(IRMAE_ERR_NOMEM, "%s: output buffer for %lu bytes", who, (unsigned long)size);
    return IRMAE_OK;
}

static int irmae__compress_api(const void *src, size_t size, int level, unsigned char **out,
                               size_t *out_size, int zlib, const char *who)
{
    irmae__bitw w;
    int rc;
    if (out) *out = NULL;
    if (out_size) *out_size = 0;
    if (!out || !out_size) return irmae__fail(IRMAE_ERR_ARG, "%s: out or out_size is NULL", who);
    memset(&w, 0, sizeof w);
    w.hint = irmae__deflate_bound(size);
    if (w.hint < (size_t)-1 - 6) w.hint += 6;
    rc = irmae__compress(&w, src, size, level, zlib, who);
    if (rc) { irmae__free(w.buf); return rc; }
    *out = w.buf;
    *out_size = w.len;
    return IRMAE_OK;
}

IRMAEDEF int irmae_deflate(const void *src, size_t size, int level, unsigned char **out, size_t *out_size)
{
    return irmae__compress_api(src, size, level, out, out_size, 0, "deflate");
}

IRMAEDEF int irmae_zlib_compress(const void *src, size_t size, int level, unsigned char **out, size_t *out_size)
{
    return irmae__compress_api(src, size, level, out, out_size, 1, "zlib_compress");
}

IRMAEDEF void irmae_free_buffer(void *p) { irmae__free(p); }

static void irmae__put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24); p[1] = (unsigned char)((v >> 16) & 0xFF);
    p[2] = (unsigned char)((v >> 8) & 0xFF); p[3] = (unsigned char)(v & 0xFF);
}

/* Writes one PNG chunk at p (12 + n bytes); returns the end. */
static unsigned char *irmae__png_chunk(unsigned char *p, const char *type, const unsigned char *data, size_t n)
{
    irmae__put_be32(p, (uint32_t)n);
    memcpy(p + 4, type, 4);
    if (n) memcpy(p + 8, data, n);
    irmae__put_be32(p + 8 + n, irmae_crc32(0, p + 4, n + 4));
    return p + 12 + n;
}

static int irmae__paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc) return a;
    return pb <= pc ? b : c;
}

/* |x| of a filtered byte read as a signed 8-bit value */
#define IRMAE__ABS8(x) ((unsigned)((x) & 0xFF) < 128u ? (unsigned)((x) & 0xFF) : 256u - (unsigned)((x) & 0xFF))

#define IRMAE__PNG_IDAT_MAX 65536u

IRMAEDEF int irmae_png_encode(const unsigned char *pixels, int w, int h, int c,
                              unsigned char **out, size_t *out_size)
{
    static const unsigned char sig[8] = { 137, 80, 78, 71, 13, 10, 26, 10 };
    static const unsigned char ctype[5] = { 0, 0, 4, 2, 6 };
    static const unsigned char zeros[33] = { 0 };
    size_t rowbytes, fsize, nidat, zlen, k;
    unsigned char *filt, *buf, *p, ihdr[13];
    irmae__bitw z;
    int y, rc;
    if (out) *out = NULL;
    if (out_size) *out_size = 0;
    if (!pixels || !out || !out_size) return irmae__fail(IRMAE_ERR_ARG, "png_encode: NULL pixels, out or out_size");
    if (w <= 0 || h <= 0) return irmae__fail(IRMAE_ERR_ARG, "png_encode: size %d x %d", w, h);
    if (c < 1 || c > 4) return irmae__fail(IRMAE_ERR_ARG, "png_encode: %d channels (1..4)", c);
    if (!irmae__mul(&rowbytes, (size_t)w, (size_t)c) || rowbytes >= (size_t)PTRDIFF_MAX ||
        !irmae__mul(&fsize, rowbytes + 1, (size_t)h) || fsize > (size_t)PTRDIFF_MAX / 2)
        return irmae__fail(IRMAE_ERR_OVERFLOW, "png_encode: %d x %d x %d image", w, h, c);
    filt = (unsigned char *)irmae__alloc(fsize, 1);
    if (!filt) return irmae__fail(IRMAE_ERR_NOMEM, "png_encode: %lu bytes of filtered rows", (unsigned long)fsize);

    /* Per row, the filter whose output has the smallest sum of |signed byte|. */
    IRMAE__OMP(parallel for schedule(static))
    for (y = 0; y < h; y++) {
        const unsigned char *row = pixels + (size_t)y * rowbytes;
        const unsigned char *up = y ? row - rowbytes : NULL;
        unsigned char *o = filt + (size_t)y * (rowbytes + 1);
        unsigned long sum[5] = { 0, 0, 0, 0, 0 };
        size_t x;
        int f, best = 0;
        for (x = 0; x < rowbytes; x++) {
            int v = row[x], a = x >= (size_t)c ? row[x - (size_t)c] : 0, b = up ? up[x] : 0;
            int cc = (up && x >= (size_t)c) ? up[x - (size_t)c] : 0;
            sum[0] += IRMAE__ABS8(v);
            sum[1] += IRMAE__ABS8(v - a);
            sum[2] += IRMAE__ABS8(v - b);
            sum[3] += IRMAE__ABS8(v - ((a + b) >> 1));
            sum[4] += IRMAE__ABS8(v - irmae__paeth(a, b, cc));
        }
        for (f = 1; f < 5; f++) if (sum[f] < sum[best]) best = f;
        o[0] = (unsigned char)best;
        for (x = 0; x < rowbytes; x++) {
            int v = row[x], a = x >= (size_t)c ? row[x - (size_t)c] : 0, b = up ? up[x] : 0;
            int cc = (up && x >= (size_t)c) ? up[x - (size_t)c] : 0, pred;
            switch (best) {
            case 0: pred = 0; break;
            case 1: pred = a; break;
            case 2: pred = b; break;
            case 3: pred = (a + b) >> 1; break;
            default: pred = irmae__paeth(a, b, cc); break;
            }
            o[1 + x] = (unsigned char)((v - pred) & 0xFF);
        }
    }

    /* The zlib stream is written after room for the signature, IHDR and the
       first IDAT header (41 bytes); the IDAT chunks are then framed in place,
       last chunk first, each moving up by 12 bytes per chunk before it. */
    memset(&z, 0, sizeof z);
    z.hint = irmae__deflate_bound(fsize);
    z.hint = z.hint > (size_t)-1 / 2 ? 0 : z.hint + 6 + 41 + 12 * (z.hint / IRMAE__PNG_IDAT_MAX + 2) + 16;
    irmae__bitw_bytes(&z, sig, 8); /* placeholder bytes, overwritten below */
    irmae__bitw_bytes(&z, zeros, 33);
    rc = z.err ? irmae__fail(IRMAE_ERR_NOMEM, "png_encode: output buffer")
               : irmae__compress(&z, filt, fsize, 6, 1, "png_encode");
    irmae__free(filt);
    if (rc) { irmae__free(z.buf); return rc; }
    zlen = z.len - 41;
    nidat = zlen / IRMAE__PNG_IDAT_MAX + (zlen % IRMAE__PNG_IDAT_MAX != 0);
    if (nidat > ((size_t)-1 - z.len) / 12 - 1 || !irmae__bitw_reserve(&z, 12 * nidat + 4)) {
        irmae__free(z.buf);
        return irmae__fail(IRMAE_ERR_NOMEM, "png_encode: %lu bytes of PNG", (unsigned long)(z.len + 12 * nidat + 4));
    }
    buf = z.buf;
    for (k = nidat; k-- > 0;) {
        size_t len = zlen - k * IRMAE__PNG_IDAT_MAX < IRMAE__PNG_IDAT_MAX ? zlen - k * IRMAE__PNG_IDAT_MAX : IRMAE__PNG_IDAT_MAX;
        unsigned char *d = buf + 33 + k * (IRMAE__PNG_IDAT_MAX + 12);
        memmove(d + 8, buf + 41 + k * IRMAE__PNG_IDAT_MAX, len);
        irmae__put_be32(d, (uint32_t)len);
        memcpy(d + 4, "IDAT", 4);
        irmae__put_be32(d + 8 + len, irmae_crc32(0, d + 4, len + 4));
    }
    memcpy(buf, sig, 8);
    irmae__put_be32(ihdr, (uint32_t)w);
    irmae__put_be32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;              /* bit depth */
    ihdr[9] = ctype[c];       /* colour type */
    ihdr[10] = ihdr[11] = ihdr[12] = 0; /* deflate, adaptive filtering, no interlace */
    irmae__png_chunk(buf + 8, "IHDR", ihdr, 13);
    p = irmae__png_chunk(buf + 33 + 12 * nidat + zlen, "IEND", NULL, 0);
    *out = buf;
    *out_size = (size_t)(p - buf);
    return IRMAE_OK;
}

IRMAEDEF int irmae_png_write(const char *path, const unsigned char *pixels, int w, int h, int c)
{
    unsigned char *png;
    size_t n, wrote;
    FILE *f;
    int rc, bad;
    if (!path) return irmae__fail(IRMAE_ERR_ARG, "png_write: path is NULL");
    rc = irmae_png_encode(pixels, w, h, c, &png, &n);
    if (rc) return rc;
    f = fopen(path, "wb");
    if (!f) {
        irmae__free(png);
        return irmae__fail(IRMAE_ERR_IO, "png_write: cannot open '%s' for writing", path);
    }
    wrote = fwrite(png, 1, n, f);
    irmae__free(png);
    bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad || wrote != n)
        return irmae__fail(IRMAE_ERR_IO, "png_write: writing %lu bytes to '%s' failed (wrote %lu)",
                           (unsigned long)n, path, (unsigned long)wrote);
    return IRMAE_OK;
}

IRMAEDEF int irmae_png_write_grid(const char *path, const float *images, int count, int c,
                                  int h, int w, int cols, int pad, float lo, float hi)
{
    long long gw, gh;
    int rows, i, rc;
    size_t npix, gsize, plane;
    unsigned char *g;
    double scale;
    if (!path || !images) return irmae__fail(IRMAE_ERR_ARG, "png_write_grid: NULL path or images");
    if (count <= 0 || h <= 0 || w <= 0 || cols <= 0 || pad < 0)
        return irmae__fail(IRMAE_ERR_ARG, "png_write_grid: count %d, %d x %d, cols %d, pad %d",
                           count, h, w, cols, pad);
    if (c != 1 && c != 3) return irmae__fail(IRMAE_ERR_ARG, "png_write_grid: %d channels (1 or 3)", c);
    if (!(lo == lo && hi == hi) || lo - lo != 0.0f || hi - hi != 0.0f || lo == hi)
        return irmae__fail(IRMAE_ERR_ARG, "png_write_grid: value range [%g, %g]", (double)lo, (double)hi);
    if (!irmae__count(count, c, h, w))
        return irmae__fail(IRMAE_ERR_OVERFLOW, "png_write_grid: %d images of %d x %d x %d", count, c, h, w);
    if (cols > count) cols = count;
    rows = (count - 1) / cols + 1;
    gw = (long long)cols * w + (long long)(cols + 1) * pad;
    gh = (long long)rows * h + (long long)(rows + 1) * pad;
    if (gw > INT_MAX || gh > INT_MAX || !irmae__mul3(&gsize, (size_t)gw, (size_t)gh, (size_t)c))
        return irmae__fail(IRMAE_ERR_OVERFLOW, "png_write_grid: grid of %lld x %lld pixels", gw, gh);
    g = (unsigned char *)irmae__alloc(gsize, 1);
    if (!g) return irmae__fail(IRMAE_ERR_NOMEM, "png_write_grid: %lu bytes", (unsigned long)gsize);
    memset(g, 128, gsize);
    plane = (size_t)h * (size_t)w;
    npix = plane * (size_t)c;
    scale = 1.0 / ((double)hi - (double)lo);
    for (i = 0; i < count; i++) {
        const float *img = images + (size_t)i * npix;
        size_t x0 = (size_t)pad + (size_t)(i % cols) * (size_t)(w + pad);
        size_t y0 = (size_t)pad + (size_t)(i / cols) * (size_t)(h + pad);
        int ch, y, x;
        for (ch = 0; ch < c; ch++)
            for (y = 0; y < h; y++) {
                const float *src = img + (size_t)ch * plane + (size_t)y * (size_t)w;
                unsigned char *dst = g + ((y0 + (size_t)y) * (size_t)gw + x0) * (size_t)c + (size_t)ch;
                for (x = 0; x < w; x++) {
                    double t = ((double)src[x] - (double)lo) * scale;
                    if (!(t > 0.0)) t = 0.0; /* also NaN */
                    if (t > 1.0) t = 1.0;
                    dst[(size_t)x * (size_t)c] = (unsigned char)(t * 255.0 + 0.5);
                }
            }
    }
    rc = irmae_png_write(path, g, (int)gw, (int)gh, c);
    irmae__free(g);
    return rc;
}
