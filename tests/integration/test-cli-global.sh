#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Global options of wcache: --version and -V print "wcache VERSION" (the
# project version of CMakeLists.txt) and exit 0, before a command or after
# it; -v/--verbose after a command works as before it (here: the library's
# recovery report on stderr), except where the command has an option of that
# name: serve's -v and --verbose stay nbdkit's -v. The man page documents
# them.
source "$(dirname "$0")/functions.sh"
requires_wcache
writer=$(requires_helper wctest-write)
tmpdir

src=$(cd "$(dirname "$0")/../.." && pwd)
version=$(sed -n 's/^project(wcache VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
[[ -n "$version" ]] || fail "no project version in CMakeLists.txt"

# --- version ---
for args in "--version" "-V" "-v --version" "check --version" "dump -V" "serve --version" \
	"flush -V origin.img"; do
	# shellcheck disable=SC2086 # word splitting wanted
	run_rc 0 "$WCACHE" $args
	[[ "$(cat "$TMPD/out")" == "wcache $version" ]] || fail "wcache $args printed '$(cat "$TMPD/out")'"
	[[ ! -s "$TMPD/err" ]] || fail "wcache $args wrote to stderr"
done
run_rc 0 "$WCACHE" --help
out_has '^  -V, --version '
run_rc 2 "$WCACHE" check --version=1 cache.img
err_has "'--version' takes no value"

# --- verbose: a cache whose 3 entries recovery resets (superblock seq_count 0) ---
MiB=1048576
head -c $((4 * MiB)) /dev/urandom >origin.img
truncate -s $MiB cache.img
run_rc 0 "$WCACHE" format cache.img
for b in 1 7 9; do
	head -c 4096 /dev/urandom >"blk$b"
	blocks+=("$((b * 4096)):blk$b")
done
run_rc 0 "$writer" origin.img cache.img "${blocks[@]}"
poke_le cache.img 24 8 0
report='^wcache: info: recovery: 3 uncommitted entries reset'

run_rc 0 "$WCACHE" export origin.img cache.img out.img
if grep -Eq "$report" "$TMPD/err"; then
	fail "the recovery report was printed without -v"
fi
for args in "-v export" "--verbose export" "export -v" "export --verbose" "export --no-progress -v"; do
	# shellcheck disable=SC2086 # word splitting wanted
	run_rc 0 "$WCACHE" $args origin.img cache.img out.img
	err_has "$report"
done
run_rc 0 "$WCACHE" export origin.img cache.img out.img -v
err_has "$report"
# check takes it too (the example of the man page).
run_rc 0 "$WCACHE" check -v cache.img
out_has '^uncommitted: 3$'
run_rc 2 "$WCACHE" check --verbose=yes cache.img
err_has "'--verbose' takes no value"

# --- serve: -v and --verbose are its own (nbdkit -v), before or after ---
for args in "serve -v" "serve --verbose" "-v serve"; do
	# shellcheck disable=SC2086 # word splitting wanted
	run_rc 0 "$WCACHE" $args --dry-run origin.img cache.img
	out_has '^nbdkit -f -v '
done
run_rc 0 "$WCACHE" serve --dry-run origin.img cache.img
if grep -q ' -v ' "$TMPD/out"; then
	fail "serve without -v runs nbdkit -v"
fi

# --- man page ---
man=$src/docs/wcache.8
if command -v man >/dev/null; then
	LC_ALL=C.UTF-8 MANWIDTH=100 man -l "$man" 2>/dev/null | col -b >man.txt
	grep -q -- '-V, --version' man.txt || fail "wcache.8 does not document -V, --version"
	grep -q 'wcache --version' man.txt || fail "wcache.8 synopsis lacks wcache --version"
else
	say "man not installed: man page not checked"
fi
say ok
