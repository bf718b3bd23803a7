/**
 * TcpRelay's host→guest path with a scripted host socket: reads go straight into the
 * guest connection's send buffer when it lends space, into the shared buffer otherwise,
 * and the guest gets every byte in order either way.
 */
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../../src/log.js";
import type { HostNet, HostTcp, HostTcpEvent } from "../../../src/proxy/host-net.js";
import { NatPolicy } from "../../../src/proxy/nat-policy.js";
import { type GuestTcp, TcpRelay } from "../../../src/proxy/tcp-relay.js";
import { ByteBudget } from "../../../src/stack/guest-bounds.js";
import { SendBuffer } from "../../../src/stack/tcp/send-buffer.js";
import { FakeGuestTcp } from "./fake-guest-tcp.js";

/** A guest connection whose send buffer is a real SendBuffer (lending like the endpoint's). */
class LendingGuest extends FakeGuestTcp implements GuestTcp {
  readonly buf = new SendBuffer(1 << 20);
  lends = 0;
  copied = 0;
  override write(data: Buffer): number {
    this.copied += data.length;
    return this.buf.push(data);
  }
  lendSpace(): Buffer | undefined {
    const v = this.buf.lend(4 * 1024, 256 * 1024);
    if (v) this.lends++;
    return v;
  }
  writeLent(view: Buffer, n: number): number {
    return this.buf.commitLent(view, n);
  }
  awaitSendRoom(): boolean {
    return this.buf.free < 4 * 1024;
  }
}

/** A LendingGuest whose buffered bytes count against a budget, as the endpoint's do. */
class BudgetGuest extends LendingGuest {
  constructor(
    readonly budget: ByteBudget,
    readonly guest: number,
  ) {
    super(ip("10.0.2.2"), 5201);
  }
  override write(data: Buffer): number {
    const n = super.write(data);
    this.budget.take(this.guest, n);
    return n;
  }
  /** as the endpoint lends: no more than the budget's room */
  override lendSpace(): Buffer | undefined {
    const max = Math.min(256 * 1024, this.budget.room(this.guest));
    return max < 4 * 1024 ? undefined : this.buf.lend(4 * 1024, max);
  }
  override writeLent(view: Buffer, n: number): number {
    const k = super.writeLent(view, n);
    this.budget.take(this.guest, k);
    return k;
  }
  budgetRoom(): number {
    return this.budget.room(this.guest);
  }
  awaitBudget(wake: () => void): void {
    this.budget.wait(this.guest, wake);
  }
  /** the guest acknowledges everything held; returns it */
  ackAll(): Buffer {
    const got = Buffer.from(this.buf.read(0, this.buf.length));
    this.buf.drop(got.length);
    this.budget.release(this.guest, got.length);
    return got;
  }
}

/**
 * A host whose one socket "reads" what the test feeds it. As Node does, it asks
 * readInto for the next read's buffer right after handing over the last read (and once
 * at the start), not when the read happens.
 */
function scriptedHost() {
  const shared = Buffer.alloc(256 * 1024);
  let events: ((e: HostTcpEvent) => void) | undefined;
  let readInto: (() => Buffer | undefined) | undefined;
  let paused = false;
  let next: Buffer = shared;
  const net: HostNet = {
    openPing: () => {
      throw new Error("no ping here");
    },
    bindUdp: () => {
      throw new Error("no udp here");
    },
    connectTcp(_to, _local, _t, ev, into): HostTcp {
      events = ev;
      readInto = into;
      next = into?.() ?? shared;
      return {
        write: (_d, done) => done(),
        end() {},
        reset() {},
        pause: () => {
          paused = true;
        },
        resume: () => {
          paused = false;
        },
      };
    },
  };
  return {
    net,
    get paused() {
      return paused;
    },
    connected: () => events?.({ type: "connected" }),
    /** one socket read of `data` (as much as the read's buffer holds); returns bytes read */
    read(data: Buffer): number {
      if (paused) return 0;
      const into = next;
      const n = Math.min(data.length, into.length);
      data.copy(into, 0, 0, n);
      events?.({ type: "data", data: into.subarray(0, n) });
      next = readInto?.() ?? shared;
      return n;
    },
  };
}

const ip = (s: string) => s.split(".").reduce((a, b) => (a << 8) | Number(b), 0) >>> 0;

/** A relay with one connection from `guest` to the host's loopback, connected. */
function connected(guest: GuestTcp) {
  const host = scriptedHost();
  const relay = new TcpRelay(
    host.net,
    new NatPolicy({ host: ip("10.0.2.2"), hostLoopback: true, restrict: false }),
    silentLogger,
    () => 0,
  );
  relay.event(guest, { type: "connect-request" });
  host.connected();
  return { host, relay };
}

describe("TcpRelay, host to guest", () => {
  it("reads a bulk transfer straight into the send buffer, every byte in order", () => {
    const guest = new LendingGuest(ip("10.0.2.2"), 5201);
    const { host, relay } = connected(guest);
    const stream = Buffer.alloc(4_000_000);
    for (let i = 0; i < stream.length; i++) stream[i] = (i * 31) & 0xff;
    let at = 0;
    let pauses = 0;
    for (let reads = 0; at < stream.length && reads < 1000; reads++) {
      at += host.read(stream.subarray(at));
      if (host.paused) {
        // a full send buffer: the guest acknowledges half of it, the endpoint says so
        pauses++;
        guest.buf.drop(guest.buf.length / 2);
        relay.event(guest, { type: "writable" });
        expect(host.paused).toBe(false);
      } else {
        // the guest acknowledges all but the last 500,000 bytes after every read
        guest.buf.drop(Math.max(0, guest.buf.length - 500_000));
      }
    }
    expect(at).toBe(stream.length);
    expect(pauses).toBe(0);
    expect(guest.lends).toBeGreaterThan(10);
    // only the reads that grew the ring to a bulk transfer's went through the shared buffer
    expect(guest.copied).toBeLessThanOrEqual(3 * 256 * 1024);
    const kept = guest.buf.length;
    expect(guest.buf.read(0, kept).equals(stream.subarray(stream.length - kept))).toBe(true);
  });

  it("holds what the guest cannot take, pauses, and lends nothing until it is in", () => {
    const guest = new FakeGuestTcp(ip("10.0.2.2"), 5201, 1000);
    const { host, relay } = connected(guest);
    host.read(Buffer.alloc(5000, 7));
    expect(host.paused).toBe(true);
    guest.room = Number.POSITIVE_INFINITY;
    relay.event(guest, { type: "writable" });
    expect(host.paused).toBe(false);
    expect(guest.output().equals(Buffer.alloc(5000, 7))).toBe(true);
  });

  it("pauses a socket whose send buffer is full before reading more, and resumes on writable", () => {
    const guest = new LendingGuest(ip("10.0.2.2"), 5201);
    const { host, relay } = connected(guest);
    const stream = Buffer.alloc(3_000_000);
    for (let i = 0; i < stream.length; i++) stream[i] = (i * 7 + 1) & 0xff;
    let at = 0;
    let delivered = 0;
    const got: Buffer[] = [];
    let pauses = 0;
    for (let reads = 0; at < stream.length && reads < 1000; reads++) {
      at += host.read(stream.subarray(at));
      if (!host.paused) continue;
      // the guest takes nothing until the buffer is full; then it acknowledges everything
      pauses++;
      expect(guest.buf.free).toBeLessThan(4 * 1024);
      got.push(Buffer.from(guest.buf.read(0, guest.buf.length)));
      delivered += guest.buf.length;
      guest.buf.drop(guest.buf.length);
      relay.event(guest, { type: "writable" });
      expect(host.paused).toBe(false);
    }
    got.push(Buffer.from(guest.buf.read(0, guest.buf.length)));
    expect(at).toBe(stream.length);
    expect(pauses).toBeGreaterThan(1);
    expect(delivered).toBeGreaterThan(0);
    expect(Buffer.concat(got).equals(stream)).toBe(true);
    // the reads that filled the buffer went into it, none was held; what was copied is
    // the ring's growth at the start and one short read per resume
    expect(guest.copied).toBeLessThanOrEqual(3 * 256 * 1024 + pauses * 16 * 1024);
  });
});

describe("TcpRelay, closing", () => {
  /** A relay over one host socket that records end() and reset(). */
  function recorded() {
    const calls: string[] = [];
    let events: ((e: HostTcpEvent) => void) | undefined;
    const net: HostNet = {
      openPing: () => {
        throw new Error("no ping here");
      },
      bindUdp: () => {
        throw new Error("no udp here");
      },
      connectTcp(_to, _local, _t, ev): HostTcp {
        events = ev;
        return {
          write: (_d, done) => done(),
          end: () => calls.push("end"),
          reset: () => calls.push("reset"),
          pause() {},
          resume() {},
        };
      },
    };
    const relay = new TcpRelay(
      net,
      new NatPolicy({ host: ip("10.0.2.2"), hostLoopback: true, restrict: false }),
      silentLogger,
      () => 0,
    );
    const guest = new FakeGuestTcp(ip("10.0.2.2"), 80);
    relay.event(guest, { type: "connect-request" });
    events?.({ type: "connected" });
    return { relay, guest, calls, host: (e: HostTcpEvent) => events?.(e) };
  }

  it("lets the socket close by itself when the stack closes after FINs both ways (our TIME_WAIT)", () => {
    const { relay, guest, calls, host } = recorded();
    host({ type: "end" });
    expect(guest.shutdowns).toBe(1);
    // the guest's FIN and, in the same step, TIME_WAIT: the stack says closed at once
    relay.event(guest, { type: "eof" });
    relay.event(guest, { type: "closed" });
    expect(calls).toEqual(["end"]);
    expect(relay.size).toBe(0);
  });

  it("resets the socket when the stack closes before the host finished", () => {
    const { relay, guest, calls } = recorded();
    relay.event(guest, { type: "eof" });
    relay.event(guest, { type: "closed" });
    expect(calls).toEqual(["end", "reset"]);
    expect(relay.size).toBe(0);
  });
});

describe("TcpRelay and the guest's buffer budget", () => {
  it("stops reading when the guest's budget is spent, reads small while it is tight, and resumes when room returns", async () => {
    const budget = new ByteBudget({ max: 1 << 30, perGuest: 600 * 1024 });
    const guest = new BudgetGuest(budget, 1);
    const { host } = connected(guest);
    const stream = Buffer.alloc(4_000_000);
    for (let i = 0; i < stream.length; i++) stream[i] = (i * 13 + 5) & 0xff;
    let at = 0;
    const got: Buffer[] = [];
    let pauses = 0;
    for (let reads = 0; at < stream.length && reads < 10_000; reads++) {
      at += host.read(stream.subarray(at));
      if (!host.paused) continue;
      pauses++;
      // past its budget by at most one small read
      expect(budget.of(1)).toBeGreaterThanOrEqual(600 * 1024);
      expect(budget.of(1)).toBeLessThanOrEqual(600 * 1024 + 16 * 1024);
      expect(budget.waiting).toBe(1);
      // no room, no wake: nothing else of this guest's moves
      await Promise.resolve();
      expect(host.paused).toBe(true);
      expect(host.read(stream.subarray(at))).toBe(0);
      // the guest reads and acknowledges: the relay resumes (a microtask later)
      got.push(guest.ackAll());
      expect(budget.of(1)).toBe(0);
      expect(host.paused).toBe(true);
      await Promise.resolve();
      expect(host.paused).toBe(false);
    }
    got.push(guest.ackAll());
    expect(at).toBe(stream.length);
    expect(pauses).toBeGreaterThan(3);
    expect(Buffer.concat(got).equals(stream)).toBe(true);
    expect(budget.throttled).toBe(pauses);
  });

  it("leaves a relay of another guest reading", () => {
    const budget = new ByteBudget({ max: 1 << 30, perGuest: 1 << 20 });
    budget.take(1, 1 << 20);
    const other = new BudgetGuest(budget, 2);
    const { host } = connected(other);
    const data = Buffer.alloc(32 * 1024, 7);
    expect(host.read(data)).toBe(32 * 1024);
    expect(host.paused).toBe(false);
    expect(budget.of(2)).toBe(32 * 1024);
  });
});
