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

// DefaultFlushInterval is how long a record may wait in the ring buffer
// while records keep coming. Each wake-up of the reader costs the machine
// about half a millisecond of CPU whatever it brings (a cold cache,
// scheduler and runtime threads woken on a 2-vCPU VM), so on a
// fork+exec+exit storm the reader cost 70µs per process when woken every
// 50 ms and about 30µs every 250 ms. The first record after a quiet
// FlushInterval wakes the reader at once: a lone event is not delayed.
const DefaultFlushInterval = 250 * time.Millisecond

// IdleInterval is how long the reader sleeps once a whole FlushInterval
// brought nothing: the next record wakes it at once (reader_asleep in the
// BPF side), so a quiet machine costs a wake-up a second.
const IdleInterval = time.Second

// CheckFlushInterval says why d cannot be a FlushInterval: it must be at
// least a millisecond, and at most IdleInterval (Run's idle callbacks,
// such as record's rotation by age, count on a call every second).
func CheckFlushInterval(d time.Duration) error {
	if d < time.Millisecond || d > IdleInterval {
		return fmt.Errorf("flush interval %v is not between 1ms and %v", d, IdleInterval)
	}
	return nil
}

// Run reads records until ctx is done, calling handle for each (the slice
// is reused after it returns) and idle whenever the ring buffer has been
// drained (at least every IdleInterval, every FlushInterval while records
// come). When ctx is done it detaches the programs, hands over every record
// still in the ring buffer, calls idle once more and returns nil. An error
// from handle or idle ends it too, and is returned.
func (t *Tracer) Run(ctx context.Context, handle func(raw []byte) error, idle func() error) error {
	defer context.AfterFunc(ctx, t.waiter.interrupt)()
	// The waiter waits; the reader only drains.
	t.reader.SetDeadline(time.Now())
	var rec ringbuf.Record
	stopping, asleep := false, false
	for {
		if !stopping {
			timeout := t.flush
			if asleep {
				timeout = IdleInterval
			}
			err := t.waiter.wait(ctx, time.Now().Add(timeout))
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("wait for the ring buffer: %w", err)
			}
		}
		read, err := t.drain(&rec, handle, func() bool { return !stopping && ctx.Err() != nil })
		if err != nil {
			return err
		}
		if err := idle(); err != nil {
			return err
		}
		switch {
		case stopping:
			return nil
		case ctx.Err() != nil:
			// What was read is out; stop producing (detaching takes a
			// while), then drain what was produced meanwhile.
			stopping = true
			t.detach()
		case read > 0:
			asleep = false // woken by records: they come, poll again
		case !asleep && t.objs.ReaderAsleep.Set(uint32(1)) == nil:
			// A whole FlushInterval brought nothing. Set before the wait:
			// a record that comes in between is in the ring, and the
			// wait returns at once. (Where it cannot be set, the reader
			// polls every FlushInterval, as when records come.)
			asleep = true
		}
	}
}

// drain hands every record in the ring buffer to handle and returns how
// many there were. Under a sustained load the ring may never drain, so
// every 4096 records it also asks cut whether to return early (a stop is
// due: the programs must be detached first).
func (t *Tracer) drain(rec *ringbuf.Record, handle func(raw []byte) error, cut func() bool) (int, error) {
	for read := 0; ; {
		err := t.reader.ReadInto(rec)
		if errors.Is(err, os.ErrDeadlineExceeded) { // empty
			return read, nil
		}
		if err != nil {
			return read, fmt.Errorf("read the ring buffer: %w", err)
		}
		read++
		if err := handle(rec.RawSample); err != nil {
			return read, err
		}
		if read%4096 == 0 && cut() {
			return read, nil
		}
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
