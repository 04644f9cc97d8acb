#!/usr/bin/env bash
# Exhaustively check the Spin model of the readiness protocol (tests/model/urpoll.pml).
#
# The correct model must verify with zero errors; every mutant, each one broken rule of the
# protocol, must produce a counterexample.  A mutant that verifies means the model (or its
# property) has gone blind to that bug, so it fails the run just like an error in the correct
# model does.
#
# Usage: tests/model/run.sh [BUILD_DIR]
#   BUILD_DIR  scratch directory; runs go to BUILD_DIR/model/<name>/ and are kept, trails
#              included.  Default: a mktemp -d directory, removed on exit.
# Environment:
#   MODEL_TRAIL=1  replay each counterexample with spin -t (long).
#
# Exit status: 0 if the correct model passes and every mutant is caught, 1 otherwise.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
model="$here/urpoll.pml"

# -m: depth bound, far above the ~300 the deepest scenario reaches; a search that hits it is
# incomplete and is treated as a failure.  -w20: 1M-slot hash table, for at most ~550k states
# (scenario rearm; the search stays exhaustive, -w only sizes the table).
# -n: no unreached-code listing.
PAN_FLAGS=(-m100000 -w20 -n)
CC=${CC:-gcc}

for tool in spin "$CC"; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "model: '$tool' not found; install it (Debian: spin, gcc)" >&2
		exit 1
	fi
done

if [[ $# -ge 1 ]]; then
	scratch="$1/model"
	mkdir -p "$scratch"
else
	scratch=$(mktemp -d "${TMPDIR:-/tmp}/urpoll-model.XXXXXX")
	trap 'rm -rf -- "$scratch"' EXIT
fi

failed=()

# verify NAME EXPECT [SPIN_DEFINES...]; EXPECT is "pass" or "caught".
verify() {
	local name=$1 expect=$2
	shift 2
	local dir="$scratch/${name// /_}"
	local out errors states reason secs

	rm -rf -- "$dir"
	mkdir -p "$dir"
	cp "$model" "$dir/urpoll.pml"

	if ! (cd "$dir" && spin -a "$@" urpoll.pml >spin.log 2>&1); then
		printf 'model: %-32s ERROR (spin -a failed, see below)\n' "$name"
		sed 's/^/    /' "$dir/spin.log"
		failed+=("$name")
		return
	fi
	if ! (cd "$dir" && "$CC" -O2 -DSAFETY -w -o pan pan.c >cc.log 2>&1); then
		printf 'model: %-32s ERROR (pan.c did not compile, see below)\n' "$name"
		sed 's/^/    /' "$dir/cc.log"
		failed+=("$name")
		return
	fi
	# pan exits 0 whether or not it found an error; the verdict is in its report.
	(cd "$dir" && ./pan "${PAN_FLAGS[@]}" >pan.out 2>&1) || true
	out="$dir/pan.out"

	errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' "$out" | tail -n 1)
	states=$(sed -n 's/^ *\([0-9][0-9]*\) states, stored.*/\1/p' "$out" | tail -n 1)
	reason=$(sed -n 's/^pan:1: \(.*\) (at depth.*/\1/p' "$out" | head -n 1)
	secs=$(sed -n 's/^pan: elapsed time \([0-9.e+-]*\) seconds.*/\1/p' "$out" | tail -n 1)

	if [[ -z "$errors" ]]; then
		printf 'model: %-32s ERROR (no verdict from pan)\n' "$name"
		sed 's/^/    /' "$out"
		failed+=("$name")
		return
	fi

	case "$expect" in
	pass)
		if [[ "$errors" -eq 0 ]] && ! grep -q 'max search depth too small' "$out"; then
			printf 'model: %-32s PASS (errors: 0, states: %s, %ss)\n' "$name" "$states" \
				"${secs:-?}"
		elif [[ "$errors" -eq 0 ]]; then
			printf 'model: %-32s FAIL (search truncated: max search depth too small)\n' \
				"$name"
			failed+=("$name")
		else
			printf 'model: %-32s FAIL (errors: %s) %s\n' "$name" "$errors" "$reason"
			failed+=("$name")
		fi
		;;
	caught)
		if [[ "$errors" -gt 0 ]]; then
			printf 'model: %-32s CAUGHT (errors: %s) %s\n' "$name" "$errors" "$reason"
		else
			printf 'model: %-32s ESCAPED (errors: 0, states: %s)\n' "$name" "$states"
			failed+=("$name")
		fi
		;;
	esac

	if [[ "$errors" -gt 0 && "${MODEL_TRAIL:-0}" == 1 && -f "$dir/urpoll.pml.trail" ]]; then
		(cd "$dir" && spin -t -p -g "$@" urpoll.pml) | sed 's/^/    /'
	fi
}

verify "correct" pass
# The narrowest tick that is still wider than the number of Sets that can fall between a
# snapshot and its Clear (2^2 > NSETS - 1 = 2): must behave exactly like the 15-bit tick.
verify "correct tick_bits=2" pass -DTICK_BITS=2
verify "correct one waiter" pass -DNCONS=1
verify "mutant no_recheck" caught -DMUTANT_NO_RECHECK
verify "mutant no_tick_check" caught -DMUTANT_NO_TICK_CHECK
verify "mutant short_tick" caught -DMUTANT_SHORT_TICK
verify "mutant wake_before_set" caught -DMUTANT_WAKE_BEFORE_SET
verify "mutant publish_late (one waiter)" caught -DMUTANT_PUBLISH_LATE -DNCONS=1

# The driver's scenarios (one entry each; see the head of urpoll.pml and README.md).
verify "dereg" pass -DSCENARIO_DEREG
verify "dereg mutant free_on_dereg" caught -DSCENARIO_DEREG -DMUTANT_FREE_ON_DEREG
verify "dereg mutant rearm_gone" caught -DSCENARIO_DEREG -DMUTANT_REARM_GONE
verify "batch" pass -DSCENARIO_BATCH
verify "batch mutant call_under_lock" caught -DSCENARIO_BATCH -DMUTANT_CALL_UNDER_LOCK
verify "batch mutant no_wait_calls" caught -DSCENARIO_BATCH -DMUTANT_NO_WAIT_CALLS
verify "batch mutant one_batch" caught -DSCENARIO_BATCH -DMUTANT_ONE_BATCH
verify "shutdown" pass -DSCENARIO_SHUTDOWN
verify "shutdown mutant no_wake" caught -DSCENARIO_SHUTDOWN -DMUTANT_SHUTDOWN_NO_WAKE
verify "shutdown mutant arm_ignores" caught -DSCENARIO_SHUTDOWN -DMUTANT_ARM_IGNORES_SHUTDOWN
verify "shutdown mutant register_no_check" caught -DSCENARIO_SHUTDOWN -DMUTANT_REGISTER_NO_CHECK
verify "rearm" pass -DSCENARIO_REARM
verify "rearm mutant no_rearm" caught -DSCENARIO_REARM -DMUTANT_NO_REARM

if [[ ${#failed[@]} -gt 0 ]]; then
	for name in "${failed[@]}"; do
		case "$name" in
		*mutant*) echo "model: FAILED: $name escaped (or did not run): the model no longer sees that bug" ;;
		*) echo "model: FAILED: $name: the protocol model does not verify" ;;
		esac
	done
	exit 1
fi
if [[ $# -ge 1 ]]; then
	echo "model: all runs as expected (pan output and trails kept in $scratch)"
else
	echo "model: all runs as expected"
fi
