/* The implementation translation unit of a two-file program. */
#define IRMAE_IMPLEMENTATION
#include "../irmae.h"
