#!/usr/bin/env bash
# Runs pg_eventbus's whole test suite on this machine (Debian 12, as root or
# as a user that can run Postgres):
#   matcher unit + conformance tests (and under valgrind), matcher fuzzers,
#   retry-policy unit tests, pg_regress and isolation tests against a
#   throwaway cluster, and the TAP tests (worker, crashes, restarts,
#   SQL conformance).
# Ends with one line "N passed, N failed"; exits non-zero on any failure.
#
# FUZZ_SECONDS (default 30) sets how long each fuzzer runs.
set -uo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/scripts/lib.sh"

if [ "$(id -u)" -eq 0 ]; then
	"$repo/scripts/setup.sh" || exit 1
fi

conformance=${EVENTBUS_CONFORMANCE_DIR:-$repo/../shared/conformance}
if [ ! -f "$conformance/patterns.jsonl" ]; then
	echo "test.sh: no conformance corpus at $conformance (set EVENTBUS_CONFORMANCE_DIR)" >&2
	exit 1
fi
conformance=$(cd "$conformance" && pwd)
export EVENTBUS_CONFORMANCE_DIR=$conformance

# Work in a copy owned by the cluster user: Postgres and its test harness
# refuse root and write into the tree.
scratch=$(make_scratch test)
work=$scratch/src
as_pg mkdir "$work"
tar -C "$repo" --exclude=.git --exclude=test/matcher/build --exclude=tmp_check --exclude=results --exclude='*.o' --exclude='*.so' --exclude='*.bc' -cf - . | as_pg tar -C "$work" -xf -
pgdir=$scratch/cluster
as_pg mkdir "$pgdir"

cleanup() {
	stop_cluster "$pgdir"
	if [ -z "${KEEP_TEST_DIR:-}" ]; then
		rm -rf "$scratch"
	else
		echo "test.sh: kept $scratch"
	fi
}
trap cleanup EXIT

passed=0
failed=0
failures=()

# record NAME PASSED FAILED
record() {
	passed=$((passed + $2))
	failed=$((failed + $3))
	if [ "$3" -gt 0 ]; then
		failures+=("$1")
	fi
}

# Adds up the "<suite>: N passed, N failed" lines a step printed.
count_summary_lines() {
	local name=$1 log=$2 rc=$3 p f
	p=$(grep -Eo '^[A-Za-z0-9_ -]+: [0-9]+ passed, [0-9]+ failed' "$log" | awk '{s+=$(NF-3)} END {print s+0}')
	f=$(grep -Eo '^[A-Za-z0-9_ -]+: [0-9]+ passed, [0-9]+ failed' "$log" | awk '{s+=$(NF-1)} END {print s+0}')
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1
	fi
	record "$name" "$p" "$f"
}

step() {
	echo
	echo "=== $*"
}

# The include graph of src/: no two modules (x.c with x.h) include each
# other in a loop, and the publishing path includes nothing of the worker
# but wake.h, directly or through another header.
check_includes() {
	python3 - "$1/src" <<'PY'
import os, re, sys
src = sys.argv[1]
files = sorted(f for f in os.listdir(src) if f.endswith((".c", ".h")))
inc = {f: [h for h in re.findall(r'^#include "([^"]+)"', open(os.path.join(src, f)).read(), re.M)
           if h in files] for f in files}
mod = lambda f: f.rsplit(".", 1)[0]
edges = {}
for f, hs in inc.items():
    edges.setdefault(mod(f), set()).update(mod(h) for h in hs if mod(h) != mod(f))
passed = failed = 0
# a loop: a module that reaches itself
def reach(m):
    seen, todo = set(), list(edges.get(m, ()))
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(edges.get(n, ()))
    return seen
loops = sorted(m for m in edges if m in reach(m))
if loops:
    print("include loop through: " + ", ".join(loops)); failed += 1
else:
    passed += 1
# the publishing path sees only wake.h of the worker
worker_headers = {"worker.h", "queue.h", "request.h", "slots.h", "worker_internal.h"}
def headers_of(f):
    seen, todo = set(), list(inc.get(f, ()))
    while todo:
        h = todo.pop()
        if h not in seen:
            seen.add(h)
            todo.extend(inc.get(h, ()))
    return seen
for f in ("publish.c", "match_trigger.c", "rule_cache.c", "envelope.c", "jsonb_matcher.c"):
    if f not in files:
        continue
    bad = sorted(headers_of(f) & worker_headers)
    if bad:
        print(f"{f} includes {', '.join(bad)} (the publishing path may include only wake.h)"); failed += 1
    else:
        passed += 1
print(f"include graph: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
}

step "include graph"
check_includes "$repo" 2>&1 | tee "$scratch/includes.log"
count_summary_lines includes "$scratch/includes.log" "${PIPESTATUS[0]}"

step "build (-Werror)"
if as_pg make -C "$work" -s -j2 EXTRA_CFLAGS=-Werror PG_CONFIG="$PG_BIN/pg_config" >"$scratch/build.log" 2>&1; then
	record build 1 0
else
	cat "$scratch/build.log"
	record build 0 1
	echo "0 passed, 1 failed"
	exit 1
fi
make -C "$work" -s install PG_CONFIG="$PG_BIN/pg_config" >"$scratch/install.log" 2>&1 || { cat "$scratch/install.log"; exit 1; }

step "matcher: unit and conformance tests, under valgrind"
as_pg make -C "$work/test/matcher" -s check valgrind CONFORMANCE_DIR="$conformance" 2>&1 | tee "$scratch/matcher.log"
count_summary_lines matcher "$scratch/matcher.log" "${PIPESTATUS[0]}"

step "matcher: fuzzers (${FUZZ_SECONDS:-30} s each)"
as_pg make -C "$work/test/matcher" -s fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-30}" CONFORMANCE_DIR="$conformance" >"$scratch/fuzz.log" 2>&1
rc=$?
grep -E '^fuzz|#[0-9]+.*DONE|ERROR' "$scratch/fuzz.log" | tail -20
count_summary_lines fuzz "$scratch/fuzz.log" "$rc"
if [ "$rc" -ne 0 ]; then
	for f in "$work"/test/matcher/build/fuzz_*.log; do
		[ -f "$f" ] && { echo "--- $f (tail)"; tail -40 "$f"; }
	done
fi

if [ -f "$work/test/policy/Makefile" ]; then
	step "retry policy unit tests"
	as_pg make -C "$work/test/policy" -s check 2>&1 | tee "$scratch/policy.log"
	count_summary_lines policy "$scratch/policy.log" "${PIPESTATUS[0]}"
fi

step "pg_regress and isolation tests"
port=$(free_port)
start_cluster "$pgdir" "$port" "eventbus.database = 'postgres'"
as_pg make -C "$work" -s installcheck PG_CONFIG="$PG_BIN/pg_config" PGHOST="$pgdir" PGPORT="$port" PGUSER=postgres >"$scratch/regress.log" 2>&1
rc=$?
cat "$scratch/regress.log"
ok=$(grep -cE '\.\.\. +ok' "$scratch/regress.log")
bad=$(grep -cE '\.\.\. +FAILED' "$scratch/regress.log")
if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
record regress "$ok" "$bad"
if [ "$rc" -ne 0 ]; then
	for d in "$work/regression.diffs" "$work/test/output_iso/regression.diffs"; do
		[ -f "$d" ] && cat "$d"
	done
fi
stop_cluster "$pgdir"

step "TAP tests"
as_pg env EVENTBUS_CONFORMANCE_DIR="$conformance" make -C "$work" -s prove_installcheck PG_CONFIG="$PG_BIN/pg_config" 2>&1 | tee "$scratch/tap.log"
rc=${PIPESTATUS[0]}
# prove's summary: "Files=N, Tests=M, ..." and, for each failed file,
# "test/t/x.pl (Wstat: ... Tests: ... Failed: ...)"
files=$(grep -Eo '^Files=[0-9]+' "$scratch/tap.log" | grep -Eo '[0-9]+' || echo 0)
bad=$(grep -cE '^test/t/[^ ]+ +\(Wstat:' "$scratch/tap.log")
ok=$((files - bad))
if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
record tap "$ok" "$bad"
if [ "$rc" -ne 0 ]; then
	for f in "$work"/tmp_check/log/regress_log_*; do
		[ -f "$f" ] && { echo "--- $f (tail)"; tail -40 "$f"; }
	done
fi

echo
if [ "$failed" -gt 0 ]; then
	echo "failed steps: ${failures[*]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
