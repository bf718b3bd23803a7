/**
 * Runs the built usernet CLI (`node dist/cli/main.js ARGS`) inside a test's namespace.
 *
 * It runs in the namespace AND in a private mount namespace whose /etc/resolv.conf says
 * `nameserver 127.0.0.1` (`unshare -m`, then `mount --bind` of a temp file over
 * /etc/resolv.conf, then exec): whatever the DNS forwarder falls back to, it is
 * loopback inside the namespace, never the machine's resolver. The chain of execs keeps
 * one pid (ip → unshare → sh → node), so close() kills usernet itself by pid.
 *
 * Readiness: the caller says what to wait for — TCP/UDP ports listening inside the
 * namespace (polled with `ss`), unix socket files existing, or a line on stdout. A
 * probe connection is never made: for a listener it would become a hub port.
 *
 * Internal errors: usernet logs every unexpected exception (a bug) as
 * `usernet error: internal error in WHERE: ...` with its count (src/log.ts), the same
 * counter the API's status shows. `internalErrors()` reads them from stderr;
 * e2eScope's teardown fails the test when there is any (`assertNoInternalErrors`).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Netns } from "./netns.js";
import { trace, usernetMain } from "./prereqs.js";
import type { Proc } from "./proc.js";

/** The internal-error lines in usernet's stderr: one per place, first occurrence. */
export function internalErrorLines(stderr: string): string[] {
  return stderr.split("\n").filter((l) => /^usernet error: internal error in /.test(l));
}

/** The highest internal-error count usernet logged (its counter then), 0 when none. */
export function internalErrorCount(stderr: string): number {
  let n = 0;
  for (const l of internalErrorLines(stderr)) n = Math.max(n, Number(/ count=(\d+)/.exec(l)?.[1] ?? 1));
  return n;
}

export interface UsernetReady {
  tcp?: number[];
  udp?: number[];
  unix?: string[];
  /** a line on stdout matching this */
  stdout?: RegExp;
  /** default 20 s */
  timeoutMs?: number;
}

export interface UsernetOptions {
  env?: NodeJS.ProcessEnv;
  ready?: UsernetReady;
  label?: string;
  /**
   * Shell commands run in usernet's private mount namespace before it starts, e.g. a
   * small tmpfs for its state directory (`mount -t tmpfs -o size=64k tmpfs DIR`): only
   * usernet sees it; reach it with `nsenter -t PID -m`.
   */
  mountSetup?: string;
  /**
   * A command that runs usernet (it must exec it, keeping the pid), e.g.
   * `["systemd-socket-activate", "-l", PATH, "--fdname=s0"]`: node and usernet's
   * arguments follow it.
   */
  wrap?: readonly string[];
}

export class Usernet {
  private constructor(
    readonly proc: Proc,
    readonly args: readonly string[],
    private readonly tmp: string,
  ) {}

  static async start(ns: Netns, args: readonly string[], opts: UsernetOptions = {}): Promise<Usernet> {
    const main = usernetMain();
    if (!main) throw new Error("dist/cli/main.js is missing: run npx tsc -p tsconfig.json");
    const tmp = mkdtempSync(join(tmpdir(), "une2e-usernet-"));
    const resolv = join(tmp, "resolv.conf");
    writeFileSync(resolv, "nameserver 127.0.0.1\n");
    const setup = opts.mountSetup ? `${opts.mountSetup} && ` : "";
    const script = `${setup}mount --bind "$0" /etc/resolv.conf && exec "$@"`;
    const proc = ns.spawn(
      opts.label ?? "usernet",
      "unshare",
      [
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
        resolv,
        ...(opts.wrap ?? []),
        process.execPath,
        main,
        ...args,
      ],
      { env: opts.env ?? process.env },
    );
    const u = new Usernet(proc, args, tmp);
    const t0 = Date.now();
    try {
      await u.waitReady(ns, opts.ready ?? {});
      trace(`usernet ${args.join(" ")}: ready after ${Date.now() - t0} ms`);
    } catch (e) {
      await u.close();
      throw e;
    }
    return u;
  }

  get stdout(): string {
    return this.proc.stdout;
  }

  get stderr(): string {
    return this.proc.stderr;
  }

  private async waitReady(ns: Netns, ready: UsernetReady): Promise<void> {
    const timeoutMs = ready.timeoutMs ?? 20_000;
    const deadline = Date.now() + timeoutMs;
    if (ready.stdout) {
      const re = ready.stdout;
      await this.proc.until(`a stdout line matching ${re}`, timeoutMs, () =>
        this.proc.stdout.split("\n").some((l) => re.test(l)) ? true : undefined,
      );
    }
    const tcp = ready.tcp ?? [];
    const udp = ready.udp ?? [];
    const unix = ready.unix ?? [];
    for (;;) {
      if (this.proc.exit) {
        throw new Error(`usernet exited during start-up (args: ${this.args.join(" ")})\n${this.proc.tail()}`);
      }
      const missing: string[] = unix.filter((p) => !existsSync(p));
      if (tcp.length + udp.length > 0) {
        const r = await ns.exec("ss", ["-Hlntu"], 5000);
        const local = r.stdout
          .split("\n")
          .map((l) => l.trim().split(/\s+/))
          .filter((f) => f.length >= 5)
          .map((f) => ({ proto: f[0], port: Number((f[4] ?? "").split(":").pop()) }));
        for (const p of tcp)
          if (!local.some((l) => l.proto === "tcp" && l.port === p)) missing.push(`tcp ${p}`);
        for (const p of udp)
          if (!local.some((l) => l.proto === "udp" && l.port === p)) missing.push(`udp ${p}`);
      }
      if (missing.length === 0) return;
      if (Date.now() > deadline) {
        throw new Error(
          `usernet not ready after ${timeoutMs} ms: no ${missing.join(", ")}\n${this.proc.tail()}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** usernet's internal-error counter as far as its log shows it (0: no bug hit). */
  internalErrors(): number {
    return internalErrorCount(this.proc.stderr);
  }

  /** Throws, quoting usernet's log around them, when usernet reported internal errors. */
  assertNoInternalErrors(): void {
    const n = this.internalErrors();
    if (n === 0) return;
    const lines = this.proc.stderr.split("\n");
    const first = lines.findIndex((l) => /^usernet error: internal error in /.test(l));
    throw new Error(
      `usernet (${this.args.join(" ")}) hit ${n} internal error(s) (bugs):\n${lines.slice(first, first + 30).join("\n")}`,
    );
  }

  /** SIGTERM by pid (SIGKILL after 3 s); resolves with how it ended. */
  async close() {
    const r = await this.proc.kill(3000);
    rmSync(this.tmp, { recursive: true, force: true });
    return r;
  }
}
