/**
 * usernet's IPv6 services with real clients, in a namespace's kernel behind a TAP:
 * - ISC `dhclient -6` (stateful: Solicit/Advertise/Request/Reply) gets fec0::15 with
 *   the DNS server and search list; `dhclient -6 -S` (stateless Information-Request)
 *   gets the DNS server; the lease shows in the API (/v1/leases, `usernet ctl leases`)
 *   and in the metrics, and survives a restart with --state-dir;
 * - `dig AAAA` and `dig +tcp AAAA` at fec0::3 answered by the test DNS server on
 *   127.0.0.1 (an IPv4 upstream: libslirp would answer nothing there), the gateway's
 *   own name answered with fec0::2, and DNS64 (nat64=on) synthesizing
 *   64:ff9b::c000:250 for a name that has only an A record (192.0.2.80).
 * Two namespaces: "host" runs usernet and the DNS server on its loopback, "guest" holds
 * only the TAP and the clients. No IPv6 datagram leaves the guest namespace but to
 * usernet's TAP.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { describeE2E, usernetMain } from "./harness/prereqs.js";
import { run } from "./harness/proc.js";
import { e2eScope } from "./harness/scope.js";

const tap = "ug6";
const dnsPort = 15363;

/** dhclient's script: prints what dhclient hands it, one variable a line */
const printScript =
  '#!/bin/sh\nenv | grep -E "^(reason|new_ip6_|new_dhcp6_|new_max_life|new_preferred_life)" | sort\n';

describeE2E(
  "IPv6 services (DHCPv6, DNS at fec0::3, DNS64) with dhclient -6 and dig",
  ["root", "netns", "tun", "usernet"],
  () => {
    const e2e = e2eScope();

    test("dhclient -6 stateful and stateless, dig AAAA over UDP and TCP, DNS64", async () => {
      const host = await e2e.netns();
      const guest = await e2e.netns();
      // the upstream truncates UDP answers, so both paths to it are used: the
      // forwarder's retry over TCP for dig's UDP queries, and TCP for dig +tcp
      const dns = await e2e.dns(host, {
        port: dnsPort,
        truncate: true,
        records: { "v6.test": ["2001:db8::80", "192.0.2.81"], "v4.test": ["192.0.2.80"] },
      });
      const dir = mkdtempSync(join(tmpdir(), "une2e-v6svc-"));
      e2e.defer(() => rmSync(dir, { recursive: true, force: true }));
      const script = join(dir, "print.sh");
      writeFileSync(script, printScript, { mode: 0o755 });
      const stateDir = join(dir, "state");
      const sock = join(dir, "api.sock");
      const args = [
        "--state-dir",
        stateDir,
        "--api",
        sock,
        "-netdev",
        `user,id=u0,ipv4=on,ipv6=on,nat64=on,dnssearch=lab.test,dns-upstream=127.0.0.1:${dnsPort}`,
        "-netdev",
        `tap,id=t0,ifname=${tap},netns=${guest.name}`,
      ];
      let u = await e2e.usernet(host, args, { ready: { unix: [sock] } });
      await guest.setUpTap(tap);

      // the kernel's link-local address first (dhclient -6 binds to it), then SLAAC
      await waitFor(guest, `ip -6 addr show dev ${tap} scope link -tentative`, /inet6 fe80::/);
      // fec0::/10 is "scope site" to the kernel
      await waitFor(guest, `ip -6 addr show dev ${tap} -tentative`, /inet6 fec0::/);

      const dhclient = async (extra: string[], tag: string) => {
        const r = await guest.exec(
          "dhclient",
          [
            "-6",
            ...extra,
            "-1",
            "-v",
            "-sf",
            script,
            "-lf",
            join(dir, `${tag}.leases`),
            "-pf",
            join(dir, `${tag}.pid`),
            tap,
          ],
          40_000,
        );
        expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
        return `${r.stdout}\n${r.stderr}`;
      };

      // stateful: an address from the pool, the DNS server and search list
      const stateful = await dhclient([], "stateful");
      expect(stateful).toMatch(/^new_ip6_address=fec0::15$/m);
      expect(stateful).toMatch(/^new_ip6_prefixlen=128$/m);
      expect(stateful).toMatch(/^new_dhcp6_name_servers=fec0::3$/m);
      expect(stateful).toMatch(/^new_dhcp6_domain_search=.?lab\.test\.?.?$/m);
      expect(stateful).toMatch(/^new_dhcp6_server_id=0:3:0:1:52:56:0:0:0:2$/m);
      // stateless: the same options without an address
      const stateless = await dhclient(["-S"], "stateless");
      expect(stateless).toMatch(/^new_dhcp6_name_servers=fec0::3$/m);
      expect(stateless).not.toMatch(/new_ip6_address/);

      // the lease in the API and the metrics
      const curl = async (path: string) => {
        const r = await run("curl", [
          "-sS",
          "--max-time",
          "10",
          "--unix-socket",
          sock,
          `http://usernet${path}`,
        ]);
        expect(r.code, r.stderr).toBe(0);
        return r.stdout;
      };
      const leases = JSON.parse(await curl("/v1/leases")) as { leases6?: { ip: string; state: string }[] }[];
      expect(leases[0]?.leases6?.map((l) => [l.ip, l.state])).toEqual([["fec0::15", "bound"]]);
      const metrics = await curl("/metrics");
      expect(metrics).toMatch(/^usernet_dhcpv6_leases\{netdev="u0",state="bound"\} 1$/m);
      expect(metrics).toMatch(/^usernet_dhcpv6_messages_total\{netdev="u0",kind="informationRequests"\} 1$/m);
      const ctl = await run(
        process.execPath,
        [usernetMain() as string, "ctl", "--api", sock, "leases"],
        20_000,
      );
      expect(ctl.stdout).toMatch(/^u0 +fec0::15 +\S+ +bound /m);

      // DNS at fec0::3: the upstream's AAAA over UDP and TCP, the gateway's name, DNS64
      const dig = (q: string) =>
        guest.execOk("dig", ["+short", "+time=3", "+tries=2", "@fec0::3", ...q.split(" ")], 20_000);
      expect((await dig("AAAA v6.test")).trim()).toBe("2001:db8::80");
      expect((await dig("+tcp AAAA v6.test")).trim()).toBe("2001:db8::80");
      expect((await dig("A v6.test")).trim()).toBe("192.0.2.81");
      expect((await dig("AAAA host.usernet.internal")).trim()).toBe("fec0::2");
      expect((await dig("AAAA v4.test")).trim()).toBe("64:ff9b::c000:250");
      expect((await dig("+tcp AAAA v4.test")).trim()).toBe("64:ff9b::c000:250");
      const asked = dns.queries();
      expect(asked.some((q) => q.transport === "tcp" && q.type === "AAAA" && q.name === "v6.test")).toBe(
        true,
      );
      expect(asked.some((q) => q.type === "A" && q.name === "v4.test")).toBe(true);
      expect(await curl("/metrics")).toMatch(/^usernet_dns_messages_total\{netdev="u0",kind="dns64"\} 2$/m);

      // a restart with the same --state-dir: the guest's binding is remembered
      await u.close();
      expect(readFileSync(join(stateDir, "dhcpv6-leases-u0.json"), "utf8")).toMatch(/"ip": ?"fec0::15"/);
      u = await e2e.usernet(host, args, { ready: { unix: [sock] }, label: "usernet (restarted)" });
      await guest.waitForLink(tap);
      await guest.execOk("ip", ["link", "set", tap, "up"]);
      const again = JSON.parse(await curl("/v1/leases")) as { leases6?: { ip: string; state: string }[] }[];
      expect(again[0]?.leases6?.map((l) => [l.ip, l.state])).toEqual([["fec0::15", "bound"]]);
      await u.close();
    });
  },
  { timeoutMs: 180_000 },
);

/** Runs `cmd` in `ns` until its output matches (10 s at most). */
async function waitFor(
  ns: { exec: (c: string, a: string[], t?: number) => Promise<{ stdout: string }> },
  cmd: string,
  re: RegExp,
) {
  let last = "";
  for (let i = 0; i < 100; i++) {
    last = (await ns.exec("sh", ["-c", cmd], 5000)).stdout;
    if (re.test(last)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${cmd}: no ${re} after 10 s: ${last}`);
}
