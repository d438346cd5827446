#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# 'wcache info CACHE' (issue 17): a one-screen summary whose numbers agree
# with 'wcache check' (block size, blocks, dirty, seq_count), the exit codes
# of check (0 clean, 1 dirty, 2 not a readable cache, with the reason), a
# --json object with the same numbers, and the last write age from the
# file's modification time. Nothing is written to CACHE.
source "$(dirname "$0")/functions.sh"
requires jq
requires_wcache
writer=$(requires_helper wctest-write)
tmpdir

truncate -s 8M origin.img
truncate -s 2M cache.img
run_rc 0 "$WCACHE" format cache.img --block-size 4096
run_rc 0 "$WCACHE" info cache.img
out_has '^format +dm-writecache SSD mode, version 1'
out_has '^block size +4096 bytes$'
out_has '^dirty +0 blocks'
out_has '^state +clean'
run_rc 0 "$WCACHE" check --json cache.img
nb=$(jq -r .n_blocks "$TMPD/out")
run_rc 0 "$WCACHE" info cache.img
out_has "^blocks +$nb \\("

head -c $((10 * 4096)) /dev/urandom >d
run_rc 0 "$writer" origin.img cache.img 0:d
touch -d '-3 minutes' cache.img
sum=$(sha256 cache.img)
run_rc 1 "$WCACHE" info cache.img
out_has '^dirty +10 blocks, 40 KiB'
out_has '^last write +3 min ago'
out_has "^state +dirty: 'wcache flush ORIGIN cache.img'"
run_rc 1 "$WCACHE" check --json cache.img
seq=$(jq -r .seq_count "$TMPD/out")
run_rc 1 "$WCACHE" info --json cache.img
cp "$TMPD/out" info.json
assert_eq "$(jq -r .status info.json)" dirty "json status"
assert_eq "$(jq -r .dirty info.json)" 10 "json dirty"
assert_eq "$(jq -r .dirty_bytes info.json)" 40960 "json dirty_bytes"
assert_eq "$(jq -r .n_blocks info.json)" "$nb" "json n_blocks"
assert_eq "$(jq -r .seq_count info.json)" "$seq" "json seq_count"
age=$(jq -r .last_write_age_s info.json)
((age >= 170 && age <= 600)) || fail "last_write_age_s $age for a file touched 3 minutes ago"
assert_eq "$(sha256 cache.img)" "$sum" "info changed the cache device"

# Not a cache: exit 2 and why, as check does.
truncate -s 1M blank.img
run_rc 2 "$WCACHE" info blank.img
err_has 'not formatted'
run_rc 2 "$WCACHE" info --json missing.img
assert_eq "$(jq -r .status "$TMPD/out")" unreadable "json status of a missing file"
run_rc 2 "$WCACHE" info
err_has 'missing CACHE'
say "ok"
