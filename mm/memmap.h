/*
 * memmap.h - the guest-physical memory map: what lives at every guest
 * address, which host memory backs it, and which KVM memslots expose it.
 *
 * Ownership and order of calls:
 *   1. The VM owns one struct mm_map.  Start-up code calls mm_map_init(),
 *      then mm_map_setup_ram() for boot RAM, then (later issues) adds
 *      device-memory regions such as a virtio-mem region with mm_map_add().
 *      Regions never overlap and are never removed while the VM exists, so
 *      lookups need no lock.
 *   2. Every time a KVM VM fd is created (start-up and guest reboot) the VM
 *      calls mm_map_register_slots() to expose the memslots to it.
 *   3. Device code reads and writes guest memory ONLY through mm_gpa(),
 *      mm_read() and mm_write(): they check bounds (overflow-safe) and refuse
 *      ranges that are not entirely inside one host-backed region.  No other
 *      code does pointer arithmetic on guest addresses.
 *   4. mm_map_destroy() unmaps all host memory at exit.
 *
 * A region can have holes: its host backing is reserved for the whole range,
 * but only some parts may be populated and exposed through memslots (a
 * virtio-mem region).  The map keeps regions (the typed view: what e820 and
 * ACPI report) separate from memslots (what KVM sees).
 */
#ifndef MINIVMM_MM_MEMMAP_H
#define MINIVMM_MM_MEMMAP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mm/discard.h"

#define MM_MAX_REGIONS   32
#define MM_MAX_DMA_SPANS 16
#define MM_MAX_SLOTS     1024
#define MM_BACKING_ALIGN (2ULL << 20) /* host alignment of guest memory: the x86 huge page */

enum mm_region_type {
    MM_REGION_RAM,      /* boot RAM: e820 type 1 */
    MM_REGION_RESERVED, /* backed but reserved (ACPI tables, legacy holes): e820 type 2 */
    MM_REGION_DEVICE,   /* device memory not in e820 (virtio-mem region, BARs) */
};

enum mm_backing_kind {
    MM_BACKING_ANON,     /* private anonymous mapping, MAP_NORESERVE */
    MM_BACKING_MEMFD,    /* shared mapping of a memfd */
    MM_BACKING_HUGETLBFS /* shared mapping of an unlinked file on a hugetlbfs mount */
};

/* Host memory that backs guest memory.  Owned by whoever allocated it. */
struct mm_backing {
    enum mm_backing_kind kind;
    uint8_t *hva;  /* start of the host mapping */
    uint64_t size; /* bytes mapped */
    int fd;        /* memfd / hugetlbfs file, or -1 for anonymous memory */
    uint64_t page_size;
};

struct mm_tracker;

/* A guest-physical range, both ends inclusive. */
struct mm_span {
    uint64_t first, last;
};

struct mm_region {
    uint64_t gpa;
    uint64_t size;
    enum mm_region_type type;
    uint8_t *hva; /* host address of gpa, or NULL if the region has no host backing */
    const char *name;
    /*
     * Optional: asked by the accessor whether [gpa, gpa + len) of this region
     * may be accessed now (a virtio-mem region answers "only if plugged").
     * NULL means the whole region is accessible.
     */
    bool (*accessible)(void *opaque, uint64_t gpa, uint64_t len);
    void *opaque;
    /*
     * A region whose blocks are plugged and unplugged at run time has a
     * tracker (tracker.h): whoever must follow it (VFIO) registers a
     * listener there.  NULL: the region is always all there.
     */
    struct mm_tracker *tracker;
};

struct mm_slot {
    bool used;
    uint32_t flags; /* KVM_MEM_* */
    uint64_t gpa;
    uint64_t size;
    uint8_t *hva;
};

struct mm_map {
    struct mm_region regions[MM_MAX_REGIONS];
    unsigned nr_regions;
    struct mm_backing ram; /* boot RAM backing: [0, low end) then the rest at 4 GiB */
    uint64_t ram_size;     /* bytes of boot RAM requested */
    uint64_t low_ram_end;  /* end of the RAM below the 32-bit hole */
    /* Memslots, indexed by KVM slot id.  slot_lock serialises changes. */
    pthread_mutex_t slot_lock;
    struct mm_slot slots[MM_MAX_SLOTS];
    int vm_fd;                        /* fd the slots are currently registered with, or -1 */
    struct mm_discard_policy discard; /* who discards guest memory (discard.h) */
    /*
     * Where device DMA can reach: the IOVA ranges of the IOMMU, set by VFIO
     * at start-up before any device region is placed (nr_dma_spans 0: no
     * limit).  Device-memory regions are placed inside them.
     */
    struct mm_span dma_spans[MM_MAX_DMA_SPANS];
    unsigned nr_dma_spans;
};

void mm_map_init(struct mm_map *map);

/*
 * Allocate size bytes of boot RAM (anonymous, MAP_NORESERVE) and lay it out
 * around the 32-bit hole (layout.h): RAM below 640 KiB, a backed reserved
 * area for ACPI up to 1 MiB, RAM up to min(size, 3 GiB), the rest at 4 GiB.
 * Adds the regions and the memslots (not yet registered with KVM).
 * Returns 0, or -1 with a one-line reason in err.
 */
int mm_map_setup_ram(struct mm_map *map, uint64_t size, char *err, size_t errlen);

/*
 * Add a region.  Returns 0, or -1 if it is empty, wraps around, or overlaps
 * an existing region (err says which).
 */
int mm_map_add(struct mm_map *map, const struct mm_region *region, char *err, size_t errlen);

/*
 * The lowest address >= from, aligned to align (a power of two), where
 * [addr, addr + size) lies inside one DMA span (any address if there are
 * none).  Returns UINT64_MAX if there is none.
 */
uint64_t mm_map_dma_fit(const struct mm_map *map, uint64_t from, uint64_t size, uint64_t align);

/* Region containing gpa, or NULL. */
const struct mm_region *mm_map_find(const struct mm_map *map, uint64_t gpa);

/*
 * Add a memslot for [gpa, gpa + size) backed by hva and, if a VM fd is
 * registered, tell KVM at once.  Returns the slot id, or -1 (errno set).
 */
int mm_slot_add(struct mm_map *map, uint64_t gpa, uint64_t size, void *hva, uint32_t flags);
/* Remove a memslot (also from KVM).  Returns 0 or -1 (errno set). */
int mm_slot_remove(struct mm_map *map, int slot);
/* Number of memslots in use. */
unsigned mm_slot_count(struct mm_map *map);

/*
 * Register every memslot with a freshly created KVM VM fd; later slot
 * changes go to this fd.  Returns 0, or -1 with a reason in err.
 */
int mm_map_register_slots(struct mm_map *map, int vm_fd, char *err, size_t errlen);

/*
 * The one guest-physical accessor: host pointer for [gpa, gpa + len), or NULL
 * if the range wraps, is not entirely inside one host-backed region, or the
 * region says it is not accessible now.  len 0 is treated as 1.
 */
void *mm_gpa(const struct mm_map *map, uint64_t gpa, uint64_t len);

/* Copy between guest memory and buf through mm_gpa().  Return 0 or -1. */
int mm_read(const struct mm_map *map, uint64_t gpa, void *buf, uint64_t len);
int mm_write(const struct mm_map *map, uint64_t gpa, const void *buf, uint64_t len);

/* Unmap all host memory owned by the map. */
void mm_map_destroy(struct mm_map *map);

/*
 * Host backing.  mm_backing_alloc() maps size bytes (rounded up to the
 * backing's page size) at a host address aligned to MM_BACKING_ALIGN; path is the hugetlbfs mount
 * for MM_BACKING_HUGETLBFS and ignored otherwise.  mm_backing_discard() gives [offset, offset +
 * len) back to the host (MADV_DONTNEED, or punching a hole in the file) so that the next guest
 * access sees zeroes.  Both return 0, or -1 with err set.
 */
int mm_backing_alloc(struct mm_backing *b, enum mm_backing_kind kind, uint64_t size,
                     const char *path, char *err, size_t errlen);
int mm_backing_discard(struct mm_backing *b, uint64_t offset, uint64_t len, char *err,
                       size_t errlen);
void mm_backing_free(struct mm_backing *b);

#endif
