import { describe, expect, it } from "vitest";
import { Congestion, type CongestionOptions } from "../../../../src/stack/tcp/congestion.js";
import { rtoDefaults } from "../../../../src/stack/tcp/rto.js";
import { newTcpEndpointCounters } from "../../../../src/stack/tcp/tcp-endpoint.js";
import { Dialogue, established, ISS, pattern } from "./dialogue.js";

const options: CongestionOptions = {
  ...rtoDefaults,
  maxRetransmits: 15,
  userTimeoutMs: 120_000,
  synRetries: 5,
  initialWindowSegments: 10,
};
const MSS = 1000;

/** A congestion state after the handshake at ISN 0, slow start from 10 MSS. */
function started(o: Partial<CongestionOptions> = {}): Congestion {
  const c = new Congestion({ ...options, ...o });
  c.start(0);
  c.establish(MSS);
  return c;
}

describe("Congestion: the window (RFC 5681, RFC 6582)", () => {
  it("starts at the initial window and counts every byte acked in slow start", () => {
    const c = started();
    expect(c.cwnd).toBe(10 * MSS);
    expect(c.newAck(64_000, 64_000, 64_001, MSS)).toBe(false);
    expect(c.cwnd).toBe(74_000);
  });

  it("adds about one MSS per window in congestion avoidance", () => {
    const c = started();
    c.ssthresh = 10 * MSS;
    c.newAck(MSS, 10 * MSS, MSS + 1, MSS);
    expect(c.cwnd).toBe(10 * MSS + Math.floor((MSS * MSS) / (10 * MSS)));
  });

  it("fast-retransmits on the third duplicate only, inflates after it, deflates on a partial ACK", () => {
    const c = started();
    // 5000 bytes in flight from 1 to 5001
    expect(c.dupAck(1, 5001, MSS)).toBe(false);
    expect(c.dupAck(1, 5001, MSS)).toBe(false);
    expect(c.dupAck(1, 5001, MSS)).toBe(true);
    expect(c.ssthresh).toBe(2500);
    expect(c.cwnd).toBe(2500 + 3 * MSS);
    expect(c.dupAck(1, 5001, MSS)).toBe(false);
    expect(c.cwnd).toBe(2500 + 4 * MSS);
    // a partial ACK asks for the next hole and deflates by what it acked, less one MSS
    expect(c.newAck(1000, 5000, 1001, MSS)).toBe(true);
    expect(c.cwnd).toBe(2500 + 4 * MSS - 1000 + MSS);
    // the full ACK ends recovery, at most ssthresh
    expect(c.newAck(4000, 4000, 5001, MSS)).toBe(false);
    expect(c.cwnd).toBe(2000);
  });

  it("takes no third duplicate for data sent before the last recovery as a new loss (RFC 6582 §4.1)", () => {
    const c = started();
    c.dupAck(1, 5001, MSS);
    c.dupAck(1, 5001, MSS);
    c.dupAck(1, 5001, MSS); // recover = 5001
    c.newAck(5000, 5000, 5001, MSS);
    const cwnd = c.cwnd;
    // duplicates at 3001 (< recover) are of the old flight
    for (let i = 0; i < 4; i++) expect(c.dupAck(3001, 9001, MSS)).toBe(false);
    expect(c.cwnd).toBe(cwnd);
    // past recover a new loss is recovered again
    c.newAck(3000, 6000, 6001, MSS);
    for (let i = 0; i < 2; i++) c.dupAck(6001, 9001, MSS);
    expect(c.dupAck(6001, 9001, MSS)).toBe(true);
  });
});

describe("Congestion: timeouts", () => {
  it("collapses the window to one MSS, halves the flight only on the first timeout, backs off RTO", () => {
    const c = started();
    expect(c.timeout(0, false, 8000, 8001, MSS)).toBe(false);
    expect([c.cwnd, c.ssthresh, c.rto]).toEqual([MSS, 4000, 2000]);
    expect(c.timeout(2000, false, 8000, 8001, MSS)).toBe(false);
    expect([c.cwnd, c.ssthresh, c.rto]).toEqual([MSS, 4000, 4000]);
    // progress clears the count: the next loss halves again
    c.newAck(8000, 8000, 8001, MSS);
    c.timeout(6000, false, 2000, 10001, MSS);
    expect(c.ssthresh).toBe(2 * MSS);
  });

  it("gives up after maxRetransmits timeouts or userTimeoutMs since the first", () => {
    const c = started({ maxRetransmits: 2 });
    expect(c.timeout(0, false, 1, 2, MSS)).toBe(false);
    expect(c.timeout(1, false, 1, 2, MSS)).toBe(false);
    expect(c.timeout(2, false, 1, 2, MSS)).toBe(true);
    const u = started({ userTimeoutMs: 1000 });
    expect(u.timeout(500, false, 1, 2, MSS)).toBe(false);
    expect(u.timeout(1499, false, 1, 2, MSS)).toBe(false);
    expect(u.timeout(1500, false, 1, 2, MSS)).toBe(true);
  });

  it("retries a SYN synRetries times, backing off, without touching the window", () => {
    const c = new Congestion({ ...options, synRetries: 2 });
    expect(c.timeout(0, true, 1, 1, MSS)).toBe(false);
    expect(c.timeout(0, true, 1, 1, MSS)).toBe(false);
    expect(c.rto).toBe(4000);
    expect(c.timeout(0, true, 1, 1, MSS)).toBe(true);
    expect(c.cwnd).toBe(0);
  });

  it("arms the timer only when stopped, restarts it on demand, and stops it on timeout", () => {
    const c = started();
    c.arm(100);
    c.arm(500);
    expect(c.rtxAt).toBe(1100);
    c.restart(500);
    expect(c.rtxAt).toBe(1500);
    c.timeout(1500, false, 1, 2, MSS);
    expect(c.rtxAt).toBeUndefined();
    c.arm(1500);
    expect(c.rtxAt).toBe(1500 + 2000);
    c.stop();
    expect(c.rtxAt).toBeUndefined();
  });

  it("gives the persist timer the backed-off RTO, within maxRto", () => {
    const c = started();
    expect([c.backedOff(0), c.backedOff(3), c.backedOff(10)]).toEqual([1000, 8000, 60_000]);
  });
});

describe("Congestion: RTT samples", () => {
  it("times one segment at a time without timestamps; a retransmission cancels it (Karn)", () => {
    const c = started();
    c.sent(101, false, true, 0, 0);
    c.sent(201, false, true, 0, 10); // not timed: one at a time
    c.sampleAck(101, undefined, 0, 80);
    expect(c.rtt.srtt).toBe(80);
    c.sent(301, false, true, 0, 100);
    c.sent(301, true, true, 0, 150); // retransmitted: no sample from its ACK
    c.sampleAck(301, undefined, 0, 400);
    expect(c.rtt.srtt).toBe(80);
    c.sent(401, false, true, 0, 400);
    c.untime();
    c.sampleAck(401, undefined, 0, 900);
    expect(c.rtt.srtt).toBe(80);
  });

  it("samples echoed timestamps, except ones from before the last retransmission or implausible ones", () => {
    const c = started();
    c.sampleAck(1, 1000, 1030, 0);
    expect(c.rtt.srtt).toBe(30);
    c.sent(2, true, false, 2000, 0); // retransmitted at TSval 2000
    c.sampleAck(2, 1990, 2100, 0);
    expect(c.rtt.srtt).toBe(30);
    c.sampleAck(2, 2000, 2030, 0);
    expect(c.rtt.srtt).toBe(30);
    c.sampleAck(2, 2000, 2000 + 2 * options.maxRto + 1, 0);
    expect(c.rtt.srtt).toBe(30);
    // a zero echo is no echo: the timed segment (none here) would count instead
    c.sampleAck(2, 0, 5000, 0);
    expect(c.rtt.srtt).toBe(30);
  });

  it("clears the handshake's retries and timer when the SYN is acked", () => {
    const c = new Congestion({ ...options, synRetries: 1 });
    c.restart(0);
    c.timeout(1000, true, 1, 1, MSS);
    c.synAcked();
    expect(c.rtxAt).toBeUndefined();
    expect(c.timeout(5000, false, 1, 2, MSS)).toBe(false);
  });
});

describe("through the endpoint: retransmission (RFC 6298) and congestion control", () => {
  it("starts at 1 s without a sample and doubles on each timeout", () => {
    const d = Dialogue.passive();
    d.fromGuest({ flags: "S", seq: 5000 }).accept();
    d.expectToGuest({ flags: "SA" });
    d.advance(1000).expectToGuest({ flags: "SA" }); // Karn: no sample from this handshake
    d.fromGuest({ flags: "A", seq: 5001, ack: ISS + 1 });
    expect(d.ep.srtt).toBeUndefined();
    expect(d.ep.rto).toBe(2000);
    d.write("x".repeat(100));
    d.expectToGuest({ seq: ISS + 1 });
    expect(d.deadline).toBe(1000 + 2000);
    d.advance(2000).expectToGuest({ seq: ISS + 1, data: "x".repeat(100) });
    expect(d.deadline).toBe(3000 + 4000);
    d.advance(4000).expectToGuest({ seq: ISS + 1 });
    expect(d.deadline).toBe(7000 + 8000);
  });

  it("samples RTT per the RFC formulas and arms the timer with the result", () => {
    const d = Dialogue.passive();
    d.fromGuest({ flags: "S", seq: 5000 }).accept();
    d.expectToGuest({ flags: "SA" });
    d.advance(100).fromGuest({ flags: "A", seq: 5001, ack: ISS + 1 });
    // first sample R = 100: SRTT = 100, RTTVAR = 50, RTO = 100 + 4*50 = 300
    expect([d.ep.srtt, d.ep.rttvar, d.ep.rto]).toEqual([100, 50, 300]);
    d.write("a");
    d.expectToGuest({ seq: ISS + 1 });
    d.advance(50).fromGuest({ seq: 5001, ack: ISS + 2 });
    // R' = 50: RTTVAR = 3/4*50 + 1/4*|100-50| = 50, SRTT = 7/8*100 + 1/8*50 = 93.75
    expect([d.ep.srtt, d.ep.rttvar, d.ep.rto]).toEqual([93.75, 50, 293.75]);
    d.write("b");
    d.expectToGuest({ seq: ISS + 2 });
    expect(d.deadline).toBe(150 + 293.75);
    d.advance(293.75).expectToGuest({ seq: ISS + 2, data: "b" });
    // Karn: the ACK of a retransmitted segment gives no sample
    d.advance(10).fromGuest({ seq: 5001, ack: ISS + 3 });
    expect(d.ep.srtt).toBe(93.75);
    expect(d.ep.rto).toBe(587.5); // still backed off
  });

  it("clamps RTO to 200 ms below and 60 s above", () => {
    const d = established({}, {}, 1);
    expect(d.ep.rto).toBe(200);
    d.write("x");
    d.expectToGuest({ data: "x" });
    for (let i = 0; i < 9; i++) d.advance(d.ep.rto).expectToGuest({ data: "x" });
    expect(d.ep.rto).toBe(60_000);
  });

  it("measures RTT from echoed timestamps, retransmissions included", () => {
    const d = established({ tsVal: 10 }, {}, 20);
    expect(d.ep.srtt).toBe(20);
    d.write("a");
    const first = d.expectToGuest({ data: "a", tsEcr: 30 });
    d.advance(d.ep.rto);
    const again = d.expectToGuest({ data: "a" });
    d.advance(5).fromGuest({ seq: 5001, ack: ISS + 2, tsVal: 40, tsEcr: again.tsVal });
    // R = 5: the echo tells which transmission was acked
    expect(d.ep.srtt).toBeCloseTo(0.875 * 20 + 0.125 * 5);
    expect(d.ep.rto).toBe(200);
    // an echo from before the last retransmission may include the timeout: no sample
    d.write("b");
    const b1 = d.expectToGuest({ data: "b" });
    d.advance(200).expectToGuest({ data: "b" });
    d.advance(5).fromGuest({ seq: 5001, ack: ISS + 3, tsVal: 41, tsEcr: b1.tsVal });
    expect(d.ep.srtt).toBeCloseTo(0.875 * 20 + 0.125 * 5);
    expect(first.tsVal).toBe(ISS + 20);
  });

  it("fast retransmit on the third duplicate ACK (RFC 5681), NewReno recovery (RFC 6582)", () => {
    const counters = newTcpEndpointCounters();
    const d = established({ mss: 1000 }, { counters });
    d.write(pattern(5000));
    for (let i = 0; i < 5; i++) d.expectToGuest({ seq: ISS + 1 + i * 1000 });
    d.fromGuest({ seq: 5001, ack: ISS + 1001 });
    expect(d.ep.congestionWindow).toBe(11_000);
    d.fromGuest({ seq: 5001, ack: ISS + 1001 });
    d.fromGuest({ seq: 5001, ack: ISS + 1001 });
    d.expectNothingSent();
    d.fromGuest({ seq: 5001, ack: ISS + 1001 });
    d.expectToGuest({ seq: ISS + 1001, data: pattern(1000, 1000) });
    // flight 4000: ssthresh = 2000, cwnd = ssthresh + 3 MSS
    expect(d.ep.slowStartThreshold).toBe(2000);
    expect(d.ep.congestionWindow).toBe(5000);
    d.fromGuest({ seq: 5001, ack: ISS + 1001 });
    expect(d.ep.congestionWindow).toBe(6000);
    // partial ACK: retransmit the next hole at once
    d.fromGuest({ seq: 5001, ack: ISS + 2001 });
    d.expectToGuest({ seq: ISS + 2001, data: pattern(1000, 2000) });
    // full ACK ends recovery with cwnd at most ssthresh
    d.fromGuest({ seq: 5001, ack: ISS + 5001 });
    expect(d.ep.congestionWindow).toBe(2000);
    d.expectNothingSent();
    expect(counters).toMatchObject({ fastRetransmits: 1, retransmittedSegments: 2, timeouts: 0 });
  });

  it("restarts slow start from one segment after a timeout", () => {
    const counters = newTcpEndpointCounters();
    const d = established({ mss: 1000 }, { counters });
    d.write(pattern(4000));
    d.sent = [];
    d.advance(200).expectToGuest({ seq: ISS + 1, data: pattern(1000) });
    d.expectNothingSent();
    expect(d.ep.congestionWindow).toBe(1000);
    expect(d.ep.slowStartThreshold).toBe(2000);
    d.fromGuest({ seq: 5001, ack: ISS + 1001 });
    d.expectToGuest({ seq: ISS + 1001 });
    d.expectToGuest({ seq: ISS + 2001 });
    d.expectNothingSent();
    // go-back-N: the segments resent after the ACK count as retransmissions too
    expect(counters).toMatchObject({ timeouts: 1, retransmittedSegments: 3, fastRetransmits: 0 });
  });

  it("gives up after maxRetransmits timeouts: RST, reset, closed", () => {
    const d = established({}, { maxRetransmits: 3 });
    d.write("x");
    d.expectToGuest({ data: "x" });
    d.advance(200 + 400 + 800).takeEvents();
    expect(d.sent.length).toBe(3);
    d.sent = [];
    d.advance(1600);
    d.expectToGuest({ flags: "RA", seq: ISS + 2 });
    expect(d.expectEvents("reset", "closed")[0]).toEqual({ type: "reset", reason: "timeout" });
    expect(d.deadline).toBeUndefined();
  });

  it("gives up after userTimeoutMs even below maxRetransmits", () => {
    const d = established({}, { userTimeoutMs: 1000 });
    d.write("x");
    d.expectToGuest({ data: "x" });
    d.advance(200 + 400 + 800);
    expect(d.events.map((e) => e.type)).toEqual(["reset", "closed"]);
  });
});
