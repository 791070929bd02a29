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
	fi
}

# run_guest NAME TEST [MINIVMM OPTIONS...]: boot the default guest with
# minivmm.test=TEST (stdin from $GUEST_INPUT, default /dev/null), console
# output in /tmp/NAME.out with each line prefixed by the L1 uptime, exit
# status in $rc, seconds from start to the guest's first userspace line
# (GUEST-INIT) in $first_user_s.
run_guest() {
	name=$1
	test=$2
	shift 2
	out=/tmp/$name.out
	t0=$(uptime_s)
	{
		timeout "$GUEST_TIMEOUT" minivmm --kernel "$KERNEL" --initrd "$INITRD" \
			--cmdline "$BASE_CMDLINE minivmm.test=$test" "$@" <"${GUEST_INPUT:-/dev/null}" 2>&1
		echo "RC: $?"
	} | tr -d '\r' | while IFS= read -r line; do
		read -r up _ </proc/uptime
		echo "$up $line"
	done >"$out"
	rc=$(sed -n 's/^[0-9.]* RC: //p' "$out")
	first_user_s=$(awk -v t0="$t0" '$2 == "GUEST-INIT" { printf "%.2f", $1 - t0; exit }' "$out")
}

# stop_after NAME PATTERN COUNT: wait (up to GUEST_TIMEOUT) until the output
# of the run_guest running in the background has COUNT lines equal to
# PATTERN, then stop minivmm with SIGTERM.  Returns 1 on timeout.
stop_after() {
	i=0
	while [ "$(count "$2" "/tmp/$1.out")" -lt "$3" ]; do
		i=$((i + 1))
		[ "$i" -le "$GUEST_TIMEOUT" ] || { killall minivmm; return 1; }
		sleep 1
	done
	killall minivmm
}

# value KEY FILE: the value of the first "KEY: value" line the guest printed.
value() { sed -n "s/^[0-9.]* $1: //p" "$2" | head -n 1; }
count() { cat "$2" 2>/dev/null | grep -c "^[0-9.]* $1\$"; }

show_output() {
	echo "# --- $1 ---"
	sed 's/^[0-9.]* /# /' "$1"
}

finish() {
	echo "1..$checks"
	[ "$failures" -eq 0 ] || echo "# $failures of $checks checks failed"
	exit "$failures"
}
