#!/bin/bash
# reproduce.sh - the paper's experiments with the ./irmae tool, end to end.
#
#   make irmae && sh examples/reproduce.sh            # paper-like budgets: many hours
#   QUICK=1 sh examples/reproduce.sh                  # a few minutes: checks the pipeline only
#
# Shapes (n = 32): AE, AE+L1, AE+L2, IRMAE l=2, IRMAE l=4; spectra (Fig. 2) with
# rank@1%, rank@0.1%, entropy rank and reconstruction MSE; interpolations (Fig. 3).
# MNIST (n = 128): AE, VAE, IRMAE l=8; spectra; interpolation and PCA grids;
# few-label classification (linear and MLP heads, N = 10, 100, 1000, and the
# supervised reference); Frechet distances of mvg and gmm samples.
#
# Settings (environment):
#   OUT            output folder (default repro-out): checkpoints, CSV, SVG, PNG, results.txt
#   SHAPES_COUNT   training images generated for shapes (default 50000, the paper's)
#   SHAPES_EPOCHS  epochs on shapes (default 100, the paper's)
#   MNIST_DIR      IDX files (default ../shared/data/mnist-subset: 8,000 train / 2,000 test;
#                  the full 60k/10k MNIST works the same way)
#   MNIST_EPOCHS   epochs on MNIST (default 100)
#   L1, L2         code penalty weights of AE+L1 / AE+L2 (default 0.01 / 0.01)
#   THREADS        OpenMP threads per run (default 0 = one per idle CPU, see ./irmae help train)
#   EVAL_EVERY     stop every K epochs for the spectrum and MSE of the held-out images
#                  (NAME-trajectory.txt and .csv) and keep that epoch's checkpoint; shapes
#                  then also gets shapes-rank.svg and shapes-mse.svg, the trajectories
#                  against images seen (./irmae plot) (default: off)
#   MILESTONES     MNIST epochs (multiples of EVAL_EVERY) at which each MNIST model also gets
#                  the few-label accuracies and Frechet distances of the final evaluation, as
#                  soon as its training reaches them (NAME-milestones.txt; default: none)
#   PARTS          what to run: "shapes mnist" (default), "shapes" or "mnist"
#   MODELS         the models to train and evaluate, by output name (default: all of them):
#                  shapes-ae shapes-ae-l1 shapes-ae-l2 shapes-irmae2 shapes-irmae4
#                  mnist-ae mnist-vae mnist-irmae, and shapes-irmae2-sS for each of SEEDS
#   SEEDS          further seeds of shapes IRMAE l=2 (default none; "2 3" adds
#                  shapes-irmae2-s2 and shapes-irmae2-s3: data, initialisation and order
#                  from that seed, evaluated on the same held-out images as every model)
#   JOBS           trainings run at the same time (default 1)
#   CLI            the tool (default ./irmae)
# Every step is skipped when its output exists, so an interrupted run resumes
# where it stopped (a training resumes from its last epoch checkpoint).
set -euo pipefail
CLI=${CLI:-./irmae}
OUT=${OUT:-repro-out}
MNIST_DIR=${MNIST_DIR:-../shared/data/mnist-subset}
L1=${L1:-0.01}; L2=${L2:-0.01}
THREADS=${THREADS:-0}; JOBS=${JOBS:-1}; PARTS=${PARTS:-shapes mnist}; MILESTONES=${MILESTONES:-}
MODELS=${MODELS:-}; SEEDS=${SEEDS:-}
if [ "${QUICK:-0}" = 1 ]; then
    SHAPES_COUNT=${SHAPES_COUNT:-512}; SHAPES_EPOCHS=${SHAPES_EPOCHS:-1}; MNIST_EPOCHS=${MNIST_EPOCHS:-1}
    LABELS="10 100"; HEAD_STEPS=200; HELD=256; MNIST_COUNT=512
else
    SHAPES_COUNT=${SHAPES_COUNT:-50000}; SHAPES_EPOCHS=${SHAPES_EPOCHS:-100}; MNIST_EPOCHS=${MNIST_EPOCHS:-100}
    LABELS="10 100 1000"; HEAD_STEPS=2000; HELD=2000; MNIST_COUNT=0
fi
[ -x "$CLI" ] || { echo "reproduce.sh: $CLI not found (run make irmae)" >&2; exit 2; }
mkdir -p "$OUT"
R="$OUT/results.txt"
log() { echo "$*" | tee -a "$R"; }
run() { echo "+ $*" >&2; "$@"; }

# train NAME ARGS... (ARGS hold --data D and --epochs E): OUT/NAME.ckpt, resumed if a
# checkpoint of an earlier run exists. With EVAL_EVERY=K (epochs), training
# stops every K epochs for the spectrum and MSE of HELD held-out images
# (OUT/NAME-trajectory.txt, one line per evaluation; the checkpoint of
# epoch e is kept as OUT/NAME-eE.ckpt), then resumes bit-exactly.
train() {
    local name=$1; shift
    local ck="$OUT/$name.ckpt" total=0 e data=shapes dir=() args=()
    if [ -f "$OUT/$name.done" ]; then return 0; fi
    while [ $# -gt 0 ]; do   # --epochs is given per chunk below
        case $1 in
            --epochs) total=$2; shift 2 ;;
            --data) data=$2; args+=("$1" "$2"); shift 2 ;;
            *) args+=("$1"); shift ;;
        esac
    done
    set -- "${args[@]}"
    [ "$data" = shapes ] || dir=(--dir "$MNIST_DIR")
    e=${EVAL_EVERY:-$total}
    while :; do
        [ "$e" -gt "$total" ] && e=$total
        if [ ! -f "$OUT/$name-e$e.ckpt" ] || [ "$e" = "$total" ]; then
            if [ -f "$ck" ]; then run "$CLI" train --threads "$THREADS" "$@" --epochs "$e" --resume "$ck" --heldout 512
            else run "$CLI" train --threads "$THREADS" "$@" --epochs "$e" --out "$ck" --heldout 512; fi
            if [ -n "${EVAL_EVERY:-}" ]; then
                cp "$ck" "$OUT/$name-e$e.ckpt"
                "$CLI" spectrum --threads "$THREADS" --data "$data" "${dir[@]}" --count "$HELD" \
                    --model "$ck" --name "$name epoch $e" | sed -n 1p >> "$OUT/$name-trajectory.txt"
                [ -f "$OUT/$name-trajectory.csv" ] ||
                    echo "epoch,rank_1pct,rank_01pct,entropy_rank,heldout_mse" > "$OUT/$name-trajectory.csv"
                tail -n 1 "$OUT/$name-trajectory.txt" | trajectory_csv "$e" >> "$OUT/$name-trajectory.csv"
            fi
            case " $MILESTONES " in
                *" $e "*) [ "$data" = mnist ] && milestone "$name" "$e" "$OUT/$name-e$e.ckpt" ;;
            esac
        fi
        [ "$e" = "$total" ] && break
        e=$((e + EVAL_EVERY))
    done
    touch "$OUT/$name.done"
}
# milestone NAME EPOCH CKPT: few-label accuracies (linear and MLP heads, N in
# LABELS) and Frechet distances (mvg, gmm) of an MNIST checkpoint, one line
# each in OUT/NAME-milestones.txt ("epoch=E ...")
milestone() {
    local name=$1 e=$2 ck=$3 n head method f="$OUT/$1-milestones.txt"
    [ -f "$f" ] && grep -q "^epoch=$e " "$f" && return 0
    rm -f "$f.part"
    for n in $LABELS; do
        for head in linear mlp; do
            echo "epoch=$e classify N=$n head=$head accuracy=$("$CLI" classify --dir "$MNIST_DIR" --model "$ck" \
                --labels "$n" --head "$head" --head-steps "$HEAD_STEPS" --threads "$THREADS" |
                sed -n 's/^accuracy=//p')" >> "$f.part"
        done
    done
    for method in mvg gmm; do
        echo "epoch=$e frechet method=$method" $("$CLI" frechet --data mnist --dir "$MNIST_DIR" --model "$ck" \
            --method "$method" --threads "$THREADS" | sed -n 's/^\(frechet[a-z_]*=[^ ]*\).*/\1/p') >> "$f.part"
    done
    cat "$f.part" >> "$f" && rm -f "$f.part"   # all of an epoch's lines or none
}
# a spectrum line ("NAME: ... rank@1%=R1  rank@0.1%=R2  entropy_rank=E  mse=M ...")
# as a CSV row "EPOCH,R1,R2,E,M" (EPOCH = $1)
trajectory_csv() {
    sed -E "s/.*rank@1%=([0-9]+) +rank@0\.1%=([0-9]+) +entropy_rank=([^ ]+) +mse=([^ ]+).*/$1,\1,\2,\3,\4/"
}
# trajectory plots of runs (names), rank@1% and held-out MSE against images seen
# (x = epoch x images per epoch): plot_trajectories PREFIX IMAGES_PER_EPOCH NAME:LABEL...
plot_trajectories() {
    local prefix=$1 per=$2 args=() nl
    shift 2
    for nl in "$@"; do
        [ -f "$OUT/${nl%%:*}-trajectory.csv" ] && args+=(--csv "$OUT/${nl%%:*}-trajectory.csv" --name "${nl#*:}")
    done
    [ ${#args[@]} -gt 0 ] || return 0
    run "$CLI" plot "${args[@]}" --x epoch --x-scale "$per" --y rank_1pct --markers \
        --x-label "images seen" --y-label "rank@1% of $HELD held-out codes" --out "$OUT/$prefix-rank.svg"
    run "$CLI" plot "${args[@]}" --x epoch --x-scale "$per" --y heldout_mse --log-y --markers \
        --x-label "images seen" --y-label "held-out MSE" --out "$OUT/$prefix-mse.svg"
}
# waits when JOBS trainings are running
throttle() { while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n; done; }
# selected NAME: whether MODELS (empty: every model) holds NAME
selected() { [ -z "$MODELS" ] || case " $MODELS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
# train_all PREFIX COMMON TABLE: starts the selected models of TABLE (lines
# "name|label|training options") JOBS at a time and waits for them; then
# NAMES/TITLES hold the selected models whose checkpoint exists, in table
# order, and MODEL_ARGS their "--model CKPT --name LABEL" pairs
train_all() {
    local prefix=$1 common=$2 n lab opts
    NAMES=(); TITLES=(); MODEL_ARGS=()
    while IFS='|' read -r -u 3 n lab opts; do
        selected "$prefix-$n" || continue
        NAMES+=("$n"); TITLES+=("$lab")
        # shellcheck disable=SC2086  # option lists split into words on purpose
        throttle; train "$prefix-$n" $common $opts &
    done 3<<< "$3"
    wait
    local i keep_n=() keep_l=()
    for i in "${!NAMES[@]}"; do
        [ -f "$OUT/$prefix-${NAMES[$i]}.ckpt" ] || continue
        keep_n+=("${NAMES[$i]}"); keep_l+=("${TITLES[$i]}")
        MODEL_ARGS+=(--model "$OUT/$prefix-${NAMES[$i]}.ckpt" --name "${TITLES[$i]}")
    done
    NAMES=("${keep_n[@]}"); TITLES=("${keep_l[@]}")
}

log "# reproduce.sh $(date -u +%Y-%m-%dT%H:%MZ): shapes $SHAPES_COUNT images x $SHAPES_EPOCHS epochs;" \
    "MNIST $MNIST_DIR x $MNIST_EPOCHS epochs"

# ------------------------------------------------------------------ shapes
case " $PARTS " in *" shapes "*)
S="--data shapes --count $SHAPES_COUNT --epochs $SHAPES_EPOCHS --batch 32 --lr 1e-4"
T="ae|AE|--model ae
ae-l1|AE+L1|--model ae --code-l1 $L1
ae-l2|AE+L2|--model ae --code-l2 $L2
irmae2|IRMAE l=2|--model irmae -l 2
irmae4|IRMAE l=4|--model irmae -l 4"
for seed in $SEEDS; do T="$T
irmae2-s$seed|IRMAE l=2 seed $seed|--model irmae -l 2 --seed $seed"; done
train_all shapes "$S" "$T"
if [ ${#NAMES[@]} -gt 0 ]; then
    log "## shapes: spectra of $HELD held-out images"
    run "$CLI" spectrum --data shapes --count "$HELD" "${MODEL_ARGS[@]}" \
        --csv "$OUT/shapes-spectra.csv" --svg "$OUT/shapes-spectra.svg" | tee -a "$R"
    pairs=()
    for i in "${!NAMES[@]}"; do pairs+=("shapes-${NAMES[$i]}:${TITLES[$i]}"); done
    plot_trajectories shapes "$SHAPES_COUNT" "${pairs[@]}"
    for m in "${NAMES[@]}"; do
        run "$CLI" interpolate --data shapes --model "$OUT/shapes-$m.ckpt" --pairs 6 --steps 10 \
            --out "$OUT/shapes-interp-$m.png" | tee -a "$R"
    done
fi
;; esac

# ------------------------------------------------------------------- MNIST
case " $PARTS " in *" mnist "*) ;; *) log "# done $(date -u +%Y-%m-%dT%H:%MZ)"; exit 0 ;; esac
if [ ! -d "$MNIST_DIR" ]; then
    log "## MNIST: skipped, no $MNIST_DIR"
    exit 0
fi
M="--data mnist --dir $MNIST_DIR --count $MNIST_COUNT --epochs $MNIST_EPOCHS --batch 32 --lr 1e-4"
train_all mnist "$M" "ae|AE|--model ae
vae|VAE|--model vae
irmae|IRMAE l=8|--model irmae -l 8"
if [ ${#NAMES[@]} -eq 0 ]; then log "# done $(date -u +%Y-%m-%dT%H:%MZ)"; exit 0; fi
log "## MNIST: spectra of $HELD test images"
run "$CLI" spectrum --data mnist --dir "$MNIST_DIR" --count "$HELD" "${MODEL_ARGS[@]}" \
    --csv "$OUT/mnist-spectra.csv" --svg "$OUT/mnist-spectra.svg" | tee -a "$R"
for m in "${NAMES[@]}"; do
    run "$CLI" reconstruct --data mnist --dir "$MNIST_DIR" --model "$OUT/mnist-$m.ckpt" --count 16 \
        --out "$OUT/mnist-recon-$m.png" | tee -a "$R"
    run "$CLI" interpolate --data mnist --dir "$MNIST_DIR" --model "$OUT/mnist-$m.ckpt" --pairs 6 --steps 10 \
        --out "$OUT/mnist-interp-$m.png" | tee -a "$R"
    for s in pca mvg gmm; do
        run "$CLI" sample --data mnist --dir "$MNIST_DIR" --model "$OUT/mnist-$m.ckpt" --method "$s" \
            --out "$OUT/mnist-$s-$m.png" | tee -a "$R"
    done
done
log "## MNIST: test accuracy (%) with N labelled training images"
for n in $LABELS; do
    for head in linear mlp; do
        for m in "${NAMES[@]}"; do
            acc=$(run "$CLI" classify --dir "$MNIST_DIR" --model "$OUT/mnist-$m.ckpt" --labels "$n" --head "$head" \
                  --head-steps "$HEAD_STEPS" --threads "$THREADS" | sed -n 's/^accuracy=//p')
            log "classify N=$n head=$head model=$m accuracy=$acc"
        done
        acc=$(run "$CLI" classify --dir "$MNIST_DIR" --model "$OUT/mnist-${NAMES[0]}.ckpt" --labels "$n" \
              --head "$head" --head-steps "$HEAD_STEPS" --threads "$THREADS" --supervised | sed -n 's/^accuracy=//p')
        log "classify N=$n head=$head model=supervised accuracy=$acc"
    done
done
log "## MNIST: Frechet distance (pixel-MLP classifier features, not FID) of samples vs test images"
for method in mvg gmm; do
    for m in "${NAMES[@]}"; do
        out=$(run "$CLI" frechet --data mnist --dir "$MNIST_DIR" --model "$OUT/mnist-$m.ckpt" --method "$method" \
              --threads "$THREADS")
        log "frechet method=$method model=$m" $(echo "$out" | sed -n 's/^\(frechet[a-z_]*=[^ ]*\).*/\1/p')
    done
done
log "# done $(date -u +%Y-%m-%dT%H:%MZ)"
