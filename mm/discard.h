/*
 * discard.h - who may give guest memory back to the host, and who cannot
 * tolerate it.
 *
 * Discarding memory (MADV_DONTNEED, punching a hole) while something still
 * uses the old pages - a VFIO DMA mapping pins them - frees nothing and makes
 * the device and the CPU see different memory.  Two kinds of discard exist:
 *   coordinated:   announced to the region's tracker listeners first
 *                  (tracker.h), who drop their use before it happens
 *                  (virtio-mem unplug);
 *   uncoordinated: done behind the listeners' backs (a balloon, free-page
 *                  reporting).
 * At start-up every device declares what it needs: a discarder "requires"
 * its kind; a user that cannot follow a kind "forbids" it (forbidding
 * coordinated discards forbids both).  A declaration that conflicts with an
 * earlier one is refused with a message naming both, so minivmm refuses the
 * configuration instead of corrupting memory at run time.  No minivmm
 * device discards uncoordinated today; VFIO forbids it.
 *
 * Start-up only (main thread, before any vCPU runs).
 */
#ifndef MINIVMM_MM_DISCARD_H
#define MINIVMM_MM_DISCARD_H

#include <stddef.h>

enum mm_discard_kind {
    MM_DISCARD_COORDINATED,
    MM_DISCARD_UNCOORDINATED,
    MM_DISCARD_KINDS,
};

struct mm_discard_policy {
    const char *required[MM_DISCARD_KINDS];  /* first device that requires each kind */
    const char *forbidden[MM_DISCARD_KINDS]; /* first device that forbids each kind */
};

/* who discards memory of this kind.  Returns 0, or -1 with err naming the conflict. */
int mm_discard_require(struct mm_discard_policy *p, enum mm_discard_kind kind, const char *who,
                       char *err, size_t errlen);
/* who cannot tolerate this kind (COORDINATED: no discard at all).  Returns 0 or -1 with err. */
int mm_discard_forbid(struct mm_discard_policy *p, enum mm_discard_kind kind, const char *who,
                      char *err, size_t errlen);

#endif
