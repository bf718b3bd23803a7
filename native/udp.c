/*
 * UDP sockets for the NAT (src/proxy/host-net.ts): what Node's dgram cannot do.
 *
 * - openUdpSocket(bindAddr?, { rcvBuf, sndBuf }, family?) makes a non-blocking datagram
 *   socket (IPv4, or IPv6-only for family 6) bound to an ephemeral port, with
 *   IP_RECVERR (IPV6_RECVERR) on: the kernel then queues every
 *   ICMP error it gets for a datagram we sent (port or host unreachable, TTL exceeded)
 *   on the socket's error queue, with the datagram's original destination. Without it
 *   Linux tells an unconnected UDP socket nothing at all (udp(7): "ICMP errors are
 *   only reported on connected sockets unless IP_RECVERR is set"), which is why a
 *   guest's datagram to a closed host port used to go unanswered.
 *   SO_RCVBUF/SO_SNDBUF are raised as far as net.core.rmem_max/wmem_max let an
 *   unprivileged process: a flood of datagrams then waits in the kernel while the
 *   event loop is busy, instead of being dropped at 208 KiB (about 90 full-size ones).
 * - udpSend(fd, data, dstAddr, dstPort) is one sendto(2), done at once (no request
 *   object, no copy, no address lookup on the next tick as dgram does). It returns
 *   null when sent, or the errno name when the datagram was dropped: "EAGAIN" or
 *   "ENOBUFS" when the send buffer is full (a router drops too), anything else when
 *   the kernel refused it. A pending ICMP error (IP_RECVERR sets sk_err as well) makes
 *   the next send fail once with that error, though the datagram was fine: that send
 *   is retried once, and the error itself is read from the error queue.
 * - FdPoller kind "udp" (poller.c) reads with un_udp_read_batch: recvmmsg(2) of up to
 *   UDP_SLOTS datagrams per call into thread-local 64 KiB slots (touched only as far
 *   as datagrams reach), each copied out into its own Buffer, with its source address
 *   and port; and, when the poll reports POLLERR, drains the error queue with
 *   un_udp_read_errors (recvmsg MSG_ERRQUEUE) into plain objects { origin, type, code,
 *   errno, dst, dstPort, offender } (origin 2 with ICMP's type/code, 3 with ICMPv6's).
 *   Sources come as text: the last one is kept, so a stream from one peer makes one
 *   string per batch, not one per datagram.
 *
 * Not here: dual-stack sockets (NAT64 uses an IPv4 socket of its own), connected sockets, GSO/GRO (UDP_SEGMENT), sendmmsg (each guest
 * datagram is sent as it arrives; batching them would hold them until the end of a
 * TAP read).
 */
#define _GNU_SOURCE
#include "inet.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define UDP_SLOTS 16
#define UDP_SLOT_LEN 65536

typedef struct {
  uint8_t *slots;
  struct mmsghdr msgs[UDP_SLOTS];
  struct iovec iov[UDP_SLOTS];
  un_sockaddr from[UDP_SLOTS];
} udp_scratch;

static __thread udp_scratch *scratch;

static void free_scratch(void *arg) {
  udp_scratch *s = arg;
  free(s->slots);
  free(s);
  if (scratch == s) scratch = NULL;
}

static udp_scratch *get_scratch(napi_env env) {
  if (scratch) return scratch;
  udp_scratch *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  /* large enough to be mmap'ed: pages are committed only where datagrams land */
  s->slots = malloc((size_t)UDP_SLOTS * UDP_SLOT_LEN);
  if (!s->slots) {
    free(s);
    return NULL;
  }
  napi_add_env_cleanup_hook(env, free_scratch, s);
  scratch = s;
  return s;
}

static void set_buffer_size(int fd, int opt, uint32_t want) {
  if (want == 0) return;
  int v = want > 0x7fffffff ? 0x7fffffff : (int)want;
  /* The kernel caps at net.core.[rw]mem_max without error; ignore a refusal too. */
  (void)setsockopt(fd, SOL_SOCKET, opt, &v, sizeof v);
}

/* openUdpSocket(bindAddr?: string | null, opts?: { rcvBuf?: number; sndBuf?: number }, family?: 4 | 6) -> fd */
static napi_value js_open_udp_socket(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int family;
  if (!un_get_family(env, argc >= 3 ? argv[2] : NULL, "family", &family)) return NULL;
  un_sockaddr sa;
  socklen_t salen;
  if (!un_get_sockaddr(env, argc >= 1 ? argv[0] : NULL, "bindAddr", true, family, &sa, &salen)) return NULL;
  uint32_t rcvbuf = 0, sndbuf = 0;
  if (argc >= 2 && !un_is_nullish(env, argv[1])) {
    napi_value v;
    napi_get_named_property(env, argv[1], "rcvBuf", &v);
    if (!un_is_nullish(env, v) && !un_get_uint32(env, v, "opts.rcvBuf", &rcvbuf)) return NULL;
    napi_get_named_property(env, argv[1], "sndBuf", &v);
    if (!un_is_nullish(env, v) && !un_get_uint32(env, v, "opts.sndBuf", &sndbuf)) return NULL;
  }
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    un_throw_errno(env, errno, "openUdpSocket", family == 6 ? "socket(AF_INET6, SOCK_DGRAM)" : "socket(AF_INET, SOCK_DGRAM)",
                   NULL);
    return NULL;
  }
  int one = 1;
  bool ok = family == 6 ? setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) == 0 &&
                              setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof one) == 0
                        : setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one) == 0;
  if (!ok) {
    int e = errno;
    close(fd);
    un_throw_errno(env, e, "openUdpSocket", family == 6 ? "setsockopt(IPV6_RECVERR)" : "setsockopt(IP_RECVERR)", NULL);
    return NULL;
  }
  set_buffer_size(fd, SO_RCVBUF, rcvbuf);
  set_buffer_size(fd, SO_SNDBUF, sndbuf);
  return un_bind_or_close(env, fd, &sa, salen, "openUdpSocket");
}

/* errors a pending ICMP report (sk_err) hands to the next send instead of its own */
static bool is_reported_icmp_error(int e) {
  return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == EHOSTDOWN || e == ENONET ||
         e == EPROTO || e == ECONNRESET;
}

/* udpSend(fd, data: Buffer, dstAddr: string, dstPort: number) -> null | errno name */
static napi_value js_udp_send(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 4) {
    un_throw_type(env, "ERR_MISSING_ARGS", "udpSend(fd, data, dstAddr, dstPort) needs four arguments");
    return NULL;
  }
  int32_t fd;
  uint32_t port;
  void *data;
  size_t len;
  un_sockaddr sa;
  socklen_t salen;
  if (!un_get_int32(env, argv[0], "fd", &fd) || !un_get_buffer(env, argv[1], "data", &data, &len) ||
      !un_get_sockaddr(env, argv[2], "dstAddr", false, 4, &sa, &salen) || !un_get_uint32(env, argv[3], "dstPort", &port))
    return NULL;
  if (port > 65535) {
    un_throw_range(env, "ERR_OUT_OF_RANGE", "dstPort must be 0..65535");
    return NULL;
  }
  un_sockaddr_set_port(&sa, (uint16_t)port);
  ssize_t n;
  int tries = 0;
  for (;;) {
    n = sendto(fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL, &sa.sa, salen);
    if (n >= 0) break;
    if (errno == EINTR) continue;
    if (is_reported_icmp_error(errno) && tries++ == 0) continue;
    break;
  }
  napi_value out;
  if (n >= 0) {
    napi_get_null(env, &out);
    return out;
  }
  char s[16];
  napi_create_string_utf8(env, un_errno_name(errno, s, sizeof s), NAPI_AUTO_LENGTH, &out);
  return out;
}

/* whether two peers' addresses (not ports) are the same */
static bool same_address(const un_sockaddr *a, const un_sockaddr *b) {
  if (a->sa.sa_family != b->sa.sa_family) return false;
  if (a->sa.sa_family == AF_INET) return a->in4.sin_addr.s_addr == b->in4.sin_addr.s_addr;
  return memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, sizeof a->in6.sin6_addr) == 0;
}

static uint16_t port_of(const un_sockaddr *a) {
  return ntohs(a->sa.sa_family == AF_INET6 ? a->in6.sin6_port : a->in4.sin_port);
}

int un_udp_read_batch(napi_env env, int fd, uint32_t max, napi_value *datagrams, napi_value *sources,
                      napi_value *ports, double *bytes, int *err) {
  udp_scratch *s = get_scratch(env);
  *err = 0;
  if (!s) {
    *err = ENOMEM;
    return 0;
  }
  uint32_t count = 0;
  un_sockaddr last_addr;
  napi_value last_addr_v = NULL;
  int reported = 0;
  while (count < max) {
    unsigned int want = max - count < UDP_SLOTS ? max - count : UDP_SLOTS;
    for (unsigned int i = 0; i < want; i++) {
      s->iov[i].iov_base = s->slots + (size_t)i * UDP_SLOT_LEN;
      s->iov[i].iov_len = UDP_SLOT_LEN;
      memset(&s->msgs[i].msg_hdr, 0, sizeof s->msgs[i].msg_hdr);
      s->msgs[i].msg_hdr.msg_iov = &s->iov[i];
      s->msgs[i].msg_hdr.msg_iovlen = 1;
      s->msgs[i].msg_hdr.msg_name = &s->from[i];
      s->msgs[i].msg_hdr.msg_namelen = sizeof s->from[i];
      s->msgs[i].msg_len = 0;
    }
    int n = recvmmsg(fd, s->msgs, want, MSG_DONTWAIT, NULL);
    if (n < 0) {
      if (errno == EINTR) continue;
      /* a pending ICMP report surfaces here once; the error queue has the details */
      if (is_reported_icmp_error(errno) && reported++ < 8) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) *err = errno;
      break;
    }
    if (n == 0) break;
    if (!*datagrams) {
      napi_create_array(env, datagrams);
      napi_create_array(env, sources);
      napi_create_array(env, ports);
    }
    for (int i = 0; i < n; i++) {
      napi_value buf, port;
      size_t len = s->msgs[i].msg_len;
      if (napi_create_buffer_copy(env, len, s->iov[i].iov_base, NULL, &buf) != napi_ok) {
        *err = ENOMEM;
        return (int)count;
      }
      if (!last_addr_v || !same_address(&s->from[i], &last_addr)) {
        last_addr_v = un_sockaddr_string(env, &s->from[i]);
        last_addr = s->from[i];
      }
      napi_create_uint32(env, port_of(&s->from[i]), &port);
      napi_set_element(env, *datagrams, count, buf);
      napi_set_element(env, *sources, count, last_addr_v);
      napi_set_element(env, *ports, count, port);
      *bytes += (double)len;
      count++;
    }
    if ((unsigned int)n < want) break;
  }
  return (int)count;
}

static void set_u32(napi_env env, napi_value o, const char *k, uint32_t v) {
  napi_value x;
  napi_create_uint32(env, v, &x);
  napi_set_named_property(env, o, k, x);
}

int un_udp_read_errors(napi_env env, int fd, uint32_t max, napi_value *reports) {
  uint32_t count = 0;
  while (count < max) {
    /* an ICMP error quotes at most 576 bytes of IP, so this is all the kernel has */
    uint8_t payload[576];
    union {
      uint8_t buf[CMSG_SPACE(sizeof(struct sock_extended_err) + sizeof(struct sockaddr_in6))];
      struct cmsghdr align;
    } control;
    un_sockaddr dst;
    struct iovec iov = {.iov_base = payload, .iov_len = sizeof payload};
    struct msghdr m;
    memset(&m, 0, sizeof m);
    memset(&dst, 0, sizeof dst);
    m.msg_name = &dst;
    m.msg_namelen = sizeof dst;
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control.buf;
    m.msg_controllen = sizeof control.buf;
    ssize_t n = recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      bool v4 = c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR;
      bool v6 = c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR;
      if (!v4 && !v6) continue;
      struct sock_extended_err ee;
      memcpy(&ee, CMSG_DATA(c), sizeof ee);
      un_sockaddr off;
      memset(&off, 0, sizeof off);
      size_t off_len = v6 ? sizeof off.in6 : sizeof off.in4;
      if (c->cmsg_len >= CMSG_LEN(sizeof ee + off_len))
        memcpy(&off, CMSG_DATA(c) + sizeof ee, off_len); /* SO_EE_OFFENDER */
      if (!*reports) napi_create_array(env, reports);
      napi_value o;
      napi_create_object(env, &o);
      set_u32(env, o, "origin", ee.ee_origin);
      set_u32(env, o, "type", ee.ee_type);
      set_u32(env, o, "code", ee.ee_code);
      set_u32(env, o, "errno", ee.ee_errno);
      /* the datagram's own payload bytes the report carried (the kernel quotes what ICMP quoted) */
      set_u32(env, o, "length", (uint32_t)n);
      napi_set_named_property(env, o, "dst", un_sockaddr_string(env, &dst));
      set_u32(env, o, "dstPort", port_of(&dst));
      bool known = off.sa.sa_family == AF_INET || off.sa.sa_family == AF_INET6;
      napi_set_named_property(env, o, "offender", un_sockaddr_string(env, known ? &off : &dst));
      napi_set_element(env, *reports, count++, o);
    }
  }
  if (count == 0) {
    /* POLLERR with an empty queue: clear sk_err so the poll does not fire again for it */
    int e = 0;
    socklen_t l = sizeof e;
    (void)getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l);
  }
  return (int)count;
}

bool un_init_udp(napi_env env, napi_value exports) {
  return un_set_function(env, exports, "openUdpSocket", js_open_udp_socket) &&
         un_set_function(env, exports, "udpSend", js_udp_send);
}
