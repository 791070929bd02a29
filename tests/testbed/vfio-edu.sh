# testbed-hosts: debian iommufd
# Scenario: QEMU's edu device passed through with --vfio.  The stock Debian
# guest enumerates minivmm's PCI host and the device; guest userspace reads
# the ID register through the BAR (a memslot of the VFIO mmap) and, where the
# guest tool is in the image, raises the interrupt and runs a DMA round trip.
# On the host side: boot RAM, and nothing else, is pinned (VmLck with type1,
# VmPin with iommufd: the scenario runs on both test hosts), the control
# socket reports the device, and each start-up refusal gives its one line and
# exit status 2 - unbound device, low ulimit -l - and an unprivileged user
# with access to /dev/kvm and the group (or /dev/iommu and the device's cdev)
# runs it.
. /t/lib.sh

read -r bdf group <<EOF
$(head -n 1 /testbed/edu)
EOF
echo "# edu at $bdf, IOMMU group $group"
check "the test host has an edu bound to vfio-pci" [ -n "$bdf" -a -e "/dev/vfio/$group" ]

# RAM regions the guest gets for --memory 512M: 640 KiB below the legacy hole
# and 1 MiB - 512 MiB; everything else of the 512 MiB backs the ACPI area.
ram_kb=$RAM_512M_KB

start_vm edu pci-edu,vmem-agent --memory 512M --vfio "$bdf,id=edu0"
booted() { grep -q "BOOTED" "$out"; }
check "guest booted with edu passed through (waited up to ${GUEST_TIMEOUT}s for BOOTED)" \
	wait_until "$GUEST_TIMEOUT" booted
pinned=$(pinned_kb)
check "$PINNED of minivmm ($pinned kB) is boot RAM's RAM ranges ($ram_kb kB), to the kB" \
	[ "${pinned:-0}" = "$ram_kb" ]
check "$UNPINNED of minivmm stays 0" [ "$(status_kb "$UNPINNED")" = 0 ]
st=$(ctl status)
echo "# status: $st"
field() { echo "$st" | tr ',{}' '\n\n\n' | sed -n "s/^ *\"$1\": *\"*\([^\"]*\)\"*$/\1/p" | head -n 1; }
check "status: vfio device edu0 at $bdf" [ "$(field id)" = edu0 -a "$(field bdf)" = "$bdf" ]
check "status: iommu $IOMMU, group $group" [ "$(field iommu)" = "$IOMMU" -a "$(field iommu_group)" = "$group" ]
check "status: dma_mapped_bytes = $ram_kb kB in 2 mappings" \
	[ "$(field dma_mapped_bytes)" = $((ram_kb * 1024)) -a "$(field dma_mappings)" = 2 ]
check "status: pinned_bytes is $PINNED" \
	[ "$(field pinned_bytes)" = $((pinned * 1024)) -a "$(field pinned_counter)" = "$PINNED" ]
if [ "$IOMMU" = type1 ]; then
	check "status: dma_avail below 65535 by the 2 mappings" [ "$(field dma_avail)" = 65533 ]
else
	check "status: no dma_avail (iommufd has no entry limit); rlimit_mode user" \
		[ -z "$(field dma_avail)" -a "$(field rlimit_mode)" = user ]
fi

# A guest reboot: the device is quiesced and reset, boot RAM stays mapped, and
# the next boot finds the device again.
echo reboot >&3
booted_twice() { [ "$(grep -c "BOOTED" "$out")" -ge 2 ]; }
check "guest rebooted and booted again (waited up to ${GUEST_TIMEOUT}s for a second BOOTED)" \
	wait_until "$GUEST_TIMEOUT" booted_twice
check "after the reboot: the ID register reads 0x010000ED again" \
	[ "$(tr -d '\r' <"$out" | grep -c "^EDU-ID-DEVMEM: 0x010000ED")" = 2 ]
pinned=$(pinned_kb)
check "after the reboot: $PINNED is still boot RAM ($pinned kB)" [ "${pinned:-0}" = "$ram_kb" ]
check "status: boots 2" status_is boots 2
stop_vm
check "guest powered off, minivmm exit 0" [ "$rc" = 0 ]
# raw_value KEY: the first "KEY: value" line of the console ($out has no uptime prefix).
raw_value() { tr -d '\r' <"$out" | sed -n "s/^$1: //p" | head -n 1; }

check "guest: no 'PCI: Fatal' line" [ "$(raw_value PCI-FATAL)" = 0 ]
check "guest: every BAR assigned" [ "$(raw_value PCI-BAR-FAILED)" = 0 ]
check "guest: the host bridge at 00:00.0" \
	grep -q "PCI-DEV: 0000:00:00.0 0x1b36:0x0008 class=0x060000" "$out"
check "guest: edu is 1234:11e8" [ -n "$(raw_value EDU-BDF)" ]
check "guest: edu BAR0 is 1 MiB" [ "$(raw_value EDU-BAR0-SIZE)" = $((1024 * 1024)) ]
check "guest: the ID register reads 0x010000ED through the BAR" \
	[ "$(raw_value EDU-ID-DEVMEM)" = 0x010000ED ]
check "guest: the inverter register inverts (the device, not a copy, answers)" \
	[ "$(raw_value EDU-INVERTED)" = 0xEDCBA987 ]
check "guest tool: ID through BAR0" [ "$(raw_value EDU-ID)" = 0x010000ed ]
check "guest tool: 5 of 5 INTx interrupts reach the guest (uio_pci_generic)" \
	grep -q "^EDU-IRQ: 5 of 5" "$out"
check "guest tool: DMA round trip RAM -> edu -> RAM" grep -q "EDU-DMA: ok" "$out"
check "test host: the DMA raised no DMAR fault" [ "$(dmesg | grep -c 'DMAR: \[DMA')" = 0 ]
[ "$failures" -eq 0 ] || show_output "$out"

# The expansion ROM: hidden unless rom=on, then read by the guest through the
# ROM BAR (trapped; the test host gave the first edu a ROM).
run_guest rom pci-rom --memory 512M --vfio "$bdf,rom=on"
check "rom=on: guest ran, exit 0" [ "$rc" = 0 ]
check "rom=on: the guest reads the ROM signature 55aa" [ "$(value EDU-ROM-SIGNATURE "$out")" = 55aa ]
check "rom=on: the guest reads the ROM's text" [ "$(value EDU-ROM "$out")" = MINIVMM-TEST-ROM ]
run_guest norom pci-rom --memory 512M --vfio "$bdf"
check "without rom=on the guest sees no ROM" [ "$(value EDU-ROM "$out")" = none ]
[ "$failures" -eq 0 ] || show_output "$out"

# MSI: guest userspace programs edu's MSI capability (vector 0x33, which no
# driver owns) and raises the interrupt three times; each message must reach
# the guest's local APIC, where the kernel reports a vector without handler.
run_guest msi edu-msi --memory 512M --vfio "$bdf"
set -- $(value MSI-SPURIOUS "$out")
msi_arrived() { [ -n "$2" ] && [ $(($2 - $1)) = 3 ] && grep -q "MSI-LINE: .* 0\.51 No irq handler" "$out"; }
check "MSI: 3 interrupts raised, 3 messages arrived on vector 0x33 (${1:-?} -> ${2:-?})" \
	msi_arrived "$@"
[ "$failures" -eq 0 ] || show_output "$out"

# --- start-up refusals, for real ---

# An edu that is not bound to vfio-pci.
echo "$bdf" >/sys/bus/pci/drivers/vfio-pci/unbind
msg=$(minivmm --kernel "$KERNEL" --vfio "$bdf" 2>&1)
rc=$?
echo "# unbound: $msg"
check "unbound device: exit 2" [ "$rc" = 2 ]
# one_line_with TEXT: $msg is a single line that contains TEXT.
one_line_with() { [ "$(echo "$msg" | wc -l)" = 1 ] && echo "$msg" | grep -qF "$1"; }
check "unbound device: one line naming the device and the bind commands" one_line_with \
	"$bdf: the device is bound to no driver; bind it to vfio-pci: modprobe vfio-pci; echo vfio-pci > /sys/bus/pci/devices/$bdf/driver_override"
echo "$bdf" >/sys/bus/pci/drivers_probe
check "rebound to vfio-pci" [ -e "/sys/bus/pci/drivers/vfio-pci/$bdf" ]

# A device that does not exist.
msg=$(minivmm --kernel "$KERNEL" --vfio 0000:00:1f.6 2>&1)
rc=$?
check "missing device: exit 2 and one line" [ "$rc" = 2 -a "$(echo "$msg" | wc -l)" = 1 ]

# An unprivileged user: no CAP_IPC_LOCK, so RLIMIT_MEMLOCK counts.
echo "tester:x:1000:1000::/tmp:/bin/sh" >>/etc/passwd
echo "tester:x:1000:" >>/etc/group
give_device 1000 "$bdf" "$group"
# as_tester CMD: run CMD (a shell command line) as the user tester (busybox su; root needs no password).
as_tester() { su -s /bin/sh -c "$1" tester; }
check "as_tester runs as uid 1000 without CAP_IPC_LOCK" \
	[ "$(as_tester 'id -u; grep CapEff /proc/self/status')" = "$(printf '1000\nCapEff:\t0000000000000000')" ]
msg=$(
	ulimit -l 8192
	as_tester "minivmm --kernel $KERNEL --memory 512M --vfio $bdf" 2>&1
)
rc=$?
echo "# low memlock: $msg"
check "ulimit -l 8192 as a user: exit 2" [ "$rc" = 2 ]
check "ulimit -l 8192 as a user: one line naming the limit and the ulimit -l needed" \
	one_line_with "RLIMIT_MEMLOCK 8 MiB is below the 511.6 MiB of boot RAM that --vfio must pin; raise it with ulimit -l $ram_kb"
(
	ulimit -l $((ram_kb + 1024))
	t0=$(uptime_s)
	timeout -k 10 "$GUEST_TIMEOUT" su -s /bin/sh -c "minivmm --kernel $KERNEL --initrd $INITRD \
		--memory 512M --vfio $bdf --cmdline '$BASE_CMDLINE minivmm.test=pci-edu'" tester \
		</dev/null >/tmp/user.out 2>&1
	rc=$?
	t1=$(uptime_s)
	echo "RC: $rc" >>/tmp/user.out
	[ $((${t1%.*} - ${t0%.*})) -lt "$GUEST_TIMEOUT" ] ||
		echo "# as a user: gave up after $GUEST_TIMEOUT s waiting for the guest to power off"
)
check "as a user with ulimit -l $((ram_kb + 1024)): guest ran and powered off" \
	grep -q "^RC: 0" /tmp/user.out
check "as a user: the guest read edu's ID" grep -q "EDU-ID-DEVMEM: 0x010000ED" /tmp/user.out
[ "$failures" -eq 0 ] || show_output /tmp/user.out
give_device 0 "$bdf" "$group"

finish
