/**
 * Per-guest bounds seen by real sockets: two namespaces, each behind its own TAP port
 * of usernet's hub (a guest is its hub port and MAC). With udp-max-sockets-per-guest=2,
 * the first two UDP sockets of the first guest get their echo back through the NAT, a
 * third gets nothing (its datagram is dropped, no ICMP), and neither does one from a
 * second address of the same guest; the other guest is still served.
 */
import { expect, test } from "vitest";
import { startUdpEcho } from "./harness/nat-servers.js";
import { describeE2E, trace } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const tap = "ub0";
const dnsPort = 15354;
const echoPort = 18019;

/** one new socket bound to SRC sends to the echo at 10.0.2.2 and says whether it heard back */
const probe = (src: string) => `
const s = require("node:dgram").createSocket("udp4");
const t = setTimeout(() => { process.stdout.write("silent\\n"); s.close(); }, 1500);
s.on("message", () => { clearTimeout(t); process.stdout.write("reply\\n"); s.close(); });
s.bind(0, "${src}", () => s.send("x", ${echoPort}, "10.0.2.2"));
`;

describeE2E(
  "bounds: one guest at its UDP socket bound, another still served",
  ["root", "netns", "tun", "usernet"],
  () => {
    const e2e = e2eScope();

    test("udp-max-sockets-per-guest=2: a third socket of one guest is dropped, another guest's is not", async () => {
      const host = await e2e.netns();
      const guest = await e2e.netns();
      const other = await e2e.netns();
      await e2e.dns(host, { port: dnsPort, records: {} });
      await startUdpEcho(host, echoPort);
      await e2e.usernet(host, [
        "-netdev",
        `user,id=u0,dns-upstream=127.0.0.1:${dnsPort},udp-max-sockets-per-guest=2`,
        "-netdev",
        `tap,id=t0,ifname=${tap},netns=${guest.name}`,
        "-netdev",
        `tap,id=t1,ifname=${tap},netns=${other.name}`,
      ]);
      await guest.setUpTap(tap, { addrs: ["10.0.2.15/24", "10.0.2.16/24"] });
      await other.setUpTap(tap, { addrs: ["10.0.2.17/24"] });
      const run = async (ns: typeof guest, src: string) =>
        (await ns.exec(process.execPath, ["-e", probe(src)], 15_000)).stdout.trim();
      const first = [
        await run(guest, "10.0.2.15"),
        await run(guest, "10.0.2.15"),
        await run(guest, "10.0.2.15"),
      ];
      trace(`10.0.2.15: ${first.join(" ")}`);
      expect(first).toEqual(["reply", "reply", "silent"]);
      // another address of the same guest counts against the same bound
      expect(await run(guest, "10.0.2.16")).toBe("silent");
      expect(await run(other, "10.0.2.17")).toBe("reply");
    }, 120_000);
  },
);
