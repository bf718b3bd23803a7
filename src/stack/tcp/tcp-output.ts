/**
 * What the guest-facing TCP code hands the stack to send: a segment with its IPv4
 * source and destination. In a file of its own so that the endpoint, the flow table
 * and TIME_WAIT can all produce one without importing each other.
 */
import type { TcpSegment } from "../wire/tcp.js";

/** A segment for the guest with its IPv4 source and destination. */
export interface TcpOutput {
  src: number;
  dst: number;
  seg: TcpSegment;
  /** set when the payload is larger than one MSS: the link splits it into segments of this size (TSO) */
  gsoSize?: number;
}
