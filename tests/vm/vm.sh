#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Boot Debian's stock kernel in qemu with a small initramfs that can put ext4 on
# an NBD export, and run one shell script inside it. Owns: host packages, the
# kernel, the initramfs, the accelerator choice and the qemu command line; knows
# nothing of wcache (the tests in this folder start the servers).
#
# Usage:
#   vm.sh prepare     install what is missing, fetch the kernel, build the
#                     initramfs; exit 77 (with the reason) if that is impossible
#   vm.sh run [--timeout S] [--mem MB] [--env K=V ...] DISK... --script JOB.sh --dir DIR
#     DISK is one of (each becomes the next /dev/vdX, in order, except --net-nbd):
#       --disk FILE         raw image file, virtio-blk (--disk-ro: read-only)
#       --nbd SOCK          NBD export on a unix socket through qemu's NBD client
#                           (virtio-blk, volatile write cache: guest flushes
#                           arrive as NBD_CMD_FLUSH)
#       --nbd-wt SOCK       the same in write-through mode: the guest sees no
#                           write cache and qemu sets NBD FUA on every write
#       --reconnect N       for the --nbd/--nbd-wt disks after it: qemu
#                           reconnects for N s after the server went away and
#                           retries the requests in flight
#       --net-nbd SOCK      no disk: the guest reaches SOCK over qemu user
#                           networking (for the guest's nbd driver) as TCP
#                           10.0.2.100:10809 (one connection, made when qemu
#                           starts) and 10.0.2.100:10810 (any number, each to
#                           the server listening at that moment)
#   vm.sh info        print "kernel <version> accel <kvm|tcg>"
#
# run: DIR is shared read-write over 9p and mounted at /io in the guest; JOB.sh
# and guest-lib.sh are copied there and JOB.sh runs with cwd /io (busybox sh,
# root). --env values are exported to it. The console goes to DIR/console.log.
# Exit code = the script's; 124 timeout, 125 the VM died without an exit line.
#
# Environment:
#   WC_VM_BUILD        writable dir for the kernel, initramfs and KVM probe
#                      (default: $TMPDIR/wcache-vm); everything there is a cache
#   WC_VM_ACCEL        auto (default: KVM only if it really boots a kernel), kvm, tcg
#   WC_VM_NO_INSTALL=1 never call apt-get: skip if something is missing
#   WC_VM_VERBOSE=1    copy the console to stdout while the VM runs
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
B=${WC_VM_BUILD:-${TMPDIR:-/tmp}/wcache-vm}
KPKG_META=linux-image-amd64
# Modules for the guest; their dependencies are added from modules.dep.
MODS="virtio_pci virtio_blk virtio_net 9pnet_virtio 9p nbd crc32c_generic ext4"
# Host packages: qemu and the programs copied into the initramfs.
PKGS=(qemu-system-x86 busybox-static e2fsprogs fio nbd-client netcat-openbsd kmod cpio xz-utils zstd)

TEST_NAME=vm.sh
# say, skip
# shellcheck source=../lib/functions.sh
source "$HERE/../lib/functions.sh"

# ---------------- host packages ----------------

pkg_installed() {
	[[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

# apt_install PKG...: install the missing ones (apt-get update only when the
# first try fails); 1 on failure.
apt_install() {
	local missing=() p
	for p in "$@"; do
		pkg_installed "$p" || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	if [[ "${WC_VM_NO_INSTALL:-0}" == 1 ]] || ((EUID != 0)) || ! command -v apt-get >/dev/null; then
		say "missing: ${missing[*]} (not installing: WC_VM_NO_INSTALL=1, not root or no apt-get)"
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
	command -v dpkg-query >/dev/null || skip "not a Debian system (no dpkg-query): install qemu-system-x86 and a kernel by hand"
	apt_install "${PKGS[@]}" || skip "cannot install ${PKGS[*]}"
	local t
	for t in qemu-system-x86_64 busybox /usr/sbin/mke2fs /usr/sbin/e2fsck /usr/sbin/nbd-client fio cpio nc; do
		command -v "$t" >/dev/null || skip "$t is not available after installing ${PKGS[*]}"
	done
}

# ---------------- the kernel ----------------
# Either linux-image-amd64 is installed (use /boot and /lib/modules), or the
# versioned package it depends on is fetched with apt-get download and unpacked
# into $B/kernel/ (the host's /boot and boot loader stay untouched).
# Sets KVER, VMLINUZ, MODDIR.

kernel_dep() {
	apt-cache depends "$KPKG_META" 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -1
}

kernel_locate() {
	local dep d deb
	if pkg_installed "$KPKG_META"; then
		dep=$(dpkg-query -W -f='${Depends}' "$KPKG_META" | grep -o 'linux-image-[0-9][^ ,]*' | head -1)
		KVER=${dep#linux-image-}
		VMLINUZ=/boot/vmlinuz-$KVER MODDIR=/lib/modules/$KVER
		[[ -f "$VMLINUZ" && -d "$MODDIR" ]] && return 0
	fi
	# A kernel fetched earlier is used as it is (no apt-cache look-up per run).
	d=$(ls -d "$B"/kernel/*/ 2>/dev/null | sort -V | tail -1)
	if [[ -n "$d" && -f "$d/vmlinuz" && -f "$d/kver" ]]; then
		KVER=$(cat "$d/kver") VMLINUZ=$d/vmlinuz MODDIR=$d/root/lib/modules/$KVER
		return 0
	fi
	dep=$(kernel_dep)
	if [[ -z "$dep" && "${WC_VM_NO_INSTALL:-0}" != 1 && $EUID == 0 ]]; then
		apt-get update -q >"$B/apt.log" 2>&1 || true
		dep=$(kernel_dep)
	fi
	[[ -n "$dep" ]] || return 1
	KVER=${dep#linux-image-}
	d=$B/kernel/$KVER
	VMLINUZ=$d/vmlinuz MODDIR=$d/root/lib/modules/$KVER
	[[ "${WC_VM_NO_INSTALL:-0}" != 1 ]] || return 1
	say "fetching $dep"
	rm -rf "$d" && mkdir -p "$d/root"
	(cd "$d" && apt-get download -q "$dep" >"$d/download.log" 2>&1) || {
		tail -3 "$d/download.log" >&2
		return 1
	}
	deb=$(ls "$d"/"$dep"_*.deb)
	dpkg-deb -x "$deb" "$d/root"
	rm -f "$deb"
	cp "$d/root/boot/vmlinuz-$KVER" "$d/vmlinuz.tmp"
	echo "$KVER" >"$d/kver"
	mv "$d/vmlinuz.tmp" "$VMLINUZ"
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

initramfs_build() {
	local img m rel order=() seen=" " bb
	img=$(initramfs_path)
	[[ -d "$MODDIR/kernel" ]] || { say "no modules in $MODDIR"; return 1; }
	[[ -f "$MODDIR/modules.dep" ]] || depmod -b "${MODDIR%/lib/modules/*}" "$KVER"
	ST=$(mktemp -d "${TMPDIR:-/tmp}/wc-vm-initramfs.XXXXXX")
	mkdir -p "$ST"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,io,mnt,etc,lib/modules}
	bb=$(command -v busybox)
	cp -L "$bb" "$ST/bin/busybox"
	for m in $("$ST/bin/busybox" --list); do
		[[ -e "$ST/bin/$m" ]] || ln -s busybox "$ST/bin/$m"
	done
	# Full paths in the guest scripts: busybox sh prefers its own applets.
	put_bin /bin/dd		# GNU dd: oflag=direct,sync and conv=fsync as documented
	put_bin "$(command -v fio)"
	for m in /usr/sbin/mke2fs /usr/sbin/e2fsck /usr/sbin/nbd-client; do
		put_bin "$m"
	done
	cp /etc/mke2fs.conf "$ST/etc/" 2>/dev/null || true
	# Module closure in load order: each module after everything it depends on.
	add_mod() {
		local r=$1 dep
		[[ "$seen" == *" $r "* ]] && return 0
		seen+="$r "
		for dep in $(awk -v m="$r:" '$1 == m { for (i = 2; i <= NF; i++) print $i }' "$MODDIR/modules.dep"); do
			add_mod "$dep"
		done
		order+=("$r")
	}
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
	for rel in "${order[@]}"; do
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
	# Uncompressed: unpacking is faster than decompressing under TCG.
	(cd "$ST" && find . -print0 | cpio --null -o -H newc --quiet) >"$img.tmp"
	mv "$img.tmp" "$img"
	rm -rf "$ST"
	say "built $img ($(du -h "$img" | cut -f1), ${#order[@]} modules)"
}

# ---------------- accelerator ----------------
# KVM only if /dev/kvm really runs a stock kernel (some nested hosts expose a
# /dev/kvm on which the guest spins silently). The probe boots the kernel
# without an initramfs and waits for its "VFS: Unable to mount root" panic;
# the answer is cached per guest and host kernel.

accel() {
	local probe out
	case ${WC_VM_ACCEL:-auto} in
	kvm | tcg) echo "$WC_VM_ACCEL"; return ;;
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
	exec 9>"$B/prepare.lock"
	flock 9		# tests may prepare concurrently (ctest -j)
	need_tools
	kernel_locate || skip "cannot install or download $KPKG_META (no apt repository reachable?)"
	if initramfs_stale; then
		if [[ ! -d "$MODDIR/kernel" ]]; then
			# the unpacked module tree was pruned: fetch the package again
			rm -rf "$B/kernel"
			kernel_locate || skip "cannot download $KPKG_META again"
		fi
		initramfs_build || exit 1
	fi
	# Keep only vmlinuz + initramfs of a fetched kernel (the tree is ~400 MB).
	[[ "$MODDIR" != "$B"/* ]] || rm -rf "${MODDIR%/lib/modules/*}"
	say "kernel $KVER accel $(accel)"
}

run() {
	local timeout=300 mem=512 script="" dir="" drives=() envs=() ndisk=0 a qpid rc start cpu e v
	local reconnect=""
	while (($#)); do
		case $1 in
		--timeout) timeout=$2; shift ;;
		--mem) mem=$2; shift ;;
		--env) envs+=("$2"); shift ;;
		--disk | --disk-ro)
			a="file=$(realpath "$2"),format=raw,if=virtio,cache=unsafe"
			[[ $1 == --disk ]] || a+=",readonly=on"
			drives+=(-drive "$a")
			ndisk=$((ndisk + 1)); shift ;;
		--reconnect) reconnect=$2; shift ;;
		--nbd | --nbd-wt)
			# -blockdev: reconnect-delay is not available through -drive file=nbd+unix://
			a="driver=nbd,node-name=nbd$ndisk,server.type=unix,server.path=$(realpath "$2")"
			[[ -z "$reconnect" ]] || a+=",reconnect-delay=$reconnect"
			v=on
			[[ $1 == --nbd ]] || v=off
			drives+=(-blockdev "$a" -device "virtio-blk-pci,drive=nbd$ndisk,write-cache=$v")
			ndisk=$((ndisk + 1)); shift ;;
		--net-nbd)
			# restrict=on: no network but the forwards. Port 10809 is a chardev
			# connected to SOCK once, when qemu starts (fast: in qemu); port 10810
			# runs nc for each guest TCP connection, so it reaches a server that
			# was restarted meanwhile (slower: every byte passes through nc).
			a=$(realpath "$2")
			drives+=(-nic "user,model=virtio-net-pci,restrict=on,guestfwd=tcp:10.0.2.100:10809-unix:$a,guestfwd=tcp:10.0.2.100:10810-cmd:nc -U $a")
			shift ;;
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
	cp "$HERE/guest-lib.sh" "$dir/guest-lib.sh"
	for e in "${envs[@]+"${envs[@]}"}"; do
		v=${e#*=}
		printf "export %s='%s'\n" "${e%%=*}" "${v//\'/\'\\\'\'}"
	done >"$dir/env.sh"
	a=$(accel)
	# shellcheck disable=SC2054 # "tcg,thread=multi" is one qemu argument
	if [[ $a == kvm ]]; then cpu=(-accel kvm -cpu host); else cpu=(-accel tcg,thread=multi -cpu max); fi
	: >"$dir/console.log"
	start=$(date +%s%N)
	# no_timer_check: a busy host can make TCG miss the kernel's IO-APIC timer
	# check, which then panics ("IO-APIC + timer doesn't work!").
	timeout -k 5 "$timeout" qemu-system-x86_64 "${cpu[@]}" -M q35 -smp 2 -m "$mem" -nodefaults \
		-display none -no-reboot -kernel "$VMLINUZ" -initrd "$(initramfs_path)" \
		-serial "file:$dir/console.log" \
		-append "console=ttyS0 quiet loglevel=4 panic=-1 no_timer_check wc.disks=$ndisk" \
		"${drives[@]+"${drives[@]}"}" \
		-fsdev "local,id=io,path=$dir,security_model=none" -device virtio-9p-pci,fsdev=io,mount_tag=io \
		</dev/null >"$dir/qemu.log" 2>&1 &
	qpid=$!
	if [[ "${WC_VM_VERBOSE:-0}" == 1 ]]; then
		tail -n +1 -f --pid=$qpid "$dir/console.log" 2>/dev/null || true
	fi
	set +e
	wait $qpid
	rc=$?
	set -e
	say "$a boot: qemu rc $rc after $((($(date +%s%N) - start) / 1000000)) ms"
	[[ ! -s "$dir/qemu.log" ]] || sed 's/^/vm.sh: qemu: /' "$dir/qemu.log" >&2
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
*) sed -n '3,39s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
