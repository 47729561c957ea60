package events

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// rawRecord builds a kernel record the way the BPF side lays it out.
type rawRecord struct {
	typ, flags, pid, tid, ppid, uid, gid uint32
	ktime                                uint64
	nspid, pidns, nsppid                 []uint32
	ns, oldNS                            [NSKinds]uint32
	comm                                 string
	exitStatus                           uint32
	ret                                  int64
	arg                                  uint64
	oldTID, reaper                       uint32
	filename                             string
	args                                 string
	ids                                  IDs
	userNS, nsUID, nsGID                 []uint32 // user namespace levels
	oldIDs                               IDs      // cred records
	syscall                              int32
}

// putIDs writes ids as struct nspt_ids.
func putIDs(b []byte, ids *IDs) {
	put := binary.NativeEndian.PutUint32
	for i, v := range []uint32{ids.UID, ids.EUID, ids.SUID, ids.FSUID, ids.GID, ids.EGID, ids.SGID, ids.FSGID} {
		put(b[4*i:], v)
	}
	for i, set := range []int{CapInh, CapPrm, CapEff, CapBnd, CapAmb} {
		binary.NativeEndian.PutUint64(b[32+8*i:], ids.Caps[set])
	}
	put(b[72:], ids.Securebits)
	put(b[76:], uint32(ids.Seccomp))
	if ids.NoNewPrivs {
		put(b[80:], 1)
	}
}

func (r rawRecord) bytes() []byte {
	size := RecordSize
	switch Type(r.typ) {
	case TypeExec:
		size = ExecRecordSize
	case TypeCred:
		size = CredRecordSize
	}
	b := make([]byte, size)
	put := binary.NativeEndian.PutUint32
	binary.NativeEndian.PutUint64(b[OffKtime:], r.ktime)
	put(b[OffType:], r.typ)
	put(b[OffFlags:], r.flags)
	put(b[OffPID:], r.pid)
	put(b[OffTID:], r.tid)
	put(b[OffPPID:], r.ppid)
	put(b[OffUID:], r.uid)
	put(b[OffGID:], r.gid)
	put(b[OffLevels:], uint32(len(r.nspid)))
	for i := range r.nspid {
		put(b[OffNSPid+4*i:], r.nspid[i])
		put(b[OffPidNS+4*i:], r.pidns[i])
		put(b[OffNSPPid+4*i:], r.nsppid[i])
	}
	for k := range r.ns {
		put(b[OffNS+4*k:], r.ns[k])
		put(b[OffOldNS+4*k:], r.oldNS[k])
	}
	copy(b[OffComm:OffComm+CommLen], r.comm)
	put(b[OffExitStatus:], r.exitStatus)
	binary.NativeEndian.PutUint64(b[OffRet:], uint64(r.ret))
	binary.NativeEndian.PutUint64(b[OffArg:], r.arg)
	put(b[OffOldTID:], r.oldTID)
	put(b[OffReaper:], r.reaper)
	putIDs(b[OffCred:], &r.ids)
	put(b[OffCred+OffUserLevels:], uint32(len(r.userNS)))
	for i := range r.userNS {
		put(b[OffCred+OffUserNS+4*i:], r.userNS[i])
		put(b[OffCred+OffNSUID+4*i:], r.nsUID[i])
		put(b[OffCred+OffNSGID+4*i:], r.nsGID[i])
	}
	if Type(r.typ) == TypeCred {
		putIDs(b[OffOldIDs:], &r.oldIDs)
		put(b[OffSyscall:], uint32(r.syscall))
	}
	if Type(r.typ) == TypeExec {
		put(b[OffFilenameLen:], uint32(len(r.filename)))
		put(b[OffArgsLen:], uint32(len(r.args)))
		copy(b[OffFilename:], r.filename)
		copy(b[OffArgs:], r.args)
	}
	return b
}

var hostNS = [NSKinds]uint32{4026531835, 4026531839, 4026531832, 4026531833, 4026531836, 4026531836, 4026531834, 4026531834, 4026531837, 4026531838}

var containerNS = [NSKinds]uint32{4026531835, 4026532158, 4026532155, 4026532160, 4026532156, 4026532156, 4026531834, 4026531834, 4026531837, 4026532157}

// The kernel timestamp 1s after boot, with boot at 2026-11-23T07:39:04.123456789Z.
const bootToUnix = int64(1795419544123456789)

func TestDecodeAndEncode(t *testing.T) {
	tests := []struct {
		name string
		rec  rawRecord
		want string
	}{{
		name: "exec in a container, as the docs' example",
		rec: rawRecord{typ: 2, pid: 12573, tid: 12573, ppid: 12572, ktime: 1e9,
			nspid: []uint32{12573, 52}, pidns: []uint32{4026531836, 4026532156}, nsppid: []uint32{12572, 51},
			ns: containerNS, comm: "nginx", filename: "/usr/sbin/nginx", args: "nginx\x00-g\x00daemon off;\x00",
			ids:    IDs{Caps: [CapSets]uint64{CapEff: 0x3, CapPrm: 0x3, CapBnd: 0xa80425fb}, Seccomp: 2},
			userNS: []uint32{4026531837}, nsUID: []uint32{0}, nsGID: []uint32{0}},
		want: `{"time":"2026-11-23T07:39:05.123456789Z","type":"exec","pid":12573,"tid":12573,"ppid":12572,` +
			`"nspid":[12573,52],"pidns":[4026531836,4026532156],"nsppid":[12572,51],"comm":"nginx",` +
			`"filename":"/usr/sbin/nginx","args":["nginx","-g","daemon off;"],` +
			`"ns":{"cgroup":4026531835,"ipc":4026532158,"mnt":4026532155,"net":4026532160,"pid":4026532156,` +
			`"pid_for_children":4026532156,"time":4026531834,"time_for_children":4026531834,` +
			`"user":4026531837,"uts":4026532157},"uid":0,"gid":0,` +
			`"cred":{"uid":0,"euid":0,"suid":0,"fsuid":0,"gid":0,"egid":0,"sgid":0,"fsgid":0,` +
			`"cap_eff":["cap_chown","cap_dac_override"],"cap_prm":["cap_chown","cap_dac_override"],"cap_inh":[],` +
			`"cap_bnd":["cap_chown","cap_dac_override","cap_fowner","cap_fsetid","cap_kill","cap_setgid",` +
			`"cap_setuid","cap_setpcap","cap_net_bind_service","cap_net_raw","cap_sys_chroot","cap_mknod",` +
			`"cap_audit_write","cap_setfcap"],"cap_amb":[],"securebits":0,"seccomp":"filter","no_new_privs":false,` +
			`"userns":[{"ns":4026531837,"uid":0,"gid":0}]}}`,
	}, {
		name: "fork of a container's init: parent invisible inside",
		rec: rawRecord{typ: 1, pid: 900, tid: 900, ppid: 899, uid: 1000, gid: 1000, ktime: 1e9,
			nspid: []uint32{900, 1}, pidns: []uint32{4026531836, 4026532156}, nsppid: []uint32{899, 0},
			ns: containerNS, comm: "sh"},
		want: `{"time":"2026-11-23T07:39:05.123456789Z","type":"fork","pid":900,"tid":900,"ppid":899,` +
			`"nspid":[900,1],"pidns":[4026531836,4026532156],"nsppid":[899,0],"comm":"sh",` +
			`"ns":{"cgroup":4026531835,"ipc":4026532158,"mnt":4026532155,"net":4026532160,"pid":4026532156,` +
			`"pid_for_children":4026532156,"time":4026531834,"time_for_children":4026531834,` +
			`"user":4026531837,"uts":4026532157},"uid":1000,"gid":1000,"ns_init":true}`,
	}, {
		name: "thread fork",
		rec: rawRecord{typ: 1, flags: 1, pid: 10, tid: 11, ppid: 1, ktime: 1e9,
			nspid: []uint32{10}, pidns: []uint32{4026531836}, nsppid: []uint32{1}, ns: hostNS, comm: "worker"},
		want: `{"time":"2026-11-23T07:39:05.123456789Z","type":"fork","pid":10,"tid":11,"ppid":1,` +
			`"nspid":[10],"pidns":[4026531836],"nsppid":[1],"comm":"worker",` + hostNSJSON + `,"uid":0,"gid":0,"thread":true}`,
	}, {
		name: "exit with a code",
		rec: rawRecord{typ: 3, pid: 10, tid: 10, ppid: 1, ktime: 1e9, exitStatus: 7 << 8, reaper: 1,
			nspid: []uint32{10}, pidns: []uint32{4026531836}, nsppid: []uint32{1}, ns: hostNS, comm: "sh"},
		want: `{"time":"2026-11-23T07:39:05.123456789Z","type":"exit","pid":10,"tid":10,"ppid":1,` +
			`"nspid":[10],"pidns":[4026531836],"nsppid":[1],"comm":"sh",` + hostNSJSON + `,"uid":0,"gid":0,` +
			`"exit_code":7,"signal":0,"core_dumped":false,"reaper":1}`,
	}, {
		name: "exit by SIGSEGV with a core dump",
		rec: rawRecord{typ: 3, pid: 10, tid: 10, ppid: 1, ktime: 1e9, exitStatus: 11 | 0x80, reaper: 1,
			nspid: []uint32{10}, pidns: []uint32{4026531836}, nsppid: []uint32{1}, ns: hostNS, comm: "crash"},
		want: `{"time":"2026-11-23T07:39:05.123456789Z","type":"exit","pid":10,"tid":10,"ppid":1,` +
			`"nspid":[10],"pidns":[4026531836],"nsppid":[1],"comm":"crash",` + hostNSJSON + `,"uid":0,"gid":0,` +
			`"exit_code":0,"signal":11,"core_dumped":true,"reaper":1}`,
	}, {
		name: "setns into a network namespace",
		rec: rawRecord{typ: 4, pid: 10, tid: 10, ppid: 1, ktime: 1e9, arg: 0x40000000, ret: 0,
			nspid: []uint32{10}, pidns: []uint32{4026531836}, nsppid: []uint32{1},
			ns: withNS(hostNS, NSNet, 4026532160), oldNS: hostNS, comm: "nsenter"},
		want: `{"time":"2026-11-23T07:39:05.123456789Z","type":"setns","pid":10,"tid":10,"ppid":1,` +
			`"nspid":[10],"pidns":[4026531836],"nsppid":[1],"comm":"nsenter",` +
			strings.Replace(hostNSJSON, `"net":4026531833`, `"net":4026532160`, 1) + `,"uid":0,"gid":0,` +
			`"nstype":["net"],"ret":0,"changed":{"net":{"from":4026531833,"to":4026532160}}}`,
	}, {
		name: "failed unshare",
		rec: rawRecord{typ: 5, pid: 10, tid: 10, ppid: 1, ktime: 1e9, arg: 0x20000000 | 0x20000 | 0x1, ret: -1,
			nspid: []uint32{10}, pidns: []uint32{4026531836}, nsppid: []uint32{1}, ns: hostNS, oldNS: hostNS, comm: "unshare"},
		want: `{"time":"2026-11-23T07:39:05.123456789Z","type":"unshare","pid":10,"tid":10,"ppid":1,` +
			`"nspid":[10],"pidns":[4026531836],"nsppid":[1],"comm":"unshare",` + hostNSJSON + `,"uid":0,"gid":0,` +
			`"flags":["mnt","pid","0x1"],"ret":-1,"changed":{}}`,
	}, {
		name: "exec by a non-leader thread, comm needing escapes",
		rec: rawRecord{typ: 2, pid: 10, tid: 10, ppid: 1, ktime: 1e9, oldTID: 12,
			nspid: []uint32{10}, pidns: []uint32{4026531836}, nsppid: []uint32{1}, ns: hostNS,
			comm: "a\"b\\c\n\x01\xff", filename: "/bin/x", args: "x\x00",
			ids:    IDs{UID: 1000, EUID: 1000, SUID: 1000, FSUID: 1000, GID: 100, EGID: 100, SGID: 100, FSGID: 100, Caps: [CapSets]uint64{CapBnd: 1 << 45}, NoNewPrivs: true},
			userNS: []uint32{4026531837, 4026532200, 4026532300}, nsUID: []uint32{1000, 0, UnmappedID}, nsGID: []uint32{100, UnreadID, 7}},
		want: `{"time":"2026-11-23T07:39:05.123456789Z","type":"exec","pid":10,"tid":10,"ppid":1,` +
			`"nspid":[10],"pidns":[4026531836],"nsppid":[1],"comm":"a\"b\\c\n\u0001�",` +
			`"filename":"/bin/x","args":["x"],` + hostNSJSON + `,"uid":0,"gid":0,` +
			`"cred":{"uid":1000,"euid":1000,"suid":1000,"fsuid":1000,"gid":100,"egid":100,"sgid":100,"fsgid":100,` +
			`"cap_eff":[],"cap_prm":[],"cap_inh":[],"cap_bnd":["cap_45"],"cap_amb":[],"securebits":0,"seccomp":"disabled","no_new_privs":true,` +
			`"userns":[{"ns":4026531837,"uid":1000,"gid":100},{"ns":4026532200,"uid":0},{"ns":4026532300,"uid":null,"gid":7}]},"old_tid":12}`,
	}, {
		name: "setresuid: what changed, from what to what",
		rec: rawRecord{typ: 11, pid: 10, tid: 10, ppid: 1, ktime: 1e9, uid: 1000, gid: 0,
			nspid: []uint32{10}, pidns: []uint32{4026531836}, nsppid: []uint32{1}, ns: hostNS, comm: "setpriv",
			ids:    IDs{UID: 1000, EUID: 1000, SUID: 1000, FSUID: 1000, Caps: [CapSets]uint64{CapBnd: 3}},
			oldIDs: IDs{Caps: [CapSets]uint64{CapEff: 1, CapPrm: 1, CapBnd: 3}},
			userNS: []uint32{4026531837}, nsUID: []uint32{1000}, nsGID: []uint32{0}, syscall: unix.SYS_SETRESUID},
		want: `{"time":"2026-11-23T07:39:05.123456789Z","type":"cred","pid":10,"tid":10,"ppid":1,` +
			`"nspid":[10],"pidns":[4026531836],"nsppid":[1],"comm":"setpriv",` + hostNSJSON + `,"uid":1000,"gid":0,` +
			`"cred":{"uid":1000,"euid":1000,"suid":1000,"fsuid":1000,"gid":0,"egid":0,"sgid":0,"fsgid":0,` +
			`"cap_eff":[],"cap_prm":[],"cap_inh":[],"cap_bnd":["cap_chown","cap_dac_override"],"cap_amb":[],"securebits":0,"seccomp":"disabled","no_new_privs":false,` +
			`"userns":[{"ns":4026531837,"uid":1000,"gid":0}]},"syscall":"setresuid",` +
			`"old_cred":{"uid":0,"euid":0,"suid":0,"fsuid":0,"gid":0,"egid":0,"sgid":0,"fsgid":0,` +
			`"cap_eff":["cap_chown"],"cap_prm":["cap_chown"],"cap_inh":[],"cap_bnd":["cap_chown","cap_dac_override"],"cap_amb":[],"securebits":0,"seccomp":"disabled","no_new_privs":false},` +
			`"cred_changed":["uid","euid","suid","fsuid","cap_eff","cap_prm"]}`,
	}}
	d := Decoder{BootToUnix: bootToUnix}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev Event
			if err := d.Decode(tt.rec.bytes(), &ev); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			got := string(AppendJSON(nil, &ev))
			if got != tt.want+"\n" {
				t.Errorf("line differs\n got: %s\nwant: %s", got, tt.want)
			}
			var anything map[string]any
			if err := json.Unmarshal([]byte(got), &anything); err != nil {
				t.Errorf("line is not valid JSON: %v", err)
			}
		})
	}
}

const hostNSJSON = `"ns":{"cgroup":4026531835,"ipc":4026531839,"mnt":4026531832,"net":4026531833,"pid":4026531836,` +
	`"pid_for_children":4026531836,"time":4026531834,"time_for_children":4026531834,"user":4026531837,"uts":4026531838}`

func withNS(ns [NSKinds]uint32, k NSKind, ino uint32) [NSKinds]uint32 {
	ns[k] = ino
	return ns
}

func TestDecodeDeepestLevel(t *testing.T) {
	rec := rawRecord{typ: 1, pid: 5000, tid: 5000, ppid: 4999, comm: "sleep"}
	for i := 0; i < MaxLevels; i++ {
		rec.nspid = append(rec.nspid, uint32(5000-i*100))
		rec.pidns = append(rec.pidns, uint32(4026531836+i))
		rec.nsppid = append(rec.nsppid, uint32(4999-i*100))
	}
	var ev Event
	if err := (&Decoder{}).Decode(rec.bytes(), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Levels != MaxLevels || ev.NSPid[32] != 1800 || ev.PidNS[32] != 4026531868 || ev.NSPPid[32] != 1799 {
		t.Errorf("level 32: got levels=%d nspid=%d pidns=%d nsppid=%d", ev.Levels, ev.NSPid[32], ev.PidNS[32], ev.NSPPid[32])
	}
}

func TestDecodeRejectsBadRecords(t *testing.T) {
	good := rawRecord{typ: 1, nspid: []uint32{1}, pidns: []uint32{1}, nsppid: []uint32{0}}
	tests := map[string][]byte{
		"short":          good.bytes()[:RecordSize-1],
		"unknown type":   rawRecord{typ: 9, nspid: []uint32{1}, pidns: []uint32{1}, nsppid: []uint32{0}}.bytes(),
		"zero levels":    rawRecord{typ: 1}.bytes(),
		"short exec":     rawRecord{typ: 2, nspid: []uint32{1}, pidns: []uint32{1}, nsppid: []uint32{0}}.bytes()[:RecordSize],
		"too many level": func() []byte { b := good.bytes(); binary.NativeEndian.PutUint32(b[OffLevels:], 34); return b }(),
	}
	for name, raw := range tests {
		var ev Event
		if err := (&Decoder{}).Decode(raw, &ev); err == nil {
			t.Errorf("%s: Decode accepted it", name)
		}
	}
}

func TestLostLine(t *testing.T) {
	ev := Event{Type: TypeLost, Time: time.Date(2026, 11, 23, 7, 39, 5, 0, time.UTC).UnixNano(), Count: 42}
	want := `{"time":"2026-11-23T07:39:05.000000000Z","type":"lost","count":42}` + "\n"
	if got := string(AppendJSON(nil, &ev)); got != want {
		t.Errorf("got %s want %s", got, want)
	}
}

// A proc line has the fields of every line, tid included (its pid: a
// process's line), and argv.
func TestProcLineHasArgsAndTID(t *testing.T) {
	ev := Event{Type: TypeProc, PID: 7, TID: 7, PPID: 1, Levels: 1, NS: hostNS}
	ev.NSPid[0], ev.PidNS[0], ev.NSPPid[0] = 7, 4026531836, 1
	ev.SetComm("bash")
	ev.SetArgs([]string{"bash", "-l"})
	want := `{"time":"1970-01-01T00:00:00.000000000Z","type":"proc","pid":7,"tid":7,"ppid":1,"nspid":[7],"pidns":[4026531836],` +
		`"nsppid":[1],"comm":"bash","args":["bash","-l"],` + hostNSJSON + `,"uid":0,"gid":0}` + "\n"
	if got := string(AppendJSON(nil, &ev)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if argv := ev.Argv(); len(argv) != 2 || argv[1] != "-l" {
		t.Errorf("Argv() = %q", argv)
	}
}

func TestParseTypeSet(t *testing.T) {
	all, err := ParseTypeSet("")
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range LifecycleTypes {
		if !all.Has(typ) {
			t.Errorf("default set lacks %s", typ)
		}
	}
	some, err := ParseTypeSet("exec, exit")
	if err != nil || !some.Has(TypeExec) || !some.Has(TypeExit) || some.Has(TypeFork) {
		t.Errorf("ParseTypeSet(exec, exit) = %b, %v", some, err)
	}
	for _, bad := range []string{"forks", "exec,", "lost", "proc"} {
		if _, err := ParseTypeSet(bad); err == nil {
			t.Errorf("ParseTypeSet(%q) accepted it", bad)
		}
	}
}

func TestCgroupIn(t *testing.T) {
	outer, inner := strings.Repeat("ab", 32), strings.Repeat("cd", 32)
	for _, tc := range []struct {
		cg   *Cgroup
		id   string
		want bool
	}{
		{NewCgroup(1, "/docker/"+outer, &Container{ID: outer}), outer, true},
		{NewCgroup(1, "/docker/"+outer, &Container{ID: outer}), inner, false},
		// A container inside a container is in both.
		{NewCgroup(1, "/docker/"+outer+"/docker/"+inner, &Container{ID: inner}), outer, true},
		{NewCgroup(1, "/docker/"+outer+"/docker/"+inner, &Container{ID: inner}), inner, true},
		// conmon's scope names the container but is not in it.
		{NewCgroup(1, "/machine.slice/libpod-conmon-"+outer+".scope", nil), outer, false},
		{nil, outer, false},
		{NewCgroup(1, "/docker/"+outer, &Container{ID: outer}), "", false},
	} {
		if got := tc.cg.In(tc.id); got != tc.want {
			t.Errorf("%+v In(%.12s) = %v, want %v", tc.cg, tc.id, got, tc.want)
		}
	}
}

func TestWaitStatusWords(t *testing.T) {
	for status, want := range map[WaitStatus][2]string{
		7 << 8:    {"exited with 7", "exit 7"},
		9:         {"killed by signal 9 (SIGKILL)", "signal 9"},
		11 | 0x80: {"killed by signal 11 (SIGSEGV), core dumped", "signal 11, core"},
	} {
		if got := [2]string{status.String(), status.Brief()}; got != want {
			t.Errorf("%#x: %q, want %q", uint32(status), got, want)
		}
	}
}

// TestAppendTime writes what time's layout would, digit for digit.
func TestAppendTime(t *testing.T) {
	for _, ns := range []int64{0, 1, 999_999_999, 1_796_515_140_603_296_103, 1_700_000_000_123_000_000, -1, -62_135_596_800_000_000, math.MaxInt64, math.MinInt64} {
		want := time.Unix(0, ns).UTC().AppendFormat(nil, timeLayout)
		if got := AppendTime(nil, ns); string(got) != string(want) {
			t.Errorf("AppendTime(%d) = %s, want %s", ns, got, want)
		}
	}
	for i := int64(0); i < 100000; i++ {
		ns := i * 7_919_113_331_117 // steps of 2.2 h over 25 years: every digit
		if got, want := AppendTime(nil, ns), time.Unix(0, ns).UTC().AppendFormat(nil, timeLayout); string(got) != string(want) {
			t.Fatalf("AppendTime(%d) = %s, want %s", ns, got, want)
		}
	}
}

// madeCgroups is a CgroupLearner that keeps what it is told.
type madeCgroups []string

func (m *madeCgroups) Cgroup(uint64) *Cgroup { return nil }
func (m *madeCgroups) Made(id uint64, hierarchy, ns uint32, path string) {
	*m = append(*m, fmt.Sprintf("%d %d %d %s", id, hierarchy, ns, path))
}

// TestLearnACgroupMade: a cgroup_mkdir record is no process's event: Learn
// takes it and tells the resolver; a process's record is left to Decode.
func TestLearnACgroupMade(t *testing.T) {
	raw := make([]byte, CgroupRecordSize)
	put := binary.NativeEndian.PutUint32
	put(raw[OffType:], recordCgroupMkdir)
	put(raw[OffCgroupRoot:], 0)
	binary.NativeEndian.PutUint64(raw[OffCgroupMadeID:], 4242)
	put(raw[OffCgroupNS:], 4026531835)
	path := "/kubepods/besteffort/pod1/abc"
	put(raw[OffCgroupPathLen:], uint32(len(path)))
	copy(raw[OffCgroupPath:], path)

	var made madeCgroups
	d := Decoder{Cgroups: &made}
	if !d.Learn(raw) || len(made) != 1 || made[0] != "4242 0 4026531835 "+path {
		t.Errorf("Learn: told %q", made)
	}
	put(raw[OffCgroupPathLen:], 1<<20) // a length past the record: bounded by it
	if !d.Learn(raw) || len(made) != 2 || !strings.HasPrefix(made[1], "4242 0 4026531835 "+path) {
		t.Errorf("Learn of an overlong length: told %q", made)
	}
	if d.Learn(raw[:OffType+4]) != true || (&Decoder{}).Learn(raw) != true {
		t.Error("a short cgroup record, or one without a learner, is not taken")
	}
	if d.Learn(rawRecord{typ: uint32(TypeFork)}.bytes()) {
		t.Error("Learn took a fork record")
	}
}
