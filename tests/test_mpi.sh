#!/bin/sh
# test_mpi.sh - data-parallel training over MPI (make test-mpi; needs
# ./irmae-mpi, ./irmae, build/test_mpi_lib and build/ckpt_diff, which
# `make test-mpi` builds). Without mpicc/mpirun it prints SKIP.
#
# Checked, on tiny data (shapes: 35 images, global batch 7 = 5 steps per
# epoch, 2 epochs; MNIST: the committed 100-image slice):
#   - the library test (fixed-order sum, sharded gradients vs one process,
#     VAE noise, clipping, NaN on one rank) with 1, 2 and 3 ranks;
#   - one rank of the MPI build = the plain build, bit for bit;
#   - 2 and 3 ranks give the parameters of one process with the same global
#     batch, to TOL (below), and two 2-rank runs are bit-identical;
#   - stop + resume with 2 ranks = straight 2-rank run, bit for bit; resume
#     with a different number of ranks (2 -> 1, 1 -> 2) continues to TOL;
#   - a rank that cannot read its data (test hook IRMAE_MPI_TEST_FAIL_RANK)
#     or a NaN on one rank stops every rank with exit status 1 and a clear
#     message, within a `timeout` (a hang fails the check), without
#     touching the checkpoint; only rank 0 prints and writes.
#
# TOL = 1e-6 on every parameter (absolute; parameters are ~0.01-0.3): the
# runs differ only in the order of float additions (each GEMM's sum over the
# batch is split at the shard boundary, then the shards are added). That
# perturbs a gradient element by ~1e-7 relative, more where terms cancel;
# Adam turns it into a parameter change of at most ~lr x (relative
# perturbation) per step, i.e. <= 10 steps x 1e-4 x 1e-3 = 1e-6 even for
# 1e-3 relative. Measured here: max |diff| ~2e-8 after 10 steps. A wrong
# shard weight (1/2 instead of 3/7 and 4/7) gives 3.5e-4 after 6 steps.
# One line per check; the last line is "test_mpi: N passed, M failed".

CLI=./irmae-mpi
PLAIN=./irmae
DIFF=build/ckpt_diff
LIB=build/test_mpi_lib
TOL=1e-6
DATA=tests/data
pass=0; fail=0

if ! command -v mpirun >/dev/null 2>&1 || ! command -v mpicc >/dev/null 2>&1; then
    echo "SKIP: mpicc/mpirun not found (Debian: apt-get install openmpi-bin libopenmpi-dev)"
    echo "test_mpi: 0 passed, 0 failed"
    exit 0
fi
for f in $CLI $PLAIN $DIFF $LIB; do
    [ -x "$f" ] || { echo "FAIL $f is missing (run make test-mpi)"; echo "test_mpi: 0 passed, 1 failed"; exit 1; }
done

# OpenMPI refuses root without these; --oversubscribe lets 3 ranks share 2 cores.
OMPI_ALLOW_RUN_AS_ROOT=1; OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
OMP_NUM_THREADS=1; OMP_WAIT_POLICY=passive
export OMPI_ALLOW_RUN_AS_ROOT OMPI_ALLOW_RUN_AS_ROOT_CONFIRM OMP_NUM_THREADS OMP_WAIT_POLICY
unset IRMAE_TEST_POISON IRMAE_MPI_TEST_FAIL_RANK
MPIRUN="mpirun --oversubscribe"

T=$(mktemp -d 2>/dev/null || { mkdir -p "/tmp/test_mpi.$$" && echo "/tmp/test_mpi.$$"; })
trap 'rm -rf "$T"' EXIT INT TERM

ok()  { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; if [ -n "$2" ] && [ -f "$2" ]; then tail -n 8 "$2" | sed 's/^/     | /'; fi; }
# run NP OUT ARGS...: the CLI on NP ranks (NP = 0: the plain build), bounded by a timeout
run() {
    np=$1; shift
    if [ "$np" = 0 ]; then timeout 120 $PLAIN "$@" >"$T/out" 2>"$T/err"
    else timeout 120 $MPIRUN -np "$np" $CLI "$@" >"$T/out" 2>"$T/err"; fi
}
close() { # NAME A B : parameters within TOL
    if $DIFF "$2" "$3" $TOL >"$T/diff" 2>&1; then ok "$1: $(cat "$T/diff")"; else bad "$1" "$T/diff"; fi
}
same() { # NAME A B : byte-identical files
    if cmp -s "$2" "$3"; then ok "$1"; else bad "$1: $2 and $3 differ"; fi
}

# 1. the library
for np in 1 2 3; do
    if timeout 120 $MPIRUN -np $np $LIB >"$T/lib" 2>&1; then ok "test_mpi_lib on $np ranks: $(tail -n 1 "$T/lib")"
    else cat "$T/lib"; bad "test_mpi_lib on $np ranks (exit $?)"; fi
done

# 2. the CLI: one process vs 1, 2, 3 ranks
A="train --data shapes --count 35 --batch 7 --epochs 2 --heldout 16 --threads 1 --seed 3"
run 0 $A --out "$T/plain.ckpt" || bad "plain build trains" "$T/err"
run 1 $A --out "$T/np1.ckpt" || bad "1 rank trains" "$T/err"
same "1 rank of the MPI build = the plain build (checkpoints byte-identical)" "$T/plain.ckpt" "$T/np1.ckpt"
if run 2 $A --out "$T/np2.ckpt"; then
    ok "2 ranks train (exit 0)"
    [ "$(grep -c '^saved' "$T/out")" = 1 ] && [ "$(grep -c '^epoch 2/2  mean loss' "$T/err")" = 1 ] &&
        grep -q 'rank@1%' "$T/err" && grep -q '2 MPI ranks (3 images per rank' "$T/err" &&
        ! grep -q 'rank 1 of 2' "$T/err" &&
        ok "2 ranks: rank 0 alone prints (one 'saved' line, one line per epoch with the held-out rank)" ||
        bad "2 ranks: output" "$T/err"
else bad "2 ranks train (exit $?)" "$T/err"; fi
close "2 ranks, batch 7 (shards 3 + 4) vs one process" "$T/plain.ckpt" "$T/np2.ckpt"
run 2 $A --out "$T/np2b.ckpt" || bad "2 ranks, second run" "$T/err"
same "two 2-rank runs give byte-identical checkpoints" "$T/np2.ckpt" "$T/np2b.ckpt"
run 3 $A --out "$T/np3.ckpt" || bad "3 ranks train" "$T/err"
close "3 ranks, batch 7 (shards 2 + 2 + 3) vs one process" "$T/plain.ckpt" "$T/np3.ckpt"

# 3. resume: mid-epoch stop after 4 steps, then continue to the end
run 2 $A --max-steps 4 --out "$T/r.ckpt" || bad "2 ranks, stop at step 4" "$T/err"
cp "$T/r.ckpt" "$T/r1.ckpt"
run 2 $A --resume "$T/r.ckpt" || bad "2 ranks resume" "$T/err"
same "2 ranks: stop at step 4 + resume on 2 ranks = straight (byte-identical)" "$T/np2.ckpt" "$T/r.ckpt"
run 1 $A --resume "$T/r1.ckpt" || bad "resume a 2-rank checkpoint on 1 rank" "$T/err"
close "stopped on 2 ranks, resumed on 1 rank vs one process" "$T/plain.ckpt" "$T/r1.ckpt"
run 0 $A --max-steps 4 --out "$T/r2.ckpt" || bad "plain, stop at step 4" "$T/err"
run 2 $A --resume "$T/r2.ckpt" || bad "resume a 1-process checkpoint on 2 ranks" "$T/err"
close "stopped in one process, resumed on 2 ranks vs one process" "$T/plain.ckpt" "$T/r2.ckpt"

# 4. failures stop every rank, quickly, with a message
MN="$T/mnist"; mkdir -p "$MN"
for s in train t10k; do
    cp "$DATA/mnist100-images-idx3-ubyte.gz" "$MN/$s-images-idx3-ubyte.gz"
    cp "$DATA/mnist100-labels-idx1-ubyte.gz" "$MN/$s-labels-idx1-ubyte.gz"
done
M="train --data mnist --dir $MN --batch 8 --epochs 1 --max-steps 2 --heldout 0 --threads 1"
run 2 $M --out "$T/mn.ckpt" && [ -f "$T/mn.ckpt" ] && ok "mnist on 2 ranks trains" || bad "mnist on 2 ranks" "$T/err"
for r in 1 0; do
    rm -f "$T/fail.ckpt"
    t0=$(date +%s)
    IRMAE_MPI_TEST_FAIL_RANK=$r run 2 $M --out "$T/fail.ckpt"; got=$?
    t1=$(date +%s)
    # rank 0 prints the failure of any rank (the failing rank's own output may be cut by mpirun's abort)
    if [ $got -ne 0 ] && [ $got -ne 124 ] && grep -q "rank 0 of 2) train: .*no /nonexistent/IRMAE_MPI_TEST_FAIL_RANK" "$T/err" &&
       { [ $r = 0 ] || grep -q "rank 1 of 2 failed: no /nonexistent/.*; every rank stops" "$T/err"; } && [ ! -f "$T/fail.ckpt" ]; then
        ok "rank $r cannot read its data: every rank exits ($got) in $((t1 - t0)) s, message names the rank and the path"
    else bad "rank $r cannot read its data: exit $got (124 = timeout, i.e. a hang)" "$T/err"; fi
done
IRMAE_MPI_TEST_FAIL_RANK=1 run 2 $A --out "$T/fail.ckpt"; got=$?
if [ $got -ne 0 ] && [ $got -ne 124 ] && grep -q "rank 1 of 2 failed: cannot make the training data" "$T/err"; then
    ok "shapes, rank 1 fails: every rank exits ($got)"
else bad "shapes, rank 1 fails: exit $got" "$T/err"; fi
run 2 $A --max-steps 2 --out "$T/nan.ckpt" || bad "2 ranks, 2 steps" "$T/err"
cp "$T/nan.ckpt" "$T/nan2.ckpt"
IRMAE_TEST_POISON=3 run 2 $A --resume "$T/nan.ckpt" --save-every 1; got=$?
if [ $got -ne 0 ] && [ $got -ne 124 ] && grep -q "non-finite value" "$T/err" && grep -q "rank 0 of 2" "$T/err" &&
   [ "$(grep -c 'non-finite' "$T/err")" = 1 ] && cmp -s "$T/nan.ckpt" "$T/nan2.ckpt"; then
    ok "a NaN in rank 0's shard at step 3: every rank exits ($got), one message, checkpoint untouched"
else bad "NaN on 2 ranks: exit $got" "$T/err"; fi
run 2 spectrum --model "$T/np2.ckpt" --count 16; got=$?
[ $got -eq 2 ] && grep -q "only train runs on several MPI ranks" "$T/err" &&
    ok "spectrum on 2 ranks: usage error (exit 2)" || bad "spectrum on 2 ranks: exit $got" "$T/err"

echo "test_mpi: $pass passed, $fail failed"
[ $fail -eq 0 ]
