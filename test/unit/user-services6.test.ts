import * as dnsPacket from "dns-packet";
import { describe, expect, it } from "vitest";
import { defaultUserNetdev } from "../../src/cli/netdev-user.js";
import type { UserNetdevConfig } from "../../src/config.js";
import { silentLogger } from "../../src/log.js";
import { LocalTcpService } from "../../src/proxy/local-tcp-service.js";
import {
  decodeDhcpv6,
  decodeIaAddr,
  decodeIaNa,
  encodeDhcpv6,
  encodeIaNa,
  findOption,
  Dhcpv6Option as O,
  Dhcpv6Type as T,
} from "../../src/services/dhcpv6/dhcpv6-codec.js";
import { MemoryLease6Store } from "../../src/services/dhcpv6/dhcpv6-lease.js";
import { DnsForwarder } from "../../src/services/dns/dns-forwarder.js";
import { LocalNames } from "../../src/services/dns/local-names.js";
import { ipv6Defaults } from "../../src/stack/config.js";
import type { GuestUdp6, UdpToGuest6 } from "../../src/stack/user-stack.js";
import { ipv6ToString, parseIpv6 } from "../../src/stack/wire/ipv6-addr.js";
import { Ipv6Services, raFlags } from "../../src/user-services6.js";

const v6 = (s: string) => parseIpv6(s) as Buffer;
const MAC = Buffer.from("525400123456", "hex");
const flush = () => new Promise<void>((r) => setImmediate(r));

function setup(over: Partial<UserNetdevConfig> = {}, neighbours: { address: Buffer; mac: Buffer }[] = []) {
  const sent: UdpToGuest6[] = [];
  const localNames = new LocalNames();
  localNames.set6("host.usernet.internal", "fec0::2");
  const dns = new DnsForwarder({
    upstream: { query: () => Promise.reject(new Error("no upstream in this test")) },
    servers: [],
    logger: silentLogger,
    localNames,
  });
  const dnsTcp = new LocalTcpService({ name: "dns-tcp", open: () => undefined }, silentLogger);
  const cfg = { ...defaultUserNetdev("n0", 0), dnsSearch: ["lab.test"], ...over };
  const s = new Ipv6Services(
    cfg,
    ipv6Defaults(),
    {
      log: silentLogger,
      wallClock: () => 1000,
      dns,
      dnsTcp,
      sendUdp6: (d) => sent.push(d),
      neighbours: () => neighbours,
      closed: () => false,
    },
    new MemoryLease6Store(),
  );
  return { s, sent };
}

function udp(
  dst: string,
  dstPort: number,
  payload: Buffer,
  src = "fe80::5054:ff:fe12:3456",
  srcPort = 546,
): GuestUdp6 {
  return {
    srcMac: MAC,
    guest: 1,
    src: v6(src),
    srcPort,
    dst: v6(dst),
    dstPort,
    payload,
    quote: () => Buffer.alloc(0),
  };
}

const solicit = (rapid: boolean) =>
  encodeDhcpv6({
    type: T.SOLICIT,
    transactionId: 7,
    options: [
      { code: O.CLIENT_ID, data: Buffer.from("00030001525400123456", "hex") },
      ...(rapid ? [{ code: O.RAPID_COMMIT, data: Buffer.alloc(0) }] : []),
      { code: O.IA_NA, data: encodeIaNa({ iaid: 1, t1: 0, t2: 0, options: [] }) },
    ],
  });

describe("IPv6 services", () => {
  it("answers DHCPv6 at ff02::1:2 from fe80::2:547 to the client, with an address from prefix::15", async () => {
    const { s, sent } = setup();
    expect(s.udp(udp("ff02::1:2", 547, solicit(true)))).toBe(true);
    await flush();
    expect(sent).toHaveLength(1);
    const r = sent[0] as UdpToGuest6;
    expect([ipv6ToString(r.src), r.srcPort, ipv6ToString(r.dst), r.dstPort]).toEqual([
      "fe80::2",
      547,
      "fe80::5054:ff:fe12:3456",
      546,
    ]);
    expect(r.dstMac).toEqual(MAC);
    const m = decodeDhcpv6(r.payload);
    if (!m.ok) throw new Error(m.reason);
    expect(m.value.type).toBe(T.REPLY);
    const ia = decodeIaNa(findOption(m.value.options, O.IA_NA) as Buffer);
    const addr = ia.ok ? decodeIaAddr(ia.value.options[0]?.data as Buffer) : undefined;
    expect(addr?.ok && ipv6ToString(addr.value.address)).toBe("fec0::15");
    expect(findOption(m.value.options, O.DNS_SERVERS)?.toString("hex")).toBe(
      "fec00000000000000000000000000003",
    );
    expect(s.leases(1000).map((l) => [l.ip, l.state])).toEqual([["fec0::15", "bound"]]);
  });

  it("skips addresses a neighbour uses, and leaves other ports and dhcpv6=off to the NAT", async () => {
    const { s, sent } = setup({}, [{ address: v6("fec0::15"), mac: Buffer.from("525400000099", "hex") }]);
    s.udp(udp("ff02::1:2", 547, solicit(true)));
    await flush();
    expect(s.leases(1000).map((l) => l.ip)).toEqual(["fec0::16"]);
    expect(sent).toHaveLength(1);
    expect(s.udp(udp("fec0::2", 548, solicit(true)))).toBe(false);
    const off = setup({ dhcpv6: "off" });
    expect(off.s.udp(udp("ff02::1:2", 547, solicit(true)))).toBe(false);
    expect(off.s.dhcp).toBeUndefined();
  });

  it("answers DNS at the IPv6 DNS address from port 53, AAAA for local names", async () => {
    const { s, sent } = setup();
    const q = dnsPacket.encode({
      type: "query",
      id: 9,
      questions: [{ type: "AAAA", name: "host.usernet.internal" }],
    });
    expect(s.udp(udp("fec0::3", 53, q, "fec0::15", 40000))).toBe(true);
    for (let i = 0; i < 5 && sent.length === 0; i++) await flush();
    const r = sent[0] as UdpToGuest6;
    expect([ipv6ToString(r.src), r.srcPort, ipv6ToString(r.dst), r.dstPort]).toEqual([
      "fec0::3",
      53,
      "fec0::15",
      40000,
    ]);
    expect(dnsPacket.decode(r.payload).answers?.[0]).toMatchObject({ type: "AAAA", data: "fec0::2" });
    const noDns = setup({ dnsForward: false });
    expect(noDns.s.udp(udp("fec0::3", 53, q))).toBe(false);
  });

  it("gives tftp=/bootfile= netboot its boot file URL (option 59) when asked", async () => {
    const { s, sent } = setup({ tftp: "/srv/tftp", bootfile: "/ipxe.efi", dhcpv6: "stateless" });
    const inform = encodeDhcpv6({
      type: T.INFORMATION_REQUEST,
      transactionId: 1,
      options: [{ code: O.ORO, data: Buffer.from("0017003b", "hex") }],
    });
    s.udp(udp("ff02::1:2", 547, inform));
    await flush();
    const m = decodeDhcpv6((sent[0] as UdpToGuest6).payload);
    expect(m.ok && findOption(m.value.options, O.BOOTFILE_URL)?.toString()).toBe("tftp://[fec0::2]/ipxe.efi");
  });

  it("the RA flags of each mode", () => {
    expect(raFlags(undefined)).toEqual({ managed: true, otherConfig: true });
    expect(raFlags("stateless")).toEqual({ managed: false, otherConfig: true });
    expect(raFlags("off")).toEqual({ managed: false, otherConfig: false });
  });
});
