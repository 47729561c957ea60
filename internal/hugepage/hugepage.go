// Package hugepage makes large slices whose memory the kernel may back
// with transparent huge pages.
//
// A one-shot answer about 10,000 processes fills a few megabytes of fresh
// memory, and each 4 KiB page of it costs a fault when first written: about
// 25 µs on a VM without nested paging, where 550 pages of process records
// took 12–16 ms. On hosts whose THP setting is "madvise" (Ubuntu's, and the
// upstream default) the Go runtime never asks for huge pages for its heap;
// asking for the whole 2 MiB pages of one large slice turns those faults
// into one per 2 MiB.
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
// huge page, it is placed to start just below a huge page boundary and the
// kernel is advised (MADV_HUGEPAGE) to back its whole huge pages with huge
// pages; that is a hint, and its refusal (no THP support, THP "never") is
// ignored. The slice then holds up to Size bytes more address space than
// it uses, which is never touched.
func Slice[T any](n int) []T {
	size := unsafe.Sizeof(*new(T))
	if n <= 0 || size == 0 || size > Size || uintptr(n)*size < Size {
		return make([]T, max(n, 0))
	}
	s := make([]T, n+Size/int(size)+1)
	base := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	boundary := (base + Size - 1) &^ (Size - 1)
	skip := int((boundary - base) / size) // the first element used ends past the boundary
	s = s[skip : skip+n : skip+n]

	start := uintptr(unsafe.Pointer(unsafe.SliceData(s)))
	from := (start + Size - 1) &^ (Size - 1)
	to := (start + uintptr(n)*size) &^ (Size - 1)
	if to > from {
		// The range is s's own memory: the advice changes how it is
		// backed, never what it holds.
		unix.Syscall(unix.SYS_MADVISE, from, to-from, unix.MADV_HUGEPAGE)
		runtime.KeepAlive(s)
	}
	return s
}
