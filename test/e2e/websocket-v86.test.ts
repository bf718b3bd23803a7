/**
 * `-netdev websocket` with a real browser-VM client: the v86 emulator (npm package
 * v86, run under Node by test/e2e/v86/run-v86.mjs) boots Debian's 32-bit kernel with a
 * busybox initramfs; its NE2000 NIC talks to usernet over a WebSocket in raw framing
 * (one frame per message: v86's relay protocol).
 *
 * Everything runs in the test's namespace: usernet (its API on a unix socket), busybox
 * httpd on the namespace's loopback, v86. The websocket port is added at run time with
 * `usernet ctl ports add` and demands a token (given as ?token=, as a browser would);
 * a hub capture runs meanwhile. The guest's /init (test/e2e/v86/init) takes a DHCP
 * lease, pings the gateway and fetches a file through it; the test checks each step,
 * the port's counters in the API, the guest's frames in the pcap, and that the port
 * goes away with the connection.
 *
 * v86 under Node is slow (tens of seconds to boot under load): one boot serves all.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { usernetMain } from "./harness/prereqs.js";
import { run } from "./harness/proc.js";
import { e2eScope } from "./harness/scope.js";
import { describeV86, requireV86Image, v86Runner } from "./harness/v86.js";

const httpPort = 18080;
const wsPort = 18081;

describeV86(
  "WebSocket port with the v86 emulator (Debian i386 kernel, busybox)",
  ["root", "netns", "usernet"],
  () => {
    const e2e = e2eScope();

    test("DHCP, ping and a download over a runtime-added websocket port; counters and capture", async () => {
      const image = requireV86Image();
      const main = usernetMain() as string;
      const ns = await e2e.netns();
      const dir = mkdtempSync(join(tmpdir(), "une2e-v86-"));
      e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
      const file = randomBytes(256 * 1024);
      writeFileSync(join(dir, "file.bin"), file);
      const sha = createHash("sha256").update(file).digest("hex");
      const token = randomBytes(16).toString("hex");
      writeFileSync(join(dir, "ws.token"), `${token}\n`, { mode: 0o600 });

      const httpd = ns.spawn("httpd", "busybox", ["httpd", "-f", "-p", `127.0.0.1:${httpPort}`, "-h", dir]);
      e2e.watch(httpd);
      const api = join(dir, "api.sock");
      const u = await e2e.usernet(ns, ["--api", api, "-netdev", "user,id=u0,dns-upstream=127.0.0.1:5353"], {
        ready: { unix: [api] },
      });
      const ctl = (...args: string[]) => ns.execOk(process.execPath, [main, "ctl", "--api", api, ...args]);

      // runtime attach, as a user would: the -netdev grammar through the API
      const added = await ctl(
        "ports",
        "add",
        `websocket,id=ws0,listen=127.0.0.1:${wsPort},path=/net,token-file=${join(dir, "ws.token")}`,
      );
      expect(added).toMatch(/added ws0 \(websocket\): listening on ws:\/\/127\.0\.0\.1:18081\/net/);

      const pcap = join(dir, "hub0.pcap");
      const capture = ns.spawn("capture", process.execPath, [
        main,
        "ctl",
        "--api",
        api,
        "capture",
        "0",
        pcap,
      ]);
      e2e.watch(capture);

      const v86 = ns.spawn("v86", process.execPath, [
        v86Runner,
        "--kernel",
        image.kernel,
        "--initrd",
        image.initrd,
        "--bios",
        image.bios,
        "--vgabios",
        image.vgabios,
        "--relay",
        `ws://127.0.0.1:${wsPort}/net?token=${token}`,
        "--cmdline",
        `usernet.ping=10.0.2.2 usernet.fetch=http://10.0.2.2:${httpPort}/file.bin`,
        "--timeout",
        "400",
        "--hold",
      ]);
      e2e.watch(v86);
      await v86.until("the guest's V86-DONE", 420_000, () =>
        v86.stdout.includes("run-v86: holding") ? true : undefined,
      );
      const out = v86.stdout;
      const mac = /V86-LINK mac=([0-9a-f:]{17})/.exec(out)?.[1];
      expect(mac, out).toBeDefined();
      expect(out).toMatch(
        /udhcpc-lease: event=bound ip=10\.0\.2\.15 mask=24 .*router=10\.0\.2\.2 dns=10\.0\.2\.3/,
      );
      expect(out).toMatch(/V86-ADDR 10\.0\.2\.15\/24/);
      expect(out).toMatch(/V86-PING ok/);
      expect(out).toContain(`V86-FETCH sha256=${sha} bytes=${file.length}`);

      // the connection is a hub port with counters, named after the netdev
      const status = JSON.parse(await ctl("--json", "status")) as {
        ports: {
          name: string;
          kind: string;
          netdev: string;
          stats: { rxFrames: number; txFrames: number };
        }[];
        netdevs: { id: string; kind: string; description: string }[];
      };
      const port = status.ports.find((p) => p.name === "ws0#1");
      expect(port).toMatchObject({ kind: "websocket", netdev: "ws0" });
      // 256 KiB at most 1514 bytes a frame: at least 174 frames to the guest
      expect(port?.stats.txFrames).toBeGreaterThan(174);
      expect(port?.stats.rxFrames).toBeGreaterThan(10);
      expect(status.netdevs.find((n) => n.id === "ws0")?.description).toMatch(/1 client/);
      expect(u.stderr).toMatch(/client connected netdev=ws0 port=ws0#1/);

      // the guest's frames are on the hub's capture
      await capture.kill();
      const tshark = await run("tshark", ["-r", pcap, "-Y", "dhcp", "-T", "fields", "-e", "eth.src"], 60_000);
      expect(tshark.stdout.split("\n")).toContain(mac);

      // the port goes when its connection does
      await v86.kill();
      for (let i = 0; i < 50; i++) {
        if (!(await ctl("status")).includes("ws0#1")) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await ctl("status")).not.toContain("ws0#1");
    });
  },
  { timeoutMs: 600_000 },
);
