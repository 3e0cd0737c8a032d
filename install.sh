#!/usr/bin/env bash
# install.sh: installs kc-event-emitter and kc-event-receiver.
#
#   ./install.sh [--prefix DIR] [--no-systemd]
#
# Run it from an unpacked release archive
# (kc-event-emitter-<version>-linux-<arch>.tar.gz, no Go needed) or from a
# checkout. Copies bin/kc-event-emitter and bin/kc-event-receiver (in a
# checkout without them, built first with scripts/build.sh, which needs Go)
# to PREFIX/bin (PREFIX: /usr/local). As root, for a standalone
# emitter beside Keycloak, it also installs the systemd unit to
# /etc/systemd/system/kc-event-emitter.service and the settings template to
# the EnvironmentFile the unit names (/etc/kc-event-emitter/...env, mode
# 0600, never overwritten). With --prefix, those two go under PREFIX/etc
# instead and the unit is rewritten to point at PREFIX. --no-systemd skips them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
self=$PWD/$(basename "${BASH_SOURCE[0]}")

usage() { sed -n '2,/^set -euo/p' "$self" | sed '$d; s/^# \{0,1\}//'; }

prefix=/usr/local
custom_prefix=0
systemd=1
while [ $# -gt 0 ]; do
	case $1 in
	--prefix) [ $# -ge 2 ] || { echo "install.sh: --prefix needs a folder" >&2; exit 2; }
		prefix=$2; custom_prefix=1; shift 2 ;;
	--prefix=*) prefix=${1#--prefix=}; custom_prefix=1; shift ;;
	--no-systemd) systemd=0; shift ;;
	-h | --help) usage; exit 0 ;;
	*) echo "install.sh: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
done
[ -n "$prefix" ] || { echo "install.sh: empty --prefix" >&2; exit 2; }
prefix=$(realpath -m "$prefix")

if [ ! -x bin/kc-event-emitter ] || [ ! -x bin/kc-event-receiver ]; then
	if [ ! -f scripts/build.sh ]; then
		echo "install.sh: bin/kc-event-emitter or bin/kc-event-receiver is missing from $PWD: unpack the release archive again" >&2
		exit 1
	fi
	if ! command -v go >/dev/null; then
		echo "install.sh: bin/ holds no binaries and there is no go to build them: install from a release archive (kc-event-emitter-<version>-linux-<arch>.tar.gz, made by make dist), or install Go, or run make build on a machine with Go first" >&2
		exit 1
	fi
	echo "building bin/kc-event-emitter and bin/kc-event-receiver"
	bash scripts/build.sh bin
fi
# A binary that does not start here (an archive for another architecture)
# is not installed.
for b in kc-event-emitter kc-event-receiver; do
	if ! v=$("bin/$b" version 2>&1); then
		echo "install.sh: bin/$b does not run on this machine ($(uname -s) $(uname -m)): is the archive for another architecture?" >&2
		printf '%s\n' "$v" >&2
		exit 1
	fi
done
install -d "$prefix/bin"
install -m 0755 bin/kc-event-emitter bin/kc-event-receiver "$prefix/bin/"
version=$(bin/kc-event-emitter version | head -n 1)
echo "installed $prefix/bin/kc-event-emitter and $prefix/bin/kc-event-receiver (${version#kc-event-emitter })"

if [ "$systemd" = 0 ] || { [ "$(id -u)" != 0 ] && [ "$custom_prefix" = 0 ]; }; then
	[ "$systemd" = 1 ] && echo "not root: the systemd unit and its settings file were not installed"
	exit 0
fi

unit_src=deploy/systemd/kc-event-emitter.service
env_src=deploy/systemd/kc-event-emitter.env
etc=/etc
[ "$custom_prefix" = 1 ] && etc=$prefix/etc
# The settings file is where the unit's EnvironmentFile says, under etc.
env_path=$(sed -n 's/^EnvironmentFile=-\{0,1\}//p' "$unit_src" | head -n 1)
[ -n "$env_path" ] || env_path=/etc/kc-event-emitter/kc-event-emitter.env
env_dest=$etc/${env_path#/etc/}

install -d "$etc/systemd/system"
sed -e "s|^ExecStart=/usr/local/bin/|ExecStart=$prefix/bin/|" \
	-e "s|^EnvironmentFile=\(-\{0,1\}\)$env_path|EnvironmentFile=\1$env_dest|" \
	"$unit_src" >"$etc/systemd/system/kc-event-emitter.service.tmp"
chmod 0644 "$etc/systemd/system/kc-event-emitter.service.tmp"
mv "$etc/systemd/system/kc-event-emitter.service.tmp" "$etc/systemd/system/kc-event-emitter.service"
echo "installed $etc/systemd/system/kc-event-emitter.service"

install -d -m 0755 "$(dirname "$env_dest")"
if [ -e "$env_dest" ]; then
	echo "kept the existing $env_dest"
else
	install -m 0600 "$env_src" "$env_dest"
	echo "installed $env_dest (mode 0600): set the database URL, the target and the secrets in it"
fi
if [ "$custom_prefix" = 0 ]; then
	echo "then: systemctl daemon-reload && systemctl enable --now kc-event-emitter"
fi
