/**
 * The DNS forwarder's real upstream transport: one query to one resolver over a host
 * UDP or TCP socket, one matching response back.
 *
 * Theory of operation
 * - UDP: a fresh socket per query, bound to an ephemeral port the kernel picks (a new
 *   random source port every time, so a forged answer must guess port and ID) and
 *   connected to the server, so the kernel drops datagrams from other sources and
 *   reports ICMP port unreachable as an error (a fast "connection-refused" rather
 *   than a timeout). The first datagram whose ID and question (name with ASCII case
 *   folding, type, class) match the query resolves the query; others are counted by
 *   reason and ignored, up to `maxMismatches` (16), after which the query fails.
 * - TCP: one connection per query, the query sent with its 2-byte length prefix,
 *   responses read with the same framing (so never more than 65535 bytes, and at
 *   most `maxResponseBytes`), matched like UDP ones; the connection is closed after
 *   the answer. A connection that closes before a matching answer fails the query.
 * - Every query is bounded by `timeoutMs` from the call: on expiry the socket is
 *   closed and the promise rejects with reason "timeout". No retries and no failover:
 *   the forwarder decides those. Failures reject with a `DnsUpstreamError` whose
 *   reason is counted here as well.
 * - `localAddress` binds the sockets to one host address (the outbound address).
 * - `close()` aborts every query under way (reason "closed").
 * Not done: IPv6 servers, reusing TCP connections or pipelining several queries on
 * one, DNS over TLS/HTTPS.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { connect, isIPv6, type Socket as TcpSocket } from "node:net";
import type { Logger } from "../log.js";
import { DNS_TCP_MAX_MESSAGE, responseMismatch } from "../services/dns/dns-message.js";
import {
  type DnsServerAddress,
  type DnsTransport,
  type DnsUpstream,
  DnsUpstreamError,
} from "../services/dns/upstream.js";
import { DropCounters } from "../stack/drop-counters.js";

/** The largest UDP payload IPv4 can carry. */
const UDP_MAX_PAYLOAD = 65507;

export interface HostDnsUpstreamOptions {
  logger: Logger;
  /** bind upstream sockets to this host address */
  localAddress?: string;
  /** the largest response accepted over TCP (65535) */
  maxResponseBytes?: number;
  /** non-matching responses tolerated per query before it fails (16) */
  maxMismatches?: number;
}

export interface HostDnsUpstreamStats {
  udpQueries: number;
  tcpQueries: number;
  answered: number;
  inflight: number;
  /** failed queries by reason */
  failures: Record<string, number>;
  /** responses ignored because they did not match their query, by transport and reason */
  ignored: Record<string, number>;
}

/** What node's socket errors mean to a resolver. */
function errorReason(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  switch (code) {
    case "ECONNREFUSED":
      return "connection-refused";
    case "ECONNRESET":
    case "EPIPE":
      return "connection-reset";
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return "unreachable";
    case "EADDRNOTAVAIL":
    case "EINVAL":
      return "bad-address";
    default:
      return "socket-error";
  }
}

export class HostDnsUpstream implements DnsUpstream {
  private readonly log: Logger;
  private readonly localAddress: string | undefined;
  private readonly maxResponseBytes: number;
  private readonly maxMismatches: number;
  private readonly aborts = new Set<() => void>();
  private udpQueries = 0;
  private tcpQueries = 0;
  private answered = 0;
  private readonly failures = new DropCounters();
  private readonly ignored = new DropCounters();

  constructor(o: HostDnsUpstreamOptions) {
    this.log = o.logger;
    this.localAddress = o.localAddress;
    this.maxResponseBytes = Math.min(o.maxResponseBytes ?? DNS_TCP_MAX_MESSAGE, DNS_TCP_MAX_MESSAGE);
    this.maxMismatches = o.maxMismatches ?? 16;
  }

  query(
    packet: Buffer,
    server: DnsServerAddress,
    transport: DnsTransport,
    timeoutMs: number,
  ): Promise<Buffer> {
    return transport === "udp"
      ? this.queryUdp(packet, server, timeoutMs)
      : this.queryTcp(packet, server, timeoutMs);
  }

  stats(): HostDnsUpstreamStats {
    return {
      udpQueries: this.udpQueries,
      tcpQueries: this.tcpQueries,
      answered: this.answered,
      inflight: this.aborts.size,
      failures: this.failures.toJSON(),
      ignored: this.ignored.toJSON(),
    };
  }

  /** Aborts every query under way. */
  close(): void {
    for (const abort of [...this.aborts]) abort();
  }

  /**
   * The shared life of one query: a timer, an abort hook, exactly one settlement, and
   * `cleanup` (closing the socket) run once whichever way it ends.
   */
  private run(
    server: DnsServerAddress,
    transport: DnsTransport,
    timeoutMs: number,
    start: (done: (e: DnsUpstreamError | undefined, response?: Buffer) => void) => () => void,
  ): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      let settled = false;
      let cleanup: (() => void) | undefined;
      const done = (e: DnsUpstreamError | undefined, response?: Buffer) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.aborts.delete(abort);
        cleanup?.();
        if (e === undefined && response !== undefined) {
          this.answered++;
          resolve(response);
          return;
        }
        const err = e ?? new DnsUpstreamError("no-response");
        this.failures.drop(`${transport}-${err.reason}`);
        this.log.debug("dns upstream query failed", {
          server: `${server.host}:${server.port}`,
          transport,
          reason: err.reason,
        });
        reject(err);
      };
      const abort = () => done(new DnsUpstreamError("closed"));
      const timer = setTimeout(() => done(new DnsUpstreamError("timeout")), Math.max(0, timeoutMs));
      this.aborts.add(abort);
      try {
        const c = start(done);
        if (settled) c();
        else cleanup = c;
      } catch (e) {
        done(new DnsUpstreamError(errorReason(e)));
      }
    });
  }

  private queryUdp(packet: Buffer, server: DnsServerAddress, timeoutMs: number): Promise<Buffer> {
    this.udpQueries++;
    if (packet.length > UDP_MAX_PAYLOAD) return this.tooLarge("udp");
    return this.run(server, "udp", timeoutMs, (done) => {
      const six = isIPv6(server.host);
      const sock: UdpSocket = createSocket(six ? "udp6" : "udp4");
      let mismatches = 0;
      sock.on("error", (e) => done(new DnsUpstreamError(errorReason(e))));
      sock.on("message", (msg) => {
        const mismatch = responseMismatch(msg, packet);
        if (mismatch === undefined) return done(undefined, msg);
        this.ignored.drop(`udp-${mismatch}`);
        if (++mismatches >= this.maxMismatches) done(new DnsUpstreamError("too-many-mismatches"));
      });
      const send = () =>
        sock.connect(server.port, server.host, (err?: Error) => {
          if (err) return done(new DnsUpstreamError(errorReason(err)));
          sock.send(packet, (e) => {
            if (e) done(new DnsUpstreamError(errorReason(e)));
          });
        });
      // an outbound address of the other family does not apply to this server
      if (this.localAddress === undefined || isIPv6(this.localAddress) !== six) send();
      else sock.bind({ port: 0, address: this.localAddress }, send);
      return () => {
        try {
          sock.close();
        } catch {
          // already closed by an error
        }
      };
    });
  }

  private queryTcp(packet: Buffer, server: DnsServerAddress, timeoutMs: number): Promise<Buffer> {
    this.tcpQueries++;
    if (packet.length > DNS_TCP_MAX_MESSAGE) return this.tooLarge("tcp");
    return this.run(server, "tcp", timeoutMs, (done) => {
      const sock: TcpSocket = connect({
        host: server.host,
        port: server.port,
        ...(this.localAddress === undefined || isIPv6(this.localAddress) !== isIPv6(server.host)
          ? {}
          : { localAddress: this.localAddress }),
      });
      const chunks: Buffer[] = [];
      let buffered = 0;
      let mismatches = 0;
      sock.setNoDelay(true);
      sock.on("connect", () => {
        const framed = Buffer.allocUnsafe(2 + packet.length);
        framed.writeUInt16BE(packet.length, 0);
        packet.copy(framed, 2);
        sock.write(framed);
      });
      sock.on("error", (e) => done(new DnsUpstreamError(errorReason(e))));
      sock.on("close", () => done(new DnsUpstreamError("closed-early")));
      sock.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        buffered += chunk.length;
        // Take whole messages off the front while there are any.
        // Chunks are joined only once a whole message is there (a server trickling
        // bytes costs no quadratic copying).
        for (;;) {
          if (buffered < 2) return;
          let head = chunks[0] as Buffer;
          if (head.length < 2) {
            head = Buffer.concat(chunks, buffered);
            chunks.length = 0;
            chunks.push(head);
          }
          const len = head.readUInt16BE(0);
          if (len > this.maxResponseBytes) return done(new DnsUpstreamError("response-too-large"));
          if (buffered < 2 + len) return;
          const all = chunks.length === 1 ? head : Buffer.concat(chunks, buffered);
          const msg = all.subarray(2, 2 + len);
          const rest = all.subarray(2 + len);
          chunks.length = 0;
          if (rest.length > 0) chunks.push(rest);
          buffered = rest.length;
          const mismatch = responseMismatch(msg, packet);
          // A copy: the caller owns the answer, and `msg` may share memory with `rest`.
          if (mismatch === undefined) return done(undefined, Buffer.from(msg));
          this.ignored.drop(`tcp-${mismatch}`);
          if (++mismatches >= this.maxMismatches) return done(new DnsUpstreamError("too-many-mismatches"));
        }
      });
      return () => sock.destroy();
    });
  }

  private tooLarge(transport: DnsTransport): Promise<Buffer> {
    this.failures.drop(`${transport}-query-too-large`);
    return Promise.reject(new DnsUpstreamError("query-too-large"));
  }
}
