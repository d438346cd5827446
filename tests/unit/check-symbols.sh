#!/bin/bash
# SPDX-License-Identifier: MIT
# What the libraries export (the project's stand-in for a linker version
# script): every global symbol defined in the static engine and common
# libraries is either wc_-prefixed (internal) or a wcache_* function declared
# WC_API in include/wcache.h, and the nbdkit plugin exports plugin_init only
# (plus the linker's own _init/_fini/_edata/_end/__bss_start if present).
# A generic name such as `commit` or `set_error` in a static library clashes
# with whatever else a program links; this test keeps them from coming back.
#
# Usage: check-symbols.sh NM WCACHE_H PLUGIN_SO LIB.a...
set -euo pipefail

if [ $# -lt 4 ]; then
	echo "usage: $0 NM WCACHE_H PLUGIN_SO LIB.a..." >&2
	exit 2
fi
nm=$1 header=$2 plugin=$3
shift 3

public=$(grep -oE '^WC_API[^(]*[^a-z0-9_]wcache_[a-z0-9_]+\(' "$header" |
	 grep -oE 'wcache_[a-z0-9_]+' | sort -u || true)
if [ -z "$public" ]; then
	echo "FAIL: no WC_API wcache_* declarations found in $header" >&2
	exit 1
fi

fail=0
for lib in "$@"; do
	n=0
	# Defined globals: "address type name"; archive member headers have one field.
	syms=$("$nm" -g --defined-only "$lib" | awk 'NF == 3 { print $3 }')
	for sym in $syms; do
		n=$((n + 1))
		# ASan's ODR indicator of a global variable follows the variable's rules.
		sym=${sym#__odr_asan.}
		case $sym in
		wc_*) ;;
		wcache_*)
			if ! grep -qx "$sym" <<<"$public"; then
				echo "FAIL: $lib: $sym is not declared WC_API in $(basename "$header")"
				fail=1
			fi
			;;
		*)
			echo "FAIL: $lib: global symbol '$sym' has no wc_ prefix (make it static or prefix it)"
			fail=1
			;;
		esac
	done
	echo "$(basename "$lib"): $n global symbols checked"
done

exported=$("$nm" -D --defined-only "$plugin" | awk '{ print $NF }')
for sym in $exported; do
	case $sym in
	plugin_init | _init | _fini | _edata | _end | __bss_start) ;;
	*)
		echo "FAIL: $plugin exports '$sym' (only plugin_init may leave the plugin)"
		fail=1
		;;
	esac
done
if ! grep -qx plugin_init <<<"$exported"; then
	echo "FAIL: $plugin does not export plugin_init"
	fail=1
fi
echo "$(basename "$plugin"): exports $(echo "$exported" | tr '\n' ' ')"
exit $fail
