/*
 * aml_decode.h - test-only AML decoding helpers shared by test_aml.c and
 * test_acpi.c.  Written from the ACPI specification, independently of
 * vmm/aml.c, so the tests do not check the encoder against itself.
 */
#ifndef MINIVMM_TESTS_AML_DECODE_H
#define MINIVMM_TESTS_AML_DECODE_H

#include <stddef.h>
#include <stdint.h>

/* PkgLength (ACPI 6.5 §20.2.4): returns the length, sets the byte count. */
static inline size_t decode_pkglength(const uint8_t *p, size_t *nbytes)
{
    size_t follow = p[0] >> 6;
    *nbytes = follow + 1;
    if (follow == 0)
        return p[0] & 0x3f;
    size_t len = p[0] & 0x0f;
    for (size_t i = 0; i < follow; i++)
        len |= (size_t)p[1 + i] << (4 + 8 * i);
    return len;
}

#endif
