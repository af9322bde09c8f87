#!/bin/sh
# openblas_core.sh BUILD_DIR CC - the OPENBLAS_CORETYPE that `make bench` and
# `make bench-torch` run OpenBLAS (and PyTorch, which calls it) with, printed
# on stdout as OPENBLAS_CORETYPE=NAME (nothing = let OpenBLAS detect the CPU
# itself); a note on stderr when it overrides the detection.
#
# OpenBLAS picks its kernels by CPU model. A model newer than the library
# (Debian 12's OpenBLAS 0.3.21 on an Intel Xeon of family 6 model 207, seen
# on 2026-12-03) is taken for a "Prescott" and runs SSE3 kernels: 33 GFLOP/s
# where its AVX-512 kernels give 155 on the same core. A peer measured that
# way would flatter irmae.h, so when OpenBLAS reports a core older than the
# instructions /proc/cpuinfo lists, this names the newest core it has for
# those instructions. OPENBLAS_CORE=name (make bench OPENBLAS_CORE=Haswell)
# forces one; OPENBLAS_CORE=detect keeps OpenBLAS's own choice.
B=${1:-build}; CC=${2:-cc}
case ${OPENBLAS_CORE:-auto} in
    detect) exit 0 ;;
    auto) ;;
    *) echo "OPENBLAS_CORETYPE=$OPENBLAS_CORE"; exit 0 ;;
esac
probe="$B/openblas_corename"
printf '#include <stdio.h>\n#include <cblas.h>\nint main(void){puts(openblas_get_corename());return 0;}\n' |
    "$CC" -x c - -o "$probe" -lopenblas 2>/dev/null || exit 0
core=$(env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$probe" 2>/dev/null)
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
want=
case " $flags " in
    *" avx512f "*) want=SkylakeX ;;
    *" avx2 "*) want=Haswell ;;
esac
case $(echo "$core" | tr 'A-Z' 'a-z') in
    prescott|core2|penryn|dunnington|nehalem|atom|katmai|coppermine|northwood|banias|generic|unknown)
        if [ -n "$want" ]; then
            echo "openblas_core.sh: OpenBLAS takes this CPU for a '$core' (it does not know the model);" \
                 "running it with OPENBLAS_CORETYPE=$want, the kernels for the CPU's instructions" \
                 "(OPENBLAS_CORE=detect keeps '$core')" >&2
            echo "OPENBLAS_CORETYPE=$want"
        fi ;;
esac
exit 0
