#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# wcache in front of a Ceph RBD image (origin rbd:rbd/IMAGE:conf=...), on a
# one-node cluster started under $TMPD:
# - data lands: qemu-io and fio (verify) write through wcache; nothing is
#   lost by "message flush"; "rbd export" of the image then equals both a
#   reference file written by the same qemu-io commands and the logical device;
# - a snapshot (rbd:...@SNAP) opens read-only and reads what was flushed;
# - exclusive ownership: a second wcache on the image is refused naming the
#   owner; after kill -9 of the first, a new one is still refused until it
#   asks for force_unlock=1, which blocklists the dead owner;
# - bad input: unknown pool, missing image or snapshot, unreadable conf,
#   unreachable cluster, a snapshot opened read-write, an image without the
#   exclusive-lock feature, a malformed spec: a clear message naming what is
#   wrong, a non-zero exit, and the cache file untouched;
# - the plugin's conf= parameter (the same keys as in the origin string).
source "$(dirname "$0")/ceph-functions.sh"
requires qemu-io qemu-img fio
check_rbd_backend
ceph_start

IMG=img
rbd create --size 64M "rbd/$IMG"
truncate -s 64M ref.img
truncate -s 16M cache.img
"$WCACHE" format cache.img >/dev/null
CTL=$TMPD/ctl.sock
SPEC=$(rbd_spec "$IMG")

# qio_both CMD...: the same qemu-io commands through wcache and on ref.img.
qio_both() {
	local a=() c
	for c in "$@"; do a+=(-c "$c"); done
	qemu-io -f raw "$URI" "${a[@]}" >"$TMPD/qio.log" 2>&1 ||
		{ cat "$TMPD/qio.log" >&2; fail "qemu-io through wcache: $*"; }
	qemu-io -f raw ref.img "${a[@]}" >/dev/null 2>&1 || fail "qemu-io on ref.img: $*"
}

# ---- data lands ----
srv_start origin="$SPEC" cache="$TMPD/cache.img" control="$CTL"
qio_both "write -P 0x11 0 1M" "write -P 0x22 5M 64k" "write -P 0x33 63M 1M" \
	"write -P 0x44 4608 512" "write -P 0x55 10M 12345" "discard 20M 1M"
qemu-io -f raw "$URI" -c "read -P 0x33 63M 1M" -c "read -P 0x44 4608 512" >/dev/null ||
	fail "reading back through wcache"
run_rc 0 "$WCACHE" message --control "$CTL" flush
rbd_export "$IMG" export.img
cmp export.img ref.img || fail "rbd export differs from the reference after message flush"
say "qemu-io writes landed in the image (rbd export == reference)"

# fio: random 4 KiB writes with verification, then the same comparison
# against the logical device read back through wcache.
fio --name=v --ioengine=nbd --uri="$URI" --rw=randwrite --bs=4k --size=8M --offset=32M \
	--iodepth=8 --verify=crc32c --do_verify=1 --output="$TMPD/fio.log" >/dev/null 2>&1 ||
	{ cat "$TMPD/fio.log" >&2; fail "fio verify through wcache"; }
run_rc 0 "$WCACHE" message --control "$CTL" flush
qemu-img convert -f raw -O raw "$URI" logical.img
rbd_export "$IMG" export.img
cmp export.img logical.img || fail "rbd export differs from the logical device after fio"
say "fio verify passed; rbd export == logical device"

# ---- exclusive lock ----
truncate -s 16M cache2.img
"$WCACHE" format cache2.img >/dev/null
run_rc nonzero "$WCACHE" serve "$SPEC" "$TMPD/cache2.img" --run true
err_has "rbd:rbd/$IMG: image rbd/$IMG is locked by [0-9.]+:[0-9]+/[0-9]+ .*force_unlock=1"
say "second wcache refused: $(grep -o 'image rbd.*' "$TMPD/err" | head -1)"
owner=$(rbd lock ls "rbd/$IMG" | awk 'NR > 2 { print $NF }')
[[ -n "$owner" ]] || fail "rbd lock ls shows no owner while wcache runs"

kill -KILL "$SRV_PID"
wait "$SRV_PID" 2>/dev/null || true
SRV_PID=
run_rc nonzero "$WCACHE" serve "$SPEC" "$TMPD/cache.img" --run true
err_has "is locked by $owner"
say "after kill -9 the stale lock still refuses a plain open"
# shellcheck disable=SC2016 # $uri is for the shell nbdkit runs
run_rc 0 "$WCACHE" serve "$(rbd_spec "$IMG" force_unlock=1)" "$TMPD/cache.img" \
	--run 'qemu-io -f raw "$uri" -c "read -P 0x22 5M 64k"'
err_has "force_unlock: breaking the lock held by $owner"
ceph osd blocklist ls 2>/dev/null | grep -qF "$owner" || fail "the old owner $owner is not blocklisted"
say "force_unlock=1 broke the lock and blocklisted $owner"

# ---- snapshot: read-only, what was flushed ----
rbd snap create "rbd/$IMG@s1" >/dev/null 2>&1
run_rc 0 "$WCACHE" export "$(rbd_spec "$IMG@s1")" cache.img snap.img
cmp snap.img logical.img || fail "export through the snapshot differs"
run_rc nonzero "$WCACHE" flush "$(rbd_spec "$IMG@s1")" cache.img
err_has "rbd:rbd/$IMG@s1: a snapshot is read-only"
say "snapshot: read-only export ok, read-write open refused"

# ---- plugin parameters: conf= (relative here: the plugin makes it absolute) ----
cp "$CEPH_CONF" "$TMPD/rel.conf"
srv_start origin="rbd:rbd/$IMG" conf=rel.conf cache="$TMPD/cache.img"
qemu-io -f raw "$URI" -c "read -P 0x22 5M 64k" >/dev/null || fail "read through origin + conf="
srv_stop
run_rc nonzero "${NBDKIT[@]}" -U - "$PLUGIN" origin="$TMPD/ref.img" conf=rel.conf \
	cache="$TMPD/cache.img" --run true
err_has "conf=, id=, keyring= and force_unlock= apply to an rbd:POOL/IMAGE origin only"
say "plugin parameter conf= works and is refused for a file origin"

# ---- bad input ----
snapshot cache.img
bad() {		# bad SPEC REGEX: wcache flush and serve fail with REGEX, cache untouched
	run_rc nonzero timeout 60 "$WCACHE" flush "$1" cache.img
	err_has "$2"
	run_rc nonzero timeout 60 "$WCACHE" serve "$1" "$TMPD/cache.img" --run true
	err_has "$2"
	assert_unchanged cache.img
	say "refused: $(grep -Eo -- "$2.*" "$TMPD/err" | head -1)"
}
bad "rbd:nopool/$IMG:conf=$CEPH_CONF" 'rbd:nopool/img: pool "nopool" does not exist'
bad "$(rbd_spec missing)" 'rbd:rbd/missing: image "missing" does not exist in pool "rbd"'
# A snapshot opens read-only only (export), so that is where a missing one shows.
run_rc nonzero "$WCACHE" export "$(rbd_spec "$IMG@nosnap")" cache.img nosnap.img
err_has "rbd:rbd/$IMG@nosnap: image rbd/$IMG has no snapshot \"nosnap\""
[[ ! -s nosnap.img ]] || fail "export of a missing snapshot wrote data"
bad "rbd:rbd/$IMG:conf=$TMPD/no/ceph.conf" "cannot read the Ceph config file $TMPD/no/ceph.conf"
bad "rbd:rbd" 'expected POOL/IMAGE'
bad "$(rbd_spec "$IMG" no_such_option=1)" '"no_such_option" is not a Ceph option'
rbd create --size 16M --image-feature layering rbd/nolock
bad "$(rbd_spec nolock)" 'lacks the exclusive-lock feature'
# A monitor nobody listens on: bounded by client_mount_timeout.
sed 's/^mon host = .*/mon host = v2:127.0.0.1:9/' "$CEPH_CONF" >dead.conf
t=$SECONDS
bad "rbd:rbd/$IMG:conf=$TMPD/dead.conf:client_mount_timeout=3" \
	'cannot reach the Ceph cluster \(mon host v2:127.0.0.1:9\) within client_mount_timeout=3 s'
((SECONDS - t < 30)) || fail "an unreachable cluster took $((SECONDS - t)) s to report"
rbd ls rbd | grep -qx missing && fail "a failed open created an image"
echo "rbd basic: data lands, lock, snapshot and bad input all behave"
