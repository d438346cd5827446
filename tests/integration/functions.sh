# SPDX-License-Identifier: MIT
# Shared helpers for tests/integration/test-*.sh (source it; bash only).
# Gives: say/fail/skip (from tests/lib/functions.sh), requires (skip with
# 77), a private temp dir removed on exit plus cleanup_fn hooks, assert
# helpers, sha256 helpers, little-endian pokes for crafting metadata, and
# kernel sample decompression.
#
# Environment (set by CTest, see CMakeLists.txt): WCACHE = the wcache binary,
# BUILD_DIR = the build tree, WC_HELPER_DIR = compiled test helpers.
# WC_SAMPLES_DIR (default /work/shared/samples), WC_KEEP_TMP=1 keeps $TMPD.

set -euo pipefail

TEST_NAME=$(basename "$0" .sh)
_src_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${BUILD_DIR:=$(cd "$_src_dir/../.." && pwd)/build}"
: "${WCACHE:=$BUILD_DIR/wcache}"
: "${WC_HELPER_DIR:=$BUILD_DIR/tests/integration}"
: "${WC_SAMPLES_DIR:=/work/shared/samples}"
# Tests cd into their temp dir: make relative paths absolute now.
[[ "$WCACHE" = /* ]] || WCACHE=$PWD/$WCACHE
[[ "$WC_HELPER_DIR" = /* ]] || WC_HELPER_DIR=$PWD/$WC_HELPER_DIR
[[ "$WC_SAMPLES_DIR" = /* ]] || WC_SAMPLES_DIR=$PWD/$WC_SAMPLES_DIR

# ---------------- messages and skipping ----------------

# say, fail, skip
# shellcheck source=../lib/functions.sh
source "$_src_dir/../lib/functions.sh"

# requires CMD...: skip (exit 77) unless every command is installed.
requires() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 ||
			skip "requires '$c', which is not installed"
	done
}

# requires_wcache: the binary under test must exist (a missing binary is a failure).
requires_wcache() {
	[[ -x "$WCACHE" ]] || fail "WCACHE=$WCACHE is not an executable (build first)"
}

# requires_pmem: skip unless this build has pmem mode (libpmem2); call after tmpdir.
# WCACHE_SERVE: the command 'wcache serve'. It runs nbdkit, which loads the
# plugin: an ASan plugin needs its runtimes preloaded into the uninstrumented
# nbdkit (nbd-functions.sh does the same for nbdkit itself).
WCACHE_SERVE=("${WCACHE:-wcache}" serve)
if [[ "${WC_SANITIZE:-}" == *address* ]]; then
	WCACHE_SERVE=(env "LD_PRELOAD=$(cc -print-file-name=libasan.so) $(cc -print-file-name=libubsan.so)"
		"ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" "${WCACHE:-wcache}" serve)
fi

requires_pmem() {
	truncate -s 1M "$TMPD/.pmem-o" "$TMPD/.pmem-c"
	if ! "${WCACHE_SERVE[@]}" --mode p "$TMPD/.pmem-o" "$TMPD/.pmem-c" --run true \
		>"$TMPD/.pmem-probe" 2>&1; then
		grep -q 'not supported by this build' "$TMPD/.pmem-probe" &&
			skip "this build has no pmem mode (libpmem2)"
		cat "$TMPD/.pmem-probe" >&2
		fail "wcache serve --mode p does not start"
	fi
	rm -f "$TMPD"/.pmem-*
}

# requires_helper NAME: path of a compiled helper in WC_HELPER_DIR, or fail.
requires_helper() {
	local h="$WC_HELPER_DIR/$1"
	[[ -x "$h" ]] || fail "test helper $h is missing (build the tree first)"
	echo "$h"
}

# ---------------- temp dir and cleanup ----------------

_cleanup_cmds=()

# cleanup_fn CMD [ARGS...]: run at exit, most recent first (before $TMPD goes).
cleanup_fn() {
	local q
	printf -v q '%q ' "$@"
	_cleanup_cmds+=("$q")
}

_run_cleanup() {
	local rc=$? i
	set +e
	for ((i = ${#_cleanup_cmds[@]} - 1; i >= 0; i--)); do
		eval "${_cleanup_cmds[i]}"
	done
	if [[ -n "${TMPD:-}" && -d "$TMPD" ]]; then
		if [[ "${WC_KEEP_TMP:-0}" = 1 || ($rc -ne 0 && $rc -ne 77 && "${WC_KEEP_TMP:-}" = fail) ]]; then
			echo "$TEST_NAME: keeping $TMPD" >&2
		else
			rm -rf "$TMPD"
		fi
	fi
	exit "$rc"
}

# tmpdir: create $TMPD (removed at exit) and cd into it.
tmpdir() {
	TMPD=$(mktemp -d "${TMPDIR:-/tmp}/wcache-$TEST_NAME.XXXXXX")
	trap _run_cleanup EXIT
	trap 'exit 130' INT TERM
	cd "$TMPD"
}

# ---------------- running commands ----------------

# run_rc EXPECTED CMD...: run CMD with stdout/stderr in $TMPD/out and $TMPD/err;
# fail unless it exits with EXPECTED (a number, or "nonzero"). A signal
# (exit >= 128) or a sanitizer report always fails: nothing may crash.
run_rc() {
	local want=$1 rc=0
	shift
	"$@" >"$TMPD/out" 2>"$TMPD/err" || rc=$?
	if ((rc >= 128)) || grep -Eq 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$TMPD/err"; then
		cat "$TMPD/err" >&2
		fail "crashed or sanitizer report (exit $rc): $*"
	fi
	if [[ "$want" = nonzero && $rc -ne 0 ]] || [[ "$want" = "$rc" ]]; then
		return 0
	fi
	echo "--- stdout:" >&2
	cat "$TMPD/out" >&2
	echo "--- stderr:" >&2
	cat "$TMPD/err" >&2
	fail "expected exit $want, got $rc: $*"
}

# err_has REGEX: the last run_rc's stderr matches (grep -E).
err_has() {
	grep -Eq -- "$1" "$TMPD/err" || {
		cat "$TMPD/err" >&2
		fail "stderr does not match /$1/"
	}
}

# out_has REGEX: the last run_rc's stdout matches.
out_has() {
	grep -Eq -- "$1" "$TMPD/out" || {
		cat "$TMPD/out" >&2
		fail "stdout does not match /$1/"
	}
}

# assert_eq ACTUAL EXPECTED WHAT
assert_eq() {
	[[ "$1" == "$2" ]] || fail "$3: got '$1', expected '$2'"
}

# ---------------- checksums ----------------

# sha256 FILE: the hex digest only.
sha256() {
	local s
	s=$(sha256sum -- "$1") || fail "sha256sum $1"
	echo "${s%% *}"
}

# sha256_range FILE OFFSET LEN: digest of LEN bytes at OFFSET.
sha256_range() {
	local s
	s=$(dd if="$1" iflag=skip_bytes,count_bytes skip="$2" count="$3" bs=1M status=none |
		sha256sum) || fail "sha256_range $*"
	echo "${s%% *}"
}

# _state PATH: content digest of a file, a listing digest of a directory, or "absent".
_state() {
	if [[ -d "$1" ]]; then
		echo "dir:$(find "$1" -printf '%P %s %T@\n' | sort | sha256sum)"
	elif [[ -e "$1" || -L "$1" ]]; then
		sha256 "$1"
	else
		echo absent
	fi
}

# snapshot PATH...: remember states; assert_unchanged PATH... compares later.
declare -A _snap
snapshot() {
	local f
	for f in "$@"; do _snap[$f]=$(_state "$f"); done
}

assert_unchanged() {
	local f
	for f in "$@"; do
		[[ -n "${_snap[$f]:-}" ]] || fail "assert_unchanged $f: no snapshot"
		[[ "$(_state "$f")" = "${_snap[$f]}" ]] || fail "$f was modified (or created)"
	done
}

# ---------------- crafting bytes ----------------

# le_bytes VALUE N: N little-endian bytes of VALUE (decimal, < 2^63) on stdout.
le_bytes() {
	local v=$1 n=$2 i
	[[ "$v" =~ ^[0-9]+$ && "$n" =~ ^[1-8]$ ]] || fail "le_bytes: bad value '$v' or width '$n'"
	for ((i = 0; i < n; i++)); do
		# shellcheck disable=SC2059
		printf "\\x$(printf %02x $(((v >> (8 * i)) & 255)))"
	done
}

# poke_le FILE OFFSET NBYTES VALUE: overwrite NBYTES at OFFSET in place.
poke_le() {
	le_bytes "$4" "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none ||
		fail "poke_le $*"
}

# peek_le FILE OFFSET NBYTES: read an unsigned little-endian value (NBYTES <= 8).
peek_le() {
	od -A n -t "u$3" -j "$2" -N "$3" --endian=little -- "$1" | tr -d ' '
}

# ---------------- kernel samples ----------------

# samples: names of the sample sets (directories with a manifest.json).
samples() {
	local d
	[[ -d "$WC_SAMPLES_DIR" ]] || skip "no samples in WC_SAMPLES_DIR=$WC_SAMPLES_DIR"
	for d in "$WC_SAMPLES_DIR"/*/; do
		[[ -f "$d/manifest.json" ]] && basename "$d"
	done
}

# manifest NAME JQ_FILTER: a value from the sample's manifest.json (raw).
manifest() {
	jq -er "$2" "$WC_SAMPLES_DIR/$1/manifest.json" || fail "manifest $1: $2"
}

# decompress_sample NAME DIR: DIR/origin.img and DIR/cache.img from the .zst files.
decompress_sample() {
	local f
	mkdir -p "$2"
	for f in origin cache; do
		zstd -dqf "$WC_SAMPLES_DIR/$1/$f.img.zst" -o "$2/$f.img" ||
			fail "cannot decompress $1/$f.img.zst"
	done
}
