/**
 * `usernet slirp4netns --enable-ipv6` as slirp4netns's drop-in, root and rootless:
 *   1. `unshare -n` (root) and `unshare -rn` as nobody (rootless) make a namespace;
 *      `usernet slirp4netns --configure --enable-ipv6 PID tap0` gives it slirp4netns's
 *      IPv6: a SLAAC address in fd00::/64, a default route via fe80::2, and answers to
 *      `ping -6 fd00::2` and to an AAAA query for the gateway's name at fd00::3.
 *   2. rootlesskit (Debian's 1.1) `--net=slirp4netns --ipv6` with the drop-in as its
 *      slirp4netns binary: the namespace it makes has fd00::/64 and pings fd00::2.
 * As in slirp4netns.test.ts: everything inside a test namespace ("host"), /dev/net/tun
 * made 0666 for the test and restored, subordinate ids for nobody bind-mounted in a
 * private mount namespace, and there a resolv.conf naming 127.0.0.1 (the drop-in's
 * upstream; only local names are asked). IPv6 goes only to the gateway inside the
 * namespace.
 */
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, test } from "vitest";
import { describeE2E, e2eMode, usernetMain } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const asNobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"];

const haveRootlesskit = ["/usr/bin/rootlesskit", "/usr/bin/newuidmap"].every((p) => {
  try {
    statSync(p);
    return true;
  } catch {
    return false;
  }
});

describeE2E(
  "usernet slirp4netns --enable-ipv6 (root, rootless, rootlesskit --ipv6)",
  ["root", "netns", "tun", "usernet"],
  () => {
    const e2e = e2eScope();
    let tunMode = 0;
    let dir = "";

    beforeAll(() => {
      tunMode = statSync("/dev/net/tun").mode & 0o777;
      chmodSync("/dev/net/tun", 0o666);
      dir = mkdtempSync(join(tmpdir(), "une2e-s4n6-"));
      chmodSync(dir, 0o755);
      writeFileSync(
        join(dir, "usernet-slirp4netns"),
        `#!/bin/sh\nexec '${process.execPath}' '${usernetMain()}' slirp4netns "$@"\n`,
        { mode: 0o755 },
      );
      writeFileSync(join(dir, "subid"), "nobody:200000:65536\n", { mode: 0o644 });
      // the drop-in's DNS upstream comes from resolv.conf: never the machine's resolver
      writeFileSync(join(dir, "resolv.conf"), "nameserver 127.0.0.1\n", { mode: 0o644 });
      mkdirSync(join(dir, "home"), { mode: 0o700 });
      chownSync(join(dir, "home"), 65534, 65534);
    });
    afterAll(() => {
      if (tunMode) chmodSync("/dev/net/tun", tunMode);
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    for (const mode of ["root", "rootless"] as const) {
      test(`${mode}: --configure --enable-ipv6 gives fd00::/64 and ping -6 fd00::2 works`, async () => {
        const host = await e2e.netns();
        const who = mode === "root" ? [] : asNobody;
        const target = await host.spawnTarget(mode === "root" ? "-n" : "-rn", 120, who);
        const pid = target.pid;
        const main = usernetMain() as string;
        const drop = host.spawn("usernet-slirp4netns", "unshare", [
          "-m",
          "--propagation",
          "private",
          "sh",
          "-c",
          `mount --bind '${dir}/resolv.conf' /etc/resolv.conf && exec ${who.join(" ")} '${process.execPath}' '${main}' slirp4netns --configure --enable-ipv6 ${pid} tap0`,
        ]);
        e2e.watch(drop);
        await drop.until("ready", 20_000, () => (drop.stderr.includes("drop-in ready") ? true : undefined));
        const inside = (cmd: string) =>
          host.exec("nsenter", ["-t", String(pid), "-n", "sh", "-c", cmd], 20_000);
        // SLAAC from the gateway's router advertisement; no DAD on the TAP (--configure)
        let addrs = "";
        for (let i = 0; i < 50 && !/inet6 fd00::\S+\/64 scope global/.test(addrs); i++) {
          addrs = (await inside("ip -6 addr show dev tap0")).stdout;
          if (!/inet6 fd00::/.test(addrs)) await new Promise((r) => setTimeout(r, 100));
        }
        expect(addrs).toMatch(/inet6 fd00::\S+\/64 scope global/);
        expect(addrs).not.toMatch(/tentative/);
        expect((await inside("cat /proc/sys/net/ipv6/conf/tap0/accept_dad")).stdout.trim()).toBe("0");
        expect((await inside("ip -6 route show default")).stdout).toMatch(/default via fe80::2 dev tap0/);
        const ping = await inside("busybox ping -6 -c 2 -W 2 fd00::2");
        expect(ping.stdout, ping.stderr).toMatch(/2 packets transmitted, 2 packets received/);
        const dig = await inside("dig +short +time=3 +tries=2 @fd00::3 AAAA host.usernet.internal");
        expect(dig.stdout.trim()).toBe("fd00::2");
        await target.kill(2000);
        expect((await drop.waitExit(5000))?.code).toBe(0);
      });
    }

    test.skipIf(!haveRootlesskit && e2eMode() !== "required")(
      "rootlesskit --net=slirp4netns --ipv6 runs the drop-in: fd00::/64 and ping -6 fd00::2",
      async () => {
        if (!haveRootlesskit) throw new Error("USERNET_E2E=required but rootlesskit or newuidmap is missing");
        const host = await e2e.netns();
        // rootlesskit sets the TAP up itself (no --configure): DAD runs, so this waits
        const inner = [
          'for i in $(seq 100); do ip -6 addr show dev tap0 -tentative | grep -q "inet6 fd00::" && break; sleep 0.1; done',
          "ip -6 addr show dev tap0",
          "busybox ping -6 -c 1 -W 2 fd00::2 | grep received",
          "echo rk6-done",
        ].join("; ");
        const script = [
          `mount --bind '${dir}/resolv.conf' /etc/resolv.conf`,
          `mount --bind '${dir}/subid' /etc/subuid`,
          `mount --bind '${dir}/subid' /etc/subgid`,
          `exec ${asNobody.join(" ")} env HOME='${dir}/home' XDG_RUNTIME_DIR='${dir}/home' rootlesskit --net=slirp4netns` +
            ` --slirp4netns-binary='${dir}/usernet-slirp4netns' --ipv6 --state-dir='${dir}/home/rk6'` +
            ` sh -c '${inner}'`,
        ].join(" && ");
        const rk = host.spawn("rootlesskit", "unshare", [
          "-m",
          "--propagation",
          "private",
          "sh",
          "-c",
          script,
        ]);
        e2e.watch(rk);
        await rk.until("the namespace's shell", 30_000, () =>
          rk.stdout.includes("rk6-done") ? true : undefined,
        );
        expect(rk.stdout).toMatch(/inet6 fd00::\S+\/64 scope global/);
        expect(rk.stdout).toMatch(/1 packets transmitted, 1 packets received/);
      },
    );
  },
  { timeoutMs: 120_000 },
);
