/**
 * Deadlines of many timers (one per TCP connection) in one binary min-heap, so the
 * driver needs a single setTimeout for the earliest. Entries are replaced, not
 * updated: a re-armed key pushes a new entry and the stale one is skipped when it
 * surfaces (lazy deletion), which keeps re-arming O(log n) without a position index.
 */
export class DeadlineQueue<K> {
  private heap: Array<{ at: number; key: K }> = [];
  private readonly current = new Map<K, number>();

  /** Arms (or re-arms, or with undefined disarms) the timer of `key`. */
  set(key: K, at: number | undefined): void {
    if (at === undefined) {
      this.current.delete(key);
      return;
    }
    if (this.current.get(key) === at) return;
    this.current.set(key, at);
    this.heap.push({ at, key });
    this.up(this.heap.length - 1);
    // stale entries can pile up under heavy re-arming; rebuild when they dominate
    if (this.heap.length > 64 && this.heap.length > 4 * this.current.size) this.rebuild();
  }

  /** The earliest live deadline. */
  peek(): number | undefined {
    this.dropStale();
    return this.heap[0]?.at;
  }

  /** Removes and returns every key whose deadline is at or before `now`. */
  due(now: number): K[] {
    const out: K[] = [];
    for (;;) {
      this.dropStale();
      const top = this.heap[0];
      if (top === undefined || top.at > now) return out;
      this.pop();
      this.current.delete(top.key);
      out.push(top.key);
    }
  }

  get size(): number {
    return this.current.size;
  }

  private dropStale(): void {
    for (;;) {
      const top = this.heap[0];
      if (top === undefined || this.current.get(top.key) === top.at) return;
      this.pop();
    }
  }

  private rebuild(): void {
    this.heap = [...this.current].map(([key, at]) => ({ at, key }));
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.down(i);
  }

  private pop(): void {
    const last = this.heap.pop();
    if (last === undefined || this.heap.length === 0) return;
    this.heap[0] = last;
    this.down(0);
  }

  private up(i: number): void {
    const h = this.heap;
    const e = h[i];
    if (!e) return;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pe = h[p];
      if (!pe || pe.at <= e.at) break;
      h[i] = pe;
      i = p;
    }
    h[i] = e;
  }

  private down(i: number): void {
    const h = this.heap;
    const e = h[i];
    if (!e) return;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= h.length) break;
      const r = l + 1;
      const le = h[l] as { at: number; key: K };
      const re = h[r];
      const c = re !== undefined && re.at < le.at ? r : l;
      const ce = h[c] as { at: number; key: K };
      if (ce.at >= e.at) break;
      h[i] = ce;
      i = c;
    }
    h[i] = e;
  }
}
