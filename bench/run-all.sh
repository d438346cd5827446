#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Run every benchmark (bench/NN-*.sh, then bench/profile.sh) and collect the
# results: machine description, one RATIO line per benchmark (summary.txt),
# tables, data files and gnuplot PNGs. The full run takes about 35 minutes and
# copies the compact results (no raw fio output) to docs/bench/results/;
# --quick is a ~1 minute smoke run of every script (ctest -L bench) and
# publishes nothing.
#
# Usage: bench/run-all.sh [--quick] [--build DIR] [--out DIR] [--work DIR]
#                         [--publish DIR | --no-publish] [--only LIST]
#   --build DIR    build tree (default: build/); needs wcache,
#                  nbdkit-wcache-plugin.so and wcache-bench-scale
#   --out DIR      raw results (default: a new directory under /var/tmp)
#   --work DIR     scratch images, on the disk under test (default: /var/tmp)
#   --publish DIR  where the compact results go (full run default: docs/bench/results)
#   --only LIST    comma-separated benchmark numbers, e.g. 1,3 (p = profile)
# Exit status: 0 every script ran (missed targets do not fail the run),
# 1 a script failed, 77 skipped (fio has no nbd engine, or nbdkit is missing).
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$src/.." && pwd)
quick=0 build=$root/build out="" work=/var/tmp publish=default only=""
while (($#)); do
	case $1 in
	--quick) quick=1 ;;
	--build) build=$2; shift ;;
	--out) out=$2; shift ;;
	--work) work=$2; shift ;;
	--publish) publish=$2; shift ;;
	--no-publish) publish="" ;;
	--only) only=$2; shift ;;
	-h | --help) sed -n '3,19s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "run-all: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
	shift
done
[[ $build = /* ]] || build=$PWD/$build
if [[ $publish = default ]]; then
	((quick)) && publish="" || publish=$root/docs/bench/results
fi

for c in fio nbdkit jq; do
	command -v "$c" >/dev/null 2>&1 || { echo "run-all: SKIP: $c is not installed" >&2; exit 77; }
done
if ! fio --enghelp=nbd 2>/dev/null | grep -q '^uri'; then
	echo "run-all: SKIP: this fio has no nbd ioengine" >&2
	exit 77
fi
for f in wcache nbdkit-wcache-plugin.so wcache-bench-scale; do
	[[ -e $build/$f ]] || { echo "run-all: $build/$f is missing (build first)" >&2; exit 1; }
done

tmp_out=0
if [[ -z $out ]]; then
	out=$(mktemp -d /var/tmp/wcache-bench-results.XXXXXX)
	((quick)) && tmp_out=1
fi
mkdir -p "$out"
[[ $out = /* ]] || out=$PWD/$out
# --only re-runs some benchmarks into an existing results directory: keep the
# other benchmarks' summary lines and add this run's machine description.
machine=$out/machine.txt
if [[ -n $only ]]; then
	touch "$out/summary.txt"
	machine=$out/machine-rerun.txt
else
	: >"$out/summary.txt"
fi
cleanup() { ((tmp_out)) && rm -rf "$out"; return 0; }
trap cleanup EXIT

# ---------------------------------------------------------------- machine
{
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "mode: $( ((quick)) && echo quick || echo full)"
	echo "cpu: $(nproc) x $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
	echo "memory: $(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "kernel: $(uname -r)"
	echo "work dir: $work ($(findmnt -n -o FSTYPE,SOURCE,OPTIONS --target "$work" | tail -n 1 | awk '{ print $1 " on " $2 " (" $3 ")" }'))"
	echo "tmpfs: /dev/shm ($(df -h --output=size /dev/shm | tail -1 | tr -d ' '))"
	echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "wcache: $(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)" \
		"($(awk -F= '/^CMAKE_BUILD_TYPE:/ { print $2 }' "$build/CMakeCache.txt" 2>/dev/null || echo '?') build)"
	echo "nbdkit: $(nbdkit --version | awk '{ print $2 }')"
	echo "fio: $(fio --version)"
	echo "libnbd: $(pkg-config --modversion libnbd 2>/dev/null || echo '?')"
	echo "gcc: $(gcc -dumpfullversion 2>/dev/null || echo '?')"
	echo "gnuplot: $(gnuplot --version 2>/dev/null || echo 'not installed')"
} >"$machine"
cat "$machine"

# ---------------------------------------------------------------- run
args=(--build "$build" --out "$out" --work "$work")
((quick)) && args+=(--quick)
scripts=("$src"/[0-9][0-9]-*.sh "$src/profile.sh")
failed=0 skipped=0
start=$SECONDS
for s in "${scripts[@]}"; do
	name=$(basename "$s" .sh)
	num=${name%%-*}
	num=${num#0}
	[[ $name = profile ]] && num=p
	if [[ -n $only && ",$only," != *",$num,"* ]]; then
		continue
	fi
	grep -v -e "^RATIO $name:" -e "^[A-Z]* $name\b" "$out/summary.txt" >"$out/summary.tmp" || true
	mv "$out/summary.tmp" "$out/summary.txt"
	echo
	echo "==== $name ($(date +%H:%M:%S), load $(cut -d' ' -f1 /proc/loadavg))"
	t0=$SECONDS
	set +e
	bash "$s" "${args[@]}" 2>"$out/$name.stderr"
	rc=$?
	set -e
	if ((rc == 77)); then
		echo "$name: skipped"
		echo "SKIP $name" >>"$out/summary.txt"
		skipped=$((skipped + 1))
	elif ((rc != 0)); then
		echo "$name: FAILED (exit $rc), last lines of its stderr:"
		tail -15 "$out/$name.stderr"
		echo "FAIL $name (exit $rc)" >>"$out/summary.txt"
		failed=$((failed + 1))
	fi
	echo "($name: $((SECONDS - t0)) s)"
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$machine"
sort -s -k2,2 "$out/summary.txt" >"$out/summary.tmp" && mv "$out/summary.tmp" "$out/summary.txt"
echo "total seconds: $((SECONDS - start))" >>"$machine"

if [[ -n $publish ]]; then
	# A full run replaces earlier published results (a directory holding a
	# summary.txt, nothing else); --only replaces only its own benchmarks.
	if [[ -z $only && -f $publish/summary.txt ]]; then
		rm -rf "${publish:?}"
	fi
	mkdir -p "$publish"
	cp "$out"/machine*.txt "$out/summary.txt" "$publish/"
	for d in "$out"/*/; do
		[[ -d $d ]] || continue
		n=$(basename "$d")
		num=${n%%-*}
		num=${num#0}
		[[ $n = profile ]] && num=p
		[[ -z $only || ",$only," == *",$num,"* ]] || continue
		rm -rf "${publish:?}/$n"
		mkdir -p "$publish/$n"
		find "$d" -maxdepth 1 -type f \( -name '*.txt' -o -name '*.tsv' -o -name '*.dat' \
			-o -name '*.png' -o -name '*.gp' \) -exec cp {} "$publish/$n/" \;
	done
	echo "compact results copied to $publish (raw results: $out)"
fi

echo
echo "==== summary ($((SECONDS - start)) s)"
cat "$out/summary.txt"
if ((failed)); then
	echo "run-all: $failed benchmark(s) failed"
	exit 1
fi
if ((skipped && skipped == ${#scripts[@]})); then
	echo "run-all: every benchmark was skipped" >&2
	exit 77
fi
echo "run-all: ok"
