/**
 * The service still serves once confined (`--sandbox`, and the slirp4netns drop-in's
 * `--enable-sandbox --enable-seccomp`), with real clients in a namespace behind a TAP:
 *   1. `usernet --sandbox` with tftp=, --state-dir and a TAP: busybox udhcpc gets a
 *      lease (written to the state directory under Landlock), ping and TCP to a
 *      server on the host's loopback, DNS through the forwarder, busybox tftp fetches
 *      a file whole. Every thread of usernet shows NoNewPrivs 1 and Seccomp 2, and
 *      the log line says what was applied.
 *   2. `--sandbox` with smb=: smbd is started on the first connection after
 *      confinement (it inherits the filter and the Landlock domain) and smbclient
 *      gets a file and puts one back.
 *   3. the drop-in run by an unprivileged user in a rootless namespace with
 *      --enable-sandbox --enable-seccomp: DHCP, ping and TCP to the host work.
 * What the confinement denies is tested in test/unit/native/sandbox.test.ts.
 */
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import type { Netns } from "./harness/netns.js";
import { describeE2E, usernetMain } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const tap = "usb0";
const dnsPort = 15354;
const tcpPort = 18093;
const asNobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"];

const tcpServer = `
const srv = require("node:net").createServer((c) => c.end("hello-from-host\\n"));
srv.listen(${tcpPort}, "127.0.0.1", () => process.stdout.write("listening\\n"));
`;

/** NoNewPrivs and Seccomp of every thread of a process */
function threadStates(pid: number): string[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((t) => {
    let s: string;
    try {
      s = readFileSync(`/proc/${pid}/task/${t}/status`, "utf8");
    } catch {
      return []; // the thread ended since the listing
    }
    return [`nnp=${/NoNewPrivs:\s*(\d)/.exec(s)?.[1]} seccomp=${/Seccomp:\s*(\d)/.exec(s)?.[1]}`];
  });
}

const sandboxLine =
  /sandbox: no_new_privs on, seccomp on \(\d+ syscalls denied, EPERM\), landlock (ABI \d+ on|unavailable)/;

describeE2E(
  "usernet confined (--sandbox, --enable-sandbox/--enable-seccomp)",
  ["root", "netns", "tun", "usernet"],
  () => {
    const e2e = e2eScope();

    async function guestBehindTap(
      host: Netns,
      args: string[],
    ): Promise<{ guest: Netns; pid: number; log: () => string }> {
      const guest = await e2e.netns();
      await guest.execOk("sysctl", ["-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
      await guest.execOk("sysctl", ["-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
      const u = await e2e.usernet(
        host,
        ["--sandbox", ...args, "-netdev", `tap,id=t0,ifname=${tap},netns=${guest.name}`],
        { ready: {} },
      );
      // a TAP-only configuration prints no attach lines: the log line says start-up is over
      for (let i = 0; i < 200 && !/sandbox: /.test(u.stderr); i++)
        await new Promise((r) => setTimeout(r, 100));
      await guest.setUpTap(tap);
      return { guest, pid: u.proc.pid, log: () => u.stderr };
    }

    test("--sandbox: DHCP (lease in the state dir), ping, TCP, DNS and TFTP still work", async () => {
      const host = await e2e.netns();
      await e2e.dns(host, { port: dnsPort, records: { "web.test": ["192.0.2.80"] } });
      const srv = host.spawn("tcp-server", process.execPath, ["-e", tcpServer]);
      e2e.watch(srv);
      await srv.until("listening", 10_000, () => (srv.stdout.includes("listening") ? true : undefined));
      const dir = mkdtempSync(join(tmpdir(), "une2e-sandbox-"));
      e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
      const root = join(dir, "tftp");
      mkdirSync(root);
      const boot = randomBytes(200_000 + 17);
      writeFileSync(join(root, "boot.bin"), boot);
      const state = join(dir, "state");

      const { guest, pid, log } = await guestBehindTap(host, [
        "--state-dir",
        state,
        "-netdev",
        `user,id=u0,tftp=${root},dns-upstream=127.0.0.1:${dnsPort}`,
      ]);
      expect(log()).toMatch(sandboxLine);
      expect(log()).toMatch(new RegExp(`tftp ro ${root}`));
      expect(log()).toMatch(new RegExp(`state rw ${state}`));
      const threads = threadStates(pid);
      expect(threads.length).toBeGreaterThan(4);
      expect(new Set(threads)).toEqual(new Set(["nnp=1 seccomp=2"]));

      const udhcpc = await guest.exec(
        "busybox",
        ["udhcpc", "-i", tap, "-f", "-q", "-n", "-t", "5", "-T", "1", "-s", "/bin/true"],
        20_000,
      );
      expect(`${udhcpc.stdout}${udhcpc.stderr}`).toMatch(/lease of 10\.0\.2\.15 obtained/);
      // the lease reached the state directory: writing there is allowed
      for (let i = 0; i < 50 && readdirSync(state).length === 0; i++)
        await new Promise((r) => setTimeout(r, 100));
      expect(readdirSync(state).length).toBeGreaterThan(0);

      await guest.execOk("ip", ["addr", "add", "10.0.2.15/24", "dev", tap]);
      await guest.execOk("ip", ["route", "add", "default", "via", "10.0.2.2"]);
      const ping = await guest.exec("busybox", ["ping", "-c", "2", "-W", "2", "10.0.2.2"], 15_000);
      expect(ping.stdout).toMatch(/2 packets transmitted, 2 packets received/);
      const tcp = await guest.exec("sh", ["-c", `busybox nc 10.0.2.2 ${tcpPort} </dev/null`], 15_000);
      expect(tcp.stdout).toBe("hello-from-host\n");
      const ns = await guest.exec("busybox", ["nslookup", "web.test", "10.0.2.3"], 15_000);
      expect(ns.stdout).toMatch(/Address:\s*192\.0\.2\.80/);

      const out = join(dir, "fetched.bin");
      const tftp = await guest.exec(
        "busybox",
        ["tftp", "-g", "-r", "boot.bin", "-l", out, "10.0.2.2"],
        30_000,
      );
      expect(tftp.code, tftp.stderr).toBe(0);
      expect(createHash("sha256").update(readFileSync(out)).digest("hex")).toBe(
        createHash("sha256").update(boot).digest("hex"),
      );
      const others = log()
        .split("\n")
        .filter((l) => !l.includes("sandbox: "));
      expect(others.filter((l) => /EACCES|EPERM|error/.test(l))).toEqual([]);
    });

    test.runIf(existsSync("/usr/sbin/smbd") && existsSync("/usr/bin/smbclient"))(
      "--sandbox with smb=: smbd starts after confinement and serves the share",
      async () => {
        const host = await e2e.netns();
        const dir = mkdtempSync(join(tmpdir(), "une2e-sandbox-smb-"));
        e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
        const share = join(dir, "share");
        mkdirSync(share);
        const data = randomBytes(100_000);
        writeFileSync(join(share, "data.bin"), data);
        const { guest, pid, log } = await guestBehindTap(host, [
          "-netdev",
          `user,id=u0,smb=${share},dns-upstream=127.0.0.1:${dnsPort}`,
        ]);
        expect(log()).toMatch(sandboxLine);
        expect(log()).toMatch(new RegExp(`smb rw ${share}`));
        expect(new Set(threadStates(pid))).toEqual(new Set(["nnp=1 seccomp=2"]));
        await guest.execOk("ip", ["addr", "add", "10.0.2.15/24", "dev", tap]);
        const got = join(dir, "got.bin");
        writeFileSync(join(dir, "up.txt"), "from the guest\n");
        const smb = await guest.exec(
          "smbclient",
          [
            "//10.0.2.4/qemu",
            "-N",
            "-m",
            "SMB3",
            "-c",
            `get data.bin ${got}; put ${join(dir, "up.txt")} up.txt`,
          ],
          60_000,
        );
        expect(smb.code, `${smb.stdout}${smb.stderr}${log()}`).toBe(0);
        expect(readFileSync(got).equals(data)).toBe(true);
        expect(readFileSync(join(share, "up.txt"), "utf8")).toBe("from the guest\n");
        // the smbd directory is made at the first connection, after confinement
        expect(log()).toMatch(/sandbox: .*\n(.*\n)*.*smbd directory ready/);
      },
    );

    test("the drop-in with --enable-sandbox --enable-seccomp, run by an unprivileged user", async () => {
      const tunMode = statSync("/dev/net/tun").mode & 0o777;
      chmodSync("/dev/net/tun", 0o666);
      e2e.defer(() => chmodSync("/dev/net/tun", tunMode));
      const host = await e2e.netns();
      const srv = host.spawn("tcp-server", process.execPath, ["-e", tcpServer]);
      await srv.until("listening", 10_000, () => (srv.stdout.includes("listening") ? true : undefined));
      const target = await host.spawnTarget("-rn", 120, asNobody);
      const pid = target.pid;
      const drop = host.spawn("usernet-slirp4netns", asNobody[0] as string, [
        ...asNobody.slice(1),
        process.execPath,
        usernetMain() as string,
        "slirp4netns",
        "--configure",
        "--enable-sandbox",
        "--enable-seccomp",
        String(pid),
        "tap0",
      ]);
      e2e.watch(drop);
      await drop.until("ready", 20_000, () => (drop.stderr.includes("drop-in ready") ? true : undefined));
      expect(drop.stderr).toMatch(sandboxLine);
      expect(new Set(threadStates(drop.pid))).toEqual(new Set(["nnp=1 seccomp=2"]));
      const inside = (cmd: string) =>
        host.exec("nsenter", ["-t", String(pid), "-n", "sh", "-c", cmd], 20_000);
      const tcp = await inside(
        `busybox ping -c 1 -W 2 10.0.2.2 | grep received; busybox nc 10.0.2.2 ${tcpPort} </dev/null`,
      );
      expect(tcp.stdout, tcp.stderr).toMatch(/1 packets received/);
      expect(tcp.stdout).toMatch(/hello-from-host/);
      const lease = await inside("busybox udhcpc -i tap0 -f -q -n -t 5 -T 1 -s /bin/true 2>&1");
      expect(lease.stdout, JSON.stringify(lease)).toMatch(/lease of 10\.0\.2\.15 obtained/);
      await target.kill(2000);
      const exit = await drop.waitExit(5000);
      expect(exit?.code).toBe(0);
    });
  },
);
