#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Benchmark 2, peer: nbdkit's file plugin on an origin file behind nbdkit's
# cache filter (cache=writeback, no cache-max-size: it loses dirty data in
# nbdkit 1.32, see /work/shared/TOOLING.md) versus wcache, same fio jobs as
# benchmark 1, same file system for every file. The peer is NOT crash-safe
# (its cache is a temporary file, dirty data lives only until the next client
# FLUSH); wcache is. Target: wcache >= 1.5x the peer's write IOPS.
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_parse_args "$@"
bench_requires_fio_nbd

if ((BENCH_QUICK)); then
	origin_size=64M cache_size=32M region=8M
	rounds=${BENCH_ROUNDS:-1} runtime=${BENCH_RUNTIME:-500ms}
else
	origin_size=2G cache_size=1G region=256M
	rounds=${BENCH_ROUNDS:-6} runtime=${BENCH_RUNTIME:-5s}
fi

fs=$(fstype "$BENCH_WORK")
say "$fs: preparing a $origin_size origin for the peer"
mksparse "$WORK/peer-origin.img" "$origin_size"
# The cache filter keeps its cache in an unlinked file in $TMPDIR (= $WORK).
srv_nbdkit peer --filter=cache file "$WORK/peer-origin.img" cache=writeback
fio_nbd "prefill-peer" "${SRV_URI[peer]}" --rw=write --bs=1M --iodepth=8 --size="$region" >/dev/null
# wcache with its cache file under O_DIRECT (the default) and through the
# page cache like the peer's (cache-io=buffered).
summary=()
for mode in direct buffered; do
	tag=peer-$mode
	mksparse "$WORK/origin.img" "$origin_size"
	mkimg "$WORK/cache.img" "$cache_size"
	"$WCACHE" format "$WORK/cache.img" >/dev/null
	srv_wcache wcache "$WORK/origin.img" "$WORK/cache.img" --high-watermark 90 --low-watermark 80 \
		--cache-io "$mode"
	fio_nbd "prefill-$tag" "${SRV_URI[wcache]}" --rw=write --bs=1M --iodepth=8 --size="$region" >/dev/null
	ab_compare "$tag" peer wcache "$rounds" "$runtime" "$region"
	srv_stop wcache
	rm -f "$WORK/origin.img" "$WORK/cache.img"

	out ""
	out "### $fs ($(fs_of "$BENCH_WORK")), cache-io=$mode: nbdkit file + cache filter (peer) vs wcache, $rounds rounds x $runtime, region $region"
	out ""
	tee -a "$RESULTS" <"$OUT/$tag-table.txt"
	bars_plot "$tag" "Peer: nbdkit cache filter (writeback) vs wcache cache-io=$mode, $fs" \
		"nbdkit file + cache filter" "wcache"
	read -r mw mwj <<<"$(ab_min AB_IOPS_RATIO '*write*')"
	read -r mr mrj <<<"$(ab_min AB_IOPS_RATIO '*read*')"
	read -r mp mpj <<<"$(ab_min AB_P99_RATIO)"
	summary+=("cache-io=$mode: wcache/peer write IOPS min $mw ($mwj), target >= 1.5: $(verdict ge "$mw" 1.5); read IOPS min $mr ($mrj); p99 peer/wcache min $mp ($mpj)")
done
srv_stop peer
out ""
out "The peer is not crash-safe: its writeback cache is a temporary file and dirty blocks"
out "exist only in it until the client sends FLUSH; wcache's cache survives a crash."
ratio_line "$(IFS=';'; echo "${summary[*]}")"
