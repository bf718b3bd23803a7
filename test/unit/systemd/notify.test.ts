import { describe, expect, it } from "vitest";
import type { Logger } from "../../../src/log.js";
import { createNotifier, type NotifySocketIo } from "../../../src/systemd/notify.js";

function recordingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log: Logger & { lines: string[] } = {
    lines,
    debug: (m) => void lines.push(`debug ${m}`),
    info: (m) => void lines.push(`info ${m}`),
    warn: (m) => void lines.push(`warn ${m}`),
    error: (m) => void lines.push(`error ${m}`),
    child: () => log,
  };
  return log;
}

function fakeSocket(
  failSend = false,
): NotifySocketIo & { sent: string[]; opened: string[]; closed: number[] } {
  const sent: string[] = [];
  const opened: string[] = [];
  const closed: number[] = [];
  return {
    sent,
    opened,
    closed,
    open(path) {
      opened.push(path);
      return 9;
    },
    send(fd, text) {
      expect(fd).toBe(9);
      if (failSend) throw Object.assign(new Error("send failed: ECONNREFUSED"), { code: "ECONNREFUSED" });
      sent.push(text);
    },
    close: (fd) => void closed.push(fd),
  };
}

describe("createNotifier", () => {
  it("does nothing without NOTIFY_SOCKET", () => {
    const io = fakeSocket();
    const n = createNotifier({}, recordingLog(), io);
    n.ready("x");
    expect(n.active).toBe(false);
    expect(io.opened).toEqual([]);
  });

  it("sends READY, RELOADING with MONOTONIC_USEC, STOPPING; takes NOTIFY_SOCKET out of the environment", () => {
    const io = fakeSocket();
    const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: "/run/user/1/systemd/notify" };
    const n = createNotifier(env, recordingLog(), io);
    expect(env.NOTIFY_SOCKET).toBeUndefined();
    expect(io.opened).toEqual(["/run/user/1/systemd/notify"]);
    n.ready("running:\n2 netdevs");
    n.reloading("reloading");
    n.status("busy");
    n.stopping("stopping (SIGTERM)");
    n.close();
    expect(io.sent[0]).toBe(`READY=1\nSTATUS=running: 2 netdevs\nMAINPID=${process.pid}`);
    expect(io.sent[1]).toMatch(/^RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=reloading$/);
    expect(io.sent.slice(2)).toEqual(["STATUS=busy", "STOPPING=1\nSTATUS=stopping (SIGTERM)"]);
    expect(io.closed).toEqual([9]);
  });

  it("logs once when sends fail and stops trying", () => {
    const io = fakeSocket(true);
    const log = recordingLog();
    const n = createNotifier({ NOTIFY_SOCKET: "@sd" }, log, io);
    n.ready("a");
    n.ready("b");
    expect(log.lines.filter((l) => l.startsWith("warn"))).toHaveLength(1);
  });

  it("logs when the socket cannot be opened, and is inactive", () => {
    const log = recordingLog();
    const n = createNotifier({ NOTIFY_SOCKET: "/nope" }, log, {
      open() {
        throw new Error("connect failed: ENOENT");
      },
      send() {},
      close() {},
    });
    expect(n.active).toBe(false);
    expect(log.lines.join("\n")).toMatch(/cannot notify systemd .*ENOENT.*Type=simple/);
  });
});
