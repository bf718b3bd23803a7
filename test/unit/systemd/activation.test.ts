import { describe, expect, it } from "vitest";
import { ActivatedSockets, parseListenFds, unsetListenEnv } from "../../../src/systemd/activation.js";

describe("parseListenFds", () => {
  it("gives fds from 3 with their names when LISTEN_PID is ours", () => {
    const env = { LISTEN_FDS: "3", LISTEN_PID: "42", LISTEN_FDNAMES: "s0:api:dashboard" };
    expect(parseListenFds(env, 42)).toEqual({
      ok: true,
      sockets: [
        { fd: 3, name: "s0" },
        { fd: 4, name: "api" },
        { fd: 5, name: "dashboard" },
      ],
    });
  });

  it("names unnamed sockets 'unknown', as systemd does", () => {
    expect(parseListenFds({ LISTEN_FDS: "1", LISTEN_PID: "7" }, 7)).toEqual({
      ok: true,
      sockets: [{ fd: 3, name: "unknown" }],
    });
  });

  it("ignores sockets meant for another process, and no variables at all", () => {
    expect(parseListenFds({ LISTEN_FDS: "2", LISTEN_PID: "8" }, 7)).toEqual({ ok: true, sockets: [] });
    expect(parseListenFds({}, 7)).toEqual({ ok: true, sockets: [] });
  });

  it("refuses a count that does not match the names, and bad numbers", () => {
    expect(parseListenFds({ LISTEN_FDS: "2", LISTEN_PID: "7", LISTEN_FDNAMES: "a" }, 7).ok).toBe(false);
    expect(parseListenFds({ LISTEN_FDS: "x", LISTEN_PID: "7" }, 7).ok).toBe(false);
    expect(parseListenFds({ LISTEN_FDS: "1" }, 7).ok).toBe(false);
  });

  it("unsetListenEnv removes the three variables only", () => {
    const env: NodeJS.ProcessEnv = { LISTEN_FDS: "1", LISTEN_PID: "7", LISTEN_FDNAMES: "a", HOME: "/h" };
    unsetListenEnv(env);
    expect(env).toEqual({ HOME: "/h" });
  });
});

describe("ActivatedSockets", () => {
  it("hands each name's fds out once and lists what nobody took", () => {
    const a = new ActivatedSockets([
      { fd: 3, name: "api" },
      { fd: 4, name: "api" },
      { fd: 5, name: "s0" },
      { fd: 6, name: "unknown" },
    ]);
    expect(a.has("api")).toBe(true);
    expect(a.take("api")).toEqual([3, 4]);
    expect(a.has("api")).toBe(false);
    expect(a.take("api")).toEqual([]);
    expect(a.take("s0")).toEqual([5]);
    expect(a.unused()).toEqual([{ fd: 6, name: "unknown" }]);
  });
});
