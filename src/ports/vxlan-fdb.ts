/**
 * The VXLAN port's forwarding table: which remote VTEP (outer IPv4 address and UDP
 * port) holds each inner MAC, learned from the inner source MAC of what arrives, as
 * Linux's vxlan device learns by default.
 *
 * Theory of operation
 * - learn(mac, vtep, now): a unicast source MAC seen from `vtep` is (re)recorded and
 *   becomes the most recently used. Group MACs (the I/G bit) are never learned.
 * - lookup(mac, now): the VTEP for a unicast destination, or undefined (unknown,
 *   aged out, or a group address): the caller floods then.
 * - Ageing: an entry not refreshed for `ageingMs` (Linux's default 300 s) is gone.
 * - Bound: at most `maxEntries` MACs; learning one more evicts the least recently
 *   learned (counted in `evicted`), so a peer spraying source MACs costs a bounded
 *   table, and at worst makes us flood.
 * Pure: time is an argument, no I/O.
 */

export interface Vtep {
  host: string;
  port: number;
}

export const defaultFdbAgeingMs = 300_000;
export const defaultFdbMaxEntries = 4096;

interface Entry {
  vtep: Vtep;
  seenAt: number;
}

/** a MAC as a number (48 bits fit a double exactly), read from `at` */
export function macKeyAt(frame: Buffer, at: number): number {
  return (frame.readUInt16BE(at) * 0x100000000 + frame.readUInt32BE(at + 2)) as number;
}

/** true for broadcast and multicast MACs (the I/G bit of the first byte) */
export function isGroupMacAt(frame: Buffer, at: number): boolean {
  return ((frame[at] as number) & 1) === 1;
}

export class VxlanFdb {
  private readonly entries = new Map<number, Entry>();
  evicted = 0;

  constructor(
    private readonly ageingMs = defaultFdbAgeingMs,
    private readonly maxEntries = defaultFdbMaxEntries,
  ) {}

  /** records that the frame's source MAC (bytes 6..11) sits behind `vtep` */
  learn(frame: Buffer, vtep: Vtep, now: number): void {
    if (frame.length < 12 || isGroupMacAt(frame, 6)) return;
    const key = macKeyAt(frame, 6);
    const e = this.entries.get(key);
    if (e !== undefined) {
      // re-inserted so the Map's order stays least-recently-learned first
      this.entries.delete(key);
      if (e.vtep.host !== vtep.host || e.vtep.port !== vtep.port) e.vtep = vtep;
      e.seenAt = now;
      this.entries.set(key, e);
      return;
    }
    if (this.entries.size >= this.maxEntries) this.evictOne(now);
    this.entries.set(key, { vtep, seenAt: now });
  }

  /** the VTEP for the frame's destination MAC (bytes 0..5), undefined to flood */
  lookup(frame: Buffer, now: number): Vtep | undefined {
    if (frame.length < 6 || isGroupMacAt(frame, 0)) return undefined;
    const key = macKeyAt(frame, 0);
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (now - e.seenAt >= this.ageingMs) {
      this.entries.delete(key);
      return undefined;
    }
    return e.vtep;
  }

  /** entries that have not aged out */
  size(now: number): number {
    let n = 0;
    for (const e of this.entries.values()) if (now - e.seenAt < this.ageingMs) n++;
    return n;
  }

  /** MAC (aa:bb:...) → "host:port", for describe() and tests */
  list(now: number): { mac: string; vtep: string; ageMs: number }[] {
    const out: { mac: string; vtep: string; ageMs: number }[] = [];
    for (const [k, e] of this.entries) {
      if (now - e.seenAt >= this.ageingMs) continue;
      const hex = k.toString(16).padStart(12, "0");
      out.push({
        mac: hex.match(/../g)?.join(":") ?? hex,
        vtep: `${e.vtep.host}:${e.vtep.port}`,
        ageMs: now - e.seenAt,
      });
    }
    return out;
  }

  private evictOne(now: number): void {
    // the oldest learned first; an aged-out one anywhere would do too, but the first is
    // the least recently refreshed, so the Map's order already finds it
    const first = this.entries.keys().next();
    if (first.done) return;
    const e = this.entries.get(first.value);
    this.entries.delete(first.value);
    if (e !== undefined && now - e.seenAt < this.ageingMs) this.evicted++;
  }
}
