// Child processes for the benchmark: the e2e harness's Proc, run and runOk (one
// implementation: captured output, bounded waits, kill by pid), and the CPU time and
// memory of a process read from /proc.
import { readFileSync } from "node:fs";

export { Proc, run, runOk } from "../../test/e2e/harness/child-process.mjs";

/** CPU seconds (user + system) of a live process, from /proc/PID/stat. */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // the command name can hold spaces and parentheses: fields start after the last ')'
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
  return ticks / 100; // USER_HZ is 100 on Linux
}

/** VmRSS and VmHWM (peak) in KiB, from /proc/PID/status. */
export function memoryKiB(pid) {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const get = (k) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? Number.NaN);
  return { rss: get("VmRSS"), hwm: get("VmHWM") };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
