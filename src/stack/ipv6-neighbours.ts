/**
 * The gateway's IPv6 neighbour table, which is also who owns which guest address: an
 * IPv6 address belongs to the guest (hub port and MAC, guest-bounds.ts) that first
 * used it, for `lifetimeMs` after it last did (the IPv4 side's address bindings, and its
 * ARP table, in one). Learned from what a guest sends: its packets' source addresses,
 * its neighbour solicitations and advertisements, and DAD probes (an address a guest is
 * about to take). Another guest using an owned address meanwhile is refused (the caller
 * drops and counts), and the entry stays as it was.
 *
 * The MAC an entry names is the MAC the guest's frames came from, never a link-layer
 * option's claim: on a hub a guest is its port and MAC. An expired entry still gives
 * its MAC for sending (a guest that went quiet is still there, usually) until another
 * guest claims the address or the table's bound evicts it, oldest first.
 *
 * Cost: one string key (`ipv6Key`) and one Map read per claim, skipped when the same
 * guest claims the same address as the claim before (a bulk transfer's frames).
 */
import { type Ipv6Address, ipv6Copy, ipv6FromKey, ipv6Key, sameIpv6 } from "./wire/ipv6-addr.js";

interface Neighbour {
  mac: Buffer;
  guest: number;
  until: number;
}

export interface Ipv6NeighbourEntry {
  address: Ipv6Address;
  mac: Buffer;
  guest: number;
  /** the stack clock time the address stays its guest's until */
  until: number;
}

export class Ipv6Neighbours {
  private readonly table = new Map<string, Neighbour>();
  private lastAddr: Buffer = Buffer.alloc(16);
  private last: Neighbour | undefined;

  constructor(
    private readonly maxEntries = 65_536,
    private readonly lifetimeMs = 60_000,
  ) {}

  get size(): number {
    return this.table.size;
  }

  /**
   * Whether `guest` (frames from `mac`) may use `addr` at `now`: binds a free or
   * expired address to it and refreshes its own. False when another guest holds it.
   */
  claim(addr: Uint8Array, mac: Uint8Array, guest: number, now: number): boolean {
    const last = this.last;
    if (last !== undefined && last.guest === guest && sameIpv6(this.lastAddr, addr)) {
      last.until = now + this.lifetimeMs;
      return true;
    }
    const key = ipv6Key(addr);
    const n = this.table.get(key);
    if (n !== undefined && n.guest !== guest && n.until > now) return false;
    let entry = n;
    if (entry === undefined) {
      entry = { mac: Buffer.from(mac.subarray(0, 6)), guest, until: now + this.lifetimeMs };
      this.table.set(key, entry);
      if (this.table.size > this.maxEntries) {
        const oldest = this.table.keys().next().value;
        if (oldest !== undefined) this.forget(oldest);
      }
    } else {
      if (entry.guest !== guest || !sameMac(entry.mac, mac)) entry.mac = Buffer.from(mac.subarray(0, 6));
      entry.guest = guest;
      entry.until = now + this.lifetimeMs;
    }
    this.last = entry;
    this.lastAddr = ipv6Copy(addr);
    return true;
  }

  /** Whether `addr` is held now by a guest other than `guest`. */
  heldByOther(addr: Uint8Array, guest: number, now: number): boolean {
    const n = this.table.get(ipv6Key(addr));
    return n !== undefined && n.guest !== guest && n.until > now;
  }

  /** The MAC to send to `addr` at, if a guest has used it. */
  lookup(addr: Uint8Array): Buffer | undefined {
    return this.table.get(ipv6Key(addr))?.mac;
  }

  /** The guest that holds `addr` now; 0 when none. */
  ownerOf(addr: Uint8Array, now: number): number {
    const n = this.table.get(ipv6Key(addr));
    return n === undefined || n.until <= now ? 0 : n.guest;
  }

  /** The guests `gone` left with their hub port: their entries go. */
  forgetGuests(gone: ReadonlySet<number>): void {
    for (const [key, n] of this.table) if (gone.has(n.guest)) this.forget(key);
  }

  /** Every entry, oldest first (for the API). */
  entries(): Ipv6NeighbourEntry[] {
    return [...this.table].map(([key, n]) => ({
      address: ipv6FromKey(key),
      mac: Buffer.from(n.mac),
      guest: n.guest,
      until: n.until,
    }));
  }

  private forget(key: string): void {
    const n = this.table.get(key);
    this.table.delete(key);
    if (n !== undefined && n === this.last) this.last = undefined;
  }
}

function sameMac(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < 6; i++) if (a[i] !== b[i]) return false;
  return true;
}
