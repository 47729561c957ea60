package loader

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// PollInterval bounds how long a record waits in the ring buffer while
// records come: the BPF side wakes a reader that is awake only in batches.
const PollInterval = 50 * time.Millisecond

// IdleInterval is how long the reader sleeps once a whole PollInterval
// brought nothing: the next record wakes it at once (reader_asleep in the
// BPF side), so a quiet machine costs a wake-up a second, not twenty.
const IdleInterval = time.Second

// Run reads records until ctx is done, calling handle for each (the slice
// is reused after it returns) and idle whenever the ring buffer has been
// drained (at least every IdleInterval, every PollInterval while records
// come). When ctx is done it detaches the programs, hands over every record
// still in the ring buffer, calls idle once more and returns nil. An error
// from handle or idle ends it too, and is returned.
func (t *Tracer) Run(ctx context.Context, handle func(raw []byte) error, idle func() error) error {
	// A reader asleep for IdleInterval is woken when ctx is done.
	defer context.AfterFunc(ctx, func() { t.reader.Flush() })()
	var rec ringbuf.Record
	stopping, asleep := false, false
	read := 0 // records since the deadline was last set
	t.reader.SetDeadline(time.Now().Add(PollInterval))
	for n := 1; ; n++ {
		err := t.reader.ReadInto(&rec)
		switch {
		case err == nil:
			read++
			if asleep { // woken by the record: records come, poll again
				asleep = false
				t.reader.SetDeadline(time.Now().Add(PollInterval))
			}
			if err := handle(rec.RawSample); err != nil {
				return err
			}
			// Under a sustained load the ring may never drain: look at ctx
			// now and then, not only when idle.
			if stopping || n%4096 != 0 || ctx.Err() == nil {
				continue
			}
		case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, ringbuf.ErrFlushed):
			if err := idle(); err != nil {
				return err
			}
			if stopping {
				return nil
			}
		default:
			return fmt.Errorf("read the ring buffer: %w", err)
		}
		switch {
		case ctx.Err() != nil:
			// Stop producing, then drain what was produced.
			stopping = true
			t.detach()
			t.reader.SetDeadline(time.Now())
		case read == 0 && !asleep && t.objs.ReaderAsleep.Set(uint32(1)) == nil:
			// Set before the deadline: a record that comes in between
			// is in the ring, and read at once. (Where it cannot be set,
			// the reader polls every PollInterval, as when records come.)
			asleep = true
			t.reader.SetDeadline(time.Now().Add(IdleInterval))
		case asleep:
			t.reader.SetDeadline(time.Now().Add(IdleInterval))
		default:
			t.reader.SetDeadline(time.Now().Add(PollInterval))
		}
		read = 0
	}
}

// AvailableBytes is how much of the ring buffer waits to be read; safe to
// call from any goroutine until Close.
func (t *Tracer) AvailableBytes() int { return t.reader.AvailableBytes() }

// BufferSize is the ring buffer's size in bytes.
func (t *Tracer) BufferSize() int { return t.reader.BufferSize() }

// BootToUnix returns what to add to a CLOCK_BOOTTIME timestamp, as the BPF
// programs take them, to get Unix time in nanoseconds.
func BootToUnix() (int64, error) {
	var ts unix.Timespec
	before := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0, fmt.Errorf("read CLOCK_BOOTTIME: %w", err)
	}
	return before.UnixNano() - ts.Nano(), nil
}
