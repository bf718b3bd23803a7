/**
 * usernet as a VDE switch: `-netdev vde,id=ID,listen=DIR`. VDE clients — QEMU's
 * `-netdev vde,sock=DIR`, `vde_plug DIR`, anything built on libvdeplug — connect to
 * DIR/ctl as they would to a vde_switch, and each becomes a port on our hub.
 *
 * Theory of operation
 * - DIR is created (mode 0700) when missing; an existing one must be a directory.
 *   DIR/ctl is a unix stream socket, bound under a umask of 0177 (mode 0600): only our
 *   uid can attach, as with usernet's other unix listeners. A stale DIR/ctl left by a
 *   dead process is removed; a live one (someone answers) is refused.
 * - Handshake (vde-wire.ts): a client sends request_v3 naming its datagram socket.
 *   We make one datagram socket per client, DIR/NNN.port (NNN counts clients, never
 *   reused), connect it to the client's socket, and answer with its address. The
 *   connected socket receives only that client's datagrams, so a client cannot speak
 *   for another. The requested port number and the management-port request are
 *   accepted and ignored: ports are named ID#N. The request must arrive within
 *   `handshakeTimeoutMs` (5 s) and within 250 bytes; a malformed one is counted by
 *   reason and the connection closed.
 * - Each client is a VdePort (vde-port.ts: bounded queue, drops counted) named ID#N,
 *   kind "vde-listen", on the hub from the handshake until its control stream closes
 *   (QEMU exits, vde_plug ends), its data socket fails or the API closes the port by
 *   name; then it leaves the hub, its control stream is closed (vde_plug exits on
 *   that; QEMU does not watch it, and its frames go nowhere) and its socket file is
 *   removed. Bytes on the control stream after the handshake are
 *   ignored, as vde_switch has no second request on one connection.
 * - Bounded: at most `maxClients` (256) clients; more are refused and counted.
 * - Not here: vde_switch's management console, its port groups, VLANs, its own
 *   MAC learning (our hub floods, as QEMU's does), the v1 request of VDE 1.
 */
import { access, chmod, constants, lstat, mkdir, rmdir, stat, unlink } from "node:fs/promises";
import { createServer, type Server, type Socket } from "node:net";
import { join, resolve } from "node:path";
import type { Hub } from "../hub/hub.js";
import { hostFaults, type Logger } from "../log.js";
import { closeFd, connectUnixDgram, openUnixDgram } from "../native/binding.js";
import { describeError } from "./address.js";
import type { NetdevHandle } from "./netdev-handle.js";
import { clearStaleSocket } from "./unix-socket.js";
import { handshakeTimeoutMs, type VdePollerFactory, VdePort } from "./vde-port.js";
import {
  decodeVdeRequest,
  encodeSockaddrUn,
  vdeRequestFixedLength,
  vdeRequestMaxLength,
} from "./vde-wire.js";

export const defaultVdeMaxClients = 256;

export interface VdeListenerOptions {
  id: string;
  /** the switch directory clients name as sock= */
  dir: string;
  hub: Hub;
  log: Logger;
  maxClients?: number;
  maxQueuedFrames?: number;
  poller?: VdePollerFactory;
}

export interface VdeListenerStats {
  accepted: number;
  active: number;
  /** refused: too many clients */
  rejected: number;
  /** handshakes that failed, by reason */
  failed: Record<string, number>;
}

interface Client {
  port: VdePort;
  ctl: Socket;
  dataPath: string;
}

export class VdeListener {
  private readonly clients = new Set<Client>();
  private readonly log: Logger;
  private readonly maxClients: number;
  private seq = 0;
  private accepted = 0;
  private rejected = 0;
  private readonly failed = new Map<string, number>();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    private readonly options: VdeListenerOptions,
    private readonly ctlIno: number,
    private readonly madeDir: boolean,
  ) {
    this.log = options.log;
    this.maxClients = options.maxClients ?? defaultVdeMaxClients;
    server.on("connection", (socket) => this.accept(socket));
    server.on("error", (err: NodeJS.ErrnoException) =>
      hostFaults.report(
        "vde-listener-accept",
        err.code ?? "EIO",
        "a client was refused",
        { error: describeError(err) },
        this.log,
      ),
    );
  }

  /** Makes DIR and listens on DIR/ctl; rejects with an Error naming DIR when it cannot. */
  static async open(given: VdeListenerOptions): Promise<VdeListener> {
    // clients are told our socket's path: it must not depend on our working directory
    const options = { ...given, dir: resolve(given.dir) };
    const dir = options.dir;
    const fail = (why: string) => new Error(`${options.id}: cannot be a VDE switch at ${dir}: ${why}`);
    let madeDir = false;
    try {
      const st = await lstat(dir);
      if (!st.isDirectory()) throw fail("it exists and is not a directory");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
        if (err instanceof Error && err.message.startsWith(`${options.id}:`)) throw err;
        throw fail(describeError(err));
      }
      await mkdir(dir, { mode: 0o700 }).catch((e) => {
        throw fail(describeError(e));
      });
      madeDir = true;
    }
    const ctlPath = join(dir, "ctl");
    await clearStaleSocket(ctlPath, fail);
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(fail(describeError(err)));
      server.once("error", onError);
      withPrivateUmask(() =>
        server.listen({ path: ctlPath }, () => {
          server.off("error", onError);
          resolve();
        }),
      );
    });
    let ino: number;
    try {
      await chmod(ctlPath, 0o600);
      ino = (await stat(ctlPath)).ino;
    } catch (err) {
      server.close();
      throw fail(`cannot set the mode of ${ctlPath}: ${describeError(err)}`);
    }
    const listener = new VdeListener(server, options, ino, madeDir);
    listener.log.info("VDE switch listening", { dir, ctl: ctlPath });
    return listener;
  }

  ports(): readonly VdePort[] {
    return [...this.clients].map((c) => c.port);
  }

  stats(): VdeListenerStats {
    return {
      accepted: this.accepted,
      active: this.clients.size,
      rejected: this.rejected,
      failed: Object.fromEntries(this.failed),
    };
  }

  describe(): string {
    if (this.closing) return `closed (was a VDE switch at ${this.options.dir})`;
    const n = this.clients.size;
    const bad = [...this.failed.values()].reduce((a, b) => a + b, 0);
    return (
      `VDE switch at ${this.options.dir}, ${n} client${n === 1 ? "" : "s"}` +
      (bad > 0 ? `, ${bad} bad handshake${bad === 1 ? "" : "s"}` : "")
    );
  }

  /** Stops listening, drops every client, removes the socket files (and DIR if we made it). */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of [...this.clients]) this.forget(c);
    await closed;
    const ctlPath = join(this.options.dir, "ctl");
    try {
      if ((await stat(ctlPath)).ino === this.ctlIno) await unlink(ctlPath);
    } catch {
      // already gone
    }
    if (this.madeDir) await rmdir(this.options.dir).catch(() => undefined);
    this.log.info("VDE switch closed", { dir: this.options.dir });
  }

  private fail(socket: Socket, reason: string, detail?: string): void {
    this.failed.set(reason, (this.failed.get(reason) ?? 0) + 1);
    this.log.warn("VDE handshake failed; connection closed", { reason, detail });
    socket.destroy();
  }

  private accept(ctl: Socket): void {
    if (this.closing || this.options.hub.closed) {
      ctl.destroy();
      return;
    }
    if (this.clients.size >= this.maxClients) {
      this.rejected++;
      this.log.warn("too many VDE clients; connection refused", { max: this.maxClients });
      ctl.destroy();
      return;
    }
    const chunks: Buffer[] = [];
    let have = 0;
    let settled = false;
    const settle = () => {
      settled = true;
      clearTimeout(timer);
      ctl.off("data", onData);
    };
    const timer = setTimeout(() => {
      if (settled) return;
      settle();
      this.fail(ctl, "handshake-timeout");
    }, handshakeTimeoutMs);
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      have += chunk.length;
      // a request is one write; a reader that waits for more than its fixed part
      // would hang on a short description, so the fixed part is the signal
      if (have < vdeRequestFixedLength) {
        // a wrong magic or version cannot become a request: say so now, not at the timeout
        const early = decodeVdeRequest(Buffer.concat(chunks));
        if (!early.ok && early.reason !== "request-too-short") {
          settle();
          this.fail(ctl, early.reason);
        }
        return;
      }
      settle();
      const bytes = Buffer.concat(chunks).subarray(0, vdeRequestMaxLength);
      this.handshake(ctl, bytes);
    };
    ctl.on("data", onData);
    ctl.on("error", () => undefined);
    ctl.once("close", () => {
      if (settled) return;
      settle();
      this.failed.set("closed-before-request", (this.failed.get("closed-before-request") ?? 0) + 1);
    });
  }

  private handshake(ctl: Socket, bytes: Buffer): void {
    const req = decodeVdeRequest(bytes);
    if (!req.ok) {
      this.fail(ctl, req.reason);
      return;
    }
    void this.connectClient(ctl, req.value.path, req.value.description);
  }

  private async connectClient(ctl: Socket, clientPath: string, description: string): Promise<void> {
    // vde_switch's check: the client's socket must be ours to read and write
    const ok = await access(clientPath, constants.R_OK | constants.W_OK).then(
      () => true,
      () => false,
    );
    if (this.closing || ctl.destroyed) {
      ctl.destroy();
      return;
    }
    if (!ok) {
      this.fail(ctl, "client-socket-inaccessible", clientPath);
      return;
    }
    const n = ++this.seq;
    const dataPath = join(this.options.dir, `${String(n).padStart(3, "0")}.port`);
    await unlink(dataPath).catch(() => undefined);
    let fd: number;
    try {
      fd = withPrivateUmask(() => openUnixDgram(dataPath));
    } catch (err) {
      this.fail(ctl, "data-socket-failed", describeError(err));
      return;
    }
    try {
      connectUnixDgram(fd, clientPath);
    } catch (err) {
      closeFd(fd);
      await unlink(dataPath).catch(() => undefined);
      this.fail(ctl, "client-connect-failed", describeError(err));
      return;
    }
    if (this.closing || ctl.destroyed) {
      closeFd(fd);
      await unlink(dataPath).catch(() => undefined);
      ctl.destroy();
      return;
    }
    const name = `${this.options.id}#${n}`;
    const port = new VdePort(fd, {
      name,
      kind: "vde-listen",
      log: this.log,
      description: `VDE client ${n} of ${this.options.dir}: ${description}`,
      maxQueuedFrames: this.options.maxQueuedFrames,
      poller: this.options.poller,
      onFailure: () => {
        if (this.clients.has(client)) this.forget(client);
      },
      // the API may close this one port: the client goes with it
      onClosed: () => {
        if (this.clients.has(client)) this.forget(client);
      },
    });
    const client: Client = { port, ctl, dataPath };
    try {
      this.options.hub.attach(port);
    } catch (err) {
      port.close();
      await unlink(dataPath).catch(() => undefined);
      this.fail(ctl, "hub-attach-failed", describeError(err));
      return;
    }
    this.clients.add(client);
    this.accepted++;
    ctl.write(encodeSockaddrUn(dataPath));
    // nothing more is read from the control stream; its end is the client's
    ctl.on("data", () => undefined);
    ctl.once("close", () => {
      if (!this.clients.has(client)) return;
      this.forget(client);
      this.log.info("VDE client disconnected", { port: name });
    });
    this.log.info("VDE client connected", { port: name, client: description });
  }

  private forget(c: Client): void {
    this.clients.delete(c);
    this.options.hub.detach(c.port);
    c.port.close();
    c.ctl.destroy();
    void unlink(c.dataPath).catch(() => undefined);
  }
}

/**
 * Runs `bind` with the umask at 0177, so socket files are created 0600 at once. Both
 * Node's listen() and openUnixDgram bind synchronously, so the umask is back before
 * other code runs. Worker threads cannot set it; the chmod after listening still applies.
 */
function withPrivateUmask<T>(bind: () => T): T {
  let old: number | undefined;
  try {
    old = process.umask(0o177);
  } catch {
    // worker thread
  }
  try {
    return bind();
  } finally {
    if (old !== undefined) process.umask(old);
  }
}

/** `-netdev vde,listen=DIR` as a netdev handle. */
export async function openVdeListener(options: VdeListenerOptions): Promise<NetdevHandle> {
  const l = await VdeListener.open(options);
  return {
    id: options.id,
    kind: "vde-listen",
    describe: () => l.describe(),
    ports: () => l.ports(),
    close: () => l.close(),
  };
}
