#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A Linux guest with ext4 on a wcache export (qemu's NBD client, virtio-blk
# with a volatile write cache, so guest flushes arrive as NBD_CMD_FLUSH):
# mkfs, a tree of files with host-made checksums, sync, umount, e2fsck -fn;
# fio randwrite with fsync=1 and verify=crc32c; both re-checked from the disk.
# The cache is much smaller than what is written, so the server must write
# back and write around during the run (its counters must say so). Then the
# flush message, a clean stop, and a clean cache; test-vm-origin-alone.sh
# boots the origin that is left.
source "$(dirname "$0")/vm-lib.sh"
vm_setup ext4-fio

image wc-origin.img 256M
image wc-cache.img 8M
make_tree tree 40
say "tree: $(wc -l <io/tree.sha256) files, $(du -sk io/src/tree | cut -f1) KiB; cache 8 MiB"
srv_start wc
boot guest --timeout 400 --nbd wc.sock --script "$VM_HERE/guest-ext4-fio.sh" --env FIO_SIZE=16M --env FIO_BS=64k
boot_ok guest
say "server after the guest: $(stats_line wc)"
[[ "$(stat_of wc error)" == 0 ]] || fail "the server reports an error"
(($(stat_of wc flushes) > 0)) || fail "no guest flush reached the server"
(($(stat_of wc writeback_blocks_done) > 0)) ||
	fail "nothing was written back although the cache is smaller than the data"
(($(stat_of wc writes_around) > 0)) || fail "no write went around the full cache"
flush_and_stop wc
cp io/tree.sha256 wc-files.sha256
touch wc-flushed
say "ok"
