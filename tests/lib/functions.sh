# shellcheck shell=bash
# SPDX-License-Identifier: MIT
# Messages every test script shares (source it from bash): say, fail, skip,
# each on stderr as "$TEST_NAME: ...". TEST_NAME defaults to the script's name
# without .sh; set it before sourcing for another prefix. Knows nothing of
# wcache, temporary directories or cleanup: the tiers' own helpers do that.

: "${TEST_NAME:=$(basename "$0" .sh)}"

# say MSG: one line of progress.
say() { echo "$TEST_NAME: $*" >&2; }

# fail MSG: the test failed (exit 1).
fail() {
	echo "$TEST_NAME: FAIL: $*" >&2
	exit 1
}

# skip MSG: the test cannot run here (exit 77, CTest's SKIP_RETURN_CODE).
skip() {
	echo "$TEST_NAME: SKIP: $*" >&2
	exit 77
}
