#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The control socket cannot be tied up by idle clients (issue 16, item 7).
# 16 connections that never send a request took every client slot forever:
# "wcache status/message" then failed with "too many control clients" or
# "send: Broken pipe". Now a new client takes the slot of the one idle
# longest (which is told why), and a client idle for WC_CONTROL_IDLE_SEC
# (10 s) is closed with an "error:" line.
source "$(dirname "$0")/functions.sh"
requires nbdkit python3
requires_wcache
tmpdir
source "$(dirname "$0")/nbd-functions.sh"

truncate -s 16M origin.img
truncate -s 16M cache.img
run_rc 0 "$WCACHE" format cache.img
ctl=$TMPD/ctl.sock
srv_start origin=origin.img cache=cache.img control="$ctl"

# hold.py SOCK N: open N connections, send nothing, report what each got.
cat >hold.py <<'PYEOF'
import os, socket, sys, time
path, n = sys.argv[1], int(sys.argv[2])
conns = []
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    conns.append(s)
t0 = time.monotonic()
open("ready", "w").close()
while not os.path.exists("go"):
    time.sleep(0.05)
# Past the idle limit (10 s) plus the server's poll slack.
time.sleep(max(0, t0 + 12 - time.monotonic()))
evicted = idle = eof = 0
for s in conns:
    s.settimeout(2)
    data = b""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                eof += 1
                break
            data += d
    except (socket.timeout, ConnectionResetError):
        pass
    if b"make room" in data:
        evicted += 1
    if b"idle for 10 s" in data:
        idle += 1
print("evicted=%d idle=%d eof=%d" % (evicted, idle, eof))
PYEOF

say "16 idle connections hold every slot: status and message still work"
python3 hold.py "$ctl" 16 >hold.out 2>hold.err &
hold=$!
cleanup_fn kill "$hold"
for ((i = 0; i < 100; i++)); do
	[[ -e ready ]] && break
	sleep 0.1
done
[[ -e ready ]] || fail "hold.py did not connect: $(cat hold.err)"
for i in 1 2 3 4 5; do
	run_rc 0 "$WCACHE" status --control "$ctl"
	out_has '^dirty: 0$'
	run_rc 0 "$WCACHE" message --control "$ctl" clear_stats
	run_rc 0 "$WCACHE" status --control "$ctl" --json
	[[ "$(jq -r .total "$TMPD/out")" -gt 0 ]] || fail "status --json with idle clients"
done
touch go
wait "$hold" || fail "hold.py failed: $(cat hold.err)"
hold=
say "holders: $(cat hold.out)"
read -r ev id eo < <(sed -E 's/[a-z]+=//g' hold.out)
((ev >= 1)) || fail "no idle client was told it made room for a new one"
((ev + id == 16)) || fail "every idle client must be closed with a reason: $(cat hold.out)"
((eo == 16)) || fail "idle connections still open after 12 s: $(cat hold.out)"

say "a client that trickles a partial line is closed after the idle limit too"
python3 - "$ctl" <<'PYEOF' || fail "partial-line client"
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
t0 = time.monotonic()
try:
    # 4 bytes over 8 s: activity, but never a complete request.
    for c in b"stat":
        s.send(bytes([c]))
        time.sleep(2)
    s.settimeout(8)
    data = s.recv(4096)
except (BrokenPipeError, ConnectionResetError) as e:
    data = repr(e).encode()
dt = time.monotonic() - t0
assert b"idle for 10 s" in data, data
assert 9 < dt < 15, dt
PYEOF
run_rc 0 "$WCACHE" status --control "$ctl"
srv_stop
say "ok"
