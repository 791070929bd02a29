/*
 * fuzz_bzimage.c - libFuzzer target for the bzImage loader (vmm/boot.c):
 * boot_parse_bzimage on the input as a whole kernel file and, when it is
 * accepted, boot_load_linux into an 8 MiB guest (no initrd).
 *
 * Checks: an accepted image has protocol >= 2.12, setup code of whole
 * sectors, and setup + kernel = the file; a loaded kernel is copied byte for
 * byte to 1 MiB, starts at its 64-bit entry, and everything the header says
 * it needs while booting (from max(pref_address, 1 MiB), init_size bytes)
 * lies inside the guest's RAM (computed without wrap-around).
 */
#include <stdint.h>
#include <string.h>

#include "mm/memmap.h"
#include "vmm/boot.h"
#include "vmm/util.h"
#include "tests/fuzz/common/input.h"

#define RAM (8 * MiB)

static struct mm_map mem;
static bool mem_ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct bzimage_info info;
    struct boot_entry entry;
    char err[512];

    if (boot_parse_bzimage(data, size, &info, err, sizeof(err)) < 0) {
        FUZZ_CHECK(strlen(err) > 0, "refused without a reason");
        return 0;
    }
    FUZZ_CHECK(info.protocol >= BOOT_MIN_PROTOCOL, "protocol %#x", info.protocol);
    FUZZ_CHECK(info.setup_size >= 512 && info.setup_size % 512 == 0, "setup %zu", info.setup_size);
    FUZZ_CHECK(info.setup_size + info.kernel_size == size && info.kernel_size > 0,
               "setup %zu + kernel %zu != %zu", info.setup_size, info.kernel_size, size);

    if (!mem_ready) {
        mm_map_init(&mem);
        FUZZ_CHECK(mm_map_setup_ram(&mem, RAM, err, sizeof(err)) == 0, "RAM: %s", err);
        mem_ready = true;
    }
    struct boot_linux_args args = {
        .kernel = data,
        .kernel_size = size,
        .initrd_fd = -1,
        .cmdline = "console=ttyS0",
    };
    if (boot_load_linux(&mem, &args, &entry, err, sizeof(err)) < 0) {
        FUZZ_CHECK(strlen(err) > 0, "load refused without a reason");
        return 0;
    }
    FUZZ_CHECK(entry.rip == BOOT_KERNEL_ADDR + 0x200, "rip %#llx", (unsigned long long)entry.rip);
    const uint8_t *k = mm_gpa(&mem, BOOT_KERNEL_ADDR, info.kernel_size);
    FUZZ_CHECK(k && memcmp(k, data + info.setup_size, info.kernel_size) == 0,
               "kernel not copied to 1 MiB");
    uint64_t run_at = info.pref_address > BOOT_KERNEL_ADDR ? info.pref_address : BOOT_KERNEL_ADDR;
    uint64_t need = info.init_size > info.kernel_size ? info.init_size : info.kernel_size;
    FUZZ_CHECK(run_at <= mem.low_ram_end && need <= mem.low_ram_end - run_at,
               "accepted a kernel that needs [%#llx, +%#llx) with RAM ending at %#llx",
               (unsigned long long)run_at, (unsigned long long)need,
               (unsigned long long)mem.low_ram_end);
    return 0;
}
