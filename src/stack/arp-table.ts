/**
 * Which MAC a guest address lives at, learned from what guests send (ARP packets
 * and the source of their IPv4 frames), so frames the stack originates (replies
 * to host-side events, forwarded connections) can be addressed.
 *
 * Bounded: past `capacity` entries the least recently refreshed one is forgotten.
 * Entries do not expire on a timer: a guest that moves announces itself again.
 */
export class ArpTable {
  private readonly entries = new Map<number, Buffer>();

  constructor(private readonly capacity = 1024) {}

  learn(ip: number, mac: Buffer): void {
    const key = ip >>> 0;
    const known = this.entries.get(key);
    if (known?.equals(mac)) {
      // refresh recency: Map keeps insertion order
      this.entries.delete(key);
      this.entries.set(key, known);
      return;
    }
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
