#!/usr/bin/env python3
"""mkseeds.py - write the seed corpora in tests/fuzz/corpus/<target>/.

Run from the repository root: python3 tests/fuzz/mkseeds.py.  Each seed
follows the input format described at the top of its target's .c file; the
generated files are checked in, so this only needs running again when a
format changes.
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
MiB = 1 << 20


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def desc(addr, length, flags, nxt):
    return struct.pack("<QIHH", addr, length, flags, nxt)


def mem_req(typ, addr, nb):
    return struct.pack("<H6xQH6x", typ, addr, nb)


# --- fuzz_virtqueue: [geometry][ops][memory image] -----------------------------
def virtqueue_seed(chains, ops, mask=0x0F, log2size=3, last_avail=0, avail_idx=None):
    size = 1 << log2size
    geo = struct.pack("<B", log2size)
    for off in (0x0000, 0x1000, 0x2000):  # desc, avail, used in RAM
        geo += struct.pack("<BH", 0, off)
    geo += struct.pack("<HHBB", last_avail, 0, mask, len(ops))
    opb = b"".join(struct.pack("<BB", k, a) for k, a in ops)
    ram = bytearray(0x4000)
    d = 0
    heads = []
    for chain in chains:
        heads.append(d)
        for i, (addr, length, write_) in enumerate(chain):
            last = i == len(chain) - 1
            flags = (0 if last else 1) | (2 if write_ else 0)
            ram[16 * d:16 * d + 16] = desc(addr, length, flags, 0 if last else d + 1)
            d += 1
    idx = len(heads) if avail_idx is None else avail_idx
    ram[0x1000:0x1004] = struct.pack("<HH", 0, idx)
    for i, h in enumerate(heads):
        slot = (last_avail + i) % size
        ram[0x1004 + 2 * slot:0x1006 + 2 * slot] = struct.pack("<H", h)
    req = mem_req(0, 4 << 30, 2)
    ram[0x3000:0x3000 + len(req)] = req
    return geo + opb + bytes(ram).rstrip(b"\0")


write("fuzz_virtqueue", "plug-request",
      virtqueue_seed([[(0x3000, 24, False), (0x3100, 10, True)]], [(0, 0x11), (4, 0), (5, 0)]))
write("fuzz_virtqueue", "three-chains-pop-all",
      virtqueue_seed([[(0x3000, 24, False), (0x3100, 10, True)],
                      [(0x3000, 8, False), (0x3008, 16, False), (0x3200, 10, True)],
                      [(0x3300, 4, True)]], [(7, 0x23), (6, 1), (1, 0)]))
write("fuzz_virtqueue", "gated-buffers",
      virtqueue_seed([[(0x100000, 24, False), (0x101000, 0x800, True)]],
                     [(2, 1), (0, 0xf0), (2, 1), (0, 0x0f)]))
write("fuzz_virtqueue", "wrapping-index",
      virtqueue_seed([[(0x3000, 24, False), (0x3100, 10, True)]], [(0, 0x31), (3, 0)],
                     last_avail=0xFFFF, avail_idx=0))
# A descriptor whose NEXT links back to itself.
write("fuzz_virtqueue", "loop",
      virtqueue_seed([[(0x3000, 24, False)]], [(0, 1)]).replace(desc(0x3000, 24, 0, 0),
                                                                desc(0x3000, 24, 1, 0), 1))


# --- fuzz_virtio_mmio: u8 geometry, 8-byte steps -------------------------------
def mmio_rd(reg, width=4):
    return struct.pack("<BBHI", 0, {1: 0, 2: 1, 4: 2, 8: 3}[width], reg // 4, 0)


def mmio_wr(reg, value):
    return struct.pack("<BBHI", 0, 2 | 4, reg // 4, value)


def ram_wr32(off, value):
    return struct.pack("<BBHI", 4, 2, off, value)


def linux_init(features_lo=2):
    s = b"".join(mmio_rd(r) for r in (0x000, 0x004, 0x008, 0x00c))
    s += mmio_wr(0x070, 0) + mmio_wr(0x070, 1) + mmio_wr(0x070, 3)
    s += mmio_wr(0x014, 1) + mmio_rd(0x010) + mmio_wr(0x014, 0) + mmio_rd(0x010)
    s += mmio_wr(0x024, 1) + mmio_wr(0x020, 1) + mmio_wr(0x024, 0) + mmio_wr(0x020, features_lo)
    s += mmio_wr(0x070, 0xb) + mmio_rd(0x070)
    s += mmio_wr(0x030, 0) + mmio_rd(0x034) + mmio_wr(0x038, 8)
    s += mmio_wr(0x080, 0x100000) + mmio_wr(0x084, 0)
    s += mmio_wr(0x090, 0x101000) + mmio_wr(0x094, 0)
    s += mmio_wr(0x0a0, 0x102000) + mmio_wr(0x0a4, 0)
    s += mmio_wr(0x044, 1) + mmio_wr(0x070, 0xf)
    s += struct.pack("<BBHI", 0, 3 | 8, 0x100, 0)  # 8-byte config read at 0x100
    return s


def ram_bytes(off, data):
    data = data + b"\0" * (-len(data) % 4)
    return b"".join(ram_wr32(off + i, struct.unpack_from("<I", data, i)[0])
                    for i in range(0, len(data), 4))


def mmio_request(slot, req, avail_idx):
    """Request chain `slot` (descriptors 2*slot, 2*slot+1), published as avail entry slot."""
    base = 0x3000 + 0x100 * slot
    s = ram_bytes(base, req)
    s += ram_bytes(0x20 * slot, desc(0x100000 + base, 24, 1, 2 * slot + 1))
    s += ram_bytes(0x20 * slot + 16, desc(0x100000 + base + 0x80, 10, 2, 0))
    s += struct.pack("<BBHI", 4, 1, 0x1004 + 2 * slot, 2 * slot)  # avail ring entry (16-bit)
    s += struct.pack("<BBHI", 4, 1, 0x1002, avail_idx)  # avail idx (16-bit)
    s += mmio_wr(0x050, 0) + struct.pack("<BBHI", 5, 0, 0, 0)  # notify, run the loop
    s += mmio_rd(0x060) + mmio_wr(0x064, 1)
    return s


geo = 0x01 | (3 << 2)  # 1 MiB blocks, large mapping budget, nothing requested
resize4 = struct.pack("<BBHI", 6, 0, 4, 0)
write("fuzz_virtio_mmio", "linux-init", bytes([geo]) + linux_init())
write("fuzz_virtio_mmio", "init-resize-plug",
      bytes([geo]) + linux_init() + resize4 + mmio_request(0, mem_req(0, 4 << 30, 2), 1))
write("fuzz_virtio_mmio", "plug-state-unplug",
      bytes([geo]) + linux_init() + resize4 + mmio_request(0, mem_req(0, 4 << 30, 2), 1) +
      mmio_request(1, mem_req(3, 4 << 30, 4), 2) + mmio_request(2, mem_req(1, 4 << 30, 1), 3) +
      mmio_request(3, mem_req(2, 0, 0), 4))
write("fuzz_virtio_mmio", "no-unplugged-inaccessible-reset",
      bytes([geo]) + linux_init(features_lo=0) + resize4 +
      mmio_request(0, mem_req(0, 4 << 30, 4), 1) + struct.pack("<BBHI", 7, 1, 0, 0) +
      linux_init())


# --- fuzz_virtio_mem: u8 geometry, 8-byte steps {op, a, b, c} -------------------
def vm_step(op, a=0, b=0, c=0):
    return struct.pack("<BBHI", op, a, b, c)


def vm_req(typ, block, nb):
    return vm_step(0, typ | (nb << 2), block, 0)


geo = 0x01 | (3 << 2) | (4 << 4)  # 1 MiB blocks, 4 MiB requested
write("fuzz_virtio_mem", "plug-unplug",
      bytes([geo]) + vm_step(6, 1) + vm_req(0, 0, 2) + vm_req(3, 0, 4) + vm_req(1, 1, 1) +
      vm_step(7))
write("fuzz_virtio_mem", "populate-refused",
      bytes([geo]) + vm_step(4, 1, 0, 0) + vm_req(0, 0, 2) + vm_req(0, 0, 2))
write("fuzz_virtio_mem", "populate-kept-then-plug",
      bytes([geo]) + vm_step(4, 1, 0, 1) + vm_req(0, 2, 2) + vm_req(0, 2, 2) + vm_req(1, 2, 2))
write("fuzz_virtio_mem", "discard-refused-replug",
      bytes([geo]) + vm_req(0, 0, 3) + vm_step(4, 0, 1, 0) + vm_req(1, 1, 1) + vm_req(0, 1, 1) +
      vm_req(2, 0, 0))
write("fuzz_virtio_mem", "resize-shrink-reset",
      bytes([geo]) + vm_step(3, 0, 12) + vm_req(0, 0, 8) + vm_step(3, 0, 2) + vm_step(3, 1, 3) +
      vm_step(5, 1) + vm_req(0, 0, 1))
write("fuzz_virtio_mem", "small-mapping-budget",
      bytes([0x00 | (0 << 2) | (8 << 4)]) + b"".join(vm_req(0, 2 * i, 1) for i in range(6)))


# --- fuzz_vfio_cfg ------------------------------------------------------------
def vfio_seed(ops, msix=True):
    s = b""
    decl = [(2, 16), (1, 6), (3 | 4, 10), (0, 0), (0, 0), (0, 0)]  # 1M mem32, 256 io, 16K mem64
    for k, lg in decl:
        s += struct.pack("<BB", k, lg)
    s += struct.pack("<6I", 0xc0000000, 0xc000, 0xc0100, 0, 0, 0)
    s += struct.pack("<BI", 1 | (4 << 1), 0xc0200000)
    s += struct.pack("<B", len(ops)) + b"".join(struct.pack("<BBHI", *o) for o in ops)
    cfg = bytearray(4096)
    struct.pack_into("<IHH", cfg, 0, 0x11e81234, 0, 0x10)  # id, command, status: cap list
    struct.pack_into("<IIII", cfg, 0x10, 0xfe800000, 0xc001, 0xfd00000c, 0x1)
    cfg[0x34] = 0x40
    cfg[0x3d] = 1
    struct.pack_into("<BBHH", cfg, 0x40, 0x01, 0x50, 0x3, 0)  # PM
    struct.pack_into("<BBH", cfg, 0x50, 0x05, 0x70 if msix else 0, 0x80 | 0x100 | (2 << 1))
    if msix:
        struct.pack_into("<BBHII", cfg, 0x70, 0x11, 0, 7, 0x2000 | 2, 0x3000 | 2)
    return s + bytes(cfg[:0x100])


W, R = 1, 0
write("fuzz_vfio_cfg", "bar-sizing",
      vfio_seed([(W, 2, 0x10, 0xffffffff), (R, 2, 0x10, 0), (W, 2, 0x18, 0xffffffff),
                 (W, 2, 0x1c, 0xffffffff), (R, 2, 0x18, 0), (W, 2, 0x10, 0xd0000000),
                 (W, 1, 0x04, 0x7), (R, 2, 0x30, 0), (W, 2, 0x30, 0xffffffff),
                 (W, 2, 0x30, 0xc0200001)]))
write("fuzz_vfio_cfg", "msi-enable",
      vfio_seed([(W, 2, 0x54, 0xfee00000), (W, 2, 0x58, 0), (W, 1, 0x5c, 0x4041),
                 (W, 1, 0x52, 0x21), (R, 2, 0x50, 0), (W, 2, 0x60, 0xf), (3, 0, 0, 0)]))
write("fuzz_vfio_cfg", "msix-and-pm",
      vfio_seed([(W, 1, 0x72, 0xc000), (R, 2, 0x70, 0), (W, 1, 0x44, 3), (W, 1, 0x44, 0),
                 (W, 1, 0x72, 0x8000), (W, 2, 0x04, 0xffff0006)]))
write("fuzz_vfio_cfg", "no-msix", vfio_seed([(R, 2, 0x50, 0), (W, 0, 0x3c, 10)], msix=False))

# --- fuzz_ctl_parse -------------------------------------------------------------
for name, line in [("resize-id", "resize mem0 1G"), ("resize", "resize 1536M"),
                   ("status", "status"), ("shutdown", "  shutdown  "),
                   ("resize-swapped", "resize 4G mem0"), ("resize-hex", "resize mem.1 0x40000000"),
                   ("bad", "Resize mem0 1.5G extra")]:
    write("fuzz_ctl_parse", name, line.encode())


# --- fuzz_cmdline ---------------------------------------------------------------
def argv(*args):
    return b"\0".join(a.encode() for a in args)


write("fuzz_cmdline", "minimal", argv("--kernel", "bzImage"))
write("fuzz_cmdline", "full",
      argv("--kernel", "/boot/vmlinuz", "--initrd", "initrd.img", "--cmdline",
           "console=ttyS0 quiet", "--memory", "1.5G", "--cpus", "2", "--console", "none",
           "--no-reboot", "--virtio-mem",
           "size=4G,id=mem0,block-size=2M,requested=1G,backend=memfd,prealloc=on",
           "--virtio-mem", "size=1G,addr=0x200000000", "--virtio-mmio-cmdline",
           "--vfio", "0000:01:00.0,id=edu,rom=on,iommu=iommufd", "--api-socket", "/tmp/m.sock",
           "--verbose"))
write("fuzz_cmdline", "equals-forms",
      argv("--kernel=bz", "--memory=512", "--virtio-mem=size=256M,block-size=4K",
           "--vfio=01:00.0", "--console=file=/tmp/log"))
write("fuzz_cmdline", "errors", argv("--kernel", "--memory", "1G", "-x", "--mem", "33554433B"))
write("fuzz_cmdline", "hugetlbfs",
      argv("--kernel", "k", "--virtio-mem", "size=2G,backend=hugetlbfs=/dev/hugepages"))
write("fuzz_cmdline", "help", argv("--help"))


# --- fuzz_bzimage: tests/tools/mkbzimage.c's image -------------------------------
def bzimage(version=0x020F, xload=1, loadflags=1, pref=0x100000, init=4096, kernel=4096):
    setup_sects = 4
    img = bytearray((setup_sects + 1) * 512 + kernel)
    hdr_len = 0x7B  # struct setup_header up to and including kernel_info_offset
    img[0x1F1] = setup_sects
    struct.pack_into("<H", img, 0x1FE, 0xAA55)
    img[0x200] = 0xEB
    img[0x201] = 0x1F1 + hdr_len - 0x202
    struct.pack_into("<I", img, 0x202, 0x53726448)  # "HdrS"
    struct.pack_into("<H", img, 0x206, version)
    img[0x211] = loadflags
    struct.pack_into("<I", img, 0x22C, 0x7FFFFFFF)  # initrd_addr_max
    struct.pack_into("<H", img, 0x236, xload)  # xloadflags
    struct.pack_into("<I", img, 0x238, 255)  # cmdline_size
    struct.pack_into("<Q", img, 0x258, pref)  # pref_address
    struct.pack_into("<I", img, 0x260, init)  # init_size
    img[(setup_sects + 1) * 512 + 0x200:(setup_sects + 1) * 512 + 0x202] = b"\x0f\x0b"
    return bytes(img)


write("fuzz_bzimage", "minimal", bzimage())
write("fuzz_bzimage", "high-pref-address", bzimage(pref=0x1000000, init=0x200000))
write("fuzz_bzimage", "old-protocol", bzimage(version=0x0206))
write("fuzz_bzimage", "32-bit", bzimage(xload=0))
write("fuzz_bzimage", "elf", b"\x7fELF" + bytes(60))
