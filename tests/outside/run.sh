#!/bin/sh
# Builds and runs tests/outside/app/app.c as a project outside this
# repository would, each of the ways the README documents:
#   1. copy irmae.h next to your sources, one cc line
#   2. make install PREFIX=... + pkg-config (then make uninstall removes it)
#   3. CMake add_subdirectory -> irmae::irmae
#   4. CMake FetchContent (offline: a file:// git clone of the working tree)
# Usage (from the repository root): sh tests/outside/run.sh [CC]
CC=${1:-cc}
ROOT=$(pwd)
T=$(mktemp -d 2>/dev/null || { mkdir -p "/tmp/irmae_outside.$$" && echo "/tmp/irmae_outside.$$"; })
trap 'rm -rf "$T"' EXIT INT TERM
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ -f "$2" ] && tail -n 15 "$2" | sed 's/^/     | /'; }
run() { name=$1; shift; if "$@" > "$T/log" 2>&1; then ok "$name"; else bad "$name" "$T/log"; fi; }

# 1. copy the file
mkdir -p "$T/copy"
cp irmae.h tests/outside/app/app.c "$T/copy/"
run "copy: cc -O2 -fopenmp app.c -lm" sh -c "cd '$T/copy' && $CC -O2 -std=c99 -Wall -Wextra -pedantic -Werror -fopenmp -I. app.c -o app -lm && ./app"
run "copy: without OpenMP" sh -c "cd '$T/copy' && $CC -O2 -std=c99 -I. app.c -o app1 -lm && ./app1"

# 2. make install + pkg-config, then uninstall
P="$T/prefix"
run "make install PREFIX=$P" make -s install PREFIX="$P"
[ -f "$P/include/irmae.h" ] && [ -f "$P/lib/pkgconfig/irmae.pc" ] && cmp -s irmae.h "$P/include/irmae.h" \
    && ok "installed irmae.h and irmae.pc" || bad "installed irmae.h and irmae.pc"
run "pkg-config --modversion matches IRMAE_VERSION_*" sh -c "
    v=\$(PKG_CONFIG_PATH='$P/lib/pkgconfig' pkg-config --modversion irmae) &&
    h=\$(sed -n 's/^#define IRMAE_VERSION_[A-Z]* //p' irmae.h | paste -sd.) && echo \"\$v vs \$h\" && [ \"\$v\" = \"\$h\" ]"
run "pkg-config: cc \$(pkg-config --cflags --libs irmae) app.c" sh -c "
    cd '$T' && $CC -O2 -std=c99 -Wall -Werror -fopenmp '$ROOT/tests/outside/app/app.c' -o app_pc \
      \$(PKG_CONFIG_PATH='$P/lib/pkgconfig' pkg-config --cflags --libs irmae) && ./app_pc"
run "make uninstall PREFIX=$P" make -s uninstall PREFIX="$P"
[ ! -e "$P/include/irmae.h" ] && [ ! -e "$P/lib/pkgconfig/irmae.pc" ] && ok "uninstall removed both files" \
    || bad "uninstall removed both files"
run "make install DESTDIR=$T/stage PREFIX=/usr" make -s install DESTDIR="$T/stage" PREFIX=/usr
grep -q '^includedir=/usr/include$' "$T/stage/usr/lib/pkgconfig/irmae.pc" 2>/dev/null && [ -f "$T/stage/usr/include/irmae.h" ] \
    && ok "DESTDIR staging keeps PREFIX paths in irmae.pc" || bad "DESTDIR staging keeps PREFIX paths in irmae.pc"

# 3. CMake add_subdirectory
run "cmake add_subdirectory -> irmae::irmae" sh -c "
    cmake -S tests/outside/cmake-subdir -B '$T/sub' -DIRMAE_SOURCE_DIR='$ROOT' -DCMAKE_C_COMPILER=$CC &&
    cmake --build '$T/sub' && '$T/sub/app'"

# 4. CMake FetchContent from a file:// git repository of the working tree
run "git repository of the working tree" sh -c "
    mkdir -p '$T/repo' && cp irmae.h CMakeLists.txt '$T/repo/' && cd '$T/repo' && git init -q &&
    git add irmae.h CMakeLists.txt && git -c user.name=ci -c user.email=ci@localhost commit -q -m snapshot"
run "cmake FetchContent -> irmae::irmae" sh -c "
    cmake -S tests/outside/cmake-fetch -B '$T/fetch' -DIRMAE_GIT_URL='file://$T/repo' -DIRMAE_GIT_TAG=HEAD \
      -DFETCHCONTENT_FULLY_DISCONNECTED=OFF -DCMAKE_C_COMPILER=$CC &&
    cmake --build '$T/fetch' && '$T/fetch/app'"

echo "test_install: $pass passed, $fail failed"
[ $fail -eq 0 ]
