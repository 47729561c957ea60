package loader

// Regenerate with `make generate` (a pinned clang from Debian: clang-19).
//
//   -cc clang-19            the pinned compiler; CI rebuilds and diffs the output
//   -cflags                 warnings are errors; -g keeps BTF for CO-RE
//   -target bpfel           one little-endian object for amd64 and arm64
//   -type nspt_event ...    mirror the shared records in Go (bpf/nspidtrace.h)
//   -- -I../../bpf          vmlinux.h, nspidtrace.h and the shared .bpf.h
//
// Two objects, laid out as libbpf-tools lays out its tools: what both need
// is in headers (task.bpf.h reads a task into a record, iter.bpf.h is the
// task iterator), and each object is one .c. nspidtrace holds the tracing
// programs and the iterator; nspidtraceIter the iterator alone, which
// one-shot answers load (ReadSnapshot): parsing the whole object costs
// 13–18 ms, more than the rest of such an answer.
//
//go:generate go tool bpf2go -cc clang-19 -cflags "-O2 -g -Wall -Werror" -target bpfel -type nspt_event -type nspt_exec_event -type nspt_proc_event -type nspt_rename_event -type nspt_signal_event -type nspt_cred_event -type nspt_cgroup_event nspidtrace ../../bpf/nspidtrace.bpf.c -- -I../../bpf
//go:generate go tool bpf2go -cc clang-19 -cflags "-O2 -g -Wall -Werror" -target bpfel nspidtraceIter ../../bpf/nspidtrace_iter.bpf.c -- -I../../bpf
