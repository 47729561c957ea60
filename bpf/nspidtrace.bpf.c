// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * nspidtrace kernel side: process lifecycle and namespace changes, each event
 * carrying the subject's PID at every pid-namespace level.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "nspidtrace.h"

/*
 * Kernel structs are read with BPF_CORE_READ (bpf_probe_read_kernel), not
 * by dereferencing the task's BTF pointers, on purpose. Direct reads were
 * tried: 19% less BPF time per process (26.7 instead of 33.0 µs over a
 * fork+exec+exit storm), but on 6.18 the verifier looks up by name, by a
 * linear scan of the kernel's BTF, whether each pointer loaded from a
 * trusted one (the task) is itself trusted (btf_nested_type_is_trusted):
 * the task iterator took 18-32 ms to verify instead of 4, and `trace` 0.7-1.1 s
 * to start instead of 0.23.
 */

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* include/linux/sched/signal.h: the whole thread group is exiting. */
#define SIGNAL_GROUP_EXIT 0x00000004

/* Knobs, set from Go before load. */
const volatile bool with_threads = false;   /* also thread fork/exit */
const volatile __u32 target_pidns = 0;      /* only processes inside this pid ns (0: all) */
const volatile __u64 wakeup_bytes = 1;      /* wake the reader once this much is pending */
const volatile bool with_zombies = false;   /* the iterator also dumps unreaped processes */
const volatile bool with_args = true;       /* the iterator copies argv (not for `tree` as text) */
const volatile __u64 signal_mask = 0;       /* report signal n when bit n-1 is set */
/*
 * The cgroup hierarchy cgroup_id is read from: the cgroup v2 hierarchy
 * (CGROUP_DFL), or on cgroup v1 the index of a controller mounted on its own
 * hierarchy (its row in /proc/cgroups), since v1 container runtimes leave
 * the v2 hierarchy empty.
 */
#define CGROUP_DFL 0xffffffff
#define CGROUP_SUBSYS_MAX 64
const volatile __u32 cgroup_subsys = CGROUP_DFL;

#define EXIT_ZOMBIE 0x20 /* include/linux/sched.h */
#define PFA_NO_NEW_PRIVS 0 /* include/linux/sched.h: its bit in task->atomic_flags */

/* include/linux/user_namespace.h */
#define UID_GID_MAP_MAX_BASE_EXTENTS 5
#define UID_GID_MAP_MAX_EXTENTS 340
/* An ID of a map of more than 5 ranges, which the compat build does not search. */
#define NSPT_UNREAD_ID 0xfffffffe

/* Force emission of the record types for bpf2go -type. */
const struct nspt_event *unused_event __attribute__((unused));
const struct nspt_exec_event *unused_exec_event __attribute__((unused));
const struct nspt_proc_event *unused_proc_event __attribute__((unused));
const struct nspt_rename_event *unused_rename_event __attribute__((unused));
const struct nspt_signal_event *unused_signal_event __attribute__((unused));
const struct nspt_cred_event *unused_cred_event __attribute__((unused));

/*
 * The tracing programs' maps. A one-shot answer loads only the task iterator,
 * from an object built with NSPT_ITER_ONLY (internal/loader/gen.go): parsing
 * the whole object would cost it more than the answer.
 */
#ifndef NSPT_ITER_ONLY
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

/* What a credential system call or exec started from, by thread. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct nspt_ids);
} ids_at_entry SEC(".maps");

/*
 * A thread that exec'd took its leader's thread ID: the exit of its execve
 * is seen under that one.
 */
static __always_inline void move_ids_at_entry(__u32 from, __u32 to)
{
	struct nspt_ids *ids = bpf_map_lookup_elem(&ids_at_entry, &from);

	if (!ids)
		return;
	bpf_map_update_elem(&ids_at_entry, &to, ids, BPF_ANY);
	bpf_map_delete_elem(&ids_at_entry, &from);
}
#endif /* NSPT_ITER_ONLY */

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

static __always_inline struct upid *pid_numbers(struct pid *pid)
{
	/* numbers[] is a flexible array since 6.5: index it by pointer. */
	return (struct upid *)((char *)pid + bpf_core_field_offset(struct pid, numbers));
}

static __always_inline __u32 pid_level(struct pid *pid)
{
	__u32 level = BPF_CORE_READ(pid, level);

	return level < NSPT_MAX_LEVELS ? level : NSPT_MAX_LEVELS - 1;
}

#ifndef NSPT_ITER_ONLY
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
#endif /* NSPT_ITER_ONLY */

/*
 * The namespace pointers of struct nsproxy, in the order 5.6+ kernels have
 * them after its count: where the kernel's BTF says they are so (the
 * offsets are constants once relocated), one read fetches all eight.
 */
enum nsp_slot { NSP_UTS, NSP_IPC, NSP_MNT, NSP_PID_FOR_CHILDREN, NSP_NET, NSP_TIME, NSP_TIME_FOR_CHILDREN,
		NSP_CGROUP, NSP_SLOTS };
#define NSP_AT(field, slot)                                                                    \
	(bpf_core_field_offset(struct nsproxy, field) - bpf_core_field_offset(struct nsproxy, uts_ns) == \
	 (slot) * sizeof(void *))

static __always_inline bool nsproxy_in_order(struct nsproxy *nsp)
{
	return bpf_core_field_exists(nsp->time_ns) && NSP_AT(ipc_ns, NSP_IPC) && NSP_AT(mnt_ns, NSP_MNT) &&
	       NSP_AT(pid_ns_for_children, NSP_PID_FOR_CHILDREN) && NSP_AT(net_ns, NSP_NET) &&
	       NSP_AT(time_ns, NSP_TIME) && NSP_AT(time_ns_for_children, NSP_TIME_FOR_CHILDREN) &&
	       NSP_AT(cgroup_ns, NSP_CGROUP);
}

/*
 * The task's namespaces into ns. Its user namespace (that of its real_cred)
 * and the inode of its active pid namespace, which the level walk read,
 * come from the caller.
 */
static __always_inline void read_namespaces(struct task_struct *task, struct user_namespace *user_ns,
					    __u32 pidns, __u32 *ns)
{
	struct nsproxy *nsp = BPF_CORE_READ(task, nsproxy);
	void *p[NSP_SLOTS] = {};

	/* Exited tasks have no nsproxy: leave zeros. */
	if (nsp) {
		if (nsproxy_in_order(nsp)) {
			bpf_probe_read_kernel(p, sizeof(p), &nsp->uts_ns);
		} else {
			p[NSP_UTS] = BPF_CORE_READ(nsp, uts_ns);
			p[NSP_IPC] = BPF_CORE_READ(nsp, ipc_ns);
			p[NSP_MNT] = BPF_CORE_READ(nsp, mnt_ns);
			p[NSP_PID_FOR_CHILDREN] = BPF_CORE_READ(nsp, pid_ns_for_children);
			p[NSP_NET] = BPF_CORE_READ(nsp, net_ns);
			p[NSP_CGROUP] = BPF_CORE_READ(nsp, cgroup_ns);
			if (bpf_core_field_exists(nsp->time_ns)) {
				p[NSP_TIME] = BPF_CORE_READ(nsp, time_ns);
				p[NSP_TIME_FOR_CHILDREN] = BPF_CORE_READ(nsp, time_ns_for_children);
			}
		}
		ns[NSPT_NS_CGROUP] = BPF_CORE_READ((struct cgroup_namespace *)p[NSP_CGROUP], ns.inum);
		ns[NSPT_NS_IPC] = BPF_CORE_READ((struct ipc_namespace *)p[NSP_IPC], ns.inum);
		ns[NSPT_NS_MNT] = BPF_CORE_READ((struct mnt_namespace *)p[NSP_MNT], ns.inum);
		ns[NSPT_NS_NET] = BPF_CORE_READ((struct net *)p[NSP_NET], ns.inum);
		ns[NSPT_NS_PID_FOR_CHILDREN] =
			BPF_CORE_READ((struct pid_namespace *)p[NSP_PID_FOR_CHILDREN], ns.inum);
		ns[NSPT_NS_UTS] = BPF_CORE_READ((struct uts_namespace *)p[NSP_UTS], ns.inum);
		/* Time namespaces need CONFIG_TIME_NS (5.6+). */
		if (bpf_core_field_exists(nsp->time_ns)) {
			ns[NSPT_NS_TIME] = BPF_CORE_READ((struct time_namespace *)p[NSP_TIME], ns.inum);
			ns[NSPT_NS_TIME_FOR_CHILDREN] =
				BPF_CORE_READ((struct time_namespace *)p[NSP_TIME_FOR_CHILDREN], ns.inum);
		}
	}
	ns[NSPT_NS_USER] = BPF_CORE_READ(user_ns, ns.inum);
	ns[NSPT_NS_PID] = pidns;
}

/* The kernfs ID of the task's cgroup in the hierarchy cgroup_subsys names. */
static __always_inline __u64 task_cgroup_id(struct task_struct *task)
{
	struct css_set *cset = BPF_CORE_READ(task, cgroups);
	struct cgroup_subsys_state *css = NULL;
	__u32 i = cgroup_subsys;

	if (i == CGROUP_DFL)
		return BPF_CORE_READ(cset, dfl_cgrp, kn, id);
	if (i >= CGROUP_SUBSYS_MAX)
		return 0;
	/* subsys[] is sized by the kernel's config: its index is not relocatable, its base is. */
	if (bpf_probe_read_kernel(&css, sizeof(css), &cset->subsys[i]) || !css)
		return 0;
	return BPF_CORE_READ(css, cgroup, kn, id);
}

/* What the level walk of fill_event() needs, for its bpf_loop() callback. */
struct level_walk {
	struct nspt_event *e;
	struct upid *nums;
	struct upid *pnums;
	__u32 plevel;
	__u32 pidns; /* the namespace inode of the last level filled */
};

/* Fill level i: our number, its namespace, and the parent's number there. */
static __always_inline void fill_level(__u32 i, struct level_walk *w)
{
	struct upid up = {}, pup = {};

	bpf_probe_read_kernel(&up, sizeof(up), &w->nums[i]);
	w->e->nspid[i] = up.nr;
	w->pidns = w->e->pidns[i] = BPF_CORE_READ(up.ns, ns.inum);
	w->e->nsppid[i] = 0;
	if (i <= w->plevel) {
		bpf_probe_read_kernel(&pup, sizeof(pup), &w->pnums[i]);
		/* The parent is visible at level i only in the same namespace. */
		if (pup.ns == up.ns)
			w->e->nsppid[i] = pup.nr;
	}
}

/*
 * The level walk as a bpf_loop() callback (5.17): verified once, not once
 * per level as the unrolled walk is, so loading stays fast.
 */
static long fill_level_cb(__u64 i, void *ctx)
{
	if (i >= NSPT_MAX_LEVELS)
		return 1;
	fill_level(i, ctx);
	return 0;
}

/*
 * Every program that fills events comes in two builds: the one 5.17+
 * kernels load (compat false: the level walk is a bpf_loop(); the task
 * iterator is sleepable and copies argv), and the "_compat" one for 5.8 to
 * 5.17 (a plain bounded loop; argv of the iterator's processes is read from
 * /proc in user space). compat is a constant in each program, so each
 * build holds only its own code: 5.10's loader rejects even an unused
 * bpf_loop() callback. The loader chooses by the kernel's BTF.
 */
static __always_inline void walk_levels(struct level_walk *w, __u32 level, const bool compat)
{
	__u32 i;

	if (!compat) {
		bpf_loop(level + 1, fill_level_cb, w, 0);
		return;
	}
	/* A bounded loop (5.3): the verifier walks it level by level. */
	for (i = 0; i < NSPT_MAX_LEVELS; i++) {
		if (i > level)
			break;
		fill_level(i, w);
	}
}

/* The offset of field in struct cred, from the kernel's BTF at load. */
#define CRED_OFF(field) bpf_core_field_offset(struct cred, field)
/* Whether the ID field is the nth after uid. */
#define CRED_ID_AT(field, n) (CRED_OFF(field) - CRED_OFF(uid) == (n) * sizeof(__u32))
/* Whether the capability set field is the nth after cap_inheritable. */
#define CRED_CAP_AT(field, n) (CRED_OFF(field) - CRED_OFF(cap_inheritable) == (n) * sizeof(__u64))

/*
 * The IDs, capabilities and security bits /proc/PID/status shows, of the
 * task's credentials c. Reads cost most of the task iterator's time, and
 * struct cred has held its eight IDs in a row (uid, gid, suid, sgid, euid,
 * egid, fsuid, fsgid) since 2.6.29, and its five capability sets in the
 * order of struct nspt_ids since 4.3: one read each, where the kernel's
 * BTF says they are there. The offsets are constants once relocated, so
 * the verifier walks one of the two ways.
 */
static __always_inline void read_ids(struct task_struct *task, const struct cred *c, struct nspt_ids *ids)
{
	if (CRED_ID_AT(gid, 1) && CRED_ID_AT(suid, 2) && CRED_ID_AT(sgid, 3) && CRED_ID_AT(euid, 4) &&
	    CRED_ID_AT(egid, 5) && CRED_ID_AT(fsuid, 6) && CRED_ID_AT(fsgid, 7)) {
		__u32 gid, sgid;

		/* Read in the kernel's order, then two swaps make ours. */
		bpf_probe_read_kernel(&ids->uid, 8 * sizeof(__u32), (char *)c + CRED_OFF(uid));
		gid = ids->euid;
		sgid = ids->fsuid;
		ids->euid = ids->gid;
		ids->fsuid = ids->sgid;
		ids->gid = gid;
		ids->sgid = sgid;
	} else {
		ids->uid = BPF_CORE_READ(c, uid.val);
		ids->euid = BPF_CORE_READ(c, euid.val);
		ids->suid = BPF_CORE_READ(c, suid.val);
		ids->fsuid = BPF_CORE_READ(c, fsuid.val);
		ids->gid = BPF_CORE_READ(c, gid.val);
		ids->egid = BPF_CORE_READ(c, egid.val);
		ids->sgid = BPF_CORE_READ(c, sgid.val);
		ids->fsgid = BPF_CORE_READ(c, fsgid.val);
	}
	ids->securebits = BPF_CORE_READ(c, securebits);
	/* kernel_cap_t is a u64 from 6.3, two u32 words before: the same 8 bytes. */
	if (CRED_CAP_AT(cap_permitted, 1) && CRED_CAP_AT(cap_effective, 2) && CRED_CAP_AT(cap_bset, 3) &&
	    CRED_CAP_AT(cap_ambient, 4)) {
		bpf_probe_read_kernel(&ids->cap_inheritable, 5 * sizeof(__u64), (char *)c + CRED_OFF(cap_inheritable));
	} else {
		bpf_core_read(&ids->cap_inheritable, sizeof(__u64), &c->cap_inheritable);
		bpf_core_read(&ids->cap_permitted, sizeof(__u64), &c->cap_permitted);
		bpf_core_read(&ids->cap_effective, sizeof(__u64), &c->cap_effective);
		bpf_core_read(&ids->cap_bset, sizeof(__u64), &c->cap_bset);
		bpf_core_read(&ids->cap_ambient, sizeof(__u64), &c->cap_ambient);
	}
	ids->seccomp = 0;
	if (bpf_core_field_exists(task->seccomp))
		ids->seccomp = BPF_CORE_READ(task, seccomp.mode);
	ids->no_new_privs = (BPF_CORE_READ(task, atomic_flags) >> PFA_NO_NEW_PRIVS) & 1;
	ids->pad = 0;
}

/* A search of one ID map's extents for the one that holds a kernel ID. */
struct extent_search {
	struct uid_gid_extent *ext;
	__u32 id;
	__u32 result;
};

static long extent_search_cb(__u64 i, void *ctx)
{
	struct extent_search *s = ctx;
	struct uid_gid_extent x = {};

	bpf_probe_read_kernel(&x, sizeof(x), &s->ext[i]);
	/* Unsigned: an ID below lower_first wraps past count. */
	if (s->id - x.lower_first < x.count) {
		s->result = x.first + (s->id - x.lower_first);
		return 1;
	}
	return 0;
}

/*
 * The kernel's map_id_up(): what kernel ID id is in the user namespace map
 * belongs to, NSPT_UNMAPPED when no range holds it. Maps of up to five
 * ranges hold them inline; longer ones (up to 340) point to an array, which
 * the compat build does not search (NSPT_UNREAD_ID). Both are searched by
 * a bpf_loop() where there is one: the verifier walks its callback rather
 * than five unrolled ranges for each ID (5% fewer instructions verified in
 * the task iterator).
 */
static __always_inline __u32 map_id_up(struct uid_gid_map *map, __u32 id, const bool compat)
{
	struct extent_search s = { .id = id, .result = NSPT_UNMAPPED };
	__u32 n = BPF_CORE_READ(map, nr_extents);
	__u32 i;

	if (n <= UID_GID_MAP_MAX_BASE_EXTENTS) {
		s.ext = &map->extent[0];
	} else if (compat) {
		return NSPT_UNREAD_ID;
	} else {
		s.ext = BPF_CORE_READ(map, forward);
		n = n < UID_GID_MAP_MAX_EXTENTS ? n : UID_GID_MAP_MAX_EXTENTS;
	}
	if (!compat) {
		bpf_loop(n, extent_search_cb, &s, 0);
		return s.result;
	}
	for (i = 0; i < UID_GID_MAP_MAX_BASE_EXTENTS; i++) {
		if (i >= n || extent_search_cb(i, &s))
			break;
	}
	return s.result;
}

/* A walk up a task's user namespaces, its own first, for user_level(). */
struct user_walk {
	struct nspt_cred *cred;
	struct user_namespace *ns;
	__u32 uid, gid; /* kernel IDs */
};

/* One user namespace of the walk: its inode, and the IDs as it sees them. 1 ends the walk. */
static __always_inline long user_level(struct user_walk *w, const bool compat)
{
	struct user_namespace *ns = w->ns;
	__u32 i;

	if (!ns)
		return 1;
	i = BPF_CORE_READ(ns, level);
	if (i >= NSPT_MAX_USER_LEVELS)
		return 1;
	w->cred->userns[i] = BPF_CORE_READ(ns, ns.inum);
	if (i == 0) {
		/* The host's user namespace: kernel IDs are its IDs. */
		w->cred->ns_uid[0] = w->uid;
		w->cred->ns_gid[0] = w->gid;
		return 1;
	}
	w->cred->ns_uid[i] = map_id_up(&ns->uid_map, w->uid, compat);
	w->cred->ns_gid[i] = map_id_up(&ns->gid_map, w->gid, compat);
	w->ns = BPF_CORE_READ(ns, parent);
	return 0;
}

static long user_level_cb(__u64 i, void *ctx)
{
	return user_level(ctx, false);
}

/* The credentials c of task, at every level of user namespace from c's own, ns. */
static __always_inline void read_cred(struct task_struct *task, const struct cred *c, struct user_namespace *ns,
				      struct nspt_cred *cred, const bool compat)
{
	struct user_walk w = { .cred = cred, .ns = ns };
	__u32 level = BPF_CORE_READ(ns, level), i;

	read_ids(task, c, &cred->ids);
	w.uid = cred->ids.euid;
	w.gid = cred->ids.egid;
	cred->user_levels = level < NSPT_MAX_USER_LEVELS ? level + 1 : 0;
	if (!compat) {
		bpf_loop(NSPT_MAX_USER_LEVELS, user_level_cb, &w, 0);
		return;
	}
	for (i = 0; i < NSPT_MAX_USER_LEVELS; i++) {
		if (user_level(&w, true))
			break;
	}
}

/* Fill the fields every event has: identity at every level, namespaces, creds. */
static __always_inline void fill_event(struct nspt_event *e, struct task_struct *task, __u32 type, const bool compat)
{
	/* Each pointer is read once: reads are most of the time this takes. */
	struct task_struct *leader = BPF_CORE_READ(task, group_leader);
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);
	struct task_struct *pleader = BPF_CORE_READ(parent, group_leader);
	const struct cred *cred = BPF_CORE_READ(task, real_cred);
	struct user_namespace *user_ns = BPF_CORE_READ(cred, user_ns);
	struct pid *pid = BPF_CORE_READ(leader, thread_pid);
	struct pid *ppid = BPF_CORE_READ(pleader, thread_pid);
	__u32 level = pid_level(pid);
	struct level_walk w = {
		.e = e,
		.nums = pid_numbers(pid),
		.pnums = pid_numbers(ppid),
		.plevel = pid_level(ppid),
	};

	e->ktime_ns = bpf_ktime_get_boot_ns();
	e->type = type;
	e->flags = 0;
	e->pid = BPF_CORE_READ(task, tgid);
	e->tid = BPF_CORE_READ(task, pid);
	e->ppid = BPF_CORE_READ(parent, tgid);
	e->levels = level + 1;
	e->exit_status = 0;
	e->ret = 0;
	e->arg = 0;
	e->old_tid = 0;
	e->reaper = 0;
	e->start_ns = BPF_CORE_READ(leader, start_boottime);
	e->parent_start_ns = BPF_CORE_READ(pleader, start_boottime);
	__builtin_memset(e->old_ns, 0, sizeof(e->old_ns));
	__builtin_memset(e->ns, 0, sizeof(e->ns));
	BPF_CORE_READ_STR_INTO(&e->comm, task, comm);

	/* Walk the levels; entries past `levels` are left as they are. */
	walk_levels(&w, level, compat);

	/*
	 * The active pid namespace is the deepest level's, the last the walk
	 * filled, and the same for every thread of a process: the kernel
	 * refuses CLONE_THREAD into another.
	 */
	read_namespaces(task, user_ns, w.pidns, e->ns);
	e->cgroup_id = task_cgroup_id(task);
	read_cred(task, cred, user_ns, &e->cred, compat);
	e->uid = e->cred.ids.euid;
	e->gid = e->cred.ids.egid;
}

/*
 * The bounded argv area of mm: its start in *start, its length (at most
 * NSPT_ARGS_LEN, flagging a longer one in *flags) as the result. Exec reads
 * it from the new image, the task iterator from each process's memory.
 */
static __always_inline unsigned long argv_area(struct mm_struct *mm, unsigned long *start, __u32 *flags)
{
	unsigned long len;

	*start = BPF_CORE_READ(mm, arg_start);
	len = BPF_CORE_READ(mm, arg_end) - *start;
	if (len > NSPT_ARGS_LEN) {
		len = NSPT_ARGS_LEN;
		*flags |= NSPT_F_ARGS_TRUNCATED;
	}
	return len;
}

#ifndef NSPT_ITER_ONLY /* the tracing programs: not in the iterator-only object */

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

static __always_inline int fork_event(struct task_struct *child, const bool compat)
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
	fill_event(e, child, NSPT_FORK, compat);
	if (thread)
		e->flags |= NSPT_F_THREAD;
	submit(e);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork, struct task_struct *parent, struct task_struct *child)
{
	return fork_event(child, false);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork_compat, struct task_struct *parent, struct task_struct *child)
{
	return fork_event(child, true);
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
	fill_event(&x->e, task, NSPT_EXEC, compat);
	/* A non-leader thread that exec'd has taken over the leader's PID. */
	if (old_pid != BPF_CORE_READ(task, pid)) {
		x->e.old_tid = old_pid;
		move_ids_at_entry(old_pid, BPF_CORE_READ(task, pid));
	}

	/* Copy the filename the kernel resolved. */
	n = bpf_probe_read_kernel_str(x->filename, sizeof(x->filename), BPF_CORE_READ(bprm, filename));
	x->filename_len = n > 0 ? n - 1 : 0;

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
	fill_event(&x->e, task, NSPT_RENAME, compat);
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
	fill_event(&x->e, task, NSPT_SIGNAL, compat);
	/* bpf_get_current_task(), not its _btf form: that one is 5.11+. */
	fill_event(&x->sender, (struct task_struct *)bpf_get_current_task(), NSPT_SIGNAL, compat);
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
	fill_event(e, task, NSPT_EXIT, compat);
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
		fill_event(e, task, type, compat);
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
 * call that can change credentials (set*id, capset, seccomp, execve; the
 * loader attaches it to each), handle_cred_exit at its exit: when the
 * credentials differ, a cred record says from what to what.
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
			fill_event(&x->e, task, NSPT_CRED, compat);
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
#endif /* NSPT_ITER_ONLY */

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
	fill_event(&x->e, task, NSPT_PROC, compat);
	if (zombie) {
		x->e.flags |= NSPT_F_ZOMBIE;
		x->e.exit_status = BPF_CORE_READ(task, exit_code);
	}
	x->args_len = 0;
	x->pad = 0;

	/* Copy argv, bounded, when asked; kernel threads have none. */
	mm = with_args ? BPF_CORE_READ(task, mm) : NULL;
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
