#!/bin/bash
# bench/ratelimit: how closely a target's rate_limit holds.  For each limit
# (RATES, default "50 2000" requests/s) and each number of workers
# (WORKER_COUNTS, default "1 2"), a target with that rate_limit on a local
# nginx answering 204 gets a backlog of 1.2 x (WINDOW + 3) seconds of its
# rate; the requests that arrive in WINDOW (default 10) seconds, starting
# one second after the first, are counted from nginx's access log.
#
# Runs as root (make bench-ratelimit): builds and installs the extension
# and runs a throwaway cluster and nginx as the postgres user in a
# temporary directory on 127.0.0.1.  PG_BIN or PG_CONFIG picks the server.
# Prints, per run:
#   rate_limit=R workers=W window_s=S requests=N measured_per_sec=M ratio=M/R
set -euo pipefail

RATES=${RATES:-"50 2000"}
WORKER_COUNTS=${WORKER_COUNTS:-"1 2"}
WINDOW=${WINDOW:-10}
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

command -v nginx >/dev/null 2>&1 || { echo "nginx is needed (make bench-dispatch installs it)" >&2; exit 1; }

log "building and installing pg_eventbus"
make -C "$TOP" -s -j2 PG_CONFIG="$PGBIN/pg_config" >/dev/null
make -C "$TOP" -s install PG_CONFIG="$PGBIN/pg_config" >/dev/null

DIR=$(mktemp -d /tmp/bench-ratelimit.XXXXXX)
chown "$RUNAS" "$DIR"
PGPORT=$((20000 + RANDOM % 10000))
HTTP_PORT=$((PGPORT + 1))
as() { runuser -u "$RUNAS" -- "$@"; }
psql_() { as "$PGBIN/psql" -h "$DIR" -p "$PGPORT" -d postgres -XAtq -v ON_ERROR_STOP=1 "$@"; }

cleanup() {
	[ -f "$DIR/nginx.pid" ] && kill "$(cat "$DIR/nginx.pid")" 2>/dev/null || true
	[ -d "$DIR/data" ] && as "$PGBIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$DIR"
}
trap cleanup EXIT

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
	log_format arrival '\$msec \$uri';
	server {
		listen 127.0.0.1:$HTTP_PORT;
		access_log $DIR/arrivals.log arrival;
		location / { return 204; }
	}
}
CONF
chown "$RUNAS" "$DIR/nginx.conf"
as nginx -c "$DIR/nginx.conf" -e "$DIR/nginx-error.log" 2>/dev/null
sleep 0.5

as "$PGBIN/initdb" -D "$DIR/data" -A trust >/dev/null
cat >>"$DIR/data/postgresql.conf" <<CONF
port = $PGPORT
listen_addresses = ''
unix_socket_directories = '$DIR'
shared_preload_libraries = 'pg_eventbus'
eventbus.database = 'postgres'
eventbus.batch_size = 200
shared_buffers = 256MB
max_wal_size = 4GB
CONF

for workers in $WORKER_COUNTS; do
	echo "eventbus.workers = $workers" >>"$DIR/data/postgresql.conf"
	as "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/pg.log" -w start >/dev/null
	psql_ -c "CREATE EXTENSION IF NOT EXISTS pg_eventbus" >/dev/null
	for rate in $RATES; do
		name="r${rate}w${workers}"
		events=$(( (WINDOW + 3) * rate * 12 / 10 ))
		psql_ >/dev/null <<SQL
SELECT eventbus.put_rule('$name', '{"source": ["bench.$name"]}');
SELECT eventbus.put_target('$name', '$name', 'http://127.0.0.1:$HTTP_PORT/$name', rate_limit => $rate);
SQL
		log "rate_limit=$rate workers=$workers: publishing $events events"
		psql_ -c "SELECT count(eventbus.put_event('bench.$name', 'Bench', jsonb_build_object('i', g))) FROM generate_series(1, $events) g" >/dev/null
		sleep $((WINDOW + 3))
		awk -v uri="/$name" -v w="$WINDOW" -v r="$rate" -v wk="$workers" '
			$2 == uri { t[n++] = $1 }
			END {
				if (n == 0) { print "rate_limit=" r " workers=" wk " requests=0"; exit }
				first = t[0]; for (i = 0; i < n; i++) if (t[i] < first) first = t[i]
				from = first + 1; to = from + w; c = 0
				for (i = 0; i < n; i++) if (t[i] >= from && t[i] < to) c++
				printf "rate_limit=%d workers=%d window_s=%d requests=%d measured_per_sec=%.1f ratio=%.3f\n", r, wk, w, c, c / w, c / w / r
			}' "$DIR/arrivals.log"
		psql_ -c "SELECT eventbus.delete_rule('$name')" >/dev/null
		psql_ -c "TRUNCATE eventbus.dead_letters" >/dev/null
	done
	as "$PGBIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null
done
