/**
 * Runs `usernet slirp4netns` (parsing and the Config are in slirp4netns.ts): start the
 * network with a TAP inside the target namespace, configure it (--configure), tell
 * the parent (--ready-fd), then wait for SIGINT/SIGTERM, --exit-fd, or the TAP's end.
 *
 * The outside world is injected (a Slirp4netnsEnvironment) so tests can run it with
 * fakes: starting the network, running `ip` in the namespace, the fds.
 * Exit status: 0 after a clean stop, 1 when start-up or configuration fails (one
 * line on stderr), 2 on a bad command line.
 */
import { spawn } from "node:child_process";
import { closeSync, createReadStream, statSync, writeSync } from "node:fs";
import type { Config } from "../config.js";
import { createLogger, internalErrors, type Logger } from "../log.js";
import type { NativeError } from "../native/binding.js";
import type { ForwardsFacade } from "../usernet.js";
import {
  configureCommands,
  configureSysctls6,
  namespacePaths,
  parseSlirp4netnsArgs,
  type Slirp4netnsCommand,
  slirp4netnsAddresses,
  slirp4netnsConfig,
  slirp4netnsNetdevIds,
} from "./slirp4netns.js";
import { type Confine, confineDefault, oneLine } from "./startup.js";
import { UsageError } from "./usage-error.js";
import { readVersion } from "./version.js";

export interface Running {
  /** runtime port forwards (src/usernet.ts's facade); --api-socket needs them */
  readonly forwards?: ForwardsFacade;
  close(): Promise<void>;
}

export interface StartOptions {
  onTapFailure?: (netdevId: string, err: NativeError) => void;
}

export interface Slirp4netnsEnvironment {
  /** the arguments after "slirp4netns" */
  argv: string[];
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  start(config: Config, log: Logger, options: StartOptions): Promise<Running>;
  onSignal(handler: (signal: string) => void): () => void;
  logger?: (level: Config["logLevel"]) => Logger;
  version?: string;
  /** runs `ip -batch` lines inside the namespace; rejects with the reason */
  configure?: (ns: { netns: string; userns: string | undefined }, lines: string[]) => Promise<void>;
  /** writes kernel settings (paths under /proc/sys) inside the namespace; rejects with the reason */
  sysctls?: (
    ns: { netns: string; userns: string | undefined },
    settings: [string, string][],
  ) => Promise<void>;
  /** whether a user namespace path is the one this process is in already */
  isOwnUserNs?: (path: string) => boolean;
  /** writes "1" to the fd and closes it */
  signalReady?: (fd: number) => void;
  /** calls onExit once when the fd becomes readable or hangs up; returns a canceller */
  watchExitFd?: (fd: number, onExit: () => void) => () => void;
  /** calls onGone once when the target process has exited; returns a canceller */
  watchPid?: (pid: number, onGone: () => void) => () => void;
  /** --enable-sandbox/--enable-seccomp: src/sandbox.ts's confineProcess in the real program; throws when it cannot */
  confine?: Confine;
}

export async function runSlirp4netns(io: Slirp4netnsEnvironment): Promise<number> {
  const version = io.version ?? readVersion();
  let cmd: Slirp4netnsCommand;
  try {
    cmd = parseSlirp4netnsArgs(io.argv, version);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.stderr.write(`usernet slirp4netns: ${e.message}\n`);
    return 2;
  }
  if (cmd.action !== "run") {
    io.stdout.write(cmd.text);
    return 0;
  }
  const o = cmd.options;
  const log = (io.logger ?? ((lvl) => createLogger(lvl, io.stderr)))("info").child({ mode: "slirp4netns" });

  const paths = namespacePaths(o);
  const isOwn = io.isOwnUserNs ?? isOwnUserNamespace;
  const ns = { netns: paths.netns, userns: paths.userns && !isOwn(paths.userns) ? paths.userns : undefined };
  const config = slirp4netnsConfig(o, ns);

  let stop!: (why: string) => void;
  const stopped = new Promise<string>((resolve) => {
    stop = resolve;
  });
  const unsubscribe = io.onSignal((signal) => stop(signal));
  const cancels: (() => void)[] = [];
  const closers: (() => Promise<void>)[] = [];
  let running: Running | undefined;
  try {
    if (o.netnsType === "pid") {
      const pid = Number(o.target);
      cancels.push((io.watchPid ?? watchPid)(pid, () => stop(`target process ${pid} exited`)));
    }
    if (o.exitFd !== undefined) {
      cancels.push((io.watchExitFd ?? watchExitFd)(o.exitFd, () => stop(`exit-fd ${o.exitFd} closed`)));
    }
    try {
      running = await io.start(config, log, {
        onTapFailure: (_id, err) => stop(`TAP ${o.tapName} stopped (${err.code ?? err.message})`),
      });
      if (o.configure) {
        await configureIpv6(io, ns, configureSysctls6(o), log);
        await (io.configure ?? configureInNamespace)(ns, configureCommands(o));
      }
      if (o.apiSocket !== undefined) {
        if (!running.forwards) throw new Error("--api-socket: this network has no runtime port forwards");
        const { startSlirp4netnsApi } = await import("../api/slirp4netns-api.js");
        const api = await startSlirp4netnsApi(o.apiSocket, running.forwards, {
          defaultGuestAddr: slirp4netnsAddresses(o).guest,
          netdev: slirp4netnsNetdevIds.user,
          log: log.child({ component: "slirp4netns-api" }),
          internalError: (where, err) => internalErrors.report(where, err),
        });
        closers.push(() => api.close());
      }
      if (o.sandbox || o.seccomp)
        await (io.confine ?? confineDefault)(config, { seccomp: o.seccomp, landlock: o.sandbox }, log);
    } catch (e) {
      log.error(`start-up failed: ${oneLine(e)}`);
      return 1;
    }
    log.info(
      `slirp4netns drop-in ready: ${o.tapName} in ${ns.netns}, MTU ${o.mtu}, network ${o.net}/${o.prefixLength}`,
    );
    if (o.readyFd !== undefined) {
      try {
        (io.signalReady ?? signalReady)(o.readyFd);
      } catch (e) {
        log.warn(`cannot write to --ready-fd ${o.readyFd}: ${oneLine(e)}`);
      }
    }
    const why = await stopped;
    log.info(`${why}: closing`);
    return 0;
  } finally {
    for (const c of cancels) c();
    unsubscribe();
    for (const c of closers) await c().catch((e) => log.error(`close failed: ${oneLine(e)}`));
    if (running) {
      try {
        await running.close();
      } catch (e) {
        log.error(`close failed: ${oneLine(e)}`);
      }
    }
  }
}

/**
 * --configure with -6: the kernel settings before the TAP comes up. Best effort: a
 * namespace without IPv6 (or a kernel that refuses) keeps DAD and still works, later.
 */
async function configureIpv6(
  io: Slirp4netnsEnvironment,
  ns: { netns: string; userns: string | undefined },
  settings: [string, string][],
  log: Logger,
): Promise<void> {
  if (settings.length === 0) return;
  try {
    await (io.sysctls ?? sysctlsInNamespace)(ns, settings);
  } catch (e) {
    log.warn(`--configure: IPv6 settings not applied: ${oneLine(e)}`);
  }
}

/** `nsenter ... sh -c 'printf %s VALUE > /proc/sys/PATH'`, one per setting, 15 s at most each. */
export async function sysctlsInNamespace(
  ns: { netns: string; userns: string | undefined },
  settings: [string, string][],
): Promise<void> {
  for (const [path, value] of settings) {
    const args = [`--net=${ns.netns}`];
    if (ns.userns !== undefined) args.push(`--user=${ns.userns}`, "--preserve-credentials");
    args.push("--", "sh", "-c", 'printf %s "$2" > "/proc/sys/$1"', "sh", path, value);
    await new Promise<void>((resolve, reject) => {
      const child = spawn("nsenter", args, { stdio: ["ignore", "ignore", "pipe"] });
      let err = "";
      child.stderr.setEncoding("utf8");
      child.stderr.on("data", (s: string) => {
        if (err.length < 4096) err += s;
      });
      const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      child.on("error", (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot run nsenter: ${e.message}`));
      });
      child.on("exit", (code, signal) => {
        clearTimeout(timer);
        if (code === 0) resolve();
        else reject(new Error(`${path}=${value} failed (${signal ?? `code ${code}`}): ${err.trim()}`));
      });
    });
  }
}

/** nsenter's identity: same device and inode as /proc/self/ns/user */
export function isOwnUserNamespace(path: string): boolean {
  try {
    const a = statSync(path);
    const b = statSync("/proc/self/ns/user");
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}

/** `nsenter --net=NS [--user=US --preserve-credentials] ip -batch -`, 15 s at most */
export function configureInNamespace(
  ns: { netns: string; userns: string | undefined },
  lines: string[],
): Promise<void> {
  const args = [`--net=${ns.netns}`];
  // keep our uid: rootless, it is root inside (and setgroups is often denied there)
  if (ns.userns !== undefined) args.push(`--user=${ns.userns}`, "--preserve-credentials");
  args.push("--", "ip", "-batch", "-");
  return new Promise((resolve, reject) => {
    const child = spawn("nsenter", args, { stdio: ["pipe", "ignore", "pipe"] });
    let err = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (s: string) => {
      if (err.length < 4096) err += s;
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`--configure: cannot run nsenter: ${e.message}`));
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else
        reject(
          new Error(
            `--configure: nsenter ${args.join(" ")} failed (${signal ?? `code ${code}`}): ${err.trim()}`,
          ),
        );
    });
    child.stdin.on("error", () => {});
    child.stdin.end(`${lines.join("\n")}\n`);
  });
}

function signalReady(fd: number): void {
  try {
    writeSync(fd, "1");
  } finally {
    closeSync(fd);
  }
}

/**
 * Polls once a second: gone when the pid no longer exists or now has another network
 * namespace (the pid was reused; not seen once Landlock hides the pid's namespace). Our TAP holds a reference on the namespace, so the
 * TAP itself never notices that the process that owned it is gone.
 */
function watchPid(pid: number, onGone: () => void): () => void {
  const nsOf = (): number | "denied" | undefined => {
    try {
      return statSync(`/proc/${pid}/ns/net`).ino;
    } catch (e) {
      // under Landlock (--enable-sandbox) another process's /proc/PID/ns is out of
      // reach: then only whether the pid exists can be asked (signal 0)
      return (e as NodeJS.ErrnoException).code === "EACCES" ? "denied" : undefined;
    }
  };
  const exists = () => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === "EPERM";
    }
  };
  const first = nsOf();
  const timer = setInterval(() => {
    let now = nsOf();
    if (now === "denied") now = exists() ? first : undefined;
    if (now === undefined || now !== first) {
      clearInterval(timer);
      onGone();
    }
  }, 1000);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * A pipe fd: any data, EOF or error means "exit". (fs streams read it on libuv's
 * thread pool, which keeps one of its threads waiting; a net.Socket would not, but
 * sockets belong to ports/ and proxy/.)
 */
function watchExitFd(fd: number, onExit: () => void): () => void {
  const s = createReadStream("", { fd, autoClose: true, highWaterMark: 64 });
  let fired = false;
  const fire = () => {
    if (fired) return;
    fired = true;
    onExit();
  };
  s.on("data", fire);
  s.on("end", fire);
  s.on("close", fire);
  s.on("error", fire);
  return () => {
    fired = true;
    s.destroy();
  };
}
