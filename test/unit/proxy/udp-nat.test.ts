import { describe, expect, it } from "vitest";
import { silentLogger } from "../../../src/log.js";
import type { HostEndpoint, HostNet, HostUdpEvent } from "../../../src/proxy/host-net.js";
import { ipv6NatFamily } from "../../../src/proxy/nat-family.js";
import { NatPolicy } from "../../../src/proxy/nat-policy.js";
import { UdpNat } from "../../../src/proxy/udp-nat.js";
import type { GuestUdp, UdpToGuest } from "../../../src/stack/user-stack.js";
import { parseIpv4 } from "../../../src/stack/wire/addr.js";
import { IcmpUnreachableCode } from "../../../src/stack/wire/icmp.js";
import { ipv6Key, parseIpv6 } from "../../../src/stack/wire/ipv6-addr.js";

const ip = (s: string): number => parseIpv4(s) ?? Number.NaN;

/**
 * A host UDP socket as host-net.ts gives it (unconnected, IP_RECVERR): a datagram to a
 * destination the fake host calls closed comes back later, on the host's turn, as an
 * "icmp" event naming that destination; nothing ever arrives as an error event for it.
 */
class FakeSocket {
  sent: Array<{ data: Buffer; to: HostEndpoint }> = [];
  closed = false;
  constructor(
    readonly local: string | undefined,
    readonly events: (e: HostUdpEvent) => void,
    private readonly host: FakeHost,
  ) {}
  send(data: Buffer, address: string, port: number): string | undefined {
    const to = { address, port };
    // the NAT may reuse the payload's memory once send returns, as a real socket allows
    const refused = this.host.refuse.get(to.address);
    if (refused) return refused;
    this.sent.push({ data: Buffer.from(data), to });
    const icmp = this.host.answers.get(`${to.address}:${to.port}`);
    if (icmp) {
      this.host.pending.push(() => {
        if (!this.closed) this.events({ type: "icmp", to, ...icmp, length: data.length });
      });
    }
    return undefined;
  }
  close() {
    this.closed = true;
  }
}

interface FakeHost {
  /** destination "address:port" → the ICMP error the host gets for datagrams sent there */
  answers: Map<string, { icmpType: number; icmpCode: number; reporter: string }>;
  pending: Array<() => void>;
  /** destination address → the errno name the host's sendto fails with (no route ...) */
  refuse: Map<string, string>;
  /** the errno name socket() fails with (EMFILE ...), while set */
  bindError?: string;
}

function setup(
  opts: {
    restrict?: boolean;
    maxFlows?: number;
    maxFlowsPerGuest?: number;
    outboundAddr?: string;
    now?: () => number;
  } = {},
) {
  const sockets: FakeSocket[] = [];
  const fakeHost: FakeHost = { answers: new Map(), pending: [], refuse: new Map() };
  /** the host's turn: ICMP errors queued since the last one arrive */
  const hostTurn = () => {
    for (const f of fakeHost.pending.splice(0)) f();
  };
  const host: HostNet = {
    connectTcp() {
      throw new Error("the UDP NAT opens no TCP connections");
    },
    openPing() {
      throw new Error("the UDP NAT opens no ping sockets");
    },
    bindUdp(local, events) {
      if (fakeHost.bindError) throw Object.assign(new Error("socket() failed"), { code: fakeHost.bindError });
      const s = new FakeSocket(local, events, fakeHost);
      sockets.push(s);
      return s;
    },
  };
  const toGuest: UdpToGuest[] = [];
  const unreachable: Array<{ to: number; from: number; code: number; quote?: Buffer }> = [];
  const timeExceeded: Array<{ to: number; from: number; code: number; quote: Buffer }> = [];
  const nat = new UdpNat(
    host,
    new NatPolicy({
      host: ip("10.0.2.2"),
      hostLoopback: true,
      restrict: opts.restrict ?? false,
      outboundAddr: opts.outboundAddr,
    }),
    {
      toGuest: (d) => toGuest.push(d),
      unreachable: (to, from, code, quote) => unreachable.push({ to, from, code, quote }),
      timeExceeded: (to, from, code, quote) => timeExceeded.push({ to, from, code, quote }),
    },
    silentLogger,
    {
      maxFlows: opts.maxFlows ?? 8,
      maxFlowsPerGuest: opts.maxFlowsPerGuest,
      idleTimeoutMs: 240_000,
      now: opts.now,
    },
  );
  return {
    nat,
    sockets,
    toGuest,
    unreachable,
    timeExceeded,
    answers: fakeHost.answers,
    refuse: fakeHost.refuse,
    fakeHost,
    hostTurn,
  };
}

function guest(dst: string, dstPort: number, srcPort = 40000, data = "hello"): GuestUdp {
  return {
    srcMac: Buffer.alloc(6, 1),
    guest: 1,
    src: ip("10.0.2.15"),
    srcPort,
    dst: ip(dst),
    dstPort,
    payload: Buffer.from(data),
    quote: () => Buffer.alloc(28, 7),
  };
}

describe("UdpNat", () => {
  it("drops a datagram that gets no host socket (EMFILE) unanswered, and tries again with the next", () => {
    const { nat, sockets, unreachable, fakeHost } = setup();
    fakeHost.bindError = "EMFILE";
    nat.fromGuest(guest("10.0.2.2", 5353), 0);
    nat.fromGuest(guest("10.0.2.2", 5353), 1);
    expect(sockets).toHaveLength(0);
    expect(unreachable).toHaveLength(0);
    expect(nat.size).toBe(0);
    expect(nat.drops.toJSON()).toMatchObject({ "udp-host-socket-emfile": 2 });
    fakeHost.bindError = undefined;
    nat.fromGuest(guest("10.0.2.2", 5353), 2);
    expect(sockets[0]?.sent).toHaveLength(1);
  });

  it("drops a datagram the host will not send (ENOBUFS) unanswered, the flow kept", () => {
    const { nat, sockets, unreachable, refuse } = setup();
    refuse.set("198.51.100.7", "ENOBUFS");
    nat.fromGuest(guest("198.51.100.7", 9), 0);
    expect(unreachable).toHaveLength(0);
    expect(nat.drops.toJSON()).toMatchObject({ "udp-host-enobufs": 1 });
    nat.fromGuest(guest("10.0.2.2", 9), 1);
    expect(sockets).toHaveLength(1);
    expect(sockets[0]?.sent).toHaveLength(1);
  });

  it("sends a guest datagram to the gateway out to the host's loopback, one socket per guest endpoint", () => {
    const { nat, sockets } = setup();
    nat.fromGuest(guest("10.0.2.2", 5353), 0);
    nat.fromGuest(guest("198.51.100.1", 7), 1);
    expect(sockets).toHaveLength(1);
    expect(sockets[0]?.sent.map((s) => s.to)).toEqual([
      { address: "127.0.0.1", port: 5353 },
      { address: "198.51.100.1", port: 7 },
    ]);
    expect(sockets[0]?.sent[0]?.data.toString()).toBe("hello");
    nat.fromGuest(guest("198.51.100.1", 7, 40001), 2);
    expect(sockets).toHaveLength(2);
  });

  it("binds host sockets to outbound-addr", () => {
    const { nat, sockets } = setup({ outboundAddr: "198.51.100.9" });
    nat.fromGuest(guest("198.51.100.1", 7), 0);
    expect(sockets[0]?.local).toBe("198.51.100.9");
  });

  it("returns replies from any source to the guest endpoint, loopback shown as the gateway", () => {
    const { nat, sockets, toGuest } = setup();
    nat.fromGuest(guest("10.0.2.2", 5353), 0);
    sockets[0]?.events({
      type: "datagram",
      data: Buffer.from("a"),
      from: { address: "127.0.0.1", port: 5353 },
    });
    sockets[0]?.events({
      type: "datagram",
      data: Buffer.from("b"),
      from: { address: "198.51.100.7", port: 99 },
    });
    expect(toGuest.map((d) => [d.src, d.srcPort, d.dst, d.dstPort, d.payload.toString()])).toEqual([
      [ip("10.0.2.2"), 5353, ip("10.0.2.15"), 40000, "a"],
      [ip("198.51.100.7"), 99, ip("10.0.2.15"), 40000, "b"],
    ]);
  });

  it("turns the host's port unreachable into one from the address the guest used, quoting its datagram", () => {
    const { nat, unreachable, answers, hostTurn } = setup();
    answers.set("127.0.0.1:9", { icmpType: 3, icmpCode: 3, reporter: "127.0.0.1" });
    nat.fromGuest(guest("10.0.2.2", 9, 40000, "twelve bytes"), 0);
    expect(unreachable).toEqual([]);
    hostTurn();
    expect(unreachable).toHaveLength(1);
    const u = unreachable[0];
    expect(u).toMatchObject({ to: ip("10.0.2.15"), from: ip("10.0.2.2"), code: IcmpUnreachableCode.port });
    const q = u?.quote as Buffer;
    expect(q).toHaveLength(28);
    expect(q[9]).toBe(17); // UDP
    expect(q.readUInt16BE(2)).toBe(20 + 8 + 12); // the datagram's total length
    expect([q.readUInt32BE(12), q.readUInt32BE(16)]).toEqual([ip("10.0.2.15"), ip("10.0.2.2")]);
    expect([q.readUInt16BE(20), q.readUInt16BE(22), q.readUInt16BE(24)]).toEqual([40000, 9, 8 + 12]);
    expect(nat.drops.get("udp-icmp-unreachable-3")).toBe(1);
  });

  it("quotes the destination the error names, not the one the guest wrote to last", () => {
    const { nat, unreachable, answers, hostTurn } = setup();
    answers.set("198.51.100.1:9", { icmpType: 3, icmpCode: 1, reporter: "198.51.100.254" });
    nat.fromGuest(guest("198.51.100.1", 9, 40000, "abc"), 0);
    nat.fromGuest(guest("198.51.100.2", 53, 40000, "later"), 1);
    hostTurn();
    expect(unreachable.map((u) => [u.from, u.code])).toEqual([
      [ip("198.51.100.1"), IcmpUnreachableCode.host],
    ]);
    const q = unreachable[0]?.quote as Buffer;
    expect([q.readUInt32BE(16), q.readUInt16BE(22), q.readUInt16BE(24)]).toEqual([
      ip("198.51.100.1"),
      9,
      8 + 3,
    ]);
  });

  it("turns TTL exceeded into time exceeded from the router that reported it", () => {
    const { nat, unreachable, timeExceeded, answers, hostTurn } = setup();
    answers.set("198.51.100.1:33434", { icmpType: 11, icmpCode: 0, reporter: "198.51.100.254" });
    nat.fromGuest(guest("198.51.100.1", 33434), 0);
    hostTurn();
    expect(unreachable).toEqual([]);
    expect(timeExceeded.map((t) => [t.to, t.from, t.code])).toEqual([
      [ip("10.0.2.15"), ip("198.51.100.254"), 0],
    ]);
  });

  it("keeps fragmentation needed to itself: the guest's link MTU is ours", () => {
    const { nat, unreachable, answers, hostTurn } = setup();
    answers.set("198.51.100.1:7", { icmpType: 3, icmpCode: 4, reporter: "198.51.100.254" });
    nat.fromGuest(guest("198.51.100.1", 7), 0);
    hostTurn();
    expect(unreachable).toEqual([]);
    expect(nat.drops.get("udp-icmp-ignored-3-4")).toBe(1);
  });

  it("counts a datagram dropped for a full send buffer, and tells the guest nothing", () => {
    const { nat, unreachable, refuse } = setup();
    refuse.set("198.51.100.1", "EAGAIN");
    nat.fromGuest(guest("198.51.100.1", 7), 0);
    expect(unreachable).toEqual([]);
    expect(nat.drops.get("udp-host-eagain")).toBe(1);
  });

  it("answers a send the host has no route for with host unreachable from the destination", () => {
    const { nat, unreachable, refuse } = setup();
    refuse.set("203.0.113.7", "EHOSTUNREACH");
    nat.fromGuest(guest("203.0.113.7", 9), 0);
    expect(unreachable).toMatchObject([
      { to: ip("10.0.2.15"), from: ip("203.0.113.7"), code: IcmpUnreachableCode.host },
    ]);
  });

  it("with restrict=on opens no socket and answers administratively prohibited", () => {
    const { nat, sockets, unreachable } = setup({ restrict: true });
    nat.fromGuest(guest("198.51.100.1", 7), 0);
    expect(sockets).toHaveLength(0);
    expect(unreachable[0]?.code).toBe(IcmpUnreachableCode.adminProhibited);
    expect(nat.drops.get("udp-restricted")).toBe(1);
  });

  it("closes idle flows at their deadline and only then", () => {
    const { nat, sockets } = setup();
    nat.fromGuest(guest("198.51.100.1", 7), 1000);
    nat.fromGuest(guest("198.51.100.1", 7, 40001), 2000);
    expect(nat.nextDeadline()).toBe(241_000);
    nat.expire(240_999);
    expect(nat.size).toBe(2);
    nat.fromGuest(guest("198.51.100.1", 7), 100_000); // activity moves the first flow to the back
    nat.expire(242_000);
    expect(nat.size).toBe(1);
    expect(sockets[1]?.closed).toBe(true);
    expect(sockets[0]?.closed).toBe(false);
    expect(nat.nextDeadline()).toBe(340_000);
  });

  it("keeps a flow open while replies arrive, though the guest sends nothing more", () => {
    let now = 0;
    const { nat, sockets } = setup({ now: () => now });
    nat.fromGuest(guest("198.51.100.1", 7), 0);
    for (now = 100_000; now <= 400_000; now += 100_000) {
      sockets[0]?.events({
        type: "datagram",
        data: Buffer.from("x"),
        from: { address: "198.51.100.1", port: 7 },
      });
    }
    nat.expire(400_000);
    expect(nat.size).toBe(1);
    nat.expire(640_000);
    expect(nat.size).toBe(0);
  });

  it("evicts the least recently used flow past maxFlows and counts it", () => {
    const { nat, sockets } = setup({ maxFlows: 2 });
    // three guests: the table's bound, not one guest's, is what is reached
    for (let p = 0; p < 3; p++)
      nat.fromGuest({ ...guest("198.51.100.1", 7), guest: 1 + p, src: ip("10.0.2.15") + p }, p);
    expect(nat.size).toBe(2);
    expect(sockets[0]?.closed).toBe(true);
    expect(nat.drops.get("udp-flow-evicted")).toBe(1);
    // a late reply on the evicted socket goes nowhere
    sockets[0]?.events({
      type: "datagram",
      data: Buffer.from("late"),
      from: { address: "198.51.100.1", port: 7 },
    });
  });

  it("refuses a guest a socket past maxFlowsPerGuest, counts it, and still serves another guest", () => {
    const { nat, sockets, unreachable } = setup({ maxFlows: 8, maxFlowsPerGuest: 2 });
    for (let p = 0; p < 3; p++) nat.fromGuest(guest("198.51.100.1", 7, 40000 + p), p);
    expect(sockets).toHaveLength(2);
    expect(sockets.every((s) => !s.closed)).toBe(true);
    expect(nat.drops.get("udp-guest-limit")).toBe(1);
    expect(nat.drops.get("udp-flow-evicted")).toBe(0);
    expect(unreachable).toEqual([]);
    // its open flows still carry datagrams
    nat.fromGuest(guest("198.51.100.1", 7, 40001), 5);
    expect(sockets[1]?.sent).toHaveLength(2);
    // another guest (hub port and MAC), whatever address it uses
    const other = { ...guest("198.51.100.1", 7, 40000), guest: 2, src: ip("10.0.2.16") };
    nat.fromGuest(other, 6);
    expect(sockets).toHaveLength(3);
    expect(nat.limits).toEqual({ maxFlows: 8, maxFlowsPerGuest: 2 });
    // a closed flow gives its place back
    nat.expire(300_000);
    nat.fromGuest(guest("198.51.100.1", 7, 40002), 300_001);
    expect(sockets).toHaveLength(4);
  });
});

describe("UdpNat on IPv6", () => {
  const ip6 = (s: string) => parseIpv6(s) as Buffer;
  const k = (s: string) => ipv6Key(ip6(s));
  function setup6() {
    const sockets: Array<{
      family: 4 | 6 | undefined;
      local: string | undefined;
      sent: HostEndpoint[];
      events: (e: HostUdpEvent) => void;
    }> = [];
    const host = {
      bindUdp(local: string | undefined, events: (e: HostUdpEvent) => void, family?: 4 | 6) {
        const s = { family, local, sent: [] as HostEndpoint[], events };
        sockets.push(s);
        return {
          send: (_d: Buffer, address: string, port: number) => {
            s.sent.push({ address, port });
            return undefined;
          },
          close() {},
        };
      },
    } as unknown as HostNet;
    const policy = new NatPolicy({
      host: ip("10.0.2.2"),
      hostLoopback: true,
      restrict: false,
      host6: ip6("fec0::2"),
      outboundAddr: "192.0.2.7",
      outboundAddr6: "2001:db8::7",
      nat64Prefix: ip6("64:ff9b::"),
    });
    const toGuest: Array<{ src: string; srcPort: number; dst: string; dstPort: number }> = [];
    const unreachable: Array<{ to: string; from: string; code: number; quote: Buffer }> = [];
    const nat = new UdpNat<string>(
      host,
      policy,
      {
        toGuest: (d) => toGuest.push(d),
        unreachable: (to, from, code, quote) => unreachable.push({ to, from, code, quote }),
        timeExceeded: () => {},
      },
      silentLogger,
      { family: ipv6NatFamily(policy) },
    );
    const send = (dst: string, dstPort: number) =>
      nat.fromGuest(
        {
          guest: 1,
          src: k("fec0::15"),
          srcPort: 40000,
          dst: k(dst),
          dstPort,
          payload: Buffer.from("hi"),
          quote: () => Buffer.alloc(48),
        },
        0,
      );
    return { nat, sockets, toGuest, unreachable, send };
  }

  it("sends from an IPv6 socket, the gateway to ::1, and replies from ::1 come from the gateway", () => {
    const { sockets, toGuest, send, nat } = setup6();
    send("fec0::2", 5353);
    expect(sockets).toHaveLength(1);
    expect(sockets[0]?.family).toBe(6);
    expect(sockets[0]?.local).toBe("2001:db8::7");
    expect(sockets[0]?.sent).toEqual([{ address: "::1", port: 5353 }]);
    sockets[0]?.events({ type: "datagram", data: Buffer.from("r"), from: { address: "::1", port: 5353 } });
    expect(toGuest).toEqual([
      { src: k("fec0::2"), srcPort: 5353, dst: k("fec0::15"), dstPort: 40000, payload: Buffer.from("r") },
    ]);
    expect(nat.list(0)[0]).toMatchObject({ guest: "[fec0::15]:40000", lastDestination: "[fec0::2]:5353" });
  });

  it("sends to the NAT64 prefix from an IPv4 socket of its own, and IPv4 replies show inside the prefix", () => {
    const { sockets, toGuest, send } = setup6();
    send("2001:db8::1", 53);
    send("64:ff9b::198.51.100.1", 53);
    expect(sockets.map((s) => [s.family, s.local])).toEqual([
      [6, "2001:db8::7"],
      [4, "192.0.2.7"],
    ]);
    expect(sockets[1]?.sent).toEqual([{ address: "198.51.100.1", port: 53 }]);
    sockets[1]?.events({
      type: "datagram",
      data: Buffer.from("a"),
      from: { address: "198.51.100.1", port: 53 },
    });
    expect(toGuest[0]?.src).toBe(k("64:ff9b::198.51.100.1"));
  });

  it("answers a host's port unreachable with an unreachable from the address the guest sent to", () => {
    const { sockets, unreachable, send } = setup6();
    send("fec0::2", 9);
    sockets[0]?.events({
      type: "icmp",
      to: { address: "::1", port: 9 },
      icmpType: 3,
      icmpCode: IcmpUnreachableCode.port,
      reporter: "::1",
      length: 2,
    });
    expect(unreachable).toHaveLength(1);
    expect(unreachable[0]).toMatchObject({
      to: k("fec0::15"),
      from: k("fec0::2"),
      code: IcmpUnreachableCode.port,
    });
    // the quote is an IPv6 header (next header UDP) and the UDP header, rebuilt
    const q = unreachable[0]?.quote as Buffer;
    expect(q.length).toBe(48);
    expect((q[0] ?? 0) >> 4).toBe(6);
    expect(q[6]).toBe(17);
    expect(q.readUInt16BE(40 + 2)).toBe(9);
  });
});
