/**
 * What the guest-facing TCP code hands the stack to send: a segment with its source
 * and destination (IPv4 numbers, or IPv6 addresses in `src6`/`dst6`). In a file of
 * its own so that the endpoint, the flow table and TIME_WAIT can all produce one
 * without importing each other.
 */
import type { Ipv6Address } from "../wire/ipv6-addr.js";
import type { TcpSegment } from "../wire/tcp.js";

/** A segment for the guest with its source and destination. */
export interface TcpOutput {
  src: number;
  dst: number;
  seg: TcpSegment;
  /** IPv6 segments only: the source (`src` is 0 then) */
  src6?: Ipv6Address;
  /** IPv6 segments only: the destination (`dst` is 0 then) */
  dst6?: Ipv6Address;
  /** set when the payload is larger than one MSS: the link splits it into segments of this size (TSO) */
  gsoSize?: number;
}
