#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A real file system on wcache: FUSE file -> loop (direct I/O, 4 KiB sectors)
# -> ext4. mkfs, a tree of a few thousand files (some large) with recorded
# checksums, sync, umount, fsck.ext4 -fn clean, mount again, every checksum
# equal. The cache is smaller than the data, so writeback runs meanwhile.
# Then writeback: "message flush" on the control socket, detach, stop, and
# the origin image alone must fsck clean and hold every file; a second round
# with --flush-on-suspend writes back at stop by itself.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/fuse-functions.sh"
requires python3 mkfs.ext4 fsck.ext4 sha256sum
requires_wcache
requires_fuse_loop
tmpdir
cleanup_fn fz_teardown

MiB=$((1 << 20))
truncate -s $((512 * MiB)) origin.img
truncate -s $((96 * MiB)) cache.img
mkdir mnt ext

# ---- mkfs, files, sync, umount, fsck, remount, verify ----
fz_start origin.img cache.img mnt
fz_loop mnt/disk
timeout 120 mkfs.ext4 -q -F "$LOOP" || fail "mkfs.ext4 on $LOOP"
fz_mount "$LOOP" ext
mktree ext 1 3000 4 >sums1 || fail "writing the tree"
sync
fz_umount ext
fsck_clean "$LOOP"
fz_mount "$LOOP" ext
verify_tree ext "$TMPD/sums1"
say "tree 1: $(wc -l <sums1) files verified after umount/fsck/mount; $(fz_stats)"
(($(fz_stat writeback_blocks_done) > 0)) || fail "no writeback although the cache is small"
(($(fz_stat flushes) > 0)) || fail "ext4 never flushed through the loop device"

# ---- writeback via the control socket, then the origin alone ----
fz_umount ext
reply=$(fz_ctl "message flush")
assert_eq "$reply" "ok" "reply to message flush"
assert_eq "$(fz_stat dirty_blocks)" 0 "dirty blocks after message flush"
fz_loop_detach "$LOOP"
fz_stop
grep -Ei "error|warning" "$FZ_LOG" && fail "the server logged errors"
run_rc 0 "$WCACHE" check cache.img
fsck_clean origin.img
fz_mount origin.img ext loop,ro
verify_tree ext "$TMPD/sums1"
fz_umount ext

# ---- flush_on_suspend: more files, written back when the server stops ----
fz_start origin.img cache.img mnt --flush-on-suspend
fz_loop mnt/disk
fz_mount "$LOOP" ext
verify_tree ext "$TMPD/sums1"
mktree ext 2 1000 2 >sums2 || fail "writing tree 2"
fz_umount ext
fz_loop_detach "$LOOP"
fz_stop
run_rc 0 "$WCACHE" check cache.img
fsck_clean origin.img
fz_mount origin.img ext loop,ro
verify_tree ext "$TMPD/sums1"
verify_tree ext "$TMPD/sums2"
fz_umount ext
say "ok"
