#!/usr/bin/env node
// usernet benchmark: the same client traffic through usernet and through QEMU's own
// slirp (-netdev user / -net user), side by side, in one run.
//
// Two ways to put a guest in front of the stack (--guest, default both):
//   kernel  QEMU with no CPU (-machine none) bridges a TAP to the stack on its hub 0:
//           `-netdev tap` with `-netdev stream,server=off` to usernet's listener, or
//           with `-netdev user` for slirp. The TAP is moved into a client namespace and the
//           host's own kernel is the guest (iperf3 and nettool run there). This measures
//           the stacks, not an emulated CPU; prefer it for throughput.
//   qemu    the e2e test kernel + initramfs (iperf3, nettool) booted under TCG with
//           virtio-net (host_mtu=) on -netdev stream (usernet) or -netdev user (slirp).
//           A TCG guest itself tops out at a few hundred Mb/s: ratios, not absolutes.
// Both at MTU 1500 and 65520 (usernet mtu=65520; QEMU 7.2's slirp has no mtu= option,
// so its side of the link stays at 1500 and it announces MSS 1460 whatever the guest's
// MTU: its 65520 row shows what a user gets by asking for 65520, nothing more).
//
// Figures: iperf3 TCP guest→host and host→guest (-R) against iperf3 -s on the server
// namespace's loopback (the guest dials 10.0.2.2); connection rate (nettool crr:
// sequential connect, 1-byte echo, close); request/response latency p50/p99 (nettool
// rr, 64-byte echo on one connection); iperf3 UDP at a fixed rate (loss, throughput).
// For usernet also its CPU seconds (utime+stime from /proc/PID/stat) over the
// measurements and its peak RSS (VmHWM); in kernel mode the same for the slirp QEMU
// (which there does nothing but slirp and the TAP). Then a connection-leak check:
// 10,000 connections through usernet, RSS and open descriptors before and after.
//
// Everything runs in two network namespaces the bench creates (server side: usernet or
// QEMU, iperf3 -s, an echo server; client side: the TAP) and deletes at the end, also
// on failure or Ctrl-C. Bounded: iperf3 -t (5 s default, at most 10), fixed counts,
// every wait with a timeout; the whole run takes about 5 minutes.
//
// Usage: node bench/run.mjs [--guest kernel|qemu|both] [--time S] [--mtu 1500,65520]
//                           [--out FILE] [--no-leak] [--only tcpUp,tcpDown,udp,crr,rr]
//                           [--profile DIR]  (usernet runs with --cpu-prof into DIR)
//                           [--transport tcp|unix]  (QEMU to usernet; default tcp)
// Needs root, iproute2, qemu-system-x86_64, iperf3, gcc, /dev/net/tun, and dist/ built
// (npx tsc -p tsconfig.json). Writes bench/results/latest.json.
import { randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { guestImage, repoRoot, SerialGuest } from "./lib/guest.mjs";
import { cpuSeconds, memoryKiB, Proc, run, runOk, sleep } from "./lib/proc.mjs";

// ---- options ------------------------------------------------------------------------
const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const guestOpt = opt("guest", "kernel,qemu,tap");
const modes = (guestOpt === "both" ? "kernel,qemu" : guestOpt === "all" ? "kernel,qemu,tap" : guestOpt).split(
  ",",
);
if (modes.some((m) => !["kernel", "qemu", "tap"].includes(m)))
  fail("--guest takes kernel, qemu, tap (comma-separated), both (kernel,qemu) or all");
const seconds = Math.min(10, Math.max(1, Number(opt("time", "5"))));
const mtus = opt("mtu", "1500,65520").split(",").map(Number);
if (mtus.some((m) => !(m >= 576 && m <= 65520))) fail("--mtu takes values from 576 to 65520");
const outFile = opt("out", join(repoRoot, "bench/results/latest.json"));
const leak = !argv.includes("--no-leak");
const profileDir = opt("profile", undefined);
const stackFilter = opt("stacks", undefined)?.split(",");
/** the stacks compared per guest kind: QEMU's slirp for QEMU-facing modes, the namespace tools for tap */
const stacksOf = (mode) =>
  (mode === "tap" ? ["usernet", "slirp4netns", "pasta"] : ["usernet", "slirp"]).filter(
    (st) => !stackFilter || stackFilter.includes(st),
  );
const only = opt("only", undefined)?.split(",");
/** how QEMU reaches usernet: a unix stream socket (what `npm start` offers) or TCP loopback */
const transport = opt("transport", "tcp");
if (!["unix", "tcp"].includes(transport)) fail("--transport takes unix or tcp");
const main = ["dist/cli/main.js", "dist/src/cli/main.js"].map((p) => join(repoRoot, p)).find(existsSync);
if (!main) fail("dist/cli/main.js is missing: run npx tsc -p tsconfig.json");

/** per guest kind: counts and the UDP rate that both stacks should carry */
const plan = {
  kernel: { crr: 3000, rr: 5000, udpRate: "500M" },
  qemu: { crr: 1000, rr: 2000, udpRate: "50M" },
  tap: { crr: 3000, rr: 5000, udpRate: "500M" },
};
/** pasta copies the server namespace's address and gateway into the client namespace */
const PASTA_ADDR = "10.77.0.1";
const PASTA_GW = "10.77.0.2";
const ECHO_PORT = 7777;
const IPERF_PORT = 5201;
const SOCKET_PORT = 10000;

function fail(msg) {
  process.stderr.write(`bench: ${msg}\n`);
  process.exit(2);
}
const log = (msg) => process.stderr.write(`bench: ${msg}\n`);

// ---- namespaces and cleanup -----------------------------------------------------------
const tag = `${process.pid}-${randomBytes(2).toString("hex")}`;
const S = `unbench-${tag}-s`;
const C = `unbench-${tag}-c`;
const procs = new Set();
const tmp = mkdtempSync(join(tmpdir(), "unbench-"));
const nsExec = (ns, cmd, args, t) => run("ip", ["netns", "exec", ns, cmd, ...args], t);
const nsExecOk = (ns, cmd, args, t) => runOk("ip", ["netns", "exec", ns, cmd, ...args], t);
function spawnIn(ns, label, cmd, args, opts) {
  const p = new Proc(
    label,
    "ip",
    ["netns", "exec", ns, "setpriv", "--pdeathsig", "KILL", "--", cmd, ...args],
    opts,
  );
  procs.add(p);
  return p;
}

let cleaning;
function cleanup() {
  cleaning ??= (async () => {
    await Promise.all([...procs].map((p) => p.kill(2000)));
    for (const ns of [C, S]) {
      const r = await run("ip", ["netns", "pids", ns]).catch(() => undefined);
      for (const pid of (r?.stdout ?? "")
        .split(/\s+/)
        .map(Number)
        .filter((n) => n > 1)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
      await run("ip", ["netns", "delete", ns]).catch(() => undefined);
    }
    rmSync(tmp, { recursive: true, force: true });
  })();
  return cleaning;
}
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    log(`${sig}: cleaning up`);
    cleanup().finally(() => process.exit(130));
  });
}

async function setupNamespaces() {
  for (const ns of [S, C]) {
    await runOk("ip", ["netns", "add", ns]);
    await nsExecOk(ns, "ip", ["link", "set", "lo", "up"]);
  }
  if (modes.includes("tap")) {
    // pasta needs an interface with a default route in the server namespace to copy
    // into the client's; a veth pair inside S (nothing answers there) serves as that
    await nsExecOk(S, "ip", ["link", "add", "ubv0", "type", "veth", "peer", "name", "ubv1"]);
    await nsExecOk(S, "ip", ["link", "set", "ubv0", "up"]);
    await nsExecOk(S, "ip", ["link", "set", "ubv1", "up"]);
    await nsExecOk(S, "ip", ["addr", "add", `${PASTA_ADDR}/24`, "dev", "ubv0"]);
    await nsExecOk(S, "ip", ["route", "add", "default", "via", PASTA_GW, "dev", "ubv0"]);
  }
  const iperf = spawnIn(S, "iperf3 -s", "iperf3", ["-s", "-B", "127.0.0.1", "-p", String(IPERF_PORT)]);
  const echo = spawnIn(S, "echo server", process.execPath, [
    "-e",
    `require("node:net").createServer((c) => { c.setNoDelay(true); c.on("error", () => {}); c.pipe(c); })
       .listen({ port: ${ECHO_PORT}, host: "127.0.0.1", backlog: 4096 }, () => console.log("ECHO-READY"))`,
  ]);
  await echo.until("ECHO-READY", 10_000, () => (echo.out.includes("ECHO-READY") ? true : undefined));
  await waitListening(S, IPERF_PORT, iperf);
}

async function waitListening(ns, port, proc, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await nsExec(ns, "ss", ["-Hlnt", `sport = :${port}`], 5000);
    if (r.stdout.trim() !== "") return;
    if (proc?.exit) throw new Error(`${proc.label} exited\n${proc.tail()}`);
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port} in ${ns} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

// ---- the stacks ---------------------------------------------------------------------------
/** A command in S, in a private mount namespace whose resolv.conf names only loopback. */
function spawnPrivate(label, cmd, args) {
  const resolv = join(tmp, "resolv.conf");
  writeFileSync(resolv, "nameserver 127.0.0.1\n");
  return spawnIn(S, label, "unshare", [
    "-m",
    "--propagation",
    "private",
    "sh",
    "-c",
    'mount --bind "$0" /etc/resolv.conf && exec "$@"',
    resolv,
    cmd,
    ...args,
  ]);
}

/** The node flags the `usernet` bin runs with: its shebang's (`#!/usr/bin/env -S node FLAGS`). */
const binFlags = (readFileSync(main, "utf8").split("\n")[0] ?? "")
  .split(/\s+/)
  .filter((w) => w.startsWith("--"));
const nodeArgs = () => [
  ...binFlags,
  ...(profileDir ? ["--cpu-prof", "--cpu-prof-dir", profileDir] : []),
  main,
];

/** usernet in S with a QEMU stream listener (unix or TCP, per --transport) for the guest. */
async function startUsernet(mtu) {
  rmSync(socketPath(), { force: true });
  const u = spawnPrivate("usernet", process.execPath, [
    ...nodeArgs(),
    "-netdev",
    `user,id=u0,mtu=${mtu}`,
    "-netdev",
    transport === "unix"
      ? `stream,id=s0,server=on,addr.type=unix,addr.path=${socketPath()}`
      : `socket,id=s0,listen=127.0.0.1:${SOCKET_PORT}`,
  ]);
  if (transport === "tcp") await waitListening(S, SOCKET_PORT, u);
  else await waitForPath(socketPath(), u);
  return u;
}

const socketPath = () => join(tmp, "hub0.sock");
/** QEMU's side of the transport, as -netdev options after the id */
const qemuStream = () =>
  transport === "unix"
    ? `stream,server=off,addr.type=unix,addr.path=${socketPath()}`
    : `stream,server=off,addr.type=inet,addr.host=127.0.0.1,addr.port=${SOCKET_PORT}`;

async function waitForPath(path, proc, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(path)) {
    if (proc?.exit) throw new Error(`${proc.label} exited\n${proc.tail()}`);
    if (Date.now() > deadline) throw new Error(`no ${path} after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/**
 * The namespace tools, run in S for the namespace C: usernet's slirp4netns drop-in,
 * slirp4netns itself, or pasta. Returns the process and the address C dials for the
 * host's loopback (the tools' gateway).
 */
async function startNamespaceTool(stack, mtu) {
  const nsPath = `/var/run/netns/${C}`;
  let p;
  let ifname = "tap0";
  let gateway = "10.0.2.2";
  if (stack === "usernet") {
    p = spawnPrivate("usernet slirp4netns", process.execPath, [
      ...nodeArgs(),
      "slirp4netns",
      "--configure",
      `--mtu=${mtu}`,
      "--netns-type=path",
      nsPath,
      ifname,
    ]);
  } else if (stack === "slirp4netns") {
    p = spawnPrivate("slirp4netns", "slirp4netns", [
      "--configure",
      `--mtu=${mtu}`,
      "--netns-type=path",
      nsPath,
      ifname,
    ]);
  } else {
    ifname = "ubv0"; // pasta names its TAP after the template interface
    gateway = PASTA_GW;
    p = spawnPrivate("pasta", "pasta", [
      "-f",
      "-q",
      "--runas",
      "0",
      "--config-net",
      "-m",
      String(mtu),
      "-t",
      "none",
      "-u",
      "none",
      "-T",
      "none",
      "-U",
      "none",
      "--netns",
      nsPath,
    ]);
  }
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await nsExec(C, "ip", ["-br", "-4", "addr", "show", "dev", ifname]);
    if (r.code === 0 && /\d+\.\d+\.\d+\.\d+/.test(r.stdout)) break;
    if (p.exit || Date.now() > deadline)
      throw new Error(`${p.label}: no address on ${ifname} in ${C}\n${p.tail()}`);
    await sleep(100);
  }
  await nsExec(C, "busybox", ["ping", "-c", "1", "-W", "3", gateway]).catch(() => undefined);
  return { p, gateway };
}

/** QEMU with no CPU; its TAP is moved into C and addressed there like a guest. */
async function startTapBridge(stack, mtu) {
  const ifname = "ubt0";
  // the TAP and the stack meet on QEMU's hub 0
  const stackNet =
    stack === "usernet" ? `${qemuStream().replace(/^stream,/, "stream,id=st0,")}` : "user,id=st0";
  const net = [
    "-netdev",
    `tap,id=tp0,ifname=${ifname},script=no,downscript=no`,
    "-netdev",
    stackNet,
    "-netdev",
    "hubport,id=hp0,hubid=0,netdev=tp0",
    "-netdev",
    "hubport,id=hp1,hubid=0,netdev=st0",
  ];
  const q = spawnIn(S, `qemu (${stack} bridge)`, "qemu-system-x86_64", [
    "-machine",
    "none",
    "-nodefaults",
    "-display",
    "none",
    ...net,
  ]);
  const deadline = Date.now() + 20_000;
  while ((await nsExec(S, "ip", ["link", "show", ifname])).code !== 0) {
    if (q.exit || Date.now() > deadline) throw new Error(`no ${ifname} from QEMU\n${q.tail()}`);
    await sleep(100);
  }
  await runOk("ip", ["-n", S, "link", "set", ifname, "netns", C]);
  await nsExecOk(C, "ip", ["link", "set", ifname, "mtu", String(mtu), "up"]);
  await nsExecOk(C, "ip", ["addr", "add", "10.0.2.15/24", "dev", ifname]);
  await nsExecOk(C, "ip", ["route", "add", "default", "via", "10.0.2.2"]);
  // the first frames find no ARP entry yet; one ping settles it (answered by the gateway)
  await nsExec(C, "busybox", ["ping", "-c", "1", "-W", "3", "10.0.2.2"]).catch(() => undefined);
  return q;
}

/** Runs a client command in the client namespace C ("nettool" is the built binary). */
function clientInC(nettool) {
  return async (cmd, t = 60_000) => {
    const r = await nsExec(C, "sh", ["-c", cmd.replace(/^nettool /, `${nettool} `)], t);
    return { code: r.code, output: `${r.stdout}${r.stderr}${r.code === 0 ? "" : `[exit ${r.code}]`}` };
  };
}

/**
 * Brings up one configuration; returns { client(cmd) → {code, output}, stackPid,
 * stackLabel, close() }.
 */
async function setup(mode, stack, mtu, image) {
  const started = [];
  if (mode === "tap") {
    const { p, gateway } = await startNamespaceTool(stack, mtu);
    started.push(p);
    return {
      stackPid: p.pid,
      stackLabel: stack,
      gateway,
      client: clientInC(image.nettool),
      close: () => closeAll(started),
    };
  }
  const u = stack === "usernet" ? await startUsernet(mtu) : undefined;
  if (u) started.push(u);
  try {
    if (mode === "kernel") {
      const q = await startTapBridge(stack, mtu);
      started.push(q);
      return {
        stackPid: u ? u.pid : q.pid,
        stackLabel: u ? "usernet" : "qemu (slirp only)",
        client: clientInC(image.nettool),
        close: () => closeAll(started),
      };
    }
    const net =
      stack === "usernet"
        ? ["-netdev", qemuStream().replace(/^stream,/, "stream,id=n0,")]
        : ["-netdev", "user,id=n0"];
    net.push("-device", `virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,host_mtu=${mtu}`);
    const g = await SerialGuest.boot(["ip", "netns", "exec", S], image, {
      net,
      mtu,
      label: `guest (${stack})`,
    });
    procs.add(g.proc);
    started.push(g.proc);
    return {
      stackPid: u?.pid,
      stackLabel: u ? "usernet" : undefined,
      client: (cmd, t = 60_000) => g.run(cmd, t),
      close: () => closeAll(started),
    };
  } catch (e) {
    await closeAll(started);
    throw e;
  }
}

async function closeAll(list) {
  for (const p of list.reverse()) {
    await p.kill(3000);
    procs.delete(p);
  }
  // the TAP leaves C with QEMU; the route goes with it
}

// ---- measurements ---------------------------------------------------------------------------
function iperfJson(output) {
  const a = output.indexOf("{");
  const b = output.lastIndexOf("}");
  if (a < 0 || b < a) throw new Error(`no iperf3 JSON in:\n${output.slice(-2000)}`);
  const j = JSON.parse(output.slice(a, b + 1));
  if (j.error) throw new Error(`iperf3: ${j.error}`);
  return j;
}

function nettoolFields(output, kind) {
  const line = output.split("\n").find((l) => l.startsWith(`${kind} `));
  if (!line) throw new Error(`no nettool ${kind} line in:\n${output}`);
  return Object.fromEntries(
    line
      .trim()
      .split(" ")
      .slice(1)
      .map((kv) => kv.split("=")),
  );
}

async function measure(mode, cfg) {
  const p = plan[mode];
  const t = (seconds + 30) * 1000;
  const r = {};
  const cpu0 = cfg.stackPid ? cpuSeconds(cfg.stackPid) : undefined;
  const step = async (name, fn) => {
    if (only && !only.includes(name)) return;
    try {
      await fn();
    } catch (e) {
      r[`${name}Error`] = String(e.message).split("\n")[0];
      log(`  ${name}: ${e.message.split("\n").slice(0, 3).join(" | ")}`);
    }
  };
  const gw = cfg.gateway ?? "10.0.2.2";
  const iperf = `iperf3 -c ${gw} -p ${IPERF_PORT} -t ${seconds} -J`;
  /** the stack's CPU seconds per GB received by the other end, over one iperf3 run */
  const cpuPerGb = async (cmd) => {
    const c0 = cfg.stackPid ? cpuSeconds(cfg.stackPid) : undefined;
    const j = iperfJson((await cfg.client(cmd, t)).output);
    const gb = j.end.sum_received.bytes / 1e9;
    const cpu = c0 === undefined ? undefined : (cpuSeconds(cfg.stackPid) - c0) / gb;
    return { gbps: j.end.sum_received.bits_per_second / 1e9, cpu };
  };
  await step("tcpUp", async () => {
    const x = await cpuPerGb(iperf);
    r.tcpUpGbps = x.gbps;
    r.cpuPerGbUp = x.cpu;
  });
  await step("tcpDown", async () => {
    const x = await cpuPerGb(`${iperf} -R`);
    r.tcpDownGbps = x.gbps;
    r.cpuPerGbDown = x.cpu;
  });
  await step("udp", async () => {
    const j = iperfJson((await cfg.client(`${iperf} -u -b ${p.udpRate} -l 1400`, t)).output);
    const s = j.end.sum_received ?? j.end.sum;
    r.udpRate = p.udpRate;
    r.udpGbps = s.bits_per_second / 1e9;
    r.udpLossPercent = j.end.sum.lost_percent ?? s.lost_percent;
  });
  await step("crr", async () => {
    const f = nettoolFields(
      (await cfg.client(`nettool crr ${gw} ${ECHO_PORT} ${p.crr}`, 120_000)).output,
      "crr",
    );
    r.connPerS = Number(f.per_s);
    r.connFailed = Number(f.fail);
  });
  await step("rr", async () => {
    const f = nettoolFields(
      (await cfg.client(`nettool rr ${gw} ${ECHO_PORT} ${p.rr} 64`, 120_000)).output,
      "rr",
    );
    if (Number(f.ok) !== p.rr) throw new Error(`rr: ${f.ok} of ${p.rr} round trips`);
    r.rttP50us = Number(f.p50_us);
    r.rttP99us = Number(f.p99_us);
  });
  if (cfg.stackPid) {
    r.stackCpuS = cpuSeconds(cfg.stackPid) - cpu0;
    r.stackPeakRssMiB = memoryKiB(cfg.stackPid).hwm / 1024;
  }
  return r;
}

/**
 * Connections through usernet, two rounds of 10,000 after a 1,000-connection warm-up:
 * resident memory and descriptors after each. The first round lifts RSS to the
 * working set of a connection storm (heap, allocator); a leak shows as growth in the
 * second round, which should find everything reused.
 */
async function connLeak(mode, image) {
  const cfg = await setup(mode, "usernet", 1500, image);
  try {
    const fds = () => readdirSync(`/proc/${cfg.stackPid}/fd`).length;
    const sample = () => ({ rssMiB: memoryKiB(cfg.stackPid).rss / 1024, fds: fds() });
    await cfg.client(`nettool crr 10.0.2.2 ${ECHO_PORT} 1000`, 120_000); // warm up
    await sleep(2000);
    const n = 10_000;
    const points = [sample()];
    let ok = 0;
    let failed = 0;
    for (let round = 0; round < 2; round++) {
      const f = nettoolFields(
        (await cfg.client(`nettool crr 10.0.2.2 ${ECHO_PORT} ${n}`, 300_000)).output,
        "crr",
      );
      ok += Number(f.ok);
      failed += Number(f.fail);
      await sleep(3000);
      points.push(sample());
    }
    const [before, first, second] = points;
    return {
      mode,
      connections: 2 * n,
      ok,
      failed,
      rssBeforeMiB: before.rssMiB,
      rssAfterFirstMiB: first.rssMiB,
      rssAfterSecondMiB: second.rssMiB,
      fdsBefore: before.fds,
      fdsAfterFirst: first.fds,
      fdsAfterSecond: second.fds,
      peakRssMiB: memoryKiB(cfg.stackPid).hwm / 1024,
    };
  } finally {
    await cfg.close();
  }
}

/** A guest that dies while booting (seen once in a loaded run) gets one more try. */
async function retryOnce(what, fn) {
  try {
    return await fn();
  } catch (e) {
    log(`  ${what} failed, trying once more: ${e.message.split("\n").slice(0, 3).join(" | ")}`);
    return fn();
  }
}

// ---- report -------------------------------------------------------------------------------
const figures = [
  ["tcpUpGbps", "TCP guest→host Gb/s", 3],
  ["tcpDownGbps", "TCP host→guest Gb/s", 3],
  ["connPerS", "connections/s", 0],
  ["rttP50us", "RTT p50 µs", 0],
  ["rttP99us", "RTT p99 µs", 0],
  ["udpGbps", "UDP Gb/s (at fixed rate)", 3],
  ["udpLossPercent", "UDP loss %", 2],
  ["cpuPerGbUp", "stack CPU s per GB, guest→host", 2],
  ["cpuPerGbDown", "stack CPU s per GB, host→guest", 2],
  ["stackCpuS", "stack CPU s", 2],
  ["stackPeakRssMiB", "stack peak RSS MiB", 1],
];

function fmt(v, d) {
  return typeof v === "number" && Number.isFinite(v) ? v.toFixed(d) : "–";
}

function table(results) {
  const lines = [];
  for (const mode of modes) {
    const stacks = stacksOf(mode);
    const peers = stacks.filter((st) => st !== "usernet");
    const name = { usernet: "usernet", slirp: "QEMU slirp", slirp4netns: "slirp4netns", pasta: "pasta" };
    for (const mtu of mtus) {
      const f = (st) =>
        results.find((x) => x.mode === mode && x.mtu === mtu && x.stack === st)?.figures ?? {};
      const u = f("usernet");
      const note =
        mode === "tap"
          ? "a namespace on a TAP; stack CPU/RSS: the tool's own process"
          : `slirp's stack CPU/RSS: ${mode === "kernel" ? "its QEMU process" : "not separable from the TCG guest"}`;
      lines.push("", `guest=${mode}  mtu=${mtu}  (udp at ${plan[mode].udpRate}b/s; ${note})`);
      const head = [...stacks.map((st) => name[st]), ...peers.map((st) => `usernet/${name[st]}`)];
      lines.push(`| figure | ${head.join(" | ")} |`, `|---|${head.map(() => "---|").join("")}`);
      for (const [k, label, d] of figures) {
        const cells = stacks.map((st) => fmt(f(st)[k], d));
        for (const st of peers) {
          const v = f(st)[k];
          cells.push(
            fmt(typeof u[k] === "number" && typeof v === "number" && v !== 0 ? u[k] / v : undefined, 2),
          );
        }
        lines.push(`| ${label} | ${cells.join(" | ")} |`);
      }
      for (const st of stacks) {
        for (const [k, v] of Object.entries(f(st))) if (k.endsWith("Error")) lines.push(`  ${st} ${k}: ${v}`);
      }
    }
  }
  return lines.join("\n");
}

// ---- main ----------------------------------------------------------------------------------
async function mainRun() {
  const t0 = Date.now();
  log("building/locating the guest image");
  const image = guestImage();
  if (modes.includes("tap")) {
    for (const tool of ["slirp4netns", "pasta"]) {
      if ((await run("sh", ["-c", `command -v ${tool}`]).catch(() => ({ code: 1 }))).code !== 0)
        fail(`--guest tap needs ${tool} (apt-get install slirp4netns passt)`);
    }
  }
  await setupNamespaces();
  const results = [];
  for (const mode of modes) {
    for (const mtu of mtus) {
      for (const stack of stacksOf(mode)) {
        log(`${mode} guest, mtu ${mtu}, ${stack}`);
        let cfg;
        try {
          cfg = await retryOnce(`${mode}/${mtu}/${stack} set-up`, () => setup(mode, stack, mtu, image));
          const f = await measure(mode, cfg);
          results.push({ mode, mtu, stack, figures: f });
        } catch (e) {
          log(`  failed: ${e.message.split("\n").slice(0, 4).join(" | ")}`);
          results.push({ mode, mtu, stack, figures: { setupError: e.message.split("\n")[0] } });
        } finally {
          await cfg?.close();
        }
      }
    }
  }
  let leakResult;
  if (leak) {
    const mode = modes.includes("kernel") ? "kernel" : "qemu";
    log(`conn-leak: 2 x 10,000 connections through usernet (${mode} guest)`);
    try {
      leakResult = await retryOnce("conn-leak", () => connLeak(mode, image));
    } catch (e) {
      leakResult = { error: e.message.split("\n")[0] };
    }
  }
  const report = {
    date: new Date().toISOString(),
    host: { cpus: (await import("node:os")).cpus().length, node: process.version },
    seconds,
    plan,
    results,
    connLeak: leakResult,
    durationS: (Date.now() - t0) / 1000,
  };
  mkdirSync(dirname(outFile), { recursive: true });
  writeFileSync(outFile, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`${table(results)}\n`);
  if (leakResult) {
    process.stdout.write(
      leakResult.error
        ? `\nconn-leak: failed: ${leakResult.error}\n`
        : `\nconn-leak (${leakResult.mode} guest): ${leakResult.ok}/${leakResult.connections} ok; usernet RSS ${fmt(leakResult.rssBeforeMiB, 1)} → ${fmt(leakResult.rssAfterFirstMiB, 1)} MiB after 10,000 → ${fmt(leakResult.rssAfterSecondMiB, 1)} MiB after 10,000 more; descriptors ${leakResult.fdsBefore} → ${leakResult.fdsAfterFirst} → ${leakResult.fdsAfterSecond}; peak ${fmt(leakResult.peakRssMiB, 1)} MiB\n`,
    );
  }
  process.stdout.write(`\nwritten to ${outFile} (${report.durationS.toFixed(0)} s)\n`);
}

// A hard cap on the whole run, whatever hangs.
const cap = setTimeout(() => {
  log("the run took over 15 minutes: stopping");
  cleanup().finally(() => process.exit(1));
}, 15 * 60_000);
try {
  await mainRun();
} catch (e) {
  log(`error: ${e.stack ?? e}`);
  process.exitCode = 1;
} finally {
  clearTimeout(cap);
  await cleanup();
}
