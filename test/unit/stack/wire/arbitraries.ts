/**
 * Shared fast-check arbitraries and helpers for the wire codec tests: generated
 * records that encoders accept, byte mutations for "never throws" properties, and
 * small helpers (hex literals, unwrap).
 */
import { fc } from "@fast-check/vitest";
import type { ArpPacket } from "../../../../src/stack/wire/arp.js";
import type { EthernetFrame } from "../../../../src/stack/wire/ethernet.js";
import type { IcmpMessage } from "../../../../src/stack/wire/icmp.js";
import type { Ipv4Packet } from "../../../../src/stack/wire/ipv4.js";
import type { Result } from "../../../../src/stack/wire/result.js";
import type { TcpSegment } from "../../../../src/stack/wire/tcp.js";
import type { UdpDatagram } from "../../../../src/stack/wire/udp.js";

/** A Buffer from a hex string; whitespace is ignored. */
export function hex(s: string): Buffer {
  return Buffer.from(s.replace(/\s+/g, ""), "hex");
}

/** The value of an ok result; throws (failing the test) with the reason otherwise. */
export function unwrap<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`unexpected failure: ${r.reason}`);
  return r.value;
}

/** The reason of a failed result; throws if it succeeded. */
export function reasonOf<T>(r: Result<T>): string {
  if (r.ok) throw new Error("expected a failure");
  return r.reason;
}

export const arbU8 = fc.integer({ min: 0, max: 0xff });
export const arbU16 = fc.integer({ min: 0, max: 0xffff });
export const arbU32 = fc.integer({ min: 0, max: 0xffffffff });
export const arbBytes = (maxLength = 64, minLength = 0): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ minLength, maxLength }).map((a) => Buffer.from(a));
export const arbMac: fc.Arbitrary<Buffer> = arbBytes(6, 6);
export const arbPseudo = fc.record({ src: arbU32, dst: arbU32 });

export const arbEthernetFrame: fc.Arbitrary<EthernetFrame> = fc.record({
  dst: arbMac,
  src: arbMac,
  vlan: fc.option(
    fc.record({
      pcp: fc.integer({ min: 0, max: 7 }),
      dei: fc.boolean(),
      vid: fc.integer({ min: 0, max: 4095 }),
    }),
    { nil: undefined },
  ),
  ethertype: fc.oneof(fc.constantFrom(0x0800, 0x0806, 0x86dd), fc.integer({ min: 0x0600, max: 0xffff })),
  payload: arbBytes(100),
});

export const arbArpPacket: fc.Arbitrary<ArpPacket> = fc.record({
  op: fc.constantFrom(1, 2),
  senderMac: arbMac,
  senderIp: arbU32,
  targetMac: arbMac,
  targetIp: arbU32,
});

/** Options as the wire holds them: 0..40 bytes in 4-byte multiples. */
const arbIpv4Options = fc.integer({ min: 0, max: 10 }).chain((words) => arbBytes(words * 4, words * 4));

export const arbIpv4Packet: fc.Arbitrary<Ipv4Packet> = fc.record({
  tos: arbU8,
  id: arbU16,
  dontFragment: fc.boolean(),
  moreFragments: fc.boolean(),
  fragmentOffset: fc.integer({ min: 0, max: 0x1fff }).map((n) => n * 8),
  ttl: arbU8,
  protocol: arbU8,
  src: arbU32,
  dst: arbU32,
  options: arbIpv4Options,
  payload: arbBytes(200),
});

const echo = (kind: "echo-request" | "echo-reply"): fc.Arbitrary<IcmpMessage> =>
  fc.record({ kind: fc.constant(kind), code: arbU8, id: arbU16, seq: arbU16, payload: arbBytes(80) });

export const arbIcmpMessage: fc.Arbitrary<IcmpMessage> = fc.oneof(
  echo("echo-request"),
  echo("echo-reply"),
  fc.record({
    kind: fc.constant("dest-unreachable" as const),
    code: arbU8,
    nextHopMtu: arbU16,
    payload: arbBytes(80),
  }),
  fc.record({ kind: fc.constant("time-exceeded" as const), code: arbU8, payload: arbBytes(80) }),
  fc.record({
    kind: fc.constant("other" as const),
    type: arbU8.filter((t) => t !== 0 && t !== 3 && t !== 8 && t !== 11),
    code: arbU8,
    rest: arbU32,
    payload: arbBytes(80),
  }),
);

export const arbUdpDatagram: fc.Arbitrary<UdpDatagram> = fc.record({
  srcPort: arbU16,
  dstPort: arbU16,
  payload: arbBytes(200),
});

const arbSackBlocks = (max: number) =>
  fc.array(fc.record({ left: arbU32, right: arbU32 }), { minLength: 1, maxLength: max });

/** Segments whose options fit in 40 bytes as the encoder lays them out. */
export const arbTcpSegment: fc.Arbitrary<TcpSegment> = fc
  .record({
    srcPort: arbU16,
    dstPort: arbU16,
    seq: arbU32,
    ack: arbU32,
    flags: arbU8,
    window: arbU16,
    urgent: arbU16,
    mss: fc.option(arbU16, { nil: undefined }),
    windowScale: fc.option(arbU8, { nil: undefined }),
    sackPermitted: fc.boolean(),
    sack: fc.option(arbSackBlocks(4), { nil: undefined }),
    ts: fc.option(fc.tuple(arbU32, arbU32), { nil: undefined }),
    unknownOptions: fc.option(
      fc.array(
        fc.record({
          kind: fc.integer({ min: 0, max: 255 }).filter((k) => ![0, 1, 2, 3, 4, 5, 8].includes(k)),
          data: arbBytes(8),
        }),
        { minLength: 1, maxLength: 2 },
      ),
      { nil: undefined },
    ),
    payload: arbBytes(200),
  })
  .map(({ ts, ...rest }): TcpSegment => ({ ...rest, tsVal: ts?.[0], tsEcr: ts?.[1] }))
  .filter((s) => tcpOptionBytes(s) <= 40);

/** The encoder's option bytes, recomputed independently of the code under test. */
function tcpOptionBytes(s: TcpSegment): number {
  let n = 0;
  if (s.mss !== undefined) n += 4;
  if (s.tsVal !== undefined) n += 12;
  else if (s.sackPermitted) n += 4;
  if (s.windowScale !== undefined) n += 4;
  if (s.sack) n += 4 + 8 * s.sack.length;
  for (const o of s.unknownOptions ?? []) n += 2 + o.data.length;
  return Math.ceil(n / 4) * 4;
}

/** A list of edits to apply to a valid frame: byte overwrites and a truncation point. */
export const arbMutation = fc.record({
  writes: fc.array(fc.record({ at: fc.nat(), value: arbU8 }), { maxLength: 6 }),
  flips: fc.array(fc.record({ at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }), { maxLength: 4 }),
  cut: fc.option(fc.nat(), { nil: undefined }),
});

/** A mutated copy of `b` (the original is left alone). */
export function mutate(b: Buffer, m: MutationSpec): Buffer {
  const out = Buffer.from(b);
  if (out.length > 0) {
    for (const w of m.writes) out[w.at % out.length] = w.value;
    for (const f of m.flips) {
      const i = f.at % out.length;
      out[i] = (out[i] ?? 0) ^ (1 << f.bit);
    }
  }
  return m.cut === undefined ? out : out.subarray(0, m.cut % (out.length + 1));
}

export interface MutationSpec {
  writes: { at: number; value: number }[];
  flips: { at: number; bit: number }[];
  cut: number | undefined;
}

/** Random bytes of any length up to `max`, zero-length included. */
export const arbGarbage = (max = 120): fc.Arbitrary<Buffer> => arbBytes(max);

/** A buffer whose contents start at an odd or unaligned offset of a larger allocation. */
export function placeAt(b: Buffer, offset: number): Buffer {
  const big = Buffer.alloc(b.length + offset + 3);
  b.copy(big, offset);
  return big.subarray(offset, offset + b.length);
}
