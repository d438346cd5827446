#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# --json on failures (issue 16, item 6): "status --json" printed nothing on
# stdout for corrupt or unreadable caches, "dump --json" nothing for a
# missing or empty one, and "check" had no --json. Now each prints exactly one
# JSON object with "status" and "error" (plus what could be read), on stdout,
# whatever happens; the exit codes stay as before.
source "$(dirname "$0")/functions.sh"
requires jq
requires_wcache
writer=$(requires_helper wctest-write)
tmpdir

MiB=1048576
truncate -s $((4 * MiB)) origin.img
truncate -s $MiB clean.img
run_rc 0 "$WCACHE" format clean.img
cp clean.img dirty.img
head -c 8192 /dev/urandom >d1
run_rc 0 "$writer" origin.img dirty.img 40960:d1
cp clean.img badmagic.img
printf 'garbage!' | dd of=badmagic.img conv=notrunc status=none
truncate -s $MiB blank.img
: >empty.img
# Two committed entries for one sector with the same seq: corrupt entries
# under a valid superblock, so the counts are still known.
cp dirty.img dup.img
nb=$(peek_le dup.img 16 8)
poke_le dup.img $((64 + 16 * (nb - 1))) 8 "$(peek_le dup.img 64 8)"
poke_le dup.img $((64 + 16 * (nb - 1) + 8)) 8 "$(peek_le dup.img 72 8)"

# json_rc WANT_RC CMD...: run, stdout must be one JSON object; prints it compact.
json_rc() {
	local want=$1
	shift
	run_rc "$want" "$@"
	jq -e 'type == "object"' "$TMPD/out" >/dev/null ||
		fail "stdout of '$*' is not one JSON object: $(cat "$TMPD/out")"
	[[ $(jq -s length "$TMPD/out") = 1 ]] || fail "more than one JSON value from '$*'"
}
# field KEY: a member of the last JSON output (raw).
field() { jq -r "$1" "$TMPD/out"; }

say "status --json"
json_rc 0 "$WCACHE" status --json dirty.img
assert_eq "$(field '[.status, .error, .dirty, .total - .free]|@csv')" '"dirty",,2,2' "dirty status"
for c in badmagic blank empty missing; do
	json_rc 1 "$WCACHE" status --json $c.img
	[[ -n "$(field '.error // empty')" ]] || fail "status --json $c.img: no error member"
	[[ "$(field 'has("total")')" = false ]] || fail "status --json $c.img: counts of an invalid superblock"
	err_has "$c.img"
done
json_rc 1 "$WCACHE" status --json badmagic.img
assert_eq "$(field .status)" invalid "status of a bad magic"
out_has 'invalid magic'
json_rc 1 "$WCACHE" status --json blank.img
assert_eq "$(field .status)" blank "status of a blank device"
json_rc 1 "$WCACHE" status --json missing.img
assert_eq "$(field .status)" unreadable "status of a missing device"
json_rc 1 "$WCACHE" status --json dup.img
assert_eq "$(field '[.status, .total, .dirty]|@csv')" "\"corrupt\",$nb,2" "status of equal-seq dups"
out_has 'both map sector'
# Text mode is unchanged: nothing on stdout for a failure.
run_rc 1 "$WCACHE" status badmagic.img
[[ ! -s "$TMPD/out" ]] || fail "status (text) printed on stdout for a bad cache"

say "dump --json"
for c in missing empty; do
	json_rc 1 "$WCACHE" dump --json $c.img
	assert_eq "$(field '[.cache, .status, .superblock]|@csv')" "\"$c.img\",\"unreadable\"," \
		"dump --json $c.img"
	[[ -n "$(field '.error // empty')" ]] || fail "dump --json $c.img: no error"
done
json_rc 1 "$WCACHE" dump --json empty.img
out_has 'empty \(0 bytes\)'
json_rc 1 "$WCACHE" dump --json --start-sector 99999 clean.img
assert_eq "$(field .status)" unreadable "start beyond the device"
json_rc 1 "$WCACHE" dump --json blank.img
assert_eq "$(field .status)" blank "dump of a blank device"

say "check --json: same exit codes as the text form"
json_rc 0 "$WCACHE" check --json clean.img
assert_eq "$(field '[.status, .error, .valid, .n_blocks > 0]|@csv')" '"clean",,0,true' "check clean"
json_rc 1 "$WCACHE" check --json dirty.img
assert_eq "$(field '[.status, .valid, .dirty_bytes]|@csv')" '"dirty",2,8192' "check dirty"
json_rc 2 "$WCACHE" check --json dup.img
assert_eq "$(field '[.status, .equal_seq_duplicates]|@csv')" '"corrupt",1' "check dups"
for c in badmagic blank empty missing; do
	json_rc 2 "$WCACHE" check --json $c.img
	[[ -n "$(field '.error // empty')" ]] || fail "check --json $c.img: no error"
	[[ "$(field 'has("valid")')" = false ]] || fail "check --json $c.img: counts"
done
truncate -s 8192 tiny-origin.img
json_rc 2 "$WCACHE" check --json --origin tiny-origin.img dirty.img
assert_eq "$(field '[.origin, .status, .past_origin_or_misaligned]|@csv')" \
	'"tiny-origin.img","corrupt",2' "check --origin too small"
json_rc 2 "$WCACHE" check --json --origin missing-origin.img dirty.img
assert_eq "$(field .status)" origin_unreadable "check with a missing origin"
run_rc 2 "$WCACHE" check --json --quiet clean.img
err_has 'mutually exclusive'
# The text form is unchanged.
run_rc 1 "$WCACHE" check dirty.img
out_has '^result: dirty: 2 blocks'
say "ok"
