#!/bin/bash
# bench/dispatch: sustained delivery rate of the worker to a local HTTP
# server answering 204 at once, next to the raw request rate of that server
# measured with wrk at the same concurrency, plus commit-to-delivery
# latency at a moderate load and the worker's memory over a long run.
#
# Runs as root (make bench-dispatch): installs nginx if missing, builds and
# installs the extension, and runs a throwaway cluster and nginx as the
# postgres user in a temporary directory on 127.0.0.1.
#
# Settings (environment): PG_BIN or PG_CONFIG (the server to build against
# and run; default the system's PostgreSQL 15), EVENTS (100000) events for the throughput run,
# CONCURRENCY (256), WORKERS (2, eventbus.workers: one per core), LATENCY_RATE (1000
# events/s) for LATENCY_SECONDS (10), LONG_RUN (1000000; 0 skips)
# deliveries for the memory check; ATTEMPT_LOG (unset: the default) sets
# eventbus.attempt_log; BATCH_EVENTS (EVENTS / 2; 0 skips) deliveries for
# the batch comparison.  Also logged (lines starting with #):
# the dispatch-only rate, draining a queue filled in one transaction.
# Batches: the same backlog of BATCH_EVENTS, queued in one transaction for
# the same target, drained with batch_size 1 and then with batch_size 100
# (one request per 100 events, a JSON array).  Counters: STATS_EVENTS
# (EVENTS / 4) queued at once and drained with eventbus.track_stats on and
# off, alternating over STATS_ROUNDS (3; 0 skips) rounds.
# Prints:
#   deliveries=N seconds=S deliveries_per_sec=D raw_http_per_sec=R ratio=D/R p50_ms=X p99_ms=Y attempt_log=M batch1_per_sec=B1 batch100_per_sec=B100 batch_ratio=B100/B1 stats_on_per_sec=S1 stats_off_per_sec=S0 stats_cost=1-S1/S0
set -euo pipefail

EVENTS=${EVENTS:-100000}
CONCURRENCY=${CONCURRENCY:-256}
WORKERS=${WORKERS:-2}
LATENCY_RATE=${LATENCY_RATE:-1000}
LATENCY_SECONDS=${LATENCY_SECONDS:-10}
LONG_RUN=${LONG_RUN:-1000000}
BATCH_EVENTS=${BATCH_EVENTS:-$((EVENTS / 2))}
STATS_EVENTS=${STATS_EVENTS:-$((EVENTS / 4))}
STATS_ROUNDS=${STATS_ROUNDS:-3}
# the server: PG_BIN, else PG_CONFIG's bindir, else PGBIN, else the system's
if [ -n "${PG_BIN:-}" ]; then
	PGBIN=$PG_BIN
elif [ -n "${PG_CONFIG:-}" ]; then
	PGBIN=$("$PG_CONFIG" --bindir)
fi
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
RUNAS=postgres
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)

log() { echo "# $*" >&2; }

# nginx from Debian, without letting the package start a system service
if ! command -v nginx >/dev/null 2>&1; then
	log "installing nginx"
	made_policy=0
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		made_policy=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx-light >/dev/null 2>&1 ||
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx >/dev/null
	[ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi
if ! command -v wrk >/dev/null 2>&1; then
	log "installing wrk"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends wrk >/dev/null
fi

log "building and installing pg_eventbus"
make -C "$TOP" -s -j2 PG_CONFIG="$PGBIN/pg_config" >/dev/null
make -C "$TOP" -s install PG_CONFIG="$PGBIN/pg_config" >/dev/null

DIR=$(mktemp -d /tmp/bench-dispatch.XXXXXX)
chown "$RUNAS" "$DIR"
PGPORT=$((20000 + RANDOM % 10000))
HTTP_PORT=$((PGPORT + 1))
LOG_PORT=$((PGPORT + 2))
as() { runuser -u "$RUNAS" -- "$@"; }
psql_() { as "$PGBIN/psql" -h "$DIR" -p "$PGPORT" -d postgres -XAtq -v ON_ERROR_STOP=1 "$@"; }

cleanup() {
	[ -f "$DIR/nginx.pid" ] && kill "$(cat "$DIR/nginx.pid")" 2>/dev/null || true
	[ -d "$DIR/data" ] && as "$PGBIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$DIR"
}
trap cleanup EXIT

# nginx: one port without logging (throughput), one logging arrival times
cat >"$DIR/nginx.conf" <<CONF
worker_processes 1;
daemon on;
pid $DIR/nginx.pid;
error_log $DIR/nginx-error.log;
events { worker_connections 4096; }
http {
	client_body_temp_path $DIR/nginx-body;
	proxy_temp_path $DIR/nginx-proxy;
	fastcgi_temp_path $DIR/nginx-fastcgi;
	uwsgi_temp_path $DIR/nginx-uwsgi;
	scgi_temp_path $DIR/nginx-scgi;
	keepalive_requests 10000000;
	keepalive_timeout 300s;
	log_format arrival '\$msec \$http_webhook_id';
	server {
		listen 127.0.0.1:$HTTP_PORT;
		access_log off;
		location / { return 204; }
	}
	server {
		listen 127.0.0.1:$LOG_PORT;
		access_log $DIR/arrivals.log arrival;
		location / { return 204; }
	}
}
CONF
chown "$RUNAS" "$DIR/nginx.conf"
as nginx -c "$DIR/nginx.conf" -e "$DIR/nginx-error.log" 2>/dev/null
sleep 0.5

# the raw request rate of that server, same concurrency, 1 KB POST bodies
head -c 1000 /dev/zero | tr '\0' 'x' >"$DIR/body"
cat >"$DIR/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$DIR/body", "r"); wrk.body = f:read("*a"); f:close()
LUA
RAW=$(wrk -t2 -c"$CONCURRENCY" -d5s -s "$DIR/post.lua" "http://127.0.0.1:$HTTP_PORT/" |
	awk '/Requests\/sec/ {printf "%d", $2}')
log "raw http: $RAW requests/s (wrk, $CONCURRENCY connections)"

# a throwaway cluster with the worker
as "$PGBIN/initdb" -D "$DIR/data" -A trust >/dev/null
cat >>"$DIR/data/postgresql.conf" <<CONF
port = $PGPORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'pg_eventbus'
eventbus.database = 'postgres'
eventbus.workers = $WORKERS
eventbus.max_concurrent_requests = $CONCURRENCY
eventbus.max_concurrent_per_target = $CONCURRENCY
eventbus.batch_size = 200
${ATTEMPT_LOG:+eventbus.attempt_log = '$ATTEMPT_LOG'}
shared_buffers = 512MB
max_wal_size = 4GB
checkpoint_timeout = 30min
CONF
as "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/pg.log" -w start >/dev/null
psql_ -c "CREATE EXTENSION pg_eventbus" >/dev/null
psql_ >/dev/null <<SQL
SELECT eventbus.put_rule('bench', '{"source": ["bench"]}');
SELECT eventbus.put_target('bench', 'nginx', 'http://127.0.0.1:$HTTP_PORT/');
SELECT eventbus.put_rule('latency', '{"source": ["latency"]}');
SELECT eventbus.put_target('latency', 'nginx', 'http://127.0.0.1:$LOG_PORT/');
SQL
WORKER_PIDS=$(psql_ -c "SELECT pid FROM pg_stat_activity WHERE backend_type LIKE '%eventbus%' ORDER BY pid")
# resident memory of each worker: all of it, and its private part (RssAnon;
# the rest is shared buffers it has touched)
rss() {
	local pid sep=""
	for pid in $WORKER_PIDS; do
		printf '%s' "$sep"
		awk '/VmRSS/ {r=$2} /RssAnon/ {a=$2} END {printf "%s kB (private %s kB)", r, a}' "/proc/$pid/status"
		sep=", "
	done
}

# events of about 1 KB (the envelope a target receives)
PAD=850
echo "SELECT eventbus.put_event('bench', 'Bench Event', jsonb_build_object('pad', repeat('x', $PAD), 'n', g)) FROM generate_series(1, 100) g;" >"$DIR/publish.sql"
echo "SELECT eventbus.put_event('latency', 'Latency Event', jsonb_build_object('pad', repeat('x', $PAD)));" >"$DIR/latency.sql"
chown "$RUNAS" "$DIR"/*.sql

# wait until no delivery of $1 is left; prints nothing.  It asks whether
# any row is left, from the head of the queue's index: a count(*) every
# 50 ms would scan the whole queue each time and take a core from the
# worker while the backlog is large.
drain() {
	while [ "$(psql_ -c "SET enable_seqscan = off" -c "SELECT EXISTS (SELECT FROM eventbus.deliveries
			WHERE next_attempt_at > '-infinity' AND rule = '$1')")" = t ]; do
		sleep 0.05
	done
}

# publishes $1 events in transactions of 100 from 2 clients, while the
# worker delivers; returns the seconds from start to the last settle
throughput_run() {
	local n=$1 t0 t1
	t0=$(date +%s.%N)
	as "$PGBIN/pgbench" -h "$DIR" -p "$PGPORT" -n -c 2 -j 2 -t $((n / 200)) -f "$DIR/publish.sql" postgres >/dev/null
	drain bench
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}

log "warm-up"
throughput_run 10000 >/dev/null
RSS_START=$(rss)
SIZE=$(psql_ -c "SELECT octet_length(eventbus.envelope(e)::text) FROM eventbus.events e LIMIT 1")

log "throughput: $EVENTS events"
SECS=$(throughput_run "$EVENTS")
DPS=$(echo "$EVENTS / $SECS" | bc -l)
UNDELIVERED=$(psql_ -c "SELECT count(*) FROM eventbus.dead_letters")
[ "$UNDELIVERED" = 0 ] || { echo "dead letters during the benchmark: $UNDELIVERED" >&2; exit 1; }

log "dispatch only: $((EVENTS / 2)) deliveries queued in one transaction"
psql_ -c "SELECT count(*) FROM (SELECT eventbus.put_event('bench', 'Bench Event', jsonb_build_object('pad', repeat('x', $PAD), 'n', g)) FROM generate_series(1, $((EVENTS / 2))) g) x" >/dev/null
t0=$(date +%s.%N)
drain bench
DRAIN_SECS=$(echo "$(date +%s.%N) - $t0" | bc -l)
log "dispatch only: $((EVENTS / 2)) in $(printf %.2f "$DRAIN_SECS") s = $(echo "$EVENTS / 2 / $DRAIN_SECS" | bc -l | xargs printf %.0f) deliveries/s"

# deliveries/s draining BATCH_EVENTS queued at once, with batch_size $1
batch_run() {
	local size=$1 t0 secs
	psql_ -c "SELECT eventbus.put_target('bench', 'nginx', 'http://127.0.0.1:$HTTP_PORT/', batch_size => $size)" >/dev/null
	psql_ -c "SELECT count(*) FROM (SELECT eventbus.put_event('bench', 'Bench Event', jsonb_build_object('pad', repeat('x', $PAD), 'n', g)) FROM generate_series(1, $BATCH_EVENTS) g) x" >/dev/null
	t0=$(date +%s.%N)
	drain bench
	secs=$(echo "$(date +%s.%N) - $t0" | bc -l)
	echo "$BATCH_EVENTS / $secs" | bc -l
}
B1=0
B100=0
if [ "$BATCH_EVENTS" -gt 0 ]; then
	log "batches: $BATCH_EVENTS deliveries queued at once, batch_size 1, then 100"
	B1=$(batch_run 1)
	B100=$(batch_run 100)
	psql_ -c "SELECT eventbus.put_target('bench', 'nginx', 'http://127.0.0.1:$HTTP_PORT/')" >/dev/null
	log "batches: batch_size 1: $(printf %.0f "$B1") deliveries/s; batch_size 100: $(printf %.0f "$B100") deliveries/s; ratio $(echo "$B100 / $B1" | bc -l | xargs printf %.1f)"
fi

# deliveries/s draining STATS_EVENTS queued at once, with eventbus.track_stats $1
# (server-wide: the publishing session and the workers alike)
stats_run() {
	local t0 secs
	psql_ -c "ALTER SYSTEM SET eventbus.track_stats = $1" -c "SELECT pg_reload_conf()" >/dev/null
	sleep 0.5
	psql_ -c "SELECT count(*) FROM (SELECT eventbus.put_event('bench', 'Bench Event', jsonb_build_object('pad', repeat('x', $PAD), 'n', g)) FROM generate_series(1, $STATS_EVENTS) g) x" >/dev/null
	t0=$(date +%s.%N)
	drain bench
	secs=$(echo "$(date +%s.%N) - $t0" | bc -l)
	echo "$STATS_EVENTS / $secs" | bc -l
}
SON=0
SOFF=0
if [ "$STATS_ROUNDS" -gt 0 ]; then
	log "counters: $STATS_EVENTS deliveries queued at once, track_stats on and off alternately, $STATS_ROUNDS rounds"
	for r in $(seq "$STATS_ROUNDS"); do
		SON=$(echo "$SON + $(stats_run on)" | bc -l)
		SOFF=$(echo "$SOFF + $(stats_run off)" | bc -l)
	done
	psql_ -c "ALTER SYSTEM RESET eventbus.track_stats" -c "SELECT pg_reload_conf()" >/dev/null
	SON=$(echo "$SON / $STATS_ROUNDS" | bc -l)
	SOFF=$(echo "$SOFF / $STATS_ROUNDS" | bc -l)
	log "counters: on $(printf %.0f "$SON") deliveries/s, off $(printf %.0f "$SOFF") deliveries/s, cost $(echo "1 - $SON / $SOFF" | bc -l | xargs printf %.3f)"
fi

log "latency: $LATENCY_RATE events/s for $LATENCY_SECONDS s"
as "$PGBIN/pgbench" -h "$DIR" -p "$PGPORT" -n -c 4 -j 2 -R "$LATENCY_RATE" -T "$LATENCY_SECONDS" -f "$DIR/latency.sql" postgres >/dev/null
drain latency
cp "$DIR/arrivals.log" "$DIR/arrivals.copy" && chown "$RUNAS" "$DIR/arrivals.copy"
read -r P50 P99 LAT_N < <(psql_ -F ' ' <<SQL
CREATE TEMP TABLE arrivals (at numeric, webhook_id text);
\copy arrivals FROM '$DIR/arrivals.copy' WITH (FORMAT text, DELIMITER ' ')
WITH lat AS (
	SELECT (min(a.at) - extract(epoch FROM e.published_at)) * 1000 AS ms
	FROM eventbus.events e
	JOIN arrivals a ON a.webhook_id = 'msg_' || left(encode(sha256(convert_to(
		e.id::text || '/' || e.bus || '/latency/nginx', 'UTF8')), 'hex'), 32)
	WHERE e.source = 'latency'
	GROUP BY e.id, e.published_at
)
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
	   round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2),
	   count(*)
FROM lat;
SQL
)
log "latency measured on $LAT_N deliveries"

if [ "$LONG_RUN" -gt 0 ]; then
	log "memory: $LONG_RUN deliveries"
	LONG_SECS=$(throughput_run "$LONG_RUN")
	RSS_END=$(rss)
	log "long run: $LONG_RUN deliveries in $(printf %.1f "$LONG_SECS") s ($(echo "$LONG_RUN / $LONG_SECS" | bc -l | xargs printf %.0f)/s); workers' RSS ${RSS_START} before, ${RSS_END} after"
fi
log "envelope size: ${SIZE:-?} bytes; concurrency $CONCURRENCY; workers $WORKERS"
MODE=$(psql_ -c "SHOW eventbus.attempt_log")
log "attempt log: $MODE, $(psql_ -c "SELECT count(*) FROM eventbus.delivery_attempts") rows"

printf 'deliveries=%d seconds=%.2f deliveries_per_sec=%.0f raw_http_per_sec=%d ratio=%.3f p50_ms=%s p99_ms=%s attempt_log=%s batch1_per_sec=%.0f batch100_per_sec=%.0f batch_ratio=%.1f stats_on_per_sec=%.0f stats_off_per_sec=%.0f stats_cost=%.3f\n' \
	"$EVENTS" "$SECS" "$DPS" "$RAW" "$(echo "$DPS / $RAW" | bc -l)" "$P50" "$P99" "$MODE" \
	"$B1" "$B100" "$(if [ "$BATCH_EVENTS" -gt 0 ]; then echo "$B100 / $B1" | bc -l; else echo 0; fi)" \
	"$SON" "$SOFF" "$(if [ "$STATS_ROUNDS" -gt 0 ]; then echo "1 - $SON / $SOFF" | bc -l; else echo 0; fi)"
