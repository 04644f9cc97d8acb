#!/usr/bin/env bash
# `make install DESTDIR=...`, then build a small program against the installed urpoll.pc and run
# it; `make uninstall` must leave nothing behind.
set -euo pipefail
build=$1
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
record() { tests/run-suite.sh --record install "$1"; }

fail() { echo "install-test: $*" >&2; record fail; exit 1; }

make --no-print-directory -s install DESTDIR="$dest" PREFIX=/usr/local >/dev/null ||
	fail "make install failed"
pc=$dest/usr/local/lib/pkgconfig
flags=$(PKG_CONFIG_SYSROOT_DIR=$dest PKG_CONFIG_PATH=$pc pkg-config --cflags --libs urpoll) ||
	fail "pkg-config cannot read the installed urpoll.pc"
# shellcheck disable=SC2086
cc -std=gnu11 -Wall -Werror -o "$dest/hello" tests/package/hello.c $flags ||
	fail "cannot compile against the installed header and library"
out=$(LD_LIBRARY_PATH=$dest/usr/local/lib "$dest/hello") || fail "installed program failed: $out"
ldd_out=$(LD_LIBRARY_PATH=$dest/usr/local/lib ldd "$dest/hello")
grep -q "liburpoll.so.0 => $dest/usr/local/lib" <<<"$ldd_out" ||
	fail "program did not load the installed liburpoll.so.0"
make --no-print-directory -s uninstall DESTDIR="$dest" PREFIX=/usr/local >/dev/null
left=$(find "$dest/usr" -type f -o -type l)
[ -z "$left" ] || fail "uninstall left files: $left"
echo "install-test: ok ($out)"
record pass
