#!/usr/bin/env bash
# scripts/check-generate.sh: fails when generated code is stale. It runs
# `go generate ./...` and compares every package folder that holds a
# //go:generate directive before and after; a difference means the committed
# output no longer matches its source (the folder is left regenerated:
# review and commit it).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

mapfile -t dirs < <(grep -rl --include='*.go' --exclude-dir=.cache --exclude-dir=.git '^//go:generate ' . |
	xargs -r -n1 dirname | sort -u)
if [ ${#dirs[@]} = 0 ]; then
	log "no //go:generate directives: nothing to check"
	exit 0
fi
before=$(mktemp -d)
trap 'rm -rf "$before"' EXIT
for d in "${dirs[@]}"; do
	mkdir -p "$before/$d" && cp -a "$d/." "$before/$d/"
done
go generate ./...
stale=0
for d in "${dirs[@]}"; do
	if ! diff -ru "$before/$d" "$d" >&2; then
		log "generated code in $d was stale (now regenerated: review and commit it)"
		stale=1
	fi
done
[ $stale = 0 ] && log "generated code is up to date in: ${dirs[*]}"
exit $stale
