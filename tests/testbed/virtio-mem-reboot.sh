# Scenario: a guest reboot (system reset) unplugs all virtio-mem memory and
# removes its memslots; the next boot's driver plugs the requested size again.
. /t/lib.sh

start_vm reboot vmem-agent --memory 512M --virtio-mem size=2G,requested=384M
check "boot: plugged_size reaches 384 MiB" wait_until 90 status_is plugged_size $((384 * MiB))
check "boot: 3 memslots" status_is memslots 3
echo reboot >&3
check "reboot: the second boot starts" wait_until 60 status_is boots 2
check "reboot: plugged_size is 0 after the reset" status_is plugged_size 0
check "reboot: no memslot left" status_is memslots 0
check "reboot: usable_region_size is back to requested + 256 MiB" \
	status_is usable_region_size $((640 * MiB))
check "reboot: the guest plugs 384 MiB again" wait_until 90 status_is plugged_size $((384 * MiB))
check "reboot: the guest sees 384 MiB" wait_until 30 guest_is total $((384 * MiB))
check "reboot: the new vCPUs and the old threads run under their seccomp filters" seccomp_active
check "no 'broken' virtio-mem device in the guest log" [ -z "$(grep -i 'broken' "$out")" ]
stop_vm
check "the guest powered off: minivmm exit 0" [ "$rc" = 0 ]
[ "$failures" -eq 0 ] || show_output "$out"
finish
