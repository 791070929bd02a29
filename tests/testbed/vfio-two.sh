# testbed-options: --edu 2
# Scenario: two edu devices in two IOMMU groups passed through at once.  Both
# groups share the VM's one container, so boot RAM is mapped (and pinned) once;
# the guest finds both on its PCI bus, at BARs that do not overlap, and reads
# each one's ID through its own BAR.
. /t/lib.sh

set -- $(sed -n 1p /testbed/edu) $(sed -n 2p /testbed/edu)
bdf0=$1 group0=$2 bdf1=$3 group1=$4
echo "# edu at $bdf0 (group $group0) and $bdf1 (group $group1)"
check "two edu in two groups" [ -n "$bdf1" -a "$group0" != "$group1" ]
ram_kb=$RAM_512M_KB

start_vm two pci-edu,vmem-agent --memory 512M --vfio "$bdf0" --vfio "$bdf1,id=second"
booted() { grep -q "BOOTED" "$out"; }
check "guest booted with two devices passed through (waited up to ${GUEST_TIMEOUT}s)" \
	wait_until "$GUEST_TIMEOUT" booted
pinned=$(pinned_kb)
check "$PINNED ($pinned kB) is boot RAM once ($ram_kb kB), not once per group" [ "${pinned:-0}" = "$ram_kb" ]
st=$(ctl status)
echo "# status: $st"
check "status lists vfio0 and second" \
	sh -c "echo '$st' | grep -q '\"id\": \"vfio0\", \"bdf\": \"$bdf0\", \"iommu_group\": $group0' &&
		echo '$st' | grep -q '\"id\": \"second\", \"bdf\": \"$bdf1\", \"iommu_group\": $group1'"
stop_vm
check "guest powered off, minivmm exit 0" [ "$rc" = 0 ]
each=$(tr -d '\r' <"$out" | grep "^EDU-EACH: ")
echo "$each" | sed 's/^/# /'
check "guest: two edu, each ID 0x010000ED through its own BAR" \
	[ "$(echo "$each" | grep -c " 0x010000ED$")" = 2 ]
check "guest: their BARs differ" [ "$(echo "$each" | awk '{print $3}' | sort -u | wc -l)" = 2 ]
check "guest: no 'PCI: Fatal' line" grep -q "^PCI-FATAL: 0" "$out"
check "test host: no DMAR fault" [ "$(dmesg | grep -c 'DMAR: \[DMA')" = 0 ]
[ "$failures" -eq 0 ] || show_output "$out"
finish
