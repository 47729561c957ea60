package events

import (
	"strconv"

	"golang.org/x/sys/unix"
)

// credSyscalls names the system calls a cred event can come from, by this
// architecture's numbers (the kernel reports the number).
var credSyscalls = map[int32]string{
	unix.SYS_SETUID:    "setuid",
	unix.SYS_SETGID:    "setgid",
	unix.SYS_SETREUID:  "setreuid",
	unix.SYS_SETREGID:  "setregid",
	unix.SYS_SETRESUID: "setresuid",
	unix.SYS_SETRESGID: "setresgid",
	unix.SYS_SETFSUID:  "setfsuid",
	unix.SYS_SETFSGID:  "setfsgid",
	unix.SYS_CAPSET:    "capset",
	unix.SYS_PRCTL:     "prctl",
	unix.SYS_SECCOMP:   "seccomp",
	unix.SYS_EXECVE:    "execve",
	unix.SYS_EXECVEAT:  "execveat",
}

// SyscallName names system call nr: "setresuid", or "syscall N".
func SyscallName(nr int32) string {
	if name, ok := credSyscalls[nr]; ok {
		return name
	}
	return "syscall " + strconv.Itoa(int(nr))
}

// parseSyscall reads a name SyscallName wrote back into its number.
func parseSyscall(name []byte) int32 {
	for nr, n := range credSyscalls {
		if n == string(name) {
			return nr
		}
	}
	if n, err := strconv.Atoi(string(name[min(len(name), len("syscall ")):])); err == nil {
		return int32(n)
	}
	return -1
}
