package cgroup_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nspidtrace/nspidtrace/internal/cgroup"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/loader"
	"github.com/nspidtrace/nspidtrace/internal/testenv"
	"github.com/rs/zerolog"
)

// A process moved into a cgroup shaped like a Docker container's: the
// kernel's ID for it, resolved, is that cgroup and that container, as
// /proc/PID/cgroup says.
func TestKernelIDsResolve(t *testing.T) {
	testenv.Require(t)
	h, err := loader.Hierarchy()
	if err != nil {
		t.Fatal(err)
	}
	id := strings.Repeat("5eed", 16)
	rel := fmt.Sprintf("/nspidtrace-test-%d/docker-%s.scope", os.Getpid(), id)
	dir := filepath.Join(h.Mount, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sleep.Process.Kill()
		sleep.Wait()
		// The kernel lets a cgroup go only once its last task is reaped.
		for i := 0; i < 50 && os.Remove(dir) != nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
		os.Remove(filepath.Dir(dir))
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(sleep.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	procCgroup, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", sleep.Process.Pid))
	if err != nil || !strings.Contains(string(procCgroup), rel) {
		t.Fatalf("/proc says %q (%v), want %s", procCgroup, err, rel)
	}

	for _, walk := range []bool{false, true} {
		r, err := cgroup.NewResolver(h, "/")
		if err != nil {
			t.Fatal(err)
		}
		if walk {
			cgroup.ForceWalk(r)
		}
		boot, err := loader.BootToUnix()
		if err != nil {
			t.Fatal(err)
		}
		dec := events.Decoder{BootToUnix: boot, Cgroups: r}
		var got, self *events.Cgroup
		var ev events.Event
		err = loader.ReadSnapshot(true, func(raw []byte) error {
			if err := dec.Decode(raw, &ev); err != nil {
				return err
			}
			switch int(ev.PID) {
			case sleep.Process.Pid:
				got = ev.Cgroup
			case os.Getpid():
				self = ev.Cgroup
			}
			return nil
		})
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got == nil || got.Path != rel || got.Container == nil || got.Container.ID != id || got.Container.Runtime != "docker" {
			t.Fatalf("walk=%v: the process's cgroup resolved to %+v, want %s in container %.12s", walk, got, rel, id)
		}
		if self == nil || self.Path == "" || self.Path == rel || self.Container != nil && self.Container.ID == id {
			t.Errorf("walk=%v: this test's own cgroup resolved to %+v", walk, self)
		}
	}
}

// TestOutOfDescriptorsIsUnresolved: a cgroup that cannot be named because
// the process is out of descriptors is marked so, counted and not kept:
// once descriptors are back, the next event names it.
func TestOutOfDescriptorsIsUnresolved(t *testing.T) {
	testenv.Require(t)
	h, err := loader.Hierarchy()
	if err != nil {
		t.Fatal(err)
	}
	rel := fmt.Sprintf("/nspidtrace-test-fd-%d", os.Getpid())
	dir := filepath.Join(h.Mount, rel)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(dir)
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	r, err := cgroup.NewResolver(h, "/")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	var limit syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &limit)
	starved := limit
	starved.Cur = 256
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &starved); err != nil {
		t.Fatal(err)
	}
	// Every descriptor in use: the next open fails with EMFILE.
	var filler []int
	for {
		fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			break
		}
		filler = append(filler, fd)
	}
	cg := r.Cgroup(st.Ino)
	for _, fd := range filler {
		syscall.Close(fd)
	}
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &limit)
	if cg.Unresolved == "" || !strings.Contains(cg.Unresolved, "too many open files") || r.Unresolved() != 1 {
		t.Fatalf("out of descriptors: %+v, %d counted; want it unresolved, counted once", cg, r.Unresolved())
	}
	if again := r.Cgroup(st.Ino); again.Unresolved != "" || again.Path != rel {
		t.Errorf("with descriptors back: %+v, want %s", again, rel)
	}
}

// TestGoneCgroupIsNamedWhereItWasMade: the records of a process whose
// cgroup is gone by the time they are read (a short container on a loaded
// machine, whose reader falls behind) name it all the same: the kernel
// side tells the path of each cgroup made.
func TestGoneCgroupIsNamedWhereItWasMade(t *testing.T) {
	testenv.Require(t)
	h, err := loader.Hierarchy()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := loader.Open(loader.Options{Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()

	id := strings.Repeat("90e", 21) + "0"
	rel := fmt.Sprintf("/nspidtrace-test-gone-%d/docker-%s.scope", os.Getpid(), id)
	dir := filepath.Join(h.Mount, rel)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(filepath.Dir(dir))
	sleep := exec.Command("sleep", "0.2")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(sleep.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	sleep.Wait()
	for i := 0; os.Remove(dir) != nil; i++ { // gone once its last task is reaped
		if i == 50 {
			t.Fatalf("rmdir %s: the cgroup stays", dir)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Only now are the records read.
	r, err := cgroup.NewResolver(h, "/")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	boot, err := loader.BootToUnix()
	if err != nil {
		t.Fatal(err)
	}
	dec := events.Decoder{BootToUnix: boot, Cgroups: r}
	var got *events.Cgroup
	var ev events.Event
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run drains what the ring holds, and returns
	err = tr.Run(ctx, func(raw []byte) error {
		if dec.Learn(raw) || dec.Decode(raw, &ev) != nil {
			return nil
		}
		if int(ev.PID) == sleep.Process.Pid && ev.Type == events.TypeExit {
			got = ev.Cgroup
		}
		return nil
	}, func() error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if got == nil || got.Path != rel || got.Container == nil || got.Container.ID != id {
		t.Fatalf("the exit of a process whose cgroup is gone: cgroup %+v, want %s in container %.12s", got, rel, id)
	}
}
