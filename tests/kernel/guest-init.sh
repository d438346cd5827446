#!/bin/sh
# SPDX-License-Identifier: MIT
# /init of the kernel-test initramfs (busybox sh, PID 1): load the modules
# listed in /etc/modules, mount the host folder (9p tag "io") at /io, run
# /io/job.sh there, print "=== WC-EXIT <rc>" for vm.sh and power off.
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
vdisks() {
	n=0
	for d in /sys/block/vd*; do
		[ -e "$d" ] && n=$((n + 1))
	done
	echo $n
}
want=$(sed -n 's/.*wc\.disks=\([0-9]*\).*/\1/p' /proc/cmdline)
i=0
while [ "$(vdisks)" -lt "${want:-0}" ] && [ $i -lt 50 ]; do
	sleep 0.1
	i=$((i + 1))
done
export IO=/io
echo "=== WC-START kernel $(uname -r) uptime $(cut -d' ' -f1 /proc/uptime)s, $(vdisks) disks"
cd /io && sh /io/job.sh
rc=$?
cd /
sync
umount /io 2>/dev/null
echo "=== WC-EXIT $rc"
poweroff -f
