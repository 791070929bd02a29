/*
 * aml.h - a small encoder for ACPI Machine Language (ACPI 6.x chapter 20).
 *
 * minivmm boots guests without firmware, so it writes its own DSDT.  Devices
 * describe themselves by appending AML to a `struct aml` while the DSDT is
 * built (see acpi.h, `acpi_config.describe_devices`).  The encoder is a
 * growable byte buffer plus a stack of open blocks; it never aborts.
 *
 * Error model: every function records the first failure (allocation failure,
 * invalid name, unbalanced begin/end, oversized resource template, ...) in a
 * sticky flag and turns all later calls into no-ops.  Callers do not check
 * each call; the owner checks aml_ok() once, after the last aml_end().
 *
 * Ownership: the owner (acpi_build_tables(), or a unit test) declares a
 * `struct aml`, calls aml_init(), hands the pointer to device code, and calls
 * aml_release() at the end.  Device code only appends; it never initialises,
 * releases or reads back the buffer, and it must not keep the pointer after
 * its callback returns.
 *
 * Blocks: aml_scope_begin(), aml_device_begin(), aml_method_begin() and
 * aml_package_begin() open a block and return a handle; the matching
 * aml_end(handle) closes it and writes its PkgLength.  Blocks nest strictly
 * (last opened, first closed) up to AML_MAX_DEPTH deep; closing the wrong
 * handle is an error.  Inside a Package only data objects (which are counted as
 * its elements) may appear; Name, Scope, Device, Method and statements there are
 * errors.  Typical use by a device:
 *
 *     size_t dev = aml_device_begin(aml, "COM1");
 *     aml_name_eisaid(aml, "_HID", "PNP0501");
 *     aml_name_integer(aml, "_UID", 1);
 *     struct aml_res res;
 *     aml_res_init(&res);
 *     aml_res_io(&res, 0x3f8, 0x3f8, 1, 8);
 *     aml_res_irq_noflags(&res, 4);
 *     aml_name_resource(aml, "_CRS", &res);
 *     aml_end(aml, dev);
 *
 * Names: every `path` argument is an ASL-style NameString: one or more 1-4
 * character segments separated by '.', optionally preceded by '\' (root) or
 * one or more '^' (parent).  Segment characters are 'A'-'Z', '_' and, after
 * the first character, '0'-'9'; short segments are padded with '_' ("COM1",
 * "_SB.PCI0", "\_SB.PCI0.S08", "\"; lower case is rejected).
 *
 * Integers are 64-bit: the encoder assumes a definition block of revision 2
 * or later, which acpi_build_tables() produces.
 *
 * Not thread-safe; one struct aml is used by one thread at a time.
 */
#ifndef MINIVMM_VMM_AML_H
#define MINIVMM_VMM_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest nesting of open blocks (Scope > Device > Method > Package ...). */
#define AML_MAX_DEPTH 16

/* A PkgLength field takes 1 to 4 bytes. */
#define AML_PKGLENGTH_MAX_BYTES 4

/* Largest body (everything after the PkgLength field) a PkgLength can describe. */
#define AML_PKGLENGTH_MAX_BODY ((size_t)0x0fffffff - AML_PKGLENGTH_MAX_BYTES)

/* Size of the message buffer returned by aml_error(). */
#define AML_ERROR_LEN 96

/*
 * Returned by the *_begin() functions when no block could be opened (nesting deeper
 * than AML_MAX_DEPTH, or the builder had already failed).  The builder is then in
 * the failed state, so passing it to aml_end() is harmless.
 */
#define AML_BAD_BLOCK ((size_t)-1)

/* Internal state; callers only pass the pointer around and never touch the fields. */
struct aml {
    uint8_t *buf;                  /* encoded AML, owned by this struct */
    size_t len;                    /* bytes used in buf */
    size_t cap;                    /* bytes allocated in buf */
    size_t open[AML_MAX_DEPTH];    /* per open block: offset where its PkgLength goes */
    uint8_t kind[AML_MAX_DEPTH];   /* per open block: Scope, Device, Method or Package */
    unsigned elems[AML_MAX_DEPTH]; /* per open Package: elements appended so far */
    unsigned depth;                /* number of open blocks */
    bool failed;                   /* sticky error flag */
    char error[AML_ERROR_LEN];     /* first error, for diagnostics */
};

/* ---- Lifetime and results (called by the owner only) ---------------------------------------- */

/* Prepare an empty encoder.  Allocates nothing; cannot fail. */
void aml_init(struct aml *aml);

/* Free the buffer.  The struct may be reused after another aml_init(). */
void aml_release(struct aml *aml);

/*
 * True if no call has failed and every opened block has been closed.  Check it
 * once after the last aml_end(), before using aml_data().
 */
bool aml_ok(const struct aml *aml);

/* A human-readable reason for the first failure, or "" if none.  Owned by aml. */
const char *aml_error(const struct aml *aml);

/* The encoded bytes (NULL if nothing was written) and their count.  Valid until the next call. */
const uint8_t *aml_data(const struct aml *aml);
size_t aml_size(const struct aml *aml);

/* ---- Blocks (any caller; strictly nested) ---------------------------------------------------- */

/* Scope (path) { ... }.  Returns a handle for aml_end(). */
size_t aml_scope_begin(struct aml *aml, const char *path);

/* Device (path) { ... }.  Returns a handle for aml_end(). */
size_t aml_device_begin(struct aml *aml, const char *path);

/*
 * Method (path, nargs, Serialized | NotSerialized) { ... }, nargs 0-7, sync level 0.
 * The body is made of statements such as aml_return_integer().
 */
size_t aml_method_begin(struct aml *aml, const char *path, unsigned nargs, bool serialized);

/*
 * Package () { ... }.  Must be the data object of an aml_name() or an element of an
 * enclosing package.  Only data objects (aml_integer(), aml_string(), aml_eisaid(),
 * aml_buffer(), aml_namestring(), aml_resource(), aml_package_begin()) may follow
 * until aml_end(), which fills in NumElements (at most 255; no VarPackage).
 */
size_t aml_package_begin(struct aml *aml);

/* Close the innermost open block, which must be `block`, and write its PkgLength. */
void aml_end(struct aml *aml, size_t block);

/* ---- Data objects: append one value at the current position --------------------------------- */

/* Integer with the shortest encoding: Zero, One, Ones, Byte, Word, DWord or QWord. */
void aml_integer(struct aml *aml, uint64_t value);

/* String literal; characters must be ASCII 0x01-0x7f. */
void aml_string(struct aml *aml, const char *s);

/* EisaId ("PNP0501"): three upper-case letters and four hex digits, as a DWord. */
void aml_eisaid(struct aml *aml, const char *id);

/* Buffer () { bytes }.  `data` may be NULL only when len is 0. */
void aml_buffer(struct aml *aml, const void *data, size_t len);

/* A reference to a named object (a NameString), e.g. as a package element. */
void aml_namestring(struct aml *aml, const char *path);

/* ---- Named objects: Name (path, <data object>) --------------------------------------------- */

/* Emit "Name (path," only; the caller appends exactly one data object next. */
void aml_name(struct aml *aml, const char *path);

void aml_name_integer(struct aml *aml, const char *path, uint64_t value);
void aml_name_string(struct aml *aml, const char *path, const char *s);
void aml_name_eisaid(struct aml *aml, const char *path, const char *id);
void aml_name_buffer(struct aml *aml, const char *path, const void *data, size_t len);

/* Name (path, Package () { values[0], ... }), count 0-255. */
void aml_name_package_integers(struct aml *aml, const char *path, const uint64_t *values,
                               size_t count);

/* ---- Statements (inside a Method block) ---------------------------------------------------- */

/* Return (value) */
void aml_return_integer(struct aml *aml, uint64_t value);

/* ---- Encoding primitives (exposed for unit tests) ------------------------------------------ */

/*
 * Encode the PkgLength of a block whose body (the bytes after the PkgLength
 * field) is `body_len` bytes long.  The encoded length counts the PkgLength
 * bytes themselves, so a 63-byte body needs the 2-byte form.  Writes 1-4 bytes
 * to `out` and returns how many, or 0 if body_len > AML_PKGLENGTH_MAX_BODY.
 */
size_t aml_encode_pkglength(uint8_t out[AML_PKGLENGTH_MAX_BYTES], size_t body_len);

/*
 * Compress an EISA id such as "PNP0501" into the 32-bit value ASL's EISAID()
 * produces (0x0105d041 for "PNP0501").  Returns false if the id is malformed.
 */
bool aml_eisaid_value(const char *id, uint32_t *value);

/* ---- Resource templates (for _CRS and friends) --------------------------------------------- */

/* Capacity of one resource template, in bytes (an address-space descriptor takes 16-46). */
#define AML_RES_MAX 512

/*
 * A resource template being built.  Declare it on the stack, aml_res_init() it,
 * append descriptors in order, then hand it to aml_name_resource(), which adds the
 * EndTag.  Errors (template full, bad argument) are sticky and are reported
 * through the struct aml when the template is emitted.  Needs no release.
 */
struct aml_res {
    uint8_t data[AML_RES_MAX];
    size_t len;
    bool failed;
    const char *error; /* static string describing the first failure */
};

enum aml_irq_trigger { AML_IRQ_LEVEL, AML_IRQ_EDGE };
enum aml_irq_polarity { AML_IRQ_ACTIVE_HIGH, AML_IRQ_ACTIVE_LOW };
enum aml_irq_sharing { AML_IRQ_EXCLUSIVE, AML_IRQ_SHARED };

/* Who uses an address range: a bridge window is produced, a device's registers are consumed. */
enum aml_res_usage { AML_RES_PRODUCER, AML_RES_CONSUMER };

enum aml_mem_access { AML_MEM_READ_ONLY, AML_MEM_READ_WRITE };
enum aml_mem_cache {
    AML_MEM_NON_CACHEABLE,
    AML_MEM_CACHEABLE,
    AML_MEM_WRITE_COMBINING,
    AML_MEM_PREFETCHABLE,
};

void aml_res_init(struct aml_res *res);

/* IO (Decode16, min, max, align, len) */
void aml_res_io(struct aml_res *res, uint16_t min, uint16_t max, uint8_t align, uint8_t len);

/* IRQNoFlags () { irq }: an ISA IRQ 0-15, edge-triggered, active-high, exclusive. */
void aml_res_irq_noflags(struct aml_res *res, unsigned irq);

/* Memory32Fixed (access, base, size) */
void aml_res_memory32_fixed(struct aml_res *res, enum aml_mem_access access, uint32_t base,
                            uint32_t size);

/* Interrupt (ResourceConsumer, trigger, polarity, sharing) { gsi } */
void aml_res_interrupt(struct aml_res *res, enum aml_irq_trigger trigger,
                       enum aml_irq_polarity polarity, enum aml_irq_sharing sharing, uint32_t gsi);

/* Interrupt (ResourceConsumer, trigger, polarity, sharing) { gsis[0], ... }, count 1-255. */
void aml_res_interrupts(struct aml_res *res, enum aml_irq_trigger trigger,
                        enum aml_irq_polarity polarity, enum aml_irq_sharing sharing,
                        const uint32_t *gsis, size_t count);

/*
 * Address-space descriptors.  All use MinFixed, MaxFixed, PosDecode, granularity 0
 * and translation offset 0, with length = max - min + 1 (min <= max required).
 */

/* WordBusNumber (usage, MinFixed, MaxFixed, PosDecode, 0, min, max, 0, len) */
void aml_res_word_bus_number(struct aml_res *res, enum aml_res_usage usage, uint16_t min,
                             uint16_t max);

/* WordIO (usage, MinFixed, MaxFixed, PosDecode, EntireRange, 0, min, max, 0, len) */
void aml_res_word_io(struct aml_res *res, enum aml_res_usage usage, uint16_t min, uint16_t max);

/* DWordMemory (usage, PosDecode, MinFixed, MaxFixed, cache, access, 0, min, max, 0, len) */
void aml_res_dword_memory(struct aml_res *res, enum aml_res_usage usage, enum aml_mem_cache cache,
                          enum aml_mem_access access, uint32_t min, uint32_t max);

/* QWordMemory (usage, PosDecode, MinFixed, MaxFixed, cache, access, 0, min, max, 0, len) */
void aml_res_qword_memory(struct aml_res *res, enum aml_res_usage usage, enum aml_mem_cache cache,
                          enum aml_mem_access access, uint64_t min, uint64_t max);

/* Append `res` plus an EndTag as a Buffer data object (ResourceTemplate () { ... }). */
void aml_resource(struct aml *aml, const struct aml_res *res);

/* Name (path, ResourceTemplate () { ... }) */
void aml_name_resource(struct aml *aml, const char *path, const struct aml_res *res);

#endif /* MINIVMM_VMM_AML_H */
