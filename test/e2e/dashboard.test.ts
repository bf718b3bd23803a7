/**
 * The dashboard in a real browser: Debian's chromium driven by playwright-core
 * (executablePath; playwright never downloads a browser here), inside the test's
 * namespace through a wrapper (`ip netns exec NS chromium "$@"`), against usernet with
 * `--dashboard` and a QEMU guest. Checked in the page as a user sees it: the guest's
 * port appears on hub 0, its DHCP lease (busybox udhcpc) shows, a forward added with
 * the page's form answers curl on the namespace's loopback (busybox httpd in the
 * guest), the guest's port counters move while it downloads 32 MiB (busybox wget
 * from a server on the namespace's loopback, the guest's 10.0.2.2), the flow table's
 * filters find a connection the guest holds open (busybox nc), the forward is
 * removed from the page, and the capture button saves a pcap that tshark reads.
 * The page without its token gets nothing. Screenshots go to
 * test-artifacts/dashboard/ (gitignored).
 *
 * CI needs the `chromium` and `tshark` Debian packages; without them this suite fails
 * when USERNET_E2E=required and is skipped otherwise.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { expect, test } from "vitest";
import { udhcpc } from "./harness/dhcp-clients.js";
import { listeningNetdev, usernetConnectArgs } from "./harness/guest-server.js";
import { NatServers } from "./harness/nat-servers.js";
import { describeE2E, e2eMode, repoRoot } from "./harness/prereqs.js";
import { run } from "./harness/proc.js";
import { e2eScope } from "./harness/scope.js";
import { waitTcpEstablished } from "./harness/sockets.js";

const chromiumPath = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find(
  (p) => spawnSync(p, ["--version"], { stdio: "ignore" }).status === 0,
);
const hasTshark = spawnSync("tshark", ["-v"], { stdio: "ignore" }).status === 0;
const dashboardPort = 18188;
const guestPort = 11010;
const fwdPort = 18301;
const natPorts = { http: 18091, echo: 18092, udp: 18093 };
const artifacts = join(repoRoot, "test-artifacts", "dashboard");

describeE2E(
  "dashboard in chromium (playwright-core)",
  ["root", "netns", "guest", "usernet"],
  () => {
    const e2e = e2eScope();

    test.skipIf((!chromiumPath || !hasTshark) && e2eMode() !== "required")(
      "the guest, its lease, a forward added and removed, live counters, a pcap from the capture button",
      async () => {
        if (!chromiumPath) throw new Error("chromium is missing (apt-get install chromium)");
        if (!hasTshark) throw new Error("tshark is missing (apt-get install tshark)");
        mkdirSync(artifacts, { recursive: true });
        const dir = mkdtempSync(join(tmpdir(), "une2e-dash-"));
        e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
        const ns = await e2e.netns();
        const nat = await NatServers.start(ns, ["127.0.0.1"], natPorts, { blobMib: 32 });
        e2e.defer(() => nat.close());
        const g = await e2e.guest(ns, {
          name: "g",
          netdev: listeningNetdev(guestPort),
          nic: "virtio-net-pci",
        });
        const u = await e2e.usernet(
          ns,
          [
            "-netdev",
            "user,id=u0,dns-upstream=127.0.0.1:5353",
            ...usernetConnectArgs([guestPort]),
            "--dashboard",
            `127.0.0.1:${dashboardPort}`,
          ],
          { ready: { stdout: /^# dashboard: / } },
        );
        await waitTcpEstablished(ns, guestPort, 20_000);
        const url = /^# dashboard: (\S+)$/m.exec(u.stdout)?.[1] ?? "";
        expect(url).toMatch(
          new RegExp(`^http://127\\.0\\.0\\.1:${dashboardPort}/\\?token=[A-Za-z0-9_-]{32}$`),
        );

        // without the token: nothing but a hint
        const bare = await ns.exec("curl", [
          "-sS",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          `http://127.0.0.1:${dashboardPort}/`,
        ]);
        expect(bare.stdout).toBe("401");
        const events = await ns.exec("curl", [
          "-sS",
          "-o",
          "/dev/null",
          "-w",
          "%{http_code}",
          `http://127.0.0.1:${dashboardPort}/v1/events`,
        ]);
        expect(events.stdout).toBe("401");

        const wrapper = join(dir, "chromium-in-netns");
        writeFileSync(wrapper, `#!/bin/sh\nexec ip netns exec ${ns.name} ${chromiumPath} "$@"\n`);
        chmodSync(wrapper, 0o755);
        const browser = await chromium.launch({
          executablePath: wrapper,
          args: ["--disable-gpu"],
          timeout: 60_000,
        });
        e2e.defer(() => browser.close());
        const context = await browser.newContext({
          acceptDownloads: true,
          viewport: { width: 1400, height: 1600 },
        });
        const page = await context.newPage();
        await page.goto(url);
        // the token leaves the address bar; the stream is live
        await page.waitForSelector("#live.on", { timeout: 20_000 });
        expect(page.url()).toBe(`http://127.0.0.1:${dashboardPort}/`);

        // the guest's port is on hub 0 beside the user network
        await page.waitForSelector('.hub[data-hub="0"] .port[data-port="g0"]', { timeout: 20_000 });
        await page.waitForSelector('.hub[data-hub="0"] .port[data-port="u0"]');

        // its lease shows once udhcpc has one
        const lease = await udhcpc(g);
        expect(lease.ip).toBe("10.0.2.15");
        await page.waitForSelector(
          '.network[data-netdev="u0"] tr.lease:has-text("10.0.2.15"):has-text("bound")',
          {
            timeout: 10_000,
          },
        );
        // and the guest's port says which guest it carries
        await page.waitForSelector(
          '.port[data-port="g0"] .guests:has-text("10.0.2.15 (52:54:00:12:34:56)")',
          {
            timeout: 10_000,
          },
        );
        await page.screenshot({ path: join(artifacts, "1-guest-and-lease.png"), fullPage: true });

        // a forward added in the page answers on the host
        await g.runOk(
          "mkdir -p /tmp/www && echo from-the-dashboard > /tmp/www/index.html && httpd -p 80 -h /tmp/www",
        );
        await page.fill("#fw-host-port", String(fwdPort));
        await page.fill("#fw-guest-port", "80");
        await page.click("#fw-add");
        await page.waitForSelector(`#forwards tr.forward:has-text("127.0.0.1:${fwdPort}")`, {
          timeout: 10_000,
        });
        const got = await ns.exec("curl", ["-sS", "--max-time", "10", `http://127.0.0.1:${fwdPort}/`]);
        expect(got.stdout, got.stderr).toBe("from-the-dashboard\n");

        // a connection held open to the echo server, for the flow table's filters
        await g.runOk(`(sleep 120 | nc 10.0.2.2 ${natPorts.echo} >/dev/null) &`);
        // counters move while the guest downloads
        const download = g.run(
          `ok=0; for i in 1 2 3; do wget -q -O /dev/null http://10.0.2.2:${natPorts.http}/blob && ok=$((ok+1)); done; echo wget-ok=$ok`,
          { timeoutMs: 180_000 },
        );
        // the page's own text, read in the browser (a function: the page's CSP forbids eval of strings)
        const moving = await page.waitForFunction(
          () => {
            type Doc = { querySelector(s: string): { textContent: string | null } | null };
            const doc = (globalThis as unknown as { document: Doc }).document;
            const t = doc.querySelector('.port[data-port="g0"] .tx-bps')?.textContent ?? "";
            return /(KiB|MiB|GiB)\/s/.test(t) ? t : false;
          },
          undefined,
          { timeout: 60_000, polling: 200 },
        );
        const seen = (await moving.jsonValue()) as string;
        await page.screenshot({ path: join(artifacts, "2-download-counters.png"), fullPage: true });
        expect((await download).output).toContain("wget-ok=3");
        expect(seen).toMatch(/\/s/);

        // the held connection, found by the filters (sorted by age), gone under another protocol
        await page.fill("#flow-dest", `10.0.2.2:${natPorts.echo}`);
        await page.fill("#flow-guest", "10.0.2.15");
        await page.selectOption("#flow-proto", "tcp");
        await page.selectOption("#flow-sort", "age");
        await page.waitForSelector(
          `#flows tr.flow:has-text("10.0.2.15"):has-text("10.0.2.2:${natPorts.echo}")`,
        );
        expect(await page.locator("#flows tr.flow").count()).toBe(1);
        await page.screenshot({ path: join(artifacts, "3-flow-filter.png"), fullPage: true });
        await page.selectOption("#flow-proto", "udp");
        await page.waitForSelector("#flows tr.flow", { state: "detached" });
        await page.fill("#flow-dest", "");
        await page.fill("#flow-guest", "");
        await page.selectOption("#flow-proto", "");

        // the capture button: a pcap of 4 s with the guest's pings in it
        await page.fill("#cap-seconds", "4");
        const [saved] = await Promise.all([
          page.waitForEvent("download", { timeout: 30_000 }),
          page.click("#cap-start"),
          g.run("ping -c 3 10.0.2.2", { timeoutMs: 20_000 }),
        ]);
        const pcap = join(artifacts, "capture.pcap");
        await saved.saveAs(pcap);
        expect(saved.suggestedFilename()).toMatch(/^usernet-hub0-.*\.pcap$/);
        const tshark = await run("tshark", ["-n", "-r", pcap, "-Y", "icmp"]);
        expect(tshark.code, tshark.stderr).toBe(0);
        expect(tshark.stdout).toMatch(/10\.0\.2\.15 → 10\.0\.2\.2 +ICMP .*Echo \(ping\) request/);

        // remove the forward from the page: the port closes
        await page.click(`#forwards tr.forward:has-text("127.0.0.1:${fwdPort}") button.remove`);
        await page.waitForSelector(`#forwards tr.forward:has-text("127.0.0.1:${fwdPort}")`, {
          state: "detached",
          timeout: 10_000,
        });
        const after = await ns.exec("curl", ["-sS", "--max-time", "5", `http://127.0.0.1:${fwdPort}/`]);
        expect(after.code).not.toBe(0);

        // the log pane has the forward's lines
        await page.waitForSelector(`#log:has-text("removed forward tcp 127.0.0.1:${fwdPort}")`, {
          timeout: 10_000,
        });
        await page.screenshot({ path: join(artifacts, "4-after.png"), fullPage: true });
      },
    );
  },
  { timeoutMs: 300_000 },
);
