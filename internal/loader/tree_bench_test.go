package loader

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// buildTree builds a tree from the kernel's task iterator, as
// `nspidtrace tree` does: with argv for JSON, without for text.
func buildTree(b *testing.B, args bool) *pidmap.Tree {
	tree, err := pidmap.FromSnapshot(func(handle func([]byte) error) error {
		return ReadSnapshot(args, handle)
	}, events.Decoder{}, procfs.Tasks(procfs.ProcRoot))
	if err != nil {
		b.Fatal(err)
	}
	return tree
}

// builds are the two builds of the programs, for benchmarks of both on
// this kernel.
var builds = []struct {
	name string
	use  func(testing.TB)
}{
	{"build=5.18+", func(testing.TB) {}},
	{"build=compat", compatKernel},
}

// BenchmarkTreeFromKernel builds the tree of a machine with 10,000 more
// processes than it had: load the iterator, run it, apply every record.
// It also reports the tree's memory per tracked process. The compat build
// reads argv from /proc instead of the processes' memory; args=false is
// `tree` as text, which copies no argv.
// Targets: <= 60 ms, <= 512 bytes per process.
func BenchmarkTreeFromKernel(b *testing.B) {
	testenv.Require(b)
	testenv.Hold(b, 10000)
	for _, build := range builds {
		for _, args := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/args=%v", build.name, args), func(b *testing.B) {
				build.use(b)
				var procs int
				for b.Loop() {
					procs = buildTree(b, args).Len()
				}
				b.ReportMetric(float64(procs), "procs")

				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				tree := buildTree(b, args)
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(tree.Len()), "bytes/proc")
				runtime.KeepAlive(tree)
			})
		}
	}
}

// BenchmarkOpen loads and attaches every program, as `trace` does before
// its first event (ms-open: the verifier's time is most of it, and the
// compat build's level loop is verified level by level), and detaches them,
// as it does at its end (ms-close: the kernel waits out RCU grace periods
// to unhook each tracepoint).
func BenchmarkOpen(b *testing.B) {
	testenv.Require(b)
	for _, build := range builds {
		b.Run(build.name, func(b *testing.B) {
			build.use(b)
			var open, closing time.Duration
			for b.Loop() {
				start := time.Now()
				tr, err := Open(Options{Logger: zerolog.Nop()})
				if err != nil {
					b.Fatal(err)
				}
				open += time.Since(start)
				start = time.Now()
				tr.Close()
				closing += time.Since(start)
			}
			b.ReportMetric(float64(open.Milliseconds())/float64(b.N), "ms-open")
			b.ReportMetric(float64(closing.Milliseconds())/float64(b.N), "ms-close")
		})
	}
}
