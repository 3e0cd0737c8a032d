#!/usr/bin/env bash
# scripts/demo.sh: `make demo`. Starts PostgreSQL and a real Keycloak, seeds a
# realm, makes real traffic in it (registrations, logins, failed logins,
# refreshes, logouts, admin operations) and shows Keycloak's event tables
# filling while it runs, and the same events arriving at the receiver. The servers stay up afterwards (`make clean` stops them).
#
# Settings: DEMO_REALM [demo], DEMO_ROUNDS [12], DEMO_WORKERS [1],
# DEMO_INTERVAL [1s] (pause between rounds), DEMO_EVERY [4] (seconds between
# looks at the tables), DEMO_RECEIVER_PORT and DEMO_METRICS_PORT [free ports].
#
# While the traffic runs, kc-event-emitter tails Keycloak's database and sends
# every event to kc-event-receiver, which prints a line per event.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

REALM=${DEMO_REALM:-demo}
ROUNDS=${DEMO_ROUNDS:-12}
WORKERS=${DEMO_WORKERS:-1}
INTERVAL=${DEMO_INTERVAL:-1s}
EVERY=${DEMO_EVERY:-4}

say() {
	if [ -t 1 ]; then printf '\n\033[1m== %s\033[0m\n' "$*"; else printf '\n== %s\n' "$*"; fi
}

# pipeline_start starts the reference receiver and the emitter, tailing
# Keycloak's database for the realm while the traffic runs; pipeline_report
# shows what arrived; pipeline_stop ends both with SIGTERM (the emitter
# delivers what it holds and saves its checkpoint).
DEMO_DIR=$CACHE/demo
pipeline_start() {
	say "kc-event-receiver and kc-event-emitter (JSON to http://$RECEIVER_ADDR/event/receiver)"
	mkdir -p "$DEMO_DIR"
	rm -f "$DEMO_DIR"/received.jsonl "$DEMO_DIR"/checkpoint.json*
	go build -o "$CACHE/bin/" ./cmd/kc-event-emitter ./cmd/kc-event-receiver
	"$CACHE/bin/kc-event-receiver" --listen "$RECEIVER_ADDR" --store "jsonl:$DEMO_DIR/received.jsonl" \
		>"$DEMO_DIR/receiver.out" 2>"$DEMO_DIR/receiver.log" &
	receiver_pid=$!
	for _ in $(seq 50); do
		curl -fs "http://$RECEIVER_ADDR/healthz" >/dev/null && break
		kill -0 "$receiver_pid" 2>/dev/null || { cat "$DEMO_DIR/receiver.log" >&2; die "the receiver did not start"; }
		sleep 0.1
	done
	KC_EMITTER_DB_URL=$KCEE_TEST_KEYCLOAK_DB_URL "$CACHE/bin/kc-event-emitter" run \
		--format JSON --targetUri "http://$RECEIVER_ADDR/event/receiver" --bufferCapacity 10000 \
		--keycloakId 1 --datacenterId 0 --realms "$REALM" --from beginning --overflow block \
		--checkpoint "$DEMO_DIR/checkpoint.json" --deadLetterFile "$DEMO_DIR/dead-letter.jsonl" \
		--listen "$EMITTER_ADDR" 2>"$DEMO_DIR/emitter.log" &
	emitter_pid=$!
	echo "receiver log: $DEMO_DIR/receiver.log, emitter log: $DEMO_DIR/emitter.log, metrics: http://$EMITTER_ADDR/metrics"
}
pipeline_report() {
	[ -n "${emitter_pid:-}" ] || return 0
	local n=0
	for _ in $(seq 50); do # give the last events of the traffic a moment to arrive
		n=$(wc -l <"$DEMO_DIR/received.jsonl" 2>/dev/null || echo 0)
		[ "$n" -ge "$(count_events)" ] && break
		sleep 0.2
	done
	say "the receiver's view: the last events it got (of $n; each line is one event, stored once by uid)"
	tail -n 12 "$DEMO_DIR/receiver.out"
	echo
	curl -s "http://$EMITTER_ADDR/metrics" | grep -E '^kc_event_emitter_(events_(read|delivered|dropped)_total|buffer_depth|source_lag_seconds)[ {]' || true
	echo "Keycloak stored $(count_events) events for realm $REALM; the receiver has $n."
}
pipeline_stop() {
	[ -n "${emitter_pid:-}" ] || return 0
	kill -TERM "$emitter_pid" 2>/dev/null && wait "$emitter_pid" || true
	kill -TERM "$receiver_pid" 2>/dev/null && wait "$receiver_pid" || true
	emitter_pid=
}

# count_events prints how many user and admin events Keycloak stored for the realm.
count_events() {
	echo "SELECT (SELECT count(*) FROM event_entity e JOIN realm r ON r.id = e.realm_id WHERE r.name = :'realm')
		+ (SELECT count(*) FROM admin_event_entity e JOIN realm r ON r.id = e.realm_id WHERE r.name = :'realm')" |
		psql -X -tAq "$KCEE_TEST_KEYCLOAK_DB_URL" -v realm="$REALM"
}

# show_tables prints the latest rows of both event tables for the realm.
show_tables() {
	psql -X -q "$KCEE_TEST_KEYCLOAK_DB_URL" -v realm="$REALM" <<'SQL'
\pset footer off
SELECT (SELECT count(*) FROM event_entity e JOIN realm r ON r.id = e.realm_id WHERE r.name = :'realm') AS user_events,
       (SELECT count(*) FROM admin_event_entity e JOIN realm r ON r.id = e.realm_id WHERE r.name = :'realm') AS admin_events;
SELECT to_char(to_timestamp(e.event_time / 1000.0), 'HH24:MI:SS.MS') AS time, e.type, e.client_id,
       u.username, e.error, left(coalesce(e.details_json_long_value, e.details_json), 60) AS details
FROM event_entity e JOIN realm r ON r.id = e.realm_id LEFT JOIN user_entity u ON u.id = e.user_id
WHERE r.name = :'realm' ORDER BY e.event_time DESC, e.id LIMIT 8;
SELECT to_char(to_timestamp(e.admin_event_time / 1000.0), 'HH24:MI:SS.MS') AS time, e.operation_type,
       e.resource_type, left(e.resource_path, 50) AS resource_path, length(e.representation) AS representation_bytes
FROM admin_event_entity e JOIN realm r ON r.id = e.realm_id
WHERE r.name = :'realm' ORDER BY e.admin_event_time DESC, e.id LIMIT 5;
SQL
}

RECEIVER_ADDR=127.0.0.1:${DEMO_RECEIVER_PORT:-$(free_port)}
EMITTER_ADDR=127.0.0.1:${DEMO_METRICS_PORT:-$(free_port)}

say "PostgreSQL and Keycloak"
bash scripts/deps.sh test
bash scripts/postgres.sh start >/dev/null
bash scripts/keycloak.sh start >/dev/null
eval "$(bash scripts/keycloak.sh env)"
echo "Keycloak $KCEE_TEST_KEYCLOAK_URL (admin console: $KCEE_TEST_KEYCLOAK_URL/admin, user $KCEE_TEST_KEYCLOAK_ADMIN)"
echo "its database: $KCEE_TEST_KEYCLOAK_DB_URL"

say "realm $REALM"
mkdir -p "$CACHE/bin"
go build -o "$CACHE/bin/seed" ./scripts/seed
"$CACHE/bin/seed" -realm "$REALM" -setup-only -secret-file "$CACHE/seed/$REALM.env"

pipeline_start

say "traffic: $ROUNDS rounds, a look at the tables every ${EVERY}s"
"$CACHE/bin/seed" -realm "$REALM" -secret-file "$CACHE/seed/$REALM.env" -rounds "$ROUNDS" -workers "$WORKERS" -interval "$INTERVAL" >"$CACHE/seed/$REALM.out" 2>"$CACHE/seed/$REALM.log" &
seed_pid=$!
trap 'kill "$seed_pid" 2>/dev/null || true; pipeline_stop' EXIT
while kill -0 "$seed_pid" 2>/dev/null; do
	sleep "$EVERY"
	say "$(date +%T): latest rows of event_entity and admin_event_entity (realm $REALM)"
	show_tables
	say "$(date +%T): what the receiver got meanwhile ($(wc -l <"$DEMO_DIR/received.jsonl" 2>/dev/null || echo 0) events)"
	tail -n 5 "$DEMO_DIR/receiver.out" 2>/dev/null || true
done
if ! wait "$seed_pid"; then
	cat "$CACHE/seed/$REALM.log" >&2
	die "the traffic failed"
fi
trap - EXIT

say "done: $(tail -n 1 "$CACHE/seed/$REALM.out")"
show_tables
pipeline_report
pipeline_stop
n=$(echo "SELECT count(*) FROM event_entity e JOIN realm r ON r.id = e.realm_id WHERE r.name = :'realm'" |
	psql -X -tAq "$KCEE_TEST_KEYCLOAK_DB_URL" -v realm="$REALM")
[ "$n" -gt 0 ] || die "event_entity has no rows for realm $REALM"
echo
echo "Keycloak and PostgreSQL keep running: the realm's client secret is in $CACHE/seed/$REALM.env; \`make clean\` stops them."
