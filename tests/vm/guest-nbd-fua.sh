#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest of test-vm-nbd-fua.sh: the guest kernel's own nbd driver (nbd-client
# over qemu user networking to the wcache export), which sends real NBD FUA.
# 1. ext4 on the first FS_BLOCKS 4 KiB blocks of /dev/nbd0: the checks of
#    guest-ext4-fio.sh (tree, sync, e2fsck -fn, fio randwrite fsync=1 with
#    crc32c, e2fsck -fn, read-only re-check), plus probe.dat (1 MiB, synced);
#    tells the host fs-done.
# 2. probe.dat overwritten with O_DIRECT|O_DSYNC: ext4 (iomap) sends such an
#    overwrite of allocated blocks as FUA writes and no flush (fua-written).
#    Then 1 MiB with O_DIRECT only at CONTROL_MIB past the file system (no
#    FUA, no flush; control-written), and the host kills the server (kill -9)
#    and restarts it (restarted).
# 3. The dead connection is dropped and a new one made (/dev/nbd1); mounting
#    replays the journal; probe.dat must hold the FUA data, the tree must be
#    intact, e2fsck -fn clean after umount; the control goes to /io/control.txt.
# Env: FS_BLOCKS, CONTROL_MIB, FIO_SIZE, FIO_BS.
. /io/guest-lib.sh
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
ip link set lo up && ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 &&
	ip route add default via 10.0.2.2 || fail "network setup"

# connect DEV PORT: nbd-client to the host's forward of the wcache socket
# (10809: the first connection only; 10810: any, slower).
connect() {
	timeout 30 /usr/sbin/nbd-client 10.0.2.100 "$2" "/dev/$1" -N "" >/tmp/nbd-client.out 2>&1 || {
		cat /tmp/nbd-client.out
		fail "nbd-client $1"
	}
	q=/sys/block/$1/queue
	t "$1: $(cat /sys/block/$1/size) sectors, write_cache=$(cat $q/write_cache) fua=$(cat $q/fua)"
	[ "$(cat $q/fua)" = 1 ] || fail "$1 does not offer FUA"
}

connect nbd0 10809
dev=/dev/nbd0
mkext4 $dev "$FS_BLOCKS"
mount -t ext4 $dev /mnt || fail "mount"
cp -a /io/src/tree /mnt/ || fail "copy the tree"
/bin/dd if=/dev/zero of=/mnt/probe.dat bs=64k count=16 status=none || fail "probe.dat"
sync
t "tree and probe.dat copied and synced"
umount /mnt || fail "umount"
fsck_clean $dev
mount -t ext4 $dev /mnt || fail "mount again"
fio_write /mnt/fio.dat "$FIO_SIZE" "$FIO_BS"
umount /mnt || fail "umount after fio"
fsck_clean $dev
echo 3 >/proc/sys/vm/drop_caches
mount -t ext4 -o ro $dev /mnt || fail "mount read-only"
check_tree /mnt /io/tree.sha256
fio_check /mnt/fio.dat "$FIO_SIZE" "$FIO_BS"
umount /mnt
# commit=300: no periodic journal commit (a flush) may commit the control.
mount -t ext4 -o commit=300 $dev /mnt || fail "mount for the probe"
mark fs-done
wait_mark fs-counted 60

/bin/dd if=/io/src/probe.bin of=/mnt/probe.dat bs=64k oflag=direct,dsync conv=notrunc status=none ||
	fail "FUA probe write"
mark fua-written
wait_mark fua-counted 60
/bin/dd if=/io/src/control.bin of=$dev bs=64k seek=$((CONTROL_MIB * 16)) oflag=direct status=none ||
	fail "control write"
t "probe.dat overwritten with O_DIRECT|O_DSYNC, 1 MiB without at $CONTROL_MIB MiB"
mark control-written
wait_mark restarted 60
# The server that held the mount is gone. Disconnect first: until then the
# nbd driver may not notice (the forward stays open) and I/O would wait for
# ever; afterwards the mount's last writes fail at once and umount returns.
timeout 30 /usr/sbin/nbd-client -d /dev/nbd0 >/dev/null 2>&1
umount /mnt >/dev/null 2>&1 || umount -l /mnt || fail "umount of the dead mount"
t "dropped the dead connection and its mount"
connect nbd1 10810
dev=/dev/nbd1
mount -t ext4 $dev /mnt || fail "mount after the server crash"
t "mounted after the server crash (journal replayed)"
cmp /mnt/probe.dat /io/src/probe.bin || fail "the FUA writes did not survive kill -9 of the server"
t "the FUA writes survived kill -9 of the server"
check_tree /mnt /io/tree.sha256
umount /mnt || fail "umount after the checks"
fsck_clean $dev
/bin/dd if=$dev of=/tmp/control.bin bs=64k skip=$((CONTROL_MIB * 16)) count=16 iflag=direct status=none ||
	fail "reading the control back"
if cmp -s /tmp/control.bin /io/src/control.bin; then echo survived; else echo lost; fi >/io/control.txt
t "control (no FUA, no flush): $(cat /io/control.txt)"
timeout 30 /usr/sbin/nbd-client -d $dev >/dev/null 2>&1
true
