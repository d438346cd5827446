#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The kernel samples behind a start_sector offset: N random sectors are put in
# front of a copy of each cache image and every offline subcommand gets
# --start-sector N. Results must equal the unshifted ones, and nothing may
# touch the N leading sectors (flush included) or read metadata from them.
source "$(dirname "$0")/functions.sh"
requires jq zstd sha256sum
requires_wcache
tmpdir

nr=0
for s in $(samples); do
	nr=$((nr + 1))
	d=$TMPD/$s
	decompress_sample "$s" "$d"
	o=$d/origin.img
	want=$(manifest "$s" .sha256_logical_expected)
	# 9: not a multiple of the block size; 2048: a typical partition offset.
	for n in 9 2048; do
		say "sample $s, start_sector $n"
		c=$d/cache-$n.img
		head -c $((n * 512)) /dev/urandom >"$c"
		cat "$d/cache.img" >>"$c"
		prefix=$(sha256_range "$c" 0 $((n * 512)))
		snapshot "$o" "$c"

		if [[ "$s" = a-clean-small ]]; then want_rc=0; else want_rc=1; fi
		run_rc $want_rc "$WCACHE" check --start-sector "$n" "$c"
		run_rc $want_rc "$WCACHE" check -s "$n" --origin "$o" "$c"
		out_has "^data_offset: $(($(manifest "$s" .cache_metadata.data_offset) + n * 512))\$"
		# Without the offset the random sectors are not a superblock.
		run_rc 2 "$WCACHE" check "$c"
		err_has 'invalid magic|not formatted'

		run_rc 0 "$WCACHE" dump --json --start-sector "$n" "$c"
		jq -e . "$TMPD/out" >/dev/null || fail "dump --json is not JSON"
		run_rc 0 "$WCACHE" dump --json "$d/cache.img"
		cp "$TMPD/out" "$d/plain.json"
		run_rc 0 "$WCACHE" dump --json -s "$n" "$c"
		# Same entries; cache offsets shifted by the prefix.
		assert_eq "$(jq -c "[.entries[] | [.index, .original_sector, .seq_count, .valid, .cache_offset - $n * 512]]" "$TMPD/out")" \
			"$(jq -c '[.entries[] | [.index, .original_sector, .seq_count, .valid, .cache_offset]]' "$d/plain.json")" \
			"$s: entries at start_sector $n"
		assert_eq "$(jq .start_sector "$TMPD/out")" "$n" "dump start_sector"

		run_rc 0 "$WCACHE" status --start-sector "$n" "$c"
		out_has "^total: $(manifest "$s" .cache_metadata.n_blocks)\$"

		run_rc 0 "$WCACHE" export --start-sector "$n" "$o" "$c" "$d/logical.img"
		assert_eq "$(sha256 "$d/logical.img")" "$want" "$s: export at start_sector $n"
		assert_unchanged "$o" "$c"

		cp "$o" "$d/o2.img"
		run_rc 0 "$WCACHE" flush --start-sector "$n" "$d/o2.img" "$c"
		assert_eq "$(sha256 "$d/o2.img")" "$want" "$s: origin after flush at start_sector $n"
		assert_eq "$(sha256_range "$c" 0 $((n * 512)))" "$prefix" "$s: sectors before start_sector"
		assert_eq "$(stat -c %s "$c")" $((n * 512 + $(stat -c %s "$d/cache.img"))) "$s: cache size"
		run_rc 0 "$WCACHE" check -s "$n" "$c"
		rm -f "$c" "$d/o2.img" "$d/logical.img"
	done
	rm -f "$d"/*.img
done
((nr > 0)) || skip "no samples found"

# An offset at or past the end of the device is refused, not wrapped.
truncate -s 1M "$TMPD/small.img"
run_rc 0 "$WCACHE" format "$TMPD/small.img"
run_rc 2 "$WCACHE" check --start-sector 2048 "$TMPD/small.img"
err_has 'beyond|too small'
run_rc 2 "$WCACHE" check --start-sector 36028797018963967 "$TMPD/small.img"
run_rc 2 "$WCACHE" check --start-sector 36028797018963968 "$TMPD/small.img"
err_has 'out of range'
run_rc 1 "$WCACHE" format --start-sector 2048 "$TMPD/small.img"
say "ok ($nr samples)"
