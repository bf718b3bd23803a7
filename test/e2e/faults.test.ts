/**
 * Host faults injected into a running usernet, seen by real clients: a namespace's own
 * kernel behind usernet's TAP port (node, busybox ping), the host side in a namespace
 * of the test's with its servers on 127.0.0.1 and on a veth standing for "the
 * internet". For each fault the service must answer the guest as QEMU's slirp would,
 * log it once (log.ts HostFaults: one line per place and errno, whatever the rate),
 * count it (`usernet_host_faults_total{where,code}` in /metrics, `hostFaults` in the
 * status) and keep serving every other flow.
 *
 *   EMFILE         `prlimit --nofile` lowered on the running process: the guest's
 *                  extra TCP connections are refused (RST), new UDP flows and pings
 *                  dropped; an established connection keeps echoing; once the guest
 *                  closes its connections, new ones work again under the same limit.
 *   EADDRNOTAVAIL  `outbound-addr=` names an address then removed from the namespace:
 *                  connects refused (RST), new UDP flows dropped; back once re-added.
 *   ENOBUFS        a device queue that drops everything (`tc qdisc ... pfifo limit 0`):
 *                  Linux reports the drop to a UDP sender only with IP_RECVERR, which
 *                  usernet's sockets have: dropped, counted, logged once.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { TestDnsServer } from "./harness/dns-server.js";
import type { Netns } from "./harness/netns.js";
import { describeE2E, trace } from "./harness/prereqs.js";
import { type E2eScope, e2eScope } from "./harness/scope.js";
import type { Usernet } from "./harness/usernet.js";

const tap = "uf0";
const dnsPort = 15355;
const echoPort = 18029;
const outside = "198.51.100.1";
const outbound = "198.51.100.2";
const dropAll = "198.51.100.7";

/** a TCP and a UDP echo on every address of the host namespace */
const echoServers = `
const net = require("node:net"), dgram = require("node:dgram");
net.createServer((c) => { c.on("error", () => {}); c.pipe(c); }).listen(${echoPort}, "0.0.0.0", () => {
  const u = dgram.createSocket("udp4");
  u.on("message", (m, r) => u.send(m, r.port, r.address));
  u.bind(${echoPort}, "0.0.0.0", () => process.stdout.write("listening\\n"));
});
`;

/**
 * Opens COUNT TCP connections to DST one after the other, prints
 * "opened=N refused=M other=CODES", checks the first still echoes ("echo=ok"), then
 * holds them all until killed.
 */
const holder = (dst: string, count: number) => `
const net = require("node:net");
const socks = []; let refused = 0; const other = [];
const one = () => new Promise((res) => {
  const s = net.connect(${echoPort}, "${dst}");
  const t = setTimeout(() => { other.push("timeout"); s.destroy(); res(); }, 8000);
  s.once("connect", () => { clearTimeout(t); socks.push(s); res(); });
  s.once("error", (e) => { clearTimeout(t); if (e.code === "ECONNREFUSED" || e.code === "ECONNRESET") refused++; else other.push(e.code); res(); });
});
(async () => {
  for (let i = 0; i < ${count}; i++) await one();
  process.stdout.write("opened=" + socks.length + " refused=" + refused + " other=" + other.join(",") + "\\n");
  const first = socks[0];
  if (!first) return;
  first.once("data", (d) => process.stdout.write("echo=" + (d.toString() === "still here" ? "ok" : "bad") + "\\n"));
  first.write("still here");
  setInterval(() => {}, 1000);
})();
`;

/** one TCP connection: "ok" when its echo came back, else the error code */
const tcpOnce = (dst: string) => `
const s = require("node:net").connect(${echoPort}, "${dst}");
const t = setTimeout(() => { process.stdout.write("timeout\\n"); process.exit(0); }, 8000);
s.on("connect", () => s.write("hi"));
s.on("data", () => { clearTimeout(t); process.stdout.write("ok\\n"); s.destroy(); });
s.on("error", (e) => { clearTimeout(t); process.stdout.write(e.code + "\\n"); });
`;

/** COUNT datagrams from one new socket: "reply" when an echo came back, else "silent" */
const udpOnce = (dst: string, count = 1) => `
const s = require("node:dgram").createSocket("udp4");
const t = setTimeout(() => { process.stdout.write("silent\\n"); s.close(); }, 1500);
s.on("message", () => { clearTimeout(t); process.stdout.write("reply\\n"); s.close(); });
s.bind(0, () => { for (let i = 0; i < ${count}; i++) s.send("x", ${echoPort}, "${dst}"); });
`;

interface Faulty {
  host: Netns;
  guest: Netns;
  usernet: Usernet;
  api: string;
}

/** The host namespace with its servers, usernet (API on a unix socket) and a guest namespace on its TAP. */
async function setUp(e2e: E2eScope, userOpts = ""): Promise<Faulty> {
  const dir = mkdtempSync(join(tmpdir(), "une2e-faults-"));
  e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
  const api = join(dir, "api.sock");
  const host = await e2e.netns();
  const guest = await e2e.netns();
  await host.execOk("ip", ["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
  await host.execOk("ip", ["link", "set", "d1", "up"]);
  await host.execOk("ip", ["addr", "add", `${outside}/24`, "dev", "d0"]);
  await host.execOk("ip", ["addr", "add", `${outbound}/24`, "dev", "d0"]);
  await host.execOk("ip", ["link", "set", "d0", "up"]);
  await host.execOk("sysctl", ["-qw", "net.ipv4.ping_group_range=0 2147483647"]);
  const dns = await TestDnsServer.start(host, { port: dnsPort, records: {} });
  e2e.defer(() => dns.close());
  const echo = host.spawn("echo", process.execPath, ["-e", echoServers]);
  await echo.until("echo servers listening", 10_000, () =>
    echo.stdout.includes("listening") ? true : undefined,
  );
  const usernet = await e2e.usernet(
    host,
    [
      "--api",
      api,
      "-netdev",
      `user,id=u0,dns-upstream=127.0.0.1:${dnsPort}${userOpts}`,
      "-netdev",
      `tap,id=t0,ifname=${tap},netns=${guest.name}`,
    ],
    { ready: { unix: [api] } },
  );
  await guest.waitForLink(tap);
  await guest.execOk("ip", ["link", "set", tap, "up"]);
  await guest.execOk("ip", ["addr", "add", "10.0.2.15/24", "dev", tap]);
  await guest.execOk("ip", ["route", "add", "default", "via", "10.0.2.2"]);
  return { host, guest, usernet, api };
}

const node = async (ns: Netns, script: string) =>
  (await ns.exec(process.execPath, ["-e", script], 20_000)).stdout.trim();

const ping = async (ns: Netns, dst: string) =>
  (await ns.exec("busybox", ["ping", "-c", "1", "-W", "2", dst], 10_000)).code === 0 ? "reply" : "silent";

/** usernet_host_faults_total for (where, code) as /metrics shows it (0 when absent). */
function hostFaultMetric(api: string, where: string, code: string): number {
  const r = spawnSync("curl", ["-sS", "--max-time", "10", "--unix-socket", api, "http://usernet/metrics"]);
  const text = r.stdout.toString();
  for (const line of text.split("\n")) {
    if (!line.startsWith("usernet_host_faults_total{")) continue;
    if (line.includes(`where="${where}"`) && line.includes(`code="${code}"`))
      return Number(line.split(" ").pop());
  }
  return 0;
}

function statusFaults(api: string): { where: string; code: string; count: number }[] {
  const r = spawnSync("curl", ["-sS", "--max-time", "10", "--unix-socket", api, "http://usernet/v1/status"]);
  return (JSON.parse(r.stdout.toString()) as { hostFaults: { where: string; code: string; count: number }[] })
    .hostFaults;
}

/** the log lines about host faults in WHERE with CODE */
const faultLines = (u: Usernet, where: string, code: string) =>
  u.stderr.split("\n").filter((l) => l.includes(`host fault in ${where} (${code})`));

const openFds = (pid: number) =>
  Number(spawnSync("sh", ["-c", `ls /proc/${pid}/fd | wc -l`]).stdout.toString());

describeE2E("host faults: EMFILE, EADDRNOTAVAIL, ENOBUFS", ["root", "netns", "tun", "usernet"], () => {
  const e2e = e2eScope();

  test("EMFILE: extra connections refused, UDP and pings dropped, the open flow goes on; all back once closed", async () => {
    const f = await setUp(e2e);
    const pid = f.usernet.proc.pid;
    // warm up: ARP, and one flow of each kind that then idles
    expect(await node(f.guest, tcpOnce("10.0.2.2"))).toBe("ok");
    expect(await node(f.guest, udpOnce("10.0.2.2"))).toBe("reply");
    expect(await ping(f.guest, outside)).toBe("reply");

    const before = readFileSync(`/proc/${pid}/limits`, "utf8").match(/Max open files\s+(\d+)\s+(\d+)/);
    const limit = openFds(pid) + 6;
    trace(`usernet fds ${openFds(pid)}, nofile limit lowered to ${limit}`);
    expect(spawnSync("prlimit", ["--pid", String(pid), `--nofile=${limit}:${limit}`]).status).toBe(0);
    e2e.defer(() => spawnSync("prlimit", ["--pid", String(pid), `--nofile=${before?.[1]}:${before?.[2]}`]));

    const hold = f.guest.spawn("holder", process.execPath, ["-e", holder("10.0.2.2", 16)]);
    await hold.until("the holder's connections", 120_000, () =>
      hold.stdout.includes("echo=") ? true : undefined,
    );
    trace(`holder: ${hold.stdout.trim().replace(/\n/g, " | ")}`);
    const m = /opened=(\d+) refused=(\d+) other=(\S*)/.exec(hold.stdout);
    const opened = Number(m?.[1]);
    const refused = Number(m?.[2]);
    expect(opened).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
    expect(opened + refused).toBe(16); // refused at once: no time-outs
    expect(m?.[3]).toBe("");
    expect(hold.stdout).toContain("echo=ok"); // an established flow keeps working

    // at the limit: a new UDP flow and a new ping socket are dropped, as libslirp drops them
    expect(await node(f.guest, udpOnce("10.0.2.2", 5))).toBe("silent");
    expect(await ping(f.guest, outside)).toBe("silent");

    // the guest closes its connections: the fds come back and so does the service
    await hold.kill(3000);
    let again = "";
    for (let i = 0; i < 20 && again !== "ok"; i++) {
      await new Promise((r) => setTimeout(r, 500));
      again = await node(f.guest, tcpOnce("10.0.2.2"));
    }
    expect(again).toBe("ok");
    expect(await node(f.guest, udpOnce("10.0.2.2"))).toBe("reply");
    expect(await ping(f.guest, outside)).toBe("reply");

    // the API itself needs an fd per request: ask it with the limit back
    spawnSync("prlimit", ["--pid", String(pid), `--nofile=${before?.[1]}:${before?.[2]}`]);
    expect(hostFaultMetric(f.api, "tcp-connect", "EMFILE")).toBeGreaterThanOrEqual(refused);
    expect(hostFaultMetric(f.api, "udp-socket", "EMFILE")).toBeGreaterThanOrEqual(1);
    expect(hostFaultMetric(f.api, "icmp-socket", "EMFILE")).toBeGreaterThanOrEqual(1);
    expect(statusFaults(f.api)).toContainEqual(
      expect.objectContaining({ where: "tcp-connect", code: "EMFILE" }),
    );
    expect(faultLines(f.usernet, "tcp-connect", "EMFILE")).toHaveLength(1);
    expect(faultLines(f.usernet, "udp-socket", "EMFILE")).toHaveLength(1);
  }, 300_000);

  test("EADDRNOTAVAIL: the outbound address removed, connects refused and UDP dropped; back once re-added", async () => {
    const f = await setUp(e2e, `,outbound-addr=${outbound}`);
    expect(await node(f.guest, tcpOnce(outside))).toBe("ok");
    await f.host.execOk("ip", ["addr", "del", `${outbound}/24`, "dev", "d0"]);
    expect(await node(f.guest, tcpOnce(outside))).toBe("ECONNREFUSED");
    expect(await node(f.guest, tcpOnce(outside))).toBe("ECONNREFUSED");
    expect(await node(f.guest, udpOnce(outside, 3))).toBe("silent");
    await f.host.execOk("ip", ["addr", "add", `${outbound}/24`, "dev", "d0"]);
    expect(await node(f.guest, tcpOnce(outside))).toBe("ok");
    expect(await node(f.guest, udpOnce(outside))).toBe("reply");
    expect(hostFaultMetric(f.api, "tcp-connect", "EADDRNOTAVAIL")).toBe(2);
    expect(hostFaultMetric(f.api, "udp-socket", "EADDRNOTAVAIL")).toBe(3);
    expect(faultLines(f.usernet, "tcp-connect", "EADDRNOTAVAIL")).toHaveLength(1);
  }, 120_000);

  test("ENOBUFS: a device queue that drops every datagram; counted, logged once, other flows served", async () => {
    const f = await setUp(e2e);
    // a neighbour that needs no ARP, behind a queue that takes nothing
    await f.host.execOk("ip", ["neigh", "add", dropAll, "lladdr", "02:00:00:00:00:07", "dev", "d0"]);
    await f.host.execOk("tc", ["qdisc", "add", "dev", "d0", "root", "pfifo", "limit", "0"]);
    expect(await node(f.guest, udpOnce(dropAll, 10))).toBe("silent");
    expect(await node(f.guest, udpOnce(dropAll, 10))).toBe("silent");
    expect(await node(f.guest, udpOnce("10.0.2.2"))).toBe("reply");
    expect(await node(f.guest, tcpOnce("10.0.2.2"))).toBe("ok");
    expect(hostFaultMetric(f.api, "udp-send", "ENOBUFS")).toBe(20);
    expect(faultLines(f.usernet, "udp-send", "ENOBUFS")).toHaveLength(1);
  }, 120_000);
});
