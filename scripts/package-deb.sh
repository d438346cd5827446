#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build a Debian package, wcache_VERSION-1_ARCH.deb, from 'cmake --install'
# of a build tree into a staging root (--prefix /usr): the wcache command,
# the nbdkit plugin in nbdkit's plugin directory ('nbdkit wcache' by name),
# the man pages, the systemd units and example configuration, and the bash
# completion. Depends: from dpkg-shlibdeps on the binaries, plus nbdkit.
#
# Usage: scripts/package-deb.sh [--build-dir DIR] [--out DIR]
#   --build-dir DIR  package this configured and built tree (default: build
#                    build-deb/ as Release, without tests)
#   --out DIR        where the .deb goes (default: the current directory)
# Prints the path of the package on the last line.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=
out_dir=$PWD

while (($#)); do
	case "$1" in
	--build-dir)
		[[ $# -ge 2 ]] || { echo "package-deb: --build-dir needs a directory" >&2; exit 2; }
		build_dir=$2
		shift
		;;
	--out)
		[[ $# -ge 2 ]] || { echo "package-deb: --out needs a directory" >&2; exit 2; }
		out_dir=$2
		shift
		;;
	-h | --help)
		sed -n '3,13s/^# \{0,1\}//p' "$0"
		exit 0
		;;
	*)
		echo "package-deb: unknown argument '$1' (try --help)" >&2
		exit 2
		;;
	esac
	shift
done

for t in dpkg-deb dpkg-shlibdeps dpkg-architecture cmake gzip; do
	command -v "$t" >/dev/null ||
		{ echo "package-deb: $t not found (apt-get install dpkg-dev cmake)" >&2; exit 1; }
done
[[ -d "$out_dir" ]] || { echo "package-deb: --out $out_dir is not a directory" >&2; exit 1; }
out_dir=$(cd "$out_dir" && pwd)

if [[ -z "$build_dir" ]]; then
	build_dir=$root/build-deb
	cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release -DWC_BUILD_TESTS=OFF >/dev/null
	cmake --build "$build_dir" -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
fi
[[ -f "$build_dir/CMakeCache.txt" ]] ||
	{ echo "package-deb: $build_dir is not a configured build tree" >&2; exit 1; }
build_dir=$(cd "$build_dir" && pwd)

version=$(sed -n 's/^project(wcache VERSION \([0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
[[ -n "$version" ]] || { echo "package-deb: no version in CMakeLists.txt" >&2; exit 1; }
debversion=$version-1
arch=$(dpkg-architecture -qDEB_HOST_ARCH)

work=$(mktemp -d "${TMPDIR:-/tmp}/wcache-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage=$work/stage

DESTDIR=$stage cmake --install "$build_dir" --prefix /usr >/dev/null
# Debian policy: compressed man pages, a copyright file, a changelog.
find "$stage/usr/share/man" -type f -name '*.[0-9]' -exec gzip -9n {} +
doc=$stage/usr/share/doc/wcache
mkdir -p "$doc"
cat >"$doc/copyright" <<'CEOF'
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: wcache

Files: *
Copyright: the wcache contributors
License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a copy
 of this software and associated documentation files (the "Software"), to deal
 in the Software without restriction, including without limitation the rights
 to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
 copies of the Software, and to permit persons to whom the Software is
 furnished to do so, subject to the following conditions:
 .
 The above copyright notice and this permission notice shall be included in
 all copies or substantial portions of the Software.
 .
 THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
 IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
 FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
 AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
 LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
 OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
 SOFTWARE.
CEOF
{
	echo "wcache ($debversion) unstable; urgency=medium"
	echo
	echo "  * Package built by scripts/package-deb.sh from the source tree."
	echo
	echo " -- wcache contributors <wcache@localhost>  $(date -R)"
} | gzip -9n >"$doc/changelog.Debian.gz"

# Shared library dependencies of what we ship (dpkg-shlibdeps wants a debian/control).
mkdir -p "$work/src/debian"
printf 'Source: wcache\n\nPackage: wcache\nArchitecture: any\n' >"$work/src/debian/control"
mapfile -t elfs < <(find "$stage" -type f \( -name '*.so' -o -perm -u+x \) -exec sh -c \
	'head -c 4 "$1" | grep -q ELF' _ {} \; -print)
((${#elfs[@]} >= 2)) || { echo "package-deb: the wcache binary or the plugin is missing" >&2; exit 1; }
shlibs=$(cd "$work/src" && dpkg-shlibdeps -O "${elfs[@]}" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[[ -n "$shlibs" ]] || { echo "package-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

installed_kb=$(du -sk "$stage" | cut -f1)
mkdir -p "$stage/DEBIAN"
cat >"$stage/DEBIAN/control" <<CEOF
Package: wcache
Version: $debversion
Architecture: $arch
Maintainer: wcache contributors <wcache@localhost>
Installed-Size: $installed_kb
Depends: $shlibs, nbdkit
Suggests: prometheus-node-exporter
Section: admin
Priority: optional
Description: crash-consistent userspace write-back block cache (dm-writecache format)
 wcache puts a fast cache device (an SSD file or partition) in front of a
 slow origin (a disk, an image file, an NBD export or a Ceph RBD image).
 The cache device uses the on-disk format of the Linux kernel's
 dm-writecache, so caches move between wcache and dmsetup/LVM.
 .
 This package has the wcache command (format, check, dump, info, export,
 flush, serve, fuse, top, metrics), the nbdkit plugin (nbdkit wcache ...),
 systemd units (wcache@NAME.service, one per /etc/wcache/NAME.conf) and
 bash completion.
CEOF
# New units must be seen without a manual daemon-reload; nothing is enabled.
# Not in an offline root (dpkg --root with chrootless scripts sets DPKG_ROOT).
for s in postinst postrm; do
	cat >"$stage/DEBIAN/$s" <<'SEOF'
#!/bin/sh
set -e
if [ -z "$DPKG_ROOT" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
	systemctl daemon-reload || true
fi
SEOF
	chmod 0755 "$stage/DEBIAN/$s"
done
# Files 0644, directories and programs 0755, whatever the umask was.
find "$stage" -path "$stage/DEBIAN" -prune -o -type d -exec chmod 0755 {} +
find "$stage/usr" -type f ! -perm -u+x -exec chmod 0644 {} +

deb=$out_dir/wcache_${debversion}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
