/**
 * The hub with more than one guest: frames from one port reach every other port, so
 * guests on one usernet hub see each other (and the gateway), whatever transport each
 * one uses — including a plain QEMU multicast LAN that usernet has joined.
 *
 * Also with namespaces' kernels behind TAP ports (busybox ping, curl): the legacy
 * `-net ...,vlan=N` spelling picks the hub (two TAPs on vlan 1 with the user network
 * see each other, a TAP on vlan 2 sees neither), and a socket port whose peer stops
 * reading drops and counts frames while the hub goes on carrying a 30 MiB download
 * between the other ports (the count read from /metrics with curl).
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import type { Netns } from "./harness/netns.js";
import { expectPing } from "./harness/ping.js";
import { describeE2E } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const gw = "10.0.2.2";
const started = /^# attach a QEMU guest/m;
const tap = "ug0";

async function onTap(ns: Netns, addr: string): Promise<void> {
  await ns.waitForLink(tap);
  await ns.execOk("ip", ["link", "set", tap, "up"]);
  await ns.execOk("ip", ["addr", "add", `${addr}/24`, "dev", tap]);
}

/** busybox ping's "N packets received" */
async function received(ns: Netns, target: string, count = 2): Promise<number> {
  const r = await ns.exec("busybox", ["ping", "-c", String(count), "-W", "2", target], 20_000);
  return Number(/(\d+) packets received/.exec(r.stdout)?.[1] ?? -1);
}

// connects to the hub's socket listener, then never reads: a stopped QEMU
const stalledPeer = `
const c = require("node:net").connect(10001, "127.0.0.1", () => { c.pause(); console.log("connected"); });
c.on("error", () => {});
setTimeout(() => {}, 600000);
`;

describeE2E("usernet hub with several QEMU guests", ["root", "netns", "guest", "tun", "usernet"], () => {
  const e2e = e2eScope();

  test("two guests on one socket listener ping each other and the gateway", async () => {
    const ns = await e2e.netns();
    await e2e.usernet(ns, ["-netdev", "user,id=u0", "-netdev", "socket,id=s0,listen=127.0.0.1:10000"], {
      ready: { tcp: [10000], stdout: started },
    });
    const connect = "socket,id=n0,connect=127.0.0.1:10000";
    const [a, b] = await Promise.all([
      e2e.guest(ns, {
        name: "a",
        netdev: connect,
        nic: "e1000",
        mac: "52:54:00:12:34:56",
        ip: "10.0.2.15/24",
        gw,
      }),
      e2e.guest(ns, {
        name: "b",
        netdev: connect,
        nic: "virtio-net-pci",
        mac: "52:54:00:12:34:57",
        ip: "10.0.2.16/24",
        gw,
      }),
    ]);
    await expectPing(a, "10.0.2.16");
    await expectPing(b, "10.0.2.15");
    // Each learnt the other's real MAC (not the gateway's) over the hub.
    expect(await a.runOk("ip neigh show 10.0.2.16")).toMatch(/lladdr 52:54:00:12:34:57/);
    expect(await b.runOk("ip neigh show 10.0.2.15")).toMatch(/lladdr 52:54:00:12:34:56/);
    await Promise.all([expectPing(a, gw, { count: 2 }), expectPing(b, gw, { count: 2 })]);
  });

  test("a guest on a stream port and a plain QEMU multicast guest share the hub", async () => {
    const ns = await e2e.netns({ multicast: true });
    await e2e.usernet(
      ns,
      [
        "-netdev",
        "user,id=u0",
        "-netdev",
        "stream,id=s0,server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=10000",
        "-netdev",
        "socket,id=m0,mcast=230.0.0.1:1234",
      ],
      { ready: { tcp: [10000], udp: [1234], stdout: started } },
    );
    const [viaStream, viaMcast] = await Promise.all([
      e2e.guest(ns, {
        name: "stream-guest",
        netdev: "stream,id=n0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=10000",
        nic: "virtio-net-pci",
        mac: "52:54:00:12:34:56",
        ip: "10.0.2.15/24",
        gw,
      }),
      e2e.guest(ns, {
        name: "mcast-guest",
        netdev: "socket,id=n0,mcast=230.0.0.1:1234",
        nic: "e1000",
        mac: "52:54:00:12:34:57",
        ip: "10.0.2.16/24",
        gw,
      }),
    ]);
    await expectPing(viaStream, "10.0.2.16");
    await expectPing(viaMcast, "10.0.2.15");
    // The multicast guest reaches the gateway only through usernet's mcast port.
    await expectPing(viaMcast, gw);
  });

  test("-net ...,vlan=N: TAPs on vlan 1 see each other and the gateway, one on vlan 2 sees neither", async () => {
    const host = await e2e.netns();
    const [a, b, c] = [await e2e.netns(), await e2e.netns(), await e2e.netns()];
    await e2e.usernet(host, [
      "-net",
      "user,vlan=1,dns-upstream=127.0.0.1:15353",
      "-net",
      `tap,vlan=1,ifname=${tap},netns=${a.name}`,
      "-net",
      `tap,vlan=1,ifname=${tap},netns=${b.name}`,
      "-net",
      `tap,vlan=2,ifname=${tap},netns=${c.name}`,
    ]);
    await Promise.all([onTap(a, "10.0.2.15"), onTap(b, "10.0.2.16"), onTap(c, "10.0.2.17")]);
    expect(await received(a, "10.0.2.16")).toBe(2);
    expect(await received(b, "10.0.2.2")).toBe(2);
    // vlan 2 is another hub: no user network there, and nobody from vlan 1
    const [cToGw, cToA, aToC] = await Promise.all([
      received(c, "10.0.2.2"),
      received(c, "10.0.2.15"),
      received(a, "10.0.2.17"),
    ]);
    expect([cToGw, cToA, aToC]).toEqual([0, 0, 0]);
  });

  test("a socket port whose peer stops reading drops and counts; the hub keeps carrying traffic", async () => {
    const host = await e2e.netns();
    const g = await e2e.netns();
    const dir = mkdtempSync(join(tmpdir(), "une2e-slow-"));
    e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
    const blob = randomBytes(30 * 1024 * 1024);
    writeFileSync(join(dir, "blob.bin"), blob);
    const sha = createHash("sha256").update(blob).digest("hex");
    const httpd = host.spawn("httpd", "busybox", ["httpd", "-f", "-p", "127.0.0.1:18080", "-h", dir]);
    e2e.watch(httpd);
    const api = join(dir, "api.sock");
    await e2e.usernet(
      host,
      [
        "-netdev",
        "user,id=u0,dns-upstream=127.0.0.1:15353",
        "-netdev",
        `tap,id=t0,ifname=${tap},netns=${g.name}`,
        "-netdev",
        "socket,id=slow,listen=127.0.0.1:10001",
        "--api",
        api,
      ],
      { ready: { tcp: [10001], unix: [api] } },
    );
    await onTap(g, "10.0.2.15");
    const peer = host.spawn("stalled peer", process.execPath, ["-e", stalledPeer]);
    e2e.watch(peer);
    await peer.until("the stalled peer connected", 10_000, () =>
      peer.stdout.includes("connected") ? true : undefined,
    );
    // every frame of the download is flooded to the stalled port too
    const curl = await g.exec(
      "sh",
      ["-c", "curl -sS --max-time 60 http://10.0.2.2:18080/blob.bin | sha256sum"],
      90_000,
    );
    expect(curl.stdout.split(" ")[0]).toBe(sha);
    expect(await received(g, "10.0.2.2")).toBe(2);
    const metrics = await host.execOk("curl", [
      "-sS",
      "--max-time",
      "10",
      "--unix-socket",
      api,
      "http://x/metrics",
    ]);
    const drops = metrics
      .split("\n")
      .filter(
        (l) =>
          l.startsWith("usernet_port_drops_total{") && /netdev="slow"/.test(l) && /tx-queue-full/.test(l),
      )
      .map((l) => Number(l.split(" ").pop()));
    expect(drops.length, metrics).toBe(1);
    expect(drops[0]).toBeGreaterThan(0);
  });
});
