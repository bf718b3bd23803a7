/**
 * QEMU's TAP scripts with real scripts and the kernel's bridge: usernet runs inside a
 * test namespace with the seeds' legacy spelling `-net tap,ifname=qtap0,script=UP,
 * downscript=DOWN`. The ifup script puts the TAP into a bridge that has the
 * namespace's address, so the namespace's own ping and curl reach usernet's gateway
 * through bridge → TAP → hub: that only works if the script ran with the right
 * argument after the device existed. On SIGTERM the ifdown script runs while the TAP
 * still exists (it records `ip link show` of its argument). A failing ifup script
 * stops usernet at start-up with a message naming the script and its status.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { describeE2E, usernetMain } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const dnsPort = 15353;
const httpPort = 18080;

function script(dir: string, name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\nset -e\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

describeE2E("TAP script= and downscript= (QEMU's ifup/ifdown)", ["root", "netns", "tun", "usernet"], () => {
  const e2e = e2eScope();

  test("the ifup script bridges the TAP (ping and curl cross it); the ifdown script runs on SIGTERM before the TAP goes", async () => {
    const ns = await e2e.netns();
    const dir = mkdtempSync(join(tmpdir(), "une2e-tapscript-"));
    e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, "hello.txt"), "hello through the bridge\n");
    const up = script(
      dir,
      "ifup",
      `echo "up $# $1" > ${dir}/up.log
ip link add br0 type bridge
ip link set br0 up
ip addr add 10.0.2.15/24 dev br0
ip link set "$1" master br0 up`,
    );
    const down = script(dir, "ifdown", `ip -o link show "$1" > ${dir}/down.log`);
    await e2e.dns(ns, { port: dnsPort, records: {} });
    const httpd = ns.spawn("httpd", "busybox", ["httpd", "-f", "-p", `127.0.0.1:${httpPort}`, "-h", dir]);
    e2e.watch(httpd);

    const u = await e2e.usernet(ns, [
      "-net",
      `user,dns-upstream=127.0.0.1:${dnsPort}`,
      "-net",
      `tap,ifname=qtap0,script=${up},downscript=${down}`,
    ]);
    await ns.waitForLink("qtap0");
    // the script runs once the device exists; give it the moment it needs to bridge it
    let link = "";
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
      link = await ns.execOk("ip", ["-o", "link", "show", "qtap0"]);
      if (/master br0/.test(link)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(readFileSync(join(dir, "up.log"), "utf8")).toBe("up 1 qtap0\n");
    expect(link).toMatch(/master br0/);

    const ping = await ns.exec("busybox", ["ping", "-c", "2", "-W", "2", "10.0.2.2"], 15_000);
    expect(ping.stdout).toMatch(/2 packets transmitted, 2 packets received/);
    // 10.0.2.2 is the host's loopback through usernet's NAT: the request crossed the bridge
    const curl = await ns.execOk("curl", [
      "-sS",
      "--max-time",
      "10",
      `http://10.0.2.2:${httpPort}/hello.txt`,
    ]);
    expect(curl).toBe("hello through the bridge\n");

    const ended = await u.close();
    expect(ended).toMatchObject({ code: 0 });
    expect(readFileSync(join(dir, "down.log"), "utf8")).toMatch(/^\d+: qtap0: .*master br0/);
    // the device went after the script
    expect((await ns.exec("ip", ["link", "show", "qtap0"])).code).not.toBe(0);
  });

  test("a failing ifup script fails the netdev: usernet exits 1 naming the script and its status", async () => {
    const ns = await e2e.netns();
    const dir = mkdtempSync(join(tmpdir(), "une2e-tapscript-"));
    e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
    const up = script(dir, "ifup", 'echo "bridge br9 does not exist" >&2\nexit 7');
    const down = script(dir, "ifdown", `echo ran > ${dir}/down.log`);
    const r = await ns.exec(
      process.execPath,
      [
        usernetMain() as string,
        "-netdev",
        "user,id=u0,dns-upstream=127.0.0.1:1",
        "-netdev",
        `tap,id=t0,ifname=qtap1,script=${up},downscript=${down}`,
      ],
      30_000,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `-netdev tap,id=t0: network script ${up} failed with status 7: bridge br9 does not exist`,
    );
    // like QEMU: no ifdown for a device whose ifup failed, and the device is gone
    expect(() => readFileSync(join(dir, "down.log"))).toThrow();
    expect((await ns.exec("ip", ["link", "show", "qtap1"])).code).not.toBe(0);
  });
});
