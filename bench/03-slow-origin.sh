#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Benchmark 3, slow origin: the origin is nbdkit's file plugin behind the
# delay filter (every write waits DELAY; the noparallel filter with
# serialize=all-requests makes it a serial slow disk even for clients with
# several connections, which "-t 1" does not), reached through wcache's NBD origin backend.
#  A. 4K write latency at QD1 through wcache vs straight to the origin.
#  B. Drain: N distinct random 4K blocks written through wcache, then timed
#     'message flush', vs writing the same blocks in sorted order (adjacent
#     blocks merged) straight to the origin plus one FLUSH. Target <= 1.2x.
#  C. writeback_jobs: the same drain for several values, serial and parallel
#     (16-thread) slow origins, with drain curves (dirty blocks over time).
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_parse_args "$@"
bench_requires_fio_nbd
bench_requires shuf

if ((BENCH_QUICK)); then
	delay=1ms nblk=200 cache_size=64M origin_size=64M lat_region=8M
	rounds=${BENCH_ROUNDS:-1} runtime=${BENCH_RUNTIME:-500ms}
	jobs_list=(16) par_origin=0
else
	delay=2ms nblk=8000 cache_size=512M origin_size=1G lat_region=64M
	rounds=${BENCH_ROUNDS:-3} runtime=${BENCH_RUNTIME:-5s}
	jobs_list=(1 16 256 4096 65536) par_origin=1
fi
bs=4096
region_blk=$((nblk * 8))

mksparse "$WORK/origin.img" "$origin_size"
mkimg "$WORK/cache.img" "$cache_size"
srv_nbdkit slow --filter=noparallel --filter=delay file "$WORK/origin.img" \
	serialize=all-requests delay-write="$delay"
if ((par_origin)); then
	mksparse "$WORK/origin-par.img" "$origin_size"
	srv_nbdkit slowpar --filter=delay file "$WORK/origin-par.img" delay-write="$delay"
fi

# start_wc ORIGIN_SERVER [serve options]: a freshly formatted wcache on that origin.
start_wc() {
	local o=$1
	shift
	"$WCACHE" format --force "$WORK/cache.img" >/dev/null 2>&1
	srv_wcache wc "${SRV_URI[$o]}" "$WORK/cache.img" "$@"
}

# ---------------------------------------------------------------- A: latency
say "A: 4K randwrite QD1 latency, origin delay-write=$delay serial"
start_wc slow
lat_o=() lat_w=() p99_o=() p99_w=() iops_o=() iops_w=()
for ((r = 1; r <= rounds; r++)); do
	order=(slow wc)
	((r % 2)) || order=(wc slow)
	for s in "${order[@]}"; do
		if [[ $s = wc ]]; then only_run wc slow slowpar; else only_run slow slowpar; fi
		j=$(fio_nbd "lat-$s-r$r" "${SRV_URI[$s]}" --rw=randwrite --bs=4k --iodepth=1 \
			--size="$lat_region" --time_based --runtime="$runtime")
		if [[ $s = slow ]]; then
			lat_o+=("$(fio_get "$j" write p50_us)") p99_o+=("$(fio_get "$j" write p99_us)")
			iops_o+=("$(fio_get "$j" write iops)")
		else
			lat_w+=("$(fio_get "$j" write p50_us)") p99_w+=("$(fio_get "$j" write p99_us)")
			iops_w+=("$(fio_get "$j" write iops)")
		fi
	done
done
only_run wc slow slowpar
srv_stop wc
lo=$(median "${lat_o[@]}") lw=$(median "${lat_w[@]}")
po=$(median "${p99_o[@]}") pw=$(median "${p99_w[@]}")
lat_speedup=$(div "$lo" "$lw")
out "### A. 4K random write latency at QD1 (origin: delay-write=$delay, serial), $rounds rounds x $runtime"
out ""
out "| path | IOPS | p50 us | p99 us |"
out "|---|---:|---:|---:|"
out "| straight to the slow origin | $(fmt "$(median "${iops_o[@]}")" 0) | $(fmt "$lo" 0) | $(fmt "$po" 0) |"
out "| through wcache | $(fmt "$(median "${iops_w[@]}")" 0) | $(fmt "$lw" 0) | $(fmt "$pw" 0) |"
out ""
out "p50 speedup (origin / wcache): $lat_speedup, p99 speedup: $(div "$po" "$pw")"

# ---------------------------------------------------------------- B: drain
# The N blocks: random, distinct, in a region 8x as large (some neighbours).
shuf -i 0-$((region_blk - 1)) -n "$nblk" >"$WORK/blocks.txt"
{
	printf 'fio version 2 iolog\nnbd add\nnbd open\n'
	awk -v bs=$bs '{ print "nbd write", $1 * bs, bs }' "$WORK/blocks.txt"
	printf 'nbd close\n'
} >"$WORK/random.log"
{
	printf 'fio version 2 iolog\nnbd add\nnbd open\n'
	sort -n "$WORK/blocks.txt" | awk -v bs=$bs '
		NR == 1 { s = $1; n = 1; next }
		$1 == s + n { n++; next }
		{ print "nbd write", s * bs, n * bs; s = $1; n = 1 }
		END { if (NR) print "nbd write", s * bs, n * bs }'
	printf 'nbd sync 0 0\nnbd close\n'
} >"$WORK/sorted.log"
nreq=$(grep -c ' write ' "$WORK/sorted.log")

now() { date +%s.%N; }

# fill_and_drain ORIGIN TAG [serve options]: fresh wcache, write the N blocks
# (QD1: fio's iolog replay closes the connection with requests still in
# flight at QD > 1, and nbdkit 1.32 drops them), then time 'message flush' while sampling the dirty count.
# Sets SECS to the drain seconds; the curve goes to $OUT/drain-TAG.dat.
fill_and_drain() {
	local o=$1 tag=$2 t0 t1 poller dirty
	shift 2
	start_wc "$o" --high-watermark 90 --low-watermark 80 "$@"
	fio_nbd "fill-$tag" "${SRV_URI[wc]}" --read_iolog="$WORK/random.log" --iodepth=1 >/dev/null
	dirty=$(wc_status wc dirty)
	((dirty >= nblk)) || die "only $dirty of $nblk blocks are dirty before the flush"
	t0=$(now)
	(
		while :; do
			printf '%s %s\n' "$(awk -v a="$(now)" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')" \
				"$(wc_status wc dirty)"
			sleep 0.1
		done
	) >"$OUT/drain-$tag.dat" 2>/dev/null &
	poller=$!
	wc_message wc flush
	t1=$(now)
	kill "$poller" 2>/dev/null
	wait "$poller" 2>/dev/null || true
	printf '%s 0\n' "$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')" >>"$OUT/drain-$tag.dat"
	dirty=$(wc_status wc dirty)
	((dirty == 0)) || die "$dirty blocks still dirty after message flush"
	srv_stop wc
	SECS=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f\n", a - b }')
}

# sorted_direct ORIGIN: SECS = time to write the sorted blocks straight to the
# origin (fio's own job runtime, so fio's start-up is not charged to it).
sorted_direct() {
	local j
	j=$(fio_nbd "sorted-$1" "${SRV_URI[$1]}" --read_iolog="$WORK/sorted.log" --iodepth=1)
	SECS=$(jq -r '.jobs[0].job_runtime / 1000' "$j")
}

say "B: drain $nblk random blocks ($nreq sorted requests after merging neighbours)"
dr=() sr=() rr=()
for ((r = 1; r <= rounds; r++)); do
	if ((r % 2)); then
		sorted_direct slow; s=$SECS
		fill_and_drain slow "default-r$r"; d=$SECS
	else
		fill_and_drain slow "default-r$r"; d=$SECS
		sorted_direct slow; s=$SECS
	fi
	say "B round $r: drain ${d}s, sorted straight to the origin ${s}s"
	dr+=("$d") sr+=("$s") rr+=("$(div "$d" "$s")")
done
drain_ratio=$(median "${rr[@]}")
out ""
out "### B. Drain $nblk random dirty 4K blocks (region $((region_blk * bs >> 20)) MiB, origin delay-write=$delay serial), $rounds rounds"
out ""
out "| what | seconds (median) |"
out "|---|---:|"
out "| wcache 'message flush' (default writeback_jobs) | $(median "${dr[@]}") |"
out "| same blocks sorted, neighbours merged ($nreq requests), straight to the origin + FLUSH | $(median "${sr[@]}") |"
out ""
out "drain / sorted-direct: $drain_ratio (median of per-round ratios; target <= 1.2)"

# ---------------------------------------------------------------- C: writeback_jobs
origins=(slow)
((par_origin)) && origins+=(slowpar)
out ""
out "### C. Drain time vs writeback_jobs ($nblk blocks, delay-write=$delay)"
out ""
out "| writeback_jobs | $(for o in "${origins[@]}"; do
	[[ $o = slow ]] && printf 'serial origin (s) | ' || printf 'parallel origin, 16 threads (s) | '
done)"
out "|---:|$(for _ in "${origins[@]}"; do printf -- '---:|'; done)"
for wj in "${jobs_list[@]}"; do
	row="| $wj |"
	for o in "${origins[@]}"; do
		fill_and_drain "$o" "$o-wj$wj" --writeback-jobs "$wj"
		t=$SECS
		say "C $o writeback_jobs=$wj: ${t}s"
		row+=" $t |"
	done
	out "$row"
done
sorted_direct slow
out "| (sorted, neighbours merged, straight to the serial origin at QD1) | $SECS |"


{
	echo "set terminal pngcairo size 900,500 noenhanced"
	echo "set output 'drain.png'"
	echo "set title 'Drain of $nblk dirty blocks by message flush (delay-write=$delay)'"
	echo "set xlabel 'seconds since message flush'"
	echo "set ylabel 'dirty blocks'"
	echo "set grid"
	printf 'plot '
	sep=""
	for o in "${origins[@]}"; do
		for wj in "${jobs_list[@]}"; do
			[[ $o = slow ]] && oname=serial || oname=parallel
			dt=1
			[[ $o = slowpar ]] && dt=2
			printf "%s'drain-%s-wj%s.dat' using 1:2 with lines dt %d lw 2 title '%s, writeback_jobs=%s'" \
				"$sep" "$o" "$wj" "$dt" "$oname" "$wj"
			sep=", "
		done
	done
	echo
} >"$OUT/drain.gp"
plot drain.gp

srv_stop slow
srv_stop slowpar
ratio_line "drain/sorted-direct $drain_ratio, target <= 1.2: $(verdict ge 1.2 "$drain_ratio");" \
	"QD1 write p50 speedup over the slow origin $lat_speedup"
