/**
 * A scripted dialogue with one TcpEndpoint on a fake clock: `fromGuest` feeds a segment,
 * `expectToGuest` takes the next segment the endpoint sent and checks the fields given,
 * `advance` moves time and runs the timers that fall due on the way.
 */
import { expect } from "vitest";
import {
  TcpEndpoint,
  type TcpEndpointOptions,
  type TcpEvent,
  type TcpOutput,
  type TcpStep,
  type TcpTuple,
} from "../../../../src/stack/tcp/tcp-endpoint.js";
import {
  type SackBlock,
  type TcpSegment,
  tcpFlagsFromString,
  tcpFlagsToString,
} from "../../../../src/stack/wire/tcp.js";

export const GUEST = 0x0a00020f; // 10.0.2.15
export const REMOTE = 0xc6336401; // 198.51.100.1
export const tuple: TcpTuple = { guestAddr: GUEST, guestPort: 40000, remoteAddr: REMOTE, remotePort: 80 };
/** our ISN in dialogues (and the timestamp offset) */
export const ISS = 1000;

export interface SegSpec {
  flags?: string;
  seq?: number;
  ack?: number;
  window?: number;
  mss?: number;
  wscale?: number;
  sackOk?: boolean;
  sack?: SackBlock[];
  tsVal?: number;
  tsEcr?: number;
  data?: Buffer | string;
}

const bytes = (d: Buffer | string | undefined): Buffer =>
  d === undefined ? Buffer.alloc(0) : typeof d === "string" ? Buffer.from(d) : d;

/** `n` bytes of a recognisable pattern starting at stream offset `from`. */
export function pattern(n: number, from = 0): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (from + i) % 251;
  return b;
}

export class Dialogue {
  now = 0;
  sent: TcpOutput[] = [];
  events: TcpEvent[] = [];
  deadline: number | undefined;

  private constructor(readonly ep: TcpEndpoint) {}

  static passive(options: Partial<TcpEndpointOptions> = {}): Dialogue {
    return new Dialogue(TcpEndpoint.listen(tuple, { random: () => ISS, ...options }));
  }

  static active(options: Partial<TcpEndpointOptions> = {}): Dialogue {
    const { endpoint, step } = TcpEndpoint.connect(tuple, { random: () => ISS, ...options }, 0);
    const d = new Dialogue(endpoint);
    d.record(step);
    return d;
  }

  record<T extends TcpStep>(s: T): T {
    this.sent.push(...s.send);
    this.events.push(...s.events);
    this.deadline = s.deadline;
    return s;
  }

  fromGuest(spec: SegSpec): this {
    const flags = tcpFlagsFromString(spec.flags ?? "A");
    if (flags === undefined) throw new Error(`bad flags ${spec.flags}`);
    const seg: TcpSegment = {
      srcPort: tuple.guestPort,
      dstPort: tuple.remotePort,
      seq: spec.seq ?? 0,
      ack: spec.ack ?? 0,
      flags,
      window: spec.window ?? 65535,
      urgent: 0,
      mss: spec.mss,
      windowScale: spec.wscale,
      sackPermitted: spec.sackOk ?? false,
      sack: spec.sack,
      tsVal: spec.tsVal,
      tsEcr: spec.tsVal !== undefined ? (spec.tsEcr ?? 0) : undefined,
      payload: bytes(spec.data),
    };
    this.record(this.ep.onSegment(seg, this.now));
    return this;
  }

  accept(): this {
    this.record(this.ep.accept(this.now));
    return this;
  }
  refuse(): this {
    this.record(this.ep.refuse(this.now));
    return this;
  }
  write(data: Buffer | string): number {
    return this.record(this.ep.write(bytes(data), this.now)).accepted;
  }
  consume(n: number): this {
    this.record(this.ep.consume(n, this.now));
    return this;
  }
  shutdownWrite(): this {
    this.record(this.ep.shutdownWrite(this.now));
    return this;
  }
  abort(): this {
    this.record(this.ep.abort(this.now));
    return this;
  }

  /** Moves the clock forward by `ms`, running every timer that falls due on the way. */
  advance(ms: number): this {
    const target = this.now + ms;
    for (let i = 0; i < 10_000 && this.deadline !== undefined && this.deadline <= target; i++) {
      this.now = Math.max(this.now, this.deadline);
      this.record(this.ep.onTimer(this.now));
    }
    this.now = target;
    return this;
  }

  /** Takes the next segment sent to the guest and checks the fields in `spec`. */
  expectToGuest(spec: SegSpec = {}): TcpSegment {
    const out = this.sent.shift();
    expect(out, `expected a segment ${JSON.stringify(spec)}`).toBeDefined();
    const { src, dst, seg } = out as TcpOutput;
    expect(src).toBe(REMOTE);
    expect(dst).toBe(GUEST);
    expect(seg.srcPort).toBe(tuple.remotePort);
    expect(seg.dstPort).toBe(tuple.guestPort);
    if (spec.flags !== undefined)
      expect(tcpFlagsToString(seg.flags)).toBe(tcpFlagsToString(tcpFlagsFromString(spec.flags) ?? -1));
    if (spec.seq !== undefined) expect(seg.seq, "seq").toBe(spec.seq >>> 0);
    if (spec.ack !== undefined) expect(seg.ack, "ack").toBe(spec.ack >>> 0);
    if (spec.window !== undefined) expect(seg.window, "window").toBe(spec.window);
    if (spec.mss !== undefined) expect(seg.mss, "mss").toBe(spec.mss);
    if (spec.wscale !== undefined) expect(seg.windowScale, "wscale").toBe(spec.wscale);
    if (spec.sackOk !== undefined) expect(seg.sackPermitted ?? false, "sackOk").toBe(spec.sackOk);
    if (spec.sack !== undefined) expect(seg.sack, "sack").toEqual(spec.sack);
    if (spec.tsVal !== undefined) expect(seg.tsVal, "tsVal").toBe(spec.tsVal);
    if (spec.tsEcr !== undefined) expect(seg.tsEcr, "tsEcr").toBe(spec.tsEcr);
    if (spec.data !== undefined) expect(seg.payload.equals(bytes(spec.data)), "payload").toBe(true);
    return seg;
  }

  expectNothingSent(): this {
    expect(
      this.sent.map((o) => `${tcpFlagsToString(o.seg.flags)} seq=${o.seg.seq} len=${o.seg.payload.length}`),
    ).toEqual([]);
    return this;
  }

  /** Returns and forgets the events so far. */
  takeEvents(): TcpEvent[] {
    const e = this.events;
    this.events = [];
    return e;
  }

  /** Checks the types of the events so far (and forgets them). */
  expectEvents(...types: TcpEvent["type"][]): TcpEvent[] {
    const e = this.takeEvents();
    expect(e.map((x) => x.type)).toEqual(types);
    return e;
  }

  /** The bytes of the `data` events so far (forgets them, keeps other events). */
  takeData(): Buffer {
    const data = this.events.flatMap((e) => (e.type === "data" ? [e.data] : []));
    this.events = this.events.filter((e) => e.type !== "data");
    return Buffer.concat(data);
  }
}

/** A passive dialogue through the handshake (guest ISN 5000, no options unless given). */
export function established(
  syn: SegSpec = {},
  options: Partial<TcpEndpointOptions> = {},
  rttMs = 0,
): Dialogue {
  const d = Dialogue.passive(options);
  d.fromGuest({ flags: "S", seq: 5000, window: 65535, ...syn });
  d.accept();
  const sa = d.expectToGuest({ flags: "SA" });
  d.advance(rttMs);
  d.fromGuest({
    flags: "A",
    seq: 5001,
    ack: ISS + 1,
    window: syn.window ?? 65535,
    ...(sa.tsVal !== undefined ? { tsVal: (syn.tsVal ?? 0) + rttMs, tsEcr: sa.tsVal } : {}),
  });
  d.expectEvents("connect-request", "established");
  d.expectNothingSent();
  return d;
}
