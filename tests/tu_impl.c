/* The implementation translation unit of a two-file program, built with a
   custom allocator that counts what the library allocates and frees. */
#include <stdlib.h>
#include <stddef.h>
size_t tu_allocs = 0, tu_frees = 0;
static void *tu_malloc(size_t n) { tu_allocs++; return malloc(n); }
static void tu_free(void *p) { if (p) tu_frees++; free(p); }
#define IRMAE_MALLOC(n) tu_malloc(n)
#define IRMAE_FREE(p) tu_free(p)
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"
