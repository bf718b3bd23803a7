/*
 * Shared helpers for the usernet addon: throwing JS errors that carry a Node-style
 * `code` ("EACCES"), `errno` (negative, as Node's own system errors) and `syscall`,
 * and reading arguments without repeating the napi_status dance everywhere.
 *
 * Convention: every helper that can fail has already thrown when it returns false;
 * the caller then returns NULL to JS at once.
 */
#ifndef USERNET_UTIL_H
#define USERNET_UTIL_H

#define NAPI_VERSION 8
#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Name of an errno value ("EAGAIN"), or "E<number>" for ones outside the table. */
const char *un_errno_name(int err, char *scratch, size_t scratch_len);

/*
 * Throws an Error whose message is "<what>: <syscall> failed: <CODE> (<strerror>)"
 * followed by `hint` when given; sets code, errno (negative) and syscall.
 */
void un_throw_errno(napi_env env, int err, const char *what, const char *syscall, const char *hint);

/* Throws a TypeError/RangeError/Error with a code of our own (e.g. "ERR_INVALID_ARG_TYPE"). */
void un_throw_type(napi_env env, const char *code, const char *msg);
void un_throw_range(napi_env env, const char *code, const char *msg);
void un_throw_plain(napi_env env, const char *code, const char *msg);

/* Creates (without throwing) the Error object described for un_throw_errno. */
napi_value un_errno_error(napi_env env, int err, const char *what, const char *syscall, const char *hint);

/* Argument readers: false means a TypeError has been thrown. */
bool un_get_int32(napi_env env, napi_value v, const char *name, int32_t *out);
bool un_get_uint32(napi_env env, napi_value v, const char *name, uint32_t *out);
/* Copies a string into out (NUL-terminated); fails if it does not fit in out_len - 1 bytes. */
bool un_get_string(napi_env env, napi_value v, const char *name, char *out, size_t out_len);
bool un_is_nullish(napi_env env, napi_value v);
/* Reads a boolean property; absent/undefined gives dflt. */
bool un_get_bool_prop(napi_env env, napi_value obj, const char *prop, bool dflt, bool *out);
bool un_get_buffer(napi_env env, napi_value v, const char *name, void **data, size_t *len);

/* Parses a dotted-quad IPv4 address into network byte order; TypeError if malformed. */
bool un_get_ipv4(napi_env env, napi_value v, const char *name, uint32_t *out_be);

/* Defines a function property on obj. */
bool un_set_function(napi_env env, napi_value obj, const char *name, napi_callback cb);
bool un_set_uint32(napi_env env, napi_value obj, const char *name, uint32_t value);

/* Module parts, each adds its exports to `exports`. */
bool un_init_tap(napi_env env, napi_value exports);
bool un_init_ping(napi_env env, napi_value exports);
bool un_init_poller(napi_env env, napi_value exports);
bool un_init_framing(napi_env env, napi_value exports);
bool un_init_memory(napi_env env, napi_value exports);
bool un_init_udp(napi_env env, napi_value exports);
bool un_init_unixdgram(napi_env env, napi_value exports);
bool un_init_notify(napi_env env, napi_value exports);

/*
 * udp.c, for FdPoller kind "udp": reads up to max datagrams (recvmmsg) into new
 * Buffers with their source address strings and ports, appended to the arrays (made
 * on first use); adds the bytes read; sets *err on a read error other than EAGAIN.
 */
int un_udp_read_batch(napi_env env, int fd, uint32_t max, napi_value *datagrams, napi_value *sources,
                      napi_value *ports, double *bytes, int *err);
/* udp.c: drains up to max IP_RECVERR reports into an array of objects (made on first use). */
int un_udp_read_errors(napi_env env, int fd, uint32_t max, napi_value *reports);

#endif
