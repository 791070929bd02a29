# Scenario: a guest reboot resets the VM and the guest boots again; a panic
# with panic=-1 is a reboot too; with --no-reboot a reboot ends minivmm with
# status 0; a guest that triple-faults makes minivmm print the registers and
# exit 1.
. /t/lib.sh

# The guest reboots at every boot: wait for the second boot, then stop it.
run_guest reboot reboot --cpus 2 &
check "reboot: the guest booted a second time after rebooting" stop_after reboot BOOTED 2
wait
# run_guest ran in a subshell: its status is in the output file.
check "reboot: minivmm stopped by SIGTERM exits 143" [ "$(value RC /tmp/reboot.out)" = 143 ]
check "reboot: two boots, each reaching userspace" [ "$(count GUEST-INIT /tmp/reboot.out)" -ge 2 ]
[ "$failures" -eq 0 ] || show_output /tmp/reboot.out

# panic=-1 reboots at once; --no-reboot turns the reboot into exit 0.
BASE_CMDLINE="$BASE_CMDLINE panic=-1" run_guest panic panic --no-reboot
check "panic: minivmm exits 0 (--no-reboot)" [ "$rc" = 0 ]
check "panic: the guest panicked" grep -q "Kernel panic" /tmp/panic.out
check "panic: exactly one boot" [ "$(count BOOTED /tmp/panic.out)" = 1 ]
[ "$failures" -eq 0 ] || show_output /tmp/panic.out

# A kernel whose entry point is ud2 with no IDT: triple fault at once.
timeout 30 minivmm --kernel /t/images/triple-fault.bzImage --console none >/tmp/crash.out 2>&1
rc=$?
check "triple fault: minivmm exits 1" [ "$rc" = 1 ]
check "triple fault: one line names the problem" grep -q "vCPU 0: the guest triple-faulted" /tmp/crash.out
check "triple fault: the registers are printed (rip at the entry point)" \
	grep -q "rip=0000000000100200" /tmp/crash.out
[ "$failures" -eq 0 ] || { echo "# --- crash output ---"; sed 's/^/# /' /tmp/crash.out; }

finish
