#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Benchmark 1, engine overhead: fio over NBD (4K randwrite/randread at QD1 and
# QD32, 1M sequential write) against (a) nbdkit's file plugin on a file like
# the cache file alone, the physical limit over NBD through the page cache,
# (b) wcache with its cache and origin files on the same file system, once
# with the cache file under O_DIRECT (cache-io=direct, the default) and once
# through the page cache like (a) (cache-io=buffered), and, beside the direct
# mode, (c) the O_DIRECT peer: qemu-nbd --cache=none --aio=io_uring -f raw on
# another file like the cache file (skipped, with a note, when qemu-nbd is not
# installed). Ratio b/a (and b/c) for IOPS and a/b (c/b) for p99 latency (>= 1
# means wcache is as fast). Targets: >= 0.95 against nbdkit file; wcache
# (cache-io=direct) >= 1.0x qemu-nbd's IOPS.
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

have_qemu=0
command -v qemu-nbd >/dev/null 2>&1 && have_qemu=1
((have_qemu)) || say "qemu-nbd is not installed: no O_DIRECT peer"

summary=() qsummary=()
for base in "${dirs[@]}"; do
	fs=$(fstype "$base")
	d=$(mktemp -d "$base/wcache-bench-engine.XXXXXX")
	BENCH_SCRATCH+=("$d")
	# Two cache I/O modes: direct (O_DIRECT, the default) and buffered (the
	# page cache, like the baseline). On tmpfs both copy to the same memory
	# (older kernels refuse O_DIRECT there, and wcache falls back to
	# buffered; since Linux 6.6 tmpfs accepts it), so only one runs.
	modes=(direct buffered)
	[[ $fs == tmpfs ]] && modes=(direct)
	say "$fs ($base): preparing a $cache_size raw file, a $cache_size cache and a $origin_size origin"
	mkimg "$d/raw.img" "$cache_size"
	srv_nbdkit raw file "$d/raw.img"
	fio_nbd "prefill-$fs-raw" "${SRV_URI[raw]}" --rw=write --bs=1M --iodepth=8 --size="$region" >/dev/null
	if ((have_qemu)); then
		# The O_DIRECT peer, on its own file (not raw.img, whose pages the
		# page cache holds for the baseline).
		mkimg "$d/qemu.img" "$cache_size"
		srv_qemu qemu "$d/qemu.img"
		fio_nbd "prefill-$fs-qemu" "${SRV_URI[qemu]}" --rw=write --bs=1M --iodepth=8 --size="$region" >/dev/null
	fi
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
		# qemu-nbd beside the direct mode only: it is the peer of O_DIRECT.
		peers=raw
		((have_qemu)) && [[ $mode = direct ]] && peers=raw,qemu
		ab_compare "$tag" "$peers" wcache "$rounds" "$runtime" "$region"
		hits=$(wc_status wcache read_hits) reads=$(wc_status wcache reads)
		around=$(wc_status wcache writes_around)
		srv_stop wcache
		rm -f "$d/cache.img" "$d/origin.img"

		out ""
		if [[ $peers = raw ]]; then
			out "### $fs ($(fs_of "$base")), cache-io=$mode: nbdkit file (raw) vs wcache, $rounds rounds x $runtime, region $region"
		else
			out "### $fs ($(fs_of "$base")), cache-io=$mode: nbdkit file (raw) and qemu-nbd --cache=none --aio=io_uring (qemu) vs wcache, $rounds rounds x $runtime, region $region"
		fi
		out ""
		tee -a "$RESULTS" <"$OUT/$tag-table.txt"
		out ""
		out "wcache read hits $hits of $reads block reads, $around blocks written around the cache"
		if [[ $peers = raw ]]; then
			bars_plot "$tag" "Engine overhead on $fs, cache-io=$mode: nbdkit file vs wcache (4K unless noted)" \
				"nbdkit file (raw)" "wcache"
		else
			bars_plot "$tag" "Engine overhead on $fs, cache-io=$mode: nbdkit file, qemu-nbd O_DIRECT, wcache (4K unless noted)" \
				"nbdkit file (raw)" "qemu-nbd --cache=none --aio=io_uring" "wcache"
		fi
		read -r mi mij <<<"$(abx_min raw IOPS)"
		read -r mp mpj <<<"$(abx_min raw P99)"
		ok=$(verdict eval "ge $mi 0.95 && ge $mp 0.95")
		summary+=("$fs cache-io=$mode: min IOPS ratio $mi ($mij), min p99 ratio $mp ($mpj) $ok")
		if [[ $peers = raw,qemu ]]; then
			read -r qi qij <<<"$(abx_min qemu IOPS)"
			read -r qp qpj <<<"$(abx_min qemu P99)"
			row=""
			for j in "${AB_JOBS[@]}"; do row+=" $j ${ABX_IOPS_RATIO[qemu:$j]},"; done
			qsummary+=("$fs cache-io=$mode: IOPS${row} min $qi ($qij) $(verdict ge "$qi" 1.0); min p99 ratio $qp ($qpj)")
		fi
	done
	srv_stop raw
	((have_qemu)) && srv_stop qemu
	rm -rf "$d"
done

if ((have_qemu)); then
	qline="wcache/qemu-nbd (O_DIRECT peer), IOPS target >= 1.0: $(IFS=';'; echo "${qsummary[*]}")"
else
	qline="wcache/qemu-nbd: not measured (qemu-nbd is not installed)"
fi
ratio_line "wcache/raw, target >= 0.95: $(IFS=';'; echo "${summary[*]}") || $qline"
