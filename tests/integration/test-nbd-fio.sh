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

source "$(dirname "$0")/nbd-functions.sh"
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

say "2 fio processes x 2 jobs: random writes + verify"
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

say "clean restart, then verify-only on the same regions"
srv_stop
srv_start origin=origin.img cache=cache.img control="$ctl"
fio_job big 0 4k-64k --verify_only || { cat big.out >&2; fail "verify after restart (big)"; }
fio_job small 128M 1k-1k --verify_only || { cat small.out >&2; fail "verify after restart (small)"; }
srv_stop
say "ok"
