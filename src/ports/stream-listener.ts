/**
 * Stream listener: `-netdev socket,listen=[host]:port` and `-netdev stream,server=on`
 * (TCP or unix socket). QEMU clients connect with `-netdev socket,connect=` or
 * `-netdev stream,server=off`.
 *
 * Theory of operation
 * - Accepts MANY clients at once (QEMU's own listener takes one). Each client becomes
 *   its own StreamPort named "ID#N" (N counts up from 1, never reused), attached to the
 *   hub on accept and detached when its connection ends, for whatever reason. A client
 *   that sends an impossible frame length is disconnected with a log line; the listener
 *   and the other clients carry on.
 * - Bounded: at most `maxClients` (256) at once; more are closed at once and counted.
 * - Who can attach: whoever can connect puts frames on the virtual LAN and, through a
 *   user netdev's gateway, reaches the owner's loopback as the owner. A unix socket is
 *   made mode 0600 (bound under a umask of 0177, so it is never wider, not even between
 *   bind and chmod) and only our uid can connect; to share it, put it in a directory
 *   of a group and chmod it yourself. A TCP listener cannot tell local users apart:
 *   every user of the machine can connect to it, so opening one logs a warning that
 *   says so (TCP listeners are opt-in; the defaults have none).
 * - Unix sockets: a socket file left by a dead process is removed before listening
 *   (QEMU unlinks unconditionally); a live one (something answers a connect) or a path
 *   that is not a socket is refused. The file is removed on close if it is still ours
 *   (same inode).
 * - Socket activation (`fd`): the listening socket comes from systemd, bound already
 *   (src/systemd/activation.ts). It must be of the kind the netdev names (unix or TCP);
 *   its file and mode are systemd's business (`SocketMode=`), so it is neither chmod'ed
 *   nor removed on close, and clients queued before usernet started are accepted first.
 * - No timeouts: an idle QEMU stays connected as long as it likes, as with QEMU.
 */
import { chmod, stat, unlink } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import type { Hub } from "../hub/hub.js";
import { hostFaults, type Logger } from "../log.js";
import { bindHost, describeError, formatAddress, type StreamAddress } from "./address.js";
import { StreamPort, type StreamPortOptions } from "./stream-port.js";
import { clearStaleSocket } from "./unix-socket.js";

export const defaultMaxClients = 256;
const unixSocketMode = 0o600;

export interface StreamListenerOptions extends StreamPortOptions {
  /** netdev id; clients are named "ID#N" */
  id: string;
  /** port kind, e.g. "socket-listen" or "stream-listen" */
  kind: string;
  address: StreamAddress;
  hub: Hub;
  log: Logger;
  maxClients?: number;
  /** an inherited listening socket (systemd socket activation) instead of binding `address` */
  fd?: number;
}

export interface StreamListenerStats {
  accepted: number;
  active: number;
  /** connections refused because `maxClients` were connected */
  rejected: number;
  /** clients dropped for sending an impossible frame length */
  badLength: number;
}

export class StreamListener {
  private readonly clientPorts = new Set<StreamPort>();
  private readonly log: Logger;
  private readonly maxClients: number;
  private seq = 0;
  private accepted = 0;
  private rejected = 0;
  private badLength = 0;
  private closing: Promise<void> | undefined;
  /** unix socket inode, to remove only our own file on close */
  private unixIno: number | undefined;

  private constructor(
    private readonly server: Server,
    private readonly options: StreamListenerOptions,
    /** the address actually bound (port 0 resolved) */
    readonly address: StreamAddress,
  ) {
    this.log = options.log;
    this.maxClients = options.maxClients ?? defaultMaxClients;
    server.on("connection", (socket) => this.accept(socket));
    // accept(2) failing (EMFILE: libuv closes that client itself): one line, then counted
    server.on("error", (err: NodeJS.ErrnoException) =>
      hostFaults.report(
        "stream-listener-accept",
        err.code ?? "EIO",
        "a client was refused",
        {
          error: describeError(err),
        },
        this.log,
      ),
    );
  }

  /** Listens; rejects with an Error naming the address when that is impossible. */
  static async open(options: StreamListenerOptions): Promise<StreamListener> {
    const where = formatAddress(options.address);
    const fail = (why: string) => new Error(`${options.id}: cannot listen on ${where}: ${why}`);
    if (options.fd !== undefined) return StreamListener.adopt(options, options.fd);
    if (options.address.type === "unix") await clearStaleSocket(options.address.path, fail);
    const server = createServer({ noDelay: true });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(fail(describeError(err)));
      server.once("error", onError);
      const done = () => {
        server.off("error", onError);
        resolve();
      };
      if (options.address.type === "unix") listenPrivately(server, options.address.path, done);
      else server.listen({ host: bindHost(options.address.host), port: options.address.port }, done);
    });
    let bound: StreamAddress;
    let ino: number | undefined;
    if (options.address.type === "unix") {
      bound = options.address;
      try {
        await chmod(options.address.path, unixSocketMode);
        ino = (await stat(options.address.path)).ino;
      } catch (err) {
        server.close();
        throw fail(`cannot set its mode: ${describeError(err)}`);
      }
    } else {
      const a = server.address();
      const port = a && typeof a === "object" ? a.port : options.address.port;
      bound = { type: "inet", host: options.address.host, port };
    }
    const listener = new StreamListener(server, options, bound);
    listener.unixIno = ino;
    listener.log.info("listening", { address: formatAddress(bound) });
    if (bound.type === "inet") {
      listener.log.warn(
        `${options.id}: every local user can connect to ${formatAddress(bound)} and attach to hub ${options.hub.id} ` +
          "(a TCP listener cannot tell users apart); use a unix socket (addr.type=unix) to keep them out",
      );
    }
    return listener;
  }

  /** Listens on an inherited socket; rejects when it is not the kind of socket `address` names. */
  private static async adopt(options: StreamListenerOptions, fd: number): Promise<StreamListener> {
    const fail = (why: string) =>
      new Error(`${options.id}: cannot listen on the socket systemd passed (fd ${fd}): ${why}`);
    const server = createServer({ noDelay: true });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(fail(describeError(err)));
      server.once("error", onError);
      server.listen({ fd }, () => {
        server.off("error", onError);
        resolve();
      });
    });
    // a unix socket has no address Node can read; a TCP one has its port
    const a = server.address();
    const inet = a !== null && typeof a === "object";
    if (inet !== (options.address.type === "inet")) {
      server.close();
      throw fail(`it is a ${inet ? "TCP" : "unix"} socket, the netdev names a ${options.address.type} one`);
    }
    const bound: StreamAddress =
      a !== null && typeof a === "object" ? { type: "inet", host: a.address, port: a.port } : options.address;
    const listener = new StreamListener(server, options, bound);
    listener.log.info("listening on a socket from systemd", { address: formatAddress(bound), fd });
    return listener;
  }

  clients(): readonly StreamPort[] {
    return [...this.clientPorts];
  }

  stats(): StreamListenerStats {
    return {
      accepted: this.accepted,
      active: this.clientPorts.size,
      rejected: this.rejected,
      badLength: this.badLength,
    };
  }

  describe(): string {
    const n = this.clientPorts.size;
    if (this.closing) return `closed (was listening on ${formatAddress(this.address)})`;
    return `listening on ${formatAddress(this.address)}, ${n} client${n === 1 ? "" : "s"}`;
  }

  /** Stops listening, disconnects every client, detaches their ports, removes the unix socket. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const port of this.clientPorts) this.forget(port);
    await closed;
    if (this.address.type === "unix" && this.unixIno !== undefined) {
      try {
        if ((await stat(this.address.path)).ino === this.unixIno) await unlink(this.address.path);
      } catch {
        // already gone: nothing to clean up
      }
    }
    this.log.info("listener closed", { address: formatAddress(this.address) });
  }

  private accept(socket: Socket): void {
    const hub = this.options.hub;
    if (this.closing || hub.closed) {
      socket.destroy();
      return;
    }
    if (this.clientPorts.size >= this.maxClients) {
      this.rejected++;
      this.log.warn("too many clients; connection refused", { max: this.maxClients });
      socket.destroy();
      return;
    }
    this.accepted++;
    const name = `${this.options.id}#${++this.seq}`;
    const peer =
      this.address.type === "unix"
        ? `${this.address.path} (client ${this.seq})`
        : `${socket.remoteAddress}:${socket.remotePort}`;
    const port = new StreamPort(name, this.options.kind, this.log, this.options);
    try {
      hub.attach(port);
    } catch (err) {
      this.log.error("cannot attach client to the hub; connection closed", {
        port: name,
        error: describeError(err),
      });
      socket.destroy();
      return;
    }
    this.clientPorts.add(port);
    this.log.info("client connected", { port: name, peer });
    port.useSocket(socket, peer, (reason) => {
      if (reason === "bad-length") this.badLength++;
      if (this.clientPorts.has(port)) {
        this.forget(port);
        this.log.info("client disconnected", { port: name, peer, reason });
      }
    });
  }

  private forget(port: StreamPort): void {
    this.clientPorts.delete(port);
    this.options.hub.detach(port);
    port.close();
  }
}

/**
 * Binds `server` to the unix socket `path` with the umask at 0177, so the socket file
 * is created 0600 at once. Node binds synchronously inside listen() (the callback
 * comes later), so the umask is back before any other code runs.
 */
function listenPrivately(server: Server, path: string, done: () => void): void {
  let old: number | undefined;
  try {
    old = process.umask(0o177);
  } catch {
    // worker threads cannot set the umask; the chmod after listening still applies
  }
  try {
    server.listen({ path }, done);
  } finally {
    if (old !== undefined) process.umask(old);
  }
}
