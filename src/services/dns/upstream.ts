/**
 * The forwarder's view of the resolvers it forwards to: one query out, one matching
 * response back, or a rejection. The real transport (node:dgram, node:net) lives in
 * src/proxy/dns-upstream.ts; tests hand the forwarder a fake.
 *
 * Contract for implementations
 * - `query` sends `packet` once to `server` over `transport` ("tcp" adds the 2-byte
 *   length prefix) and resolves with the first response whose ID and question match
 *   the packet's; others are ignored. It rejects after `timeoutMs` or on any error,
 *   with a `DnsUpstreamError` whose `reason` the forwarder counts. No retries: retrying
 *   and failover are the forwarder's decisions.
 * - The resolved Buffer belongs to the caller (the forwarder rewrites its ID in place).
 */

export interface DnsServerAddress {
  host: string;
  port: number;
}

export type DnsTransport = "udp" | "tcp";

export interface DnsUpstream {
  query(
    packet: Buffer,
    server: DnsServerAddress,
    transport: DnsTransport,
    timeoutMs: number,
  ): Promise<Buffer>;
}

/** A failed upstream query; `reason` is short and kebab-case, e.g. "timeout". */
export class DnsUpstreamError extends Error {
  constructor(readonly reason: string) {
    super(`dns upstream: ${reason}`);
    this.name = "DnsUpstreamError";
  }
}

/** The reason to count for whatever an upstream rejected with. */
export function upstreamFailureReason(e: unknown): string {
  return e instanceof DnsUpstreamError ? e.reason : "error";
}
