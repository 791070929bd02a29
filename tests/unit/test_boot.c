/* Unit tests for the bzImage loader, zero page and e820 map (vmm/boot.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <asm/bootparam.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mm/memmap.h"
#include "vmm/boot.h"
#include "vmm/layout.h"
#include "vmm/util.h"

#define SETUP_SECTS  4
#define PAYLOAD_SIZE (64 * 1024)
#define IMAGE_SIZE   ((SETUP_SECTS + 1) * 512 + PAYLOAD_SIZE)

struct fake {
    uint8_t img[IMAGE_SIZE];
};

/* A minimal bzImage: a valid setup header and a patterned payload. */
static struct fake *make_image(uint16_t version, uint32_t init_size)
{
    struct fake *f = calloc(1, sizeof(*f));
    struct setup_header h;
    memset(&h, 0, sizeof(h));
    h.setup_sects = SETUP_SECTS;
    h.boot_flag = 0xaa55;
    h.header = 0x53726448;
    h.version = version;
    h.loadflags = LOADED_HIGH;
    h.xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G;
    h.cmdline_size = 2047;
    h.pref_address = 0x1000000;
    h.init_size = init_size;
    h.initrd_addr_max = 0x7fffffff;
    h.kernel_alignment = 0x200000;
    h.relocatable_kernel = 1;
    memcpy(f->img + 0x1f1, &h, sizeof(h));
    /* The jump at 0x200 sets the header length: it ends at 0x202 + img[0x201]. */
    f->img[0x200] = 0xeb;
    f->img[0x201] = (uint8_t)(0x1f1 + sizeof(h) - 0x202);
    for (size_t i = 0; i < PAYLOAD_SIZE; i++)
        f->img[(SETUP_SECTS + 1) * 512 + i] = (uint8_t)(i * 7 + 3);
    return f;
}

static void expect_parse_error(const uint8_t *img, size_t len, const char *needle)
{
    struct bzimage_info info;
    char err[256] = "";
    if (boot_parse_bzimage(img, len, &info, err, sizeof(err)) == 0)
        fail_msg("image accepted; expected an error mentioning '%s'", needle);
    if (!strstr(err, needle))
        fail_msg("error '%s' does not mention '%s'", err, needle);
}

static void test_parse_valid(void **state)
{
    (void)state;
    struct fake *f = make_image(0x020f, 0x2000000);
    struct bzimage_info info;
    char err[256];
    assert_int_equal(boot_parse_bzimage(f->img, IMAGE_SIZE, &info, err, sizeof(err)), 0);
    assert_int_equal(info.protocol, 0x020f);
    assert_int_equal(info.setup_size, (SETUP_SECTS + 1) * 512);
    assert_int_equal(info.kernel_size, PAYLOAD_SIZE);
    assert_int_equal(info.init_size, 0x2000000);
    assert_int_equal(info.cmdline_size, 2047);
    free(f);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    struct fake *f = make_image(0x020b, 0x2000000);
    expect_parse_error(f->img, IMAGE_SIZE, "protocol 2.11, which is too old");
    free(f);

    f = make_image(0x020f, 0x2000000);
    struct setup_header *h = (struct setup_header *)(f->img + 0x1f1);
    h->xloadflags = 0;
    expect_parse_error(f->img, IMAGE_SIZE, "no 64-bit entry point");
    h->xloadflags = XLF_KERNEL_64;
    h->loadflags = 0;
    expect_parse_error(f->img, IMAGE_SIZE, "zImage");
    h->loadflags = LOADED_HIGH;
    h->header = 0x12345678;
    expect_parse_error(f->img, IMAGE_SIZE, "not a Linux bzImage");
    h->header = 0x53726448;
    h->boot_flag = 0;
    expect_parse_error(f->img, IMAGE_SIZE, "not a Linux bzImage");
    h->boot_flag = 0xaa55;
    expect_parse_error(f->img, 100, "too small");
    expect_parse_error(f->img, 0x1f1 + 0x80, "truncated");
    free(f);

    static const uint8_t elf[64] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
    expect_parse_error(elf, sizeof(elf), "ELF vmlinux");
}

struct loaded {
    struct mm_map map;
    struct boot_entry entry;
    struct boot_params bp;
};

static int make_initrd(size_t size)
{
    int fd = memfd_create("initrd", 0);
    assert_true(fd >= 0);
    uint8_t *buf = malloc(size);
    for (size_t i = 0; i < size; i++)
        buf[i] = (uint8_t)(i ^ 0x5a);
    assert_int_equal(write(fd, buf, size), (ssize_t)size);
    free(buf);
    return fd;
}

static int load(struct loaded *l, uint64_t ram, const struct fake *f, int initrd_fd,
                uint64_t initrd_size, const char *cmdline, char *err, size_t errlen)
{
    mm_map_init(&l->map);
    if (mm_map_setup_ram(&l->map, ram, err, errlen) < 0)
        fail_msg("setup_ram: %s", err);
    struct boot_linux_args args = {
        .kernel = f->img,
        .kernel_size = IMAGE_SIZE,
        .initrd_fd = initrd_fd,
        .initrd_size = initrd_size,
        .cmdline = cmdline,
        .acpi_rsdp = LAYOUT_ACPI_START,
    };
    int r = boot_load_linux(&l->map, &args, &l->entry, err, errlen);
    if (r == 0)
        assert_int_equal(mm_read(&l->map, BOOT_ZERO_PAGE_ADDR, &l->bp, sizeof(l->bp)), 0);
    return r;
}

static void test_load_layout(void **state)
{
    (void)state;
    struct fake *f = make_image(0x020f, 0x2000000);
    struct loaded *l = calloc(1, sizeof(*l));
    char err[256];
    const size_t initrd_size = 3 * MiB + 123;
    int fd = make_initrd(initrd_size);
    assert_int_equal(
        load(l, 256 * MiB, f, fd, initrd_size, "console=ttyS0 quiet", err, sizeof(err)), 0);

    /* Entry state. */
    assert_int_equal(l->entry.rip, 0x100200);
    assert_int_equal(l->entry.rsi, BOOT_ZERO_PAGE_ADDR);
    assert_int_equal(l->entry.cr3, BOOT_PML4_ADDR);

    /* The protected-mode kernel is at 1 MiB. */
    assert_memory_equal(mm_gpa(&l->map, BOOT_KERNEL_ADDR, PAYLOAD_SIZE),
                        f->img + (SETUP_SECTS + 1) * 512, PAYLOAD_SIZE);

    /* Zero page: header copied and patched. */
    struct boot_params *bp = &l->bp;
    assert_int_equal(bp->hdr.boot_flag, 0xaa55);
    assert_int_equal(bp->hdr.version, 0x020f);
    assert_int_equal(bp->hdr.type_of_loader, 0xff);
    assert_int_equal(bp->hdr.cmd_line_ptr, BOOT_CMDLINE_ADDR);
    assert_int_equal(bp->acpi_rsdp_addr, LAYOUT_ACPI_START);
    assert_string_equal((const char *)mm_gpa(&l->map, BOOT_CMDLINE_ADDR, 20),
                        "console=ttyS0 quiet");

    /* Initrd: page aligned, at the top of RAM, contents intact. */
    uint64_t ird = bp->hdr.ramdisk_image | ((uint64_t)bp->ext_ramdisk_image << 32);
    assert_int_equal(ird % 4096, 0);
    assert_int_equal(ird, ALIGN_DOWN(256 * MiB - initrd_size, 4096));
    assert_int_equal(bp->hdr.ramdisk_size, initrd_size);
    assert_int_equal(l->entry.initrd_addr, ird);
    const uint8_t *p = mm_gpa(&l->map, ird, initrd_size);
    assert_non_null(p);
    for (size_t i = 0; i < initrd_size; i += 4099)
        assert_int_equal(p[i], (uint8_t)(i ^ 0x5a));

    /* e820: low RAM, the reserved legacy/ACPI area, RAM from 1 MiB. */
    assert_int_equal(bp->e820_entries, 3);
    assert_int_equal(bp->e820_table[0].addr, 0);
    assert_int_equal(bp->e820_table[0].size, LAYOUT_LOW_RAM_END);
    assert_int_equal(bp->e820_table[0].type, 1);
    assert_int_equal(bp->e820_table[1].addr, LAYOUT_LOW_RAM_END);
    assert_int_equal(bp->e820_table[1].size, LAYOUT_ACPI_END - LAYOUT_LOW_RAM_END);
    assert_int_equal(bp->e820_table[1].type, 2);
    assert_int_equal(bp->e820_table[2].addr, MiB);
    assert_int_equal(bp->e820_table[2].size, 255 * MiB);
    assert_int_equal(bp->e820_table[2].type, 1);

    /* GDT: __BOOT_CS is a 64-bit code segment, __BOOT_DS flat data. */
    const uint64_t *gdt = mm_gpa(&l->map, BOOT_GDT_ADDR, 32);
    assert_int_equal((gdt[BOOT_CS / 8] >> 53) & 1, 1); /* L bit */
    assert_int_equal((gdt[BOOT_CS / 8] >> 43) & 1, 1); /* executable */
    assert_int_equal((gdt[BOOT_DS / 8] >> 43) & 1, 0);
    assert_int_equal((gdt[BOOT_DS / 8] >> 47) & 1, 1); /* present */
    assert_int_equal(l->entry.gdt_base, BOOT_GDT_ADDR);

    /* Page tables: identity map of 4 GiB in 2 MiB pages. */
    const uint64_t *pml4 = mm_gpa(&l->map, BOOT_PML4_ADDR, 4096);
    const uint64_t *pdpt = mm_gpa(&l->map, BOOT_PDPT_ADDR, 4096);
    assert_int_equal(pml4[0] & ~0xfffULL, BOOT_PDPT_ADDR);
    for (unsigned i = 0; i < 4; i++) {
        const uint64_t *pd = mm_gpa(&l->map, pdpt[i] & ~0xfffULL, 4096);
        assert_non_null(pd);
        for (unsigned j = 0; j < 512; j += 97) {
            assert_int_equal(pd[j] & ~0xfffULL, ((uint64_t)i << 30) + ((uint64_t)j << 21));
            assert_int_equal(pd[j] & 0x83, 0x83);
        }
    }
    /* Reset vector: mov al, RESET_VALUE; mov dx, PM_RESET; out dx, al; hlt; jmp $-3. */
    const uint8_t *rv = mm_gpa(&l->map, BOOT_RESET_VECTOR, 9);
    assert_non_null(rv);
    assert_int_equal(rv[0], 0xb0);
    assert_int_equal(rv[1], LAYOUT_PM_RESET_VALUE);
    assert_int_equal(rv[2], 0xba);
    assert_int_equal(rv[3] | rv[4] << 8, LAYOUT_PM_RESET);
    assert_int_equal(rv[5], 0xee);
    assert_int_equal(rv[6], 0xf4);
    assert_int_equal((int8_t)rv[8], -3);

    close(fd);
    mm_map_destroy(&l->map);
    free(l);
    free(f);
}

static void test_load_above_4g(void **state)
{
    (void)state;
    struct fake *f = make_image(0x020f, 0x2000000);
    struct loaded *l = calloc(1, sizeof(*l));
    char err[256];
    assert_int_equal(load(l, 5 * GiB, f, -1, 0, "", err, sizeof(err)), 0);
    struct boot_params *bp = &l->bp;
    assert_int_equal(bp->hdr.ramdisk_image, 0);
    assert_int_equal(bp->e820_entries, 4);
    assert_int_equal(bp->e820_table[2].addr + bp->e820_table[2].size, LAYOUT_PCI_HOLE_START);
    assert_int_equal(bp->e820_table[3].addr, 4 * GiB);
    assert_int_equal(bp->e820_table[3].size, 5 * GiB - LAYOUT_PCI_HOLE_START);
    /* RAM is distinct on both sides of the hole, and the hole has no memory. */
    assert_non_null(mm_gpa(&l->map, 4 * GiB, 4096));
    assert_null(mm_gpa(&l->map, LAYOUT_PCI_HOLE_START, 1));
    mm_map_destroy(&l->map);
    free(l);
    free(f);
}

static void expect_load_error(uint64_t ram, uint32_t init_size, uint64_t initrd_size,
                              const char *cmdline, const char *needle)
{
    struct fake *f = make_image(0x020f, init_size);
    struct loaded *l = calloc(1, sizeof(*l));
    char err[256] = "";
    int fd = initrd_size ? make_initrd(initrd_size) : -1;
    if (load(l, ram, f, fd, initrd_size, cmdline, err, sizeof(err)) == 0)
        fail_msg("load succeeded; expected an error mentioning '%s'", needle);
    if (!strstr(err, needle))
        fail_msg("error '%s' does not mention '%s'", err, needle);
    if (fd >= 0)
        close(fd);
    mm_map_destroy(&l->map);
    free(l);
    free(f);
}

static void test_load_errors(void **state)
{
    (void)state;
    /* The kernel runs at 16 MiB and needs 64 MiB there: 64 MiB of RAM is not enough. */
    expect_load_error(64 * MiB, 64 * MiB, 0, "", "the kernel needs 80 MiB of RAM");
    /* Kernel fits, initrd would overlap it. */
    expect_load_error(64 * MiB, 32 * MiB, 20 * MiB, "", "do not fit in --memory 64 MiB");
    /* Command line longer than cmdline_size (2047). */
    char *longline = malloc(3000);
    memset(longline, 'a', 2999);
    longline[2999] = '\0';
    expect_load_error(64 * MiB, 32 * MiB, 0, longline, "--cmdline is 2999 bytes long");
    free(longline);
}

/*
 * A pref_address near 2^64 (found by fuzz_bzimage): run_at + init_size
 * wrapped around, and the image was accepted.  Now refused in one line.
 */
static void test_load_refuses_wrapping_pref_address(void **state)
{
    (void)state;
    struct fake *f = make_image(0x020f, 32 * MiB);
    uint64_t pref = UINT64_MAX;
    memcpy(f->img + 0x1f1 + offsetof(struct setup_header, pref_address), &pref, sizeof(pref));
    struct loaded *l = calloc(1, sizeof(*l));
    char err[256] = "";
    if (load(l, 64 * MiB, f, -1, 0, "", err, sizeof(err)) == 0)
        fail_msg("an image that wants to run at %#llx was accepted", (unsigned long long)pref);
    if (!strstr(err, "the kernel wants to run at 0xffffffffffffffff"))
        fail_msg("error '%s'", err);
    mm_map_destroy(&l->map);
    free(l);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test(test_load_layout),
        cmocka_unit_test(test_load_above_4g),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_load_refuses_wrapping_pref_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
