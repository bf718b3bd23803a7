/**
 * usernet's datagram ports with real QEMU guests: `-netdev dgram` (inet unicast, each
 * side's local is the other's remote), the legacy `-netdev socket,udp=,localaddr=` (the
 * same, in QEMU's older spelling) and `-netdev socket,mcast=` (a multicast group;
 * only inside a namespace with multicast routed to lo, never in the host's). usernet
 * runs `-netdev user,id=u0 -netdev <port>`; a guest with 10.0.2.15/24 pings 10.0.2.2.
 */
import { expect, test } from "vitest";
import { expectPing } from "./harness/ping.js";
import { describeE2E } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const guestNet = { ip: "10.0.2.15/24", gw: "10.0.2.2" };
const started = /^# attach a QEMU guest/m;

describeE2E("usernet datagram ports with QEMU guests", ["root", "netns", "guest", "usernet"], () => {
  const e2e = e2eScope();

  test("-netdev dgram (inet unicast) ↔ QEMU -netdev dgram (virtio-net)", async () => {
    const ns = await e2e.netns();
    const inet = (side: string, port: number) =>
      `${side}.type=inet,${side}.host=127.0.0.1,${side}.port=${port}`;
    const u = await e2e.usernet(
      ns,
      ["-netdev", "user,id=u0", "-netdev", `dgram,id=s0,${inet("local", 10001)},${inet("remote", 10002)}`],
      { ready: { udp: [10001], stdout: started } },
    );
    const g = await e2e.guest(ns, {
      netdev: `dgram,id=n0,${inet("local", 10002)},${inet("remote", 10001)}`,
      nic: "virtio-net-pci",
      ...guestNet,
    });
    await expectPing(g, "10.0.2.2");
    expect(await u.close()).toEqual({ code: 0, signal: null });
  });

  test("-netdev socket,udp=,localaddr= (legacy UDP unicast) ↔ QEMU -netdev socket,udp=,localaddr= (e1000)", async () => {
    const ns = await e2e.netns();
    const u = await e2e.usernet(
      ns,
      ["-netdev", "user,id=u0", "-netdev", "socket,id=s0,udp=127.0.0.1:10004,localaddr=127.0.0.1:10003"],
      { ready: { udp: [10003], stdout: started } },
    );
    const g = await e2e.guest(ns, {
      netdev: "socket,id=n0,udp=127.0.0.1:10003,localaddr=127.0.0.1:10004",
      nic: "e1000",
      ...guestNet,
    });
    await expectPing(g, "10.0.2.2");
    expect(await g.runOk("ip neigh show 10.0.2.2")).toMatch(/lladdr 52:55:0a:00:02:02/);
    expect(await u.close()).toEqual({ code: 0, signal: null });
  });

  test("-netdev socket,mcast=230.0.0.1:1234 ↔ QEMU -netdev socket,mcast= (e1000)", async () => {
    const ns = await e2e.netns({ multicast: true });
    const u = await e2e.usernet(
      ns,
      ["-netdev", "user,id=u0", "-netdev", "socket,id=m0,mcast=230.0.0.1:1234"],
      {
        ready: { udp: [1234], stdout: started },
      },
    );
    const g = await e2e.guest(ns, { netdev: "socket,id=n0,mcast=230.0.0.1:1234", nic: "e1000", ...guestNet });
    await expectPing(g, "10.0.2.2");
    expect(await u.close()).toEqual({ code: 0, signal: null });
  });
});
