#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# fio on a loop device through wcache (FUSE file -> loop, direct I/O): random
# writes of 4..64 KiB at queue depth 16 with crc32c verification, ending with
# an fsync. The data must verify (1) right after the run, (2) after kill -9
# of the server, restart and reattach (fio --verify_only: the end fsync made
# everything durable), and (3) on the origin image alone, without wcache,
# after the offline 'wcache flush ORIGIN CACHE'.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/fuse-functions.sh"
requires fio
requires_wcache
requires_fuse_loop
tmpdir
cleanup_fn fz_teardown

MiB=$((1 << 20))
truncate -s $((384 * MiB)) origin.img
truncate -s $((128 * MiB)) cache.img
mkdir mnt

# The cache holds a third of the written data: writeback runs during the job.
JOB=(--name=wcache-verify --ioengine=libaio --direct=1 --rw=randwrite --bsrange=4k-64k
	--iodepth=16 --size=320M --verify=crc32c --verify_fatal=1 --randseed=4242
	--end_fsync=1)

# run_fio DEV WHAT [extra fio args]
run_fio() {
	local dev=$1 what=$2
	shift 2
	timeout 300 fio "${JOB[@]}" --filename="$dev" "$@" --output="$TMPD/fio-$what.out" ||
		{
			cat "$TMPD/fio-$what.out" >&2
			fail "fio $what failed"
		}
	grep -q "err= 0" "$TMPD/fio-$what.out" || {
		cat "$TMPD/fio-$what.out" >&2
		fail "fio $what reported an error"
	}
}

fz_start origin.img cache.img mnt
fz_loop mnt/disk
run_fio "$LOOP" write --do_verify=1
say "write + verify: $(grep -m1 -o 'IOPS=[^,]*' "$TMPD/fio-write.out"); $(fz_stats)"
(($(fz_stat writeback_blocks_done) > 0)) || fail "no writeback although the cache is small"

# kill -9, restart, reattach: everything up to the end fsync is there.
fz_crash
fz_start origin.img cache.img mnt
fz_loop mnt/disk
run_fio "$LOOP" after-crash --verify_only
fz_loop_detach "$LOOP"
fz_stop

# Offline writeback, then the origin alone.
run_rc 0 "$WCACHE" flush origin.img cache.img --no-progress
run_rc 0 "$WCACHE" check cache.img
fz_loop origin.img
run_fio "$LOOP" origin --verify_only
fz_loop_detach "$LOOP"
say "ok"
