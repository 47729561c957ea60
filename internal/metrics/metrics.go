// Package metrics serves what trace and record are doing as Prometheus
// metrics (--metrics ADDR), with a health endpoint that tells whether the
// live tree is synced with the kernel.
//
// The feed's goroutine owns the tree and the counts; it hands them over
// here through atomic counters and gauges, so a scrape never reads the tree.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

// Feed holds one feed's metrics. Its methods are called from the feed's
// goroutine; the server reads them concurrently.
type Feed struct {
	registry *prometheus.Registry
	synced   Synced

	// One counter per event type, resolved once: counting costs an atomic
	// add, no lookup, no allocation.
	received, written [events.TypeMax + 1]prometheus.Counter

	lost, resyncs, writeErrors prometheus.Counter
	processes, namespaces      prometheus.Gauge

	// Counts already added to the counters above, from the follower's
	// running totals.
	lostSeen    uint64
	resyncsSeen int
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

// New registers a feed's metrics. ring and synced are read at each scrape.
func New(ring Ring, synced Synced) *Feed {
	m := &Feed{registry: prometheus.NewRegistry(), synced: synced}
	received := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nspidtrace_events_total",
		Help: "Events the kernel reported, by type, before any filter.",
	}, []string{"type"})
	written := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "nspidtrace_lines_written_total",
		Help: "NDJSON lines written to the output, by type: the feed's own counts.",
	}, []string{"type"})
	for t := events.Type(1); t <= events.TypeMax; t++ {
		m.received[t] = received.WithLabelValues(t.String())
		m.written[t] = written.WithLabelValues(t.String())
	}
	m.lost = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nspidtrace_lost_events_total",
		Help: "Events the kernel dropped (ring buffer full, or a program that could not run).",
	})
	m.resyncs = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nspidtrace_resyncs_total",
		Help: "Times the live tree was rebuilt from a snapshot after lost events.",
	})
	m.writeErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "nspidtrace_write_errors_total",
		Help: "Writes to the output that failed (each ends the feed).",
	})
	m.processes = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nspidtrace_tree_processes",
		Help: "Live processes in the tree.",
	})
	m.namespaces = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "nspidtrace_tree_pid_namespaces",
		Help: "Pid namespaces in the tree.",
	})
	ringUsed := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "nspidtrace_ring_buffer_used_bytes",
		Help: "Bytes in the kernel's ring buffer not yet read.",
	}, func() float64 { return float64(ring.AvailableBytes()) })
	ringSize := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "nspidtrace_ring_buffer_size_bytes",
		Help: "Size of the kernel's ring buffer.",
	}, func() float64 { return float64(ring.BufferSize()) })
	syncedGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "nspidtrace_tree_synced",
		Help: "1 when the live tree is up to date with the kernel, 0 while it is being built or resynced.",
	}, func() float64 {
		if synced() {
			return 1
		}
		return 0
	})
	m.registry.MustRegister(received, written, m.lost, m.resyncs, m.writeErrors,
		m.processes, m.namespaces, ringUsed, ringSize, syncedGauge)
	return m
}

// Received counts an event the kernel reported.
func (m *Feed) Received(t events.Type) { m.received[t].Inc() }

// Written counts a line written.
func (m *Feed) Written(t events.Type) { m.written[t].Inc() }

// WriteError counts a failed write.
func (m *Feed) WriteError() { m.writeErrors.Inc() }

// Update takes the follower's running totals and the tree's size.
func (m *Feed) Update(lost uint64, resyncs, processes, namespaces int) {
	if lost > m.lostSeen {
		m.lost.Add(float64(lost - m.lostSeen))
		m.lostSeen = lost
	}
	if resyncs > m.resyncsSeen {
		m.resyncs.Add(float64(resyncs - m.resyncsSeen))
		m.resyncsSeen = resyncs
	}
	m.processes.Set(float64(processes))
	m.namespaces.Set(float64(namespaces))
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
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !m.synced() {
			http.Error(w, "not synced: the live tree is being built or resynced", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok: the live tree is synced")
	})
	s := &Server{
		http:     &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		listener: l,
		done:     make(chan error, 1),
	}
	go func() { s.done <- s.http.Serve(l) }()
	return s, nil
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
