/*
 * IPv4 socket addresses for the addon's datagram sockets (ping.c, udp.c): reading the
 * address arguments JS passes, and binding a fresh socket to them.
 *
 * Convention as in util.h: a helper that returns false (or NULL) has thrown already.
 */
#ifndef USERNET_INET_H
#define USERNET_INET_H

#include "util.h"

#include <netinet/in.h>

/*
 * Fills *sa (zeroed, AF_INET, port 0) with the dotted quad `v`. With `optional`, a
 * missing (argc too small: pass NULL), null or undefined `v` is INADDR_ANY; without it
 * that is a TypeError naming `name`.
 */
bool un_get_sockaddr_in(napi_env env, napi_value v, const char *name, bool optional, struct sockaddr_in *sa);

/* Binds `fd` to *sa and returns it as a JS number; on failure closes it and throws "<what>: bind failed". */
napi_value un_bind_or_close(napi_env env, int fd, const struct sockaddr_in *sa, const char *what);

#endif
