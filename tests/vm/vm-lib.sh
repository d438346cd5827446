# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# Host side of the VM tests (source it from bash): the work folder and its
# images, wcache servers (start, kill -9, restart, stop, counters from the
# control socket, flush + checks at the end), host-made file trees with
# sha256 manifests for the guest, boots through tests/qemu/vm.sh (guest
# "nbd"), and timing lines. Each test keeps its folder under WC_VM_WORK until
# the next run, so test-vm-origin-alone.sh can boot the origins the others
# left behind.
#
# Environment (CTest sets them): WCACHE (the wcache binary; the nbdkit plugin
# lies next to it), WC_QEMU_CACHE (kernel + initramfs cache, shared with the
# kernel test), WC_VM_WORK. WC_VM_NBDLOG=1 adds nbdkit's log filter
# (W/NAME-nbd.log: every NBD request). WC_VM_IMAGES=DIR puts the images there
# (default /dev/shm if writable; set it empty for W itself). WC_VM_ACCEL,
# WC_VM_NO_INSTALL and WC_VM_VERBOSE stand for vm.sh's WC_QEMU_* (and
# WC_VM_BUILD for WC_QEMU_CACHE when that is unset).
set -euo pipefail

VM_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_ROOT=$(cd "$VM_HERE/../.." && pwd)
: "${WCACHE:=$VM_ROOT/build/wcache}"
[[ "$WCACHE" == /* ]] || WCACHE=$PWD/$WCACHE	# the tests cd into their folder
: "${WC_VM_WORK:=$(dirname "$WCACHE")/tests/vm/work}"
: "${WC_QEMU_CACHE:=${WC_VM_BUILD:-$(dirname "$WCACHE")/tests/qemu}}"
: "${WC_QEMU_ACCEL:=${WC_VM_ACCEL:-auto}}"
: "${WC_QEMU_NO_INSTALL:=${WC_VM_NO_INSTALL:-0}}"
: "${WC_QEMU_VERBOSE:=${WC_VM_VERBOSE:-0}}"
export WC_QEMU_CACHE WC_QEMU_ACCEL WC_QEMU_NO_INSTALL WC_QEMU_VERBOSE
VM=$VM_HERE/../qemu/vm.sh
TEST_NAME=$(basename "$0" .sh)
T_START=$(date +%s%N)
# say, fail, skip
# shellcheck source=../lib/functions.sh
source "$VM_HERE/../lib/functions.sh"

ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# timing PHASE MS: one line on stdout and in W/timings.txt.
timing() {
	say "timing: $1 $2 ms"
	echo "$TEST_NAME $1 $2" >>"$W/timings.txt"
}

# vm_setup NAME: prepare the VM (exit 77 with vm.sh's reason if impossible) and
# make the empty work folder W=WC_VM_WORK/NAME, with W/io shared with the guest.
vm_setup() {
	local t0 rc=0
	[[ -x "$WCACHE" ]] || fail "WCACHE=$WCACHE is not an executable (build first)"
	[[ -f "$(dirname "$WCACHE")/nbdkit-wcache-plugin.so" ]] ||
		fail "no nbdkit-wcache-plugin.so next to $WCACHE (build first)"
	for c in nbdkit nbdcopy jq; do
		command -v $c >/dev/null || fail "$c is not installed (scripts/install-deps.sh installs it)"
	done
	mkdir -p "$WC_VM_WORK"
	W=$WC_VM_WORK/$1
	[[ ! -f "$W/images.path" ]] || rm -rf "$(cat "$W/images.path")"
	rm -rf "$W"
	mkdir -p "$W/io"
	cd "$W"
	t0=$(date +%s%N)
	bash "$VM" prepare --guest nbd >"$W/prepare.log" 2>&1 || rc=$?
	if ((rc == 77)); then
		grep SKIP "$W/prepare.log" || cat "$W/prepare.log"
		exit 77
	fi
	((rc == 0)) || { cat "$W/prepare.log"; fail "vm.sh prepare: exit $rc"; }
	timing prepare "$(ms_since "$t0")"
	IMG=
	trap vm_cleanup EXIT
	say "work folder $W; $(bash "$VM" info)"
}

# ---------------- wcache servers ----------------
# Servers have names (a test may run several). Server NAME serves
# W/NAME-origin.img through W/NAME-cache.img on the unix socket W/NAME.sock
# with its control socket at W/NAME.ctl; its stderr goes to W/NAME-server.log.
declare -A SRV_PID=() SRV_OPTS=()

# srv_start NAME [TABLE OPTIONS...]: the images must exist; the options are
# kept for srv_restart.
srv_start() {
	local name=$1
	shift
	SRV_OPTS[$name]="$*"
	srv_restart "$name"
}

# srv_restart NAME: start the server again on the same files (recovery runs).
srv_restart() {
	local n=$1 i cmd
	rm -f "$W/$n.sock" "$W/$n.ctl" "$W/$n.pid"
	echo "---- $(date +%T.%N) start" >>"$W/$n-server.log"
	# shellcheck disable=SC2206 # table options are single words
	cmd=("$WCACHE" serve "$W/$n-origin.img" "$W/$n-cache.img" --socket "$W/$n.sock"
		--control "$W/$n.ctl" --pidfile "$W/$n.pid" ${SRV_OPTS[$n]})
	if [[ "${WC_VM_NBDLOG:-0}" == 1 ]]; then
		# wcache serve's own nbdkit command line plus the log filter: one line
		# per NBD request in W/NAME-nbd.log (kept across kill -9 and restarts).
		read -ra cmd <<<"$("${cmd[@]}" --dry-run)"
		cmd=("${cmd[0]}" --filter=log "${cmd[@]:1}" logfile="$W/$n-nbd.log" logappend=true)
	fi
	"${cmd[@]}" >>"$W/$n-server.log" 2>&1 &
	SRV_PID[$n]=$!
	for ((i = 0; i < 300; i++)); do
		[[ -s "$W/$n.pid" && -S "$W/$n.ctl" && -S "$W/$n.sock" ]] && return 0
		kill -0 "${SRV_PID[$n]}" 2>/dev/null ||
			{ cat "$W/$n-server.log"; fail "server $n exited while starting"; }
		sleep 0.05
	done
	fail "server $n did not start within 15 s"
}

# srv_kill9 NAME: the crash (no commit, no close).
srv_kill9() {
	kill -KILL "${SRV_PID[$1]}"
	wait "${SRV_PID[$1]}" 2>/dev/null || true
	echo "---- $(date +%T.%N) kill -9" >>"$W/$1-server.log"
	unset "SRV_PID[$1]"
}

# srv_stop NAME: SIGTERM commits and closes; the server must exit 0.
srv_stop() {
	local rc=0
	kill -TERM "${SRV_PID[$1]}"
	wait "${SRV_PID[$1]}" || rc=$?
	unset "SRV_PID[$1]"
	((rc == 0)) || { tail -20 "$W/$1-server.log"; fail "server $1 exited with $rc on SIGTERM"; }
}

# stat_of NAME FIELD: one counter of a live server (status --control --json).
stat_of() {
	"$WCACHE" status --control "$W/$1.ctl" --json | jq -er ".$2"
}

# stats_line NAME: the counters worth printing in a report.
stats_line() {
	"$WCACHE" status --control "$W/$1.ctl" --json | jq -cr '{writes, writes_around, flushes,
		fua_writes, commits, writeback_blocks_done, dirty, free, total, error}'
}

# flush_and_stop NAME: after the guest powered off: message flush over the
# control socket, no dirty block left, a clean stop, a clean cache offline,
# and the origin alone byte for byte what the export showed before the flush.
flush_and_stop() {
	local n=$1 t0 d logical origin
	t0=$(date +%s%N)
	logical=$(nbdcopy "nbd+unix:///?socket=$W/$n.sock" - | sha256sum)
	timing "read-export-$n" "$(ms_since "$t0")"
	"$WCACHE" message --control "$W/$n.ctl" flush || fail "server $n: message flush failed"
	timing "message-flush-$n" "$(ms_since "$t0")"
	d=$(stat_of "$n" dirty)
	[[ "$d" == 0 ]] || fail "server $n: $d dirty blocks left after message flush"
	[[ "$(stat_of "$n" error)" == 0 ]] || fail "server $n is in an error state: $(stats_line "$n")"
	srv_stop "$n"
	"$WCACHE" check "$W/$n-cache.img" >"$W/$n-check.out" 2>&1 || {
		cat "$W/$n-check.out"
		fail "wcache check $n-cache.img: not clean after the flush"
	}
	origin=$(sha256sum <"$W/$n-origin.img")
	[[ "$origin" == "$logical" ]] ||
		fail "server $n: the origin alone differs from what the guest last saw"
	timing "flush+stop-$n" "$(ms_since "$t0")"
}

vm_cleanup() {
	local rc=$?
	set +e
	if [[ -n "${BOOT_PID:-}" ]]; then
		kill "$BOOT_PID" 2>/dev/null	# vm.sh's timeout ends qemu at the latest
		wait "$BOOT_PID" 2>/dev/null
	fi
	for n in "${!SRV_PID[@]}"; do
		kill -KILL "${SRV_PID[$n]}" 2>/dev/null
		wait "${SRV_PID[$n]}" 2>/dev/null
	done
	timing total "$(ms_since "$T_START")"
	if ((rc != 0 && rc != 77)); then
		say "kept $W for inspection (console-*.log, *-server.log)"
	fi
	exit $rc
}

# image NAME SIZE: a sparse image W/NAME. It lives in RAM when /dev/shm is
# there (IMG, linked from W): every commit of the servers costs a host
# fdatasync (a guest fsync on ext4 makes several), which on a busy host disk
# takes 10-50 ms; these tests are about wcache and the guest, and a kill -9
# leaves the host's page cache intact either way.
image() {
	if [[ -z "$IMG" ]]; then
		IMG=$W
		if [[ -z "${WC_VM_IMAGES+x}" && -d /dev/shm && -w /dev/shm ]] || [[ -n "${WC_VM_IMAGES:-}" ]]; then
			IMG=$(mktemp -d "${WC_VM_IMAGES:-/dev/shm}/wcache-vm-${W##*/}.XXXXXX")
			echo "$IMG" >"$W/images.path"
		fi
	fi
	truncate -s "$2" "$IMG/$1"
	[[ "$IMG" == "$W" ]] || ln -s "$IMG/$1" "$W/$1"
}

# ---------------- data for the guest ----------------

# make_tree NAME NFILES: random files of mixed sizes (1 B .. 2 MiB) under
# W/io/src/NAME, in sub-folders of 5, and W/io/NAME.sha256 with paths
# relative to W/io/src (the guest copies NAME to the root of its file system).
make_tree() {
	local name=$1 n=$2 k sizes=(4096 1000 65536 300000 1048576 12345 524288 2097152 7 131072 1)
	for ((k = 0; k < n; k++)); do
		mkdir -p "$W/io/src/$name/d$((k / 5))"
		head -c "${sizes[k % ${#sizes[@]}]}" /dev/urandom >"$W/io/src/$name/d$((k / 5))/f$k"
	done
	(cd "$W/io/src" && find "$name" -type f | sort | xargs sha256sum) >"$W/io/$name.sha256"
}

# ---------------- the VM ----------------

# boot LABEL ARGS...: vm.sh run --guest nbd ARGS --dir W/io with guest-lib.sh
# in W/io for the job; rc in BOOT_RC, console kept as W/console-LABEL.log.
# Never fails by itself.
boot() {
	local label=$1 t0
	shift
	t0=$(date +%s%N)
	BOOT_RC=0
	cp "$VM_HERE/guest-lib.sh" "$W/io/guest-lib.sh"
	bash "$VM" run --guest nbd --dir "$W/io" "$@" >"$W/boot-$label.log" 2>&1 || BOOT_RC=$?
	cp "$W/io/console.log" "$W/console-$label.log"
	timing "boot-$label" "$(ms_since "$t0")"
	grep -E '^\[[0-9.]+\] |GUEST-FAIL' "$W/console-$label.log" | sed "s/^/  guest: /" || true
}

# boot_bg LABEL ARGS...: boot in the background (BOOT_PID); boot_wait LABEL
# waits for it and sets BOOT_RC from the console's exit line.
boot_bg() {
	boot "$@" &
	BOOT_PID=$!
}

boot_wait() {
	wait "$BOOT_PID" || true
	BOOT_PID=
	BOOT_RC=$(sed -n 's/^=== WC-EXIT \([0-9]*\).*/\1/p' "$W/console-$1.log" | tail -1)
	BOOT_RC=${BOOT_RC:-125}
}

# boot_ok LABEL: the last boot's script must have exited 0.
boot_ok() {
	((BOOT_RC == 0)) && return 0
	tail -40 "$W/console-$1.log"
	cat "$W/boot-$1.log"
	fail "guest $1: exit $BOOT_RC (124 = timeout, 125 = the VM died)"
}
