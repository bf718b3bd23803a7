/**
 * Datagram ports: one Ethernet frame per UDP datagram, no header — QEMU's
 * `-netdev dgram,local.type=inet,...,remote.type=inet,...` and the legacy
 * `-netdev socket,udp=HOST:PORT,localaddr=HOST:PORT`. Multicast (mcast-port.ts) uses
 * the same port with a different pair of sockets.
 *
 * Theory of operation
 * - Receive on the local socket: each datagram is one batch of one frame. Datagrams
 *   shorter than an Ethernet header are dropped and counted ("frame-too-short").
 *   Like QEMU, any sender is accepted: the local address is the only access control,
 *   so bind it to loopback or a private interface.
 * - Send each frame as its own datagram to the remote address. Frames longer than a
 *   UDP datagram can carry (65507 bytes) are dropped ("frame-too-long"); send errors
 *   are counted ("send-error") and logged once per error code, never thrown.
 * - Backpressure: UDP rarely blocks, but when the kernel refuses, libuv queues; past
 *   `maxQueuedBytes` (2 MiB) queued, frames are dropped ("tx-queue-full").
 * - Unix datagram sockets are not supported (Node has none); the CLI refuses them.
 * - Unlike QEMU, `local` may be omitted: an ephemeral port on all addresses is bound.
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import type { FrameSink, Port, PortStats } from "../hub/port.js";
import { PortCounters } from "../hub/port.js";
import type { Logger } from "../log.js";
import { bindHost, describeError, type InetEndpoint } from "./address.js";
import { minFrameLength } from "./length-prefixed-frames.js";
import { defaultMaxQueuedBytes } from "./stream-port.js";

/** the largest UDP payload over IPv4 */
export const maxDatagramFrameLength = 65507;

export interface UdpEndpoint {
  host: string;
  port: number;
}

export interface DatagramPortParts {
  name: string;
  kind: string;
  log: Logger;
  /** receives frames */
  rx: Socket;
  /** sends frames; may be `rx` */
  tx: Socket;
  /** where frames go; absent when `tx` is connected */
  remote?: UdpEndpoint;
  /** datagrams to ignore without counting (our own multicast echoed back) */
  ignore?: (from: RemoteInfo) => boolean;
  /** what describe() says */
  description: string;
  maxQueuedBytes?: number;
}

export class DatagramPort implements Port {
  readonly name: string;
  readonly kind: string;
  private readonly counters = new PortCounters();
  private readonly log: Logger;
  private readonly rx: Socket;
  private readonly tx: Socket;
  private readonly remote: UdpEndpoint | undefined;
  private readonly maxQueuedBytes: number;
  private readonly description: string;
  private readonly loggedErrors = new Set<string>();
  private sink: FrameSink | undefined;
  private isClosed = false;

  constructor(parts: DatagramPortParts) {
    this.name = parts.name;
    this.kind = parts.kind;
    this.log = parts.log;
    this.rx = parts.rx;
    this.tx = parts.tx;
    this.remote = parts.remote;
    this.description = parts.description;
    this.maxQueuedBytes = parts.maxQueuedBytes ?? defaultMaxQueuedBytes;
    const ignore = parts.ignore;
    this.rx.on("message", (msg: Buffer, from: RemoteInfo) => {
      if (ignore?.(from)) return;
      if (msg.length < minFrameLength) {
        this.counters.drop("frame-too-short");
        return;
      }
      const batch = [msg];
      this.counters.countRx(batch);
      if (this.sink) this.sink(batch);
      else this.counters.drop("no-receiver");
    });
    const onError = (err: Error) => this.logOnce("socket error", err);
    this.rx.on("error", onError);
    if (this.tx !== this.rx) this.tx.on("error", onError);
  }

  send(frames: readonly Buffer[]): void {
    if (this.isClosed) {
      this.counters.drop("not-connected", frames.length);
      return;
    }
    for (const f of frames) {
      if (f.length < minFrameLength) {
        this.counters.drop("frame-too-short");
      } else if (f.length > maxDatagramFrameLength) {
        this.counters.drop("frame-too-long");
      } else if (this.tx.getSendQueueSize() >= this.maxQueuedBytes) {
        this.counters.drop("tx-queue-full");
      } else {
        this.counters.countTx(f);
        if (this.remote) this.tx.send(f, this.remote.port, this.remote.host, this.onSent);
        else this.tx.send(f, this.onSent);
      }
    }
  }

  setReceiver(sink: FrameSink | undefined): void {
    this.sink = sink;
  }

  stats(): PortStats {
    return this.counters.snapshot();
  }

  describe(): string {
    return this.isClosed ? "closed" : this.description;
  }

  /** the receiving socket's address (for multicast: the group and port) */
  localAddress(): InetEndpoint {
    const a = this.rx.address();
    return { type: "inet", host: a.address, port: a.port };
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    closeQuietly(this.rx);
    if (this.tx !== this.rx) closeQuietly(this.tx);
  }

  private readonly onSent = (err: Error | null): void => {
    if (!err) return;
    this.counters.drop("send-error");
    this.logOnce("send failed", err);
  };

  private logOnce(what: string, err: Error): void {
    const code = (err as NodeJS.ErrnoException).code ?? err.message;
    if (this.loggedErrors.has(code)) return;
    this.loggedErrors.add(code);
    this.log.warn(`${what} (further ones of this kind are only counted)`, {
      port: this.name,
      error: describeError(err),
    });
  }
}

export interface UdpPortOptions {
  name: string;
  kind?: string;
  log: Logger;
  /** bind address; absent = an ephemeral port on all addresses */
  local?: UdpEndpoint;
  remote: UdpEndpoint;
  maxQueuedBytes?: number;
}

/** A unicast UDP port: bound to `local`, sending to `remote`. Rejects naming the address when binding fails. */
export async function openUdpPort(options: UdpPortOptions): Promise<DatagramPort> {
  const socket = createSocket({ type: "udp4" });
  const local = await bindUdp(socket, options.local?.host ?? "", options.local?.port ?? 0, options.name);
  return new DatagramPort({
    name: options.name,
    kind: options.kind ?? "dgram",
    log: options.log,
    rx: socket,
    tx: socket,
    remote: options.remote,
    description: `udp ${local.host}:${local.port} -> ${options.remote.host}:${options.remote.port}`,
    maxQueuedBytes: options.maxQueuedBytes,
  });
}

/** Binds a UDP socket; resolves to the bound address, rejects with an Error naming it. */
export function bindUdp(socket: Socket, host: string, port: number, name: string): Promise<UdpEndpoint> {
  const address = bindHost(host);
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      closeQuietly(socket);
      reject(new Error(`${name}: cannot bind UDP ${address}:${port}: ${describeError(err)}`));
    };
    socket.once("error", onError);
    socket.bind({ address, port }, () => {
      socket.off("error", onError);
      const a = socket.address();
      resolve({ host: a.address, port: a.port });
    });
  });
}

export function closeQuietly(socket: Socket): void {
  try {
    socket.close();
  } catch {
    // already closed
  }
}
