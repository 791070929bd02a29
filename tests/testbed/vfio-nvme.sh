# testbed-options: --nvme 1
# Scenario: a QEMU NVMe controller passed through and driven by the guest
# kernel's own nvme driver (MSI-X, queues and PRP lists in guest memory, heavy
# DMA): 256 MiB of random data written and read back with equal checksums,
# then a guest reboot (the controller is reset before anything else) and the
# same again.  What is pinned (VmLck) stays boot RAM throughout.
. /t/lib.sh

read -r bdf group <<EOF2
$(head -n 1 /testbed/nvme)
EOF2
echo "# NVMe at $bdf, IOMMU group $group"
check "the test host has an NVMe controller bound to vfio-pci" [ -n "$bdf" -a -e "/dev/vfio/$group" ]
ram_kb=$RAM_512M_KB

start_vm nvme nvme-io,vmem-agent --memory 512M --vfio "$bdf,id=nvme"
# io_done N: the guest finished its N-th write and read-back (or gave up).
io_done() { [ "$(grep -c "DISK-CHECK:\|NVME: gave up" "$out")" -ge "$1" ]; }
check "boot 1: the write and read-back finished (waited up to ${GUEST_TIMEOUT}s)" \
	wait_until "$GUEST_TIMEOUT" io_done 1
st=$(ctl status)
echo "# status: $st"
check "status: the controller runs on MSI-X (not MSI, not INTx)" \
	sh -c "echo '$st' | grep -q '\"irq\": \"msix\"'"
pinned=$(pinned_kb)
check "$PINNED ($pinned kB) is boot RAM ($ram_kb kB)" [ "${pinned:-0}" = "$ram_kb" ]
echo reboot >&3
check "boot 2: the write and read-back finished again (waited up to ${GUEST_TIMEOUT}s)" \
	wait_until "$GUEST_TIMEOUT" io_done 2
pinned=$(pinned_kb)
check "after the reboot: $PINNED ($pinned kB) is boot RAM" [ "${pinned:-0}" = "$ram_kb" ]
stop_vm
check "guest powered off, minivmm exit 0" [ "$rc" = 0 ]

tr -d '\r' <"$out" | grep "^NVME" | sed 's/^/# /'
n=0
for line in $(tr -d '\r' <"$out" | sed -n 's/^DISK-CHECK: //p' | tr ' ' '_'); do
	n=$((n + 1))
	check "boot $n: 256 MiB written and read back the same ($(echo "$line" | tr '_' ' '))" \
		[ "${line#ok_256_MiB_checksum_}" != "$line" ]
done
check "two boots wrote and read back" [ "$n" = 2 ]
vectors=$(tr -d '\r' <"$out" | sed -n 's/^NVME-MSI-VECTORS: //p' | head -n 1)
irqs=$(tr -d '\r' <"$out" | sed -n 's/^NVME-IRQS: //p' | head -n 1)
check "guest: nvme uses message-signalled vectors ($vectors) and took interrupts on them ($irqs)" \
	[ "${vectors:-0}" -ge 2 -a "${irqs:-0}" -gt 0 ]
check "test host: no DMAR fault" [ "$(dmesg | grep -c 'DMAR: \[DMA')" = 0 ]
[ "$failures" -eq 0 ] || show_output "$out"
finish
