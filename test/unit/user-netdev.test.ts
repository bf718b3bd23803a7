/**
 * The user netdev's wiring between its DHCP server and its stack: a lease binds the
 * leased address to the client's MAC, so another MAC cannot use it, even before the
 * lease holder has sent anything from it.
 */
import { afterEach, describe, expect, it } from "vitest";
import { defaultUserNetdev } from "../../src/cli/netdev-user.js";
import { silentLogger } from "../../src/log.js";
import { ManualClock } from "../../src/stack/clock.js";
import { virtualMac } from "../../src/stack/config.js";
import { Ipv4Output } from "../../src/stack/ipv4-output.js";
import { BROADCAST_MAC, parseIpv4, parseMac } from "../../src/stack/wire/addr.js";
import { decodeEthernet } from "../../src/stack/wire/ethernet.js";
import { encodeIcmp } from "../../src/stack/wire/icmp.js";
import { decodeIpv4, IpProto } from "../../src/stack/wire/ipv4.js";
import { encodeUdp } from "../../src/stack/wire/udp.js";
import { UserNetdev } from "../../src/user-netdev.js";
import { clientMessage, ipBuf } from "./services/dhcp/fixtures.js";

const ip = (s: string): number => parseIpv4(s) ?? Number.NaN;
const macA = parseMac("52:54:00:12:34:56") ?? Buffer.alloc(6);
const macB = parseMac("52:54:00:12:34:57") ?? Buffer.alloc(6);
const gateway = ip("10.0.2.2");
const out = new Ipv4Output(1500);

const open: UserNetdev[] = [];
afterEach(() => {
  for (const u of open.splice(0)) u.close();
});

function netdev() {
  const clock = new ManualClock();
  const u = new UserNetdev(
    { ...defaultUserNetdev("u0", 0), dnsUpstream: [{ host: "127.0.0.1", port: 5353 }] },
    silentLogger,
    { clock, wallClock: () => 1_800_000_000_000 + clock.now() },
  );
  open.push(u);
  const received: Buffer[] = [];
  u.setReceiver((frames) => received.push(...frames));
  return { u, clock, received };
}

/** A DHCP client message from `mac`, 0.0.0.0:68 → 255.255.255.255:67. */
function dhcp(mac: Buffer, type: number, options: [number, Buffer][] = []): Buffer[] {
  const payload = clientMessage({ type, mac: mac.toString("hex").replace(/(..)(?!$)/g, "$1:"), options });
  const dgram = Buffer.alloc(8 + payload.length);
  encodeUdp({ srcPort: 68, dstPort: 67, payload }, dgram, 0, { src: 0, dst: 0xffffffff });
  return out.frames({
    srcMac: mac,
    dstMac: BROADCAST_MAC,
    src: 0,
    dst: 0xffffffff,
    protocol: IpProto.udp,
    payload: dgram,
  });
}

function ping(mac: Buffer, src: number): Buffer[] {
  const icmp = Buffer.alloc(8);
  encodeIcmp({ kind: "echo-request", code: 0, id: 1, seq: 1, payload: Buffer.alloc(0) }, icmp);
  return out.frames({
    srcMac: mac,
    dstMac: virtualMac(gateway),
    src,
    dst: gateway,
    protocol: IpProto.icmp,
    payload: icmp,
  });
}

/** The IPv4 destinations of the frames the netdev sent. */
const destinations = (frames: Buffer[]) =>
  frames.map((f) => {
    const eth = decodeEthernet(f);
    const ipv4 = eth.ok ? decodeIpv4(eth.value.payload) : undefined;
    return ipv4?.ok ? ipv4.value.dst : undefined;
  });

describe("UserNetdev: DHCP leases bind addresses in the stack", () => {
  it("gives a leased address to the lease's MAC: another MAC using it first is dropped", () => {
    const { u, received } = netdev();
    u.send(dhcp(macA, 1)); // DISCOVER
    u.send(
      dhcp(macA, 3, [
        [50, ipBuf("10.0.2.15")],
        [54, ipBuf("10.0.2.2")],
      ]),
    ); // REQUEST
    expect(u.snapshot().leases.map((l) => [l.mac, l.ip, l.state])).toEqual([
      ["52:54:00:12:34:56", "10.0.2.15", "bound"],
    ]);
    received.length = 0;
    // B speaks from A's leased address before A ever has: no answer, counted
    u.send(ping(macB, ip("10.0.2.15")));
    expect(received).toEqual([]);
    expect(u.snapshot().drops["ipv4-spoofed-source"]).toBe(1);
    u.send(ping(macA, ip("10.0.2.15")));
    expect(destinations(received)).toEqual([ip("10.0.2.15")]);
  });
});
