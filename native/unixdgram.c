/*
 * Unix datagram sockets, which Node's standard library does not have: VDE (Virtual
 * Distributed Ethernet, src/ports/vde-*.ts) carries one Ethernet frame per datagram on
 * them.
 *
 * - openUnixDgram(bindPath | null) makes a non-blocking, close-on-exec AF_UNIX
 *   SOCK_DGRAM socket, bound to bindPath when given (the file is created with the
 *   process umask; the caller chmods it and unlinks it when done). EADDRINUSE when
 *   the path exists: stale socket files are the caller's to judge.
 * - connectUnixDgram(fd, path) connects it: send(2)/write(2) then go to that peer
 *   only and, as Linux implements connected unix datagram sockets, only that peer's
 *   datagrams are received (unix_may_send refuses everyone else with EPERM), which
 *   is what makes a per-client data socket tell its client apart. It also makes
 *   POLLOUT wait for room in the peer's receive queue (net.unix.max_dgram_qlen), so
 *   FdPoller.waitWritable works as on a TAP.
 * Reading and writing is FdPoller kind "frames" (poller.c) with no vnet header: one
 * read(2) is one datagram (a longer one than its 64 KiB + 256 scratch is truncated,
 * which the caller sees as an over-long frame), one write(2) one datagram.
 *
 * Not here: abstract addresses, SCM_RIGHTS/credentials, SOCK_SEQPACKET.
 */
#define _GNU_SOURCE
#include "util.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* A pathname address; false (TypeError thrown) when the path is empty or too long. */
static bool get_unix_address(napi_env env, napi_value v, const char *name, struct sockaddr_un *sa) {
  memset(sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  if (!un_get_string(env, v, name, sa->sun_path, sizeof sa->sun_path)) return false;
  if (sa->sun_path[0] == '\0') {
    un_throw_type(env, "ERR_INVALID_ARG_VALUE", "a unix socket path must not be empty");
    return false;
  }
  return true;
}

/* openUnixDgram(bindPath?: string | null): number */
static napi_value js_open_unix_dgram(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  struct sockaddr_un sa;
  bool bind_it = argc >= 1 && !un_is_nullish(env, argv[0]);
  if (bind_it && !get_unix_address(env, argv[0], "bindPath", &sa)) return NULL;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    un_throw_errno(env, errno, "openUnixDgram", "socket", NULL);
    return NULL;
  }
  if (bind_it && bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
    int err = errno;
    close(fd);
    un_throw_errno(env, err, "openUnixDgram", "bind", NULL);
    return NULL;
  }
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}

/* connectUnixDgram(fd: number, path: string): void */
static napi_value js_connect_unix_dgram(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 2) {
    un_throw_type(env, "ERR_MISSING_ARGS", "connectUnixDgram(fd, path) needs two arguments");
    return NULL;
  }
  int32_t fd;
  struct sockaddr_un sa;
  if (!un_get_int32(env, argv[0], "fd", &fd) || !get_unix_address(env, argv[1], "path", &sa)) return NULL;
  int r;
  do {
    r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    un_throw_errno(env, errno, "connectUnixDgram", "connect", NULL);
    return NULL;
  }
  return NULL;
}

bool un_init_unixdgram(napi_env env, napi_value exports) {
  return un_set_function(env, exports, "openUnixDgram", js_open_unix_dgram) &&
         un_set_function(env, exports, "connectUnixDgram", js_connect_unix_dgram);
}
