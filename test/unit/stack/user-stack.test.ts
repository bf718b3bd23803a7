import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { ManualClock } from "../../../src/stack/clock.js";
import { type StackConfig, virtualMac } from "../../../src/stack/config.js";
import type { GuestTcpConnection } from "../../../src/stack/guest-tcp.js";
import { Ipv4Output } from "../../../src/stack/ipv4-output.js";
import { UserStack } from "../../../src/stack/user-stack.js";
import { parseIpv4, parseMac } from "../../../src/stack/wire/addr.js";
import { ArpOp, arpPacketLength, decodeArp, encodeArp } from "../../../src/stack/wire/arp.js";
import { checksumFull, checksumOffloaded, pseudoHeaderSum } from "../../../src/stack/wire/checksum.js";
import { decodeEthernet, EtherType, encodeEthernet } from "../../../src/stack/wire/ethernet.js";
import { markOffload, offloadOf } from "../../../src/stack/wire/frame-offload.js";
import { decodeIcmp, encodeIcmp } from "../../../src/stack/wire/icmp.js";
import { decodeIpv4, IpProto } from "../../../src/stack/wire/ipv4.js";
import { decodeTcp, TcpFlag, tcpEncodingLength } from "../../../src/stack/wire/tcp.js";

const ip = (s: string): number => parseIpv4(s) ?? Number.NaN;
const guestMac = parseMac("52:54:00:12:34:56") ?? Buffer.alloc(6);
const guestIp = ip("10.0.2.15");

function config(over: Partial<StackConfig> = {}): StackConfig {
  return {
    net: ip("10.0.2.0"),
    mask: ip("255.255.255.0"),
    host: ip("10.0.2.2"),
    dns: ip("10.0.2.3"),
    smb: undefined,
    extraAddresses: [],
    mtu: 1500,
    ...over,
  };
}

function arpRequest(target: number, senderIp = guestIp): Buffer {
  const f = Buffer.alloc(14 + arpPacketLength);
  encodeArp(
    { op: ArpOp.request, senderMac: guestMac, senderIp, targetMac: Buffer.alloc(6), targetIp: target },
    f,
    14,
  );
  encodeEthernet(
    { dst: Buffer.alloc(6, 0xff), src: guestMac, ethertype: EtherType.arp, payload: f.subarray(14) },
    f,
  );
  return f;
}

/** Off-link destinations go to the gateway's MAC, as a guest's routing sends them. */
function echoRequest(dst: number, data: Buffer, mtu = 1500): Buffer[] {
  const onLink = (dst & 0xffffff00) >>> 0 === ip("10.0.2.0");
  const icmp = Buffer.alloc(8 + data.length);
  encodeIcmp({ kind: "echo-request", code: 0, id: 0x1234, seq: 7, payload: data }, icmp);
  return new Ipv4Output(mtu).frames({
    srcMac: guestMac,
    dstMac: virtualMac(onLink ? dst : ip("10.0.2.2")),
    src: guestIp,
    dst,
    protocol: IpProto.icmp,
    payload: icmp,
  });
}

function decodeReplies(frames: Buffer[]) {
  return frames.map((f) => {
    const eth = decodeEthernet(f);
    if (!eth.ok) throw new Error(eth.reason);
    const ipr = decodeIpv4(eth.value.payload);
    if (!ipr.ok) throw new Error(ipr.reason);
    return { eth: eth.value, ip: ipr.value };
  });
}

describe("UserStack ARP", () => {
  it("answers for the gateway and DNS with libslirp's MACs", () => {
    const stack = new UserStack(config(), new ManualClock());
    for (const [addr, mac] of [
      ["10.0.2.2", "52:55:0a:00:02:02"],
      ["10.0.2.3", "52:55:0a:00:02:03"],
    ] as const) {
      const out = stack.input([arpRequest(ip(addr))]);
      expect(out).toHaveLength(1);
      const eth = decodeEthernet(out[0] as Buffer);
      if (!eth.ok) throw new Error(eth.reason);
      expect(eth.value.dst.equals(guestMac)).toBe(true);
      expect(eth.value.src.equals(parseMac(mac) as Buffer)).toBe(true);
      const arp = decodeArp(eth.value.payload);
      if (!arp.ok) throw new Error(arp.reason);
      expect(arp.value).toMatchObject({ op: ArpOp.reply, senderIp: ip(addr), targetIp: guestIp });
      expect(arp.value.senderMac.equals(parseMac(mac) as Buffer)).toBe(true);
      expect(arp.value.targetMac.equals(guestMac)).toBe(true);
    }
    expect(stack.arp.lookup(guestIp)?.equals(guestMac)).toBe(true);
  });

  it("stays silent for .1, .4 (no smb) and other guests, like libslirp", () => {
    const stack = new UserStack(config(), new ManualClock());
    for (const a of ["10.0.2.1", "10.0.2.4", "10.0.2.16", "10.0.2.99"])
      expect(stack.input([arpRequest(ip(a))])).toEqual([]);
    expect(stack.counters.ignored).toBe(4);
  });

  it("answers for the SMB address once SMB is on, and follows net=/host=/dns=", () => {
    const smbOn = new UserStack(config({ smb: ip("10.0.2.4") }), new ManualClock());
    expect(smbOn.input([arpRequest(ip("10.0.2.4"))])).toHaveLength(1);
    const moved = new UserStack(
      config({ net: ip("192.168.76.0"), host: ip("192.168.76.1"), dns: ip("192.168.76.53") }),
      new ManualClock(),
    );
    expect(moved.input([arpRequest(ip("192.168.76.1"), ip("192.168.76.9"))])).toHaveLength(1);
    expect(moved.input([arpRequest(ip("192.168.76.53"), ip("192.168.76.9"))])).toHaveLength(1);
    expect(moved.input([arpRequest(ip("10.0.2.2"), ip("192.168.76.9"))])).toHaveLength(0);
  });
});

describe("UserStack ICMP echo", () => {
  it("answers a ping to 10.0.2.2 from the pinged address with the same id, seq and data", () => {
    const stack = new UserStack(config(), new ManualClock());
    const data = Buffer.from("abcdefghijklmnopqrstuvwabcdefghi");
    const [reply, ...rest] = decodeReplies(stack.input(echoRequest(ip("10.0.2.2"), data)));
    expect(rest).toEqual([]);
    if (!reply) throw new Error("no reply");
    expect(reply.ip).toMatchObject({ src: ip("10.0.2.2"), dst: guestIp, ttl: 64, protocol: IpProto.icmp });
    expect(reply.eth.dst.equals(guestMac)).toBe(true);
    const icmp = decodeIcmp(reply.ip.payload);
    if (!icmp.ok) throw new Error(icmp.reason);
    expect(icmp.value).toMatchObject({ kind: "echo-reply", id: 0x1234, seq: 7 });
    expect(icmp.value.payload.equals(data)).toBe(true);
  });

  it("reassembles a fragmented 8000-byte ping and answers it fragmented to the MTU", () => {
    const stack = new UserStack(config(), new ManualClock());
    const data = Buffer.alloc(8000, 0x5a);
    const request = echoRequest(ip("10.0.2.3"), data);
    expect(request.length).toBeGreaterThan(1);
    const frames = stack.input(request);
    expect(frames.length).toBe(6);
    for (const f of frames) expect(f.length).toBeLessThanOrEqual(1514);
    const parts = decodeReplies(frames).map((r) => r.ip);
    const whole = Buffer.concat(parts.map((p) => p.payload));
    expect(parts.at(-1)?.moreFragments).toBe(false);
    const icmp = decodeIcmp(whole);
    if (!icmp.ok) throw new Error(icmp.reason);
    expect(icmp.value.payload.equals(data)).toBe(true);
  });

  it("hands pings to outside addresses to the echo hook, and answers none itself", () => {
    const seen: Array<{ dst: number; id: number; seq: number }> = [];
    const stack = new UserStack(config(), new ManualClock(), {
      emit() {},
      echo: (e) => seen.push({ dst: e.dst, id: e.id, seq: e.seq }),
    });
    expect(stack.input(echoRequest(ip("198.51.100.1"), Buffer.alloc(8)))).toEqual([]);
    expect(seen).toEqual([{ dst: ip("198.51.100.1"), id: 0x1234, seq: 7 }]);
    const hookless = new UserStack(config(), new ManualClock());
    expect(hookless.input(echoRequest(ip("198.51.100.1"), Buffer.alloc(8)))).toEqual([]);
    expect(hookless.drops.get("icmp-no-handler")).toBe(1);
  });

  it("tells a guest its datagram's TTL ran out, from the router that said so, quoting it", () => {
    const sent: Buffer[] = [];
    const stack = new UserStack(config(), new ManualClock(), { emit: (f) => sent.push(...f) });
    stack.input(echoRequest(ip("10.0.2.2"), Buffer.alloc(8))); // the stack learns the guest's MAC
    const quote = Buffer.alloc(28, 7);
    stack.sendTimeExceeded(guestIp, ip("198.51.100.254"), 0, quote);
    const [m, ...rest] = decodeReplies(sent);
    expect(rest).toEqual([]);
    expect(m?.ip).toMatchObject({ src: ip("198.51.100.254"), dst: guestIp, protocol: IpProto.icmp });
    expect(m?.eth.dst.equals(guestMac)).toBe(true);
    const icmp = decodeIcmp(m?.ip.payload ?? Buffer.alloc(0));
    if (!icmp.ok) throw new Error(icmp.reason);
    expect(icmp.value).toMatchObject({ kind: "time-exceeded", code: 0 });
    expect(icmp.value.payload.equals(quote)).toBe(true);
  });

  it("drops a corrupted IPv4 header and counts the reason", () => {
    const stack = new UserStack(config(), new ManualClock());
    const [frame] = echoRequest(ip("10.0.2.2"), Buffer.alloc(8));
    if (!frame) throw new Error("no frame");
    frame[14 + 10] = (frame[14 + 10] ?? 0) ^ 0xff; // header checksum
    expect(stack.input([frame])).toEqual([]);
    expect(stack.drops.total()).toBe(1);
  });

  it("gives up on an incomplete datagram after the reassembly timeout", () => {
    const clock = new ManualClock();
    const stack = new UserStack(config(), clock);
    const [first] = echoRequest(ip("10.0.2.2"), Buffer.alloc(4000));
    if (!first) throw new Error("no frame");
    expect(stack.input([first])).toEqual([]);
    const deadline = stack.nextDeadline();
    expect(deadline).toBeDefined();
    clock.advance(30_001);
    stack.onTimer();
    expect(stack.nextDeadline()).toBeUndefined();
    expect(stack.drops.get("reasm-timeout")).toBe(1);
  });
});

describe("UserStack Ethernet header", () => {
  it("counts every frame it does not act on under its reason", () => {
    const stack = new UserStack(config(), new ManualClock());
    const [echo] = echoRequest(ip("10.0.2.2"), Buffer.alloc(8));
    if (!echo) throw new Error("no frame");
    const withType = (type: number): Buffer => {
      const f = Buffer.from(echo);
      f.writeUInt16BE(type, 12);
      return f;
    };
    const tagged = Buffer.concat([
      echo.subarray(0, 12),
      Buffer.from([0x81, 0x00, 0x00, 0x05]),
      echo.subarray(12),
    ]);
    const taggedLength = Buffer.from(tagged);
    taggedLength.writeUInt16BE(0x0100, 16); // an 802.3 length behind the tag
    const otherMac = Buffer.from(echo);
    otherMac[5] = 0x77; // some other host's unicast MAC
    const out = stack.input([
      echo.subarray(0, 13),
      withType(0x0100),
      withType(EtherType.ipv6),
      withType(0x88cc),
      tagged,
      tagged.subarray(0, 17),
      taggedLength,
      otherMac,
    ]);
    expect(out).toEqual([]);
    expect(stack.drops.get("ethernet-truncated")).toBe(2);
    expect(stack.drops.get("ethernet-8023-length-field")).toBe(2);
    expect(stack.drops.get("ethernet-unsupported-ethertype")).toBe(1);
    expect(stack.drops.get("ipv6-off")).toBe(1);
    expect(stack.drops.get("ethernet-vlan-tagged")).toBe(1);
    expect(stack.counters.ignored).toBe(1);
    // and the untouched frame is answered
    expect(decodeReplies(stack.input([echo]))).toHaveLength(1);
  });
});

describe("UserStack under hostile input", () => {
  test.prop([fc.array(fc.uint8Array({ maxLength: 1600 }), { maxLength: 20 })])(
    "random frames never throw",
    (frames) => {
      const stack = new UserStack(config(), new ManualClock());
      stack.input(frames.map((f) => Buffer.from(f)));
    },
  );

  test.prop([
    fc.integer({ min: 0, max: 1513 }),
    fc.integer({ min: 0, max: 255 }),
    fc.integer({ min: 0, max: 1514 }),
  ])("mutated and truncated pings never throw", (at, value, cut) => {
    const stack = new UserStack(config(), new ManualClock());
    const [frame] = echoRequest(ip("10.0.2.2"), Buffer.alloc(1472, 1));
    if (!frame) throw new Error("no frame");
    frame[at] = value;
    stack.input([frame.subarray(0, cut)]);
  });
});

describe("offloads (an offloading TAP on the hub)", () => {
  /** A guest SYN to 10.0.2.2:80 whose TCP checksum field holds only the pseudo-header sum. */
  function partialSyn(): Buffer {
    const seg = {
      srcPort: 40000,
      dstPort: 80,
      seq: 1,
      ack: 0,
      flags: TcpFlag.syn,
      window: 64240,
      urgent: 0,
      payload: Buffer.alloc(0),
      mss: 1460,
    };
    const l4 = tcpEncodingLength(seg);
    const host = ip("10.0.2.2");
    const partial = { ...seg, checksum: pseudoHeaderSum(guestIp, host, IpProto.tcp, l4) };
    return new Ipv4Output(1500).tcp(guestMac, virtualMac(host), guestIp, host, partial, checksumOffloaded);
  }

  it("trusts the L4 checksum of a marked frame and checks an unmarked one", () => {
    const requests: number[] = [];
    const stack = new UserStack(config(), new ManualClock(), {
      emit() {},
      tcp: (conn, ev) => {
        if (ev.type === "connect-request") requests.push(conn.remotePort);
      },
    });
    stack.input([partialSyn()]);
    expect(stack.drops.get("tcp-bad-checksum")).toBe(1);
    expect(requests).toEqual([]);
    stack.input([
      markOffload(partialSyn(), { checksum: "partial", csumStart: 34, csumOffset: 16, gsoSize: 0 }),
    ]);
    expect(requests).toEqual([80]);
  });

  /** The TCP segment of a stack frame, its checksums verified. */
  function tcpOf(frame: Buffer | undefined) {
    const ipv4 = frame ? decodeIpv4(frame.subarray(14)) : undefined;
    const t = ipv4?.ok ? decodeTcp(ipv4.value.payload, ipv4.value) : undefined;
    if (!t?.ok) throw new Error("not a valid TCP frame");
    return t.value;
  }

  /** The guest's ACK (whole, unmarked) on the connection partialSyn() opened. */
  function guestAck(ack: number): Buffer {
    const host = ip("10.0.2.2");
    const seg = {
      srcPort: 40000,
      dstPort: 80,
      seq: 2,
      ack,
      flags: TcpFlag.ack,
      window: 64240,
      urgent: 0,
      payload: Buffer.alloc(0),
    };
    return new Ipv4Output(1500).tcp(guestMac, virtualMac(host), guestIp, host, seg, checksumFull);
  }

  it("marks large TCP segments partial while every peer takes offloads; small ones, and all otherwise, go whole", () => {
    const frames: Buffer[] = [];
    const opened: GuestTcpConnection[] = [];
    const stack = new UserStack(config(), new ManualClock(), {
      emit: (f) => frames.push(...f),
      tcp: (c, ev) => {
        if (ev.type === "connect-request") c.accept();
        if (ev.type === "established") opened.push(c);
      },
    });
    const whole = (f: Buffer | undefined) => {
      expect(f && offloadOf(f)).toBeUndefined();
      return tcpOf(f);
    };
    stack.setOffloads(true);
    stack.input([
      markOffload(partialSyn(), { checksum: "partial", csumStart: 34, csumOffset: 16, gsoSize: 0 }),
    ]);
    const synAck = whole(frames.shift()); // no payload: cheaper to sum than to mark
    stack.input([guestAck((synAck.seq + 1) >>> 0)]);
    const conn = opened[0];
    if (!conn) throw new Error("not established");
    conn.write(Buffer.alloc(100, 1));
    expect(whole(frames.shift()).payload.length).toBe(100);
    conn.write(Buffer.alloc(3000, 2));
    const big = frames.shift();
    expect(big && offloadOf(big)).toMatchObject({ checksum: "partial", csumStart: 34, csumOffset: 16 });
    stack.setOffloads(false);
    stack.input([guestAck((synAck.seq + 1 + 100 + 3000) >>> 0)]);
    conn.write(Buffer.alloc(1400, 3));
    expect(whole(frames.shift()).payload.length).toBe(1400);
  });
});

describe("guest source addresses (a guest is its MAC, not what it claims)", () => {
  const host = ip("10.0.2.2");
  const macA = guestMac;
  const macB = parseMac("52:54:00:12:34:57") ?? Buffer.alloc(6);

  /** A SYN from `mac` claiming `src`:`port`, to 10.0.2.2:80. */
  function syn(mac: Buffer, src: number, port = 40000): Buffer {
    const seg = {
      srcPort: port,
      dstPort: 80,
      seq: 1,
      ack: 0,
      flags: TcpFlag.syn,
      window: 64240,
      urgent: 0,
      payload: Buffer.alloc(0),
    };
    return new Ipv4Output(1500).tcp(mac, virtualMac(host), src, host, seg, checksumFull);
  }

  function ping(mac: Buffer, src: number): Buffer {
    const icmp = Buffer.alloc(8);
    encodeIcmp({ kind: "echo-request", code: 0, id: 1, seq: 1, payload: Buffer.alloc(0) }, icmp);
    const [f] = new Ipv4Output(1500).frames({
      srcMac: mac,
      dstMac: virtualMac(host),
      src,
      dst: host,
      protocol: IpProto.icmp,
      payload: icmp,
    });
    if (!f) throw new Error("no frame");
    return f;
  }

  function setup(maxFlowsPerGuest = 1000) {
    const clock = new ManualClock();
    const requests: number[] = [];
    const stack = new UserStack(
      config(),
      clock,
      {
        emit() {},
        tcp: (conn, ev) => {
          if (ev.type === "connect-request") {
            requests.push(conn.guestAddr);
            conn.accept();
          }
        },
      },
      { tcp: { maxFlowsPerGuest }, addressBindingMs: 60_000 },
    );
    return { clock, stack, requests };
  }

  it("drops sources outside the subnet, the stack's own, and the broadcast ones, each counted", () => {
    const { stack, requests } = setup();
    stack.input([syn(macA, ip("192.0.2.7")), syn(macA, ip("10.0.3.15"))]);
    stack.input([syn(macA, host), syn(macA, ip("10.0.2.3")), ping(macA, ip("10.0.2.3"))]);
    stack.input([syn(macA, ip("10.0.2.255")), syn(macA, ip("10.0.2.0")), syn(macA, 0)]);
    expect(requests).toEqual([]);
    expect(stack.drops.get("ipv4-source-off-subnet")).toBe(2);
    expect(stack.drops.get("ipv4-source-own-address")).toBe(3);
    expect(stack.drops.get("ipv4-source-broadcast")).toBe(2);
    expect(stack.drops.get("ipv4-source-unspecified")).toBe(1);
    expect(stack.tcp.table.counters.opened).toBe(0);
    stack.input([syn(macA, guestIp)]);
    expect(requests).toEqual([guestIp]);
  });

  it("keeps an address its first MAC's: another MAC using it is dropped while the binding is fresh", () => {
    const { clock, stack, requests } = setup();
    const replies = stack.input([ping(macA, guestIp)]);
    expect(replies).toHaveLength(1);
    expect(stack.input([ping(macB, guestIp), syn(macB, guestIp)])).toEqual([]);
    expect(stack.drops.get("ipv4-spoofed-source")).toBe(2);
    expect(requests).toEqual([]);
    // the ARP table still points at A: an ARP from B claiming the address teaches it nothing
    const arpFromB = arpRequest(host);
    macB.copy(arpFromB, 6);
    macB.copy(arpFromB, 14 + 8);
    stack.input([arpFromB]);
    expect(stack.drops.get("arp-spoofed-sender")).toBe(1);
    expect(stack.arp.lookup(guestIp)).toEqual(macA);
    // A keeps it fresh by using it; once A is silent past the binding, B may take it
    clock.advance(50_000);
    stack.input([ping(macA, guestIp)]);
    clock.advance(50_000);
    expect(stack.input([ping(macB, guestIp)])).toEqual([]);
    clock.advance(10_001);
    expect(stack.input([ping(macB, guestIp)])).toHaveLength(1);
    expect(stack.addressOwner(guestIp)).toEqual(macB);
  });

  it("gives a leased address to the lease's MAC, even against the MAC seen first", () => {
    const { clock, stack } = setup();
    stack.input([ping(macB, guestIp)]);
    stack.bindAddress(guestIp, macA, clock.now() + 3_600_000);
    expect(stack.input([ping(macB, guestIp)])).toEqual([]);
    expect(stack.input([ping(macA, guestIp)])).toHaveLength(1);
    clock.advance(3_000_000); // silent for 50 min: the lease still holds
    expect(stack.input([ping(macB, guestIp)])).toEqual([]);
    expect(stack.drops.get("ipv4-spoofed-source")).toBe(2);
  });

  it("caps guests per hub port: a port cycling through 1,000 MACs gets its few, and another port is served", () => {
    const clock = new ManualClock();
    const requests: number[] = [];
    const stack = new UserStack(
      config(),
      clock,
      {
        emit() {},
        tcp: (conn, ev) => {
          if (ev.type === "connect-request") {
            requests.push(conn.guest);
            conn.accept();
          }
        },
      },
      { tcp: { maxFlowsPerGuest: 2, maxFlows: 200 }, guests: { maxPerPort: 8 } },
    );
    const macOf = (n: number) => Buffer.from([0x52, 0x54, 0x01, 0x00, n >> 8, n & 0xff]);
    for (let i = 0; i < 1000; i++) {
      // each MAC with its own address and two connections' worth of SYNs
      const src = ip("10.0.2.16") + (i % 200);
      stack.input([syn(macOf(i), src, 40000), syn(macOf(i), src, 40001), syn(macOf(i), src, 40002)], 7);
    }
    expect(stack.guests.counters.refused).toBe(992 * 3);
    expect(stack.drops.get("guest-identity-limit")).toBe(992 * 3);
    expect(new Set(requests).size).toBeLessThanOrEqual(8);
    expect(stack.tcp.table.size).toBeLessThanOrEqual(16);
    // a guest on another port still connects
    stack.input([syn(macA, guestIp)], 8);
    expect(stack.tcp.table.size).toBe(requests.length);
    expect(requests.at(-1)).toBe(stack.guests.identify(8, macA, clock.now()));
  });

  it("tells guests apart by port: the same MAC on another port may not use the first one's address", () => {
    const { stack } = setup();
    expect(stack.input([ping(macA, guestIp)], 1)).toHaveLength(1);
    expect(stack.input([ping(macA, guestIp)], 2)).toEqual([]);
    expect(stack.drops.get("ipv4-spoofed-source")).toBe(1);
  });

  it("gives a leased address back to its MAC when the port that held it leaves (a QEMU client reconnecting)", () => {
    const { clock, stack } = setup();
    stack.bindAddress(guestIp, macA, clock.now() + 3_600_000);
    expect(stack.input([ping(macA, guestIp)], 1)).toHaveLength(1);
    expect(stack.input([ping(macA, guestIp)], 2)).toEqual([]);
    stack.portLeft(1);
    expect(stack.input([ping(macA, guestIp)], 2)).toHaveLength(1);
    // and another MAC still may not
    expect(stack.input([ping(macB, guestIp)], 3)).toEqual([]);
  });

  it("counts connections against the sender's MAC, so cycling source addresses does not escape the bound", () => {
    const { stack, requests } = setup(4);
    const frames: Buffer[] = [];
    for (let i = 0; i < 40; i++) frames.push(syn(macA, ip("10.0.2.100") + i, 40000 + i));
    stack.input(frames);
    expect(requests).toHaveLength(4);
    expect(stack.tcp.table.counters.refused).toBe(36);
    expect(stack.drops.get("tcp-too-many-connections")).toBe(36);
    // another guest is not affected by A's exhaustion
    stack.input([syn(macB, ip("10.0.2.16"))]);
    expect(requests).toHaveLength(5);
    expect(requests.at(-1)).toBe(ip("10.0.2.16"));
  });
});
