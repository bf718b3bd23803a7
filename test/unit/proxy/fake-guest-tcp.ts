/**
 * A scripted stand-in for the stack's guest connection (`GuestTcp`), for tests of
 * what drives one: it records every call, and its send buffer takes at most `room`
 * bytes until the test makes room (as the guest's ACKs would).
 */
import type { GuestTcp } from "../../../src/proxy/tcp-relay.js";

export class FakeGuestTcp implements GuestTcp {
  readonly guestAddr = 0x0a00020f;
  readonly guestPort = 40000;
  accepted = 0;
  refused = 0;
  aborted = 0;
  shutdowns = 0;
  consumed = 0;
  /** bytes the endpoint took, in order */
  sent: Buffer[] = [];

  constructor(
    readonly remoteAddr = 0x0a000203,
    readonly remotePort = 53,
    /** free space in the endpoint's send buffer */
    public room = Number.POSITIVE_INFINITY,
  ) {}

  accept(): void {
    this.accepted++;
  }
  refuse(): void {
    this.refused++;
  }
  write(data: Buffer): number {
    const n = Math.min(data.length, this.room);
    this.room -= n;
    if (n > 0) this.sent.push(Buffer.from(data.subarray(0, n)));
    return n;
  }
  consume(n: number): void {
    this.consumed += n;
  }
  shutdownWrite(): void {
    this.shutdowns++;
  }
  abort(): void {
    this.aborted++;
  }

  /** everything the endpoint took, as one buffer */
  output(): Buffer {
    return Buffer.concat(this.sent);
  }
}
