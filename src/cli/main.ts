#!/usr/bin/env -S node --max-semi-space-size=4 --expose-gc
/**
 * The `usernet` bin: runCli (run.ts) wired to the real process. The network itself is
 * loaded only when there is something to run, so --help and bad options stay fast.
 *
 * The V8 flags on the first line keep the young generation small: a stack turns over
 * short-lived objects per packet, and 4 MiB semi-spaces instead of 16 take ~35 MiB off
 * the peak RSS under load with no measurable loss of throughput (`npm run bench`);
 * --expose-gc lets src/frame-gc.ts scavenge dead frames every 8 MiB rather than every
 * 32 MiB (about 7 MiB off the peak under bulk TCP, no more CPU per GB).
 * `npm start` passes the same flags; the bench reads them from this line.
 */
import { internalErrors } from "../log.js";
import { runCli } from "./run.js";
import { readVersion } from "./version.js";

// A bug must not vanish nor, on one flow's path, take every guest's network down:
// log.ts's InternalErrors logs it with its stack (once per place), counts it (API
// status, metrics) and the process goes on.
process.on("unhandledRejection", (err) => internalErrors.report("a promise nobody awaited", err));
process.on("uncaughtException", (err, origin) => internalErrors.report(origin, err));

const code = await runCli({
  argv: process.argv.slice(2),
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  async start(config, log, options) {
    const [{ startUsernet }, { nativeStatus }] = await Promise.all([
      import("../usernet.js"),
      import("../native/binding.js"),
    ]);
    // An install without a C compiler has no addon (package.json's install script goes
    // on without it): said once here, not at each use of a JS fallback.
    const native = nativeStatus();
    if (!native.available) log.warn(`running without the native addon: ${native.reason}`);
    return startUsernet(config, log, { version: readVersion(), ...options });
  },
  onSignal(handler) {
    const on = (signal: NodeJS.Signals) => handler(signal);
    process.on("SIGINT", on);
    process.on("SIGTERM", on);
    return () => {
      process.off("SIGINT", on);
      process.off("SIGTERM", on);
    };
  },
});
process.exit(code);
