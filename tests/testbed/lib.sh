# Helpers for the L1 side of testbed tests (busybox sh inside the test host).
# A scenario script sources this file, runs guests with run_guest and checks
# results with check; it prints TAP-like lines and exits non-zero if any
# check failed.

KERNEL=/testbed/guest/vmlinuz
INITRD=/testbed/guest/initrd.img
BASE_CMDLINE="console=ttyS0 quiet"
GUEST_TIMEOUT=${GUEST_TIMEOUT:-120}
failures=0
checks=0

uptime_s() { read -r up _ </proc/uptime; echo "$up"; }

# check DESCRIPTION COMMAND...: one "ok"/"not ok" line.
check() {
	desc=$1
	shift
	checks=$((checks + 1))
	if "$@"; then
		echo "ok $checks - $desc"
	else
		echo "not ok $checks - $desc"
		failures=$((failures + 1))
		[ "$failures" -gt 1 ] || diagnose_vm
	fi
}

# run_guest NAME TEST [MINIVMM OPTIONS...]: boot the default guest with
# minivmm.test=TEST (stdin from $GUEST_INPUT, default /dev/null), console
# output in /tmp/NAME.out with each line prefixed by the L1 uptime, exit
# status in $rc, seconds from start to the guest's first userspace line
# (GUEST-INIT) in $first_user_s.  A guest still running after GUEST_TIMEOUT
# seconds is stopped (SIGTERM, SIGKILL 10 s later), and that is said.
run_guest() {
	name=$1
	test=$2
	shift 2
	out=/tmp/$name.out
	t0=$(uptime_s)
	{
		timeout -k 10 "$GUEST_TIMEOUT" minivmm --kernel "$KERNEL" --initrd "$INITRD" \
			--cmdline "$BASE_CMDLINE minivmm.test=$test" "$@" <"${GUEST_INPUT:-/dev/null}" 2>&1
		echo "RC: $?"
	} | tr -d '\r' | while IFS= read -r line; do
		read -r up _ </proc/uptime
		echo "$up $line"
	done >"$out"
	rc=$(sed -n 's/^[0-9.]* RC: //p' "$out")
	# busybox timeout exits with the status of the stopped minivmm (143, 137), not 124.
	t1=$(uptime_s)
	[ $((${t1%.*} - ${t0%.*})) -lt "$GUEST_TIMEOUT" ] ||
		echo "# $name: gave up after $GUEST_TIMEOUT s waiting for the guest to power off;" \
			"minivmm was stopped (status $rc)"
	first_user_s=$(awk -v t0="$t0" '$2 == "GUEST-INIT" { printf "%.2f", $1 - t0; exit }' "$out")
}

# stop_after NAME PATTERN COUNT: wait (up to GUEST_TIMEOUT) until the output
# of the run_guest running in the background has COUNT lines equal to
# PATTERN, then stop minivmm with SIGTERM.  Returns 1 on timeout, or if
# minivmm is still there 30 s after SIGTERM (it is then killed, so that the
# scenario's wait ends).
stop_after() {
	if ! wait_until "$GUEST_TIMEOUT" has_lines "$@"; then
		stop_minivmm
		return 1
	fi
	stop_minivmm
}
# has_lines NAME PATTERN COUNT: /tmp/NAME.out has COUNT lines equal to PATTERN.
has_lines() { [ "$(count "$2" "/tmp/$1.out")" -ge "$3" ]; }
no_minivmm() { ! pidof minivmm >/dev/null; }
stop_minivmm() {
	killall minivmm 2>/dev/null
	wait_until 30 no_minivmm && return 0
	echo "# minivmm did not end within 30 s of SIGTERM"
	vm_pid=$(pidof minivmm | cut -d' ' -f1) diagnose_vm
	killall -KILL minivmm 2>/dev/null
	wait_until 10 no_minivmm || echo "# minivmm is still there 10 s after SIGKILL"
	return 1
}

# start_vm NAME TEST [MINIVMM OPTIONS...]: boot the default guest with
# minivmm.test=TEST in the background, with a control socket ($sock), the
# console output in $out and the console input on fd 3 (echo cmd >&3).
start_vm() {
	name=$1
	test=$2
	shift 2
	sock=/tmp/$name.sock
	out=/tmp/$name.out
	rm -f "/tmp/$name.in"
	mkfifo "/tmp/$name.in"
	exec 3<>"/tmp/$name.in"
	minivmm --kernel "$KERNEL" --initrd "$INITRD" --cmdline "$BASE_CMDLINE minivmm.test=$test" \
		--api-socket "$sock" "$@" <"/tmp/$name.in" >"$out" 2>&1 &
	vm_pid=$!
}

# vm_exited: minivmm of start_vm has exited (it stays a zombie until waited for).
vm_exited() {
	[ -r "/proc/$vm_pid/status" ] || return 0
	grep -q '^State:[[:space:]]*Z' "/proc/$vm_pid/status" 2>/dev/null
}

# end_vm SECONDS WHAT: wait up to SECONDS for minivmm of start_vm to exit
# after WHAT, and collect its status in $rc.  If it is still running then,
# say so, show where its threads are and stop it (the control socket's
# shutdown, then SIGKILL, each wait bounded); $rc is then "none", which no
# check of a status accepts.
end_vm() {
	if wait_until "$1" vm_exited; then
		wait "$vm_pid"
		rc=$?
		vm_pid= # collected: later waits do not depend on it
	else
		echo "# minivmm still running $1 s after $2; stopping it"
		diagnose_vm
		kill_vm
		wait "$vm_pid"
		rc=none
		vm_pid=
	fi
	exec 3>&-
}

# kill_vm: stop minivmm of start_vm now: the control socket's shutdown, then
# SIGKILL, each wait bounded.
kill_vm() {
	ctl shutdown >/dev/null
	wait_until 30 vm_exited && return 0
	echo "# minivmm still running 30 s after the shutdown command; killing it"
	kill -KILL "$vm_pid"
	wait_until 10 vm_exited || echo "# minivmm is still there 10 s after SIGKILL"
}

# stop_vm: tell the guest agent to finish and wait (60 s at most) for minivmm
# to exit; status in $rc.
stop_vm() {
	echo done >&3
	end_vm 60 "'done' was typed (waited for the guest to power off)"
}

ctl() { minivmm ctl --api-socket "$sock" "$@"; }

# status_field FIELD [ID]: a number (or true/false) from "minivmm ctl status"
# (device ID, default mem0).
status_field() {
	if [ "$1" = boots ]; then
		ctl status | sed -n 's/.*"boots": *\([0-9]*\).*/\1/p'
		return
	fi
	ctl status | field_of "$1" "${2:-mem0}"
}
# field_of FIELD ID: a number or boolean of device ID's object in the status JSON on stdin.
field_of() {
	tr '{' '\n' | grep "\"id\": *\"$2\"" | sed -n "s/.*\"$1\": *\([0-9a-z]*\).*/\1/p"
}
status_is() { [ "$(status_field "$1" "${3:-mem0}")" = "$2" ]; }

# guest_value KEY: from the guest agent's latest "VMEM: key=value ..." line.
guest_value() {
	grep "VMEM:" "$out" | tail -n 1 | tr -d '\r' | tr ' ' '\n' | sed -n "s/^$1=//p"
}
guest_is() { [ "$(guest_value "$1")" = "$2" ]; }
# memtotal_grew_kb MIN MAX: MemTotal minus MemTotal before virtio_mem loaded, in range.
memtotal_grew_kb() {
	grew=$(($(guest_value memtotal_kb) - $(guest_value boot_kb)))
	[ "$grew" -ge "$1" ] && [ "$grew" -le "$2" ]
}

# wait_until SECONDS COMMAND...: retry COMMAND every half second until it
# succeeds or SECONDS (of L1 uptime) have passed; then say what it waited for
# (on stderr: callers may capture its output).  While a minivmm of start_vm
# runs ($vm_pid), its exit ends the wait at once: nothing will change then
# (COMMAND gets one last try: it may have waited for that very exit).
wait_until() {
	read -r start _ </proc/uptime
	deadline=$((${start%.*} + $1))
	shift
	until "$@"; do
		read -r now _ </proc/uptime
		if [ -n "${vm_pid:-}" ] && vm_exited; then
			"$@" && return 0
			echo "# gave up after $((${now%.*} - ${start%.*})) s waiting for: $* (minivmm, pid $vm_pid, has exited)" >&2
			return 1
		fi
		if [ "${now%.*}" -ge "$deadline" ]; then
			echo "# gave up after $((${now%.*} - ${start%.*})) s waiting for: $*" >&2
			return 1
		fi
		sleep 0.5
	done
}

# The test host's kernel (scripts/testbed --host-kernel): the Debian one has
# VFIO type1 only; the self-built iommufd one has both, and minivmm's
# iommu=auto picks iommufd there.  The kernel counts what type1 pins in VmLck,
# what iommufd pins in VmPin (virtio-mem-and-vfio.md §5.8).
HOST_KERNEL=$(cat /testbed/host-kernel 2>/dev/null || echo debian)
if [ "$HOST_KERNEL" = iommufd ]; then
	IOMMU=iommufd PINNED=VmPin UNPINNED=VmLck
else
	IOMMU=type1 PINNED=VmLck UNPINNED=VmPin
fi

# cdev_of BDF: the device's VFIO cdev (/dev/vfio/devices/vfioN), if this kernel has them.
cdev_of() {
	for d in /sys/bus/pci/devices/"$1"/vfio-dev/vfio*; do
		[ -e "$d" ] && echo "/dev/vfio/devices/${d##*/}"
	done
}
# give_device OWNER BDF GROUP: what an unprivileged minivmm opens for BDF
# belongs to OWNER (0: back to root): /dev/kvm for all, the IOMMU group's
# device (type1), /dev/iommu and the device's cdev (iommufd).
give_device() {
	chmod 0666 /dev/kvm
	chown "$1" "/dev/vfio/$3" $(cdev_of "$2")
	[ ! -e /dev/iommu ] || chown "$1" /dev/iommu
}

# status_kb FIELD: a "FIELD: N kB" line of minivmm's /proc/PID/status.
status_kb() { sed -n "s/^$1:[[:space:]]*\([0-9]*\) kB/\1/p" "/proc/$vm_pid/status"; }
rss_kb() { status_kb VmRSS; }
# pinned_kb: what minivmm has pinned, in the counter of this host's default backend.
pinned_kb() { status_kb "$PINNED"; }
# The RAM ranges of --memory 512M: 512 MiB less the 384 KiB legacy/ACPI area.
RAM_512M_KB=$((512 * 1024 - 384))

MiB=$((1024 * 1024))

# value KEY FILE: the value of the first "KEY: value" line the guest printed.
value() { sed -n "s/^[0-9.]* $1: //p" "$2" | head -n 1; }
count() { cat "$2" 2>/dev/null | grep -c "^[0-9.]* $1\$"; }

show_output() {
	echo "# --- $1 ---"
	sed 's/^[0-9.]* /# /' "$1"
}

# end_if_failed: after a check that the rest depends on (the guest booted),
# stop here if anything failed: show the console, end minivmm (bounded) and
# finish, instead of running every later wait into the scenario's timeout.
end_if_failed() {
	[ "$failures" -eq 0 ] && return 0
	show_output "$out"
	vm_exited || kill_vm
	finish
}

# --- virtio-mem with VFIO ---

# pinned_is MIB: plugged_size of mem0 is MIB and what minivmm has pinned
# ($PINNED) is boot RAM (--memory 512M) + MIB, to the kB.
pinned_is() {
	plugged=$(status_field plugged_size)
	pinned=$(pinned_kb)
	[ "$plugged" = $(($1 * MiB)) ] && [ "$((${pinned:-0} - RAM_512M_KB))" = $(($1 * 1024)) ]
}
# dma_counts_agree MIB VFIO_ID: mem0's dma_mapped_bytes is MIB; VFIO_ID's
# address-space-wide counts agree with the kernel's: it reports this host's
# backend, dma_mapped_bytes and pinned_bytes are $PINNED, dma_mappings is boot
# RAM's 2 + one per 2 MiB block, and on type1 dma_avail is 65535 - mappings
# (iommufd has no entry limit, so no dma_avail).  The other counter
# ($UNPINNED) stays 0: root is not charged RLIMIT_MEMLOCK.
dma_counts_agree() {
	st=$(ctl status)
	of() { echo "$st" | field_of "$2" "$1"; }
	maps=$(of "$2" dma_mappings)
	echo "$st" | grep -q "\"iommu\": \"$IOMMU\"" &&
		[ "$(of mem0 dma_mapped_bytes)" = $(($1 * MiB)) ] &&
		[ "$(of "$2" dma_mapped_bytes)" = $(($(pinned_kb) * 1024)) ] &&
		[ "$(of "$2" pinned_bytes)" = $(($(pinned_kb) * 1024)) ] &&
		[ "$(status_kb "$UNPINNED")" = 0 ] &&
		[ "$maps" = $((2 + $1 / 2)) ] &&
		if [ "$IOMMU" = type1 ]; then
			[ "$(of "$2" dma_avail)" = $((65535 - maps)) ]
		else
			! echo "$st" | grep -q dma_avail
		fi
}
# vfio_step MIB VFIO_ID: after a resize to MIB (2 MiB blocks), wait for
# plugged_size and the pinned memory to follow, then check the DMA counters.
vfio_step() {
	check "$1M: plugged_size and $PINNED - boot RAM reach $1 MiB, to the kB (waited up to 180 s)" \
		wait_until 180 pinned_is "$1"
	echo "# $1M: $PINNED $(pinned_kb) kB, plugged_size $(status_field plugged_size)"
	check "$1M: status ($IOMMU) dma_mapped_bytes, pinned_bytes, dma_mappings$([ "$IOMMU" = type1 ] && echo ", dma_avail") agree with the kernel" \
		dma_counts_agree "$1" "$2"
}

# guest_run ID COMMAND...: run COMMAND in the guest (the vmem-agent's "run"),
# wait (120 s at most) for it to finish and set $ran to what it printed.
runs=0
guest_run() {
	runs=$((runs + 1))
	marker="RUN-$runs-$1"
	shift
	echo "run echo $marker-BEGIN; $*; echo $marker-END \$?" >&3
	ended() { tr -d '\r' <"$out" | grep -q "^$marker-END"; }
	wait_until 120 ended || echo "# the guest did not finish '$*' within 120 s"
	ran=$(tr -d '\r' <"$out" | sed -n "/^$marker-BEGIN/,/^$marker-END/p")
}

# refused_with WHAT PATTERN MINIVMM-ARGS...: minivmm --kernel $KERNEL with
# ARGS exits 2 with one line ($msg), which matches the grep pattern PATTERN.
refused_with() {
	what=$1 pattern=$2
	shift 2
	msg=$(minivmm --kernel "$KERNEL" "$@" 2>&1)
	rc=$?
	echo "# $what: $msg"
	check "$what: exit 2 with one line" [ "$rc" = 2 -a "$(echo "$msg" | wc -l)" = 1 ]
	check "$what: ... matching '$pattern'" msg_matches "$pattern"
}
# msg_matches PATTERN: $msg matches the grep pattern PATTERN; msg_lacks: it does not.
msg_matches() { echo "$msg" | grep -q -- "$1"; }
msg_lacks() { ! msg_matches "$1"; }

# When a check failed while minivmm still runs: where is each of its threads?
diagnose_vm() {
	[ -n "${vm_pid:-}" ] && [ -d "/proc/$vm_pid" ] || return 0
	echo "# --- minivmm (pid $vm_pid) is still running; its threads:"
	for t in /proc/"$vm_pid"/task/*; do
		echo "# $(cat "$t/comm") wchan=$(cat "$t/wchan") syscall=$(cut -d' ' -f1 "$t/syscall")"
		sed 's/^/#    /' "$t/stack" 2>/dev/null
	done
	if [ -S "${sock:-}" ]; then
		echo "# --- minivmm ctl dump (vCPUs and devices):"
		ctl dump 2>&1 | sed 's/^/# /'
	fi
	echo "# --- L1 kernel log, last lines:"
	dmesg | tail -n 15 | sed 's/^/# /'
}

# Testbed quirk (testbed.md, section 10): now and then the nested guest resets
# itself with no guest error, which minivmm sees as a triple fault.  Guest
# output files are /tmp/*.out (a test that expects a triple fault writes
# elsewhere).  Prints the files that show one.
spurious_resets() {
	grep -l "the guest triple-faulted" /tmp/*.out 2>/dev/null
}

# seccomp_active: every thread of minivmm (start_vm) runs under its seccomp
# filter (Seccomp: 2): the main thread and the console writer under one,
# each vCPU under two (the main thread's and its own).
seccomp_active() {
	[ -d "/proc/$vm_pid/task" ] || return 1
	for t in /proc/"$vm_pid"/task/*; do
		mode=$(sed -n 's/^Seccomp:[[:space:]]*//p' "$t/status")
		filters=$(sed -n 's/^Seccomp_filters:[[:space:]]*//p' "$t/status")
		want=1
		case $(cat "$t/comm") in vcpu*) want=2 ;; esac
		if [ "$mode" != 2 ] || [ "${filters:-0}" -lt "$want" ]; then
			echo "# thread $(cat "$t/comm"): Seccomp $mode, $filters filters (want 2, $want)"
			return 1
		fi
	done
}

# no_seccomp_report: no minivmm output of this scenario reports a forbidden
# system call (every scenario runs with the default --seccomp on).
no_seccomp_report() {
	! grep -l "seccomp: the .* thread made a system call" /tmp/*.out /tmp/*.log 2>/dev/null
}

# finish: the TAP plan; exit status the number of failed checks, or 125 (a
# testbed failure, which tests/testbed/run retries once) when checks failed
# after the nested guest reset itself.
finish() {
	check "no minivmm made a system call its seccomp filter forbids" no_seccomp_report
	echo "1..$checks"
	[ "$failures" -eq 0 ] && exit 0
	echo "# $failures of $checks checks failed"
	resets=$(spurious_resets)
	if [ -n "$resets" ]; then
		echo "# testbed failure: the nested guest reset itself (triple fault at no fault of" \
			"the guest) in: $(echo $resets)"
		exit 125
	fi
	exit "$failures"
}
