#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The main job, end to end, on built-in defaults:
#   install missing packages, build, create a sparse 1 GiB origin and a 256 MiB
#   cache, serve them over NBD, write a random image and run fio with
#   verification through the cache, show the status line, write everything
#   back with the 'flush' message, stop cleanly, and check that the origin
#   file ALONE holds the data.
#
# Usage: scripts/demo.sh [--dir DIR] [--keep]
#   --dir DIR   work directory (default: a new directory under /var/tmp)
#   --keep      keep the images afterwards
# Environment: DEMO_ORIGIN_SIZE (1G), DEMO_CACHE_SIZE (256M), DEMO_IMAGE_MB (160)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir="" keep=0
while (($#)); do
	case $1 in
	--dir) dir=$2; shift ;;
	--keep) keep=1 ;;
	-h | --help) sed -n '3,14s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "demo: unknown argument '$1' (try --help)" >&2; exit 2 ;;
	esac
	shift
done

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { echo "demo: FAILED: $*" >&2; exit 1; }

say "1. Installing missing packages and building"
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" >/tmp/wcache-demo-build.log 2>&1 || {
	tail -30 /tmp/wcache-demo-build.log; die "build failed (log: /tmp/wcache-demo-build.log)"; }
wcache="$root/build/wcache"
[[ -x $wcache ]] || die "build produced no $wcache"
echo "built $wcache"

dir=${dir:-$(mktemp -d /var/tmp/wcache-demo.XXXXXX)}
mkdir -p "$dir"
origin=$dir/origin.img cache=$dir/cache.img sock=$dir/nbd.sock ctl=$dir/control.sock
pidfile=$dir/nbdkit.pid
server_pid=""
cleanup() {
	if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
		kill "$server_pid" 2>/dev/null || true
	fi
	((keep)) || rm -rf "$dir"
}
trap cleanup EXIT

say "2. Creating a sparse ${DEMO_ORIGIN_SIZE:-1G} origin and a ${DEMO_CACHE_SIZE:-256M} cache in $dir"
truncate -s "${DEMO_ORIGIN_SIZE:-1G}" "$origin"
truncate -s "${DEMO_CACHE_SIZE:-256M}" "$cache"
"$wcache" format "$cache"
ls -ls "$origin" "$cache"

say "3. Serving origin+cache over NBD (unix socket $sock)"
"$wcache" serve "$origin" "$cache" --socket "$sock" --control "$ctl" \
	--daemon --pidfile "$pidfile"
for _ in $(seq 100); do [[ -s $pidfile && -S $ctl ]] && break; sleep 0.1; done
server_pid=$(cat "$pidfile")
uri="nbd+unix:///?socket=$sock"
echo "server pid $server_pid, export $uri"
nbdinfo "$uri" | grep -E 'export-size|block_size|can_fua|can_flush|can_multi_conn|can_trim' || true

say "4. Workload A: copy a ${DEMO_IMAGE_MB:-160} MiB random image in with nbdcopy"
mb=${DEMO_IMAGE_MB:-160}
head -c "$((mb << 20))" /dev/urandom >"$dir/image.bin"
want=$(sha256sum <"$dir/image.bin" | cut -d' ' -f1)
time nbdcopy --flush "$dir/image.bin" "$uri"
echo "image sha256 $want"

say "5. Workload B: fio random writes (4 jobs) with crc32c verification in the next 256 MiB"
fio --name=demo --ioengine=nbd --uri="$uri" --rw=randwrite --bs=4k --iodepth=16 --numjobs=4 \
	--offset=256M --size=64M --offset_increment=64M --verify=crc32c --do_verify=1 \
	--group_reporting --fsync_on_close=1 --verify_state_save=0 --output="$dir/fio.txt" >/dev/null ||
	{ cat "$dir/fio.txt"; die "fio reported an error or a verify failure"; }
grep -E 'write: IOPS|read: IOPS' "$dir/fio.txt" | sed 's/^ */  /'

say "6. Status while data is still dirty in the cache"
"$wcache" status --control "$ctl"

say "7. Reading the image back through the cache"
got=$(nbdcopy "$uri" - | { head -c "$((mb << 20))" | sha256sum; cat >/dev/null; } | cut -d' ' -f1)
[[ $got == "$want" ]] || die "read back $got, expected $want"
echo "read back through the cache: sha256 matches"

say "8. Writing everything back: message flush"
time "$wcache" message --control "$ctl" flush
"$wcache" status --control "$ctl"

say "9. Stopping the server (SIGTERM: commit and close)"
kill "$server_pid"
for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$server_pid" 2>/dev/null || die "server did not stop"
server_pid=""
"$wcache" check "$cache" || die "cache is not clean after flush (exit $?)"

say "10. Verifying the origin file alone"
got=$(head -c "$((mb << 20))" "$origin" | sha256sum | cut -d' ' -f1)
[[ $got == "$want" ]] || die "origin holds $got, expected $want"
echo "origin alone, first $mb MiB: sha256 $got (matches)"
fio --name=demo --ioengine=psync --filename="$origin" --rw=randwrite --bs=4k --numjobs=4 \
	--offset=256M --size=64M --offset_increment=64M --verify=crc32c --verify_only \
	--group_reporting --verify_state_save=0 --output="$dir/fio-verify.txt" >/dev/null ||
	{ cat "$dir/fio-verify.txt"; die "fio verify of the origin alone failed"; }
echo "origin alone, fio region: crc32c verify passed"

say "PASS: every byte written through wcache is on the origin"
