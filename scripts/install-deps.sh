#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install the Debian packages needed to build and test wcache. Only missing
# packages are installed, so on a ready machine this is a fast no-op.
#
# Usage: scripts/install-deps.sh [--check]
#   --check         only list missing packages; exit 1 if any are missing
#   WC_SKIP_DEPS=1  skip entirely (machines without apt or network)
set -euo pipefail

PACKAGES=(
	build-essential cmake pkg-config libcmocka-dev
	nbdkit nbdkit-plugin-dev libnbd-dev libnbd-bin python3-libnbd
	liburing-dev libfuse3-dev fuse3
	# pmem mode's cache device (src/dev/pmem.c)
	libpmem2-dev
	fio qemu-utils e2fsprogs zstd jq python3 gnuplot-nox
	# clang compile step of scripts/test.sh; AFL++ for scripts/fuzz.sh and the fuzz label
	clang afl++
	# kernel compatibility test (tests/qemu/vm.sh installs the big ones,
	# qemu-system-x86, and busybox-static when no busybox is installed)
	dmsetup kmod cpio
	# Ceph RBD origin (src/dev/rbd.c) and the one-node cluster of the ceph
	# tests (tests/ceph/micro-ceph.sh): about 80 packages, 35 s
	librbd-dev ceph-mon ceph-osd ceph-mgr ceph-common
	# operations (issue 17): HTTP metrics endpoint, promtool and the scrape
	# test's server, 'wcache top' in tmux, unit checks, completion
	libmicrohttpd-dev prometheus curl tmux systemd bash-completion
)

check_only=0
case "${1:-}" in
"") ;;
--check) check_only=1 ;;
-h | --help)
	sed -n '3,8s/^# \{0,1\}//p' "$0"
	exit 0
	;;
*)
	echo "install-deps: unknown argument '$1' (try --help)" >&2
	exit 2
	;;
esac

if [[ "${WC_SKIP_DEPS:-0}" == 1 ]]; then
	echo "install-deps: skipped (WC_SKIP_DEPS=1)"
	exit 0
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "install-deps: dpkg-query not found (not Debian?); install these by hand:" >&2
	echo "  ${PACKAGES[*]}" >&2
	exit 0
fi

# One dpkg-query for all packages; unknown ones are simply absent from the output.
declare -A installed=()
while read -r name status; do
	[[ "$status" == installed ]] && installed[$name]=1
done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null || true)

missing=()
for p in "${PACKAGES[@]}"; do
	[[ -n "${installed[$p]:-}" ]] || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
	echo "install-deps: all ${#PACKAGES[@]} packages present"
	exit 0
fi

echo "install-deps: missing: ${missing[*]}"
if ((check_only)); then
	exit 1
fi

sudo=()
if ((EUID != 0)); then
	if ! command -v sudo >/dev/null 2>&1; then
		echo "install-deps: not root and no sudo; install the packages above by hand" >&2
		exit 1
	fi
	sudo=(sudo)
fi

echo "install-deps: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: done"
