import { describe, expect, it } from "vitest";
import { type TimeWaitRecord, TimeWaitTable } from "../../../../src/stack/tcp/time-wait.js";
import { TcpFlag, type TcpSegment } from "../../../../src/stack/wire/tcp.js";

const G = 0x0a00020f;
const R = 0x0a000202;
const { syn: SYN, ack: ACK, fin: FIN, rst: RST } = TcpFlag;

const rec = (over: Partial<TimeWaitRecord> = {}): TimeWaitRecord => ({
  sndNxt: 1002,
  rcvNxt: 5002,
  window: 512,
  timestamps: false,
  tsOffset: 0,
  tsRecent: 0,
  ...over,
});

function seg(flags: number, seq: number, over: Partial<TcpSegment> = {}): TcpSegment {
  return {
    srcPort: 40000,
    dstPort: 80,
    seq,
    ack: 1002,
    flags,
    window: 65535,
    urgent: 0,
    payload: Buffer.alloc(0),
    ...over,
  };
}

describe("TimeWaitTable", () => {
  it("re-acks a retransmitted FIN and starts TIME_WAIT over", () => {
    const t = new TimeWaitTable(16, 60_000);
    t.add("k", rec(), 0);
    expect(t.nextDeadline()).toBe(60_000);
    const a = t.input("k", G, R, seg(FIN | ACK, 5001), 30_000);
    expect(a?.reopen).toBe(false);
    expect(a?.reply).toEqual({
      src: R,
      dst: G,
      seg: {
        srcPort: 80,
        dstPort: 40000,
        seq: 1002,
        ack: 5002,
        flags: ACK,
        window: 512,
        urgent: 0,
        payload: Buffer.alloc(0),
      },
    });
    expect(t.counters.acks).toBe(1);
    t.expire(60_000);
    expect(t.has("k")).toBe(true);
    expect(t.nextDeadline()).toBe(90_000);
    t.expire(90_000);
    expect(t.has("k")).toBe(false);
    expect(t.input("k", G, R, seg(FIN | ACK, 5001), 90_000)).toBeUndefined();
    expect(t.nextDeadline()).toBeUndefined();
  });

  it("echoes timestamps in its ACKs: our clock from the connection's offset, the guest's last value", () => {
    const t = new TimeWaitTable(16, 60_000);
    t.add("k", rec({ timestamps: true, tsOffset: 7000, tsRecent: 300 }), 0);
    const a = t.input("k", G, R, seg(FIN | ACK, 5001, { tsVal: 310, tsEcr: 1 }), 1234.5);
    expect(a?.reply?.seg).toMatchObject({ tsVal: 8234, tsEcr: 300 });
  });

  it("lets a new SYN in when its sequence number or timestamp is newer (RFC 9293 §3.6.1, RFC 6191)", () => {
    const t = new TimeWaitTable(16, 60_000);
    t.add("k", rec({ timestamps: true, tsRecent: 300 }), 0);
    // older sequence number and timestamp: an old duplicate, answered with an ACK
    const old = t.input("k", G, R, seg(SYN, 4000, { ack: 0, tsVal: 200 }), 10);
    expect(old?.reopen).toBe(false);
    expect(old?.reply?.seg.flags).toBe(ACK);
    expect(t.has("k")).toBe(true);
    // older sequence number, newer timestamp
    expect(t.input("k", G, R, seg(SYN, 4000, { ack: 0, tsVal: 400 }), 20)).toEqual({
      reply: undefined,
      reopen: true,
    });
    expect(t.has("k")).toBe(false);
    t.add("k", rec(), 30);
    expect(t.input("k", G, R, seg(SYN, 9000, { ack: 0 }), 40)?.reopen).toBe(true);
    expect(t.counters.reused).toBe(2);
  });

  it("takes a bare ACK at RCV.NXT silently, ends on a RST there and ignores one elsewhere", () => {
    const t = new TimeWaitTable(16, 60_000);
    t.add("k", rec(), 0);
    expect(t.input("k", G, R, seg(ACK, 5002), 1)).toEqual({ reply: undefined, reopen: false });
    expect(t.input("k", G, R, seg(RST, 5100), 2)).toEqual({ reply: undefined, reopen: false });
    expect(t.has("k")).toBe(true);
    expect(t.input("k", G, R, seg(RST, 5002), 3)).toEqual({ reply: undefined, reopen: false });
    expect(t.has("k")).toBe(false);
  });

  it("recycles the oldest record when full, and counts it", () => {
    const t = new TimeWaitTable(100, 60_000);
    for (let i = 0; i < 250; i++) t.add(`k${i}`, rec({ rcvNxt: i }), i);
    expect(t.size).toBe(100);
    expect(t.counters.recycled).toBe(150);
    expect(t.has("k149")).toBe(false);
    expect(t.has("k150")).toBe(true);
    expect(t.has("k249")).toBe(true);
    // what survived kept its numbers through the ring's growth
    expect(t.input("k150", G, R, seg(FIN | ACK, 149), 300)?.reply?.seg.ack).toBe(150);
    // a restarted record is the newest: the next recycling takes k151, not it
    t.add("new", rec(), 400);
    expect(t.has("k150")).toBe(true);
    expect(t.has("k151")).toBe(false);
  });

  it("expires in order of time even after restarts and removals", () => {
    const t = new TimeWaitTable(8, 1000);
    t.add("a", rec(), 0);
    t.add("b", rec(), 100);
    t.add("c", rec(), 200);
    t.remove("b");
    t.input("a", G, R, seg(FIN | ACK, 5001), 500); // a now lasts until 1500
    expect(t.nextDeadline()).toBe(2000); // c at 1200, rounded up to the second
    t.expire(1200);
    expect([t.has("a"), t.has("b"), t.has("c")]).toEqual([true, false, false]);
    t.expire(1500);
    expect(t.size).toBe(0);
  });

  it("holds nothing with capacity 0", () => {
    const t = new TimeWaitTable(0, 60_000);
    t.add("k", rec(), 0);
    expect(t.size).toBe(0);
    expect(t.nextDeadline()).toBeUndefined();
  });
});
