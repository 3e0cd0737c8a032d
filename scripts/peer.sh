#!/usr/bin/env bash
# scripts/peer.sh: a second Keycloak, with an in-process webhook listener from
# Maven Central (io.phasetwo.keycloak:keycloak-events), for the peer
# comparison of docs/benchmarks.md. It lives apart from the test Keycloak of
# scripts/keycloak.sh: its own home under .cache/peer/keycloak (the provider
# jar in its providers/ folder), its own PostgreSQL cluster "peer" under
# .cache/peer/postgres, its own ports.
#
#   scripts/peer.sh setup     fetch the provider jar and unpack a Keycloak home for the peer
#   scripts/peer.sh start     setup, build (once) and start the peer Keycloak; prints its URL last
#   scripts/peer.sh stop      stop it
#   scripts/peer.sh env       print the exports of KCEE_TEST_KEYCLOAK_URL, _ADMIN, _ADMIN_PASSWORD
#                             and _DB_URL for the peer (what `go run ./cmd/kc-event-bench --cases peer` reads)
#   scripts/peer.sh measure   start it and run the peer case of the load harness
#
# Settings from the environment:
#   PEER_EVENTS_VERSION   io.phasetwo.keycloak:keycloak-events version [0.52, built for Keycloak 26.5.0]
#   KC_VERSION            the Keycloak distribution [26.5.6]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PEER_EVENTS_VERSION=${PEER_EVENTS_VERSION:-0.52}
KC_VERSION=${KC_VERSION:-26.5.6}
PEER=$CACHE/peer
JAR=keycloak-events-$PEER_EVENTS_VERSION.jar

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

# kc runs scripts/keycloak.sh on the peer's cache folder and cluster.
kc() { KCEE_CACHE=$PEER KC_PG_CLUSTER=peer KC_VERSION=$KC_VERSION "$ROOT/scripts/keycloak.sh" "$@"; }

setup() {
	local home=$PEER/keycloak/keycloak-$KC_VERSION zip=keycloak-quarkus-dist-$KC_VERSION.zip
	mkdir -p "$PEER/keycloak" "$PEER/providers"
	if [ ! -f "$PEER/providers/$JAR" ]; then
		need_cmd mvn maven
		log "fetching io.phasetwo.keycloak:keycloak-events:$PEER_EVENTS_VERSION from Maven Central"
		mvn -q -B dependency:copy "-Dartifact=io.phasetwo.keycloak:keycloak-events:$PEER_EVENTS_VERSION:jar" \
			"-DoutputDirectory=$PEER/providers" >"$PEER/fetch.log" 2>&1 ||
			{ cat "$PEER/fetch.log" >&2; die "mvn dependency:copy of keycloak-events $PEER_EVENTS_VERSION failed"; }
	fi
	# The test Keycloak's download, when there is one, saves fetching it again.
	if [ ! -f "$PEER/keycloak/$zip" ] && [ -f "$ROOT/.cache/keycloak/$zip" ]; then
		ln "$ROOT/.cache/keycloak/$zip" "$PEER/keycloak/$zip" 2>/dev/null || cp "$ROOT/.cache/keycloak/$zip" "$PEER/keycloak/$zip"
	fi
	if [ ! -x "$home/bin/kc.sh" ]; then
		need_cmd unzip unzip
		if [ ! -f "$PEER/keycloak/$zip" ]; then
			need_cmd mvn maven
			log "fetching org.keycloak:keycloak-quarkus-dist:$KC_VERSION:zip from Maven Central"
			mvn -q -B dependency:copy "-Dartifact=org.keycloak:keycloak-quarkus-dist:$KC_VERSION:zip" \
				"-DoutputDirectory=$PEER/keycloak" >"$PEER/fetch.log" 2>&1 ||
				{ cat "$PEER/fetch.log" >&2; die "mvn dependency:copy of keycloak-quarkus-dist $KC_VERSION failed"; }
		fi
		log "unpacking $zip for the peer"
		rm -rf "$home.tmp" && mkdir -p "$home.tmp"
		unzip -q "$PEER/keycloak/$zip" -d "$home.tmp" || die "unzip failed"
		mv "$home.tmp/keycloak-$KC_VERSION" "$home" && rm -rf "$home.tmp"
	fi
	if ! cmp -s "$PEER/providers/$JAR" "$home/providers/$JAR"; then
		rm -f "$home"/providers/keycloak-events-*.jar "$home/.kcee-built" # a new provider needs a new build
		cp "$PEER/providers/$JAR" "$home/providers/$JAR"
	fi
}

cmd=${1:-}
case $cmd in
setup) setup ;;
start) setup; kc start ;;
stop) kc stop ;;
env) kc env ;;
measure)
	setup
	kc start >/dev/null
	eval "$(kc env)"
	cd "$ROOT"
	shift
	go run ./cmd/kc-event-bench --cases peer "$@"
	;;
*) usage ;;
esac
