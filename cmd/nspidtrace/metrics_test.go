package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// freePort returns a loopback port nobody listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// scrape returns the value of each sample of /metrics, by its name and
// labels as printed.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	samples := map[string]float64{}
	for _, m := range regexp.MustCompile(`(?m)^(nspidtrace_\S+) (\S+)$`).FindAllStringSubmatch(string(body), -1) {
		samples[m[1]], _ = strconv.ParseFloat(m[2], 64)
	}
	return samples
}

// TestMetricsEqualTheFeed runs a command of a name of its own k times
// under `trace --comm NAME --metrics PORT`: the written counters equal the
// feed's lines by type, the kernel's counters at least that, and the
// health endpoint says the tree is synced.
func TestMetricsEqualTheFeed(t *testing.T) {
	testenv.Require(t)
	comm := fmt.Sprintf("nsptm%d", os.Getpid()%100000)
	prog := filepath.Join(t.TempDir(), comm)
	if err := exec.Command("cp", "/bin/true", prog).Run(); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	s := startTrace(t, "--comm", comm, "--metrics", port, "--host", "node-7")
	base := "http://127.0.0.1:" + port
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz once tracing: %d, want 200", resp.StatusCode)
	}
	const k = 40
	for range k {
		if err := exec.Command(prog).Run(); err != nil {
			t.Fatal(err)
		}
	}
	var m map[string]float64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		m = scrape(t, base+"/metrics")
		if m[`nspidtrace_lines_written_total{type="exit"}`] >= k || time.Now().After(deadline) {
			break
		}
	}
	lines := s.stop(t, syscall.SIGTERM)
	count := map[string]float64{}
	for _, l := range lines {
		count[l.Type]++
		if l.Host != "node-7" {
			t.Errorf("a line without --host's name: %+v", l)
		}
	}
	if count["exec"] != k || count["exit"] != k {
		t.Errorf("the feed has %v exec and %v exit lines, want %d each", count["exec"], count["exit"], k)
	}
	for _, typ := range []string{"fork", "exec", "exit", "setns", "unshare", "rename", "lost"} {
		written := m[`nspidtrace_lines_written_total{type="`+typ+`"}`]
		if written != count[typ] {
			t.Errorf("metrics say %v %s lines written, the feed has %v", written, typ, count[typ])
		}
		if received := m[`nspidtrace_events_total{type="`+typ+`"}`]; received < written {
			t.Errorf("metrics say %v %s events received but %v written", received, typ, written)
		}
	}
	if m["nspidtrace_tree_processes"] < 10 || m["nspidtrace_tree_synced"] != 1 || m["nspidtrace_ring_buffer_size_bytes"] == 0 {
		t.Errorf("tree and ring metrics: %v", m)
	}
	if m["nspidtrace_lost_events_total"] != 0 || m["nspidtrace_write_errors_total"] != 0 {
		t.Errorf("lost or write errors: %v", m)
	}
}
