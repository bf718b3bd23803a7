/**
 * Every frame the Linux kernel (and QEMU's slirp, dhcp-qemu-slirp*.pcap) put into
 * fixtures/*.pcap goes through the codecs:
 * each layer decodes with checksum verification on (so our checksums agree with the
 * kernel's), and re-encoding the decoded records reproduces the captured bytes.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { readPcap } from "../../../../src/ports/pcap.js";
import { decodeArp, encodeArp } from "../../../../src/stack/wire/arp.js";
import { pseudoHeader6 } from "../../../../src/stack/wire/checksum.js";
import { decodeEthernet, EtherType, encodeEthernet } from "../../../../src/stack/wire/ethernet.js";
import { decodeIcmp, encodeIcmp } from "../../../../src/stack/wire/icmp.js";
import { decodeIcmp6, encodeIcmp6 } from "../../../../src/stack/wire/icmpv6.js";
import { decodeIpv4, encodeIpv4, IpProto } from "../../../../src/stack/wire/ipv4.js";
import { decodeIpv6, encodeIpv6, Ipv6Next, ipv6EncodingLength } from "../../../../src/stack/wire/ipv6.js";
import { ipv6ToString } from "../../../../src/stack/wire/ipv6-addr.js";
import { decodeNdp, isNdpType } from "../../../../src/stack/wire/ndp.js";
import { decodeTcp, encodeTcp } from "../../../../src/stack/wire/tcp.js";
import { decodeUdp, encodeUdp } from "../../../../src/stack/wire/udp.js";

const fixtures = resolve(dirname(fileURLToPath(import.meta.url)), "../../../../fixtures");
const files = readdirSync(fixtures).filter((f) => f.endsWith(".pcap"));

function unwrap<T>(r: { ok: true; value: T } | { ok: false; reason: string }, what: string): T {
  if (!r.ok) throw new Error(`${what}: ${r.reason}`);
  return r.value;
}

/** Decodes one captured frame layer by layer and re-encodes it; returns the protocols seen. */
function roundTrip(frame: Buffer): string[] {
  const seen: string[] = [];
  const eth = unwrap(decodeEthernet(frame), "ethernet");
  const out = Buffer.alloc(frame.length, 0xa5);
  encodeEthernet({ ...eth, payload: Buffer.alloc(0) }, out);
  const at = frame.length - eth.payload.length;
  expect(out.subarray(0, at)).toEqual(frame.subarray(0, at));
  seen.push(eth.vlan ? `vlan${eth.vlan.vid}` : "ethernet");
  if (eth.ethertype === EtherType.arp) {
    const arp = unwrap(decodeArp(eth.payload), "arp");
    const b = Buffer.alloc(28);
    encodeArp(arp, b);
    expect(b).toEqual(eth.payload.subarray(0, 28));
    return [...seen, "arp"];
  }
  if (eth.ethertype === EtherType.ipv6) return [...seen, ...roundTrip6(eth.payload)];
  expect(eth.ethertype).toBe(EtherType.ipv4);
  const ip = unwrap(decodeIpv4(eth.payload), "ipv4");
  const ipBytes = Buffer.alloc(20 + ip.options.length + ip.payload.length);
  encodeIpv4(ip, ipBytes);
  expect(ipBytes).toEqual(eth.payload.subarray(0, ipBytes.length));
  seen.push(ip.moreFragments || ip.fragmentOffset > 0 ? "ipv4-fragment" : "ipv4");
  if (ip.moreFragments || ip.fragmentOffset > 0) return seen;
  const l4 = Buffer.alloc(ip.payload.length);
  switch (ip.protocol) {
    case IpProto.icmp:
      encodeIcmp(unwrap(decodeIcmp(ip.payload), "icmp"), l4);
      seen.push("icmp");
      break;
    case IpProto.udp:
      encodeUdp(unwrap(decodeUdp(ip.payload, ip), "udp"), l4, 0, ip);
      seen.push("udp");
      break;
    case IpProto.tcp:
      encodeTcp(unwrap(decodeTcp(ip.payload, ip), "tcp"), l4, 0, ip);
      seen.push("tcp");
      break;
    default:
      throw new Error(`unexpected protocol ${ip.protocol}`);
  }
  expect(l4).toEqual(ip.payload);
  return seen;
}

/** The IPv6 layers of one frame: decoded with checksums verified, re-encoded where the codec writes all of it. */
function roundTrip6(payload: Buffer): string[] {
  const seen: string[] = [];
  const ip = unwrap(decodeIpv6(payload), "ipv6");
  const headerLength = ip.headerLength ?? 0;
  if (headerLength === (ip.fragment ? 48 : 40)) {
    const b = Buffer.alloc(ipv6EncodingLength(ip));
    encodeIpv6(ip, b);
    expect(b).toEqual(payload.subarray(0, b.length));
  } else {
    seen.push("ipv6-extension-headers");
  }
  if (ip.fragment) return [...seen, "ipv6-fragment"];
  seen.push("ipv6");
  const ph = pseudoHeader6(ip.src, ip.dst);
  const l4 = Buffer.alloc(ip.payload.length);
  switch (ip.protocol) {
    case Ipv6Next.icmpv6: {
      const m = unwrap(decodeIcmp6(ip.payload, ph), "icmpv6");
      encodeIcmp6(m, l4, 0, ph);
      seen.push("icmpv6");
      if (m.kind === "other" && isNdpType(m.type)) {
        const ndp = unwrap(decodeNdp(m), "ndp");
        seen.push(`ndp-${ndp.kind}`);
        expect(ip.hopLimit).toBe(255);
      }
      break;
    }
    case Ipv6Next.udp:
      encodeUdp(unwrap(decodeUdp(ip.payload, ph), "udp"), l4, 0, ph);
      seen.push("udp");
      break;
    case Ipv6Next.tcp:
      encodeTcp(unwrap(decodeTcp(ip.payload, ph), "tcp"), l4, 0, ph);
      seen.push("tcp");
      break;
    default:
      throw new Error(`unexpected next header ${ip.protocol}`);
  }
  expect(l4).toEqual(ip.payload);
  return seen;
}

describe("frames captured from the Linux kernel", () => {
  it("has the fixtures", () => {
    expect(files.sort()).toEqual([
      "arp.pcap",
      "dhcp-qemu-slirp-restrict.pcap",
      "dhcp-qemu-slirp.pcap",
      "icmp.pcap",
      "ipv4-fragments.pcap",
      "ipv6-fragments.pcap",
      "ipv6-icmp.pcap",
      "ipv6-link-up.pcap",
      "ipv6-ndp.pcap",
      "ipv6-qemu-slirp-ra.pcap",
      "ipv6-tcp.pcap",
      "ipv6-udp.pcap",
      "tcp.pcap",
      "udp.pcap",
      "vlan.pcap",
    ]);
  });

  for (const file of files) {
    it(`${file}: every frame decodes with checksums verified and re-encodes byte for byte`, () => {
      const packets = unwrap(readPcap(readFileSync(join(fixtures, file))), file);
      expect(packets.length).toBeGreaterThan(0);
      const protocols = new Set(packets.flatMap((p) => roundTrip(p.data)));
      const expected: Record<string, string> = {
        "ipv6-fragments.pcap": "ipv6-fragment",
        "ipv6-icmp.pcap": "icmpv6",
        "ipv6-link-up.pcap": "ndp-rs",
        "ipv6-ndp.pcap": "ndp-na",
        "ipv6-qemu-slirp-ra.pcap": "ndp-ra",
        "ipv6-tcp.pcap": "tcp",
        "ipv6-udp.pcap": "ipv6-extension-headers",
        "arp.pcap": "arp",
        "icmp.pcap": "icmp",
        "udp.pcap": "udp",
        "tcp.pcap": "tcp",
        "ipv4-fragments.pcap": "ipv4-fragment",
        "vlan.pcap": "vlan5",
        "dhcp-qemu-slirp.pcap": "udp",
        "dhcp-qemu-slirp-restrict.pcap": "udp",
      };
      expect(protocols).toContain(expected[file]);
    });
  }
});

describe("IPv6 captures in detail", () => {
  const frames = (file: string) =>
    unwrap(readPcap(readFileSync(join(fixtures, file))), file).map((p) =>
      unwrap(decodeEthernet(p.data), "eth"),
    );

  it("QEMU's slirp RA: fe80::2 from 52:56:00:00:00:02, fec0::/64 with L and A, no RDNSS, no MTU", () => {
    const ra = frames("ipv6-qemu-slirp-ra.pcap")
      .map((e) => unwrap(decodeIpv6(e.payload), "ipv6"))
      .filter((ip) => ip.protocol === Ipv6Next.icmpv6 && ip.payload[0] === 134);
    expect(ra.length).toBe(1);
    const ip = ra[0] as NonNullable<(typeof ra)[0]>;
    expect(ipv6ToString(ip.src)).toBe("fe80::2");
    expect(ipv6ToString(ip.dst)).toBe("ff02::1");
    const m = unwrap(decodeIcmp6(ip.payload, pseudoHeader6(ip.src, ip.dst)), "icmpv6");
    if (m.kind !== "other") throw new Error("not an RA");
    const ndp = unwrap(decodeNdp(m), "ndp");
    if (ndp.kind !== "ra") throw new Error("not an RA");
    expect(ndp.routerLifetime).toBe(1800);
    expect(ndp.curHopLimit).toBe(64);
    expect(ndp.options.sourceLinkAddress?.toString("hex")).toBe("525600000002");
    expect(
      ndp.options.prefixes?.map((p) => [ipv6ToString(p.prefix), p.prefixLength, p.onLink, p.autonomous]),
    ).toEqual([["fec0::", 64, true, true]]);
    expect(ndp.options.rdnss).toBeUndefined();
    expect(ndp.options.mtu).toBeUndefined();
  });

  it("the kernel's fragments: 8-byte aligned offsets, one id, the UDP header in the first", () => {
    const ips = frames("ipv6-fragments.pcap").map((e) => unwrap(decodeIpv6(e.payload), "ipv6"));
    const frags = ips.filter((ip) => ip.fragment);
    expect(frags.map((f) => f.fragment?.offset)).toEqual([0, 1448, 2896, 4344, 5792, 7240]);
    expect(new Set(frags.map((f) => f.fragment?.id)).size).toBe(1);
    expect(frags.map((f) => f.protocol)).toEqual([17, 17, 17, 17, 17, 17]);
    expect(frags.reduce((n, f) => n + f.payload.length, 0)).toBe(8008);
  });
});
