#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# pmem mode end to end with the CLI and the plugin: a cache formatted with
# --mode p is served in p mode (the table line says p with the kernel's
# defaults, status shows the persistence path), the offline tools (check,
# dump, status, export, flush) work on the p-mode image as on any cache, the
# same image serves in s mode with the same data, and an SSD-mode cache
# serves in p mode. Skips without pmem support in the build.
source "$(dirname "$0")/functions.sh"
requires nbdkit qemu-io nbdcopy python3 jq
requires_wcache
tmpdir
requires_pmem
source "$(dirname "$0")/nbd-functions.sh"

truncate -s 32M origin.img
truncate -s 8M cache.img
run_rc 0 "$WCACHE" format --mode p cache.img
run_rc 2 "$WCACHE" format --mode x cache.img
err_has "--mode: 'x' is not s \(SSD\) or p \(pmem\)"

srv_start origin="$TMPD/origin.img" cache="$TMPD/cache.img" mode=p control="$TMPD/ctl"
run_rc 0 qemu-io -f raw "$URI" -c "write -P 0xa1 0 1M" -c "write -P 0xb2 4M 64k" -c flush \
	-c "write -P 0xc3 4096 4096" -c "write -P 0xd4 8M 512" -c flush
run_rc 0 "$WCACHE" status --control "$TMPD/ctl"
grep -Eq '^persistence: pmem: (msync|cache-line|stores persist)' "$TMPD/out" ||
	{ cat "$TMPD/out" >&2; fail "status does not show the pmem persistence path"; }
run_rc 0 "$WCACHE" status --control "$TMPD/ctl" --json
jq -e '.persistence | startswith("pmem: ")' "$TMPD/out" >/dev/null ||
	fail "status --json has no pmem persistence"
# The table line says p; the kernel's pmem defaults are not explicit options.
table=$(python3 -c "
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b'table\n')
print(s.recv(4096).decode().strip())" "$TMPD/ctl")
[[ "$table" == "p $TMPD/origin.img $TMPD/cache.img 4096 0" ]] || fail "table line: '$table'"
run_rc 0 "$WCACHE" message --control "$TMPD/ctl" clear_stats
nbdcopy "$URI" "$TMPD/view-p.img"
srv_stop

# The expected logical device, built by hand.
cp origin.img want.img
python3 - <<'EOF'
with open("want.img", "r+b") as f:
    f.seek(0); f.write(b"\xa1" * 1048576)
    f.seek(4 << 20); f.write(b"\xb2" * 65536)
    f.seek(4096); f.write(b"\xc3" * 4096)
    f.seek(8 << 20); f.write(b"\xd4" * 512)
EOF
cmp view-p.img want.img || fail "p mode: the served device differs from what was written"

# Offline tools on the p-mode image.
run_rc 1 "$WCACHE" check cache.img
run_rc 0 "$WCACHE" dump cache.img
grep -q 'magic: 0x23489321' "$TMPD/out" || fail "dump: no superblock"
run_rc 0 "$WCACHE" export origin.img cache.img export.img
cmp export.img want.img || fail "export of the p-mode cache differs"

# The same image in s mode: same data; the table line says s.
srv_start origin="$TMPD/origin.img" cache="$TMPD/cache.img" control="$TMPD/ctl"
nbdcopy "$URI" "$TMPD/view-s.img"
run_rc 0 "$WCACHE" status --control "$TMPD/ctl"
grep -q '^persistence: block I/O' "$TMPD/out" || fail "s mode: wrong persistence line"
run_rc 0 qemu-io -f raw "$URI" -c "write -P 0xe5 12M 8k" -c flush
srv_stop
cmp view-s.img want.img || fail "s mode reads the p-mode cache differently"
python3 -c "
with open('want.img', 'r+b') as f:
    f.seek(12 << 20); f.write(b'\xe5' * 8192)"

# An SSD-mode-written cache in p mode, then drained offline.
srv_start origin="$TMPD/origin.img" cache="$TMPD/cache.img" mode=p
nbdcopy "$URI" "$TMPD/view-p2.img"
srv_stop
cmp view-p2.img want.img || fail "p mode reads the s-mode writes differently"
run_rc 0 "$WCACHE" flush origin.img cache.img
run_rc 0 "$WCACHE" check cache.img
cmp origin.img want.img || fail "after flush the origin differs"
echo "pmem mode CLI: format, serve, status, check, dump, export, flush, s<->p all agree"
