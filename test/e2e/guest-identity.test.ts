/**
 * A guest is its hub port and MAC (issue 13): one that cycles through MACs stays
 * within its port's few identities, and DHCP never leases an address another guest
 * uses.
 *
 * Namespaces: "host" runs usernet (API on a unix socket), an HTTP server and a sink
 * that accepts connections and holds them, on its loopback; "attacker" and "victim"
 * (and "static"/"client" in the DHCP test) each hold a TAP port of hub 0.
 *
 * 1. The network is 10.0.0.0/16 (gateway 10.0.2.2), so 1,000 addresses are free. The
 *    attacker sends, from an AF_PACKET socket on its TAP, 3 SYNs to the sink through
 *    10.0.2.2 from each of 1,000 source MACs, each MAC with its own address, and
 *    completes every handshake it is offered (so the connections stay). The
 *    table holds 2,000 flows, 20 per guest. Before guests were port + MAC, every MAC
 *    was a guest of its own and the 3,000 SYNs filled the table; now the port holds
 *    64 guests (192 flows), the rest is dropped as "guest-identity-limit", and the
 *    victim's curl downloads 5 MiB through 10.0.2.2 with the right sha256.
 * 2. "static" configures 10.0.2.15 (the first pool address) by hand and pings the
 *    gateway; busybox udhcpc in "client" must be offered another address (it was
 *    offered 10.0.2.15 before, and its packets from it were then dropped as spoofed).
 *
 * Every packet goes to 10.0.2.2 or 255.255.255.255 inside the namespaces.
 */
import { expect, test } from "vitest";
import { attackMetrics, startAttackScene, victimDownloadSha } from "./harness/attack-scene.js";
import { describeE2E, trace } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const tap = "ug0";
const httpPort = 18090;
const sinkPort = 18091;
const macCount = 1000;

// 3 SYNs to 10.0.2.2:sinkPort from each of macCount MACs, each with its own address;
// every SYN-ACK is answered with the ACK that completes the handshake, so the
// connections stay (the sink holds them)
const cycle = `
import socket, struct, time
def csum(b):
    if len(b) % 2: b += b"\\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
gwip = socket.inet_aton("10.0.2.2")
gw = bytes([0x52, 0x55, 10, 0, 2, 2])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(("${tap}", 0))
s.setblocking(False)
def segment(mac, src, sport, seq, ack, flags):
    tcp = struct.pack("!HHIIBBHHH", sport, ${sinkPort}, seq, ack, 5 << 4, flags, 64240, 0, 0)
    c = csum(src + gwip + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), sport, 0, 64, 6, 0, src, gwip)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    s.send(gw + mac + b"\\x08\\x00" + ip + tcp)
acked = 0
def drain():
    global acked
    while True:
        try: f = s.recv(2048)
        except BlockingIOError: return
        if len(f) < 54 or f[23] != 6 or f[26:30] != gwip: continue
        ihl = (f[14] & 15) * 4
        t = 14 + ihl
        sport, dport, seq, ack = struct.unpack("!HHII", f[t:t + 12])
        if sport != ${sinkPort} or f[t + 13] & 0x12 != 0x12: continue
        segment(f[0:6], f[30:34], dport, ack, (seq + 1) & 0xffffffff, 0x10)
        acked += 1
sent = 0
for i in range(${macCount}):
    mac = bytes([0x02, 0x00, 0x00, 0x00, i >> 8, i & 255])
    src = socket.inet_aton("10.0.%d.%d" % (10 + i // 200, 1 + i % 200))
    for k in range(3):
        segment(mac, src, 20000 + i * 3 + k, i, 0, 0x02)
        sent += 1
    if i % 20 == 19:
        time.sleep(0.005)
        drain()
end = time.time() + 5
while time.time() < end:
    time.sleep(0.05)
    drain()
print("sent", sent, "acked", acked)
`;

describeE2E(
  "guest identity: hub port and MAC",
  ["root", "netns", "tun", "usernet"],
  () => {
    const e2e = e2eScope();

    test("a port cycling through 1,000 MACs is capped; a guest on another port still downloads", async () => {
      const scene = await startAttackScene(e2e, {
        tap,
        httpPort,
        sinkPort,
        userNetdev:
          "user,id=u0,net=10.0.0.0/16,host=10.0.2.2,dns=10.0.2.3,dhcpstart=10.0.2.15," +
          "dns-upstream=127.0.0.1:15353,max-flows=2000,max-flows-per-guest=20",
      });
      const { attacker, victim } = scene;
      for (const [ns, addr] of [
        [attacker, "10.0.2.15"],
        [victim, "10.0.2.16"],
      ] as const) {
        await ns.waitForLink(tap);
        await ns.execOk("ip", ["link", "set", tap, "up"]);
        await ns.execOk("ip", ["addr", "add", `${addr}/16`, "dev", tap]);
      }
      const ping = await victim.exec("busybox", ["ping", "-c", "1", "-W", "2", "10.0.2.2"], 15_000);
      expect(ping.stdout).toMatch(/1 packets received/);

      await attacker.execOk("ip", ["link", "set", tap, "txqueuelen", "10000"]);
      const sent = await attacker.execOk("python3", ["-c", cycle], 120_000);
      trace(sent.trim());
      expect(sent.trim()).toMatch(new RegExp(`^sent ${macCount * 3} acked \\d+$`));

      const downloaded = await victimDownloadSha(scene, httpPort);
      const metrics = await attackMetrics(scene);
      const limited = Number(
        /^usernet_stack_drops_total\{netdev="u0",protocol="[^"]*",reason="guest-identity-limit"\} (\d+)$/m.exec(
          metrics,
        )?.[1] ?? 0,
      );
      const opened = Number(
        /^usernet_tcp_connections_opened_total\{netdev="u0"\} (\d+)$/m.exec(metrics)?.[1] ?? 0,
      );
      trace(`identity-limit drops ${limited}, tcp opened ${opened}`);
      expect(downloaded).toBe(scene.sha);
      // 64 MACs of the port got in, 3 SYNs each; the rest are refused at the port
      expect(opened).toBeLessThanOrEqual(64 * 3 + 2);
      expect(limited).toBeGreaterThan(macCount);
    });

    test("DHCP offers a second guest another address than the one a static guest uses (busybox udhcpc)", async () => {
      const host = await e2e.netns();
      const fixed = await e2e.netns();
      const client = await e2e.netns();
      await e2e.usernet(host, [
        "-netdev",
        "user,id=u0,dns-upstream=127.0.0.1:15353",
        "-netdev",
        `tap,id=t0,ifname=${tap},netns=${fixed.name},vnet_hdr=off`,
        "-netdev",
        `tap,id=t1,ifname=${tap},netns=${client.name},vnet_hdr=off`,
      ]);
      await fixed.waitForLink(tap);
      await fixed.execOk("ip", ["link", "set", tap, "up"]);
      await fixed.execOk("ip", ["addr", "add", "10.0.2.15/24", "dev", tap]);
      const ping = await fixed.exec("busybox", ["ping", "-c", "1", "-W", "2", "10.0.2.2"], 15_000);
      expect(ping.stdout).toMatch(/1 packets received/);

      await client.waitForLink(tap);
      await client.execOk("ip", ["link", "set", tap, "up"]);
      const udhcpc = await client.exec(
        "busybox",
        ["udhcpc", "-i", tap, "-f", "-q", "-n", "-t", "5", "-T", "1", "-s", "/bin/true"],
        30_000,
      );
      const out = `${udhcpc.stdout}${udhcpc.stderr}`;
      trace(out);
      expect(out).toMatch(/lease of 10\.0\.2\.16 obtained/);
    });
  },
  { timeoutMs: 240_000 },
);
