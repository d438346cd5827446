#!/bin/sh
# SPDX-License-Identifier: MIT
# /init of every initramfs tests/qemu/vm.sh builds (busybox sh, PID 1): load
# the modules listed in /etc/modules, mount the host folder (9p tag "io") at
# /io, run /io/job.sh there with /io/env.sh sourced, print "=== WC-EXIT <rc>"
# for vm.sh and power off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/tmp TERM=dumb
export DM_DISABLE_UDEV=1	# no udev: libdevmapper creates the /dev/mapper nodes itself
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tmpfs run /run
echo 1 >/proc/sys/kernel/panic_on_oops
while read -r m; do
	insmod "/lib/modules/$m" || echo "init: insmod $m failed"
done </etc/modules
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 io /io || echo "init: no io share"
# The disks named on the command line may appear a little after the modules load.
ndisks() { set -- /sys/block/vd*; [ -e "$1" ] && echo $# || echo 0; }
want=$(sed -n 's/.*wc\.disks=\([0-9]*\).*/\1/p' /proc/cmdline)
i=0
while [ "$(ndisks)" -lt "${want:-0}" ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
export IO=/io
[ -f /io/env.sh ] && . /io/env.sh
echo "=== WC-START kernel $(uname -r) uptime $(cut -d' ' -f1 /proc/uptime)s disks: $(cd /sys/block && ls -d vd* 2>/dev/null | tr '\n' ' ')"
cd /io && sh /io/job.sh
rc=$?
cd /
sync
umount /io 2>/dev/null
echo "=== WC-EXIT $rc"
poweroff -f
