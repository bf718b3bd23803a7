/**
 * VDE data ports: one Ethernet frame per unix datagram on a connected socket — the
 * data path of a port on a VDE switch (vde_switch, or usernet's own VDE listener,
 * vde-listener.ts), and `-netdev vde,sock=DIR`, which joins an existing vde_switch
 * the way QEMU's `-netdev vde` does (libvdeplug's handshake, vde-wire.ts).
 *
 * Theory of operation
 * - Why the native addon: Node has no unix datagram sockets. The addon already reads
 *   fds in batches on Node's own loop (FdPoller: one crossing into JS per wake-up, up
 *   to 64 frames), writes until EAGAIN and says when the fd is writable again, which
 *   is all a datagram port needs; native/unixdgram.c adds only socket, bind and
 *   connect. The npm package `unix-dgram` would add a second native build (nan) and
 *   one JS callback per datagram, with no batching.
 * - Receive: each datagram is one frame. Empty datagrams (libvdeplug 2's goodbye),
 *   ones shorter than an Ethernet header and ones longer than `vdeMaxFrameLength`
 *   (the read buffer truncates anything past 64 KiB + 256) are dropped and counted
 *   ("empty-datagram", "frame-too-short", "frame-too-long"). The socket is connected,
 *   so the kernel delivers only the peer's datagrams: nobody else can inject frames.
 * - Send: one write(2) per frame until the kernel says EAGAIN (the peer's receive
 *   queue, net.unix.max_dgram_qlen datagrams, is full: it is slow or stopped
 *   reading). The rest wait in a bounded queue (`maxQueuedFrames`, default 256) for
 *   the socket to become writable; what does not fit is dropped ("tx-queue-full"), so
 *   a peer that stops reading costs at most that queue and never stalls the hub.
 *   Frames the kernel refuses otherwise (ECONNREFUSED once the peer is gone) are
 *   dropped ("write-error").
 * - Joining a switch (`sock=DIR`): bind a datagram socket at DIR/.PID-N (as
 *   libvdeplug does; /tmp/vde.PID-N when DIR is not writable), give it mode= (default
 *   0700) and group= the way libvdeplug does (without group=, a switch owned by
 *   another user that is not root gets the switch's group, or everyone, added, so it
 *   can send to us), connect a stream socket to DIR/ctl, send request_v3 for port=
 *   (0: any), read the switch's data socket address (110 bytes, within
 *   `handshakeTimeoutMs`, 5 s), connect to it and remove our socket file (the
 *   connected pair needs no name any more). The port lives as long as the control
 *   stream. When the switch ends it (the switch exited, or `port/remove`), or the API
 *   closes the port by its name, the port leaves the hub and the join is retried after 1 s, doubling up to 30 s, until the
 *   netdev is closed (a failed attempt is logged once per reason); only the first
 *   join at start-up fails the netdev. Under --sandbox a switch that made its
 *   directory anew (vde_switch removes it when it exits) cannot be rejoined: Landlock
 *   allowed the old directory, not the new one.
 * - Offloads: none. The hub hands this port ordinary, fully checksummed frames.
 */
import { chmod, chown, readFile, realpath, stat, unlink } from "node:fs/promises";
import { connect as netConnect, type Socket } from "node:net";
import { userInfo } from "node:os";
import { join } from "node:path";
import type { Hub } from "../hub/hub.js";
import { type FrameSink, type Port, PortCounters, type PortStats } from "../hub/port.js";
import type { Logger } from "../log.js";
import { closeFd, connectUnixDgram, FdPoller, type NativeError, openUnixDgram } from "../native/binding.js";
import { describeError } from "./address.js";
import { minFrameLength } from "./length-prefixed-frames.js";
import type { NetdevHandle } from "./netdev-handle.js";
import { decodeSockaddrUn, encodeVdeRequest, sockaddrUnLength } from "./vde-wire.js";

/** the largest frame a VDE port passes: usernet's largest MTU (65520) plus headers */
export const vdeMaxFrameLength = 65535;
export const defaultVdeMaxQueuedFrames = 256;
export const defaultVdeMaxBatch = 64;
export const handshakeTimeoutMs = 5000;
const retryMinMs = 1000;
const retryMaxMs = 30_000;

/** What a VdePort needs of an FdPoller (tests give fakes). */
export interface VdePoller {
  write(frames: readonly Buffer[]): number;
  waitWritable(cb: () => void): void;
  close(): void;
  stats(): { writeErrors: number };
}

export type VdePollerFactory = (
  fd: number,
  onBatch: (frames: Buffer[]) => void,
  onError: (err: NativeError) => void,
  maxBatch: number,
) => VdePoller;

export const nativeVdePoller: VdePollerFactory = (fd, onBatch, onError, maxBatch) =>
  new FdPoller(fd, "frames", onBatch, { maxBatch, onError });

export interface VdePortOptions {
  name: string;
  /** "vde" (joined a switch) or "vde-listen" (a client of our listener) */
  kind: string;
  log: Logger;
  /** what describe() says */
  description: string;
  maxQueuedFrames?: number;
  maxBatch?: number;
  /** the socket stopped working (a read error); called once */
  onFailure?: (err: NativeError) => void;
  /** close() was called (by its owner, or by the API closing this one port); called once */
  onClosed?: () => void;
  poller?: VdePollerFactory;
}

export class VdePort implements Port {
  readonly name: string;
  readonly kind: string;
  private readonly counters = new PortCounters();
  private readonly log: Logger;
  private readonly poller: VdePoller;
  private readonly maxQueued: number;
  private readonly description: string;
  private readonly onFailure: ((err: NativeError) => void) | undefined;
  private readonly onClosed: (() => void) | undefined;
  private queue: Buffer[] = [];
  private waiting = false;
  private failed: NativeError | undefined;
  private sink: FrameSink | undefined;
  private isClosed = false;
  private seenWriteErrors = 0;

  /** Takes over `fd` (a connected unix datagram socket): close() closes it. */
  constructor(fd: number, options: VdePortOptions) {
    this.name = options.name;
    this.kind = options.kind;
    this.log = options.log;
    this.description = options.description;
    this.maxQueued = options.maxQueuedFrames ?? defaultVdeMaxQueuedFrames;
    this.onFailure = options.onFailure;
    this.onClosed = options.onClosed;
    this.poller = (options.poller ?? nativeVdePoller)(
      fd,
      (frames) => this.fromPeer(frames),
      (err) => this.readFailed(err),
      options.maxBatch ?? defaultVdeMaxBatch,
    );
  }

  get closed(): boolean {
    return this.isClosed;
  }

  send(frames: readonly Buffer[]): void {
    if (this.isClosed || this.failed) {
      this.counters.drop(this.isClosed ? "closed" : "socket-failed", frames.length);
      return;
    }
    let rest = frames;
    if (frames.some((f) => f.length > vdeMaxFrameLength || f.length < minFrameLength)) {
      rest = frames.filter((f) => {
        if (f.length > vdeMaxFrameLength) this.counters.drop("frame-too-long");
        else if (f.length < minFrameLength) this.counters.drop("frame-too-short");
        else return true;
        return false;
      });
    }
    if (this.queue.length === 0) {
      const n = this.write(rest);
      if (n === rest.length) return;
      rest = rest.slice(n);
    }
    const room = Math.max(this.maxQueued - this.queue.length, 0);
    if (room < rest.length) {
      this.counters.drop("tx-queue-full", rest.length - room);
      rest = rest.slice(0, room);
    }
    // the hub's frames are immutable: holding references is safe
    for (const f of rest) this.queue.push(f);
    this.armWritable();
  }

  setReceiver(sink: FrameSink | undefined): void {
    this.sink = sink;
  }

  stats(): PortStats {
    this.foldWriteErrors();
    return this.counters.snapshot();
  }

  queuedFrames(): number {
    return this.queue.length;
  }

  describe(): string {
    if (this.isClosed) return "closed";
    if (this.failed) return `${this.description}: stopped (${this.failed.code ?? this.failed.message})`;
    return this.description;
  }

  close(): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.queue = [];
    this.foldWriteErrors();
    this.poller.close();
    this.onClosed?.();
  }

  private fromPeer(read: Buffer[]): void {
    if (this.isClosed) return;
    let batch = read;
    if (read.some((f) => f.length < minFrameLength || f.length > vdeMaxFrameLength)) {
      batch = read.filter((f) => {
        if (f.length === 0) this.counters.drop("empty-datagram");
        else if (f.length < minFrameLength) this.counters.drop("frame-too-short");
        else if (f.length > vdeMaxFrameLength) this.counters.drop("frame-too-long");
        else return true;
        return false;
      });
    }
    if (batch.length === 0) return;
    this.counters.countRx(batch);
    if (this.sink) this.sink(batch);
    else this.counters.drop("no-receiver", batch.length);
  }

  private readFailed(err: NativeError): void {
    if (this.failed || this.isClosed) return;
    this.failed = err;
    this.counters.drop("read-error");
    this.log.warn("VDE data socket failed; the port stops", {
      port: this.name,
      error: `${err.code ?? ""} ${err.message}`.trim(),
    });
    if (this.queue.length > 0) this.counters.drop("socket-failed", this.queue.length);
    this.queue = [];
    this.onFailure?.(err);
  }

  private write(frames: readonly Buffer[]): number {
    if (frames.length === 0) return 0;
    const n = this.poller.write(frames);
    for (let i = 0; i < n; i++) this.counters.countTx(frames[i] as Buffer);
    return n;
  }

  private armWritable(): void {
    if (this.waiting || this.queue.length === 0) return;
    this.waiting = true;
    this.poller.waitWritable(this.flush);
  }

  private readonly flush = (): void => {
    this.waiting = false;
    if (this.isClosed || this.failed) return;
    const n = this.write(this.queue);
    if (n > 0) this.queue = this.queue.slice(n);
    this.armWritable();
  };

  private foldWriteErrors(): void {
    const e = this.poller.stats().writeErrors;
    if (e > this.seenWriteErrors) {
      // write errors are counted by the poller; the frames were counted as sent
      this.counters.drop("write-error", e - this.seenWriteErrors);
      this.seenWriteErrors = e;
    }
  }
}

// --- joining a vde_switch ----------------------------------------------------------

export interface VdeJoinOptions {
  id: string;
  /** the switch's directory (holding its `ctl` socket) */
  sock: string;
  /** the port asked for; 0 (default): any free port */
  port?: number;
  /** group (name or number) given to our data socket so the switch can send to it */
  group?: string;
  /** mode of our data socket (default 0o700) */
  mode?: number;
  log: Logger;
  maxQueuedFrames?: number;
}

/** A joined switch: the port on our hub and the control stream that keeps it. */
interface Joined {
  port: VdePort;
  ctl: Socket;
  /** the switch's data socket */
  peer: string;
}

/**
 * Does libvdeplug's handshake with the vde_switch at `sock`; resolves with the data
 * port (not yet attached) and the control stream; rejects with an Error saying what
 * failed. Our socket file is removed in every case.
 */
async function joinSwitch(
  o: VdeJoinOptions,
  onFailure: (err: NativeError) => void,
  onClosed: (port: VdePort) => void,
): Promise<Joined> {
  const dir = await realpath(o.sock).catch((err) => {
    throw new Error(`switch directory ${o.sock}: ${describeError(err)}`);
  });
  const ctlPath = join(dir, "ctl");
  const { fd, path } = bindDataSocket(dir);
  let ctl: Socket | undefined;
  let done = false;
  try {
    await setDataSocketAccess(path, ctlPath, o.group, o.mode ?? 0o700);
    ctl = netConnect({ path: ctlPath });
    const description = `usernet ${o.id} user=${safeUserName()} PID=${process.pid}`;
    const reply = await handshake(
      ctl,
      encodeVdeRequest({ kind: "control", port: o.port ?? 0, path, description }),
    );
    const peer = decodeSockaddrUn(reply);
    if (!peer.ok) throw new Error(`the switch answered with a bad address (${peer.reason})`);
    connectUnixDgram(fd, peer.value);
    const port = new VdePort(fd, {
      name: o.id,
      kind: "vde",
      log: o.log,
      description: `vde switch ${dir} (its socket ${peer.value})`,
      maxQueuedFrames: o.maxQueuedFrames,
      onFailure,
      onClosed: () => onClosed(port),
    });
    done = true;
    return { port, ctl, peer: peer.value };
  } catch (err) {
    ctl?.destroy();
    const why = err instanceof Error ? err.message : String(err);
    throw new Error(`cannot join the VDE switch at ${ctlPath}: ${why}`, { cause: err });
  } finally {
    if (!done) closeFd(fd);
    await unlink(path).catch(() => undefined);
  }
}

/** libvdeplug's names: DIR/.PID-N, else /tmp/vde.PID-N when DIR is not ours to write. */
function bindDataSocket(dir: string): { fd: number; path: string } {
  const pid = String(process.pid).padStart(5, "0");
  let lastErr: unknown;
  for (const [base, prefix] of [
    [dir, "."],
    ["/tmp", "vde."],
  ] as const) {
    for (let n = 0; n < 1000; n++) {
      const path = join(base, `${prefix}${pid}-${String(n).padStart(5, "0")}`);
      try {
        return { fd: openUnixDgram(path), path };
      } catch (err) {
        lastErr = err;
        if ((err as NativeError).code !== "EADDRINUSE") break;
      }
    }
  }
  throw new Error(`cannot bind a datagram socket in ${dir} or /tmp: ${describeError(lastErr)}`);
}

/**
 * libvdeplug's rule: group= chowns our socket to that group; without it, mode 0700
 * stays as it is unless the switch belongs to another user who is not root, who then
 * gets our socket by the switch's group (mode |= 070) or, failing that, everyone does.
 */
async function setDataSocketAccess(path: string, ctlPath: string, group: string | undefined, mode: number) {
  let m = mode;
  if (group !== undefined) {
    await chown(path, -1, await groupId(group));
  } else if ((m & 0o077) === 0) {
    const st = await stat(ctlPath).catch(() => undefined);
    const me = process.geteuid?.() ?? 0;
    if (st && st.uid !== 0 && st.uid !== me) {
      const ok = await chown(path, -1, st.gid).then(
        () => true,
        () => false,
      );
      m |= ok ? 0o070 : 0o077;
    }
  }
  await chmod(path, m);
}

/** A group name (from /etc/group) or number. */
export async function groupId(group: string): Promise<number> {
  if (/^[0-9]+$/.test(group)) return Number(group);
  const text = await readFile("/etc/group", "utf8").catch(() => "");
  for (const line of text.split("\n")) {
    const [name, , gid] = line.split(":");
    if (name === group && gid !== undefined && /^[0-9]+$/.test(gid)) return Number(gid);
  }
  throw new Error(`group=${group}: no such group in /etc/group`);
}

function safeUserName(): string {
  try {
    return userInfo().username;
  } catch {
    return "??";
  }
}

/** Sends the request and resolves with the switch's 110-byte answer. */
function handshake(ctl: Socket, request: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let have = 0;
    const finish = (err: Error | undefined, reply?: Buffer) => {
      clearTimeout(timer);
      ctl.off("data", onData);
      ctl.off("error", onError);
      ctl.off("close", onClose);
      ctl.off("connect", onConnect);
      if (err) reject(err);
      else resolve(reply as Buffer);
    };
    const onConnect = () => ctl.write(request);
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      have += chunk.length;
      if (have >= sockaddrUnLength) {
        const all = Buffer.concat(chunks);
        // anything after the answer would be a protocol the switch does not speak
        finish(undefined, all.subarray(0, sockaddrUnLength));
      }
    };
    const onError = (err: Error) => finish(new Error(describeError(err)));
    const onClose = () => finish(new Error("the switch closed the control connection (refused the request)"));
    const timer = setTimeout(
      () => finish(new Error(`no answer within ${handshakeTimeoutMs} ms`)),
      handshakeTimeoutMs,
    );
    ctl.on("data", onData);
    ctl.once("error", onError);
    ctl.once("close", onClose);
    ctl.once("connect", onConnect);
  });
}

/**
 * `-netdev vde,sock=DIR`: joins the switch (rejects when the first join fails) and
 * keeps the port on the hub; rejoins with backoff when the switch drops it.
 */
export async function openVdeJoin(options: VdeJoinOptions, hub: Hub): Promise<NetdevHandle> {
  const log = options.log;
  let current: Joined | undefined;
  let closed = false;
  let retryMs = retryMinMs;
  let timer: NodeJS.Timeout | undefined;
  let lastError = "";

  const lose = (why: string) => {
    const j = current;
    if (!j) return;
    current = undefined;
    hub.detach(j.port);
    j.port.close();
    j.ctl.destroy();
    if (closed) return;
    log.warn("left the VDE switch; rejoining", { port: options.id, reason: why, retryMs });
    schedule();
  };
  const schedule = () => {
    timer = setTimeout(() => void attempt(), retryMs);
    retryMs = Math.min(retryMs * 2, retryMaxMs);
  };
  const adopt = (j: Joined) => {
    if (closed) {
      j.port.close();
      j.ctl.destroy();
      return;
    }
    current = j;
    lastError = "";
    retryMs = retryMinMs;
    // the control stream carries nothing after the handshake; its end is the port's
    j.ctl.on("data", () => undefined);
    j.ctl.once("close", () => {
      if (current === j) lose("the switch closed the control connection");
    });
    j.ctl.on("error", () => undefined);
    hub.attach(j.port);
    log.info("joined the VDE switch", { port: options.id, switch: options.sock, peer: j.peer });
  };
  const onFailure = (err: NativeError) => lose(`data socket: ${err.code ?? err.message}`);
  // closed by someone else (the API closing this one port): rejoin, as after a loss
  const onClosed = (port: VdePort) => {
    if (current?.port === port) lose("the port was closed");
  };
  const attempt = async () => {
    timer = undefined;
    if (closed) return;
    try {
      adopt(await joinSwitch(options, onFailure, onClosed));
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      // one line per new reason; the same failure again is only retried
      if (why !== lastError && !closed)
        log.warn("cannot rejoin the VDE switch; retrying", { port: options.id, error: why });
      lastError = why;
      if (!closed) schedule();
    }
  };

  adopt(await joinSwitch(options, onFailure, onClosed));
  return {
    id: options.id,
    kind: "vde",
    describe: () => {
      if (closed) return "closed";
      if (current) return current.port.describe();
      return `vde switch ${options.sock}: rejoining${lastError ? ` (${lastError})` : ""}`;
    },
    ports: () => (current ? [current.port] : []),
    close: async () => {
      if (closed) return;
      closed = true;
      if (timer) clearTimeout(timer);
      lose("closed");
    },
  };
}
