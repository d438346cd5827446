#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Benchmark 1, engine overhead: fio over NBD (4K randwrite/randread at QD1 and
# QD32, 1M sequential write) against (a) nbdkit's file plugin on a file like
# the cache file alone, the physical limit over NBD, and (b) wcache with its
# cache and origin files on the same file system. Ratio b/a for IOPS and
# a/b for p99 latency (>= 1 means wcache is as fast). Target >= 0.95.
# Runs on --work (ext4 by default) and, in the full run, on /dev/shm as well.
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_parse_args "$@"
bench_requires_fio_nbd

if ((BENCH_QUICK)); then
	origin_size=64M cache_size=32M region=8M
	rounds=${BENCH_ROUNDS:-1} runtime=${BENCH_RUNTIME:-500ms}
	dirs=("$BENCH_WORK")
else
	origin_size=2G cache_size=1G region=256M
	rounds=${BENCH_ROUNDS:-5} runtime=${BENCH_RUNTIME:-5s}
	dirs=("$BENCH_WORK" /dev/shm)
fi

summary=()
for base in "${dirs[@]}"; do
	fs=$(fstype "$base")
	d=$(mktemp -d "$base/wcache-bench-engine.XXXXXX")
	BENCH_SCRATCH+=("$d")
	say "$fs ($base): preparing a $cache_size raw file, a $cache_size cache and a $origin_size origin"
	mkimg "$d/raw.img" "$cache_size"
	mkimg "$d/cache.img" "$cache_size"
	mksparse "$d/origin.img" "$origin_size"
	"$WCACHE" format "$d/cache.img" >/dev/null
	srv_nbdkit raw file "$d/raw.img"
	# Watermarks above the region size: this benchmark measures the cached
	# path; writeback has its own benchmarks (3 and 4).
	srv_wcache wcache "$d/origin.img" "$d/cache.img" --high-watermark 90 --low-watermark 80
	for s in raw wcache; do
		fio_nbd "prefill-$fs-$s" "${SRV_URI[$s]}" --rw=write --bs=1M --iodepth=8 \
			--size="$region" >/dev/null
	done
	ab_compare "$fs" raw wcache "$rounds" "$runtime" "$region"
	hits=$(wc_status wcache read_hits) reads=$(wc_status wcache reads)
	around=$(wc_status wcache writes_around)
	srv_stop wcache
	srv_stop raw
	rm -rf "$d"

	out ""
	out "### $fs ($(fs_of "$base")): nbdkit file (raw) vs wcache, $rounds rounds x $runtime, region $region"
	out ""
	tee -a "$RESULTS" <"$OUT/$fs-table.txt"
	out ""
	out "wcache read hits $hits of $reads block reads, $around blocks written around the cache"
	bars_plot "$fs" "Engine overhead on $fs: nbdkit file vs wcache (4K unless noted)" \
		"nbdkit file (raw)" "wcache"
	read -r mi mij <<<"$(ab_min AB_IOPS_RATIO)"
	read -r mp mpj <<<"$(ab_min AB_P99_RATIO)"
	ok=$(verdict eval "ge $mi 0.95 && ge $mp 0.95")
	summary+=("$fs: min IOPS ratio $mi ($mij), min p99 ratio $mp ($mpj) $ok")
done

ratio_line "wcache/raw, target >= 0.95: $(IFS=';'; echo "${summary[*]}")"
