/**
 * Per-guest and overall counts behind the bounds of issue 13 (UDP sockets, ping ids,
 * DNS queries, TFTP sessions): `take` says whether one more fits, `release` gives it
 * back. A guest is known by `guestOf`, today its IPv4 source address; when guests are
 * told apart by hub port and MAC instead, that one function changes.
 */

/** Who a per-guest bound counts against. */
export function guestOf(addr: number): number {
  return addr;
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
