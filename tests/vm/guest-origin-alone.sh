#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest of test-vm-origin-alone.sh: the origins the other VM tests left
# behind, read-only, no cache: CHECKS="DEV:TAG[:fio] ...". For each: e2fsck
# -fn must exit as it did in that test's guest (/io/TAG-fsck.rc, else 0), and
# every file of /io/TAG-files.sha256 must be intact (plus fio.dat's crc32c
# blocks when :fio is given: FIO_SIZE, FIO_BS).
. /io/guest-lib.sh
for c in $CHECKS; do
	dev=${c%%:*}
	tag=${c#*:}
	tag=${tag%%:*}
	want=0
	[ -f /io/$tag-fsck.rc ] && want=$(cat /io/$tag-fsck.rc)
	rc=0
	/usr/sbin/e2fsck -fn /dev/$dev >/tmp/fsck.out 2>&1 || rc=$?
	if [ $rc != "$want" ]; then
		cat /tmp/fsck.out
		fail "$tag on $dev: e2fsck -fn exit $rc, the guest on the cache saw $want"
	fi
	t "$tag on $dev: e2fsck -fn exit $rc as on the cache: $(tail -1 /tmp/fsck.out)"
	mkdir -p /mnt/$dev
	mount -t ext4 -o ro /dev/$dev /mnt/$dev || fail "$tag: mount $dev read-only"
	check_tree /mnt/$dev /io/$tag-files.sha256
	case $c in *:fio) fio_check /mnt/$dev/fio.dat "$FIO_SIZE" "$FIO_BS" ;; esac
	umount /mnt/$dev
done
