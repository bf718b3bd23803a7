/**
 * NAT with a real guest kernel: a QEMU guest behind usernet talks TCP, UDP and ICMP
 * to servers on the namespace's loopback (through 10.0.2.2) and on an "outside"
 * address (198.51.100.1 on a dummy interface in the namespace). Checks compare what
 * arrived — sha256 of 50 MiB each way, connection and datagram counts on both ends,
 * timings — never exit codes alone.
 *
 * Two boots: one guest for everything that should get through, one behind
 * `restrict=on` for what must not. The guest's client for UDP, connection rates and
 * concurrency is test/e2e/guest/nettool.c (static, appended to the initramfs): busybox
 * has no UDP nc, and a shell loop of 2,000 busybox processes under TCG would measure
 * fork, not the network.
 */
import { expect, test } from "vitest";
import { Guest } from "./harness/guest.js";
import { guestImageWithTools, nettoolLine } from "./harness/guest-tools.js";
import { NatServers } from "./harness/nat-servers.js";
import type { Netns } from "./harness/netns.js";
import { expectPing, parsePing } from "./harness/ping.js";
import { describeE2E } from "./harness/prereqs.js";
import { type E2eScope, e2eScope } from "./harness/scope.js";

const outside = "198.51.100.1";
const ports = { http: 18080, echo: 18007, udp: 18009 };
const started = /^# attach a QEMU guest/m;

/** The namespace with a dummy "internet" interface and ping sockets open to everyone. */
async function natNetns(e2e: E2eScope): Promise<Netns> {
  const ns = await e2e.netns();
  // a dummy interface where the kernel has the module, else a veth pair kept inside
  if ((await ns.exec("ip", ["link", "add", "d0", "type", "dummy"])).code !== 0) {
    await ns.execOk("ip", ["link", "add", "d0", "type", "veth", "peer", "name", "d1"]);
    await ns.execOk("ip", ["link", "set", "d1", "up"]);
  }
  await ns.execOk("ip", ["addr", "add", `${outside}/24`, "dev", "d0"]);
  await ns.execOk("ip", ["link", "set", "d0", "up"]);
  // per namespace; usernet's ping sockets need their group inside the range
  await ns.execOk("sysctl", ["-qw", "net.ipv4.ping_group_range=0 2147483647"]);
  return ns;
}

async function bootGuest(e2e: E2eScope, ns: Netns, name: string): Promise<Guest> {
  const g = await Guest.start(
    ns,
    {
      name,
      netdev: "socket,id=n0,connect=127.0.0.1:10000",
      nic: "virtio-net-pci",
      ip: "10.0.2.15/24",
      gw: "10.0.2.2",
      memoryMb: 512,
    },
    guestImageWithTools(),
  );
  e2e.defer(() => g.close());
  e2e.watch(g.proc);
  return g;
}

describeE2E(
  "NAT: guest TCP, UDP and ICMP to the host's loopback and to the outside",
  ["root", "netns", "guest", "usernet"],
  () => {
    const e2e = e2eScope();

    test("50 MiB each way, 2,000 sequential and 200 concurrent connections, refused at once, UDP echo, outside TCP/UDP, ping", async () => {
      const ns = await natNetns(e2e);
      const servers = await NatServers.start(ns, ["127.0.0.1", outside], ports, { blobMib: 50 });
      e2e.defer(() => servers.close());
      e2e.watch(servers.proc);
      await e2e.usernet(ns, ["-netdev", "user,id=u0", "-netdev", "socket,id=s0,listen=127.0.0.1:10000"], {
        ready: { tcp: [10000], stdout: started },
      });
      const g = await bootGuest(e2e, ns, "nat");

      // 50 MiB host → guest over HTTP; the hash of what the guest got
      const down = await g.runOk(`wget -q -O - http://10.0.2.2:${ports.http}/blob | sha256sum`, {
        timeoutMs: 120_000,
      });
      expect(down.trim().split(/\s+/)[0]).toBe(servers.blobSha);
      expect(servers.blobBytes).toBe(50 * 1024 * 1024);

      // 50 MiB guest → host: the server hashes what it received. No NUL bytes, because
      // busybox wget --post-file sends strlen() of the file: it would stop at the first.
      const localSha = (
        await g.runOk("tr -d '\\000' </dev/urandom | head -c 52428800 >/tmp/up && sha256sum /tmp/up", {
          timeoutMs: 60_000,
        })
      )
        .trim()
        .split(/\s+/)[0];
      const up = await g.runOk(
        `wget -q -O - --post-file /tmp/up http://10.0.2.2:${ports.http}/upload; rm -f /tmp/up`,
        { timeoutMs: 120_000 },
      );
      expect(up.trim()).toBe(`${localSha} ${50 * 1024 * 1024}`);

      // 2,000 short connections, one after the other: every one echoed, every one accepted
      const before = await servers.stats();
      const crr = nettoolLine(
        (await g.run(`nettool crr 10.0.2.2 ${ports.echo} 2000`, { timeoutMs: 90_000 })).output,
        "crr",
      );
      expect(crr).toMatchObject({ ok: "2000", fail: "0" });
      const afterCrr = await servers.stats();
      expect(afterCrr.tcpAccepted - before.tcpAccepted).toBe(2000);

      // 200 connections open at the same time, then each echoes its own id
      const conc = nettoolLine(
        (await g.run(`nettool conc 10.0.2.2 ${ports.echo} 200`, { timeoutMs: 60_000 })).output,
        "conc",
      );
      expect(conc).toMatchObject({ open: "200", ok: "200" });
      const afterConc = await servers.stats();
      expect(afterConc.tcpAccepted - afterCrr.tcpAccepted).toBe(200);
      expect(afterConc.tcpMaxOpen).toBeGreaterThanOrEqual(200);

      // a port nobody listens on: refused at once, no hang
      const refused = nettoolLine((await g.run("nettool connect 10.0.2.2 18999 5000")).output, "connect");
      expect(refused.result).toBe("refused");
      expect(Number(refused.ms)).toBeLessThan(1000);

      // UDP echo through 10.0.2.2: every datagram back, byte for byte
      const udpBefore = (await servers.stats()).udpDatagrams;
      const udp = nettoolLine(
        (await g.run(`nettool udp 10.0.2.2 ${ports.udp} 200 1000 2000`, { timeoutMs: 60_000 })).output,
        "udp",
      );
      expect(udp).toMatchObject({ sent: "200", ok: "200", bad: "0", lost: "0" });
      expect((await servers.stats()).udpDatagrams - udpBefore).toBe(200);
      // a datagram larger than the MTU goes out in fragments and comes back whole
      const big = nettoolLine(
        (await g.run(`nettool udp 10.0.2.2 ${ports.udp} 5 8000 2000`, { timeoutMs: 30_000 })).output,
        "udp",
      );
      expect(big).toMatchObject({ sent: "5", ok: "5" });

      // the outside: TCP (HTTP and echo) and UDP to 198.51.100.1
      const outBefore = await servers.stats();
      const outHttp = await g.runOk(`wget -q -O - http://${outside}:${ports.http}/blob | sha256sum`, {
        timeoutMs: 120_000,
      });
      expect(outHttp.trim().split(/\s+/)[0]).toBe(servers.blobSha);
      const outCrr = nettoolLine(
        (await g.run(`nettool crr ${outside} ${ports.echo} 50`, { timeoutMs: 30_000 })).output,
        "crr",
      );
      expect(outCrr).toMatchObject({ ok: "50", fail: "0" });
      const outUdp = nettoolLine(
        (await g.run(`nettool udp ${outside} ${ports.udp} 50 512 2000`, { timeoutMs: 30_000 })).output,
        "udp",
      );
      expect(outUdp).toMatchObject({ sent: "50", ok: "50" });
      const outAfter = await servers.stats();
      expect(outAfter.blobGets - outBefore.blobGets).toBe(1);
      expect(outAfter.tcpAccepted - outBefore.tcpAccepted).toBe(50);
      expect(outAfter.udpDatagrams - outBefore.udpDatagrams).toBe(50);

      // ICMP echo: the gateway answers itself; the outside through a ping socket
      await expectPing(g, "10.0.2.2");
      await expectPing(g, outside, { count: 5 });
    }, 240_000);

    test("restrict=on: TCP to the outside is refused at once, UDP gets nothing back, ping is not answered", async () => {
      const ns = await natNetns(e2e);
      const servers = await NatServers.start(ns, ["127.0.0.1", outside], ports);
      e2e.defer(() => servers.close());
      await e2e.usernet(
        ns,
        ["-netdev", "user,id=u0,restrict=on", "-netdev", "socket,id=s0,listen=127.0.0.1:10000"],
        { ready: { tcp: [10000], stdout: started } },
      );
      const g = await bootGuest(e2e, ns, "restricted");

      const tcp = nettoolLine(
        (await g.run(`nettool connect ${outside} ${ports.echo} 5000`)).output,
        "connect",
      );
      expect(["refused", "reset", "unreachable"]).toContain(tcp.result);
      expect(Number(tcp.ms)).toBeLessThan(1000);
      const tcpLocal = nettoolLine(
        (await g.run(`nettool connect 10.0.2.2 ${ports.echo} 5000`)).output,
        "connect",
      );
      expect(tcpLocal.result).not.toBe("ok");

      const udp = nettoolLine(
        (await g.run(`nettool udp ${outside} ${ports.udp} 5 100 500`, { timeoutMs: 20_000 })).output,
        "udp",
      );
      expect(udp).toMatchObject({ sent: "5", ok: "0", bad: "0" });

      const ping = await g.run(`busybox ping -c 2 -i 0.3 -W 2 ${outside}`, { timeoutMs: 20_000 });
      expect(parsePing(ping.output)?.received ?? 0).toBe(0);

      // nothing reached the servers: the guest stayed in
      const st = await servers.stats();
      expect(st.tcpAccepted).toBe(0);
      expect(st.udpDatagrams).toBe(0);
    }, 120_000);
  },
  { timeoutMs: 240_000 },
);
