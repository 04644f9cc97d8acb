#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# `make install` and `make uninstall`, into staging directories (DESTDIR), in two rounds:
#
#  1. PREFIX=/usr into an empty stage: the library (in /usr/lib/<triplet> where the system is
#     multiarch, else /usr/lib) with its links, urpoll.h, urpoll.pc saying prefix=/usr, every
#     man page, LICENSE, and urpoll-trace, -proxy, -echo and -bench in /usr/bin, each with its
#     page and without an RPATH or RUNPATH; the tools run from the stage; a program built
#     through the staged urpoll.pc runs against the staged library, whose urp_version_*() are
#     the header's macros and urpoll.pc's version; install says one line about ldconfig and
#     rebuilds nothing of the build tree. Uninstall leaves the stage empty.
#  2. PREFIX=/usr/local, twice, into a stage that already holds directories and a file of
#     others: urpoll.pc is made again for the new prefix; after a file of others lands in a
#     directory install created, uninstall removes what install created and nothing else.
#
#   tests/package/install-test.sh BUILD_DIR      (the plain build: make test-install)
#
# The result is recorded as "install" (tests/run-suite.sh --record).
set -euo pipefail
build=${1:?usage: install-test.sh BUILD_DIR}
tools=(urpoll-trace urpoll-proxy urpoll-echo urpoll-bench)
tmp=$(mktemp -d)
# On a failure before uninstall, the install manifests of the stages stay in build/install/
# (named after DESTDIR and PREFIX, / as _): they go with the stages.
trap 'rm -rf "$tmp" build/install/manifest"${tmp//\//_}"_*' EXIT
record() { tests/run-suite.sh --record install "$1"; }
fail() {
	echo "install-test: $*" >&2
	record fail
	exit 1
}

# A make of its own: not the -j, -k or variables of a make that runs this test.
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -s "$@"; }

# The build tree's library and tools, with their times: an install must not rebuild them.
build_state() { stat -c '%n %Y' "$build"/liburpoll.so.* "$build"/tools/urpoll-*; }
before=$(build_state)

# ---- 1. PREFIX=/usr, into an empty stage ----
stage=$tmp/stage1
mkdir "$stage"
mk install DESTDIR="$stage" PREFIX=/usr >"$tmp/install.out" 2>&1 ||
	fail "make install DESTDIR=$stage PREFIX=/usr failed: $(cat "$tmp/install.out")"
[ "$(build_state)" = "$before" ] || fail "make install rebuilt the build tree's library or tools"
[ "$(grep -c ldconfig "$tmp/install.out")" -eq 1 ] ||
	fail "make install with a DESTDIR should say one line about ldconfig: $(cat "$tmp/install.out")"

# The multiarch rule, stated again: /usr/lib/<triplet> when the compiler names one that exists.
libdir=/usr/lib
triplet=$(cc -print-multiarch 2>/dev/null || true)
[ -n "$triplet" ] && [ -d "/usr/lib/$triplet" ] && libdir=/usr/lib/$triplet
lib=$stage$libdir

version=$(sed -n 's/^Version: //p' "$lib/pkgconfig/urpoll.pc" 2>/dev/null) && [ -n "$version" ] ||
	fail "no urpoll.pc in $lib/pkgconfig: $(cd "$stage" && find . -name urpoll.pc)"
soname=liburpoll.so.${version%%.*}
for f in "$lib/liburpoll.so.$version" "$lib/$soname" "$lib/liburpoll.so" "$lib/liburpoll.a" \
	"$stage/usr/include/urpoll.h" "$stage/usr/share/doc/urpoll/LICENSE"; do
	[ -e "$f" ] || fail "make install put no ${f#"$stage"}"
done
[ "$(readlink "$lib/$soname")" = "liburpoll.so.$version" ] &&
	[ "$(readlink "$lib/liburpoll.so")" = "$soname" ] || fail "wrong library links in $libdir"
cmp -s include/urpoll.h "$stage/usr/include/urpoll.h" || fail "the installed urpoll.h differs"
grep -qx 'prefix=/usr' "$lib/pkgconfig/urpoll.pc" && grep -qx "libdir=$libdir" "$lib/pkgconfig/urpoll.pc" ||
	fail "urpoll.pc does not say prefix=/usr and libdir=$libdir: $(cat "$lib/pkgconfig/urpoll.pc")"
for page in $(cd docs/man && find . -name '*.[1-8]' | sed 's|^\./||'); do
	cmp -s "docs/man/$page" "$stage/usr/share/man/$page" || fail "man page $page not installed"
done
for tool in "${tools[@]}"; do
	bin=$stage/usr/bin/$tool
	[ -x "$bin" ] || fail "make install put no /usr/bin/$tool"
	[ -f "$stage/usr/share/man/man1/$tool.1" ] || [ -f "$stage/usr/share/man/man8/$tool.8" ] ||
		fail "$tool: no page in man1 or man8"
	dynamic=$(readelf -d "$bin") || fail "readelf -d /usr/bin/$tool failed"
	! grep -E 'R(UN)?PATH' <<<"$dynamic" ||
		fail "/usr/bin/$tool carries an RPATH or RUNPATH (above): the installed tools must not"
	LD_LIBRARY_PATH=$lib "$bin" --help >/dev/null 2>&1 || fail "the installed $tool --help failed"
	if [ "$tool" != urpoll-trace ]; then # the tracer links libbpf, not the library
		loads=$(LD_LIBRARY_PATH=$lib ldd "$bin") # not piped: grep -q would end ldd early
		grep -qF "$soname => $lib/$soname" <<<"$loads" ||
			fail "the installed $tool does not load the staged $soname: $loads"
	fi
done
for example in urpoll-demo urpoll-pingpong; do
	[ ! -e "$stage/usr/bin/$example" ] || fail "$example is an example: make install must not put it"
done

# A program built through the staged urpoll.pc only, run against the staged library.
pc() {
	PKG_CONFIG_SYSROOT_DIR=$stage PKG_CONFIG_PATH=$lib/pkgconfig \
		PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1 pkg-config "$@"
}
flags=$(pc --cflags --libs urpoll) || fail "pkg-config cannot read the staged urpoll.pc"
[ "$(pc --modversion urpoll)" = "$version" ] || fail "pkg-config --modversion is not $version"
# shellcheck disable=SC2086
cc -std=gnu11 -Wall -Werror -o "$tmp/hello" tests/package/hello.c $flags ||
	fail "cannot compile against the staged header and library"
out=$(LD_LIBRARY_PATH=$lib "$tmp/hello") || fail "the program built against the stage failed: $out"
[ "${out##*version=}" = "$version" ] ||
	fail "urp_version_*() say ${out##*version=}, urpoll.pc says $version"
loads=$(LD_LIBRARY_PATH=$lib ldd "$tmp/hello")
grep -qF "$soname => $lib/$soname" <<<"$loads" ||
	fail "the program did not load the staged $soname: $loads"

mk uninstall DESTDIR="$stage" PREFIX=/usr >/dev/null 2>&1 || fail "make uninstall PREFIX=/usr failed"
left=$(cd "$stage" && find . -mindepth 1)
[ -z "$left" ] || fail "make uninstall left in the stage: $left"

# ---- 2. PREFIX=/usr/local, twice, among files of others ----
stage=$tmp/stage2
mkdir -p "$stage/usr/local/share/man/man1" "$stage/usr/local/bin"
echo others >"$stage/usr/local/bin/other-tool"
theirs=$(cd "$stage" && find . | sort)
for _ in 1 2; do
	mk install DESTDIR="$stage" >/dev/null 2>&1 || fail "make install PREFIX=/usr/local failed"
done
pcfile=$stage/usr/local/lib/pkgconfig/urpoll.pc
grep -qx 'prefix=/usr/local' "$pcfile" && grep -qx 'libdir=/usr/local/lib' "$pcfile" ||
	fail "urpoll.pc was not made again for PREFIX=/usr/local: $(cat "$pcfile")"
[ -x "$stage/usr/local/bin/urpoll-echo" ] || fail "no /usr/local/bin/urpoll-echo"
echo others >"$stage/usr/local/share/doc/notes" # in a directory install created
mk uninstall DESTDIR="$stage" >/dev/null 2>&1 || fail "make uninstall PREFIX=/usr/local failed"
want=$(printf '%s\n' "$theirs" ./usr/local/share/doc ./usr/local/share/doc/notes | sort)
got=$(cd "$stage" && find . | sort)
[ "$got" = "$want" ] || fail "after uninstall, the stage should hold exactly what was there and the file added since:
$(diff <(echo "$want") <(echo "$got"))"
[ "$(build_state)" = "$before" ] || fail "make install rebuilt the build tree's library or tools"

echo "install-test: ok ($libdir, $version; $out)"
record pass
