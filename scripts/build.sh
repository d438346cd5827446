#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Configure and build wcache out of tree: build/ (RelWithDebInfo) and, with
# --asan, build-asan/ (RelWithDebInfo + AddressSanitizer + UBSan).
#
# Usage: scripts/build.sh [--asan | --asan-only] [--no-deps] [-j N]
#   --asan       also build build-asan/ (-DWC_SANITIZE=address,undefined)
#   --asan-only  build only build-asan/
#   --no-deps    do not run scripts/install-deps.sh first
#   -j N         parallel build jobs (default: nproc)
# Environment: WC_BUILD_DIR (default build), WC_ASAN_BUILD_DIR (default build-asan),
#   WC_CMAKE_ARGS (extra cmake configure arguments, split on spaces).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

plain=1
asan=0
deps=1
jobs=$(nproc 2>/dev/null || echo 2)

while (($#)); do
	case "$1" in
	--asan) asan=1 ;;
	--asan-only)
		asan=1
		plain=0
		;;
	--no-deps) deps=0 ;;
	-j)
		[[ $# -ge 2 ]] || { echo "build: -j needs a number" >&2; exit 2; }
		jobs=$2
		shift
		;;
	-j*) jobs=${1#-j} ;;
	-h | --help)
		sed -n '3,12s/^# \{0,1\}//p' "$0"
		exit 0
		;;
	*)
		echo "build: unknown argument '$1' (try --help)" >&2
		exit 2
		;;
	esac
	shift
done
if ! [[ "$jobs" =~ ^[1-9][0-9]*$ ]]; then
	echo "build: -j wants a positive number, got '$jobs'" >&2
	exit 2
fi

read -r -a extra <<<"${WC_CMAKE_ARGS:-}"

if ((deps)); then
	"$root/scripts/install-deps.sh"
fi

# configure_and_build DIR [cmake args...]
configure_and_build() {
	local dir=$1
	shift
	echo "build: configuring $dir"
	cmake -S "$root" -B "$root/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" "${extra[@]}"
	echo "build: building $dir (-j$jobs)"
	cmake --build "$root/$dir" -j "$jobs"
}

if ((plain)); then
	configure_and_build "${WC_BUILD_DIR:-build}" -DWC_SANITIZE=
fi
if ((asan)); then
	configure_and_build "${WC_ASAN_BUILD_DIR:-build-asan}" -DWC_SANITIZE=address,undefined
fi
echo "build: ok"
