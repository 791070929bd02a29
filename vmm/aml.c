/*
 * aml.c - AML encoder; see aml.h for the contract.
 *
 * Encodings follow ACPI 6.5 chapter 20 (AML grammar) and section 6.4
 * (resource data types).
 */
#include "vmm/aml.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- AML opcodes and prefixes (ACPI 6.5 §20.2-20.3) ---- */
#define AML_ZERO_OP           0x00
#define AML_ONE_OP            0x01
#define AML_NAME_OP           0x08
#define AML_BYTE_PREFIX       0x0a
#define AML_WORD_PREFIX       0x0b
#define AML_DWORD_PREFIX      0x0c
#define AML_STRING_PREFIX     0x0d
#define AML_QWORD_PREFIX      0x0e
#define AML_SCOPE_OP          0x10
#define AML_BUFFER_OP         0x11
#define AML_PACKAGE_OP        0x12
#define AML_METHOD_OP         0x14
#define AML_DUAL_NAME_PREFIX  0x2e
#define AML_MULTI_NAME_PREFIX 0x2f
#define AML_EXT_OP_PREFIX     0x5b
#define AML_EXT_DEVICE_OP     0x82 /* follows AML_EXT_OP_PREFIX */
#define AML_ROOT_CHAR         '\\'
#define AML_PARENT_PREFIX     '^'
#define AML_RETURN_OP         0xa4
#define AML_ONES_OP           0xff
#define AML_NULL_NAME         0x00
#define AML_NAMESEG_LEN       4
#define AML_ASCII_MAX         0x7f
#define AML_NAMESEG_PAD       '_'
#define AML_MULTI_NAME_MAX    255 /* SegCount is one byte */
#define AML_PACKAGE_MAX_ELEMS 255 /* NumElements is one byte (no VarPackage) */

/* MethodFlags: bits 0-2 ArgCount, bit 3 SerializeFlag, bits 4-7 SyncLevel. */
#define AML_METHOD_MAX_ARGS   7
#define AML_METHOD_SERIALIZED 0x08

/* PkgLength (§20.2.4): bits 7-6 of the lead byte give the number of following bytes. */
#define PKGLEN_ONE_BYTE_MAX  0x3f /* 1-byte form: length in bits 5-0 */
#define PKGLEN_FOLLOW_SHIFT  6
#define PKGLEN_LEAD_NIBBLE   0x0f /* multi-byte form: low 4 bits of the length */
#define PKGLEN_NIBBLE_BITS   4
#define BITS_PER_BYTE        8
#define INTEGER_MAX_ENCODING 9   /* QWordPrefix + 8 bytes */
#define INITIAL_CAPACITY     256 /* first allocation; enough for a few small devices */

/* EisaId compression: three 5-bit letters ('A' = 1) then four hex nibbles. */
#define EISAID_LEN          7
#define EISAID_LETTERS      3
#define EISAID_LETTER_BITS  5
#define EISAID_NIBBLE_BITS  4
#define EISAID_LETTER_SHIFT 16 /* letters occupy bits 30-16 of the big-endian form */

/* ---- Resource descriptors (ACPI 6.5 §6.4) ---- */
#define RES_SMALL_IRQ_NOFLAGS    0x22 /* IRQ descriptor, type 4, length 2 */
#define RES_SMALL_IO             0x47 /* I/O port descriptor, type 8, length 7 */
#define RES_SMALL_END_TAG        0x79 /* End tag, type 0xf, length 1 */
#define RES_LARGE_MEMORY32_FIXED 0x86
#define RES_LARGE_DWORD_ADDRESS  0x87
#define RES_LARGE_WORD_ADDRESS   0x88
#define RES_LARGE_EXT_INTERRUPT  0x89
#define RES_LARGE_QWORD_ADDRESS  0x8a
#define RES_LARGE_HEADER_LEN     3 /* tag + 16-bit length */
#define RES_IO_DECODE16          0x01
#define RES_IRQ_ISA_MAX          15
#define RES_MEM_WRITABLE         0x01
#define RES_INT_CONSUMER         0x01
#define RES_INT_EDGE             0x02
#define RES_INT_ACTIVE_LOW       0x04
#define RES_INT_SHARED           0x08
#define RES_INT_MAX_GSIS         255
#define RES_ADDR_TYPE_MEMORY     0
#define RES_ADDR_TYPE_IO         1
#define RES_ADDR_TYPE_BUS        2
#define RES_ADDR_CONSUMER        0x01 /* general flags bit 0 */
#define RES_ADDR_MIN_FIXED       0x04 /* general flags bit 2 (_MIF) */
#define RES_ADDR_MAX_FIXED       0x08 /* general flags bit 3 (_MAF) */
#define RES_ADDR_IO_ENTIRE_RANGE 0x03 /* I/O type-specific flags _RNG */
#define RES_ADDR_MEM_WRITABLE    0x01 /* memory type-specific flags _RW */
#define RES_ADDR_MEM_CACHE_SHIFT 1    /* memory type-specific flags _MEM, bits 2-1 */
#define RES_WORD_ADDRESS_BODY    13   /* bytes after the large header */
#define RES_DWORD_ADDRESS_BODY   23
#define RES_QWORD_ADDRESS_BODY   43
#define RES_MEMORY32_FIXED_BODY  9
#define RES_EXT_INTERRUPT_FIXED  2 /* flags + count, before the GSI list */
#define RES_IO_SIZE              8 /* tag, info, min16, max16, align8, len8 */
#define RES_IRQ_NOFLAGS_SIZE     3 /* tag, mask16 */
#define RES_ADDR_FIELDS_OFFSET   3 /* type, general flags, type flags; then the fields */

enum block_kind { BLOCK_SCOPE, BLOCK_DEVICE, BLOCK_METHOD, BLOCK_PACKAGE };

/* ---- Error handling and the byte buffer ---- */

static void fail(struct aml *aml, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct aml *aml, const char *fmt, ...)
{
    if (aml->failed)
        return;
    aml->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(aml->error, sizeof(aml->error), fmt, ap);
    va_end(ap);
}

static bool reserve(struct aml *aml, size_t extra)
{
    if (aml->failed)
        return false;
    if (extra > SIZE_MAX - aml->len) {
        fail(aml, "aml: buffer size overflow");
        return false;
    }
    size_t need = aml->len + extra;
    if (need <= aml->cap)
        return true;
    size_t cap = aml->cap ? aml->cap : INITIAL_CAPACITY;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *buf = realloc(aml->buf, cap);
    if (!buf) {
        fail(aml, "aml: out of memory (%zu bytes)", cap);
        return false;
    }
    aml->buf = buf;
    aml->cap = cap;
    return true;
}

static void emit(struct aml *aml, const void *bytes, size_t n)
{
    if (n == 0 || !reserve(aml, n))
        return;
    memcpy(aml->buf + aml->len, bytes, n);
    aml->len += n;
}

static void emit_byte(struct aml *aml, uint8_t b)
{
    emit(aml, &b, 1);
}

static void put_le(uint8_t *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (BITS_PER_BYTE * i));
}

/* ---- Lifetime ---- */

void aml_init(struct aml *aml)
{
    memset(aml, 0, sizeof(*aml));
}

void aml_release(struct aml *aml)
{
    free(aml->buf);
    aml_init(aml);
}

bool aml_ok(const struct aml *aml)
{
    return !aml->failed && aml->depth == 0;
}

const char *aml_error(const struct aml *aml)
{
    if (!aml->failed && aml->depth != 0)
        return "aml: unclosed block (missing aml_end)";
    return aml->error;
}

const uint8_t *aml_data(const struct aml *aml)
{
    return aml->buf;
}

size_t aml_size(const struct aml *aml)
{
    return aml->len;
}

/* ---- Encoding primitives ---- */

static size_t pkglength_limit(size_t nbytes)
{
    if (nbytes == 1)
        return PKGLEN_ONE_BYTE_MAX;
    return ((size_t)1 << (PKGLEN_NIBBLE_BITS + BITS_PER_BYTE * (nbytes - 1))) - 1;
}

size_t aml_encode_pkglength(uint8_t out[AML_PKGLENGTH_MAX_BYTES], size_t body_len)
{
    if (body_len > AML_PKGLENGTH_MAX_BODY)
        return 0;
    for (size_t n = 1; n <= AML_PKGLENGTH_MAX_BYTES; n++) {
        size_t total = body_len + n;
        if (total > pkglength_limit(n))
            continue;
        if (n == 1) {
            out[0] = (uint8_t)total;
            return 1;
        }
        out[0] = (uint8_t)(((n - 1) << PKGLEN_FOLLOW_SHIFT) | (total & PKGLEN_LEAD_NIBBLE));
        put_le(out + 1, total >> PKGLEN_NIBBLE_BITS, n - 1);
        return n;
    }
    return 0;
}

static size_t encode_integer(uint8_t out[INTEGER_MAX_ENCODING], uint64_t v)
{
    static const struct {
        uint64_t max;
        uint8_t prefix;
        uint8_t nbytes;
    } forms[] = {
        {UINT8_MAX, AML_BYTE_PREFIX, 1},
        {UINT16_MAX, AML_WORD_PREFIX, 2},
        {UINT32_MAX, AML_DWORD_PREFIX, 4},
        {UINT64_MAX, AML_QWORD_PREFIX, 8},
    };
    if (v == 0 || v == 1 || v == UINT64_MAX) {
        out[0] = v == 0 ? AML_ZERO_OP : v == 1 ? AML_ONE_OP : AML_ONES_OP;
        return 1;
    }
    size_t i = 0;
    while (v > forms[i].max)
        i++;
    out[0] = forms[i].prefix;
    put_le(out + 1, v, forms[i].nbytes);
    return 1 + forms[i].nbytes;
}

static bool is_upper(char c)
{
    return c >= 'A' && c <= 'Z';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int hex_value(char c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool aml_eisaid_value(const char *id, uint32_t *value)
{
    if (!id || strlen(id) != EISAID_LEN)
        return false;
    uint32_t letters = 0;
    for (int i = 0; i < EISAID_LETTERS; i++) {
        if (!is_upper(id[i]))
            return false;
        letters = (letters << EISAID_LETTER_BITS) | (uint32_t)(id[i] - 'A' + 1);
    }
    uint32_t product = 0;
    for (int i = EISAID_LETTERS; i < EISAID_LEN; i++) {
        int nibble = hex_value(id[i]);
        if (nibble < 0)
            return false;
        product = (product << EISAID_NIBBLE_BITS) | (uint32_t)nibble;
    }
    /* The compressed id is stored big-endian; AML holds it as a little-endian DWord. */
    *value = __builtin_bswap32((letters << EISAID_LETTER_SHIFT) | product);
    return true;
}

/* ---- NameString (§20.2.2) ---- */

static bool is_lead_name_char(char c)
{
    return is_upper(c) || c == '_';
}

/* Length of the segment starting at s, or 0 if it is not a valid 1-4 character NameSeg. */
static size_t nameseg_len(const char *s)
{
    size_t n = 0;
    if (!is_lead_name_char(s[0]))
        return 0;
    while (s[n] && s[n] != '.') {
        if (n == AML_NAMESEG_LEN || !(is_lead_name_char(s[n]) || is_digit(s[n])))
            return 0;
        n++;
    }
    return n;
}

/* Validate the segments after the prefix; returns their count, or -1 if invalid. */
static int count_namesegs(const char *segs)
{
    if (*segs == '\0')
        return 0;
    int count = 0;
    for (const char *s = segs;; s++) {
        size_t n = nameseg_len(s);
        if (n == 0 || count == AML_MULTI_NAME_MAX)
            return -1;
        count++;
        s += n;
        if (*s == '\0')
            return count;
    }
}

static void emit_nameseg(struct aml *aml, const char *s)
{
    uint8_t seg[AML_NAMESEG_LEN];
    size_t n = nameseg_len(s);
    memset(seg, AML_NAMESEG_PAD, sizeof(seg));
    memcpy(seg, s, n);
    emit(aml, seg, sizeof(seg));
}

static void emit_namestring(struct aml *aml, const char *path)
{
    if (aml->failed)
        return;
    if (!path) {
        fail(aml, "aml: NULL name");
        return;
    }
    const char *segs = path;
    if (*segs == AML_ROOT_CHAR)
        segs++;
    else
        while (*segs == AML_PARENT_PREFIX)
            segs++;
    int count = count_namesegs(segs);
    if (count < 0 || (count == 0 && segs == path)) {
        fail(aml, "aml: invalid name \"%.40s\"", path);
        return;
    }
    emit(aml, path, (size_t)(segs - path));
    if (count == 0) {
        emit_byte(aml, AML_NULL_NAME);
        return;
    }
    if (count == 2) {
        emit_byte(aml, AML_DUAL_NAME_PREFIX);
    } else if (count > 2) {
        emit_byte(aml, AML_MULTI_NAME_PREFIX);
        emit_byte(aml, (uint8_t)count);
    }
    for (const char *s = segs; count > 0; count--) {
        emit_nameseg(aml, s);
        s += nameseg_len(s) + 1;
    }
}

/* ---- Blocks ---- */

static bool in_package(const struct aml *aml)
{
    return aml->depth > 0 && aml->kind[aml->depth - 1] == BLOCK_PACKAGE;
}

/* Called before appending a data object: counts it if the innermost block is a Package. */
static void count_element(struct aml *aml)
{
    if (in_package(aml))
        aml->elems[aml->depth - 1]++;
}

/* Called before appending a term (Name, Scope, Device, Method, statement). */
static bool check_term_allowed(struct aml *aml, const char *what)
{
    if (aml->failed)
        return false;
    if (in_package(aml)) {
        fail(aml, "aml: %s inside a Package", what);
        return false;
    }
    return true;
}

/* Emit the opcode, then open a block whose PkgLength will be inserted at the current offset. */
static size_t block_begin(struct aml *aml, enum block_kind kind, const uint8_t *op, size_t oplen)
{
    if (aml->failed)
        return AML_BAD_BLOCK;
    if (aml->depth == AML_MAX_DEPTH) {
        fail(aml, "aml: blocks nested deeper than %d", AML_MAX_DEPTH);
        return AML_BAD_BLOCK;
    }
    emit(aml, op, oplen);
    aml->open[aml->depth] = aml->len;
    aml->kind[aml->depth] = (uint8_t)kind;
    aml->elems[aml->depth] = 0;
    aml->depth++;
    return aml->open[aml->depth - 1];
}

size_t aml_scope_begin(struct aml *aml, const char *path)
{
    static const uint8_t op[] = {AML_SCOPE_OP};
    if (!check_term_allowed(aml, "Scope"))
        return AML_BAD_BLOCK;
    size_t block = block_begin(aml, BLOCK_SCOPE, op, sizeof(op));
    emit_namestring(aml, path);
    return block;
}

size_t aml_device_begin(struct aml *aml, const char *path)
{
    static const uint8_t op[] = {AML_EXT_OP_PREFIX, AML_EXT_DEVICE_OP};
    if (!check_term_allowed(aml, "Device"))
        return AML_BAD_BLOCK;
    size_t block = block_begin(aml, BLOCK_DEVICE, op, sizeof(op));
    emit_namestring(aml, path);
    return block;
}

size_t aml_method_begin(struct aml *aml, const char *path, unsigned nargs, bool serialized)
{
    static const uint8_t op[] = {AML_METHOD_OP};
    if (!check_term_allowed(aml, "Method"))
        return AML_BAD_BLOCK;
    if (nargs > AML_METHOD_MAX_ARGS) {
        fail(aml, "aml: Method %.8s with %u arguments (max %d)", path ? path : "?", nargs,
             AML_METHOD_MAX_ARGS);
        return AML_BAD_BLOCK;
    }
    size_t block = block_begin(aml, BLOCK_METHOD, op, sizeof(op));
    emit_namestring(aml, path);
    emit_byte(aml, (uint8_t)(nargs | (serialized ? AML_METHOD_SERIALIZED : 0)));
    return block;
}

size_t aml_package_begin(struct aml *aml)
{
    static const uint8_t op[] = {AML_PACKAGE_OP};
    count_element(aml);
    size_t block = block_begin(aml, BLOCK_PACKAGE, op, sizeof(op));
    emit_byte(aml, 0); /* NumElements, filled in by aml_end() */
    return block;
}

void aml_end(struct aml *aml, size_t block)
{
    if (aml->failed)
        return;
    if (aml->depth == 0 || aml->open[aml->depth - 1] != block) {
        fail(aml, "aml: aml_end() does not match the innermost open block (%s)",
             aml->depth ? "a nested block was left open" : "no block is open");
        return;
    }
    aml->depth--;
    if (aml->kind[aml->depth] == BLOCK_PACKAGE) {
        if (aml->elems[aml->depth] > AML_PACKAGE_MAX_ELEMS) {
            fail(aml, "aml: Package with %u elements (max %d)", aml->elems[aml->depth],
                 AML_PACKAGE_MAX_ELEMS);
            return;
        }
        aml->buf[block] = (uint8_t)aml->elems[aml->depth];
    }
    size_t body = aml->len - block;
    uint8_t pkglen[AML_PKGLENGTH_MAX_BYTES];
    size_t n = aml_encode_pkglength(pkglen, body);
    if (n == 0) {
        fail(aml, "aml: block body of %zu bytes is too large", body);
        return;
    }
    if (!reserve(aml, n))
        return;
    memmove(aml->buf + block + n, aml->buf + block, body);
    memcpy(aml->buf + block, pkglen, n);
    aml->len += n;
}

/* ---- Data objects ---- */

static void emit_integer(struct aml *aml, uint64_t value)
{
    uint8_t enc[INTEGER_MAX_ENCODING];
    emit(aml, enc, encode_integer(enc, value));
}

void aml_integer(struct aml *aml, uint64_t value)
{
    count_element(aml);
    emit_integer(aml, value);
}

void aml_string(struct aml *aml, const char *s)
{
    if (aml->failed)
        return;
    if (!s) {
        fail(aml, "aml: NULL string");
        return;
    }
    for (const char *c = s; *c; c++) {
        if ((unsigned char)*c > AML_ASCII_MAX) {
            fail(aml, "aml: non-ASCII character in string \"%.40s\"", s);
            return;
        }
    }
    count_element(aml);
    emit_byte(aml, AML_STRING_PREFIX);
    emit(aml, s, strlen(s) + 1); /* including the NUL terminator */
}

void aml_eisaid(struct aml *aml, const char *id)
{
    uint32_t value;
    if (aml->failed)
        return;
    if (!aml_eisaid_value(id, &value)) {
        fail(aml, "aml: invalid EISA id \"%.16s\"", id ? id : "(null)");
        return;
    }
    uint8_t enc[1 + sizeof(value)] = {AML_DWORD_PREFIX};
    put_le(enc + 1, value, sizeof(value));
    count_element(aml);
    emit(aml, enc, sizeof(enc));
}

/* Buffer (size) { head, tail }: the two parts let a resource template add its EndTag. */
static void emit_buffer(struct aml *aml, const void *head, size_t head_len, const void *tail,
                        size_t tail_len)
{
    if (aml->failed)
        return;
    uint8_t size_enc[INTEGER_MAX_ENCODING];
    size_t size_len = encode_integer(size_enc, (uint64_t)head_len + tail_len);
    uint8_t pkglen[AML_PKGLENGTH_MAX_BYTES];
    size_t body = size_len + head_len + tail_len;
    size_t n = aml_encode_pkglength(pkglen, body);
    if (n == 0) {
        fail(aml, "aml: Buffer of %zu bytes is too large", head_len + tail_len);
        return;
    }
    count_element(aml);
    emit_byte(aml, AML_BUFFER_OP);
    emit(aml, pkglen, n);
    emit(aml, size_enc, size_len);
    emit(aml, head, head_len);
    emit(aml, tail, tail_len);
}

void aml_buffer(struct aml *aml, const void *data, size_t len)
{
    if (!data && len) {
        fail(aml, "aml: NULL buffer data");
        return;
    }
    emit_buffer(aml, data, len, NULL, 0);
}

void aml_namestring(struct aml *aml, const char *path)
{
    count_element(aml);
    emit_namestring(aml, path);
}

/* ---- Named objects ---- */

void aml_name(struct aml *aml, const char *path)
{
    if (!check_term_allowed(aml, "Name"))
        return;
    emit_byte(aml, AML_NAME_OP);
    emit_namestring(aml, path);
}

void aml_name_integer(struct aml *aml, const char *path, uint64_t value)
{
    aml_name(aml, path);
    aml_integer(aml, value);
}

void aml_name_string(struct aml *aml, const char *path, const char *s)
{
    aml_name(aml, path);
    aml_string(aml, s);
}

void aml_name_eisaid(struct aml *aml, const char *path, const char *id)
{
    aml_name(aml, path);
    aml_eisaid(aml, id);
}

void aml_name_buffer(struct aml *aml, const char *path, const void *data, size_t len)
{
    aml_name(aml, path);
    aml_buffer(aml, data, len);
}

void aml_name_package_integers(struct aml *aml, const char *path, const uint64_t *values,
                               size_t count)
{
    if (!values && count) {
        fail(aml, "aml: NULL package values");
        return;
    }
    aml_name(aml, path);
    size_t pkg = aml_package_begin(aml);
    for (size_t i = 0; i < count; i++)
        aml_integer(aml, values[i]);
    aml_end(aml, pkg);
}

void aml_name_resource(struct aml *aml, const char *path, const struct aml_res *res)
{
    aml_name(aml, path);
    aml_resource(aml, res);
}

/* ---- Statements ---- */

void aml_return_integer(struct aml *aml, uint64_t value)
{
    if (!check_term_allowed(aml, "Return"))
        return;
    emit_byte(aml, AML_RETURN_OP);
    emit_integer(aml, value);
}

/* ---- Resource templates ---- */

void aml_res_init(struct aml_res *res)
{
    memset(res, 0, sizeof(*res));
}

static void res_fail(struct aml_res *res, const char *why)
{
    if (!res->failed) {
        res->failed = true;
        res->error = why;
    }
}

/* Reserve n bytes at the end of the template; NULL (and a sticky error) if it is full. */
static uint8_t *res_append(struct aml_res *res, size_t n)
{
    if (res->failed)
        return NULL;
    if (n > sizeof(res->data) - res->len) {
        res_fail(res, "resource template full (AML_RES_MAX)");
        return NULL;
    }
    uint8_t *p = res->data + res->len;
    res->len += n;
    return p;
}

/* Start a large descriptor with `body` bytes after its 3-byte header; returns the body. */
static uint8_t *res_large(struct aml_res *res, uint8_t tag, size_t body)
{
    uint8_t *p = res_append(res, RES_LARGE_HEADER_LEN + body);
    if (!p)
        return NULL;
    p[0] = tag;
    put_le(p + 1, body, sizeof(uint16_t));
    return p + RES_LARGE_HEADER_LEN;
}

void aml_res_io(struct aml_res *res, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
    if (min > max) {
        res_fail(res, "IO: min > max");
        return;
    }
    uint8_t *p = res_append(res, RES_IO_SIZE);
    if (!p)
        return;
    p[0] = RES_SMALL_IO;
    p[1] = RES_IO_DECODE16;
    put_le(p + 2, min, sizeof(min)); /* bytes 2-3: range minimum base */
    put_le(p + 4, max, sizeof(max)); /* bytes 4-5: range maximum base */
    p[6] = align;
    p[7] = len;
}

void aml_res_irq_noflags(struct aml_res *res, unsigned irq)
{
    if (irq > RES_IRQ_ISA_MAX) {
        res_fail(res, "IRQNoFlags: IRQ above 15");
        return;
    }
    uint8_t *p = res_append(res, RES_IRQ_NOFLAGS_SIZE);
    if (!p)
        return;
    p[0] = RES_SMALL_IRQ_NOFLAGS;
    put_le(p + 1, 1u << irq, sizeof(uint16_t)); /* IRQ mask, bit n = IRQ n */
}

void aml_res_memory32_fixed(struct aml_res *res, enum aml_mem_access access, uint32_t base,
                            uint32_t size)
{
    uint8_t *p = res_large(res, RES_LARGE_MEMORY32_FIXED, RES_MEMORY32_FIXED_BODY);
    if (!p)
        return;
    p[0] = access == AML_MEM_READ_WRITE ? RES_MEM_WRITABLE : 0;
    put_le(p + 1, base, sizeof(base));                /* body bytes 1-4: base */
    put_le(p + 1 + sizeof(base), size, sizeof(size)); /* body bytes 5-8: length */
}

void aml_res_interrupts(struct aml_res *res, enum aml_irq_trigger trigger,
                        enum aml_irq_polarity polarity, enum aml_irq_sharing sharing,
                        const uint32_t *gsis, size_t count)
{
    if (count == 0 || count > RES_INT_MAX_GSIS || !gsis) {
        res_fail(res, "Interrupt: needs 1-255 GSIs");
        return;
    }
    uint8_t *p =
        res_large(res, RES_LARGE_EXT_INTERRUPT, RES_EXT_INTERRUPT_FIXED + count * sizeof(uint32_t));
    if (!p)
        return;
    p[0] = RES_INT_CONSUMER | (trigger == AML_IRQ_EDGE ? RES_INT_EDGE : 0) |
           (polarity == AML_IRQ_ACTIVE_LOW ? RES_INT_ACTIVE_LOW : 0) |
           (sharing == AML_IRQ_SHARED ? RES_INT_SHARED : 0);
    p[1] = (uint8_t)count;
    for (size_t i = 0; i < count; i++)
        put_le(p + RES_EXT_INTERRUPT_FIXED + i * sizeof(uint32_t), gsis[i], sizeof(uint32_t));
}

void aml_res_interrupt(struct aml_res *res, enum aml_irq_trigger trigger,
                       enum aml_irq_polarity polarity, enum aml_irq_sharing sharing, uint32_t gsi)
{
    aml_res_interrupts(res, trigger, polarity, sharing, &gsi, 1);
}

/*
 * Word/DWord/QWord address-space descriptors share one layout: type, general flags,
 * type-specific flags, then granularity, min, max, translation and length, each
 * `width` bytes wide.
 */
struct addr_space {
    uint8_t tag;
    size_t body;
    size_t width;
    uint8_t type;
    uint8_t type_flags;
    enum aml_res_usage usage;
    uint64_t min;
    uint64_t max;
};

static void res_address_space(struct aml_res *res, const struct addr_space *a)
{
    uint64_t len = a->max - a->min + 1;
    uint64_t field_max =
        a->width == sizeof(uint64_t) ? UINT64_MAX : ((uint64_t)1 << (BITS_PER_BYTE * a->width)) - 1;
    if (a->min > a->max || len == 0 || len > field_max) {
        res_fail(res, "address space: min > max or range too large");
        return;
    }
    uint8_t *p = res_large(res, a->tag, a->body);
    if (!p)
        return;
    p[0] = a->type;
    p[1] = RES_ADDR_MIN_FIXED | RES_ADDR_MAX_FIXED |
           (a->usage == AML_RES_CONSUMER ? RES_ADDR_CONSUMER : 0); /* PosDecode = 0 */
    p[2] = a->type_flags;
    const uint64_t fields[] = {0 /* granularity */, a->min, a->max, 0 /* translation */, len};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        put_le(p + RES_ADDR_FIELDS_OFFSET + i * a->width, fields[i], a->width);
}

static uint8_t mem_type_flags(enum aml_mem_cache cache, enum aml_mem_access access)
{
    return (uint8_t)(((unsigned)cache << RES_ADDR_MEM_CACHE_SHIFT) |
                     (access == AML_MEM_READ_WRITE ? RES_ADDR_MEM_WRITABLE : 0));
}

void aml_res_word_bus_number(struct aml_res *res, enum aml_res_usage usage, uint16_t min,
                             uint16_t max)
{
    struct addr_space a = {.tag = RES_LARGE_WORD_ADDRESS,
                           .body = RES_WORD_ADDRESS_BODY,
                           .width = sizeof(uint16_t),
                           .type = RES_ADDR_TYPE_BUS,
                           .type_flags = 0,
                           .usage = usage,
                           .min = min,
                           .max = max};
    res_address_space(res, &a);
}

void aml_res_word_io(struct aml_res *res, enum aml_res_usage usage, uint16_t min, uint16_t max)
{
    struct addr_space a = {.tag = RES_LARGE_WORD_ADDRESS,
                           .body = RES_WORD_ADDRESS_BODY,
                           .width = sizeof(uint16_t),
                           .type = RES_ADDR_TYPE_IO,
                           .type_flags = RES_ADDR_IO_ENTIRE_RANGE,
                           .usage = usage,
                           .min = min,
                           .max = max};
    res_address_space(res, &a);
}

void aml_res_dword_memory(struct aml_res *res, enum aml_res_usage usage, enum aml_mem_cache cache,
                          enum aml_mem_access access, uint32_t min, uint32_t max)
{
    struct addr_space a = {.tag = RES_LARGE_DWORD_ADDRESS,
                           .body = RES_DWORD_ADDRESS_BODY,
                           .width = sizeof(uint32_t),
                           .type = RES_ADDR_TYPE_MEMORY,
                           .type_flags = mem_type_flags(cache, access),
                           .usage = usage,
                           .min = min,
                           .max = max};
    res_address_space(res, &a);
}

void aml_res_qword_memory(struct aml_res *res, enum aml_res_usage usage, enum aml_mem_cache cache,
                          enum aml_mem_access access, uint64_t min, uint64_t max)
{
    struct addr_space a = {.tag = RES_LARGE_QWORD_ADDRESS,
                           .body = RES_QWORD_ADDRESS_BODY,
                           .width = sizeof(uint64_t),
                           .type = RES_ADDR_TYPE_MEMORY,
                           .type_flags = mem_type_flags(cache, access),
                           .usage = usage,
                           .min = min,
                           .max = max};
    res_address_space(res, &a);
}

void aml_resource(struct aml *aml, const struct aml_res *res)
{
    /* EndTag with checksum 0, which means "treat the template as checksummed". */
    static const uint8_t end_tag[] = {RES_SMALL_END_TAG, 0};
    if (aml->failed)
        return;
    if (res->failed) {
        fail(aml, "aml: %s", res->error);
        return;
    }
    emit_buffer(aml, res->data, res->len, end_tag, sizeof(end_tag));
}
