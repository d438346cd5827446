#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Fuzz wcache with AFL++: build the harnesses of tests/fuzz with
# afl-clang-fast + ASan/UBSan in their own tree, then run one target (or
# all, one after the other) on its committed corpus for a time budget. Exit
# 1 if AFL++ found any crash or hang (each input's path is printed: copy it
# to tests/fuzz/TARGET/crash-WHAT once fixed), 77 if AFL++ is not installed.
#
# Usage: scripts/fuzz.sh [--build-only | --no-build] [TARGET|all] [SECONDS]
#        scripts/fuzz.sh --coverage [TARGET|all]
#   TARGET   meta, table or control (default: all)
#   SECONDS  budget per target (default 60)
#   --build-only  build the instrumented binaries and stop
#   --no-build    use binaries a previous run built
#   --coverage    replay the corpus of the last run (else the committed one)
#                 through a gcov build (DIR-cov) and print the line and
#                 function coverage of the code the target aims at
# Environment: WC_FUZZ_BUILD_DIR (default build-fuzz; findings go to
#   DIR/findings/TARGET, replaced by each run), WC_FUZZ_JOBS (build jobs).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
targets_all=(meta table control)
build=1
run=1
coverage=0

while (($#)); do
	case "$1" in
	--build-only) run=0 ;;
	--no-build) build=0 ;;
	--coverage) coverage=1 ;;
	-h | --help)
		sed -n '3,20s/^# \{0,1\}//p' "$0"
		exit 0
		;;
	-*)
		echo "fuzz: unknown option '$1' (try --help)" >&2
		exit 2
		;;
	*) break ;;
	esac
	shift
done
target=${1:-all}
seconds=${2:-60}
if [[ "$target" == all ]]; then
	targets=("${targets_all[@]}")
elif [[ " ${targets_all[*]} " == *" $target "* ]]; then
	targets=("$target")
else
	echo "fuzz: unknown target '$target' (${targets_all[*]} or all)" >&2
	exit 2
fi
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
	echo "fuzz: SECONDS wants a positive number, got '$seconds'" >&2
	exit 2
fi

dir=${WC_FUZZ_BUILD_DIR:-build-fuzz}
[[ "$dir" == /* ]] || dir=$root/$dir
jobs=${WC_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}

# The sources each target aims at, for --coverage.
declare -A aim=(
	[meta]="src/engine/meta.c src/engine/recover.c src/engine/inspect.c src/engine/cache.c
		src/engine/io.c src/engine/commit.c src/engine/writeback.c src/cli/cmd_inspect.c
		src/cli/json.c"
	[table]="src/engine/table.c src/cli/options.c"
	[control]="src/frontend/control.c"
)

# gcc --coverage build of the replay programs; replay; gcov summaries.
coverage_report() {
	local cov=$dir-cov t corpus src obj
	if ! cmake -S "$root" -B "$cov" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_COMPILER=gcc \
		-DCMAKE_C_FLAGS=--coverage -DWC_SANITIZE= >/dev/null ||
		! cmake --build "$cov" -j "$jobs" --target "${targets[@]/#/fuzz_}" >/dev/null; then
		echo "fuzz: coverage build failed" >&2
		return 1
	fi
	find "$cov" -name '*.gcda' -delete
	for t in "${targets[@]}"; do
		corpus=$dir/findings/$t/default/queue
		[[ -d "$corpus" ]] || corpus=$root/tests/fuzz/$t
		echo "fuzz: coverage of $t over $corpus ($(find "$corpus" -maxdepth 1 -type f | wc -l) inputs)"
		TMPDIR=${TMPDIR:-/dev/shm} "$cov/tests/fuzz/fuzz_$t" "$corpus" >/dev/null 2>&1 || {
			echo "fuzz: $t: an input of $corpus fails in the replay build" >&2
			return 1
		}
		for src in ${aim[$t]}; do
			obj=$(find "$cov" -name "$(basename "$src").gcda" | head -n 1)
			[[ -n "$obj" ]] || continue
			echo "  $src"
			# Functions as "name: NN% of M lines", then the file's total.
			(cd "$(dirname "$obj")" && gcov -n -f "$obj" 2>/dev/null) |
				awk -v want="$root/$src" '
					/^Function / { fn = $2; gsub(/\047/, "", fn); next }
					/^File / { file = $2; gsub(/\047/, "", file); next }
					/^Lines executed:/ {
						split($2, a, ":"); pct = a[2]
						if (fn != "") { printf "    %-28s %s of %s lines\n", fn, pct, $4; fn = "" }
						else if (file == want && !done++) { printf "    %-28s %s of %s lines\n", "(file)", pct, $4 }
					}'
		done
	done
}

if ((coverage)); then
	coverage_report
	exit $?
fi

for tool in afl-fuzz afl-clang-fast; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "fuzz: SKIP: $tool not found (Debian package afl++; scripts/install-deps.sh)"
		exit 77
	fi
done

if ((build)); then
	echo "fuzz: building $dir (afl-clang-fast, address,undefined)"
	# AFL_QUIET: afl-cc's banner on every compiler call drowns the build log.
	mkdir -p "$dir"
	AFL_QUIET=1 CC=afl-clang-fast cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DCMAKE_C_COMPILER=afl-clang-fast -DWC_SANITIZE=address,undefined -DWC_FUZZ_AFL=ON \
		>"$dir/configure.log" 2>&1 || {
		cat "$dir/configure.log" >&2
		echo "fuzz: configure failed" >&2
		exit 1
	}
	AFL_QUIET=1 cmake --build "$dir" -j "$jobs" \
		--target "${targets_all[@]/#/fuzz_}" || {
		echo "fuzz: build failed" >&2
		exit 1
	}
fi
((run)) || exit 0

# What lets afl-fuzz run as root on a shared machine without touching
# /proc/sys (core_pattern, CPU governor) or pinning a CPU another job uses.
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1
export AFL_NO_AFFINITY=1 AFL_FAST_CAL=1
# The harnesses' own files (the meta target writes its cache image each run).
if [[ -z "${TMPDIR:-}" && -d /dev/shm && -w /dev/shm ]]; then
	export TMPDIR=/dev/shm
fi

failed=0
for t in "${targets[@]}"; do
	bin=$dir/tests/fuzz/fuzz_$t
	out=$dir/findings/$t
	if [[ ! -x "$bin" ]]; then
		echo "fuzz: $bin missing (run without --no-build)" >&2
		exit 1
	fi
	dict=()
	[[ -f "$root/tests/fuzz/$t.dict" ]] && dict=(-x "$root/tests/fuzz/$t.dict")
	rm -rf "$out"
	mkdir -p "$out"
	echo "fuzz: $t for ${seconds}s: corpus tests/fuzz/$t, output $out"
	# -t: per-input limit; an input over it is a hang (a finding). 5 s leaves
	# room for ASan and a busy machine (the slowest seed runs in ~50 ms).
	nice -n 10 afl-fuzz -i "$root/tests/fuzz/$t" -o "$out" -t 5000 -V "$seconds" \
		"${dict[@]}" -- "$bin" >"$out/afl.log" 2>&1
	rc=$?
	stats=$out/default/fuzzer_stats
	if [[ ! -f "$stats" ]]; then
		tail -n 30 "$out/afl.log" >&2
		echo "fuzz: $t: afl-fuzz did not start (exit $rc); log $out/afl.log" >&2
		failed=1
		continue
	fi
	stat_of() { sed -n "s/^$1 *: *//p" "$stats"; }
	echo "fuzz: $t: $(stat_of execs_done) execs, $(stat_of execs_per_sec)/s," \
		"corpus $(stat_of corpus_count), edges $(stat_of edges_found)/$(stat_of total_edges)," \
		"crashes $(stat_of saved_crashes), hangs $(stat_of saved_hangs)"
	found=()
	for f in "$out"/default/crashes/* "$out"/default/hangs/*; do
		[[ -f "$f" && "${f##*/}" != README.txt ]] && found+=("$f")
	done
	if ((${#found[@]})); then
		failed=1
		echo "fuzz: $t: FOUND ${#found[@]} crashing or hanging input(s); replay one with" \
			"$bin FILE, or fuzz_$t FILE of a plain build"
		printf '  %s\n' "${found[@]}"
	elif ((rc != 0)); then
		failed=1
		tail -n 20 "$out/afl.log" >&2
		echo "fuzz: $t: afl-fuzz exited $rc" >&2
	fi
done
exit "$failed"
