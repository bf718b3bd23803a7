/**
 * Typed loader for usernet's native addon (native/, built by node-gyp during
 * `npm install` into build/Release/usernet_native.node; Linux only).
 *
 * Importing this module never throws and loads nothing: the addon is loaded on the
 * first use of a feature that needs it (TAP ports, ICMP ping sockets), and a
 * missing or broken build then throws one NativeUnavailableError that says how to
 * build it. `nativeStatus()` asks without throwing.
 *
 * The wrappers are thin: argument checking and errors come from the C side, which
 * throws Errors carrying Node-style `code` ("EACCES"), `errno` (negative) and
 * `syscall`. What each call does, and its limits, is described in the C sources:
 * native/tap.c, native/ping.c, native/poller.c, native/udp.c, native/unixdgram.c.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** src/native/ and dist/native/ both sit two levels below the package root. */
export const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const addonPath = join(packageRoot, "build", "Release", "usernet_native.node");

export interface TapOptions {
  /** IFF_VNET_HDR with a 12-byte header (virtio_net_hdr_mrg_rxbuf) on every frame */
  vnetHdr: boolean;
  /** multi-queue TAPs are not supported */
  multiQueue?: false;
}

export interface TapHandle {
  /** non-blocking, close-on-exec; hand it to an FdPoller (which then owns it) or closeFd() */
  fd: number;
  /** the interface name the kernel gave (a "tap%d" pattern or "" picks one) */
  name: string;
}

/** An Error from the addon. */
export interface NativeError extends Error {
  code: string;
  errno?: number;
  syscall?: string;
}

export interface NativeConstants {
  TUN_F_CSUM: number;
  TUN_F_TSO4: number;
  TUN_F_TSO6: number;
  TUN_F_TSO_ECN: number;
  /** header size openTap sets with TUNSETVNETHDRSZ (12) */
  VNET_HDR_LEN: number;
  IFNAMSIZ: number;
  VIRTIO_NET_HDR_F_NEEDS_CSUM: number;
  VIRTIO_NET_HDR_F_DATA_VALID: number;
  VIRTIO_NET_HDR_GSO_NONE: number;
  VIRTIO_NET_HDR_GSO_TCPV4: number;
  VIRTIO_NET_HDR_GSO_UDP: number;
  VIRTIO_NET_HDR_GSO_TCPV6: number;
  VIRTIO_NET_HDR_GSO_ECN: number;
  VIRTIO_NET_HDR_LEN: number;
  VIRTIO_NET_HDR_MRG_RXBUF_LEN: number;
}

export type PollerKind = "frames" | "ping" | "udp";

export interface FdPollerOptions {
  /** kind "frames" only: the fd's vnet header size; read Buffers start with it (default 0) */
  vnetHdrLen?: 0 | 10 | 12;
  /** packets read per wake-up at most (default 64, 1..4096) */
  maxBatch?: number;
  /** read and poll errors other than EAGAIN; a "frames" poller stops reading after one */
  onError?: (err: NativeError) => void;
  /** kind "udp" only: ICMP errors the kernel queued for datagrams sent (IP_RECVERR) */
  onReports?: (reports: UdpErrorReport[]) => void;
}

/** One entry of a UDP socket's error queue (struct sock_extended_err and its addresses). */
export interface UdpErrorReport {
  /** SO_EE_ORIGIN_*: 2 an ICMP message came back, 3 an ICMPv6 one, 1 the local stack refused (e.g. EMSGSIZE) */
  origin: number;
  /**
   * ICMP type and code (origin 2): 3/3 port unreachable, 3/1 host unreachable, 11/0 TTL
   * exceeded; ICMPv6's (origin 3): 1/4 port unreachable, 1/0 no route, 1/3 address
   * unreachable, 3/0 hop limit exceeded
   */
  type: number;
  code: number;
  /** the errno the report stands for (ECONNREFUSED = 111 ...) */
  errno: number;
  /** bytes of the failed datagram's payload the report carried */
  length: number;
  /** where the failed datagram was sent */
  dst: string;
  dstPort: number;
  /** who reported it (the ICMP message's source) */
  offender: string;
}

export interface FdPollerStats {
  wakeups: number;
  batches: number;
  packets: number;
  bytes: number;
  readErrors: number;
  writes: number;
  writeBytes: number;
  /** write() calls that stopped at EAGAIN */
  writeEagain: number;
  /** frames the kernel refused (dropped) */
  writeErrors: number;
  /** errno name of the last read or write error */
  lastError: string | null;
  closed: boolean;
  reading: boolean;
}

/** Batches of received packets: new Buffers each time, never reused. */
export type FrameBatchHandler = (frames: Buffer[]) => void;
/** Ping replies (ICMP message without IP header) and their source addresses, index by index. */
export type PingBatchHandler = (messages: Buffer[], sources: string[]) => void;
/** UDP datagrams (new Buffers) with their source addresses and ports, index by index. */
export type UdpBatchHandler = (datagrams: Buffer[], sources: string[], ports: number[]) => void;

interface NativeFdPoller {
  write(
    frames: readonly Buffer[],
    headers?: readonly (Buffer | null | undefined)[],
    tails?: readonly (Buffer | null | undefined)[],
  ): number;
  waitWritable(cb: () => void): void;
  pause(): void;
  resume(): void;
  ref(): void;
  unref(): void;
  close(): void;
  stats(): FdPollerStats;
}

export interface NativeAddon {
  napiVersion: number;
  constants: NativeConstants;
  openTap(name: string, opts: TapOptions): TapHandle;
  openTapInNetns(nsPath: string, userNsPath: string | null, name: string, opts: TapOptions): TapHandle;
  setOffloads(fd: number, flags: number): void;
  closeFd(fd: number): void;
  openPingSocket(bindAddr?: string | null, family?: 4 | 6): number;
  pingSocketIdent(fd: number): number;
  sendPing(fd: number, dstAddr: string, icmpMessage: Buffer): boolean;
  openUdpSocket(bindAddr?: string | null, opts?: UdpSocketOptions, family?: 4 | 6): number;
  udpSend(fd: number, data: Buffer, dstAddr: string, dstPort: number): string | null;
  openUnixDgram(bindPath: string | null): number;
  connectUnixDgram(fd: number, path: string): void;
  livePollers(): number;
  trimMemory(): boolean;
  openNotifySocket(path: string): number;
  notifySend(fd: number, text: string): void;
  encodeStreamFrames(
    out: Buffer,
    frames: readonly Buffer[],
    tails?: readonly (Buffer | null | undefined)[] | null,
    marks?: Int32Array | null,
  ): number;
  FdPoller: new (
    fd: number,
    kind: PollerKind,
    onBatch: (buffers: Buffer[], sources?: string[], ports?: number[]) => void,
    options?: FdPollerOptions,
  ) => NativeFdPoller;
}

export class NativeUnavailableError extends Error {
  readonly code = "ERR_USERNET_NATIVE_UNAVAILABLE";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NativeUnavailableError";
  }
}

export type LoadResult = { ok: true; addon: NativeAddon } | { ok: false; error: NativeUnavailableError };
let state: LoadResult | undefined;

/** One attempt to load an addon file (loadNative() uses addonPath and caches); never throws. */
export function tryLoadNative(path: string = addonPath): LoadResult {
  const feature = "TAP ports, VDE ports and ICMP ping sockets need usernet's native addon";
  if (process.platform !== "linux")
    return { ok: false, error: new NativeUnavailableError(`${feature}, which supports Linux only`) };
  if (!existsSync(path))
    return {
      ok: false,
      error: new NativeUnavailableError(
        `${feature}, and it is not built (${path} is missing): run \`npm install\` in ${packageRoot}, ` +
          "or `npx node-gyp rebuild` there (needs a C compiler, make and python3)",
      ),
    };
  try {
    const addon = createRequire(import.meta.url)(path) as NativeAddon & { unsupported?: string };
    if (addon.unsupported) return { ok: false, error: new NativeUnavailableError(addon.unsupported) };
    return { ok: true, addon };
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    return {
      ok: false,
      error: new NativeUnavailableError(
        `${feature}, and ${path} failed to load (${why}): rebuild it for this Node.js with ` +
          `\`npx node-gyp rebuild\` in ${packageRoot} (or \`npm install\`)`,
        { cause },
      ),
    };
  }
}

/** The addon; throws NativeUnavailableError (once per call, same error) when it cannot load. */
export function loadNative(): NativeAddon {
  state ??= tryLoadNative();
  if (!state.ok) throw state.error;
  return state.addon;
}

/** Whether the addon loads, and why not; never throws. */
export function nativeStatus(): { available: true } | { available: false; reason: string } {
  state ??= tryLoadNative();
  return state.ok ? { available: true } : { available: false, reason: state.error.message };
}

// --- thin wrappers --------------------------------------------------------------

export const nativeConstants = (): NativeConstants => loadNative().constants;

/** A TAP in this process's network namespace. */
export function openTap(name: string, opts: TapOptions): TapHandle {
  return loadNative().openTap(name, opts);
}

/**
 * A TAP created inside another network namespace (nsPath: /var/run/netns/NAME or
 * /proc/PID/ns/net), joining its user namespace first when userNsPath is given
 * (rootless). The calling thread's namespaces are left as they were.
 */
export function openTapInNetns(
  nsPath: string,
  userNsPath: string | null,
  name: string,
  opts: TapOptions,
): TapHandle {
  return loadNative().openTapInNetns(nsPath, userNsPath, name, opts);
}

/** TUNSETOFFLOAD with TUN_F_* bits from nativeConstants(); TSO needs TUN_F_CSUM. */
export function setOffloads(fd: number, flags: number): void {
  loadNative().setOffloads(fd, flags);
}

/** Closes an fd that was never given to an FdPoller. */
export function closeFd(fd: number): void {
  loadNative().closeFd(fd);
}

/**
 * An unprivileged ICMP echo socket (non-blocking; ICMPv6 for `family` 6), bound to
 * bindAddr (default any). Throws code "EACCES" when net.ipv4.ping_group_range (which
 * governs both families) excludes this process.
 */
export function openPingSocket(bindAddr?: string, family: 4 | 6 = 4): number {
  return loadNative().openPingSocket(bindAddr ?? null, family);
}

/** The echo identifier the kernel writes into every request sent on this socket. */
export function pingSocketIdent(fd: number): number {
  return loadNative().pingSocketIdent(fd);
}

/**
 * Sends an ICMP echo request (type 8, code 0, 8-byte header + data; the kernel sets
 * identifier and checksum). False when the socket buffer is full (dropped).
 */
export function sendPing(fd: number, dstAddr: string, icmpMessage: Buffer): boolean {
  return loadNative().sendPing(fd, dstAddr, icmpMessage);
}

export interface UdpSocketOptions {
  /** SO_RCVBUF/SO_SNDBUF wanted (the kernel caps them at net.core.rmem_max/wmem_max) */
  rcvBuf?: number;
  sndBuf?: number;
}

/**
 * A non-blocking UDP socket (IPv4, or IPv6-only for `family` 6) bound to an ephemeral
 * port of bindAddr (default any), with IP_RECVERR/IPV6_RECVERR (ICMP errors for sent
 * datagrams land on its error queue, read by an FdPoller of kind "udp") and the buffer
 * sizes asked for. See native/udp.c.
 */
export function openUdpSocket(bindAddr?: string, opts?: UdpSocketOptions, family: 4 | 6 = 4): number {
  return loadNative().openUdpSocket(bindAddr ?? null, opts, family);
}

/**
 * Sends one datagram now (one sendto). Null when sent, else the errno name of why it
 * was dropped ("EAGAIN"/"ENOBUFS": send buffer full).
 */
export function udpSend(fd: number, data: Buffer, dstAddr: string, dstPort: number): string | null {
  return loadNative().udpSend(fd, data, dstAddr, dstPort);
}

/**
 * A non-blocking unix datagram socket, bound to `bindPath` when given (the file is
 * created with the umask; chmod and unlink are the caller's). Read and write it with
 * an FdPoller of kind "frames": one datagram per frame. See native/unixdgram.c.
 */
export function openUnixDgram(bindPath: string | null): number {
  return loadNative().openUnixDgram(bindPath);
}

/** Connects a unix datagram socket: it then sends to, and receives from, that peer only. */
export function connectUnixDgram(fd: number, path: string): void {
  loadNative().connectUnixDgram(fd, path);
}

/**
 * Writes frames into `out` as a QEMU stream socket carries them (each behind its
 * 4-byte big-endian length), with the work their offload marks left done: `tails[i]`
 * follows `frames[i]`; `marks` holds three values per frame, csumStart (-1: none),
 * csumOffset and gsoSize, as stack/wire/frame-offload.ts defines them (partial
 * checksums completed, TCP/IPv4 super frames cut into gsoSize segments). Returns the
 * bytes written, or, when `out` is too small, minus the bytes needed (nothing
 * written). See native/framing.c.
 */
export function encodeStreamFrames(
  out: Buffer,
  frames: readonly Buffer[],
  tails?: readonly (Buffer | null | undefined)[] | null,
  marks?: Int32Array | null,
): number {
  return loadNative().encodeStreamFrames(out, frames, tails, marks);
}

/**
 * malloc_trim(0): glibc gives the free pages inside its heap back (native/memory.c).
 * Never throws: false when nothing was released or the addon does not load.
 */
export function trimMemory(): boolean {
  state ??= tryLoadNative();
  return state.ok && typeof state.addon.trimMemory === "function" && state.addon.trimMemory();
}

/** A unix datagram socket connected to systemd's NOTIFY_SOCKET (native/notify.c); throws. */
export function openNotifySocket(path: string): number {
  return loadNative().openNotifySocket(path);
}

/** One sd_notify datagram on a socket from openNotifySocket; throws with the errno. */
export function notifySend(fd: number, text: string): void {
  loadNative().notifySend(fd, text);
}

/** Native pollers not yet freed (a closed one goes when its JS object is collected); for leak tests. */
export function livePollers(): number {
  return loadNative().livePollers();
}

/**
 * Batched reads (and, for TAPs, writes) on a non-blocking fd, on Node's event loop.
 * Owns the fd from construction: close() closes it.
 */
export class FdPoller {
  private readonly inner: NativeFdPoller;
  readonly fd: number;
  readonly kind: PollerKind;

  constructor(fd: number, kind: "frames", onBatch: FrameBatchHandler, options?: FdPollerOptions);
  constructor(fd: number, kind: "ping", onBatch: PingBatchHandler, options?: FdPollerOptions);
  constructor(fd: number, kind: "udp", onBatch: UdpBatchHandler, options?: FdPollerOptions);
  constructor(
    fd: number,
    kind: PollerKind,
    onBatch: FrameBatchHandler | PingBatchHandler | UdpBatchHandler,
    options?: FdPollerOptions,
  ) {
    const { FdPoller: Native } = loadNative();
    this.inner = new Native(fd, kind, onBatch as (b: Buffer[], s?: string[], p?: number[]) => void, options);
    this.fd = fd;
    this.kind = kind;
  }

  /**
   * Writes frames (kind "frames") until the kernel says EAGAIN; returns how many were
   * consumed (written, or refused and counted in stats().writeErrors). With vnet
   * headers, headers[i] (exactly vnetHdrLen bytes) goes before frames[i]; a missing
   * one means an all-zero header (a plain, fully checksummed frame). tails[i], when
   * given, follows frames[i] in the same writev (headers in one Buffer, payload in
   * another, never copied together).
   */
  write(
    frames: readonly Buffer[],
    headers?: readonly (Buffer | null | undefined)[],
    tails?: readonly (Buffer | null | undefined)[],
  ): number {
    return this.inner.write(frames, headers, tails);
  }

  /** Calls cb once when the fd is writable again (after write() returned short). */
  waitWritable(cb: () => void): void {
    this.inner.waitWritable(cb);
  }

  /** Stops reading (backpressure) until resume(); the kernel queues or drops meanwhile. */
  pause(): void {
    this.inner.pause();
  }

  resume(): void {
    this.inner.resume();
  }

  /** An open poller keeps the event loop alive (default), like a listening socket. */
  ref(): void {
    this.inner.ref();
  }

  /** Lets the process (or worker) exit while this poller is open; teardown then closes it. */
  unref(): void {
    this.inner.unref();
  }

  /** Stops polling and closes the fd; idempotent. */
  close(): void {
    this.inner.close();
  }

  stats(): FdPollerStats {
    return this.inner.stats();
  }
}
