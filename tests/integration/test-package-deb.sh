#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# scripts/package-deb.sh (issue 17): the package of the build tree has the
# CLI, the plugin in nbdkit's plugin directory, compressed man pages, the
# systemd units, the completion and Debian's copyright/changelog; its
# Depends name the shared libraries and nbdkit, and apt can satisfy them on
# this machine (simulated). Installed with dpkg -i into a throwaway root
# (never this machine's): the installed wcache runs, 'man -w wcache' finds
# the page, 'nbdkit wcache' loads the plugin by name (its directory
# bind-mounted over nbdkit's in a private mount namespace), and dpkg -r
# removes every file again.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/functions.sh"
requires dpkg dpkg-deb dpkg-shlibdeps dpkg-architecture cmake nbdkit nbdinfo
requires_wcache
tmpdir
source "$here/nbd-functions.sh"	# NBDKIT: preloads the sanitizer runtimes when needed
src=$(cd "$here/../.." && pwd)

run_rc 0 "$src/scripts/package-deb.sh" --build-dir "$BUILD_DIR" --out "$TMPD"
deb=$(tail -1 "$TMPD/out")
version=$(sed -n 's/^project(wcache VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
assert_eq "$deb" "$TMPD/wcache_${version}-1_$(dpkg-architecture -qDEB_HOST_ARCH).deb" "package name"

run_rc 0 dpkg-deb --field "$deb" Package Version Depends
out_has '^Package: wcache$'
out_has "^Version: ${version}-1\$"
out_has '^Depends: .*libc6 .*libnbd0.*, nbdkit$'

plugindir=$(nbdkit --dump-config | sed -n 's/^plugindir=//p')
run_rc 0 dpkg-deb --contents "$deb"
for f in usr/bin/wcache "${plugindir#/}/nbdkit-wcache-plugin.so" usr/share/man/man8/wcache.8.gz \
	usr/share/man/man1/nbdkit-wcache-plugin.1.gz "usr/lib/systemd/system/wcache@.service" \
	"usr/lib/systemd/system/wcache@.socket" usr/share/bash-completion/completions/wcache \
	usr/share/doc/wcache/copyright usr/share/doc/wcache/changelog.Debian.gz \
	usr/share/doc/wcache/wcache-example.conf; do
	grep -q " \./$f\$" "$TMPD/out" || { cat "$TMPD/out" >&2; fail "package lacks $f"; }
done
grep -q ' root/root ' "$TMPD/out" || fail "files not owned by root in the package"

if command -v apt-get >/dev/null; then
	say "dependencies resolvable here (apt-get --simulate)"
	run_rc 0 apt-get --simulate install "$deb"
	out_has '^Inst wcache '
fi

say "dpkg -i into a throwaway root"
r=$TMPD/root
mkdir -p "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates" "$r/var/lib/dpkg/triggers"
touch "$r/var/lib/dpkg/status" "$r/var/lib/dpkg/available"
# --force-depends: the root's own database is empty (apt checked them above);
# chrootless scripts: the root has no shell (they skip work under DPKG_ROOT).
run_rc 0 dpkg --root="$r" --force-depends --force-script-chrootless --log=/dev/null -i "$deb"
run_rc 0 dpkg --root="$r" -s wcache
out_has '^Status: install ok installed$'
run_rc 0 "$r/usr/bin/wcache" --version
assert_eq "$(cat "$TMPD/out")" "wcache $version" "installed wcache --version"
if command -v man >/dev/null; then
	run_rc 0 env MANPATH="$r/usr/share/man" man -w wcache
	assert_eq "$(cat "$TMPD/out")" "$r/usr/share/man/man8/wcache.8.gz" "man -w wcache"
	run_rc 0 env MANPATH="$r/usr/share/man" man -w nbdkit-wcache-plugin
fi
if unshare -m true 2>/dev/null; then
	say "nbdkit wcache by name"
	truncate -s 4M origin.img
	truncate -s 2M cache.img
	# shellcheck disable=SC2016 # $uri expands in nbdkit's --run shell
	run_rc 0 unshare -m --propagation private sh -c \
		'mount --bind "$1" "$2" && shift 2 && exec "$@"' sh "$r$plugindir" "$plugindir" \
		"${NBDKIT[@]}" -U - wcache origin="$TMPD/origin.img" cache="$TMPD/cache.img" \
		--run 'nbdinfo --size "$uri"'
	out_has '^4194304$'
else
	say "unshare -m not permitted: 'nbdkit wcache' by name not checked"
fi

say "dpkg -r removes it"
run_rc 0 dpkg --root="$r" --force-script-chrootless --log=/dev/null -r wcache
left=$(find "$r/usr" -type f 2>/dev/null | head -5 || true)
[[ -z "$left" ]] || fail "files left after dpkg -r: $left"
say "ok"
