// Start-up cost of the slirp4netns drop-in, as Podman pays it (issue 17): Podman runs
// the binary twice per container (`--help`, then the network), and waits for the
// ready fd before it starts the container.
//
//   ready    time from exec to the byte on the ready fd, with Podman's flags
//            (`--mtu=65520 --enable-sandbox --enable-seccomp -c -e 3 -r 4 PID tap0`):
//            usernet's drop-in, slirp4netns, and a bare node that writes the byte at
//            once (node's own floor, with the bin's flags)
//   ready cpu  the CPU time (user + system) the process spent until then
//   help     time of `BINARY --help` to its exit
//   podman   `podman run --rm IMAGE true` with --network none, slirp4netns (Podman's
//            network_cmd_path at slirp4netns) and usernet (at a wrapper of the drop-in);
//            the start overhead is the run's time minus --network none's in the same round
//
// Each round runs every contender once, in turn, so the ratios pair runs made under the
// same load; the table gives medians. Podman runs as root with a private configuration,
// vfs storage and an image imported from a busybox-static tree, all in a temp directory.
// Everything runs in a namespace made for the run (only lo), in a private mount namespace
// whose resolv.conf names 127.0.0.1.
//
// Usage: node bench/startup.mjs [--rounds N] [--only ready,help,podman] [--out FILE]
// Needs root, iproute2, util-linux, slirp4netns, podman, crun, busybox-static; npx tsc first.
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  closeSync,
  constants,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readlinkSync,
  readSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const main = join(repoRoot, "dist/cli/main.js");
const argv = process.argv.slice(2);
const opt = (name, def) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const rounds = Number(opt("rounds", "7"));
const only = (opt("only", "ready,help,podman") ?? "").split(",");
const out = opt("out", undefined);
const inner = argv.includes("--inner");
// the node flags the `usernet` bin runs with (its shebang's)
const binFlags = (readFileSync(main, "utf8").split("\n")[0] ?? "")
  .split(" ")
  .filter((w) => w.startsWith("--"));

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6;
/** CPU milliseconds (user + system) of a live process, from /proc/PID/stat (10 ms ticks). */
const cpuMs = (pid) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return Number.NaN;
  }
};

if (!inner) {
  // outside: make the namespace and the private mount namespace, run this file inside
  if (process.getuid?.() !== 0) throw new Error("bench/startup.mjs needs root (namespaces, podman as root)");
  const ns = `unbench-start-${process.pid}`;
  const tmp = mkdtempSync("/tmp/unbs-");
  chmodSync(tmp, 0o755);
  writeFileSync(join(tmp, "resolv.conf"), "nameserver 127.0.0.1\n");
  try {
    spawnSync("ip", ["netns", "add", ns], { stdio: "inherit" });
    spawnSync("ip", ["netns", "exec", ns, "ip", "link", "set", "lo", "up"], { stdio: "inherit" });
    const setup = [
      `mount --bind '${tmp}/resolv.conf' /etc/resolv.conf`,
      "mount -t cgroup2 none /sys/fs/cgroup",
      "mkdir -p /run/netns",
      "mount -t tmpfs tmpfs /run/netns",
    ].join(" && ");
    const r = spawnSync(
      "ip",
      [
        "netns",
        "exec",
        ns,
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        `${setup} && exec "$0" "$@"`,
        process.execPath,
        fileURLToPath(import.meta.url),
        "--inner",
        tmp,
        ...argv,
      ],
      { stdio: "inherit", timeout: 1_800_000 },
    );
    process.exitCode = r.status ?? 1;
  } finally {
    const pids = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" })
      .stdout.split(/\s+/)
      .filter(Boolean);
    for (const p of pids) {
      try {
        process.kill(Number(p), "SIGKILL");
      } catch {
        // gone
      }
    }
    spawnSync("ip", ["netns", "delete", ns]);
    rmSync(tmp, { recursive: true, force: true });
  }
} else {
  const tmp = argv[argv.indexOf("--inner") + 1];
  const results = { rounds, ready: {}, help: {}, podman: {} };
  const wrapper = join(tmp, "usernet-slirp4netns");
  writeFileSync(
    wrapper,
    `#!/bin/sh\nexec '${process.execPath}' ${binFlags.join(" ")} '${main}' slirp4netns "$@"\n`,
    { mode: 0o755 },
  );
  const floor = join(tmp, "node-floor.sh");
  writeFileSync(
    join(tmp, "floor.mjs"),
    'import { writeSync } from "node:fs";\nwriteSync(3, "1");\nsetTimeout(() => {}, 300);\n',
  );
  writeFileSync(floor, `#!/bin/sh\nexec '${process.execPath}' ${binFlags.join(" ")} '${tmp}/floor.mjs'\n`, {
    mode: 0o755,
  });

  if (only.includes("ready")) {
    const contenders = { usernet: wrapper, slirp4netns: "/usr/bin/slirp4netns", "node (floor)": floor };
    spawnSync("mkfifo", [join(tmp, "r"), join(tmp, "e")]);
    const times = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
    const cpu = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
    for (let i = 0; i < rounds; i++) {
      for (const [name, bin] of Object.entries(contenders)) {
        const target = spawn("unshare", ["-n", "sleep", "60"], { stdio: "ignore" });
        for (let k = 0; k < 200; k++) {
          try {
            if (readlinkSync(`/proc/${target.pid}/exe`).endsWith("/sleep")) break;
          } catch {
            // not yet
          }
          await new Promise((r) => setTimeout(r, 10));
        }
        const r = openSync(join(tmp, "r"), constants.O_RDWR);
        const ew = openSync(join(tmp, "e"), constants.O_RDWR);
        const er = openSync(join(tmp, "e"), constants.O_RDONLY | constants.O_NONBLOCK);
        const t0 = process.hrtime.bigint();
        const args = [
          "--mtu=65520",
          "--enable-sandbox",
          "--enable-seccomp",
          "-c",
          "-e",
          "4",
          "-r",
          "3",
          String(target.pid),
          "tap0",
        ];
        const p = spawn(bin, args, { stdio: ["ignore", "ignore", "ignore", r, er] });
        closeSync(er);
        // blocking read of one byte: the bench does nothing else meanwhile
        const got = readSync(r, Buffer.alloc(1));
        const t = ms(t0);
        // CPU time (user + system) until ready: the wall time is mostly waiting for a
        // core on a loaded machine; this is what the process itself spent
        cpu[name].push(cpuMs(p.pid));
        closeSync(ew);
        closeSync(r);
        await new Promise((res) => (p.exitCode !== null ? res() : p.once("exit", res)));
        target.kill("SIGKILL");
        if (got === 1) times[name].push(t);
      }
    }
    results.ready = times;
    results.readyCpu = cpu;
  }

  if (only.includes("help")) {
    const contenders = { usernet: wrapper, slirp4netns: "/usr/bin/slirp4netns" };
    const times = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
    for (let i = 0; i < rounds; i++)
      for (const [name, bin] of Object.entries(contenders)) {
        const t0 = process.hrtime.bigint();
        spawnSync(bin, ["--help"], { stdio: "ignore" });
        times[name].push(ms(t0));
      }
    results.help = times;
  }

  if (only.includes("podman")) {
    const rootfs = join(tmp, "rootfs");
    mkdirSync(join(rootfs, "bin"), { recursive: true });
    copyFileSync("/bin/busybox", join(rootfs, "bin/busybox"));
    symlinkSync("busybox", join(rootfs, "bin/true"));
    spawnSync("tar", ["-C", rootfs, "-cf", join(tmp, "rootfs.tar"), "."]);
    const conf = (name, cmd) =>
      writeFileSync(
        join(tmp, `${name}.conf`),
        [
          "[containers]",
          'dns_servers = ["10.0.2.3"]',
          'cgroups = "disabled"',
          'default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]',
          "[engine]",
          'cgroup_manager = "cgroupfs"',
          'events_logger = "none"',
          `network_cmd_path = "${cmd}"`,
          'network_cmd_options = ["enable_ipv6=false"]',
          "[network]",
          `network_config_dir = "${tmp}/networks"`,
          "",
        ].join("\n"),
      );
    conf("usernet", wrapper);
    conf("slirp4netns", "/usr/bin/slirp4netns");
    writeFileSync(
      join(tmp, "storage.conf"),
      `[storage]\ndriver = "vfs"\ngraphroot = "${tmp}/storage"\nrunroot = "${tmp}/runroot"\n`,
    );
    writeFileSync(join(tmp, "registries.conf"), "");
    const podman = (conf, args) =>
      spawnSync(
        "podman",
        [
          "--root",
          `${tmp}/storage`,
          "--runroot",
          `${tmp}/runroot`,
          "--tmpdir",
          `${tmp}/t`,
          "--storage-driver",
          "vfs",
          ...args,
        ],
        {
          encoding: "utf8",
          timeout: 120_000,
          env: {
            ...process.env,
            CONTAINERS_CONF: join(tmp, `${conf}.conf`),
            CONTAINERS_STORAGE_CONF: join(tmp, "storage.conf"),
            CONTAINERS_REGISTRIES_CONF: join(tmp, "registries.conf"),
          },
        },
      );
    const imp = podman("slirp4netns", ["import", join(tmp, "rootfs.tar"), "localhost/unbench"]);
    if (imp.status !== 0) throw new Error(`podman import failed: ${imp.stderr}`);
    const contenders = {
      none: ["slirp4netns", "none"],
      slirp4netns: ["slirp4netns", "slirp4netns"],
      usernet: ["usernet", "slirp4netns"],
    };
    const times = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
    // one warm-up round, not counted
    for (let i = 0; i <= rounds; i++)
      for (const [name, [c, network]] of Object.entries(contenders)) {
        const t0 = process.hrtime.bigint();
        const r = podman(c, ["run", "--rm", "--network", network, "localhost/unbench", "true"]);
        const t = ms(t0);
        if (r.status !== 0) throw new Error(`podman run (${name}) failed: ${r.stderr}`);
        if (i > 0) times[name].push(t);
      }
    results.podman = times;
  }

  const rows = [];
  // pairs where B took no measurable time (slirp4netns's CPU is under the 10 ms tick) give no ratio
  const ratio = (a, b) => {
    const r = a.map((x, i) => x / b[i]).filter((x) => Number.isFinite(x));
    return r.length ? `${median(r).toFixed(2)}x` : "n/a (B under the clock's resolution)";
  };
  for (const [what, times] of Object.entries({
    ready: results.ready,
    "ready cpu": results.readyCpu ?? {},
    help: results.help,
    podman: results.podman,
  })) {
    for (const [name, t] of Object.entries(times))
      if (t.length)
        rows.push(
          `${what.padEnd(9)} ${name.padEnd(13)} median ${median(t).toFixed(0).padStart(5)} ms  (min ${Math.min(...t).toFixed(0)}, max ${Math.max(...t).toFixed(0)}, n=${t.length})`,
        );
    if (times.usernet?.length && times.slirp4netns?.length)
      rows.push(
        `${what.padEnd(9)} usernet / slirp4netns, paired: ${ratio(times.usernet, times.slirp4netns)}`,
      );
  }
  const p = results.podman;
  if (p.none?.length && p.usernet?.length) {
    const over = (k) => p[k].map((x, i) => x - p.none[i]);
    const ou = over("usernet");
    const os = over("slirp4netns");
    rows.push(
      `podman    start overhead over --network none: usernet ${median(ou).toFixed(0)} ms, slirp4netns ${median(os).toFixed(0)} ms, ratio of medians ${median(os) > 0 ? `${(median(ou) / median(os)).toFixed(2)}x` : "n/a (slirp4netns's is within the noise)"}`,
    );
    results.overheadMs = { usernet: median(ou), slirp4netns: median(os) };
  }
  console.log(rows.join("\n"));
  if (out) writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
}
