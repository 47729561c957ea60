package events

import (
	"errors"
	"strings"
	"testing"
)

// goldenLines are the encoder's golden lines: parsing one and encoding it
// again must give it back byte for byte.
func goldenLines(t *testing.T) []string {
	var lines []string
	d := Decoder{BootToUnix: bootToUnix}
	for _, rec := range []rawRecord{
		{typ: 2, pid: 12573, tid: 12573, ppid: 12572, ktime: 1e9, nspid: []uint32{12573, 52}, pidns: []uint32{4026531836, 4026532156},
			nsppid: []uint32{12572, 51}, ns: containerNS, comm: "nginx", filename: "/usr/sbin/nginx", args: "nginx\x00-g\x00daemon off;\x00"},
		{typ: 1, flags: 1, pid: 10, tid: 11, ppid: 1, ktime: 1e9, nspid: []uint32{10}, pidns: []uint32{4026531836}, nsppid: []uint32{1}, ns: hostNS, comm: "w"},
		{typ: 3, pid: 10, tid: 10, ppid: 1, ktime: 1e9, exitStatus: 11 | 0x80, reaper: 1, nspid: []uint32{10}, pidns: []uint32{4026531836}, nsppid: []uint32{1}, ns: hostNS, comm: "crash"},
		{typ: 3, pid: 10, tid: 10, ppid: 1, ktime: 1e9, exitStatus: 7 << 8, reaper: 1, nspid: []uint32{10}, pidns: []uint32{4026531836}, nsppid: []uint32{1}, ns: hostNS, comm: "sh"},
		{typ: 4, pid: 10, tid: 10, ppid: 1, ktime: 1e9, arg: 0x40000000, nspid: []uint32{10}, pidns: []uint32{4026531836}, nsppid: []uint32{1},
			ns: withNS(hostNS, NSNet, 4026532160), oldNS: hostNS, comm: "nsenter"},
		{typ: 5, pid: 10, tid: 10, ppid: 1, ktime: 1e9, arg: 0x20000000 | 0x20000 | 0x1, ret: -1, nspid: []uint32{10}, pidns: []uint32{4026531836},
			nsppid: []uint32{1}, ns: hostNS, oldNS: hostNS, comm: "unshare"},
		{typ: 2, pid: 10, tid: 10, ppid: 1, ktime: 1e9, oldTID: 12, nspid: []uint32{10}, pidns: []uint32{4026531836}, nsppid: []uint32{1},
			ns: hostNS, comm: "a\"b\\c\n\x01é", filename: "/bin/x", args: "x\x00"},
		// Credentials: user namespace levels mapped, unmapped and unread,
		// capabilities with and without names, and a change of them.
		{typ: 2, pid: 11, tid: 11, ppid: 1, ktime: 1e9, nspid: []uint32{11}, pidns: []uint32{4026531836}, nsppid: []uint32{1},
			ns: hostNS, comm: "ping", filename: "/bin/ping", args: "ping\x00",
			ids:    IDs{UID: 1000, EUID: 0, SUID: 0, FSUID: 0, GID: 5, EGID: 5, SGID: 5, FSGID: 5, Caps: [CapSets]uint64{CapEff: 1 << 13, CapPrm: 1 << 13, CapInh: 1, CapBnd: AllCaps | 1<<50, CapAmb: 1 << 40}, Securebits: 0x2f, Seccomp: 2, NoNewPrivs: true},
			userNS: []uint32{4026531837, 4026532200, 4026532300}, nsUID: []uint32{0, UnmappedID, UnreadID}, nsGID: []uint32{5, 5, UnmappedID}},
		{typ: 11, pid: 12, tid: 13, ppid: 1, ktime: 1e9, nspid: []uint32{12}, pidns: []uint32{4026531836}, nsppid: []uint32{1},
			ns: hostNS, comm: "su", syscall: 1 << 20,
			ids:    IDs{UID: 1000, EUID: 1000, SUID: 1000, FSUID: 1000, Seccomp: 1},
			oldIDs: IDs{Caps: [CapSets]uint64{CapEff: AllCaps}},
			userNS: []uint32{4026531837}, nsUID: []uint32{1000}, nsGID: []uint32{0}},
	} {
		var ev Event
		if err := d.Decode(rec.bytes(), &ev); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(AppendJSON(nil, &ev)))
	}
	lost := Event{Type: TypeLost, Time: 1795419545123456789, Count: 9}
	proc := Event{Type: TypeProc, PID: 7, TID: 7, PPID: 1, Levels: 1, NS: hostNS, Time: 1795419545123456789}
	proc.NSPid[0], proc.PidNS[0], proc.NSPPid[0] = 7, 4026531836, 1
	proc.SetComm("bash")
	proc.SetArgs([]string{"bash", "-c", "echo \"hi\"\t"})
	proc.Cred = Cred{Known: true, UserLevels: 1}
	proc.Cred.SetLSM([]byte("docker-default (enforce)\n"))
	// A signal, its sender in a container; a finding on an exec of a memfd.
	sig := Event{Type: TypeSignal, PID: 20, TID: 20, PPID: 1, Levels: 1, NS: hostNS, Time: 1795419545123456789, StartBoot: 99}
	sig.NSPid[0], sig.PidNS[0], sig.NSPPid[0] = 20, 4026531836, 1
	sig.SetComm("sleep")
	sig.Sig.Number, sig.Sig.Result = 9, 1
	snd := &sig.Sig.Sender
	snd.PID, snd.TID, snd.UID, snd.Levels, snd.StartBoot = 30, 31, 1000, 2, 77
	snd.NSPid[0], snd.NSPid[1], snd.PidNS[0], snd.PidNS[1] = 30, 3, 4026531836, 4026532156
	snd.CommLen = uint8(copy(snd.Comm[:], "kill"))
	memfd := proc
	memfd.Type, memfd.ExeMemfd, memfd.ExeUnlinked = TypeExec, true, true
	memfd.FilenameLen = uint16(copy(memfd.Filename[:], "/dev/fd/3"))
	memfd.Findings = []Finding{{Name: FindFileless, Time: 1795419545000000000, Reason: "executed a memfd \"x\""}}
	return append(lines, string(AppendJSON(nil, &lost)), string(AppendJSON(nil, &proc)), string(AppendJSON(nil, &sig)), string(AppendJSON(nil, &memfd)))
}

func TestParseRoundTrip(t *testing.T) {
	for _, line := range goldenLines(t) {
		var ev Event
		if err := Parse([]byte(strings.TrimSuffix(line, "\n")), &ev); err != nil {
			t.Errorf("Parse(%s): %v", line, err)
			continue
		}
		if got := string(AppendJSON(nil, &ev)); got != line {
			t.Errorf("round trip differs\n got: %s\nwant: %s", got, line)
		}
	}
}

func TestParseSkipsUnknownFields(t *testing.T) {
	line := `{"future":{"a":[1,{"b":null}],"c":"\u00e9"},"time":"2026-11-23T07:39:05.5Z","type":"fork","pid":5,"ppid":1,` +
		`"nspid":[5],"pidns":[4026531836],"nsppid":[1],"comm":"x","ns":{"pid":4026531836,"newkind":7},"uid":0,"gid":0,"extra":1.5e3}`
	var ev Event
	if err := Parse([]byte(line), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Type != TypeFork || ev.PID != 5 || ev.TID != 5 || ev.NS[NSPid] != 4026531836 || ev.Time != 1795419545500000000 {
		t.Errorf("parsed %+v", ev)
	}
}

func TestParseRejects(t *testing.T) {
	for name, line := range map[string]string{
		"not JSON":            `hello`,
		"truncated":           `{"time":"2026-11-23T07:39:05Z","type":"fork","pid":5,"ppid":1,"nspid":[5],"pi`,
		"no type":             `{"pid":5}`,
		"unknown type":        `{"type":"teleport","pid":5}`,
		"levels disagree":     `{"type":"fork","pid":5,"nspid":[5,1],"pidns":[1],"nsppid":[1]}`,
		"no levels":           `{"type":"fork","pid":5}`,
		"too many levels":     `{"type":"fork","pid":5,"nspid":[` + strings.Repeat("1,", 33) + `1]}`,
		"bad time":            `{"type":"lost","time":"yesterday","count":1}`,
		"negative pid":        `{"type":"fork","pid":-5,"nspid":[5],"pidns":[1],"nsppid":[1]}`,
		"text after":          `{"type":"lost","count":1} x`,
		"string not closed":   `{"type":"fork","comm":"abc`,
		"number instead of s": `{"type":5}`,
	} {
		var ev Event
		if err := Parse([]byte(line), &ev); err == nil {
			t.Errorf("%s: Parse accepted %s", name, line)
		}
	}
	var ev Event
	if err := Parse([]byte(`{"type":"header","format":"nspidtrace-record","version":1}`), &ev); !errors.Is(err, ErrHeader) {
		t.Errorf("header line: %v, want ErrHeader", err)
	}
}

func TestHeaderRoundTrip(t *testing.T) {
	h := Header{Format: RecordFormat, Version: 1, Hostname: "web-1", Kernel: "6.18.44", BootID: "0c5e", Start: 1795419545123456789}
	line := AppendHeader(nil, &h)
	got, err := ParseHeader(line[:len(line)-1])
	if err != nil || got != h {
		t.Errorf("ParseHeader(%s) = %+v, %v", line, got, err)
	}
}

func BenchmarkParse(b *testing.B) {
	lines := goldenLines(&testing.T{})
	raw := make([][]byte, len(lines))
	for i, l := range lines {
		raw[i] = []byte(strings.TrimSuffix(l, "\n"))
	}
	var ev Event
	var ps Parser
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := ps.Parse(raw[i%len(raw)], &ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// FuzzParse: any line is parsed or refused, never a panic; what parses
// encodes and parses again to the same event.
func FuzzParse(f *testing.F) {
	for _, l := range goldenLines(&testing.T{}) {
		f.Add([]byte(strings.TrimSuffix(l, "\n")))
	}
	f.Add([]byte(`{"type":"header","format":"nspidtrace-record","version":1}`))
	for _, l := range hostileLines() {
		f.Add([]byte(l))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		var ev, again Event
		if Parse(line, &ev) != nil {
			return
		}
		out := AppendJSON(nil, &ev)
		if err := Parse(out[:len(out)-1], &again); err != nil {
			t.Fatalf("%s parsed, but its encoding %s does not: %v", line, out, err)
		}
		if out2 := AppendJSON(nil, &again); string(out2) != string(out) {
			t.Fatalf("encoding is not stable:\n%s\n%s", out, out2)
		}
	})
}

// A process's cgroup and container survive a recording: escaped strings
// come back exact, and lines of one cgroup share one value.
func TestParseCgroup(t *testing.T) {
	hostile := "web\x1b]0;pwned\x07\u202e\"\\"
	cg := NewCgroup(7, "/kubepods/burstable/pod1/"+hostile, &Container{ID: strings.Repeat("ab", 32), Name: hostile,
		Runtime: "containerd", Pod: &Pod{Namespace: "shop", Name: hostile, UID: "0f5b5a3e-2d5c-4b0a-9a1e-7e0d8c6d2a11"}})
	plain := NewCgroup(8, "/user.slice", nil)
	var ps Parser
	var got [3]*Cgroup
	for i, c := range []*Cgroup{cg, plain, cg} {
		ev := Event{Type: TypeExec, PID: 9, TID: 9, Levels: 1, Cgroup: c, OutsideInitCgroup: i == 0}
		line := AppendJSON(nil, &ev)
		var back Event
		if err := ps.Parse(line[:len(line)-1], &back); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if back.OutsideInitCgroup != (i == 0) {
			t.Errorf("line %d: outside_init_cgroup %v", i, back.OutsideInitCgroup)
		}
		got[i] = back.Cgroup
		if again := AppendJSON(nil, &back); string(again) != string(line) {
			t.Errorf("round trip:\n got %s\nwant %s", again, line)
		}
	}
	if c := got[0].Container; got[0].Path != cg.Path || c == nil || c.Name != hostile || c.Pod == nil || *c.Pod != *cg.Container.Pod {
		t.Errorf("container back as %+v", got[0])
	}
	if got[1].Container != nil || got[1].Path != "/user.slice" {
		t.Errorf("a cgroup in no container back as %+v", got[1])
	}
	if got[0] != got[2] {
		t.Error("two lines of one cgroup gave two values")
	}
	// A line without either field has no cgroup.
	var back Event
	if err := ps.Parse([]byte(`{"type":"exit","pid":1,"nspid":[1],"pidns":[1],"nsppid":[0]}`), &back); err != nil || back.Cgroup != nil {
		t.Errorf("no cgroup fields: %+v, %v", back.Cgroup, err)
	}
}

// hostileLines are lines no recorder writes, each of which broke a reader
// once: Parse must refuse or bound them (and FuzzParse starts from them).
func hostileLines() map[string]string {
	const ids = `"pid":7,"nspid":[7],"pidns":[1],"nsppid":[1]`
	bad := strings.Repeat(`"`+strings.Repeat("\xff", 400)+`",`, 3)
	return map[string]string{
		// Each invalid byte becomes U+FFFD, three bytes: more than fits.
		"invalid args":   `{"type":"exec",` + ids + `,"args":[` + bad + `"x"]}`,
		"deep nesting":   `{"type":"exec",` + ids + `,"x":` + strings.Repeat("[", 1e6) + `}`,
		"deep objects":   `{"type":"exec",` + ids + `,"x":` + strings.Repeat(`{"a":`, 1e5) + `}`,
		"raw escape":     `{"type":"exec",` + ids + `,"comm":"a` + "\x1b]0;pwned\x07" + `"}`,
		"raw newline":    `{"type":"exec",` + ids + `,"comm":"a` + "\x9b2J\r" + `"}`,
		"escaped string": `{"type":"exec",` + ids + `,"args":["a\u0000b` + "\x1b" + `"]}`,
	}
}

func TestParseHostileLines(t *testing.T) {
	lines := hostileLines()
	var ev Event
	if err := Parse([]byte(lines["invalid args"]), &ev); err != nil {
		t.Errorf("invalid args: %v", err)
	} else if !ev.ArgsTruncated || int(ev.ArgsLen) > ArgsLen || ev.Args[ev.ArgsLen-1] != 0 {
		t.Errorf("invalid args: %d bytes, truncated %v", ev.ArgsLen, ev.ArgsTruncated)
	}
	for _, name := range []string{"deep nesting", "deep objects", "raw escape", "raw newline", "escaped string"} {
		if err := Parse([]byte(lines[name]), &ev); !errors.Is(err, errSyntax) {
			t.Errorf("%s: %v, want it refused as not JSON", name, err)
		}
	}
	// Nesting up to the bound is JSON like any other.
	ok := `{"type":"exec","pid":7,"nspid":[7],"pidns":[1],"nsppid":[1],"x":` +
		strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `}`
	if err := Parse([]byte(ok), &ev); err != nil {
		t.Errorf("%d levels: %v", maxDepth, err)
	}
}

// TestParseUnresolvedCgroup: a cgroup that could not be named says so on
// its line, and a recording read back still says so.
func TestParseUnresolvedCgroup(t *testing.T) {
	cg := NewUnresolved(7, "/system.slice/docker-ab.scope", nil, "container name: too many open files")
	line := AppendJSON(nil, &Event{Type: TypeExec, PID: 9, TID: 9, Levels: 1, Cgroup: cg})
	if !strings.Contains(string(line), `"attribution_error":"container name: too many open files"`) {
		t.Fatalf("line %s lacks attribution_error", line)
	}
	var back Event
	if err := Parse(line[:len(line)-1], &back); err != nil || back.Cgroup == nil || back.Cgroup.Unresolved != cg.Unresolved {
		t.Fatalf("read back: %+v, %v", back.Cgroup, err)
	}
	if again := AppendJSON(nil, &back); string(again) != string(line) {
		t.Errorf("round trip:\n got %s\nwant %s", again, line)
	}
}
