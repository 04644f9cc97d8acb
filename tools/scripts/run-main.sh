#!/usr/bin/env bash
# The main job (`make run`): a quick side-by-side of urpoll and raw epoll on notify,
# pingpong-unix-64 and churn (about a minute), then, when root, a short pass of the same workloads
# and of urpoll-pingpong (whose waiters make wake batches) traced by urpoll-trace with its
# histograms, and the bpftool commands to look further.
#
#   tools/scripts/run-main.sh [BUILD_DIR]
set -u
build=${1:-build}
bench=$build/tools/urpoll-bench
trace=$build/tools/urpoll-trace
tmp=$(mktemp -d)
tracer=
trap '[ -n "$tracer" ] && kill "$tracer" 2>/dev/null; rm -rf "$tmp"' EXIT

# The table comes from an untraced run: a traced probe hit costs ~5.5 us on this kind of VM
# (docs/tracing.md), which would be charged to urpoll alone. The trace follows, on a second,
# short run of the same workloads on urpoll, so its histograms describe the same work.
"$bench" --quick notify pingpong-unix-64 churn --backends urpoll,epoll
status=$?

if [ "$(id -u)" -eq 0 ] && [ -x "$trace" ]; then
	# Every process mapping build/'s liburpoll.so; one long interval, ended by SIGINT (which
	# prints it, histograms included).
	"$trace" 3600 >"$tmp/trace.out" 2>"$tmp/trace.err" &
	tracer=$!
	for _ in $(seq 100); do
		grep -q '^tracing urpoll' "$tmp/trace.err" 2>/dev/null && break
		kill -0 "$tracer" 2>/dev/null || break
		sleep 0.1
	done
	if grep -q '^tracing urpoll' "$tmp/trace.err" 2>/dev/null; then
		echo
		echo "run-main: the same workloads on urpoll again (--smoke), then urpoll-pingpong, traced by urpoll-trace"
		echo "(the bench's loop takes its events from urp_driver_poll(), which stores no waker, so"
		echo "its events wake nobody; urpoll-pingpong's ends wait with urp_io_poll_ready(): a batch"
		echo "per event):"
		"$bench" --smoke notify pingpong-unix-64 churn --backends urpoll >/dev/null ||
			status=$?
		"$build/tools/urpoll-pingpong" -n 64 -m 50000 || status=$?
		kill -INT "$tracer"
		wait "$tracer"
		tracer=
		echo "urpoll-trace during that run (urpoll's stale rejections and wake batches):"
		cat "$tmp/trace.out"
	else
		echo "run-main: urpoll-trace did not attach:" >&2
		cat "$tmp/trace.err" >&2
		kill "$tracer" 2>/dev/null
		tracer=
	fi
else
	echo "run-main: not root: no urpoll-trace pass" >&2
fi
cat <<EOF

To look further (root):
  $trace -p PID --io-uring          # one process, with its io_uring completions
  bpftool map dump id N             # the raw counters: urpoll-trace prints N at start
  bpftool prog show name urp_stale_reject   # BPF run time (kernel.bpf_stats_enabled=1)
  $bench --help                     # every workload and backend; docs/tracing.md
EOF
exit $status
