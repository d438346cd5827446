#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The guest kernel's nbd driver on a wcache export (nbd-client in the guest,
# qemu user networking forwarding to the unix socket): unlike virtio-blk it
# sends real NBD FUA (jbd2 commit blocks, O_DSYNC overwrites). The ext4/fio
# checks of test-vm-ext4-fio.sh, then proof that FUA arrives and is honoured:
# the server's fua_writes and commits rise during a 1 MiB O_DIRECT|O_DSYNC
# overwrite of a file while no flush arrives, and with autocommit off that
# data survives a kill -9 of the server (read back after the guest reconnects
# and ext4 replays its journal; a control written without FUA is reported).
# Then the flush message, a clean stop and a clean cache;
# test-vm-origin-alone.sh boots the origin that is left.
source "$(dirname "$0")/vm-lib.sh"
vm_setup nbd-fua

image nb-origin.img 256M
image nb-cache.img 16M
make_tree tree 40
head -c 1M /dev/urandom >io/src/probe.bin
head -c 1M /dev/urandom >io/src/control.bin
# No autocommit: only a flush or a FUA write commits, so what survives the
# kill -9 below was committed by its own FUA.
srv_start nb --autocommit-time 3600000 --autocommit-blocks 1000000
boot_bg guest --timeout 400 --net-nbd nb.sock --script "$VM_HERE/guest-nbd-fua.sh" \
	--env FS_BLOCKS=57344 --env CONTROL_MIB=240 --env FIO_SIZE=16M --env FIO_BS=64k

# wait_guest FILE: until the guest creates io/FILE (fails if the boot ended).
wait_guest() {
	local i
	for ((i = 0; i < 3000; i++)); do
		[[ ! -e "io/$1" ]] || return 0
		if ! kill -0 "$BOOT_PID" 2>/dev/null; then
			boot_wait guest
			boot_ok guest
			fail "the guest ended before $1"
		fi
		sleep 0.1
	done
	fail "the guest did not reach $1 within 300 s"
}

wait_guest fs-done
say "after the file system checks: $(stats_line nb)"
fua_fs=$(stat_of nb fua_writes)
((fua_fs > 0)) || fail "no FUA write arrived from ext4 (jbd2 commits) through the guest's nbd driver"
f0=$(stat_of nb fua_writes) c0=$(stat_of nb commits) l0=$(stat_of nb flushes)
touch io/fs-counted
wait_guest fua-written
f1=$(stat_of nb fua_writes) c1=$(stat_of nb commits) l1=$(stat_of nb flushes)
touch io/fua-counted
say "1 MiB O_DIRECT|O_DSYNC overwrite: fua_writes +$((f1 - f0)), commits +$((c1 - c0)), flushes +$((l1 - l0))"
((f1 - f0 >= 16)) || fail "16 FUA writes of 64 KiB were sent, the server counted $((f1 - f0))"
((l1 == l0)) || fail "the O_DSYNC overwrite sent $((l1 - l0)) flushes; it must test FUA alone"
((c1 - c0 >= 16)) || fail "16 FUA writes made $((c1 - c0)) commits: each FUA write must commit"
wait_guest control-written
srv_kill9 nb
srv_restart nb
touch io/restarted
boot_wait guest
boot_ok guest
read -r control <io/control.txt
if [[ $control == lost ]]; then
	say "FUA honoured: no flush came with the FUA writes, they survived kill -9, the control did not"
else
	say "FUA writes survived kill -9; the control survived too, so this run does not single out FUA"
fi
say "server after the guest: $(stats_line nb)"
flush_and_stop nb
{
	cat io/tree.sha256
	echo "$(sha256sum <io/src/probe.bin | cut -c1-64)  probe.dat"
} >nb-files.sha256
touch nb-flushed
say "ok"
