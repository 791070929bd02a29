# testbed-hosts: debian iommufd
# testbed-options: --edu 2
# Scenario: which IOMMU backend minivmm uses.  iommu=auto (the default) picks
# iommufd where the host kernel has /dev/iommu and the device a VFIO cdev
# (the iommufd test host) and type1 where not (the Debian one) - or where the
# user may not open them - and --verbose says why.  iommu=type1 works on both (the iommufd kernel keeps the real
# /dev/vfio/vfio), and its pins count in VmLck, iommufd's in VmPin.
# iommu=iommufd where the kernel lacks it is one line and exit 2, as are two
# devices asking for different backends (a VM has one address space).  Two
# devices on iommufd share one IOAS: boot RAM is pinned once.
. /t/lib.sh

read -r bdf group <<EOF
$(sed -n 1p /testbed/edu)
EOF
read -r bdf2 group2 <<EOF
$(sed -n 2p /testbed/edu)
EOF
echo "# edu at $bdf (group $group) and $bdf2 (group $group2)"
check "the test host has two edu bound to vfio-pci" [ -e "/dev/vfio/$group" -a -e "/dev/vfio/$group2" ]
ram_kb=$RAM_512M_KB

# field KEY: the first value of KEY in the status JSON $st (string or number).
field() { echo "$st" | tr ',{}' '\n\n\n' | sed -n "s/^ *\"$1\": *\"*\([^\"]*\)\"*$/\1/p" | head -n 1; }
socket_up() { [ -S "$sock" ] || vm_exited; }

# backend NAME KIND OPTIONS...: minivmm with OPTIONS uses KIND; boot RAM is
# pinned in KIND's counter, and only there.  The guest is not waited for.
backend() {
	name=$1 kind=$2
	shift 2
	if [ "$kind" = iommufd ]; then counter=VmPin other=VmLck; else counter=VmLck other=VmPin; fi
	start_vm "$name" vmem-agent --memory 512M --verbose "$@"
	check "$name: minivmm is up (waited up to 60 s for its control socket)" wait_until 60 socket_up
	st=$(ctl status)
	echo "# $name: $(echo "$st" | sed 's/.*"vfio": //')"
	check "$name: status says iommu $kind, pinned_counter $counter" \
		[ "$(field iommu)" = "$kind" -a "$(field pinned_counter)" = "$counter" ]
	check "$name: $counter is boot RAM ($(status_kb $counter) kB), $other is 0" \
		[ "$(status_kb $counter)" = "$ram_kb" -a "$(status_kb $other)" = 0 ]
	kill_vm
	end_vm 30 "the shutdown command"
	check "$name: minivmm ended (status $rc)" [ "$rc" = 0 ]
}

backend auto "$IOMMU" --vfio "$bdf"
check "auto: --verbose names the backend and why" \
	grep -q "vfio: IOMMU backend $IOMMU (auto: " "$out"
grep "IOMMU backend" "$out" | sed 's/^/# /'
backend type1 type1 --vfio "$bdf,iommu=type1"

if [ "$HOST_KERNEL" = iommufd ]; then
	backend iommufd iommufd --vfio "$bdf,iommu=iommufd"
	# Two devices, one IOAS: boot RAM pinned once, both report the same IOAS.
	backend two iommufd --vfio "$bdf" --vfio "$bdf2"
	ioas=$(echo "$st" | grep -o '"ioas_id": [0-9]*' | sort -u | wc -l)
	check "two: both devices are in one IOAS" \
		[ "$(echo "$st" | grep -o '"ioas_id": [0-9]*' | wc -l)" = 2 -a "$ioas" = 1 ]
	# auto when iommufd cannot take the device (another VMM holds it through
	# its group): type1 is tried next, and the one line says both.
	start_vm holder vmem-agent --memory 512M --vfio "$bdf,iommu=type1"
	check "holder: minivmm is up (waited up to 60 s for its control socket)" wait_until 60 socket_up
	refused_with "auto while another VMM holds the device" \
		"VFIO_DEVICE_BIND_IOMMUFD.* (and type1, tried next: .*in use by another process" \
		--memory 512M --vfio "$bdf"
	kill_vm
	end_vm 30 "the shutdown command"
	# A user set up for type1 (given the group's device, not /dev/iommu or the
	# cdev) keeps type1 under auto.  (The test kernel triple-faults at once:
	# the backend is chosen and boot RAM pinned before the vCPU runs.)
	echo "tester:x:1000:1000::/tmp:/bin/sh" >>/etc/passwd
	chmod 0666 /dev/kvm
	chown 1000 "/dev/vfio/$group"
	msg=$(
		ulimit -l $((ram_kb + 1024))
		su -s /bin/sh -c "minivmm --kernel /t/images/triple-fault.bzImage --memory 512M \
			--vfio $bdf --verbose --console none" tester 2>&1
	)
	echo "$msg" | grep "IOMMU backend" | sed 's/^/# user: /'
	check "a user given only the group: auto keeps type1" \
		msg_matches 'IOMMU backend type1 (auto: this user may not open /dev/iommu)'
	check "... and runs (boot RAM pinned, the test kernel's triple fault reported)" \
		msg_matches 'the guest triple-faulted'
	check "... with no iommufd attempt to fall back from" msg_lacks 'trying type1'
	chown 0 "/dev/vfio/$group"
else
	refused_with "iommu=iommufd on a kernel without it" \
		'iommu=iommufd: this host has no /dev/iommu: .*CONFIG_IOMMUFD.*use iommu=type1' \
		--memory 512M --vfio "$bdf,iommu=iommufd"
fi
refused_with "two devices asking for different backends" \
	"$bdf asks for iommu=type1 and $bdf2 for iommu=iommufd.*give them the same iommu=" \
	--memory 512M --vfio "$bdf,iommu=type1" --vfio "$bdf2,iommu=iommufd"
[ "$failures" -eq 0 ] || show_output "$out"
finish
