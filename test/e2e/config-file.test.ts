/**
 * `usernet --config FILE` with a QEMU guest: everything comes from the file (comments,
 * a quoted value), nothing else from the command line. The file sets another network
 * (net=, dhcpstart=), a DHCP pool of two (dhcpcount=2), a search list (dnssearch=
 * twice), a hostfwd, and a connector to the guest's listener.
 *
 * busybox udhcpc is the client: its script prints the lease and the search list as
 * udhcpc decoded it from option 119. The guest changes its MAC to be three clients in
 * turn: the third finds the pool full and gets no lease. busybox httpd in the guest
 * answers curl on the namespace's loopback through the hostfwd.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { setMac, udhcpc } from "./harness/dhcp-clients.js";
import { listeningNetdev } from "./harness/guest-server.js";
import { describeE2E } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";
import { waitTcpEstablished } from "./harness/sockets.js";

const guestPort = 11000;
const fwdPort = 18100;

describeE2E(
  "usernet --config FILE: network, DHCP pool and search list, hostfwd",
  ["root", "netns", "guest", "usernet"],
  () => {
    const e2e = e2eScope();

    test("the guest gets the file's network and search list, the pool holds dhcpcount, the hostfwd answers", async () => {
      const dir = mkdtempSync(join(tmpdir(), "une2e-config-"));
      e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
      const file = join(dir, "lab.conf");
      writeFileSync(
        file,
        [
          "# lab.conf, written by config-file.test.ts",
          "-netdev user,id=u0,net=192.168.77.0/24,dhcpstart=192.168.77.20,dhcpcount=2," +
            `dnssearch=lab.test,dnssearch=corp.example,hostfwd=tcp:127.0.0.1:${fwdPort}-:80,dns-upstream=127.0.0.1:5353`,
          `-netdev "socket,id=g0,connect=127.0.0.1:${guestPort}"   # the guest listens`,
          "--log-level info",
          "",
        ].join("\n"),
      );
      const ns = await e2e.netns();
      const g = await e2e.guest(ns, { name: "g", netdev: listeningNetdev(guestPort), nic: "virtio-net-pci" });
      await e2e.usernet(ns, ["--config", file], { ready: { tcp: [fwdPort] } });
      await waitTcpEstablished(ns, guestPort, 20_000);

      // the first client: the file's network, and the search list as udhcpc decoded it
      const r = await g.run("udhcpc -i eth0 -s /etc/udhcpc/default.script -n -q -t 5 -T 2", {
        timeoutMs: 30_000,
      });
      expect(r.output).toMatch(
        /udhcpc-lease: event=bound ip=192\.168\.77\.20 mask=24 .*router=192\.168\.77\.2 dns=192\.168\.77\.3 /,
      );
      expect(/ search=(.*?) lease=/.exec(r.output)?.[1]).toBe("lab.test corp.example");

      // the hostfwd from the file reaches the guest's httpd (the pool's first address)
      await g.runOk(
        "mkdir -p /tmp/www && echo from-the-config-file > /tmp/www/index.html && httpd -p 80 -h /tmp/www",
      );
      const page = await ns.exec("curl", ["-sS", "--max-time", "10", `http://127.0.0.1:${fwdPort}/`]);
      expect(page.stdout, page.stderr).toBe("from-the-config-file\n");

      // dhcpcount=2: a second client gets the pool's other address, a third nothing
      await setMac(g, "52:54:00:12:34:57");
      expect((await udhcpc(g)).ip).toBe("192.168.77.21");
      await setMac(g, "52:54:00:12:34:58");
      const third = await g.run("udhcpc -i eth0 -s /etc/udhcpc/default.script -n -q -t 2 -T 1", {
        timeoutMs: 20_000,
      });
      expect(third.code).not.toBe(0);
      expect(third.output).not.toMatch(/event=bound/);
    });
  },
  { timeoutMs: 180_000 },
);
