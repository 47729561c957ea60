package pidmap

import (
	"fmt"

	"github.com/nspidtrace/nspidtrace/internal/events"
)

// FromSnapshot builds a tree of the machine's processes as one snapshot
// tells them, for a one-shot answer: read hands each of the kernel's
// records to its argument (loader.ReadSnapshot), dec decodes them, and
// the tree is readied for about tasks processes (Reserve), tasks being
// the kernel's count of tasks (procfs.Tasks), which bounds them. It keeps
// no exited processes. An error from read is returned as it is.
func FromSnapshot(read func(handle func(raw []byte) error) error, dec events.Decoder, tasks int) (*Tree, error) {
	// Past maxReserved, a host runs threads more likely than processes:
	// the tree grows as it must.
	const maxReserved = 1 << 15
	tree := NewTree(0)
	tree.Reserve(min(tasks, maxReserved))
	var ev events.Event
	err := read(func(raw []byte) error {
		if err := dec.Decode(raw, &ev); err != nil {
			return fmt.Errorf("decode a snapshot record: %w", err)
		}
		tree.Apply(&ev)
		return nil
	})
	if err != nil {
		return nil, err
	}
	tree.Relink()
	return tree, nil
}
