package loader

import (
	"runtime"
	"testing"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// buildTree builds a tree from the kernel's task iterator, as
// `nspidtrace tree` does.
func buildTree(b *testing.B) *pidmap.Tree {
	tree := pidmap.NewTree(0)
	var ev events.Event
	dec := events.Decoder{}
	err := ReadSnapshot(func(raw []byte) error {
		if err := dec.Decode(raw, &ev); err != nil {
			return err
		}
		tree.Apply(&ev)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	tree.Relink()
	return tree
}

// BenchmarkTreeFromKernel builds the tree of a machine with 10,000 more
// processes than it had: load the iterator, run it, apply every record.
// It also reports the tree's memory per tracked process.
// Targets: <= 60 ms, <= 512 bytes per process.
func BenchmarkTreeFromKernel(b *testing.B) {
	testenv.Require(b)
	testenv.Hold(b, 10000)
	var procs int
	b.ResetTimer()
	for range b.N {
		procs = buildTree(b).Len()
	}
	b.StopTimer()
	b.ReportMetric(float64(procs), "procs")

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tree := buildTree(b)
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(tree.Len()), "bytes/proc")
	runtime.KeepAlive(tree)
}
