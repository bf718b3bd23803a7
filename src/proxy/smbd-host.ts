/**
 * The real `SmbdHost`: node's fs, child_process and net for the smbd launcher.
 *
 * Theory of operation
 * - Each guest connection gets its own smbd with a connected TCP socket on its stdin:
 *   smbd then runs "inetd style" (a socket on stdin, no -D/-F) and serves only it.
 *   TCP and not a unix socketpair (which is what Node's stdio "pipe" is), because
 *   Debian's smbd 4.17 refuses a unix socket's peer ("get_remote_hostname failed -
 *   Invalid argument" with `hostname lookups = no`; with them on, tree connects fail),
 *   which is why QEMU's slirp makes a TCP pair for its smbd too.
 * - The pair: a listener on 127.0.0.1, port 0, lives only until our own connection to
 *   it is accepted (well under a millisecond). Another local user could connect in
 *   that moment, so an accepted socket is taken only when its peer is exactly our
 *   connecting socket (address and port: the kernel never gives two connections the
 *   same four-tuple); any other is closed at once, unread, and counted. The accepted
 *   end is never read here (pauseOnConnect): it becomes smbd's fd 0 and our copy is
 *   closed right after the spawn. Bounded by `pairTimeoutMs` (5 s).
 * - smbd runs detached (a new session and process group: smbd signals its whole group
 *   when it stops, which must not include usernet); stdout/stderr go to usernet's log
 *   at debug level.
 * - Files: the private directory comes from mkdtemp (0700), its subdirectories are
 *   0700 and smb.conf 0600.
 */
import { spawn } from "node:child_process";
import { constants } from "node:fs";
import { access, mkdir, mkdtemp, open, rm, stat, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "../log.js";
import type { SmbdChild, SmbdExit, SmbdHost } from "../services/smb/smbd-launcher.js";
import { type HostTcp, type HostTcpEvent, wrapTcpSocket } from "./host-net.js";

/** Our end of an smbd's connection: attach it to get a HostTcp and its events. */
export type SmbdConnection = (events: (e: HostTcpEvent) => void) => HostTcp;

const pairTimeoutMs = 5_000;

/** connections to a pair's listener that were not ours (closed unread) */
export const strangersRefused = { count: 0 };

/**
 * A connected pair of TCP sockets on 127.0.0.1 that nobody else is part of; `theirs`
 * is paused and never read.
 */
export function privateLoopbackPair(): Promise<{ ours: net.Socket; theirs: net.Socket }> {
  return new Promise((resolve, reject) => {
    const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true });
    let ours: net.Socket | undefined;
    let theirs: net.Socket | undefined;
    let connected = false;
    let settled = false;
    const finish = (err?: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      server.close();
      if (err || !ours || !theirs) {
        ours?.destroy();
        theirs?.destroy();
        reject(err ?? new Error("no connection"));
        return;
      }
      ours.off("error", onError);
      resolve({ ours, theirs });
    };
    const onError = (err: Error) => finish(err);
    const timer = setTimeout(() => finish(new Error("loopback pair timed out")), pairTimeoutMs);
    server.on("error", onError);
    server.on("connection", (s) => {
      const mine =
        !settled &&
        theirs === undefined &&
        ours?.localPort !== undefined &&
        s.remotePort === ours.localPort &&
        s.remoteAddress === ours.localAddress;
      if (!mine) {
        strangersRefused.count++;
        s.destroy();
        return;
      }
      theirs = s;
      if (connected) finish();
    });
    server.listen({ host: "127.0.0.1", port: 0, backlog: 8 }, () => {
      const a = server.address();
      if (!a || typeof a !== "object") return finish(new Error("no listener address"));
      ours = net.connect({ host: "127.0.0.1", port: a.port, allowHalfOpen: true, noDelay: true });
      ours.once("error", onError);
      ours.once("connect", () => {
        connected = true;
        if (theirs) finish();
      });
    });
  });
}

export function nodeSmbdHost(log: Logger): SmbdHost<SmbdConnection> {
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
    async spawnOnConnection(command, args) {
      const { ours, theirs } = await privateLoopbackPair();
      let child: ReturnType<typeof spawn>;
      try {
        child = spawn(command, args, { stdio: [theirs, "pipe", "pipe"], detached: true });
      } catch (e) {
        ours.destroy();
        throw e;
      } finally {
        // smbd has its own copy now (or none, if the spawn failed)
        theirs.destroy();
      }
      const out = (chunk: Buffer) => {
        for (const line of chunk.toString("utf8").split("\n"))
          if (line.trim()) log.debug(`smbd: ${line.trim()}`);
      };
      child.stdout?.on("data", out);
      child.stderr?.on("data", out);
      const exited = new Promise<SmbdExit>((resolve) => {
        child.once("exit", (code, signal) => resolve({ code, signal }));
        child.once("error", (e) => {
          log.error("cannot run smbd", { error: e.message });
          ours.destroy();
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
      const connection: SmbdConnection = (events) => wrapTcpSocket(ours, true, events);
      return { child: handle, connection };
    },
    sleep(ms) {
      return new Promise((resolve) => setTimeout(resolve, ms));
    },
    now: () => performance.now(),
  };
}
