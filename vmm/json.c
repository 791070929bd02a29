/*
 * json.c - the one-line JSON writer; contract in json.h.
 *
 * Every public writer goes through json_put(), which does nothing once the
 * writer has failed, so a failure anywhere (allocation or misuse) is sticky
 * and callers never have to check each call.  Structure is tracked per level
 * in first[] and is_object[]; level 0 is the top level.
 */
#include "vmm/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What json_str() returns once the writer has failed. */
#define JSON_FAILED_TEXT "{\"error\": \"internal error: the reply could not be built\"}"
#define JSON_MIN_CAP     128

void json_init(struct json *j)
{
    memset(j, 0, sizeof(*j));
    j->first[0] = true;
}

void json_free(struct json *j)
{
    free(j->buf);
    json_init(j);
}

bool json_ok(const struct json *j)
{
    return !j->failed;
}

bool json_complete(const struct json *j)
{
    return !j->failed && j->depth == 0 && !j->first[0] && !j->after_key;
}

const char *json_str(const struct json *j)
{
    if (j->failed)
        return JSON_FAILED_TEXT;
    return j->buf ? j->buf : "";
}

static void json_fail(struct json *j)
{
    j->failed = true;
}

/* Make room for n more bytes plus the terminating NUL. */
static bool json_reserve(struct json *j, size_t n)
{
    if (n > SIZE_MAX / 4 - j->len)
        return false;
    size_t need = j->len + n + 1;
    if (need <= j->cap)
        return true;
    size_t cap = j->cap ? j->cap : JSON_MIN_CAP;
    while (cap < need)
        cap *= 2;
    char *buf = realloc(j->buf, cap);
    if (!buf)
        return false;
    j->buf = buf;
    j->cap = cap;
    return true;
}

/* Append n bytes of raw text; the buffer stays NUL-terminated. */
static void json_put(struct json *j, const char *s, size_t n)
{
    if (j->failed)
        return;
    if (!json_reserve(j, n)) {
        json_fail(j);
        return;
    }
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = '\0';
}

static void json_puts(struct json *j, const char *s)
{
    json_put(j, s, strlen(s));
}

/* The escape sequence for byte c, or NULL when c is copied as it is. */
static const char *json_escape(unsigned char c, char tmp[8])
{
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    }
    if (c >= 0x20)
        return NULL;
    snprintf(tmp, 8, "\\u%04x", c);
    return tmp;
}

/*
 * The length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0 if there is none.
 * p[0] >= 0x80; the string is NUL-terminated, so no read passes its end.
 */
static size_t utf8_sequence(const unsigned char *p)
{
    unsigned char c = p[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0;
    }
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return len;
}

/*
 * A quoted, escaped string; runs of plain bytes are copied in one piece.
 * Bytes that are not part of well-formed UTF-8 become U+FFFD, so the text is
 * always valid UTF-8 whatever a client or a guest put into the string.
 */
static void json_put_quoted(struct json *j, const char *s)
{
    const char *run = s;
    char tmp[8];

    json_put(j, "\"", 1);
    for (const char *p = s; *p;) {
        const unsigned char c = (unsigned char)*p;
        const char *esc = NULL;
        size_t len = 1;
        if (c >= 0x80) {
            len = utf8_sequence((const unsigned char *)p);
            if (len == 0) {
                esc = "\\ufffd";
                len = 1;
            }
        } else {
            esc = json_escape(c, tmp);
        }
        if (esc) {
            json_put(j, run, (size_t)(p - run));
            json_puts(j, esc);
            run = p + len;
        }
        p += len;
    }
    json_puts(j, run);
    json_put(j, "\"", 1);
}

/*
 * Called before every value: checks that a value is allowed here and writes
 * the separating comma.  Returns false (the writer then has failed) if not.
 */
static bool json_before_value(struct json *j)
{
    if (j->failed)
        return false;
    if (j->after_key) {
        j->after_key = false; /* the key already wrote the comma */
        return true;
    }
    if (j->depth == 0) {
        if (!j->first[0]) {
            json_fail(j); /* a second top-level value */
            return false;
        }
        j->first[0] = false;
        return true;
    }
    if (j->is_object[j->depth]) {
        json_fail(j); /* a value inside an object needs a key first */
        return false;
    }
    if (!j->first[j->depth])
        json_put(j, ", ", 2);
    j->first[j->depth] = false;
    return !j->failed;
}

static void json_begin(struct json *j, bool object)
{
    if (!json_before_value(j))
        return;
    if (j->depth == JSON_MAX_DEPTH) {
        json_fail(j);
        return;
    }
    json_put(j, object ? "{" : "[", 1);
    j->depth++;
    j->first[j->depth] = true;
    j->is_object[j->depth] = object;
}

static void json_end(struct json *j, bool object)
{
    if (j->failed)
        return;
    if (j->depth == 0 || j->is_object[j->depth] != object || j->after_key) {
        json_fail(j);
        return;
    }
    json_put(j, object ? "}" : "]", 1);
    j->depth--;
}

void json_object_begin(struct json *j)
{
    json_begin(j, true);
}

void json_object_end(struct json *j)
{
    json_end(j, true);
}

void json_array_begin(struct json *j)
{
    json_begin(j, false);
}

void json_array_end(struct json *j)
{
    json_end(j, false);
}

void json_key(struct json *j, const char *key)
{
    if (j->failed)
        return;
    if (!key || j->depth == 0 || !j->is_object[j->depth] || j->after_key) {
        json_fail(j);
        return;
    }
    if (!j->first[j->depth])
        json_put(j, ", ", 2);
    j->first[j->depth] = false;
    json_put_quoted(j, key);
    json_put(j, ": ", 2);
    j->after_key = true;
}

void json_string(struct json *j, const char *s)
{
    if (!s) {
        json_fail(j);
        return;
    }
    if (json_before_value(j))
        json_put_quoted(j, s);
}

void json_u64(struct json *j, uint64_t v)
{
    char num[24];

    if (!json_before_value(j))
        return;
    snprintf(num, sizeof(num), "%" PRIu64, v);
    json_puts(j, num);
}

void json_bool(struct json *j, bool v)
{
    if (json_before_value(j))
        json_puts(j, v ? "true" : "false");
}

void json_kv_string(struct json *j, const char *key, const char *s)
{
    json_key(j, key);
    json_string(j, s);
}

void json_kv_u64(struct json *j, const char *key, uint64_t v)
{
    json_key(j, key);
    json_u64(j, v);
}

void json_kv_bool(struct json *j, const char *key, bool v)
{
    json_key(j, key);
    json_bool(j, v);
}
