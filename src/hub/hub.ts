/**
 * Hubs: QEMU's "VLAN" — a numbered broadcast domain joining ports.
 *
 * Theory of operation
 * - Every frame batch a port receives is handed, unchanged, to every *other* attached
 *   port's `send`. This is flooding, exactly like QEMU's hub (net/hub.c): no MAC
 *   learning, no filtering, no reordering of frames within a batch.
 * - The hub holds no queue of its own and never waits on a port. Ports bound their own
 *   transmit queues and drop (and count) what they cannot take, so one slow QEMU
 *   cannot stall the others. A port whose `send` throws in spite of its contract is
 *   counted ("port-send-threw") and reported as an internal error (log.ts: logged with
 *   its stack, counted, fails e2e tests); delivery to the other ports goes on.
 * - Who sent a batch: each attached port has a number, unique on the hub and never
 *   reused, given to every receiver with the batch (`send(frames, from)`); when a port
 *   leaves, the others are told its number (`peerLeft`). The user stack knows guests by
 *   that number and their MAC (stack/guest-bounds.ts).
 * - Re-entrancy: a port may answer synchronously from inside `send` (a user stack that
 *   replies to ARP at once). Such a batch is queued and delivered after the current one
 *   has reached every port, so all ports see frames in one order and recursion stays
 *   flat. That queue is bounded (`maxPendingBatches`); beyond it batches are dropped and
 *   counted ("reentry-overflow"), which only a feedback loop between ports can reach.
 * - Offloads: frames may carry offload marks (stack/wire/frame-offload.ts: partial
 *   checksums, TCP super frames, payload tails) between ports that declare
 *   `acceptsOffloads` (an offloading TAP, the user stack). Every other port gets the
 *   batch resolved into ordinary frames, once per batch. On each attach and detach the
 *   hub tells ports whether all their peers accept marks, so a producer only makes
 *   super frames when nobody must pay to split them.
 * - Ports are attached and detached at run time. The port list is copied on change, so
 *   a detach from inside a delivery neither skips nor repeats anyone; a port detached
 *   mid-delivery gets nothing more.
 * - Not here: ownership of ports. Whoever opened a port closes it; `Hub.close()` only
 *   detaches everything and refuses new ports.
 */
import { internalErrors, type Logger } from "../log.js";
import { anyOffloaded, resolveOffloads } from "../stack/wire/frame-offload.js";
import type { FrameSink, Port } from "./port.js";

export interface HubStats {
  id: number;
  /** ports attached now */
  ports: number;
  /** batches and frames received from ports */
  batches: number;
  frames: number;
  bytes: number;
  /** frame deliveries to ports (one frame to three ports counts three) */
  delivered: number;
  /** frames that arrived while no other port was attached */
  unheard: number;
  drops: Record<string, number>;
}

export interface HubOptions {
  log?: Logger;
  /** batches queued by re-entrant sends before further ones are dropped */
  maxPendingBatches?: number;
}

export class Hub {
  private attached: Port[] = [];
  /** attached ports and their numbers (the `from` of `Port.send`) */
  private readonly members = new Map<Port, number>();
  private nextPortNumber = 1;
  private readonly pending: { from: Port; frames: readonly Buffer[] }[] = [];
  private delivering = false;
  private isClosed = false;
  private readonly maxPending: number;
  private readonly log: Logger | undefined;
  private batches = 0;
  private frames = 0;
  private bytes = 0;
  private delivered = 0;
  private unheard = 0;
  private readonly drops = new Map<string, number>();

  constructor(
    readonly id: number,
    options: HubOptions = {},
  ) {
    this.log = options.log?.child({ hub: id });
    this.maxPending = options.maxPendingBatches ?? 1024;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** Joins a port: its frames flood to the others and theirs to it. Throws on misuse only. */
  attach(port: Port): void {
    if (this.isClosed) throw new Error(`hub ${this.id} is closed; cannot attach ${port.name}`);
    if (this.members.has(port)) throw new Error(`port ${port.name} is already attached to hub ${this.id}`);
    for (const p of this.attached) {
      if (p.name === port.name) throw new Error(`hub ${this.id} already has a port named ${port.name}`);
    }
    this.members.set(port, this.nextPortNumber++);
    this.attached = [...this.attached, port];
    const sink: FrameSink = (frames) => this.receive(port, frames);
    port.setReceiver(sink);
    this.tellOffloads();
    this.log?.debug("port attached", { port: port.name, kind: port.kind });
  }

  /** Removes a port; returns false when it was not attached. Does not close it. */
  detach(port: Port): boolean {
    const number = this.members.get(port);
    if (number === undefined) return false;
    this.members.delete(port);
    this.attached = this.attached.filter((p) => p !== port);
    port.setReceiver(undefined);
    port.peersAcceptOffloads?.(false);
    this.tellOffloads();
    for (const p of this.attached) p.peerLeft?.(number);
    this.log?.debug("port detached", { port: port.name });
    return true;
  }

  /** The number the hub gave an attached port (the `from` its frames carry); undefined when not attached. */
  numberOf(port: Port): number | undefined {
    return this.members.get(port);
  }

  ports(): readonly Port[] {
    return this.attached;
  }

  stats(): HubStats {
    return {
      id: this.id,
      ports: this.attached.length,
      batches: this.batches,
      frames: this.frames,
      bytes: this.bytes,
      delivered: this.delivered,
      unheard: this.unheard,
      drops: Object.fromEntries(this.drops),
    };
  }

  describe(): string {
    const names = this.attached.map((p) => p.name).join(", ");
    return `hub ${this.id}: ${this.attached.length} port${this.attached.length === 1 ? "" : "s"}${names ? ` (${names})` : ""}`;
  }

  /** Detaches every port and refuses new ones. Ports stay open: their owners close them. */
  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    for (const p of this.attached) this.detach(p);
    this.pending.length = 0;
  }

  private receive(from: Port, frames: readonly Buffer[]): void {
    if (frames.length === 0 || !this.members.has(from)) return;
    this.batches++;
    this.frames += frames.length;
    for (const f of frames) this.bytes += f.length;
    if (this.delivering) {
      if (this.pending.length >= this.maxPending) {
        this.drop("reentry-overflow", frames.length);
        return;
      }
      this.pending.push({ from, frames });
      return;
    }
    this.delivering = true;
    try {
      this.flood(from, frames);
      for (let next = this.pending.shift(); next; next = this.pending.shift()) {
        this.flood(next.from, next.frames);
      }
    } finally {
      this.delivering = false;
    }
  }

  /** Tells each port whether all the others take offload marks. */
  private tellOffloads(): void {
    for (const p of this.attached) {
      if (!p.peersAcceptOffloads) continue;
      p.peersAcceptOffloads(this.attached.every((q) => q === p || q.acceptsOffloads === true));
    }
  }

  private flood(from: Port, frames: readonly Buffer[]): void {
    const targets = this.attached;
    const fromNumber = this.members.get(from) ?? 0;
    let reached = 0;
    // only ports that produce marks can send marked frames; resolved once per batch
    let plain: readonly Buffer[] | undefined = from.acceptsOffloads ? undefined : frames;
    for (const to of targets) {
      // skip the sender, and anyone detached by an earlier send in this same loop
      if (to === from || !this.members.has(to)) continue;
      reached++;
      try {
        if (to.acceptsOffloads) to.send(frames, fromNumber);
        else {
          plain ??= anyOffloaded(frames) ? resolveOffloads(frames) : frames;
          to.send(plain, fromNumber);
        }
      } catch (err) {
        // a bug in that port (or the stack behind it): counted here and as an internal error
        this.drop("port-send-threw", frames.length);
        internalErrors.report(`hub ${this.id}: send to port ${to.name}`, err);
      }
    }
    if (reached === 0) this.unheard += frames.length;
    else this.delivered += reached * frames.length;
  }

  private drop(reason: string, n: number): void {
    this.drops.set(reason, (this.drops.get(reason) ?? 0) + n);
  }
}

/** The hubs of one service, by number, created on first use (QEMU's `vlan=N`/`hubid=N`). */
export class HubRegistry {
  private readonly hubs = new Map<number, Hub>();

  constructor(private readonly options: HubOptions = {}) {}

  /** The hub numbered `id`, created if needed. */
  get(id: number): Hub {
    if (!Number.isInteger(id) || id < 0)
      throw new Error(`hub number must be a non-negative integer, got ${id}`);
    let hub = this.hubs.get(id);
    if (!hub) {
      hub = new Hub(id, this.options);
      this.hubs.set(id, hub);
    }
    return hub;
  }

  find(id: number): Hub | undefined {
    return this.hubs.get(id);
  }

  /** All hubs, by number. */
  list(): Hub[] {
    return [...this.hubs.values()].sort((a, b) => a.id - b.id);
  }

  close(): void {
    for (const h of this.hubs.values()) h.close();
    this.hubs.clear();
  }
}
