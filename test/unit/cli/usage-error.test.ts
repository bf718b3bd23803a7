import { describe, expect, it } from "vitest";
import { UsageError } from "../../../src/cli/usage-error.js";

describe("UsageError", () => {
  it("is an Error named UsageError", () => {
    const e = new UsageError("-netdev user: x");
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("UsageError");
    expect(e.message).toBe("-netdev user: x");
  });

  it("escapes control characters so the message stays one line", () => {
    expect(new UsageError("a\nb\r\tc\x7f\x00").message).toBe("a\\x0ab\\x0d\\x09c\\x7f\\x00");
  });
});
