/**
 * Guests' DHCP host names as DNS names, attacked by a second guest: busybox udhcpc
 * (`-x hostname:NAME` sends option 12) and busybox nslookup in two QEMU guests on one
 * hub. The first guest takes "alpha"; the second then claims "alpha",
 * "host.usernet.internal" and "example.com" in turn, and every name must still answer
 * what it did. Its own plain name ("beta") is the control that claims do take effect.
 *
 * The only upstream is the test's own DNS server on 127.0.0.1 inside the namespace,
 * which answers example.com itself (harness/dns-server.ts).
 */
import { expect, test } from "vitest";
import { udhcpc } from "./harness/dhcp-clients.js";
import type { Guest } from "./harness/guest.js";
import { listeningNetdev, startConnectedUsernet } from "./harness/guest-server.js";
import { describeE2E } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const ports = [11000, 11001];

/** The addresses busybox nslookup printed for `name` (asking 10.0.2.3), server line left out. */
async function lookup(g: Guest, name: string): Promise<string[]> {
  const r = await g.run(`busybox nslookup ${name} 10.0.2.3`, { timeoutMs: 20_000 });
  const answer = r.output
    .split(/\nName:/)
    .slice(1)
    .join("\n");
  return [...answer.matchAll(/Address:\s+(\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1] as string);
}

describeE2E(
  "guests' host names in DNS: a second guest cannot take names",
  ["root", "netns", "guest", "usernet"],
  () => {
    const e2e = e2eScope();

    test("another guest's name, host.usernet.internal and an outside name stay as they were", async () => {
      const ns = await e2e.netns();
      const upstream = await e2e.dns(ns, {
        port: 5353,
        records: { "example.com": ["192.0.2.80"] },
      });
      e2e.watch(upstream.proc);
      const [a, b] = await Promise.all([
        e2e.guest(ns, {
          name: "a",
          netdev: listeningNetdev(11000),
          nic: "virtio-net-pci",
          mac: "52:54:00:12:34:56",
        }),
        e2e.guest(ns, { name: "b", netdev: listeningNetdev(11001), nic: "e1000", mac: "52:54:00:12:34:57" }),
      ]);
      await startConnectedUsernet(
        e2e,
        ns,
        ["-netdev", `user,id=u0,domainname=lab.test,${upstream.upstream}`],
        ports,
      );

      expect((await udhcpc(a, "-x hostname:alpha")).ip).toBe("10.0.2.15");
      expect((await udhcpc(b)).ip).toBe("10.0.2.16");
      expect(await lookup(b, "alpha.lab.test")).toEqual(["10.0.2.15"]);
      expect(await lookup(b, "alpha")).toEqual(["10.0.2.15"]);

      // b claims a's name, then the gateway's, then an outside name: each time it is
      // bound (it has its address) and the names answer what they did.
      for (const claim of ["alpha", "ALPHA", "host.usernet.internal", "example.com"]) {
        expect((await udhcpc(b, `-x hostname:${claim}`)).ip).toBe("10.0.2.16");
        expect(await lookup(a, "alpha.lab.test"), claim).toEqual(["10.0.2.15"]);
        expect(await lookup(a, "alpha"), claim).toEqual(["10.0.2.15"]);
        expect(await lookup(a, "host.usernet.internal"), claim).toEqual(["10.0.2.2"]);
        expect(await lookup(a, "example.com"), claim).toEqual(["192.0.2.80"]);
      }
      expect(upstream.count("example.com")).toBeGreaterThanOrEqual(4);

      // The control: a name nobody holds is b's, bare and in the domain.
      expect((await udhcpc(b, "-x hostname:beta")).ip).toBe("10.0.2.16");
      expect(await lookup(a, "beta.lab.test")).toEqual(["10.0.2.16"]);
      expect(await lookup(a, "beta")).toEqual(["10.0.2.16"]);
    });
  },
  { timeoutMs: 240_000 },
);
