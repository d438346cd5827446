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

source "$(dirname "$0")/nbd-functions.sh"
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

say "A writes, B flushes, server killed: A's data survives"
run_case 1
run_rc 0 qemu-io -f raw "$URI" -c "read -P 0x5a 1M 64k" -c "read -P 0xa5 8389120 512" \
	-c "read -P 0 8388608 512" -c "read -P 0 8389632 3584"
srv_stop

say "control: A writes, nobody flushes, server killed: the write is lost"
run_case 0
rc=0
qemu-io -f raw "$URI" -c "read -P 0 1M 64k" -c "read -P 0 8389120 512" >qio.out 2>&1 || rc=$?
srv_stop
((rc == 0)) || {
	cat qio.out >&2
	fail "an unflushed write survived SIGKILL with autocommit off: this test can no" \
		"longer tell whether B's flush committed A's write"
}
say "ok"
