#!/usr/bin/env bash
# urpoll-bench in --smoke mode: every workload on every backend, then its JSON checked.
#
#   tests/bench/bench_smoke.sh BUILD_DIR
#
# Checks what a run must get right whatever the timings (none are asserted): the JSON parses,
# every workload listed by --help has a cell per parameter and backend, each ok or n/a because
# the workload does not apply (never failed, never "not linked": the Makefile links every
# peer), counts are > 0, ratios finite, syscalls counted (when root), and for notify and
# pingpong the urpoll and epoll cells processed the same number of units and bytes. urpoll-ring
# (ring mode) must run pingpong-* and churn-conn (moving the same bytes as epoll in pingpong)
# and be n/a elsewhere. Then --callgrind smoke runs (notify; pingpong-tcp-64 in ring mode)
# must report instructions per unit. Records bench_smoke pass|fail.
set -u
build=${1:-build}
bench=$build/tools/urpoll-bench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

fail() {
	echo "bench_smoke: $*" >&2
	tests/run-suite.sh --record bench_smoke fail
	exit 1
}

[ -x "$bench" ] || fail "$bench not built"
"$bench" --help >"$tmp/help" || fail "--help failed"
# Workload lines of --help: two spaces, a name, the `what` line.
awk '/^Workloads:/ { f = 1; next } /^Backends:/ { f = 0 } f && /^  [a-z]/ { print $1 }' \
	"$tmp/help" >"$tmp/names"
[ -s "$tmp/names" ] || fail "--help lists no workload"

echo "== bench_smoke: urpoll-bench --smoke (every workload, every backend)"
"$bench" --smoke --json "$tmp/smoke.json" >"$tmp/smoke.out" 2>"$tmp/smoke.err" ||
	{ cat "$tmp/smoke.out" "$tmp/smoke.err"; fail "--smoke run failed"; }

echo "== bench_smoke: urpoll-bench --callgrind --smoke notify"
"$bench" --callgrind --smoke --backends urpoll,epoll --json "$tmp/cg.json" notify \
	>"$tmp/cg.out" 2>&1 || { cat "$tmp/cg.out"; fail "--callgrind run failed"; }

echo "== bench_smoke: urpoll-bench --callgrind --smoke --backends urpoll-ring pingpong-tcp-64"
"$bench" --callgrind --smoke --backends urpoll-ring --json "$tmp/cg-ring.json" pingpong-tcp-64 \
	>"$tmp/cg-ring.out" 2>&1 || { cat "$tmp/cg-ring.out"; fail "--callgrind ring run failed"; }

python3 - "$tmp/smoke.json" "$tmp/names" "$tmp/cg.json" "$(id -u)" "$tmp/cg-ring.json" <<'EOF' ||
import json, math, platform, re, sys

smoke_path, names_path, cg_path, uid, cg_ring_path = sys.argv[1:6]
errors = []
def check(ok, what):
    if not ok:
        errors.append(what)

d = json.load(open(smoke_path))
names = [l.strip() for l in open(names_path) if l.strip()]
backends = d["backends"]
check(backends == ["urpoll", "urpoll-ring", "epoll", "libev", "libevent", "libuv"],
      "backends: %s" % backends)
# Ring mode needs buffer rings (5.19) and multishot recv (6.0); an older kernel shows n/a.
kernel = tuple(int(x) for x in re.match(r"(\d+)\.(\d+)", platform.release()).groups())
ring_runs = lambda name: name.startswith("pingpong-") or name == "churn-conn"
if uid == "0":
    check(d["syscalls_counted"], "syscalls not counted although running as root")
cells = {(c["workload"], c["param"], c["backend"]): c for c in d["cells"]}
wls = {w["name"]: w for w in d["workloads"]}
check(sorted(wls) == sorted(names), "JSON workloads %s != --help %s" % (sorted(wls), names))
for name in names:
    w = wls.get(name)
    if not w:
        continue
    check(len(w["params"]) > 0, "%s: no parameters" % name)
    for p in w["params"]:
        for be in backends:
            c = cells.get((name, p, be))
            where = "%s %d %s" % (name, p, be)
            check(c is not None, "%s: no cell" % where)
            if c is None:
                continue
            check(c["status"] in ("ok", "n/a"), "%s: status %s" % (where, c["status"]))
            if be == "urpoll-ring" and ring_runs(name) and kernel >= (6, 0):
                check(c["status"] == "ok", "%s: ring mode did not run" % where)
            elif be == "urpoll-ring" and not ring_runs(name):
                check(c["status"] == "n/a", "%s: ran a workload without stream I/O" % where)
            # The Makefile links every peer: n/a may only mean the workload does not apply.
            check(c.get("reason") != "not linked", "%s: backend not linked" % where)
            if c["status"] != "ok":
                continue
            check(len(c["runs"]) == 1, "%s: %d runs in --smoke" % (where, len(c["runs"])))
            for r in c["runs"]:
                check(r["events"] > 0 and r["wall_ns"] > 0, "%s: empty run" % where)
                if d["syscalls_counted"]:
                    check(r["syscalls"] > 0, "%s: no syscalls counted" % where)
            s = c["summary"]
            m = s["metric"]["median"]
            check(m is not None and math.isfinite(m) and m > 0, "%s: metric %s" % (where, m))
            r = s["ratio_vs_epoll"]
            # A ratio needs epoll's cell: finite when it ran, absent when epoll does not apply
            # (word measures urpoll's readiness word alone).
            base = cells.get((name, p, "epoll"))
            if base is not None and base["status"] == "ok":
                check(r is not None and math.isfinite(r) and r > 0, "%s: ratio %s" % (where, r))
            else:
                check(r is None, "%s: ratio %s without an epoll cell" % (where, r))
        if name == "notify" or name.startswith("pingpong"):
            mine = ["urpoll"] + (["urpoll-ring"] if name.startswith("pingpong") else [])
            for be in mine:
                u, e = cells.get((name, p, be)), cells.get((name, p, "epoll"))
                if be == "urpoll-ring" and u and u["status"] == "n/a" and kernel < (6, 0):
                    continue
                if u and e and u["status"] == e["status"] == "ok":
                    for key in ("events", "bytes"):
                        a, b = u["runs"][0][key], e["runs"][0][key]
                        check(a == b and a > 0,
                              "%s %d: %s %s %d, epoll %d" % (name, p, be, key, a, b))
                else:
                    check(False, "%s %d: %s or epoll cell missing" % (name, p, be))

for path in (cg_path, cg_ring_path):
    cg = json.load(open(path))
    check(cg["callgrind"], "--callgrind JSON does not say callgrind")
    for c in cg["cells"]:
        if c["backend"] == "urpoll-ring" and c["status"] == "n/a" and kernel < (6, 0):
            continue
        ir = c.get("summary", {}).get("instructions_per_unit")
        check(c["status"] == "ok" and ir is not None and ir > 0,
              "callgrind %s %d %s: Ir/unit %s" % (c["workload"], c["param"], c["backend"], ir))

for e in errors:
    print("bench_smoke: " + e)
print("bench_smoke: %d cells, %d problems" % (len(cells), len(errors)))
sys.exit(1 if errors else 0)
EOF
	fail "JSON checks failed"
tests/run-suite.sh --record bench_smoke pass
