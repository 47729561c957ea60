package testenv

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ProgramCost is what the kernel's BPF run-time statistics counted for one
// program: the time it ran, and how many times.
type ProgramCost struct {
	Name    string
	Runtime time.Duration
	Runs    uint64
}

// EnableBPFStats turns the kernel's BPF run-time statistics on until the
// test ends (they cost every program a clock read per run, so they are off
// by default).
func EnableBPFStats(t testing.TB) {
	t.Helper()
	c, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		t.Fatalf("enable BPF statistics: %v", err)
	}
	t.Cleanup(func() { c.Close() })
}

// HeldPrograms returns the IDs of the BPF programs process pid holds, each
// once: those its descriptors (BPF links among them) name in fdinfo.
func HeldPrograms(t testing.TB, pid int) []ebpf.ProgramID {
	t.Helper()
	infos, err := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/fdinfo/*")
	if err != nil {
		t.Fatal(err)
	}
	var ids []ebpf.ProgramID
	for _, path := range infos {
		if id, ok := fdinfoField(path, "prog_id"); ok && !slices.Contains(ids, ebpf.ProgramID(id)) {
			ids = append(ids, ebpf.ProgramID(id))
		}
	}
	return ids
}

// BPFCosts returns the statistics of the programs process pid has
// attached (those its BPF links hold), by program ID.
func BPFCosts(t testing.TB, pid int) map[uint32]ProgramCost {
	t.Helper()
	costs := map[uint32]ProgramCost{}
	for _, id := range HeldPrograms(t, pid) {
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // detached since
		}
		info, err := prog.Info()
		if err != nil {
			t.Fatalf("program %d: %v", id, err)
		}
		// Our own descriptor's fdinfo has the statistics, on every kernel
		// that keeps them (5.1+).
		own := "/proc/self/fdinfo/" + strconv.Itoa(prog.FD())
		ns, _ := fdinfoField(own, "run_time_ns")
		runs, _ := fdinfoField(own, "run_cnt")
		prog.Close()
		costs[uint32(id)] = ProgramCost{Name: info.Name, Runtime: time.Duration(ns), Runs: runs}
	}
	if len(costs) == 0 {
		t.Fatalf("process %d holds no BPF program", pid)
	}
	return costs
}

// fdinfoField reads the numeric field name of an fdinfo file.
func fdinfoField(path, name string) (uint64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}
