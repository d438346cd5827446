#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# fio's nbd engine against the plugin: two fio processes at once (2 jobs
# each, so 4 jobs on 4 NBD connections) doing random writes with crc32c
# verify on disjoint regions; one with 4-64 KiB requests, one with 1 KiB
# requests (read-modify-write inside cache blocks). The cache is smaller
# than the data, so writeback and write-around run underneath. After a clean
# restart the same jobs in verify-only mode find every block intact.
source "$(dirname "$0")/functions.sh"
requires nbdkit fio jq
requires_wcache
fio --enghelp=nbd >/dev/null 2>&1 || skip "this fio has no nbd ioengine"
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
# fio_job NAME OFFSET BS [extra fio args...]: 2 jobs, 24 MiB each from OFFSET.
fio_job() {
	local name=$1 off=$2 bs=$3
	shift 3
	fio --name="$name" --ioengine=nbd --uri="$URI" --rw=randwrite --bsrange="$bs" \
		--iodepth=16 --numjobs=2 --size=24M --offset="$off" --offset_increment=32M \
		--verify=crc32c --verify_fatal=1 --randseed=4242 --group_reporting \
		--output="$TMPD/$name.out" "$@"
}

truncate -s 256M origin.img
truncate -s 32M cache.img
ctl=$TMPD/ctl.sock
srv_start origin=origin.img cache=cache.img control="$ctl"

info "2 fio processes x 2 jobs: random writes + verify"
pids=()
fio_job big 0 4k-64k --do_verify=1 &
pids+=($!)
fio_job small 128M 1k-1k --do_verify=1 &
pids+=($!)
for p in "${pids[@]}"; do
	wait "$p" || { cat "$TMPD"/*.out >&2; fail "fio write+verify failed"; }
done
"$WCACHE" status --control "$ctl" --json >st.json
jq -e '.error == 0 and .rmw_writes > 0 and .writes > 0' st.json >/dev/null || {
	cat st.json >&2
	fail "unexpected counters after fio"
}

info "clean restart, then verify-only on the same regions"
srv_stop
srv_start origin=origin.img cache=cache.img control="$ctl"
fio_job big 0 4k-64k --verify_only || { cat big.out >&2; fail "verify after restart (big)"; }
fio_job small 128M 1k-1k --verify_only || { cat small.out >&2; fail "verify after restart (small)"; }
srv_stop
info "ok"
