#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The test command: install missing packages, build plain and ASan+UBSan
# trees, run every CTest test in both (and the unit label under TSan),
# print a summary, exit non-zero on any failure.
#
# Usage: scripts/test.sh [--quick]
#   --quick  only the plain build and its "unit" label
# Environment: CTEST_PARALLEL_LEVEL (ctest jobs, default 1), WC_SKIP_DEPS=1,
#   WC_BUILD_DIR, WC_ASAN_BUILD_DIR, WC_RELEASE_BUILD_DIR (compiled with -O3,
#   not tested), WC_CLANG_BUILD_DIR (compiled with clang, not tested),
#   WC_TSAN_BUILD_DIR (ThreadSanitizer, unit label),
#   WC_CMAKE_ARGS (see scripts/build.sh).
# Tests run in the ASan tree see WC_SANITIZE=address,undefined in their
# environment (e.g. to LD_PRELOAD libasan before loading a plugin into nbdkit).
# The sanitizer tree skips the labels kernel, vm, bench, ceph and fuzz: they
# drive whole VMs, measure speed, run a Ceph cluster per test (~0.5 GB,
# uninstrumented librbd threads in a preloaded nbdkit) or build their own ASan
# tree (scripts/fuzz.sh), and the plain tree already runs them.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 1

quick=0
case "${1:-}" in
"") ;;
--quick) quick=1 ;;
-h | --help)
	sed -n '3,18s/^# \{0,1\}//p' "$0"
	exit 0
	;;
*)
	echo "test: unknown argument '$1' (try --help)" >&2
	exit 2
	;;
esac

build_dir=${WC_BUILD_DIR:-build}
asan_dir=${WC_ASAN_BUILD_DIR:-build-asan}
release_dir=${WC_RELEASE_BUILD_DIR:-build-release}
clang_dir=${WC_CLANG_BUILD_DIR:-build-clang}
tsan_dir=${WC_TSAN_BUILD_DIR:-build-tsan}
results=()
failed=0

# step NAME CMD...: run CMD, record PASS/FAIL and how long it took.
step() {
	local name=$1 start=$SECONDS rc
	shift
	echo
	echo "==== $name"
	"$@"
	rc=$?
	if ((rc == 0)); then
		results+=("PASS  $(printf '%4ds' $((SECONDS - start)))  $name")
	else
		results+=("FAIL  $(printf '%4ds' $((SECONDS - start)))  $name (exit $rc)")
		failed=1
	fi
	return "$rc"
}

skip() {
	results+=("SKIP         $1")
	failed=1
}

run_ctest() {
	local dir=$1
	shift
	ctest --test-dir "$root/$dir" --output-on-failure --no-tests=error "$@"
}

run_ctest_asan() {
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		WC_SANITIZE=address,undefined \
		run_ctest "$asan_dir" -LE '^(kernel|vm|bench|ceph|fuzz)$'
}

step "install-deps" "$root/scripts/install-deps.sh"

if step "build $build_dir" "$root/scripts/build.sh" --no-deps; then
	if ((quick)); then
		step "ctest -L unit ($build_dir)" run_ctest "$build_dir" -L unit
	else
		step "ctest ($build_dir)" run_ctest "$build_dir"
	fi
else
	skip "ctest ($build_dir): build failed"
fi

# A Release build (-O3) finds warnings the default -O2 build does not
# (-Werror: e.g. maybe-uninitialized); it is compiled only, not tested.
release_build() {
	cmake -S "$root" -B "$root/$release_dir" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
		cmake --build "$root/$release_dir" -j "$(nproc 2>/dev/null || echo 2)"
}

# clang warns where gcc does not (-Wformat-nonliteral under -Wformat=2, ...),
# and the fuzz build (scripts/fuzz.sh, afl-clang-fast) is clang: compile the
# whole tree with it so that neither rots. Compiled only, not tested.
clang_build() {
	cmake -S "$root" -B "$root/$clang_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DCMAKE_C_COMPILER=clang >/dev/null &&
		cmake --build "$root/$clang_dir" -j "$(nproc 2>/dev/null || echo 2)"
}

# ThreadSanitizer over the unit label: the engine's threads, the
# asynchronous devices and the full-cache waiters (a few minutes).
tsan_build() {
	cmake -S "$root" -B "$root/$tsan_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DWC_SANITIZE=thread >/dev/null &&
		cmake --build "$root/$tsan_dir" -j "$(nproc 2>/dev/null || echo 2)"
}

run_ctest_tsan() {
	TSAN_OPTIONS=halt_on_error=1 WC_SANITIZE=thread run_ctest "$tsan_dir" -L unit
}

if ((!quick)); then
	step "build $release_dir (Release, compile only)" release_build
	if command -v clang >/dev/null 2>&1; then
		step "build $clang_dir (clang, compile only)" clang_build
	else
		skip "build $clang_dir: clang is not installed (scripts/install-deps.sh installs it)"
	fi
	if step "build $asan_dir (address,undefined)" "$root/scripts/build.sh" --no-deps --asan-only; then
		step "ctest ($asan_dir)" run_ctest_asan
	else
		skip "ctest ($asan_dir): build failed"
	fi
	if step "build $tsan_dir (thread)" tsan_build; then
		step "ctest -L unit ($tsan_dir)" run_ctest_tsan
	else
		skip "ctest ($tsan_dir): build failed"
	fi
fi

echo
echo "==== summary"
printf '%s\n' "${results[@]}"
if ((failed)); then
	echo "test: FAILED"
	exit 1
fi
echo "test: all passed"
