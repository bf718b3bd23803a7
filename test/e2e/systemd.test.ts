/**
 * usernet under systemd's protocols, driven by Debian's own tools rather than a
 * service manager (PID 1 in this container is not systemd, so `systemd-run` cannot
 * start a unit): `systemd-socket-activate` passes listening sockets (LISTEN_FDS,
 * LISTEN_FDNAMES) and, with --datagram, plays the manager's NOTIFY_SOCKET; a small
 * reader behind it prints each notification together with what was listening in the
 * namespace at the moment it was read (`ss`).
 *
 * - Type=notify: READY=1 comes once, after every listener (a hostfwd, a hub unix
 *   socket, the API socket) is bound; SIGHUP after the config file changed gives
 *   RELOADING=1 then READY=1, with a hostfwd swapped, a listener added and one removed,
 *   while the QEMU guest's link (the same TCP connection) and its lease stay; a file
 *   that no longer parses changes nothing; SIGTERM gives STOPPING=1.
 * - Socket activation: the hub's unix socket, a TCP hub listener and the API socket
 *   exist before usernet runs; a QEMU guest connecting to the unix one starts it
 *   (systemd-socket-activate execs usernet on the first connection) and gets a DHCP
 *   lease (busybox udhcpc); the API answers on its inherited socket.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { udhcpc } from "./harness/dhcp-clients.js";
import { listeningNetdev } from "./harness/guest-server.js";
import type { Netns } from "./harness/netns.js";
import { describeE2E, e2eMode } from "./harness/prereqs.js";
import type { Proc } from "./harness/proc.js";
import { e2eScope } from "./harness/scope.js";
import { pollUntil, waitTcpEstablished } from "./harness/sockets.js";

const hasTools =
  spawnSync("systemd-socket-activate", ["--version"], { stdio: "ignore" }).status === 0 &&
  spawnSync("systemd-notify", ["--version"], { stdio: "ignore" }).status === 0;

// Reads fd 3 (the datagram socket systemd-socket-activate passes) one datagram at a
// time and prints it with the listening sockets of the namespace at that moment.
const receiver = `
const fs = require("node:fs"), { execFileSync } = require("node:child_process");
const b = Buffer.alloc(8192);
const sleep = new Int32Array(new SharedArrayBuffer(4));
for (;;) {
  let n;
  try { n = fs.readSync(3, b); } catch (e) { if (e.code === "EAGAIN") { Atomics.wait(sleep, 0, 0, 10); continue; } throw e; }
  const msg = b.toString("utf8", 0, n);
  const listening = execFileSync("ss", ["-Hlnxt"], { encoding: "utf8" });
  console.log("NOTIFY " + JSON.stringify({ msg, listening }));
}`;

interface Notification {
  msg: string;
  listening: string;
}

/** A stand-in for the manager's NOTIFY_SOCKET inside `ns`; resolves once it runs. */
async function notifyListener(ns: Netns, path: string, watch: (p: Proc) => void) {
  const proc = ns.spawn("notify", "systemd-socket-activate", [
    "--datagram",
    "-l",
    path,
    process.execPath,
    "-e",
    receiver,
  ]);
  watch(proc);
  await pollUntil(`${path} to exist`, 10_000, async () => existsSync(path));
  // socket-activate starts the reader on the first datagram: send one now, so later ones are read as they come
  const warm = spawnSync("systemd-notify", ["--status=warm-up"], {
    env: { ...process.env, NOTIFY_SOCKET: path },
  });
  expect(warm.status, String(warm.stderr)).toBe(0);
  const all = (): Notification[] =>
    proc.stdout
      .split("\n")
      .filter((l) => l.startsWith("NOTIFY "))
      .map((l) => JSON.parse(l.slice(7)) as Notification)
      .filter((n) => !n.msg.includes("warm-up") && n.msg !== "BARRIER=1");
  await proc.until("the reader", 10_000, () => (proc.stdout.includes("warm-up") ? true : undefined));
  const waitFor = (count: number, re: RegExp) =>
    proc.until(`notification #${count} matching ${re}`, 20_000, () => {
      const n = all()[count - 1];
      return n && re.test(n.msg) ? n : undefined;
    });
  return { proc, all, waitFor };
}

const guestPort = 11020;

describeE2E(
  "systemd: Type=notify, SIGHUP reload, socket activation (systemd-socket-activate, systemd-notify)",
  ["root", "netns", "guest", "usernet"],
  () => {
    const e2e = e2eScope();
    const skip = !hasTools && e2eMode() !== "required";

    test.skipIf(skip)(
      "READY=1 once everything listens; SIGHUP swaps a forward and listeners while the guest stays; STOPPING=1",
      async () => {
        if (!hasTools)
          throw new Error("systemd-socket-activate/systemd-notify missing (apt-get install systemd)");
        const dir = mkdtempSync(join(tmpdir(), "une2e-systemd-"));
        e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
        const ns = await e2e.netns();
        const notify = await notifyListener(ns, join(dir, "notify.sock"), (p) => e2e.watch(p));
        const conf = join(dir, "usernet.conf");
        const hub = join(dir, "hub.sock");
        const api = join(dir, "api.sock");
        const lines = (fwd: number, extra: string[]) =>
          [
            "# written by systemd.test.ts",
            `-netdev user,id=u0,dns-upstream=127.0.0.1:5353,hostfwd=tcp:127.0.0.1:${fwd}-:80`,
            `-netdev socket,id=g0,connect=127.0.0.1:${guestPort}`,
            ...extra,
            `--api ${api}`,
            "",
          ].join("\n");
        writeFileSync(conf, lines(18401, [`-netdev stream,id=s0,server=on,addr.type=unix,addr.path=${hub}`]));

        const g = await e2e.guest(ns, {
          name: "g",
          netdev: listeningNetdev(guestPort),
          nic: "virtio-net-pci",
        });
        const u = await e2e.usernet(ns, ["--config", conf], {
          env: { ...process.env, NOTIFY_SOCKET: join(dir, "notify.sock") },
          ready: { stdout: /^# attach a QEMU guest/ },
        });
        const ready = await notify.waitFor(1, /^READY=1\n/);
        expect(ready.msg).toMatch(
          new RegExp(`^READY=1\\nSTATUS=running: 3 netdev\\(s\\) on 1 hub\\(s\\)\\nMAINPID=${u.proc.pid}$`),
        );
        // at the moment READY=1 was read, every listener was there
        expect(ready.listening).toContain("127.0.0.1:18401");
        expect(ready.listening).toContain(hub);
        expect(ready.listening).toContain(api);
        expect(notify.all()).toHaveLength(1);

        await waitTcpEstablished(ns, guestPort, 20_000);
        const link = async () =>
          (await ns.execOk("ss", ["-Htn", "state", "established", "dst", `127.0.0.1:${guestPort}`])).trim();
        const linkBefore = await link();
        expect(linkBefore).not.toBe("");
        expect((await udhcpc(g)).ip).toBe("10.0.2.15");
        await g.runOk(
          "mkdir -p /tmp/www && echo through-the-reload > /tmp/www/index.html && httpd -p 80 -h /tmp/www",
        );
        const curl = (port: number) =>
          ns.exec("curl", ["-sS", "--max-time", "5", `http://127.0.0.1:${port}/`]);
        expect((await curl(18401)).stdout).toBe("through-the-reload\n");

        // the file now forwards 18402 instead, drops the unix listener and adds a TCP one
        writeFileSync(conf, lines(18402, ["-netdev socket,id=l1,listen=127.0.0.1:18403"]));
        process.kill(u.proc.pid, "SIGHUP");
        await notify.waitFor(2, /^RELOADING=1\nMONOTONIC_USEC=\d+\n/);
        const reloaded = await notify.waitFor(3, /^READY=1\n/);
        expect(reloaded.msg).toContain("reloaded");
        expect(reloaded.listening).toContain("127.0.0.1:18402");
        expect(reloaded.listening).toContain("127.0.0.1:18403");
        expect(reloaded.listening).not.toContain("127.0.0.1:18401");
        expect(reloaded.listening).not.toContain(hub);
        expect(existsSync(hub)).toBe(false);
        expect((await curl(18402)).stdout).toBe("through-the-reload\n");
        expect((await curl(18401)).code).not.toBe(0);
        // the guest's link is the same connection, never dropped, and its lease is still there
        expect(await link()).toBe(linkBefore);
        expect(u.stderr).not.toMatch(/disconnected.*g0|g0.*disconnected/);
        const leases = JSON.parse(
          (await ns.execOk("curl", ["-sS", "--unix-socket", api, "http://x/v1/leases"])) || "[]",
        ) as { leases: { ip: string; state: string }[] }[];
        expect(leases[0]?.leases).toEqual([expect.objectContaining({ ip: "10.0.2.15", state: "bound" })]);
        expect(u.stderr).toMatch(/reload: 1 netdev\(s\) opened, 1 closed, 1 forward\(s\) added, 1 removed/);

        // a file that does not parse changes nothing
        writeFileSync(conf, `${readFileSync(conf, "utf8")}-netdev bogus,id=x\n`);
        process.kill(u.proc.pid, "SIGHUP");
        await notify.waitFor(4, /^RELOADING=1\n/);
        const failed = await notify.waitFor(5, /^READY=1\n/);
        expect(failed.msg).toMatch(/STATUS=running; the last reload failed: /);
        expect(u.stderr).toMatch(/reload: the configuration does not parse, nothing changed: /);
        expect((await curl(18402)).stdout).toBe("through-the-reload\n");

        process.kill(u.proc.pid, "SIGTERM");
        await notify.waitFor(6, /^STOPPING=1\nSTATUS=stopping \(SIGTERM\)$/);
        expect((await u.proc.waitExit(10_000))?.code).toBe(0);
      },
    );

    test.skipIf(skip)(
      "socket activation: a QEMU guest connects before usernet runs, starts it, and gets DHCP",
      async () => {
        if (!hasTools) throw new Error("systemd-socket-activate missing (apt-get install systemd)");
        const dir = mkdtempSync(join(tmpdir(), "une2e-systemd-"));
        e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
        const ns = await e2e.netns();
        const hub = join(dir, "hub.sock");
        const api = join(dir, "api.sock");
        const tcpPort = 18410;
        const u = await e2e.usernet(
          ns,
          [
            "-netdev",
            "user,id=u0,dns-upstream=127.0.0.1:5353",
            "-netdev",
            `stream,id=s0,server=on,addr.type=unix,addr.path=${hub}`,
            "-netdev",
            `socket,id=l0,listen=127.0.0.1:${tcpPort}`,
            "--api",
            api,
          ],
          {
            wrap: [
              "systemd-socket-activate",
              "-l",
              hub,
              "--fdname=s0",
              "-l",
              `127.0.0.1:${tcpPort}`,
              "--fdname=l0",
              "-l",
              api,
              "--fdname=api",
            ],
            ready: { unix: [hub, api], tcp: [tcpPort] },
          },
        );
        // the sockets are there, usernet is not running yet
        expect(u.stderr).not.toContain("Execing");
        expect(u.stderr).not.toMatch(/usernet info/);

        const g = await e2e.guest(ns, {
          name: "g",
          netdev: `stream,id=n0,server=off,addr.type=unix,addr.path=${hub}`,
          nic: "virtio-net-pci",
        });
        await u.proc.until("usernet started by the guest's connection", 20_000, () =>
          /listening on a socket from systemd netdev=s0 /.test(u.stderr) ? true : undefined,
        );
        expect(u.stderr).toMatch(/socket activation: s0 \(fd 3\), l0 \(fd 4\), api \(fd 5\)/);
        expect(u.stderr).toMatch(
          /listening on a socket from systemd netdev=l0 address=127\.0\.0\.1:18410 fd=4/,
        );
        expect(u.stderr).toMatch(/management API on a unix socket from systemd \(fd 5\)/);
        expect((await udhcpc(g)).ip).toBe("10.0.2.15");
        const leases = await ns.execOk("curl", ["-sS", "--unix-socket", api, "http://x/v1/leases"]);
        expect(leases).toContain('"ip":"10.0.2.15"');
        const ports = await ns.execOk("curl", ["-sS", "--unix-socket", api, "http://x/v1/hubs/0/ports"]);
        expect(ports).toContain('"name":"s0#1"');
      },
    );
  },
  { timeoutMs: 240_000 },
);
