import { describe, expect, it } from "vitest";
import { createLogger, InternalErrors } from "../../src/log.js";

function capture() {
  const out: string[] = [];
  return { out, log: createLogger("info", { write: (s: string) => out.push(s) }) };
}

describe("InternalErrors", () => {
  it("counts every report and logs each place and message once, with the stack", () => {
    const { out, log } = capture();
    const e = new InternalErrors(log);
    const bug = new TypeError("cannot read properties of undefined");
    for (let i = 0; i < 5; i++) e.report("a DNS reply to a guest", bug);
    e.report("a TFTP request", bug);
    e.report("a TFTP request", "a string, not an Error");
    expect(e.total).toBe(7);
    expect(out).toHaveLength(3);
    expect(out[0]).toMatch(
      /^usernet error: internal error in a DNS reply to a guest: cannot read properties of undefined count=1 stack=TypeError: cannot read properties of undefined\n\s+at /,
    );
    expect(out[2]).toMatch(
      /^usernet error: internal error in a TFTP request: a string, not an Error count=7 stack=\(no stack\)\n$/,
    );
  });

  it("catches what a promise nobody awaits rejects with", async () => {
    const { out, log } = capture();
    const e = new InternalErrors(log);
    await Promise.reject(new Error("late")).catch(e.handler("a timer"));
    expect(e.total).toBe(1);
    expect(out[0]).toMatch(/internal error in a timer: late/);
  });

  it("stops logging, never counting, after many different messages", () => {
    const { out, log } = capture();
    const e = new InternalErrors(log);
    for (let i = 0; i < 1000; i++) e.report("a loop", new Error(`message ${i}`));
    expect(e.total).toBe(1000);
    expect(out).toHaveLength(256);
  });
});
