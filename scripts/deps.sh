#!/usr/bin/env bash
# scripts/deps.sh: installs, from Debian's packages and only when missing,
# the tools a target needs beyond Go, a JDK and Maven. Idempotent; as root
# (or through sudo), without questions.
#
#   scripts/deps.sh test    PostgreSQL, curl, unzip, jq, flatc (make test, make demo)
#   scripts/deps.sh bench   the test tools and wrk
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

test_deps() {
	need_cmd curl curl
	need_cmd unzip unzip
	need_cmd jq jq
	need_cmd flatc flatbuffers-compiler
	# PostgreSQL (server and psql): scripts/postgres.sh installs it when missing.
	if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || ! command -v psql >/dev/null; then
		"$ROOT/scripts/postgres.sh" install
	fi
	command -v java >/dev/null || apt_install openjdk-17-jdk-headless
	command -v mvn >/dev/null || apt_install maven
}

case ${1:-test} in
test) test_deps ;;
bench) test_deps; need_cmd wrk wrk ;;
*) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
