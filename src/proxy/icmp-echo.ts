/**
 * ICMP echo NAT: a guest's ping to an outside address goes out of an unprivileged
 * ICMP ping socket (SOCK_DGRAM, IPPROTO_ICMP), one per guest (address, echo id), and
 * the replies come back to the guest with its own echo id.
 *
 * The kernel rewrites the echo id of what a ping socket sends to the socket's own
 * identifier and delivers only replies carrying it, so sockets cannot be shared
 * between guest ids. A flow idle for `idleTimeoutMs` (60 s) is closed; at most
 * `maxFlows` (1024) are open (the least recently used is closed first, counted
 * "icmp-flow-evicted"), and at most `maxFlowsPerGuest` (64) for one guest (its guest id,
 * stack/guest-bounds.ts): an echo with a new id past that is dropped unanswered,
 * counted "icmp-guest-limit", so one guest cannot evict the others' pings.
 *
 * Where the host forbids ping sockets (net.ipv4.ping_group_range excludes our group)
 * or the native addon is missing, pings to the outside get no answer: logged once,
 * counted per echo ("icmp-ping-socket-denied", "icmp-native-unavailable"). A ping
 * socket the host cannot give (EMFILE) drops that echo unanswered, as libslirp does,
 * counted ("icmp-ping-socket-emfile") and a host fault (log.ts), logged once; the
 * next echo tries again.
 *
 * IPv6: a table of its own (nat-family.ts), with ICMPv6 ping sockets (type 128 out,
 * 129 back; the same sysctl, net.ipv4.ping_group_range, governs them). With NAT64 an
 * echo to prefix::a.b.c.d goes out of an IPv4 ping socket (a flow of its own, key
 * ending in "/4") as ICMP type 8, and its reply comes back to the guest as an ICMPv6
 * echo reply from prefix::a.b.c.d.
 */
import { hostFaults, type Logger } from "../log.js";
import { DropCounters } from "../stack/drop-counters.js";
import { icmpHeaderLength } from "../stack/wire/icmp.js";
import { type HostNet, type HostPing, type HostPingEvent, hostFaultCodes } from "./host-net.js";
import { ipv4NatFamily, type NatFamily } from "./nat-family.js";
import { IdleNatFlows } from "./nat-flows.js";
import type { NatPolicy } from "./nat-policy.js";

/** echo request and reply types of ICMP and of ICMPv6, by socket family */
const echoRequestType = { 4: 8, 6: 128 } as const;
const echoReplyType = { 4: 0, 6: 129 } as const;

export interface GuestEcho<A = number> {
  /** the sender's guest id (stack/guest-bounds.ts) */
  guest: number;
  src: A;
  dst: A;
  id: number;
  seq: number;
  payload: Buffer;
}

export interface EchoToGuest<A = number> {
  /** the address that answered, as the guest sees it */
  src: A;
  dst: A;
  id: number;
  seq: number;
  payload: Buffer;
}

/** A flow as the management API lists it. */
export interface IcmpFlowInfo {
  guest: string;
  echoId: number;
  lastDestination: string;
  echoes: number;
  replies: number;
  ageMs: number;
}

export interface IcmpEchoOptions<A = number> {
  /** the table's address family (IPv4 when absent) */
  family?: NatFamily<A & (number | string)>;
  idleTimeoutMs?: number;
  maxFlows?: number;
  /** echo ids (sockets) one guest may hold (64, at most maxFlows) */
  maxFlowsPerGuest?: number;
}

interface Flow<A> {
  key: string;
  guest: number;
  guestAddr: A;
  guestId: number;
  /** the ping socket's family (4 for an IPv6 guest's NAT64 flow) */
  socketFamily: 4 | 6;
  socket: HostPing;
  lastActive: number;
  created: number;
  lastDst: A;
  echoes: number;
  replies: number;
}

export class IcmpEchoNat<A extends number | string = number> {
  readonly drops = new DropCounters();
  private readonly flows: IdleNatFlows<Flow<A>>;
  private readonly family: NatFamily<A>;
  private warned = new Set<string>();
  echoesSent = 0;
  repliesReceived = 0;

  constructor(
    private readonly host: HostNet,
    private readonly policy: NatPolicy,
    private readonly toGuest: (e: EchoToGuest<A>) => void,
    private readonly log: Logger,
    options: IcmpEchoOptions<A> = {},
  ) {
    this.family = options.family ?? (ipv4NatFamily(policy) as unknown as NatFamily<A>);
    this.flows = new IdleNatFlows({
      idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
      maxFlows: options.maxFlows ?? 1024,
      maxFlowsPerGuest: options.maxFlowsPerGuest ?? 64,
    });
  }

  fromGuest(e: GuestEcho<A>, now: number): void {
    const dest = this.family.destination(e.dst);
    if (!dest.ok) return this.drops.drop(`icmp-${dest.reason}`);
    const flow = this.flowFor(e, now, dest.family ?? this.family.v);
    if (flow === undefined) return;
    // the kernel fills in the id (the socket's) and the checksum
    const msg = Buffer.allocUnsafe(icmpHeaderLength + e.payload.length);
    msg[0] = echoRequestType[flow.socketFamily];
    msg[1] = 0;
    msg.writeUInt16BE(0, 2);
    msg.writeUInt16BE(e.id, 4);
    msg.writeUInt16BE(e.seq, 6);
    e.payload.copy(msg, icmpHeaderLength);
    flow.lastDst = e.dst;
    if (flow.socket.send(msg, dest.address)) {
      this.echoesSent++;
      flow.echoes++;
    } else this.drops.drop("icmp-socket-full");
  }

  nextDeadline(): number | undefined {
    return this.flows.nextDeadline();
  }

  expire(now: number): void {
    for (const flow of this.flows.idle(now)) this.close(flow);
  }

  list(now: number): IcmpFlowInfo[] {
    return this.flows.list(now, (f, ageMs) => ({
      guest: this.family.show(f.guestAddr),
      echoId: f.guestId,
      lastDestination: this.family.show(f.lastDst),
      echoes: f.echoes,
      replies: f.replies,
      ageMs,
    }));
  }

  get size(): number {
    return this.flows.size;
  }

  /** The bounds in force: echo ids in all and per guest. */
  get limits(): { maxFlows: number; maxFlowsPerGuest: number } {
    return this.flows.limits;
  }

  closeAll(): void {
    for (const f of this.flows.values()) this.close(f);
  }

  private flowFor(e: GuestEcho<A>, now: number, socketFamily: 4 | 6): Flow<A> | undefined {
    const key = socketFamily === this.family.v ? `${e.src}:${e.id}` : `${e.src}:${e.id}/4`;
    const known = this.flows.touch(key, now);
    if (known) return known;
    const guest = e.guest;
    if (!this.flows.room(guest, this.evict)) {
      this.drops.drop("icmp-guest-limit");
      return undefined;
    }
    const flow: Flow<A> = {
      key,
      guest,
      guestAddr: e.src,
      guestId: e.id,
      socketFamily,
      socket: undefined as unknown as HostPing,
      lastActive: now,
      created: now,
      lastDst: e.dst,
      echoes: 0,
      replies: 0,
    };
    try {
      flow.socket = this.host.openPing(
        this.policy.outbound(socketFamily),
        (ev) => this.fromHost(flow, ev),
        socketFamily,
      );
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "EIO";
      const reason =
        code === "EACCES"
          ? "icmp-ping-socket-denied"
          : code === "ERR_USERNET_NATIVE_UNAVAILABLE"
            ? "icmp-native-unavailable"
            : `icmp-ping-socket-${code.toLowerCase()}`;
      this.drops.drop(reason);
      if (hostFaultCodes.has(code)) {
        hostFaults.report(
          "icmp-socket",
          code,
          "a guest's echo request was dropped: no ping socket for it",
          {
            error: (err as Error).message,
          },
          this.log,
        );
      } else if (!this.warned.has(reason)) {
        this.warned.add(reason);
        this.log.warn(
          code === "EACCES"
            ? "pings to the outside are not forwarded: the host forbids ping sockets for this group (sysctl net.ipv4.ping_group_range)"
            : `pings to the outside are not forwarded: ${(err as Error).message}`,
        );
      }
      return undefined;
    }
    this.flows.add(flow);
    return flow;
  }

  private fromHost(flow: Flow<A>, ev: HostPingEvent): void {
    if (!this.flows.holds(flow)) return;
    if (ev.type === "error") return this.drops.drop(`icmp-host-${ev.code.toLowerCase()}`);
    const m = ev.message;
    if (m.length < icmpHeaderLength || m[0] !== echoReplyType[flow.socketFamily] || m[1] !== 0)
      return this.drops.drop("icmp-reply-not-echo");
    const src = this.family.guestSource(ev.from);
    if (src === undefined) return this.drops.drop("icmp-reply-source-hidden");
    this.repliesReceived++;
    flow.replies++;
    // the reply's data is a fresh buffer per message (the poller's contract): a view is fine
    const seq = m.readUInt16BE(6);
    this.toGuest({ src, dst: flow.guestAddr, id: flow.guestId, seq, payload: m.subarray(icmpHeaderLength) });
  }

  private readonly evict = (oldest: Flow<A>): void => {
    this.drops.drop("icmp-flow-evicted");
    this.close(oldest);
  };

  private close(flow: Flow<A>): void {
    this.flows.delete(flow);
    flow.socket.close();
  }
}
