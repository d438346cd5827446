#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# 'wcache fuse' without a loop device: option errors, the clear errors for a
# missing mount point, a missing /dev/fuse, a mount point in use, a cache in
# use and a dead FUSE mount; then I/O on MOUNTPOINT/disk against a model file
# (unaligned writes, O_DSYNC -> FUA, fsync -> commit, PUNCH_HOLE reads back
# zeroes also on partial blocks and over origin-only data, ZERO_RANGE, no
# writes past the end, no truncate), and that unmount, SIGTERM and
# flush_on_suspend each leave the data durable (checked offline with
# 'wcache export' and on the origin alone).
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/fuse-functions.sh"
requires python3 cmp fallocate truncate
requires_wcache
[[ $(id -u) -eq 0 ]] || skip "needs root (mount)"
[[ -c /dev/fuse ]] || skip "no /dev/fuse: the kernel or container has no FUSE"
tmpdir
cleanup_fn fz_teardown

MiB=$((1 << 20))
SIZE=$((32 * MiB))

# pw OFF LEN SEED [dsync] [nosync]: pwrite LEN deterministic bytes at OFF to
# mnt/disk and model.img; fsync the disk unless nosync.
pw() {
	python3 - "$@" <<'EOF' || fail "pwrite $*"
import os, random, sys
off, ln, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
flags = sys.argv[4:]
data = random.Random(seed).randbytes(ln)
fl = os.O_WRONLY | (os.O_DSYNC if "dsync" in flags else 0)
fd = os.open("mnt/disk", fl)
assert os.pwrite(fd, data, off) == ln
if "nosync" not in flags:
    os.fsync(fd)
os.close(fd)
m = os.open("model.img", os.O_WRONLY)
os.pwrite(m, data, off)
os.close(m)
EOF
}

# zero_model OFF LEN
zero_model() {
	dd if=/dev/zero of=model.img bs=1 seek="$1" count="$2" conv=notrunc status=none ||
		fail "zero_model $*"
}

same_as_model() {
	cmp "$1" model.img || fail "$1 differs from the model ($2)"
}

# ---- option errors (exit 2) ----
run_rc 2 "$WCACHE" fuse
err_has "expected ORIGIN CACHE MOUNTPOINT"
run_rc 2 "$WCACHE" fuse a b
run_rc 2 "$WCACHE" fuse a b c d
err_has "too many arguments"
run_rc 2 "$WCACHE" fuse a b c --bogus
err_has "unknown or ambiguous option '--bogus'"
run_rc 2 "$WCACHE" fuse a b c --high-watermark 200
err_has "high_watermark"
run_rc 2 "$WCACHE" fuse a b c --high_watermark 10 --low-watermark 20
err_has "high_watermark 10 must be >= low_watermark 20"
run_rc 2 "$WCACHE" fuse a b c --cache-io fast
err_has "--cache-io: 'fast' is not direct or buffered"
run_rc 2 "$WCACHE" fuse a b c --block-size 1000
err_has "block-size: 1000 is invalid"
run_rc 2 "$WCACHE" fuse a b c --threads 0
run_rc 2 "$WCACHE" fuse a b c --autocommit-time x
run_rc 0 "$WCACHE" fuse --help
out_has "losetup --find --show --direct-io=on"

# ---- errors before anything is served (exit 1) ----
head -c "$SIZE" /dev/urandom >origin.img
truncate -s $((16 * MiB)) cache.img
cp origin.img model.img
mkdir mnt mnt2
touch afile
run_rc 1 "$WCACHE" fuse origin.img cache.img nodir
err_has "mount point nodir: No such file or directory"
run_rc 1 "$WCACHE" fuse origin.img cache.img afile
err_has "mount point afile is not a directory"
run_rc 1 "$WCACHE" fuse missing.img cache.img mnt
err_has "missing.img"
mountpoint -q mnt && fail "mnt is mounted after a failed start"
if unshare -m true 2>/dev/null; then
	# A private mount namespace whose /dev has no fuse node.
	# shellcheck disable=SC2016 # $0 expands in the inner shell
	run_rc 1 unshare -m sh -c 'mount -t tmpfs none /dev && exec "$0" fuse origin.img cache.img mnt' \
		"$WCACHE"
	err_has "/dev/fuse does not exist"
else
	say "unshare -m not permitted: missing /dev/fuse not checked"
fi

# ---- serve ----
fz_start origin.img cache.img mnt
assert_eq "$(stat -c %s mnt/disk)" "$SIZE" "size of mnt/disk"
assert_eq "$(ls mnt)" "disk" "directory listing"
same_as_model mnt/disk "fresh cache reads the origin"

run_rc 1 "$WCACHE" fuse origin.img cache.img mnt
err_has "mount point mnt is in use"
run_rc 1 "$WCACHE" fuse origin.img cache.img mnt2
err_has "cache.img"
mountpoint -q mnt2 && fail "mnt2 is mounted although the cache is in use"

# ---- I/O ----
f0=$(fz_stat flushes)
pw 12345 1000 1			# unaligned, inside one block
pw $((1 * MiB)) $((3 * MiB)) 2	# aligned, many blocks
pw $((5 * MiB - 100)) 70000 3	# unaligned, crosses blocks
(($(fz_stat flushes) >= f0 + 3)) || fail "fsync did not reach wcache_flush: $(fz_stats)"
fua0=$(fz_stat fua_writes)
pw $((6 * MiB + 512)) 8192 4 dsync nosync
(($(fz_stat fua_writes) > fua0)) || fail "an O_DSYNC write was not FUA: $(fz_stats)"
same_as_model mnt/disk "after writes"

# No room past the end, fixed size.
run_rc 1 dd if=/dev/zero of=mnt/disk bs=4096 seek=$((SIZE / 4096)) count=1 conv=notrunc
err_has "No space left on device"
run_rc 1 truncate -s $MiB mnt/disk
assert_eq "$(stat -c %s mnt/disk)" "$SIZE" "size after a refused truncate"

# PUNCH_HOLE: cached blocks with unaligned edges, then origin-only data.
d0=$(fz_stat discards)
fallocate -p -o $((1 * MiB + 1000)) -l $((2 * MiB)) mnt/disk || fail "punch hole"
zero_model $((1 * MiB + 1000)) $((2 * MiB))
(($(fz_stat discards) > d0)) || fail "punch hole did not discard cached blocks: $(fz_stats)"
fallocate -p -o $((24 * MiB + 7)) -l $((2 * MiB)) mnt/disk || fail "punch hole (origin)"
zero_model $((24 * MiB + 7)) $((2 * MiB))
fallocate -z -o $((20 * MiB + 3)) -l 100000 mnt/disk || fail "zero range"
zero_model $((20 * MiB + 3)) 100000
fallocate -p -o $((SIZE - 4096)) -l $((8 * MiB)) mnt/disk || fail "punch hole past the end"
zero_model $((SIZE - 4096)) 4096
run_rc 1 fallocate -c -o 0 -l $MiB mnt/disk
same_as_model mnt/disk "after punch hole / zero range"

# ---- unmount commits ----
fz_stop
[[ -e "$TMPD/fuse.pid" ]] && fail "pidfile left behind after a clean stop"
"$WCACHE" export origin.img cache.img export.img --no-progress || fail "export"
same_as_model export.img "export after unmount"

# ---- SIGTERM commits writes that were never fsynced ----
fz_start origin.img cache.img mnt
same_as_model mnt/disk "after restart"
pw $((7 * MiB)) $((2 * MiB)) 5 nosync
kill -TERM "$FZ_PID"
fz_wait_exit 60
fz_check_log
mountpoint -q mnt && fail "mnt still mounted after SIGTERM"
"$WCACHE" export origin.img cache.img export.img --no-progress || fail "export"
same_as_model export.img "export after SIGTERM"

# ---- flush_on_suspend: everything written back at stop, the cache ends clean ----
fz_start origin.img cache.img mnt --flush-on-suspend
pw $((9 * MiB)) $MiB 6 nosync
fz_stop
run_rc 0 "$WCACHE" check cache.img
same_as_model origin.img "origin alone after flush_on_suspend"

# ---- kill -9: the dead mount gets a clear error; synced data survives ----
fz_start origin.img cache.img mnt
pw $((11 * MiB + 4096)) $((3 * MiB)) 7
kill -9 "$FZ_PID"
fz_wait_exit 10
run_rc 1 "$WCACHE" fuse origin.img cache.img mnt
err_has "Transport endpoint is not connected.*fusermount3 -u"
timeout 20 umount mnt || fail "umount of the dead FUSE mount"
# Restart with the cache file in the page cache: no O_DIRECT (octal 040000)
# on the server's descriptor, and the same data.
fz_start origin.img cache.img mnt --cache-io buffered
for f in /proc/"$FZ_PID"/fd/*; do
	[[ $(readlink "$f") == "$TMPD/cache.img" ]] || continue
	flags=$(awk '/^flags/ { print $2 }' "/proc/$FZ_PID/fdinfo/${f##*/}")
	(((8#$flags & 8#40000) == 0)) || fail "--cache-io buffered: cache opened with O_DIRECT ($flags)"
	found_cache_fd=1
done
[[ -n ${found_cache_fd:-} ]] || fail "the FUSE server has no descriptor open on cache.img"
same_as_model mnt/disk "after kill -9 and restart"
fz_stop
say "ok"
