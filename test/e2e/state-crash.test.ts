/**
 * State that survives a crash: usernet is killed with SIGKILL while two QEMU guests
 * renew their leases in a loop (busybox udhcpc, a new host name each time, so every
 * ACK changes the lease file) and forwards are added and removed through the
 * slirp4netns API, then restarted with the same --state-dir.
 *
 * What must hold: both state files are whole JSON (never torn); the forwards are
 * those after every change the API answered (adds and removes are answered once
 * durable), plus at most the one in flight; each guest's lease is at least the last
 * one it was ACKed (an ACK that changes a lease goes out once it is durable); after
 * the restart the list is that state, and the guests' leases are honoured: a new MAC
 * asking first gets neither guest's address, and each guest gets its own back.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, test } from "vitest";
import { setMac, udhcpc } from "./harness/dhcp-clients.js";
import type { Guest } from "./harness/guest.js";
import { listeningNetdev, startConnectedUsernet } from "./harness/guest-server.js";
import type { Netns } from "./harness/netns.js";
import { describeE2E, trace } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const macA = "52:54:00:12:34:56";
const macB = "52:54:00:12:34:57";
const macC = "52:54:00:12:34:58";
const ports = [11000, 11001];
// no query is expected; the rule is that the forwarder never has another upstream
const dnsUpstream = "dns-upstream=127.0.0.1:5353";

/** One slirp4netns API request from inside the namespace; the reply, or "ERR ..." when usernet is gone. */
async function api(ns: Netns, path: string, request: unknown): Promise<string> {
  const script = `const s = require("node:net").connect(${JSON.stringify(path)}, () => s.end(${JSON.stringify(JSON.stringify(request))})); let b = ""; s.on("data", (d) => (b += d)); s.on("end", () => { console.log(b || "ERR closed"); process.exit(0); }); s.on("error", (e) => { console.log("ERR " + e.code); process.exit(0); }); setTimeout(() => { console.log("ERR timeout"); process.exit(0); }, 10000);`;
  return (await ns.execOk(process.execPath, ["-e", script], 20_000)).trim();
}

/** udhcpc in a loop, a new host name each time, until it fails (usernet gone) or `n` leases. */
function renewLoop(g: Guest, name: string, n: number) {
  return g.run(
    `i=0; while [ $i -lt ${n} ]; do i=$((i + 1)); udhcpc -i eth0 -s /etc/udhcpc/default.script -n -q -t 2 -T 1 -x hostname:${name}$i >/dev/null 2>&1 || break; done; echo renewed=$i`,
    { timeoutMs: 120_000 },
  );
}

describeE2E(
  "state across kill -9: leases and runtime forwards",
  ["root", "netns", "guest", "usernet"],
  () => {
    const e2e = e2eScope();

    test("killed during a burst of DHCP renewals and forward changes, restarted: state whole and honoured", async () => {
      const ns = await e2e.netns();
      const stateDir = mkdtempSync(join(tmpdir(), "une2e-crash-state-"));
      e2e.defer(() => rmSync(stateDir, { recursive: true, force: true }));
      const sock = join(stateDir, "api.sock");
      const [a, b] = await Promise.all([
        e2e.guest(ns, { name: "a", netdev: listeningNetdev(11000), nic: "virtio-net-pci", mac: macA }),
        e2e.guest(ns, { name: "b", netdev: listeningNetdev(11001), nic: "e1000", mac: macB }),
      ]);
      const userArgs = [
        "--state-dir",
        stateDir,
        "--api-socket",
        sock,
        "-netdev",
        `user,id=u0,${dnsUpstream}`,
      ];
      const u = await startConnectedUsernet(e2e, ns, userArgs, ports);
      expect((await udhcpc(a)).ip).toBe("10.0.2.15");
      expect((await udhcpc(b)).ip).toBe("10.0.2.16");

      // The burst: both guests renew in a loop while the host adds forwards (and removes
      // every third one added), one request after another, each reply recorded.
      const bursts = [renewLoop(a, "a", 200), renewLoop(b, "b", 200)];
      /** the forward ids present after each change: states[k] is after k changes */
      const states: number[][] = [[]];
      let lastAnswered = 0;
      const live = new Set<number>();
      for (let i = 1; i <= 12; i++) {
        const r = await api(ns, sock, {
          execute: "add_hostfwd",
          arguments: { proto: "tcp", host_addr: "127.0.0.1", host_port: 18100 + i, guest_port: 80 },
        });
        const id = Number(/"id":(\d+)/.exec(r)?.[1]);
        expect(r, `add ${i}`).toMatch(/^\{"return":\{"id":\d+\}\}$/);
        live.add(id);
        states.push([...live].sort((x, y) => x - y));
        lastAnswered = states.length - 1;
        if (i % 3 === 0) {
          expect(await api(ns, sock, { execute: "remove_hostfwd", arguments: { id: id - 1 } })).toBe(
            '{"return":{}}',
          );
          live.delete(id - 1);
          states.push([...live].sort((x, y) => x - y));
          lastAnswered = states.length - 1;
        }
      }
      // The last change in flight: an add not waited for, then SIGKILL.
      const inflight = api(ns, sock, {
        execute: "add_hostfwd",
        arguments: { proto: "tcp", host_addr: "127.0.0.1", host_port: 18199, guest_port: 80 },
      });
      await new Promise((r) => setTimeout(r, 150));
      process.kill(u.proc.pid, "SIGKILL");
      await u.close();
      expect(u.proc.exit?.signal).toBe("SIGKILL");
      const lastReply = await inflight;
      const renewed = (await Promise.all(bursts)).map((r) => Number(/renewed=(\d+)/.exec(r.output)?.[1]));
      // the kill came during the burst: some renewals were done, the loops did not finish
      for (const n of renewed) {
        expect(n).toBeGreaterThan(1);
        expect(n).toBeLessThan(200);
      }

      // Whole files, never torn: both parse.
      const files = readdirSync(stateDir);
      const leaseFile = files.find((f) => f.startsWith("dhcp-leases-")) as string;
      expect(leaseFile).toBeDefined();
      const leases = JSON.parse(readFileSync(join(stateDir, leaseFile), "utf8")) as {
        leases: { mac: string; ip: string; state: string; hostname?: string }[];
      };
      // the renewal that failed was number renewed[i]; the last ACKed one, the one before,
      // was durable before its ACK went out
      for (const [i, [mac, ip, name]] of [
        [macA, "10.0.2.15", "a"],
        [macB, "10.0.2.16", "b"],
      ].entries()) {
        const l = leases.leases.find((x) => x.mac === mac);
        expect(l).toMatchObject({ ip, state: "bound" });
        const n = Number(l?.hostname?.slice(1));
        expect(l?.hostname?.[0]).toBe(name);
        expect(n).toBeGreaterThanOrEqual((renewed[i] as number) - 1);
      }
      const stored = JSON.parse(readFileSync(join(stateDir, "forwards.json"), "utf8")) as {
        forwards: { id: number }[];
      };
      const ids = stored.forwards.map((f) => f.id).sort((x, y) => x - y);
      const withInflight = /"id":(\d+)/.exec(lastReply)?.[1];
      const candidates = states.slice(lastAnswered);
      if (withInflight === undefined) {
        // the in-flight add may have reached the disk without its reply getting out
        const last = states[states.length - 1] as number[];
        candidates.push([...last, Math.max(0, ...last, ...states.flat()) + 1].sort((x, y) => x - y));
      } else candidates.push([...(states[states.length - 1] as number[]), Number(withInflight)]);
      trace(
        `kill -9 after ${renewed.join(" and ")} renewals, ${states.length - 1} forward changes; ` +
          `stored hostnames ${leases.leases.map((l) => l.hostname).join(",")}, forwards ${JSON.stringify(ids)}, ` +
          `in flight: ${lastReply}; left in the directory: ${files.join(",")}`,
      );
      expect(candidates, `stored ${JSON.stringify(ids)}`).toContainEqual(ids);

      // Restart on the same state: the stored forwards are back, the leases honoured.
      await startConnectedUsernet(e2e, ns, userArgs, ports, "usernet (after kill -9)");
      const listed = JSON.parse(await api(ns, sock, { execute: "list_hostfwd" })) as {
        entries: { id: number }[];
      };
      expect(listed.entries.map((e) => e.id).sort((x, y) => x - y)).toEqual(ids);
      await setMac(b, macC);
      expect((await udhcpc(b)).ip).toBe("10.0.2.17");
      expect((await udhcpc(a)).ip).toBe("10.0.2.15");
      await setMac(b, macB);
      expect((await udhcpc(b)).ip).toBe("10.0.2.16");
    });
  },
  { timeoutMs: 300_000 },
);
