/**
 * Offload marks: work a frame's producer left to its consumer, the way a virtio-net
 * header says it (src/native/vnet-hdr.ts), and payload kept out of the frame's Buffer. A TAP with offloads hands us frames whose
 * TCP/UDP checksum holds only the pseudo-header sum, and TCP "super frames" of up to
 * 64 KiB that stand for many MSS-sized segments; the stack answers in kind towards such
 * a TAP. The mark travels beside the frame (a WeakMap keyed by the Buffer), so the hub
 * contract (immutable Buffers in batches) is unchanged and unmarked frames cost nothing.
 *
 * A consumer that understands marks (the user stack, an offloading TAP) reads them with
 * `offloadOf`. For every other consumer (QEMU sockets, captures) the hub turns marked
 * frames into ordinary ones with `resolveOffloads`: tails joined, checksums completed, super frames
 * split into segments as a NIC's TSO would (sequence numbers advanced, FIN and PSH on the
 * last segment only, CWR on the first, IPv4 ids counted up; IPv6 payload lengths
 * set, with the IPv6 pseudo-header). Marked frames are never
 * modified in place: other ports may hold the same Buffer.
 */
import { internetChecksum, pseudoHeader6, pseudoHeaderSum } from "./checksum.js";
import { EtherType } from "./ethernet.js";
import { IpProto } from "./ipv4.js";
import { ipv6HeaderLength } from "./ipv6.js";
import { TcpFlag, tcpChecksumOffset } from "./tcp.js";

export interface FrameOffload {
  /**
   * "partial": the L4 checksum field (at csumStart + csumOffset) holds only the
   * pseudo-header sum, the rest is left to the consumer (who may trust it: the frame
   * never crossed a wire). "valid": the producer verified the checksums.
   */
  readonly checksum: "partial" | "valid";
  /** offset in the frame where checksumming starts (the L4 header); 0 for "valid" */
  readonly csumStart: number;
  /** offset from csumStart of the checksum field: 16 for TCP, 6 for UDP */
  readonly csumOffset: number;
  /** a TCP super frame (IPv4 or IPv6): its payload splits into segments of this size (0: none) */
  readonly gsoSize: number;
  /**
   * Payload bytes that follow the frame: the Buffer then holds only the headers (whose
   * lengths count the tail), and the payload stays where it was, never copied into a
   * frame-sized Buffer (a TAP writes both with one writev).
   */
  readonly tail?: Buffer;
}

const marks = new WeakMap<Buffer, FrameOffload>();

/** Attaches `o` to `frame`; returns the frame. */
export function markOffload(frame: Buffer, o: FrameOffload): Buffer {
  marks.set(frame, o);
  return frame;
}

export function offloadOf(frame: Buffer): FrameOffload | undefined {
  return marks.get(frame);
}

export function anyOffloaded(frames: readonly Buffer[]): boolean {
  for (const f of frames) if (marks.has(f)) return true;
  return false;
}

/** Ordinary frames for a consumer that knows no marks; unmarked frames pass through. */
export function resolveOffloads(frames: readonly Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  for (const frame of frames) {
    const o = marks.get(frame);
    if (o === undefined || (o.checksum === "valid" && o.gsoSize === 0 && o.tail === undefined)) {
      out.push(frame);
      continue;
    }
    const f = joinTail(frame);
    if (o.gsoSize > 0) splitSuperFrame(f, o, out);
    else out.push(f === frame ? completed(Buffer.from(f), o) : completed(f, o));
  }
  return out;
}

/** The frame in one Buffer: itself, or a new Buffer with its tail joined. */
export function joinTail(frame: Buffer): Buffer {
  const tail = marks.get(frame)?.tail;
  return tail === undefined ? frame : Buffer.concat([frame, tail]);
}

/**
 * Completes a partial (NEEDS_CSUM) checksum in place: the field at csumStart +
 * csumOffset holds the pseudo-header sum; the result is the complement of the
 * ones' complement sum from csumStart to the end of the frame, field included.
 * For a GSO super frame this is the checksum of the unsplit whole, only meaningful
 * if it is delivered as one segment. False when the offsets lie outside the frame.
 */
export function completePartialChecksum(frame: Buffer, csumStart: number, csumOffset: number): boolean {
  const at = csumStart + csumOffset;
  if (at + 2 > frame.length || csumStart > frame.length) return false;
  let c = internetChecksum(frame, csumStart, frame.length);
  // UDP reserves 0 for "no checksum"; TCP accepts either form of zero.
  if (c === 0) c = 0xffff;
  frame.writeUInt16BE(c, at);
  return true;
}

/** `copy` (a Buffer of the caller's own) with its partial checksum completed. */
function completed(copy: Buffer, o: FrameOffload): Buffer {
  if (o.checksum === "partial") completePartialChecksum(copy, o.csumStart, o.csumOffset);
  return copy;
}

/** TSO in software: one frame per gsoSize bytes of TCP payload, each fully checksummed. */
function splitSuperFrame(f: Buffer, o: FrameOffload, out: Buffer[]): void {
  const l2 = f.length >= 18 && f.readUInt16BE(12) === EtherType.vlan ? 18 : 14;
  if (f.readUInt16BE(l2 - 2) === EtherType.ipv6) return splitSuperFrame6(f, o, l2, out);
  if (f.length < l2 + 20) return;
  const ihl = ((f[l2] as number) & 0x0f) * 4;
  const l4 = l2 + ihl;
  if (f[l2 + 9] !== IpProto.tcp || f.length < l4 + 20) {
    out.push(completed(Buffer.from(f), o)); // not TCP: nothing to split
    return;
  }
  const thl = ((f[l4 + 12] as number) >>> 4) * 4;
  const hdr = l4 + thl;
  const ipEnd = Math.min(f.length, l2 + f.readUInt16BE(l2 + 2));
  const payload = f.subarray(Math.min(hdr, ipEnd), ipEnd);
  const mss = Math.max(1, o.gsoSize);
  const src = f.readUInt32BE(l2 + 12);
  const dst = f.readUInt32BE(l2 + 16);
  const id0 = f.readUInt16BE(l2 + 4);
  const seq0 = f.readUInt32BE(l4 + 4);
  const flags0 = f[l4 + 13] as number;
  const count = Math.max(1, Math.ceil(payload.length / mss));
  for (let i = 0; i < count; i++) {
    const part = payload.subarray(i * mss, Math.min(payload.length, (i + 1) * mss));
    const seg = Buffer.allocUnsafe(hdr + part.length);
    f.copy(seg, 0, 0, hdr);
    part.copy(seg, hdr);
    seg.writeUInt16BE(ihl + thl + part.length, l2 + 2);
    seg.writeUInt16BE((id0 + i) & 0xffff, l2 + 4);
    seg.writeUInt16BE(0, l2 + 10);
    seg.writeUInt16BE(internetChecksum(seg, l2, l4), l2 + 10);
    seg.writeUInt32BE((seq0 + i * mss) >>> 0, l4 + 4);
    let flags = flags0;
    if (i < count - 1) flags &= ~(TcpFlag.fin | TcpFlag.psh);
    if (i > 0) flags &= ~TcpFlag.cwr;
    seg[l4 + 13] = flags;
    seg.writeUInt16BE(0, l4 + tcpChecksumOffset);
    const pseudo = pseudoHeaderSum(src, dst, IpProto.tcp, thl + part.length);
    seg.writeUInt16BE(internetChecksum(seg, l4, seg.length, pseudo), l4 + tcpChecksumOffset);
    out.push(seg);
  }
}

/**
 * `splitSuperFrame` for TCP over IPv6: the TCP header right after the 40-byte IPv6
 * header (what the stack and a TAP's TSO produce; anything else is passed on whole,
 * its checksum completed).
 */
function splitSuperFrame6(f: Buffer, o: FrameOffload, l2: number, out: Buffer[]): void {
  const l4 = l2 + ipv6HeaderLength;
  if (f.length < l4 + 20 || f[l2 + 6] !== IpProto.tcp) {
    out.push(completed(Buffer.from(f), o));
    return;
  }
  const thl = ((f[l4 + 12] as number) >>> 4) * 4;
  const hdr = l4 + thl;
  const ipEnd = Math.min(f.length, l4 + f.readUInt16BE(l2 + 4));
  const payload = f.subarray(Math.min(hdr, ipEnd), ipEnd);
  const mss = Math.max(1, o.gsoSize);
  const ph = pseudoHeader6(f, f, l2 + 8, l2 + 24);
  const seq0 = f.readUInt32BE(l4 + 4);
  const flags0 = f[l4 + 13] as number;
  const count = Math.max(1, Math.ceil(payload.length / mss));
  for (let i = 0; i < count; i++) {
    const part = payload.subarray(i * mss, Math.min(payload.length, (i + 1) * mss));
    const seg = Buffer.allocUnsafe(hdr + part.length);
    f.copy(seg, 0, 0, hdr);
    part.copy(seg, hdr);
    seg.writeUInt16BE(thl + part.length, l2 + 4);
    seg.writeUInt32BE((seq0 + i * mss) >>> 0, l4 + 4);
    let flags = flags0;
    if (i < count - 1) flags &= ~(TcpFlag.fin | TcpFlag.psh);
    if (i > 0) flags &= ~TcpFlag.cwr;
    seg[l4 + 13] = flags;
    seg.writeUInt16BE(0, l4 + tcpChecksumOffset);
    const pseudo = pseudoHeaderSum(ph.src, ph.dst, IpProto.tcp, thl + part.length);
    seg.writeUInt16BE(internetChecksum(seg, l4, seg.length, pseudo), l4 + tcpChecksumOffset);
    out.push(seg);
  }
}
