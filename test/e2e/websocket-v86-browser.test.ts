/**
 * The browser example (examples/v86) for real: Debian's chromium, headless and driven
 * by playwright-core (test/e2e/v86/run-browser.mjs), loads the page from
 * examples/v86/serve.mjs; v86 runs in the page and its NIC reaches usernet's
 * websocket port from the browser, Origin header and all.
 *
 * Everything runs in the test's namespace (usernet, busybox httpd, the page server,
 * chromium). Checked: a page from an origin that is not allowed (localhost instead of
 * 127.0.0.1: another origin to a browser) is refused with its origin named in the log;
 * the allowed page's guest gets its lease, pings the gateway and fetches a file with
 * the right sha256.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { e2eScope } from "./harness/scope.js";
import { browserRunner, chromiumPath, describeV86, exampleServer, requireV86Image } from "./harness/v86.js";

const httpPort = 18090;
const wsPort = 18091;
const pagePort = 18092;

describeV86(
  "examples/v86 in chromium (playwright-core) on a websocket port",
  ["root", "netns", "usernet"],
  () => {
    const e2e = e2eScope();

    test("another origin is refused; the allowed page's guest gets DHCP, pings and downloads", async () => {
      const image = requireV86Image();
      const ns = await e2e.netns();
      const dir = mkdtempSync(join(tmpdir(), "une2e-v86b-"));
      e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
      const file = randomBytes(64 * 1024);
      writeFileSync(join(dir, "file.bin"), file);
      const sha = createHash("sha256").update(file).digest("hex");
      const httpd = ns.spawn("httpd", "busybox", ["httpd", "-f", "-p", `127.0.0.1:${httpPort}`, "-h", dir]);
      e2e.watch(httpd);
      const page = `http://127.0.0.1:${pagePort}`;
      const u = await e2e.usernet(
        ns,
        [
          "-netdev",
          "user,id=u0,dns-upstream=127.0.0.1:5353",
          "-netdev",
          `websocket,id=ws0,listen=127.0.0.1:${wsPort},origin=${page}`,
        ],
        { ready: { tcp: [wsPort] } },
      );
      const serve = ns.spawn("serve", process.execPath, [
        exampleServer,
        "--kernel",
        image.kernel,
        "--initrd",
        image.initrd,
        "--bios",
        image.bios,
        "--vgabios",
        image.vgabios,
        "--port",
        String(pagePort),
      ]);
      e2e.watch(serve);
      await serve.until("the page server", 10_000, () =>
        serve.stdout.includes("serving") ? true : undefined,
      );
      const relay = `ws://127.0.0.1:${wsPort}/`;

      // A script on the same page from http://localhost:PORT (another origin to a
      // browser) cannot open the port; from the allowed origin it can.
      const probe = async (origin: string) => {
        const p = ns.spawn("chromium-probe", process.execPath, [
          browserRunner,
          "--chromium",
          chromiumPath,
          "--url",
          `${origin}/?relay=ws://127.0.0.1:1/`,
          "--probe",
          relay,
        ]);
        e2e.watch(p);
        await p.waitExit(120_000);
        return /probe: (\w+)/.exec(p.stdout)?.[1];
      };
      expect(await probe(`http://localhost:${pagePort}`)).toBe("refused");
      expect(u.stderr).toContain(`upgrade refused: a page from http://localhost:${pagePort} is not allowed`);
      expect(await probe(page)).toBe("open");
      expect(u.stderr).toMatch(new RegExp(`client connected netdev=ws0 port=ws0#1 .*\\(${page}\\)`));

      const cmdline = `usernet.ping=10.0.2.2 usernet.fetch=http://10.0.2.2:${httpPort}/file.bin`;
      const browser = ns.spawn("chromium", process.execPath, [
        browserRunner,
        "--chromium",
        chromiumPath,
        "--url",
        `${page}/?relay=${encodeURIComponent(relay)}&cmdline=${encodeURIComponent(cmdline)}`,
        "--timeout",
        "400",
      ]);
      e2e.watch(browser);
      const status = await browser.waitExit(420_000);
      const out = browser.stdout;
      expect(status, out).toMatchObject({ code: 0 });
      expect(out).toMatch(
        /udhcpc-lease: event=bound ip=10\.0\.2\.15 mask=24 .*router=10\.0\.2\.2 dns=10\.0\.2\.3/,
      );
      expect(out).toMatch(/V86-PING ok/);
      expect(out).toContain(`V86-FETCH sha256=${sha} bytes=${file.length}`);
      expect(u.stderr).toMatch(new RegExp(`client connected netdev=ws0 port=ws0#2 .*\\(${page}\\)`));
    });
  },
  { timeoutMs: 600_000, browser: true },
);
