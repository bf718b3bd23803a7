/**
 * The DNS forwarder at 10.0.2.3:53 (UDP) with real resolvers in a QEMU guest: busybox
 * nslookup and BIND's dig. The only upstream is the test's own DNS server on
 * 127.0.0.1 inside the namespace (harness/dns-server.ts), so every answer the guest
 * sees was forwarded by usernet or made by it (host.usernet.internal).
 *
 * One guest serves all checks: it listens and usernet connects to it, so usernet can
 * be restarted with a dead upstream under the same guest (harness/guest-server.ts),
 * and again with two upstreams: a dead first one, then one that answers UDP queries
 * truncated (TC) and TCP ones in full. dig then gets its answers from the second
 * server, in full over UDP (`+ignore`: dig itself would not retry over TCP), since
 * usernet asked again over TCP. DNS over TCP from the guest (dig +tcp) is tested in
 * services-dns-tcp.test.ts.
 */
import { expect, test } from "vitest";
import { listeningNetdev, startConnectedUsernet } from "./harness/guest-server.js";
import { describeE2E } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const guestPort = 11000;

/** dig's status line, e.g. ";; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: 123" */
function digStatus(out: string): string | undefined {
  return /status: ([A-Z]+)/.exec(out)?.[1];
}

describeE2E(
  "DNS forwarder with busybox nslookup and dig",
  ["root", "netns", "guest", "usernet"],
  () => {
    const e2e = e2eScope();

    test("names from the upstream, local names without it, SERVFAIL from a dead upstream, failover, TC retried over TCP", async () => {
      const ns = await e2e.netns();
      const upstream = await e2e.dns(ns, {
        port: 5353,
        records: { "www.example.test": ["192.0.2.10", "192.0.2.11"], "db.example.test": ["192.0.2.20"] },
      });
      e2e.watch(upstream.proc);
      const g = await e2e.guest(ns, {
        name: "dns-guest",
        netdev: listeningNetdev(guestPort),
        nic: "virtio-net-pci",
        ip: "10.0.2.15/24",
        gw: "10.0.2.2",
        append: ["usernet.dns=10.0.2.3"],
        initrd: "dig",
      });
      let u = await startConnectedUsernet(
        e2e,
        ns,
        ["-netdev", `user,id=u0,${upstream.upstream}`],
        [guestPort],
      );

      // busybox nslookup (through /etc/resolv.conf's 10.0.2.3 and explicitly).
      const bb = await g.runOk("busybox nslookup www.example.test 10.0.2.3", { timeoutMs: 20_000 });
      expect(bb).toMatch(/Address:\s+192\.0\.2\.10/);
      expect(bb).toMatch(/Address:\s+192\.0\.2\.11/);
      expect(bb).toMatch(/Server:\s+10\.0\.2\.3/);

      // dig: both records, the forwarder keeps the guest's ID and flags sane.
      const short = await g.runOk("dig +short +tries=2 +time=3 @10.0.2.3 www.example.test A");
      expect(short.trim().split("\n").sort()).toEqual(["192.0.2.10", "192.0.2.11"]);
      const full = await g.runOk("dig +tries=2 +time=3 @10.0.2.3 db.example.test A");
      expect(digStatus(full)).toBe("NOERROR");
      expect(full).toMatch(/^db\.example\.test\.\s+\d+\s+IN\s+A\s+192\.0\.2\.20$/m);
      expect(full).toMatch(/SERVER: 10\.0\.2\.3#53/);
      // An unknown name: the upstream's NXDOMAIN reaches the guest.
      const nx = await g.run("dig +tries=2 +time=3 @10.0.2.3 nosuch.example.test A");
      expect(digStatus(nx.output)).toBe("NXDOMAIN");
      // The resolver path that reads /etc/resolv.conf.
      expect(await g.runOk("dig +short +tries=2 +time=3 db.example.test")).toBe("192.0.2.20\n");

      expect(upstream.count("www.example.test")).toBeGreaterThanOrEqual(2);
      expect(upstream.count("db.example.test")).toBeGreaterThanOrEqual(2);
      expect(upstream.count("nosuch.example.test")).toBeGreaterThanOrEqual(1);

      // host.usernet.internal is answered by usernet itself: never asked upstream.
      const local = await g.runOk("dig +tries=2 +time=3 @10.0.2.3 host.usernet.internal A");
      expect(digStatus(local)).toBe("NOERROR");
      expect(local).toMatch(/^host\.usernet\.internal\.\s+\d+\s+IN\s+A\s+10\.0\.2\.2$/m);
      expect(local).toMatch(/flags:[^;]*\baa\b/);
      const bbLocal = await g.runOk("busybox nslookup host.usernet.internal 10.0.2.3", { timeoutMs: 20_000 });
      expect(bbLocal).toMatch(/Address:\s+10\.0\.2\.2/);
      expect(upstream.count("host.usernet.internal")).toBe(0);

      // A dead upstream: usernet restarted under the same guest, pointing at a server
      // that counts queries and never answers. The guest must get SERVFAIL, not a
      // timeout: after the one server's 2 s try, within the 5 s budget in any case
      // (plus slack for TCG).
      await u.close();
      const dead = await e2e.dns(ns, { port: 5354, dead: true });
      u = await startConnectedUsernet(
        e2e,
        ns,
        ["-netdev", `user,id=u0,${dead.upstream}`],
        [guestPort],
        "usernet 2",
      );
      // The guest's ARP entry and the new connection: one warm-up exchange first.
      await g.runOk("dig +short +tries=3 +time=2 @10.0.2.3 host.usernet.internal", { timeoutMs: 20_000 });
      const t0 = Date.now();
      const sf = await g.run("dig +tries=1 +time=15 @10.0.2.3 gone.example.test A", { timeoutMs: 25_000 });
      const elapsed = Date.now() - t0;
      expect(digStatus(sf.output), sf.output).toBe("SERVFAIL");
      const queryMs = Number(/Query time: (\d+) msec/.exec(sf.output)?.[1]);
      expect(queryMs).toBeGreaterThanOrEqual(1500);
      expect(queryMs).toBeLessThanOrEqual(6500);
      expect(elapsed).toBeLessThan(9000);
      expect(dead.count("gone.example.test")).toBeGreaterThanOrEqual(1);
      // busybox nslookup retries at once on SERVFAIL (so each of its tries reached the
      // dead upstream) and gives up without an answer.
      const bbFail = await g.run("busybox nslookup gone2.example.test 10.0.2.3", { timeoutMs: 25_000 });
      expect(bbFail.output).not.toMatch(/Name:\s+gone2/);
      expect(bbFail.output).toMatch(/no servers could be reached|SERVFAIL/);
      expect(dead.count("gone2.example.test")).toBeGreaterThanOrEqual(2);
      await u.close();

      // Two upstreams in order: the dead one first, then one on 127.0.0.2 that sends
      // every UDP answer truncated and the full one over TCP.
      const second = await e2e.dns(ns, {
        host: "127.0.0.2",
        port: 5355,
        truncate: true,
        records: { "big.example.test": ["192.0.2.31", "192.0.2.32", "192.0.2.33"] },
      });
      e2e.watch(second.proc);
      u = await startConnectedUsernet(
        e2e,
        ns,
        ["-netdev", `user,id=u0,${dead.upstream},${second.upstream}`],
        [guestPort],
        "usernet 3",
      );
      await g.runOk("dig +short +tries=3 +time=2 @10.0.2.3 host.usernet.internal", { timeoutMs: 20_000 });
      const deadBefore = dead.count("big.example.test");
      const big = await g.run("dig +ignore +tries=1 +time=10 @10.0.2.3 big.example.test A", {
        timeoutMs: 20_000,
      });
      expect(digStatus(big.output), big.output).toBe("NOERROR");
      expect(big.output).not.toMatch(/flags:[^;]*\btc\b/);
      const bigAnswers = [...big.output.matchAll(/^big\.example\.test\.\s+\d+\s+IN\s+A\s+(\S+)$/gm)].map(
        (m) => m[1],
      );
      expect(bigAnswers.sort()).toEqual(["192.0.2.31", "192.0.2.32", "192.0.2.33"]);
      // the first server was tried and gave up on (its 2 s try), the second asked over
      // UDP, then over TCP
      expect(dead.count("big.example.test")).toBe(deadBefore + 1);
      expect(Number(/Query time: (\d+) msec/.exec(big.output)?.[1])).toBeGreaterThanOrEqual(1500);
      expect(second.count("big.example.test", "udp")).toBe(1);
      expect(second.count("big.example.test", "tcp")).toBe(1);
      await u.close();
    });
  },
  { timeoutMs: 180_000 },
);
