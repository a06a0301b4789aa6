# Shared shell functions of the demo, test and benchmark scripts.
# Postgres refuses to run as root, so clusters run as the "postgres" user
# (created by the postgresql-15 package) in throwaway directories.

PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
export PATH="$PG_BIN:$PATH"
PG_USER=${PG_USER:-postgres}

# Runs a command as the cluster's user (directly when we already are it).
as_pg() {
	if [ "$(id -un)" = "$PG_USER" ]; then
		"$@"
	else
		runuser -u "$PG_USER" -- env PATH="$PATH" "$@"
	fi
}

# Makes a scratch directory owned by the cluster's user; prints its path.
make_scratch() {
	local dir
	dir=$(mktemp -d "/tmp/pg_eventbus-$1.XXXXXX")
	chmod 755 "$dir"
	if [ "$(id -u)" -eq 0 ]; then
		chown "$PG_USER:" "$dir"
	fi
	echo "$dir"
}

# Picks a free TCP port on 127.0.0.1.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# start_cluster DIR PORT [extra postgresql.conf lines...]
# Creates a cluster in DIR/data listening on DIR (unix socket) and PORT,
# with pg_eventbus preloaded, and starts it.
start_cluster() {
	local dir=$1 port=$2
	shift 2
	as_pg initdb -D "$dir/data" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1
	{
		echo "port = $port"
		echo "listen_addresses = '127.0.0.1'"
		echo "unix_socket_directories = '$dir'"
		echo "shared_preload_libraries = 'pg_eventbus'"
		echo "fsync = off"
		for line in "$@"; do echo "$line"; done
	} | as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
	as_pg pg_ctl -D "$dir/data" -l "$dir/server.log" -w start >/dev/null
}

stop_cluster() {
	local dir=$1
	if [ -f "$dir/data/postmaster.pid" ]; then
		as_pg pg_ctl -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
}
