#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Kernel interop in pmem mode, both directions, against the real dm-writecache
# of Debian's stock kernel in qemu (tests/qemu/vm.sh, guest pmem): the guest's
# RAM is a host file and memmap= makes 64 MiB of it legacy pmem, /dev/pmem0,
# whose bytes lie at a known offset of that file. Two boots:
#
#   host   wcache writes p-mode pairs through the public API (wc-kdriver write
#          with pmem=1: cache files mapped with libpmem2), one with 512-byte
#          blocks and unaligned FUA writes, and one cut by a power cut on the
#          pmem fault model (wc-kdriver crash ... tear: FAULT_PMEM); a kernel
#          workload is planned (kplan, last transaction left uncommitted)
#   boot A for each wcache pair: its cache is copied into pmem0, activated with
#          "writecache p", the logical device copied out (block-size O_DIRECT
#          reads: the 6.1 pmem read bug), flushed to the origin, removed; then
#          the kernel runs its workload on a fresh pmem0 and the VM is powered
#          off in the middle of a transaction
#   host   the kernel's cache is cut out of the RAM file; wcache reads it
#          (export, and serve --mode p)
#   boot B the kernel activates its cut cache again and copies the logical device
#   host   every view is compared: kernel vs wcache, both vs the plan's model
#
# Environment as test-kernel-compat.sh (WCACHE, WC_KDRIVER, WC_KGUEST,
# WC_QEMU_CACHE, WC_KERNEL_SEED, ...); scratch in WC_KERNEL_PMEM_WORK.
# Exit: 0 all checks passed, 1 a check failed, 77 qemu or the kernel cannot
# be installed here, or this build has no pmem mode (libpmem2).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034 # read by klib.sh and functions.sh
TEST_NAME=kernel-pmem KLIB_WORK_VAR=WC_KERNEL_PMEM_WORK KLIB_WORK_DEFAULT=work-pmem
# shellcheck source=klib.sh
source "$HERE/klib.sh"
# Guest RAM (MiB) and where pmem0 lies in it: GPA = RAM file offset below 2 GiB on q35.
MEM=512 PM_OFF=384 PM_SIZE=64

# same WHAT A B: files A and B must be byte-identical.
same() {
	if cmp -s "$2" "$3"; then
		CHECKS=$((CHECKS + 1))
	else
		bad "$1: $(basename "$2") and $(basename "$3") differ ($(cmp "$2" "$3" 2>&1 | head -1))"
	fi
}
# ok WHAT CMD...: CMD must succeed.
ok() {
	local what=$1
	shift
	if "$@" >>"$W/host.log" 2>&1; then
		CHECKS=$((CHECKS + 1))
	else
		bad "$what (see $W/host.log)"
	fi
}

rm -rf "$W"
mkdir -p "$W"
cd "$W"
say "seed $SEED (replay: WC_KERNEL_SEED=$SEED)"

# A build without libpmem2 has no pmem mode: nothing to compare.
truncate -s 1M probe-o.img probe-c.img
if ! "$WCACHE" serve --mode p probe-o.img probe-c.img --run true >probe.log 2>&1; then
	grep -q 'not supported by this build' probe.log && skip "this build has no pmem mode (libpmem2)"
	cat probe.log >&2
	fail "wcache serve --mode p does not start"
fi
rm -f probe-*.img probe.log

"$VM" prepare --guest pmem >prepare.log 2>&1 || {
	rc=$?
	cat prepare.log >&2
	((rc == 77)) && skip "$(tail -1 prepare.log)"
	fail "vm.sh prepare failed"
}

# ---------------- host: wcache-written p-mode pairs ----------------
# NAME PLAN (wc-kdriver keys); the views are wcache's logical devices.
P4K="pmem=1,bs=4096,omib=16,cmib=8,txns=5,writes=25,overlap=40"
P512="pmem=1,bs=512,omib=4,cmib=4,txns=4,writes=30,maxblk=24,align=sector,fua=20"
PCUT="pmem=1,bs=4096,omib=16,cmib=8,txns=5,writes=25,overlap=50"
"$WC_KDRIVER" write "$SEED" "$P4K" w4k o-w4k.img c-w4k.img v-w4k.img >>host.log 2>&1 ||
	fail "wc-kdriver write w4k (see $W/host.log)"
"$WC_KDRIVER" write "$((SEED + 1))" "$P512" w512 o-w512.img c-w512.img v-w512.img >>host.log 2>&1 ||
	fail "wc-kdriver write w512 (see $W/host.log)"
# Power cut (pmem model) at the superblock store of the third commit; the
# driver checks wcache's recovered view against the crash oracle itself.
"$WC_KDRIVER" crash "$((SEED + 2))" "$PCUT" wcut c3:sb tear o-wcut.img c-wcut.img v-wcut.img \
	>>host.log 2>&1 || fail "wc-kdriver crash wcut (see $W/host.log)"

# ---------------- host: the kernel's workload ----------------
PK="bs=4096,omib=16,cmib=64,txns=6,writes=25,overlap=40,crash=1"
"$WC_KDRIVER" kplan "$((SEED + 3))" "$PK" k4k o-k4k.img c-unused.img k4k.ops k4k.data >>host.log 2>&1 ||
	fail "wc-kdriver kplan (see $W/host.log)"
rm -f c-unused.img
truncate -s 1M zero.img
truncate -s 48M out-a.img
truncate -s 16M out-b.img

# ---------------- boot A ----------------
# Disks: vda o-w4k, vdb c-w4k, vdc o-w512, vdd c-w512, vde o-wcut, vdf c-wcut,
# vdg o-k4k, vdh zero (1 MiB), vdi out-a (the logical views at 0, 16 and 32 MiB).
mkdir -p boot-a
cp "$WC_KGUEST" boot-a/wc-kguest
cp k4k.data boot-a/k4k.data
OPTS="4 high_watermark 100 low_watermark 99"
{
	echo "# boot A: wcache-written p caches under the kernel, then the kernel's own"
	slot=0
	for pair in "w4k vda vdb 4096" "w512 vdc vdd 512" "wcut vde vdf 4096"; do
		read -r n o c bs <<<"$pair"
		sect=$(($(stat -c %s "o-$n.img") / 512))
		echo "mark $n"
		echo "copy /dev/$c /dev/pmem0 0"
		echo "dmcreate $n 0 $sect writecache p /dev/$o /dev/pmem0 $bs $OPTS"
		echo "dmout $n-status status $n"
		echo "copy /dev/mapper/$n /dev/vdi $((slot << 24)) $bs"
		echo "dm message $n 0 flush"
		echo "dmout $n-flushed status $n"
		echo "dm remove $n"
		slot=$((slot + 1))
	done
	echo "mark k4k"
	echo "copy /dev/vdh /dev/pmem0 0"
	echo "dmcreate k4k 0 $(($(stat -c %s o-k4k.img) / 512)) writecache p /dev/vdg /dev/pmem0 4096 0"
	sed -e 's|@DEV@|/dev/mapper/k4k|g' -e 's|@DM@|k4k|g' -e 's|@DATA@|/io/k4k.data|g' k4k.ops
	echo "dmout k4k-cut status k4k"
	echo "mark cut"
	echo "crash"
} >boot-a/ops
printf '/io/wc-kguest /io/ops /io/results.txt\n' >job-a.sh
rm -f ram.img
rc=0
"$VM" run --guest pmem --timeout 400 --mem "$MEM" --pmem "ram.img:$PM_OFF:$PM_SIZE" \
	--disk o-w4k.img --disk-ro c-w4k.img --disk o-w512.img --disk-ro c-w512.img \
	--disk o-wcut.img --disk-ro c-wcut.img --disk o-k4k.img --disk-ro zero.img --disk out-a.img \
	--script job-a.sh --dir boot-a >boot-a.log 2>&1 || rc=$?
say "boot A: rc $rc, $(grep -c . boot-a/results.txt 2>/dev/null || echo 0) result lines"
if ! grep -q '^mark cut' boot-a/results.txt 2>/dev/null || ((rc != 125 && rc != 0)); then
	cat boot-a.log >&2
	grep -E 'wc-kguest|device-mapper|writecache|pmem|Kernel panic|BUG' boot-a/console.log | head -30 >&2 || true
	fail "boot A did not reach the power cut (rc $rc)"
fi
if grep -q '^error line' boot-a/results.txt; then
	grep -E 'wc-kguest|device-mapper|writecache' boot-a/console.log | head -20 >&2 || true
	bad "boot A: $(grep -c '^error line' boot-a/results.txt) guest op(s) failed"
fi

# wcache -> kernel: the kernel's logical device is wcache's, and after its
# flush message the origin alone holds it.
slot=0
for n in w4k w512 wcut; do
	size=$(stat -c %s "o-$n.img")
	dd if=out-a.img of="k-view-$n.img" bs=1M iflag=skip_bytes,count_bytes skip=$((slot << 24)) \
		count="$size" status=none
	same "$n: the kernel's logical device vs wcache's" "k-view-$n.img" "v-$n.img"
	same "$n: the origin after the kernel's flush vs wcache's logical device" "o-$n.img" "v-$n.img"
	# The kernel found dirty blocks (status field 2 total, 3 free).
	read -r total free < <(awk -v k="$n-status" '$1 == k { print $6, $7 }' boot-a/results.txt)
	if [[ -z "${total:-}" || "$total" == "$free" ]]; then
		bad "$n: the kernel saw no dirty blocks (status: $(grep "^$n-status" boot-a/results.txt))"
	else
		CHECKS=$((CHECKS + 1))
	fi
	slot=$((slot + 1))
done
ok "w4k: the kernel's view is the plan" "$WC_KDRIVER" verify "$SEED" "$P4K" w4k exact k-view-w4k.img

# ---------------- host: kernel -> wcache ----------------
dd if=ram.img of=c-k4k.img bs=1M skip="$PM_OFF" count="$PM_SIZE" status=none
cp o-k4k.img o-k4k-boot-b.img
ok "k4k: wcache check of the kernel's cut cache" bash -c "'$WCACHE' check c-k4k.img; [ \$? -le 1 ]"
ok "k4k: wcache export of the kernel's cut cache" "$WCACHE" export o-k4k.img c-k4k.img w-view-k4k.img
ok "k4k: wcache's view of the kernel's cut cache holds the crash oracle" \
	"$WC_KDRIVER" verify "$((SEED + 3))" "$PK" k4k crash w-view-k4k.img
# The same image served in pmem mode (mapped, recovered read-write) on copies.
cp o-k4k.img o-k4k-serve.img
cp c-k4k.img c-k4k-serve.img
ok "k4k: wcache serve --mode p on the kernel's cut cache" \
	"$WCACHE" serve --mode p o-k4k-serve.img c-k4k-serve.img \
	--run "nbdcopy \"\$uri\" '$W/w-serve-k4k.img'"
same "k4k: wcache serve --mode p vs wcache export" w-serve-k4k.img w-view-k4k.img

# ---------------- boot B: the kernel re-activates its cut cache ----------------
mkdir -p boot-b
cp "$WC_KGUEST" boot-b/wc-kguest
{
	echo "dmcreate k4k 0 $(($(stat -c %s o-k4k.img) / 512)) writecache p /dev/vda /dev/pmem0 4096 $OPTS"
	echo "dmout k4k-status status k4k"
	echo "copy /dev/mapper/k4k /dev/vdb 0 4096"
	echo "dm remove k4k"
} >boot-b/ops
printf '/io/wc-kguest /io/ops /io/results.txt\n' >job-b.sh
rc=0
"$VM" run --guest pmem --timeout 300 --mem "$MEM" --pmem "ram.img:$PM_OFF:$PM_SIZE" \
	--disk o-k4k-boot-b.img --disk out-b.img --script job-b.sh --dir boot-b >boot-b.log 2>&1 || rc=$?
say "boot B: rc $rc"
if ((rc != 0)); then
	cat boot-b.log >&2
	grep -E 'wc-kguest|device-mapper|writecache|pmem|Kernel panic|BUG' boot-b/console.log | head -30 >&2 || true
	bad "boot B failed (rc $rc)"
else
	same "k4k: the kernel's re-activated cut cache vs wcache export" out-b.img w-view-k4k.img
	CHECKS=$((CHECKS + 1))
fi

say "$CHECKS checks, $FAILS failed, $((SECONDS - T0)) s"
((FAILS == 0)) || fail "$FAILS check(s) failed; images kept in $W (seed $SEED)"
rm -f ./*.img boot-a/k4k.data
echo "kernel pmem interop: $CHECKS checks passed (seed $SEED)"
