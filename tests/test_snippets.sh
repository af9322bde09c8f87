#!/bin/sh
# test_snippets.sh - the code in the documentation is code: compiles and runs
# the quick start in irmae.h's opening comment and every ```c block of
# README.md, extracted from those files as they stand (never from copies),
# and README's PyTorch -> irmae.h Python snippet with the import command
# that follows it (when python3-torch is there; SKIP otherwise).
#
#   sh tests/test_snippets.sh CC FLAGS...        (from the repository root)
#
# A block that defines IRMAE_IMPLEMENTATION is a file of its own and gets an
# empty main(); any other block is the body of main() in a file that includes
# the implementation and <stdio.h>, <stdlib.h>, <string.h>. Each must compile
# warning-free with the given flags (plus -Werror) and exit 0 (with
# IRMAE_TEST_QUICK set they are only compiled: each trains on 10,000 images,
# minutes on the scalar path; a SKIP line says so). The last line
# is "test_snippets: N passed, M failed".

CCF=${*:-cc -O2 -std=c99 -Wall -Wextra -pedantic}
T=$(mktemp -d 2>/dev/null || { mkdir -p "/tmp/test_snippets.$$" && echo "/tmp/test_snippets.$$"; })
trap 'rm -rf "$T"' EXIT INT TERM
pass=0; fail=0
ROOT=$(pwd)

# the quick start: the indented lines between "Quick start" and "Build:" that
# are code (7 spaces of indent), with the indent removed
awk '/^   Quick start/ { on = 1; next } on && /^   Build:/ { exit } on && /^       / { print substr($0, 8) }' \
    irmae.h > "$T/snip_quickstart.txt"
# README: every ```c block (fences may be indented), numbered in order
awk -v dir="$T" '
    /^ *```c *$/ { n++; on = 1; f = sprintf("%s/snip_readme%d.txt", dir, n); printf "" > f; next }
    on && /^ *``` *$/ { on = 0; close(f); next }
    on { sub(/^   /, ""); print >> f }' README.md

run_one() {
    name=$1; body=$2; src="$T/$name.c"
    if grep -q 'define IRMAE_IMPLEMENTATION' "$body"; then
        sed "s|#include \"irmae.h\"|#include \"$ROOT/irmae.h\"|" "$body" > "$src"
        printf 'int main(void) { return 0; }\n' >> "$src"
    else
        {
            printf '#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n'
            printf '#define IRMAE_IMPLEMENTATION\n#include "%s/irmae.h"\n' "$ROOT"
            printf 'int main(void)\n{\n'
            cat "$body"
            printf '    return 0;\n}\n'
        } > "$src"
    fi
    if ! $CCF -Werror "$src" -o "$T/$name" -lm > "$T/$name.log" 2>&1; then
        fail=$((fail + 1)); echo "FAIL $name: does not compile"; sed 's/^/     | /' "$T/$name.log" | head -20; return
    fi
    pass=$((pass + 1)); echo "ok   $name compiles"
    if [ -n "$IRMAE_TEST_QUICK" ]; then
        echo "SKIP: $name is not run with IRMAE_TEST_QUICK (it trains on 10,000 images; the default build runs it)"
        return
    fi
    if "$T/$name" > "$T/$name.out" 2>&1; then
        pass=$((pass + 1)); echo "ok   $name runs: $(tail -n 1 "$T/$name.out")"
    else
        fail=$((fail + 1)); echo "FAIL $name exits non-zero"; tail -n 5 "$T/$name.out" | sed 's/^/     | /'
    fi
}

if [ -s "$T/snip_quickstart.txt" ]; then run_one quickstart "$T/snip_quickstart.txt"
else fail=$((fail + 1)); echo "FAIL no quick start found in irmae.h"; fi
n=0
for f in "$T"/snip_readme*.txt; do
    [ -f "$f" ] || continue
    n=$((n + 1))
    run_one "readme$(basename "$f" .txt | sed 's/snip_readme//')" "$f"
done
if [ "$n" -lt 2 ]; then fail=$((fail + 1)); echo "FAIL only $n C blocks found in README.md"; fi

# README's PyTorch -> irmae.h snippet (the ```python block that starts with
# "# PyTorch -> irmae.h"), then the import command after it, with python3-torch
PY=${IRMAE_PYTHON:-/usr/bin/python3}
awk '/^```python *$/ { on = 1; first = 1; next } on && /^``` *$/ { on = 0; next }
     on && first { first = 0; keep = ($0 ~ /^# PyTorch -> irmae.h/) } on && keep { print }' README.md > "$T/torch_snippet.py"
if [ ! -s "$T/torch_snippet.py" ]; then
    fail=$((fail + 1)); echo "FAIL README.md has no '# PyTorch -> irmae.h' python block"
elif [ -n "$IRMAE_TEST_QUICK" ]; then
    echo "SKIP: the PyTorch snippet is not run with IRMAE_TEST_QUICK"
elif ! "$PY" -c "import torch, numpy" > /dev/null 2>&1; then
    echo "SKIP: the PyTorch snippet needs torch and numpy in $PY"
elif (cd "$T" && "$PY" torch_snippet.py > torch_snippet.log 2>&1); then
    pass=$((pass + 1)); echo "ok   the PyTorch snippet trains and saves torch.safetensors"
    cmd=$(grep -m 1 '^./irmae import --weights torch.safetensors ' README.md | sed "s|^./irmae|$ROOT/irmae|; s|torch.safetensors|$T/torch.safetensors|; s|torch.ckpt|$T/torch.ckpt|")
    if sh -c "$cmd" > "$T/import.log" 2>&1 && [ -s "$T/torch.ckpt" ]; then
        pass=$((pass + 1)); echo "ok   README's import command makes a checkpoint of it: $(tail -n 1 "$T/import.log")"
    else
        fail=$((fail + 1)); echo "FAIL README's import command: $cmd"; tail -n 5 "$T/import.log" | sed 's/^/     | /'
    fi
else
    fail=$((fail + 1)); echo "FAIL the PyTorch snippet"; tail -n 8 "$T/torch_snippet.log" | sed 's/^/     | /'
fi
echo "test_snippets: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
