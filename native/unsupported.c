/*
 * Stand-in built on systems other than Linux: TAP devices, network namespaces and
 * ping sockets as used here are Linux features. The loader (src/native/binding.ts)
 * sees `unsupported` and reports it when a feature that needs the addon is used.
 */
#define NAPI_VERSION 8
#include <node_api.h>

static napi_value init(napi_env env, napi_value exports) {
  napi_value v;
  napi_create_string_utf8(env, "usernet's native addon supports Linux only", NAPI_AUTO_LENGTH, &v);
  napi_set_named_property(env, exports, "unsupported", v);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
