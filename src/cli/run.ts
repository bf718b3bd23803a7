/**
 * The `usernet` program around the parser, with its outside world injected so it can
 * be tested: parse argv; print help/version (exit 0) or `usernet: <message>` for a
 * UsageError (exit 2); otherwise start the network, print the QEMU attach lines, and
 * run until SIGINT or SIGTERM, then close and exit 0. A start-up failure (a port
 * already taken, ...) is logged as one line and exits 1, as is a failure to close. A
 * second signal while closing gives up waiting and exits 1.
 *
 * With the defaults (no -netdev), the sockets live in a private runtime directory:
 * XDG_RUNTIME_DIR is dropped from the environment first when it is not usable (with a
 * warning), and the directory is created and checked (runtime-dir.ts) before start-up;
 * a directory that is not ours alone stops usernet with exit status 1.
 *
 * Under systemd (src/systemd/): listening sockets passed by socket activation
 * (LISTEN_FDS) go to the listeners named after them; with NOTIFY_SOCKET, READY=1 is
 * sent once everything listens (and the sandbox is on), STOPPING=1 when a stop
 * begins. SIGHUP re-reads the command line's --config files and applies what can
 * change live (src/reload.ts), between RELOADING=1 and READY=1; a file that no longer
 * parses is logged and changes nothing. Reloads run one at a time.
 *
 * `usernet ctl ...` is the management API's client (ctl.ts).
 * `usernet slirp4netns ...` (first argument) is the slirp4netns drop-in instead, with
 * its own grammar (slirp4netns.ts, slirp4netns-run.ts).
 */
import type { Config } from "../config.js";
import { createLogger, hostFaults, internalErrors, type Logger } from "../log.js";
import { LogTail, type LogTailSource } from "../log-tail.js";
import type { ReloadReport } from "../reload.js";
import { ActivatedSockets, parseListenFds, unsetListenEnv } from "../systemd/activation.js";
import { createNotifier, type NotifySocketIo } from "../systemd/notify.js";
import { formatQemuAttachCommands } from "./attach.js";
import { defaultRuntimeDir } from "./defaults.js";
import { parseCommandLine } from "./parse.js";
import { nodeRuntimeDirFs, prepareRuntimeDir, type RuntimeDirFs, runtimeEnv } from "./runtime-dir.js";
import type { StartOptions } from "./slirp4netns-run.js";
import { type Confine, confineDefault, oneLine } from "./startup.js";
import { UsageError } from "./usage-error.js";

export interface Running {
  close(): Promise<void>;
  /** applies a re-read configuration (SIGHUP) */
  reload?(config: Config): Promise<ReloadReport>;
  /** the dashboard's URL with its token */
  readonly dashboardUrl?: string;
}

/** What the program hands the network at start beyond the configuration. */
export interface RunStartOptions extends StartOptions {
  activated?: ActivatedSockets;
  logTail?: LogTailSource;
}

export interface CliEnvironment {
  argv: string[];
  env: NodeJS.ProcessEnv;
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  readFile?: (path: string) => string;
  /** starts the network; src/usernet.ts's startUsernet in the real program */
  start(config: Config, log: Logger, options?: RunStartOptions): Promise<Running>;
  /** calls `handler` on SIGINT/SIGTERM; returns the unsubscribe function */
  onSignal(handler: (signal: string) => void): () => void;
  /** calls `handler` on SIGHUP; returns the unsubscribe function */
  onReload?(handler: () => void): () => void;
  /** our pid, for LISTEN_PID (process.pid) */
  pid?: number;
  /** NOTIFY_SOCKET's sender (the native addon in the real program) */
  notifyIo?: NotifySocketIo;
  /** defaults to src/log.ts's createLogger writing to stderr */
  logger?: (level: Config["logLevel"]) => Logger;
  /** --sandbox, once started: src/sandbox.ts's confineProcess in the real program; throws when it cannot */
  confine?: Confine;
  /** the runtime directory checks' file system (node:fs) and uid (process.getuid()) */
  runtimeDirFs?: RuntimeDirFs;
  uid?: number;
}

/** runs the program; resolves to the process exit status */
export async function runCli(io: CliEnvironment): Promise<number> {
  if (io.argv[0] === "ctl") {
    const { runCtl } = await import("./ctl.js");
    return runCtl({ ...io, argv: io.argv.slice(1) });
  }
  if (io.argv[0] === "slirp4netns") {
    const { runSlirp4netns } = await import("./slirp4netns-run.js");
    return runSlirp4netns({ ...io, argv: io.argv.slice(1) });
  }
  const uid = io.uid ?? process.getuid?.() ?? 0;
  const runtimeFs = io.runtimeDirFs ?? nodeRuntimeDirFs;
  const runtime = runtimeEnv(io.env, uid, runtimeFs);
  let parsed: ReturnType<typeof parseCommandLine>;
  try {
    parsed = parseCommandLine(io.argv, runtime.env, io.readFile, uid);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.stderr.write(`usernet: ${e.message}\n`);
    return 2;
  }
  if (parsed.action !== "run") {
    io.stdout.write(parsed.text);
    return 0;
  }
  const { config } = parsed;
  const logTail = new LogTail();
  const log = io.logger
    ? io.logger(config.logLevel)
    : createLogger(config.logLevel, logTail.tee(io.stderr), {}, config.logFormat ?? "text");
  // the process-wide counters' lines (bugs, host faults) in the same format too
  if (!io.logger && config.logFormat === "json") {
    internalErrors.setLogger(log);
    hostFaults.setLogger(log);
  }
  const listenFds = parseListenFds(io.env, io.pid ?? process.pid);
  unsetListenEnv(io.env);
  if (!listenFds.ok) {
    log.error(`start-up failed: socket activation: ${listenFds.problem}`);
    return 1;
  }
  const activated = listenFds.sockets.length > 0 ? new ActivatedSockets(listenFds.sockets) : undefined;
  if (activated) {
    log.info(`socket activation: ${listenFds.sockets.map((s) => `${s.name} (fd ${s.fd})`).join(", ")}`);
  }
  const notifier = createNotifier(io.env, log, io.notifyIo);
  if (parsed.runtimeDir !== undefined) {
    if (runtime.note) log.warn(runtime.note);
    try {
      prepareRuntimeDir(parsed.runtimeDir, uid, runtimeFs);
    } catch (e) {
      log.error(`start-up failed: ${oneLine(e)}`);
      return 1;
    }
  }

  // Subscribe before starting, so a signal during start-up is not the default kill.
  let stop!: (signal: string) => void;
  const stopped = new Promise<string>((resolve) => {
    stop = resolve;
  });
  let force!: () => void;
  const forced = new Promise<"forced">((resolve) => {
    force = () => resolve("forced");
  });
  let signals = 0;
  const unsubscribe = io.onSignal((signal) => {
    signals++;
    if (signals === 1) stop(signal);
    else force();
  });
  // subscribed before starting too: SIGHUP's default would end the process
  let reloadable: Running | undefined;
  let reloads = Promise.resolve();
  const unsubscribeReload = io.onReload?.(() => {
    const target = reloadable;
    if (!target?.reload || signals > 0) {
      log.warn("SIGHUP: not running yet (or stopping); nothing reloaded");
      return;
    }
    reloads = reloads.then(() => reload(target, io, runtime.env, uid, log, notifier));
  });
  try {
    let running: Running | "forced";
    try {
      running = await Promise.race([io.start(config, log, { activated, logTail }), forced]);
    } catch (e) {
      log.error(`start-up failed: ${oneLine(e)}`);
      return 1;
    }
    if (running === "forced") {
      log.error("stopped twice during start-up; exiting without closing");
      return 1;
    }
    if (config.sandbox) {
      try {
        const runtimeDir = parsed.runtimeDir ?? defaultRuntimeDir(runtime.env, uid);
        await (io.confine ?? confineDefault)(config, { seccomp: true, landlock: true }, log, runtimeDir);
      } catch (e) {
        log.error(`start-up failed: ${oneLine(e)}`);
        await running.close().catch((err: unknown) => log.error(`close failed: ${oneLine(err)}`));
        return 1;
      }
    }
    const lines = formatQemuAttachCommands(config);
    if (lines.length > 0) io.stdout.write(`# attach a QEMU guest with one of:\n${lines.join("\n")}\n`);
    if (running.dashboardUrl) io.stdout.write(`# dashboard: ${running.dashboardUrl}\n`);
    reloadable = running;
    notifier.ready(runningStatus(config));
    const signal = await stopped;
    notifier.stopping(`stopping (${signal})`);
    log.info(`${signal}: closing`);
    try {
      if ((await Promise.race([running.close(), forced])) === "forced") {
        log.error("second signal while closing; exiting without a clean close");
        return 1;
      }
    } catch (e) {
      log.error(`close failed: ${oneLine(e)}`);
      return 1;
    }
    return 0;
  } finally {
    unsubscribe();
    unsubscribeReload?.();
    notifier.close();
  }
}

/** systemd's STATUS= line while running. */
function runningStatus(config: Config): string {
  const hubs = new Set(config.netdevs.map((n) => n.hub)).size;
  return `running: ${config.netdevs.length} netdev(s) on ${hubs} hub(s)`;
}

/** SIGHUP: parse the command line (and its --config files) again and apply it. */
async function reload(
  running: Running,
  io: CliEnvironment,
  env: NodeJS.ProcessEnv,
  uid: number,
  log: Logger,
  notifier: ReturnType<typeof createNotifier>,
): Promise<void> {
  notifier.reloading("reloading the configuration");
  log.info("SIGHUP: reloading the configuration");
  let parsed: ReturnType<typeof parseCommandLine>;
  try {
    parsed = parseCommandLine(io.argv, env, io.readFile, uid);
  } catch (e) {
    const why = e instanceof UsageError ? e.message : oneLine(e);
    log.error(`reload: the configuration does not parse, nothing changed: ${why}`);
    notifier.ready(`running; the last reload failed: ${why}`);
    return;
  }
  if (parsed.action !== "run" || !running.reload) {
    notifier.ready("running");
    return;
  }
  try {
    const r = await running.reload(parsed.config);
    const failed = r.failed.length > 0 ? `, ${r.failed.length} failed` : "";
    notifier.ready(`${runningStatus(parsed.config)}; reloaded${failed}`);
  } catch (e) {
    log.error(`reload failed: ${oneLine(e)}`);
    notifier.ready(`running; the last reload failed: ${oneLine(e)}`);
  }
}
