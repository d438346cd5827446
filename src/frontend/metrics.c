/* SPDX-License-Identifier: MIT */
/*
 * Prometheus text exposition of wcache_get_metrics() (metrics.h). Names
 * follow Prometheus conventions: wcache_ prefix, base units (seconds,
 * bytes), counters end in _total. Every sample carries the labels cache and
 * origin, so one Prometheus can tell many caches of a host apart.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wcache.h"
#include "metrics.h"

struct mx {
	FILE *f;
	char labels[2 * 4096 + 64];	/* cache="...",origin="..." */
};

/* Label value escaping of the text format: backslash, double quote, newline. */
static void put_label(char *dst, size_t len, size_t *pos, const char *name, const char *v)
{
	int n = snprintf(dst + *pos, len - *pos, "%s%s=\"", *pos ? "," : "", name);

	if (n < 0 || (size_t)n >= len - *pos)
		return;
	*pos += (size_t)n;
	for (; *v && *pos + 3 < len; v++) {
		if (*v == '\\' || *v == '"') {
			dst[(*pos)++] = '\\';
			dst[(*pos)++] = *v;
		} else if (*v == '\n') {
			dst[(*pos)++] = '\\';
			dst[(*pos)++] = 'n';
		} else {
			dst[(*pos)++] = *v;
		}
	}
	if (*pos + 1 < len)
		dst[(*pos)++] = '"';
	dst[*pos] = '\0';
}

/*
 * The origin as a label: an rbd:POOL/IMAGE spec without its :key=value
 * options and a URI without its query, which may name key files.
 */
static void origin_label(char *dst, size_t len, const char *origin)
{
	size_t n = strlen(origin);

	if (!strncmp(origin, "rbd:", 4)) {
		const char *colon = strchr(origin + 4, ':');

		if (colon)
			n = (size_t)(colon - origin);
	} else if (strstr(origin, "://")) {
		n = strcspn(origin, "?");
	}
	snprintf(dst, len, "%.*s", (int)n, origin);
}

static void head(struct mx *m, const char *name, const char *type, const char *help)
{
	fprintf(m->f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void u64(struct mx *m, const char *name, const char *type, const char *help, uint64_t v)
{
	head(m, name, type, help);
	fprintf(m->f, "%s{%s} %" PRIu64 "\n", name, m->labels, v);
}

static void dbl(struct mx *m, const char *name, const char *type, const char *help, double v)
{
	head(m, name, type, help);
	fprintf(m->f, "%s{%s} %.9g\n", name, m->labels, v);
}

/*
 * A histogram in base units: nanoseconds become seconds (ns true), anything
 * else is multiplied by mul and printed as an exact integer (bytes).
 */
static void hist(struct mx *m, const char *name, const char *help, const struct wc_hist *h,
		 bool ns, uint64_t mul)
{
	uint64_t cum = 0;

	head(m, name, "histogram", help);
	for (unsigned i = 0; i < h->nr; i++) {
		cum += h->count[i];
		if (ns)
			fprintf(m->f, "%s_bucket{%s,le=\"%.9g\"} %" PRIu64 "\n", name, m->labels,
				(double)h->bound[i] * 1e-9, cum);
		else
			fprintf(m->f, "%s_bucket{%s,le=\"%" PRIu64 "\"} %" PRIu64 "\n", name,
				m->labels, h->bound[i] * mul, cum);
	}
	fprintf(m->f, "%s_bucket{%s,le=\"+Inf\"} %" PRIu64 "\n", name, m->labels, h->total);
	if (ns)
		fprintf(m->f, "%s_sum{%s} %.9f\n", name, m->labels, (double)h->sum * 1e-9);
	else
		fprintf(m->f, "%s_sum{%s} %" PRIu64 "\n", name, m->labels, h->sum * mul);
	fprintf(m->f, "%s_count{%s} %" PRIu64 "\n", name, m->labels, h->total);
}

int wc_metrics_text(struct wcache *wc, char **out)
{
	struct wc_metrics w;
	struct mx m;
	char origin[4096];
	char *buf = NULL;
	size_t len = 0, pos = 0;
	const struct wc_stats *s = &w.st;

	wcache_get_metrics(wc, &w);
	origin_label(origin, sizeof(origin), w.origin_path);
	put_label(m.labels, sizeof(m.labels), &pos, "cache", w.cache_path);
	put_label(m.labels, sizeof(m.labels), &pos, "origin", origin);
	m.f = open_memstream(&buf, &len);
	if (!m.f)
		return -ENOMEM;

	/* Configuration and state. */
	u64(&m, "wcache_size_bytes", "gauge", "Logical size of the cached device (the origin).",
	    w.size_bytes);
	u64(&m, "wcache_block_size_bytes", "gauge", "Cache block size.", w.block_size);
	u64(&m, "wcache_blocks", "gauge", "Data blocks of the cache device (status field 2).",
	    s->n_blocks);
	u64(&m, "wcache_free_blocks", "gauge", "Free cache blocks (status field 3).",
	    s->free_blocks);
	u64(&m, "wcache_dirty_blocks", "gauge",
	    "Cache blocks holding data not yet written back to the origin.", s->dirty_blocks);
	u64(&m, "wcache_dirty_bytes", "gauge",
	    "Bytes of data not yet written back to the origin.", s->dirty_blocks * w.block_size);
	dbl(&m, "wcache_dirty_ratio", "gauge", "Dirty blocks over all cache blocks (0..1).",
	    s->n_blocks ? (double)s->dirty_blocks / (double)s->n_blocks : 0.0);
	u64(&m, "wcache_writeback_blocks", "gauge",
	    "Blocks being written back now (status field 4).", s->writeback_blocks);
	u64(&m, "wcache_writeback_runs_in_flight", "gauge",
	    "Origin writes of writeback in progress.", w.writeback_runs_in_flight);
	dbl(&m, "wcache_high_watermark_ratio", "gauge",
	    "Writeback starts when this fraction of the cache is in use.",
	    w.high_watermark / 100.0);
	dbl(&m, "wcache_low_watermark_ratio", "gauge",
	    "Writeback stops when no more than this fraction of the cache is in use.",
	    w.low_watermark / 100.0);
	u64(&m, "wcache_cleaner", "gauge",
	    "1 in cleaner mode (writing everything back, caching no new writes).", w.cleaner);
	u64(&m, "wcache_error", "gauge",
	    "1 when the cache is in its sticky error state (status field 1).", s->error != 0);
	u64(&m, "wcache_commit_sequence", "gauge",
	    "seq_count of the superblock: sequence number of the last durable commit.",
	    s->seq_count);
	u64(&m, "wcache_origin_lag_commits", "gauge",
	    "ordered_writeback: commits the origin is behind the device (0: up to date).",
	    s->origin_lag_commits);
	dbl(&m, "wcache_origin_lag_seconds", "gauge",
	    "ordered_writeback: time since the device moved past the origin's state.",
	    (double)s->origin_lag_ms * 1e-3);
	dbl(&m, "wcache_uptime_seconds", "gauge", "Time since the cache was activated.",
	    (double)w.uptime_ns * 1e-9);
	if (w.last_commit_age_ns != UINT64_MAX)
		dbl(&m, "wcache_last_commit_age_seconds", "gauge",
		    "Time since the last metadata commit.", (double)w.last_commit_age_ns * 1e-9);

	/* The dm status line counters (reset by the clear_stats message). */
	u64(&m, "wcache_reads_total", "counter", "Blocks read (status field 5).", s->reads);
	u64(&m, "wcache_read_hits_total", "counter", "Blocks read from the cache (field 6).",
	    s->read_hits);
	u64(&m, "wcache_writes_total", "counter", "Blocks written (field 7).", s->writes);
	u64(&m, "wcache_write_hits_uncommitted_total", "counter",
	    "Writes to blocks cached and not yet committed (field 8).",
	    s->write_hits_uncommitted);
	u64(&m, "wcache_write_hits_committed_total", "counter",
	    "Writes to blocks cached and committed (field 9).", s->write_hits_committed);
	u64(&m, "wcache_writes_around_total", "counter",
	    "Blocks written straight to the origin (field 10).", s->writes_around);
	u64(&m, "wcache_writes_allocate_total", "counter",
	    "Writes that allocated a cache block (field 11).", s->writes_allocate);
	u64(&m, "wcache_writes_blocked_on_freelist_total", "counter",
	    "Writes that waited for a free block (field 12).", s->writes_blocked_on_freelist);
	u64(&m, "wcache_flushes_total", "counter", "Flush requests (field 13).", s->flushes);
	u64(&m, "wcache_discards_total", "counter", "Blocks discarded (field 14).", s->discards);

	/* wcache's own counters. */
	u64(&m, "wcache_commits_total", "counter", "Metadata commits.", s->commits);
	u64(&m, "wcache_fua_writes_total", "counter", "Writes with FUA.", s->fua_writes);
	u64(&m, "wcache_rmw_writes_total", "counter",
	    "Partial-block writes merged into a fresh block.", s->rmw_writes);
	u64(&m, "wcache_writeback_runs_total", "counter",
	    "Origin writes made by writeback.", s->writeback_runs);
	u64(&m, "wcache_writeback_blocks_total", "counter", "Blocks written back to the origin.",
	    s->writeback_blocks_done);
	u64(&m, "wcache_writeback_bytes_total", "counter", "Bytes written back to the origin.",
	    s->writeback_blocks_done * w.block_size);
	u64(&m, "wcache_full_waits_total", "counter",
	    "Writes that waited because the cache was full.", s->full_waits);
	head(&m, "wcache_full_wait_seconds_total", "counter",
	     "Time writes spent waiting for a free block.");
	/* %.9f: exact to the nanosecond; %g would round a large total. */
	fprintf(m.f, "wcache_full_wait_seconds_total{%s} %.9f\n", m.labels,
		(double)s->full_wait_ns * 1e-9);
	u64(&m, "wcache_origin_errors_total", "counter",
	    "Failed origin reads, writes and flushes (writeback included).", w.origin_errors);

	hist(&m, "wcache_write_latency_seconds", "Time of a write request (FUA commit included).",
	     &w.write_latency_ns, true, 0);
	hist(&m, "wcache_commit_latency_seconds", "Time of a metadata commit.",
	     &w.commit_latency_ns, true, 0);
	hist(&m, "wcache_writeback_run_bytes", "Size of each origin write made by writeback.",
	     &w.writeback_run_blocks, false, w.block_size);

	if (fclose(m.f) != 0 || !buf) {
		free(buf);
		return -ENOMEM;
	}
	*out = buf;
	return (int)len;
}

int wc_metrics_write_file(const char *path, const char *text, size_t len, char *err,
			  size_t err_len)
{
	char tmp[4096 + 16];
	int fd, ret = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		snprintf(err, err_len, "metrics file %s: path too long", path);
		return -ENAMETOOLONG;
	}
	/* A .tmp name: node_exporter's textfile collector reads only *.prom. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, err_len, "metrics file %s: %s", tmp, strerror(errno));
		return ret;
	}
	while (len) {
		ssize_t n = write(fd, text, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			break;
		}
		text += n;
		len -= (size_t)n;
	}
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret) {
		snprintf(err, err_len, "metrics file %s: %s", path, strerror(-ret));
		unlink(tmp);
	}
	return ret;
}
