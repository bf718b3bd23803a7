/**
 * A hub port: anything that carries Ethernet frames to and from a hub.
 *
 * Frames travel in batches (everything one read produced) so fast transports cross
 * into JS and into the hub once per batch. A frame handed over is immutable from
 * then on: the producer must not reuse its memory, so receivers may keep views.
 *
 * `send` never blocks and never throws: a port whose transport cannot keep up drops
 * frames past its bounded queue and counts them ("tx-queue-full").
 */
export type FrameSink = (frames: readonly Buffer[]) => void;

export interface PortStats {
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  /** dropped frames by reason, both directions */
  drops: Record<string, number>;
}

export interface Port {
  /** unique within the service, e.g. "s0" or "s0#3" for a listener's third client */
  readonly name: string;
  /** transport kind, e.g. "socket-listen", "stream-unix", "dgram", "mcast", "user" */
  readonly kind: string;
  /**
   * hub → port: deliver frames to the transport. `from` is the hub's number for the
   * port they came from (unique on that hub, never reused): who sent them, for a
   * port that tells guests apart (the user stack).
   */
  send(frames: readonly Buffer[], from?: number): void;
  /** port → hub: the hub installs its receiver here when the port is attached */
  setReceiver(sink: FrameSink | undefined): void;
  stats(): PortStats;
  /** a short human description: peer address, state */
  describe(): string;
  close(): void;
  /**
   * True when `send` takes frames with offload marks (stack/wire/frame-offload.ts):
   * partial checksums and TCP super frames. The hub resolves marked frames into
   * ordinary ones for every other port.
   */
  readonly acceptsOffloads?: boolean;
  /**
   * The hub tells the port, on every attach and detach, whether all the other ports
   * accept offload marks: only then may the port produce super frames cheaply.
   */
  peersAcceptOffloads?(yes: boolean): void;
  /** The hub tells every remaining port that the port it numbered `from` left. */
  peerLeft?(from: number): void;
}

/** Counters every port keeps; ports embed one and expose `stats()`. */
export class PortCounters {
  rxFrames = 0;
  rxBytes = 0;
  txFrames = 0;
  txBytes = 0;
  private readonly drops = new Map<string, number>();

  countRx(frames: readonly Buffer[]): void {
    this.rxFrames += frames.length;
    for (const f of frames) this.rxBytes += f.length;
  }

  countTx(frame: Buffer): void {
    this.txFrames++;
    this.txBytes += frame.length;
  }

  drop(reason: string, n = 1): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + n);
  }

  snapshot(): PortStats {
    return {
      rxFrames: this.rxFrames,
      rxBytes: this.rxBytes,
      txFrames: this.txFrames,
      txBytes: this.txBytes,
      drops: Object.fromEntries(this.drops),
    };
  }
}
