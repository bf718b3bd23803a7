/**
 * TCP relay: carries each guest TCP connection (terminated by the stack's endpoint)
 * over an ordinary host socket, and back.
 *
 * Theory of operation
 * - A guest SYN reaches us as `connect-request`. The NAT policy picks the host address
 *   (the gateway stands for 127.0.0.1, the IPv6 gateway for ::1; a NAT64 address for its
 *   IPv4 address, nat-policy.ts); the relay connects, and only when the host
 *   accepted does the guest get its SYN-ACK (`accept`). A refused, unreachable or
 *   timed-out connect (after `connectTimeoutMs`, 30 s) answers the guest with RST, so a
 *   guest never hangs on a dead destination. So does a connect the host itself cannot
 *   make (EMFILE, EADDRNOTAVAIL when the outbound address is gone, ...; libslirp sends
 *   an ICMP unreachable there, which ends the guest's connect as promptly): a host
 *   fault besides, logged once and counted (log.ts). A destination the policy forbids
 *   (restrict=on, host-loopback=off) is refused at once.
 * - Guest → host: in-order guest bytes (`data`) are gathered per connection for the
 *   rest of the event-loop turn (one socket read of guest frames carries dozens of
 *   segments) and written to the socket as one buffer at its end (a microtask), or
 *   before a FIN: one write(2) per batch instead of one per segment. The stack is told
 *   `consume` only when the socket has handed them to the kernel, so the window the
 *   guest sees closes when the host reads slowly. The bytes are views into guest
 *   frames, which the hub contract keeps immutable, so holding them is safe.
 * - Host → guest: socket data goes to `write`, which copies what fits into the
 *   endpoint's bounded send buffer (host reads land in one reused buffer, see
 *   host-net.ts). If it takes less, the rest is copied and held (one chunk) and the
 *   socket is paused until the endpoint says `writable`: a slow guest stops the host
 *   socket. A bulk transfer's socket reads straight into the send buffer instead
 *   (`lendSpace` before each read, `writeLent` after it, no copy), sized to the room
 *   there, so nothing is held; never while a chunk is held, so the two never mix.
 * - Half-close both ways: guest FIN → socket end(); host FIN → `shutdownWrite` once the
 *   held data is in. RST both ways: guest RST → socket reset; host reset → `abort`.
 *   `closed` from the stack after FINs both ways (our side's TIME_WAIT begins, which
 *   the stack keeps without us) lets the socket finish its own close; before that it
 *   resets the socket.
 * - Buffer budget (stack/guest-bounds.ts ByteBudget): the endpoint charges the bytes in
 *   its send buffer to the guest. After each read taken, a guest with no room left gets
 *   this socket paused and registered with the budget (`awaitBudget`, once per pause);
 *   the budget wakes it when that guest has room again (any of its connections released
 *   bytes), and the wake resumes the socket a microtask later (never inside the stack's
 *   call). While the guest has less room than one shared read (256 KiB), reads go into
 *   a 16 KiB buffer, so what a socket reads after the budget ran out is small.
 * - Bounds: the endpoint's buffers (send and receive, 1 MiB each, within the guest's
 *   budget) plus at most one held chunk per connection (a socket read, at most 256 KiB);
 *   the number of connections is the stack's flow table bound.
 */
import { hostFaults, type Logger } from "../log.js";
import type { TcpEvent } from "../stack/tcp/tcp-endpoint.js";
import { ipv4ToString } from "../stack/wire/addr.js";
import { type IpAddress, type Ipv6Address, ipv6ToString } from "../stack/wire/ipv6-addr.js";
import { type HostNet, type HostTcp, type HostTcpEvent, hostFaultCodes } from "./host-net.js";
import { NatFlows } from "./nat-flows.js";
import type { NatPolicy } from "./nat-policy.js";

/** the shared read buffer's size (host-net.ts): a read may bring this much */
const sharedReadBytes = 256 * 1024;
/** What a socket paused for send-buffer room reads into first when it resumes (see readInto). */
const resumeReadBuffer = Buffer.allocUnsafeSlow(16 * 1024);

/** One guest connection as the stack lets the relay drive it. */
export interface GuestTcp {
  /** the guest id it counts against (stack/guest-bounds.ts) */
  readonly guest?: number;
  /** IPv4 addresses (0 on a connection over IPv6) */
  readonly guestAddr: number;
  readonly guestPort: number;
  readonly remoteAddr: number;
  readonly remotePort: number;
  /** the addresses of a connection over IPv6 (undefined on IPv4) */
  readonly guestAddr6?: Ipv6Address | undefined;
  readonly remoteAddr6?: Ipv6Address | undefined;
  accept(): void;
  refuse(): void;
  /** bytes for the guest; returns how many the endpoint took */
  write(data: Buffer): number;
  /** send-buffer space to read host bytes into, if the endpoint lends it */
  lendSpace?(): Buffer | undefined;
  /** `write` for n bytes read into a view from `lendSpace` */
  writeLent?(view: Buffer, n: number): number;
  /** true when the send buffer is (nearly) full; `writable` follows once it has room */
  awaitSendRoom?(): boolean;
  /** bytes the guest's buffer budget has room for now (stack/guest-bounds.ts ByteBudget) */
  budgetRoom?(): number;
  /** calls `wake` once when the guest's budget has room again (from inside the stack: it must only schedule) */
  awaitBudget?(wake: () => void): void;
  consume(n: number): void;
  shutdownWrite(): void;
  abort(): void;
}

export interface TcpRelayOptions {
  connectTimeoutMs?: number;
}

export interface TcpFlowInfo {
  guest: string;
  remote: string;
  host: string;
  state: "connecting" | "open" | "closing";
  toHostBytes: number;
  toGuestBytes: number;
  ageMs: number;
}

interface Relay {
  /** the connection, which is also the relay's key */
  key: GuestTcp;
  conn: GuestTcp;
  host: string;
  socket: HostTcp | undefined;
  state: "connecting" | "open" | "closing";
  /** host bytes the endpoint could not take yet */
  held: Buffer | undefined;
  /** the send-buffer view the socket reads into next, if lent */
  lent: Buffer | undefined;
  /** the socket is paused because the send buffer had no room to lend */
  awaitingRoom: boolean;
  /** the socket is paused because the guest's buffer budget is spent (`wake` resumes) */
  awaitingBudget: boolean;
  /** registered with the budget while awaitingBudget; made once per relay */
  wake: () => void;
  /** guest bytes gathered this turn for one write to the host */
  outgoing: Buffer[];
  outgoingBytes: number;
  hostEnded: boolean;
  /** the guest's FIN came (socket end() was called) */
  guestEnded: boolean;
  toHostBytes: number;
  toGuestBytes: number;
  created: number;
}

export interface TcpRelayCounters {
  connects: number;
  refused: number;
  failed: number;
  denied: number;
}

export class TcpRelay {
  readonly counters: TcpRelayCounters = { connects: 0, refused: 0, failed: 0, denied: 0 };
  private readonly relays = new NatFlows<GuestTcp, Relay>();
  private readonly connectTimeoutMs: number;

  constructor(
    private readonly hostNet: HostNet,
    private readonly policy: NatPolicy,
    private readonly log: Logger,
    private readonly now: () => number,
    options: TcpRelayOptions = {},
  ) {
    this.connectTimeoutMs = options.connectTimeoutMs ?? 30_000;
  }

  /** What the stack reports about a connection. */
  event(conn: GuestTcp, ev: TcpEvent): void {
    if (ev.type === "connect-request") return this.connect(conn);
    const r = this.relays.get(conn);
    if (!r) return;
    switch (ev.type) {
      case "data":
        r.toHostBytes += ev.data.length;
        r.outgoing.push(ev.data);
        r.outgoingBytes += ev.data.length;
        if (r.outgoing.length === 1) queueMicrotask(() => this.flushToHost(r));
        return;
      case "writable":
        return this.flushHeld(r);
      case "eof":
        this.flushToHost(r);
        r.guestEnded = true;
        r.socket?.end();
        return;
      case "reset":
        r.socket?.reset();
        this.relays.delete(r);
        return;
      case "closed":
        // after FINs both ways Node closes the socket itself once its writes are out
        if (r.state !== "closing" && !(r.guestEnded && r.hostEnded)) r.socket?.reset();
        this.relays.delete(r);
        return;
      case "established":
        if (r.state === "connecting") {
          // a forwarded connection: the guest answered; let the host's bytes flow
          r.state = "open";
          r.socket?.resume();
        }
        return;
    }
  }

  list(): TcpFlowInfo[] {
    return this.relays.list(this.now(), (r, ageMs) => ({
      guest: endpoint(r.conn.guestAddr6 ?? r.conn.guestAddr, r.conn.guestPort),
      remote: endpoint(r.conn.remoteAddr6 ?? r.conn.remoteAddr, r.conn.remotePort),
      host: r.host.includes(":") ? `[${r.host}]:${r.conn.remotePort}` : `${r.host}:${r.conn.remotePort}`,
      state: r.state,
      toHostBytes: r.toHostBytes,
      toGuestBytes: r.toGuestBytes,
      ageMs,
    }));
  }

  get size(): number {
    return this.relays.size;
  }

  closeAll(): void {
    for (const r of [...this.relays.values()]) {
      this.relays.delete(r);
      r.socket?.reset();
      r.conn.abort();
    }
  }

  /**
   * Relays a connection the host side opened (a port forward): `conn` is the active
   * open towards the guest; the host socket stays paused until the guest answers.
   * If the guest refuses (RST) the host client is reset too.
   */
  adopt(conn: GuestTcp, hostLabel: string, open: (events: (e: HostTcpEvent) => void) => HostTcp): void {
    const r = this.track(conn, hostLabel);
    r.socket = open((e) => this.fromHost(r, e));
    r.socket.pause();
  }

  /** A new relay record, connecting, registered for `conn`. */
  private track(conn: GuestTcp, host: string): Relay {
    const r: Relay = {
      key: conn,
      conn,
      host,
      socket: undefined,
      state: "connecting",
      held: undefined,
      lent: undefined,
      awaitingRoom: false,
      awaitingBudget: false,
      wake: () => queueMicrotask(() => this.budgetRoomBack(r)),
      outgoing: [],
      outgoingBytes: 0,
      hostEnded: false,
      guestEnded: false,
      toHostBytes: 0,
      toGuestBytes: 0,
      created: this.now(),
    };
    this.relays.add(r);
    return r;
  }

  private connect(conn: GuestTcp): void {
    const remote6 = conn.remoteAddr6;
    const dest =
      remote6 === undefined ? this.policy.destination(conn.remoteAddr) : this.policy.destination6(remote6);
    if (!dest.ok) {
      this.counters.denied++;
      conn.refuse();
      return;
    }
    const r = this.track(conn, dest.address);
    r.socket = this.hostNet.connectTcp(
      { address: dest.address, port: conn.remotePort },
      this.policy.outbound(dest.family ?? 4),
      this.connectTimeoutMs,
      (e) => this.fromHost(r, e),
      () => this.readInto(r),
    );
  }

  private fromHost(r: Relay, e: HostTcpEvent): void {
    if (!this.relays.holds(r)) return;
    switch (e.type) {
      case "connected":
        this.counters.connects++;
        r.state = "open";
        r.conn.accept();
        return;
      case "connect-failed":
        if (e.code === "ECONNREFUSED") this.counters.refused++;
        else this.counters.failed++;
        if (hostFaultCodes.has(e.code)) {
          hostFaults.report(
            "tcp-connect",
            e.code,
            "a guest's connection was refused (RST)",
            {
              to: `${r.host}:${r.conn.remotePort}`,
            },
            this.log,
          );
        }
        this.log.debug("tcp connect failed", { to: `${r.host}:${r.conn.remotePort}`, code: e.code });
        this.relays.delete(r);
        r.conn.refuse();
        return;
      case "data":
        return this.toGuest(r, e.data);
      case "end":
        r.hostEnded = true;
        if (r.held === undefined) r.conn.shutdownWrite();
        return;
      case "error":
        this.relays.delete(r);
        r.conn.abort();
        return;
      case "closed":
        r.state = "closing";
        return;
    }
  }

  private flushToHost(r: Relay): void {
    const n = r.outgoingBytes;
    if (n === 0 || !this.relays.holds(r)) return;
    const data = r.outgoing.length === 1 ? (r.outgoing[0] as Buffer) : Buffer.concat(r.outgoing, n);
    r.outgoing = [];
    r.outgoingBytes = 0;
    r.socket?.write(data, () => {
      if (this.relays.holds(r)) r.conn.consume(n);
    });
  }

  /**
   * Where the socket's next read goes: lent send-buffer space, or (undefined) the
   * shared buffer. Node asks right after each read, so a socket just paused for room
   * gets a small buffer: the one read it makes on resuming is copied, and the reads
   * after it go into the send buffer again.
   */
  private readInto(r: Relay): Buffer | undefined {
    r.lent = r.held === undefined && r.state === "open" ? r.conn.lendSpace?.() : undefined;
    if (r.lent !== undefined) return r.lent;
    // little budget left for the guest: a small read, so a read under way when it runs
    // out passes the budget by 16 KiB at most (per connection)
    const tight = r.conn.budgetRoom !== undefined && r.conn.budgetRoom() < sharedReadBytes;
    return r.awaitingRoom || tight ? resumeReadBuffer : undefined;
  }

  private toGuest(r: Relay, data: Buffer): void {
    const lent = r.lent;
    const intoLent = lent !== undefined && data.buffer === lent.buffer && data.byteOffset === lent.byteOffset;
    r.lent = undefined;
    if (!intoLent && r.held !== undefined) {
      // the socket is paused; a chunk already in flight in Node joins the held one
      r.held = Buffer.concat([r.held, data]);
      return;
    }
    const took = intoLent ? (r.conn.writeLent?.(data, data.length) ?? 0) : r.conn.write(data);
    r.toGuestBytes += took;
    if (took < data.length) {
      // data is the socket's reused read buffer, or send-buffer space the endpoint
      // stopped taking (it is closing): what it did not take is copied and held
      r.held = Buffer.from(data.subarray(took));
      r.socket?.pause();
    } else if (intoLent && r.conn.awaitSendRoom?.()) {
      // a full send buffer: pause before the next read rather than read into the
      // shared buffer and hold what does not fit (`writable` resumes)
      r.awaitingRoom = true;
      r.socket?.pause();
    }
    if (!r.awaitingBudget && r.conn.budgetRoom !== undefined && r.conn.budgetRoom() <= 0) {
      // the guest's budget is spent: read no more of its host sockets until it has room
      r.awaitingBudget = true;
      r.socket?.pause();
      r.conn.awaitBudget?.(r.wake);
    }
  }

  /** The guest's budget has room again (a microtask after the release that made it). */
  private budgetRoomBack(r: Relay): void {
    if (!r.awaitingBudget) return;
    r.awaitingBudget = false;
    if (!this.relays.holds(r)) return;
    if (r.held !== undefined) this.flushHeld(r);
    else if (!r.awaitingRoom) r.socket?.resume();
  }

  private flushHeld(r: Relay): void {
    const held = r.held;
    if (held === undefined) {
      if (r.awaitingRoom) {
        r.awaitingRoom = false;
        if (!r.awaitingBudget) r.socket?.resume();
      }
      return;
    }
    const took = r.conn.write(held);
    r.toGuestBytes += took;
    if (took < held.length) {
      r.held = held.subarray(took);
      return;
    }
    r.held = undefined;
    r.awaitingRoom = false;
    if (r.hostEnded) r.conn.shutdownWrite();
    else if (!r.awaitingBudget) r.socket?.resume();
  }
}

/** An address and port as flows are listed: 10.0.2.15:80, [fec0::15]:80. */
function endpoint(a: IpAddress, port: number): string {
  return typeof a === "number" ? `${ipv4ToString(a)}:${port}` : `[${ipv6ToString(a)}]:${port}`;
}
