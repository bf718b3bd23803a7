#!/usr/bin/env node
/**
 * The `usernet` bin: runCli (run.ts) wired to the real process. The network itself is
 * loaded only when there is something to run, so --help and bad options stay fast.
 */
import { runCli } from "./run.js";
import { readVersion } from "./version.js";

const code = await runCli({
  argv: process.argv.slice(2),
  env: process.env,
  stdout: process.stdout,
  stderr: process.stderr,
  async start(config, log, options) {
    const { startUsernet } = await import("../usernet.js");
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
