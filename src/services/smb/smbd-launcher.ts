/**
 * The SMB service behind `smb=DIR`: Samba's smbd with a private configuration, one
 * process per guest connection, as QEMU does (QEMU's slirp runs smbd "inetd style"
 * for each connection to 10.0.2.4:445, with the connection as its stdin).
 *
 * Theory of operation
 * - Nothing listens. A guest connection makes one smbd whose stdin is one end of a
 *   connected socket (the host's job: src/proxy/smbd-host.ts); smbd sees a socket on
 *   stdin and no -D/-F, serves that one client, and exits when it leaves. So no other
 *   local user can reach smbd, nor the share it writes as the invoking user, which a
 *   loopback listener would have offered to everyone on the machine.
 * - `check()` runs at start-up when smb= is given: smbd must exist (else: install the
 *   `samba` package) and DIR must be a readable directory; either failure stops
 *   usernet with one line.
 * - The first connection makes the private directory (0700, the host's makePrivateDir)
 *   with the smb.conf (smb-conf.ts) and smbd's run subdirectories; every smbd of this
 *   netdev shares it (their tdb files and messaging sockets, as the children of one
 *   smbd daemon would). A failure there refuses the connection, and the next one tries
 *   again only after `retryAfterMs` (2 s), so a broken set-up is not redone per SYN.
 * - `open()` returns the host's handle on our end of the connection once smbd runs.
 *   At most `maxProcesses` (64) smbds at once; more connections are refused (RST) and
 *   counted. An smbd that exits with a failure is logged at warn with the end of its
 *   log file (at most once per `retryAfterMs`); a clean exit (the client left) is not.
 * - `close()`: SIGTERM to every smbd still running, SIGKILL after `stopTimeoutMs`
 *   (5 s), then the directory is removed. Only pids we started are signalled.
 * All process, file and socket work goes through `SmbdHost`, so the logic is tested
 * with a fake. Not done: more than one share, read-only shares, passwords.
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

/** Everything the launcher does to the host; C is the host's handle on our end of a connection. */
export interface SmbdHost<C> {
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
  /**
   * Runs `command` in its own session with one end of a new connection (that nobody
   * else can reach) as its stdin; resolves with the process and our end.
   */
  spawnOnConnection(command: string, args: readonly string[]): Promise<{ child: SmbdChild; connection: C }>;
  sleep(ms: number): Promise<void>;
  now(): number;
}

export interface SmbdLauncherOptions<C> {
  shareDir: string;
  /** the user files are accessed as (the invoking user) */
  user: string;
  host: SmbdHost<C>;
  log: Logger;
  smbdPath?: string;
  stopTimeoutMs?: number;
  retryAfterMs?: number;
  maxProcesses?: number;
}

export interface SmbdLauncherCounters {
  /** smbd processes started */
  started: number;
  /** connections refused: set-up failed, too many smbds, closing */
  refused: number;
  /** smbds that exited with a failure (not a clean end of their client) */
  failed: number;
}

export const defaultSmbdPath = "/usr/sbin/smbd";
export const defaultMaxSmbdProcesses = 64;

export class SmbdLauncher<C> {
  readonly counters: SmbdLauncherCounters = { started: 0, refused: 0, failed: 0 };
  private readonly smbdPath: string;
  private readonly stopTimeoutMs: number;
  private readonly retryAfterMs: number;
  private readonly maxProcesses: number;
  private readonly children = new Set<SmbdChild>();
  private dir: Promise<string> | undefined;
  private failedAt: { at: number; error: Error } | undefined;
  private lastFailureLog = Number.NEGATIVE_INFINITY;
  private closed = false;

  constructor(private readonly o: SmbdLauncherOptions<C>) {
    this.smbdPath = o.smbdPath ?? defaultSmbdPath;
    this.stopTimeoutMs = o.stopTimeoutMs ?? 5_000;
    this.retryAfterMs = o.retryAfterMs ?? 2_000;
    this.maxProcesses = o.maxProcesses ?? defaultMaxSmbdProcesses;
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

  /** smbd processes running now */
  get running(): number {
    return this.children.size;
  }

  /** A new smbd for one guest connection; resolves with our end of its connection. */
  async open(): Promise<C> {
    if (this.closed) return this.refuse(new Error("usernet is closing"));
    if (this.children.size >= this.maxProcesses) {
      return this.refuse(new Error(`${this.maxProcesses} smbd processes run already; connection refused`));
    }
    const dir = await this.prepare().catch((e: unknown) => this.refuse(e));
    if (this.closed) return this.refuse(new Error("usernet is closing"));
    const { child, connection } = await this.o.host.spawnOnConnection(this.smbdPath, [
      `--configfile=${dir}/smb.conf`,
      `--log-basename=${dir}`,
    ]);
    this.counters.started++;
    this.children.add(child);
    child.exited.then((e) => this.exited(child, e, dir)).catch(internalErrors.handler("smbd exit"));
    if (this.closed) {
      // close() ran while this one was being spawned: it did not see it
      child.kill("SIGKILL");
      return this.refuse(new Error("usernet is closing"));
    }
    return connection;
  }

  /** Stops every smbd and removes the directory. */
  async close(): Promise<void> {
    this.closed = true;
    const h = this.o.host;
    const children = [...this.children];
    const all = Promise.all(children.map((c) => c.exited));
    let done = false;
    void all.then(() => {
      done = true;
    });
    for (const c of children) c.kill("SIGTERM");
    await Promise.race([all, h.sleep(this.stopTimeoutMs)]);
    if (!done) {
      this.o.log.warn("smbd ignored SIGTERM; killing it", { pids: children.map((c) => c.pid) });
      for (const c of this.children) c.kill("SIGKILL");
      await Promise.race([all, h.sleep(this.stopTimeoutMs)]);
    }
    const dir = await this.dir?.catch(() => undefined);
    if (dir) {
      await h.removeDir(dir).catch((e: unknown) => {
        this.o.log.warn("cannot remove smbd's directory", { dir, error: String(e) });
      });
    }
  }

  private refuse(e: unknown): never {
    this.counters.refused++;
    throw e instanceof Error ? e : new Error(String(e));
  }

  /** The private directory with smb.conf, made once and shared by every smbd. */
  private prepare(): Promise<string> {
    if (this.dir) return this.dir;
    const failed = this.failedAt;
    if (failed && this.o.host.now() - failed.at < this.retryAfterMs) return Promise.reject(failed.error);
    this.dir = this.makeDir();
    this.dir.catch((e: unknown) => {
      this.failedAt = { at: this.o.host.now(), error: e instanceof Error ? e : new Error(String(e)) };
      this.dir = undefined;
    });
    return this.dir;
  }

  private async makeDir(): Promise<string> {
    const h = this.o.host;
    const dir = await h.makePrivateDir();
    try {
      for (const sub of smbRunSubdirs) await h.mkdir(`${dir}/${sub}`);
      await h.writeFile(
        `${dir}/smb.conf`,
        smbConf({ shareDir: this.o.shareDir, runDir: dir, user: this.o.user }),
      );
    } catch (e) {
      this.o.log.error("cannot prepare smbd's directory", {
        error: e instanceof Error ? e.message : String(e),
      });
      await h.removeDir(dir).catch(() => undefined);
      throw e;
    }
    this.o.log.info(`smbd directory ready for smb=${this.o.shareDir}`, { dir });
    return dir;
  }

  private async exited(child: SmbdChild, e: SmbdExit, dir: string): Promise<void> {
    this.children.delete(child);
    // an smbd whose client left exits 0, or by the SIGTERM it sends its own process group
    if (this.closed || e.code === 0 || e.signal === "SIGTERM") return;
    this.counters.failed++;
    const now = this.o.host.now();
    if (now - this.lastFailureLog < this.retryAfterMs) return;
    this.lastFailureLog = now;
    const tail = (await this.o.host.readTail(`${dir}/log.smbd`, 600)).trim();
    this.o.log.warn(
      `smbd exited (${describeExit(e)})${tail ? `; its log ends: ${tail.replace(/\s*\n\s*/g, " | ")}` : ""}`,
      {
        pid: child.pid,
      },
    );
  }
}

function describeExit(e: SmbdExit): string {
  return e.signal ? `signal ${e.signal}` : `code ${e.code}`;
}
