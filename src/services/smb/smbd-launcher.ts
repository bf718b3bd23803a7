/**
 * The SMB service behind `smb=DIR`: Samba's smbd, started on demand with a private
 * configuration, as QEMU does (QEMU runs one smbd per connection from inetd mode; we
 * run one daemon per netdev on a loopback port and relay every connection to it).
 *
 * Theory of operation
 * - `check()` runs at start-up when smb= is given: smbd must exist (else: install the
 *   `samba` package) and DIR must be a readable directory; either failure stops
 *   usernet with one line.
 * - `port()` is called for each guest connection to the SMB address. The first call
 *   starts smbd: a private temporary directory (0700) gets the smb.conf (smb-conf.ts)
 *   and smbd's run subdirectories, a free loopback port is picked, and smbd runs in
 *   the foreground (its own process group, so its group-wide signals stay its own),
 *   stdin closed. It is ready when 127.0.0.1:port accepts a connection, polled every
 *   `pollMs` (50 ms) for at most `startTimeoutMs` (15 s). Calls during start-up wait
 *   for the same start. A start that fails (smbd exits, or never listens) rejects
 *   those calls (their guests get RST), stops what it started, removes the directory,
 *   and the next connection tries again after `retryAfterMs` (2 s; sooner calls
 *   fail at once, so a broken smbd is not restarted per SYN).
 * - smbd exiting later (a crash, someone killing it) is logged; its directory is
 *   removed and the next connection starts a new one.
 * - `close()`: SIGTERM to smbd's pid, SIGKILL after `stopTimeoutMs` (5 s), then the
 *   directory is removed. Only the pid we started is signalled.
 * All process, file and socket work goes through `SmbdHost` (src/proxy/smbd-host.ts for the real
 * one), so the logic is tested with a fake.
 * Not done: restarting smbd when DIR changes, more than one share, a smbd per guest.
 */
import { internalErrors, type Logger } from "../../log.js";
import { smbConf, smbRunSubdirs } from "./smb-conf.js";

export interface SmbdExit {
  code: number | null;
  signal: string | null;
}

export interface SmbdChild {
  readonly pid: number | undefined;
  kill(signal: "SIGTERM" | "SIGKILL"): void;
  /** settles once the process has exited (never rejects) */
  readonly exited: Promise<SmbdExit>;
}

/** Everything the launcher does to the host. */
export interface SmbdHost {
  /** whether `path` is an executable file */
  isExecutable(path: string): Promise<boolean>;
  /** undefined when `path` is a directory we can read and enter, else the reason */
  directoryProblem(path: string): Promise<string | undefined>;
  /** a new empty directory only we can use (mode 0700) */
  makePrivateDir(): Promise<string>;
  mkdir(path: string): Promise<void>;
  writeFile(path: string, text: string): Promise<void>;
  /** the last `bytes` of a file, "" when it cannot be read */
  readTail(path: string, bytes: number): Promise<string>;
  removeDir(path: string): Promise<void>;
  /** a TCP port on 127.0.0.1 that nothing listens on now */
  freePort(): Promise<number>;
  /** runs `command` in its own process group, stdin closed */
  spawn(command: string, args: readonly string[]): SmbdChild;
  /** whether 127.0.0.1:port accepts a TCP connection */
  probe(port: number): Promise<boolean>;
  sleep(ms: number): Promise<void>;
  now(): number;
}

export interface SmbdLauncherOptions {
  shareDir: string;
  /** the user files are accessed as (the invoking user) */
  user: string;
  host: SmbdHost;
  log: Logger;
  smbdPath?: string;
  startTimeoutMs?: number;
  stopTimeoutMs?: number;
  pollMs?: number;
  retryAfterMs?: number;
}

export const defaultSmbdPath = "/usr/sbin/smbd";

interface Running {
  dir: string;
  port: number;
  child: SmbdChild;
}

export class SmbdLauncher {
  /** smbd processes started (for stats and tests) */
  starts = 0;
  private readonly smbdPath: string;
  private readonly startTimeoutMs: number;
  private readonly stopTimeoutMs: number;
  private readonly pollMs: number;
  private readonly retryAfterMs: number;
  private current: Promise<Running> | undefined;
  private running: Running | undefined;
  private failedAt: { at: number; error: Error } | undefined;
  private closed = false;

  constructor(private readonly o: SmbdLauncherOptions) {
    this.smbdPath = o.smbdPath ?? defaultSmbdPath;
    this.startTimeoutMs = o.startTimeoutMs ?? 15_000;
    this.stopTimeoutMs = o.stopTimeoutMs ?? 5_000;
    this.pollMs = o.pollMs ?? 50;
    this.retryAfterMs = o.retryAfterMs ?? 2_000;
  }

  /** Start-up checks for smb=DIR; throws one clear message. */
  async check(): Promise<void> {
    if (!(await this.o.host.isExecutable(this.smbdPath))) {
      throw new Error(
        `smb=${this.o.shareDir} needs Samba's smbd, but ${this.smbdPath} is missing; install it with: apt-get install samba`,
      );
    }
    const problem = await this.o.host.directoryProblem(this.o.shareDir);
    if (problem) throw new Error(`smb=${this.o.shareDir}: ${problem}`);
  }

  /** smbd's port on 127.0.0.1, starting smbd first if it does not run. */
  port(): Promise<number> {
    if (this.closed) return Promise.reject(new Error("usernet is closing"));
    if (!this.current) {
      const failed = this.failedAt;
      if (failed && this.o.host.now() - failed.at < this.retryAfterMs) return Promise.reject(failed.error);
      this.current = this.start();
      this.current.then(
        () => {
          this.failedAt = undefined;
        },
        (e: unknown) => {
          this.failedAt = { at: this.o.host.now(), error: e instanceof Error ? e : new Error(String(e)) };
          this.current = undefined;
        },
      );
    }
    return this.current.then((r) => r.port);
  }

  /** Whether smbd runs now (started and not exited). */
  get isRunning(): boolean {
    return this.running !== undefined;
  }

  /** Stops smbd (if it runs) and removes its directory. */
  async close(): Promise<void> {
    this.closed = true;
    const start = this.current;
    this.current = undefined;
    if (start) await start.catch(() => undefined);
    const r = this.running;
    this.running = undefined;
    if (r) await this.stop(r);
  }

  private async start(): Promise<Running> {
    const h = this.o.host;
    const dir = await h.makePrivateDir();
    let child: SmbdChild | undefined;
    let exit: SmbdExit | undefined;
    try {
      for (const sub of smbRunSubdirs) await h.mkdir(`${dir}/${sub}`);
      const port = await h.freePort();
      const conf = `${dir}/smb.conf`;
      await h.writeFile(conf, smbConf({ shareDir: this.o.shareDir, runDir: dir, port, user: this.o.user }));
      child = h.spawn(this.smbdPath, [
        "--foreground",
        "--no-process-group",
        `--configfile=${conf}`,
        `--log-basename=${dir}`,
      ]);
      this.starts++;
      child.exited
        .then((e) => {
          exit = e;
        })
        .catch(internalErrors.handler("smbd exit"));
      const deadline = h.now() + this.startTimeoutMs;
      for (;;) {
        if (this.closed) throw new Error("usernet closed while smbd was starting");
        if (exit)
          throw new Error(`smbd exited (${describeExit(exit)}) before listening${await this.logTail(dir)}`);
        if (await h.probe(port)) break;
        if (h.now() >= deadline)
          throw new Error(`smbd did not listen on 127.0.0.1:${port} within ${this.startTimeoutMs} ms`);
        await h.sleep(this.pollMs);
      }
      const r: Running = { dir, port, child };
      this.running = r;
      this.o.log.info(`smbd started for smb=${this.o.shareDir}`, { pid: child.pid, port });
      child.exited.then((e) => this.exitedUnasked(r, e)).catch(internalErrors.handler("smbd exit"));
      return r;
    } catch (e) {
      this.o.log.error("smbd did not start", { error: e instanceof Error ? e.message : String(e) });
      if (child) await this.stop({ dir, port: 0, child });
      else await h.removeDir(dir).catch(() => undefined);
      throw e;
    }
  }

  private exitedUnasked(r: Running, e: SmbdExit): void {
    if (this.running !== r) return;
    this.running = undefined;
    this.current = undefined;
    this.o.log.warn(`smbd exited (${describeExit(e)}); the next connection starts it again`);
    void this.o.host.removeDir(r.dir).catch(() => undefined);
  }

  private async stop(r: Running): Promise<void> {
    const h = this.o.host;
    let done = false;
    const exited = r.child.exited.then(() => {
      done = true;
    });
    r.child.kill("SIGTERM");
    await Promise.race([exited, h.sleep(this.stopTimeoutMs)]);
    if (!done) {
      this.o.log.warn("smbd ignored SIGTERM; killing it", { pid: r.child.pid });
      r.child.kill("SIGKILL");
      await Promise.race([exited, h.sleep(this.stopTimeoutMs)]);
    }
    await h.removeDir(r.dir).catch((e: unknown) => {
      this.o.log.warn("cannot remove smbd's directory", { dir: r.dir, error: String(e) });
    });
  }

  private async logTail(dir: string): Promise<string> {
    const tail = (await this.o.host.readTail(`${dir}/log.smbd`, 600)).trim();
    return tail ? `; its log ends: ${tail.replace(/\s*\n\s*/g, " | ")}` : "";
  }
}

function describeExit(e: SmbdExit): string {
  return e.signal ? `signal ${e.signal}` : `code ${e.code}`;
}
