#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The systemd units (issue 17). systemd-analyze verify finds nothing to say
# about wcache@.service and wcache@.socket. Then the service's own command
# lines, taken from the unit and expanded as systemd would (Environment=
# defaults, EnvironmentFile= overrides, %i and %t), run with NOTIFY_SOCKET
# pointing at a datagram socket this test listens on:
#  - READY=1 arrives only after recovery: its STATUS= already counts the
#    dirty blocks a killed server left behind, and the data reads back at once;
#  - STATUS= lines follow every metrics interval;
#  - SIGTERM sends STOPPING=1, exits 0 and commits without draining
#    (wcache check: exit 1, dirty);
#  - with FLUSH_ON_STOP=yes the ExecStop line drains first (check: exit 0);
#  - socket activation (NBD_LISTEN= empty, the socket unit's path):
#    systemd-socket-activate hands nbdkit the listening socket and the first
#    client is served.
source "$(dirname "$0")/functions.sh"
requires nbdkit qemu-io python3 systemd-analyze
requires_wcache
tmpdir
source "$(dirname "$0")/nbd-functions.sh"

UNIT_SRC=$BUILD_DIR/systemd/wcache@.service
SOCKET_SRC=$(cd "$(dirname "$0")/../.." && pwd)/systemd/wcache@.socket
[[ -f "$UNIT_SRC" ]] || fail "$UNIT_SRC missing (configure the build tree)"

# The units with the wcache under test in place of the installed one.
mkdir units
sed -E "s#(=|exec )/[^ =']*/wcache #\1$WCACHE #g" "$UNIT_SRC" >units/wcache@.service
cp "$SOCKET_SRC" units/wcache@.socket
grep -q "ExecStart=$WCACHE serve" units/wcache@.service || fail "ExecStart not rewritten"

say "systemd-analyze verify"
ln -s wcache@.service units/wcache@t1.service
ln -s wcache@.socket units/wcache@t1.socket
run_rc 0 systemd-analyze verify --man=no units/wcache@t1.service units/wcache@t1.socket
[[ ! -s "$TMPD/err" ]] || { cat "$TMPD/err" >&2; fail "systemd-analyze verify complained"; }
# The check can fail: a typo in the unit is reported.
sed 's/^Type=notify/Type=notifyy/' units/wcache@.service >units/wcache@t2.service
run_rc 0 systemd-analyze verify --man=no units/wcache@t2.service
err_has "Failed to parse service type"

# ---------------------------------------------------------------- run it
NAME=t1
RUN=$TMPD/run			# %t
# unit_line KEY: the unit's KEY= value with %i and %t expanded.
unit_line() {
	sed -n "s/^$1=//p" units/wcache@.service | sed "s#%i#$NAME#g; s#%t#$RUN#g"
}
CTL=$RUN/wcache/$NAME/control
NBD_SOCK=$RUN/wcache/$NAME/nbd.sock

# svc_env CONF: the environment systemd gives the service: Environment=
# defaults, then the EnvironmentFile (which overrides them).
svc_env() {
	eval "export $(unit_line Environment)"
	set -a
	# shellcheck disable=SC1090
	source "$1"
	set +a
}

# The notify listener: one line per datagram, newlines shown as " | ".
cat >listen.py <<'PYEOF'
import os, socket, sys
path, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
open(log + ".ready", "w").close()
with open(log, "a") as f:
    while True:
        d = s.recv(4096).decode()
        f.write(d.replace("\n", " | ") + "\n")
        f.flush()
PYEOF
LISTEN_PID=
listen_cleanup() {
	[[ -z "$LISTEN_PID" ]] || kill "$LISTEN_PID" 2>/dev/null || true
}
cleanup_fn listen_cleanup
python3 listen.py "$TMPD/notify.sock" notify.log &
LISTEN_PID=$!
for ((i = 0; i < 100; i++)); do [[ -e notify.log.ready ]] && break; sleep 0.05; done
[[ -e notify.log.ready ]] || fail "notify listener did not start"

# wait_notify REGEX [SECONDS]: until a datagram matching REGEX arrived.
wait_notify() {
	local i n=$((${2:-30} * 10))
	for ((i = 0; i < n; i++)); do
		grep -Eq -- "$1" notify.log 2>/dev/null && return 0
		sleep 0.1
	done
	cat notify.log >&2 2>/dev/null || true
	fail "no notification matching /$1/ within ${2:-30} s"
}

# What nbdkit needs before the command (the ASan runtimes preloaded, see nbd-functions.sh).
serve_env=("${NBDKIT[@]}")
unset 'serve_env[-1]'
SVC_PID=
svc_cleanup() {
	[[ -z "$SVC_PID" ]] || kill -KILL "$SVC_PID" 2>/dev/null || true
}
cleanup_fn svc_cleanup
# svc_start CONF: ExecStart in the background, as systemd runs it (foreground).
svc_start() {
	: >notify.log
	mkdir -p "$RUN/wcache/$NAME"	# RuntimeDirectory=wcache/%i
	(
		svc_env "$1"
		eval "set -- $(unit_line ExecStart)"
		export NOTIFY_SOCKET=$TMPD/notify.sock
		exec "${serve_env[@]}" "$@"
	) >>svc.log 2>&1 &
	SVC_PID=$!
}
# svc_stop: ExecStop, then SIGTERM (KillSignal=); the service must exit 0.
svc_stop() {
	local rc=0
	(
		svc_env "$1"
		eval "set -- $(unit_line ExecStop)"
		exec "$@"
	) || fail "ExecStop failed"
	kill -TERM "$SVC_PID"
	wait "$SVC_PID" || rc=$?
	SVC_PID=
	((rc == 0)) || { cat svc.log >&2; fail "service exited $rc on SIGTERM"; }
	rm -rf "$RUN/wcache/$NAME"	# RuntimeDirectory= goes with the service
}

truncate -s 64M origin.img
truncate -s 16M cache.img
run_rc 0 "$WCACHE" format cache.img

# Dirty blocks for recovery: written and flushed, then the server is killed.
srv_start origin=origin.img cache=cache.img
run_rc 0 qemu-io -f raw "$URI" -c "write -P 0x5a 0 1M" -c flush
kill -KILL "$SRV_PID"
wait "$SRV_PID" 2>/dev/null || true
SRV_PID=
run_rc 1 "$WCACHE" check cache.img	# dirty

cat >t1.conf <<CEOF
# a test conf: comments and defaults as in wcache-example.conf
ORIGIN=$TMPD/origin.img
CACHE=$TMPD/cache.img
OPTIONS=--metrics-interval=1
CEOF

say "READY=1 after recovery"
svc_start t1.conf
wait_notify '^READY=1'
# The READY datagram's STATUS already counts the recovered blocks.
grep -E '^READY=1 \| STATUS=dirty 256/' notify.log >/dev/null ||
	{ cat notify.log >&2; fail "READY=1 without the recovered dirty blocks in STATUS="; }
# Ready means serving: the data reads back through the unit's socket now.
run_rc 0 qemu-io -f raw "nbd+unix:///?socket=$NBD_SOCK" -c "read -P 0x5a 0 1M"
run_rc 0 "$WCACHE" status --control "$CTL"
out_has "^dirty: 256$"
say "STATUS= every interval"
wait_notify '^STATUS=dirty 256/' 5
say "stop: STOPPING=1, commit, no drain"
svc_stop t1.conf
wait_notify '^STOPPING=1' 5
run_rc 1 "$WCACHE" check cache.img
grep -q "READY=1" svc.log && fail "NOTIFY_SOCKET messages leaked to the log"

say "FLUSH_ON_STOP=yes drains on stop"
echo "FLUSH_ON_STOP=yes" >>t1.conf
svc_start t1.conf
wait_notify '^READY=1'
svc_stop t1.conf
run_rc 0 "$WCACHE" check cache.img
cmp -n $((1 << 20)) origin.img <(python3 -c 'import sys; sys.stdout.buffer.write(b"\x5a" * (1 << 20))') ||
	fail "origin does not hold the drained data"

if command -v systemd-socket-activate >/dev/null; then
	say "socket activation"
	act_sock=$(sed -n 's/^ListenStream=//p' units/wcache@.socket | sed "s#%i#$NAME#g; s#%t#$RUN#g")
	assert_eq "$act_sock" "$RUN/wcache/$NAME.sock" "socket unit path"
	echo "NBD_LISTEN=" >>t1.conf
	: >notify.log
	mkdir -p "$RUN/wcache/$NAME"
	(
		svc_env t1.conf
		eval "set -- $(unit_line ExecStart)"
		export NOTIFY_SOCKET=$TMPD/notify.sock
		# It passes on only the variables named with -E.
		exec systemd-socket-activate -l "$act_sock" -E NOTIFY_SOCKET -E PATH \
			"${serve_env[@]}" "$@"
	) >>svc.log 2>&1 &
	SVC_PID=$!
	for ((i = 0; i < 100; i++)); do [[ -S "$act_sock" ]] && break; sleep 0.05; done
	[[ -S "$act_sock" ]] || fail "systemd-socket-activate did not listen"
	[[ ! -s notify.log ]] || fail "the service started before the first connection"
	run_rc 0 qemu-io -f raw "nbd+unix:///?socket=$act_sock" -c "write -P 0x6b 0 64k" \
		-c "read -P 0x6b 0 64k"
	wait_notify '^READY=1'
	svc_stop t1.conf
fi
say "ok"
