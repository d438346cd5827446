# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# Helpers for tests/ceph/test-*.sh (source it; bash only). Sources the
# integration helpers (say/fail/skip, tmpdir, run_rc, ...), installs the Ceph
# packages through scripts/install-deps.sh when they are missing (skip, exit
# 77, only if that fails), then gives:
#   ceph_start            a fresh cluster under $TMPD/ceph (stopped at exit);
#                         sets CEPH_CONF (exported) and CEPH_DIR
#   osd_stop / osd_start  an outage of the only OSD, and its end
#   rbd_spec IMAGE [OPTS] the origin string "rbd:rbd/IMAGE:conf=...[:OPTS]"
#   srv_start/srv_stop    from tests/integration/nbd-functions.sh
_ceph_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../integration/functions.sh
source "$_ceph_dir/../integration/functions.sh"
MICRO_CEPH=$_ceph_dir/micro-ceph.sh

_ceph_missing() {
	local c
	for c in ceph-mon ceph-osd ceph rbd rados monmaptool; do
		command -v "$c" >/dev/null 2>&1 || return 0
	done
	return 1
}

if _ceph_missing; then
	say "Ceph packages missing: running scripts/install-deps.sh"
	"$_ceph_dir/../../scripts/install-deps.sh" >&2 || true
	_ceph_missing && skip "the Ceph packages (ceph-mon, ceph-osd, ceph-common) cannot be installed"
fi
requires_wcache
tmpdir
source "$_ceph_dir/../integration/nbd-functions.sh"

# One port range per test, so that ctest -j can run them side by side.
_ceph_port() {
	local base p
	base=$((46900 + ($(cksum <<<"$TEST_NAME" | cut -d' ' -f1) % 40) * 50))
	for ((p = base; p < base + 2000; p += 50)); do
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
	fail "no free port for the Ceph monitor"
}

CEPH_DIR=$TMPD/ceph
ceph_start() {
	local t=$SECONDS
	MICRO_CEPH_PORT=$(_ceph_port) "$MICRO_CEPH" start "$CEPH_DIR" >"$TMPD/ceph-start.log" 2>&1 || {
		cat "$TMPD/ceph-start.log" >&2
		fail "the test cluster did not start"
	}
	cleanup_fn "$MICRO_CEPH" stop "$CEPH_DIR"
	export CEPH_CONF=$CEPH_DIR/ceph.conf
	say "cluster up in $((SECONDS - t)) s ($CEPH_CONF)"
}

osd_stop() { "$MICRO_CEPH" osd-stop "$CEPH_DIR"; }
osd_start() { "$MICRO_CEPH" osd-start "$CEPH_DIR" >/dev/null; }

# rbd_spec IMAGE [KEY=VALUE...]: the origin string for pool rbd.
rbd_spec() {
	local s="rbd:rbd/$1:conf=$CEPH_CONF" kv
	shift
	for kv in "$@"; do s+=":$kv"; done
	echo "$s"
}

# rbd_export IMAGE FILE: the image's bytes, as the cluster has them.
rbd_export() {
	rm -f "$2"
	rbd export --no-progress "rbd/$1" "$2" >/dev/null 2>&1 || fail "rbd export rbd/$1 failed"
}

# check_rbd_backend: fail (not skip) when the binary was built without librbd.
check_rbd_backend() {
	local out
	truncate -s 1M "$TMPD/probe-cache.img"
	"$WCACHE" format "$TMPD/probe-cache.img" >/dev/null
	out=$("$WCACHE" flush "rbd:rbd/none:conf=/nonexistent" "$TMPD/probe-cache.img" 2>&1 || true)
	[[ "$out" != *"not supported by this build"* ]] ||
		fail "$WCACHE was built without librbd (install librbd-dev and rebuild)"
}
