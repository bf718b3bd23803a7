/**
 * TAP devices created inside a network namespace, against the Linux kernel's own
 * ARP, ICMP and TCP: frames the kernel sends arrive in batches from the poller; frames
 * the test writes (ARP replies, echo replies, a TCP peer's segments) are taken by it.
 */
import { readlinkSync } from "node:fs";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  FdPoller,
  nativeConstants,
  openTapInNetns,
  setOffloads,
  type TapHandle,
} from "../../../src/native/binding.js";
import { splitVnetFrame, VnetFlags, VnetGso, vnetHdrBuffer } from "../../../src/native/vnet-hdr.js";
import { internetChecksum, pseudoHeaderSum } from "../../../src/stack/wire/checksum.js";
import { completePartialChecksum } from "../../../src/stack/wire/frame-offload.js";
import { describeWith, run, runOk, startChild, TestNetns, waitFor } from "./native-env.js";

const peerMac = Buffer.from([0x02, 0x00, 0x00, 0x00, 0x00, 0x02]);
const ip = (s: string) => s.split(".").reduce((a, b) => ((a << 8) | Number(b)) >>> 0, 0);
const ipStr = (n: number) => [24, 16, 8, 0].map((s) => (n >>> s) & 0xff).join(".");

interface Eth {
  dst: Buffer;
  src: Buffer;
  type: number;
  payload: Buffer;
}
const eth = (f: Buffer): Eth => ({
  dst: f.subarray(0, 6),
  src: f.subarray(6, 12),
  type: f.readUInt16BE(12),
  payload: f.subarray(14),
});
const ethFrame = (dst: Buffer, type: number, payload: Buffer) => {
  const h = Buffer.alloc(14);
  dst.copy(h, 0);
  peerMac.copy(h, 6);
  h.writeUInt16BE(type, 12);
  return Buffer.concat([h, payload]);
};

function arpRequestFor(f: Buffer): { senderMac: Buffer; senderIp: number; targetIp: number } | undefined {
  const e = eth(f);
  if (e.type !== 0x0806 || e.payload.length < 28 || e.payload.readUInt16BE(6) !== 1) return undefined;
  return {
    senderMac: Buffer.from(e.payload.subarray(8, 14)),
    senderIp: e.payload.readUInt32BE(14),
    targetIp: e.payload.readUInt32BE(24),
  };
}

function arpReply(req: { senderMac: Buffer; senderIp: number; targetIp: number }): Buffer {
  const a = Buffer.alloc(28);
  a.writeUInt16BE(1, 0);
  a.writeUInt16BE(0x0800, 2);
  a[4] = 6;
  a[5] = 4;
  a.writeUInt16BE(2, 6);
  peerMac.copy(a, 8);
  a.writeUInt32BE(req.targetIp, 14);
  req.senderMac.copy(a, 18);
  a.writeUInt32BE(req.senderIp, 24);
  return ethFrame(req.senderMac, 0x0806, a);
}

function ipv4(src: number, dst: number, proto: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + payload.length, 2);
  h[8] = 64;
  h[9] = proto;
  h.writeUInt32BE(src, 12);
  h.writeUInt32BE(dst, 16);
  h.writeUInt16BE(internetChecksum(h), 10);
  return Buffer.concat([h, payload]);
}

interface Ip {
  src: number;
  dst: number;
  proto: number;
  payload: Buffer;
}
function parseIp(f: Buffer): Ip | undefined {
  const e = eth(f);
  if (e.type !== 0x0800) return undefined;
  const ihl = ((e.payload[0] as number) & 0x0f) * 4;
  const total = e.payload.readUInt16BE(2);
  return {
    src: e.payload.readUInt32BE(12),
    dst: e.payload.readUInt32BE(16),
    proto: e.payload[9] as number,
    payload: e.payload.subarray(ihl, total),
  };
}

function echoReplyTo(f: Buffer): Buffer | undefined {
  const p = parseIp(f);
  if (p?.proto !== 1 || p.payload[0] !== 8) return undefined;
  const icmp = Buffer.from(p.payload);
  icmp[0] = 0;
  icmp.writeUInt16BE(0, 2);
  icmp.writeUInt16BE(internetChecksum(icmp), 2);
  return ethFrame(eth(f).src, 0x0800, ipv4(p.dst, p.src, 1, icmp));
}

function echoRequest(src: number, dst: number, dstMac: Buffer, seq: number): Buffer {
  const icmp = Buffer.alloc(16);
  icmp[0] = 8;
  icmp.writeUInt16BE(0x4242, 4);
  icmp.writeUInt16BE(seq, 6);
  icmp.write("usernet!", 8);
  icmp.writeUInt16BE(internetChecksum(icmp), 2);
  return ethFrame(dstMac, 0x0800, ipv4(src, dst, 1, icmp));
}

const threadNs = (kind: "net" | "user") => readlinkSync(`/proc/thread-self/ns/${kind}`);

describeWith("TAP in a network namespace", ["root", "ip", "tun", "busybox", "unshare", "addon"], () => {
  let ns: TestNetns;
  const pollers: FdPoller[] = [];
  const children: { kill(): Promise<void> }[] = [];

  beforeAll(async () => {
    ns = await TestNetns.create();
  });
  afterAll(async () => {
    for (const p of pollers) p.close();
    for (const c of children) await c.kill();
    await ns?.close();
  });

  async function tapWithAddress(name: string, cidr: string, vnetHdr: boolean): Promise<TapHandle> {
    const before = threadNs("net");
    const tap = openTapInNetns(ns.path, null, name, { vnetHdr });
    expect(threadNs("net")).toBe(before);
    expect(tap.name).toBe(name);
    await runOk("ip", ["-n", ns.name, "addr", "add", cidr, "dev", name]);
    await runOk("ip", ["-n", ns.name, "link", "set", name, "up"]);
    return tap;
  }

  it("creates the TAP inside the namespace only, and reports a bad path with code and syscall", async () => {
    const tap = openTapInNetns(ns.path, null, "unnatx", { vnetHdr: false });
    const p = new FdPoller(tap.fd, "frames", () => {});
    pollers.push(p);
    expect(await ns.exec("ip", ["link", "show", "unnatx"])).toMatchObject({ code: 0 });
    expect((await run("ip", ["link", "show", "unnatx"])).code).not.toBe(0);
    expect(() => openTapInNetns("/nonexistent/netns", null, "unnaty", { vnetHdr: false })).toThrow(
      expect.objectContaining({ code: "ENOENT", syscall: "open netns path" }),
    );
  });

  it("delivers the kernel's ARP request and takes the ARP and echo replies written back", async () => {
    const tap = await tapWithAddress("unnat0", "10.0.9.1/24", false);
    const seen: Buffer[] = [];
    let wrote = 0;
    const p = new FdPoller(tap.fd, "frames", (frames) => {
      const replies: Buffer[] = [];
      for (const f of frames) {
        seen.push(f);
        const arp = arpRequestFor(f);
        if (arp && ipStr(arp.targetIp) === "10.0.9.2") replies.push(arpReply(arp));
        const echo = echoReplyTo(f);
        if (echo) replies.push(echo);
      }
      if (replies.length) wrote += p.write(replies);
    });
    pollers.push(p);

    const ping = await ns.exec("busybox", ["ping", "-c", "2", "-W", "2", "10.0.9.2"], 15_000);
    const arps = seen.map(arpRequestFor).filter((a) => a !== undefined);
    expect(arps.length).toBeGreaterThan(0);
    expect(arps[0]).toMatchObject({ senderIp: ip("10.0.9.1"), targetIp: ip("10.0.9.2") });
    expect(ping.code, ping.stdout + ping.stderr).toBe(0);
    expect(ping.stdout).toContain("2 packets received");
    expect(wrote).toBeGreaterThanOrEqual(3); // one ARP reply, two echo replies
    const neigh = await ns.execOk("ip", ["neigh", "show", "10.0.9.2", "dev", "unnat0"]);
    expect(neigh).toContain("lladdr 02:00:00:00:00:02");
    expect(p.stats()).toMatchObject({ writeErrors: 0, readErrors: 0 });
  });

  it("hands several frames over in one batch, at most maxBatch at a time", async () => {
    const tap = await tapWithAddress("unnat1", "10.0.11.1/24", false);
    await runOk("ip", [
      "-n",
      ns.name,
      "neigh",
      "replace",
      "10.0.11.2",
      "lladdr",
      "02:00:00:00:00:02",
      "dev",
      "unnat1",
    ]);
    const addrOut = await ns.execOk("cat", ["/sys/class/net/unnat1/address"]);
    const tapMac = Buffer.from(
      addrOut
        .trim()
        .split(":")
        .map((h) => Number.parseInt(h, 16)),
    );
    const batches: Buffer[][] = [];
    const p = new FdPoller(tap.fd, "frames", (frames) => batches.push(frames), { maxBatch: 2 });
    pollers.push(p);
    await new Promise((r) => setTimeout(r, 100));
    batches.length = 0;
    p.pause();
    const requests = [1, 2, 3, 4, 5].map((seq) => echoRequest(ip("10.0.11.2"), ip("10.0.11.1"), tapMac, seq));
    expect(p.write(requests)).toBe(5);
    await new Promise((r) => setTimeout(r, 200));
    expect(batches.length).toBe(0);
    p.resume();
    await waitFor(() => batches.flat().length >= 5, 3000, "five echo replies");
    const replies = batches.flat().filter((f) => parseIp(f)?.payload[0] === 0);
    expect(replies.map((f) => parseIp(f)?.payload.readUInt16BE(6))).toEqual([1, 2, 3, 4, 5]);
    expect(batches.map((b) => b.length)).toEqual([2, 2, 1]);
    expect(replies[0]?.subarray(14 + 20 + 8).toString()).toBe("usernet!");
  });

  it("with vnet headers and TSO, a kernel TCP sender's frames arrive as GSO TCPV4 super frames", async () => {
    const c = nativeConstants();
    const tap = await tapWithAddress("unnat2", "10.0.10.1/24", true);
    setOffloads(tap.fd, c.TUN_F_CSUM | c.TUN_F_TSO4 | c.TUN_F_TSO6 | c.TUN_F_TSO_ECN);
    const total = 512 * 1024;
    const gso: { len: number; gsoSize: number; csumOk: boolean }[] = [];
    const plainHdrs: number[] = [];
    let expected = 0; // next sequence number we want from the client
    let received = 0;
    let finSeen = false;
    const iss = 7_000_000;
    const server = ip("10.0.10.2");
    const tcpTo = (
      toMac: Buffer,
      dst: number,
      dport: number,
      seq: number,
      ack: number,
      flags: number,
      syn = false,
    ) => {
      const t = Buffer.alloc(syn ? 24 : 20);
      t.writeUInt16BE(80, 0);
      t.writeUInt16BE(dport, 2);
      t.writeUInt32BE(seq >>> 0, 4);
      t.writeUInt32BE(ack >>> 0, 8);
      t[12] = (t.length / 4) << 4;
      t[13] = flags;
      t.writeUInt16BE(65535, 14);
      if (syn) t.writeUInt32BE(0x020405b4, 20); // MSS 1460
      // A partial checksum, completed by nobody: the NEEDS_CSUM header tells the kernel so.
      t.writeUInt16BE(pseudoHeaderSum(server, dst, 6, t.length), 16);
      const hdr = vnetHdrBuffer({
        flags: VnetFlags.needsCsum,
        gsoType: VnetGso.none,
        hdrLen: 0,
        gsoSize: 0,
        csumStart: 34,
        csumOffset: 16,
      });
      return { frame: ethFrame(toMac, 0x0800, ipv4(server, dst, 6, t)), hdr };
    };
    const p = new FdPoller(
      tap.fd,
      "frames",
      (bufs) => {
        const out: { frame: Buffer; hdr: Buffer | undefined }[] = [];
        for (const b of bufs) {
          const s = splitVnetFrame(b);
          if (!s.ok) throw new Error(s.reason);
          const { hdr, frame } = s.value;
          const arp = arpRequestFor(frame);
          if (arp) out.push({ frame: arpReply(arp), hdr: undefined });
          const pkt = parseIp(frame);
          if (pkt?.proto !== 6) {
            plainHdrs.push(hdr.flags | hdr.gsoType);
            continue;
          }
          const t = pkt.payload;
          const flags = t[13] as number;
          const seq = t.readUInt32BE(4);
          const dataLen = t.length - ((t[12] as number) >>> 4) * 4;
          if ((hdr.gsoType & ~VnetGso.ecn) === VnetGso.tcpv4) {
            const copy = Buffer.from(frame);
            const ok = completePartialChecksum(copy, hdr.csumStart, hdr.csumOffset);
            const tcpLen = t.length;
            const verify = internetChecksum(
              copy,
              34,
              34 + tcpLen,
              pseudoHeaderSum(pkt.src, pkt.dst, 6, tcpLen),
            );
            gso.push({ len: frame.length, gsoSize: hdr.gsoSize, csumOk: ok && verify === 0 });
          }
          const mac = Buffer.from(eth(frame).src);
          const dport = t.readUInt16BE(0);
          if (flags & 0x02) {
            expected = (seq + 1) >>> 0;
            out.push(tcpTo(mac, pkt.src, dport, iss, expected, 0x12, true));
            continue;
          }
          if (dataLen > 0 && seq === expected) {
            expected = (expected + dataLen) >>> 0;
            received += dataLen;
          }
          if (flags & 0x01 && seq + dataLen === expected) {
            finSeen = true;
            expected = (expected + 1) >>> 0;
            out.push(tcpTo(mac, pkt.src, dport, iss + 1, expected, 0x11));
            continue;
          }
          if (dataLen > 0) out.push(tcpTo(mac, pkt.src, dport, iss + 1, expected, 0x10));
        }
        if (out.length)
          p.write(
            out.map((o) => o.frame),
            out.map((o) => o.hdr),
          );
      },
      { vnetHdrLen: 12 },
    );
    pollers.push(p);
    const client = `
      const s = require("node:net").connect(80, "10.0.10.2", () => s.end(Buffer.alloc(${total}, 0x61)));
      s.on("data", () => {});
      s.on("close", (hadError) => process.exit(hadError ? 1 : 0));
      s.on("error", (e) => { console.error(e.message); process.exit(1); });
      setTimeout(() => process.exit(2), 15000).unref();
    `;
    const r = await ns.exec(process.execPath, ["-e", client], 20_000);
    expect(r.code, r.stderr).toBe(0);
    expect(received).toBe(total);
    expect(finSeen).toBe(true);
    expect(gso.length).toBeGreaterThan(0);
    for (const g of gso) {
      expect(g.len).toBeGreaterThan(1514);
      expect(g.len).toBeLessThanOrEqual(65536 + 14);
      expect(g.gsoSize).toBe(1460);
      expect(g.csumOk).toBe(true);
    }
    // ARP travels with an all-zero header (nothing to offload).
    expect(plainHdrs.every((h) => h === 0 || h === VnetFlags.dataValid)).toBe(true);
    expect(p.stats()).toMatchObject({ writeErrors: 0 });
  });

  it("joins a user namespace first (rootless path) and leaves this thread's namespaces alone", async () => {
    const holder = startChild("unshare", ["--user", "--map-root-user", "--net", "sleep", "60"]);
    children.push(holder);
    const nsFile = `/proc/${holder.pid}/ns/net`;
    await waitFor(
      () => {
        try {
          return readlinkSync(nsFile) !== threadNs("net");
        } catch {
          return false;
        }
      },
      3000,
      "unshare to enter its namespaces",
    );
    const beforeNet = threadNs("net");
    const beforeUser = threadNs("user");
    const tap = openTapInNetns(nsFile, `/proc/${holder.pid}/ns/user`, "unnatu0", { vnetHdr: false });
    expect(threadNs("net")).toBe(beforeNet);
    expect(threadNs("user")).toBe(beforeUser);
    const seen: Buffer[] = [];
    const p = new FdPoller(tap.fd, "frames", (frames) => seen.push(...frames));
    pollers.push(p);
    const inside = (args: string[]) => runOk("nsenter", ["-t", String(holder.pid), "-n", ...args]);
    await inside(["ip", "addr", "add", "10.0.12.1/24", "dev", "unnatu0"]);
    await inside(["ip", "link", "set", "unnatu0", "up"]);
    await run("nsenter", [
      "-t",
      String(holder.pid),
      "-n",
      "busybox",
      "ping",
      "-c",
      "1",
      "-W",
      "1",
      "10.0.12.2",
    ]);
    expect(seen.map(arpRequestFor).some((a) => a && ipStr(a.targetIp) === "10.0.12.2")).toBe(true);
    expect((await run("ip", ["link", "show", "unnatu0"])).code).not.toBe(0);
  });
});
