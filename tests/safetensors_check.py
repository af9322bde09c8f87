#!/usr/bin/env python3
"""Independent checks of irmae.h's files, written from the format descriptions
(not from the C code). Used by tests/test_ckpt.c; needs numpy.

  safetensors_check.py st FILE SIDECAR RAW
      FILE is a safetensors file written by irmae_export_safetensors. Checks the
      8-byte little-endian header length, that the header is a multiple of 8
      bytes, JSON, padded with spaces only; __metadata__ (all strings; n, l,
      kind as in SIDECAR; "layers" is JSON text with encoder/decoder lists);
      the tensors: exactly the names of SIDECAR["tensors"] in that order, with
      those shapes, dtype F32, data_offsets contiguous from 0 and covering the
      rest of the file exactly; every value bit-equal to RAW (the C test's
      float32 dump of the same tensors in the same order); collapsed.weight
      equal to W_l ... W_1 from the maps.<j>.weight tensors (identity for l = 0).
  safetensors_check.py ckpt FILE RAW
      FILE is an irmae checkpoint (irmae_checkpoint_save). Walks the format:
      magic, version 1, 5 sections CONF TRST PARM ADMM ADMV, each CRC-32
      (zlib.crc32) over tag + length + payload, the header CRC, no trailing
      bytes, the stored parameter count; PARM bit-equal to the first values of
      RAW (parameter order = encoder, maps, decoder).
  safetensors_check.py npy FILE RAW ROWS COLS
      FILE is a .npy written by irmae_npy_write: numpy.load (allow_pickle off)
      gives a C-ordered float32 array of shape (ROWS, COLS) (COLS 0: (ROWS,))
      bit-equal to RAW, and the data starts at a multiple of 64 bytes.
  safetensors_check.py --jobs JOBFILE RESULTS
      Runs one job per line of JOBFILE (the arguments above, tab-separated)
      and writes one line per job to RESULTS: "ok" or "FAIL <what>".
Exits 0 when every check passes, 1 otherwise (printing what failed).
"""
import json
import struct
import sys
import zlib

try:
    import numpy as np
except ImportError:  # the C test checks for numpy first
    print("SKIP: safetensors_check.py: numpy missing")
    sys.exit(0)

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
    return cond


def read(path):
    with open(path, "rb") as f:
        return f.read()


def check_safetensors(path, sidecar_path, raw_path):
    data = read(path)
    side = json.loads(read(sidecar_path).decode("utf-8"))
    raw = np.frombuffer(read(raw_path), dtype="<f4")
    if not check(len(data) >= 8, "file shorter than 8 bytes"):
        return
    (hlen,) = struct.unpack("<Q", data[:8])
    check(hlen % 8 == 0, "header length %d not a multiple of 8" % hlen)
    if not check(8 + hlen <= len(data), "header length %d beyond the file (%d bytes)" % (hlen, len(data))):
        return
    text = data[8:8 + hlen].decode("utf-8")
    stripped = text.rstrip(" ")
    check(stripped.endswith("}"), "header does not end with '}' before the padding")
    check(len(text) - len(stripped) < 8, "more than 7 padding spaces")
    header = json.loads(text, object_pairs_hook=lambda pairs: pairs)  # keep order and duplicates
    keys = [k for k, _ in header]
    check(len(keys) == len(set(keys)), "duplicate keys in the header")
    header_d = dict(header)
    meta = dict(header_d.get("__metadata__", []))
    check(keys and keys[0] == "__metadata__", "__metadata__ is not the first entry")
    check(all(isinstance(v, str) for v in meta.values()), "metadata values must be strings")
    for k in ("n", "l", "kind"):
        check(meta.get(k) == side[k], "metadata %s = %r, expected %r" % (k, meta.get(k), side[k]))
    try:
        layers = json.loads(meta.get("layers", ""))
        check(isinstance(layers.get("encoder"), list) and isinstance(layers.get("decoder"), list),
              "layers: no encoder/decoder lists")
        for part in ("encoder", "decoder"):
            for i, L in enumerate(layers[part]):
                check("type" in L and "in" in L and "out" in L, "layers %s[%d] incomplete: %r" % (part, i, L))
    except (ValueError, AttributeError) as e:
        check(False, "metadata 'layers' is not JSON: %s" % e)
    names = [k for k in keys if k != "__metadata__"]
    want = [t[0] for t in side["tensors"]]
    check(names == want, "tensor names/order differ:\n  got  %s\n  want %s" % (names, want))
    off = 0
    tensors = {}
    body = data[8 + hlen:]
    for name, shape in side["tensors"]:
        if name not in header_d:
            continue
        t = dict(header_d[name])
        check(t.get("dtype") == "F32", "%s dtype %r" % (name, t.get("dtype")))
        check(list(t.get("shape", [])) == list(shape), "%s shape %r, expected %r" % (name, t.get("shape"), shape))
        a, b = t.get("data_offsets", [None, None])
        count = int(np.prod(shape)) if shape else 1
        check(a == off and b == off + 4 * count, "%s data_offsets %r, expected [%d, %d]" % (name, [a, b], off, off + 4 * count))
        if a is not None and b is not None and 0 <= a <= b <= len(body):
            tensors[name] = np.frombuffer(body[a:b], dtype="<f4").reshape(shape)
        off += 4 * count
    check(off == len(body), "tensor data is %d bytes, the file has %d after the header" % (off, len(body)))
    check(raw.size * 4 == off, "raw dump has %d values, the tensors %d" % (raw.size, off // 4))
    if raw.size * 4 == off and off == len(body):
        got = np.frombuffer(body, dtype="<u4")
        exp = raw.view("<u4")
        bad = int(np.count_nonzero(got != exp))
        check(bad == 0, "%d of %d values differ from the raw dump (first at %d)" %
              (bad, got.size, int(np.argmax(got != exp)) if bad else -1))
    n, l = int(side["n"]), int(side["l"])
    if "collapsed.weight" in tensors:
        w = np.eye(n, dtype=np.float64)
        for j in range(l):
            w = tensors["maps.%d.weight" % j].astype(np.float64) @ w
        c = tensors["collapsed.weight"].astype(np.float64)
        err = float(np.max(np.abs(c - w))) / max(1.0, float(np.max(np.abs(w))))
        check(err < 1e-5, "collapsed.weight differs from W_l ... W_1 by %.3g (relative)" % err)


def check_checkpoint(path, raw_path):
    data = read(path)
    raw = np.frombuffer(read(raw_path), dtype="<f4")
    if not check(len(data) >= 20 and data[:8] == b"IRMAECKP", "magic"):
        return
    version, count, hcrc = struct.unpack("<III", data[8:20])
    check(version == 1, "version %d" % version)
    check(count == 5, "section count %d" % count)
    check(hcrc == zlib.crc32(data[:16]) & 0xFFFFFFFF, "header CRC")
    pos = 20
    sections = {}
    for tag in (b"CONF", b"TRST", b"PARM", b"ADMM", b"ADMV"):
        if not check(pos + 12 <= len(data), "file ends before section %s" % tag):
            return
        check(data[pos:pos + 4] == tag, "section %r at %d, expected %r" % (data[pos:pos + 4], pos, tag))
        (length,) = struct.unpack("<Q", data[pos + 4:pos + 12])
        end = pos + 12 + length
        if not check(end + 4 <= len(data), "section %s overruns the file" % tag):
            return
        (crc,) = struct.unpack("<I", data[end:end + 4])
        check(crc == zlib.crc32(data[pos:end]) & 0xFFFFFFFF, "CRC of section %s" % tag)
        sections[tag] = data[pos + 12:end]
        pos = end + 4
    check(pos == len(data), "%d bytes after the last section" % (len(data) - pos))
    conf = sections[b"CONF"]
    n_enc, n_dec = struct.unpack("<ii", conf[68:76])  # after 9 i32 and 8 f32
    check(len(conf) == 76 + 36 * (n_enc + n_dec) + 8, "CONF length %d for %d + %d layers" % (len(conf), n_enc, n_dec))
    (n_params,) = struct.unpack("<Q", conf[-8:])
    check(len(sections[b"TRST"]) == 88, "TRST length")
    for tag in (b"PARM", b"ADMM", b"ADMV"):
        check(len(sections[tag]) == 4 * n_params, "%s has %d bytes for %d parameters" % (tag, len(sections[tag]), n_params))
    step = struct.unpack("<q", sections[b"TRST"][:8])[0]
    check(step > 0, "Adam step %d (the test trains before saving)" % step)
    v = np.frombuffer(sections[b"ADMV"], dtype="<f4")
    check(bool(np.all(v >= 0)), "Adam v has negative values")
    if check(raw.size >= n_params, "raw dump has %d values, %d parameters" % (raw.size, n_params)):
        got = np.frombuffer(sections[b"PARM"], dtype="<u4")
        bad = int(np.count_nonzero(got != raw[:n_params].view("<u4")))
        check(bad == 0, "%d of %d parameters differ from the raw dump" % (bad, n_params))


def check_npy(path, raw_path, rows, cols):
    a = np.load(path, allow_pickle=False)
    want = (rows,) if cols == 0 else (rows, cols)
    check(a.dtype == np.dtype("<f4"), "npy dtype %s" % a.dtype)
    check(a.shape == want, "npy shape %r, expected %r" % (a.shape, want))
    check(a.flags["C_CONTIGUOUS"], "npy is not C ordered")
    raw = np.frombuffer(read(raw_path), dtype="<f4")
    if a.size == raw.size:
        bad = int(np.count_nonzero(a.reshape(-1).view("<u4") != raw.view("<u4")))
        check(bad == 0, "npy: %d of %d values differ from the raw dump" % (bad, raw.size))
    else:
        check(False, "npy has %d values, the raw dump %d" % (a.size, raw.size))
    data = read(path)
    hlen = struct.unpack("<H", data[8:10])[0]
    check((10 + hlen) % 64 == 0, "npy data starts at %d, not a multiple of 64" % (10 + hlen))


def run_job(args):
    del failures[:]
    try:
        if len(args) == 4 and args[0] == "st":
            check_safetensors(args[1], args[2], args[3])
        elif len(args) == 3 and args[0] == "ckpt":
            check_checkpoint(args[1], args[2])
        elif len(args) == 5 and args[0] == "npy":
            check_npy(args[1], args[2], int(args[3]), int(args[4]))
        else:
            failures.append("bad job %r" % (args,))
    except Exception as e:  # a malformed file must fail the job, not the run
        failures.append("%s: %s" % (type(e).__name__, e))
    return list(failures)


def main(argv):
    if len(argv) == 4 and argv[1] == "--jobs":
        with open(argv[2]) as f:
            jobs = [line.rstrip("\n").split("\t") for line in f if line.strip()]
        bad = 0
        with open(argv[3], "w") as out:
            for job in jobs:
                fails = run_job(job)
                bad += bool(fails)
                out.write("ok\n" if not fails else "FAIL %s\n" % "; ".join(fails).replace("\n", " "))
        return 1 if bad else 0
    if len(argv) < 2:
        print(__doc__)
        return 2
    fails = run_job(argv[1:])
    for f in fails:
        print("safetensors_check: FAIL %s" % f)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
