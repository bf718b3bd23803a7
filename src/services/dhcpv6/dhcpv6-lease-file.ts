/**
 * A Lease6Store backed by one JSON file in the state directory: the DHCPv4 lease file
 * (dhcp-lease-file.ts: off the event loop, atomic, coalesced; a failed write is logged
 * and counted, the server keeps serving from memory; a corrupt file is logged and read
 * as empty) holding DHCPv6's lease records.
 */
import type { Logger } from "../../log.js";
import type { StateFs } from "../../state-file.js";
import { FileLeaseStore, type LeaseFileKind } from "../dhcp/dhcp-lease-file.js";
import { type Lease6, type Lease6Store, parseLeases6 } from "./dhcpv6-lease.js";

export const LEASE6_FILE_VERSION = 1;

const dhcpv6Leases: LeaseFileKind<Lease6> = {
  version: LEASE6_FILE_VERSION,
  what: "DHCPv6 leases",
  fileLabel: "DHCPv6 lease file",
  parse: parseLeases6,
};

export class FileLease6Store extends FileLeaseStore<Lease6> implements Lease6Store {
  /** @param fileName e.g. "dhcpv6-leases-n0.json" (one file per user netdev) */
  constructor(stateDir: string, fileName: string, log: Logger, fs?: StateFs) {
    super(stateDir, fileName, log, fs, dhcpv6Leases);
  }
}
