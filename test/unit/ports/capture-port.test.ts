import { EventEmitter } from "node:events";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type CaptureEnd, CapturePort, type CaptureSink } from "../../../src/ports/capture-port.js";
import { pcapFileHeaderLength, readPcap } from "../../../src/ports/pcap.js";

/** A sink that keeps what it is given and reports a backlog the test sets. */
class MemorySink extends EventEmitter implements CaptureSink {
  chunks: Buffer[] = [];
  ended = false;
  writableLength = 0;
  write(chunk: Buffer): boolean {
    this.chunks.push(chunk);
    return true;
  }
  end(): void {
    this.ended = true;
  }
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

const frame = (n: number, fill: number) => Buffer.alloc(n, fill);

afterEach(() => {
  vi.useRealTimers();
});

describe("CapturePort", () => {
  it("writes a pcap header, then one record per frame, with the given timestamps", () => {
    const sink = new MemorySink();
    const port = new CapturePort({ name: "cap", sink, nowMicros: () => 1_700_000_000_123_456 });
    expect(sink.bytes()).toHaveLength(pcapFileHeaderLength);
    const frames = [frame(60, 1), frame(1514, 2)];
    port.send(frames);
    const pcap = readPcap(sink.bytes());
    expect(pcap.ok).toBe(true);
    if (!pcap.ok) return;
    expect(pcap.value.map((p) => p.data)).toEqual(frames);
    expect(pcap.value[0]).toMatchObject({ tsSec: 1_700_000_000, tsUsec: 123_456, origLen: 60 });
    expect(port.stats()).toMatchObject({ txFrames: 2, txBytes: 1574, rxFrames: 0, drops: {} });
    expect(port.kind).toBe("capture");
  });

  it("drops and counts frames while the sink is backed up, and never queues them", () => {
    const sink = new MemorySink();
    const port = new CapturePort({ name: "cap", sink, maxQueuedBytes: 1000 });
    sink.writableLength = 1000;
    port.send([frame(60, 1), frame(60, 2)]);
    sink.writableLength = 999;
    port.send([frame(60, 3)]);
    expect(port.stats().drops).toEqual({ "capture-queue-full": 2 });
    const pcap = readPcap(sink.bytes());
    expect(pcap.ok && pcap.value.map((p) => p.data[0])).toEqual([3]);
    expect(port.describe()).toMatch(/1 frames written, 2 dropped/);
  });

  it("ends after count frames, mid-batch, once", () => {
    const sink = new MemorySink();
    const ends: CaptureEnd[] = [];
    const port = new CapturePort({ name: "cap", sink, count: 2, onEnd: (r) => ends.push(r) });
    port.send([frame(60, 1), frame(60, 2), frame(60, 3)]);
    port.send([frame(60, 4)]);
    port.close();
    expect(ends).toEqual(["count"]);
    expect(sink.ended).toBe(true);
    expect(port.ended).toBe("count");
    const pcap = readPcap(sink.bytes());
    expect(pcap.ok && pcap.value).toHaveLength(2);
  });

  it("ends after its duration", () => {
    vi.useFakeTimers();
    const sink = new MemorySink();
    const ends: CaptureEnd[] = [];
    new CapturePort({ name: "cap", sink, durationMs: 5000, onEnd: (r) => ends.push(r) });
    vi.advanceTimersByTime(4999);
    expect(ends).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(ends).toEqual(["time"]);
    expect(sink.ended).toBe(true);
  });

  it("ends when the sink closes (the client went away), without ending it again", () => {
    const sink = new MemorySink();
    const ends: CaptureEnd[] = [];
    const port = new CapturePort({ name: "cap", sink, onEnd: (r) => ends.push(r) });
    sink.emit("close");
    port.send([frame(60, 1)]);
    expect(ends).toEqual(["sink-closed"]);
    expect(sink.ended).toBe(false);
    expect(port.stats().txFrames).toBe(0);
  });
});
