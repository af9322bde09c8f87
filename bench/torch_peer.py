#!/usr/bin/env python3
"""PyTorch peer of bench/bench.c's training-throughput lines.

The same two models as irmae.h's presets (the paper's architectures, irmae_preset()):
  mnist : 1x32x32, conv 1->32->64->128->256 (4,2,1) ReLU, flatten, linear 1024->128,
          l = 8 bias-free 128x128 maps, linear 128->8192 ReLU, reshape 128x8x8,
          convT 128->64->32 (4,2,1) ReLU, convT 32->1 (1,1,0), tanh
  shapes: 3x32x32, conv 3->32->64->128->256 (4,2,1) ReLU, conv 256->32 (2,1,0),
          l = 2 bias-free 32x32 maps, convT 32->256 (2,1,0) ReLU,
          convT 256->128->64->32 (4,2,1) ReLU, convT 32->3 (4,2,1), tanh
MSE loss, Adam lr 1e-4 (betas 0.9, 0.999, eps 1e-8), random data in [0,1]
(shapes: synthetic shapes drawn as irmae_shapes_make does, for realism; the cost does
not depend on the values).

Prints, per configuration, one line in the format of bench.c:
  torch train preset=mnist l=8 threads=1 batch=32 img/s=... mfu=...
mfu = achieved FLOP/s / peak, FLOP per image = 3 x forward FLOPs (multiply-adds
of conv, convT, linear and the maps counted as 2), the peak given by
--peak-gflops (as printed by `build/bench peak`: "1:98.7,2:197.0", or one
number = the one-thread peak, scaled by the thread count); mfu=na without it.

Run it in PyTorch's best configuration on this machine, as `make bench-torch`
does (README, "Speed"; bench/openblas_core.sh prints OPENBLAS_CORETYPE=NAME,
or nothing on CPUs that OpenBLAS knows):
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $(sh bench/openblas_core.sh) OPENBLAS_NUM_THREADS=1 \
    GLIBC_TUNABLES=glibc.malloc.trim_threshold=4000000000:glibc.malloc.mmap_threshold=4000000000 \
    /usr/bin/python3 bench/torch_peer.py --peak-gflops 1:P1,2:P2
"""
import argparse
import os
import statistics
import sys
import time

try:
    import torch
    import torch.nn as nn
except ImportError as e:  # pragma: no cover
    print("SKIP: PyTorch not available (%s); apt-get install -y python3-torch" % e)
    sys.exit(0)

EXPECTED_PARAMS = {("mnist", 8): 2172129, ("shapes", 2): 1445859 + 2 * 1024}


class Reshape(nn.Module):
    def __init__(self, *shape):
        super().__init__()
        self.shape = shape

    def forward(self, x):
        return x.view(x.shape[0], *self.shape)


def stem(in_c):
    """The encoders' four (4, 2, 1) convolutions in_c -> 32 -> 64 -> 128 -> 256, each + ReLU."""
    layers, c = [], in_c
    for out in (32, 64, 128, 256):
        layers += [nn.Conv2d(c, out, 4, 2, 1), nn.ReLU()]
        c = out
    return layers


class IRMAE(nn.Module):
    def __init__(self, preset, l):
        super().__init__()
        relu = nn.ReLU
        if preset == "mnist":
            n = 128
            self.enc = nn.Sequential(*stem(1), nn.Flatten(), nn.Linear(1024, n))
            self.dec = nn.Sequential(
                nn.Linear(n, 128 * 8 * 8), relu(), Reshape(128, 8, 8),
                nn.ConvTranspose2d(128, 64, 4, 2, 1), relu(),
                nn.ConvTranspose2d(64, 32, 4, 2, 1), relu(),
                nn.ConvTranspose2d(32, 1, 1, 1, 0), nn.Tanh())
            self.in_shape = (1, 32, 32)
        elif preset == "shapes":
            n = 32
            self.enc = nn.Sequential(*stem(3), nn.Conv2d(256, n, 2, 1, 0), nn.Flatten())
            self.dec = nn.Sequential(
                Reshape(n, 1, 1),
                nn.ConvTranspose2d(n, 256, 2, 1, 0), relu(),
                nn.ConvTranspose2d(256, 128, 4, 2, 1), relu(),
                nn.ConvTranspose2d(128, 64, 4, 2, 1), relu(),
                nn.ConvTranspose2d(64, 32, 4, 2, 1), relu(),
                nn.ConvTranspose2d(32, 3, 4, 2, 1), nn.Tanh())
            self.in_shape = (3, 32, 32)
        else:
            raise ValueError(preset)
        self.n = n
        # the l extra linear maps: no bias, no activation
        self.maps = nn.Sequential(*[nn.Linear(n, n, bias=False) for _ in range(l)])

    def forward(self, x):
        return self.dec(self.maps(self.enc(x)))


def forward_flops_per_image(model):
    """2 x multiply-adds of every conv / convT / linear in one forward pass of one image."""
    total = [0]

    def hook(mod, inp, out):
        x = inp[0]
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total[0] += 2 * out[0].numel() * mod.in_channels * k
        elif isinstance(mod, nn.ConvTranspose2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total[0] += 2 * x[0].numel() * mod.out_channels * k
        elif isinstance(mod, nn.Linear):
            total[0] += 2 * mod.in_features * mod.out_features

    hs = [m.register_forward_hook(hook) for m in model.modules()
          if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, *model.in_shape))
    for h in hs:
        h.remove()
    return total[0]


def shapes_data(count, gen):
    """Synthetic shapes (as irmae_shapes_make): black background, one filled circle or square."""
    x = torch.zeros(count, 3, 32, 32)
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    col = torch.rand(count, 3, generator=gen)
    ax = torch.randint(8, 25, (count,), generator=gen)
    ay = torch.randint(8, 25, (count,), generator=gen)
    size = torch.randint(3, 9, (count,), generator=gen)
    kind = torch.randint(0, 2, (count,), generator=gen)
    for i in range(count):
        dx, dy, s = xx - ax[i], yy - ay[i], size[i]
        if kind[i] == 0:
            inside = dx * dx + dy * dy <= s * s
        else:
            inside = (dx >= 0) & (dx < s) & (dy >= 0) & (dy < s)
        x[i] = inside.float().unsqueeze(0) * col[i].view(3, 1, 1)
    return x


def parse_peak(text, threads):
    """'1:98.7,2:197' -> {1: 98.7, 2: 197.0}; '98.7' -> per-thread peak scaled."""
    if not text:
        return None
    peaks = {}
    if ":" in text:
        for part in text.split(","):
            t, v = part.split(":")
            peaks[int(t)] = float(v)
    else:
        for t in threads:
            peaks[t] = float(text) * t
    return peaks


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peak-gflops", default=os.environ.get("IRMAE_BENCH_PEAK", ""),
                    help="'1:P1,2:P2' (GFLOP/s per thread count) or one per-thread number")
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("IRMAE_BENCH_SECONDS", "3")),
                    help="timed seconds per configuration (default 3 or $IRMAE_BENCH_SECONDS)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--batches", default="32,128")
    ap.add_argument("--presets", default="mnist,shapes")
    ap.add_argument("--windows", type=int, default=5)
    args = ap.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    presets = args.presets.split(",")
    peaks = parse_peak(args.peak_gflops, threads)
    conf_l = {"mnist": 8, "shapes": 2}

    print("torch %s, %s; OPENBLAS_NUM_THREADS=%s OPENBLAS_CORETYPE=%s GLIBC_TUNABLES=%s" % (
        torch.__version__, "mkldnn" if torch.backends.mkldnn.is_available() else "no mkldnn",
        os.environ.get("OPENBLAS_NUM_THREADS", "(unset)"), os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
        os.environ.get("GLIBC_TUNABLES", "(unset)")))
    for preset in presets:
        l = conf_l[preset]
        torch.manual_seed(1)
        model = IRMAE(preset, l)
        nparams = sum(p.numel() for p in model.parameters())
        expected = EXPECTED_PARAMS[(preset, l)]
        print("torch params preset=%s l=%d params=%d expected=%d" % (preset, l, nparams, expected))
        assert nparams == expected, "parameter count %d != %d" % (nparams, expected)
        f = forward_flops_per_image(model)
        print("torch flops preset=%s l=%d fwd_mflop_per_img=%.3f train_mflop_per_img=%.3f" % (
            preset, l, f * 1e-6, 3 * f * 1e-6))
        for batch in batches:
            gen = torch.Generator().manual_seed(7)
            pool_n = 4
            if preset == "shapes":
                pool = shapes_data(pool_n * batch, gen)
            else:
                pool = torch.rand(pool_n * batch, 1, 32, 32, generator=gen)
            batches_x = [pool[i * batch:(i + 1) * batch].contiguous() for i in range(pool_n)]
            for t in threads:
                torch.set_num_threads(t)
                torch.manual_seed(1)
                model = IRMAE(preset, l)
                opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8)
                lossf = nn.MSELoss()
                step = [0]

                def train_step():
                    x = batches_x[step[0] % pool_n]
                    step[0] += 1
                    opt.zero_grad(set_to_none=True)
                    loss = lossf(model(x), x)
                    loss.backward()
                    opt.step()
                    return loss

                for _ in range(3):
                    train_step()
                win = args.seconds / args.windows
                ips, ms = [], []
                for _ in range(args.windows):
                    t0 = time.perf_counter()
                    n = 0
                    while True:
                        loss = train_step()
                        n += 1
                        el = time.perf_counter() - t0
                        if el >= win and n >= 2:
                            break
                    ips.append(n * batch / el)
                    ms.append(el / n * 1e3)
                med = statistics.median(ips)
                if peaks and t in peaks:
                    mfu = "%.1f%%" % (100.0 * med * 3 * f / (peaks[t] * 1e9))
                else:
                    mfu = "na"
                print("torch train preset=%s l=%d threads=%d batch=%d img/s=%.1f mfu=%s" % (
                    preset, l, t, batch, med, mfu))
                print("  info: step_ms=%.2f loss=%.5f windows_img/s=%.0f..%.0f" % (
                    statistics.median(ms), float(loss), min(ips), max(ips)))
                sys.stdout.flush()


if __name__ == "__main__":
    main()
