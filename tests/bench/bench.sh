# Benchmarks, run inside the testbed host (make bench).  Figures, not
# assertions: the nested software-emulated host is slow and noisy, so compare
# runs on the same machine, and read them next to QEMU's figures in the same
# testbed (shared/docs/testbed.md §10: 15-17 s to first userspace line, VMM
# RSS 162-170 MB at userspace, resize 512M -> 1536M in 0.3 s without VFIO).
. /t/lib.sh

RUNS=${RUNS:-3}

# 1. Boot: minivmm start to the guest's first userspace line, and RSS there.
for i in $(seq 1 "$RUNS"); do
	run_guest bench-boot$i info --memory 512M
	echo "BENCH boot_to_userspace_s run=$i value=$first_user_s"
done

# 2. VMM memory at guest userspace, and resize latency with virtio-mem.
start_vm bench vmem-agent --memory 512M --virtio-mem size=4G,requested=512M
t0=$(uptime_s)
wait_until 120 status_is plugged_size $((512 * MiB))
t1=$(uptime_s)
echo "BENCH start_to_512M_plugged_s value=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
wait_until 30 guest_is total $((512 * MiB))
rss=$(rss_kb)
hwm=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$vm_pid/status")
echo "BENCH vmm_rss_at_userspace_kb value=$rss (peak $hwm)"

resize_time() {
	t0=$(uptime_s)
	ctl resize "$1" >/dev/null
	wait_until 120 status_is plugged_size "$2"
	t1=$(uptime_s)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}
echo "BENCH resize_512M_to_1536M_s value=$(resize_time 1536M $((1536 * MiB)))"
echo "BENCH resize_1536M_to_256M_s value=$(resize_time 256M $((256 * MiB)))"
echo "BENCH memslots_at_256M value=$(status_field memslots)"
stop_vm
