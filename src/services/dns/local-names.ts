/**
 * Names the DNS forwarder answers itself, without asking upstream: e.g.
 * "host.usernet.internal" → the gateway, and guests by their DHCP hostnames.
 *
 * Theory of operation
 * - Names are case-insensitive (RFC 4343) and a trailing dot is ignored. `set` takes
 *   configured names and never throws: a name that is not a plain host name (letters,
 *   digits, "-" and "_" in labels of 1..63, at most 253 characters) or an address that
 *   is not IPv4 is refused with `false`. Bounded by `maxEntries` (new names are refused
 *   when full). A configured name always wins over a guest's.
 * - Guests' names come from what a DHCP client calls itself, which is untrusted: any
 *   guest may claim anything. `syncGuests` is given the live leases (owner = the MAC the
 *   lease is bound to) and keeps the guest part of the table equal to them, under one
 *   rule: a guest gets a single RFC 952/1123 label (letters, digits, inner "-", 1..63)
 *   as the bare label and, with a domain, as LABEL.DOMAIN; never a name with dots of its
 *   choosing, never "localhost", never a configured name, never a name another guest
 *   holds. The first holder keeps a name while its lease is live; a later claimant gets
 *   nothing (all of its names or none) and may get the name once the holder's lease is
 *   gone. Each refused claim is reported once (by reason) for the caller to count.
 * - IPv6: configured names may also have one IPv6 address (`set6`, e.g. the gateway's
 *   fec0::2), answered as AAAA; a name with no IPv6 address gets an empty AAAA answer.
 *   Guests' names are IPv4 only (from DHCPv4 leases).
 * Not done: several addresses per name, guests' IPv6 names, reverse (PTR).
 */
import { ipv4ToString, parseIpv4 } from "../../stack/wire/addr.js";
import { type Ipv6Address, ipv6Copy, ipv6ToString, parseIpv6 } from "../../stack/wire/ipv6-addr.js";

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;
/** what a guest may call itself: one RFC 952/1123 label */
const GUEST_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const RESERVED_LABELS: ReadonlySet<string> = new Set(["localhost"]);

/** Why a guest's claim to a name got nothing. */
export type GuestNameRefusal = "invalid" | "reserved" | "taken" | "full";

/** A live lease's claim: `owner` identifies the guest (its MAC), `hostname` is as sent. */
export interface GuestNameClaim {
  owner: string;
  hostname: string;
  address: number;
}

/** The names a guest's host name stands for, lower case; undefined when it is not one label. */
export function guestNames(hostname: string, domain?: string): string[] | undefined {
  const label = hostname.toLowerCase();
  if (!GUEST_LABEL.test(label)) return undefined;
  const full = domain === undefined ? undefined : normaliseName(`${label}.${domain}`);
  return full === undefined || full === label ? [label] : [label, full];
}

/** The table's key for a name: lower case, no trailing dot; undefined when not a host name. */
export function normaliseName(name: string): string | undefined {
  const n = (name.endsWith(".") ? name.slice(0, -1) : name).toLowerCase();
  if (n.length === 0 || n.length > 253) return undefined;
  return n.split(".").every((l) => LABEL.test(l)) ? n : undefined;
}

interface Entry {
  address: number;
  /** the guest holding it; undefined for a configured name */
  owner?: string;
}

export class LocalNames {
  private readonly table = new Map<string, Entry>();
  /** configured names' IPv6 addresses */
  private readonly table6 = new Map<string, Ipv6Address>();
  /** names each guest holds now */
  private readonly held = new Map<string, { key: string; names: string[] }>();
  /** the last claim seen from each guest, so a refusal is reported once, not per sync */
  private readonly seen = new Map<string, string>();

  constructor(
    initial: Iterable<[string, string | number]> = [],
    private readonly maxEntries = 1024,
  ) {
    for (const [name, address] of initial) this.set(name, address);
  }

  /** Adds or replaces a name; false when the name or address is not acceptable or the table is full. */
  set(name: string, address: string | number): boolean {
    const key = normaliseName(name);
    const addr =
      typeof address === "number"
        ? Number.isInteger(address) && address >= 0 && address <= 0xffffffff
          ? address
          : undefined
        : parseIpv4(address);
    if (key === undefined || addr === undefined) return false;
    const old = this.table.get(key);
    if (!old && this.table.size >= this.maxEntries) return false;
    if (old?.owner !== undefined) this.dropGuest(old.owner);
    this.table.set(key, { address: addr });
    return true;
  }

  /** Adds or replaces a name's IPv6 address; false when the name or address is not acceptable or the table is full. */
  set6(name: string, address: string | Ipv6Address): boolean {
    const key = normaliseName(name);
    const addr =
      typeof address === "string"
        ? parseIpv6(address)
        : address.length === 16
          ? ipv6Copy(address)
          : undefined;
    if (key === undefined || addr === undefined) return false;
    if (!this.table6.has(key) && this.table6.size >= this.maxEntries) return false;
    const old = this.table.get(key);
    if (old?.owner !== undefined) this.dropGuest(old.owner);
    this.table6.set(key, addr);
    return true;
  }

  delete(name: string): boolean {
    const key = normaliseName(name);
    if (key === undefined) return false;
    const six = this.table6.delete(key);
    return this.table.delete(key) || six;
  }

  /**
   * Makes the guests' names follow `claims` (the live leases that carry a host name):
   * names of guests no longer claiming them go, new claims are granted by the rule in
   * the header. Returns the refusals of claims not seen before, one per claim.
   */
  syncGuests(claims: Iterable<GuestNameClaim>, domain?: string): GuestNameRefusal[] {
    const live = new Map<string, { claim: GuestNameClaim; key: string }>();
    for (const c of claims) {
      if (!live.has(c.owner)) live.set(c.owner, { claim: c, key: `${c.hostname}|${c.address}` });
    }
    for (const [owner, h] of [...this.held]) {
      if (live.get(owner)?.key !== h.key) this.dropGuest(owner);
    }
    for (const owner of [...this.seen.keys()]) if (!live.has(owner)) this.seen.delete(owner);
    const refused: GuestNameRefusal[] = [];
    for (const [owner, { claim, key }] of live) {
      if (this.held.has(owner)) continue;
      const why = this.grant(owner, claim, key, domain);
      if (why !== undefined && this.seen.get(owner) !== key) refused.push(why);
      this.seen.set(owner, key);
    }
    return refused;
  }

  private grant(
    owner: string,
    claim: GuestNameClaim,
    key: string,
    domain: string | undefined,
  ): GuestNameRefusal | undefined {
    const names = guestNames(claim.hostname, domain);
    if (names === undefined || !Number.isInteger(claim.address)) return "invalid";
    if (RESERVED_LABELS.has(names[0] as string)) return "reserved";
    for (const n of names) {
      const e = this.table.get(n);
      if (e) return e.owner === undefined ? "reserved" : "taken";
      if (this.table6.has(n)) return "reserved";
    }
    if (this.table.size + names.length > this.maxEntries) return "full";
    for (const n of names) this.table.set(n, { address: claim.address >>> 0, owner });
    this.held.set(owner, { key, names });
    return undefined;
  }

  private dropGuest(owner: string): void {
    const h = this.held.get(owner);
    if (!h) return;
    this.held.delete(owner);
    for (const n of h.names) if (this.table.get(n)?.owner === owner) this.table.delete(n);
  }

  /** The IPv4 address (as a number) for a name, in any case, with or without a trailing dot. */
  lookup(name: string): number | undefined {
    const key = normaliseName(name);
    return key === undefined ? undefined : this.table.get(key)?.address;
  }

  /** The IPv6 address of a configured name, if it has one. */
  lookup6(name: string): Ipv6Address | undefined {
    const key = normaliseName(name);
    return key === undefined ? undefined : this.table6.get(key);
  }

  /** Whether the name is answered here (with an address of either family, or none of the asked one). */
  has(name: string): boolean {
    const key = normaliseName(name);
    return key !== undefined && (this.table.has(key) || this.table6.has(key));
  }

  get size(): number {
    return this.table.size;
  }

  /** Every name and address, IPv4 entries first; a name with both appears twice. */
  entries(): Array<{ name: string; address: string }> {
    return [
      ...[...this.table].map(([name, e]) => ({ name, address: ipv4ToString(e.address) })),
      ...[...this.table6].map(([name, a]) => ({ name, address: ipv6ToString(a) })),
    ];
  }
}
