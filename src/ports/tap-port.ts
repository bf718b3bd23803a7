/**
 * TAP ports: a Linux TAP device as a hub port, so a network namespace (or the host)
 * with the kernel's own TCP/IP stack sits on a usernet hub — `-netdev tap,ifname=` and
 * `usernet slirp4netns`.
 *
 * Theory of operation
 * - Open: the native addon creates the TAP (IFF_TAP | IFF_NO_PI, + IFF_VNET_HDR with offloads) in
 *   this process's network namespace, or inside another one (`netns`: a path such as
 *   /proc/PID/ns/net or /var/run/netns/NAME), joining a user namespace first when
 *   `userns` is given (rootless). The device lives as long as the fd: closing the port
 *   removes it. Addresses, routes, MTU and link state are not set here; whoever asked
 *   for the TAP runs `ip` (the MTU should be the user netdev's `mtu=`).
 * - Receive: an FdPoller reads what the kernel sends out of the TAP in batches (up to
 *   `maxBatch` frames per wake-up) and the hub gets each batch in one call. Frames
 *   shorter than an Ethernet header are dropped ("frame-too-short"). A read error
 *   other than EAGAIN stops reading for good ("read-error") and is reported once to
 *   `onFailure`: it happens when the device is gone (its namespace was destroyed),
 *   which is how a drop-in for slirp4netns learns that its namespace went away.
 * - Send: frames are written one write(2) each, in order, until the kernel says
 *   EAGAIN (its queue, txqueuelen frames, is full). The rest are held in a bounded
 *   queue (`maxQueuedFrames`, default 256) and written when the fd is writable again;
 *   what does not fit in that queue is dropped ("tx-queue-full"), so a namespace that
 *   does not read cannot make usernet grow. A frame the kernel refuses for another
 *   reason (EIO while the link is down) is dropped ("write-error").
 * - Offloads (the default; `offloads: false` gives plain frames): the TAP is opened
 *   with a virtio-net header and offers checksum offload and TSO for IPv4 and IPv6
 *   (TUNSETOFFLOAD TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6), as QEMU's virtio-net does. The kernel then
 *   leaves TCP/UDP checksums partial and sends TCP super frames of up to 64 KiB; each
 *   read frame carries what its header said as an offload mark
 *   (stack/wire/frame-offload.ts), which the stack honours (no checksum work, one
 *   segment per super frame) and the hub resolves for ports that cannot. A frame
 *   under 1 KiB that is not a super frame gets its checksum completed here instead
 *   and goes unmarked: for an ACK or a request that is cheaper than the mark. Marked frames
 *   we send get the matching header (partial checksum, GSO TCPv4 or TCPv6 by the frame's
 *   ethertype, with the MSS), so the
 *   kernel takes one super frame where a wire would need forty segments. Without
 *   offloads every frame is at most the TAP's MTU + 14 bytes and fully checksummed.
 * - Not here: multi-queue TAPs, vhost-net, bridges, persistent devices (TUNSETPERSIST),
 *   QEMU's script=/downscript= helpers (tap-script.ts runs those around the port).
 */
import type { TapNetdevConfig } from "../config.js";
import type { Hub } from "../hub/hub.js";
import { type FrameSink, type Port, PortCounters, type PortStats } from "../hub/port.js";
import type { Logger } from "../log.js";
import {
  closeFd,
  FdPoller,
  type NativeError,
  nativeConstants,
  openTap,
  openTapInNetns,
  setOffloads,
  type TapHandle,
} from "../native/binding.js";
import {
  VnetFlags,
  VnetGso,
  vnetCsumOffsetAt,
  vnetCsumStartAt,
  vnetFlagsAt,
  vnetFrameProblem,
  vnetGsoSizeAt,
  vnetGsoTypeAt,
  vnetHdrBuffer,
  vnetHdrMrgRxbufLength,
} from "../native/vnet-hdr.js";
import { completePartialChecksum, markOffload, offloadOf } from "../stack/wire/frame-offload.js";
import { minFrameLength } from "./length-prefixed-frames.js";
import type { NetdevHandle } from "./netdev-handle.js";

export const defaultTapMaxQueuedFrames = 256;
export const defaultTapMaxBatch = 64;
/** frames read from the TAP at least this long keep their offload mark; shorter ones are completed here */
const markMinBytes = 1024;

export interface TapPortOptions {
  /** the port's name on the hub (the netdev id) */
  name: string;
  /** interface name to create, at most 15 bytes; "" or a "tap%d" pattern lets the kernel pick */
  ifname: string;
  /** create the TAP inside this network namespace (a path); absent = this process's */
  netns?: string | undefined;
  /** join this user namespace first (a path; rootless), only with netns */
  userns?: string | undefined;
  log: Logger;
  /** frames read per wake-up at most (1..4096, default 64) */
  maxBatch?: number;
  /** frames held while the kernel's queue is full before dropping (default 256) */
  maxQueuedFrames?: number;
  /** called once when the device stops working (read error: e.g. its namespace is gone) */
  onFailure?: (err: NativeError) => void;
  /** virtio-net header with checksum offload and TSO (default true) */
  offloads?: boolean;
}

/** The parts of the native addon a TapPort uses; tests give fakes. */
export interface TapNative {
  /** vnetHdrLen: the header before every frame read and written (0: plain frames) */
  open(opts: TapPortOptions): TapHandle & { vnetHdrLen?: 0 | 12 };
  poller(
    fd: number,
    onBatch: (frames: Buffer[]) => void,
    onError: (err: NativeError) => void,
    maxBatch: number,
    vnetHdrLen: 0 | 12,
  ): TapPoller;
}

/** What TapPort needs of an FdPoller. */
export interface TapPoller {
  /** headers[i] (vnet header) goes before frames[i], tails[i] after it; missing header: all zeroes */
  write(
    frames: readonly Buffer[],
    headers?: readonly (Buffer | undefined)[],
    tails?: readonly (Buffer | undefined)[],
  ): number;
  waitWritable(cb: () => void): void;
  close(): void;
  stats(): { writeErrors: number; lastError: string | null };
}

export const nativeTap: TapNative = {
  open(opts) {
    const offloads = opts.offloads ?? true;
    const tapOpts = { vnetHdr: offloads };
    if (opts.userns !== undefined && opts.netns === undefined)
      throw new Error(`${opts.name}: userns= needs netns=`);
    const handle =
      opts.netns !== undefined
        ? openTapInNetns(opts.netns, opts.userns ?? null, opts.ifname, tapOpts)
        : openTap(opts.ifname, tapOpts);
    if (!offloads) return handle;
    const c = nativeConstants();
    try {
      setOffloads(handle.fd, c.TUN_F_CSUM | c.TUN_F_TSO4 | c.TUN_F_TSO6);
    } catch (e) {
      closeFd(handle.fd);
      throw e;
    }
    return { ...handle, vnetHdrLen: vnetHdrMrgRxbufLength };
  },
  poller(fd, onBatch, onError, maxBatch, vnetHdrLen) {
    return new FdPoller(fd, "frames", onBatch, { maxBatch, onError, vnetHdrLen });
  },
};

export class TapPort implements Port {
  readonly kind = "tap";
  readonly name: string;
  /** with a vnet header the port reads and writes offload-marked frames */
  readonly acceptsOffloads: boolean;
  private readonly vnetHdrLen: 0 | 12;
  /** the interface name the kernel gave */
  readonly ifname: string;
  private readonly counters = new PortCounters();
  private readonly log: Logger;
  private readonly poller: TapPoller;
  private readonly maxQueued: number;
  private readonly where: string;
  private readonly onFailure: ((err: NativeError) => void) | undefined;
  /** frames waiting for the fd to become writable, oldest first */
  private queue: Buffer[] = [];
  private waiting = false;
  private failed: NativeError | undefined;
  private sink: FrameSink | undefined;
  private isClosed = false;
  /** kernel-refused writes already folded into the counters */
  private seenWriteErrors = 0;

  /** Opens the TAP; throws (the addon's Error, naming the failed call) when it cannot. */
  static open(options: TapPortOptions, native: TapNative = nativeTap): TapPort {
    const handle = native.open(options);
    return new TapPort(options, handle, native);
  }

  private constructor(
    options: TapPortOptions,
    handle: TapHandle & { vnetHdrLen?: 0 | 12 },
    native: TapNative,
  ) {
    this.name = options.name;
    this.ifname = handle.name;
    this.log = options.log;
    this.maxQueued = options.maxQueuedFrames ?? defaultTapMaxQueuedFrames;
    this.onFailure = options.onFailure;
    this.where =
      options.netns === undefined ? `tap ${handle.name}` : `tap ${handle.name} in ${options.netns}`;
    this.vnetHdrLen = handle.vnetHdrLen ?? 0;
    this.acceptsOffloads = this.vnetHdrLen > 0;
    this.poller = native.poller(
      handle.fd,
      (frames) => this.fromKernel(frames),
      (err) => this.readFailed(err),
      options.maxBatch ?? defaultTapMaxBatch,
      this.vnetHdrLen,
    );
  }

  send(frames: readonly Buffer[]): void {
    if (this.isClosed || this.failed) {
      this.counters.drop(this.isClosed ? "closed" : "device-gone", frames.length);
      return;
    }
    let rest: readonly Buffer[] = frames;
    if (this.queue.length === 0) {
      const n = this.write(frames);
      if (n === frames.length) return;
      rest = frames.slice(n);
    }
    const room = this.maxQueued - this.queue.length;
    if (room < rest.length) {
      this.counters.drop("tx-queue-full", rest.length - Math.max(room, 0));
      rest = rest.slice(0, Math.max(room, 0));
    }
    // the hub's frames are immutable, so holding references is safe
    for (const f of rest) this.queue.push(f);
    this.armWritable();
  }

  setReceiver(sink: FrameSink | undefined): void {
    this.sink = sink;
  }

  stats(): PortStats {
    this.foldWriteErrors();
    return this.counters.snapshot();
  }

  /** frames held for a full kernel queue now */
  queuedFrames(): number {
    return this.queue.length;
  }

  describe(): string {
    if (this.isClosed) return "closed";
    if (this.failed) return `${this.where}: stopped (${this.failed.code ?? this.failed.message})`;
    return this.where;
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.queue = [];
    this.foldWriteErrors();
    this.poller.close();
  }

  private fromKernel(read: Buffer[]): void {
    if (this.isClosed) return;
    const frames = this.vnetHdrLen > 0 ? this.unwrap(read) : read;
    let batch = frames;
    if (frames.some((f) => f.length < minFrameLength)) {
      batch = frames.filter((f) => f.length >= minFrameLength);
      this.counters.drop("frame-too-short", frames.length - batch.length);
    }
    if (batch.length === 0) return;
    this.counters.countRx(batch);
    if (this.sink) this.sink(batch);
    else this.counters.drop("no-receiver", batch.length);
  }

  /** Strips the vnet headers; what they said becomes each frame's offload mark. */
  private unwrap(read: Buffer[]): Buffer[] {
    const frames: Buffer[] = [];
    for (const b of read) {
      // the header is checked and read in place: no records for every frame read
      const bad = vnetFrameProblem(b, vnetHdrMrgRxbufLength);
      if (bad !== undefined) {
        this.counters.drop(bad);
        continue;
      }
      const frame = b.subarray(vnetHdrMrgRxbufLength);
      const flags = vnetFlagsAt(b);
      const gso = vnetGsoTypeAt(b) & ~VnetGso.ecn;
      if (gso !== VnetGso.none && gso !== VnetGso.tcpv4 && gso !== VnetGso.tcpv6) {
        this.counters.drop("vnet-gso-unsupported");
        continue;
      }
      if (gso === VnetGso.none && frame.length < markMinBytes) {
        // A small frame (an ACK, a request) goes on unmarked: summing its few bytes here
        // costs less than a mark (a WeakMap entry the GC must trace) on every one of them.
        // The frame is ours until the hub has it, and other ports get it whole too.
        if (flags & VnetFlags.needsCsum)
          completePartialChecksum(frame, vnetCsumStartAt(b), vnetCsumOffsetAt(b));
      } else if (flags & VnetFlags.needsCsum) {
        markOffload(frame, {
          checksum: "partial",
          csumStart: vnetCsumStartAt(b),
          csumOffset: vnetCsumOffsetAt(b),
          gsoSize: gso === VnetGso.none ? 0 : vnetGsoSizeAt(b),
        });
      } else if (flags & VnetFlags.dataValid) {
        markOffload(frame, { checksum: "valid", csumStart: 0, csumOffset: 0, gsoSize: 0 });
      }
      frames.push(frame);
    }
    return frames;
  }

  /**
   * From each frame's mark, in one pass: its vnet header and its tail (undefined: an
   * ordinary frame; no arrays at all when no frame is marked).
   */
  private offloadArgs(frames: readonly Buffer[]): {
    headers?: (Buffer | undefined)[];
    tails?: (Buffer | undefined)[];
  } {
    let headers: (Buffer | undefined)[] | undefined;
    let tails: (Buffer | undefined)[] | undefined;
    for (let i = 0; i < frames.length; i++) {
      const f = frames[i] as Buffer;
      const o = offloadOf(f);
      if (o === undefined) continue;
      if (o.tail !== undefined) {
        tails ??= new Array<Buffer | undefined>(frames.length);
        tails[i] = o.tail;
      }
      if (o.checksum !== "partial") continue;
      headers ??= new Array<Buffer | undefined>(frames.length);
      headers[i] = vnetHdrBuffer({
        flags: VnetFlags.needsCsum,
        gsoType:
          o.gsoSize === 0 ? VnetGso.none : f[12] === 0x86 && f[13] === 0xdd ? VnetGso.tcpv6 : VnetGso.tcpv4,
        hdrLen: o.gsoSize > 0 ? o.csumStart + tcpHeaderLengthAt(f, o.csumStart) : 0,
        gsoSize: o.gsoSize,
        csumStart: o.csumStart,
        csumOffset: o.csumOffset,
      });
    }
    return { headers, tails };
  }

  private readFailed(err: NativeError): void {
    if (this.failed || this.isClosed) return;
    this.failed = err;
    this.counters.drop("read-error");
    this.log.warn("TAP read failed; the device stops (its namespace may be gone)", {
      port: this.name,
      tap: this.ifname,
      error: `${err.code ?? ""} ${err.message}`.trim(),
    });
    this.dropQueue("device-gone");
    this.onFailure?.(err);
  }

  /** writes what the kernel takes now; returns how many frames were consumed */
  private write(frames: readonly Buffer[]): number {
    if (this.vnetHdrLen === 0) {
      const n = this.poller.write(frames);
      for (let i = 0; i < n; i++) this.counters.countTx(frames[i] as Buffer);
      return n;
    }
    const { headers, tails } = this.offloadArgs(frames);
    const n = this.poller.write(frames, headers, tails);
    for (let i = 0; i < n; i++) {
      this.counters.countTx(frames[i] as Buffer);
      const t = tails?.[i];
      if (t !== undefined) this.counters.txBytes += t.length;
    }
    return n;
  }

  private armWritable(): void {
    if (this.waiting || this.queue.length === 0) return;
    this.waiting = true;
    this.poller.waitWritable(this.flush);
  }

  private readonly flush = (): void => {
    this.waiting = false;
    if (this.isClosed || this.failed) return;
    const n = this.write(this.queue);
    this.queue = n === 0 ? this.queue : this.queue.slice(n);
    this.armWritable();
  };

  private dropQueue(reason: string): void {
    if (this.queue.length > 0) this.counters.drop(reason, this.queue.length);
    this.queue = [];
  }

  private foldWriteErrors(): void {
    const e = this.poller.stats().writeErrors;
    if (e > this.seenWriteErrors) {
      this.counters.drop("write-error", e - this.seenWriteErrors);
      this.seenWriteErrors = e;
    }
  }
}

/**
 * `-netdev tap`: opens the TAP and attaches it to the hub. Throws an Error naming the
 * netdev and the failed call when the TAP cannot be opened (no addon, EPERM, EBUSY).
 */
export function openTapNetdev(
  cfg: TapNetdevConfig,
  hub: Hub,
  log: Logger,
  options: { onFailure?: (err: NativeError) => void; native?: TapNative } = {},
): NetdevHandle {
  const plog = log.child({ netdev: cfg.id });
  let port: TapPort;
  try {
    port = TapPort.open(
      {
        name: cfg.id,
        ifname: cfg.ifname,
        netns: cfg.netns,
        userns: cfg.userns,
        offloads: cfg.offloads,
        log: plog,
        onFailure: options.onFailure,
      },
      options.native,
    );
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    const where = cfg.netns === undefined ? "" : ` in ${cfg.netns}`;
    throw new Error(`-netdev tap,id=${cfg.id}: cannot open TAP "${cfg.ifname}"${where}: ${why}`, {
      cause: e,
    });
  }
  try {
    hub.attach(port);
  } catch (e) {
    port.close();
    throw e;
  }
  let closed = false;
  return {
    id: cfg.id,
    kind: port.kind,
    describe: () => port.describe(),
    ports: () => (closed ? [] : [port]),
    close: async () => {
      if (closed) return;
      closed = true;
      hub.detach(port);
      port.close();
    },
  };
}

/** TCP header length of the segment starting at `at` (0 when the frame is too short). */
function tcpHeaderLengthAt(frame: Buffer, at: number): number {
  return at + 12 < frame.length ? ((frame[at + 12] as number) >>> 4) * 4 : 0;
}
