/*
 * systemd's notification protocol (sd_notify(3)), without libsystemd: Node has no
 * unix datagram sockets, so this opens one and sends the state lines on it.
 *
 *   openNotifySocket(path) -> fd   socket(AF_UNIX, SOCK_DGRAM|SOCK_CLOEXEC) connected to
 *                                  NOTIFY_SOCKET; a leading '@' names an abstract socket
 *                                  (as sd_notify does). Connected once at start-up, so a
 *                                  later sandbox (Landlock) cannot stand in the way.
 *   notifySend(fd, text)           one datagram ("READY=1\nSTATUS=..."); throws with the
 *                                  errno (ECONNREFUSED when the manager has gone).
 * The sender's credentials are attached by the kernel (the manager sets SO_PASSCRED),
 * which is how systemd tells the main process's messages from others.
 */
#include "util.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static napi_value js_open_notify_socket(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  struct sockaddr_un sa;
  memset(&sa, 0, sizeof sa);
  sa.sun_family = AF_UNIX;
  char path[sizeof sa.sun_path + 1];
  if (!un_get_string(env, argv[0], "path", path, sizeof path)) return NULL;
  size_t len = strlen(path);
  if (len == 0 || len > sizeof sa.sun_path || (path[0] != '/' && path[0] != '@')) {
    un_throw_type(env, "ERR_INVALID_ARG_VALUE", "NOTIFY_SOCKET must be an absolute path or @abstract name");
    return NULL;
  }
  memcpy(sa.sun_path, path, len);
  if (path[0] == '@') sa.sun_path[0] = '\0';
  socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/' ? 1 : 0));
  if (salen > sizeof sa) salen = sizeof sa;
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    un_throw_errno(env, errno, "NOTIFY_SOCKET", "socket", NULL);
    return NULL;
  }
  if (connect(fd, (struct sockaddr *)&sa, salen) < 0) {
    int err = errno;
    close(fd);
    un_throw_errno(env, err, path, "connect", NULL);
    return NULL;
  }
  napi_value r;
  napi_create_int32(env, fd, &r);
  return r;
}

static napi_value js_notify_send(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  int32_t fd;
  if (!un_get_int32(env, argv[0], "fd", &fd)) return NULL;
  char text[4096];
  if (!un_get_string(env, argv[1], "text", text, sizeof text)) return NULL;
  ssize_t n;
  do n = send(fd, text, strlen(text), MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    un_throw_errno(env, errno, "NOTIFY_SOCKET", "send", NULL);
    return NULL;
  }
  return NULL;
}

bool un_init_notify(napi_env env, napi_value exports) {
  return un_set_function(env, exports, "openNotifySocket", js_open_notify_socket) &&
         un_set_function(env, exports, "notifySend", js_notify_send);
}
