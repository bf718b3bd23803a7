/**
 * The host's ICMP errors for a guest's UDP, seen by a real client: a namespace's own
 * kernel behind usernet's TAP port sends from a connected UDP socket (nettool
 * udpprobe, with IP_RECVERR so it can say who sent the ICMP error and which one) to
 *   - an echo server on the host's loopback through 10.0.2.2: the reply comes back;
 *   - a closed port there: "connection refused" at once, from 10.0.2.2 (the address
 *     the guest sent to; libslirp answers from 127.0.0.1), ICMP 3/3;
 *   - an address the host has no route to (an "unreachable" route in the host's
 *     namespace): "no route to host" at once, ICMP 3/1 from that address.
 * Without IP_RECVERR on usernet's host sockets the second and third wait out the
 * timeout: an unconnected Linux UDP socket hears of no ICMP error. A second test does
 * the first two from a QEMU guest (virtio-net over -netdev socket, nettool in its
 * initramfs), as a VM user meets it.
 */
import { expect, test } from "vitest";
import { Guest } from "./harness/guest.js";
import { guestImageWithTools, hostNettool, nettoolLine } from "./harness/guest-tools.js";
import { startUdpEcho } from "./harness/nat-servers.js";
import { describeE2E, trace } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const tap = "ug0";
const dnsPort = 15353;
const echoPort = 18009;
const closedPort = 18010;
const noRoute = "203.0.113.7";

const probeLine = (out: string) => nettoolLine(out, "udpprobe");

describeE2E(
  "UDP: the host's ICMP errors reach a namespace's kernel",
  ["root", "netns", "tun", "guest", "usernet"],
  () => {
    const e2e = e2eScope();

    test("reply from an open port; refused at once from 10.0.2.2 for a closed one; no route to host", async () => {
      const nettool = hostNettool();
      trace(`nettool: ${nettool}`);
      const host = await e2e.netns();
      const guest = await e2e.netns();
      await host.execOk("ip", ["route", "add", "unreachable", `${noRoute}/32`]);
      await e2e.dns(host, { port: dnsPort, records: {} });
      await startUdpEcho(host, echoPort);
      await e2e.usernet(host, [
        "-netdev",
        `user,id=u0,dns-upstream=127.0.0.1:${dnsPort}`,
        "-netdev",
        `tap,id=t0,ifname=${tap},netns=${guest.name}`,
      ]);
      trace("usernet up");
      await guest.setUpTap(tap, { addrs: ["10.0.2.15/24"], gateway: "10.0.2.2" });

      const probe = async (addr: string, port: number) =>
        probeLine((await guest.exec(nettool, ["udpprobe", addr, String(port), "5000"], 15_000)).stdout);

      expect(await probe("10.0.2.2", echoPort)).toMatchObject({ result: "reply", errno: "0" });

      const refused = await probe("10.0.2.2", closedPort);
      expect(refused).toMatchObject({ result: "refused", from: "10.0.2.2", icmp: "3/3" });
      expect(Number(refused.ms)).toBeLessThan(2000); // not the 5 s timeout

      const unreachable = await probe(noRoute, 9);
      expect(unreachable).toMatchObject({ result: "unreachable", from: noRoute, icmp: "3/1" });
      expect(Number(unreachable.ms)).toBeLessThan(2000);

      // the socket that was refused still works for the next flow
      expect(await probe("10.0.2.2", echoPort)).toMatchObject({ result: "reply" });
    }, 300_000);

    test("a QEMU guest: reply from an open port, refused at once from 10.0.2.2 for a closed one", async () => {
      const host = await e2e.netns();
      await e2e.dns(host, { port: dnsPort, records: {} });
      await startUdpEcho(host, echoPort);
      await e2e.usernet(
        host,
        [
          "-netdev",
          `user,id=u0,dns-upstream=127.0.0.1:${dnsPort}`,
          "-netdev",
          "socket,id=s0,listen=127.0.0.1:10000",
        ],
        { ready: { tcp: [10000], stdout: /^# attach a QEMU guest/m } },
      );
      const g = await Guest.start(
        host,
        {
          name: "udperr",
          netdev: "socket,id=n0,connect=127.0.0.1:10000",
          nic: "virtio-net-pci",
          ip: "10.0.2.15/24",
          gw: "10.0.2.2",
          memoryMb: 256,
        },
        guestImageWithTools(),
      );
      e2e.defer(() => g.close());
      e2e.watch(g.proc);
      const probe = async (port: number) => {
        const r = await g.run(`nettool udpprobe 10.0.2.2 ${port} 5000`, { timeoutMs: 30_000 });
        trace(`guest nettool udpprobe 10.0.2.2 ${port}: ${r.output.trim()}`);
        return probeLine(r.output);
      };
      expect(await probe(echoPort)).toMatchObject({ result: "reply", errno: "0" });
      const refused = await probe(closedPort);
      expect(refused).toMatchObject({ result: "refused", from: "10.0.2.2", icmp: "3/3" });
      expect(Number(refused.ms)).toBeLessThan(2000);
    }, 300_000);
  },
);
