# Scenario: a hostile virtio-mem driver.  The guest unbinds its own
# virtio-mmio driver from the virtio-mem device and attacks the device from
# userspace through the MMIO window (/bin/vmem-attack: looping chains,
# buffers outside RAM or in unplugged blocks, wrong directions and lengths,
# requests beyond the region, alternate plugs and unplugs in a tight loop,
# UNPLUG_ALL storms, feature and status games).  From inside the guest: every
# protocol violation sets DEVICE_NEEDS_RESET and is not answered, every valid
# request gets the spec's answer, and the device works again after a reset.
# From the host: minivmm stays up and answers, its memory, file descriptors
# and threads are back to where they were, nothing stays plugged, and every
# thread still runs under its seccomp filter.
. /t/lib.sh

start_vm attack vmem-agent --memory 512M --virtio-mem size=1G,requested=0
check "boot: the guest is up" wait_until "$GUEST_TIMEOUT" grep -q "BOOTED" "$out"
check "boot: the device's driver probed (driver_ready)" wait_until 60 status_is driver_ready true

# The guest lets go of the device (nothing is plugged, so its driver can leave).
echo 'run for d in /sys/bus/platform/drivers/virtio-mmio/LNRO0005:*; do echo ${d##*/} >/sys/bus/platform/drivers/virtio-mmio/unbind; done' >&3
check "the guest unbound its virtio-mmio driver" wait_until 30 grep -q "RAN: 0" "$out"
check "... which reset the device (driver_ready false)" wait_until 10 status_is driver_ready false
ctl resize 64M >/dev/null
fds_before=$(ls /proc/"$vm_pid"/fd | wc -l)
threads_before=$(ls /proc/"$vm_pid"/task | wc -l)
rss_before=$(rss_kb)
echo "# before: VmRSS $rss_before kB, $fds_before fds, $threads_before threads"

echo "run vmem-attack 0xf0000000 200" >&3
check "the attacks ran to the end (waited up to 600 s)" wait_until 600 grep -q "ATTACK-DONE" "$out"
grep "ATTACK" "$out" | sed 's/^/# /'
for a in loop outside unplugged direction short indirect avail-jump qnum beyond alternate \
	unplug-all games; do
	check "attack $a: the device answered as the spec says and recovered" \
		grep -q "ATTACK $a: ok" "$out"
done
check "guest: no attack failed" grep -q "ATTACK-DONE failures 0 plugged 0" "$out"

rss_after=$(rss_kb)
fds_after=$(ls /proc/"$vm_pid"/fd | wc -l)
threads_after=$(ls /proc/"$vm_pid"/task | wc -l)
echo "# after: VmRSS $rss_after kB, $fds_after fds, $threads_after threads"
check "host: minivmm is still running and answers" status_is plugged_size 0
check "host: VmRSS within 16 MiB of before the attacks" [ "$rss_after" -le $((rss_before + 16384)) ]
check "host: the same number of file descriptors ($fds_before)" [ "$fds_after" = "$fds_before" ]
check "host: the same number of threads ($threads_before)" [ "$threads_after" = "$threads_before" ]
check "host: no memslot left in the region" status_is memslots 0
check "host: every thread still under its seccomp filter" seccomp_active
check "host: minivmm reported the broken driver (DEVICE_NEEDS_RESET)" \
	grep -q "the device needs a reset" "$out"

echo done >&3
end_vm 60 "'done' was typed (waited for the guest to power off)"
check "the guest powered off: minivmm exit 0" [ "$rc" = 0 ]
[ "$failures" -eq 0 ] || show_output "$out"

# The same attacker under a tight vm.max_map_count: every run of plugged or
# unplugged blocks costs minivmm one mapping, and a budget of 80 (the limit
# less 4096) ends each round of alternate plugs in BUSY long before the
# kernel would refuse a mapping.
old_max=$(cat /proc/sys/vm/max_map_count)
echo $((4096 + 80)) >/proc/sys/vm/max_map_count
start_vm attack2 vmem-agent --memory 512M --virtio-mem size=1G,requested=0
check "tight limit: the guest is up" wait_until "$GUEST_TIMEOUT" grep -q "BOOTED" "$out"
check "tight limit: driver_ready" wait_until 60 status_is driver_ready true
echo 'run for d in /sys/bus/platform/drivers/virtio-mmio/LNRO0005:*; do echo ${d##*/} >/sys/bus/platform/drivers/virtio-mmio/unbind; done' >&3
check "tight limit: the guest unbound its driver" wait_until 30 grep -q "RAN: 0" "$out"
ctl resize 128M >/dev/null
echo "run vmem-attack 0xf0000000 20" >&3
check "tight limit: the attacks ran to the end (waited up to 600 s)" \
	wait_until 600 grep -q "ATTACK-DONE" "$out"
grep "ATTACK alternate" "$out" | sed 's/^/# /'
check "tight limit: alternate plugs were answered BUSY, every round" \
	grep -q "ATTACK alternate: ok .* [1-9][0-9]* BUSY" "$out"
refusal_names_limit() { ctl status | grep -q '"last_refusal": "[^"]*vm.max_map_count'; }
check "tight limit: status says why (vm.max_map_count)" refusal_names_limit
maps=$(wc -l </proc/"$vm_pid"/maps)
check "tight limit: minivmm's mappings ($maps) stayed below the limit" [ "$maps" -lt $((4096 + 80)) ]
check "tight limit: guest: no attack failed" grep -q "ATTACK-DONE failures 0 plugged 0" "$out"
echo done >&3
end_vm 60 "'done' was typed (waited for the guest to power off)"
echo "$old_max" >/proc/sys/vm/max_map_count
check "tight limit: the guest powered off: minivmm exit 0" [ "$rc" = 0 ]
[ "$failures" -eq 0 ] || show_output "$out"
finish
