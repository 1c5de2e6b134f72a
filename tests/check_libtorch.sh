#!/usr/bin/env bash
# Every program and shared library the build made loads exactly one libc10, and
# it is the chosen LibTorch's (DESIGN: link only the chosen LibTorch; a second
# one, e.g. Debian's python3-torch in /usr/lib, aborts the process at start).
# And every object file was compiled against the chosen LibTorch's headers: a
# target that forgets to link LibTorch but includes its headers still compiles
# where Debian's libtorch-dev put ATen/c10/torch in /usr/include — against the
# wrong version (Ninja builds: the compiler's recorded header dependencies).
# usage: check_libtorch.sh BUILD_DIR TORCH_LIBDIR
set -euo pipefail
build="$1"
torchlib="$(cd "$2" && pwd -P)"
checked=0
failed=0
while IFS= read -r -d '' f; do
    # ELF files only: executables and shared libraries.
    head -c 4 "$f" 2>/dev/null | grep -q "ELF" || continue
    readelf -d "$f" 2>/dev/null | grep -q '(NEEDED)' || continue
    needed=$(readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(libc10\.so[^]]*\)\].*/\1/p')
    [ -n "$needed" ] || continue # links no LibTorch (e.g. the Qt-only canvas test)
    checked=$((checked + 1))
    count=$(printf '%s\n' "$needed" | wc -l)
    if [ "$count" != 1 ]; then
        echo "FAIL $f needs $count libc10 libraries: $(echo $needed)"
        failed=$((failed + 1))
        continue
    fi
    resolved=$(ldd "$f" | awk -v n="$needed" '$1 == n { print $3 }')
    real=$(readlink -f "$resolved" 2>/dev/null || true)
    case "$real" in
        "$torchlib"/*) ;;
        *) echo "FAIL $f loads $needed from '${resolved:-nowhere}', not from $torchlib"; failed=$((failed + 1)) ;;
    esac
    # No other LibTorch library from elsewhere either.
    others=$(ldd "$f" | awk '$1 ~ /^lib(torch|c10)/ { print $3 }' | while read -r p; do
        r=$(readlink -f "$p" 2>/dev/null || echo "$p")
        case "$r" in "$torchlib"/*) ;; *) echo "$p" ;; esac
    done)
    if [ -n "$others" ]; then
        echo "FAIL $f loads LibTorch libraries from outside $torchlib: $(echo $others)"
        failed=$((failed + 1))
    fi
done < <(find "$build" -type f \( -perm -u+x -o -name '*.so' \) -not -path '*/CMakeFiles/*' -print0)
echo "checked $checked binaries that link LibTorch: $failed wrong"

headers_failed=0
if [ -f "$build/build.ninja" ] && command -v ninja >/dev/null; then
    torchinclude="$(cd "$torchlib/../include" 2>/dev/null && pwd -P || echo "$torchlib/../include")"
    # Header paths of the LibTorch trees (ATen, c10, torch, caffe2) outside the chosen one's include folder.
    foreign=$(ninja -C "$build" -t deps 2>/dev/null |
        awk '/^[^ ]/ { target = $1 } /^    / { print target " " $1 }' |
        grep -E ' [^ ]*/(ATen|c10|torch|caffe2)/' | grep -v " $torchinclude/" | sort -u || true)
    if [ -n "$foreign" ]; then
        headers_failed=$(printf '%s\n' "$foreign" | awk '{ print $1 }' | sort -u | wc -l)
        echo "FAIL $headers_failed object files include LibTorch headers from outside $torchinclude, e.g.:"
        printf '%s\n' "$foreign" | head -5
    else
        echo "checked the headers of every object file: all LibTorch headers from $torchinclude"
    fi
else
    echo "headers: not checked (not a Ninja build)"
fi
[ "$checked" -gt 0 ] && [ "$failed" = 0 ] && [ "$headers_failed" = 0 ]
