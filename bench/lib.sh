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
# Set by --rounds/--runtime, read by the benchmarks.
export BENCH_ROUNDS BENCH_RUNTIME

bench_usage() {
	cat <<EOF
Usage: $0 [--quick] [--build DIR] [--out DIR] [--work DIR] [--rounds N] [--runtime S]
  --quick      smoke run (tiny sizes, one short round), used by ctest -L bench
  --build DIR  build tree with wcache and nbdkit-wcache-plugin.so (default: $BENCH_ROOT/build)
  --out DIR    results directory (default: a new directory under /var/tmp)
  --work DIR   where scratch images go, a directory on the disk under test (default: /var/tmp)
  --rounds N   interleaved baseline/subject rounds (overrides the default)
  --runtime T  fio time per run, e.g. 5s or 500ms (overrides the default)
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
# REGION bytes. Writes $OUT/TAG.tsv (one line per run), $OUT/TAG-table.txt and
# $OUT/TAG-bars.dat, and sets AB_JOBS, AB_IOPS_RATIO[job] (B/A, median of the
# per-round ratios), AB_P99_RATIO[job] (A p99 / B p99: > 1 means B is faster),
# AB_A_IOPS[job], AB_B_IOPS[job], AB_A_P99[job], AB_B_P99[job] (medians).
declare -A AB_IOPS_RATIO AB_P99_RATIO AB_A_IOPS AB_B_IOPS AB_A_P99 AB_B_P99
AB_JOBS=()
ab_compare() {
	local tag=$1 a=$2 b=$3 rounds=$4 runtime=$5 region=$6
	shift 6
	local extra=("$@") tsv=$OUT/$tag.tsv spec name dir opts r s first second json
	local -a ir pr ai bi ap bp
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
		ir=() pr=() ai=() bi=() ap=() bp=()
		for ((r = 1; r <= rounds; r++)); do
			if ((r % 2)); then first=$a second=$b; else first=$b second=$a; fi
			declare -A got_iops=() got_p99=()
			for s in "$first" "$second"; do
				only_run "$s"
				# shellcheck disable=SC2086
				json=$(fio_nbd "$tag-$name-$s-r$r" "${SRV_URI[$s]}" $opts --size="$region" \
					--time_based --runtime="$runtime" --ramp_time="$ramp" "${extra[@]}")
				got_iops[$s]=$(fio_get "$json" "$dir" iops)
				got_p99[$s]=$(fio_get "$json" "$dir" p99_us)
				printf '%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$r" "$s" "${got_iops[$s]}" \
					"$(fio_get "$json" "$dir" p50_us)" "${got_p99[$s]}" \
					"$(fio_get "$json" "$dir" p999_us)" "$(fio_get "$json" "$dir" mean_us)" >>"$tsv"
			done
			ir+=("$(div "${got_iops[$b]}" "${got_iops[$a]}")")
			pr+=("$(div "${got_p99[$a]}" "${got_p99[$b]}")")
			ai+=("${got_iops[$a]}") bi+=("${got_iops[$b]}")
			ap+=("${got_p99[$a]}") bp+=("${got_p99[$b]}")
			say "$tag $name round $r: $a ${got_iops[$a]} IOPS p99 ${got_p99[$a]} us," \
				"$b ${got_iops[$b]} IOPS p99 ${got_p99[$b]} us"
		done
		only_run "$a" "$b"
		AB_IOPS_RATIO[$name]=$(median "${ir[@]}")
		AB_P99_RATIO[$name]=$(median "${pr[@]}")
		AB_A_IOPS[$name]=$(median "${ai[@]}")
		AB_B_IOPS[$name]=$(median "${bi[@]}")
		AB_A_P99[$name]=$(median "${ap[@]}")
		AB_B_P99[$name]=$(median "${bp[@]}")
	done
	{
		printf '| job | %s IOPS | %s IOPS | IOPS %s/%s | %s p99 us | %s p99 us | p99 %s/%s |\n' \
			"$a" "$b" "$b" "$a" "$a" "$b" "$a" "$b"
		printf '|---|---:|---:|---:|---:|---:|---:|\n'
		for name in "${AB_JOBS[@]}"; do
			printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$name" \
				"$(fmt "${AB_A_IOPS[$name]}" 0)" "$(fmt "${AB_B_IOPS[$name]}" 0)" \
				"${AB_IOPS_RATIO[$name]}" "$(fmt "${AB_A_P99[$name]}" 0)" \
				"$(fmt "${AB_B_P99[$name]}" 0)" "${AB_P99_RATIO[$name]}"
		done
	} >"$OUT/$tag-table.txt"
	{
		echo "# job ${a}_iops ${b}_iops (medians)"
		for name in "${AB_JOBS[@]}"; do
			echo "$name ${AB_A_IOPS[$name]} ${AB_B_IOPS[$name]}"
		done
	} >"$OUT/$tag-bars.dat"
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

# bars_plot TAG TITLE LABEL_A LABEL_B: IOPS bar chart TAG-bars.png (log scale).
bars_plot() {
	local tag=$1 title=$2 la=$3 lb=$4
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
plot '$tag-bars.dat' using 2:xtic(1) title '$la', '' using 3 title '$lb'
GP
	plot "$tag-bars.gp"
}
