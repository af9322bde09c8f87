/* libFuzzer target: PNG decoding (irmae_png_decode) with every want_channels.
   With libFuzzer:  clang -g -O1 -fsanitize=fuzzer,address,undefined tests/fuzz_png.c -o build/fuzz_png -lm
   Without:         cc -g -O1 -fsanitize=address,undefined tests/fuzz_png.c tests/fuzz_main.c -o build/fuzz_png_run -lm
                    ./build/fuzz_png_run tests/data/p_ga8.png  */
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    irmae_image img;
    int want = size ? data[size - 1] % 5 : 0, rc;
    rc = irmae_png_decode(&img, data, size, want);
    if (rc == 0) {
        size_t i, n = (size_t)img.w * (size_t)img.h * (size_t)img.c;
        unsigned sum = 0;
        if (img.w <= 0 || img.h <= 0 || img.c < 1 || img.c > 4 || !img.pixels) __builtin_trap();
        for (i = 0; i < n; i++) sum += img.pixels[i]; /* touch every byte */
        (void)sum;
        irmae_image_free(&img);
    } else if (img.pixels || img.w || img.h || img.c || rc < IRMAE_ERR_MISMATCH) {
        __builtin_trap();
    }
    return 0;
}
