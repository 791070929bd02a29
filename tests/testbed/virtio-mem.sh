# Scenario: one virtio-mem device.  The guest plugs the requested size at
# boot and follows resizes up and down (minivmm's RSS falls when memory is
# unplugged), and invalid resizes change nothing.  "minivmm ctl status" must
# agree with what the guest sees at every step.  Every command typed on the
# guest's console is obeyed whole.  (Reboot: virtio-mem-reboot.)
. /t/lib.sh

start_vm vmem vmem-agent --memory 512M --virtio-mem size=4G,requested=512M

check "boot: plugged_size reaches 512 MiB" wait_until 90 status_is plugged_size $((512 * MiB))
check "boot: every minivmm thread runs under its seccomp filter" seccomp_active
check "boot: the guest's /proc/iomem has 512 MiB of System RAM (virtio_mem)" \
	wait_until 30 guest_is total $((512 * MiB))
# Onlining trails the resources in /proc/iomem a little: wait for MemTotal.
check "boot: MemTotal grew by 512 MiB, within one 128 MiB block" \
	wait_until 30 memtotal_grew_kb $((384 * 1024 + 1)) $((512 * 1024))
echo "# MemTotal grew by $(($(guest_value memtotal_kb) - $(guest_value boot_kb))) kB"
addr=$(status_field addr)
check "status: the region is 128 MiB aligned above 4 GiB (addr $addr)" \
	[ "$addr" -ge $((4096 * MiB)) -a $((addr % (128 * MiB))) -eq 0 ]
check "status: region_size 4 GiB, block_size 2 MiB" \
	[ "$(status_field region_size)" = $((4096 * MiB)) -a "$(status_field block_size)" = $((2 * MiB)) ]
check "status: usable_region_size is requested + 256 MiB" status_is usable_region_size $((768 * MiB))
check "status: 4 memslots for 512 MiB (128 MiB each)" status_is memslots 4
check "the guest sees the region where status says it is" \
	[ -n "$(guest_value "$(printf '%x' "$addr")")" ]

ctl resize 1536M >/tmp/resize.out
check "resize 1536M is accepted" grep -q '"requested_size": *1610612736' /tmp/resize.out
check "resize: plugged_size reaches 1536 MiB" wait_until 60 status_is plugged_size $((1536 * MiB))
check "resize: the guest sees 1536 MiB" wait_until 30 guest_is total $((1536 * MiB))
check "resize: usable_region_size grew to 1792 MiB" status_is usable_region_size $((1792 * MiB))
check "resize: 12 memslots" status_is memslots 12
check "resize: still under seccomp" seccomp_active

# ctl dump: where each vCPU is and each device's state, for a guest that hangs.
ctl dump >/tmp/dump.out
echo "# dump: $(cut -c 1-400 /tmp/dump.out)"
check "dump: the vCPU answered, in 64-bit mode" grep -q '"answered": true.*"mode": "long"' /tmp/dump.out
check "dump: the virtio-mem transport, its queue ready, and the device's state" \
	grep -q '"kind": "virtio-mmio".*"ready": true.*"plugged_size": 1610612736' /tmp/dump.out
check "dump: the guest goes on running (plugged_size still 1536 MiB)" \
	status_is plugged_size $((1536 * MiB))

# Make plugged memory resident on the host (the guest writes 512 MiB, about
# 15 s under TCG), then shrink: what is unplugged is given back to the host.
echo "touch 512" >&3
check "the guest wrote 512 MiB" wait_until 90 grep -q "TOUCHED: 512" "$out"
rss_before=$(rss_kb)
ctl resize 256M >/dev/null
check "shrink: plugged_size falls to 256 MiB" wait_until 60 status_is plugged_size $((256 * MiB))
check "shrink: the guest sees 256 MiB" wait_until 30 guest_is total $((256 * MiB))
rss_after=$(rss_kb)
echo "# minivmm VmRSS ${rss_before} kB at 1536 MiB plugged, ${rss_after} kB at 256 MiB"
check "shrink: minivmm's RSS fell by at least 256 MiB" [ $((rss_before - rss_after)) -ge $((256 * 1024)) ]
check "shrink: usable_region_size does not shrink at run time" \
	status_is usable_region_size $((1792 * MiB))
check "shrink: 2 memslots" status_is memslots 2

# Invalid resizes: refused with an error, nothing changes.
ctl resize 5G >/tmp/bad1.out
check "resize above the region size fails (exit 1)" [ $? -eq 1 ]
check "... with an error naming the region size" grep -q '"error":.*larger than the region' /tmp/bad1.out
ctl resize 3M >/tmp/bad2.out
check "resize by a non-multiple of the block size fails (exit 1)" [ $? -eq 1 ]
check "... with an error naming the block size" grep -q '"error":.*multiple of the block size' /tmp/bad2.out
ctl resize mem7 1G >/tmp/bad3.out
check "resize of an unknown device fails" grep -q '"error":.*no virtio-mem device' /tmp/bad3.out
check "after the bad resizes requested_size is still 256 MiB" status_is requested_size $((256 * MiB))
sleep 2
check "after the bad resizes plugged_size is still 256 MiB" status_is plugged_size $((256 * MiB))

# Every command line typed on the console is obeyed whole.  The agent used to
# wait for commands with busybox's read -t, which drops the part of a line it
# has consumed when its time is up: a line arriving near the end of the wait
# was cut, and a 200-character one (slow to consume) about once in ten.  Here
# each ping goes out at a random moment of the agent's wait for a command and
# must come back before the next one is typed.
pad=$(printf '%0200d' 0)
pong_for() { tr -d '\r' <"$out" | grep -q "PONG: $1-$pad"; }
answered=0
i=0
while [ $i -lt 30 ]; do
	# With minivmm gone nobody answers: stop here, so the scenario ends (and
	# shows the console) instead of running into its timeout.
	vm_exited && { echo "# minivmm has exited; no more pings"; break; }
	i=$((i + 1))
	sleep "0.$((RANDOM % 10))"
	echo "ping $i-$pad" >&3
	wait_until 10 pong_for $i && answered=$((answered + 1))
done
check "30 long command lines typed at random moments were each obeyed ($answered)" [ "$answered" = 30 ]
check "... and none was cut (no unknown command)" [ -z "$(grep "AGENT: unknown" "$out")" ]

check "no 'broken' virtio-mem device in the guest log" [ -z "$(grep -i 'broken' "$out")" ]
stop_vm
check "the guest powered off: minivmm exit 0" [ "$rc" = 0 ]
[ "$failures" -eq 0 ] || show_output "$out"
finish
