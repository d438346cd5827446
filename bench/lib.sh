# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Shared helpers for bench/[0-9]*.sh (source it; bash only): option parsing,
# scratch files, NBD servers (wcache and plain nbdkit) as daemons with
# pidfiles, fio runs with JSON output, metric extraction, medians and ratios,
# and the one-line RATIO verdict every benchmark prints last.
#
# Every benchmark compares a subject against a baseline measured in the same
# run, in interleaved rounds (A B, B A, A B, ...), and reports the median of the
# per-round ratios: the machines are shared and noisy, absolute numbers are not.

set -euo pipefail

BENCH_NAME=$(basename "$0" .sh)
BENCH_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_ROOT=$(cd "$BENCH_SRC/.." && pwd)

: "${BENCH_BUILD:=$BENCH_ROOT/build}"
: "${BENCH_QUICK:=0}"
: "${BENCH_WORK:=/var/tmp}"
: "${BENCH_OUT:=}"
: "${BENCH_PERF:=0}"
# Set by --rounds/--runtime, read by the benchmarks.
export BENCH_ROUNDS BENCH_RUNTIME

bench_usage() {
	cat <<EOF
Usage: $0 [--quick] [--build DIR] [--out DIR] [--work DIR] [--rounds N] [--runtime S] [--perf S]
  --quick      smoke run (tiny sizes, one short round), used by ctest -L bench
  --build DIR  build tree with wcache and nbdkit-wcache-plugin.so (default: $BENCH_ROOT/build)
  --out DIR    results directory (default: a new directory under /var/tmp)
  --work DIR   where scratch images go, a directory on the disk under test (default: /var/tmp)
  --rounds N   interleaved baseline/subject rounds (overrides the default)
  --runtime T  fio time per run, e.g. 5s or 500ms (overrides the default)
  --perf S     profile the servers for S seconds during round 1 (perf record
               -g and perf stat, into OUT/perf/): benchmark 1 every server,
               benchmark 7 wcache. The profiler perturbs the run: use a
               separate run for profiles
EOF
}

# bench_parse_args "$@": common options; unknown ones are an error.
bench_parse_args() {
	while (($#)); do
		case $1 in
		--quick) BENCH_QUICK=1 ;;
		--build) BENCH_BUILD=$2; shift ;;
		--out) BENCH_OUT=$2; shift ;;
		--work) BENCH_WORK=$2; shift ;;
		--rounds) BENCH_ROUNDS=$2; shift ;;
		--runtime) BENCH_RUNTIME=$2; shift ;;
		--perf) BENCH_PERF=$2; shift ;;
		-h | --help) bench_usage; exit 0 ;;
		*) echo "$BENCH_NAME: unknown argument '$1'" >&2; bench_usage >&2; exit 2 ;;
		esac
		shift
	done
	[[ $BENCH_BUILD = /* ]] || BENCH_BUILD=$PWD/$BENCH_BUILD
	WCACHE=$BENCH_BUILD/wcache
	[[ -x $WCACHE ]] || { echo "$BENCH_NAME: $WCACHE not found (build first)" >&2; exit 1; }
	if [[ -z $BENCH_OUT ]]; then
		BENCH_OUT=$(mktemp -d /var/tmp/wcache-bench-out.XXXXXX)
	fi
	[[ $BENCH_OUT = /* ]] || BENCH_OUT=$PWD/$BENCH_OUT
	OUT=$BENCH_OUT/$BENCH_NAME
	rm -rf "$OUT"
	mkdir -p "$OUT/fio"
	WORK=$(mktemp -d "$BENCH_WORK/wcache-bench.XXXXXX")
	RESULTS=$OUT/results.txt
	: >"$RESULTS"
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

# bench_requires CMD...: exit 77 (skip) when a tool is missing.
bench_requires() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || { echo "$BENCH_NAME: SKIP: needs $c" >&2; exit 77; }
	done
}

# bench_requires_fio_nbd: fio with its nbd ioengine, or exit 77.
bench_requires_fio_nbd() {
	bench_requires fio nbdkit jq
	fio --enghelp=nbd 2>/dev/null | grep -q '^uri' ||
		{ echo "$BENCH_NAME: SKIP: this fio has no nbd ioengine" >&2; exit 77; }
}

say() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; }
die() { printf '%s: FAILED: %s\n' "$BENCH_NAME" "$*" >&2; exit 1; }

# out LINE...: print to stdout and to results.txt.
out() { printf '%s\n' "$*" | tee -a "$RESULTS"; }

# ---------------------------------------------------------------- servers

declare -A SRV_PID SRV_URI SRV_CTL
# Scratch directories outside $WORK (other file systems), removed at exit.
BENCH_SCRATCH=()

# srv_wait_pid NAME PIDFILE SOCK: wait until nbdkit wrote its pidfile and socket.
srv_wait() {
	local name=$1 pidfile=$2 sock=$3 i
	for ((i = 0; i < 300; i++)); do
		[[ -s $pidfile && -S $sock ]] && break
		sleep 0.05
	done
	[[ -s $pidfile && -S $sock ]] || die "server $name did not start (see $OUT/$name.log)"
	SRV_PID[$name]=$(cat "$pidfile")
	SRV_URI[$name]="nbd+unix:///?socket=$sock"
}

# srv_wcache NAME ORIGIN CACHE [wcache serve options...]: a wcache NBD server.
srv_wcache() {
	local name=$1 origin=$2 cache=$3
	shift 3
	local sock=$WORK/$name.sock pidfile=$WORK/$name.pid
	rm -f "$sock" "$pidfile" "$WORK/$name.ctl"
	"$WCACHE" serve "$origin" "$cache" --socket "$sock" --control "$WORK/$name.ctl" \
		--daemon --pidfile "$pidfile" "$@" >>"$OUT/$name.log" 2>&1 ||
		{ cat "$OUT/$name.log" >&2; die "wcache serve $name failed"; }
	srv_wait "$name" "$pidfile" "$sock"
	SRV_CTL[$name]=$WORK/$name.ctl
	# The cache is opened after nbdkit forks, after the socket appears; the
	# control socket answers once it is open (and the origin connected).
	local i
	for ((i = 0; i < 600; i++)); do
		"$WCACHE" status --control "${SRV_CTL[$name]}" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	die "wcache server $name did not open its cache (see $OUT/$name.log)"
}

# srv_nbdkit NAME [nbdkit arguments...]: a plain nbdkit server on a unix socket.
srv_nbdkit() {
	local name=$1
	shift
	local sock=$WORK/$name.sock pidfile=$WORK/$name.pid
	rm -f "$sock" "$pidfile"
	TMPDIR=$WORK nbdkit -U "$sock" -P "$pidfile" "$@" >>"$OUT/$name.log" 2>&1 ||
		{ cat "$OUT/$name.log" >&2; die "nbdkit $name failed"; }
	srv_wait "$name" "$pidfile" "$sock"
}

# srv_qemu NAME IMAGE: qemu-nbd on a unix socket, O_DIRECT (--cache=none) +
# io_uring, any number of clients (--shared=0), persistent (it exits after
# its first client disconnects otherwise).
srv_qemu() {
	local name=$1 img=$2
	local sock=$WORK/$name.sock pidfile=$WORK/$name.pid
	rm -f "$sock" "$pidfile"
	qemu-nbd -f raw --cache=none --aio=io_uring --shared=0 --persistent --fork \
		--pid-file="$pidfile" -k "$sock" "$img" >>"$OUT/$name.log" 2>&1 ||
		{ cat "$OUT/$name.log" >&2; die "qemu-nbd $name failed"; }
	srv_wait "$name" "$pidfile" "$sock"
}

# perf_start LABEL PID [DELAY]: with --perf SECS (whole seconds), after DELAY
# seconds (default 1) profile process PID for SECS seconds in the background:
# perf record -g
# (OUT/perf/LABEL.data, report in LABEL-report.txt: --no-children --sort
# dso,sym, flat; LABEL-callgraph.txt: the same with call chains for symbols
# above 2%; LABEL-dso.txt: --sort dso) and, at the same time, perf stat
# (LABEL-stat.csv: task-clock, context switches, futex and io_uring_enter
# calls, and how many CPUs the whole machine kept busy meanwhile). perf_wait waits for it. Without --perf both do nothing.
# BENCH_PERF_CG replaces -g, e.g. BENCH_PERF_CG="--call-graph dwarf,16384"
# (user-space callers in a build without frame pointers; large files).
PERF_JOB=""
perf_start() {
	((BENCH_PERF > 0)) || return 0
	local label=$1 pid=$2 delay=${3:-1} dir=$OUT/perf
	mkdir -p "$dir"
	(
		# head closes the pipe early: no -e/pipefail in here.
		set +e +o pipefail
		sleep "$delay"
		local cpu0 cpu1
		cpu0=$(cpu_mark)
		perf stat -x, -e task-clock,context-switches,cpu-migrations,syscalls:sys_enter_futex,syscalls:sys_enter_io_uring_enter \
			-p "$pid" -o "$dir/$label-stat.csv" -- sleep "$BENCH_PERF" >/dev/null 2>&1 &
		# shellcheck disable=SC2086
		perf record ${BENCH_PERF_CG:--g} -p "$pid" -o "$dir/$label.data" -- sleep "$BENCH_PERF" >/dev/null 2>"$dir/$label-record.log"
		wait
		# The whole machine meanwhile: CPUs busy (of nproc).
		cpu1=$(cpu_mark)
		cpu_busy "$cpu0" "$cpu1" | awk -v n="$(nproc)" '{ printf "%s,CPUs,machine-busy,of %d\n", $2, n }' \
			>>"$dir/$label-stat.csv"
		perf report -i "$dir/$label.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null |
			grep -v '^$' | head -n 400 >"$dir/$label-report.txt"
		perf report -i "$dir/$label.data" --no-children --sort dso,sym --stdio --percent-limit 2 \
			2>/dev/null | head -n 1500 >"$dir/$label-callgraph.txt"
		perf report -i "$dir/$label.data" --no-children --sort dso --stdio -g none 2>/dev/null |
			grep -v '^$' >"$dir/$label-dso.txt"
	) &
	PERF_JOB=$!
}
perf_wait() {
	[[ -n $PERF_JOB ]] || return 0
	wait "$PERF_JOB" || say "perf for job $PERF_JOB failed"
	PERF_JOB=""
}

# only_run NAME...: SIGCONT the servers named, SIGSTOP every other one, so
# an idle server never takes CPU from the one being measured (wcache's
# background threads are not free when idle, see docs/bench/README.md).
only_run() {
	local n keep
	for n in "${!SRV_PID[@]}"; do
		keep=0
		[[ " $* " == *" $n "* ]] && keep=1
		if ((keep)); then
			kill -CONT "${SRV_PID[$n]}" 2>/dev/null || true
		else
			kill -STOP "${SRV_PID[$n]}" 2>/dev/null || true
		fi
	done
}

# srv_stop NAME: SIGTERM and wait (wcache commits and closes on SIGTERM).
srv_stop() {
	local name=$1 pid=${SRV_PID[$1]:-} i
	[[ -n $pid ]] || return 0
	kill "$pid" 2>/dev/null || true
	kill -CONT "$pid" 2>/dev/null || true
	for ((i = 0; i < 1200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "server $name ($pid) ignores SIGTERM; killing it"
		kill -9 "$pid" 2>/dev/null || true
	fi
	unset "SRV_PID[$name]" "SRV_CTL[$name]"
	rm -f "$WORK/$name.sock" "$WORK/$name.ctl"
}

bench_cleanup() {
	local rc=$? n
	set +e
	for n in "${!SRV_PID[@]}"; do
		kill -CONT "${SRV_PID[$n]}" 2>/dev/null
	done
	# wcache servers first: their origin may be one of the other servers.
	for n in "${!SRV_CTL[@]}"; do
		srv_stop "$n"
	done
	for n in "${!SRV_PID[@]}"; do
		srv_stop "$n"
	done
	if [[ ${BENCH_KEEP_WORK:-0} != 1 ]]; then
		[[ -n ${WORK:-} && -d $WORK ]] && rm -rf "$WORK"
		for n in "${BENCH_SCRATCH[@]}"; do
			rm -rf "$n"
		done
	fi
	exit "$rc"
}

# wc_status NAME FIELD: one field of 'wcache status --control' (dirty, free, ...).
wc_status() {
	"$WCACHE" status --control "${SRV_CTL[$1]}" | awk -v k="$2:" '$1 == k { print $2 }'
}

# wc_message NAME MSG: send a dm-writecache message and wait for it.
wc_message() {
	"$WCACHE" message --control "${SRV_CTL[$1]}" "$2"
}

# ---------------------------------------------------------------- files

# mkimg PATH SIZE: a file whose blocks are all written (zeros), so that neither
# O_DIRECT writes nor the page cache meet unwritten extents during a run
# (--quick: just fallocate, the numbers do not matter there).
mkimg() {
	local path=$1 size=$2 mib
	mib=$(($(numfmt --from=iec "$size") >> 20))
	rm -f "$path"
	if ((BENCH_QUICK)) && fallocate -l "$size" "$path" 2>/dev/null; then
		return 0
	fi
	dd if=/dev/zero of="$path" bs=1M count="$mib" conv=fsync status=none
}

# mksparse PATH SIZE
mksparse() {
	rm -f "$1"
	truncate -s "$2" "$1"
}

# fstype DIR: the file system type of DIR (the top mount when mounts are stacked).
fstype() {
	findmnt -n -o FSTYPE --target "$1" | tail -n 1
}

# fs_of DIR: "ext4 on /dev/vda" style description.
fs_of() {
	findmnt -n -o FSTYPE,SOURCE --target "$1" | tail -n 1 | awk '{ print $1 " on " $2 }'
}

# ---------------------------------------------------------------- fio

# fio_nbd LABEL URI [fio options...]: one fio job over NBD, JSON to $OUT/fio/LABEL.json.
fio_nbd() {
	local label=$1 uri=$2
	shift 2
	local json=$OUT/fio/$label.json
	fio --name="$label" --ioengine=nbd --uri="$uri" --output-format=json --output="$json" \
		"$@" >/dev/null 2>"$OUT/fio/$label.err" ||
		{ cat "$OUT/fio/$label.err" >&2; die "fio $label failed"; }
	echo "$json"
}

# cpu_mark: the machine's CPU counters now (the first line of /proc/stat).
# cpu_busy MARK0 MARK1: "SECONDS CPUS" between two marks: the CPU-seconds the
# whole machine was busy (every CPU; idle and iowait are not busy) and how
# many of its CPUs that kept busy on average.
cpu_mark() {
	head -n 1 /proc/stat
}
cpu_busy() {
	awk -v a="$1" -v b="$2" -v hz="$(getconf CLK_TCK)" -v n="$(nproc)" 'BEGIN {
		split(a, x, " "); split(b, y, " "); busy = 0; t = 0
		for (i = 2; i <= 9; i++) {
			t += y[i] - x[i]
			if (i != 5 && i != 6) busy += y[i] - x[i]
		}
		printf "%.3f %.2f\n", busy / hz, (t > 0 ? n * busy / t : 0) }'
}

# fio_get JSON DIR METRIC: DIR read|write|sync; METRIC iops|bw_mib|mean_us|p50_us|p99_us|p999_us|max_us
fio_get() {
	local json=$1 dir=$2 m=$3 lat=clat_ns
	[[ $dir = sync ]] && lat=lat_ns
	case $m in
	iops) jq -r ".jobs[0].$dir.iops // 0" "$json" ;;
	bw_mib) jq -r "(.jobs[0].$dir.bw_bytes // 0) / 1048576" "$json" ;;
	mean_us) jq -r "(.jobs[0].$dir.$lat.mean // 0) / 1000" "$json" ;;
	max_us) jq -r "(.jobs[0].$dir.$lat.max // 0) / 1000" "$json" ;;
	p50_us) jq -r "(.jobs[0].$dir.$lat.percentile[\"50.000000\"] // 0) / 1000" "$json" ;;
	p99_us) jq -r "(.jobs[0].$dir.$lat.percentile[\"99.000000\"] // 0) / 1000" "$json" ;;
	p999_us) jq -r "(.jobs[0].$dir.$lat.percentile[\"99.900000\"] // 0) / 1000" "$json" ;;
	*) die "fio_get: unknown metric $m" ;;
	esac
}

# ---------------------------------------------------------------- numbers

# median V...: median of the numbers given.
median() {
	printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "nan"; exit }
		if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# div A B: A / B with 3 decimals ("nan" when B is 0).
div() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "nan"; else printf "%.3f\n", a / b }'
}

# fmt V [DECIMALS]: a number for tables.
fmt() {
	awk -v v="$1" -v d="${2:-1}" 'BEGIN { printf "%.*f\n", d, v }'
}

# ge A B: exit 0 when A >= B (numbers).
ge() {
	awk -v a="$1" -v b="$2" 'BEGIN { exit !(a != "nan" && a + 0 >= b + 0) }'
}

# verdict OK: "met" or "MISSED"
verdict() {
	if "$@"; then echo "met"; else echo "MISSED"; fi
}

# ratio_line TEXT: the last line of every benchmark, also kept in $BENCH_OUT/summary.txt.
ratio_line() {
	echo "RATIO $BENCH_NAME: $*" | tee -a "$RESULTS" "$BENCH_OUT/summary.txt"
}

# ---------------------------------------------------------------- plots

# plot SCRIPT.gp: run gnuplot in $OUT (the script writes its PNG there).
plot() {
	if command -v gnuplot >/dev/null 2>&1; then
		(cd "$OUT" && gnuplot "$1") 2>>"$OUT/gnuplot.log" || say "gnuplot failed for $1 (see gnuplot.log)"
	else
		say "gnuplot not installed: no plot from $1"
	fi
}

# ---------------------------------------------------------------- A/B job sets

# The fio jobs of benchmarks 1 and 2: "name|direction|fio options".
STD_JOBS=(
	"seqwrite-1M-qd8|write|--rw=write --bs=1M --iodepth=8"
	"randwrite-4k-qd1|write|--rw=randwrite --bs=4k --iodepth=1"
	"randwrite-4k-qd32|write|--rw=randwrite --bs=4k --iodepth=32"
	"randread-4k-qd1|read|--rw=randread --bs=4k --iodepth=1"
	"randread-4k-qd32|read|--rw=randread --bs=4k --iodepth=32"
)

# ab_compare TAG A B ROUNDS RUNTIME REGION [extra fio options...]
# Runs every STD_JOBS job on servers A (baseline) and B (subject), ROUNDS
# times, alternating which goes first, each run RUNTIME (fio time: 5, 500ms)
# after a 1 s ramp (none with --quick), over the first
# REGION bytes. A may name several baselines separated by commas (raw,qemu):
# then odd rounds run A1 A2 ... B and even rounds B ... A2 A1. Writes
# $OUT/TAG.tsv (one line per run), $OUT/TAG-table.txt and $OUT/TAG-bars.dat,
# and sets AB_JOBS, AB_IOPS_RATIO[job] (B/A1, median of the per-round ratios),
# AB_P99_RATIO[job] (A1 p99 / B p99: > 1 means B is faster), AB_A_IOPS[job],
# AB_B_IOPS[job], AB_A_P99[job], AB_B_P99[job] (medians), and for every
# baseline X: ABX_IOPS_RATIO[X:job], ABX_P99_RATIO[X:job] (B against X) and
# for every server S: ABX_IOPS[S:job], ABX_P99[S:job] (medians).
# With --perf SECS, every server's run of every job in round 1 is profiled
# (perf_start above), from 1 s after fio's ramp.
declare -A AB_IOPS_RATIO AB_P99_RATIO AB_A_IOPS AB_B_IOPS AB_A_P99 AB_B_P99
declare -A ABX_IOPS_RATIO ABX_P99_RATIO ABX_IOPS ABX_P99
AB_JOBS=()
ab_compare() {
	local tag=$1 alist=$2 b=$3 rounds=$4 runtime=$5 region=$6
	shift 6
	local extra=("$@") tsv=$OUT/$tag.tsv spec name dir opts r s x json a
	local -a bases order
	IFS=',' read -r -a bases <<<"$alist"
	a=${bases[0]}
	local ramp=1
	((BENCH_QUICK)) && ramp=0
	local -a jobs=("${STD_JOBS[@]}")
	# --quick: one write and one read job keep the scripts working.
	((BENCH_QUICK)) && jobs=("${STD_JOBS[2]}" "${STD_JOBS[3]}")
	AB_JOBS=()
	printf 'job\tround\tserver\tiops\tp50_us\tp99_us\tp999_us\tmean_us\n' >"$tsv"
	for spec in "${jobs[@]}"; do
		IFS='|' read -r name dir opts <<<"$spec"
		AB_JOBS+=("$name")
		# Per-round values, one newline-separated list per key.
		declare -A x_ir=() x_pr=() x_iv=() x_pv=()
		for ((r = 1; r <= rounds; r++)); do
			if ((r % 2)); then
				order=("${bases[@]}" "$b")
			else
				order=("$b")
				for ((x = ${#bases[@]} - 1; x >= 0; x--)); do order+=("${bases[x]}"); done
			fi
			declare -A got_iops=() got_p99=()
			for s in "${order[@]}"; do
				only_run "$s"
				((r == 1)) && perf_start "$tag-$name-$s" "${SRV_PID[$s]}" "$((ramp + 1))"
				# shellcheck disable=SC2086
				json=$(fio_nbd "$tag-$name-$s-r$r" "${SRV_URI[$s]}" $opts --size="$region" \
					--time_based --runtime="$runtime" --ramp_time="$ramp" "${extra[@]}")
				perf_wait
				got_iops[$s]=$(fio_get "$json" "$dir" iops)
				got_p99[$s]=$(fio_get "$json" "$dir" p99_us)
				printf '%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$r" "$s" "${got_iops[$s]}" \
					"$(fio_get "$json" "$dir" p50_us)" "${got_p99[$s]}" \
					"$(fio_get "$json" "$dir" p999_us)" "$(fio_get "$json" "$dir" mean_us)" >>"$tsv"
				x_iv[$s]+="${got_iops[$s]} " x_pv[$s]+="${got_p99[$s]} "
			done
			local msg=""
			for x in "${bases[@]}"; do
				x_ir[$x]+="$(div "${got_iops[$b]}" "${got_iops[$x]}") "
				x_pr[$x]+="$(div "${got_p99[$x]}" "${got_p99[$b]}") "
				msg+="$x ${got_iops[$x]} IOPS p99 ${got_p99[$x]} us, "
			done
			say "$tag $name round $r: $msg$b ${got_iops[$b]} IOPS p99 ${got_p99[$b]} us"
		done
		only_run "${bases[@]}" "$b"
		for s in "${bases[@]}" "$b"; do
			# shellcheck disable=SC2086
			ABX_IOPS[$s:$name]=$(median ${x_iv[$s]})
			# shellcheck disable=SC2086
			ABX_P99[$s:$name]=$(median ${x_pv[$s]})
		done
		for x in "${bases[@]}"; do
			# shellcheck disable=SC2086
			ABX_IOPS_RATIO[$x:$name]=$(median ${x_ir[$x]})
			# shellcheck disable=SC2086
			ABX_P99_RATIO[$x:$name]=$(median ${x_pr[$x]})
		done
		# The first baseline's numbers, for the callers (ab_min AB_IOPS_RATIO, ...).
		# shellcheck disable=SC2034
		AB_IOPS_RATIO[$name]=${ABX_IOPS_RATIO[$a:$name]}
		# shellcheck disable=SC2034
		AB_P99_RATIO[$name]=${ABX_P99_RATIO[$a:$name]}
		# shellcheck disable=SC2034
		AB_A_IOPS[$name]=${ABX_IOPS[$a:$name]}
		# shellcheck disable=SC2034
		AB_B_IOPS[$name]=${ABX_IOPS[$b:$name]}
		# shellcheck disable=SC2034
		AB_A_P99[$name]=${ABX_P99[$a:$name]}
		# shellcheck disable=SC2034
		AB_B_P99[$name]=${ABX_P99[$b:$name]}
	done
	# Table: with one baseline | job | A IOPS | B IOPS | B/A | A p99 | B p99 | A/B |.
	{
		local head="| job |" rule="|---|" row
		for s in "${bases[@]}" "$b"; do head+=" $s IOPS |" rule+="---:|"; done
		for x in "${bases[@]}"; do head+=" IOPS $b/$x |" rule+="---:|"; done
		for s in "${bases[@]}" "$b"; do head+=" $s p99 us |" rule+="---:|"; done
		for x in "${bases[@]}"; do head+=" p99 $x/$b |" rule+="---:|"; done
		echo "$head"
		echo "$rule"
		for name in "${AB_JOBS[@]}"; do
			row="| $name |"
			for s in "${bases[@]}" "$b"; do row+=" $(fmt "${ABX_IOPS[$s:$name]}" 0) |"; done
			for x in "${bases[@]}"; do row+=" ${ABX_IOPS_RATIO[$x:$name]} |"; done
			for s in "${bases[@]}" "$b"; do row+=" $(fmt "${ABX_P99[$s:$name]}" 0) |"; done
			for x in "${bases[@]}"; do row+=" ${ABX_P99_RATIO[$x:$name]} |"; done
			echo "$row"
		done
	} >"$OUT/$tag-table.txt"
	{
		printf '# job'
		for s in "${bases[@]}" "$b"; do printf ' %s_iops' "$s"; done
		echo " (medians)"
		for name in "${AB_JOBS[@]}"; do
			printf '%s' "$name"
			for s in "${bases[@]}" "$b"; do printf ' %s' "${ABX_IOPS[$s:$name]}"; done
			echo
		done
	} >"$OUT/$tag-bars.dat"
}

# abx_min BASELINE IOPS|P99 [JOB-PATTERN]: "value job" of the smallest ratio of
# the subject against BASELINE (ABX_IOPS_RATIO or ABX_P99_RATIO).
abx_min() {
	local base=$1 which=$2 pat=${3:-*} j v best=nan bj=-
	for j in "${AB_JOBS[@]}"; do
		# shellcheck disable=SC2053
		[[ $j == $pat ]] || continue
		if [[ $which = IOPS ]]; then v=${ABX_IOPS_RATIO[$base:$j]}; else v=${ABX_P99_RATIO[$base:$j]}; fi
		if [[ $best = nan ]] || awk -v x="$v" -v y="$best" 'BEGIN { exit !(x < y) }'; then
			best=$v bj=$j
		fi
	done
	echo "$best $bj"
}

# ab_min ARRAYNAME [JOB-PATTERN]: "value job" of the smallest ratio in an AB_* map.
ab_min() {
	local -n m=$1
	local pat=${2:-*} j best=nan bj=-
	for j in "${AB_JOBS[@]}"; do
		# shellcheck disable=SC2053
		[[ $j == $pat ]] || continue
		if [[ $best = nan ]] || awk -v x="${m[$j]}" -v y="$best" 'BEGIN { exit !(x < y) }'; then
			best=${m[$j]} bj=$j
		fi
	done
	echo "$best $bj"
}

# bars_plot TAG TITLE LABEL...: IOPS bar chart TAG-bars.png (log scale), one
# series per column of TAG-bars.dat (baselines first, the subject last).
bars_plot() {
	local tag=$1 title=$2 i=2 series="" l
	shift 2
	for l in "$@"; do
		if ((i == 2)); then
			series="'$tag-bars.dat' using 2:xtic(1) title '$l'"
		else
			series+=", '' using $i title '$l'"
		fi
		i=$((i + 1))
	done
	cat >"$OUT/$tag-bars.gp" <<GP
set terminal pngcairo size 1000,560 noenhanced
set output '$tag-bars.png'
set title '$title'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel 'IOPS (median of rounds, log scale)'
set xtics rotate by -20 font ',9'
set bmargin 7
set grid ytics
set key outside top center horizontal
plot $series
GP
	plot "$tag-bars.gp"
}
