/**
 * The DHCP server with real clients: busybox udhcpc and ISC dhclient in QEMU guests.
 *
 * Two guests serve every check. They listen and usernet connects to them
 * (harness/guest-server.ts), so usernet can be restarted under running guests: with
 * the same --state-dir (leases must survive) and with another network. A guest
 * changes its MAC to play a third client.
 *
 * Not tested: the kernel's own `ip=dhcp` — Debian's generic kernel is built without
 * CONFIG_IP_PNP.
 */
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { dhclient, setMac, udhcpc } from "./harness/dhcp-clients.js";
import { listeningNetdev, startConnectedUsernet } from "./harness/guest-server.js";
import { expectPing } from "./harness/ping.js";
import { describeE2E } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const macA = "52:54:00:12:34:56";
const macB = "52:54:00:12:34:57";
const macC = "52:54:00:12:34:58";
const ports = [11000, 11001];
// No query is expected; the rule is that the forwarder never has another upstream.
const dnsUpstream = "dns-upstream=127.0.0.1:5353";

describeE2E(
  "DHCP server with busybox udhcpc and ISC dhclient",
  ["root", "netns", "guest", "usernet"],
  () => {
    const e2e = e2eScope();

    test("addresses, options, a second guest, leases across a restart, another network", async () => {
      const ns = await e2e.netns();
      const stateDir = mkdtempSync(join(tmpdir(), "une2e-dhcp-state-"));
      e2e.defer(() => rmSync(stateDir, { recursive: true, force: true }));
      const [a, b] = await Promise.all([
        e2e.guest(ns, { name: "a", netdev: listeningNetdev(11000), nic: "virtio-net-pci", mac: macA }),
        e2e.guest(ns, { name: "b", netdev: listeningNetdev(11001), nic: "e1000", mac: macB }),
      ]);
      const userArgs = [
        "--state-dir",
        stateDir,
        "-netdev",
        `user,id=u0,hostname=labguest,domainname=lab.test,${dnsUpstream}`,
      ];
      let u = await startConnectedUsernet(e2e, ns, userArgs, ports);

      // ISC dhclient first on a fresh server: the first address of the pool, and the
      // options libslirp sends.
      const dl = await dhclient(a);
      expect(dl).toMatchObject({
        new_ip_address: "10.0.2.15",
        new_subnet_mask: "255.255.255.0",
        new_routers: "10.0.2.2",
        new_domain_name_servers: "10.0.2.3",
        new_dhcp_lease_time: "86400",
        new_dhcp_server_identifier: "10.0.2.2",
      });

      // busybox udhcpc on the same MAC (it adds a client identifier): the same address,
      // every option printed by its script.
      expect(await udhcpc(a)).toMatchObject({
        ip: "10.0.2.15",
        mask: "24",
        subnet: "255.255.255.0",
        router: "10.0.2.2",
        dns: "10.0.2.3",
        lease: "86400",
        hostname: "labguest",
        domain: "lab.test",
        serverid: "10.0.2.2",
        siaddr: "10.0.2.2",
      });
      // The address works: the script configured eth0 and the default route.
      await expectPing(a, "10.0.2.2", { count: 2 });
      expect(await a.runOk("ip route show default")).toMatch(/via 10\.0\.2\.2/);

      // The second guest on the hub gets the next address.
      expect(await udhcpc(b)).toMatchObject({ ip: "10.0.2.16", router: "10.0.2.2", dns: "10.0.2.3" });
      await expectPing(b, "10.0.2.15", { count: 2 });

      // Restart with the same --state-dir: both bindings are remembered. A new client
      // asking first gets neither .15 nor .16; A and B get theirs back.
      await u.close();
      expect(readdirSync(stateDir).length).toBeGreaterThan(0);
      u = await startConnectedUsernet(e2e, ns, userArgs, ports, "usernet (restarted)");
      await setMac(b, macC);
      expect((await udhcpc(b)).ip).toBe("10.0.2.17");
      expect((await udhcpc(a)).ip).toBe("10.0.2.15");
      await setMac(b, macB);
      expect((await udhcpc(b)).ip).toBe("10.0.2.16");

      // Another network and pool start (no state dir): the pool's first address, the
      // gateway and DNS at .2 and .3 of that network.
      await u.close();
      u = await startConnectedUsernet(
        e2e,
        ns,
        ["-netdev", `user,id=u0,net=192.168.76.0/24,dhcpstart=192.168.76.9,${dnsUpstream}`],
        ports,
        "usernet (192.168.76.0/24)",
      );
      expect(await udhcpc(a)).toMatchObject({
        ip: "192.168.76.9",
        subnet: "255.255.255.0",
        router: "192.168.76.2",
        dns: "192.168.76.3",
        serverid: "192.168.76.2",
      });
      await expectPing(a, "192.168.76.2", { count: 2 });
      expect((await dhclient(b)).new_ip_address).toBe("192.168.76.10");
      await u.close();
    });
  },
  { timeoutMs: 240_000 },
);
