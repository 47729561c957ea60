// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The task iterator alone, which one-shot answers (<pid>, tree) load:
 * parsing nspidtrace.bpf.c's whole object would cost them more than the
 * answer.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "nspidtrace.h"
#include "task.bpf.h"
#include "iter.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
