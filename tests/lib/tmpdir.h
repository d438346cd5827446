/* SPDX-License-Identifier: MIT */
/*
 * Private temporary directories for tests: make one, remove it with
 * everything in it. Nothing here knows what a test puts inside.
 */
#ifndef WC_TEST_TMPDIR_H
#define WC_TEST_TMPDIR_H

#include <stddef.h>

/* $TMPDIR if set and not empty, else "/tmp". */
const char *tmpdir_base(void);
/*
 * Create BASE/wc-NAME-XXXXXX (mkdtemp, mode 0700) and write its path to out.
 * Returns 0, -ENAMETOOLONG if it does not fit in size, or mkdtemp's -errno.
 */
int tmpdir_make(char *out, size_t size, const char *base, const char *name);
/*
 * Remove path and everything below it, like rm -rf, without following
 * symbolic links or crossing into other mounted file systems. Returns 0 (also
 * when path does not exist) or the first -errno.
 */
int tmpdir_remove(const char *path);

#endif
