/**
 * A hub port over one QEMU stream connection (TCP or unix), in QEMU's framing: a 4-byte
 * big-endian length before every frame (see length-prefixed-frames.ts).
 *
 * Theory of operation
 * - Receive: one socket `data` event is one batch to the hub. Frames are views into
 *   the chunk read. Frames shorter than an Ethernet header are dropped and counted
 *   ("frame-too-short"); a length QEMU would never send (above NET_BUFSIZE) drops the
 *   connection ("bad-length"); so does a peer that goes away inside a frame (closed,
 *   reset, killed: "peer-gone-mid-frame"). Both are counted as drops and as faults
 *   (log.ts HostFaults: where "stream-port", logged once) — the owner decides what
 *   happens next (a listener forgets the client, a connector reconnects); the hub
 *   and its other ports go on.
 * - Transmit: frames sent during one turn of the event loop (the hub may call `send`
 *   once per stack step, many times per socket read) are gathered and written, at the
 *   end of that turn (a microtask), as [len, frame, len, frame, ...] in one writev:
 *   one syscall instead of one per frame. The hub's frames are immutable, so holding
 *   them until then is safe.
 * - Offloads: where the native addon loads, the port takes offload-marked frames
 *   (`acceptsOffloads`), so the user stack sends TCP as super frames with partial
 *   checksums; the addon cuts and checksums them into the write buffer
 *   (stream-offloads.ts). Otherwise the hub hands the port ordinary frames.
 * - Backpressure: while more than `maxQueuedBytes` (2 MiB by default) sit in the
 *   socket's user-space write queue, further frames are dropped and counted
 *   ("tx-queue-full") until it drains. A slow or stopped peer costs a bounded amount
 *   of memory and never stalls the hub. Guest TCP recovers from the drops like from
 *   any lossy link.
 * - Frames a QEMU peer would refuse are never sent: shorter than 14 bytes (QEMU's
 *   socket backend wedges on those) or longer than NET_BUFSIZE (it would disconnect).
 * - The port outlives connections: `useSocket` puts a new one in place, counters carry
 *   on. With no connection, frames are dropped and counted ("not-connected").
 * - Not here: accepting, connecting, reconnecting (stream-listener.ts,
 *   stream-connector.ts).
 */
import type { Socket } from "node:net";
import type { FrameSink, Port, PortStats } from "../hub/port.js";
import { PortCounters } from "../hub/port.js";
import { hostFaults, type Logger } from "../log.js";
import { anyOffloaded, offloadOf } from "../stack/wire/frame-offload.js";
import {
  encodeFrameChunks,
  LengthPrefixedFrames,
  minFrameLength,
  qemuMaxFrameLength,
} from "./length-prefixed-frames.js";
import { OffloadedFrameEncoder, streamOffloadsAvailable } from "./stream-offloads.js";

export const defaultMaxQueuedBytes = 2 * 1024 * 1024;

export interface StreamPortOptions {
  /** user-space write queue bound per connection, bytes */
  maxQueuedBytes?: number;
}

/** why a connection ended: "closed" (peer or us), "bad-length", or a socket error code */
export type StreamEndReason = string;

export class StreamPort implements Port {
  private readonly counters = new PortCounters();
  private readonly maxQueuedBytes: number;
  private sink: FrameSink | undefined;
  private socket: Socket | undefined;
  private peer = "";
  private isClosed = false;
  /** frames accepted this turn, written by `flush` */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushQueued = false;
  /** super frames and partial checksums are welcome: the addon finishes them */
  readonly acceptsOffloads = streamOffloadsAvailable();
  private readonly encoder = new OffloadedFrameEncoder();

  constructor(
    readonly name: string,
    readonly kind: string,
    private readonly log: Logger,
    options: StreamPortOptions = {},
  ) {
    this.maxQueuedBytes = options.maxQueuedBytes ?? defaultMaxQueuedBytes;
  }

  get connected(): boolean {
    return this.socket !== undefined;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /**
   * Carries frames over `socket` (already connected) until it ends; then `onEnd` is
   * called once with the reason. Replaces nothing: the port must be idle.
   */
  useSocket(socket: Socket, peer: string, onEnd: (reason: StreamEndReason) => void): void {
    if (this.isClosed) {
      socket.destroy();
      onEnd("closed");
      return;
    }
    if (this.socket) throw new Error(`port ${this.name} already has a connection`);
    this.socket = socket;
    this.peer = peer;
    socket.setNoDelay(true);
    const decoder = new LengthPrefixedFrames();
    let reason: StreamEndReason = "closed";
    socket.on("data", (chunk: Buffer) => {
      const r = decoder.push(chunk);
      if (r.tooShort > 0) this.counters.drop("frame-too-short", r.tooShort);
      if (r.frames.length > 0) this.deliver(r.frames);
      if (r.error !== undefined && !socket.destroyed) {
        reason = r.error;
        this.counters.drop(r.error);
        hostFaults.report(
          "stream-port",
          r.error,
          "a peer sent an impossible frame length; disconnected it",
          {
            port: this.name,
            peer,
            max: qemuMaxFrameLength,
          },
          this.log,
        );
        socket.destroy();
      }
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      reason = err.code ?? err.message;
      this.log.debug("connection error", { port: this.name, peer, error: reason });
    });
    socket.once("close", () => {
      if (this.socket === socket) this.socket = undefined;
      if (decoder.midFrame && reason !== "bad-length") {
        // the peer died (or was killed) inside a frame: what it sent of it is lost
        this.counters.drop("peer-gone-mid-frame");
        hostFaults.report(
          "stream-port",
          "mid-frame",
          "a peer went away in the middle of a frame",
          {
            port: this.name,
            peer,
            why: reason,
          },
          this.log,
        );
      }
      onEnd(reason);
    });
  }

  send(frames: readonly Buffer[]): void {
    const socket = this.socket;
    if (!socket?.writable) {
      this.counters.drop("not-connected", frames.length);
      return;
    }
    let queued = socket.writableLength + this.pendingBytes;
    let accepted = 0;
    for (const f of frames) {
      // a marked frame's payload may follow it as a tail; a super frame is cut to size
      const o = this.acceptsOffloads ? offloadOf(f) : undefined;
      const size = f.length + (o?.tail?.length ?? 0);
      if (f.length < minFrameLength) {
        this.counters.drop("frame-too-short");
      } else if (size > qemuMaxFrameLength && !(o !== undefined && o.gsoSize > 0)) {
        this.counters.drop("frame-too-long");
      } else if (queued >= this.maxQueuedBytes) {
        this.counters.drop("tx-queue-full");
      } else {
        queued += size + 4;
        this.counters.countTx(f);
        if (size > f.length) this.counters.txBytes += size - f.length;
        this.pending.push(f);
        this.pendingBytes += size + 4;
        accepted++;
      }
    }
    if (accepted > 0 && !this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushQueued = false;
    const frames = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    if (frames.length === 0) return;
    const socket = this.socket;
    if (!socket?.writable) {
      this.counters.drop("not-connected", frames.length);
      return;
    }
    if (this.acceptsOffloads && anyOffloaded(frames)) {
      const e = this.encoder.encode(frames);
      socket.write(e.wire, e.done);
      // Nothing left in user space: the kernel has the bytes and the encoder may write
      // over them; otherwise the socket holds them until the write is done.
      if (socket.writableLength > 0) e.retire();
      return;
    }
    const chunks = encodeFrameChunks(frames);
    if (chunks.length === 1) {
      socket.write(chunks[0] as Buffer);
      return;
    }
    socket.cork(); // one writev for all chunks
    for (const c of chunks) socket.write(c);
    socket.uncork();
  };

  setReceiver(sink: FrameSink | undefined): void {
    this.sink = sink;
  }

  stats(): PortStats {
    return this.counters.snapshot();
  }

  /** bytes waiting in user space to be written to the peer */
  queuedBytes(): number {
    return this.socket?.writableLength ?? 0;
  }

  describe(): string {
    if (this.isClosed) return "closed";
    return this.socket ? `connected to ${this.peer}` : "not connected";
  }

  /** Drops the current connection, if any; the port stays usable. */
  disconnect(): void {
    this.socket?.destroy();
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.socket?.destroy();
  }

  private deliver(frames: Buffer[]): void {
    this.counters.countRx(frames);
    if (this.sink) this.sink(frames);
    else this.counters.drop("no-receiver", frames.length);
  }
}
