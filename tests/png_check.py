#!/usr/bin/env python3
"""Independent checker for irmae.h's PNG and zlib writers (used by tests/test_pngw.c).

Usage:
  png_check.py <file.png> <file.raw> <w> <h> <c>   decode the PNG with pypng, require
                                                   w x h, c planes, bit depth 8, and the
                                                   pixels equal to file.raw byte for byte
  png_check.py zlib <file.z> <file.raw>            zlib.decompress(file.z) == file.raw, with
                                                   nothing after the stream
  png_check.py zsize <file.raw> <level>            print len(zlib.compress(raw, level))
  png_check.py batch <manifest>                    one of the above per manifest line (same
                                                   arguments, png lines start with "png");
                                                   prints "<line> OK [value]" or
                                                   "<line> FAIL <why>" per line

Exit status: 0 all equal, 1 a mismatch, 2 bad usage or a missing module.
"""
import sys
import zlib


def first_diff(a, b):
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def check_png(png_path, raw_path, w, h, c):
    """Returns None when equal, else a reason."""
    import png  # pypng
    with open(raw_path, "rb") as f:
        raw = f.read()
    try:
        width, height, pixels, info = png.Reader(filename=png_path).read_flat()
    except Exception as e:  # pypng raises FormatError, ChunkError, ...
        return "pypng cannot decode: %s" % e
    if (width, height) != (w, h):
        return "size %dx%d, expected %dx%d" % (width, height, w, h)
    if info.get("bitdepth") != 8:
        return "bit depth %s" % info.get("bitdepth")
    if info.get("planes") != c:
        return "%s planes, expected %d" % (info.get("planes"), c)
    if info.get("palette"):
        return "has a palette"
    if bool(info.get("greyscale")) != (c <= 2) or bool(info.get("alpha")) != (c in (2, 4)):
        return "colour type greyscale=%s alpha=%s for c=%d" % (info.get("greyscale"), info.get("alpha"), c)
    data = bytes(bytearray(pixels))
    if data != raw:
        return "pixels differ at byte %d (%d decoded, %d expected)" % (first_diff(data, raw), len(data), len(raw))
    return None


def check_zlib(z_path, raw_path):
    with open(z_path, "rb") as f:
        z = f.read()
    with open(raw_path, "rb") as f:
        raw = f.read()
    d = zlib.decompressobj()
    try:
        out = d.decompress(z) + d.flush()
    except zlib.error as e:
        return "zlib error: %s" % e
    if not d.eof:
        return "stream not terminated"
    if d.unused_data:
        return "%d bytes after the stream" % len(d.unused_data)
    if out != raw:
        return "data differ at byte %d (%d decoded, %d expected)" % (first_diff(out, raw), len(out), len(raw))
    return None


def zsize(raw_path, level):
    with open(raw_path, "rb") as f:
        return len(zlib.compress(f.read(), level))


def run(args):
    """Returns (ok, value_or_reason)."""
    if args[0] == "zlib" and len(args) == 3:
        r = check_zlib(args[1], args[2])
        return (r is None, r or "")
    if args[0] == "zsize" and len(args) == 3:
        return (True, str(zsize(args[1], int(args[2]))))
    if args[0] == "png" and len(args) == 6:
        args = args[1:]
    if len(args) == 5:
        r = check_png(args[0], args[1], int(args[2]), int(args[3]), int(args[4]))
        return (r is None, r or "")
    raise ValueError("bad arguments: %r" % (args,))


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    try:
        import png  # noqa: F401  (fail early when pypng is missing)
    except ImportError:
        sys.stderr.write("png_check.py: the pypng module is missing\n")
        return 2
    if argv[1] == "batch" and len(argv) == 3:
        bad = 0
        with open(argv[2]) as f:
            lines = [ln.split() for ln in f if ln.strip()]
        for i, a in enumerate(lines):
            try:
                ok, msg = run(a)
            except Exception as e:
                ok, msg = False, "exception %s" % e
            print("%d %s %s" % (i, "OK" if ok else "FAIL", msg))
            bad += not ok
        return 1 if bad else 0
    try:
        ok, msg = run(argv[1:])
    except ValueError as e:
        sys.stderr.write("png_check.py: %s\n" % e)
        return 2
    if ok:
        if msg:
            print(msg)
        return 0
    print("MISMATCH: %s" % msg)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
