/**
 * One guest may not deny TCP to the others by spoofing source addresses (issue 13).
 *
 * Three namespaces: "host" runs usernet (with the API on a unix socket), an HTTP
 * server and a sink that accepts connections and holds them, all on its loopback;
 * "attacker" and "victim" each hold a TAP port of hub 0. The user netdev has room for
 * 2,000 flows, 500 per guest. The attacker sends 20,000 SYNs to the sink through
 * 10.0.2.2 from a raw socket (python3, IP_HDRINCL), with forged sources: a quarter
 * off the subnet, a quarter the victim's own address, the rest cycling through free
 * addresses of the subnet. Before the fix every one of them was a "guest" of its own
 * and they filled the table; now the forged ones are dropped and counted, and what is
 * left counts against the attacker's MAC. Then the victim's curl downloads 5 MiB from
 * the host's loopback through 10.0.2.2 and the sha256 must match. Every packet goes to
 * 10.0.2.2 inside the namespaces; the forged sources are never destinations.
 */
import { expect, test } from "vitest";
import { attackMetrics, startAttackScene, victimDownloadSha } from "./harness/attack-scene.js";
import { describeE2E, trace } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const tap = "ug0";
const httpPort = 18080;
const sinkPort = 18081;
const synCount = 20_000;

// forged SYNs to 10.0.2.2:sinkPort only, a bounded count
const flood = `
import socket, struct, time
def csum(b):
    if len(b) % 2: b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
def addr(s): return socket.inet_aton(s)
dst = addr("10.0.2.2")
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
sent = 0
for i in range(${synCount}):
    k = i % 4
    if k == 0: src = addr("198.18.%d.%d" % ((i >> 8) & 255, i & 255))
    elif k == 1: src = addr("10.0.2.16")
    else: src = addr("10.0.2.%d" % (20 + i % 200))
    sport = 1024 + i % 60000
    tcp = struct.pack("!HHIIBBHHH", sport, ${sinkPort}, i, 0, 5 << 4, 0x02, 64240, 0, 0)
    c = csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xffff, 0, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    s.sendto(ip + tcp, ("10.0.2.2", 0))
    sent += 1
    # paced: a raw socket does not wait for the TAP's queue, it loses what overflows
    if i % 100 == 99: time.sleep(0.005)
print("sent", sent)
`;

describeE2E(
  "guest isolation: forged source addresses",
  ["root", "netns", "tun", "usernet"],
  () => {
    const e2e = e2eScope();

    test("20,000 SYNs from forged sources are dropped or bounded per guest; another guest's curl still works", async () => {
      const scene = await startAttackScene(e2e, {
        tap,
        httpPort,
        sinkPort,
        userNetdev: "user,id=u0,dns-upstream=127.0.0.1:15353,max-flows=2000,max-flows-per-guest=500",
      });
      const { attacker, victim } = scene;
      for (const [ns, addr] of [
        [attacker, "10.0.2.15"],
        [victim, "10.0.2.16"],
      ] as const) {
        await ns.setUpTap(tap, { addrs: [`${addr}/24`] });
        // the first packets: each address is bound to its namespace's MAC, the gateway's MAC learnt
        const ping = await ns.exec("busybox", ["ping", "-c", "1", "-W", "2", "10.0.2.2"], 15_000);
        expect(ping.stdout).toMatch(/1 packets received/);
      }

      await attacker.execOk("ip", ["link", "set", tap, "txqueuelen", "20000"]);
      const t0 = Date.now();
      const sent = await attacker.execOk("python3", ["-c", flood], 120_000);
      trace(`flood: ${sent.trim()} in ${Date.now() - t0} ms`);
      expect(sent.trim()).toBe(`sent ${synCount}`);

      expect(await victimDownloadSha(scene, httpPort)).toBe(scene.sha);

      const metrics = await attackMetrics(scene);
      const drops = (reason: string) =>
        Number(
          new RegExp(
            `^usernet_stack_drops_total\\{netdev="u0",protocol="ipv4",reason="${reason}"\\} (\\d+)$`,
            "m",
          ).exec(metrics)?.[1] ?? 0,
        );
      const refused = Number(
        /^usernet_stack_drops_total\{netdev="u0",protocol="tcp",reason="tcp-too-many-connections"\} (\d+)$/m.exec(
          metrics,
        )?.[1] ?? 0,
      );
      trace(
        `off-subnet ${drops("ipv4-source-off-subnet")}, spoofed ${drops("ipv4-spoofed-source")}, tcp refused ${refused}`,
      );
      // the half from free addresses of the subnet counts against the attacker's 500
      expect(refused).toBeGreaterThan(synCount / 4);
      // a quarter each, less what the TAP's queue may have lost on the way
      expect(drops("ipv4-source-off-subnet")).toBeGreaterThan(synCount / 8);
      expect(drops("ipv4-source-off-subnet")).toBeLessThanOrEqual(synCount / 4);
      expect(drops("ipv4-spoofed-source")).toBeGreaterThan(synCount / 8);
      expect(drops("ipv4-spoofed-source")).toBeLessThanOrEqual(synCount / 4);
    });
  },
  { timeoutMs: 240_000 },
);
