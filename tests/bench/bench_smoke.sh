#!/usr/bin/env bash
# urpoll-bench in --smoke mode: every workload on every backend, then its JSON checked.
#
#   tests/bench/bench_smoke.sh BUILD_DIR
#
# Checks what a run must get right whatever the timings (none are asserted): the JSON parses,
# every workload listed by --help has a cell per parameter and backend, each ok or n/a because
# the workload does not apply (never failed, never "not linked": the Makefile links every
# peer), counts are > 0, ratios finite, syscalls counted (when root), and for notify and
# pingpong the urpoll and epoll cells processed the same number of units and bytes. Then one
# --callgrind smoke run must report instructions per unit. Records bench_smoke pass|fail.
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

python3 - "$tmp/smoke.json" "$tmp/names" "$tmp/cg.json" "$(id -u)" <<'EOF' ||
import json, math, sys

smoke_path, names_path, cg_path, uid = sys.argv[1:5]
errors = []
def check(ok, what):
    if not ok:
        errors.append(what)

d = json.load(open(smoke_path))
names = [l.strip() for l in open(names_path) if l.strip()]
backends = d["backends"]
check(backends == ["urpoll", "epoll", "libev", "libevent", "libuv"], "backends: %s" % backends)
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
            u, e = cells.get((name, p, "urpoll")), cells.get((name, p, "epoll"))
            if u and e and u["status"] == e["status"] == "ok":
                for key in ("events", "bytes"):
                    a, b = u["runs"][0][key], e["runs"][0][key]
                    check(a == b and a > 0, "%s %d: urpoll %s %d, epoll %d" % (name, p, key, a, b))
            else:
                check(False, "%s %d: urpoll or epoll cell missing" % (name, p))

cg = json.load(open(cg_path))
check(cg["callgrind"], "--callgrind JSON does not say callgrind")
for c in cg["cells"]:
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
