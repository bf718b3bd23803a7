/**
 * Short versions of `npm run fuzz` and `npm run soak` (test/fuzz/), so both scripts
 * stay working: the fuzz for 20 s with a fixed seed against the built stack, the soak
 * for 5,000 connections through `usernet slirp4netns` in a namespace of its own. Each
 * script does its own checking and exits non-zero on any failure; the test passes on
 * exit 0 and prints the script's report.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { expect, test } from "vitest";
import { describeE2E, repoRoot } from "./harness/prereqs.js";

function run(script: string, args: string[], timeoutMs: number): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(repoRoot, "test/fuzz", script), ...args],
      { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
        resolve({ code, out: `${stdout}${stderr}` });
      },
    );
  });
}

describeE2E(
  "fuzz and soak, short versions",
  ["usernet"],
  () => {
    test("20 s of random and mutated frames at a user network (seed 1): nothing escapes, no hang, heap bounded", async () => {
      const r = await run("fuzz.mjs", ["--seconds", "20", "--seed", "1", "--quiet"], 90_000);
      process.stderr.write(`${r.out.slice(-3000)}\n`);
      expect(r.out).toMatch(/"framesThrown": [1-9]/);
      expect(r.code, r.out.slice(-6000)).toBe(0);
      expect(r.out).toContain("fuzz: ok");
    });
  },
  { timeoutMs: 120_000 },
);

describeE2E(
  "soak, short version",
  ["root", "netns", "tun", "usernet"],
  () => {
    test("5,000 short connections, UDP flows, DHCP renewals and DNS: none lost, fds back, RSS bounded", async () => {
      const r = await run("soak.mjs", ["--connections", "5000", "--udp-flows-per-round", "5"], 240_000);
      process.stderr.write(`${r.out.slice(-3000)}\n`);
      expect(r.code, r.out.slice(-6000)).toBe(0);
      expect(r.out).toMatch(/"tcp": 5000,/);
      expect(r.out).toContain("soak: ok");
    });
  },
  { timeoutMs: 300_000 },
);
