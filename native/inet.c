/* IPv4 socket addresses for ping.c and udp.c: see inet.h. */
#define _GNU_SOURCE
#include "inet.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

bool un_get_sockaddr_in(napi_env env, napi_value v, const char *name, bool optional, struct sockaddr_in *sa) {
  memset(sa, 0, sizeof *sa);
  sa->sin_family = AF_INET;
  sa->sin_addr.s_addr = htonl(INADDR_ANY);
  if (optional && (v == NULL || un_is_nullish(env, v))) return true;
  return un_get_ipv4(env, v, name, &sa->sin_addr.s_addr);
}

napi_value un_bind_or_close(napi_env env, int fd, const struct sockaddr_in *sa, const char *what) {
  if (bind(fd, (const struct sockaddr *)sa, sizeof *sa) < 0) {
    int e = errno;
    close(fd);
    un_throw_errno(env, e, what, "bind", NULL);
    return NULL;
  }
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}
