# Scenario: a stock Debian kernel boots under minivmm with 1, 2 and 4 vCPUs and
# 512 MiB, sees what it was given, reads a line typed on the console (stdin),
# and powering off ends minivmm with status 0.  Prints the time from minivmm
# start to the guest's first userspace line, for the record.
. /t/lib.sh

echo "typed on the console" >/tmp/input
GUEST_INPUT=/tmp/input run_guest boot1 info,echo-input --cpus 1 --memory 512M --console stdio
echo "# boot: 1 vCPU, first userspace line ${first_user_s}s after minivmm started"
check "1 vCPU: guest powered off, minivmm exit 0" [ "$rc" = 0 ]
check "1 vCPU: guest reached userspace" [ -n "$first_user_s" ]
check "1 vCPU: nproc is 1" [ "$(value NPROC /tmp/boot1.out)" = 1 ]
mem_kb=$(value MEMTOTAL_KB /tmp/boot1.out)
# MemTotal is RAM minus what the kernel reserves for itself (code, memmap).
check "1 vCPU: MemTotal $mem_kb kB is between 400 and 512 MiB" \
	[ "${mem_kb:-0}" -gt $((400 * 1024)) -a "${mem_kb:-0}" -le $((512 * 1024)) ]
# e820 hands out 512 MiB minus the 384 KiB legacy hole; Linux keeps page 0.
ram=$(value SYSTEM_RAM /tmp/boot1.out)
check "1 vCPU: System RAM in /proc/iomem is 512 MiB - 384 KiB - 4 KiB ($ram)" \
	[ "${ram:-0}" -eq $((512 * 1024 * 1024 - 384 * 1024 - 4096)) ]
check "1 vCPU: the guest read the line typed on stdin" \
	[ "$(value READ /tmp/boot1.out)" = "[typed on the console]" ]
[ "$failures" -eq 0 ] || show_output /tmp/boot1.out

run_guest boot2 info --cpus 2 --memory 512M
echo "# boot: 2 vCPUs, first userspace line ${first_user_s}s after minivmm started"
check "2 vCPUs: guest powered off, minivmm exit 0" [ "$rc" = 0 ]
check "2 vCPUs: nproc is 2" [ "$(value NPROC /tmp/boot2.out)" = 2 ]

[ "$failures" -eq 0 ] || show_output /tmp/boot2.out

# More vCPUs than the test host has cores (2): the guest must see one package of
# 4 cores, not the host's layout (which made it two packages of 2).
run_guest boot4 info --cpus 4 --memory 512M
check "4 vCPUs: nproc is 4" [ "$(value NPROC /tmp/boot4.out)" = 4 ]
check "4 vCPUs: one package of four cores" \
	[ "$(value PACKAGES /tmp/boot4.out)" = 1 -a "$(value CORES /tmp/boot4.out)" = 4 ]
[ "$failures" -eq 0 ] || show_output /tmp/boot4.out

finish
