#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A Ceph outage under load. The only OSD is stopped while a client writes
# (wctest-kill9: 512 B..8 KiB writes, FUA and flushes at random) through
# wcache with writeback running (low watermarks). During the outage writes
# and flushes keep completing into the cache, status field 1 shows the
# origin error, and "message flush" fails naming the image. Then wcache is
# killed with SIGKILL, the OSD comes back, wcache restarts (force_unlock=1:
# the dead process still holds the image lock) and every write acknowledged
# before the last completed flush reads back (per-sector check). After
# "message flush" the image, exported with "rbd export", equals the logical
# device. The cache has 512-byte blocks: a write covering part of an uncached
# block must read the origin first, which an outage refuses. rados_osd_op_timeout=3 keeps each failed writeback attempt short.
source "$(dirname "$0")/ceph-functions.sh"
requires qemu-img python3
check_rbd_backend
KILL9=$(requires_helper wctest-kill9)
ceph_start

rbd create --size 64M rbd/img
truncate -s 64M cache.img
# 512-byte blocks: every write the client makes covers whole blocks, so none
# needs the origin (a partial write to an uncached block reads it first).
"$WCACHE" format --block-size 512 cache.img >/dev/null
CTL=$TMPD/ctl.sock
STATE=$TMPD/kill9.state
args=(cache="$TMPD/cache.img" control="$CTL")
opts=(high_watermark=5 low_watermark=0 autocommit_time=100)

# wstat NAME: one value of "wcache status --control".
wstat() {
	run_rc 0 "$WCACHE" status --control "$CTL"
	sed -n "s/^$1: //p" "$TMPD/out"
}

# status_field1: field 1 (error) of the dm status line from the control socket.
status_field1() {
	python3 - "$CTL" <<-'EOF' || fail "cannot read the status line from $CTL"
		import socket, sys
		s = socket.socket(socket.AF_UNIX)
		s.connect(sys.argv[1])
		s.sendall(b"status\n")
		buf = b""
		while not buf.endswith(b"\n"):
		    d = s.recv(4096)
		    if not d:
		        break
		    buf += d
		print(buf.decode().split()[0])
	EOF
}

srv_start origin="$(rbd_spec img rados_osd_op_timeout=3)" "${args[@]}" "${opts[@]}"
"$KILL9" write "$URI" "$STATE" >"$TMPD/writer.log" 2>&1 &
writer=$!
cleanup_fn kill -KILL "$writer"
sleep 2
osd_stop
say "OSD stopped; writes=$(wstat writes) dirty=$(wstat dirty)"
w0=$(wstat writes)
sleep 5
w1=$(wstat writes)
kill -0 "$writer" 2>/dev/null || { cat "$TMPD/writer.log" >&2; fail "the writer stopped during the outage"; }
((w1 > w0 + 100)) || fail "writes stalled during the outage ($w0 -> $w1)"
say "outage: $((w1 - w0)) writes completed in 5 s with the OSD down"

# The origin error is visible, and a flush names the image (bounded by the op timeout).
for ((i = 0; i < 50; i++)); do
	[[ "$(status_field1)" == 1 ]] && break
	sleep 0.2
done
[[ "$(status_field1)" == 1 ]] || fail "status field 1 is not 1 during the outage"
t=$SECONDS
run_rc nonzero timeout 60 "$WCACHE" message --control "$CTL" flush
err_has "rbd:rbd/img"
say "message flush during the outage ($((SECONDS - t)) s): $(head -c 200 "$TMPD/err")"

kill -KILL "$SRV_PID"
wait "$SRV_PID" 2>/dev/null || true
SRV_PID=
wait "$writer" || { cat "$TMPD/writer.log" >&2; fail "writer failed"; }
say "$(cat "$TMPD/writer.log")"

t=$SECONDS
osd_start
say "OSD back in $((SECONDS - t)) s"
srv_start origin="$(rbd_spec img rados_osd_op_timeout=3 force_unlock=1)" "${args[@]}"
"$KILL9" verify "$URI" "$STATE" >"$TMPD/verify.log" 2>&1 ||
	{ cat "$TMPD/verify.log" >&2; fail "data lost or corrupted across the outage and kill -9"; }
say "$(cat "$TMPD/verify.log")"

# A second, short outage under the same wcache: once the OSD is back,
# librados reconnects, librbd keeps (or retakes) the image lock and writeback
# resumes by itself, so a later "message flush" succeeds without a restart.
qemu-io -f raw "$URI" -c "write -P 0x5a 40M 4M" >/dev/null || fail "write before the 2nd outage"
osd_stop
qemu-io -f raw "$URI" -c "write -P 0x6b 48M 4M" >/dev/null || fail "write during the 2nd outage"
sleep 4
osd_start
for ((i = 0; ; i++)); do
	timeout 120 "$WCACHE" message --control "$CTL" flush 2>"$TMPD/flush.err" && break
	((i < 30)) || { cat "$TMPD/flush.err" >&2; fail "writeback did not resume after the OSD came back"; }
	sleep 1
done
say "after a 2nd outage writeback resumed by itself (flush ok after $i retries)"
qemu-io -f raw "$URI" -c "read -P 0x5a 40M 4M" -c "read -P 0x6b 48M 4M" >/dev/null ||
	fail "data written around the 2nd outage reads back wrong"

# "message flush" empties the cache.
run_rc 0 timeout 120 "$WCACHE" message --control "$CTL" flush
[[ "$(status_field1)" == 0 ]] || fail "status field 1 still shows an error after the flush"
assert_eq "$(wstat dirty)" 0 "dirty blocks after the flush"
qemu-img convert -f raw -O raw "$URI" logical.img
srv_stop
rbd_export img export.img
cmp export.img logical.img || fail "rbd export differs from the logical device"
echo "rbd outage: writes kept completing, every flushed write survived kill -9, image == device"
