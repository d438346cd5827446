#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Bad input never gets served: malformed plugin parameters, a cache held by
# another server (exclusive lock), a cache formatted with another block size,
# an unformatted cache with format=no and a corrupt superblock each make
# nbdkit refuse to start with a clear message; a clashing control socket too.
# Out-of-range requests from a client get an error and the server keeps
# serving that connection and new ones.
source "$(dirname "$0")/functions.sh"
requires nbdkit nbdinfo qemu-io
requires_wcache
tmpdir

source "$(dirname "$0")/nbd-functions.sh"
# refuse REGEX ARGS...: nbdkit with the plugin and ARGS must exit non-zero
# (never reaching --run) with a message matching REGEX.
# Sanitizer runs only: nbdkit with libasan preloaded can hang in exit() after
# printing an error (p11-kit's constructor runs before ASan is initialised and
# ASan's lazy init inside newlocale() breaks glibc's locale lock; exit() then
# blocks in freelocale()). That hang is killed and tolerated, nothing else.
refuse() {
	local re=$1 rc=0 asan=0
	shift
	timeout -s KILL 20 "${NBDKIT[@]}" -U - "$PLUGIN" "$@" --run 'echo SERVED' \
		>"$TMPD/out" 2>"$TMPD/err" || rc=$?
	if grep -q SERVED "$TMPD/out" || ((rc == 0)); then
		cat "$TMPD/err" >&2
		fail "nbdkit served with bad parameters: $*"
	fi
	[[ "${WC_SANITIZE:-}" == *address* ]] && asan=1
	if grep -Eq 'ERROR: [A-Za-z]+Sanitizer|runtime error:' "$TMPD/err" ||
		((rc > 128 && !(rc == 137 && asan))); then
		cat "$TMPD/err" >&2
		fail "nbdkit crashed or hung (exit $rc): $*"
	fi
	err_has "$re"
}

truncate -s 64M origin.img
truncate -s 16M cache.img

say "malformed parameters"
refuse 'origin=PATH and cache=PATH are required' origin=origin.img
refuse 'origin=PATH and cache=PATH are required' cache=cache.img
refuse 'high_watermark.*101.*out of range' origin=origin.img cache=cache.img high_watermark=101
refuse "high_watermark.*'abc'" origin=origin.img cache=cache.img high-watermark=abc
refuse "unknown option 'bogus'" origin=origin.img cache=cache.img bogus=1
refuse 'block_size.*power of two' origin=origin.img cache=cache.img block-size=1000
refuse "format: 'maybe'" origin=origin.img cache=cache.img format=maybe
refuse "cache-io: 'fast'" origin=origin.img cache=cache.img cache-io=fast
refuse 'high_watermark 50 must be >= low_watermark 70' origin=origin.img cache=cache.img \
	low_watermark=70
refuse 'fua is only valid in pmem mode' origin=origin.img cache=cache.img fua=1
refuse "mode: 'x' is invalid; expected s \(SSD\) or p \(pmem\)" origin=origin.img \
	cache=cache.img mode=x
refuse 'pause_writeback is only valid in SSD mode' origin=origin.img cache=cache.img mode=p \
	pause_writeback=10
refuse 'mode given more than once' origin=origin.img cache=cache.img mode=p mode=s
refuse 'origin given more than once' origin=origin.img origin=origin.img cache=cache.img
# Table options too (issue 16, item 8): the kernel would silently take the last.
refuse 'high_watermark given more than once' origin=origin.img cache=cache.img \
	high_watermark=50 high_watermark=60
refuse 'high_watermark given more than once' origin=origin.img cache=cache.img \
	high_watermark=50 HIGH-WATERMARK=50
refuse 'cleaner given more than once' origin=origin.img cache=cache.img cleaner=1 cleaner=0
refuse 'block-size given more than once' origin=origin.img cache=cache.img \
	block_size=4096 block-size=4096
refuse 'option max_age is given more than once in the table line' \
	table="s origin.img cache.img 4096 4 max_age 10 max_age 20"
run_rc 2 "$WCACHE" serve origin.img cache.img --high-watermark 50 --high_watermark 60
err_has '--high-watermark given more than once'
run_rc 2 "$WCACHE" flush origin.img cache.img --cleaner --cleaner
err_has '--cleaner given more than once'
refuse 'table' table="s origin.img cache.img 4096 2 high_watermark"
refuse 'cannot be combined' table="s origin.img cache.img 4096 0" cleaner=1
refuse 'nonexistent.img.*No such file' origin=nonexistent.img cache=cache.img
truncate -s 4k tiny.img
refuse 'tiny.img: .*(size|bytes)' origin=origin.img cache=tiny.img
touch plain-file
refuse 'not a socket' origin=origin.img cache=cache.img control="$TMPD/plain-file"
# The table form itself works (and formats the blank cache with 4096).
# shellcheck disable=SC2016 # $uri expands in the --run shell
run_rc 0 "${NBDKIT[@]}" -U - "$PLUGIN" table="s origin.img cache.img 4096 1 cleaner" \
	--run 'nbdinfo --size "$uri"'
out_has '^67108864$'

say "cache-io: O_DIRECT on the cache file by default, the page cache with cache-io=buffered"
# Under --run nbdkit forks: the server with the open cache is a child of the
# process that runs the command. Read that descriptor's open flags (octal;
# O_DIRECT is 040000) from /proc. (The command inherits nbdkit's environment:
# under the sanitizer tree pgrep would hang with libasan preloaded.)
# shellcheck disable=SC2016 # expands in the --run shell
show_flags='unset LD_PRELOAD; for p in $(pgrep -P $PPID); do for f in /proc/$p/fd/*; do
	[ "$(readlink "$f")" = "$CACHE_IMG" ] && awk "/^flags/ { print \$2 }" "/proc/$p/fdinfo/${f##*/}"
done; done; true'
export CACHE_IMG=$TMPD/cache.img
for mode in direct buffered; do
	run_rc 0 "${NBDKIT[@]}" -U - "$PLUGIN" origin=origin.img cache=cache.img cache-io=$mode \
		--run "$show_flags"
	flags=$(head -1 "$TMPD/out")
	[[ $flags =~ ^[0-7]+$ ]] || fail "no open flags found for the cache file (got '$flags')"
	direct=$(((8#$flags & 8#40000) != 0))
	if [[ $mode == direct ]]; then
		# tmpfs and some others refuse O_DIRECT: then the engine falls back.
		fs=$(stat -f -c %T "$TMPD")
		[[ $fs == tmpfs ]] || ((direct)) || fail "cache-io=direct: cache file opened without O_DIRECT (flags $flags)"
	else
		((!direct)) || fail "cache-io=buffered: cache file opened with O_DIRECT (flags $flags)"
	fi
done

say "wcache serve checks its options before starting nbdkit"
run_rc 2 "$WCACHE" serve origin.img cache.img --cache-io fast
err_has "--cache-io: 'fast'"
run_rc 0 "$WCACHE" serve --dry-run origin.img cache.img --cache-io buffered
out_has 'cache-io=buffered'
run_rc 2 "$WCACHE" serve origin.img
err_has 'expected ORIGIN and CACHE'
run_rc 2 "$WCACHE" serve origin.img cache.img --socket s.sock --port 10809
err_has 'mutually exclusive'
run_rc 2 "$WCACHE" serve origin.img cache.img --daemon --run true
err_has 'mutually exclusive'
run_rc 2 "$WCACHE" serve origin.img cache.img --high-watermark 101
err_has 'high_watermark.*out of range'
run_rc 2 "$WCACHE" serve origin.img cache.img --low-watermark 70
err_has 'must be >= low_watermark 70'
run_rc 2 "$WCACHE" serve origin.img cache.img --format maybe
err_has "'maybe'"
run_rc 2 "$WCACHE" serve origin.img cache.img --fua
err_has 'fua is only valid in pmem mode'
run_rc 2 "$WCACHE" serve origin.img cache.img --mode x
err_has "--mode: 'x' is not s \(SSD\) or p \(pmem\)"
run_rc 2 "$WCACHE" serve origin.img cache.img --mode p --pause-writeback 5
err_has 'pause_writeback is only valid in SSD mode'
run_rc 1 "$WCACHE" message --control "$TMPD/none.sock" flush
err_has 'cannot connect'
run_rc 1 "$WCACHE" status --control "$TMPD/none.sock"
err_has 'cannot connect'

say "unformatted cache with format=no, corrupt superblock"
truncate -s 16M blank.img
refuse 'not formatted' origin=origin.img cache=blank.img format=no
cp cache.img corrupt.img
printf 'garbage!' | dd of=corrupt.img conv=notrunc status=none
refuse 'magic' origin=origin.img cache=corrupt.img
# Neither refusal may have written anything.
[[ "$(head -c 8 blank.img | od -An -tx1 | tr -d ' ')" = 0000000000000000 ]] ||
	fail "format=no wrote to the blank cache"

say "cache formatted with another block size"
truncate -s 16M c512.img
run_rc 0 "${NBDKIT[@]}" -U - "$PLUGIN" origin=origin.img cache=c512.img block-size=512 \
	--run 'true'
refuse 'formatted with 512' origin=origin.img cache=c512.img block-size=4096
# Without block-size the superblock's is used and advertised.
# shellcheck disable=SC2016 # $uri expands in the --run shell
run_rc 0 "${NBDKIT[@]}" -U - "$PLUGIN" origin=origin.img cache=c512.img \
	--run 'nbdinfo --json --no-content "$uri"'
out_has '"block_size_preferred": 512'

say "cache and origin in use by another server"
ctl=$TMPD/ctl.sock
srv_start origin=origin.img cache=cache.img control="$ctl"
truncate -s 64M origin2.img
truncate -s 16M cache2.img
refuse 'cache.img is in use' origin=origin2.img cache=cache.img
refuse 'origin.img is in use' origin=origin.img cache=cache2.img
refuse 'ctl.sock is in use' origin=origin2.img cache=cache2.img control="$ctl"
# The refusals did not disturb the running server.
run_rc 0 "$WCACHE" status --control "$ctl"
out_has '^error: 0$'
run_rc 1 "$WCACHE" message --control "$ctl" bogus
err_has "unknown message 'bogus'"

say "out-of-range requests: an error, and the server keeps serving"
PY=
for p in /usr/bin/python3 python3; do
	if "$p" -c 'import nbd' 2>/dev/null; then
		PY=$p
		break
	fi
done
if [[ -n "$PY" ]]; then
	cat >oor.py <<'PYEOF'
import sys
import nbd

h = nbd.NBD()
h.set_strict_mode(0)            # let the requests reach the server
h.connect_uri(sys.argv[1])
size = h.get_size()
h.pwrite(b"\x3c" * 4096, 0)
for what, fn in (("read past end", lambda: h.pread(4096, size)),
                 ("read across end", lambda: h.pread(8192, size - 4096)),
                 ("write past end", lambda: h.pwrite(b"x" * 512, size + 4096)),
                 ("zero past end", lambda: h.zero(4096, size)),
                 ("trim past end", lambda: h.trim(4096, size))):
    try:
        fn()
    except nbd.Error as e:
        print("%s: refused (%s)" % (what, e.errnum))
        continue
    sys.exit("%s: succeeded" % what)
# Same connection still works.
assert h.pread(4096, 0) == b"\x3c" * 4096, "data after the errors"
h.shutdown()
PYEOF
	run_rc 0 "$PY" oor.py "$URI"
	[[ $(grep -c refused "$TMPD/out") = 5 ]] || fail "not every out-of-range request was refused"
else
	say "python3-libnbd missing: out-of-range via qemu-io only"
fi
# qemu-io: a read past the end fails; a new connection still works.
run_rc nonzero qemu-io -f raw "$URI" -c "read 64M 4k"
run_rc 0 qemu-io -f raw "$URI" -c "write -P 0x3d 4096 4096" -c "read -P 0x3d 4096 4096"
run_rc 0 nbdinfo --size "$URI"
out_has '^67108864$'
srv_stop
say "ok"
