/** QEMU's TAP scripts: real scripts in a temporary directory (no network involved). */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Logger } from "../../../src/log.js";
import { silentLogger } from "../../../src/log.js";
import { runNetworkScript } from "../../../src/ports/tap-script.js";

const dir = mkdtempSync(join(tmpdir(), "usernet-tap-script-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function script(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

function stateOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /s, "")[0] ?? "";
  } catch {
    return "gone";
  }
}

describe("runNetworkScript", () => {
  it("runs FILE IFNAME, and USERNET_NETNS names a TAP's other namespace", async () => {
    const out = join(dir, "args");
    const s = script("ok", `echo "$# $1 \${USERNET_NETNS:-none}" > ${out}`);
    expect(await runNetworkScript({ path: s }, "qtap0", { log: silentLogger })).toBe(true);
    expect(readFileSync(out, "utf8")).toBe("1 qtap0 none\n");
    await runNetworkScript({ path: s }, "ug0", { log: silentLogger, netns: "/run/netns/x" });
    expect(readFileSync(out, "utf8")).toBe("1 ug0 /run/netns/x\n");
  });

  it("fails naming the script and its status, quoting its last line, and logs what it said", async () => {
    const s = script("fail", "echo first; echo 'no such bridge' >&2; exit 3");
    const said: string[] = [];
    const log = { ...silentLogger, info: (m: string) => said.push(m) } as Logger;
    await expect(runNetworkScript({ path: s }, "tap0", { log })).rejects.toThrow(
      `network script ${s} failed with status 3: no such bridge`,
    );
    expect(said.join("\n")).toMatch(/first/);
  });

  it("a script that cannot run (missing, not executable) fails; a missing default is skipped", async () => {
    const missing = join(dir, "missing");
    await expect(runNetworkScript({ path: missing }, "tap0", { log: silentLogger })).rejects.toThrow(
      `network script ${missing} failed with status ENOENT (could not run it)`,
    );
    expect(await runNetworkScript({ path: missing, ifExists: true }, "tap0", { log: silentLogger })).toBe(
      false,
    );
    const plain = join(dir, "plain");
    writeFileSync(plain, "#!/bin/sh\n");
    await expect(runNetworkScript({ path: plain }, "tap0", { log: silentLogger })).rejects.toThrow(/EACCES/);
  });

  it("kills a script (and what it started) that outlives the time limit", async () => {
    const pidFile = join(dir, "child.pid");
    const s = script("slow", `sleep 30 & echo $! > ${pidFile}; wait`);
    const t0 = Date.now();
    await expect(
      runNetworkScript({ path: s }, "tap0", { log: silentLogger, timeoutMs: 300 }),
    ).rejects.toThrow("failed with status killed after 0.3 s (time limit)");
    expect(Date.now() - t0).toBeLessThan(10_000);
    const child = Number(readFileSync(pidFile, "utf8"));
    await new Promise((r) => setTimeout(r, 100));
    // gone, or a zombie waiting for whoever adopted it
    expect(stateOf(child)).toMatch(/^(gone|Z)$/);
  });
});
