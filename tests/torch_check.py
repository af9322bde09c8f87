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
   (a job line "train FILE SIDECAR PREFIX" runs train_and_save: PyTorch
   trains the exported model and saves it for the import test)
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


def build(meta, tensors):
    """The PyTorch model a safetensors export describes, with its weights."""
    layers = json.loads(meta["layers"])
    n, l = int(meta["n"]), int(meta["l"])
    model = nn.Module()
    model.encoder = nn.Sequential(*[module(L) for L in layers["encoder"]])
    model.maps = nn.Sequential(*[nn.Linear(n, n, bias=False) for _ in range(l)])
    model.decoder = nn.Sequential(*[module(L) for L in layers["decoder"]])
    model.collapsed = nn.Linear(n, n, bias=False)
    model.load_state_dict(tensors, strict=True)  # raises on any missing / unexpected / misshapen tensor
    return model, layers


def forward(model, layers, meta, x):
    """Codes z (the VAE: the mean) and reconstructions y of x."""
    n, count = int(meta["n"]), x.shape[0]
    e = run(model.encoder, layers["encoder"], x).reshape(count, -1)
    z = e[:, :n] if meta["kind"] == "vae" else model.maps(e)
    y = run(model.decoder, layers["decoder"], z)
    return z, y.reshape(x.shape)


def save_safetensors(path, tensors, dtype, meta):
    """A plain safetensors writer (Debian has no safetensors package): the
    8-byte header length, the JSON header padded with spaces to a multiple of
    8, the tensors little-endian in order."""
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous().cpu()
        if dtype == "F32":
            b = t.float().numpy().astype("<f4").tobytes()
        elif dtype == "F16":
            b = t.half().numpy().astype("<f2").tobytes()
        else:
            b = t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def train_and_save(st_path, side_path, prefix, log):
    """PyTorch's side of the import test: loads irmae's export, re-saves it
    untouched (PREFIX.rt.safetensors: irmae -> PyTorch -> irmae must give the
    same bytes), trains it 5 Adam steps (MSE of the reconstructions), and
    saves the trained weights as F32, F16 and BF16 (PREFIX.<dtype>.safetensors,
    the export's metadata copied, so the files describe their model) with the
    codes and outputs of the weights as stored (PREFIX.<dtype>.z / .y, float32)."""
    meta, tensors = load_safetensors(st_path)
    with open(side_path) as f:
        side = json.load(f)
    count = int(side["count"])
    shape = (int(meta["in_c"]), int(meta["in_h"]), int(meta["in_w"]))
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model, layers = build(meta, tensors)
    save_safetensors(prefix + ".rt.safetensors", model.state_dict(), "F32", meta)
    x = torch.from_numpy(np.fromfile(side["x"], dtype="<f4").reshape(count, *shape).copy())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(5):
        opt.zero_grad()
        _, y = forward(model, layers, meta, x)
        loss = ((y - x) ** 2).mean()
        loss.backward()
        opt.step()
    state = {k: v for k, v in model.state_dict().items() if k != "collapsed.weight"}
    for dtype in ("F32", "F16", "BF16"):
        save_safetensors("%s.%s.safetensors" % (prefix, dtype), state, dtype, meta)
        cast = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[dtype]
        stored = {k: v.to(cast).float() for k, v in state.items()}
        stored["collapsed.weight"] = model.collapsed.weight.detach()
        m2, _ = build(meta, stored)
        with torch.no_grad():
            z, y = forward(m2, layers, meta, x)
        z.numpy().astype("<f4").tofile("%s.%s.z" % (prefix, dtype))
        y.numpy().astype("<f4").tofile("%s.%s.y" % (prefix, dtype))
    log("torch_check: trained %s 5 steps (loss %.4f), saved F32/F16/BF16 -> ok" % (st_path.rsplit("/", 1)[-1], float(loss)))
    return []


def check(st_path, side_path, log):
    """Returns a list of failure messages (empty: ok)."""
    meta, tensors = load_safetensors(st_path)
    with open(side_path) as f:
        side = json.load(f)
    n, l, kind = int(meta["n"]), int(meta["l"]), meta["kind"]
    shape = (int(meta["in_c"]), int(meta["in_h"]), int(meta["in_w"]))
    count = int(side["count"])
    model, layers = build(meta, tensors)

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
                    if job[0] == "train":
                        fails = train_and_save(job[1], job[2], job[3], logged.append)
                    else:
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
