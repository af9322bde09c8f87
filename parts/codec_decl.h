/* ======================================================================== */
/* Data: loaders for untrusted files (inflate, zlib, gzip, PNG, IDX/MNIST,  */
/* image folders)                                                           */
/* ======================================================================== */

/* Every loader treats its input as hostile: each length, offset, count and
   size product is checked before use, nothing is read past the end of the
   input, every allocation is bounded by the limits below, and a failure
   returns a named IRMAE_ERR_* code whose irmae_error_detail() names the
   check and the byte offset. Outputs are zeroed (NULL, 0) on every error.

   Limits (define before including the implementation to change them):
     IRMAE_MAX_IMAGE_DIM     largest PNG width or height       (32768)
     IRMAE_MAX_IMAGE_PIXELS  largest PNG width * height        (1 << 28)
     IRMAE_MAX_ALLOC         largest single buffer in bytes: a file read into
                             memory, a decompressed stream, an image
                             ((size_t)1 << 31)
   Exceeding one gives IRMAE_ERR_LIMIT. */
#ifndef IRMAE_MAX_IMAGE_DIM
#define IRMAE_MAX_IMAGE_DIM 32768
#endif
#ifndef IRMAE_MAX_IMAGE_PIXELS
#define IRMAE_MAX_IMAGE_PIXELS ((size_t)1 << 28)
#endif
#ifndef IRMAE_MAX_ALLOC
#define IRMAE_MAX_ALLOC ((size_t)1 << 31)
#endif

/* --- DEFLATE decoding --------------------------------------------------- */

/* Decodes a raw DEFLATE stream (RFC 1951: stored, fixed and dynamic Huffman
   blocks) that fills src[0..size) exactly (bytes after the final block are an
   error; the unused bits of the last byte are ignored). *out receives a new
   buffer of *out_size bytes, owned by the caller: free it with
   irmae_free_buffer(). The output may not exceed max_out bytes (0 means
   IRMAE_MAX_ALLOC; larger values are capped to IRMAE_MAX_ALLOC).
   Huffman tables are checked as zlib does: over-subscribed code lengths are
   rejected, incomplete codes are rejected except a literal/length or distance
   code with a single 1-bit code (or no distance code at all); every repeat of
   the code-length code, every length and distance symbol (286-287, 30-31 are
   invalid) and every distance (not farther back than the output so far) is
   checked. A stream with an empty output gives a 1-byte buffer and
   *out_size = 0.
   Errors: IRMAE_ERR_ARG (NULL out/out_size, NULL src with size > 0),
   IRMAE_ERR_FORMAT (invalid data), IRMAE_ERR_TRUNCATED (input ends inside the
   stream), IRMAE_ERR_LIMIT (output would exceed the limit), IRMAE_ERR_NOMEM. */
IRMAEDEF int irmae_inflate(const void *src, size_t size, size_t max_out,
                           unsigned char **out, size_t *out_size);
/* A zlib stream (RFC 1950) that fills src[0..size) exactly: CM must be 8 with
   a window (CINFO) <= 32 KiB, the header check FCHECK must hold, a preset
   dictionary (FDICT) is IRMAE_ERR_UNSUPPORTED, the big-endian Adler-32 of the
   output is verified (IRMAE_ERR_CHECKSUM). Otherwise as irmae_inflate(). */
IRMAEDEF int irmae_zlib_decompress(const void *src, size_t size, size_t max_out,
                                   unsigned char **out, size_t *out_size);
/* A gzip file (RFC 1952), possibly several members, whose outputs are
   concatenated (like gzip -d). FEXTRA, FNAME and FCOMMENT are skipped, FHCRC
   (CRC-16 of the header) is verified, reserved flag bits are an error, and
   each member's CRC-32 and ISIZE (length mod 2^32) are verified
   (IRMAE_ERR_CHECKSUM). Zero bytes after a member are ignored (padding);
   anything else after a member must be another member (IRMAE_ERR_FORMAT).
   Otherwise as irmae_inflate(); max_out bounds the total output. */
IRMAEDEF int irmae_gzip_decompress(const void *src, size_t size, size_t max_out,
                                   unsigned char **out, size_t *out_size);

/* --- PNG decoding ------------------------------------------------------- */

/* An 8-bit image: h rows of w pixels of c interleaved channels
   (c = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA), no row padding.
   Owns pixels: free with irmae_image_free(). */
typedef struct irmae_image { int w, h, c; unsigned char *pixels; } irmae_image;

/* Decodes a PNG file held in memory. Supported: every colour type (0 grey,
   2 RGB, 3 palette, 4 grey+alpha, 6 RGBA) with every bit depth the spec allows
   for it (1/2/4/8/16 grey, 1/2/4/8 palette, 8/16 otherwise), PLTE, tRNS,
   Adam7 interlacing, the five filters, any number of IDAT chunks.
   Checked: the signature, every chunk's CRC, chunk lengths, IHDR first and
   valid, PLTE (not for grey, once, before tRNS and IDAT, 1..2^depth entries
   for palette images), tRNS (once, before IDAT, after PLTE, right length,
   not on grey+alpha or RGBA images), IDAT chunks consecutive and present, an
   IEND chunk (bytes after IEND are ignored), unknown critical chunks
   (IRMAE_ERR_UNSUPPORTED; unknown ancillary chunks are skipped), filter
   types, palette indices, and that the image data decompresses to exactly the
   size the header implies (bytes after the end of the zlib stream inside
   IDAT are ignored, as libpng does).
   want_channels: 0 keeps the file's channels (grey 1, grey+alpha 2, RGB 3,
   RGBA 4; palette gives 3, or 4 when a tRNS chunk is present; grey or RGB
   with tRNS gain an alpha channel: 0 where the pixel equals the tRNS colour
   exactly, at full bit depth, 255 elsewhere); 1..4 converts to that many
   channels. Colour to grey: Y = (77 R + 150 G + 29 B + 128) >> 8 (BT.601
   weights in 1/256ths); dropping alpha does not composite. 16-bit samples
   become (v * 255 + 32767) / 65535; grey samples of 1, 2 or 4 bits are
   scaled to 0..255 (v * 255 / (2^depth - 1)); palette indices select PLTE
   entries as they are.
   out is zeroed on error.
   Errors: IRMAE_ERR_ARG (NULL out, NULL data with size > 0, want_channels
   outside 0..4), IRMAE_ERR_FORMAT, IRMAE_ERR_TRUNCATED, IRMAE_ERR_CHECKSUM,
   IRMAE_ERR_UNSUPPORTED, IRMAE_ERR_LIMIT (IRMAE_MAX_IMAGE_DIM,
   IRMAE_MAX_IMAGE_PIXELS, IRMAE_MAX_ALLOC), IRMAE_ERR_NOMEM. */
IRMAEDEF int irmae_png_decode(const void *data, size_t size, int want_channels, irmae_image *out);
/* Reads the file at path (at most IRMAE_MAX_ALLOC bytes) and decodes it as
   irmae_png_decode(). Adds IRMAE_ERR_IO (the detail names the path). */
IRMAEDEF int irmae_png_load(const char *path, int want_channels, irmae_image *out);
/* Frees the pixels and zeroes *img. NULL is a no-op. */
IRMAEDEF void irmae_image_free(irmae_image *img);

/* --- IDX (MNIST) -------------------------------------------------------- */

/* An IDX array of unsigned bytes: rank 1..4, dims[0..rank) (others 0), size =
   product of the dims = number of bytes in data (row-major, as in the file).
   Owns data: free with irmae_idx_free(). */
typedef struct irmae_idx { int rank; int dims[4]; unsigned char *data; size_t size; } irmae_idx;

/* Parses an IDX file held in memory; a gzip file (magic 1f 8b) is
   decompressed first (output bounded by IRMAE_MAX_ALLOC). Checks: magic
   (two zero bytes), element type (0x08 unsigned byte; the other IDX types
   0x09, 0x0B, 0x0C, 0x0D, 0x0E give IRMAE_ERR_UNSUPPORTED, anything else
   IRMAE_ERR_FORMAT), rank 1..4 (0 FORMAT, > 4 UNSUPPORTED), each dimension
   <= INT_MAX, and the exact size: fewer bytes than the header implies is
   IRMAE_ERR_TRUNCATED, more is IRMAE_ERR_FORMAT. Dimensions of 0 are allowed
   (size 0, data a 1-byte buffer). *out is zeroed on error.
   Errors: IRMAE_ERR_ARG, IRMAE_ERR_FORMAT, IRMAE_ERR_TRUNCATED,
   IRMAE_ERR_UNSUPPORTED, IRMAE_ERR_LIMIT, IRMAE_ERR_NOMEM, and those of
   irmae_gzip_decompress(). */
IRMAEDEF int irmae_idx_parse(const void *data, size_t size, irmae_idx *out);
/* irmae_idx_parse() of the file at path. Adds IRMAE_ERR_IO; the detail of
   every error names the path. */
IRMAEDEF int irmae_idx_load(const char *path, irmae_idx *out);
/* Frees the data and zeroes *idx. NULL is a no-op. */
IRMAEDEF void irmae_idx_free(irmae_idx *idx);

/* Loads MNIST-style IDX files (plain or gzipped) as a data set of n grey
   images (c = 1): images_path must hold a rank-3 array n x rows x cols,
   labels_path a rank-1 array of n labels (different n: IRMAE_ERR_MISMATCH;
   other ranks: IRMAE_ERR_SHAPE; n = 0: IRMAE_ERR_FORMAT). Labels go to
   ds->labels as they are (0..255). Pixels v become v / 255 in [0, 1], or
   v / 127.5 - 1 in [-1, 1] when range_pm1 != 0. out_h x out_w (0 keeps rows
   / cols, independently) resizes with irmae's resampler (see
   irmae_images_load: for enlarging, e.g. 28 -> 32, it equals PyTorch's
   F.interpolate(mode="bilinear", align_corners=False, antialias=False)).
   *ds is zeroed on error. Errors: IRMAE_ERR_ARG (NULL pointer, negative
   size), those of irmae_idx_load(), IRMAE_ERR_NOMEM. */
IRMAEDEF int irmae_mnist_load(irmae_dataset *ds, const char *images_path, const char *labels_path,
                              int out_h, int out_w, int range_pm1);

/* --- Image folders, batches --------------------------------------------- */

/* Loads every file whose name ends in ".png" (any case) in folder (not its
   subfolders), in strcmp order of the names, as a data set of n images of
   c channels (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA; converted as
   irmae_png_decode with want_channels = c), CHW floats in [0, 1] (v / 255)
   or [-1, 1] (v / 127.5 - 1) when range_pm1 != 0. No labels.
   crop > 0 first cuts the centred crop x crop square, with torchvision's
   CenterCrop offsets (top = round((h - crop) / 2), halves rounded to even);
   an image smaller than crop is IRMAE_ERR_SHAPE. Then out_h x out_w > 0
   resizes with a separable triangle (bilinear) filter evaluated at pixel
   centres: enlarging, this is exactly bilinear interpolation with
   align_corners=False (PyTorch F.interpolate, edge pixels clamped);
   shrinking by a factor s, the triangle is widened to a support of s pixels
   on each side and the weights renormalised, so every source pixel counts
   (an area-like average, the antialiased bilinear of PIL's resize and of
   torchvision's Resize(antialias=True)). CelebA protocol: crop = 148,
   out 64 x 64. out_h = out_w = 0 keeps the (cropped) size, and then every
   image must have the same size (IRMAE_ERR_SHAPE otherwise).
   *ds is zeroed on error. Errors: IRMAE_ERR_ARG (NULL pointer, c outside
   1..4, negative sizes, only one of out_h/out_w set), IRMAE_ERR_IO (folder
   cannot be listed, or has no .png file), IRMAE_ERR_SHAPE, the errors of
   irmae_png_load() (the detail names the file), IRMAE_ERR_NOMEM. */
IRMAEDEF int irmae_images_load(irmae_dataset *ds, const char *folder, int c, int out_h, int out_w,
                               int crop, int range_pm1);

/* Fills perm[0..n) with 0..n-1 and shuffles it (Fisher-Yates, each swap
   index from irmae_rng_int): the same rng state gives the same order.
   Errors: IRMAE_ERR_ARG (NULL perm or rng with n > 0, n < 0). */
IRMAEDEF int irmae_shuffle(int *perm, int n, irmae_rng *rng);
/* Copies images idx[0..count) of ds into out (count * c * h * w floats, one
   image after the other), e.g. a shuffled minibatch. Every index is checked
   before anything is written. Errors: IRMAE_ERR_ARG (NULL pointer, count < 0,
   an index outside 0..n-1: the detail names its position). */
IRMAEDEF int irmae_dataset_gather(const irmae_dataset *ds, const int *idx, int count, float *out);
