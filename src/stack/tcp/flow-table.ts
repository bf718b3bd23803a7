/**
 * The table of guest TCP connections: 4-tuple → endpoint, with a bound per guest, the
 * tuples in TIME_WAIT, and the RST answer for a segment that belongs to no connection.
 *
 * Theory of operation: the stack looks a guest segment up by (guest address, guest port,
 * remote address, remote port). An unknown SYN (no ACK, no RST) opens a passive endpoint
 * through `open`, which refuses once the guest holds `maxFlowsPerGuest` connections (or
 * the table `maxFlows`) and counts the refusal; the stack then answers the SYN with
 * `rstFor` (what libslirp does when it cannot take a connection is to RST too). The
 * stack deletes an entry when its endpoint emits `closed`, and `retire`s it when the
 * endpoint emits `time-wait`: the endpoint goes, a compact record stays in `timeWait`
 * (time-wait.ts) for `timeWaitMs`, and counts against no bound, so connections that
 * are over never stop a guest from opening new ones. A segment for a tuple with no
 * endpoint is answered from that record if there is one (`TimeWaitTable.input`: re-ACK
 * a retransmitted FIN, or let a new SYN reopen the tuple), otherwise with `rstFor`.
 * Nothing here runs timers.
 *
 * A guest is who the stack says it is, not the source address it claims: the caller
 * passes a guest key with every open, the guest id of the frame's hub port and MAC
 * (stack/guest-bounds.ts) for a guest SYN, `guestKeyOfAddr` only where no guest is
 * known (a port forward to an address no guest has used yet). A guest that cycles
 * through source addresses therefore stays within its own bound, and one that cycles
 * through MACs within its port's few identities.
 *
 * Defaults: 32,768 connections per guest (a Linux guest has ~28,000 ephemeral
 * ports per destination; slirp4netns holds 10,000), 65,536 in the table, 16,384
 * TIME_WAIT records.
 *
 * Keys are strings of six UTF-16 code units (the 96 bits of the tuple): 96 bits do not
 * fit a JS number and a string key is what a Map hashes fastest short of that. Built
 * by one String.fromCharCode, a key is one flat 32-byte string; a template literal
 * would leave a tree of string pieces behind each key a TIME_WAIT record keeps (~170
 * bytes more per record, measured).
 */
import type { ByteBudget } from "../guest-bounds.js";
import { type Ipv6Address, ipv6Copy, ipv6Key, sameIpv6 } from "../wire/ipv6-addr.js";
import { seqAdd } from "../wire/seq.js";
import { TcpFlag, type TcpSegment } from "../wire/tcp.js";
import {
  TcpEndpoint,
  type TcpEndpointOptions,
  type TcpOutput,
  type TcpTuple,
  tcpEndpointDefaults,
} from "./tcp-endpoint.js";
import { type TimeWaitAnswer, TimeWaitTable } from "./time-wait.js";

export interface TcpFlowTableOptions {
  /** connections one guest (hub port and MAC) may hold at once (TIME_WAIT not counted) */
  maxFlowsPerGuest: number;
  /** connections in the whole table (TIME_WAIT not counted) */
  maxFlows: number;
  /** TIME_WAIT records; the oldest is recycled beyond this */
  maxTimeWait: number;
  /** options for the endpoints `open` creates */
  endpoint: Partial<TcpEndpointOptions>;
  /** bytes of guest data buffered, per guest and in all (guest-bounds.ts); unbounded when absent */
  budget?: ByteBudget;
}

export const tcpFlowTableDefaults: TcpFlowTableOptions = Object.freeze({
  maxFlowsPerGuest: 32768,
  maxFlows: 65536,
  maxTimeWait: 16384,
  endpoint: {},
});

/**
 * The bounds for max-flows= and max-flows-per-guest= as given (either may be absent):
 * a per-guest bound alone raises the total to match; a total alone caps the per-guest
 * default.
 */
export function tcpFlowLimits(
  maxFlows: number | undefined,
  maxFlowsPerGuest: number | undefined,
): Pick<TcpFlowTableOptions, "maxFlows" | "maxFlowsPerGuest"> {
  const total = maxFlows ?? Math.max(tcpFlowTableDefaults.maxFlows, maxFlowsPerGuest ?? 0);
  return {
    maxFlows: total,
    maxFlowsPerGuest: Math.min(total, maxFlowsPerGuest ?? tcpFlowTableDefaults.maxFlowsPerGuest),
  };
}

export interface TcpFlowTableCounters {
  opened: number;
  /** SYNs refused because a bound was reached */
  refused: number;
  /** RSTs generated for segments of unknown flows */
  resets: number;
}

const { fin: FIN, syn: SYN, rst: RST, ack: ACK } = TcpFlag;

/** The guest key for an address whose guest is unknown: above every guest id, so the two never meet. */
export function guestKeyOfAddr(addr: number): number {
  return 0x1_0000_0000_0000 + (addr >>> 0);
}

export function tcpTupleKey(t: TcpTuple): string {
  if (t.guestAddr6 !== undefined) {
    return tcpTupleKey6(t.guestAddr6, t.guestPort, t.remoteAddr6 as Ipv6Address, t.remotePort);
  }
  return String.fromCharCode(
    t.guestAddr >>> 16,
    t.guestAddr & 0xffff,
    t.guestPort,
    t.remoteAddr >>> 16,
    t.remoteAddr & 0xffff,
    t.remotePort,
  );
}

/**
 * The key of an IPv6 tuple: the addresses' eight code units each and the ports, 18 code
 * units (an IPv4 key has 6, so the two never meet). The addresses may be frame views.
 */
export function tcpTupleKey6(
  guest: Uint8Array,
  guestPort: number,
  remote: Uint8Array,
  remotePort: number,
): string {
  return ipv6Key(guest) + String.fromCharCode(guestPort) + ipv6Key(remote) + String.fromCharCode(remotePort);
}

/** The tuple of an IPv6 segment sent by the guest from `src` to `dst` (the addresses copied). */
export function tcpTupleFromGuest6(src: Uint8Array, dst: Uint8Array, seg: TcpSegment): TcpTuple {
  return {
    guestAddr: 0,
    guestPort: seg.srcPort,
    remoteAddr: 0,
    remotePort: seg.dstPort,
    guestAddr6: ipv6Copy(src),
    remoteAddr6: ipv6Copy(dst),
  };
}

/** The tuple of a segment sent by the guest from `src` to `dst`. */
export function tcpTupleFromGuest(src: number, dst: number, seg: TcpSegment): TcpTuple {
  return { guestAddr: src >>> 0, guestPort: seg.srcPort, remoteAddr: dst >>> 0, remotePort: seg.dstPort };
}

/** True for a segment that may open a connection: SYN without ACK and RST. */
export const isTcpOpen = (seg: TcpSegment): boolean => (seg.flags & (SYN | ACK | RST)) === SYN;

/**
 * The RST answering `seg` (from the guest at `src` to `dst`) when no connection exists
 * (RFC 9293 §3.10.7.1): none for a RST; with ACK, <SEQ=SEG.ACK><CTL=RST>; otherwise
 * <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, SYN and FIN counting in SEG.LEN.
 */
export function rstFor(src: number, dst: number, seg: TcpSegment): TcpOutput | undefined {
  if (seg.flags & RST) return undefined;
  const base = {
    srcPort: seg.dstPort,
    dstPort: seg.srcPort,
    window: 0,
    urgent: 0,
    payload: Buffer.alloc(0),
  };
  const reply: TcpSegment =
    seg.flags & ACK
      ? { ...base, seq: seg.ack, ack: 0, flags: RST }
      : {
          ...base,
          seq: 0,
          ack: seqAdd(seg.seq, seg.payload.length + (seg.flags & SYN ? 1 : 0) + (seg.flags & FIN ? 1 : 0)),
          flags: RST | ACK,
        };
  return { src: dst >>> 0, dst: src >>> 0, seg: reply };
}

/** `rstFor` over IPv6: the answer goes from `dst` to `src` (copied). */
export function rstFor6(src: Uint8Array, dst: Uint8Array, seg: TcpSegment): TcpOutput | undefined {
  const r = rstFor(0, 0, seg);
  if (r === undefined) return undefined;
  r.src6 = ipv6Copy(dst);
  r.dst6 = ipv6Copy(src);
  return r;
}

export class TcpFlowTable {
  readonly counters: TcpFlowTableCounters = { opened: 0, refused: 0, resets: 0 };
  /** tuples in TIME_WAIT, without endpoints */
  readonly timeWait: TimeWaitTable;
  private readonly o: TcpFlowTableOptions;
  private readonly flows = new Map<string, TcpEndpoint>();
  /** guest key → connections it holds */
  private readonly perGuest = new Map<number, number>();
  /** endpoint → the guest key it counts against (touched on open and close only) */
  private readonly owners = new Map<TcpEndpoint, number>();
  /**
   * The endpoint the last lookup found: a bulk transfer sends one ACK per two segments
   * on the same connection, and comparing four numbers costs far less than building the
   * string key. Cleared when that endpoint's entry goes.
   */
  private recent: TcpEndpoint | undefined;

  constructor(options: Partial<TcpFlowTableOptions> = {}) {
    this.o = { ...tcpFlowTableDefaults, ...options };
    this.timeWait = new TimeWaitTable(
      this.o.maxTimeWait,
      this.o.endpoint.timeWaitMs ?? tcpEndpointDefaults.timeWaitMs,
    );
  }

  /** The bounds in force. */
  get limits(): { maxFlows: number; maxFlowsPerGuest: number; maxTimeWait: number } {
    return {
      maxFlows: this.o.maxFlows,
      maxFlowsPerGuest: this.o.maxFlowsPerGuest,
      maxTimeWait: this.o.maxTimeWait,
    };
  }

  get size(): number {
    return this.flows.size;
  }

  /** Connections the guest with this key (a guest id, `guestKeyOfAddr`) holds. */
  countFor(guest: number): number {
    return this.perGuest.get(guest) ?? 0;
  }

  /** The guest key `ep` counts against; 0 when it is not in the table. */
  ownerOf(ep: TcpEndpoint): number {
    return this.owners.get(ep) ?? 0;
  }

  get(t: TcpTuple): TcpEndpoint | undefined {
    return this.flows.get(tcpTupleKey(t));
  }

  /** The endpoint for a guest segment from `src` to `dst`, if any. */
  lookup(src: number, dst: number, seg: TcpSegment): TcpEndpoint | undefined {
    const r = this.recent;
    if (r !== undefined) {
      const t = r.tuple;
      if (
        t.guestPort === seg.srcPort &&
        t.remotePort === seg.dstPort &&
        t.guestAddr === src >>> 0 &&
        t.remoteAddr === dst >>> 0
      )
        return r;
    }
    const ep = this.flows.get(tcpTupleKey(tcpTupleFromGuest(src, dst, seg)));
    if (ep !== undefined) this.recent = ep;
    return ep;
  }

  /** The endpoint for a guest IPv6 segment from `src` to `dst` (views), if any. */
  lookup6(src: Uint8Array, dst: Uint8Array, seg: TcpSegment): TcpEndpoint | undefined {
    const r = this.recent;
    if (r !== undefined) {
      const t = r.tuple;
      if (
        t.guestAddr6 !== undefined &&
        t.guestPort === seg.srcPort &&
        t.remotePort === seg.dstPort &&
        sameIpv6(t.guestAddr6, src) &&
        sameIpv6(t.remoteAddr6 as Ipv6Address, dst)
      )
        return r;
    }
    const ep = this.flows.get(tcpTupleKey6(src, seg.srcPort, dst, seg.dstPort));
    if (ep !== undefined) this.recent = ep;
    return ep;
  }

  /** `open` for an IPv6 SYN. */
  open6(src: Uint8Array, dst: Uint8Array, seg: TcpSegment, guest: number): TcpEndpoint | undefined {
    const tuple = tcpTupleFromGuest6(src, dst, seg);
    const existing = this.get(tuple);
    if (existing) return existing;
    return this.insert(tuple, TcpEndpoint.listen(tuple, this.o.endpoint), guest);
  }

  /** `timeWaitInput` for an IPv6 segment. */
  timeWaitInput6(src: Uint8Array, dst: Uint8Array, seg: TcpSegment, now: number): TimeWaitAnswer | undefined {
    if (this.timeWait.size === 0) return undefined;
    const a = this.timeWait.input(tcpTupleKey6(src, seg.srcPort, dst, seg.dstPort), 0, 0, seg, now);
    if (a?.reply !== undefined) {
      a.reply.src6 = ipv6Copy(dst);
      a.reply.dst6 = ipv6Copy(src);
    }
    return a;
  }

  /** `reject` for an IPv6 segment. */
  reject6(src: Uint8Array, dst: Uint8Array, seg: TcpSegment): TcpOutput | undefined {
    const r = rstFor6(src, dst, seg);
    if (r) this.counters.resets++;
    return r;
  }

  /**
   * Opens a passive endpoint for the guest SYN `seg` (not yet fed to it), counted
   * against `guest`; undefined when a bound is reached (counted). An existing endpoint
   * is returned as it is.
   */
  open(src: number, dst: number, seg: TcpSegment, guest: number): TcpEndpoint | undefined {
    const tuple = tcpTupleFromGuest(src, dst, seg);
    const existing = this.get(tuple);
    if (existing) return existing;
    return this.insert(tuple, TcpEndpoint.listen(tuple, this.o.endpoint), guest);
  }

  /**
   * The answer from TIME_WAIT for a guest segment on a tuple without an endpoint;
   * undefined when the tuple is not in TIME_WAIT.
   */
  timeWaitInput(src: number, dst: number, seg: TcpSegment, now: number): TimeWaitAnswer | undefined {
    if (this.timeWait.size === 0) return undefined;
    return this.timeWait.input(tcpTupleKey(tcpTupleFromGuest(src, dst, seg)), src, dst, seg, now);
  }

  /**
   * Removes the entry of an endpoint that entered TIME_WAIT and keeps its TIME_WAIT
   * record instead; false if the endpoint was not in the table.
   */
  retire(ep: TcpEndpoint, now: number): boolean {
    if (this.get(ep.tuple) !== ep || !this.delete(ep.tuple)) return false;
    this.timeWait.add(tcpTupleKey(ep.tuple), ep.timeWaitRecord(), now);
    return true;
  }

  /** Adds an endpoint (e.g. an active open for a port forward); false when a bound is reached or the tuple is taken. */
  add(endpoint: TcpEndpoint, guest: number): boolean {
    if (this.get(endpoint.tuple)) return false;
    return this.insert(endpoint.tuple, endpoint, guest) !== undefined;
  }

  private insert(tuple: TcpTuple, ep: TcpEndpoint, guest: number): TcpEndpoint | undefined {
    const n = this.countFor(guest);
    if (n >= this.o.maxFlowsPerGuest || this.flows.size >= this.o.maxFlows) {
      this.counters.refused++;
      return undefined;
    }
    const key = tcpTupleKey(tuple);
    this.flows.set(key, ep);
    // a connection on a tuple ends its TIME_WAIT (an active open, or a SYN that reopened it)
    if (this.timeWait.size > 0) this.timeWait.remove(key);
    this.perGuest.set(guest, n + 1);
    this.owners.set(ep, guest);
    if (this.o.budget !== undefined) ep.chargeTo(this.o.budget, guest);
    this.counters.opened++;
    return ep;
  }

  /** Removes the entry for `t` (when its endpoint emitted `closed`); false if absent. */
  delete(t: TcpTuple): boolean {
    const key = tcpTupleKey(t);
    const ep = this.flows.get(key);
    if (ep === undefined) return false;
    this.flows.delete(key);
    ep.uncharge();
    if (ep === this.recent) this.recent = undefined;
    const g = this.owners.get(ep) ?? guestKeyOfAddr(t.guestAddr);
    this.owners.delete(ep);
    const n = (this.perGuest.get(g) ?? 1) - 1;
    if (n > 0) this.perGuest.set(g, n);
    else this.perGuest.delete(g);
    return true;
  }

  /** `rstFor`, counted. */
  reject(src: number, dst: number, seg: TcpSegment): TcpOutput | undefined {
    const r = rstFor(src, dst, seg);
    if (r) this.counters.resets++;
    return r;
  }

  [Symbol.iterator](): IterableIterator<TcpEndpoint> {
    return this.flows.values();
  }
}
