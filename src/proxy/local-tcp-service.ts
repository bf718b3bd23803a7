/**
 * Local TCP service: serves guest TCP connections to one of usernet's own addresses
 * (DNS over TCP at 10.0.2.3:53, SMB at 10.0.2.4:445) from inside usernet, by adapting
 * the stack's guest connection (`GuestTcp`) to a small byte-stream session.
 *
 * Theory of operation
 * - A guest SYN (`connect-request`) calls the service's `open`, which returns a session
 *   (at once or later) or undefined. The guest gets its SYN-ACK only when a session
 *   exists, and a RST when `open` gives none or fails; so a service that needs
 *   something first (SMB: smbd started and connected) makes the guest wait in SYN-SENT,
 *   never in an established connection that goes nowhere.
 * - Guest → service: in-order guest bytes go to `session.data(chunk, consumed)`; the
 *   guest's window reopens only when the session calls `consumed()`. A session that
 *   stops consuming (too much work in flight, a slow host socket) closes the guest's
 *   window: that is the backpressure, and the endpoint's receive buffer is the bound.
 *   Guest FIN → `session.end()`.
 * - Service → guest: `io.write` hands bytes to the endpoint, which takes what fits in
 *   its bounded send buffer; the rest is held here (copied once, in arrival order) and
 *   sent as the endpoint reports `writable`. `write` returns false while anything is
 *   held, like a Node stream, and `session.writable()` says when the hold has drained.
 *   A session that keeps writing past `maxHeldBytes` (1 MiB) gets its connection reset:
 *   the hold is bounded whatever the session does. `io.end()` sends FIN after the held
 *   bytes; `io.abort()` sends RST. Bytes written before the guest completed the
 *   handshake are held and sent once it has.
 * - Idle timeout (`idleTimeoutMs`, off unless given): no bytes either way for that
 *   long resets the connection. The timer is an ordinary setTimeout owned here (this
 *   is I/O-side code, outside the sans-I/O stack), unref'd.
 * - The session is closed exactly once, whatever ends the connection: guest RST,
 *   the endpoint closing, an abort, the idle timer, or `closeAll()`.
 * - The number of connections is the stack's flow-table bound; counters say how many
 *   were served, refused, reset for holding too much, and timed out idle.
 * Not done: urgent data, anything but IPv4 (the stack's own limits).
 */
import type { Logger } from "../log.js";
import type { TcpEvent } from "../stack/tcp/tcp-endpoint.js";
import type { GuestTcp } from "./tcp-relay.js";

/** The service's side of one connection, as the adapter drives it. */
export interface LocalStreamSession {
  /** guest bytes, in order; call `consumed()` when done with them (reopens the window) */
  data(chunk: Buffer, consumed: () => void): void;
  /** the guest sent FIN: no more bytes will come */
  end(): void;
  /** after `io.write` returned false: the held bytes are all with the endpoint now */
  writable?(): void;
  /** the connection is gone; release everything (called once; `io` is dead afterwards) */
  close(): void;
}

/** The adapter's side, handed to the service's `open`. */
export interface LocalStreamIo {
  /** bytes for the guest (the adapter may keep the buffer); false while some are held back */
  write(data: Buffer): boolean;
  /** FIN to the guest once every written byte is out */
  end(): void;
  /** RST to the guest; the session is closed */
  abort(): void;
}

export interface LocalStreamPeer {
  /** the guest id the connection counts against (stack/guest-bounds.ts) */
  readonly guest?: number;
  readonly guestAddr: number;
  readonly guestPort: number;
  readonly remoteAddr: number;
  readonly remotePort: number;
}

/** Makes the session for a new guest connection; undefined (or a rejection) refuses it. */
export type LocalStreamOpen = (
  peer: LocalStreamPeer,
  io: LocalStreamIo,
) => LocalStreamSession | undefined | Promise<LocalStreamSession | undefined>;

export interface LocalTcpServiceOptions {
  /** a name for logs */
  name: string;
  open: LocalStreamOpen;
  /** no bytes either way for this long resets the connection; off when absent */
  idleTimeoutMs?: number;
  /** most bytes held for the guest beyond the endpoint's send buffer (1 MiB) */
  maxHeldBytes?: number;
}

export interface LocalTcpServiceCounters {
  accepted: number;
  refused: number;
  overflow: number;
  idle: number;
}

interface Conn {
  conn: GuestTcp;
  session: LocalStreamSession | undefined;
  state: "opening" | "open" | "gone";
  held: Buffer[];
  heldBytes: number;
  /** the session wants FIN after the held bytes */
  ending: boolean;
  /** FIN handed to the endpoint */
  finSent: boolean;
  /** the session was told its write was held back; tell it when the hold drains */
  blocked: boolean;
  timer: NodeJS.Timeout | undefined;
}

export class LocalTcpService {
  readonly counters: LocalTcpServiceCounters = { accepted: 0, refused: 0, overflow: 0, idle: 0 };
  private readonly conns = new Map<GuestTcp, Conn>();
  private readonly maxHeldBytes: number;

  constructor(
    private readonly options: LocalTcpServiceOptions,
    private readonly log: Logger,
  ) {
    this.maxHeldBytes = options.maxHeldBytes ?? 1 << 20;
  }

  get size(): number {
    return this.conns.size;
  }

  /** Whether this service serves `conn` (so its later events belong here). */
  owns(conn: GuestTcp): boolean {
    return this.conns.has(conn);
  }

  /** What the stack reports about a connection to this service. */
  event(conn: GuestTcp, ev: TcpEvent): void {
    if (ev.type === "connect-request") return this.open(conn);
    const c = this.conns.get(conn);
    if (!c) return;
    switch (ev.type) {
      case "data": {
        this.touch(c);
        const n = ev.data.length;
        let done = false;
        c.session?.data(ev.data, () => {
          if (done || c.state === "gone") return;
          done = true;
          conn.consume(n);
        });
        return;
      }
      case "writable":
        return this.flush(c);
      case "eof":
        this.touch(c);
        c.session?.end();
        return;
      case "reset":
      case "closed":
        return this.finish(c);
      case "established":
        // bytes a session wrote before the guest's handshake finished
        this.touch(c);
        return this.flush(c);
    }
  }

  /** Resets every connection (usernet is closing). */
  closeAll(): void {
    for (const c of [...this.conns.values()]) {
      this.finish(c);
      c.conn.abort();
    }
  }

  private open(conn: GuestTcp): void {
    if (this.conns.has(conn)) return;
    const c: Conn = {
      conn,
      session: undefined,
      state: "opening",
      held: [],
      heldBytes: 0,
      ending: false,
      finSent: false,
      blocked: false,
      timer: undefined,
    };
    this.conns.set(conn, c);
    const io: LocalStreamIo = {
      write: (data) => this.write(c, data),
      end: () => this.end(c),
      abort: () => {
        if (c.state === "gone") return;
        this.finish(c);
        conn.abort();
      },
    };
    let made: ReturnType<LocalStreamOpen>;
    try {
      made = this.options.open(conn, io);
    } catch (e) {
      made = Promise.reject(e);
    }
    if (made instanceof Promise) {
      made.then(
        (s) => this.opened(c, s),
        (e: unknown) => {
          this.log.warn(`${this.options.name}: cannot serve a connection`, { error: String(e) });
          this.opened(c, undefined);
        },
      );
    } else {
      this.opened(c, made);
    }
  }

  private opened(c: Conn, session: LocalStreamSession | undefined): void {
    if (c.state === "gone") {
      // the guest gave up (RST, SYN retries exhausted) while the service was opening
      session?.close();
      return;
    }
    if (!session) {
      this.counters.refused++;
      this.conns.delete(c.conn);
      c.state = "gone";
      c.conn.refuse();
      return;
    }
    this.counters.accepted++;
    c.session = session;
    c.state = "open";
    this.touch(c);
    c.conn.accept();
  }

  private write(c: Conn, data: Buffer): boolean {
    if (c.state === "gone" || c.ending) return false;
    if (data.length === 0) return c.heldBytes === 0;
    this.touch(c);
    if (c.heldBytes === 0 && c.state === "open") {
      const took = c.conn.write(data);
      if (took === data.length) return true;
      data = data.subarray(took);
    }
    if (c.heldBytes + data.length > this.maxHeldBytes) {
      this.counters.overflow++;
      this.log.warn(`${this.options.name}: connection reset, too many bytes held for the guest`, {
        held: c.heldBytes + data.length,
      });
      this.finish(c);
      c.conn.abort();
      return false;
    }
    // the session may reuse its buffer once write returns
    c.held.push(Buffer.from(data));
    c.heldBytes += data.length;
    c.blocked = true;
    return false;
  }

  private end(c: Conn): void {
    if (c.state === "gone" || c.ending) return;
    c.ending = true;
    if (c.heldBytes === 0 && c.state === "open") {
      c.finSent = true;
      c.conn.shutdownWrite();
    }
  }

  private flush(c: Conn): void {
    if (c.state !== "open") return;
    while (c.held.length > 0) {
      const first = c.held[0] as Buffer;
      const took = c.conn.write(first);
      c.heldBytes -= took;
      if (took < first.length) {
        c.held[0] = first.subarray(took);
        return;
      }
      c.held.shift();
    }
    if (c.ending) {
      if (!c.finSent) {
        c.finSent = true;
        c.conn.shutdownWrite();
      }
      return;
    }
    if (c.blocked) {
      c.blocked = false;
      c.session?.writable?.();
    }
  }

  private touch(c: Conn): void {
    const ms = this.options.idleTimeoutMs;
    if (ms === undefined || c.state === "gone") return;
    if (c.timer) c.timer.refresh();
    else {
      c.timer = setTimeout(() => this.idle(c), ms);
      c.timer.unref();
    }
  }

  private idle(c: Conn): void {
    if (c.state === "gone") return;
    this.counters.idle++;
    this.log.debug(`${this.options.name}: idle connection reset`);
    this.finish(c);
    c.conn.abort();
  }

  /** Forgets the connection and closes its session, once. */
  private finish(c: Conn): void {
    if (c.state === "gone") return;
    const wasOpen = c.state === "open";
    c.state = "gone";
    if (c.timer) clearTimeout(c.timer);
    c.timer = undefined;
    c.held = [];
    c.heldBytes = 0;
    this.conns.delete(c.conn);
    if (wasOpen) c.session?.close();
  }
}
