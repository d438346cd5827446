#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest of test-vm-ext4-fio.sh, on /dev/vda = a wcache export through qemu's
# NBD client: mkfs.ext4, copy the host's tree, sync, umount, e2fsck -fn; fio
# randwrite with fsync=1 and crc32c verification in a file; umount, e2fsck
# -fn; re-mount read-only and check the tree and the fio file again from the
# disk. Env: FIO_SIZE, FIO_BS.
. /io/guest-lib.sh
dev=/dev/vda
q=/sys/block/vda/queue
t "vda: $(cat /sys/block/vda/size) sectors, write_cache=$(cat $q/write_cache) fua=$(cat $q/fua)"
mkext4 $dev
mount -t ext4 $dev /mnt || fail "mount"
cp -a /io/src/tree /mnt/ || fail "copy the tree"
t "tree copied ($(du -sk /mnt/tree | cut -f1) KiB)"
sync
t "sync"
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
