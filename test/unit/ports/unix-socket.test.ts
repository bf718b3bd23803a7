/**
 * clearStaleSocket on real sockets: a dead process's socket file is removed, a live
 * server's is not (and it keeps serving), and nothing but a socket is ever removed.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { clearStaleSocket } from "../../../src/ports/unix-socket.js";

const dir = mkdtempSync(join(tmpdir(), "usernet-unix-socket-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const fail = (why: string) => new Error(`test: ${why}`);

describe("clearStaleSocket", () => {
  test("nothing at the path is fine", async () => {
    await expect(clearStaleSocket(join(dir, "none.sock"), fail)).resolves.toBeUndefined();
  });

  test("removes the socket file of a process that died", async () => {
    const path = join(dir, "dead.sock");
    const r = spawnSync(
      process.execPath,
      [
        "-e",
        `require("net").createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, "SIGKILL"))`,
      ],
      { timeout: 10_000 },
    );
    expect(r.signal).toBe("SIGKILL");
    expect(statSync(path).isSocket()).toBe(true);
    await clearStaleSocket(path, fail);
    expect(() => statSync(path)).toThrow(/ENOENT/);
  });

  test("refuses a live socket and leaves it serving", async () => {
    const path = join(dir, "live.sock");
    // clearStaleSocket's probe hangs up at once: its reset is no failure of this server
    const server = createServer((s) => {
      s.on("error", () => {});
      s.end("ok");
    });
    await new Promise<void>((r) => server.listen(path, r));
    try {
      await expect(clearStaleSocket(path, fail)).rejects.toThrow(
        "test: another process is listening on that socket",
      );
      const got = await new Promise<string>((resolve, reject) => {
        let s = "";
        const c = createConnection(path);
        c.on("data", (d) => {
          s += d;
        });
        c.on("end", () => resolve(s));
        c.on("error", reject);
      });
      expect(got).toBe("ok");
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  test("never removes what is not a socket", async () => {
    const path = join(dir, "plain");
    writeFileSync(path, "data");
    await expect(clearStaleSocket(path, fail)).rejects.toThrow(/not a socket/);
    expect(statSync(path).isFile()).toBe(true);
  });
});
