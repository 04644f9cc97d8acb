#!/usr/bin/env bash
# Install the Debian packages urpoll needs to build, test and run, if any are missing.
# Idempotent and quiet when everything is present. Used by `make run`, `make check` and CI.
set -euo pipefail

packages=(
	# build
	gcc g++ make pkg-config liburing-dev libbpf-dev libelf-dev zlib1g-dev systemtap-sdt-dev
	clang llvm bpftool
	# tests
	libcriterion-dev spin binutils libclang-rt-14-dev python3
	# tests/trace/: docs/tracing.md's bpftrace one-liners and its bpftool | jq commands
	bpftrace jq
	# man pages (docs/man/: rendered and checked by tests/package/man-test.sh)
	man-db groff
	# urpoll-bench peers (libev, libevent, libuv) and instruction counts
	libev-dev libevent-dev libuv1-dev valgrind
	# urpoll-proxy tests and benchmark: real servers, clients and HAProxy; promtool (in
	# prometheus) checks its /metrics
	redis-server redis-tools nginx-light wrk curl haproxy iperf3 prometheus
)

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1 || [ ! -f /etc/debian_version ]; then
	echo "install-deps: not a Debian system; install these packages by hand: ${missing[*]}" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages (${missing[*]}); run as root or: sudo apt-get install ${missing[*]}" >&2
	exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
