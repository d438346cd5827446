#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Command-line surface of wcache: top-level and per-subcommand --help (exit
# 0, on stdout), usage errors (exit 2, a message naming the problem and a
# hint, on stderr, files untouched), and the man page: renders without
# warnings and documents every subcommand and option that --help lists.
source "$(dirname "$0")/functions.sh"
requires_wcache
tmpdir

truncate -s 1M cache.img
head -c 4M /dev/zero >origin.img
run_rc 0 "$WCACHE" format cache.img
snapshot cache.img origin.img

offline=(format check dump status export flush)

# --- top level ---
run_rc 2 "$WCACHE"
err_has '^Usage: wcache'
run_rc 0 "$WCACHE" --help
out_has '^Usage: wcache'
for c in "${offline[@]}" serve fuse message; do
	out_has "^  $c "
done
run_rc 0 "$WCACHE" help
out_has '^Usage: wcache'
run_rc 2 "$WCACHE" bogus
err_has "unknown command 'bogus'"
run_rc 2 "$WCACHE" --bogus check cache.img
err_has "unknown global option '--bogus'"
run_rc 2 "$WCACHE" help bogus
err_has "unknown command 'bogus'"

# --- per subcommand help ---
for c in "${offline[@]}"; do
	for h in --help -h; do
		run_rc 0 "$WCACHE" "$c" "$h"
		out_has "^Usage: wcache $c "
		out_has '^Exit status'
		[[ ! -s "$TMPD/err" ]] || fail "$c $h wrote to stderr"
	done
	run_rc 0 "$WCACHE" help "$c"
	out_has "^Usage: wcache $c "
	# --help wins wherever it appears, even after arguments.
	run_rc 0 "$WCACHE" "$c" cache.img --help
	out_has "^Usage: wcache $c "
done

# --- usage errors: exit 2, "wcache CMD: reason", a hint, no side effects ---
usage_err() {
	local re=$1 c=$2
	shift
	run_rc 2 "$WCACHE" "$@"
	err_has "^wcache $c: .*($re)"
	err_has "^Try 'wcache $c --help'"
	[[ ! -s "$TMPD/out" ]] || fail "usage error printed on stdout: $*"
}

usage_err 'missing CACHE' format
usage_err 'too many arguments' format cache.img origin.img
usage_err "8192 is invalid" format --block-size 8192 cache.img
usage_err "8192 is invalid" format -b8192 cache.img
usage_err "'abc' is not an unsigned decimal" format --block-size abc cache.img
usage_err "'-1' is not an unsigned decimal" format --start-sector -1 cache.img
usage_err "'0x10' is not an unsigned decimal" format --start-sector 0x10 cache.img
usage_err 'out of range' format --start-sector 99999999999999999999999 cache.img
usage_err "'--block-size' needs a value" format cache.img --block-size
usage_err "unknown or ambiguous option '--bogus'" format --bogus cache.img
usage_err "unknown option '-x'" format -x cache.img
usage_err "'--force' takes no value" format --force=yes cache.img

usage_err 'missing CACHE' check
usage_err 'too many arguments' check cache.img cache.img
usage_err "'--origin' needs a value" check cache.img --origin
usage_err "'x' is not an unsigned decimal" check --start-sector x cache.img
usage_err "'--quiet' takes no value" check --quiet=1 cache.img
run_rc 2 "$WCACHE" check --origin missing.img cache.img
err_has "origin: cannot open missing.img"

usage_err 'missing CACHE' dump
usage_err "'--json' takes no value" dump --json=1 cache.img
usage_err "unknown or ambiguous option '--jsn'" dump --jsn cache.img
usage_err 'too many arguments' dump cache.img x

usage_err 'missing CACHE' status
usage_err '--control takes no CACHE' status --control /nonexistent.sock cache.img
usage_err '--control takes no CACHE' status --control /nonexistent.sock -s 8

usage_err 'expected ORIGIN CACHE OUTPUT' export origin.img cache.img
usage_err 'too many arguments' export origin.img cache.img out.img x
usage_err '3000 is invalid' export --block-size 3000 origin.img cache.img out.img
usage_err 'OUTPUT: empty path' export origin.img cache.img ''
usage_err 'ORIGIN: empty path' export '' cache.img out.img
[[ ! -e out.img ]] || fail "a usage error created OUTPUT"

usage_err 'expected ORIGIN CACHE' flush cache.img
usage_err 'too many arguments' flush origin.img cache.img x
usage_err 'high_watermark: 101 is out of range' flush --high-watermark 101 origin.img cache.img
usage_err 'high_watermark 40 must be >= low_watermark 50' flush --high-watermark 40 \
	--low-watermark 50 origin.img cache.img
usage_err 'high_watermark 40 must be >= low_watermark 50' flush --high_watermark=40 \
	--low_watermark=50 origin.img cache.img
usage_err "autocommit_time: 'x' is not an unsigned decimal" flush --autocommit-time x origin.img cache.img
usage_err 'max_age: 86400001 is out of range' flush --max-age 86400001 origin.img cache.img
usage_err "'--cleaner' takes no value" flush --cleaner=1 origin.img cache.img
usage_err "unknown or ambiguous option '--fua'" flush --fua origin.img cache.img
usage_err 'CACHE: empty path' flush origin.img ''
assert_unchanged cache.img origin.img

# Valid table options are accepted (and the flush of a clean cache succeeds).
run_rc 0 "$WCACHE" flush --high-watermark 60 --low-watermark 50 --writeback-jobs 16 \
	--autocommit-blocks 8 --autocommit-time 100 --max-age 1000 --pause-writeback 0 --cleaner \
	--metadata-only --no-progress origin.img cache.img
out_has 'flushed 0 blocks'

# --- man page ---
man=$(dirname "$0")/../../docs/wcache.8
[[ -f "$man" ]] || fail "docs/wcache.8 is missing"
if command -v groff >/dev/null; then
	LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$man" 2>man.err || fail "groff failed on wcache.8"
	[[ ! -s man.err ]] || { cat man.err >&2; fail "groff warnings in wcache.8"; }
	# Rendered text with words hyphenated across lines joined again.
	LC_ALL=C.UTF-8 MANWIDTH=100 man -l "$man" 2>/dev/null | col -b |
		sed -e ':a' -e '/‐$/{N;s/‐\n *//;ba}' >man.txt
	for c in "${offline[@]}" serve fuse message; do
		grep -Eq "^ {3,}wcache $c\b" man.txt || fail "wcache.8 does not document '$c'"
	done
	# Every long option that a --help lists appears in the man page.
	for c in "${offline[@]}"; do
		"$WCACHE" "$c" --help | grep -Eo -- '--[a-z][a-z-]+' | sort -u | while read -r o; do
			grep -q -- "$o" man.txt || fail "wcache.8 does not mention $o (from wcache $c --help)"
		done
	done
else
	say "groff not installed: man page rendering not checked"
fi
say ok
