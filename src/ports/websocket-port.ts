/**
 * A hub port over one WebSocket connection (a browser VM such as v86, or any client
 * of websocket-listener.ts), in the framing the netdev chose (websocket-framing.ts).
 *
 * Theory of operation
 * - Receive: each message is decoded on arrival; its frames go to the hub as one batch.
 *   Malformed input is dropped and counted by reason, never thrown. A qemu stream with
 *   an impossible length is closed (1002, "bad-length"); a message above the
 *   listener's `maxPayload` is refused by `ws` itself, which closes the connection
 *   (1009, counted as "message-too-big").
 * - Transmit: frames handed over during one turn of the event loop are sent at the
 *   end of it (a microtask): raw, one binary message each (uncopied: a server does not
 *   mask); qemu, one message for the batch. Frames shorter than an Ethernet header or
 *   longer than `maxFrameLength` are never sent (a raw client would take them as
 *   frames; a QEMU peer would disconnect).
 * - Backpressure: while `bufferedAmount` (what `ws` and the socket hold, not yet
 *   written) plus the batch being gathered exceeds `maxQueuedBytes` (2 MiB by
 *   default), further frames are dropped and counted ("tx-queue-full"). A browser tab
 *   that stops reading (suspended, debugger paused) costs a bounded amount of memory
 *   and never stalls the hub; the guest's TCP recovers as on any lossy link.
 * - No offload marks (`acceptsOffloads` is unset): the hub hands the port ordinary,
 *   checksummed frames, which is what a browser VM's NIC expects.
 * - No timeouts and no pings: a connection lives until either side closes it, like a
 *   QEMU stream client.
 */
import type { WebSocket } from "ws";
import type { FrameSink, Port, PortStats } from "../hub/port.js";
import { PortCounters } from "../hub/port.js";
import { hostFaults, type Logger } from "../log.js";
import { minFrameLength, qemuMaxFrameLength } from "./length-prefixed-frames.js";
import {
  encodeWebsocketMessages,
  WebsocketFrameDecoder,
  type WebsocketFraming,
} from "./websocket-framing.js";

export const defaultWebsocketMaxQueuedBytes = 2 * 1024 * 1024;

export interface WebsocketPortOptions {
  framing: WebsocketFraming;
  /** user-space write queue bound per connection, bytes */
  maxQueuedBytes?: number;
  /** the largest frame taken or sent (default 69632, QEMU's NET_BUFSIZE) */
  maxFrameLength?: number;
}

/** why a connection ended: "closed" (peer or us), "bad-length", "message-too-big", or an error code */
export type WebsocketEndReason = string;

const wsOpen = 1;

export class WebsocketPort implements Port {
  private readonly counters = new PortCounters();
  private readonly maxQueuedBytes: number;
  private readonly maxFrameLength: number;
  private sink: FrameSink | undefined;
  private isClosed = false;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private flushQueued = false;

  constructor(
    readonly name: string,
    readonly kind: string,
    private readonly ws: WebSocket,
    private readonly peer: string,
    private readonly options: WebsocketPortOptions,
    log: Logger,
    onEnd: (reason: WebsocketEndReason) => void,
  ) {
    this.maxQueuedBytes = options.maxQueuedBytes ?? defaultWebsocketMaxQueuedBytes;
    this.maxFrameLength = options.maxFrameLength ?? qemuMaxFrameLength;
    const decoder = new WebsocketFrameDecoder(options.framing, { maxFrameLength: this.maxFrameLength });
    let reason: WebsocketEndReason = "closed";
    ws.on("message", (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      const r = decoder.push(asBuffer(data), isBinary);
      for (const [why, n] of Object.entries(r.drops)) this.counters.drop(why, n);
      if (r.frames.length > 0) this.deliver(r.frames);
      if (r.error !== undefined && reason === "closed") {
        reason = r.error;
        hostFaults.report(
          "websocket-port",
          r.error,
          "a peer sent an impossible frame length; disconnected it",
          { port: name, peer, max: this.maxFrameLength },
          log,
        );
        ws.close(1002, "bad frame length");
      }
    });
    ws.on("error", (err: Error & { code?: string }) => {
      // ws reports protocol violations here, then closes the connection itself
      if (err.code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") {
        reason = "message-too-big";
        this.counters.drop("message-too-big");
      } else reason = err.code ?? err.message;
      log.debug("websocket error", { port: name, peer, error: err.message });
    });
    ws.once("close", () => {
      if (decoder.midFrame && reason === "closed") this.counters.drop("peer-gone-mid-frame");
      this.isClosed = true;
      onEnd(reason);
    });
  }

  get closed(): boolean {
    return this.isClosed;
  }

  send(frames: readonly Buffer[]): void {
    if (this.isClosed || this.ws.readyState !== wsOpen) {
      this.counters.drop("not-connected", frames.length);
      return;
    }
    let queued = this.ws.bufferedAmount + this.pendingBytes;
    let accepted = 0;
    for (const f of frames) {
      if (f.length < minFrameLength) this.counters.drop("frame-too-short");
      else if (f.length > this.maxFrameLength) this.counters.drop("frame-too-long");
      else if (queued >= this.maxQueuedBytes) this.counters.drop("tx-queue-full");
      else {
        queued += f.length;
        this.counters.countTx(f);
        this.pending.push(f);
        this.pendingBytes += f.length;
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
    if (this.isClosed || this.ws.readyState !== wsOpen) {
      this.counters.drop("not-connected", frames.length);
      return;
    }
    for (const m of encodeWebsocketMessages(this.options.framing, frames)) {
      this.ws.send(m, { binary: true, compress: false });
    }
  };

  setReceiver(sink: FrameSink | undefined): void {
    this.sink = sink;
  }

  stats(): PortStats {
    return this.counters.snapshot();
  }

  /** bytes waiting in user space to be written to the peer */
  queuedBytes(): number {
    return this.ws.bufferedAmount + this.pendingBytes;
  }

  describe(): string {
    return this.isClosed ? "closed" : `connected to ${this.peer} (${this.options.framing} framing)`;
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    // close() waits for the peer's close frame; a peer that never answers is cut off
    this.ws.close(1001, "going away");
    const ws = this.ws;
    setTimeout(() => ws.terminate(), 2000).unref();
  }

  private deliver(frames: Buffer[]): void {
    this.counters.countRx(frames);
    if (this.sink) this.sink(frames);
    else this.counters.drop("no-receiver", frames.length);
  }
}

/** ws hands binary messages over as a Buffer (binaryType "nodebuffer", the default) */
function asBuffer(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
