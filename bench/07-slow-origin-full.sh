#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Benchmark 7, slow origin under load with a full cache (issue 13, "async I/O
# core"): many clients write 4K blocks at random over a region 3x the cache,
# so the cache is full within a second and from then on every write waits for
# the origin, one way (writeback frees a block) or another (write around).
#  A. fio 16 jobs x QD4, 4K randwrite over 48 MiB through wcache (16 MiB
#     cache, default settings, formatted afresh every round) vs the same job
#     straight to the origin. Origins: nbdkit's file plugin behind the delay
#     filter (delay-write 2 ms and 1 ms, delay-read 1 ms; nbdkit runs 16
#     threads per connection, so each of fio's 16 connections has all its
#     requests served in parallel; wcache's NBD origin backend has 4
#     connections, with one request in flight on each before issue 13 and
#     any number since), and
#     a local file under O_DIRECT (baseline:
#     qemu-nbd --cache=none --aio=io_uring; wcache opens the file itself);
#     and the 2 ms origin once more with wcache's cache file buffered
#     (--cache-io buffered).
#     Write IOPS, p99 and worst (max) completion latency, and the whole
#     machine's CPU over each run (busy CPUs, CPU time per write).
#  B. Drain: N distinct random 4K blocks written through wcache (a cache twice
#     their size, high/low watermark 100: nothing is written back during the
#     fill), then a timed 'message flush'; baseline: fio writing N random 4K
#     blocks straight to the delay-write 2 ms origin at QD64 (one connection,
#     so at most 16 writes in flight), then a FLUSH.
# Ratios: wcache/origin write IOPS (target >= 1.0) and worst write latency
# (target <= 2.0), drain/direct time (target <= 1.0), all for delay-write 2 ms.
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_parse_args "$@"
bench_requires_fio_nbd

if ((BENCH_QUICK)); then
	origin_size=64M cache_size=4M region=12M
	rounds=${BENCH_ROUNDS:-1} runtime=${BENCH_RUNTIME:-500ms}
	drain_cache=16M nblk=1024 sample=0.1
else
	origin_size=1G cache_size=16M region=48M
	rounds=${BENCH_ROUNDS:-3} runtime=${BENCH_RUNTIME:-5s}
	drain_cache=128M nblk=16384 sample=0.1
fi
njobs=16 qd=4 drain_qd=64 bs=4096 rdelay=1ms
# Variants: "tag|delay-write|label|wcache options". nbdkit 1.32's delay filter
# takes whole milliseconds only ("0.5ms" parses as no delay at all), so the
# short delay is 1 ms. d2b: the 2 ms origin with the cache file in the page
# cache (cache-io=buffered: no O_DIRECT write per client write, an fdatasync
# per commit), which costs less CPU per write on this VM.
variants=("d2|2ms|delay-write 2 ms|" "d1|1ms|delay-write 1 ms|" "file||local file, O_DIRECT|"
	"d2b|2ms|delay-write 2 ms, cache-io buffered|--cache-io buffered")
fs=$(fstype "$BENCH_WORK")

# The O_DIRECT baseline: qemu-nbd if installed, else nbdkit's file plugin
# with cache=none (which is fadvise, not O_DIRECT: noted in the table).
if command -v qemu-nbd >/dev/null 2>&1; then
	file_base="qemu-nbd --cache=none --aio=io_uring (O_DIRECT)"
else
	file_base="nbdkit file cache=none (no qemu-nbd: page cache + fadvise, not O_DIRECT)"
fi

# start_origin TAG: the baseline server "origin" for a variant; sets WC_ORIGIN,
# what wcache is given as its origin.
start_origin() {
	local tag=$1 delay=$2
	if [[ $tag = file ]]; then
		mkimg "$WORK/origin-file.img" "$origin_size"
		if command -v qemu-nbd >/dev/null 2>&1; then
			srv_qemu origin "$WORK/origin-file.img"
		else
			srv_nbdkit origin file "$WORK/origin-file.img" cache=none
		fi
		WC_ORIGIN=$WORK/origin-file.img
	else
		[[ -e $WORK/origin.img ]] || mksparse "$WORK/origin.img" "$origin_size"
		srv_nbdkit origin --filter=delay file "$WORK/origin.img" \
			wdelay="$delay" rdelay="$rdelay"
		WC_ORIGIN=${SRV_URI[origin]}
	fi
}

# start_wc NAME CACHE [serve options]: wcache on $WC_ORIGIN with a freshly formatted cache.
start_wc() {
	local name=$1 cache=$2
	shift 2
	"$WCACHE" format --force "$cache" >/dev/null 2>&1 || die "wcache format $cache failed"
	srv_wcache "$name" "$WC_ORIGIN" "$cache" "$@"
}

# sampler NAME FILE: every $sample s, one line of 'wcache status' counters:
# t (s since start), how long the status call took (ms), writes, writes_around,
# writes_blocked_on_freelist, full_waits, dirty, free, writeback, writeback_blocks_done.
sampler() {
	local name=$1 file=$2 t0=$EPOCHREALTIME a b s
	echo "# t_s status_ms writes writes_around blocked_on_freelist full_waits dirty free writeback wb_blocks_done" >"$file"
	while :; do
		a=$EPOCHREALTIME
		s=$("$WCACHE" status --control "${SRV_CTL[$name]}" 2>/dev/null) || break
		b=$EPOCHREALTIME
		awk -v t0="$t0" -v a="$a" -v b="$b" '
			{ v[substr($1, 1, length($1) - 1)] = $2 }
			END { printf "%.3f %.1f %d %d %d %d %d %d %d %d\n", a - t0, (b - a) * 1000,
				v["writes"], v["writes_around"], v["writes_blocked_on_freelist"], v["full_waits"],
				v["dirty"], v["free"], v["writeback"], v["writeback_blocks_done"] }' <<<"$s" >>"$file"
		sleep "$sample"
	done
}

# le A B: exit 0 when A <= B (numbers; "nan" is not).
le() {
	awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "nan" && a + 0 <= b + 0) }'
}

# ---------------------------------------------------------------- A: full cache under load
mkimg "$WORK/cache.img" "$cache_size"
fio_opts=(--rw=randwrite --bs=4k --numjobs="$njobs" --iodepth="$qd" --size="$region"
	--group_reporting --time_based --runtime="$runtime")
tsv=$OUT/rounds.tsv
printf 'variant\tround\tserver\tiops\tmean_us\tp99_us\tmax_us\twrites_around\tfull_waits\tcpus_busy\tcpu_us_per_write\n' >"$tsv"
echo "# variant origin_iops wcache_iops (medians)" >"$OUT/iops-bars.dat"
echo "# variant origin_p99_ms wcache_p99_ms origin_max_ms wcache_max_ms (medians)" >"$OUT/latency-bars.dat"
declare -A R_IOPS R_MAX R_P99 R_CPU MED
table=()
for v in "${variants[@]}"; do
	IFS='|' read -r tag delay label wcopts <<<"$v"
	read -r -a wcopts <<<"$wcopts"
	start_origin "$tag" "$delay"
	ir=() mr=() pr=() cr=()
	for ((r = 1; r <= rounds; r++)); do
		order=(origin wc)
		((r % 2)) || order=(wc origin)
		declare -A got=()
		for s in "${order[@]}"; do
			around=- waits=-
			if [[ $s = wc ]]; then
				start_wc wc "$WORK/cache.img" "${wcopts[@]}"
				# (qemu-nbd is not wcache's origin: stopped, like every idle server.)
				if [[ $tag = file ]]; then only_run wc; else only_run wc origin; fi
				sampler wc "$OUT/status-$tag-r$r.dat" &
				spid=$!
				# --perf: round 1, from 1 s in (the cache is full by then).
				((r == 1)) && perf_start "A-$tag" "${SRV_PID[wc]}" 1
				c0=$(cpu_mark)
				j=$(fio_nbd "$tag-wc-r$r" "${SRV_URI[wc]}" "${fio_opts[@]}")
				c1=$(cpu_mark)
				perf_wait
				kill "$spid" 2>/dev/null || true
				wait "$spid" 2>/dev/null || true
				around=$(wc_status wc writes_around) waits=$(wc_status wc full_waits)
				"$WCACHE" status --control "${SRV_CTL[wc]}" >"$OUT/status-$tag-r$r-end.txt"
				srv_stop wc
			else
				only_run origin
				c0=$(cpu_mark)
				j=$(fio_nbd "$tag-origin-r$r" "${SRV_URI[origin]}" "${fio_opts[@]}")
				c1=$(cpu_mark)
			fi
			# The whole machine's CPU over the fio run (fio, the servers and
			# anything else): CPUs busy, and CPU time per write completed.
			read -r busy "got[$s-cpus]" < <(cpu_busy "$c0" "$c1")
			got[$s-cpu_us]=$(awk -v b="$busy" -v w="$(jq -r '.jobs[0].write.total_ios // 0' "$j")" \
				'BEGIN { if (w > 0) printf "%.1f", b * 1e6 / w; else print "nan" }')
			for m in iops mean_us p99_us max_us; do
				got[$s-$m]=$(fio_get "$j" write $m)
			done
			printf '%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tag" "$r" "$s" "${got[$s-iops]}" \
				"${got[$s-mean_us]}" "${got[$s-p99_us]}" "${got[$s-max_us]}" "$around" "$waits" \
				"${got[$s-cpus]}" "${got[$s-cpu_us]}" >>"$tsv"
		done
		ir+=("$(div "${got[wc-iops]}" "${got[origin-iops]}")")
		mr+=("$(div "${got[wc-max_us]}" "${got[origin-max_us]}")")
		pr+=("$(div "${got[wc-p99_us]}" "${got[origin-p99_us]}")")
		cr+=("$(div "${got[wc-cpu_us]}" "${got[origin-cpu_us]}")")
		say "A $tag round $r: origin $(fmt "${got[origin-iops]}" 0) IOPS p99 $(fmt "${got[origin-p99_us]}" 0) us" \
			"max $(fmt "${got[origin-max_us]}" 0) us; wcache $(fmt "${got[wc-iops]}" 0) IOPS" \
			"p99 $(fmt "${got[wc-p99_us]}" 0) us max $(fmt "${got[wc-max_us]}" 0) us;" \
			"machine CPUs busy origin ${got[origin-cpus]} wcache ${got[wc-cpus]}," \
			"CPU us/write origin ${got[origin-cpu_us]} wcache ${got[wc-cpu_us]}"
	done
	srv_stop origin
	R_IOPS[$tag]=$(median "${ir[@]}") R_MAX[$tag]=$(median "${mr[@]}") R_P99[$tag]=$(median "${pr[@]}")
	R_CPU[$tag]=$(median "${cr[@]}")
	for s in origin wc; do
		for col in 4:iops 5:mean_us 6:p99_us 7:max_us 8:around 9:waits 10:cpus 11:cpu_us; do
			mapfile -t vals < <(awk -F'\t' -v t="$tag" -v s="$s" -v c="${col%%:*}" \
				'$1 == t && $3 == s { print $c }' "$tsv")
			if [[ ${vals[0]} = - ]]; then MED[$tag-$s-${col#*:}]=-; else MED[$tag-$s-${col#*:}]=$(median "${vals[@]}"); fi
		done
	done
	if [[ $tag = file ]]; then olabel=$file_base; else olabel="nbdkit delay filter, ${label%%,*}"; fi
	printf -v row '| %s | %s | %s | %s | %s | %s | | | | | | %s | %s | |' "$label" "$olabel" \
		"$(fmt "${MED[$tag-origin-iops]}" 0)" "$(fmt "${MED[$tag-origin-mean_us]}" 0)" \
		"$(fmt "${MED[$tag-origin-p99_us]}" 0)" "$(fmt "${MED[$tag-origin-max_us]}" 0)" \
		"${MED[$tag-origin-cpus]}" "${MED[$tag-origin-cpu_us]}"
	table+=("$row")
	printf -v row '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' "$label" \
		"wcache, $cache_size cache" "$(fmt "${MED[$tag-wc-iops]}" 0)" "$(fmt "${MED[$tag-wc-mean_us]}" 0)" \
		"$(fmt "${MED[$tag-wc-p99_us]}" 0)" "$(fmt "${MED[$tag-wc-max_us]}" 0)" "${R_IOPS[$tag]}" \
		"${R_P99[$tag]}" "${R_MAX[$tag]}" "${MED[$tag-wc-around]}" "${MED[$tag-wc-waits]}" \
		"${MED[$tag-wc-cpus]}" "${MED[$tag-wc-cpu_us]}" "${R_CPU[$tag]}"
	table+=("$row")
	echo "\"$label\" ${MED[$tag-origin-iops]} ${MED[$tag-wc-iops]}" >>"$OUT/iops-bars.dat"
	awk -v l="$label" -v a="${MED[$tag-origin-p99_us]}" -v b="${MED[$tag-wc-p99_us]}" \
		-v c="${MED[$tag-origin-max_us]}" -v d="${MED[$tag-wc-max_us]}" \
		'BEGIN { printf "\"%s\" %.3f %.3f %.3f %.3f\n", l, a / 1000, b / 1000, c / 1000, d / 1000 }' \
		>>"$OUT/latency-bars.dat"
done

out "### A. 4K randwrite, $njobs jobs x QD$qd, region $region, origin $origin_size, wcache cache $cache_size (default settings, fresh each round), $rounds rounds x $runtime, $fs"
out ""
out "| origin | path | write IOPS | mean us | p99 us | max us | IOPS wcache/origin | p99 wcache/origin | max wcache/origin | writes around | full waits | machine CPUs busy | machine CPU us/write | CPU/write wcache/origin |"
out "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for row in "${table[@]}"; do
	out "$row"
done
out ""
out "Medians over the rounds; the ratios are medians of the per-round ratios. Delay origins: nbdkit file"
out "plugin behind the delay filter (delay-read $rdelay, 16 threads per connection), wcache reaching it over NBD; the file"
out "origin: wcache opens the file itself (O_DIRECT). writes around / full waits: wcache status at the end of a run.
Machine CPU: every CPU of the machine over the fio run (fio, the origin server, wcache and anything
else running), busy CPUs of $(nproc) and busy CPU time per write completed."

bars_plot iops "4K randwrite, $njobs jobs x QD$qd over $region, $cache_size wcache cache" "origin" "wcache"
cat >"$OUT/latency-bars.gp" <<GP
set terminal pngcairo size 1000,560 noenhanced
set output 'latency-bars.png'
set title 'Write latency, $njobs jobs x QD$qd 4K randwrite over $region ($cache_size wcache cache)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel 'ms (median of rounds, log scale)'
set grid ytics
set key outside top center horizontal
plot 'latency-bars.dat' using 2:xtic(1) title 'origin p99', '' using 3 title 'wcache p99', \
     '' using 4 title 'origin max', '' using 5 title 'wcache max'
GP
plot latency-bars.gp

# Timeline of round 1 (from the status counters): t, writes/s, writes around/s,
# dirty blocks, how long the status call took (ms).
for v in "${variants[@]}"; do
	IFS='|' read -r tag _ _ <<<"$v"
	awk 'NR > 1 && p != "" { dt = $1 - pt; if (dt > 0) printf "%.3f %.0f %.0f %d %.1f\n", $1, ($3 - pw) / dt, ($4 - pa) / dt, $7, $2 }
		NR > 1 { p = 1; pt = $1; pw = $3; pa = $4 }' "$OUT/status-$tag-r1.dat" >"$OUT/timeline-$tag.dat"
done
{
	cat <<GP
set terminal pngcairo size 1000,800 noenhanced
set output 'timeline.png'
set multiplot layout 2,1 title 'wcache under load, round 1 (wcache status every ${sample} s)'
set grid
set xlabel 'seconds'
set ylabel 'writes/s completed by wcache'
GP
	printf 'plot '
	sep="" c=1
	for v in "${variants[@]}"; do
		IFS='|' read -r tag _ label _ <<<"$v"
		printf "%s'timeline-%s.dat' using 1:2 with lines lw 2 lc %d title 'wcache, %s', %s with lines dt 2 lc %d title 'origin (median IOPS)'" \
			"$sep" "$tag" "$c" "$label" "${MED[$tag-origin-iops]}" "$c"
		sep=", " c=$((c + 1))
	done
	echo
	echo "set ylabel 'dirty blocks (of $(awk '$1 == "total:" { print $2 }' "$OUT/status-d2-r1-end.txt"))'"
	printf 'plot '
	sep="" c=1
	for v in "${variants[@]}"; do
		IFS='|' read -r tag _ label _ <<<"$v"
		printf "%s'timeline-%s.dat' using 1:4 with lines lw 2 lc %d title '%s'" "$sep" "$tag" "$c" "$label"
		sep=", " c=$((c + 1))
	done
	echo
	echo "unset multiplot"
} >"$OUT/timeline.gp"
plot timeline.gp

# ---------------------------------------------------------------- B: drain
say "B: drain $nblk dirty blocks vs $nblk random writes at QD$drain_qd straight to the origin"
start_origin d2 2ms
mkimg "$WORK/cache-drain.img" "$drain_cache"
io_bytes=$((nblk * bs))

# fill_and_drain TAG: fresh wcache, N distinct random blocks (fio's random map
# over the whole origin), then time 'message flush'. SECS = drain seconds,
# the curve (dirty blocks over time) goes to drain-TAG.dat.
fill_and_drain() {
	local tag=$1 t0 t1 poller dirty
	start_wc wcd "$WORK/cache-drain.img" --high-watermark 100 --low-watermark 100
	only_run wcd origin
	fio_nbd "fill-$tag" "${SRV_URI[wcd]}" --rw=randwrite --bs=4k --size="$origin_size" \
		--io_size="$io_bytes" --iodepth=16 >/dev/null
	dirty=$(wc_status wcd dirty)
	((dirty == nblk)) || die "$dirty blocks dirty before the flush, expected $nblk"
	t0=$EPOCHREALTIME
	(
		while :; do
			d=$(wc_status wcd dirty) || break
			awk -v a="$EPOCHREALTIME" -v b="$t0" -v d="$d" 'BEGIN { printf "%.3f %s\n", a - b, d }'
			sleep 0.1
		done
	) >"$OUT/drain-$tag.dat" 2>/dev/null &
	poller=$!
	[[ $tag = r1 ]] && perf_start "B-drain" "${SRV_PID[wcd]}" 0
	wc_message wcd flush
	t1=$EPOCHREALTIME
	kill "$poller" 2>/dev/null || true
	wait "$poller" 2>/dev/null || true
	perf_wait
	awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f 0\n", a - b }' >>"$OUT/drain-$tag.dat"
	dirty=$(wc_status wcd dirty)
	((dirty == 0)) || die "$dirty blocks still dirty after message flush"
	"$WCACHE" status --control "${SRV_CTL[wcd]}" >"$OUT/status-drain-$tag-end.txt"
	srv_stop wcd
	SECS=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f\n", a - b }')
}

# direct TAG: SECS = fio's job runtime (fio start-up not charged) for N random
# 4K writes at QD64 straight to the origin, with the closing FLUSH (end_fsync).
direct() {
	local j
	only_run origin
	j=$(fio_nbd "direct-$1" "${SRV_URI[origin]}" --rw=randwrite --bs=4k --size="$origin_size" \
		--io_size="$io_bytes" --norandommap --iodepth="$drain_qd" --end_fsync=1)
	SECS=$(jq -r '.jobs[0].job_runtime / 1000' "$j")
}

dr=() sr=() rr=()
for ((r = 1; r <= rounds; r++)); do
	if ((r % 2)); then
		direct "r$r"; s=$SECS
		fill_and_drain "r$r"; d=$SECS
	else
		fill_and_drain "r$r"; d=$SECS
		direct "r$r"; s=$SECS
	fi
	say "B round $r: drain ${d}s, straight to the origin ${s}s"
	dr+=("$d") sr+=("$s") rr+=("$(div "$d" "$s")")
done
srv_stop origin
drain_ratio=$(median "${rr[@]}")
out ""
out "### B. Drain $nblk dirty 4K blocks ($((io_bytes >> 20)) MiB, distinct, random over $origin_size) to the delay-write 2 ms origin, $rounds rounds"
out ""
out "| what | seconds (median) | blocks/s |"
out "|---|---:|---:|"
out "| wcache 'message flush' ($drain_cache cache, watermarks 100/100, default writeback_jobs) | $(median "${dr[@]}") | $(fmt "$(div "$nblk" "$(median "${dr[@]}")")" 0) |"
out "| fio: $nblk random 4K writes at QD$drain_qd straight to the origin + FLUSH | $(median "${sr[@]}") | $(fmt "$(div "$nblk" "$(median "${sr[@]}")")" 0) |"
out ""
out "drain / direct: $drain_ratio (median of per-round ratios; target <= 1.0)"

{
	echo "set terminal pngcairo size 900,500 noenhanced"
	echo "set output 'drain.png'"
	echo "set title 'Drain of $nblk dirty blocks by message flush (delay-write 2 ms)'"
	echo "set xlabel 'seconds since message flush'"
	echo "set ylabel 'dirty blocks'"
	echo "set grid"
	printf 'plot '
	sep=""
	for ((r = 1; r <= rounds; r++)); do
		printf "%s'drain-r%d.dat' using 1:2 with lines lw 2 title 'round %d'" "$sep" "$r" "$r"
		sep=", "
	done
	echo
} >"$OUT/drain.gp"
plot drain.gp

ratio_line "wcache/origin write IOPS ${R_IOPS[d2]}, target >= 1.0: $(verdict ge "${R_IOPS[d2]}" 1.0);" \
	"wcache/origin max write latency ${R_MAX[d2]}, target <= 2.0: $(verdict le "${R_MAX[d2]}" 2.0);" \
	"drain/direct ${drain_ratio}, target <= 1.0: $(verdict le "$drain_ratio" 1.0);" \
	"(delay-write 2 ms; p99 wcache/origin ${R_P99[d2]}; machine CPU per write wcache/origin ${R_CPU[d2]};" \
	"delay-write 1 ms: IOPS ${R_IOPS[d1]}," \
	"max ${R_MAX[d1]}; O_DIRECT file: IOPS ${R_IOPS[file]}, max ${R_MAX[file]};" \
	"2 ms, cache-io buffered: IOPS ${R_IOPS[d2b]}, max ${R_MAX[d2b]}, CPU per write ${R_CPU[d2b]})"
