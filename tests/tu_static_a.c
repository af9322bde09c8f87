/* IRMAE_STATIC: two files each with a private copy of the implementation,
   linked together (tu_static_b.c holds main). Nothing of the library may be
   exported from either object (the Makefile checks with nm). */
#define IRMAE_STATIC
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"

unsigned long tu_static_a_crc(const char *s, size_t n);
unsigned long tu_static_a_crc(const char *s, size_t n) { return (unsigned long)irmae_crc32(0, s, n); }
