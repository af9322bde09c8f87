/* libFuzzer target: NumPy .npy parsing (irmae_npy_parse).
   With libFuzzer:  clang -g -O1 -fsanitize=fuzzer,address,undefined tests/fuzz_npy.c -o build/fuzz_npy -lm
   Without:         cc -g -O1 -fsanitize=address,undefined tests/fuzz_npy.c tests/fuzz_main.c -o build/fuzz_npy_run -lm */
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    float *v = NULL;
    int rows = -1, cols = -1;
    int rc = irmae_npy_parse(&v, &rows, &cols, data, size);
    if (rc == 0) {
        /* a success read exactly rows x cols floats that all came from the input */
        if (!v || rows < 1 || cols < 1 || (size_t)rows * (size_t)cols * 4 > size) __builtin_trap();
        { volatile float last = v[(size_t)rows * cols - 1]; (void)last; }
        irmae_free_buffer(v);
    } else if (v || rows || cols || rc < IRMAE_ERR_MISMATCH) {
        __builtin_trap();
    }
    return 0;
}
