/* libFuzzer target: gzip, zlib and raw DEFLATE decoding of the same bytes,
   output limited to 16 MiB.
   With libFuzzer:  clang -g -O1 -fsanitize=fuzzer,address,undefined tests/fuzz_gzip.c -o build/fuzz_gzip -lm
   Without:         cc -g -O1 -fsanitize=address,undefined tests/fuzz_gzip.c tests/fuzz_main.c -o build/fuzz_gzip_run -lm */
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void irmae_fuzz_check(int rc, unsigned char *out, size_t n, size_t limit)
{
    if (rc == 0) {
        if (!out || n > limit) __builtin_trap();
        if (n) { volatile unsigned char last = out[n - 1]; (void)last; }
        irmae_free_buffer(out);
    } else if (out || n || rc < IRMAE_ERR_MISMATCH) {
        __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const size_t limit = (size_t)1 << 24;
    unsigned char *out;
    size_t n;
    int rc;
    rc = irmae_gzip_decompress(&out, &n, data, size, limit);
    irmae_fuzz_check(rc, out, n, limit);
    rc = irmae_zlib_decompress(&out, &n, data, size, limit);
    irmae_fuzz_check(rc, out, n, limit);
    rc = irmae_inflate(&out, &n, data, size, limit);
    irmae_fuzz_check(rc, out, n, limit);
    return 0;
}
