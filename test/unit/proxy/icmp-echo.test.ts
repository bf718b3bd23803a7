import { describe, expect, it } from "vitest";
import { silentLogger } from "../../../src/log.js";
import type { HostNet, HostPingEvent } from "../../../src/proxy/host-net.js";
import { type EchoToGuest, IcmpEchoNat } from "../../../src/proxy/icmp-echo.js";
import { NatPolicy } from "../../../src/proxy/nat-policy.js";
import { encodeIcmp, icmpHeaderLength } from "../../../src/stack/wire/icmp.js";

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
