// Package hugepage makes large slices whose memory the kernel may back
// with transparent huge pages.
//
// A one-shot answer about 10,000 processes fills a few megabytes of fresh
// memory, and each 4 KiB page of it costs a fault when first written: about
// 25 µs on a VM without nested paging, where 550 pages of process records
// took 12–16 ms. Where the THP setting is "madvise" (Ubuntu's, and this
// project's test machines') the Go runtime never asks for huge pages for
// its heap; asking for the whole 2 MiB pages of one large slice turns
// those faults into one per 2 MiB. Where it is "always" this changes
// nothing, and where it is "never", nothing either.
//
// Faulting the pages in ahead (MADV_POPULATE_WRITE) saves only the trips
// to user space, and on such a VM the cost is not there but in backing
// fresh memory 4 KiB at a time: 10,000 records (2.2 MB) written in a fresh
// process took 9–22 ms populated ahead, 12–16 ms faulted page by page,
// 1.4–5.3 ms in huge pages.
package hugepage

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Size is the huge page size of x86-64 and of arm64 with 4 KiB pages.
// Elsewhere the advice covers fewer whole huge pages, or none: it costs
// nothing then.
const Size = 2 << 20

// Slice returns a slice of n zero Ts. When it spans at least one whole
// huge page, it is placed to start just below a huge page boundary, its
// capacity reaches to the end of the huge page its last element ends in,
// and the kernel is advised (MADV_HUGEPAGE) to back all but its first
// element's page with huge pages; that is a hint, and its refusal (no THP
// support, THP "never") is ignored. The allocation then holds up to Size
// bytes before the slice that are never touched.
func Slice[T any](n int) []T {
	size := unsafe.Sizeof(*new(T))
	if n <= 0 || size == 0 || size > Size || uintptr(n)*size < Size {
		return make([]T, max(n, 0))
	}
	// Room to place it, and for the rest of its last huge page.
	spare := 2*Size/int(size) + 2
	s := make([]T, n+spare)
	base := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	from := (base + Size - 1) &^ (Size - 1)
	skip := int((from - base) / size) // s[skip] starts at from, or ends past it
	end := (base + uintptr(skip+n)*size + Size - 1) &^ (Size - 1)
	s = s[skip : skip+n : int((end-base)/size)]
	if end > from {
		// The range is the allocation's own memory: the advice changes
		// how it is backed, never what it holds.
		unix.Syscall(unix.SYS_MADVISE, from, end-from, unix.MADV_HUGEPAGE)
		runtime.KeepAlive(s)
	}
	return s
}
