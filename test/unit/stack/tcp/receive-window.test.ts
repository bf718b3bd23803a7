import { describe, expect, it } from "vitest";
import { ReceiveWindow } from "../../../../src/stack/tcp/receive-window.js";
import { Dialogue, established, ISS, pattern } from "./dialogue.js";

describe("ReceiveWindow", () => {
  it("counts delivered bytes against the buffer until they are consumed", () => {
    const w = new ReceiveWindow(4000, 1000);
    expect(w.space()).toBe(4000);
    w.deliver(3000);
    expect(w.space()).toBe(1000);
    w.consume(-5); // a negative count changes nothing
    expect(w.space()).toBe(1000);
    w.consume(5000); // nor does consuming more than was delivered go below zero
    expect([w.unconsumed, w.space()]).toEqual([0, 4000]);
  });

  it("offers at most 65,535 unscaled in a SYN-ACK, and that edge is the first one advertised", () => {
    const w = new ReceiveWindow(1 << 20, 1460);
    expect(w.synField()).toBe(65535);
    expect(w.offerSyn(100)).toBe(65535);
    expect(w.adv).toBe(100 + 65535);
    // the whole buffer counts as acceptable, not only what was offered
    expect(w.window(100)).toBe(1 << 20);
  });

  it("never moves the advertised edge left, and accepts up to it even when the buffer filled", () => {
    const w = new ReceiveWindow(4000, 1000);
    w.offerSyn(0);
    w.deliver(3000);
    expect(w.window(3000)).toBe(1000);
    w.deliver(1000);
    // the buffer is full, but the edge stays where it was (4000)
    expect(w.advertise(4000)).toBe(0);
    expect(w.window(3500)).toBe(500);
    expect(w.adv).toBe(4000);
  });

  it("moves the edge right only by the SWS threshold, min(buffer / 2, MSS) (RFC 1122 §4.2.3.3)", () => {
    const w = new ReceiveWindow(8000, 1000);
    w.offerSyn(0);
    w.deliver(8000);
    expect(w.advertise(8000)).toBe(0);
    w.consume(999);
    expect(w.advertise(8000)).toBe(0);
    w.consume(1);
    expect(w.advertise(8000)).toBe(1000);
    expect(w.adv).toBe(9000);
  });

  it("rounds a scaled window up to the scale's unit, never hiding a small one", () => {
    const w = new ReceiveWindow(1000, 100);
    w.shift = 7;
    w.offerSyn(0);
    // 1000 bytes open: 7.8 units, advertised as 8 (1024 bytes)
    expect(w.advertise(0)).toBe(8);
    expect(w.adv).toBe(1024);
    expect(w.scaledSpace()).toBe(7);
  });

  it("asks for a window update of its own only when the guest used over half of what was offered", () => {
    const w = new ReceiveWindow(8192, 1460);
    w.offerSyn(0);
    w.deliver(2920);
    w.advertise(2920);
    // 5272 of 8192 left
    expect(w.updateIsUrgent(2920)).toBe(false);
    w.deliver(2920);
    w.advertise(5840);
    // 2352 left, but nothing consumed: the edge would not move
    expect(w.updateIsUrgent(5840)).toBe(false);
    w.consume(5840);
    // under half, and the edge would move by 5840
    expect(w.updateIsUrgent(5840)).toBe(true);
  });

  it("measures against the SYN-ACK's unscaled window until a later segment advertises", () => {
    const w = new ReceiveWindow(1 << 20, 1460);
    w.shift = 7;
    w.offerSyn(0);
    w.deliver(40_000);
    w.consume(40_000);
    // 25,535 of 65,535 left: under half of what the SYN-ACK offered
    expect(w.updateIsUrgent(40_000)).toBe(true);
    w.advertise(40_000);
    // now the measure is the whole buffer, and the guest has all of it
    expect(w.updateIsUrgent(40_000)).toBe(false);
  });
});

describe("through the endpoint", () => {
  it("trims data beyond the window and only re-opens it on consume()", () => {
    const d = established({}, { recvBufferSize: 4000 });
    // the SYN-ACK advertised 4000 bytes
    d.fromGuest({ seq: 5001, ack: ISS + 1, data: pattern(3000) });
    d.fromGuest({ seq: 8001, ack: ISS + 1, data: pattern(1500, 3000) });
    d.expectToGuest({ flags: "A", ack: 9001, window: 0 });
    expect(d.takeData().equals(pattern(4000))).toBe(true);
    // a segment into the zero window is dropped and answered
    d.fromGuest({ seq: 9001, ack: ISS + 1, data: pattern(500, 4000) });
    d.expectToGuest({ flags: "A", ack: 9001, window: 0 });
    expect(d.takeData().length).toBe(0);
    // a small consume stays below the SWS threshold: no update, still zero
    d.consume(1000).expectNothingSent();
    d.consume(1000);
    d.expectToGuest({ flags: "A", ack: 9001, window: 2000 });
    // half the buffer is open: the rest is announced with the next ACK, not on its own
    d.consume(2000).expectNothingSent();
    d.fromGuest({ seq: 9001, ack: ISS + 1, data: "z" });
    d.advance(40).expectToGuest({ flags: "A", ack: 9002, window: 3999 });
  });

  it("lets the next segment carry a window that consume() opens while the guest has room", () => {
    const d = Dialogue.passive({ recvBufferSize: 1 << 20 });
    d.fromGuest({ flags: "S", seq: 5000, window: 65535, wscale: 7 });
    d.accept();
    const shift = d.expectToGuest({ flags: "SA" }).windowScale ?? 0;
    d.fromGuest({ flags: "A", seq: 5001, ack: ISS + 1 });
    d.expectEvents("connect-request", "established");
    // a request: the SYN-ACK's unscaled 65,535 still leaves the guest plenty of room
    d.fromGuest({ seq: 5001, ack: ISS + 1, data: "ping" });
    expect(d.takeData().toString()).toBe("ping");
    d.consume(4).expectNothingSent();
    // the response acknowledges the request and carries the whole buffer as window
    d.write("pong");
    const seg = d.expectToGuest({ ack: 5005, data: "pong" });
    expect(seg.window * 2 ** shift).toBeGreaterThanOrEqual((1 << 20) - 2 ** shift);
    d.expectNothingSent();
  });

  it("announces a consume() at once when the guest is nearly out of window", () => {
    const d = established({}, { recvBufferSize: 8192 });
    for (const [i, window] of [
      [0, 8192 - 2920],
      [2, 8192 - 5840],
    ] as const) {
      d.fromGuest({ seq: 5001 + i * 1460, ack: ISS + 1, data: pattern(1460, i * 1460) });
      d.fromGuest({ seq: 5001 + (i + 1) * 1460, ack: ISS + 1, data: pattern(1460, (i + 1) * 1460) });
      d.expectToGuest({ flags: "A", ack: 5001 + (i + 2) * 1460, window });
    }
    expect(d.takeData().equals(pattern(5840))).toBe(true);
    d.consume(5840).expectToGuest({ flags: "A", ack: 5001 + 5840, window: 8192 });
    d.expectNothingSent();
  });

  it("answers a zero-window probe with the current window", () => {
    const d = established({}, { recvBufferSize: 1000 });
    d.fromGuest({ seq: 5001, ack: ISS + 1, data: pattern(1000) });
    d.advance(40).expectToGuest({ ack: 6001, window: 0 });
    d.fromGuest({ seq: 6000, ack: ISS + 1 });
    d.expectToGuest({ ack: 6001, window: 0 });
  });
});
