# testbed-hosts: debian iommufd
# Scenario: virtio-mem and an edu passed through together - the reason
# minivmm exists - on both IOMMU backends: type1 on the Debian test host,
# iommufd (minivmm's default where the kernel has it) on the iommufd one.
# Boot RAM is pinned whole; the virtio-mem region only as the guest plugs it.
# At every step of 512M -> 1536M -> 256M -> 130M (2 MiB blocks) what the
# kernel counts as pinned (VmLck for type1, VmPin for iommufd) minus boot RAM
# equals plugged_size to the kB, and status agrees with the kernel.  From inside the guest, edu DMA between two
# pages of plugged virtio-mem memory lands (also in memory the last resize
# plugged); DMA aimed at an unplugged block - never plugged, or plugged and
# then unplugged by a shrink - is blocked by the IOMMU (a DMAR fault for that
# address in the test host's log) and the block's host memory stays
# untouched.  A guest reboot unplugs (and unmaps) everything before the next
# boot plugs again.  Finally dma_entry_limit: too low for the region at 2 MiB
# blocks, type1 is refused at start-up with the block size that fits; with
# that block size it runs - and iommufd, which has no entry limit, runs the
# 2 MiB blocks as they are.
. /t/lib.sh

read -r bdf group <<EOF
$(head -n 1 /testbed/edu)
EOF
echo "# edu at $bdf, IOMMU group $group"
check "the test host has an edu bound to vfio-pci" [ -n "$bdf" -a -e "/dev/vfio/$group" ]
ram_kb=$RAM_512M_KB

start_vm vmem-edu vmem-agent --memory 512M --virtio-mem size=4G,requested=512M \
	--vfio "$bdf,id=edu0" --verbose
booted() { grep -q "BOOTED" "$out"; }
check "guest booted (waited up to ${GUEST_TIMEOUT}s for BOOTED)" wait_until "$GUEST_TIMEOUT" booted
end_if_failed
addr=$(status_field addr)
# The host address of the region, from minivmm's --verbose start-up line.
hva=$(sed -n 's/.*virtio-mem mem0: region .* at host address \(0x[0-9a-f]*\),.*/\1/p' "$out")
echo "# region at $addr (host $hva)"

edu_guest=""
guest_edu() {
	guest_run bdf 'for d in /sys/bus/pci/devices/*; do [ "$(cat $d/vendor)" = 0x1234 ] && [ "$(cat $d/device)" = 0x11e8 ] && echo "EDU-AT: ${d##*/}"; done'
	edu_guest=$(echo "$ran" | sed -n 's/^EDU-AT: //p' | head -n 1)
}
# round_trip FROM TO WHAT: edu DMA between two pages of [FROM, TO) lands.
round_trip() {
	guest_run dma edu-tool dma-in "$edu_guest" "$1" "$2"
	line=$(echo "$ran" | grep "^EDU-DMA-IN:")
	echo "# $3: ${line:-$(echo "$ran" | grep edu-tool)}"
	set -- $(echo "$line" | sed -n 's/.* \(0x[0-9a-f]*\) -> \(0x[0-9a-f]*\)$/\1 \2/p') "$1" "$2"
	dst=${2:-}
	[ $# = 4 ] && [ "${line#EDU-DMA-IN: ok}" != "$line" ] &&
		[ $(($1)) -ge $(($3)) ] && [ $(($1)) -lt $(($4)) ] &&
		[ $(($2)) -ge $(($3)) ] && [ $(($2)) -lt $(($4)) ]
}
# host_bytes GPA: 64 bytes of the region's host memory at GPA, as minivmm holds them, in hex.
host_bytes() {
	dd if="/proc/$vm_pid/mem" bs=64 count=1 skip=$(((hva + $1 - addr) / 64)) 2>/dev/null |
		od -An -v -tx1 | tr -d ' \n'
}
zeros64=$(printf '%0128d' 0)
# blocked GPA WHAT: an edu DMA of 64 bytes of 0xa5 to GPA faults in the IOMMU
# (the test host logs a DMAR fault for exactly that address) and minivmm's
# memory there stays zero.
blocked() {
	faults_before=$(dmesg | grep -c "DMAR: \[DMA Write.*fault addr $(printf '0x%x' "$1")")
	guest_run dma-to edu-tool dma-to "$edu_guest" "$(printf '0x%x' "$1")" 64
	echo "# $2: $(echo "$ran" | grep "EDU-DMA-TO\|edu-tool" | head -n 1)"
	fault() { [ "$(dmesg | grep -c "DMAR: \[DMA Write.*fault addr $(printf '0x%x' "$1")")" -gt "$faults_before" ]; }
	check "$2: the test host logged a DMAR fault for $(printf '0x%x' "$1") (waited up to 10 s)" \
		wait_until 10 fault "$1"
	bytes=$(host_bytes "$1")
	check "$2: minivmm's memory at $(printf '0x%x' "$1") is untouched (${bytes:-unreadable})" \
		[ "$bytes" = "$zeros64" ]
}

vfio_step 512 edu0
guest_edu
check "the guest sees edu at ${edu_guest:-?}" [ -n "$edu_guest" ]
check "512M: DMA between two pages of plugged virtio-mem memory lands" \
	round_trip "$addr" $((addr + 512 * MiB)) "512M round trip"
# The reader of minivmm's memory sees what the DMA wrote (so "zero" below means something).
seen=$(host_bytes $((dst)))
check "minivmm's memory at the round trip's destination ${dst:-?} holds the data (${seen%"${seen#????????????????}"}...)" \
	[ -n "$seen" -a "$seen" != "$zeros64" ]
blocked $((addr + 1600 * MiB)) "never plugged block"

ctl resize 1536M >/dev/null
vfio_step 1536 edu0
check "1536M: DMA lands in memory the last resize plugged" \
	round_trip $((addr + 512 * MiB)) $((addr + 1536 * MiB)) "1536M round trip"

ctl resize 256M >/dev/null
vfio_step 256 edu0
check "256M: the guest has one 256 MiB range at the region's start (waited up to 30 s)" \
	wait_until 30 guest_is "$(printf '%x' "$addr")" $((256 * MiB))
blocked $((addr + 1534 * MiB)) "block plugged at 1536M, unplugged by the shrink"
check "256M: DMA still lands in what stays plugged" \
	round_trip "$addr" $((addr + 256 * MiB)) "256M round trip"

ctl resize 130M >/dev/null
vfio_step 130 edu0

# A guest reboot: edu is reset first, then every block is unplugged and
# unmapped; boot RAM stays pinned; the next boot plugs requested_size again.
t0=$(uptime_s)
echo reboot >&3
at_boot_ram() { [ "$(pinned_kb)" = "$ram_kb" ]; }
check "reboot: $PINNED falls back to boot RAM (waited up to 60 s)" wait_until 60 at_boot_ram
t1=$(uptime_s)
booted_twice() { [ "$(grep -c "BOOTED" "$out")" -ge 2 ]; }
check "reboot: booted again (waited up to ${GUEST_TIMEOUT}s)" wait_until "$GUEST_TIMEOUT" booted_twice
echo "# reboot: $PINNED was back at boot RAM $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s after the reboot was typed"
check "reboot: status boots 2" status_is boots 2
vfio_step 130 edu0
check "after DMA mapping, resizes and a reboot: every thread under its seccomp filter" \
	seccomp_active
check "no plug was refused, nothing kept" [ "$(status_field refused_plugs)" = 0 -a "$(status_field kept_bytes)" = 0 ]
check "no 'broken' virtio-mem device in the guest log" [ -z "$(grep -i 'broken' "$out")" ]
stop_vm
check "guest powered off, minivmm exit 0" [ "$rc" = 0 ]
other=$(dmesg | grep 'DMAR: \[DMA' | grep -v "fault addr $(printf '0x%x' $((addr + 1600 * MiB)))" |
	grep -vc "fault addr $(printf '0x%x' $((addr + 1534 * MiB)))")
check "test host: no DMAR fault but those of the two blocked DMAs ($other others)" [ "$other" = 0 ]
[ "$failures" -eq 0 ] || show_output "$out"

# dma_entry_limit too low for 4 GiB at 2 MiB blocks (2048 + 2 for boot RAM +
# 16 spare = 2066): type1 (the Debian host's default, asked for on the
# iommufd host) is refused before anything is pinned, naming the block size
# that fits and the limit that would fit this one.
limit=/sys/module/vfio_iommu_type1/parameters/dma_entry_limit
old_limit=$(cat $limit)
echo 1100 >$limit
msg=$(minivmm --kernel "$KERNEL" --memory 512M --virtio-mem size=4G --vfio "$bdf,iommu=type1" 2>&1)
rc=$?
echo "# dma_entry_limit 1100: $msg"
check "dma_entry_limit 1100, type1: exit 2 with one line" [ "$rc" = 2 -a "$(echo "$msg" | wc -l)" = 1 ]
check "... naming block-size=4M, dma_entry_limit 2066 and iommufd" \
	sh -c "echo '$msg' | grep -q 'use block-size=4M (1042 mappings), or raise .*dma_entry_limit to 2066, or use iommu=iommufd'"
if [ "$IOMMU" = type1 ]; then
	start_vm vmem-4m vmem-agent --memory 512M --virtio-mem size=4G,requested=512M,block-size=4M \
		--vfio "$bdf"
	blocks=128 what="block-size=4M"
else
	# iommufd has no entry limit: the 2 MiB blocks type1 was refused run.
	start_vm vmem-2m vmem-agent --memory 512M --virtio-mem size=4G,requested=512M --vfio "$bdf"
	blocks=256 what="iommufd, block-size=2M"
fi
check "$what under dma_entry_limit 1100: the guest booted" wait_until "$GUEST_TIMEOUT" booted
check "$what under dma_entry_limit 1100: the guest plugs 512 MiB (waited up to 180 s)" \
	wait_until 180 pinned_is 512
maps=$(ctl status | sed -n 's/.*"dma_mappings": *\([0-9]*\).*/\1/p')
check "$what: 2 + $blocks mappings ($maps)" [ "$maps" = $((2 + blocks)) ]
stop_vm
check "$what: guest powered off, minivmm exit 0" [ "$rc" = 0 ]
echo "$old_limit" >$limit
[ "$failures" -eq 0 ] || show_output "$out"
finish
