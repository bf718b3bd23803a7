/*
 * nettool: the small network client the e2e tests and the benchmark run inside a
 * guest (busybox has no UDP nc, and a shell loop of busybox processes measures fork
 * under TCG rather than the network). Built with `gcc -static -O2`; no libraries.
 *
 *   nettool udp HOST PORT COUNT SIZE TIMEOUT_MS   COUNT datagrams one at a time, each
 *       waits for its echo; prints "udp sent= ok= bad= lost= p50_us= p99_us="
 *   nettool rr HOST PORT COUNT SIZE               one TCP connection, COUNT request/
 *       response round trips of SIZE bytes against an echo server; "rr ok= p50_us= p99_us="
 *   nettool crr HOST PORT COUNT [MAX_MS]          COUNT sequential connections, each
 *       sends one byte, reads the echo and closes (the client closes first); "crr ok=
 *       fail= first_errno= elapsed_us= per_s= tried= refused= timeout= other=". With
 *       MAX_MS it stops starting connections after MAX_MS (tried= says how many it began)
 *   nettool crrsc HOST PORT COUNT [MAX_MS]        the same against a server that answers
 *       and closes (HTTP/1.0 style): one byte, its echo, then the server's FIN before the
 *       client closes, so the server side closes first; "crrsc ok= fail= ..." as crr
 *   nettool hold HOST PORT COUNT MAX_HOLD_MS [MAX_OPEN_MS]   opens COUNT connections one
 *       after the other and keeps them all open (gives up after 5 failures in a row, or
 *       when MAX_OPEN_MS have passed), then sends one byte on each and reads its echo
 *       (20 s for all); "hold open= ok= fail= first_errno= open_us= verify_us= capped=0|1"
 *       (ok: flows that echoed; capped: the time ran out). Holds them until stdin ends or
 *       MAX_HOLD_MS, closes them all and prints "hold-closed close_us=". Raises
 *       RLIMIT_NOFILE to the hard limit; beyond it connects fail with EMFILE
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
#include <sys/resource.h>
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

/* Failure tallies of the connection loops, by errno. */
struct fails {
  long refused, timeout, other;
  int first_errno;
};

static void count_fail(struct fails *f, int e) {
  if (!f->first_errno) f->first_errno = e ? e : -1;
  if (e == ECONNREFUSED) f->refused++;
  else if (e == ETIMEDOUT) f->timeout++;
  else f->other++;
}

/*
 * Sequential short connections. server_closes: after the echo the client waits (5 s at
 * most) for the server's FIN before it closes, so the server's side closes first, as
 * HTTP/1.0 and "Connection: close" servers do; otherwise the client closes first.
 */
static int cmd_crr(const struct sockaddr_in *a, long count, long max_ms, int server_closes) {
  long ok = 0, fail = 0, tried = 0;
  struct fails f = {0, 0, 0, 0};
  uint64_t t0 = now_us();
  for (long i = 0; i < count; i++) {
    if (max_ms > 0 && (now_us() - t0) / 1000 >= (uint64_t)max_ms) break;
    tried++;
    int fd = connect_to(a, 5000);
    if (fd >= 0) errno = 0; /* a connect in progress leaves EINPROGRESS behind */
    char c = 'x', r = 0;
    int good = fd >= 0 && write_full(fd, &c, 1) == 0 && read_full(fd, &r, 1, 5000) == 0 && r == c;
    if (good && server_closes) {
      /* the echo is followed by the server's FIN: read returns 0 */
      good = wait_fd(fd, POLLIN, 5000) > 0 && read(fd, &r, 1) == 0;
    }
    /* connected, but no echo (or no FIN): counted under other */
    if (fd >= 0 && !good && (!errno || errno == ETIMEDOUT)) errno = EIO;
    if (good) {
      ok++;
    } else {
      count_fail(&f, errno);
      fail++;
    }
    if (fd >= 0) close(fd);
  }
  uint64_t el = now_us() - t0;
  printf("%s ok=%ld fail=%ld first_errno=%d elapsed_us=%llu per_s=%.0f tried=%ld refused=%ld timeout=%ld "
         "other=%ld\n",
         server_closes ? "crrsc" : "crr", ok, fail, f.first_errno, (unsigned long long)el,
         el ? (double)ok * 1e6 / (double)el : 0.0, tried, f.refused, f.timeout, f.other);
  return ok == count ? 0 : 1;
}

/*
 * Many connections held at once. One process holds at most RLIMIT_NOFILE of them (the
 * caller runs several for more); the guest's ephemeral ports bound one destination's
 * share (~28,000 on Linux), so callers spread large counts over several ports.
 */
static int cmd_hold(const struct sockaddr_in *a, long count, long max_hold_ms, long max_open_ms) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  int *fds = calloc((size_t)count + 1, sizeof *fds);
  long open_n = 0, ok = 0, fail = 0, in_row = 0;
  struct fails f = {0, 0, 0, 0};
  int capped = 0;
  uint64_t t0 = now_us();
  for (long i = 0; i < count && in_row < 5; i++) {
    if (max_open_ms > 0 && (now_us() - t0) / 1000 >= (uint64_t)max_open_ms) {
      capped = 1;
      break;
    }
    int fd = connect_to(a, 3000);
    if (fd < 0) {
      count_fail(&f, errno);
      fail++;
      in_row++;
      if (errno == EMFILE || errno == ENFILE) break;
      continue;
    }
    in_row = 0;
    fds[open_n++] = fd;
  }
  uint64_t t1 = now_us();
  /* Every flow carries one byte each way; a flow the stack admitted but cannot relay
     does not count. All bytes go out first, then the echoes are read within 20 s. */
  char c = 'h', r = 0;
  for (long i = 0; i < open_n; i++) {
    if (write_full(fds[i], &c, 1) < 0) {
      close(fds[i]);
      fds[i] = -1;
    }
  }
  for (long i = 0; i < open_n; i++) {
    /* once the 20 s are spent, echoes that already arrived still count */
    long left = 20000 - (long)((now_us() - t1) / 1000);
    if (fds[i] >= 0 && read_full(fds[i], &r, 1, left > 0 ? (int)left : 0) == 0 && r == c) ok++;
  }
  uint64_t t2 = now_us();
  printf("hold open=%ld ok=%ld fail=%ld first_errno=%d open_us=%llu verify_us=%llu capped=%d\n", open_n, ok,
         fail, f.first_errno, (unsigned long long)(t1 - t0), (unsigned long long)(t2 - t1), capped);
  /* Held until the caller closes our stdin (or the time is up). */
  struct pollfd p = {0, POLLIN, 0};
  uint64_t h0 = now_us();
  for (;;) {
    long left = max_hold_ms - (long)((now_us() - h0) / 1000);
    if (left <= 0) break;
    int pr = poll(&p, 1, (int)left);
    if (pr < 0 && errno == EINTR) continue;
    if (pr == 0) break;
    char buf[64];
    if (read(0, buf, sizeof buf) <= 0) break;
  }
  uint64_t c0 = now_us();
  for (long i = 0; i < open_n; i++)
    if (fds[i] >= 0) close(fds[i]);
  printf("hold-closed close_us=%llu\n", (unsigned long long)(now_us() - c0));
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
    fprintf(stderr, "usage: nettool udp|rr|crr|crrsc|hold|conc|connect|udpprobe HOST PORT ...\n");
    return 2;
  }
  struct sockaddr_in a = addr_of(argv[2], argv[3]);
  long n1 = argc > 4 ? atol(argv[4]) : 0, n2 = argc > 5 ? atol(argv[5]) : 0;
  long n3 = argc > 6 ? atol(argv[6]) : 0;
  if (!strcmp(argv[1], "udp") && argc == 7) return cmd_udp(&a, n1, n2, (int)n3);
  if (!strcmp(argv[1], "rr") && argc == 6) return cmd_rr(&a, n1, n2);
  if (!strcmp(argv[1], "crr") && (argc == 5 || argc == 6)) return cmd_crr(&a, n1, n2, 0);
  if (!strcmp(argv[1], "crrsc") && (argc == 5 || argc == 6)) return cmd_crr(&a, n1, n2, 1);
  if (!strcmp(argv[1], "hold") && (argc == 6 || argc == 7)) return cmd_hold(&a, n1, n2, n3);
  if (!strcmp(argv[1], "conc") && argc == 5) return cmd_conc(&a, n1);
  if (!strcmp(argv[1], "connect") && argc == 5) return cmd_connect(&a, (int)n1);
  if (!strcmp(argv[1], "udpprobe") && argc == 5) return cmd_udpprobe(&a, (int)n1);
  fprintf(stderr, "nettool: bad arguments\n");
  return 2;
}
