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
 */
import { hostFaults, type Logger } from "../log.js";
import { DropCounters } from "../stack/drop-counters.js";
import { ipv4ToString } from "../stack/wire/addr.js";
import { decodeIcmp, encodeIcmp, icmpHeaderLength } from "../stack/wire/icmp.js";
import { type HostNet, type HostPing, type HostPingEvent, hostFaultCodes } from "./host-net.js";
import { IdleNatFlows } from "./nat-flows.js";
import type { NatPolicy } from "./nat-policy.js";

export interface GuestEcho {
  /** the sender's guest id (stack/guest-bounds.ts) */
  guest: number;
  src: number;
  dst: number;
  id: number;
  seq: number;
  payload: Buffer;
}

export interface EchoToGuest {
  /** the address that answered, as the guest sees it */
  src: number;
  dst: number;
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

export interface IcmpEchoOptions {
  idleTimeoutMs?: number;
  maxFlows?: number;
  /** echo ids (sockets) one guest may hold (64, at most maxFlows) */
  maxFlowsPerGuest?: number;
}

interface Flow {
  key: string;
  guest: number;
  guestAddr: number;
  guestId: number;
  socket: HostPing;
  lastActive: number;
  created: number;
  lastDst: number;
  echoes: number;
  replies: number;
}

export class IcmpEchoNat {
  readonly drops = new DropCounters();
  private readonly flows: IdleNatFlows<Flow>;
  private warned = new Set<string>();
  echoesSent = 0;
  repliesReceived = 0;

  constructor(
    private readonly host: HostNet,
    private readonly policy: NatPolicy,
    private readonly toGuest: (e: EchoToGuest) => void,
    private readonly log: Logger,
    options: IcmpEchoOptions = {},
  ) {
    this.flows = new IdleNatFlows({
      idleTimeoutMs: options.idleTimeoutMs ?? 60_000,
      maxFlows: options.maxFlows ?? 1024,
      maxFlowsPerGuest: options.maxFlowsPerGuest ?? 64,
    });
  }

  fromGuest(e: GuestEcho, now: number): void {
    const dest = this.policy.destination(e.dst);
    if (!dest.ok) return this.drops.drop(`icmp-${dest.reason}`);
    const flow = this.flowFor(e, now);
    if (flow === undefined) return;
    const msg = Buffer.allocUnsafe(icmpHeaderLength + e.payload.length);
    encodeIcmp({ kind: "echo-request", code: 0, id: e.id, seq: e.seq, payload: e.payload }, msg);
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
      guest: ipv4ToString(f.guestAddr),
      echoId: f.guestId,
      lastDestination: ipv4ToString(f.lastDst),
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

  private flowFor(e: GuestEcho, now: number): Flow | undefined {
    const key = `${e.src}:${e.id}`;
    const known = this.flows.touch(key, now);
    if (known) return known;
    const guest = e.guest;
    if (!this.flows.room(guest, this.evict)) {
      this.drops.drop("icmp-guest-limit");
      return undefined;
    }
    const flow: Flow = {
      key,
      guest,
      guestAddr: e.src,
      guestId: e.id,
      socket: undefined as unknown as HostPing,
      lastActive: now,
      created: now,
      lastDst: e.dst,
      echoes: 0,
      replies: 0,
    };
    try {
      flow.socket = this.host.openPing(this.policy.config.outboundAddr, (ev) => this.fromHost(flow, ev));
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

  private fromHost(flow: Flow, ev: HostPingEvent): void {
    if (!this.flows.holds(flow)) return;
    if (ev.type === "error") return this.drops.drop(`icmp-host-${ev.code.toLowerCase()}`);
    const m = decodeIcmp(ev.message);
    if (!m.ok || m.value.kind !== "echo-reply") return this.drops.drop("icmp-reply-not-echo");
    const src = this.policy.guestSource(ev.from);
    if (src === undefined) return this.drops.drop("icmp-reply-source-hidden");
    this.repliesReceived++;
    flow.replies++;
    // the reply's data is a fresh buffer per message (the poller's contract): a view is fine
    this.toGuest({ src, dst: flow.guestAddr, id: flow.guestId, seq: m.value.seq, payload: m.value.payload });
  }

  private readonly evict = (oldest: Flow): void => {
    this.drops.drop("icmp-flow-evicted");
    this.close(oldest);
  };

  private close(flow: Flow): void {
    this.flows.delete(flow);
    flow.socket.close();
  }
}
