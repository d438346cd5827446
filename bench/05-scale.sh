#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Benchmark 5, scale: caches holding 1M and 10M dirty 512-byte blocks
# (wcache-bench-scale, linked with the library, fills them through the API).
# For each: RSS growth of a fresh process across wcache_open divided by the
# cached blocks (target <= 24 bytes per block), and the open (recovery) time
# against reading the same metadata area with dd iflag=direct (target
# <= 1.5x), in interleaved rounds. Sizes shrink, with a note, when the file
# system of --work lacks the space.
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_parse_args "$@"
bench_requires dd numfmt

SCALE=$BENCH_BUILD/wcache-bench-scale
[[ -x $SCALE ]] || die "$SCALE not found (build the target wcache-bench-scale)"

if ((BENCH_QUICK)); then
	counts=(65536)
	rounds=${BENCH_ROUNDS:-1}
else
	counts=(1000000 10000000)
	rounds=${BENCH_ROUNDS:-5}
fi
fs=$(fstype "$BENCH_WORK")

# Room for the cache file (528 bytes a block plus slack) and 1 GiB to spare.
avail=$(($(df --output=avail -B1 "$WORK" | tail -1)))
notes=()
for i in "${!counts[@]}"; do
	need=$((counts[i] * 540 + (1 << 30)))
	if ((need > avail)); then
		n=$(((avail - (1 << 30)) / 540))
		((n > 0)) || die "no room in $WORK for any cache"
		notes+=("only $((avail >> 20)) MiB free in $BENCH_WORK: ${counts[i]} blocks scaled down to $n")
		counts[i]=$n
	fi
done

# kv FILE KEY
kv() { awk -F= -v k="$2" '$1 == k { print $2 }' "$1"; }

# dd_secs CACHE BYTES: seconds dd takes to read BYTES from the start of CACHE, O_DIRECT.
dd_secs() {
	dd if="$1" of=/dev/null bs=1M count="$2" iflag=direct,count_bytes 2>&1 |
		awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") print $(i - 1) }'
}

out "### $fs ($(fs_of "$BENCH_WORK")): 512-byte blocks, $rounds interleaved rounds of dd and open"
out ""
out "| cached blocks | n_blocks | metadata MiB | fill s | dd metadata s | wcache_open s | open / dd | RSS growth MiB | bytes per cached block after open | in use |"
out "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
last_ratio=nan last_bpb=nan
for n in "${counts[@]}"; do
	say "filling a cache with $n blocks"
	"$SCALE" fill "$WORK/cache.img" "$WORK/origin.img" "$n" 512 >"$OUT/fill-$n.txt" ||
		die "fill of $n blocks failed"
	meta=$(kv "$OUT/fill-$n.txt" meta_bytes)
	dds=() opens=() ratios=() bpbs=() bpbts=() growth=()
	for ((r = 1; r <= rounds; r++)); do
		if ((r % 2)); then
			d=$(dd_secs "$WORK/cache.img" "$meta")
			"$SCALE" open "$WORK/cache.img" "$WORK/origin.img" >"$OUT/open-$n-r$r.txt"
		else
			"$SCALE" open "$WORK/cache.img" "$WORK/origin.img" >"$OUT/open-$n-r$r.txt"
			d=$(dd_secs "$WORK/cache.img" "$meta")
		fi
		o=$(kv "$OUT/open-$n-r$r.txt" open_s)
		dds+=("$d") opens+=("$o") ratios+=("$(div "$o" "$d")")
		bpbs+=("$(kv "$OUT/open-$n-r$r.txt" bytes_per_block)")
		bpbts+=("$(kv "$OUT/open-$n-r$r.txt" bytes_per_block_touched)")
		growth+=("$(($(kv "$OUT/open-$n-r$r.txt" rss_after_kib) - $(kv "$OUT/open-$n-r$r.txt" rss_before_kib)))")
		say "$n blocks round $r: dd ${d}s, open ${o}s, $(kv "$OUT/open-$n-r$r.txt" bytes_per_block) bytes/block" \
			"($(kv "$OUT/open-$n-r$r.txt" bytes_per_block_touched) in use)"
	done
	last_ratio=$(median "${ratios[@]}") last_bpb=$(median "${bpbts[@]}")
	out "| $n | $(kv "$OUT/fill-$n.txt" n_blocks) | $(fmt "$(div "$meta" 1048576)" 1) |" \
		"$(kv "$OUT/fill-$n.txt" fill_s) | $(median "${dds[@]}") | $(median "${opens[@]}") |" \
		"$last_ratio | $(fmt "$(div "$(median "${growth[@]}")" 1024)" 1) | $(median "${bpbs[@]}") | $last_bpb |"
	# Where the open time goes (largest N only; perf is optional).
	if [[ $n = "${counts[-1]}" ]] && command -v perf >/dev/null 2>&1; then
		if perf record -q -F 2999 -g -o "$WORK/perf-open.data" -- \
			"$SCALE" open "$WORK/cache.img" "$WORK/origin.img" >/dev/null 2>&1; then
			{
				echo "# perf report --no-children --sort symbol: one wcache_open of $n blocks"
				perf report -i "$WORK/perf-open.data" --no-children --sort symbol --stdio \
					-g none 2>/dev/null | grep -E '^ +[0-9]' | head -20 || true
			} >"$OUT/perf-open.txt"
		fi
	fi
	rm -f "$WORK/cache.img" "$WORK/origin.img"
done
out ""
out "n_blocks includes 1/64 slack over the cached blocks (the cache must not fill up);"
out "bytes per cached block = RSS growth across wcache_open / cached blocks; 'in use' = the same after"
out "rewriting one block in 512 in place, which makes every per-block array resident (the target"
out "applies to it); open / dd is the median of per-round ratios."
for note in "${notes[@]}"; do
	out "NOTE: $note"
done

ratio_line "at ${counts[-1]} blocks: open/dd $last_ratio (target <= 1.5: $(verdict ge 1.5 "$last_ratio"))," \
	"RAM $last_bpb bytes/block (target <= 24: $(verdict ge 24 "$last_bpb"))"
