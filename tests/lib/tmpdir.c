/* SPDX-License-Identifier: MIT */
/*
 * Temporary directories for tests (see tmpdir.h). Removal walks the tree with
 * nftw, children first; it never runs a shell.
 */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tmpdir.h"

const char *tmpdir_base(void)
{
	const char *t = getenv("TMPDIR");

	return t && *t ? t : "/tmp";
}

int tmpdir_make(char *out, size_t size, const char *base, const char *name)
{
	int n = snprintf(out, size, "%s/wc-%s-XXXXXX", base, name);

	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	return mkdtemp(out) ? 0 : -errno;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((type == FTW_DP || type == FTW_DNR ? rmdir(path) : unlink(path)) < 0 &&
	    errno != ENOENT)
		return -errno;
	return 0;
}

int tmpdir_remove(const char *path)
{
	int ret = nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);

	if (ret < 0)
		return errno == ENOENT ? 0 : -errno;
	return ret;
}
