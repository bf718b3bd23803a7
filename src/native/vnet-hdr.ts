/**
 * The virtio-net header that a TAP opened with IFF_VNET_HDR puts before every frame
 * (struct virtio_net_hdr, 10 bytes, or virtio_net_hdr_mrg_rxbuf, 12 bytes, as set with
 * TUNSETVNETHDRSZ; usernet uses 12, like QEMU's virtio-net):
 *
 *   0  flags        u8   NEEDS_CSUM (1): the L4 checksum is partial, see below;
 *                        DATA_VALID (2): checksum already verified (only on read)
 *   1  gso_type     u8   NONE 0, TCPV4 1, UDP 3, TCPV6 4; | ECN 0x80 (CWR seen)
 *   2  hdr_len      u16  length of Ethernet + IP + L4 headers (a hint)
 *   4  gso_size     u16  the MSS: payload bytes per segment once split
 *   6  csum_start   u16  offset (from the Ethernet header) where checksumming starts
 *   8  csum_offset  u16  where, from csum_start, to store the result (16 TCP, 6 UDP)
 *  10  num_buffers  u16  12-byte form only; the kernel neither reads nor writes it
 *
 * Fields are little-endian: what the kernel uses on little-endian hosts (x86, arm64)
 * and for virtio 1.0. (A big-endian host would need TUNSETVNETLE; not supported.)
 *
 * What the kernel gives on read (frames it sends out of the TAP):
 *   - plain frames: all zeroes (or DATA_VALID);
 *   - with TUN_F_CSUM offered (setOffloads): NEEDS_CSUM frames whose checksum field
 *     holds only the pseudo-header sum; the reader completes it (completePartialChecksum
 *     in stack/wire/frame-offload.ts) or trusts it, since the frame never crossed a wire;
 *   - with TUN_F_TSO4/6 offered: GSO "super frames" up to 64 KiB of IP with gso_type
 *     TCPV4/TCPV6 and gso_size = MSS, always with NEEDS_CSUM. The IPv4 total length
 *     covers the whole super frame; splitting into MSS-sized segments is the reader's
 *     job (or the stack takes the data as one big segment).
 * What it expects on write (frames we inject): a header of the same size; zeroes
 * for an ordinary, fully checksummed frame; NEEDS_CSUM with csum_start/csum_offset
 * and a pseudo-header sum in the field lets the kernel treat the checksum as
 * partial (local delivery then trusts it); GSO types let us write one super frame
 * that the kernel segments (or delivers as is) — accepted whatever offloads were set.
 *
 * Pure functions, no I/O; the native poller hands over header and frame in one Buffer.
 */
import { fail, ok, type Result } from "../stack/wire/result.js";

export const vnetHdrLength = 10;
export const vnetHdrMrgRxbufLength = 12;
export type VnetHdrLength = typeof vnetHdrLength | typeof vnetHdrMrgRxbufLength;

export const VnetFlags = { needsCsum: 1, dataValid: 2 } as const;
export const VnetGso = { none: 0, tcpv4: 1, udp: 3, tcpv6: 4, ecn: 0x80 } as const;

const F = {
  flags: 0,
  gsoType: 1,
  hdrLen: 2,
  gsoSize: 4,
  csumStart: 6,
  csumOffset: 8,
  numBuffers: 10,
} as const;

export interface VnetHdr {
  flags: number;
  /** VnetGso value, with VnetGso.ecn or-ed in when set */
  gsoType: number;
  hdrLen: number;
  gsoSize: number;
  csumStart: number;
  csumOffset: number;
}

export const noOffloadHdr: Readonly<VnetHdr> = Object.freeze({
  flags: 0,
  gsoType: VnetGso.none,
  hdrLen: 0,
  gsoSize: 0,
  csumStart: 0,
  csumOffset: 0,
});

const knownFlags = VnetFlags.needsCsum | VnetFlags.dataValid;
const knownGso = new Set<number>([VnetGso.none, VnetGso.tcpv4, VnetGso.udp, VnetGso.tcpv6]);

/** Reads the header at the start of `b` (10 or 12 bytes; num_buffers is ignored). */
export function decodeVnetHdr(b: Buffer, length: VnetHdrLength = vnetHdrMrgRxbufLength): Result<VnetHdr> {
  if (b.length < length) return fail("vnet-hdr-short");
  const flags = b[F.flags] as number;
  const gsoType = b[F.gsoType] as number;
  if ((flags & ~knownFlags) !== 0) return fail("vnet-hdr-bad-flags");
  if (!knownGso.has(gsoType & ~VnetGso.ecn)) return fail("vnet-hdr-bad-gso-type");
  const h: VnetHdr = {
    flags,
    gsoType,
    hdrLen: b.readUInt16LE(F.hdrLen),
    gsoSize: b.readUInt16LE(F.gsoSize),
    csumStart: b.readUInt16LE(F.csumStart),
    csumOffset: b.readUInt16LE(F.csumOffset),
  };
  if ((gsoType & ~VnetGso.ecn) !== VnetGso.none && h.gsoSize === 0) return fail("vnet-hdr-gso-without-size");
  return ok(h);
}

/** Writes the header; the 12-byte form gets num_buffers 0. Returns bytes written. */
export function encodeVnetHdr(
  h: VnetHdr,
  out: Buffer,
  at = 0,
  length: VnetHdrLength = vnetHdrMrgRxbufLength,
): number {
  out[at + F.flags] = h.flags;
  out[at + F.gsoType] = h.gsoType;
  out.writeUInt16LE(h.hdrLen, at + F.hdrLen);
  out.writeUInt16LE(h.gsoSize, at + F.gsoSize);
  out.writeUInt16LE(h.csumStart, at + F.csumStart);
  out.writeUInt16LE(h.csumOffset, at + F.csumOffset);
  if (length === vnetHdrMrgRxbufLength) out.writeUInt16LE(0, at + F.numBuffers);
  return length;
}

/** A fresh header Buffer, for FdPoller.write()'s `headers`. */
export function vnetHdrBuffer(h: VnetHdr, length: VnetHdrLength = vnetHdrMrgRxbufLength): Buffer {
  // from Node's shared pool: one small allocation per header would each be an ArrayBuffer
  const b = Buffer.allocUnsafe(length);
  encodeVnetHdr(h, b, 0, length);
  return b;
}

export interface VnetFrame {
  hdr: VnetHdr;
  /** a view into the read Buffer, no copy */
  frame: Buffer;
}

/**
 * Splits what the poller read (header + frame) and checks the header against the
 * frame: a partial checksum must lie inside it.
 */
export function splitVnetFrame(b: Buffer, length: VnetHdrLength = vnetHdrMrgRxbufLength): Result<VnetFrame> {
  const bad = vnetFrameProblem(b, length);
  if (bad !== undefined) return fail(bad);
  const h = decodeVnetHdr(b, length);
  return h.ok ? ok({ hdr: h.value, frame: b.subarray(length) }) : h;
}

/**
 * What `splitVnetFrame` would fail with (undefined: nothing), without allocating: a
 * TAP reader's hot path checks every frame with it and then reads the few fields it
 * needs in place (`vnetFlagsAt` and the like), rather than a record per frame.
 */
export function vnetFrameProblem(
  b: Buffer,
  length: VnetHdrLength = vnetHdrMrgRxbufLength,
): string | undefined {
  if (b.length < length) return "vnet-hdr-short";
  const flags = b[F.flags] as number;
  const gsoType = b[F.gsoType] as number;
  if ((flags & ~knownFlags) !== 0) return "vnet-hdr-bad-flags";
  if (!knownGso.has(gsoType & ~VnetGso.ecn)) return "vnet-hdr-bad-gso-type";
  if ((gsoType & ~VnetGso.ecn) !== VnetGso.none && u16le(b, F.gsoSize) === 0)
    return "vnet-hdr-gso-without-size";
  if (
    (flags & VnetFlags.needsCsum) !== 0 &&
    u16le(b, F.csumStart) + u16le(b, F.csumOffset) + 2 > b.length - length
  )
    return "vnet-hdr-csum-outside-frame";
  return undefined;
}

/** The header's fields, read in place from a buffer `vnetFrameProblem` passed. */
export const vnetFlagsAt = (b: Buffer): number => b[F.flags] as number;
export const vnetGsoTypeAt = (b: Buffer): number => b[F.gsoType] as number;
export const vnetGsoSizeAt = (b: Buffer): number => u16le(b, F.gsoSize);
export const vnetCsumStartAt = (b: Buffer): number => u16le(b, F.csumStart);
export const vnetCsumOffsetAt = (b: Buffer): number => u16le(b, F.csumOffset);

function u16le(b: Buffer, i: number): number {
  return (b[i] as number) | ((b[i + 1] as number) << 8);
}
