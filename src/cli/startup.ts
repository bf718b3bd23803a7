/**
 * What both start-up paths (usernet's own, cli/run.ts, and the slirp4netns drop-in,
 * cli/slirp4netns-run.ts) share: the sandbox step once everything is open, and errors
 * as one log line.
 */
import type { Config } from "../config.js";
import type { Logger } from "../log.js";

/** Confines the process (src/sandbox.ts's confineProcess in the real program); throws when it cannot. */
export type Confine = (
  config: Config,
  want: { seccomp: boolean; landlock: boolean },
  log: Logger,
  runtimeDir?: string,
) => void | Promise<void>;

export const confineDefault: Confine = async (config, want, log, runtimeDir) => {
  const { confineProcess } = await import("../sandbox.js");
  confineProcess(config, want, log, runtimeDir === undefined ? {} : { runtimeDir });
};

/** An error's message on one line, for the log. */
export const oneLine = (e: unknown): string =>
  (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, " ");
