/* SPDX-License-Identifier: MIT */
/*
 * NBD client for the kill -9 durability test (test-nbd-kill9.sh).
 *
 *   wctest-kill9 write  URI STATE   write until the server dies, then save STATE
 *   wctest-kill9 verify URI STATE   reconnect, check every sector, save STATE
 *
 * Every 512-byte sector written holds (sector, seq) and a body derived from
 * both, so a read tells which write produced it. The writer is synchronous,
 * so every write issued before a flush started had completed: after a
 * successful flush (or FUA write) those values are "durable". verify accepts
 * for each sector its durable value, or a value from a later write that was
 * issued for that sector (it may or may not have landed) — nothing else.
 */
#include <errno.h>
#include <inttypes.h>
#include <libnbd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REGION_SECT	(32u << 11)	/* 32 MiB */
#define MAX_LOG		(1u << 22)

struct wlog {
	uint32_t sector, count;
};

struct state {
	uint64_t seq;			/* last seq issued */
	uint64_t nr_log;
	uint32_t durable[REGION_SECT];	/* seq of the durable value per sector (0 = zeros) */
	uint32_t done[REGION_SECT];	/* seq of the last completed write per sector */
	struct wlog log[MAX_LOG];	/* log[seq] = the write with that seq */
};

static struct state st;

static uint64_t rnd(void)
{
	static uint64_t x;

	if (!x)
		x = (uint64_t)time(NULL) * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid();
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return x;
}

static void fill_sector(uint8_t *p, uint32_t sector, uint32_t seq)
{
	memcpy(p, "KILL9", 5);
	memcpy(p + 8, &sector, 4);
	memcpy(p + 12, &seq, 4);
	for (int i = 16; i < 512; i++)
		p[i] = (uint8_t)(sector * 13 + seq * 7 + (uint32_t)i);
}

static int load(const char *path)
{
	FILE *f = fopen(path, "rb");
	size_t head = offsetof(struct state, log);

	if (!f)
		return errno == ENOENT ? 0 : -1;	/* first round: all zeros */
	if (fread(&st, head, 1, f) != 1 || st.nr_log > MAX_LOG ||
	    fread(st.log, sizeof(struct wlog), st.nr_log, f) != st.nr_log) {
		fclose(f);
		return -1;
	}
	fclose(f);
	return 0;
}

static int save(const char *path)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "wb");
	if (!f || fwrite(&st, offsetof(struct state, log), 1, f) != 1 ||
	    fwrite(st.log, sizeof(struct wlog), st.nr_log, f) != st.nr_log || fclose(f) != 0)
		return -1;
	return rename(tmp, path);
}

static struct nbd_handle *connect_uri(const char *uri, int tries)
{
	for (int i = 0; i < tries; i++) {
		struct nbd_handle *h = nbd_create();

		if (h && nbd_connect_uri(h, uri) == 0)
			return h;
		if (h)
			nbd_close(h);
		usleep(100000);
	}
	fprintf(stderr, "kill9: cannot connect to %s: %s\n", uri, nbd_get_error());
	return NULL;
}

static int do_write(const char *uri, const char *path)
{
	static uint8_t buf[16 * 512];
	struct nbd_handle *h = connect_uri(uri, 50);
	uint64_t writes = 0, flushes = 0, fua = 0;

	if (!h)
		return 1;
	for (;;) {
		uint32_t count = rnd() % 4 ? 8 : 1 + (uint32_t)(rnd() % 16);
		uint32_t sector = (uint32_t)(rnd() % (REGION_SECT - count));
		uint32_t flags = rnd() % 10 == 0 ? LIBNBD_CMD_FLAG_FUA : 0;
		uint64_t seq;

		if (count == 8)
			sector &= ~7u;
		if (st.seq + 1 >= MAX_LOG)
			break;
		seq = ++st.seq;
		st.log[seq] = (struct wlog){ sector, count };
		st.nr_log = seq + 1;
		for (uint32_t i = 0; i < count; i++)
			fill_sector(buf + i * 512, sector + i, (uint32_t)seq);
		if (nbd_pwrite(h, buf, count * 512, (uint64_t)sector * 512, flags) == -1)
			break;
		writes++;
		for (uint32_t i = 0; i < count; i++) {
			st.done[sector + i] = (uint32_t)seq;
			if (flags)
				st.durable[sector + i] = (uint32_t)seq;
		}
		fua += flags != 0;
		if (rnd() % 32 == 0) {
			if (nbd_flush(h, 0) == -1)
				break;
			/* Synchronous client: everything done before the flush is durable now. */
			memcpy(st.durable, st.done, sizeof(st.durable));
			flushes++;
		}
	}
	printf("writer: %" PRIu64 " writes (%" PRIu64 " FUA), %" PRIu64 " flushes before the server died (%s)\n",
	       writes, fua, flushes, nbd_get_error() ? nbd_get_error() : "");
	nbd_close(h);
	return save(path) ? 1 : 0;
}

static int covers(uint32_t seq, uint32_t sector)
{
	const struct wlog *w;

	if (!seq || seq > st.seq)
		return 0;
	w = &st.log[seq];
	return sector >= w->sector && sector < w->sector + w->count;
}

static int do_verify(const char *uri, const char *path)
{
	static uint8_t buf[REGION_SECT * 512ull], want[512];
	struct nbd_handle *h = connect_uri(uri, 300);
	uint64_t durable = 0, newer = 0, bad = 0;

	if (!h)
		return 1;
	for (uint64_t off = 0; off < sizeof(buf); off += 1u << 20) {
		if (nbd_pread(h, buf + off, 1u << 20, off, 0) == -1) {
			fprintf(stderr, "kill9: read at %" PRIu64 ": %s\n", off, nbd_get_error());
			return 1;
		}
	}
	nbd_close(h);
	for (uint32_t s = 0; s < REGION_SECT; s++) {
		const uint8_t *p = buf + (uint64_t)s * 512;
		uint32_t sec = 0, seq = 0;
		int ok;

		if (memcmp(p, "KILL9", 5) == 0) {
			memcpy(&sec, p + 8, 4);
			memcpy(&seq, p + 12, 4);
			fill_sector(want, s, seq);
			ok = sec == s && memcmp(p, want, 512) == 0;
		} else {
			static const uint8_t zero[512];

			ok = memcmp(p, zero, 512) == 0;	/* never written */
		}
		ok = ok && (seq == st.durable[s] || (seq > st.durable[s] && covers(seq, s)));
		if (!ok) {
			if (bad++ < 10)
				fprintf(stderr, "kill9: sector %u holds seq %u (sector field %u); durable seq "
					"is %u\n", s, seq, sec, st.durable[s]);
			continue;
		}
		durable += seq == st.durable[s];
		newer += seq != st.durable[s];
		/* What survived is what the next round starts from. */
		st.durable[s] = st.done[s] = seq;
	}
	printf("verify: %" PRIu64 " sectors hold their durable value, %" PRIu64
	       " a later write, %" PRIu64 " are wrong\n", durable, newer, bad);
	if (bad)
		return 1;
	return save(path) ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc != 4 || (strcmp(argv[1], "write") && strcmp(argv[1], "verify"))) {
		fprintf(stderr, "usage: %s write|verify URI STATE\n", argv[0]);
		return 2;
	}
	if (load(argv[3])) {
		fprintf(stderr, "kill9: cannot read state %s\n", argv[3]);
		return 1;
	}
	return strcmp(argv[1], "write") == 0 ? do_write(argv[2], argv[3]) : do_verify(argv[2], argv[3]);
}
