/* SPDX-License-Identifier: MIT */
/*
 * RAM device: a zeroed buffer behind a mutex. No volatile cache (flush is a
 * no-op); discard zeroes the range. Contents vanish on close.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "dev.h"

struct mem_dev {
	struct wc_dev dev;
	pthread_mutex_t lock;
	uint8_t *data;		/* lock */
};

static struct mem_dev *to_mem(struct wc_dev *dev)
{
	return dev->priv;
}

static int mem_pread(struct wc_dev *dev, void *buf, size_t len, uint64_t off)
{
	struct mem_dev *m = to_mem(dev);

	pthread_mutex_lock(&m->lock);
	memcpy(buf, m->data + off, len);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int mem_pwrite(struct wc_dev *dev, const void *buf, size_t len, uint64_t off)
{
	struct mem_dev *m = to_mem(dev);

	pthread_mutex_lock(&m->lock);
	memcpy(m->data + off, buf, len);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int mem_discard(struct wc_dev *dev, uint64_t len, uint64_t off)
{
	struct mem_dev *m = to_mem(dev);

	pthread_mutex_lock(&m->lock);
	memset(m->data + off, 0, len);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static void mem_close(struct wc_dev *dev)
{
	struct mem_dev *m = to_mem(dev);

	pthread_mutex_destroy(&m->lock);
	free(m->data);
	free(m);
}

static const struct wc_dev_ops mem_ops = {
	.name = "mem",
	.pread = mem_pread,
	.pwrite = mem_pwrite,
	.discard = mem_discard,
	.close = mem_close,
};

int dev_mem_open(uint64_t size, struct wc_dev **out)
{
	struct mem_dev *m;

	if ((uint64_t)(size_t)size != size)
		return wc_err(-EINVAL, "mem: size %llu does not fit in memory",
			      (unsigned long long)size);
	m = calloc(1, sizeof(*m));
	if (!m)
		return wc_err(-ENOMEM, "mem: out of memory");
	m->data = calloc(size ? size : 1, 1);
	if (!m->data) {
		free(m);
		return wc_err(-ENOMEM, "mem: cannot allocate %llu bytes", (unsigned long long)size);
	}
	pthread_mutex_init(&m->lock, NULL);
	m->dev.ops = &mem_ops;
	m->dev.size = size;
	m->dev.logical_block = 512;
	m->dev.priv = m;
	strcpy(m->dev.name, "mem");
	*out = &m->dev;
	return 0;
}
