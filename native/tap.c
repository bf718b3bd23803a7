/*
 * TAP devices: open /dev/net/tun as an Ethernet TAP (IFF_TAP | IFF_NO_PI, optionally
 * IFF_VNET_HDR with a 12-byte virtio_net_hdr_mrg_rxbuf header), non-blocking and
 * close-on-exec, either in this process's network namespace or in another one.
 *
 * In another namespace (openTapInNetns):
 *   - netns only (we hold CAP_SYS_ADMIN over it, e.g. root and `ip netns add`): a
 *     short-lived pthread joins the netns with setns(2) — namespaces are per thread —
 *     opens and configures the TAP there and exits. A tun file is bound to the netns
 *     of the task that opened it, and file descriptors are process-wide, so the main
 *     thread keeps the fd and its own namespaces stay untouched.
 *   - with a user namespace (rootless: the netns belongs to a user namespace we
 *     created, e.g. `unshare -Urn`): setns(2) into a user namespace is refused to
 *     multithreaded processes (EINVAL), and Node is always multithreaded. So a forked
 *     child (single-threaded by construction) joins the user namespace, then the
 *     netns, opens the TAP and passes the fd back over a socketpair (SCM_RIGHTS), then
 *     _exit()s. Between fork and _exit the child only makes raw system calls.
 *
 * Deliberately not here: addresses, routes, MTU, link up — the caller runs `ip`.
 * Multi-queue TAPs are not supported (opts.multiQueue must be false or absent).
 */
#define _GNU_SOURCE
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* sizeof(struct virtio_net_hdr_mrg_rxbuf): what QEMU's virtio-net uses with a TAP. */
#define UN_VNET_HDR_LEN 12
#define UN_NS_PATH_MAX 4096

struct tap_request {
  char name[IFNAMSIZ];
  bool vnet_hdr;
  char ns_path[UN_NS_PATH_MAX];
  char userns_path[UN_NS_PATH_MAX]; /* empty: no user namespace */
  /* results */
  int fd;
  int err;
  const char *failed_call;
  char actual_name[IFNAMSIZ];
};

/* Opens and configures the TAP in the calling thread's current netns. */
static void open_tap_here(struct tap_request *r) {
  r->fd = -1;
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    r->err = errno;
    r->failed_call = "open /dev/net/tun";
    return;
  }
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (r->vnet_hdr ? IFF_VNET_HDR : 0);
  memcpy(ifr.ifr_name, r->name, IFNAMSIZ - 1);
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    r->err = errno;
    r->failed_call = "ioctl TUNSETIFF";
    close(fd);
    return;
  }
  if (r->vnet_hdr) {
    int sz = UN_VNET_HDR_LEN;
    if (ioctl(fd, TUNSETVNETHDRSZ, &sz) < 0) {
      r->err = errno;
      r->failed_call = "ioctl TUNSETVNETHDRSZ";
      close(fd);
      return;
    }
  }
  memcpy(r->actual_name, ifr.ifr_name, IFNAMSIZ);
  r->actual_name[IFNAMSIZ - 1] = 0;
  r->err = 0;
  r->fd = fd;
}

static void *netns_thread(void *arg) {
  struct tap_request *r = arg;
  int nsfd = open(r->ns_path, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) {
    r->err = errno;
    r->failed_call = "open netns path";
    return NULL;
  }
  if (setns(nsfd, CLONE_NEWNET) < 0) {
    r->err = errno;
    r->failed_call = "setns CLONE_NEWNET";
    close(nsfd);
    return NULL;
  }
  close(nsfd);
  open_tap_here(r);
  return NULL;
}

/* The rootless path: see the header comment. Runs on the calling (main) thread. */
static void open_via_child(struct tap_request *r) {
  r->fd = -1;
  int userfd = open(r->userns_path, O_RDONLY | O_CLOEXEC);
  if (userfd < 0) {
    r->err = errno;
    r->failed_call = "open user namespace path";
    return;
  }
  int netfd = open(r->ns_path, O_RDONLY | O_CLOEXEC);
  if (netfd < 0) {
    r->err = errno;
    r->failed_call = "open netns path";
    close(userfd);
    return;
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
    r->err = errno;
    r->failed_call = "socketpair";
    close(userfd);
    close(netfd);
    return;
  }
  pid_t pid = fork();
  if (pid < 0) {
    r->err = errno;
    r->failed_call = "fork";
    close(userfd);
    close(netfd);
    close(sv[0]);
    close(sv[1]);
    return;
  }
  if (pid == 0) {
    /* Child: raw system calls only, then _exit. Reports {errno, call index} or the fd. */
    int report[2] = {0, 0};
    int tapfd = -1;
    if (setns(userfd, CLONE_NEWUSER) < 0) {
      report[0] = errno;
      report[1] = 1;
    } else if (setns(netfd, CLONE_NEWNET) < 0) {
      report[0] = errno;
      report[1] = 2;
    } else {
      open_tap_here(r); /* writes only into the child's copy of *r */
      if (r->fd < 0) {
        report[0] = r->err;
        report[1] = 3;
      } else {
        tapfd = r->fd;
      }
    }
    char payload[sizeof report + IFNAMSIZ];
    memcpy(payload, report, sizeof report);
    memcpy(payload + sizeof report, r->actual_name, IFNAMSIZ);
    struct iovec iov = {payload, sizeof payload};
    union {
      struct cmsghdr h;
      char buf[CMSG_SPACE(sizeof(int))];
    } ctl;
    memset(&ctl, 0, sizeof ctl);
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (tapfd >= 0) {
      mh.msg_control = ctl.buf;
      mh.msg_controllen = sizeof ctl.buf;
      struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int));
      memcpy(CMSG_DATA(c), &tapfd, sizeof(int));
    }
    ssize_t n = sendmsg(sv[1], &mh, MSG_NOSIGNAL);
    _exit(n == (ssize_t)sizeof payload ? 0 : 1);
  }
  close(sv[1]);
  close(userfd);
  close(netfd);

  int report[2] = {EIO, 0};
  char payload[sizeof report + IFNAMSIZ];
  union {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
  } ctl;
  struct iovec iov = {payload, sizeof payload};
  struct msghdr mh;
  memset(&mh, 0, sizeof mh);
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = ctl.buf;
  mh.msg_controllen = sizeof ctl.buf;
  ssize_t n;
  do {
    n = recvmsg(sv[0], &mh, MSG_CMSG_CLOEXEC);
  } while (n < 0 && errno == EINTR);
  int recv_err = n < 0 ? errno : 0;
  close(sv[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  int tapfd = -1;
  if (n == (ssize_t)sizeof payload) {
    memcpy(report, payload, sizeof report);
    memcpy(r->actual_name, payload + sizeof report, IFNAMSIZ);
    r->actual_name[IFNAMSIZ - 1] = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(&tapfd, CMSG_DATA(c), sizeof(int));
  } else {
    report[0] = recv_err ? recv_err : EIO;
    report[1] = 4;
  }
  if (tapfd >= 0) {
    r->fd = tapfd;
    r->err = 0;
    return;
  }
  static const char *calls[] = {"child", "setns CLONE_NEWUSER", "setns CLONE_NEWNET", "open TAP in child",
                                "recvmsg from child"};
  r->err = report[0] ? report[0] : EIO;
  r->failed_call = calls[report[1] >= 0 && report[1] <= 4 ? report[1] : 0];
  if (report[1] == 3) r->failed_call = "open/ioctl TAP (in child)";
}

static bool read_tap_opts(napi_env env, napi_value opts, struct tap_request *r) {
  bool vnet = false, mq = false;
  if (!un_get_bool_prop(env, opts, "vnetHdr", false, &vnet)) return false;
  if (!un_get_bool_prop(env, opts, "multiQueue", false, &mq)) return false;
  if (mq) {
    un_throw_plain(env, "ERR_UNSUPPORTED", "multi-queue TAP devices are not supported (multiQueue must be false)");
    return false;
  }
  r->vnet_hdr = vnet;
  return true;
}

static napi_value tap_result(napi_env env, struct tap_request *r, const char *what) {
  if (r->fd < 0) {
    const char *hint = NULL;
    if (r->err == EPERM) hint = "creating a TAP needs CAP_NET_ADMIN in the namespace that owns the netns";
    else if (r->err == ENOENT && strstr(r->failed_call, "tun")) hint = "is the tun module loaded?";
    else if (r->err == EBUSY) hint = "the interface exists and is in use, or exists with other flags";
    un_throw_errno(env, r->err, what, r->failed_call, hint);
    return NULL;
  }
  napi_value out, fdv, namev;
  if (napi_create_object(env, &out) != napi_ok || napi_create_int32(env, r->fd, &fdv) != napi_ok ||
      napi_create_string_utf8(env, r->actual_name, NAPI_AUTO_LENGTH, &namev) != napi_ok) {
    close(r->fd);
    return NULL;
  }
  napi_set_named_property(env, out, "fd", fdv);
  napi_set_named_property(env, out, "name", namev);
  return out;
}

/* openTap(name: string, opts: { vnetHdr: boolean; multiQueue?: false }) -> { fd, name } */
static napi_value js_open_tap(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct tap_request r;
  memset(&r, 0, sizeof r);
  if (argc < 2) {
    un_throw_type(env, "ERR_MISSING_ARGS", "openTap(name, opts) needs two arguments");
    return NULL;
  }
  if (!un_get_string(env, argv[0], "name", r.name, sizeof r.name)) return NULL;
  if (!read_tap_opts(env, argv[1], &r)) return NULL;
  open_tap_here(&r);
  return tap_result(env, &r, "openTap");
}

/* openTapInNetns(nsPath, userNsPath | null, name, opts) -> { fd, name } */
static napi_value js_open_tap_in_netns(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4) {
    un_throw_type(env, "ERR_MISSING_ARGS", "openTapInNetns(nsPath, userNsPath, name, opts) needs four arguments");
    return NULL;
  }
  struct tap_request *r = calloc(1, sizeof *r);
  if (!r) {
    un_throw_errno(env, ENOMEM, "openTapInNetns", "calloc", NULL);
    return NULL;
  }
  napi_value result = NULL;
  if (!un_get_string(env, argv[0], "nsPath", r->ns_path, sizeof r->ns_path)) goto out;
  if (!un_is_nullish(env, argv[1]) && !un_get_string(env, argv[1], "userNsPath", r->userns_path, sizeof r->userns_path))
    goto out;
  if (!un_get_string(env, argv[2], "name", r->name, sizeof r->name)) goto out;
  if (!read_tap_opts(env, argv[3], r)) goto out;
  r->fd = -1;
  if (r->userns_path[0]) {
    open_via_child(r);
  } else {
    pthread_t t;
    int e = pthread_create(&t, NULL, netns_thread, r);
    if (e != 0) {
      un_throw_errno(env, e, "openTapInNetns", "pthread_create", NULL);
      goto out;
    }
    pthread_join(t, NULL);
  }
  result = tap_result(env, r, "openTapInNetns");
out:
  free(r);
  return result;
}

/* setOffloads(fd, flags): TUNSETOFFLOAD with TUN_F_* bits (0 turns all off). */
static napi_value js_set_offloads(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  uint32_t flags;
  if (argc < 2) {
    un_throw_type(env, "ERR_MISSING_ARGS", "setOffloads(fd, flags) needs two arguments");
    return NULL;
  }
  if (!un_get_int32(env, argv[0], "fd", &fd) || !un_get_uint32(env, argv[1], "flags", &flags)) return NULL;
  if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0) {
    un_throw_errno(env, errno, "setOffloads", "ioctl TUNSETOFFLOAD",
                   errno == EINVAL ? "the kernel refused these TUN_F_* flags (TSO needs TUN_F_CSUM)" : NULL);
    return NULL;
  }
  return NULL;
}

/* closeFd(fd): for fds never handed to an FdPoller (which closes its own). */
static napi_value js_close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc < 1) {
    un_throw_type(env, "ERR_MISSING_ARGS", "closeFd(fd) needs one argument");
    return NULL;
  }
  if (!un_get_int32(env, argv[0], "fd", &fd)) return NULL;
  if (close(fd) < 0 && errno != EINTR) {
    un_throw_errno(env, errno, "closeFd", "close", NULL);
    return NULL;
  }
  return NULL;
}

bool un_init_tap(napi_env env, napi_value exports) {
  napi_value c;
  if (napi_get_named_property(env, exports, "constants", &c) != napi_ok) return false;
  un_set_uint32(env, c, "TUN_F_CSUM", TUN_F_CSUM);
  un_set_uint32(env, c, "TUN_F_TSO4", TUN_F_TSO4);
  un_set_uint32(env, c, "TUN_F_TSO6", TUN_F_TSO6);
  un_set_uint32(env, c, "TUN_F_TSO_ECN", TUN_F_TSO_ECN);
  un_set_uint32(env, c, "VNET_HDR_LEN", UN_VNET_HDR_LEN);
  un_set_uint32(env, c, "IFNAMSIZ", IFNAMSIZ);
  return un_set_function(env, exports, "openTap", js_open_tap) &&
         un_set_function(env, exports, "openTapInNetns", js_open_tap_in_netns) &&
         un_set_function(env, exports, "setOffloads", js_set_offloads) &&
         un_set_function(env, exports, "closeFd", js_close_fd);
}
