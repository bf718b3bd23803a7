/**
 * A network namespace whose own kernel TCP/IP stack sits behind usernet's TAP port:
 * `-netdev tap,ifname=ug0,netns=GUEST` next to a `-netdev user` on hub 0.
 *
 * Two namespaces: "host" runs usernet and the servers (HTTP, DNS, UDP echo, iperf3) on
 * its loopback; "guest" holds only the TAP and the clients — busybox udhcpc, ISC
 * dhclient, busybox nslookup and ping, curl, iperf3, a node UDP client. Nothing leaves
 * the two namespaces. Checks compare what arrived (leases, answers, sha256 of 50 MiB,
 * echoed datagrams, iperf3's byte counts), not exit codes alone. A UDP forward
 * (`hostfwd=udp:`) takes a host client's datagrams to an echo server in the guest
 * namespace and its answers back. The TAP runs with offloads (checksum, TSO); a second
 * test puts an offloading and a plain TAP on one hub so the hub must split the first
 * one's super frames for the second, and pings the gateway with 4,000 bytes at MTU
 * 1500 (fragments reassembled by usernet, the reply fragmented back: the namespace's
 * kernel counts the reassemblies).
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { startUdpEcho } from "./harness/nat-servers.js";
import { describeE2E, repoRoot, trace } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const tap = "ug0";
const dnsPort = 15353;
const httpPort = 18080;
const udpPort = 18009;
const iperfPort = 15201;
const udpFwdPort = 18011;

// sends 20 datagrams of 1..8000 bytes (the large ones fragmented) and checks each echo
const udpClient = `
const s = require("node:dgram").createSocket("udp4");
const sizes = [1, 100, 1400, 1472, 1473, 3000, 8000, 20, 500, 1000, 64, 128, 256, 512, 1024, 2048, 4000, 6000, 7000, 7999];
const want = new Map(); let ok = 0;
s.on("message", (m) => { const k = m.readUInt32BE(0); const w = want.get(k); if (w && w.equals(m)) { want.delete(k); ok++; } if (ok === sizes.length) { console.log("udp-echo ok=" + ok); process.exit(0); } });
sizes.forEach((n, i) => { const b = require("node:crypto").randomBytes(Math.max(n, 4)); b.writeUInt32BE(i, 0); want.set(i, b); s.send(b, ${udpPort}, "10.0.2.2"); });
setTimeout(() => { console.log("udp-echo ok=" + ok); process.exit(1); }, 5000);
`;

// the guest side of hostfwd=udp: echoes each datagram with a prefix
const udpFwdEcho = `
const s = require("node:dgram").createSocket("udp4");
s.on("message", (m, r) => s.send(Buffer.concat([Buffer.from("echo:"), m]), r.port, r.address));
s.bind(${udpFwdPort}, "10.0.2.15", () => process.stdout.write("listening\\n"));
`;

// the host side: three datagrams to the forward on 127.0.0.1, prints the answers sorted
const udpFwdClient = `
const s = require("node:dgram").createSocket("udp4");
const got = [];
s.on("message", (m) => { got.push(m.toString()); if (got.length === 3) done(); });
const done = () => { console.log(got.sort().join(" ") || "none"); process.exit(0); };
for (const w of ["a", "bb", "ccc"]) s.send(w, ${udpFwdPort}, "127.0.0.1");
setTimeout(done, 5000);
`;

function iperfBps(json: string, reverse: boolean): number {
  const r = JSON.parse(json) as { end: { sum_received: { bits_per_second: number; bytes: number } } };
  expect(r.end.sum_received.bytes).toBeGreaterThan(0);
  trace(
    `iperf3 ${reverse ? "host->ns" : "ns->host"}: ${(r.end.sum_received.bits_per_second / 1e9).toFixed(2)} Gb/s`,
  );
  return r.end.sum_received.bits_per_second;
}

describeE2E(
  "a namespace's kernel behind usernet's TAP port",
  ["root", "netns", "tun", "usernet"],
  () => {
    const e2e = e2eScope();

    test("DHCP (udhcpc, dhclient), DNS, ping, UDP, curl of 50 MiB and iperf3 both ways", async () => {
      const host = await e2e.netns();
      const guest = await e2e.netns();
      await guest.execOk("sysctl", ["-qw", "net.ipv6.conf.all.disable_ipv6=1"]);
      await guest.execOk("sysctl", ["-qw", "net.ipv6.conf.default.disable_ipv6=1"]);
      const dns = await e2e.dns(host, { port: dnsPort, records: { "web.test": ["192.0.2.80"] } });

      const dir = mkdtempSync(join(tmpdir(), "une2e-tap-"));
      e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
      const big = randomBytes(50 * 1024 * 1024);
      writeFileSync(join(dir, "big.bin"), big);
      const bigSha = createHash("sha256").update(big).digest("hex");
      const httpd = host.spawn("httpd", "busybox", ["httpd", "-f", "-p", `127.0.0.1:${httpPort}`, "-h", dir]);
      e2e.watch(httpd);
      await startUdpEcho(host, udpPort);
      const iperf = host.spawn("iperf3-server", "iperf3", ["-s", "-B", "127.0.0.1", "-p", String(iperfPort)]);
      e2e.watch(iperf);

      const u = await e2e.usernet(host, [
        "-netdev",
        `user,id=u0,mtu=65520,dns-upstream=127.0.0.1:${dnsPort},tftp=${dir},hostfwd=udp:127.0.0.1:${udpFwdPort}-10.0.2.15:${udpFwdPort}`,
        "-netdev",
        `tap,id=t0,ifname=${tap},netns=${guest.name}`,
      ]);
      await guest.waitForLink(tap);
      expect(u.stderr).toMatch(/t0: tap ug0 in \/run\/netns\//);
      await guest.execOk("ip", ["link", "set", tap, "mtu", "65520", "up"]);

      // DHCP: both clients are offered the first address, with the gateway and DNS
      const udhcpc = await guest.exec(
        "busybox",
        ["udhcpc", "-i", tap, "-f", "-q", "-n", "-t", "5", "-T", "1", "-s", "/bin/true"],
        20_000,
      );
      expect(`${udhcpc.stdout}${udhcpc.stderr}`).toMatch(/lease of 10\.0\.2\.15 obtained/);
      const leases = join(dir, "dhclient.leases");
      const dhclient = await guest.exec(
        "dhclient",
        ["-1", "-v", "-sf", "/bin/true", "-lf", leases, "-pf", join(dir, "dhclient.pid"), tap],
        30_000,
      );
      expect(dhclient.stderr).toMatch(/DHCPACK of 10\.0\.2\.15 from 10\.0\.2\.2/);
      // dhclient -1 with -sf stays running in the background: it is killed with the namespace

      await guest.execOk("ip", ["addr", "add", "10.0.2.15/24", "dev", tap]);
      await guest.execOk("ip", ["route", "add", "default", "via", "10.0.2.2"]);

      const ping = await guest.exec("busybox", ["ping", "-c", "3", "-W", "2", "10.0.2.2"], 15_000);
      expect(ping.stdout).toMatch(/3 packets transmitted, 3 packets received/);

      const ns = await guest.exec("busybox", ["nslookup", "web.test", "10.0.2.3"], 15_000);
      expect(ns.stdout).toMatch(/Address:\s*192\.0\.2\.80/);
      expect(dns.queries().some((q) => q.name === "web.test")).toBe(true);

      const udp = await guest.exec(process.execPath, ["-e", udpClient], 15_000);
      expect(udp.stdout.trim()).toBe("udp-echo ok=20");

      // hostfwd=udp: a host client on 127.0.0.1 reaches the guest's server and hears back
      const fwdEcho = guest.spawn("udp-fwd-echo", process.execPath, ["-e", udpFwdEcho]);
      e2e.watch(fwdEcho);
      await fwdEcho.until("udp forward echo listening", 10_000, () =>
        fwdEcho.stdout.includes("listening") ? true : undefined,
      );
      const fwd = await host.execOk(process.execPath, ["-e", udpFwdClient], 15_000);
      expect(fwd.trim()).toBe("echo:a echo:bb echo:ccc");

      const t0 = Date.now();
      const curl = await guest.exec(
        "sh",
        ["-c", `curl -sS --max-time 60 http://10.0.2.2:${httpPort}/big.bin | sha256sum`],
        90_000,
      );
      trace(`curl 50 MiB over the TAP: ${Date.now() - t0} ms`);
      expect(curl.stdout.split(" ")[0]).toBe(bigSha);

      // the npm `tftp` package as a client of usernet's TFTP server, with and without blksize
      const small = randomBytes(3 * 1024 * 1024 + 17);
      writeFileSync(join(dir, "small.bin"), small);
      const smallSha = createHash("sha256").update(small).digest("hex");
      for (const blockSize of [512, 1428]) {
        const out = join(dir, `npm-tftp-${blockSize}.bin`);
        const fetched = await guest.exec(
          process.execPath,
          [
            "-e",
            `const t = require(${JSON.stringify(join(repoRoot, "node_modules", "tftp"))});
             t.createClient({ host: "10.0.2.2", port: 69, blockSize: ${blockSize}, retries: 3, timeout: 3000 })
              .get("small.bin", ${JSON.stringify(out)}, (e) => { console.log(e ? "ERR " + e.message : "OK"); process.exit(0); });`,
          ],
          60_000,
        );
        expect(fetched.stdout.trim()).toBe("OK");
        expect(createHash("sha256").update(readFileSync(out)).digest("hex")).toBe(smallSha);
      }

      const up = await guest.execOk(
        "iperf3",
        ["-c", "10.0.2.2", "-p", String(iperfPort), "-t", "3", "-J"],
        30_000,
      );
      const down = await guest.execOk(
        "iperf3",
        ["-c", "10.0.2.2", "-p", String(iperfPort), "-t", "3", "-J", "-R"],
        30_000,
      );
      // a floor far below what the path does, so only a broken path fails
      expect(iperfBps(up, false)).toBeGreaterThan(50e6);
      expect(iperfBps(down, true)).toBeGreaterThan(50e6);
      // the offloads were in use: the kernel handed over TCP super frames
      const tso = await guest.execOk("ethtool", ["-k", tap], 10_000);
      expect(tso).toMatch(/tcp-segmentation-offload: on/);
    });

    test("an offloading TAP and a plain one on one hub: super frames reach the plain side split and checksummed", async () => {
      const host = await e2e.netns();
      const fast = await e2e.netns();
      const plain = await e2e.netns();
      const dir = mkdtempSync(join(tmpdir(), "une2e-tap2-"));
      e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
      const big = randomBytes(20 * 1024 * 1024);
      writeFileSync(join(dir, "big.bin"), big);
      const bigSha = createHash("sha256").update(big).digest("hex");
      await e2e.usernet(host, [
        "-netdev",
        `user,id=u0,dns-upstream=127.0.0.1:${dnsPort}`,
        "-netdev",
        `tap,id=t0,ifname=${tap},netns=${fast.name}`,
        "-netdev",
        `tap,id=t1,ifname=${tap},netns=${plain.name},vnet_hdr=off`,
      ]);
      for (const [ns, addr] of [
        [fast, "10.0.2.15"],
        [plain, "10.0.2.16"],
      ] as const) {
        await ns.setUpTap(tap, { addrs: [`${addr}/24`] });
      }
      expect(await fast.execOk("ethtool", ["-k", tap], 10_000)).toMatch(/tcp-segmentation-offload: on/);
      expect(await plain.execOk("ethtool", ["-k", tap], 10_000)).toMatch(/tcp-segmentation-offload: off/);
      const httpd = fast.spawn("httpd", "busybox", ["httpd", "-f", "-p", `10.0.2.15:${httpPort}`, "-h", dir]);
      e2e.watch(httpd);
      // the plain namespace's kernel verifies every checksum: a bad split would stall or corrupt
      const curl = await plain.exec(
        "sh",
        [
          "-c",
          `curl -sS --retry 3 --retry-connrefused --max-time 60 http://10.0.2.15:${httpPort}/big.bin | sha256sum`,
        ],
        90_000,
      );
      expect(curl.stdout.split(" ")[0]).toBe(bigSha);
      const csumErrors = await plain.execOk("sh", ["-c", "nstat -az TcpInCsumErrors | tail -1"], 10_000);
      expect(csumErrors).toMatch(/TcpInCsumErrors\s+0\b/);

      // A 4,000-byte ping at MTU 1500: the request leaves in three fragments that usernet
      // reassembles; its reply must come back fragmented too, which the namespace's
      // kernel counts as reassemblies (an unfragmented 4,028-byte reply would not be).
      const reasm = async () =>
        Number(/IpReasmOKs\s+(\d+)/.exec(await plain.execOk("nstat", ["-az", "IpReasmOKs"], 10_000))?.[1]);
      const before = await reasm();
      const bigPing = await plain.exec(
        "busybox",
        ["ping", "-c", "2", "-W", "3", "-s", "4000", "10.0.2.2"],
        20_000,
      );
      expect(bigPing.stdout).toMatch(/2 packets transmitted, 2 packets received/);
      expect(bigPing.stdout).toMatch(/4008 bytes from 10\.0\.2\.2/);
      expect((await reasm()) - before).toBe(2);
    });
  },
  { timeoutMs: 240_000 },
);
