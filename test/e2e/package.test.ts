/**
 * The npm package as a user gets it: `npm pack` ships dist/, the dashboard's page, the
 * native sources with binding.gyp, README.md and LICENSE, and nothing of the tests,
 * fixtures, benchmarks or TypeScript sources; `npm install -g ./usernet-*.tgz` into a fresh prefix builds the
 * addon at install and gives a `usernet` that runs; with no working C compiler
 * (CC=/bin/false) the install still succeeds and usernet runs without the addon,
 * saying so once.
 *
 * Everything runs in a test namespace with only `lo`: the dependencies come from a
 * registry on 127.0.0.1 made from the checkout's own node_modules
 * (harness/npm-registry.ts), npm's cache is a temp directory, and usernet runs in a
 * private mount namespace whose resolv.conf says `nameserver 127.0.0.1`.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import type { Netns } from "./harness/netns.js";
import { buildRegistryFiles, startRegistry } from "./harness/npm-registry.js";
import { describeE2E, repoRoot } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const registryPort = 18290;

describeE2E(
  "the npm package: pack, install -g into a fresh prefix, run",
  ["root", "netns", "usernet"],
  () => {
    const e2e = e2eScope();
    let dir = "";
    beforeAll(() => {
      dir = mkdtempSync(join(tmpdir(), "une2e-pkg-"));
      writeFileSync(join(dir, "resolv.conf"), "nameserver 127.0.0.1\n");
    });
    afterAll(() => {
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const sh = (host: Netns, script: string, timeoutMs = 300_000) =>
      host.exec("sh", ["-c", `${script} 2>&1`], timeoutMs);

    /** `npm install -g` of the tarball into PREFIX, the dependencies from the loopback registry */
    const install = (host: Netns, tgz: string, prefix: string, env = "") =>
      sh(
        host,
        `${env} npm install -g --prefix '${prefix}' --registry http://127.0.0.1:${registryPort}/ --cache '${dir}/cache'` +
          ` --no-audit --no-fund --no-update-notifier '${tgz}'; echo "npm-rc=$?"`,
      );

    /** Starts the installed usernet with its defaults; resolves with its stderr once it prints the attach lines. */
    async function runInstalled(host: Netns, prefix: string): Promise<string> {
      const runtime = mkdtempSync(join(dir, "run-"));
      const u = host.spawn(
        "installed-usernet",
        "unshare",
        [
          "-m",
          "--propagation",
          "private",
          "sh",
          "-c",
          `mount --bind '${dir}/resolv.conf' /etc/resolv.conf && exec '${prefix}/bin/usernet'`,
        ],
        { env: { ...process.env, XDG_RUNTIME_DIR: runtime } },
      );
      e2e.watch(u);
      await u.until("the attach lines", 30_000, () =>
        u.stdout.includes("attach a QEMU guest") ? true : undefined,
      );
      await u.kill(3000);
      return u.stderr;
    }

    test("npm pack, npm install -g with and without a compiler", async () => {
      const host = await e2e.netns();
      const packed = await sh(host, `cd '${repoRoot}' && npm pack --pack-destination '${dir}' --silent`);
      const tgz = join(dir, packed.stdout.trim().split("\n").pop() ?? "");
      expect(existsSync(tgz), packed.stdout).toBe(true);
      const list = (await host.execOk("tar", ["tzf", tgz])).split("\n").filter((l) => l !== "");
      for (const f of [
        "dist/cli/main.js",
        "dist/usernet.js",
        "native/tap.c",
        "native/util.h",
        "binding.gyp",
        "web/dashboard/index.html",
        "README.md",
        "LICENSE",
        "package.json",
      ])
        expect(list, f).toContain(`package/${f}`);
      expect(
        list.filter((f) => /^package\/(test|fixtures|bench|src|examples|node_modules|build)\//.test(f)),
      ).toEqual([]);
      expect(list.filter((f) => f.endsWith(".map") || f.endsWith(".ts"))).toEqual([]);

      const n = buildRegistryFiles(repoRoot, join(dir, "registry"), `http://127.0.0.1:${registryPort}`);
      expect(n).toBeGreaterThan(5);
      await startRegistry(host, join(dir, "registry"), registryPort);

      const withCc = await install(host, tgz, join(dir, "p1"));
      expect(withCc.stdout, withCc.stdout).toMatch(/npm-rc=0/);
      expect(existsSync(join(dir, "p1/lib/node_modules/usernet/build/Release/usernet_native.node"))).toBe(
        true,
      );
      expect((await host.execOk(join(dir, "p1/bin/usernet"), ["--version"])).trim()).toMatch(
        /^usernet \d+\.\d+\.\d+/,
      );
      expect(await runInstalled(host, join(dir, "p1"))).not.toMatch(/native addon/);

      const withoutCc = await install(host, tgz, join(dir, "p2"), "CC=/bin/false CXX=/bin/false");
      expect(withoutCc.stdout, withoutCc.stdout).toMatch(/npm-rc=0/);
      expect(existsSync(join(dir, "p2/lib/node_modules/usernet/build/Release/usernet_native.node"))).toBe(
        false,
      );
      const stderr = await runInstalled(host, join(dir, "p2"));
      expect(stderr.match(/running without the native addon/g), stderr).toHaveLength(1);
    });
  },
  { timeoutMs: 900_000 },
);
