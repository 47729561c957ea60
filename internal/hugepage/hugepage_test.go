package hugepage

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

type record [224]byte

func TestSliceSmallIsPlain(t *testing.T) {
	s := Slice[record](100)
	if len(s) != 100 || cap(s) != 100 {
		t.Fatalf("len %d cap %d, want 100", len(s), cap(s))
	}
	if got := Slice[record](0); len(got) != 0 {
		t.Errorf("Slice(0) has %d", len(got))
	}
	if got := Slice[record](-1); len(got) != 0 {
		t.Errorf("Slice(-1) has %d", len(got))
	}
}

// A slice of 20,000 records (4.4 MiB) holds only zeros, is its own to
// write, and the kernel was asked to back its whole huge pages with huge
// pages: the mapping around them says so (VmFlags hg).
func TestSliceAdvisesWholeHugePages(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/mm/transparent_hugepage/enabled"); err != nil {
		t.Skip("this kernel has no transparent huge pages:", err)
	}
	const n = 20000
	s := Slice[record](n)
	if len(s) != n || cap(s) < n {
		t.Fatalf("len %d cap %d, want %d", len(s), cap(s), n)
	}
	// The capacity reaches to the end of the last huge page.
	end := uintptr(unsafe.Pointer(&s[:cap(s)][cap(s)-1])) + unsafe.Sizeof(record{})
	if rest := (Size - end%Size) % Size; rest >= unsafe.Sizeof(record{}) {
		t.Errorf("the capacity ends %d bytes below a huge page boundary: room for another record", rest)
	}
	s = s[:cap(s)]
	for i := range s {
		if s[i] != (record{}) {
			t.Fatalf("record %d is not zero", i)
		}
		s[i][0], s[i][len(s[i])-1] = 1, 1
	}
	start := uintptr(unsafe.Pointer(&s[0]))
	boundary := (start + Size - 1) &^ (Size - 1)
	if boundary-start >= unsafe.Sizeof(record{}) {
		t.Errorf("the slice starts %d bytes below a huge page: more than its first record is outside", boundary-start)
	}
	flags := vmFlags(t, boundary)
	if !strings.Contains(" "+flags+" ", " hg ") {
		t.Errorf("the mapping at %#x has VmFlags %q, without hg", boundary, flags)
	}
}

// vmFlags returns the VmFlags of the mapping that holds addr.
func vmFlags(t *testing.T, addr uintptr) string {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if lo, hi, ok := strings.Cut(strings.Fields(line)[0], "-"); ok && !strings.HasSuffix(strings.Fields(line)[0], ":") {
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && uint64(addr) >= l && uint64(addr) < h
			continue
		}
		if flags, ok := strings.CutPrefix(line, "VmFlags:"); ok && in {
			return strings.TrimSpace(flags)
		}
	}
	t.Fatalf("no mapping holds %#x", addr)
	return ""
}
