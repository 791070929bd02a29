/*
 * virtio_spec.h - virtio wire values for the unit tests, written out from
 * VIRTIO 1.2 (and shared/docs/virtio-mem-and-vfio.md) on purpose instead of
 * being taken from the devices' headers: a wrong constant there shows up in
 * the tests.  Included by the tests of the virtqueue, the virtio-mmio
 * transport and the virtio-mem device.
 */
#ifndef MINIVMM_TESTS_VIRTIO_SPEC_H
#define MINIVMM_TESTS_VIRTIO_SPEC_H

/* ---- virtio-mmio registers (§4.2.2) ---- */
#define REG_MAGIC           0x000
#define REG_VERSION         0x004
#define REG_DEVICE_ID       0x008
#define REG_VENDOR_ID       0x00c
#define REG_DEVICE_FEATURES 0x010
#define REG_DEVICE_FEAT_SEL 0x014
#define REG_DRIVER_FEATURES 0x020
#define REG_DRIVER_FEAT_SEL 0x024
#define REG_QUEUE_SEL       0x030
#define REG_QUEUE_NUM_MAX   0x034
#define REG_QUEUE_NUM       0x038
#define REG_QUEUE_READY     0x044
#define REG_QUEUE_NOTIFY    0x050
#define REG_INT_STATUS      0x060
#define REG_INT_ACK         0x064
#define REG_STATUS          0x070
#define REG_QUEUE_DESC_LO   0x080
#define REG_QUEUE_DESC_HI   0x084
#define REG_QUEUE_DRIVER_LO 0x090
#define REG_QUEUE_DRIVER_HI 0x094
#define REG_QUEUE_DEVICE_LO 0x0a0
#define REG_QUEUE_DEVICE_HI 0x0a4
#define REG_SHM_SEL         0x0ac
#define REG_SHM_LEN_LO      0x0b0
#define REG_SHM_LEN_HI      0x0b4
#define REG_SHM_BASE_LO     0x0b8
#define REG_SHM_BASE_HI     0x0bc
#define REG_QUEUE_RESET     0x0c0
#define REG_CONFIG_GEN      0x0fc
#define REG_CONFIG          0x100

#define MAGIC_VIRT 0x74726976u /* "virt" */

/* ---- device status (§2.1) and interrupt status bits (§4.2.2) ---- */
#define ST_ACK         1u
#define ST_DRIVER      2u
#define ST_DRIVER_OK   4u
#define ST_FEATURES_OK 8u
#define ST_NEEDS_RESET 64u
#define ST_FAILED      128u

#define INT_USED   1u
#define INT_CONFIG 2u

#define F_VERSION_1_HIGH 1u /* VIRTIO_F_VERSION_1 (bit 32) in the high feature word */

/* ---- split virtqueue layout (§2.7) ---- */
#define D_SIZE      16 /* descriptor: addr@0, len@8, flags@12, next@14 */
#define D_ADDR      0
#define D_LEN       8
#define D_FLAGS     12
#define D_NEXT      14
#define F_NEXT      1
#define F_WRITE     2
#define F_INDIRECT  4
#define A_FLAGS     0 /* available ring: flags@0, idx@2, ring@4 */
#define A_IDX       2
#define A_RING      4
#define A_NO_INTR   1
#define U_IDX       2 /* used ring: flags@0, idx@2, ring@4 of 8-byte elements */
#define U_RING      4
#define U_ELEM_SIZE 8

/* ---- virtio-mem (§5.15) ---- */
#define DEVICE_ID_MEM            24
#define F_UNPLUGGED_INACCESSIBLE (1u << 1) /* VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE */
#define REQ_PLUG                 0
#define REQ_UNPLUG               1
#define REQ_UNPLUG_ALL           2
#define REQ_STATE                3
#define RESP_ACK                 0
#define RESP_NACK                1
#define RESP_BUSY                2
#define RESP_ERROR               3
#define S_PLUGGED                0
#define S_UNPLUGGED              1
#define S_MIXED                  2
#define REQ_LEN                  24 /* type@0, padding@2, addr@8, nb_blocks@16, padding@18 */
#define RESP_LEN                 10 /* type@0, padding@2, state@8 */

/* struct virtio_mem_config offsets (doc §2.2) */
#define CFG_BLOCK_SIZE  0x00
#define CFG_NODE_ID     0x08
#define CFG_ADDR        0x10
#define CFG_REGION_SIZE 0x18
#define CFG_USABLE      0x20
#define CFG_PLUGGED     0x28
#define CFG_REQUESTED   0x30

#endif
