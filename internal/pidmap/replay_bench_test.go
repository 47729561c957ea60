package pidmap

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

// writeRecording writes a recording of n events: processes in a container
// forked, exec'd and exited, about a thousand alive at a time, PIDs reused.
func writeRecording(b *testing.B, path string, n int) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	h := events.Header{Format: events.RecordFormat, Version: 1, Start: t0}
	w.Write(events.AppendHeader(nil, &h))
	var buf []byte
	write := func(e *events.Event) {
		buf = events.AppendJSON(buf[:0], e)
		w.Write(buf)
	}
	init := ev(events.TypeProc, 100, 1, 100, 1)
	write(at(init, t0))
	const alive = 1000
	now := t0
	for i := 0; i*3 < n; i++ {
		pid := uint32(1000 + i%30000)
		now += 1000
		fork := ev(events.TypeFork, pid, 100, pid, 2+uint32(i%30000))
		fork.Time = now
		write(fork)
		fork.Type, fork.Time = events.TypeExec, now+100
		fork.SetFilename("/usr/bin/curl")
		fork.SetArgs([]string{"curl", "-s", "http://localhost:8080/health"})
		write(fork)
		if i >= alive {
			old := uint32(1000 + (i-alive)%30000)
			exit := ev(events.TypeExit, old, 100, old, 2+uint32((i-alive)%30000))
			exit.Time, exit.Reaper, exit.ExitStatus = now+200, 100, 7<<8
			write(exit)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	f.Close()
}

// BenchmarkReplay replays a 1,000,000-event recording into a tree.
// Target: >= 1,000,000 events/s, memory bounded
// by the processes alive at a time, not by the file.
func BenchmarkReplay(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.ndjson")
	writeRecording(b, path, 1_000_000)
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
	var applied int
	var peak uint64
	b.ResetTimer()
	for range b.N {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		tree := NewTree(DefaultExitedKept)
		rep, err := ReplayFile(f, At{}, tree, nil)
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		applied = rep.Applied
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapSys)
		if tree.Len() != 1001 {
			b.Fatalf("%d live processes at the end, want 1001", tree.Len())
		}
	}
	b.ReportMetric(float64(applied)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(peak)/(1<<20), "heap-MiB")
}
