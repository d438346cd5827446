#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Boot Debian's stock kernel (linux-image-amd64, 6.1) in qemu with a small
# initramfs holding the real dm-writecache target, dmsetup and GNU dd, and run
# one shell script inside it. Owns: host packages, the kernel, the initramfs,
# the accelerator choice and the VM itself; knows nothing of caches.
#
# Usage:
#   vm.sh prepare                 install what is missing, fetch the kernel, build
#                                 the initramfs; exit 77 (with the reason) if impossible
#   vm.sh run [--timeout S] [--mem MB] --disk A.img [--disk B.img ...] --script JOB.sh --dir DIR
#   vm.sh info                    print "kernel <version> accel <kvm|tcg>"
#
# run: disks are raw virtio-blk (/dev/vda, /dev/vdb, ... in order). DIR is shared
# read-write over 9p; JOB.sh is copied into it and runs there (busybox sh, root,
# cwd = DIR, $IO = DIR). Exit code = the script's, 124 timeout, 125 VM died.
# The console goes to DIR/console.log (and, with WC_KERNEL_VERBOSE=1, stdout).
#
# Environment:
#   WC_KERNEL_BUILD    writable dir for the kernel, initramfs and probe result
#                      (default: $TMPDIR/wcache-kernel); everything here is a cache
#   WC_KERNEL_ACCEL    auto (default; KVM only if it really boots a kernel), kvm, tcg
#   WC_KERNEL_NO_INSTALL=1   never call apt-get: skip if something is missing
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
B=${WC_KERNEL_BUILD:-${TMPDIR:-/tmp}/wcache-kernel}
KPKG_META=linux-image-amd64
# Kernel modules the guest needs (each is loaded after its dependencies, from modules.dep).
MODS="virtio_pci virtio_blk 9pnet_virtio 9p dm_mod dm_bufio dm_writecache"

TEST_NAME=vm.sh
# say, skip
# shellcheck source=../lib/functions.sh
source "$HERE/../lib/functions.sh"

# ---------------- host packages ----------------

pkg_installed() {
	[[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

# apt_install PKG...: install the missing ones (apt-get update only if needed); 1 on failure.
apt_install() {
	local missing=() p
	for p in "$@"; do
		pkg_installed "$p" || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	[[ "${WC_KERNEL_NO_INSTALL:-0}" != 1 ]] || { say "missing: ${missing[*]}"; return 1; }
	if ((EUID != 0)) || ! command -v apt-get >/dev/null; then
		say "missing: ${missing[*]} (not root, or no apt-get)"
		return 1
	fi
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends "${missing[@]}" >"$B/apt.log" 2>&1 && return 0
	apt-get update -q >>"$B/apt.log" 2>&1 || true
	apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$B/apt.log" 2>&1 || {
		tail -5 "$B/apt.log" >&2
		return 1
	}
}

need_tools() {
	command -v dpkg-query >/dev/null || skip "not a Debian system (no dpkg-query)"
	# Small ones normally come from scripts/install-deps.sh; qemu only from here.
	local want=(qemu-system-x86 dmsetup kmod cpio)
	command -v busybox >/dev/null || want+=(busybox-static)
	apt_install "${want[@]}" || skip "cannot install ${want[*]}"
	command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 not available"
}

# ---------------- the kernel ----------------
# Either linux-image-amd64 is installed (use /boot and /lib/modules), or the
# versioned package it depends on is downloaded with apt-get and unpacked into
# $B/kernel/ (the host's /boot, initramfs hooks and boot loader stay untouched).
# Sets KVER, VMLINUZ, MODDIR (MODDIR only while the initramfs must be built).

kernel_locate() {
	local dep deb d
	if pkg_installed "$KPKG_META"; then
		dep=$(dpkg-query -W -f='${Depends}' "$KPKG_META" | grep -o 'linux-image-[0-9][^ ,]*' | head -1)
		KVER=${dep#linux-image-}
		VMLINUZ=/boot/vmlinuz-$KVER MODDIR=/lib/modules/$KVER
		[[ -f "$VMLINUZ" && -d "$MODDIR" ]] && return 0
	fi
	dep=$(apt-cache depends "$KPKG_META" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -1)
	if [[ -z "$dep" && "${WC_KERNEL_NO_INSTALL:-0}" != 1 && $EUID == 0 ]]; then
		apt-get update -q >"$B/apt.log" 2>&1 || true
		dep=$(apt-cache depends "$KPKG_META" 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -1)
	fi
	[[ -n "$dep" ]] || return 1
	KVER=${dep#linux-image-}
	d=$B/kernel/$KVER
	VMLINUZ=$d/vmlinuz MODDIR=$d/root/lib/modules/$KVER
	[[ -f "$VMLINUZ" ]] && return 0
	[[ "${WC_KERNEL_NO_INSTALL:-0}" != 1 ]] || return 1
	say "fetching $dep"
	rm -rf "$d" && mkdir -p "$d/root"
	(cd "$d" && apt-get download -q "$dep" >"$d/download.log" 2>&1) || {
		tail -3 "$d/download.log" >&2
		return 1
	}
	deb=$(ls "$d"/"$dep"_*.deb)
	dpkg-deb -x "$deb" "$d/root"
	rm -f "$deb"
	cp "$d/root/boot/vmlinuz-$KVER" "$d/vmlinuz.tmp" && mv "$d/vmlinuz.tmp" "$VMLINUZ"
}

# ---------------- initramfs ----------------

initramfs_path() { echo "$B/initramfs-$KVER.img"; }

initramfs_stale() {
	local img
	img=$(initramfs_path)
	[[ ! -f "$img" || "$HERE/guest-init.sh" -nt "$img" || "${BASH_SOURCE[0]}" -nt "$img" ]]
}

# put_bin FILE: copy a program and the shared libraries it needs into $ST.
put_bin() {
	local f=$1 lib
	mkdir -p "$ST$(dirname "$f")"
	rm -f "$ST$f"	# may be a busybox applet link: never write through it
	cp -L "$f" "$ST$f"
	for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*'); do
		[[ -e "$ST$lib" ]] || { mkdir -p "$ST$(dirname "$lib")"; cp -L "$lib" "$ST$lib"; }
	done
}

# add_mod REL: append module REL (a modules.dep path) to MOD_ORDER after
# everything it depends on; MOD_SEEN holds the ones already placed.
add_mod() {
	local r=$1 dep
	[[ "$MOD_SEEN" == *" $r "* ]] && return 0
	MOD_SEEN+="$r "
	while read -r dep; do
		add_mod "$dep"
	done < <(awk -v m="$r:" '$1 == m { for (i = 2; i <= NF; i++) print $i }' "$MODDIR/modules.dep")
	MOD_ORDER+=("$r")
}

initramfs_build() {
	local img m rel
	MOD_ORDER=() MOD_SEEN=" "
	img=$(initramfs_path)
	[[ -d "$MODDIR/kernel" ]] || { say "no modules in $MODDIR"; return 1; }
	[[ -f "$MODDIR/modules.dep" ]] || depmod -b "${MODDIR%/lib/modules/*}" "$KVER"
	ST=$(mktemp -d "${TMPDIR:-/tmp}/wc-initramfs.XXXXXX")
	mkdir -p "$ST"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,io,etc,lib/modules}
	put_bin "$(command -v busybox)"
	[[ "$(command -v busybox)" == /bin/busybox ]] || mv "$ST$(command -v busybox)" "$ST/bin/busybox"
	for m in $(/bin/busybox --list 2>/dev/null || "$ST/bin/busybox" --list); do
		[[ -e "$ST/bin/$m" ]] || ln -s busybox "$ST/bin/$m"
	done
	put_bin "$(command -v dmsetup)"
	put_bin /bin/dd		# busybox dd drops O_DIRECT on unaligned buffers; GNU dd does not
	for m in $MODS; do
		rel=$(awk -F: -v n="$m" '{ b = $1; sub(/.*\//, "", b); sub(/\.ko(\.xz|\.zst|\.gz)?$/, "", b);
			gsub(/-/, "_", b); if (b == n) { print $1; exit } }' "$MODDIR/modules.dep")
		if [[ -n "$rel" ]]; then
			add_mod "$rel"
		elif ! grep -q "/${m//_/[-_]}\.ko" "$MODDIR/modules.builtin" 2>/dev/null; then
			say "module $m is neither in $MODDIR nor built in"
			rm -rf "$ST"
			return 1
		fi
	done
	for rel in "${MOD_ORDER[@]}"; do
		m=$(basename "$rel")
		m=${m%.xz} m=${m%.zst} m=${m%.gz}
		case $rel in
		*.xz) xz -dc "$MODDIR/$rel" ;;
		*.zst) zstd -qdc "$MODDIR/$rel" ;;
		*.gz) gzip -dc "$MODDIR/$rel" ;;
		*) cat "$MODDIR/$rel" ;;
		esac >"$ST/lib/modules/$m"
		echo "$m" >>"$ST/etc/modules"	# insmod order: no modprobe/depmod in the guest
	done
	cp "$HERE/guest-init.sh" "$ST/init"
	chmod 755 "$ST/init"
	echo "$KVER" >"$ST/etc/kver"
	# Uncompressed: unpacking is faster than decompressing under TCG, and it is ~10 MB.
	(cd "$ST" && find . -print0 | cpio --null -o -H newc --quiet) >"$img.tmp"
	mv "$img.tmp" "$img"
	rm -rf "$ST"
	say "built $img ($(du -h "$img" | cut -f1), ${#MOD_ORDER[@]} modules)"
}

# ---------------- accelerator ----------------
# KVM only if /dev/kvm really runs a stock kernel: some hosts (e.g. PVM nested
# hypervisors) expose a /dev/kvm on which the guest spins without output. The
# probe boots the kernel without an initramfs and waits for its "VFS: Unable to
# mount root" panic; the answer is cached per guest and host kernel.

accel() {
	local probe out
	case ${WC_KERNEL_ACCEL:-auto} in
	kvm | tcg) echo "$WC_KERNEL_ACCEL"; return ;;
	esac
	[[ -r /dev/kvm && -w /dev/kvm ]] || { echo tcg; return; }
	probe=$B/kvm-probe-$KVER-$(uname -r)
	if [[ ! -f "$probe" ]]; then
		out=$(timeout -k 2 10 qemu-system-x86_64 -accel kvm -cpu host -M q35 -m 256 -nodefaults \
			-display none -no-reboot -serial stdio -kernel "$VMLINUZ" \
			-append "console=ttyS0 panic=-1" </dev/null 2>&1 || true)
		case $out in *"Kernel panic"*) echo kvm ;; *) echo tcg ;; esac >"$probe"
	fi
	cat "$probe"
}

prepare() {
	mkdir -p "$B"
	need_tools
	kernel_locate || skip "cannot install or download $KPKG_META (no apt repository reachable?)"
	if initramfs_stale; then
		if [[ ! -d "$MODDIR/kernel" ]]; then
			# unpacked tree already pruned: unpack again
			rm -f "$VMLINUZ"
			kernel_locate || skip "cannot download $KPKG_META again"
		fi
		initramfs_build || exit 1
	fi
	# Keep only vmlinuz + initramfs of a downloaded kernel (the tree is ~400 MB).
	[[ "$MODDIR" != "$B"/* ]] || rm -rf "${MODDIR%/lib/modules/*}"
	accel >/dev/null
}

run() {
	local timeout=600 mem=1024 script="" dir="" disks=() a qpid rc start cpu
	while (($#)); do
		case $1 in
		--timeout) timeout=$2; shift ;;
		--mem) mem=$2; shift ;;
		--disk) disks+=(-drive "file=$(realpath "$2"),format=raw,if=virtio,cache=unsafe,discard=unmap"); shift ;;
		--script) script=$2; shift ;;
		--dir) dir=$2; shift ;;
		*) say "run: unknown argument $1"; exit 2 ;;
		esac
		shift
	done
	[[ -f "$script" && -n "$dir" ]] || { say "run: --script and --dir are required"; exit 2; }
	kernel_locate || { say "no kernel: run 'vm.sh prepare' first"; exit 2; }
	[[ -f "$(initramfs_path)" ]] || { say "no initramfs: run 'vm.sh prepare' first"; exit 2; }
	mkdir -p "$dir"
	dir=$(realpath "$dir")
	cp "$script" "$dir/job.sh"
	a=$(accel)
	if [[ $a == kvm ]]; then cpu=(-accel kvm -cpu host); else cpu=(-accel "tcg,thread=multi" -cpu max); fi
	: >"$dir/console.log"
	start=$(date +%s%N)
	# cache=unsafe: the guest's flushes are not passed to the host disk. Nothing
	# here depends on host durability; a guest "power cut" is poweroff -f, and what
	# the guest wrote before it is in the image files either way.
	timeout -k 5 "$timeout" qemu-system-x86_64 "${cpu[@]}" -M q35 -smp 2 -m "$mem" -nodefaults \
		-display none -no-reboot -kernel "$VMLINUZ" -initrd "$(initramfs_path)" \
		-serial "file:$dir/console.log" \
		-append "console=ttyS0 quiet loglevel=4 panic=-1 wc.disks=$((${#disks[@]} / 2))" \
		"${disks[@]}" \
		-fsdev "local,id=io,path=$dir,security_model=none" -device virtio-9p-pci,fsdev=io,mount_tag=io \
		</dev/null &
	qpid=$!
	if [[ "${WC_KERNEL_VERBOSE:-0}" == 1 ]]; then
		tail -n +1 -f --pid=$qpid "$dir/console.log" 2>/dev/null || true
	fi
	set +e
	wait $qpid
	rc=$?
	set -e
	say "$a boot: qemu rc $rc after $((($(date +%s%N) - start) / 1000000)) ms"
	a=$(sed -n 's/^=== WC-EXIT \([0-9]*\).*/\1/p' "$dir/console.log" | tail -1)
	if [[ -n "$a" ]]; then
		exit "$a"
	elif ((rc == 124 || rc == 137)); then
		say "timeout after $timeout s"
		exit 124
	fi
	exit 125
}

case ${1:-} in
prepare) prepare ;;
run) shift; mkdir -p "$B"; run "$@" ;;
info)
	mkdir -p "$B"
	kernel_locate || exit 1
	echo "kernel $KVER accel $(accel)"
	;;
*) sed -n '3,22s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
