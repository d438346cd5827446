/* SPDX-License-Identifier: MIT */
/*
 * wc-kdriver: the host half of the kernel compatibility test (tests/kernel).
 * From a seed and a plan it generates a deterministic workload of writes,
 * discards, commits and flush messages over the self-describing DMWC sector
 * pattern, and runs it through the public API (wcache -> kernel), on fault
 * devices with a power cut (crash images), or writes it out as wc-kguest ops
 * for the real kernel (kernel -> wcache). It also checks any image of a
 * logical device against the plan's model. It never decides pass/fail of
 * the kernel comparison itself: test-kernel-compat.sh does.
 *
 * Data pattern (the kernel-dmwc harness's, so images stay readable by eye):
 * every 512-byte sector starts with the 63-character line
 * "DMWC sector=<logical sector, %010> gen=<write number, %03> set=<name>" and
 * '\n', followed by 448 bytes of 1 + (sector * 31 + gen * 7) % 251. gen 0 is
 * the origin's initial content; every write of a plan has its own gen, so a
 * sector read from any image says where it belongs and which write made it.
 *
 * Model checks: "exact" compares every byte with the plan applied in order
 * (sectors discarded and not rewritten since may hold any content a loose
 * check accepts); "loose" is the crash oracle, per sector: the content at the
 * sector's last completed commit, or a later write that covered it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dev.h"
#include "fault.h"
#include "rng.h"	/* splitmix64: the same stream on every host */
#include "testing.h"
#include "wcache.h"

#define SECT 512u
#define GEN_MIXED UINT32_MAX	/* sector holds bytes of more than one write */
#define F_UNKNOWN 1u		/* discarded and not wholly rewritten since */
#define F_DISC 2u		/* discarded at some point */

static const char *prog = "wc-kdriver";
/* After a deliberate power cut the library's error reports are expected noise. */
static bool power_cut;

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *xmalloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);

	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

/* ---------------- the DMWC sector pattern ---------------- */

static void pattern_sector(uint8_t *dst, uint64_t sector, uint32_t gen, const char *name)
{
	char hdr[160];
	int n = snprintf(hdr, sizeof(hdr), "DMWC sector=%010" PRIu64 " gen=%03" PRIu32 " set=%s",
			 sector, gen, name);

	if (n > 63)
		n = 63;
	memset(dst, ' ', 63);
	memcpy(dst, hdr, (size_t)n);
	dst[63] = '\n';
	memset(dst + 64, 1 + (int)((sector * 31 + (uint64_t)gen * 7) % 251), SECT - 64);
}

/* The pattern of write gen for the bytes [off, off + len) of the logical device. */
static void pattern_fill(uint8_t *dst, uint64_t off, uint64_t len, uint32_t gen, const char *name)
{
	uint8_t sect[SECT];

	while (len) {
		uint64_t s = off / SECT, in = off % SECT, n = SECT - in;

		if (n > len)
			n = len;
		pattern_sector(sect, s, gen, name);
		memcpy(dst, sect + in, n);
		dst += n;
		off += n;
		len -= n;
	}
}

/* ---------------- plans ---------------- */

enum align { AL_BLOCK, AL_SECTOR, AL_BYTE };

struct plan {
	uint32_t bs;
	uint64_t start_sector, origin_bytes, cache_bytes;
	unsigned txns, writes, maxblk, discards, msgflush, overlap, settle, fua, hw, lw;
	bool crash;
	bool pmem;		/* wcache in pmem mode (p); crash images tear like pmem */
	enum align align;
	uint32_t gbase;
};

static const char plan_help[] =
	"PLAN is a comma-separated list of key=value (defaults in brackets):\n"
	"  bs=512|4096 [4096]  start=SECTORS [0]  omib=N origin MiB [16]  cmib=N cache MiB [4]\n"
	"  txns=N transactions [5]  writes=N per transaction [25]  maxblk=N blocks per write [16]\n"
	"  align=block|sector|byte [block]  overlap=PCT writes aimed at an earlier extent [40]\n"
	"  discards=N [0]  msgflush=T flush message after transaction T [0 = none]\n"
	"  settle=T after transaction T wait for watermark writeback, then close and reopen\n"
	"           with the watermarks off, so later transactions stay dirty [0]\n"
	"  fua=PCT FUA writes [0]\n"
	"  hw=PCT lw=PCT wcache watermarks [100,100]  crash=1 last transaction not committed [0]\n"
	"  gbase=N first gen is N+1 (continue: tells new writes from old) [0]\n"
	"  pmem=1 wcache runs in pmem mode (p); a tear crash cuts the cache as pmem\n"
	"         (FAULT_PMEM: 8-byte words, 64-byte lines) [0]\n";

static unsigned long long plan_num(const char *key, const char *v, unsigned long long max)
{
	char *end;
	unsigned long long n;

	errno = 0;
	n = strtoull(v, &end, 0);
	if (errno || *end || end == v || n > max)
		die("plan: bad value '%s' for %s", v, key);
	return n;
}

static void plan_parse(struct plan *p, const char *text)
{
	char *buf = strdup(text), *save = NULL, *kv;

	if (!buf)
		die("out of memory");
	*p = (struct plan){ .bs = 4096, .origin_bytes = 16ull << 20, .cache_bytes = 4ull << 20,
			    .txns = 5, .writes = 25, .maxblk = 16, .overlap = 40, .hw = 100, .lw = 100,
			    .align = AL_BLOCK };
	for (kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *v = strchr(kv, '=');

		if (!v)
			die("plan: '%s' is not key=value\n%s", kv, plan_help);
		*v++ = 0;
		if (!strcmp(kv, "bs"))
			p->bs = (uint32_t)plan_num(kv, v, 4096);
		else if (!strcmp(kv, "start"))
			p->start_sector = plan_num(kv, v, 1u << 30);
		else if (!strcmp(kv, "omib"))
			p->origin_bytes = plan_num(kv, v, 4096) << 20;
		else if (!strcmp(kv, "cmib"))
			p->cache_bytes = plan_num(kv, v, 4096) << 20;
		else if (!strcmp(kv, "txns"))
			p->txns = (unsigned)plan_num(kv, v, 1000);
		else if (!strcmp(kv, "writes"))
			p->writes = (unsigned)plan_num(kv, v, 100000);
		else if (!strcmp(kv, "maxblk"))
			p->maxblk = (unsigned)plan_num(kv, v, 1024);
		else if (!strcmp(kv, "discards"))
			p->discards = (unsigned)plan_num(kv, v, 100000);
		else if (!strcmp(kv, "msgflush"))
			p->msgflush = (unsigned)plan_num(kv, v, 1000);
		else if (!strcmp(kv, "settle"))
			p->settle = (unsigned)plan_num(kv, v, 1000);
		else if (!strcmp(kv, "overlap"))
			p->overlap = (unsigned)plan_num(kv, v, 100);
		else if (!strcmp(kv, "fua"))
			p->fua = (unsigned)plan_num(kv, v, 100);
		else if (!strcmp(kv, "hw"))
			p->hw = (unsigned)plan_num(kv, v, 100);
		else if (!strcmp(kv, "lw"))
			p->lw = (unsigned)plan_num(kv, v, 100);
		else if (!strcmp(kv, "crash"))
			p->crash = plan_num(kv, v, 1);
		else if (!strcmp(kv, "pmem"))
			p->pmem = plan_num(kv, v, 1);
		else if (!strcmp(kv, "gbase"))
			p->gbase = (uint32_t)plan_num(kv, v, 1u << 30);
		else if (!strcmp(kv, "align")) {
			if (!strcmp(v, "block"))
				p->align = AL_BLOCK;
			else if (!strcmp(v, "sector"))
				p->align = AL_SECTOR;
			else if (!strcmp(v, "byte"))
				p->align = AL_BYTE;
			else
				die("plan: align is block, sector or byte, not '%s'", v);
		} else {
			die("plan: unknown key '%s'\n%s", kv, plan_help);
		}
	}
	free(buf);
	if (p->bs < SECT || (p->bs & (p->bs - 1)))
		die("plan: bs %u is not a power of two >= 512", p->bs);
	if (!p->origin_bytes || !p->cache_bytes || !p->txns || !p->maxblk ||
	    (uint64_t)p->maxblk * p->bs > p->origin_bytes)
		die("plan: sizes must be non-zero and a write must fit the origin");
}

/* ---------------- operations ---------------- */

enum op_kind { OP_WRITE, OP_DISCARD, OP_COMMIT, OP_MSG_FLUSH, OP_SETTLE };

static const char *const op_names[] = { "write", "discard", "commit", "msg-flush", "settle" };

struct op {
	enum op_kind kind;
	bool fua;
	uint32_t gen;		/* OP_WRITE */
	uint64_t off, len;	/* bytes: OP_WRITE, OP_DISCARD */
};

struct oplist {
	struct op *v;
	size_t n, cap;
	uint32_t max_gen;
	size_t *by_gen;		/* index in v of write gen (gbase + 1 + i) */
};

static struct op *op_add(struct oplist *l, enum op_kind kind)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 256;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		if (!l->v)
			die("out of memory");
	}
	l->v[l->n] = (struct op){ .kind = kind };
	return &l->v[l->n++];
}

/* An extent for a write or discard: random, or (overlap %) near an earlier write. */
static void pick_extent(struct rng *g, const struct plan *p, const struct oplist *l,
			const size_t *writes, size_t nwrites, bool discard, uint64_t *off, uint64_t *len)
{
	uint64_t unit = p->align == AL_BLOCK ? p->bs : p->align == AL_SECTOR ? SECT : 1;
	uint64_t blocks = 1 + rng_below(g, p->maxblk), o;

	if (discard && unit == 1)
		unit = SECT;	/* discards are whole sectors at least */
	*len = blocks * p->bs;
	if (unit == SECT && *len > SECT)
		*len -= rng_below(g, p->bs / SECT) * SECT;	/* not always whole blocks */
	else if (unit == 1)
		*len = 1 + rng_below(g, *len);
	if (nwrites && rng_below(g, 100) < p->overlap) {
		const struct op *w = &l->v[writes[rng_below(g, nwrites)]];
		uint64_t a = w->off + rng_below(g, w->len), back = rng_below(g, *len);

		o = a > back ? a - back : 0;
	} else {
		o = rng_below(g, p->origin_bytes - *len + 1);
	}
	if (o + *len > p->origin_bytes)
		o = p->origin_bytes - *len;
	*off = o / unit * unit;
}

static void ops_generate(struct oplist *l, const struct plan *p, uint64_t seed)
{
	struct rng g = { seed ^ 0x6b64726976657200ull };
	size_t slots = (size_t)p->txns * p->writes, nwrites = 0, *writes = xmalloc(slots * sizeof(*writes));
	uint8_t *disc = xmalloc(slots);
	uint32_t gen = p->gbase;

	memset(l, 0, sizeof(*l));
	for (unsigned d = 0; d < p->discards && slots; d++)
		disc[rng_below(&g, slots)] = 1;
	for (unsigned t = 1; t <= p->txns; t++) {
		for (unsigned i = 0; i < p->writes; i++) {
			size_t slot = (size_t)(t - 1) * p->writes + i;
			bool is_disc = disc[slot];
			uint64_t off, len;
			struct op *o;

			pick_extent(&g, p, l, writes, nwrites, is_disc, &off, &len);
			o = op_add(l, is_disc ? OP_DISCARD : OP_WRITE);
			o->off = off;
			o->len = len;
			if (!is_disc) {
				o->gen = ++gen;
				o->fua = rng_below(&g, 100) < p->fua;
				writes[nwrites++] = l->n - 1;
			}
		}
		if (!(p->crash && t == p->txns))
			op_add(l, OP_COMMIT);
		if (t == p->msgflush && !(p->crash && t == p->txns))
			op_add(l, OP_MSG_FLUSH);
		if (t == p->settle)
			op_add(l, OP_SETTLE);
	}
	l->max_gen = gen;
	l->by_gen = xmalloc((gen - p->gbase + 1) * sizeof(*l->by_gen));
	for (size_t i = 0; i < nwrites; i++)
		l->by_gen[l->v[writes[i]].gen - p->gbase - 1] = writes[i];
	free(writes);
	free(disc);
}

/* ---------------- the model of the logical device ---------------- */

struct model {
	const struct plan *p;
	const struct oplist *ops;
	const char *name;
	uint64_t size, nsect;
	uint8_t *img;		/* expected bytes */
	uint32_t *cur, *lo;	/* per sector: newest gen, gen at the last completed commit */
	uint8_t *flags;		/* F_* */
	uint32_t applied_gen;	/* highest gen applied so far */
};

static void model_init(struct model *m, const struct plan *p, const struct oplist *ops,
		       const char *name, const uint8_t *base)
{
	m->p = p;
	m->ops = ops;
	m->name = name;
	m->size = p->origin_bytes;
	m->nsect = m->size / SECT;
	m->img = xmalloc(m->size);
	m->cur = xmalloc(m->nsect * sizeof(*m->cur));
	m->lo = xmalloc(m->nsect * sizeof(*m->lo));
	m->flags = xmalloc(m->nsect);
	m->applied_gen = p->gbase;
	if (base) {
		/* continue: the starting point is whatever the cache showed (exact checks only) */
		memcpy(m->img, base, m->size);
		for (uint64_t s = 0; s < m->nsect; s++)
			m->cur[s] = m->lo[s] = GEN_MIXED;
	} else {
		pattern_fill(m->img, 0, m->size, 0, name);
	}
}

static void model_free(struct model *m)
{
	free(m->img);
	free(m->cur);
	free(m->lo);
	free(m->flags);
}

static void model_apply(struct model *m, const struct op *o)
{
	uint64_t s, first, end;

	switch (o->kind) {
	case OP_WRITE:
		pattern_fill(m->img + o->off, o->off, o->len, o->gen, m->name);
		first = o->off / SECT;
		end = (o->off + o->len + SECT - 1) / SECT;
		for (s = first; s < end; s++) {
			bool whole = s * SECT >= o->off && (s + 1) * SECT <= o->off + o->len;

			if (whole) {
				m->cur[s] = o->gen;
				m->flags[s] &= (uint8_t)~F_UNKNOWN;
			} else {
				m->cur[s] = GEN_MIXED;
			}
		}
		m->applied_gen = o->gen;
		if (o->fua)
			memcpy(m->lo, m->cur, m->nsect * sizeof(*m->lo));
		break;
	case OP_DISCARD:
		for (s = o->off / SECT; s < (o->off + o->len) / SECT; s++)
			m->flags[s] |= F_UNKNOWN | F_DISC;
		break;
	case OP_COMMIT:
	case OP_MSG_FLUSH:
		memcpy(m->lo, m->cur, m->nsect * sizeof(*m->lo));
		break;
	case OP_SETTLE:
		break;
	}
}

/* Did write gen wholly cover sector s? (gen 0, the origin's content, covers everything) */
static bool gen_covers(const struct model *m, uint32_t gen, uint64_t s)
{
	const struct op *o;

	if (gen == 0)
		return true;
	if (gen <= m->p->gbase || gen > m->applied_gen)
		return false;
	o = &m->ops->v[m->ops->by_gen[gen - m->p->gbase - 1]];
	return o->off <= s * SECT && o->off + o->len >= (s + 1) * SECT;
}

/* Which gen's pattern is this sector? false if it is none (garbage or misplaced). */
static bool parse_sector(const struct model *m, const uint8_t *d, uint64_t s, uint32_t *gen)
{
	uint8_t want[SECT];
	unsigned long long sect;
	unsigned g;
	char hdr[64];

	memcpy(hdr, d, 63);
	hdr[63] = 0;
	if (sscanf(hdr, "DMWC sector=%llu gen=%u ", &sect, &g) != 2 || sect != s)
		return false;
	pattern_sector(want, s, g, m->name);
	if (memcmp(want, d, SECT))
		return false;
	*gen = g;
	return true;
}

static bool all_zero(const uint8_t *d, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (d[i])
			return false;
	return true;
}

/* The crash oracle for one sector. */
static bool sector_loose_ok(const struct model *m, uint64_t s, const uint8_t *d)
{
	uint32_t g;

	if (all_zero(d, SECT))
		return m->flags[s] & F_DISC;	/* only a discard may leave zeros */
	if (!parse_sector(m, d, s, &g))
		return false;
	if (m->flags[s] & F_DISC)
		return gen_covers(m, g, s);
	if (m->lo[s] == GEN_MIXED)
		return gen_covers(m, g, s);
	return g == m->lo[s] || (g > m->lo[s] && gen_covers(m, g, s));
}

/* Compare an image of the logical device with the model; 0 or the number of bad sectors. */
static uint64_t model_check(const struct model *m, const uint8_t *img, bool exact, const char *what)
{
	uint64_t bad = 0, unknown = 0;

	for (uint64_t s = 0; s < m->nsect; s++) {
		const uint8_t *d = img + s * SECT;
		bool ok;

		if (m->flags[s] & F_UNKNOWN) {
			unknown++;
			if (m->cur[s] == GEN_MIXED && m->p->align == AL_BYTE)
				continue;	/* partly rewritten after a discard: no oracle */
			ok = sector_loose_ok(m, s, d);
		} else if (exact) {
			ok = !memcmp(d, m->img + s * SECT, SECT);
		} else {
			ok = sector_loose_ok(m, s, d);
		}
		if (!ok && bad++ < 5) {
			char hdr[64];
			uint8_t want[SECT];

			memcpy(hdr, d, 63);
			hdr[63] = 0;
			hdr[strcspn(hdr, "\n")] = 0;
			fprintf(stderr, "%s: %s: sector %" PRIu64 " holds \"%.63s\"", prog, what, s,
				all_zero(d, SECT) ? "(zeros)" : hdr);
			if (exact) {
				memcpy(want, m->img + s * SECT, SECT);
				want[63] = 0;
				fprintf(stderr, ", expected \"%s\"", (char *)want);
			} else {
				fprintf(stderr, ", committed gen %" PRIu32 ", newest %" PRIu32,
					m->lo[s], m->cur[s]);
			}
			fputc('\n', stderr);
		}
	}
	printf("%s: %s check: %" PRIu64 " sectors, %" PRIu64 " bad, %" PRIu64 " discarded\n", what,
	       exact ? "exact" : "crash-oracle", m->nsect, bad, unknown);
	return bad;
}

/* ---------------- files ---------------- */

static void write_file(const char *path, const void *buf, uint64_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f || (len && fwrite(buf, 1, len, f) != len) || fclose(f))
		die("cannot write %s: %s", path, strerror(errno));
}

static uint8_t *read_file(const char *path, uint64_t want)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = xmalloc(want);

	if (!f || fread(buf, 1, want, f) != want)
		die("cannot read %" PRIu64 " bytes from %s", want, path);
	fclose(f);
	return buf;
}

/* A zero-filled (sparse) file of len bytes. */
static void blank_file(const char *path, uint64_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f || ftruncate(fileno(f), (off_t)len) || fclose(f))
		die("cannot create %s: %s", path, strerror(errno));
}

/* ---------------- running a plan through the public API ---------------- */

static void cfg_common(struct wc_cfg *cfg, const struct plan *p, bool crashable)
{
	char v[32];

	wcache_cfg_init(cfg);
	if (p->pmem && wcache_cfg_set(cfg, "mode", "p"))
		die("mode: %s", wcache_last_error());
	cfg->block_size = p->bs;
	cfg->start_sector = p->start_sector;
	if (p->start_sector)
		cfg->set_mask |= WC_SET_START_SECTOR;
	snprintf(v, sizeof(v), "%u", p->hw);
	if (wcache_cfg_set(cfg, "high_watermark", v))
		die("high_watermark: %s", wcache_last_error());
	snprintf(v, sizeof(v), "%u", p->lw);
	if (wcache_cfg_set(cfg, "low_watermark", v))
		die("low_watermark: %s", wcache_last_error());
	if (crashable) {
		/* No background commits: the op sequence must repeat exactly in the armed run. */
		if (wcache_cfg_set(cfg, "autocommit_time", "3600000") ||
		    wcache_cfg_set(cfg, "autocommit_blocks", "4294967295"))
			die("autocommit: %s", wcache_last_error());
	}
}

/* Wait for watermark-driven writeback to stop (it runs between high and low). */
static int settle(struct wcache *wc, const struct plan *p)
{
	struct wc_stats st;
	uint64_t prev = UINT64_MAX;

	for (int i = 0; i < 3000; i++) {
		uint64_t high;

		wcache_get_stats(wc, &st);
		high = (st.n_blocks * (100 - p->hw) + 50) / 100;
		if (st.error)
			return st.error;
		if (!st.writeback_blocks && st.free_blocks > high && st.free_blocks == prev)
			return 0;
		prev = st.free_blocks;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
	fprintf(stderr, "%s: writeback did not settle in 30 s (free %" PRIu64 " of %" PRIu64 ")\n",
		prog, st.free_blocks, st.n_blocks);
	return -ETIMEDOUT;
}

/* Blocks written back when the last flush message completed, and by the watermarks. */
static uint64_t wb_after_msg, wb_by_watermark;

/*
 * Run ops [0, l->n) on *wcp (opened with cfg), applying each completed one to
 * m; *done = ops completed. OP_SETTLE reopens the cache with cfg's watermarks
 * turned off.
 */
static int run_api(struct wcache **wcp, struct wc_cfg *cfg, const struct plan *p,
		   const struct oplist *l, struct model *m, size_t *done)
{
	uint8_t *buf = xmalloc((size_t)p->maxblk * p->bs);
	struct wc_stats st;
	int ret = 0;
	size_t i;

	for (i = 0; i < l->n && !ret; i++) {
		const struct op *o = &l->v[i];

		switch (o->kind) {
		case OP_WRITE:
			pattern_fill(buf, o->off, o->len, o->gen, m->name);
			ret = wcache_write(*wcp, buf, o->len, o->off, o->fua ? WC_FUA : 0);
			break;
		case OP_DISCARD:
			ret = wcache_discard(*wcp, o->len, o->off, 0);
			break;
		case OP_COMMIT:
			ret = wcache_flush(*wcp);
			break;
		case OP_MSG_FLUSH:
			ret = wcache_message(*wcp, "flush");
			wcache_get_stats(*wcp, &st);
			wb_after_msg = st.writeback_blocks_done;
			break;
		case OP_SETTLE:
			ret = settle(*wcp, p);
			if (ret)
				break;
			wcache_get_stats(*wcp, &st);
			wb_by_watermark = st.writeback_blocks_done - wb_after_msg;
			/* Reopen: recovery of our own cache, and no more writeback from here on. */
			ret = wcache_close(*wcp);
			*wcp = NULL;
			if (ret)
				break;
			cfg->high_watermark = cfg->low_watermark = 100;
			cfg->format = WC_FORMAT_NO;
			ret = wcache_open(cfg, wcp);
			break;
		}
		if (!ret)
			model_apply(m, o);
	}
	*done = ret ? i - 1 : i;
	free(buf);
	return ret;
}

/* The whole logical device through wcache_read. */
static uint8_t *read_view(struct wcache *wc, uint64_t size)
{
	uint8_t *v = xmalloc(size);
	int ret = wcache_read(wc, v, size, 0);

	if (ret)
		die("reading the logical device: %s", wcache_last_error());
	return v;
}

static void print_stats(const char *name, struct wcache *wc)
{
	struct wc_stats st;

	wcache_get_stats(wc, &st);
	printf("%s: n_blocks %" PRIu64 " free %" PRIu64 " dirty %" PRIu64 " commits %" PRIu64
	       " written_back %" PRIu64 " writes_around %" PRIu64 " rmw %" PRIu64 " discards %" PRIu64
	       " fua %" PRIu64 "\n",
	       name, st.n_blocks, st.free_blocks, st.dirty_blocks, st.commits, st.writeback_blocks_done,
	       st.writes_around, st.rmw_writes, st.discards, st.fua_writes);
}

/* write SEED PLAN NAME ORIGIN CACHE VIEW: a fresh pair written by wcache. */
static int cmd_write(uint64_t seed, const struct plan *p, const char *name, char **path)
{
	struct oplist l;
	struct model m;
	struct wc_cfg cfg;
	struct wc_stats st;
	struct wcache *wc;
	uint8_t *view;
	size_t done;
	uint64_t bad;
	int ret;

	ops_generate(&l, p, seed);
	model_init(&m, p, &l, name, NULL);
	write_file(path[0], m.img, m.size);
	blank_file(path[1], p->cache_bytes);
	cfg_common(&cfg, p, false);
	snprintf(cfg.origin_path, sizeof(cfg.origin_path), "%s", path[0]);
	snprintf(cfg.cache_path, sizeof(cfg.cache_path), "%s", path[1]);
	cfg.format = WC_FORMAT_YES;
	ret = wcache_open(&cfg, &wc);
	if (ret)
		die("open %s: %s", path[1], wcache_last_error());
	ret = run_api(&wc, &cfg, p, &l, &m, &done);
	if (ret)
		die("%s op %zu failed: %s", op_names[l.v[done].kind], done, wcache_last_error());
	print_stats(name, wc);
	wcache_get_stats(wc, &st);
	view = read_view(wc, m.size);
	write_file(path[2], view, m.size);
	bad = model_check(&m, view, true, name);
	if (p->settle && !wb_by_watermark)
		die("%s: the plan never crossed the high watermark: no partial writeback to test", name);
	printf("%s: %" PRIu64 " blocks written back by the watermarks, %" PRIu64 " left dirty\n", name,
	       wb_by_watermark, st.dirty_blocks);
	if (!st.dirty_blocks)
		die("%s: no dirty blocks left: nothing for the kernel to read from the cache", name);
	ret = wcache_close(wc);
	if (ret)
		die("close: %s", wcache_last_error());
	free(view);
	model_free(&m);
	return bad ? 1 : 0;
}

/* continue SEED PLAN NAME ORIGIN CACHE VIEW: wcache writes on over someone's pair. */
static int cmd_continue(uint64_t seed, const struct plan *p, const char *name, char **path)
{
	struct oplist l;
	struct model m;
	struct wc_cfg cfg;
	struct wcache *wc;
	uint8_t *view;
	size_t done;
	uint64_t bad;
	int ret;

	ops_generate(&l, p, seed);
	cfg_common(&cfg, p, false);
	cfg.block_size = 0;	/* from the superblock: must be the plan's */
	cfg.format = WC_FORMAT_NO;
	snprintf(cfg.origin_path, sizeof(cfg.origin_path), "%s", path[0]);
	snprintf(cfg.cache_path, sizeof(cfg.cache_path), "%s", path[1]);
	ret = wcache_open(&cfg, &wc);
	if (ret)
		die("open %s: %s", path[1], wcache_last_error());
	if (wcache_block_size(wc) != p->bs || wcache_size(wc) != p->origin_bytes)
		die("%s: block size %u / size %" PRIu64 " differ from the plan", path[1],
		    wcache_block_size(wc), wcache_size(wc));
	view = read_view(wc, p->origin_bytes);
	model_init(&m, p, &l, name, view);
	free(view);
	ret = run_api(&wc, &cfg, p, &l, &m, &done);
	if (ret)
		die("%s op %zu failed: %s", op_names[l.v[done].kind], done, wcache_last_error());
	print_stats(name, wc);
	view = read_view(wc, m.size);
	write_file(path[2], view, m.size);
	bad = model_check(&m, view, true, name);
	ret = wcache_close(wc);
	if (ret)
		die("close: %s", wcache_last_error());
	free(view);
	model_free(&m);
	return bad ? 1 : 0;
}

/* ---------------- crash images (fault devices) ---------------- */

/*
 * A pass-through device that logs every op (kind, offset) in the order the
 * fault device counts them, so a dry run can tell where inside a commit each
 * op number falls.
 */
enum { K_READ, K_WRITE, K_FLUSH, K_DISCARD };

struct oplog {
	uint8_t *kind;
	uint64_t *off;
	size_t n, cap;
};

struct logdev {
	struct wc_dev dev;
	struct wc_dev *inner;
	struct oplog *log;
};

static void log_op(struct wc_dev *dev, int kind, uint64_t off)
{
	struct oplog *g = ((struct logdev *)dev)->log;

	if (!g)
		return;
	if (g->n == g->cap) {
		g->cap = g->cap ? 2 * g->cap : 4096;
		g->kind = realloc(g->kind, g->cap);
		g->off = realloc(g->off, g->cap * sizeof(*g->off));
		if (!g->kind || !g->off)
			die("out of memory");
	}
	g->kind[g->n] = (uint8_t)kind;
	g->off[g->n++] = off;
}

static int logdev_pread(struct wc_dev *dev, void *buf, size_t len, uint64_t off)
{
	log_op(dev, K_READ, off);
	return dev_pread(((struct logdev *)dev)->inner, buf, len, off);
}

static int logdev_pwrite(struct wc_dev *dev, const void *buf, size_t len, uint64_t off)
{
	log_op(dev, K_WRITE, off);
	return dev_pwrite(((struct logdev *)dev)->inner, buf, len, off);
}

static int logdev_flush(struct wc_dev *dev)
{
	log_op(dev, K_FLUSH, 0);
	return dev_flush(((struct logdev *)dev)->inner);
}

static int logdev_discard(struct wc_dev *dev, uint64_t len, uint64_t off)
{
	log_op(dev, K_DISCARD, off);
	return dev_discard(((struct logdev *)dev)->inner, len, off);
}

static void logdev_close(struct wc_dev *dev)
{
	dev_close(((struct logdev *)dev)->inner);
	free(dev);
}

static const struct wc_dev_ops logdev_ops = {
	.name = "oplog",
	.pread = logdev_pread,
	.pwrite = logdev_pwrite,
	.flush = logdev_flush,
	.discard = logdev_discard,
	.close = logdev_close,
};

static struct wc_dev *logdev_wrap(struct wc_dev *inner, struct oplog *log)
{
	struct logdev *d = xmalloc(sizeof(*d));

	d->dev.ops = &logdev_ops;
	d->dev.size = inner->size;
	d->dev.logical_block = inner->logical_block;
	snprintf(d->dev.name, sizeof(d->dev.name), "%s", inner->name);
	d->inner = inner;
	d->log = log;
	return &d->dev;
}

struct crash_run {
	struct wc_dev *origin, *cache;	/* our handles on the fault storage */
	struct oplog log;
	size_t op_start[1 << 16], op_end[1 << 16];	/* cache op numbers around each plan op */
};

/* A fresh pair on fault devices, the origin holding gen 0; opened (formatted) in *wc. */
static void crash_setup(struct crash_run *r, const struct plan *p, const struct model *m,
			struct wcache **wc)
{
	struct wc_dev *o, *c;
	struct wc_cfg cfg;
	int ret;

	if (dev_fault_open(p->origin_bytes, &r->origin) || dev_fault_open(p->cache_bytes, &r->cache))
		die("fault devices: %s", wcache_last_error());
	if (dev_pwrite(r->origin, m->img, m->size, 0) || dev_flush(r->origin))
		die("origin: %s", wcache_last_error());
	if (dev_fault_share(r->origin, &o) || dev_fault_share(r->cache, &c))
		die("fault share: %s", wcache_last_error());
	cfg_common(&cfg, p, true);
	cfg.format = WC_FORMAT_YES;
	ret = wc_open_devs(&cfg, o, logdev_wrap(c, &r->log), wc);
	if (ret)
		die("open on fault devices: %s", wcache_last_error());
}

/* Run the plan, recording the cache op numbers around each plan op. */
static int crash_ops(struct crash_run *r, struct wcache *wc, const struct plan *p,
		     const struct oplist *l, struct model *m, size_t *done)
{
	uint8_t *buf = xmalloc((size_t)p->maxblk * p->bs);
	int ret = 0;
	size_t i;

	if (l->n > sizeof(r->op_start) / sizeof(r->op_start[0]))
		die("plan too long for a crash run (%zu ops)", l->n);
	for (i = 0; i < l->n && !ret; i++) {
		const struct op *o = &l->v[i];

		r->op_start[i] = fault_ops(r->cache);
		switch (o->kind) {
		case OP_WRITE:
			pattern_fill(buf, o->off, o->len, o->gen, m->name);
			ret = wcache_write(wc, buf, o->len, o->off, o->fua ? WC_FUA : 0);
			break;
		case OP_DISCARD:
			ret = wcache_discard(wc, o->len, o->off, 0);
			break;
		case OP_COMMIT:
			ret = wcache_flush(wc);
			break;
		case OP_MSG_FLUSH:
			ret = wcache_message(wc, "flush");
			break;
		case OP_SETTLE:
			break;	/* no watermark writeback in crash plans */
		}
		r->op_end[i] = fault_ops(r->cache);
		if (!ret)
			model_apply(m, o);
	}
	*done = ret ? i - 1 : i;
	free(buf);
	return ret;
}

/*
 * Where to cut power, as a cache op number, from a dry run's log. POINT:
 *   cK:data  first op of the K-th commit (its data writes are not yet flushed)
 *   cK:meta  the flush that makes the K-th commit's metadata granules durable
 *   cK:sb    the superblock write of the K-th commit (entries on disk, seq not bumped)
 *   cK:end   the flush after that superblock write (the commit's durability point)
 *   fK:mid   the middle op of the K-th flush message (writeback in progress)
 */
static uint64_t crash_point(const struct crash_run *r, const struct oplist *l,
			    const struct plan *p, const char *point, enum op_kind *kind_out,
			    int *want_kind)
{
	char where[16];
	unsigned k, seen = 0;
	char t;

	if (sscanf(point, "%c%u:%15s", &t, &k, where) != 3 || (t != 'c' && t != 'f') || !k)
		die("bad crash point '%s' (cK:data|meta|sb|end or fK:mid)", point);
	for (size_t i = 0; i < l->n; i++) {
		enum op_kind want = t == 'c' ? OP_COMMIT : OP_MSG_FLUSH;
		uint64_t a = r->op_start[i], b = r->op_end[i], sb = UINT64_MAX;

		if (l->v[i].kind != want || ++seen != k)
			continue;
		*kind_out = want;
		if (b <= a)
			die("%s: that op did no cache I/O in the dry run", point);
		if (t == 'f') {
			if (strcmp(where, "mid"))
				die("bad crash point '%s'", point);
			*want_kind = -1;
			return a + (b - a) / 2;
		}
		if (!strcmp(where, "data")) {
			*want_kind = -1;
			return a;
		}
		/*
		 * The superblock write: the first write at the metadata start between two
		 * flushes (granule 0 also starts there, but is written before the first
		 * flush; frees persisted after the commit come later).
		 */
		for (uint64_t x = a + 1; x + 1 < b && sb == UINT64_MAX; x++) {
			if (r->log.kind[x] == K_WRITE && r->log.off[x] == p->start_sector * SECT &&
			    r->log.kind[x - 1] == K_FLUSH && r->log.kind[x + 1] == K_FLUSH)
				sb = x;
		}
		if (sb == UINT64_MAX)
			die("%s: no superblock write found in the dry run", point);
		if (!strcmp(where, "meta")) {
			*want_kind = K_FLUSH;
			return sb - 1;
		}
		if (!strcmp(where, "sb")) {
			*want_kind = K_WRITE;
			return sb;
		}
		if (!strcmp(where, "end")) {
			*want_kind = K_FLUSH;
			return sb + 1;
		}
		die("bad crash point '%s'", point);
	}
	die("%s: the plan has fewer such ops", point);
}

/* crash SEED PLAN NAME POINT tear|drop ORIGIN CACHE VIEW */
static int cmd_crash(uint64_t seed, const struct plan *p, const char *name, char **arg)
{
	const char *point = arg[0], *mode_s = arg[1];
	enum fault_crash_mode mode;
	static struct crash_run dry, real;
	struct oplist l;
	struct model m;
	struct wcache *wc;
	struct wc_cfg cfg;
	struct wc_inspect ins;
	enum op_kind kind;
	uint64_t cut, armed_at, bad;
	uint8_t *view;
	size_t done;
	int want_kind, ret;

	if (!strcmp(mode_s, "tear"))
		mode = FAULT_TEAR;
	else if (!strcmp(mode_s, "drop"))
		mode = FAULT_DROP_ALL;
	else
		die("crash mode is tear or drop, not '%s'", mode_s);
	ops_generate(&l, p, seed);

	/* Dry run: where does each plan op's cache I/O fall? */
	model_init(&m, p, &l, name, NULL);
	crash_setup(&dry, p, &m, &wc);
	if (crash_ops(&dry, wc, p, &l, &m, &done))
		die("dry run: %s op %zu failed: %s", op_names[l.v[done].kind], done, wcache_last_error());
	if (wcache_close(wc))
		die("dry run close: %s", wcache_last_error());
	cut = crash_point(&dry, &l, p, point, &kind, &want_kind);
	model_free(&m);

	/* The real run, power cut armed at op number cut. */
	model_init(&m, p, &l, name, NULL);
	crash_setup(&real, p, &m, &wc);
	armed_at = fault_ops(real.cache);
	if (cut < armed_at)
		die("crash point %" PRIu64 " lies inside activation", cut);
	fault_arm_crash(real.cache, cut - armed_at + 1);
	power_cut = true;
	ret = crash_ops(&real, wc, p, &l, &m, &done);
	if (!ret)
		die("%s: the power cut at cache op %" PRIu64 " never happened", point, cut);
	if (l.v[done].kind != kind)
		die("%s: power cut during %s, expected %s (op order not repeatable?)", point,
		    op_names[l.v[done].kind], op_names[kind]);
	if (want_kind >= 0 && (real.log.n <= cut || real.log.kind[cut] != want_kind))
		die("%s: op %" PRIu64 " differs between the dry and the real run", point, cut);
	/* Power is gone for the origin too; then close what is left and cut. */
	fault_set_error(real.origin, "pwrite", true);
	fault_set_error(real.origin, "flush", true);
	fault_set_error(real.origin, "discard", true);
	wcache_close(wc);	/* fails: the cache is in error state */
	fault_crash(real.cache, p->pmem && mode == FAULT_TEAR ? FAULT_PMEM : mode, seed ^ 0xc4a5);
	fault_crash(real.origin, mode, seed ^ 0x0c4a5);
	write_file(arg[2], fault_durable(real.origin), p->origin_bytes);
	write_file(arg[3], fault_durable(real.cache), p->cache_bytes);
	dev_close(real.origin);
	dev_close(real.cache);
	printf("%s: power cut at cache op %" PRIu64 " (%s, plan op %zu of %zu: %s), mode %s\n", name,
	       cut, point, done, l.n, op_names[l.v[done].kind], mode_s);

	ret = wcache_inspect(arg[3], p->start_sector, p->origin_bytes, &ins, NULL, NULL);
	if (ret < 0)
		die("inspect %s: %s", arg[3], wcache_last_error());
	printf("%s: on disk: seq_count %" PRIu64 ", %" PRIu64 " valid, %" PRIu64
	       " uncommitted, %" PRIu64 " superseded, %" PRIu64 " free\n",
	       name, ins.sb.seq_count, ins.nr_valid, ins.nr_uncommitted, ins.nr_superseded,
	       ins.nr_free);
	if (strstr(point, ":sb") && !ins.nr_uncommitted)
		die("%s: no uncommitted entries on disk: the point does not test what it claims", point);

	power_cut = false;
	/* wcache's own recovery of the images, read-only; checked with the crash oracle. */
	cfg_common(&cfg, p, true);
	cfg.block_size = 0;
	cfg.read_only = true;
	cfg.format = WC_FORMAT_NO;
	snprintf(cfg.origin_path, sizeof(cfg.origin_path), "%s", arg[2]);
	snprintf(cfg.cache_path, sizeof(cfg.cache_path), "%s", arg[3]);
	if (wcache_open(&cfg, &wc))
		die("recovery of %s: %s", arg[3], wcache_last_error());
	view = read_view(wc, m.size);
	wcache_close(wc);
	write_file(arg[4], view, m.size);
	bad = model_check(&m, view, false, name);
	free(view);
	model_free(&m);
	return bad ? 1 : 0;
}

/* ---------------- kernel plans ---------------- */

/*
 * kplan SEED PLAN NAME ORIGIN CACHE OPS DATA: the origin image (gen 0), a
 * blank cache (the kernel formats it), and wc-kguest ops with the
 * placeholders @DEV@ (dm-writecache device), @DM@ (its dm name) and @DATA@
 * (the data file as the guest sees it).
 */
static int cmd_kplan(uint64_t seed, const struct plan *p, const char *name, char **path)
{
	struct oplist l;
	struct model m;
	FILE *ops, *data;
	uint64_t src = 0;
	uint8_t *buf = xmalloc((size_t)p->maxblk * p->bs);

	if (p->align != AL_BLOCK || p->fua || p->settle)
		die("kernel plans need align=block, no fua, no settle (the kernel fails unaligned I/O)");
	ops_generate(&l, p, seed);
	model_init(&m, p, &l, name, NULL);
	write_file(path[0], m.img, m.size);
	blank_file(path[1], p->cache_bytes);
	ops = fopen(path[2], "w");
	data = fopen(path[3], "wb");
	if (!ops || !data)
		die("cannot create %s / %s", path[2], path[3]);
	fprintf(ops, "# %s: seed %" PRIu64 ", %zu ops\ndata @DATA@\n", name, seed, l.n);
	for (size_t i = 0; i < l.n; i++) {
		const struct op *o = &l.v[i];

		switch (o->kind) {
		case OP_WRITE:
			pattern_fill(buf, o->off, o->len, o->gen, name);
			if (fwrite(buf, 1, o->len, data) != o->len)
				die("cannot write %s", path[3]);
			fprintf(ops, "write @DEV@ %" PRIu64 " %" PRIu64 " %" PRIu64 "\n", o->off, o->len, src);
			src += o->len;
			break;
		case OP_DISCARD:
			fprintf(ops, "discard @DEV@ %" PRIu64 " %" PRIu64 "\n", o->off, o->len);
			break;
		case OP_COMMIT:
			fprintf(ops, "fsync @DEV@\n");
			break;
		case OP_MSG_FLUSH:
			fprintf(ops, "dm message @DM@ 0 flush\n");
			break;
		case OP_SETTLE:
			break;
		}
	}
	if (fclose(ops) || fclose(data))
		die("cannot write %s / %s", path[2], path[3]);
	printf("%s: %zu ops, %" PRIu32 " writes, %" PRIu64 " bytes of data\n", name, l.n,
	       l.max_gen - p->gbase, src);
	free(buf);
	model_free(&m);
	return 0;
}

/* verify SEED PLAN NAME exact|crash IMAGE: an image of the logical device vs the model. */
static int cmd_verify(uint64_t seed, const struct plan *p, const char *name, char **arg)
{
	struct oplist l;
	struct model m;
	uint8_t *img;
	uint64_t bad;
	bool exact = !strcmp(arg[0], "exact");

	if (!exact && strcmp(arg[0], "crash"))
		die("verify mode is exact or crash, not '%s'", arg[0]);
	ops_generate(&l, p, seed);
	model_init(&m, p, &l, name, NULL);
	for (size_t i = 0; i < l.n; i++)
		model_apply(&m, &l.v[i]);
	img = read_file(arg[1], m.size);
	bad = model_check(&m, img, exact, name);
	free(img);
	model_free(&m);
	return bad ? 1 : 0;
}

static void log_sink(enum wc_log_level level, const char *msg, void *opaque)
{
	(void)opaque;
	if ((level <= WC_LOG_WARN && !power_cut) || getenv("WC_KDRIVER_VERBOSE"))
		fprintf(stderr, "%s: wcache: %s\n", prog, msg);
}

static int usage(void)
{
	fprintf(stderr,
		"usage: wc-kdriver write    SEED PLAN NAME ORIGIN CACHE VIEW\n"
		"       wc-kdriver continue SEED PLAN NAME ORIGIN CACHE VIEW\n"
		"       wc-kdriver crash    SEED PLAN NAME POINT tear|drop ORIGIN CACHE VIEW\n"
		"       wc-kdriver kplan    SEED PLAN NAME ORIGIN CACHE OPS DATA\n"
		"       wc-kdriver verify   SEED PLAN NAME exact|crash IMAGE\n"
		"NAME goes into the data pattern (at most 27 characters are kept).\n%s",
		plan_help);
	return 2;
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int nargs;
		int (*fn)(uint64_t, const struct plan *, const char *, char **);
	} cmds[] = {
		{ "write", 3, cmd_write },   { "continue", 3, cmd_continue }, { "crash", 5, cmd_crash },
		{ "kplan", 4, cmd_kplan },   { "verify", 2, cmd_verify },
	};
	struct plan p;
	uint64_t seed;
	char *end;

	if (argc < 5)
		return usage();
	errno = 0;
	seed = strtoull(argv[2], &end, 0);
	if (errno || *end)
		return usage();
	wcache_set_logger(log_sink, NULL);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name))
			continue;
		if (argc != 5 + cmds[i].nargs)
			return usage();
		plan_parse(&p, argv[3]);
		return cmds[i].fn(seed, &p, argv[4], argv + 5);
	}
	return usage();
}
