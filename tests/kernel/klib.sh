# SPDX-License-Identifier: MIT
# Shared start of the kernel interop tests (test-kernel-compat.sh,
# test-kernel-pmem.sh): the programs under test, vm.sh's settings from their
# WC_KERNEL_* aliases, the seed, the scratch directory W (from the variable
# named by KLIB_WORK_VAR, default under build/tests/kernel/KLIB_WORK_DEFAULT),
# the say/fail/skip helpers, and the counts of checks and failures. Set
# HERE (the tests' directory), TEST_NAME and the KLIB_ variables first.
# shellcheck shell=bash disable=SC2034
ROOT=$(cd "$HERE/../.." && pwd)
: "${WCACHE:=$ROOT/build/wcache}"
: "${WC_KDRIVER:=$ROOT/build/tests/kernel/wc-kdriver}"
: "${WC_KGUEST:=$ROOT/build/tests/kernel/wc-kguest}"
: "${WC_QEMU_CACHE:=${WC_KERNEL_BUILD:-$ROOT/build/tests/qemu}}"
: "${WC_QEMU_ACCEL:=${WC_KERNEL_ACCEL:-auto}}"
: "${WC_QEMU_NO_INSTALL:=${WC_KERNEL_NO_INSTALL:-0}}"
: "${WC_QEMU_VERBOSE:=${WC_KERNEL_VERBOSE:-0}}"
export WC_QEMU_CACHE WC_QEMU_ACCEL WC_QEMU_NO_INSTALL WC_QEMU_VERBOSE
VM=$HERE/../qemu/vm.sh
SEED=${WC_KERNEL_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
W=${!KLIB_WORK_VAR:-$ROOT/build/tests/kernel/$KLIB_WORK_DEFAULT}
T0=$SECONDS
FAILS=0 CHECKS=0

# say, fail, skip
# shellcheck source=../lib/functions.sh
source "$HERE/../lib/functions.sh"

# bad MSG: a failed check; the test goes on and fails at its end.
bad() {
	say "FAIL: $*"
	FAILS=$((FAILS + 1))
}

for p in "$WCACHE" "$WC_KDRIVER" "$WC_KGUEST"; do
	[[ -x "$p" ]] || fail "$p is missing (build first)"
done
