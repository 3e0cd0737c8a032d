#!/usr/bin/env bash
# scripts/compat.sh: `make test-compat`. For each Keycloak version, one at a
# time: start it (scripts/keycloak.sh), run the tests that touch Keycloak,
# stop it; then print a table (version, JDK, start, source, tests, result,
# time).
#
# Groups of tests (go test -run), per version:
#   db      the database source end to end: every event once with its fields in
#           JSON and FLATBUFFER, the emitter killed while Keycloak writes, the
#           receiver down (block and drop-oldest)
#   api     the admin API source: end to end (both formats, same-millisecond
#           bursts, refused account, role granted late, killed while Keycloak
#           writes) and the apisource tests against the real server
#   server  the schema check against testdata/schema/keycloak-<version>-events.sql,
#           the seed's traffic in both tables, and every live event and
#           resource type name through JSON and each FlatBuffer numbering
#
# Settings from the environment:
#   KC_VERSIONS    the versions, in the order to run them [the default 26.7.3 first, then
#                  the newest patch of each minor from 21.1 that Maven Central serves here,
#                  26.3 and 26.4 left out]; the table is sorted by version
#   COMPAT_GROUPS  the groups to run [db api server]
#   COMPAT_DOC     a Markdown file whose table between the markers
#                  <!-- compat-table:start --> and <!-- compat-table:end -->, and whose
#                  type names between <!-- compat-types:start --> and <!-- compat-types:end -->,
#                  are replaced by this run's (e.g. docs/compatibility.md)
#   GO_TEST_TIMEOUT  per go test run [15m]
# Logs and the serverinfo of each version go to .cache/compat/.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

KC_VERSIONS=${KC_VERSIONS:-26.7.3 21.1.2 22.0.5 23.0.7 24.0.5 25.0.6 26.0.8 26.1.4 26.2.5 26.5.6}
COMPAT_GROUPS=${COMPAT_GROUPS:-db api server}
OUT=$CACHE/compat
mkdir -p "$OUT"

declare -A RUN_RE=(
	[db]='^(TestEndToEndEveryKeycloakEventArrivesOnceWithItsFields|TestEndToEndEmitterKilledWhileKeycloakWritesLosesNothing|TestEndToEndReceiverDown.*)$'
	[api]='^(TestEndToEndAPISource.*|TestKeycloak.*|TestAPIPagerOnKeycloak.*)$'
	[server]='^(TestLiveKeycloakSchemaMatchesTheDump|TestSeedFillsBothEventTablesWithRealTraffic|TestEveryLiveKeycloakTypeName.*)$'
)
declare -A PKGS=(
	[db]='./emitter/e2e'
	[api]='./emitter/e2e ./emitter/apisource ./emitter'
	[server]='./emitter/testenv ./emitter/e2e'
)

bash scripts/deps.sh test
bash scripts/postgres.sh start >/dev/null
eval "$(bash scripts/postgres.sh env)"
export KCEE_REQUIRE_SERVERS=1

rows=()
failed=0
# save_serverinfo writes the enums of the running Keycloak's serverinfo to
# $OUT/keycloak-<version>-serverinfo.json.
save_serverinfo() {
	local v=$1 tok
	# The password through stdin, never argv.
	tok=$(printf %s "$KCEE_TEST_KEYCLOAK_ADMIN_PASSWORD" | curl -fsS --max-time 30 -d grant_type=password -d client_id=admin-cli \
		--data-urlencode "username=$KCEE_TEST_KEYCLOAK_ADMIN" --data-urlencode "password@-" \
		"$KCEE_TEST_KEYCLOAK_URL/realms/master/protocol/openid-connect/token" | jq -r .access_token)
	printf 'Authorization: Bearer %s\n' "$tok" | curl -fsS --max-time 30 -H @- "$KCEE_TEST_KEYCLOAK_URL/admin/serverinfo" |
		jq '{version: .systemInfo.version, eventType: .enums.eventType, resourceType: .enums.resourceType}' >"$OUT/keycloak-$v-serverinfo.json"
}

# stamp tells when and on what a row was measured: the date and the commit
# (+ when the work tree had other changes than docs/).
stamp() {
	echo "$(date -u +%Y-%m-%d) $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!docs' 2>/dev/null || echo +)"
}

# table prints this run's rows and, from COMPAT_DOC, the rows of versions
# this run did not measure, sorted by version.
table() {
	echo "| Keycloak | JDK | start | source | tests | result | time | measured |"
	echo "|---|---|---|---|---|---|---|---|"
	{
		printf "%s\n" "${rows[@]}"
		if [ -n "${COMPAT_DOC:-}" ]; then
			sed -n '/<!-- compat-table:start -->/,/<!-- compat-table:end -->/p' "$COMPAT_DOC" | grep -E '^\| [0-9]' |
				while IFS= read -r line; do
					v=$(echo "$line" | cut -d'|' -f2 | tr -d ' ')
					[[ " $KC_VERSIONS " == *" $v "* ]] || echo "$line"
				done
		fi
	} | sort -s -t "|" -k2,2V # by version, groups in run order
	echo
	echo "On $(nproc) vCPU ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)), shared with other jobs."
	echo "start: scripts/keycloak.sh start (the first start of a version also fetches, builds and creates its database); time: go test of the group;"
	echo "measured: date and commit (+: with uncommitted changes)."
}

# measured prints the versions whose serverinfo is under $OUT (this run's
# and earlier runs'), oldest first.
measured() {
	local f
	for f in "$OUT"/keycloak-*-serverinfo.json; do
		[ -f "$f" ] || continue
		f=${f##*/keycloak-}
		echo "${f%-serverinfo.json}"
	done | sort -V
}

# types lists, per version measured (in this run or an earlier one), the type names its serverinfo gives,
# those new since the version before it, and those each FlatBuffer
# numbering sends as UNKNOWN (from the server group's log).
types() {
	local prev="" v f
	echo "| Keycloak | event types | resource types | new since the version above |"
	echo "|---|---|---|---|"
	for v in $(measured); do
		f=$OUT/keycloak-$v-serverinfo.json
		[ -f "$f" ] || continue
		local added=""
		if [ -n "$prev" ]; then
			added=$(jq -rn --slurpfile a "$prev" --slurpfile b "$f" \
				'([$b[0].eventType[]] - [$a[0].eventType[]]) as $e | ([$b[0].resourceType[]] - [$a[0].resourceType[]]) as $r |
				[($e | map("`" + . + "`")), ($r | map("`" + . + "` (resource)"))] | flatten | join(", ")')
		fi
		echo "| $v | $(jq '.eventType | length' "$f") | $(jq '.resourceType | length' "$f") | ${added:-} |"
		prev=$f
	done
	echo
	for v in $(measured); do
		[ -f "$OUT/keycloak-$v-server.log" ] || continue
		grep -o "Keycloak $v, numbering .*" "$OUT/keycloak-$v-server.log" | sed 's/^/- /' || true
	done
}

replace_between() { # file marker text
	local file=$1 marker=$2 tmp textfile
	grep -q "<!-- $marker:start -->" "$file" || die "$file has no <!-- $marker:start --> marker"
	tmp=$(mktemp) textfile=$(mktemp)
	printf '%s\n' "$3" >"$textfile"
	awk -v start="<!-- $marker:start -->" -v end="<!-- $marker:end -->" -v tf="$textfile" '
		$0 == start { print; while ((getline l < tf) > 0) print l; skip = 1; next }
		$0 == end { skip = 0 }
		!skip { print }' "$file" >"$tmp"
	cat "$tmp" >"$file" && rm -f "$tmp" "$textfile"
}

# update_doc writes the tables so far to COMPAT_DOC, when set (after each
# version, so that an interrupted run keeps what it measured).
update_doc() {
	[ -n "${COMPAT_DOC:-}" ] || return 0
	replace_between "$COMPAT_DOC" compat-table "$(table)"
	replace_between "$COMPAT_DOC" compat-types "$(types)"
}

for v in $KC_VERSIONS; do
	echo "=== Keycloak $v" >&2
	t0=$SECONDS
	if ! KC_VERSION=$v bash scripts/keycloak.sh start >"$OUT/keycloak-$v-start.log" 2>&1; then
		tail -n 20 "$OUT/keycloak-$v-start.log" >&2
		rows+=("| $v | | failed | all | | **FAIL: Keycloak did not start** | $((SECONDS - t0))s | $(stamp) |")
		failed=1
		update_doc
		continue
	fi
	start=$((SECONDS - t0))
	jdk=$(sed -n 's/.*starting Keycloak [^ ]* on \([^ ]*\) at.*/\1/p' "$OUT/keycloak-$v-start.log" | tail -n 1)
	[ -n "$jdk" ] || jdk=$(sed -n 's/.*building Keycloak [^ ]* for PostgreSQL on \([^ ]*\) .*/\1/p' "$OUT/keycloak-$v-start.log")
	eval "$(bash scripts/keycloak.sh env)"
	save_serverinfo "$v" || log "could not read the serverinfo of Keycloak $v"
	for g in $COMPAT_GROUPS; do
		[ -n "${RUN_RE[$g]:-}" ] || die "COMPAT_GROUPS: unknown group '$g' (want db, api, server)"
		echo "--- Keycloak $v, $g" >&2
		t1=$SECONDS
		rc=0
		# shellcheck disable=SC2086 # PKGS is a list of packages
		go test -json -count=1 -timeout "${GO_TEST_TIMEOUT:-15m}" -run "${RUN_RE[$g]}" ${PKGS[$g]} >"$OUT/keycloak-$v-$g.json" 2>&1 || rc=$?
		secs=$((SECONDS - t1))
		jq -rj 'select(.Action == "output") | .Output' "$OUT/keycloak-$v-$g.json" >"$OUT/keycloak-$v-$g.log" 2>/dev/null ||
			cp "$OUT/keycloak-$v-$g.json" "$OUT/keycloak-$v-$g.log"
		# go test's own result lines.
		grep -E '^(ok|FAIL|panic:|--- FAIL|--- SKIP)' "$OUT/keycloak-$v-$g.log" | sed "s/^/[$v $g] /" || true
		counts=$(jq -rs '[.[] | select(.Test != null and (.Test | contains("/") | not))] |
			"\([.[] | select(.Action == "pass")] | length) passed, \([.[] | select(.Action == "fail")] | length) failed, \([.[] | select(.Action == "skip")] | length) skipped"' \
			"$OUT/keycloak-$v-$g.json" 2>/dev/null || echo "?")
		if [ $rc = 0 ]; then result=pass; else result="**FAIL**"; failed=1; fi
		rows+=("| $v | $jdk | ${start}s | $g | $counts | $result | ${secs}s | $(stamp) |")
	done
	update_doc
done
bash scripts/keycloak.sh stop >&2 || true

echo "=== compatibility" >&2
table
update_doc
[ -z "${COMPAT_DOC:-}" ] || log "updated $COMPAT_DOC"
exit $failed
