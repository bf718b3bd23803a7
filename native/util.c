/*
 * Error and argument helpers shared by the addon's parts (see util.h).
 */
#define _GNU_SOURCE
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#define UN_E(x) { x, #x }
static const struct {
  int err;
  const char *name;
} errno_names[] = {
    UN_E(EPERM),      UN_E(ENOENT),       UN_E(ESRCH),        UN_E(EINTR),        UN_E(EIO),
    UN_E(ENXIO),      UN_E(E2BIG),        UN_E(EBADF),        UN_E(ECHILD),       UN_E(EAGAIN),
    UN_E(ENOMEM),     UN_E(EACCES),       UN_E(EFAULT),       UN_E(EBUSY),        UN_E(EEXIST),
    UN_E(ENODEV),     UN_E(ENOTDIR),      UN_E(EISDIR),       UN_E(EINVAL),       UN_E(ENFILE),
    UN_E(EMFILE),     UN_E(ENOTTY),       UN_E(ENOSPC),       UN_E(EPIPE),        UN_E(ERANGE),
    UN_E(ENOSYS),     UN_E(ENOTSOCK),     UN_E(EDESTADDRREQ), UN_E(EMSGSIZE),     UN_E(EPROTOTYPE),
    UN_E(ENOPROTOOPT), UN_E(EPROTONOSUPPORT), UN_E(EOPNOTSUPP), UN_E(EAFNOSUPPORT), UN_E(EADDRINUSE),
    UN_E(EADDRNOTAVAIL), UN_E(ENETDOWN),  UN_E(ENETUNREACH),  UN_E(ENETRESET),    UN_E(ECONNABORTED),
    UN_E(ECONNRESET), UN_E(ENOBUFS),      UN_E(EISCONN),      UN_E(ENOTCONN),     UN_E(ETIMEDOUT),
    UN_E(ECONNREFUSED), UN_E(EHOSTDOWN),  UN_E(EHOSTUNREACH), UN_E(EBADFD),       UN_E(EUSERS),
};
#undef UN_E

const char *un_errno_name(int err, char *scratch, size_t scratch_len) {
  for (size_t i = 0; i < sizeof errno_names / sizeof errno_names[0]; i++)
    if (errno_names[i].err == err) return errno_names[i].name;
  snprintf(scratch, scratch_len, "E%d", err);
  return scratch;
}

static void set_str(napi_env env, napi_value obj, const char *key, const char *s) {
  napi_value v;
  if (napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v) == napi_ok) napi_set_named_property(env, obj, key, v);
}

napi_value un_errno_error(napi_env env, int err, const char *what, const char *syscall, const char *hint) {
  char scratch[16];
  const char *name = un_errno_name(err, scratch, sizeof scratch);
  char msg[512];
  snprintf(msg, sizeof msg, "%s: %s failed: %s (%s)%s%s", what, syscall, name, strerror(err), hint ? "; " : "",
           hint ? hint : "");
  napi_value code, message, error, errnum;
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, -err, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
  set_str(env, error, "syscall", syscall);
  return error;
}

void un_throw_errno(napi_env env, int err, const char *what, const char *syscall, const char *hint) {
  napi_throw(env, un_errno_error(env, err, what, syscall, hint));
}

void un_throw_type(napi_env env, const char *code, const char *msg) { napi_throw_type_error(env, code, msg); }
void un_throw_range(napi_env env, const char *code, const char *msg) { napi_throw_range_error(env, code, msg); }
void un_throw_plain(napi_env env, const char *code, const char *msg) { napi_throw_error(env, code, msg); }

static void throw_arg(napi_env env, const char *name, const char *expected) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s must be %s", name, expected);
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
}

bool un_get_int32(napi_env env, napi_value v, const char *name, int32_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) {
    throw_arg(env, name, "a number");
    return false;
  }
  double d;
  napi_get_value_double(env, v, &d);
  if (d != (double)(int32_t)d) {
    throw_arg(env, name, "an integer");
    return false;
  }
  *out = (int32_t)d;
  return true;
}

bool un_get_uint32(napi_env env, napi_value v, const char *name, uint32_t *out) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_number) {
    throw_arg(env, name, "a number");
    return false;
  }
  double d;
  napi_get_value_double(env, v, &d);
  if (!(d >= 0 && d <= 4294967295.0) || d != (double)(uint32_t)d) {
    throw_arg(env, name, "a non-negative integer");
    return false;
  }
  *out = (uint32_t)d;
  return true;
}

bool un_get_string(napi_env env, napi_value v, const char *name, char *out, size_t out_len) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) {
    throw_arg(env, name, "a string");
    return false;
  }
  size_t needed = 0;
  napi_get_value_string_utf8(env, v, NULL, 0, &needed);
  if (needed >= out_len) {
    char msg[128];
    snprintf(msg, sizeof msg, "%s is too long (at most %zu bytes)", name, out_len - 1);
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
    return false;
  }
  size_t got = 0;
  napi_get_value_string_utf8(env, v, out, out_len, &got);
  if (strlen(out) != got) {
    throw_arg(env, name, "a string without NUL characters");
    return false;
  }
  return true;
}

bool un_is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return true;
  return t == napi_undefined || t == napi_null;
}

bool un_get_bool_prop(napi_env env, napi_value obj, const char *prop, bool dflt, bool *out) {
  napi_valuetype t;
  if (napi_typeof(env, obj, &t) != napi_ok || t != napi_object) {
    throw_arg(env, "options", "an object");
    return false;
  }
  napi_value v;
  if (napi_get_named_property(env, obj, prop, &v) != napi_ok) return false;
  if (napi_typeof(env, v, &t) != napi_ok) return false;
  if (t == napi_undefined) {
    *out = dflt;
    return true;
  }
  if (t != napi_boolean) {
    char name[64];
    snprintf(name, sizeof name, "options.%s", prop);
    throw_arg(env, name, "a boolean");
    return false;
  }
  return napi_get_value_bool(env, v, out) == napi_ok;
}

bool un_get_buffer(napi_env env, napi_value v, const char *name, void **data, size_t *len) {
  bool is = false;
  if (napi_is_buffer(env, v, &is) != napi_ok || !is) {
    throw_arg(env, name, "a Buffer or Uint8Array");
    return false;
  }
  return napi_get_buffer_info(env, v, data, len) == napi_ok;
}

bool un_get_ipv4(napi_env env, napi_value v, const char *name, uint32_t *out_be) {
  char s[INET_ADDRSTRLEN + 1];
  if (!un_get_string(env, v, name, s, sizeof s)) return false;
  struct in_addr a;
  if (inet_pton(AF_INET, s, &a) != 1) {
    throw_arg(env, name, "a dotted-quad IPv4 address");
    return false;
  }
  *out_be = a.s_addr;
  return true;
}

bool un_set_function(napi_env env, napi_value obj, const char *name, napi_callback cb) {
  napi_value fn;
  if (napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn) != napi_ok) return false;
  return napi_set_named_property(env, obj, name, fn) == napi_ok;
}

bool un_set_uint32(napi_env env, napi_value obj, const char *name, uint32_t value) {
  napi_value v;
  if (napi_create_uint32(env, value, &v) != napi_ok) return false;
  return napi_set_named_property(env, obj, name, v) == napi_ok;
}
