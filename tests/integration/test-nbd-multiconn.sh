#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# can_multi_conn is a promise: a FLUSH on one connection makes the writes
# completed on every other connection durable. Connection A writes (no flush,
# no FUA), connection B flushes, then the server dies by SIGKILL (no close,
# no commit); after a restart A's data must be there. Autocommit is pushed
# out of the way so only B's flush can have committed A's write. A control
# run without B's flush shows that the unflushed write is indeed lost, so
# the main check can tell a working flush from a missing one.
source "$(dirname "$0")/functions.sh"
requires nbdkit qemu-io
requires_wcache
tmpdir

# ---- nbdkit server helpers (the same block in every test-nbd-*.sh) ----
PLUGIN=$BUILD_DIR/nbdkit-wcache-plugin.so
[[ -f "$PLUGIN" ]] || fail "plugin $PLUGIN is missing (build the tree first)"
# An ASan/UBSan plugin needs its runtimes preloaded into the uninstrumented nbdkit.
NBDKIT=(nbdkit)
if [[ "${WC_SANITIZE:-}" == *address* ]]; then
	NBDKIT=(env "LD_PRELOAD=$(cc -print-file-name=libasan.so) $(cc -print-file-name=libubsan.so)"
		"ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" nbdkit)
fi
SRV_PID=
# srv_start ARGS...: nbdkit -f with the plugin and ARGS on $TMPD/srv.sock in
# the background; sets SRV_PID and URI once it is ready to accept clients.
srv_start() {
	local i
	rm -f "$TMPD/srv.sock" "$TMPD/srv.pid"
	"${NBDKIT[@]}" -f -U "$TMPD/srv.sock" -P "$TMPD/srv.pid" "$PLUGIN" "$@" \
		>>"$TMPD/srv.log" 2>&1 &
	SRV_PID=$!
	URI="nbd+unix:///?socket=$TMPD/srv.sock"
	for ((i = 0; i < 300; i++)); do
		[[ -s "$TMPD/srv.pid" ]] && return 0
		if ! kill -0 "$SRV_PID" 2>/dev/null; then
			cat "$TMPD/srv.log" >&2
			fail "nbdkit exited while starting: $*"
		fi
		sleep 0.1
	done
	fail "nbdkit did not start within 30 s"
}
# srv_stop: SIGTERM makes the plugin commit and close the cache; nbdkit must exit 0.
srv_stop() {
	local rc=0
	kill -TERM "$SRV_PID"
	wait "$SRV_PID" || rc=$?
	SRV_PID=
	if ((rc != 0)) || grep -Eq 'ERROR: [A-Za-z]+Sanitizer|runtime error:' "$TMPD/srv.log"; then
		cat "$TMPD/srv.log" >&2
		fail "nbdkit exited with $rc on SIGTERM (or a sanitizer report)"
	fi
}
srv_cleanup() {
	if [[ -n "$SRV_PID" ]]; then
		kill -KILL "$SRV_PID" 2>/dev/null
		wait "$SRV_PID" 2>/dev/null
	fi
	return 0
}
cleanup_fn srv_cleanup
# ---- end of server helpers ----
# Python with libnbd's bindings (python3-libnbd); a pyenv python3 first in
# PATH may not see them, so try the system one first.
PY=
for p in /usr/bin/python3 python3; do
	if "$p" -c 'import nbd' 2>/dev/null; then
		PY=$p
		break
	fi
done
[[ -n "$PY" ]] || skip "python3-libnbd (python module nbd) is not installed"

# write_then_die URI PID FLUSH_ON_B: A writes 0x5a at 1 MiB (64 KiB) and 0xa5
# at 8 MiB + 512 (512 bytes, unaligned); B flushes if asked; then SIGKILL PID
# while both connections are still open.
cat >client.py <<'PYEOF'
import os, signal, sys
import nbd

uri, pid, flush_b = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
a = nbd.NBD()
a.connect_uri(uri)
b = nbd.NBD()
b.connect_uri(uri)
if not (a.can_multi_conn() and b.can_multi_conn()):
    sys.exit("server does not advertise multi-conn")
a.pwrite(b"\x5a" * 65536, 1 << 20)
a.pwrite(b"\xa5" * 512, (8 << 20) + 512)
if flush_b:
    b.flush()
os.kill(pid, signal.SIGKILL)
PYEOF

# run_case FLUSH_ON_B: fresh origin (0x00) and cache, write, die, restart.
run_case() {
	local rc=0
	rm -f origin.img cache.img
	truncate -s 64M origin.img
	truncate -s 16M cache.img
	srv_start origin=origin.img cache=cache.img autocommit_time=3600000 \
		autocommit_blocks=1000000
	run_rc 0 "$PY" client.py "$URI" "$SRV_PID" "$1"
	wait "$SRV_PID" || rc=$?
	SRV_PID=
	assert_eq "$rc" 137 "nbdkit exit status after SIGKILL"
	srv_start origin=origin.img cache=cache.img
}

info "A writes, B flushes, server killed: A's data survives"
run_case 1
run_rc 0 qemu-io -f raw "$URI" -c "read -P 0x5a 1M 64k" -c "read -P 0xa5 8389120 512" \
	-c "read -P 0 8388608 512" -c "read -P 0 8389632 3584"
srv_stop

info "control: A writes, nobody flushes, server killed: the write is lost"
run_case 0
rc=0
qemu-io -f raw "$URI" -c "read -P 0 1M 64k" -c "read -P 0 8389120 512" >qio.out 2>&1 || rc=$?
srv_stop
((rc == 0)) || {
	cat qio.out >&2
	fail "an unflushed write survived SIGKILL with autocommit off: this test can no" \
		"longer tell whether B's flush committed A's write"
}
info "ok"
