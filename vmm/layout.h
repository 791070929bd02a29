/*
 * layout.h - the guest-physical platform layout of the x86 machine minivmm
 * emulates.  Everything that has a fixed guest address or port lives here,
 * so the memory map, the boot code, ACPI and the devices agree.
 *
 *   0x0000_0000 - 0x0009_ffff  RAM (boot structures: GDT, zero page, page tables, cmdline)
 *   0x000a_0000 - 0x000d_ffff  backed, reserved (legacy VGA/option-ROM hole)
 *   0x000e_0000 - 0x000f_ffff  backed, reserved: ACPI tables, RSDP at 0xe0000
 *   0x0010_0000 - 3 GiB        RAM (kernel at 1 MiB, initrd at the top)
 *   3 GiB - 4 GiB              32-bit hole: PCI window, virtio-mmio, IOAPIC, LAPIC
 *   4 GiB - ...                RAM above the hole, then device-memory regions
 */
#ifndef MINIVMM_LAYOUT_H
#define MINIVMM_LAYOUT_H

#include <stdint.h>

#define LAYOUT_LOW_RAM_END    0x000a0000ULL /* end of conventional memory (640 KiB) */
#define LAYOUT_ACPI_START     0x000e0000ULL /* ACPI tables; the RSDP is the first thing here */
#define LAYOUT_ACPI_END       0x00100000ULL
#define LAYOUT_HIGH_RAM_START 0x00100000ULL /* 1 MiB */

#define LAYOUT_PCI_HOLE_START 0xc0000000ULL  /* RAM above this moves to 4 GiB */
#define LAYOUT_PCI_HOLE_END   0x100000000ULL /* 4 GiB */

/* The end of boot RAM of ram_size bytes: what lies above the hole's start moves to 4 GiB. */
static inline uint64_t layout_ram_end(uint64_t ram_size)
{
    return ram_size > LAYOUT_PCI_HOLE_START
               ? LAYOUT_PCI_HOLE_END + (ram_size - LAYOUT_PCI_HOLE_START)
               : ram_size;
}

/* 32-bit MMIO window for PCI BARs, then ECAM for bus 0 (devices/pci.h). */
#define LAYOUT_PCI_MMIO_START 0xc0000000ULL
#define LAYOUT_PCI_MMIO_END   0xe0000000ULL
#define LAYOUT_PCI_ECAM_START 0xe0000000ULL /* 1 MiB: bus 0 */
/* I/O-port window for PCI I/O BARs. */
#define LAYOUT_PCI_IO_START 0xc000ULL
#define LAYOUT_PCI_IO_END   0x10000ULL

/*
 * virtio-mmio device windows: one 4 KiB page each, and one interrupt line
 * each, from this list of IOAPIC pins (legacy ISA lines not used by the
 * platform first: 4 is COM1, 0/2 the PIT, 1/8/12 are classic keyboard, RTC
 * and mouse lines).  20-23 are PCI INTA-INTD (devices/pci.h).
 */
#define LAYOUT_VIRTIO_MMIO_START 0xf0000000ULL
#define LAYOUT_VIRTIO_MMIO_SIZE  0x1000ULL
#define LAYOUT_VIRTIO_MMIO_GSIS                                                                    \
    {                                                                                              \
        5, 6, 7, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19                                             \
    }
#define LAYOUT_VIRTIO_MMIO_MAX 13

#define LAYOUT_IOAPIC_ADDR 0xfec00000ULL
#define LAYOUT_LAPIC_ADDR  0xfee00000ULL

/* Pages KVM needs for Intel VMX real-mode support; harmless on AMD. */
#define LAYOUT_KVM_IDENTITY_MAP 0xfeffc000ULL
#define LAYOUT_KVM_TSS          0xfeffd000ULL /* three pages */

/* KVM memslots kept for boot RAM (2) and devices' BARs; the rest goes to virtio-mem. */
#define LAYOUT_RESERVED_MEMSLOTS 16

/* Start of guest-physical space that device-memory regions (virtio-mem) use. */
#define LAYOUT_HIGH_MMIO_ALIGN (128ULL << 20)

/* I/O ports. */
#define LAYOUT_COM1_PORT 0x3f8
#define LAYOUT_COM1_IRQ  4

/* ACPI power management registers (see acpi.h for the protocol). */
#define LAYOUT_PM_PORT_BASE     0x600
#define LAYOUT_PM_SLEEP_CONTROL 0x600
#define LAYOUT_PM_SLEEP_STATUS  0x601
#define LAYOUT_PM_RESET         0x602
#define LAYOUT_PM_PORT_COUNT    3
#define LAYOUT_PM_RESET_VALUE   0x01
#define LAYOUT_PM_S5_SLEEP_TYPE 5

/* Number of IOAPIC pins (GSIs) KVM's in-kernel IOAPIC has. */
#define LAYOUT_IOAPIC_PINS 24

#endif
