#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The tarball of `make dist`, unpacked into an empty directory (make test-dist):
#   - it unpacks into urpoll-VERSION/, with LICENSE, README.md and the Makefile, and no build/;
#   - the README's layout table names every folder it holds (a folder counts as named when a
#     row names it or a folder inside it; a row's other `folder/`s are read inside the row's
#     own, `<name>/` stands for any one folder);
#   - `make` builds the library and the tools there;
#   - there, the install test, the C++ header test and the man pages' test pass, and three
#     suites: core_word (the readiness word), uring_lifecycle (the driver on a real ring) and
#     echo_e2e (urpoll-echo end to end, as that build tree built it).
# That is the part of `make check` that needs little time; --full runs the whole `make check`
# in the unpacked tree instead (about 8 minutes on 2 CPUs).
#
#   tests/package/dist-test.sh [--full] TARBALL
#
# The result is recorded as "dist" (tests/run-suite.sh --record).
set -euo pipefail
full=0
[ "${1:-}" = --full ] && full=1 && shift
tarball=${1:?usage: dist-test.sh [--full] TARBALL}
top=$PWD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
record() { (cd "$top" && tests/run-suite.sh --record dist "$1"); }
fail() {
	echo "dist-test: $*" >&2
	record fail
	exit 1
}
# A make of its own, in the unpacked tree: not the -k or variables of a make that runs this.
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u URP_CHECK_RESULTS make --no-print-directory "$@"; }

name=$(basename "$tarball" .tar.gz)
tar -xzf "$tarball" -C "$tmp" || fail "cannot unpack $tarball"
[ "$(ls "$tmp")" = "$name" ] || fail "$tarball should unpack into $name/ alone, not: $(ls "$tmp")"
src=$tmp/$name
cd "$src"
for f in LICENSE README.md Makefile include/urpoll.h; do
	[ -f "$f" ] || fail "$tarball has no $f"
done
[ ! -e build ] || fail "$tarball holds a build/ directory"

# Every folder of the tarball against the README's layout table.
unnamed=$(find . -mindepth 1 -type d | sed 's|^\./||' | sort | python3 -c '
import re, sys

named = set()  # folders the table names, as regular expressions
on = False
for line in open("README.md"):
    if line.startswith("## "):
        on = line.strip() == "## Layout"
    if not (on and line.startswith("|")):
        continue
    cells = line.split("|")
    own = re.findall(r"`([^`\s]+/)`", cells[1])
    own = own[0] if own else ""
    for path in re.findall(r"`([^`\s]+/)`", line):
        for full in {path, own + path}:
            parts = full.rstrip("/").split("/")
            for i in range(1, len(parts) + 1):  # the folder, and each folder it is in
                named.add("/".join("[^/]+" if re.fullmatch(r"<[^>]+>", c) else re.escape(c)
                                   for c in parts[:i]))
for d in sys.stdin.read().split():
    if not any(re.fullmatch(n, d) for n in named):
        print(d)
')
[ -z "$unnamed" ] || fail "README.md's layout table names no row for these folders:
$unnamed"

log=$tmp/make.log
if [ $full -eq 1 ]; then
	mk check >"$log" 2>&1 || { tail -40 "$log"; fail "make check failed in the unpacked $name (above)"; }
	tail -3 "$log"
	echo "dist-test: ok ($name: make check passed from a clean unpack)"
	record pass
	exit 0
fi
mk -j2 >"$log" 2>&1 || { tail -40 "$log"; fail "make failed in the unpacked $name (above)"; }
suites=(core_word uring_lifecycle echo_e2e)
mk -j2 "${suites[@]/#/build/tests/}" >>"$log" 2>&1 ||
	{ tail -40 "$log"; fail "the suites do not build in the unpacked $name"; }
# Each records its result in the unpacked tree's build/check-results, summed up below.
mk -k test-install test-cxx test-man >>"$log" 2>&1 || true
URP_CHECK_RESULTS=build/check-results tests/run-suite.sh build "${suites[@]}" >>"$log" 2>&1 || true
summary=$(tests/run-suite.sh --summary build/check-results) ||
	{ tail -40 "$log"; fail "in the unpacked $name: $summary"; }
echo "dist-test: ok ($name from a clean unpack: make; install, cxx, man, ${suites[*]}: ${summary#check: })"
record pass
