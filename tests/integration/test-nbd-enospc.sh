#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A full file system under a sparse origin or cache (issue 16): writes,
# writeback and commits must fail with clear errors, data acknowledged by a
# flush must stay readable, and nothing may be lost once space returns.
# Each case runs on its own small tmpfs (mount -t tmpfs -o size=...), filled
# up with a filler file that is removed to give the space back.
#  1. origin full: "message flush" fails naming ENOSPC, status field 1 shows
#     the error, reads still return the cached data; with space back the same
#     message succeeds and the origin holds the data.
#  2. cache full: a write that needs a new cache block fails (no silent
#     loss), flushed data stays readable, and after space returns an offline
#     "wcache flush" drains everything and the origin verifies.
source "$(dirname "$0")/functions.sh"
requires nbdkit qemu-io mount umount
requires_wcache
tmpdir
source "$(dirname "$0")/nbd-functions.sh"
((EUID == 0)) || skip "needs root to mount a small tmpfs"

MiB=1048576
# small_fs DIR MiB: a tmpfs of that size at DIR, unmounted at exit.
small_fs() {
	mkdir -p "$1"
	mount -t tmpfs -o "size=$2m" tmpfs "$1" 2>"$TMPD/mount.err" ||
		skip "cannot mount a tmpfs: $(cat "$TMPD/mount.err")"
	cleanup_fn umount -l "$1"
}
# fill DIR: leave less than 1 MiB free in DIR's file system.
fill() {
	dd if=/dev/zero of="$1/filler" bs=64k status=none 2>/dev/null || true
	local free_k
	free_k=$(df -k --output=avail "$1" | tail -1)
	((free_k < 1024)) || fail "could not fill $1 ($free_k KiB free)"
}
ctl=$TMPD/ctl.sock
# qio CMD...: qemu-io commands on the server.
qio() {
	local a=() c
	for c in "$@"; do a+=(-c "$c"); done
	qemu-io -f raw "$URI" "${a[@]}"
}

# Patterns qemu-io can write and verify; the same bytes as files for the origin.
head -c $((4 * MiB)) /dev/zero | tr '\0' '\021' >d4.bin
head -c $((2 * MiB)) /dev/zero | tr '\0' '\042' >d2.bin

say "1. the origin's file system is full"
small_fs mo 16
truncate -s $((64 * MiB)) mo/origin.img
truncate -s $((16 * MiB)) cache1.img
run_rc 0 "$WCACHE" format cache1.img
fill mo
srv_start origin=mo/origin.img cache=cache1.img control="$ctl"
run_rc 0 qio "write -P 0x11 0 4M" flush
run_rc 1 "$WCACHE" message --control "$ctl" flush
err_has 'No space left on device writing to the origin .*free space there'
run_rc 0 "$WCACHE" status --control "$ctl"
out_has '^error: -28$' # -ENOSPC
out_has '^dirty: [1-9]'
# Acknowledged data still reads back, from the cache.
run_rc 0 qio "read -P 0x11 0 4M"
rm mo/filler
run_rc 0 "$WCACHE" message --control "$ctl" flush
run_rc 0 "$WCACHE" status --control "$ctl"
out_has '^dirty: 0$'
out_has '^error: 0$'
srv_stop
assert_eq "$(sha256_range mo/origin.img 0 $((4 * MiB)))" "$(sha256 d4.bin)" "origin after the flush"
run_rc 0 "$WCACHE" check cache1.img

say "2. the cache's file system is full"
small_fs mc 20
truncate -s $((64 * MiB)) origin2.img
truncate -s $((16 * MiB)) mc/cache.img
run_rc 0 "$WCACHE" format mc/cache.img
srv_start origin=origin2.img cache=mc/cache.img control="$ctl"
run_rc 0 qio "write -P 0x22 0 2M" flush
fill mc
# 4 MiB more does not fit on the cache's file system: the write must fail.
# (qemu-io's exit status does not say whether a -c command failed: read its output.)
qio "write -P 0x33 8M 4M" flush >"$TMPD/q.out" 2>&1 || true
grep -Eq 'failed|error|Input/output|No space' "$TMPD/q.out" || {
	cat "$TMPD/q.out" >&2
	fail "a write the cache could not store was acknowledged"
}
say "write on the full cache: $(grep -Eo '(failed|error)[^.]*' "$TMPD/q.out" | head -1)"
grep -q 'No space left on device' "$TMPD/q.out" || fail "the client was not told ENOSPC"
# Only that write failed: its new blocks were never installed, the cache stays
# usable (no sticky error) and data acknowledged by the flush reads back.
run_rc 0 "$WCACHE" status --control "$ctl"
out_has '^error: 0$'
out_has '^dirty: 512$'
run_rc 0 qio "read -P 0x22 0 2M"
grep -q 'No space left on device' "$TMPD/srv.log" || {
	cat "$TMPD/srv.log" >&2
	fail "the server log does not name ENOSPC"
}
say "space returns: the same write succeeds, message flush drains everything"
rm mc/filler
run_rc 0 qio "write -P 0x33 8M 4M" flush
run_rc 0 "$WCACHE" message --control "$ctl" flush
run_rc 0 qio "read -P 0x22 0 2M" "read -P 0x33 8M 4M"
srv_stop
run_rc 0 "$WCACHE" check mc/cache.img
assert_eq "$(sha256_range origin2.img 0 $((2 * MiB)))" "$(sha256 d2.bin)" "origin at 0"
head -c $((4 * MiB)) /dev/zero | tr '\0' '\063' >d4b.bin
assert_eq "$(sha256_range origin2.img $((8 * MiB)) $((4 * MiB)))" "$(sha256 d4b.bin)" "origin at 8M"

say "3. format on a full file system fails clearly and leaves no cache"
fill mc
truncate -s $((16 * MiB)) mc/new.img
run_rc 1 "$WCACHE" format mc/new.img
err_has 'No space left on device'
run_rc 2 "$WCACHE" check mc/new.img
rm mc/filler
run_rc 0 "$WCACHE" format mc/new.img
say "ok"
