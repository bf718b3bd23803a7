/** Counts dropped input by reason. Every table and parser reports here instead of throwing. */
export class DropCounters {
  private readonly counts = new Map<string, number>();

  drop(reason: string, n = 1): void {
    this.counts.set(reason, (this.counts.get(reason) ?? 0) + n);
  }

  get(reason: string): number {
    return this.counts.get(reason) ?? 0;
  }

  total(): number {
    let t = 0;
    for (const v of this.counts.values()) t += v;
    return t;
  }

  toJSON(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }
}
