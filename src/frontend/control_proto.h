/* SPDX-License-Identifier: MIT */
/*
 * The control socket protocol: what the server (control.c, for the nbdkit
 * plugin and 'wcache fuse') and its clients ('wcache status --control',
 * 'wcache message': src/cli/cmd_control.c) both rely on. Words, reply format
 * and limits only; no code.
 *
 * A unix stream socket, mode 0600, answering its owner and root. Each
 * request and each reply (but that to metrics) is one '\n'-terminated line
 * (a trailing '\r' and a missing final newline are tolerated); a connection
 * may carry any number of requests, answered in order:
 *   status           the 14-field dm status line
 *   table            the dm table line
 *   stats            counters as "name=value name=value ..." (decimal)
 *   stats --json     the same counters as one JSON object
 *   metrics          the one multi-line reply: every metric in the Prometheus
 *                    text format (src/frontend/metrics.c), then a line
 *                    "# EOF" (a comment to Prometheus parsers)
 *   message MSG      flush | flush_on_suspend | cleaner | clear_stats;
 *                    the reply is "ok" once the message is done
 *   help             one line listing the requests
 * Any failure is replied as "error: <text>".
 *
 * At most 16 clients are served at once. A client that sends no complete
 * request for WC_CONTROL_IDLE_SEC is sent an "error: ..." line and closed;
 * when all 16 are connected, a new client takes the slot of the one idle
 * longest (which gets an "error: ..." line too). Only clients that are being
 * answered (a long "message flush") are never closed, so a new client is
 * refused ("error: too many control clients ...") only when 16 requests are
 * in progress.
 */
#ifndef WC_FRONTEND_CONTROL_PROTO_H
#define WC_FRONTEND_CONTROL_PROTO_H

/* Request words. */
#define WC_CTL_STATUS		"status"
#define WC_CTL_TABLE		"table"
#define WC_CTL_STATS		"stats"
#define WC_CTL_STATS_JSON	"--json"	/* the argument of stats */
#define WC_CTL_MESSAGE		"message"
#define WC_CTL_HELP		"help"
#define WC_CTL_METRICS		"metrics"
#define WC_CTL_PERSIST		"persistence"	/* reply: how cache writes become durable */

/* Replies. */
#define WC_CTL_OK		"ok"		/* the reply to a message that was done */
#define WC_CTL_ERROR		"error: "	/* prefix of every failure */
#define WC_CTL_METRICS_END	"# EOF"		/* last line of the reply to metrics */

/* Seconds without a complete request after which the server closes a client. */
#define WC_CONTROL_IDLE_SEC	10

/* Longest request line accepted, without the newline. */
#define WC_CONTROL_MAX_LINE	256

/*
 * Longest reply line, without the newline, plus one: a buffer of this size
 * holds any reply as a C string (a table line holds two 4 KiB paths).
 */
#define WC_CONTROL_MAX_REPLY	16384

#endif
