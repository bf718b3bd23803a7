#!/usr/bin/env node
// Micro benchmark of usernet's per-segment cost towards a guest, in one process and
// without sockets: a UserStack (from dist/) sends host bytes to a simulated guest
// that acks every second segment with timestamps, as Linux does; the frames are
// framed for a QEMU stream port as StreamPort does without the native addon, or with
// --offloads as it does with it (TSO super frames cut by the addon). Prints CPU
// nanoseconds per 1448-byte segment and Gb/s of one core. A development aid for the hot
// path, next to the side-by-side bench (bench/run.mjs), not a replacement for it.
//
// Usage: node bench/micro/tcp-to-guest.mjs [--mb 2000] [--mtu 1500] [--rounds 5]
//                                         [--offloads] [--dist DIR]
import { join } from "node:path";
import { distDir, guestLink, numberOption } from "./guest-link.mjs";

const dist = distDir();
const { UserStack } = await import(join(dist, "stack/user-stack.js"));
const { decodeTcp } = await import(join(dist, "stack/wire/tcp.js"));
const { decodeIpv4 } = await import(join(dist, "stack/wire/ipv4.js"));
const { decodeEthernet } = await import(join(dist, "stack/wire/ethernet.js"));
const framing = await import(join(dist, "ports/length-prefixed-frames.js"));
// what StreamPort writes (older builds copied every frame with encodeFrames)
const encode = framing.encodeFrameChunks ?? ((frames) => [framing.encodeFrames(frames)]);

const argv = process.argv.slice(2);
const mb = numberOption("mb", 2000);
const mtu = numberOption("mtu", 1500);
const rounds = numberOption("rounds", 5);
const offloads = argv.includes("--offloads");
const offloadEncoder = offloads
  ? new (await import(join(dist, "ports/stream-offloads.js"))).OffloadedFrameEncoder()
  : undefined;

const { guest, remote, config, guestFrame } = await guestLink(dist, mtu);

function once(totalBytes) {
  let conn;
  let wireBytes = 0;
  let segments = 0;
  const chunk = Buffer.alloc(256 * 1024, 0x5a);
  let left = totalBytes;
  const out = [];
  const stack = new UserStack(
    config,
    { now: () => performance.now() },
    {
      emit: (frames) => {
        for (const f of frames) out.push(f);
      },
      tcp: (c, ev) => {
        if (ev.type === "connect-request") c.accept();
        else if (ev.type === "established") conn = c;
        else if (ev.type === "writable") pump();
      },
    },
  );
  if (offloads) stack.setOffloads(true);
  const pump = () => {
    while (conn && left > 0) {
      const n = conn.write(left >= chunk.length ? chunk : chunk.subarray(0, left));
      left -= n;
      if (n < chunk.length) break;
    }
  };
  // the guest: SYN with MSS, SACK, timestamps and window scale 7
  let ts = 1;
  let seqG = 1000;
  const syn = {
    srcPort: 40000,
    dstPort: 5201,
    seq: seqG,
    ack: 0,
    flags: 0x02,
    window: 64240,
    urgent: 0,
    payload: Buffer.alloc(0),
    mss: mtu - 40,
    sackPermitted: true,
    tsVal: ts,
    tsEcr: 0,
    windowScale: 7,
  };
  const r0 = stack.input([guestFrame(syn)]);
  const sa = parseSeg(onWire([...r0, ...out.splice(0)])[0]);
  seqG++;
  let rcvNxt = (sa.seq + 1) >>> 0;
  let tsEcr = sa.tsVal;
  // an ACK is a fixed 66-byte frame: only ack, tsVal, tsEcr and the checksum change
  const ackFrame = guestFrame({
    srcPort: 40000,
    dstPort: 5201,
    seq: seqG,
    ack: rcvNxt,
    flags: 0x10,
    window: 24000,
    urgent: 0,
    payload: Buffer.alloc(0),
    tsVal: ts,
    tsEcr,
  });
  const ack = () => {
    const f = Buffer.from(ackFrame);
    f.writeUInt32BE(rcvNxt, 42);
    f.writeUInt32BE(++ts >>> 0, 58);
    f.writeUInt32BE(tsEcr >>> 0, 62);
    f.writeUInt16BE(0, 50);
    // pseudo-header + header words
    let sum = (guest >>> 16) + (guest & 0xffff) + (remote >>> 16) + (remote & 0xffff) + 6 + 32;
    for (let i = 34; i < 66; i += 2) sum += f.readUInt16BE(i);
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
    f.writeUInt16BE(~sum & 0xffff, 50);
    return f;
  };
  stack.input([ack()]);
  pump();
  const t0 = process.cpuUsage();
  const w0 = performance.now();
  let unacked = 0;
  for (let guard = 0; guard < 10_000_000; guard++) {
    let frames = out.splice(0);
    if (frames.length === 0) break;
    frames = onWire(frames, (n) => {
      wireBytes += n;
    });
    const acks = [];
    for (const f of frames) {
      // the guest reads what it needs at fixed offsets (IPv4 without options, NOP NOP TS)
      const len = f.readUInt16BE(16) - 20 - ((f[46] >>> 4) << 2);
      if (len <= 0) continue;
      segments++;
      rcvNxt = (f.readUInt32BE(38) + len) >>> 0;
      tsEcr = f.readUInt32BE(58);
      if (++unacked >= 2) {
        acks.push(ack());
        unacked = 0;
      }
    }
    if (unacked > 0) {
      acks.push(ack());
      unacked = 0;
    }
    for (const f of stack.input(acks)) out.push(f);
  }
  const cpu = process.cpuUsage(t0);
  const wall = performance.now() - w0;
  return { cpuNs: (cpu.user + cpu.system) * 1000, wall, segments, wireBytes, sent: totalBytes - left };
}

/** The frames as QEMU reads them from the stream port (counting the bytes written). */
function onWire(frames, count = () => {}) {
  if (!offloadEncoder) {
    for (const c of encode(frames)) count(c.length);
    return frames;
  }
  // the addon's segments, checksummed
  const wire = offloadEncoder.encode(frames).wire;
  count(wire.length);
  return new framing.LengthPrefixedFrames().push(wire).frames;
}

function parseSeg(frame) {
  const e = decodeEthernet(frame);
  if (!e.ok) return undefined;
  const ip = decodeIpv4(e.value.payload);
  if (!ip.ok) return undefined;
  const t = decodeTcp(ip.value.payload, { src: ip.value.src, dst: ip.value.dst });
  return t.ok ? t.value : undefined;
}

once(64 << 20); // warm-up
const results = [];
for (let i = 0; i < rounds; i++) {
  const r = once(mb << 20);
  results.push(r.cpuNs / r.segments);
  process.stdout.write(
    `round ${i + 1}: ${r.segments} segments, ${(r.cpuNs / r.segments).toFixed(0)} ns/segment (incl. the simulated guest), ` +
      `${((r.sent * 8) / (r.cpuNs / 1e9) / 1e9).toFixed(2)} Gb/s per core\n`,
  );
}
results.sort((a, b) => a - b);
process.stdout.write(
  `median ${results[Math.floor(results.length / 2)].toFixed(0)} ns/segment, best ${results[0].toFixed(0)}\n`,
);
