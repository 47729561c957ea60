#!/bin/sh
# PID 1 of a kernel-matrix guest (see run.sh): busybox, the static
# nspidtrace and this script are the whole initramfs. It runs each check
# against the kernel's own truth (/proc/PID/status NStgid), prints one
# "NSPT-CHECK name pass|FAIL detail" line per check on the serial console,
# and powers off.

export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /tmp
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
# tracefs is left unmounted on purpose: nspidtrace mounts it itself.

say() { echo "NSPT-$*"; }
pass() { say "CHECK $1 pass"; }
# lost LOG: the events the kernel dropped, as the run's last log line counts
# them. Kernels whose tracepoints are preemptible (7.2 and 7.3 here) skip a
# program that runs while the same one is preempted on that CPU.
lost() { sed -n 's/.* lost=\([0-9]*\).*/\1/p' "$1" | tail -1; }
# lost_or_fail NAME LOG DETAIL: a check whose lines are missing passes as
# "lost" when the run reported dropping events, and fails otherwise.
lost_or_fail() {
	if [ "$(lost "$2")" -gt 0 ] 2>/dev/null; then
		say "CHECK $1 lost $3 (the run reported $(lost "$2") lost events)"
	else
		fail "$1" "$3"
	fi
}
fail() {
	name=$1
	shift
	say "CHECK $name FAIL $*"
}
# show [FILE]: a failed check's evidence (a file, or standard input), bounded.
show() { cat ${1:+"$1"} | head -c 1500 | sed 's/^/  | /'; }

say "KERNEL $(uname -r)"
# The build of the programs the binary chose for this kernel.
say "VERSION $(nspidtrace version | tail -1)"
mark=4242

# `nspidtrace <pid> -o json` must print this, the kernel's own truth.
nstgid() { sed -n 's/^NStgid:[[:space:]]*//p' "/proc/$1/status" | tr -s '\t ' ','; }

# popcount HEX: the bits set in a hexadecimal number (a capability set).
popcount() {
	n=0
	h=$1
	while [ -n "$h" ]; do
		d=${h%"${h#?}"}
		h=${h#?}
		case $d in
		1 | 2 | 4 | 8) n=$((n + 1)) ;;
		3 | 5 | 6 | 9 | a | c) n=$((n + 2)) ;;
		7 | b | d | e) n=$((n + 3)) ;;
		f) n=$((n + 4)) ;;
		esac
	done
	echo $n
}

# mismatches JSON PID: what of the namespaces, IDs and capability sets the
# record in JSON shows differs from /proc/PID (ns/*, status); nothing when
# all match. The capability sets are compared by how many they hold.
mismatches() {
	for k in cgroup ipc mnt net pid pid_for_children time time_for_children user uts; do
		[ -e "/proc/$2/ns/$k" ] || continue
		inode=$(readlink "/proc/$2/ns/$k" | tr -dc 0-9)
		grep -q "\"$k\":$inode[,}]" "$1" || echo "ns $k is $inode"
	done
	for k in Inh Prm Eff Bnd Amb; do
		want=$(popcount "$(sed -n "s/^Cap$k:[[:space:]]*//p" "/proc/$2/status")")
		key=cap_$(echo "$k" | tr 'A-Z' 'a-z')
		got=$(sed -n "s/.*\"$key\":\[\([^]]*\)\].*/\1/p" "$1" | tr ',' '\n' | grep -c cap_)
		[ "$got" = "$want" ] || echo "$key holds $want capabilities, not $got"
	done
	ids=$(sed -n 's/^[UG]id:[[:space:]]*//p' "/proc/$2/status" | tr -s '\t\n ' '   ')
	set -- "$1" $ids
	grep -q "\"cred\":{\"uid\":$2,\"euid\":$3,\"suid\":$4,\"fsuid\":$5,\"gid\":$6,\"egid\":$7,\"sgid\":$8,\"fsgid\":$9," "$1" ||
		echo "IDs are $ids"
}

# A process three pid namespaces below the host's: sleep is PID 1 in the
# innermost one, and every level has its own PID for it.
workload() {
	unshare -p -f sh -c "unshare -p -f sh -c 'unshare -p -f sleep $mark'" &
}
# find_workload: the host PID of the innermost sleep, once it runs.
find_workload() {
	for i in $(seq 50); do
		for d in /proc/[0-9]*; do
			[ "$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null)" = "sleep $mark " ] || continue
			p=${d#/proc/}
			if [ "$(nstgid "$p" | tr ',' '\n' | wc -l)" = 4 ]; then
				echo "$p"
				return 0
			fi
		done
		sleep 0.2
	done
	return 1
}

# wait_started LOG TEXT PID: wait until LOG says TEXT, while PID lives.
wait_started() {
	for i in $(seq 300); do
		grep -q "$2" "$1" && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.2
	done
	return 1
}

# 1. trace: attach, then see the workload's fork, exec and exit at every level.
nspidtrace trace --duration 120s >/tmp/trace.ndjson 2>/tmp/trace.err &
tracer=$!
if wait_started /tmp/trace.err 'tracing started' $tracer; then
	pass start
else
	fail start "trace did not start"
	show /tmp/trace.err
fi

workload
host=$(find_workload)
if [ -z "$host" ]; then
	fail workload "no sleep three pid namespaces deep"
	ps
fi
levels=$(nstgid "$host")
say "WORKLOAD host=$host nstgid=$levels"

# 2. <pid>: every level, argv (read from the process's memory, or from
# /proc on kernels without bpf_copy_from_user_task), and the namespaces,
# IDs and capabilities /proc shows.
nspidtrace "$host" -o json >/tmp/pid.json 2>/tmp/pid.err
differs=$(mismatches /tmp/pid.json "$host")
if grep -q "\"nspid\":\[$levels\]" /tmp/pid.json && grep -q "\"args\":\[\"sleep\",\"$mark\"\]" /tmp/pid.json &&
	[ -z "$differs" ]; then
	pass pid
else
	fail pid "want nspid [$levels], args [sleep $mark] and /proc's namespaces and IDs;" $differs
	show /tmp/pid.json
	show /tmp/pid.err
fi

# 3. tree: the text tree writes sleep(HOST/L1/L2/1).
nspidtrace tree >/tmp/tree.txt 2>/tmp/tree.err
if grep -q "sleep($(echo "$levels" | tr ',' '/'))" /tmp/tree.txt; then
	pass tree
else
	fail tree "want sleep($(echo "$levels" | tr ',' '/'))"
	show /tmp/tree.txt
	show /tmp/tree.err
fi

# 4. record: a recording with the workload in its snapshot and a signal
# sent while it records, then 5. --from answers from it alone.
sleep 60 &
victim=$!
nspidtrace record -o /tmp/rec.ndjson --duration 3s 2>/tmp/record.err &
recorder=$!
wait_started /tmp/record.err 'recording started' $recorder
kill -TERM $victim
wait $recorder
if ! grep -q "\"type\":\"proc\".*\"nspid\":\[$levels\]" /tmp/rec.ndjson || ! grep -q '"type":"end"' /tmp/rec.ndjson; then
	fail record "want a proc line with nspid [$levels] and an end line"
	show /tmp/record.err
elif ! grep -q "\"type\":\"signal\",\"pid\":$victim,.*\"signal_name\":\"SIGTERM\"" /tmp/rec.ndjson; then
	lost_or_fail record /tmp/record.err "no SIGTERM signal line for $victim"
	grep '"type":"signal"' /tmp/rec.ndjson | show
	show /tmp/record.err
else
	pass record
fi
nspidtrace --from /tmp/rec.ndjson "$host" -o json >/tmp/from.json 2>/tmp/from.err
if grep -q "\"nspid\":\[$levels\]" /tmp/from.json; then
	pass from
else
	fail from "want nspid [$levels]"
	show /tmp/from.json
	show /tmp/from.err
fi

# 6. storm: the trace keeps pace with a run of short processes, every
# one's exec seen, on this kernel and build (under TCG, a slow machine).
storm=300
i=0
while [ $i -lt $storm ]; do
	/bin/true
	i=$((i + 1))
done

# Back to 1: end the workload, stop the trace, and read what it saw. The
# workload is its namespace's init: only SIGKILL reaches it from outside.
kill -KILL "$host"
sleep 1
kill -INT $tracer
wait $tracer
rc=$?
for type in fork exec exit; do
	if ! grep -q "\"type\":\"$type\".*\"pid\":$host,.*\"nspid\":\[$levels\]" /tmp/trace.ndjson; then
		missing="$missing $type"
	fi
done
# The unshare(CLONE_NEWPID) that made the innermost namespace: the syscall
# tracepoints work too.
grep -q '"type":"unshare",.*"ret":0' /tmp/trace.ndjson || missing="$missing unshare"
if [ $rc = 0 ] && [ -z "$missing" ]; then
	pass trace
else
	if [ $rc = 0 ]; then
		lost_or_fail trace /tmp/trace.err "no$missing line with pid $host and nspid [$levels]"
	else
		fail trace "exit status $rc"
	fi
	grep "\"pid\":$host," /tmp/trace.ndjson | show
	echo "  | $(grep -c '"type":"exec"' /tmp/trace.ndjson) exec lines in all, the last ones:"
	grep '"type":"exec"' /tmp/trace.ndjson | tail -3 | show
	show /tmp/trace.err
fi

seen=$(grep -c '"type":"exec".*"filename":"/bin/true"' /tmp/trace.ndjson)
if [ "$seen" = $storm ]; then
	pass storm
else
	lost_or_fail storm /tmp/trace.err "$seen exec lines of /bin/true, want $storm"
	show /tmp/trace.err
fi

# What the trace counted, the events the kernel dropped among them.
grep -o 'trace ended.*' /tmp/trace.err | head -1 | sed 's/^/NSPT-TRACE /'

say DONE
poweroff -f
