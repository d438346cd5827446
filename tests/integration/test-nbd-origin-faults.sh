#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A remote origin (origin=nbd+unix://...) that fails: write errors injected
# by nbdkit's error filter, a slow serialized origin (delay filter), and an
# origin server killed by SIGKILL during writeback and while wcache restarts.
# Origin errors are not sticky: blocks stay dirty and readable from the
# cache, status shows the error, and a later "message flush" succeeds once
# the origin is back. Every case ends with the origin FILE alone compared
# with a reference image written by the same qemu-io commands.
source "$(dirname "$0")/functions.sh"
requires nbdkit qemu-io qemu-img python3
requires_wcache
tmpdir

source "$(dirname "$0")/nbd-functions.sh"

# ASan only: libasan preloaded into the uninstrumented nbdkit initialises
# lazily, inside glibc's newlocale() called by libp11-kit's constructor (a
# gnutls dependency of nbdkit and libnbd), and its dlerror() -> dcgettext()
# unlocks __libc_setlocale_lock under newlocale's write lock. The reader count
# ends at -1; after the first strerror() (any error message, so every case
# here) p11-kit's destructor blocks forever in freelocale() at exit. Nothing
# of wcache is involved (plain "nbdkit file" with the preload has the same
# lock state), so with ASan a server that has closed its cache - flock on the
# cache released, no close error - and then hangs in exit is killed instead.
ASAN_PRELOAD=0
[[ "${WC_SANITIZE:-}" == *address* ]] && ASAN_PRELOAD=1

# wc_stop: srv_stop, except for the ASan exit deadlock described above.
wc_stop() {
	local i closed
	if ((!ASAN_PRELOAD)); then
		srv_stop
		return
	fi
	kill -TERM "$SRV_PID"
	# Up to 30 s, or 3 s after the cache's flock was released (closed).
	for ((i = 0, closed = 0; i < 300 && closed < 30; i++)); do
		kill -0 "$SRV_PID" 2>/dev/null || break
		flock -n "$TMPD/cache.img" true && closed=$((closed + 1))
		sleep 0.1
	done
	i=0
	if kill -0 "$SRV_PID" 2>/dev/null; then
		((closed)) ||
			fail "nbdkit did not exit within 30 s of SIGTERM and still holds the cache"
		grep -q 'closing the cache' "$TMPD/srv.log" && {
			cat "$TMPD/srv.log" >&2
			fail "closing the cache failed"
		}
		say "(ASan preload: the server closed the cache, then hung in exit; killed)"
		kill -KILL "$SRV_PID"
		wait "$SRV_PID" 2>/dev/null || true
		SRV_PID=
		! grep -Eq 'ERROR: [A-Za-z]+Sanitizer|runtime error:' "$TMPD/srv.log" || {
			cat "$TMPD/srv.log" >&2
			fail "sanitizer report from the server"
		}
		return 0
	fi
	# It has exited: the same checks as srv_stop.
	wait "$SRV_PID" || i=$?
	SRV_PID=
	if ((i != 0)) || grep -Eq 'ERROR: [A-Za-z]+Sanitizer|runtime error:' "$TMPD/srv.log"; then
		cat "$TMPD/srv.log" >&2
		fail "nbdkit exited with $i on SIGTERM (or a sanitizer report)"
	fi
}

# ---- the origin: a plain nbdkit (file plugin, maybe filters) on a fixed socket ----
OSOCK=$TMPD/origin.sock
OURI="nbd+unix:///?socket=$OSOCK"
ORIG_PID=
# orig_start NBDKIT_ARGS...: serve origin.img on $OSOCK (a stale socket left
# by a killed server is removed first); returns once it accepts clients.
orig_start() {
	local i
	rm -f "$OSOCK" "$TMPD/origin.pid"
	nbdkit -f -U "$OSOCK" -P "$TMPD/origin.pid" "$@" >>"$TMPD/origin.log" 2>&1 &
	ORIG_PID=$!
	for ((i = 0; i < 300; i++)); do
		[[ -s "$TMPD/origin.pid" ]] && return 0
		if ! kill -0 "$ORIG_PID" 2>/dev/null; then
			cat "$TMPD/origin.log" >&2
			fail "origin nbdkit exited while starting: $*"
		fi
		sleep 0.1
	done
	fail "origin nbdkit did not start within 30 s"
}
# orig_stop [KILL|TERM]: stop the origin server (default TERM).
orig_stop() {
	local rc=0 sig=${1:-TERM}
	kill "-$sig" "$ORIG_PID"
	wait "$ORIG_PID" 2>/dev/null || rc=$?	# (no "Killed" job notice)
	ORIG_PID=
	if [[ $sig == KILL ]]; then
		assert_eq "$rc" 137 "origin nbdkit exit status after SIGKILL"
	elif ((rc != 0)); then
		cat "$TMPD/origin.log" >&2
		fail "origin nbdkit exited with $rc on SIGTERM"
	fi
}
orig_cleanup() {
	if [[ -n "$ORIG_PID" ]]; then
		kill -KILL "$ORIG_PID" 2>/dev/null
		wait "$ORIG_PID" 2>/dev/null
	fi
	return 0
}
cleanup_fn orig_cleanup

CTL=$TMPD/ctl.sock
# wc_start: the wcache server on origin $OURI, cache cache.img, control $CTL.
wc_start() {
	srv_start origin="$OURI" cache="$TMPD/cache.img" control="$CTL"
}

# ---- observing the running wcache ----

# wstat NAME: one value of "wcache status --control" (names as it prints them).
wstat() {
	local v
	run_rc 0 "$WCACHE" status --control "$CTL"
	v=$(sed -n "s/^$1: //p" "$TMPD/out")
	[[ "$v" =~ ^-?[0-9]+$ ]] || fail "wcache status --control has no '$1' field"
	echo "$v"
}

# status_line: the 14-field dm status line, straight from the control socket.
status_line() {
	python3 - "$CTL" <<'PYEOF' || fail "cannot read the status line from $CTL"
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
print(buf.decode().strip())
PYEOF
}

# assert_error_shown: status line field 1 = 1 and the stats' error is a -errno.
assert_error_shown() {
	local line e
	line=$(status_line)
	[[ "${line%% *}" == 1 ]] || fail "$1: status line field 1 is not 1: '$line'"
	e=$(wstat error)
	((e < 0)) || fail "$1: stats error is $e, expected a negative errno"
}

# assert_clean: no error anywhere and nothing dirty.
assert_clean() {
	local line
	line=$(status_line)
	[[ "${line%% *}" == 0 ]] || fail "$1: status line field 1 is not 0: '$line'"
	assert_eq "$(wstat error)" 0 "$1: stats error"
	assert_eq "$(wstat dirty)" 0 "$1: dirty blocks"
}

# flush_msg: "wcache message --control $CTL flush", exit status in FLUSH_RC,
# stderr in $TMPD/flush.err.
flush_msg() {
	FLUSH_RC=0
	timeout 120 "$WCACHE" message --control "$CTL" flush >"$TMPD/flush.out" \
		2>"$TMPD/flush.err" || FLUSH_RC=$?
	((FLUSH_RC != 124)) || fail "message flush did not return within 120 s"
	((FLUSH_RC < 128)) || fail "wcache message crashed (exit $FLUSH_RC)"
}

# flush_until_ok WHAT: after an outage the NBD backend reconnects with a
# backoff (up to 5 s) and the first origin flush after a lost connection
# fails once by design, so a later flush (not necessarily the first) must
# succeed; give it 30 s.
flush_until_ok() {
	local tries=0 deadline=$((SECONDS + 30))
	while :; do
		tries=$((tries + 1))
		flush_msg
		((FLUSH_RC != 0)) || break
		say "$1: flush attempt $tries failed: $(head -c 300 "$TMPD/flush.err")"
		((SECONDS < deadline)) || {
			cat "$TMPD/flush.err" >&2
			fail "$1: message flush still fails 30 s after the origin came back"
		}
		sleep 0.5
	done
	say "$1: flush succeeded after $tries attempt(s)"
}

# ---- workloads: the same qemu-io commands go to wcache and to ref.img ----

# qio_both CMD...: run qemu-io commands through wcache ($URI) and on ref.img.
qio_both() {
	local a=() c
	for c in "$@"; do a+=(-c "$c"); done
	run_rc 0 qemu-io -f raw "$URI" "${a[@]}"
	run_rc 0 qemu-io -f raw ref.img "${a[@]}"
}

# scatter_cmds SEED N STRIDE: N 4 KiB writes, STRIDE bytes apart from 4 KiB
# on, each with its own pattern (so a block written to the wrong place shows).
scatter_cmds() {
	local i
	CMDS=()
	for ((i = 0; i < $2; i++)); do
		CMDS+=("write -P $((($1 + i) % 255 + 1)) $((4096 + i * $3)) 4k")
	done
}

# reads_of_cmds: the CMDS writes turned into pattern-checking reads.
reads_of_cmds() {
	local c
	READS=()
	for c in "${CMDS[@]}"; do READS+=(-c "read ${c#write }"); done
}

# assert_same_as_ref WHAT TARGET: the whole image equals ref.img.
assert_same_as_ref() {
	local rc=0
	qemu-img compare -f raw -F raw ref.img "$2" >"$TMPD/cmp.out" 2>&1 || rc=$?
	{ ((rc == 0)) && grep -q 'Images are identical' "$TMPD/cmp.out"; } || {
		cat "$TMPD/cmp.out" >&2
		fail "$1: the device differs from the reference (qemu-img compare exit $rc)"
	}
}

# fresh: zero origin and reference (64 MiB), blank cache of $1 bytes.
fresh() {
	rm -f origin.img ref.img cache.img
	truncate -s 64M origin.img ref.img
	truncate -s "$1" cache.img
}

# ================= 1. write errors injected on the origin =================
say "1. origin write errors (nbdkit error filter): flush fails, data stays, then recovers"
fresh 16M
ERRF=(error=EIO error-pwrite-rate=100% error-zero-rate=100% error-file="$TMPD/fail-now")
# Fail origin flushes too where this nbdkit's error filter can (1.32 cannot).
if nbdkit --filter=error null --help 2>&1 | grep -q 'error-flush'; then
	ERRF+=(error-flush-rate=100%)
fi
orig_start --filter=error file origin.img "${ERRF[@]}"
wc_start
qio_both "write -P 0x5a 1M 256k" "write -P 0xa5 8M 4k" "write -P 0x3c 60M 512k"
dirty0=$(wstat dirty)
((dirty0 == 64 + 1 + 128)) || fail "expected 193 dirty blocks after the writes, got $dirty0"
assert_eq "$(wstat error)" 0 "stats error before any fault"

touch fail-now
flush_msg
((FLUSH_RC != 0)) || fail "message flush succeeded although every origin write fails"
{ grep -Eq 'flush.*(fail|error)' flush.err && grep -q 'Input/output error' flush.err; } || {
	cat "$TMPD/flush.err" >&2
	fail "the failed flush does not say what failed"
}
assert_error_shown "after the failed flush"
assert_eq "$(wstat dirty)" "$dirty0" "dirty blocks after the failed flush"
# The cache still serves the data (hits), and the whole device is as written.
run_rc 0 qemu-io -f raw -r "$URI" -c "read -P 0x5a 1M 256k" -c "read -P 0xa5 8M 4k" \
	-c "read -P 0x3c 60M 512k"
assert_same_as_ref "through wcache while the origin fails" "$URI"
# A second failed flush changes nothing either.
flush_msg
((FLUSH_RC != 0)) || fail "second message flush succeeded while the origin still fails"
assert_eq "$(wstat dirty)" "$dirty0" "dirty blocks after a second failed flush"
cmp -s origin.img ref.img && fail "the origin holds the data although every write failed"

rm -f fail-now
flush_msg
((FLUSH_RC == 0)) || {
	cat "$TMPD/flush.err" >&2
	fail "message flush failed after the origin recovered"
}
assert_clean "after the origin recovered"
wc_stop
orig_stop
cmp origin.img ref.img || fail "the origin file does not hold the data after the flush"

# ================= 2. slow, serialized origin =================
say "2. slow origin (delay-write=20ms, one request at a time): writes, reads, flush"
fresh 2M	# ~500 blocks: the 4 MiB run below forces writeback while writing
orig_start -t 1 --filter=noparallel --filter=delay file origin.img serialize=all-requests \
	delay-write=20ms
wc_start
scatter_cmds 7 40 1048576
qio_both "write -P 0x11 16M 4M" "${CMDS[@]}" "write -P 0x22 16M 4k" "write -P 0x33 18M 6k"
assert_same_as_ref "through wcache over the slow origin" "$URI"
flush_msg
((FLUSH_RC == 0)) || {
	cat "$TMPD/flush.err" >&2
	fail "message flush over the slow origin failed"
}
assert_clean "after flushing to the slow origin"
wc_stop
orig_stop
cmp origin.img ref.img || fail "the slow origin file does not hold the data after the flush"

# ================= 3. origin killed during writeback =================
say "3a. origin killed by SIGKILL while a flush writes back"
fresh 16M
orig_start -t 1 --filter=noparallel --filter=delay file origin.img serialize=all-requests \
	delay-write=20ms
wc_start
scatter_cmds 100 150 65536	# 150 separate runs: ~3 s of writeback at 20 ms each
qio_both "${CMDS[@]}"
reads_of_cmds
assert_eq "$(wstat dirty)" 150 "dirty blocks before the flush"
# The flush runs in the background (its own output files: wstat uses out/err).
timeout 120 "$WCACHE" message --control "$CTL" flush >bg.out 2>bg.err &
flush_pid=$!
for ((i = 0; i < 200; i++)); do
	(($(wstat writeback) > 0)) && break
	sleep 0.05
done
(($(wstat writeback) > 0)) || fail "writeback never started after message flush"
sleep 0.3
orig_stop KILL
rc=0
wait "$flush_pid" || rc=$?
((rc != 124)) || fail "message flush hung after the origin died"
((rc != 0 && rc < 128)) || {
	cat bg.err >&2
	fail "message flush exited $rc although the origin died during writeback"
}
grep -Eq 'flush.*(fail|error)' bg.err || {
	cat bg.err >&2
	fail "the failed flush does not say what failed"
}
grep -qF "$OURI: connection to the NBD server lost" srv.log ||
	fail "the server log does not report the lost origin connection"
assert_error_shown "after the origin died"
# No origin flush happened, so nothing may have been freed.
assert_eq "$(wstat dirty)" 150 "dirty blocks after the origin died"

say "3b. origin down: cached data still readable, misses fail cleanly, writes accepted"
run_rc 0 timeout 60 qemu-io -f raw -r "$URI" "${READS[@]}"
rc=0
timeout 60 qemu-io -f raw -r "$URI" -c "read 0 4k" >miss.log 2>&1 || rc=$?
((rc != 124)) || fail "a read miss hung while the origin was down"
((rc != 0 && rc < 128)) || {
	cat miss.log >&2
	fail "a read miss with the origin down exited $rc (expected a read error)"
}
qio_both "write -P 0xee 4096 4k" "write -P 0xef 40M 64k"
flush_msg
((FLUSH_RC != 0)) || fail "message flush succeeded with the origin down"
assert_error_shown "flush with the origin down"

say "3c. origin restarted on the same socket: a later flush drains everything"
orig_start file origin.img
flush_until_ok "after the origin restart"
assert_clean "after draining to the restarted origin"
assert_same_as_ref "through wcache after the restart" "$URI"
wc_stop
orig_stop
cmp origin.img ref.img || fail "the origin file misses data after the outage"

say "3d. wcache restarted while the origin is down: refuses to start, naming the URI"
orig_start file origin.img
wc_start
scatter_cmds 200 30 131072
qio_both "${CMDS[@]}" "write -P 0x77 30M 1M"
reads_of_cmds
dirty1=$(wstat dirty)
assert_eq "$dirty1" $((30 + 256)) "dirty blocks before the restart"
orig_stop KILL
wc_stop	# a clean shutdown must not need the origin
rm -f srv.sock srv.pid
rc=0
timeout -k 5 "$((ASAN_PRELOAD ? 10 : 60))" "${NBDKIT[@]}" -f -U "$TMPD/srv.sock" "$PLUGIN" origin="$OURI" \
	cache="$TMPD/cache.img" control="$CTL" >start.log 2>&1 || rc=$?
((rc == 137)) && rc=124	# timed out, and SIGTERM was not enough
if ((rc == 124 && ASAN_PRELOAD)) && grep -q 'NBD connection failed' start.log; then
	say "(ASan preload: the failed start hung in exit after its error; killed)"
	rc=1
fi
((rc != 124)) || fail "wcache did not exit in time when started with the origin down"
((rc != 0 && rc < 128)) || {
	cat start.log >&2
	fail "wcache started (or crashed, exit $rc) with its origin down"
}
{ grep -qF "$OURI" start.log && grep -q 'NBD connection failed' start.log; } || {
	cat start.log >&2
	fail "the start-up error does not name the origin URI and the connection failure"
}
[[ -e srv.sock ]] && fail "a failed start left a listening socket behind"

orig_start file origin.img
wc_start
assert_eq "$(wstat dirty)" "$dirty1" "dirty blocks after restarting with the origin back"
assert_eq "$(wstat error)" 0 "stats error after a clean restart"
run_rc 0 qemu-io -f raw -r "$URI" "${READS[@]}" -c "read -P 0x77 30M 1M"
cmp -s origin.img ref.img && fail "the origin already holds the data: the restart proved nothing"
assert_same_as_ref "through wcache after restarting it" "$URI"
flush_msg
((FLUSH_RC == 0)) || {
	cat "$TMPD/flush.err" >&2
	fail "message flush failed after restarting wcache with the origin back"
}
assert_clean "after the final flush"
wc_stop
orig_stop
cmp origin.img ref.img || fail "the origin file misses data written before the wcache restart"
say "ok"
