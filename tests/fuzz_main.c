/* A plain main() that runs a fuzz target (a fuzz_*.c file built together
   with this one) over the files named on the command line, so the targets
   build and replay crashes or a corpus without libFuzzer:
     cc -g -O1 -fsanitize=address,undefined tests/fuzz_png.c tests/fuzz_main.c -o build/fuzz_png_run -lm
     ./build/fuzz_png_run tests/data/p_ga8.png crash-1234
   Prints one line per file and a total; exits 0 when every input ran. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    int i, failed = 0;
    for (i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        unsigned char *buf = NULL;
        size_t n = 0, cap = 0, got;
        if (!f) { fprintf(stderr, "fuzz_main: cannot open %s\n", argv[i]); failed++; continue; }
        do {
            if (n == cap) {
                unsigned char *nb;
                cap = cap ? cap * 2 : 65536;
                nb = (unsigned char *)realloc(buf, cap);
                if (!nb) { fprintf(stderr, "fuzz_main: out of memory\n"); free(buf); fclose(f); return 2; }
                buf = nb;
            }
            got = fread(buf + n, 1, cap - n, f);
            n += got;
        } while (got > 0);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, n);
        printf("ran %s (%lu bytes)\n", argv[i], (unsigned long)n);
        free(buf);
    }
    printf("fuzz_main: %d inputs run, %d unreadable\n", argc - 1 - failed, failed);
    return failed ? 1 : 0;
}
