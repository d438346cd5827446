#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Benchmark 8, Ceph RBD origin (issue 14): wcache in front of an RBD image on
# a one-node cluster started for the run (tests/ceph/micro-ceph.sh, one OSD,
# bluestore on a sparse file in --work, no replication: the friendliest Ceph
# there is; a real cluster adds network round trips and replicas).
#  A. 4K random writes at QD1: fio through wcache (NBD, origin
#     rbd:rbd/wc, cache file in --work) vs fio's rbd engine straight to the
#     image rbd/direct (rbd_cache=false, as wcache opens it). Both images are written once in full before, so no
#     run pays for creating objects. Ratio: direct p50 / wcache p50 (target >= 10).
#  B. Drain: 256 MiB of distinct random 4K blocks written through wcache
#     (watermarks 100/100: nothing is written back during the fill), then a
#     timed 'message flush'; baseline: fio's rbd engine writing as many
#     random 4K blocks at iodepth 64, with the closing flush. Ratio:
#     drain / direct seconds (target <= 1.0).
# Rounds alternate the order (direct first, then wcache first, ...).
# librbd's persistent write-back cache (PWL, rbd_persistent_cache_mode) would
# be the natural peer, but Debian 12's librbd1 ships without its plugin
# (libceph_librbd_pwl_cache.so): it is not measured.
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_parse_args "$@"
bench_requires_fio_nbd
bench_requires ceph-mon ceph-osd rbd monmaptool
fio --enghelp=rbd >/dev/null 2>&1 || { echo "$BENCH_NAME: SKIP: this fio has no rbd ioengine" >&2; exit 77; }
MICRO_CEPH=$BENCH_ROOT/tests/ceph/micro-ceph.sh

if ((BENCH_QUICK)); then
	img_size=64M region=32M cache_size=64M drain_bytes=$((8 << 20))
	rounds=${BENCH_ROUNDS:-1} runtime=${BENCH_RUNTIME:-1s}
else
	img_size=1G region=256M cache_size=768M drain_bytes=$((256 << 20))
	rounds=${BENCH_ROUNDS:-3} runtime=${BENCH_RUNTIME:-10s}
fi
# bluestore: a real store (fsync per write); --quick: memstore, faster to start.
store=${BENCH_CEPH_STORE:-$( ((BENCH_QUICK)) && echo memstore || echo bluestore)}
nblk=$((drain_bytes / 4096))
fs=$(fs_of "$BENCH_WORK")

# ---------------------------------------------------------------- the cluster
# Outside $WORK: bench_cleanup removes that, and the daemons must stop first.
CEPH_DIR=$(mktemp -d "$BENCH_WORK/wcache-bench-ceph.XXXXXX")
bench_cleanup_ceph() {
	local rc=$?
	trap - EXIT
	(bench_cleanup) # wcache servers first, they hold images open
	"$MICRO_CEPH" stop "$CEPH_DIR" >/dev/null 2>&1 || true
	[[ ${BENCH_KEEP_WORK:-0} = 1 ]] || rm -rf "$CEPH_DIR"
	exit "$rc"
}
trap bench_cleanup_ceph EXIT
port=47700
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 50)); done
MICRO_CEPH_PORT=$port MICRO_CEPH_STORE=$store "$MICRO_CEPH" start "$CEPH_DIR" \
	>"$OUT/ceph-start.log" 2>&1 || { cat "$OUT/ceph-start.log" >&2; die "cluster did not start"; }
export CEPH_CONF=$CEPH_DIR/ceph.conf
say "cluster ($store) up; images of $img_size"
for i in direct wc; do
	rbd create --size "$img_size" "rbd/$i"
	# Every object exists afterwards: first writes to new objects are slower.
	rbd bench --io-type write --io-size 4M --io-threads 4 --io-total "$img_size" \
		--io-pattern seq "rbd/$i" >/dev/null 2>&1 || die "rbd bench prefill of rbd/$i failed"
done
spec() { echo "rbd:rbd/$1:conf=$CEPH_CONF"; }
# fio's rbd engine reads $CEPH_CONF. librbd's RAM cache (rbd_cache, on by
# default) would acknowledge writes from memory and lose them on a crash;
# "straight to RBD" means without it, as wcache's backend opens images.
DIRECT_CONF=$CEPH_DIR/direct.conf
{ cat "$CEPH_CONF"; printf '[client]\nrbd cache = false\n'; } >"$DIRECT_CONF"

# fio_rbd LABEL IMAGE [fio options...]: fio's rbd engine, JSON to $OUT/fio/LABEL.json.
fio_rbd() {
	local label=$1 img=$2
	shift 2
	local json=$OUT/fio/$label.json
	CEPH_CONF=$DIRECT_CONF fio --name="$label" --ioengine=rbd --pool=rbd --rbdname="$img" --clientname=admin \
		--output-format=json --output="$json" "$@" >/dev/null 2>"$OUT/fio/$label.err" ||
		{ cat "$OUT/fio/$label.err" >&2; die "fio $label failed"; }
	echo "$json"
}

# ---------------------------------------------------------------- A: QD1 latency
mkimg "$WORK/cache.img" "$cache_size"
tsv=$OUT/latency.tsv
printf 'round\tpath\tiops\tp50_us\tp99_us\tmean_us\n' >"$tsv"
lat_opts=(--rw=randwrite --bs=4k --iodepth=1 --size="$region" --time_based --runtime="$runtime")
lr=()
for ((r = 1; r <= rounds; r++)); do
	order=(direct wc)
	((r % 2)) || order=(wc direct)
	declare -A got=()
	for s in "${order[@]}"; do
		if [[ $s = direct ]]; then
			j=$(fio_rbd "lat-direct-r$r" direct "${lat_opts[@]}")
		else
			"$WCACHE" format --force "$WORK/cache.img" >/dev/null
			srv_wcache wc "$(spec wc)" "$WORK/cache.img"
			j=$(fio_nbd "lat-wc-r$r" "${SRV_URI[wc]}" "${lat_opts[@]}")
			srv_stop wc
			# The next round starts from a clean image: write back what is left.
			"$WCACHE" flush "$(spec wc)" "$WORK/cache.img" >/dev/null
		fi
		for m in iops p50_us p99_us mean_us; do got[$s-$m]=$(fio_get "$j" write $m); done
		printf '%d\t%s\t%s\t%s\t%s\t%s\n' "$r" "$s" "${got[$s-iops]}" "${got[$s-p50_us]}" \
			"${got[$s-p99_us]}" "${got[$s-mean_us]}" >>"$tsv"
	done
	lr+=("$(div "${got[direct-p50_us]}" "${got[wc-p50_us]}")")
	say "A round $r: direct p50 $(fmt "${got[direct-p50_us]}" 0) us ($(fmt "${got[direct-iops]}" 0) IOPS)," \
		"wcache p50 $(fmt "${got[wc-p50_us]}" 0) us ($(fmt "${got[wc-iops]}" 0) IOPS)"
done
lat_ratio=$(median "${lr[@]}")
med() {
	local v
	mapfile -t v < <(awk -F'\t' -v s="$1" -v c="$2" '$2 == s { print $c }' "$tsv")
	median "${v[@]}"
}
out "### A. 4K randwrite QD1 over $region of a $img_size image, $rounds rounds x $runtime; Ceph $store, cache file on $fs"
out ""
out "| path | IOPS | p50 us | p99 us | mean us |"
out "|---|---:|---:|---:|---:|"
out "| fio rbd engine straight to rbd/direct | $(fmt "$(med direct 3)" 0) | $(fmt "$(med direct 4)" 0) | $(fmt "$(med direct 5)" 0) | $(fmt "$(med direct 6)" 0) |"
out "| fio nbd engine through wcache (origin rbd:rbd/wc, $cache_size cache) | $(fmt "$(med wc 3)" 0) | $(fmt "$(med wc 4)" 0) | $(fmt "$(med wc 5)" 0) | $(fmt "$(med wc 6)" 0) |"
out ""
out "p50 direct / wcache: $lat_ratio (median of per-round ratios; target >= 10)"

# latency.png: QD1 write latency, p50 and p99, both paths (log scale).
{
	echo "\"fio rbd straight to the image\" $(med direct 4) $(med direct 5)"
	echo "\"fio nbd through wcache\" $(med wc 4) $(med wc 5)"
} >"$OUT/latency-bars.dat"
cat >"$OUT/latency.gp" <<GP
set terminal pngcairo size 900,520 noenhanced
set output 'latency.png'
set title '4K random write QD1 latency, Ceph RBD origin (median of $rounds rounds)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel 'microseconds (log scale)'
set grid ytics
set key outside top center horizontal
plot 'latency-bars.dat' using 2:xtic(1) title 'p50', '' using 3 title 'p99'
GP
plot latency.gp

# ---------------------------------------------------------------- B: drain
say "B: drain $nblk dirty blocks vs $nblk random writes at iodepth 64 straight to RBD"
drain() {
	local dirty t0 t1
	"$WCACHE" format --force "$WORK/cache.img" >/dev/null
	srv_wcache wcd "$(spec wc)" "$WORK/cache.img" --high-watermark 100 --low-watermark 100
	fio_nbd "fill-r$1" "${SRV_URI[wcd]}" --rw=randwrite --bs=4k --size="$img_size" \
		--io_size="$drain_bytes" --iodepth=16 >/dev/null
	dirty=$(wc_status wcd dirty)
	((dirty == nblk)) || die "$dirty blocks dirty before the flush, expected $nblk"
	t0=$EPOCHREALTIME
	wc_message wcd flush
	t1=$EPOCHREALTIME
	dirty=$(wc_status wcd dirty)
	((dirty == 0)) || die "$dirty blocks still dirty after message flush"
	srv_stop wcd
	SECS=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f\n", a - b }')
}
direct() {
	local j
	j=$(fio_rbd "direct-r$1" direct --rw=randwrite --bs=4k --size="$img_size" \
		--io_size="$drain_bytes" --iodepth=64 --end_fsync=1)
	SECS=$(jq -r '.jobs[0].job_runtime / 1000' "$j")
}
dr=() sr=() rr=()
for ((r = 1; r <= rounds; r++)); do
	if ((r % 2)); then
		direct "$r"; s=$SECS; drain "$r"; d=$SECS
	else
		drain "$r"; d=$SECS; direct "$r"; s=$SECS
	fi
	say "B round $r: drain ${d}s, fio rbd iodepth 64 ${s}s"
	dr+=("$d") sr+=("$s") rr+=("$(div "$d" "$s")")
done
drain_ratio=$(median "${rr[@]}")
out ""
out "### B. Drain $nblk distinct random 4K blocks ($((drain_bytes >> 20)) MiB over $img_size), $rounds rounds"
out ""
out "| what | seconds (median) | blocks/s |"
out "|---|---:|---:|"
out "| wcache 'message flush' ($cache_size cache, watermarks 100/100, default writeback_jobs) | $(median "${dr[@]}") | $(fmt "$(div "$nblk" "$(median "${dr[@]}")")" 0) |"
out "| fio rbd engine: $nblk random 4K writes at iodepth 64 + flush | $(median "${sr[@]}") | $(fmt "$(div "$nblk" "$(median "${sr[@]}")")" 0) |"
out ""
out "drain / direct: $drain_ratio (median of per-round ratios; target <= 1.0)"
out ""
out "PWL (librbd's persistent write-back cache): not measured; Debian 12's librbd1 16.2 has no"
out "libceph_librbd_pwl_cache.so plugin, so rbd_persistent_cache_mode cannot be enabled."

ratio_line "rbd QD1 p50 speed-up $lat_ratio ($(verdict ge "$lat_ratio" 10) >= 10)," \
	"drain/direct $drain_ratio ($(verdict ge 1.0 "$drain_ratio") <= 1.0)"
