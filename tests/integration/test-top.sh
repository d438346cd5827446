#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# 'wcache top' (issue 17): without a terminal it prints a header and one
# line per interval whose dirty column follows the server (256 blocks after
# 1 MiB written) and whose rates come from counter differences; in a real
# terminal (tmux) it draws the full view with the sparkline and quits on
# 'q'; when the server goes away it fails with the reason.
source "$(dirname "$0")/functions.sh"
requires nbdkit qemu-io tmux
requires_wcache
tmpdir
source "$(dirname "$0")/nbd-functions.sh"

truncate -s 64M origin.img
truncate -s 16M cache.img
run_rc 0 "$WCACHE" format cache.img
ctl=$TMPD/ctl.sock
srv_start origin=origin.img cache=cache.img control="$ctl"
run_rc 0 qemu-io -f raw "$URI" -c "write -P 7 0 1M" -c flush

run_rc 2 "$WCACHE" top
err_has "--control PATH is required"
run_rc 2 "$WCACHE" top --control "$ctl" --delay 0
err_has "--delay"

say "line output when not a terminal"
run_rc 0 "$WCACHE" top --control "$ctl" --delay 0.2 --iterations 3 </dev/null
[[ $(wc -l <"$TMPD/out") == 4 ]] || { cat "$TMPD/out" >&2; fail "expected a header and 3 lines"; }
head -1 "$TMPD/out" | grep -Eq '^time +dirty +free +dirty% +reads/s +writes/s' ||
	fail "no header line"
# Columns: time dirty free dirty% ...; 16 MiB cache = 4080 blocks.
awk 'NR > 1 && ($2 != 256 || $3 != 3824) { bad = 1 } END { exit bad }' "$TMPD/out" ||
	{ cat "$TMPD/out" >&2; fail "dirty/free columns do not match the server"; }
# First line has no rate yet; later ones do (no I/O: 0.0).
awk 'NR == 2 && $5 != "-" { bad = 1 } NR == 3 && $5 != "0.0" { bad = 1 } END { exit bad }' \
	"$TMPD/out" || { cat "$TMPD/out" >&2; fail "rates: '-' first, then numbers"; }

say "a rate follows real I/O"
"$WCACHE" top --control "$ctl" --delay 1 --iterations 2 </dev/null >rate.out &
top_pid=$!
sleep 0.3
run_rc 0 qemu-io -f raw "$URI" -c "write -P 8 4M 1M"
wait "$top_pid" || fail "top failed"
w=$(awk 'NR == 3 { print $6 }' rate.out)
awk -v w="$w" 'BEGIN { exit !(w > 100) }' || { cat rate.out >&2; fail "writes/s $w after 256 blocks"; }

say "full view in tmux, q quits"
sess=wctop$$
tmux_cleanup() { tmux kill-session -t "$sess" 2>/dev/null || true; }
cleanup_fn tmux_cleanup
tmux new-session -d -s "$sess" -x 100 -y 30 \
	"LANG=C.UTF-8 '$WCACHE' top --control '$ctl' --delay 0.2; echo top-exit=\$? >'$TMPD/top.rc'"
screen=
for ((i = 0; i < 50; i++)); do
	screen=$(tmux capture-pane -p -t "$sess" 2>/dev/null || true)
	grep -q '^dirty  *512 / 4080 blocks' <<<"$screen" && break
	sleep 0.1
done
grep -q '^wcache top' <<<"$screen" || { echo "$screen" >&2; fail "no title in the tmux pane"; }
grep -Eq '^dirty +512 / 4080 blocks \(12\.5%\)' <<<"$screen" ||
	{ echo "$screen" >&2; fail "dirty line wrong in the tmux pane"; }
grep -q '▂' <<<"$screen" || { echo "$screen" >&2; fail "no sparkline"; }
grep -Eq '^origin errors +0 +state ok' <<<"$screen" || { echo "$screen" >&2; fail "no state line"; }
tmux send-keys -t "$sess" q
for ((i = 0; i < 50; i++)); do [[ -s top.rc ]] && break; sleep 0.1; done
[[ "$(cat top.rc 2>/dev/null)" == top-exit=0 ]] || fail "top did not quit with 0 on q"

say "server gone: exit 1 with the reason"
"$WCACHE" top --control "$ctl" --delay 0.2 </dev/null >gone.out 2>gone.err &
top_pid=$!
sleep 0.5
srv_stop
rc=0
wait "$top_pid" || rc=$?
assert_eq "$rc" 1 "top's exit status after the server stopped"
grep -q "closed the connection\|Connection reset" gone.err || { cat gone.err >&2; fail "no reason given"; }
say "ok"
