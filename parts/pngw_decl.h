/* ======================================================================== */
/* Data: DEFLATE / zlib compression, PNG writing                            */
/* ======================================================================== */

/* Raw DEFLATE (RFC 1951) of src[0..size) into a new buffer (*out, *out_size),
   owned by the caller: free it with irmae_free_buffer().
   level 0 = stored blocks only; 1..9 = LZ77 (32 KiB window, lengths 3..258,
   hash chains; 1..3 greedy, 4..9 lazy matching, longer searches at higher
   levels) with a per-block choice of fixed Huffman, dynamic Huffman (optimal
   length-limited codes: 15 bits for literal/length and distance codes,
   7 bits for the code-length code) or stored, whichever is smallest; runs of
   stored blocks are merged, so incompressible data grows by ~5 bytes per
   64 KiB. level -1 means 6. Memory: a fixed ~1 MiB of tables plus the output.
   src may be NULL only when size == 0. On error *out = NULL, *out_size = 0.
   Errors: IRMAE_ERR_ARG (NULL out/out_size/src, level outside -1..9),
   IRMAE_ERR_NOMEM. */
IRMAEDEF int irmae_deflate(const void *src, size_t size, int level,
                           unsigned char **out, size_t *out_size);
/* zlib stream (RFC 1950): 2-byte header (32 KiB window, FLEVEL from level,
   valid FCHECK, no dictionary), raw DEFLATE as irmae_deflate(), big-endian
   Adler-32 of src. Same ownership and errors as irmae_deflate(). */
IRMAEDEF int irmae_zlib_compress(const void *src, size_t size, int level,
                                 unsigned char **out, size_t *out_size);
/* Frees a buffer returned by irmae_deflate / irmae_zlib_compress /
   irmae_png_encode. NULL is a no-op. */
IRMAEDEF void irmae_free_buffer(void *p);

/* Encodes 8-bit pixels (row-major, channels interleaved, w * h * c bytes,
   no row padding) as a PNG: c = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA.
   Non-interlaced; each row gets the filter (None/Sub/Up/Average/Paeth) with
   the minimum sum of absolute (signed) filtered bytes; the rows are zlib
   compressed at level 6 and split into IDAT chunks of at most 64 KiB.
   *out (free with irmae_free_buffer) and *out_size receive the file bytes.
   Errors: IRMAE_ERR_ARG (NULL pointer, w or h <= 0, c not in 1..4),
   IRMAE_ERR_OVERFLOW (w * c + 1) * h does not fit in memory sizes,
   IRMAE_ERR_NOMEM. */
IRMAEDEF int irmae_png_encode(const unsigned char *pixels, int w, int h, int c,
                              unsigned char **out, size_t *out_size);
/* irmae_png_encode() and write the bytes to the file at path (created or
   truncated). Errors: those of irmae_png_encode, IRMAE_ERR_ARG for a NULL
   path, IRMAE_ERR_IO (open/write/close failed; the detail names the path). */
IRMAEDEF int irmae_png_write(const char *path, const unsigned char *pixels, int w, int h, int c);
/* Writes `count` float images (CHW, c = 1 grey or 3 RGB, each c * h * w
   values, one after the other) as one PNG grid, `cols` images per row
   (cols > count is reduced to count), with `pad` >= 0 pixels of mid-grey
   (128) around and between the cells; empty cells of the last row are grey
   too. Grid size: (cols * w + (cols + 1) * pad) x (rows * h + (rows + 1) * pad).
   A value v becomes round(255 * clamp((v - lo) / (hi - lo), 0, 1)); NaN maps
   to 0. hi < lo inverts the scale.
   Errors: IRMAE_ERR_ARG (NULL path/images, count/h/w/cols <= 0, pad < 0,
   c not 1 or 3, lo or hi not finite, lo == hi), IRMAE_ERR_OVERFLOW (grid
   larger than 2^31 - 1 pixels on a side or in memory), and those of
   irmae_png_write. */
IRMAEDEF int irmae_png_write_grid(const char *path, const float *images, int count, int c,
                                  int h, int w, int cols, int pad, float lo, float hi);
