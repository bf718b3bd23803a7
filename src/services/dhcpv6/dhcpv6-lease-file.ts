/**
 * A Lease6Store backed by one JSON file in the state directory, written the way the
 * DHCPv4 leases are (state-file.ts: off the event loop, atomic, coalesced; a failed
 * write is logged and counted, the server keeps serving from memory; a corrupt file
 * is logged and read as empty).
 */
import * as path from "node:path";
import type { Logger } from "../../log.js";
import { type StateFs, VersionedStateFile } from "../../state-file.js";
import { type Lease6, type Lease6Store, parseLeases6 } from "./dhcpv6-lease.js";

export const LEASE6_FILE_VERSION = 1;

export class FileLease6Store implements Lease6Store {
  readonly file: string;
  private readonly state: VersionedStateFile;

  /** @param fileName e.g. "dhcpv6-leases-n0.json" (one file per user netdev) */
  constructor(
    stateDir: string,
    fileName: string,
    private readonly log: Logger,
    fs?: StateFs,
  ) {
    if (fileName === "" || fileName !== path.basename(fileName)) {
      throw new Error(`lease file name must be a plain file name, got "${fileName}"`);
    }
    this.file = path.join(stateDir, fileName);
    this.state = new VersionedStateFile(this.file, LEASE6_FILE_VERSION, {
      log,
      what: "DHCPv6 leases",
      fileName: "DHCPv6 lease file",
      fallback: "starting empty",
      ...(fs ? { fs } : {}),
    });
  }

  load(): Lease6[] {
    const body = this.state.load();
    if (body === undefined) return [];
    const { leases, skipped } = parseLeases6(body.leases);
    if (skipped > 0) this.log.warn("skipped malformed DHCPv6 leases", { file: this.file, skipped });
    return leases;
  }

  save(leases: Lease6[]): Promise<boolean> {
    return this.state.save({ leases });
  }

  flush(): Promise<void> {
    return this.state.flush();
  }

  failures(): number {
    return this.state.failures();
  }
}
