/**
 * The host's sockets, behind one small interface, so the NAT can be tested with a
 * fake host. This file and the rest of src/proxy/ are the only code that opens host
 * sockets on a guest's behalf.
 */
import dgram from "node:dgram";

export interface HostEndpoint {
  address: string;
  port: number;
}

export type HostUdpEvent =
  | { type: "datagram"; data: Buffer; from: HostEndpoint }
  /** the last destination answered "port unreachable" (ECONNREFUSED), or another send error */
  | { type: "error"; code: string };

export interface HostUdp {
  send(data: Buffer, to: HostEndpoint): void;
  close(): void;
}

export interface HostNet {
  /** a UDP socket on an ephemeral port, bound to `localAddress` when given */
  bindUdp(localAddress: string | undefined, events: (e: HostUdpEvent) => void): HostUdp;
}

export const nodeHostNet: HostNet = {
  bindUdp(localAddress, events) {
    const sock = dgram.createSocket({ type: "udp4" });
    let closed = false;
    sock.on("message", (data, rinfo) =>
      events({ type: "datagram", data, from: { address: rinfo.address, port: rinfo.port } }),
    );
    // Linux reports ICMP errors to unconnected UDP sockets too (udp(7)); libuv hands them to 'error'.
    sock.on("error", (err: NodeJS.ErrnoException) => events({ type: "error", code: err.code ?? "EIO" }));
    sock.bind({ port: 0, address: localAddress, exclusive: true });
    return {
      send(data, to) {
        if (closed) return;
        sock.send(data, to.port, to.address, (err) => {
          if (err && !closed) events({ type: "error", code: (err as NodeJS.ErrnoException).code ?? "EIO" });
        });
      },
      close() {
        if (closed) return;
        closed = true;
        sock.close();
      },
    };
  },
};
