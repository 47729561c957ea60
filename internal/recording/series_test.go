package recording

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1048576": 1 << 20, "1M": 1 << 20, "64MiB": 64 << 20, "2g": 2 << 30, "1GB": 1 << 30, "512k": 512 << 10, "1T": 1 << 40} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "-1M", "1.5G", "1X", "99999999999T", "ten"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

// seriesHeader writes a recording's header into f and closes it.
func seriesHeader(t *testing.T, f *os.File, start time.Time) {
	t.Helper()
	h := events.Header{Format: events.RecordFormat, Version: 1, Hostname: "h", Start: start.UnixNano()}
	if _, err := f.Write(events.AppendHeader(nil, &h)); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// TestSeriesPrune removes only the series' oldest files beyond --keep,
// never the current one nor a file that only resembles the series'.
func TestSeriesPrune(t *testing.T) {
	dir := t.TempDir()
	s, err := NewSeries(filepath.Join(dir, "node.ndjson"), 1<<20, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 23, 10, 3, 0, 0, time.UTC)
	var made []string
	for i := range 4 {
		f, name, err := s.Create(t0.Add(time.Duration(i) * time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		seriesHeader(t, f, t0)
		made = append(made, name)
	}
	// The same instant again gets a name of its own rather than replace.
	f, again, err := s.Create(t0)
	if err != nil || again == made[0] || !strings.HasPrefix(filepath.Base(again), "node-20261123T100300.000Z-") {
		t.Fatalf("create at a taken instant: %s, %v", again, err)
	}
	seriesHeader(t, f, t0)
	// A file named as versions before the random part named them counts.
	older := filepath.Join(dir, "node-20261123T090000.000Z.ndjson")
	f, _ = os.OpenFile(older, os.O_CREATE|os.O_WRONLY, 0o600)
	seriesHeader(t, f, t0)
	others := []string{"node-notatime.ndjson", "node.ndjson", "other-20261123T100300.000Z.ndjson", "notes.txt",
		"node-20261123T100300.000Z-zzzzzz.ndjson",
		"node-20200101T000000.000Z.ndjson", // named as the series, but no recording
	}
	for _, name := range others {
		os.WriteFile(filepath.Join(dir, name), nil, 0o600)
	}
	removed, err := s.Prune(made[3])
	if err != nil {
		t.Fatal(err)
	}
	oldest := []string{older, made[0], again, made[1]}
	slices.Sort(oldest[1:3]) // one instant: in the order of their random parts
	if !slices.Equal(removed, oldest) {
		t.Errorf("removed %q, want %q", removed, oldest)
	}
	left, _ := s.Files()
	if !slices.Equal(left, made[2:]) {
		t.Errorf("left %q, want %q", left, made[2:])
	}
	for _, name := range others {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestSeriesPruneOwnsOnlyItsFiles: another user who can write to the
// directory (a sticky one, as /tmp) plants files named and shaped as the
// series', dated ahead: --keep neither counts nor removes them, so it
// never removes the caller's recordings for them.
func TestSeriesPruneOwnsOnlyItsFiles(t *testing.T) {
	testenv.Require(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	s, err := NewSeries(dir, 0, time.Second, 3)
	if err != nil {
		t.Fatal(err)
	}
	var planted []string
	for i := range 3 {
		f, name, err := s.Create(time.Date(2099, 1, 1, 0, 0, i, 0, time.UTC))
		if err != nil {
			t.Fatal(err)
		}
		seriesHeader(t, f, time.Now())
		if err := os.Chown(name, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		planted = append(planted, name)
	}
	var mine []string
	now := time.Now()
	for i := range 5 {
		f, name, err := s.Create(now.Add(time.Duration(i) * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		seriesHeader(t, f, now)
		mine = append(mine, name)
		if _, err := s.Prune(name); err != nil {
			t.Fatal(err)
		}
	}
	left, _ := s.Files()
	if !slices.Equal(left, mine[2:]) {
		t.Errorf("left %q, want the newest 3 of the caller's %q", left, mine)
	}
	for _, name := range planted {
		if _, err := os.Stat(name); err != nil {
			t.Errorf("another user's %s: %v", name, err)
		}
	}
}

// TestSeriesNamesCannotBeTakenAhead: another user who can write to the
// directory creates every name the series would take in the next two
// seconds, as names without a random part were: the next file is made
// all the same.
func TestSeriesNamesCannotBeTakenAhead(t *testing.T) {
	dir := t.TempDir()
	s, err := NewSeries(dir, 0, time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for ms := range 2000 {
		at := now.Add(time.Duration(ms) * time.Millisecond).UTC().Format(seriesTime)
		os.WriteFile(filepath.Join(dir, "nspidtrace-"+at+".ndjson"), nil, 0o600)
	}
	f, name, err := s.Create(now)
	if err != nil {
		t.Fatalf("create with the next 2 s of names taken: %v", err)
	}
	f.Close()
	if _, err := os.Stat(name); err != nil {
		t.Error(err)
	}
}
