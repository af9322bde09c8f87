#!/bin/sh
# Runs each test program, shows its output, and sums the "N passed, M failed"
# lines into one closing line, with each program's wall time (to see where a
# CI run's minutes go). Exits non-zero if any program fails.
total_p=0; total_f=0; total_s=0; bad=0
for t in "$@"; do
    echo "== $t"
    t0=$(date +%s)
    out=$($t 2>&1); rc=$?
    printf '%s\n' "$out"
    echo "-- $t: $(( $(date +%s) - t0 )) s"
    line=$(printf '%s\n' "$out" | grep -E '^test_[a-z0-9_]+: [0-9]+ passed, [0-9]+ failed' | tail -n 1)
    p=$(printf '%s\n' "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
    f=$(printf '%s\n' "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    s=$(printf '%s\n' "$out" | grep -c '^SKIP')
    [ -n "$line" ] || { echo "$t: no summary line"; p=0; f=1; }
    if [ $rc -ne 0 ] && [ "$f" = 0 ]; then f=1; fi
    [ $rc -ne 0 ] && bad=1
    total_p=$((total_p + p)); total_f=$((total_f + f)); total_s=$((total_s + s))
done
echo "total: $total_p passed, $total_f failed, $total_s skipped"
[ $bad -eq 0 ] && [ $total_f -eq 0 ]
