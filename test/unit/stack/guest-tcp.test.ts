/**
 * The TCP layer with a scripted guest on a fake clock: connections closed by our side
 * first leave only TIME_WAIT records behind, which cost no flow slot and still answer
 * the guest.
 */
import { describe, expect, it } from "vitest";
import { ManualClock } from "../../../src/stack/clock.js";
import { DropCounters } from "../../../src/stack/drop-counters.js";
import { ByteBudget } from "../../../src/stack/guest-bounds.js";
import { type GuestTcpConnection, GuestTcpLayer } from "../../../src/stack/guest-tcp.js";
import type { TcpEvent, TcpOutput } from "../../../src/stack/tcp/tcp-endpoint.js";
import { type TcpSegment, tcpFlagsFromString, tcpFlagsToString } from "../../../src/stack/wire/tcp.js";

const GUEST = 0x0a00020f;
const HOST = 0x0a000202;
const ISS = 1000;
/** a guest id, as the stack's GuestIdentities gives one */
const GUEST_KEY = 1;

function setup(maxFlowsPerGuest: number) {
  const clock = new ManualClock();
  const drops = new DropCounters();
  const sent: TcpOutput[] = [];
  const events: [GuestTcpConnection, TcpEvent][] = [];
  const layer = new GuestTcpLayer(
    clock,
    drops,
    (s) => sent.push(...s),
    (conn, ev) => {
      events.push([conn, ev]);
      if (ev.type === "connect-request") conn.accept();
    },
    { maxFlowsPerGuest, endpoint: { random: () => ISS, timeWaitMs: 60_000 } },
  );
  const fromGuest = (port: number, flags: string, seq: number, ack = 0, data = "") => {
    const seg: TcpSegment = {
      srcPort: port,
      dstPort: 80,
      seq,
      ack,
      flags: tcpFlagsFromString(flags) as number,
      window: 65535,
      urgent: 0,
      payload: Buffer.from(data),
    };
    layer.input(GUEST, HOST, seg, GUEST_KEY);
  };
  const take = () => sent.splice(0).map((o) => `${tcpFlagsToString(o.seg.flags)} ${o.seg.seq}:${o.seg.ack}`);
  const types = () => events.splice(0).map(([, e]) => e.type);
  /** one connection from `port` where the host answers and closes first */
  const serverClosesFirst = (port: number, isn: number) => {
    fromGuest(port, "S", isn);
    const conn = events.find(([, e]) => e.type === "connect-request")?.[0];
    fromGuest(port, "A", isn + 1, ISS + 1, "x");
    conn?.write(Buffer.from("y"));
    conn?.shutdownWrite();
    fromGuest(port, "FA", isn + 2, ISS + 3);
    return { conn, out: take(), events: types() };
  };
  return { clock, drops, layer, fromGuest, take, types, serverClosesFirst };
}

describe("GuestTcpLayer and TIME_WAIT", () => {
  it("connections in TIME_WAIT do not count against the per-guest bound", () => {
    const t = setup(2);
    for (let i = 0; i < 10; i++) {
      const r = t.serverClosesFirst(40000 + i, 5000);
      expect(r.out).toEqual(["SA 1000:5001", "PA 1001:5002", "FA 1002:5002", "A 1003:5003"]);
      expect(r.events).toEqual(["connect-request", "established", "data", "eof", "closed"]);
    }
    expect(t.layer.size).toBe(0);
    expect(t.layer.table.countFor(GUEST_KEY)).toBe(0);
    expect(t.layer.table.timeWait.size).toBe(10);
    expect(t.layer.table.counters.refused).toBe(0);
  });

  it("re-acks a retransmitted FIN from TIME_WAIT, reopens on a newer SYN, and forgets after 60 s", () => {
    const t = setup(2);
    t.serverClosesFirst(40000, 5000);
    t.clock.advance(1000);
    t.fromGuest(40000, "FA", 5002, ISS + 3);
    expect(t.take()).toEqual(["A 1003:5003"]);
    expect(t.types()).toEqual([]);
    // a new SYN with a higher sequence number opens a new connection on the tuple
    t.fromGuest(40000, "S", 9000);
    expect(t.types()).toEqual(["connect-request"]);
    expect(t.take()).toEqual(["SA 1000:9001"]);
    expect(t.layer.table.timeWait.size).toBe(0);
    t.fromGuest(40000, "R", 9001);
    t.types();
    // TIME_WAIT of another connection ends after 60 s on the layer's timer
    t.serverClosesFirst(40001, 5000);
    expect(t.layer.nextDeadline()).toBe(61_000);
    t.clock.advance(61_000);
    t.layer.onTimer();
    expect(t.layer.table.timeWait.size).toBe(0);
    expect(t.layer.nextDeadline()).toBeUndefined();
    // now the FIN belongs to nothing: RST
    t.fromGuest(40001, "FA", 5002, ISS + 3);
    expect(t.take()).toEqual(["R 1003:0"]);
  });

  it("the guest closing first leaves nothing behind", () => {
    const t = setup(2);
    t.fromGuest(40000, "S", 5000);
    const conn = t.layer.connections().next().value as GuestTcpConnection;
    t.fromGuest(40000, "A", 5001, ISS + 1);
    t.fromGuest(40000, "FA", 5001, ISS + 1);
    conn.shutdownWrite();
    t.fromGuest(40000, "A", 5002, ISS + 2);
    expect(t.types()).toEqual(["connect-request", "established", "eof", "closed"]);
    expect(t.layer.size).toBe(0);
    expect(t.layer.table.timeWait.size).toBe(0);
    expect([...t.layer.connections()]).toEqual([]);
    expect(t.layer.nextDeadline()).toBeUndefined();
  });
});

describe("GuestTcpLayer and the buffer budget", () => {
  it("gives a guest at its budget a zero window on every connection; another guest keeps its window; consuming reopens", () => {
    const clock = new ManualClock();
    const sent: TcpOutput[] = [];
    const conns: GuestTcpConnection[] = [];
    const budget = new ByteBudget({ max: 100_000, perGuest: 3000 });
    const layer = new GuestTcpLayer(
      clock,
      new DropCounters(),
      (s) => sent.push(...s),
      (conn, ev) => {
        if (ev.type === "connect-request") {
          conns.push(conn);
          conn.accept();
        }
      },
      { budget, endpoint: { random: () => ISS, delayedAckMs: 0 } },
    );
    const from = (guest: number, port: number, flags: string, seq: number, ack = 0, data = "") =>
      layer.input(
        GUEST + guest,
        HOST,
        {
          srcPort: port,
          dstPort: 80,
          seq,
          ack,
          flags: tcpFlagsFromString(flags) as number,
          window: 65535,
          urgent: 0,
          payload: Buffer.alloc(data.length, data),
        },
        guest,
      );
    const lastWindow = () => sent.at(-1)?.seg.window;
    for (const [guest, port] of [
      [1, 40000],
      [1, 40001],
      [2, 40000],
    ] as const) {
      from(guest, port, "S", 5000);
      from(guest, port, "A", 5001, ISS + 1);
    }
    // guest 1 sends 2 × 1400 bytes on each connection; nothing is consumed by the host side
    const chunk = "x".repeat(1400);
    for (const port of [40000, 40001]) {
      from(1, port, "PA", 5001, ISS + 1, chunk);
      from(1, port, "PA", 5001 + 1400, ISS + 1, chunk);
    }
    expect(budget.of(1)).toBeGreaterThanOrEqual(3000);
    // what was offered before the budget ran out stays offered (windows never shrink); past it, zero
    const rest = lastWindow() ?? 0;
    expect(sent.at(-1)?.seg.dstPort).toBe(40001);
    expect(rest).toBeLessThan(1400);
    from(1, 40001, "PA", 5001 + 2800, ISS + 1, "y".repeat(rest));
    clock.advance(1);
    layer.onTimer(); // the delayed ACK
    expect(sent.at(-1)?.seg.ack).toBe(5001 + 2800 + rest);
    expect(lastWindow()).toBe(0);
    expect(budget.throttled).toBeGreaterThan(0);
    // guest 2 is not affected
    from(2, 40000, "PA", 5001, ISS + 1, chunk);
    clock.advance(1);
    layer.onTimer();
    expect(sent.at(-1)?.dst).toBe(GUEST + 2);
    expect(lastWindow()).toBeGreaterThan(1000);
    expect(budget.of(2)).toBe(1400);
    // the host side takes guest 1's bytes: the window opens again
    conns[0]?.consume(2800);
    conns[1]?.consume(2800 + rest);
    expect(budget.of(1)).toBe(0);
    expect(sent.at(-1)?.dst).toBe(GUEST + 1);
    expect(lastWindow()).toBeGreaterThan(1000);
    // a connection that goes gives back what it held
    conns[2]?.abort();
    expect(budget.of(2)).toBe(0);
    expect(budget.total).toBe(0);
  });

  it("charges host bytes in the send buffer to the guest, releases them as the guest ACKs and when the connection goes, and wakes a waiter of that guest only", () => {
    const clock = new ManualClock();
    const conns: GuestTcpConnection[] = [];
    const budget = new ByteBudget({ max: 100_000, perGuest: 5000 });
    const layer = new GuestTcpLayer(
      clock,
      new DropCounters(),
      () => {},
      (conn, ev) => {
        if (ev.type === "connect-request") {
          conns.push(conn);
          conn.accept();
        }
      },
      { budget, endpoint: { random: () => ISS, delayedAckMs: 0 } },
    );
    const from = (guest: number, port: number, flags: string, seq: number, ack = 0) =>
      layer.input(
        GUEST + guest,
        HOST,
        {
          srcPort: port,
          dstPort: 80,
          seq,
          ack,
          flags: tcpFlagsFromString(flags) as number,
          window: 65535,
          urgent: 0,
          payload: Buffer.alloc(0),
        },
        guest,
      );
    for (const [guest, port] of [
      [1, 40000],
      [1, 40001],
      [2, 40000],
    ] as const) {
      from(guest, port, "S", 5000);
      from(guest, port, "A", 5001, ISS + 1);
    }
    const [a, b, c] = conns;
    if (!a || !b || !c) throw new Error("three connections");
    expect(a.write(Buffer.alloc(3000, 1))).toBe(3000);
    expect(budget.of(1)).toBe(3000);
    expect(b.write(Buffer.alloc(3000, 2))).toBe(3000);
    // the budget is soft: the write is taken whole, and the guest has no room left
    expect(budget.of(1)).toBe(6000);
    expect(a.budgetRoom()).toBe(0);
    expect(budget.throttled).toBe(1);
    expect(c.budgetRoom()).toBe(5000);
    let woken1 = 0;
    let woken2 = 0;
    a.awaitBudget(() => woken1++);
    b.awaitBudget(() => woken1++);
    expect(budget.waiting).toBe(2);
    // guest 2's bytes come and go: guest 1's waiters sleep on
    c.write(Buffer.alloc(1000));
    from(2, 40000, "A", 5001, ISS + 1 + 1000);
    expect(budget.of(2)).toBe(0);
    expect(woken1).toBe(0);
    // guest 1 acknowledges 1000 bytes: at its budget still, nobody wakes
    from(1, 40000, "A", 5001, ISS + 1 + 1000);
    expect(budget.of(1)).toBe(5000);
    expect(woken1).toBe(0);
    // ... 2000 more: room again, both waiters wake once
    from(1, 40000, "A", 5001, ISS + 1 + 3000);
    expect(budget.of(1)).toBe(3000);
    expect(woken1).toBe(2);
    expect(budget.waiting).toBe(0);
    // a guest with room is woken at once
    c.awaitBudget(() => woken2++);
    expect(woken2).toBe(1);
    // a connection that goes gives back the unacknowledged bytes it held
    b.abort();
    expect(budget.of(1)).toBe(0);
    expect(budget.total).toBe(0);
  });
});
