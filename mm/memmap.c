/* memmap.c - guest-physical memory map, memslots and the GPA accessor; see memmap.h. */
#include "mm/memmap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "vmm/layout.h"
#include "vmm/util.h"

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif

void mm_map_init(struct mm_map *map)
{
    memset(map, 0, sizeof(*map));
    pthread_mutex_init(&map->slot_lock, NULL);
    map->ram.fd = -1;
    map->vm_fd = -1;
}

/* --- host backing ------------------------------------------------------ */

static int backing_open_hugetlbfs(const char *dir, uint64_t *page_size, char *err, size_t errlen)
{
    struct statfs sfs;
    if (!dir || statfs(dir, &sfs) < 0)
        return errf(err, errlen,
                    "backend=hugetlbfs=%s: %s (give the directory of a hugetlbfs mount, e.g. "
                    "/dev/hugepages)",
                    dir ? dir : "", strerror(errno));
    if ((unsigned long)sfs.f_type != HUGETLBFS_MAGIC)
        return errf(err, errlen,
                    "backend=hugetlbfs=%s: not a hugetlbfs mount (give one, or mount one with: "
                    "mount -t hugetlbfs none DIR)",
                    dir);
    char path[4096];
    snprintf(path, sizeof(path), "%s/minivmm.XXXXXX", dir);
    int fd = mkstemp(path);
    if (fd < 0)
        return errf(err, errlen,
                    "backend=hugetlbfs=%s: cannot create a file there: %s (minivmm needs write "
                    "access to the mount)",
                    dir, strerror(errno));
    unlink(path);
    *page_size = (uint64_t)sfs.f_bsize;
    return fd;
}

/*
 * Map size bytes of the backing at a host address aligned to
 * MM_BACKING_ALIGN (or the page size, if larger), so that guest-physical
 * 2 MiB pages line up with host huge pages and KVM can map them whole:
 * reserve a little more address space, then map over the aligned part.
 */
static void *map_aligned(const struct mm_backing *b, uint64_t size)
{
    uint64_t align = b->page_size > MM_BACKING_ALIGN ? b->page_size : MM_BACKING_ALIGN;
    uint8_t *area =
        mmap(NULL, size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (area == MAP_FAILED)
        return MAP_FAILED;
    uint8_t *start = (uint8_t *)ALIGN_UP((uintptr_t)area, align);
    void *p;
    if (b->fd >= 0)
        p = mmap(start, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE | MAP_FIXED, b->fd,
                 0);
    else
        p = mmap(start, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED) {
        munmap(area, size + align);
        return MAP_FAILED;
    }
    /* Give back the unused head and tail of the reservation. */
    if (start > area)
        munmap(area, (size_t)(start - area));
    if (area + size + align > start + size)
        munmap(start + size, (size_t)(area + size + align - (start + size)));
    return p;
}

int mm_backing_alloc(struct mm_backing *b, enum mm_backing_kind kind, uint64_t size,
                     const char *path, char *err, size_t errlen)
{
    char sz[32];
    memset(b, 0, sizeof(*b));
    b->fd = -1;
    b->kind = kind;
    b->page_size = (uint64_t)sysconf(_SC_PAGESIZE);

    if (kind == MM_BACKING_MEMFD) {
        b->fd = memfd_create("minivmm-guest", MFD_CLOEXEC);
        if (b->fd < 0)
            return errf(err, errlen, "memfd_create: %s", strerror(errno));
    } else if (kind == MM_BACKING_HUGETLBFS) {
        b->fd = backing_open_hugetlbfs(path, &b->page_size, err, errlen);
        if (b->fd < 0)
            return -1;
    }
    size = ALIGN_UP(size, b->page_size);
    if (b->fd >= 0 && ftruncate(b->fd, (off_t)size) < 0) {
        int e = errno;
        close(b->fd);
        b->fd = -1;
        return errf(err, errlen, "cannot size guest memory file to %s: %s%s",
                    format_size(size, sz, sizeof(sz)), strerror(e),
                    e == EFBIG    ? " (ulimit -f is too low: raise it, or use backend=anon)"
                    : e == ENOSPC ? " (the filesystem is full, or its size= mount option is "
                                    "too small)"
                                  : "");
    }

    void *p = map_aligned(b, size);
    if (p == MAP_FAILED) {
        int e = errno;
        if (b->fd >= 0)
            close(b->fd);
        b->fd = -1;
        return errf(err, errlen,
                    "cannot map %s of guest memory: %s (ask for less, or raise ulimit -v)",
                    format_size(size, sz, sizeof(sz)), strerror(e));
    }
    if (kind == MM_BACKING_ANON)
        madvise(p, size, MADV_HUGEPAGE); /* best effort: THP makes nested paging cheaper */
    b->hva = p;
    b->size = size;
    return 0;
}

int mm_backing_discard(struct mm_backing *b, uint64_t offset, uint64_t len, char *err,
                       size_t errlen)
{
    if (offset > b->size || len > b->size - offset)
        return errf(err, errlen, "discard of [%#llx, +%#llx) outside a backing of %#llx bytes",
                    (unsigned long long)offset, (unsigned long long)len,
                    (unsigned long long)b->size);
    if (offset % b->page_size || len % b->page_size)
        return errf(err, errlen, "discard of [%#llx, +%#llx) is not aligned to the page size %#llx",
                    (unsigned long long)offset, (unsigned long long)len,
                    (unsigned long long)b->page_size);
    if (b->fd >= 0) {
        if (fallocate(b->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
                      (off_t)len) < 0)
            return errf(err, errlen, "punching a hole in guest memory: %s", strerror(errno));
        return 0;
    }
    if (madvise(b->hva + offset, len, MADV_DONTNEED) < 0)
        return errf(err, errlen, "madvise(MADV_DONTNEED) on guest memory: %s", strerror(errno));
    return 0;
}

void mm_backing_free(struct mm_backing *b)
{
    if (b->hva)
        munmap(b->hva, b->size);
    if (b->fd >= 0)
        close(b->fd);
    b->hva = NULL;
    b->fd = -1;
    b->size = 0;
}

/* --- regions ------------------------------------------------------------ */

int mm_map_add(struct mm_map *map, const struct mm_region *region, char *err, size_t errlen)
{
    if (region->size == 0)
        return errf(err, errlen, "memory region '%s' is empty", region->name);
    if (region->gpa + region->size < region->gpa || region->gpa + region->size == 0)
        return errf(err, errlen, "memory region '%s' at %#llx wraps around the address space",
                    region->name, (unsigned long long)region->gpa);
    for (unsigned i = 0; i < map->nr_regions; i++) {
        const struct mm_region *r = &map->regions[i];
        if (ranges_overlap(r->gpa, r->size, region->gpa, region->size))
            return errf(err, errlen, "memory region '%s' [%#llx-%#llx] overlaps '%s' [%#llx-%#llx]",
                        region->name, (unsigned long long)region->gpa,
                        (unsigned long long)(region->gpa + region->size - 1), r->name,
                        (unsigned long long)r->gpa, (unsigned long long)(r->gpa + r->size - 1));
    }
    if (map->nr_regions == MM_MAX_REGIONS)
        return errf(err, errlen, "too many memory regions (at most %d)", MM_MAX_REGIONS);

    /* Keep the array sorted by address: e820 and lookups want that order. */
    unsigned pos = map->nr_regions;
    while (pos > 0 && map->regions[pos - 1].gpa > region->gpa) {
        map->regions[pos] = map->regions[pos - 1];
        pos--;
    }
    map->regions[pos] = *region;
    map->nr_regions++;
    return 0;
}

uint64_t mm_map_dma_fit(const struct mm_map *map, uint64_t from, uint64_t size, uint64_t align)
{
    if (size == 0)
        return UINT64_MAX;
    uint64_t best = UINT64_MAX;
    if (map->nr_dma_spans == 0) {
        uint64_t addr = (from + align - 1) & ~(align - 1);
        return addr >= from && addr + size - 1 >= addr ? addr : UINT64_MAX;
    }
    for (unsigned i = 0; i < map->nr_dma_spans; i++) {
        const struct mm_span *sp = &map->dma_spans[i];
        uint64_t start = from > sp->first ? from : sp->first;
        uint64_t addr = (start + align - 1) & ~(align - 1);
        if (addr < start || addr > sp->last || size - 1 > sp->last - addr)
            continue;
        if (addr < best)
            best = addr;
    }
    return best;
}

const struct mm_region *mm_map_find(const struct mm_map *map, uint64_t gpa)
{
    for (unsigned i = 0; i < map->nr_regions; i++) {
        const struct mm_region *r = &map->regions[i];
        if (gpa >= r->gpa && gpa - r->gpa < r->size)
            return r;
    }
    return NULL;
}

static int add_backed_region(struct mm_map *map, uint64_t gpa, uint64_t size,
                             enum mm_region_type type, uint8_t *hva, const char *name, char *err,
                             size_t errlen)
{
    struct mm_region r = {.gpa = gpa, .size = size, .type = type, .hva = hva, .name = name};
    return mm_map_add(map, &r, err, errlen);
}

int mm_map_setup_ram(struct mm_map *map, uint64_t size, char *err, size_t errlen)
{
    if (size < LAYOUT_HIGH_RAM_START * 2)
        return errf(err, errlen, "boot RAM must be at least 2 MiB");
    if (mm_backing_alloc(&map->ram, MM_BACKING_ANON, size, NULL, err, errlen) < 0)
        return -1;
    map->ram_size = size;

    uint8_t *hva = map->ram.hva;
    uint64_t low_end = size < LAYOUT_PCI_HOLE_START ? size : LAYOUT_PCI_HOLE_START;
    map->low_ram_end = low_end;

    if (add_backed_region(map, 0, LAYOUT_LOW_RAM_END, MM_REGION_RAM, hva, "ram-low", err, errlen) <
            0 ||
        add_backed_region(map, LAYOUT_LOW_RAM_END, LAYOUT_HIGH_RAM_START - LAYOUT_LOW_RAM_END,
                          MM_REGION_RESERVED, hva + LAYOUT_LOW_RAM_END, "legacy-acpi", err,
                          errlen) < 0 ||
        add_backed_region(map, LAYOUT_HIGH_RAM_START, low_end - LAYOUT_HIGH_RAM_START,
                          MM_REGION_RAM, hva + LAYOUT_HIGH_RAM_START, "ram", err, errlen) < 0)
        return -1;
    if (mm_slot_add(map, 0, low_end, hva, 0) < 0)
        return errf(err, errlen, "cannot add a memslot for boot RAM: %s", strerror(errno));

    if (size > low_end) {
        uint64_t high = size - low_end;
        if (add_backed_region(map, LAYOUT_PCI_HOLE_END, high, MM_REGION_RAM, hva + low_end,
                              "ram-high", err, errlen) < 0)
            return -1;
        if (mm_slot_add(map, LAYOUT_PCI_HOLE_END, high, hva + low_end, 0) < 0)
            return errf(err, errlen, "cannot add a memslot for boot RAM: %s", strerror(errno));
    }
    return 0;
}

/* --- memslots ----------------------------------------------------------- */

static int slot_to_kvm(int vm_fd, unsigned id, const struct mm_slot *s, bool remove)
{
    struct kvm_userspace_memory_region kr = {
        .slot = id,
        .flags = s->flags,
        .guest_phys_addr = s->gpa,
        .memory_size = remove ? 0 : s->size,
        .userspace_addr = (uint64_t)(uintptr_t)s->hva,
    };
    return ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &kr);
}

int mm_slot_add(struct mm_map *map, uint64_t gpa, uint64_t size, void *hva, uint32_t flags)
{
    pthread_mutex_lock(&map->slot_lock);
    int id = -1;
    for (unsigned i = 0; i < MM_MAX_SLOTS; i++) {
        if (!map->slots[i].used) {
            id = (int)i;
            break;
        }
    }
    if (id < 0) {
        pthread_mutex_unlock(&map->slot_lock);
        errno = ENOSPC;
        return -1;
    }
    struct mm_slot *s = &map->slots[id];
    *s = (struct mm_slot){.used = true, .flags = flags, .gpa = gpa, .size = size, .hva = hva};
    if (map->vm_fd >= 0 && slot_to_kvm(map->vm_fd, (unsigned)id, s, false) < 0) {
        int e = errno;
        s->used = false;
        pthread_mutex_unlock(&map->slot_lock);
        errno = e;
        return -1;
    }
    pthread_mutex_unlock(&map->slot_lock);
    return id;
}

int mm_slot_remove(struct mm_map *map, int id)
{
    if (id < 0 || id >= MM_MAX_SLOTS) {
        errno = EINVAL;
        return -1;
    }
    pthread_mutex_lock(&map->slot_lock);
    struct mm_slot *s = &map->slots[id];
    int ret = 0;
    if (!s->used) {
        errno = ENOENT;
        ret = -1;
    } else if (map->vm_fd >= 0 && slot_to_kvm(map->vm_fd, (unsigned)id, s, true) < 0) {
        ret = -1;
    } else {
        s->used = false;
    }
    pthread_mutex_unlock(&map->slot_lock);
    return ret;
}

unsigned mm_slot_count(struct mm_map *map)
{
    unsigned n = 0;
    pthread_mutex_lock(&map->slot_lock);
    for (unsigned i = 0; i < MM_MAX_SLOTS; i++)
        n += map->slots[i].used;
    pthread_mutex_unlock(&map->slot_lock);
    return n;
}

int mm_map_register_slots(struct mm_map *map, int vm_fd, char *err, size_t errlen)
{
    pthread_mutex_lock(&map->slot_lock);
    map->vm_fd = vm_fd;
    for (unsigned i = 0; i < MM_MAX_SLOTS; i++) {
        struct mm_slot *s = &map->slots[i];
        if (s->used && slot_to_kvm(vm_fd, i, s, false) < 0) {
            int e = errno;
            pthread_mutex_unlock(&map->slot_lock);
            return errf(err, errlen, "KVM_SET_USER_MEMORY_REGION for [%#llx, +%#llx): %s",
                        (unsigned long long)s->gpa, (unsigned long long)s->size, strerror(e));
        }
    }
    pthread_mutex_unlock(&map->slot_lock);
    return 0;
}

/* --- the accessor ------------------------------------------------------- */

void *mm_gpa(const struct mm_map *map, uint64_t gpa, uint64_t len)
{
    if (len == 0)
        len = 1;
    if (gpa + len < gpa) /* wraps */
        return NULL;
    const struct mm_region *r = mm_map_find(map, gpa);
    if (!r || !r->hva)
        return NULL;
    uint64_t off = gpa - r->gpa;
    if (len > r->size - off)
        return NULL;
    if (r->accessible && !r->accessible(r->opaque, gpa, len))
        return NULL;
    return r->hva + off;
}

int mm_read(const struct mm_map *map, uint64_t gpa, void *buf, uint64_t len)
{
    if (len == 0)
        return 0;
    void *p = mm_gpa(map, gpa, len);
    if (!p)
        return -1;
    memcpy(buf, p, len);
    return 0;
}

int mm_write(const struct mm_map *map, uint64_t gpa, const void *buf, uint64_t len)
{
    if (len == 0)
        return 0;
    void *p = mm_gpa(map, gpa, len);
    if (!p)
        return -1;
    memcpy(p, buf, len);
    return 0;
}

void mm_map_destroy(struct mm_map *map)
{
    mm_backing_free(&map->ram);
    map->nr_regions = 0;
    map->vm_fd = -1;
    memset(map->slots, 0, sizeof(map->slots));
}
