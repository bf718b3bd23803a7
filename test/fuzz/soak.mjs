#!/usr/bin/env node
/**
 * Soaks a real usernet: `npm run soak -- [--connections N]` (as root, after `npx tsc`).
 *
 * Theory of operation
 * - The whole run happens inside a network namespace made for it (`usoak-PID`, entered
 *   with `ip netns exec`, which also binds /etc/netns/usoak-PID/resolv.conf and hosts
 *   over /etc/: `nameserver 127.0.0.1`, and a `::1` line for reverse lookups). So
 *   "the host" usernet sees is that namespace: its 127.0.0.1 holds only the servers
 *   this script starts (TCP echo, TCP answer-and-close, UDP echo, DNS on port 53), and
 *   nothing can reach a real address. Both the namespace and /etc/netns/usoak-PID are
 *   removed on exit.
 * - usernet runs as the slirp4netns drop-in (`node dist/cli/main.js slirp4netns
 *   --configure PID tap0`) for a guest namespace (`unshare -n sleep`). Through it, in
 *   rounds of up to 5,000 connections: nettool (test/e2e/guest/nettool.c, built with
 *   gcc -static) `crrsc` (server closes first) and `crr` (client closes first) short TCP
 *   connections to 10.0.2.2, UDP flows (`nettool udp`, a new source port each), a
 *   DHCP renewal (busybox udhcpc, whose script does nothing, so tap0 keeps its
 *   address) and a DNS lookup (busybox nslookup via 10.0.2.3).
 * - Every --sample-ms it reads usernet's open fds (/proc/PID/fd) and RSS (VmRSS) and
 *   reports before, peak and after. Fails (exit 1) when any connection, datagram,
 *   renewal or lookup failed, when fds after exceed fds before by more than --fd-slack,
 *   when RSS after exceeds --max-rss-mb, or when usernet logged an internal error.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import dgram from "node:dgram";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const { values: opts } = parseArgs({
  options: {
    connections: { type: "string", default: "100000" },
    "udp-flows-per-round": { type: "string", default: "10" },
    "sample-ms": { type: "string", default: "2000" },
    "fd-slack": { type: "string", default: "4" },
    "max-rss-mb": { type: "string", default: "250" },
    inner: { type: "string" },
    nettool: { type: "string" },
  },
});

if (opts.inner === undefined) await outer();
else await inner(opts.inner, opts.nettool);

/** Builds nettool, makes the namespace, runs the soak inside it, removes the namespace. */
async function outer() {
  if (process.getuid?.() !== 0) {
    console.error("soak: needs root (network namespaces and a TAP)");
    process.exit(2);
  }
  const main = join(root, "dist/cli/main.js");
  if (!existsSync(main)) {
    console.error("soak: dist/cli/main.js is missing: run npx tsc -p tsconfig.json");
    process.exit(2);
  }
  const source = join(root, "test/e2e/guest/nettool.c");
  const sha = createHash("sha256").update(readFileSync(source)).digest("hex").slice(0, 16);
  const nettool = join(tmpdir(), `usernet-nettool-${sha}`);
  if (!existsSync(nettool)) {
    const tmp = `${nettool}.${process.pid}.tmp`;
    execFileSync("gcc", ["-static", "-O2", "-o", tmp, source], { stdio: "inherit", timeout: 120_000 });
    renameSync(tmp, nettool);
  }
  const ns = `usoak-${process.pid}`;
  const etc = `/etc/netns/${ns}`;
  const cleanup = () => {
    try {
      execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
    } catch {}
    rmSync(etc, { recursive: true, force: true });
  };
  mkdirSync(etc, { recursive: true });
  writeFileSync(join(etc, "resolv.conf"), "nameserver 127.0.0.1\n");
  writeFileSync(join(etc, "hosts"), "127.0.0.1 localhost\n::1 localhost\n");
  execFileSync("ip", ["netns", "add", ns]);
  const child = spawn(
    "ip",
    [
      "netns",
      "exec",
      ns,
      process.execPath,
      fileURLToPath(import.meta.url),
      ...process.argv.slice(2),
      "--inner",
      ns,
      "--nettool",
      nettool,
    ],
    { stdio: "inherit" },
  );
  const forward = (sig) => child.kill(sig);
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  const code = await new Promise((r) => child.on("exit", (c, s) => r(c ?? (s ? 1 : 0))));
  cleanup();
  process.exit(code);
}

async function inner(ns, nettool) {
  execFileSync("ip", ["link", "set", "lo", "up"]);
  const total = Number(opts.connections);
  const udpFlowsPerRound = Number(opts["udp-flows-per-round"]);
  const closeFirstPort = 18095;
  const echoPort = 18096;
  const udpPort = 18097;
  const killers = [];
  let stopping = false;
  const stop = (code) => {
    stopping = true;
    for (const k of killers.reverse()) k();
    process.exit(code);
  };
  process.on("SIGINT", () => stop(130));
  process.on("SIGTERM", () => stop(143));

  // the host side: only this namespace's loopback
  const listen = (onConn, port) =>
    new Promise((r) => {
      const s = net.createServer(onConn);
      s.listen({ port, host: "127.0.0.1", backlog: 1024 }, () => r(s));
      killers.push(() => s.close());
    });
  await listen((c) => {
    c.on("error", () => {});
    c.once("data", (d) => c.end(d));
  }, closeFirstPort);
  await listen((c) => {
    c.on("error", () => {});
    c.pipe(c);
  }, echoPort);
  const udp = dgram.createSocket("udp4");
  udp.on("message", (m, r) => udp.send(m, r.port, r.address));
  await new Promise((r) => udp.bind(udpPort, "127.0.0.1", r));
  killers.push(() => udp.close());
  const dns = dgram.createSocket("udp4");
  let dnsQueries = 0;
  dns.on("message", (m, r) => {
    dnsQueries++;
    // a fixed answer: flags "response, recursion available", the question echoed, one A record
    if (m.length < 12) return;
    const head = Buffer.from(m.subarray(0, 12));
    head.writeUInt16BE(0x8180, 2);
    head.writeUInt16BE(1, 6);
    head.writeUInt16BE(0, 8);
    head.writeUInt16BE(0, 10);
    const isA = m.length >= 16 && m.readUInt16BE(m.length - 4) === 1 && m.readUInt16BE(4) === 1;
    if (!isA) head.writeUInt16BE(0, 6);
    const answer = Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
    dns.send(Buffer.concat([head, m.subarray(12), isA ? answer : Buffer.alloc(0)]), r.port, r.address);
  });
  await new Promise((r) => dns.bind(53, "127.0.0.1", r));
  killers.push(() => dns.close());

  // the guest namespace and usernet
  const target = spawn("unshare", ["-n", "sleep", "3600"], { stdio: "ignore" });
  killers.push(() => target.kill());
  for (let i = 0; i < 100; i++) {
    let exe = "";
    try {
      exe = readlinkSync(`/proc/${target.pid}/exe`);
    } catch {}
    if (exe.endsWith("/sleep")) break;
    await sleep(50);
  }
  const usernet = spawn(
    process.execPath,
    [join(root, "dist/cli/main.js"), "slirp4netns", "--configure", String(target.pid), "tap0"],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  killers.push(() => usernet.kill());
  let log = "";
  usernet.stderr.on("data", (d) => {
    if (log.length < 1_000_000) log += d;
  });
  usernet.on("exit", (code, sig) => {
    if (!stopping) {
      console.error(`soak: usernet exited (${code ?? sig}) during the run\n${log.slice(-4000)}`);
      stop(1);
    }
  });
  for (let i = 0; !log.includes("drop-in ready"); i++) {
    if (i > 400) {
      console.error(`soak: usernet did not come up\n${log}`);
      stop(1);
    }
    await sleep(50);
  }
  const inside = (args, timeoutMs) =>
    new Promise((resolve) => {
      execFile(
        "nsenter",
        ["-t", String(target.pid), "-n", ...args],
        { timeout: timeoutMs },
        (err, stdout, stderr) => resolve({ ok: !err, out: `${stdout}${stderr}`.trim() }),
      );
    });

  // The guest kernel's own ephemeral ports, not usernet, bound the client-closes-first
  // rate: each such connection holds its port in the guest's TIME_WAIT for 60 s, and the
  // default range (28,232 ports per destination) runs out above ~470 connections/s with
  // EADDRNOTAVAIL in the guest's connect(). A busy Linux client widens the range and
  // reuses TIME_WAIT ports for new outgoing connections (tcp_tw_reuse=1, after 1 s, by
  // timestamp), which also exercises usernet's acceptance of a SYN for a 4-tuple it
  // still holds in TIME_WAIT.
  for (const [key, value] of [
    ["net.ipv4.ip_local_port_range", "1024 65535"],
    ["net.ipv4.tcp_tw_reuse", "1"],
  ]) {
    const r = await inside(["sysctl", "-w", `${key}=${value}`], 10_000);
    if (!r.ok) {
      console.error(`soak: sysctl ${key} in the guest namespace: ${r.out}`);
      stop(1);
    }
  }

  const fds = () => readdirSync(`/proc/${usernet.pid}/fd`).length;
  // UDP NAT sockets stay open until a flow is idle for 240 s (udp-nat.ts): counted apart
  const udpSockets = () => {
    const inodes = new Set();
    for (const file of ["/proc/net/udp", "/proc/net/udp6"]) {
      for (const line of readFileSync(file, "utf8").split("\n").slice(1)) {
        const inode = line.trim().split(/\s+/)[9];
        if (inode) inodes.add(`socket:[${inode}]`);
      }
    }
    let n = 0;
    for (const fd of readdirSync(`/proc/${usernet.pid}/fd`)) {
      try {
        if (inodes.has(readlinkSync(`/proc/${usernet.pid}/fd/${fd}`))) n++;
      } catch {}
    }
    return n;
  };
  const rssKiB = () =>
    Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${usernet.pid}/status`, "utf8"))?.[1]);
  await sleep(1000);
  const before = { fds: fds(), udp: udpSockets(), rssKiB: rssKiB() };
  const peak = { ...before };
  const started = Date.now();
  const done = {
    tcp: 0,
    tcpFailed: 0,
    udpFlows: 0,
    udpSent: 0,
    udpLost: 0,
    dhcp: 0,
    dhcpFailed: 0,
    dns: 0,
    dnsFailed: 0,
  };
  const samples = [];
  const sample = () => {
    const s = { t: Math.round((Date.now() - started) / 1000), fds: fds(), rssKiB: rssKiB() };
    peak.fds = Math.max(peak.fds, s.fds);
    peak.rssKiB = Math.max(peak.rssKiB, s.rssKiB);
    samples.push(s);
    return s;
  };
  const sampler = setInterval(() => {
    const s = sample();
    console.log(`  ${s.t} s: ${done.tcp} connections, fds ${s.fds}, RSS ${(s.rssKiB / 1024).toFixed(1)} MiB`);
  }, Number(opts["sample-ms"]));
  killers.push(() => clearInterval(sampler));
  console.log(
    `soak: ${total} connections through usernet slirp4netns (pid ${usernet.pid}) in namespace ${ns}; ` +
      `fds ${before.fds}, RSS ${(before.rssKiB / 1024).toFixed(1)} MiB before`,
  );

  const problems = [];
  const num = (out, key) => Number(new RegExp(`${key}=(\\d+)`).exec(out)?.[1] ?? Number.NaN);
  for (let left = total; left > 0; ) {
    const round = Math.min(5000, left);
    left -= round;
    const half = Math.ceil(round / 2);
    const tcp = async (mode, port, n) => {
      if (n === 0) return;
      const r = await inside([nettool, mode, "10.0.2.2", String(port), String(n)], 600_000);
      const ok = num(r.out, "ok");
      done.tcp += Number.isNaN(ok) ? 0 : ok;
      if (!r.ok || ok !== n) {
        done.tcpFailed += n - (Number.isNaN(ok) ? 0 : ok);
        problems.push(`${mode}: ${r.out}`);
      }
    };
    const others = async () => {
      for (let i = 0; i < udpFlowsPerRound; i++) {
        const r = await inside([nettool, "udp", "10.0.2.2", String(udpPort), "20", "200", "2000"], 60_000);
        done.udpFlows++;
        done.udpSent += num(r.out, "sent") || 0;
        const lost = (num(r.out, "lost") || 0) + (num(r.out, "bad") || 0);
        done.udpLost += lost;
        if (!r.ok || lost > 0) problems.push(`udp: ${r.out}`);
      }
      const d = await inside(
        ["busybox", "udhcpc", "-i", "tap0", "-q", "-n", "-t", "3", "-T", "1", "-s", "/bin/true"],
        30_000,
      );
      if (d.ok) done.dhcp++;
      else {
        done.dhcpFailed++;
        problems.push(`udhcpc: ${d.out}`);
      }
      const q = await inside(["busybox", "nslookup", "soak.test", "10.0.2.3"], 30_000);
      if (q.ok && q.out.includes("192.0.2.1")) done.dns++;
      else {
        done.dnsFailed++;
        problems.push(`nslookup: ${q.out}`);
      }
    };
    await Promise.all([tcp("crrsc", closeFirstPort, half), tcp("crr", echoPort, round - half), others()]);
  }
  const seconds = (Date.now() - started) / 1000;
  clearInterval(sampler);
  // the last host sockets finish closing within a moment
  await sleep(2000);
  let after = { ...sample(), udp: udpSockets() };
  for (let i = 0; i < 50 && after.fds - after.udp > before.fds - before.udp; i++) {
    await sleep(100);
    after = { ...sample(), udp: udpSockets() };
  }
  const internal = log.split("\n").filter((l) => /internal error/i.test(l));
  const mib = (k) => `${(k / 1024).toFixed(1)} MiB`;
  const report = {
    seconds: Math.round(seconds),
    ...done,
    connectionsPerSecond: Math.round(done.tcp / seconds),
    dnsQueriesUpstream: dnsQueries,
    fds: { before: before.fds, peak: peak.fds, after: after.fds },
    udpSocketsOfThose: { before: before.udp, after: after.udp },
    rss: { before: mib(before.rssKiB), peak: mib(peak.rssKiB), after: mib(after.rssKiB) },
  };
  console.log(JSON.stringify(report, null, 2));
  const maxRssKiB = Number(opts["max-rss-mb"]) * 1024;
  const slack = Number(opts["fd-slack"]);
  if (after.fds - after.udp > before.fds - before.udp + slack) {
    problems.push(
      `fds other than UDP sockets grew from ${before.fds - before.udp} to ${after.fds - after.udp}`,
    );
  }
  // one NAT socket per nettool UDP flow until it idles out; DHCP and DNS lookups allowed for on top
  const udpFlowsOpened = done.udpFlows + done.dhcp + done.dhcpFailed + 2 * (done.dns + done.dnsFailed);
  if (after.udp > before.udp + udpFlowsOpened + slack) {
    problems.push(
      `UDP sockets grew from ${before.udp} to ${after.udp}, more than the ${udpFlowsOpened} flows opened`,
    );
  }
  if (after.rssKiB > maxRssKiB) problems.push(`RSS after ${mib(after.rssKiB)} exceeds ${mib(maxRssKiB)}`);
  if (internal.length > 0) problems.push(...internal.slice(0, 5));
  if (problems.length > 0) {
    console.error(`soak: FAILED\n${problems.slice(0, 20).join("\n")}`);
    stop(1);
  }
  console.log("soak: ok");
  stop(0);
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}
