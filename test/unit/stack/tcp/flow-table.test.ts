import { describe, expect, it } from "vitest";
import {
  guestKeyOfAddr,
  rstFor,
  TcpFlowTable,
  tcpFlowLimits,
  tcpTupleFromGuest,
  tcpTupleKey,
} from "../../../../src/stack/tcp/flow-table.js";
import { TcpFlag, type TcpSegment } from "../../../../src/stack/wire/tcp.js";

const G1 = 0x0a00020f;
const G2 = 0x0a000210;
const R = 0xc6336401;

function seg(flags: number, over: Partial<TcpSegment> = {}): TcpSegment {
  return {
    srcPort: 40000,
    dstPort: 80,
    seq: 5000,
    ack: 0,
    flags,
    window: 65535,
    urgent: 0,
    payload: Buffer.alloc(0),
    ...over,
  };
}

describe("rstFor (RFC 9293 reset generation)", () => {
  it("answers a SYN with RST+ACK acking the SYN", () => {
    const r = rstFor(G1, R, seg(TcpFlag.syn));
    expect(r?.src).toBe(R);
    expect(r?.dst).toBe(G1);
    expect(r?.seg).toMatchObject({
      srcPort: 80,
      dstPort: 40000,
      seq: 0,
      ack: 5001,
      flags: TcpFlag.rst | TcpFlag.ack,
    });
  });

  it("counts data and FIN in the acknowledgment", () => {
    const r = rstFor(G1, R, seg(TcpFlag.fin | TcpFlag.psh, { seq: 0xfffffffe, payload: Buffer.from("abc") }));
    expect(r?.seg).toMatchObject({ seq: 0, ack: 2, flags: TcpFlag.rst | TcpFlag.ack }); // wraps: 3 bytes + FIN
  });

  it("takes the sequence number from an ACK and sets no ACK", () => {
    const r = rstFor(G1, R, seg(TcpFlag.ack, { ack: 777, payload: Buffer.from("x") }));
    expect(r?.seg).toMatchObject({ seq: 777, ack: 0, flags: TcpFlag.rst });
  });

  it("never answers a RST", () => {
    expect(rstFor(G1, R, seg(TcpFlag.rst))).toBeUndefined();
    expect(rstFor(G1, R, seg(TcpFlag.rst | TcpFlag.ack))).toBeUndefined();
  });
});

describe("tcpTupleKey", () => {
  it("tells every field apart, high and low halves included", () => {
    const t = { guestAddr: 0x0a00020f, guestPort: 40000, remoteAddr: 0xc6336401, remotePort: 80 };
    const keys = new Set([
      tcpTupleKey(t),
      tcpTupleKey({ ...t, guestAddr: 0x0b00020f }),
      tcpTupleKey({ ...t, guestAddr: 0x0a000210 }),
      tcpTupleKey({ ...t, guestPort: 40001 }),
      tcpTupleKey({ ...t, remoteAddr: 0xc7336401 }),
      tcpTupleKey({ ...t, remoteAddr: 0xc6336402 }),
      tcpTupleKey({ ...t, remotePort: 81 }),
      tcpTupleKey({
        guestAddr: t.remoteAddr,
        guestPort: t.remotePort,
        remoteAddr: t.guestAddr,
        remotePort: t.guestPort,
      }),
    ]);
    expect(keys.size).toBe(8);
    expect(tcpTupleKey({ ...t })).toBe(tcpTupleKey(t));
  });
});

describe("TcpFlowTable", () => {
  it("finds the right flow whichever was looked up last, and none once deleted", () => {
    const t = new TcpFlowTable();
    const a = t.open(G1, R, seg(TcpFlag.syn), guestKeyOfAddr(G1));
    const b = t.open(G1, R, seg(TcpFlag.syn, { srcPort: 40001 }), guestKeyOfAddr(G1));
    const c = t.open(G2, R, seg(TcpFlag.syn), guestKeyOfAddr(G2));
    const d = t.open(G1, R + 1, seg(TcpFlag.syn), guestKeyOfAddr(G1));
    const e = t.open(G1, R, seg(TcpFlag.syn, { dstPort: 81 }), guestKeyOfAddr(G1));
    expect(new Set([a, b, c, d, e]).size).toBe(5);
    for (let round = 0; round < 2; round++) {
      expect(t.lookup(G1, R, seg(TcpFlag.ack))).toBe(a);
      expect(t.lookup(G1, R, seg(TcpFlag.ack))).toBe(a);
      expect(t.lookup(G1, R, seg(TcpFlag.ack, { srcPort: 40001 }))).toBe(b);
      expect(t.lookup(G2, R, seg(TcpFlag.ack))).toBe(c);
      expect(t.lookup(G1, R + 1, seg(TcpFlag.ack))).toBe(d);
      expect(t.lookup(G1, R, seg(TcpFlag.ack, { dstPort: 81 }))).toBe(e);
    }
    expect(t.lookup(G1, R, seg(TcpFlag.ack))).toBe(a);
    expect(t.delete(tcpTupleFromGuest(G1, R, seg(TcpFlag.ack)))).toBe(true);
    expect(t.lookup(G1, R, seg(TcpFlag.ack))).toBeUndefined();
    const again = t.open(G1, R, seg(TcpFlag.syn), guestKeyOfAddr(G1));
    expect(again).not.toBe(a);
    expect(t.lookup(G1, R, seg(TcpFlag.ack))).toBe(again);
  });

  it("opens, finds and deletes flows by 4-tuple", () => {
    const t = new TcpFlowTable();
    const syn = seg(TcpFlag.syn);
    const ep = t.open(G1, R, syn, guestKeyOfAddr(G1));
    expect(ep).toBeDefined();
    expect(t.lookup(G1, R, syn)).toBe(ep);
    expect(t.lookup(G1, R, seg(TcpFlag.ack, { srcPort: 40001 }))).toBeUndefined();
    expect(t.lookup(G2, R, syn)).toBeUndefined();
    // a repeated SYN finds the same endpoint
    expect(t.open(G1, R, syn, guestKeyOfAddr(G1))).toBe(ep);
    expect(t.size).toBe(1);
    expect(t.countFor(guestKeyOfAddr(G1))).toBe(1);
    expect(t.delete(tcpTupleFromGuest(G1, R, syn))).toBe(true);
    expect(t.delete(tcpTupleFromGuest(G1, R, syn))).toBe(false);
    expect(t.size).toBe(0);
    expect(t.countFor(guestKeyOfAddr(G1))).toBe(0);
  });

  it("bounds connections per guest and counts refusals", () => {
    const t = new TcpFlowTable({ maxFlowsPerGuest: 2 });
    expect(t.open(G1, R, seg(TcpFlag.syn, { srcPort: 1 }), guestKeyOfAddr(G1))).toBeDefined();
    expect(t.open(G1, R, seg(TcpFlag.syn, { srcPort: 2 }), guestKeyOfAddr(G1))).toBeDefined();
    expect(t.open(G1, R, seg(TcpFlag.syn, { srcPort: 3 }), guestKeyOfAddr(G1))).toBeUndefined();
    expect(t.counters.refused).toBe(1);
    // another guest is not affected
    expect(t.open(G2, R, seg(TcpFlag.syn, { srcPort: 3 }), guestKeyOfAddr(G2))).toBeDefined();
    // freeing one makes room again
    t.delete(tcpTupleFromGuest(G1, R, seg(TcpFlag.syn, { srcPort: 1 })));
    expect(t.open(G1, R, seg(TcpFlag.syn, { srcPort: 3 }), guestKeyOfAddr(G1))).toBeDefined();
    expect(t.counters.opened).toBe(4);
    expect([...t].length).toBe(3);
  });

  it("bounds the whole table", () => {
    const t = new TcpFlowTable({ maxFlows: 1 });
    expect(t.open(G1, R, seg(TcpFlag.syn), guestKeyOfAddr(G1))).toBeDefined();
    expect(t.open(G2, R, seg(TcpFlag.syn), guestKeyOfAddr(G2))).toBeUndefined();
    expect(t.counters.refused).toBe(1);
  });

  it("retires a connection in TIME_WAIT: no flow slot, a record that answers and lets a new SYN in", () => {
    const t = new TcpFlowTable({ maxFlowsPerGuest: 1, endpoint: { random: () => 1000 } });
    const ep = t.open(G1, R, seg(TcpFlag.syn), guestKeyOfAddr(G1)) as NonNullable<
      ReturnType<TcpFlowTable["open"]>
    >;
    ep.onSegment(seg(TcpFlag.syn), 0);
    ep.accept(0);
    ep.onSegment(seg(TcpFlag.ack, { seq: 5001, ack: 1001 }), 0);
    ep.shutdownWrite(0);
    const step = ep.onSegment(seg(TcpFlag.ack | TcpFlag.fin, { seq: 5001, ack: 1002 }), 0);
    expect(step.events.map((e) => e.type)).toEqual(["eof", "time-wait"]);
    // the guest is at its bound until the connection is retired
    expect(t.open(G1, R, seg(TcpFlag.syn, { srcPort: 40001 }), guestKeyOfAddr(G1))).toBeUndefined();
    expect(t.retire(ep, 0)).toBe(true);
    expect(t.retire(ep, 0)).toBe(false);
    expect(t.size).toBe(0);
    expect(t.countFor(guestKeyOfAddr(G1))).toBe(0);
    expect(t.timeWait.size).toBe(1);
    expect(t.open(G1, R, seg(TcpFlag.syn, { srcPort: 40001 }), guestKeyOfAddr(G1))).toBeDefined();
    // the guest's FIN again: acked from the record
    const again = t.timeWaitInput(G1, R, seg(TcpFlag.ack | TcpFlag.fin, { seq: 5001, ack: 1002 }), 10);
    expect(again?.reopen).toBe(false);
    expect(again?.reply?.seg).toMatchObject({ seq: 1002, ack: 5002, flags: TcpFlag.ack });
    // an old SYN is answered, not let in; a newer one ends TIME_WAIT
    expect(t.timeWaitInput(G1, R, seg(TcpFlag.syn, { seq: 4000 }), 20)?.reopen).toBe(false);
    expect(t.timeWaitInput(G1, R, seg(TcpFlag.syn, { seq: 9000 }), 30)?.reopen).toBe(true);
    expect(t.timeWait.size).toBe(0);
    expect(t.timeWaitInput(G1, R, seg(TcpFlag.syn, { seq: 9000 }), 30)).toBeUndefined();
  });

  it("ends TIME_WAIT when a connection is added on its tuple", () => {
    const t = new TcpFlowTable();
    t.timeWait.add(
      tcpTupleKey({ guestAddr: G1, guestPort: 40000, remoteAddr: R, remotePort: 80 }),
      { sndNxt: 1, rcvNxt: 2, window: 100, timestamps: false, tsOffset: 0, tsRecent: 0 },
      0,
    );
    expect(t.timeWaitInput(G1, R, seg(TcpFlag.ack, { seq: 1 }), 0)?.reply).toBeDefined();
    expect(t.open(G1, R, seg(TcpFlag.syn), guestKeyOfAddr(G1))).toBeDefined();
    expect(t.timeWait.size).toBe(0);
  });

  it("settles max-flows and max-flows-per-guest given alone or together", () => {
    expect(tcpFlowLimits(undefined, undefined)).toEqual({ maxFlows: 65536, maxFlowsPerGuest: 32768 });
    expect(tcpFlowLimits(1000, undefined)).toEqual({ maxFlows: 1000, maxFlowsPerGuest: 1000 });
    expect(tcpFlowLimits(undefined, 100_000)).toEqual({ maxFlows: 100_000, maxFlowsPerGuest: 100_000 });
    expect(tcpFlowLimits(undefined, 10)).toEqual({ maxFlows: 65536, maxFlowsPerGuest: 10 });
    expect(tcpFlowLimits(200, 100)).toEqual({ maxFlows: 200, maxFlowsPerGuest: 100 });
  });

  it("allows one guest 30,000 connections by default", () => {
    const t = new TcpFlowTable();
    for (let p = 1; p <= 30_000; p++)
      expect(t.open(G1, R, seg(TcpFlag.syn, { srcPort: p }), guestKeyOfAddr(G1))).toBeDefined();
    expect(t.countFor(guestKeyOfAddr(G1))).toBe(30_000);
    expect(t.limits).toEqual({ maxFlows: 65536, maxFlowsPerGuest: 32768, maxTimeWait: 16384 });
  });

  it("counts the RSTs it generates for unknown flows", () => {
    const t = new TcpFlowTable();
    expect(t.reject(G1, R, seg(TcpFlag.ack, { ack: 9 }))?.seg.seq).toBe(9);
    expect(t.reject(G1, R, seg(TcpFlag.rst))).toBeUndefined();
    expect(t.counters.resets).toBe(1);
  });
});
