// A child process started by a test or a benchmark: captured output, bounded waits,
// and a kill by pid (SIGTERM, then SIGKILL after a grace period). Nothing here waits
// without a time limit, and nothing kills by name.
//
// Plain JavaScript so that bench/ (run by node as it is) and the e2e harness (through
// proc.ts; types in child-process.d.mts) share one implementation.
import { spawn } from "node:child_process";

/** Output kept per stream; the newest bytes win. */
const keepBytes = 512 * 1024;

const trimTo = (s) => (s.length > keepBytes ? s.slice(s.length - keepBytes) : s);

export class Proc {
  constructor(label, cmd, args, opts = {}) {
    this.label = label;
    this.out = "";
    this.err = "";
    this.listeners = new Set();
    this.stdoutTaps = [];
    this.exitStatus = undefined;
    this.child = spawn(cmd, args, {
      stdio: [opts.stdin ?? "ignore", "pipe", "pipe"],
      env: opts.env ?? process.env,
    });
    if (this.child.pid === undefined) throw new Error(`${label}: could not start ${cmd}`);
    this.pid = this.child.pid;
    this.child.stdout.setEncoding("utf8");
    this.child.stderr.setEncoding("utf8");
    this.child.stdout.on("data", (s) => {
      for (const tap of this.stdoutTaps) tap(s);
      this.out = trimTo(this.out + s);
      this.notify();
    });
    this.child.stderr.on("data", (s) => {
      this.err = trimTo(this.err + s);
      this.notify();
    });
    // A guest that died must not turn a write into an unhandled EPIPE.
    this.child.stdin?.on("error", () => {});
    // 'exit' can come before the last data: `closed` is when the pipes have closed too
    this.closed = new Promise((resolve) => this.child.on("close", () => resolve()));
    this.exited = new Promise((resolve) => {
      this.child.on("exit", (code, signal) => {
        this.exitStatus = { code, signal };
        this.notify();
        resolve(this.exitStatus);
      });
      this.child.on("error", () => {
        this.exitStatus ??= { code: null, signal: null };
        this.notify();
        resolve(this.exitStatus);
      });
    });
  }

  get stdout() {
    return this.out;
  }

  get stderr() {
    return this.err;
  }

  /** undefined while running */
  get exit() {
    return this.exitStatus;
  }

  /** Sees every stdout chunk, unbounded by the kept tail, before `until` waiters re-check. */
  tapStdout(fn) {
    this.stdoutTaps.push(fn);
  }

  write(s) {
    this.child.stdin?.write(s);
  }

  notify() {
    for (const l of [...this.listeners]) l();
  }

  /**
   * Resolves with `check()`'s value as soon as it is defined (re-checked on every
   * output chunk and on exit); rejects after `timeoutMs`, or when the process exits
   * first (unless `check` accepted the exit).
   */
  until(what, timeoutMs, check) {
    return new Promise((resolve, reject) => {
      let timer;
      const done = () => {
        this.listeners.delete(probe);
        if (timer) clearTimeout(timer);
      };
      const probe = () => {
        let v;
        try {
          v = check();
        } catch (e) {
          done();
          reject(e);
          return;
        }
        if (v !== undefined) {
          done();
          resolve(v);
        } else if (this.exitStatus) {
          done();
          reject(
            new Error(
              `${this.label} exited (${describeExit(this.exitStatus)}) while waiting for ${what}\n${this.tail()}`,
            ),
          );
        }
      };
      timer = setTimeout(() => {
        done();
        reject(
          new Error(`${this.label}: timed out after ${timeoutMs} ms waiting for ${what}\n${this.tail()}`),
        );
      }, timeoutMs);
      this.listeners.add(probe);
      probe();
    });
  }

  /** The end of both outputs, for error messages. */
  tail(chars = 3000) {
    return `--- ${this.label} stdout (tail) ---\n${this.out.slice(-chars)}\n--- ${this.label} stderr (tail) ---\n${this.err.slice(-chars)}`;
  }

  /** Waits up to `timeoutMs` for the process to exit by itself; undefined if it did not. */
  async waitExit(timeoutMs) {
    if (this.exitStatus) return this.exitStatus;
    let timer;
    const timeout = new Promise((r) => {
      timer = setTimeout(() => r(undefined), timeoutMs);
    });
    const r = await Promise.race([this.exited, timeout]);
    clearTimeout(timer);
    return r;
  }

  /** SIGTERM by pid, SIGKILL after `graceMs`; resolves once it is gone. */
  async kill(graceMs = 3000) {
    if (this.exitStatus) return this.exitStatus;
    signalPid(this.pid, "SIGTERM");
    const r = await this.waitExit(graceMs);
    if (r) return r;
    signalPid(this.pid, "SIGKILL");
    return this.waitExit(graceMs);
  }
}

export function describeExit(s) {
  return s.signal ? `signal ${s.signal}` : `code ${s.code}`;
}

function signalPid(pid, sig) {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Runs a command to completion with a time limit; never rejects for a non-zero exit. */
export async function run(cmd, args, timeoutMs = 30_000) {
  const p = new Proc(cmd, cmd, args);
  const r = await p.waitExit(timeoutMs);
  if (!r) {
    await p.kill(1000);
    throw new Error(`${cmd} ${args.join(" ")}: timed out after ${timeoutMs} ms\n${p.tail()}`);
  }
  await Promise.race([p.closed, new Promise((res) => setTimeout(res, 1000))]);
  return { code: r.code, stdout: p.stdout, stderr: p.stderr };
}

/** Like run(), but rejects unless the exit code is 0. */
export async function runOk(cmd, args, timeoutMs = 30_000) {
  const r = await run(cmd, args, timeoutMs);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (code ${r.code}): ${r.stderr.trim()}${r.stdout.trim()}`);
  }
  return r.stdout;
}
