# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Helpers for tests/integration/test-fuse-*.sh (source after functions.sh):
# start/stop a 'wcache fuse' server, loop devices and ext4 mounts on it, the
# teardown order that never hangs (ext4 -> loop -> FUSE mount -> daemon),
# control-socket stats, and a deterministic file tree with a checksum list.
# Skips (77) only when /dev/fuse or loop devices are missing, or not root.

FZ_MNT=
FZ_PID=
FZ_CTL=
FZ_LOG=
FZ_LOOPS=()
FZ_MOUNTS=()

# requires_fuse_loop: root, /dev/fuse and a free loop device, else skip.
requires_fuse_loop() {
	[[ $(id -u) -eq 0 ]] || skip "needs root (mount, losetup)"
	[[ -c /dev/fuse ]] || skip "no /dev/fuse: the kernel or container has no FUSE"
	requires losetup mount umount mountpoint
	[[ -e /dev/loop-control ]] || ls /dev/loop[0-9]* >/dev/null 2>&1 ||
		skip "no loop devices (/dev/loop-control missing)"
	timeout 10 losetup -f >/dev/null 2>&1 || skip "no free loop device (losetup -f failed)"
}

# fz_start ORIGIN CACHE MNT [wcache fuse options...]: start a background
# server with a pidfile, control socket and log in $TMPD; sets FZ_PID.
fz_start() {
	local origin=$1 cache=$2 mnt=$3 rc=0
	shift 3
	FZ_MNT=$(cd "$mnt" && pwd)
	FZ_CTL=$TMPD/ctl.sock
	FZ_LOG=$TMPD/fuse.log
	rm -f "$TMPD/fuse.pid"
	"$WCACHE" fuse "$origin" "$cache" "$FZ_MNT" --pidfile "$TMPD/fuse.pid" \
		--control "$FZ_CTL" --log "$FZ_LOG" "$@" 2>"$TMPD/fuse.start" || rc=$?
	if ((rc != 0)); then
		cat "$TMPD/fuse.start" "$FZ_LOG" >&2 2>/dev/null
		fail "wcache fuse exited $rc"
	fi
	if grep -Eq 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$TMPD/fuse.start"; then
		cat "$TMPD/fuse.start" >&2
		fail "sanitizer report from wcache fuse (parent)"
	fi
	FZ_PID=$(cat "$TMPD/fuse.pid") || fail "no pidfile after wcache fuse returned"
	mountpoint -q "$FZ_MNT" || fail "$FZ_MNT is not mounted after wcache fuse returned"
	[[ -f "$FZ_MNT/disk" ]] || fail "$FZ_MNT/disk is missing"
}

# fz_wait_exit [SECONDS]: wait for the server to exit; fail on timeout.
fz_wait_exit() {
	local i n=$((${1:-60} * 10))
	for ((i = 0; i < n; i++)); do
		kill -0 "$FZ_PID" 2>/dev/null || {
			FZ_PID=
			return 0
		}
		sleep 0.1
	done
	fail "wcache fuse (pid $FZ_PID) did not exit within ${1:-60} s"
}

# fz_loop FILE: attach a direct-I/O loop device with 4 KiB sectors; sets LOOP.
fz_loop() {
	LOOP=$(timeout 20 losetup --find --show --direct-io=on --sector-size 4096 "$1") ||
		fail "losetup on $1 failed"
	FZ_LOOPS+=("$LOOP")
	[[ "$(cat "/sys/block/${LOOP#/dev/}/loop/dio")" = 1 ]] || fail "$LOOP has no direct I/O"
}

fz_loop_detach() {
	local l=$1 i
	timeout 20 losetup -d "$l" || fail "losetup -d $l failed"
	for i in "${!FZ_LOOPS[@]}"; do
		[[ "${FZ_LOOPS[i]}" = "$l" ]] && unset 'FZ_LOOPS[i]'
	done
	FZ_LOOPS=("${FZ_LOOPS[@]}")
}

# fz_mount DEV DIR [mount options]
fz_mount() {
	mkdir -p "$2"
	timeout 60 mount ${3:+-o "$3"} "$1" "$2" || fail "mount $1 $2 failed"
	FZ_MOUNTS+=("$2")
}

fz_umount() {
	local d=$1 i
	timeout 120 umount "$d" || fail "umount $d failed"
	for i in "${!FZ_MOUNTS[@]}"; do
		[[ "${FZ_MOUNTS[i]}" = "$d" ]] && unset 'FZ_MOUNTS[i]'
	done
	FZ_MOUNTS=("${FZ_MOUNTS[@]}")
}

# fz_check_log: the server's log has no sanitizer report.
fz_check_log() {
	if grep -Eq 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "$FZ_LOG" 2>/dev/null; then
		cat "$FZ_LOG" >&2
		fail "sanitizer report in the server's log"
	fi
}

# fz_stop: unmount the FUSE file system (loops must be detached); the server
# commits, closes and exits.
fz_stop() {
	timeout 30 umount "$FZ_MNT" || fail "umount $FZ_MNT failed"
	fz_wait_exit 120
	fz_check_log
}

# fz_teardown: for crashes and cleanup. ext4 mounts (lazily if busy), loop
# devices, the FUSE mount (lazily), then the daemon is killed if still alive.
fz_teardown() {
	local d l
	for d in "${FZ_MOUNTS[@]}"; do
		timeout 60 umount "$d" 2>/dev/null || umount -l "$d" 2>/dev/null
	done
	FZ_MOUNTS=()
	for l in "${FZ_LOOPS[@]}"; do
		timeout 20 losetup -d "$l" 2>/dev/null
	done
	FZ_LOOPS=()
	# A dead FUSE mount fails stat with ENOTCONN: unmount it as well.
	if [[ -n "$FZ_MNT" ]] &&
		{ mountpoint -q "$FZ_MNT" 2>/dev/null || ! stat "$FZ_MNT" >/dev/null 2>&1; }; then
		timeout 20 umount "$FZ_MNT" 2>/dev/null || umount -l "$FZ_MNT" 2>/dev/null
	fi
	if [[ -n "$FZ_PID" ]] && kill -0 "$FZ_PID" 2>/dev/null; then
		kill -9 "$FZ_PID" 2>/dev/null
	fi
	FZ_PID=
	return 0
}

# fz_crash: kill -9 the server, then tear down in order (nothing may hang).
fz_crash() {
	kill -9 "$FZ_PID" || fail "kill -9 $FZ_PID failed"
	local i
	for ((i = 0; i < 100; i++)); do
		kill -0 "$FZ_PID" 2>/dev/null || break
		sleep 0.1
	done
	fz_teardown
}

# fz_ctl LINE: send one request to the server's control socket, print the reply.
fz_ctl() {
	python3 - "$FZ_CTL" "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(300)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
buf = b""
while not buf.endswith(b"\n"):
    d = s.recv(65536)
    if not d:
        break
    buf += d
print(buf.decode().strip())
EOF
}

# fz_stats: the control socket's "stats" line (name=value ...).
fz_stats() {
	fz_ctl stats
}

# fz_stat NAME: one counter from fz_stats.
fz_stat() {
	local kv
	for kv in $(fz_stats); do
		[[ "${kv%%=*}" = "$1" ]] && {
			echo "${kv#*=}"
			return 0
		}
	done
	fail "stats has no field $1"
}

# mktree DIR SEED NSMALL NLARGE: write a deterministic tree (NSMALL files of
# 1..24 KiB in 40 directories, NLARGE files of 8..24 MiB) and print
# "sha256  relative/path" lines for sha256sum -c (run in DIR).
mktree() {
	python3 - "$@" <<'EOF'
import hashlib, os, random, sys
top, seed, nsmall, nlarge = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(seed)
block = rnd.randbytes(1 << 20)
for i in range(nsmall + nlarge):
    d = os.path.join(top, "s%d" % seed, "d%02d" % (i % 40))
    os.makedirs(d, exist_ok=True)
    name = "f%05d" % i
    if i < nsmall:
        data = rnd.randbytes(rnd.randint(1, 24 * 1024))
    else:
        n = rnd.randint(8, 24) << 20
        off = rnd.randrange(0, 1 << 20)
        # Large files: a rotated 1 MiB block with a per-file header every MiB.
        parts = []
        for m in range(n >> 20):
            parts.append(("%d:%d:%d|" % (seed, i, m)).encode() + block[off:] + block[:off])
        data = b"".join(parts)[:n]
    p = os.path.join(d, name)
    with open(p, "wb") as f:
        f.write(data)
    print("%s  %s" % (hashlib.sha256(data).hexdigest(), os.path.relpath(p, top)))
EOF
}

# verify_tree DIR SUMS: every file listed in SUMS has its recorded checksum.
verify_tree() {
	(cd "$1" && sha256sum -c --quiet --strict "$2") >"$TMPD/verify.out" 2>&1 || {
		head -20 "$TMPD/verify.out" >&2
		fail "checksums differ in $1 ($(grep -c FAILED "$TMPD/verify.out" || true) files)"
	}
}

# fsck_clean DEV: fsck.ext4 -fn must report no problem.
fsck_clean() {
	timeout 120 fsck.ext4 -fn "$1" >"$TMPD/fsck.out" 2>&1 || {
		cat "$TMPD/fsck.out" >&2
		fail "fsck.ext4 -fn $1 is not clean"
	}
}
