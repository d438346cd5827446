#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Benchmark 10, the cost of ordered_writeback (issue 18) on the slow origin
# of benchmark 7 (nbdkit file plugin behind the delay filter, delay-write
# 2 ms, delay-read 1 ms), wcache with and without the option, interleaved:
#  A. Cache full under load: fio 16 jobs x QD4, 4K randwrite over 3x the
#     cache (the cache is full within a second). Write IOPS and p99 latency.
#     Twice: without fsyncs (commits come from autocommit, 1 s: few large
#     epochs) and with an fsync every 16 writes per job (many small epochs,
#     each written back with its own origin flush).
#  B. Drain: N distinct random 4K blocks written (nothing written back during
#     the fill), then a timed 'message flush'.
# Ratios ordered/unordered: IOPS (target >= 1/1.2), p99 (target <= 1.2: "p99
# unchanged" within the noise of these machines), drain time (target <= 1.2).
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_parse_args "$@"
bench_requires_fio_nbd

if ((BENCH_QUICK)); then
	origin_size=64M cache_size=4M region=12M
	rounds=${BENCH_ROUNDS:-1} runtime=${BENCH_RUNTIME:-500ms}
	drain_cache=16M nblk=1024
else
	origin_size=1G cache_size=16M region=48M
	rounds=${BENCH_ROUNDS:-3} runtime=${BENCH_RUNTIME:-5s}
	drain_cache=128M nblk=16384
fi
fs=$(fstype "$BENCH_WORK")
mksparse "$WORK/origin.img" "$origin_size"
srv_nbdkit origin --filter=delay file "$WORK/origin.img" wdelay=2ms rdelay=1ms
origin=${SRV_URI[origin]}
modes=("unordered|" "ordered|--ordered-writeback")

# le A B: exit 0 when A <= B (numbers; "nan" is not).
le() {
	awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "nan" && a + 0 <= b + 0) }'
}

# start_wc NAME CACHE [serve options]: wcache on the slow origin, cache formatted afresh.
start_wc() {
	local name=$1 cache=$2
	shift 2
	"$WCACHE" format --force "$cache" >/dev/null 2>&1 || die "wcache format $cache failed"
	srv_wcache "$name" "$origin" "$cache" "$@"
	only_run "$name" origin
}

# ---------------------------------------------------------------- A
mkimg "$WORK/cache.img" "$cache_size"
declare -A RI RP
table=()
for load in "nofsync|" "fsync16|--fsync=16"; do
	IFS='|' read -r ltag lopt <<<"$load"
	ir=() pr=()
	declare -A med_i=() med_p=() all_i=() all_p=()
	for ((r = 1; r <= rounds; r++)); do
		order=(0 1)
		((r % 2)) || order=(1 0)
		declare -A got=()
		for k in "${order[@]}"; do
			IFS='|' read -r mtag mopt <<<"${modes[k]}"
			# shellcheck disable=SC2086
			start_wc wc "$WORK/cache.img" $mopt
			# shellcheck disable=SC2086
			j=$(fio_nbd "$ltag-$mtag-r$r" "${SRV_URI[wc]}" --rw=randwrite --bs=4k --numjobs=16 \
				--iodepth=4 --size="$region" --group_reporting --time_based \
				--runtime="$runtime" $lopt)
			"$WCACHE" status --control "${SRV_CTL[wc]}" >"$OUT/status-$ltag-$mtag-r$r.txt"
			srv_stop wc
			got[$mtag-iops]=$(fio_get "$j" write iops)
			got[$mtag-p99]=$(fio_get "$j" write p99_us)
			all_i[$mtag]+="${got[$mtag-iops]} " all_p[$mtag]+="${got[$mtag-p99]} "
		done
		ir+=("$(div "${got[ordered-iops]}" "${got[unordered-iops]}")")
		pr+=("$(div "${got[ordered-p99]}" "${got[unordered-p99]}")")
		say "A $ltag round $r: unordered $(fmt "${got[unordered-iops]}" 0) IOPS p99" \
			"$(fmt "${got[unordered-p99]}" 0) us; ordered $(fmt "${got[ordered-iops]}" 0) IOPS" \
			"p99 $(fmt "${got[ordered-p99]}" 0) us"
	done
	RI[$ltag]=$(median "${ir[@]}") RP[$ltag]=$(median "${pr[@]}")
	for m in unordered ordered; do
		# shellcheck disable=SC2086
		med_i[$m]=$(median ${all_i[$m]}) med_p[$m]=$(median ${all_p[$m]})
	done
	table+=("| $ltag | $(fmt "${med_i[unordered]}" 0) | $(fmt "${med_i[ordered]}" 0) | ${RI[$ltag]} | $(fmt "${med_p[unordered]}" 0) | $(fmt "${med_p[ordered]}" 0) | ${RP[$ltag]} |")
	echo "\"$ltag\" ${med_i[unordered]} ${med_i[ordered]}" >>"$OUT/iops-bars.dat"
done
out "### A. Cache full: 4K randwrite, 16 jobs x QD4 over $region, $cache_size cache, delay-write 2 ms origin, $rounds rounds x $runtime, $fs"
out ""
out "| load | IOPS unordered | IOPS ordered | ordered/unordered | p99 us unordered | p99 us ordered | ordered/unordered |"
out "|---|---:|---:|---:|---:|---:|---:|"
for row in "${table[@]}"; do
	out "$row"
done
out ""
out "Medians over the rounds; ratios are medians of per-round ratios (rounds interleaved)."
sed -i '1i # load unordered_iops ordered_iops (medians)' "$OUT/iops-bars.dat"
bars_plot iops "Cache full, slow origin: write IOPS with and without ordered_writeback" \
	"unordered" "ordered_writeback"

# ---------------------------------------------------------------- B
mkimg "$WORK/cache-drain.img" "$drain_cache"
declare -A dsecs=()
dr=()
for ((r = 1; r <= rounds; r++)); do
	order=(0 1)
	((r % 2)) || order=(1 0)
	for k in "${order[@]}"; do
		IFS='|' read -r mtag mopt <<<"${modes[k]}"
		# shellcheck disable=SC2086
		start_wc wcd "$WORK/cache-drain.img" --high-watermark 100 --low-watermark 100 $mopt
		fio_nbd "fill-$mtag-r$r" "${SRV_URI[wcd]}" --rw=randwrite --bs=4k --size="$origin_size" \
			--io_size=$((nblk * 4096)) --iodepth=16 >/dev/null
		t0=$EPOCHREALTIME
		wc_message wcd flush
		t1=$EPOCHREALTIME
		(($(wc_status wcd dirty) == 0)) || die "blocks still dirty after message flush"
		srv_stop wcd
		dsecs[$mtag-$r]=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f\n", a - b }')
	done
	dr+=("$(div "${dsecs[ordered-$r]}" "${dsecs[unordered-$r]}")")
	say "B round $r: drain unordered ${dsecs[unordered-$r]} s, ordered ${dsecs[ordered-$r]} s"
done
drain_ratio=$(median "${dr[@]}")
out ""
out "### B. Drain of $nblk dirty random 4K blocks by 'message flush', $rounds rounds"
out ""
out "| round | unordered s | ordered s |"
out "|---|---:|---:|"
for ((r = 1; r <= rounds; r++)); do
	out "| $r | ${dsecs[unordered-$r]} | ${dsecs[ordered-$r]} |"
done
out ""
out "drain ordered/unordered: $drain_ratio (median of per-round ratios)"

ratio_line "ordered/unordered write IOPS ${RI[nofsync]} (no fsync), ${RI[fsync16]} (fsync/16)," \
	"target >= 0.83: $(verdict ge "${RI[nofsync]}" 0.83) / $(verdict ge "${RI[fsync16]}" 0.83);" \
	"p99 ${RP[nofsync]} / ${RP[fsync16]}, target <= 1.2: $(verdict le "${RP[nofsync]}" 1.2) /" \
	"$(verdict le "${RP[fsync16]}" 1.2); drain ${drain_ratio}, target <= 1.2:" \
	"$(verdict le "$drain_ratio" 1.2)"
