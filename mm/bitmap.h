/*
 * bitmap.h - bit arrays of blocks, as the tracker and the DMA listener keep
 * them: bit n of word n / 64.  Ranges are [first, first + n) or
 * [from, end).  Pure; the caller owns the words and their locking.
 */
#ifndef MINIVMM_MM_BITMAP_H
#define MINIVMM_MM_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Words needed for nbits bits. */
static inline size_t bitmap_words(uint64_t nbits)
{
    return (size_t)((nbits + 63) / 64);
}

static inline bool bitmap_test(const uint64_t *map, uint64_t bit)
{
    return map[bit / 64] & (1ULL << (bit % 64));
}

/* Set (value true) or clear bits [first, first + n). */
void bitmap_assign(uint64_t *map, uint64_t first, uint64_t n, bool value);
/* Index of the first bit in [from, end) equal to value, or end. */
uint64_t bitmap_find(const uint64_t *map, uint64_t from, uint64_t end, bool value);
/* Number of set bits in [first, first + n). */
uint64_t bitmap_count(const uint64_t *map, uint64_t first, uint64_t n);

#endif
