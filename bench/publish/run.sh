#!/usr/bin/env bash
# bench-publish: put_event throughput against a plain INSERT of the same row
# into a plain table with the same columns, measured alternately in one run
# with pgbench (single-event transactions, 8 clients, synchronous_commit on,
# a 1 KB event), on a bus with 0, 100 and 10,000 rules that mix the
# operators and of which the published event matches exactly one (each rule
# with one target).  Prints, per rule count:
#   rules=N put_event_tps=A plain_insert_tps=B ratio=A/B
# and, for the dense bus of ../shared/conformance/bench/rules.json (each
# event matches dozens of rules), a second line marked dense=1.
#
# BENCH_SECONDS (default 10) is the length of one pgbench run; each figure
# is the sum over BENCH_ROUNDS (default 2) alternating rounds.  BENCH_PRELOAD=1
# (see below) adds no_stats_tps, put_event with eventbus.track_stats = off in
# the same rounds, and stats_cost = 1 - put_event_tps / no_stats_tps, and a
# second line per bus from cpu_pair (below).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
. "$repo/scripts/lib.sh"
seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-2}
clients=8
conformance=${EVENTBUS_CONFORMANCE_DIR:-$repo/../shared/conformance}

if [ "$(id -u)" -eq 0 ]; then
	"$repo/scripts/setup.sh"
fi
make -C "$repo" -s PG_CONFIG="$PG_BIN/pg_config" >/dev/null
if [ "$(id -u)" -eq 0 ]; then make -C "$repo" -s install PG_CONFIG="$PG_BIN/pg_config" >/dev/null; fi

dir=$(make_scratch bench-publish)
trap 'stop_cluster "$dir"; rm -rf "$dir"' EXIT
port=$(free_port)
# No delivery worker: this measures publishing (and matching) alone.
# BENCH_PRELOAD=1 preloads the library (so the counters in shared memory
# count every publish) with its worker pointed at a database that does not
# exist, where it waits without connecting: what the counters cost.
if [ -n "${BENCH_PRELOAD:-}" ]; then
	preload="shared_preload_libraries = 'pg_eventbus'"
	worker_db="eventbus.database = 'no_such_database'"
else
	preload="shared_preload_libraries = ''"
	worker_db=""
fi
start_cluster "$dir" "$port" "$preload" "$worker_db" "fsync = on" \
	"synchronous_commit = on" "max_connections = 50" "shared_buffers = 256MB" \
	"checkpoint_timeout = 30min" "max_wal_size = 4GB"
export PGHOST=$dir PGPORT=$port PGUSER=postgres PGDATABASE=postgres
export PGOPTIONS='-c client_min_messages=error'

psql() { as_pg env PGOPTIONS="$PGOPTIONS" "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }

# a realistic ~1 KB detail
detail=$(python3 -c '
import json
d = {"orderId": "ord-5600549", "status": "PLACED", "amount": 9265.04, "currency": "EUR",
     "customer": {"id": "cust-532135", "tier": "pro", "country": "ES", "email": "user35272@corp.example"},
     "items": [{"sku": "SKU-%04d" % i, "qty": i, "price": 100.5 + i} for i in range(4)],
     "tags": ["priority", "gift"], "sourceIp": "10.4.239.175",
     "metadata": {"traceId": "a7af0166e78bdaeda60dc6356638518e", "schemaVersion": 1, "flags": {"beta": False, "split": True}},
     "description": "lorem ipsum dolor sit amet " * 16}
print(json.dumps(d))')

psql -c "CREATE EXTENSION pg_eventbus" \
	 -c "CREATE TABLE plain_events (LIKE eventbus.events INCLUDING ALL)"

cat >"$dir/put_event.sql" <<SQL
SELECT eventbus.put_event('com.bench.orders', 'Order Placed', '$detail', ARRAY['arn:bench:order/1']);
SQL
cat >"$dir/plain.sql" <<SQL
INSERT INTO plain_events (id, bus, source, detail_type, resources, detail, "time", account, region)
VALUES (gen_random_uuid(), 'default', 'com.bench.orders', 'Order Placed', ARRAY['arn:bench:order/1'], '$detail', clock_timestamp(), '000000000000', 'local');
SQL
chmod 644 "$dir"/*.sql

# tps of one pgbench run of script $1, with settings $2 (PGOPTIONS syntax)
run_pgbench() {
	as_pg env PGOPTIONS="$PGOPTIONS ${2:-}" "$PG_BIN/pgbench" -n -c "$clients" -j 2 -T "$seconds" -f "$1" 2>/dev/null |
		awk '/^tps = / {print $3}'
}

reset_tables() {
	psql -c "TRUNCATE eventbus.deliveries, eventbus.events, plain_events" -c "CHECKPOINT"
}

# bench_pair N EXTRA WANT: alternates put_event and plain INSERT runs of the
# current scripts (and, preloaded, put_event with eventbus.track_stats = off:
# the counters' cost, side by side), prints the result line, then checks
# that the benchmark event matches WANT rules (any number when WANT is empty)
bench_pair() {
	local n=$1 extra=$2 want=$3 a=0 b=0 c=0 r t matched
	for r in $(seq "$rounds"); do
		reset_tables
		t=$(run_pgbench "$dir/put_event.sql"); a=$(echo "$a + $t" | bc -l)
		if [ -n "${BENCH_PRELOAD:-}" ]; then
			reset_tables
			t=$(run_pgbench "$dir/put_event.sql" "-c eventbus.track_stats=off"); c=$(echo "$c + $t" | bc -l)
		fi
		reset_tables
		t=$(run_pgbench "$dir/plain.sql"); b=$(echo "$b + $t" | bc -l)
	done
	if [ -n "${BENCH_PRELOAD:-}" ]; then
		extra=$(printf ' no_stats_tps=%.0f stats_cost=%.3f%s' "$(echo "$c / $rounds" | bc -l)" \
			"$(echo "1 - $a / $c" | bc -l)" "$extra")
	fi
	printf 'rules=%s put_event_tps=%.0f plain_insert_tps=%.0f ratio=%.3f%s\n' \
		"$n" "$(echo "$a / $rounds" | bc -l)" "$(echo "$b / $rounds" | bc -l)" \
		"$(echo "$a / $b" | bc -l)" "$extra"
	# how many rules the benchmark event matches (publishes it once more)
	matched=$(printf '%s \\gset p_\nSELECT count(DISTINCT rule) FROM eventbus.deliveries WHERE event_id = :%s;\n' \
		"$(sed 's/;$//' "$dir/put_event.sql")" "'p_put_event'" | psql -tA)
	echo "# rules=$n: the benchmark event matched $matched rule(s)"
	if [ -n "$want" ] && [ "$matched" != "$want" ]; then
		echo "bench-publish: expected the event to match $want rule(s), it matched $matched" >&2
		exit 1
	fi
}

# cpu_pair N EXTRA: preloaded only.  The CPU time a backend spends per
# event publishing CPU_EVENTS (default 3000) events of the current script,
# one transaction each, with eventbus.track_stats on in one session and off
# in another, both running at the same time (so that what else the machine
# runs weighs on both alike), over BENCH_ROUNDS rounds.  CPU time of each
# backend itself (/proc: user and system) is what the counters add to.
# Prints
#   rules=N cpu_us_per_event=A no_stats_cpu_us_per_event=B stats_cpu_cost=A/B-1
cpu_pair() {
	local n=$1 extra=$2 events=${CPU_EVENTS:-3000} on=0 off=0 r mode
	[ -n "${BENCH_PRELOAD:-}" ] || return 0
	local call
	call=$(sed 's/^SELECT //; s/;$//' "$dir/put_event.sql")
	cpu_of() {
		printf '%s\n' \
			"SET eventbus.track_stats = $1;" \
			"SELECT pg_backend_pid() AS pid \\gset" \
			"\\setenv EB_PID :pid" \
			"\\! awk '{print \$14 + \$15}' /proc/\$EB_PID/stat > $dir/cpu0.$1" \
			"DO \$\$ BEGIN FOR i IN 1..$events LOOP PERFORM $call; COMMIT; END LOOP; END \$\$;" \
			"\\! awk '{print \$14 + \$15}' /proc/\$EB_PID/stat > $dir/cpu1.$1" |
			psql -tA >/dev/null
	}
	for r in $(seq "$rounds"); do
		reset_tables
		cpu_of on & cpu_of off & wait
		on=$((on + $(cat "$dir/cpu1.on") - $(cat "$dir/cpu0.on")))
		off=$((off + $(cat "$dir/cpu1.off") - $(cat "$dir/cpu0.off")))
	done
	local hz
	hz=$(getconf CLK_TCK)
	printf 'rules=%s cpu_us_per_event=%.1f no_stats_cpu_us_per_event=%.1f stats_cpu_cost=%.3f%s\n' "$n" \
		"$(echo "$on * 1000000 / $hz / ($events * $rounds)" | bc -l)" \
		"$(echo "$off * 1000000 / $hz / ($events * $rounds)" | bc -l)" \
		"$(echo "$on / $off - 1" | bc -l)" "$extra"
}

# load_mixed_rules N: N rules mixing exact, prefix, numeric, anything-but and
# exists; only rule 0 matches the benchmark event.
load_mixed_rules() {
	psql -c "DELETE FROM eventbus.rules" -c "
	INSERT INTO eventbus.rules (bus, name, event_pattern)
	SELECT 'default', 'rule-' || i,
		CASE
			WHEN i = 0 THEN '{\"source\": [\"com.bench.orders\"], \"detail-type\": [\"Order Placed\"]}'
			WHEN i % 5 = 0 THEN format('{\"source\": [\"com.bench.s%s\"], \"detail-type\": [\"Order Placed\"]}', i)
			WHEN i % 5 = 1 THEN format('{\"detail-type\": [{\"prefix\": \"Type%s-\"}]}', i)
			WHEN i % 5 = 2 THEN format('{\"detail\": {\"amount\": [{\"numeric\": [\">=\", %s, \"<\", %s]}]}}', 10000 + i * 10, 10000 + i * 10 + 5)
			WHEN i % 5 = 3 THEN format('{\"source\": [\"com.bench.s%s\"], \"detail\": {\"status\": [{\"anything-but\": [\"CANCELLED\", \"VOID\"]}]}}', i)
			ELSE format('{\"detail\": {\"field%s\": [{\"exists\": true}]}}', i)
		END::jsonb
	FROM generate_series(0, $1 - 1) i" \
	-c "INSERT INTO eventbus.targets (bus, rule, target_id, endpoint)
		SELECT bus, name, 't', 'http://127.0.0.1:9/' || name FROM eventbus.rules"
	# every pattern must be one the API accepts
	psql -c "SELECT count(eventbus.validate_event_pattern(event_pattern)) FROM eventbus.rules" >/dev/null
}

for n in 0 100 10000; do
	load_mixed_rules "$n"
	bench_pair "$n" "" "$([ "$n" -gt 0 ] && echo 1 || echo 0)"
	cpu_pair "$n" ""
done

if [ -r "$conformance/bench/rules.json" ]; then
	# dense bus: the rules of the matcher benchmark; the event is the first
	# of its events, which matches dozens of them
	cp "$conformance/bench/rules.json" "$dir/rules.json"
	chmod 644 "$dir/rules.json"
	psql -c "DELETE FROM eventbus.rules" -c "
		CREATE TEMP TABLE raw (doc text);
		COPY raw FROM '$dir/rules.json' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02');
		INSERT INTO eventbus.rules (bus, name, event_pattern)
		SELECT 'default', r ->> 'name', r -> 'pattern'
		FROM (SELECT string_agg(doc, E'\\n')::jsonb AS doc FROM raw) s, jsonb_array_elements(s.doc) r" \
		-c "INSERT INTO eventbus.targets (bus, rule, target_id, endpoint)
			SELECT bus, name, 't', 'http://127.0.0.1:9/' || name FROM eventbus.rules"
	head -n 1 "$conformance/bench/events.jsonl" | python3 -c '
import json, sys
e = json.loads(sys.stdin.read())
q = lambda s: "'"'"'" + s.replace("'"'"'", "'"''"'") + "'"'"'"
args = "%s, %s, %s, ARRAY[%s]::text[]" % (q(e["source"]), q(e["detail-type"]), q(json.dumps(e["detail"])),
                                          ", ".join(q(r) for r in e["resources"]))
open(sys.argv[1], "w").write("SELECT eventbus.put_event(%s);\n" % args)
open(sys.argv[2], "w").write(
    "INSERT INTO plain_events (id, bus, source, detail_type, detail, resources, \"time\", account, region)\n"
    "VALUES (gen_random_uuid(), '"'"'default'"'"', %s, clock_timestamp(), '"'"'000000000000'"'"', '"'"'local'"'"');\n" % args)
' "$dir/put_event.sql" "$dir/plain.sql"
	bench_pair "$(psql -tA -c "SELECT count(*) FROM eventbus.rules")" " dense=1" ""
	cpu_pair "$(psql -tA -c "SELECT count(*) FROM eventbus.rules")" " dense=1"
fi
