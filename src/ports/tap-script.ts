/**
 * QEMU's TAP scripts (`-netdev tap,script=FILE,downscript=FILE`): the ifup script runs
 * once the device exists, the ifdown script before it goes away.
 *
 * Theory of operation
 * - `FILE IFNAME`, executed directly (no shell; the file needs its #! line and the x
 *   bit), as the user usernet runs as, in usernet's network namespace, with usernet's
 *   environment plus USERNET_NETNS (the netns= path) when the TAP lives in another
 *   namespace, so a script can `nsenter --net="$USERNET_NETNS"`. stdin is /dev/null;
 *   what the script prints is collected (the last 2 KiB) and logged, and a failure
 *   message quotes its last line.
 * - Failure: a non-zero exit, a signal or not starting at all (ENOENT, EACCES) is
 *   "network script FILE failed with status N" (QEMU's words): for the ifup script it
 *   fails the netdev (the TAP is closed again, start-up or the API call fails); for
 *   the ifdown script it is logged, and the device goes anyway.
 * - Bound: a script that runs longer than `timeoutMs` (30 s) is killed with its whole
 *   process group (it runs in a session of its own) and counts as failed. QEMU waits
 *   for ever; a service must not.
 * - Defaults (/etc/qemu-ifup, /etc/qemu-ifdown, `ifExists`) run only when the file
 *   exists: a missing default is not an error.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import type { NetworkScript } from "../config.js";
import type { Logger } from "../log.js";

export const defaultScriptTimeoutMs = 30_000;
const keepOutputBytes = 2048;

export interface ScriptRunOptions {
  /** the netns= path when the TAP is not in usernet's namespace */
  netns?: string | undefined;
  log: Logger;
  timeoutMs?: number;
}

/**
 * Runs `script.path ifname`; resolves when it exited 0 (or is a default that does not
 * exist: resolves false), rejects with an Error naming the script and its status.
 */
export async function runNetworkScript(
  script: NetworkScript,
  ifname: string,
  options: ScriptRunOptions,
): Promise<boolean> {
  if (script.ifExists && !existsSync(script.path)) return false;
  const timeoutMs = options.timeoutMs ?? defaultScriptTimeoutMs;
  const env = { ...process.env };
  if (options.netns !== undefined) env.USERNET_NETNS = options.netns;
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString("utf8")).slice(-keepOutputBytes);
  };
  const status = await new Promise<string | undefined>((resolve) => {
    let settled = false;
    const done = (s: string | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(s);
    };
    const child = spawn(script.path, [ifname], { env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    const timer = setTimeout(() => {
      killGroup(child.pid);
      done(`killed after ${timeoutMs / 1000} s (time limit)`);
    }, timeoutMs);
    child.on("error", (e: NodeJS.ErrnoException) => done(`${e.code ?? e.message} (could not run it)`));
    // "close", not "exit": the output is complete then
    child.on("close", (code, signal) => {
      if (code === 0) done(undefined);
      else done(signal ? `killed by ${signal}` : String(code));
    });
  });
  const lines = output.trimEnd();
  if (lines !== "") options.log.info(`network script ${script.path} ${ifname} said: ${lines}`);
  if (status === undefined) return true;
  const last = lines.split("\n").at(-1);
  throw new Error(
    `network script ${script.path} failed with status ${status}${last ? `: ${last.slice(0, 200)}` : ""}`,
  );
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // gone already
  }
}
