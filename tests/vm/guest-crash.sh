#!/bin/sh
# SPDX-License-Identifier: MIT
# Guest of test-vm-crash.sh. Two wcache exports through qemu's NBD client
# with reconnect-delay: /dev/vda (server wb: volatile write cache, guest
# flushes) and /dev/vdb (server wt: write-through, FUA on every write), ext4
# on both. Each round: copy the host's tree sR to both, sync, tell the host
# (synced-R), then write files on both at once (dd conv=fsync each) while the
# host kills both servers with kill -9 and restarts them, until it says
# restarted-R, and AFTER more files. A file whose fsync returned before the
# host announced the kill (killing-R) goes to TAG-before.sha256, any other to
# TAG-after.sha256. At the end: sync, umount, and the checks below (strict
# on vdb, measured on vda). Env: ROUNDS, AFTER.
. /io/guest-lib.sh

# writer TAG MNT R: the files of round R on MNT.
writer() {
	tag=$1 mnt=$2 r=$3 k=0 stop=-1
	mkdir -p "$mnt/u$r"
	while [ $k != $stop ]; do
		f=u$r/f$k
		/bin/dd if=/io/src/pool/p$((k % 8)) of="$mnt/$f" bs=64k conv=fsync status=none ||
			fail "$tag round $r: writing $f"
		if [ -e /io/killing-$r ]; then when=after; else when=before; fi
		(cd "$mnt" && sha256sum "$f") >>"/io/$tag-$when.sha256"
		k=$((k + 1))
		[ $stop = -1 ] && [ -e /io/restarted-$r ] && stop=$((k + AFTER))
	done
	echo "$k" >"/tmp/$tag-count"
}

: >/io/wb-before.sha256
: >/io/wb-after.sha256
: >/io/wt-before.sha256
: >/io/wt-after.sha256
for d in vda vdb; do
	mkext4 /dev/$d
	mkdir -p /mnt/$d
	mount -t ext4 /dev/$d /mnt/$d || fail "mount $d"
done
r=1
while [ $r -le "$ROUNDS" ]; do
	cp -a /io/src/s$r /mnt/vda/ || fail "copy s$r to vda"
	cp -a /io/src/s$r /mnt/vdb/ || fail "copy s$r to vdb"
	sync
	mark synced-$r
	t "round $r: s$r copied and synced; writing until the servers are back"
	writer wb /mnt/vda $r &
	p1=$!
	writer wt /mnt/vdb $r &
	p2=$!
	wait $p1 || fail "round $r: the writer on vda failed"
	wait $p2 || fail "round $r: the writer on vdb failed"
	t "round $r: $(cat /tmp/wb-count) files on vda, $(cat /tmp/wt-count) on vdb written across the crash"
	r=$((r + 1))
done
sync
for d in vda vdb; do
	umount /mnt/$d || fail "umount $d"
done
echo 3 >/proc/sys/vm/drop_caches

# count_bad ROOT MANIFEST...: the number of files that differ (or are gone);
# the lines that match are added to /tmp/ok.sha256.
count_bad() {
	root=$1 bad=0
	shift
	cat "$@" >/tmp/all.sha256
	while read -r line; do
		if echo "$line" | (cd "$root" && sha256sum -c -s 2>/dev/null); then
			echo "$line" >>/tmp/ok.sha256
		else
			bad=$((bad + 1))
		fi
	done </tmp/all.sha256
	echo $bad
}

# wt: every write was FUA, so nothing acknowledged can be lost: e2fsck must
# be clean and every file (trees, files written before and across the
# kills) intact.
fsck_clean /dev/vdb
mount -t ext4 -o ro /dev/vdb /mnt/vdb || fail "mount vdb read-only"
r=1
while [ $r -le "$ROUNDS" ]; do
	check_tree /mnt/vdb /io/s$r.sha256
	r=$((r + 1))
done
check_tree /mnt/vdb /io/wt-before.sha256 /io/wt-after.sha256
umount /mnt/vdb
cat /io/s*.sha256 /io/wt-before.sha256 /io/wt-after.sha256 >/io/wt-ok.sha256
echo 0 >/io/wt-fsck.rc

# wb: the same checks, measured and reported in /io/wb-report.txt; the host
# decides (writes that no flush covered before a kill are lost by design).
rc=0
/usr/sbin/e2fsck -fn /dev/vda >/io/wb-fsck.out 2>&1 || rc=$?
echo $rc >/io/wb-fsck.rc
t "wb: e2fsck -fn /dev/vda exit $rc: $(tail -1 /io/wb-fsck.out)"
: >/tmp/ok.sha256
trees=$(cat /io/s*.sha256 | wc -l) before=$(wc -l </io/wb-before.sha256) after=$(wc -l </io/wb-after.sha256)
if mount -t ext4 -o ro /dev/vda /mnt/vda; then
	trees_bad=$(count_bad /mnt/vda /io/s*.sha256)
	before_bad=$(count_bad /mnt/vda /io/wb-before.sha256)
	after_bad=$(count_bad /mnt/vda /io/wb-after.sha256)
	umount /mnt/vda
else
	trees_bad=$trees before_bad=$before after_bad=$after
fi
cp /tmp/ok.sha256 /io/wb-ok.sha256
echo "fsck=$rc trees_bad=$trees_bad/$trees before_bad=$before_bad/$before" \
	"after_bad=$after_bad/$after" >/io/wb-report.txt
t "wb: $(cat /io/wb-report.txt)"
