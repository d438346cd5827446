#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A real Prometheus server scrapes the plugin's metrics-listen endpoint
# (issue 17): started on loopback with a private TSDB, it must report the
# target up and return the server's wcache_writes_total (256 blocks after
# 1 MiB written) through its HTTP query API. Label "prometheus" besides
# "integration": it takes a few seconds of Prometheus start-up.
source "$(dirname "$0")/functions.sh"
requires nbdkit qemu-io prometheus curl jq python3
requires_wcache
tmpdir
source "$(dirname "$0")/nbd-functions.sh"

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

truncate -s 64M origin.img
truncate -s 16M cache.img
run_rc 0 "$WCACHE" format cache.img
mport=$(free_port)
pport=$(free_port)
srv_start origin=origin.img cache=cache.img metrics-listen="127.0.0.1:$mport"
run_rc 0 qemu-io -f raw "$URI" -c "write -P 7 0 1M" -c flush

cat >prometheus.yml <<YEOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: wcache
    static_configs:
      - targets: ['127.0.0.1:$mport']
YEOF
PROM_PID=
prom_cleanup() {
	if [[ -n "$PROM_PID" ]]; then
		kill "$PROM_PID" 2>/dev/null
		wait "$PROM_PID" 2>/dev/null
	fi
	return 0
}
cleanup_fn prom_cleanup
prometheus --config.file=prometheus.yml --storage.tsdb.path="$TMPD/tsdb" \
	--web.listen-address="127.0.0.1:$pport" >prom.log 2>&1 &
PROM_PID=$!

# query EXPR: the first result's value, or "" (no sample yet).
query() {
	curl -s --get "http://127.0.0.1:$pport/api/v1/query" --data-urlencode "query=$1" |
		jq -r '.data.result[0].value[1] // empty' 2>/dev/null || true
}
val=
for ((i = 0; i < 300; i++)); do
	kill -0 "$PROM_PID" 2>/dev/null || { cat prom.log >&2; fail "prometheus exited"; }
	val=$(query 'wcache_writes_total{job="wcache"}')
	[[ -n "$val" ]] && break
	sleep 0.1
done
[[ -n "$val" ]] || { tail -20 prom.log >&2; fail "no wcache_writes_total in Prometheus after 30 s"; }
assert_eq "$val" 256 "wcache_writes_total as scraped by Prometheus"
assert_eq "$(query 'up{job="wcache"}')" 1 "target up"
# The labels came through: the cache path is queryable.
assert_eq "$(query "wcache_blocks{cache=\"$TMPD/cache.img\"}")" 4080 "wcache_blocks by cache label"
# Histograms work in PromQL.
assert_eq "$(query 'wcache_write_latency_seconds_count{job="wcache"} >= 1')" \
	"$(query 'wcache_write_latency_seconds_count{job="wcache"}')" "write latency count"
prom_cleanup
PROM_PID=
srv_stop
say "ok"
