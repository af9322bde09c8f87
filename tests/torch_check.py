#!/usr/bin/env python3
"""PyTorch cross-check of irmae_export_safetensors (used by tests/test_ckpt.c).

  torch_check.py FILE SIDECAR

Builds the PyTorch model described by the safetensors metadata
    encoder = nn.Sequential(one module per encoder layer)
    maps    = nn.Sequential(l x nn.Linear(n, n, bias=False))
    decoder = nn.Sequential(one module per decoder layer, output activation)
    collapsed = nn.Linear(n, n, bias=False)
loads the file's tensors with load_state_dict(strict=True) (so the names and
shapes must be exactly PyTorch's), runs it on the images SIDECAR["x"]
(count x C x H x W float32) and compares with irmae.h's codes SIDECAR["z"]
and reconstructions SIDECAR["y"]: max |torch - irmae| <= 1e-5 * max |irmae|.
Also decodes collapsed(e) and compares with y (1e-4, a different summation order).
The VAE (kind "vae") encodes to [mu | logvar] and decodes mu.
Prints SKIP and exits 0 when torch or numpy is missing; exits 1 on a mismatch.

  torch_check.py --jobs JOBFILE RESULTS
runs one check per line of JOBFILE (FILE<tab>SIDECAR) in one interpreter and
writes one line per job to RESULTS: "ok", "FAIL <what>", or (all lines)
"SKIP: <why>" when torch cannot be imported.
"""
import json
import struct
import sys

try:
    import numpy as np
    import torch
    from torch import nn
    IMPORT_ERROR = None
except ImportError as e:
    IMPORT_ERROR = "%s" % e


def load_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hlen].decode("utf-8"))
    body = data[8 + hlen:]
    meta = header.pop("__metadata__")
    tensors = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", name
        a, b = t["data_offsets"]
        arr = np.frombuffer(body[a:b], dtype="<f4").reshape(t["shape"]).copy()
        tensors[name] = torch.from_numpy(arr)
    return meta, tensors


def module(L):
    t = L["type"]
    if t == "conv":
        return nn.Conv2d(L["in"][0], L["out"][0], L["k"], L["stride"], L["pad"], bias=L["bias"])
    if t == "convT":
        return nn.ConvTranspose2d(L["in"][0], L["out"][0], L["k"], L["stride"], L["pad"], bias=L["bias"])
    if t == "linear":
        return nn.Linear(L["in"][0] * L["in"][1] * L["in"][2], L["out"][0], bias=L["bias"])
    if t == "relu":
        return nn.ReLU()
    if t == "tanh":
        return nn.Tanh()
    if t == "sigmoid":
        return nn.Sigmoid()
    if t == "flatten":
        return nn.Flatten()
    if t == "unflatten":
        return nn.Unflatten(1, tuple(L["shape"]))
    if t == "upsample":
        return nn.Upsample(scale_factor=L["scale"], mode="nearest")
    raise ValueError("unknown layer type %r" % t)


def run(seq, layers, x):
    """Sequential forward, with irmae's implicit reshapes: a conv sees its
    input as C x H x W, a linear layer or an unflatten sees it flat."""
    for mod, L in zip(seq, layers):
        if L["type"] in ("conv", "convT", "upsample"):
            x = x.reshape(x.shape[0], *L["in"])
        elif L["type"] in ("linear", "unflatten"):
            x = x.reshape(x.shape[0], -1)
        x = mod(x)
    return x


def check(st_path, side_path, log):
    """Returns a list of failure messages (empty: ok)."""
    meta, tensors = load_safetensors(st_path)
    with open(side_path) as f:
        side = json.load(f)
    layers = json.loads(meta["layers"])
    n, l, kind = int(meta["n"]), int(meta["l"]), meta["kind"]
    shape = (int(meta["in_c"]), int(meta["in_h"]), int(meta["in_w"]))
    count = int(side["count"])

    model = nn.Module()
    model.encoder = nn.Sequential(*[module(L) for L in layers["encoder"]])
    model.maps = nn.Sequential(*[nn.Linear(n, n, bias=False) for _ in range(l)])
    model.decoder = nn.Sequential(*[module(L) for L in layers["decoder"]])
    model.collapsed = nn.Linear(n, n, bias=False)
    model.load_state_dict(tensors, strict=True)  # raises on any missing / unexpected / misshapen tensor

    torch.set_num_threads(1)
    x = torch.from_numpy(np.fromfile(side["x"], dtype="<f4").reshape(count, *shape).copy())
    y_c = np.fromfile(side["y"], dtype="<f4").reshape(count, *shape)
    z_c = np.fromfile(side["z"], dtype="<f4").reshape(count, n)
    with torch.no_grad():
        e = run(model.encoder, layers["encoder"], x).reshape(count, -1)
        if kind == "vae":
            e = e[:, :n]
            z = e
        else:
            z = model.maps(e)
        y = run(model.decoder, layers["decoder"], z).reshape(count, *shape)
        y2 = run(model.decoder, layers["decoder"], model.collapsed(e)).reshape(count, *shape)
    fails = []
    errs = []

    def compare(what, got, want, tol):
        got = got.numpy().astype(np.float64)
        want = want.astype(np.float64)
        scale = max(float(np.max(np.abs(want))), 1e-30)
        err = float(np.max(np.abs(got - want))) / scale
        errs.append("%s %.2g" % (what, err))
        if not (err <= tol and np.all(np.isfinite(got))):
            fails.append("%s: max |torch - irmae| / max |irmae| = %.3g > %.0e" % (what, err, tol))

    compare("z", z, z_c, 1e-5)
    compare("y", y, y_c, 1e-5)
    compare("collapsed", y2, y_c, 1e-4)
    log("torch_check: %s (%d images, n %d, l %d, %s): %s -> %s" %
        (st_path.rsplit("/", 1)[-1], count, n, l, kind, ", ".join(errs), "FAIL" if fails else "ok"))
    return fails


def main(argv):
    if len(argv) == 4 and argv[1] == "--jobs":
        with open(argv[2]) as f:
            jobs = [line.rstrip("\n").split("\t") for line in f if line.strip()]
        bad = 0
        with open(argv[3], "w") as out:
            for job in jobs:
                if IMPORT_ERROR:
                    out.write("SKIP: torch_check.py: %s\n" % IMPORT_ERROR)
                    continue
                logged = []
                try:
                    fails = check(job[0], job[1], logged.append)
                except Exception as e:
                    fails = ["%s: %s" % (type(e).__name__, e)]
                bad += bool(fails)
                out.write("ok %s\n" % "".join(logged) if not fails else "FAIL %s\n" % "; ".join(fails).replace("\n", " "))
        return 1 if bad else 0
    if len(argv) != 3:
        print(__doc__)
        return 2
    if IMPORT_ERROR:
        print("SKIP: torch_check.py: %s" % IMPORT_ERROR)
        return 0
    fails = check(argv[1], argv[2], print)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
