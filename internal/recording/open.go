package recording

// --from: one recording, several, or a directory of them (what a rotating
// record writes), read as one timeline, oldest first.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/fault"
	"github.com/nspidtrace/nspidtrace/internal/pidmap"
	"github.com/nspidtrace/nspidtrace/internal/safefile"
)

// File is one file of a timeline, open, with where it starts.
type File struct {
	Name  string
	File  *os.File
	Start int64 // the header's start, or a feed's first time (Unix ns)
}

// maxFirstLine bounds what is read of a file to learn where it starts: a
// header is short, a feed's first line at most a few KiB.
const maxFirstLine = 1 << 20

// Open opens every file --from names, a directory standing for
// the recordings in it, and orders them by their start. A directory's
// files that are not recordings are left out; a directory without any is
// an error, as is a named file that cannot be read. The caller closes them.
func Open(args []string) ([]File, error) {
	fs := &fileSet{seen: map[[2]uint64]bool{}}
	for _, arg := range args {
		if err := fs.addArg(arg); err != nil {
			for _, f := range fs.files {
				f.File.Close()
			}
			return nil, err
		}
	}
	slices.SortStableFunc(fs.files, func(a, b File) int {
		switch {
		case a.Start < b.Start:
			return -1
		case a.Start > b.Start:
			return 1
		}
		return 0
	})
	return fs.files, nil
}

// fileSet gathers the files of --from, each once.
type fileSet struct {
	files []File
	seen  map[[2]uint64]bool // device and inode
}

// addArg adds the file arg names, or the recordings in the directory.
func (fs *fileSet) addArg(arg string) error {
	st, err := os.Stat(arg)
	if err != nil {
		return fmt.Errorf("open the recording: %w", err)
	}
	if !st.IsDir() {
		return fs.add(arg, false)
	}
	before := len(fs.files)
	entries, err := os.ReadDir(arg)
	if err != nil {
		return fmt.Errorf("read the directory %s: %w", arg, err)
	}
	for _, e := range entries {
		// Regular files only: a link could lead anywhere.
		if e.Type()&iofs.ModeType != 0 || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if err := fs.add(filepath.Join(arg, e.Name()), true); err != nil {
			return err
		}
	}
	if len(fs.files) == before {
		return fault.Usagef("--from %s: the directory holds no nspidtrace recording", arg)
	}
	return nil
}

// add opens path, named by --from or found in a directory (inDir), where
// a file that is not a recording is left out.
func (fs *fileSet) add(path string, inDir bool) error {
	f, err := safefile.OpenRegular(path)
	switch {
	case errors.Is(err, safefile.ErrNotRegular) && inDir:
		return nil // swapped since the directory was read
	case errors.Is(err, safefile.ErrNotRegular):
		return fault.Usagef("--from %s: not a regular file (a recording is one)", path)
	case err != nil:
		return fmt.Errorf("open the recording: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("open the recording: %w", err)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		id := [2]uint64{sys.Dev, sys.Ino}
		if fs.seen[id] { // named twice: once is its timeline
			f.Close()
			return nil
		}
		fs.seen[id] = true
	}
	start, ok := firstTime(f)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("read %s: %w", path, err)
	}
	if !ok && inDir {
		f.Close()
		return nil
	}
	fs.files = append(fs.files, File{Name: path, File: f, Start: start})
	return nil
}

// firstTime reads where a file starts: its header's start, or a feed's
// first line's time; ok is false when the first line is neither.
func firstTime(r io.Reader) (start int64, ok bool) {
	br := bufio.NewReaderSize(io.LimitReader(r, maxFirstLine), 64<<10)
	line, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		var long []byte
		long = append(long, line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = br.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	var ev events.Event
	switch perr := events.Parse(line, &ev); {
	case errors.Is(perr, events.ErrHeader):
		h, err := events.ParseHeader(line)
		return h.Start, err == nil && h.Format == events.RecordFormat
	case perr == nil:
		return ev.Time, true
	}
	return 0, false
}

// Inputs are the files as the replay reads them.
func Inputs(files []File) []pidmap.Input {
	in := make([]pidmap.Input, len(files))
	for i, f := range files {
		in[i] = pidmap.Input{Name: f.Name, R: f.File}
	}
	return in
}
