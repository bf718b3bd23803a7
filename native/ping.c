/*
 * Unprivileged ICMP echo ("ping sockets"): socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP), or
 * for IPv6 socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6) (openPingSocket's `family` 6).
 *
 * The kernel lets a process open one only when one of its groups lies inside
 * net.ipv4.ping_group_range of the socket's network namespace (per netns; the
 * default "1 0" allows nobody), otherwise socket() fails with EACCES. With such a
 * socket the process sends ICMP echo requests (type 8, code 0; ICMPv6 type 128; anything
 * else is EINVAL; the same sysctl governs both families) and receives only the echo replies matching the socket's identifier:
 *   - the kernel overwrites the echo identifier with the socket's "port", which is
 *     chosen at bind time (openPingSocket always binds, port 0 = kernel's pick) and
 *     readable with pingSocketIdent(); the NAT maps guest identifiers onto it;
 *   - the kernel fills the ICMP (ICMPv6: with the pseudo-header) checksum on send; replies arrive without IP header,
 *     with the identifier as sent by the peer (= the socket's ident).
 * Replies are read by an FdPoller of kind "ping" (recvfrom, with source address).
 *
 * Not here: raw sockets, IP_RECVERR error queues.
 */
#define _GNU_SOURCE
#include "inet.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* openPingSocket(bindAddr?: string, family?: 4 | 6) -> fd */
static napi_value js_open_ping_socket(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int family;
  if (!un_get_family(env, argc >= 2 ? argv[1] : NULL, "family", &family)) return NULL;
  un_sockaddr sa;
  socklen_t salen;
  if (!un_get_sockaddr(env, argc >= 1 ? argv[0] : NULL, "bindAddr", true, family, &sa, &salen)) return NULL;
  int fd = family == 6 ? socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMPV6)
                       : socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_ICMP);
  if (fd < 0) {
    int e = errno;
    un_throw_errno(env, e, "openPingSocket",
                   family == 6 ? "socket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6)"
                               : "socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)",
                   e == EACCES ? "ICMP ping sockets are not allowed for this process's groups: see sysctl "
                                 "net.ipv4.ping_group_range (per network namespace)"
                               : NULL);
    return NULL;
  }
  return un_bind_or_close(env, fd, &sa, salen, "openPingSocket");
}

/* pingSocketIdent(fd) -> the echo identifier the kernel writes into requests */
static napi_value js_ping_socket_ident(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd;
  if (argc < 1) {
    un_throw_type(env, "ERR_MISSING_ARGS", "pingSocketIdent(fd) needs one argument");
    return NULL;
  }
  if (!un_get_int32(env, argv[0], "fd", &fd)) return NULL;
  un_sockaddr sa;
  socklen_t len = sizeof sa;
  if (getsockname(fd, &sa.sa, &len) < 0) {
    un_throw_errno(env, errno, "pingSocketIdent", "getsockname", NULL);
    return NULL;
  }
  napi_value out;
  napi_create_uint32(env, ntohs(sa.sa.sa_family == AF_INET6 ? sa.in6.sin6_port : sa.in4.sin_port), &out);
  return out;
}

/*
 * sendPing(fd, dstAddr, icmpMessage) -> true when sent, false when the socket buffer
 * is full (EAGAIN; the caller drops, as a router would). Other errors throw with code.
 */
static napi_value js_send_ping(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) {
    un_throw_type(env, "ERR_MISSING_ARGS", "sendPing(fd, dstAddr, icmpMessage) needs three arguments");
    return NULL;
  }
  int32_t fd;
  un_sockaddr sa;
  socklen_t salen;
  void *data;
  size_t len;
  if (!un_get_int32(env, argv[0], "fd", &fd) || !un_get_sockaddr(env, argv[1], "dstAddr", false, 4, &sa, &salen) ||
      !un_get_buffer(env, argv[2], "icmpMessage", &data, &len))
    return NULL;
  ssize_t n;
  do {
    n = sendto(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL, &sa.sa, salen);
  } while (n < 0 && errno == EINTR);
  napi_value out;
  if (n < 0) {
    int e = errno;
    if (e == EAGAIN || e == EWOULDBLOCK || e == ENOBUFS) {
      napi_get_boolean(env, false, &out);
      return out;
    }
    un_throw_errno(env, e, "sendPing", "sendto",
                   e == EINVAL ? "the message must be an ICMP echo request (type 8, or 128 for ICMPv6; code 0) of at least 8 bytes, "
                                 "to an address of the socket's family" : NULL);
    return NULL;
  }
  napi_get_boolean(env, true, &out);
  return out;
}

bool un_init_ping(napi_env env, napi_value exports) {
  return un_set_function(env, exports, "openPingSocket", js_open_ping_socket) &&
         un_set_function(env, exports, "pingSocketIdent", js_ping_socket_ident) &&
         un_set_function(env, exports, "sendPing", js_send_ping);
}
