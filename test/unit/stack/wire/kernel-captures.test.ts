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
import { decodeEthernet, EtherType, encodeEthernet } from "../../../../src/stack/wire/ethernet.js";
import { decodeIcmp, encodeIcmp } from "../../../../src/stack/wire/icmp.js";
import { decodeIpv4, encodeIpv4, IpProto } from "../../../../src/stack/wire/ipv4.js";
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

describe("frames captured from the Linux kernel", () => {
  it("has the fixtures", () => {
    expect(files.sort()).toEqual([
      "arp.pcap",
      "dhcp-qemu-slirp-restrict.pcap",
      "dhcp-qemu-slirp.pcap",
      "icmp.pcap",
      "ipv4-fragments.pcap",
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
