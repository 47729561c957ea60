package main

import (
	"io"
	"os"
	"strconv"
	"testing"
)

func BenchmarkZZShowInProcess(b *testing.B) {
	pid := strconv.Itoa(os.Getpid())
	for b.Loop() {
		if rc := run([]string{pid}, io.Discard, io.Discard); rc != 0 {
			b.Fatal(rc)
		}
	}
}
