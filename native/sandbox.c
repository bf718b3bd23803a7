/*
 * usernet_sandbox: the process confines itself once start-up is done (every listener,
 * TAP, namespace join and file it needs is open). A separate small addon (its own
 * target in binding.gyp) so it loads without the network addon. The policy (which
 * paths, which parts) is built by src/sandbox.ts from the Config; this file applies it.
 *
 * Theory of operation
 * - no_new_privs (PR_SET_NO_NEW_PRIVS): execve can no longer gain privileges (setuid
 *   binaries, file capabilities); required for unprivileged seccomp and Landlock.
 * - seccomp: a deny-list, not an allow-list. Node, V8, libuv, glibc's resolver and the
 *   children usernet starts (smbd, guestfwd commands) use a large and version-dependent
 *   set of syscalls; an allow-list that misses one breaks the service at run time in
 *   a path no test reached. The list below is what a user-mode network service never
 *   needs and what exploits reach for: debugging other processes (ptrace,
 *   process_vm_*), the mount table, kernel modules and kexec, bpf and perf, the kernel
 *   keyring, io_uring (its operations bypass seccomp), new namespaces (setns, unshare,
 *   clone with CLONE_NEW*), userfaultfd (a race-widening tool), file handles,
 *   clock/host-name/swap/reboot administration, and TIOCSTI/TIOCLINUX ioctls (typing
 *   into a terminal). Denied calls return EPERM (not a kill) so Node reports them as
 *   errors that get logged; clone3 returns ENOSYS, since its flags are in memory
 *   seccomp cannot read, and glibc then falls back to clone, whose flags are checked.
 *   Syscalls of another ABI (i386 via int 0x80, x32) are all denied: a deny-list
 *   keyed on x86-64 numbers would not match them. The filter is installed with
 *   SECCOMP_FILTER_FLAG_TSYNC, so every thread (V8's platform workers, libuv's pool)
 *   gets it at once, and every process started later inherits it.
 * - Landlock (where the kernel has it; ABI from landlock_create_ruleset): the ruleset
 *   handles every filesystem right the ABI knows (1: read/write/execute/create/remove,
 *   2: rename across directories, 3: truncate, 5: device ioctls) and grants per path
 *   what the caller asks, as letters: r read files and list directories, w write and
 *   truncate files, x execute, c create and remove entries (files, directories,
 *   sockets, fifos, symlinks; renames), i ioctl on devices. A rule on a non-directory
 *   gets only the file rights. A path that cannot be opened is reported, not fatal.
 *   Network rights (ABI 4) and scopes (ABI 6) are not used: NAT connects anywhere,
 *   hostfwd binds what the API asks, and usernet signals the smbd it started.
 * - Landlock restricts only the calling thread (and threads it creates later); the
 *   kernel here has no way to restrict a whole process at once (that is ABI 8's
 *   LANDLOCK_RESTRICT_SELF_TSYNC). So every other thread is made to restrict itself:
 *   each thread listed in /proc/self/task gets a signal whose handler calls
 *   landlock_restrict_self on the same ruleset, the caller waits until every thread
 *   has answered, scans again for threads created meanwhile, and restricts itself
 *   last. The signal is glibc's SIGSETXID (33), borrowed for the moment: glibc uses it
 *   for the same job (setuid in every thread) and therefore lets no thread block it,
 *   while Node keeps one thread with every ordinary signal blocked. Our handler takes
 *   the kernel action glibc installed (flags, restorer) with only the handler
 *   replaced, passes signals that are not ours on to glibc's handler, and glibc's
 *   action is put back before returning. Nothing in usernet calls set*id meanwhile.
 *   A thread that does not answer within 2 s is reported (the domain then covers
 *   only part of the process: the caller must treat that as a failure).
 * Limits: Linux on x86-64 and arm64 with glibc; the filter's list is fixed at build
 * time; Landlock leaves unix-socket connect, signals and already-open files alone.
 */
#define _GNU_SOURCE
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* --- Landlock ABI (defined here: Debian 12's headers predate ABI 3) ------------- */

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule 445
#define __NR_landlock_restrict_self 446
#endif

struct un_ll_ruleset_attr {
  uint64_t handled_access_fs;
};
struct un_ll_path_beneath {
  uint64_t allowed_access;
  int32_t parent_fd;
} __attribute__((packed));

#define UN_LL_CREATE_RULESET_VERSION (1U << 0)
#define UN_LL_RULE_PATH_BENEATH 1

#define LL_EXECUTE (1ULL << 0)
#define LL_WRITE_FILE (1ULL << 1)
#define LL_READ_FILE (1ULL << 2)
#define LL_READ_DIR (1ULL << 3)
#define LL_REMOVE_DIR (1ULL << 4)
#define LL_REMOVE_FILE (1ULL << 5)
#define LL_MAKE_CHAR (1ULL << 6)
#define LL_MAKE_DIR (1ULL << 7)
#define LL_MAKE_REG (1ULL << 8)
#define LL_MAKE_SOCK (1ULL << 9)
#define LL_MAKE_FIFO (1ULL << 10)
#define LL_MAKE_BLOCK (1ULL << 11)
#define LL_MAKE_SYM (1ULL << 12)
#define LL_REFER (1ULL << 13)
#define LL_TRUNCATE (1ULL << 14)
#define LL_IOCTL_DEV (1ULL << 15)
#define LL_FILE_RIGHTS (LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE | LL_TRUNCATE | LL_IOCTL_DEV)

static uint64_t ll_handled(int abi) {
  uint64_t h = (1ULL << 13) - 1; /* ABI 1 */
  if (abi >= 2) h |= LL_REFER;
  if (abi >= 3) h |= LL_TRUNCATE;
  if (abi >= 5) h |= LL_IOCTL_DEV;
  return h;
}

/* "rwxci" → rights (before masking to what the ABI handles); false on another letter */
static bool ll_rights(const char *letters, uint64_t *out) {
  uint64_t r = 0;
  for (const char *p = letters; *p; p++) {
    switch (*p) {
      case 'r': r |= LL_READ_FILE | LL_READ_DIR; break;
      case 'w': r |= LL_WRITE_FILE | LL_TRUNCATE; break;
      case 'x': r |= LL_EXECUTE; break;
      case 'c':
        r |= LL_MAKE_REG | LL_MAKE_DIR | LL_MAKE_SOCK | LL_MAKE_FIFO | LL_MAKE_SYM | LL_REMOVE_FILE |
             LL_REMOVE_DIR | LL_REFER;
        break;
      case 'i': r |= LL_IOCTL_DEV; break;
      default: return false;
    }
  }
  *out = r;
  return true;
}

static int landlock_abi(int *err) {
  long v = syscall(__NR_landlock_create_ruleset, NULL, 0, UN_LL_CREATE_RULESET_VERSION);
  if (v < 0) {
    *err = errno;
    return 0;
  }
  *err = 0;
  return (int)v;
}

/* --- every thread restricts itself --------------------------------------------- */

#define UN_SIGSETXID 33
#define UN_MAX_THREADS 4096
#define UN_PENDING 0
#define UN_DONE 1 /* restricted, or gone before it could be */
/* other values: UN_FAILED_BASE + errno */
#define UN_FAILED_BASE 2

struct un_ksigaction {
  void *handler;
  unsigned long flags;
  void *restorer;
  uint64_t mask;
};

static struct {
  pid_t tid;
  _Atomic int state;
} slots[UN_MAX_THREADS];
static _Atomic int slot_count;
static _Atomic int round_active;
static int round_fd = -1;
static struct un_ksigaction glibc_action;

static void on_restrict_signal(int sig, siginfo_t *si, void *ctx) {
  int saved = errno;
  if (atomic_load(&round_active) && si->si_code == SI_TKILL && si->si_pid == getpid()) {
    pid_t me = (pid_t)syscall(SYS_gettid);
    int n = atomic_load(&slot_count);
    for (int i = 0; i < n; i++) {
      if (slots[i].tid != me || atomic_load(&slots[i].state) != UN_PENDING) continue;
      int st = UN_DONE;
      if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || syscall(__NR_landlock_restrict_self, round_fd, 0) != 0)
        st = UN_FAILED_BASE + errno;
      atomic_store(&slots[i].state, st);
      errno = saved;
      return;
    }
  }
  /* not ours: glibc's own set*id broadcast */
  if (glibc_action.flags & SA_SIGINFO) ((void (*)(int, siginfo_t *, void *))glibc_action.handler)(sig, si, ctx);
  errno = saved;
}

static bool known_tid(pid_t tid) {
  int n = atomic_load(&slot_count);
  for (int i = 0; i < n; i++)
    if (slots[i].tid == tid) return true;
  return false;
}

/* Signals every thread not asked yet; returns how many were new, -1 on a full table. */
static int signal_new_threads(pid_t self, int *err) {
  DIR *d = opendir("/proc/self/task");
  if (!d) {
    *err = errno;
    return -1;
  }
  int added = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    pid_t tid = (pid_t)atoi(e->d_name);
    if (tid == self || known_tid(tid)) continue;
    int i = atomic_load(&slot_count);
    if (i >= UN_MAX_THREADS) {
      closedir(d);
      *err = E2BIG;
      return -1;
    }
    slots[i].tid = tid;
    atomic_store(&slots[i].state, UN_PENDING);
    atomic_store(&slot_count, i + 1);
    if (syscall(SYS_tgkill, getpid(), tid, UN_SIGSETXID) != 0) atomic_store(&slots[i].state, UN_DONE); /* gone */
    added++;
  }
  closedir(d);
  return added;
}

/* Waits for every slot; false (with the first stuck tid) after the deadline. */
static bool wait_slots(long timeout_ms, pid_t *stuck) {
  for (long waited = 0;; waited++) {
    bool all = true;
    int n = atomic_load(&slot_count);
    for (int i = 0; i < n; i++) {
      if (atomic_load(&slots[i].state) != UN_PENDING) continue;
      /* a thread that exited before running the handler never will */
      char path[64];
      snprintf(path, sizeof path, "/proc/self/task/%d", (int)slots[i].tid);
      if (access(path, F_OK) != 0) {
        atomic_store(&slots[i].state, UN_DONE);
        continue;
      }
      all = false;
      *stuck = slots[i].tid;
    }
    if (all) return true;
    if (waited >= timeout_ms) return false;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
}

/*
 * Restricts every thread of the process with ruleset fd `fd`, the caller last.
 * Returns 0, or an errno with a message in `why`; *threads is how many threads were
 * restricted (the caller included).
 */
static int restrict_all_threads(int fd, int *threads, char *why, size_t why_len) {
#if !defined(__GLIBC__) || !(defined(__x86_64__) || defined(__aarch64__))
  (void)fd;
  *threads = 0;
  snprintf(why, why_len, "reaching every thread needs glibc on x86-64 or arm64");
  return ENOTSUP;
#else
  *threads = 0;
  struct un_ksigaction ours;
  if (syscall(SYS_rt_sigaction, UN_SIGSETXID, NULL, &glibc_action, 8) != 0) {
    snprintf(why, why_len, "rt_sigaction(SIGSETXID): %s", strerror(errno));
    return errno;
  }
#ifdef SA_RESTORER
  if (!(glibc_action.flags & SA_SIGINFO) || !(glibc_action.flags & SA_RESTORER)) {
    snprintf(why, why_len, "glibc's SIGSETXID handler is not installed; cannot reach every thread");
    return ENOTSUP;
  }
#endif
  ours = glibc_action;
  ours.handler = (void *)on_restrict_signal;
  round_fd = fd;
  atomic_store(&slot_count, 0);
  atomic_store(&round_active, 1);
  if (syscall(SYS_rt_sigaction, UN_SIGSETXID, &ours, NULL, 8) != 0) {
    atomic_store(&round_active, 0);
    snprintf(why, why_len, "rt_sigaction(SIGSETXID): %s", strerror(errno));
    return errno;
  }
  pid_t self = (pid_t)syscall(SYS_gettid);
  int rc = 0;
  pid_t stuck = 0;
  /* threads created by a thread not yet restricted show up on the next scan */
  for (int round = 0; round < 16; round++) {
    int err = 0;
    int added = signal_new_threads(self, &err);
    if (added < 0) {
      rc = err;
      snprintf(why, why_len, "listing /proc/self/task: %s", strerror(err));
      break;
    }
    if (!wait_slots(2000, &stuck)) {
      rc = ETIMEDOUT;
      snprintf(why, why_len, "thread %d did not answer within 2 s", (int)stuck);
      break;
    }
    if (added == 0) break;
    if (round == 15) {
      rc = EAGAIN;
      snprintf(why, why_len, "threads kept appearing");
    }
  }
  atomic_store(&round_active, 0);
  syscall(SYS_rt_sigaction, UN_SIGSETXID, &glibc_action, NULL, 8);
  int n = atomic_load(&slot_count);
  for (int i = 0; i < n; i++) {
    int st = atomic_load(&slots[i].state);
    if (st == UN_DONE) {
      (*threads)++;
    } else if (st >= UN_FAILED_BASE && rc == 0) {
      rc = st - UN_FAILED_BASE;
      snprintf(why, why_len, "thread %d: landlock_restrict_self: %s", (int)slots[i].tid, strerror(rc));
    }
  }
  /* the caller last: it is the one that could create unrestricted threads meanwhile */
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || syscall(__NR_landlock_restrict_self, fd, 0) != 0) {
    if (rc == 0) {
      rc = errno;
      snprintf(why, why_len, "landlock_restrict_self: %s", strerror(rc));
    }
  } else {
    (*threads)++;
  }
  return rc;
#endif
}

/* --- seccomp ------------------------------------------------------------------- */

#if defined(__x86_64__)
#define UN_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define UN_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

static const int denied_syscalls[] = {
#define D(name) __NR_##name,
#ifdef __NR_ptrace
    D(ptrace)
#endif
#ifdef __NR_process_vm_readv
    D(process_vm_readv) D(process_vm_writev)
#endif
#ifdef __NR_kcmp
    D(kcmp)
#endif
#ifdef __NR_pidfd_getfd
    D(pidfd_getfd)
#endif
    D(mount) D(umount2) D(pivot_root) D(chroot)
#ifdef __NR_open_tree
    D(open_tree) D(move_mount) D(fsopen) D(fsconfig) D(fsmount) D(fspick)
#endif
#ifdef __NR_mount_setattr
    D(mount_setattr)
#endif
    D(kexec_load)
#ifdef __NR_kexec_file_load
    D(kexec_file_load)
#endif
    D(init_module) D(finit_module) D(delete_module)
#ifdef __NR_create_module
    D(create_module) D(get_kernel_syms) D(query_module)
#endif
    D(bpf) D(perf_event_open) D(keyctl) D(add_key) D(request_key) D(reboot) D(swapon) D(swapoff)
    D(setns) D(unshare) D(userfaultfd) D(open_by_handle_at) D(name_to_handle_at)
#ifdef __NR_io_uring_setup
    D(io_uring_setup) D(io_uring_enter) D(io_uring_register)
#endif
    D(acct) D(quotactl)
#ifdef __NR_quotactl_fd
    D(quotactl_fd)
#endif
    D(settimeofday) D(clock_settime) D(clock_adjtime) D(adjtimex) D(sethostname) D(setdomainname)
    D(syslog) D(vhangup)
#ifdef __NR_iopl
    D(iopl) D(ioperm)
#endif
#ifdef __NR_lookup_dcookie
    D(lookup_dcookie)
#endif
#ifdef __NR_uselib
    D(uselib) D(ustat) D(sysfs) D(_sysctl)
#endif
#ifdef __NR_nfsservctl
    D(nfsservctl)
#endif
#undef D
};
#define N_DENIED ((int)(sizeof denied_syscalls / sizeof denied_syscalls[0]))

#define UN_CLONE_NEW_ANY                                                                                    \
  (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP | \
   0x00000080 /* CLONE_NEWTIME */)

static int install_seccomp(char *why, size_t why_len) {
#ifndef UN_AUDIT_ARCH
  snprintf(why, why_len, "no seccomp filter for this architecture");
  return ENOTSUP;
#else
  struct sock_filter f[2 * N_DENIED + 32];
  int n = 0;
#define S(stmt) (f[n++] = (struct sock_filter)stmt)
  const uint32_t eperm = SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA);
  const uint32_t enosys = SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA);
  S(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
  S(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, UN_AUDIT_ARCH, 1, 0));
  S(BPF_STMT(BPF_RET | BPF_K, eperm));
  S(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)));
#ifdef __x86_64__
  S(BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000 /* __X32_SYSCALL_BIT */, 0, 1));
  S(BPF_STMT(BPF_RET | BPF_K, eperm));
#endif
  for (int i = 0; i < N_DENIED; i++) {
    S(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)denied_syscalls[i], 0, 1));
    S(BPF_STMT(BPF_RET | BPF_K, eperm));
  }
#ifdef __NR_clone3
  S(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1));
  S(BPF_STMT(BPF_RET | BPF_K, enosys));
#endif
  /* clone(flags, ...): the low 32 bits of the first argument (little-endian) */
  S(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 3));
  S(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])));
  S(BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, UN_CLONE_NEW_ANY, 0, 5));
  S(BPF_STMT(BPF_RET | BPF_K, eperm));
  /* ioctl(fd, cmd, ...): cmd is 32 bits */
  S(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 3));
  S(BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])));
  S(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCSTI, 2, 0));
  S(BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCLINUX, 1, 0));
  S(BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  S(BPF_STMT(BPF_RET | BPF_K, eperm));
#undef S
  struct sock_fprog prog = {.len = (unsigned short)n, .filter = f};
  long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
  if (r != 0) {
    int err = r > 0 ? ESRCH : errno;
    if (r > 0) snprintf(why, why_len, "thread %ld cannot take the filter (TSYNC)", r);
    else snprintf(why, why_len, "seccomp(SET_MODE_FILTER, TSYNC): %s", strerror(err));
    return err;
  }
  return 0;
#endif
}

/* --- N-API --------------------------------------------------------------------- */

static void set_prop(napi_env env, napi_value obj, const char *key, napi_value v) {
  napi_set_named_property(env, obj, key, v);
}
static void set_str(napi_env env, napi_value obj, const char *key, const char *s) {
  napi_value v;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  set_prop(env, obj, key, v);
}
static void set_int(napi_env env, napi_value obj, const char *key, int64_t n) {
  napi_value v;
  napi_create_int64(env, n, &v);
  set_prop(env, obj, key, v);
}
static void set_bool(napi_env env, napi_value obj, const char *key, bool b) {
  napi_value v;
  napi_get_boolean(env, b, &v);
  set_prop(env, obj, key, v);
}
static void set_errno_name(napi_env env, napi_value obj, int err) {
  char scratch[16];
  set_str(env, obj, "code", un_errno_name(err, scratch, sizeof scratch));
}

/* probe() → { landlockAbi, landlockCode?, noNewPrivs, seccompMode, deniedSyscalls } */
static napi_value js_probe(napi_env env, napi_callback_info info) {
  napi_value out;
  napi_create_object(env, &out);
  int err;
  int abi = landlock_abi(&err);
  set_int(env, out, "landlockAbi", abi);
  if (abi == 0) set_str(env, out, "landlockCode", un_errno_name(err, (char[16]){0}, 16));
  set_int(env, out, "noNewPrivs", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
  set_int(env, out, "seccompMode", prctl(PR_GET_SECCOMP, 0, 0, 0, 0));
  set_int(env, out, "deniedSyscalls", N_DENIED);
  return out;
}

#define MAX_RULES 64

/*
 * apply({ noNewPrivs, seccomp, landlock: [{ path, access }] | null }) → a report:
 * { noNewPrivs: bool, seccomp?: { applied, denied, error? },
 *   landlock?: { abi, applied, threads, error?, rules: [{ path, access, code? }] } }
 * Throws only for malformed arguments; what the kernel refuses is in the report.
 */
static napi_value js_apply(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value opts;
  if (napi_get_cb_info(env, info, &argc, &opts, NULL, NULL) != napi_ok || argc < 1) {
    un_throw_type(env, "ERR_INVALID_ARG_TYPE", "apply(options) needs an options object");
    return NULL;
  }
  bool want_nnp, want_seccomp;
  if (!un_get_bool_prop(env, opts, "noNewPrivs", true, &want_nnp) ||
      !un_get_bool_prop(env, opts, "seccomp", false, &want_seccomp))
    return NULL;
  napi_value rules_v;
  napi_get_named_property(env, opts, "landlock", &rules_v);
  bool want_landlock = !un_is_nullish(env, rules_v);
  static char paths[MAX_RULES][4096];
  uint64_t rights[MAX_RULES];
  char letters[MAX_RULES][8];
  uint32_t n_rules = 0;
  if (want_landlock) {
    bool is_array;
    napi_is_array(env, rules_v, &is_array);
    if (!is_array) {
      un_throw_type(env, "ERR_INVALID_ARG_TYPE", "landlock must be an array of { path, access } or null");
      return NULL;
    }
    napi_get_array_length(env, rules_v, &n_rules);
    if (n_rules > MAX_RULES) {
      un_throw_range(env, "ERR_OUT_OF_RANGE", "landlock: at most 64 rules");
      return NULL;
    }
    for (uint32_t i = 0; i < n_rules; i++) {
      napi_value rule, p, a;
      napi_get_element(env, rules_v, i, &rule);
      napi_get_named_property(env, rule, "path", &p);
      napi_get_named_property(env, rule, "access", &a);
      if (!un_get_string(env, p, "landlock rule path", paths[i], sizeof paths[i]) ||
          !un_get_string(env, a, "landlock rule access", letters[i], sizeof letters[i]))
        return NULL;
      if (!ll_rights(letters[i], &rights[i])) {
        un_throw_range(env, "ERR_OUT_OF_RANGE", "landlock rule access: letters from r, w, x, c, i");
        return NULL;
      }
    }
  }

  napi_value out;
  napi_create_object(env, &out);
  char why[256];

  bool nnp_ok = true;
  if (want_nnp || want_seccomp || want_landlock) nnp_ok = prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0;
  set_bool(env, out, "noNewPrivs", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 && nnp_ok);

  if (want_landlock) {
    napi_value ll, list;
    napi_create_object(env, &ll);
    napi_create_array_with_length(env, n_rules, &list);
    set_prop(env, ll, "rules", list);
    set_prop(env, out, "landlock", ll);
    int err;
    int abi = landlock_abi(&err);
    set_int(env, ll, "abi", abi);
    set_bool(env, ll, "applied", false);
    set_int(env, ll, "threads", 0);
    int fd = -1;
    if (abi == 0) {
      set_errno_name(env, ll, err);
      set_str(env, ll, "error",
              err == ENOSYS       ? "the kernel lacks Landlock"
              : err == EOPNOTSUPP ? "Landlock is built in but not enabled (boot with lsm=...,landlock)"
                                  : strerror(err));
    } else {
      struct un_ll_ruleset_attr attr = {.handled_access_fs = ll_handled(abi)};
      fd = (int)syscall(__NR_landlock_create_ruleset, &attr, sizeof attr, 0);
      if (fd < 0) {
        set_errno_name(env, ll, errno);
        snprintf(why, sizeof why, "landlock_create_ruleset: %s", strerror(errno));
        set_str(env, ll, "error", why);
      }
    }
    for (uint32_t i = 0; i < n_rules; i++) {
      napi_value r;
      napi_create_object(env, &r);
      set_str(env, r, "path", paths[i]);
      set_str(env, r, "access", letters[i]);
      napi_set_element(env, list, i, r);
      if (fd < 0) continue;
      int pfd = open(paths[i], O_PATH | O_CLOEXEC);
      if (pfd < 0) {
        set_errno_name(env, r, errno);
        continue;
      }
      struct stat st;
      uint64_t allowed = rights[i] & ll_handled(abi);
      if (fstat(pfd, &st) == 0 && !S_ISDIR(st.st_mode)) allowed &= LL_FILE_RIGHTS;
      struct un_ll_path_beneath pb = {.allowed_access = allowed, .parent_fd = pfd};
      if (allowed != 0 && syscall(__NR_landlock_add_rule, fd, UN_LL_RULE_PATH_BENEATH, &pb, 0) != 0)
        set_errno_name(env, r, errno);
      close(pfd);
    }
    if (fd >= 0) {
      int threads = 0;
      int rc = restrict_all_threads(fd, &threads, why, sizeof why);
      set_int(env, ll, "threads", threads);
      if (rc == 0) {
        set_bool(env, ll, "applied", true);
      } else {
        set_errno_name(env, ll, rc);
        set_str(env, ll, "error", why);
        /* some threads may be restricted already: say so rather than hide it */
        set_bool(env, ll, "partial", threads > 0);
      }
      close(fd);
    }
  }

  if (want_seccomp) {
    napi_value sc;
    napi_create_object(env, &sc);
    set_prop(env, out, "seccomp", sc);
    set_int(env, sc, "denied", N_DENIED);
    int rc = nnp_ok ? install_seccomp(why, sizeof why) : EPERM;
    if (!nnp_ok) snprintf(why, sizeof why, "no_new_privs could not be set");
    set_bool(env, sc, "applied", rc == 0);
    if (rc != 0) {
      set_errno_name(env, sc, rc);
      set_str(env, sc, "error", why);
    }
  }
  return out;
}

static napi_value init(napi_env env, napi_value exports) {
  if (!un_set_function(env, exports, "probe", js_probe) || !un_set_function(env, exports, "apply", js_apply))
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
