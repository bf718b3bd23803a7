/*
 * nettool: the small network client the e2e tests and the benchmark run inside a
 * guest (busybox has no UDP nc, and a shell loop of busybox processes measures fork
 * under TCG rather than the network). Built with `gcc -static -O2`; no libraries.
 *
 *   nettool udp HOST PORT COUNT SIZE TIMEOUT_MS   COUNT datagrams one at a time, each
 *       waits for its echo; prints "udp sent= ok= bad= lost= p50_us= p99_us="
 *   nettool rr HOST PORT COUNT SIZE               one TCP connection, COUNT request/
 *       response round trips of SIZE bytes against an echo server; "rr ok= p50_us= p99_us="
 *   nettool crr HOST PORT COUNT                   COUNT sequential connections, each
 *       sends one byte, reads the echo and closes; "crr ok= fail= elapsed_us= per_s="
 *   nettool conc HOST PORT COUNT                  opens COUNT connections, keeps all of
 *       them open, then sends an 8-byte id on each and reads it back; "conc open= ok="
 *   nettool connect HOST PORT TIMEOUT_MS          one connect; "connect result=ok|refused|
 *       reset|unreachable|timeout|error errno= ms="
 *   nettool udpprobe HOST PORT TIMEOUT_MS         one datagram on a connected UDP socket,
 *       then one recv; "udpprobe result=reply|refused|unreachable|timeout|error errno=
 *       from= icmp= ms=" (from/icmp: who sent the ICMP error and its type/code, read
 *       from the error queue with IP_RECVERR)
 *
 * Exit status: 0 when every operation succeeded, 1 otherwise, 2 for bad usage. Every
 * wait is bounded (poll timeouts), so a lost packet or a hung peer cannot hang a test.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/errqueue.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, long n, int p) {
  if (n <= 0) return 0;
  long i = (n * p) / 100;
  if (i >= n) i = n - 1;
  return v[i];
}

static struct sockaddr_in addr_of(const char *host, const char *port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)atoi(port));
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
    fprintf(stderr, "nettool: bad IPv4 address %s\n", host);
    exit(2);
  }
  return a;
}

/* Waits up to timeout_ms for fd to become readable/writable; 1 ready, 0 timeout, -1 error. */
static int wait_fd(int fd, short ev, int timeout_ms) {
  struct pollfd p = {fd, ev, 0};
  for (;;) {
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    return r;
  }
}

/* Reads exactly n bytes with a per-read timeout; 0 on success, -1 otherwise. */
static int read_full(int fd, char *buf, size_t n, int timeout_ms) {
  size_t got = 0;
  while (got < n) {
    if (wait_fd(fd, POLLIN, timeout_ms) <= 0) return -1;
    ssize_t r = read(fd, buf + got, n - got);
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

static int write_full(int fd, const char *buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = write(fd, buf + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    done += (size_t)r;
  }
  return 0;
}

/* Connects with a timeout; returns the fd (blocking again) or -1 with errno set. */
static int connect_to(const struct sockaddr_in *a, int timeout_ms) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  if (connect(fd, (const struct sockaddr *)a, sizeof *a) < 0) {
    if (errno != EINPROGRESS) {
      int e = errno;
      close(fd);
      errno = e;
      return -1;
    }
    int r = wait_fd(fd, POLLOUT, timeout_ms);
    if (r <= 0) {
      close(fd);
      errno = r == 0 ? ETIMEDOUT : errno;
      return -1;
    }
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      close(fd);
      errno = err;
      return -1;
    }
  }
  fcntl(fd, F_SETFL, fl);
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

static int cmd_udp(const struct sockaddr_in *a, long count, long size, int timeout_ms) {
  if (size < 8 || size > 65000) size = size < 8 ? 8 : 65000;
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0 || connect(fd, (const struct sockaddr *)a, sizeof *a) < 0) {
    printf("udp error errno=%d\n", errno);
    return 1;
  }
  char *out = malloc((size_t)size), *in = malloc((size_t)size + 1);
  uint64_t *lat = calloc((size_t)count + 1, sizeof *lat);
  long ok = 0, bad = 0, lost = 0;
  for (long i = 0; i < count; i++) {
    for (long j = 0; j < size; j++) out[j] = (char)('a' + (i + j) % 26);
    memcpy(out, &i, sizeof i);
    uint64_t t0 = now_us();
    if (send(fd, out, (size_t)size, 0) != size) {
      lost++;
      continue;
    }
    /* Late echoes of earlier datagrams are skipped until this one's arrives or time is up. */
    int matched = 0;
    for (;;) {
      uint64_t spent = (now_us() - t0) / 1000;
      if ((long)spent >= timeout_ms) break;
      if (wait_fd(fd, POLLIN, timeout_ms - (int)spent) <= 0) break;
      ssize_t r = recv(fd, in, (size_t)size + 1, 0);
      if (r < 0) break; /* e.g. ICMP port unreachable turned into ECONNREFUSED */
      long seq;
      memcpy(&seq, in, sizeof seq);
      if (r >= (ssize_t)sizeof seq && seq < i) continue;
      matched = (r == size && memcmp(in, out, (size_t)size) == 0) ? 1 : -1;
      break;
    }
    if (matched == 1) lat[ok++] = now_us() - t0;
    else if (matched == -1) bad++;
    else lost++;
  }
  qsort(lat, (size_t)ok, sizeof *lat, cmp_u64);
  printf("udp sent=%ld ok=%ld bad=%ld lost=%ld p50_us=%llu p99_us=%llu\n", count, ok, bad, lost,
         (unsigned long long)pct(lat, ok, 50), (unsigned long long)pct(lat, ok, 99));
  return ok == count ? 0 : 1;
}

static int cmd_rr(const struct sockaddr_in *a, long count, long size) {
  if (size < 1) size = 1;
  int fd = connect_to(a, 5000);
  if (fd < 0) {
    printf("rr error errno=%d\n", errno);
    return 1;
  }
  char *out = malloc((size_t)size), *in = malloc((size_t)size);
  uint64_t *lat = calloc((size_t)count + 1, sizeof *lat);
  long ok = 0;
  for (long i = 0; i < count; i++) {
    memset(out, 'a' + (int)(i % 26), (size_t)size);
    uint64_t t0 = now_us();
    if (write_full(fd, out, (size_t)size) < 0 || read_full(fd, in, (size_t)size, 5000) < 0) break;
    if (memcmp(in, out, (size_t)size) != 0) break;
    lat[ok++] = now_us() - t0;
  }
  close(fd);
  qsort(lat, (size_t)ok, sizeof *lat, cmp_u64);
  printf("rr ok=%ld p50_us=%llu p99_us=%llu\n", ok, (unsigned long long)pct(lat, ok, 50),
         (unsigned long long)pct(lat, ok, 99));
  return ok == count ? 0 : 1;
}

static int cmd_crr(const struct sockaddr_in *a, long count) {
  long ok = 0, fail = 0;
  int first_errno = 0;
  uint64_t t0 = now_us();
  for (long i = 0; i < count; i++) {
    int fd = connect_to(a, 5000);
    char c = 'x', r = 0;
    if (fd >= 0 && write_full(fd, &c, 1) == 0 && read_full(fd, &r, 1, 5000) == 0 && r == c) {
      ok++;
    } else {
      if (!first_errno) first_errno = errno ? errno : -1;
      fail++;
    }
    if (fd >= 0) close(fd);
  }
  uint64_t el = now_us() - t0;
  printf("crr ok=%ld fail=%ld first_errno=%d elapsed_us=%llu per_s=%.0f\n", ok, fail, first_errno,
         (unsigned long long)el, el ? (double)ok * 1e6 / (double)el : 0.0);
  return ok == count ? 0 : 1;
}

static int cmd_conc(const struct sockaddr_in *a, long count) {
  int *fds = calloc((size_t)count, sizeof *fds);
  long open_n = 0, ok = 0;
  for (long i = 0; i < count; i++) {
    fds[i] = connect_to(a, 5000);
    if (fds[i] >= 0) open_n++;
  }
  /* All are open at once now; the server sees `count` simultaneous connections. */
  for (long i = 0; i < count; i++) {
    if (fds[i] < 0) continue;
    uint64_t id = 0x6e657474000000ull + (uint64_t)i;
    if (write_full(fds[i], (const char *)&id, sizeof id) < 0) {
      close(fds[i]);
      fds[i] = -1;
    }
  }
  for (long i = 0; i < count; i++) {
    if (fds[i] < 0) continue;
    uint64_t id = 0x6e657474000000ull + (uint64_t)i, back = 0;
    if (read_full(fds[i], (char *)&back, sizeof back, 10000) == 0 && back == id) ok++;
    close(fds[i]);
  }
  printf("conc open=%ld ok=%ld\n", open_n, ok);
  return ok == count ? 0 : 1;
}

static int cmd_connect(const struct sockaddr_in *a, int timeout_ms) {
  uint64_t t0 = now_us();
  int fd = connect_to(a, timeout_ms);
  int e = fd < 0 ? errno : 0;
  const char *what = "ok";
  if (fd < 0) {
    switch (e) {
      case ECONNREFUSED: what = "refused"; break;
      case ECONNRESET: what = "reset"; break;
      case ENETUNREACH:
      case EHOSTUNREACH: what = "unreachable"; break;
      case ETIMEDOUT: what = "timeout"; break;
      default: what = "error";
    }
  } else {
    close(fd);
  }
  printf("connect result=%s errno=%d ms=%llu\n", what, e, (unsigned long long)((now_us() - t0) / 1000));
  return fd >= 0 ? 0 : 1;
}

static int cmd_udpprobe(const struct sockaddr_in *a, int timeout_ms) {
  uint64_t t0 = now_us();
  int one = 1, fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0 || setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one) < 0 ||
      connect(fd, (const struct sockaddr *)a, sizeof *a) < 0) {
    printf("udpprobe result=error errno=%d from=- icmp=- ms=0\n", errno);
    return 1;
  }
  char buf[512] = "nettool udpprobe";
  const char *what = "timeout";
  int e = 0;
  if (send(fd, buf, 16, 0) < 0) {
    e = errno;
  } else if (wait_fd(fd, POLLIN, timeout_ms) > 0) {
    if (recv(fd, buf, sizeof buf, 0) >= 0) what = "reply";
    else e = errno;
  }
  if (e) what = e == ECONNREFUSED ? "refused" : (e == EHOSTUNREACH || e == ENETUNREACH) ? "unreachable" : "error";
  /* the ICMP message behind the error: its source and type/code */
  char from[INET_ADDRSTRLEN] = "-", icmp[16] = "-";
  union {
    char buf[CMSG_SPACE(sizeof(struct sock_extended_err) + sizeof(struct sockaddr_in))];
    struct cmsghdr align;
  } ctl;
  struct msghdr m = {.msg_iov = &(struct iovec){.iov_base = buf, .iov_len = sizeof buf}, .msg_iovlen = 1,
                     .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
  if (e && recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) >= 0) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level != IPPROTO_IP || c->cmsg_type != IP_RECVERR) continue;
      struct sock_extended_err *ee = (struct sock_extended_err *)CMSG_DATA(c);
      struct sockaddr_in *off = (struct sockaddr_in *)SO_EE_OFFENDER(ee);
      if (ee->ee_origin == SO_EE_ORIGIN_ICMP) {
        inet_ntop(AF_INET, &off->sin_addr, from, sizeof from);
        snprintf(icmp, sizeof icmp, "%u/%u", ee->ee_type, ee->ee_code);
      }
    }
  }
  close(fd);
  printf("udpprobe result=%s errno=%d from=%s icmp=%s ms=%llu\n", what, e, from, icmp,
         (unsigned long long)((now_us() - t0) / 1000));
  return strcmp(what, "reply") == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc < 4) {
    fprintf(stderr, "usage: nettool udp|rr|crr|conc|connect|udpprobe HOST PORT ...\n");
    return 2;
  }
  struct sockaddr_in a = addr_of(argv[2], argv[3]);
  long n1 = argc > 4 ? atol(argv[4]) : 0, n2 = argc > 5 ? atol(argv[5]) : 0;
  long n3 = argc > 6 ? atol(argv[6]) : 0;
  if (!strcmp(argv[1], "udp") && argc == 7) return cmd_udp(&a, n1, n2, (int)n3);
  if (!strcmp(argv[1], "rr") && argc == 6) return cmd_rr(&a, n1, n2);
  if (!strcmp(argv[1], "crr") && argc == 5) return cmd_crr(&a, n1);
  if (!strcmp(argv[1], "conc") && argc == 5) return cmd_conc(&a, n1);
  if (!strcmp(argv[1], "connect") && argc == 5) return cmd_connect(&a, (int)n1);
  if (!strcmp(argv[1], "udpprobe") && argc == 5) return cmd_udpprobe(&a, (int)n1);
  fprintf(stderr, "nettool: bad arguments\n");
  return 2;
}
