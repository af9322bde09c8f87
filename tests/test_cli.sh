#!/bin/sh
# test_cli.sh - end-to-end checks of the command-line tool on tiny data.
#
#   sh tests/test_cli.sh ./irmae          (from the repository root)
#
# Every subcommand runs on tiny data (shapes: 256 images, batch 32; MNIST: the
# committed 100-image slice tests/data/mnist100-*, used for both train and
# t10k). Checked: exit codes (0 ok, 1 runtime error, 2 usage error), the
# outputs (PNG, CSV, SVG, safetensors), bit-exact resume (straight run vs
# stop + resume, at an epoch end and mid-epoch, with a different thread
# count), and the numeric guard (a NaN batch, or --lr 1e30, exits 1 and
# leaves the last checkpoint byte-identical). Optional peer: $IRMAE_PYTHON
# (default /usr/bin/python3) with pypng decodes the PNGs and parses SVG and
# safetensors; without it those checks print SKIP and are not counted.
# One line per check; the last line is "test_cli: N passed, M failed".

CLI=${1:-./irmae}
PY=${IRMAE_PYTHON:-/usr/bin/python3}
DATA=tests/data
# Idle OpenMP threads sleep instead of spinning: much faster on a busy machine.
OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export OMP_WAIT_POLICY
unset IRMAE_TEST_POISON

pass=0; fail=0; skip=0
T=$(mktemp -d 2>/dev/null || { mkdir -p "/tmp/test_cli.$$" && echo "/tmp/test_cli.$$"; })
trap 'rm -rf "$T"' EXIT INT TERM

ok()   { pass=$((pass + 1)); echo "ok   $1"; }
bad()  { fail=$((fail + 1)); echo "FAIL $1"; if [ -n "$2" ] && [ -f "$2" ]; then tail -n 8 "$2" | sed 's/^/     | /'; fi; }
skp()  { skip=$((skip + 1)); echo "SKIP: $1"; }

# expect NAME CODE cmd args... : runs the command (stdout in $T/out, stderr in
# $T/err) and checks its exit status. Returns 0 when it matched.
expect() {
    name=$1; want=$2; shift 2
    "$@" >"$T/out" 2>"$T/err"
    got=$?
    if [ "$got" -eq "$want" ]; then ok "$name (exit $got)"; return 0; fi
    bad "$name: exit $got, expected $want" "$T/err"
    return 1
}

# check NAME cmd args... : a condition that must hold.
check() {
    name=$1; shift
    if "$@"; then ok "$name"; else bad "$name"; fi
}

have_py() { [ -x "$PY" ] && "$PY" -c "import $1" >/dev/null 2>&1; }

png_signature() { [ "$(od -An -tx1 -N8 "$1" 2>/dev/null | tr -d ' \n')" = "89504e470d0a1a0a" ]; }

# check_png NAME FILE WIDTH HEIGHT
check_png() {
    if ! png_signature "$2"; then bad "$1: $2 is not a PNG"; return; fi
    ok "$1: PNG signature"
    if have_py png; then
        if "$PY" - "$2" "$3" "$4" <<'EOF' >"$T/py" 2>&1
import sys, png
w, h, rows, info = png.Reader(filename=sys.argv[1]).read()
n = sum(1 for _ in rows)
assert (w, h, n) == (int(sys.argv[2]), int(sys.argv[3]), h), (w, h, n)
EOF
        then ok "$1: decodes, $3 x $4"; else bad "$1: decode" "$T/py"; fi
    else
        skp "$1: no pypng in $PY, PNG not decoded"
    fi
}

[ -x "$CLI" ] || { echo "test_cli: $CLI is not an executable"; echo "test_cli: 0 passed, 1 failed"; exit 1; }

# ---------------------------------------------------------------- help, usage
expect "help" 0 "$CLI" help
for t in train spectrum reconstruct interpolate sample export classify frechet encode decode; do
    expect "$t --help" 0 "$CLI" "$t" --help && \
        check "$t --help lists flags" grep -q -- "--threads" "$T/out"
done
expect "train --help documents --resume" 0 "$CLI" help train && check "help train names --resume" grep -q -- "--resume" "$T/out"
expect "no arguments" 2 "$CLI"
expect "unknown task" 2 "$CLI" frobnicate
expect "unknown flag" 2 "$CLI" train --frobnicate 3
expect "missing value" 2 "$CLI" train --epochs
expect "negative epochs" 2 "$CLI" train --epochs -1
expect "unknown model kind" 2 "$CLI" train --model gan
expect "bad number" 2 "$CLI" train --lr abc
expect "number with junk" 2 "$CLI" train --batch 32x
expect "flag of another task" 2 "$CLI" export --model x.ckpt --epochs 3
expect "stray argument" 2 "$CLI" spectrum model.ckpt
expect "unknown sample method" 2 "$CLI" sample --model x.ckpt --method magic
expect "-l with ae" 2 "$CLI" train --model ae -l 2
expect "vae with pm1" 2 "$CLI" train --model vae --range pm1
expect "mnist without --dir" 2 "$CLI" train --data mnist
expect "spectrum without --model" 2 "$CLI" spectrum
check "usage errors name the help" grep -q -- "--help" "$T/err"
expect "missing checkpoint" 1 "$CLI" export --model "$T/none.ckpt" --out "$T/x.safetensors"
check "runtime error carries the detail" grep -q "cannot open" "$T/err"

# ---------------------------------------------------------------- training, resume
S="--data shapes --count 256 --batch 32 --heldout 64 --seed 7"
expect "train 2 epochs straight" 0 "$CLI" train $S --epochs 2 --save-every 3 --out "$T/straight.ckpt"
check "epoch lines report the rank" grep -q "rank@1%" "$T/err"
expect "train 1 epoch" 0 "$CLI" train $S --epochs 1 --out "$T/e1.ckpt"
cp "$T/e1.ckpt" "$T/resumed.ckpt"
expect "resume to 2 epochs" 0 "$CLI" train $S --epochs 2 --resume "$T/resumed.ckpt"
check "resume at an epoch end is bit-exact" cmp -s "$T/straight.ckpt" "$T/resumed.ckpt"
expect "stop after 5 steps (mid-epoch)" 0 "$CLI" train $S --epochs 2 --save-every 3 --max-steps 5 --out "$T/mid.ckpt"
expect "resume mid-epoch with 1 thread" 0 "$CLI" train $S --epochs 2 --resume "$T/mid.ckpt" --threads 1
check "resume mid-epoch is bit-exact" cmp -s "$T/straight.ckpt" "$T/mid.ckpt"
expect "resume with a conflicting flag" 2 "$CLI" train $S --epochs 3 --resume "$T/e1.ckpt" --n 16
# --plot-dir: after each epoch the spectrum SVG, the reconstruction PNG and a CSV line
expect "train with --plot-dir" 0 "$CLI" train $S --epochs 2 --plot-dir "$T/plots" --out "$T/plot.ckpt"
check "plot-dir: trajectory.csv has a header and one line per epoch" \
    sh -c "[ \$(wc -l < '$T/plots/trajectory.csv') -eq 3 ] && head -n 1 '$T/plots/trajectory.csv' | grep -q '^epoch,step,loss,rank_1pct,rank_01pct,entropy_rank,heldout_mse,images_per_s$' && sed -n 3p '$T/plots/trajectory.csv' | grep -q '^2,16,'"
check "plot-dir: spectrum.svg is an SVG" grep -q "<svg" "$T/plots/spectrum.svg"
check_png "plot-dir recon.png" "$T/plots/recon.png" 274 70
expect "plot-dir needs held-out images" 2 "$CLI" train $S --epochs 1 --heldout 0 --plot-dir "$T/plots2" --out "$T/x.ckpt"
expect "resume with --plot-dir appends" 0 "$CLI" train $S --epochs 3 --plot-dir "$T/plots" --resume "$T/plot.ckpt"
check "plot-dir: the resumed epoch is appended" sh -c "[ \$(wc -l < '$T/plots/trajectory.csv') -eq 4 ] && sed -n 4p '$T/plots/trajectory.csv' | grep -q '^3,24,'"
# --grad-clip is stored: a resume without the flag keeps clipping (bit-exact with
# a straight clipped run, which differs from an unclipped one); a flag given on
# resume replaces it, with a note
G="$S --epochs 1 --grad-clip 0.05"
expect "train clipped, 8 steps straight" 0 "$CLI" train $G --out "$T/clip.ckpt"
expect "train clipped, stop after 3 steps" 0 "$CLI" train $G --max-steps 3 --out "$T/clip3.ckpt"
expect "resume without --grad-clip" 0 "$CLI" train $S --epochs 1 --resume "$T/clip3.ckpt"
check "resume keeps the stored --grad-clip (bit-exact)" cmp -s "$T/clip.ckpt" "$T/clip3.ckpt"
check "clipping changes the run (control)" sh -c "! cmp -s '$T/clip.ckpt' '$T/e1.ckpt'"
expect "train clipped, stop after 3 steps again" 0 "$CLI" train $G --max-steps 3 --out "$T/clip3b.ckpt"
expect "resume with another --grad-clip" 0 "$CLI" train $S --epochs 1 --grad-clip 0 --resume "$T/clip3b.ckpt"
check "a --grad-clip given on resume is noted" grep -q "replaces the checkpoint's" "$T/err"
check "a --grad-clip given on resume takes effect" sh -c "! cmp -s '$T/clip.ckpt' '$T/clip3b.ckpt'"

# the numeric guard: a NaN in the batch of step 11 (epoch 2, batch 3)
cp "$T/e1.ckpt" "$T/poison.ckpt"; cp "$T/e1.ckpt" "$T/poison.bak"
IRMAE_TEST_POISON=11; export IRMAE_TEST_POISON
expect "NaN batch stops training" 1 "$CLI" train $S --epochs 2 --resume "$T/poison.ckpt"
unset IRMAE_TEST_POISON
check "guard message names the step" grep -q "step 11" "$T/err"
check "checkpoint left byte-identical" cmp -s "$T/poison.ckpt" "$T/poison.bak"
# mid-epoch saves every 2 steps, NaN at step 13: the file keeps step 12; resuming it finishes exactly
cp "$T/e1.ckpt" "$T/crash.ckpt"
IRMAE_TEST_POISON=13; export IRMAE_TEST_POISON
expect "NaN after a mid-epoch save" 1 "$CLI" train $S --epochs 2 --save-every 2 --resume "$T/crash.ckpt"
unset IRMAE_TEST_POISON
expect "resume after the failure" 0 "$CLI" train $S --epochs 2 --resume "$T/crash.ckpt"
check "crash + resume is bit-exact" cmp -s "$T/straight.ckpt" "$T/crash.ckpt"
check "resume started mid-epoch" grep -q "batch 4 (step 12)" "$T/err"
expect "lr 1e30 diverges" 1 "$CLI" train $S --epochs 1 --lr 1e30 --out "$T/diverge.ckpt"
check "divergence is reported as non-finite" grep -q "non-finite" "$T/err"
check "no checkpoint from a run that failed before saving" test ! -e "$T/diverge.ckpt"

# other model kinds and pixel ranges
expect "train ae + L1, [-1,1]" 0 "$CLI" train --count 64 --batch 16 --heldout 32 --epochs 1 --model ae --code-l1 0.01 --range pm1 --out "$T/ae.ckpt"
expect "train vae" 0 "$CLI" train --count 64 --batch 16 --heldout 32 --epochs 1 --model vae --out "$T/vae.ckpt"

# ---------------------------------------------------------------- analysis
M="$T/straight.ckpt"
expect "spectrum of two models" 0 "$CLI" spectrum --model "$M" --model "$T/ae.ckpt" --name irmae --name "ae+l1" --count 128 --csv "$T/s.csv" --svg "$T/s.svg"
check "spectrum prints the ranks" grep -q "rank@1%=.*rank@0.1%=.*entropy_rank=" "$T/out"
check "spectrum prints one line per model" test "$(grep -c 'rank@1%=' "$T/out")" -eq 2
check "CSV: header and 32 numeric rows starting at 1" awk -F, '
    NR == 1 { if ($1 != "index") bad = 1; nf = NF; next }
    { if (NF != nf) bad = 1
      for (i = 1; i <= NF; i++) if ($i !~ /^-?[0-9.]+([eE][-+]?[0-9]+)?$/) bad = 1
      if (NR == 2 && ($2 != 1 || $3 != 1)) bad = 1
      rows++ }
    END { exit (bad || rows != 32) }' "$T/s.csv"
if have_py xml.etree.ElementTree; then
    check "SVG parses as XML" "$PY" -c 'import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); assert r.tag.endswith("svg"), r.tag' "$T/s.svg"
else
    check "SVG has <svg> and </svg>" grep -q "</svg>" "$T/s.svg"
    skp "no python at $PY, SVG not parsed"
fi
expect "spectrum of a VAE" 0 "$CLI" spectrum --model "$T/vae.ckpt" --count 64

expect "reconstruct" 0 "$CLI" reconstruct --model "$M" --count 10 --cols 8 --out "$T/rec.png"
rmse=$(sed -n 's/.*: mse=\([0-9.e+-]*\);.*/\1/p' "$T/out")
expect "spectrum of the same 10 held-out images" 0 "$CLI" spectrum --model "$M" --count 10
smse=$(sed -n 's/.*  mse=\([0-9.e+-]*\)  .*/\1/p' "$T/out")
check "spectrum's mse ($smse) is reconstruct's mse ($rmse) on the same images" \
    awk -v a="$smse" -v b="$rmse" 'BEGIN { exit !(a != "" && b != "" && a > 0 && (a - b < 1e-6) && (b - a < 1e-6)) }'
check_png "reconstruct grid" "$T/rec.png" 274 138
expect "reconstruct [-1,1] model" 0 "$CLI" reconstruct --model "$T/ae.ckpt" --count 4 --out "$T/rec_pm1.png"
check_png "reconstruct [-1,1] grid" "$T/rec_pm1.png" 138 70
expect "interpolate" 0 "$CLI" interpolate --model "$M" --pairs 3 --steps 6 --out "$T/int.png"
check_png "interpolate grid" "$T/int.png" 206 104
for m in mvg gmm pca; do
    expect "sample $m" 0 "$CLI" sample --model "$M" --method $m --fit 128 --count 16 --cols 8 --out "$T/sample_$m.png"
    check_png "sample $m grid" "$T/sample_$m.png" 274 70
done
expect "sample gmm from the VAE" 0 "$CLI" sample --model "$T/vae.ckpt" --method gmm --k 2 --fit 64 --count 8 --out "$T/vae.png"

# import: an export carries its configuration, so import needs no flag and
# export(import(export)) is the same file; without the metadata, train's flags
expect "export for import" 0 "$CLI" export --model "$M" --out "$T/m0.safetensors"
expect "import with no flag but --weights" 0 "$CLI" import --weights "$T/m0.safetensors" --out "$T/imp.ckpt"
expect "export the imported model" 0 "$CLI" export --model "$T/imp.ckpt" --out "$T/m1.safetensors"
check "export -> import -> export gives the same file" cmp -s "$T/m0.safetensors" "$T/m1.safetensors"
expect "import a checkpoint as weights" 1 "$CLI" import --weights "$M" --out "$T/x.ckpt"
# a file without the stored configuration (the key renamed, same length): train's flags
LC_ALL=C sed 's/"irmae_config"/"irmae_cfgxxx"/' "$T/m0.safetensors" > "$T/nometa.safetensors"
expect "import without a stored configuration: the flags' defaults (shapes, irmae, l = 2)" 0 \
    "$CLI" import --weights "$T/nometa.safetensors" --out "$T/imp2.ckpt"
check "the import says it used the flags" grep -q "no stored configuration" "$T/err"
check "the same weights as with the stored configuration" cmp -s "$T/imp.ckpt" "$T/imp2.ckpt"
expect "import without a stored configuration, flags of another model" 1 \
    "$CLI" import --weights "$T/nometa.safetensors" --n 16 --out "$T/x.ckpt"
check "a misshapen tensor is named" grep -q "safetensors: tensor '" "$T/err"
expect "import without --weights" 2 "$CLI" import --out "$T/x.ckpt"

# codes out to NumPy and back: numpy reads encode's .npy as count x n float32;
# decoding numpy's own re-save of it gives the same PNG as decoding the original
expect "encode 24 held-out images" 0 "$CLI" encode --model "$M" --count 24 --out "$T/codes.npy"
expect "encode --features" 0 "$CLI" encode --model "$M" --count 24 --features --out "$T/feat.npy"
check "features (before the maps) differ from the codes" sh -c "! cmp -s '$T/codes.npy' '$T/feat.npy'"
expect "decode the codes" 0 "$CLI" decode --model "$M" --codes "$T/codes.npy" --cols 8 --out "$T/dec.png"
check_png "decoded grid" "$T/dec.png" 274 104
if have_py numpy; then
    if "$PY" - "$T/codes.npy" "$T/np.npy" <<'EOF' >"$T/py" 2>&1
import sys, numpy as np
a = np.load(sys.argv[1], allow_pickle=False)
assert a.shape == (24, 32) and a.dtype == np.float32 and np.all(np.isfinite(a)), (a.shape, a.dtype)
np.save(sys.argv[2], np.ascontiguousarray(a))
EOF
    then ok "numpy loads encode's codes (24 x 32 float32) and saves them again"
    else bad "numpy reads encode's .npy" "$T/py"; fi
    expect "decode numpy's file" 0 "$CLI" decode --model "$M" --codes "$T/np.npy" --cols 8 --out "$T/dec_np.png"
    check "numpy-written codes decode to the same images" cmp -s "$T/dec.png" "$T/dec_np.png"
    "$PY" -c "import numpy as np; np.save('$T/f8.npy', np.zeros((3, 32)))"
    expect "decode float64 codes" 1 "$CLI" decode --model "$M" --codes "$T/f8.npy" --out "$T/x.png"
    check "the error names the dtype" grep -q "dtype '<f8'" "$T/err"
else
    skp "numpy round trip of encode / decode (no numpy in $PY)"
fi
expect "decode a checkpoint as codes" 1 "$CLI" decode --model "$M" --codes "$M" --out "$T/x.png"
check "the error says it is not a .npy" grep -q "not a .npy file" "$T/err"
expect "train a model with n = 16" 0 "$CLI" train --count 64 --batch 16 --heldout 0 --epochs 1 --n 16 --out "$T/n16.ckpt"
expect "decode codes of another size" 1 "$CLI" decode --model "$T/n16.ckpt" --codes "$T/codes.npy" --out "$T/x.png"
check "the error gives both sizes" grep -q "n = " "$T/err"
expect "decode without --codes" 2 "$CLI" decode --model "$M"

expect "export" 0 "$CLI" export --model "$M" --out "$T/m.safetensors"
st="$T/m.safetensors"
hlen=$(od -An -tu8 -N8 "$st" | tr -d ' ')
first=$(od -An -c -j8 -N1 "$st" | tr -d ' ')
size=$(wc -c <"$st" | tr -d ' ')
check "safetensors header length fits the file" test "$hlen" -gt 2 -a $((hlen % 8)) -eq 0 -a "$hlen" -lt "$size"
check "safetensors header starts with {" test "$first" = "{"
if have_py json; then
    params=$(sed -n 's/.*, \([0-9]*\) parameters.*/\1/p' "$T/out")
    check "safetensors header parses, offsets tile the file, $params parameters" "$PY" - "$st" "$params" <<'EOF'
import sys, json, struct
data = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", data[:8])[0]
h = json.loads(data[8:8 + n])
meta = h.pop("__metadata__")
assert meta["n"] == "32" and meta["l"] == "2" and meta["range"] == "0,1", meta
spans = sorted(tuple(v["data_offsets"]) for v in h.values())
pos = 0
for a, b in spans:
    assert a == pos, (a, pos); pos = b
assert 8 + n + pos == len(data), (8 + n + pos, len(data))
count = 0
for k, v in h.items():
    size = 1
    for d in v["shape"]: size *= d
    assert v["dtype"] == "F32" and 4 * size == v["data_offsets"][1] - v["data_offsets"][0], k
    if k != "collapsed.weight": count += size
assert h["maps.1.weight"]["shape"] == [32, 32] and h["collapsed.weight"]["shape"] == [32, 32]
assert count == int(sys.argv[2]), (count, sys.argv[2])
EOF
else
    skp "no python at $PY, safetensors JSON not parsed"
fi

# ---------------------------------------------------------------- MNIST slice
MN="$T/mnist"
mkdir -p "$MN"
for s in train t10k; do
    cp "$DATA/mnist100-images-idx3-ubyte.gz" "$MN/$s-images-idx3-ubyte.gz"
    cp "$DATA/mnist100-labels-idx1-ubyte.gz" "$MN/$s-labels-idx1-ubyte.gz"
done
expect "train on mnist (100 images)" 0 "$CLI" train --data mnist --dir "$MN" --epochs 1 --batch 32 --heldout 64 --out "$T/mnist.ckpt"
for h in linear mlp; do
    expect "classify $h head" 0 "$CLI" classify --model "$T/mnist.ckpt" --dir "$MN" --labels 50 --head $h --head-steps 300
    acc=$(sed -n 's/^accuracy=\([0-9.]*\)$/\1/p' "$T/out")
    check "classify $h prints accuracy=$acc in [0,100]" awk -v a="$acc" 'BEGIN { exit !(a != "" && a >= 0 && a <= 100) }'
done
expect "classify --supervised (encoder and head trained together)" 0 "$CLI" classify --model "$T/mnist.ckpt" \
    --dir "$MN" --labels 50 --head linear --head-steps 60 --supervised
tacc=$(sed -n 's/^train_accuracy=\([0-9.]*\)$/\1/p' "$T/out")
acc=$(sed -n 's/^accuracy=\([0-9.]*\)$/\1/p' "$T/out")
check "classify --supervised fits its 50 labelled images (train_accuracy=$tacc >= 90)" \
    awk -v a="$tacc" 'BEGIN { exit !(a != "" && a >= 90 && a <= 100) }'
check "classify --supervised prints accuracy=$acc in [0,100]" awk -v a="$acc" 'BEGIN { exit !(a != "" && a >= 0 && a <= 100) }'
expect "classify on unlabelled images is refused" 2 "$CLI" classify --model "$T/mnist.ckpt" --data images --dir "$MN"
expect "frechet" 0 "$CLI" frechet --model "$T/mnist.ckpt" --data mnist --dir "$MN" --count 50 --fit 100 --clf-epochs 2
fd=$(sed -n 's/^frechet=\(.*\)$/\1/p' "$T/out")
check "frechet prints a distance >= 0 ($fd)" awk -v a="$fd" 'BEGIN { exit !(a != "" && a + 0 >= 0 && a == a + 0) }'
fr=$(sed -n 's/^frechet_real=\([^ ]*\) .*$/\1/p' "$T/out")
fc=$(sed -n 's/^frechet_recon=\([^ ]*\) .*$/\1/p' "$T/out")
# this slice's training and test files hold the same 100 images: the real reference compares a set with itself
check "frechet's references: reconstructions $fc >= 0; real training images $fr ~ 0 (the same images here)" \
    awk -v r="$fr" -v c="$fc" 'BEGIN { exit !(r != "" && c != "" && c + 0 >= 0 && r + 0 >= 0 && r + 0 < 1e-6) }'
expect "mnist model on shapes data is a runtime error" 1 "$CLI" spectrum --model "$T/mnist.ckpt" --count 16

# ---------------------------------------------------------------- a folder of PNGs
IM="$T/images"
mkdir -p "$IM"
i=0
while [ $i -lt 20 ]; do
    "$CLI" sample --model "$T/vae.ckpt" --fit 16 --count 1 --cols 1 --seed $i --out "$IM/img$i.png" >/dev/null 2>&1 || break
    i=$((i + 1))
done
check "made 20 PNG files" test $i -eq 20
expect "train on a folder of PNGs" 0 "$CLI" train --data images --dir "$IM" --preset shapes --epochs 1 --batch 5 --heldout 8 --out "$T/images.ckpt"
expect "spectrum on the held-out PNGs" 0 "$CLI" spectrum --model "$T/images.ckpt" --data images --dir "$IM"

# ---------------------------------------------------------------- plot
printf 'epoch,rank_1pct,heldout_mse\n1,20,0.03\n2,12,0.01\n3,,0.005\n4,7,0.002\n' > "$T/a.csv"
printf 'epoch,heldout_mse,rank_1pct\r\n1,0.02,16\r\n4,0.004,9\r\n' > "$T/b.csv"
expect "plot two CSV files" 0 "$CLI" plot --csv "$T/a.csv" --name "run <a>" --csv "$T/b.csv" --x epoch --x-scale 50000 \
    --y rank_1pct --markers --out "$T/plot.svg"
# a.csv's empty field breaks its line: 2 + 1 polylines; markers on the 3 + 2 points
check "plot: 3 polylines, 5 markers, names escaped, 200k on the x axis" \
    sh -c "[ \$(grep -c '<polyline' '$T/plot.svg') -eq 3 ] && [ \$(grep -c '<circle' '$T/plot.svg') -eq 5 ] &&
           grep -q 'run &lt;a&gt;' '$T/plot.svg' && grep -q '>b.csv<' '$T/plot.svg' && grep -q '>200k<' '$T/plot.svg'"
expect "plot with a log y axis" 0 "$CLI" plot --csv "$T/a.csv" --y heldout_mse --x epoch --log-y --out "$T/plot2.svg"
check "plot --log-y: decade labels" grep -q '>0.001<' "$T/plot2.svg"
# the i-th --y for the i-th --csv: two columns of one file as two lines (a.csv's heldout_mse has no gap)
expect "plot: one --y per --csv" 0 "$CLI" plot --csv "$T/a.csv" --y rank_1pct --csv "$T/a.csv" --y heldout_mse \
    --x epoch --markers --out "$T/plot4.svg"
check "plot: one --y per --csv: 2 + 1 polylines, 3 + 4 markers, 'value' on the y axis" \
    sh -c "[ \$(grep -c '<polyline' '$T/plot4.svg') -eq 3 ] && [ \$(grep -c '<circle' '$T/plot4.svg') -eq 7 ] && grep -q '>value<' '$T/plot4.svg'"
expect "plot: two --y for three --csv" 2 "$CLI" plot --csv "$T/a.csv" --csv "$T/a.csv" --csv "$T/b.csv" \
    --y rank_1pct --y heldout_mse --x epoch --out "$T/plot3.svg"
check "plot: says how many --y it needs" grep -q "2 --y for 3 --csv" "$T/err"
expect "plot: a column that is not there" 1 "$CLI" plot --csv "$T/a.csv" --x epoch --y loss --out "$T/plot3.svg"
check "plot: names the missing column" grep -q "no column 'loss'" "$T/err"
printf 'epoch,rank_1pct\n1,abc\n' > "$T/c.csv"
expect "plot: a field that is not a number" 1 "$CLI" plot --csv "$T/c.csv" --x epoch --out "$T/plot3.svg"
check "plot: names the line" grep -q 'c.csv:2:' "$T/err"
expect "plot: a missing file" 1 "$CLI" plot --csv "$T/nonexistent.csv" --out "$T/plot3.svg"
expect "plot: no --csv" 2 "$CLI" plot --out "$T/plot3.svg"
check "plot: nothing written on errors" test ! -e "$T/plot3.svg"

# ---------------------------------------------------------------- reproduce.sh
# The shapes part of examples/reproduce.sh at a tiny budget, evaluated every
# epoch: trajectory CSVs and their plots; a second run finds everything done.
if [ -n "${IRMAE_TEST_QUICK:-}" ] || ! command -v bash >/dev/null 2>&1; then
    skp "reproduce.sh (IRMAE_TEST_QUICK or no bash)"
else
    R="$T/repro"
    if QUICK=1 EVAL_EVERY=1 SHAPES_COUNT=64 SHAPES_EPOCHS=2 MNIST_DIR="$T/no-mnist" OUT="$R" THREADS=1 CLI="$CLI" \
        bash examples/reproduce.sh >"$T/repro.log" 2>&1; then
        ok "reproduce.sh, shapes at a tiny budget (exit 0)"
        trajectories_ok() {
            for m in ae ae-l1 ae-l2 irmae2 irmae4; do
                [ "$(wc -l < "$R/shapes-$m-trajectory.csv")" -eq 3 ] || return 1
                tail -n 1 "$R/shapes-$m-trajectory.csv" | grep -Eq '^2,[0-9]+,[0-9]+,[0-9.]+,[0-9.]+$' || return 1
            done
        }
        check "reproduce.sh: a trajectory row per epoch for the 5 models" trajectories_ok
        check "reproduce.sh: rank and MSE plots with 5 lines" \
            sh -c "[ \$(grep -c '<polyline' '$R/shapes-rank.svg') -eq 5 ] && [ \$(grep -c '<polyline' '$R/shapes-mse.svg') -eq 5 ]"
        before=$(cat "$R"/*.csv | cksum)
        QUICK=1 EVAL_EVERY=1 SHAPES_COUNT=64 SHAPES_EPOCHS=2 MNIST_DIR="$T/no-mnist" OUT="$R" THREADS=1 CLI="$CLI" \
            bash examples/reproduce.sh >"$T/repro2.log" 2>&1
        check "reproduce.sh: a second run trains nothing and keeps the trajectories" \
            sh -c "! grep -q ' train ' '$T/repro2.log' && [ \"\$(cat '$R'/*.csv | cksum)\" = '$before' ]"
    else
        bad "reproduce.sh, shapes at a tiny budget" "$T/repro.log"
    fi
    # the MNIST part on the committed 100-image slice, with a milestone at epoch 1
    RM="$T/repro-mnist"
    if QUICK=1 PARTS=mnist EVAL_EVERY=1 MNIST_EPOCHS=2 MILESTONES=1 MNIST_DIR="$MN" OUT="$RM" THREADS=1 CLI="$CLI" \
        bash examples/reproduce.sh >"$T/repro-m.log" 2>&1; then
        ok "reproduce.sh, the MNIST part at a tiny budget (exit 0)"
        milestones_ok() {
            for m in ae vae irmae; do
                f="$RM/mnist-$m-milestones.txt"
                [ "$(grep -c '^epoch=1 classify N=[0-9]* head=[a-z]* accuracy=[0-9.][0-9.]*$' "$f")" -eq 4 ] || return 1
                [ "$(grep -c '^epoch=1 frechet method=[a-z]* frechet=[0-9.e+-]* .*frechet_real=' "$f")" -eq 2 ] || return 1
                [ "$(wc -l < "$f")" -eq 6 ] || return 1          # no milestone at epoch 2
                [ ! -e "$f.part" ] || return 1
            done
        }
        check "reproduce.sh: milestone accuracies and Frechet distances for the 3 MNIST models" milestones_ok
        check "reproduce.sh: no shapes model with PARTS=mnist" sh -c "! ls '$RM' | grep -q shapes"
        before=$(cat "$RM"/*-milestones.txt | cksum)
        QUICK=1 PARTS=mnist EVAL_EVERY=1 MNIST_EPOCHS=2 MILESTONES=1 MNIST_DIR="$MN" OUT="$RM" THREADS=1 CLI="$CLI" \
            bash examples/reproduce.sh >"$T/repro-m2.log" 2>&1
        check "reproduce.sh: a second MNIST run trains nothing and keeps the milestones" \
            sh -c "! grep -q ' train ' '$T/repro-m2.log' && [ \"\$(cat '$RM'/*-milestones.txt | cksum)\" = '$before' ]"
    else
        bad "reproduce.sh, the MNIST part at a tiny budget" "$T/repro-m.log"
    fi
    # MODELS picks trainings by output name, SEEDS adds shapes IRMAE l=2 seeds
    RS="$T/repro-sel"
    if QUICK=1 MODELS="mnist-irmae shapes-irmae2-s2" SEEDS=2 SHAPES_COUNT=64 SHAPES_EPOCHS=1 MNIST_EPOCHS=1 \
        MNIST_DIR="$MN" OUT="$RS" THREADS=1 CLI="$CLI" bash examples/reproduce.sh >"$T/repro-s.log" 2>&1; then
        ok "reproduce.sh with MODELS and SEEDS (exit 0)"
        check "reproduce.sh MODELS: only the chosen models trained" \
            sh -c "[ \"\$(cd '$RS' && ls *.ckpt | tr '\n' ' ')\" = 'mnist-irmae.ckpt shapes-irmae2-s2.ckpt ' ]"
        check "reproduce.sh SEEDS: the seed reaches the training" grep -q -- '--model irmae -l 2 --seed 2 ' "$T/repro-s.log"
        check "reproduce.sh MODELS: the results hold the chosen models only" sh -c \
            "grep -q '^IRMAE l=2 seed 2:' '$RS/results.txt' && grep -q '^IRMAE l=8:' '$RS/results.txt' &&
             [ \$(grep -c '^classify .*model=irmae ' '$RS/results.txt') -eq 4 ] &&
             [ \$(grep -c '^classify .*model=supervised ' '$RS/results.txt') -eq 4 ] &&
             [ \$(grep -c '^frechet .*model=irmae ' '$RS/results.txt') -eq 2 ] &&
             ! grep -Eq 'model=(ae|vae) |^(AE|VAE|AE\+L1|AE\+L2|IRMAE l=[24]):' '$RS/results.txt'"
    else
        bad "reproduce.sh with MODELS and SEEDS" "$T/repro-s.log"
    fi
fi

echo "test_cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
