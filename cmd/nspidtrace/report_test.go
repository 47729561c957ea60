package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/report"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

// hostileComm is a comm no page may run.
const hostileComm = `</script><img src=x onerror=alert(1)>`

// writeBigRecording writes a recording of n processes, ten events each
// (fork, exec, renames, credential changes, signals, exit), the last alive
// at the end with a hostile comm and argv.
func writeBigRecording(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "big.ndjson")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	h := events.Header{Format: events.RecordFormat, Version: 1, Hostname: "big", Start: testenv.T0}
	w.Write(events.AppendHeader(nil, &h))
	ev := testenv.HostProc(1, 0, nil)
	ev.StartBoot = 1
	w.Write(events.AppendJSON(nil, ev))
	step := int64(600e9) / int64(n) // ten minutes
	var line []byte
	for i := range n {
		pid := uint32(1000 + i)
		at := testenv.T0 + int64(i)*step
		ev.Type, ev.Time, ev.PID, ev.TID, ev.PPID, ev.StartBoot, ev.ParentStartBoot = events.TypeFork, at, pid, pid, 1, uint64(at), 1
		ev.Levels, ev.NSPid[0], ev.NSPPid[0] = 1, pid, 1
		if i%3 == 0 { // a third in a container's pid namespace
			ev.Levels, ev.NSPid[1], ev.PidNS[1], ev.NSPPid[1] = 2, uint32(2+i), 4026532300, 0
		}
		ev.SetComm("worker")
		for k, typ := range []events.Type{events.TypeFork, events.TypeExec, events.TypeRename, events.TypeCred, events.TypeRename, events.TypeSignal, events.TypeCred, events.TypeRename, events.TypeSignal, events.TypeExit} {
			ev.Type, ev.Time = typ, at+int64(k)*step/2
			if typ == events.TypeExec {
				ev.FilenameLen = uint16(copy(ev.Filename[:], "/usr/bin/worker"))
				ev.SetArgs([]string{"worker", strconv.Itoa(i)})
				if i == n-1 {
					ev.SetComm(hostileComm)
					ev.SetArgs([]string{hostileComm, "<b>bold</b>"})
				}
			}
			if typ == events.TypeSignal {
				ev.Sig.Number, ev.Sig.Sender.PID, ev.Sig.Sender.StartBoot = 15, 1, 1
			}
			if typ == events.TypeExit && i == n-1 {
				break // the last one runs at the end
			}
			line = events.AppendJSON(line[:0], ev)
			w.Write(line)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return path
}

// chromium returns the DOM of page after its scripts ran, in headless
// Chromium (make deps installs it), and leaves a screenshot of it in
// test-output/NAME.png, for a person to look at.
func chromium(t *testing.T, page string) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium is not installed (make deps installs it)")
		}
		t.Skip("chromium is not installed (make deps installs it)")
	}
	// As root Chromium needs --no-sandbox; its profile goes to a temporary
	// directory, so runs beside each other do not share one.
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+t.TempDir(),
		"--window-size=1400,1000", "--virtual-time-budget=10000", "--dump-dom", "file://"+page)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	shot, _ := filepath.Abs(filepath.Join("..", "..", "test-output", t.Name()+".png"))
	os.MkdirAll(filepath.Dir(shot), 0o755)
	cmd = exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--user-data-dir="+t.TempDir(),
		"--window-size=1400,1000", "--virtual-time-budget=10000", "--screenshot="+shot, "file://"+page)
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium --screenshot: %v", err)
	}
	t.Logf("a screenshot of %s: %s", filepath.Base(page), shot)
	return string(out)
}

// TestReportOfABigRecording: a report of 10,000 processes and 100,000
// events paints within 2 s in Chromium; the processes' strings are text,
// never markup; the page fetches nothing.
func TestReportOfABigRecording(t *testing.T) {
	rec := writeBigRecording(t, 10000)
	page := filepath.Join(t.TempDir(), "report.html")
	start := time.Now()
	if out, stderr, code := runBinary(t, "report", "--from", rec, "-o", page); code != exitOK {
		t.Fatalf("report: exit %d: %s %s", code, out, stderr)
	}
	t.Logf("report of 10,000 processes written in %v", time.Since(start))
	if st, err := os.Stat(page); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the page: %v, mode %v; want 0600", err, st.Mode())
	}
	html, _ := os.ReadFile(page)
	if strings.Contains(string(html), hostileComm) {
		t.Error("the page holds the hostile comm raw")
	}
	if !strings.Contains(string(html), `content="`+report.CSP()+`"`) || !strings.Contains(report.CSP(), "default-src 'none'") {
		t.Error("the page lacks its Content-Security-Policy")
	}
	if _, _, code := runBinary(t, "report", "--from", rec, "-o", page); code != exitUsage {
		t.Errorf("report over an existing file: exit %d, want %d", code, exitUsage)
	}

	dom := chromium(t, page)
	m := regexp.MustCompile(`data-first-paint="(\d+)"`).FindStringSubmatch(dom)
	if m == nil {
		if keep := os.Getenv("NSPIDTRACE_KEEP_REPORT"); keep != "" {
			os.WriteFile(keep, html, 0o600)
		}
		t.Fatalf("the page did not paint: %d bytes of DOM", len(dom))
	}
	paint, _ := strconv.Atoi(m[1])
	t.Logf("first paint: %d ms", paint)
	if paint > 2000 {
		t.Errorf("first paint after %d ms, want at most 2,000", paint)
	}
	if strings.Contains(dom, "<img") || strings.Contains(dom, "<b>") {
		t.Error("a process's string became markup")
	}
	// Its comm as the kernel keeps it: the first 15 bytes.
	if !strings.Contains(dom, "&lt;/script&gt;&lt;img s("+fmt.Sprint(1000+9999)+"/") {
		tree := regexp.MustCompile(`(?s)<pre id="tree">(.{0,600})`).FindStringSubmatch(dom)
		t.Errorf("the tree at the end does not show the hostile comm as text: %q", tree)
	}
	if !strings.Contains(dom, "10001 processes, 2 lanes") || !strings.Contains(dom, `data-bars="10001"`) { // and the init
		t.Error("the page does not draw a bar for each of 10,001 processes in 2 lanes")
	}
}
