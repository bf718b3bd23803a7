/**
 * A fresh network namespace per test: usernet, its QEMU guests and any servers run
 * inside it, so fixed loopback ports never collide between tests and no frame can
 * leave the machine (the namespace has only `lo`).
 *
 * Names are "une2e-<worker pid>-<n>-<random>". The pid lets a later run clean up
 * after a worker that died: `sweepStaleNamespaces()` kills the processes left inside
 * namespaces whose worker is gone (by pid, from `ip netns pids`) and deletes them.
 *
 * Multicast (optional): `ip link set lo multicast on; ip route add 224.0.0.0/4 dev lo`
 * — multicast tests run only in such a namespace, never in the host's, where group
 * traffic would follow the default route out.
 */
import { randomBytes } from "node:crypto";
import { readlinkSync } from "node:fs";
import { Proc, run, runOk } from "./proc.js";

const prefix = "une2e-";
let counter = 0;

export interface NetnsOptions {
  /** enable multicast on lo and route 224.0.0.0/4 there */
  multicast?: boolean;
}

export class Netns {
  private readonly procs = new Set<Proc>();
  private closedFlag = false;

  private constructor(readonly name: string) {}

  static async create(opts: NetnsOptions = {}): Promise<Netns> {
    await sweepStaleNamespaces();
    const name = `${prefix}${process.pid}-${counter++}-${randomBytes(3).toString("hex")}`;
    await runOk("ip", ["netns", "add", name]);
    const ns = new Netns(name);
    try {
      await ns.execOk("ip", ["link", "set", "lo", "up"]);
      if (opts.multicast) {
        await ns.execOk("ip", ["link", "set", "lo", "multicast", "on"]);
        await ns.execOk("ip", ["route", "add", "224.0.0.0/4", "dev", "lo"]);
      }
    } catch (e) {
      await ns.close();
      throw e;
    }
    return ns;
  }

  /** Waits (up to 10 s) for a link, e.g. a TAP usernet creates inside this namespace. */
  async waitForLink(name: string): Promise<void> {
    for (let i = 0; i < 100; i++) {
      if ((await this.exec("ip", ["link", "show", name], 5000)).code === 0) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${name} did not appear in ${this.name}`);
  }

  /**
   * A guest's side of usernet's TAP port, as the tests' kernel "guest" sets it up: waits
   * for the link, sets it up (with `mtu`), adds `addrs` (CIDR) and, with `gateway`, the
   * default route through it.
   */
  async setUpTap(name: string, opts: { addrs?: readonly string[]; gateway?: string; mtu?: number } = {}) {
    await this.waitForLink(name);
    const mtu = opts.mtu === undefined ? [] : ["mtu", String(opts.mtu)];
    await this.execOk("ip", ["link", "set", name, ...mtu, "up"]);
    for (const a of opts.addrs ?? []) await this.execOk("ip", ["addr", "add", a, "dev", name]);
    if (opts.gateway) await this.execOk("ip", ["route", "add", "default", "via", opts.gateway]);
  }

  /**
   * A target for the slirp4netns drop-in: `unshare FLAGS sleep SECONDS` started here
   * (after `prefix`, e.g. setpriv to another user), once its pid is sleep's own, inside
   * the new namespaces. Killed with this namespace.
   */
  async spawnTarget(unshareFlags: string, seconds: number, prefix: readonly string[] = []): Promise<Proc> {
    const argv = [...prefix, "unshare", unshareFlags, "sleep", String(seconds)];
    const target = this.spawn("target-ns", argv[0] as string, argv.slice(1));
    await waitForExec(target.pid, "/sleep");
    return target;
  }

  /** argv prefix that runs a command inside the namespace */
  wrap(cmd: string, args: readonly string[]): string[] {
    return ["ip", "netns", "exec", this.name, cmd, ...args];
  }

  /** Runs a command inside to completion (time-limited); resolves with its status. */
  exec(cmd: string, args: readonly string[], timeoutMs = 30_000) {
    const [c, ...a] = this.wrap(cmd, args);
    return run(c as string, a, timeoutMs);
  }

  /** Like exec(), but rejects on a non-zero exit; resolves with stdout. */
  execOk(cmd: string, args: readonly string[], timeoutMs = 30_000): Promise<string> {
    const [c, ...a] = this.wrap(cmd, args);
    return runOk(c as string, a, timeoutMs);
  }

  /**
   * Starts a long-running process inside; it is killed (by pid) in close(). `ip netns
   * exec` and `setpriv` exec the command, so the pid is the command's own. The parent
   * death signal kills it if the test worker itself dies before close().
   */
  spawn(
    label: string,
    cmd: string,
    args: readonly string[],
    opts: { env?: NodeJS.ProcessEnv; stdin?: "pipe" | "ignore" } = {},
  ): Proc {
    if (this.closedFlag) throw new Error(`netns ${this.name} is closed`);
    const [c, ...a] = this.wrap("setpriv", ["--pdeathsig", "KILL", "--", cmd, ...args]);
    const p = new Proc(label, c as string, a, opts);
    this.procs.add(p);
    return p;
  }

  /** Kills what spawn() started (and anything else still inside), deletes the namespace. */
  async close(): Promise<void> {
    if (this.closedFlag) return;
    this.closedFlag = true;
    await Promise.all([...this.procs].map((p) => p.kill(3000)));
    this.procs.clear();
    await killInside(this.name);
    await run("ip", ["netns", "delete", this.name]).catch(() => undefined);
  }
}

/** Kills, by pid, the processes still running inside a namespace we created. */
async function killInside(name: string): Promise<void> {
  for (const sig of ["SIGTERM", "SIGKILL"] as const) {
    const r = await run("ip", ["netns", "pids", name]).catch(() => undefined);
    const pids = (r?.stdout ?? "")
      .split(/\s+/)
      .map(Number)
      .filter((n) => Number.isInteger(n) && n > 1);
    if (pids.length === 0) return;
    for (const pid of pids) {
      try {
        process.kill(pid, sig);
      } catch {
        // gone already
      }
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

let swept = false;

/** Once per worker: removes namespaces left behind by harness workers that died. */
export async function sweepStaleNamespaces(): Promise<void> {
  if (swept) return;
  swept = true;
  const r = await run("ip", ["netns", "list"]).catch(() => undefined);
  for (const line of (r?.stdout ?? "").split("\n")) {
    const name = line.split(" ")[0] ?? "";
    const m = /^une2e-(\d+)-/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || isAlive(pid)) continue;
    await killInside(name);
    await run("ip", ["netns", "delete", name]).catch(() => undefined);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Waits (up to 5 s) until process `pid` runs a program whose path ends in `suffix`: a
 * target namespace started as `unshare -n sleep N` (through setpriv, unshare) is ready
 * once its pid is sleep's own, inside the new namespaces.
 */
export async function waitForExec(pid: number, suffix: string): Promise<void> {
  const exe = () => {
    try {
      return readlinkSync(`/proc/${pid}/exe`);
    } catch {
      return "";
    }
  };
  for (let i = 0; i < 100 && !exe().endsWith(suffix); i++) await new Promise((r) => setTimeout(r, 50));
}
