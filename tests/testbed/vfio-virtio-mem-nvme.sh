# testbed-options: --nvme 1
# testbed-hosts: debian iommufd
# Scenario: an NVMe controller passed through, driven by the guest kernel's
# own nvme driver, while virtio-mem resizes 512M -> 1536M -> 256M under it:
# the guest writes and reads back pseudo-random data through the disk
# (O_DIRECT, so every byte is device DMA, much of it from and to plugged
# virtio-mem memory) again and again during the resizes.  Every read-back
# equals what was written, no DMAR fault, and the pinned memory (VmLck with
# type1, VmPin with iommufd: the scenario runs on both test hosts) follows
# plugged_size at each step.
. /t/lib.sh

read -r bdf group <<EOF2
$(head -n 1 /testbed/nvme)
EOF2
echo "# NVMe at $bdf, IOMMU group $group"
check "the test host has an NVMe controller bound to vfio-pci" [ -n "$bdf" -a -e "/dev/vfio/$group" ]

start_vm nvme-vmem vmem-agent --memory 512M --virtio-mem size=4G,requested=512M \
	--vfio "$bdf,id=nvme"
booted() { grep -q "BOOTED" "$out"; }
check "guest booted (waited up to ${GUEST_TIMEOUT}s for BOOTED)" wait_until "$GUEST_TIMEOUT" booted
end_if_failed
vfio_step 512 nvme
guest_run disk 'i=0; while [ ! -b /dev/nvme0n1 ] && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done; ls /dev/nvme0n1'
has_disk() { echo "$ran" | grep -q '^/dev/nvme0n1'; }
check "the guest has /dev/nvme0n1" has_disk

# Disk I/O in a loop in the background of the guest, until /tmp/stop-io exists.
echo 'run (n=0; while [ ! -e /tmp/stop-io ]; do n=$((n + 1)); disk-check /dev/nvme0n1 128 $n; done; echo "IO-STOPPED: $n rounds") &' >&3
io_rounds() { [ "$(grep -c "^DISK-CHECK:" "$out")" -ge "$1" ]; }
check "the disk I/O runs (waited up to 180 s for its first round)" wait_until 180 io_rounds 1
ctl resize 1536M >/dev/null
vfio_step 1536 nvme
ctl resize 256M >/dev/null
vfio_step 256 nvme
rounds=$(grep -c "^DISK-CHECK:" "$out")
check "the I/O went on during the resizes (another round after them, waited up to 180 s)" \
	wait_until 180 io_rounds $((rounds + 1))
echo 'run touch /tmp/stop-io' >&3
stopped() { grep -q "^IO-STOPPED:" "$out"; }
check "the I/O loop stopped (waited up to 180 s)" wait_until 180 stopped
total=$(grep -c "^DISK-CHECK:" "$out")
good=$(grep -c "^DISK-CHECK: ok 128 MiB" "$out")
echo "# $(grep "^IO-STOPPED:" "$out"); $good of $total read-backs equal"
grep "^DISK-CHECK:" "$out" | sed 's/^/# /'
check "every read-back equals what was written ($good of $total, at least 3)" \
	[ "$good" = "$total" -a "$total" -ge 3 ]
check "no 'broken' virtio-mem device in the guest log" [ -z "$(grep -i 'broken' "$out")" ]
stop_vm
check "guest powered off, minivmm exit 0" [ "$rc" = 0 ]
check "test host: no DMAR fault" [ "$(dmesg | grep -c 'DMAR: \[DMA')" = 0 ]
[ "$failures" -eq 0 ] || show_output "$out"
finish
