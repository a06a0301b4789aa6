#!/usr/bin/env bash
# The paved road in one command, on a throwaway local cluster: install what
# is needed, build and install pg_eventbus, start PostgreSQL 15 with the
# delivery worker and a local HTTP sink, then, from psql:
#   rules and HTTP targets; events published inside transactions (one rolled
#   back); the sink printing what it received; a failing target landing in
#   eventbus.dead_letters; the target fixed and its dead letters redriven.
# Everything it starts is stopped and removed at the end.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/scripts/lib.sh"

if [ "$(id -u)" -eq 0 ]; then
	"$repo/scripts/setup.sh"
fi

echo "== building and installing pg_eventbus"
make -C "$repo" -s -j2 PG_CONFIG="$PG_BIN/pg_config" >/dev/null
if [ "$(id -u)" -eq 0 ]; then
	make -C "$repo" -s install PG_CONFIG="$PG_BIN/pg_config" >/dev/null
else
	sudo make -C "$repo" -s install PG_CONFIG="$PG_BIN/pg_config" >/dev/null
fi

dir=$(make_scratch demo)
sink_pid=
cleanup() {
	stop_cluster "$dir"
	[ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

echo "== starting an HTTP sink on 127.0.0.1"
python3 "$repo/test/sink/sink.py" --port-file "$dir/sink.port" --log "$dir/sink.log" &
sink_pid=$!
for _ in $(seq 50); do [ -s "$dir/sink.port" ] && break; sleep 0.1; done
sink="http://127.0.0.1:$(cat "$dir/sink.port")"

echo "== starting PostgreSQL 15 with shared_preload_libraries = 'pg_eventbus'"
port=$(free_port)
start_cluster "$dir" "$port" "eventbus.database = 'postgres'" \
	"eventbus.retry_base_delay = '200ms'" "eventbus.retry_max_delay = '1s'"
export PGHOST=$dir PGPORT=$port PGUSER=postgres PGDATABASE=postgres

demo_psql() {
	as_pg env PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER="$PGUSER" PGDATABASE="$PGDATABASE" \
		"$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -v sink="$sink" "$@"
}

# Waits until no delivery is pending (or 30 s).
wait_drained() {
	for _ in $(seq 300); do
		[ "$(demo_psql -tA -c 'SELECT count(*) FROM eventbus.deliveries')" = 0 ] && return 0
		sleep 0.1
	done
	echo "deliveries still pending after 30 s" >&2
}

show_received() {
	python3 - "$sink/_received" <<'PY'
import json, sys, urllib.request
for r in json.load(urllib.request.urlopen(sys.argv[1])):
    body = json.loads(r["body"]) if r["body"] else {}
    print("  %s %s -> %s  webhook-id=%s  %s %s" % (
        r["method"], r["path"], r["status"], r["headers"].get("webhook-id"),
        body.get("detail-type"), json.dumps(body.get("detail"))))
PY
}

demo_psql -e <<'SQL'
CREATE EXTENSION pg_eventbus;

-- rules with EventBridge event patterns, and their HTTP targets
SELECT eventbus.put_rule('orders', '{"source": ["com.example.orders"], "detail-type": ["Order Placed"]}');
SELECT eventbus.put_target('orders', 'fulfilment', :'sink' || '/fulfilment');
SELECT eventbus.put_rule('big-orders', '{"source": ["com.example.orders"], "detail": {"total": [{"numeric": [">=", 1000]}]}}');
SELECT eventbus.put_target('big-orders', 'fraud-check', :'sink' || '/status/500',
						   max_retry_attempts => 2);

-- the monolith publishes inside its own transactions
CREATE TABLE orders (id int PRIMARY KEY, total numeric);
BEGIN;
INSERT INTO orders VALUES (1, 120);
SELECT eventbus.put_event('com.example.orders', 'Order Placed', '{"order": 1, "total": 120}') IS NOT NULL AS published;
COMMIT;
BEGIN;
INSERT INTO orders VALUES (2, 99);
SELECT eventbus.put_event('com.example.orders', 'Order Placed', '{"order": 2, "total": 99}') IS NOT NULL AS published;
ROLLBACK;  -- never delivered
SELECT eventbus.put_events('[
  {"Source": "com.example.orders", "DetailType": "Order Placed", "Detail": "{\"order\": 3, \"total\": 2500}"},
  {"Source": "com.example.orders", "DetailType": "Order Placed"}
]') -> 'FailedEntryCount' AS failed_entries;

SELECT source, detail_type, detail FROM eventbus.events ORDER BY published_at;
SELECT rule, target_id, attempts FROM eventbus.deliveries ORDER BY rule;
SQL

wait_drained
echo
echo "== what the HTTP sink received (the 500s are the fraud-check target's attempts)"
show_received

demo_psql -e <<'SQL'
\x on
SELECT id, rule, target_id, endpoint, error_code, http_status, attempts,
	   exhausted_condition, event -> 'detail' AS detail
FROM eventbus.dead_letters;
\x off
-- fix the target, then redrive its dead letters
SELECT eventbus.put_target('big-orders', 'fraud-check', :'sink' || '/fraud-check');
SELECT eventbus.redrive_dead_letters(target_id => 'fraud-check') AS redriven;
SQL

wait_drained
echo
echo "== the sink after the redrive"
show_received
demo_psql -e -c "SELECT count(*) AS dead_letters FROM eventbus.dead_letters"
echo
echo "== demo done; the cluster and the sink are removed"
