// Package metrics serves what trace and record are doing as Prometheus
// metrics (--metrics ADDR), with a health endpoint that tells whether the
// live tree is synced with the kernel.
//
// The feed's goroutine owns the tree and the counts; it hands them over
// here through atomic counters and gauges, so a scrape never reads the tree.
//
// The text exposition format is written here rather than by the Prometheus
// client library: ten metrics need a few lines of it, and the library's
// package initialisation (with protobuf and the runtime/metrics collectors)
// cost every command, even a one-shot `nspidtrace <pid>`, 8 ms of start-up
// on a 2-vCPU machine, half of that command's budget.
package metrics

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

// Feed holds one feed's metrics. Its methods are called from the feed's
// goroutine; the server reads them concurrently.
type Feed struct {
	// The source, from Attach on: the server answers before the tracer
	// is loaded (a probe gets 503, not a refused connection).
	mu     sync.Mutex
	ring   Ring
	synced Synced

	// One counter per event type: counting costs an atomic add, no
	// lookup, no allocation.
	received, written [events.TypeMax + 1]atomic.Uint64

	// Findings raised, by name.
	found [events.FindingCount]atomic.Uint64

	lost, resyncs, writeErrors, unresolved atomic.Uint64
	processes, namespaces                  atomic.Int64
}

// Ring is the kernel's ring buffer as the reader sees it; its methods are
// safe to call from any goroutine while it is open.
type Ring interface {
	AvailableBytes() int
	BufferSize() int
}

// Synced tells whether the live tree is up to date with the kernel: its
// first snapshot is taken and no resync after lost events is under way.
type Synced func() bool

// New makes a feed's metrics. ring and synced are read at each scrape;
// both may be nil until Attach.
func New(ring Ring, synced Synced) *Feed {
	return &Feed{ring: ring, synced: synced}
}

// Attach gives the metrics their source once the tracer is loaded.
func (m *Feed) Attach(ring Ring, synced Synced) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.ring, m.synced = ring, synced
}

// source returns the ring and whether the tree is synced; nil and false
// before Attach.
func (m *Feed) source() (Ring, bool) {
	m.mu.Lock()
	ring, synced := m.ring, m.synced
	m.mu.Unlock()
	return ring, synced != nil && synced()
}

// Received counts an event the kernel reported.
func (m *Feed) Received(t events.Type) { m.received[t].Add(1) }

// Written counts a line written.
func (m *Feed) Written(t events.Type) { m.written[t].Add(1) }

// Found counts a finding raised on a process.
func (m *Feed) Found(n events.FindingName) { m.found[n].Add(1) }

// WriteError counts a failed write.
func (m *Feed) WriteError() { m.writeErrors.Add(1) }

// Update takes the follower's running totals, the tree's size, and the
// cgroups that could not be named.
func (m *Feed) Update(lost uint64, resyncs, processes, namespaces int, unresolved uint64) {
	m.unresolved.Store(unresolved)
	m.lost.Store(lost)
	m.resyncs.Store(uint64(resyncs))
	m.processes.Store(int64(processes))
	m.namespaces.Store(int64(namespaces))
}

// contentType is the Prometheus text exposition format, version 0.0.4.
const contentType = "text/plain; version=0.0.4; charset=utf-8"

// WriteTo writes every metric in the text exposition format: a HELP and a
// TYPE line for each family, then its samples.
func (m *Feed) WriteTo(w *bufio.Writer) error {
	family := func(name, kind, help string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, kind)
	}
	sample := func(name string, v uint64) { fmt.Fprintf(w, "%s %d\n", name, v) }
	byType := func(name, help string, counts *[events.TypeMax + 1]atomic.Uint64, skip events.Type) {
		family(name, "counter", help)
		for t := events.Type(1); t <= events.TypeMax; t++ {
			if t != skip {
				fmt.Fprintf(w, "%s{type=%q} %d\n", name, t.String(), counts[t].Load())
			}
		}
	}
	gauge := func(name, help string, v int64) {
		family(name, "gauge", help)
		fmt.Fprintf(w, "%s %d\n", name, v)
	}
	// The end line is the recorder's own: no event of the kernel's.
	byType("nspidtrace_events_total", "Events the kernel reported, by type, before any filter (lost: reports of lost events).", &m.received, events.TypeEnd)
	byType("nspidtrace_lines_written_total", "NDJSON lines written to the output, by type: the feed's own counts.", &m.written, 0)
	family("nspidtrace_findings_total", "counter", "Findings raised on processes, by name: each process counts once per name (docs/findings.md).")
	for n := range events.FindingCount {
		fmt.Fprintf(w, "nspidtrace_findings_total{name=%q} %d\n", n.String(), m.found[n].Load())
	}
	family("nspidtrace_lost_events_total", "counter", "Events the kernel dropped (ring buffer full, or a program that could not run).")
	sample("nspidtrace_lost_events_total", m.lost.Load())
	family("nspidtrace_resyncs_total", "counter", "Times the live tree was rebuilt from a snapshot after lost events.")
	sample("nspidtrace_resyncs_total", m.resyncs.Load())
	family("nspidtrace_write_errors_total", "counter", "Writes to the output that failed (each ends the feed).")
	sample("nspidtrace_write_errors_total", m.writeErrors.Load())
	family("nspidtrace_attribution_errors_total", "counter", "Cgroups and containers that could not be named when an event was read, for want of file descriptors or memory (their lines carry attribution_error).")
	sample("nspidtrace_attribution_errors_total", m.unresolved.Load())
	gauge("nspidtrace_tree_processes", "Live processes in the tree.", m.processes.Load())
	gauge("nspidtrace_tree_pid_namespaces", "Pid namespaces in the tree.", m.namespaces.Load())
	ring, isSynced := m.source()
	var used, size, synced int64
	if ring != nil {
		used, size = int64(ring.AvailableBytes()), int64(ring.BufferSize())
	}
	if isSynced {
		synced = 1
	}
	gauge("nspidtrace_ring_buffer_used_bytes", "Bytes in the kernel's ring buffer not yet read.", used)
	gauge("nspidtrace_ring_buffer_size_bytes", "Size of the kernel's ring buffer.", size)
	gauge("nspidtrace_tree_synced", "1 when the live tree is up to date with the kernel, 0 while it is being built or resynced.", synced)
	return w.Flush()
}

// ListenAddr reads --metrics: a bare port listens on the loopback only
// (metrics name the host's processes' counts, not for every network);
// HOST:PORT as given, so ":9464" is every interface, on purpose.
func ListenAddr(arg string) (string, error) {
	if port, err := strconv.ParseUint(arg, 10, 16); err == nil && port > 0 {
		return net.JoinHostPort("127.0.0.1", arg), nil
	}
	host, port, err := net.SplitHostPort(arg)
	if err != nil {
		return "", fmt.Errorf("%q is neither a port nor HOST:PORT", arg)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("%q: the port %q is not a number from 1 to 65535", arg, port)
	}
	return net.JoinHostPort(host, port), nil
}

// Server serves /metrics and /healthz.
type Server struct {
	http     *http.Server
	listener net.Listener
	done     chan error
}

// Serve listens on addr now (so a port in use fails before tracing starts)
// and serves m, and its tree's health, in the background until Close.
func Serve(addr string, m *Feed) (*Server, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("serve metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		m.WriteTo(bufio.NewWriter(w))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if _, synced := m.source(); !synced {
			http.Error(w, "not synced: the live tree is being built or resynced", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok: the live tree is synced")
	})
	s := &Server{
		// Bounded in every way a client could hold the server: slow
		// headers, slow bodies, slow readers, idle keep-alives, huge
		// headers. Each connection held is a descriptor the tracer
		// needs to name containers.
		http: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       30 * time.Second,
			MaxHeaderBytes:    8 << 10,
		},
		listener: l,
		done:     make(chan error, 1),
	}
	go func() { s.done <- s.http.Serve(limitListener(l, MaxConns)) }()
	return s, nil
}

// MaxConns is how many connections the server holds at once. A scraper
// and a probe need two; more wait in the kernel's accept queue, where they
// hold none of the process's descriptors.
const MaxConns = 32

// limitListener accepts at most n connections at a time: Accept waits for
// one of them to close.
func limitListener(l net.Listener, n int) net.Listener {
	return &limited{Listener: l, slots: make(chan struct{}, n), done: make(chan struct{})}
}

type limited struct {
	net.Listener
	slots     chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limited) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &slotConn{Conn: c, free: func() { <-l.slots }}, nil
}

func (l *limited) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// slotConn gives its slot back once, when closed.
type slotConn struct {
	net.Conn
	once sync.Once
	free func()
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.free)
	return err
}

// Addr is where the server listens (with the port chosen when asked for 0).
func (s *Server) Addr() string { return s.listener.Addr().String() }

// Close stops serving; a scrape under way gets a second to finish.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	if serr := <-s.done; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
