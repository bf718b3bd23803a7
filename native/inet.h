/*
 * Socket addresses for the addon's datagram sockets (ping.c, udp.c), IPv4 or IPv6:
 * reading the address arguments JS passes, binding a fresh socket to them, and
 * writing a peer's address back as text.
 *
 * The family of an address is told by its text: a colon means IPv6 (inet_pton
 * AF_INET6, no zone index), else a dotted quad (IPv4). A socket's family is chosen
 * when it is opened (`family` 4 or 6), and a bind or destination of the other family
 * is refused by the kernel (EAFNOSUPPORT / EINVAL), never translated here.
 *
 * Convention as in util.h: a helper that returns false (or NULL) has thrown already.
 */
#ifndef USERNET_INET_H
#define USERNET_INET_H

#include "util.h"

#include <netinet/in.h>
#include <sys/socket.h>

typedef union {
  struct sockaddr sa;
  struct sockaddr_in in4;
  struct sockaddr_in6 in6;
} un_sockaddr;

/*
 * Fills *sa (zeroed, port 0) with the address text `v` (IPv4 or IPv6, see above) and
 * *len with its size. With `optional`, a missing (argc too small: pass NULL), null or
 * undefined `v` is the any address of `family` (4 or 6); without it that is a TypeError
 * naming `name`.
 */
bool un_get_sockaddr(napi_env env, napi_value v, const char *name, bool optional, int family, un_sockaddr *sa,
                     socklen_t *len);

/* Sets the port (host order) of an address filled by un_get_sockaddr. */
void un_sockaddr_set_port(un_sockaddr *sa, uint16_t port);

/* The address of *sa as text ("0.0.0.0" for an unknown family). */
napi_value un_sockaddr_string(napi_env env, const un_sockaddr *sa);

/* Reads an optional family argument (4 or 6; missing, null or undefined: 4). */
bool un_get_family(napi_env env, napi_value v, const char *name, int *family);

/* Binds `fd` to *sa and returns it as a JS number; on failure closes it and throws "<what>: bind failed". */
napi_value un_bind_or_close(napi_env env, int fd, const un_sockaddr *sa, socklen_t len, const char *what);

#endif
