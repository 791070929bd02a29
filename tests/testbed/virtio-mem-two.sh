# Scenario: two virtio-mem devices at once, each resized on its own, named by
# id; --virtio-mmio-cmdline lists both on the kernel command line.  mem0 is
# backed by a memfd with prealloc=on: plugging allocates host memory at once
# and unplugging punches it out again, so RSS follows plugged_size.
. /t/lib.sh

start_vm two vmem-agent --memory 512M --virtio-mmio-cmdline \
	--virtio-mem size=2G,requested=256M,backend=memfd,prealloc=on \
	--virtio-mem id=big,size=2G,block-size=4M,requested=384M

check "mem0 plugs 256 MiB" wait_until 90 status_is plugged_size $((256 * MiB)) mem0
check "big plugs 384 MiB" wait_until 90 status_is plugged_size $((384 * MiB)) big
a0=$(printf '%x' "$(status_field addr mem0)")
a1=$(printf '%x' "$(status_field addr big)")
check "the regions do not overlap (mem0 at 0x$a0, big at 0x$a1)" \
	[ "$(status_field addr big)" -ge $(($(status_field addr mem0) + 2048 * MiB)) ]
check "the guest sees 256 MiB in mem0's region" wait_until 30 guest_is "$a0" $((256 * MiB))
check "the guest sees 384 MiB in big's region" wait_until 30 guest_is "$a1" $((384 * MiB))
check "both devices are on the kernel command line" \
	grep -q "virtio_mmio.device=4K@0xf0000000:5 virtio_mmio.device=4K@0xf0001000:6" "$out"

ctl resize 1G >/tmp/noid.out
check "resize without an id is refused when there are two devices" \
	grep -q '"error":.*say which' /tmp/noid.out
ctl resize big 6M >/tmp/bad.out
check "resize big 6M is refused (block size 4 MiB)" grep -q '"error":.*multiple of the block size' /tmp/bad.out
ctl resize big 768M >/dev/null
check "big grows to 768 MiB" wait_until 60 status_is plugged_size $((768 * MiB)) big
check "the guest sees 768 MiB in big's region" wait_until 30 guest_is "$a1" $((768 * MiB))
check "mem0 is unchanged" status_is plugged_size $((256 * MiB)) mem0
rss_before=$(rss_kb)
ctl resize mem0 0 >/dev/null
check "mem0 shrinks to 0" wait_until 60 status_is plugged_size 0 mem0
rss_after=$(rss_kb)
echo "# minivmm VmRSS ${rss_before} kB with mem0 at 256 MiB, ${rss_after} kB at 0"
check "mem0 (memfd, prealloc): RSS fell by at least 240 MiB" \
	[ $((rss_before - rss_after)) -ge $((240 * 1024)) ]
check "big is unchanged" status_is plugged_size $((768 * MiB)) big

ctl shutdown >/tmp/shutdown.out
check "shutdown through the control socket is acknowledged" grep -q '"ok": *true' /tmp/shutdown.out
end_vm 30 "the shutdown command"
check "after shutdown minivmm exits 0" [ "$rc" = 0 ]
check "the socket file is gone" [ ! -e "$sock" ]
[ "$failures" -eq 0 ] || show_output "$out"
finish
