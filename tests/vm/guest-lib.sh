# shellcheck shell=sh
# SPDX-License-Identifier: MIT
# Helpers for the guest job scripts (busybox sh, sourced from /io): log lines
# with the guest's uptime, failing, signals to and from the host (files in
# /io), checking trees of files against sha256 manifests, e2fsck, mkfs and
# fio. e2fsprogs are called by full path: busybox sh prefers its applets.

# t MSG: a timestamped line on the console.
t() { echo "[$(cut -d' ' -f1 /proc/uptime)] $*"; }

# fail MSG: report, show the kernel's last words about block devices, exit 1.
fail() {
	echo "GUEST-FAIL: $*"
	dmesg | grep -iE 'error|ext4|jbd2|nbd|vd[a-z]|blk_update' | tail -20
	exit 1
}

# mark NAME: tell the host something happened (a file in the shared folder).
mark() { : >"/io/$1"; }

# wait_mark NAME SECONDS: wait for the host to create /io/NAME.
wait_mark() {
	i=0
	while [ ! -e "/io/$1" ]; do
		[ $i -lt $(($2 * 10)) ] || fail "the host did not signal $1 within $2 s"
		sleep 0.1
		i=$((i + 1))
	done
}

# check_tree ROOT MANIFEST...: every file of each manifest has its checksum.
check_tree() {
	root=$1
	shift
	for m in "$@"; do
		(cd "$root" && sha256sum -c -s "$m") || {
			(cd "$root" && sha256sum -c "$m" 2>&1 | grep -v ': OK$' | head -10)
			fail "files of $m differ under $root"
		}
		t "$(wc -l <"$m") files of $(basename "$m") intact"
	done
}

# fsck_clean DEV: e2fsck -fn must find nothing (exit 0).
fsck_clean() {
	rc=0
	/usr/sbin/e2fsck -fn "$1" >/tmp/fsck.out 2>&1 || rc=$?
	if [ $rc != 0 ]; then
		cat /tmp/fsck.out
		fail "e2fsck -fn $1: exit $rc"
	fi
	t "e2fsck -fn $1 clean: $(tail -1 /tmp/fsck.out)"
}

# mkext4 DEV [BLOCKS]: a fresh ext4 (4 KiB blocks; BLOCKS limits its size).
# Inode tables and journal are zeroed here, not by the kernel's ext4lazyinit
# thread after mount: that thread sends a flush per block group at a moment
# of its choosing (test-vm-nbd-fua.sh counted 2 during its FUA-only window).
mkext4() {
	/usr/sbin/mke2fs -q -t ext4 -b 4096 -E lazy_itable_init=0,lazy_journal_init=0 -F "$@" ||
		fail "mke2fs $*"
	t "mkfs.ext4 $*"
}

# fio_run FILE SIZE BS [fio options...]: one fio job on FILE with crc32c
# verification headers; the options choose the workload.
fio_run() {
	f=$1 size=$2 bs=$3
	shift 3
	rc=0
	fio --name=wcvm --filename="$f" --size="$size" --bs="$bs" --ioengine=psync --direct=1 \
		--verify=crc32c --verify_fatal=1 --eta=never --output=/tmp/fio.txt "$@" 2>/tmp/fio.err || rc=$?
	if [ $rc != 0 ]; then
		cat /tmp/fio.txt /tmp/fio.err | grep -v '^ *$' | head -30
		fail "fio $* on $f: exit $rc"
	fi
	t "fio $* $f: $(grep -E 'write: IOPS|read: IOPS' /tmp/fio.txt | tr -s ' ' | cut -d, -f1-2 | tr '\n' ';')"
}

# fio_write FILE SIZE BS: BS-sized random writes, an fsync after each, then
# every block read back and verified.
fio_write() { fio_run "$1" "$2" "$3" --rw=randwrite --fsync=1 --do_verify=1; }

# fio_check FILE SIZE BS: verify what fio_write left (read only: works on a
# read-only mount).
fio_check() { fio_run "$1" "$2" "$3" --rw=randread --verify_only; }
