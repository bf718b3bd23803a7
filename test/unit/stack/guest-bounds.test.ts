import { describe, expect, it } from "vitest";
import { GuestCounts } from "../../../src/stack/guest-bounds.js";

describe("GuestCounts", () => {
  it("says which bound one more would pass, and gives places back on release", () => {
    const c = new GuestCounts({ max: 3, perGuest: 2 });
    c.take(1);
    c.take(1);
    expect(c.over(1)).toBe("per-guest");
    expect(c.over(2)).toBeUndefined();
    c.take(2);
    expect(c.over(3)).toBe("total");
    c.release(1);
    expect(c.of(1)).toBe(1);
    expect(c.over(3)).toBeUndefined();
    // a release of what was never taken changes nothing
    c.release(9);
    expect(c.total).toBe(2);
  });
});
