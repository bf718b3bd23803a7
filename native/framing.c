/*
 * encodeStreamFrames: frames for a QEMU stream socket (each behind its 4-byte
 * big-endian length), with the offload work their marks left undone, in one call.
 *
 * Why native: towards QEMU every TCP segment must be a complete 1514-byte frame with
 * its checksum. Done per segment in JS (a frame Buffer, the payload copy, the checksum
 * loop, the length header), that work cost more CPU than QEMU spends on the same frame;
 * here the stack hands over 64 KiB super frames (a header plus a view of the send
 * buffer) and this file cuts them into segments straight into the output, copying
 * each payload byte once and summing it while it is in cache.
 *
 * Input, per frame i: the frame (headers, possibly the whole frame), an optional tail
 * (payload bytes that follow it, a view of the sender's buffer) and three integers of
 * `marks` (Int32Array, 3 per frame): csumStart (-1: nothing to do), csumOffset, and
 * gsoSize. The semantics are those of src/stack/wire/frame-offload.ts (which does the
 * same in JS and is the reference the tests hold this against):
 *   - csumStart < 0: the frame (and tail) is copied as it is;
 *   - gsoSize == 0: copied, and the checksum at csumStart + csumOffset (holding the
 *     pseudo-header sum) completed over csumStart..end; a result of 0 is sent as 0xffff;
 *   - gsoSize > 0 on an IPv4 TCP frame: split into segments of gsoSize payload bytes;
 *     each gets the headers with its IPv4 total length, id (counted up from the
 *     frame's), header checksum, sequence number, flags (FIN and PSH on the last
 *     segment only, CWR on the first only) and a full TCP checksum. A frame that is not
 *     IPv4 TCP is treated as gsoSize == 0.
 * Output: every frame in order, each behind its length, written into the caller's
 * Buffer (which a stream port reuses: a fresh 64 KiB allocation per write cost four
 * times the copying of its bytes, in page faults); when it is too small nothing is
 * written and the size needed is returned, negated.
 */
#include "util.h"

#include <stdlib.h>
#include <string.h>

#define ETH_LEN 14
#define VLAN_LEN 4
#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_CWR 0x80
#define MARK_FIELDS 3

/* A frame plus its tail, read as one byte sequence. */
typedef struct {
  const uint8_t *head;
  size_t head_len;
  const uint8_t *tail;
  size_t tail_len;
} frame_bytes;

static size_t total_len(const frame_bytes *f) { return f->head_len + f->tail_len; }

/* Copies bytes [from, from + n) of the frame to dst. */
static void copy_range(uint8_t *dst, const frame_bytes *f, size_t from, size_t n) {
  if (from < f->head_len) {
    size_t k = f->head_len - from < n ? f->head_len - from : n;
    memcpy(dst, f->head + from, k);
    dst += k;
    from += k;
    n -= k;
  }
  if (n > 0) memcpy(dst, f->tail + (from - f->head_len), n);
}

/* Unfolded sum of big-endian 16-bit words of b[0, n); n may be odd (zero padded). */
static uint64_t sum_words(const uint8_t *b, size_t n) {
  uint64_t s = 0;
  size_t i = 0;
  /* native 32-bit loads, byte-swapped once at the end (RFC 1071 byte order independence) */
  for (; i + 16 <= n; i += 16) {
    uint32_t w[4];
    memcpy(w, b + i, 16);
    s += (uint64_t)w[0] + w[1] + w[2] + w[3];
  }
  for (; i + 4 <= n; i += 4) {
    uint32_t w;
    memcpy(&w, b + i, 4);
    s += w;
  }
  uint64_t tail = 0;
  for (; i + 1 < n; i += 2) tail += ((uint32_t)b[i] << 8) | b[i + 1];
  if (i < n) tail += (uint32_t)b[i] << 8;
  /* fold the little-endian word sum to 16 bits, then swap to big-endian order */
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  s = ((s & 0xff) << 8) | (s >> 8);
#endif
  return s + tail;
}

static uint16_t fold(uint64_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return (uint16_t)s;
}

static uint16_t rd16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static uint32_t rd32(const uint8_t *p) { return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3]; }
static void wr16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void wr32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* Where a splittable IPv4 TCP super frame's parts are; false when it is not one. */
typedef struct {
  size_t l2, l4, hdr, ip_end;
} tcp_layout;

static bool tcp_layout_of(const frame_bytes *f, tcp_layout *t) {
  size_t len = total_len(f);
  if (f->head_len < ETH_LEN) return false;
  size_t l2 = rd16(f->head + 12) == 0x8100 ? ETH_LEN + VLAN_LEN : ETH_LEN;
  if (f->head_len < l2 + 20) return false;
  if (l2 == ETH_LEN + VLAN_LEN && rd16(f->head + 16) != 0x0800) return false;
  if (l2 == ETH_LEN && rd16(f->head + 12) != 0x0800) return false;
  const uint8_t *ip = f->head + l2;
  if ((ip[0] >> 4) != 4) return false;
  size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
  size_t l4 = l2 + ihl;
  if (ihl < 20 || ip[9] != 6 || f->head_len < l4 + 20) return false;
  size_t thl = (size_t)(f->head[l4 + 12] >> 4) * 4;
  if (thl < 20 || f->head_len < l4 + thl) return false;
  size_t ip_end = l2 + rd16(ip + 2);
  if (ip_end > len) ip_end = len;
  size_t hdr = l4 + thl;
  if (ip_end < hdr) ip_end = hdr;
  t->l2 = l2;
  t->l4 = l4;
  t->hdr = hdr;
  t->ip_end = ip_end;
  return true;
}

/* Bytes a frame takes in the output, length headers included. */
static size_t encoded_len(const frame_bytes *f, int32_t csum_start, int32_t gso) {
  tcp_layout t;
  if (csum_start < 0 || gso <= 0 || !tcp_layout_of(f, &t)) return 4 + total_len(f);
  size_t payload = t.ip_end - t.hdr;
  size_t count = payload == 0 ? 1 : (payload + (size_t)gso - 1) / (size_t)gso;
  return count * (4 + t.hdr) + payload;
}

/* Writes one frame (copied, its partial checksum completed) at out; returns bytes written. */
static size_t put_whole(uint8_t *out, const frame_bytes *f, int32_t csum_start, int32_t csum_offset) {
  size_t len = total_len(f);
  wr32(out, (uint32_t)len);
  uint8_t *fr = out + 4;
  copy_range(fr, f, 0, len);
  size_t at = (size_t)csum_start + (size_t)csum_offset;
  if (csum_start >= 0 && csum_offset >= 0 && at + 2 <= len && (size_t)csum_start <= len) {
    uint16_t c = (uint16_t)~fold(sum_words(fr + csum_start, len - (size_t)csum_start));
    if (c == 0) c = 0xffff;
    wr16(fr + at, c);
  }
  return 4 + len;
}

/* Writes the segments of a super frame; returns bytes written. */
static size_t put_split(uint8_t *out, const frame_bytes *f, const tcp_layout *t, size_t mss) {
  const uint8_t *h = f->head;
  size_t l2 = t->l2, l4 = t->l4, hdr = t->hdr;
  size_t ihl = l4 - l2, thl = hdr - l4;
  size_t payload = t->ip_end - hdr;
  size_t count = payload == 0 ? 1 : (payload + mss - 1) / mss;
  uint16_t id0 = rd16(h + l2 + 4);
  uint32_t seq0 = rd32(h + l4 + 4);
  uint8_t flags0 = h[l4 + 13];
  /* the pseudo-header's addresses and protocol, the same for every segment */
  uint64_t pseudo = (uint64_t)rd16(h + l2 + 12) + rd16(h + l2 + 14) + rd16(h + l2 + 16) + rd16(h + l2 + 18) + 6;
  uint8_t *o = out;
  for (size_t i = 0; i < count; i++) {
    size_t off = i * mss;
    size_t n = payload - off < mss ? payload - off : mss;
    wr32(o, (uint32_t)(hdr + n));
    uint8_t *fr = o + 4;
    memcpy(fr, h, hdr);
    copy_range(fr + hdr, f, hdr + off, n);
    uint8_t *ip = fr + l2;
    wr16(ip + 2, (uint16_t)(ihl + thl + n));
    wr16(ip + 4, (uint16_t)(id0 + i));
    wr16(ip + 10, 0);
    wr16(ip + 10, (uint16_t)~fold(sum_words(ip, ihl)));
    uint8_t *tcp = fr + l4;
    wr32(tcp + 4, (uint32_t)(seq0 + (uint32_t)off));
    uint8_t flags = flags0;
    if (i + 1 < count) flags &= (uint8_t)~(TCP_FIN | TCP_PSH);
    if (i > 0) flags &= (uint8_t)~TCP_CWR;
    tcp[13] = flags;
    wr16(tcp + 16, 0);
    wr16(tcp + 16, (uint16_t)~fold(pseudo + thl + n + sum_words(tcp, thl + n)));
    o = fr + hdr + n;
  }
  return (size_t)(o - out);
}

static bool get_frame(napi_env env, napi_value frames, napi_value tails, uint32_t i, frame_bytes *f) {
  napi_value el;
  bool is = false;
  napi_get_element(env, frames, i, &el);
  napi_is_buffer(env, el, &is);
  if (!is) {
    un_throw_type(env, "ERR_INVALID_ARG_TYPE", "frames must be an array of Buffers");
    return false;
  }
  void *d;
  napi_get_buffer_info(env, el, &d, &f->head_len);
  f->head = d;
  f->tail = NULL;
  f->tail_len = 0;
  if (tails == NULL) return true;
  napi_get_element(env, tails, i, &el);
  if (un_is_nullish(env, el)) return true;
  napi_is_buffer(env, el, &is);
  if (!is) {
    un_throw_type(env, "ERR_INVALID_ARG_TYPE", "each tail must be a Buffer or null");
    return false;
  }
  napi_get_buffer_info(env, el, &d, &f->tail_len);
  f->tail = d;
  return true;
}

/*
 * encodeStreamFrames(out: Buffer, frames: Buffer[], tails?: (Buffer | null)[] | null,
 *                    marks?: Int32Array | null) -> bytes written, or -(bytes needed)
 */
static napi_value js_encode_stream_frames(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  void *outp = NULL;
  size_t out_len = 0;
  if (argc < 1 || !un_get_buffer(env, argv[0], "out", &outp, &out_len)) return NULL;
  bool is_array = false;
  if (argc < 2 || napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array) {
    un_throw_type(env, "ERR_INVALID_ARG_TYPE", "frames must be an array of Buffers");
    return NULL;
  }
  napi_value frames = argv[1];
  uint32_t count;
  napi_get_array_length(env, frames, &count);
  napi_value tails = NULL;
  if (argc >= 3 && !un_is_nullish(env, argv[2])) {
    bool ok = false;
    uint32_t n = 0;
    if (napi_is_array(env, argv[2], &ok) != napi_ok || !ok || napi_get_array_length(env, argv[2], &n) != napi_ok ||
        n != count) {
      un_throw_type(env, "ERR_INVALID_ARG_TYPE", "tails must be an array as long as frames");
      return NULL;
    }
    tails = argv[2];
  }
  const int32_t *marks = NULL;
  if (argc >= 4 && !un_is_nullish(env, argv[3])) {
    bool ok = false;
    napi_typedarray_type type;
    size_t n = 0;
    void *data;
    if (napi_is_typedarray(env, argv[3], &ok) != napi_ok || !ok ||
        napi_get_typedarray_info(env, argv[3], &type, &n, &data, NULL, NULL) != napi_ok || type != napi_int32_array ||
        n != (size_t)count * MARK_FIELDS) {
      un_throw_type(env, "ERR_INVALID_ARG_TYPE", "marks must be an Int32Array of 3 values per frame");
      return NULL;
    }
    marks = data;
  }
  /* first pass: validate and size */
  size_t total = 0;
  for (uint32_t i = 0; i < count; i++) {
    frame_bytes f;
    if (!get_frame(env, frames, tails, i, &f)) return NULL;
    int32_t cs = marks ? marks[i * MARK_FIELDS] : -1;
    int32_t gso = marks ? marks[i * MARK_FIELDS + 2] : 0;
    total += encoded_len(&f, cs, gso);
  }
  napi_value result;
  if (total > out_len) {
    napi_create_double(env, -(double)total, &result);
    return result;
  }
  uint8_t *o = outp;
  for (uint32_t i = 0; i < count; i++) {
    frame_bytes f;
    get_frame(env, frames, tails, i, &f);
    int32_t cs = marks ? marks[i * MARK_FIELDS] : -1;
    int32_t co = marks ? marks[i * MARK_FIELDS + 1] : 0;
    int32_t gso = marks ? marks[i * MARK_FIELDS + 2] : 0;
    tcp_layout t;
    if (cs >= 0 && gso > 0 && tcp_layout_of(&f, &t)) o += put_split(o, &f, &t, (size_t)gso);
    else o += put_whole(o, &f, cs, co);
  }
  napi_create_double(env, (double)total, &result);
  return result;
}

bool un_init_framing(napi_env env, napi_value exports) {
  return un_set_function(env, exports, "encodeStreamFrames", js_encode_stream_frames);
}
