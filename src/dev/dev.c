/* SPDX-License-Identifier: MIT */
/*
 * Device dispatch: the one place that range-checks I/O and handles NULL
 * hooks before calling a backend. Backends may assume every request they
 * see is non-empty and lies inside [0, dev->size).
 */
#include <errno.h>
#include <inttypes.h>

#include "log.h"
#include "dev.h"

static int dev_check_range(struct wc_dev *dev, const char *what, uint64_t len, uint64_t off)
{
	if (off <= dev->size && len <= dev->size - off)
		return 0;
	return wc_err(-EINVAL, "%s: %s of %" PRIu64 " bytes at offset %" PRIu64
		      " is past the end of the device (%" PRIu64 " bytes)",
		      dev->name, what, len, off, dev->size);
}

int dev_pread(struct wc_dev *dev, void *buf, size_t len, uint64_t off)
{
	int ret = dev_check_range(dev, "read", len, off);

	if (ret < 0 || len == 0)
		return ret;
	return dev->ops->pread(dev, buf, len, off);
}

int dev_pwrite(struct wc_dev *dev, const void *buf, size_t len, uint64_t off)
{
	int ret = dev_check_range(dev, "write", len, off);

	if (ret < 0 || len == 0)
		return ret;
	return dev->ops->pwrite(dev, buf, len, off);
}

int dev_flush(struct wc_dev *dev)
{
	if (!dev->ops->flush)
		return 0;
	return dev->ops->flush(dev);
}

int dev_discard(struct wc_dev *dev, uint64_t len, uint64_t off)
{
	int ret = dev_check_range(dev, "discard", len, off);

	if (ret < 0 || len == 0 || !dev->ops->discard)
		return ret;
	return dev->ops->discard(dev, len, off);
}

void dev_close(struct wc_dev *dev)
{
	if (dev)
		dev->ops->close(dev);
}
