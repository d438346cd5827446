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

# ---- nbdkit server helpers (the same block in every test-nbd-*.sh) ----
PLUGIN=$BUILD_DIR/nbdkit-wcache-plugin.so
[[ -f "$PLUGIN" ]] || fail "plugin $PLUGIN is missing (build the tree first)"
# An ASan/UBSan plugin needs its runtimes preloaded into the uninstrumented nbdkit.
NBDKIT=(nbdkit)
if [[ "${WC_SANITIZE:-}" == *address* ]]; then
	NBDKIT=(env "LD_PRELOAD=$(cc -print-file-name=libasan.so) $(cc -print-file-name=libubsan.so)"
		"ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" nbdkit)
fi
SRV_PID=
# srv_start ARGS...: nbdkit -f with the plugin and ARGS on $TMPD/srv.sock in
# the background; sets SRV_PID and URI once it is ready to accept clients.
srv_start() {
	local i
	rm -f "$TMPD/srv.sock" "$TMPD/srv.pid"
	"${NBDKIT[@]}" -f -U "$TMPD/srv.sock" -P "$TMPD/srv.pid" "$PLUGIN" "$@" \
		>>"$TMPD/srv.log" 2>&1 &
	SRV_PID=$!
	URI="nbd+unix:///?socket=$TMPD/srv.sock"
	for ((i = 0; i < 300; i++)); do
		[[ -s "$TMPD/srv.pid" ]] && return 0
		if ! kill -0 "$SRV_PID" 2>/dev/null; then
			cat "$TMPD/srv.log" >&2
			fail "nbdkit exited while starting: $*"
		fi
		sleep 0.1
	done
	fail "nbdkit did not start within 30 s"
}
# srv_stop: SIGTERM makes the plugin commit and close the cache; nbdkit must exit 0.
srv_stop() {
	local rc=0
	kill -TERM "$SRV_PID"
	wait "$SRV_PID" || rc=$?
	SRV_PID=
	if ((rc != 0)) || grep -Eq 'ERROR: [A-Za-z]+Sanitizer|runtime error:' "$TMPD/srv.log"; then
		cat "$TMPD/srv.log" >&2
		fail "nbdkit exited with $rc on SIGTERM (or a sanitizer report)"
	fi
}
srv_cleanup() {
	if [[ -n "$SRV_PID" ]]; then
		kill -KILL "$SRV_PID" 2>/dev/null
		wait "$SRV_PID" 2>/dev/null
	fi
	return 0
}
cleanup_fn srv_cleanup
# ---- end of server helpers ----

size=$((256 << 20))
head -c "$size" /dev/urandom >in.img
want=$(sha256 in.img)
truncate -s "$size" origin.img
truncate -s 64M cache.img
ctl=$TMPD/ctl.sock
srv_start origin=origin.img cache=cache.img control="$ctl"

info "nbdcopy in (--flush) and out"
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

info "message flush: the origin alone holds the image"
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
info "ok"
