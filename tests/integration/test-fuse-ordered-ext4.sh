#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# ordered_writeback keeps the origin alone a file system that fsck accepts.
# ext4 (journal commit every second) on FUSE -> loop -> wcache with a small
# cache and writeback running all the time; a workload creates, appends,
# renames and deletes files with fsyncs. At moments spread over the run the
# server is stopped (SIGSTOP: no writeback progresses), the origin copied
# as it stands, the server resumed; each copy gets its journal replayed
# (e2fsck -E journal_only, what a mount would do) and must then pass
# e2fsck -fn. The same without ordered_writeback is the negative control:
# how many of its copies are unclean is reported, not asserted (it is luck).
# WC_ORDERED_SNAPS (default 8) sets the number of copies per round.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/fuse-functions.sh"
requires mkfs.ext4 e2fsck cp
requires_wcache
requires_fuse_loop
tmpdir
cleanup_fn fz_teardown

MiB=$((1 << 20))
snaps=${WC_ORDERED_SNAPS:-8}
mkdir mnt ext

# workload DIR SECONDS: files appear, grow, move and vanish; fsync now and then.
workload() {
	local dir=$1 end=$((SECONDS + $2)) i=0 f
	mkdir -p "$dir/d0" "$dir/d1" "$dir/d2"
	while ((SECONDS < end)); do
		i=$((i + 1))
		f=$dir/d$((i % 3))/f$((RANDOM % 200))
		case $((RANDOM % 6)) in
		0 | 1) head -c $(((RANDOM % 128 + 1) * 4096)) /dev/urandom >"$f" ;;
		2) head -c $(((RANDOM % 8 + 1) * 512)) /dev/urandom >>"$f" ;;
		3) [[ -e "$f" ]] && mv "$f" "$dir/d$((RANDOM % 3))/m$((RANDOM % 100))" ;;
		4) rm -f "$f" ;;
		5) [[ -e "$f" ]] && sync "$f" ;;
		esac
	done 2>/dev/null
}

# round NAME [wcache fuse options]: prints "UNCLEAN/TOTAL".
round() {
	local name=$1 unclean=0 n pid
	shift
	rm -f origin.img cache.img
	truncate -s $((256 * MiB)) origin.img
	truncate -s $((24 * MiB)) cache.img
	fz_start origin.img cache.img mnt --high-watermark 40 --low-watermark 20 \
		--pause-writeback 0 --writeback-jobs 256 "$@"
	fz_loop mnt/disk
	timeout 120 mkfs.ext4 -q -F "$LOOP" || fail "mkfs.ext4 on $LOOP"
	fz_mount "$LOOP" ext commit=1
	# From here on the origin must always be a file system: start from one.
	sync
	assert_eq "$(fz_ctl "message flush")" ok "message flush after mkfs ($name)"
	workload ext 1000 &
	pid=$!
	for ((n = 1; n <= snaps; n++)); do
		sleep "0.$((RANDOM % 9 + 1))"
		kill -STOP "$FZ_PID"
		cp --sparse=always origin.img snap.img
		kill -CONT "$FZ_PID"
		# Exit 1: the journal was replayed (a change); only the check below counts.
		timeout 120 e2fsck -fy -E journal_only snap.img >"$TMPD/replay.out" 2>&1 || true
		if ! timeout 120 e2fsck -fn snap.img >"$TMPD/fsck-$name-$n.out" 2>&1; then
			unclean=$((unclean + 1))
			[[ "$name" = ordered ]] && cat "$TMPD/replay.out" "$TMPD/fsck-$name-$n.out" >&2
		fi
	done
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
	say "$name: $(fz_stats)"
	fz_umount ext
	fz_loop_detach "$LOOP"
	fz_stop
	echo "$unclean/$snaps" >"$TMPD/result-$name"
}

round ordered --ordered-writeback
round unordered
ordered=$(cat "$TMPD/result-ordered")
say "unclean origin copies: ordered_writeback $ordered, without it $(cat "$TMPD/result-unordered")"
[[ "$ordered" = "0/$snaps" ]] || fail "ordered_writeback left $ordered origin copies unclean"
say ok
