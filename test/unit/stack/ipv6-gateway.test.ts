import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { ManualClock } from "../../../src/stack/clock.js";
import { ipv6Defaults, type StackConfig } from "../../../src/stack/config.js";
import type { GuestTcpConnection } from "../../../src/stack/guest-tcp.js";
import { Ipv6Output } from "../../../src/stack/ipv6-output.js";
import type { TcpEvent } from "../../../src/stack/tcp/tcp-endpoint.js";
import {
  type GuestEcho6,
  type GuestUdp6,
  UserStack,
  type UserStackHooks,
} from "../../../src/stack/user-stack.js";
import { parseIpv4, parseMac } from "../../../src/stack/wire/addr.js";
import { pseudoHeader6 } from "../../../src/stack/wire/checksum.js";
import { decodeEthernet, EtherType } from "../../../src/stack/wire/ethernet.js";
import {
  decodeIcmp6,
  encodeIcmp6,
  type Icmp6Message,
  icmp6EncodingLength,
} from "../../../src/stack/wire/icmpv6.js";
import { decodeIpv6, encodeIpv6, Ipv6Next, type Ipv6Packet } from "../../../src/stack/wire/ipv6.js";
import {
  ipv6Copy,
  ipv6MulticastMac,
  ipv6ToString,
  linkLocalOfMac,
  parseIpv6,
  solicitedNode,
} from "../../../src/stack/wire/ipv6-addr.js";
import { decodeNdp, encodeNdp, type NdpMessage } from "../../../src/stack/wire/ndp.js";
import {
  decodeTcp,
  encodeTcp,
  TcpFlag,
  type TcpSegment,
  tcpEncodingLength,
} from "../../../src/stack/wire/tcp.js";
import { encodeUdp } from "../../../src/stack/wire/udp.js";

const v6 = (s: string): Buffer => parseIpv6(s) as Buffer;
const v4 = (s: string): number => parseIpv4(s) as number;
const macA = parseMac("52:54:00:12:34:56") as Buffer;
const macB = parseMac("52:54:00:12:34:57") as Buffer;
const llA = linkLocalOfMac(macA);
const addrA = v6("fec0::5054:ff:fe12:3456");
const gw = v6("fec0::2");
const dns = v6("fec0::3");
const routerLl = v6("fe80::2");
const gwMac = parseMac("52:56:00:00:00:02") as Buffer;
const dnsMac = parseMac("52:56:00:00:00:03") as Buffer;
const allNodes = v6("ff02::1");

function config(over: Partial<StackConfig> = {}): StackConfig {
  return {
    net: v4("10.0.2.0"),
    mask: v4("255.255.255.0"),
    host: v4("10.0.2.2"),
    dns: v4("10.0.2.3"),
    smb: undefined,
    extraAddresses: [],
    mtu: 1500,
    ipv6: { ...ipv6Defaults(), dnsSearch: ["example.org"], otherConfig: true },
    ...over,
  };
}

function icmp(src: Buffer, dst: Buffer, m: Icmp6Message): Buffer {
  const b = Buffer.alloc(icmp6EncodingLength(m));
  encodeIcmp6(m, b, 0, pseudoHeader6(src, dst));
  return b;
}

/** One frame from a guest (its MAC `mac`) to `dstMac`. */
function frame(
  mac: Buffer,
  dstMac: Buffer,
  src: Buffer,
  dst: Buffer,
  protocol: number,
  payload: Buffer,
  hopLimit = 64,
) {
  const out = new Ipv6Output(65535).frames({ srcMac: mac, dstMac, src, dst, protocol, payload, hopLimit });
  return out[0] as Buffer;
}

function ndp(mac: Buffer, src: Buffer, dst: Buffer, m: NdpMessage, hopLimit = 255): Buffer {
  const dstMac = dst[0] === 0xff ? ipv6MulticastMac(dst) : gwMac;
  return frame(mac, dstMac, src, dst, Ipv6Next.icmpv6, icmp(src, dst, encodeNdp(m)), hopLimit);
}

interface Decoded {
  dstMac: string;
  srcMac: string;
  ip: Ipv6Packet;
  icmp?: Icmp6Message;
  ndp?: NdpMessage;
}

function decode(frames: Buffer[]): Decoded[] {
  return frames.map((f) => {
    const eth = decodeEthernet(f);
    if (!eth.ok) throw new Error(eth.reason);
    expect(eth.value.ethertype).toBe(EtherType.ipv6);
    const ip = decodeIpv6(eth.value.payload);
    if (!ip.ok) throw new Error(ip.reason);
    const d: Decoded = {
      dstMac: eth.value.dst.toString("hex"),
      srcMac: eth.value.src.toString("hex"),
      ip: ip.value,
    };
    if (ip.value.protocol === Ipv6Next.icmpv6 && ip.value.fragment === undefined) {
      const m = decodeIcmp6(ip.value.payload, pseudoHeader6(ip.value.src, ip.value.dst));
      if (!m.ok) throw new Error(m.reason);
      d.icmp = m.value;
      if (m.value.kind === "other" && m.value.type >= 133 && m.value.type <= 137) {
        const n = decodeNdp(m.value);
        if (!n.ok) throw new Error(n.reason);
        d.ndp = n.value;
      }
    }
    return d;
  });
}

/** A stack with the first RA (the greeting) already taken for guest A. */
function stackWith(hooks: Partial<UserStackHooks> = {}, over: Partial<StackConfig> = {}) {
  const clock = new ManualClock();
  const emitted: Buffer[] = [];
  const stack = new UserStack(config(over), clock, { emit: (f) => emitted.push(...f), ...hooks });
  return { stack, clock, emitted };
}

const ns = (target: Buffer): NdpMessage => ({ kind: "ns", target, options: { sourceLinkAddress: macA } });

describe("IPv6 gateway: NDP", () => {
  it("answers NS for its addresses with libslirp's MACs; a guest's first frame gets an RA", () => {
    const { stack } = stackWith();
    for (const [target, mac] of [
      [gw, gwMac],
      [dns, dnsMac],
      [routerLl, gwMac],
    ] as const) {
      const replies = decode(stack.input([ndp(macA, llA, solicitedNode(target), ns(target))]));
      const na = replies.filter((r) => r.ndp?.kind === "na");
      expect(na).toHaveLength(1);
      const r = na[0] as Decoded;
      expect(r.dstMac).toBe(macA.toString("hex"));
      expect(r.srcMac).toBe(mac.toString("hex"));
      expect(r.ip.hopLimit).toBe(255);
      expect(ipv6ToString(r.ip.src)).toBe(ipv6ToString(target));
      expect(ipv6ToString(r.ip.dst)).toBe(ipv6ToString(llA));
      expect(r.ndp).toMatchObject({ router: true, solicited: true, override: true });
      expect(r.ndp?.options.targetLinkAddress?.toString("hex")).toBe(mac.toString("hex"));
    }
    expect(stack.counters.txFrames).toBeGreaterThan(0);
  });

  it("ignores NS for other addresses and NDP with a hop limit below 255", () => {
    const { stack } = stackWith();
    stack.input([ndp(macA, llA, solicitedNode(gw), ns(gw))]); // greeting out of the way
    expect(stack.input([ndp(macA, llA, solicitedNode(v6("fec0::99")), ns(v6("fec0::99")))])).toEqual([]);
    expect(stack.drops.get("ndp-not-ours")).toBe(1);
    expect(stack.input([ndp(macA, llA, v6("ff02::fb"), ns(v6("fec0::99")))])).toEqual([]);
    expect(stack.drops.get("ipv6-multicast-ignored")).toBe(1);
    expect(stack.input([ndp(macA, llA, solicitedNode(gw), ns(gw), 64)])).toEqual([]);
    expect(stack.drops.get("ndp-bad-hop-limit")).toBe(1);
  });

  it("answers RS at once with an RA: prefix (A), MTU, RDNSS, DNSSL, M/O from the config", () => {
    const { stack } = stackWith({}, { mtu: 9000 });
    stack.input([ndp(macA, llA, solicitedNode(gw), ns(gw))]);
    const rs: NdpMessage = { kind: "rs", options: { sourceLinkAddress: macA } };
    const out = decode(stack.input([ndp(macA, llA, v6("ff02::2"), rs)]));
    expect(out).toHaveLength(1);
    const ra = out[0] as Decoded;
    expect(ra.dstMac).toBe(macA.toString("hex")); // to the soliciting guest only
    expect(ipv6ToString(ra.ip.src)).toBe("fe80::2");
    expect(ipv6ToString(ra.ip.dst)).toBe("ff02::1");
    expect(ra.ip.hopLimit).toBe(255);
    if (ra.ndp?.kind !== "ra") throw new Error("not an RA");
    expect(ra.ndp.managed).toBe(false);
    expect(ra.ndp.other).toBe(true);
    expect(ra.ndp.routerLifetime).toBe(1800);
    expect(ra.ndp.curHopLimit).toBe(64);
    const o = ra.ndp.options;
    expect(o.sourceLinkAddress?.toString("hex")).toBe("525600000002");
    expect(o.mtu).toBe(9000);
    expect(o.prefixes?.map((p) => [ipv6ToString(p.prefix), p.prefixLength, p.onLink, p.autonomous])).toEqual([
      ["fec0::", 64, true, true],
    ]);
    expect(o.rdnss?.map((r) => r.servers.map((s) => ipv6ToString(s)))).toEqual([["fec0::3"]]);
    expect(o.dnssl?.map((d) => d.domains)).toEqual([["example.org"]]);
  });

  it("greets a new guest with an RA and sends one to all every interval", () => {
    const { stack, clock, emitted } = stackWith();
    const first = decode(stack.input([ndp(macA, v6("::"), solicitedNode(llA), ns(llA))]));
    expect(first.map((d) => d.ndp?.kind)).toEqual(["ra"]);
    expect(first[0]?.dstMac).toBe(macA.toString("hex"));
    const deadline = stack.nextDeadline() as number;
    expect(deadline).toBe(300_000);
    clock.advance(deadline);
    stack.onTimer();
    const periodic = decode(emitted);
    expect(periodic.map((d) => [d.ndp?.kind, d.dstMac])).toEqual([["ra", "333300000001"]]);
    expect(stack.nextDeadline()).toBe(600_000);
  });

  it("learns guests from NA, DAD and traffic; a guest cannot take the gateway's or another guest's address", () => {
    const { stack } = stackWith();
    const na = (target: Buffer): NdpMessage => ({
      kind: "na",
      router: false,
      solicited: false,
      override: true,
      target,
      options: { targetLinkAddress: macA },
    });
    stack.input([ndp(macA, v6("::"), solicitedNode(addrA), ns(addrA))]); // DAD
    expect(stack.neighbours6().map((n) => ipv6ToString(n.address))).toEqual([ipv6ToString(addrA)]);
    stack.input([ndp(macA, llA, allNodes, na(llA))]);
    const before = stack.neighbours6().map((n) => [ipv6ToString(n.address), n.mac.toString("hex"), n.guest]);
    expect(before).toHaveLength(2);
    // spoofing the gateway: NA for fec0::2, packets from fec0::2, DAD for it (defended)
    stack.input([ndp(macB, linkLocalOfMac(macB), allNodes, na(gw))]);
    expect(stack.drops.get("ndp-spoofed-gateway")).toBe(1);
    stack.input([ndp(macB, gw, allNodes, na(v6("fec0::77")))]);
    expect(stack.drops.get("ipv6-source-own-address")).toBe(1);
    const defended = decode(stack.input([ndp(macB, v6("::"), solicitedNode(dns), ns(dns))]));
    expect(
      defended.filter((d) => d.ndp?.kind === "na").map((d) => [d.dstMac, ipv6ToString(d.ip.dst)]),
    ).toEqual([["333300000001", "ff02::1"]]);
    // another guest claiming A's addresses
    stack.input([ndp(macB, addrA, allNodes, na(v6("fec0::77")))]);
    expect(stack.drops.get("ipv6-spoofed-source")).toBe(1);
    stack.input([ndp(macB, v6("fe80::b"), allNodes, na(llA))]);
    expect(stack.drops.get("ndp-spoofed-neighbour")).toBe(1);
    const after = stack.neighbours6().map((n) => [ipv6ToString(n.address), n.mac.toString("hex"), n.guest]);
    expect(after.filter(([a]) => a === ipv6ToString(addrA) || a === ipv6ToString(llA))).toEqual(before);
    expect(after.some(([a]) => a === "fec0::2" || a === "fec0::3" || a === "fe80::2")).toBe(false);
  });
});

describe("IPv6 gateway: echo, UDP, TCP", () => {
  const greeted = (hooks: Partial<UserStackHooks> = {}, over: Partial<StackConfig> = {}) => {
    const s = stackWith(hooks, over);
    s.stack.input([ndp(macA, addrA, solicitedNode(gw), ns(gw))]);
    return s;
  };

  it("answers echo to its addresses; echo to the outside goes to the hook or is refused", () => {
    const echoes: GuestEcho6[] = [];
    const { stack } = greeted({ echo6: (e) => echoes.push({ ...e, dst: ipv6Copy(e.dst) }) });
    const req = (dst: Buffer) =>
      frame(
        macA,
        gwMac,
        addrA,
        dst,
        Ipv6Next.icmpv6,
        icmp(addrA, dst, { kind: "echo-request", code: 0, id: 7, seq: 1, payload: Buffer.from("hi") }),
      );
    const out = decode(stack.input([req(gw), req(dns)]));
    expect(out.map((d) => [d.icmp?.kind, ipv6ToString(d.ip.src), d.srcMac])).toEqual([
      ["echo-reply", "fec0::2", "525600000002"],
      ["echo-reply", "fec0::3", "525600000003"],
    ]);
    expect(stack.input([req(v6("2001:db8::1"))])).toEqual([]);
    expect(echoes.map((e) => [ipv6ToString(e.dst), e.id, e.seq])).toEqual([["2001:db8::1", 7, 1]]);

    const bare = greeted();
    const emittedBefore = bare.emitted.length;
    bare.stack.input([req(v6("2001:db8::1"))]);
    expect(bare.stack.drops.get("ipv6-echo-no-handler")).toBe(1);
    const err = decode(bare.emitted.slice(emittedBefore));
    expect(err.map((d) => [d.icmp?.kind, d.icmp?.code, ipv6ToString(d.ip.src)])).toEqual([
      ["dest-unreachable", 0, "fec0::2"],
    ]);
  });

  it("hands UDP to the hook, reassembled; hop limit 1 to the outside gets time exceeded", () => {
    const got: { dst: string; port: number; length: number }[] = [];
    const { stack, emitted } = greeted({
      udp6: (d: GuestUdp6) =>
        got.push({ dst: ipv6ToString(d.dst), port: d.dstPort, length: d.payload.length }),
    });
    const dst = v6("2001:db8::53");
    const data = Buffer.alloc(8000, 0x5a);
    const dgram = Buffer.alloc(8 + data.length);
    encodeUdp({ srcPort: 4000, dstPort: 53, payload: data }, dgram, 0, pseudoHeader6(addrA, dst));
    const frags = new Ipv6Output(1500).frames({
      srcMac: macA,
      dstMac: gwMac,
      src: addrA,
      dst,
      protocol: 17,
      payload: dgram,
    });
    expect(frags.length).toBe(6);
    stack.input(frags.reverse());
    expect(got).toEqual([{ dst: "2001:db8::53", port: 53, length: 8000 }]);
    const small = Buffer.alloc(8 + 4);
    encodeUdp(
      { srcPort: 4000, dstPort: 53, payload: Buffer.from("ping") },
      small,
      0,
      pseudoHeader6(addrA, dst),
    );
    stack.input([frame(macA, gwMac, addrA, dst, 17, small, 1)]);
    expect(got).toHaveLength(1);
    expect(decode(emitted).map((d) => [d.icmp?.kind, ipv6ToString(d.ip.dst)])).toEqual([
      ["time-exceeded", ipv6ToString(addrA)],
    ]);
  });

  it("refuses fragments beyond the per-guest reassembly bound, counted", () => {
    const { stack } = greeted({ udp6: () => {} }, {});
    const dst = v6("2001:db8::53");
    const frags: Buffer[] = [];
    for (let id = 0; id < 40; id++) {
      const first = Buffer.alloc(8, id);
      const p: Ipv6Packet = {
        trafficClass: 0,
        flowLabel: 0,
        hopLimit: 64,
        src: addrA,
        dst,
        protocol: 17,
        fragment: { id, offset: 0, more: true },
        payload: first,
      };
      const f = Buffer.alloc(14 + 48 + 8);
      gwMac.copy(f, 0);
      macA.copy(f, 6);
      f.writeUInt16BE(0x86dd, 12);
      encodeIpv6(p, f, 14);
      frags.push(f);
    }
    stack.input(frags);
    expect(stack.drops.get("reasm-source-full")).toBe(40 - 16);
  });

  it("runs guest TCP over IPv6 through the TCP endpoints (MSS MTU - 60); no tcp6 hook: RST", () => {
    const events: [GuestTcpConnection, TcpEvent][] = [];
    const { stack, emitted } = greeted({
      tcp6: (conn, ev) => {
        events.push([conn, ev]);
        if (ev.type === "connect-request") conn.accept();
      },
    });
    const dst = v6("2001:db8::80");
    const syn: TcpSegment = {
      srcPort: 40000,
      dstPort: 80,
      seq: 1000,
      ack: 0,
      flags: TcpFlag.syn,
      window: 65535,
      urgent: 0,
      mss: 1440,
      payload: Buffer.alloc(0),
    };
    const seg = Buffer.alloc(tcpEncodingLength(syn));
    encodeTcp(syn, seg, 0, pseudoHeader6(addrA, dst));
    stack.input([frame(macA, gwMac, addrA, dst, Ipv6Next.tcp, seg)]);
    const [conn, ev] = events[0] as [GuestTcpConnection, TcpEvent];
    expect(ev.type).toBe("connect-request");
    expect(conn.family).toBe(6);
    expect(ipv6ToString(conn.remoteAddr6 as Buffer)).toBe("2001:db8::80");
    expect(ipv6ToString(conn.guestAddr6 as Buffer)).toBe(ipv6ToString(addrA));
    const synAck = decode(emitted);
    expect(synAck).toHaveLength(1);
    const ip = (synAck[0] as Decoded).ip;
    expect(ipv6ToString(ip.src)).toBe("2001:db8::80");
    const t = decodeTcp(ip.payload, pseudoHeader6(ip.src, ip.dst));
    if (!t.ok) throw new Error(t.reason);
    expect(t.value.flags).toBe(TcpFlag.syn | TcpFlag.ack);
    expect(t.value.mss).toBe(1440);

    const bare = greeted();
    bare.stack.input([frame(macA, gwMac, addrA, dst, Ipv6Next.tcp, seg)]);
    const rst = decode(bare.emitted);
    const r = decodeTcp((rst[0] as Decoded).ip.payload, pseudoHeader6(dst, addrA));
    if (!r.ok) throw new Error(r.reason);
    expect(r.value.flags & TcpFlag.rst).toBe(TcpFlag.rst);
  });

  it("ipv4=off drops ARP and IPv4; a stack without IPv6 drops IPv6", () => {
    const { stack } = stackWith({}, { ipv4: false });
    const arp = Buffer.alloc(60);
    arp.fill(0xff, 0, 6);
    macA.copy(arp, 6);
    arp.writeUInt16BE(EtherType.arp, 12);
    expect(stack.input([arp])).toEqual([]);
    expect(stack.drops.get("ipv4-off")).toBe(1);
    const { ipv6: _, ...noV6 } = config();
    const plain = new UserStack(noV6, new ManualClock());
    expect(plain.input([ndp(macA, llA, solicitedNode(gw), ns(gw))])).toEqual([]);
  });
});

describe("IPv6 gateway under hostile input", () => {
  const arbAddr = fc.oneof(
    fc.constantFrom(
      gw,
      dns,
      routerLl,
      allNodes,
      addrA,
      llA,
      v6("::"),
      v6("ff02::1:ff00:2"),
      v6("2001:db8::1"),
    ),
    fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a)),
  );
  const arbNdpish = fc.record({
    type: fc.integer({ min: 128, max: 140 }),
    code: fc.integer({ min: 0, max: 2 }),
    rest: fc.integer({ min: 0, max: 0xffffffff }),
    payload: fc.uint8Array({ maxLength: 120 }).map((a) => Buffer.from(a)),
  });
  const arbFrame = fc.oneof(
    fc.uint8Array({ maxLength: 200 }).map((a) => {
      const f = Buffer.concat([gwMac, macA, Buffer.from([0x86, 0xdd]), Buffer.from(a)]);
      if (f.length > 14) f[14] = 0x60 | (f[14] as number & 0x0f);
      return f;
    }),
    fc
      .tuple(arbAddr, arbAddr, arbNdpish, fc.constantFrom(255, 64, 1), fc.constantFrom(macA, macB))
      .map(([src, dst, m, hop, mac]) =>
        frame(
          mac,
          dst[0] === 0xff ? ipv6MulticastMac(dst) : gwMac,
          src,
          dst,
          Ipv6Next.icmpv6,
          icmp(src, dst, { kind: "other", ...m }),
          hop,
        ),
      ),
  );

  test.prop([fc.array(arbFrame, { maxLength: 30 })], { numRuns: 300 })(
    "random IPv6, ICMPv6 and NDP frames never throw; tables stay bounded",
    (frames) => {
      const { stack, clock } = stackWith({ udp6: () => {}, echo6: () => {} });
      stack.input(frames);
      clock.advance(61_000);
      stack.onTimer();
      expect(stack.neighbours6().length).toBeLessThanOrEqual(frames.length * 2);
      // the gateway's own addresses never become a guest's
      expect(
        stack
          .neighbours6()
          .some((n) => n.address.equals(gw) || n.address.equals(dns) || n.address.equals(routerLl)),
      ).toBe(false);
      expect(stack.drops.total() + stack.counters.ignored).toBeGreaterThanOrEqual(0);
    },
  );
});
