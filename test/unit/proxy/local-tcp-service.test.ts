import { afterEach, describe, expect, it, vi } from "vitest";
import { silentLogger } from "../../../src/log.js";
import {
  type LocalStreamIo,
  type LocalStreamSession,
  LocalTcpService,
} from "../../../src/proxy/local-tcp-service.js";
import { FakeGuestTcp } from "./fake-guest-tcp.js";

/** A session that records what the adapter tells it and keeps its io. */
class Recorder implements LocalStreamSession {
  io!: LocalStreamIo;
  chunks: Buffer[] = [];
  pending: (() => void)[] = [];
  ends = 0;
  writables = 0;
  closes = 0;
  constructor(private readonly autoConsume = true) {}
  data(chunk: Buffer, consumed: () => void): void {
    this.chunks.push(Buffer.from(chunk));
    if (this.autoConsume) consumed();
    else this.pending.push(consumed);
  }
  end(): void {
    this.ends++;
  }
  writable(): void {
    this.writables++;
  }
  close(): void {
    this.closes++;
  }
}

function service(session: Recorder | undefined | Promise<Recorder | undefined>, idleTimeoutMs?: number) {
  return new LocalTcpService(
    {
      name: "test",
      idleTimeoutMs,
      maxHeldBytes: 1000,
      open: (_peer, io) => {
        const attach = (s: Recorder | undefined) => {
          if (s) s.io = io;
          return s;
        };
        return session instanceof Promise ? session.then(attach) : attach(session);
      },
    },
    silentLogger,
  );
}

afterEach(() => {
  vi.useRealTimers();
});

describe("LocalTcpService", () => {
  it("accepts when the service gives a session, refuses when it gives none or fails", async () => {
    const s = new Recorder();
    const svc = service(s);
    const c = new FakeGuestTcp();
    svc.event(c, { type: "connect-request" });
    expect(c.accepted).toBe(1);
    expect(svc.owns(c)).toBe(true);

    const none = service(undefined);
    const c2 = new FakeGuestTcp();
    none.event(c2, { type: "connect-request" });
    expect([c2.accepted, c2.refused]).toEqual([0, 1]);
    expect(none.owns(c2)).toBe(false);
    expect(none.counters.refused).toBe(1);

    const failing = service(Promise.reject(new Error("no smbd")));
    const c3 = new FakeGuestTcp();
    failing.event(c3, { type: "connect-request" });
    expect(c3.refused).toBe(0); // not before the service answered
    await vi.waitFor(() => expect(c3.refused).toBe(1));
    expect(c3.accepted).toBe(0);
  });

  it("waits for a service that opens later, and closes a session the guest gave up on", async () => {
    let resolve!: (s: Recorder) => void;
    const svc = service(new Promise<Recorder>((r) => (resolve = r)));
    const c = new FakeGuestTcp();
    svc.event(c, { type: "connect-request" });
    expect(c.accepted).toBe(0);
    svc.event(c, { type: "reset", reason: "guest" });
    const s = new Recorder();
    resolve(s);
    await vi.waitFor(() => expect(s.closes).toBe(1));
    expect(c.accepted).toBe(0);
    expect(svc.size).toBe(0);
  });

  it("passes guest bytes on and consumes them only when the session says so", () => {
    const s = new Recorder(false);
    const svc = service(s);
    const c = new FakeGuestTcp();
    svc.event(c, { type: "connect-request" });
    svc.event(c, { type: "established" });
    svc.event(c, { type: "data", data: Buffer.from("abc") });
    svc.event(c, { type: "data", data: Buffer.from("de") });
    expect(Buffer.concat(s.chunks).toString()).toBe("abcde");
    expect(c.consumed).toBe(0);
    s.pending[1]?.();
    s.pending[1]?.(); // twice counts once
    expect(c.consumed).toBe(2);
    s.pending[0]?.();
    expect(c.consumed).toBe(5);
    svc.event(c, { type: "eof" });
    expect(s.ends).toBe(1);
  });

  it("holds what the endpoint cannot take, sends it on writable, then tells the session", () => {
    const s = new Recorder();
    const svc = service(s);
    const c = new FakeGuestTcp(1, 2, 4);
    svc.event(c, { type: "connect-request" });
    svc.event(c, { type: "established" });
    expect(s.io.write(Buffer.from("0123456789"))).toBe(false);
    expect(s.io.write(Buffer.from("ab"))).toBe(false);
    s.io.end();
    expect(c.output().toString()).toBe("0123");
    expect(c.shutdowns).toBe(0);
    c.room = 5;
    svc.event(c, { type: "writable" });
    expect(c.output().toString()).toBe("012345678");
    expect(c.shutdowns).toBe(0);
    c.room = 100;
    svc.event(c, { type: "writable" });
    expect(c.output().toString()).toBe("0123456789ab");
    expect(c.shutdowns).toBe(1); // FIN only after the held bytes
    svc.event(c, { type: "writable" });
    expect(c.shutdowns).toBe(1);
  });

  it("says writable to the session once its held bytes drained", () => {
    const s = new Recorder();
    const svc = service(s);
    const c = new FakeGuestTcp(1, 2, 3);
    svc.event(c, { type: "connect-request" });
    expect(s.io.write(Buffer.from("abc"))).toBe(true);
    expect(s.io.write(Buffer.from("de"))).toBe(false);
    c.room = 10;
    svc.event(c, { type: "writable" });
    expect(s.writables).toBe(1);
    expect(c.output().toString()).toBe("abcde");
    expect(s.io.write(Buffer.from("f"))).toBe(true);
  });

  it("holds bytes written before the guest finished the handshake", () => {
    const s = new Recorder();
    const svc = new LocalTcpService(
      {
        name: "early",
        open: (_p, io) => {
          io.write(Buffer.from("hello"));
          io.end();
          return s;
        },
      },
      silentLogger,
    );
    const c = new FakeGuestTcp();
    svc.event(c, { type: "connect-request" });
    expect(c.output().length).toBe(0);
    svc.event(c, { type: "established" });
    expect(c.output().toString()).toBe("hello");
    expect(c.shutdowns).toBe(1);
  });

  it("resets a connection whose session writes past the bound", () => {
    const s = new Recorder();
    const svc = service(s);
    const c = new FakeGuestTcp(1, 2, 0);
    svc.event(c, { type: "connect-request" });
    expect(s.io.write(Buffer.alloc(600))).toBe(false);
    expect(c.aborted).toBe(0);
    expect(s.io.write(Buffer.alloc(600))).toBe(false);
    expect(c.aborted).toBe(1);
    expect(s.closes).toBe(1);
    expect(svc.counters.overflow).toBe(1);
    expect(svc.owns(c)).toBe(false);
  });

  it("closes the session exactly once, however the connection ends", () => {
    for (const end of ["reset", "closed", "abort", "closeAll"] as const) {
      const s = new Recorder();
      const svc = service(s);
      const c = new FakeGuestTcp();
      svc.event(c, { type: "connect-request" });
      if (end === "reset") svc.event(c, { type: "reset", reason: "guest" });
      else if (end === "closed") svc.event(c, { type: "closed" });
      else if (end === "abort") s.io.abort();
      else svc.closeAll();
      svc.event(c, { type: "closed" });
      s.io.abort();
      expect(s.closes, end).toBe(1);
      expect(c.aborted, end).toBe(end === "abort" || end === "closeAll" ? 1 : 0);
      expect(s.io.write(Buffer.from("x")), end).toBe(false);
      expect(svc.size, end).toBe(0);
    }
  });

  it("resets a connection idle for the timeout; traffic keeps it alive", () => {
    vi.useFakeTimers();
    const s = new Recorder();
    const svc = service(s, 30_000);
    const c = new FakeGuestTcp();
    svc.event(c, { type: "connect-request" });
    vi.advanceTimersByTime(20_000);
    svc.event(c, { type: "data", data: Buffer.from("x") });
    vi.advanceTimersByTime(20_000);
    s.io.write(Buffer.from("y"));
    vi.advanceTimersByTime(29_000);
    expect(c.aborted).toBe(0);
    vi.advanceTimersByTime(1_000);
    expect(c.aborted).toBe(1);
    expect(s.closes).toBe(1);
    expect(svc.counters.idle).toBe(1);
  });

  it("has no idle timeout unless asked", () => {
    vi.useFakeTimers();
    const s = new Recorder();
    const svc = service(s);
    const c = new FakeGuestTcp();
    svc.event(c, { type: "connect-request" });
    vi.advanceTimersByTime(3_600_000);
    expect(c.aborted).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });
});
