/**
 * The real `SmbdHost`: node's fs, child_process and net for the smbd launcher.
 * smbd runs detached (a new session and process group: smbd signals its whole group
 * when it stops, which must not include usernet), stdin from /dev/null (on a socket
 * smbd would take it for an inetd connection), stdout/stderr to usernet's log at debug
 * level. Probes and the free-port pick only touch 127.0.0.1.
 */
import { spawn } from "node:child_process";
import { constants } from "node:fs";
import { access, mkdir, mkdtemp, open, rm, stat, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "../log.js";
import type { SmbdChild, SmbdExit, SmbdHost } from "../services/smb/smbd-launcher.js";

export function nodeSmbdHost(log: Logger): SmbdHost {
  return {
    async isExecutable(path) {
      try {
        await access(path, constants.X_OK);
        return (await stat(path)).isFile();
      } catch {
        return false;
      }
    },
    async directoryProblem(path) {
      try {
        if (!(await stat(path)).isDirectory()) return "is not a directory";
        await access(path, constants.R_OK | constants.X_OK);
        return undefined;
      } catch (e) {
        return `cannot be used (${(e as NodeJS.ErrnoException).code ?? String(e)})`;
      }
    },
    async makePrivateDir() {
      // mkdtemp creates the directory with mode 0700
      return mkdtemp(join(tmpdir(), "usernet-smb."));
    },
    async mkdir(path) {
      await mkdir(path, { mode: 0o700 });
    },
    async writeFile(path, text) {
      await writeFile(path, text, { mode: 0o600 });
    },
    async readTail(path, bytes) {
      try {
        const f = await open(path, "r");
        try {
          const size = (await f.stat()).size;
          const start = Math.max(0, size - bytes);
          const buf = Buffer.alloc(size - start);
          await f.read(buf, 0, buf.length, start);
          return buf.toString("utf8");
        } finally {
          await f.close();
        }
      } catch {
        return "";
      }
    },
    async removeDir(path) {
      await rm(path, { recursive: true, force: true, maxRetries: 2 });
    },
    freePort() {
      return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => {
          const addr = server.address();
          server.close(() => {
            if (addr && typeof addr === "object") resolve(addr.port);
            else reject(new Error("no port"));
          });
        });
      });
    },
    spawn(command, args) {
      const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
      const out = (chunk: Buffer) => {
        for (const line of chunk.toString("utf8").split("\n"))
          if (line.trim()) log.debug(`smbd: ${line.trim()}`);
      };
      child.stdout.on("data", out);
      child.stderr.on("data", out);
      const exited = new Promise<SmbdExit>((resolve) => {
        child.once("exit", (code, signal) => resolve({ code, signal }));
        child.once("error", (e) => {
          log.error("cannot run smbd", { error: e.message });
          resolve({ code: null, signal: null });
        });
      });
      const handle: SmbdChild = {
        pid: child.pid,
        kill(signal) {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        },
        exited,
      };
      return handle;
    },
    probe(port) {
      return new Promise((resolve) => {
        const s = net.connect({ host: "127.0.0.1", port });
        const done = (ok: boolean) => {
          s.destroy();
          resolve(ok);
        };
        s.setTimeout(1000, () => done(false));
        s.once("connect", () => done(true));
        s.once("error", () => done(false));
      });
    },
    sleep(ms) {
      return new Promise((resolve) => setTimeout(resolve, ms));
    },
    now: () => performance.now(),
  };
}
