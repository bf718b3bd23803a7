/**
 * Which MAC a guest address lives at, learned from what guests send (ARP packets
 * and the source of their IPv4 frames), so frames the stack originates (replies
 * to host-side events, forwarded connections) can be addressed.
 *
 * Bounded: past `capacity` entries the least recently refreshed one is forgotten.
 * Entries do not expire on a timer: a guest that moves announces itself again.
 */
import { sameMac } from "./wire/addr.js";

export class ArpTable {
  private readonly entries = new Map<number, Buffer>();
  /** the key inserted last, i.e. the most recently refreshed entry */
  private newest: number | undefined;

  constructor(private readonly capacity = 1024) {}

  learn(ip: number, mac: Buffer): void {
    const key = ip >>> 0;
    const known = this.entries.get(key);
    if (known !== undefined && sameMac(known, mac)) {
      // refresh recency (Map keeps insertion order) unless it is the newest already:
      // every guest frame lands here, and a bulk transfer comes from one guest
      if (key !== this.newest) {
        this.entries.delete(key);
        this.entries.set(key, known);
        this.newest = key;
      }
      return;
    }
    this.newest = key;
    this.entries.delete(key);
    // copy: the MAC is a view into a frame whose memory the table must not pin
    this.entries.set(key, Buffer.from(mac));
    if (this.entries.size > this.capacity) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  lookup(ip: number): Buffer | undefined {
    return this.entries.get(ip >>> 0);
  }

  get size(): number {
    return this.entries.size;
  }

  toJSON(): Array<{ ip: number; mac: Buffer }> {
    return [...this.entries].map(([ip, mac]) => ({ ip, mac }));
  }
}
