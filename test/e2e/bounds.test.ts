/**
 * Per-guest bounds seen by real sockets: a namespace's kernel behind usernet's TAP
 * port holds two guest addresses. With udp-max-sockets-per-guest=2, the first two UDP
 * sockets of 10.0.2.15 get their echo back through the NAT, a third gets nothing (its
 * datagram is dropped, no ICMP), while 10.0.2.16, another guest, is still served.
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
      await e2e.dns(host, { port: dnsPort, records: {} });
      await startUdpEcho(host, echoPort);
      await e2e.usernet(host, [
        "-netdev",
        `user,id=u0,dns-upstream=127.0.0.1:${dnsPort},udp-max-sockets-per-guest=2`,
        "-netdev",
        `tap,id=t0,ifname=${tap},netns=${guest.name}`,
      ]);
      await guest.setUpTap(tap, { addrs: ["10.0.2.15/24", "10.0.2.16/24"] });
      const run = async (src: string) =>
        (await guest.exec(process.execPath, ["-e", probe(src)], 15_000)).stdout.trim();
      const first = [await run("10.0.2.15"), await run("10.0.2.15"), await run("10.0.2.15")];
      trace(`10.0.2.15: ${first.join(" ")}`);
      expect(first).toEqual(["reply", "reply", "silent"]);
      expect(await run("10.0.2.16")).toBe("reply");
    }, 120_000);
  },
);
