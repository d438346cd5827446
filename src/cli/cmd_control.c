/* SPDX-License-Identifier: MIT */
/*
 * Clients of a running server's control socket (protocol in
 * src/frontend/control_proto.h): "wcache message" and the live form of
 * "wcache status" (--control, --watch). Nothing here opens a device.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "control_proto.h"

/* A reply line with its newline, NUL-terminated. */
#define CTL_REPLY_BUF (WC_CONTROL_MAX_REPLY + 1)

/* --------------------------------------------------------------- connection */

int cli_ctl_connect(const char *path, char *err, size_t err_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, err_len, "control socket path %s is too long", path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, err_len, "socket: %s", strerror(errno));
		return -errno;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		snprintf(err, err_len, "cannot connect to control socket %s: %s%s", path, strerror(e),
			 e == ENOENT || e == ECONNREFUSED ?
			 " (is a server running with --control/control= this path?)" : "");
		close(fd);
		return -e;
	}
	return fd;
}

/*
 * A send failed: the server may have closed the connection after saying why
 * ("error: ..." when it refused or dropped us). Prefer that line to the
 * bare "Broken pipe".
 */
static int ctl_send_failed(int fd, int e, char *err, size_t err_len)
{
	char line[512];
	ssize_t r = recv(fd, line, sizeof(line) - 1, MSG_DONTWAIT);
	char *nl;

	if (r > 0) {
		line[r] = '\0';
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (!strncmp(line, WC_CTL_ERROR, strlen(WC_CTL_ERROR))) {
			snprintf(err, err_len, "control socket: the server closed the connection: %.400s",
				 line + strlen(WC_CTL_ERROR));
			return -EIO;
		}
	}
	if (e == EPIPE || e == ECONNRESET)
		snprintf(err, err_len, "control socket: the server closed the connection (%s); "
			 "has it stopped?", strerror(e));
	else
		snprintf(err, err_len, "control socket: send: %s", strerror(e));
	return -EIO;
}

/* Send one request line and read one reply line (newline stripped) into reply. */
static int ctl_request(int fd, const char *req, char *reply, size_t len, char *err, size_t err_len)
{
	size_t have = 0, n = strlen(req);
	char *nl;

	while (n) {
		ssize_t w = send(fd, req, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return ctl_send_failed(fd, errno, err, err_len);
		req += w;
		n -= (size_t)w;
	}
	if (send(fd, "\n", 1, MSG_NOSIGNAL) != 1)
		return ctl_send_failed(fd, errno, err, err_len);
	for (;;) {
		ssize_t r = recv(fd, reply + have, len - 1 - have, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, err_len, "control socket: %s",
				 r ? strerror(errno) : "the server closed the connection");
			return -EIO;
		}
		have += (size_t)r;
		reply[have] = '\0';
		nl = memchr(reply, '\n', have);
		if (nl) {
			*nl = '\0';
			return 0;
		}
		if (have >= len - 1) {
			snprintf(err, err_len, "control socket: reply too long");
			return -EIO;
		}
	}
}

/* "error: text" replies become failures with text in err. */
static int ctl_reply_ok(const char *reply, char *err, size_t err_len)
{
	size_t n = strlen(WC_CTL_ERROR);

	if (!strncmp(reply, WC_CTL_ERROR, n)) {
		snprintf(err, err_len, "%.*s", (int)(err_len ? err_len - 1 : 0), reply + n);
		return -EIO;
	}
	return 0;
}

/*
 * Options of the commands that take only --control PATH (and --help): the
 * path in *control. Returns -1 to go on, or the exit status to return.
 */
static int parse_control_only(const struct cli_cmd *self, int argc, char **argv,
			      const char **control)
{
	static const struct option lo[] = {
		{ "control", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*control = NULL;
	while ((c = cli_getopt(self, argc, argv, ":c:h", lo)) != -1) {
		switch (c) {
		case 'c':
			*control = optarg;
			break;
		case 'h':
			return cli_help(self);
		default:
			return CLI_EXIT_USAGE;
		}
	}
	if (!*control)
		return cli_usage_error(self, "--control PATH is required");
	return -1;
}

/* ------------------------------------------------------------------ message */

static const char message_usage[] =
	"Usage: wcache message --control PATH MESSAGE\n"
	"\n"
	"Send a dm-writecache message to a running server (wcache serve, the nbdkit\n"
	"plugin or wcache fuse) through its control socket and wait for the result:\n"
	"  flush             write every dirty block back to the origin (waits)\n"
	"  flush_on_suspend  write everything back when the server stops\n"
	"  cleaner           write everything back and stop caching new writes\n"
	"  clear_stats       reset the counters of the status line\n"
	"Prints nothing on success.\n"
	"\n"
	"Options:\n"
	"  -c, --control PATH   the server's control socket\n"
	"  -h, --help           show this help\n"
	"\n"
	"Exit status: 0 done, 1 failed (message printed), 2 usage error.\n";

int cmd_message(const struct cli_cmd *cmd, int argc, char **argv)
{
	const struct cli_cmd self = { cmd->name, cmd->fn, cmd->summary, message_usage, 0 };
	char req[WC_CONTROL_MAX_LINE + 1], reply[CTL_REPLY_BUF], err[512];
	const char *control;
	int fd, ret;

	ret = parse_control_only(&self, argc, argv, &control);
	if (ret >= 0)
		return ret;
	if (optind + 1 != argc)
		return cli_usage_error(&self, optind >= argc ? "missing MESSAGE" :
				       "too many arguments (one MESSAGE)");
	if (strlen(WC_CTL_MESSAGE " ") + strlen(argv[optind]) > WC_CONTROL_MAX_LINE ||
	    strpbrk(argv[optind], "\n\r"))
		return cli_usage_error(&self, "MESSAGE is not a single short line");
	snprintf(req, sizeof(req), WC_CTL_MESSAGE " %s", argv[optind]);

	fd = cli_ctl_connect(control, err, sizeof(err));
	if (fd < 0) {
		cli_error(&self, "%s", err);
		return CLI_EXIT_FAIL;
	}
	ret = ctl_request(fd, req, reply, sizeof(reply), err, sizeof(err));
	close(fd);
	if (!ret)
		ret = ctl_reply_ok(reply, err, sizeof(err));
	if (ret) {
		cli_error(&self, "%s", err);
		return CLI_EXIT_FAIL;
	}
	if (strcmp(reply, WC_CTL_OK)) {
		cli_error(&self, "unexpected reply '%s'", reply);
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

/* ----------------------------------------------------------- status --control */

#define MAX_FIELDS 48

struct stat_field {
	char name[40];
	int64_t v;
};

/* Parse the reply to "stats": "name=value name=value ...". Returns the count or -EPROTO. */
static int parse_stats(char *line, struct stat_field *f, int max)
{
	char *save, *tok;
	int n = 0;

	for (tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char *eq = strchr(tok, '='), *end;

		if (!eq || eq == tok || (size_t)(eq - tok) >= sizeof(f->name) || n >= max)
			return -EPROTO;
		memcpy(f[n].name, tok, (size_t)(eq - tok));
		f[n].name[eq - tok] = '\0';
		errno = 0;
		f[n].v = strtoll(eq + 1, &end, 10);
		if (errno || *end)
			return -EPROTO;
		n++;
	}
	return n;
}

static int64_t field(const struct stat_field *f, int n, const char *name)
{
	for (int i = 0; i < n; i++) {
		if (!strcmp(f[i].name, name))
			return f[i].v;
	}
	return 0;
}

/* The offline "status" names for the block counts; the rest keep the server's names. */
static const char *const renames[][2] = {
	{ "n_blocks", "total" }, { "free_blocks", "free" }, { "dirty_blocks", "dirty" },
	{ "writeback_blocks", "writeback" },
};

static const char *out_name(const char *name)
{
	for (size_t i = 0; i < sizeof(renames) / sizeof(renames[0]); i++) {
		if (!strcmp(name, renames[i][0]))
			return renames[i][1];
	}
	return name;
}

static bool is_renamed_or_first(const char *name)
{
	return strcmp(out_name(name), name) || !strcmp(name, "seq_count");
}

/* Offline order first (total, free, dirty, seq_count), then writeback and the rest. */
static void print_status(const struct stat_field *f, int n, bool json, bool one_line,
			 const char *persist)
{
	static const char *const first[] = { "n_blocks", "free_blocks", "dirty_blocks", "seq_count",
					     "writeback_blocks" };
	struct json j;
	size_t k;
	int i;

	if (json) {
		json_init(&j, stdout);
		json_object_begin(&j, NULL, one_line);
		for (k = 0; k < sizeof(first) / sizeof(first[0]); k++)
			json_i64(&j, out_name(first[k]), field(f, n, first[k]));
		for (i = 0; i < n; i++) {
			if (!is_renamed_or_first(f[i].name))
				json_i64(&j, f[i].name, f[i].v);
		}
		if (persist)
			json_string(&j, "persistence", persist);
		json_object_end(&j);
		json_finish(&j);
		return;
	}
	for (k = 0; k < sizeof(first) / sizeof(first[0]); k++)
		printf("%s: %" PRId64 "\n", out_name(first[k]), field(f, n, first[k]));
	for (i = 0; i < n; i++) {
		if (!is_renamed_or_first(f[i].name))
			printf("%s: %" PRId64 "\n", f[i].name, f[i].v);
	}
	if (persist)
		printf("persistence: %s\n", persist);
}

static void print_watch_row(const struct stat_field *f, int n, uint64_t row)
{
	static const char *const cols[] = { "n_blocks", "free_blocks", "dirty_blocks",
					    "writeback_blocks", "reads", "read_hits", "writes",
					    "flushes", "commits", "error" };
	char ts[16];
	time_t now = time(NULL);
	struct tm tm;
	size_t k;

	if (row % 20 == 0) {
		printf("%-8s", "time");
		for (k = 0; k < sizeof(cols) / sizeof(cols[0]); k++)
			printf(" %12s", out_name(cols[k]));
		printf("\n");
	}
	localtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
	printf("%-8s", ts);
	for (k = 0; k < sizeof(cols) / sizeof(cols[0]); k++)
		printf(" %12" PRId64, field(f, n, cols[k]));
	printf("\n");
}

/*
 * Live status of a running server. With count != 1 it repeats every
 * interval_ms (count 0: until the server goes away or the tool is killed),
 * printing one row (text) or one JSON object per line (cli.h). Returns an
 * exit code.
 */
int cli_status_control_watch(const char *control_path, bool json, unsigned interval_ms,
			     uint64_t count)
{
	const struct cli_cmd self = { "status", NULL, NULL, NULL, 0 };
	struct stat_field f[MAX_FIELDS];
	char *reply = malloc(CTL_REPLY_BUF), err[512], pers_buf[256];
	bool watch = count != 1;
	int fd, n, rc = CLI_EXIT_FAIL;

	if (!reply) {
		cli_error(&self, "out of memory");
		return CLI_EXIT_FAIL;
	}
	fd = cli_ctl_connect(control_path, err, sizeof(err));
	if (fd < 0) {
		cli_error(&self, "%s", err);
		goto out_free;
	}
	for (uint64_t row = 0; !count || row < count; row++) {
		if (row) {
			struct timespec ts = { interval_ms / 1000, (long)(interval_ms % 1000) * 1000000 };

			fflush(stdout);
			while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
				;
		}
		if (ctl_request(fd, WC_CTL_STATS, reply, CTL_REPLY_BUF, err, sizeof(err)) ||
		    ctl_reply_ok(reply, err, sizeof(err))) {
			cli_error(&self, "%s", err);
			goto out_close;
		}
		n = parse_stats(reply, f, MAX_FIELDS);
		if (n < 0) {
			cli_error(&self, "malformed reply from the server");
			goto out_close;
		}
		if (watch && !json) {
			print_watch_row(f, n, row);
		} else {
			/* A server without the request (older) answers with an error: leave it out. */
			char *pers = NULL;

			if (!watch && !ctl_request(fd, WC_CTL_PERSIST, pers_buf, sizeof(pers_buf),
						   err, sizeof(err)) &&
			    strncmp(pers_buf, WC_CTL_ERROR, strlen(WC_CTL_ERROR)))
				pers = pers_buf;
			print_status(f, n, json, watch, pers);
		}
		if (ferror(stdout))
			goto out_close;
	}
	rc = CLI_EXIT_OK;
out_close:
	close(fd);
out_free:
	free(reply);
	return rc;
}

int cli_status_control(const char *control_path, bool json)
{
	return cli_status_control_watch(control_path, json, 0, 1);
}


/* ------------------------------------------------------------------ metrics */

static const char metrics_usage[] =
	"Usage: wcache metrics --control PATH\n"
	"\n"
	"Print the metrics of a running server (wcache serve, the nbdkit plugin or\n"
	"wcache fuse) once, in the Prometheus text exposition format: every status\n"
	"field and counter, the dirty ratio, and histograms of write latency, commit\n"
	"latency and writeback run size. Names start with wcache_; every sample has\n"
	"the labels cache and origin. For a scraper, serve with --metrics-listen or\n"
	"--metrics-file instead.\n"
	"\n"
	"Options:\n"
	"  -c, --control PATH   the server's control socket\n"
	"  -h, --help           show this help\n"
	"\n"
	"Exit status: 0 printed, 1 failed, 2 usage error.\n";

/*
 * Read the reply to "metrics" until its end line and copy it to out. Returns
 * 0, or -EIO with the reason in err (a server error line, a closed connection).
 */
static int ctl_read_metrics(int fd, FILE *out, char *err, size_t err_len)
{
	char buf[8192], line[1024];
	size_t llen = 0;
	bool first = true;

	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(err, err_len, "control socket: %s before the end of the metrics",
				 r ? strerror(errno) : "the server closed the connection");
			return -EIO;
		}
		for (ssize_t i = 0; i < r; i++) {
			if (llen + 2 > sizeof(line)) {
				/* A long line (long label values): pass it on in pieces. */
				line[llen] = '\0';
				fputs(line, out);
				llen = 0;
				first = false;
			}
			line[llen++] = buf[i];
			if (buf[i] != '\n')
				continue;
			line[llen] = '\0';
			if (!strcmp(line, WC_CTL_METRICS_END "\n"))
				return 0;
			/* An old server, or a failure: one "error: ..." line. */
			if (first && !strncmp(line, WC_CTL_ERROR, strlen(WC_CTL_ERROR))) {
				line[llen - 1] = '\0';
				snprintf(err, err_len, "%.400s", line + strlen(WC_CTL_ERROR));
				return -EIO;
			}
			first = false;
			fputs(line, out);
			llen = 0;
		}
	}
}

int cli_ctl_metrics(int fd, FILE *out, char *err, size_t err_len)
{
	if (send(fd, WC_CTL_METRICS "\n", strlen(WC_CTL_METRICS) + 1, MSG_NOSIGNAL) < 0)
		return ctl_send_failed(fd, errno, err, err_len);
	return ctl_read_metrics(fd, out, err, err_len);
}

int cmd_metrics(const struct cli_cmd *cmd, int argc, char **argv)
{
	const struct cli_cmd self = { cmd->name, cmd->fn, cmd->summary, metrics_usage, 0 };
	const char *control;
	char err[512];
	int fd, ret;

	ret = parse_control_only(&self, argc, argv, &control);
	if (ret >= 0)
		return ret;
	if (optind != argc)
		return cli_usage_error(&self, "unexpected argument '%s'", argv[optind]);
	fd = cli_ctl_connect(control, err, sizeof(err));
	if (fd < 0) {
		cli_error(&self, "%s", err);
		return CLI_EXIT_FAIL;
	}
	ret = cli_ctl_metrics(fd, stdout, err, sizeof(err));
	close(fd);
	if (ret) {
		cli_error(&self, "%s", err);
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}
