#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Prometheus metrics of a running server, all three ways (issue 17):
# 'wcache metrics --control', metrics-file= (rewritten atomically every
# interval) and metrics-listen= (HTTP /metrics). Each output passes
# 'promtool check metrics' and its counters follow real I/O: 1 MiB written
# is 256 blocks and a write-latency observation; a flush message writes
# them back (run-size histogram sums to 1 MiB) and leaves nothing dirty.
source "$(dirname "$0")/functions.sh"
requires nbdkit qemu-io promtool curl python3
requires_wcache
tmpdir
source "$(dirname "$0")/nbd-functions.sh"

# metric FILE NAME: the value of the one sample of NAME in FILE.
metric() {
	awk -v n="$2" '$1 ~ "^"n"[{]" { print $2; found=1 } END { exit !found }' "$1" ||
		fail "metric $2 not in $1"
}
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

truncate -s 64M origin.img
truncate -s 16M cache.img
run_rc 0 "$WCACHE" format cache.img
ctl=$TMPD/ctl.sock
port=$(free_port)

# serve passes the options on to the plugin.
run_rc 0 "$WCACHE" serve origin.img cache.img --dry-run --metrics-file "$TMPD/m.prom" \
	--metrics-interval 1 --metrics-listen "127.0.0.1:$port"
out_has "metrics-file=$TMPD/m.prom metrics-interval=1 metrics-listen=127.0.0.1:$port"
run_rc 2 "$WCACHE" serve origin.img cache.img --metrics-interval 0
err_has "at least 1 second"
run_rc 2 "$WCACHE" metrics
err_has "--control PATH is required"
run_rc 1 "$WCACHE" metrics --control "$TMPD/nothing.sock"
err_has "cannot connect to control socket"

# nbdkit_refuses REGEX ARGS...: nbdkit with the plugin and ARGS exits 1 with
# a message matching REGEX. Under the ASan preload nbdkit may hang in exit
# after any strerror() (p11-kit, see test-nbd-origin-faults.sh): there a
# kill after the message counts as a refusal too.
nbdkit_refuses() {
	local re=$1 rc=0
	shift
	timeout -s KILL 20 "${NBDKIT[@]}" -f -U "$TMPD/x.sock" "$PLUGIN" "$@" \
		>"$TMPD/out" 2>"$TMPD/err" || rc=$?
	grep -Eq -- "$re" "$TMPD/err" || { cat "$TMPD/err" >&2; fail "nbdkit $*: no /$re/"; }
	! grep -Eq 'ERROR: [A-Za-z]+Sanitizer|runtime error:' "$TMPD/err" ||
		{ cat "$TMPD/err" >&2; fail "sanitizer report"; }
	((rc == 1)) || { ((rc == 137)) && [[ "${WC_SANITIZE:-}" == *address* ]]; } ||
		fail "nbdkit $*: exit $rc, expected 1"
}
# Mistakes are refused before serving, with the reason.
nbdkit_refuses "expected ADDR:PORT with a numeric address" origin=origin.img cache=cache.img \
	metrics-listen=localhost
nbdkit_refuses "metrics file .*no/such/dir.*No such file" origin=origin.img cache=cache.img \
	metrics-file="$TMPD/no/such/dir/m.prom"

srv_start origin=origin.img cache=cache.img control="$ctl" metrics-file="$TMPD/m.prom" \
	metrics-interval=1 metrics-listen="127.0.0.1:$port"
# Written once at start, before any I/O.
[[ -f m.prom ]] || fail "metrics file not written at start"
assert_eq "$(metric m.prom wcache_writes_total)" 0 "writes in the first metrics file"

run_rc 0 qemu-io -f raw "$URI" -c "write -P 7 0 1M" -c flush

say "wcache metrics --control"
run_rc 0 "$WCACHE" metrics --control "$ctl"
cp "$TMPD/out" ctl.prom
grep -q "^# EOF" ctl.prom && fail "the protocol's end line leaked into the output"
run_rc 0 promtool check metrics <ctl.prom
assert_eq "$(metric ctl.prom wcache_writes_total)" 256 "writes_total (blocks)"
assert_eq "$(metric ctl.prom wcache_dirty_blocks)" 256 "dirty_blocks"
assert_eq "$(metric ctl.prom wcache_dirty_bytes)" 1048576 "dirty_bytes"
assert_eq "$(metric ctl.prom wcache_block_size_bytes)" 4096 "block size"
assert_eq "$(metric ctl.prom wcache_origin_errors_total)" 0 "origin errors"
n=$(metric ctl.prom wcache_write_latency_seconds_count)
((n >= 1)) || fail "write latency histogram is empty"
inf=$(grep '^wcache_write_latency_seconds_bucket{.*le="+Inf"}' ctl.prom | awk '{print $2}')
assert_eq "$inf" "$n" "+Inf bucket of the write latency histogram"
grep -q "^wcache_reads_total{cache=\"$TMPD/cache.img\",origin=\"$TMPD/origin.img\"} " ctl.prom ||
	fail "samples lack the cache and origin labels"
# Every metric has HELP and TYPE (promtool checks their form, not their presence).
for name in $(grep -v '^#' ctl.prom | sed 's/{.*//' | sed -E 's/_(bucket|sum|count)$//' | sort -u); do
	grep -q "^# TYPE $name " ctl.prom || fail "no TYPE line for $name"
	grep -q "^# HELP $name " ctl.prom || fail "no HELP line for $name"
done

say "HTTP /metrics on 127.0.0.1:$port"
curl -sS --fail -o http.prom -D headers "http://127.0.0.1:$port/metrics" ||
	fail "GET /metrics failed"
grep -qi '^content-type: text/plain; version=0.0.4' headers || fail "wrong Content-Type"
run_rc 0 promtool check metrics <http.prom
assert_eq "$(metric http.prom wcache_writes_total)" 256 "writes_total over HTTP"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")
assert_eq "$code" 404 "GET /"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/metrics")
assert_eq "$code" 405 "POST /metrics"

say "writeback shows in the counters and the run-size histogram"
run_rc 0 "$WCACHE" message --control "$ctl" flush
run_rc 0 "$WCACHE" metrics --control "$ctl"
cp "$TMPD/out" after.prom
assert_eq "$(metric after.prom wcache_dirty_blocks)" 0 "dirty after flush"
assert_eq "$(metric after.prom wcache_writeback_blocks_total)" 256 "blocks written back"
assert_eq "$(metric after.prom wcache_writeback_run_bytes_sum)" 1048576 "run bytes sum"

say "metrics file follows within its interval, replaced atomically"
for ((i = 0; i < 50; i++)); do
	[[ "$(metric m.prom wcache_writeback_blocks_total)" == 256 ]] && break
	sleep 0.1
done
assert_eq "$(metric m.prom wcache_writeback_blocks_total)" 256 "writeback in the metrics file"
run_rc 0 promtool check metrics <m.prom
ino=$(stat -c %i m.prom)
sleep 1.5
[[ "$(stat -c %i m.prom)" != "$ino" ]] || fail "metrics file not replaced by rename"
[[ ! -e m.prom.tmp ]] || fail "temporary metrics file left behind"
srv_stop
run_rc 0 promtool check metrics <m.prom
say "ok"
