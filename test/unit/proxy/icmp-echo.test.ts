import { describe, expect, it } from "vitest";
import { silentLogger } from "../../../src/log.js";
import type { HostNet, HostPingEvent } from "../../../src/proxy/host-net.js";
import { type EchoToGuest, IcmpEchoNat } from "../../../src/proxy/icmp-echo.js";
import { ipv6NatFamily } from "../../../src/proxy/nat-family.js";
import { NatPolicy } from "../../../src/proxy/nat-policy.js";
import { encodeIcmp, icmpHeaderLength } from "../../../src/stack/wire/icmp.js";
import { ipv6Key, parseIpv6 } from "../../../src/stack/wire/ipv6-addr.js";

const ip = (s: string) => s.split(".").reduce((a, b) => ((a << 8) | Number(b)) >>> 0, 0);

function setup(options: { maxFlows?: number; maxFlowsPerGuest?: number } = {}) {
  const sockets: { events: (e: HostPingEvent) => void; sent: string[] }[] = [];
  const host = {
    openPing(_local: string | undefined, events: (e: HostPingEvent) => void) {
      const s = { events, sent: [] as string[] };
      sockets.push(s);
      return {
        send: (_m: Buffer, to: string) => {
          s.sent.push(to);
          return true;
        },
        close() {},
      };
    },
  } as unknown as HostNet;
  const policy = new NatPolicy({ host: ip("10.0.2.2"), hostLoopback: true, restrict: false });
  const toGuest: EchoToGuest[] = [];
  const nat = new IcmpEchoNat(host, policy, (e) => toGuest.push(e), silentLogger, options);
  return { nat, sockets, toGuest };
}

function reply(seq: number): Buffer {
  const b = Buffer.alloc(icmpHeaderLength + 4);
  encodeIcmp({ kind: "echo-reply", code: 0, id: 999, seq, payload: Buffer.from("ping") }, b);
  return b;
}

describe("IcmpEchoNat.list", () => {
  it("lists one flow per guest echo id with its echoes, replies, destination and age", () => {
    const { nat, sockets, toGuest } = setup();
    const echo = (id: number, seq: number, dst: string) => ({
      guest: 1,
      src: ip("10.0.2.15"),
      dst: ip(dst),
      id,
      seq,
      payload: Buffer.from("ping"),
    });
    nat.fromGuest(echo(7, 1, "198.51.100.1"), 1000);
    nat.fromGuest(echo(7, 2, "198.51.100.9"), 2000);
    nat.fromGuest(echo(8, 1, "10.0.2.2"), 2500);
    sockets[0]?.events({ type: "reply", message: reply(1), from: "198.51.100.1" });
    expect(toGuest).toHaveLength(1);
    expect(nat.list(4000)).toEqual([
      { guest: "10.0.2.15", echoId: 7, lastDestination: "198.51.100.9", echoes: 2, replies: 1, ageMs: 3000 },
      { guest: "10.0.2.15", echoId: 8, lastDestination: "10.0.2.2", echoes: 1, replies: 0, ageMs: 1500 },
    ]);
    expect(sockets[1]?.sent).toEqual(["127.0.0.1"]);
  });
});

describe("IcmpEchoNat bounds", () => {
  // guests told apart by guest id (hub port and MAC); here one per address
  const echo = (src: string, id: number) => ({
    guest: ip(src),
    src: ip(src),
    dst: ip("198.51.100.1"),
    id,
    seq: 1,
    payload: Buffer.from("ping"),
  });

  it("refuses a new echo id past maxFlowsPerGuest, counts it, and still serves another guest", () => {
    const { nat, sockets } = setup({ maxFlows: 8, maxFlowsPerGuest: 2 });
    for (let id = 1; id <= 3; id++) nat.fromGuest(echo("10.0.2.15", id), id);
    expect(sockets).toHaveLength(2);
    expect(nat.drops.get("icmp-guest-limit")).toBe(1);
    expect(nat.drops.get("icmp-flow-evicted")).toBe(0);
    // a known id still goes out
    nat.fromGuest(echo("10.0.2.15", 1), 4);
    expect(sockets[0]?.sent).toHaveLength(2);
    nat.fromGuest(echo("10.0.2.16", 1), 5);
    expect(sockets).toHaveLength(3);
    expect(nat.limits).toEqual({ maxFlows: 8, maxFlowsPerGuest: 2 });
    // an idle flow gives its place back
    nat.expire(120_000);
    nat.fromGuest(echo("10.0.2.15", 3), 120_001);
    expect(sockets).toHaveLength(4);
  });
});

describe("IcmpEchoNat on IPv6", () => {
  const ip6 = (s: string) => parseIpv6(s) as Buffer;
  const k = (s: string) => ipv6Key(ip6(s));
  it("pings through ICMPv6 ping sockets and, with NAT64, IPv4 ones; replies reach the guest as ICMPv6", () => {
    const sockets: {
      family: number | undefined;
      events: (e: HostPingEvent) => void;
      sent: Buffer[];
      to: string[];
    }[] = [];
    const host = {
      openPing(_local: string | undefined, events: (e: HostPingEvent) => void, family?: 4 | 6) {
        const s = { family, events, sent: [] as Buffer[], to: [] as string[] };
        sockets.push(s);
        return {
          send: (m: Buffer, to: string) => {
            s.sent.push(Buffer.from(m));
            s.to.push(to);
            return true;
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
      nat64Prefix: ip6("64:ff9b::"),
    });
    const toGuest: EchoToGuest<string>[] = [];
    const nat = new IcmpEchoNat<string>(host, policy, (e) => toGuest.push(e), silentLogger, {
      family: ipv6NatFamily(policy),
    });
    const echo = (dst: string) => ({
      guest: 1,
      src: k("fec0::15"),
      dst: k(dst),
      id: 7,
      seq: 3,
      payload: Buffer.from("ab"),
    });
    nat.fromGuest(echo("fec0::2"), 0);
    nat.fromGuest(echo("64:ff9b::198.51.100.1"), 0);
    expect(sockets.map((s) => s.family)).toEqual([6, 4]);
    expect(sockets[0]?.to).toEqual(["::1"]);
    expect(sockets[0]?.sent[0]?.[0]).toBe(128);
    expect(sockets[1]?.to).toEqual(["198.51.100.1"]);
    expect(sockets[1]?.sent[0]?.[0]).toBe(8);
    const reply = (type: number) => Buffer.from([type, 0, 0, 0, 0x99, 0x99, 0, 3, 0x61, 0x62]);
    sockets[0]?.events({ type: "reply", message: reply(129), from: "::1" });
    sockets[1]?.events({ type: "reply", message: reply(0), from: "198.51.100.1" });
    // an ICMP reply type on the ICMPv6 socket is not an echo reply there
    sockets[0]?.events({ type: "reply", message: reply(0), from: "::1" });
    expect(toGuest).toEqual([
      { src: k("fec0::2"), dst: k("fec0::15"), id: 7, seq: 3, payload: Buffer.from("ab") },
      { src: k("64:ff9b::198.51.100.1"), dst: k("fec0::15"), id: 7, seq: 3, payload: Buffer.from("ab") },
    ]);
    expect(nat.list(0).map((f) => f.lastDestination)).toEqual(["fec0::2", "64:ff9b::c633:6401"]);
  });
});
