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
 * `usernet ctl ...` is the management API's client (ctl.ts).
 * `usernet slirp4netns ...` (first argument) is the slirp4netns drop-in instead, with
 * its own grammar (slirp4netns.ts, slirp4netns-run.ts).
 */
import type { Config } from "../config.js";
import { createLogger, hostFaults, internalErrors, type Logger } from "../log.js";
import { formatQemuAttachCommands } from "./attach.js";
import { defaultRuntimeDir } from "./defaults.js";
import { parseCommandLine } from "./parse.js";
import { nodeRuntimeDirFs, prepareRuntimeDir, type RuntimeDirFs, runtimeEnv } from "./runtime-dir.js";
import type { StartOptions } from "./slirp4netns-run.js";
import { type Confine, confineDefault, oneLine } from "./startup.js";
import { UsageError } from "./usage-error.js";

export interface Running {
  close(): Promise<void>;
}

export interface CliEnvironment {
  argv: string[];
  env: NodeJS.ProcessEnv;
  stdout: { write(s: string): unknown };
  stderr: { write(s: string): unknown };
  readFile?: (path: string) => string;
  /** starts the network; src/usernet.ts's startUsernet in the real program */
  start(config: Config, log: Logger, options?: StartOptions): Promise<Running>;
  /** calls `handler` on SIGINT/SIGTERM; returns the unsubscribe function */
  onSignal(handler: (signal: string) => void): () => void;
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
  const log = io.logger
    ? io.logger(config.logLevel)
    : createLogger(config.logLevel, io.stderr, {}, config.logFormat ?? "text");
  // the process-wide counters' lines (bugs, host faults) in the same format too
  if (!io.logger && config.logFormat === "json") {
    internalErrors.setLogger(log);
    hostFaults.setLogger(log);
  }
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
  try {
    let running: Running | "forced";
    try {
      running = await Promise.race([io.start(config, log), forced]);
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
    const signal = await stopped;
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
  }
}
