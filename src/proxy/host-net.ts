/**
 * The host's sockets, behind one small interface, so the NAT can be tested with a
 * fake host. This file and the rest of src/proxy/ are the only code that opens host
 * sockets on a guest's behalf.
 *
 * UDP sockets come from the native addon (native/udp.c) where it loads, with
 * IP_RECVERR set: an unconnected UDP socket gets the host's ICMP errors for what it
 * sent (port or host unreachable, TTL exceeded) only with IP_RECVERR (udp(7)), and
 * then with the destination they concern ("icmp" events). Its receive and send
 * buffers are 4 and 1 MiB (as far as net.core.rmem_max/wmem_max allow), so a burst
 * waits in the kernel while the event loop is busy instead of overflowing the default
 * 208 KiB (about 90 full-size datagrams); it reads in recvmmsg batches and sends at
 * once, with no per-datagram request object, copy or address lookup. Without the
 * addon, Node's dgram does the same minus the ICMP errors.
 *
 * IPv6: `bindUdp` and `openPing` take the socket's family (6: an IPv6-only UDP socket
 * with IPV6_RECVERR, an ICMPv6 ping socket; native/udp.c, ping.c), and TCP connects to
 * whatever address it is given. ICMPv6 reports are handed on in ICMP numbering
 * (nat-family.ts), so the NAT reads one kind of error whatever the family.
 */
import dgram from "node:dgram";
import net from "node:net";
import {
  FdPoller,
  nativeStatus,
  openPingSocket,
  openUdpSocket,
  sendPing,
  type UdpErrorReport,
  udpSend,
} from "../native/binding.js";
import { icmpErrorOf6 } from "./nat-family.js";

/**
 * Errors that mean this host ran out of something or lost an address, not that the
 * network answered: a connect or send failing with one of these is a host fault
 * (log.ts's HostFaults), logged once and counted, besides the guest's answer.
 */
export const hostFaultCodes: ReadonlySet<string> = new Set([
  "EMFILE",
  "ENFILE",
  "ENOBUFS",
  "ENOMEM",
  "EADDRNOTAVAIL",
  "EADDRINUSE",
]);

export interface HostEndpoint {
  address: string;
  port: number;
}

export type HostUdpEvent =
  | { type: "datagram"; data: Buffer; from: HostEndpoint }
  /**
   * An ICMP error the host got for a datagram this socket sent to `to`: `icmpType` and
   * `icmpCode` as received (3/3 port unreachable, 3/0..1 network or host unreachable,
   * 11/0 TTL exceeded), `reporter` the message's source, `length` the bytes of the
   * datagram's payload it quoted.
   */
  | { type: "icmp"; to: HostEndpoint; icmpType: number; icmpCode: number; reporter: string; length: number }
  /** a failed read, or (dgram only) a send that failed later */
  | { type: "error"; code: string };

export interface HostUdp {
  /**
   * Sends the datagram, or drops it and says why: the errno name ("EAGAIN"/"ENOBUFS":
   * send buffer full; "EHOSTUNREACH"/"ENETUNREACH": the host has no route). `data` may
   * be reused once this returns.
   */
  send(data: Buffer, address: string, port: number): string | undefined;
  close(): void;
}

/** SO_RCVBUF and SO_SNDBUF asked for on the NAT's UDP sockets (capped by net.core.*mem_max). */
export const udpReceiveBuffer = 4 * 1024 * 1024;
export const udpSendBuffer = 1024 * 1024;
/** datagrams read per wake-up at most: a flood still lets the rest of the loop run */
const udpMaxBatch = 64;
const SO_EE_ORIGIN_ICMP = 2;
const SO_EE_ORIGIN_ICMP6 = 3;

export type HostTcpEvent =
  | { type: "connected" }
  /** the connect failed: ECONNREFUSED, EHOSTUNREACH, ETIMEDOUT ... */
  | { type: "connect-failed"; code: string }
  /** valid only during the call: the read buffer is reused, so copy what you keep */
  | { type: "data"; data: Buffer }
  /** the host closed its sending side (FIN) */
  | { type: "end" }
  /** the connection broke after it was up (ECONNRESET ...) */
  | { type: "error"; code: string }
  | { type: "closed" };

/**
 * Where outbound host sockets read into; each read is handed on before the next. 256 KiB
 * per read (Node reads 64 KiB) means a quarter of the reads, each carried through the
 * stack at once (measured: 4.5 -> 5.5 Gb/s host->namespace at MTU 65520).
 */
const sharedReadBuffer = Buffer.allocUnsafeSlow(256 * 1024);

export interface HostTcp {
  /** `done` runs once the bytes are handed to the kernel */
  write(data: Buffer, done: () => void): void;
  /** FIN after what is queued */
  end(): void;
  /** RST */
  reset(): void;
  pause(): void;
  resume(): void;
}

export type HostPingEvent =
  | { type: "reply"; message: Buffer; from: string }
  | { type: "error"; code: string };

export interface HostPing {
  /** sends an ICMP (ICMPv6) echo request (the kernel sets the id); false when the socket is full */
  send(icmpMessage: Buffer, to: string): boolean;
  close(): void;
}

export interface HostNet {
  /**
   * An unprivileged ICMP ping socket (net.ipv4.ping_group_range must allow our group).
   * Throws with `code` (EACCES where the host forbids them, ERR_USERNET_NATIVE_UNAVAILABLE
   * without the addon). `family` 6: an ICMPv6 ping socket.
   */
  openPing(localAddress: string | undefined, events: (e: HostPingEvent) => void, family?: 4 | 6): HostPing;
  /**
   * An outgoing TCP connection, half-open allowed, bound to `localAddress` when given.
   * `readInto`, asked before every read, may give memory of the caller's to read into
   * (a view of the guest connection's send buffer); the "data" event's Buffer is then
   * a view of it. Undefined (or no `readInto`): the shared read buffer.
   */
  connectTcp(
    to: HostEndpoint,
    localAddress: string | undefined,
    timeoutMs: number,
    events: (e: HostTcpEvent) => void,
    readInto?: () => Buffer | undefined,
  ): HostTcp;
  /** a UDP socket (IPv6-only for `family` 6) on an ephemeral port, bound to `localAddress` when given */
  bindUdp(localAddress: string | undefined, events: (e: HostUdpEvent) => void, family?: 4 | 6): HostUdp;
}

export const nodeHostNet: HostNet = {
  openPing(localAddress, events, family = 4) {
    const fd = openPingSocket(localAddress, family);
    const poller = new FdPoller(
      fd,
      "ping",
      (messages, sources) => {
        messages.forEach((message, i) => {
          events({ type: "reply", message, from: sources[i] ?? "" });
        });
      },
      { onError: (err: NodeJS.ErrnoException) => events({ type: "error", code: err.code ?? "EIO" }) },
    );
    poller.unref();
    return {
      send: (msg, to) => {
        try {
          return sendPing(fd, to, msg);
        } catch (err) {
          // ENETUNREACH and the like: the same answer a closed route gives, no reply
          events({ type: "error", code: (err as NodeJS.ErrnoException).code ?? "EIO" });
          return true;
        }
      },
      close: () => poller.close(),
    };
  },
  connectTcp(to, localAddress, timeoutMs, events, readInto) {
    const sock = net.connect({
      host: to.address,
      port: to.port,
      localAddress,
      allowHalfOpen: true,
      noDelay: true,
      // every read lands in one reused buffer (the "data" contract above): a bulk
      // transfer then allocates nothing per read
      onread: {
        // Node asks before every read
        buffer: readInto ? () => readInto() ?? sharedReadBuffer : sharedReadBuffer,
        callback: (n: number, buf: Uint8Array) => {
          events({ type: "data", data: (buf as Buffer).subarray(0, n) });
          return true;
        },
      },
    });
    const deadline = connectDeadlines(timeoutMs).add(sock);
    return wrapTcpSocket(sock, false, events, deadline);
  },
  bindUdp(localAddress, events, family = 4) {
    return nativeStatus().available
      ? nativeUdp(localAddress, events, family)
      : dgramUdp(localAddress, events, family);
  },
};

function nativeUdp(
  localAddress: string | undefined,
  events: (e: HostUdpEvent) => void,
  family: 4 | 6,
): HostUdp {
  const fd = openUdpSocket(localAddress, { rcvBuf: udpReceiveBuffer, sndBuf: udpSendBuffer }, family);
  let closed = false;
  const poller = new FdPoller(
    fd,
    "udp",
    (datagrams, sources, ports) => {
      for (let i = 0; i < datagrams.length && !closed; i++) {
        events({
          type: "datagram",
          data: datagrams[i] as Buffer,
          from: { address: sources[i] as string, port: ports[i] as number },
        });
      }
    },
    {
      maxBatch: udpMaxBatch,
      onError: (err) => events({ type: "error", code: err.code ?? "EIO" }),
      onReports: (reports) => {
        for (const r of reports) if (!closed) reportIcmp(r, events);
      },
    },
  );
  return {
    send(data, address, port) {
      if (closed) return "EBADF";
      return udpSend(fd, data, address, port) ?? undefined;
    },
    close() {
      if (closed) return;
      closed = true;
      poller.close();
    },
  };
}

function reportIcmp(r: UdpErrorReport, events: (e: HostUdpEvent) => void): void {
  // SO_EE_ORIGIN_LOCAL (EMSGSIZE and the like) concerns our own send, not the path
  if (r.origin !== SO_EE_ORIGIN_ICMP && r.origin !== SO_EE_ORIGIN_ICMP6)
    return events({ type: "error", code: `errqueue-${r.errno}` });
  const icmp =
    r.origin === SO_EE_ORIGIN_ICMP6 ? icmpErrorOf6(r.type, r.code) : { type: r.type, code: r.code };
  events({
    type: "icmp",
    to: { address: r.dst, port: r.dstPort },
    icmpType: icmp.type,
    icmpCode: icmp.code,
    reporter: r.offender,
    length: r.length,
  });
}

/** Node's dgram, where the addon is missing: no ICMP errors reach an unconnected socket. */
function dgramUdp(
  localAddress: string | undefined,
  events: (e: HostUdpEvent) => void,
  family: 4 | 6,
): HostUdp {
  const sock = dgram.createSocket({
    type: family === 6 ? "udp6" : "udp4",
    ipv6Only: true,
    recvBufferSize: udpReceiveBuffer,
    sendBufferSize: udpSendBuffer,
  });
  let closed = false;
  sock.on("message", (data, rinfo) =>
    events({ type: "datagram", data, from: { address: rinfo.address, port: rinfo.port } }),
  );
  sock.on("error", (err: NodeJS.ErrnoException) => events({ type: "error", code: err.code ?? "EIO" }));
  sock.bind({ port: 0, address: localAddress, exclusive: true });
  return {
    send(data, address, port) {
      if (closed) return "EBADF";
      // dgram sends later: it keeps its own copy
      sock.send(Buffer.from(data), port, address, (err) => {
        if (err && !closed) events({ type: "error", code: (err as NodeJS.ErrnoException).code ?? "EIO" });
      });
      return undefined;
    },
    close() {
      if (closed) return;
      closed = true;
      sock.close();
    },
  };
}

/**
 * A net.Socket as a HostTcp. `connected` says whether it is up already (an accepted
 * socket); otherwise "connected" or "connect-failed" comes first.
 */
export function wrapTcpSocket(
  sock: net.Socket,
  connected: boolean,
  events: (e: HostTcpEvent) => void,
  deadline?: ConnectDeadline,
): HostTcp {
  let up = connected;
  let finished = false;
  if (!connected) {
    sock.once("connect", () => {
      up = true;
      deadline?.settle();
      events({ type: "connected" });
    });
  }
  sock.on("data", (data) => events({ type: "data", data }));
  sock.on("end", () => events({ type: "end" }));
  sock.on("error", (err: NodeJS.ErrnoException) => {
    const code = err.code ?? "EIO";
    events(up ? { type: "error", code } : { type: "connect-failed", code });
  });
  sock.on("close", () => {
    deadline?.settle();
    if (!finished) events({ type: "closed" });
    finished = true;
  });
  return {
    write(data, done) {
      sock.write(data, () => done());
    },
    end() {
      sock.end();
    },
    reset() {
      finished = true;
      if (!sock.destroyed) sock.resetAndDestroy();
    },
    pause() {
      sock.pause();
    },
    resume() {
      sock.resume();
    },
  };
}

/** A connecting socket's place in its time-out queue. */
interface ConnectDeadline {
  sock: net.Socket | undefined;
  at: number;
  /** connected or closed: the time-out no longer applies */
  settle(): void;
}

/**
 * The connect time-outs of every outbound socket with the same time-out, oldest first,
 * under one timer: at thousands of connections a second a setTimeout, its clearTimeout
 * and two listeners per connection were a cost of their own. Sockets usually connect in
 * the order they were opened, so a settled entry is mostly at the head and leaves at
 * once; the queue holds about as many entries as sockets are still connecting.
 */
class ConnectDeadlineQueue {
  private entries: ConnectDeadline[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;

  constructor(private readonly timeoutMs: number) {}

  add(sock: net.Socket): ConnectDeadline {
    const entry: ConnectDeadline = {
      sock,
      at: performance.now() + this.timeoutMs,
      settle: () => {
        entry.sock = undefined;
        this.trim();
      },
    };
    this.entries.push(entry);
    this.arm();
    return entry;
  }

  /** Drops settled entries from the front, and the timer when none is left. */
  private trim(): void {
    const e = this.entries;
    while (this.head < e.length && e[this.head]?.sock === undefined) this.head++;
    if (this.head === e.length) {
      this.entries = [];
      this.head = 0;
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.timerAt = Number.POSITIVE_INFINITY;
    } else if (this.head >= 64 && this.head * 2 >= e.length) {
      this.entries = e.slice(this.head);
      this.head = 0;
    }
  }

  private arm(): void {
    const first = this.entries[this.head];
    if (first === undefined || this.timerAt <= first.at) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = first.at;
    this.timer = setTimeout(() => this.expire(), Math.max(0, first.at - performance.now()));
    this.timer.unref();
  }

  private expire(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = performance.now();
    for (let first = this.entries[this.head]; first !== undefined && first.at <= now; ) {
      const sock = first.sock;
      first.sock = undefined;
      this.head++;
      sock?.destroy(Object.assign(new Error("connect timeout"), { code: "ETIMEDOUT" }));
      first = this.entries[this.head];
    }
    this.trim();
    this.arm();
  }
}

const deadlineQueues = new Map<number, ConnectDeadlineQueue>();

function connectDeadlines(timeoutMs: number): ConnectDeadlineQueue {
  let q = deadlineQueues.get(timeoutMs);
  if (q === undefined) {
    q = new ConnectDeadlineQueue(timeoutMs);
    deadlineQueues.set(timeoutMs, q);
  }
  return q;
}
