/**
 * The v86 browser-VM guest (test/e2e/v86/): Debian's 32-bit kernel and an i386 busybox
 * initramfs, booted by the v86 emulator from npm under Node (test/e2e/v86/run-v86.mjs)
 * with its NIC on a WebSocket. `describeV86` gates a suite like describeE2E, with the
 * v86 guest build (test/e2e/v86/build-v86-guest.sh: cached; the first run downloads
 * ~53 MB of i386 packages) as one more prerequisite.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "vitest";
import { describeE2E, e2eMode, missingNeeds, type Need, repoRoot } from "./prereqs.js";

export interface V86Image {
  kernel: string;
  initrd: string;
  bios: string;
  vgabios: string;
  kernelVersion: string;
}

export const v86Runner = join(repoRoot, "test/e2e/v86/run-v86.mjs");

let cached: { ok: true; image: V86Image } | { ok: false; reason: string } | undefined;

/** Builds (or finds cached) the v86 guest. Memoized per worker process. */
export function v86Image(): { ok: true; image: V86Image } | { ok: false; reason: string } {
  if (cached) return cached;
  if (!existsSync(join(repoRoot, "node_modules/v86/build/v86.wasm"))) {
    cached = { ok: false, reason: "the v86 package is not installed (npm ci)" };
    return cached;
  }
  const r = spawnSync("bash", [join(repoRoot, "test/e2e/v86/build-v86-guest.sh")], {
    encoding: "utf8",
    timeout: 900_000,
    stdio: ["ignore", "pipe", "pipe"],
  });
  if (r.status !== 0) {
    const tail = `${r.stderr ?? ""}`.trim().split("\n").slice(-3).join(" | ");
    cached = { ok: false, reason: `v86 guest build failed (exit ${r.status ?? r.signal}): ${tail}` };
    return cached;
  }
  const kv = new Map<string, string>();
  for (const line of r.stdout.split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) kv.set(line.slice(0, i), line.slice(i + 1));
  }
  const [kernel, initrd, bios, vgabios] = ["kernel", "initrd", "bios", "vgabios"].map((k) => kv.get(k));
  if (!kernel || !initrd || !bios || !vgabios) {
    cached = { ok: false, reason: `v86 guest build printed no kernel/initrd/bios: ${r.stdout.trim()}` };
    return cached;
  }
  cached = { ok: true, image: { kernel, initrd, bios, vgabios, kernelVersion: kv.get("kver") ?? "" } };
  return cached;
}

/** The image inside a describeV86 body (built by then); throws outside one. */
export function requireV86Image(): V86Image {
  const g = v86Image();
  if (!g.ok) throw new Error(g.reason);
  return g.image;
}

/** Why the browser test cannot run (chromium and playwright-core), or undefined. */
export function browserMissing(): string | undefined {
  if (!existsSync(chromiumPath)) return `no ${chromiumPath} (apt-get install chromium)`;
  if (!existsSync(join(repoRoot, "node_modules/playwright-core")))
    return "playwright-core is not installed (npm ci)";
  return undefined;
}

export const chromiumPath = "/usr/bin/chromium";
export const browserRunner = join(repoRoot, "test/e2e/v86/run-browser.mjs");
export const exampleServer = join(repoRoot, "examples/v86/serve.mjs");

/** describeE2E with the v86 guest (and, with `browser`, chromium) as more needs */
export function describeV86(
  name: string,
  needs: readonly Need[],
  fn: () => void,
  opts: { timeoutMs?: number; browser?: boolean } = {},
): void {
  const mode = e2eMode();
  // the guest is built only when the rest is there (and e2e tests are on at all)
  let reason: string | undefined;
  if (mode !== "off" && missingNeeds(needs).length === 0) {
    reason = opts.browser ? browserMissing() : undefined;
    if (reason === undefined) {
      const image = v86Image();
      if (!image.ok) reason = image.reason;
    }
  }
  if (reason === undefined) {
    describeE2E(name, needs, fn, opts);
    return;
  }
  const why = reason;
  if (mode === "required") {
    describe(name, () => {
      test("e2e prerequisites", () => {
        throw new Error(`USERNET_E2E=required but the prerequisites are missing: ${why}`);
      });
    });
  } else {
    process.stderr.write(`usernet e2e: skipping "${name}": ${why}\n`);
    describe.skip(`${name} [skipped: ${why}; set USERNET_E2E=required to fail instead]`, fn);
  }
}
