#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Kernel compatibility, both directions, against the real dm-writecache of
# Debian's stock kernel in qemu (tests/qemu/vm.sh, guest dm). Two VM boots do
# all the kernel work:
#
#   host   wcache writes fresh pairs (wc-kdriver write), makes crash images on
#          fault devices (wc-kdriver crash), and plans kernel workloads (kplan)
#   boot A the kernel runs the planned workloads: some sets end cleanly, the
#          rest are left mid-transaction when the VM is powered off
#   host   kernel-made pairs are split out; wcache continues writing on copies
#          of two of them (wc-kdriver continue)
#   boot B the kernel activates every pair: status, copy of the logical device,
#          flush message, status, remove (the origin alone is then read too)
#   host   every sha256 and status is compared with wcache's view of the same
#          pair (export, check, status, flush on a copy) and with the model
#
# Environment: WCACHE, WC_KDRIVER, WC_KGUEST (built programs; CTest sets them),
# WC_QEMU_CACHE (kernel + initramfs cache shared with the vm tests; CTest sets
# it), WC_KERNEL_WORK (scratch: logs, and after a failure the images, kept
# until the next run), WC_KERNEL_SEED (replay a run). WC_KERNEL_ACCEL,
# WC_KERNEL_NO_INSTALL and WC_KERNEL_VERBOSE stand for vm.sh's WC_QEMU_*
# (and WC_KERNEL_BUILD for WC_QEMU_CACHE when that is unset).
# Exit: 0 all checks passed, 1 a check failed, 77 qemu or the kernel cannot
# be installed here.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034 # read by klib.sh and functions.sh
TEST_NAME=kernel-compat KLIB_WORK_VAR=WC_KERNEL_WORK KLIB_WORK_DEFAULT=work
# shellcheck source=klib.sh
source "$HERE/klib.sh"
# check WHAT A B: A must equal B.
check() {
	if [[ "$2" == "$3" ]]; then
		CHECKS=$((CHECKS + 1))
	else
		bad "$1: '$2' != '$3'"
	fi
}
sha() { sha256sum "$1" | cut -c1-64; }

say "seed $SEED (replay: WC_KERNEL_SEED=$SEED), work dir $W"
rm -rf "$W"
mkdir -p "$W/sets" "$W/A/data" "$W/B"

# Boot preparation (packages, kernel, initramfs, KVM probe) runs while the host
# builds the wcache-side images.
bash "$VM" prepare --guest dm >"$W/prepare.log" 2>&1 &
PREP=$!

# ---------------- the sets ----------------
# name  kind  plan.  Kinds: w = written by wcache, x = crash image (wcache on
# fault devices; POINT:MODE after the plan), k = written by the kernel (table
# arguments after the plan), r = kernel-made pair continued by wcache (base set
# after the plan). Every set's seed is derived from SEED and its position.
# Kernel sets never fill their cache (a full cache starts writeback at the next
# activation, and the status comparison needs a quiet cache). The $BUSY sets,
# where the kernel writes back while the workload runs, do not aim writes at
# earlier extents (overlap=0; random overlaps still happen): Debian's 6.1
# dm-writecache panics with "list_del corruption" in writecache_writeback when
# multi-block writes keep overwriting cached blocks during writeback
# (docs/compat.md, "Kernel versions tested").
NOWB="high_watermark 100 low_watermark 99 autocommit_time 3600000 autocommit_blocks 1000000"
BUSY="high_watermark 20 low_watermark 10 autocommit_time 3600000 autocommit_blocks 1000000"
SETS=(
	"w1 w bs=512,omib=16,cmib=2,txns=6,writes=30,maxblk=96,align=byte,discards=4,msgflush=2,settle=5,hw=30,lw=20,fua=5"
	"w2 w bs=512,start=7,omib=16,cmib=2,txns=6,writes=30,maxblk=96,align=sector,discards=4,msgflush=3,settle=5,hw=30,lw=20"
	"w3 w bs=4096,omib=16,cmib=4,txns=6,writes=30,maxblk=16,align=byte,discards=4,msgflush=2,settle=5,hw=15,lw=10,fua=5"
	"w4 w bs=4096,start=2049,omib=16,cmib=4,txns=6,writes=30,maxblk=16,align=sector,discards=4,msgflush=3,settle=5,hw=20,lw=10"
	"x1 x bs=4096,omib=8,cmib=2,txns=4,writes=20,maxblk=8,align=sector,msgflush=1,discards=2 c3:sb:drop"
	"x2 x bs=4096,omib=8,cmib=2,txns=4,writes=20,maxblk=8,align=sector,msgflush=1,discards=2 c3:meta:tear"
	"x3 x bs=4096,omib=8,cmib=2,txns=4,writes=20,maxblk=8,align=sector,msgflush=1,discards=2 c4:end:tear"
	"x4 x bs=4096,omib=8,cmib=2,txns=4,writes=20,maxblk=8,align=sector,msgflush=1 c3:data:tear"
	"x5 x bs=4096,omib=8,cmib=2,txns=4,writes=20,maxblk=8,align=sector,msgflush=1 f1:mid:tear"
	"x6 x bs=512,start=5,omib=8,cmib=2,txns=4,writes=20,maxblk=24,align=sector,msgflush=1,discards=2 c3:meta:tear"
	"x7 x bs=512,start=5,omib=8,cmib=2,txns=4,writes=20,maxblk=24,align=sector,msgflush=1 c3:sb:tear"
	"x8 x bs=512,omib=8,cmib=2,txns=4,writes=20,maxblk=24,align=sector,msgflush=1 f1:mid:drop"
	"k1 k bs=4096,omib=16,cmib=8,txns=5,writes=25,maxblk=16,msgflush=3,discards=3 $NOWB"
	"k2 k bs=512,omib=16,cmib=4,txns=5,writes=25,maxblk=48,msgflush=2,discards=3 $NOWB"
	"k3 k bs=4096,omib=16,cmib=8,txns=4,writes=25,maxblk=24,overlap=0,discards=2 $BUSY"
	"k4 k bs=4096,omib=16,cmib=8,txns=4,writes=25,maxblk=16,msgflush=2,crash=1 $NOWB"
	"k5 k bs=512,start=8,omib=16,cmib=4,txns=4,writes=25,maxblk=48,discards=2,crash=1 start_sector 8 $NOWB"
	"k6 k bs=4096,omib=16,cmib=8,txns=4,writes=25,maxblk=24,overlap=0,crash=1 $BUSY"
	"r1 r bs=4096,omib=16,txns=3,writes=20,maxblk=16,align=byte,gbase=500 k1"
	"r2 r bs=512,start=8,omib=16,txns=3,writes=20,maxblk=32,align=sector,gbase=500 k5"
)
declare -A KIND PLAN EXTRA SEEDOF BS START OSECT
ORDER=()
i=0
for s in "${SETS[@]}"; do
	read -r name kind plan extra <<<"$s"
	i=$((i + 1))
	ORDER+=("$name")
	KIND[$name]=$kind PLAN[$name]=$plan EXTRA[$name]=${extra:-}
	SEEDOF[$name]=$(((SEED * 131 + i * 7919) % 4294967296))
	BS[$name]=$(sed -n 's/.*bs=\([0-9]*\).*/\1/p' <<<"$plan")
	START[$name]=$(sed -n 's/.*start=\([0-9]*\).*/\1/p' <<<"$plan")
	START[$name]=${START[$name]:-0}
	OSECT[$name]=$(($(sed -n 's/.*omib=\([0-9]*\).*/\1/p' <<<"$plan") * 2048))
done
names_of() {
	local n
	for n in "${ORDER[@]}"; do
		[[ "${KIND[$n]}" == "$1" ]] && echo "$n"
	done
	return 0
}

# driver CMD NAME ARGS...: run wc-kdriver for a set, output to its log.
driver() {
	local cmd=$1 n=$2
	shift 2
	"$WC_KDRIVER" "$cmd" "${SEEDOF[$n]}" "${PLAN[$n]}" "$n" "$@" >>"$W/sets/$n/driver.log" 2>&1
}

# ---------------- host: wcache-made pairs, crash images, kernel plans ----------------
t=$SECONDS
for n in "${ORDER[@]}"; do
	d=$W/sets/$n
	mkdir -p "$d"
	case ${KIND[$n]} in
	w) driver write "$n" "$d/origin.img" "$d/cache.img" "$d/view.img" || bad "$n: wc-kdriver write failed" ;;
	x)
		IFS=: read -r cpt cwhere cmode <<<"${EXTRA[$n]}"
		# The power-cut op number comes from a dry run. The engine's background
		# threads can, rarely (about 1 run in 30 for x6), shift an op between the
		# dry and the real run; only that mismatch is retried, never a data error.
		for try in 1 2 3; do
			rm -f "$d/origin.img" "$d/cache.img" "$d/view.img"
			driver crash "$n" "$cpt:$cwhere" "$cmode" "$d/origin.img" "$d/cache.img" "$d/view.img" && break
			if ((try < 3)) && tail -n 1 "$d/driver.log" |
				grep -Eq 'differs between the dry and the real run|op order not repeatable'; then
				say "$n: op numbering differed between the dry and the real run; retrying"
				continue
			fi
			bad "$n: wc-kdriver crash failed"
			break
		done
		;;
	k)
		driver kplan "$n" "$d/origin.img" "$d/cache.img" "$d/ops" "$W/A/data/$n.bin" ||
			bad "$n: wc-kdriver kplan failed"
		;;
	esac
done
grep -h -E 'n_blocks|power cut|on disk|check:|ops,' "$W"/sets/*/driver.log | sed 's/^/  /'
say "host: wcache-made pairs, crash images and kernel plans in $((SECONDS - t)) s"
((FAILS == 0)) || { cat "$W"/sets/*/driver.log; exit 1; }

set +e
wait $PREP
rc=$?
set -e
cat "$W/prepare.log"
if ((rc == 77)); then
	exit 77
elif ((rc)); then
	say "FAIL: vm.sh prepare failed (exit $rc)"
	exit 1
fi
say "VM ready after $((SECONDS - T0)) s: $(bash "$VM" info)"

# ---------------- packing pairs into three disks ----------------
# Every pair's origin, cache and logical-view copy get a 1 MiB-aligned region
# of /dev/vda, /dev/vdb and /dev/vdc; in the guest dm-linear devices o-NAME
# and c-NAME map them, so one boot serves any number of pairs.
declare -A OOFF COFF VOFF OMIB CMIB
# pack DIR NAME...: build DIR/{origins,caches,views}.img and the offsets (MiB).
pack() {
	local dir=$1 n o=0 c=0 v=0
	shift
	: >"$dir/origins.img"
	: >"$dir/caches.img"
	for n in "$@"; do
		OMIB[$n]=$(($(stat -c %s "$W/sets/$n/origin.img") >> 20))
		CMIB[$n]=$(($(stat -c %s "$W/sets/$n/cache.img") >> 20))
		OOFF[$n]=$o COFF[$n]=$c VOFF[$n]=$v
		dd if="$W/sets/$n/origin.img" of="$dir/origins.img" bs=1M seek="$o" conv=sparse,notrunc status=none
		dd if="$W/sets/$n/cache.img" of="$dir/caches.img" bs=1M seek="$c" conv=sparse,notrunc status=none
		o=$((o + OMIB[$n])) c=$((c + CMIB[$n])) v=$((v + OMIB[$n]))
	done
	truncate -s "${o}M" "$dir/origins.img"
	truncate -s "${c}M" "$dir/caches.img"
	truncate -s "${v}M" "$dir/views.img"
}
# region FILE OFF_MIB LEN_MIB [OUT]: a region as a file (OUT) or its sha256.
region() {
	if [[ -n "${4:-}" ]]; then
		dd if="$1" of="$4" bs=1M skip="$2" count="$3" conv=sparse status=none
	else
		dd if="$1" bs=1M skip="$2" count="$3" status=none | sha256sum | cut -c1-64
	fi
}
# linear_spec NAME...: one "dmsetup create --concise" spec for all o-/c- maps.
linear_spec() {
	local n spec=""
	for n in "$@"; do
		spec+="o-$n,,,,0 $((OMIB[$n] * 2048)) linear /dev/vda $((OOFF[$n] * 2048));"
		spec+="c-$n,,,,0 $((CMIB[$n] * 2048)) linear /dev/vdb $((COFF[$n] * 2048));"
	done
	echo "${spec%;}"
}
# boot DIR LABEL: run the ops in DIR/ops in the VM.
boot() {
	local dir=$1 label=$2 t=$SECONDS rc=0
	cp "$WC_KGUEST" "$dir/wc-kguest"
	printf '/io/wc-kguest /io/ops /io/results.txt\n' >"$W/job-$label.sh"
	: >"$dir/results.txt"
	bash "$VM" run --guest dm --timeout 400 --mem 1024 --disk "$dir/origins.img" \
		--disk "$dir/caches.img" --disk "$dir/views.img" --script "$W/job-$label.sh" \
		--dir "$dir" 2>"$dir/vm.log" || rc=$?
	cat "$dir/vm.log"
	grep -E 'wc-kguest|device-mapper|writecache|Kernel panic|BUG|list_del' "$dir/console.log" | head -40 || true
	if grep -q -E 'kernel BUG|Kernel panic' "$dir/console.log"; then
		say "the guest kernel itself crashed during boot $label (console: $dir/console.log)"
	fi
	if grep -q '^error line' "$dir/results.txt"; then
		bad "boot $label: $(grep -c '^error line' "$dir/results.txt") guest op(s) failed (wc-kguest lines on the console above)"
	fi
	say "boot $label: exit $rc in $((SECONDS - t)) s"
	BOOT_SECS+=" $label=$((SECONDS - t))s"
	return $rc
}
BOOT_SECS=""
result() { sed -n "s/^$1 //p" "$2/results.txt" | tail -1; }

# ---------------- boot A: the kernel writes ----------------
mapfile -t KSETS < <(names_of k)
pack "$W/A" "${KSETS[@]}"
{
	echo "dmconcise $(linear_spec "${KSETS[@]}")"
	# Sets that end cleanly first; then the crash sets, all left mid-transaction.
	for pass in clean crash; do
		for n in "${KSETS[@]}"; do
			[[ "${PLAN[$n]}" == *crash=1* ]] && want=crash || want=clean
			[[ $want == "$pass" ]] || continue
			read -r -a targs <<<"${EXTRA[$n]}"
			echo "dmcreate wc-$n 0 ${OSECT[$n]} writecache s /dev/mapper/o-$n /dev/mapper/c-$n ${BS[$n]} ${#targs[@]} ${targs[*]}"
			sed -e "s|@DEV@|/dev/mapper/wc-$n|g" -e "s|@DM@|wc-$n|g" -e "s|@DATA@|/io/data/$n.bin|g" \
				"$W/sets/$n/ops"
			echo "dmout $n-end status wc-$n"
			if [[ $pass == clean ]]; then
				echo "copy /dev/mapper/wc-$n /dev/vdc $((VOFF[$n] << 20))"
				echo "dm remove wc-$n"
			fi
			echo "mark $n-done"
		done
	done
	echo "crash"
} >"$W/A/ops"
boot "$W/A" A || bad "boot A: the kernel workload failed"
for n in "${KSETS[@]}"; do
	grep -qx "mark $n-done" "$W/A/results.txt" || bad "$n: the kernel did not finish its workload"
	region "$W/A/origins.img" "${OOFF[$n]}" "${OMIB[$n]}" "$W/sets/$n/origin.img"
	region "$W/A/caches.img" "${COFF[$n]}" "${CMIB[$n]}" "$W/sets/$n/cache.img"
	say "$n: kernel status at the end of its workload: $(result "$n-end" "$W/A")"
	if [[ "${PLAN[$n]}" != *crash=1* ]]; then
		region "$W/A/views.img" "${VOFF[$n]}" "${OMIB[$n]}" "$W/sets/$n/kview-A.img"
		driver verify "$n" exact "$W/sets/$n/kview-A.img" ||
			bad "$n: the kernel's logical device differs from the plan's model"
	fi
done
((FAILS == 0)) || exit 1

# ---------------- host: wcache continues on copies of kernel-made pairs ----------------
for n in $(names_of r); do
	base=${EXTRA[$n]}
	cp --sparse=always "$W/sets/$base/origin.img" "$W/sets/$n/origin.img"
	cp --sparse=always "$W/sets/$base/cache.img" "$W/sets/$n/cache.img"
	driver continue "$n" "$W/sets/$n/origin.img" "$W/sets/$n/cache.img" "$W/sets/$n/view.img" ||
		bad "$n: wc-kdriver continue on $base's pair failed"
	grep -h -E 'n_blocks|check:' "$W/sets/$n/driver.log" | sed 's/^/  /'
done

# wcache's offline view of every pair, before the kernel touches it again.
for n in "${ORDER[@]}"; do
	d=$W/sets/$n
	"$WCACHE" export "$d/origin.img" "$d/cache.img" "$d/export.img" -s "${START[$n]}" --no-progress \
		>/dev/null 2>"$d/export.err" || bad "$n: wcache export failed: $(cat "$d/export.err")"
	"$WCACHE" status "$d/cache.img" -s "${START[$n]}" >"$d/status.txt" 2>&1 || bad "$n: wcache status failed"
	set +e
	"$WCACHE" check "$d/cache.img" -s "${START[$n]}" --origin "$d/origin.img" >"$d/check.txt" 2>&1
	echo $? >"$d/check.rc"
	set -e
done

# ---------------- boot B: the kernel reads every pair ----------------
pack "$W/B" "${ORDER[@]}"
{
	echo "dmconcise $(linear_spec "${ORDER[@]}")"
	for n in "${ORDER[@]}"; do
		read -r -a targs <<<"$NOWB"
		((START[$n] == 0)) || targs=(start_sector "${START[$n]}" "${targs[@]}")
		echo "dmcreate wc-$n 0 ${OSECT[$n]} writecache s /dev/mapper/o-$n /dev/mapper/c-$n ${BS[$n]} ${#targs[@]} ${targs[*]}"
		echo "dmout $n-loaded status wc-$n"
		echo "copy /dev/mapper/wc-$n /dev/vdc $((VOFF[$n] << 20))"
		echo "dm message wc-$n 0 flush"
		echo "dmout $n-flushed status wc-$n"
		echo "dm remove wc-$n"
		echo "mark $n-done"
	done
} >"$W/B/ops"
boot "$W/B" B || bad "boot B: the kernel could not read every pair"

# ---------------- compare ----------------
# dmsetup status: start len writecache error total free writeback ...
st_field() { awk -v f="$2" '{ print $f }' <<<"$1"; }
declare -A VERDICT
for n in "${ORDER[@]}"; do
	d=$W/sets/$n
	f0=$FAILS
	if ! grep -qx "mark $n-done" "$W/B/results.txt"; then
		bad "$n: the kernel did not get through activate/read/flush/remove"
		VERDICT[$n]=FAIL
		continue
	fi
	loaded=$(result "$n-loaded" "$W/B")
	flushed=$(result "$n-flushed" "$W/B")
	kview=$(region "$W/B/views.img" "${VOFF[$n]}" "${OMIB[$n]}")
	korigin=$(region "$W/B/origins.img" "${OOFF[$n]}" "${OMIB[$n]}")
	wexport=$(sha "$d/export.img")
	check "$n: kernel error flag after activation" "$(st_field "$loaded" 4)" 0
	check "$n: kernel logical device == wcache export" "$kview" "$wexport"
	check "$n: origin after the kernel's flush == logical device" "$korigin" "$kview"
	check "$n: kernel free == total after flush" "$(st_field "$flushed" 6)" "$(st_field "$flushed" 5)"
	check "$n: total blocks, kernel vs wcache status" "$(st_field "$loaded" 5)" \
		"$(sed -n 's/^total: //p' "$d/status.txt")"
	check "$n: free blocks, kernel vs wcache status" "$(st_field "$loaded" 6)" \
		"$(sed -n 's/^free: //p' "$d/status.txt")"
	dirty=$(($(st_field "$loaded" 5) - $(st_field "$loaded" 6)))
	check "$n: wcache check exit code (kernel sees $dirty dirty blocks)" "$(cat "$d/check.rc")" \
		"$((dirty > 0 ? 1 : 0))"
	case ${KIND[$n]} in
	w | x | r)
		# the driver's own view (wcache_read before close, or recovery of the crash image)
		check "$n: wc-kdriver's view == wcache export" "$(sha "$d/view.img")" "$wexport"
		;;
	esac
	if [[ ${KIND[$n]} == k ]]; then
		region "$W/B/views.img" "${VOFF[$n]}" "${OMIB[$n]}" "$d/kview-B.img"
		if [[ "${PLAN[$n]}" == *crash=1* ]]; then
			driver verify "$n" crash "$d/kview-B.img" || bad "$n: the crash oracle rejects the kernel's view"
		else
			check "$n: kernel view on re-activation == at the end of its workload" "$kview" \
				"$(sha "$d/kview-A.img")"
		fi
	fi
	if [[ ${KIND[$n]} == k || ${KIND[$n]} == x ]]; then
		# wcache's writeback of the same pair must leave the same origin
		cp --sparse=always "$d/origin.img" "$d/wflush-origin.img"
		cp --sparse=always "$d/cache.img" "$d/wflush-cache.img"
		if "$WCACHE" flush "$d/wflush-origin.img" "$d/wflush-cache.img" -s "${START[$n]}" --no-progress \
			>"$d/wflush.log" 2>&1; then
			check "$n: origin after wcache flush == kernel logical device" \
				"$(sha "$d/wflush-origin.img")" "$kview"
		else
			bad "$n: wcache flush failed: $(tail -2 "$d/wflush.log")"
		fi
		rm -f "$d/wflush-origin.img" "$d/wflush-cache.img"
	fi
	((FAILS == f0)) && VERDICT[$n]=ok || VERDICT[$n]=FAIL
done

# ---------------- summary ----------------
say "summary (seed $SEED):"
printf '  %-4s %-22s %5s %6s  %-8s %s\n' set made-by bs start result "kernel status after activation"
for n in "${ORDER[@]}"; do
	case ${KIND[$n]} in
	w) by="wcache" ;;
	x) by="wcache, crash ${EXTRA[$n]}" ;;
	k) [[ "${PLAN[$n]}" == *crash=1* ]] && by="kernel, power cut" || by="kernel" ;;
	r) by="kernel ${EXTRA[$n]} + wcache" ;;
	esac
	printf '  %-4s %-22s %5s %6s  %-8s %s\n' "$n" "$by" "${BS[$n]}" "${START[$n]}" "${VERDICT[$n]:-FAIL}" \
		"$(result "$n-loaded" "$W/B" | cut -d' ' -f4-7)"
done
nw=$(($(names_of w | wc -l) + $(names_of x | wc -l)))
nk=$(names_of k | wc -l)
nr=$(names_of r | wc -l)
say "$nw wcache-made and $nk kernel-made images (+ $nr round trips) cross-checked, $CHECKS comparisons;" \
	"boots:$BOOT_SECS; total $((SECONDS - T0)) s"
if ((FAILS)); then
	say "$FAILS check(s) FAILED; work dir kept: $W"
	exit 1
fi
# Keep the logs, drop the images (~1.5 GB) of a run that passed.
find "$W" \( -name '*.img' -o -name '*.bin' \) -delete
echo "$CHECKS passed, 0 failed"
