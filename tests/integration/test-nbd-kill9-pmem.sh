#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# test-nbd-kill9.sh in pmem mode (p): the cache file on tmpfs, mapped with
# libpmem2; the same writer, kill -9 and per-sector verification.
set -euo pipefail
WC_KILL9_MODE=p exec bash "$(dirname "$0")/test-nbd-kill9.sh"
