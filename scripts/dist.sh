#!/usr/bin/env bash
# scripts/dist.sh: `make dist`, the release archives. For each architecture it
# writes DIST_DIR/kc-event-emitter-<version>-linux-<arch>.tar.gz, and then
# DIST_DIR/SHA256SUMS (check with `sha256sum -c SHA256SUMS`). Each archive
# holds one folder of the same name with what a server needs, no Go
# toolchain: bin/ (both commands, static), install.sh, deploy/systemd/,
# README.md, CHANGELOG.md and LICENSE. The archives are reproducible: the
# same commit and Go version give the same bytes (entries sorted, owned by
# root, dated at the commit). Archives of earlier runs in DIST_DIR are
# removed first, so SHA256SUMS lists exactly what is there.
#
# Settings: VERSION [scripts/version.sh], COMMIT [git rev-parse HEAD],
# DIST_DIR [dist], DIST_ARCHES [amd64 arm64].
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

dist=$(realpath -m "${DIST_DIR:-dist}")
read -r -a arches <<<"${DIST_ARCHES:-amd64 arm64}"
[ ${#arches[@]} -gt 0 ] || die "DIST_ARCHES is empty"
VERSION=${VERSION:-$(bash scripts/version.sh)}
COMMIT=${COMMIT-$(git rev-parse HEAD 2>/dev/null || true)}
export VERSION COMMIT
case $VERSION in
*/* | *' '* | '') die "VERSION is \"$VERSION\": it names the archives, so no spaces or slashes" ;;
esac
# Archive entries are dated at the commit (SOURCE_DATE_EPOCH overrides).
epoch=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

mkdir -p "$dist"
rm -f "$dist"/kc-event-emitter-*.tar.gz "$dist/SHA256SUMS"
stage=$(mktemp -d "$dist/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT

archives=()
for arch in "${arches[@]}"; do
	name=kc-event-emitter-$VERSION-linux-$arch
	d=$stage/$name
	GOOS=linux GOARCH=$arch bash scripts/build.sh "$d/bin"
	install -m 0755 install.sh "$d/"
	install -m 0644 README.md CHANGELOG.md LICENSE "$d/"
	install -d -m 0755 "$d/deploy/systemd"
	install -m 0644 deploy/systemd/kc-event-emitter.service deploy/systemd/kc-event-emitter.env "$d/deploy/systemd/"
	chmod -R u+rwX,go=rX "$d" # whatever the umask: folders 0755, files 0644, programs 0755
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
		-C "$stage" -cf - "$name" | gzip -9 -n >"$dist/$name.tar.gz.tmp"
	mv "$dist/$name.tar.gz.tmp" "$dist/$name.tar.gz"
	archives+=("$name.tar.gz")
done
(cd "$dist" && sha256sum "${archives[@]}" >SHA256SUMS.tmp && mv SHA256SUMS.tmp SHA256SUMS)
log "wrote $(for a in "${archives[@]}"; do printf '%s ' "$dist/$a"; done)and $dist/SHA256SUMS"
