/**
 * What opening a port netdev gives the composition root and the control facade: its
 * id, kind and ports, a description and a way to close it. In a file of its own so
 * that each kind's opener (tap-port.ts, loaded only for a TAP) and netdev.ts, which
 * picks the opener, do not import each other.
 */
import type { Port } from "../hub/port.js";
import type { StreamAddress } from "./address.js";

export interface NetdevHandle {
  readonly id: string;
  /** "socket-listen", "socket-connect", "stream-listen", "stream-connect", "dgram", "mcast", "tap", "websocket" */
  readonly kind: string;
  /** e.g. "listening on 127.0.0.1:8010, 2 clients" */
  describe(): string;
  /** listeners: the address bound (port 0 resolved); datagram ports: the local address */
  readonly address?: StreamAddress;
  /** the ports attached to the hub now (a listener has one per client) */
  ports(): readonly Port[];
  close(): Promise<void>;
}
