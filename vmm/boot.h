/*
 * boot.h - direct 64-bit Linux boot (x86 boot protocol, no firmware).
 *
 * vm.c calls boot_load_linux() at every (re)boot, after the memory map is set
 * up and the ACPI tables are written, and before any vCPU runs.  It places
 * the protected-mode kernel of a bzImage at 1 MiB, the initrd at the top of
 * RAM below the 32-bit hole, the command line, a zero page (boot_params with
 * the e820 map and the RSDP address), a GDT and identity page tables for the
 * first 4 GiB, all through the guest-memory accessor.  It also puts a
 * 10-byte stub at the x86 reset vector (0xffff0) that writes the ACPI reset
 * register: Linux on a hardware-reduced ACPI machine without EFI reboots by
 * jumping to the BIOS reset vector (reboot_type BOOT_EFI falls back to
 * BOOT_BIOS), and with no firmware there it would spin forever.  It returns the register
 * state the boot vCPU starts with (struct boot_entry); vcpu.c applies it.
 *
 * Nothing here touches KVM, so the unit tests run it against a plain memory
 * map.  Fixed addresses of the boot structures are below (all in RAM below
 * 640 KiB, which Linux reclaims once it has copied what it needs).
 */
#ifndef MINIVMM_BOOT_H
#define MINIVMM_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "mm/memmap.h"

#define BOOT_GDT_ADDR       0x0500ULL
#define BOOT_ZERO_PAGE_ADDR 0x7000ULL
#define BOOT_PML4_ADDR      0x9000ULL
#define BOOT_PDPT_ADDR      0xa000ULL
#define BOOT_PD_ADDR        0xb000ULL /* four pages: 4 GiB in 2 MiB pages */
#define BOOT_CMDLINE_ADDR   0x20000ULL
#define BOOT_CMDLINE_MAX    0x10000ULL
#define BOOT_KERNEL_ADDR    0x100000ULL /* protected-mode kernel at 1 MiB */
#define BOOT_RESET_VECTOR   0xffff0ULL /* where a CPU (or Linux's BIOS reboot) starts after reset */

#define BOOT_CS 0x10 /* __BOOT_CS: 64-bit code segment in our GDT */
#define BOOT_DS 0x18 /* __BOOT_DS */

#define BOOT_MIN_PROTOCOL 0x020c /* 2.12: first with XLF_KERNEL_64 */

/* What a valid bzImage header tells us. */
struct bzimage_info {
    uint16_t protocol;     /* e.g. 0x020f */
    size_t setup_size;     /* bytes of real-mode setup code before the kernel proper */
    size_t kernel_size;    /* bytes of protected-mode kernel */
    uint64_t pref_address; /* where the kernel prefers to run (it relocates itself there) */
    uint32_t init_size;    /* bytes the kernel needs from pref_address while it boots */
    uint32_t initrd_addr_max;
    uint32_t cmdline_size; /* longest command line the kernel accepts, without NUL */
};

/*
 * Check that img (len bytes, a whole file) is a bzImage this loader can boot.
 * Returns 0 and fills info, or -1 with a one-line reason in err that says
 * what the file is instead (ELF vmlinux, too-old protocol, not a kernel).
 */
int boot_parse_bzimage(const uint8_t *img, size_t len, struct bzimage_info *info, char *err,
                       size_t errlen);

struct boot_linux_args {
    const uint8_t *kernel; /* whole bzImage file */
    size_t kernel_size;
    int initrd_fd; /* open initrd file, or -1 */
    uint64_t initrd_size;
    const char *cmdline;
    uint64_t acpi_rsdp; /* guest-physical address of the RSDP, or 0 */
};

/* Register state of the boot vCPU for the 64-bit entry. */
struct boot_entry {
    uint64_t rip; /* kernel load address + 0x200 (startup_64) */
    uint64_t rsi; /* zero page */
    uint64_t cr3; /* PML4 */
    uint64_t gdt_base;
    uint16_t gdt_limit;
    uint64_t initrd_addr; /* where the initrd went (0 if none), for messages and tests */
};

/*
 * Load Linux into guest memory.  Returns 0 and fills entry, or -1 with a
 * one-line reason in err (bad image, does not fit in RAM, command line too
 * long, initrd unreadable).
 */
int boot_load_linux(struct mm_map *mem, const struct boot_linux_args *args,
                    struct boot_entry *entry, char *err, size_t errlen);

#endif
