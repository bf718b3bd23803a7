/**
 * Who a guest is, and the counts behind the per-guest bounds of issue 13.
 *
 * Identity (trust model: a guest is the hub port and MAC its frames arrived on, never
 * what its packets claim). `GuestIdentities.identify(port, mac)` gives each (hub port,
 * source MAC) pair a small positive integer, the guest id every per-guest bound is
 * keyed by: TCP connections (flow-table.ts), UDP sockets, ICMP echo ids, DNS queries,
 * TFTP sessions and buffered bytes. Ids are never reused, so whatever an old identity
 * still holds is released against that identity and never lands on a newcomer.
 *
 * A guest could otherwise mint identities by cycling through source MACs, so each hub
 * port holds at most `maxPerPort` identities (default 64: a TAP port with a bridge of
 * a few guests behind it, each with a few virtual interfaces, stays well inside it; a
 * QEMU socket port carries one guest). A new MAC on a full port takes the place of the
 * port's least recently seen identity only when that one has been silent for `idleMs`
 * (default 60 s, as long as an ARP entry lives); otherwise its frames are refused
 * (`identify` returns 0, the stack drops and counts them "guest-identity-limit"). So a
 * guest cycling through 1,000 MACs gets at most 64 identities per minute, each within
 * the per-guest bounds, and all of them within the overall bounds. When a port leaves
 * the hub its identities go (`portLeft`); the same MAC on a new port (a QEMU client
 * that reconnects) is a new identity. Lookup is two Map reads, skipped for a frame from
 * the same port and MAC as the one before it; nothing is allocated per frame.
 *
 * Counts: `GuestCounts.take` says whether one more fits, `release` gives it back.
 */

export interface GuestIdentityOptions {
  /** identities one hub port may hold (default 64) */
  maxPerPort: number;
  /** how long an identity must have been silent before a new MAC on a full port replaces it (ms) */
  idleMs: number;
}

export const guestIdentityDefaults: GuestIdentityOptions = Object.freeze({ maxPerPort: 64, idleMs: 60_000 });

interface Identity {
  id: number;
  seen: number;
}

export interface GuestIdentityCounters {
  /** identities made */
  created: number;
  /** idle identities replaced on a full port */
  replaced: number;
  /** frames refused because their port was full of live identities */
  refused: number;
}

export class GuestIdentities {
  readonly options: GuestIdentityOptions;
  readonly counters: GuestIdentityCounters = { created: 0, replaced: 0, refused: 0 };
  /** hub port → MAC (48 bits as one number) → identity */
  private readonly ports = new Map<number, Map<number, Identity>>();
  private nextId = 1;
  private lastPort = -1;
  private lastMac = -1;
  private last: Identity | undefined;

  constructor(options: Partial<GuestIdentityOptions> = {}) {
    this.options = { ...guestIdentityDefaults, ...options };
  }

  /** Identities held now, over all ports. */
  get size(): number {
    let n = 0;
    for (const m of this.ports.values()) n += m.size;
    return n;
  }

  /** The guest id of `mac` on hub port `port` at `now`; 0 when the port is full (counted). */
  identify(port: number, mac: Buffer, now: number): number {
    const key = mac.readUInt16BE(0) * 0x1_0000_0000 + mac.readUInt32BE(2);
    const last = this.last;
    if (last !== undefined && key === this.lastMac && port === this.lastPort) {
      last.seen = now;
      return last.id;
    }
    let macs = this.ports.get(port);
    if (macs === undefined) {
      macs = new Map();
      this.ports.set(port, macs);
    }
    let g = macs.get(key);
    if (g === undefined) {
      if (macs.size >= this.options.maxPerPort && !this.replaceIdle(macs, now)) {
        this.counters.refused++;
        return 0;
      }
      g = { id: this.nextId++, seen: now };
      macs.set(key, g);
      this.counters.created++;
    }
    g.seen = now;
    this.last = g;
    this.lastPort = port;
    this.lastMac = key;
    return g.id;
  }

  /** Every identity held now: its hub port and MAC (as a 48-bit number); for views. */
  list(): { port: number; mac: number }[] {
    const out: { port: number; mac: number }[] = [];
    for (const [port, macs] of this.ports) for (const mac of macs.keys()) out.push({ port, mac });
    return out;
  }

  /** Forgets the port's identities; returns their ids. */
  portLeft(port: number): number[] {
    const macs = this.ports.get(port);
    if (macs === undefined) return [];
    this.ports.delete(port);
    if (port === this.lastPort) this.last = undefined;
    return [...macs.values()].map((g) => g.id);
  }

  /** Drops the port's least recently seen identity if it has been silent for `idleMs`. */
  private replaceIdle(macs: Map<number, Identity>, now: number): boolean {
    let oldestKey: number | undefined;
    let oldest = Number.POSITIVE_INFINITY;
    for (const [k, g] of macs) {
      if (g.seen < oldest) {
        oldest = g.seen;
        oldestKey = k;
      }
    }
    if (oldestKey === undefined || now - oldest < this.options.idleMs) return false;
    const g = macs.get(oldestKey);
    if (g === this.last) this.last = undefined;
    macs.delete(oldestKey);
    this.counters.replaced++;
    return true;
  }
}

export interface Bounds {
  /** in all */
  max: number;
  /** for one guest (at most `max`) */
  perGuest: number;
}

export class GuestCounts {
  private readonly held = new Map<number, number>();
  private count = 0;

  constructor(readonly bounds: Bounds) {}

  get total(): number {
    return this.count;
  }

  /** What this guest holds now. */
  of(guest: number): number {
    return this.held.get(guest) ?? 0;
  }

  /** Which bound one more for `guest` would pass, or undefined when it fits. */
  over(guest: number): "total" | "per-guest" | undefined {
    if (this.of(guest) >= this.bounds.perGuest) return "per-guest";
    if (this.count >= this.bounds.max) return "total";
    return undefined;
  }

  take(guest: number): void {
    this.held.set(guest, this.of(guest) + 1);
    this.count++;
  }

  release(guest: number): void {
    const n = this.of(guest);
    if (n <= 0) return;
    if (n === 1) this.held.delete(guest);
    else this.held.set(guest, n - 1);
    this.count--;
  }
}

/**
 * Bytes buffered for guests, in all and per guest, both ways: what TCP holds of a
 * guest's data that the host side has not taken yet (receive-window.ts charges it as
 * it arrives and releases it as the host socket takes it), and what it holds of host
 * data for the guest that the guest has not acknowledged yet (tcp-endpoint.ts charges
 * each append to the send buffer and releases what an ACK drops); a connection that
 * leaves the flow table gives back all it holds. One integer add per append, delivery,
 * ACK or consume; nothing per byte.
 *
 * Guest → host: a TCP receiver offers a guest no more window than `room` leaves, so a
 * guest at its budget sees a zero window on every connection (it probes, as TCP does,
 * until the host side drains) and others keep theirs. Windows already offered are
 * honoured (RFC 9293 never shrinks them), so the budget may be passed by what was
 * offered before it ran out.
 *
 * Host → guest: the relay stops reading a guest's host sockets while the guest has no
 * room, and registers to be woken (`wait`); a release of that guest's bytes (an ACK, a
 * consume, a connection leaving) wakes every waiter of that guest once, and one that
 * waits for the overall bound is woken by any release. Waiters are kept per guest (and
 * one list for the overall bound), so an event touches only the guest it concerns,
 * never all flows. The bound is soft: a read already under way when room ran out is
 * still taken (the relay reads at most 16 KiB into a connection while the guest has
 * less than 256 KiB of room left), so the budget may be passed by about one such read
 * per connection.
 */
export class ByteBudget {
  /** times a guest's charge reached its budget (or the total did) */
  throttled = 0;
  private readonly held = new Map<number, number>();
  private used = 0;
  /** per guest, who waits for room (woken once, then forgotten) */
  private readonly waiters = new Map<number, (() => void)[]>();
  /** who waits for room under the overall bound (its guest had room of its own) */
  private totalWaiters: (() => void)[] = [];

  constructor(readonly bounds: Bounds) {}

  /** Bytes held in all. */
  get total(): number {
    return this.used;
  }

  /** Bytes the guest holds. */
  of(guest: number): number {
    return this.held.get(guest) ?? 0;
  }

  /** How many more bytes the guest may be given now. */
  room(guest: number): number {
    return Math.max(0, Math.min(this.bounds.perGuest - this.of(guest), this.bounds.max - this.used));
  }

  take(guest: number, n: number): void {
    if (n <= 0) return;
    const had = this.of(guest);
    this.held.set(guest, had + n);
    this.used += n;
    if ((had < this.bounds.perGuest && had + n >= this.bounds.perGuest) || this.used >= this.bounds.max)
      this.throttled++;
  }

  release(guest: number, n: number): void {
    const had = this.of(guest);
    const m = Math.min(n, had);
    if (m <= 0) return;
    if (m === had) this.held.delete(guest);
    else this.held.set(guest, had - m);
    this.used -= m;
    if (this.waiters.size > 0) {
      const list = this.waiters.get(guest);
      if (list !== undefined && this.of(guest) < this.bounds.perGuest) {
        this.waiters.delete(guest);
        // room of its own, but the overall bound may still hold them back
        if (this.used < this.bounds.max) for (const wake of list) wake();
        else for (const wake of list) this.totalWaiters.push(wake);
      }
    }
    if (this.totalWaiters.length > 0 && this.used < this.bounds.max) {
      const list = this.totalWaiters;
      this.totalWaiters = [];
      for (const wake of list) wake();
    }
  }

  /**
   * Calls `wake` once when `guest` has room again (at once, synchronously, if it has
   * now). The caller registers once per pause: `wake` runs inside a `release`, so it
   * should only schedule its work.
   */
  wait(guest: number, wake: () => void): void {
    if (this.room(guest) > 0) {
      wake();
      return;
    }
    if (this.of(guest) < this.bounds.perGuest) {
      this.totalWaiters.push(wake);
      return;
    }
    const list = this.waiters.get(guest);
    if (list === undefined) this.waiters.set(guest, [wake]);
    else list.push(wake);
  }

  /** Waiters registered now (for tests and status). */
  get waiting(): number {
    let n = this.totalWaiters.length;
    for (const l of this.waiters.values()) n += l.length;
    return n;
  }
}
