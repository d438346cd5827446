#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# kill -9 of the FUSE server under a mounted ext4 (FUSE -> loop -> ext4),
# 5 rounds. Each round writes a new batch of files and runs sync (ext4
# commits its journal and flushes the loop device -> fsync -> wcache commit),
# then keeps writing unsynced files and kills the server in the middle.
# Teardown in order (ext4, loop, dead FUSE mount), restart on the same cache
# and origin, reattach: the journal replays at mount, fsck.ext4 -fn is clean
# and every file of every synced batch has its checksum. At the end, after a
# clean stop, the offline 'wcache flush ORIGIN CACHE' writes everything back
# and the origin image alone is clean and holds every synced file.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/fuse-functions.sh"
requires python3 mkfs.ext4 fsck.ext4 sha256sum
requires_wcache
requires_fuse_loop
tmpdir
cleanup_fn fz_teardown

MiB=$((1 << 20))
ROUNDS=${WC_FUSE_CRASH_ROUNDS:-5}
truncate -s $((384 * MiB)) origin.img
truncate -s $((64 * MiB)) cache.img
mkdir mnt ext

# Small autocommit values make commits happen between the explicit ones too.
OPTS=(--autocommit-time 200 --autocommit-blocks 512)

fz_start origin.img cache.img mnt "${OPTS[@]}"
fz_loop mnt/disk
timeout 120 mkfs.ext4 -q -F "$LOOP" || fail "mkfs.ext4 on $LOOP"
fz_mount "$LOOP" ext
sync

for ((r = 1; r <= ROUNDS; r++)); do
	mktree ext "$r" 400 1 >"sums$r" || fail "round $r: writing files"
	sync
	# Unsynced writes in flight when the server dies (they may fail).
	(mktree ext $((100 + r)) 2000 2 >/dev/null 2>&1 || true) &
	writer=$!
	sleep 0.$((RANDOM % 8 + 2))
	fz_crash
	wait "$writer" || true
	mountpoint -q ext && fail "round $r: ext still mounted after teardown"

	fz_start origin.img cache.img mnt "${OPTS[@]}"
	fz_loop mnt/disk
	# Mount once to replay the journal, then check the file system offline.
	fz_mount "$LOOP" ext
	fz_umount ext
	fsck_clean "$LOOP"
	fz_mount "$LOOP" ext
	for ((i = 1; i <= r; i++)); do
		verify_tree ext "$TMPD/sums$i"
	done
	say "round $r: fsck clean, batches 1..$r intact"
	rm -rf "ext/s$((100 + r))"
	sync
done

# Clean stop, then the offline flush: the origin alone holds everything.
fz_umount ext
fz_loop_detach "$LOOP"
fz_stop
run_rc 1 "$WCACHE" check cache.img
run_rc 0 "$WCACHE" flush origin.img cache.img --no-progress
run_rc 0 "$WCACHE" check cache.img
fsck_clean origin.img
fz_mount origin.img ext loop,ro
for ((i = 1; i <= ROUNDS; i++)); do
	verify_tree ext "$TMPD/sums$i"
done
fz_umount ext
say "ok"
