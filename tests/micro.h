/* micro.h - the micro model of the fuzz targets (and of test_ckpt's
   micro_cfg): 1 x 4 x 4 images, flatten + linear to the code (n = 2), one
   map, linear + reshape back; ~90 parameters. Include after irmae.h. */
#include <string.h>
static irmae_config micro_config(void)
{
    irmae_config c = irmae_preset(IRMAE_PRESET_SHAPES);
    c.in_c = 1; c.in_h = c.in_w = 4; c.n = 2; c.l = 1; c.max_batch = 8; c.lr = 1e-3f;
    c.n_enc = c.n_dec = 0;
    memset(c.enc, 0, sizeof c.enc);
    memset(c.dec, 0, sizeof c.dec);
    c.enc[c.n_enc++] = irmae_layer_flatten();
    c.enc[c.n_enc++] = irmae_layer_linear(IRMAE_CODE, 1);
    c.dec[c.n_dec++] = irmae_layer_linear(16, 1);
    c.dec[c.n_dec++] = irmae_layer_reshape(1, 4, 4);
    return c;
}
