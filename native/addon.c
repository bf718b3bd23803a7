/*
 * usernet_native: a small N-API addon (C, NAPI_VERSION 8, Linux only) with what
 * Node's standard library cannot do for usernet:
 *   - tap.c     TAP devices (TUNSETIFF, IFF_VNET_HDR, TUNSETOFFLOAD), also created
 *               inside another network namespace;
 *   - ping.c    unprivileged ICMP echo sockets;
 *   - poller.c  batched non-blocking reads and writes on those fds, on Node's loop;
 *   - framing.c frames for QEMU stream sockets, super frames cut into segments;
 *   - memory.c  malloc_trim, to give freed heap pages back when idle;
 *   - udp.c     the NAT's UDP sockets: IP_RECVERR, large buffers, recvmmsg reads;
 *   - unixdgram.c  unix datagram sockets for VDE ports.
 *   - notify.c  systemd's NOTIFY_SOCKET (a unix datagram socket).
 * The typed loader is src/native/binding.ts; the virtio_net_hdr format is described
 * in src/native/vnet-hdr.ts. Build: `npx node-gyp rebuild` (binding.gyp at the root).
 */
#include "util.h"

#include <linux/virtio_net.h>

static napi_value init(napi_env env, napi_value exports) {
  napi_value c;
  if (napi_create_object(env, &c) != napi_ok) return NULL;
  napi_set_named_property(env, exports, "constants", c);
  un_set_uint32(env, c, "VIRTIO_NET_HDR_F_NEEDS_CSUM", VIRTIO_NET_HDR_F_NEEDS_CSUM);
  un_set_uint32(env, c, "VIRTIO_NET_HDR_F_DATA_VALID", VIRTIO_NET_HDR_F_DATA_VALID);
  un_set_uint32(env, c, "VIRTIO_NET_HDR_GSO_NONE", VIRTIO_NET_HDR_GSO_NONE);
  un_set_uint32(env, c, "VIRTIO_NET_HDR_GSO_TCPV4", VIRTIO_NET_HDR_GSO_TCPV4);
  un_set_uint32(env, c, "VIRTIO_NET_HDR_GSO_UDP", VIRTIO_NET_HDR_GSO_UDP);
  un_set_uint32(env, c, "VIRTIO_NET_HDR_GSO_TCPV6", VIRTIO_NET_HDR_GSO_TCPV6);
  un_set_uint32(env, c, "VIRTIO_NET_HDR_GSO_ECN", VIRTIO_NET_HDR_GSO_ECN);
  un_set_uint32(env, c, "VIRTIO_NET_HDR_LEN", sizeof(struct virtio_net_hdr));
  un_set_uint32(env, c, "VIRTIO_NET_HDR_MRG_RXBUF_LEN", sizeof(struct virtio_net_hdr_mrg_rxbuf));
  napi_value v;
  napi_create_uint32(env, NAPI_VERSION, &v);
  napi_set_named_property(env, exports, "napiVersion", v);
  if (!un_init_tap(env, exports) || !un_init_ping(env, exports) || !un_init_poller(env, exports) ||
      !un_init_framing(env, exports) || !un_init_memory(env, exports) || !un_init_udp(env, exports) ||
      !un_init_unixdgram(env, exports) ||
      !un_init_notify(env, exports))
    return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
