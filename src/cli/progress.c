/* SPDX-License-Identifier: MIT */
/*
 * Progress display on stderr for long CLI operations (export, flush): a
 * redrawn bar "\r[####......] 45% 1234/2741 blocks, 812 blocks/s, ETA 0:02"
 * on a terminal, or one plain line per second when forced with --progress
 * and stderr is not a tty. The rate is the average since the start (steady,
 * unlike the last second's); the last line gives the total time instead of
 * an ETA.
 * Single-threaded use: the caller serialises updates.
 */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define BAR_WIDTH 30
#define LINE_INTERVAL_NS 1000000000ull
#define TTY_INTERVAL_NS 100000000ull

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int percent(const struct progress *p, uint64_t done)
{
	if (!p->total)
		return 100;
	if (done >= p->total)
		return 100;
	return (int)((long double)done * 100 / p->total);
}

/* "h:mm:ss" or "m:ss". */
static void clock_str(char *buf, size_t len, double s)
{
	unsigned long t = (unsigned long)(s + 0.5);

	if (t >= 3600)
		snprintf(buf, len, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(buf, len, "%lu:%02lu", t / 60, t % 60);
}

/* ", 12.3 MiB/s, ETA 0:42" (or ", in 1.2 s" at the end); "" before any rate is known. */
static void rate_eta(const struct progress *p, uint64_t done, uint64_t now, char *buf, size_t len)
{
	double el = (double)(now - p->start_ns) * 1e-9, rate;
	char eta[32];

	buf[0] = '\0';
	if (!done || el <= 0)
		return;
	rate = (double)done / el;
	if (done >= p->total) {
		snprintf(buf, len, ", %.1f %s/s, in %.1f s", rate, p->unit, el);
		return;
	}
	if (el < 0.2)
		return;		/* too early for a rate worth showing */
	clock_str(eta, sizeof(eta), (double)(p->total - done) / rate);
	snprintf(buf, len, ", %.1f %s/s, ETA %s", rate, p->unit, eta);
}

static void draw(struct progress *p, uint64_t done)
{
	int pct = percent(p, done);
	uint64_t now = mono_ns();
	char re[96];

	if (p->tty) {
		char bar[BAR_WIDTH + 1];
		int fill = pct * BAR_WIDTH / 100;

		for (int i = 0; i < BAR_WIDTH; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[BAR_WIDTH] = '\0';
		rate_eta(p, done, now, re, sizeof(re));
		/* \033[K: a shorter line must not leave the end of the last one. */
		fprintf(stderr, "\r[%s] %d%% %llu/%llu %s%s\033[K", bar, pct,
			(unsigned long long)done, (unsigned long long)p->total, p->unit, re);
	} else {
		rate_eta(p, done, now, re, sizeof(re));
		fprintf(stderr, "progress: %d%% %llu/%llu %s%s\n", pct, (unsigned long long)done,
			(unsigned long long)p->total, p->unit, re);
	}
	fflush(stderr);
	p->last_pct = pct;
	p->last_done = done;
	p->last_ns = now;
}

void progress_start(struct progress *p, enum progress_mode mode, uint64_t total, const char *unit)
{
	bool tty = isatty(STDERR_FILENO);

	p->tty = tty;
	p->on = mode == PROGRESS_FORCE || (mode == PROGRESS_AUTO && tty);
	p->total = total;
	p->unit = unit;
	p->last_done = 0;
	p->last_pct = -1;
	p->last_ns = 0;
	p->start_ns = mono_ns();
	p->ended = false;
	if (p->on)
		draw(p, 0);
}

void progress_update(struct progress *p, uint64_t done)
{
	uint64_t t;

	if (!p->on || p->ended || done == p->last_done)
		return;
	t = mono_ns();
	if (p->tty) {
		if (percent(p, done) != p->last_pct || t - p->last_ns >= TTY_INTERVAL_NS)
			draw(p, done);
	} else if (t - p->last_ns >= LINE_INTERVAL_NS) {
		draw(p, done);
	}
}

void progress_end(struct progress *p, uint64_t done)
{
	if (!p->on || p->ended)
		return;
	if (done != p->last_done || percent(p, done) != p->last_pct)
		draw(p, done);
	if (p->tty)
		fputc('\n', stderr);
	fflush(stderr);
	p->ended = true;
}
