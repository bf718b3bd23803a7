import { fc, test } from "@fast-check/vitest";
import { describe, expect } from "vitest";
import { type Icmp6Other, Icmp6Type } from "../../../../src/stack/wire/icmpv6.js";
import { parseIpv6 } from "../../../../src/stack/wire/ipv6-addr.js";
import { decodeNdp, encodeNdp, type NdpMessage, type NdpOptions } from "../../../../src/stack/wire/ndp.js";
import { arbBytes, arbMac, arbU8, arbU16, arbU32, reasonOf, unwrap } from "./arbitraries.js";

const arbAddr = arbBytes(16, 16);
const arbLabel = fc.stringMatching(/^[a-z0-9-]{1,20}$/);
const arbDomain = fc.array(arbLabel, { minLength: 1, maxLength: 4 }).map((l) => l.join("."));
const opt = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const arbOptions: fc.Arbitrary<NdpOptions> = fc
  .record({
    sourceLinkAddress: opt(arbMac),
    targetLinkAddress: opt(arbMac),
    mtu: opt(arbU32),
    prefixes: opt(
      fc.array(
        fc.record({
          prefixLength: arbU8,
          onLink: fc.boolean(),
          autonomous: fc.boolean(),
          validLifetime: arbU32,
          preferredLifetime: arbU32,
          prefix: arbAddr,
        }),
        { minLength: 1, maxLength: 2 },
      ),
    ),
    rdnss: opt(
      fc.array(fc.record({ lifetime: arbU32, servers: fc.array(arbAddr, { minLength: 1, maxLength: 3 }) }), {
        minLength: 1,
        maxLength: 2,
      }),
    ),
    dnssl: opt(
      fc.array(
        fc.record({ lifetime: arbU32, domains: fc.array(arbDomain, { minLength: 1, maxLength: 3 }) }),
        {
          minLength: 1,
          maxLength: 2,
        },
      ),
    ),
  })
  .map((o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as NdpOptions);

const arbNdp: fc.Arbitrary<NdpMessage> = fc.oneof(
  fc.record({ kind: fc.constant("rs" as const), options: arbOptions }),
  fc.record({
    kind: fc.constant("ra" as const),
    curHopLimit: arbU8,
    managed: fc.boolean(),
    other: fc.boolean(),
    routerLifetime: arbU16,
    reachableTime: arbU32,
    retransTimer: arbU32,
    options: arbOptions,
  }),
  fc.record({ kind: fc.constant("ns" as const), target: arbAddr, options: arbOptions }),
  fc.record({
    kind: fc.constant("na" as const),
    router: fc.boolean(),
    solicited: fc.boolean(),
    override: fc.boolean(),
    target: arbAddr,
    options: arbOptions,
  }),
  fc.record({
    kind: fc.constant("redirect" as const),
    target: arbAddr,
    destination: arbAddr,
    options: arbOptions,
  }),
);

describe("NDP", () => {
  test.prop([arbNdp])("round-trips", (m) => {
    expect(unwrap(decodeNdp(encodeNdp(m)))).toEqual(m);
  });

  test.prop([fc.integer({ min: 133, max: 137 }), arbU8, arbU32, arbBytes(120)])(
    "random bodies never throw",
    (type, code, rest, payload) => {
      decodeNdp({ kind: "other", type, code, rest, payload });
    },
  );

  test("an RA as rdisc6 reads it: prefix, MTU, RDNSS, DNSSL", () => {
    const m = encodeNdp({
      kind: "ra",
      curHopLimit: 64,
      managed: false,
      other: true,
      routerLifetime: 1800,
      reachableTime: 0,
      retransTimer: 0,
      options: {
        sourceLinkAddress: Buffer.from("525600000002", "hex"),
        mtu: 1500,
        prefixes: [
          {
            prefixLength: 64,
            onLink: true,
            autonomous: true,
            validLifetime: 86400,
            preferredLifetime: 14400,
            prefix: parseIpv6("fec0::") as Buffer,
          },
        ],
        rdnss: [{ lifetime: 3600, servers: [parseIpv6("fec0::3") as Buffer] }],
        dnssl: [{ lifetime: 3600, domains: ["example.org"] }],
      },
    });
    expect(m.type).toBe(Icmp6Type.routerAdvertisement);
    expect(m.rest.toString(16)).toBe("40400708");
    // 8 (RA fixed part) + SLLA 8 + MTU 8 + prefix 32 + RDNSS 24 + DNSSL 8 + 16 ("example.org" is 13 bytes, padded)
    expect(m.payload.length).toBe(8 + 8 + 8 + 32 + 24 + 24);
    const dnssl = m.payload.subarray(m.payload.length - 24);
    expect(dnssl.toString("hex")).toBe(`1f030000${"00000e10"}076578616d706c65036f726700000000`);
  });

  test("refuses malformed messages with a reason", () => {
    const ns = (payload: Buffer, code = 0): Icmp6Other => ({
      kind: "other",
      type: Icmp6Type.neighborSolicitation,
      code,
      rest: 0,
      payload,
    });
    const target = parseIpv6("fec0::2") as Buffer;
    expect(reasonOf(decodeNdp(ns(Buffer.alloc(15))))).toBe("ndp-truncated");
    expect(reasonOf(decodeNdp(ns(target, 1)))).toBe("ndp-bad-code");
    expect(reasonOf(decodeNdp(ns(Buffer.concat([target, Buffer.from([1, 0, 0, 0, 0, 0, 0, 0])]))))).toBe(
      "ndp-bad-option-length",
    );
    expect(reasonOf(decodeNdp(ns(Buffer.concat([target, Buffer.from([1, 2, 0, 0, 0, 0, 0, 0])]))))).toBe(
      "ndp-bad-option-length",
    );
    const badName = Buffer.from("1f02000000000e10" + "40000000" + "00000000", "hex");
    expect(reasonOf(decodeNdp({ ...ns(Buffer.alloc(0)), type: 133, payload: badName }))).toBe(
      "ndp-bad-dnssl",
    );
    expect(reasonOf(decodeNdp({ ...ns(target), type: 128 }))).toBe("ndp-not-ndp");
  });
});
