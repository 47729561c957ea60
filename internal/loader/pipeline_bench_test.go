package loader

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
)

// record lays out a kernel record with the bpf2go types, as the BPF side
// writes it.
func record(b testing.TB, v any) []byte {
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.NativeEndian, v); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

// BenchmarkPipeline measures what nspidtrace does per event in user space:
// decode the kernel's record, update the tree, enrich exec lines with their
// ancestors from it (four deep here, as under containerd's shim), encode
// the NDJSON line. A
// process in a container is forked, exec'd and exits, a thousand alive at a
// time, on one core. Target: >= 1,000,000 events/s and
// 0 allocations per event.
func BenchmarkPipeline(b *testing.B) {
	const alive = 1000
	base := nspidtraceNsptEvent{Ppid: 900, Levels: 2, Ns: [10]uint32{4026531835, 4026532158, 4026532155, 4026532160,
		4026532156, 4026532156, 4026531834, 4026531834, 4026531837, 4026532157}}
	base.Pidns[0], base.Pidns[1] = 4026531836, 4026532156
	base.Nsppid[0], base.Nsppid[1] = 900, 1
	copy(base.Comm[:], []int8{'n', 'g', 'i', 'n', 'x'})
	// One record of each kind per PID slot; PIDs are patched in place.
	raws := make([][3][]byte, 2*alive)
	for i := range raws {
		pid := uint32(10000 + i)
		e := base
		e.Pid, e.Tid, e.StartNs = pid, pid, uint64(pid)
		e.Nspid[0], e.Nspid[1] = pid, uint32(2+i)
		e.Type = 1
		fork := record(b, e)
		x := nspidtraceNsptExecEvent{E: e}
		x.E.Type = 2
		args := "nginx\x00-g\x00daemon off;\x00"
		for j := range args {
			x.Args[j] = int8(args[j])
		}
		x.ArgsLen = uint32(len(args))
		exec := record(b, x)
		e.Type, e.Reaper, e.ExitStatus = 3, 900, 0
		exit := record(b, e)
		raws[i] = [3][]byte{fork, exec, exit}
	}
	tree := pidmap.NewTree(pidmap.DefaultExitedKept)
	// The host's init, a shim and the container's init above the churn.
	for _, a := range [][2]uint32{{1, 0}, {800, 1}, {899, 800}} {
		host := events.Event{Type: events.TypeProc, PID: a[0], TID: a[0], PPID: a[1], Levels: 1, StartBoot: uint64(a[0])}
		host.NSPid[0], host.PidNS[0] = a[0], 4026531836
		tree.Apply(&host)
	}
	init := events.Event{Type: events.TypeProc, PID: 900, TID: 900, PPID: 899, Levels: 2}
	init.NSPid[0], init.NSPid[1], init.PidNS[0], init.PidNS[1] = 900, 1, 4026531836, 4026532156
	tree.Apply(&init)

	var dec events.Decoder
	var ev events.Event
	buf := make([]byte, 0, 4096)
	step := func(raw []byte) {
		if err := dec.Decode(raw, &ev); err != nil {
			b.Fatal(err)
		}
		tree.Apply(&ev)
		if ev.Type == events.TypeExec {
			tree.Get(ev.PID).FillAncestors(&ev, events.MaxAncestors)
		}
		buf = events.AppendJSON(buf[:0], &ev)
	}
	// Warm up: a thousand processes alive, the exited ring full.
	n := 0
	cycle := func() {
		slot := n % len(raws)
		step(raws[slot][0])
		step(raws[slot][1])
		step(raws[(slot+len(raws)-alive)%len(raws)][2])
		n++
	}
	for range pidmap.DefaultExitedKept + alive {
		cycle()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 3 {
		cycle()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
