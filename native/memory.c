/*
 * trimMemory(): malloc_trim(0), so glibc hands the free pages inside its heap back to
 * the kernel. Frames and buffers are malloc'ed (ArrayBuffer backing stores); after a
 * burst of traffic or start-up the freed chunks stay resident, in the middle of the
 * heap where glibc's own trimming (top of the heap only) never reaches. Returns
 * whether anything was released; false where the C library has no malloc_trim.
 * Cost: a walk over malloc's free lists, about a millisecond; callers run it when idle.
 */
#include "util.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

static napi_value js_trim_memory(napi_env env, napi_callback_info info) {
  int released = 0;
#ifdef __GLIBC__
  released = malloc_trim(0);
#endif
  napi_value r;
  napi_get_boolean(env, released != 0, &r);
  return r;
}

bool un_init_memory(napi_env env, napi_value exports) {
  return un_set_function(env, exports, "trimMemory", js_trim_memory);
}
