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
// namespace's loopback (the guest dials 10.0.2.2); connection rate over 20,000
// connections, the client closing first (nettool crr) and the server closing first
// (nettool crrsc), with failed connections and stack CPU per connection;
// request/response latency p50/p99 (nettool rr, 64-byte echo on one connection); iperf3
// UDP at a fixed rate (loss, throughput) and the highest rate with <= 1 % loss; the
// stack's idle RSS, RSS after 10,000 closed connections and peak RSS (VmHWM); and
// flows held at once (10,000 and 30,000: time to open, KiB per flow, RSS after close).
// The stack's CPU is utime+stime from /proc/PID/stat; in kernel mode slirp's figures
// are its QEMU's (which there does nothing but slirp and the TAP). Then a
// connection-leak check: 2 x 10,000 connections through usernet, RSS and open
// descriptors before and after. bench/README.md says how each figure is measured.
//
// Everything runs in two network namespaces the bench creates (server side: usernet or
// QEMU, iperf3 -s, the TCP servers of lib/servers.mjs; client side: the TAP) and deletes
// at the end, also on failure or Ctrl-C. Bounded: iperf3 -t (5 s default, at most 10),
// fixed counts, time caps on the connection and held-flows tests, every wait with a
// timeout; the whole run takes about 20 minutes.
//
// Usage: node bench/run.mjs [--guest kernel|qemu|both] [--time S] [--mtu 1500,65520]
//                           [--out FILE] [--no-leak] [--conns N] [--hold 10000,30000]
//                           [--only tcpUp,tcpDown,tcp6Up,tcp6Down,udp,udpMax,rr,crr,crrServerClose,hold,mem]
//                           [--profile DIR]  (usernet runs with --cpu-prof into DIR)
//                           [--transport tcp|unix]  (QEMU to usernet; default tcp)
// Needs root, iproute2, qemu-system-x86_64, iperf3, gcc, /dev/net/tun, and dist/ built
// (npx tsc -p tsconfig.json). Writes bench/results/latest.json.
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
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
const tests = [
  "tcpUp",
  "tcpDown",
  "tcp6Up",
  "tcp6Down",
  "udp",
  "udpMax",
  "rr",
  "crr",
  "crrServerClose",
  "hold",
  "mem",
];
if (only?.some((t) => !tests.includes(t))) fail(`--only takes ${tests.join(", ")}`);
const wanted = (name) => !only || only.includes(name);
/** IPv6 TCP (tap mode only): the namespace tools with their IPv6 on, iperf3 to the gateway standing for ::1 */
const ipv6Wanted = modes.includes("tap") && (wanted("tcp6Up") || wanted("tcp6Down"));
/** connections per crr test, both variants (default per guest kind, below) */
const connsOpt = opt("conns", undefined);
if (connsOpt !== undefined && !(Number(connsOpt) >= 1)) fail("--conns takes a positive count");
/** flows held at once by the held-flows test, one run per count */
const holdCounts = opt("hold", "10000,30000").split(",").map(Number);
if (holdCounts.some((n) => !(n >= 1 && n <= 100_000))) fail("--hold takes counts from 1 to 100000");
/** how QEMU reaches usernet: a unix stream socket (what `npm start` offers) or TCP loopback */
const transport = opt("transport", "tcp");
if (!["unix", "tcp"].includes(transport)) fail("--transport takes unix or tcp");
const main = ["dist/cli/main.js", "dist/src/cli/main.js"].map((p) => join(repoRoot, p)).find(existsSync);
if (!main) fail("dist/cli/main.js is missing: run npx tsc -p tsconfig.json");

/**
 * Per guest kind: connections per crr test (each variant), round trips, the fixed UDP
 * rate every stack should carry, and whether the once-per-stack tests run (udpMax, hold,
 * mem: at the first MTU only). The TCG guest manages a few hundred connections/s
 * whatever the stack, so its crr runs are shorter and it skips the long tests: there
 * they would measure the emulated CPU, and slirp's memory is QEMU's with the guest's.
 */
const plan = {
  kernel: { crr: 20_000, rr: 5000, udpRate: "500M", long: true },
  qemu: { crr: 5000, rr: 2000, udpRate: "50M", long: false },
  tap: { crr: 20_000, rr: 5000, udpRate: "500M", long: true },
};
if (connsOpt !== undefined) for (const p of Object.values(plan)) p.crr = Number(connsOpt);
/** connections after which the stack's resident memory is read (the mem test) */
const MEM_CONNS = 10_000;
/** held flows per client process and destination port (below the guest's ~28,000 ephemeral ports) */
const HOLD_PER_LANE = 15_000;
/** the held-flows test's time to open one count's flows, all lanes together */
const HOLD_OPEN_MS = 30_000;
const holdLanes = Math.max(1, ...holdCounts.map((n) => Math.ceil(n / HOLD_PER_LANE)));
/** the highest UDP rate with at most this loss, found in at most UDP_PROBES more runs */
const UDP_MAX_LOSS = 1;
const UDP_PROBES = 5;
/** pasta copies the server namespace's address and gateway into the client namespace */
const PASTA_ADDR = "10.77.0.1";
const PASTA_GW = "10.77.0.2";
const IPERF_PORT = 5201;
/** iperf3 on the server namespace's ::1, for IPv6 TCP */
const IPERF6_PORT = 5206;
/** pasta copies these too: the template interface's IPv6 address and default gateway */
const PASTA_ADDR6 = "fd77::1";
const PASTA_GW6 = "fd77::2";
/** slirp4netns --enable-ipv6 (and usernet's drop-in): gateway fd00::2, which stands for ::1 */
const SLIRP_GW6 = "fd00::2";
/**
 * Server ports (bench/lib/servers.mjs in S): every test dials a port of its own, so the
 * TIME_WAIT sockets that 20,000 connections leave in the client namespace (60 s) never
 * share a 4-tuple with the next test's. echo: the client closes first; close: the
 * server answers and closes first; hold<k>: lane k of the held-flows test, one server
 * process per lane (one process holds at most RLIMIT_NOFILE connections).
 */
const PORT_BASE = { echo: 20_000, close: 21_000 };
for (let k = 0; k < holdLanes; k++) PORT_BASE[`hold${k}`] = 22_000 + 100 * k;
const PORTS_PER_KIND = 60;
const portsUsed = {};
const freshPort = (kind) => {
  portsUsed[kind] = ((portsUsed[kind] ?? -1) + 1) % PORTS_PER_KIND;
  return PORT_BASE[kind] + portsUsed[kind];
};
const portRange = (kind) => `${PORT_BASE[kind]}-${PORT_BASE[kind] + PORTS_PER_KIND - 1}`;
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
    if (ipv6Wanted) {
      await nsExecOk(S, "ip", ["-6", "addr", "add", `${PASTA_ADDR6}/64`, "dev", "ubv0", "nodad"]);
      await nsExecOk(S, "ip", ["-6", "route", "add", "default", "via", PASTA_GW6, "dev", "ubv0"]);
    }
  }
  const iperf = spawnIn(S, "iperf3 -s", "iperf3", ["-s", "-B", "127.0.0.1", "-p", String(IPERF_PORT)]);
  const script = join(repoRoot, "bench/lib/servers.mjs");
  const servers = [
    spawnIn(S, "servers", process.execPath, [
      script,
      `echo:${portRange("echo")}`,
      `close:${portRange("close")}`,
    ]),
  ];
  for (let k = 0; k < holdLanes; k++)
    servers.push(spawnIn(S, `hold server ${k}`, process.execPath, [script, `echo:${portRange(`hold${k}`)}`]));
  for (const sv of servers)
    await sv.until("SERVERS-READY", 20_000, () => (sv.stdout.includes("SERVERS-READY") ? true : undefined));
  await waitListening(S, IPERF_PORT, iperf);
  if (ipv6Wanted) {
    const iperf6 = spawnIn(S, "iperf3 -s (::1)", "iperf3", ["-s", "-B", "::1", "-p", String(IPERF6_PORT)]);
    await waitListening(S, IPERF6_PORT, iperf6);
  }
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
      ...(ipv6Wanted ? ["--enable-ipv6"] : []),
      "--configure",
      `--mtu=${mtu}`,
      "--netns-type=path",
      nsPath,
      ifname,
    ]);
  } else if (stack === "slirp4netns") {
    p = spawnPrivate("slirp4netns", "slirp4netns", [
      ...(ipv6Wanted ? ["--enable-ipv6"] : []),
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
  const gateway6 = ipv6Wanted ? await waitIpv6(stack, ifname, p) : undefined;
  return { p, gateway, gateway6 };
}

/**
 * Waits for C's IPv6 address from the tool (SLAAC for slirp4netns and usernet, pasta's
 * own) and a default route; returns the gateway to dial, or undefined (logged) when
 * none came in 20 s: the IPv6 figures of that tool are then missing, not wrong.
 */
async function waitIpv6(stack, ifname, p) {
  const gateway6 = stack === "pasta" ? PASTA_GW6 : SLIRP_GW6;
  const deadline = Date.now() + 20_000;
  for (;;) {
    const a = await nsExec(C, "ip", ["-6", "-o", "addr", "show", "dev", ifname]);
    const r = await nsExec(C, "ip", ["-6", "route", "show", "default"]);
    if (/inet6 (?!fe80)[0-9a-f:]+\/\d+ (?!.*tentative)/.test(a.stdout) && r.stdout.includes("default")) break;
    if (p.exit || Date.now() > deadline) {
      log(`  ${stack}: no IPv6 address or route on ${ifname} in C after 20 s`);
      return undefined;
    }
    await sleep(100);
  }
  await nsExec(C, "busybox", ["ping", "-6", "-c", "1", "-W", "3", gateway6]).catch(() => undefined);
  return gateway6;
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
    const { p, gateway, gateway6 } = await startNamespaceTool(stack, mtu);
    started.push(p);
    return {
      stackPid: p.pid,
      stackLabel: stack,
      gateway,
      gateway6,
      nettool: image.nettool,
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
        nettool: image.nettool,
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

/**
 * One configuration's figures. Order matters: idle memory before any traffic, the
 * 10,000-connection memory test before bulk traffic grows the heap, rr before the
 * connection tests, and the server-closes-first test last (a stack that keeps TIME_WAIT
 * state per flow may refuse connections for a while after it).
 */
async function measure(mode, cfg, first) {
  const p = plan[mode];
  const long = p.long && first;
  const t = (seconds + 30) * 1000;
  const r = {};
  const pid = cfg.stackPid;
  const cpu0 = pid ? cpuSeconds(pid) : undefined;
  const rssMiB = () => memoryKiB(pid).rss / 1024;
  const step = async (name, fn) => {
    if (!wanted(name)) return;
    try {
      await fn();
    } catch (e) {
      r[`${name}Error`] = String(e.message).split("\n")[0];
      log(`  ${name}: ${e.message.split("\n").slice(0, 3).join(" | ")}`);
    }
  };
  const gw = cfg.gateway ?? "10.0.2.2";
  if (pid) {
    await sleep(1000);
    r.idleRssMiB = rssMiB();
  }
  const iperf = `iperf3 -c ${gw} -p ${IPERF_PORT} -t ${seconds} -J`;
  /** the stack's CPU seconds per GB received by the other end, over one iperf3 run */
  const cpuPerGb = async (cmd) => {
    const c0 = pid ? cpuSeconds(pid) : undefined;
    const j = iperfJson((await cfg.client(cmd, t)).output);
    const gb = j.end.sum_received.bytes / 1e9;
    const cpu = c0 === undefined ? undefined : (cpuSeconds(pid) - c0) / gb;
    return { gbps: j.end.sum_received.bits_per_second / 1e9, cpu };
  };
  /** crr or crrsc: connections/s over `count` connections, failures by kind, CPU µs per connection */
  const connections = async (variant, port, count) => {
    const maxMs = Math.max(60_000, count * 10); // a stack that drops SYNs stops the test, not the bench
    const c0 = pid ? cpuSeconds(pid) : undefined;
    const out = (await cfg.client(`nettool ${variant} ${gw} ${port} ${count} ${maxMs}`, maxMs + 60_000))
      .output;
    const f = nettoolFields(out, variant);
    const ok = Number(f.ok);
    const cpu = c0 === undefined ? undefined : cpuSeconds(pid) - c0;
    return {
      perS: Number(f.per_s),
      ok,
      failed: Number(f.fail) + (count - Number(f.tried)),
      refused: Number(f.refused),
      timedOut: Number(f.timeout),
      cpuUs: cpu !== undefined && ok > 0 ? (cpu * 1e6) / ok : undefined,
    };
  };
  if (long && pid) {
    await step("mem", async () => {
      const c = await connections("crr", freshPort("echo"), MEM_CONNS);
      await sleep(5000);
      r.rssAfterClosedMiB = rssMiB();
      r.memConnFailed = c.failed;
    });
  }
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
  // IPv6 (tap mode): the same iperf3 to the gateway standing for the server's ::1
  const iperf6 = cfg.gateway6 && `iperf3 -6 -c ${cfg.gateway6} -p ${IPERF6_PORT} -t ${seconds} -J`;
  if (mode === "tap" && ipv6Wanted) {
    await step("tcp6Up", async () => {
      if (!iperf6) throw new Error("no IPv6 in the namespace");
      r.tcp6UpGbps = (await cpuPerGb(iperf6)).gbps;
    });
    await step("tcp6Down", async () => {
      if (!iperf6) throw new Error("no IPv6 in the namespace");
      r.tcp6DownGbps = (await cpuPerGb(`${iperf6} -R`)).gbps;
    });
  }
  /** iperf3 UDP at `rate` (e.g. "500M") for `secs`: received Gb/s and loss % */
  const udpAt = async (rate, secs) => {
    const cmd = `iperf3 -c ${gw} -p ${IPERF_PORT} -t ${secs} -J -u -b ${rate} -l 1400`;
    const j = iperfJson((await cfg.client(cmd, (secs + 30) * 1000)).output);
    const sum = j.end.sum_received ?? j.end.sum;
    return { gbps: sum.bits_per_second / 1e9, loss: j.end.sum.lost_percent ?? sum.lost_percent };
  };
  let fixedUdp;
  await step("udp", async () => {
    fixedUdp = await udpAt(p.udpRate, seconds);
    r.udpRate = p.udpRate;
    r.udpGbps = fixedUdp.gbps;
    r.udpLossPercent = fixedUdp.loss;
  });
  if (long) {
    await step("udpMax", async () => {
      Object.assign(r, await udpMax(udpAt, p.udpRate, fixedUdp));
    });
  }
  await step("rr", async () => {
    const f = nettoolFields(
      (await cfg.client(`nettool rr ${gw} ${freshPort("echo")} ${p.rr} 64`, 120_000)).output,
      "rr",
    );
    if (Number(f.ok) !== p.rr) throw new Error(`rr: ${f.ok} of ${p.rr} round trips`);
    r.rttP50us = Number(f.p50_us);
    r.rttP99us = Number(f.p99_us);
  });
  await step("crr", async () => {
    const c = await connections("crr", freshPort("echo"), p.crr);
    r.connPerS = c.perS;
    r.connFailed = c.failed;
    r.connRefused = c.refused;
    r.connTimedOut = c.timedOut;
    r.cpuUsPerConn = c.cpuUs;
  });
  await step("crrServerClose", async () => {
    const c = await connections("crrsc", freshPort("close"), p.crr);
    r.connScPerS = c.perS;
    r.connScFailed = c.failed;
    r.connScRefused = c.refused;
    r.connScTimedOut = c.timedOut;
    r.cpuUsPerConnSc = c.cpuUs;
  });
  if (pid) {
    r.stackCpuS = cpuSeconds(pid) - cpu0;
    r.stackPeakRssMiB = memoryKiB(pid).hwm / 1024;
  }
  return r;
}

/**
 * The highest UDP rate with at most UDP_MAX_LOSS % loss: from the fixed-rate run (or a
 * run at that rate), doubling until a rate loses more, halving until one does not, then
 * geometric bisection; at most UDP_PROBES runs of up to 3 s after the first.
 */
async function udpMax(udpAt, fixedRate, fixed) {
  const secs = Math.min(3, seconds);
  const probes = [];
  let lo; // highest rate (Mb/s) that passed, with its received Gb/s
  let hi; // lowest rate that failed
  const probe = (mbps, x) => {
    probes.push({ mbps, gbps: x.gbps, lossPercent: x.loss });
    if (x.loss <= UDP_MAX_LOSS) {
      if (!lo || mbps > lo.mbps) lo = { mbps, gbps: x.gbps };
    } else if (!hi || mbps < hi) hi = mbps;
  };
  const start = Number.parseInt(fixedRate, 10);
  probe(start, fixed ?? (await udpAt(`${start}M`, secs)));
  for (let i = 0; i < UDP_PROBES; i++) {
    let next;
    if (hi === undefined) next = lo.mbps * 2;
    else if (lo === undefined) next = hi / 2;
    else if (hi / lo.mbps < 1.15) break;
    else next = Math.sqrt(lo.mbps * hi);
    next = Math.round(next);
    probe(next, await udpAt(`${next}M`, secs));
  }
  return {
    udpMaxMbps: lo?.mbps ?? 0,
    udpMaxGbps: lo?.gbps ?? 0,
    udpMaxProbes: probes,
  };
}

/**
 * The held-flows test, one run per count in holdCounts, each on a fresh instance of the
 * stack from start() (so that its memory growth is the flows', not the bulk tests' or
 * the previous count's, and no TIME_WAIT state of the connection tests is left), once
 * the stack settled (CPU idle). A run whose open time ran out ends the test: a larger
 * count would only run out again.
 */
async function holdTest(start) {
  const r = {};
  let outOfTime;
  for (const n of holdCounts) {
    if (outOfTime) {
      r[`hold${n}Error`] = `not run: ${outOfTime}`;
      continue;
    }
    let cfg;
    try {
      cfg = await start();
      await settle(cfg.stackPid);
      const h = await holdFlows(cfg, n);
      r[`hold${n}Held`] = h.held;
      r[`hold${n}OpenS`] = h.openS;
      if (cfg.stackPid) {
        r[`hold${n}RssBeforeMiB`] = h.rssBeforeMiB;
        r[`hold${n}RssHeldMiB`] = h.rssHeldMiB;
        r[`hold${n}KiBPerFlow`] = h.kibPerFlow;
        r[`hold${n}RssAfterCloseMiB`] = h.rssAfterCloseMiB;
      }
      if (h.note) r[`hold${n}Error`] = h.note;
      if (h.capped) outOfTime = `${h.held} flows held after the ${HOLD_OPEN_MS / 1000} s open time of ${n}`;
    } catch (e) {
      r[`hold${n}Error`] = String(e.message).split("\n")[0];
      log(`  hold ${n}: ${e.message.split("\n").slice(0, 3).join(" | ")}`);
    } finally {
      await cfg?.close();
    }
  }
  return r;
}

/** Waits (up to maxMs) until the process used under 50 ms of CPU in a second. */
async function settle(pid, maxMs = 30_000) {
  if (!pid) return;
  const deadline = Date.now() + maxMs;
  while (Date.now() < deadline) {
    const c0 = cpuSeconds(pid);
    await sleep(1000);
    if (cpuSeconds(pid) - c0 < 0.05) return;
  }
}

/**
 * n flows from the client namespace held open at once: nettool hold processes ("lanes"),
 * each up to HOLD_PER_LANE flows to a port of its own lane server, one after the other
 * (the next lane starts only when the previous one held all of its share). Open time is
 * the lanes' connect loops summed, capped at HOLD_OPEN_MS for all lanes together (some
 * stacks slow down with every flow they hold); the stack's RSS is read before, 2 s after
 * the last lane holds, and once the stack is idle (at least 5 s) after every flow closed.
 */
async function holdFlows(cfg, n) {
  const pid = cfg.stackPid;
  const rss = () => (pid ? memoryKiB(pid).rss : Number.NaN);
  const rss0 = rss();
  const lanes = [];
  let held = 0;
  let openUs = 0;
  let note;
  let capped = false;
  try {
    for (let k = 0, left = n; left > 0; k++, left -= HOLD_PER_LANE) {
      const share = Math.min(HOLD_PER_LANE, left);
      const port = freshPort(`hold${k}`);
      const lane = spawnIn(
        C,
        `nettool hold lane ${k}`,
        cfg.nettool,
        [
          "hold",
          cfg.gateway ?? "10.0.2.2",
          String(port),
          String(share),
          "600000",
          String(Math.max(1, HOLD_OPEN_MS - openUs / 1000)),
        ],
        { stdin: "pipe" },
      );
      lanes.push(lane);
      const line = await lane.until(
        `hold lane ${k} established`,
        240_000,
        () => /^hold open=.* capped=\d$/m.exec(lane.stdout)?.[0],
      );
      const f = nettoolFields(line, "hold");
      held += Number(f.ok);
      openUs += Number(f.open_us);
      if (Number(f.ok) < share) {
        capped = f.capped === "1";
        const why = capped ? `the ${HOLD_OPEN_MS / 1000} s open time ran out` : "connects failed";
        note = `lane ${k}: ${f.ok} of ${share} held, ${why} (open=${f.open} fail=${f.fail} first_errno=${f.first_errno})`;
        break;
      }
    }
    await sleep(2000);
    const rssHeld = rss();
    for (const lane of lanes) lane.child.stdin.end();
    for (const lane of lanes) {
      if (!(await lane.waitExit(60_000))) throw new Error(`${lane.label} did not close its flows in 60 s`);
    }
    await sleep(5000);
    await settle(pid);
    return {
      held,
      openS: openUs / 1e6,
      kibPerFlow: held > 0 ? (rssHeld - rss0) / held : undefined,
      rssBeforeMiB: rss0 / 1024,
      rssHeldMiB: rssHeld / 1024,
      rssAfterCloseMiB: rss() / 1024,
      note,
      capped,
    };
  } finally {
    for (const lane of lanes) {
      await lane.kill(2000);
      procs.delete(lane);
    }
  }
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
    await cfg.client(`nettool crr 10.0.2.2 ${freshPort("echo")} 1000`, 120_000); // warm up
    await sleep(2000);
    const n = 10_000;
    const points = [sample()];
    let ok = 0;
    let failed = 0;
    for (let round = 0; round < 2; round++) {
      const f = nettoolFields(
        (await cfg.client(`nettool crr 10.0.2.2 ${freshPort("echo")} ${n}`, 300_000)).output,
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
/** table rows: figure key, label (n: the guest kind's crr count), decimals */
const figures = (n) => [
  ["tcpUpGbps", "TCP guest→host Gb/s", 3],
  ["tcpDownGbps", "TCP host→guest Gb/s", 3],
  ["tcp6UpGbps", "IPv6 TCP guest→host Gb/s (tap)", 3],
  ["tcp6DownGbps", "IPv6 TCP host→guest Gb/s (tap)", 3],
  ["connPerS", `connections/s, client closes first (${n})`, 0],
  ["connFailed", "  failed connections", 0],
  ["connScPerS", `connections/s, server closes first (${n})`, 0],
  ["connScFailed", "  failed connections", 0],
  ["rttP50us", "RTT p50 µs", 0],
  ["rttP99us", "RTT p99 µs", 0],
  ["udpGbps", "UDP Gb/s (at fixed rate)", 3],
  ["udpLossPercent", "UDP loss %", 2],
  ["udpMaxMbps", `UDP highest rate Mb/s with ≤ ${UDP_MAX_LOSS} % loss`, 0],
  ["cpuPerGbUp", "stack CPU s per GB, guest→host", 2],
  ["cpuPerGbDown", "stack CPU s per GB, host→guest", 2],
  ["cpuUsPerConn", "stack CPU µs per connection, client closes", 0],
  ["cpuUsPerConnSc", "stack CPU µs per connection, server closes", 0],
  ["stackCpuS", "stack CPU s", 2],
  ["idleRssMiB", "stack idle RSS MiB (before traffic)", 1],
  ["rssAfterClosedMiB", `stack RSS MiB ${MEM_CONNS.toLocaleString("en")} closed connections later`, 1],
  ["stackPeakRssMiB", "stack peak RSS MiB", 1],
  ...holdCounts.flatMap((h) => {
    const c = h.toLocaleString("en");
    return [
      [`hold${h}Held`, `flows held of ${c}`, 0],
      [`hold${h}OpenS`, `  s to open them`, 2],
      [`hold${h}KiBPerFlow`, "  stack KiB per held flow", 2],
      [`hold${h}RssAfterCloseMiB`, "  stack RSS MiB after they closed", 1],
    ];
  }),
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
      for (const [k, label, d] of figures(plan[mode].crr.toLocaleString("en"))) {
        if (stacks.every((st) => typeof f(st)[k] !== "number")) continue;
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
  // the shared e2e cache can be rebuilt under a running bench (other users of the
  // machine): the bench keeps its own copies of the files it uses
  const image = { ...guestImage() };
  for (const k of ["kernel", "initrd", "nettool"]) {
    const own = join(tmp, `image-${k}`);
    copyFileSync(image[k], own);
    image[k] = own;
  }
  chmodSync(image.nettool, 0o755);
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
          const first = mtu === mtus[0];
          const f = await measure(mode, cfg, first);
          results.push({ mode, mtu, stack, figures: f });
          if (first && plan[mode].long && wanted("hold")) {
            await cfg.close();
            cfg = undefined;
            log(`  held flows (${holdCounts.join(", ")}), each count on a fresh ${stack}`);
            Object.assign(
              f,
              await holdTest(() =>
                retryOnce(`${mode}/${mtu}/${stack} set-up`, () => setup(mode, stack, mtu, image)),
              ),
            );
          }
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
    host: {
      cpus: (await import("node:os")).cpus().length,
      node: process.version,
      // one process can hold no more flows than this (the stacks, the client lanes)
      nofile: Number((await run("sh", ["-c", "ulimit -Hn"])).stdout.trim()) || undefined,
    },
    holdCounts,
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
  log("the run took over 40 minutes: stopping");
  cleanup().finally(() => process.exit(1));
}, 40 * 60_000);
try {
  await mainRun();
} catch (e) {
  log(`error: ${e.stack ?? e}`);
  process.exitCode = 1;
} finally {
  clearTimeout(cap);
  await cleanup();
}
