/**
 * usernet's stream ports with real QEMU guests: for each kind, usernet runs
 * `-netdev user,id=u0 -netdev <port>` (both on hub 0) inside a fresh namespace, a
 * guest with static 10.0.2.15/24 attaches with the mirrored QEMU option and pings the
 * gateway 10.0.2.2, which must answer every echo. usernet must then stop cleanly on
 * SIGTERM. Both NIC models are covered across the files (e1000 and virtio-net-pci).
 *
 * `reconnect=` with a namespace's kernel as the client (busybox ping): a second usernet
 * holds the TAP and the stream listener, the first the user network and a connector
 * with `reconnect=1`. While the listener is gone a stand-in accepts and hangs up at
 * once, timing the attempts (one a second, where the backoff would be 0.2, 0.4, ...
 * s); when the listener comes back, traffic resumes.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import type { Netns } from "./harness/netns.js";
import { expectPing } from "./harness/ping.js";
import { describeE2E } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";
import { waitTcpEstablished } from "./harness/sockets.js";

const guestNet = { ip: "10.0.2.15/24", gw: "10.0.2.2" };
const started = /^# attach a QEMU guest/m;

// accepts and closes at once, printing when (ms) each connection came
const standIn = `
const t0 = performance.now();
require("node:net").createServer((c) => { console.log("accept " + Math.round(performance.now() - t0)); c.destroy(); })
  .listen(10003, "127.0.0.1", () => console.log("listening"));
`;

async function pingGateway(ns: Netns): Promise<string> {
  const r = await ns.exec("busybox", ["ping", "-c", "2", "-W", "2", "10.0.2.2"], 20_000);
  return /(\d+) packets received/.exec(r.stdout)?.[1] ?? r.stdout + r.stderr;
}

describeE2E("usernet stream ports with QEMU guests", ["root", "netns", "guest", "tun", "usernet"], () => {
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

  test("-netdev stream,server=off,reconnect=1: attempts once a second while the listener is gone; traffic resumes", async () => {
    const ns = await e2e.netns();
    const g = await e2e.netns();
    const listenerArgs = [
      "-netdev",
      "stream,id=s0,server=on,addr.type=inet,addr.host=127.0.0.1,addr.port=10003",
      "-netdev",
      `tap,id=t0,ifname=ug0,netns=${g.name}`,
    ];
    const onTap = async () => {
      await g.waitForLink("ug0");
      // the same MAC each time, as a restarted QEMU keeps its own: usernet ties
      // 10.0.2.15 to the MAC it last saw using it
      await g.execOk("ip", ["link", "set", "ug0", "address", "52:54:00:12:34:56", "up"]);
      await g.execOk("ip", ["addr", "add", "10.0.2.15/24", "dev", "ug0"]);
    };
    const listener = await e2e.usernet(ns, listenerArgs, { ready: { tcp: [10003] }, label: "listener" });
    await e2e.usernet(ns, [
      "-netdev",
      "user,id=u0,dns-upstream=127.0.0.1:15353",
      "-netdev",
      "stream,id=c0,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=10003,reconnect=1",
    ]);
    await waitTcpEstablished(ns, 10003);
    await onTap();
    expect(await pingGateway(g)).toBe("2");

    await listener.close();
    const stand = ns.spawn("stand-in", process.execPath, ["-e", standIn]);
    e2e.watch(stand);
    const accepts = () => [...stand.stdout.matchAll(/^accept (\d+)$/gm)].map((m) => Number(m[1]));
    await stand.until("three attempts at the stand-in", 15_000, () =>
      accepts().length >= 3 ? true : undefined,
    );
    await stand.kill();
    const at = accepts();
    const gaps = at.slice(1).map((t, i) => t - (at[i] as number));
    for (const gap of gaps) expect(gap, `attempts at ${at.join(", ")} ms`).toBeGreaterThan(700);

    await e2e.usernet(ns, listenerArgs, { ready: { tcp: [10003] }, label: "listener again" });
    await waitTcpEstablished(ns, 10003);
    await onTap();
    expect(await pingGateway(g)).toBe("2");
  });
});
