// Package users names user IDs as /etc/passwd files do: the host's, and a
// container's own, read inside the container's root. A container's passwd
// is its users' to write: it is read bounded and without following links
// out of the root, and parsed defensively; names are for terminals only
// after termsafe.
package users

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/nspidtrace/nspidtrace/internal/safefile"
)

// MaxPasswd bounds a passwd file: larger ones are not read at all.
const MaxPasswd = 1 << 20

// maxName bounds a name: useradd allows 32 bytes; a longer one is cut.
const maxName = 64

// Names maps user IDs to names.
type Names map[uint32]string

// Parse reads passwd(5) lines, "name:password:uid:gid:gecos:home:shell".
// The first name of an ID counts, as getpwuid(3) has it; lines that are
// not of that form are skipped.
func Parse(data []byte) Names {
	names := Names{}
	for line := range bytes.Lines(data) {
		fields := bytes.SplitN(bytes.TrimRight(line, "\r\n"), []byte(":"), 4)
		if len(fields) < 4 || len(fields[0]) == 0 || fields[0][0] == '#' {
			continue
		}
		id, err := strconv.ParseUint(string(fields[2]), 10, 32)
		if err != nil {
			continue
		}
		if _, seen := names[uint32(id)]; !seen {
			names[uint32(id)] = string(fields[0][:min(len(fields[0]), maxName)])
		}
	}
	return names
}

// Read reads root's /etc/passwd, resolved inside root: "/" for the host's,
// "/proc/PID/root" for what process PID sees as "/".
func Read(root string) (Names, error) {
	data, err := safefile.ReadInRoot(root, "etc/passwd", MaxPasswd)
	if err != nil {
		return nil, err
	}
	return Parse(data), nil
}

// IDRange is one line of /proc/PID/uid_map: count IDs from Inside in the
// process's user namespace are Outside onwards in the reader's.
type IDRange struct{ Inside, Outside, Count uint32 }

// ReadUIDMap reads process pid's uid_map under procfs root. Read from the
// host's user namespace, Outside is a host ID, at any nesting.
func ReadUIDMap(root string, pid int) ([]IDRange, error) {
	data, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "uid_map"))
	if err != nil {
		return nil, err
	}
	return ParseIDMap(data)
}

// ParseIDMap reads the lines of a uid_map or gid_map file.
func ParseIDMap(data []byte) ([]IDRange, error) {
	var ranges []IDRange
	for line := range bytes.Lines(data) {
		f := bytes.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("ID map line %q", line)
		}
		var r [3]uint32
		for i := range r {
			n, err := strconv.ParseUint(string(f[i]), 10, 32)
			if err != nil {
				return nil, fmt.Errorf("ID map line %q: %w", line, err)
			}
			r[i] = uint32(n)
		}
		ranges = append(ranges, IDRange{r[0], r[1], r[2]})
	}
	return ranges, nil
}

// ErrUnmapped means an ID has no mapping in a user namespace: the kernel
// shows it there as the overflow ID (65534, nobody).
var ErrUnmapped = errors.New("not mapped")

// Inside returns the ID that host ID outside is inside the namespace.
func Inside(ranges []IDRange, outside uint32) (uint32, error) {
	for _, r := range ranges {
		if outside >= r.Outside && uint64(outside) < uint64(r.Outside)+uint64(r.Count) {
			return r.Inside + (outside - r.Outside), nil
		}
	}
	return 0, ErrUnmapped
}
