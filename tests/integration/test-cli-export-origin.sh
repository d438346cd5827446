#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Origins that do not fit, and outputs that must not be written (issue 16,
# item 8):
# - "export" with an origin smaller than the cache's dirty blocks exited 0
#   after dropping them; now it still writes what fits (salvage) but exits 1
#   naming the blocks and the origin size that would hold them (and that
#   size works).
# - "export O C -" wrote the binary image to a terminal; now it refuses.
# - "check --origin" took only a path; now an NBD URI too, like
#   export/flush/serve.
source "$(dirname "$0")/functions.sh"
requires_wcache
tmpdir

MiB=1048576
head -c $((8 * MiB)) /dev/urandom >origin.img
truncate -s $((2 * MiB)) cache.img
run_rc 0 "$WCACHE" format cache.img
# Two dirty blocks at 1 MiB and 6 MiB (bytes 6291456..6295551).
writer=$(requires_helper wctest-write)
head -c 4096 /dev/urandom >d1
head -c 4096 /dev/urandom >d2
run_rc 0 "$writer" origin.img cache.img $((1 * MiB)):d1 $((6 * MiB)):d2
snapshot origin.img cache.img

say "export with an origin too small for a dirty block fails and names it"
head -c $((4 * MiB)) origin.img >small.img
run_rc 1 "$WCACHE" export small.img cache.img out.img
err_has '1 dirty block of cache.img maps past the end of ORIGIN small.img \(4194304 bytes\)'
err_has 'could not be placed in out.img: entry [0-9]+ \(origin byte 6291456\)'
err_has 'out.img holds everything else'
err_has 'truncate -s 6295552 COPY'
# Salvage: everything that fits is there.
assert_eq "$(stat -c %s out.img)" $((4 * MiB)) "size of the partial export"
assert_eq "$(sha256_range out.img $((1 * MiB)) 4096)" "$(sha256 d1)" "block at 1 MiB (partial)"
say "the size it names is enough"
truncate -s 6295552 small.img
run_rc 0 "$WCACHE" export small.img cache.img out.img
assert_eq "$(sha256_range out.img $((6 * MiB)) 4096)" "$(sha256 d2)" "block at 6 MiB"
assert_eq "$(sha256_range out.img $((1 * MiB)) 4096)" "$(sha256 d1)" "block at 1 MiB"
assert_unchanged origin.img cache.img

say "export to a terminal is refused; to a pipe it works"
if command -v script >/dev/null; then
	rc=0
	script -qec "$(printf '%q ' "$WCACHE" export origin.img cache.img -)" /dev/null \
		>tty.out 2>&1 </dev/null || rc=$?
	((rc == 1)) || fail "export to a terminal exited $rc: $(head -c 300 tty.out)"
	grep -q "is a terminal" tty.out || fail "no reason given: $(head -c 300 tty.out)"
	(($(wc -c <tty.out) < 1000)) || fail "binary data went to the terminal"
else
	say "script (util-linux) missing: terminal refusal not tested"
fi
run_rc 0 "$WCACHE" export origin.img cache.img full.img
"$WCACHE" export origin.img cache.img - | cat >piped.img || fail "export to a pipe failed"
cmp -s full.img piped.img || fail "export to a pipe differs from export to a file"

say "check --origin takes an NBD URI"
if command -v nbdkit >/dev/null; then
	for img in origin small; do
		nbdkit -f -U "$TMPD/$img.sock" -P "$TMPD/$img.pid" file "$img.img" \
			>"$TMPD/nbdkit-$img.log" 2>&1 &
		cleanup_fn kill "$!"
	done
	for img in origin small; do
		for ((i = 0; i < 100; i++)); do
			[[ -s "$TMPD/$img.pid" ]] && break
			sleep 0.1
		done
	done
	truncate -s $((4 * MiB)) small.img
	run_rc 1 "$WCACHE" check --origin "nbd+unix:///?socket=$TMPD/origin.sock" cache.img
	out_has '^valid: 2$'
	run_rc 2 "$WCACHE" check --origin "nbd+unix:///?socket=$TMPD/small.sock" cache.img
	out_has '^past_origin_or_misaligned: 1$'
	run_rc 2 "$WCACHE" check --origin "nbd+unix:///?socket=$TMPD/none.sock" cache.img
	err_has 'origin: '
else
	say "nbdkit missing: check --origin URI not tested"
fi
say "ok"
