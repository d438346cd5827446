#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# wcache format with 512-byte blocks, data written through the library
# (wctest-write: aligned, unaligned and overlapping writes, left dirty), then
# check / dump / export / flush against a model built with dd; the dirty-data
# guard of format (refuse without --force, say what would be lost); sparse
# export output; the kernel's n_blocks formula for several block sizes.
source "$(dirname "$0")/functions.sh"
requires jq sha256sum
requires_wcache
writer=$(requires_helper wctest-write)
tmpdir

# Kernel n_blocks (docs/format.md §3.3) for USABLE bytes and block size BS.
kernel_n_blocks() {
	local usable=$1 bs=$2 n meta
	n=$((usable / (bs + 16)))
	while ((n > 0)); do
		meta=$(((64 + 16 * n + bs - 1) / bs * bs))
		((meta + n * bs <= usable)) && break
		n=$((n - 1))
	done
	echo "$n"
}

MiB=1048576
# Origin: random, except MiB 2..4 which stay zero (holes in a sparse export).
head -c $((2 * MiB)) /dev/urandom >origin.img
head -c $((3 * MiB)) /dev/zero >>origin.img
head -c $((3 * MiB)) /dev/urandom >>origin.img
truncate -s $((2 * MiB)) cache.img

run_rc 2 "$WCACHE" check cache.img
err_has 'not formatted'
run_rc 1 "$WCACHE" export origin.img cache.img out.img
err_has 'not formatted'
[[ ! -e out.img ]] || fail "a failed export created its output"

# --- format, 512-byte blocks ---
nb=$(kernel_n_blocks $((2 * MiB)) 512)
run_rc 0 "$WCACHE" format --block-size 512 cache.img
out_has "$nb blocks of 512 bytes"
run_rc 0 "$WCACHE" check cache.img
out_has '^block_size: 512$'
out_has "^n_blocks: $nb\$"
out_has '^seq_count: 0$'
run_rc 0 "$WCACHE" dump --json cache.img
assert_eq "$(jq -c '[.superblock.block_size, .superblock.n_blocks, (.entries | length)]' "$TMPD/out")" \
	"[512,$nb,0]" "fresh 512-byte cache"

# --- write through the library: pieces "offset length" ---
pieces=(
	"0 4096"             # aligned, 8 blocks
	"10000 1000"         # unaligned, 3 blocks
	"$((8 * MiB - 512)) 512" # the last block
	"100 700"            # overwrites cached blocks 0 and 1, unaligned
	"$((5 * MiB + 1)) 3" # 3 bytes inside a block
	"$((6 * MiB - 300)) 600" # across a MiB boundary
)
cp origin.img expect.img
args=()
i=0
for p in "${pieces[@]}"; do
	read -r off len <<<"$p"
	head -c "$len" /dev/urandom >"piece$i"
	dd if="piece$i" of=expect.img bs=1M oflag=seek_bytes seek="$off" conv=notrunc status=none
	args+=("$off:piece$i")
	i=$((i + 1))
done
want=$(sha256 expect.img)
[[ "$want" != "$(sha256 origin.img)" ]] || fail "model equals the origin"
# Distinct 512-byte blocks written = valid entries expected (sector = block).
blocks=$(for p in "${pieces[@]}"; do
	read -r off len <<<"$p"
	seq $((off / 512)) $(((off + len - 1) / 512))
done | sort -n -u)
nr_blocks=$(echo "$blocks" | wc -l)

snapshot origin.img
run_rc 0 "$writer" origin.img cache.img "${args[@]}"
assert_unchanged origin.img # write-back: the origin has not been touched yet

run_rc 1 "$WCACHE" check --origin origin.img cache.img
out_has "^valid: $nr_blocks\$"
run_rc 0 "$WCACHE" dump --json cache.img
jq -e . "$TMPD/out" >/dev/null || fail "dump --json is not JSON"
assert_eq "$(jq -r '.entries[] | select(.valid) | .original_sector' "$TMPD/out" | sort -n)" "$blocks" \
	"sectors of the valid entries"
assert_eq "$(jq '[.entries[] | select(.valid and .committed and .state == "valid")] | length' "$TMPD/out")" \
	"$nr_blocks" "valid entries are committed"
data_off=$(jq .superblock.data_offset "$TMPD/out")
jq -e --argjson d "$data_off" 'all(.entries[]; .cache_offset == $d + .index * 512)' "$TMPD/out" \
	>/dev/null || fail "cache_offset != data_offset + index * block_size"
run_rc 0 "$WCACHE" status cache.img
out_has "^dirty: $nr_blocks\$"
out_has "^free: $((nb - nr_blocks))\$"

# --- export: equals the model; sparse where whole MiB chunks are zero ---
snapshot origin.img cache.img
run_rc 0 "$WCACHE" export origin.img cache.img out.img
assert_eq "$(sha256 out.img)" "$want" "export of the 512-byte cache"
assert_unchanged origin.img cache.img
alloc=$(($(stat -c %b out.img) * $(stat -c %B out.img)))
((alloc <= 5 * MiB + 65536)) || fail "export is not sparse: $alloc bytes allocated for 8 MiB with 3 zero MiB"
# Exporting over an existing, larger file truncates it.
head -c $((9 * MiB)) /dev/urandom >out.img
run_rc 0 "$WCACHE" export --no-progress origin.img cache.img out.img
assert_eq "$(sha256 out.img)" "$want" "export over an existing file"
# A table block size that does not match the superblock is refused.
run_rc 1 "$WCACHE" export --block-size 4096 origin.img cache.img out2.img
err_has 'block size mismatch'
[[ ! -e out2.img ]] || fail "a failed export created its output"

# --- format refuses to destroy dirty data ---
run_rc 1 "$WCACHE" format cache.img
err_has "$nr_blocks dirty blocks"
err_has 'wcache flush'
assert_unchanged cache.img

# --- flush on copies: the origin becomes the model, the cache clean ---
cp origin.img o2.img
cp cache.img c2.img
run_rc 0 "$WCACHE" flush o2.img c2.img --high-watermark 90 --low_watermark 80
assert_eq "$(sha256 o2.img)" "$want" "origin after flush"
run_rc 0 "$WCACHE" check c2.img
# A clean cache formats without --force.
run_rc 0 "$WCACHE" format --block-size 1024 c2.img
run_rc 0 "$WCACHE" check c2.img
out_has '^block_size: 1024$'
out_has "^n_blocks: $(kernel_n_blocks $((2 * MiB)) 1024)\$"

# --force formats the dirty one, and says what it discards.
run_rc 0 "$WCACHE" format --force cache.img
err_has "discarding $nr_blocks dirty blocks"
run_rc 0 "$WCACHE" check cache.img
out_has '^valid: 0$'
run_rc 0 "$WCACHE" export origin.img cache.img out.img
assert_eq "$(sha256 out.img)" "$(sha256 origin.img)" "export of a freshly formatted cache"

# --- export of a device whose last MiB chunks are zero: holes up to the end ---
head -c $MiB /dev/urandom >zorigin.img
truncate -s $((3 * MiB + 512)) zorigin.img
truncate -s $MiB zcache.img
run_rc 0 "$WCACHE" format -b 512 zcache.img
run_rc 0 "$WCACHE" export zorigin.img zcache.img zout.img
assert_eq "$(stat -c %s zout.img)" $((3 * MiB + 512)) "size of an export with a zero tail"
cmp zorigin.img zout.img || fail "export with a zero tail differs"
alloc=$(($(stat -c %b zout.img) * $(stat -c %B zout.img)))
((alloc <= MiB + 65536)) || fail "zero tail not sparse: $alloc bytes allocated"

# --- n_blocks for other sizes and block sizes ---
for bs in 512 1024 2048 4096; do
	for size in 1048576 3000000 16777216; do
		rm -f f.img
		truncate -s "$size" f.img
		run_rc 0 "$WCACHE" format -b "$bs" f.img
		run_rc 0 "$WCACHE" dump --json f.img
		assert_eq "$(jq .superblock.n_blocks "$TMPD/out")" "$(kernel_n_blocks "$size" "$bs")" \
			"n_blocks for $size bytes, block size $bs"
		assert_eq "$(jq .superblock.meta_bytes "$TMPD/out")" \
			$(((64 + 16 * $(kernel_n_blocks "$size" "$bs") + bs - 1) / bs * bs)) "meta_bytes"
	done
done
# Too small for one block.
truncate -s 600 tiny.img
run_rc 1 "$WCACHE" format -b 512 tiny.img
err_has 'hold no|too small|invalid device size'
say ok
