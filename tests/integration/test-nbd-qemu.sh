#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The nbdkit plugin seen by qemu's NBD client: what nbdinfo reports (size,
# block sizes, fua/trim/zero/multi-conn/flush), qemu-io writes and reads with
# patterns (plain, FUA, write-zeroes with and without may-unmap, discard,
# 512-byte writes inside and across cache blocks), qemu-img convert in and
# out and compare, and the same data after a clean restart. The engine's
# counters (control socket) prove that FUA, discard and RMW reached it.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdinfo qemu-io qemu-img jq cmp
requires_wcache
tmpdir

source "$(dirname "$0")/nbd-functions.sh"

# qio CMD...: one qemu-io session; any failed command or pattern mismatch fails.
qio() {
	local args=() c
	for c in "$@"; do args+=(-c "$c"); done
	# --discard=unmap: qemu drops discards (and may-unmap) by default.
	run_rc 0 qemu-io -f raw --discard=unmap "$URI" "${args[@]}"
	if grep -Eqi 'fail|error' "$TMPD/out" "$TMPD/err"; then
		cat "$TMPD/out" "$TMPD/err" >&2
		fail "qemu-io reported a failure: $*"
	fi
}

# stat_of NAME: one counter from the live server (control socket, JSON).
stat_of() {
	"$WCACHE" status --control "$TMPD/ctl.sock" --json | jq -er ".$1"
}

size=$((64 << 20))
head -c "$size" /dev/urandom >origin.img
truncate -s 16M cache.img
srv_start origin.img cache=cache.img control="$TMPD/ctl.sock"

say "nbdinfo: size, block sizes, flags"
nbdinfo --json --no-content "$URI" >info.json
jq -e --argjson size "$size" '.exports[0] |
	.["export-size"] == $size and
	.block_size_minimum == 512 and .block_size_preferred == 4096 and
	.block_size_maximum == 33554432 and
	.can_fua and .can_trim and .can_zero and .can_multi_conn and .can_flush and
	(.is_read_only | not)' info.json >/dev/null || {
	cat info.json >&2
	fail "nbdinfo does not show the expected size, block sizes and flags"
}

say "qemu-io: patterns, FUA, zeroes, discard, unaligned"
qio "write -P 0xab 0 1M" "read -P 0xab 0 1M"
fua0=$(stat_of fua_writes)
qio "write -f -P 0x11 1M 64k" "read -P 0x11 1M 64k"
fua1=$(stat_of fua_writes)
((fua1 > fua0)) || fail "a FUA write did not reach the engine as FUA ($fua0 -> $fua1)"

qio "write -P 0x33 2M 256k" "write -z 2M 256k" "read -P 0 2M 256k"
# May-unmap must still read back zeros (the plugin never trims for it).
qio "write -P 0x44 3M 128k" "write -z -u 3M 128k" "read -P 0 3M 128k"

# The engine counts the blocks a discard covers (like the kernel).
qio "write -P 0x77 4M 64k"
disc0=$(stat_of discards)
qio "discard 4M 64k"
disc1=$(stat_of discards)
((disc1 > disc0)) || fail "discard did not reach the engine ($disc0 -> $disc1)"

rmw0=$(stat_of rmw_writes)
# 512 bytes inside block 1 and 1 KiB across the block 1/2 boundary, on 0xab.
qio "write -P 0x22 4608 512" "write -P 0x55 7680 1024" \
	"read -P 0xab 4096 512" "read -P 0x22 4608 512" "read -P 0xab 5120 2560" \
	"read -P 0x55 7680 1024" "read -P 0xab 8704 3584"
# Unaligned FUA write as well.
qio "write -f -P 0x66 12800 512" "read -P 0xab 12288 512" "read -P 0x66 12800 512"
rmw1=$(stat_of rmw_writes)
((rmw1 > rmw0)) || fail "unaligned writes did not go through read-modify-write"

say "qemu-img convert in, compare, convert out"
head -c "$size" /dev/urandom >in.img
run_rc 0 qemu-img convert -n -f raw -O raw in.img "$URI"
run_rc 0 qemu-img compare -f raw -F raw in.img "$URI"
out_has 'Images are identical'
run_rc 0 qemu-img convert -f raw -O raw "$URI" out.img
cmp in.img out.img || fail "qemu-img convert out differs from what was written"

[[ "$(stat_of error)" = 0 ]] || fail "the engine reports an error state"

say "clean restart: the data comes back from the cache"
srv_stop
srv_start origin.img cache=cache.img control="$TMPD/ctl.sock"
run_rc 0 qemu-img compare -f raw -F raw in.img "$URI"
out_has 'Images are identical'
srv_stop

say "wcache serve: the nbdkit command line, and the same export through it"
run_rc 0 "$WCACHE" serve --dry-run origin.img cache.img --socket s.sock --control c.sock \
	--block-size 4096 --format no --high-watermark 60 --low_watermark 10 --cleaner \
	--daemon --pidfile p.pid
out_has "^nbdkit -U s.sock -P p.pid [^ ]*/nbdkit-wcache-plugin.so origin=origin.img \
cache=cache.img block-size=4096 format=no control=c.sock high-watermark=60 low-watermark=10 \
cleaner=1\$"
# The sanitizer environment for nbdkit, if any (NBDKIT without "nbdkit"); the
# --run command must not inherit its LD_PRELOAD (qemu's coroutines hang under ASan).
serve_env=("${NBDKIT[@]}")
unset 'serve_env[-1]'
run_rc 0 "${serve_env[@]}" "$WCACHE" serve origin.img cache.img --control "$TMPD/c2.sock" \
	--run "unset LD_PRELOAD; qemu-img compare -f raw -F raw in.img \"\$uri\" && \
		$WCACHE status --control $TMPD/c2.sock"
out_has 'Images are identical'
out_has '^error: 0$'
say "ok"
