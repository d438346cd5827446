/* SPDX-License-Identifier: MIT */
/*
 * A small streaming JSON writer for machine-readable CLI output (dump
 * --json, status --json). Strings are escaped per RFC 8259 and emitted as
 * valid UTF-8: malformed bytes become U+FFFD, so any path or message is safe.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void json_init(struct json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if malformed. */
static int utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	int n, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and values past U+10FFFF are invalid. */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

void json_write_string(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	fputc('"', f);
	while (*s) {
		int n = utf8_len(s);

		if (n == 0) {
			fputs("\\ufffd", f);
			s++;
			continue;
		}
		if (n > 1) {
			fwrite(s, 1, (size_t)n, f);
			s += n;
			continue;
		}
		switch (*s) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\b':
			fputs("\\b", f);
			break;
		case '\f':
			fputs("\\f", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (*s < 0x20 || *s == 0x7f)
				fprintf(f, "\\u%04x", *s);
			else
				fputc(*s, f);
		}
		s++;
	}
	fputc('"', f);
}

static bool is_inline(const struct json *j)
{
	return j->depth > 0 && j->inline_from[j->depth - 1];
}

/* Comma, newline + indentation, and "key": for the next value at this level. */
static void json_prefix(struct json *j, const char *key)
{
	if (j->depth > 0) {
		if (j->need_comma[j->depth - 1])
			fputc(',', j->f);
		if (is_inline(j)) {
			if (j->need_comma[j->depth - 1])
				fputc(' ', j->f);
		} else {
			fputc('\n', j->f);
			for (int i = 0; i < j->depth; i++)
				fputs("  ", j->f);
		}
		j->need_comma[j->depth - 1] = true;
	}
	if (key) {
		json_write_string(j->f, key);
		fputs(": ", j->f);
	}
}

static void json_open(struct json *j, const char *key, bool one_line, char ch)
{
	bool parent_inline = is_inline(j);

	if (j->depth >= JSON_MAX_DEPTH)
		abort();	/* a programming error: our documents are shallow */
	json_prefix(j, key);
	fputc(ch, j->f);
	j->need_comma[j->depth] = false;
	j->inline_from[j->depth] = one_line || parent_inline;
	j->depth++;
}

static void json_close(struct json *j, char ch)
{
	bool had = j->depth > 0 && j->need_comma[j->depth - 1];
	bool inl = is_inline(j);

	j->depth--;
	if (had && !inl) {
		fputc('\n', j->f);
		for (int i = 0; i < j->depth; i++)
			fputs("  ", j->f);
	}
	fputc(ch, j->f);
}

void json_object_begin(struct json *j, const char *key, bool one_line)
{
	json_open(j, key, one_line, '{');
}

void json_object_end(struct json *j)
{
	json_close(j, '}');
}

void json_array_begin(struct json *j, const char *key, bool one_line)
{
	json_open(j, key, one_line, '[');
}

void json_array_end(struct json *j)
{
	json_close(j, ']');
}

void json_u64(struct json *j, const char *key, uint64_t v)
{
	json_prefix(j, key);
	fprintf(j->f, "%llu", (unsigned long long)v);
}

void json_i64(struct json *j, const char *key, int64_t v)
{
	json_prefix(j, key);
	fprintf(j->f, "%lld", (long long)v);
}

void json_bool(struct json *j, const char *key, bool v)
{
	json_prefix(j, key);
	fputs(v ? "true" : "false", j->f);
}

void json_null(struct json *j, const char *key)
{
	json_prefix(j, key);
	fputs("null", j->f);
}

void json_string(struct json *j, const char *key, const char *s)
{
	json_prefix(j, key);
	if (s)
		json_write_string(j->f, s);
	else
		fputs("null", j->f);
}

void json_finish(struct json *j)
{
	fputc('\n', j->f);
}
