#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Progress display of export and flush: a redrawn "\r[###...] N% a/b unit"
# bar when stderr is a terminal (run under script(1) for a pty), nothing by
# default when it is not, periodic plain lines with --progress, nothing with
# --no-progress, and never any progress text on stdout. The last line gives
# the average rate and the time taken; on a slow origin (nbdkit's delay
# filter) the lines in between give the rate and an ETA.
source "$(dirname "$0")/functions.sh"
requires script sha256sum
requires_wcache
writer=$(requires_helper wctest-write)
tmpdir

MiB=1048576
head -c $((5 * MiB + 4096)) /dev/urandom >origin.img
truncate -s $((2 * MiB)) cache.img
run_rc 0 "$WCACHE" format cache.img
head -c $((64 * 4096)) /dev/urandom >d
run_rc 0 "$writer" origin.img cache.img 8192:d
run_rc 1 "$WCACHE" check cache.img
cp cache.img cache0.img

# Not a terminal: silent by default, lines with --progress, silent with --no-progress.
run_rc 0 "$WCACHE" export origin.img cache.img out.img
[[ ! -s "$TMPD/err" ]] || fail "progress printed to a non-tty stderr without --progress"
want=$(sha256 out.img)
[[ "$want" != "$(sha256 origin.img)" ]] || fail "export does not show the cached data"
run_rc 0 "$WCACHE" export --progress origin.img cache.img out.img
err_has '^progress: 0% 0/6 MiB$'
err_has '^progress: 100% 6/6 MiB, [0-9.]+ MiB/s, in [0-9.]+ s$'
if grep -q $'\r' "$TMPD/err"; then fail "carriage return in non-tty progress"; fi
run_rc 0 "$WCACHE" export --progress --no-progress origin.img cache.img out.img
[[ ! -s "$TMPD/err" ]] || fail "--no-progress printed progress"
out_has '^exported '
if grep -q progress "$TMPD/out"; then fail "progress on stdout"; fi

# A terminal: script(1) gives the command a pty on stdin/stdout/stderr.
script -qec "'$WCACHE' export origin.img cache.img out.img" /dev/null >tty.txt
grep -q $'\r\\[#\\{30\\}\\] 100% 6/6 MiB, [0-9.]* MiB/s, in [0-9.]* s' tty.txt || { od -c tty.txt | tail >&2; fail "no final bar"; }
grep -q $'\r\\[\\.\\{30\\}\\] 0% 0/6 MiB' tty.txt || fail "no initial bar"
assert_eq "$(sha256 out.img)" "$want" "export under a tty"
script -qec "'$WCACHE' export --no-progress origin.img cache.img out2.img" /dev/null >tty2.txt
if grep -q '%' tty2.txt; then fail "--no-progress drew a bar on a tty"; fi
cmp out.img out2.img || fail "exports differ"

# flush: blocks written back.
cp origin.img o2.img
script -qec "'$WCACHE' flush o2.img cache.img" /dev/null >tty3.txt
grep -q $'\r\\[#\\{30\\}\\] 100% 64/64 blocks' tty3.txt || { cat -A tty3.txt >&2; fail "no flush bar"; }
cmp o2.img out.img || fail "origin after flush differs from the export"
cp cache0.img cache.img
cp origin.img o3.img
run_rc 0 "$WCACHE" flush --progress o3.img cache.img
err_has '^progress: 100% 64/64 blocks, [0-9.]+ blocks/s, in [0-9.]+ s$'
out_has '^flushed 64 blocks'

# Rate and ETA while it runs: 16 MiB from an origin that takes 150 ms per read.
if command -v nbdkit >/dev/null; then
	truncate -s 2M cache4.img
	run_rc 0 "$WCACHE" format cache4.img
	# shellcheck disable=SC2016 # $uri expands in nbdkit's --run shell
	run_rc 0 nbdkit -U - --filter=delay memory 16M rdelay=150ms \
		--run "'$WCACHE' export --progress \"\$uri\" cache4.img out4.img"
	err_has '^progress: [0-9]+% [0-9]+/16 MiB, [0-9.]+ MiB/s, ETA 0:0[0-9]$'
	err_has '^progress: 100% 16/16 MiB, [0-9.]+ MiB/s, in [0-9.]+ s$'
else
	say "nbdkit not installed: rate and ETA of a slow export not checked"
fi
say ok
