#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# bash completion for wcache (issue 17): the installed file registers
# _wcache for wcache (complete -p), and scripted completions (COMP_WORDS,
# COMP_CWORD, then the function, as bash calls it) offer the subcommands,
# each command's options, every table option of the library's one table
# (checked against 'wcache serve --help', generated from that table), the
# values of --format/--cache-io/--block-size, messages, and file paths.
source "$(dirname "$0")/functions.sh"
requires cmake
requires_wcache
tmpdir

run_rc 0 env DESTDIR="$TMPD/root" cmake --install "$BUILD_DIR" --prefix /usr
comp=$TMPD/root/usr/share/bash-completion/completions/wcache
[[ -f "$comp" ]] || fail "completion not installed at $comp"

# complete_words WORD...: what completing the last WORD offers, one per line.
complete_words() {
	bash --norc --noprofile -c '
		source "$1"; shift
		PATH=$(dirname "$WCACHE"):$PATH
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		_wcache wcache "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
		printf "%s\n" "${COMPREPLY[@]}"' _ "$comp" "$@"
}
# expect WANT WORD...: completing WORD... offers exactly WANT (space-separated, sorted).
expect() {
	local want=$1 got
	shift
	got=$(complete_words "$@" | sort | xargs)
	[[ "$got" == "$want" ]] || fail "completing '$*': got '$got', expected '$want'"
}
export WCACHE

out=$(bash --norc --noprofile -c 'source "$1"; complete -p wcache' _ "$comp")
assert_eq "$out" "complete -F _wcache wcache" "complete -p wcache"

expect "serve status" wcache s
expect "message metrics" wcache m
expect "top" wcache -v to
expect "--verbose --version" wcache --ver
expect "message metrics" wcache help me
expect "--high-watermark" wcache serve --hi
expect "--metrics-file --metrics-interval --metrics-listen" wcache serve --metrics
expect "--cleaner" wcache flush --clea
expect "--control" wcache top --cont
expect "auto no yes" wcache serve o c --format ""
expect "buffered" wcache fuse --cache-io b
expect "1024 2048 4096 512" wcache format --block-size ""
expect "flush flush_on_suspend" wcache message --control x.sock fl
# bash splits --opt=VALUE at '=' (COMP_WORDBREAKS): "--format" "=" "y".
expect "yes" wcache serve --format = y
# A value that is a number: nothing offered (not file names).
expect "" wcache serve --high-watermark ""

# Every table option of the library's table, for each command that takes them.
for c in serve flush fuse; do
	"$WCACHE" "$c" --help | sed -n '/^Table options/,/^$/p' | grep -o -- '--[a-z-]*' | sort >want.txt
	[[ -s want.txt ]] || fail "no table options in '$c --help'"
	complete_words wcache "$c" -- | sort >got.txt
	comm -23 want.txt got.txt >missing.txt
	[[ ! -s missing.txt ]] || fail "completion of '$c --' lacks $(xargs <missing.txt)"
done

# File paths for positional arguments and path options.
mkdir dir
touch dir/origin.img dir/cache.img
expect "dir/cache.img" wcache check dir/ca
expect "dir/origin.img" wcache serve --control dir/or
expect "--metrics-file=dir/cache.img" wcache serve --metrics-file=dir/c
say "ok"
