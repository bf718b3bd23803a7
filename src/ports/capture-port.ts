/**
 * A capture: a passive hub port that writes every frame the hub sends it to a byte
 * stream as a pcap file (src/ports/pcap.ts), e.g. an HTTP response.
 *
 * Theory of operation
 * - The pcap file header goes out when the port is made; each frame becomes one record
 *   ([16-byte header, the frame itself], no copy: frames are immutable once handed to a
 *   port). A capture sees what the hub floods, so it sees every other port's traffic.
 * - It never sends: nothing a capture does reaches the hub or the guests.
 * - Bounded: when the sink already holds `maxQueuedBytes` not yet flushed (a slow
 *   reader), frames are dropped and counted ("capture-queue-full") rather than queued;
 *   the network never waits for a capture.
 * - It ends (once, `onEnd(reason)`) after `count` frames ("count"), after `durationMs`
 *   ("time"), when the sink closes ("sink-closed", the client went away), or on
 *   `close()` ("closed"). Ending ends the sink; detaching from the hub is the owner's
 *   job, done in `onEnd`.
 * Not done: filters (capture everything, filter with tshark), snap lengths, pcapng.
 */
import { type FrameSink, type Port, PortCounters, type PortStats } from "../hub/port.js";
import { pcapFileHeader, pcapRecord } from "./pcap.js";

/** The part of a node Writable a capture needs. */
export interface CaptureSink {
  write(chunk: Buffer): boolean;
  end(): void;
  readonly writableLength: number;
  once(event: "close", listener: () => void): unknown;
  off(event: "close", listener: () => void): unknown;
}

export type CaptureEnd = "count" | "time" | "sink-closed" | "closed";

export interface CapturePortOptions {
  name: string;
  sink: CaptureSink;
  /** stop after this many frames */
  count?: number;
  /** stop after this long */
  durationMs?: number;
  /** unflushed bytes in the sink beyond which frames are dropped (default 4 MiB) */
  maxQueuedBytes?: number;
  /** microseconds since the Unix epoch, for record timestamps */
  nowMicros?: () => number;
  onEnd?: (reason: CaptureEnd) => void;
}

const wallMicros = () => Math.floor((performance.timeOrigin + performance.now()) * 1000);

export class CapturePort implements Port {
  readonly kind = "capture";
  readonly name: string;
  private readonly counters = new PortCounters();
  private readonly sink: CaptureSink;
  private readonly maxQueuedBytes: number;
  private readonly nowMicros: () => number;
  private readonly remaining: { frames: number };
  private readonly timer: NodeJS.Timeout | undefined;
  private endedWith: CaptureEnd | undefined;
  private readonly onSinkClose = () => this.finish("sink-closed");

  constructor(private readonly options: CapturePortOptions) {
    this.name = options.name;
    this.sink = options.sink;
    this.maxQueuedBytes = options.maxQueuedBytes ?? 4 * 1024 * 1024;
    this.nowMicros = options.nowMicros ?? wallMicros;
    this.remaining = { frames: options.count ?? Number.POSITIVE_INFINITY };
    this.sink.once("close", this.onSinkClose);
    this.sink.write(pcapFileHeader());
    if (options.durationMs !== undefined) {
      this.timer = setTimeout(() => this.finish("time"), options.durationMs);
      this.timer.unref();
    }
  }

  /** Why the capture ended; undefined while it runs. */
  get ended(): CaptureEnd | undefined {
    return this.endedWith;
  }

  send(frames: readonly Buffer[]): void {
    if (this.endedWith !== undefined) return;
    const ts = this.nowMicros();
    for (const frame of frames) {
      if (this.remaining.frames <= 0) break;
      if (this.sink.writableLength >= this.maxQueuedBytes) {
        this.counters.drop("capture-queue-full");
        continue;
      }
      const [header, data] = pcapRecord(frame, ts) as [Buffer, Buffer];
      this.sink.write(header);
      this.sink.write(data);
      this.counters.countTx(frame);
      this.remaining.frames--;
    }
    if (this.remaining.frames <= 0) this.finish("count");
  }

  /** A capture never sends, so it has no use for the hub's receiver. */
  setReceiver(_sink: FrameSink | undefined): void {}

  stats(): PortStats {
    return this.counters.snapshot();
  }

  describe(): string {
    const s = this.counters.snapshot();
    const dropped = Object.values(s.drops).reduce((a, b) => a + b, 0);
    return `pcap capture, ${s.txFrames} frames written, ${dropped} dropped${this.endedWith ? `, ended (${this.endedWith})` : ""}`;
  }

  close(): void {
    this.finish("closed");
  }

  private finish(reason: CaptureEnd): void {
    if (this.endedWith !== undefined) return;
    this.endedWith = reason;
    if (this.timer) clearTimeout(this.timer);
    this.sink.off("close", this.onSinkClose);
    if (reason !== "sink-closed") this.sink.end();
    this.options.onEnd?.(reason);
  }
}
