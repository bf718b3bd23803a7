/**
 * Cuts an open file into TFTP DATA blocks, in octet or netascii form.
 *
 * Theory of operation
 * - Blocks are numbered from 1 without wrapping (the server wraps to 16 bits on the
 *   wire). `blocks(first, count)` returns up to `count` consecutive blocks starting at
 *   `first`, reading the file once for all of them, and stops after the final block:
 *   the first one shorter than the block size (an empty one when the data ends on a
 *   block boundary). The caller only ever asks for blocks from the oldest one still
 *   unacknowledged onwards, and says so with `release(before)`.
 * - octet: block n is bytes [(n-1)·size, n·size) of the file, no state kept. Reads stop
 *   at the size the file had when it was opened; a file that shrinks meanwhile ends
 *   early (a short block), one that grows is cut at the old size.
 * - netascii (RFC 764 as TFTP uses it): LF becomes CR LF and CR becomes CR NUL, on the
 *   fly. The converted stream is longer than the file, so where block n starts in the
 *   file is only known after converting what comes before: a checkpoint (file offset,
 *   plus the second byte of a pair split across a block boundary) is kept for every
 *   block not yet released, which is at most a window's worth. Each input byte gives
 *   at least one output byte, so reading count·size input bytes always fills `count`
 *   blocks unless the file ends.
 * Not done: conversion of CR LF already in the file (it becomes CR NUL CR LF, as
 *   with tftp-hpa), caching of block contents across retransmissions (the file is
 *   read again; the OS page cache makes that cheap and it bounds our memory).
 */
/** An open file: its size when opened, positioned reads (short only at the end). */
export interface TftpFile {
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
  close(): void;
}

export interface BlockSource {
  readonly blockSize: number;
  blocks(first: number, count: number): Promise<Buffer[]>;
  /** Blocks before `before` will not be asked for again. */
  release(before: number): void;
}

const CR = 0x0d;
const LF = 0x0a;

/** Reads [offset, offset + length) clipped to the opened size; short at the end. */
async function readClipped(file: TftpFile, offset: number, length: number): Promise<Buffer> {
  const n = Math.max(0, Math.min(length, file.size - offset));
  if (n === 0) return Buffer.alloc(0);
  const b = await file.read(offset, n);
  return b.length > n ? b.subarray(0, n) : b;
}

export class OctetBlocks implements BlockSource {
  constructor(
    private readonly file: TftpFile,
    readonly blockSize: number,
  ) {}

  async blocks(first: number, count: number): Promise<Buffer[]> {
    const bs = this.blockSize;
    const start = (first - 1) * bs;
    if (start > this.file.size) return [];
    const data = await readClipped(this.file, start, count * bs);
    const out: Buffer[] = [];
    for (let at = 0; at < data.length && out.length < count; at += bs) {
      out.push(data.subarray(at, Math.min(at + bs, data.length)));
    }
    const last = out[out.length - 1];
    const ended = data.length < count * bs;
    if (ended && (last === undefined || last.length === bs) && out.length < count) out.push(Buffer.alloc(0));
    return out;
  }

  release(): void {}
}

interface Checkpoint {
  /** file offset of the next input byte */
  offset: number;
  /** second byte of a CR LF / CR NUL pair cut at the previous block's end, or -1 */
  pending: number;
}

export class NetasciiBlocks implements BlockSource {
  private readonly checkpoints = new Map<number, Checkpoint>([[1, { offset: 0, pending: -1 }]]);

  constructor(
    private readonly file: TftpFile,
    readonly blockSize: number,
  ) {}

  async blocks(first: number, count: number): Promise<Buffer[]> {
    const cp = this.checkpoints.get(first);
    if (cp === undefined) return [];
    const bs = this.blockSize;
    const input = await readClipped(this.file, cp.offset, count * bs);
    const out: Buffer[] = [];
    let i = 0;
    let pending = cp.pending;
    while (out.length < count) {
      const block = Buffer.allocUnsafe(bs);
      let n = 0;
      if (pending >= 0) {
        block[n++] = pending;
        pending = -1;
      }
      while (n < bs && i < input.length) {
        const c = input[i++] as number;
        if (c === LF || c === CR) {
          block[n++] = CR;
          const second = c === LF ? LF : 0;
          if (n < bs) block[n++] = second;
          else pending = second;
        } else {
          block[n++] = c;
        }
      }
      out.push(block.subarray(0, n));
      this.checkpoints.set(first + out.length, { offset: cp.offset + i, pending });
      if (n < bs) break;
    }
    return out;
  }

  release(before: number): void {
    for (const k of this.checkpoints.keys()) if (k < before) this.checkpoints.delete(k);
  }
}
