#!/usr/bin/env -S node --max-semi-space-size=4 --expose-gc
/**
 * The `usernet` bin: runCli (run.ts) wired to the real process. The network itself is
 * loaded only when there is something to run, so --help and bad options stay fast.
 * Podman runs `BINARY --help` before every container and then the drop-in, so both
 * skip what they do not use: a lone --help/-h/--version/-V loads only its text, and
 * `usernet slirp4netns ...` goes straight to the drop-in, without usernet's own
 * command-line parser (`bench/startup.mjs` measures both against slirp4netns).
 *
 * The V8 flags on the first line keep the young generation small: a stack turns over
 * short-lived objects per packet, and 4 MiB semi-spaces instead of 16 take ~35 MiB off
 * the peak RSS under load with no measurable loss of throughput (`npm run bench`);
 * --expose-gc lets src/frame-gc.ts scavenge dead frames every 8 MiB rather than every
 * 32 MiB (about 7 MiB off the peak under bulk TCP, no more CPU per GB).
 * `npm start` passes the same flags; the bench reads them from this line.
 */
import type { Config } from "../config.js";
import { internalErrors, type Logger } from "../log.js";
import type { StartOptions } from "./slirp4netns-run.js";
import { readVersion } from "./version.js";

// A bug must not vanish nor, on one flow's path, take every guest's network down:
// log.ts's InternalErrors logs it with its stack (once per place), counts it (API
// status, metrics) and the process goes on.
process.on("unhandledRejection", (err) => internalErrors.report("a promise nobody awaited", err));
process.on("uncaughtException", (err, origin) => internalErrors.report(origin, err));

const argv = process.argv.slice(2);

async function start(config: Config, log: Logger, options?: StartOptions) {
  const [{ startUsernet }, { nativeStatus }] = await Promise.all([
    import("../usernet.js"),
    import("../native/binding.js"),
  ]);
  // An install without a C compiler has no addon (package.json's install script goes
  // on without it): said once here, not at each use of a JS fallback.
  const native = nativeStatus();
  if (!native.available) log.warn(`running without the native addon: ${native.reason}`);
  return startUsernet(config, log, { version: readVersion(), ...options });
}

function onReload(handler: () => void) {
  process.on("SIGHUP", handler);
  return () => process.off("SIGHUP", handler);
}

function onSignal(handler: (signal: string) => void) {
  const on = (signal: NodeJS.Signals) => handler(signal);
  process.on("SIGINT", on);
  process.on("SIGTERM", on);
  return () => {
    process.off("SIGINT", on);
    process.off("SIGTERM", on);
  };
}

async function main(): Promise<number> {
  const io = { env: process.env, stdout: process.stdout, stderr: process.stderr, start, onSignal };
  const lone = argv.length === 1 ? argv[0] : undefined;
  if (lone === "--help" || lone === "-h") {
    const { usageText } = await import("./usage.js");
    process.stdout.write(usageText);
    return 0;
  }
  if (lone === "--version" || lone === "-V") {
    process.stdout.write(`usernet ${readVersion()}\n`);
    return 0;
  }
  if (argv[0] === "slirp4netns") {
    const { runSlirp4netns } = await import("./slirp4netns-run.js");
    return runSlirp4netns({ ...io, argv: argv.slice(1) });
  }
  const { runCli } = await import("./run.js");
  return runCli({ ...io, argv, onReload });
}

process.exit(await main());
