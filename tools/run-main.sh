#!/usr/bin/env bash
# The main job (`make run`): a quick side-by-side of urpoll and raw epoll on notify, pingpong
# and churn (about a minute), traced by urpoll-trace when root; then the table, the trace's
# histograms and the bpftool commands to look further.
#
#   tools/run-main.sh [BUILD_DIR]
set -u
build=${1:-build}
bench=$build/tools/urpoll-bench
trace=$build/tools/urpoll-trace
tmp=$(mktemp -d)
tracer=
trap '[ -n "$tracer" ] && kill "$tracer" 2>/dev/null; rm -rf "$tmp"' EXIT

if [ "$(id -u)" -eq 0 ] && [ -x "$trace" ]; then
	# Every process mapping build/'s liburpoll.so, so the benchmark is traced from its first
	# turn; one long interval, ended by SIGINT (which prints it, histograms included).
	"$trace" 3600 >"$tmp/trace.out" 2>"$tmp/trace.err" &
	tracer=$!
	for _ in $(seq 100); do
		grep -q '^tracing urpoll' "$tmp/trace.err" 2>/dev/null && break
		kill -0 "$tracer" 2>/dev/null || break
		sleep 0.1
	done
	if ! grep -q '^tracing urpoll' "$tmp/trace.err" 2>/dev/null; then
		echo "run-main: urpoll-trace did not attach; running untraced:" >&2
		cat "$tmp/trace.err" >&2
		kill "$tracer" 2>/dev/null
		tracer=
	fi
else
	echo "run-main: not root: running without urpoll-trace" >&2
fi

"$bench" --quick notify pingpong churn --backends urpoll,epoll
status=$?

if [ -n "$tracer" ]; then
	kill -INT "$tracer"
	wait "$tracer"
	tracer=
	echo
	echo "urpoll-trace during the run (urpoll's stale rejections and wake batches):"
	cat "$tmp/trace.out"
fi
cat <<EOF

To look further (root):
  $trace -p PID --io-uring          # one process, with its io_uring completions
  bpftool map dump name urp_stats   # the raw counters, while urpoll-trace runs
  bpftool prog show name urp_stale_reject   # BPF run time (kernel.bpf_stats_enabled=1)
  $bench --help                     # every workload and backend; docs/tracing.md
EOF
exit $status
