# testbed-options: --edu 0 --shared-group
# Scenario: two edu behind a PCI bridge, in one IOMMU group.  With one of them
# bound to another driver the group is not viable: --vfio of the other is
# refused with one line naming the culprit and the commands that fix it.
# Once both are on vfio-pci, both pass through together (one group in the
# container, two devices) and the guest reads each one's ID.
. /t/lib.sh

set -- $(sed -n 1p /testbed/edu) $(sed -n 2p /testbed/edu)
bdf0=$1 group=$2 bdf1=$3
echo "# edu at $bdf0 and $bdf1, both in IOMMU group $group"
check "two edu in one group" [ -n "$bdf1" -a "$group" = "$4" ]

# Give the second one to uio_pci_generic.
echo "$bdf1" >/sys/bus/pci/drivers/vfio-pci/unbind
echo uio_pci_generic >"/sys/bus/pci/devices/$bdf1/driver_override"
echo "$bdf1" >/sys/bus/pci/drivers_probe
check "$bdf1 is bound to uio_pci_generic" [ -e "/sys/bus/pci/drivers/uio_pci_generic/$bdf1" ]
msg=$(minivmm --kernel "$KERNEL" --vfio "$bdf0" 2>&1)
rc=$?
echo "# foreign driver in the group: $msg"
check "group with a foreign driver: exit 2" [ "$rc" = 2 ]
check "group with a foreign driver: one line naming the device, its driver and the fix" \
	sh -c "[ \$(echo '$msg' | wc -l) = 1 ] && echo '$msg' | grep -qF 'IOMMU group $group is not viable: it also holds $bdf1, bound to uio_pci_generic; rebind that device too (or pass it through as well): echo $bdf1 > /sys/bus/pci/devices/$bdf1/driver/unbind; echo vfio-pci > /sys/bus/pci/devices/$bdf1/driver_override; echo $bdf1 > /sys/bus/pci/drivers_probe'"

# Follow the advice.
echo "$bdf1" >"/sys/bus/pci/devices/$bdf1/driver/unbind"
echo vfio-pci >"/sys/bus/pci/devices/$bdf1/driver_override"
echo "$bdf1" >/sys/bus/pci/drivers_probe
check "$bdf1 is back on vfio-pci" [ -e "/sys/bus/pci/drivers/vfio-pci/$bdf1" ]

run_guest group pci-edu --memory 512M --vfio "$bdf0" --vfio "$bdf1"
check "both devices of the group passed through: guest ran, exit 0" [ "$rc" = 0 ]
each=$(sed -n 's/^[0-9.]* EDU-EACH: //p' "$out")
echo "$each" | sed 's/^/# /'
check "guest: two edu, each ID 0x010000ED through its own BAR" \
	[ "$(echo "$each" | grep -c " 0x010000ED$")" = 2 ]
check "test host: no DMAR fault" [ "$(dmesg | grep -c 'DMAR: \[DMA')" = 0 ]
[ "$failures" -eq 0 ] || show_output "$out"
finish
