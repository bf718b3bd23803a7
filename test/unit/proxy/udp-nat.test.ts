import { describe, expect, it } from "vitest";
import { silentLogger } from "../../../src/log.js";
import type { HostEndpoint, HostNet, HostUdpEvent } from "../../../src/proxy/host-net.js";
import { NatPolicy } from "../../../src/proxy/nat-policy.js";
import { UdpNat } from "../../../src/proxy/udp-nat.js";
import type { GuestUdp, UdpToGuest } from "../../../src/stack/user-stack.js";
import { parseIpv4 } from "../../../src/stack/wire/addr.js";
import { IcmpUnreachableCode } from "../../../src/stack/wire/icmp.js";

const ip = (s: string): number => parseIpv4(s) ?? Number.NaN;

class FakeSocket {
  sent: Array<{ data: Buffer; to: HostEndpoint }> = [];
  closed = false;
  constructor(
    readonly local: string | undefined,
    readonly events: (e: HostUdpEvent) => void,
  ) {}
  send(data: Buffer, to: HostEndpoint) {
    this.sent.push({ data, to });
  }
  close() {
    this.closed = true;
  }
}

function setup(opts: { restrict?: boolean; maxFlows?: number; outboundAddr?: string } = {}) {
  const sockets: FakeSocket[] = [];
  const host: HostNet = {
    connectTcp() {
      throw new Error("the UDP NAT opens no TCP connections");
    },
    openPing() {
      throw new Error("the UDP NAT opens no ping sockets");
    },
    bindUdp(local, events) {
      const s = new FakeSocket(local, events);
      sockets.push(s);
      return s;
    },
  };
  const toGuest: UdpToGuest[] = [];
  const unreachable: Array<{ to: number; from: number; code: number }> = [];
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
      unreachable: (to, from, code) => unreachable.push({ to, from, code }),
    },
    silentLogger,
    { maxFlows: opts.maxFlows ?? 8, idleTimeoutMs: 240_000 },
  );
  return { nat, sockets, toGuest, unreachable };
}

function guest(dst: string, dstPort: number, srcPort = 40000, data = "hello"): GuestUdp {
  return {
    srcMac: Buffer.alloc(6, 1),
    src: ip("10.0.2.15"),
    srcPort,
    dst: ip(dst),
    dstPort,
    payload: Buffer.from(data),
    quote: () => Buffer.alloc(28, 7),
  };
}

describe("UdpNat", () => {
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

  it("turns a refused send into ICMP port unreachable from the address the guest used", () => {
    const { nat, sockets, unreachable } = setup();
    nat.fromGuest(guest("10.0.2.2", 9), 0);
    sockets[0]?.events({ type: "error", code: "ECONNREFUSED" });
    expect(unreachable).toEqual([
      { to: ip("10.0.2.15"), from: ip("10.0.2.2"), code: IcmpUnreachableCode.port },
    ]);
    expect(nat.drops.get("udp-host-econnrefused")).toBe(1);
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

  it("evicts the least recently used flow past maxFlows and counts it", () => {
    const { nat, sockets } = setup({ maxFlows: 2 });
    for (let p = 0; p < 3; p++) nat.fromGuest(guest("198.51.100.1", 7, 40000 + p), p);
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
});
