/**
 * `npm start` — usernet with no arguments — is usable as printed: it listens on
 * 127.0.0.1:8010 and on $XDG_RUNTIME_DIR/usernet/hub0.sock, prints the QEMU command
 * lines to attach a guest, and a guest booted with each printed line (only kernel,
 * initrd, accelerator and console supplied by the harness) pings the gateway.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { expectPing } from "./harness/ping.js";
import { describeE2E } from "./harness/prereqs.js";
import { guestNetworkArgs, qemuLines } from "./harness/qemu-cmdline.js";
import { e2eScope } from "./harness/scope.js";

describeE2E(
  "npm start (no arguments)",
  ["root", "netns", "guest", "usernet"],
  () => {
    const e2e = e2eScope();

    test("every printed QEMU command line boots a guest that reaches 10.0.2.2", async () => {
      const ns = await e2e.netns();
      const runtime = mkdtempSync(join(tmpdir(), "une2e-xdg-"));
      e2e.defer(() => rmSync(runtime, { recursive: true, force: true }));
      const sock = join(runtime, "usernet", "hub0.sock");
      const u = await e2e.usernet(ns, [], {
        env: { ...process.env, XDG_RUNTIME_DIR: runtime },
        ready: { tcp: [8010], unix: [sock], stdout: /^qemu-system-x86_64 /m },
      });

      const lines = qemuLines(u.stdout);
      // The stream listener in both QEMU spellings, and the unix socket.
      expect(lines.some((l) => /addr\.port=8010\b/.test(l))).toBe(true);
      expect(lines.some((l) => /connect=127\.0\.0\.1:8010\b/.test(l))).toBe(true);
      expect(lines.some((l) => l.includes(`addr.path=${sock}`))).toBe(true);

      for (const [i, line] of lines.entries()) {
        const g = await e2e.guest(ns, {
          name: `printed line ${i + 1}`,
          rawArgs: guestNetworkArgs(line),
          ip: "10.0.2.15/24",
          gw: "10.0.2.2",
        });
        try {
          await expectPing(g, "10.0.2.2");
        } catch (e) {
          throw new Error(`${(e as Error).message}\nthe printed line was: ${line}`);
        }
        // One guest at a time: they all use QEMU's default MAC.
        await g.close();
      }
      expect(await u.close()).toEqual({ code: 0, signal: null });
    });
  },
  { timeoutMs: 180_000 },
);
