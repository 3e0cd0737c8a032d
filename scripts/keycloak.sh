#!/usr/bin/env bash
# scripts/keycloak.sh: a real Keycloak for the tests, the demo and the
# benchmarks, on 127.0.0.1, with its database `keycloak` on the PostgreSQL
# cluster of scripts/postgres.sh.
#
#   scripts/keycloak.sh start    fetch (once), build (once) and start it; waits until it answers
#   scripts/keycloak.sh stop     stop it (its database stays)
#   scripts/keycloak.sh restart  stop and start it
#   scripts/keycloak.sh status   print its URL and exit 0 when it answers, else exit 1
#   scripts/keycloak.sh env      print the exports of KCEE_TEST_KEYCLOAK_URL, _ADMIN,
#                                _ADMIN_PASSWORD and _DB_URL
#   scripts/keycloak.sh log      print the path of its log
#
# Settings from the environment:
#   KC_VERSION                   the distribution (org.keycloak:keycloak-quarkus-dist) [26.5.6]
#   KC_BOOTSTRAP_ADMIN_USERNAME  the master realm's first admin [admin]
#   KC_BOOTSTRAP_ADMIN_PASSWORD  its password [admin]; used only when the database is new
#   KC_JAVA_HOME                 the JDK to run it on [21, else 17, else 25]
#   KC_PG_CLUSTER                the scripts/postgres.sh cluster for its database [test]
#   KC_START_TIMEOUT             seconds to wait for it to answer [300]
#   KC_HEAP                      the JVM heap options [-Xms256m -Xmx1g]
#
# The distribution is fetched from Maven Central with `mvn dependency:copy`
# into .cache/keycloak (kept by `make clean`), unpacked there and built once
# for PostgreSQL (`kc.sh build`); every start is then `kc.sh start --optimized`
# (production mode: themes cached, as operators run it), with HTTP on a free
# loopback port, hostname-strict off, local caches.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KC_VERSION=${KC_VERSION:-26.5.6}
KC_PG_CLUSTER=${KC_PG_CLUSTER:-test}
KC_START_TIMEOUT=${KC_START_TIMEOUT:-300}
KC_HEAP=${KC_HEAP:--Xms256m -Xmx1g}
KCDIR=$CACHE/keycloak
ZIP=$KCDIR/keycloak-quarkus-dist-$KC_VERSION.zip
HOME_DIR=$KCDIR/keycloak-$KC_VERSION
RUN=$KCDIR/run
BUILD_OPTS=(--db=postgres --health-enabled=true --metrics-enabled=true)

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

# fetch downloads and unpacks the distribution unless it is already there.
fetch() {
	mkdir -p "$KCDIR"
	if [ ! -f "$ZIP" ]; then
		need_cmd mvn maven
		log "fetching org.keycloak:keycloak-quarkus-dist:$KC_VERSION:zip from Maven Central"
		mvn -q -B dependency:copy "-Dartifact=org.keycloak:keycloak-quarkus-dist:$KC_VERSION:zip" \
			"-DoutputDirectory=$KCDIR" >"$KCDIR/fetch.log" 2>&1 ||
			{ cat "$KCDIR/fetch.log" >&2; die "mvn dependency:copy of keycloak-quarkus-dist $KC_VERSION failed"; }
		[ -f "$ZIP" ] || die "mvn did not write $ZIP"
	fi
	if [ ! -x "$HOME_DIR/bin/kc.sh" ]; then
		need_cmd unzip unzip
		log "unpacking $(basename "$ZIP")"
		rm -rf "$HOME_DIR.tmp" && mkdir -p "$HOME_DIR.tmp"
		unzip -q "$ZIP" -d "$HOME_DIR.tmp" || die "unzip $ZIP failed"
		mv "$HOME_DIR.tmp/keycloak-$KC_VERSION" "$HOME_DIR" && rm -rf "$HOME_DIR.tmp"
	fi
}

# java_major prints the major version of the JDK in $1 (0 when unknown).
java_major() {
	local v
	v=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$1/release" 2>/dev/null || true)
	echo "${v:-0}"
}

# pick_java sets JAVA_HOME to the JDK Keycloak runs on: KC_JAVA_HOME, else the
# first found of 21 (recommended), 17 (supported by 26.x, and the one JDK of a
# fresh machine here) and 25 (its jboss-threads needs an --add-opens on 26.5),
# else the java on PATH.
pick_java() {
	if [ -n "${KC_JAVA_HOME:-}" ]; then
		JAVA_HOME=$KC_JAVA_HOME
	else
		local want d
		JAVA_HOME=
		for want in 21 17 25; do
			for d in /usr/lib/jvm/*/; do
				d=${d%/}
				[ -L "$d" ] && continue
				if [ -x "$d/bin/java" ] && [ "$(java_major "$d")" = "$want" ]; then JAVA_HOME=$d; break 2; fi
			done
		done
		if [ -z "$JAVA_HOME" ]; then
			command -v java >/dev/null || die "no JDK found: install openjdk-17-jdk-headless or set KC_JAVA_HOME"
			JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")
		fi
	fi
	[ -x "$JAVA_HOME/bin/java" ] || die "no java in $JAVA_HOME"
	export JAVA_HOME
	JAVA_MAJOR=$(java_major "$JAVA_HOME")
}

# build runs `kc.sh build` once per distribution and options (the JDK does
# not matter to the build).
build() {
	local stamp="$KC_VERSION ${BUILD_OPTS[*]}"
	if [ "$(cat "$HOME_DIR/.kcee-built" 2>/dev/null || true)" = "$stamp" ]; then return; fi
	log "building Keycloak $KC_VERSION for PostgreSQL on $(basename "$JAVA_HOME") (once)"
	"$HOME_DIR/bin/kc.sh" build "${BUILD_OPTS[@]}" >"$KCDIR/build.log" 2>&1 ||
		{ tail -n 30 "$KCDIR/build.log" >&2; die "kc.sh build failed (log: $KCDIR/build.log)"; }
	echo "$stamp" >"$HOME_DIR/.kcee-built"
}

pid_alive() { [ -f "$RUN/pid" ] && kill -0 "$(cat "$RUN/pid")" 2>/dev/null; }

url() { echo "http://127.0.0.1:$(cat "$RUN/port")"; }

# answers tells whether the running server is ready.
answers() {
	curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:$(cat "$RUN/mgmt-port")/health/ready" 2>/dev/null
}

start() {
	if pid_alive && answers; then
		log "Keycloak already runs at $(url)"
		url
		return
	fi
	pid_alive && stop
	need_cmd curl curl
	fetch
	pick_java
	build
	local pgurl pgport
	pgurl=$("$ROOT/scripts/postgres.sh" start "$KC_PG_CLUSTER" | tail -n 1)
	pgport=${pgurl#*127.0.0.1:}
	pgport=${pgport%%/*}
	if [ -z "$(psql "$pgurl" -tAc "SELECT 1 FROM pg_database WHERE datname = 'keycloak'")" ]; then
		psql -q "$pgurl" -c "CREATE DATABASE keycloak" >&2
	fi
	mkdir -p "$RUN"
	# The ports of the last start when they are still free, so URLs stay stable.
	local f
	for f in port mgmt-port; do
		if [ ! -s "$RUN/$f" ] || port_in_use "$(cat "$RUN/$f")"; then free_port >"$RUN/$f"; fi
	done
	echo "postgres://postgres@127.0.0.1:$pgport/keycloak?sslmode=disable" >"$RUN/db-url"
	local admin=${KC_BOOTSTRAP_ADMIN_USERNAME:-admin} password=${KC_BOOTSTRAP_ADMIN_PASSWORD:-admin}
	(umask 077 && printf '%s\n%s\n' "$admin" "$password" >"$RUN/admin")
	local append=""
	# JDK 24+: Netty's Unsafe use and jboss-threads' thread-local reset need these.
	[ "$JAVA_MAJOR" -ge 24 ] && append="--sun-misc-unsafe-memory-access=allow --add-opens=java.base/java.lang=ALL-UNNAMED"
	log "starting Keycloak $KC_VERSION on $(basename "$JAVA_HOME") at $(url) (database keycloak on port $pgport)"
	# Secrets through the environment, never argv. setsid: stop ends the whole group.
	KC_BOOTSTRAP_ADMIN_USERNAME=$admin KC_BOOTSTRAP_ADMIN_PASSWORD=$password KC_DB_PASSWORD=unused \
		JAVA_OPTS_KC_HEAP=$KC_HEAP JAVA_OPTS_APPEND=$append \
		setsid "$HOME_DIR/bin/kc.sh" start --optimized \
		--db-url="jdbc:postgresql://127.0.0.1:$pgport/keycloak" --db-username=postgres \
		--http-enabled=true --http-host=127.0.0.1 --http-port="$(cat "$RUN/port")" \
		--http-management-port="$(cat "$RUN/mgmt-port")" \
		--hostname-strict=false --cache=local </dev/null >"$RUN/log" 2>&1 &
	echo $! >"$RUN/pid"
	local t0=$SECONDS
	until answers; do
		if ! pid_alive; then
			tail -n 40 "$RUN/log" >&2
			die "Keycloak exited during start (log: $RUN/log)"
		fi
		if ((SECONDS - t0 > KC_START_TIMEOUT)); then
			tail -n 40 "$RUN/log" >&2
			stop
			die "Keycloak did not answer within ${KC_START_TIMEOUT}s (log: $RUN/log)"
		fi
		sleep 1
	done
	log "Keycloak answers at $(url) after $((SECONDS - t0))s"
	url
}

stop() {
	if ! pid_alive; then
		log "Keycloak is not running"
		rm -f "$RUN/pid"
		return
	fi
	local pid i
	pid=$(cat "$RUN/pid")
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
	for ((i = 0; i < 60; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.5
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "Keycloak did not stop in 30s: killing it"
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"
	fi
	rm -f "$RUN/pid"
	log "Keycloak stopped"
}

env_exports() {
	[ -f "$RUN/port" ] && [ -f "$RUN/admin" ] || die "Keycloak was never started: run $0 start"
	local admin password
	{ read -r admin; read -r password; } <"$RUN/admin"
	echo "export KCEE_TEST_KEYCLOAK_URL='$(url)'"
	echo "export KCEE_TEST_KEYCLOAK_ADMIN='$admin'"
	echo "export KCEE_TEST_KEYCLOAK_ADMIN_PASSWORD='$password'"
	echo "export KCEE_TEST_KEYCLOAK_DB_URL='$(cat "$RUN/db-url")'"
}

case ${1:-} in
start) start ;;
stop) stop ;;
restart) stop; start ;;
status) if pid_alive && answers; then url; else exit 1; fi ;;
env) env_exports ;;
log) echo "$RUN/log" ;;
*) usage ;;
esac
