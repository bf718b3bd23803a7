/**
 * VDE ports with real clients: Debian's vde2 (`vde_switch`, `vde_plug`) and QEMU's own
 * `-netdev vde` (libvdeplug).
 *
 * - A QEMU guest on a vde_switch that usernet joined (`-netdev vde,sock=DIR`) gets a
 *   lease from busybox udhcpc and fetches a file through the NAT from an HTTP server
 *   on the namespace's loopback (the guest's 10.0.2.2); usernet's port counts frames
 *   both ways.
 * - A QEMU guest pointed at usernet's own listener (`-netdev vde,listen=DIR`, no
 *   vde_switch running) does the same, while a `vde_plug` whose output nobody reads
 *   sits on the same hub: its port drops what it cannot take ("tx-queue-full") and the
 *   guest's 2 MiB download still arrives whole (sha256). A capture taken through
 *   `usernet ctl capture` holds the guest's DHCP. A second listener is added at run
 *   time with `usernet ctl ports add` and takes a `vde_plug`, then is removed.
 *
 * vde_switch's and vde_plug's sockets are pathname unix sockets: they work across
 * network namespaces, so only usernet and the guest run inside the test's namespace.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { udhcpc } from "./harness/dhcp-clients.js";
import { describeE2E, e2eMode, usernetMain } from "./harness/prereqs.js";
import { run } from "./harness/proc.js";
import { e2eScope } from "./harness/scope.js";

const hasVde = spawnSync("vde_switch", ["-v"], { stdio: "ignore" }).status === 0;
const httpPort = 18093;
const started = /^# attach a QEMU guest/m;
const blobBytes = 2 * 1024 * 1024;

// a deterministic 2 MiB body, and its sha256 printed for the test
const httpServer = `
const crypto = require("node:crypto");
const blob = Buffer.alloc(${blobBytes});
for (let i = 0; i < blob.length; i += 32) crypto.createHash("sha256").update(String(i)).digest().copy(blob, i);
require("node:http").createServer((q, s) => {
  if (q.url === "/blob") s.end(blob); else s.end("hello over vde\\n");
}).listen(${httpPort}, "127.0.0.1", () => console.log("HTTP-READY " + crypto.createHash("sha256").update(blob).digest("hex")));
`;

async function waitFor(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describeE2E(
  "VDE ports: vde_switch, vde_plug and QEMU -netdev vde",
  ["root", "netns", "guest", "usernet"],
  () => {
    const e2e = e2eScope();
    const needVde = () => {
      if (!hasVde) throw new Error("vde_switch is missing (apt-get install vde2)");
    };

    async function setUp(label: string) {
      needVde();
      const dir = mkdtempSync(join(tmpdir(), `une2e-vde-${label}-`));
      e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
      const ns = await e2e.netns();
      const http = ns.spawn("http", process.execPath, ["-e", httpServer]);
      const sha = await http.until(
        "the HTTP server",
        20_000,
        () => /HTTP-READY (\w+)/.exec(http.stdout)?.[1],
      );
      const api = join(dir, "api.sock");
      const ctl = (...args: string[]) =>
        run(process.execPath, [usernetMain() as string, "ctl", "--api", api, ...args], 20_000);
      return { dir, ns, sha, api, ctl };
    }

    /** a client (vde_plug) killed, by pid, after the test */
    function plug(path: string): ChildProcess {
      const p = spawn("vde_plug", [path], { stdio: ["pipe", "pipe", "pipe"] });
      e2e.defer(() => {
        if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
      });
      return p;
    }

    test.skipIf(!hasVde && e2eMode() !== "required")(
      "-netdev vde,sock= joins a vde_switch: a QEMU guest on that switch gets DHCP and fetches through the NAT",
      async () => {
        const { dir, ns, api, ctl } = await setUp("join");
        const sw = join(dir, "switch");
        // stdin stays open: vde_switch ends its console (and itself) at EOF
        const vs = ns.spawn("vde_switch", "vde_switch", ["-s", sw], { stdin: "pipe" });
        e2e.watch(vs);
        await waitFor("the switch's ctl socket", () => existsSync(join(sw, "ctl")));

        await e2e.usernet(
          ns,
          [
            "--api",
            api,
            "-netdev",
            "user,id=u0,dns-upstream=127.0.0.1:5353",
            "-netdev",
            `vde,id=v0,sock=${sw}`,
          ],
          { ready: { stdout: started, unix: [api] } },
        );
        const g = await e2e.guest(ns, { name: "g", netdev: `vde,id=n0,sock=${sw}`, nic: "virtio-net-pci" });

        const lease = await udhcpc(g);
        expect(lease.ip).toBe("10.0.2.15");
        expect(lease.router).toBe("10.0.2.2");
        const page = await g.runOk(`wget -q -O - http://10.0.2.2:${httpPort}/`);
        expect(page).toContain("hello over vde");

        const status = JSON.parse((await ctl("--json", "status")).stdout);
        const port = status.ports.find((p: { name: string }) => p.name === "v0");
        expect(port.kind).toBe("vde");
        expect(port.stats.rxFrames).toBeGreaterThan(5);
        expect(port.stats.txFrames).toBeGreaterThan(5);
        expect(port.description).toContain(sw);
      },
    );

    test.skipIf(!hasVde && e2eMode() !== "required")(
      "-netdev vde,listen= is the switch: a QEMU guest gets DHCP and a 2 MiB fetch beside a vde_plug that never reads; ctl adds and removes a listener",
      async () => {
        const { dir, ns, sha, api, ctl } = await setUp("listen");
        const sw = join(dir, "usernet-switch");
        await e2e.usernet(
          ns,
          [
            "--api",
            api,
            "-netdev",
            "user,id=u0,dns-upstream=127.0.0.1:5353",
            "-netdev",
            `vde,id=v0,listen=${sw}`,
          ],
          { ready: { stdout: started, unix: [api, join(sw, "ctl")] } },
        );
        expect((spawnSync("stat", ["-c", "%a", join(sw, "ctl")]).stdout ?? "").toString().trim()).toBe("600");

        // a client that never reads: its frames pile up in vde_plug's stdout pipe
        const stuck = plug(sw);
        const ports = async () =>
          JSON.parse((await ctl("--json", "status")).stdout).ports as {
            name: string;
            kind: string;
            stats: { rxFrames: number; txFrames: number; drops: Record<string, number> };
          }[];
        const deadline = Date.now() + 10_000;
        while (!(await ports()).some((p) => p.name === "v0#1") && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 200));

        // a pcap of the hub from before the guest boots, stopped after 6 frames
        const pcap = join(dir, "hub0.pcap");
        const capture = ctl("capture", "0", pcap, "--count", "6", "--seconds", "120");

        const g = await e2e.guest(ns, { name: "g", netdev: `vde,id=n0,sock=${sw}`, nic: "e1000" });
        const lease = await udhcpc(g);
        expect(lease.ip).toBe("10.0.2.15");
        expect(await g.runOk(`wget -q -O - http://10.0.2.2:${httpPort}/`)).toContain("hello over vde");
        const sum = await g.runOk(`wget -q -O - http://10.0.2.2:${httpPort}/blob | sha256sum`, {
          timeoutMs: 120_000,
        });
        expect(sum.trim().split(/\s+/)[0]).toBe(sha);

        const cap = await capture;
        expect(cap.code, cap.stderr).toBe(0);
        // the DHCP magic cookie of the guest's DISCOVER, as it crossed the hub
        expect(readFileSync(pcap).includes(Buffer.from([0x63, 0x82, 0x53, 0x63]))).toBe(true);

        const after = await ports();
        const guestPort = after.find((p) => p.name === "v0#2");
        const stuckPort = after.find((p) => p.name === "v0#1");
        expect(guestPort?.kind).toBe("vde-listen");
        expect(guestPort?.stats.txFrames).toBeGreaterThan(1000);
        expect(stuckPort?.stats.drops["tx-queue-full"] ?? 0).toBeGreaterThan(0);
        expect(stuck.exitCode).toBeNull();

        // a second switch added at run time takes a client, then goes
        const sw2 = join(dir, "added");
        const add = await ctl("ports", "add", "0", `vde,id=v1,listen=${sw2}`);
        expect(add.code, add.stderr).toBe(0);
        expect(add.stdout).toMatch(/^added v1 \(vde-listen\): /);
        const second = plug(sw2);
        const deadline2 = Date.now() + 10_000;
        while (!(await ports()).some((p) => p.name === "v1#1") && Date.now() < deadline2)
          await new Promise((r) => setTimeout(r, 200));
        expect((await ports()).some((p) => p.name === "v1#1")).toBe(true);
        const rm = await ctl("ports", "remove", "v1");
        expect(rm.code, rm.stderr).toBe(0);
        await waitFor("vde_plug to end with its port", () => second.exitCode !== null, 10_000);
        expect(existsSync(join(sw2, "ctl"))).toBe(false);
      },
    );
  },
  { timeoutMs: 300_000 },
);
