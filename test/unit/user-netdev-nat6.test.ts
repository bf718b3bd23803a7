import { describe, expect, it } from "vitest";
import { defaultUserNetdev } from "../../src/cli/netdev-user.js";
import { silentLogger } from "../../src/log.js";
import type { HostForwarder } from "../../src/proxy/host-forward.js";
import type { HostNet, HostUdpEvent } from "../../src/proxy/host-net.js";
import { NatPolicy } from "../../src/proxy/nat-policy.js";
import { ipv6Defaults } from "../../src/stack/config.js";
import { DropCounters } from "../../src/stack/drop-counters.js";
import type { GuestUdp6 } from "../../src/stack/user-stack.js";
import { parseIpv6 } from "../../src/stack/wire/ipv6-addr.js";
import { type Nat6Stack, UserNat6 } from "../../src/user-netdev-nat6.js";

const ip6 = (s: string) => parseIpv6(s) as Buffer;

function setup() {
  const v6 = ipv6Defaults();
  const udpSockets: { family?: 4 | 6; sent: string[]; events: (e: HostUdpEvent) => void }[] = [];
  const pings: { family?: 4 | 6; to: string[] }[] = [];
  const hostNet = {
    bindUdp(_l: string | undefined, events: (e: HostUdpEvent) => void, family?: 4 | 6) {
      const s = { family, sent: [] as string[], events };
      udpSockets.push(s);
      return {
        send: (_d: Buffer, a: string, p: number) => {
          s.sent.push(`${a}:${p}`);
          return undefined;
        },
        close() {},
      };
    },
    openPing(_l: string | undefined, _e: unknown, family?: 4 | 6) {
      const s = { family, to: [] as string[] };
      pings.push(s);
      return {
        send: (_m: Buffer, to: string) => {
          s.to.push(to);
          return true;
        },
        close() {},
      };
    },
  } as unknown as HostNet;
  const errors: { to: string; from: string; kind: string; code: number }[] = [];
  const toGuest: unknown[] = [];
  const stack: Nat6Stack = {
    sendUdp6: (d) => toGuest.push(d),
    sendEchoReply6: (e) => toGuest.push(e),
    sendIcmp6Error: (to, from, e, _q) =>
      errors.push({ to: to.toString("hex"), from: from.toString("hex"), ...e }),
  };
  const drops = new DropCounters();
  const forwarded: unknown[] = [];
  const forwards = {
    fromGuestUdp: (...a: unknown[]) => {
      forwarded.push(a);
      return false;
    },
  } as unknown as HostForwarder;
  const nat = new UserNat6({
    config: defaultUserNetdev("u0", 0),
    ipv6: v6,
    stack,
    hostNet,
    policy: new NatPolicy({ host: 0x0a000202, hostLoopback: true, restrict: false, host6: v6.host }),
    forwards,
    drops,
    log: silentLogger,
    now: () => 0,
    sent: () => {},
  });
  const udp = (dst: string, dstPort = 53): GuestUdp6 => ({
    srcMac: Buffer.alloc(6),
    guest: 1,
    src: ip6("fec0::15"),
    srcPort: 40000,
    dst: ip6(dst),
    dstPort,
    payload: Buffer.from("x"),
    quote: () => Buffer.alloc(48),
  });
  return { nat, udpSockets, pings, errors, toGuest, drops, forwarded, udp };
}

describe("UserNat6", () => {
  it("sends UDP to the gateway out of an IPv6 socket to ::1, after asking the forwards", () => {
    const { nat, udpSockets, forwarded, udp } = setup();
    nat.udp6(udp("fec0::2", 5353));
    expect(forwarded).toHaveLength(1);
    expect(udpSockets.map((s) => [s.family, s.sent])).toEqual([[6, ["::1:5353"]]]);
  });

  it("answers UDP to another address of the prefix (nothing listens) with a port unreachable, drops multicast", () => {
    const { nat, udpSockets, errors, drops, udp } = setup();
    nat.udp6(udp("fec0::99"));
    nat.udp6(udp("fe80::1"));
    nat.udp6(udp("ff02::fb", 5353));
    expect(udpSockets).toHaveLength(0);
    expect(errors.map((e) => [e.kind, e.code, e.to, e.from])).toEqual([
      ["dest-unreachable", 4, ip6("fec0::15").toString("hex"), ip6("fec0::99").toString("hex")],
      ["dest-unreachable", 4, ip6("fec0::15").toString("hex"), ip6("fe80::1").toString("hex")],
    ]);
    expect(drops.get("udp6-no-service")).toBe(2);
    expect(drops.get("udp6-multicast-not-forwarded")).toBe(1);
  });

  it("pings the outside through an ICMPv6 ping socket", () => {
    const { nat, pings } = setup();
    nat.echo6({
      guest: 1,
      src: ip6("fec0::15"),
      dst: ip6("2001:db8::1"),
      id: 1,
      seq: 1,
      payload: Buffer.alloc(4),
    });
    expect(pings).toEqual([{ family: 6, to: ["2001:db8::1"] }]);
  });

  it("takes TCP to the gateway and the outside to the relay, refuses other prefix addresses", () => {
    const { nat, drops } = setup();
    expect(nat.tcpToRelay(ip6("fec0::2"))).toBe(true);
    expect(nat.tcpToRelay(ip6("2001:db8::1"))).toBe(true);
    expect(nat.tcpToRelay(ip6("fec0::3"))).toBe(false);
    expect(drops.get("tcp6-no-service")).toBe(1);
  });
});
