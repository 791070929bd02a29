/*
 * acpi.c - RSDP, XSDT, FADT, MADT and DSDT for the guest; see acpi.h.
 *
 * Table layouts follow ACPI 6.5 chapter 5 (section numbers below).  The packed
 * structs mirror the spec tables field by field, and static assertions pin the
 * offsets the guest relies on.
 */
#include "vmm/acpi.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "vmm/aml.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "acpi.c writes multi-byte fields in host order; ACPI is little-endian"
#endif

#define PACKED __attribute__((packed))

/* Identification shared by all tables. */
#define ACPI_OEM_ID        "MINVMM"   /* 6 characters */
#define ACPI_OEM_TABLE_ID  "MINIVMM " /* 8 characters; the XSDT's must equal the FADT's */
#define ACPI_OEM_REVISION  1
#define ACPI_CREATOR_ID    "MVMM"
#define ACPI_CREATOR_REV   1
#define ACPI_HYPERVISOR_ID "MINIVMM " /* FADT Hypervisor Vendor Identity, 8 bytes */
#define ACPI_OEM_ID_LEN    6
#define ACPI_OEM_TABLE_LEN 8
#define ACPI_SIGNATURE_LEN 4

/* Revisions: ACPI 6.0 era tables, which is all Linux needs for HW-reduced boot. */
#define RSDP_REVISION       2 /* ACPI 2.0+ RSDP with XSDT address */
#define XSDT_REVISION       1
#define FADT_REVISION       6
#define FADT_MINOR_REVISION 0
#define MADT_REVISION       4
#define DSDT_REVISION       2 /* 2 or more: AML integers are 64-bit */

/* ---- Common structures ---- */

/* §5.2.6 System Description Table Header */
struct acpi_header {
    char signature[ACPI_SIGNATURE_LEN];
    uint32_t length;
    uint8_t revision;
    uint8_t checksum;
    char oem_id[ACPI_OEM_ID_LEN];
    char oem_table_id[ACPI_OEM_TABLE_LEN];
    uint32_t oem_revision;
    char creator_id[ACPI_SIGNATURE_LEN];
    uint32_t creator_revision;
} PACKED;
_Static_assert(sizeof(struct acpi_header) == 36, "ACPI table header is 36 bytes");

/* §5.2.3.2 Generic Address Structure */
struct acpi_gas {
    uint8_t space_id;
    uint8_t bit_width;
    uint8_t bit_offset;
    uint8_t access_size;
    uint64_t address;
} PACKED;
_Static_assert(sizeof(struct acpi_gas) == 12, "GAS is 12 bytes");

#define GAS_SPACE_SYSTEM_IO 1
#define GAS_ACCESS_BYTE     1
#define GAS_WIDTH_8         8

/* ---- RSDP (§5.2.5.3) ---- */

struct acpi_rsdp {
    char signature[8];
    uint8_t checksum; /* over the first 20 bytes (the ACPI 1.0 part) */
    char oem_id[ACPI_OEM_ID_LEN];
    uint8_t revision;
    uint32_t rsdt_address; /* 0: no RSDT, the XSDT is used */
    uint32_t length;
    uint64_t xsdt_address;
    uint8_t extended_checksum; /* over all 36 bytes */
    uint8_t reserved[3];
} PACKED;
_Static_assert(sizeof(struct acpi_rsdp) == 36, "RSDP is 36 bytes");

#define RSDP_SIGNATURE "RSD PTR "
#define RSDP_V1_LEN    20

/* ---- XSDT (§5.2.8) ---- */

enum xsdt_entry { XSDT_FADT, XSDT_MADT, XSDT_MCFG, XSDT_ENTRIES }; /* MCFG only with PCI */

struct acpi_xsdt {
    struct acpi_header header;
    uint64_t entry[XSDT_ENTRIES];
} PACKED;

/* ---- MCFG (PCI Firmware Specification 3.2, §4.1.2) ---- */

#define MCFG_REVISION 1

struct acpi_mcfg {
    struct acpi_header header;
    uint64_t reserved;
    /* One configuration space base address allocation structure. */
    uint64_t base;
    uint16_t segment;
    uint8_t bus_start;
    uint8_t bus_end;
    uint32_t reserved2;
} PACKED;
_Static_assert(sizeof(struct acpi_mcfg) == 60, "MCFG with one allocation is 60 bytes");

/* ---- FADT (§5.2.9) ---- */

struct acpi_fadt {
    struct acpi_header header;
    uint32_t firmware_ctrl; /* FACS: none in HW-reduced mode */
    uint32_t dsdt;
    uint8_t reserved0;
    uint8_t preferred_pm_profile;
    uint16_t sci_int;
    uint32_t smi_cmd;
    uint8_t acpi_enable;
    uint8_t acpi_disable;
    uint8_t s4bios_req;
    uint8_t pstate_cnt;
    uint32_t pm1a_evt_blk;
    uint32_t pm1b_evt_blk;
    uint32_t pm1a_cnt_blk;
    uint32_t pm1b_cnt_blk;
    uint32_t pm2_cnt_blk;
    uint32_t pm_tmr_blk;
    uint32_t gpe0_blk;
    uint32_t gpe1_blk;
    uint8_t pm1_evt_len;
    uint8_t pm1_cnt_len;
    uint8_t pm2_cnt_len;
    uint8_t pm_tmr_len;
    uint8_t gpe0_blk_len;
    uint8_t gpe1_blk_len;
    uint8_t gpe1_base;
    uint8_t cst_cnt;
    uint16_t p_lvl2_lat;
    uint16_t p_lvl3_lat;
    uint16_t flush_size;
    uint16_t flush_stride;
    uint8_t duty_offset;
    uint8_t duty_width;
    uint8_t day_alrm;
    uint8_t mon_alrm;
    uint8_t century;
    uint16_t iapc_boot_arch;
    uint8_t reserved1;
    uint32_t flags;
    struct acpi_gas reset_reg;
    uint8_t reset_value;
    uint16_t arm_boot_arch;
    uint8_t minor_revision;
    uint64_t x_firmware_ctrl;
    uint64_t x_dsdt;
    struct acpi_gas x_pm1a_evt_blk;
    struct acpi_gas x_pm1b_evt_blk;
    struct acpi_gas x_pm1a_cnt_blk;
    struct acpi_gas x_pm1b_cnt_blk;
    struct acpi_gas x_pm2_cnt_blk;
    struct acpi_gas x_pm_tmr_blk;
    struct acpi_gas x_gpe0_blk;
    struct acpi_gas x_gpe1_blk;
    struct acpi_gas sleep_control_reg;
    struct acpi_gas sleep_status_reg;
    char hypervisor_vendor_id[8];
} PACKED;
_Static_assert(sizeof(struct acpi_fadt) == 276, "FADT revision 6 is 276 bytes");
_Static_assert(__builtin_offsetof(struct acpi_fadt, iapc_boot_arch) == 109, "IAPC_BOOT_ARCH");
_Static_assert(__builtin_offsetof(struct acpi_fadt, flags) == 112, "FADT flags");
_Static_assert(__builtin_offsetof(struct acpi_fadt, reset_reg) == 116, "RESET_REG");
_Static_assert(__builtin_offsetof(struct acpi_fadt, x_dsdt) == 140, "X_DSDT");
_Static_assert(__builtin_offsetof(struct acpi_fadt, sleep_control_reg) == 244, "SLEEP_CONTROL");
_Static_assert(__builtin_offsetof(struct acpi_fadt, sleep_status_reg) == 256, "SLEEP_STATUS");

/* FADT fixed feature flags (Table 5.10) */
#define FADT_PWR_BUTTON    (1u << 4)  /* no fixed-feature power button */
#define FADT_SLP_BUTTON    (1u << 5)  /* no fixed-feature sleep button */
#define FADT_RESET_REG_SUP (1u << 10) /* RESET_REG is valid */
#define FADT_HW_REDUCED    (1u << 20) /* HW_REDUCED_ACPI */

/* IA-PC boot architecture flags (Table 5.11) */
#define IAPC_VGA_NOT_PRESENT      (1u << 2)
#define IAPC_CMOS_RTC_NOT_PRESENT (1u << 5)

/* ---- MADT (§5.2.12) ---- */

struct acpi_madt {
    struct acpi_header header;
    uint32_t lapic_addr;
    uint32_t flags;
} PACKED;
_Static_assert(sizeof(struct acpi_madt) == 44, "MADT fixed part is 44 bytes");

/*
 * MADT flags: PCAT_COMPAT (bit 0) is left clear.  In HW-reduced mode Linux replaces
 * the 8259 driver with a null PIC regardless of this flag, KVM's in-kernel 8259 is
 * never programmed, and not claiming it keeps the description honest for a
 * HW-reduced platform.
 */
#define MADT_FLAGS 0

struct madt_entry_header {
    uint8_t type;
    uint8_t length;
} PACKED;

/* Table 5.22 Processor Local APIC Structure */
struct madt_lapic {
    struct madt_entry_header h;
    uint8_t processor_uid;
    uint8_t apic_id;
    uint32_t flags;
} PACKED;
_Static_assert(sizeof(struct madt_lapic) == 8, "Local APIC entry is 8 bytes");

/* Table 5.24 I/O APIC Structure */
struct madt_ioapic {
    struct madt_entry_header h;
    uint8_t ioapic_id;
    uint8_t reserved;
    uint32_t address;
    uint32_t gsi_base;
} PACKED;
_Static_assert(sizeof(struct madt_ioapic) == 12, "I/O APIC entry is 12 bytes");

/* Table 5.25 Interrupt Source Override Structure */
struct madt_iso {
    struct madt_entry_header h;
    uint8_t bus;
    uint8_t source;
    uint32_t gsi;
    uint16_t flags;
} PACKED;
_Static_assert(sizeof(struct madt_iso) == 10, "Interrupt Source Override is 10 bytes");

/* Table 5.30 Local APIC NMI Structure */
struct madt_lapic_nmi {
    struct madt_entry_header h;
    uint8_t processor_uid;
    uint16_t flags;
    uint8_t lint;
} PACKED;
_Static_assert(sizeof(struct madt_lapic_nmi) == 6, "Local APIC NMI entry is 6 bytes");

#define MADT_TYPE_LAPIC     0
#define MADT_TYPE_IOAPIC    1
#define MADT_TYPE_ISO       2
#define MADT_TYPE_LAPIC_NMI 4

#define MADT_LAPIC_ENABLED (1u << 0)
#define MADT_ISO_BUS_ISA   0
#define MADT_POLARITY_HIGH 0x1 /* MPS INTI flags bits 1-0: active high */
#define MADT_TRIGGER_EDGE  0x4 /* MPS INTI flags bits 3-2: edge-triggered */
#define MADT_NMI_ALL_CPUS  0xff
#define MADT_NMI_LINT1     1
#define MADT_NMI_FLAGS     0 /* conforms to the bus: edge, active high */
#define ISA_IRQ_TIMER      0 /* the PIT's ISA IRQ ... */
#define GSI_TIMER          2 /* ... is wired to IOAPIC pin 2 */

#define MADT_SIZE(ncpus)                                                                           \
    (sizeof(struct acpi_madt) + (ncpus) * sizeof(struct madt_lapic) + sizeof(struct madt_ioapic) + \
     sizeof(struct madt_iso) + sizeof(struct madt_lapic_nmi))

/* ---- DSDT (§5.2.11.1) ---- */

#define DSDT_S5_PACKAGE_LEN 4 /* { SLP_TYPa, SLP_TYPb, reserved, reserved } */

/* ---- Helpers ---- */

static size_t align_up(size_t v)
{
    return (v + ACPI_TABLE_ALIGN - 1) & ~(size_t)(ACPI_TABLE_ALIGN - 1);
}

/* The byte that makes `len` bytes starting at p sum to zero (mod 256). */
static uint8_t acpi_checksum(const void *p, size_t len)
{
    const uint8_t *b = p;
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++)
        sum = (uint8_t)(sum + b[i]);
    return (uint8_t)(0 - sum);
}

static void fill_header(struct acpi_header *h, const char *signature, uint32_t length,
                        uint8_t revision)
{
    memcpy(h->signature, signature, ACPI_SIGNATURE_LEN);
    h->length = length;
    h->revision = revision;
    h->checksum = 0;
    memcpy(h->oem_id, ACPI_OEM_ID, ACPI_OEM_ID_LEN);
    memcpy(h->oem_table_id, ACPI_OEM_TABLE_ID, ACPI_OEM_TABLE_LEN);
    h->oem_revision = ACPI_OEM_REVISION;
    memcpy(h->creator_id, ACPI_CREATOR_ID, ACPI_SIGNATURE_LEN);
    h->creator_revision = ACPI_CREATOR_REV;
}

/* Set the checksum of a complete table that starts with a header at `table`. */
static void finish_table(uint8_t *table)
{
    struct acpi_header h;
    memcpy(&h, table, sizeof(h));
    table[__builtin_offsetof(struct acpi_header, checksum)] = acpi_checksum(table, h.length);
}

static struct acpi_gas io_register(uint16_t port)
{
    struct acpi_gas gas = {0};
    if (port) {
        gas.space_id = GAS_SPACE_SYSTEM_IO;
        gas.bit_width = GAS_WIDTH_8;
        gas.bit_offset = 0;
        gas.access_size = GAS_ACCESS_BYTE;
        gas.address = port;
    }
    return gas;
}

/* ---- Table builders: each writes one table at `out` ---- */

struct layout {
    size_t rsdp, xsdt, fadt, madt, mcfg, dsdt, end;
};

static void build_rsdp(uint8_t *out, uint64_t xsdt_gpa)
{
    struct acpi_rsdp rsdp = {0};
    memcpy(rsdp.signature, RSDP_SIGNATURE, sizeof(rsdp.signature));
    memcpy(rsdp.oem_id, ACPI_OEM_ID, ACPI_OEM_ID_LEN);
    rsdp.revision = RSDP_REVISION;
    rsdp.rsdt_address = 0;
    rsdp.length = sizeof(rsdp);
    rsdp.xsdt_address = xsdt_gpa;
    rsdp.checksum = acpi_checksum(&rsdp, RSDP_V1_LEN);
    rsdp.extended_checksum = acpi_checksum(&rsdp, sizeof(rsdp));
    memcpy(out, &rsdp, sizeof(rsdp));
}

/* The XSDT's size: without an MCFG it has one entry less. */
static size_t xsdt_size(const struct acpi_config *cfg)
{
    return sizeof(struct acpi_xsdt) - (cfg->mcfg_base ? 0 : sizeof(uint64_t));
}

static void build_xsdt(uint8_t *out, const struct acpi_config *cfg, uint64_t fadt_gpa,
                       uint64_t madt_gpa, uint64_t mcfg_gpa)
{
    struct acpi_xsdt xsdt = {0};
    size_t len = xsdt_size(cfg);
    fill_header(&xsdt.header, "XSDT", (uint32_t)len, XSDT_REVISION);
    xsdt.entry[XSDT_FADT] = fadt_gpa;
    xsdt.entry[XSDT_MADT] = madt_gpa;
    xsdt.entry[XSDT_MCFG] = mcfg_gpa;
    memcpy(out, &xsdt, len);
    finish_table(out);
}

static void build_mcfg(uint8_t *out, const struct acpi_config *cfg)
{
    struct acpi_mcfg mcfg = {0};
    fill_header(&mcfg.header, "MCFG", sizeof(mcfg), MCFG_REVISION);
    mcfg.base = cfg->mcfg_base;
    mcfg.segment = 0;
    mcfg.bus_start = 0;
    mcfg.bus_end = cfg->mcfg_bus_end;
    memcpy(out, &mcfg, sizeof(mcfg));
    finish_table(out);
}

static void build_fadt(uint8_t *out, const struct acpi_config *cfg, uint64_t dsdt_gpa)
{
    struct acpi_fadt fadt = {0};
    fill_header(&fadt.header, "FACP", sizeof(fadt), FADT_REVISION);
    fadt.minor_revision = FADT_MINOR_REVISION;
    /* The 32-bit pointer is optional; ACPICA prefers X_DSDT and accepts equal values. */
    fadt.dsdt = dsdt_gpa <= UINT32_MAX ? (uint32_t)dsdt_gpa : 0;
    fadt.x_dsdt = dsdt_gpa;
    fadt.flags = FADT_HW_REDUCED | FADT_PWR_BUTTON | FADT_SLP_BUTTON;
    fadt.iapc_boot_arch = IAPC_VGA_NOT_PRESENT | IAPC_CMOS_RTC_NOT_PRESENT;
    if (cfg->reset_port) {
        fadt.flags |= FADT_RESET_REG_SUP;
        fadt.reset_reg = io_register(cfg->reset_port);
        fadt.reset_value = cfg->reset_value;
    }
    fadt.sleep_control_reg = io_register(cfg->sleep_control_port);
    fadt.sleep_status_reg = io_register(cfg->sleep_status_port);
    memcpy(fadt.hypervisor_vendor_id, ACPI_HYPERVISOR_ID, sizeof(fadt.hypervisor_vendor_id));
    memcpy(out, &fadt, sizeof(fadt));
    finish_table(out);
}

/* Append one MADT entry at out + *off. */
static void madt_put(uint8_t *out, size_t *off, const void *entry, size_t len)
{
    memcpy(out + *off, entry, len);
    *off += len;
}

static void build_madt(uint8_t *out, const struct acpi_config *cfg)
{
    size_t len = MADT_SIZE(cfg->ncpus);
    struct acpi_madt madt = {0};
    fill_header(&madt.header, "APIC", (uint32_t)len, MADT_REVISION);
    madt.lapic_addr = cfg->lapic_addr;
    madt.flags = MADT_FLAGS;
    size_t off = 0;
    madt_put(out, &off, &madt, sizeof(madt));

    for (unsigned cpu = 0; cpu < cfg->ncpus; cpu++) {
        struct madt_lapic lapic = {
            .h = {MADT_TYPE_LAPIC, sizeof(lapic)},
            .processor_uid = (uint8_t)cpu,
            .apic_id = (uint8_t)cpu,
            .flags = MADT_LAPIC_ENABLED,
        };
        madt_put(out, &off, &lapic, sizeof(lapic));
    }

    struct madt_ioapic ioapic = {
        .h = {MADT_TYPE_IOAPIC, sizeof(ioapic)},
        .ioapic_id = cfg->ioapic_id,
        .address = cfg->ioapic_addr,
        .gsi_base = 0,
    };
    madt_put(out, &off, &ioapic, sizeof(ioapic));

    struct madt_iso timer = {
        .h = {MADT_TYPE_ISO, sizeof(timer)},
        .bus = MADT_ISO_BUS_ISA,
        .source = ISA_IRQ_TIMER,
        .gsi = GSI_TIMER,
        .flags = MADT_POLARITY_HIGH | MADT_TRIGGER_EDGE,
    };
    madt_put(out, &off, &timer, sizeof(timer));

    struct madt_lapic_nmi nmi = {
        .h = {MADT_TYPE_LAPIC_NMI, sizeof(nmi)},
        .processor_uid = MADT_NMI_ALL_CPUS,
        .flags = MADT_NMI_FLAGS,
        .lint = MADT_NMI_LINT1,
    };
    madt_put(out, &off, &nmi, sizeof(nmi));
    finish_table(out);
}

/* The DSDT body: \_S5 and Scope (\_SB) with the devices.  Returns false on failure. */
static bool build_dsdt_aml(struct aml *aml, const struct acpi_config *cfg)
{
    const uint64_t s5[DSDT_S5_PACKAGE_LEN] = {cfg->s5_sleep_type, 0, 0, 0};
    aml_name_package_integers(aml, "\\_S5", s5, DSDT_S5_PACKAGE_LEN);
    size_t sb = aml_scope_begin(aml, "\\_SB");
    if (cfg->describe_devices)
        cfg->describe_devices(cfg->opaque, aml);
    aml_end(aml, sb);
    if (!aml_ok(aml)) {
        fprintf(stderr, "minivmm: acpi: DSDT: %s\n", aml_error(aml));
        return false;
    }
    return true;
}

static void build_dsdt(uint8_t *out, const struct aml *aml)
{
    struct acpi_header h = {0};
    size_t len = sizeof(h) + aml_size(aml);
    fill_header(&h, "DSDT", (uint32_t)len, DSDT_REVISION);
    memcpy(out, &h, sizeof(h));
    if (aml_size(aml))
        memcpy(out + sizeof(h), aml_data(aml), aml_size(aml));
    finish_table(out);
}

static struct layout plan_layout(const struct acpi_config *cfg, size_t dsdt_body)
{
    struct layout l;
    l.rsdp = 0;
    l.xsdt = align_up(l.rsdp + sizeof(struct acpi_rsdp));
    l.fadt = align_up(l.xsdt + xsdt_size(cfg));
    l.madt = align_up(l.fadt + sizeof(struct acpi_fadt));
    l.mcfg = align_up(l.madt + MADT_SIZE(cfg->ncpus));
    l.dsdt = cfg->mcfg_base ? align_up(l.mcfg + sizeof(struct acpi_mcfg)) : l.mcfg;
    l.end = l.dsdt + sizeof(struct acpi_header) + dsdt_body;
    return l;
}

static bool config_valid(const struct acpi_config *cfg, uint64_t gpa)
{
    if (!cfg || cfg->ncpus < 1 || cfg->ncpus > ACPI_MAX_CPUS) {
        fprintf(stderr, "minivmm: acpi: vCPU count must be 1-%d\n", ACPI_MAX_CPUS);
        return false;
    }
    if (cfg->s5_sleep_type > ACPI_SLEEP_TYPE_MAX) {
        fprintf(stderr, "minivmm: acpi: S5 sleep type %u above %d\n", cfg->s5_sleep_type,
                ACPI_SLEEP_TYPE_MAX);
        return false;
    }
    if (gpa % ACPI_TABLE_ALIGN != 0) {
        fprintf(stderr, "minivmm: acpi: table address 0x%llx not %d-byte aligned\n",
                (unsigned long long)gpa, ACPI_TABLE_ALIGN);
        return false;
    }
    return true;
}

/* Lay out and write all tables around an already built DSDT body; returns bytes used or 0. */
static size_t write_tables(const struct acpi_config *cfg, uint64_t gpa, uint8_t *out, size_t size,
                           const struct aml *dsdt_body)
{
    struct layout l = plan_layout(cfg, aml_size(dsdt_body));
    if (l.end > size) {
        fprintf(stderr, "minivmm: acpi: tables need %zu bytes, only %zu available\n", l.end, size);
        return 0;
    }
    if (l.end - l.dsdt > UINT32_MAX || gpa > UINT64_MAX - l.end) {
        fprintf(stderr, "minivmm: acpi: tables too large or address out of range\n");
        return 0;
    }
    memset(out, 0, l.end); /* padding between tables */
    build_rsdp(out + l.rsdp, gpa + l.xsdt);
    build_xsdt(out + l.xsdt, cfg, gpa + l.fadt, gpa + l.madt, gpa + l.mcfg);
    build_fadt(out + l.fadt, cfg, gpa + l.dsdt);
    build_madt(out + l.madt, cfg);
    if (cfg->mcfg_base)
        build_mcfg(out + l.mcfg, cfg);
    build_dsdt(out + l.dsdt, dsdt_body);
    return l.end;
}

size_t acpi_build_tables(const struct acpi_config *cfg, uint64_t gpa, void *buf, size_t size)
{
    if (!config_valid(cfg, gpa) || !buf)
        return 0;
    struct aml aml;
    aml_init(&aml);
    size_t used = build_dsdt_aml(&aml, cfg) ? write_tables(cfg, gpa, buf, size, &aml) : 0;
    aml_release(&aml);
    return used;
}
