// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * nspidtrace kernel side: process lifecycle and namespace changes, each event
 * carrying the subject's PID at every pid-namespace level. This object holds
 * the tracing programs and the task iterator; a one-shot answer loads
 * nspidtrace_iter.bpf.c's object, the iterator alone, since parsing this
 * whole object would cost it more than the answer (internal/loader/gen.go).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "nspidtrace.h"
#include "task.bpf.h"
#include "iter.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* include/linux/sched/signal.h: the whole thread group is exiting. */
#define SIGNAL_GROUP_EXIT 0x00000004

/* Knobs of the tracing programs, set from Go before load. */
const volatile bool with_threads = false;   /* also thread fork/exit */
const volatile __u32 target_pidns = 0;      /* only processes inside this pid ns (0: all) */
const volatile __u64 wakeup_bytes = 1;      /* wake the reader once this much is pending */
const volatile __u64 signal_mask = 0;       /* report signal n when bit n-1 is set */

/* Force emission of the record types for bpf2go -type. */
const struct nspt_event *unused_event __attribute__((unused));
const struct nspt_exec_event *unused_exec_event __attribute__((unused));
const struct nspt_proc_event *unused_proc_event __attribute__((unused));
const struct nspt_rename_event *unused_rename_event __attribute__((unused));
const struct nspt_signal_event *unused_signal_event __attribute__((unused));
const struct nspt_cred_event *unused_cred_event __attribute__((unused));
const struct nspt_cgroup_event *unused_cgroup_event __attribute__((unused));

/* The tracing programs' maps. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* resized from Go */
} events SEC(".maps");

/* Records that did not fit in the ring buffer, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* What a setns/unshare caller had at syscall entry, by thread. */
struct ns_entry {
	__u64 arg;
	__u32 ns[NSPT_NS_KINDS];
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct ns_entry);
} ns_at_entry SEC(".maps");

/* What a credential system call started from, by thread. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct nspt_ids);
} ids_at_entry SEC(".maps");

/* The context of syscalls/sys_{enter,exit}_* tracepoints (see their format files). */
struct syscall_enter_ctx {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__u64 args[6];
};

struct syscall_exit_ctx {
	__u64 common;
	__s32 nr;
	__u32 pad;
	__s64 ret;
};

/* Whether task lives in target_pidns, at any level. */
static __always_inline bool task_selected(struct task_struct *task)
{
	struct pid *pid;
	struct upid *nums;
	__u32 level, i;

	if (!target_pidns)
		return true;

	pid = BPF_CORE_READ(task, group_leader, thread_pid);
	nums = pid_numbers(pid);
	level = pid_level(pid);
	for (i = 0; i < NSPT_MAX_LEVELS; i++) {
		struct pid_namespace *ns = NULL;

		if (i > level)
			break;
		bpf_probe_read_kernel(&ns, sizeof(ns), &nums[i].ns);
		if (BPF_CORE_READ(ns, ns.inum) == target_pidns)
			return true;
	}
	return false;
}

/*
 * Set by the reader when a whole poll interval brought nothing and it sleeps
 * with a long deadline: the next record wakes it at once, and clears it.
 */
__u32 reader_asleep = 0;

static __always_inline void *reserve(__u64 size)
{
	void *e = bpf_ringbuf_reserve(&events, size, 0);

	if (!e) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&lost, &zero);

		if (n)
			*n += 1;
	}
	return e;
}

static __always_inline void submit(void *e)
{
	/*
	 * Wake a sleeping reader at once; an awake one in batches, its poll
	 * deadline flushing what stays below the batch.
	 */
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (reader_asleep) {
		reader_asleep = 0;
		flags = BPF_RB_FORCE_WAKEUP;
	} else if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes) {
		flags = BPF_RB_FORCE_WAKEUP;
	}
	bpf_ringbuf_submit(e, flags);
}

/*
 * Whether child has the credentials the tree holds for its parent: it has
 * its forker's (copy_creds()), except in a user namespace of its own
 * (CLONE_NEWUSER); and the forker's are its process's (the leader's, which
 * the tree follows) where the forker is the leader or shares its cred. A
 * child of CLONE_PARENT has another parent than its forker.
 */
static __always_inline bool inherits_cred(struct task_struct *forker, struct task_struct *child)
{
	const struct cred *cred = BPF_CORE_READ(forker, real_cred);

	return BPF_CORE_READ(child, real_parent, tgid) == BPF_CORE_READ(forker, tgid) &&
	       BPF_CORE_READ(forker, group_leader, real_cred) == cred &&
	       BPF_CORE_READ(child, real_cred, user_ns) == BPF_CORE_READ(cred, user_ns);
}

static __always_inline int fork_event(struct task_struct *forker, struct task_struct *child, const bool compat)
{
	struct nspt_event *e;
	bool thread = BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid);

	if (thread && !with_threads)
		return 0;
	if (!task_selected(child))
		return 0;

	e = reserve(sizeof(*e));
	if (!e)
		return 0;
	fill_event(e, child, NSPT_FORK, thread || inherits_cred(forker, child) ? FILL_IDS : FILL_CRED, compat);
	if (thread)
		e->flags |= NSPT_F_THREAD;
	submit(e);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork, struct task_struct *parent, struct task_struct *child)
{
	return fork_event(parent, child, false);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork_compat, struct task_struct *parent, struct task_struct *child)
{
	return fork_event(parent, child, true);
}

static __always_inline int exec_event(struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm,
				      const bool compat)
{
	struct nspt_exec_event *x;
	unsigned long arg_start, len;
	long n;

	if (!task_selected(task))
		return 0;

	x = reserve(sizeof(*x));
	if (!x)
		return 0;
	fill_event(&x->e, task, NSPT_EXEC, FILL_CRED, compat);
	/* A non-leader thread that exec'd has taken over the leader's PID. */
	if (old_pid != BPF_CORE_READ(task, pid))
		x->e.old_tid = old_pid;

	/* Copy the filename the kernel resolved. */
	n = bpf_probe_read_kernel_str(x->filename, sizeof(x->filename), BPF_CORE_READ(bprm, filename));
	x->filename_len = n > 0 ? n - 1 : 0;
	exe_origin(BPF_CORE_READ(bprm, file), &x->e.flags);

	/* Copy argv, bounded: the new image's argument area. */
	len = argv_area(BPF_CORE_READ(task, mm), &arg_start, &x->e.flags);
	x->args_len = 0;
	if (len > 0 && bpf_probe_read_user(x->args, len, (void *)arg_start) == 0)
		x->args_len = len;

	submit(x);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	return exec_event(task, old_pid, bprm, false);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec_compat, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	return exec_event(task, old_pid, bprm, true);
}

/* The most nested ancestors find_new_reaper() walks, as bounded here. */
#define MAX_REAPER_WALK 64

/*
 * Who inherits the children of a process whose last thread is exiting, as
 * the kernel's find_new_reaper() will decide: the nearest live child
 * subreaper among the ancestors in the same pid namespace, else that
 * namespace's init. 0 when the exiting process is that init: the namespace
 * dies and its processes are killed.
 */
static __always_inline __u32 find_reaper(struct task_struct *task)
{
	struct pid *pid = BPF_CORE_READ(task, thread_pid);
	struct upid *nums = pid_numbers(pid);
	__u32 level = pid_level(pid);
	struct pid_namespace *ns = NULL;
	struct task_struct *init, *anc;
	__u32 i;

	bpf_probe_read_kernel(&ns, sizeof(ns), &nums[level].ns);
	init = BPF_CORE_READ(ns, child_reaper);
	if (BPF_CORE_READ(init, tgid) == BPF_CORE_READ(task, tgid))
		return 0;

	if (BPF_CORE_READ_BITFIELD_PROBED(task->signal, has_child_subreaper)) {
		anc = BPF_CORE_READ(task, real_parent);
		for (i = 0; i < MAX_REAPER_WALK; i++) {
			struct signal_struct *sig = BPF_CORE_READ(anc, signal);

			/* Stop at the namespace's border, or at the root. */
			if (pid_level(BPF_CORE_READ(anc, thread_pid)) != level || BPF_CORE_READ(anc, pid) == 0)
				break;
			if (BPF_CORE_READ_BITFIELD_PROBED(sig, is_child_subreaper) &&
			    BPF_CORE_READ(sig, live.counter) > 0)
				return BPF_CORE_READ(anc, tgid);
			if (anc == init)
				break;
			anc = BPF_CORE_READ(anc, real_parent);
		}
	}
	return BPF_CORE_READ(init, tgid);
}

/*
 * A process renamed itself (prctl(PR_SET_NAME), a write to /proc/self/comm)
 * or was renamed: the tree and the feed follow. The process's comm is its
 * leader's, so other threads' renames are not the process's. Exec renames
 * too, while in_execve is set: its exec record says so already.
 */
static __always_inline int rename_event(struct task_struct *task, const char *comm, const bool compat)
{
	struct nspt_rename_event *x;

	if (BPF_CORE_READ(task, pid) != BPF_CORE_READ(task, tgid))
		return 0;
	if (bpf_core_field_exists(task->in_execve) && BPF_CORE_READ_BITFIELD_PROBED(task, in_execve))
		return 0;
	if (!task_selected(task))
		return 0;

	x = reserve(sizeof(*x));
	if (!x)
		return 0;
	fill_event(&x->e, task, NSPT_RENAME, FILL_IDS, compat);
	/* The task still has its old comm: keep it, and report the new one. */
	__builtin_memcpy(x->old_comm, x->e.comm, sizeof(x->old_comm));
	bpf_probe_read_kernel_str(x->e.comm, sizeof(x->e.comm), comm);
	submit(x);
	return 0;
}

SEC("tp_btf/task_rename")
int BPF_PROG(handle_rename, struct task_struct *task, const char *comm)
{
	return rename_event(task, comm, false);
}

SEC("tp_btf/task_rename")
int BPF_PROG(handle_rename_compat, struct task_struct *task, const char *comm)
{
	return rename_event(task, comm, true);
}

/*
 * A signal was generated for task, by the current task (or by the kernel on
 * its behalf: a fault, a broken pipe, the OOM killer). Only the signals in
 * signal_mask: by default those whose default action ends or stops a
 * process, so that SIGCHLD storms cost nothing.
 */
static __always_inline int signal_event(int sig, struct task_struct *task, int result, const bool compat)
{
	struct nspt_signal_event *x;

	if (sig < 1 || sig > 64 || !(signal_mask & (1ULL << (sig - 1))))
		return 0;
	if (!task_selected(task))
		return 0;

	x = reserve(sizeof(*x));
	if (!x)
		return 0;
	fill_event(&x->e, task, NSPT_SIGNAL, FILL_IDS, compat);
	/* bpf_get_current_task(), not its _btf form: that one is 5.11+. */
	fill_event(&x->sender, (struct task_struct *)bpf_get_current_task(), NSPT_SIGNAL, FILL_IDS, compat);
	x->sig = sig;
	x->result = result;
	submit(x);
	return 0;
}

SEC("tp_btf/signal_generate")
int BPF_PROG(handle_signal, int sig, struct kernel_siginfo *info, struct task_struct *task, int group, int result)
{
	return signal_event(sig, task, result, false);
}

SEC("tp_btf/signal_generate")
int BPF_PROG(handle_signal_compat, int sig, struct kernel_siginfo *info, struct task_struct *task, int group,
	     int result)
{
	return signal_event(sig, task, result, true);
}

static __always_inline int exit_event(struct task_struct *task, const bool compat)
{
	struct signal_struct *sig = BPF_CORE_READ(task, signal);
	struct nspt_event *e;
	bool group_dead;
	int status;

	/* do_exit() has already counted this thread out of signal->live. */
	group_dead = BPF_CORE_READ(sig, live.counter) == 0;
	if (!group_dead && !with_threads)
		return 0;
	if (!task_selected(task))
		return 0;

	e = reserve(sizeof(*e));
	if (!e)
		return 0;
	fill_event(e, task, NSPT_EXIT, FILL_IDS, compat);
	if (!group_dead) {
		e->flags |= NSPT_F_THREAD;
		status = BPF_CORE_READ(task, exit_code);
	} else if (BPF_CORE_READ(sig, flags) & SIGNAL_GROUP_EXIT) {
		/* exit_group() or a fatal signal: what wait(2) will report. */
		status = BPF_CORE_READ(sig, group_exit_code);
	} else {
		/* Every thread exited on its own: the leader's code counts. */
		status = BPF_CORE_READ(task, group_leader, exit_code);
	}
	e->exit_status = status;
	if (group_dead)
		e->reaper = find_reaper(task);
	submit(e);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_exit, struct task_struct *task)
{
	return exit_event(task, false);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_exit_compat, struct task_struct *task)
{
	return exit_event(task, true);
}

/* read_namespaces() where no level walk read the active pid namespace. */
static __always_inline void read_task_namespaces(struct task_struct *task, __u32 *ns)
{
	struct pid *pid = BPF_CORE_READ(task, thread_pid);
	struct upid *nums = pid_numbers(pid);
	struct pid_namespace *pns = NULL;

	bpf_probe_read_kernel(&pns, sizeof(pns), &nums[pid_level(pid)].ns);
	read_namespaces(task, BPF_CORE_READ(task, real_cred, user_ns), BPF_CORE_READ(pns, ns.inum), ns);
}

static __always_inline int ns_enter(__u64 arg)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct ns_entry entry = {};
	__u32 tid = bpf_get_current_pid_tgid();

	if (!task_selected(task))
		return 0;
	entry.arg = arg;
	read_task_namespaces(task, entry.ns);
	bpf_map_update_elem(&ns_at_entry, &tid, &entry, BPF_ANY);
	return 0;
}

static __always_inline int ns_exit(__s64 ret, __u32 type, const bool compat)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 tid = bpf_get_current_pid_tgid();
	struct ns_entry *entry;
	struct nspt_event *e;

	entry = bpf_map_lookup_elem(&ns_at_entry, &tid);
	if (!entry)
		return 0;

	e = reserve(sizeof(*e));
	if (e) {
		fill_event(e, task, type, FILL_CRED, compat);
		e->ret = ret;
		e->arg = entry->arg;
		__builtin_memcpy(e->old_ns, entry->ns, sizeof(e->old_ns));
		submit(e);
	}
	bpf_map_delete_elem(&ns_at_entry, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_setns")
int handle_setns_enter(struct syscall_enter_ctx *ctx)
{
	/* setns(fd, nstype) */
	return ns_enter(ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_exit_setns")
int handle_setns_exit(struct syscall_exit_ctx *ctx)
{
	return ns_exit(ctx->ret, NSPT_SETNS, false);
}

SEC("tracepoint/syscalls/sys_exit_setns")
int handle_setns_exit_compat(struct syscall_exit_ctx *ctx)
{
	return ns_exit(ctx->ret, NSPT_SETNS, true);
}

SEC("tracepoint/syscalls/sys_enter_unshare")
int handle_unshare_enter(struct syscall_enter_ctx *ctx)
{
	/* unshare(flags) */
	return ns_enter(ctx->args[0]);
}

SEC("tracepoint/syscalls/sys_exit_unshare")
int handle_unshare_exit(struct syscall_exit_ctx *ctx)
{
	return ns_exit(ctx->ret, NSPT_UNSHARE, false);
}

SEC("tracepoint/syscalls/sys_exit_unshare")
int handle_unshare_exit_compat(struct syscall_exit_ctx *ctx)
{
	return ns_exit(ctx->ret, NSPT_UNSHARE, true);
}

/*
 * Credential changes. handle_cred_enter runs at the entry of each system
 * call that can change credentials (set*id, capset, seccomp; the loader
 * attaches it to each), handle_cred_exit at its exit: when the credentials
 * differ, a cred record says from what to what. An exec's change is told
 * in user space, from its record and the tree.
 */
static __always_inline int cred_enter(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 tid = bpf_get_current_pid_tgid();
	struct nspt_ids ids;

	if (!task_selected(task))
		return 0;
	read_ids(task, BPF_CORE_READ(task, real_cred), &ids);
	bpf_map_update_elem(&ids_at_entry, &tid, &ids, BPF_ANY);
	return 0;
}

static __always_inline bool ids_equal(const struct nspt_ids *a, const struct nspt_ids *b)
{
	return a->uid == b->uid && a->euid == b->euid && a->suid == b->suid && a->fsuid == b->fsuid &&
	       a->gid == b->gid && a->egid == b->egid && a->sgid == b->sgid && a->fsgid == b->fsgid &&
	       a->cap_inheritable == b->cap_inheritable && a->cap_permitted == b->cap_permitted &&
	       a->cap_effective == b->cap_effective && a->cap_bset == b->cap_bset &&
	       a->cap_ambient == b->cap_ambient && a->securebits == b->securebits &&
	       a->seccomp == b->seccomp && a->no_new_privs == b->no_new_privs;
}

static __always_inline int cred_exit(__s32 nr, const bool compat)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 tid = bpf_get_current_pid_tgid();
	struct nspt_cred_event *x;
	struct nspt_ids *old, now;

	old = bpf_map_lookup_elem(&ids_at_entry, &tid);
	if (!old)
		return 0;
	read_ids(task, BPF_CORE_READ(task, real_cred), &now);
	if (!ids_equal(old, &now)) {
		x = reserve(sizeof(*x));
		if (x) {
			fill_event(&x->e, task, NSPT_CRED, FILL_CRED, compat);
			__builtin_memcpy(&x->old, old, sizeof(x->old));
			x->syscall = nr;
			x->pad = 0;
			submit(x);
		}
	}
	bpf_map_delete_elem(&ids_at_entry, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_setuid")
int handle_cred_enter(struct syscall_enter_ctx *ctx)
{
	return cred_enter();
}

/* prctl(2) changes credentials with these options only; the rest cost nothing. */
SEC("tracepoint/syscalls/sys_enter_prctl")
int handle_prctl_enter(struct syscall_enter_ctx *ctx)
{
	switch (ctx->args[0]) {
	case 8:  /* PR_SET_KEEPCAPS */
	case 22: /* PR_SET_SECCOMP */
	case 24: /* PR_CAPBSET_DROP */
	case 28: /* PR_SET_SECUREBITS */
	case 38: /* PR_SET_NO_NEW_PRIVS */
	case 47: /* PR_CAP_AMBIENT */
		return cred_enter();
	}
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_setuid")
int handle_cred_exit(struct syscall_exit_ctx *ctx)
{
	return cred_exit(ctx->nr, false);
}

SEC("tracepoint/syscalls/sys_exit_setuid")
int handle_cred_exit_compat(struct syscall_exit_ctx *ctx)
{
	return cred_exit(ctx->nr, true);
}

/* The context of cgroup/cgroup_mkdir (its format file). */
struct cgroup_mkdir_ctx {
	__u64 common;
	__s32 root;
	__s32 level;
	__u64 id;
	__u32 path_loc; /* __data_loc: the offset in ctx in the low 16 bits, the length in the high 16 */
};

/*
 * A cgroup made: its ID and path, for user space to name the records of its
 * processes with after it is gone. A classic tracepoint: its path is in the
 * record, where tp_btf has only the cgroup, and it has been there since 4.13.
 * Made by a task outside target_pidns, it is not recorded, as that task's
 * own records are not. It never wakes the reader: it matters only with the
 * records of processes that come after it, which do.
 */
SEC("tracepoint/cgroup/cgroup_mkdir")
int handle_cgroup_mkdir(struct cgroup_mkdir_ctx *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 off = ctx->path_loc & 0xffff, len = ctx->path_loc >> 16;
	struct nspt_cgroup_event *c;
	long n;

	if (len == 0 || len > NSPT_CGROUP_PATH_LEN || !task_selected(task))
		return 0;
	c = reserve(sizeof(*c));
	if (!c)
		return 0;
	c->ktime_ns = bpf_ktime_get_boot_ns();
	c->type = NSPT_CGROUP_MKDIR;
	c->root = ctx->root;
	c->id = ctx->id;
	c->cgroup_ns = BPF_CORE_READ(task, nsproxy, cgroup_ns, ns.inum);
	n = bpf_probe_read_kernel_str(c->path, sizeof(c->path), (void *)ctx + off);
	c->path_len = n > 0 ? n - 1 : 0;
	bpf_ringbuf_submit(c, BPF_RB_NO_WAKEUP);
	return 0;
}
