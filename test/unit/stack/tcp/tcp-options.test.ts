import { describe, expect, it } from "vitest";
import { NegotiatedOptions, type TcpOptionsOffer } from "../../../../src/stack/tcp/tcp-options.js";
import type { TcpSegment } from "../../../../src/stack/wire/tcp.js";
import { Dialogue, established, ISS } from "./dialogue.js";

const ours: TcpOptionsOffer = { mss: 1460, windowScale: 7, sack: true, timestamps: true };

function syn(extra: Partial<TcpSegment> = {}): TcpSegment {
  return {
    srcPort: 40000,
    dstPort: 80,
    seq: 5000,
    ack: 0,
    flags: 0x02,
    window: 65535,
    urgent: 0,
    payload: Buffer.alloc(0),
    ...extra,
  };
}

describe("NegotiatedOptions", () => {
  it("gives a guest that sends no option 536 bytes, no scaling, no SACK, no timestamps", () => {
    const n = new NegotiatedOptions(ours);
    n.fromSyn(syn());
    expect([n.sndMss, n.rcvMss, n.sndShift, n.rcvShift, n.sack, n.ts, n.ws]).toEqual([
      536,
      1460,
      0,
      0,
      false,
      false,
      false,
    ]);
    n.fromSyn(syn({ mss: 0 }));
    expect(n.sndMss).toBe(536);
  });

  it("takes what both sides offered; timestamps cost 12 bytes of every segment both ways", () => {
    const n = new NegotiatedOptions(ours);
    n.fromSyn(syn({ mss: 1400, windowScale: 3, sackPermitted: true, tsVal: 42 }));
    expect([n.sndMss, n.rcvMss, n.sndShift, n.rcvShift, n.sack, n.ts, n.tsRecent]).toEqual([
      1388,
      1448,
      3,
      7,
      true,
      true,
      42,
    ]);
  });

  it("clamps the guest's MSS to at least 64 and its shift to 14", () => {
    const n = new NegotiatedOptions(ours);
    n.fromSyn(syn({ mss: 10, windowScale: 30 }));
    expect([n.sndMss, n.sndShift]).toEqual([64, 14]);
  });

  it("negotiates nothing we disabled", () => {
    const n = new NegotiatedOptions({ ...ours, sack: false, timestamps: false });
    n.fromSyn(syn({ sackPermitted: true, tsVal: 42 }));
    expect([n.sack, n.ts, n.sndMss]).toEqual([false, false, 536]);
  });

  it("offers everything enabled on a SYN, and on a SYN-ACK only what the guest's SYN did", () => {
    const n = new NegotiatedOptions(ours);
    n.tsOffset = 1000;
    const s = syn();
    n.offer(s, false, 5);
    expect([s.mss, s.windowScale, s.sackPermitted, s.tsVal, s.tsEcr]).toEqual([1460, 7, true, 1005, 0]);
    n.fromSyn(syn({ tsVal: 77 }));
    const sa = syn();
    n.offer(sa, true, 6);
    expect([sa.mss, sa.windowScale, sa.sackPermitted, sa.tsVal, sa.tsEcr]).toEqual([
      1460,
      undefined,
      undefined,
      1006,
      77,
    ]);
  });

  it("takes TS.Recent only from a segment that covers our last ACK (RFC 7323 §4.3)", () => {
    const n = new NegotiatedOptions(ours);
    n.fromSyn(syn({ tsVal: 1 }));
    n.lastAckSent = 6000;
    n.noteTsVal(syn({ seq: 6001, tsVal: 2 }));
    expect(n.tsRecent).toBe(1);
    n.noteTsVal(syn({ seq: 6000, tsVal: 3 }));
    expect(n.tsRecent).toBe(3);
  });

  it("runs the timestamp clock in milliseconds from the offset, wrapping at 2^32", () => {
    const n = new NegotiatedOptions(ours);
    n.tsOffset = 0xffff_fff0;
    expect(n.tsValue(0x20 + 0.9)).toBe(0x10);
  });
});

describe("through the endpoint", () => {
  it("offers no option the guest did not (MSS only, like a plain SYN)", () => {
    const d = Dialogue.passive();
    d.fromGuest({ flags: "S", seq: 5000 }).accept();
    const sa = d.expectToGuest({ flags: "SA", ack: 5001, mss: 1460 });
    expect(sa.windowScale).toBeUndefined();
    expect(sa.sackPermitted ?? false).toBe(false);
    expect(sa.tsVal).toBeUndefined();
    d.fromGuest({ flags: "A", seq: 5001, ack: ISS + 1 });
    expect(d.ep.negotiated).toEqual({
      sendMss: 536,
      sendShift: 0,
      recvShift: 0,
      sack: false,
      timestamps: false,
    });
  });

  it("clamps the guest's window scale to 14 and its MSS to ours", () => {
    const d = established({ mss: 9000, wscale: 20 });
    expect(d.ep.negotiated.sendShift).toBe(14);
    expect(d.ep.negotiated.sendMss).toBe(1460);
  });
});
