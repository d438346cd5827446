#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# After the guests of test-vm-ext4-fio.sh, test-vm-crash.sh and
# test-vm-nbd-fua.sh powered off, each server got the flush message and
# stopped cleanly. Now one guest boots the origin images alone (read-only,
# no cache): each file system must be as the guest on the cache left it
# (e2fsck -fn clean, or exactly as unclean as it was there) and hold every
# file that guest found intact, and the fio files their crc32c blocks.
source "$(dirname "$0")/vm-lib.sh"
vm_setup origin-alone

checks=() args=() n=0
for spec in ext4-fio:wc:fio crash:wb crash:wt nbd-fua:nb:fio; do
	IFS=: read -r test tag fio <<<"$spec"
	d=$WC_VM_WORK/$test
	[[ -f $d/$tag-flushed ]] ||
		fail "$d/$tag-flushed is missing: test-vm-$test.sh must pass first (ctest runs it first)"
	cp "$d/$tag-files.sha256" io/
	[[ ! -f $d/$tag-fsck.rc ]] || cp "$d/$tag-fsck.rc" io/
	dev=vd$(printf "\\x$(printf %x $((97 + n)))")
	checks+=("$dev:$tag${fio:+:fio}")
	args+=(--disk-ro "$d/$tag-origin.img")
	n=$((n + 1))
done
boot guest --timeout 200 "${args[@]}" --script "$VM_HERE/guest-origin-alone.sh" \
	--env CHECKS="${checks[*]}" --env FIO_SIZE=16M --env FIO_BS=64k
boot_ok guest
say "ok: ${checks[*]}"
# The images in RAM go; the logs stay until the next run.
for test in ext4-fio crash nbd-fua; do
	f=$WC_VM_WORK/$test/images.path
	[[ ! -f $f ]] || { rm -rf "$(cat "$f")"; rm -f "$f"; }
done
