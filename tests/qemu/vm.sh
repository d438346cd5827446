#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Boot Debian's stock kernel (the version linux-image-amd64 depends on) in qemu
# with a small initramfs for one kind of guest, and run one shell script in it.
# Owns: host packages, the kernel, the initramfs, the accelerator choice and
# the qemu command line; knows nothing of wcache (the tests start servers and
# make images). Used by tests/kernel (label kernel) and tests/vm (label vm).
#
# Usage:
#   vm.sh prepare --guest G   install what is missing, fetch the kernel, build
#                             G's initramfs; exit 77 (with the reason) if impossible
#   vm.sh run --guest G [--timeout S] [--mem MB] [--env K=V ...] DISK... --script JOB.sh --dir DIR
#     DISK is one of (each becomes the next /dev/vdX, in order, except --net-nbd):
#       --disk FILE         raw image file, virtio-blk; guest discards punch holes
#       --disk-ro FILE      the same, read-only
#       --nbd SOCK          NBD export on a unix socket through qemu's NBD client
#                           (virtio-blk, volatile write cache: guest flushes
#                           arrive as NBD_CMD_FLUSH)
#       --nbd-wt SOCK       the same in write-through mode: the guest sees no
#                           write cache and qemu sets NBD FUA on every write
#       --reconnect N       for the --nbd/--nbd-wt disks after it: qemu
#                           reconnects for N s after the server went away and
#                           retries the requests in flight
#       --pmem FILE:OFF:SIZE  not a disk: the guest's RAM (--mem MB) is FILE,
#                           shared with the host, and the kernel argument
#                           memmap=SIZE!OFF (MiB) makes [OFF, OFF+SIZE) of it
#                           legacy persistent memory: /dev/pmem0, DAX-capable
#                           (guest pmem), whose bytes are FILE's from OFF MiB
#       --net-nbd SOCK      no disk: the guest reaches SOCK over qemu user
#                           networking (for the guest's nbd driver) as TCP
#                           10.0.2.100:10809 (one connection, made when qemu
#                           starts) and 10.0.2.100:10810 (any number, each to
#                           the server listening at that moment)
#   vm.sh info                print "kernel <version> accel <kvm|tcg>"
#
# Guests (G): dm   the dm-writecache target, dmsetup and GNU dd (tests/kernel)
#             nbd  nbd, ext4, virtio-net, e2fsprogs, fio, nbd-client (tests/vm)
#             pmem dm plus legacy pmem (nd_e820, nd_pmem) for writecache p (tests/kernel)
#
# run: DIR is shared read-write over 9p and mounted at /io in the guest; JOB.sh
# is copied there as job.sh and runs with cwd /io (busybox sh, root, $IO=/io);
# --env values are exported to it. The console goes to DIR/console.log.
# Exit code = the script's; 124 timeout, 125 the VM died without an exit line.
#
# Environment:
#   WC_QEMU_CACHE      one writable dir for the kernel, every guest's initramfs
#                      and the KVM probe (default: $TMPDIR/wcache-qemu); all of
#                      it is a cache, shared by tests that may run concurrently
#   WC_QEMU_ACCEL      auto (default: KVM only if it really boots a kernel), kvm, tcg
#   WC_QEMU_NO_INSTALL=1  never call apt-get: skip if something is missing
#   WC_QEMU_VERBOSE=1  copy the console to stdout while the VM runs
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
C=${WC_QEMU_CACHE:-${TMPDIR:-/tmp}/wcache-qemu}
KPKG_META=linux-image-amd64
TEST_NAME=vm.sh
# say, skip
# shellcheck source=../lib/functions.sh
source "$HERE/../lib/functions.sh"

# ---------------- guests ----------------
# guest_def G: set MODS (kernel modules; their dependencies are added from
# modules.dep), PKGS (host packages: qemu and what the initramfs copies), TOOLS
# (commands that must exist afterwards), BINS (programs copied with their
# libraries besides busybox; the guest scripts call them by full path, as
# busybox sh prefers its applets) and FILES (copied if the host has them).
GUESTS="dm nbd pmem"
guest_def() {
	case $1 in
	dm)
		MODS="virtio_pci virtio_blk 9pnet_virtio 9p dm_mod dm_bufio dm_writecache"
		# The small ones normally come from scripts/install-deps.sh.
		PKGS=(qemu-system-x86 dmsetup kmod cpio)
		command -v busybox >/dev/null || PKGS+=(busybox-static)
		TOOLS=(qemu-system-x86_64)
		# busybox dd drops O_DIRECT on unaligned buffers; GNU dd does not
		BINS=(/bin/dd dmsetup)
		FILES=()
		;;
	pmem)
		MODS="virtio_pci virtio_blk 9pnet_virtio 9p dm_mod dm_bufio dm_writecache libnvdimm nd_pmem nd_e820"
		PKGS=(qemu-system-x86 dmsetup kmod cpio)
		command -v busybox >/dev/null || PKGS+=(busybox-static)
		TOOLS=(qemu-system-x86_64)
		BINS=(/bin/dd dmsetup)
		FILES=()
		;;
	nbd)
		MODS="virtio_pci virtio_blk virtio_net 9pnet_virtio 9p nbd crc32c_generic ext4"
		PKGS=(qemu-system-x86 busybox-static e2fsprogs fio nbd-client netcat-openbsd kmod cpio
			xz-utils zstd)
		TOOLS=(qemu-system-x86_64 busybox /usr/sbin/mke2fs /usr/sbin/e2fsck /usr/sbin/nbd-client
			fio cpio nc)
		# GNU dd: oflag=direct,sync and conv=fsync as documented
		BINS=(/bin/dd fio /usr/sbin/mke2fs /usr/sbin/e2fsck /usr/sbin/nbd-client)
		FILES=(/etc/mke2fs.conf)
		;;
	*) say "unknown guest '$1' (one of: $GUESTS)"; exit 2 ;;
	esac
}

# all_mods: the modules of every guest (the unpacked kernel keeps these).
all_mods() {
	(
		for g in $GUESTS; do
			guest_def "$g"
			echo "$MODS"
		done
	)
}

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
	if [[ "${WC_QEMU_NO_INSTALL:-0}" == 1 ]] || ((EUID != 0)) || ! command -v apt-get >/dev/null; then
		say "missing: ${missing[*]} (not installing: WC_QEMU_NO_INSTALL=1, not root or no apt-get)"
		return 1
	fi
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends "${missing[@]}" >"$C/apt.log" 2>&1 && return 0
	apt-get update -q >>"$C/apt.log" 2>&1 || true
	apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$C/apt.log" 2>&1 || {
		tail -5 "$C/apt.log" >&2
		return 1
	}
}

need_tools() {
	local t
	command -v dpkg-query >/dev/null ||
		skip "not a Debian system (no dpkg-query): install qemu-system-x86 and a kernel by hand"
	apt_install "${PKGS[@]}" || skip "cannot install ${PKGS[*]}"
	for t in "${TOOLS[@]}"; do
		command -v "$t" >/dev/null || skip "$t is not available after installing ${PKGS[*]}"
	done
}

# ---------------- kernel modules ----------------

# mod_closure MODDIR NAME...: the modules.dep paths of the named modules and
# of everything they depend on, each after its dependencies (insmod order);
# built-in modules are left out. 1 if a module is neither there nor built in.
mod_closure() {
	local dir=$1 m rel order=() seen=" "
	shift
	add_mod() {
		local r=$1 dep
		[[ "$seen" == *" $r "* ]] && return 0
		seen+="$r "
		for dep in $(awk -v m="$r:" '$1 == m { for (i = 2; i <= NF; i++) print $i }' "$dir/modules.dep"); do
			add_mod "$dep"
		done
		order+=("$r")
	}
	for m in "$@"; do
		rel=$(awk -F: -v n="$m" '{ b = $1; sub(/.*\//, "", b); sub(/\.ko(\.xz|\.zst|\.gz)?$/, "", b);
			gsub(/-/, "_", b); if (b == n) { print $1; exit } }' "$dir/modules.dep")
		if [[ -n "$rel" ]]; then
			add_mod "$rel"
		elif ! grep -q "/${m//_/[-_]}\.ko" "$dir/modules.builtin" 2>/dev/null; then
			say "module $m is neither in $dir nor built in"
			return 1
		fi
	done
	printf '%s\n' "${order[@]}"
}

# ---------------- the kernel ----------------
# Either linux-image-amd64 is installed (use /boot and /lib/modules), or the
# versioned package it depends on is fetched with apt-get download and
# unpacked once into $C/kernel/KVER (the host's /boot and boot loader stay
# untouched), keeping only vmlinuz and the modules every guest needs: the full
# tree is ~400 MB. $C/kernel/current names the kernel prepare chose last.
# Sets KVER, VMLINUZ, MODDIR.

kernel_dep() {
	apt-cache depends "$KPKG_META" 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -1
}

kernel_vars() {
	KVER=$1
	VMLINUZ=$C/kernel/$KVER/vmlinuz MODDIR=$C/kernel/$KVER/lib/modules/$KVER
}

# kernel_installed: linux-image-amd64 is installed on the host; use it.
kernel_installed() {
	local dep
	pkg_installed "$KPKG_META" || return 1
	dep=$(dpkg-query -W -f='${Depends}' "$KPKG_META" | grep -o 'linux-image-[0-9][^ ,]*' | head -1)
	KVER=${dep#linux-image-}
	VMLINUZ=/boot/vmlinuz-$KVER MODDIR=/lib/modules/$KVER
	[[ -f "$VMLINUZ" && -d "$MODDIR" ]]
}

# kernel_current: the kernel prepare chose (run and info never fetch).
kernel_current() {
	kernel_installed && return 0
	[[ -f "$C/kernel/current" ]] || return 1
	kernel_vars "$(cat "$C/kernel/current")"
	[[ -f "$VMLINUZ" ]]
}

# kernel_complete: the unpacked kernel has vmlinuz and every guest's modules.
kernel_complete() {
	local rel closure
	[[ -f "$VMLINUZ" && -f "$MODDIR/modules.dep" ]] || return 1
	# shellcheck disable=SC2046 # module names are single words
	closure=$(mod_closure "$MODDIR" $(all_mods) 2>/dev/null) || return 1
	for rel in $closure; do
		[[ -f "$MODDIR/$rel" ]] || return 1
	done
}

# kernel_fetch DEP: download and unpack into a temporary dir, keep vmlinuz and
# the modules of every guest, then rename it into place (a killed prepare
# never leaves a half-unpacked kernel under the final name).
kernel_fetch() {
	local dep=$1 t deb rel keep src
	rm -rf "$C"/kernel/.fetch-*	# left by a killed prepare (we hold the lock)
	t=$(mktemp -d "$C/kernel/.fetch-$KVER.XXXXXX")
	chmod 755 "$t"
	say "fetching $dep"
	(cd "$t" && apt-get download -q "$dep" >"$t/download.log" 2>&1) || {
		tail -3 "$t/download.log" >&2
		rm -rf "$t"
		return 1
	}
	deb=$(ls "$t"/"$dep"_*.deb)
	src=$t/root/lib/modules/$KVER
	# (Called where set -e does not apply: every step checks for itself.)
	# shellcheck disable=SC2046 # module names are single words
	if mkdir "$t/root" && dpkg-deb -x "$deb" "$t/root" && rm -f "$deb" &&
		{ [[ -f "$src/modules.dep" ]] || depmod -b "$t/root" "$KVER"; } &&
		keep=$(mod_closure "$src" $(all_mods)) && mkdir -p "$t/lib/modules/$KVER" &&
		cp "$src/modules.dep" "$t/lib/modules/$KVER/" &&
		{ [[ ! -f "$src/modules.builtin" ]] || cp "$src/modules.builtin" "$t/lib/modules/$KVER/"; } &&
		mv "$t/root/boot/vmlinuz-$KVER" "$t/vmlinuz"; then
		for rel in $keep; do
			if ! { mkdir -p "$t/lib/modules/$KVER/$(dirname "$rel")" &&
				mv "$src/$rel" "$t/lib/modules/$KVER/$rel"; }; then
				rm -rf "$t"
				return 1
			fi
		done
	else
		say "cannot unpack $dep"
		rm -rf "$t"
		return 1
	fi
	echo "$KVER" >"$t/kver"
	rm -rf "$t/root" "$C/kernel/$KVER"
	mv "$t" "$C/kernel/$KVER" || return 1
	say "unpacked $KVER, kept $(du -sh "$C/kernel/$KVER" | cut -f1): vmlinuz and the guests' modules"
}

# kernel_prepare: find or fetch the kernel and make it the current one.
kernel_prepare() {
	local dep
	kernel_installed && return 0
	mkdir -p "$C/kernel"
	dep=$(kernel_dep)
	if [[ -z "$dep" ]]; then
		# No package lists: a kernel fetched earlier is used as it is.
		if kernel_current && kernel_complete; then
			return 0
		fi
		if [[ "${WC_QEMU_NO_INSTALL:-0}" != 1 && $EUID == 0 ]]; then
			apt-get update -q >"$C/apt.log" 2>&1 || true
			dep=$(kernel_dep)
		fi
	fi
	[[ -n "$dep" ]] || return 1
	kernel_vars "${dep#linux-image-}"
	if ! kernel_complete; then
		[[ "${WC_QEMU_NO_INSTALL:-0}" != 1 ]] || return 1
		kernel_fetch "$dep" || return 1
	fi
	echo "$KVER" >"$C/kernel/current.tmp"
	mv "$C/kernel/current.tmp" "$C/kernel/current"
}

# ---------------- initramfs ----------------

initramfs_path() { echo "$C/initramfs-$GUEST-$KVER.img"; }

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
	local img m rel bb closure order=()
	img=$(initramfs_path)
	[[ -f "$MODDIR/modules.dep" ]] || depmod -b "${MODDIR%/lib/modules/*}" "$KVER"
	# shellcheck disable=SC2086 # module names are single words
	closure=$(mod_closure "$MODDIR" $MODS) || return 1
	for rel in $closure; do
		[[ -f "$MODDIR/$rel" ]] || { say "no module $MODDIR/$rel"; return 1; }
		order+=("$rel")
	done
	ST=$(mktemp -d "${TMPDIR:-/tmp}/wc-initramfs-$GUEST.XXXXXX")
	mkdir -p "$ST"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,io,mnt,etc,lib/modules}
	bb=$(command -v busybox)
	put_bin "$bb"
	[[ "$bb" == /bin/busybox ]] || mv "$ST$bb" "$ST/bin/busybox"
	for m in $("$ST/bin/busybox" --list); do
		[[ -e "$ST/bin/$m" ]] || ln -s busybox "$ST/bin/$m"
	done
	for m in "${BINS[@]}"; do
		put_bin "$(command -v "$m")"
	done
	for m in "${FILES[@]+"${FILES[@]}"}"; do
		[[ ! -f "$m" ]] || { mkdir -p "$ST$(dirname "$m")"; cp "$m" "$ST$m"; }
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
	(cd "$ST" && find . -print0 | cpio --null -o -H newc --quiet) >"$img.tmp.$$"
	mv "$img.tmp.$$" "$img"
	rm -rf "$ST"
	say "built $img ($(du -h "$img" | cut -f1), ${#order[@]} modules)"
}

# ---------------- accelerator ----------------
# KVM only if /dev/kvm really runs a stock kernel: some hosts (e.g. PVM nested
# hypervisors) expose a /dev/kvm on which the guest spins without output. The
# probe boots the kernel without an initramfs and waits for its "VFS: Unable to
# mount root" panic; the answer is cached per guest and host kernel.

accel() {
	local probe out
	case ${WC_QEMU_ACCEL:-auto} in
	kvm | tcg) echo "$WC_QEMU_ACCEL"; return ;;
	esac
	[[ -r /dev/kvm && -w /dev/kvm ]] || { echo tcg; return; }
	probe=$C/kvm-probe-$KVER-$(uname -r)
	if [[ ! -f "$probe" ]]; then
		out=$(timeout -k 2 10 qemu-system-x86_64 -accel kvm -cpu host -M q35 -m 256 -nodefaults \
			-display none -no-reboot -serial stdio -kernel "$VMLINUZ" \
			-append "console=ttyS0 panic=-1" </dev/null 2>&1 || true)
		case $out in *"Kernel panic"*) echo kvm ;; *) echo tcg ;; esac >"$probe.tmp.$$"
		mv "$probe.tmp.$$" "$probe"
	fi
	cat "$probe"
}

# ---------------- commands ----------------

# prepare: under an exclusive lock on $C, so tests may prepare concurrently
# (ctest -j; the kernel test prepares while it builds its images). run never
# takes the lock: prepare replaces the files run reads by rename only.
prepare() {
	mkdir -p "$C"
	exec 9>"$C/lock"
	flock 9
	need_tools
	# A kernel unpacked before a guest needed more modules is fetched again.
	kernel_prepare || skip "cannot install or download $KPKG_META (no apt repository reachable?)"
	if initramfs_stale; then
		initramfs_build || exit 1
	fi
	say "kernel $KVER accel $(accel) guest $GUEST"
}

run() {
	local timeout=300 mem=512 script="" dir="" drives=() envs=() ndisk=0 a qpid rc start cpu e v
	local reconnect="" pmem_spec="" pmem_args=() append="" pf po ps
	while (($#)); do
		case $1 in
		--timeout) timeout=$2; shift ;;
		--mem) mem=$2; shift ;;
		--env) envs+=("$2"); shift ;;
		--disk | --disk-ro)
			a="file=$(realpath "$2"),format=raw,if=virtio,cache=unsafe"
			if [[ $1 == --disk ]]; then a+=",discard=unmap"; else a+=",readonly=on"; fi
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
		--pmem) pmem_spec=$2; shift ;;
		--script) script=$2; shift ;;
		--dir) dir=$2; shift ;;
		*) say "run: unknown argument $1"; exit 2 ;;
		esac
		shift
	done
	[[ -f "$script" && -n "$dir" ]] || { say "run: --script and --dir are required"; exit 2; }
	if [[ -n "$pmem_spec" ]]; then
		# FILE:OFF:SIZE (MiB). RAM from a shared file: guest stores land in it.
		IFS=: read -r pf po ps <<<"$pmem_spec"
		if ! [[ -n "$pf" && "$po" =~ ^[0-9]+$ && "$ps" =~ ^[0-9]+$ ]] || ((po + ps > mem)); then
			say "run: --pmem FILE:OFF:SIZE (MiB, inside --mem $mem)"
			exit 2
		fi
		[[ -f "$pf" ]] || truncate -s "${mem}M" "$pf"
		pmem_args=(-object "memory-backend-file,id=ram,size=${mem}M,share=on,mem-path=$(realpath "$pf")"
			-machine memory-backend=ram)
		append=" memmap=${ps}M!${po}M"
	fi
	kernel_current || { say "no kernel: run 'vm.sh prepare' first"; exit 2; }
	[[ -f "$(initramfs_path)" ]] || { say "no initramfs for guest $GUEST: run 'vm.sh prepare' first"; exit 2; }
	mkdir -p "$dir"
	dir=$(realpath "$dir")
	cp "$script" "$dir/job.sh"
	for e in "${envs[@]+"${envs[@]}"}"; do
		v=${e#*=}
		printf "export %s='%s'\n" "${e%%=*}" "${v//\'/\'\\\'\'}"
	done >"$dir/env.sh"
	a=$(accel)
	# shellcheck disable=SC2054 # "tcg,thread=multi" is one qemu argument
	if [[ $a == kvm ]]; then cpu=(-accel kvm -cpu host); else cpu=(-accel tcg,thread=multi -cpu max); fi
	: >"$dir/console.log"
	start=$(date +%s%N)
	# cache=unsafe: the guest's flushes are not passed to the host disk. Nothing
	# here depends on host durability; a guest "power cut" is poweroff -f, and what
	# the guest wrote before it is in the image files either way.
	# no_timer_check: a busy host can make TCG miss the kernel's IO-APIC timer
	# check, which then panics ("IO-APIC + timer doesn't work!").
	timeout -k 5 "$timeout" qemu-system-x86_64 "${cpu[@]}" -M q35 -smp 2 -m "$mem" -nodefaults \
		-display none -no-reboot -kernel "$VMLINUZ" -initrd "$(initramfs_path)" \
		-serial "file:$dir/console.log" \
		-append "console=ttyS0 quiet loglevel=4 panic=-1 no_timer_check wc.disks=$ndisk$append" \
		"${pmem_args[@]+"${pmem_args[@]}"}" "${drives[@]+"${drives[@]}"}" \
		-fsdev "local,id=io,path=$dir,security_model=none" -device virtio-9p-pci,fsdev=io,mount_tag=io \
		</dev/null >"$dir/qemu.log" 2>&1 &
	qpid=$!
	if [[ "${WC_QEMU_VERBOSE:-0}" == 1 ]]; then
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

usage() {
	sed -n '3,45s/^# \{0,1\}//p' "$0" >&2
	exit 2
}

# --guest G (anywhere after the command): which initramfs.
GUEST=
cmd=${1:-}
(($#)) && shift
args=()
while (($#)); do
	case $1 in
	--guest) GUEST=${2:-}; shift 2 ;;
	*) args+=("$1"); shift ;;
	esac
done
case $cmd in
prepare | run)
	[[ -n "$GUEST" ]] || { say "$cmd: --guest is required (one of: $GUESTS)"; usage; }
	guest_def "$GUEST"
	mkdir -p "$C"
	"$cmd" "${args[@]+"${args[@]}"}"
	;;
info)
	mkdir -p "$C"
	kernel_current || exit 1
	echo "kernel $KVER accel $(accel)"
	;;
*) usage ;;
esac
