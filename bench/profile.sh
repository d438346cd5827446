#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Where wcache's time goes, next to the raw baseline of benchmark 1: for 4K
# randwrite and randread at QD32 (cache, origin and raw file on --work),
# perf stat on the server process counts CPU time, context switches and
# futex calls per request, and perf record (DWARF call graphs) on the wcache
# server gives the hottest symbols, with callers (perf-*.txt).
# Ratio: wcache/raw CPU time per request.
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_parse_args "$@"
bench_requires_fio_nbd
bench_requires perf

if ((BENCH_QUICK)); then
	size=32M region=8M secs=1 jobs=("randwrite --iodepth=32")
else
	size=512M region=128M secs=5 jobs=("randwrite --iodepth=32" "randread --iodepth=32")
fi
fs=$(fstype "$BENCH_WORK")
perf stat -e task-clock true >/dev/null 2>&1 || { say "SKIP: perf stat does not work here"; exit 77; }

mkimg "$WORK/raw.img" "$size"
mkimg "$WORK/cache.img" "$size"
mksparse "$WORK/origin.img" "$((2 * $(numfmt --from=iec "$size")))"
"$WCACHE" format "$WORK/cache.img" >/dev/null
srv_nbdkit raw file "$WORK/raw.img"
srv_wcache wcache "$WORK/origin.img" "$WORK/cache.img" --high-watermark 90 --low-watermark 80
for s in raw wcache; do
	fio_nbd "prefill-$s" "${SRV_URI[$s]}" --rw=write --bs=1M --iodepth=8 --size="$region" >/dev/null
done

out "### $fs ($(fs_of "$BENCH_WORK")): per request, measured with perf stat -p on the server for ${secs}s of a $((secs + 2))s fio run"
out ""
out "| job | server | IOPS | CPU us/request | context switches/request | futex calls/request |"
out "|---|---|---:|---:|---:|---:|"
declare -A cpu
for job in "${jobs[@]}"; do
	rw=${job%% *}
	for s in raw wcache; do
		only_run "$s"
		# shellcheck disable=SC2086
		fio --name="prof-$rw-$s" --ioengine=nbd --uri="${SRV_URI[$s]}" --rw=$job --bs=4k \
			--size="$region" --time_based --runtime=$((secs + 2)) --output-format=json \
			--output="$OUT/fio/prof-$rw-$s.json" >/dev/null 2>&1 &
		fpid=$!
		sleep 1
		perf stat -x, -e task-clock,context-switches,syscalls:sys_enter_futex,syscalls:sys_enter_pwrite64,syscalls:sys_enter_pread64 \
			-p "${SRV_PID[$s]}" -o "$OUT/perfstat-$rw-$s.csv" -- sleep "$secs" 2>/dev/null
		wait "$fpid" || die "fio prof-$rw-$s failed"
		dir="write"
		[[ $rw = randread ]] && dir="read"
		iops=$(fio_get "$OUT/fio/prof-$rw-$s.json" "$dir" iops)
		reqs=$(awk -v i="$iops" -v s="$secs" 'BEGIN { print i * s }')
		st() { awk -F, -v e="$1" '$3 == e { print $1 }' "$OUT/perfstat-$rw-$s.csv"; }
		cpu[$rw-$s]=$(div "$(awk -v x="$(st task-clock)" 'BEGIN { print x * 1000 }')" "$reqs")
		out "| $rw QD32 | $s | $(fmt "$iops" 0) | ${cpu[$rw-$s]} | $(div "$(st context-switches)" "$reqs") |" \
			"$(div "$(st syscalls:sys_enter_futex)" "$reqs") |"
	done
	# Call graphs of the wcache server only.
	only_run wcache
	# shellcheck disable=SC2086
	fio --name="perf-$rw" --ioengine=nbd --uri="${SRV_URI[wcache]}" --rw=$job --bs=4k \
		--size="$region" --time_based --runtime=$((secs + 2)) --output-format=json \
		--output="$OUT/fio/perf-$rw.json" >/dev/null 2>&1 &
	fpid=$!
	sleep 1
	perf record -q --call-graph dwarf,8192 -F 499 -p "${SRV_PID[wcache]}" -o "$WORK/perf-$rw.data" \
		-- sleep "$secs" >/dev/null 2>&1 || say "perf record failed"
	wait "$fpid" || die "fio perf-$rw failed"
	{
		echo "# perf report --no-children --sort symbol (self time), wcache server, $rw QD32"
		perf report -i "$WORK/perf-$rw.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
			grep -E '^ +[0-9]' | head -25 || true
		echo
		echo "# perf report --children --sort symbol (time including callees)"
		perf report -i "$WORK/perf-$rw.data" --children --sort symbol --stdio -g none 2>/dev/null |
			grep -E '^ +[0-9]' | head -40 || true
	} >"$OUT/perf-$rw.txt"
done
srv_stop wcache
srv_stop raw
out ""
out "Hottest symbols: perf-randwrite.txt, perf-randread.txt (cpu-clock sampling in a VM without a"
out "PMU: time spent with interrupts off is charged to the point where they are re-enabled)."

ratio_line "wcache/raw CPU per request: randwrite $(div "${cpu[randwrite-wcache]}" "${cpu[randwrite-raw]}")," \
	"randread $(if [[ -n ${cpu[randread-raw]:-} ]]; then div "${cpu[randread-wcache]}" "${cpu[randread-raw]}"; else echo n/a; fi) (no target)"
