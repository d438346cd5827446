#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Bulk copy through the plugin with a cache smaller than the data (writeback
# runs during the copy): nbdcopy a 256 MiB random image in (--flush, several
# connections and requests in flight) and out again, checksums equal. Then
# "message flush" on the control socket writes everything back: the origin
# file alone must hold the image, and after a clean stop the cache checks
# clean. A wrong flush/writeback leaves the origin's checksum different.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdcopy jq sha256sum
requires_wcache
tmpdir

source "$(dirname "$0")/nbd-functions.sh"

size=$((256 << 20))
head -c "$size" /dev/urandom >in.img
want=$(sha256 in.img)
truncate -s "$size" origin.img
truncate -s 64M cache.img
ctl=$TMPD/ctl.sock
srv_start origin=origin.img cache=cache.img control="$ctl"

say "nbdcopy in (--flush) and out"
run_rc 0 nbdcopy --flush --connections=4 --requests=16 in.img "$URI"
run_rc 0 nbdcopy "$URI" out.img
assert_eq "$(sha256 out.img)" "$want" "image read back through the cache"
run_rc 0 nbdcopy --connections=1 --requests=1 "$URI" out1.img
assert_eq "$(sha256 out1.img)" "$want" "image read back over one connection"

"$WCACHE" status --control "$ctl" --json >st.json
jq -e '.error == 0 and .writes > 0 and .flushes > 0' st.json >/dev/null || {
	cat st.json >&2
	fail "unexpected counters after the copy"
}

say "message flush: the origin alone holds the image"
run_rc 0 "$WCACHE" message --control "$ctl" flush
"$WCACHE" status --control "$ctl" --json >st.json
jq -e '.dirty == 0 and .free == .total and .writeback == 0' st.json >/dev/null || {
	cat st.json >&2
	fail "blocks still dirty after message flush"
}
assert_eq "$(sha256 origin.img)" "$want" "origin after message flush"

# Still served correctly after the writeback (reads now come from the origin).
run_rc 0 nbdcopy "$URI" out2.img
assert_eq "$(sha256 out2.img)" "$want" "image read back after the writeback"
srv_stop
run_rc 0 "$WCACHE" check cache.img
say "ok"
