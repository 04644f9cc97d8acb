#!/usr/bin/env bash
# The command lines of the tools: urpoll-echo, urpoll-proxy, urpoll-pingpong, urpoll-demo,
# urpoll-trace and urpoll-bench.
#
#   tests/cli/tools_cli.sh BUILD_DIR
#
# The contract (libbpf-tools'): exit 0 on success, 1 on a runtime failure, 2 on bad usage.
# A usage error is one line on stderr (urpoll-trace's argp may add its "Try --help" line),
# prefixed with the tool's name and naming the option as it was spelled, and nothing on stdout;
# -h and --help print the usage, with EXAMPLES, on stdout and exit 0. urpoll-bench finds an
# output path it cannot write before it runs anything. Each check is named after what broke.
# Needs no root: urpoll-trace reads its command line before it looks at privileges. A few
# seconds; records tools_cli pass|fail.
set -u
build=${1:-build}
tools=$build/tools
tmp=$(mktemp -d)
echo_pid=
trap '[ -n "$echo_pid" ] && kill "$echo_pid" 2>/dev/null; rm -rf "$tmp"' EXIT

checks=0
failed=0

bad() {
	echo "tools_cli: FAIL $name: $*"
	echo "  status $status; stdout: $(head -c 300 "$tmp/out" | head -3)"
	echo "  stderr: $(head -c 600 "$tmp/err")"
	failed=$((failed + 1))
}

# Run tool with args, stdin closed, into $tmp/out and $tmp/err and $status. The guard only
# keeps a tool that waits for nothing from stalling the suite: no time is asserted.
run() {
	local tool=$1

	shift
	timeout 20 "$tools/$tool" "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
	status=$?
}

# One line on stderr, "tool: ..." holding want: usage errors and runtime failures alike.
one_line_naming() {
	local tool=$1 want=$2 lines

	lines=$(wc -l <"$tmp/err")
	if ! head -1 "$tmp/err" | grep -q "^$tool: "; then
		bad "stderr does not start with \"$tool: \""
	elif ! head -1 "$tmp/err" | grep -qF -- "$want"; then
		bad "first line of stderr lacks \"$want\""
	elif [ "$lines" -gt 1 ] &&
		! { [ "$tool" = urpoll-trace ] && [ "$lines" -eq 2 ] && sed -n 2p "$tmp/err" |
			grep -q '^Try'; }; then
		bad "$lines lines on stderr, want one"
	else
		return 0
	fi
	return 1
}

# usage_error NAME WANT TOOL ARGS...: exit 2, nothing on stdout, one line naming WANT.
usage_error() {
	local tool=$3 want=$2

	name=$1
	shift 3
	checks=$((checks + 1))
	run "$tool" "$@"
	if [ "$status" -ne 2 ]; then
		bad "exit status $status, want 2 (usage)"
	elif [ -s "$tmp/out" ]; then
		bad "a usage error printed on stdout"
	else
		one_line_naming "$tool" "$want"
	fi
}

# runtime_error NAME WANT TOOL ARGS...: exit 1, one line naming WANT.
runtime_error() {
	local tool=$3 want=$2

	name=$1
	shift 3
	checks=$((checks + 1))
	run "$tool" "$@"
	if [ "$status" -ne 1 ]; then
		bad "exit status $status, want 1 (runtime failure)"
	else
		one_line_naming "$tool" "$want"
	fi
}

# help NAME TOOL ARGS...: exit 0, the usage with EXAMPLES on stdout, nothing on stderr.
help() {
	local tool=$2

	name=$1
	shift 2
	checks=$((checks + 1))
	run "$tool" "$@"
	if [ "$status" -ne 0 ]; then
		bad "exit status $status, want 0"
	elif [ -s "$tmp/err" ]; then
		bad "help printed on stderr"
	elif ! head -1 "$tmp/out" | grep -qi '^usage: '; then
		bad "stdout does not start with the usage line"
	elif ! grep -q '^EXAMPLES' "$tmp/out"; then
		bad "no EXAMPLES section"
	fi
}

for t in urpoll-echo urpoll-proxy urpoll-pingpong urpoll-demo urpoll-trace urpoll-bench; do
	if [ ! -x "$tools/$t" ]; then
		echo "tools_cli: $tools/$t not built"
		tests/run-suite.sh --record tools_cli fail
		exit 1
	fi
done

echo "== tools_cli: --help and -h of every tool"
for t in urpoll-echo urpoll-proxy urpoll-pingpong urpoll-demo urpoll-trace urpoll-bench; do
	help "${t#urpoll-}_long_help_on_stdout_exits_0" "$t" --help
	help "${t#urpoll-}_short_help_on_stdout_exits_0" "$t" -h
done

# urpoll-pingpong had no --help: every option, with its default, must be in it.
name=pingpong_help_lists_every_option
checks=$((checks + 1))
run urpoll-pingpong --help
for o in '-n, --pairs' '-m, --messages' '-s, --size' '-t, --tier' '-h, --help'; do
	grep -qF -- "$o" "$tmp/out" || { bad "--help lacks $o"; break; }
done
[ "$(grep -c 'default' "$tmp/out")" -ge 4 ] || bad "--help gives fewer than 4 defaults"

echo "== tools_cli: urpoll-echo"
usage_error echo_unknown_long_option_exits_2 "unknown option '--bogus'" urpoll-echo --bogus
usage_error echo_unknown_short_option_in_a_group_names_it "unknown option '-x'" \
	urpoll-echo -qx
usage_error echo_missing_argument_names_option "--threads" urpoll-echo --threads
usage_error echo_threads_not_a_number_names_option "--threads: 'abc' is not a number" \
	urpoll-echo --threads abc
usage_error echo_threads_out_of_range_says_range "--threads: 0 is out of range (1 to 256)" \
	urpoll-echo --threads 0
usage_error echo_short_option_error_names_short_form "-t: 999 is out of range" \
	urpoll-echo -t 999
usage_error echo_max_conns_error_names_option "--max-conns: 0 is out of range" \
	urpoll-echo --max-conns 0
usage_error echo_bad_listen_names_option "--listen: bad address 'localhost'" \
	urpoll-echo --listen localhost
usage_error echo_unix_path_too_long_is_usage "--unix: " urpoll-echo --unix "$tmp/$(printf 'x%.0s' {1..120})"
usage_error echo_extra_operand_exits_2 "unexpected argument 'extra'" urpoll-echo extra
usage_error echo_flag_with_value_names_option "--quiet takes no argument" urpoll-echo --quiet=1
usage_error echo_bad_io_mode_names_option \
	"urpoll-echo: --io: 'uring' is not an I/O mode (ring or readiness)" urpoll-echo --io uring
usage_error echo_io_without_mode_names_option "--io needs an argument" urpoll-echo --io

echo "== tools_cli: urpoll-proxy"
usage_error proxy_connect_timeout_zero_names_option \
	"urpoll-proxy: --connect-timeout: 0 is out of range (1 to 31536000 seconds)" \
	urpoll-proxy --connect-timeout 0
usage_error proxy_attached_long_value_names_option "--connect-timeout: 0 is out of range" \
	urpoll-proxy --connect-timeout=0
usage_error proxy_short_value_names_short_option "-c: 0 is out of range" urpoll-proxy -c0
usage_error proxy_idle_timeout_not_a_number "--idle-timeout: 'soon' is not a number" \
	urpoll-proxy --idle-timeout soon
usage_error proxy_negative_stats_interval "--stats-interval: -1 is out of range (0 to" \
	urpoll-proxy --stats-interval -1
usage_error proxy_threads_out_of_range "--threads: 0 is out of range (1 to 256)" \
	urpoll-proxy --threads 0
usage_error proxy_max_conns_out_of_range "--max-conns: 0 is out of range" \
	urpoll-proxy --max-conns 0
usage_error proxy_bad_backend_names_option "--backend: bad backend address 'localhost'" \
	urpoll-proxy --listen 127.0.0.1:0 --backend localhost
usage_error proxy_check_interval_zero_names_option "--check-interval: 0 is out of range (1 to" \
	urpoll-proxy --check-interval 0
usage_error proxy_bad_metrics_names_option "--metrics: bad metrics address 'localhost'" \
	urpoll-proxy --metrics localhost
usage_error proxy_log_with_value_names_option "--log takes no argument" urpoll-proxy --log=1
usage_error proxy_bad_listen_names_option "--listen: bad listen address '127.0.0.1:http'" \
	urpoll-proxy --listen 127.0.0.1:http --backend 127.0.0.1:1
backends=()
for i in $(seq 65); do backends+=(-b "127.0.0.1:$i"); done
usage_error proxy_too_many_backends_names_option "-b: at most 64 backends" \
	urpoll-proxy --listen 127.0.0.1:0 "${backends[@]}"
usage_error proxy_missing_argument_names_option "--backend" urpoll-proxy --listen 127.0.0.1:0 \
	--backend
usage_error proxy_without_backend_says_what_is_needed "--backend" urpoll-proxy \
	--listen 127.0.0.1:0
usage_error proxy_unknown_option_exits_2 "unknown option '-x'" urpoll-proxy -x
usage_error proxy_bad_io_mode_names_option \
	"urpoll-proxy: --io: 'epoll' is not an I/O mode (ring or readiness)" urpoll-proxy \
	--listen 127.0.0.1:0 --backend 127.0.0.1:1 --io epoll
usage_error proxy_attached_bad_io_mode_names_option "--io: '' is not an I/O mode" \
	urpoll-proxy --io= --listen 127.0.0.1:0 --backend 127.0.0.1:1
usage_error proxy_extra_operand_exits_2 "unexpected argument 'extra'" urpoll-proxy \
	--listen 127.0.0.1:0 --backend 127.0.0.1:1 extra
# A backend that is down is no error (it is checked again until it comes back); a name that
# does not resolve at start-up is.
runtime_error proxy_unresolvable_backend_exits_1 "cannot resolve 'no-such-host.invalid:1'" \
	urpoll-proxy --listen 127.0.0.1:0 --backend no-such-host.invalid:1

echo "== tools_cli: a port in use (urpoll-echo, urpoll-proxy)"
"$tools/urpoll-echo" --listen 127.0.0.1:0 </dev/null >"$tmp/echo.out" 2>&1 &
echo_pid=$!
port=
for _ in $(seq 100); do
	port=$(sed -n 's/.*listening on tcp 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/echo.out")
	[ -n "$port" ] || ! kill -0 "$echo_pid" 2>/dev/null && break
	sleep 0.05
done
if [ -n "$port" ]; then
	runtime_error echo_port_in_use_exits_1 "in use" urpoll-echo --listen "127.0.0.1:$port"
	runtime_error proxy_port_in_use_exits_1 "in use" urpoll-proxy \
		--listen "127.0.0.1:$port" --backend "127.0.0.1:$port"
else
	echo "tools_cli: skip the port-in-use checks: urpoll-echo did not start:" \
		"$(head -c 300 "$tmp/echo.out")"
fi
kill "$echo_pid" 2>/dev/null
wait "$echo_pid" 2>/dev/null
echo_pid=

echo "== tools_cli: urpoll-pingpong"
usage_error pingpong_pairs_zero_names_option "-n: 0 is out of range (1 to 4096)" \
	urpoll-pingpong -n 0
usage_error pingpong_pairs_not_a_number_names_option "--pairs: 'abc' is not a number" \
	urpoll-pingpong --pairs abc
usage_error pingpong_messages_zero_names_option "-m: 0 is out of range" urpoll-pingpong -m 0
usage_error pingpong_size_too_big_names_option "--size: 70000 is out of range (1 to 65536)" \
	urpoll-pingpong --size 70000
usage_error pingpong_bad_tier_names_option "-t: unknown tier 'bogus'" urpoll-pingpong -t bogus
usage_error pingpong_unknown_option_is_one_line "unknown option '-x'" urpoll-pingpong -x
usage_error pingpong_missing_argument_names_option "-n" urpoll-pingpong -n
usage_error pingpong_extra_operand_is_refused "unexpected argument 'extra'" \
	urpoll-pingpong extra -m 10

echo "== tools_cli: urpoll-demo"
usage_error demo_unknown_option_exits_2_on_stderr "unknown option '--bogus'" urpoll-demo --bogus
usage_error demo_extra_operand_exits_2 "unexpected argument 'extra'" urpoll-demo extra

echo "== tools_cli: urpoll-trace (before any privilege check)"
usage_error trace_unknown_option_exits_2 "--bogus" urpoll-trace --bogus
usage_error trace_bad_pid_names_option "-p: invalid PID 'abc'" urpoll-trace -p abc
usage_error trace_bad_long_pid_names_option "--pid: invalid PID 'abc'" urpoll-trace --pid=abc
usage_error trace_pid_beyond_int_is_refused "-p: invalid PID '4294967297'" \
	urpoll-trace -p 4294967297
usage_error trace_missing_argument_exits_2 "'p'" urpoll-trace -p
usage_error trace_relative_pin_names_option "--pin" urpoll-trace --pin relative/dir
usage_error trace_io_uring_without_pid_exits_2 "--io-uring" urpoll-trace --io-uring
usage_error trace_bad_interval_exits_2 "interval" urpoll-trace 0
usage_error trace_extra_operand_exits_2 "unexpected argument" urpoll-trace 1 2 3
runtime_error trace_missing_library_exits_1 "" urpoll-trace -l "$tmp/no-such-lib.so"

echo "== tools_cli: urpoll-bench"
usage_error bench_unknown_option_is_one_line "unknown option '--bogus'" urpoll-bench --bogus
usage_error bench_unknown_short_option_is_one_line "unknown option '-x'" urpoll-bench -x
usage_error bench_runs_out_of_range_names_option "--runs: 0 is out of range (1 to 101)" \
	urpoll-bench --runs 0
usage_error bench_runs_not_a_number_names_option "--runs: 'many' is not a number" \
	urpoll-bench --runs many
usage_error bench_missing_argument_names_option "--runs" urpoll-bench --runs
usage_error bench_unknown_backend_names_option "--backends: unknown backend 'foo'" \
	urpoll-bench --backends foo
usage_error bench_empty_backends_is_refused "--backends: " urpoll-bench --backends ,
# Every backend --help lists is a name --backends takes: urpoll-ring (ring mode) among them.
name=bench_help_lists_the_ring_backend
checks=$((checks + 1))
run urpoll-bench --help
grep -q '^Backends:.* urpoll-ring\b' "$tmp/out" || bad "--help's Backends: lacks urpoll-ring"
name=bench_ring_backend_alone_runs_pingpong
checks=$((checks + 1))
run urpoll-bench --smoke --no-syscalls --backends urpoll-ring --json "$tmp/ring.json" \
	pingpong-unix-64
if [ "$status" -ne 0 ]; then
	bad "exit status $status, want 0"
elif ! python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
sys.exit(d["backends"] != ["urpoll-ring"] or any(c["status"] != "ok" for c in d["cells"]))' \
	"$tmp/ring.json"; then
	bad "the JSON does not hold urpoll-ring alone, every cell ok"
fi
usage_error bench_flag_with_value_names_option "--smoke" urpoll-bench --smoke=1
usage_error bench_unknown_workload_exits_2 "unknown workload 'nosuch'" urpoll-bench nosuch
# --callgrind starts valgrind on itself: a stand-in that only leaves a mark tells whether the
# command line was checked first.
mkdir "$tmp/bin"
printf '#!/bin/sh\ntouch "%s/valgrind-ran"\n' "$tmp" >"$tmp/bin/valgrind"
chmod +x "$tmp/bin/valgrind"
callgrind_checked_first() {
	local before=$failed

	PATH="$tmp/bin:$PATH" "$@"
	if [ "$failed" -eq "$before" ] && [ -e "$tmp/valgrind-ran" ]; then
		bad "valgrind started before the command line was checked"
	fi
	rm -f "$tmp/valgrind-ran"
}
callgrind_checked_first usage_error bench_callgrind_unknown_workload_exits_2_before_valgrind \
	"unknown workload 'nosuch'" urpoll-bench --callgrind nosuch

# The output paths are opened before the first workload: nothing may have run (no banner, no
# table on stdout) when the error comes.
bench_path_error() {
	local before=$failed

	runtime_error "$@"
	if [ "$failed" -eq "$before" ] && [ -s "$tmp/out" ]; then
		bad "a workload ran before the path was checked"
	fi
}
bench_path_error bench_json_missing_dir_fails_before_any_run \
	"--json: cannot open '/nonexistent/dir/x.json': No such file or directory" \
	urpoll-bench --json /nonexistent/dir/x.json notify
bench_path_error bench_json_directory_fails_before_any_run "--json: cannot open '$tmp'" \
	urpoll-bench --smoke --json "$tmp" notify
bench_path_error bench_svg_missing_dir_fails_before_any_run \
	"--svg: cannot open '/nonexistent/dir/x.svg'" \
	urpoll-bench --smoke --svg /nonexistent/dir/x.svg notify
callgrind_checked_first bench_path_error bench_callgrind_json_fails_before_valgrind \
	"--json: cannot open '/nonexistent/dir/x.json'" \
	urpoll-bench --callgrind --smoke --json /nonexistent/dir/x.json notify
if [ "$(id -u)" -ne 0 ]; then
	: >"$tmp/readonly.json"
	chmod 0444 "$tmp/readonly.json"
	bench_path_error bench_json_readonly_file_fails_before_any_run \
		"--json: cannot open '$tmp/readonly.json': Permission denied" \
		urpoll-bench --smoke --json "$tmp/readonly.json" notify
else
	echo "tools_cli: skip the read-only --json file: root may write it"
fi

# A file that exists keeps its content until the results replace it.
name=bench_json_existing_file_replaced_by_results
checks=$((checks + 1))
printf 'old content that is longer than nothing at all\n%.0s' {1..2000} >"$tmp/old.json"
run urpoll-bench --smoke --backends urpoll,epoll --json "$tmp/old.json" notify
if [ "$status" -ne 0 ]; then
	bad "exit status $status, want 0"
elif grep -q 'old content' "$tmp/old.json" ||
	! python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$tmp/old.json"; then
	bad "the JSON file is not the results alone"
fi

echo "tools_cli: $checks checks, $failed failed"
if [ "$failed" -ne 0 ]; then
	tests/run-suite.sh --record tools_cli fail
	exit 1
fi
tests/run-suite.sh --record tools_cli pass
