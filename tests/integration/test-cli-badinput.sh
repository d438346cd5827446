#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Bad input for every offline subcommand: missing file, directory, empty,
# truncated, zeroed, garbage, wrong magic / version / block size, n_blocks
# larger than the device, an entry past the origin or misaligned, equal-seq
# duplicate entries (crafted at start + 64 + 16*i, little-endian). Each must
# give a clear message and the documented non-zero exit (2 for check), never
# crash (the ASan tree runs this too), and never modify its inputs.
source "$(dirname "$0")/functions.sh"
requires jq sha256sum od dd
requires_wcache
writer=$(requires_helper wctest-write)
tmpdir

MiB=1048576
# A good dirty cache to corrupt: 1 MiB, 4096-byte blocks, 5 dirty blocks.
head -c $((8 * MiB)) /dev/urandom >origin.img
truncate -s $MiB good.img
run_rc 0 "$WCACHE" format good.img
for b in 0 10 100 1000 2047; do
	head -c 4096 /dev/urandom >"blk$b"
	args+=("$((b * 4096)):blk$b")
done
run_rc 0 "$writer" origin.img good.img "${args[@]}"
run_rc 1 "$WCACHE" check --origin origin.img good.img
out_has '^valid: 5$'
run_rc 0 "$WCACHE" dump --json good.img
cp "$TMPD/out" good.json
# Two valid entries to play with.
i0=$(jq '[.entries[] | select(.valid)][0].index' good.json)
i1=$(jq '[.entries[] | select(.valid)][1].index' good.json)
s0=$(jq '[.entries[] | select(.valid)][0].original_sector' good.json)
q0=$(jq '[.entries[] | select(.valid)][0].seq_count' good.json)
for v in "$i0" "$i1" "$s0" "$q0"; do
	[[ "$v" =~ ^[0-9]+$ ]] || fail "could not read entries from dump --json: '$v'"
done
[[ "$i0" != "$i1" ]] || fail "need two distinct entries"
assert_eq "$(peek_le good.img $((64 + 16 * i0)) 8)" "$s0" "entry $i0 sector read with od"
snapshot origin.img

# battery CACHE REGEX [ORIGIN_ONLY]: every subcommand fails on CACHE with a
# message matching REGEX and leaves CACHE and the origin untouched. With
# ORIGIN_ONLY=1 the damage is only visible with the origin (check --origin,
# export, flush), so dump and status are expected to succeed. With SALVAGE=1
# the metadata is readable but its entries are damaged: export salvages it.
battery() {
	local c=$1 re=$2 origin_only=${3:-0} salvage=${4:-0}
	say "case $c"
	snapshot "$c"
	if ((origin_only)); then
		run_rc 2 "$WCACHE" check --origin origin.img "$c"
		err_has "$re"
		run_rc 0 "$WCACHE" dump "$c"
		run_rc 0 "$WCACHE" status "$c"
	else
		run_rc 2 "$WCACHE" check "$c"
		err_has "^wcache check: .*($re)"
		run_rc 2 "$WCACHE" check --origin origin.img "$c"
		err_has "$re"
		run_rc 1 "$WCACHE" dump "$c"
		err_has "^wcache dump: .*($re)"
		run_rc 1 "$WCACHE" dump --json --all "$c"
		err_has "$re"
		if [[ -s "$TMPD/out" ]]; then
			jq -e '.status != "clean" and .status != "dirty" and (.error | length > 0)' \
				"$TMPD/out" >/dev/null || fail "$c: dump --json of bad input"
		fi
		run_rc 1 "$WCACHE" status "$c"
		err_has "^wcache status: .*($re)"
	fi
	rm -f out.img
	if ((salvage == 2)); then
		# Entries past the origin: export writes the rest but fails naming them
		# (issue 16: it used to exit 0 without them).
		run_rc 1 "$WCACHE" export origin.img "$c" out.img
		err_has 'past the end of ORIGIN origin.img .*could not be placed in out.img: entry'
		[[ -s out.img ]] || fail "$c: salvage export wrote nothing"
	elif ((salvage)); then
		# Damaged entries: export salvages what recovery makes of them, with a warning.
		run_rc 0 "$WCACHE" export origin.img "$c" out.img
		err_has 'corrupt metadata'
		[[ -s out.img ]] || fail "$c: salvage export wrote nothing"
	else
		run_rc 1 "$WCACHE" export origin.img "$c" out.img
		err_has "^wcache export: .*($re)"
		[[ ! -e out.img ]] || fail "$c: failed export created its output"
	fi
	run_rc 1 "$WCACHE" flush origin.img "$c"
	err_has "^wcache flush: .*($re)"
	assert_unchanged "$c" origin.img
}

# --- not a cache at all ---
battery missing.img 'No such file'
mkdir adir
battery adir 'not a regular file|Is a directory'
: >empty.img
battery empty.img 'empty \(0 bytes\)'
head -c 30 good.img >tiny.img
battery tiny.img 'too small'
head -c 100000 good.img >trunc.img
battery trunc.img 'needs [0-9]+ bytes but the cache device has 100000'
head -c $MiB /dev/zero >zero.img
battery zero.img 'not formatted'
head -c $MiB /dev/urandom >garbage.img
poke_le garbage.img 0 4 1234 # never the magic by chance
battery garbage.img 'invalid magic'

# A FIFO as cache or origin is refused at once (seven commands used to wait
# forever for a writer); timeout turns a hang into exit 124.
mkfifo fifo
for cmdline in "check fifo" "check --origin fifo good.img"; do
	# shellcheck disable=SC2086
	run_rc 2 timeout 20 "$WCACHE" $cmdline
	err_has 'fifo is not a regular file or block device'
done
for cmdline in "dump fifo" "dump --json fifo" "status fifo" "format fifo" \
	"export fifo good.img out.img" "export origin.img fifo out.img" "flush origin.img fifo" \
	"flush fifo good.img"; do
	# shellcheck disable=SC2086
	run_rc 1 timeout 20 "$WCACHE" $cmdline
	err_has 'fifo is not a regular file or block device'
done
run_rc 1 timeout 20 "${WCACHE_SERVE[@]}" origin.img fifo --run true
err_has 'fifo is not a regular file or block device'
[[ ! -e out.img ]] || fail "a failed export created its output"

# --- damaged superblock ---
cp good.img magic.img
poke_le magic.img 0 4 $((0x23489322))
battery magic.img 'invalid magic 0x23489322'
cp good.img version.img
poke_le version.img 4 4 2
battery version.img 'version 2'
cp good.img bsize.img
poke_le bsize.img 8 4 3000
battery bsize.img 'invalid block size 3000'
cp good.img nblocks.img
poke_le nblocks.img 16 8 100000
battery nblocks.img 'n_blocks 100000 needs'
cp good.img nblocks0.img
poke_le nblocks0.img 16 8 0
battery nblocks0.img 'n_blocks 0'
cp good.img nbhuge.img
poke_le nbhuge.img 16 8 $((1 << 62))
battery nbhuge.img 'overflow|needs'
# seq_count so large that commits would wrap it to 0 (all entries would then
# look uncommitted and the dirty cache clean): refused as impossible.
cp good.img seqwrap.img
printf '\xfe\xff\xff\xff\xff\xff\xff\xff' | dd of=seqwrap.img bs=1 seek=24 conv=notrunc status=none
battery seqwrap.img 'seq_count 18446744073709551614 is impossible'
cp good.img seq63.img
printf '\x00\x00\x00\x00\x00\x00\x00\x80' | dd of=seq63.img bs=1 seek=24 conv=notrunc status=none
battery seq63.img 'seq_count 9223372036854775808 is impossible'
# n_blocks or block_size smaller than the format: data block 0 would be the
# entry table itself, and flush used to copy it onto the origin.
cp good.img nblocks1.img
poke_le nblocks1.img 16 8 1
battery nblocks1.img 'n_blocks 1 is too small: [0-9]+ free entries follow the last one'
for bs in 2048 1024 512; do
	cp good.img bs$bs.img
	poke_le bs$bs.img 8 4 $bs
	battery bs$bs.img "block_size $bs does not fit the device"
done

# --- a block size that does not match the table's ---
snapshot good.img
run_rc 1 "$WCACHE" export --block-size 512 origin.img good.img out.img
err_has 'block size mismatch: cache formatted with 4096, table asks 512'
[[ ! -e out.img ]] || fail "failed export created its output"
run_rc 1 "$WCACHE" flush --block-size 2048 origin.img good.img
err_has 'block size mismatch'
assert_unchanged good.img origin.img

# --- damaged entries ---
cp good.img past.img
poke_le past.img $((64 + 16 * i0)) 8 $((1 << 40))
battery past.img 'beyond the origin' 1 2
run_rc 1 "$WCACHE" check past.img # without the origin it cannot be judged
cp good.img past2.img # the first sector past the end
poke_le past2.img $((64 + 16 * i0)) 8 $((8 * MiB / 512))
battery past2.img 'beyond the origin' 1 2
cp good.img misaligned.img
poke_le misaligned.img $((64 + 16 * i0)) 8 $((s0 + 3))
battery misaligned.img 'unaligned|not block aligned' 0 1
cp good.img dup.img # entry i1 maps the same sector with the same seq as entry i0
poke_le dup.img $((64 + 16 * i1)) 8 "$s0"
poke_le dup.img $((64 + 16 * i1 + 8)) 8 "$q0"
battery dup.img "both map sector $s0 with seq $q0" 0 1
run_rc 1 "$WCACHE" dump --json dup.img
assert_eq "$(jq -r .status "$TMPD/out")" corrupt "dump status of dup.img"
assert_eq "$(jq "[.entries[] | select(.original_sector == $s0)] | length" "$TMPD/out")" 2 \
	"both duplicate entries listed"

# Not corruption: a lower sb seq_count makes entries uncommitted (a crash
# before the commit): check reports them and says clean, nothing is valid.
cp good.img uncommitted.img
poke_le uncommitted.img 24 8 0
snapshot uncommitted.img
run_rc 0 "$WCACHE" check --origin origin.img uncommitted.img
out_has '^uncommitted: 5$'
out_has '^valid: 0$'
run_rc 0 "$WCACHE" export origin.img uncommitted.img out.img
assert_eq "$(sha256 out.img)" "$(sha256 origin.img)" "uncommitted entries are not data"
assert_unchanged uncommitted.img

# A device grown after format: the rest stays unused (as in the kernel);
# check says so, and the data is all there.
cp good.img grown.img
truncate -s $((3 * MiB)) grown.img
snapshot grown.img
run_rc 1 "$WCACHE" check --origin origin.img grown.img
out_has '^valid: 5$'
err_has 'larger than its format .* grown since'
rm -f out.img out2.img
run_rc 0 "$WCACHE" export origin.img grown.img out.img
run_rc 0 "$WCACHE" export origin.img good.img out2.img
assert_eq "$(sha256 out.img)" "$(sha256 out2.img)" "export of the grown cache"
assert_unchanged grown.img
rm -f out.img out2.img

# --- salvage: export --force reads what is left of a damaged cache ---
run_rc 0 "$WCACHE" export origin.img good.img good.out
for c in seqwrap.img seq63.img; do
	rm -f out.img
	run_rc 0 "$WCACHE" export --force origin.img "$c" out.img
	err_has 'impossible seq_count'
	assert_eq "$(sha256 out.img)" "$(sha256 good.out)" "salvage of $c"
done
# A blank superblock over intact entries is a damaged cache, not an empty
# device: neither format nor serve's format=auto may wipe it unasked.
cp good.img blank.img
poke_le blank.img 0 8 0
snapshot blank.img origin.img
run_rc 1 "$WCACHE" format blank.img
err_has 'records after it look like committed cache entries'
run_rc 1 "${WCACHE_SERVE[@]}" origin.img blank.img --run true
err_has 'look like committed cache entries: a damaged cache'
run_rc 2 "$WCACHE" check blank.img
err_has 'not formatted .*, but [0-9]+ records after the superblock look like committed'
assert_unchanged blank.img origin.img
rm -f out.img
run_rc 0 "$WCACHE" export --force origin.img blank.img out.img
err_has 'blank superblock'
assert_eq "$(sha256 out.img)" "$(sha256 good.out)" "salvage of a blank superblock"
cp blank.img blank2.img
run_rc 0 "$WCACHE" format --force blank2.img
err_has 'formatting over [0-9]+ entry-like records'
# ... while an interrupted format (all entries free, magic 0) is formatted.
truncate -s $MiB fresh.img
run_rc 0 "$WCACHE" format fresh.img
poke_le fresh.img 0 8 0
run_rc 0 "$WCACHE" format fresh.img
poke_le fresh.img 0 8 0
run_rc 0 "${WCACHE_SERVE[@]}" origin.img fresh.img --run true
run_rc 0 "$WCACHE" check fresh.img
# A truncated cache: every other command refuses and points at the salvage;
# export --force takes each valid block whose data survives, and the
# origin's data for the others; dump --partial lists what is there (exit 1,
# nothing written): data past the end as missing, records past it as free.
data_off=$(jq .superblock.data_offset good.json)
nblocks=$(jq .superblock.n_blocks good.json)
full=$((data_off + 4096 * nblocks))
for keep in $((MiB - 1)) $((MiB / 2)) $((data_off + 4096 * (i1 + 1))) $((64 + 16 * (i1 + 1) + 5)); do
	head -c "$keep" good.img >cut.img
	records=$(((keep - 64) / 16))
	((records <= nblocks)) || records=$nblocks
	run_rc 1 "$WCACHE" export origin.img cut.img out.img
	err_has "salvages"
	run_rc 1 "$WCACHE" dump cut.img
	err_has "'wcache dump --partial' lists what is left"
	snapshot cut.img
	run_rc 1 "$WCACHE" dump --partial --json cut.img
	cp "$TMPD/out" cut.json
	err_has "truncated: the device is $((full - keep)) bytes short"
	assert_unchanged cut.img
	assert_eq "$(jq -r .status cut.json)" truncated "dump --partial status, cut at $keep"
	assert_eq "$(jq .truncated.short_bytes cut.json)" $((full - keep)) "short_bytes, cut at $keep"
	assert_eq "$(jq .truncated.entries_missing cut.json)" $((nblocks - records)) \
		"entries_missing, cut at $keep"
	want_missing=0
	while read -r idx; do
		if ((idx >= records)); then
			[[ $(jq -r ".entries[] | select(.index == $idx) | .state" cut.json) = "" ]] ||
				fail "cut at $keep: entry $idx is past the end but listed"
		elif ((data_off + 4096 * (idx + 1) > keep)); then
			assert_eq "$(jq -r ".entries[] | select(.index == $idx) | .state" cut.json)" missing \
				"cut at $keep: entry $idx (data past the end)"
			want_missing=$((want_missing + 1))
		else
			assert_eq "$(jq -r ".entries[] | select(.index == $idx) | .state" cut.json)" valid \
				"cut at $keep: entry $idx (data present)"
		fi
	done < <(jq -r '.entries[] | select(.valid) | .index' good.json)
	assert_eq "$(jq .truncated.data_missing cut.json)" "$want_missing" "data_missing, cut at $keep"
	if ((keep == MiB / 2)); then
		# A damaged n_blocks on top (2^31 blocks on half a MiB): the listing
		# is bounded by the records the device holds (the fuzz label found
		# dump --partial spending minutes on such a claim).
		cp cut.img huge.img
		poke_le huge.img 16 8 $((1 << 31))
		run_rc 1 timeout 20 "$WCACHE" dump --partial --all --json huge.img
		assert_eq "$(jq .truncated.entries_missing "$TMPD/out")" $(((1 << 31) - (keep - 64) / 16)) \
			"entries_missing with n_blocks 2^31"
	fi
	rm -f out.img
	run_rc 0 "$WCACHE" export --force origin.img cut.img out.img
	lost=0
	while read -r idx sector; do
		off=$((data_off + 4096 * idx))
		if ((off + 4096 <= keep)); then
			want=$(head -c $((off + 4096)) good.img | tail -c 4096 | sha256sum)
		else
			want=$(head -c $((sector * 512 + 4096)) origin.img | tail -c 4096 | sha256sum)
			((idx >= records)) || lost=$((lost + 1))
		fi
		got=$(head -c $((sector * 512 + 4096)) out.img | tail -c 4096 | sha256sum)
		assert_eq "$got" "$want" "cut at $keep: block of entry $idx"
	done < <(jq -r '.entries[] | select(.valid) | "\(.index) \(.original_sector)"' good.json)
	((lost == 0)) || err_has "$lost committed blocks whose data is past it are missing"
	say "cut at $keep bytes: $lost valid blocks lost"
done

# A bad cache can be reformatted (it holds nothing recoverable).
run_rc 0 "$WCACHE" format magic.img
run_rc 0 "$WCACHE" check magic.img
# ... but a cache with equal-seq duplicates still holds dirty data: guarded.
run_rc 1 "$WCACHE" format dup.img
err_has 'dirty blocks'

# Bad OUTPUT for export: an input, a directory, an unwritable path.
snapshot good.img
run_rc 1 "$WCACHE" export origin.img good.img good.img
err_has 'same file as CACHE'
run_rc 1 "$WCACHE" export origin.img good.img origin.img
err_has 'same file as ORIGIN'
ln -s good.img link.img
run_rc 1 "$WCACHE" export origin.img good.img link.img
err_has 'same file as CACHE'
run_rc 1 "$WCACHE" export origin.img good.img adir
err_has 'is a directory'
run_rc 1 "$WCACHE" export origin.img good.img nodir/out.img
err_has 'cannot open OUTPUT'
assert_unchanged good.img origin.img

# Origin problems: check --origin is a usage error, export/flush fail.
run_rc 2 "$WCACHE" check --origin missing.img good.img
err_has 'No such file'
: >empty-origin.img
run_rc 1 "$WCACHE" export empty-origin.img good.img out.img
err_has 'size 0'
assert_unchanged good.img origin.img
say ok
