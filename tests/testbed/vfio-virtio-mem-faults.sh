# testbed-hosts: debian iommufd
# Scenario: pinning fails at run time.  minivmm runs as an unprivileged user
# (given /dev/kvm and edu's group, no CAP_IPC_LOCK) with virtio-mem and edu.
# At start-up RLIMIT_MEMLOCK must cover the worst case (boot RAM + the whole
# region): below it minivmm refuses in one line.  While it runs, the test
# lowers the limit (prlimit) below what a resize needs: the plug whose
# map fails is answered BUSY and rolled back - nothing stays half-mapped
# (pinned - boot RAM == plugged_size; VmLck with type1, VmPin with iommufd,
# which charges the limit per user), status counts the refusal with its
# reason, the guest marks no device broken and keeps running.  After the
# limit is raised again the guest's retry (Linux waits 50 s) plugs the rest.
# (/t/bin/set-memlock stands in for prlimit(1), which the test host lacks.)
. /t/lib.sh

read -r bdf group <<EOF
$(head -n 1 /testbed/edu)
EOF
check "the test host has an edu bound to vfio-pci" [ -n "$bdf" -a -e "/dev/vfio/$group" ]
ram_kb=$RAM_512M_KB
region_kb=$((2048 * 1024))
worst_kb=$((ram_kb + region_kb))

echo "tester:x:1000:1000::/tmp:/bin/sh" >>/etc/passwd
echo "tester:x:1000:" >>/etc/group
give_device 1000 "$bdf" "$group"
vm_args="--memory 512M --virtio-mem size=2G,requested=256M --vfio $bdf,id=edu0"

# Below the worst case: refused before anything is pinned.
msg=$(
	ulimit -l $((worst_kb - 4))
	su -s /bin/sh -c "minivmm --kernel $KERNEL $vm_args" tester 2>&1
)
rc=$?
echo "# ulimit -l $((worst_kb - 4)): $msg"
check "memlock below boot RAM + region: exit 2 with one line" [ "$rc" = 2 -a "$(echo "$msg" | wc -l)" = 1 ]
check "... naming the worst case and the ulimit -l that covers it" \
	sh -c "echo '$msg' | grep -q 'may have to pin (boot RAM .* and every virtio-mem region fully plugged); raise it with ulimit -l $worst_kb'"

# At the worst case it runs, as the user.
sock=/tmp/faults.sock
out=/tmp/faults.out
mkfifo /tmp/faults.in
exec 3<>/tmp/faults.in
(
	ulimit -l "$worst_kb"
	exec su -s /bin/sh -c "exec minivmm --kernel $KERNEL --initrd $INITRD \
		--cmdline '$BASE_CMDLINE minivmm.test=vmem-agent' --api-socket $sock $vm_args" tester
) </tmp/faults.in >"$out" 2>&1 &
su_pid=$!
minivmm_up() { vm_pid=$(pidof minivmm | cut -d' ' -f1); [ -n "$vm_pid" ] && [ -S "$sock" ]; }
check "minivmm runs as the user (waited up to 30 s for its socket)" wait_until 30 minivmm_up
check "... as uid 1000" [ "$(sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$vm_pid/status")" = 1000 ]
check "256M: plugged at boot (waited up to 180 s)" wait_until 180 pinned_is 256
end_if_failed

# Leave room for 64 MiB more than what is pinned now: a resize to 1 GiB cannot finish.
low_kb=$((ram_kb + 320 * 1024))
echo "# $(/t/bin/set-memlock "$vm_pid" $((low_kb * 1024)))"
ctl resize 1G >/dev/null
refused() { [ "$(status_field refused_plugs)" -ge 1 ]; }
check "a plug was refused (waited up to 120 s)" wait_until 120 refused
plugged=$(status_field plugged_size)
pinned=$(pinned_kb)
echo "# refused: plugged_size $plugged, $PINNED $pinned kB, status: $(ctl status | tr -d '\n' | sed 's/.*"last_refusal"/"last_refusal"/;s/,.*//')"
check "nothing half-mapped: $PINNED - boot RAM ($((pinned - ram_kb)) kB) == plugged_size" \
	[ $((pinned - ram_kb)) = $((plugged / 1024)) ]
check "plugged_size stayed within the limit ($((plugged / MiB)) MiB <= 320 MiB)" \
	[ "$plugged" -ge $((256 * MiB)) -a "$plugged" -le $((320 * MiB)) ]
names_memlock() { ctl status | grep -q '"last_refusal": "[^"]*locked-memory limit'; }
check "status names the cause: the locked-memory limit" names_memlock
check "minivmm said so in one line on its log" grep -q "plug refused: .*answered BUSY" "$out"
echo "ping still-alive" >&3
pong() { tr -d '\r' <"$out" | grep -q "PONG: still-alive"; }
check "the guest keeps running (answered a ping within 30 s)" wait_until 30 pong
check "the guest marked no device broken" [ -z "$(grep -i broken "$out")" ]

# Raise the limit: Linux retries the plug 50 s after the BUSY, and it completes.
echo "# $(/t/bin/set-memlock "$vm_pid" $((worst_kb * 1024)))"
check "after the limit is raised, the guest's retry plugs 1 GiB (waited up to 200 s)" \
	wait_until 200 pinned_is 1024
check "the guest sees 1 GiB" wait_until 30 guest_is total $((1024 * MiB))
check "the guest marked no device broken" [ -z "$(grep -i broken "$out")" ]
echo done >&3
check "guest powered off (waited up to 60 s)" wait_until 60 vm_exited
wait "$su_pid"
rc=$?
exec 3>&-
check "minivmm exit 0" [ "$rc" = 0 ]
give_device 0 "$bdf" "$group"
[ "$failures" -eq 0 ] || show_output "$out"
finish
