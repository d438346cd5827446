#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Benchmark 6, cost of safety: flush-heavy 4K random writes at QD1 (fio
# --fsync=N: fio's nbd engine sends NBD_CMD_FLUSH, which wcache turns into a
# commit, the same path as a FUA write; --fdatasync is rejected by fio 3.33's
# nbd engine with EINVAL, and NBD has only the one FLUSH anyway) and
# autocommit_blocks (wcache commits by itself every N blocks, the client never
# flushes), against nbdkit's file plugin on a file like the cache file with
# the same sync pattern. Ratio: wcache IOPS / raw IOPS per workload.
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_parse_args "$@"
bench_requires_fio_nbd

if ((BENCH_QUICK)); then
	size=16M origin_size=32M region=8M
	rounds=${BENCH_ROUNDS:-1} runtime=${BENCH_RUNTIME:-500ms}
else
	size=512M origin_size=1G region=128M
	rounds=${BENCH_ROUNDS:-5} runtime=${BENCH_RUNTIME:-5s}
fi
fs=$(fstype "$BENCH_WORK")

mkimg "$WORK/raw.img" "$size"
srv_nbdkit raw file "$WORK/raw.img"
# wcache servers: default autocommit, autocommit_blocks=1 and =16.
for v in wc:65536 ac1:1 ac16:16; do
	name=${v%%:*} ac=${v#*:}
	mkimg "$WORK/$name-cache.img" "$size"
	mksparse "$WORK/$name-origin.img" "$origin_size"
	"$WCACHE" format "$WORK/$name-cache.img" >/dev/null
	srv_wcache "$name" "$WORK/$name-origin.img" "$WORK/$name-cache.img" \
		--autocommit-blocks "$ac" --high-watermark 90 --low-watermark 80
done

# Workloads: "label|raw fio options|wcache server|wcache fio options".
workloads=(
	"no sync (reference)||wc|"
	"fsync=1|--fsync=1|wc|--fsync=1"
	"fsync=4|--fsync=4|wc|--fsync=4"
	"fsync=16|--fsync=16|wc|--fsync=16"
	"autocommit_blocks=1 vs raw fsync=1|--fsync=1|ac1|"
	"autocommit_blocks=16 vs raw fsync=16|--fsync=16|ac16|"
)
((BENCH_QUICK)) && workloads=("${workloads[1]}" "${workloads[4]}")

out "### $fs ($(fs_of "$BENCH_WORK")): 4K randwrite QD1, $rounds rounds x $runtime, region $region"
out ""
out "| workload | raw IOPS | wcache IOPS | wcache / raw | raw sync p99 us | wcache sync p99 us |"
out "|---|---:|---:|---:|---:|---:|"
echo "# workload raw wcache" >"$OUT/safety-bars.dat"
worst=nan worstw=-
i=0
for w in "${workloads[@]}"; do
	IFS='|' read -r label ropts wsrv wopts <<<"$w"
	i=$((i + 1))
	ri=() wi=() rr=() rs=() ws=()
	for ((r = 1; r <= rounds; r++)); do
		order=(raw "$wsrv")
		((r % 2)) || order=("$wsrv" raw)
		for s in "${order[@]}"; do
			if [[ $s = raw ]]; then opts=$ropts; else opts=$wopts; fi
			only_run "$s"
			# shellcheck disable=SC2086
			j=$(fio_nbd "w$i-$s-r$r" "${SRV_URI[$s]}" --rw=randwrite --bs=4k --iodepth=1 \
				--size="$region" --time_based --runtime="$runtime" $opts)
			if [[ $s = raw ]]; then
				ri+=("$(fio_get "$j" write iops)") rs+=("$(fio_get "$j" sync p99_us)")
			else
				wi+=("$(fio_get "$j" write iops)") ws+=("$(fio_get "$j" sync p99_us)")
			fi
		done
		rr+=("$(div "${wi[-1]}" "${ri[-1]}")")
		say "$label round $r: raw ${ri[-1]} IOPS, wcache ${wi[-1]} IOPS"
	done
	ratio=$(median "${rr[@]}")
	out "| $label | $(fmt "$(median "${ri[@]}")" 0) | $(fmt "$(median "${wi[@]}")" 0) | $ratio |" \
		"$(fmt "$(median "${rs[@]}")" 0) | $(fmt "$(median "${ws[@]}")" 0) |"
	echo "\"$label\" $(median "${ri[@]}") $(median "${wi[@]}")" >>"$OUT/safety-bars.dat"
	if [[ $label != no\ sync* ]] && { [[ $worst = nan ]] || ! ge "$ratio" "$worst"; }; then
		worst=$ratio worstw=$label
	fi
done
only_run raw wc ac1 ac16
commits=$(wc_status wc commits)
out ""
out "fio --fdatasync=1 is not in the table: fio 3.33's nbd engine fails it with EINVAL (NBD has one FLUSH command)."
out "sync p99 = fio's fsync latency (0: no syncs in that job). wcache (default) made $commits commits."
bars_plot safety "Cost of safety, 4K randwrite QD1 on $fs" "nbdkit file (raw)" "wcache"

ratio_line "wcache/raw IOPS with flushes: lowest $worst ($worstw) (no target)"
