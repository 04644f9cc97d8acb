#!/usr/bin/env bash
# Run Criterion test binaries and keep a tally for `make check`.
#
#   tests/run-suite.sh BUILD_DIR TEST...     run BUILD_DIR/tests/TEST for each TEST
#   tests/run-suite.sh --record NAME pass|fail
#   tests/run-suite.sh --summary FILE        print "check: N passed, N failed" from FILE
#
# Results go to build/check-results, one "label passed failed" line per binary or script.
set -u
results=${URP_CHECK_RESULTS:-build/check-results}
mkdir -p "$(dirname "$results")"

if [ "${1:-}" = "--summary" ]; then
	file=${2:-$results}
	[ -f "$file" ] || { echo "check: no results in $file"; exit 1; }
	awk '{ p += $2; f += $3; if ($3 > 0) bad = bad " " $1 }
	     END { if (bad != "") print "failed:" bad; printf "check: %d passed, %d failed\n", p, f
		   exit (f > 0) }' "$file"
	exit $?
fi

if [ "${1:-}" = "--record" ]; then
	if [ "$3" = pass ]; then echo "$2 1 0" >>"$results"; else echo "$2 0 1" >>"$results"; fi
	exit 0
fi

build=$1
shift
san=$(basename "$build")
[ "$san" = build ] && san=plain
# Sanitizer reports must fail the test, not scroll past.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

status=0
for t in "$@"; do
	bin=$build/tests/$t
	log=$build/tests/$t.log
	echo "== $san: $t"
	"$bin" --jobs 2 >"$log" 2>&1
	rc=$?
	synth=$(grep -a 'Synthesis:' "$log" | tail -1)
	passed=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$synth")
	failing=$(sed -n 's/.*Failing: \([0-9]*\).*/\1/p' <<<"$synth")
	crashing=$(sed -n 's/.*Crashing: \([0-9]*\).*/\1/p' <<<"$synth")
	failed=$(( ${failing:-0} + ${crashing:-0} ))
	if [ -z "$synth" ] || [ $rc -ne 0 ] && [ $failed -eq 0 ]; then
		failed=1	# died before its synthesis, or failed outside any test
	fi
	echo "$san/$t ${passed:-0} $failed" >>"$results"
	if [ $failed -ne 0 ]; then
		status=1
		grep -av '^\[----\]\|^\[RUN \]\|^\[PASS\]' "$log" | tail -60
	fi
	echo "$synth" | sed 's/\x1b\[[0-9;]*m//g'
done
exit $status
