/* SPDX-License-Identifier: MIT */
/*
 * Parser for "rbd:POOL/IMAGE[@SNAP][:key=value]..." (see rbd_spec.h). Knows
 * nothing of librbd: it only splits and checks the string, so a typo is a
 * clear message before anything connects to a cluster.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "rbd_spec.h"

#define RBD_PREFIX "rbd:"
#define RBD_SYNTAX "rbd:POOL/IMAGE[@SNAP][:conf=PATH][:id=NAME][:keyring=PATH][:key=value...]"

bool rbd_spec_is(const char *s)
{
	return strncmp(s, RBD_PREFIX, strlen(RBD_PREFIX)) == 0;
}

void rbd_spec_free(struct rbd_spec *sp)
{
	free(sp->buf);
	memset(sp, 0, sizeof(*sp));
}

/* Ceph option names are lower-case words joined by '_' (or ' ' / '-', which Ceph folds). */
static bool is_option_name(const char *k)
{
	if (!*k)
		return false;
	for (; *k; k++) {
		if (!islower((unsigned char)*k) && !isdigit((unsigned char)*k) && *k != '_' &&
		    *k != '-')
			return false;
	}
	return true;
}

/* One ":key=value" item (kv is modified in place). */
static int parse_item(const char *s, char *kv, struct rbd_spec *sp)
{
	char *eq = strchr(kv, '=');
	const char *val = eq ? eq + 1 : NULL;

	if (eq)
		*eq = '\0';
	if (!strcmp(kv, "force_unlock")) {
		/* A bare ":force_unlock" means yes. */
		if (val && strcmp(val, "0") && strcmp(val, "1"))
			return wc_err(-EINVAL, "%s: force_unlock=%s: expected 0 or 1", s, val);
		sp->force_unlock = !val || !strcmp(val, "1");
		return 0;
	}
	if (!val || !*val)
		return wc_err(-EINVAL, "%s: \"%s\" needs a value (key=value)", s, kv);
	if (!strcmp(kv, "conf")) {
		sp->conf = val;
	} else if (!strcmp(kv, "id")) {
		sp->id = val;
	} else if (!strcmp(kv, "keyring")) {
		sp->keyring = val;
	} else if (!is_option_name(kv)) {
		return wc_err(-EINVAL, "%s: \"%s\" is not an option name (expected %s)", s, kv,
			      RBD_SYNTAX);
	} else {
		if (sp->nr_opts == RBD_SPEC_MAX_OPTS)
			return wc_err(-EINVAL, "%s: more than %d Ceph options", s,
				      RBD_SPEC_MAX_OPTS);
		sp->opt_key[sp->nr_opts] = kv;
		sp->opt_val[sp->nr_opts++] = val;
	}
	return 0;
}

int rbd_spec_parse(const char *s, struct rbd_spec *sp)
{
	char *p, *next, *slash, *at;
	int ret;

	memset(sp, 0, sizeof(*sp));
	if (!rbd_spec_is(s))
		return wc_err(-EINVAL, "%s: not an RBD image (expected %s)", s, RBD_SYNTAX);
	sp->buf = strdup(s + strlen(RBD_PREFIX));
	if (!sp->buf)
		return wc_err(-ENOMEM, "%s: out of memory", s);
	p = sp->buf;
	next = strchr(p, ':');
	if (next)
		*next++ = '\0';
	/* p = POOL/IMAGE[@SNAP] */
	slash = strchr(p, '/');
	if (!slash || slash == p || !slash[1] || strchr(slash + 1, '/')) {
		ret = wc_err(-EINVAL, "%s: expected POOL/IMAGE after \"rbd:\" (%s)", s, RBD_SYNTAX);
		goto fail;
	}
	*slash = '\0';
	sp->pool = p;
	sp->image = slash + 1;
	at = strchr(slash + 1, '@');
	if (at) {
		*at = '\0';
		sp->snap = at + 1;
		if (!*sp->snap || at == slash + 1) {
			ret = wc_err(-EINVAL, "%s: empty %s name", s, *sp->snap ? "image" :
				     "snapshot");
			goto fail;
		}
	}
	while (next) {
		p = next;
		next = strchr(p, ':');
		if (next)
			*next++ = '\0';
		if (!*p) {
			ret = wc_err(-EINVAL, "%s: empty option (\"::\" or a trailing ':')", s);
			goto fail;
		}
		ret = parse_item(s, p, sp);
		if (ret)
			goto fail;
	}
	return 0;

fail:
	rbd_spec_free(sp);
	return ret;
}
