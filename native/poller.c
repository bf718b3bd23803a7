/*
 * FdPoller: batched, non-blocking I/O on one fd (a TAP or a ping socket), driven by a
 * libuv uv_poll_t on Node's own event loop (no extra thread).
 *
 * Reading. When the fd is readable the poller reads packets in a loop — read(2) for
 * kind "frames", recvfrom(2) with the source address for kind "ping" — until EAGAIN
 * or maxBatch packets (default 64), copying each into a freshly allocated Buffer of
 * exactly its length (Buffers are never reused: frames handed to the hub are
 * immutable), then calls onBatch ONCE with all of them: one crossing into JS per
 * wake-up, not per packet. A ping socket's sources are IPv4 or IPv6 text, as its family. Whatever is left wakes the (level-triggered) poll again on
 * the next loop iteration, so a flood cannot starve the rest of the event loop.
 * With vnet headers (vnetHdrLen 10 or 12) each Buffer is the header followed by the
 * frame, as the kernel wrote them (parse with src/native/vnet-hdr.ts).
 *
 * Writing (kind "frames"). write(frames, headers?) writes each frame with one
 * write(2), or writev(2) of [header, frame] when vnetHdrLen > 0 — the header is
 * headers[i] when given (exactly vnetHdrLen bytes) and all zeroes otherwise (a plain,
 * fully checksummed frame). It stops at the first EAGAIN and returns the number of
 * frames consumed; a frame the kernel rejects for another reason (EIO while the link
 * is down, EINVAL for a malformed header) is consumed, dropped and counted in
 * stats(). waitWritable(cb) asks for one UV_WRITABLE notification.
 *
 * Kind "udp" (a socket from openUdpSocket, udp.c): reads are recvmmsg batches and
 * onBatch gets (datagrams, sourceAddresses, sourcePorts); POLLERR means ICMP reports
 * on the error queue (IP_RECVERR), which go to options.onReports as an array and do
 * not stop the poller.
 *
 * Errors. A read error other than EAGAIN/EINTR ends the wake-up's loop (after the
 * packets read so far are delivered) and goes to onError when given; a "frames" fd
 * then stops reading (a broken TAP would fire forever), a "ping" socket keeps going
 * (its errors are one-shot). A poll error (POLLERR) stops the poller until resume().
 * An exception thrown by a JS callback becomes an
 * uncaught exception (napi_fatal_exception); the poller's own state was settled
 * before the call, so it stays usable.
 *
 * Lifetime. The poller owns the fd from construction (if the constructor throws,
 * the caller still owns it). While open, the JS object is pinned (a strong
 * reference) so polling continues even if JS drops it. close() stops polling,
 * closes the fd, drops the callbacks and unpins the object; the native state is
 * freed once both the uv handle has closed and the JS object is collected. At
 * environment teardown an async cleanup hook closes what is still open.
 */
#define _GNU_SOURCE
#include "inet.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <uv.h>

enum { KIND_FRAMES = 1, KIND_PING = 2, KIND_UDP = 3 };
#define DEFAULT_MAX_BATCH 64
#define MAX_MAX_BATCH 4096
/* A GSO frame from a TAP is at most 64 KiB of IP plus link headers. */
#define FRAME_SCRATCH (65536 + 256)
#define MAX_VNET_HDR 12

/*
 * One read buffer per Node environment (thread), shared by all its pollers: reads
 * happen only inside on_poll, on that thread, and every packet is copied out before
 * any JS runs. Thousands of pollers then cost no 64 KiB each.
 */
typedef struct {
  uint8_t *scratch;
  size_t len;
} env_data;

typedef struct poller {
  env_data *ed;
  napi_env env;
  uv_poll_t handle;
  int fd;
  int kind;
  uint32_t vnet_hdr_len;
  uint32_t max_batch;
  bool handle_init;
  bool closing;
  bool handle_closed;
  bool finalized;
  bool reading;
  bool want_writable;
  bool in_cleanup_hook;
  napi_ref self_ref;
  napi_ref on_batch;
  napi_ref on_error;
  napi_ref on_writable;
  napi_ref on_reports;
  napi_async_context actx;
  napi_async_cleanup_hook_handle cleanup;
  /* stats */
  double wakeups, batches, packets, bytes, read_errors;
  double writes, write_bytes, write_eagain, write_errors;
  int last_error;
} poller;

static const uint8_t zero_hdr[MAX_VNET_HDR];

/* Native pollers allocated and not yet freed, over all threads; for leak tests. */
static int64_t live_pollers;

static poller *alloc_poller(void) {
  poller *p = calloc(1, sizeof *p);
  if (p) __atomic_fetch_add(&live_pollers, 1, __ATOMIC_RELAXED);
  return p;
}

static void free_poller(poller *p) {
  free(p);
  __atomic_fetch_sub(&live_pollers, 1, __ATOMIC_RELAXED);
}

static void on_handle_closed(uv_handle_t *h) {
  poller *p = h->data;
  p->handle_closed = true;
  if (p->in_cleanup_hook && p->cleanup) {
    napi_async_cleanup_hook_handle c = p->cleanup;
    p->cleanup = NULL;
    napi_remove_async_cleanup_hook(c);
  }
  if (p->finalized) free_poller(p);
}

static void delete_ref(napi_env env, napi_ref *r) {
  if (*r) {
    napi_delete_reference(env, *r);
    *r = NULL;
  }
}

/* Stops polling and closes the fd; JS-side references are handled by the callers. */
static void stop_and_close(poller *p) {
  if (p->closing) return;
  p->closing = true;
  p->reading = false;
  p->want_writable = false;
  if (p->handle_init) {
    uv_poll_stop(&p->handle);
    uv_close((uv_handle_t *)&p->handle, on_handle_closed);
  } else {
    p->handle_closed = true;
  }
  if (p->fd >= 0) {
    close(p->fd);
    p->fd = -1;
  }
}

static void on_poll(uv_poll_t *h, int status, int events);

static void update_poll(poller *p) {
  if (p->closing) return;
  int ev = (p->reading ? UV_READABLE : 0) | (p->want_writable ? UV_WRITABLE : 0);
  if (ev == 0) uv_poll_stop(&p->handle);
  else uv_poll_start(&p->handle, ev, on_poll);
}

/* Calls a JS callback from a libuv callback; a throw becomes an uncaught exception. */
static void call_js(poller *p, napi_value fn, size_t argc, const napi_value *argv) {
  napi_env env = p->env;
  napi_value recv, result;
  /* napi_make_callback converts recv to an object: undefined would throw. */
  napi_get_global(env, &recv);
  napi_status s = napi_make_callback(env, p->actx, recv, fn, argc, argv, &result);
  if (s == napi_pending_exception) {
    napi_value exc;
    if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) napi_fatal_exception(env, exc);
  }
}

static void report_error(poller *p, int err, const char *syscall) {
  p->last_error = err;
  if (!p->on_error) return;
  napi_value fn;
  if (napi_get_reference_value(p->env, p->on_error, &fn) != napi_ok || fn == NULL) return;
  napi_value e = un_errno_error(p->env, err, "FdPoller", syscall, NULL);
  call_js(p, fn, 1, &e);
}

/* kind "udp": recvmmsg batches (udp.c); onBatch(datagrams, sources, ports) */
static void read_udp_batch(poller *p) {
  napi_value datagrams = NULL, sources = NULL, ports = NULL;
  int err = 0;
  int count = un_udp_read_batch(p->env, p->fd, p->max_batch, &datagrams, &sources, &ports, &p->bytes, &err);
  p->packets += count;
  if (err) p->read_errors += 1;
  if (count > 0 && p->on_batch) {
    p->batches += 1;
    napi_value fn;
    if (napi_get_reference_value(p->env, p->on_batch, &fn) == napi_ok && fn) {
      napi_value argv[3] = {datagrams, sources, ports};
      call_js(p, fn, 3, argv);
    }
  }
  if (err && !p->closing) report_error(p, err, "recvmmsg");
  else if (err) p->last_error = err;
}

/* kind "udp", POLLERR: the error queue holds ICMP reports (IP_RECVERR); hand them on, poll again */
static void read_udp_errors(poller *p) {
  napi_value reports = NULL;
  int count = un_udp_read_errors(p->env, p->fd, 64, &reports);
  if (count > 0 && p->on_reports) {
    napi_value fn;
    if (napi_get_reference_value(p->env, p->on_reports, &fn) == napi_ok && fn) call_js(p, fn, 1, &reports);
  }
  /* libuv stopped the handle on POLLERR; the queue is drained (or sk_err cleared) */
  if (!p->closing) update_poll(p);
}

static void read_batch(poller *p) {
  if (p->kind == KIND_UDP) {
    read_udp_batch(p);
    return;
  }
  napi_env env = p->env;
  uint8_t *scratch = p->ed->scratch;
  size_t scratch_len = p->ed->len;
  napi_value buffers = NULL, sources = NULL;
  uint32_t count = 0;
  int err = 0;
  const char *failed = NULL;
  while (count < p->max_batch) {
    ssize_t n;
    un_sockaddr from;
    if (p->kind == KIND_FRAMES) {
      /* The kernel leaves num_buffers (bytes 10..11 of a 12-byte header) untouched. */
      if (p->vnet_hdr_len) memset(scratch, 0, p->vnet_hdr_len);
      n = read(p->fd, scratch, scratch_len);
    } else {
      socklen_t flen = sizeof from;
      memset(&from, 0, sizeof from);
      n = recvfrom(p->fd, scratch, scratch_len, MSG_DONTWAIT, &from.sa, &flen);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        err = errno;
        failed = p->kind == KIND_FRAMES ? "read" : "recvfrom";
      }
      break;
    }
    if (!buffers) {
      napi_create_array(env, &buffers);
      if (p->kind == KIND_PING) napi_create_array(env, &sources);
    }
    napi_value buf;
    if (napi_create_buffer_copy(env, (size_t)n, scratch, NULL, &buf) != napi_ok) {
      err = ENOMEM;
      failed = "napi_create_buffer_copy";
      break;
    }
    napi_set_element(env, buffers, count, buf);
    if (sources) {
      napi_set_element(env, sources, count, un_sockaddr_string(env, &from));
    }
    count++;
    p->packets += 1;
    p->bytes += (double)n;
  }
  if (err) {
    p->read_errors += 1;
    /* A broken TAP stays readable forever; stop before the call so JS sees a settled state. */
    if (p->kind == KIND_FRAMES) {
      p->reading = false;
      update_poll(p);
    }
  }
  if (count > 0 && p->on_batch) {
    p->batches += 1;
    napi_value fn;
    if (napi_get_reference_value(env, p->on_batch, &fn) == napi_ok && fn) {
      napi_value argv[2] = {buffers, sources};
      call_js(p, fn, sources ? 2 : 1, argv);
    }
  }
  if (err && !p->closing) report_error(p, err, failed);
  else if (err) p->last_error = err;
}

static void on_poll(uv_poll_t *h, int status, int events) {
  poller *p = h->data;
  if (p->closing) return;
  p->wakeups += 1;
  napi_handle_scope scope;
  if (napi_open_handle_scope(p->env, &scope) != napi_ok) return;
  if (status < 0 && p->kind == KIND_UDP) {
    read_udp_errors(p);
  } else if (status < 0) {
    /* libuv has already stopped the handle (POLLERR); mirror that, resume() restarts. */
    p->read_errors += 1;
    p->reading = false;
    p->want_writable = false;
    update_poll(p);
    report_error(p, -status, "uv_poll");
  } else {
    if ((events & UV_READABLE) && p->reading) read_batch(p);
    if (!p->closing && (events & UV_WRITABLE) && p->want_writable) {
      p->want_writable = false;
      update_poll(p);
      napi_value fn = NULL;
      napi_ref r = p->on_writable;
      p->on_writable = NULL;
      if (r) {
        napi_get_reference_value(p->env, r, &fn);
        napi_delete_reference(p->env, r);
      }
      if (fn) call_js(p, fn, 0, NULL);
    }
  }
  napi_close_handle_scope(p->env, scope);
}

/* Async cleanup at environment teardown (e.g. a worker thread exiting). */
static void on_env_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  (void)handle;
  poller *p = arg;
  p->in_cleanup_hook = true;
  if (p->closing) {
    /* close() already ran but its uv_close has not completed: finish in the callback. */
    if (p->handle_closed) {
      p->cleanup = NULL;
      napi_remove_async_cleanup_hook(handle);
    }
    return;
  }
  stop_and_close(p);
  if (p->handle_closed && p->cleanup) {
    p->cleanup = NULL;
    napi_remove_async_cleanup_hook(handle);
  }
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  poller *p = data;
  p->finalized = true;
  delete_ref(env, &p->on_batch);
  delete_ref(env, &p->on_error);
  delete_ref(env, &p->on_writable);
  delete_ref(env, &p->on_reports);
  delete_ref(env, &p->self_ref);
  if (p->actx) {
    napi_async_destroy(env, p->actx);
    p->actx = NULL;
  }
  if (!p->closing) stop_and_close(p);
  if (p->cleanup && !p->in_cleanup_hook) {
    napi_remove_async_cleanup_hook(p->cleanup);
    p->cleanup = NULL;
  }
  if (p->handle_closed && !p->cleanup) free_poller(p);
}

static poller *unwrap_this(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value self;
  if (napi_get_cb_info(env, info, argc, argv, &self, NULL) != napi_ok) return NULL;
  poller *p = NULL;
  if (napi_unwrap(env, self, (void **)&p) != napi_ok || !p) {
    un_throw_type(env, "ERR_INVALID_THIS", "not an FdPoller");
    return NULL;
  }
  return p;
}

static bool get_function(napi_env env, napi_value v, const char *name, bool optional, napi_ref *out) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (optional && (t == napi_undefined || t == napi_null)) {
    *out = NULL;
    return true;
  }
  if (t != napi_function) {
    char msg[96];
    snprintf(msg, sizeof msg, "%s must be a function", name);
    un_throw_type(env, "ERR_INVALID_ARG_TYPE", msg);
    return false;
  }
  return napi_create_reference(env, v, 1, out) == napi_ok;
}

/*
 * new FdPoller(fd, kind: "frames" | "ping", onBatch, options?: { vnetHdrLen?: 0 | 10 | 12;
 *              maxBatch?: number; onError?: (err) => void })
 */
static napi_value js_ctor(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4], self, target;
  napi_get_cb_info(env, info, &argc, argv, &self, NULL);
  napi_get_new_target(env, info, &target);
  if (!target) {
    un_throw_type(env, "ERR_CONSTRUCT_CALL_REQUIRED", "FdPoller must be called with new");
    return NULL;
  }
  if (argc < 3) {
    un_throw_type(env, "ERR_MISSING_ARGS", "new FdPoller(fd, kind, onBatch, options?) needs three arguments");
    return NULL;
  }
  int32_t fd;
  char kind_s[16];
  if (!un_get_int32(env, argv[0], "fd", &fd) || !un_get_string(env, argv[1], "kind", kind_s, sizeof kind_s))
    return NULL;
  if (fd < 0) {
    un_throw_range(env, "ERR_OUT_OF_RANGE", "fd must be a non-negative file descriptor");
    return NULL;
  }
  int kind = strcmp(kind_s, "frames") == 0 ? KIND_FRAMES
             : strcmp(kind_s, "ping") == 0   ? KIND_PING
             : strcmp(kind_s, "udp") == 0    ? KIND_UDP
                                             : 0;
  if (!kind) {
    un_throw_type(env, "ERR_INVALID_ARG_VALUE", "kind must be \"frames\", \"ping\" or \"udp\"");
    return NULL;
  }
  uint32_t vnet = 0, max_batch = DEFAULT_MAX_BATCH;
  napi_value on_error_v = NULL, on_reports_v = NULL;
  if (argc >= 4 && !un_is_nullish(env, argv[3])) {
    napi_valuetype t;
    napi_typeof(env, argv[3], &t);
    if (t != napi_object) {
      un_throw_type(env, "ERR_INVALID_ARG_TYPE", "options must be an object");
      return NULL;
    }
    napi_value v;
    napi_get_named_property(env, argv[3], "vnetHdrLen", &v);
    if (!un_is_nullish(env, v) && !un_get_uint32(env, v, "options.vnetHdrLen", &vnet)) return NULL;
    napi_get_named_property(env, argv[3], "maxBatch", &v);
    if (!un_is_nullish(env, v) && !un_get_uint32(env, v, "options.maxBatch", &max_batch)) return NULL;
    napi_get_named_property(env, argv[3], "onError", &on_error_v);
    napi_get_named_property(env, argv[3], "onReports", &on_reports_v);
  }
  if (vnet != 0 && vnet != 10 && vnet != 12) {
    un_throw_range(env, "ERR_OUT_OF_RANGE", "options.vnetHdrLen must be 0, 10 or 12");
    return NULL;
  }
  if (vnet != 0 && kind != KIND_FRAMES) {
    un_throw_range(env, "ERR_OUT_OF_RANGE", "options.vnetHdrLen applies to kind \"frames\" only");
    return NULL;
  }
  if (max_batch < 1 || max_batch > MAX_MAX_BATCH) {
    un_throw_range(env, "ERR_OUT_OF_RANGE", "options.maxBatch must be between 1 and 4096");
    return NULL;
  }
  env_data *ed = NULL;
  if (napi_get_instance_data(env, (void **)&ed) != napi_ok || !ed) {
    un_throw_plain(env, "ERR_NATIVE", "FdPoller: addon instance data missing");
    return NULL;
  }
  poller *p = alloc_poller();
  if (!p) {
    un_throw_errno(env, ENOMEM, "FdPoller", "calloc", NULL);
    return NULL;
  }
  p->ed = ed;
  p->env = env;
  p->fd = fd;
  p->kind = kind;
  p->vnet_hdr_len = vnet;
  p->max_batch = max_batch;
  if (!get_function(env, argv[2], "onBatch", false, &p->on_batch)) goto fail;
  if (on_error_v && !get_function(env, on_error_v, "options.onError", true, &p->on_error)) goto fail;
  if (on_reports_v && !get_function(env, on_reports_v, "options.onReports", true, &p->on_reports)) goto fail;
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    un_throw_plain(env, "ERR_NATIVE", "FdPoller: no libuv loop");
    goto fail;
  }
  int r = uv_poll_init(loop, &p->handle, fd);
  if (r < 0) {
    un_throw_errno(env, -r, "FdPoller", "uv_poll_init", r == UV_EBADF ? "fd is not open" : NULL);
    goto fail;
  }
  p->handle.data = p;
  p->handle_init = true;
  napi_value resource_name;
  napi_create_string_utf8(env, "usernet.FdPoller", NAPI_AUTO_LENGTH, &resource_name);
  if (napi_async_init(env, self, resource_name, &p->actx) != napi_ok) goto fail_handle;
  if (napi_wrap(env, self, p, finalize, NULL, NULL) != napi_ok) goto fail_handle;
  /* From here on the finalizer owns p. */
  napi_create_reference(env, self, 1, &p->self_ref);
  napi_add_async_cleanup_hook(env, on_env_cleanup, p, &p->cleanup);
  p->reading = true;
  r = uv_poll_start(&p->handle, UV_READABLE, on_poll);
  if (r < 0) {
    /* The fd cannot be polled (e.g. a regular file): give it back untouched. */
    p->fd = -1;
    p->closing = true;
    uv_close((uv_handle_t *)&p->handle, on_handle_closed);
    delete_ref(env, &p->on_batch);
    delete_ref(env, &p->on_error);
    delete_ref(env, &p->on_reports);
    napi_reference_unref(env, p->self_ref, NULL);
    if (p->cleanup) {
      napi_remove_async_cleanup_hook(p->cleanup);
      p->cleanup = NULL;
    }
    un_throw_errno(env, -r, "FdPoller", "uv_poll_start", "the fd cannot be polled");
    return NULL;
  }
  return self;

fail_handle:
  /* Not wrapped: the close callback frees p. */
  p->finalized = true;
  if (p->actx) napi_async_destroy(env, p->actx);
  p->fd = -1;
  p->closing = true;
  delete_ref(env, &p->on_batch);
  delete_ref(env, &p->on_error);
  delete_ref(env, &p->on_reports);
  uv_close((uv_handle_t *)&p->handle, on_handle_closed);
  return NULL;
fail:
  delete_ref(env, &p->on_batch);
  delete_ref(env, &p->on_error);
  delete_ref(env, &p->on_reports);
  free_poller(p);
  return NULL;
}

static void throw_closed(napi_env env) {
  un_throw_plain(env, "ERR_POLLER_CLOSED", "FdPoller is closed");
}

/*
 * write(frames: Buffer[], headers?: (Buffer | null | undefined)[],
 *       tails?: (Buffer | null | undefined)[]) -> frames consumed
 * tails[i], when given, is written right after frames[i] in the same writev: a frame
 * whose payload stays where it is (no copy into one contiguous Buffer).
 */
static napi_value js_write(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  poller *p = unwrap_this(env, info, &argc, argv);
  if (!p) return NULL;
  if (p->closing) {
    throw_closed(env);
    return NULL;
  }
  if (p->kind != KIND_FRAMES) {
    un_throw_plain(env, "ERR_INVALID_STATE", "write() is for kind \"frames\"; use sendPing() on ping sockets");
    return NULL;
  }
  bool is_array = false;
  if (argc < 1 || napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array) {
    un_throw_type(env, "ERR_INVALID_ARG_TYPE", "frames must be an array of Buffers");
    return NULL;
  }
  bool have_headers = false;
  if (argc >= 2 && !un_is_nullish(env, argv[1])) {
    if (napi_is_array(env, argv[1], &have_headers) != napi_ok || !have_headers) {
      un_throw_type(env, "ERR_INVALID_ARG_TYPE", "headers must be an array");
      return NULL;
    }
    if (p->vnet_hdr_len == 0) {
      un_throw_plain(env, "ERR_INVALID_STATE", "headers given but this poller has vnetHdrLen 0");
      return NULL;
    }
  }
  bool have_tails = false;
  if (argc >= 3 && !un_is_nullish(env, argv[2])) {
    if (napi_is_array(env, argv[2], &have_tails) != napi_ok || !have_tails) {
      un_throw_type(env, "ERR_INVALID_ARG_TYPE", "tails must be an array");
      return NULL;
    }
  }
  uint32_t len;
  napi_get_array_length(env, argv[0], &len);
  /* Validate everything first so a type error never leaves a half-written batch. */
  for (uint32_t i = 0; i < len; i++) {
    napi_value el;
    napi_get_element(env, argv[0], i, &el);
    bool is = false;
    napi_is_buffer(env, el, &is);
    if (!is) {
      un_throw_type(env, "ERR_INVALID_ARG_TYPE", "frames must be an array of Buffers");
      return NULL;
    }
    if (have_tails) {
      napi_get_element(env, argv[2], i, &el);
      if (!un_is_nullish(env, el)) {
        napi_is_buffer(env, el, &is);
        if (!is) {
          un_throw_type(env, "ERR_INVALID_ARG_TYPE", "each tail must be a Buffer or null");
          return NULL;
        }
      }
    }
    if (have_headers) {
      napi_get_element(env, argv[1], i, &el);
      if (un_is_nullish(env, el)) continue;
      void *d;
      size_t l = 0;
      napi_is_buffer(env, el, &is);
      if (is) napi_get_buffer_info(env, el, &d, &l);
      if (!is || l != p->vnet_hdr_len) {
        un_throw_type(env, "ERR_INVALID_ARG_TYPE", "each header must be a Buffer of exactly vnetHdrLen bytes");
        return NULL;
      }
    }
  }
  uint32_t i = 0;
  for (; i < len; i++) {
    napi_value el;
    void *frame;
    size_t flen;
    napi_get_element(env, argv[0], i, &el);
    napi_get_buffer_info(env, el, &frame, &flen);
    struct iovec iov[3];
    int iovcnt = 0;
    if (p->vnet_hdr_len) {
      iov[0].iov_base = (void *)zero_hdr;
      iov[0].iov_len = p->vnet_hdr_len;
      if (have_headers) {
        napi_value h;
        napi_get_element(env, argv[1], i, &h);
        if (!un_is_nullish(env, h)) napi_get_buffer_info(env, h, &iov[0].iov_base, &iov[0].iov_len);
      }
      iovcnt = 1;
    }
    iov[iovcnt].iov_base = frame;
    iov[iovcnt].iov_len = flen;
    iovcnt++;
    if (have_tails) {
      napi_value t;
      napi_get_element(env, argv[2], i, &t);
      if (!un_is_nullish(env, t)) {
        napi_get_buffer_info(env, t, &iov[iovcnt].iov_base, &iov[iovcnt].iov_len);
        flen += iov[iovcnt].iov_len;
        iovcnt++;
      }
    }
    ssize_t n;
    do {
      n = writev(p->fd, iov, iovcnt);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        p->write_eagain += 1;
        break;
      }
      p->write_errors += 1;
      p->last_error = errno;
      continue;
    }
    p->writes += 1;
    p->write_bytes += (double)flen;
  }
  napi_value out;
  napi_create_uint32(env, i, &out);
  return out;
}

/* waitWritable(cb): one UV_WRITABLE notification; a second call replaces the callback. */
static napi_value js_wait_writable(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  poller *p = unwrap_this(env, info, &argc, argv);
  if (!p) return NULL;
  if (p->closing) {
    throw_closed(env);
    return NULL;
  }
  napi_ref r;
  if (argc < 1 || !get_function(env, argv[0], "onWritable", false, &r)) {
    if (argc < 1) un_throw_type(env, "ERR_MISSING_ARGS", "waitWritable(cb) needs a callback");
    return NULL;
  }
  delete_ref(env, &p->on_writable);
  p->on_writable = r;
  p->want_writable = true;
  update_poll(p);
  return NULL;
}

static napi_value set_reading(napi_env env, napi_callback_info info, bool on) {
  size_t argc = 0;
  poller *p = unwrap_this(env, info, &argc, NULL);
  if (!p) return NULL;
  if (p->closing) {
    throw_closed(env);
    return NULL;
  }
  p->reading = on;
  update_poll(p);
  return NULL;
}

static napi_value js_pause(napi_env env, napi_callback_info info) { return set_reading(env, info, false); }
static napi_value js_resume(napi_env env, napi_callback_info info) { return set_reading(env, info, true); }

/* ref()/unref(): whether an open poller keeps the event loop (process, worker) alive; ref by default. */
static napi_value set_ref(napi_env env, napi_callback_info info, bool on) {
  size_t argc = 0;
  poller *p = unwrap_this(env, info, &argc, NULL);
  if (!p) return NULL;
  if (p->closing) return NULL;
  if (on) uv_ref((uv_handle_t *)&p->handle);
  else uv_unref((uv_handle_t *)&p->handle);
  return NULL;
}

static napi_value js_ref(napi_env env, napi_callback_info info) { return set_ref(env, info, true); }
static napi_value js_unref(napi_env env, napi_callback_info info) { return set_ref(env, info, false); }

/* close(): idempotent. */
static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  poller *p = unwrap_this(env, info, &argc, NULL);
  if (!p) return NULL;
  if (p->closing) return NULL;
  stop_and_close(p);
  delete_ref(env, &p->on_batch);
  delete_ref(env, &p->on_error);
  delete_ref(env, &p->on_writable);
  delete_ref(env, &p->on_reports);
  if (p->self_ref) napi_reference_unref(env, p->self_ref, NULL);
  if (p->cleanup && !p->in_cleanup_hook) {
    napi_remove_async_cleanup_hook(p->cleanup);
    p->cleanup = NULL;
  }
  return NULL;
}

static void set_num(napi_env env, napi_value o, const char *k, double v) {
  napi_value x;
  napi_create_double(env, v, &x);
  napi_set_named_property(env, o, k, x);
}

static napi_value js_stats(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  poller *p = unwrap_this(env, info, &argc, NULL);
  if (!p) return NULL;
  napi_value o;
  napi_create_object(env, &o);
  set_num(env, o, "wakeups", p->wakeups);
  set_num(env, o, "batches", p->batches);
  set_num(env, o, "packets", p->packets);
  set_num(env, o, "bytes", p->bytes);
  set_num(env, o, "readErrors", p->read_errors);
  set_num(env, o, "writes", p->writes);
  set_num(env, o, "writeBytes", p->write_bytes);
  set_num(env, o, "writeEagain", p->write_eagain);
  set_num(env, o, "writeErrors", p->write_errors);
  napi_value le;
  if (p->last_error) {
    char scratch[16];
    napi_create_string_utf8(env, un_errno_name(p->last_error, scratch, sizeof scratch), NAPI_AUTO_LENGTH, &le);
  } else {
    napi_get_null(env, &le);
  }
  napi_set_named_property(env, o, "lastError", le);
  napi_value b;
  napi_get_boolean(env, p->closing, &b);
  napi_set_named_property(env, o, "closed", b);
  napi_get_boolean(env, p->reading, &b);
  napi_set_named_property(env, o, "reading", b);
  return o;
}

/* livePollers(): native pollers not yet freed (closed ones go once collected). */
static napi_value js_live_pollers(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value v;
  napi_create_int64(env, __atomic_load_n(&live_pollers, __ATOMIC_RELAXED), &v);
  return v;
}

static void free_env_data(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  env_data *ed = data;
  free(ed->scratch);
  free(ed);
}

bool un_init_poller(napi_env env, napi_value exports) {
  env_data *ed = calloc(1, sizeof *ed);
  if (!ed) return false;
  ed->len = FRAME_SCRATCH + MAX_VNET_HDR;
  ed->scratch = malloc(ed->len);
  if (!ed->scratch || napi_set_instance_data(env, ed, free_env_data, NULL) != napi_ok) {
    free(ed->scratch);
    free(ed);
    return false;
  }
  if (!un_set_function(env, exports, "livePollers", js_live_pollers)) return false;
  napi_property_descriptor methods[] = {
      {"write", NULL, js_write, NULL, NULL, NULL, napi_default_method, NULL},
      {"waitWritable", NULL, js_wait_writable, NULL, NULL, NULL, napi_default_method, NULL},
      {"pause", NULL, js_pause, NULL, NULL, NULL, napi_default_method, NULL},
      {"resume", NULL, js_resume, NULL, NULL, NULL, napi_default_method, NULL},
      {"ref", NULL, js_ref, NULL, NULL, NULL, napi_default_method, NULL},
      {"unref", NULL, js_unref, NULL, NULL, NULL, napi_default_method, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default_method, NULL},
      {"stats", NULL, js_stats, NULL, NULL, NULL, napi_default_method, NULL},
  };
  napi_value cls;
  if (napi_define_class(env, "FdPoller", NAPI_AUTO_LENGTH, js_ctor, NULL, sizeof methods / sizeof methods[0], methods,
                        &cls) != napi_ok)
    return false;
  return napi_set_named_property(env, exports, "FdPoller", cls) == napi_ok;
}
