#!/usr/bin/env bash
# scripts/build.sh OUTDIR: builds kc-event-emitter and kc-event-receiver into
# OUTDIR, as make build, make dist and deploy/Dockerfile do: static
# (CGO_ENABLED=0), -trimpath, without the symbol table, and stamped with the
# version and commit that `version` prints and kc_event_emitter_build_info
# carries.
#
# Settings: VERSION [scripts/version.sh], COMMIT [git rev-parse HEAD, or
# empty outside a checkout], GOOS and GOARCH [this machine's] to build for
# another platform, GO [go].
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[ $# = 1 ] || { echo "usage: scripts/build.sh OUTDIR" >&2; exit 2; }
out=$(realpath -m "$1")
cd "$ROOT"

version=${VERSION:-$(bash scripts/version.sh)}
commit=${COMMIT-$(git rev-parse HEAD 2>/dev/null || true)}
case $version$commit in
*[[:space:]]*) die "VERSION \"$version\" or COMMIT \"$commit\" holds a space" ;;
esac
pkg=github.com/kc-event-emitter/kc-event-emitter/emitter/buildinfo
ldflags="-s -w -X $pkg.Version=$version -X $pkg.Commit=$commit"
mkdir -p "$out"
for b in kc-event-emitter kc-event-receiver; do
	CGO_ENABLED=0 "${GO:-go}" build -trimpath -ldflags "$ldflags" -o "$out/$b" "./cmd/$b"
done
log "built $out/kc-event-emitter and $out/kc-event-receiver $version ($(${GO:-go} env GOOS)/$(${GO:-go} env GOARCH))"
