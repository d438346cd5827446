#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A throw-away one-node Ceph cluster for the ceph tests and bench/08-rbd.sh:
# one monitor and one OSD on 127.0.0.1, no mgr, no cephx, everything (config,
# stores, sockets, logs, pid files) under DIR. Nothing touches /etc/ceph.
#
# Usage: tests/ceph/micro-ceph.sh start|stop|osd-stop|osd-start DIR
#   start      create the cluster on an empty DIR (or restart it); prints
#              CEPH_CONF=DIR/ceph.conf once pool "rbd" takes writes
#   stop       SIGTERM every daemon (SIGKILL after 15 s); data stays in DIR
#   osd-stop   stop only the OSD (I/O then waits: an outage)
#   osd-start  start the OSD again and wait until the pool takes writes
# Environment: MICRO_CEPH_PORT (monitor port, default 46900; the OSD binds
#   PORT+1..PORT+30), MICRO_CEPH_STORE=memstore (default; RAM, saved to DIR on
#   a clean OSD stop only) or bluestore (sparse file, survives SIGKILL).
set -Eeuo pipefail

cmd=${1:-}
DIR=${2:-}
[[ -n "$DIR" && "$cmd" =~ ^(start|stop|osd-stop|osd-start)$ ]] || {
	sed -n '3,15s/^# \{0,1\}//p' "$0" >&2
	exit 2
}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
CONF=$DIR/ceph.conf
WAIT_S=60

msg() { echo "micro-ceph: $*" >&2; }
die() {
	msg "$*"
	exit 1
}

running() { [[ -s "$DIR/run/$1.pid" ]] && kill -0 "$(cat "$DIR/run/$1.pid")" 2>/dev/null; }

# run_daemon NAME CMD...: in the foreground (-f) of its own session, so that
# the pid is the daemon's and it outlives the caller's process group.
run_daemon() {
	local name=$1
	shift
	setsid "$@" -f -c "$CONF" </dev/null >>"$DIR/log/$name.out" 2>&1 &
	echo $! >"$DIR/run/$name.pid"
}

# until_ok WHAT CMD...: retry CMD every 0.2 s for up to WAIT_S seconds.
until_ok() {
	local what=$1 t=$SECONDS
	shift
	until "$@" >/dev/null 2>&1; do
		((SECONDS - t < WAIT_S)) || die "gave up waiting for $what (logs in $DIR/log)"
		sleep 0.2
	done
}

ceph_() { timeout 20 ceph -c "$CONF" --connect-timeout 10 "$@"; }
osd_is_up() { ceph_ osd dump | grep -q '^osd\.0 up'; }
pool_writable() { timeout 10 rados -c "$CONF" -p rbd put micro-ceph-probe /dev/null; }

new_conf() {
	local port=${MICRO_CEPH_PORT:-46900} store=${MICRO_CEPH_STORE:-memstore}
	cat >"$CONF" <<-EOF
		[global]
		fsid = $(cat /proc/sys/kernel/random/uuid)
		mon host = v2:127.0.0.1:$port
		public addr = 127.0.0.1
		ms bind msgr1 = false
		ms bind port min = $((port + 1))
		ms bind port max = $((port + 30))
		auth cluster required = none
		auth service required = none
		auth client required = none
		run dir = $DIR/run
		# \$pid: two clients of one name (two wcaches) must not fight over one socket
		admin socket = $DIR/run/\$name.\$pid.asok
		log file = $DIR/log/\$name.log
		crash dir = $DIR/crash
		keyring = $DIR/keyring
		osd pool default size = 1
		osd pool default min size = 1
		osd pool default pg num = 8
		osd pool default pgp num = 8
		osd pool default pg autoscale mode = off
		osd crush chooseleaf type = 0
		mon allow pool size one = true
		mon warn on pool no redundancy = false
		mon data avail warn = 2
		mon data avail crit = 1
		# One monitor: map changes need not wait a second each (start 7 s -> 1 s).
		paxos propose interval = 0.05
		paxos min wait = 0.01
		[mon]
		mon data = $DIR/mon.\$id
		[osd]
		osd data = $DIR/osd.\$id
		osd objectstore = $store
		osd max object name len = 256
		osd max object namespace len = 64
		memstore device bytes = 8G
		bluestore block create = true
		# Sparse. At 4G, RocksDB's WAL (small writes are deferred through it) filled
		# BlueFS during bench/08-rbd.sh and the OSD aborted ("unrecognized error code").
		bluestore block size = 8G
		bluestore fsck on mkfs = false
		bluestore cache autotune = false
		bluestore cache size = 128M
		# memstore writes itself to osd data only in the umount a fast shutdown skips.
		osd fast shutdown = false
	EOF
}

start() {
	local fresh=0 port uuid
	mkdir -p "$DIR/run" "$DIR/log" "$DIR/crash"
	[[ -f "$CONF" ]] || { new_conf; fresh=1; }
	port=$(sed -n 's/^mon host = v2:127.0.0.1:\([0-9]*\)$/\1/p' "$CONF")
	# A stale monitor on the port would answer for this cluster.
	if ! running mon && (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		die "127.0.0.1:$port is taken (set MICRO_CEPH_PORT)"
	fi
	trap 'msg "start failed; stopping"; stop' ERR
	if ((fresh)); then
		: >"$DIR/keyring"
		monmaptool --create --fsid "$(sed -n 's/^fsid = //p' "$CONF")" \
			--addv a "[v2:127.0.0.1:$port]" "$DIR/monmap" >/dev/null
		ceph-mon -c "$CONF" -i a --mkfs --monmap "$DIR/monmap" --keyring "$DIR/keyring" \
			>>"$DIR/log/mkfs.log" 2>&1 || die "ceph-mon --mkfs failed ($DIR/log/mkfs.log)"
	fi
	running mon || run_daemon mon ceph-mon -i a
	until_ok "the monitor" ceph_ mon stat
	if ((fresh)); then
		uuid=$(cat /proc/sys/kernel/random/uuid)
		[[ "$(ceph_ osd new "$uuid")" == 0 ]] || die "the new OSD is not osd.0"
		mkdir -p "$DIR/osd.0"
		ceph-osd -c "$CONF" -i 0 --mkfs --osd-uuid "$uuid" >>"$DIR/log/mkfs.log" 2>&1 ||
			die "ceph-osd --mkfs failed ($DIR/log/mkfs.log)"
	fi
	running osd || run_daemon osd ceph-osd -i 0
	until_ok "osd.0 up" osd_is_up
	if ((fresh)); then
		ceph_ osd pool create rbd 8 8 >/dev/null
		timeout "$WAIT_S" rbd -c "$CONF" pool init rbd || die "rbd pool init failed"
	fi
	until_ok "pool rbd writable" pool_writable
	trap - ERR
	echo "CEPH_CONF=$CONF"
}

# halt NAME: SIGTERM, wait up to 15 s, then SIGKILL.
halt() {
	local pid i
	running "$1" || return 0
	pid=$(cat "$DIR/run/$1.pid")
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 150; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		msg "$1 ignored SIGTERM for 15 s; SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$DIR/run/$1.pid"
}

# The OSD first: it reports its own exit to the monitor.
stop() {
	halt osd
	halt mon
}

osd-stop() { halt osd; }

osd-start() {
	running osd || run_daemon osd ceph-osd -i 0
	until_ok "osd.0 up" osd_is_up
	until_ok "pool rbd writable" pool_writable
}

"$cmd"
