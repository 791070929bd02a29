/*
 * acpi.h - the ACPI tables minivmm hands to the guest.
 *
 * minivmm boots Linux without firmware.  Stock Debian kernels find CPUs, the
 * IOAPIC and virtio-mmio devices only through ACPI, so the VMM builds:
 *
 *   RSDP (revision 2) -> XSDT -> FADT (revision 6, HW-reduced) -> DSDT
 *                             -> MADT
 *                             -> MCFG (when there is a PCI host: its ECAM window)
 *
 * acpi_build_tables() is a pure function: it writes the tables into a host
 * buffer and never touches KVM or guest memory.  The caller (machine setup,
 * before the first vCPU runs) picks a guest-physical address, builds the tables
 * for that address, copies the bytes to guest memory, reserves the range in the
 * e820 map, and tells the kernel where the RSDP is (boot_params.acpi_rsdp_addr,
 * or by placing the RSDP in the legacy scan area 0xE0000-0xFFFFF).
 *
 * Layout inside the buffer, each table 16-byte aligned:
 *   offset 0: RSDP (36 bytes) | XSDT | FADT (276 bytes) | MADT | [MCFG (60)] | DSDT (variable)
 * The DSDT starts at 472 + 8 * ncpus rounded up to 16 (480 for 1 vCPU, 2512 for
 * 255) and takes 57 bytes plus what the devices describe (COM1: 45 bytes, one
 * virtio-mmio device: 68).  Examples: 1 vCPU + COM1 + 1 virtio-mmio = 650 bytes;
 * 255 vCPUs + COM1 + 8 virtio-mmio = 3157 bytes.  Build into a generous buffer
 * (the 128 KiB legacy area is far more than enough) and copy the returned length.
 *
 * ---- Power-management contract (for the device that owns the ports below) ----
 *
 * The FADT declares three 8-bit SystemIO registers.  Linux (ACPICA in
 * HW-reduced mode, drivers/acpi/acpica/hwesleep.c and hwxface.c) uses them so:
 *
 * Power off (S5), in this order:
 *   1. write ACPI_SLEEP_STATUS_WAK_STS (0x80) to sleep_status_port
 *      (write-1-to-clear of WAK_STS);
 *   2. write ((SLP_TYP << 2) & 0x1c) | 0x20 to sleep_control_port, where
 *      SLP_TYP is s5_sleep_type (the first element of \_S5 in the DSDT) and
 *      0x20 is SLP_EN.  ACPI_SLEEP_CONTROL_VALUE(s5_sleep_type) computes the
 *      byte.  On this write the VMM must power the VM off;
 *   3. otherwise Linux spins reading sleep_status_port until bit 7 (WAK_STS)
 *      is set, so a read should return 0 while the VM stays in S0.
 *   Writes to sleep_control_port without SLP_EN, or with another SLP_TYP, are
 *   not power-off requests (Linux writes SLP_TYP of \_S0 with SLP_EN when it
 *   wakes, which never happens here because only \_S5 is declared).
 *
 * Reboot: Linux writes reset_value (one byte) to reset_port.  The VMM must
 *   reset or restart the VM on exactly that value.
 *
 * No SCI, no PM1/GPE blocks, no FACS: in HW-reduced mode ACPICA uses none of them.
 */
#ifndef MINIVMM_VMM_ACPI_H
#define MINIVMM_VMM_ACPI_H

#include <stddef.h>
#include <stdint.h>

struct aml;

/* Type-0 MADT entries carry 8-bit APIC ids and 0xff means "invalid": ids 0-254. */
#define ACPI_MAX_CPUS 255

/* SLP_TYP is a 3-bit field of the sleep control register. */
#define ACPI_SLEEP_TYPE_MAX 7

/* Sleep control register (ACPI 6.5 §4.8.3.7): SLP_TYP in bits 4-2, SLP_EN in bit 5. */
#define ACPI_SLEEP_CONTROL_SLP_TYP_SHIFT 2
#define ACPI_SLEEP_CONTROL_SLP_TYP_MASK  0x1c
#define ACPI_SLEEP_CONTROL_SLP_EN        0x20

/* The byte Linux writes to the sleep control register to enter a sleep state of type t. */
#define ACPI_SLEEP_CONTROL_VALUE(t)                                                                \
    ((uint8_t)((((unsigned)(t) << ACPI_SLEEP_CONTROL_SLP_TYP_SHIFT) &                              \
                ACPI_SLEEP_CONTROL_SLP_TYP_MASK) |                                                 \
               ACPI_SLEEP_CONTROL_SLP_EN))

/* Sleep status register (ACPI 6.5 §4.8.3.8): WAK_STS in bit 7, write 1 to clear. */
#define ACPI_SLEEP_STATUS_WAK_STS 0x80

/* Alignment of every table in the buffer, and of the `gpa` given to acpi_build_tables(). */
#define ACPI_TABLE_ALIGN 16

/*
 * Everything acpi_build_tables() needs.  Filled in by the machine setup code; read
 * only during the call and not kept afterwards.
 */
struct acpi_config {
    /* vCPUs, 1..ACPI_MAX_CPUS: one enabled Processor Local APIC entry per vCPU, with
     * APIC id = ACPI processor UID = vCPU index (0..ncpus-1), matching KVM's default
     * APIC ids. */
    unsigned ncpus;

    /* Local APIC base for the MADT; 0xfee00000 on x86. */
    uint32_t lapic_addr;

    /* IOAPIC MMIO base (0xfec00000), and its id.  One IOAPIC, GSI base 0.  Use id 0:
     * KVM's in-kernel IOAPIC resets its id register to 0, and x86_64 Linux does not
     * require the IOAPIC id to differ from the APIC ids of the vCPUs. */
    uint32_t ioapic_addr;
    uint8_t ioapic_id;

    /* FADT SLEEP_CONTROL_REG and SLEEP_STATUS_REG, 8-bit SystemIO ports, and the
     * SLP_TYP (0..ACPI_SLEEP_TYPE_MAX) put into \_S5.  See the contract above.  A port
     * of 0 leaves the register absent, and Linux then cannot power off through ACPI. */
    uint16_t sleep_control_port;
    uint16_t sleep_status_port;
    uint8_t s5_sleep_type;

    /* FADT RESET_REG, an 8-bit SystemIO port, and the byte Linux writes to it to
     * reboot.  Port 0 leaves RESET_REG_SUP clear (no ACPI reboot). */
    uint16_t reset_port;
    uint8_t reset_value;

    /* ECAM base of PCI segment 0 for the MCFG table, buses 0..mcfg_bus_end; 0: no MCFG. */
    uint64_t mcfg_base;
    uint8_t mcfg_bus_end;

    /*
     * Called exactly once while the DSDT is built, with the AML positioned inside
     * Scope (\_SB) { ... }.  The callee appends one Device block per device (or
     * nothing), keeps its begin/end calls balanced, and must not keep `aml`.  It does
     * not check for errors: acpi_build_tables() checks the builder afterwards.  May be
     * NULL (empty \_SB).  `opaque` is passed through untouched.
     */
    void (*describe_devices)(void *opaque, struct aml *aml);
    void *opaque;
};

/*
 * Build RSDP, XSDT, FADT, MADT and DSDT into buf[0..size), for a guest that will
 * see buf[0] at guest-physical address `gpa` (so the RSDP is at `gpa`).  All table
 * pointers are gpa-based; the FADT's 32-bit DSDT pointer is set too when the DSDT
 * lies below 4 GiB.  The buffer needs no particular host alignment; bytes after the
 * returned length are left untouched.
 *
 * Returns the number of bytes used, or 0 (nothing useful written) if:
 *   - cfg is invalid: ncpus is 0 or > ACPI_MAX_CPUS, s5_sleep_type >
 *     ACPI_SLEEP_TYPE_MAX, or gpa is not ACPI_TABLE_ALIGN-aligned;
 *   - the AML builder failed (allocation failure or a device's invalid AML);
 *   - size is too small.
 * Each failure prints one line with the reason to stderr.
 * Allocates only temporarily; thread-safe if describe_devices is.
 */
size_t acpi_build_tables(const struct acpi_config *cfg, uint64_t gpa, void *buf, size_t size);

#endif /* MINIVMM_VMM_ACPI_H */
