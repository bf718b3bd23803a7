/**
 * DHCP leases as the server persists them, and where they go.
 *
 * Theory of operation
 * - A `Lease` ties one client (MAC, plus the option 61 client identifier when it sent
 *   one) to one address. The server keeps at most one lease per address, so the table
 *   is bounded by the pool size (plus static leases). A lease outlives its binding:
 *   "released" and "expired" leases are only a memory of who had the address, so that a
 *   returning guest gets the same one (what libslirp does by never forgetting a MAC);
 *   the address is free for others and the memory is dropped when someone else takes it.
 * - `expiresAt` is in the time base of the `now` the server is given. To make expiry
 *   meaningful across restarts the caller passes wall-clock milliseconds; with a
 *   monotonic clock the server caps loaded leases at one lease time (see dhcp-server.ts).
 * - `LeaseStore` is the only persistence the server knows: `load()` once at start,
 *   `save(all)` after every change that matters (bind, renew, release, decline, BOOTP).
 *   Saving must be atomic; the file-backed store is dhcp-lease-file.ts, the in-memory
 *   one is here. `parseLeases` validates stored data (a file can be corrupt or edited).
 */
import { ipv4ToString, macToString, parseIpv4, parseMac } from "../../stack/wire/addr.js";

/**
 * offered: reserved for a client between OFFER and REQUEST;
 * bound: ACKed and not yet expired (`expiresAt` in the future);
 * released: the client gave it back (RELEASE); the association is remembered;
 * bootp: given to a BOOTP client, never expires.
 * An offered or bound lease past `expiresAt` is expired: free, association remembered.
 */
export type LeaseState = "offered" | "bound" | "released" | "bootp";

export interface Lease {
  /** client hardware address, "52:54:00:12:34:56" */
  mac: string;
  /** option 61 as lower-case hex, when the client sent one */
  clientId?: string;
  /** dotted quad */
  ip: string;
  state: LeaseState;
  /** ms, in the time base of the server's `now`; ignored for "bootp" */
  expiresAt: number;
  /** what the client called itself (option 12), printable ASCII only */
  hostname?: string;
}

export interface LeaseStore {
  load(): Lease[];
  /**
   * Replaces everything stored with `leases`, atomically; may finish later (never
   * throws). A store that finishes later returns a promise of true once durable, false
   * when the write failed (never rejecting).
   */
  save(leases: Lease[]): undefined | Promise<boolean>;
  /** settles when what save() started is done */
  flush?(): Promise<void>;
  /** saves that failed so far */
  failures?(): number;
}

/** Keeps leases in memory (copies in and out, so callers cannot alias its state). */
export class MemoryLeaseStore implements LeaseStore {
  private leases: Lease[];
  /** how many times save() ran; handy in tests */
  saves = 0;

  constructor(initial: Lease[] = []) {
    this.leases = initial.map((l) => ({ ...l }));
  }

  load(): Lease[] {
    return this.leases.map((l) => ({ ...l }));
  }

  save(leases: Lease[]): undefined {
    this.leases = leases.map((l) => ({ ...l }));
    this.saves++;
    return undefined;
  }
}

const STATES: readonly string[] = ["offered", "bound", "released", "bootp"];
const CLIENT_ID = /^(?:[0-9a-f]{2}){2,255}$/;
const HOSTNAME = /^[\x21-\x7e]{1,63}$/;

/**
 * Checks stored data and returns the leases that are well formed, in canonical form
 * (lower-case MAC, canonical address text). Anything malformed is skipped and counted.
 */
export function parseLeases(data: unknown): { leases: Lease[]; skipped: number } {
  const list = Array.isArray(data) ? data : [];
  const leases: Lease[] = [];
  let skipped = 0;
  for (const item of list) {
    const lease = parseLease(item);
    if (lease) leases.push(lease);
    else skipped++;
  }
  return { leases, skipped };
}

function parseLease(item: unknown): Lease | undefined {
  if (typeof item !== "object" || item === null) return undefined;
  const r = item as Record<string, unknown>;
  const mac = typeof r.mac === "string" ? parseMac(r.mac) : undefined;
  const ip = typeof r.ip === "string" ? parseIpv4(r.ip) : undefined;
  if (!mac || ip === undefined) return undefined;
  if (typeof r.state !== "string" || !STATES.includes(r.state)) return undefined;
  if (typeof r.expiresAt !== "number" || !Number.isFinite(r.expiresAt)) return undefined;
  const lease: Lease = {
    mac: macToString(mac),
    ip: ipv4ToString(ip),
    state: r.state as LeaseState,
    expiresAt: r.expiresAt,
  };
  if (r.clientId !== undefined) {
    if (typeof r.clientId !== "string" || !CLIENT_ID.test(r.clientId)) return undefined;
    lease.clientId = r.clientId;
  }
  if (r.hostname !== undefined) {
    if (typeof r.hostname !== "string" || !HOSTNAME.test(r.hostname)) return undefined;
    lease.hostname = r.hostname;
  }
  return lease;
}

/** A client-sent hostname as stored: printable ASCII, at most 63 bytes, else undefined. */
export function sanitizeHostname(b: Buffer | undefined): string | undefined {
  if (!b || b.length === 0) return undefined;
  // some clients NUL-terminate the option
  const end = b[b.length - 1] === 0 ? b.length - 1 : b.length;
  const s = b.toString("latin1", 0, end);
  return HOSTNAME.test(s) ? s : undefined;
}
