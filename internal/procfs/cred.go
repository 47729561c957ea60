package procfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/nspidtrace/nspidtrace/internal/events"
	"github.com/nspidtrace/nspidtrace/internal/users"
)

// capSetOf returns the events.Cap* index of a status key such as "CapEff".
func capSetOf(key []byte) int {
	switch string(key) {
	case "CapEff":
		return events.CapEff
	case "CapPrm":
		return events.CapPrm
	case "CapInh":
		return events.CapInh
	case "CapBnd":
		return events.CapBnd
	}
	return events.CapAmb
}

// readUserLevels fills c's user-namespace levels from process directory
// dir: the chain of user namespaces (NS_GET_PARENT, up to the reader's),
// and the effective IDs at the host's level (the kernel's own) and at the
// process's own (its uid_map and gid_map, whose outside IDs the host reads
// as kernel IDs). Levels in between have no file that maps them: their IDs
// are left events.UnreadID. A reader below the host's user namespace
// leaves the levels empty.
func readUserLevels(dir string, c *events.Cred) error {
	chain, err := nsChain(filepath.Join(dir, "ns", "user"), events.MaxUserLevels)
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, ErrNoProcess) {
			return nil
		}
		return err
	}
	if len(chain) == 0 || chain[len(chain)-1] != initUserNS {
		return nil // not read from the host's user namespace
	}
	c.UserLevels = len(chain)
	for i := range chain {
		c.UserNS[i] = chain[len(chain)-1-i]
		c.NSUID[i], c.NSGID[i] = events.UnreadID, events.UnreadID
	}
	c.NSUID[0], c.NSGID[0] = c.EUID, c.EGID
	if own := c.UserLevels - 1; own > 0 {
		c.NSUID[own] = mapUp(filepath.Join(dir, "uid_map"), c.EUID)
		c.NSGID[own] = mapUp(filepath.Join(dir, "gid_map"), c.EGID)
	}
	return nil
}

// initUserNS is the inode of the host's user namespace (PROC_USER_INIT_INO).
const initUserNS = 0xeffffffd

// mapUp maps kernel ID id through the map file at path, as the kernel's
// from_kuid() does: events.UnmappedID when no range holds it,
// events.UnreadID when the file cannot be read.
func mapUp(path string, id uint32) uint32 {
	var buf [512]byte
	data, err := readSmall(path, buf[:])
	if err != nil {
		return events.UnreadID
	}
	ranges, err := users.ParseIDMap(data)
	if err != nil {
		return events.UnreadID
	}
	inside, err := users.Inside(ranges, id)
	if err != nil {
		return events.UnmappedID
	}
	return inside
}

// ReadLSM copies the security module's label of the process at dir
// (attr/current) into dst, without its newline, and returns its length: 0
// when no module sets labels (the file then fails with EINVAL) or the
// process is gone.
func ReadLSM(dir string, dst []byte) int {
	var buf [events.MaxLSM + 1]byte
	data, err := readSmall(filepath.Join(dir, "attr", "current"), buf[:])
	if err != nil {
		return 0
	}
	data = bytes.TrimRight(data, "\n\x00")
	return copy(dst, data)
}

// LSMActive reports whether a security module labels processes here: it
// decides whether a trace reads each exec'd process's label.
func LSMActive(root string) bool {
	var buf [events.MaxLSM + 1]byte
	_, err := readSmall(filepath.Join(root, "self", "attr", "current"), buf[:])
	return err == nil || !(errors.Is(err, unix.EINVAL) || errors.Is(err, os.ErrNotExist))
}
