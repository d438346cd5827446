#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# wcache check / dump / status / export / flush on every kernel-written sample
# (real dm-writecache caches, /work/shared/samples): check's exit code, the
# entries dump --json reports against the kernel-side cache-dump.txt, the
# exported logical device against sha256_logical_expected, inputs untouched,
# and flush on a copy leaving an origin that alone equals the logical device.
source "$(dirname "$0")/functions.sh"
requires jq zstd sha256sum
requires_wcache
tmpdir

# Independent reference from cache-dump.txt: "idx sector seq cache_off" of every
# committed entry that wins recovery (highest seq per sector, later index on ties).
ref_valid_entries() {
	awk '$1 == "idx" && $7 == "committed" { print $2, $4, $6, $9 }' "$1" |
		sort -k2,2n -k3,3n -k1,1n | awk '{ last[$2] = $0 } END { for (s in last) print last[s] }' |
		sort -n
}

nr=0
for s in $(samples); do
	nr=$((nr + 1))
	say "sample $s"
	d=$TMPD/$s
	decompress_sample "$s" "$d"
	o=$d/origin.img c=$d/cache.img
	want=$(manifest "$s" .sha256_logical_expected)
	bs=$(manifest "$s" .block_size)
	snapshot "$o" "$c"
	[[ "$(sha256 "$o")" = "$(manifest "$s" .sha256_origin_img)" ]] || fail "$s: origin.img differs from manifest"

	# --- check: 0 when no valid entry remains, else 1 ---
	ref=$(ref_valid_entries "$WC_SAMPLES_DIR/$s/cache-dump.txt")
	nr_valid=$(printf '%s' "$ref" | grep -c . || true)
	if [[ "$s" = a-clean-small ]]; then
		want_rc=0
		assert_eq "$nr_valid" 0 "$s: reference valid entries"
	else
		want_rc=1
		((nr_valid > 0)) || fail "$s: a dirty sample without valid entries in cache-dump.txt"
	fi
	run_rc $want_rc "$WCACHE" check "$c"
	out_has "^block_size: $bs\$"
	out_has "^n_blocks: $(manifest "$s" .cache_metadata.n_blocks)\$"
	out_has "^seq_count: $(manifest "$s" .cache_metadata.seq_count)\$"
	out_has "^valid: $nr_valid\$"
	run_rc $want_rc "$WCACHE" check --origin "$o" "$c"
	run_rc $want_rc "$WCACHE" check -q "$c"
	[[ ! -s "$TMPD/out" ]] || fail "check -q printed something"

	# --- dump --json: parses, and its valid entries are exactly the reference ---
	run_rc 0 "$WCACHE" dump --json "$c"
	cp "$TMPD/out" "$d/dump.json"
	jq -e . "$d/dump.json" >/dev/null || fail "$s: dump --json is not valid JSON"
	assert_eq "$(jq -r .cache "$d/dump.json")" "$c" "$s: dump .cache"
	assert_eq "$(jq -r .superblock.magic_hex "$d/dump.json")" \
		"$(manifest "$s" .cache_metadata.magic)" "$s: magic"
	assert_eq "$(jq -r .superblock.data_offset "$d/dump.json")" \
		"$(manifest "$s" .cache_metadata.data_offset)" "$s: data_offset"
	assert_eq "$(jq '[.entries[] | select(.valid)] | length' "$d/dump.json")" "$nr_valid" \
		"$s: number of valid entries in dump --json"
	assert_eq "$(jq .counts.valid "$d/dump.json")" "$nr_valid" "$s: counts.valid"
	assert_eq "$(jq '.entries | length' "$d/dump.json")" \
		"$(manifest "$s" .cache_metadata.entries_with_seq)" "$s: entries with seq"
	got=$(jq -r '.entries[] | select(.valid) | "\(.index) \(.original_sector) \(.seq_count) \(.cache_offset)"' \
		"$d/dump.json")
	[[ "$got" = "$ref" ]] || {
		diff <(echo "$ref") <(echo "$got") >&2 || true
		fail "$s: valid entries differ from cache-dump.txt"
	}
	# Text dump lists the same entries.
	run_rc 0 "$WCACHE" dump "$c"
	assert_eq "$(awk '$4 == "valid" { print $1, $2, $3, $5 }' "$TMPD/out")" "$ref" "$s: text dump"
	run_rc 0 "$WCACHE" dump --all --json "$c"
	assert_eq "$(jq '.entries | length' "$TMPD/out")" "$(manifest "$s" .cache_metadata.n_blocks)" \
		"$s: dump --all lists every entry"

	# --- status (offline) ---
	n_blocks=$(manifest "$s" .cache_metadata.n_blocks)
	run_rc 0 "$WCACHE" status "$c"
	assert_eq "$(cat "$TMPD/out")" "$(printf 'total: %s\nfree: %s\ndirty: %s\nseq_count: %s' \
		"$n_blocks" $((n_blocks - nr_valid)) "$nr_valid" "$(manifest "$s" .cache_metadata.seq_count)")" \
		"$s: status"
	# The kernel's own view after reactivation: field 3 of "status loaded" is free blocks.
	kfree=$(manifest "$s" .reactivation | awk '/^status loaded:/ { print $8 }')
	assert_eq "$((n_blocks - nr_valid))" "$kfree" "$s: free blocks vs the kernel after reactivation"

	# --- export: the logical device, read-only ---
	run_rc 0 "$WCACHE" export "$o" "$c" "$d/logical.img"
	assert_eq "$(sha256 "$d/logical.img")" "$want" "$s: exported logical device"
	assert_eq "$(stat -c %s "$d/logical.img")" "$(manifest "$s" .origin_bytes)" "$s: export size"
	assert_unchanged "$o" "$c"
	# To stdout, with forced progress lines on a non-tty stderr.
	"$WCACHE" export --progress "$o" "$c" - 2>"$d/progress.txt" | sha256sum >"$d/stdout.sha"
	assert_eq "$(cut -d' ' -f1 "$d/stdout.sha")" "$want" "$s: export to stdout"
	mib=$((($(manifest "$s" .origin_bytes) + 1048575) / 1048576))
	grep -q "100% $mib/$mib MiB" "$d/progress.txt" || fail "$s: no final progress line"
	# The same with the table block size given explicitly.
	run_rc 0 "$WCACHE" export --block-size "$bs" "$o" "$c" "$d/logical2.img"
	assert_eq "$(sha256 "$d/logical2.img")" "$want" "$s: export --block-size"
	assert_unchanged "$o" "$c"

	# --- flush on copies: afterwards the origin alone holds the logical device ---
	cp "$o" "$d/o2.img"
	cp "$c" "$d/c2.img"
	run_rc 0 "$WCACHE" flush --progress "$d/o2.img" "$d/c2.img"
	out_has "flushed $nr_valid blocks"
	err_has "100% $nr_valid/$nr_valid blocks"
	assert_eq "$(sha256 "$d/o2.img")" "$want" "$s: origin after flush"
	run_rc 0 "$WCACHE" check "$d/c2.img"
	out_has '^valid: 0$'
	run_rc 0 "$WCACHE" status "$d/c2.img"
	out_has "^dirty: 0\$"
	# A second flush is a no-op; exporting still gives the same device.
	run_rc 0 "$WCACHE" flush "$d/o2.img" "$d/c2.img"
	out_has "flushed 0 blocks"
	run_rc 0 "$WCACHE" export "$d/o2.img" "$d/c2.img" "$d/logical3.img"
	assert_eq "$(sha256 "$d/logical3.img")" "$want" "$s: export after flush"
	if ((nr_valid > 0)); then
		# Sanity of the oracle: the unflushed origin must differ from the logical device.
		[[ "$(sha256 "$o")" != "$want" ]] || fail "$s: origin already equals the logical device"
	fi
	rm -f "$d"/*.img
done
((nr > 0)) || skip "no samples found"
say "ok ($nr samples)"
