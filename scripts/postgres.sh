#!/usr/bin/env bash
# scripts/postgres.sh: a throwaway PostgreSQL cluster for the tests, the demo
# and the benchmarks, owned by the project (.cache/postgres/<name>, ignored by
# git), on a free 127.0.0.1 port with trust authentication.
#
#   scripts/postgres.sh install         install Debian's PostgreSQL when missing
#   scripts/postgres.sh start [name]    install PostgreSQL if missing, create and start the
#                                       cluster (default name: test); prints its URL last
#   scripts/postgres.sh stop [name]     stop it (keeps its data)
#   scripts/postgres.sh restart [name]  stop and start it on the same port
#   scripts/postgres.sh url [name]      print its URL
#   scripts/postgres.sh env [name]      print `export KCEE_TEST_PG_URL='...'`
#   scripts/postgres.sh status [name]   exit 0 when it runs
#   scripts/postgres.sh destroy [name]  stop it and remove its data
#   scripts/postgres.sh stop-all        stop every cluster under .cache/postgres
#   scripts/postgres.sh destroy-all     stop and remove every cluster under .cache/postgres
#
# The server runs as user postgres (PostgreSQL refuses root). Logs go to
# stderr and to .cache/postgres/<name>/log; stdout carries only the result.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PGUSER_OS=postgres

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

# pg_bin sets PGBIN to the newest installed server's bin folder, installing
# Debian's PostgreSQL when there is none.
pg_bin() {
	PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
	if [ -z "$PGBIN" ] || [ ! -x "$PGBIN/pg_ctl" ]; then
		# Debian's package would create and start a cluster of its own: not wanted.
		if ! pkg_installed postgresql-common; then
			as_root mkdir -p /etc/postgresql-common/createcluster.d
			echo 'create_main_cluster = false' |
				as_root tee /etc/postgresql-common/createcluster.d/kcee-no-main.conf >/dev/null
		fi
		apt_install postgresql postgresql-client
		PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
	fi
	id "$PGUSER_OS" >/dev/null 2>&1 || die "user $PGUSER_OS is missing (it comes with Debian's postgresql package)"
}

# pgrun runs a PostgreSQL program as the postgres user.
pgrun() {
	if [ "$(id -u)" = "$(id -u "$PGUSER_OS")" ]; then "$@"
	elif [ "$(id -u)" = 0 ]; then runuser -u "$PGUSER_OS" -- "$@"
	else sudo -u "$PGUSER_OS" -- "$@"
	fi
}

# port prints the cluster's configured port (the last `port =` line).
port() { sed -n 's/^port = \([0-9]*\).*/\1/p' "$DATA/postgresql.conf" | tail -n 1; }

url() { echo "postgres://postgres@127.0.0.1:$(port)/postgres?sslmode=disable"; }

running() { [ -f "$DATA/postmaster.pid" ] && pgrun "$PGBIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

init_cluster() {
	log "creating cluster $NAME in $DIR"
	as_root mkdir -p "$DIR"
	traversable_for "$PGUSER_OS" "$DIR"
	as_root chown "$PGUSER_OS:" "$DIR"
	as_root chmod 700 "$DIR"
	pgrun "$PGBIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$DIR/initdb.log" 2>&1 ||
		pgrun "$PGBIN/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C >"$DIR/initdb.log" 2>&1 ||
		{ cat "$DIR/initdb.log" >&2; die "initdb failed"; }
	cat >>"$DATA/postgresql.conf" <<CONF

# scripts/postgres.sh: loopback only, TCP only, room for Keycloak's pool and parallel tests.
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 300
log_min_messages = warning
port = $(free_port)
CONF
}

start() {
	[ -d "$DATA" ] || init_cluster
	if running; then
		log "cluster $NAME already runs on port $(port)"
		url
		return
	fi
	local try
	for try in 1 2 3; do
		# A port taken since the last start: take another one and remember it.
		if port_in_use "$(port)"; then
			echo "port = $(free_port)" >>"$DATA/postgresql.conf"
		fi
		if pgrun "$PGBIN/pg_ctl" -D "$DATA" -l "$DIR/log" -w -t 60 start >/dev/null; then
			log "cluster $NAME runs on port $(port)"
			url
			return
		fi
		tail -n 20 "$DIR/log" >&2 || true
	done
	die "cluster $NAME did not start (log: $DIR/log)"
}

stop() {
	if running; then
		pgrun "$PGBIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >/dev/null
		log "cluster $NAME stopped"
	else
		log "cluster $NAME is not running"
	fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
if [ "$cmd" = stop-all ] || [ "$cmd" = destroy-all ]; then
	for d in "$CACHE"/postgres/*/; do
		[ -d "$d" ] || continue
		"$0" "${cmd%-all}" "$(basename "$d")"
	done
	exit 0
fi
NAME=${1:-test}
case $NAME in *[!A-Za-z0-9._-]* | '' | .*) die "bad cluster name: $NAME" ;; esac
DIR=$CACHE/postgres/$NAME
DATA=$DIR/data

case $cmd in
install) pg_bin ;;
start) pg_bin; start ;;
stop) pg_bin; stop ;;
restart) pg_bin; stop; start >/dev/null; url ;;
status) pg_bin; running ;;
url) [ -f "$DATA/postgresql.conf" ] || die "cluster $NAME does not exist: run $0 start $NAME"; url ;;
env) [ -f "$DATA/postgresql.conf" ] || die "cluster $NAME does not exist: run $0 start $NAME"; echo "export KCEE_TEST_PG_URL='$(url)'" ;;
destroy) pg_bin; stop; as_root rm -rf "$DIR"; log "cluster $NAME removed" ;;
-h | --help | help) usage ;;
*) usage ;;
esac
