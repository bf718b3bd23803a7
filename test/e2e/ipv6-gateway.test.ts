/**
 * usernet's gateway on IPv6, seen by real clients: the Linux kernel's SLAAC and NDP,
 * Debian's rdisc6 (ndisc6) and busybox ping.
 *
 * - A namespace behind a TAP port: its kernel takes an address in fec0::/64 by SLAAC
 *   from usernet's RA (sent when the guest appears, or at once on its RS), rdisc6 shows
 *   the RA with prefix, RDNSS, DNSSL and MTU, `ping -6` reaches the gateway's global
 *   and link-local addresses (also with 4,000 bytes: fragments both ways), and TCP to
 *   an outside IPv6 address is refused at once
 *   (nothing carries IPv6 to the host yet: a RST, so a dual-stack client falls back).
 * - A QEMU guest (the harness's Debian kernel and busybox, virtio-net over a socket
 *   port): its kernel's SLAAC gives it an address in the prefix within 5 s of link-up,
 *   with no RS tricks, and it pings the gateway over IPv6.
 * IPv6 traffic goes only to the gateway's addresses inside the test's namespaces.
 */
import { expect, test } from "vitest";
import type { Netns } from "./harness/netns.js";
import { describeE2E } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const tap = "ug6";
const dnsPort = 15354;
const started = /^# attach a QEMU guest/m;

/** Polls `fn` every 100 ms until it returns a value, for at most `ms`. */
async function within<T>(ms: number, fn: () => Promise<T | undefined>): Promise<T | undefined> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined || Date.now() > end) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function slaacAddress(ns: Netns, dev: string): Promise<string | undefined> {
  const out = await ns.execOk("ip", ["-6", "addr", "show", "dev", dev]);
  const m = /inet6 (fec0::[0-9a-f:]+)\/64 .*(?:dynamic|mngtmpaddr)/.exec(out);
  return m && !/tentative/.test(out) ? m[1] : undefined;
}

describeE2E("usernet's IPv6 gateway with real clients", ["root", "netns", "tun", "usernet"], () => {
  const e2e = e2eScope();

  test("a namespace on a TAP: SLAAC, rdisc6 (prefix, RDNSS, DNSSL, MTU), ping -6, TCP refused at once", async () => {
    const host = await e2e.netns();
    const guest = await e2e.netns();
    await guest.execOk("sysctl", [
      "-qw",
      "net.ipv6.conf.all.disable_ipv6=0",
      "net.ipv6.conf.default.disable_ipv6=0",
    ]);
    await e2e.dns(host, { port: dnsPort, records: {} });
    await e2e.usernet(host, [
      "-netdev",
      `user,id=u0,dns-upstream=127.0.0.1:${dnsPort},dnssearch=example.org,dnssearch=lab.example.org`,
      "-netdev",
      `tap,id=t0,ifname=${tap},netns=${guest.name}`,
    ]);
    await guest.waitForLink(tap);
    await guest.execOk("sysctl", [
      "-qw",
      `net.ipv6.conf.${tap}.accept_ra=1`,
      `net.ipv6.conf.${tap}.autoconf=1`,
    ]);
    const up = Date.now();
    await guest.execOk("ip", ["link", "set", tap, "up"]);

    const addr = await within(8000, () => slaacAddress(guest, tap));
    expect(addr, "no SLAAC address in fec0::/64").toBeDefined();
    expect(Date.now() - up).toBeLessThan(8000);
    const route = await guest.execOk("ip", ["-6", "route", "show", "default"]);
    expect(route).toMatch(/default via fe80::2 dev ug6/);

    const rdisc = await guest.exec("rdisc6", ["-1", "-w", "2000", tap], 15_000);
    const ra = rdisc.stdout;
    expect(ra).toMatch(/Prefix\s*:\s*fec0::\/64/);
    expect(ra).toMatch(/Recursive DNS server\s*:\s*fec0::3/);
    expect(ra).toMatch(/DNS search list\s*:\s*example\.org/);
    expect(ra).toMatch(/lab\.example\.org/);
    expect(ra).toMatch(/MTU\s*:\s*1500 bytes/);
    expect(ra).toMatch(/from fe80::2/);

    for (const target of ["fec0::2", "fec0::3", `fe80::2%${tap}`]) {
      const ping = await guest.exec("busybox", ["ping", "-6", "-c", "3", "-W", "2", target], 15_000);
      expect(ping.stdout, target).toMatch(/3 packets transmitted, 3 packets received/);
    }
    // 4,000 bytes at MTU 1500: the kernel fragments, usernet reassembles and fragments the reply
    const big = await guest.exec(
      "busybox",
      ["ping", "-6", "-c", "2", "-s", "4000", "-W", "2", "fec0::2"],
      15_000,
    );
    expect(big.stdout).toMatch(/2 packets transmitted, 2 packets received/);
    const reasm = await guest.execOk("sh", ["-c", "grep -E '^Ip6ReasmOKs' /proc/net/snmp6"]);
    expect(Number(reasm.trim().split(/\s+/)[1])).toBeGreaterThanOrEqual(2);
    const neigh = await guest.execOk("ip", ["-6", "neigh", "show", "fec0::3"]);
    expect(neigh).toMatch(/lladdr 52:56:00:00:00:03/);

    // no NAT for IPv6 yet: a connection to the outside is refused (RST) at once
    const t0 = Date.now();
    const nc = await guest.exec(
      process.execPath,
      [
        "-e",
        `require("node:net").connect({ host: "2001:db8::1", port: 80 }).on("error", (e) => { console.log(e.code); process.exit(0); }).on("connect", () => { console.log("connected"); process.exit(1); });`,
      ],
      15_000,
    );
    expect(nc.stdout.trim()).toBe("ECONNREFUSED");
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});

describeE2E("usernet's IPv6 gateway with a QEMU guest", ["root", "netns", "guest", "usernet"], () => {
  const e2e = e2eScope();

  test("a QEMU guest: kernel SLAAC within 5 s of link-up, ping -6 to the gateway", {
    timeout: 300_000,
  }, async () => {
    const ns = await e2e.netns();
    await e2e.dns(ns, { port: dnsPort, records: {} });
    await e2e.usernet(
      ns,
      [
        "-netdev",
        `user,id=u0,dns-upstream=127.0.0.1:${dnsPort}`,
        "-netdev",
        "socket,id=s0,listen=127.0.0.1:10060",
      ],
      { ready: { tcp: [10060], stdout: started } },
    );
    const g = await e2e.guest(ns, { netdev: "socket,id=n0,connect=127.0.0.1:10060", nic: "virtio-net-pci" });
    // the link came up during boot; take it down and up again to time SLAAC from link-up
    await g.runOk("ip link set eth0 down; ip link set eth0 up");
    const out = await g.runOk(
      "i=0; while [ $i -lt 50 ]; do ip -6 addr show dev eth0 | grep -v tentative | grep -q 'inet6 fec0::' && break; sleep 0.1; i=$((i+1)); done; echo tenths=$i; ip -6 addr show dev eth0",
      { timeoutMs: 15_000 },
    );
    const tenths = Number(/tenths=(\d+)/.exec(out)?.[1] ?? 99);
    expect(out).toMatch(/inet6 fec0::5054:ff:fe12:3456\/64/);
    expect(tenths).toBeLessThan(50);
    const ping = await g.run("ping -6 -c 3 -W 2 fec0::2", { timeoutMs: 20_000 });
    expect(ping.output).toMatch(/3 packets transmitted, 3 packets received/);
  });
});
