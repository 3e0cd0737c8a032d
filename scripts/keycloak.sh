#!/usr/bin/env bash
# scripts/keycloak.sh: a real Keycloak for the tests, the demo and the
# benchmarks, on 127.0.0.1, with its database on the PostgreSQL cluster of
# scripts/postgres.sh. Any org.keycloak:keycloak-quarkus-dist from 21.1 to
# the newest: options, health endpoint, admin bootstrap variables and JDK are
# chosen by version. One server runs at a time: starting another version
# stops the one running.
#
#   scripts/keycloak.sh start        fetch (once), build (once) and start it; waits until it answers
#   scripts/keycloak.sh stop         stop it (its database stays)
#   scripts/keycloak.sh restart      stop and start it
#   scripts/keycloak.sh status       print its URL and exit 0 when it answers, else exit 1
#   scripts/keycloak.sh env          print the exports of KCEE_TEST_KEYCLOAK_URL, _ADMIN,
#                                    _ADMIN_PASSWORD, _DB_URL and _VERSION
#   scripts/keycloak.sh log          print the path of its log
#   scripts/keycloak.sh dump-schema  write the event tables of the running server's database
#                                    to testdata/schema/keycloak-<version>-events.sql
#   scripts/keycloak.sh fetch        fetch and unpack the distribution only
#
# Settings from the environment:
#   KC_VERSION                   the distribution (org.keycloak:keycloak-quarkus-dist) [26.7.3]
#   KC_BOOTSTRAP_ADMIN_USERNAME  the master realm's first admin [admin]
#   KC_BOOTSTRAP_ADMIN_PASSWORD  its password [admin]; used only when the database is new
#   KC_JAVA_HOME                 the JDK to run it on [by version, see pick_java]
#   KC_PG_CLUSTER                the scripts/postgres.sh cluster for its database [test]
#   KC_START_TIMEOUT             seconds to wait for it to answer [600; a first start creates the schema]
#   KC_HEAP                      the JVM heap options [-Xms256m -Xmx1g]
#
# The distribution is fetched from Maven Central with `mvn dependency:copy`
# into .cache/keycloak (kept by `make clean`; versions side by side), unpacked
# there and built once for PostgreSQL (`kc.sh build`); every start is then
# `kc.sh start --optimized` (production mode: themes cached, as operators
# run it), with HTTP on a free loopback port, hostname-strict off, local
# caches. Each version has its own database, keycloak_<version> (Keycloak
# upgrades a database on start and cannot go back).
#
# What differs by version:
#   21.1-24.x  health on the main port (/health/ready); admin from KEYCLOAK_ADMIN and
#              KEYCLOAK_ADMIN_PASSWORD; JDK 17 (21-23 do not support 21)
#   25.x       health on the management port (--http-management-port, 9000 by default)
#   26.x       admin from KC_BOOTSTRAP_ADMIN_USERNAME and _PASSWORD; JDK 21, 17 or 25
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KC_VERSION=${KC_VERSION:-26.7.3}
KC_PG_CLUSTER=${KC_PG_CLUSTER:-test}
KC_START_TIMEOUT=${KC_START_TIMEOUT:-600}
KC_HEAP=${KC_HEAP:--Xms256m -Xmx1g}
KCDIR=$CACHE/keycloak
ZIP=$KCDIR/keycloak-quarkus-dist-$KC_VERSION.zip
HOME_DIR=$KCDIR/keycloak-$KC_VERSION
RUN=$KCDIR/run

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

# parse_version sets KC_MAJOR and KC_MINOR from KC_VERSION, refusing a
# version the scripts do not support.
parse_version() {
	[[ $KC_VERSION =~ ^([0-9]+)\.([0-9]+)(\.[0-9]+)?$ ]] ||
		die "KC_VERSION '$KC_VERSION': want a release such as 26.7.3"
	KC_MAJOR=${BASH_REMATCH[1]} KC_MINOR=${BASH_REMATCH[2]}
	if ((KC_MAJOR < 21 || KC_MAJOR == 21 && KC_MINOR < 1)); then
		die "KC_VERSION '$KC_VERSION': the scripts support Keycloak 21.1 and newer"
	fi
}

# fetch downloads and unpacks the distribution unless it is already there.
fetch() {
	mkdir -p "$KCDIR"
	if [ ! -f "$ZIP" ]; then
		need_cmd mvn maven
		log "fetching org.keycloak:keycloak-quarkus-dist:$KC_VERSION:zip from Maven Central"
		mvn -q -B dependency:copy "-Dartifact=org.keycloak:keycloak-quarkus-dist:$KC_VERSION:zip" \
			"-DoutputDirectory=$KCDIR" >"$KCDIR/fetch.log" 2>&1 ||
			{ cat "$KCDIR/fetch.log" >&2; die "mvn dependency:copy of keycloak-quarkus-dist $KC_VERSION failed (is that version on Maven Central?)"; }
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

# find_jdk prints the first JDK under /usr/lib/jvm of one of the major
# versions given, in the order given, or nothing.
find_jdk() {
	local want d
	for want in "$@"; do
		for d in /usr/lib/jvm/*/; do
			d=${d%/}
			[ -L "$d" ] && continue
			if [ -x "$d/bin/java" ] && [ "$(java_major "$d")" = "$want" ]; then echo "$d"; return; fi
		done
	done
}

# pick_java sets JAVA_HOME to the JDK this version runs on: KC_JAVA_HOME,
# else the first found of the JDKs it supports, in the order of preference:
#   21.1-23.x  17 (they predate JDK 21 support)
#   24.x-25.x  21, 17
#   26.x+      21, 17, 25 (25 needs the --add-opens that start passes)
# When none is installed it installs Debian's openjdk-17-jdk-headless, which
# every version from 21.1 to 26.x runs on.
pick_java() {
	if [ -n "${KC_JAVA_HOME:-}" ]; then
		JAVA_HOME=$KC_JAVA_HOME
	else
		local wants=(17)
		((KC_MAJOR >= 24)) && wants=(21 17)
		((KC_MAJOR >= 26)) && wants=(21 17 25)
		JAVA_HOME=$(find_jdk "${wants[@]}")
		if [ -z "$JAVA_HOME" ]; then
			log "no JDK ${wants[*]} under /usr/lib/jvm for Keycloak $KC_VERSION"
			apt_install openjdk-17-jdk-headless
			JAVA_HOME=$(find_jdk 17)
			[ -n "$JAVA_HOME" ] || die "openjdk-17-jdk-headless installed no JDK 17 under /usr/lib/jvm"
		fi
	fi
	[ -x "$JAVA_HOME/bin/java" ] || die "no java in $JAVA_HOME"
	export JAVA_HOME
	JAVA_MAJOR=$(java_major "$JAVA_HOME")
}

# build runs `kc.sh build` once per distribution and options (the JDK does
# not matter to the build). Up to some 2x versions `cache` is a build
# option: the build's help tells, and start passes it only when it is not.
build() {
	BUILD_OPTS=(--db=postgres --health-enabled=true --metrics-enabled=true)
	if [ ! -f "$HOME_DIR/.kcee-cache-build-option" ]; then
		if "$HOME_DIR/bin/kc.sh" build --help 2>/dev/null | grep -qE '^ *--cache <'; then
			echo yes >"$HOME_DIR/.kcee-cache-build-option"
		else
			echo no >"$HOME_DIR/.kcee-cache-build-option"
		fi
	fi
	CACHE_AT_BUILD=$(cat "$HOME_DIR/.kcee-cache-build-option")
	[ "$CACHE_AT_BUILD" = yes ] && BUILD_OPTS+=(--cache=local)
	local stamp="$KC_VERSION ${BUILD_OPTS[*]}"
	if [ "$(cat "$HOME_DIR/.kcee-built" 2>/dev/null || true)" = "$stamp" ]; then return; fi
	log "building Keycloak $KC_VERSION for PostgreSQL on $(basename "$JAVA_HOME") (once)"
	"$HOME_DIR/bin/kc.sh" build "${BUILD_OPTS[@]}" >"$KCDIR/build-$KC_VERSION.log" 2>&1 ||
		{ tail -n 30 "$KCDIR/build-$KC_VERSION.log" >&2; die "kc.sh build failed (log: $KCDIR/build-$KC_VERSION.log)"; }
	echo "$stamp" >"$HOME_DIR/.kcee-built"
}

pid_alive() { [ -f "$RUN/pid" ] && kill -0 "$(cat "$RUN/pid")" 2>/dev/null; }

url() { echo "http://127.0.0.1:$(cat "$RUN/port")"; }

running_version() { cat "$RUN/version" 2>/dev/null || true; }

# answers tells whether the running server is ready (its health URL
# depends on its version: see start).
answers() {
	curl -fsS -o /dev/null --max-time 5 "$(cat "$RUN/health-url" 2>/dev/null)" 2>/dev/null
}

start() {
	parse_version
	if pid_alive && [ "$(running_version)" = "$KC_VERSION" ] && answers; then
		log "Keycloak $KC_VERSION already runs at $(url)"
		url
		return
	fi
	if pid_alive; then
		log "stopping Keycloak $(running_version) to start $KC_VERSION"
		stop
	fi
	need_cmd curl curl
	fetch
	pick_java
	build
	local pgurl pgport db new_db=""
	pgurl=$("$ROOT/scripts/postgres.sh" start "$KC_PG_CLUSTER" | tail -n 1)
	pgport=${pgurl#*127.0.0.1:}
	pgport=${pgport%%/*}
	db=keycloak_$(echo "$KC_VERSION" | tr -c '0-9a-z\n' '_')
	if [ -z "$(psql "$pgurl" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
		psql -q "$pgurl" -c "CREATE DATABASE $db" >&2
		new_db=1
	fi
	# A first start that fails may leave a half-made schema (and Liquibase's
	# lock): drop the database it was given, so that the next start is clean.
	failed_start() {
		tail -n 40 "$RUN/log" >&2
		if [ -n "$new_db" ]; then
			log "dropping database $db (its first start failed)"
			psql -q "$pgurl" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >&2 || true
		fi
		die "$@"
	}
	mkdir -p "$RUN"
	# The ports of the last start when they are still free, so URLs stay stable.
	local f
	for f in port mgmt-port; do
		if [ ! -s "$RUN/$f" ] || port_in_use "$(cat "$RUN/$f")"; then free_port >"$RUN/$f"; fi
	done
	echo "$KC_VERSION" >"$RUN/version"
	echo "postgres://postgres@127.0.0.1:$pgport/$db?sslmode=disable" >"$RUN/db-url"
	local admin=${KC_BOOTSTRAP_ADMIN_USERNAME:-admin} password=${KC_BOOTSTRAP_ADMIN_PASSWORD:-admin}
	(umask 077 && printf '%s\n%s\n' "$admin" "$password" >"$RUN/admin")
	local opts=(--db-url="jdbc:postgresql://127.0.0.1:$pgport/$db" --db-username=postgres
		--http-enabled=true --http-host=127.0.0.1 --http-port="$(cat "$RUN/port")" --hostname-strict=false)
	[ "$CACHE_AT_BUILD" = yes ] || opts+=(--cache=local)
	# Health: on the management port from 25, on the main port before.
	if ((KC_MAJOR >= 25)); then
		opts+=(--http-management-port="$(cat "$RUN/mgmt-port")")
		echo "http://127.0.0.1:$(cat "$RUN/mgmt-port")/health/ready" >"$RUN/health-url"
	else
		echo "http://127.0.0.1:$(cat "$RUN/port")/health/ready" >"$RUN/health-url"
	fi
	# The first admin: KC_BOOTSTRAP_ADMIN_* from 26, KEYCLOAK_ADMIN* before.
	# Secrets through the environment, never argv.
	local adminenv=(KC_BOOTSTRAP_ADMIN_USERNAME="$admin" KC_BOOTSTRAP_ADMIN_PASSWORD="$password")
	((KC_MAJOR >= 26)) || adminenv=(KEYCLOAK_ADMIN="$admin" KEYCLOAK_ADMIN_PASSWORD="$password")
	local append=""
	# JDK 24+: Netty's Unsafe use and jboss-threads' thread-local reset need these.
	[ "$JAVA_MAJOR" -ge 24 ] && append="--sun-misc-unsafe-memory-access=allow --add-opens=java.base/java.lang=ALL-UNNAMED"
	log "starting Keycloak $KC_VERSION on $(basename "$JAVA_HOME") at $(url) (database $db on port $pgport)"
	# setsid: stop ends the whole group.
	env -u KC_BOOTSTRAP_ADMIN_USERNAME -u KC_BOOTSTRAP_ADMIN_PASSWORD -u KEYCLOAK_ADMIN -u KEYCLOAK_ADMIN_PASSWORD \
		"${adminenv[@]}" KC_DB_PASSWORD=unused JAVA_OPTS_KC_HEAP="$KC_HEAP" JAVA_OPTS_APPEND="$append" \
		setsid "$HOME_DIR/bin/kc.sh" start --optimized "${opts[@]}" </dev/null >"$RUN/log" 2>&1 &
	echo $! >"$RUN/pid"
	local t0=$SECONDS
	until answers; do
		if ! pid_alive; then
			failed_start "Keycloak $KC_VERSION exited during start (log: $RUN/log)"
		fi
		if ((SECONDS - t0 > KC_START_TIMEOUT)); then
			stop
			failed_start "Keycloak $KC_VERSION did not answer within ${KC_START_TIMEOUT}s (log: $RUN/log)"
		fi
		sleep 1
	done
	log "Keycloak $KC_VERSION answers at $(url) after $((SECONDS - t0))s"
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
	log "Keycloak $(running_version) stopped"
}

env_exports() {
	[ -f "$RUN/port" ] && [ -f "$RUN/admin" ] || die "Keycloak was never started: run $0 start"
	local admin password
	{ read -r admin; read -r password; } <"$RUN/admin"
	echo "export KCEE_TEST_KEYCLOAK_URL='$(url)'"
	echo "export KCEE_TEST_KEYCLOAK_ADMIN='$admin'"
	echo "export KCEE_TEST_KEYCLOAK_ADMIN_PASSWORD='$password'"
	echo "export KCEE_TEST_KEYCLOAK_DB_URL='$(cat "$RUN/db-url")'"
	echo "export KCEE_TEST_KEYCLOAK_VERSION='$(running_version)'"
}

# dump_schema writes the tables the emitter reads, as the running server
# created them, to testdata/schema/keycloak-<version>-events.sql.
dump_schema() {
	pid_alive && answers || die "Keycloak is not running: run $0 start"
	local v out pgdump
	v=$(running_version)
	out=$ROOT/testdata/schema/keycloak-$v-events.sql
	pgdump=$(ls -d /usr/lib/postgresql/*/bin/pg_dump 2>/dev/null | sort -V | tail -n 1)
	[ -x "$pgdump" ] || die "no pg_dump under /usr/lib/postgresql"
	{
		echo "-- Keycloak $v (org.keycloak:keycloak-quarkus-dist:$v, scripts/keycloak.sh: kc.sh start --optimized --db postgres) created these tables on first start;"
		echo "-- dumped with: scripts/keycloak.sh dump-schema (pg_dump --schema-only --no-owner --no-privileges -t event_entity -t admin_event_entity -t realm -t user_entity)"
		"$pgdump" --schema-only --no-owner --no-privileges -t event_entity -t admin_event_entity -t realm -t user_entity "$(cat "$RUN/db-url")"
	} >"$out.tmp" || { rm -f "$out.tmp"; die "pg_dump failed"; }
	mv "$out.tmp" "$out"
	log "wrote $out"
	echo "$out"
}

case ${1:-} in
start) start ;;
stop) stop ;;
restart) stop; start ;;
status) if pid_alive && answers; then url; else exit 1; fi ;;
env) env_exports ;;
log) echo "$RUN/log" ;;
dump-schema) dump_schema ;;
fetch) parse_version; fetch ;;
*) usage ;;
esac
