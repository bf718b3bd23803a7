/**
 * Two endpoints back to back (one active open, one passive) over a simulated link that
 * loses, duplicates, delays and reorders segments, with applications that consume slowly
 * (so windows close and re-open): both byte streams must arrive intact and in order, and
 * the connection must close cleanly within bounded simulated time. Every segment goes
 * through the real codec on the way, so option layouts must fit too.
 */
import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import {
  TcpEndpoint,
  type TcpEndpointOptions,
  type TcpOutput,
  type TcpStep,
  type TcpTuple,
} from "../../../../src/stack/tcp/tcp-endpoint.js";
import { decodeTcp, encodeTcp, type TcpSegment, tcpEncodingLength } from "../../../../src/stack/wire/tcp.js";
import { pattern } from "./dialogue.js";

const A_ADDR = 0x0a00020f;
const B_ADDR = 0xc6336401;
const tupleA: TcpTuple = { guestAddr: A_ADDR, guestPort: 40000, remoteAddr: B_ADDR, remotePort: 80 };
const tupleB: TcpTuple = { guestAddr: B_ADDR, guestPort: 80, remoteAddr: A_ADDR, remotePort: 40000 };

/** mulberry32: a tiny deterministic PRNG driven by a fast-check seed */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface LinkParams {
  loss: number;
  dup: number;
  delay: number;
  jitter: number;
}

interface Scenario {
  seed: number;
  sizeAtoB: number;
  sizeBtoA: number;
  writeChunk: number;
  link: [LinkParams, LinkParams];
  recvBuffer: [number, number];
  sendBuffer: [number, number];
  consumeDelay: [number, number];
  options: [Partial<TcpEndpointOptions>, Partial<TcpEndpointOptions>];
  acceptDelay: number;
}

/** Round-trips a segment through the codec, as a frame would. */
function overTheWire(o: TcpOutput): TcpSegment {
  const ip = { src: o.src, dst: o.dst };
  const buf = Buffer.alloc(tcpEncodingLength(o.seg));
  encodeTcp(o.seg, buf, 0, ip);
  const r = decodeTcp(buf, ip);
  if (!r.ok) throw new Error(`decode failed: ${r.reason}`);
  return r.value;
}

class Side {
  ep!: TcpEndpoint;
  deadline: number | undefined;
  written = 0;
  shut = false;
  received: Buffer[] = [];
  eof = false;
  closed = false;
  resets: string[] = [];
  established = false;
  constructor(
    readonly name: "A" | "B",
    readonly stream: Buffer,
    readonly chunk: number,
  ) {}
}

const TRACE = process.env.TCP_LINK_TRACE === "1";
function trace(now: number, from: string, seg: TcpSegment): void {
  const f = "FSRPAUEC"
    .split("")
    .filter((_, i) => seg.flags & (1 << i))
    .join("");
  process.stderr.write(
    `${now.toFixed(1)} ${from}→ ${f} seq=${seg.seq} ack=${seg.ack} win=${seg.window} len=${seg.payload.length}\n`,
  );
}

function run(s: Scenario): { a: Side; b: Side; time: number } {
  const rnd = prng(s.seed);
  const base = (i: 0 | 1): Partial<TcpEndpointOptions> => ({
    recvBufferSize: s.recvBuffer[i],
    sendBufferSize: s.sendBuffer[i],
    maxRetransmits: 40,
    userTimeoutMs: 30 * 60_000,
    synRetries: 40,
    // long enough for the peer's FIN retransmissions (RTO up to 60 s) to be re-acked
    timeWaitMs: 150_000,
    finWait2TimeoutMs: 30 * 60_000,
    random: () => Math.floor(rnd() * 2 ** 32),
    ...s.options[i],
  });
  const a = new Side("A", pattern(s.sizeAtoB, 7), s.writeChunk);
  const b = new Side("B", pattern(s.sizeBtoA, 3), s.writeChunk);
  interface Pending {
    at: number;
    order: number;
    run: () => void;
  }
  const queue: Pending[] = [];
  let order = 0;
  let now = 0;
  const schedule = (at: number, fn: () => void) => queue.push({ at, order: order++, run: fn });

  const peerOf = (x: Side) => (x === a ? b : a);
  const handle = (x: Side, step: TcpStep) => {
    x.deadline = step.deadline;
    const i = x === a ? 0 : 1;
    const link = s.link[i];
    for (const out of step.send) {
      const seg = overTheWire(out);
      if (TRACE) trace(now, x.name, seg);
      if (rnd() < link.loss) continue;
      const copies = rnd() < link.dup ? 2 : 1;
      for (let k = 0; k < copies; k++) {
        const at = now + link.delay + rnd() * link.jitter;
        const to = peerOf(x);
        schedule(at, () => handle(to, to.ep.onSegment(seg, now)));
      }
    }
    for (const e of step.events) {
      switch (e.type) {
        case "connect-request":
          schedule(now + s.acceptDelay, () => handle(x, x.ep.accept(now)));
          break;
        case "established":
          x.established = true;
          pump(x);
          break;
        case "data": {
          const copy = Buffer.from(e.data);
          x.received.push(copy);
          schedule(now + s.consumeDelay[i], () => handle(x, x.ep.consume(copy.length, now)));
          break;
        }
        case "writable":
          pump(x);
          break;
        case "eof":
          x.eof = true;
          break;
        case "reset":
          x.resets.push(e.reason);
          break;
        case "closed":
          x.closed = true;
          break;
      }
    }
  };
  // writes until the endpoint refuses, then waits for `writable`
  const pump = (x: Side) => {
    if (x.closed) return;
    while (x.written < x.stream.length) {
      const piece = x.stream.subarray(x.written, Math.min(x.stream.length, x.written + x.chunk));
      const r = x.ep.write(piece, now);
      x.written += r.accepted;
      handle(x, { ...r, events: r.events.filter((e) => e.type !== "writable") });
      if (r.accepted < piece.length) return;
    }
    if (!x.shut) {
      x.shut = true;
      handle(x, x.ep.shutdownWrite(now));
    }
  };

  b.ep = TcpEndpoint.listen(tupleB, base(1));
  const c = TcpEndpoint.connect(tupleA, base(0), 0);
  a.ep = c.endpoint;
  handle(a, c.step);
  pump(a); // the active side may queue data before the handshake completes

  const LIMIT_MS = 60 * 60_000;
  const MAX_EVENTS = 200_000;
  for (let iter = 0; ; iter++) {
    if (a.closed && b.closed) break;
    if (iter >= MAX_EVENTS)
      throw new Error(`no end after ${MAX_EVENTS} events (t=${now}, queue ${queue.length})`);
    let best = -1;
    for (let k = 0; k < queue.length; k++) {
      const q = queue[k] as Pending;
      const bq = queue[best];
      if (!bq || q.at < bq.at || (q.at === bq.at && q.order < bq.order)) best = k;
    }
    const nextQ = queue[best]?.at ?? Number.POSITIVE_INFINITY;
    const timers = [a, b].filter((x) => x.deadline !== undefined && !x.closed);
    const nextT = Math.min(...timers.map((x) => x.deadline as number), Number.POSITIVE_INFINITY);
    const next = Math.min(nextQ, nextT);
    if (!Number.isFinite(next) || next > LIMIT_MS) break;
    now = Math.max(now, next);
    if (nextT <= nextQ) {
      for (const x of timers) if ((x.deadline as number) <= now) handle(x, x.ep.onTimer(now));
    } else {
      const [q] = queue.splice(best, 1);
      q?.run();
    }
  }
  return { a, b, time: now };
}

const arbLink = fc.record({
  loss: fc.double({ min: 0, max: 0.2, noNaN: true }),
  dup: fc.double({ min: 0, max: 0.1, noNaN: true }),
  delay: fc.integer({ min: 0, max: 30 }),
  jitter: fc.integer({ min: 0, max: 40 }),
});

const arbOptions = fc.record(
  {
    sack: fc.boolean(),
    timestamps: fc.boolean(),
    windowScale: fc.integer({ min: 0, max: 14 }),
    mss: fc.integer({ min: 200, max: 1460 }),
  },
  { requiredKeys: [] },
);

/** Streams and buffers in proportion, so a slow consumer still finishes in simulated minutes. */
const arbScenario = (maxStream: number, minBuffer: number, maxBuffer: number): fc.Arbitrary<Scenario> =>
  fc.record({
    seed: fc.integer(),
    sizeAtoB: fc.integer({ min: 0, max: maxStream }),
    sizeBtoA: fc.integer({ min: 0, max: maxStream }),
    // the relay writes what a host socket read returns; one-byte writes of a long stream
    // would mean one segment per byte (there is no Nagle), so they appear in short streams
    writeChunk: fc.integer({ min: Math.max(1, Math.floor(maxStream / 200)), max: 20_000 }),
    link: fc.tuple(arbLink, arbLink),
    recvBuffer: fc.tuple(
      fc.integer({ min: minBuffer, max: maxBuffer }),
      fc.integer({ min: minBuffer, max: maxBuffer }),
    ),
    sendBuffer: fc.tuple(
      fc.integer({ min: minBuffer, max: maxBuffer }),
      fc.integer({ min: minBuffer, max: maxBuffer }),
    ),
    consumeDelay: fc.tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 300 })),
    options: fc.tuple(arbOptions, arbOptions),
    acceptDelay: fc.integer({ min: 0, max: 100 }),
  });

function check(s: Scenario): void {
  const { a, b, time } = run(s);
  const summary = `t=${time} A:${a.ep.state} B:${b.ep.state} resets=${a.resets},${b.resets}`;
  expect(a.resets, summary).toEqual([]);
  expect(b.resets, summary).toEqual([]);
  expect(Buffer.concat(b.received).equals(a.stream), `A→B stream (${summary})`).toBe(true);
  expect(Buffer.concat(a.received).equals(b.stream), `B→A stream (${summary})`).toBe(true);
  expect(a.eof && b.eof, summary).toBe(true);
  expect(a.closed && b.closed, summary).toBe(true);
}

describe("two endpoints over a lossy, reordering link", () => {
  test("a clean link", () => {
    const clean = { loss: 0, dup: 0, delay: 5, jitter: 0 };
    check({
      seed: 1,
      sizeAtoB: 100_000,
      sizeBtoA: 50_000,
      writeChunk: 4096,
      link: [clean, clean],
      recvBuffer: [65536, 65536],
      sendBuffer: [65536, 65536],
      consumeDelay: [0, 0],
      options: [{}, {}],
      acceptDelay: 0,
    });
  });

  test("a lossy link with slow consumers and tiny buffers", () => {
    const lossy = { loss: 0.2, dup: 0.1, delay: 10, jitter: 30 };
    check({
      seed: 42,
      sizeAtoB: 30_000,
      sizeBtoA: 30_000,
      writeChunk: 700,
      link: [lossy, lossy],
      recvBuffer: [1000, 3000],
      sendBuffer: [500, 2000],
      consumeDelay: [200, 50],
      options: [{ mss: 536 }, { sack: false, timestamps: false }],
      acceptDelay: 30,
    });
  });

  const runs = Number(process.env.TCP_LINK_RUNS ?? 40);
  const endOnFailure = process.env.TCP_LINK_RUNS !== undefined;
  const seedOpt = process.env.TCP_LINK_SEED ? { seed: Number(process.env.TCP_LINK_SEED) } : {};

  test.prop([arbScenario(120_000, 256, 300_000)], { numRuns: runs, endOnFailure, ...seedOpt })(
    "streams arrive intact and the connection closes",
    (s) => check(s),
  );

  test.prop([arbScenario(3000, 1, 64)], { numRuns: runs, endOnFailure, ...seedOpt })(
    "the same with receive buffers of a few bytes",
    (s) => check(s),
  );
});
