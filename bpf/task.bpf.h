// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Reading a task into a record, as both objects do: its PID at every
 * pid-namespace level and its parent's, its namespaces, its credentials at
 * every user-namespace level, its cgroup, where its argv lies. The tracing
 * programs (nspidtrace.bpf.c) and the task iterator (iter.bpf.h) fill their
 * records with fill_event.
 */
#ifndef __NSPT_TASK_BPF_H
#define __NSPT_TASK_BPF_H

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

/*
 * What fill_event() reads of the credentials: all of them (FILL_CRED), or
 * only the effective UID and GID every line shows (FILL_IDS, flagged
 * NSPT_F_NO_CRED) where nothing more is wanted: exit, rename and signal
 * lines carry no credentials and the tree takes none from them, and a
 * forked child has its parent's (inherits_cred()), which the tree holds.
 * Reading them at every user-namespace level is a third of a record's cost.
 */
enum fill_cred { FILL_IDS, FILL_CRED };

/* Fill the fields every event has: identity at every level, namespaces, creds. */
static __always_inline void fill_event(struct nspt_event *e, struct task_struct *task, __u32 type,
				       enum fill_cred what, const bool compat)
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
	if (what == FILL_IDS) {
		e->flags |= NSPT_F_NO_CRED;
		e->uid = BPF_CORE_READ(cred, euid.val);
		e->gid = BPF_CORE_READ(cred, egid.val);
		return;
	}
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


/*
 * Whether an executable exists as a file: a memfd's name starts "memfd:",
 * and neither it nor a deleted file has a link left. Only the kernel knows:
 * the filename at exec (/dev/fd/3, /proc/self/fd/3) does not say. Exec
 * reads the file it runs, the task iterator each process's mm->exe_file.
 */
static __always_inline void exe_origin(struct file *file, __u32 *flags)
{
	char name[6] = {};

	if (BPF_CORE_READ(file, f_inode, __i_nlink) == 0)
		*flags |= NSPT_F_EXE_UNLINKED;
	bpf_probe_read_kernel(name, sizeof(name), BPF_CORE_READ(file, f_path.dentry, d_name.name));
	if (name[0] == 'm' && name[1] == 'e' && name[2] == 'm' && name[3] == 'f' && name[4] == 'd' && name[5] == ':')
		*flags |= NSPT_F_EXE_MEMFD;
}

#endif /* __NSPT_TASK_BPF_H */
