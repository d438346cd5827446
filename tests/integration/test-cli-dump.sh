#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# wcache dump / check / status on crafted entry states (superseded,
# uncommitted, free with --all) and dump --json escaping: paths with quotes,
# backslashes, control characters, UTF-8 and invalid UTF-8 must give JSON
# that jq parses back to the same string (U+FFFD for invalid bytes).
source "$(dirname "$0")/functions.sh"
requires jq sha256sum
requires_wcache
writer=$(requires_helper wctest-write)
tmpdir
export LC_ALL=C.UTF-8 # $'\uFFFD' below must be UTF-8

MiB=1048576
head -c $((4 * MiB)) /dev/urandom >origin.img
truncate -s $MiB cache.img
run_rc 0 "$WCACHE" format cache.img
head -c 8192 /dev/urandom >d1
run_rc 0 "$writer" origin.img cache.img 40960:d1 # blocks 10 and 11 = sectors 80, 88
cp origin.img expect.img
dd if=d1 of=expect.img bs=4096 seek=10 conv=notrunc status=none
run_rc 0 "$WCACHE" dump --json cache.img
cp "$TMPD/out" base.json
assert_eq "$(jq -c '[.entries[] | [.original_sector, .state]]' base.json)" \
	'[[80,"valid"],[88,"valid"]]' "entries after one write"
seq=$(jq .superblock.seq_count base.json)
q=$(jq '.entries[0].seq_count' base.json)
((q < seq)) || fail "valid entry seq $q not below sb seq $seq"
# Two free entries (the last ones) to craft states in.
nb=$(jq .superblock.n_blocks base.json)
free1=$((nb - 1)) free2=$((nb - 2))
[[ -z "$(jq ".entries[] | select(.index >= $free2)" base.json)" ]] || fail "last entries not free"

# A superseded copy of sector 80 (older seq) and an uncommitted entry for
# sector 800 (seq = sb seq): neither may change the logical device.
if ((q > 0)); then old=$((q - 1)); else old=0; fi
if ((q == 0)); then
	# Make room for an older seq: raise every seq by one (sb too).
	poke_le cache.img 24 8 $((seq + 1))
	for i in $(jq '.entries[].index' base.json); do
		poke_le cache.img $((64 + 16 * i + 8)) 8 $((q + 1))
	done
	seq=$((seq + 1)) q=$((q + 1)) old=0
fi
poke_le cache.img $((64 + 16 * free1)) 8 80
poke_le cache.img $((64 + 16 * free1 + 8)) 8 "$old"
poke_le cache.img $((64 + 16 * free2)) 8 800
poke_le cache.img $((64 + 16 * free2 + 8)) 8 "$seq"
snapshot cache.img origin.img

run_rc 1 "$WCACHE" check --origin origin.img cache.img
out_has '^valid: 2$'
out_has '^superseded: 1$'
out_has '^uncommitted: 1$'
out_has "^free: $((nb - 4))\$"
run_rc 0 "$WCACHE" dump --json cache.img
cp "$TMPD/out" crafted.json
assert_eq "$(jq -c '[.entries[] | [.index, .original_sector, .state, .committed, .valid]]' crafted.json)" \
	"$(jq -c --argjson f1 $free1 --argjson f2 $free2 \
		'[.entries[] | [.index, .original_sector, "valid", true, true]] +
		 [[$f2, 800, "uncommitted", false, false], [$f1, 80, "superseded", true, false]]' base.json)" \
	"crafted entry states"
assert_eq "$(jq -c '.counts | [.entries, .valid, .superseded, .uncommitted, .free]' crafted.json)" \
	"[4,2,1,1,$((nb - 4))]" "crafted counts"
run_rc 0 "$WCACHE" dump cache.img
out_has "^ +$free1 +80 +$old +superseded +[0-9]+\$"
out_has "^ +$free2 +800 +$seq +uncommitted +[0-9]+\$"
run_rc 0 "$WCACHE" status --json cache.img
assert_eq "$(jq -c '[.total, .free, .dirty]' "$TMPD/out")" "[$nb,$((nb - 2)),2]" "status --json"
run_rc 0 "$WCACHE" export origin.img cache.img out.img
assert_eq "$(sha256 out.img)" "$(sha256 expect.img)" "superseded/uncommitted entries ignored"
assert_unchanged cache.img origin.img
# --all: every index once, free ones without a sector.
run_rc 0 "$WCACHE" dump --all --json cache.img
assert_eq "$(jq '[.entries[].index] == [range(0; .superblock.n_blocks)]' "$TMPD/out")" true \
	"dump --all indices"
assert_eq "$(jq '[.entries[] | select(.state == "free" and .original_sector == null and .seq_count == -1)] | length' "$TMPD/out")" \
	$((nb - 4)) "free entries in dump --all"
# Flushing applies recovery: only the valid blocks reach the origin.
cp origin.img o2.img
run_rc 0 "$WCACHE" flush o2.img cache.img
assert_eq "$(sha256 o2.img)" "$(sha256 expect.img)" "origin after flush"
run_rc 0 "$WCACHE" dump --json cache.img
assert_eq "$(jq '.entries | length' "$TMPD/out")" 0 "entries after flush"

# --- JSON escaping of paths and messages ---
names=(
	'quote"back\slash.img'
	$'tab\tnewline\ncr\r.img'
	$'ctl\x01\x1f\x7f.img'
	'utf8-é-€-😀.img'
	'{"json": [1, 2]}.img'
)
for n in "${names[@]}"; do
	cp cache.img "$n"
	run_rc 0 "$WCACHE" dump --json "$n"
	jq -e . "$TMPD/out" >/dev/null || fail "invalid JSON for path $(printf %q "$n")"
	# jq tolerates raw control characters; RFC 8259 does not.
	if LC_ALL=C grep -qP '[\x00-\x09\x0b-\x1f]' "$TMPD/out"; then
		fail "raw control character in JSON for $(printf %q "$n")"
	fi
	assert_eq "$(jq -j .cache "$TMPD/out")" "$n" "path round trip $(printf %q "$n")"
	# A corrupt copy: the error message (which names the path) is escaped too.
	poke_le "$n" 0 4 7
	run_rc 1 "$WCACHE" dump --json "$n"
	assert_eq "$(jq -r .status "$TMPD/out")" invalid "status of a bad magic"
	jq -je .error "$TMPD/out" | grep -qF "invalid magic" || fail "error member for $(printf %q "$n")"
	rm -f -- "$n"
done
# Invalid UTF-8 becomes U+FFFD; the JSON stays valid.
bad=$'inv\xff\xfe-\xc3(-\xe2\x82-\xed\xa0\x80.img'
cp cache.img "$bad"
run_rc 0 "$WCACHE" dump --json "$bad"
jq -e . "$TMPD/out" >/dev/null || fail "invalid JSON for a non-UTF-8 path"
assert_eq "$(jq -r .cache "$TMPD/out")" $'inv\uFFFD\uFFFD-\uFFFD(-\uFFFD\uFFFD-\uFFFD\uFFFD\uFFFD.img' \
	"invalid UTF-8 replaced"
say ok
