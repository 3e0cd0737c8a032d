# Shared helpers for the scripts under scripts/: sourced, never run.
# Everything they print goes to stderr, so a script's stdout stays its result.

# ROOT is the repository root, CACHE the ignored folder for downloads and
# run state (KCEE_CACHE moves it).
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${KCEE_CACHE:-$ROOT/.cache}

# log prints its arguments on stderr, prefixed with the script's name.
log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

# die logs its arguments and exits 1.
die() { log "$@"; exit 1; }

# as_root runs a command as root, through sudo when the caller is not root.
as_root() {
	if [ "$(id -u)" = 0 ]; then "$@"
	elif command -v sudo >/dev/null; then sudo "$@"
	else die "need root to run: $*"
	fi
}

# pkg_installed tells whether the Debian package $1 is installed.
pkg_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

# apt_install installs the Debian packages not installed yet, without
# questions; it runs apt-get update once, and only when something is missing.
apt_install() {
	local missing=() p
	for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
	[ ${#missing[@]} = 0 ] && return 0
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	as_root apt-get update -qq >&2 || die "apt-get update failed"
	as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
		die "apt-get install ${missing[*]} failed"
}

# need_cmd installs package $2 when command $1 is not found.
need_cmd() { command -v "$1" >/dev/null || apt_install "$2"; }

# port_in_use tells whether something answers on 127.0.0.1:$1.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port prints a loopback TCP port nobody listens on, from a random
# start in 20000..59999 so that parallel callers rarely pick the same one.
free_port() {
	local p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000)) i
	for ((i = 0; i < 200; i++)); do
		port_in_use "$p" || { echo "$p"; return 0; }
		p=$((p + 1)); [ "$p" -ge 60000 ] && p=20000
	done
	die "no free port found"
}

# traversable_for makes every directory above $2 searchable by user $1
# (o+x), so that a server running as that user can reach its files when the
# repository lies under /root or another private folder.
traversable_for() {
	local user=$1 dir
	dir=$(dirname "$2")
	while [ "$dir" != / ]; do
		if ! runuser -u "$user" -- test -x "$dir" 2>/dev/null; then
			log "chmod o+x $dir (so that $user can reach $2)"
			chmod o+x "$dir"
		fi
		dir=$(dirname "$dir")
	done
}
