#!/usr/bin/env bash
# scripts/test.sh: `make test`. Installs what is missing, starts PostgreSQL,
# Keycloak and a Kafka broker (scripts/kafka.sh; NATS runs inside its
# tests), checks generated code, builds, vets, and runs every test against
# the real servers (KCEE_REQUIRE_SERVERS=1: a test that needs a server fails
# instead of skipping). Prints the time of each phase at the end.
#
# Then the end-to-end subset again on the oldest supported Keycloak (the
# tests of emitter/e2e that touch Keycloak and the schema check; the full
# matrix is `make test-compat`), which is stopped afterwards.
#
# Settings: GO_TEST_TIMEOUT [15m], GO_TEST_FLAGS (extra go test flags),
# KC_VERSION (see scripts/keycloak.sh), KC_OLDEST_VERSION [21.1.2; "none"
# skips that part].
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

times=()
phase() {
	local name=$1 t0=$SECONDS rc=0
	shift
	echo "=== $name" >&2
	"$@" || rc=$?
	times+=("$(printf '%-22s %4ds%s' "$name" $((SECONDS - t0)) "$([ $rc = 0 ] || echo " (failed: exit $rc)")")")
	return $rc
}
report() {
	local rc=$? t
	echo "=== phase times" >&2
	for t in "${times[@]}"; do echo "    $t" >&2; done
	return $rc
}
trap report EXIT

phase "install tools" bash scripts/deps.sh test
phase "start postgresql" bash scripts/postgres.sh start
phase "start keycloak" bash scripts/keycloak.sh start
phase "start kafka" bash scripts/kafka.sh start
eval "$(bash scripts/postgres.sh env)"
eval "$(bash scripts/keycloak.sh env)"
eval "$(bash scripts/kafka.sh env)"
export KCEE_REQUIRE_SERVERS=1 KCEE_REQUIRE_KAFKA=1
phase "generated code" bash scripts/check-generate.sh
phase "build" make --no-print-directory build
phase "go vet" go vet ./...
# shellcheck disable=SC2086 # GO_TEST_FLAGS is a list of flags
phase "go test" go test -count=1 -timeout "${GO_TEST_TIMEOUT:-15m}" ${GO_TEST_FLAGS:-} ./...

KC_OLDEST_VERSION=${KC_OLDEST_VERSION:-21.1.2}
if [ "$KC_OLDEST_VERSION" != none ] && [ "$KC_OLDEST_VERSION" != "${KC_VERSION:-}" ]; then
	phase "start keycloak $KC_OLDEST_VERSION" env KC_VERSION="$KC_OLDEST_VERSION" bash scripts/keycloak.sh start
	eval "$(bash scripts/keycloak.sh env)"
	# shellcheck disable=SC2086 # GO_TEST_FLAGS is a list of flags
	phase "go test e2e $KC_OLDEST_VERSION" go test -count=1 -timeout "${GO_TEST_TIMEOUT:-15m}" ${GO_TEST_FLAGS:-} \
		-run '^(TestEndToEnd(API|Every|Emitter|Receiver).*|TestEvery.*|TestLiveKeycloakSchemaMatchesTheDump)$' ./emitter/e2e ./emitter/testenv
	phase "stop keycloak $KC_OLDEST_VERSION" bash scripts/keycloak.sh stop
fi
