/**
 * Multicast port: `-netdev socket,mcast=GROUP:PORT[,localaddr=ADDR]` and
 * `-netdev dgram,remote.type=inet,remote.host=GROUP,remote.port=PORT[,local...]`.
 * Every member of the group sees every frame, one frame per datagram: a virtual LAN
 * of QEMUs (and usernets) on one host or one link, with no central switch.
 *
 * Theory of operation
 * - Receive like QEMU (net/socket.c, net/dgram.c): a socket bound to GROUP:PORT with
 *   SO_REUSEADDR (so several members share the port), joined to the group — on
 *   ADDR's interface when a local address is given — with IP_MULTICAST_LOOP on so
 *   members on the same host hear each other.
 * - Send from a second socket, bound to an ephemeral port (on ADDR when given),
 *   multicast TTL 1 (the link only, as QEMU gets by default), loop on, connected to
 *   GROUP:PORT. QEMU sends from the group socket itself and therefore hears its own
 *   frames back; we instead drop the datagrams whose source is our sending socket, so
 *   a frame never returns to the hub that sent it. QEMU members only look at the
 *   destination, so they accept our frames although they come from another port.
 * - "Our sending socket" is (ADDR, port) when ADDR is given. Without it the kernel
 *   picks the source address per route and will not tell (getsockname stays 0.0.0.0
 *   even after connecting to a group), so a datagram is ours when it comes from our
 *   port and from one of this host's addresses, or from 0.0.0.0 (what the kernel
 *   puts when the multicast route's device has no address of a wide enough scope,
 *   e.g. a group routed to lo). The address list is cached and re-read at most once
 *   a second, when a datagram from our port names an address not in it.
 * - Short datagrams, oversize frames, queue bound: as for any datagram port
 *   (dgram-port.ts).
 * - IPv4 only, like QEMU's mcast.
 */
import { createSocket, type RemoteInfo } from "node:dgram";
import { isIPv4 } from "node:net";
import { networkInterfaces } from "node:os";
import type { Logger } from "../log.js";
import { describeError } from "./address.js";
import { bindUdp, closeQuietly, DatagramPort, type UdpEndpoint } from "./dgram-port.js";

export interface McastPortOptions {
  name: string;
  kind?: string;
  log: Logger;
  group: UdpEndpoint;
  /** local interface address to join and send on; absent = the kernel's choice */
  localAddr?: string;
  maxQueuedBytes?: number;
}

export function isMulticastAddress(host: string): boolean {
  if (!isIPv4(host)) return false;
  const first = Number(host.split(".")[0]);
  return first >= 224 && first <= 239;
}

/** Joins the group; rejects with an Error naming the group (and interface) on failure. */
export async function openMcastPort(options: McastPortOptions): Promise<DatagramPort> {
  const { name, group } = options;
  const local = options.localAddr || undefined;
  const where = `${group.host}:${group.port}${local ? ` on ${local}` : ""}`;
  if (!isMulticastAddress(group.host)) {
    throw new Error(`${name}: ${group.host} is not an IPv4 multicast address (224.0.0.0/4)`);
  }
  const rx = createSocket({ type: "udp4", reuseAddr: true });
  await bindUdp(rx, group.host, group.port, name);
  const tx = createSocket({ type: "udp4" });
  let source: UdpEndpoint;
  try {
    rx.addMembership(group.host, local);
    rx.setMulticastLoopback(true);
    source = await bindUdp(tx, local ?? "", 0, name);
    tx.setMulticastTTL(1);
    tx.setMulticastLoopback(true);
    if (local) tx.setMulticastInterface(local);
    await connectUdp(tx, group);
  } catch (err) {
    closeQuietly(rx);
    closeQuietly(tx);
    throw new Error(`${name}: cannot join multicast group ${where}: ${describeError(err)}`);
  }
  const ownAddress = local ? (a: string) => a === local : hostAddressCache();
  const ownEcho = (from: RemoteInfo) => from.port === source.port && ownAddress(from.address);
  return new DatagramPort({
    name,
    kind: options.kind ?? "mcast",
    log: options.log,
    rx,
    tx,
    ignore: ownEcho,
    description: `multicast ${where}, sending from ${local ?? "this host"} port ${source.port}`,
    maxQueuedBytes: options.maxQueuedBytes,
  });
}

/** "is this one of this host's IPv4 addresses?", re-reading the list at most once a second */
function hostAddressCache(): (address: string) => boolean {
  let known = new Set<string>();
  let readAt = Number.NEGATIVE_INFINITY;
  return (address) => {
    if (known.has(address)) return true;
    const now = performance.now();
    if (now - readAt < 1000) return false;
    readAt = now;
    known = new Set(["0.0.0.0"]);
    for (const list of Object.values(networkInterfaces())) {
      for (const i of list ?? []) if (i.family === "IPv4") known.add(i.address);
    }
    return known.has(address);
  };
}

function connectUdp(socket: ReturnType<typeof createSocket>, to: UdpEndpoint): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.connect(to.port, to.host, (err?: Error) => (err ? reject(err) : resolve()));
  });
}
