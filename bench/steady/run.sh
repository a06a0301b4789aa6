#!/bin/bash
# bench/steady: the same speed after a month as on day one.  Each part
# measures the bus in a state a long-running database reaches, side by
# side in one run with the same measurement on a fresh one:
#
#   (a) delivery rate with ARCHIVE_A archived events against an empty
#       archive, the worker restarted after an ANALYZE of a tiny archive,
#       rounds of each in turns (goal ratio >= 0.9);
#   (b) put_event tps with ARCHIVE_B archived events against an empty
#       archive, two databases of one cluster measured in turns (goal >= 0.9);
#   (c) the size of the eventbus schema over ten real minutes that publish
#       and deliver ten times the retention's worth of events (retention 1
#       minute, the maintenance process every 5 s; flat: goal last period
#       against the second <= 1.2); "skipped: no eventbus.maintenance()"
#       where the function does not exist;
#   (d) the delivery rate while a REPEATABLE READ transaction stays open for
#       the whole run against the rate without it (goal >= 0.8);
#   (e) a target down for DOWN_SECONDS with OUTAGE_QUEUE deliveries queued:
#       the worker's CPU while it is down (goal under 10% of a core), how long
#       after it is back the worker finds it (the next probe), and the drain
#       rate from then on against the normal rate -- the same queue drained
#       by a target that is up, timed from its commit (goal >= 0.9; also
#       printed: the rate counting the time to find it back).
#
# Runs as root (make bench-steady): builds and installs the extension into
# the PostgreSQL of PG_BIN (default the system's 15), runs a throwaway
# cluster and nginx as the postgres user in a temporary directory on
# 127.0.0.1.  SCALE (default 1) multiplies every size; PARTS (default
# "a b c d e") picks parts.  Sizes (defaults are the issue's):
# ARCHIVE_A (1000000), ARCHIVE_B (5000000), DRAIN (100000 deliveries per
# rate measurement), LONG_TX (200000), OUTAGE_QUEUE (500000), DOWN_SECONDS
# (60), PUBLISH_SECONDS (10), RETENTION_EVENTS (20000 per minute, part c);
# A_ROUNDS and B_ROUNDS (3), the rounds of each side in (a) and (b).
# Prints one line per part, with its reference and ratio.
set -euo pipefail

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
SCALE=${SCALE:-1}
PARTS=${PARTS:-a b c d e}
scaled() { echo "$1 * $SCALE / 1" | bc; }
ARCHIVE_A=$(scaled "${ARCHIVE_A:-1000000}")
ARCHIVE_B=$(scaled "${ARCHIVE_B:-5000000}")
DRAIN=$(scaled "${DRAIN:-100000}")
LONG_TX=$(scaled "${LONG_TX:-200000}")
OUTAGE_QUEUE=$(scaled "${OUTAGE_QUEUE:-500000}")
DOWN_SECONDS=${DOWN_SECONDS:-60}
PUBLISH_SECONDS=${PUBLISH_SECONDS:-10}
RETENTION_EVENTS=$(scaled "${RETENTION_EVENTS:-20000}")
RUNAS=postgres
HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)

log() { echo "# $(date +%T) $*" >&2; }
want() { case " $PARTS " in *" $1 "*) return 0 ;; esac; return 1; }

for tool in nginx bc; do
	command -v "$tool" >/dev/null 2>&1 || { echo "bench-steady needs $tool (see bench/dispatch/run.sh)" >&2; exit 1; }
done

log "building and installing pg_eventbus into $PG_BIN/.."
make -C "$TOP" -s -j2 PG_CONFIG="$PG_BIN/pg_config" >/dev/null
make -C "$TOP" -s install PG_CONFIG="$PG_BIN/pg_config" >/dev/null

DIR=$(mktemp -d /tmp/bench-steady.XXXXXX)
chmod 755 "$DIR"
chown "$RUNAS" "$DIR"
PGPORT=$((20000 + RANDOM % 10000))
HTTP_PORT=$((PGPORT + 1))
DOWN_PORT=$((PGPORT + 2))
as() { runuser -u "$RUNAS" -- "$@"; }
# DB: the database psql_ talks to (part b publishes in a second one)
DB=postgres
psql_() { as "$PG_BIN/psql" -h "$DIR" -p "$PGPORT" -d "$DB" -XAtq -v ON_ERROR_STOP=1 "$@"; }
HOLDER_PID=

cleanup() {
	[ -n "$HOLDER_PID" ] && kill "$HOLDER_PID" 2>/dev/null || true
	for pidfile in "$DIR/nginx.pid" "$DIR/nginx-down.pid"; do
		[ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
	done
	[ -d "$DIR/data" ] && as "$PG_BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$DIR"
}
trap cleanup EXIT

# nginx answering 204 on a port; the outage target's server is started and
# stopped on its own port
nginx_conf() {
	local name=$1 port=$2
	cat >"$DIR/$name.conf" <<CONF
worker_processes 1;
daemon on;
pid $DIR/$name.pid;
error_log $DIR/$name-error.log;
events { worker_connections 4096; }
http {
	client_body_temp_path $DIR/$name-body;
	proxy_temp_path $DIR/$name-proxy;
	fastcgi_temp_path $DIR/$name-fastcgi;
	uwsgi_temp_path $DIR/$name-uwsgi;
	scgi_temp_path $DIR/$name-scgi;
	keepalive_requests 10000000;
	keepalive_timeout 300s;
	server {
		listen 127.0.0.1:$port;
		access_log off;
		location / { return 204; }
	}
}
CONF
	chown "$RUNAS" "$DIR/$name.conf"
}
nginx_conf nginx "$HTTP_PORT"
nginx_conf nginx-down "$DOWN_PORT"
as nginx -c "$DIR/nginx.conf" -e "$DIR/nginx-error.log" 2>/dev/null
sleep 0.3

as "$PG_BIN/initdb" -D "$DIR/data" -A trust >/dev/null
cat >>"$DIR/data/postgresql.conf" <<CONF
port = $PGPORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'pg_eventbus'
eventbus.database = 'postgres'
eventbus.workers = 1
eventbus.max_concurrent_requests = 256
eventbus.max_concurrent_per_target = 256
eventbus.batch_size = 200
eventbus.retry_base_delay = '1s'
shared_buffers = 512MB
max_wal_size = 8GB
checkpoint_timeout = 30min
synchronous_commit = off
CONF
pg_start() { as "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/pg.log" -w start >/dev/null; }
pg_restart() { as "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/pg.log" -m fast -w restart >/dev/null; }
pg_start
# the extension with the bench's rules and targets, in database DB
setup_bus() {
	psql_ -c "CREATE EXTENSION pg_eventbus" >/dev/null
	psql_ >/dev/null <<SQL
SELECT eventbus.put_rule('bench', '{"source": ["bench"]}');
SELECT eventbus.put_target('bench', 'nginx', 'http://127.0.0.1:$HTTP_PORT/');
SELECT eventbus.put_rule('outage', '{"source": ["outage"]}');
SELECT eventbus.put_target('outage', 'down', 'http://127.0.0.1:$DOWN_PORT/', max_retry_attempts => 185);
SQL
}
setup_bus
worker_pid() { psql_ -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_eventbus delivery worker'"; }

# 1 KB events (the envelope a target receives)
PAD=850

# $2 events of source $1 in one transaction (deliveries queued, not yet sent)
queue() {
	psql_ -c "SELECT count(*) FROM (SELECT eventbus.put_event('$1', 'Bench Event', jsonb_build_object('pad', repeat('x', $PAD), 'n', g)) FROM generate_series(1, $2) g) x" >/dev/null
}

# waits until no delivery of rule $1 is left (a probe of the target index)
drain() {
	while [ "$(psql_ -c "SELECT EXISTS (SELECT FROM eventbus.deliveries WHERE bus = 'default' AND rule = '$1')")" = t ]; do
		sleep 0.05
	done
}

# queues $1 events for the bench target and prints the drain rate (deliveries/s)
drain_rate() {
	local n=$1 t0
	psql_ -c "SELECT pg_catalog.pg_sleep(0)" >/dev/null
	t0=$(date +%s.%N)
	queue bench "$n"
	drain bench
	echo "$n / ($(date +%s.%N) - $t0)" | bc -l
}

# archives $1 events that match no rule, without the match trigger (fast)
archive() {
	local n=$1 done=0 step
	while [ "$done" -lt "$n" ]; do
		step=$((n - done < 500000 ? n - done : 500000))
		psql_ >/dev/null <<SQL
SET session_replication_role = replica;
INSERT INTO eventbus.events (id, bus, source, detail_type, detail, "time", account, region)
SELECT gen_random_uuid(), 'default', 'archived', 'Archived',
	   jsonb_build_object('pad', repeat('x', $PAD), 'n', g), now(), '000000000000', 'local'
FROM generate_series(1, $step) g;
SQL
		done=$((done + step))
	done
}

empty_archive() {
	psql_ -c "TRUNCATE eventbus.events, eventbus.deliveries, eventbus.dead_letters" >/dev/null
	psql_ -c "VACUUM ANALYZE eventbus.events, eventbus.deliveries" >/dev/null
}

# the worker plans its statements now, on an archive of ten events
restart_on_tiny_archive() {
	empty_archive
	archive 10
	psql_ -c "ANALYZE eventbus.events, eventbus.deliveries" >/dev/null
	pg_restart
	queue bench 10
	drain bench
}

# before a measurement: nothing left for a checkpoint to write during it
# (a bulk load of the archive just before would otherwise be written out,
# with full-page images, in the middle of the measurement after it)
quiesce() { psql_ -c "CHECKPOINT" >/dev/null; }

ratio() { echo "$1 / $2" | bc -l | xargs printf %.3f; }

# in_turns ROUNDS EMPTY_CMD FULL_CMD: runs each command (which prints a
# rate) ROUNDS times, in turns in ABBA order (empty first in odd rounds);
# sets EMPTY and FULL to the summed rates and EACH to the pairs, full/empty
in_turns() {
	local rounds=$1 r e f
	EMPTY=0 FULL=0 EACH=
	for r in $(seq 1 "$rounds"); do
		if [ $((r % 2)) = 1 ]; then
			e=$($2); f=$($3)
		else
			f=$($3); e=$($2)
		fi
		EMPTY=$(echo "$EMPTY + $e" | bc -l) FULL=$(echo "$FULL + $f" | bc -l)
		EACH="$EACH${EACH:+,}$(printf '%.0f/%.0f' "$f" "$e")"
	done
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

log "warm-up"
drain_rate 10000 >/dev/null

if want a; then
	# A_ROUNDS rounds, the empty and the full archive in turns (ABBA
	# order): one drain of each gave 0.86-1.02 from run to run on this
	# machine.  Each drain starts from a worker restarted on a tiny archive;
	# the full one's archive is loaded after the restart.
	A_ROUNDS=${A_ROUNDS:-3}
	log "(a) delivery rate: empty archive and $ARCHIVE_A archived events in turns, $A_ROUNDS rounds (worker planned on a tiny archive)"
	psql_ -c "ALTER SYSTEM SET autovacuum = off" -c "SELECT pg_reload_conf()" >/dev/null
	empty_rate() { restart_on_tiny_archive; quiesce; drain_rate "$DRAIN"; }
	full_rate() { restart_on_tiny_archive; archive "$ARCHIVE_A"; quiesce; drain_rate "$DRAIN"; }
	in_turns "$A_ROUNDS" empty_rate full_rate
	psql_ -c "ALTER SYSTEM RESET autovacuum" -c "SELECT pg_reload_conf()" >/dev/null
	printf 'part=a archived=%d deliveries=%d per_sec=%.0f empty_archive_per_sec=%.0f ratio=%s goal=0.9 rounds_full/empty=%s\n' \
		"$ARCHIVE_A" "$DRAIN" "$(echo "$FULL / $A_ROUNDS" | bc -l)" "$(echo "$EMPTY / $A_ROUNDS" | bc -l)" \
		"$(ratio "$FULL" "$EMPTY")" "$EACH"
fi

if want b; then
	# Side by side: a second database of the same cluster, with the same
	# rules and targets, holds the archive, and pgbench publishes into the
	# empty one and the full one in turns, B_ROUNDS times each (one
	# PUBLISH_SECONDS run after the other was as noisy as the effect on
	# this machine: 0.85-0.98 from run to run); the ratio is of the summed
	# tps.
	B_ROUNDS=${B_ROUNDS:-3}
	log "(b) put_event tps: $ARCHIVE_B archived events in database archive_full against an empty archive, $B_ROUNDS rounds each in turns"
	echo "SELECT eventbus.put_event('unmatched', 'Bench Event', jsonb_build_object('pad', repeat('x', $PAD)));" >"$DIR/publish.sql"
	chown "$RUNAS" "$DIR/publish.sql"
	tps() {
		as "$PG_BIN/pgbench" -h "$DIR" -p "$PGPORT" -n -c 8 -j 2 -T "$PUBLISH_SECONDS" -f "$DIR/publish.sql" "$1" 2>/dev/null |
			awk '/^tps/ {printf "%d", $3}'
	}
	empty_archive
	psql_ -c "CREATE DATABASE archive_full" >/dev/null
	DB=archive_full
	setup_bus
	archive "$ARCHIVE_B"
	psql_ -c "VACUUM ANALYZE eventbus.events" >/dev/null
	DB=postgres
	empty_tps() { quiesce; tps postgres; }
	full_tps() { quiesce; tps archive_full; }
	in_turns "$B_ROUNDS" empty_tps full_tps
	psql_ -c "DROP DATABASE archive_full" >/dev/null
	empty_archive
	printf 'part=b archived=%d put_event_tps=%d empty_archive_tps=%d ratio=%s goal=0.9 rounds_full/empty=%s\n' \
		"$ARCHIVE_B" "$(echo "$FULL / $B_ROUNDS" | bc)" "$(echo "$EMPTY / $B_ROUNDS" | bc)" \
		"$(ratio "$FULL" "$EMPTY")" "$EACH"
fi

if want c; then
	if [ "$(psql_ -c "SELECT to_regprocedure('eventbus.maintenance(timestamptz)') IS NOT NULL")" != t ]; then
		echo "part=c skipped: no eventbus.maintenance()"
	else
		# Real time, not a future as_of: events are published (and their
		# partitions made) at the clock's time, so the run lasts ten real
		# retention periods of one minute (the shortest retention), with
		# the maintenance process every 5 s, as a server would run them.
		log "(c) disk: 10 retention periods of 1 minute, $RETENTION_EVENTS events published and delivered in each"
		empty_archive
		psql_ -c "ALTER SYSTEM SET eventbus.event_retention = '1min'" \
			-c "ALTER SYSTEM SET eventbus.maintenance_interval = '5s'" -c "SELECT pg_reload_conf()" >/dev/null
		# the partitions there are were made for the default retention (a
		# day wide each, each kept until a day after its end): they are
		# empty now, so drop them, and maintenance() makes them again at
		# the width of a one-minute retention, as for a bus that had it
		# from the start
		psql_ -c "DO \$\$ DECLARE p record; BEGIN
			FOR p IN SELECT name FROM eventbus.event_partitions LOOP
				EXECUTE format('DROP TABLE eventbus.%I', p.name);
			END LOOP; END \$\$" >/dev/null
		psql_ -c "SELECT count(*) FROM eventbus.maintenance()" >/dev/null
		sizes=()
		for i in $(seq 1 10); do
			for t in $(seq 1 6); do
				t0=$(date +%s.%N)
				queue bench $((RETENTION_EVENTS / 6))
				drain bench
				sleep "$(echo "x = 10 - ($(date +%s.%N) - $t0); if (x < 0) x = 0; x" | bc -l)"
			done
			sizes+=("$(psql_ -c "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
				JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname = 'eventbus' AND c.relkind IN ('r', 'm', 't')")")
			log "(c) period $i: $(psql_ -c "SELECT count(*) FROM eventbus.event_partitions") partitions, ${sizes[-1]} bytes"
		done
		psql_ -c "ALTER SYSTEM RESET eventbus.event_retention" \
			-c "ALTER SYSTEM RESET eventbus.maintenance_interval" -c "SELECT pg_reload_conf()" >/dev/null
		# flat: the last period against the second (the first retention
		# period has passed by then, and its partitions begin to go)
		printf 'part=c events=%d schema_bytes_period2=%d schema_bytes_last=%d ratio=%s goal=1.2 sizes=%s\n' \
			"$((RETENTION_EVENTS / 6 * 60))" "${sizes[1]}" "${sizes[9]}" "$(ratio "${sizes[9]}" "${sizes[1]}")" \
			"$(IFS=,; echo "${sizes[*]}")"
	fi
fi

if want d; then
	log "(d) delivery rate of $LONG_TX: without, then with a REPEATABLE READ transaction open"
	empty_archive
	quiesce
	FREE=$(drain_rate "$LONG_TX")
	empty_archive
	quiesce
	as "$PG_BIN/psql" -h "$DIR" -p "$PGPORT" -d postgres -Xq -c "BEGIN ISOLATION LEVEL REPEATABLE READ" \
		-c "SELECT count(*) FROM eventbus.buses" -c "SELECT pg_sleep(100000)" >/dev/null 2>&1 &
	HOLDER_PID=$!
	sleep 1
	HELD=$(drain_rate "$LONG_TX")
	psql_ -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(100000)%'" >/dev/null
	wait "$HOLDER_PID" 2>/dev/null || true
	HOLDER_PID=
	printf 'part=d deliveries=%d per_sec=%.0f without_long_transaction_per_sec=%.0f ratio=%s goal=0.8\n' \
		"$LONG_TX" "$HELD" "$FREE" "$(ratio "$HELD" "$FREE")"
fi

if want e; then
	log "(e) outage: $OUTAGE_QUEUE queued, target down for $DOWN_SECONDS s"
	empty_archive
	# the normal rate: the same queue to a target that is up
	psql_ -c "SELECT eventbus.put_target('outage', 'down', 'http://127.0.0.1:$HTTP_PORT/', max_retry_attempts => 185)" >/dev/null
	# (from the commit that queued it, as the drain after the outage is
	# timed from the first success: queueing is not part of either)
	queue outage "$OUTAGE_QUEUE"
	t0=$(date +%s.%N)
	drain outage
	NORMAL=$(echo "$OUTAGE_QUEUE / ($(date +%s.%N) - $t0)" | bc -l)
	empty_archive
	psql_ -c "SELECT eventbus.put_target('outage', 'down', 'http://127.0.0.1:$DOWN_PORT/', max_retry_attempts => 185)" >/dev/null
	pg_restart
	queue outage "$OUTAGE_QUEUE"
	WPID=$(worker_pid)
	HZ=$(getconf CLK_TCK)
	c0=$(cpu_ticks "$WPID")
	sleep "$DOWN_SECONDS"
	c1=$(cpu_ticks "$WPID")
	CPU=$(echo "($c1 - $c0) / $HZ / $DOWN_SECONDS" | bc -l)
	ATTEMPTS=$(psql_ -c "SELECT coalesce(sum(attempts), 0) FROM eventbus.deliveries")
	ok0=$(psql_ -c "SELECT coalesce(sum(successful_invocation_attempts), 0) FROM eventbus.stats_entries() WHERE kind = 'target' AND rule = 'outage'")
	t0=$(date +%s.%N)
	as nginx -c "$DIR/nginx-down.conf" -e "$DIR/nginx-down-error.log" 2>/dev/null
	# found back: the first success (a probe of the worker's pauses or of the
	# circuit breaker, whose cool-down has grown while the target was down)
	while [ "$(psql_ -c "SELECT coalesce(sum(successful_invocation_attempts), 0) > $ok0 FROM eventbus.stats_entries() WHERE kind = 'target' AND rule = 'outage'")" != t ]; do
		sleep 0.1
	done
	t1=$(date +%s.%N)
	drain outage
	t2=$(date +%s.%N)
	AFTER=$(echo "$OUTAGE_QUEUE / ($t2 - $t1)" | bc -l)
	kill "$(cat "$DIR/nginx-down.pid")" 2>/dev/null || true
	printf 'part=e queued=%d down_seconds=%d worker_cpu_while_down=%.3f goal_cpu=0.1 attempts_while_down=%d found_back_after_s=%.1f drain_after_per_sec=%.0f drain_after_incl_finding_per_sec=%.0f normal_per_sec=%.0f ratio=%s goal=0.9\n' \
		"$OUTAGE_QUEUE" "$DOWN_SECONDS" "$CPU" "$ATTEMPTS" "$(echo "$t1 - $t0" | bc -l)" "$AFTER" \
		"$(echo "$OUTAGE_QUEUE / ($t2 - $t0)" | bc -l)" "$NORMAL" "$(ratio "$AFTER" "$NORMAL")"
fi
