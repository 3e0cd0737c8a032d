#!/usr/bin/env bash
# scripts/version.sh: prints the version that make build, make dist and the
# image are stamped with: `git describe --tags --always --dirty`.
#
#   on a tag                v0.1.0
#   3 commits after it      v0.1.0-3-g1cc7cee
#   before the first tag    v0.0.0-<commits>-g<sha>, e.g. v0.0.0-135-g1cc7cee
#                           (a semver pre-release of v0.0.0 that sorts by the
#                           number of commits)
#   tracked files changed   the same with -dirty at the end
#   no git checkout         devel
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! d=$(git describe --tags --always --dirty 2>/dev/null); then
	echo devel
	exit 0
fi
if git describe --tags --abbrev=0 >/dev/null 2>&1; then
	echo "$d"
else
	# No tag: --always gave the abbreviated commit (and -dirty).
	echo "v0.0.0-$(git rev-list --count HEAD)-g$d"
fi
