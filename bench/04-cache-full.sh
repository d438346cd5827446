#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Benchmark 4, cache full: 4K random writes (QD16) of 4x the cache size over
# an origin region larger than that, through wcache (cache and origin files
# on the same file system) for several high/low watermark settings, and the
# same job straight to an origin file through nbdkit's file plugin (the
# baseline). Per-I/O latency logs become throughput and p99/p99.9 latency
# over time (cache-full.png); the longest stall is the largest completion
# gap and the largest single latency. Ratio: wcache's steady-state
# throughput (second half of the run) over the baseline's.
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_parse_args "$@"
bench_requires_fio_nbd
bench_requires python3

if ((BENCH_QUICK)); then
	cache_size=8M origin_size=64M win=250
	wm_list=("50 45")
else
	cache_size=128M origin_size=1G win=500
	wm_list=("50 45" "20 10" "90 85")
fi
cache_bytes=$(numfmt --from=iec "$cache_size")
io_size=$((cache_bytes * 4))
fs=$(fstype "$BENCH_WORK")

mkimg "$WORK/cache.img" "$cache_size"

# run_one TAG URI: the job, then per-window stats into TAG.dat; sets STATS.
run_one() {
	local tag=$1 uri=$2 j
	j=$(fio_nbd "$tag" "$uri" --rw=randwrite --bs=4k --iodepth=16 --size="$origin_size" \
		--io_size="$io_size" --write_lat_log="$OUT/fio/$tag" --log_avg_msec=0)
	STATS=$(python3 "$BENCH_SRC/winstats.py" "$OUT/fio/${tag}_clat.1.log" "$win" "$OUT/$tag.dat")
	STATS+=" iops=$(fio_get "$j" write iops) p99_us=$(fio_get "$j" write p99_us)"
	STATS+=" p999_us=$(fio_get "$j" write p999_us) max_us=$(fio_get "$j" write max_us)"
	gzip -f "$OUT/fio/${tag}"_*.log
}

# kv KEY: a field of $STATS.
kv() { tr ' ' '\n' <<<"$STATS" | awk -F= -v k="$1" '$1 == k { print $2 }'; }

out "### $fs ($(fs_of "$BENCH_WORK")): 4K randwrite QD16, $((io_size >> 20)) MiB (4x a $cache_size cache) over a $origin_size origin"
out ""
out "| target | high/low watermark | total s | mean IOPS | steady MiB/s | steady / baseline | p99 us | p99.9 us | max latency ms | longest gap ms | writes around |"
out "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"

# Baseline first and last, so drift over the run shows.
base_mibs=()
baseline() {
	mksparse "$WORK/origin-direct.img" "$origin_size"
	srv_nbdkit direct file "$WORK/origin-direct.img"
	run_one "direct-$1" "${SRV_URI[direct]}"
	srv_stop direct
	rm -f "$WORK/origin-direct.img"
	base_mibs+=("$(kv steady_mibs)")
	out "| nbdkit file on the origin ($1) | - | $(kv total_s) | $(fmt "$(kv iops)" 0) |" \
		"$(kv steady_mibs) | 1 | $(fmt "$(kv p99_us)" 0) | $(fmt "$(kv p999_us)" 0) |" \
		"$(kv max_lat_ms) | $(kv longest_gap_ms) | - |"
}
baseline first

declare -A steady
for wm in "${wm_list[@]}"; do
	read -r hi lo <<<"$wm"
	mksparse "$WORK/origin.img" "$origin_size"
	"$WCACHE" format --force "$WORK/cache.img" >/dev/null 2>&1
	srv_wcache wc "$WORK/origin.img" "$WORK/cache.img" --high-watermark "$hi" --low-watermark "$lo"
	run_one "wcache-$hi-$lo" "${SRV_URI[wc]}"
	around=$(wc_status wc writes_around)
	srv_stop wc
	rm -f "$WORK/origin.img"
	steady[$hi]=$(kv steady_mibs)
	out "| wcache | $hi/$lo | $(kv total_s) | $(fmt "$(kv iops)" 0) | $(kv steady_mibs) |" \
		"$(div "$(kv steady_mibs)" "${base_mibs[0]}") | $(fmt "$(kv p99_us)" 0) |" \
		"$(fmt "$(kv p999_us)" 0) | $(kv max_lat_ms) | $(kv longest_gap_ms) | $around |"
done
((BENCH_QUICK)) || baseline last
base=$(median "${base_mibs[@]}")
out ""
out "steady = MiB/s over the second half of each run; the baseline is the median of its runs ($base MiB/s)."

{
	cat <<GP
set terminal pngcairo size 1000,800 noenhanced
set output 'cache-full.png'
set multiplot layout 2,1 title 'Sustained 4K random writes, 4x the cache size ($cache_size cache, $fs)'
set grid
set ylabel 'MiB/s (per ${win} ms)'
set xlabel 'seconds'
GP
	printf "plot 'direct-first.dat' using 1:2 with lines lw 2 title 'nbdkit file (origin, no cache)'"
	for wm in "${wm_list[@]}"; do
		read -r hi lo <<<"$wm"
		printf ", 'wcache-%s-%s.dat' using 1:2 with lines lw 2 title 'wcache %s/%s'" "$hi" "$lo" "$hi" "$lo"
	done
	echo
	echo "set logscale y"
	echo "set ylabel 'latency us (p99 solid, p99.9 dashed)'"
	printf "plot 'direct-first.dat' using 1:5 with lines lw 2 lc 1 title 'file p99'"
	printf ", '' using 1:6 with lines dt 2 lc 1 notitle"
	c=2
	for wm in "${wm_list[@]}"; do
		read -r hi lo <<<"$wm"
		printf ", 'wcache-%s-%s.dat' using 1:5 with lines lw 2 lc %d title 'wcache %s/%s p99'" \
			"$hi" "$lo" "$c" "$hi" "$lo"
		printf ", '' using 1:6 with lines dt 2 lc %d notitle" "$c"
		c=$((c + 1))
	done
	echo
	echo "unset multiplot"
} >"$OUT/cache-full.gp"
plot cache-full.gp

r=$(div "${steady[50]}" "$base")
ratio_line "wcache(50/45) steady-state throughput / straight to the origin = $r (no target;" \
	"$(for wm in "${wm_list[@]}"; do read -r hi lo <<<"$wm"; printf '%s/%s: %s MiB/s, ' "$hi" "$lo" "${steady[$hi]}"; done)baseline $base MiB/s)"
