package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/query"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// credJSON is the `cred` object of a line (and `old_cred`).
type credJSON struct {
	UID        uint32   `json:"uid"`
	EUID       uint32   `json:"euid"`
	SUID       uint32   `json:"suid"`
	FSUID      uint32   `json:"fsuid"`
	GID        uint32   `json:"gid"`
	EGID       uint32   `json:"egid"`
	SGID       uint32   `json:"sgid"`
	FSGID      uint32   `json:"fsgid"`
	CapEff     []string `json:"cap_eff"`
	CapPrm     []string `json:"cap_prm"`
	CapInh     []string `json:"cap_inh"`
	CapBnd     []string `json:"cap_bnd"`
	CapAmb     []string `json:"cap_amb"`
	Seccomp    string   `json:"seccomp"`
	NoNewPrivs bool     `json:"no_new_privs"`
	UserNS     []struct {
		NS  uint32  `json:"ns"`
		UID *uint32 `json:"uid"`
		GID *uint32 `json:"gid"`
	} `json:"userns"`
}

// statusCred is what the kernel shows in /proc/PID/status, read by the
// caller of the reader's user namespace: Uid, Gid (real, effective, saved,
// fs), the capability sets, Seccomp and NoNewPrivs.
type statusCred struct {
	uid, gid   [4]uint32
	caps       map[string]uint64 // "CapEff": bits
	seccomp    string
	noNewPrivs bool
}

func parseStatus(t *testing.T, data string) statusCred {
	t.Helper()
	st := statusCred{caps: map[string]uint64{}}
	for l := range strings.Lines(data) {
		key, value, _ := strings.Cut(strings.TrimSpace(l), ":")
		f := strings.Fields(value)
		switch key {
		case "Uid", "Gid":
			for i := range 4 {
				n, _ := strconv.ParseUint(f[i], 10, 32)
				if key == "Uid" {
					st.uid[i] = uint32(n)
				} else {
					st.gid[i] = uint32(n)
				}
			}
		case "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb":
			st.caps[key], _ = strconv.ParseUint(f[0], 16, 64)
		case "Seccomp":
			st.seccomp = map[string]string{"0": "disabled", "1": "strict", "2": "filter"}[f[0]]
		case "NoNewPrivs":
			st.noNewPrivs = f[0] == "1"
		}
	}
	return st
}

// capBits reads a set of capability names back into bits.
func capBits(t *testing.T, names []string) uint64 {
	t.Helper()
	var set uint64
	for _, n := range names {
		c, err := events.ParseCap(n)
		if err != nil {
			t.Fatal(err)
		}
		set |= 1 << c
	}
	return set
}

// statusAsSeenFrom is /proc/PID/status read from inside the user
// namespace of process viewer (nsenter --user): the kernel maps the IDs
// there itself.
func statusAsSeenFrom(t *testing.T, viewer, pid int) statusCred {
	t.Helper()
	out, err := exec.Command("nsenter", "--user", "--preserve-credentials", "--target", strconv.Itoa(viewer), "cat", fmt.Sprintf("/proc/%d/status", pid)).CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter --user -t %d cat /proc/%d/status: %v: %s", viewer, pid, err, out)
	}
	return parseStatus(t, string(out))
}

// checkCred checks a line's cred object against the kernel's /proc for
// process pid: every ID, every capability set, seccomp and no_new_privs as
// the host's /proc/PID/status has them; the user namespace at every level
// as /proc/PID/ns/user and its parents (NS_GET_PARENT) name them; and the
// effective IDs at each level as that namespace's own view of
// /proc/PID/status shows them. viewers[i] is a process in level i's user
// namespace, for the levels between the host's and pid's own.
func checkCred(t *testing.T, c *credJSON, pid int, viewers map[int]int) {
	t.Helper()
	if c == nil {
		t.Fatalf("process %d: no cred object", pid)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	st := parseStatus(t, string(data))
	if got := [4]uint32{c.UID, c.EUID, c.SUID, c.FSUID}; got != st.uid {
		t.Errorf("process %d: uids %v, /proc %v", pid, got, st.uid)
	}
	if got := [4]uint32{c.GID, c.EGID, c.SGID, c.FSGID}; got != st.gid {
		t.Errorf("process %d: gids %v, /proc %v", pid, got, st.gid)
	}
	for key, names := range map[string][]string{"CapEff": c.CapEff, "CapPrm": c.CapPrm, "CapInh": c.CapInh, "CapBnd": c.CapBnd, "CapAmb": c.CapAmb} {
		if got := capBits(t, names); got != st.caps[key] {
			t.Errorf("process %d: %s %#x %v, /proc %#x", pid, key, got, names, st.caps[key])
		}
	}
	if c.Seccomp != st.seccomp || c.NoNewPrivs != st.noNewPrivs {
		t.Errorf("process %d: seccomp %s no_new_privs %v, /proc %s %v", pid, c.Seccomp, c.NoNewPrivs, st.seccomp, st.noNewPrivs)
	}

	chain := procChainOf(t, fmt.Sprintf("/proc/%d/ns/user", pid))
	if len(c.UserNS) != len(chain) {
		t.Fatalf("process %d: %d user namespace levels, the kernel has %d (%v)", pid, len(c.UserNS), len(chain), chain)
	}
	for i, lvl := range c.UserNS {
		if lvl.NS != chain[i] {
			t.Errorf("process %d: user namespace level %d is %d, the kernel's %d", pid, i, lvl.NS, chain[i])
		}
		var want statusCred
		switch viewer, ok := viewers[i]; {
		case i == 0:
			want = st
		case i == len(chain)-1:
			want = statusAsSeenFrom(t, pid, pid)
		case ok:
			want = statusAsSeenFrom(t, viewer, pid)
		default:
			t.Fatalf("no viewer for level %d", i)
		}
		// The kernel shows an unmapped ID as the overflow ID.
		if id := idOr(lvl.UID, 65534); id != want.uid[1] {
			t.Errorf("process %d: euid %d at user level %d, the kernel shows %d there", pid, id, i, want.uid[1])
		}
		if id := idOr(lvl.GID, 65534); id != want.gid[1] {
			t.Errorf("process %d: egid %d at user level %d, the kernel shows %d there", pid, id, i, want.gid[1])
		}
	}
}

func idOr(id *uint32, unmapped uint32) uint32 {
	if id == nil {
		return unmapped
	}
	return *id
}

// procChainOf returns the user namespace at path and its parents, host first.
func procChainOf(t *testing.T, path string) []uint32 {
	t.Helper()
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var chain []uint32
	for {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
		chain = append([]uint32{uint32(st.Ino)}, chain...)
		parent, err := unix.IoctlRetInt(fd, 0xb702) // NS_GET_PARENT
		unix.Close(fd)
		if err != nil {
			return chain
		}
		fd = parent
	}
}

// startProc starts cmd and waits until its process (or, with comm, a
// descendant with that comm) runs comm; it returns that process's PID.
func startProc(t *testing.T, cmd *exec.Cmd, comm string) int {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Process.Kill()
		cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if pid := descendantComm(cmd.Process.Pid, comm); pid != 0 {
			return pid
		}
	}
	t.Fatalf("%v: no %s started", cmd.Args, comm)
	return 0
}

// descendantComm returns root or its first descendant whose comm is comm.
func descendantComm(root int, comm string) int {
	if c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", root)); strings.TrimSpace(string(c)) == comm {
		return root
	}
	children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", root, root))
	for _, f := range strings.Fields(string(children)) {
		child, _ := strconv.Atoi(f)
		if pid := descendantComm(child, comm); pid != 0 {
			return pid
		}
	}
	return 0
}

// rootlessCmd runs argv as a rootless container's root: in a new user
// namespace whose 0..65535 are the host's 100000..165535 (a written map,
// as newuidmap writes it), as uid and gid 0 there.
func rootlessCmd(argv ...string) *exec.Cmd {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:     true,
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}},
		Credential:  &syscall.Credential{Uid: 0, Gid: 0},
	}
	return cmd
}

// withPgid makes cmd a process group of its own, for cleanup.
func withPgid(cmd *exec.Cmd) *exec.Cmd {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// TestCredentialsAreTheKernels checks `nspidtrace -o json PID` (the task
// iterator) and a trace's exec line against /proc for processes whose
// credentials differ from root's on the host in each way the kernel has:
// user namespaces (a map of one ID, a wide map, two levels deep, an
// unmapped ID), dropped and ambient capabilities, a seccomp filter with
// no_new_privs, and set*id calls. The text answers from /proc and from the
// kernel (-o wide) are the same, byte for byte.
func TestCredentialsAreTheKernels(t *testing.T) {
	testenv.Require(t)
	seccompHelper := []string{os.Args[0], "-test.run=^$"}

	cases := []struct {
		name    string
		cmd     *exec.Cmd
		comm    string
		viewers func(pid int) map[int]int // processes in the levels between
		check   func(t *testing.T, c *credJSON)
	}{{
		name: "unshare --user --map-root-user",
		cmd:  withPgid(exec.Command("unshare", "--user", "--map-root-user", "sleep", "60")),
		comm: "sleep",
		check: func(t *testing.T, c *credJSON) {
			if len(c.UserNS) != 2 || idOr(c.UserNS[1].UID, 1) != 0 {
				t.Errorf("want root in a user namespace of its own: %+v", c.UserNS)
			}
		},
	}, {
		name: "a rootless container's root: a wide written map",
		cmd:  rootlessCmd("sleep", "60"),
		comm: "sleep",
		check: func(t *testing.T, c *credJSON) {
			if c.EUID != 100000 || len(c.UserNS) != 2 || idOr(c.UserNS[1].UID, 1) != 0 || idOr(c.UserNS[1].GID, 1) != 0 {
				t.Errorf("want uid 100000 on the host and 0 inside: euid %d, %+v", c.EUID, c.UserNS)
			}
		},
	}, {
		name: "two user namespaces deep",
		cmd:  rootlessCmd("sh", "-c", "unshare --user --map-root-user sleep 60; :"),
		comm: "sleep",
		viewers: func(pid int) map[int]int {
			ppid := ppidOf(pid) // the sh, in the first level
			return map[int]int{1: ppid}
		},
		check: func(t *testing.T, c *credJSON) {
			if c.EUID != 100000 || len(c.UserNS) != 3 {
				t.Errorf("want three levels and uid 100000 on the host: euid %d, %+v", c.EUID, c.UserNS)
			}
		},
	}, {
		name: "an ID the namespace does not map",
		cmd:  withPgid(exec.Command("unshare", "--user", "--map-user=4321", "sleep", "60")),
		comm: "sleep",
		check: func(t *testing.T, c *credJSON) {
			if len(c.UserNS) != 2 || c.UserNS[1].GID != nil {
				t.Errorf("the gid is not mapped: want null at level 1, got %+v", c.UserNS)
			}
		},
	}, {
		name: "setpriv: capabilities dropped and ambient",
		cmd: withPgid(exec.Command("setpriv", "--inh-caps=+net_raw,+chown", "--ambient-caps=+net_raw",
			"--bounding-set=-sys_admin,-sys_module", "sleep", "60")),
		comm: "sleep",
		check: func(t *testing.T, c *credJSON) {
			if slices.Contains(c.CapBnd, "cap_sys_admin") || !slices.Contains(c.CapAmb, "cap_net_raw") || len(c.CapInh) != 2 {
				t.Errorf("bnd %v amb %v inh %v", c.CapBnd, c.CapAmb, c.CapInh)
			}
		},
	}, {
		name: "setuid and setgid calls",
		cmd:  withPgid(exec.Command("setpriv", "--reuid=1000", "--regid=1001", "--clear-groups", "sleep", "60")),
		comm: "sleep",
		check: func(t *testing.T, c *credJSON) {
			if c.UID != 1000 || c.EGID != 1001 || len(c.CapEff) != 0 {
				t.Errorf("uid %d egid %d eff %v", c.UID, c.EGID, c.CapEff)
			}
		},
	}, {
		name: "a seccomp filter with no_new_privs",
		cmd: func() *exec.Cmd {
			cmd := withPgid(exec.Command(seccompHelper[0], seccompHelper[1:]...))
			cmd.Env = append(os.Environ(), "NSPIDTRACE_TEST_HELPER=seccomp")
			return cmd
		}(),
		comm: "sleep",
		check: func(t *testing.T, c *credJSON) {
			if c.Seccomp != "filter" || !c.NoNewPrivs {
				t.Errorf("seccomp %s no_new_privs %v", c.Seccomp, c.NoNewPrivs)
			}
		},
	}}
	trace := startTrace(t, "--events", "exec")
	var pids []int
	for _, tc := range cases {
		pid := startProc(t, tc.cmd, tc.comm)
		pids = append(pids, pid)
		t.Run(tc.name, func(t *testing.T) {
			var viewers map[int]int
			if tc.viewers != nil {
				viewers = tc.viewers(pid)
			}
			l := procJSON(t, strconv.Itoa(pid))
			checkCred(t, l.Cred, pid, viewers)
			tc.check(t, l.Cred)
			sameWideFromProcAndKernel(t, pid)
		})
	}
	lines := trace.stop(t, syscall.SIGTERM)
	for i, tc := range cases {
		t.Run(tc.name+": exec line", func(t *testing.T) {
			var last *line
			for j := range lines {
				if lines[j].PID == uint32(pids[i]) && lines[j].Type == "exec" {
					last = &lines[j]
				}
			}
			if last == nil {
				t.Fatalf("no exec line of process %d", pids[i])
			}
			var viewers map[int]int
			if tc.viewers != nil {
				viewers = tc.viewers(pids[i])
			}
			checkCred(t, last.Cred, pids[i], viewers)
		})
	}
}

// sameWideFromProcAndKernel compares `nspidtrace -o wide PID` from /proc
// (where it answers) and from the task iterator: the same text.
func sameWideFromProcAndKernel(t *testing.T, pid int) {
	t.Helper()
	fast, _, code := runBinary(t, "-o", "wide", strconv.Itoa(pid))
	kernel, kernelErr, kcode := runBinaryEnv(t, []string{query.KernelOnlyEnv + "=1"}, "-o", "wide", strconv.Itoa(pid))
	if code != exitOK || kcode != exitOK || fast != kernel {
		t.Errorf("-o wide %d: /proc (exit %d) and the iterator (exit %d) differ\n/proc:\n%s\niterator:\n%s%s", pid, code, kcode, fast, kernel, kernelErr)
	}
	for _, want := range []string{"user   ", "caps   ", "seccomp ", "netns  ", "state  "} {
		if !strings.Contains(fast, "\n"+want) {
			t.Errorf("-o wide %d has no %q line:\n%s", pid, want, fast)
		}
	}
}

func ppidOf(pid int) int {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// runSeccompHelper installs a seccomp filter that allows every system call
// (after no_new_privs, as an unprivileged caller must) and execs sleep:
// the filter stays with the process.
func runSeccompHelper() {
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		panic(err)
	}
	allow := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW}}
	prog := unix.SockFprog{Len: uint16(len(allow)), Filter: &allow[0]}
	if _, _, errno := unix.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog))); errno != 0 {
		panic(errno)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		panic(err)
	}
	panic(syscall.Exec(sleep, []string{"sleep", "60"}, os.Environ()))
}

// TestCredentialChangesAreEvents: a setresuid call and the exec of a
// set-user-ID file each give a cred line that says what changed, from what
// to what; the last credentials the feed reports are /proc's.
func TestCredentialChangesAreEvents(t *testing.T) {
	testenv.Require(t)
	dir, err := os.MkdirTemp("", "nspidtrace-suid")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755) // for uid 1000
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(sleep)
	if err != nil {
		t.Fatal(err)
	}
	suid := dir + "/suidsleep"
	if err := os.WriteFile(suid, data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(suid, 1234, 1234); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(suid, os.ModeSetuid|0o755); err != nil { // chown clears set-user-ID: set it after
		t.Fatal(err)
	}

	trace := startTrace(t, "--events", "cred,exec")
	pid := startProc(t, withPgid(exec.Command("setpriv", "--reuid=1000", "--regid=1000", "--clear-groups", suid, "60")), "suidsleep")
	lines := trace.stop(t, syscall.SIGTERM)

	var creds []line
	for _, l := range lines {
		if l.PID == uint32(pid) && l.Type == "cred" {
			creds = append(creds, l)
		}
	}
	find := func(syscall, field string) *line {
		for i := range creds {
			if creds[i].Syscall == syscall && slices.Contains(creds[i].CredChanged, field) {
				return &creds[i]
			}
		}
		t.Fatalf("no cred line of %s changing %s for process %d in %+v", syscall, field, pid, creds)
		return nil
	}
	if l := find("setresuid", "euid"); l.OldCred.EUID != 0 || l.Cred.EUID != 1000 || l.Cred.UID != 1000 || l.OldCred.UID != 0 {
		t.Errorf("setresuid: euid %d -> %d, uid %d -> %d; want 0 -> 1000", l.OldCred.EUID, l.Cred.EUID, l.OldCred.UID, l.Cred.UID)
	}
	if l := find("setresgid", "egid"); l.OldCred.EGID != 0 || l.Cred.EGID != 1000 {
		t.Errorf("setresgid: egid %d -> %d; want 0 -> 1000", l.OldCred.EGID, l.Cred.EGID)
	}
	l := find("execve", "euid")
	if l.OldCred.EUID != 1000 || l.Cred.EUID != 1234 || l.Cred.UID != 1000 || l.Comm != "suidsleep" {
		t.Errorf("the set-user-ID exec: euid %d -> %d, uid %d, comm %s; want 1000 -> 1234, uid 1000", l.OldCred.EUID, l.Cred.EUID, l.Cred.UID, l.Comm)
	}
	for _, l := range creds {
		if len(l.CredChanged) == 0 {
			t.Errorf("a cred line that changes nothing: %+v", l)
		}
	}
	checkCred(t, creds[len(creds)-1].Cred, pid, nil)
}

// TestNetnsNames: a process in `ip netns exec NAME` is found by --netns
// NAME in tree, <pid> and trace, and named in the netns line; a netns
// that does not exist, or a process outside it, is exit 3.
func TestNetnsNames(t *testing.T) {
	testenv.Require(t)
	name := fmt.Sprintf("nspt-test-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	var st unix.Stat_t
	if err := unix.Stat("/run/netns/"+name, &st); err != nil {
		t.Fatal(err)
	}
	ino := uint32(st.Ino)

	trace := startTrace(t, "--netns", name, "--events", "exec,exit")
	pid := startProc(t, withPgid(exec.Command("ip", "netns", "exec", name, "sleep", "60")), "sleep")
	if out, err := exec.Command("ip", "netns", "exec", name, "sh", "-c", "exit 3").CombinedOutput(); err == nil {
		t.Fatalf("sh -c 'exit 3' succeeded: %s", out)
	}
	exec.Command("true").Run() // outside it
	lines := trace.stop(t, syscall.SIGTERM)
	var shExit bool
	for _, l := range lines {
		if l.NS["net"] != ino {
			t.Errorf("trace --netns %s printed a line of net:[%d]: %+v", name, l.NS["net"], l)
		}
		shExit = shExit || l.Type == "exit" && l.Comm == "sh" && l.ExitCode == 3
	}
	if !shExit {
		t.Errorf("trace --netns %s: no exit of the sh run in it: %+v", name, lines)
	}

	stdout, stderr, code := runBinary(t, "tree", "--netns", name, "-o", "json")
	if code != exitOK {
		t.Fatalf("tree --netns %s: exit %d: %s", name, code, stderr)
	}
	found := false
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var p line
		if err := json.Unmarshal([]byte(l), &p); err != nil {
			t.Fatal(err)
		}
		if p.NS["net"] != ino {
			t.Errorf("tree --netns %s shows a process of net:[%d]: %s", name, p.NS["net"], l)
		}
		found = found || p.PID == uint32(pid)
	}
	if !found {
		t.Errorf("tree --netns %s does not show process %d:\n%s", name, pid, stdout)
	}
	for _, ref := range []string{"/run/netns/" + name, fmt.Sprintf("net:[%d]", ino), fmt.Sprintf("/proc/%d/ns/net", pid)} {
		if _, stderr, code := runBinary(t, "--netns", ref, strconv.Itoa(pid)); code != exitOK {
			t.Errorf("--netns %s %d: exit %d: %s", ref, pid, code, stderr)
		}
	}
	stdout, _, _ = runBinary(t, "--columns", "netns", strconv.Itoa(pid))
	if want := fmt.Sprintf("netns  %s (ip netns), net:[%d]\n", name, ino); !strings.Contains(stdout, want) {
		t.Errorf("want %q in:\n%s", want, stdout)
	}
	for _, args := range [][]string{
		{"--netns", name, strconv.Itoa(os.Getpid())},
		{"tree", "--netns", "nspt-no-such-netns"},
		{"trace", "--netns", "nspt-no-such-netns"},
		{"tree", "--netns", "net:[12345]"},
	} {
		if _, stderr, code := runBinary(t, args...); code != exitNotFound || strings.Count(stderr, "\n") != 1 {
			t.Errorf("nspidtrace %v: exit %d, want %d with one line: %s", args, code, exitNotFound, stderr)
		}
	}
}
