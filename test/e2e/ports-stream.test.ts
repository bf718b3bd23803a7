/**
 * usernet's stream ports with real QEMU guests: for each kind, usernet runs
 * `-netdev user,id=u0 -netdev <port>` (both on hub 0) inside a fresh namespace, a
 * guest with static 10.0.2.15/24 attaches with the mirrored QEMU option and pings the
 * gateway 10.0.2.2, which must answer every echo. usernet must then stop cleanly on
 * SIGTERM. Both NIC models are covered across the files (e1000 and virtio-net-pci).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { expectPing } from "./harness/ping.js";
import { describeE2E } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";
import { waitTcpEstablished } from "./harness/sockets.js";

const guestNet = { ip: "10.0.2.15/24", gw: "10.0.2.2" };
const started = /^# attach a QEMU guest/m;

describeE2E("usernet stream ports with QEMU guests", ["root", "netns", "guest", "usernet"], () => {
  const e2e = e2eScope();

  test("-netdev socket,listen= ← QEMU -netdev socket,connect= (e1000)", async () => {
    const ns = await e2e.netns();
    const u = await e2e.usernet(
      ns,
      ["-netdev", "user,id=u0", "-netdev", "socket,id=s0,listen=127.0.0.1:10000"],
      {
        ready: { tcp: [10000], stdout: started },
      },
    );
    const g = await e2e.guest(ns, {
      netdev: "socket,id=n0,connect=127.0.0.1:10000",
      nic: "e1000",
      ...guestNet,
    });
    await expectPing(g, "10.0.2.2");
    expect(await g.runOk("ip neigh show 10.0.2.2")).toMatch(/lladdr 52:55:0a:00:02:02/);
    expect(await u.close()).toEqual({ code: 0, signal: null });
  });

  test("-netdev socket,connect= → QEMU -netdev socket,listen= (virtio-net); usernet retries until it is up", async () => {
    const ns = await e2e.netns();
    // usernet first: nothing listens yet, so it has to keep trying.
    const u = await e2e.usernet(
      ns,
      ["-netdev", "user,id=u0", "-netdev", "socket,id=s0,connect=127.0.0.1:10000"],
      {
        ready: { stdout: started },
      },
    );
    await new Promise((r) => setTimeout(r, 1500));
    expect(u.proc.exit).toBeUndefined();
    const g = await e2e.guest(ns, {
      netdev: "socket,id=n0,listen=127.0.0.1:10000",
      nic: "virtio-net-pci",
      ...guestNet,
    });
    await waitTcpEstablished(ns, 10000, 30_000);
    await expectPing(g, "10.0.2.2");
    expect(await u.close()).toEqual({ code: 0, signal: null });
  });

  test("-netdev stream,server=on,addr.type=inet ← QEMU -netdev stream,server=off (virtio-net)", async () => {
    const ns = await e2e.netns();
    const u = await e2e.usernet(
      ns,
      [
        "-netdev",
        "user,id=u0",
        "-netdev",
        "stream,id=s0,server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=10000",
      ],
      { ready: { tcp: [10000], stdout: started } },
    );
    const g = await e2e.guest(ns, {
      netdev: "stream,id=n0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=10000",
      nic: "virtio-net-pci",
      ...guestNet,
    });
    await expectPing(g, "10.0.2.2");
    await expectPing(g, "10.0.2.3", { count: 1 });
    expect(await u.close()).toEqual({ code: 0, signal: null });
  });

  test("-netdev stream,server=on,addr.type=unix ← QEMU -netdev stream,server=off,addr.type=unix (e1000)", async () => {
    const ns = await e2e.netns();
    const dir = mkdtempSync(join(tmpdir(), "une2e-unix-"));
    e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, "hub0.sock");
    const u = await e2e.usernet(
      ns,
      ["-netdev", "user,id=u0", "-netdev", `stream,id=s0,server=on,addr.type=unix,addr.path=${path}`],
      { ready: { unix: [path], stdout: started } },
    );
    const g = await e2e.guest(ns, {
      netdev: `stream,id=n0,server=off,addr.type=unix,addr.path=${path}`,
      nic: "e1000",
      ...guestNet,
    });
    await expectPing(g, "10.0.2.2");
    expect(await u.close()).toEqual({ code: 0, signal: null });
  });
});
