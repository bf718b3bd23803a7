import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fc, test } from "@fast-check/vitest";
import { afterEach, describe, expect } from "vitest";
import type { Logger } from "../../../../src/log.js";
import { readPcap } from "../../../../src/ports/pcap.js";
import {
  cString,
  type DhcpMessage,
  decodeDhcp,
  decodeDomainSearch,
  dhcpMessageType,
  optionIpv4,
  DhcpMessageType as T,
} from "../../../../src/services/dhcp/dhcp-codec.js";
import type { DhcpServerConfig } from "../../../../src/services/dhcp/dhcp-config.js";
import { type LeaseStore, MemoryLeaseStore } from "../../../../src/services/dhcp/dhcp-lease.js";
import { FileLeaseStore } from "../../../../src/services/dhcp/dhcp-lease-file.js";
import { type DhcpReply, DhcpServer } from "../../../../src/services/dhcp/dhcp-server.js";
import { clientMessage, DHCLIENT_DISCOVER, ip, ipBuf, UDHCPC_DISCOVER } from "./fixtures.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const A = "52:54:00:12:34:56";
const B = "52:54:00:12:34:57";
const C = "52:54:00:12:34:58";

/** QEMU's defaults: 10.0.2.0/24, server/router 10.0.2.2, DNS 10.0.2.3, 16 from .15 */
const qemu: DhcpServerConfig = {
  serverAddress: ip("10.0.2.2"),
  netmask: ip("255.255.255.0"),
  dns: [ip("10.0.2.3")],
  poolStart: ip("10.0.2.15"),
  poolSize: 16,
};

interface Logged {
  level: string;
  msg: string;
  fields: Record<string, unknown> | undefined;
}

function recordingLogger(into: Logged[]): Logger {
  const at =
    (level: string) =>
    (msg: string, fields?: Record<string, unknown>): void => {
      into.push({ level, msg, fields });
    };
  const l: Logger = {
    debug: at("debug"),
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    child: () => l,
  };
  return l;
}

function setup(config: Partial<DhcpServerConfig> = {}, store: LeaseStore = new MemoryLeaseStore()) {
  const logs: Logged[] = [];
  const server = new DhcpServer({ ...qemu, ...config }, store, recordingLogger(logs));
  return { server, store, logs };
}

function decoded(r: DhcpReply | undefined): DhcpMessage {
  expect(r).toBeDefined();
  const d = decodeDhcp((r as DhcpReply).payload);
  if (!d.ok) throw new Error(d.reason);
  return d.value;
}

const discover = (mac: string, options: [number, Buffer][] = [], xid = 1) =>
  clientMessage({ type: T.DISCOVER, mac, xid, options });
const select = (mac: string, addr: string, server = "10.0.2.2") =>
  clientMessage({
    type: T.REQUEST,
    mac,
    options: [
      [50, ipBuf(addr)],
      [54, ipBuf(server)],
    ],
  });
const initReboot = (mac: string, addr: string) =>
  clientMessage({ type: T.REQUEST, mac, options: [[50, ipBuf(addr)]] });
const renew = (mac: string, addr: string) => clientMessage({ type: T.REQUEST, mac, ciaddr: ip(addr) });
const release = (mac: string, addr: string) =>
  clientMessage({ type: T.RELEASE, mac, ciaddr: ip(addr), options: [[54, ipBuf("10.0.2.2")]] });

/** DISCOVER, OFFER, REQUEST, ACK; returns the address. */
function dora(server: DhcpServer, mac: string, now: number): string {
  const offer = decoded(server.handle(discover(mac), now));
  const addr = ipString(offer.yiaddr);
  const ack = decoded(server.handle(select(mac, addr), now));
  expect(dhcpMessageType(ack)).toBe(T.ACK);
  expect(ack.yiaddr).toBe(offer.yiaddr);
  return addr;
}

const ipString = (a: number) => [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255].join(".");
const codes = (m: DhcpMessage) => [...m.options.keys()];

/** Options usernet sends beyond libslirp's set (dhcp-server.ts): T1, T2, MTU, boot file. */
const usernetAdditions = new Set([58, 59, 26, 67]);

/**
 * A capture of QEMU 7.2's slirp (libslirp 4.7) answering busybox udhcpc, made by
 * fixtures/make-fixtures.sh: the client's DHCP payloads and QEMU's replies, in order.
 */
function qemuCapture(file: string): { fromClient: Buffer[]; fromQemu: DhcpMessage[] } {
  const pcap = readPcap(fs.readFileSync(new URL(`../../../../fixtures/${file}`, import.meta.url)));
  if (!pcap.ok) throw new Error(`${file}: ${pcap.reason}`);
  const fromClient: Buffer[] = [];
  const fromQemu: DhcpMessage[] = [];
  for (const { data } of pcap.value) {
    if (data.readUInt16BE(12) !== 0x0800 || data[23] !== 17) continue;
    const udp = 14 + ((data[14] as number) & 15) * 4;
    const payload = data.subarray(udp + 8, udp + data.readUInt16BE(udp + 4));
    if (data.readUInt16BE(udp) === 68) fromClient.push(Buffer.from(payload));
    else fromQemu.push(decoded({ payload, to: "broadcast" }));
  }
  return { fromClient, fromQemu };
}

describe("replies as QEMU's slirp gives them (fixtures/dhcp-qemu-slirp*.pcap)", () => {
  const cases: [string, Partial<DhcpServerConfig>][] = [
    [
      "dhcp-qemu-slirp.pcap",
      {
        hostname: "guest1",
        domainName: "example.org",
        dnsSearch: ["example.org", "lab.example.org"],
        tftpServerName: "boot.example.org",
        bootfile: "pxelinux.0",
      },
    ],
    ["dhcp-qemu-slirp-restrict.pcap", { restricted: true }],
  ];
  test.each(cases)(
    "%s: QEMU's options in QEMU's order with QEMU's values, plus usernet's additions",
    (file, config) => {
      const { fromClient, fromQemu } = qemuCapture(file);
      expect(fromClient).toHaveLength(2); // udhcpc's DISCOVER and REQUEST
      expect(fromQemu.map(dhcpMessageType)).toEqual([T.OFFER, T.ACK]);
      const { server } = setup(config);
      fromClient.forEach((request, i) => {
        const ours = decoded(server.handle(request, 0));
        const qemuReply = fromQemu[i] as DhcpMessage;
        expect(codes(ours).filter((c) => !usernetAdditions.has(c))).toEqual(codes(qemuReply));
        for (const code of codes(qemuReply)) {
          const want = qemuReply.options.get(code) as Buffer;
          const got = ours.options.get(code) as Buffer;
          if (code === 119) expect(decodeDomainSearch(got)).toEqual(decodeDomainSearch(want));
          else expect(got.toString("hex"), `option ${code}`).toBe(want.toString("hex"));
        }
        expect({ xid: ours.xid, yiaddr: ours.yiaddr, siaddr: ours.siaddr, file: cString(ours.file) }).toEqual(
          {
            xid: qemuReply.xid,
            yiaddr: qemuReply.yiaddr,
            siaddr: qemuReply.siaddr,
            file: cString(qemuReply.file),
          },
        );
      });
    },
  );
});

describe("DISCOVER → OFFER", () => {
  test("busybox udhcpc gets 10.0.2.15 with QEMU's options, broadcast", () => {
    const { server } = setup();
    const r = server.handle(UDHCPC_DISCOVER, 0);
    expect(r?.to).toBe("broadcast");
    expect(r?.payload.length).toBeGreaterThanOrEqual(300);
    const m = decoded(r);
    expect(m).toMatchObject({ op: 2, htype: 1, hlen: 6, xid: 0x3903f326, ciaddr: 0, giaddr: 0 });
    expect(ipString(m.yiaddr)).toBe("10.0.2.15");
    expect(ipString(m.siaddr)).toBe("10.0.2.2");
    expect(m.chaddr.toString("hex")).toBe(`525400123456${"00".repeat(10)}`);
    expect(codes(m)).toEqual([53, 54, 1, 3, 6, 51, 58, 59]);
    expect(dhcpMessageType(m)).toBe(T.OFFER);
    expect(ipString(optionIpv4(m, 54) ?? 0)).toBe("10.0.2.2");
    expect(ipString(optionIpv4(m, 1) ?? 0)).toBe("255.255.255.0");
    expect(ipString(optionIpv4(m, 3) ?? 0)).toBe("10.0.2.2");
    expect(ipString(optionIpv4(m, 6) ?? 0)).toBe("10.0.2.3");
    expect(m.options.get(51)?.readUInt32BE(0)).toBe(86400);
    expect(m.options.get(58)?.readUInt32BE(0)).toBe(43200);
    expect(m.options.get(59)?.readUInt32BE(0)).toBe(75600);
    expect(server.stats().offers).toBe(1);
  });

  test("ISC dhclient gets the address it remembers (option 50) when free", () => {
    const { server } = setup();
    const m = decoded(server.handle(DHCLIENT_DISCOVER, 0));
    expect(ipString(m.yiaddr)).toBe("10.0.2.20");
    expect(m.xid).toBe(0x6e2e1c51);
    expect(codes(m)).toEqual([53, 54, 1, 3, 6, 51, 58, 59]);
  });

  test("a requested address outside the pool or taken is not honoured", () => {
    const { server } = setup();
    dora(server, A, 0);
    const taken = decoded(server.handle(discover(B, [[50, ipBuf("10.0.2.15")]]), 0));
    expect(ipString(taken.yiaddr)).toBe("10.0.2.16");
    const outside = decoded(server.handle(discover(C, [[50, ipBuf("10.0.2.100")]]), 0));
    expect(ipString(outside.yiaddr)).toBe("10.0.2.17");
  });

  test("usernet's additions to QEMU's options, with their values", () => {
    // QEMU's own order is checked against a capture below; these are what it lacks.
    const { server } = setup({
      hostname: "guest1",
      dnsSearch: ["example.org", "lab.example.org"],
      tftpServerName: "boot.example.org",
      bootfile: "pxelinux.0",
      mtu: 65520,
    });
    const m = decoded(server.handle(UDHCPC_DISCOVER, 0));
    expect(codes(m).filter((c) => usernetAdditions.has(c))).toEqual([58, 59, 26, 67]);
    const search = decodeDomainSearch(m.options.get(119) ?? Buffer.alloc(0));
    expect(search).toEqual({ ok: true, value: ["example.org", "lab.example.org"] });
    expect(m.options.get(26)?.readUInt16BE(0)).toBe(65520);
    expect(m.options.get(67)?.toString()).toBe("pxelinux.0");
    expect(cString(m.file)).toBe("pxelinux.0");
    expect(cString(m.sname)).toBe("boot.example.org");
  });

  test("an http:// bootfile adds vendor class HTTPClient (UEFI HTTP boot), as libslirp", () => {
    const { server } = setup({ bootfile: "http://10.0.2.2/boot.efi" });
    const m = decoded(server.handle(UDHCPC_DISCOVER, 0));
    expect(codes(m)).toEqual([53, 54, 1, 3, 6, 51, 58, 59, 60, 67]);
    expect(m.options.get(60)?.toString()).toBe("HTTPClient");
  });

  test("a boot file or server name too long for its field goes in the option only", () => {
    const bootfile = `tftp://10.0.2.2/${"d/".repeat(60)}boot.ipxe`;
    const tftpServerName = `${"s".repeat(64)}.lab`;
    const { server } = setup({ bootfile, tftpServerName });
    const m = decoded(server.handle(discover(A), 0));
    expect(m.file.every((x) => x === 0)).toBe(true);
    expect(m.sname.every((x) => x === 0)).toBe(true);
    expect(m.options.get(67)?.toString()).toBe(bootfile);
    expect(m.options.get(66)?.toString()).toBe(tftpServerName);
    // BOOTP carries the name in `file` when it fits, else tries option 67 (here: no room)
    const b = decoded(server.handle(clientMessage({ mac: B, cookie: false }), 0));
    expect(codes(b)).toEqual([1, 3, 6]);
  });

  test("restrict=on leaves out router and DNS, as libslirp", () => {
    const { server } = setup({ restricted: true });
    expect(codes(decoded(server.handle(UDHCPC_DISCOVER, 0)))).toEqual([53, 54, 1, 51, 58, 59]);
  });

  test("the parameter request list does not change the option set", () => {
    const { server } = setup({ hostname: "h" });
    const onlyMask = discover(A, [[55, Buffer.from([1])]]);
    expect(codes(decoded(server.handle(onlyMask, 0)))).toEqual([53, 54, 1, 3, 6, 51, 58, 59, 12]);
  });

  test("the second client gets 10.0.2.16, the same client the same address", () => {
    const { server } = setup();
    expect(ipString(decoded(server.handle(UDHCPC_DISCOVER, 0)).yiaddr)).toBe("10.0.2.15");
    expect(ipString(decoded(server.handle(discover(B), 0)).yiaddr)).toBe("10.0.2.16");
    expect(ipString(decoded(server.handle(UDHCPC_DISCOVER, 1000)).yiaddr)).toBe("10.0.2.15");
  });

  test("pool addresses that are the server's, router's or DNS's are skipped", () => {
    const { server } = setup({ poolStart: ip("10.0.2.2"), poolSize: 3 });
    expect(ipString(decoded(server.handle(discover(A), 0)).yiaddr)).toBe("10.0.2.4");
    expect(server.handle(discover(B), 0)).toBeUndefined();
  });

  test("options that do not fit the message are left out and logged once", () => {
    const names = Array.from({ length: 12 }, (_, i) => `d${i}${"x".repeat(20)}.example${i}.org`);
    const { server, logs } = setup({ dnsSearch: names, bootfile: "boot.ipxe" });
    const small = decoded(server.handle(discover(A), 0));
    expect(codes(small)).toEqual([53, 54, 1, 3, 6, 51, 58, 59, 67]);
    server.handle(discover(A), 0);
    expect(logs.filter((l) => l.level === "warn")).toHaveLength(1);
    // a client announcing a larger maximum size (option 57) gets it all
    const big = decoded(server.handle(discover(A, [[57, Buffer.from([0x05, 0xdc])]]), 0));
    expect(codes(big)).toEqual([53, 54, 1, 3, 6, 51, 58, 59, 119, 67]);
    const search = decodeDomainSearch(big.options.get(119) ?? Buffer.alloc(0));
    expect(search.ok && search.value).toEqual(names);
  });
});

describe("REQUEST", () => {
  test("selecting → ACK for the offered address", () => {
    const { server, store } = setup({ hostname: "vm" });
    const ack = decoded(server.handle(select(A, "10.0.2.15"), 0));
    expect(dhcpMessageType(ack)).toBe(T.ACK);
    expect(ipString(ack.yiaddr)).toBe("10.0.2.15");
    expect(codes(ack)).toEqual([53, 54, 1, 3, 6, 51, 58, 59, 12]);
    expect(store.load()).toEqual([{ mac: A, ip: "10.0.2.15", state: "bound", expiresAt: DAY }]);
    expect(server.stats().acks).toBe(1);
  });

  test("renewing keeps the address and extends the lease", () => {
    const { server } = setup();
    expect(dora(server, A, 0)).toBe("10.0.2.15");
    const t = 12 * HOUR;
    const ack = decoded(server.handle(renew(A, "10.0.2.15"), t));
    expect(dhcpMessageType(ack)).toBe(T.ACK);
    expect(ipString(ack.yiaddr)).toBe("10.0.2.15");
    expect(ipString(ack.ciaddr)).toBe("10.0.2.15");
    expect(server.leases(t)).toMatchObject([{ ip: "10.0.2.15", state: "bound", expiresAt: t + DAY }]);
  });

  test("a request for another server's offer is ignored and our offer dropped", () => {
    const { server } = setup();
    decoded(server.handle(discover(A), 0));
    expect(server.handle(select(A, "10.0.2.15", "10.0.2.99"), 0)).toBeUndefined();
    expect(server.stats().ignored).toEqual({ "dhcp-other-server": 1 });
    expect(server.leases(0)).toMatchObject([{ mac: A, state: "expired" }]);
  });

  test("a foreign address gets a NAK, to broadcast, with a message", () => {
    const { server } = setup();
    const r = server.handle(initReboot(A, "192.168.1.50"), 0);
    expect(r?.to).toBe("broadcast");
    const nak = decoded(r);
    expect(dhcpMessageType(nak)).toBe(T.NAK);
    expect(codes(nak)).toEqual([53, 54, 56]);
    expect(nak.yiaddr).toBe(0);
    expect(nak.siaddr).toBe(0);
    expect(nak.options.get(56)?.toString()).toBe("requested address not available");
    expect(server.stats().naks).toBe(1);
  });

  test("NAK for an address of our network outside the pool, or held by another client", () => {
    const { server } = setup();
    expect(dhcpMessageType(decoded(server.handle(initReboot(A, "10.0.2.100"), 0)))).toBe(T.NAK);
    dora(server, A, 0);
    expect(dhcpMessageType(decoded(server.handle(initReboot(B, "10.0.2.15"), 0)))).toBe(T.NAK);
    expect(dhcpMessageType(decoded(server.handle(renew(B, "10.0.2.15"), 0)))).toBe(T.NAK);
    expect(dhcpMessageType(decoded(server.handle(select(B, "10.0.2.15"), 0)))).toBe(T.NAK);
  });

  test("init-reboot for a free pool address is ACKed (we are the only server)", () => {
    const { server } = setup();
    const ack = decoded(server.handle(initReboot(A, "10.0.2.21"), 0));
    expect(dhcpMessageType(ack)).toBe(T.ACK);
    expect(ipString(ack.yiaddr)).toBe("10.0.2.21");
  });

  test("a request with no address gets the client's address (libslirp's windows fix)", () => {
    const { server } = setup();
    dora(server, B, 0);
    const bare = clientMessage({ type: T.REQUEST, mac: A });
    expect(ipString(decoded(server.handle(bare, 0)).yiaddr)).toBe("10.0.2.16");
    expect(ipString(decoded(server.handle(bare, 1)).yiaddr)).toBe("10.0.2.16");
  });

  test("selecting without option 50 is malformed", () => {
    const { server } = setup();
    const m = clientMessage({ type: T.REQUEST, mac: A, options: [[54, ipBuf("10.0.2.2")]] });
    expect(server.handle(m, 0)).toBeUndefined();
    expect(server.stats().malformed).toEqual({ "dhcp-request-no-address": 1 });
  });

  test("an expired lease can be taken by another client; the old client then gets NAK", () => {
    const { server } = setup({ poolSize: 1 });
    dora(server, A, 0);
    expect(server.handle(discover(B), DAY - 1)).toBeUndefined();
    expect(dora(server, B, DAY + 1)).toBe("10.0.2.15");
    expect(dhcpMessageType(decoded(server.handle(renew(A, "10.0.2.15"), DAY + 2)))).toBe(T.NAK);
  });
});

describe("lease memory", () => {
  test("release frees the address but a returning guest gets it again", () => {
    const { server, store } = setup();
    expect(dora(server, A, 0)).toBe("10.0.2.15");
    expect(server.handle(release(A, "10.0.2.15"), 1000)).toBeUndefined();
    expect(server.stats().releases).toBe(1);
    expect(store.load()).toMatchObject([{ mac: A, state: "released", expiresAt: 1000 }]);
    // a newcomer gets a never-used address rather than the remembered one
    expect(dora(server, B, 2000)).toBe("10.0.2.16");
    expect(dora(server, A, 3000)).toBe("10.0.2.15");
  });

  test("when the pool is otherwise full, released addresses are reused oldest first", () => {
    const { server } = setup({ poolSize: 3 });
    expect(dora(server, A, 0)).toBe("10.0.2.15");
    expect(dora(server, B, 0)).toBe("10.0.2.16");
    server.handle(release(B, "10.0.2.16"), 10);
    server.handle(release(A, "10.0.2.15"), 20);
    expect(dora(server, C, 30)).toBe("10.0.2.17");
    expect(dora(server, "52:54:00:00:00:01", 40)).toBe("10.0.2.16");
    expect(dora(server, "52:54:00:00:00:02", 50)).toBe("10.0.2.15");
    expect(server.handle(discover("52:54:00:00:00:03"), 60)).toBeUndefined();
  });

  test("a release by another client or for another server changes nothing", () => {
    const { server } = setup();
    dora(server, A, 0);
    server.handle(release(B, "10.0.2.15"), 1);
    const foreign = clientMessage({
      type: T.RELEASE,
      mac: A,
      ciaddr: ip("10.0.2.15"),
      options: [[54, ipBuf("1.2.3.4")]],
    });
    server.handle(foreign, 1);
    expect(server.leases(1)).toMatchObject([{ mac: A, state: "bound" }]);
  });

  test("the same MAC with different client ids gets different addresses", () => {
    const { server } = setup();
    const id1 = Buffer.from("01aa", "hex");
    const id2 = Buffer.from("01bb", "hex");
    const a1 = decoded(server.handle(discover(A, [[61, id1]]), 0));
    const a2 = decoded(server.handle(discover(A, [[61, id2]]), 0));
    expect(ipString(a1.yiaddr)).toBe("10.0.2.15");
    expect(ipString(a2.yiaddr)).toBe("10.0.2.16");
    // without a client id (dhclient after udhcpc), the MAC alone finds the lease
    expect(ipString(decoded(server.handle(discover(A), 0)).yiaddr)).toBe("10.0.2.15");
    expect(server.leases(0)[0]).toMatchObject({ clientId: "01aa" });
  });

  test("DECLINE keeps the address out of use for a while", () => {
    const { server, logs } = setup({ declineHoldTime: 600 });
    dora(server, A, 0);
    const decline = clientMessage({
      type: T.DECLINE,
      mac: A,
      options: [
        [50, ipBuf("10.0.2.15")],
        [54, ipBuf("10.0.2.2")],
      ],
    });
    expect(server.handle(decline, 10)).toBeUndefined();
    expect(server.stats().declines).toBe(1);
    expect(logs.some((l) => l.level === "warn" && l.msg.includes("decline"))).toBe(true);
    expect(dora(server, A, 20)).toBe("10.0.2.16");
    expect(dhcpMessageType(decoded(server.handle(initReboot(B, "10.0.2.15"), 30)))).toBe(T.NAK);
    expect(dora(server, B, 10 + 600_000)).toBe("10.0.2.15");
  });

  test("a DECLINE for someone else's address is not honoured; without option 50 it is malformed", () => {
    const { server } = setup();
    dora(server, A, 0);
    const decline = clientMessage({ type: T.DECLINE, mac: B, options: [[50, ipBuf("10.0.2.15")]] });
    server.handle(decline, 1);
    expect(server.leases(1)).toMatchObject([{ mac: A, state: "bound" }]);
    server.handle(clientMessage({ type: T.DECLINE, mac: B }), 1);
    expect(server.stats().malformed).toEqual({ "dhcp-decline-no-address": 1 });
  });

  test("offers are held for a while, then the address may go to others", () => {
    const { server } = setup({ poolSize: 1, offerHoldTime: 60 });
    decoded(server.handle(discover(A), 0));
    expect(server.handle(discover(B), 59_999)).toBeUndefined();
    expect(ipString(decoded(server.handle(discover(B), 60_000)).yiaddr)).toBe("10.0.2.15");
  });

  test("static leases by MAC, with their own hostname", () => {
    const { server } = setup({
      hostname: "default",
      staticLeases: [{ mac: "52-54-00-12-34-57", ip: ip("10.0.2.100"), hostname: "db" }],
    });
    const m = decoded(server.handle(DHCLIENT_DISCOVER, 0));
    expect(ipString(m.yiaddr)).toBe("10.0.2.100");
    expect(m.options.get(12)?.toString()).toBe("db");
    expect(dhcpMessageType(decoded(server.handle(initReboot(B, "10.0.2.20"), 0)))).toBe(T.NAK);
    expect(dhcpMessageType(decoded(server.handle(initReboot(B, "10.0.2.100"), 0)))).toBe(T.ACK);
    expect(dhcpMessageType(decoded(server.handle(initReboot(A, "10.0.2.100"), 0)))).toBe(T.NAK);
    expect(server.leases(0)).toMatchObject([{ mac: B, ip: "10.0.2.100", static: true }]);
  });

  test("the client's own hostname (option 12) is recorded", () => {
    const { server } = setup();
    server.handle(DHCLIENT_DISCOVER, 0);
    server.handle(select(B, "10.0.2.20"), 0);
    expect(server.leases(0)).toMatchObject([{ mac: B, ip: "10.0.2.20", hostname: "guest", state: "bound" }]);
  });
});

describe("pool exhaustion", () => {
  test("no offer, counted and logged", () => {
    const { server, logs } = setup({ poolSize: 2 });
    dora(server, A, 0);
    dora(server, B, 0);
    expect(server.handle(discover(C), 0)).toBeUndefined();
    expect(server.handle(discover(C), 1000)).toBeUndefined();
    expect(server.stats().poolExhausted).toBe(2);
    expect(logs.filter((l) => l.level === "warn" && l.msg.includes("exhausted"))).toHaveLength(1);
    server.handle(discover(C), 61_000);
    expect(logs.filter((l) => l.level === "warn" && l.msg.includes("exhausted"))).toHaveLength(2);
  });
});

describe("restart with the file lease store", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  test("a guest keeps its address across a restart", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "usernet-dhcp-"));
    dirs.push(dir);
    const stateDir = path.join(dir, "state");
    const first = setup({}, new FileLeaseStore(stateDir, "dhcp-n0.json", recordingLogger([])));
    expect(dora(first.server, A, 0)).toBe("10.0.2.15");
    expect(dora(first.server, B, 0)).toBe("10.0.2.16");
    first.server.handle(release(B, "10.0.2.16"), 5);
    await first.server.flush();

    const again = setup({}, new FileLeaseStore(stateDir, "dhcp-n0.json", recordingLogger([])));
    // a new guest comes first; neither remembered address goes to it
    expect(dora(again.server, C, 10)).toBe("10.0.2.17");
    expect(dhcpMessageType(decoded(again.server.handle(renew(A, "10.0.2.15"), 20)))).toBe(T.ACK);
    expect(dora(again.server, B, 30)).toBe("10.0.2.16");
  });

  test("leases written with another clock are capped to one lease time", () => {
    const store = new MemoryLeaseStore([{ mac: A, ip: "10.0.2.15", state: "bound", expiresAt: 1e15 }]);
    const { server } = setup({}, store);
    expect(server.leases(0)[0]?.expiresAt).toBe(1e15);
    server.handle(discover(B), 1000);
    expect(server.leases(1000)[0]?.expiresAt).toBe(1000 + DAY);
  });

  test("stored leases outside the pool or reserved by static leases are skipped", () => {
    const store = new MemoryLeaseStore([
      { mac: A, ip: "10.0.2.99", state: "bound", expiresAt: 10 },
      { mac: A, ip: "10.0.2.100", state: "bound", expiresAt: 10 },
      { mac: B, ip: "10.0.2.15", state: "bound", expiresAt: 10 },
      { mac: C, ip: "10.0.2.16", state: "bound", expiresAt: 10 },
    ]);
    const { server } = setup({ staticLeases: [{ mac: B, ip: ip("10.0.2.100") }] }, store);
    expect(server.leases(0).map((l) => l.ip)).toEqual(["10.0.2.16"]);
  });
});

describe("BOOTP and INFORM", () => {
  test("a plain BOOTP request gets a BOOTP reply with a permanent address", () => {
    const { server, store } = setup({
      bootfile: "pxelinux.0",
      tftpServerName: "tftp.lab",
      hostname: "bootp-guest",
    });
    const req = clientMessage({ mac: A, cookie: false });
    const r = server.handle(req, 0);
    expect(r?.payload.length).toBe(300);
    const m = decoded(r);
    expect(dhcpMessageType(m)).toBeUndefined();
    expect(ipString(m.yiaddr)).toBe("10.0.2.15");
    expect(ipString(m.siaddr)).toBe("10.0.2.2");
    expect(cString(m.sname)).toBe("tftp.lab");
    expect(cString(m.file)).toBe("pxelinux.0");
    expect(codes(m)).toEqual([1, 3, 6, 12]);
    expect(server.stats().bootp).toBe(1);
    expect(store.load()).toMatchObject([{ mac: A, ip: "10.0.2.15", state: "bootp" }]);
    // permanent: years later nobody else gets it, and the client keeps it
    expect(ipString(decoded(server.handle(discover(B), 1000 * DAY)).yiaddr)).toBe("10.0.2.16");
    expect(ipString(decoded(server.handle(req, 1000 * DAY)).yiaddr)).toBe("10.0.2.15");
  });

  test("a BOOTP request with a cookie but no message type is BOOTP too", () => {
    const { server } = setup();
    const m = decoded(server.handle(clientMessage({ mac: A, options: [[12, Buffer.from("x")]] }), 0));
    expect(dhcpMessageType(m)).toBeUndefined();
    expect(codes(m)).toEqual([1, 3, 6]);
  });

  test("INFORM → ACK without address or lease times", () => {
    const { server } = setup({ domainName: "lab" });
    const m = decoded(server.handle(clientMessage({ type: T.INFORM, mac: A, ciaddr: ip("10.0.2.50") }), 0));
    expect(dhcpMessageType(m)).toBe(T.ACK);
    expect(m.yiaddr).toBe(0);
    expect(ipString(m.ciaddr)).toBe("10.0.2.50");
    expect(codes(m)).toEqual([53, 54, 1, 3, 6, 15]);
    expect(server.stats().informs).toBe(1);
    expect(server.leases(0)).toEqual([]);
  });
});

describe("reply destination", () => {
  test("libslirp mode broadcasts even a unicast renewal", () => {
    const { server } = setup();
    dora(server, A, 0);
    expect(server.handle(renew(A, "10.0.2.15"), 1)?.to).toBe("broadcast");
  });

  test("rfc2131 mode: broadcast flag → broadcast; ciaddr → unicast; else yiaddr at chaddr", () => {
    const { server } = setup({ replyMode: "rfc2131" });
    const offer = server.handle(discover(A), 0);
    expect(offer?.to).toEqual({ ip: ip("10.0.2.15"), mac: Buffer.from("525400123456", "hex") });
    const flagged = clientMessage({ type: T.DISCOVER, mac: B, flags: 0x8000 });
    const r = server.handle(flagged, 0);
    expect(r?.to).toBe("broadcast");
    expect(decoded(r).flags).toBe(0x8000);
    dora(server, A, 0);
    expect(server.handle(renew(A, "10.0.2.15"), 1)?.to).toEqual({
      ip: ip("10.0.2.15"),
      mac: Buffer.from("525400123456", "hex"),
    });
    expect(server.handle(renew(B, "10.0.2.15"), 1)?.to).toBe("broadcast"); // NAK
    const flaggedRenew = clientMessage({ type: T.REQUEST, mac: A, ciaddr: ip("10.0.2.15"), flags: 0x8000 });
    expect(server.handle(flaggedRenew, 2)?.to).toBe("broadcast");
    const inform = clientMessage({ type: T.INFORM, mac: C, ciaddr: ip("10.0.2.50") });
    expect(server.handle(inform, 2)?.to).toEqual({
      ip: ip("10.0.2.50"),
      mac: Buffer.from("525400123458", "hex"),
    });
  });
});

describe("bad input", () => {
  test("undecodable, non-Ethernet and bogus requests are dropped and counted", () => {
    const { server } = setup();
    expect(server.handle(Buffer.alloc(10), 0)).toBeUndefined();
    const reply = Buffer.from(UDHCPC_DISCOVER);
    reply[0] = 2;
    expect(server.handle(reply, 0)).toBeUndefined();
    const ib = Buffer.from(UDHCPC_DISCOVER);
    ib[1] = 32;
    ib[2] = 16;
    expect(server.handle(ib, 0)).toBeUndefined();
    expect(server.handle(discover("ff:ff:ff:ff:ff:ff"), 0)).toBeUndefined();
    expect(server.handle(discover("00:00:00:00:00:00"), 0)).toBeUndefined();
    expect(server.handle(clientMessage({ type: T.OFFER, mac: A }), 0)).toBeUndefined();
    const emptyType = clientMessage({ mac: A, options: [[53, Buffer.alloc(0)]] });
    expect(server.handle(emptyType, 0)).toBeUndefined();
    expect(server.stats()).toMatchObject({
      offers: 0,
      malformed: {
        "dhcp-too-short": 1,
        "dhcp-not-ethernet": 1,
        "dhcp-bad-chaddr": 2,
        "dhcp-bad-message-type": 1,
      },
      ignored: { "dhcp-not-request": 1, "dhcp-unexpected-type": 1 },
    });
  });

  test.prop([fc.uint8Array({ maxLength: 600 }), fc.nat()])("never throws on garbage", (a, now) => {
    const { server } = setup({ poolSize: 2 });
    server.handle(Buffer.from(a), now);
  });

  const arbRequest = fc.record({
    // mostly the messages that move leases, sometimes anything (or none: BOOTP)
    type: fc.oneof(
      {
        weight: 6,
        arbitrary: fc.constantFrom(T.DISCOVER, T.REQUEST, T.REQUEST, T.RELEASE, T.DECLINE, T.INFORM),
      },
      { weight: 1, arbitrary: fc.option(fc.integer({ min: 0, max: 10 }), { nil: undefined }) },
    ),
    mac: fc.constantFrom(A, B, C),
    ciaddr: fc.constantFrom(0, ip("10.0.2.15"), ip("10.0.2.16"), ip("8.8.8.8")),
    flags: fc.constantFrom(0, 0x8000),
    options: fc.array(
      fc.tuple(
        fc.constantFrom(50, 54, 12, 57, 55),
        fc.oneof(
          fc.constantFrom(ipBuf("10.0.2.15"), ipBuf("10.0.2.16"), ipBuf("10.0.2.2"), ipBuf("10.0.3.1")),
          fc.uint8Array({ maxLength: 8 }).map((x) => Buffer.from(x)),
        ),
      ),
      { maxLength: 4 },
    ),
  });

  // mostly quick exchanges, now and then long enough for leases and holds to run out
  const arbDelay = fc.oneof(
    { weight: 8, arbitrary: fc.integer({ min: 0, max: 120_000 }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 2 * DAY }) },
  );

  test.prop([fc.array(fc.tuple(arbRequest, arbDelay), { maxLength: 40 })], { numRuns: 300 })(
    "random dialogues: never throws, never gives a held address to another client",
    (steps) => {
      const { server } = setup({ poolSize: 2, replyMode: "rfc2131" });
      // what the clients were told, independently of the server's table: address → holder
      const held = new Map<number, { mac: string; until: number }>();
      const heldByOther = (addr: number, mac: string, now: number) => {
        const h = held.get(addr);
        return h !== undefined && h.mac !== mac && h.until > now;
      };
      const forget = (mac: string, except: number) => {
        for (const [a, h] of held) if (h.mac === mac && a !== except) held.delete(a);
      };
      let now = 0;
      for (const [req, dt] of steps) {
        now += dt;
        const bytes = clientMessage(req);
        const sent = decodeDhcp(bytes);
        if (!sent.ok) throw new Error(sent.reason);
        const r = server.handle(bytes, now);
        const type = dhcpMessageType(sent.value);
        const serverId = optionIpv4(sent.value, 54);
        const forUs = serverId === undefined || serverId === ip("10.0.2.2");
        if (type === T.RELEASE && forUs && held.get(req.ciaddr)?.mac === req.mac) held.delete(req.ciaddr);
        const declined = optionIpv4(sent.value, 50);
        if (type === T.DECLINE && forUs && declined !== undefined && held.get(declined)?.mac === req.mac) {
          held.delete(declined);
        }
        if (!r) continue;
        const m = decoded(r);
        expect(m.op).toBe(2);
        expect(m.xid).toBe(sent.value.xid);
        expect(r.payload.length).toBeGreaterThanOrEqual(300);
        const replyType = dhcpMessageType(m);
        if (m.yiaddr === 0) continue;
        expect([ip("10.0.2.15"), ip("10.0.2.16")]).toContain(m.yiaddr);
        expect(heldByOther(m.yiaddr, req.mac, now)).toBe(false);
        forget(req.mac, m.yiaddr);
        if (replyType === T.ACK) held.set(m.yiaddr, { mac: req.mac, until: now + DAY });
        if (replyType === undefined) held.set(m.yiaddr, { mac: req.mac, until: Number.POSITIVE_INFINITY });
      }
    },
  );
});

describe("replies after durable lease writes", () => {
  test("a message that changes the leases has a pending save; one that does not has none", async () => {
    const writes: ((ok: boolean) => void)[] = [];
    const store: LeaseStore = {
      load: () => [],
      save: () => new Promise<boolean>((resolve) => writes.push(resolve)),
    };
    const { server } = setup({}, store);
    const offer = decoded(server.handle(discover(A), 0));
    // an OFFER binds nothing worth keeping
    expect(server.pendingSave()).toBeUndefined();
    server.handle(select(A, ipString(offer.yiaddr)), 0);
    const saved = server.pendingSave();
    expect(saved).toBeDefined();
    expect(writes).toHaveLength(1);
    writes[0]?.(true);
    expect(await saved).toBe(true);
    server.handle(discover(B), 0);
    expect(server.pendingSave()).toBeUndefined();
  });
});

describe("addresses another guest uses", () => {
  /** the stack's view: which MAC uses an address now */
  function withUsers(users: Map<string, string>) {
    const server = new DhcpServer(qemu, new MemoryLeaseStore(), recordingLogger([]), (a) =>
      users.get(ipString(a)),
    );
    return server;
  }

  test("an address another MAC uses (a static guest) is skipped when offering", () => {
    const users = new Map([["10.0.2.15", C]]);
    const server = withUsers(users);
    expect(dora(server, A, 0)).toBe("10.0.2.16");
    // its user asking for it is fine
    const ack = decoded(server.handle(initReboot(C, "10.0.2.15"), 1));
    expect(dhcpMessageType(ack)).toBe(T.ACK);
  });

  test("a REQUEST for an address another MAC uses gets a NAK, in every state", () => {
    const users = new Map<string, string>();
    const server = withUsers(users);
    expect(dora(server, A, 0)).toBe("10.0.2.15");
    users.set("10.0.2.16", C);
    for (const req of [select(B, "10.0.2.16"), initReboot(B, "10.0.2.16"), renew(B, "10.0.2.16")]) {
      expect(dhcpMessageType(decoded(server.handle(req, 10)))).toBe(T.NAK);
    }
    expect(server.stats().naks).toBe(3);
    // the client's own leased address stays its own even while the stack binds it to it
    users.set("10.0.2.15", A);
    expect(dhcpMessageType(decoded(server.handle(renew(A, "10.0.2.15"), 20)))).toBe(T.ACK);
  });

  test("a requested address in use is not given; the client gets a free one", () => {
    const server = withUsers(new Map([["10.0.2.20", C]]));
    const offer = decoded(server.handle(discover(A, [[50, ipBuf("10.0.2.20")]]), 0));
    expect(ipString(offer.yiaddr)).toBe("10.0.2.15");
  });

  test("DECLINE keeps the address out of offers until the hold ends", () => {
    const server = withUsers(new Map());
    expect(dora(server, A, 0)).toBe("10.0.2.15");
    const decline = clientMessage({
      type: T.DECLINE,
      mac: A,
      options: [
        [50, ipBuf("10.0.2.15")],
        [54, ipBuf("10.0.2.2")],
      ],
    });
    expect(server.handle(decline, 10)).toBeUndefined();
    expect(ipString(decoded(server.handle(discover(B), 20)).yiaddr)).toBe("10.0.2.16");
    expect(dhcpMessageType(decoded(server.handle(initReboot(C, "10.0.2.15"), 30)))).toBe(T.NAK);
  });
});
