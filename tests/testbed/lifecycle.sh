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

# panic=-1 reboots at once; --no-reboot turns the reboot into exit 0.  This
# run also sends the console to a file instead of stdout.
BASE_CMDLINE="$BASE_CMDLINE panic=-1" run_guest panic panic --no-reboot \
	--console file=/tmp/panic.console
check "panic: minivmm exits 0 (--no-reboot)" [ "$rc" = 0 ]
check "panic: the guest panicked (console file)" grep -q "Kernel panic" /tmp/panic.console
check "panic: exactly one boot (console file)" [ "$(grep -c '^BOOTED' /tmp/panic.console)" = 1 ]
check "panic: nothing of the console on stdout" [ "$(grep -vc ' RC: ' /tmp/panic.out)" = 0 ]
[ "$failures" -eq 0 ] || { show_output /tmp/panic.out; sed 's/^/# /' /tmp/panic.console; }

# A kernel whose entry point is ud2 with no IDT: triple fault at once.
timeout 30 minivmm --kernel /t/images/triple-fault.bzImage --console none >/tmp/crash.out 2>&1
rc=$?
check "triple fault: minivmm exits 1" [ "$rc" = 1 ]
check "triple fault: one line names the problem" grep -q "vCPU 0: the guest triple-faulted" /tmp/crash.out
# On AMD, KVM reinitialises the vCPU at a shutdown intercept, so the dump shows
# the reset state (rip fff0) rather than the faulting one; minivmm says so.
check "triple fault: the registers are printed" grep -q "^  rip=[0-9a-f]\{16\} rsp=" /tmp/crash.out
[ "$failures" -eq 0 ] || { echo "# --- crash output ---"; sed 's/^/# /' /tmp/crash.out; }

finish
