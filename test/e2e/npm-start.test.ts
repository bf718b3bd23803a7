/**
 * `npm start` — usernet with no arguments — is usable as printed and keeps other
 * local users out: it listens only on a unix socket in its private runtime directory
 * (no TCP listener at all), prints the QEMU command line that attaches a guest, and a
 * guest booted with the printed line (only kernel, initrd, accelerator and console
 * supplied by the harness) pings the gateway. Another user (`nobody`, through
 * setpriv) cannot connect to the hub socket (EACCES), and a runtime directory that
 * such a user made in our place stops usernet instead of being used.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { expectPing } from "./harness/ping.js";
import { describeE2E } from "./harness/prereqs.js";
import { run } from "./harness/proc.js";
import { guestNetworkArgs, qemuLines } from "./harness/qemu-cmdline.js";
import { e2eScope } from "./harness/scope.js";

const nobody = 65534;
const uid = process.getuid?.() ?? 0;

/** connects to a unix socket as `nobody`; resolves with "connected" or the errno name */
async function connectAsNobody(path: string): Promise<string> {
  const script =
    "import errno,socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n s.connect(sys.argv[1]); print('connected')\n" +
    "except OSError as e:\n print(errno.errorcode.get(e.errno, str(e.errno)))";
  const r = await run("setpriv", [
    `--reuid=${nobody}`,
    `--regid=${nobody}`,
    "--clear-groups",
    "--",
    "/usr/bin/python3",
    "-c",
    script,
    path,
  ]);
  return r.stdout.trim() || r.stderr.trim();
}

describeE2E(
  "npm start (no arguments)",
  ["root", "netns", "guest", "usernet"],
  () => {
    const e2e = e2eScope();

    test("the printed QEMU line boots a guest; another user cannot attach; no TCP listener", async () => {
      const ns = await e2e.netns();
      // no XDG_RUNTIME_DIR: the fallback under TMPDIR, in a directory others may enter
      const tmp = mkdtempSync(join(tmpdir(), "une2e-tmp-"));
      chmodSync(tmp, 0o755);
      e2e.defer(() => rmSync(tmp, { recursive: true, force: true }));
      const runtime = join(tmp, `usernet-${uid}`);
      const sock = join(runtime, "hub0.sock");
      const { XDG_RUNTIME_DIR: _, ...env } = process.env;
      const u = await e2e.usernet(ns, [], {
        env: { ...env, TMPDIR: tmp },
        ready: { unix: [sock], stdout: /^qemu-system-x86_64 /m },
      });

      const lines = qemuLines(u.stdout);
      expect(lines).toEqual([
        `qemu-system-x86_64 ... -netdev stream,id=net0,server=off,addr.type=unix,addr.path=${sock} -device virtio-net-pci,netdev=net0  # hub 0 via unix0`,
      ]);
      expect(statSync(runtime).mode & 0o7777).toBe(0o700);
      expect(statSync(sock).mode & 0o777).toBe(0o600);
      expect(statSync(join(runtime, "api.sock")).mode & 0o777).toBe(0o600);
      const listening = await ns.execOk("ss", ["-Hltn"]);
      expect(listening.trim()).toBe("");

      // another local user: the directory keeps it out of both sockets
      expect(await connectAsNobody(sock)).toBe("EACCES");
      expect(await connectAsNobody(join(runtime, "api.sock"))).toBe("EACCES");

      const line = lines[0] as string;
      const g = await e2e.guest(ns, {
        name: "printed line",
        rawArgs: guestNetworkArgs(line),
        ip: "10.0.2.15/24",
        gw: "10.0.2.2",
      });
      try {
        await expectPing(g, "10.0.2.2");
      } catch (e) {
        throw new Error(`${(e as Error).message}\nthe printed line was: ${line}`);
      }
      await g.close();
      expect(await u.close()).toEqual({ code: 0, signal: null });
    });

    test("a runtime directory another user made in our place stops start-up", async () => {
      const ns = await e2e.netns();
      const tmp = mkdtempSync(join(tmpdir(), "une2e-tmp-"));
      chmodSync(tmp, 0o1777);
      e2e.defer(() => rmSync(tmp, { recursive: true, force: true }));
      const runtime = join(tmp, `usernet-${uid}`);
      mkdirSync(runtime, { mode: 0o700 });
      chownSync(runtime, nobody, nobody);
      const { XDG_RUNTIME_DIR: _, ...env } = process.env;
      const u = await e2e.usernet(ns, [], { env: { ...env, TMPDIR: tmp } });
      const exit = await u.proc.waitExit(20_000);
      expect(exit).toEqual({ code: 1, signal: null });
      expect(u.stderr).toContain(
        `start-up failed: runtime directory ${runtime} is owned by uid ${nobody}, not by us (uid ${uid}); refusing`,
      );
    });
  },
  { timeoutMs: 180_000 },
);
