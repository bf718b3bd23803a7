/**
 * UDP NAT: each guest source endpoint (address, port) gets its own host UDP socket,
 * as in libslirp. What the guest sends goes out of that socket to the destination the
 * NAT policy allows; whatever that socket receives, from any source, comes back to the
 * guest endpoint as if from that source (a loopback source shows as the gateway).
 *
 * ICMP errors: the socket is unconnected (one socket talks to any number of peers, as
 * a guest's unconnected socket does), so Linux tells it of an ICMP error only through
 * IP_RECVERR and its error queue, which host-net.ts reads ("icmp" events: the error,
 * and the destination of the datagram it concerns). We chose that over a connected
 * socket per (guest endpoint, destination): the error queue names the destination, so
 * one socket per guest endpoint keeps the NAT's shape (a reply from any source still
 * reaches the guest, as full-cone NAT and libslirp give), and no flow costs a second
 * socket. Each error goes to the guest as the matching ICMP message — port, host,
 * network, protocol unreachable and administratively prohibited keep their code; TTL
 * exceeded becomes time exceeded — quoting an IP and UDP header rebuilt from what the
 * guest sent (addresses, ports, length; like the stack's own quotes, not the original
 * bytes, which we do not keep). An unreachable comes from the address the guest sent
 * to (libslirp sends its port unreachable from 127.0.0.1), a time exceeded from the
 * router that reported it. "Fragmentation needed" is not passed on: the host
 * fragments for its own path, the guest's link MTU is ours. A send the host refuses
 * at once for want of a route (EHOSTUNREACH, ENETUNREACH) or by a firewall rule
 * (EPERM, EACCES) is answered the same way, from the destination.
 *
 * Host faults (log.ts): a datagram that gets no host socket (EMFILE, EADDRNOTAVAIL)
 * or that the host will not send (ENOBUFS: a full device queue, which Linux reports
 * only to IP_RECVERR sockets; EAGAIN: a full send buffer) is dropped unanswered, as
 * libslirp drops it, counted as a drop ("udp-host-socket-emfile", "udp-host-enobufs")
 * and as a host fault, logged once.
 *
 * Limits: `maxFlows` sockets at once (4096; the least recently used one is closed when
 * a new flow needs room, counted "udp-flow-evicted"); `maxFlowsPerGuest` sockets for
 * one guest (1024; its guest id, stack/guest-bounds.ts): a datagram that would need
 * one more is dropped, counted "udp-guest-limit", with no ICMP answer (a host out of
 * sockets fails the sender's socket call; nothing comes back on the wire), so one
 * guest cannot take the whole table from the others; a flow with no datagram either
 * way for `idleTimeoutMs` (240 s, libslirp's UDP expiry; activity is stamped to the
 * second) is closed. Time comes in as `now`; the owner calls
 * `expire(now)` at `nextDeadline()`.
 *
 * IPv6: one table per family (nat-family.ts says how its addresses look). An IPv6
 * guest endpoint gets an IPv6-only socket; with NAT64 its datagrams to the NAT64
 * prefix go out of a second flow with an IPv4 socket (the key then ends in "/4"), and
 * replies from IPv4 peers show as prefix::a.b.c.d. Host ICMP errors come in ICMP
 * numbering for both families; the IPv6 sink sends ICMPv6.
 */
import { hostFaults, type Logger } from "../log.js";
import { DropCounters } from "../stack/drop-counters.js";
import { IcmpType, IcmpUnreachableCode } from "../stack/wire/icmp.js";
import { udpHeaderLength } from "../stack/wire/udp.js";
import { type HostNet, type HostUdp, type HostUdpEvent, hostFaultCodes } from "./host-net.js";
import { ipv4NatFamily, type NatFamily } from "./nat-family.js";
import { IdleNatFlows } from "./nat-flows.js";
import type { NatPolicy } from "./nat-policy.js";

/** A guest datagram as the NAT takes it; addresses as the table's family keeps them. */
export interface NatDatagram<A> {
  /** the sender's guest id (stack/guest-bounds.ts) */
  guest: number;
  src: A;
  srcPort: number;
  dst: A;
  dstPort: number;
  /** a view of the frame, valid only during the call */
  payload: Buffer;
  /** what an ICMP error quotes of it */
  quote(): Buffer;
}

/** A datagram for a guest. */
export interface NatDatagramToGuest<A> {
  src: A;
  srcPort: number;
  dst: A;
  dstPort: number;
  payload: Buffer;
}

/** How the NAT reaches back into the stack; errors in ICMP numbering (nat-family.ts). */
export interface UdpNatSink<A = number> {
  toGuest(d: NatDatagramToGuest<A>): void;
  unreachable(to: A, from: A, code: number, quote: Buffer): void;
  timeExceeded(to: A, from: A, code: number, quote: Buffer): void;
}

export interface UdpNatOptions<A = number> {
  /** the table's address family (IPv4 when absent) */
  family?: NatFamily<A & (number | string)>;
  idleTimeoutMs?: number;
  maxFlows?: number;
  /** host sockets one guest may hold (1024, at most maxFlows) */
  maxFlowsPerGuest?: number;
  /** the clock for replies' activity (default: the last `now` the NAT was given) */
  now?: () => number;
}

export interface UdpFlowInfo {
  guest: string;
  lastDestination: string;
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
  ageMs: number;
}

interface Flow<A> {
  key: string;
  guest: number;
  guestAddr: A;
  guestPort: number;
  socket: HostUdp;
  lastActive: number;
  created: number;
  /** false once closed: late events and the `recent` shortcut then ignore it */
  open: boolean;
  /** the guest-visible destination of the last datagram, where it went, and its UDP length */
  lastDst: A;
  lastAddress: string;
  lastDstPort: number;
  lastLength: number;
  /** the last reply's host source address, and how the guest sees it */
  lastFrom: string;
  lastFromGuest: A | undefined;
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
}

/** how stale a flow's activity stamp may get before it moves in the idle order */
const activityGranularityMs = 1000;

export class UdpNat<A extends number | string = number> {
  readonly drops = new DropCounters();
  private readonly flows: IdleNatFlows<Flow<A>>;
  /** the flow of the last guest datagram */
  private recent: Flow<A> | undefined;
  private readonly now: () => number;
  private lastNow = 0;
  private readonly family: NatFamily<A>;

  constructor(
    private readonly host: HostNet,
    private readonly policy: NatPolicy,
    private readonly sink: UdpNatSink<A>,
    private readonly log: Logger,
    options: UdpNatOptions<A> = {},
  ) {
    this.family = options.family ?? (ipv4NatFamily(policy) as unknown as NatFamily<A>);
    this.flows = new IdleNatFlows({
      idleTimeoutMs: options.idleTimeoutMs ?? 240_000,
      maxFlows: options.maxFlows ?? 4096,
      maxFlowsPerGuest: options.maxFlowsPerGuest ?? 1024,
    });
    this.now = options.now ?? (() => this.lastNow);
  }

  /** A datagram from a guest to a destination outside (or to the gateway, meaning the host). */
  fromGuest(d: NatDatagram<A>, now: number): void {
    this.lastNow = now;
    // a stream of datagrams from one guest socket to one destination (the common
    // case) skips the table and the policy: both answers are the flow's last ones
    let flow = this.recent;
    let address: string;
    if (flow?.open && flow.guestAddr === d.src && flow.guestPort === d.srcPort && flow.lastDst === d.dst) {
      address = flow.lastAddress;
      this.active(flow, now);
    } else {
      const dest = this.family.destination(d.dst);
      if (!dest.ok) {
        this.drops.drop(`udp-${dest.reason}`);
        if (dest.reason !== "destination-not-forwarded") {
          this.sink.unreachable(d.src, d.dst, IcmpUnreachableCode.adminProhibited, d.quote());
        }
        return;
      }
      const found = this.flowFor(d, now, dest.family ?? this.family.v);
      if (typeof found === "string") return this.drops.drop(found);
      flow = found;
      address = dest.address;
      flow.lastDst = d.dst;
      flow.lastAddress = address;
      this.recent = flow;
    }
    flow.lastDstPort = d.dstPort;
    flow.lastLength = udpHeaderLength + d.payload.length;
    flow.txPackets++;
    flow.txBytes += d.payload.length;
    // the payload is a view of a frame: the socket sends it now or copies it
    const refused = flow.socket.send(d.payload, address, d.dstPort);
    if (refused === undefined) return;
    this.drops.drop(`udp-host-${refused.toLowerCase()}`);
    // no route on the host: what a router there would have answered
    const code = unreachableCodes[refused];
    if (code !== undefined) return this.sink.unreachable(d.src, d.dst, code, d.quote());
    hostFaults.report(
      "udp-send",
      refused,
      "a guest's datagram was dropped",
      {
        to: `${address}:${d.dstPort}`,
      },
      this.log,
    );
  }

  nextDeadline(): number | undefined {
    return this.flows.nextDeadline();
  }

  expire(now: number): void {
    this.lastNow = now;
    for (const flow of this.flows.idle(now)) this.close(flow, "idle");
  }

  list(now: number): UdpFlowInfo[] {
    return this.flows.list(now, (f, ageMs) => ({
      guest: this.endpoint(f.guestAddr, f.guestPort),
      lastDestination: this.endpoint(f.lastDst, f.lastDstPort),
      txPackets: f.txPackets,
      txBytes: f.txBytes,
      rxPackets: f.rxPackets,
      rxBytes: f.rxBytes,
      ageMs,
    }));
  }

  get size(): number {
    return this.flows.size;
  }

  /** The bounds in force: sockets in all and per guest. */
  get limits(): { maxFlows: number; maxFlowsPerGuest: number } {
    return this.flows.limits;
  }

  closeAll(): void {
    for (const f of this.flows.values()) this.close(f, "shutdown");
  }

  /**
   * Marks a flow active. The table's idle order moves at most once a second per flow:
   * expiry and eviction are that much coarser, and a flood does not reorder the Map
   * for every datagram.
   */
  private endpoint(a: A, port: number): string {
    return this.family.v === 6 ? `[${this.family.show(a)}]:${port}` : `${this.family.show(a)}:${port}`;
  }

  private active(flow: Flow<A>, now: number): void {
    if (now - flow.lastActive >= activityGranularityMs) this.flows.touch(flow.key, now);
  }

  /** The guest endpoint's flow, new if need be, or the drop reason when there can be none. */
  private flowFor(d: NatDatagram<A>, now: number, family: 4 | 6): Flow<A> | string {
    // an IPv6 endpoint's NAT64 flow (an IPv4 socket) is a flow of its own
    const key = family === this.family.v ? `${d.src}:${d.srcPort}` : `${d.src}:${d.srcPort}/4`;
    const known = this.flows.get(key);
    if (known) {
      this.active(known, now);
      return known;
    }
    const guest = d.guest;
    if (!this.flows.room(guest, this.evict)) return "udp-guest-limit";
    const flow: Flow<A> = {
      key,
      guest,
      guestAddr: d.src,
      guestPort: d.srcPort,
      socket: undefined as unknown as HostUdp,
      lastActive: now,
      created: now,
      open: true,
      lastDst: d.dst,
      lastAddress: "",
      lastDstPort: d.dstPort,
      lastLength: 0,
      lastFrom: "",
      lastFromGuest: undefined,
      txPackets: 0,
      txBytes: 0,
      rxPackets: 0,
      rxBytes: 0,
    };
    try {
      flow.socket = this.host.bindUdp(this.policy.outbound(family), (e) => this.fromHost(flow, e), family);
    } catch (err) {
      // EMFILE, or the outbound address gone (EADDRNOTAVAIL): as libslirp, the
      // datagram is dropped unanswered; the next one tries again
      const code = (err as NodeJS.ErrnoException).code ?? "EIO";
      hostFaults.report(
        "udp-socket",
        code,
        "a guest's datagram was dropped: no host socket for it",
        {
          error: (err as Error).message,
        },
        this.log,
      );
      return `udp-host-socket-${code.toLowerCase()}`;
    }
    this.flows.add(flow);
    return flow;
  }

  private fromHost(flow: Flow<A>, e: HostUdpEvent): void {
    if (!flow.open) return;
    if (e.type === "error") {
      this.log.debug("udp host socket error", { code: e.code, guest: flow.key });
      this.drops.drop(`udp-host-${e.code.toLowerCase()}`);
      if (hostFaultCodes.has(e.code))
        hostFaults.report("udp-socket", e.code, "a host socket failed", {}, this.log);
      return;
    }
    if (e.type === "icmp") return this.icmpFromHost(flow, e);
    let src = flow.lastFromGuest;
    if (e.from.address !== flow.lastFrom) {
      src = this.family.guestSource(e.from.address);
      flow.lastFrom = e.from.address;
      flow.lastFromGuest = src;
    }
    if (src === undefined) return this.drops.drop("udp-reply-source-hidden");
    // replies keep a flow alive too (a guest that only listens after one request)
    this.active(flow, this.now());
    flow.rxPackets++;
    flow.rxBytes += e.data.length;
    this.sink.toGuest({
      src,
      srcPort: e.from.port,
      dst: flow.guestAddr,
      dstPort: flow.guestPort,
      payload: e.data,
    });
  }

  private icmpFromHost(flow: Flow<A>, e: Extract<HostUdpEvent, { type: "icmp" }>): void {
    // the address the guest sent to, as it sees it (the host's loopback is the gateway)
    const dst = this.family.guestSource(e.to.address);
    if (dst === undefined) return this.drops.drop("udp-icmp-source-hidden");
    const sameAsLast = dst === flow.lastDst && e.to.port === flow.lastDstPort;
    const length = sameAsLast ? flow.lastLength : udpHeaderLength + e.length;
    const quote = this.family.udpQuote(flow.guestAddr, dst, flow.guestPort, e.to.port, length);
    if (e.icmpType === IcmpType.destUnreachable && e.icmpCode !== IcmpUnreachableCode.fragmentationNeeded) {
      this.drops.drop(`udp-icmp-unreachable-${e.icmpCode}`);
      return this.sink.unreachable(flow.guestAddr, dst, e.icmpCode, quote);
    }
    if (e.icmpType === IcmpType.timeExceeded) {
      const router = this.family.guestSource(e.reporter);
      if (router === undefined) return this.drops.drop("udp-icmp-source-hidden");
      this.drops.drop("udp-icmp-time-exceeded");
      return this.sink.timeExceeded(flow.guestAddr, router, e.icmpCode, quote);
    }
    this.drops.drop(`udp-icmp-ignored-${e.icmpType}-${e.icmpCode}`);
  }

  private readonly evict = (oldest: Flow<A>): void => {
    this.drops.drop("udp-flow-evicted");
    this.close(oldest, "evicted");
  };

  private close(flow: Flow<A>, why: string): void {
    flow.open = false;
    if (this.recent === flow) this.recent = undefined;
    this.flows.delete(flow);
    flow.socket.close();
    this.log.debug("udp flow closed", { guest: flow.key, why });
  }
}

/** A send the host refused at once, as the unreachable a router would have sent. */
const unreachableCodes: Record<string, number> = {
  EHOSTUNREACH: IcmpUnreachableCode.host,
  ENETUNREACH: IcmpUnreachableCode.net,
  EACCES: IcmpUnreachableCode.adminProhibited,
  EPERM: IcmpUnreachableCode.adminProhibited,
};
