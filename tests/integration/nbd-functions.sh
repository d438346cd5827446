# SPDX-License-Identifier: MIT
# nbdkit server helpers shared by tests/integration/test-nbd-*.sh (source it
# after functions.sh and tmpdir): srv_start, srv_stop, srv_cleanup, $PLUGIN, $NBDKIT.
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
# With the ASan preload, nbdkit can hang in exit after any error message was
# formatted (libp11-kit's destructor, glibc's setlocale lock: see
# test-nbd-origin-faults.sh); a server that has closed its cache (its flock
# is free) and then hangs there for 3 s is killed instead.
srv_stop() {
	local rc=0 i closed=0 cache="" cwd=""
	if [[ "${WC_SANITIZE:-}" == *address* ]]; then
		# Before SIGTERM: once the server is gone /proc has nothing to read.
		cache=$(tr '\0' '\n' <"/proc/$SRV_PID/cmdline" 2>/dev/null | sed -n 's/^cache=//p') || true
		cwd=$(readlink "/proc/$SRV_PID/cwd" 2>/dev/null) || true
		[[ -n "$cache" && "$cache" != /* ]] && cache=$cwd/$cache
	fi
	kill -TERM "$SRV_PID"
	if [[ "${WC_SANITIZE:-}" == *address* ]]; then
		for ((i = 0; i < 300 && closed < 30; i++)); do
			kill -0 "$SRV_PID" 2>/dev/null || break
			[[ -n "$cache" ]] && flock -n "$cache" true && closed=$((closed + 1))
			sleep 0.1
		done
		if ((closed >= 30)) && kill -0 "$SRV_PID" 2>/dev/null; then
			say "(ASan preload: the server closed the cache, then hung in exit; killed)"
			kill -KILL "$SRV_PID"
			wait "$SRV_PID" 2>/dev/null || true
			SRV_PID=
			if grep -Eq 'ERROR: [A-Za-z]+Sanitizer|runtime error:|closing the cache' \
				"$TMPD/srv.log"; then
				cat "$TMPD/srv.log" >&2
				fail "nbdkit: a sanitizer report, or closing the cache failed"
			fi
			return 0
		fi
	fi
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
