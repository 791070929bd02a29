/* boot.c - bzImage loader and zero page for the 64-bit entry; see boot.h. */
#include "vmm/boot.h"

#include <asm/bootparam.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vmm/layout.h"
#include "vmm/util.h"

#define SETUP_HEADER_OFFSET 0x1f1
#define BOOT_FLAG_MAGIC     0xaa55
#define HDRS_MAGIC          0x53726448 /* "HdrS" */
#define SECTOR_SIZE         512
#define DEFAULT_SETUP_SECTS 4
#define LOADER_TYPE_UNKNOWN 0xff
#define VID_MODE_NORMAL     0xffff
#define STARTUP_64_OFFSET   0x200
#define E820_TYPE_RAM       1
#define E820_TYPE_RESERVED  2

#define PTE_PRESENT  (1ULL << 0)
#define PTE_WRITE    (1ULL << 1)
#define PTE_PAGESIZE (1ULL << 7)

/* GDT descriptors: flat 64-bit code (L=1) and flat data, both DPL 0. */
#define GDT_CODE64 0x00af9b000000ffffULL
#define GDT_DATA   0x00cf93000000ffffULL

/* Size in bytes of the setup header the image actually has (protocol dependent). */
static size_t setup_header_len(const uint8_t *img)
{
    /* The header ends at 0x202 + the byte at 0x201 (the jump's displacement). */
    size_t end = 0x202 + img[0x201];
    size_t len = end - SETUP_HEADER_OFFSET;
    return len < sizeof(struct setup_header) ? len : sizeof(struct setup_header);
}

int boot_parse_bzimage(const uint8_t *img, size_t len, struct bzimage_info *info, char *err,
                       size_t errlen)
{
    static const uint8_t elf_magic[4] = {0x7f, 'E', 'L', 'F'};
    struct setup_header hdr;

    if (len >= 4 && memcmp(img, elf_magic, 4) == 0)
        return errf(err, errlen,
                    "is an ELF vmlinux, not a bzImage: give the compressed kernel "
                    "(arch/x86/boot/bzImage or /boot/vmlinuz-*)");
    if (len < SETUP_HEADER_OFFSET + sizeof(hdr))
        return errf(err, errlen,
                    "is too small (%zu bytes) to be a Linux bzImage; give a kernel such as "
                    "/boot/vmlinuz-*",
                    len);
    memcpy(&hdr, img + SETUP_HEADER_OFFSET, sizeof(hdr));
    if (hdr.boot_flag != BOOT_FLAG_MAGIC || hdr.header != HDRS_MAGIC)
        return errf(err, errlen,
                    "is not a Linux bzImage (no 'HdrS' boot header); give a kernel such as "
                    "/boot/vmlinuz-*");
    if (hdr.version < BOOT_MIN_PROTOCOL)
        return errf(err, errlen,
                    "uses Linux boot protocol %u.%02u, which is too old: minivmm needs 2.12 or "
                    "newer (Linux 3.8 or later)",
                    hdr.version >> 8, hdr.version & 0xff);
    if (!(hdr.loadflags & LOADED_HIGH))
        return errf(err, errlen, "is a zImage (loaded low); minivmm boots bzImage kernels only");
    if (!(hdr.xloadflags & XLF_KERNEL_64))
        return errf(err, errlen,
                    "has no 64-bit entry point (a 32-bit kernel?); minivmm boots x86_64 kernels");

    size_t sects = hdr.setup_sects ? hdr.setup_sects : DEFAULT_SETUP_SECTS;
    size_t setup = (sects + 1) * SECTOR_SIZE;
    if (setup >= len)
        return errf(err, errlen,
                    "is truncated: the setup code (%zu bytes) fills the file (a partial copy?); "
                    "give the complete bzImage",
                    setup);

    info->protocol = hdr.version;
    info->setup_size = setup;
    info->kernel_size = len - setup;
    info->pref_address = hdr.pref_address;
    info->init_size = hdr.init_size;
    info->initrd_addr_max = hdr.initrd_addr_max;
    info->cmdline_size = hdr.cmdline_size;
    return 0;
}

/* Identity-map the first 4 GiB with 2 MiB pages. */
static int write_page_tables(struct mm_map *mem)
{
    uint64_t pml4[512] = {0}, pdpt[512] = {0}, pd[512];

    pml4[0] = BOOT_PDPT_ADDR | PTE_PRESENT | PTE_WRITE;
    for (unsigned i = 0; i < 4; i++) {
        uint64_t pd_addr = BOOT_PD_ADDR + i * 0x1000;
        pdpt[i] = pd_addr | PTE_PRESENT | PTE_WRITE;
        for (unsigned j = 0; j < 512; j++)
            pd[j] =
                ((uint64_t)i << 30 | (uint64_t)j << 21) | PTE_PRESENT | PTE_WRITE | PTE_PAGESIZE;
        if (mm_write(mem, pd_addr, pd, sizeof(pd)) < 0)
            return -1;
    }
    if (mm_write(mem, BOOT_PML4_ADDR, pml4, sizeof(pml4)) < 0 ||
        mm_write(mem, BOOT_PDPT_ADDR, pdpt, sizeof(pdpt)) < 0)
        return -1;
    return 0;
}

static int write_gdt(struct mm_map *mem, struct boot_entry *entry)
{
    const uint64_t gdt[4] = {0, 0, GDT_CODE64, GDT_DATA}; /* BOOT_CS = 2 * 8, BOOT_DS = 3 * 8 */
    entry->gdt_base = BOOT_GDT_ADDR;
    entry->gdt_limit = sizeof(gdt) - 1;
    return mm_write(mem, BOOT_GDT_ADDR, gdt, sizeof(gdt));
}

/* Fill the e820 table from the memory map: RAM and reserved regions only. */
static int fill_e820(const struct mm_map *mem, struct boot_params *bp)
{
    unsigned n = 0;
    for (unsigned i = 0; i < mem->nr_regions; i++) {
        const struct mm_region *r = &mem->regions[i];
        uint32_t type;
        if (r->type == MM_REGION_RAM)
            type = E820_TYPE_RAM;
        else if (r->type == MM_REGION_RESERVED)
            type = E820_TYPE_RESERVED;
        else
            continue; /* device memory is hot-plugged, never in e820 */
        if (n > 0 && bp->e820_table[n - 1].type == type &&
            bp->e820_table[n - 1].addr + bp->e820_table[n - 1].size == r->gpa) {
            bp->e820_table[n - 1].size += r->size;
            continue;
        }
        if (n == E820_MAX_ENTRIES_ZEROPAGE)
            return -1;
        bp->e820_table[n].addr = r->gpa;
        bp->e820_table[n].size = r->size;
        bp->e820_table[n].type = type;
        n++;
    }
    bp->e820_entries = (uint8_t)n;
    return 0;
}

/*
 * Real-mode code at the reset vector: out LAYOUT_PM_RESET, LAYOUT_PM_RESET_VALUE; then halt.
 *   b0 vv        mov al, vv
 *   ba pp pp     mov dx, pppp
 *   ee           out dx, al
 *   f4           hlt
 *   eb fd        jmp short -3 (back to hlt)
 */
static int write_reset_vector(struct mm_map *mem)
{
    const uint8_t stub[] = {0xb0,
                            LAYOUT_PM_RESET_VALUE,
                            0xba,
                            LAYOUT_PM_RESET & 0xff,
                            LAYOUT_PM_RESET >> 8,
                            0xee,
                            0xf4,
                            0xeb,
                            0xfd};
    return mm_write(mem, BOOT_RESET_VECTOR, stub, sizeof(stub));
}

/* Read the whole initrd file into guest memory at gpa. */
static int load_initrd(struct mm_map *mem, int fd, uint64_t gpa, uint64_t size, char *err,
                       size_t errlen)
{
    uint8_t *dst = mm_gpa(mem, gpa, size);
    if (!dst)
        return errf(err, errlen, "initrd does not fit in guest memory");
    uint64_t done = 0;
    while (done < size) {
        ssize_t n = pread(fd, dst + done, size - done, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return errf(err, errlen, "cannot read the initrd: %s",
                        n < 0 ? strerror(errno) : "file shrank while loading");
        done += (uint64_t)n;
    }
    return 0;
}

int boot_load_linux(struct mm_map *mem, const struct boot_linux_args *args,
                    struct boot_entry *entry, char *err, size_t errlen)
{
    struct bzimage_info info;
    char kernel_err[256];
    char s1[32], s2[32], s3[32];

    memset(entry, 0, sizeof(*entry));
    if (boot_parse_bzimage(args->kernel, args->kernel_size, &info, kernel_err, sizeof(kernel_err)) <
        0)
        return errf(err, errlen, "--kernel %s", kernel_err);

    /* The kernel runs from max(load address, pref_address) and needs init_size there. */
    uint64_t run_at = info.pref_address > BOOT_KERNEL_ADDR ? info.pref_address : BOOT_KERNEL_ADDR;
    uint64_t need = info.init_size > info.kernel_size ? info.init_size : info.kernel_size;
    /* pref_address comes from the image and may be anything: run_at + need must not wrap. */
    if (need > UINT64_MAX - run_at)
        return errf(err, errlen,
                    "the kernel wants to run at %#llx (its pref_address) with %s there, beyond "
                    "any RAM of --memory %s; this bzImage is broken",
                    (unsigned long long)run_at, format_size(need, s1, sizeof(s1)),
                    format_size(mem->ram_size, s2, sizeof(s2)));
    uint64_t kernel_end = run_at + need;
    uint64_t load_end = BOOT_KERNEL_ADDR + info.kernel_size;
    if (load_end > kernel_end)
        kernel_end = load_end;
    if (kernel_end > mem->low_ram_end)
        return errf(err, errlen,
                    "the kernel needs %s of RAM to boot but --memory gives %s; raise --memory",
                    format_size(ALIGN_UP(kernel_end, MiB), s1, sizeof(s1)),
                    format_size(mem->ram_size, s2, sizeof(s2)));

    size_t cmdlen = strlen(args->cmdline);
    uint32_t cmdmax = info.cmdline_size;
    if (cmdmax >= BOOT_CMDLINE_MAX)
        cmdmax = BOOT_CMDLINE_MAX - 1;
    if (cmdlen > cmdmax)
        return errf(err, errlen, "--cmdline is %zu bytes long; this kernel accepts at most %u",
                    cmdlen, cmdmax);

    if (mm_write(mem, BOOT_KERNEL_ADDR, args->kernel + info.setup_size, info.kernel_size) < 0)
        return errf(err, errlen, "the kernel (%s) does not fit in guest RAM at 1 MiB",
                    format_size(info.kernel_size, s1, sizeof(s1)));
    if (mm_write(mem, BOOT_CMDLINE_ADDR, args->cmdline, cmdlen + 1) < 0)
        return errf(err, errlen, "cannot write the command line into guest memory");

    struct boot_params bp;
    memset(&bp, 0, sizeof(bp));
    memcpy(&bp.hdr, args->kernel + SETUP_HEADER_OFFSET, setup_header_len(args->kernel));
    bp.hdr.type_of_loader = LOADER_TYPE_UNKNOWN;
    bp.hdr.vid_mode = VID_MODE_NORMAL;
    bp.hdr.cmd_line_ptr = (uint32_t)BOOT_CMDLINE_ADDR;
    bp.ext_cmd_line_ptr = 0;
    bp.acpi_rsdp_addr = args->acpi_rsdp;

    if (args->initrd_fd >= 0 && args->initrd_size > 0) {
        uint64_t limit = mem->low_ram_end;
        if ((uint64_t)info.initrd_addr_max + 1 < limit)
            limit = (uint64_t)info.initrd_addr_max + 1;
        if (args->initrd_size > limit)
            return errf(err, errlen, "the initrd (%s) is larger than the %s where it must lie; %s",
                        format_size(args->initrd_size, s1, sizeof(s1)),
                        limit == mem->low_ram_end ? "RAM below the 32-bit PCI hole"
                                                  : "memory below this kernel's initrd_addr_max",
                        limit == mem->low_ram_end && mem->ram_size == mem->low_ram_end
                            ? "raise --memory"
                            : "use a smaller initrd");
        uint64_t addr = ALIGN_DOWN(limit - args->initrd_size, 4096);
        if (addr < kernel_end)
            return errf(
                err, errlen,
                "the kernel (%s while booting) and the initrd (%s) do not fit in --memory %s; "
                "raise --memory",
                format_size(ALIGN_UP(kernel_end, MiB), s1, sizeof(s1)),
                format_size(args->initrd_size, s2, sizeof(s2)),
                format_size(mem->ram_size, s3, sizeof(s3)));
        if (load_initrd(mem, args->initrd_fd, addr, args->initrd_size, err, errlen) < 0)
            return -1;
        bp.hdr.ramdisk_image = (uint32_t)addr;
        bp.hdr.ramdisk_size = (uint32_t)args->initrd_size;
        bp.ext_ramdisk_image = (uint32_t)(addr >> 32);
        bp.ext_ramdisk_size = (uint32_t)(args->initrd_size >> 32);
        entry->initrd_addr = addr;
    }

    if (fill_e820(mem, &bp) < 0)
        return errf(err, errlen, "the memory map has more than %d e820 entries",
                    E820_MAX_ENTRIES_ZEROPAGE);
    if (mm_write(mem, BOOT_ZERO_PAGE_ADDR, &bp, sizeof(bp)) < 0 || write_gdt(mem, entry) < 0 ||
        write_page_tables(mem) < 0 || write_reset_vector(mem) < 0)
        return errf(err, errlen, "cannot write the boot structures into guest memory");

    entry->rip = BOOT_KERNEL_ADDR + STARTUP_64_OFFSET;
    entry->rsi = BOOT_ZERO_PAGE_ADDR;
    entry->cr3 = BOOT_PML4_ADDR;
    return 0;
}
