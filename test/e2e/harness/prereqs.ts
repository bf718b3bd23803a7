/**
 * Whether end-to-end tests run, and what they need.
 *
 * USERNET_E2E decides what a missing prerequisite means:
 *   - "required": the suite FAILS with a message naming what is missing (CI sets this);
 *   - unset / "auto": the suite is skipped, the reason in its name;
 *   - "off" / "0": every e2e suite is skipped.
 *
 * Prerequisites are checked synchronously at collection time, so a suite is either
 * declared normally or replaced by a skip/fail stub. That includes the guest build
 * (test/e2e/guest/build-guest.sh): cached and fast after the first run; the first run
 * downloads a Debian kernel (~70 MB) and probes KVM, which can take a minute. Both
 * vitest workers may call it at once; the script serializes itself with flock.
 */
import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, test } from "vitest";

export type E2eMode = "required" | "auto" | "off";

/** Things a suite can need. */
export type Need =
  /** uid 0: netns, mounts */
  | "root"
  /** ip and ss (iproute2), unshare, mount and setpriv (util-linux) */
  | "netns"
  /** qemu-system-x86_64 */
  | "qemu"
  /** the guest kernel + initramfs (implies qemu) */
  | "guest"
  /** /dev/net/tun (TAP tests) */
  | "tun"
  /** the built CLI (npx tsc -p tsconfig.json) */
  | "usernet";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

export function e2eMode(env: NodeJS.ProcessEnv = process.env): E2eMode {
  const v = (env.USERNET_E2E ?? "").trim().toLowerCase();
  if (v === "required" || v === "require" || v === "1" || v === "on") return "required";
  if (v === "off" || v === "0" || v === "no" || v === "skip") return "off";
  return "auto";
}

export interface GuestImage {
  kernel: string;
  initrd: string;
  /** the same initramfs plus dig and its libraries (a second, large archive) */
  initrdDig?: string;
  kernelVersion: string;
  accel: "tcg" | "kvm";
}

function onPath(bin: string): boolean {
  const dirs = (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":");
  for (const d of [...dirs, "/usr/sbin", "/sbin"]) {
    try {
      accessSync(join(d, bin), constants.X_OK);
      return true;
    } catch {
      // try the next directory
    }
  }
  return false;
}

/** The CLI entry point; tsc's rootDir decides whether it lands in dist/ or dist/src/. */
export function usernetMain(): string | undefined {
  for (const p of ["dist/cli/main.js", "dist/src/cli/main.js"]) {
    const full = join(repoRoot, p);
    if (existsSync(full)) return full;
  }
  return undefined;
}

let guestCache: { ok: true; image: GuestImage } | { ok: false; reason: string } | undefined;

/** Builds (or finds cached) the guest image. Memoized per worker process. */
export function guestImage(): { ok: true; image: GuestImage } | { ok: false; reason: string } {
  if (guestCache) return guestCache;
  const script = join(repoRoot, "test/e2e/guest/build-guest.sh");
  const r = spawnSync("bash", [script], {
    encoding: "utf8",
    timeout: 900_000,
    stdio: ["ignore", "pipe", "pipe"],
    maxBuffer: 16 * 1024 * 1024,
  });
  if (r.status !== 0) {
    const tail = `${r.stderr ?? ""}`.trim().split("\n").slice(-5).join(" | ");
    guestCache = {
      ok: false,
      reason: `guest build failed (${r.error ? r.error.message : `exit ${r.status ?? r.signal}`}): ${tail}`,
    };
    return guestCache;
  }
  const kv = new Map<string, string>();
  for (const line of r.stdout.split("\n")) {
    const i = line.indexOf("=");
    if (i > 0) kv.set(line.slice(0, i), line.slice(i + 1));
  }
  const kernel = kv.get("kernel");
  const initrd = kv.get("initrd");
  const accel = kv.get("accel");
  if (!kernel || !initrd || (accel !== "tcg" && accel !== "kvm")) {
    guestCache = { ok: false, reason: `guest build printed no kernel/initrd/accel: ${r.stdout.trim()}` };
    return guestCache;
  }
  const initrdDig = kv.get("initrd_dig");
  guestCache = {
    ok: true,
    image: {
      kernel,
      initrd,
      accel,
      kernelVersion: kv.get("kver") ?? "",
      ...(initrdDig ? { initrdDig } : {}),
    },
  };
  return guestCache;
}

/** Returns why each need is not met; empty when all are. */
export function missingNeeds(needs: readonly Need[]): string[] {
  const missing: string[] = [];
  const want = new Set(needs);
  if (want.has("guest")) want.add("qemu");
  if (want.has("root") && process.getuid?.() !== 0) missing.push("not root");
  if (want.has("netns")) {
    for (const bin of ["ip", "unshare", "mount", "ss", "setpriv"]) {
      if (!onPath(bin)) missing.push(`no '${bin}' on PATH`);
    }
  }
  if (want.has("qemu") && !onPath("qemu-system-x86_64"))
    missing.push("no qemu-system-x86_64 (apt-get install qemu-system-x86)");
  if (want.has("tun")) {
    try {
      accessSync("/dev/net/tun", constants.R_OK | constants.W_OK);
    } catch {
      missing.push("/dev/net/tun is not usable");
    }
  }
  if (want.has("usernet") && !usernetMain())
    missing.push("dist/cli/main.js missing (run npx tsc -p tsconfig.json)");
  // The guest build is slow the first time: only attempt it when the rest is there.
  if (want.has("guest") && missing.length === 0) {
    const g = guestImage();
    if (!g.ok) missing.push(g.reason);
  }
  return missing;
}

/**
 * `describe`, gated on the e2e mode and the needs. When something is missing the suite
 * is skipped (auto) or replaced by one failing test (required).
 */
export function describeE2E(
  name: string,
  needs: readonly Need[],
  fn: () => void,
  opts: { timeoutMs?: number } = {},
): void {
  // Guests boot in seconds under TCG, slower when both workers boot at once.
  const suite = { timeout: opts.timeoutMs ?? 120_000 };
  const mode = e2eMode();
  if (mode === "off") {
    describe.skip(`${name} [skipped: USERNET_E2E=off]`, fn);
    return;
  }
  const missing = missingNeeds(needs);
  if (missing.length === 0) {
    describe(name, suite, fn);
    return;
  }
  const reason = missing.join("; ");
  if (mode === "required") {
    describe(name, () => {
      test("e2e prerequisites", () => {
        throw new Error(`USERNET_E2E=required but the prerequisites are missing: ${reason}`);
      });
    });
  } else {
    process.stderr.write(
      `usernet e2e: skipping "${name}": ${reason} (USERNET_E2E=required makes this fail)\n`,
    );
    describe.skip(`${name} [skipped: ${reason}; set USERNET_E2E=required to fail instead]`, fn);
  }
}

/** The guest image for tests inside describeE2E(…, ["guest"], …); throws outside one. */
export function requireGuestImage(): GuestImage {
  const g = guestImage();
  if (!g.ok) throw new Error(g.reason);
  return g.image;
}

const traceOn = /^(1|on|yes|true)$/i.test(process.env.USERNET_E2E_TRACE ?? "");
const traceStart = Date.now();

/** With USERNET_E2E_TRACE=1, prints a timestamped progress line to stderr (for slow CI runs). */
export function trace(msg: string): void {
  if (traceOn)
    process.stderr.write(`[e2e ${process.pid} +${((Date.now() - traceStart) / 1000).toFixed(1)}s] ${msg}\n`);
}
