#!/usr/bin/env bash
# bench-proxy: urpoll-proxy --threads 1 against HAProxy (mode tcp, nbthread 1) and against no
# proxy at all, in the same run, on the same CPUs.
#
#   tools/scripts/bench-proxy.sh [BUILD_DIR]        (default build; `make bench-proxy` runs it)
#
# Environment: RUNS (5) repetitions, interleaved; N (20000) requests per redis-benchmark run
# (5 N with -P 16);
# LAT_N (10000) round trips of the latency client; IPERF_S (3) seconds per iperf3 run;
# PROXY_CPU (1) and LOAD_CPU (0): the proxy runs alone on PROXY_CPU, redis-server, iperf3 and
# every client share LOAD_CPU. Medians go to stdout as a Markdown table; every sample goes to
# BUILD_DIR/bench-proxy/samples.txt.
set -euo pipefail

build=${1:-build}
runs=${RUNS:-5}
n=${N:-20000}
lat_n=${LAT_N:-10000}
iperf_s=${IPERF_S:-3}
proxy_cpu=${PROXY_CPU:-1}
load_cpu=${LOAD_CPU:-0}
proxy_bin=$build/tools/urpoll-proxy
out=$build/bench-proxy
hz=$(getconf CLK_TCK)

for p in redis-server redis-benchmark haproxy iperf3 taskset cc; do
	command -v "$p" >/dev/null || { echo "bench-proxy: $p is missing (tools/scripts/install-deps.sh)" >&2; exit 1; }
done
[ -x "$proxy_bin" ] || { echo "bench-proxy: no $proxy_bin (make tools first)" >&2; exit 1; }
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
cc -O2 -o "$tmp/lat" "$tmp/lat.c"

redis_port=$(free_port)
iperf_port=$(free_port)
taskset -c "$load_cpu" redis-server --port "$redis_port" --bind 127.0.0.1 --save '' \
	--appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
pids+=($!)
taskset -c "$load_cpu" iperf3 -s -p "$iperf_port" -B 127.0.0.1 >"$tmp/iperf.log" 2>&1 &
pids+=($!)
wait_port "$redis_port"
wait_port "$iperf_port"

# HAProxy: TCP mode, one thread, the timeouts urpoll-proxy defaults to. Written to the results
# directory too, as docs/proxy.md quotes it.
ha_redis=$(free_port)
ha_iperf=$(free_port)
cat >"$tmp/haproxy.cfg" <<EOF
global
	nbthread 1
	maxconn 4096
	log stdout format raw local0 err

defaults
	mode tcp
	timeout connect 5s
	timeout client 300s
	timeout server 300s

frontend redis_in
	bind 127.0.0.1:$ha_redis
	default_backend redis

backend redis
	server redis1 127.0.0.1:$redis_port

frontend iperf_in
	bind 127.0.0.1:$ha_iperf
	default_backend iperf

backend iperf
	server iperf1 127.0.0.1:$iperf_port
EOF
cp "$tmp/haproxy.cfg" "$out/haproxy.cfg"
taskset -c "$proxy_cpu" haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
ha_pid=$!
pids+=($ha_pid)

# urpoll-proxy: one instance per backend, so each one's CPU time is its traffic alone.
up_redis=$(free_port)
up_iperf=$(free_port)
taskset -c "$proxy_cpu" "$proxy_bin" -q --threads 1 --listen "127.0.0.1:$up_redis" \
	--backend "127.0.0.1:$redis_port" &
up_pid=$!
pids+=($up_pid)
taskset -c "$proxy_cpu" "$proxy_bin" -q --threads 1 --listen "127.0.0.1:$up_iperf" \
	--backend "127.0.0.1:$iperf_port" &
pids+=($!)
wait_port "$ha_redis"
wait_port "$up_redis"
wait_port "$ha_iperf"
wait_port "$up_iperf"

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

samples=$out/samples.txt
: >"$samples"
# One sample line: KIND TARGET VALUES...
record() { echo "$*" >>"$samples"; }

# target -> redis port, iperf port, pid whose CPU is measured (none for direct)
declare -A rport=([direct]=$redis_port [haproxy]=$ha_redis [urpoll]=$up_redis)
declare -A iport=([direct]=$iperf_port [haproxy]=$ha_iperf [urpoll]=$up_iperf)
declare -A cpid=([direct]= [haproxy]=$ha_pid [urpoll]=$up_pid)
targets=(direct haproxy urpoll)

echo "bench-proxy: $runs runs each, interleaved; proxy on CPU $proxy_cpu, load on CPU $load_cpu" >&2
for run in $(seq "$runs"); do
	# Rotate the order each run so that no target always goes first after a pause.
	order=("${targets[@]:$((run % 3))}" "${targets[@]:0:$((run % 3))}")
	for tg in "${order[@]}"; do
		for pipeline in 1 16; do
			reqs=$((pipeline == 1 ? n : n * 5))
			pid=${cpid[$tg]}
			t0=$([ -n "$pid" ] && cpu_ticks "$pid" || echo 0)
			csv=$(taskset -c "$load_cpu" redis-benchmark -h 127.0.0.1 -p "${rport[$tg]}" \
				-t get -n "$reqs" -c 50 -P "$pipeline" --csv 2>/dev/null | grep '"GET"')
			t1=$([ -n "$pid" ] && cpu_ticks "$pid" || echo 0)
			# "GET","rps","avg","min","p50","p95","p99","max" (ms)
			rps=$(echo "$csv" | awk -F'"' '{ print $4 }')
			p50=$(echo "$csv" | awk -F'"' '{ print $10 }')
			p99=$(echo "$csv" | awk -F'"' '{ print $14 }')
			us=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v r="$reqs" 'BEGIN { printf "%.3f", d * 1e6 / hz / r }')
			record "rps_P$pipeline $tg $rps $p50 $p99 $us"
		done
		record "lat $tg $(taskset -c "$load_cpu" "$tmp/lat" "${rport[$tg]}" "$lat_n")"
		gbit=$(taskset -c "$load_cpu" iperf3 -c 127.0.0.1 -p "${iport[$tg]}" -t "$iperf_s" \
			-f g 2>/dev/null | awk '/receiver/ { print $(NF - 2) }')
		record "bulk $tg $gbit"
	done
	echo "bench-proxy: run $run of $runs done" >&2
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%g\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v k="$1" -v t="$2" -v c="$3" '$1 == k && $2 == t { print $c }' "$samples" | median; }

echo "| metric (median of $runs) | direct | HAProxy 2.6 | urpoll-proxy | urpoll / HAProxy |"
echo "|---|---|---|---|---|"
row() {
	local label=$1 kind=$2 c=$3 d h u
	d=$(col "$kind" direct "$c")
	h=$(col "$kind" haproxy "$c")
	u=$(col "$kind" urpoll "$c")
	echo "| $label | $d | $h | $u | $(awk -v h="$h" -v u="$u" 'BEGIN { if (h > 0) printf "%.2f", u / h; else print "-" }') |"
}
row "GET req/s, 50 conns" rps_P1 3
row "GET req/s, 50 conns, -P 16" rps_P16 3
row "p50 ms under load (redis-benchmark)" rps_P1 4
row "p99 ms under load (redis-benchmark)" rps_P1 5
row "proxy CPU µs/request" rps_P1 6
row "proxy CPU µs/request, -P 16" rps_P16 6
row "1 conn PING p50 µs" lat 3
row "1 conn PING p99 µs" lat 4
row "1 conn PING p99.9 µs" lat 5
row "bulk Gbit/s (iperf3)" bulk 3
