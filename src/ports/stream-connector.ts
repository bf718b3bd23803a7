/**
 * Stream connector: `-netdev socket,connect=host:port` and `-netdev stream,server=off`
 * (TCP or unix socket): one outgoing connection to a QEMU listening with
 * `-netdev socket,listen=` or `-netdev stream,server=on`, carried by one StreamPort.
 *
 * Theory of operation
 * - The port exists from the start and is attached to the hub whether connected or
 *   not; frames sent while disconnected are dropped and counted ("not-connected").
 * - Reconnects for ever. Without `reconnect=`, attempts back off exponentially from
 *   100 ms, doubling up to 5 s; with `reconnect=N`, every N seconds (QEMU 8.1's
 *   meaning; QEMU 7.2 does not reconnect at all). A connection that lasted at least a
 *   second resets the backoff, so a restarted peer is found again within ~100 ms, while
 *   a peer that accepts and hangs up at once is not hammered.
 * - Each attempt is bounded by a connect timeout (10 s): a black-holed address costs
 *   one timer, not a pile of sockets.
 * - Logs: the first failure of a series at warn, repeats at debug, each success at info.
 */
import { createConnection, type Socket } from "node:net";
import type { Logger } from "../log.js";
import { describeError, formatAddress, type StreamAddress } from "./address.js";
import { StreamPort, type StreamPortOptions } from "./stream-port.js";

export interface StreamConnectorOptions extends StreamPortOptions {
  /** the port's name (the netdev id) */
  id: string;
  /** port kind, e.g. "socket-connect" or "stream-connect" */
  kind: string;
  address: StreamAddress;
  log: Logger;
  /** seconds between attempts; 0 or absent = exponential backoff */
  reconnectSeconds?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  connectTimeoutMs?: number;
}

export interface StreamConnectorStats {
  attempts: number;
  connects: number;
}

/** a connection shorter than this does not reset the backoff */
const stableConnectionMs = 1000;

export class StreamConnector {
  readonly port: StreamPort;
  private readonly log: Logger;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly fixedDelayMs: number | undefined;
  private readonly connectTimeoutMs: number;
  private delayMs: number;
  private timer: NodeJS.Timeout | undefined;
  private attempt: Socket | undefined;
  private attempts = 0;
  private connects = 0;
  private failuresInRow = 0;
  private nextAttemptAt = 0;
  private stopped = false;

  constructor(private readonly options: StreamConnectorOptions) {
    this.log = options.log;
    this.port = new StreamPort(options.id, options.kind, options.log, options);
    this.initialBackoffMs = options.initialBackoffMs ?? 100;
    this.maxBackoffMs = options.maxBackoffMs ?? 5000;
    this.fixedDelayMs =
      options.reconnectSeconds && options.reconnectSeconds > 0 ? options.reconnectSeconds * 1000 : undefined;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.delayMs = this.initialBackoffMs;
  }

  /** Starts connecting (at once); never fails, keeps trying until closed. */
  start(): void {
    if (this.stopped || this.attempt || this.port.connected || this.timer) return;
    this.connect();
  }

  get connected(): boolean {
    return this.port.connected;
  }

  stats(): StreamConnectorStats {
    return { attempts: this.attempts, connects: this.connects };
  }

  describe(): string {
    const where = formatAddress(this.options.address);
    if (this.stopped) return `closed (was connecting to ${where})`;
    if (this.port.connected) return `connected to ${where}`;
    if (this.timer) {
      const ms = Math.max(0, Math.round(this.nextAttemptAt - performance.now()));
      return `not connected to ${where}; next attempt in ${ms} ms (${this.attempts} so far)`;
    }
    return `connecting to ${where}`;
  }

  close(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.attempt?.destroy();
    this.attempt = undefined;
    this.port.close();
  }

  private connect(): void {
    this.attempts++;
    const a = this.options.address;
    const socket =
      a.type === "unix"
        ? createConnection({ path: a.path })
        : createConnection({ host: a.host, port: a.port });
    this.attempt = socket;
    socket.setTimeout(this.connectTimeoutMs);
    const onTimeout = () =>
      socket.destroy(Object.assign(new Error("connect timed out"), { code: "ETIMEDOUT" }));
    const onError = (err: Error) => {
      this.attempt = undefined;
      this.failed(describeError(err));
    };
    socket.once("timeout", onTimeout);
    socket.once("error", onError);
    socket.once("connect", () => {
      socket.off("timeout", onTimeout);
      socket.off("error", onError);
      socket.setTimeout(0);
      this.attempt = undefined;
      if (this.stopped) {
        socket.destroy();
        return;
      }
      this.connects++;
      const since = performance.now();
      const peer = formatAddress(a);
      this.log.info("connected", { port: this.port.name, peer, attempts: this.failuresInRow + 1 });
      this.failuresInRow = 0;
      this.port.useSocket(socket, peer, (reason) => {
        if (this.stopped) return;
        this.log.info("connection lost; reconnecting", { port: this.port.name, peer, reason });
        if (performance.now() - since >= stableConnectionMs) this.delayMs = this.initialBackoffMs;
        this.schedule();
      });
    });
  }

  private failed(why: string): void {
    if (this.stopped) return;
    this.failuresInRow++;
    const fields = { port: this.port.name, peer: formatAddress(this.options.address), error: why };
    if (this.failuresInRow === 1) this.log.warn("cannot connect; will keep trying", fields);
    else this.log.debug("connect attempt failed", { ...fields, attempt: this.failuresInRow });
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped || this.timer) return;
    const delay = this.fixedDelayMs ?? this.delayMs;
    if (this.fixedDelayMs === undefined) this.delayMs = Math.min(this.delayMs * 2, this.maxBackoffMs);
    this.nextAttemptAt = performance.now() + delay;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.stopped) this.connect();
    }, delay);
  }
}
