/* SPDX-License-Identifier: MIT */
/* Status line, table line, statistics and messages (docs/format.md §9.1–§9.3). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "engine.h"
#include "table.h"

/*
 * ordered_writeback: the origin holds the device as of the commit before
 * the oldest epoch still in the cache. lock held; O(n_blocks).
 */
static void origin_lag(struct wcache *c, struct wc_stats *st)
{
	uint64_t oldest = WC_SEQ_FREE, s, now = wc_now_ns();

	for (uint64_t e = 0; e < c->n_blocks; e++) {
		s = entry_seq(c->meta, e);
		if (s < oldest && s < c->disk_seq && !(c->state[e] & (ST_PEND | ST_RSVD)))
			oldest = s;
	}
	if (oldest == WC_SEQ_FREE)
		return;
	st->origin_lag_commits = c->disk_seq - oldest;
	/* Since the commit that made the oldest epoch durable (or since open). */
	s = oldest + 1;
	if (c->commit_seq[s % WC_COMMIT_RING] == s)
		st->origin_lag_ms = (now - c->commit_ns[s % WC_COMMIT_RING]) / 1000000;
	else
		st->origin_lag_ms = (now - c->open_ns) / 1000000;
}

void wcache_get_stats(struct wcache *c, struct wc_stats *st)
{
	pthread_mutex_lock(&c->lock);
	*st = c->st;
	st->n_blocks = c->n_blocks;
	st->free_blocks = c->nr_free + c->nr_pend;
	st->writeback_blocks = c->nr_wb;
	st->dirty_blocks = c->n_blocks - st->free_blocks;
	st->seq_count = c->disk_seq;
	st->origin_lag_commits = st->origin_lag_ms = 0;
	if (c->cfg.ordered_writeback)
		origin_lag(c, st);
	st->error = wc_get_error(c);
	if (!st->error)
		st->error = c->wb_error;
	pthread_mutex_unlock(&c->lock);
}

int wcache_status(struct wcache *c, char *buf, size_t len)
{
	struct wc_stats s;
	int n;

	wcache_get_stats(c, &s);
	n = snprintf(buf, len, "%d %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
		     s.error ? 1 : 0, (unsigned long long)s.n_blocks,
		     (unsigned long long)s.free_blocks, (unsigned long long)s.writeback_blocks,
		     (unsigned long long)s.reads, (unsigned long long)s.read_hits,
		     (unsigned long long)s.writes, (unsigned long long)s.write_hits_uncommitted,
		     (unsigned long long)s.write_hits_committed, (unsigned long long)s.writes_around,
		     (unsigned long long)s.writes_allocate,
		     (unsigned long long)s.writes_blocked_on_freelist, (unsigned long long)s.flushes,
		     (unsigned long long)s.discards);
	if (n < 0 || (size_t)n >= len)
		return wc_err(-ERANGE, "status: line needs %d bytes, buffer has %zu", n + 1, len);
	return n;
}

int wcache_table(struct wcache *c, char *buf, size_t len)
{
	return wc_table_format_line(&c->cfg, buf, len);
}

const char *wcache_persistence(struct wcache *c)
{
	return c->cache->persist[0] ? c->cache->persist : "block I/O + device flush";
}

int wcache_message(struct wcache *c, const char *msg)
{
	char word[32];

	if (sscanf(msg, " %31s", word) != 1 || strlen(msg) > 64)
		return wc_err(-EINVAL, "empty or malformed message");
	{
		/* Messages take no arguments. */
		const char *p = strstr(msg, word) + strlen(word);

		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		if (*p)
			return wc_err(-EINVAL, "message '%s' takes no arguments", word);
	}
	if (c->read_only)
		return wc_err(-EROFS, "cache opened read-only");
	if (!strcasecmp(word, "flush")) {
		if (wc_get_error(c))
			return wc_err(-EIO, "flush: cache is in error state");
		return wc_writeback_all(c);
	}
	if (!strcasecmp(word, "flush_on_suspend")) {
		pthread_mutex_lock(&c->lock);
		c->flush_on_suspend = true;
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	if (!strcasecmp(word, "cleaner")) {
		pthread_mutex_lock(&c->lock);
		c->cleaner = true;
		c->flush_on_suspend = true;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	if (!strcasecmp(word, "clear_stats")) {
		pthread_mutex_lock(&c->lock);
		c->st.reads = c->st.read_hits = c->st.writes = 0;
		c->st.write_hits_uncommitted = c->st.write_hits_committed = 0;
		c->st.writes_around = c->st.writes_allocate = c->st.writes_blocked_on_freelist = 0;
		c->st.flushes = c->st.discards = 0;
		pthread_mutex_unlock(&c->lock);
		return 0;
	}
	wc_log(WC_LOG_WARN, "unrecognised message received: %s", word);
	return wc_err(-EINVAL, "unknown message '%s' (flush, flush_on_suspend, cleaner, clear_stats)",
		      word);
}
