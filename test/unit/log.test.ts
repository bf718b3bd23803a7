import { describe, expect, it } from "vitest";
import { createLogger, HostFaults, InternalErrors } from "../../src/log.js";

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

describe("HostFaults", () => {
  it("counts by place and code, logging each pair once, with its first fields", () => {
    const { out, log } = capture();
    const f = new HostFaults(log);
    for (let i = 0; i < 100; i++)
      f.report("tcp-connect", "EMFILE", "a guest's connection was refused", { i });
    f.report("udp-send", "ENOBUFS", "a datagram was dropped");
    expect(f.total).toBe(101);
    expect(f.list()).toEqual([
      { where: "tcp-connect", code: "EMFILE", count: 100 },
      { where: "udp-send", code: "ENOBUFS", count: 1 },
    ]);
    expect(out).toHaveLength(2);
    expect(out[0]).toBe(
      "usernet warn: host fault in tcp-connect (EMFILE): a guest's connection was refused; further ones are counted, not logged i=0\n",
    );
  });

  it("keeps counting in one shared row past 256 pairs", () => {
    const { out, log } = capture();
    const f = new HostFaults(log);
    for (let i = 0; i < 300; i++) f.report("a loop", `E${i}`, "x");
    expect(f.total).toBe(300);
    expect(f.list()).toHaveLength(257);
    expect(f.list().at(-1)).toEqual({ where: "other", code: "other", count: 44 });
    expect(out).toHaveLength(257);
  });
});

describe("createLogger formats", () => {
  const at = () => new Date("2026-12-08T01:02:03.004Z");
  it("text: one readable line, bindings then fields as key=value", () => {
    const out: string[] = [];
    const log = createLogger("info", { write: (s: string) => out.push(s) }, { mode: "x" });
    log.child({ component: "api" }).warn("slow", { ms: 12, where: "dns" });
    log.debug("hidden");
    expect(out).toEqual(["usernet warn: slow mode=x component=api ms=12 where=dns\n"]);
  });
  it("json: one object per line with time, level, msg, bindings and fields", () => {
    const out: string[] = [];
    const log = createLogger("info", { write: (s: string) => out.push(s) }, {}, "json", at);
    log.child({ component: "api" }).error('a "quoted"\nmessage', { n: 1 });
    log.debug("hidden");
    expect(out).toHaveLength(1);
    expect(out[0]?.endsWith("\n")).toBe(true);
    expect(JSON.parse(out[0] as string)).toEqual({
      time: "2026-12-08T01:02:03.004Z",
      level: "error",
      msg: 'a "quoted"\nmessage',
      component: "api",
      n: 1,
    });
  });
});
