#!/usr/bin/env node
/**
 * Fuzzes a whole user network in-process: `npm run fuzz -- [--minutes N] [--seed S]`
 * (after `npx tsc`; runs against dist/).
 *
 * Theory of operation
 * - One `UserNetdev` (DHCP, DNS, DNS over TCP, TFTP, UDP/TCP/ICMP NAT) on a hub, and a
 *   fuzzing guest port on the same hub. The guest throws frames at the hub one by one
 *   (now and then a batch): frames built from scratch for every protocol (ARP; IPv4
 *   with options, fragments and odd header fields; ICMP; UDP to DHCP, DNS, TFTP and any
 *   port; TCP with random flags, options and sequence numbers, DNS over TCP), frames
 *   that answer what the stack just sent (ACKs, data, FINs and RSTs near its sequence
 *   numbers, ARP replies), and mutations (bit flips, odd bytes, cuts, splices, with the
 *   checksums fixed most of the time so they get past the parsers) of the pcap files in
 *   fixtures/ re-addressed to the user network, of earlier frames and of frames the
 *   stack sent back.
 * - Nothing leaves the machine: the NAT's host side is a confined HostNet. UDP and ping
 *   are answered in-process (echoes, ICMP errors); TCP connects go to an echo server or
 *   a resetting server on 127.0.0.1 that this script starts, or fail at once. DNS
 *   upstream is a DNS server on 127.0.0.1 started here (that now and then answers
 *   garbage). The real destination is never used.
 * - Checks, each failing the run with the seed and the frame (hex): no exception
 *   escapes (the hub's "port-send-threw" drops and the process-wide internal-error
 *   counter stay 0, no uncaught exception), no hang (each frame processed within
 *   --max-frame-ms, the event loop comes back within --max-stall-ms), memory bounded
 *   (heapUsed after a GC at the end within --heap-margin-mb of the start).
 * - Reproduction: the frames depend on the seed and on what the stack sends back, which
 *   depends on timing (real timers, real loopback sockets); a seed reproduces the run
 *   closely, not exactly. The failing frame itself is printed.
 * - fast-check is not used: the run is one long stateful, time-bounded walk where
 *   shrinking has nothing to work on, and a seeded generator is all it would give.
 */
import { spawnSync } from "node:child_process";
import dgram from "node:dgram";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";

if (typeof globalThis.gc !== "function") {
  // heap figures need a GC we can call
  const r = spawnSync(process.execPath, ["--expose-gc", ...process.argv.slice(1)], { stdio: "inherit" });
  process.exit(r.status ?? 1);
}

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const dist = (p) => import(join(root, "dist", p));
const [
  { Hub },
  { internalErrors },
  { UserNetdev },
  { nodeHostNet },
  { readPcap },
  { internetChecksum },
  dnsPacket,
] = await Promise.all([
  dist("hub/hub.js"),
  dist("log.js"),
  dist("user-netdev.js"),
  dist("proxy/host-net.js"),
  dist("ports/pcap.js"),
  dist("stack/wire/checksum.js"),
  import("dns-packet"),
]);

const { values: opts } = parseArgs({
  options: {
    minutes: { type: "string", default: "1" },
    seconds: { type: "string" },
    seed: { type: "string" },
    "max-frame-ms": { type: "string", default: "2000" },
    "max-stall-ms": { type: "string", default: "10000" },
    "heap-margin-mb": { type: "string", default: "48" },
    quiet: { type: "boolean", default: false },
  },
});
const seed = opts.seed !== undefined ? Number(opts.seed) >>> 0 : (Math.random() * 2 ** 32) >>> 0;
const durationMs = opts.seconds !== undefined ? Number(opts.seconds) * 1000 : Number(opts.minutes) * 60_000;
const maxFrameMs = Number(opts["max-frame-ms"]);
const maxStallMs = Number(opts["max-stall-ms"]);
const heapMarginBytes = Number(opts["heap-margin-mb"]) * 1024 * 1024;
const say = (s) => {
  if (!opts.quiet) console.log(s);
};

// ---- seeded generator (mulberry32) ----
let rngState = seed;
function rand() {
  rngState = (rngState + 0x6d2b79f5) >>> 0;
  let t = rngState;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
}
const int = (n) => Math.floor(rand() * n);
const chance = (p) => rand() < p;
const pick = (a) => a[int(a.length)];
const u32 = () => int(2 ** 32) >>> 0;
const bytes = (n) => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = int(256);
  return b;
};
/** a length biased towards the edges that parsers get wrong */
const length = (max) => (chance(0.3) ? pick([0, 1, 2, 3, 4, 7, 8, 20, max]) : int(max + 1));

// ---- addresses of the user network (config below) ----
const ip = (s) => s.split(".").reduce((a, x) => ((a << 8) | Number(x)) >>> 0, 0);
const net10 = ip("10.0.2.0");
const gateway = ip("10.0.2.2");
const dnsAddr = ip("10.0.2.3");
const guestIps = Array.from({ length: 20 }, (_, i) => net10 + 15 + i);
const guestMacs = Array.from({ length: 8 }, (_, i) => Buffer.from([0x52, 0x54, 0x00, 0x12, 0x34, 0x50 + i]));
const broadcastMac = Buffer.alloc(6, 0xff);
let stackMac = Buffer.from([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
const outside = () =>
  pick([ip("198.51.100.7"), ip("203.0.113.9"), ip("192.0.2.1"), ip("127.0.0.1"), ip("224.0.0.1"), u32()]);
const targetIp = () =>
  pick([
    gateway,
    gateway,
    dnsAddr,
    dnsAddr,
    net10 + 4,
    net10 + 255,
    0xffffffff,
    0,
    outside(),
    pick(guestIps),
  ]);
const guestIp = () => (chance(0.9) ? guestIps[int(4)] : chance(0.5) ? pick(guestIps) : u32());
const guestMac = () => (chance(0.95) ? guestMacs[int(3)] : chance(0.5) ? pick(guestMacs) : bytes(6));
const dstMac = () => (chance(0.85) ? stackMac : chance(0.5) ? broadcastMac : bytes(6));

// ---- frame building ----
function ethernet(dst, src, type, payload) {
  const vlan = chance(0.02);
  const h = Buffer.alloc(vlan ? 18 : 14);
  dst.copy(h, 0);
  src.copy(h, 6);
  if (vlan) {
    h.writeUInt16BE(0x8100, 12);
    h.writeUInt16BE(int(4096), 14);
    h.writeUInt16BE(type, 16);
  } else h.writeUInt16BE(type, 12);
  return Buffer.concat([h, payload]);
}

function ipOptions() {
  if (!chance(0.1)) return Buffer.alloc(0);
  const parts = [];
  let n = 0;
  while (n < 40 && chance(0.7)) {
    const kind = pick([0, 1, 7, 68, 130, 131, 137, 148, int(256)]);
    if (kind === 0 || kind === 1) {
      parts.push(Buffer.from([kind]));
      n += 1;
      continue;
    }
    const len = chance(0.8) ? 2 + int(Math.min(10, 38 - n)) : int(256);
    const o = bytes(Math.max(2, Math.min(len, 40 - n)));
    o[0] = kind;
    o[1] = len;
    parts.push(o);
    n += o.length;
  }
  let o = Buffer.concat(parts).subarray(0, 40);
  if (o.length % 4 !== 0) o = Buffer.concat([o, Buffer.alloc(4 - (o.length % 4))]);
  return o;
}

/** an IPv4 packet (header checksum set; L4 checksum left to the caller) */
function ipv4(src, dst, proto, payload, over = {}) {
  const options = over.options ?? ipOptions();
  const hl = 20 + options.length;
  const p = Buffer.alloc(hl + payload.length);
  p[0] = 0x40 | (hl / 4);
  p[1] = chance(0.05) ? int(256) : 0;
  p.writeUInt16BE(hl + payload.length, 2);
  p.writeUInt16BE(over.id ?? int(65536), 4);
  const df = over.df ?? chance(0.5);
  p.writeUInt16BE(((df ? 0x4000 : 0) | (over.mf ? 0x2000 : 0) | ((over.offset ?? 0) >> 3)) & 0xffff, 6);
  p[8] = over.ttl ?? (chance(0.05) ? int(3) : 64);
  p[9] = proto;
  p.writeUInt32BE(src >>> 0, 12);
  p.writeUInt32BE(dst >>> 0, 16);
  options.copy(p, 20);
  payload.copy(p, hl);
  p.writeUInt16BE(internetChecksum(p, 0, hl), 10);
  return p;
}

function pseudoSum(src, dst, proto, len) {
  const h = Buffer.alloc(12);
  h.writeUInt32BE(src >>> 0, 0);
  h.writeUInt32BE(dst >>> 0, 4);
  h[9] = proto;
  h.writeUInt16BE(len, 10);
  return h;
}

/** sets the L4 checksum at `at` of segment `seg` (in place) */
function l4Checksum(seg, at, src, dst, proto) {
  if (seg.length < at + 2) return;
  seg.writeUInt16BE(0, at);
  let c = internetChecksum(Buffer.concat([pseudoSum(src, dst, proto, seg.length), seg]));
  if (proto === 17 && c === 0) c = 0xffff;
  seg.writeUInt16BE(c, at);
}

function udpFrame(src, dst, sport, dport, payload, over = {}) {
  const u = Buffer.alloc(8 + payload.length);
  u.writeUInt16BE(sport, 0);
  u.writeUInt16BE(dport, 2);
  u.writeUInt16BE(chance(0.03) ? int(65536) : u.length, 4);
  payload.copy(u, 8);
  if (!chance(0.1)) l4Checksum(u, 6, src, dst, 17);
  return ipv4(src, dst, 17, u, over);
}

function tcpOptions() {
  const parts = [];
  let n = 0;
  const add = (b) => {
    if (n + b.length <= 40) {
      parts.push(b);
      n += b.length;
    }
  };
  while (chance(0.5)) {
    switch (int(9)) {
      case 0:
        add(Buffer.from([2, 4, int(256), int(256)]));
        break;
      case 1:
        add(Buffer.from([3, 3, chance(0.8) ? int(15) : int(256)]));
        break;
      case 2:
        add(Buffer.from([4, 2]));
        break;
      case 3: {
        const k = int(5);
        const s = bytes(2 + 8 * k);
        s[0] = 5;
        s[1] = chance(0.9) ? 2 + 8 * k : int(256);
        add(s);
        break;
      }
      case 4: {
        const t = bytes(10);
        t[0] = 8;
        t[1] = 10;
        add(t);
        break;
      }
      case 5:
        add(Buffer.from([1]));
        break;
      case 6:
        add(Buffer.from([0]));
        break;
      default: {
        const r = bytes(1 + int(8));
        add(r);
      }
    }
  }
  let o = Buffer.concat(parts);
  if (o.length % 4 !== 0) o = Buffer.concat([o, Buffer.alloc(4 - (o.length % 4), 1)]);
  return o;
}

function tcpFrame(src, dst, sport, dport, seq, ack, flags, payload, over = {}) {
  const options = over.options ?? tcpOptions();
  const hl = 20 + options.length;
  const t = Buffer.alloc(hl + payload.length);
  t.writeUInt16BE(sport, 0);
  t.writeUInt16BE(dport, 2);
  t.writeUInt32BE(seq >>> 0, 4);
  t.writeUInt32BE(ack >>> 0, 8);
  t[12] = chance(0.02) ? int(256) : (hl / 4) << 4;
  t[13] = flags;
  t.writeUInt16BE(over.window ?? (chance(0.1) ? int(65536) : 64240), 14);
  t.writeUInt16BE(chance(0.05) ? int(65536) : 0, 18);
  options.copy(t, 20);
  payload.copy(t, hl);
  if (!chance(0.02)) l4Checksum(t, 16, src, dst, 6);
  return ipv4(src, dst, 6, t, over);
}

function icmpMessage(type, code, rest) {
  const m = Buffer.alloc(4 + rest.length);
  m[0] = type;
  m[1] = code;
  rest.copy(m, 4);
  m.writeUInt16BE(internetChecksum(m), 2);
  return m;
}

const F = (src, pkt) => ethernet(dstMac(), src, 0x0800, pkt);

// ---- generators, one per protocol ----
const tcpFlows = []; // recent guest-opened flows: {src, dst, sport, dport, mac}
const gens = {
  arp() {
    const a = Buffer.alloc(28);
    a.writeUInt16BE(chance(0.95) ? 1 : int(65536), 0);
    a.writeUInt16BE(chance(0.95) ? 0x0800 : int(65536), 2);
    a[4] = chance(0.95) ? 6 : int(256);
    a[5] = chance(0.95) ? 4 : int(256);
    a.writeUInt16BE(chance(0.9) ? 1 + int(2) : int(65536), 6);
    const mac = guestMac();
    mac.copy(a, 8);
    a.writeUInt32BE(guestIp(), 14);
    (chance(0.5) ? Buffer.alloc(6) : bytes(6)).copy(a, 18);
    a.writeUInt32BE(targetIp(), 24);
    const body = chance(0.1) ? a.subarray(0, int(28)) : chance(0.1) ? Buffer.concat([a, bytes(int(40))]) : a;
    return [ethernet(chance(0.5) ? broadcastMac : dstMac(), mac, 0x0806, body)];
  },
  icmp() {
    const type = chance(0.7) ? 8 : pick([0, 3, 4, 5, 11, 12, 13, 17, int(256)]);
    let rest;
    if (type === 3 || type === 11 || type === 12) {
      // an error quoting a "sent" packet, as a host on the path would
      const q = tcpOrUdpPacket();
      rest = Buffer.concat([Buffer.alloc(4), q.subarray(0, chance(0.5) ? 28 : q.length)]);
    } else rest = bytes(4 + length(1472));
    return [
      F(guestMac(), ipv4(guestIp(), targetIp(), 1, icmpMessage(type, chance(0.9) ? 0 : int(16), rest))),
    ];
  },
  udpAny() {
    const dport = chance(0.5) ? pick([7, 53, 67, 68, 69, 123, 137, 443, 5353, 65535]) : int(65536);
    return [F(guestMac(), udpFrame(guestIp(), targetIp(), 1024 + int(64512), dport, bytes(length(1472))))];
  },
  dhcp() {
    const mac = guestMac();
    const b = Buffer.alloc(240);
    b[0] = chance(0.95) ? 1 : int(256);
    b[1] = chance(0.95) ? 1 : int(256);
    b[2] = chance(0.95) ? 6 : int(256);
    b.writeUInt32BE(u32(), 4);
    b.writeUInt16BE(chance(0.5) ? 0x8000 : 0, 10);
    if (chance(0.3)) b.writeUInt32BE(guestIp(), 12);
    mac.copy(b, 28);
    b.writeUInt32BE(chance(0.95) ? 0x63825363 : u32(), 236);
    const o = [];
    const opt = (code, data) => o.push(Buffer.from([code, chance(0.97) ? data.length : int(256)]), data);
    opt(53, Buffer.from([chance(0.9) ? pick([1, 3, 3, 4, 7, 8]) : int(256)]));
    if (chance(0.6)) opt(50, u32buf(chance(0.8) ? pick(guestIps) : u32()));
    if (chance(0.5)) opt(54, u32buf(chance(0.8) ? gateway : u32()));
    if (chance(0.4)) opt(61, Buffer.concat([Buffer.from([1]), mac]));
    if (chance(0.4))
      opt(12, chance(0.7) ? Buffer.from(pick(["guest", "host", "a-b", "x".repeat(63)])) : bytes(int(64)));
    if (chance(0.3)) opt(81, bytes(int(40)));
    if (chance(0.5)) opt(55, bytes(int(20)));
    if (chance(0.3)) opt(57, Buffer.from([int(256), int(256)]));
    if (chance(0.2)) opt(int(256), bytes(int(30)));
    if (chance(0.05)) o.push(Buffer.from([52, 1, 3]));
    if (!chance(0.1)) o.push(Buffer.from([255]));
    const payload = Buffer.concat([b, ...o]);
    const dst = chance(0.8) ? 0xffffffff : gateway;
    const src = chance(0.7) ? 0 : guestIp();
    return [
      ethernet(chance(0.8) ? broadcastMac : dstMac(), mac, 0x0800, udpFrame(src, dst, 68, 67, payload)),
    ];
  },
  dns() {
    return [F(guestMac(), udpFrame(guestIp(), dnsAddr, 1024 + int(64512), 53, dnsQuery()))];
  },
  tftp() {
    let p;
    switch (int(5)) {
      case 0:
      case 1: {
        const name = pick([
          "boot.bin",
          "small.txt",
          "../etc/passwd",
          "/boot.bin",
          "nope",
          "a".repeat(300),
          "",
        ]);
        const parts = [
          Buffer.from([0, 1]),
          Buffer.from(`${name}\0${pick(["octet", "netascii", "mail", "x"])}\0`),
        ];
        if (chance(0.5))
          parts.push(Buffer.from(`blksize\0${pick(["8", "512", "1468", "65464", "0", "x"])}\0`));
        if (chance(0.3)) parts.push(Buffer.from(`tsize\0${pick(["0", "9"])}\0`));
        if (chance(0.2)) parts.push(Buffer.from(`windowsize\0${int(70)}\0`));
        p = Buffer.concat(parts);
        if (chance(0.1)) p = p.subarray(0, int(p.length));
        break;
      }
      case 2:
        p = Buffer.from([0, 4, int(256), int(256)]);
        break;
      case 3:
        p = Buffer.concat([Buffer.from([0, 5, 0, int(8)]), Buffer.from("err\0")]);
        break;
      default:
        p = Buffer.concat([Buffer.from([0, int(8)]), bytes(length(600))]);
    }
    const sport = chance(0.5) ? 2000 + int(4) : 1024 + int(64512);
    const dport = chance(0.7) ? 69 : 1024 + int(64512);
    return [F(guestMacs[0], udpFrame(guestIps[0], gateway, sport, dport, p))];
  },
  tcpSyn() {
    const mac = guestMac();
    const src = guestIp();
    const dst = chance(0.3) ? dnsAddr : targetIp();
    const sport = 1024 + int(64512);
    const dport =
      dst === dnsAddr && chance(0.8) ? 53 : chance(0.5) ? pick([22, 53, 80, 139, 445, 8080]) : int(65536);
    tcpFlows.push({ mac, src, dst, sport, dport });
    if (tcpFlows.length > 64) tcpFlows.splice(0, 32);
    const opts = Buffer.from([2, 4, 5, 0xb4, 4, 2, 1, 3, 3, 7]);
    const o = Buffer.concat([opts, Buffer.alloc(2, 1)]);
    return [
      F(
        mac,
        tcpFrame(src, dst, sport, dport, u32(), 0, 0x02, Buffer.alloc(0), {
          options: chance(0.7) ? o : undefined,
        }),
      ),
    ];
  },
  tcpRandom() {
    const f = tcpFlows.length > 0 && chance(0.8) ? pick(tcpFlows) : undefined;
    const src = f?.src ?? guestIp();
    const dst = f?.dst ?? targetIp();
    return [
      F(
        f?.mac ?? guestMac(),
        tcpFrame(
          src,
          dst,
          f?.sport ?? int(65536),
          f?.dport ?? int(65536),
          u32(),
          u32(),
          int(256),
          bytes(length(1460)),
        ),
      ),
    ];
  },
  /** an answer to a TCP segment or ARP request the stack sent: keeps flows going past the handshake */
  reflect() {
    const s = pick(fromStack);
    if (!s) return gens.tcpSyn();
    if (s.readUInt16BE(12) === 0x0806 && s.length >= 42) {
      const a = Buffer.from(s.subarray(14, 42));
      a.writeUInt16BE(2, 6);
      const mac = guestMacs[0];
      s.copy(a, 18, 22, 28);
      s.copy(a, 24, 28, 32);
      mac.copy(a, 8);
      s.copy(a, 14, 38, 42);
      return [ethernet(s.subarray(6, 12), mac, 0x0806, a)];
    }
    if (s.readUInt16BE(12) !== 0x0800 || s[23] !== 6) return gens.tcpRandom();
    const ihl = (s[14] & 15) * 4;
    const t = 14 + ihl;
    if (s.length < t + 20) return gens.tcpRandom();
    const src = s.readUInt32BE(30);
    const dst = s.readUInt32BE(26);
    const sport = s.readUInt16BE(t + 2);
    const dport = s.readUInt16BE(t);
    const theirSeq = s.readUInt32BE(t + 4);
    const theirAck = s.readUInt32BE(t + 8);
    const theirFlags = s[t + 13];
    const theirLen = s.length - t - (s[t + 12] >> 4) * 4;
    let ack = (theirSeq + theirLen + (theirFlags & 0x03 ? 1 : 0)) >>> 0;
    let seq = theirAck;
    if (chance(0.1)) ack = (ack + int(200000) - 100000) >>> 0;
    if (chance(0.1)) seq = (seq + int(200000) - 100000) >>> 0;
    let flags = pick([0x10, 0x10, 0x18, 0x18, 0x11, 0x04, 0x14, 0x12, 0x02, int(256)]);
    if (theirFlags & 0x04) flags = pick([0x02, 0x10, 0x04]);
    let payload = Buffer.alloc(0);
    if (flags & 0x08 || chance(0.2)) {
      payload = dport === 53 || sport === 53 ? dnsOverTcp() : bytes(length(1460));
    }
    const win = chance(0.1) ? 0 : undefined;
    return [
      ethernet(
        s.subarray(6, 12),
        s.subarray(0, 6),
        0x0800,
        tcpFrame(src, dst, sport, dport, seq, ack, flags, payload, { window: win }),
      ),
    ];
  },
  fragments() {
    const pkt = tcpOrUdpPacket(true);
    const hl = (pkt[0] & 15) * 4;
    const body = pkt.subarray(hl);
    const id = int(65536);
    const frames = [];
    let off = 0;
    while (off < body.length) {
      const n = Math.min(body.length - off, 8 * (1 + int(chance(0.5) ? 4 : 100)));
      const last = off + n >= body.length;
      const src = pkt.readUInt32BE(12);
      const dst = pkt.readUInt32BE(16);
      const fo = chance(0.05) ? int(8192) * 8 : off;
      frames.push(
        F(
          guestMacs[0],
          ipv4(src, dst, pkt[9], body.subarray(off, off + n), {
            id,
            mf: !last || chance(0.05),
            offset: fo,
            df: false,
            options: Buffer.alloc(0),
          }),
        ),
      );
      off += n;
    }
    if (chance(0.3)) frames.reverse();
    if (chance(0.2) && frames.length > 0) frames.push(pick(frames));
    if (chance(0.2) && frames.length > 1) frames.splice(int(frames.length), 1);
    return frames;
  },
  mutate() {
    const base = chance(0.5) && fromStack.length > 0 ? pick(fromStack) : pick(corpus);
    return [mutateFrame(Buffer.from(base))];
  },
  pcap() {
    return [mutateFrame(retarget(Buffer.from(pick(pcapFrames))), chance(0.5))];
  },
  garbage() {
    return [bytes(length(1600))];
  },
};
const weights = {
  arp: 4,
  icmp: 6,
  udpAny: 8,
  dhcp: 8,
  dns: 8,
  tftp: 6,
  tcpSyn: 8,
  tcpRandom: 6,
  reflect: 20,
  fragments: 3,
  mutate: 14,
  pcap: 8,
  garbage: 2,
};
const table = Object.entries(weights).flatMap(([k, w]) => Array(w).fill(k));

function u32buf(v) {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

function dnsQuery() {
  if (chance(0.1)) return bytes(length(512));
  const name = pick([
    "example.com",
    "host.usernet.internal",
    "guest",
    "a.b.c.d.e.f",
    `${"x".repeat(63)}.y`,
    "",
    ".",
    `n${int(1000)}.test`,
  ]);
  let q;
  try {
    q = dnsPacket.encode({
      type: "query",
      id: int(65536),
      flags: chance(0.9) ? dnsPacket.RECURSION_DESIRED : int(65536),
      questions: Array.from({ length: chance(0.9) ? 1 : int(4) }, () => ({
        type: pick(["A", "AAAA", "PTR", "MX", "TXT", "ANY", "SRV"]),
        name,
      })),
    });
  } catch {
    return bytes(length(512));
  }
  if (chance(0.2)) {
    q = Buffer.from(q);
    q[int(q.length)] = int(256);
  }
  return q;
}

function dnsOverTcp() {
  const q = dnsQuery();
  const len = Buffer.alloc(2);
  len.writeUInt16BE(chance(0.9) ? q.length : int(65536));
  const m = Buffer.concat([len, q]);
  return chance(0.2) ? m.subarray(0, int(m.length + 1)) : m;
}

function tcpOrUdpPacket(big = false) {
  const src = guestIp();
  const dst = targetIp();
  if (chance(0.5)) {
    const u = udpFrame(
      src,
      dst,
      1024 + int(64512),
      pick([53, 69, int(65536)]),
      bytes(big ? 200 + int(3000) : int(64)),
      {
        options: Buffer.alloc(0),
      },
    );
    return u;
  }
  if (chance(0.5))
    return ipv4(src, dst, 1, icmpMessage(8, 0, bytes(4 + (big ? 200 + int(3000) : int(64)))), {
      options: Buffer.alloc(0),
    });
  return tcpFrame(src, dst, int(65536), int(65536), u32(), u32(), int(256), bytes(big ? int(3000) : 0), {
    options: Buffer.alloc(0),
  });
}

/** points a captured frame at the user network: guest source, our targets */
function retarget(f) {
  guestMac().copy(f, 6);
  dstMac().copy(f, 0);
  const e = etherOffset(f);
  if (e !== undefined && f.readUInt16BE(e - 2) === 0x0800 && f.length >= e + 20) {
    f.writeUInt32BE(guestIp(), e + 12);
    f.writeUInt32BE(targetIp(), e + 16);
  }
  if (e !== undefined && f.readUInt16BE(e - 2) === 0x0806 && f.length >= e + 28) {
    f.writeUInt32BE(guestIp(), e + 14);
    f.writeUInt32BE(targetIp(), e + 24);
  }
  fixChecksums(f);
  return f;
}

function etherOffset(f) {
  if (f.length < 14) return undefined;
  if (f.readUInt16BE(12) === 0x8100) return f.length >= 18 ? 18 : undefined;
  return 14;
}

/** recomputes IPv4, ICMP, UDP and TCP checksums where the header lets us find them */
function fixChecksums(f) {
  const e = etherOffset(f);
  if (e === undefined || f.readUInt16BE(e - 2) !== 0x0800 || f.length < e + 20) return f;
  const hl = (f[e] & 15) * 4;
  if (hl < 20 || f.length < e + hl) return f;
  f.writeUInt16BE(0, e + 10);
  f.writeUInt16BE(internetChecksum(f, e, e + hl), e + 10);
  const frag = f.readUInt16BE(e + 6) & 0x3fff;
  const total = Math.min(f.readUInt16BE(e + 2), f.length - e);
  if (frag !== 0 || total <= hl) return f;
  const l4 = Buffer.from(f.subarray(e + hl, e + total));
  const src = f.readUInt32BE(e + 12);
  const dst = f.readUInt32BE(e + 16);
  const proto = f[e + 9];
  if (proto === 6) l4Checksum(l4, 16, src, dst, 6);
  else if (proto === 17) l4Checksum(l4, 6, src, dst, 17);
  else if (proto === 1 && l4.length >= 4) {
    l4.writeUInt16BE(0, 2);
    l4.writeUInt16BE(internetChecksum(l4), 2);
  } else return f;
  l4.copy(f, e + hl);
  return f;
}

const interesting = [0, 1, 0x7f, 0x80, 0xff, 0x40, 0x20, 0x10, 5, 6, 15];
function mutateFrame(f, fix = chance(0.7)) {
  let b = f;
  const n = 1 + int(4);
  for (let i = 0; i < n && b.length > 0; i++) {
    const at = chance(0.7) ? int(Math.min(b.length, 74)) : int(b.length);
    switch (int(8)) {
      case 0:
        b[at] ^= 1 << int(8);
        break;
      case 1:
        b[at] = int(256);
        break;
      case 2:
        b[at] = pick(interesting);
        break;
      case 3:
        if (at + 1 < b.length) b.writeUInt16BE(pick([0, 1, 0xffff, 0x7fff, 0x8000, int(65536)]), at);
        break;
      case 4:
        b = b.subarray(0, at);
        break;
      case 5:
        b = Buffer.concat([b, bytes(int(200))]);
        break;
      case 6: {
        const s = pick(corpus);
        const from = int(s.length);
        b = Buffer.concat([b.subarray(0, at), s.subarray(from, from + int(100))]);
        break;
      }
      default: {
        // duplicate a chunk in place
        const len = int(32);
        b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]);
      }
    }
  }
  b = Buffer.from(b);
  return fix ? fixChecksums(b) : b;
}

// ---- the confined host side ----
const host = { tcpConnects: 0, udpSends: 0, pings: 0, dnsQueries: 0 };
const cleanups = [];

async function listenTcp(onConn) {
  const s = net.createServer({ allowHalfOpen: true }, onConn);
  await new Promise((r) => s.listen(0, "127.0.0.1", r));
  cleanups.push(() => {
    s.close();
    for (const c of conns) c.destroy();
  });
  const conns = new Set();
  s.on("connection", (c) => {
    conns.add(c);
    c.on("close", () => conns.delete(c));
    c.on("error", () => {});
  });
  return s.address().port;
}
const echoPort = await listenTcp((c) => {
  c.on("data", (d) => {
    if (!c.write(d)) c.pause();
  });
  c.on("drain", () => c.resume());
  c.on("end", () => c.end());
});
const resetPort = await listenTcp((c) => {
  setTimeout(() => c.resetAndDestroy(), int(50));
});

const dnsServer = dgram.createSocket("udp4");
await new Promise((r) => dnsServer.bind(0, "127.0.0.1", r));
cleanups.push(() => dnsServer.close());
dnsServer.on("message", (msg, rinfo) => {
  host.dnsQueries++;
  let reply;
  try {
    const q = dnsPacket.decode(msg);
    reply = dnsPacket.encode({
      type: "response",
      id: q.id,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
      questions: q.questions,
      answers: (q.questions ?? [])
        .filter((x) => x.type === "A")
        .map((x) => ({ type: "A", name: x.name, ttl: 60, data: "192.0.2.1" })),
    });
  } catch {
    return;
  }
  if (chance(0.05)) reply = mutateFrame(Buffer.from(reply), false);
  dnsServer.send(reply, rinfo.port, rinfo.address);
});

const deadTcp = { write: (_d, done) => done(), end() {}, reset() {}, pause() {}, resume() {} };
const confinedHostNet = {
  openPing(_local, events) {
    let closed = false;
    return {
      send(msg, to) {
        host.pings++;
        const reply = Buffer.from(msg);
        setImmediate(() => {
          if (closed || reply.length < 4) return;
          reply[0] = chance(0.9) ? 0 : int(256);
          reply.writeUInt16BE(0, 2);
          reply.writeUInt16BE(internetChecksum(reply), 2);
          events({ type: "reply", message: reply, from: to });
        });
        return true;
      },
      close() {
        closed = true;
      },
    };
  },
  connectTcp(to, _local, timeoutMs, events, readInto) {
    host.tcpConnects++;
    const kind = to.port % 5;
    if (kind === 0) {
      setImmediate(() =>
        events({ type: "connect-failed", code: pick(["ECONNREFUSED", "EHOSTUNREACH", "ETIMEDOUT"]) }),
      );
      return deadTcp;
    }
    // only ever our own loopback servers, whatever the guest asked for
    const port = kind === 1 ? resetPort : echoPort;
    return nodeHostNet.connectTcp({ address: "127.0.0.1", port }, undefined, timeoutMs, events, readInto);
  },
  bindUdp(_local, events) {
    let closed = false;
    return {
      send(data, address, port) {
        host.udpSends++;
        if (chance(0.05)) return pick(["EAGAIN", "EHOSTUNREACH"]);
        const copy = Buffer.from(data);
        setImmediate(() => {
          if (closed) return;
          if (port % 7 === 0) {
            events({
              type: "icmp",
              to: { address, port },
              icmpType: 3,
              icmpCode: 3,
              reporter: address,
              length: copy.length,
            });
          } else if (port % 11 === 0) {
            events({
              type: "icmp",
              to: { address, port },
              icmpType: 11,
              icmpCode: 0,
              reporter: "192.0.2.254",
              length: copy.length,
            });
          } else events({ type: "datagram", data: copy, from: { address, port } });
        });
        return undefined;
      },
      close() {
        closed = true;
      },
    };
  },
};

// ---- the user network ----
const tftpDir = mkdtempSync(join(tmpdir(), "usernet-fuzz-"));
cleanups.push(() => rmSync(tftpDir, { recursive: true, force: true }));
writeFileSync(join(tftpDir, "boot.bin"), Buffer.alloc(70_000, 0x5a));
writeFileSync(join(tftpDir, "small.txt"), "hello\n");

const logged = [];
const log = {
  debug() {},
  info() {},
  warn() {},
  error(msg, fields) {
    if (logged.length < 20) logged.push(`${msg} ${fields?.stack ?? ""}`);
  },
  child: () => log,
};
internalErrors.setLogger(log);

const netdev = new UserNetdev(
  {
    type: "user",
    id: "fuzz0",
    hub: 0,
    net: "10.0.2.0",
    prefixLength: 24,
    host: "10.0.2.2",
    dhcpStart: "10.0.2.15",
    dhcpCount: 16,
    dns: "10.0.2.3",
    dnsSearch: ["fuzz.test"],
    restrict: false,
    smbServer: "10.0.2.4",
    hostfwd: [],
    guestfwd: [],
    dnsUpstream: [{ host: "127.0.0.1", port: dnsServer.address().port }],
    hostLoopback: true,
    mtu: 1500,
    tftp: tftpDir,
    maxFlows: 512,
  },
  log,
  { hostNet: confinedHostNet, resolvConf: "nameserver 127.0.0.1\n" },
);
await netdev.start();

const fromStack = []; // a sample of what the stack sent, to answer and to mutate
let receivedFromStack = 0;
let sink;
const guest = {
  name: "fuzz-guest",
  kind: "fuzz",
  send(frames) {
    for (const f of frames) {
      receivedFromStack++;
      if (f.length >= 12 && chance(0.5)) stackMac = Buffer.from(f.subarray(6, 12));
      if (fromStack.length < 256) fromStack.push(Buffer.from(f));
      else if (chance(0.3)) fromStack[int(256)] = Buffer.from(f);
    }
  },
  setReceiver(s) {
    sink = s;
  },
  stats: () => ({ rxFrames: 0, rxBytes: 0, txFrames: 0, txBytes: 0, drops: {} }),
  describe: () => "fuzzing guest",
  close() {},
};
const hub = new Hub(0);
hub.attach(netdev);
hub.attach(guest);

// ---- the corpus ----
const fixturesDir = join(root, "fixtures");
const pcapFrames = [];
for (const name of readdirSync(fixturesDir).filter((n) => n.endsWith(".pcap"))) {
  const r = readPcap(readFileSync(join(fixturesDir, name)));
  if (r.ok) for (const p of r.value) pcapFrames.push(Buffer.from(p.data ?? p.frame));
}
if (pcapFrames.length === 0) throw new Error("no frames in fixtures/*.pcap");
const corpus = [...pcapFrames];

// ---- the run ----
const failures = [];
let after;
let drops;
const recent = [];
let framesThrown = 0;
let batches = 0;
function fail(what, frame) {
  const lines = [`FAIL: ${what}`, `seed: ${seed}`];
  for (const f of Array.isArray(frame) ? frame : frame ? [frame] : [])
    lines.push(`frame: ${f.toString("hex")}`);
  if (logged.length > 0) lines.push(...logged.map((l) => `log: ${l}`));
  lines.push(`last frames (oldest first):`, ...recent.map((f) => `  ${f.toString("hex")}`));
  failures.push(lines.join("\n"));
}
process.on("uncaughtException", (err) => {
  fail(`uncaught exception: ${err?.stack ?? err}`, recent.at(-1));
  finish();
});

function threw() {
  return (hub.stats().drops["port-send-threw"] ?? 0) + internalErrors.total;
}

const mb = (n) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
// A frame that sends the stack into an endless loop never returns to the per-frame check:
// a watchdog thread sees the heartbeat stop, prints the frame from shared memory, kills us.
const shared = new SharedArrayBuffer(8 + 4096);
const beat = new Int32Array(shared, 0, 2);
const current = new Uint8Array(shared, 8);
const watchdog = new Worker(
  `const { workerData: w } = require("node:worker_threads");
  const beat = new Int32Array(w.shared, 0, 2);
  const current = new Uint8Array(w.shared, 8);
  let last = -1, since = Date.now();
  setInterval(() => {
    const now = Atomics.load(beat, 0);
    if (now !== last || Atomics.load(beat, 1) === 0) { last = now; since = Date.now(); return; }
    if (Date.now() - since < w.limitMs) return;
    const hex = Buffer.from(current.subarray(0, Atomics.load(beat, 1))).toString("hex");
    // straight to fd 2: a worker's process.stderr goes through the (stuck) main thread
    require("node:fs").writeSync(2, "FAIL: a frame did not return within " + w.limitMs + " ms (endless loop?)\\nseed: " + w.seed + "\\nframe: " + hex + "\\n");
    process.kill(process.pid, "SIGKILL");
  }, 200);`,
  { eval: true, workerData: { shared, seed, limitMs: Math.max(5 * maxFrameMs, 10_000) } },
);
await new Promise((r) => watchdog.once("online", r));
watchdog.unref();
cleanups.push(() => watchdog.terminate());

// warm the stack and the JIT a little before the baseline
for (let i = 0; i < 200; i++) throwFrames(gens[pick(table)]());
await new Promise((r) => setTimeout(r, 200));
globalThis.gc();
const before = process.memoryUsage();
const peak = { rss: before.rss, heapUsed: before.heapUsed };
say(
  `fuzz: seed ${seed}, ${(durationMs / 1000).toFixed(0)} s, ${pcapFrames.length} pcap frames in the corpus`,
);

/** hands frames to the hub as one batch; returns how long that took (ms) */
function throwFrames(f) {
  const head = f[0].subarray(0, current.length);
  current.set(head);
  Atomics.store(beat, 1, head.length);
  Atomics.add(beat, 0, 1);
  const t0 = performance.now();
  sink(f);
  Atomics.store(beat, 1, 0);
  return performance.now() - t0;
}

const start = Date.now();
let lastSample = start;
let lastReport = start;
let slowest = 0;
let done = false;
outer: while (Date.now() - start < durationMs) {
  for (let i = 0; i < 64; i++) {
    const frames = gens[pick(table)]();
    const batch = chance(0.1) ? frames : undefined;
    for (const f of batch ? [frames.flat()] : frames.map((x) => [x])) {
      for (const x of f) {
        recent.push(x);
        if (recent.length > 16) recent.shift();
        if (corpus.length < 2000) corpus.push(x);
        else if (chance(0.05)) corpus[int(2000)] = x;
      }
      const dt = throwFrames(f);
      slowest = Math.max(slowest, dt);
      framesThrown += f.length;
      batches++;
      if (dt > maxFrameMs) {
        fail(`a frame took ${dt.toFixed(0)} ms (bound ${maxFrameMs} ms)`, f);
        break outer;
      }
      if (threw() > 0) {
        fail("an exception escaped (port-send-threw or internal error)", f);
        break outer;
      }
    }
  }
  const t0 = performance.now();
  await new Promise((r) => setImmediate(r));
  if (performance.now() - t0 > maxStallMs) {
    fail(`the event loop stalled for ${(performance.now() - t0).toFixed(0)} ms`, recent.at(-1));
    break;
  }
  if (threw() > 0) {
    fail("an exception escaped outside a frame (timer or socket callback)", recent.at(-1));
    break;
  }
  const now = Date.now();
  if (now - lastSample > 500) {
    lastSample = now;
    const m = process.memoryUsage();
    peak.rss = Math.max(peak.rss, m.rss);
    peak.heapUsed = Math.max(peak.heapUsed, m.heapUsed);
    if (now - lastReport > 10_000) {
      lastReport = now;
      say(
        `  ${((now - start) / 1000).toFixed(0)} s: ${framesThrown} frames, rss ${mb(m.rss)}, heap ${mb(m.heapUsed)}`,
      );
    }
  }
}

// let timers and sockets settle, then measure
await new Promise((r) => setTimeout(r, 1000));
if (failures.length === 0 && threw() > 0) fail("an exception escaped while settling", recent.at(-1));
globalThis.gc();
await new Promise((r) => setTimeout(r, 100));
globalThis.gc();
after = process.memoryUsage();
drops = { ...hub.stats().drops, ...netdev.stats().drops };
if (failures.length === 0 && after.heapUsed - before.heapUsed > heapMarginBytes) {
  fail(`heapUsed grew ${mb(after.heapUsed - before.heapUsed)} (bound ${mb(heapMarginBytes)})`);
}
finish();

function finish() {
  if (done) return;
  done = true;
  const elapsed = (Date.now() - start) / 1000;
  const m = process.memoryUsage();
  const report = {
    seed,
    seconds: Math.round(elapsed),
    framesThrown,
    batches,
    framesPerSecond: Math.round(framesThrown / elapsed),
    framesFromStack: receivedFromStack,
    slowestFrameMs: Number(slowest.toFixed(1)),
    host,
    internalErrors: internalErrors.total,
    services: (({ dhcp, dns, tftp }) => ({ dhcp, dns, tftp }))(netdev.snapshot()),
    rss: { before: mb(before.rss), peak: mb(Math.max(peak.rss, m.rss)), after: mb(after?.rss ?? m.rss) },
    heapUsed: {
      before: mb(before.heapUsed),
      peak: mb(peak.heapUsed),
      after: mb(after?.heapUsed ?? m.heapUsed),
    },
    drops: Object.fromEntries(Object.entries(drops ?? {}).sort((a, b) => b[1] - a[1])),
  };
  console.log(JSON.stringify(report, null, 2));
  netdev.close();
  hub.close();
  for (const c of cleanups.reverse()) c();
  if (failures.length > 0) {
    console.error(failures.join("\n\n"));
    process.exit(1);
  }
  console.log("fuzz: ok");
  process.exit(0);
}
