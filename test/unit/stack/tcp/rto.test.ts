import { fc, test } from "@fast-check/vitest";
import { describe, expect, it } from "vitest";
import { RtoEstimator, rtoDefaults } from "../../../../src/stack/tcp/rto.js";

describe("RtoEstimator (RFC 6298)", () => {
  it("starts at 1 s", () => {
    expect(new RtoEstimator().rto).toBe(1000);
  });

  it("follows the RFC formulas, RTTVAR before SRTT", () => {
    const e = new RtoEstimator();
    e.sample(400);
    expect([e.srtt, e.rttvar, e.rto]).toEqual([400, 200, 1200]);
    e.sample(200);
    // RTTVAR = 3/4*200 + 1/4*|400-200| = 200; SRTT = 7/8*400 + 1/8*200 = 375
    expect([e.srtt, e.rttvar, e.rto]).toEqual([375, 200, 1175]);
  });

  it("uses G when 4*RTTVAR is smaller, then the 200 ms floor", () => {
    const e = new RtoEstimator({ ...rtoDefaults, minRto: 0, granularity: 10 });
    e.sample(100);
    for (let i = 0; i < 100; i++) e.sample(100);
    expect(e.rto).toBeCloseTo(110, 0);
    const f = new RtoEstimator();
    f.sample(1);
    expect(f.rto).toBe(200);
  });

  it("doubles on backoff up to the cap and keeps it until the next sample", () => {
    const e = new RtoEstimator();
    for (let i = 0; i < 10; i++) e.backoff();
    expect(e.rto).toBe(60_000);
    e.sample(100);
    expect(e.rto).toBe(300);
  });

  test.prop([fc.array(fc.integer({ min: 0, max: 200_000 }), { minLength: 1, maxLength: 50 })])(
    "RTO always lies within [min, max]",
    (samples) => {
      const e = new RtoEstimator();
      for (const s of samples) {
        e.sample(s);
        expect(e.rto).toBeGreaterThanOrEqual(200);
        expect(e.rto).toBeLessThanOrEqual(60_000);
      }
    },
  );
});
