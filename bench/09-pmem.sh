#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Benchmark 9, pmem mode (issue 15): fio over NBD (4K randwrite/randread at
# QD1 and QD32, 1M sequential write) against wcache in pmem mode (p: the cache
# file mapped with libpmem2, stores + msync on tmpfs, no system call per
# request on the cache) with the cache file on tmpfs, wcache in SSD mode with
# the cache file on the same tmpfs (s: pread/pwrite), and nbdkit's memory
# plugin (the NBD ceiling on this machine), all in one run. Targets: p >= 1.3x
# s IOPS at QD1; p >= 0.95x nbdkit memory at QD32. Then the commit cost: QD1
# 4K random writes with fio --fsync=1 (one NBD FLUSH per write, so one commit
# each), flushes per second in p vs s mode.
# Both modes run with their own defaults (autocommit_blocks 64 in p mode, as
# in the kernel; 65536 in s mode) and watermarks above the region, so this
# measures the cached path.
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_parse_args "$@"
bench_requires_fio_nbd

if ((BENCH_QUICK)); then
	origin_size=64M cache_size=32M region=8M
	rounds=${BENCH_ROUNDS:-1} runtime=${BENCH_RUNTIME:-500ms}
else
	origin_size=2G cache_size=1G region=256M
	rounds=${BENCH_ROUNDS:-5} runtime=${BENCH_RUNTIME:-5s}
fi
base=/dev/shm
[[ -d $base && -w $base ]] || { echo "$BENCH_NAME: SKIP: no writable /dev/shm (tmpfs)" >&2; exit 77; }
fs=$(fstype "$base")
d=$(mktemp -d "$base/wcache-bench-pmem.XXXXXX")
BENCH_SCRATCH+=("$d")
# A build without libpmem2 has no pmem mode.
truncate -s 1M "$d/probe-o.img" "$d/probe-c.img"
if ! "$WCACHE" serve --mode p "$d/probe-o.img" "$d/probe-c.img" --run true >"$d/probe.log" 2>&1; then
	grep -q 'not supported by this build' "$d/probe.log" &&
		{ echo "$BENCH_NAME: SKIP: this build has no pmem mode (libpmem2)" >&2; exit 77; }
	cat "$d/probe.log" >&2
	die "wcache serve --mode p does not start"
fi
rm -f "$d"/probe-*

say "$fs ($base): two ${cache_size} caches, two ${origin_size} origins, nbdkit memory ${origin_size}"
for m in s p; do
	mkimg "$d/cache-$m.img" "$cache_size"
	mksparse "$d/origin-$m.img" "$origin_size"
	"$WCACHE" format --mode "$m" "$d/cache-$m.img" >/dev/null
done
srv_wcache ssd "$d/origin-s.img" "$d/cache-s.img" --high-watermark 90 --low-watermark 80
srv_wcache pmem "$d/origin-p.img" "$d/cache-p.img" --mode p --high-watermark 90 --low-watermark 80
persist=$("$WCACHE" status --control "${SRV_CTL[pmem]}" | sed -n 's/^persistence: //p')
say "pmem mode persistence: $persist"
srv_nbdkit memory memory "$origin_size"
for s in ssd pmem memory; do
	only_run "$s"
	fio_nbd "prefill-$s" "${SRV_URI[$s]}" --rw=write --bs=1M --iodepth=8 --size="$region" >/dev/null
done

ab_compare pmem "ssd,memory" pmem "$rounds" "$runtime" "$region"
hits=$(wc_status pmem read_hits) reads=$(wc_status pmem reads) commits=$(wc_status pmem commits)
out ""
out "### pmem mode vs SSD mode, cache files on $fs ($(fs_of "$base")), and nbdkit memory; $rounds rounds x $runtime, region $region"
out ""
out "pmem mode persistence: $persist"
out ""
tee -a "$RESULTS" <"$OUT/pmem-table.txt"
out ""
out "pmem: read hits $hits of $reads block reads, $commits commits"
bars_plot pmem "pmem mode (p) vs SSD mode (s) on $fs, and nbdkit memory (4K unless noted)" \
	"wcache s (ssd)" "nbdkit memory" "wcache p (pmem)"

# Commit cost: one NBD FLUSH per write.
declare -A fl=()
fsync_runs=""
for ((r = 1; r <= rounds; r++)); do
	for s in ssd pmem; do
		only_run "$s"
		json=$(fio_nbd "fsync-$s-r$r" "${SRV_URI[$s]}" --rw=randwrite --bs=4k --iodepth=1 \
			--fsync=1 --size="$region" --time_based --runtime="$runtime")
		fl[$s]+="$(fio_get "$json" write iops) "
	done
done
only_run ssd pmem memory
# shellcheck disable=SC2086
fs_ssd=$(median ${fl[ssd]})
# shellcheck disable=SC2086
fs_pmem=$(median ${fl[pmem]})
fratio=$(div "$fs_pmem" "$fs_ssd")
out ""
out "### Commit cost: fio --fsync=1, QD1 4K random writes (one flush = one commit per write), medians of $rounds"
out ""
out "| mode | writes+flushes per second |"
out "|---|---:|"
out "| s (SSD mode, cache file on $fs) | $(fmt "$fs_ssd" 0) |"
out "| p (pmem mode, cache file on $fs) | $(fmt "$fs_pmem" 0) |"
out "| p/s | $fratio |"

q1=${ABX_IOPS_RATIO[ssd:randwrite-4k-qd1]:-nan}
q1r=${ABX_IOPS_RATIO[ssd:randread-4k-qd1]:-nan}
q32=${ABX_IOPS_RATIO[memory:randwrite-4k-qd32]:-nan}
q32r=${ABX_IOPS_RATIO[memory:randread-4k-qd32]:-nan}
srv_stop ssd
srv_stop pmem
srv_stop memory
rm -rf "$d"
ratio_line "p/s IOPS at QD1 (target >= 1.3): randwrite $q1 $(verdict ge "$q1" 1.3), randread $q1r $(verdict ge "$q1r" 1.3); p/nbdkit-memory at QD32 (target >= 0.95): randwrite $q32 $(verdict ge "$q32" 0.95), randread $q32r $(verdict ge "$q32r" 0.95); fsync=1 flushes/s p/s $fratio ($persist)"
