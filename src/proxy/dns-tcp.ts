/**
 * DNS over TCP from guests (RFC 1035 §4.2.2, RFC 7766): the stream session behind
 * 10.0.2.3:53/tcp, run by the local TCP service adapter (local-tcp-service.ts).
 *
 * Theory of operation
 * - The guest's byte stream is a sequence of messages, each after a 2-byte big-endian
 *   length. Every complete message is handed to `resolve` (the DNS forwarder, which
 *   asks upstream over TCP) as its own copy; each answer is written back with its
 *   length in front, in the order the answers come (RFC 7766 §6.2.1.1 allows that;
 *   clients match answers by ID). A query with no answer (the forwarder drops bogus
 *   ones) gets nothing.
 * - Bounds: at most `maxInflight` (16) queries of one connection are resolving at a
 *   time, and none is started while the guest is not taking our answers (the adapter
 *   holds them back). Past either bound the bytes stay unparsed and unconsumed, so the
 *   guest's window closes: the bytes buffered here are at most one partial message plus
 *   what the endpoint's receive window let in.
 * - Guest FIN: the answers still pending are written, then our FIN. A partial message
 *   at FIN is dropped. The idle timeout is the adapter's.
 */
import { internalErrors } from "../log.js";
import type {
  LocalStreamIo,
  LocalStreamOpen,
  LocalStreamPeer,
  LocalStreamSession,
} from "./local-tcp-service.js";

export interface DnsOverTcpOptions {
  /**
   * one DNS message in (no length prefix), its answer out or undefined; never rejects.
   * `peer` is the guest connection it came on (whose per-guest bound it counts against).
   */
  resolve(query: Buffer, peer: LocalStreamPeer): Promise<Buffer | undefined>;
  /** queries resolving at once per connection (16) */
  maxInflight?: number;
}

const maxMessage = 0xffff;

export function dnsOverTcp(options: DnsOverTcpOptions): LocalStreamOpen {
  const maxInflight = options.maxInflight ?? 16;
  return (peer, io) => new DnsTcpSession(io, (q) => options.resolve(q, peer), maxInflight);
}

class DnsTcpSession implements LocalStreamSession {
  /** guest bytes not parsed yet */
  private buf: Buffer = Buffer.alloc(0);
  /** `consumed` callbacks of chunks kept back while a bound is reached */
  private waiting: (() => void)[] = [];
  private inflight = 0;
  private writeBlocked = false;
  private ended = false;
  private finished = false;
  private closed = false;

  constructor(
    private readonly io: LocalStreamIo,
    private readonly resolve: (query: Buffer) => Promise<Buffer | undefined>,
    private readonly maxInflight: number,
  ) {}

  data(chunk: Buffer, consumed: () => void): void {
    // the chunk is a view of a guest frame; a partial message must outlive it
    this.buf = this.buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buf, chunk]);
    this.waiting.push(consumed);
    this.pump();
  }

  end(): void {
    this.ended = true;
    this.pump();
  }

  writable(): void {
    this.writeBlocked = false;
    this.pump();
  }

  close(): void {
    this.closed = true;
    this.waiting = [];
    this.buf = Buffer.alloc(0);
  }

  private pump(): void {
    if (this.closed) return;
    while (!this.writeBlocked && this.inflight < this.maxInflight && this.buf.length >= 2) {
      const len = this.buf.readUInt16BE(0);
      if (this.buf.length < 2 + len) break;
      const query = this.buf.subarray(2, 2 + len);
      this.buf = this.buf.subarray(2 + len);
      this.ask(query);
    }
    if (!this.writeBlocked && this.inflight < this.maxInflight) {
      // only a partial message is left: let the guest send the rest
      const waiting = this.waiting;
      this.waiting = [];
      for (const consumed of waiting) consumed();
    }
    if (this.ended && !this.finished && this.inflight === 0 && !this.hasCompleteMessage()) {
      this.finished = true;
      this.io.end();
    }
  }

  private hasCompleteMessage(): boolean {
    return this.buf.length >= 2 && this.buf.length >= 2 + this.buf.readUInt16BE(0);
  }

  private ask(query: Buffer): void {
    this.inflight++;
    this.resolve(query)
      .then(
        (answer) => this.answered(answer),
        () => this.answered(undefined),
      )
      .catch(internalErrors.handler("a DNS answer over TCP"));
  }

  private answered(answer: Buffer | undefined): void {
    this.inflight--;
    if (this.closed) return;
    if (answer !== undefined && answer.length <= maxMessage) {
      const framed = Buffer.allocUnsafe(2 + answer.length);
      framed.writeUInt16BE(answer.length, 0);
      answer.copy(framed, 2);
      if (!this.io.write(framed)) this.writeBlocked = true;
    }
    this.pump();
  }
}
