/**
 * VXLAN ports (RFC 7348): a hub port whose far side is one or more VXLAN tunnel
 * endpoints (VTEPs): Linux `ip link add ... type vxlan` devices, bridges and fabrics
 * built on them, or another usernet. `-netdev vxlan,vni=N,remote=IP|group=MCAST,
 * local=IP[:PORT][,dstport=4789]`.
 *
 * Theory of operation
 * - One UDP socket. Unicast: bound to `local` (port default `dstport`, where Linux
 *   peers send). Multicast (`group`): bound to 0.0.0.0 at that port with SO_REUSEADDR
 *   (a socket bound to a unicast address would not get group datagrams), joined to the
 *   group on `local`'s interface (or `dev`'s address), TTL 1 and no loopback, as a
 *   Linux vxlan device with a group does.
 * - Receive: each datagram is one frame. The header must be Linux-valid (I flag,
 *   reserved bits zero: vxlan-header.ts) and carry our VNI ("vni-mismatch"
 *   otherwise); the inner frame must hold an Ethernet header ("frame-too-short").
 *   Malformed datagrams are counted by reason and dropped; the port stays up. The
 *   inner source MAC is learned (vxlan-fdb.ts) against the sender's address and the
 *   port *we* must send to: Linux sends from a random source port to the peer's
 *   dstport, so the reply goes to the configured port of that remote (or `dstport`),
 *   never to the sender's port. Like Linux, any sender is accepted: `local` (and the
 *   underlay's firewall) is the access control.
 * - Send: a frame to a learned unicast MAC goes to that VTEP only; every other frame
 *   (broadcast, multicast, unknown or aged-out unicast) is flooded: one copy to each
 *   `remote` (Linux's all-zeros FDB entries) or one to the group. Header and frame go
 *   as one datagram from a two-buffer list (no copy). The hub hands this port
 *   ordinary frames (it does not accept offload marks): checksums complete, no super
 *   frames. Frames longer than a datagram can carry (65499 bytes inside) are dropped
 *   ("frame-too-long").
 * - MTU: VXLAN adds 50 bytes over IPv4. The port reads the underlay interface's MTU
 *   (dev=, or the interface holding `local`) and logs the largest inner MTU that
 *   avoids fragmenting the outer datagram; the first frame above it is logged once
 *   and such frames are counted in `describe()` (the kernel fragments them; Linux
 *   peers reassemble, slowly).
 * - Backpressure: past `maxQueuedBytes` (2 MiB) waiting in libuv, frames are dropped
 *   ("tx-queue-full"); send errors are counted ("send-error") and logged once per code.
 *   The socket asks for 4 MiB buffers (capped by net.core.rmem_max/wmem_max): with the
 *   default 208 KiB a Linux peer's TCP burst overflowed it (9,187 iperf3 retransmits in
 *   5 s over a veth; none with 4 MiB).
 * - node:dgram, not the addon's UDP sockets: measured on loopback, one dgram send of
 *   header + 1464-byte frame cost 6.8-10.2 us of CPU, the addon's sendto 5.0-8.5 us
 *   (with the copy into one buffer): not clearly better, and the addon's sockets have
 *   no fixed port and no multicast options.
 * - Not here: IPv6 underlay, VXLAN-GPE/GBP extensions, ARP/ND proxying, static FDB
 *   entries beyond `remote=`, UDP checksums on the outer datagram (the kernel fills
 *   them; Linux accepts either).
 */

import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { readFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import type { FrameSink, Port, PortStats } from "../hub/port.js";
import { PortCounters } from "../hub/port.js";
import type { Logger } from "../log.js";
import { describeError } from "./address.js";
import { bindUdp, closeQuietly } from "./dgram-port.js";
import { minFrameLength } from "./length-prefixed-frames.js";
import { isMulticastAddress } from "./mcast-port.js";
import { defaultMaxQueuedBytes } from "./stream-port.js";
import { defaultFdbAgeingMs, defaultFdbMaxEntries, type Vtep, VxlanFdb } from "./vxlan-fdb.js";
import { decodeVxlan, encodeVxlanHeader, vxlanHeaderLength, vxlanOverheadIpv4 } from "./vxlan-header.js";

/** the largest inner frame one UDP datagram over IPv4 carries */
export const maxVxlanFrameLength = 65507 - vxlanHeaderLength;
const socketBufferBytes = 4 * 1024 * 1024;

export interface VxlanPortOptions {
  name: string;
  log: Logger;
  vni: number;
  /** unicast VTEPs that get flooded frames (empty with a group) */
  remotes: readonly Vtep[];
  /** a multicast group instead of (or besides) remotes */
  group?: Vtep | undefined;
  /** the underlay interface: joins the group there, and its MTU is the advice's base */
  dev?: string | undefined;
  /** where to bind ("0.0.0.0" = every address) and the UDP port */
  local: Vtep;
  /** where learned VTEPs not among `remotes` listen (4789; Linux's default is 8472) */
  dstport: number;
  ageingMs?: number;
  maxMacs?: number;
  maxQueuedBytes?: number;
  /** ms clock for ageing; default performance.now */
  now?: () => number;
}

export class VxlanPort implements Port {
  readonly kind = "vxlan";
  readonly name: string;
  private readonly counters = new PortCounters();
  private readonly log: Logger;
  private readonly socket: Socket;
  private readonly vni: number;
  private readonly header = Buffer.alloc(vxlanHeaderLength);
  private readonly flood: readonly Vtep[];
  private readonly remotePorts = new Map<string, number>();
  private readonly dstport: number;
  private readonly fdb: VxlanFdb;
  private readonly now: () => number;
  private readonly maxQueuedBytes: number;
  private readonly where: string;
  /** the largest inner frame that travels unfragmented; 0 when the underlay MTU is unknown */
  private readonly maxUnfragmented: number;
  private fragmentedFrames = 0;
  private readonly loggedErrors = new Set<string>();
  private sink: FrameSink | undefined;
  private isClosed = false;

  constructor(options: VxlanPortOptions, socket: Socket, where: string, underlayMtu: number | undefined) {
    this.name = options.name;
    this.log = options.log;
    this.socket = socket;
    this.vni = options.vni;
    encodeVxlanHeader(this.vni, this.header);
    this.flood = options.group ? [...options.remotes, options.group] : [...options.remotes];
    for (const r of options.remotes) if (!this.remotePorts.has(r.host)) this.remotePorts.set(r.host, r.port);
    this.dstport = options.dstport;
    this.fdb = new VxlanFdb(options.ageingMs ?? defaultFdbAgeingMs, options.maxMacs ?? defaultFdbMaxEntries);
    this.now = options.now ?? (() => performance.now());
    this.maxQueuedBytes = options.maxQueuedBytes ?? defaultMaxQueuedBytes;
    this.where = where;
    this.maxUnfragmented = underlayMtu === undefined ? 0 : underlayMtu - vxlanOverheadIpv4 + 14;
    socket.on("message", (msg: Buffer, from: RemoteInfo) => this.fromPeer(msg, from));
    socket.on("error", (err) => this.logOnce("socket error", err));
  }

  send(frames: readonly Buffer[]): void {
    if (this.isClosed) {
      this.counters.drop("closed", frames.length);
      return;
    }
    const now = this.now();
    for (const f of frames) {
      if (f.length < minFrameLength) {
        this.counters.drop("frame-too-short");
        continue;
      }
      if (f.length > maxVxlanFrameLength) {
        this.counters.drop("frame-too-long");
        continue;
      }
      if (this.socket.getSendQueueSize() >= this.maxQueuedBytes) {
        this.counters.drop("tx-queue-full");
        continue;
      }
      if (this.maxUnfragmented > 0 && f.length > this.maxUnfragmented) this.overMtu(f.length);
      const to = this.fdb.lookup(f, now);
      if (to !== undefined) {
        this.counters.countTx(f);
        this.socket.send([this.header, f], to.port, to.host, this.onSent);
        continue;
      }
      if (this.flood.length === 0) {
        this.counters.drop("no-remote");
        continue;
      }
      this.counters.countTx(f);
      for (const r of this.flood) this.socket.send([this.header, f], r.port, r.host, this.onSent);
    }
  }

  setReceiver(sink: FrameSink | undefined): void {
    this.sink = sink;
  }

  stats(): PortStats {
    return this.counters.snapshot();
  }

  /** learned MACs now, for describe() and the tests */
  learned(): { mac: string; vtep: string; ageMs: number }[] {
    return this.fdb.list(this.now());
  }

  describe(): string {
    if (this.isClosed) return "closed";
    const n = this.fdb.size(this.now());
    const extra = [
      `${n} MAC${n === 1 ? "" : "s"} learned`,
      this.fdb.evicted > 0 ? `${this.fdb.evicted} evicted` : "",
      this.fragmentedFrames > 0 ? `${this.fragmentedFrames} frames over the underlay MTU` : "",
    ].filter((s) => s !== "");
    return `${this.where} (${extra.join(", ")})`;
  }

  localAddress(): Vtep {
    const a = this.socket.address();
    return { host: a.address, port: a.port };
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    closeQuietly(this.socket);
  }

  private fromPeer(msg: Buffer, from: RemoteInfo): void {
    if (this.isClosed) return;
    const d = decodeVxlan(msg);
    if (!d.ok) {
      this.counters.drop(d.reason);
      return;
    }
    if (d.vni !== this.vni) {
      this.counters.drop("vni-mismatch");
      return;
    }
    const frame = d.frame;
    if (frame.length < minFrameLength) {
      this.counters.drop("frame-too-short");
      return;
    }
    const port = this.remotePorts.get(from.address) ?? this.dstport;
    this.fdb.learn(frame, { host: from.address, port }, this.now());
    const batch = [frame];
    this.counters.countRx(batch);
    if (this.sink) this.sink(batch);
    else this.counters.drop("no-receiver");
  }

  private overMtu(length: number): void {
    if (this.fragmentedFrames++ > 0) return;
    this.log.warn(
      `a ${length}-byte frame is larger than the underlay carries unfragmented (${this.maxUnfragmented}); ` +
        `set mtu=${this.maxUnfragmented - 14} on the user netdev and the guests (further ones are only counted)`,
      { port: this.name },
    );
  }

  private readonly onSent = (err: Error | null): void => {
    if (!err) return;
    this.counters.drop("send-error");
    this.logOnce("send failed", err);
  };

  private logOnce(what: string, err: Error): void {
    const code = (err as NodeJS.ErrnoException).code ?? err.message;
    if (this.loggedErrors.has(code)) return;
    this.loggedErrors.add(code);
    this.log.warn(`${what} (further ones of this kind are only counted)`, {
      port: this.name,
      error: describeError(err),
    });
  }
}

/** The IPv4 address of interface `dev`, or undefined. */
function addressOf(dev: string): string | undefined {
  return networkInterfaces()[dev]?.find((i) => i.family === "IPv4")?.address;
}

/** The interface holding IPv4 address `host`, or undefined. */
function interfaceOf(host: string): string | undefined {
  for (const [name, list] of Object.entries(networkInterfaces())) {
    if (list?.some((i) => i.family === "IPv4" && i.address === host)) return name;
  }
  return undefined;
}

function mtuOf(dev: string | undefined): number | undefined {
  if (dev === undefined || !/^[^/\0]{1,15}$/.test(dev) || dev === "." || dev === "..") return undefined;
  try {
    const n = Number(readFileSync(`/sys/class/net/${dev}/mtu`, "utf8").trim());
    return Number.isInteger(n) && n >= 68 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Opens the socket (joining the group if any) and logs the MTU advice; rejects with
 * an Error naming the address, group or interface that failed.
 */
export async function openVxlanPort(options: VxlanPortOptions): Promise<VxlanPort> {
  const { name, local, group, dev } = options;
  if (group && !isMulticastAddress(group.host)) {
    throw new Error(`${name}: group ${group.host} is not an IPv4 multicast address (224.0.0.0/4)`);
  }
  const anyLocal = local.host === "" || local.host === "0.0.0.0";
  let ifaceAddr = anyLocal ? undefined : local.host;
  if (dev !== undefined) {
    const a = addressOf(dev);
    if (a === undefined) throw new Error(`${name}: dev=${dev}: no such interface with an IPv4 address`);
    ifaceAddr ??= a;
  }
  // a burst from a fast peer waits in the kernel while the event loop is busy, instead
  // of being dropped at the default 208 KiB (the kernel caps this at net.core.rmem_max)
  const socket = createSocket({
    type: "udp4",
    reuseAddr: group !== undefined,
    recvBufferSize: socketBufferBytes,
    sendBufferSize: socketBufferBytes,
  });
  const bound = await bindUdp(socket, group ? "" : local.host, local.port, name);
  if (group) {
    try {
      socket.addMembership(group.host, ifaceAddr);
      if (ifaceAddr !== undefined) socket.setMulticastInterface(ifaceAddr);
      socket.setMulticastTTL(1);
      socket.setMulticastLoopback(false);
    } catch (err) {
      closeQuietly(socket);
      const on = ifaceAddr ? ` on ${ifaceAddr}` : "";
      throw new Error(`${name}: cannot join multicast group ${group.host}${on}: ${describeError(err)}`);
    }
  }
  const underlay = dev ?? (ifaceAddr !== undefined ? interfaceOf(ifaceAddr) : undefined);
  const mtu = mtuOf(underlay);
  const peers = [
    ...options.remotes.map((r) => `${r.host}:${r.port}`),
    ...(group ? [`group ${group.host}:${group.port}`] : []),
  ];
  const where = `vxlan vni ${options.vni} on ${bound.host}:${bound.port} -> ${peers.join(", ") || "learned VTEPs only"}`;
  const port = new VxlanPort(options, socket, where, mtu);
  if (mtu !== undefined) {
    options.log.info(
      `VXLAN adds ${vxlanOverheadIpv4} bytes: the underlay ${underlay} has MTU ${mtu}, so give the user netdev and the guests mtu=${mtu - vxlanOverheadIpv4} or less (the Linux peer's vxlan device picks ${mtu - vxlanOverheadIpv4} itself)`,
    );
  } else {
    options.log.info(
      `VXLAN adds ${vxlanOverheadIpv4} bytes: give the user netdev and the guests an MTU ${vxlanOverheadIpv4} below the underlay's (mtu=1450 on a 1500-byte network)`,
    );
  }
  return port;
}
