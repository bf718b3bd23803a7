/* Socket addresses (IPv4 or IPv6) for ping.c and udp.c: see inet.h. */
#define _GNU_SOURCE
#include "inet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

bool un_get_sockaddr(napi_env env, napi_value v, const char *name, bool optional, int family, un_sockaddr *sa,
                     socklen_t *len) {
  memset(sa, 0, sizeof *sa);
  if (optional && (v == NULL || un_is_nullish(env, v))) {
    if (family == 6) {
      sa->in6.sin6_family = AF_INET6;
      sa->in6.sin6_addr = in6addr_any;
      *len = sizeof sa->in6;
    } else {
      sa->in4.sin_family = AF_INET;
      sa->in4.sin_addr.s_addr = htonl(INADDR_ANY);
      *len = sizeof sa->in4;
    }
    return true;
  }
  char s[INET6_ADDRSTRLEN + 1];
  if (!un_get_string(env, v, name, s, sizeof s)) return false;
  if (strchr(s, ':') != NULL) {
    sa->in6.sin6_family = AF_INET6;
    if (inet_pton(AF_INET6, s, &sa->in6.sin6_addr) != 1) {
      char msg[160];
      snprintf(msg, sizeof msg, "%s must be an IPv4 or IPv6 address", name);
      un_throw_type(env, "ERR_INVALID_ARG_VALUE", msg);
      return false;
    }
    *len = sizeof sa->in6;
    return true;
  }
  sa->in4.sin_family = AF_INET;
  *len = sizeof sa->in4;
  return un_get_ipv4(env, v, name, &sa->in4.sin_addr.s_addr);
}

void un_sockaddr_set_port(un_sockaddr *sa, uint16_t port) {
  if (sa->sa.sa_family == AF_INET6) sa->in6.sin6_port = htons(port);
  else sa->in4.sin_port = htons(port);
}

napi_value un_sockaddr_string(napi_env env, const un_sockaddr *sa) {
  char s[INET6_ADDRSTRLEN] = "0.0.0.0";
  if (sa->sa.sa_family == AF_INET6) inet_ntop(AF_INET6, &sa->in6.sin6_addr, s, sizeof s);
  else if (sa->sa.sa_family == AF_INET) inet_ntop(AF_INET, &sa->in4.sin_addr, s, sizeof s);
  napi_value out;
  napi_create_string_latin1(env, s, NAPI_AUTO_LENGTH, &out);
  return out;
}

bool un_get_family(napi_env env, napi_value v, const char *name, int *family) {
  *family = 4;
  if (v == NULL || un_is_nullish(env, v)) return true;
  uint32_t f;
  if (!un_get_uint32(env, v, name, &f)) return false;
  if (f != 4 && f != 6) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be 4 or 6", name);
    un_throw_range(env, "ERR_OUT_OF_RANGE", msg);
    return false;
  }
  *family = (int)f;
  return true;
}

napi_value un_bind_or_close(napi_env env, int fd, const un_sockaddr *sa, socklen_t len, const char *what) {
  if (bind(fd, &sa->sa, len) < 0) {
    int e = errno;
    close(fd);
    un_throw_errno(env, e, what, "bind", NULL);
    return NULL;
  }
  napi_value out;
  napi_create_int32(env, fd, &out);
  return out;
}
