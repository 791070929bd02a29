/*
 * json.h - a small JSON writer for the control socket's one-line replies.
 *
 * The caller owns a struct json: json_init(), then nested begin/end calls and
 * values, then json_str() for the text (no newline), then json_free().  Keys
 * are only valid directly inside an object, values inside an array or after
 * a key; commas are inserted automatically.  Strings are escaped per RFC 8259
 * (quotes, backslash, control characters as \uXXXX; well-formed UTF-8 is
 * copied as it is, any other byte >= 0x80 becomes \ufffd: the text is always
 * valid UTF-8).  Allocation failure or misuse (unbalanced end, a value where
 * a key is needed, nesting deeper than JSON_MAX_DEPTH) makes the writer
 * sticky-failed: json_ok() returns false and json_str() returns a fixed
 * {"error": "..."} object.
 *
 * Output format: ", " between members and ": " after keys, so a reply reads
 * {"error": "..."}; never a newline (control characters are escaped), which
 * keeps every document on one line.  The top level holds one value; a
 * second top-level value is misuse.  A NULL key or string is misuse too.
 */
#ifndef MINIVMM_JSON_H
#define MINIVMM_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 16

struct json {
    char *buf;
    size_t len, cap;
    int depth; /* open containers: 0 (top level) .. JSON_MAX_DEPTH */
    /* Indexed by depth; index 0 is the top level, outside any container. */
    bool first[JSON_MAX_DEPTH + 1]; /* nothing written yet at this level */
    bool is_object[JSON_MAX_DEPTH + 1];
    bool after_key; /* a key was written; a value must follow */
    bool failed;
};

void json_init(struct json *j);
/* Free the buffer; j is then as after json_init() and may be reused. */
void json_free(struct json *j);
bool json_ok(const struct json *j);
/*
 * Is j one finished document: not failed, one top-level value written, every
 * begin matched by its end, no key waiting for its value?
 */
bool json_complete(const struct json *j);
/*
 * The text so far (complete once every begin has its end); "" before anything
 * is written.  Valid until the next call that writes to j or json_free().
 */
const char *json_str(const struct json *j);

void json_object_begin(struct json *j);
void json_object_end(struct json *j);
void json_array_begin(struct json *j);
void json_array_end(struct json *j);
void json_key(struct json *j, const char *key);
void json_string(struct json *j, const char *s);
void json_u64(struct json *j, uint64_t v);
void json_bool(struct json *j, bool v);
/* key + value in one call */
void json_kv_string(struct json *j, const char *key, const char *s);
void json_kv_u64(struct json *j, const char *key, uint64_t v);
void json_kv_bool(struct json *j, const char *key, bool v);

#endif
