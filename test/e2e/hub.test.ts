/**
 * The hub with more than one guest: frames from one port reach every other port, so
 * guests on one usernet hub see each other (and the gateway), whatever transport each
 * one uses — including a plain QEMU multicast LAN that usernet has joined.
 */
import { expect, test } from "vitest";
import { expectPing } from "./harness/ping.js";
import { describeE2E } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const gw = "10.0.2.2";
const started = /^# attach a QEMU guest/m;

describeE2E("usernet hub with several QEMU guests", ["root", "netns", "guest", "usernet"], () => {
  const e2e = e2eScope();

  test("two guests on one socket listener ping each other and the gateway", async () => {
    const ns = await e2e.netns();
    await e2e.usernet(ns, ["-netdev", "user,id=u0", "-netdev", "socket,id=s0,listen=127.0.0.1:10000"], {
      ready: { tcp: [10000], stdout: started },
    });
    const connect = "socket,id=n0,connect=127.0.0.1:10000";
    const [a, b] = await Promise.all([
      e2e.guest(ns, {
        name: "a",
        netdev: connect,
        nic: "e1000",
        mac: "52:54:00:12:34:56",
        ip: "10.0.2.15/24",
        gw,
      }),
      e2e.guest(ns, {
        name: "b",
        netdev: connect,
        nic: "virtio-net-pci",
        mac: "52:54:00:12:34:57",
        ip: "10.0.2.16/24",
        gw,
      }),
    ]);
    await expectPing(a, "10.0.2.16");
    await expectPing(b, "10.0.2.15");
    // Each learnt the other's real MAC (not the gateway's) over the hub.
    expect(await a.runOk("ip neigh show 10.0.2.16")).toMatch(/lladdr 52:54:00:12:34:57/);
    expect(await b.runOk("ip neigh show 10.0.2.15")).toMatch(/lladdr 52:54:00:12:34:56/);
    await Promise.all([expectPing(a, gw, { count: 2 }), expectPing(b, gw, { count: 2 })]);
  });

  test("a guest on a stream port and a plain QEMU multicast guest share the hub", async () => {
    const ns = await e2e.netns({ multicast: true });
    await e2e.usernet(
      ns,
      [
        "-netdev",
        "user,id=u0",
        "-netdev",
        "stream,id=s0,server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=10000",
        "-netdev",
        "socket,id=m0,mcast=230.0.0.1:1234",
      ],
      { ready: { tcp: [10000], udp: [1234], stdout: started } },
    );
    const [viaStream, viaMcast] = await Promise.all([
      e2e.guest(ns, {
        name: "stream-guest",
        netdev: "stream,id=n0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=10000",
        nic: "virtio-net-pci",
        mac: "52:54:00:12:34:56",
        ip: "10.0.2.15/24",
        gw,
      }),
      e2e.guest(ns, {
        name: "mcast-guest",
        netdev: "socket,id=n0,mcast=230.0.0.1:1234",
        nic: "e1000",
        mac: "52:54:00:12:34:57",
        ip: "10.0.2.16/24",
        gw,
      }),
    ]);
    await expectPing(viaStream, "10.0.2.16");
    await expectPing(viaMcast, "10.0.2.15");
    // The multicast guest reaches the gateway only through usernet's mcast port.
    await expectPing(viaMcast, gw);
  });
});
