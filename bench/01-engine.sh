#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Benchmark 1, engine overhead: fio over NBD (4K randwrite/randread at QD1 and
# QD32, 1M sequential write) against (a) nbdkit's file plugin on a file like
# the cache file alone, the physical limit over NBD, and (b) wcache with its
# cache and origin files on the same file system, once with the cache file
# under O_DIRECT (cache-io=direct, the default) and once through the page
# cache like the baseline (cache-io=buffered). Ratio b/a for IOPS and a/b for
# p99 latency (>= 1 means wcache is as fast). Target >= 0.95.
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
	# Two cache I/O modes: direct (O_DIRECT, the default) and buffered (the
	# page cache, like the baseline). tmpfs refuses O_DIRECT, so there the
	# two are the same and only one runs.
	modes=(direct buffered)
	[[ $fs == tmpfs ]] && modes=(direct)
	say "$fs ($base): preparing a $cache_size raw file, a $cache_size cache and a $origin_size origin"
	mkimg "$d/raw.img" "$cache_size"
	srv_nbdkit raw file "$d/raw.img"
	fio_nbd "prefill-$fs-raw" "${SRV_URI[raw]}" --rw=write --bs=1M --iodepth=8 --size="$region" >/dev/null
	for mode in "${modes[@]}"; do
		tag=$fs-$mode
		mkimg "$d/cache.img" "$cache_size"
		mksparse "$d/origin.img" "$origin_size"
		"$WCACHE" format "$d/cache.img" >/dev/null
		# Watermarks above the region size: this benchmark measures the cached
		# path; writeback has its own benchmarks (3 and 4).
		srv_wcache wcache "$d/origin.img" "$d/cache.img" --high-watermark 90 --low-watermark 80 \
			--cache-io "$mode"
		fio_nbd "prefill-$tag" "${SRV_URI[wcache]}" --rw=write --bs=1M --iodepth=8 \
			--size="$region" >/dev/null
		ab_compare "$tag" raw wcache "$rounds" "$runtime" "$region"
		hits=$(wc_status wcache read_hits) reads=$(wc_status wcache reads)
		around=$(wc_status wcache writes_around)
		srv_stop wcache
		rm -f "$d/cache.img" "$d/origin.img"

		out ""
		out "### $fs ($(fs_of "$base")), cache-io=$mode: nbdkit file (raw) vs wcache, $rounds rounds x $runtime, region $region"
		out ""
		tee -a "$RESULTS" <"$OUT/$tag-table.txt"
		out ""
		out "wcache read hits $hits of $reads block reads, $around blocks written around the cache"
		bars_plot "$tag" "Engine overhead on $fs, cache-io=$mode: nbdkit file vs wcache (4K unless noted)" \
			"nbdkit file (raw)" "wcache"
		read -r mi mij <<<"$(ab_min AB_IOPS_RATIO)"
		read -r mp mpj <<<"$(ab_min AB_P99_RATIO)"
		ok=$(verdict eval "ge $mi 0.95 && ge $mp 0.95")
		summary+=("$fs cache-io=$mode: min IOPS ratio $mi ($mij), min p99 ratio $mp ($mpj) $ok")
	done
	srv_stop raw
	rm -rf "$d"
done

ratio_line "wcache/raw, target >= 0.95: $(IFS=';'; echo "${summary[*]}")"
