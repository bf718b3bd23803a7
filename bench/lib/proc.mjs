// Child processes for the benchmark: captured output, bounded waits, kill by pid, and
// the CPU time and memory of a process read from /proc. Nothing here waits without a
// time limit and nothing kills by name.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";

const keep = 512 * 1024;

export class Proc {
  constructor(label, cmd, args, opts = {}) {
    this.label = label;
    this.out = "";
    this.err = "";
    this.listeners = new Set();
    this.taps = [];
    this.exit = undefined;
    this.child = spawn(cmd, args, {
      stdio: [opts.stdin ?? "ignore", "pipe", "pipe"],
      env: opts.env ?? process.env,
    });
    if (this.child.pid === undefined) throw new Error(`${label}: could not start ${cmd}`);
    this.pid = this.child.pid;
    this.child.stdout.setEncoding("utf8");
    this.child.stderr.setEncoding("utf8");
    this.child.stdout.on("data", (s) => {
      for (const t of this.taps) t(s);
      this.out = (this.out + s).slice(-keep);
      this.notify();
    });
    this.child.stderr.on("data", (s) => {
      this.err = (this.err + s).slice(-keep);
      this.notify();
    });
    this.child.stdin?.on("error", () => {});
    this.exited = new Promise((resolve) => {
      this.child.on("exit", (code, signal) => {
        this.exit = { code, signal };
        this.notify();
        resolve(this.exit);
      });
      this.child.on("error", (e) => {
        this.exit ??= { code: null, signal: null, error: e.message };
        this.notify();
        resolve(this.exit);
      });
    });
    this.closed = new Promise((resolve) => this.child.on("close", resolve));
  }

  notify() {
    for (const l of [...this.listeners]) l();
  }

  write(s) {
    this.child.stdin?.write(s);
  }

  tail(n = 2000) {
    return `--- ${this.label} stdout ---\n${this.out.slice(-n)}\n--- ${this.label} stderr ---\n${this.err.slice(-n)}`;
  }

  /** Resolves with check()'s first defined value; rejects on timeout or exit. */
  until(what, timeoutMs, check) {
    return new Promise((resolve, reject) => {
      const done = () => {
        this.listeners.delete(probe);
        clearTimeout(timer);
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
        } else if (this.exit) {
          done();
          reject(
            new Error(
              `${this.label} exited (${JSON.stringify(this.exit)}) while waiting for ${what}\n${this.tail()}`,
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.label}: no ${what} after ${timeoutMs} ms\n${this.tail()}`));
      }, timeoutMs);
      this.listeners.add(probe);
      probe();
    });
  }

  async waitExit(ms) {
    if (this.exit) return this.exit;
    let t;
    const r = await Promise.race([this.exited, new Promise((res) => (t = setTimeout(res, ms)))]);
    clearTimeout(t);
    return r;
  }

  /** SIGTERM by pid, SIGKILL after graceMs. */
  async kill(graceMs = 3000) {
    if (this.exit) return this.exit;
    signal(this.pid, "SIGTERM");
    const r = await this.waitExit(graceMs);
    if (r) return r;
    signal(this.pid, "SIGKILL");
    return this.waitExit(graceMs);
  }
}

function signal(pid, sig) {
  try {
    process.kill(pid, sig);
  } catch {
    // gone already
  }
}

/** Runs a command to completion (time-limited); never rejects for a non-zero exit. */
export async function run(cmd, args, timeoutMs = 30_000) {
  const p = new Proc(cmd, cmd, args);
  const r = await p.waitExit(timeoutMs);
  if (!r) {
    await p.kill(1000);
    throw new Error(`${cmd} ${args.join(" ")}: timed out after ${timeoutMs} ms\n${p.tail()}`);
  }
  await Promise.race([p.closed, new Promise((res) => setTimeout(res, 1000))]);
  return { code: r.code, stdout: p.out, stderr: p.err };
}

export async function runOk(cmd, args, timeoutMs = 30_000) {
  const r = await run(cmd, args, timeoutMs);
  if (r.code !== 0)
    throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}): ${r.stderr.trim()}${r.stdout.trim()}`);
  return r.stdout;
}

/** CPU seconds (user + system) of a live process, from /proc/PID/stat. */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // the command name can hold spaces and parentheses: fields start after the last ')'
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
  return ticks / 100; // USER_HZ is 100 on Linux
}

/** VmRSS and VmHWM (peak) in KiB, from /proc/PID/status. */
export function memoryKiB(pid) {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const get = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? Number.NaN);
  return { rss: get("VmRSS"), hwm: get("VmHWM") };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
