# Guest side of the testbed tests: the L2 /init runs this (scripts/testbed
# --guest-init) after loading modules.  What it does is chosen by the
# minivmm.test=NAME parameter on the guest kernel command line, so one guest
# initramfs serves every scenario.  Lines it prints start with a KEY: prefix
# that the L1 side (tests/testbed/lib.sh) parses.

test_name=$(sed -n 's/.*minivmm\.test=\([^ ]*\).*/\1/p' /proc/cmdline)

# Sum of the "System RAM" ranges of /proc/iomem, in bytes (nested ranges
# such as "Kernel code" are indented and not counted).
system_ram_bytes() {
	total=0
	while IFS= read -r line; do
		case "$line" in
		" "*) continue ;;
		*": System RAM") ;;
		*) continue ;;
		esac
		range=${line%% *}
		start=$((0x${range%-*}))
		end=$((0x${range#*-}))
		total=$((total + end - start + 1))
	done </proc/iomem
	echo "$total"
}

# Hot-plugged memory per virtio-mem device: "<region start> <bytes>" for every
# top-level virtioN resource of /proc/iomem, summing its indented
# "System RAM (virtio_mem)" children.
vmem_ranges() {
	dev=""
	bytes=0
	while IFS= read -r line; do
		case "$line" in
		" "*"System RAM (virtio_mem)")
			[ -n "$dev" ] || continue
			range=${line#"${line%%[! ]*}"}
			range=${range%% *}
			bytes=$((bytes + 0x${range#*-} - 0x${range%-*} + 1))
			;;
		" "*) ;;
		*": virtio"*)
			[ -z "$dev" ] || echo "$dev $bytes"
			dev=${line%%-*}
			bytes=0
			;;
		*)
			[ -z "$dev" ] || echo "$dev $bytes"
			dev=""
			;;
		esac
	done </proc/iomem
	[ -z "$dev" ] || echo "$dev $bytes"
}

# One line with the guest's view of its memory, for the L1 side to parse:
# VMEM: memtotal_kb=N boot_kb=N total=BYTES 100000000=BYTES ...
vmem_report() {
	now=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo)
	boot=$(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /run/meminfo-at-boot)
	total=0
	per=""
	for pair in $(vmem_ranges | tr ' ' '='); do
		total=$((total + ${pair#*=}))
		per="$per $pair"
	done
	echo "VMEM: memtotal_kb=$now boot_kb=$boot total=$total$per"
}

# Report every second and obey commands typed on the console:
#   touch MB   write and free MB of memory (so that plugged memory is resident on the host)
#   ping WORD  answer "PONG: WORD" (a test that every command line arrives whole)
#   run LINE   run LINE with sh -c (stdin /dev/null, output to the console),
#              then print "RAN: STATUS" with its exit status
#   reboot     reboot the guest
#   done       stop (the guest powers off)
# The reports come from a loop in the background, so that the foreground can
# wait for a command with a plain blocking read.  A read with a timeout
# (read -t) must not be used for commands: busybox reads a line one byte at a
# time and, when the time is up after it consumed part of a line, returns
# failure and throws that part away, so the rest of the line ("one" of "done")
# is read as the next command.  Under the slow nested emulation a line that
# arrives close to the deadline is cut often enough to hang a test.  (A read
# interrupted by a signal loses its partial line too, so while it waits no
# child of this shell may exit: the reporter runs until the loop is over.)
vmem_agent() {
	while :; do
		vmem_report
		sleep 1
	done </dev/null &
	reporter=$!
	while read -r cmd arg; do
		case "$cmd" in
		touch)
			# A tmpfs of its own: /tmp's size was fixed at boot, before any plug.
			mkdir -p /touch
			mount -t tmpfs -o "size=$((arg + 16))m" touch /touch
			read -r t0 _ </proc/uptime
			dd if=/dev/zero of=/touch/fill bs=1M count="$arg" 2>/dev/null
			written=$(($(stat -c %s /touch/fill) / 1048576))
			umount /touch
			read -r t1 _ </proc/uptime
			echo "TOUCHED: $written"
			echo "TOUCH-TIME: $t0 $t1"
			;;
		ping) echo "PONG: $arg" ;;
		run)
			# stdin from /dev/null: the command must not eat the next commands.
			sh -c "$arg" </dev/null
			echo "RAN: $?"
			;;
		reboot) reboot -f ;;
		done) break ;;
		*) echo "AGENT: unknown command '$cmd'" ;;
		esac
	done
	kill "$reporter"
	wait "$reporter" 2>/dev/null
	return 0
}

# The passthrough edu device (1234:11e8) as the guest sees it; see pci_edu below.
edu_bdf() {
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ] &&
			basename "$d"
	done | head -n 1
}

# PCI as the guest enumerated it, then edu reached from guest userspace:
# its ID register through BAR0 (the BAR's memslot, no VMM exit), and, with
# /bin/edu-tool, its interrupt and a DMA round trip.
pci_edu() {
	for d in /sys/bus/pci/devices/*; do
		echo "PCI-DEV: $(basename "$d") $(cat "$d/vendor"):$(cat "$d/device") class=$(cat "$d/class")"
	done
	echo "PCI-FATAL: $(dmesg | grep -c 'PCI: Fatal')"
	echo "PCI-BAR-FAILED: $(dmesg | grep -c -E 'BAR [0-9]+.*(failed to assign|no space)')"
	bdf=$(edu_bdf)
	echo "EDU-BDF: $bdf"
	[ -n "$bdf" ] || return 0
	set -- $(sed -n 1p "/sys/bus/pci/devices/$bdf/resource")
	echo "EDU-BAR0-SIZE: $(($2 - $1 + 1))"
	# Memory decode on (command register bit 1), then the ID and the inverter register.
	printf '\006' | dd of="/sys/bus/pci/devices/$bdf/config" bs=1 seek=4 count=1 conv=notrunc 2>/dev/null
	echo "EDU-ID-DEVMEM: $(devmem "$1" 32)"
	devmem $(($1 + 4)) 32 0x12345678
	echo "EDU-INVERTED: $(devmem $(($1 + 4)) 32)"
	if [ -x /bin/edu-tool ]; then
		edu-tool id "$bdf"
		edu-tool irq "$bdf"
		edu-tool dma "$bdf"
	fi
	# Every edu, each through its own BAR.
	for d in /sys/bus/pci/devices/*; do
		[ "$(cat "$d/vendor")" = 0x1234 ] && [ "$(cat "$d/device")" = 0x11e8 ] || continue
		set -- $(sed -n 1p "$d/resource")
		printf '\006' | dd of="$d/config" bs=1 seek=4 count=1 conv=notrunc 2>/dev/null
		echo "EDU-EACH: $(basename "$d") $1 $(devmem "$1" 32)"
	done
}

# The guest's own nvme driver on a passthrough NVMe controller: the namespace
# appears, the driver runs on MSI-X, and 256 MiB of pseudo-random data written
# to it with O_DIRECT read back the same (disk-check).
nvme_io() {
	i=0
	while [ ! -b /dev/nvme0n1 ] && [ $i -lt 60 ]; do
		sleep 1
		i=$((i + 1))
	done
	[ -b /dev/nvme0n1 ] || {
		echo "NVME: gave up after 60 s waiting for /dev/nvme0n1"
		return 0
	}
	echo "NVME-DISK: $(cat /sys/block/nvme0n1/size) sectors"
	disk-check /dev/nvme0n1 256
	# Message-signalled vectors show as PCI-MSI (MSI-X included) in /proc/interrupts.
	grep nvme /proc/interrupts | sed 's/^/NVME-INTERRUPTS: /'
	echo "NVME-MSI-VECTORS: $(grep -c 'PCI-MSI.*nvme' /proc/interrupts)"
	echo "NVME-IRQS: $(grep 'PCI-MSI.*nvme' /proc/interrupts | awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^[0-9]+$/) s += $i } END { print s + 0 }')"
}

# edu's expansion ROM as the guest reads it (--vfio BDF,rom=on): the 0x55 0xaa
# signature and the text at 0x40 (scripts/testbed's make_edu_rom), or "none"
# when it is hidden.
pci_rom() {
	d=/sys/bus/pci/devices/$(edu_bdf)
	if [ ! -e "$d/rom" ]; then
		echo "EDU-ROM: none"
		return 0
	fi
	# The ROM decodes only with memory decode on (command register bit 1).
	printf '\006' | dd of="$d/config" bs=1 seek=4 count=1 conv=notrunc 2>/dev/null
	echo 1 >"$d/rom"
	echo "EDU-ROM-SIGNATURE: $(head -c 2 "$d/rom" | od -An -tx1 | tr -d ' ')"
	echo "EDU-ROM: $(head -c 80 "$d/rom" | tail -c 16)"
	echo 0 >"$d/rom"
}

# cfg_read OFF LEN / cfg_write OFF VALUE LEN: edu's config space ($d) through sysfs.
cfg_read() { dd if="$d/config" bs=1 skip="$1" count="$2" 2>/dev/null | od -An -tu"$2" | tr -d ' '; }
cfg_write() {
	v=$2 bytes="" i=0
	while [ $i -lt "$3" ]; do
		bytes="$bytes\\$(printf '%03o' $((v & 255)))"
		v=$((v >> 8))
		i=$((i + 1))
	done
	printf "$bytes" | dd of="$d/config" bs="$3" seek=$(($1 / $3)) count=1 conv=notrunc 2>/dev/null
}

# MSI without a driver: guest userspace programs edu's MSI capability with a
# vector no driver owns, raises edu's interrupt, and the guest kernel's "No
# irq handler for vector" line proves the message arrived (through minivmm's
# MSI route and irqfd).  Prints MSI-SPURIOUS: <lines before> <lines after>.
edu_msi() {
	d=/sys/bus/pci/devices/$(edu_bdf)
	cap=$(cfg_read 52 1)
	while [ "$cap" -ne 0 ] && [ "$(cfg_read "$cap" 1)" -ne 5 ]; do cap=$(cfg_read $((cap + 1)) 1); done
	echo "MSI-CAP: $cap"
	[ "$cap" -ne 0 ] || return 0
	ctrl=$(cfg_read $((cap + 2)) 2)
	data_off=$((ctrl & 0x80 ? cap + 12 : cap + 8))
	cfg_write 4 6 2 # memory decode and bus master
	cfg_write $((cap + 4)) $((0xfee00000)) 4
	[ $((ctrl & 0x80)) -eq 0 ] || cfg_write $((cap + 8)) 0 4
	cfg_write "$data_off" $((0x33)) 2 # fixed delivery, edge, vector 0x33
	cfg_write $((cap + 2)) $(((ctrl & ~0x70) | 1)) 2
	set -- $(sed -n 1p "$d/resource")
	before=$(dmesg | grep -c "No irq handler for vector")
	for n in 1 2 3; do
		devmem $(($1 + 0x60)) 32 $n # raise
		sleep 1
		devmem $(($1 + 0x64)) 32 $n # acknowledge
	done
	echo "MSI-SPURIOUS: $before $(dmesg | grep -c 'No irq handler for vector')"
	dmesg | grep "No irq handler for vector" | tail -n 1 | sed 's/^/MSI-LINE: /'
	cfg_write $((cap + 2)) $((ctrl & ~0x71)) 2
}

run_test() {
	case "$1" in
	edu-msi) edu_msi ;;
	pci-edu) pci_edu ;;
	pci-rom) pci_rom ;;
	nvme-io) nvme_io ;;
	info)
		echo "NPROC: $(nproc)"
		echo "MEMTOTAL_KB: $(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo)"
		echo "SYSTEM_RAM: $(system_ram_bytes)"
		topo=/sys/devices/system/cpu/cpu*/topology
		echo "PACKAGES: $(cat $topo/physical_package_id | sort -u | wc -l)"
		echo "CORES: $(cat $topo/core_id | sort -u | wc -l)"
		;;
	echo-input)
		# The VMM's stdin holds one line; the guest's tty echoes it as it
		# arrives, then we print it back marked, proving the guest read it.
		read -r line
		echo "READ: [$line]"
		;;
	reboot)
		echo "BOOTED"
		reboot -f
		;;
	vmem-agent)
		echo "BOOTED"
		echo "CMDLINE: $(cat /proc/cmdline)"
		vmem_agent
		;;
	panic)
		echo "BOOTED"
		echo 1 >/proc/sys/kernel/sysrq
		echo c >/proc/sysrq-trigger
		;;
	*)
		echo "guest-test: unknown test '$1' (minivmm.test= on the kernel command line)"
		return 2
		;;
	esac
}

# minivmm.test=a,b,c runs a, then b, then c.
[ -n "$test_name" ] || { echo "guest-test: no minivmm.test= on the kernel command line"; exit 2; }
for t in $(echo "$test_name" | tr ',' ' '); do
	run_test "$t" || exit $?
done
