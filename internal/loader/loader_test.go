package loader

import (
	"context"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.RunHelperIfAsked()
	os.Exit(m.Run())
}

// collector counts the records of a running Tracer.
type collector struct {
	mu       sync.Mutex
	captured int
	bad      int
	types    map[events.Type]int
}

func (c *collector) handle(raw []byte) error {
	var ev events.Event
	c.mu.Lock()
	defer c.mu.Unlock()
	dec := &events.Decoder{}
	if dec.Learn(raw) {
		return nil // a cgroup made, not a process's record
	}
	if err := dec.Decode(raw, &ev); err != nil {
		c.bad++
		return nil
	}
	c.captured++
	c.types[ev.Type]++
	return nil
}

// stormAccounting runs a storm in a pid namespace of its own while a tracer
// restricted to it reads (or, with readLate, only after the storm), and
// returns what was expected, captured and reported lost, and the rate.
func stormAccounting(t testing.TB, mode string, n, ringBytes int, readLate bool) (expected, captured int, lost uint64, rate float64) {
	expected, captured, lost, rate, _ = stormAccountingTypes(t, mode, n, ringBytes, readLate)
	return
}

// stormAccountingTypes is stormAccounting, with the captured count by type.
func stormAccountingTypes(t testing.TB, mode string, n, ringBytes int, readLate bool) (expected, captured int, lost uint64, rate float64, types map[events.Type]int) {
	ns := testenv.NewPidNS(t)
	tr, err := Open(Options{PidNS: ns.Inode, RingBytes: ringBytes, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	c := &collector{types: map[events.Type]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	run := func() { done <- tr.Run(ctx, c.handle, func() error { return nil }) }
	if !readLate {
		go run()
	}
	rate = testenv.Storm(t, &ns, mode, n)
	cancel()
	if readLate {
		go run()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if lost, err = tr.Lost(); err != nil {
		t.Fatal(err)
	}
	if c.bad != 0 {
		t.Errorf("%d records did not decode", c.bad)
	}
	return testenv.StormEvents(mode, n), c.captured, lost, rate, c.types
}

// TestLossIsCounted fills a tiny ring buffer nobody reads: every record that
// did not fit must be counted as lost, none silently dropped.
func TestLossIsCounted(t *testing.T) {
	testenv.Require(t)
	expected, captured, lost, _ := stormAccounting(t, "forkexit", 2000, os.Getpagesize(), true)
	t.Logf("expected %d, captured %d, lost %d", expected, captured, lost)
	if lost == 0 {
		t.Errorf("a one-page ring buffer held all %d records of the storm unread", expected)
	}
	if captured+int(lost) != expected {
		t.Errorf("captured %d + lost %d = %d, want exactly the %d events of the storm", captured, lost, captured+int(lost), expected)
	}
}

// TestNoLossWithDefaultBuffer reads while a fork+exit storm runs.
func TestNoLossWithDefaultBuffer(t *testing.T) {
	testenv.Require(t)
	expected, captured, lost, _, types := stormAccountingTypes(t, "forkexit", 5000, 0, false)
	if lost != 0 || captured != expected {
		t.Errorf("captured %d and lost %d of %d events; by type: %v", captured, lost, expected, types)
	}
}

func TestOpenRejectsBadRingSize(t *testing.T) {
	for _, n := range []int{1, 4097, 3 << 20} {
		if _, err := Open(Options{RingBytes: n}); err == nil {
			t.Errorf("Open accepted a %d-byte ring buffer", n)
		}
	}
}

// TestRunDrainsOnCancel checks that records produced before the stop are
// handed over after it: nothing recorded is lost at shutdown.
func TestRunDrainsOnCancel(t *testing.T) {
	testenv.Require(t)
	ns := testenv.NewPidNS(t)
	tr, err := Open(Options{PidNS: ns.Inode, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	testenv.Storm(t, &ns, "forkexit", 100)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c := &collector{types: map[events.Type]int{}}
	start := time.Now()
	if err := tr.Run(ctx, c.handle, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
	if want := testenv.StormEvents("forkexit", 100); c.captured != want {
		t.Errorf("Run after cancel handed over %d records (%v), want %d", c.captured, c.types, want)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Run took %v to drain and return", d)
	}
}

// BenchmarkForkExitStorm reports, for the default and a deliberately tiny
// ring buffer, the events a fork+exit storm caused, captured and lost.
func BenchmarkForkExitStorm(b *testing.B) {
	testenv.Require(b)
	for _, rb := range []struct {
		name  string
		bytes int
	}{{"default-ring", 0}, {"16KiB-ring", 16 << 10}, {"4KiB-ring", 4 << 10}} {
		b.Run(rb.name, func(b *testing.B) {
			var expected, captured int
			var lost uint64
			var rate float64
			for range b.N {
				expected, captured, lost, rate = stormAccounting(b, "forkexit", 20000, rb.bytes, false)
				if captured+int(lost) != expected {
					b.Errorf("captured %d + lost %d != expected %d", captured, lost, expected)
				}
			}
			b.ReportMetric(float64(expected), "expected")
			b.ReportMetric(float64(captured), "captured")
			b.ReportMetric(float64(lost), "lost")
			b.ReportMetric(rate, "forks/s")
		})
	}
}

// The live tree reads from a Tracer.
var _ pidmap.Source = (*Tracer)(nil)

// TestMinKernelMatchesTheDocs checks that the kernel floor in error
// messages is the one the README and docs/kernel.md promise.
func TestMinKernelMatchesTheDocs(t *testing.T) {
	for _, name := range []string{"../../README.md", "../../docs/kernel.md"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), "Linux "+MinKernel+" or newer") {
			t.Errorf("%s does not say \"Linux %s or newer\"", name, MinKernel)
		}
	}
	if msg := explainLoadError(ebpf.ErrNotSupported, Features{}).Error(); !strings.Contains(msg, "Linux "+MinKernel+" or newer") {
		t.Errorf("the error for a missing kernel feature says %q", msg)
	}
}

// TestReaderSleepsWhenIdle: with nothing to read, the reader wakes about
// once an IdleInterval, not every FlushInterval; a record that comes while
// it sleeps wakes it at once (the BPF side's reader_asleep), and a stop
// wakes it too.
func TestReaderSleepsWhenIdle(t *testing.T) {
	testenv.Require(t)
	ns := testenv.NewPidNS(t) // only its processes are reported: a quiet source
	const flush = 50 * time.Millisecond
	tr, err := Open(Options{PidNS: ns.Inode, FlushInterval: flush, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	var idles atomic.Int32
	got := make(chan time.Time, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- tr.Run(ctx, func([]byte) error {
			select {
			case got <- time.Now():
			default:
			}
			return nil
		}, func() error { idles.Add(1); return nil })
	}()

	time.Sleep(2500 * time.Millisecond)
	// Polling, 2.5 s would be 50 wake-ups; asleep, 3 or 4.
	if n := idles.Load(); n > 6 {
		t.Errorf("%d wake-ups in 2.5 s of nothing", n)
	}

	// Right after a wake-up the reader sleeps for IdleInterval: the record
	// must wake it sooner.
	for before := idles.Load(); idles.Load() == before; {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	testenv.Storm(t, &ns, "forkexit", 1)
	select {
	case at := <-got:
		if d := at.Sub(start); d > IdleInterval/2 {
			t.Errorf("a record waited %v for the sleeping reader (it sleeps %v)", d, IdleInterval)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no record")
	}

	// A stop wakes it as well: the drain after it calls idle.
	time.Sleep(2 * flush) // asleep again
	for before := idles.Load(); idles.Load() == before; {
		time.Sleep(5 * time.Millisecond)
	}
	before := idles.Load()
	start = time.Now()
	cancel()
	for idles.Load() == before && time.Since(start) < 5*time.Second {
		time.Sleep(5 * time.Millisecond)
	}
	if d := time.Since(start); d > IdleInterval/2 {
		t.Errorf("the sleeping reader saw the stop after %v", d)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
