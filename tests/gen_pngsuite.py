#!/usr/bin/python3
"""Test PNGs (and other loader test data) for irmae.h's decoders.

  gen_pngsuite.py OUTDIR
      Writes OUTDIR/manifest.txt and, for every colour type x valid bit
      depth x interlace (0/1) x size (x tRNS where allowed), a PNG with random
      pixels, plus the pixels the decoder must return, computed here from the
      samples (not from the PNG bytes):
        NAME.w0.raw   the file's own channels (see irmae_png_decode)
        NAME.wK.raw   converted to K = 1, 2, 3, 4 channels
      manifest.txt has one line per PNG: "NAME W H C0" (C0 = channels of w0).
      Two encoders make the files: pypng (png.Writer chooses its own filter)
      and a small writer below (zlib + struct) that forces each of the five
      filter types, or a random filter per row, splits IDAT at random places
      and adds ancillary chunks the decoder must skip.

  gen_pngsuite.py --data DIR [--mnist MNISTDIR]
      Writes the small files committed under tests/data: a handful of PNGs
      with their w0/w4 raws and pngs.txt, gzip/zlib files, and (when the
      MNIST folder is given) the first 100 training images and labels as
      gzipped IDX files. Prints CRC-32s that tests/test_loaders.c checks.

Needs Debian's python3 with pypng (import png). Deterministic (fixed seeds).
"""
import gzip
import os
import random
import struct
import sys
import zlib

import png  # pypng

ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4),
         (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
NSAMP = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}


# ---------------------------------------------------------------- images --

class Img:
    """Samples of one PNG: rows[y][x] is a tuple of NSAMP[ctype] ints."""

    def __init__(self, w, h, ctype, depth, rows, palette=None, trns=None):
        self.w, self.h, self.ctype, self.depth = w, h, ctype, depth
        self.rows, self.palette, self.trns = rows, palette, trns
        # palette: list of (r,g,b); trns: list of palette alphas (ctype 3)
        # or a key tuple (ctype 0: (g,), ctype 2: (r,g,b))


def random_img(rnd, w, h, ctype, depth, with_trns):
    maxv = (1 << depth) - 1
    ns = NSAMP[ctype]
    palette = trns = None
    if ctype == 3:
        npal = rnd.randint(1, 1 << depth)
        palette = [tuple(rnd.randint(0, 255) for _ in range(3)) for _ in range(npal)]
        rows = [[(rnd.randint(0, npal - 1),) for _ in range(w)] for _ in range(h)]
        if with_trns:
            trns = [rnd.randint(0, 255) for _ in range(rnd.randint(1, npal))]
    else:
        rows = [[tuple(rnd.randint(0, maxv) for _ in range(ns)) for _ in range(w)] for _ in range(h)]
        if with_trns:
            # the key is a colour that occurs, and about a fifth of the pixels get it
            key = rows[rnd.randrange(h)][rnd.randrange(w)]
            for y in range(h):
                for x in range(w):
                    if rnd.random() < 0.2:
                        rows[y][x] = key
            trns = key
    return Img(w, h, ctype, depth, rows, palette, trns)


def to8(v, depth):
    if depth == 16:
        return (v * 255 + 32767) // 65535
    return v * 255 // ((1 << depth) - 1)


def expected(img, want):
    """(channels, bytes) the decoder must return for want_channels."""
    out_rgba = []
    grey_src = img.ctype in (0, 4)
    for y in range(img.h):
        for x in range(img.w):
            s = img.rows[y][x]
            if img.ctype == 0:
                g = to8(s[0], img.depth)
                a = 0 if (img.trns is not None and s == tuple(img.trns)) else 255
                px = (g, g, g, a)
            elif img.ctype == 2:
                a = 0 if (img.trns is not None and s == tuple(img.trns)) else 255
                px = (to8(s[0], img.depth), to8(s[1], img.depth), to8(s[2], img.depth), a)
            elif img.ctype == 3:
                r, g, b = img.palette[s[0]]
                a = img.trns[s[0]] if (img.trns is not None and s[0] < len(img.trns)) else 255
                px = (r, g, b, a)
            elif img.ctype == 4:
                g = to8(s[0], img.depth)
                px = (g, g, g, to8(s[1], img.depth))
            else:
                px = tuple(to8(v, img.depth) for v in s)
            out_rgba.append(px)
    c = want
    if c == 0:
        c = {0: 2 if img.trns is not None else 1, 4: 2, 6: 4}.get(
            img.ctype, 4 if img.trns is not None else 3)
    out = bytearray()
    for (r, g, b, a) in out_rgba:
        grey = r if grey_src else (77 * r + 150 * g + 29 * b + 128) >> 8
        if c == 1:
            out += bytes((grey,))
        elif c == 2:
            out += bytes((grey, a))
        elif c == 3:
            out += bytes((r, g, b))
        else:
            out += bytes((r, g, b, a))
    return c, bytes(out)


# ------------------------------------------------------- pypng encoder --

def write_pypng(path, img, interlace):
    kw = dict(bitdepth=img.depth, interlace=bool(interlace))
    if img.ctype == 3:
        pal = []
        for i, (r, g, b) in enumerate(img.palette):
            if img.trns is not None and i < len(img.trns):
                pal.append((r, g, b, img.trns[i]))
            else:
                pal.append((r, g, b))
        kw['palette'] = pal
    else:
        kw['greyscale'] = img.ctype in (0, 4)
        kw['alpha'] = img.ctype in (4, 6)
        if img.trns is not None:
            kw['transparent'] = img.trns[0] if img.ctype == 0 else tuple(img.trns)
    w = png.Writer(img.w, img.h, **kw)
    flat = [[v for px in row for v in px] for row in img.rows]
    with open(path, 'wb') as f:
        w.write(f, flat)


# ------------------------------------------------------------ own encoder --

def chunk(typ, data):
    return (struct.pack('>I', len(data)) + typ + data +
            struct.pack('>I', zlib.crc32(typ + data) & 0xFFFFFFFF))


def pack_row(img, xs, y):
    """Bytes of the pixels xs of row y (no filter byte)."""
    d = img.depth
    samples = [v for x in xs for v in img.rows[y][x]]
    if d == 8:
        return bytes(samples)
    if d == 16:
        return b''.join(struct.pack('>H', v) for v in samples)
    out = bytearray()
    acc = nbits = 0
    for v in samples:
        acc = (acc << d) | v
        nbits += d
        if nbits == 8:
            out.append(acc)
            acc = nbits = 0
    if nbits:
        out.append(acc << (8 - nbits))
    return bytes(out)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_row(ft, x, prior, bpp):
    out = bytearray(len(x))
    for i in range(len(x)):
        a = x[i - bpp] if i >= bpp else 0
        b = prior[i] if prior is not None else 0
        c = prior[i - bpp] if (prior is not None and i >= bpp) else 0
        pred = [0, a, b, (a + b) >> 1, paeth(a, b, c)][ft]
        out[i] = (x[i] - pred) & 255
    return bytes([ft]) + bytes(out)


def write_own(path, img, interlace, filt, rnd, level=6, extras=True):
    """filt: 0..4 forces that filter on every row, -1 picks one per row."""
    bpp = max(1, NSAMP[img.ctype] * img.depth // 8)
    passes = ADAM7 if interlace else [(0, 0, 1, 1)]
    raw = bytearray()
    for (x0, y0, dx, dy) in passes:
        xs = list(range(x0, img.w, dx))
        ys = list(range(y0, img.h, dy))
        if not xs or not ys:
            continue
        prior = None
        for y in ys:
            row = pack_row(img, xs, y)
            ft = filt if filt >= 0 else rnd.randint(0, 4)
            raw += filter_row(ft, row, prior, bpp)
            prior = row
    z = zlib.compress(bytes(raw), level)
    out = bytearray(b'\x89PNG\r\n\x1a\n')
    out += chunk(b'IHDR', struct.pack('>IIBBBBB', img.w, img.h, img.depth, img.ctype, 0, 0, interlace))
    if extras:
        out += chunk(b'gAMA', struct.pack('>I', 45455))
        out += chunk(b'tEXt', b'Comment\x00irmae test')
    if img.ctype == 3:
        out += chunk(b'PLTE', b''.join(bytes(p) for p in img.palette))
    if img.trns is not None:
        if img.ctype == 3:
            out += chunk(b'tRNS', bytes(img.trns))
        else:
            out += chunk(b'tRNS', b''.join(struct.pack('>H', v) for v in img.trns))
    if extras:
        out += chunk(b'prVt', b'private ancillary chunk')
    # IDAT split at random places (some empty chunks too)
    cuts = sorted(rnd.randint(0, len(z)) for _ in range(rnd.randint(0, 3)))
    prev = 0
    for c in cuts + [len(z)]:
        out += chunk(b'IDAT', z[prev:c])
        prev = c
    if extras:
        out += chunk(b'tIME', struct.pack('>HBBBBB', 2026, 1, 2, 3, 4, 5))
    out += chunk(b'IEND', b'')
    with open(path, 'wb') as f:
        f.write(out)


# ------------------------------------------------------------------ suite --

def emit(outdir, name, img, manifest, wants=(0, 1, 2, 3, 4)):
    w0 = None
    for want in wants:
        c, data = expected(img, want)
        if want == 0:
            w0 = c
        with open(os.path.join(outdir, '%s.w%d.raw' % (name, want)), 'wb') as f:
            f.write(data)
    manifest.append('%s %d %d %d' % (name, img.w, img.h, w0))


def suite(outdir):
    os.makedirs(outdir, exist_ok=True)
    rnd = random.Random(20260101)
    manifest = []
    sizes = [(1, 1), (7, 3), (33, 17)]
    for ctype in (0, 2, 3, 4, 6):
        for depth in DEPTHS[ctype]:
            for trns in ((False, True) if ctype in (0, 2, 3) else (False,)):
                for interlace in (0, 1):
                    for (w, h) in sizes:
                        img = random_img(rnd, w, h, ctype, depth, trns)
                        name = 'py_c%d_d%d_t%d_i%d_%dx%d' % (ctype, depth, trns, interlace, w, h)
                        write_pypng(os.path.join(outdir, name + '.png'), img, interlace)
                        emit(outdir, name, img, manifest)
                # own writer: a random filter per row, odd sizes, random level
                for interlace in (0, 1):
                    w, h = rnd.randint(1, 40), rnd.randint(1, 20)
                    img = random_img(rnd, w, h, ctype, depth, trns)
                    name = 'own_c%d_d%d_t%d_i%d_mixed' % (ctype, depth, trns, interlace)
                    write_own(os.path.join(outdir, name + '.png'), img, interlace, -1, rnd,
                              level=rnd.randint(0, 9))
                    emit(outdir, name, img, manifest)
    # each filter type forced on every row, for a few formats
    for (ctype, depth, trns) in ((6, 8, False), (0, 1, False), (2, 16, True), (3, 4, True), (4, 8, False)):
        for filt in range(5):
            for interlace in (0, 1):
                img = random_img(rnd, 13, 11, ctype, depth, trns)
                name = 'own_c%d_d%d_f%d_i%d' % (ctype, depth, filt, interlace)
                write_own(os.path.join(outdir, name + '.png'), img, interlace, filt, rnd)
                emit(outdir, name, img, manifest)
    # a larger smooth image (long matches, dynamic Huffman), RGBA 8
    w, h = 200, 150
    rows = [[((x * 255) // w, (y * 255) // h, ((x + y) * 3) & 255, 255 - (x ^ y) % 256) for x in range(w)]
            for y in range(h)]
    img = Img(w, h, 6, 8, rows)
    write_own(os.path.join(outdir, 'own_big_rgba.png'), img, 0, -1, rnd, level=9)
    emit(outdir, 'own_big_rgba', img, manifest)
    with open(os.path.join(outdir, 'manifest.txt'), 'w') as f:
        f.write('\n'.join(manifest) + '\n')
    print('gen_pngsuite: %d PNGs in %s' % (len(manifest), outdir))


# ------------------------------------------------------- committed data --

def lines_text(n):
    """Must match lines_text() in test_loaders.c."""
    return ''.join('line %d: the quick brown fox jumps over %d lazy dogs\n' % (i, i * i % 97)
                   for i in range(n)).encode()


def gz_member(data, name=None, comment=None, extra=None, hcrc=False, level=9):
    flg = (4 if extra is not None else 0) | (8 if name else 0) | (16 if comment else 0) | (2 if hcrc else 0)
    hdr = bytearray(b'\x1f\x8b\x08' + bytes([flg]) + struct.pack('<I', 0) + b'\x02\x03')
    if extra is not None:
        hdr += struct.pack('<H', len(extra)) + extra
    if name:
        hdr += name + b'\x00'
    if comment:
        hdr += comment + b'\x00'
    if hcrc:
        hdr += struct.pack('<H', zlib.crc32(bytes(hdr)) & 0xFFFF)
    co = zlib.compressobj(level, zlib.DEFLATED, -15)
    body = co.compress(data) + co.flush()
    return bytes(hdr) + body + struct.pack('<II', zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)


def data_files(outdir, mnist):
    os.makedirs(outdir, exist_ok=True)
    rnd = random.Random(7)
    manifest = []
    picks = [('p_rgba8_i', 6, 8, False, 1, 7, 5, 'own'),
             ('p_pal2_trns', 3, 2, True, 0, 9, 4, 'py'),
             ('p_grey16', 0, 16, False, 0, 5, 3, 'own'),
             ('p_grey1_trns_i', 0, 1, True, 1, 11, 6, 'own'),
             ('p_rgb16_trns_i', 2, 16, True, 1, 4, 4, 'py'),
             ('p_ga8', 4, 8, False, 0, 3, 2, 'own')]
    for (name, ctype, depth, trns, interlace, w, h, enc) in picks:
        img = random_img(rnd, w, h, ctype, depth, trns)
        path = os.path.join(outdir, name + '.png')
        if enc == 'py':
            write_pypng(path, img, interlace)
        else:
            write_own(path, img, interlace, -1, rnd)
        emit(outdir, name, img, manifest, wants=(0, 4))
    with open(os.path.join(outdir, 'pngs.txt'), 'w') as f:
        f.write('\n'.join(manifest) + '\n')
    # gzip / zlib
    text = lines_text(200)
    with open(os.path.join(outdir, 'lines200.gz'), 'wb') as f:
        f.write(gzip.compress(text, 9, mtime=0))
    with open(os.path.join(outdir, 'lines200.zz'), 'wb') as f:
        f.write(zlib.compress(text, 9))
    multi = (gz_member(b'first member\n', level=1) +
             gz_member(lines_text(50), name=b'lines50.txt', comment=b'a comment', extra=b'ab\x04\x00wxyz',
                       hcrc=True) +
             gz_member(b'', name=b'empty') + b'\x00' * 5)
    with open(os.path.join(outdir, 'multi.gz'), 'wb') as f:
        f.write(multi)
    if mnist:
        for (src, dst, hdr) in (('train-images-idx3-ubyte.gz', 'mnist100-images-idx3-ubyte.gz', 16),
                                ('train-labels-idx1-ubyte.gz', 'mnist100-labels-idx1-ubyte.gz', 8)):
            with gzip.open(os.path.join(mnist, src), 'rb') as f:
                raw = f.read()
            if hdr == 16:
                body = raw[16:16 + 100 * 784]
                out = struct.pack('>IIII', 0x803, 100, 28, 28) + body
            else:
                body = raw[8:8 + 100]
                out = struct.pack('>II', 0x801, 100) + body
                hist = [0] * 10
                for b in body:
                    hist[b] += 1
                print('labels histogram of the first 100:', hist)
            with open(os.path.join(outdir, dst), 'wb') as f:
                f.write(gzip.compress(out, 9, mtime=0))
            print('%s: payload crc32 0x%08x' % (dst, zlib.crc32(body) & 0xFFFFFFFF))
    print('gen_pngsuite: data files in %s' % outdir)


def main(argv):
    if len(argv) >= 3 and argv[1] == '--data':
        mnist = argv[argv.index('--mnist') + 1] if '--mnist' in argv else None
        data_files(argv[2], mnist)
    elif len(argv) == 2:
        suite(argv[1])
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
