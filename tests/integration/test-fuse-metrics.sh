#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# 'wcache fuse' publishes metrics like the nbdkit plugin (issue 17): a
# metrics file written at start and rewritten after writes, an HTTP
# endpoint, and 'wcache metrics --control', all valid for promtool. A bad
# --metrics-listen is refused before anything is mounted.
source "$(dirname "$0")/functions.sh"
source "$(dirname "$0")/fuse-functions.sh"
requires python3 promtool curl
requires_wcache
[[ $(id -u) -eq 0 ]] || skip "needs root (mount)"
[[ -c /dev/fuse ]] || skip "no /dev/fuse: the kernel or container has no FUSE"
tmpdir
cleanup_fn fz_teardown

metric() {
	awk -v n="$2" '$1 ~ "^"n"[{]" { print $2; found=1 } END { exit !found }' "$1" ||
		fail "metric $2 not in $1"
}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
truncate -s 32M origin.img
truncate -s 8M cache.img
mkdir mnt

run_rc 1 "$WCACHE" fuse origin.img cache.img mnt --metrics-listen nowhere
err_has "expected ADDR:PORT"
mountpoint -q mnt && fail "mounted despite a bad --metrics-listen"

fz_start origin.img cache.img mnt --metrics-file "$TMPD/m.prom" --metrics-interval 1 \
	--metrics-listen "127.0.0.1:$port"
[[ -f m.prom ]] || fail "no metrics file after start"
run_rc 0 promtool check metrics <m.prom
dd if=/dev/urandom of=mnt/disk bs=64k count=4 conv=notrunc,fsync status=none
run_rc 0 "$WCACHE" metrics --control "$FZ_CTL"
cp "$TMPD/out" ctl.prom
run_rc 0 promtool check metrics <ctl.prom
assert_eq "$(metric ctl.prom wcache_writes_total)" 64 "blocks written through FUSE"
curl -sS --fail -o http.prom "http://127.0.0.1:$port/metrics" || fail "GET /metrics failed"
assert_eq "$(metric http.prom wcache_writes_total)" 64 "writes over HTTP"
for ((i = 0; i < 50; i++)); do
	[[ "$(metric m.prom wcache_writes_total)" == 64 ]] && break
	sleep 0.1
done
assert_eq "$(metric m.prom wcache_writes_total)" 64 "writes in the metrics file"
fz_stop
say "ok"
