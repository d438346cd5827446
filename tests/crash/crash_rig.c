/* SPDX-License-Identifier: MIT */
/*
 * Crash-test harness (see crash_rig.h): power-cut wrapper device with one
 * global op order over both devices, the per-sector crash oracle, the seeded
 * workload generator/runner and the fault-device rig.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crash_rig.h"
#include "log.h"
#include "testing.h"

uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);

	if (!v || !*v)
		return dflt;
	return strtoull(v, NULL, 0);
}

/* ---------------- quiet logger ---------------- */

static __thread char last_msg[512];

void quiet_logger(enum wc_log_level level, const char *msg, void *opaque)
{
	(void)level;
	(void)opaque;
	snprintf(last_msg, sizeof(last_msg), "%s", msg);
	if (getenv("WC_CRASH_VERBOSE"))
		fprintf(stderr, "  [wcache] %s\n", msg);
}

const char *quiet_last(void)
{
	return last_msg;
}

/* ---------------- power-cut wrapper ---------------- */

struct pc_dev {
	struct wc_dev dev;
	struct wc_dev *inner;
	struct pcut *pc;
	int which;
};

static __thread int pc_tag;

void pc_set_thread_tag(int tag)
{
	pc_tag = tag;
}

void pcut_init(struct pcut *pc)
{
	memset(pc, 0, sizeof(*pc));
	pthread_mutex_init(&pc->lock, NULL);
	pthread_mutex_init(&pc->hook_lock, NULL);
	pthread_cond_init(&pc->hook_cond, NULL);
}

void pc_hook_arm(struct pcut *pc, int i, int dev, int kind, uint64_t off, int tag, unsigned skip)
{
	pthread_mutex_lock(&pc->hook_lock);
	pc->hooks[i] = (struct pc_hook){ .armed = true, .dev = dev, .kind = kind, .off = off,
					 .tag = tag, .skip = skip };
	pthread_mutex_unlock(&pc->hook_lock);
}

bool pc_hook_wait(struct pcut *pc, int i, unsigned timeout_ms)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += timeout_ms / 1000;
	ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&pc->hook_lock);
	while (!pc->hooks[i].paused) {
		if (pthread_cond_timedwait(&pc->hook_cond, &pc->hook_lock, &ts))
			break;
	}
	ok = pc->hooks[i].paused;
	pthread_mutex_unlock(&pc->hook_lock);
	return ok;
}

void pc_hook_release(struct pcut *pc, int i)
{
	pthread_mutex_lock(&pc->hook_lock);
	pc->hooks[i].armed = false;
	pc->hooks[i].released = true;
	pthread_cond_broadcast(&pc->hook_cond);
	pthread_mutex_unlock(&pc->hook_lock);
}

void pc_cut_now(struct pcut *pc)
{
	pthread_mutex_lock(&pc->lock);
	pc->cut = true;
	pthread_mutex_unlock(&pc->lock);
}

bool pc_is_cut(struct pcut *pc)
{
	bool cut;

	pthread_mutex_lock(&pc->lock);
	cut = pc->cut;
	pthread_mutex_unlock(&pc->lock);
	return cut;
}

void pc_arm_cut(struct pcut *pc, uint64_t n, bool relative)
{
	pthread_mutex_lock(&pc->lock);
	pc->cut_at = relative ? pc->ops + n : n;
	pthread_mutex_unlock(&pc->lock);
}

/* Pause here if an armed hook matches this op. Called without pc->lock. */
static void pc_hooks(struct pcut *pc, int dev, enum pc_kind kind, uint64_t off)
{
	pthread_mutex_lock(&pc->hook_lock);
	for (int i = 0; i < PC_MAX_HOOKS; i++) {
		struct pc_hook *h = &pc->hooks[i];

		if (!h->armed || h->paused || h->dev != dev || h->kind != (int)kind ||
		    (h->off != PC_ANY_OFF && h->off != off) || (h->tag && h->tag != pc_tag))
			continue;
		if (h->skip) {
			h->skip--;
			continue;
		}
		h->paused = true;
		pthread_cond_broadcast(&pc->hook_cond);
		while (!h->released)
			pthread_cond_wait(&pc->hook_cond, &pc->hook_lock);
		break;
	}
	pthread_mutex_unlock(&pc->hook_lock);
}

void pcut_reset(struct pcut *pc)
{
	pthread_mutex_lock(&pc->lock);
	pc->ops = pc->writes = 0;
	pc->cut_at = pc->fail_writes_from = pc->fail_op = 0;
	pc->cut = false;
	pc->refused = pc->refused_writes = pc->refused_cache_writes = 0;
	pthread_mutex_unlock(&pc->lock);
}

void pcut_destroy(struct pcut *pc)
{
	free(pc->trace);
	pthread_mutex_destroy(&pc->lock);
	pthread_mutex_destroy(&pc->hook_lock);
	pthread_cond_destroy(&pc->hook_cond);
}

static const char *const kind_names[] = { "read", "write", "flush", "discard" };

void pcut_print_trace(const struct pcut *pc, uint64_t from, uint64_t to)
{
	if (!pc->trace)
		return;
	if (from < 1)
		from = 1;
	for (uint64_t i = from; i <= to && i <= pc->ops && i <= pc->trace_max; i++) {
		const struct pc_trace *t = &pc->trace[i - 1];

		fprintf(stderr, "    op %5" PRIu64 ": %-6s %-7s off %8" PRIu64 " len %6" PRIu64
			"  +%7" PRIu64 " us%s\n", i, t->dev == PC_CACHE ? "cache" : "origin",
			kind_names[t->kind], t->off, t->len, t->t_us - pc->trace[from - 1].t_us,
			t->refused ? "  REFUSED" : "");
	}
}

/* Number the op; returns -EIO if it is refused. pc->lock held. */
static int pc_gate(struct pc_dev *d, enum pc_kind kind, uint64_t off, uint64_t len)
{
	struct pcut *pc = d->pc;
	uint64_t n = ++pc->ops;
	bool refuse = false;

	if (pc->cut_at && n >= pc->cut_at)
		pc->cut = true;
	if (pc->cut || pc->fail_op == n)
		refuse = true;
	if (kind == PC_WRITE) {
		uint64_t w = ++pc->writes;

		if (pc->fail_writes_from && w >= pc->fail_writes_from)
			refuse = true;
		if (refuse)
			pc->refused_writes++;
		if (refuse && d->which == PC_CACHE)
			pc->refused_cache_writes++;
	}
	if (refuse)
		pc->refused++;
	if (pc->trace && n <= pc->trace_max) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		pc->trace[n - 1] = (struct pc_trace){ (uint8_t)d->which, (uint8_t)kind, refuse, off, len,
						      (uint64_t)ts.tv_sec * 1000000u +
						      (uint64_t)ts.tv_nsec / 1000 };
	}
	return refuse ? -EIO : 0;
}

static int pc_pread(struct wc_dev *dev, void *buf, size_t len, uint64_t off)
{
	struct pc_dev *d = dev->priv;
	int ret;

	pc_hooks(d->pc, d->which, PC_READ, off);
	pthread_mutex_lock(&d->pc->lock);
	ret = pc_gate(d, PC_READ, off, len);
	if (!ret)
		ret = dev_pread(d->inner, buf, len, off);
	pthread_mutex_unlock(&d->pc->lock);
	return ret;
}

/*
 * Like a real 512-byte-sector disk (and file.c under O_DIRECT), a write of
 * part of a sector is a read-modify-write of the whole sector. The fault
 * device records such a write byte-exactly; its RANDOM_SUBSET/TEAR crash can
 * then reorder it with a later write to the same sector and produce a sector
 * that mixes both, which no real device does.
 */
static int pc_write_sectors(struct wc_dev *inner, const void *buf, size_t len, uint64_t off)
{
	uint64_t lo = off / SECT * SECT, hi = (off + len + SECT - 1) / SECT * SECT;
	uint8_t *tmp;
	int ret;

	if (lo == off && hi == off + len)
		return dev_pwrite(inner, buf, len, off);
	if (hi > inner->size)
		hi = inner->size;
	tmp = malloc(hi - lo);
	if (!tmp)
		return -ENOMEM;
	ret = dev_pread(inner, tmp, hi - lo, lo);
	if (!ret) {
		memcpy(tmp + (off - lo), buf, len);
		ret = dev_pwrite(inner, tmp, hi - lo, lo);
	}
	free(tmp);
	return ret;
}

static int pc_pwrite(struct wc_dev *dev, const void *buf, size_t len, uint64_t off)
{
	struct pc_dev *d = dev->priv;
	int ret;

	pc_hooks(d->pc, d->which, PC_WRITE, off);
	pthread_mutex_lock(&d->pc->lock);
	ret = pc_gate(d, PC_WRITE, off, len);
	if (!ret)
		ret = pc_write_sectors(d->inner, buf, len, off);
	pthread_mutex_unlock(&d->pc->lock);
	return ret;
}

static int pc_flush(struct wc_dev *dev)
{
	struct pc_dev *d = dev->priv;
	int ret;

	pc_hooks(d->pc, d->which, PC_FLUSH, 0);
	pthread_mutex_lock(&d->pc->lock);
	ret = pc_gate(d, PC_FLUSH, 0, 0);
	if (!ret)
		ret = dev_flush(d->inner);
	pthread_mutex_unlock(&d->pc->lock);
	return ret;
}

static int pc_discard(struct wc_dev *dev, uint64_t len, uint64_t off)
{
	struct pc_dev *d = dev->priv;
	int ret;

	pc_hooks(d->pc, d->which, PC_DISCARD, off);
	pthread_mutex_lock(&d->pc->lock);
	ret = pc_gate(d, PC_DISCARD, off, len);
	if (!ret)
		ret = dev_discard(d->inner, len, off);
	pthread_mutex_unlock(&d->pc->lock);
	return ret;
}

static void pc_close(struct wc_dev *dev)
{
	struct pc_dev *d = dev->priv;

	dev_close(d->inner);
	free(d);
}

static const struct wc_dev_ops pc_ops = {
	.name = "powercut",
	.pread = pc_pread,
	.pwrite = pc_pwrite,
	.flush = pc_flush,
	.discard = pc_discard,
	.close = pc_close,
};

/* ---------------- asynchronous mode ---------------- */

/* A request forwarded to the fault device. */
struct pc_req {
	struct wc_io in;	/* what the fault device sees */
	struct wc_io *out;	/* the caller's */
	struct pc_dev *d;
	uint8_t *bounce;	/* a partial-sector write widened at execution */
};

static const enum pc_kind pc_kind_of[] = {
	[WC_IO_READ] = PC_READ, [WC_IO_WRITE] = PC_WRITE, [WC_IO_FLUSH] = PC_FLUSH,
	[WC_IO_DISCARD] = PC_DISCARD,
};

/*
 * The fault device is about to execute io: take the lock (dropped in
 * pc_exec_after, once it executed), number the op and refuse it, or let it
 * run. A write of part of a sector becomes the whole sectors here, read now
 * under the lock, like pc_write_sectors.
 */
static int pc_exec_before(void *opaque, struct wc_io *io)
{
	struct pc_req *q = io->opaque;
	struct pc_dev *d = opaque;
	uint64_t lo, hi;
	int ret;

	pthread_mutex_lock(&d->pc->lock);
	ret = pc_gate(d, pc_kind_of[io->op], io->off, io->len);
	if (ret)
		return wc_err(ret, "%s: power cut (op %" PRIu64 ")", d->dev.name, d->pc->ops);
	if (io->op != WC_IO_WRITE)
		return 0;
	lo = io->off / SECT * SECT;
	hi = (io->off + io->len + SECT - 1) / SECT * SECT;
	if (hi > d->inner->size)
		hi = d->inner->size;
	if (lo == io->off && hi == io->off + io->len)
		return 0;
	q->bounce = malloc(hi - lo);
	if (!q->bounce)
		return -ENOMEM;
	ret = dev_pread(d->inner, q->bounce, hi - lo, lo);
	if (ret)
		return ret;
	memcpy(q->bounce + (io->off - lo), io->buf, io->len);
	io->buf = q->bounce;
	io->off = lo;
	io->len = hi - lo;
	return 0;
}

static void pc_exec_after(void *opaque, struct wc_io *io, int result)
{
	struct pc_dev *d = opaque;

	(void)io;
	(void)result;
	pthread_mutex_unlock(&d->pc->lock);
}

static void pc_in_done(struct wc_io *io, int result)
{
	struct pc_req *q = io->opaque;
	struct wc_io *out = q->out;

	free(q->bounce);
	free(q);
	dev_io_end(out, result);	/* the fault device's or pc_exec_before's message */
}

static void pc_submit(struct wc_dev *dev, struct wc_io **ios, unsigned n)
{
	struct pc_dev *d = dev->priv;
	struct wc_io *batch[64];
	unsigned nb = 0;

	for (unsigned i = 0; i < n; i++) {
		struct wc_io *out = ios[i];
		struct pc_req *q = calloc(1, sizeof(*q));

		pc_hooks(d->pc, d->which, pc_kind_of[out->op], out->op == WC_IO_FLUSH ? 0 : out->off);
		if (!q) {
			dev_io_end(out, wc_err(-ENOMEM, "%s: out of memory", dev->name));
			continue;
		}
		q->out = out;
		q->d = d;
		q->in = (struct wc_io){ .op = out->op, .buf = out->buf, .len = out->len,
					.off = out->off, .done = pc_in_done, .opaque = q };
		batch[nb++] = &q->in;
		if (nb == sizeof(batch) / sizeof(batch[0])) {
			dev_submit(d->inner, batch, nb);
			nb = 0;
		}
	}
	if (nb)
		dev_submit(d->inner, batch, nb);
}

/* Forwarded requests only: dev.c turns the synchronous calls into requests. */
static const struct wc_dev_ops pc_async_ops = {
	.name = "powercut-async",
	.submit = pc_submit,
	.close = pc_close,
};

int pcut_wrap(struct pcut *pc, struct wc_dev *inner, int which, struct wc_dev **out)
{
	struct pc_dev *d = calloc(1, sizeof(*d));

	if (!d) {
		dev_close(inner);
		return -ENOMEM;
	}
	d->inner = inner;
	d->pc = pc;
	d->which = which;
	d->dev.ops = &pc_ops;
	if (pc->async) {
		struct fault_exec_hook hook = { pc_exec_before, pc_exec_after, d };

		if (!dev_is_async(inner))
			abort();	/* rig_set_async() first */
		fault_set_exec_hook(inner, &hook);
		d->dev.ops = &pc_async_ops;
	}
	d->dev.size = inner->size;
	d->dev.logical_block = inner->logical_block;
	d->dev.priv = d;
	snprintf(d->dev.name, sizeof(d->dev.name), "%s", which == PC_CACHE ? "cache" : "origin");
	*out = &d->dev;
	return 0;
}

/* ---------------- content store ---------------- */

#define CSET_MAX 48u

static uint64_t hash512(const uint8_t *p)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (unsigned i = 0; i < SECT; i += 8) {
		uint64_t v;

		memcpy(&v, p + i, 8);
		h = (h ^ v) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	return h;
}

static uint8_t *content(const struct model *m, uint32_t id)
{
	return m->data + (uint64_t)id * SECT;
}

static void ht_rebuild(struct model *m, uint64_t size)
{
	free(m->ht);
	m->ht_size = size;
	m->ht = calloc(size, sizeof(*m->ht));
	if (!m->ht)
		abort();
	for (uint64_t i = 0; i < m->nr; i++) {
		uint64_t k = m->hashes[i] & (size - 1);

		while (m->ht[k])
			k = (k + 1) & (size - 1);
		m->ht[k] = (uint32_t)i + 1;
	}
}

/* Id of the 512-byte content p (added if new). */
static uint32_t store(struct model *m, const uint8_t *p)
{
	uint64_t h = hash512(p), k;

	k = h & (m->ht_size - 1);
	while (m->ht[k]) {
		uint32_t id = m->ht[k] - 1;

		if (m->hashes[id] == h && !memcmp(content(m, id), p, SECT))
			return id;
		k = (k + 1) & (m->ht_size - 1);
	}
	if (m->nr == m->cap) {
		m->cap *= 2;
		m->data = realloc(m->data, m->cap * SECT);
		m->hashes = realloc(m->hashes, m->cap * sizeof(*m->hashes));
		if (!m->data || !m->hashes)
			abort();
	}
	memcpy(content(m, (uint32_t)m->nr), p, SECT);
	m->hashes[m->nr] = h;
	m->ht[k] = (uint32_t)m->nr + 1;
	m->nr++;
	if (m->nr * 2 > m->ht_size)
		ht_rebuild(m, m->ht_size * 2);
	return (uint32_t)m->nr - 1;
}

static void cset_clear(struct cset *s)
{
	s->n = 0;
	s->any = false;
}

static void cset_set_any(struct cset *s)
{
	s->n = 0;
	s->any = true;
}

static void cset_add(struct cset *s, uint32_t id)
{
	if (s->any)
		return;
	for (uint32_t i = 0; i < s->n; i++)
		if (s->ids[i] == id)
			return;
	if (s->n == CSET_MAX) {
		cset_set_any(s);
		return;
	}
	if (s->n == s->max) {
		s->max = s->max ? 2 * s->max : 4;
		s->ids = realloc(s->ids, s->max * sizeof(*s->ids));
		if (!s->ids)
			abort();
	}
	s->ids[s->n++] = id;
}

static void cset_union(struct cset *d, const struct cset *s)
{
	if (s->any) {
		cset_set_any(d);
		return;
	}
	for (uint32_t i = 0; i < s->n; i++)
		cset_add(d, s->ids[i]);
}

static void cset_copy(struct cset *d, const struct cset *s)
{
	cset_clear(d);
	cset_union(d, s);
}

/* ---------------- model ---------------- */

int model_init(struct model *m, const uint8_t *image, uint64_t bytes)
{
	memset(m, 0, sizeof(*m));
	if (bytes % SECT)
		return -EINVAL;
	m->nsec = bytes / SECT;
	m->live = calloc(m->nsec, sizeof(*m->live));
	m->cand = calloc(m->nsec, sizeof(*m->cand));
	m->cap = m->nsec * 2 + 64;
	m->data = malloc(m->cap * SECT);
	m->hashes = malloc(m->cap * sizeof(*m->hashes));
	if (!m->live || !m->cand || !m->data || !m->hashes)
		return -ENOMEM;
	ht_rebuild(m, 1ull << (64 - __builtin_clzll(m->cap * 2)));
	return model_reset_to(m, image);
}

int model_reset_to(struct model *m, const uint8_t *image)
{
	for (uint64_t s = 0; s < m->nsec; s++) {
		uint32_t id = store(m, image + s * SECT);

		cset_clear(&m->live[s]);
		cset_clear(&m->cand[s]);
		cset_add(&m->live[s], id);
		cset_add(&m->cand[s], id);
	}
	return 0;
}

void model_free(struct model *m)
{
	for (uint64_t s = 0; s < m->nsec; s++) {
		free(m->live[s].ids);
		free(m->cand[s].ids);
	}
	free(m->live);
	free(m->cand);
	free(m->data);
	free(m->hashes);
	free(m->ht);
	memset(m, 0, sizeof(*m));
}

/* out := every content of in with bytes [lo, hi) replaced by src. */
static void patch_set(struct model *m, const struct cset *in, struct cset *out, uint32_t lo,
		      uint32_t hi, const uint8_t *src)
{
	uint8_t tmp[SECT];

	cset_clear(out);
	if (lo == 0 && hi == SECT) {
		cset_add(out, store(m, src));
		return;
	}
	if (in->any) {
		cset_set_any(out);
		return;
	}
	for (uint32_t i = 0; i < in->n; i++) {
		memcpy(tmp, content(m, in->ids[i]), SECT);
		memcpy(tmp + lo, src, hi - lo);
		cset_add(out, store(m, tmp));
	}
}

/* The bytes [*lo, *hi) of sector s that the range [off, off+len) covers. */
static void span(uint64_t off, uint64_t len, uint64_t s, uint32_t *lo, uint32_t *hi)
{
	*lo = (uint32_t)(off > s * SECT ? off - s * SECT : 0);
	*hi = (uint32_t)(off + len < (s + 1) * SECT ? off + len - s * SECT : SECT);
}

void model_write(struct model *m, uint64_t off, uint64_t len, const uint8_t *buf, bool acked)
{
	struct cset p = { 0 };

	for (uint64_t s = off / SECT; s < (off + len + SECT - 1) / SECT; s++) {
		uint32_t lo, hi;

		span(off, len, s, &lo, &hi);
		patch_set(m, &m->live[s], &p, lo, hi, buf + (s * SECT + lo - off));
		cset_union(&m->cand[s], &p);
		if (acked)
			cset_copy(&m->live[s], &p);
		else
			cset_union(&m->live[s], &p);
	}
	free(p.ids);
}

void model_fua(struct model *m, uint64_t off, uint64_t len, const uint8_t *buf)
{
	struct cset p = { 0 };

	for (uint64_t s = off / SECT; s < (off + len + SECT - 1) / SECT; s++) {
		uint32_t lo, hi;

		span(off, len, s, &lo, &hi);
		patch_set(m, &m->cand[s], &p, lo, hi, buf + (s * SECT + lo - off));
		cset_copy(&m->cand[s], &p);
	}
	free(p.ids);
}

void model_flush(struct model *m)
{
	for (uint64_t s = 0; s < m->nsec; s++)
		cset_copy(&m->cand[s], &m->live[s]);
}

void model_lose_unflushed(struct model *m)
{
	for (uint64_t s = 0; s < m->nsec; s++)
		cset_copy(&m->live[s], &m->cand[s]);
}

void model_unknown(struct model *m, uint64_t off, uint64_t len)
{
	for (uint64_t s = off / SECT; s < (off + len + SECT - 1) / SECT; s++) {
		cset_set_any(&m->live[s]);
		cset_set_any(&m->cand[s]);
	}
}

int64_t model_check_live(const struct model *m, uint64_t off, uint64_t len, const uint8_t *buf)
{
	for (uint64_t s = off / SECT; s < (off + len + SECT - 1) / SECT; s++) {
		const struct cset *c = &m->live[s];
		const uint8_t *src;
		uint32_t lo, hi;
		bool ok = c->any;

		span(off, len, s, &lo, &hi);
		src = buf + (s * SECT + lo - off);
		for (uint32_t i = 0; i < c->n && !ok; i++)
			ok = !memcmp(content(m, c->ids[i]) + lo, src, hi - lo);
		if (!ok)
			return (int64_t)(s * SECT + lo);
	}
	return -1;
}

int64_t model_check_crash(const struct model *m, const uint8_t *image)
{
	for (uint64_t s = 0; s < m->nsec; s++) {
		const struct cset *c = &m->cand[s];
		const uint8_t *p = image + s * SECT;
		uint64_t h;
		bool ok = c->any;

		if (ok)
			continue;
		h = hash512(p);
		for (uint32_t i = 0; i < c->n && !ok; i++)
			ok = m->hashes[c->ids[i]] == h && !memcmp(content(m, c->ids[i]), p, SECT);
		if (!ok)
			return (int64_t)s;
	}
	return -1;
}

void model_describe_sector(const struct model *m, uint64_t s, const uint8_t *got)
{
	const struct cset *c = &m->cand[s], *l = &m->live[s];

	fprintf(stderr, "    sector %" PRIu64 ": got %016" PRIx64 " (first bytes %02x%02x%02x%02x); "
		"%u candidates:", s, hash512(got), got[0], got[1], got[2], got[3], c->n);
	for (uint32_t i = 0; i < c->n; i++) {
		const uint8_t *p = content(m, c->ids[i]);

		fprintf(stderr, " %016" PRIx64 "(%02x%02x%02x%02x)", m->hashes[c->ids[i]], p[0], p[1], p[2],
			p[3]);
	}
	fprintf(stderr, "; live:");
	for (uint32_t i = 0; i < l->n; i++)
		fprintf(stderr, " %016" PRIx64, m->hashes[l->ids[i]]);
	fprintf(stderr, "\n");
	/* Which bytes differ from the first candidate. */
	if (c->n) {
		const uint8_t *p = content(m, c->ids[0]);
		int first = -1, last = -1, cnt = 0;

		for (int i = 0; i < (int)SECT; i++) {
			if (p[i] != got[i]) {
				if (first < 0)
					first = i;
				last = i;
				cnt++;
			}
		}
		fprintf(stderr, "    vs candidate 0: %d bytes differ in [%d, %d]\n", cnt, first, last);
	}
}

/* ---------------- rig ---------------- */

int rig_init(struct rig *r, const struct rig_cfg *rc, uint64_t seed)
{
	int ret;

	memset(r, 0, sizeof(*r));
	r->rc = *rc;
	pcut_init(&r->pc);
	if (rc->origin_bytes % SECT)
		return -EINVAL;
	ret = dev_fault_open(rc->origin_bytes, &r->origin);
	if (ret)
		return ret;
	ret = dev_fault_open(rc->cache_bytes, &r->cache);
	if (ret)
		return ret;
	r->image = malloc(rc->origin_bytes);
	if (!r->image)
		return -ENOMEM;
	rng_fill(seed ^ 0x5eed0001ull, r->image, rc->origin_bytes);
	ret = dev_pwrite(r->origin, r->image, rc->origin_bytes, 0);
	if (!ret)
		ret = dev_flush(r->origin);
	return ret;
}

int rig_init_images(struct rig *r, const struct rig_cfg *rc, const uint8_t *origin,
		    const uint8_t *cache)
{
	int ret;

	memset(r, 0, sizeof(*r));
	r->rc = *rc;
	pcut_init(&r->pc);
	ret = dev_fault_open(rc->origin_bytes, &r->origin);
	if (!ret)
		ret = dev_fault_open(rc->cache_bytes, &r->cache);
	if (ret)
		return ret;
	r->image = malloc(rc->origin_bytes);
	if (!r->image)
		return -ENOMEM;
	memcpy(r->image, origin, rc->origin_bytes);
	ret = dev_pwrite(r->origin, origin, rc->origin_bytes, 0);
	if (!ret)
		ret = dev_pwrite(r->cache, cache, rc->cache_bytes, 0);
	if (!ret)
		ret = dev_flush(r->origin);
	if (!ret)
		ret = dev_flush(r->cache);
	return ret;
}

void rig_fini(struct rig *r)
{
	rig_close(r);
	dev_close(r->origin);
	dev_close(r->cache);
	free(r->image);
	pcut_destroy(&r->pc);
	memset(r, 0, sizeof(*r));
}

void rig_set_async(struct rig *r, uint64_t seed)
{
	fault_set_async(r->cache, true, seed * 2 + 1);
	fault_set_async(r->origin, true, seed * 2 + 2);
	r->pc.async = true;
}

int rig_open(struct rig *r)
{
	struct wc_dev *o, *c, *wo, *wcd;
	struct wc_cfg cfg;
	char buf[256], *save, *tok;
	int ret;

	if (r->wc)
		return -EBUSY;
	wcache_cfg_init(&cfg);
	cfg.block_size = r->rc.bs;
	cfg.full_wait_ms = r->full_wait_ms ? r->full_wait_ms : 2000;
	cfg.read_only = r->read_only;
	snprintf(buf, sizeof(buf), "%s", r->rc.opts);
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char *v = strtok_r(NULL, " ", &save);

		ret = wcache_cfg_set(&cfg, tok, v);
		if (ret) {
			fprintf(stderr, "bad option %s %s: %s\n", tok, v ? v : "", wcache_last_error());
			abort();
		}
	}
	r->pmem = cfg.mode == WC_MODE_PMEM;
	ret = dev_fault_share(r->origin, &o);
	if (ret)
		return ret;
	ret = dev_fault_share(r->cache, &c);
	if (ret) {
		dev_close(o);
		return ret;
	}
	ret = pcut_wrap(&r->pc, o, PC_ORIGIN, &wo);
	if (ret) {
		dev_close(c);
		return ret;
	}
	ret = pcut_wrap(&r->pc, c, PC_CACHE, &wcd);
	if (ret) {
		dev_close(wo);
		return ret;
	}
	return wc_open_devs(&cfg, wo, wcd, &r->wc);
}

int rig_close(struct rig *r)
{
	int ret;

	if (!r->wc)
		return 0;
	ret = wcache_close(r->wc);
	r->wc = NULL;
	return ret;
}

void rig_crash(struct rig *r, enum fault_crash_mode mode, uint64_t seed)
{
	bool lossy = mode == FAULT_RANDOM_SUBSET || mode == FAULT_TEAR;

	fault_crash(r->cache, r->pmem && lossy ? FAULT_PMEM : mode, seed);
	fault_crash(r->origin, mode, seed ^ 0xa5a5a5a5a5a5ull);
	pcut_reset(&r->pc);
}

int rig_read_all(struct rig *r, uint8_t *buf)
{
	return wcache_read(r->wc, buf, r->rc.origin_bytes, 0);
}

/* ---------------- workload ---------------- */

static const char *const step_names[S_NR] = {
	"write", "write_fua", "write_zeroes", "flush", "discard", "read", "msg_flush", "reopen",
	"msg_other",
};

const char *step_name(unsigned kind)
{
	return kind < S_NR ? step_names[kind] : "?";
}

/* A write range: aligned blocks, unaligned bytes, or sectors; often over recent blocks. */
static void gen_range(struct rng *g, uint32_t bs, uint64_t origin, const uint64_t *hot,
		      uint64_t nhot, uint64_t *off, uint64_t *len)
{
	uint64_t nblk = (origin + bs - 1) / bs;
	uint64_t blk = nhot && rng_range(g, 0, 99) < 50 ? hot[rng_range(g, 0, nhot - 1)]
							 : rng_range(g, 0, nblk - 1);
	unsigned kind = (unsigned)rng_range(g, 0, 99);

	if (rng_range(g, 0, 99) < 6)
		blk = nblk - 1;	/* the (possibly partial) last block */
	if (kind < 50) {
		uint64_t n = rng_range(g, 1, rng_range(g, 0, 3) == 0 ? 8 : 2);

		*off = blk * bs;
		*len = n * bs;
	} else if (kind < 80) {
		*off = blk * bs + rng_range(g, 0, bs - 1);
		*len = rng_range(g, 1, rng_range(g, 0, 2) == 0 ? 3 * bs : bs);
	} else {
		*off = blk * bs + rng_range(g, 0, bs / SECT - 1) * SECT;
		*len = rng_range(g, 1, 2 * bs / SECT) * SECT;
	}
	if (*off >= origin)
		*off = origin - 1;
	if (*len > origin - *off)
		*len = origin - *off;
}

int wl_generate(uint64_t seed, const struct wl_cfg *wc, uint32_t bs, uint64_t origin,
		struct step **out)
{
	struct rng g = { seed };
	struct step *st = calloc(wc->nsteps, sizeof(*st));
	uint64_t hot[16], nhot = 0, total = 0;

	if (!st)
		return -ENOMEM;
	for (unsigned k = 0; k < S_NR; k++)
		total += wc->pct[k];
	for (uint64_t i = 0; i < wc->nsteps; i++) {
		uint64_t x = rng_range(&g, 0, total - 1);
		unsigned k = 0;
		struct step *s = &st[i];

		while (x >= wc->pct[k])
			x -= wc->pct[k++];
		s->kind = (uint8_t)k;
		s->dseed = seed * 1000003ull + i;
		switch (k) {
		case S_WRITE:
		case S_WRITE_FUA:
		case S_ZEROES:
			gen_range(&g, bs, origin, hot, nhot, &s->off, &s->len);
			hot[nhot < 16 ? nhot++ : rng_range(&g, 0, 15)] = s->off / bs;
			break;
		case S_DISCARD:
			gen_range(&g, bs, origin, hot, nhot, &s->off, &s->len);
			/* sector aligned, so the oracle's "unknown" sectors are exact */
			s->off = s->off / SECT * SECT;
			s->len = (s->len + SECT - 1) / SECT * SECT;
			if (s->len > origin - s->off)
				s->len = origin - s->off;
			break;
		case S_READ:
			s->off = rng_range(&g, 0, origin - 1);
			s->len = rng_range(&g, 1, origin - s->off < 4 * bs ? origin - s->off : 4 * bs);
			break;
		default:
			break;
		}
	}
	*out = st;
	return 0;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void note_err(struct wl_result *res, uint64_t i, int ret)
{
	if (ret == -ETIMEDOUT)
		res->timeouts++;
	if (!ret)
		return;
	if (!res->errors++) {
		res->first_err_step = i;
		res->first_err = ret;
	}
}

void wl_run(struct rig *r, struct model *m, const struct step *steps, uint64_t n,
	    struct wl_result *res)
{
	uint64_t maxlen = 0;
	uint8_t *buf, *rbuf;

	memset(res, 0, sizeof(*res));
	res->bad_read_step = -1;
	res->bad_read_off = -1;
	for (uint64_t i = 0; i < n; i++)
		if (steps[i].len > maxlen)
			maxlen = steps[i].len;
	buf = malloc(maxlen + 1);
	rbuf = malloc(maxlen + 1);
	if (!buf || !rbuf)
		abort();
	for (uint64_t i = 0; i < n; i++) {
		const struct step *s = &steps[i];
		uint64_t t0 = mono_ns(), dt;
		int ret = 0;

		if (!r->wc && s->kind != S_REOPEN)
			continue;
		/* After the power cut, failing steps add little (and may each wait for space). */
		if (res->errors >= 2 && pc_is_cut(&r->pc))
			break;
		switch (s->kind) {
		case S_WRITE:
		case S_WRITE_FUA:
			rng_fill(s->dseed, buf, s->len);
			ret = wcache_write(r->wc, buf, s->len, s->off, s->kind == S_WRITE_FUA ? WC_FUA : 0);
			model_write(m, s->off, s->len, buf, ret == 0);
			if (!ret && s->kind == S_WRITE_FUA)
				model_fua(m, s->off, s->len, buf);
			break;
		case S_ZEROES: {
			unsigned fl = (s->dseed & 3) == 0 ? WC_FUA : 0;

			memset(buf, 0, s->len);
			ret = wcache_write_zeroes(r->wc, s->len, s->off, fl);
			model_write(m, s->off, s->len, buf, ret == 0);
			if (!ret && fl)
				model_fua(m, s->off, s->len, buf);
			break;
		}
		case S_FLUSH:
			ret = wcache_flush(r->wc);
			if (!ret)
				model_flush(m);
			break;
		case S_DISCARD:
			ret = wcache_discard(r->wc, s->len, s->off, 0);
			model_unknown(m, s->off, s->len);
			break;
		case S_READ:
			ret = wcache_read(r->wc, rbuf, s->len, s->off);
			if (!ret && res->bad_read_step < 0) {
				int64_t bad = model_check_live(m, s->off, s->len, rbuf);

				if (bad >= 0) {
					res->bad_read_step = (int64_t)i;
					res->bad_read_off = bad;
				}
			}
			break;
		case S_MSG_FLUSH:
			ret = wcache_message(r->wc, "flush");
			if (!ret)
				model_flush(m);
			break;
		case S_MSG_OTHER: {
			static const char *const msgs[] = { "cleaner", "flush_on_suspend", "clear_stats" };

			ret = wcache_message(r->wc, msgs[s->dseed % 3]);
			break;
		}
		case S_REOPEN:
			if (r->wc) {
				ret = rig_close(r);
				/* A failed close is like a crash: unflushed writes may be gone. */
				if (!ret)
					model_flush(m);
				else
					model_lose_unflushed(m);
				note_err(res, i, ret);
			}
			ret = rig_open(r);
			break;
		}
		note_err(res, i, ret);
		dt = mono_ns() - t0;
		if (dt > res->max_step_ns)
			res->max_step_ns = dt;
		if (dt > 50000000ull && getenv("WC_CRASH_SLOW") && r->wc) {
			struct wc_stats ws;

			wcache_get_stats(r->wc, &ws);
			fprintf(stderr, "  slow step %" PRIu64 " (%s %" PRIu64 "+%" PRIu64 "): %" PRIu64
				" ms ret %d cut %d; free %" PRIu64 " wb %" PRIu64 " full waits %" PRIu64
				" wb runs %" PRIu64 " commits %" PRIu64 " err %d\n", i, step_name(s->kind),
				s->off, s->len, dt / 1000000, ret, pc_is_cut(&r->pc), ws.free_blocks,
				ws.writeback_blocks, ws.full_waits, ws.writeback_runs, ws.commits, ws.error);
		}
	}
	res->open = r->wc != NULL;
	if (r->wc) {
		char line[256];

		if (wcache_status(r->wc, line, sizeof(line)) > 0 && line[0] == '1')
			res->status_error = true;
	}
	free(buf);
	free(rbuf);
}
