package findings

import (
	"strings"
	"testing"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

const capSysAdmin, capNetRaw = 21, 13

func exec(filename string, comm string, argv ...string) *events.Event {
	ev := &events.Event{Type: events.TypeExec, PID: 100, TID: 100, PPID: 50, Levels: 1}
	ev.FilenameLen = uint16(copy(ev.Filename[:], filename))
	ev.SetComm(comm)
	ev.SetArgs(argv)
	return ev
}

func judge(ev *events.Event, f *Facts) map[events.FindingName]string {
	got := map[events.FindingName]string{}
	Judge(ev, f, func(found events.Finding) { got[found.Name] = found.Reason })
	return got
}

func TestMasquerade(t *testing.T) {
	for _, tt := range []struct {
		name string
		ev   *events.Event
		want bool
	}{
		{"plain", exec("/usr/bin/sleep", "sleep", "sleep", "60"), false},
		{"by path", exec("/usr/bin/sleep", "sleep", "/usr/bin/sleep", "60"), false},
		{"login shell", exec("/bin/bash", "bash", "-bash"), false},
		{"a long name cut in comm", exec("/usr/sbin/containerd-shim-runc-v2", "containerd-shim", "containerd-shim-runc-v2"), false},
		{"a script", exec("/tmp/run.py", "run.py", "/usr/bin/python3", "/tmp/run.py"), false},
		{"a script through env", exec("/tmp/run.py", "run.py", "/usr/bin/env", "python3", "/tmp/run.py"), false},
		{"re-executing itself", exec("/proc/self/exe", "exe", "runc", "init"), false},
		{"by descriptor", exec("/dev/fd/3", "3", "payload"), false},
		{"exec -a another name", exec("/usr/bin/sleep", "sleep", "sshd"), true},
		{"exec -a a kernel thread", exec("/tmp/sleeperbin", "sleeperbin", "[kworker/0:9]", "60"), true},
		{"a kernel thread's comm as argv[0]", exec("/tmp/x", "x", "kworker/u4:2"), true},
		{"no argv", exec("/usr/bin/sleep", "sleep"), false},
	} {
		_, got := judge(tt.ev, &Facts{})[events.FindMasquerade]
		if got != tt.want {
			t.Errorf("%s: masquerade %v, want %v", tt.name, got, tt.want)
		}
	}
	// A user process renamed like a kernel thread; kthreadd's own are not.
	rename := &events.Event{Type: events.TypeRename, PID: 300, PPID: 1, Levels: 1}
	rename.SetComm("kworker/0:9")
	if _, ok := judge(rename, &Facts{})[events.FindMasquerade]; !ok {
		t.Error("a user process renamed kworker/0:9 is not a masquerade")
	}
	rename.PPID = 2
	if _, ok := judge(rename, &Facts{})[events.FindMasquerade]; ok {
		t.Error("kthreadd's worker renaming itself is a masquerade")
	}
}

func TestFileless(t *testing.T) {
	memfd := exec("/dev/fd/3", "memfd:x", "x")
	memfd.ExeMemfd, memfd.ExeUnlinked = true, true
	deleted := exec("/tmp/gone", "gone", "gone")
	deleted.ExeUnlinked = true
	byFD := exec("/proc/self/fd/5", "5", "x")
	byFD.ExeUnlinked = true
	runc := exec("/dev/fd/6", "runc", "runc", "init") // a clone with a name on disk
	for _, tt := range []struct {
		ev   *events.Event
		want string
	}{
		{memfd, "memfd"},
		{deleted, "deleted file (/tmp/gone)"},
		{byFD, "/proc/self/fd/5, a file deleted or never named"},
		{runc, ""},
		{exec("/usr/bin/true", "true", "true"), ""},
	} {
		got := judge(tt.ev, &Facts{})[events.FindFileless]
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("%s: fileless %q, want %q", tt.ev.Filename[:tt.ev.FilenameLen], got, tt.want)
		}
	}
	if !byFDPath("/proc/1234/fd/7") || !byFDPath("/dev/fd/3") || byFDPath("/proc/self/exe") || byFDPath("/proc/x/fd/3") || byFDPath("/dev/fd/") {
		t.Error("byFD misreads a path")
	}
}

func byFDPath(s string) bool { return byFD([]byte(s)) }

func cred(euid uint32, prm uint64) *events.Cred {
	c := &events.Cred{Known: true, UserLevels: 1}
	c.UID, c.EUID, c.SUID = euid, euid, euid
	c.Caps[events.CapPrm], c.Caps[events.CapEff] = prm, prm
	return c
}

func TestPrivilegeGain(t *testing.T) {
	withCred := func(ev *events.Event, c *events.Cred) *events.Event { ev.Cred = *c; return ev }
	setuidExec := withCred(exec("/usr/bin/passwd", "passwd", "passwd"), cred(0, 1<<41-1))
	setuidExec.Cred.UID = 1000
	fileCaps := withCred(exec("/usr/bin/ping", "ping", "ping"), cred(1000, 1<<capNetRaw))
	back := &events.Event{Type: events.TypeCred, Levels: 1, Cred: *cred(0, 0)}
	retained := cred(1000, 0)
	retained.SUID = 0
	for _, tt := range []struct {
		name   string
		ev     *events.Event
		before *events.Cred
		want   string
	}{
		{"set-user-ID exec", setuidExec, cred(1000, 0), "effective uid became 0 (it was 1000) at exec of /usr/bin/passwd"},
		{"file capabilities", fileCaps, cred(1000, 0), "+cap_net_raw"},
		{"first sighting", setuidExec, nil, ""},
		{"root stays root", withCred(exec("/bin/sh", "sh", "sh"), cred(0, 1<<41-1)), cred(0, 1<<41-1), ""},
		{"a saved root taken back", back, retained, ""},
	} {
		got := judge(tt.ev, &Facts{Before: tt.before})[events.FindPrivilegeGain]
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
	// cap_sys_admin in a container without no_new_privs, once its program
	// runs in the container's pid namespace; not in a new user namespace.
	web := &events.Container{ID: "c1", Name: "web"}
	admin := withCred(exec("/bin/sh", "sh", "sh"), cred(0, 1<<capSysAdmin))
	admin.Levels = 2
	var found events.Finding
	Judge(admin, &Facts{Container: web}, func(f events.Finding) { found = f })
	if found.Name != events.FindPrivilegeGain || !found.Image || !strings.Contains(found.Reason, "cap_sys_admin in container web") {
		t.Errorf("cap_sys_admin without no_new_privs: %+v", found)
	}
	admin.Cred.NoNewPrivs = true
	if got := judge(admin, &Facts{Container: web}); len(got) != 0 {
		t.Errorf("with no_new_privs: %v", got)
	}
	admin.Cred.NoNewPrivs, admin.Levels = false, 1 // runc's first stage, not yet in the namespace
	if got := judge(admin, &Facts{Container: web}); len(got) != 0 {
		t.Errorf("at the host's level: %v", got)
	}
}

func TestNewUsernsRoot(t *testing.T) {
	web := &events.Container{ID: "c1", Name: "web"}
	before := cred(0, 0)
	after := cred(0, 1<<41-1)
	after.UserLevels, after.UserNS[1], after.NSUID[1] = 2, 4026532999, 0
	ev := exec("/bin/sh", "sh", "sh")
	ev.Cred = *after
	if got := judge(ev, &Facts{Before: before, Container: web})[events.FindNewUsernsRoot]; !strings.Contains(got, "uid 0 in user:[4026532999]") {
		t.Errorf("unshare -U -r in a container: %q", got)
	}
	if got := judge(ev, &Facts{Before: before}); len(got) != 0 {
		t.Errorf("on the host: %v", got) // rootless tools make user namespaces all day
	}
	ev.Cred.NSUID[1] = events.UnmappedID
	if got := judge(ev, &Facts{Before: before, Container: web}); len(got) != 0 {
		t.Errorf("not root in it: %v", got)
	}
	// The capabilities of the new namespace are not a privilege gain.
	ev.Cred.NSUID[1] = 0
	if _, ok := judge(ev, &Facts{Before: before, Container: web})[events.FindPrivilegeGain]; ok {
		t.Error("a new user namespace's capabilities counted as a privilege gain")
	}
}

func TestNSEscape(t *testing.T) {
	web := &events.Container{ID: "c1", Name: "web"}
	db := &events.Container{ID: "c2", Name: "db"}
	setns := func(kind events.NSKind, from, to uint32, ret int64) *events.Event {
		ev := &events.Event{Type: events.TypeSetns, Levels: 2, Ret: ret}
		ev.OldNS[kind], ev.NS[kind] = from, to
		return ev
	}
	facts := &Facts{Container: web, NSContainer: func(kind int, ino uint32) *events.Container {
		if ino == 300 {
			return db
		}
		return nil
	}}
	facts.HostNS[events.NSNet] = 100
	for _, tt := range []struct {
		name  string
		ev    *events.Event
		facts *Facts
		want  string
	}{
		{"into the host's", setns(events.NSNet, 200, 100, 0), facts, "into the host's net namespace (net:[100])"},
		{"into another container's", setns(events.NSNet, 200, 300, 0), facts, "into container db's net namespace"},
		{"refused", setns(events.NSNet, 200, 200, -1), facts, "failed (errno 1)"},
		{"into its own", setns(events.NSNet, 200, 201, 0), facts, ""},
		{"from the host", setns(events.NSNet, 100, 300, 0), &Facts{}, ""},
	} {
		got := judge(tt.ev, tt.facts)[events.FindNSEscape]
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestReasonsBounded: a reason quotes argv, which a process chose.
func TestReasonsBounded(t *testing.T) {
	ev := exec("/usr/bin/sleep", "sleep", "kworker/"+strings.Repeat("é", 400))
	got := judge(ev, &Facts{})[events.FindMasquerade]
	if len(got) > events.MaxReason || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, "argv[0]") {
		t.Errorf("a long reason: %d bytes: %q", len(got), got)
	}
}
