/* bitmap.c - bit arrays of blocks; see bitmap.h. */
#include "mm/bitmap.h"

void bitmap_assign(uint64_t *map, uint64_t first, uint64_t n, bool value)
{
    for (uint64_t i = first; i < first + n;) {
        uint64_t word = i / 64, bit = i % 64;
        uint64_t span = 64 - bit < first + n - i ? 64 - bit : first + n - i;
        uint64_t mask = (span == 64 ? ~0ULL : ((1ULL << span) - 1)) << bit;
        if (value)
            map[word] |= mask;
        else
            map[word] &= ~mask;
        i += span;
    }
}

uint64_t bitmap_find(const uint64_t *map, uint64_t from, uint64_t end, bool value)
{
    uint64_t i = from;
    while (i < end) {
        uint64_t word = map[i / 64];
        if (!value)
            word = ~word;
        word &= ~0ULL << (i % 64);
        if (word) {
            uint64_t hit = (i / 64) * 64 + (uint64_t)__builtin_ctzll(word);
            return hit < end ? hit : end;
        }
        i = (i / 64 + 1) * 64;
    }
    return end;
}

uint64_t bitmap_count(const uint64_t *map, uint64_t first, uint64_t n)
{
    uint64_t count = 0, end = first + n;
    for (uint64_t i = bitmap_find(map, first, end, true); i < end;) {
        uint64_t stop = bitmap_find(map, i, end, false);
        count += stop - i;
        i = bitmap_find(map, stop, end, true);
    }
    return count;
}
