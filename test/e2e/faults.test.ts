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
 *   ENOSPC         --state-dir on a 64 KiB tmpfs (in usernet's private mount
 *                  namespace) filled up: DHCP still ACKs (from memory), a forward add
 *                  is refused with 507 and undone, the files keep the last good state
 *                  (whole JSON, no temp files), one log line per file; once space
 *                  returns the next change is written and logged as saved again.
 *                  `usernet ctl capture` writing to a full 64 KiB tmpfs stops, says so,
 *                  exits 1 and cuts the file back to its last whole record (we chose
 *                  stopping over resuming: a pcap with a silent hole would mislead);
 *                  usernet ends that capture and goes on.
 *   DNS            the upstream on 127.0.0.1 killed: SERVFAIL at once (its closed
 *                  port answers ICMP), answers again once it is back; with two, the
 *                  second answers.
 *   QEMU peers     a stream client that dies inside a frame, one that sends a length
 *                  of 0xffffffff: each dropped and counted, the hub and the other
 *                  ports go on. (A length below 14, 0 included, is skipped and the
 *                  peer kept: see length-prefixed-frames.ts.)
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { expect, test } from "vitest";
import { TestDnsServer } from "./harness/dns-server.js";
import type { Netns } from "./harness/netns.js";
import { describeE2E, trace, usernetMain } from "./harness/prereqs.js";
import { type E2eScope, e2eScope } from "./harness/scope.js";
import type { Usernet, UsernetOptions } from "./harness/usernet.js";

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

/** COUNT datagrams of 1200 bytes from one socket, then "replies=N" after a second */
const udpBurst = (dst: string, count: number) => `
const s = require("node:dgram").createSocket("udp4");
let n = 0;
s.on("message", () => n++);
s.bind(0, () => { for (let i = 0; i < ${count}; i++) s.send(Buffer.alloc(1200, i), ${echoPort}, "${dst}"); });
setTimeout(() => { process.stdout.write("replies=" + n + "\\n"); s.close(); }, 1000);
`;

/** Walks a pcap file's records: "records=N whole=true|false" (false: it ends inside one). */
const pcapCheck = `
const b = require("node:fs").readFileSync(process.argv[1]);
let at = 24, n = 0;
while (at + 16 <= b.length) { const len = b.readUInt32LE(at + 8); if (at + 16 + len > b.length) break; at += 16 + len; n++; }
console.log("records=" + n + " whole=" + (b.length >= 24 && b.readUInt32LE(0) === 0xa1b2c3d4 && at === b.length));
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
async function setUp(
  e2e: E2eScope,
  userOpts = "",
  more: { args?: string[]; opts?: UsernetOptions } = {},
): Promise<Faulty> {
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
      ...(more.args ?? []),
      "--api",
      api,
      "-netdev",
      `user,id=u0,dns-upstream=127.0.0.1:${dnsPort}${userOpts}`,
      "-netdev",
      `tap,id=t0,ifname=${tap},netns=${guest.name}`,
    ],
    { ...more.opts, ready: { unix: [api] } },
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

/** One sample of /metrics by its exact name and labels (0 when absent). */
function metric(api: string, series: string): number {
  const r = spawnSync("curl", ["-sS", "--max-time", "10", "--unix-socket", api, "http://usernet/metrics"]);
  const line = r.stdout
    .toString()
    .split("\n")
    .find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.split(" ").pop());
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

  test("ENOSPC: the state directory's disk full; DHCP and NAT go on, forwards refused and undone, files intact", async () => {
    const state = join(mkdtempSync(join(tmpdir(), "une2e-faults-state-")), "state");
    e2e.defer(() => rmSync(dirname(state), { recursive: true, force: true }));
    const f = await setUp(e2e, "", {
      args: ["--state-dir", state],
      opts: { mountSetup: `mkdir -p ${state} && mount -t tmpfs -o size=64k,mode=0700 tmpfs ${state}` },
    });
    const pid = f.usernet.proc.pid;
    const inMnt = (cmd: string) => spawnSync("nsenter", ["-t", String(pid), "-m", "--", "sh", "-c", cmd]);
    const readState = (file: string) => JSON.parse(inMnt(`cat ${state}/${file}`).stdout.toString());
    const dhcp = async (name: string) =>
      (
        await f.guest.exec(
          "busybox",
          [
            "udhcpc",
            "-i",
            tap,
            "-n",
            "-q",
            "-t",
            "3",
            "-T",
            "1",
            "-s",
            "/bin/true",
            "-x",
            `hostname:${name}`,
          ],
          20_000,
        )
      ).code;
    const addForward = (hostPort: number) =>
      spawnSync("curl", [
        ..."-sS --max-time 10 -o /dev/stderr -w %{http_code} -H content-type:application/json".split(" "),
        "--unix-socket",
        f.api,
        "-d",
        JSON.stringify({ hostAddr: "127.0.0.1", hostPort, guestPort: 80 }),
        "http://usernet/v1/forwards",
      ]).stdout.toString();
    const leaseName = () => readState("dhcp-leases-u0.json").leases[0]?.hostname;
    const forwardPorts = () =>
      (readState("forwards.json").forwards as { rule: { hostPort: number } }[]).map((x) => x.rule.hostPort);

    expect(await dhcp("before")).toBe(0);
    expect(addForward(18201)).toBe("201");
    expect(leaseName()).toBe("before");
    expect(forwardPorts()).toEqual([18201]);

    // the disk fills up (the write fails with ENOSPC at 64 KiB)
    expect(inMnt(`cat /dev/zero > ${state}/fill`).status).not.toBe(0);
    expect(await dhcp("during")).toBe(0); // ACKed from memory
    expect(await dhcp("during2")).toBe(0);
    expect(addForward(18202)).toBe("507");
    expect(addForward(18203)).toBe("507");
    expect(await node(f.guest, tcpOnce("10.0.2.2"))).toBe("ok");
    // the last good state, whole, and nothing left behind
    expect(leaseName()).toBe("before");
    expect(forwardPorts()).toEqual([18201]);
    expect(inMnt(`ls ${state}`).stdout.toString().split("\n").filter(Boolean).sort()).toEqual([
      "dhcp-leases-u0.json",
      "fill",
      "forwards.json",
    ]);
    expect(f.usernet.stderr.match(/cannot save DHCP leases/g)).toHaveLength(1);
    expect(f.usernet.stderr.match(/cannot save the runtime forwards/g)).toHaveLength(1);
    expect(hostFaultMetric(f.api, "state-write", "ENOSPC")).toBeGreaterThanOrEqual(4);

    // space comes back: the next change writes everything
    inMnt(`rm ${state}/fill`);
    expect(await dhcp("after")).toBe(0);
    expect(addForward(18204)).toBe("201");
    expect(leaseName()).toBe("after");
    expect(forwardPorts()).toEqual([18201, 18204]);
    // stderr is a pipe: its last lines may arrive after the API's answer
    for (const again of [/DHCP leases saved again/, /the runtime forwards saved again/]) {
      await f.usernet.proc.until(`"${again.source}" in the log`, 5000, () =>
        again.test(f.usernet.stderr) ? true : undefined,
      );
    }
  }, 120_000);

  test("ENOSPC under a capture: usernet ctl capture stops cleanly (whole records kept), usernet ends the capture and goes on", async () => {
    const f = await setUp(e2e);
    const disk = mkdtempSync(join(tmpdir(), "une2e-faults-capture-"));
    e2e.defer(() => rmSync(disk, { recursive: true, force: true }));
    const pcap = join(disk, "hub0.pcap");
    // ctl writes to a 64 KiB tmpfs in a mount namespace of its own, then the file is checked there
    const script = [
      `mount -t tmpfs -o size=64k tmpfs ${disk}`,
      `${process.execPath} ${usernetMain()} ctl --api ${f.api} capture 0 ${pcap}`,
      "echo ctl-exit=$?",
      `${process.execPath} -e "$PCAP_CHECK" ${pcap}`,
    ].join("; ");
    const ctl = f.host.spawn("ctl", "unshare", ["-m", "--propagation", "private", "sh", "-c", script], {
      env: { ...process.env, PCAP_CHECK: pcapCheck },
    });
    await f.usernet.proc.until("the capture started", 10_000, () =>
      /capture\d+ started/.test(f.usernet.stderr) ? true : undefined,
    );
    // about 400 frames of 1.2 KB through the hub: more than the disk holds
    expect(await node(f.guest, udpBurst("10.0.2.2", 200))).toMatch(/^replies=\d+$/);
    await ctl.until("ctl's check of the file", 20_000, () =>
      ctl.stdout.includes("records=") ? true : undefined,
    );
    trace(`ctl: ${ctl.stdout.trim()} | ${ctl.stderr.trim()}`);
    expect(ctl.stdout).toContain("ctl-exit=1");
    expect(ctl.stderr).toMatch(
      /no space left on device, write; capture stopped, \d+ bytes of whole records kept/,
    );
    expect(ctl.stdout).toMatch(/records=[1-9]\d* whole=true/);
    await f.usernet.proc.until("the capture ended", 10_000, () =>
      /capture\d+ ended \(sink-closed\)/.test(f.usernet.stderr) ? true : undefined,
    );
    expect(await node(f.guest, udpOnce("10.0.2.2"))).toBe("reply");
    expect(await node(f.guest, tcpOnce("10.0.2.2"))).toBe("ok");
  }, 120_000);

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

/**
 * A lookup of NAME through 10.0.2.3 with one try and a 6 s time-out (c-ares, Node's
 * resolver): "NOERROR 192.0.2.N ms=T", or "ESERVFAIL ms=T" / "ETIMEOUT ms=T".
 */
const lookup = (name: string) => `
const { Resolver } = require("node:dns").promises;
const r = new Resolver({ timeout: 6000, tries: 1 });
r.setServers(["10.0.2.3"]);
const t0 = Date.now();
r.resolve4("${name}").then(
  (a) => process.stdout.write("NOERROR " + a.join(",") + " ms=" + (Date.now() - t0) + "\\n"),
  (e) => process.stdout.write(e.code + " ms=" + (Date.now() - t0) + "\\n"),
);
`;

function lookupResult(out: string): { status: string; ms: number } {
  const m = /^(\S+).* ms=(\d+)$/m.exec(out);
  if (!m) throw new Error(`no lookup result in: ${out}`);
  return { status: `${m[1]}${out.includes("NOERROR") ? ` ${out.split(" ")[1]}` : ""}`, ms: Number(m[2]) };
}

describeE2E(
  "faults: a dead DNS upstream, broken QEMU stream peers",
  ["root", "netns", "tun", "usernet"],
  () => {
    const e2e = e2eScope();
    const portA = 15361;
    const portB = 15362;

    async function dnsSetUp(upstreams: number[]) {
      const host = await e2e.netns();
      const guest = await e2e.netns();
      const a = await TestDnsServer.start(host, {
        port: portA,
        records: { "www.example.test": ["192.0.2.1"] },
      });
      e2e.defer(() => a.close());
      if (upstreams.includes(portB)) {
        const b = await TestDnsServer.start(host, {
          port: portB,
          records: { "www.example.test": ["192.0.2.2"] },
        });
        e2e.defer(() => b.close());
      }
      const dir = mkdtempSync(join(tmpdir(), "une2e-faults-"));
      e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
      const api = join(dir, "api.sock");
      const usernet = await e2e.usernet(
        host,
        [
          "--api",
          api,
          "-netdev",
          `user,id=u0,${upstreams.map((p) => `dns-upstream=127.0.0.1:${p}`).join(",")}`,
          "-netdev",
          `tap,id=t0,ifname=${tap},netns=${guest.name}`,
        ],
        { ready: { unix: [api] } },
      );
      await guest.waitForLink(tap);
      await guest.execOk("ip", ["link", "set", tap, "up"]);
      await guest.execOk("ip", ["addr", "add", "10.0.2.15/24", "dev", tap]);
      const ask = async () => lookupResult(await node(guest, lookup("www.example.test")));
      return { host, guest, usernet, a, ask, api };
    }

    test("the only upstream killed: SERVFAIL at once, logged once; answers again once it is back", async () => {
      const t = await dnsSetUp([portA]);
      expect((await t.ask()).status).toBe("NOERROR 192.0.2.1");
      await t.a.close();
      const dead = [await t.ask(), await t.ask(), await t.ask(), await t.ask()];
      trace(`dead upstream: ${JSON.stringify(dead)}`);
      for (const r of dead) {
        expect(r.status).toBe("ESERVFAIL");
        expect(r.ms).toBeLessThan(1500); // not the 2 s try nor the 5 s query time-out
      }
      expect(t.usernet.stderr.match(/no DNS upstream answered/g)).toHaveLength(1);
      expect(metric(t.api, 'usernet_dns_messages_total{netdev="u0",kind="servfail"}')).toBe(4);
      expect(
        metric(t.api, 'usernet_dns_upstream_failures_total{netdev="u0",reason="connection-refused"}'),
      ).toBe(4);
      const again = await TestDnsServer.start(t.host, {
        port: portA,
        records: { "www.example.test": ["192.0.2.1"] },
      });
      e2e.defer(() => again.close());
      expect((await t.ask()).status).toBe("NOERROR 192.0.2.1");
      expect(t.usernet.stderr).toMatch(/a DNS upstream answers again/);
    }, 120_000);

    test("the first of two upstreams killed: answered by the second, promptly; the first again once back", async () => {
      const t = await dnsSetUp([portA, portB]);
      expect((await t.ask()).status).toBe("NOERROR 192.0.2.1");
      await t.a.close();
      for (let i = 0; i < 3; i++) {
        const r = await t.ask();
        expect(r.status).toBe("NOERROR 192.0.2.2");
        expect(r.ms).toBeLessThan(1500);
      }
      expect(t.usernet.stderr).not.toMatch(/no DNS upstream answered/);
      const again = await TestDnsServer.start(t.host, {
        port: portA,
        records: { "www.example.test": ["192.0.2.1"] },
      });
      e2e.defer(() => again.close());
      // the second stays preferred for a minute after answering; both answers are good
      expect((await t.ask()).status).toMatch(/^NOERROR 192\.0\.2\.[12]$/);
    }, 120_000);

    test("QEMU stream peers: one dies mid-frame, one sends a garbage length; both dropped, counted, the hub goes on", async () => {
      const dir = mkdtempSync(join(tmpdir(), "une2e-faults-"));
      e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
      const api = join(dir, "api.sock");
      const host = await e2e.netns();
      const guest = await e2e.netns();
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
          `user,id=u0,dns-upstream=127.0.0.1:${dnsPort}`,
          "-netdev",
          `tap,id=t0,ifname=${tap},netns=${guest.name}`,
          "-netdev",
          "socket,id=s0,listen=127.0.0.1:10000",
        ],
        { ready: { unix: [api], tcp: [10000] } },
      );
      await guest.waitForLink(tap);
      await guest.execOk("ip", ["link", "set", tap, "up"]);
      await guest.execOk("ip", ["addr", "add", "10.0.2.15/24", "dev", tap]);
      await guest.execOk("ip", ["route", "add", "default", "via", "10.0.2.2"]);
      expect(await node(guest, tcpOnce("10.0.2.2"))).toBe("ok");

      const peer = async (mode: string) => (await node(host, streamPeer(mode))).trim();
      expect(await peer("arp")).toBe("arp-reply");
      // a long transfer from the namespace runs while the peers misbehave
      const hold = guest.spawn("holder", process.execPath, ["-e", holder("10.0.2.2", 1)]);
      await hold.until("the holder's connection", 30_000, () =>
        hold.stdout.includes("echo=") ? true : undefined,
      );
      expect(await peer("half-frame-reset")).toBe("sent");
      expect(await peer("half-frame-close")).toBe("sent");
      expect(await peer("garbage-length")).toBe("closed-by-usernet");
      expect(await peer("arp")).toBe("arp-reply");
      expect(await node(guest, tcpOnce("10.0.2.2"))).toBe("ok");
      expect(hold.exit).toBeUndefined();
      expect(hostFaultMetric(api, "stream-port", "mid-frame")).toBe(2);
      expect(hostFaultMetric(api, "stream-port", "bad-length")).toBe(1);
      expect(faultLines(usernet, "stream-port", "mid-frame")).toHaveLength(1);
      expect(faultLines(usernet, "stream-port", "bad-length")).toHaveLength(1);
    }, 120_000);
  },
);

/**
 * A QEMU stream peer on 127.0.0.1:10000 (4-byte length before each frame):
 *   arp              asks who has 10.0.2.2, prints "arp-reply" when the answer comes
 *   half-frame-*     sends a length of 60 and 20 bytes of the frame, then resets the
 *                    connection or closes it; prints "sent"
 *   garbage-length   sends a length of 0xffffffff; prints "closed-by-usernet" once
 *                    usernet hangs up
 */
const streamPeer = (mode: string) => `
const net = require("node:net");
const mac = Buffer.from([0x52, 0x54, 0x00, 0xaa, 0xbb, 0x01]);
const arp = Buffer.concat([
  Buffer.alloc(6, 0xff), mac, Buffer.from([0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]), mac,
  Buffer.from([10, 0, 2, 20]), Buffer.alloc(6), Buffer.from([10, 0, 2, 2]), Buffer.alloc(18),
]);
const framed = (f) => { const h = Buffer.alloc(4); h.writeUInt32BE(f.length); return Buffer.concat([h, f]); };
const s = net.connect(10000, "127.0.0.1");
const t = setTimeout(() => { process.stdout.write("timeout\\n"); process.exit(0); }, 8000);
const done = (w) => { clearTimeout(t); process.stdout.write(w + "\\n"); };
let got = Buffer.alloc(0);
s.on("error", () => {});
s.on("connect", () => {
  const mode = "${mode}";
  if (mode === "arp") s.write(framed(arp));
  else if (mode.startsWith("half-frame")) {
    const h = Buffer.alloc(4); h.writeUInt32BE(60);
    s.write(Buffer.concat([h, arp.subarray(0, 20)]), () => setTimeout(() => {
      if (mode === "half-frame-reset") s.resetAndDestroy(); else s.end();
      done("sent");
    }, 200));
  } else if (mode === "garbage-length") {
    s.write(Buffer.from([0xff, 0xff, 0xff, 0xff]));
    s.on("close", () => done("closed-by-usernet"));
  }
});
s.on("data", (d) => {
  got = Buffer.concat([got, d]);
  while (got.length >= 4 && got.length >= 4 + got.readUInt32BE(0)) {
    const f = got.subarray(4, 4 + got.readUInt32BE(0));
    got = got.subarray(4 + f.length);
    if (f.readUInt16BE(12) === 0x0806 && f.readUInt16BE(20) === 2 && f.subarray(0, 6).equals(mac)) {
      done("arp-reply"); s.destroy();
    }
  }
});
`;
