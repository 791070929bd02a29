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

run_test() {
	case "$1" in
	info)
		echo "NPROC: $(nproc)"
		echo "MEMTOTAL_KB: $(sed -n 's/^MemTotal: *\([0-9]*\) kB/\1/p' /proc/meminfo)"
		echo "SYSTEM_RAM: $(system_ram_bytes)"
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
