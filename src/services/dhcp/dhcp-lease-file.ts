/**
 * A LeaseStore backed by one JSON file in the state directory.
 *
 * Theory of operation
 * - Read and written as every state file is (VersionedStateFile, state-file.ts).
 * - `save` hands `{ "version": 1, "leases": [...] }` to a StateWriter (state-file.ts):
 *   written off the event loop, atomically (temp file, fsync, rename, directory
 *   fsync), and coalesced, so a guest renewing in a loop costs one write per write
 *   time, not an fsync per ACK on the event loop. `save` resolves once the lease is on
 *   disk, and the server sends an ACK that changes a lease only then: a crash loses
 *   at most a change no guest was told about.
 * - `load` reads the file once at start. A missing file is an empty table; an
 *   unreadable or corrupt one is logged and treated as empty (the guests then get
 *   addresses by the usual rules, most likely the same ones), never a crash.
 *   Malformed entries are skipped and logged.
 * - A failing save is logged once and counted (`failures()`), not thrown: the server
 *   keeps serving from memory and the next change writes everything again.
 * - The same file, with its own lease records, holds DHCPv6's leases
 *   (dhcpv6-lease-file.ts): `LeaseFileKind` says which records and how they read.
 * Not done: locking against a second process using the same file (one usernet per
 *   state directory is assumed).
 */
import * as path from "node:path";
import type { Logger } from "../../log.js";
import { type StateFs, VersionedStateFile } from "../../state-file.js";
import { type Lease, parseLeases } from "./dhcp-lease.js";

export const LEASE_FILE_VERSION = 1;

/** What one kind of lease file holds: its records, how they are named in logs, how they read. */
export interface LeaseFileKind<L> {
  version: number;
  /** e.g. "DHCP leases" */
  what: string;
  /** e.g. "DHCP lease file" */
  fileLabel: string;
  parse(data: unknown): { leases: L[]; skipped: number };
}

const dhcpv4Leases: LeaseFileKind<Lease> = {
  version: LEASE_FILE_VERSION,
  what: "DHCP leases",
  fileLabel: "DHCP lease file",
  parse: parseLeases,
};

/** A LeaseStore (dhcp-lease.ts) or, with DHCPv6's kind, a Lease6Store (dhcpv6-lease.ts). */
export class FileLeaseStore<L = Lease> {
  readonly file: string;
  private readonly state: VersionedStateFile;

  /**
   * @param stateDir directory for state; created if missing
   * @param fileName e.g. "dhcp-leases-n0.json" (one file per user netdev)
   */
  constructor(
    readonly stateDir: string,
    fileName: string,
    private readonly log: Logger,
    fs?: StateFs,
    private readonly kind: LeaseFileKind<L> = dhcpv4Leases as unknown as LeaseFileKind<L>,
  ) {
    if (fileName === "" || fileName !== path.basename(fileName)) {
      throw new Error(`lease file name must be a plain file name, got "${fileName}"`);
    }
    this.file = path.join(stateDir, fileName);
    this.state = new VersionedStateFile(this.file, kind.version, {
      log,
      what: kind.what,
      fileName: kind.fileLabel,
      fallback: "starting empty",
      ...(fs ? { fs } : {}),
    });
  }

  load(): L[] {
    const body = this.state.load();
    if (body === undefined) return [];
    const { leases, skipped } = this.kind.parse(body.leases);
    if (skipped > 0) this.log.warn(`skipped malformed ${this.kind.what}`, { file: this.file, skipped });
    return leases;
  }

  save(leases: L[]): Promise<boolean> {
    // `leases` is the server's fresh snapshot: rendering it later is rendering the latest
    return this.state.save({ leases });
  }

  flush(): Promise<void> {
    return this.state.flush();
  }

  failures(): number {
    return this.state.failures();
  }
}
