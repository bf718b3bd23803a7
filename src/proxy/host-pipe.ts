/**
 * Host pipe: a local TCP service session that carries the guest's stream to a host
 * TCP endpoint chosen by usernet (not by the guest's destination address), e.g. the
 * private smbd behind 10.0.2.4:445, or a guestfwd target.
 *
 * Theory of operation
 * - `open` asks `target()` where to go (it may start something first: smbd on
 *   demand), connects there, and yields the session only once the host accepted; the
 *   adapter answers the guest's SYN only then. A failed target or connect refuses the
 *   guest (RST).
 * - Guest → host: each chunk is written to the socket and reported consumed when the
 *   kernel has it, so a slow host closes the guest's window. Guest FIN → socket end().
 * - Host → guest: socket data goes to the adapter; when the adapter holds bytes back
 *   (the guest is slow) the socket is paused until `writable`. Host FIN → our FIN after
 *   what is held. A host reset resets the guest; a guest reset (or any end of the
 *   connection before both sides finished) resets the host socket.
 * - Bounds: one socket read (64 KiB) beyond the endpoint's send buffer, held by the
 *   adapter; the connect times out after `connectTimeoutMs` (10 s).
 */
import type { Logger } from "../log.js";
import type { HostEndpoint, HostNet, HostTcp, HostTcpEvent } from "./host-net.js";
import type { LocalStreamIo, LocalStreamOpen, LocalStreamSession } from "./local-tcp-service.js";

export interface HostPipeOptions {
  hostNet: HostNet;
  /** where this connection goes; may take a while (a service starting); rejects to refuse */
  target(): Promise<HostEndpoint>;
  log: Logger;
  connectTimeoutMs?: number;
}

export function hostPipe(options: HostPipeOptions): LocalStreamOpen {
  const timeout = options.connectTimeoutMs ?? 10_000;
  return async (_peer, io) => {
    const to = await options.target();
    return new Promise<LocalStreamSession | undefined>((resolve) => {
      const pipe = new HostPipeSession(io);
      pipe.socket = options.hostNet.connectTcp(to, undefined, timeout, (e: HostTcpEvent) => {
        if (e.type === "connected") return resolve(pipe);
        if (e.type === "connect-failed") {
          options.log.warn("cannot connect to the local service", {
            to: `${to.address}:${to.port}`,
            code: e.code,
          });
          return resolve(undefined);
        }
        pipe.fromHost(e);
      });
    });
  };
}

/** The session over a host socket; also used over a stream made elsewhere (an smbd's). */
export class HostPipeSession implements LocalStreamSession {
  socket: HostTcp | undefined;
  private guestEnded = false;
  private hostEnded = false;
  private hostClosed = false;
  private closed = false;

  constructor(private readonly io: LocalStreamIo) {}

  data(chunk: Buffer, consumed: () => void): void {
    this.socket?.write(chunk, consumed);
  }

  end(): void {
    this.guestEnded = true;
    this.socket?.end();
  }

  writable(): void {
    this.socket?.resume();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    // after FIN both ways Node closes the socket itself; anything else is an abort
    if (!this.hostClosed && !(this.guestEnded && this.hostEnded)) this.socket?.reset();
  }

  fromHost(e: HostTcpEvent): void {
    if (this.closed) return;
    switch (e.type) {
      case "data":
        if (!this.io.write(e.data)) this.socket?.pause();
        return;
      case "end":
        this.hostEnded = true;
        this.io.end();
        return;
      case "error":
        this.hostClosed = true;
        this.io.abort();
        return;
      case "closed":
        this.hostClosed = true;
        if (!this.hostEnded) this.io.abort();
        return;
      default:
        return;
    }
  }
}
