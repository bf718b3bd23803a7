/**
 * UDP NAT: each guest source endpoint (address, port) gets its own host UDP socket,
 * as in libslirp. What the guest sends goes out of that socket to the destination the
 * NAT policy allows; whatever that socket receives, from any source, comes back to the
 * guest endpoint as if from that source (a loopback source shows as the gateway).
 *
 * Better than libslirp: a "port unreachable" from the host comes back to the guest
 * from the address the guest sent to, not from 127.0.0.1.
 *
 * Limits: `maxFlows` sockets at once (the least recently used one is closed when a
 * new flow needs room, counted "udp-flow-evicted"); a flow idle for `idleTimeoutMs`
 * (240 s, libslirp's UDP expiry) is closed. Time comes in as `now`; the owner calls
 * `expire(now)` at `nextDeadline()`.
 */
import type { Logger } from "../log.js";
import { DropCounters } from "../stack/drop-counters.js";
import type { GuestUdp, UdpToGuest } from "../stack/user-stack.js";
import { ipv4ToString } from "../stack/wire/addr.js";
import { IcmpUnreachableCode } from "../stack/wire/icmp.js";
import type { HostNet, HostUdp, HostUdpEvent } from "./host-net.js";
import { IdleFlows } from "./idle-flows.js";
import type { NatPolicy } from "./nat-policy.js";

/** How the NAT reaches back into the stack. */
export interface UdpNatSink {
  toGuest(d: UdpToGuest): void;
  unreachable(to: number, from: number, code: number, quote: Buffer): void;
}

export interface UdpNatOptions {
  idleTimeoutMs?: number;
  maxFlows?: number;
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

interface Flow {
  key: string;
  guestAddr: number;
  guestPort: number;
  socket: HostUdp;
  lastActive: number;
  created: number;
  /** the guest-visible destination of the last datagram, and its ICMP quote */
  lastDst: number;
  lastDstPort: number;
  lastQuote: Buffer;
  txPackets: number;
  txBytes: number;
  rxPackets: number;
  rxBytes: number;
}

export class UdpNat {
  readonly drops = new DropCounters();
  private readonly flows: IdleFlows<Flow>;

  constructor(
    private readonly host: HostNet,
    private readonly policy: NatPolicy,
    private readonly sink: UdpNatSink,
    private readonly log: Logger,
    options: UdpNatOptions = {},
  ) {
    this.flows = new IdleFlows(options.idleTimeoutMs ?? 240_000, options.maxFlows ?? 4096);
  }

  /** A datagram from a guest to a destination outside (or to the gateway, meaning the host). */
  fromGuest(d: GuestUdp, now: number): void {
    const dest = this.policy.destination(d.dst);
    if (!dest.ok) {
      this.drops.drop(`udp-${dest.reason}`);
      if (dest.reason !== "destination-not-forwarded") {
        this.sink.unreachable(d.src, d.dst, IcmpUnreachableCode.adminProhibited, d.quote());
      }
      return;
    }
    const flow = this.flowFor(d, now);
    flow.lastDst = d.dst;
    flow.lastDstPort = d.dstPort;
    flow.lastQuote = d.quote();
    flow.txPackets++;
    flow.txBytes += d.payload.length;
    // the socket keeps the buffer until the send completes; the payload is a view of a frame
    flow.socket.send(Buffer.from(d.payload), { address: dest.address, port: d.dstPort });
  }

  nextDeadline(): number | undefined {
    return this.flows.nextDeadline();
  }

  expire(now: number): void {
    for (const flow of this.flows.idle(now)) this.close(flow, "idle");
  }

  list(now: number): UdpFlowInfo[] {
    return [...this.flows.values()].map((f) => ({
      guest: `${ipv4ToString(f.guestAddr)}:${f.guestPort}`,
      lastDestination: `${ipv4ToString(f.lastDst)}:${f.lastDstPort}`,
      txPackets: f.txPackets,
      txBytes: f.txBytes,
      rxPackets: f.rxPackets,
      rxBytes: f.rxBytes,
      ageMs: now - f.created,
    }));
  }

  get size(): number {
    return this.flows.size;
  }

  closeAll(): void {
    for (const f of this.flows.values()) this.close(f, "shutdown");
  }

  private flowFor(d: GuestUdp, now: number): Flow {
    const key = `${d.src}:${d.srcPort}`;
    const known = this.flows.touch(key, now);
    if (known) return known;
    const oldest = this.flows.victim();
    if (oldest) {
      this.drops.drop("udp-flow-evicted");
      this.close(oldest, "evicted");
    }
    const flow: Flow = {
      key,
      guestAddr: d.src,
      guestPort: d.srcPort,
      socket: undefined as unknown as HostUdp,
      lastActive: now,
      created: now,
      lastDst: d.dst,
      lastDstPort: d.dstPort,
      lastQuote: Buffer.alloc(0),
      txPackets: 0,
      txBytes: 0,
      rxPackets: 0,
      rxBytes: 0,
    };
    flow.socket = this.host.bindUdp(this.policy.config.outboundAddr, (e) => this.fromHost(flow, e));
    this.flows.add(flow);
    return flow;
  }

  private fromHost(flow: Flow, e: HostUdpEvent): void {
    if (!this.flows.holds(flow)) return;
    if (e.type === "error") {
      if (e.code === "ECONNREFUSED") {
        this.sink.unreachable(flow.guestAddr, flow.lastDst, IcmpUnreachableCode.port, flow.lastQuote);
      } else if (e.code === "EHOSTUNREACH" || e.code === "ENETUNREACH") {
        this.sink.unreachable(flow.guestAddr, flow.lastDst, IcmpUnreachableCode.host, flow.lastQuote);
      } else {
        this.log.debug("udp host socket error", { code: e.code, guest: flow.key });
      }
      this.drops.drop(`udp-host-${e.code.toLowerCase()}`);
      return;
    }
    const src = this.policy.guestSource(e.from.address);
    if (src === undefined) return this.drops.drop("udp-reply-source-hidden");
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

  private close(flow: Flow, why: string): void {
    this.flows.delete(flow);
    flow.socket.close();
    this.log.debug("udp flow closed", { guest: flow.key, why });
  }
}
