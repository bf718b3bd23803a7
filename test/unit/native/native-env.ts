/**
 * What the native addon's tests need, and a throwaway network namespace for them.
 *
 * Tests that need root (netns, TAP) skip unless running as root; under
 * USERNET_E2E=required a missing prerequisite fails instead, naming what is missing.
 * Namespaces are named "unnat-<pid>-<n>"; a later run deletes those whose creating
 * process is gone. Every child process is started with a time limit and killed by pid.
 */
import { execFile, spawn, spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, readdirSync } from "node:fs";
import { describe, test } from "vitest";
import { addonPath } from "../../../src/native/binding.js";

export type Need = "root" | "ip" | "tun" | "busybox" | "unshare" | "addon";

const required = process.env.USERNET_E2E === "required";

function has(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

export function missing(needs: readonly Need[]): string[] {
  const out: string[] = [];
  for (const n of needs) {
    if (n === "root" && process.getuid?.() !== 0) out.push("root (uid 0)");
    if (n === "ip" && !has("ip")) out.push("ip (iproute2)");
    if (n === "busybox" && !has("busybox")) out.push("busybox");
    if (n === "unshare" && !(has("unshare") && has("nsenter"))) out.push("unshare and nsenter (util-linux)");
    if (n === "addon" && !existsSync(addonPath)) out.push(`${addonPath} (npx node-gyp rebuild)`);
    if (n === "tun") {
      try {
        accessSync("/dev/net/tun", constants.R_OK | constants.W_OK);
      } catch {
        out.push("/dev/net/tun");
      }
    }
  }
  return out;
}

/** describe() when everything needed is there; otherwise a skip, or a failure if required. */
export function describeWith(name: string, needs: readonly Need[], body: () => void): void {
  const lack = missing(needs);
  if (lack.length === 0) {
    describe(name, body);
    return;
  }
  const reason = `missing: ${lack.join(", ")}`;
  if (required) {
    describe(name, () => {
      test(`prerequisites (USERNET_E2E=required) — ${reason}`, () => {
        throw new Error(`${name}: ${reason}`);
      });
    });
    return;
  }
  describe.skip(`${name} (${reason})`, body);
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, killed after timeoutMs; never rejects. */
export function run(cmd: string, args: readonly string[], timeoutMs = 10_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: "SIGKILL" }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : null) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

export async function runOk(cmd: string, args: readonly string[], timeoutMs = 10_000): Promise<string> {
  const r = await run(cmd, args, timeoutMs);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

const prefix = "unnat-";
let counter = 0;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Deletes namespaces a dead test process left behind (kills what still runs inside, by pid). */
async function sweepStale(): Promise<void> {
  if (!existsSync("/var/run/netns")) return;
  for (const name of readdirSync("/var/run/netns")) {
    const m = /^unnat-(\d+)-\d+$/.exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    const pids = (await run("ip", ["netns", "pids", name])).stdout.split(/\s+/).filter(Boolean);
    for (const p of pids) {
      try {
        process.kill(Number(p), "SIGKILL");
      } catch {}
    }
    await run("ip", ["netns", "del", name]);
  }
}

export class TestNetns {
  readonly path: string;
  private constructor(readonly name: string) {
    this.path = `/var/run/netns/${name}`;
  }

  static async create(): Promise<TestNetns> {
    await sweepStale();
    const ns = new TestNetns(`${prefix}${process.pid}-${counter++}`);
    await runOk("ip", ["netns", "add", ns.name]);
    await ns.execOk("ip", ["link", "set", "lo", "up"]);
    // IPv6 router solicitations and MLD reports would only add noise to the TAP.
    await ns.execOk("sysctl", ["-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
    await ns.execOk("sysctl", ["-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
    return ns;
  }

  exec(cmd: string, args: readonly string[], timeoutMs = 10_000): Promise<RunResult> {
    return run("ip", ["netns", "exec", this.name, cmd, ...args], timeoutMs);
  }

  execOk(cmd: string, args: readonly string[], timeoutMs = 10_000): Promise<string> {
    return runOk("ip", ["netns", "exec", this.name, cmd, ...args], timeoutMs);
  }

  /** Kills whatever still runs inside (by pid) and deletes the namespace. */
  async close(): Promise<void> {
    const pids = (await run("ip", ["netns", "pids", this.name])).stdout.split(/\s+/).filter(Boolean);
    for (const p of pids) {
      try {
        process.kill(Number(p), "SIGKILL");
      } catch {}
    }
    await run("ip", ["netns", "del", this.name]);
  }
}

/** A long-running child (e.g. `unshare ... sleep`), killed by pid in kill(). */
export function startChild(cmd: string, args: readonly string[]) {
  const child = spawn(cmd, args, { stdio: "ignore" });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    pid: child.pid as number,
    async kill(): Promise<void> {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

/** Polls until pred() is true; bounded by timeoutMs. */
export async function waitFor(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
