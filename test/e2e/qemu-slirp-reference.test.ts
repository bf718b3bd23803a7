/**
 * Reference: the e2e harness against QEMU's own slirp (libslirp), no usernet involved.
 *
 * What the harness does, in the order a usernet test uses it:
 *  1. describeE2E() checks the prerequisites (root, iproute2, QEMU, the guest image
 *     built by test/e2e/guest/build-guest.sh) — skip or fail per USERNET_E2E;
 *  2. Netns.create() makes a fresh namespace with only `lo`, so nothing leaves the
 *     machine and fixed ports never collide;
 *  3. Guest.start() boots a kernel + busybox initramfs in QEMU inside it (static
 *     10.0.2.15/24 via 10.0.2.2 from the kernel command line) and waits for the shell;
 *  4. guest.run() executes commands on the serial console; expectPing() judges the
 *     reply lines and the loss summary, not just the exit code;
 *  5. close() kills QEMU by pid and deletes the namespace.
 *
 * If these fail, the harness or the machine is broken, not usernet.
 */
import { afterEach, expect, test } from "vitest";
import { Guest } from "./harness/guest.js";
import { Netns } from "./harness/netns.js";
import { expectPing } from "./harness/ping.js";
import { describeE2E } from "./harness/prereqs.js";

const guestNet = { ip: "10.0.2.15/24", gw: "10.0.2.2" };

describeE2E("QEMU's own slirp (harness reference)", ["root", "netns", "guest"], () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  const netns = async (opts?: { multicast?: boolean }) => {
    const ns = await Netns.create(opts);
    cleanups.push(() => ns.close());
    return ns;
  };

  test("a guest on -netdev user (e1000) pings the gateway 10.0.2.2; the shell reports exit codes", async () => {
    const ns = await netns();
    const g = await Guest.start(ns, { name: "slirp-e1000", netdev: "user,id=n0", nic: "e1000", ...guestNet });
    cleanups.push(() => g.close());

    const s = await expectPing(g, "10.0.2.2");
    expect(s.replies.map((r) => r.seq)).toEqual([0, 1, 2]);
    // The gateway's MAC follows libslirp's 52:55 + IPv4 address pattern.
    expect(await g.runOk("ip neigh show 10.0.2.2")).toMatch(/lladdr 52:55:0a:00:02:02/);

    // The harness itself: output and exit codes come through, a failing command fails,
    // an address nobody answers loses its pings.
    expect(await g.run("echo hello; false")).toEqual({ code: 1, output: "hello\n" });
    expect(await g.run("exit_code() { return 7; }; exit_code")).toEqual({ code: 7, output: "" });
    const miss = await g.run("busybox ping -c 1 -W 1 10.0.2.99");
    expect(miss.code).not.toBe(0);
    expect(miss.output).toMatch(/100% packet loss/);
  });

  test("a command that overruns its time is interrupted and the shell stays usable", async () => {
    const ns = await netns();
    const g = await Guest.start(ns, {
      name: "slirp-virtio",
      netdev: "user,id=n0",
      nic: "virtio-net-pci",
      ...guestNet,
    });
    cleanups.push(() => g.close());
    await expect(g.run("sleep 20", { timeoutMs: 1500 })).rejects.toThrow(/timed out/);
    expect(await g.runOk("echo still here")).toBe("still here\n");
    // Longer output arrives whole and in order (the serial console loses nothing).
    const lines = Array.from({ length: 3000 }, (_, i) => `${i + 1}\n`).join("");
    expect(await g.runOk("seq 1 3000")).toBe(lines);
    await expectPing(g, "10.0.2.2", { count: 2 });
  });

  test("QEMU's slirp behind a socket hub (the shape of every usernet test)", async () => {
    // A CPU-less QEMU puts slirp and a socket listener on one legacy hub; the guest
    // connects to it like it would to usernet.
    const ns = await netns();
    const hub = ns.spawn("qemu slirp hub", "qemu-system-x86_64", [
      "-machine",
      "none",
      "-nodefaults",
      "-display",
      "none",
      "-net",
      "user",
      "-net",
      "socket,listen=127.0.0.1:10000",
    ]);
    cleanups.push(() => hub.kill());
    await waitListening(ns, 10000);
    const g = await Guest.start(ns, {
      name: "via-socket",
      netdev: "socket,id=n0,connect=127.0.0.1:10000",
      nic: "virtio-net-pci",
      ...guestNet,
    });
    cleanups.push(() => g.close());
    await expectPing(g, "10.0.2.2");
    await expectPing(g, "10.0.2.3", { count: 1 });
  });
});

async function waitListening(ns: Netns, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await ns.exec("ss", ["-Hltn", `sport = :${port}`]);
    if (r.stdout.trim() !== "") return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on ${port} after 10 s`);
}
