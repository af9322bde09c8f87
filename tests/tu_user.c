/* A second translation unit that only includes the declarations: linking it
   with tu_impl.c must give no duplicate or missing symbols. */
#include "../irmae.h"
#include <stdio.h>

int main(void)
{
    irmae_rng r = irmae_rng_seed(7);
    irmae_config c = irmae_preset(IRMAE_PRESET_SHAPES);
    int ok = irmae_config_param_count(&c) == 1445859 && irmae_rng_uniform(&r) < 1.0f &&
             irmae_crc32(0, "123456789", 9) == 0xCBF43926u && irmae_adler32(1, "Wikipedia", 9) == 0x11E60398u;
    printf("check-header: %d passed, %d failed\n", ok, !ok);
    return !ok;
}
