/**
 * Per-guest bounds seen by real sockets: two namespaces, each behind its own TAP port
 * of usernet's hub (a guest is its hub port and MAC). With udp-max-sockets-per-guest=2,
 * the first two UDP sockets of the first guest get their echo back through the NAT, a
 * third gets nothing (its datagram is dropped, no ICMP), and neither does one from a
 * second address of the same guest; the other guest is still served.
 *
 * The buffer budget, host → guest: with buffer-max-bytes-per-guest=4 MiB, a guest opens
 * 64 connections to a host server that sends 8 MiB on each and does not read them (its
 * kernel takes at most 64 KiB of each). usernet's RSS grows by about the budget plus
 * a margin (before the budget held these bytes: +88 MiB, each connection's 1 MiB send
 * buffer and a held read), while another guest's curl downloads 20 MiB; once the guest
 * reads, every connection delivers its 8 MiB, every byte checked.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { startUdpEcho } from "./harness/nat-servers.js";
import { describeE2E, trace } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const tap = "ub0";
const dnsPort = 15354;
const echoPort = 18019;

/** one new socket bound to SRC sends to the echo at 10.0.2.2 and says whether it heard back */
const probe = (src: string) => `
const s = require("node:dgram").createSocket("udp4");
const t = setTimeout(() => { process.stdout.write("silent\\n"); s.close(); }, 1500);
s.on("message", () => { clearTimeout(t); process.stdout.write("reply\\n"); s.close(); });
s.bind(0, "${src}", () => s.send("x", ${echoPort}, "10.0.2.2"));
`;

describeE2E(
  "bounds: one guest at its UDP socket bound, another still served",
  ["root", "netns", "tun", "usernet"],
  () => {
    const e2e = e2eScope();

    test("udp-max-sockets-per-guest=2: a third socket of one guest is dropped, another guest's is not", async () => {
      const host = await e2e.netns();
      const guest = await e2e.netns();
      const other = await e2e.netns();
      await e2e.dns(host, { port: dnsPort, records: {} });
      await startUdpEcho(host, echoPort);
      await e2e.usernet(host, [
        "-netdev",
        `user,id=u0,dns-upstream=127.0.0.1:${dnsPort},udp-max-sockets-per-guest=2`,
        "-netdev",
        `tap,id=t0,ifname=${tap},netns=${guest.name}`,
        "-netdev",
        `tap,id=t1,ifname=${tap},netns=${other.name}`,
      ]);
      await guest.setUpTap(tap, { addrs: ["10.0.2.15/24", "10.0.2.16/24"] });
      await other.setUpTap(tap, { addrs: ["10.0.2.17/24"] });
      const run = async (ns: typeof guest, src: string) =>
        (await ns.exec(process.execPath, ["-e", probe(src)], 15_000)).stdout.trim();
      const first = [
        await run(guest, "10.0.2.15"),
        await run(guest, "10.0.2.15"),
        await run(guest, "10.0.2.15"),
      ];
      trace(`10.0.2.15: ${first.join(" ")}`);
      expect(first).toEqual(["reply", "reply", "silent"]);
      // another address of the same guest counts against the same bound
      expect(await run(guest, "10.0.2.16")).toBe("silent");
      expect(await run(other, "10.0.2.17")).toBe("reply");
    }, 120_000);
  },
);

const budgetTap = "ub1";
const budgetDnsPort = 15355;
const senderPort = 18092;
const httpPort = 18093;
const conns = 64;
const perConn = 8 * 1024 * 1024;
const budget = 4 * 1024 * 1024;

// the same bytes on every connection, so the guest can check each one
const pattern = `const pattern = Buffer.alloc(${perConn}); for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 7 + (i >>> 13)) & 0xff;`;

// sends 8 MiB on every connection it accepts, then closes
const sender = `${pattern}
require("node:net").createServer((s) => { s.on("error", () => {}); s.end(pattern); })
  .listen(${senderPort}, "127.0.0.1", 512, () => process.stdout.write("listening\\n"));
`;

// opens the connections without reading them; once GO exists, reads and checks every byte
const hoarder = (go: string) => `${pattern}
const net = require("node:net"), fs = require("node:fs");
let connected = 0, ok = 0, bad = 0;
const socks = [];
for (let k = 0; k < ${conns}; k++) {
  const s = net.connect(${senderPort}, "10.0.2.2");
  s.pause();
  let at = 0;
  s.on("connect", () => { if (++connected === ${conns}) process.stdout.write("connected\\n"); });
  s.on("data", (d) => { if (at + d.length > pattern.length || !pattern.subarray(at, at + d.length).equals(d)) bad++; at += d.length; });
  s.on("end", () => { if (at === pattern.length) ok++; else bad++; if (ok + bad === ${conns}) process.stdout.write("done " + ok + " " + bad + "\\n"); });
  s.on("error", (e) => { bad++; process.stdout.write("error " + e.message + "\\n"); });
  socks.push(s);
}
const t = setInterval(() => { if (fs.existsSync(${JSON.stringify(go)})) { clearInterval(t); for (const s of socks) s.resume(); } }, 100);
setTimeout(() => process.exit(2), 200000);
`;

/** usernet's resident set, bytes */
const rss = (pid: number) => {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) * 1024;
};

describeE2E(
  "bounds: the buffer budget holds host bytes a guest does not read",
  ["root", "netns", "tun", "usernet"],
  () => {
    const e2e = e2eScope();

    test(`buffer-max-bytes-per-guest=4 MiB: ${conns} unread 8 MiB downloads keep usernet's RSS near the budget; another guest downloads; all complete once read`, async () => {
      const host = await e2e.netns();
      const guest = await e2e.netns();
      const other = await e2e.netns();
      const dir = mkdtempSync(join(tmpdir(), "une2e-budget-"));
      e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
      const file = randomBytes(20 * 1024 * 1024);
      writeFileSync(join(dir, "file.bin"), file);
      const sha = createHash("sha256").update(file).digest("hex");
      await e2e.dns(host, { port: budgetDnsPort, records: {} });
      const httpd = host.spawn("httpd", "busybox", ["httpd", "-f", "-p", `127.0.0.1:${httpPort}`, "-h", dir]);
      e2e.watch(httpd);
      const send = host.spawn("sender", process.execPath, ["-e", sender]);
      e2e.watch(send);
      await send.until("sender listening", 10_000, () =>
        send.stdout.includes("listening") ? true : undefined,
      );
      const u = await e2e.usernet(host, [
        "-netdev",
        `user,id=u0,dns-upstream=127.0.0.1:${budgetDnsPort},buffer-max-bytes-per-guest=${budget}`,
        "-netdev",
        `tap,id=t0,ifname=${budgetTap},netns=${guest.name}`,
        "-netdev",
        `tap,id=t1,ifname=${budgetTap},netns=${other.name}`,
      ]);
      await guest.setUpTap(budgetTap, { addrs: ["10.0.2.15/24"] });
      await other.setUpTap(budgetTap, { addrs: ["10.0.2.16/24"] });
      // the guest kernel takes little of each connection into its own socket buffers,
      // so what it does not read waits in usernet
      await guest.execOk("sysctl", ["-w", "net.ipv4.tcp_rmem=4096 16384 65536"]);
      const before = rss(u.proc.pid);
      const go = join(dir, "go");
      const h = guest.spawn("hoarder", process.execPath, ["-e", hoarder(go)]);
      e2e.watch(h);
      await h.until("all connected", 60_000, () => (h.stdout.includes("connected") ? true : undefined));
      let peak = 0;
      const watchRss = setInterval(() => {
        peak = Math.max(peak, rss(u.proc.pid));
      }, 100);
      try {
        await new Promise((r) => setTimeout(r, 3000));
        const curl = await other.exec(
          "sh",
          ["-c", `curl -sS --max-time 60 http://10.0.2.2:${httpPort}/file.bin | sha256sum`],
          90_000,
        );
        expect(curl.stdout.split(" ")[0]).toBe(sha);
        await new Promise((r) => setTimeout(r, 1000));
      } finally {
        clearInterval(watchRss);
      }
      const grew = peak - before;
      trace(
        `usernet RSS ${before >> 20} MiB before, peak ${peak >> 20} MiB (+${grew >> 20} MiB) with ${conns} unread connections`,
      );
      // unbounded, each connection would hold its 1 MiB send buffer (+ a held read)
      expect(grew).toBeLessThan(budget + 24 * 1024 * 1024);
      writeFileSync(go, "");
      await h.until("all read", 120_000, () => (/done \d+ \d+/.test(h.stdout) ? true : undefined));
      expect(h.stdout).toContain(`done ${conns} 0`);
    }, 240_000);
  },
);
