/**
 * Many short TCP connections from a namespace on `usernet slirp4netns`, both ways of
 * closing: 20,000 where the host server answers and closes first (HTTP/1.0 style,
 * which leaves usernet's side of each connection in TIME_WAIT) and 20,000 where the
 * client closes first (the namespace's kernel holds TIME_WAIT, usernet's side goes
 * LAST_ACK → closed). Every connection must succeed: TIME_WAIT costs no flow slot, so
 * the per-guest bound is never reached by connections that are over. Afterwards the
 * drop-in's open file descriptors are back where they started (no host socket is
 * kept per closed connection); its RSS is printed.
 *
 * The client is nettool (test/e2e/guest/nettool.c, built static for the host):
 * `crrsc` connects, sends one byte, reads the answer, waits for the server's FIN and
 * closes; `crr` closes right after the echo. The servers are Node on the test
 * namespace's 127.0.0.1, reached from the namespace as 10.0.2.2.
 */
import { readdirSync, readFileSync } from "node:fs";
import { expect, test } from "vitest";
import { hostNettool } from "./harness/guest-tools.js";
import { describeE2E, usernetMain } from "./harness/prereqs.js";
import { e2eScope } from "./harness/scope.js";

const closeFirstPort = 18095;
const echoPort = 18096;
const connections = 20_000;

const servers = `
const net = require("node:net");
let pending = 2;
const up = () => { if (--pending === 0) process.stdout.write("listening\\n"); };
// answers the first byte and closes at once: the server closes first
net.createServer((c) => { c.on("error", () => {}); c.once("data", (d) => c.end(d)); })
  .listen({ port: ${closeFirstPort}, host: "127.0.0.1", backlog: 1024 }, up);
// echoes until the client closes: the client closes first
net.createServer((c) => { c.on("error", () => {}); c.pipe(c); })
  .listen({ port: ${echoPort}, host: "127.0.0.1", backlog: 1024 }, up);
`;

const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;
const rssKiB = (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);

describeE2E(
  "short TCP connections through usernet slirp4netns, either side closing first",
  ["root", "netns", "tun", "usernet", "guest"],
  () => {
    const e2e = e2eScope();

    test(`${connections} server-closes-first and ${connections} client-closes-first connections all succeed`, async () => {
      const nettool = hostNettool();
      const host = await e2e.netns();
      const srv = host.spawn("servers", process.execPath, ["-e", servers]);
      e2e.watch(srv);
      await srv.until("listening", 10_000, () => (srv.stdout.includes("listening") ? true : undefined));
      const target = await host.spawnTarget("-n", 600);
      const pid = target.pid;
      const drop = host.spawn("usernet-slirp4netns", process.execPath, [
        usernetMain() as string,
        "slirp4netns",
        "--configure",
        String(pid),
        "tap0",
      ]);
      e2e.watch(drop);
      await drop.until("ready", 20_000, () => (drop.stderr.includes("drop-in ready") ? true : undefined));
      const inside = (cmd: string, timeoutMs = 20_000) =>
        host.exec("nsenter", ["-t", String(pid), "-n", "sh", "-c", cmd], timeoutMs);
      const fdsBefore = fdCount(drop.pid);
      const rssBefore = rssKiB(drop.pid);

      const serverFirst = await inside(
        `'${nettool}' crrsc 10.0.2.2 ${closeFirstPort} ${connections}`,
        300_000,
      );
      // the server closed first, so the namespace's kernel holds no TIME_WAIT
      const twServerFirst = await inside("ss -Htan state time-wait | wc -l");
      const clientFirst = await inside(`'${nettool}' crr 10.0.2.2 ${echoPort} ${connections}`, 300_000);
      const twClientFirst = await inside("ss -Htan state time-wait | wc -l");
      // the last host sockets finish closing within a moment
      let fdsAfter = fdCount(drop.pid);
      for (let i = 0; i < 50 && fdsAfter > fdsBefore; i++) {
        await new Promise((r) => setTimeout(r, 100));
        fdsAfter = fdCount(drop.pid);
      }
      process.stderr.write(
        `server closes first: ${serverFirst.stdout.trim()} (namespace TIME_WAIT ${twServerFirst.stdout.trim()})\n` +
          `client closes first: ${clientFirst.stdout.trim()} (namespace TIME_WAIT ${twClientFirst.stdout.trim()})\n` +
          `usernet slirp4netns: fds ${fdsBefore} before, ${fdsAfter} after; RSS ${rssBefore} KiB before, ${rssKiB(drop.pid)} KiB after\n`,
      );
      expect(serverFirst.stdout).toMatch(new RegExp(`crrsc ok=${connections} fail=0 `));
      expect(clientFirst.stdout).toMatch(new RegExp(`crr ok=${connections} fail=0 `));
      // the closing order was the one each half is about
      expect(Number(twServerFirst.stdout.trim())).toBe(0);
      expect(Number(twClientFirst.stdout.trim())).toBeGreaterThan(0);
      expect(fdsAfter).toBeLessThanOrEqual(fdsBefore);
      await target.kill(2000);
      await drop.waitExit(5000);
    });
  },
  { timeoutMs: 600_000 },
);
