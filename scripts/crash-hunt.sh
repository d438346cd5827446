#!/bin/sh
# SPDX-License-Identifier: MIT
# Hunt for crash-consistency bugs: run the crash-point, concurrent and
# asynchronous power-cut tests with fresh random seeds until MINUTES have
# passed or one fails; the crash-point and concurrent tests run every other
# time on asynchronous devices (WC_CRASH_ASYNC, random). The failing run's output
# (with its replay line) is kept in $OUT/fail-*.log. Not part of the test
# command; CI replays a fixed seed.
#
# Usage: scripts/crash-hunt.sh [MINUTES] [BUILD_DIR]   (defaults: 10, build)
set -eu

minutes=${1:-10}
build=${2:-build}
out=${OUT:-/tmp/wcache-crash-hunt}
case $minutes in
'' | *[!0-9]*)
	echo "crash-hunt: MINUTES must be a whole number, got '$minutes'" >&2
	exit 2
	;;
esac
for t in test_crash_points test_crash_concurrent test_crash_async; do
	if [ ! -x "$build/tests/crash/$t" ]; then
		echo "crash-hunt: $build/tests/crash/$t not found; build first (scripts/build.sh)" >&2
		exit 2
	fi
done
mkdir -p "$out"
end=$(($(date +%s) + minutes * 60))
runs=0
while [ "$(date +%s)" -lt "$end" ]; do
	for t in test_crash_points test_crash_concurrent test_crash_async; do
		runs=$((runs + 1))
		log="$out/run.log"
		async=0
		: >"$log"
		if [ "$t" != test_crash_async ] && [ $((runs % 2)) -eq 0 ]; then
			async=$(($(od -An -N4 -tu4 /dev/urandom) + 1))
			echo "WC_CRASH_ASYNC=$async" >"$log"
		fi
		if ! env -u WC_CRASH_SEED WC_CRASH_ASYNC="$async" "$build/tests/crash/$t" >>"$log" 2>&1; then
			keep="$out/fail-$t-$(date +%s).log"
			mv "$log" "$keep"
			echo "crash-hunt: $t FAILED after $runs runs; output in $keep" >&2
			grep -m3 'replay:' "$keep" >&2 || tail -5 "$keep" >&2
			exit 1
		fi
		printf 'crash-hunt: run %d %s: %s\n' "$runs" "$t" "$(tail -1 "$log" | cut -c1-150)"
	done
done
echo "crash-hunt: $runs runs in $minutes min, no failure"
