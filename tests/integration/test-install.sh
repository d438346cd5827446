#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# What 'cmake --install' of the build tree gives a user: the wcache command,
# the nbdkit plugin, both man pages, the systemd units with an example
# configuration and the bash completion, all under the install prefix.
#  1. DESTDIR=ROOT --prefix /usr (what a package does): the plugin lands in
#     ROOT + nbdkit's own plugin directory (nbdkit --dump-config plugindir),
#     i.e. a real install into /usr puts it where 'nbdkit wcache' finds it.
#  2. --prefix PREFIX (no DESTDIR): nothing outside PREFIX; the installed
#     wcache runs (--version), its man page renders, the installed plugin
#     loads in nbdkit (--dump-plugin) and serves a small origin + cache, and
#     the installed 'wcache serve' finds that plugin by itself.
#  3. 'nbdkit wcache origin=... cache=...' by name: in a private mount
#     namespace the plugin directory of (1) is bind-mounted over nbdkit's,
#     the only directory nbdkit searches (skipped where unshare -m is not
#     permitted). Nothing is ever written outside $TMPD.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/functions.sh"
requires cmake nbdkit nbdinfo
requires_wcache
tmpdir
source "$here/nbd-functions.sh"

src=$(cd "$here/../.." && pwd)
version=$(sed -n 's/^project(wcache VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
plugindir=$(nbdkit --dump-config | sed -n 's/^plugindir=//p')
[[ "$plugindir" = /* ]] || fail "nbdkit --dump-config has no plugindir"
so=nbdkit-wcache-plugin.so

# installed_files DIR: every file below DIR, relative, sorted.
installed_files() {
	(cd "$1" && find . -type f -o -type l | sed 's|^\./||' | sort)
}

# --- 1. a package's install: DESTDIR + --prefix /usr ---
run_rc 0 env DESTDIR="$TMPD/root" cmake --install "$BUILD_DIR" --prefix /usr
installed_files root >root.txt
expected=(usr/bin/wcache "usr/share/man/man8/wcache.8" "usr/share/man/man1/nbdkit-wcache-plugin.1"
	"${plugindir#/}/$so" "usr/lib/systemd/system/wcache@.service"
	"usr/lib/systemd/system/wcache@.socket" usr/share/doc/wcache/wcache-example.conf
	usr/share/bash-completion/completions/wcache)
for f in "${expected[@]}"; do
	grep -qxF "$f" root.txt || { cat root.txt >&2; fail "DESTDIR install lacks $f"; }
done
[[ $(wc -l <root.txt) = "${#expected[@]}" ]] ||
	{ cat root.txt >&2; fail "DESTDIR install has unexpected files"; }
# The unit runs the wcache of this install.
grep -q '^ExecStart=/usr/bin/wcache serve ' root/usr/lib/systemd/system/wcache@.service ||
	fail "the installed unit does not run /usr/bin/wcache"

# --- 2. --prefix PREFIX ---
plugindir_cfg=$(sed -n 's/^WC_NBDKIT_PLUGINDIR:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt")
if [[ "$plugindir_cfg" = /* ]]; then
	# An explicit absolute plugin directory would not follow --prefix: never
	# install outside $TMPD.
	say "WC_NBDKIT_PLUGINDIR=$plugindir_cfg is absolute: --prefix install not checked"
else
	prefix=$TMPD/prefix
	run_rc 0 cmake --install "$BUILD_DIR" --prefix "$prefix"
	installed_files prefix >prefix.txt
	plugin=$prefix/$plugindir_cfg/$so
	for f in bin/wcache share/man/man8/wcache.8 share/man/man1/nbdkit-wcache-plugin.1 \
		"$plugindir_cfg/$so"; do
		grep -qxF "$f" prefix.txt || { cat prefix.txt >&2; fail "--prefix install lacks $f"; }
	done

	say "the installed wcache runs"
	run_rc 0 "$prefix/bin/wcache" --version
	[[ "$(cat "$TMPD/out")" = "wcache $version" ]] || fail "installed wcache --version: $(cat "$TMPD/out")"
	run_rc 0 "$prefix/bin/wcache" --help
	out_has '^Usage: wcache'

	say "the installed man pages render"
	if command -v man >/dev/null && command -v groff >/dev/null; then
		for page in man8/wcache.8 man1/nbdkit-wcache-plugin.1; do
			LC_ALL=C.UTF-8 groff -man -Tutf8 -ww -z "$prefix/share/man/$page" 2>man.err ||
				fail "groff failed on the installed $page"
			[[ ! -s man.err ]] || { cat man.err >&2; fail "groff warnings in the installed $page"; }
		done
		run_rc 0 env LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$prefix/share/man/man8/wcache.8"
		out_has '^ +wcache format'
		# man-db's own lookup in the installed tree (MANPATH replaces the search path).
		run_rc 0 env LC_ALL=C.UTF-8 MANWIDTH=80 MANPATH="$prefix/share/man" man 8 wcache
		out_has '^ +wcache --version'
		run_rc 0 env LC_ALL=C.UTF-8 MANWIDTH=80 MANPATH="$prefix/share/man" man nbdkit-wcache-plugin
		out_has 'nbdkit-wcache-plugin'
	else
		say "man or groff not installed: man pages not rendered"
	fi

	say "the installed plugin loads and serves"
	run_rc 0 "${NBDKIT[@]}" --dump-plugin "$plugin"
	out_has '^name=wcache$'
	# 32 MiB is the largest request, not a block size (issue 16, item 8).
	out_has '^wcache_max_request_bytes=33554432$'
	out_has '^wcache_cache_block_sizes=512,1024,2048,4096$'
	! grep -q '^wcache_block_size_max=' "$TMPD/out" ||
		fail "--dump-plugin still calls the request size a block size"
	truncate -s 8M origin.img
	truncate -s 2M cache.img
	# shellcheck disable=SC2016 # $uri expands in the --run shell
	run_rc 0 "${NBDKIT[@]}" -U - "$plugin" origin=origin.img cache=cache.img \
		--run 'nbdinfo --size "$uri"'
	out_has '^8388608$'
	if command -v qemu-io >/dev/null; then
		# (qemu-io hangs with the sanitizer runtimes preloaded for nbdkit.)
		# shellcheck disable=SC2016
		run_rc 0 "${NBDKIT[@]}" -U - "$plugin" origin=origin.img cache=cache.img \
			--run 'env -u LD_PRELOAD qemu-io -f raw "$uri" -c "write -P 0x5a 4096 8192" -c "flush" \
				-c "read -P 0x5a 4096 8192"'
		run_rc 1 "$prefix/bin/wcache" check cache.img
		out_has '^valid: 2$'
	fi

	say "the installed wcache serve finds the installed plugin"
	run_rc 0 env -u WCACHE_NBDKIT_PLUGIN "$prefix/bin/wcache" serve --dry-run origin.img cache.img
	out_has "^nbdkit -f $plugin origin=origin.img cache=cache.img\$"
fi

# --- 3. by name, as after a real install into /usr ---
if unshare -m true 2>/dev/null; then
	say "nbdkit wcache by name"
	truncate -s 4M origin2.img
	truncate -s 2M cache2.img
	# shellcheck disable=SC2016 # expands in the inner shell
	run_rc 0 unshare -m --propagation private sh -c \
		'mount --bind "$1" "$2" && shift 2 && exec "$@"' sh "$TMPD/root$plugindir" "$plugindir" \
		"${NBDKIT[@]}" -U - wcache origin="$TMPD/origin2.img" cache="$TMPD/cache2.img" \
		--run 'nbdinfo --size "$uri"'
	out_has '^4194304$'
else
	say "unshare -m not permitted: 'nbdkit wcache' by name not checked"
fi
say ok
