/**
 * The read-only TFTP server of one user stack (`tftp=DIR`), sans-I/O: a UDP payload
 * and the time in, payloads to send out; files come through an injected `TftpFiles`.
 *
 * Theory of operation
 * - The stack hands over every guest datagram to the gateway at a port `ownsPort`
 *   claims: 69 and the port of each running transfer. Replies say which port they
 *   leave from (`fromPort`) and go to the client's address and port.
 * - Transfer ports: each transfer gets its own server port (its TID, RFC 1350), taken
 *   in turn from `portRange` (49152 up by default) so a port is not reused soon after
 *   its transfer ended. libslirp instead sends everything from port 69 and tells
 *   transfers apart by the client's port; `replyFrom: "listen-port"` does that. While a
 *   transfer port is in use, guest datagrams to the gateway at that port reach us, not
 *   the host's loopback; that is the price of RFC behaviour.
 *   A client that sends its ACKs to port 69 anyway (it never switched to our TID) is
 *   still served: its packets go to its transfer, and from then on that transfer
 *   answers from port 69 too.
 * - RRQ without options, or whose options we all ignore: DATA block 1 at once. With
 *   options (RFC 2347): an OACK listing only what we accept, then DATA once the client
 *   ACKs block 0 (an ERROR from it ends the transfer). Accepted: blksize (RFC 2348,
 *   8..65464, answered with at most `mtu` - 72: 1428 at MTU 1500 like libslirp, which
 *   leaves room for IPv4 or IPv6 headers so no DATA packet is ever fragmented);
 *   tsize (RFC 2349, answered with the file size; octet only, as tftp-hpa: in
 *   netascii the size on the wire is not known in advance); timeout (RFC 2349,
 *   1..255 s, used as our retransmission timeout); windowsize (RFC 7440, 1..65535,
 *   answered with at most `maxWindowSize` (64) and at most `maxWindowBytes` (1 MiB) of
 *   data). Values out of range, not numeric, repeated (the first counts) or unknown
 *   options are left out of the OACK. The one refusal (ERROR 8) is a blksize
 *   below 8: such a client cannot take the 512 bytes we would otherwise send.
 * - Sending (RFC 7440): a window of `windowsize` blocks (1 without the option), then
 *   wait. An ACK of block n (any n in flight) moves the window to start at n+1 and
 *   sends it, so an ACK in mid-window re-sends from the first block the client lacks.
 *   An ACK that acknowledges nothing new is ignored with windowsize 1 (RFC 1123: no
 *   "Sorcerer's Apprentice" doubling); with a larger window it re-sends the window once
 *   per window position (a client timing out), never more. Block numbers wrap from
 *   65535 to 0 (tftp-hpa, iPXE, U-Boot all expect that), so any file size works.
 * - The final block is the first one shorter than blksize (empty when the file size is
 *   a multiple of it); the transfer ends when the client ACKs it. libslirp forgets the
 *   session as soon as it sent the last block; we wait for the ACK and re-send.
 * - Timeouts: with nothing acknowledged for `timeoutMs` (2 s, or the negotiated
 *   timeout) the OACK or the window is re-sent; after `retries` (5) re-sends without
 *   progress the transfer gets an ERROR 0 "timed out" and is dropped.
 * - Modes: octet; netascii converted on the fly (LF → CR LF, CR → CR NUL, see
 *   tftp-blocks.ts; libslirp refuses netascii, but tftp-hpa's client uses it by
 *   default); mail → ERROR 4.
 * - Errors: WRQ → ERROR 2 (read-only); file not found → 1; outside the root, not a
 *   regular file, unreadable → 2; malformed request or unsupported mode → 4;
 *   DATA/OACK/RRQ/WRQ at a transfer port → ERROR 4 and the transfer ends; a packet to a
 *   transfer port from another endpoint → ERROR 5 to that endpoint, the transfer goes
 *   on; a read error → ERROR 0, transfer dropped; more than `maxTransfers` (64) at once
 *   → ERROR 0 "server busy" ("tftp-busy"), and more than `maxTransfersPerGuest` (8)
 *   from one guest (its guest id, stack/guest-bounds.ts) → the same ERROR,
 *   counted "tftp-busy-guest", so one guest cannot hold every transfer. A duplicate RRQ from a client endpoint whose transfer is
 *   running is ignored (its transfer re-sends on its own timer). ERROR packets are
 *   never answered. Undecodable packets at a transfer port are dropped and counted.
 * - Concurrency: `handle` and `onTimer` are async (file opens and reads). Each
 *   transfer runs its steps one at a time, in arrival order; transfers run side by
 *   side. A transfer is registered before its file is opened, so a duplicate RRQ that
 *   arrives meanwhile finds it.
 * Not done: WRQ (writing), RFC 2090 multicast, the "utimeout" and "rollover" options
 *   (rollover is always to 0), adaptive retransmission timeouts.
 */
import type { Logger } from "../../log.js";
import { DropCounters } from "../../stack/drop-counters.js";
import { GuestCounts } from "../../stack/guest-bounds.js";
import { type BlockSource, NetasciiBlocks, OctetBlocks, type TftpFile } from "./tftp-blocks.js";
import {
  decodeTftp,
  encodeTftp,
  TFTP_DATA_HEADER_LENGTH,
  TFTP_PORT,
  TftpErrorCode,
  type TftpMode,
  TftpOpcode,
  type TftpOption,
  type TftpPacket,
  tftpOpcodeOf,
  tftpOptionNumber,
} from "./tftp-packet.js";

export interface TftpEndpoint {
  addr: number;
  port: number;
}

/** A guest datagram to the gateway at a port the server owns. */
export interface TftpIncoming {
  client: TftpEndpoint;
  /** the sender's guest id (stack/guest-bounds.ts); its address when absent */
  guest?: number;
  serverPort: number;
  payload: Buffer;
}

export interface TftpSend {
  to: TftpEndpoint;
  fromPort: number;
  payload: Buffer;
}

export type { TftpFile };

export type TftpOpenError = "not-found" | "access-violation";

/** Read-only file access, relative to the served root; see tftp-root.ts. */
export interface TftpFiles {
  open(relativePath: string): Promise<TftpFile | { error: TftpOpenError }>;
}

export interface TftpServerOptions {
  files: TftpFiles;
  logger: Logger;
  /** what is served, for logs and stats (e.g. the directory) */
  root?: string;
  /** link MTU; caps blksize at mtu - 72 (default 1500 → 1428) */
  mtu?: number;
  maxTransfers?: number;
  /** transfers one guest may run at once (default 8, at most maxTransfers) */
  maxTransfersPerGuest?: number;
  /** retransmission timeout without the timeout option, ms (default 2000) */
  timeoutMs?: number;
  /** re-sends without progress before giving up (default 5) */
  retries?: number;
  maxWindowSize?: number;
  /** cap on blksize × windowsize (default 1 MiB) */
  maxWindowBytes?: number;
  /** ports for transfers (default 49152..65535) */
  portRange?: { first: number; count: number };
  /** "transfer-port" (RFC 1350, default) or "listen-port" (everything from 69, as libslirp) */
  replyFrom?: "transfer-port" | "listen-port";
}

export interface TftpStats {
  root: string;
  active: number;
  started: number;
  completed: number;
  /** dropped after `retries` re-sends without an answer */
  timedOut: number;
  /** ended by an ERROR from the client */
  abortedByClient: number;
  /** ended by a read error or a protocol violation of the client */
  failed: number;
  /** requests answered with an ERROR, by reason */
  refused: Record<string, number>;
  /** packets dropped without an answer, by reason */
  ignored: Record<string, number>;
  unknownTransferId: number;
  blocksSent: number;
  bytesSent: number;
  retransmittedBlocks: number;
}

/** IPv4 (20) or IPv6 (40) header, UDP (8), TFTP (4), 20 to spare: libslirp's 1428 at 1500. */
const BLKSIZE_HEADROOM = 72;
const DEFAULT_BLKSIZE = 512;
const MIN_BLKSIZE = 8;
const MAX_BLKSIZE = 65464;

type Phase = "opening" | "oack" | "data" | "closed";

interface Transfer {
  readonly key: string;
  /** the guest id it counts against */
  readonly guest: number;
  readonly client: TftpEndpoint;
  /** the transfer's own port (its TID); 69 with `replyFrom: "listen-port"` */
  readonly port: number;
  /** where replies leave from: `port`, or 69 once the client talks to 69 */
  replyPort: number;
  readonly filename: string;
  readonly mode: TftpMode;
  phase: Phase;
  file: TftpFile | undefined;
  source: BlockSource | undefined;
  blksize: number;
  windowsize: number;
  timeoutMs: number;
  oack: Buffer | undefined;
  /** oldest unacknowledged block (unwrapped, from 1) */
  base: number;
  /** highest block sent so far */
  sentHigh: number;
  /** the final block's number, once it was read */
  finalBlock: number | undefined;
  /** the window at `base` was already re-sent for a duplicate ACK */
  resentAtBase: boolean;
  deadline: number | undefined;
  tries: number;
  /** the end of this transfer's queue of steps */
  tail: Promise<unknown>;
}

interface Negotiated {
  blksize: number;
  windowsize: number;
  timeoutMs: number | undefined;
  /** options for the OACK; tsize's value is filled in once the file is open */
  accepted: TftpOption[];
  refusal: string | undefined;
}

const endpointKey = (e: TftpEndpoint) => `${e.addr}:${e.port}`;
const sameEndpoint = (a: TftpEndpoint, b: TftpEndpoint) => a.addr === b.addr && a.port === b.port;

export class TftpServer {
  private readonly files: TftpFiles;
  private readonly log: Logger;
  private readonly root: string;
  private readonly maxBlksize: number;
  private readonly maxTransfers: number;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly maxWindowSize: number;
  private readonly maxWindowBytes: number;
  private readonly portFirst: number;
  private readonly portCount: number;
  private readonly replyFromListenPort: boolean;
  private nextPort = 0;
  private readonly transfers = new Set<Transfer>();
  private readonly byGuest: GuestCounts;
  private readonly byClient = new Map<string, Transfer>();
  /** transfers by their own port; empty with `replyFrom: "listen-port"` */
  private readonly byPort = new Map<number, Transfer>();
  private readonly refused = new DropCounters();
  private readonly ignored = new DropCounters();
  private readonly counts = {
    started: 0,
    completed: 0,
    timedOut: 0,
    abortedByClient: 0,
    failed: 0,
    unknownTransferId: 0,
    blocksSent: 0,
    bytesSent: 0,
    retransmittedBlocks: 0,
  };

  constructor(options: TftpServerOptions) {
    this.files = options.files;
    this.log = options.logger;
    this.root = options.root ?? "";
    const mtu = options.mtu ?? 1500;
    this.maxBlksize = Math.max(MIN_BLKSIZE, Math.min(MAX_BLKSIZE, mtu - BLKSIZE_HEADROOM));
    this.maxTransfers = Math.max(1, options.maxTransfers ?? 64);
    this.byGuest = new GuestCounts({
      max: this.maxTransfers,
      perGuest: Math.max(1, Math.min(this.maxTransfers, options.maxTransfersPerGuest ?? 8)),
    });
    this.timeoutMs = Math.max(1, options.timeoutMs ?? 2000);
    this.retries = Math.max(0, options.retries ?? 5);
    this.maxWindowSize = Math.max(1, Math.min(65535, options.maxWindowSize ?? 64));
    this.maxWindowBytes = Math.max(1, options.maxWindowBytes ?? 1 << 20);
    this.replyFromListenPort = options.replyFrom === "listen-port";
    const range = options.portRange ?? { first: 49152, count: 16384 };
    this.portFirst = range.first;
    this.portCount = Math.min(range.count, 65536 - range.first);
    if (!this.replyFromListenPort && (this.portCount < 1 || this.portFirst <= TFTP_PORT)) {
      throw new RangeError(`tftp: transfer port range ${range.first}+${range.count} is not usable`);
    }
  }

  /** True for 69 and every port a transfer currently uses. */
  ownsPort(port: number): boolean {
    return port === TFTP_PORT || this.byPort.has(port);
  }

  /** One guest datagram in; what to send in reply. Never throws on guest bytes. */
  async handle(pkt: TftpIncoming, now: number): Promise<TftpSend[]> {
    if (pkt.serverPort === TFTP_PORT) return this.onListenPort(pkt, now);
    const t = this.byPort.get(pkt.serverPort);
    if (t === undefined) return this.ignore("tftp-no-transfer");
    if (!sameEndpoint(t.client, pkt.client)) {
      if (tftpOpcodeOf(pkt.payload) === TftpOpcode.ERROR) return this.ignore("tftp-error-from-stranger");
      this.counts.unknownTransferId++;
      return [
        this.error(pkt.client, pkt.serverPort, TftpErrorCode.UNKNOWN_TRANSFER_ID, "unknown transfer ID"),
      ];
    }
    const d = decodeTftp(pkt.payload);
    if (!d.ok) return this.ignore(d.reason);
    return this.step(t, () => this.onTransferPacket(t, d.value, now));
  }

  /** Re-sends what timed out, gives up on transfers that stay silent. */
  async onTimer(now: number): Promise<TftpSend[]> {
    const due = [...this.transfers].filter((t) => t.deadline !== undefined && t.deadline <= now);
    const sends = await Promise.all(due.map((t) => this.step(t, () => this.onTimeout(t, now))));
    return sends.flat();
  }

  /** When `onTimer` next has something to do, if ever. */
  nextDeadline(): number | undefined {
    let next: number | undefined;
    for (const t of this.transfers) {
      if (t.deadline !== undefined && (next === undefined || t.deadline < next)) next = t.deadline;
    }
    return next;
  }

  /** The bounds in force: transfers in all and per guest. */
  get limits(): { maxTransfers: number; maxTransfersPerGuest: number } {
    return { maxTransfers: this.maxTransfers, maxTransfersPerGuest: this.byGuest.bounds.perGuest };
  }

  stats(): TftpStats {
    return {
      root: this.root,
      active: this.transfers.size,
      ...this.counts,
      refused: this.refused.toJSON(),
      ignored: this.ignored.toJSON(),
    };
  }

  // ---- port 69 -----------------------------------------------------------------------

  private async onListenPort(pkt: TftpIncoming, now: number): Promise<TftpSend[]> {
    const d = decodeTftp(pkt.payload);
    const t = this.byClient.get(endpointKey(pkt.client));
    if (!d.ok) {
      const opcode = tftpOpcodeOf(pkt.payload);
      if (t === undefined && (opcode === TftpOpcode.RRQ || opcode === TftpOpcode.WRQ)) {
        return this.refuse(
          pkt.client,
          TftpErrorCode.ILLEGAL_OPERATION,
          d.reason,
          `malformed request (${d.reason})`,
        );
      }
      return this.ignore(d.reason);
    }
    const p = d.value;
    if (p.op === "rrq" || p.op === "wrq") {
      if (t !== undefined) return this.ignore("tftp-duplicate-request");
      if (p.op === "wrq") {
        return this.refuse(
          pkt.client,
          TftpErrorCode.ACCESS_VIOLATION,
          "tftp-write-request",
          "read-only server",
        );
      }
      return this.onReadRequest(pkt.client, pkt.guest ?? pkt.client.addr, p.filename, p.mode, p.options, now);
    }
    if (t !== undefined) {
      if (t.replyPort !== TFTP_PORT) {
        this.log.debug("tftp client talks to port 69, answering from there", { file: t.filename });
        t.replyPort = TFTP_PORT;
      }
      return this.step(t, () => this.onTransferPacket(t, p, now));
    }
    if (p.op === "error") return this.ignore("tftp-error-without-transfer");
    this.counts.unknownTransferId++;
    return [this.error(pkt.client, TFTP_PORT, TftpErrorCode.UNKNOWN_TRANSFER_ID, "unknown transfer ID")];
  }

  private async onReadRequest(
    client: TftpEndpoint,
    guest: number,
    filename: string,
    mode: TftpMode,
    options: TftpOption[],
    now: number,
  ): Promise<TftpSend[]> {
    if (mode === "mail") {
      return this.refuse(
        client,
        TftpErrorCode.ILLEGAL_OPERATION,
        "tftp-mail-mode",
        "mail mode not supported",
      );
    }
    const n = this.negotiate(options, mode);
    if (n.refusal !== undefined) {
      return this.refuse(client, TftpErrorCode.OPTION_REFUSED, "tftp-option-refused", n.refusal);
    }
    if (this.transfers.size >= this.maxTransfers) {
      return this.refuse(client, TftpErrorCode.NOT_DEFINED, "tftp-busy", "server busy, too many transfers");
    }
    if (this.byGuest.over(guest) === "per-guest") {
      return this.refuse(
        client,
        TftpErrorCode.NOT_DEFINED,
        "tftp-busy-guest",
        "server busy, too many transfers from this client",
      );
    }
    const port = this.allocatePort();
    if (port === undefined) {
      return this.refuse(client, TftpErrorCode.NOT_DEFINED, "tftp-no-port", "server busy, no free port");
    }
    const t: Transfer = {
      key: endpointKey(client),
      guest,
      client: { addr: client.addr, port: client.port },
      port,
      replyPort: this.replyFromListenPort ? TFTP_PORT : port,
      filename,
      mode,
      phase: "opening",
      file: undefined,
      source: undefined,
      blksize: n.blksize,
      windowsize: n.windowsize,
      timeoutMs: n.timeoutMs ?? this.timeoutMs,
      oack: undefined,
      base: 1,
      sentHigh: 0,
      finalBlock: undefined,
      resentAtBase: false,
      deadline: undefined,
      tries: 0,
      tail: Promise.resolve(),
    };
    this.transfers.add(t);
    this.byGuest.take(t.guest);
    this.byClient.set(t.key, t);
    if (port !== TFTP_PORT) this.byPort.set(port, t);
    return this.step(t, () => this.openAndStart(t, n, now));
  }

  private async openAndStart(t: Transfer, n: Negotiated, now: number): Promise<TftpSend[]> {
    let opened: Awaited<ReturnType<TftpFiles["open"]>>;
    try {
      opened = await this.files.open(t.filename);
    } catch (e) {
      this.log.warn("tftp open failed", { file: t.filename, error: String(e) });
      opened = { error: "access-violation" };
    }
    if ("error" in opened) {
      this.remove(t);
      const notFound = opened.error === "not-found";
      this.log.debug("tftp request refused", { file: t.filename, reason: opened.error });
      return this.refuse(
        t.client,
        notFound ? TftpErrorCode.FILE_NOT_FOUND : TftpErrorCode.ACCESS_VIOLATION,
        `tftp-${opened.error}`,
        notFound ? "file not found" : "access violation",
      );
    }
    if (t.phase === "closed") {
      opened.close();
      return [];
    }
    t.file = opened;
    t.source =
      t.mode === "netascii" ? new NetasciiBlocks(opened, t.blksize) : new OctetBlocks(opened, t.blksize);
    this.counts.started++;
    this.log.debug("tftp transfer", {
      file: t.filename,
      size: opened.size,
      blksize: t.blksize,
      windowsize: t.windowsize,
    });
    if (n.accepted.length === 0) {
      t.phase = "data";
      return this.sendWindow(t, now);
    }
    const accepted = n.accepted.map((o) =>
      o.name === "tsize" ? { name: o.name, value: `${opened.size}` } : o,
    );
    t.oack = encodeTftp({ op: "oack", options: accepted });
    t.phase = "oack";
    t.deadline = now + t.timeoutMs;
    return [this.send(t, t.oack)];
  }

  private negotiate(options: TftpOption[], mode: TftpMode): Negotiated {
    const n: Negotiated = {
      blksize: DEFAULT_BLKSIZE,
      windowsize: 1,
      timeoutMs: undefined,
      accepted: [],
      refusal: undefined,
    };
    const seen = new Set<string>();
    for (const o of options) {
      const name = o.name.toLowerCase();
      if (seen.has(name)) continue;
      seen.add(name);
      const v = tftpOptionNumber(o.value);
      if (v === undefined) continue;
      switch (name) {
        case "blksize":
          if (v < MIN_BLKSIZE) {
            n.refusal = `blksize ${v} is below ${MIN_BLKSIZE}`;
          } else {
            n.blksize = Math.min(v, this.maxBlksize);
            n.accepted.push({ name, value: `${n.blksize}` });
          }
          break;
        case "tsize":
          if (mode === "octet") n.accepted.push({ name, value: "" });
          break;
        case "timeout":
          if (v >= 1 && v <= 255) {
            n.timeoutMs = v * 1000;
            n.accepted.push({ name, value: `${v}` });
          }
          break;
        case "windowsize":
          if (v >= 1 && v <= 65535) {
            n.windowsize = Math.min(v, this.maxWindowSize);
            n.accepted.push({ name, value: `${n.windowsize}` });
          }
          break;
      }
    }
    // The window is capped in bytes too, whatever the order of the options was.
    const byBytes = Math.max(1, Math.floor(this.maxWindowBytes / n.blksize));
    if (n.windowsize > byBytes) {
      n.windowsize = byBytes;
      for (const o of n.accepted) if (o.name === "windowsize") o.value = `${byBytes}`;
    }
    return n;
  }

  // ---- a transfer's steps --------------------------------------------------------------

  private async onTransferPacket(t: Transfer, p: TftpPacket, now: number): Promise<TftpSend[]> {
    if (t.phase === "closed") return this.ignore("tftp-transfer-ended");
    switch (p.op) {
      case "ack":
        if (t.phase === "opening") return this.ignore("tftp-ack-before-start");
        return this.onAck(t, p.block, now);
      case "error":
        this.counts.abortedByClient++;
        this.log.debug("tftp client ended the transfer", {
          file: t.filename,
          code: p.code,
          message: p.message,
        });
        this.finish(t);
        return [];
      default: {
        this.counts.failed++;
        this.finish(t);
        const msg = `unexpected ${p.op.toUpperCase()} in a read transfer`;
        return [this.error(t.client, t.replyPort, TftpErrorCode.ILLEGAL_OPERATION, msg)];
      }
    }
  }

  private async onAck(t: Transfer, wire: number, now: number): Promise<TftpSend[]> {
    // The one unwrapped block in [base - 1, sentHigh] with these low 16 bits, if any.
    const acked = t.base - 1 + ((wire - (t.base - 1)) & 0xffff);
    if (acked > t.sentHigh) return this.ignore("tftp-ack-out-of-window");
    if (t.phase === "oack") {
      t.phase = "data";
      t.tries = 0;
      return this.sendWindow(t, now);
    }
    if (acked < t.base) {
      if (t.windowsize === 1 || t.resentAtBase) return this.ignore("tftp-duplicate-ack");
      t.resentAtBase = true;
      return this.sendWindow(t, now);
    }
    t.base = acked + 1;
    t.tries = 0;
    t.resentAtBase = false;
    t.source?.release(t.base);
    if (t.finalBlock !== undefined && acked >= t.finalBlock) {
      this.counts.completed++;
      this.log.debug("tftp transfer done", { file: t.filename, blocks: t.finalBlock });
      this.finish(t);
      return [];
    }
    return this.sendWindow(t, now);
  }

  private async onTimeout(t: Transfer, now: number): Promise<TftpSend[]> {
    if (t.phase === "closed" || t.deadline === undefined || t.deadline > now) return [];
    if (t.tries >= this.retries) {
      this.counts.timedOut++;
      this.log.info("tftp transfer timed out", { file: t.filename, block: t.base, tries: t.tries });
      this.finish(t);
      return [this.error(t.client, t.replyPort, TftpErrorCode.NOT_DEFINED, "timed out")];
    }
    t.tries++;
    if (t.phase === "oack" && t.oack !== undefined) {
      t.deadline = now + t.timeoutMs;
      return [this.send(t, t.oack)];
    }
    return this.sendWindow(t, now);
  }

  /** Sends the window starting at `base`. */
  private async sendWindow(t: Transfer, now: number): Promise<TftpSend[]> {
    const source = t.source;
    if (source === undefined) return [];
    const first = t.base;
    const blocks = await source.blocks(first, t.windowsize);
    if (t.phase === "closed") return [];
    const sends: TftpSend[] = [];
    blocks.forEach((data, i) => {
      const block = first + i;
      if (data.length < t.blksize) t.finalBlock = block;
      if (block <= t.sentHigh) this.counts.retransmittedBlocks++;
      const payload = Buffer.allocUnsafe(TFTP_DATA_HEADER_LENGTH + data.length);
      payload.writeUInt16BE(TftpOpcode.DATA, 0);
      payload.writeUInt16BE(block & 0xffff, 2);
      data.copy(payload, TFTP_DATA_HEADER_LENGTH);
      this.counts.blocksSent++;
      this.counts.bytesSent += data.length;
      sends.push(this.send(t, payload));
    });
    t.sentHigh = Math.max(t.sentHigh, first + blocks.length - 1);
    t.deadline = now + t.timeoutMs;
    return sends;
  }

  /** Runs `fn` after the transfer's earlier steps; a failure ends the transfer. */
  private step(t: Transfer, fn: () => Promise<TftpSend[]>): Promise<TftpSend[]> {
    const run = t.tail.then(fn).catch((e: unknown) => {
      if (t.phase === "closed") return [];
      this.counts.failed++;
      this.log.warn("tftp read failed", { file: t.filename, error: String(e) });
      this.finish(t);
      return [this.error(t.client, t.replyPort, TftpErrorCode.NOT_DEFINED, "read error")];
    });
    t.tail = run;
    return run;
  }

  // ---- bookkeeping ---------------------------------------------------------------------

  private allocatePort(): number | undefined {
    if (this.replyFromListenPort) return TFTP_PORT;
    for (let i = 0; i < this.portCount; i++) {
      const p = this.portFirst + (this.nextPort++ % this.portCount);
      if (!this.byPort.has(p)) return p;
    }
    return undefined;
  }

  private remove(t: Transfer): void {
    t.phase = "closed";
    t.deadline = undefined;
    if (this.transfers.delete(t)) this.byGuest.release(t.guest);
    if (this.byClient.get(t.key) === t) this.byClient.delete(t.key);
    if (this.byPort.get(t.port) === t) this.byPort.delete(t.port);
  }

  private finish(t: Transfer): void {
    this.remove(t);
    const file = t.file;
    t.file = undefined;
    t.source = undefined;
    if (file === undefined) return;
    try {
      file.close();
    } catch (e) {
      this.log.warn("tftp close failed", { file: t.filename, error: String(e) });
    }
  }

  private send(t: Transfer, payload: Buffer): TftpSend {
    return { to: t.client, fromPort: t.replyPort, payload };
  }

  private error(to: TftpEndpoint, fromPort: number, code: number, message: string): TftpSend {
    return {
      to: { addr: to.addr, port: to.port },
      fromPort,
      payload: encodeTftp({ op: "error", code, message }),
    };
  }

  private refuse(to: TftpEndpoint, code: number, reason: string, message: string): TftpSend[] {
    this.refused.drop(reason);
    return [this.error(to, TFTP_PORT, code, message)];
  }

  private ignore(reason: string): TftpSend[] {
    this.ignored.drop(reason);
    return [];
  }
}
