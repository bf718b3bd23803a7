/**
 * IPv6 NAT and forwards with a namespace's kernel behind usernet's TAP port.
 *
 * Two namespaces: "host" runs usernet and the servers — an HTTP server on [::1], a UDP
 * echo on [::1], and an "outside" dummy interface with 2001:db8:1::1 (IPv6) and
 * 198.51.100.1 (IPv4, for NAT64) — and "guest" holds only the TAP and the clients: the
 * kernel's SLAAC, curl -6, busybox ping -6, a node UDP client and a node HTTP server
 * for the forward. IPv6 traffic goes only to ::1 and to addresses inside these
 * namespaces. Checks compare what arrived (sha256 of 20 MiB, echoed datagrams, the
 * forwards' answers, timings), not exit codes alone. Forwards: from [::1] to the
 * guest's first IPv6 address (empty guest address), and from [::1] to its IPv4 address.
 *
 * The second test is an IPv6-only guest (ipv4=off, nat64=on) fetching from an
 * IPv4-only server by its NAT64 address (64:ff9b::198.51.100.1), and pinging it.
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import type { Netns } from "./harness/netns.js";
import { describeE2E, trace } from "./harness/prereqs.js";
import { type E2eScope, e2eScope } from "./harness/scope.js";

const tap = "ug0";
const ports = {
  dns: 15353,
  http: 18080,
  http4: 18081,
  udp: 18009,
  fwd: 18090,
  fwdHost: 12222,
  fwdCross: 12223,
};
const outside6 = "2001:db8:1::1";
const outside4 = "198.51.100.1";

/** HTTP on HOST:PORT serving FILE at /blob (by address: no name lookups) */
const httpServer = (host: string, port: number, file: string) => `
const http = require("node:http"); const fs = require("node:fs");
http.createServer((q, r) => { if (q.url !== "/blob") { r.writeHead(404); return r.end(); }
  r.writeHead(200, { "content-length": fs.statSync(${JSON.stringify(file)}).size });
  fs.createReadStream(${JSON.stringify(file)}).pipe(r); })
  .listen(${port}, ${JSON.stringify(host)}, () => process.stdout.write("listening\\n"));
`;

const udpEcho6 = `
const s = require("node:dgram").createSocket({ type: "udp6", ipv6Only: true });
s.on("message", (m, r) => s.send(m, r.port, r.address));
s.bind(${ports.udp}, "::1", () => process.stdout.write("listening\\n"));
`;

// 50 datagrams of 1..1400 bytes to [fec0::2]; each must come back byte for byte
const udpClient6 = `
const s = require("node:dgram").createSocket("udp6");
const want = new Map(); let ok = 0; const n = 50;
s.on("message", (m) => { const k = m.readUInt32BE(0); const w = want.get(k); if (w && w.equals(m)) { want.delete(k); ok++; } if (ok === n) { console.log("udp6-echo ok=" + ok); process.exit(0); } });
for (let i = 0; i < n; i++) { const b = require("node:crypto").randomBytes(4 + i * 28); b.writeUInt32BE(i, 0); want.set(i, b); s.send(b, ${ports.udp}, "fec0::2"); }
setTimeout(() => { console.log("udp6-echo ok=" + ok); process.exit(1); }, 5000);
`;

// the guest's server behind hostfwd: answers with the client address it saw, and its own
const guestServer = `
require("node:http").createServer((q, r) => r.end("guest saw " + q.socket.remoteAddress + " at " + q.socket.localAddress))
  .listen(${ports.fwd}, "::", () => process.stdout.write("listening\\n"));
`;

/** The host namespace: an outside dummy interface (both families), ping sockets for all. */
async function hostNetns(e2e: E2eScope): Promise<Netns> {
  const ns = await e2e.netns();
  if ((await ns.exec("ip", ["link", "add", "d0", "type", "dummy"])).code !== 0) {
    await ns.execOk("ip", ["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
    await ns.execOk("ip", ["link", "set", "d1", "up"]);
  }
  await ns.execOk("ip", ["link", "set", "d0", "up"]);
  await ns.execOk("ip", ["addr", "add", `${outside4}/24`, "dev", "d0"]);
  await ns.execOk("ip", ["-6", "addr", "add", `${outside6}/64`, "dev", "d0", "nodad"]);
  // per namespace, and for ICMPv6 ping sockets too
  await ns.execOk("sysctl", ["-qw", "net.ipv4.ping_group_range=0 2147483647"]);
  return ns;
}

/** Waits for the kernel's SLAAC address in fec0::/64 (not tentative) and the RA's default route. */
async function slaac(guest: Netns): Promise<string> {
  const t0 = Date.now();
  for (let i = 0; i < 150; i++) {
    // fec0::/10 is site-local to the kernel ("scope site"), not global
    const addrs = await guest.execOk("ip", ["-6", "-o", "addr", "show", "dev", tap]);
    const route = await guest.execOk("ip", ["-6", "route", "show", "default"]);
    const m = /inet6 (fec0:[0-9a-f:]+)\/64 (?!.*tentative)/.exec(addrs);
    if (m && /via fe80::/.test(route)) {
      trace(`SLAAC ${m[1]} after ${Date.now() - t0} ms`);
      return m[1] as string;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no SLAAC address on ${tap}: ${await guest.execOk("ip", ["-6", "addr"])}`);
}

describeE2E(
  "IPv6 NAT and forwards: a namespace's kernel behind usernet's TAP port",
  ["root", "netns", "tun", "usernet"],
  () => {
    const e2e = e2eScope();

    test("SLAAC, curl -6 of 20 MiB from [::1], refused at once, UDP, ping -6 outside, hostfwd from [::1]", async () => {
      const host = await hostNetns(e2e);
      const guest = await e2e.netns();
      const dir = mkdtempSync(join(tmpdir(), "une2e-v6-"));
      e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
      const blob = randomBytes(20 * 1024 * 1024);
      writeFileSync(join(dir, "blob"), blob);
      const blobSha = createHash("sha256").update(blob).digest("hex");
      await e2e.dns(host, { port: ports.dns, records: {} });

      const http = host.spawn("http6", process.execPath, [
        "-e",
        httpServer("::1", ports.http, join(dir, "blob")),
      ]);
      e2e.watch(http);
      const echo = host.spawn("udp6-echo", process.execPath, ["-e", udpEcho6]);
      e2e.watch(echo);
      for (const p of [http, echo])
        await p.until("listening", 10_000, () => (p.stdout.includes("listening") ? true : undefined));

      await e2e.usernet(host, [
        "-netdev",
        `user,id=u0,dns-upstream=127.0.0.1:${ports.dns},hostfwd=tcp:[::1]:${ports.fwdHost}-:${ports.fwd},hostfwd=tcp:[::1]:${ports.fwdCross}-10.0.2.15:${ports.fwd}`,
        "-netdev",
        `tap,id=t0,ifname=${tap},netns=${guest.name}`,
      ]);
      // IPv4 too, for the forward from an IPv6 listener to the guest's IPv4 address
      await guest.setUpTap(tap, { addrs: ["10.0.2.15/24"] });
      const addr = await slaac(guest);

      // 20 MiB from the host's [::1] through the IPv6 gateway
      const t0 = Date.now();
      const curl = await guest.exec(
        "sh",
        ["-c", `curl -6 -sS --max-time 60 -g http://[fec0::2]:${ports.http}/blob | sha256sum`],
        90_000,
      );
      trace(`curl -6 20 MiB: ${Date.now() - t0} ms`);
      expect(curl.stdout.split(" ")[0]).toBe(blobSha);

      // a port nobody listens on: refused at once (RST), so a dual-stack client falls back
      const t1 = Date.now();
      const refused = await guest.exec(
        "curl",
        ["-6", "-sS", "--max-time", "10", "-g", "http://[fec0::2]:18999/"],
        15_000,
      );
      const refusedMs = Date.now() - t1;
      expect(refused.stderr).toMatch(/Connection refused|Couldn't connect/);
      expect(refusedMs).toBeLessThan(2000);

      // UDP to [fec0::2] reaches [::1]'s echo and comes back
      const udp = await guest.exec(process.execPath, ["-e", udpClient6], 15_000);
      expect(udp.stdout.trim()).toBe("udp6-echo ok=50");

      // ICMPv6 echo to an address outside (inside the host namespace) through a ping socket
      const ping = await guest.exec("busybox", ["ping", "-6", "-c", "3", "-W", "2", outside6], 15_000);
      expect(ping.stdout).toMatch(/3 packets transmitted, 3 packets received/);

      // hostfwd=tcp:[::1]:P-:P: the guest's first IPv6 address, reached from the host's ::1
      const server = guest.spawn("guest-http", process.execPath, ["-e", guestServer]);
      e2e.watch(server);
      await server.until("listening", 10_000, () => (server.stdout.includes("listening") ? true : undefined));
      const fwd = await host.exec(
        "curl",
        ["-sS", "--max-time", "10", "-g", `http://[::1]:${ports.fwdHost}/`],
        15_000,
      );
      // the connection comes from the IPv6 gateway, to the address SLAAC gave
      expect(fwd.stdout).toBe(`guest saw fec0::2 at ${addr}`);
      // an IPv6 listener to an IPv4 guest: the guest sees the IPv4 gateway
      const cross = await host.exec(
        "curl",
        ["-sS", "--max-time", "10", "-g", `http://[::1]:${ports.fwdCross}/`],
        15_000,
      );
      expect(cross.stdout).toBe("guest saw ::ffff:10.0.2.2 at ::ffff:10.0.2.15");
    });

    test("ipv4=off,nat64=on: an IPv6-only guest fetches from an IPv4-only server and pings it via 64:ff9b::/96", async () => {
      const host = await hostNetns(e2e);
      const guest = await e2e.netns();
      const dir = mkdtempSync(join(tmpdir(), "une2e-nat64-"));
      e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
      const blob = randomBytes(4 * 1024 * 1024);
      writeFileSync(join(dir, "blob"), blob);
      const blobSha = createHash("sha256").update(blob).digest("hex");
      await e2e.dns(host, { port: ports.dns, records: {} });
      const http = host.spawn("http4", process.execPath, [
        "-e",
        httpServer(outside4, ports.http4, join(dir, "blob")),
      ]);
      e2e.watch(http);
      await http.until("listening", 10_000, () => (http.stdout.includes("listening") ? true : undefined));

      await e2e.usernet(host, [
        "-netdev",
        `user,id=u0,ipv4=off,ipv6=on,nat64=on,dns-upstream=127.0.0.1:${ports.dns}`,
        "-netdev",
        `tap,id=t0,ifname=${tap},netns=${guest.name}`,
      ]);
      await guest.setUpTap(tap);
      await slaac(guest);
      // no IPv4 at all in the guest
      expect(await guest.execOk("ip", ["-4", "addr", "show", "dev", tap])).not.toMatch(/inet /);

      const curl = await guest.exec(
        "sh",
        ["-c", `curl -6 -sS --max-time 30 -g http://[64:ff9b::${outside4}]:${ports.http4}/blob | sha256sum`],
        60_000,
      );
      expect(curl.stdout.split(" ")[0]).toBe(blobSha);
      const ping = await guest.exec(
        "busybox",
        ["ping", "-6", "-c", "2", "-W", "2", `64:ff9b::${outside4}`],
        15_000,
      );
      expect(ping.stdout).toMatch(/2 packets transmitted, 2 packets received/);
      // a NAT64 address whose IPv4 port is closed: refused at once
      const t1 = Date.now();
      const refused = await guest.exec(
        "curl",
        ["-6", "-sS", "--max-time", "10", "-g", `http://[64:ff9b::${outside4}]:18999/`],
        15_000,
      );
      expect(refused.stderr).toMatch(/Connection refused|Couldn't connect/);
      expect(Date.now() - t1).toBeLessThan(2000);
    });
  },
);
