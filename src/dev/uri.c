/* SPDX-License-Identifier: MIT */
/*
 * dev_open_uri: maps a device "URI" from a config or table line to a backend.
 * A plain path opens the file backend; "scheme://..." (NBD) or "rbd:..."
 * (Ceph RBD, qemu's spelling) selects a remote backend. No I/O happens here.
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "log.h"
#include "dev.h"
#include "rbd_spec.h"

/* Length of the scheme if uri starts with "scheme://" (RFC 3986 characters), else 0. */
static size_t uri_scheme_len(const char *uri)
{
	size_t i = 0;

	if (!isalpha((unsigned char)uri[0]))
		return 0;
	while (isalnum((unsigned char)uri[i]) || uri[i] == '+' || uri[i] == '-' || uri[i] == '.')
		i++;
	return strncmp(uri + i, "://", 3) == 0 ? i : 0;
}

/* nbd, nbds, nbd+unix, nbds+unix, nbd+vsock, ... (libnbd's URI schemes). */
static bool is_nbd_scheme(const char *uri, size_t len)
{
	return (len == 3 || uri[3] == '+' || (uri[3] == 's' && (len == 4 || uri[4] == '+'))) &&
	       strncmp(uri, "nbd", 3) == 0;
}

int dev_open_uri(const char *uri, unsigned flags, struct wc_dev **out)
{
	size_t scheme = uri_scheme_len(uri);

	if (rbd_spec_is(uri)) {
		/* src/dev/rbd.c (librbd), built when WC_WITH_RBD is defined. */
#ifdef WC_WITH_RBD
		return dev_rbd_open(uri, flags, out);
#else
		return wc_err(-EPROTONOSUPPORT, "%s: Ceph RBD images are not supported by this "
			      "build (librbd-dev was missing)", uri);
#endif
	}
	if (!scheme)
		return dev_file_open(uri, flags, out);
	if (is_nbd_scheme(uri, scheme)) {
		/* src/dev/nbd.c (libnbd), built when WC_WITH_NBD is defined. */
#ifdef WC_WITH_NBD
		return dev_nbd_open(uri, flags, out);
#else
		return wc_err(-EPROTONOSUPPORT, "%s: NBD devices are not supported by this build",
			      uri);
#endif
	}
	return wc_err(-EPROTONOSUPPORT,
		      "%s: unknown URI scheme \"%.*s\" (expected a path, nbd:// or rbd:)", uri,
		      (int)scheme, uri);
}
