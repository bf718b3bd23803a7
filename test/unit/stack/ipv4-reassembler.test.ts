import { readFileSync } from "node:fs";
import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import { readPcap } from "../../../src/ports/pcap.js";
import { DropCounters } from "../../../src/stack/drop-counters.js";
import { type Ipv4Fragment, Ipv4Reassembler } from "../../../src/stack/ipv4-reassembler.js";

const SRC = 0xc6336401; // 198.51.100.1
const DST = 0xc6336402; // 198.51.100.2
const UDP = 17;

function pattern(length: number, seed = 0): Buffer {
  const b = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

/** Cuts a payload into fragments of `size` bytes (a multiple of 8), as a sender would. */
function fragment(payload: Buffer, size: number, id = 1, extra: Partial<Ipv4Fragment> = {}): Ipv4Fragment[] {
  const out: Ipv4Fragment[] = [];
  for (let off = 0; off < payload.length; off += size) {
    const end = Math.min(off + size, payload.length);
    out.push({
      src: SRC,
      dst: DST,
      id,
      protocol: UDP,
      fragmentOffset: off,
      moreFragments: end < payload.length,
      payload: payload.subarray(off, end),
      ...extra,
    });
  }
  return out;
}

const frag = (fragmentOffset: number, moreFragments: boolean, payload: Buffer, id = 1): Ipv4Fragment => ({
  src: SRC,
  dst: DST,
  id,
  protocol: UDP,
  fragmentOffset,
  moreFragments,
  payload,
});

/** Pushes all; returns the datagrams that came out, with the index of the push that completed each. */
function pushAll(r: Ipv4Reassembler, frags: Ipv4Fragment[], now = 0) {
  const out: { at: number; payload: Buffer }[] = [];
  frags.forEach((f, at) => {
    const d = r.push(f, now);
    if (d) out.push({ at, payload: d.payload });
  });
  return out;
}

describe("Ipv4Reassembler", () => {
  test("passes an unfragmented packet through untouched", () => {
    const r = new Ipv4Reassembler();
    const payload = pattern(100);
    const d = r.push(frag(0, false, payload), 0);
    expect(d).toEqual({ src: SRC, dst: DST, id: 1, protocol: UDP, payload });
    expect(d?.payload).toBe(payload);
    expect(r.nextDeadline()).toBeUndefined();
    expect(r.inFlight()).toEqual({ datagrams: 0, fragments: 0, bytes: 0 });
  });

  test("reassembles in order and in reverse", () => {
    const payload = pattern(4000);
    for (const frags of [fragment(payload, 1480), fragment(payload, 1480).reverse()]) {
      const r = new Ipv4Reassembler();
      const out = pushAll(r, frags);
      expect(out.length).toBe(1);
      expect(out[0]?.at).toBe(frags.length - 1);
      expect(out[0]?.payload.equals(payload)).toBe(true);
      expect(r.stats().total()).toBe(0);
      expect(r.inFlight()).toEqual({ datagrams: 0, fragments: 0, bytes: 0 });
      expect(r.nextDeadline()).toBeUndefined();
    }
  });

  test("returns the datagram's addresses, id and protocol", () => {
    const r = new Ipv4Reassembler();
    const frags = fragment(pattern(20), 8, 0xbeef);
    const d = frags.map((f) => r.push(f, 0)).at(-1);
    expect(d).toMatchObject({ src: SRC, dst: DST, id: 0xbeef, protocol: UDP });
  });

  const arbFragmented = fc
    .integer({ min: 2, max: 64 })
    .chain((n) =>
      fc.record({
        n: fc.constant(n),
        // Up to 1480-byte fragments, but no more than the 65515 bytes of payload IPv4 allows.
        unit: fc.integer({ min: 1, max: Math.min(185, Math.floor((65535 - 20) / (n * 8))) }),
        lastFraction: fc.double({ min: 0, max: 1, noNaN: true }),
        seed: fc.nat(255),
      }),
    )
    .chain(({ n, unit, lastFraction, seed }) => {
      const size = unit * 8;
      const length = (n - 1) * size + 1 + Math.floor(lastFraction * (size - 1));
      const payload = pattern(length, seed);
      const frags = fragment(payload, size);
      return fc.record({
        payload: fc.constant(payload),
        frags: fc.shuffledSubarray(frags, { minLength: frags.length, maxLength: frags.length }),
      });
    });

  test.prop([arbFragmented])("any order of the fragments gives back the original", ({ payload, frags }) => {
    const r = new Ipv4Reassembler();
    const out = pushAll(r, frags);
    expect(out.length).toBe(1);
    expect(out[0]?.at).toBe(frags.length - 1);
    expect(out[0]?.payload.equals(payload)).toBe(true);
    expect(r.stats().total()).toBe(0);
    expect(r.nextDeadline()).toBeUndefined();
  });

  test.prop([arbFragmented, fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 10 })])(
    "byte-identical duplicates are dropped and counted, and the datagram still completes",
    ({ payload, frags }, dups) => {
      // Duplicates of all but the completing fragment, anywhere before it.
      const stream = frags.slice(0, -1);
      for (const [pick, place] of dups) {
        const dup = frags[pick % (frags.length - 1)] as Ipv4Fragment;
        // A copy, so that "identical" means equal bytes, not the same Buffer.
        stream.splice(place % (stream.length + 1), 0, { ...dup, payload: Buffer.from(dup.payload) });
      }
      stream.push(frags.at(-1) as Ipv4Fragment);
      const r = new Ipv4Reassembler();
      const out = pushAll(r, stream);
      expect(out.length).toBe(1);
      expect(out[0]?.at).toBe(stream.length - 1);
      expect(out[0]?.payload.equals(payload)).toBe(true);
      expect(r.stats().toJSON()).toEqual(dups.length ? { "reasm-duplicate": dups.length } : {});
      expect(r.inFlight()).toEqual({ datagrams: 0, fragments: 0, bytes: 0 });
    },
  );

  test("copies what it holds: the caller may reuse its frame buffers", () => {
    const payload = pattern(24);
    const frame = Buffer.from(payload);
    const r = new Ipv4Reassembler();
    r.push(frag(0, true, frame.subarray(0, 16)), 0);
    frame.fill(0);
    const d = r.push(frag(16, false, Buffer.from(payload.subarray(16))), 0);
    expect(d?.payload.equals(payload)).toBe(true);
  });

  describe("overlap", () => {
    test("a partial overlap discards the whole datagram and its later fragments", () => {
      const r = new Ipv4Reassembler();
      expect(r.push(frag(0, true, pattern(16)), 0)).toBeUndefined();
      expect(r.push(frag(8, true, pattern(16)), 0)).toBeUndefined();
      expect(r.stats().get("reasm-overlap")).toBe(2);
      expect(r.inFlight()).toEqual({ datagrams: 0, fragments: 0, bytes: 0 });
      // The rest of it cannot complete anything.
      expect(r.push(frag(16, false, pattern(8)), 0)).toBeUndefined();
      expect(r.push(frag(0, true, pattern(16)), 0)).toBeUndefined();
      expect(r.stats().get("reasm-overlap")).toBe(4);
      // Other datagrams are not affected.
      expect(pushAll(r, fragment(pattern(24), 16, 2)).length).toBe(1);
      // After the timeout the tombstone is gone and the id can be used again.
      expect(r.nextDeadline()).toBe(30_000);
      expect(r.expire(30_000)).toBe(0); // a tombstone holds nothing to count
      expect(pushAll(r, fragment(pattern(24), 16, 1)).length).toBe(1);
      expect(r.stats().total()).toBe(4);
    });

    test.each([
      ["a fragment inside another", [frag(0, true, pattern(32)), frag(8, true, pattern(8))]],
      ["a fragment covering another", [frag(8, true, pattern(8)), frag(0, true, pattern(32))]],
      ["the same range with other bytes", [frag(0, true, pattern(16)), frag(0, true, pattern(16, 1))]],
      ["the same offset, another length", [frag(0, true, pattern(16)), frag(0, true, pattern(24))]],
      ["two final fragments that disagree", [frag(16, false, pattern(8)), frag(24, false, pattern(8))]],
      [
        "a final fragment before the end of another",
        [frag(16, true, pattern(16)), frag(8, false, pattern(16))],
      ],
      [
        "a final fragment that ends before another begins",
        [frag(32, true, pattern(8)), frag(8, false, pattern(16))],
      ],
      ["a fragment past the final one", [frag(16, false, pattern(8)), frag(24, true, pattern(8))]],
      ["overlapping the next fragment", [frag(16, true, pattern(16)), frag(8, true, pattern(16))]],
    ])("%s", (_, frags) => {
      const r = new Ipv4Reassembler();
      expect(pushAll(r, frags)).toEqual([]);
      expect(r.stats().toJSON()).toEqual({ "reasm-overlap": 2 });
    });

    test("touching fragments do not overlap", () => {
      const r = new Ipv4Reassembler();
      expect(
        pushAll(r, [frag(8, true, pattern(8)), frag(16, false, pattern(8)), frag(0, true, pattern(8))]),
      ).toHaveLength(1);
      expect(r.stats().total()).toBe(0);
    });
  });

  describe("timeout", () => {
    test("drops an incomplete datagram when its time is up, counting its fragments", () => {
      const r = new Ipv4Reassembler();
      const frags = fragment(pattern(3000), 1000);
      r.push(frags[0] as Ipv4Fragment, 1000);
      r.push(frags[1] as Ipv4Fragment, 5000);
      expect(r.nextDeadline()).toBe(31_000); // from the first fragment, not extended
      expect(r.expire(30_999)).toBe(0);
      expect(r.inFlight()).toEqual({ datagrams: 1, fragments: 2, bytes: 2000 });
      expect(r.expire(31_000)).toBe(1);
      expect(r.stats().toJSON()).toEqual({ "reasm-timeout": 2 });
      expect(r.nextDeadline()).toBeUndefined();
      expect(r.inFlight()).toEqual({ datagrams: 0, fragments: 0, bytes: 0 });
    });

    test("push expires first: a late fragment does not complete a stale datagram", () => {
      const r = new Ipv4Reassembler({ timeoutMs: 15_000 });
      const frags = fragment(pattern(2000), 1000);
      r.push(frags[0] as Ipv4Fragment, 0);
      expect(r.push(frags[1] as Ipv4Fragment, 15_000)).toBeUndefined();
      expect(r.stats().get("reasm-timeout")).toBe(1);
      expect(r.inFlight()).toEqual({ datagrams: 1, fragments: 1, bytes: 1000 });
      expect(r.nextDeadline()).toBe(30_000);
    });

    test("nextDeadline is the oldest datagram's", () => {
      const r = new Ipv4Reassembler();
      r.push(frag(0, true, pattern(8), 1), 100);
      r.push(frag(0, true, pattern(8), 2), 200);
      expect(r.nextDeadline()).toBe(30_100);
      expect(r.expire(30_100)).toBe(1);
      expect(r.nextDeadline()).toBe(30_200);
    });
  });

  describe("bounds", () => {
    test("a source at its bound is refused a new datagram, evicting nothing; another source is not", () => {
      const r = new Ipv4Reassembler({ maxDatagrams: 8, maxDatagramsPerSource: 2 });
      const a = fragment(pattern(24), 8, 1);
      const b = fragment(pattern(24), 8, 2);
      const c = fragment(pattern(24), 8, 3);
      r.push(a[0] as Ipv4Fragment, 0);
      r.push(b[0] as Ipv4Fragment, 0);
      expect(r.push(c[0] as Ipv4Fragment, 0)).toBeUndefined();
      expect(r.stats().toJSON()).toEqual({ "reasm-source-full": 1 });
      expect(r.inFlight().datagrams).toBe(2);
      // another source still gets its datagram through
      const other = fragment(pattern(24), 8, 3, { src: SRC + 1 });
      expect(pushAll(r, other)).toHaveLength(1);
      expect(r.limits).toEqual({ maxDatagrams: 8, maxDatagramsPerSource: 2 });
      // a completed datagram gives its source the room back
      expect(pushAll(r, [a[1], a[2]] as Ipv4Fragment[])).toHaveLength(1);
      expect(pushAll(r, c)).toHaveLength(1);
    });

    test("a full table evicts the oldest datagram", () => {
      const r = new Ipv4Reassembler({ maxDatagrams: 2 });
      // three sources: the table's bound, not one source's, is what is reached
      const a = fragment(pattern(24), 8, 1);
      const b = fragment(pattern(24), 8, 2, { src: SRC + 1 });
      const c = fragment(pattern(24), 8, 3, { src: SRC + 2 });
      r.push(a[0] as Ipv4Fragment, 0);
      r.push(a[1] as Ipv4Fragment, 0);
      r.push(b[0] as Ipv4Fragment, 1);
      r.push(c[0] as Ipv4Fragment, 2);
      expect(r.stats().toJSON()).toEqual({ "reasm-table-full": 2 });
      expect(r.inFlight().datagrams).toBe(2);
      expect(r.nextDeadline()).toBe(30_001);
      // b and c complete; a's last fragment only starts it again.
      expect(pushAll(r, [b[1], b[2], c[1], c[2]] as Ipv4Fragment[]).length).toBe(2);
      expect(r.push(a[2] as Ipv4Fragment, 3)).toBeUndefined();
      expect(r.inFlight()).toEqual({ datagrams: 1, fragments: 1, bytes: 8 });
    });

    test("a datagram longer than 65535 bytes in all is dropped", () => {
      const r = new Ipv4Reassembler();
      // The last 8 bytes the offset field can reach: 65528 + 8 + 20 > 65535.
      expect(r.push(frag(65528, false, pattern(8)), 0)).toBeUndefined();
      expect(r.stats().toJSON()).toEqual({ "reasm-too-big": 1 });
      // The rest of that datagram is dropped under the same reason.
      expect(r.push(frag(0, true, pattern(1480)), 0)).toBeUndefined();
      expect(r.stats().toJSON()).toEqual({ "reasm-too-big": 2 });
    });

    test("65535 bytes in all is allowed; one more header byte is not", () => {
      const payload = pattern(65535 - 20);
      const r = new Ipv4Reassembler();
      expect(pushAll(r, fragment(payload, 1480))[0]?.payload.equals(payload)).toBe(true);
      // The first fragment carries IPv4 options (24-byte header): 65539 bytes in all.
      const frags = fragment(payload, 1480, 2);
      (frags[0] as Ipv4Fragment).headerLength = 24;
      expect(pushAll(r, frags.reverse())).toEqual([]);
      expect(r.stats().toJSON()).toEqual({ "reasm-too-big": frags.length });
      expect(r.inFlight().datagrams).toBe(0);
    });

    test("maxSize is configurable", () => {
      const r = new Ipv4Reassembler({ maxSize: 1000 });
      expect(pushAll(r, fragment(pattern(980), 496))).toHaveLength(1);
      expect(pushAll(r, fragment(pattern(981), 496, 2))).toEqual([]);
      expect(r.stats().toJSON()).toEqual({ "reasm-too-big": 2 });
    });

    test("a fragment reaching past maxSize is dropped when it comes, not held", () => {
      // 976 + 8 bytes of payload after a 20-byte header: 1004 bytes in all.
      const tight = new Ipv4Reassembler({ maxSize: 1003 });
      tight.push(frag(976, true, pattern(8)), 0);
      expect(tight.stats().toJSON()).toEqual({ "reasm-too-big": 1 });
      expect(tight.inFlight().datagrams).toBe(0);
      const roomy = new Ipv4Reassembler({ maxSize: 1004 });
      roomy.push(frag(976, true, pattern(8)), 0);
      expect(roomy.stats().total()).toBe(0);
      expect(roomy.inFlight()).toEqual({ datagrams: 1, fragments: 1, bytes: 8 });
    });

    test("too many fragments discard the datagram", () => {
      const r = new Ipv4Reassembler({ maxFragments: 3 });
      const frags = fragment(pattern(40), 8);
      expect(pushAll(r, frags)).toEqual([]);
      // 3 held and the 4th when it came, then the 5th against the tombstone.
      expect(r.stats().toJSON()).toEqual({ "reasm-too-many-fragments": 5 });
      expect(pushAll(r, fragment(pattern(24), 8, 2))).toHaveLength(1);
    });

    test.each([
      ["an offset that is not a multiple of 8", frag(4, true, pattern(8))],
      ["an offset past the 13-bit field", frag(65536, false, pattern(8))],
      ["a negative offset", frag(-8, true, pattern(8))],
      ["a non-final fragment of 12 bytes", frag(0, true, pattern(12))],
      ["an empty non-final fragment", frag(8, true, Buffer.alloc(0))],
      ["an empty final fragment", frag(8, false, Buffer.alloc(0))],
    ])("drops %s by itself", (_, f) => {
      const r = new Ipv4Reassembler();
      r.push(frag(0, true, pattern(8)), 0);
      expect(r.push(f, 0)).toBeUndefined();
      expect(r.stats().toJSON()).toEqual({ "reasm-bad-offset": 1 });
      // The datagram in progress is unharmed.
      expect(r.push(frag(8, false, pattern(8)), 0)?.payload.length).toBe(16);
    });

    test("refuses nonsensical options", () => {
      expect(() => new Ipv4Reassembler({ maxDatagrams: 0 })).toThrow(RangeError);
      expect(() => new Ipv4Reassembler({ maxFragments: 1.5 })).toThrow(RangeError);
      expect(() => new Ipv4Reassembler({ timeoutMs: 0 })).toThrow(RangeError);
    });
  });

  test("counts into DropCounters it is given", () => {
    const drops = new DropCounters();
    drops.drop("other");
    const r = new Ipv4Reassembler({ drops });
    expect(r.stats()).toBe(drops);
    r.push(frag(4, true, pattern(8)), 0);
    expect(drops.toJSON()).toEqual({ other: 1, "reasm-bad-offset": 1 });
  });

  // Streams of whole fragmented datagrams (some sharing a key) shuffled together with
  // noise fragments, all cut from one byte pattern: whatever completes must equal the
  // pattern from offset 0.
  const arbNoise = fc
    .record({
      src: fc.constantFrom(SRC, DST),
      id: fc.integer({ min: 0, max: 3 }),
      protocol: fc.constantFrom(UDP, 6),
      fragmentOffset: fc.oneof(
        fc.integer({ min: 0, max: 8 }).map((k) => k * 8),
        fc.integer({ min: 0, max: 8191 }).map((k) => k * 8),
        fc.integer({ min: -8, max: 70_000 }),
      ),
      moreFragments: fc.boolean(),
      length: fc.oneof(
        fc.integer({ min: 0, max: 5 }).map((k) => k * 8),
        fc.integer({ min: 0, max: 40 }),
      ),
      headerLength: fc.option(fc.constantFrom(20, 24, 60), { nil: undefined }),
    })
    .map(
      ({ length, ...f }): Ipv4Fragment => ({
        ...f,
        dst: DST,
        payload: pattern(Math.max(0, f.fragmentOffset) + length).subarray(Math.max(0, f.fragmentOffset)),
      }),
    );
  const arbDatagramFragments = fc
    .record({
      id: fc.integer({ min: 0, max: 3 }),
      src: fc.constantFrom(SRC, DST),
      length: fc.integer({ min: 1, max: 600 }),
      unit: fc.integer({ min: 1, max: 10 }),
    })
    .map((d) => fragment(pattern(d.length), d.unit * 8, d.id, { src: d.src }));
  const arbStream = fc
    .tuple(fc.array(arbDatagramFragments, { maxLength: 8 }), fc.array(arbNoise, { maxLength: 20 }))
    .chain(([datagrams, noise]) => {
      const all = [...datagrams.flat(), ...noise];
      return fc.tuple(
        fc.shuffledSubarray(all, { minLength: all.length, maxLength: all.length }),
        fc.array(fc.oneof({ arbitrary: fc.constant(0), weight: 20 }, fc.integer({ min: 1, max: 40_000 })), {
          minLength: all.length,
          maxLength: all.length,
        }),
      );
    });

  test.prop([
    arbStream,
    fc.record({
      maxDatagrams: fc.integer({ min: 1, max: 8 }),
      maxDatagramsPerSource: fc.integer({ min: 1, max: 8 }),
      maxFragments: fc.integer({ min: 1, max: 40 }),
      maxSize: fc.integer({ min: 100, max: 65535 }),
    }),
  ])(
    "never throws on arbitrary fragments, keeps its bounds, accounts for every fragment once",
    ([frags, dts], opts) => {
      const r = new Ipv4Reassembler({ ...opts, timeoutMs: 30_000 });
      const accounted = () => r.inFlight().fragments + r.stats().total();
      let now = 0;
      let delivered = 0;
      frags.forEach((f, i) => {
        now += dts[i] ?? 0;
        const before = accounted();
        const d = r.push(f, now);
        const added = accounted() - before;
        if (f.fragmentOffset === 0 && !f.moreFragments) {
          expect(d?.payload).toBe(f.payload);
          expect(added).toBe(0);
          delivered += 1;
        } else if (d) {
          // It consumed the fragments it was made of: at least this one and one more.
          expect(added).toBeLessThanOrEqual(-1);
          delivered += 1 - added;
          expect(d.payload.equals(pattern(d.payload.length))).toBe(true);
          expect(d.payload.length + 20).toBeLessThanOrEqual(opts.maxSize);
          expect([d.src, d.dst, d.id, d.protocol]).toEqual([f.src, f.dst, f.id, f.protocol]);
        } else {
          // Held, or dropped and counted: exactly one more fragment accounted for.
          expect(added).toBe(1);
        }
        const held = r.inFlight();
        expect(held.datagrams).toBeLessThanOrEqual(opts.maxDatagrams);
        expect(held.fragments).toBeLessThanOrEqual(held.datagrams * opts.maxFragments);
        expect(held.bytes).toBeLessThanOrEqual(held.datagrams * opts.maxSize);
      });
      const deadline = r.nextDeadline();
      if (deadline !== undefined) r.expire(deadline + 30_000);
      expect(r.inFlight()).toEqual({ datagrams: 0, fragments: 0, bytes: 0 });
      expect(r.nextDeadline()).toBeUndefined();
      expect(delivered + r.stats().total()).toBe(frags.length);
      for (const reason of Object.keys(r.stats().toJSON())) expect(reason).toMatch(/^reasm-[a-z-]+$/);
    },
  );
});

describe("the 8000-byte UDP datagram the Linux kernel fragmented (fixtures/ipv4-fragments.pcap)", () => {
  const packets = (() => {
    const r = readPcap(readFileSync(new URL("../../../fixtures/ipv4-fragments.pcap", import.meta.url)));
    if (!r.ok) throw new Error(r.reason);
    return r.value;
  })();

  /** Just enough IPv4 decoding for this test; the real codec lives in src/stack/wire/. */
  function toFragment(frame: Buffer): Ipv4Fragment {
    expect(frame.readUInt16BE(12)).toBe(0x0800);
    const ip = frame.subarray(14);
    const ihl = ((ip[0] as number) & 0x0f) * 4;
    let sum = 0;
    for (let i = 0; i < ihl; i += 2) sum += ip.readUInt16BE(i);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    expect(sum).toBe(0xffff); // the header checksum is right
    const flagsOffset = ip.readUInt16BE(6);
    return {
      src: ip.readUInt32BE(12),
      dst: ip.readUInt32BE(16),
      id: ip.readUInt16BE(4),
      protocol: ip[9] as number,
      fragmentOffset: (flagsOffset & 0x1fff) * 8,
      moreFragments: (flagsOffset & 0x2000) !== 0,
      payload: ip.subarray(ihl, ip.readUInt16BE(2)),
      headerLength: ihl,
    };
  }

  function udpChecksumOk(d: { src: number; dst: number; payload: Buffer }): boolean {
    let sum = (d.src >>> 16) + (d.src & 0xffff) + (d.dst >>> 16) + (d.dst & 0xffff) + UDP + d.payload.length;
    for (let i = 0; i + 1 < d.payload.length; i += 2) sum += d.payload.readUInt16BE(i);
    if (d.payload.length % 2) sum += (d.payload[d.payload.length - 1] as number) << 8;
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    return sum === 0xffff;
  }

  const frags = packets.slice(0, 6).map((p) => toFragment(p.data));

  test("six fragments: 5 x 1480 bytes and 608, all with one id", () => {
    expect(frags.map((f) => [f.fragmentOffset, f.payload.length, f.moreFragments])).toEqual([
      [0, 1480, true],
      [1480, 1480, true],
      [2960, 1480, true],
      [4440, 1480, true],
      [5920, 1480, true],
      [7400, 608, false],
    ]);
    expect(new Set(frags.map((f) => f.id)).size).toBe(1);
  });

  test.prop([fc.shuffledSubarray(frags, { minLength: 6, maxLength: 6 })])(
    "reassembles, in any order, to 8008 bytes of UDP with a valid checksum",
    (order) => {
      const r = new Ipv4Reassembler();
      const out = order.map((f) => r.push(f, 0));
      expect(out.slice(0, 5)).toEqual([undefined, undefined, undefined, undefined, undefined]);
      const d = out[5];
      expect(d).toMatchObject({ src: SRC, dst: DST, protocol: UDP });
      const udp = d?.payload as Buffer;
      expect(udp.length).toBe(8008);
      expect(udp.readUInt16BE(4)).toBe(8008); // UDP length
      expect([udp.readUInt16BE(0), udp.readUInt16BE(2)]).toEqual([40003, 5003]);
      expect(udpChecksumOk(d as { src: number; dst: number; payload: Buffer })).toBe(true);
      const expected = Buffer.alloc(8000);
      for (let i = 0; i < 8000; i++) expected[i] = i & 0xff;
      expect(udp.subarray(8).equals(expected)).toBe(true);
      expect(r.stats().total()).toBe(0);
    },
  );

  test("the unfragmented reply passes through as it is", () => {
    const reply = toFragment((packets[6] as { data: Buffer }).data);
    const d = new Ipv4Reassembler().push(reply, 0);
    expect(d?.payload).toBe(reply.payload);
    expect(udpChecksumOk(d as { src: number; dst: number; payload: Buffer })).toBe(true);
    expect(d?.payload.subarray(8).toString()).toBe("received 8000 bytes, pattern ok\n");
  });
});
