/**
 * Names the DNS forwarder answers itself, without asking upstream: e.g.
 * "host.usernet.internal" → the gateway, and guests by their DHCP hostnames.
 *
 * Names are case-insensitive (RFC 4343) and a trailing dot is ignored. The table is
 * changed at run time (a DHCP client names itself), so `set` takes untrusted names and
 * never throws: a name that is not a plain host name (letters, digits, "-" and "_" in
 * labels of 1..63, at most 253 characters) or an address that is not IPv4 is refused
 * with `false`. Bounded by `maxEntries` (new names are refused when full).
 * Not done: several addresses per name, IPv6 (AAAA is answered empty), reverse (PTR).
 */
import { ipv4ToString, parseIpv4 } from "../../stack/wire/addr.js";

const LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/;

/** The table's key for a name: lower case, no trailing dot; undefined when not a host name. */
export function normaliseName(name: string): string | undefined {
  const n = (name.endsWith(".") ? name.slice(0, -1) : name).toLowerCase();
  if (n.length === 0 || n.length > 253) return undefined;
  return n.split(".").every((l) => LABEL.test(l)) ? n : undefined;
}

export class LocalNames {
  private readonly table = new Map<string, number>();

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
    if (!this.table.has(key) && this.table.size >= this.maxEntries) return false;
    this.table.set(key, addr);
    return true;
  }

  delete(name: string): boolean {
    const key = normaliseName(name);
    return key !== undefined && this.table.delete(key);
  }

  /** The IPv4 address (as a number) for a name, in any case, with or without a trailing dot. */
  lookup(name: string): number | undefined {
    const key = normaliseName(name);
    return key === undefined ? undefined : this.table.get(key);
  }

  get size(): number {
    return this.table.size;
  }

  entries(): Array<{ name: string; address: string }> {
    return [...this.table].map(([name, a]) => ({ name, address: ipv4ToString(a) }));
  }
}
