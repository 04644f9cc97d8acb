#!/usr/bin/env bash
# The shared library carries both USDT probes, each with a semaphore, and exports only urp_*
# public names (no urp__ internals, no semaphores); the URP_PROBES=0 build carries none.
#
#   tests/package/probes-test.sh LIB NOPROBES_LIB
set -euo pipefail
lib=$1
noprobes=$2
record() { tests/run-suite.sh --record probes "$1"; }
fail() { echo "probes-test: $*" >&2; record fail; exit 1; }

notes=$(readelf -n "$lib")
for probe in stale_reject wake_batch; do
	block=$(grep -A3 "Name: $probe\$" <<<"$notes") || fail "probe urpoll:$probe missing"
	grep -q 'Provider: urpoll' <<<"$(grep -B1 "Name: $probe\$" <<<"$notes")" ||
		fail "probe $probe has the wrong provider"
	sem=$(sed -n 's/.*Semaphore: \(0x[0-9a-f]*\).*/\1/p' <<<"$block")
	[ -n "$sem" ] && [ $((sem)) -ne 0 ] || fail "probe $probe has no semaphore"
	args=$(sed -n 's/.*Arguments: //p' <<<"$block")
	[ "$(wc -w <<<"$args")" -eq 3 ] || fail "probe $probe does not take 3 arguments: $args"
done
exports=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBR]$/ { print $3 }' | sed 's/@.*//')
bad=$(grep -v '^urp_[a-z]' <<<"$exports" || true)
[ -z "$bad" ] || fail "exports non-public names: $bad"
grep -q '^urp_io_set_readiness$' <<<"$exports" || fail "public API not exported"
if readelf -n "$noprobes" | grep -q stapsdt; then
	fail "$noprobes was built with URP_PROBES=0 but still has USDT notes"
fi
echo "probes-test: ok (stale_reject and wake_batch with semaphores; $(wc -l <<<"$exports") exports, all urp_*)"
record pass
