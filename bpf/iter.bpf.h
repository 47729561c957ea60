// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The task iterator: every live process as a proc record, for the tree's
 * start and resync. Both objects hold it: trace's snapshot comes from the
 * tracing object, a one-shot answer loads nspidtrace_iter.bpf.c's alone.
 */
#ifndef __NSPT_ITER_BPF_H
#define __NSPT_ITER_BPF_H

#include "task.bpf.h"

/* Knobs of the task iterator, set from Go before load. */
const volatile bool with_zombies = false;   /* the iterator also dumps unreaped processes */
const volatile bool with_args = true;       /* the iterator copies argv (not for `tree` as text) */

/* Scratch space for the task iterator: a record is too big for the stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nspt_proc_event);
} proc_scratch SEC(".maps");

/*
 * Dump every live process as a proc record: the tree's start and resync.
 * The 5.18+ build is sleepable, so that argv can be read from each
 * process's memory; the compat build leaves argv to user space (args_len 0,
 * NSPT_F_ARGS_UNREAD).
 */
static __always_inline int dump_task_record(struct bpf_iter__task *ctx, const bool compat)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct nspt_proc_event *x;
	unsigned long arg_start, len;
	struct mm_struct *mm;
	bool zombie = false;
	__u32 zero = 0;

	if (!task)
		return 0;
	/*
	 * One record per process, from its leader. A thread group that has
	 * exited is a zombie until its parent reaps it: dumped only when asked
	 * (one-shot answers), since no later event would retire it.
	 */
	if (BPF_CORE_READ(task, pid) != BPF_CORE_READ(task, tgid))
		return 0;
	if (BPF_CORE_READ(task, signal, live.counter) == 0) {
		if (!with_zombies || !(BPF_CORE_READ(task, exit_state) & EXIT_ZOMBIE))
			return 0;
		zombie = true;
	}

	x = bpf_map_lookup_elem(&proc_scratch, &zero);
	if (!x)
		return 0;
	fill_event(&x->e, task, NSPT_PROC, FILL_CRED, compat);
	if (zombie) {
		x->e.flags |= NSPT_F_ZOMBIE;
		x->e.exit_status = BPF_CORE_READ(task, exit_code);
	}
	x->args_len = 0;
	x->pad = 0;

	/* What it runs, and argv, bounded, when asked; kernel threads have none. */
	mm = BPF_CORE_READ(task, mm);
	if (mm)
		exe_origin(BPF_CORE_READ(mm, exe_file), &x->e.flags);
	if (!with_args)
		mm = NULL;
	if (mm && compat) {
		x->e.flags |= NSPT_F_ARGS_UNREAD;
	} else if (mm) {
		len = argv_area(mm, &arg_start, &x->e.flags);
		if (len > 0 && bpf_copy_from_user_task(x->args, len, (void *)arg_start, task, 0) == 0)
			x->args_len = len;
	}

	/* Write the record up to the end of argv. */
	len = x->args_len;
	if (len > NSPT_ARGS_LEN)
		len = NSPT_ARGS_LEN;
	bpf_seq_write(seq, x, offsetof(struct nspt_proc_event, args) + len);
	return 0;
}

SEC("iter.s/task")
int dump_task(struct bpf_iter__task *ctx)
{
	return dump_task_record(ctx, false);
}

SEC("iter/task")
int dump_task_compat(struct bpf_iter__task *ctx)
{
	return dump_task_record(ctx, true);
}

#endif /* __NSPT_ITER_BPF_H */
