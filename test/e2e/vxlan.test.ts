/**
 * VXLAN ports against Linux's own vxlan devices, with real clients. Underlay: a veth
 * pair between two test namespaces (10.99.0.0/24 or 10.98.0.0/24, only inside them);
 * nothing leaves them, multicast included (the group is routed onto the veth).
 *
 * 1. A Linux `vxlan` device (vni 42, dstport 4789, `ethtool -K vx0 tx off` as a
 *    same-host lab needs) in a client namespace; usernet in the other namespace gets
 *    its VXLAN port at run time through `usernet ctl ports add`. ISC dhclient on vx0
 *    is given 10.0.2.15 by usernet's user network, curl fetches 3 MiB through the NAT
 *    from a server on usernet's loopback (sha256 compared), a QEMU guest on a socket
 *    port pings the namespace across the VXLAN, the API shows the port's counters and
 *    learned MAC, and a pcap of the hub (taken through ctl) holds the DHCP exchange
 *    (tshark).
 * 2. Several remotes (remote= twice, local=0.0.0.0): two Linux VTEPs on two links
 *    each get their own lease and reach the gateway; usernet has learned both MACs.
 * 3. group=: a Linux vxlan device in the same multicast group (both on a bridge in a
 *    switch namespace) gets DHCP from usernet and pings the gateway.
 * 4. Two usernets in two namespaces joined by a multicast VXLAN (group=, dev=): the
 *    second has no user network, only a TAP into a third namespace whose dhclient gets
 *    its lease from the first usernet and whose curl goes out through the first one's
 *    NAT: one LAN across two processes.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import type { Netns } from "./harness/netns.js";
import { expectPing } from "./harness/ping.js";
import { describeE2E, usernetMain } from "./harness/prereqs.js";
import { run, runOk } from "./harness/proc.js";
import { e2eScope } from "./harness/scope.js";

const dnsPort = 15353;
const httpPort = 18080;
const socketPort = 10000;

/** a veth pair between two namespaces, addressed and up */
async function veth(a: Netns, aAddr: string, b: Netns, bAddr: string): Promise<[string, string]> {
  const [na, nb] = ["vxa", "vxb"];
  await runOk("ip", [
    "link",
    "add",
    na,
    "netns",
    a.name,
    "type",
    "veth",
    "peer",
    "name",
    nb,
    "netns",
    b.name,
  ]);
  for (const [ns, dev, addr] of [
    [a, na, aAddr],
    [b, nb, bAddr],
  ] as const) {
    await ns.execOk("ip", ["addr", "add", addr, "dev", dev]);
    await ns.execOk("ip", ["link", "set", dev, "up"]);
  }
  return [na, nb];
}

async function dhclient(ns: Netns, dev: string, dir: string): Promise<string> {
  const r = await ns.exec(
    "dhclient",
    ["-1", "-v", "-sf", "/bin/true", "-lf", join(dir, `${dev}.leases`), "-pf", join(dir, `${dev}.pid`), dev],
    40_000,
  );
  return r.stderr;
}

describeE2E(
  "VXLAN ports with Linux vxlan devices",
  ["root", "netns", "guest", "tun", "usernet"],
  () => {
    const e2e = e2eScope();

    test("a Linux vxlan device gets DHCP and NAT from usernet (port added through ctl); a QEMU guest pings it across the VXLAN", async () => {
      const host = await e2e.netns();
      const client = await e2e.netns();
      const dir = mkdtempSync(join(tmpdir(), "une2e-vxlan-"));
      e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
      const [, vc] = await veth(host, "10.99.0.1/24", client, "10.99.0.2/24");
      await client.execOk("ip", [
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        "42",
        "remote",
        "10.99.0.1",
        "local",
        "10.99.0.2",
        "dev",
        vc,
        "dstport",
        "4789",
      ]);
      await client.execOk("ethtool", ["-K", "vx0", "tx", "off"]);
      await client.execOk("ip", ["link", "set", "vx0", "up"]);
      // the kernel gives the vxlan device its underlay's MTU less 50
      expect(await client.execOk("ip", ["-o", "link", "show", "vx0"])).toMatch(/mtu 1450 /);

      await e2e.dns(host, { port: dnsPort, records: {} });
      const big = randomBytes(3 * 1024 * 1024);
      writeFileSync(join(dir, "big.bin"), big);
      const httpd = host.spawn("httpd", "busybox", ["httpd", "-f", "-p", `127.0.0.1:${httpPort}`, "-h", dir]);
      e2e.watch(httpd);
      const sock = join(dir, "api.sock");
      const u = await e2e.usernet(
        host,
        [
          "--api",
          sock,
          "-netdev",
          `user,id=u0,mtu=1450,dns-upstream=127.0.0.1:${dnsPort}`,
          "-netdev",
          `socket,id=s0,listen=127.0.0.1:${socketPort}`,
        ],
        { ready: { unix: [sock], tcp: [socketPort] } },
      );
      const ctl = (...args: string[]) =>
        run(process.execPath, [usernetMain() as string, "ctl", "--api", sock, ...args], 30_000);

      const added = await ctl("ports", "add", "vxlan,id=vx0,vni=42,remote=10.99.0.2,local=10.99.0.1");
      expect(added.stdout).toMatch(
        /^added vx0 \(vxlan\): vxlan vni 42 on 10\.99\.0\.1:4789 -> 10\.99\.0\.2:4789/,
      );
      const advice = /VXLAN adds 50 bytes: the underlay vxa has MTU 1500, so give .*mtu=1450/;
      await u.proc.until("the MTU advice", 10_000, () => (advice.test(u.stderr) ? true : undefined));

      // a capture of the hub while the namespace asks for an address
      const pcap = join(dir, "hub0.pcap");
      const capture = ctl("capture", "0", pcap, "--seconds", "300");
      let captureId: string | undefined;
      for (let i = 0; i < 200 && captureId === undefined; i++) {
        const r = await run("curl", [
          "-sS",
          "--max-time",
          "5",
          "--unix-socket",
          sock,
          "http://usernet/v1/status",
        ]);
        const ports = (JSON.parse(r.stdout || "{}") as { ports?: { name: string; kind: string }[] }).ports;
        captureId = ports?.find((p) => p.kind === "capture")?.name;
        if (captureId === undefined) await new Promise((r) => setTimeout(r, 100));
      }
      expect(captureId).toMatch(/^capture\d+$/);

      const dh = await dhclient(client, "vx0", dir);
      expect(dh).toMatch(/DHCPACK of 10\.0\.2\.15 from 10\.0\.2\.2/);
      await client.execOk("ip", ["addr", "add", "10.0.2.15/24", "dev", "vx0"]);
      await client.execOk("ip", ["route", "add", "default", "via", "10.0.2.2"]);

      const curl = await client.exec(
        "sh",
        ["-c", `curl -sS --max-time 60 http://10.0.2.2:${httpPort}/big.bin | sha256sum`],
        90_000,
      );
      expect(curl.stdout.split(" ")[0]).toBe(createHash("sha256").update(big).digest("hex"));

      const guest = await e2e.guest(host, {
        name: "g",
        netdev: `socket,id=n0,connect=127.0.0.1:${socketPort}`,
        nic: "virtio-net-pci",
        mac: "52:54:00:12:34:57",
        ip: "10.0.2.16/24",
        gw: "10.0.2.2",
        mtu: 1450,
      });
      await expectPing(guest, "10.0.2.15");
      // the namespace's kernel knows the guest by its real MAC, learned across the VXLAN
      expect(await client.execOk("ip", ["neigh", "show", "10.0.2.16"])).toMatch(/lladdr 52:54:00:12:34:57/);

      const status = JSON.parse((await ctl("--json", "status")).stdout) as {
        ports: {
          name: string;
          kind: string;
          description: string;
          stats: { rxFrames: number; txFrames: number; drops: Record<string, number> };
        }[];
      };
      const vx = status.ports.find((p) => p.name === "vx0");
      expect(vx?.kind).toBe("vxlan");
      expect(vx?.stats.rxFrames).toBeGreaterThan(100);
      expect(vx?.stats.txFrames).toBeGreaterThan(100);
      expect(vx?.description).toMatch(/\(1 MAC learned\)/);
      expect(vx?.stats.drops).toEqual({});

      // ending the capture through the API ends ctl's download cleanly
      await ctl("ports", "remove", captureId as string);
      const cap = await capture;
      expect(cap.code).toBe(0);
      const dhcp = await runOk(
        "tshark",
        ["-r", pcap, "-Y", "dhcp", "-T", "fields", "-e", "dhcp.option.dhcp"],
        30_000,
      );
      // DISCOVER, OFFER, REQUEST, ACK: 1, 2, 3, 5
      expect(dhcp.split("\n").filter((l) => l !== "")).toEqual(expect.arrayContaining(["1", "2", "3", "5"]));

      // closing it through the API stops the traffic: the namespace's gateway is gone
      expect((await ctl("ports", "remove", "vx0")).stdout).toBe("closed vx0\n");
      const after = await client.exec("busybox", ["ping", "-c", "1", "-W", "1", "10.0.2.2"], 10_000);
      expect(after.stdout).toMatch(/1 packets transmitted, 0 packets received/);
    });

    test("several remotes: two Linux VTEPs on two links each get their own lease, and usernet learns both", async () => {
      const host = await e2e.netns();
      const c1 = await e2e.netns();
      const c2 = await e2e.netns();
      const dir = mkdtempSync(join(tmpdir(), "une2e-vxlan3-"));
      e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
      const links: [Netns, string][] = [];
      for (const [i, c] of [c1, c2].entries()) {
        const [ha, cb] = await veth(host, `10.99.${i + 1}.1/24`, c, `10.99.${i + 1}.2/24`);
        // the second pair's names must differ from the first's inside host
        if (i === 0) await host.execOk("ip", ["link", "set", ha, "name", "vxh1"]);
        links.push([c, cb]);
        await c.execOk("ip", [
          "link",
          "add",
          "vx0",
          "type",
          "vxlan",
          "id",
          "9",
          "remote",
          `10.99.${i + 1}.1`,
          "local",
          `10.99.${i + 1}.2`,
          "dev",
          cb,
          "dstport",
          "4789",
        ]);
        await c.execOk("ip", ["link", "set", "vx0", "up"]);
      }
      await e2e.dns(host, { port: dnsPort, records: {} });
      const sock = join(dir, "api.sock");
      await e2e.usernet(
        host,
        [
          "--api",
          sock,
          "-netdev",
          `user,id=u0,mtu=1450,dns-upstream=127.0.0.1:${dnsPort}`,
          "-netdev",
          "vxlan,id=vx0,vni=9,remote=10.99.1.2,remote=10.99.2.2,local=0.0.0.0",
        ],
        { ready: { unix: [sock], udp: [4789] } },
      );
      const acks = await Promise.all(links.map(([c]) => dhclient(c, "vx0", dir)));
      const got = acks.map((a) => /DHCPACK of (10\.0\.2\.\d+) from 10\.0\.2\.2/.exec(a)?.[1]);
      expect([...got].sort()).toEqual(["10.0.2.15", "10.0.2.16"]);
      // each reaches the gateway: usernet answers each VTEP at its own address
      for (const [i, [c]] of links.entries()) {
        await c.execOk("ip", ["addr", "add", `${got[i]}/24`, "dev", "vx0"]);
        const ping = await c.exec("busybox", ["ping", "-c", "2", "-W", "2", "10.0.2.2"], 15_000);
        expect(ping.stdout).toMatch(/2 packets transmitted, 2 packets received/);
      }
      const r = await run("curl", [
        "-sS",
        "--max-time",
        "5",
        "--unix-socket",
        sock,
        "http://usernet/v1/status",
      ]);
      const vx = (JSON.parse(r.stdout) as { ports: { name: string; description: string }[] }).ports.find(
        (p) => p.name === "vx0",
      );
      expect(vx?.description).toMatch(/-> 10\.99\.1\.2:4789, 10\.99\.2\.2:4789 \(2 MACs learned\)/);
    });

    test("group=: a Linux vxlan device in the same multicast group gets DHCP from usernet", async () => {
      const a = await e2e.netns();
      const linux = await e2e.netns();
      const sw = await e2e.netns();
      const dir = mkdtempSync(join(tmpdir(), "une2e-vxlan4-"));
      e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
      // a switch namespace: one bridge, both members on it; the group stays on the veths
      await sw.execOk("ip", ["link", "add", "br0", "type", "bridge"]);
      await sw.execOk("ip", ["link", "set", "br0", "up"]);
      for (const [i, ns] of [a, linux].entries()) {
        await runOk("ip", [
          "link",
          "add",
          `p${i}`,
          "netns",
          sw.name,
          "type",
          "veth",
          "peer",
          "name",
          "up0",
          "netns",
          ns.name,
        ]);
        await sw.execOk("ip", ["link", "set", `p${i}`, "master", "br0", "up"]);
        await ns.execOk("ip", ["addr", "add", `10.97.0.${i + 1}/24`, "dev", "up0"]);
        await ns.execOk("ip", ["link", "set", "up0", "up"]);
        await ns.execOk("ip", ["route", "add", "224.0.0.0/4", "dev", "up0"]);
      }
      await linux.execOk("ip", [
        "link",
        "add",
        "vx0",
        "type",
        "vxlan",
        "id",
        "5",
        "group",
        "239.1.1.5",
        "dev",
        "up0",
        "dstport",
        "4789",
      ]);
      await linux.execOk("ip", ["link", "set", "vx0", "up"]);
      await e2e.dns(a, { port: dnsPort, records: {} });
      await e2e.usernet(
        a,
        [
          "-netdev",
          `user,id=u0,mtu=1450,dns-upstream=127.0.0.1:${dnsPort}`,
          "-netdev",
          "vxlan,id=vx0,vni=5,group=239.1.1.5,dev=up0,local=10.97.0.1",
        ],
        { ready: { udp: [4789] } },
      );
      expect(await dhclient(linux, "vx0", dir)).toMatch(/DHCPACK of 10\.0\.2\.15 from 10\.0\.2\.2/);
      await linux.execOk("ip", ["addr", "add", "10.0.2.15/24", "dev", "vx0"]);
      const ping = await linux.exec("busybox", ["ping", "-c", "2", "-W", "2", "10.0.2.2"], 15_000);
      expect(ping.stdout).toMatch(/2 packets transmitted, 2 packets received/);
    });

    test("two usernets in two namespaces joined by a multicast VXLAN share one LAN", async () => {
      const a = await e2e.netns();
      const b = await e2e.netns();
      const guest = await e2e.netns();
      const dir = mkdtempSync(join(tmpdir(), "une2e-vxlan2-"));
      e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
      const [va, vb] = await veth(a, "10.98.0.1/24", b, "10.98.0.2/24");
      // the group stays on the veth: multicast only inside the test's namespaces
      await a.execOk("ip", ["route", "add", "224.0.0.0/4", "dev", va]);
      await b.execOk("ip", ["route", "add", "224.0.0.0/4", "dev", vb]);
      writeFileSync(join(dir, "hello.txt"), "hello from a's loopback\n");
      await e2e.dns(a, { port: dnsPort, records: {} });
      const httpd = a.spawn("httpd", "busybox", ["httpd", "-f", "-p", `127.0.0.1:${httpPort}`, "-h", dir]);
      e2e.watch(httpd);

      await e2e.usernet(
        a,
        [
          "-netdev",
          `user,id=u0,mtu=1450,dns-upstream=127.0.0.1:${dnsPort}`,
          "-netdev",
          `vxlan,id=vx0,vni=7,group=239.1.1.42,dev=${va},local=10.98.0.1`,
        ],
        { ready: { udp: [4789] } },
      );
      const ub = await e2e.usernet(
        b,
        [
          "-netdev",
          `vxlan,id=vx0,vni=7,group=239.1.1.42,dev=${vb},local=10.98.0.2`,
          "-netdev",
          `tap,id=t0,ifname=ug0,netns=${guest.name},vnet_hdr=off`,
        ],
        { ready: { udp: [4789] } },
      );
      // the socket is bound (ready) a moment before the line saying so is logged
      const joined = /vxlan vni 7 on 0\.0\.0\.0:4789 -> group 239\.1\.1\.42:4789/;
      await ub.proc.until("the vxlan port's log line", 10_000, () =>
        joined.test(ub.stderr) ? true : undefined,
      );
      await guest.setUpTap("ug0", { mtu: 1450 });
      const dh = await dhclient(guest, "ug0", dir);
      expect(dh).toMatch(/DHCPACK of 10\.0\.2\.15 from 10\.0\.2\.2/);
      await guest.execOk("ip", ["addr", "add", "10.0.2.15/24", "dev", "ug0"]);
      await guest.execOk("ip", ["route", "add", "default", "via", "10.0.2.2"]);
      const ping = await guest.exec("busybox", ["ping", "-c", "3", "-W", "2", "10.0.2.2"], 15_000);
      expect(ping.stdout).toMatch(/3 packets transmitted, 3 packets received/);
      const curl = await guest.execOk("curl", [
        "-sS",
        "--max-time",
        "10",
        `http://10.0.2.2:${httpPort}/hello.txt`,
      ]);
      expect(curl).toBe("hello from a's loopback\n");
      expect(readFileSync(join(dir, "hello.txt"), "utf8")).toBe(curl);
    });
  },
  { timeoutMs: 240_000 },
);
