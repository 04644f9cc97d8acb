#!/usr/bin/env bash
# bench-proxy: urpoll-proxy --threads 1 in both I/O modes (--io ring, --io readiness) against
# HAProxy (mode tcp, nbthread 1) and against no proxy at all, in the same run, on the same CPUs.
#
#   tools/scripts/bench-proxy.sh [BUILD_DIR]        (default build; `make bench-proxy` runs it)
#
# Environment: RUNS (5) rounds, interleaved, the order rotated every round; N (20000) requests
# per redis-benchmark run (5 N with -P 16); LAT_N (10000) round trips of the latency client;
# IPERF_S (3) seconds per iperf3 run; IDLE (3000) connections of the memory test (0: none);
# PROXY_CPU (1) and LOAD_CPU (0): the proxy runs alone on PROXY_CPU, redis-server, iperf3 and
# every client share LOAD_CPU. Medians (and the range of the rounds) go to stdout as a Markdown
# table; every sample goes to BUILD_DIR/bench-proxy/samples.txt.
#
# CPU per request is the proxy's time on a CPU (the first field of /proc/PID/task/*/schedstat,
# in ns) over a redis-benchmark run, divided by its requests. Memory per idle connection: each
# round a fresh instance of each proxy (in front of the same redis), its VmRSS read at start,
# after a warm-up (redis-benchmark -t get -n N -c 50 through it), and after IDLE connections
# were opened through it with one PING each, still open: (after - warm) / IDLE is the RSS an
# idle connection costs, (warm - start) what the first traffic touched once (a ring's pages,
# HAProxy's pools).
set -euo pipefail

build=${1:-build}
runs=${RUNS:-5}
n=${N:-20000}
lat_n=${LAT_N:-10000}
iperf_s=${IPERF_S:-3}
idle=${IDLE:-3000}
proxy_cpu=${PROXY_CPU:-1}
load_cpu=${LOAD_CPU:-0}
proxy_bin=$build/tools/urpoll-proxy
out=$build/bench-proxy

for p in redis-server redis-benchmark haproxy iperf3 taskset cc; do
	command -v "$p" >/dev/null || { echo "bench-proxy: $p is missing (tools/scripts/install-deps.sh)" >&2; exit 1; }
done
[ -x "$proxy_bin" ] || { echo "bench-proxy: no $proxy_bin (make tools first)" >&2; exit 1; }
# The idle connections: IDLE of the client's, and as many for each proxy and redis.
ulimit -n "$(ulimit -Hn)"
mkdir -p "$out"
tmp=$(mktemp -d /tmp/bench-proxy.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# A free loopback port (the kernel's pick for an ephemeral bind).
free_port() {
	local port
	for port in $(shuf -i 20000-40000 -n 50); do
		if ! ss -Htan "sport = :$port" | grep -q .; then echo "$port"; return; fi
	done
	echo "bench-proxy: no free port" >&2
	exit 1
}

wait_port() {
	for _ in $(seq 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.05
	done
	echo "bench-proxy: nothing listens on $1" >&2
	exit 1
}

# The latency client: one connection, LAT_N sequential PINGs, p50/p99/p99.9 in microseconds.
cat >"$tmp/lat.c" <<'EOF'
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])) };
	int n = atoi(argv[2]), fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	double *lat = malloc(sizeof(*lat) * n);
	char buf[16];

	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return perror("connect"), 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (int i = -1000; i < n; i++) {
		struct timespec t0, t1;
		size_t got = 0;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (write(fd, "PING\r\n", 6) != 6)
			return 1;
		while (got < 7) {
			ssize_t r = read(fd, buf + got, 7 - got);

			if (r <= 0)
				return 1;
			got += (size_t)r;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (i >= 0)
			lat[i] = (t1.tv_sec - t0.tv_sec) * 1e6 + (t1.tv_nsec - t0.tv_nsec) / 1e3;
	}
	qsort(lat, n, sizeof(*lat), cmp);
	printf("%.1f %.1f %.1f\n", lat[n / 2], lat[n * 99 / 100], lat[n * 999 / 1000]);
	return 0;
}
EOF
# The idle client: COUNT connections, a PING and its +PONG on each, then "ready" on stdout;
# the connections stay open until stdin ends.
cat >"$tmp/idle.c" <<'EOF'
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])) };
	int n = atoi(argv[2]), *fds = malloc(sizeof(*fds) * n);
	char buf[16];

	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	for (int i = 0; i < n; i++) {
		size_t got = 0;

		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&a, sizeof(a)) < 0)
			return perror("idle: connect"), 1;
		if (write(fds[i], "PING\r\n", 6) != 6)
			return 1;
		while (got < 7) {
			ssize_t r = read(fds[i], buf + got, 7 - got);

			if (r <= 0)
				return fprintf(stderr, "idle: connection %d closed\n", i), 1;
			got += (size_t)r;
		}
	}
	printf("ready\n");
	fflush(stdout);
	while (read(0, buf, sizeof(buf)) > 0)
		;
	return 0;
}
EOF
cc -O2 -o "$tmp/lat" "$tmp/lat.c"
cc -O2 -o "$tmp/idle" "$tmp/idle.c"

redis_port=$(free_port)
iperf_port=$(free_port)
taskset -c "$load_cpu" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
	--appendonly no --maxclients 10000 --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=($!)
# iperf3 -s has been seen to exit in mid-run (once in about fifteen runs): started again before
# each bulk run when it is gone, its log kept.
iperf_server() {
	taskset -c "$load_cpu" iperf3 -s -p "$iperf_port" -B 127.0.0.1 >>"$out/iperf-server.log" 2>&1 &
	iperf_pid=$!
	pids+=($iperf_pid)
	wait_port "$iperf_port"
}
: >"$out/iperf-server.log"
iperf_server
wait_port "$redis_port"

# HAProxy's configuration: TCP mode, one thread, the timeouts urpoll-proxy defaults to, a
# frontend per backend given as NAME:FRONTEND_PORT:BACKEND_PORT. The benchmark's is written to
# the results directory too, as docs/proxy.md quotes it.
haproxy_cfg() {
	local spec name fport bport
	cat <<EOF
global
	nbthread 1
	maxconn 4096
	log stdout format raw local0 err

defaults
	mode tcp
	timeout connect 5s
	timeout client 300s
	timeout server 300s
EOF
	for spec in "$@"; do
		IFS=: read -r name fport bport <<<"$spec"
		cat <<EOF

frontend ${name}_in
	bind 127.0.0.1:$fport
	default_backend $name

backend $name
	server ${name}1 127.0.0.1:$bport
EOF
	done
}

ha_redis=$(free_port)
ha_iperf=$(free_port)
haproxy_cfg "redis:$ha_redis:$redis_port" "iperf:$ha_iperf:$iperf_port" >"$tmp/haproxy.cfg"
cp "$tmp/haproxy.cfg" "$out/haproxy.cfg"
taskset -c "$proxy_cpu" haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
ha_pid=$!
pids+=($ha_pid)

# urpoll-proxy, each mode: one instance per backend, so each one's CPU time is its traffic
# alone. Prints the pid.
start_urpoll() { # MODE LISTEN_PORT BACKEND_PORT
	taskset -c "$proxy_cpu" "$proxy_bin" -q --threads 1 --io "$1" --listen "127.0.0.1:$2" \
		--backend "127.0.0.1:$3" >/dev/null &
	echo $!
}
declare -A rport=([direct]=$redis_port [haproxy]=$ha_redis)
declare -A iport=([direct]=$iperf_port [haproxy]=$ha_iperf)
declare -A cpid=([direct]= [haproxy]=$ha_pid)
for mode in ring readiness; do
	rport[$mode]=$(free_port)
	cpid[$mode]=$(start_urpoll "$mode" "${rport[$mode]}" "$redis_port")
	pids+=(${cpid[$mode]})
	iport[$mode]=$(free_port)
	pids+=($(start_urpoll "$mode" "${iport[$mode]}" "$iperf_port"))
done
targets=(direct haproxy ring readiness)
for tg in "${targets[@]}"; do
	wait_port "${rport[$tg]}"
	wait_port "${iport[$tg]}"
done

# Nanoseconds pid has spent on a CPU, all its threads (0 without a pid: direct).
cpu_ns() {
	[ -n "$1" ] || { echo 0; return; }
	# %.0f: mawk's %d stops at 2^31 ns (2.1 s of CPU, which a proxy passes within a round).
	cat /proc/"$1"/task/*/schedstat | awk '{ s += $1 } END { printf "%.0f\n", s }'
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

samples=$out/samples.txt
: >"$samples"
# One sample line: KIND TARGET VALUES...
record() { echo "$*" >>"$samples"; }

# The memory test of one proxy kind, on a fresh instance: "rss KIND start warm idle B/conn".
rss_round() {
	local kind=$1 port pid r0 r1 r2
	port=$(free_port)
	if [ "$kind" = haproxy ]; then
		haproxy_cfg "redis:$port:$redis_port" >"$tmp/haproxy-rss.cfg"
		taskset -c "$proxy_cpu" haproxy -db -f "$tmp/haproxy-rss.cfg" >/dev/null 2>&1 &
		pid=$!
	else
		pid=$(start_urpoll "$kind" "$port" "$redis_port")
	fi
	wait_port "$port"
	sleep 0.2
	r0=$(rss_kib "$pid")
	taskset -c "$load_cpu" redis-benchmark -h 127.0.0.1 -p "$port" -t get -n "$n" -c 50 \
		>/dev/null 2>&1
	sleep 0.2
	r1=$(rss_kib "$pid")
	rm -f "$tmp/hold"
	mkfifo "$tmp/hold"
	taskset -c "$load_cpu" "$tmp/idle" "$port" "$idle" <"$tmp/hold" >"$tmp/idle.out" &
	local idle_pid=$!
	exec 3>"$tmp/hold"
	for _ in $(seq 600); do
		grep -q ready "$tmp/idle.out" 2>/dev/null && break
		kill -0 "$idle_pid" 2>/dev/null || break
		sleep 0.05
	done
	grep -q ready "$tmp/idle.out" || { echo "bench-proxy: the idle client failed ($kind)" >&2; exit 1; }
	sleep 0.2
	r2=$(rss_kib "$pid")
	exec 3>&-
	wait "$idle_pid" || true
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	record "rss $kind $r0 $r1 $r2 $(( (r2 - r1) * 1024 / idle )) $(( (r2 - r0) * 1024 / idle ))"
}

echo "bench-proxy: $runs rounds, interleaved; proxy on CPU $proxy_cpu, load on CPU $load_cpu; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for run in $(seq "$runs"); do
	# Rotate the order each round so that no target always goes first after a pause.
	order=("${targets[@]:$((run % 4))}" "${targets[@]:0:$((run % 4))}")
	for tg in "${order[@]}"; do
		for pipeline in 1 16; do
			reqs=$((pipeline == 1 ? n : n * 5))
			pid=${cpid[$tg]}
			t0=$(cpu_ns "$pid")
			csv=$(taskset -c "$load_cpu" redis-benchmark -h 127.0.0.1 -p "${rport[$tg]}" \
				-t get -n "$reqs" -c 50 -P "$pipeline" --csv 2>/dev/null | grep '"GET"')
			t1=$(cpu_ns "$pid")
			# "GET","rps","avg","min","p50","p95","p99","max" (ms)
			rps=$(echo "$csv" | awk -F'"' '{ print $4 }')
			p50=$(echo "$csv" | awk -F'"' '{ print $10 }')
			p99=$(echo "$csv" | awk -F'"' '{ print $14 }')
			us=$(awk -v a="$t0" -v b="$t1" -v r="$reqs" 'BEGIN { printf "%.3f", (b - a) / 1e3 / r }')
			record "rps_P$pipeline $tg $rps $p50 $p99 $us"
		done
		record "lat $tg $(taskset -c "$load_cpu" "$tmp/lat" "${rport[$tg]}" "$lat_n")"
		kill -0 "$iperf_pid" 2>/dev/null || { echo "bench-proxy: iperf3 -s exited; again" >&2; iperf_server; }
		gbit=$(taskset -c "$load_cpu" iperf3 -c 127.0.0.1 -p "${iport[$tg]}" -t "$iperf_s" \
			-f g 2>/dev/null | awk '/receiver/ { print $(NF - 2) }' || true)
		[ -z "$gbit" ] || record "bulk $tg $gbit"
	done
	if [ "$idle" -gt 0 ]; then
		for kind in "${order[@]}"; do
			[ "$kind" = direct ] || rss_round "$kind"
		done
	fi
	echo "bench-proxy: round $run of $runs done" >&2
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
values() { awk -v k="$1" -v t="$2" -v c="$3" '$1 == k && $2 == t { print $c }' "$samples"; }
col() { values "$@" | median; }
# "median [min-max]"
cell() {
	local m lo hi
	m=$(col "$@")
	[ -n "$m" ] || { echo "-"; return; }
	lo=$(values "$@" | sort -g | head -1)
	hi=$(values "$@" | sort -g | tail -1)
	echo "$m [$lo-$hi]"
}
ratio() { awk -v h="$1" -v u="$2" 'BEGIN { if (h > 0 && u != "") printf "%.2f", u / h; else print "-" }'; }

echo "| metric (median [range] of $runs) | direct | HAProxy 2.6 | urpoll ring | urpoll readiness | ring / HAProxy | readiness / HAProxy |"
echo "|---|---|---|---|---|---|---|"
# row LABEL KIND COLUMN [proxies]: "proxies" leaves direct out (a proxy's CPU or memory).
row() {
	local label=$1 kind=$2 c=$3 d h r e
	h=$(col "$kind" haproxy "$c")
	r=$(col "$kind" ring "$c")
	e=$(col "$kind" readiness "$c")
	d=$([ "${4:-}" = proxies ] && echo - || cell "$kind" direct "$c")
	echo "| $label | $d | $(cell "$kind" haproxy "$c") | $(cell "$kind" ring "$c") | $(cell "$kind" readiness "$c") | $(ratio "$h" "$r") | $(ratio "$h" "$e") |"
}
row "GET req/s, 50 conns" rps_P1 3
row "GET req/s, 50 conns, -P 16" rps_P16 3
row "p50 ms under load (redis-benchmark)" rps_P1 4
row "p99 ms under load (redis-benchmark)" rps_P1 5
row "proxy CPU µs/request" rps_P1 6 proxies
row "proxy CPU µs/request, -P 16" rps_P16 6 proxies
row "1 conn PING p50 µs" lat 3
row "1 conn PING p99 µs" lat 4
row "1 conn PING p99.9 µs" lat 5
row "bulk Gbit/s (iperf3)" bulk 3
# Added latency: each proxy's median minus direct's.
added() {
	local label=$1 c=$2 d h r e
	d=$(col lat direct "$c")
	h=$(awk -v a="$(col lat haproxy "$c")" -v d="$d" 'BEGIN { printf "%.1f", a - d }')
	r=$(awk -v a="$(col lat ring "$c")" -v d="$d" 'BEGIN { printf "%.1f", a - d }')
	e=$(awk -v a="$(col lat readiness "$c")" -v d="$d" 'BEGIN { printf "%.1f", a - d }')
	echo "| $label | - | $h | $r | $e | $(ratio "$h" "$r") | $(ratio "$h" "$e") |"
}
added "added 1 conn p50 µs (over direct)" 3
added "added 1 conn p99.9 µs (over direct)" 5
if [ "$idle" -gt 0 ]; then
	row "RSS B per idle connection ($idle, after a warm-up)" rss 6 proxies
	row "RSS B per idle connection, start-up to idle" rss 7 proxies
	row "RSS KiB at start" rss 3 proxies
	row "RSS KiB after the warm-up" rss 4 proxies
fi
