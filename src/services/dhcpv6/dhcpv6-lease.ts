/**
 * DHCPv6 leases (IA_NA bindings) as the server persists them.
 *
 * Theory of operation
 * - A lease ties one identity association of one guest to one address: the guest's
 *   MAC (what the hub says it is), its DUID and the IA's IAID (what it says). The
 *   server keeps at most one lease per address, so the table is bounded by the pool.
 *   As with DHCPv4, a lease outlives its binding ("released", or "bound" past its end
 *   = expired): a memory of who had the address, so a returning guest gets it back.
 * - `expiresAt` is in the time base of the server's `now` (wall-clock ms when persisted).
 * - `parseLeases6` validates stored data; the file store is dhcpv6-lease-file.ts.
 */
import { macToString, parseMac } from "../../stack/wire/addr.js";
import { ipv6ToString, parseIpv6 } from "../../stack/wire/ipv6-addr.js";

export type Lease6State = "offered" | "bound" | "released";

export interface Lease6 {
  /** "52:54:00:12:34:56": the MAC the messages came from */
  mac: string;
  /** the client's DUID (option 1) as lower-case hex */
  duid: string;
  iaid: number;
  /** canonical IPv6 text */
  ip: string;
  state: Lease6State;
  /** ms in the server's time base */
  expiresAt: number;
}

export interface Lease6Store {
  load(): Lease6[];
  /** as LeaseStore.save (dhcp-lease.ts): atomic, never throws, may finish later */
  save(leases: Lease6[]): undefined | Promise<boolean>;
  flush?(): Promise<void>;
  failures?(): number;
}

export class MemoryLease6Store implements Lease6Store {
  private leases: Lease6[];
  saves = 0;

  constructor(initial: Lease6[] = []) {
    this.leases = initial.map((l) => ({ ...l }));
  }

  load(): Lease6[] {
    return this.leases.map((l) => ({ ...l }));
  }

  save(leases: Lease6[]): undefined {
    this.leases = leases.map((l) => ({ ...l }));
    this.saves++;
    return undefined;
  }
}

const STATES: readonly string[] = ["offered", "bound", "released"];
/** DUIDs are 2..130 bytes (RFC 8415 11.1: at most 128 after the 2-byte type) */
const DUID = /^(?:[0-9a-f]{2}){2,130}$/;

export function parseLeases6(data: unknown): { leases: Lease6[]; skipped: number } {
  const list = Array.isArray(data) ? data : [];
  const leases: Lease6[] = [];
  let skipped = 0;
  for (const item of list) {
    const l = parseLease6(item);
    if (l) leases.push(l);
    else skipped++;
  }
  return { leases, skipped };
}

function parseLease6(item: unknown): Lease6 | undefined {
  if (typeof item !== "object" || item === null) return undefined;
  const r = item as Record<string, unknown>;
  const mac = typeof r.mac === "string" ? parseMac(r.mac) : undefined;
  const ip = typeof r.ip === "string" ? parseIpv6(r.ip) : undefined;
  if (!mac || !ip) return undefined;
  if (typeof r.duid !== "string" || !DUID.test(r.duid)) return undefined;
  if (typeof r.iaid !== "number" || !Number.isInteger(r.iaid) || r.iaid < 0 || r.iaid > 0xffffffff)
    return undefined;
  if (typeof r.state !== "string" || !STATES.includes(r.state)) return undefined;
  if (typeof r.expiresAt !== "number" || !Number.isFinite(r.expiresAt)) return undefined;
  return {
    mac: macToString(mac),
    duid: r.duid,
    iaid: r.iaid,
    ip: ipv6ToString(ip),
    state: r.state as Lease6State,
    expiresAt: r.expiresAt,
  };
}
