import { describe, expect, it } from "vitest";
import { newTcpEndpointCounters, tcpEndpointDefaults } from "../../../../src/stack/tcp/tcp-endpoint.js";
import { Dialogue, established, ISS, pattern } from "./dialogue.js";

const MSS = 1460;

describe("handshake", () => {
  it("waits for accept(), absorbs a retransmitted SYN, then answers with all options", () => {
    const d = Dialogue.passive();
    d.fromGuest({ flags: "S", seq: 5000, mss: 1460, wscale: 7, sackOk: true, tsVal: 77 });
    d.expectEvents("connect-request");
    d.expectNothingSent();
    expect(d.deadline).toBeUndefined();
    d.advance(500).fromGuest({ flags: "S", seq: 5000, mss: 1460, wscale: 7, sackOk: true, tsVal: 577 });
    d.expectNothingSent();
    expect(d.takeEvents()).toEqual([]);
    d.accept();
    d.expectToGuest({
      flags: "SA",
      seq: ISS,
      ack: 5001,
      mss: 1460,
      wscale: 7,
      sackOk: true,
      tsEcr: 77,
      tsVal: ISS + 500,
      window: 65535,
    });
    d.fromGuest({ flags: "A", seq: 5001, ack: ISS + 1, window: 502, tsVal: 600, tsEcr: ISS + 500 });
    d.expectEvents("established");
    expect(d.ep.state).toBe("established");
    expect(d.ep.negotiated).toEqual({
      sendMss: 1448,
      sendShift: 7,
      recvShift: 7,
      sack: true,
      timestamps: true,
    });
  });

  it("draws a fresh random ISN for every connection by default, past a batch of values", () => {
    const isns = new Set<number>();
    for (let i = 0; i < 1200; i++) {
      const d = Dialogue.passive({ random: tcpEndpointDefaults.random });
      d.fromGuest({ flags: "S", seq: 5000 });
      d.accept();
      isns.add(d.expectToGuest({ flags: "SA" }).seq);
    }
    // 1,200 uniform 32-bit values collide with probability about 2e-4
    expect(isns.size).toBeGreaterThanOrEqual(1199);
  });

  it("refuse() answers the SYN with RST+ACK and closes", () => {
    const d = Dialogue.passive();
    d.fromGuest({ flags: "S", seq: 5000, data: "" }).refuse();
    d.expectToGuest({ flags: "RA", seq: 0, ack: 5001 });
    d.expectEvents("connect-request", "closed");
    expect(d.ep.state).toBe("closed");
  });

  it("retransmits the SYN-ACK with backoff and gives up after synRetries", () => {
    const d = Dialogue.passive({ synRetries: 2 });
    d.fromGuest({ flags: "S", seq: 5000 }).accept();
    d.expectToGuest({ flags: "SA" });
    expect(d.deadline).toBe(1000);
    d.advance(999).expectNothingSent();
    d.advance(1);
    d.expectToGuest({ flags: "SA", seq: ISS, ack: 5001 });
    expect(d.deadline).toBe(3000);
    d.advance(2000);
    d.expectToGuest({ flags: "SA" });
    expect(d.deadline).toBe(7000);
    d.advance(4000);
    d.expectToGuest({ flags: "RA" });
    d.expectEvents("connect-request", "reset", "closed");
  });

  it("resends the SYN-ACK when the guest repeats its SYN after accept", () => {
    const d = Dialogue.passive();
    d.fromGuest({ flags: "S", seq: 5000 }).accept();
    d.expectToGuest({ flags: "SA" });
    d.advance(300).fromGuest({ flags: "S", seq: 5000 });
    d.expectToGuest({ flags: "SA", seq: ISS, ack: 5001 });
  });

  it("answers an ACK for the wrong sequence number in SYN-RECEIVED with RST", () => {
    const d = Dialogue.passive();
    d.fromGuest({ flags: "S", seq: 5000 }).accept();
    d.expectToGuest({ flags: "SA" });
    d.fromGuest({ flags: "A", seq: 5001, ack: 4242 });
    d.expectToGuest({ flags: "R", seq: 4242 });
    expect(d.ep.state).toBe("syn-received");
  });

  it("a guest RST while waiting for the host ends the flow", () => {
    const d = Dialogue.passive();
    d.fromGuest({ flags: "S", seq: 5000 }).fromGuest({ flags: "R", seq: 5001 });
    d.expectEvents("connect-request", "reset", "closed");
  });

  it("a non-SYN segment to a listening endpoint gets RST", () => {
    const d = Dialogue.passive();
    d.fromGuest({ flags: "A", seq: 1, ack: 777 });
    d.expectToGuest({ flags: "R", seq: 777 });
  });

  it("active open: SYN with our options, SYN-ACK, ACK, established", () => {
    const d = Dialogue.active({ windowScale: 7 });
    d.expectToGuest({ flags: "S", seq: ISS, mss: 1460, wscale: 7, sackOk: true, tsVal: ISS, tsEcr: 0 });
    d.advance(10).fromGuest({
      flags: "SA",
      seq: 9000,
      ack: ISS + 1,
      mss: 1400,
      wscale: 2,
      sackOk: true,
      tsVal: 5,
      tsEcr: ISS,
      window: 1000,
    });
    // the full 1 MiB buffer, scaled by 7
    d.expectToGuest({ flags: "A", seq: ISS + 1, ack: 9001, tsEcr: 5, window: 8192 });
    d.expectEvents("established");
    expect(d.ep.negotiated).toEqual({
      sendMss: 1388,
      sendShift: 2,
      recvShift: 7,
      sack: true,
      timestamps: true,
    });
    expect(d.ep.srtt).toBe(10);
    // the window in the SYN-ACK is not scaled; later ones are
    d.write(pattern(1500));
    d.expectToGuest({ flags: "A", seq: ISS + 1, data: pattern(1000) });
    d.expectNothingSent();
    d.fromGuest({ flags: "A", seq: 9001, ack: ISS + 1001, window: 1000, tsVal: 6, tsEcr: ISS + 10 });
    d.expectToGuest({ flags: "PA", seq: ISS + 1001, data: pattern(500, 1000) });
  });

  it("active open refused by the guest's RST", () => {
    const d = Dialogue.active();
    d.expectToGuest({ flags: "S" });
    d.fromGuest({ flags: "RA", seq: 0, ack: ISS + 1 });
    d.expectEvents("reset", "closed");
    expect(d.takeEvents()).toEqual([]);
  });

  it("active open retries the SYN, then gives up", () => {
    const d = Dialogue.active({ synRetries: 1 });
    d.expectToGuest({ flags: "S" });
    d.advance(1000).expectToGuest({ flags: "S", seq: ISS });
    d.advance(2000).expectNothingSent();
    d.expectEvents("reset", "closed");
  });

  it("simultaneous open goes through SYN-RECEIVED", () => {
    const d = Dialogue.active();
    d.expectToGuest({ flags: "S" });
    d.fromGuest({ flags: "S", seq: 9000, mss: 1460 });
    d.expectToGuest({ flags: "SA", seq: ISS, ack: 9001 });
    d.fromGuest({ flags: "A", seq: 9001, ack: ISS + 1 });
    d.expectEvents("established");
  });
});

describe("data from the guest", () => {
  it("delivers in-order bytes and acks every second full segment at once", () => {
    const d = established({ mss: MSS });
    d.fromGuest({ seq: 5001, ack: ISS + 1, data: pattern(MSS) });
    d.expectNothingSent();
    expect(d.deadline).toBe(40);
    d.fromGuest({ seq: 5001 + MSS, ack: ISS + 1, data: pattern(MSS, MSS) });
    d.expectToGuest({ flags: "A", seq: ISS + 1, ack: 5001 + 2 * MSS });
    expect(d.takeData().equals(pattern(2 * MSS))).toBe(true);
    expect(d.deadline).toBeUndefined();
  });

  it("acks a lone segment after exactly 40 ms", () => {
    const d = established();
    d.fromGuest({ seq: 5001, ack: ISS + 1, data: "hello" });
    expect(d.takeData().toString()).toBe("hello");
    d.advance(39).expectNothingSent();
    d.advance(1).expectToGuest({ flags: "A", ack: 5006 });
  });

  it("acks out-of-order data at once with a SACK block, then delivers when the hole fills", () => {
    const counters = newTcpEndpointCounters();
    const d = established({ sackOk: true, tsVal: 1 }, { counters });
    d.fromGuest({ seq: 5101, ack: ISS + 1, data: pattern(100, 100), tsVal: 2 });
    d.expectToGuest({ flags: "A", ack: 5001, sack: [{ left: 5101, right: 5201 }] });
    d.fromGuest({ seq: 5301, ack: ISS + 1, data: pattern(100, 300), tsVal: 3 });
    d.expectToGuest({
      ack: 5001,
      sack: [
        { left: 5301, right: 5401 },
        { left: 5101, right: 5201 },
      ],
    });
    expect(d.takeData().length).toBe(0);
    d.fromGuest({ seq: 5001, ack: ISS + 1, data: pattern(100), tsVal: 4 });
    d.expectToGuest({ flags: "A", ack: 5201, sack: [{ left: 5301, right: 5401 }] });
    d.fromGuest({ seq: 5201, ack: ISS + 1, data: pattern(100, 200), tsVal: 5 });
    const ack = d.expectToGuest({ flags: "A", ack: 5401 });
    expect(ack.sack).toBeUndefined();
    expect(d.takeData().equals(pattern(400))).toBe(true);
    expect(counters).toMatchObject({ outOfOrderSegments: 2, duplicateSegments: 0 });
  });

  it("acks a duplicate segment at once and does not deliver it twice", () => {
    const counters = newTcpEndpointCounters();
    const d = established({}, { counters });
    d.fromGuest({ seq: 5001, ack: ISS + 1, data: "abc" });
    d.advance(40).expectToGuest({ ack: 5004 });
    d.fromGuest({ seq: 5001, ack: ISS + 1, data: "abc" });
    d.expectToGuest({ flags: "A", ack: 5004 });
    expect(d.takeData().toString()).toBe("abc");
    expect(counters).toMatchObject({ duplicateSegments: 1, outOfOrderSegments: 0 });
  });

  it("holds a FIN that arrives before the data it follows", () => {
    const d = established();
    d.fromGuest({ flags: "FA", seq: 5004, ack: ISS + 1, data: "def" });
    d.expectToGuest({ flags: "A", ack: 5001 });
    expect(d.takeEvents()).toEqual([]);
    d.fromGuest({ seq: 5001, ack: ISS + 1, data: "abc" });
    d.expectToGuest({ flags: "A", ack: 5008 });
    expect(d.takeData().toString()).toBe("abcdef");
    d.expectEvents("eof");
    expect(d.ep.state).toBe("close-wait");
  });

  it("ignores data on a SYN (no Fast Open): the guest sends it again", () => {
    const d = Dialogue.passive();
    d.fromGuest({ flags: "S", seq: 5000, data: "early" }).accept();
    d.expectToGuest({ flags: "SA", ack: 5001 });
    expect(d.takeData().length).toBe(0);
  });
});

describe("data to the guest", () => {
  it("segments to the guest's MSS minus the timestamp option, PSH on the last", () => {
    const d = established({ mss: 1460, tsVal: 1 });
    expect(d.write(pattern(5000))).toBe(5000);
    for (let i = 0; i < 3; i++)
      d.expectToGuest({ flags: "A", seq: ISS + 1 + i * 1448, data: pattern(1448, i * 1448) });
    d.expectToGuest({ flags: "PA", seq: ISS + 1 + 3 * 1448, data: pattern(5000 - 3 * 1448, 3 * 1448) });
    d.expectNothingSent();
  });

  it("sends within the guest's window and waits rather than send a silly segment", () => {
    const d = established({ mss: 1460, window: 3000 });
    d.write(pattern(4000));
    d.expectToGuest({ seq: ISS + 1, data: pattern(1460) });
    d.expectToGuest({ seq: ISS + 1461, data: pattern(1460, 1460) });
    d.expectNothingSent(); // 80 usable bytes would be a silly segment
    d.fromGuest({ seq: 5001, ack: ISS + 1 + 2920, window: 3000 });
    d.expectToGuest({ seq: ISS + 2921, data: pattern(1080, 2920), flags: "PA" });
  });

  it("holds bytes written before the handshake completes", () => {
    const d = Dialogue.passive();
    d.fromGuest({ flags: "S", seq: 5000 }).accept();
    d.expectToGuest({ flags: "SA" });
    expect(d.write("banner")).toBe(6);
    d.expectNothingSent();
    d.fromGuest({ seq: 5001, ack: ISS + 1 });
    d.expectToGuest({ flags: "PA", seq: ISS + 1, data: "banner" });
  });

  it("takes only what fits the send buffer and says when it is writable again", () => {
    const d = established({ mss: 1000, window: 65535 }, { sendBufferSize: 4096 });
    expect(d.write(pattern(10_000))).toBe(4096);
    expect(d.ep.writeSpace).toBe(0);
    expect(d.write(pattern(10))).toBe(0);
    d.sent = [];
    d.fromGuest({ seq: 5001, ack: ISS + 1 + 1000 });
    expect(d.takeEvents()).toEqual([]); // 1000 free is under half the buffer
    d.fromGuest({ seq: 5001, ack: ISS + 1 + 3000 });
    d.expectEvents("writable");
    expect(d.ep.writeSpace).toBe(3000);
  });

  it("probes a zero window with backoff until it opens", () => {
    const counters = newTcpEndpointCounters();
    const d = established({ mss: 1000 }, { counters });
    d.write(pattern(1000));
    d.expectToGuest({ data: pattern(1000) });
    d.fromGuest({ seq: 5001, ack: ISS + 1001, window: 0 });
    d.write(pattern(500, 1000));
    d.expectNothingSent();
    // rto is 200 (the minimum) after the handshake sample at rtt 0
    expect(d.ep.rto).toBe(200);
    expect(d.deadline).toBe(200);
    d.advance(200);
    d.expectToGuest({ flags: "A", seq: ISS + 1000, data: "" });
    expect(d.deadline).toBe(200 + 400);
    d.fromGuest({ seq: 5001, ack: ISS + 1001, window: 0 });
    d.advance(400).expectToGuest({ flags: "A", seq: ISS + 1000 });
    expect(d.deadline).toBe(600 + 800);
    d.fromGuest({ seq: 5001, ack: ISS + 1001, window: 4000 });
    d.expectToGuest({ flags: "PA", seq: ISS + 1001, data: pattern(500, 1000) });
    expect(counters).toMatchObject({ windowProbes: 2, timeouts: 0, retransmittedSegments: 0 });
  });
});

describe("segmentation offload (TSO towards an offloading TAP)", () => {
  it("sends whole multiples of the MSS in one segment while the link splits them, one MSS when it stops", () => {
    const offload = { maxBytes: 0 };
    const d = established(
      { mss: 1000, window: 65535, wscale: 4 },
      { segmentOffload: offload, initialWindowSegments: 40 },
    );
    offload.maxBytes = 10_500;
    expect(d.write(pattern(25_000))).toBe(25_000);
    const sizes = d.sent.map((o) => [o.seg.payload.length, o.gsoSize]);
    d.sent = [];
    expect(sizes).toEqual([
      [10_000, 1000],
      [10_000, 1000],
      [5_000, 1000],
    ]);
    offload.maxBytes = 0; // a plain port joined the hub
    d.fromGuest({ seq: 5001, ack: ISS + 1 + 25_000, window: 4096 });
    d.write(pattern(2_500, 25_000));
    expect(d.sent.map((o) => [o.seg.payload.length, o.gsoSize])).toEqual([
      [1000, undefined],
      [1000, undefined],
      [500, undefined],
    ]);
  });
});

describe("closing", () => {
  it("guest FIN: eof, the ACK rides on what we send next, then our FIN after the data", () => {
    const d = established();
    d.fromGuest({ flags: "FA", seq: 5001, ack: ISS + 1, data: "bye" });
    d.expectNothingSent();
    expect(d.takeData().toString()).toBe("bye");
    d.expectEvents("eof");
    expect(d.ep.state).toBe("close-wait");
    d.write("more");
    d.expectToGuest({ flags: "PA", seq: ISS + 1, ack: 5005, data: "more" });
    d.shutdownWrite();
    d.expectToGuest({ flags: "FA", seq: ISS + 5 });
    expect(d.ep.state).toBe("last-ack");
    d.fromGuest({ seq: 5005, ack: ISS + 6 });
    d.expectEvents("closed");
    d.expectNothingSent();
  });

  it("guest FIN: the host's FIN soon after carries the ACK (one segment, as Linux sends)", () => {
    const d = established();
    d.fromGuest({ flags: "FA", seq: 5001, ack: ISS + 1 });
    d.expectEvents("eof");
    d.expectNothingSent();
    d.advance(1).shutdownWrite();
    d.expectToGuest({ flags: "FA", seq: ISS + 1, ack: 5002 });
    d.expectNothingSent();
    d.fromGuest({ seq: 5002, ack: ISS + 2 });
    d.expectEvents("closed");
  });

  it("guest FIN: a host that stays open still gets the FIN acked after the delayed-ACK time", () => {
    const d = established();
    d.fromGuest({ flags: "FA", seq: 5001, ack: ISS + 1 });
    d.expectEvents("eof");
    d.advance(39);
    d.expectNothingSent();
    d.advance(1);
    d.expectToGuest({ flags: "A", ack: 5002 });
    expect(d.ep.state).toBe("close-wait");
  });

  it("host EOF: FIN rides on the last data; the guest may keep sending; TIME_WAIT then closed", () => {
    const d = established({}, { timeWaitMs: 30_000 });
    d.write("tail");
    d.shutdownWrite();
    d.expectToGuest({ flags: "PA", data: "tail" });
    d.expectToGuest({ flags: "FA", seq: ISS + 5 });
    d.fromGuest({ seq: 5001, ack: ISS + 6 });
    expect(d.ep.state).toBe("fin-wait-2");
    d.fromGuest({ seq: 5001, ack: ISS + 6, data: "still here" });
    expect(d.takeData().toString()).toBe("still here");
    d.fromGuest({ flags: "FA", seq: 5011, ack: ISS + 6 });
    d.expectToGuest({ flags: "A", ack: 5012 });
    d.expectEvents("eof", "time-wait");
    expect(d.ep.state).toBe("time-wait");
    // a retransmitted FIN is acked again and restarts the wait
    d.advance(10_000).fromGuest({ flags: "FA", seq: 5011, ack: ISS + 6 });
    d.expectToGuest({ flags: "A", ack: 5012 });
    d.advance(29_999);
    expect(d.takeEvents()).toEqual([]);
    d.advance(1);
    d.expectEvents("closed");
  });

  it("FIN in one segment with data when the buffer drains", () => {
    const d = established();
    d.shutdownWrite();
    d.expectToGuest({ flags: "FA", seq: ISS + 1, ack: 5001 });
    expect(d.write("late")).toBe(0);
    // the FIN is retransmitted like data
    d.advance(200).expectToGuest({ flags: "FA", seq: ISS + 1 });
  });

  it("simultaneous close goes through CLOSING to TIME_WAIT", () => {
    const d = established({}, { timeWaitMs: 1000 });
    d.shutdownWrite();
    d.expectToGuest({ flags: "FA", seq: ISS + 1 });
    d.fromGuest({ flags: "FA", seq: 5001, ack: ISS + 1 });
    d.expectToGuest({ flags: "A", seq: ISS + 2, ack: 5002 });
    expect(d.ep.state).toBe("closing");
    d.fromGuest({ seq: 5002, ack: ISS + 2 });
    expect(d.ep.state).toBe("time-wait");
    d.advance(1000);
    d.expectEvents("eof", "time-wait", "closed");
  });

  it("FIN_WAIT_2 ends after finWait2TimeoutMs of guest silence", () => {
    const d = established({}, { finWait2TimeoutMs: 5000 });
    d.shutdownWrite();
    d.expectToGuest({ flags: "FA" });
    d.fromGuest({ seq: 5001, ack: ISS + 2 });
    d.advance(3000).fromGuest({ seq: 5001, ack: ISS + 2, data: "x" });
    d.advance(4999);
    d.expectToGuest({ flags: "A" }); // the delayed ACK for "x"
    d.expectNothingSent();
    d.advance(1);
    d.expectToGuest({ flags: "RA" });
    expect(d.takeEvents().map((e) => e.type)).toEqual(["data", "reset", "closed"]);
  });

  it("honours a guest RST only at exactly RCV.NXT (RFC 5961)", () => {
    const d = established();
    d.fromGuest({ flags: "R", seq: 5100 });
    d.expectToGuest({ flags: "A", seq: ISS + 1, ack: 5001 }); // challenge ACK
    d.fromGuest({ flags: "R", seq: 5001 + 10_000_000 });
    d.expectNothingSent();
    expect(d.ep.state).toBe("established");
    d.fromGuest({ flags: "R", seq: 5001 });
    expect(d.expectEvents("reset", "closed")[0]).toEqual({ type: "reset", reason: "guest" });
    d.expectNothingSent();
  });

  it("answers a SYN on an open connection with a challenge ACK", () => {
    const d = established();
    d.fromGuest({ flags: "S", seq: 123 });
    d.expectToGuest({ flags: "A", ack: 5001 });
    expect(d.ep.state).toBe("established");
  });

  it("answers an ACK for unsent data with an ACK and ignores it", () => {
    const d = established();
    d.fromGuest({ seq: 5001, ack: ISS + 100, data: "x" });
    d.expectToGuest({ flags: "A", ack: 5001 });
    expect(d.takeData().length).toBe(0);
  });

  it("abort() sends RST and closes", () => {
    const d = established();
    d.write("abc");
    d.sent = [];
    d.abort();
    d.expectToGuest({ flags: "RA", seq: ISS + 4, ack: 5001 });
    d.expectEvents("closed");
    expect(d.deadline).toBeUndefined();
    expect(d.write("x")).toBe(0);
  });

  it("hands over what TIME_WAIT needs when it enters it", () => {
    const d = established({ tsVal: 700, wscale: 2 }, { recvBufferSize: 64 * 1024 });
    d.shutdownWrite();
    d.expectToGuest({ flags: "FA", seq: ISS + 1 });
    d.fromGuest({ flags: "FA", seq: 5001, ack: ISS + 2, tsVal: 710 });
    d.expectEvents("eof", "time-wait");
    // timestamps: tsVal = tsOffset (ISS in dialogues) + now; window in the scaled unit (shift 7)
    expect(d.ep.timeWaitRecord()).toEqual({
      sndNxt: ISS + 2,
      rcvNxt: 5002,
      window: 512,
      timestamps: true,
      tsOffset: ISS,
      tsRecent: 710,
    });
  });
});
