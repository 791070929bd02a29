# Scenario: a guest reboot resets the VM and the guest boots again; a panic
# with panic=-1 is a reboot too; with --no-reboot a reboot ends minivmm with
# status 0; a guest that triple-faults makes minivmm print the registers and
# exit 1; a stalled console reader and a closed stdin do not freeze or busy
# the main loop.
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
timeout 30 minivmm --kernel /t/images/triple-fault.bzImage --console none >/tmp/crash.log 2>&1
rc=$?
check "triple fault: minivmm exits 1" [ "$rc" = 1 ]
check "triple fault: one line names the problem" grep -q "vCPU 0: the guest triple-faulted" /tmp/crash.log
# On AMD, KVM reinitialises the vCPU at a shutdown intercept, so the dump shows
# the reset state (rip fff0) rather than the faulting one; minivmm says so.
check "triple fault: the registers are printed" grep -q "^  rip=[0-9a-f]\{16\} rsp=" /tmp/crash.log
[ "$failures" -eq 0 ] || { echo "# --- crash output ---"; sed 's/^/# /' /tmp/crash.log; }

# The console's reader stalls and stdin is a closed pipe (echo x | minivmm):
# the pipe to the reader is already full (64 KiB, what a Linux pipe holds)
# when minivmm starts, and the reader waits for /tmp/stall.go while the guest
# boots (no "quiet": the kernel log goes to the console).  Guest output must
# wait in minivmm's buffer, not block a vCPU and the main loop with it, and
# the EPOLLHUP of the paused stdin must not keep the main thread busy.
rm -f /tmp/stall.pid /tmp/stall.go
mkfifo /tmp/stall.go
sock=/tmp/stall.sock
echo x | {
	head -c 65536 /dev/zero
	sh -c 'echo $$ >/tmp/stall.pid; exec minivmm --kernel "$0" --initrd "$1" \
		--cmdline "console=ttyS0 minivmm.test=echo-input" --api-socket "$2" 2>&1' \
		"$KERNEL" "$INITRD" "$sock"
	echo "RC: $?"
} | {
	read -r _ </tmp/stall.go
	tr -d '\000' >/tmp/stall.out
} &
check "stalled reader: minivmm started" wait_until 10 [ -s /tmp/stall.pid ]
vm_pid=$(cat /tmp/stall.pid)
# ticks [TID]: CPU time (user + system, 1/100 s) of minivmm's thread TID, or of L1 (uptime).
ticks() {
	if [ -n "${1:-}" ]; then
		awk '{ print $14 + $15 }' "/proc/$vm_pid/task/$1/stat"
	else
		awk '{ printf "%d", $1 * 100 }' /proc/uptime
	fi
}
# thread NAME: the id of minivmm's thread NAME.
thread() { grep -lx "$1" /proc/"$vm_pid"/task/*/comm 2>/dev/null | cut -d/ -f5; }
# in_write: the names of minivmm's threads that are in write().
in_write() {
	for t in /proc/"$vm_pid"/task/*; do
		[ "$(cut -d' ' -f1 "$t/syscall" 2>/dev/null)" != 1 ] || cat "$t/comm"
	done
}
output_waits() { [ -n "$(in_write)" ]; }
check "stalled reader: the guest's output reached the full pipe" wait_until 60 output_waits
check "stalled reader: the console thread waits in write(), no vCPU does ($(in_write | tr '\n' ' '))" \
	[ "$(in_write)" = console ]
t0=$(ticks) main0=$(ticks "$vm_pid") vcpu0=$(ticks "$(thread vcpu0)")
answered=0
for i in 1 2 3; do
	timeout 1 minivmm ctl --api-socket "$sock" status >/dev/null && answered=$((answered + 1))
	sleep 1
done
check "stalled reader: the control socket answers within 1 s (3 of 3: $answered)" [ "$answered" = 3 ]
t1=$(ticks) main1=$(ticks "$vm_pid") vcpu1=$(ticks "$(thread vcpu0)")
echo "# CPU time in $((t1 - t0))/100 s of boot with a closed stdin:" \
	"main thread $((main1 - main0))/100 s, vcpu0 $((vcpu1 - vcpu0))/100 s"
check "closed stdin: the main thread stays idle while the guest boots" \
	[ $((main1 - main0)) -le $(((t1 - t0) / 10)) ]
sigblk=$(sed -n 's/^SigBlk:[[:space:]]*//p' "/proc/$vm_pid/task/$(thread console)/status" 2>/dev/null)
sigblk=${sigblk:-0}
check "console writer thread blocks SIGINT, SIGTERM and SIGHUP ($sigblk)" \
	[ $((0x$sigblk & 0x4003)) = $((0x4003)) ]
echo go >/tmp/stall.go
# Now that its output is read, minivmm finishes; never wait for it forever.
vm_gone() { ! kill -0 "$vm_pid" 2>/dev/null; }
check "stalled reader: minivmm ends once its output is read" wait_until 120 vm_gone
no_minivmm || stop_minivmm # whatever happened, the wait below must end
wait
vm_pid=
check "stalled reader: minivmm exits 0 when the guest powers off" \
	[ "$(sed -n 's/^RC: //p' /tmp/stall.out)" = 0 ]
check "stalled reader: the guest read the line from the closed pipe" grep -q "^READ: \[x\]" /tmp/stall.out
check "stalled reader: the kernel log is on the console from its first line" \
	grep -q "Linux version" /tmp/stall.out
[ "$failures" -eq 0 ] || { echo "# --- stall output ---"; sed 's/^/# /' /tmp/stall.out; }

finish
