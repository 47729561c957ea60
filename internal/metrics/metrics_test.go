package metrics

import (
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

func TestListenAddr(t *testing.T) {
	for in, want := range map[string]string{
		"9464":           "127.0.0.1:9464",
		":9464":          ":9464",
		"0.0.0.0:9464":   "0.0.0.0:9464",
		"[::1]:9464":     "[::1]:9464",
		"localhost:9464": "localhost:9464",
	} {
		if got, err := ListenAddr(in); err != nil || got != want {
			t.Errorf("ListenAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65536", "host", "host:", ":http", ":0", "1.2.3.4:99999"} {
		if got, err := ListenAddr(in); err == nil {
			t.Errorf("ListenAddr(%q) = %q, want an error", in, got)
		}
	}
}

type ring struct{}

func (ring) AvailableBytes() int { return 4096 }
func (ring) BufferSize() int     { return 1 << 24 }

// serve serves m until t ends, and returns how to GET a path of it: the
// status and the body.
func serve(t *testing.T, m *Feed) func(path string) (int, string) {
	t.Helper()
	srv, err := Serve("127.0.0.1:0", m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return func(path string) (int, string) {
		resp, err := http.Get("http://" + srv.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
}

// TestServe scrapes what the feed counted, and the health of its tree.
func TestServe(t *testing.T) {
	var synced atomic.Bool
	m := New(ring{}, synced.Load)
	get := serve(t, m)
	if code, _ := get("/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("healthz before the tree is synced: %d, want 503", code)
	}
	synced.Store(true)
	for range 3 {
		m.Received(events.TypeExec)
		m.Written(events.TypeExec)
	}
	m.Received(events.TypeFork)
	m.Found(events.FindFileless)
	m.WriteError()
	m.Update(5, 1, 120, 3, 0)
	m.Update(7, 1, 110, 2, 4) // running totals: 2 more lost, no more resyncs
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("healthz once synced: %d, want 200", code)
	}
	code, body := get("/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`nspidtrace_events_total{type="exec"} 3`,
		`nspidtrace_events_total{type="fork"} 1`,
		`nspidtrace_lines_written_total{type="exec"} 3`,
		`nspidtrace_lines_written_total{type="fork"} 0`,
		`nspidtrace_findings_total{name="fileless"} 1`,
		`nspidtrace_findings_total{name="masquerade"} 0`,
		"nspidtrace_lost_events_total 7",
		"nspidtrace_resyncs_total 1",
		"nspidtrace_write_errors_total 1",
		"nspidtrace_attribution_errors_total 4",
		"nspidtrace_tree_processes 110",
		"nspidtrace_tree_pid_namespaces 2",
		"nspidtrace_ring_buffer_used_bytes 4096",
		"nspidtrace_ring_buffer_size_bytes 16777216",
		"nspidtrace_tree_synced 1",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	checkExposition(t, body)
}

// sampleLine is a sample of the text exposition format as nspidtrace
// writes it: a name, at most a type or name label, an integer.
var sampleLine = regexp.MustCompile(`^([a-z_]+)(\{(type|name)="[a-z-]+"\})? [0-9]+$`)

// checkExposition checks what Prometheus needs of the text format: every
// sample belongs to the family whose HELP and TYPE lines came just before
// it, and no family appears twice.
func checkExposition(t *testing.T, body string) {
	t.Helper()
	seen := map[string]bool{}
	family := ""
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if name, ok := strings.CutPrefix(line, "# HELP "); ok {
			family, _, _ = strings.Cut(name, " ")
			if seen[family] {
				t.Errorf("family %s appears twice", family)
			}
			seen[family] = true
			i++
			if i == len(lines) || !regexp.MustCompile(`^# TYPE `+family+` (counter|gauge)$`).MatchString(lines[i]) {
				t.Errorf("HELP %s is not followed by its TYPE line", family)
			}
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil || m[1] != family {
			t.Errorf("line %q is not a sample of family %q", line, family)
		}
	}
	if len(seen) != 12 {
		t.Errorf("%d families, want 12", len(seen))
	}
}

// TestServeHoldsFewConnections: clients that connect and never speak (or
// keep a connection idle) hold at most MaxConns of the process's
// descriptors, and a scrape is answered once they go.
func TestServeHoldsFewConnections(t *testing.T) {
	m := New(ring{}, func() bool { return true })
	srv, err := Serve("127.0.0.1:0", m)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	before := openFiles(t)
	var idle []net.Conn
	for range 500 {
		c, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	time.Sleep(200 * time.Millisecond) // let the server accept what it will
	// The test's own 500 ends are descriptors of this process too.
	if held := openFiles(t) - before - len(idle); held > MaxConns+2 {
		t.Errorf("the server holds %d connections' descriptors, want at most %d", held, MaxConns)
	}
	for _, c := range idle {
		c.Close()
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + srv.Addr() + "/healthz")
	if err != nil {
		t.Fatalf("a scrape after the idle clients left: %v", err)
	}
	resp.Body.Close()
}

func openFiles(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// TestServeBeforeAttach: the server answers while the tracer loads: the
// probe gets 503, the scrape gauges of zero; Attach makes them the feed's.
// The end line, the recorder's own, is no event the kernel reports.
func TestServeBeforeAttach(t *testing.T) {
	m := New(nil, nil)
	get := serve(t, m)
	if code, _ := get("/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("healthz before attach: %d, want 503", code)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "nspidtrace_tree_synced 0\n") ||
		strings.Contains(body, `nspidtrace_events_total{type="end"}`) || !strings.Contains(body, `nspidtrace_lines_written_total{type="end"}`) {
		t.Errorf("metrics before attach: %d\n%s", code, body)
	}
	m.Attach(ring{}, func() bool { return true })
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("healthz once attached and synced: %d", code)
	}
}
