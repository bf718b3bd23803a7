/** Test helpers shared by the transport tests: a hub port the test drives, and a bounded wait. */
import { type FrameSink, type Port, PortCounters, type PortStats } from "../../../src/hub/port.js";

/** A hub port that records what the hub sends it; `sink` injects frames into the hub. */
export class FakePort implements Port {
  readonly kind = "fake";
  readonly received: Buffer[] = [];
  sink: FrameSink | undefined;
  constructor(readonly name: string) {}
  send(frames: readonly Buffer[]): void {
    this.received.push(...frames);
  }
  setReceiver(sink: FrameSink | undefined): void {
    this.sink = sink;
  }
  stats(): PortStats {
    return new PortCounters().snapshot();
  }
  describe(): string {
    return this.name;
  }
  close(): void {}
}

/** Polls `cond` every `pollMs` until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(
  what: string,
  cond: () => boolean,
  timeoutMs = 5000,
  pollMs = 5,
): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
