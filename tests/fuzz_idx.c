/* libFuzzer target: IDX parsing (irmae_idx_parse, plain and gzipped).
   With libFuzzer:  clang -g -O1 -fsanitize=fuzzer,address,undefined tests/fuzz_idx.c -o build/fuzz_idx -lm
   Without:         cc -g -O1 -fsanitize=address,undefined tests/fuzz_idx.c tests/fuzz_main.c -o build/fuzz_idx_run -lm */
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    irmae_idx x;
    int rc = irmae_idx_parse(&x, data, size);
    if (rc == 0) {
        size_t n = 1;
        int k;
        if (x.rank < 1 || x.rank > 4 || !x.data) __builtin_trap();
        for (k = 0; k < x.rank; k++) n *= (size_t)x.dims[k];
        if (n != x.size) __builtin_trap();
        if (x.size) { volatile unsigned char last = x.data[x.size - 1]; (void)last; }
        irmae_idx_free(&x);
    } else if (x.data || x.size || x.rank || rc < IRMAE_ERR_MISMATCH) {
        __builtin_trap();
    }
    return 0;
}
