/*
 * virtio_mem_options.h - what one virtio-mem device is configured with: the
 * options of one --virtio-mem, and the limits that go with them.
 *
 * The command line (vmm/config.c) fills in and checks a struct
 * virtio_mem_options per --virtio-mem; the VM hands the array to
 * virtio_mem_create() (virtio_mem.h).  Kept apart from virtio_mem.h so that
 * the configuration depends only on these values, not on the device model.
 */
#ifndef MINIVMM_DEVICES_VIRTIO_MEM_OPTIONS_H
#define MINIVMM_DEVICES_VIRTIO_MEM_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "mm/memmap.h"

#define VIRTIO_MEM_MAX_DEVICES        8
#define VIRTIO_MEM_ID_MAX             32             /* bytes of an id, with the NUL */
#define VIRTIO_MEM_DEFAULT_BLOCK_SIZE (2ULL << 20)   /* also the unit Linux plugs in */
#define VIRTIO_MEM_MIN_BLOCK_SIZE     (4ULL << 10)   /* the page size */
#define VIRTIO_MEM_ALIGN              (128ULL << 20) /* Linux's memory block size on x86 */
#define VIRTIO_MEM_MIN_ADDR           (4ULL << 30)   /* regions go above 4 GiB */

/* One --virtio-mem option. */
struct virtio_mem_options {
    char id[VIRTIO_MEM_ID_MAX]; /* "mem0", "mem1", ... unless id= was given */
    uint64_t size;              /* region size, a multiple of block_size */
    uint64_t block_size;        /* a power of two, >= VIRTIO_MEM_MIN_BLOCK_SIZE */
    uint64_t requested;         /* initial requested size, <= size, a multiple of block_size */
    uint64_t addr;              /* guest-physical base; 0: placed above RAM automatically */
    enum mm_backing_kind backend;
    const char *hugetlbfs_path; /* MM_BACKING_HUGETLBFS only */
    bool prealloc; /* allocate memory when a block is plugged, answer BUSY if impossible;
                      on by default for hugetlbfs */
};

/* The alignment of a region's guest-physical base: 128 MiB, or the block size if larger. */
static inline uint64_t virtio_mem_region_align(const struct virtio_mem_options *o)
{
    return o->block_size > VIRTIO_MEM_ALIGN ? o->block_size : VIRTIO_MEM_ALIGN;
}

#endif
