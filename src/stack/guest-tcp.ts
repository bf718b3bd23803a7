/**
 * The stack's TCP layer: guest segments to their connection endpoints, endpoints'
 * segments back out as frames, their events to whoever relays the connection (the
 * proxy), and all their timers in one deadline queue.
 *
 * A `GuestTcpConnection` is the handle the relay drives: each call runs the endpoint
 * at the current time and applies the step it returns (segments out, events to the
 * relay, the next deadline). Steps may nest (the relay answers an event by calling
 * back); each is applied whole, in call order.
 *
 * Segments for unknown connections get a RST (RFC 9293 §3.10.7.1), as do SYNs past
 * the flow table's bounds (counted there). The layer never throws on guest input.
 *
 * TIME_WAIT: when an endpoint reports `time-wait`, its connection is over for everyone
 * but the guest's retransmissions: the layer retires it to the flow table's TIME_WAIT
 * records (which answer those) and tells the relay `closed` at once, so the flow slot,
 * the endpoint's buffers and the relay's state (its host socket is closed both ways by
 * then) are all freed. The relay never sees `time-wait`. TIME_WAIT records expire on
 * the layer's timer like any other deadline.
 */
import type { Clock } from "./clock.js";
import { DeadlineQueue } from "./deadline-queue.js";
import type { DropCounters } from "./drop-counters.js";
import { guestKeyOfAddr, isTcpOpen, TcpFlowTable, type TcpFlowTableOptions } from "./tcp/flow-table.js";
import {
  TcpEndpoint,
  type TcpEndpointOptions,
  type TcpEvent,
  type TcpOutput,
  type TcpStep,
  type TcpTuple,
} from "./tcp/tcp-endpoint.js";
import type { IpAddress, Ipv6Address } from "./wire/ipv6-addr.js";
import type { TcpSegment } from "./wire/tcp.js";

const CLOSED: TcpEvent = Object.freeze({ type: "closed" });

/** Receives every event of every connection; `connect-request` asks for a host connect. */
export type GuestTcpEvents = (conn: GuestTcpConnection, ev: TcpEvent) => void;

export class GuestTcpConnection {
  constructor(
    private readonly layer: GuestTcpLayer,
    readonly endpoint: TcpEndpoint,
  ) {}

  /** the guest id this connection counts against (stack/guest-bounds.ts; an address key for a forward to an unknown guest) */
  get guest(): number {
    return this.layer.table.ownerOf(this.endpoint);
  }
  /** 6 for a connection over IPv6 (its addresses in guestAddr6/remoteAddr6), else 4 */
  get family(): 4 | 6 {
    return this.endpoint.tuple.guestAddr6 === undefined ? 4 : 6;
  }
  /** the guest's IPv4 address (0 on IPv6) */
  get guestAddr(): number {
    return this.endpoint.tuple.guestAddr;
  }
  /** the guest's IPv6 address (undefined on IPv4) */
  get guestAddr6(): Ipv6Address | undefined {
    return this.endpoint.tuple.guestAddr6;
  }
  /** the address the guest connected to, IPv6 (undefined on IPv4) */
  get remoteAddr6(): Ipv6Address | undefined {
    return this.endpoint.tuple.remoteAddr6;
  }
  /** the guest's address of either family */
  get guestAddress(): IpAddress {
    return this.endpoint.tuple.guestAddr6 ?? this.endpoint.tuple.guestAddr;
  }
  /** the address the guest connected to, of either family */
  get remoteAddress(): IpAddress {
    return this.endpoint.tuple.remoteAddr6 ?? this.endpoint.tuple.remoteAddr;
  }
  get guestPort(): number {
    return this.endpoint.tuple.guestPort;
  }
  /** the address the guest connected to, IPv4 (0 on IPv6) */
  get remoteAddr(): number {
    return this.endpoint.tuple.remoteAddr;
  }
  get remotePort(): number {
    return this.endpoint.tuple.remotePort;
  }

  accept(): void {
    this.layer.apply(this, this.endpoint.accept(this.layer.now()));
  }
  refuse(): void {
    this.layer.apply(this, this.endpoint.refuse(this.layer.now()));
  }
  write(data: Buffer): number {
    const r = this.endpoint.write(data, this.layer.now());
    this.layer.apply(this, r);
    return r.accepted;
  }
  /** Send-buffer space to read host bytes into (see TcpEndpoint.lendSendSpace). */
  lendSpace(): Buffer | undefined {
    return this.endpoint.lendSendSpace();
  }
  /** True when the send buffer is (nearly) full; `writable` follows once it has room. */
  awaitSendRoom(): boolean {
    return this.endpoint.awaitSendRoom();
  }
  /** Bytes the guest's buffer budget has room for now. */
  budgetRoom(): number {
    return this.endpoint.budgetRoom();
  }
  /** Calls `wake` once when the guest's buffer budget has room again (it runs inside the stack: schedule, do not call back). */
  awaitBudget(wake: () => void): void {
    this.endpoint.awaitBudget(wake);
  }
  /** `write` for n bytes read into a view from `lendSpace`. */
  writeLent(view: Buffer, n: number): number {
    const r = this.endpoint.writeLent(view, n, this.layer.now());
    this.layer.apply(this, r);
    return r.accepted;
  }
  consume(n: number): void {
    this.layer.apply(this, this.endpoint.consume(n, this.layer.now()));
  }
  shutdownWrite(): void {
    this.layer.apply(this, this.endpoint.shutdownWrite(this.layer.now()));
  }
  abort(): void {
    this.layer.apply(this, this.endpoint.abort(this.layer.now()));
  }
}

export class GuestTcpLayer {
  readonly table: TcpFlowTable;
  private readonly timers = new DeadlineQueue<GuestTcpConnection>();
  private readonly conns = new Map<TcpEndpoint, GuestTcpConnection>();
  private readonly endpointOptions: Partial<TcpEndpointOptions>;

  constructor(
    private readonly clock: Clock,
    private readonly drops: DropCounters,
    /** segments for guests, to be framed and sent */
    private readonly output: (segments: TcpOutput[]) => void,
    private readonly events: GuestTcpEvents,
    options: Partial<TcpFlowTableOptions> = {},
    /** told after any timer was armed, so the driver can move its one timer earlier */
    private readonly timersChanged: () => void = () => {},
    /** the guest key a connection towards `addr` counts against (a port forward) */
    private readonly guestOf: (addr: IpAddress) => number = (a) =>
      typeof a === "number" ? guestKeyOfAddr(a) : 0x2_0000_0000_0000 + a.readUInt32BE(12),
  ) {
    this.table = new TcpFlowTable(options);
    this.endpointOptions = options.endpoint ?? {};
  }

  /**
   * Opens a connection towards a guest (a port forward): SYN from `tuple.remote*` to the
   * guest. Undefined when the tuple is taken or a bound is reached.
   */
  connect(tuple: TcpTuple): GuestTcpConnection | undefined {
    if (this.table.get(tuple)) return undefined;
    const { endpoint, step } = TcpEndpoint.connect(tuple, this.endpointOptions, this.now());
    if (!this.table.add(endpoint, this.guestOf(tuple.guestAddr6 ?? tuple.guestAddr))) return undefined;
    const conn = this.connectionOf(endpoint);
    this.apply(conn, step);
    return conn;
  }

  /** Whether a connection uses this tuple now. */
  has(tuple: TcpTuple): boolean {
    return this.table.get(tuple) !== undefined;
  }

  now(): number {
    return this.clock.now();
  }

  /**
   * A segment a guest at `src` sent to `dst`; `guest` is who sent it as the stack knows
   * it (its guest id, stack/guest-bounds.ts), the key a new connection counts against.
   */
  input(src: number, dst: number, seg: TcpSegment, guest: number): void {
    let ep = this.table.lookup(src, dst, seg);
    if (ep === undefined) {
      const tw = this.table.timeWaitInput(src, dst, seg, this.now());
      if (tw !== undefined && !tw.reopen) {
        if (tw.reply !== undefined) this.output([tw.reply]);
        return;
      }
      if (!isTcpOpen(seg)) {
        const rst = this.table.reject(src, dst, seg);
        if (rst) this.output([rst]);
        return this.drops.drop("tcp-no-connection");
      }
      ep = this.table.open(src, dst, seg, guest);
      if (ep === undefined) {
        const rst = this.table.reject(src, dst, seg);
        if (rst) this.output([rst]);
        return this.drops.drop("tcp-too-many-connections");
      }
    }
    const conn = this.connectionOf(ep);
    this.apply(conn, ep.onSegment(seg, this.now()));
  }

  /** `input` for a guest IPv6 segment from `src` to `dst` (views into the frame). */
  input6(src: Uint8Array, dst: Uint8Array, seg: TcpSegment, guest: number): void {
    let ep = this.table.lookup6(src, dst, seg);
    if (ep === undefined) {
      const tw = this.table.timeWaitInput6(src, dst, seg, this.now());
      if (tw !== undefined && !tw.reopen) {
        if (tw.reply !== undefined) this.output([tw.reply]);
        return;
      }
      if (!isTcpOpen(seg)) {
        const rst = this.table.reject6(src, dst, seg);
        if (rst) this.output([rst]);
        return this.drops.drop("tcp-no-connection");
      }
      ep = this.table.open6(src, dst, seg, guest);
      if (ep === undefined) {
        const rst = this.table.reject6(src, dst, seg);
        if (rst) this.output([rst]);
        return this.drops.drop("tcp-too-many-connections");
      }
    }
    const conn = this.connectionOf(ep);
    this.apply(conn, ep.onSegment(seg, this.now()));
  }

  nextDeadline(): number | undefined {
    const a = this.timers.peek();
    const b = this.table.timeWait.nextDeadline();
    if (a === undefined) return b;
    return b === undefined ? a : Math.min(a, b);
  }

  onTimer(): void {
    const now = this.now();
    this.table.timeWait.expire(now);
    for (const conn of this.timers.due(now)) this.apply(conn, conn.endpoint.onTimer(now));
  }

  get size(): number {
    return this.table.size;
  }

  connections(): IterableIterator<GuestTcpConnection> {
    return this.conns.values();
  }

  /**
   * Applies one endpoint step: segments out, the timer, then events (which may nest
   * calls). `time-wait` retires the endpoint and reaches the relay as `closed`, last.
   */
  apply(conn: GuestTcpConnection, step: TcpStep): void {
    // a handle whose connection is over (retired to TIME_WAIT, or closed) has no say
    // any more: its tuple may belong to a new connection already
    if (this.conns.get(conn.endpoint) !== conn) return;
    if (step.send.length > 0) this.output(step.send);
    let closed = false;
    let timeWait = false;
    for (const ev of step.events) {
      if (ev.type === "closed") closed = true;
      else if (ev.type === "time-wait") timeWait = true;
    }
    if (closed || timeWait) {
      this.timers.set(conn, undefined);
      if (timeWait && !closed) {
        this.table.retire(conn.endpoint, this.now());
        this.timersChanged();
      } else {
        this.table.delete(conn.endpoint.tuple);
      }
      this.conns.delete(conn.endpoint);
    } else {
      this.timers.set(conn, step.deadline);
      if (step.deadline !== undefined) this.timersChanged();
    }
    if (!timeWait) {
      for (const ev of step.events) this.events(conn, ev);
      return;
    }
    for (const ev of step.events) if (ev.type !== "time-wait" && ev.type !== "closed") this.events(conn, ev);
    this.events(conn, CLOSED);
  }

  private connectionOf(ep: TcpEndpoint): GuestTcpConnection {
    let conn = this.conns.get(ep);
    if (!conn) {
      conn = new GuestTcpConnection(this, ep);
      this.conns.set(ep, conn);
    }
    return conn;
  }
}
