// Package source builds the process trees commands answer from: the live
// kernel's (its task iterator, or /proc without the privileges for BPF,
// saying what is missing), and a recording's at an instant; and the
// decoder of the kernel's records, with cgroups and containers named.
package source

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/nspidtrace/nspidtrace/internal/cgroup"
	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/fault"
	"github.com/nspidtrace/nspidtrace/internal/loader"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/procfs"
	"github.com/nspidtrace/nspidtrace/internal/recording"
)

// Live builds the process tree from the kernel's task iterator or,
// without the privileges for BPF, from /proc (saying so on stderr; then the
// tree holds only processes whose namespaces the caller may read).
func Live(log zerolog.Logger, args bool) (tree *pidmap.Tree, fallback bool, err error) {
	dec, err := Decoder(log)
	if err != nil {
		return nil, false, err
	}
	start := time.Now()
	tree, err = pidmap.FromSnapshot(func(handle func([]byte) error) error {
		return loader.ReadSnapshot(args, handle)
	}, dec, procfs.Tasks(procfs.ProcRoot))
	if errors.Is(err, loader.ErrNoPrivileges) {
		log.Warn().Msg("no privileges for BPF: answering from /proc, with only the pid-namespace levels visible from here (run as root for every level)")
		var unread int
		tree, unread, err = procfs.FromProc(procfs.ProcRoot)
		if unread > 0 {
			log.Warn().Int("processes", unread).Msg("some processes are in pid namespaces you may not read: their PIDs are shown at every level, those namespaces as pid:[?] (run as root to name them)")
		}
		return tree, true, err
	}
	if err != nil {
		return nil, false, err
	}
	log.Debug().Dur("took", time.Since(start)).Int("processes", tree.Len()).Msg("snapshot of the kernel's tasks")
	return tree, false, nil
}

// Decoder makes the decoder of the kernel's records: their times made
// Unix time, and their cgroup IDs named with their containers where the
// cgroup hierarchy can be read (else it says so, and names none).
func Decoder(log zerolog.Logger) (events.Decoder, error) {
	boot, err := loader.BootToUnix()
	if err != nil {
		return events.Decoder{}, err
	}
	dec := events.Decoder{BootToUnix: boot}
	if procfs.LSMActive(procfs.ProcRoot) {
		// The label is read when the record is decoded: a process that
		// exec'd and exited at once has none on its line.
		dec.LSM = func(pid uint32, dst []byte) int {
			return procfs.ReadLSM(procfs.ProcRoot+"/"+strconv.FormatUint(uint64(pid), 10), dst)
		}
	}
	r, err := CgroupResolver()
	if err != nil {
		log.Warn().Err(err).Msg("cannot read the cgroup hierarchy: cgroups and containers are not named")
		return dec, nil
	}
	log.Debug().Stringer("hierarchy", r.Hierarchy()).Msg("cgroups")
	if r.Partial() {
		log.Warn().Str("mounted", r.Hierarchy().Root).Msg("the cgroup hierarchy here is a container's view: processes in cgroups outside it are shown without cgroup or container (attribution_error says so); run on the host, or mount the host's hierarchy, to name them")
	}
	dec.Cgroups = r
	return dec, nil
}

// CgroupResolver opens the hierarchy the kernel side reads cgroup IDs
// from, naming containers from the host's runtimes.
func CgroupResolver() (*cgroup.Resolver, error) {
	h, err := loader.Hierarchy()
	if err != nil {
		return nil, err
	}
	return cgroup.NewResolver(h, "/")
}

// Replay reads the recordings from names (--from) up to the instant at
// (--at) into tree, calling each with every event.
func Replay(from []string, at string, log zerolog.Logger, tree *pidmap.Tree, each func(*events.Event, []byte) error) (*pidmap.Replay, error) {
	instant, files, err := OpenTimeline(from, at)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, f := range files {
			f.File.Close()
		}
	}()
	rep, err := pidmap.ReplayFiles(recording.Inputs(files), instant, tree, each)
	if err != nil {
		return nil, ReplayError(err, from, len(files))
	}
	LogReplay(log, rep)
	return rep, nil
}

// OpenTimeline reads at (--at) and opens the files from names (--from),
// oldest first; the caller closes them.
func OpenTimeline(from []string, at string) (pidmap.At, []recording.File, error) {
	instant, err := pidmap.ParseAt(at)
	if err != nil {
		return instant, nil, fault.Usagef("bad --at: %v", err)
	}
	files, err := recording.Open(from)
	return instant, files, err
}

// ReplayError is err, from replaying n files of from (--from), as the
// user acts on it: a usage error for a file that is not a recording, not
// found for an instant outside it.
func ReplayError(err error, from []string, n int) error {
	names := strings.Join(from, ", ")
	var rerr *pidmap.RangeError
	switch {
	case errors.Is(err, pidmap.ErrNotRecording):
		return fault.Usage{Msg: fmt.Sprintf("--from %s: %v", names, err)}
	case errors.As(err, &rerr):
		return fault.NotFound{Err: fmt.Errorf("--at %w", err)}
	case n == 1:
		return fmt.Errorf("%s: %w", names, err)
	}
	return fmt.Errorf("--from %s: %w", names, err)
}

// LogReplay says what a replay noticed about the recording.
func LogReplay(log zerolog.Logger, rep *pidmap.Replay) {
	log.Debug().Int("files", rep.Files).Int("lines", rep.Lines).Msg("replayed")
	if rep.Truncated {
		log.Warn().Int("line", rep.Lines).Msg("the recording ends in the middle of a line (the recorder stopped abruptly): answering from the lines before it")
	}
	if !rep.Snapshot {
		log.Warn().Msg("the file has no snapshot (trace without --snapshot?): processes alive before its first line are unknown")
	}
	if rep.Skipped > 0 {
		log.Warn().Int("lines", rep.Skipped).Msg("skipped lines of event types this version does not know")
	}
}
