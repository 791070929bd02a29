# Scenario: storms with a device passed through.  STORM_RESIZES (1000)
# resizes to random sizes, fired with pauses of 0 to 0.4 s every tenth one
# (most arrive while the previous one is still being plugged or unplugged),
# then STORM_REBOOTS (20) guest reboots.  A reboot cycle takes about 13 s in
# the testbed, so the full 100 (STORM_REBOOTS=100 tests/testbed/run storm,
# about 25 minutes) do not fit into CI's 40 minutes; CI runs 20.  After each storm the VM is back where it
# started: plugged_size and the pinned memory at boot RAM + 512 MiB to the kB,
# the same memslots, file descriptors and threads, VmRSS within 32 MiB, and
# minivmm answered throughout.
# testbed-hosts: debian
# testbed-options: --timeout 2400
. /t/lib.sh

RESIZES=${STORM_RESIZES:-1000}
REBOOTS=${STORM_REBOOTS:-20}

read -r bdf group <<EOF
$(head -n 1 /testbed/edu)
EOF
check "the test host has an edu bound to vfio-pci" [ -n "$bdf" -a -e "/dev/vfio/$group" ]
ram_kb=$RAM_512M_KB

start_vm storm vmem-agent --memory 512M --virtio-mem size=4G,requested=512M --vfio "$bdf,id=edu0"
check "boot: plugged_size reaches 512 MiB" wait_until 120 status_is plugged_size $((512 * MiB))
end_if_failed
settled() { [ "$(pinned_kb)" = $((ram_kb + 512 * 1024)) ]; }
check "boot: the pinned memory is boot RAM + 512 MiB" wait_until 60 settled
fds0=$(ls /proc/"$vm_pid"/fd | wc -l)
threads0=$(ls /proc/"$vm_pid"/task | wc -l)
slots0=$(status_field memslots)
rss0=$(rss_kb)
echo "# baseline: $fds0 fds, $threads0 threads, $slots0 memslots, VmRSS $rss0 kB, $PINNED $(pinned_kb) kB"

# same_as_baseline WHAT: the checks after a storm.
same_as_baseline() {
	check "$1: plugged_size back at 512 MiB (waited up to 300 s)" \
		wait_until 300 status_is plugged_size $((512 * MiB))
	check "$1: $PINNED back at boot RAM + 512 MiB, to the kB (waited up to 60 s)" wait_until 60 settled
	fds=$(ls /proc/"$vm_pid"/fd | wc -l)
	threads=$(ls /proc/"$vm_pid"/task | wc -l)
	rss=$(rss_kb)
	echo "# $1: $fds fds, $threads threads, $(status_field memslots) memslots, VmRSS $rss kB"
	check "$1: the same file descriptors ($fds0)" [ "$fds" = "$fds0" ]
	check "$1: the same threads ($threads0)" [ "$threads" = "$threads0" ]
	check "$1: the same memslots ($slots0)" status_is memslots "$slots0"
	check "$1: VmRSS within 32 MiB of the baseline" [ "$rss" -le $((rss0 + 32768)) ]
	check "$1: no plug refused, nothing kept" \
		[ "$(status_field refused_plugs)" = 0 -a "$(status_field kept_bytes)" = 0 ]
	check "$1: every thread under its seccomp filter" seccomp_active
}

# Resizes: 0 to 1536 MiB in 64 MiB steps, one after the other as fast as ctl goes.
t0=$(uptime_s)
sent=0
refused=0
while [ "$sent" -lt "$RESIZES" ]; do
	size=$(((RANDOM % 25) * 64))M
	ctl resize "$size" >/dev/null || refused=$((refused + 1))
	sent=$((sent + 1))
	[ $((sent % 10)) = 0 ] && sleep "0.$((RANDOM % 5))" # let the guest get going
	if [ $((sent % 200)) = 0 ] && vm_exited; then
		echo "# minivmm exited after $sent resizes"
		break
	fi
done
ctl resize 512M >/dev/null
echo "# $sent resizes in $(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN { printf "%.0f", b - a }') s"
check "resizes: all $RESIZES were accepted (none refused: $refused)" [ "$sent" = "$RESIZES" -a "$refused" = 0 ]
same_as_baseline "after $RESIZES resizes"

# Reboots: each unplugs everything and unmaps it; the next boot plugs 512 MiB again.
booted=0
t0=$(uptime_s)
while [ "$booted" -lt "$REBOOTS" ]; do
	echo reboot >&3
	wait_until 180 status_is boots $((booted + 2)) || break
	booted=$((booted + 1))
done
echo "# $booted reboots in $(awk -v a="$t0" -v b="$(uptime_s)" 'BEGIN { printf "%.0f", b - a }') s"
check "reboots: $REBOOTS reboots, each booted again (waited up to 180 s each)" [ "$booted" = "$REBOOTS" ]
same_as_baseline "after $REBOOTS reboots"
check "no 'broken' virtio-mem device in the guest log" [ -z "$(grep -i 'broken' "$out")" ]

stop_vm
check "the guest powered off: minivmm exit 0" [ "$rc" = 0 ]
[ "$failures" -eq 0 ] || show_output "$out"
finish
