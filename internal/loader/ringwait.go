package loader

import (
	"context"
	"fmt"
	"os"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ringWaiter parks the reading goroutine in Go's own poller until the
// ring buffer holds a record, a deadline passes or a stop interrupts it.
//
// ringbuf.Reader waits in epoll_wait on its own, which blocks an OS thread
// in a system call. While a goroutine is in a system call its P stays
// busy, and the runtime's sysmon thread keeps watching it: it wakes every
// 20µs at first, takes the P back after 10ms and starts over. On a
// fork+exec+exit storm that was about 600 context switches a second and
// half of the tracer's CPU time, on the cores the storm runs on. Parked in
// the poller, the goroutine leaves every P idle, and sysmon sleeps until
// the next timer. The reader then only drains, with a deadline in the
// past: it never blocks.
type ringWaiter struct {
	file *os.File // a duplicate of the ring buffer map's descriptor
	conn syscall.RawConn
	// available reports whether the ring buffer holds a record.
	available func() bool
}

func newRingWaiter(ring *ebpf.Map, available func() bool) (*ringWaiter, error) {
	fd, err := unix.FcntlInt(uintptr(ring.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("duplicate the ring buffer's descriptor: %w", err)
	}
	// O_NONBLOCK is what makes os.NewFile add the descriptor to the
	// runtime's poller; a ring buffer's reads and polls ignore it.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("make the ring buffer's descriptor non-blocking: %w", err)
	}
	w := &ringWaiter{file: os.NewFile(uintptr(fd), "ring buffer"), available: available}
	// Deadlines are refused where the poller did not take the descriptor.
	if err := w.file.SetReadDeadline(time.Time{}); err != nil {
		w.file.Close()
		return nil, fmt.Errorf("poll the ring buffer: %w", err)
	}
	if w.conn, err = w.file.SyscallConn(); err != nil {
		w.file.Close()
		return nil, fmt.Errorf("poll the ring buffer: %w", err)
	}
	return w, nil
}

// wait returns nil once the ring buffer holds a record or ctx is done, and
// os.ErrDeadlineExceeded at the deadline. interrupt, run when ctx is done,
// ends a wait at once: whichever of the two deadlines is set last, either
// the wait sees ctx done before it parks or the past deadline wakes it.
func (w *ringWaiter) wait(ctx context.Context, deadline time.Time) error {
	if err := w.file.SetReadDeadline(deadline); err != nil {
		return err
	}
	return w.conn.Read(func(uintptr) bool { return w.available() || ctx.Err() != nil })
}

// interrupt ends the current wait, and every wait until the next deadline.
func (w *ringWaiter) interrupt() { w.file.SetReadDeadline(time.Now()) }

func (w *ringWaiter) close() error { return w.file.Close() }
