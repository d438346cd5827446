#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# kill -9 durability: a client writes (aligned 4 KiB and unaligned 512-byte
# multiples, some FUA) and flushes at random; nbdkit is killed with SIGKILL at
# a random moment; after a restart every write acknowledged before the last
# completed flush, or written with FUA, must read back, and every other sector
# must hold its durable value or one written later (wctest-kill9 checks each
# 512-byte sector). The cache is small and the watermarks low, so commits,
# writeback and write-around are all in progress when the kill lands.
# WC_KILL9_ROUNDS (default 20) sets the number of rounds. WC_KILL9_MODE=p
# runs it in pmem mode with the cache file on tmpfs (/dev/shm), mapped: there
# kill -9 keeps every store that reached the page cache, so this checks the
# process side; power cuts are the crash tests' pmem model.
source "$(dirname "$0")/functions.sh"
requires nbdkit
requires_wcache
tmpdir
KILL9=$(requires_helper wctest-kill9)
source "$(dirname "$0")/nbd-functions.sh"

rounds=${WC_KILL9_ROUNDS:-20}
mode=${WC_KILL9_MODE:-s}
cache=$TMPD/cache.img
pause=(pause_writeback=0)
if [[ $mode == p ]]; then
	requires_pmem
	[[ -d /dev/shm && -w /dev/shm ]] || skip "pmem mode: no writable /dev/shm"
	shm=$(mktemp -d /dev/shm/wcache-kill9.XXXXXX)
	cleanup_fn rm -rf "$shm"
	cache=$shm/cache.img
	pause=()	# SSD mode only, as in the kernel
fi
truncate -s 64M origin.img
truncate -s 8M "$cache"
"$WCACHE" format --mode "$mode" "$cache" >/dev/null
state=$TMPD/kill9.state
args=(origin="$TMPD/origin.img" cache="$cache" mode="$mode")
for ((r = 1; r <= rounds; r++)); do
	# Vary the table so different code paths are under the kill.
	case $((r % 4)) in
	0) opts=(high_watermark=20 low_watermark=10 "${pause[@]}") ;;
	1) opts=(autocommit_time=50 autocommit_blocks=64) ;;
	2) opts=(high_watermark=100 low_watermark=100 autocommit_time=3600000) ;;
	3) opts=(high_watermark=5 low_watermark=0 writeback_jobs=16 "${pause[@]}") ;;
	esac
	# pmem mode, odd rounds: libpmem2's DAX code path (flushing copies, fences),
	# forced on the tmpfs mapping as its own tests do.
	if [[ $mode == p ]] && ((r % 2)); then
		export PMEM2_FORCE_GRANULARITY=CACHE_LINE
	else
		unset PMEM2_FORCE_GRANULARITY
	fi
	srv_start "${args[@]}" "${opts[@]}"
	"$KILL9" write "$URI" "$state" >"$TMPD/writer.log" 2>&1 &
	writer=$!
	# 0.3 .. 2.3 s of writing, then the power of the process is cut.
	sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 0.3 + 2 * rand() }')"
	kill -KILL "$SRV_PID"
	wait "$SRV_PID" 2>/dev/null || true
	SRV_PID=
	wait "$writer" || { cat "$TMPD/writer.log" >&2; fail "round $r: writer failed"; }
	say "round $r (${opts[*]}): $(cat "$TMPD/writer.log")"
	srv_start "${args[@]}"
	"$KILL9" verify "$URI" "$state" >"$TMPD/verify.log" 2>&1 ||
		{ cat "$TMPD/verify.log" >&2; fail "round $r: data lost or corrupted after kill -9"; }
	say "round $r: $(cat "$TMPD/verify.log")"
	srv_stop
done
# After an offline flush the origin file alone, served by nbdkit's file
# plugin, must hold the same state.
"$WCACHE" flush origin.img "$cache" >/dev/null
nbdkit -U - file "$TMPD/origin.img" --run "'$KILL9' verify \"\$uri\" '$state'" \
	>"$TMPD/verify.log" 2>&1 || { cat "$TMPD/verify.log" >&2; fail "origin alone after flush"; }
say "origin alone: $(cat "$TMPD/verify.log")"
echo "kill -9 rounds survived ($mode mode): $rounds"
