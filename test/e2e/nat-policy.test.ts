/**
 * The NAT's policy options with namespaces' kernels behind TAP ports (curl and node's
 * dgram as clients): `outbound-addr=` (host sockets bound to that address: the host
 * server sees the guest's TCP connection and UDP datagram come from it),
 * `host-loopback=off` (10.0.2.2 no longer reaches the host's 127.0.0.1; without the
 * option it does), and the 30 s connect timeout (a connection to an address that drops
 * every SYN gives the guest a refusal after ~30 s, not a hang).
 *
 * One usernet with two user networks on two hubs, a TAP in its own namespace on each:
 * hub 0 `outbound-addr=127.0.0.5` (host loopback on, the default), hub 1
 * `host-loopback=off`. The host namespace holds the servers on 127.0.0.1 and a veth
 * pair d0/d1 with 198.51.100.1/24 on d0 and a permanent neighbour entry for
 * 198.51.100.77 whose MAC is nobody's: frames to it go out d0 and d1 discards them
 * (no answer, no ARP failure, no error), which is what a black-holed remote host looks
 * like. The 30 s wait runs beside the other checks.
 */
import { expect, test } from "vitest";
import type { Netns } from "./harness/netns.js";
import { describeE2E } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const tap = "ug0";
const httpPort = 18001;
const udpPort = 18002;
const outbound = "127.0.0.5";

// an HTTP server answering with the client's address, a UDP server echoing the sender's
const servers = `
require("node:http").createServer((q, s) => s.end(q.socket.remoteAddress + "\\n")).listen(${httpPort}, "127.0.0.1");
const u = require("node:dgram").createSocket("udp4");
u.on("message", (m, r) => u.send(r.address, r.port, r.address));
u.bind(${udpPort}, "127.0.0.1", () => console.log("listening"));
`;

// one datagram to 10.0.2.2, prints the answer or "no answer"
const udpAsk = `
const s = require("node:dgram").createSocket("udp4");
s.on("message", (m) => { console.log("answer " + m.toString()); process.exit(0); });
s.send("who", ${udpPort}, "10.0.2.2");
setTimeout(() => { console.log("no answer"); process.exit(0); }, 3000);
`;

async function guestOnTap(ns: Netns, addr: string): Promise<void> {
  await ns.waitForLink(tap);
  await ns.execOk("ip", ["link", "set", tap, "up"]);
  await ns.execOk("ip", ["addr", "add", `${addr}/24`, "dev", tap]);
  await ns.execOk("ip", ["route", "add", "default", "via", "10.0.2.2"]);
}

describeE2E(
  "NAT policy with namespaces behind TAP ports",
  ["root", "netns", "tun", "usernet"],
  () => {
    const e2e = e2eScope();

    test("outbound-addr= binds host sockets; host-loopback=off shuts 10.0.2.2; a black-holed connect ends after 30 s", async () => {
      const host = await e2e.netns();
      const a = await e2e.netns();
      const b = await e2e.netns();
      await host.execOk("ip", ["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
      await host.execOk("ip", ["addr", "add", "198.51.100.1/24", "dev", "d0"]);
      await host.execOk("ip", ["link", "set", "d0", "up"]);
      await host.execOk("ip", ["link", "set", "d1", "up"]);
      await host.execOk("ip", [
        "neigh",
        "add",
        "198.51.100.77",
        "lladdr",
        "02:00:00:00:00:77",
        "dev",
        "d0",
        "nud",
        "permanent",
      ]);
      const srv = host.spawn("servers", process.execPath, ["-e", servers]);
      e2e.watch(srv);
      await srv.until("servers listening", 10_000, () =>
        srv.stdout.includes("listening") ? true : undefined,
      );
      await e2e.usernet(host, [
        "-netdev",
        `user,id=u0,hubid=0,outbound-addr=${outbound},dns-upstream=127.0.0.1:15353`,
        "-netdev",
        `tap,id=t0,hubid=0,ifname=${tap},netns=${a.name}`,
        "-netdev",
        "user,id=u1,hubid=1,host-loopback=off,dns-upstream=127.0.0.1:15353",
        "-netdev",
        `tap,id=t1,hubid=1,ifname=${tap},netns=${b.name}`,
      ]);
      await Promise.all([guestOnTap(a, "10.0.2.15"), guestOnTap(b, "10.0.2.15")]);

      // The black hole first: the host's connect never completes, so only usernet's
      // 30 s timer ends it, with a RST (curl: "Connection refused", exit 7).
      const t0 = Date.now();
      const blackholed = b
        .exec("curl", ["-sS", "--max-time", "90", "http://198.51.100.77:80/"], 100_000)
        .then((r) => ({ ...r, ms: Date.now() - t0 }));

      // outbound-addr: TCP and UDP leave from 127.0.0.5, host loopback on by default
      const viaA = await a.execOk(
        "curl",
        ["-sS", "--max-time", "10", `http://10.0.2.2:${httpPort}/`],
        15_000,
      );
      expect(viaA.trim()).toBe(outbound);
      expect((await a.execOk(process.execPath, ["-e", udpAsk], 10_000)).trim()).toBe(`answer ${outbound}`);

      // host-loopback=off: neither TCP nor UDP to 10.0.2.2 reaches the host's 127.0.0.1
      const viaB = await b.exec("curl", ["-sS", "--max-time", "5", `http://10.0.2.2:${httpPort}/`], 15_000);
      expect(viaB.code, viaB.stdout + viaB.stderr).not.toBe(0);
      expect(viaB.stdout).not.toMatch(/127\.0\.0\./);
      expect((await b.execOk(process.execPath, ["-e", udpAsk], 10_000)).trim()).toBe("no answer");

      const bh = await blackholed;
      expect(bh.code, bh.stderr).toBe(7);
      expect(bh.stderr).toMatch(/Connection refused|Couldn't connect/);
      expect(bh.ms).toBeGreaterThan(25_000);
      expect(bh.ms).toBeLessThan(60_000);
    });
  },
  { timeoutMs: 150_000 },
);
