/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The records nspidtrace's BPF programs write to the ring buffer and the task
 * iterator. Shared by the BPF C and, through bpf2go -type, by Go
 * (internal/loader); internal/events mirrors them (RawEvent and friends),
 * and internal/loader/layout_test.go checks that mirror field by field.
 * Fields are naturally aligned with explicit padding: no packed structs.
 */
#ifndef NSPIDTRACE_H
#define NSPIDTRACE_H

/* Levels 0..MAX_PID_NS_LEVEL (32): the host plus 32 nested pid namespaces. */
#define NSPT_MAX_LEVELS 33
#define NSPT_COMM_LEN 16
#define NSPT_NS_KINDS 10
#define NSPT_FILENAME_LEN 256
#define NSPT_ARGS_LEN 1024
/* Levels 0..33 of user namespaces: the host's and 33 nested (the kernel
 * refuses a 34th: create_user_ns() stops at a parent of level 32). */
#define NSPT_MAX_USER_LEVELS 34
/* An ID that has no mapping in a user namespace (the kernel's INVALID_UID). */
#define NSPT_UNMAPPED 0xffffffff
/* A cgroup's path, as the cgroup_mkdir tracepoint gives it; longer ones are
 * not recorded (user space looks their IDs up as it does any other). */
#define NSPT_CGROUP_PATH_LEN 512

enum nspt_type {
	NSPT_FORK = 1,
	NSPT_EXEC = 2,
	NSPT_EXIT = 3,
	NSPT_SETNS = 4,
	NSPT_UNSHARE = 5,
	/* 6 is user space's "lost" */
	NSPT_PROC = 7, /* a live process, from the task iterator */
	/* 8 is user space's "end" of a recording */
	NSPT_RENAME = 9, /* a process's comm changed, other than by exec */
	NSPT_SIGNAL = 10, /* a signal was sent */
	NSPT_CRED = 11, /* a process's credentials changed: set*id, capset, prctl, seccomp (an exec's change is told in user space) */
	NSPT_CGROUP_MKDIR = 12, /* a cgroup was made: not a process's event (struct nspt_cgroup_event) */
};

/* Index into nspt_event.ns[]: the order of the `ns` object in docs/ndjson.md. */
enum nspt_ns_kind {
	NSPT_NS_CGROUP = 0,
	NSPT_NS_IPC = 1,
	NSPT_NS_MNT = 2,
	NSPT_NS_NET = 3,
	NSPT_NS_PID = 4,
	NSPT_NS_PID_FOR_CHILDREN = 5,
	NSPT_NS_TIME = 6,
	NSPT_NS_TIME_FOR_CHILDREN = 7,
	NSPT_NS_USER = 8,
	NSPT_NS_UTS = 9,
};

/* nspt_event.flags */
#define NSPT_F_THREAD 0x1         /* fork/exit of a thread, not a whole process */
#define NSPT_F_ARGS_TRUNCATED 0x2 /* exec: argv was longer than NSPT_ARGS_LEN */
#define NSPT_F_ZOMBIE 0x4         /* proc: exited, not yet reaped; exit_status holds its status */
#define NSPT_F_ARGS_UNREAD 0x8    /* proc: argv was not read (no bpf_copy_from_user_task): read it from /proc */
#define NSPT_F_EXE_UNLINKED 0x10  /* exec, proc: the executable has no name left in any directory (deleted, or a memfd) */
#define NSPT_F_EXE_MEMFD 0x20     /* exec, proc: the executable is a memfd (memfd_create): it never had a file */
#define NSPT_F_NO_CRED 0x40       /* cred was not read (only uid and gid hold the effective IDs); on fork: the child has its parent's */

/*
 * What credential system calls change: the IDs in the host's user namespace
 * (the kernel's kuid/kgid), the capability sets, securebits, the seccomp
 * mode and no_new_privs, as /proc/PID/status shows them.
 */
struct nspt_ids {
	__u32 uid, euid, suid, fsuid;
	__u32 gid, egid, sgid, fsgid;
	__u64 cap_inheritable;
	__u64 cap_permitted;
	__u64 cap_effective;
	__u64 cap_bset;
	__u64 cap_ambient;
	__u32 securebits;
	__u32 seccomp;      /* SECCOMP_MODE_*: 0 disabled, 1 strict, 2 filter */
	__u32 no_new_privs; /* 1 when set */
	__u32 pad;
};

/*
 * A process's credentials: its IDs, and its effective UID and GID as each
 * user namespace from the host's to its own sees them (map_id_up() through
 * each one's uid_map and gid_map; NSPT_UNMAPPED where one has no mapping).
 */
struct nspt_cred {
	struct nspt_ids ids;
	__u32 user_levels;                   /* valid entries below: own user ns level + 1 */
	__u32 userns[NSPT_MAX_USER_LEVELS];  /* user namespace inode at each level, host first */
	__u32 ns_uid[NSPT_MAX_USER_LEVELS];  /* effective UID as level i sees it */
	__u32 ns_gid[NSPT_MAX_USER_LEVELS];  /* effective GID as level i sees it */
	__u32 pad;
};

struct nspt_event {
	__u64 ktime_ns; /* bpf_ktime_get_boot_ns() */
	__u32 type;     /* enum nspt_type */
	__u32 flags;    /* NSPT_F_* */
	__u32 pid;      /* host TGID */
	__u32 tid;      /* host thread ID */
	__u32 ppid;     /* host TGID of the real parent */
	__u32 uid;      /* host effective UID (cred.ids.euid) */
	__u32 gid;      /* host effective GID (cred.ids.egid) */
	__u32 levels;   /* valid entries in nspid, pidns, nsppid: pid level + 1 */
	__u32 nspid[NSPT_MAX_LEVELS];  /* TGID at each level, host first */
	__u32 pidns[NSPT_MAX_LEVELS];  /* pid namespace inode at each level */
	__u32 nsppid[NSPT_MAX_LEVELS]; /* parent's TGID at each level, 0 if not visible */
	__u32 ns[NSPT_NS_KINDS];       /* namespace inodes, enum nspt_ns_kind */
	char comm[NSPT_COMM_LEN];
	__u32 exit_status; /* exit: wait(2) status of the process */
	__s64 ret;         /* setns, unshare: return value */
	__u64 arg;         /* setns: nstype; unshare: flags */
	__u32 old_ns[NSPT_NS_KINDS]; /* setns, unshare: namespaces at syscall entry */
	__u32 old_tid;     /* exec: thread ID before exec, when a non-leader thread exec'd */
	__u32 reaper;      /* exit: host TGID that inherits the children; 0 when the
			    * pid namespace dies with its init */
	__u64 start_ns;    /* the process's start, CLOCK_BOOTTIME: tells PID reuse apart */
	__u64 parent_start_ns; /* the real parent's start, CLOCK_BOOTTIME */
	__u64 cgroup_id;   /* kernfs ID of the task's cgroup in the hierarchy the
			    * cgroup_subsys knob names: the inode of its directory */
	struct nspt_cred cred; /* the task's objective credentials (real_cred) */
};

/* An exec record: the common record followed by filename and argv. */
struct nspt_exec_event {
	struct nspt_event e;
	__u32 filename_len; /* bytes in filename, without the NUL */
	__u32 args_len;     /* bytes in args: NUL-separated argv */
	char filename[NSPT_FILENAME_LEN];
	char args[NSPT_ARGS_LEN];
};

/*
 * A proc record, from the task iterator: the common record and argv, of
 * which only args_len bytes are written: a snapshot of thousands of
 * processes copies what they have, not a fixed maximum.
 */
struct nspt_proc_event {
	struct nspt_event e;
	__u32 args_len; /* bytes in args: NUL-separated argv */
	__u32 pad;
	char args[NSPT_ARGS_LEN];
};

/* A rename record: the common record (with the new comm) and the old comm. */
struct nspt_rename_event {
	struct nspt_event e;
	char old_comm[NSPT_COMM_LEN];
};

/* A signal record: the target (the subject), the sender, the signal. */
struct nspt_signal_event {
	struct nspt_event e;
	struct nspt_event sender; /* the task that sent it (current) */
	__u32 sig;
	__s32 result; /* enum trace_signal: 0 delivered, 1 ignored, 2 already
		       * pending, 3 queue overflow, 4 delivered without info */
};

/*
 * A cred record: the common record (with the credentials after the change)
 * and what they were before it.
 */
struct nspt_cred_event {
	struct nspt_event e;
	struct nspt_ids old;
	__s32 syscall; /* the system call's number: set*id, capset, prctl, seccomp, execve */
	__u32 pad;
};

/*
 * A cgroup made, and where: user space names the cgroup IDs of later records
 * with it even when the cgroup is gone by the time it reads them (a short
 * container under load). Its first fields are nspt_event's, so the type is
 * read at the same offset; nothing else is shared.
 */
struct nspt_cgroup_event {
	__u64 ktime_ns;
	__u32 type;      /* NSPT_CGROUP_MKDIR */
	__u32 root;      /* the hierarchy's ID (/proc/cgroups); 0 for cgroup v2 */
	__u64 id;        /* the cgroup's kernfs ID, as nspt_event.cgroup_id */
	__u32 cgroup_ns; /* the maker's cgroup namespace inode: the path is relative to its root */
	__u32 path_len;  /* bytes in path, without the NUL */
	char path[NSPT_CGROUP_PATH_LEN];
};

#endif /* NSPIDTRACE_H */
