/**
 * `usernet slirp4netns`: slirp4netns 1.2's grammar, help and version text, the Config
 * it builds, the `ip` lines of --configure, and the run loop with a fake world.
 */
import { describe, expect, it } from "vitest";
import { type CliEnvironment, runCli } from "../../../src/cli/run.js";
import {
  configureCommands,
  configureSysctls6,
  namespacePaths,
  parseSlirp4netnsArgs,
  type Slirp4netnsOptions,
  slirp4netnsConfig,
  slirp4netnsHelpText,
} from "../../../src/cli/slirp4netns.js";
import {
  runSlirp4netns,
  type Slirp4netnsEnvironment,
  type StartOptions,
} from "../../../src/cli/slirp4netns-run.js";
import { UsageError } from "../../../src/cli/usage-error.js";
import type { Config, TapNetdevConfig, UserNetdevConfig } from "../../../src/config.js";
import { silentLogger } from "../../../src/log.js";
import type { NativeError } from "../../../src/native/binding.js";
import { dhcpConfigFromNetdev } from "../../../src/services/dhcp/dhcp-config.js";

const parse = (...argv: string[]) => parseSlirp4netnsArgs(argv, "9.9.9");
const run = (...argv: string[]): Slirp4netnsOptions => {
  const r = parse(...argv);
  if (r.action !== "run") throw new Error(`not a run: ${r.action}`);
  return r.options;
};
const usage = (...argv: string[]): string => {
  try {
    parse(...argv);
  } catch (e) {
    if (e instanceof UsageError) return e.message;
    throw e;
  }
  throw new Error("no UsageError");
};

describe("slirp4netns grammar", () => {
  it("has slirp4netns's defaults", () => {
    expect(run("1234")).toEqual({
      configure: false,
      mtu: 1500,
      net: "10.0.2.0",
      prefixLength: 24,
      hostLoopback: true,
      disableDns: false,
      netnsType: "pid",
      target: "1234",
      tapName: "tap0",
      sandbox: false,
      seccomp: false,
      bounds: {},
    });
  });

  it("reads short, long, joined and separate option values, in any order", () => {
    const o = run("-c", "-r3", "4321", "--mtu", "65520", "-e", "5", "--cidr=10.10.0.0/16", "tap9");
    expect(o).toMatchObject({
      configure: true,
      readyFd: 3,
      exitFd: 5,
      mtu: 65520,
      net: "10.10.0.0",
      prefixLength: 16,
      target: "4321",
      tapName: "tap9",
    });
    expect(run("-cr", "3", "1")).toMatchObject({ configure: true, readyFd: 3 });
    expect(run("--ready-fd=7", "--exit-fd", "8", "-m1400", "1")).toMatchObject({
      readyFd: 7,
      exitFd: 8,
      mtu: 1400,
    });
    expect(run("--", "1", "tap1")).toMatchObject({ target: "1", tapName: "tap1" });
  });

  it("takes the options rootlesskit and Podman pass", () => {
    // rootlesskit 1.1: --mtu N -r 3 [--disable-host-loopback] [--cidr] [--api-socket] [--enable-sandbox] [--enable-seccomp] PID tap0
    const o = run(
      "--mtu",
      "65520",
      "-r",
      "3",
      "--disable-host-loopback",
      "--enable-sandbox",
      "--enable-seccomp",
      "--api-socket",
      "/run/x/api.sock",
      "77",
      "tap0",
    );
    expect(o).toMatchObject({
      hostLoopback: false,
      sandbox: true,
      seccomp: true,
      apiSocket: "/run/x/api.sock",
    });
    expect(
      run("--netns-type=path", "--userns-path=/run/user/1000/userns", "/run/user/1000/netns/x", "tap0"),
    ).toMatchObject({
      netnsType: "path",
      target: "/run/user/1000/netns/x",
      userNsPath: "/run/user/1000/userns",
    });
    expect(run("-c", "--macaddress", "02:AA:00:00:00:01", "--outbound-addr=127.0.0.1", "1")).toMatchObject({
      macAddress: "02:aa:00:00:00:01",
      outboundAddr: "127.0.0.1",
    });
    expect(run("--outbound-addr=lo", "1").outboundAddr).toBe("127.0.0.1");
    expect(run("--target-type=netns", "1").target).toBe("1");
    // getopt_long accepts unambiguous prefixes
    expect(run("--config", "1").configure).toBe(true);
  });

  it("refuses what it does not do, naming the option", () => {
    expect(run("-6", "1").ipv6).toBe(true);
    expect(run("1").ipv6).toBeUndefined();
    expect(usage("--outbound-addr6=::1", "1")).toBe("--outbound-addr6=::1: not supported");
    expect(usage("--target-type=bess", "1")).toBe(
      "--target-type=bess: only netns is supported (bess is not)",
    );
    expect(usage("--mtu=65521", "1")).toBe("--mtu=65521: expected 68..65520 such as --mtu=65520");
    expect(usage("--mtu=x", "1")).toMatch(/^--mtu=x: /);
    expect(usage("--max-flows=0", "1")).toBe("--max-flows=0: expected 1..1048576 such as --max-flows=32768");
    expect(usage("--max-flows-per-guest", "x", "1")).toBe(
      "--max-flows-per-guest=x: expected 1..1048576 such as --max-flows-per-guest=32768",
    );
    expect(usage("--max-guests-per-port=0", "1")).toBe(
      "--max-guests-per-port=0: expected 1..65536 such as --max-guests-per-port=64",
    );
    expect(usage("--dns-max-queries=4", "--dns-max-queries-per-guest=5", "1")).toBe(
      "--dns-max-queries-per-guest=5: must be at most --dns-max-queries=4",
    );
    expect(usage("--max-flows=10", "--max-flows-per-guest=11", "1")).toBe(
      "--max-flows-per-guest=11: must be at most --max-flows=10",
    );
    expect(usage("--cidr=10.0.2.0/26", "1")).toMatch(/^--cidr=10.0.2.0\/26: expected ADDR\/PREFIX/);
    expect(usage("--cidr=10.0.2.0", "1")).toMatch(/^--cidr=10.0.2.0: /);
    expect(usage("--netns-type=file", "1")).toBe("--netns-type=file: expected pid or path");
    expect(usage("--macaddress=02:00:00:00:00:01", "1")).toBe(
      "--macaddress: only valid with -c (--configure)",
    );
    expect(usage("-c", "--macaddress=zz", "1")).toMatch(/^--macaddress=zz: expected a MAC address/);
    expect(usage("-r", "x", "1")).toMatch(/^--ready-fd=x: expected a file descriptor/);
    expect(usage("-x", "1")).toMatch(/^unknown option "-x"/);
    expect(usage("--bogus", "1")).toMatch(/^unknown option "--bogus"/);
    expect(usage("--disable", "1")).toMatch(/^ambiguous option "--disable"/);
    expect(usage("-r")).toMatch(/missing value/);
    expect(usage()).toMatch(/^expected PID\|PATH \[TAPNAME\], got 0 operands/);
    expect(usage("1", "tap0", "extra")).toMatch(/got 3 operands/);
    expect(usage("abc")).toMatch(/^PID abc: expected a process id/);
    expect(usage("1", "a/b")).toMatch(/^TAPNAME a\/b: /);
    expect(usage("1", "sixteen-bytes-xx")).toMatch(/^TAPNAME/);
    expect(usage("--outbound-addr=no-such-if0", "1")).toMatch(/^--outbound-addr=no-such-if0: /);
  });

  it("prints help that rootlesskit accepts and a slirp4netns-shaped version", () => {
    const help = parse("--help", "--bogus-but-help-wins-first");
    expect(help.action).toBe("help");
    const text = slirp4netnsHelpText("9.9.9");
    expect(parse("-h")).toEqual({ action: "help", text });
    // what rootlesskit's DetectFeatures looks for
    for (const flag of [
      "--netns-type",
      "--cidr",
      "--disable-host-loopback",
      "--api-socket",
      "--enable-sandbox",
      "--enable-seccomp",
      "--userns-path",
      "--ready-fd",
      "--exit-fd",
      "--mtu",
      "--configure",
      "--outbound-addr",
      "--disable-dns",
      "--macaddress",
    ])
      expect(text).toContain(flag);
    expect(text.startsWith("Usage: slirp4netns [OPTION]... PID|PATH [TAPNAME]\n")).toBe(true);
    expect(text).toMatch(/^--max-flows=N {12}TCP connections in all/m);
    expect(text).toMatch(/^--max-flows-per-guest=N {2}TCP connections per guest/m);
    expect(text).toContain("usernet 9.9.9");
    const v = parse("-v");
    expect(v.action === "version" && v.text.split("\n")[0]).toBe("slirp4netns version 1.2.0");
    expect(v.action === "version" && v.text).toContain("usernet: 9.9.9");
  });
});

describe("what slirp4netns options become", () => {
  it("a user netdev and a TAP in the target's namespaces", () => {
    const o = run("-c", "--mtu=65520", "--cidr=192.168.5.0/24", "--disable-host-loopback", "42", "tap3");
    const ns = namespacePaths(o);
    expect(ns).toEqual({ netns: "/proc/42/ns/net", userns: "/proc/42/ns/user" });
    const c = slirp4netnsConfig(o, ns);
    const user = c.netdevs[0] as UserNetdevConfig;
    expect(user).toMatchObject({
      type: "user",
      hub: 0,
      net: "192.168.5.0",
      prefixLength: 24,
      host: "192.168.5.2",
      dns: "192.168.5.3",
      dhcpStart: "192.168.5.15",
      smbServer: "192.168.5.4",
      hostLoopback: false,
      mtu: 65520,
    });
    expect(user.dnsForward).toBeUndefined();
    expect(user.maxFlows).toBeUndefined();
    const limited = run("--max-flows", "50000", "--max-flows-per-guest=40000", "42");
    expect(slirp4netnsConfig(limited, ns).netdevs[0]).toMatchObject({
      maxFlows: 50000,
      maxFlowsPerGuest: 40000,
    });
    const bounded = run(
      "--udp-max-sockets-per-guest=10",
      "--reasm-max-datagrams=32",
      "--reasm-max-datagrams-per-guest=4",
      "--max-guests-per-port=8",
      "--tftp-max-sessions",
      "5",
      "42",
    );
    expect(slirp4netnsConfig(bounded, ns).netdevs[0]).toMatchObject({
      udpMaxSocketsPerGuest: 10,
      reasmMaxDatagrams: 32,
      reasmMaxDatagramsPerGuest: 4,
      maxGuestsPerPort: 8,
      tftpMaxSessions: 5,
    });
    const noDns = slirp4netnsConfig(run("--disable-dns", "42"), ns).netdevs[0] as UserNetdevConfig;
    expect(noDns.dnsForward).toBe(false);
    expect(dhcpConfigFromNetdev(noDns).dns).toEqual([]);
    expect(c.netdevs[1] as TapNetdevConfig).toEqual({
      type: "tap",
      id: "tap0",
      hub: 0,
      ifname: "tap3",
      netns: "/proc/42/ns/net",
      userns: "/proc/42/ns/user",
    });
    expect(namespacePaths(run("--netns-type=path", "/run/netns/a"))).toEqual({
      netns: "/run/netns/a",
      userns: undefined,
    });
  });

  it("-6: slirp4netns's fd00::/64, gateway fd00::2, DNS fd00::3, and no DAD on the TAP", () => {
    const ns = { netns: "/proc/42/ns/net", userns: undefined };
    const six = slirp4netnsConfig(run("-6", "-c", "42", "tap5"), ns).netdevs[0] as UserNetdevConfig;
    expect(six.ipv6).toEqual({ prefix: "fd00::", prefixLength: 64, host: "fd00::2", dns: "fd00::3" });
    expect((slirp4netnsConfig(run("42"), ns).netdevs[0] as UserNetdevConfig).ipv6).toBeUndefined();
    expect(configureSysctls6(run("-6", "-c", "42", "tap5"))).toEqual([
      ["net/ipv6/conf/tap5/accept_dad", "0"],
    ]);
    expect(configureSysctls6(run("-c", "42"))).toEqual([]);
  });

  it("--configure: lo up, MAC, MTU, up, net+100/prefix, default route via net+2", () => {
    const o = run("-c", "--mtu=65520", "--macaddress=02:00:00:00:00:09", "--cidr=10.0.2.0/24", "1");
    expect(configureCommands(o)).toEqual([
      "link set dev lo up",
      "link set dev tap0 address 02:00:00:00:00:09",
      "link set dev tap0 mtu 65520",
      "link set dev tap0 up",
      "addr add 10.0.2.100/24 dev tap0",
      "route add default via 10.0.2.2 dev tap0",
    ]);
  });
});

interface World {
  env: Slirp4netnsEnvironment;
  out: string[];
  err: string[];
  started: Config[];
  configured: { ns: { netns: string; userns: string | undefined }; lines: string[] }[];
  ready: number[];
  confined: { seccomp: boolean; landlock: boolean; afterConfigure: number; beforeReady: boolean }[];
  closed: number;
  signal?: (s: string) => void;
  exitFd?: () => void;
  pidGone?: () => void;
  tapFailure?: StartOptions["onTapFailure"];
}

function world(
  argv: string[],
  opts: { failStart?: boolean; failConfigure?: boolean; failConfine?: boolean } = {},
): World {
  const w: World = {
    out: [],
    err: [],
    started: [],
    configured: [],
    ready: [],
    confined: [],
    closed: 0,
  } as unknown as World;
  w.env = {
    argv,
    version: "9.9.9",
    stdout: { write: (s: string) => w.out.push(s) },
    stderr: { write: (s: string) => w.err.push(s) },
    logger: () => silentLogger,
    async start(config, _log, options) {
      if (opts.failStart) throw new Error("cannot open TAP");
      w.started.push(config);
      w.tapFailure = options.onTapFailure;
      return {
        close: async () => {
          w.closed++;
        },
      };
    },
    onSignal(h) {
      w.signal = h;
      return () => {
        w.signal = undefined;
      };
    },
    async configure(ns, lines) {
      if (opts.failConfigure) throw new Error("--configure: nsenter failed");
      w.configured.push({ ns, lines });
    },
    isOwnUserNs: (p) => p === "/proc/1/ns/user",
    // never the real one: it would confine the test runner
    confine(_config, want) {
      if (opts.failConfine) throw new Error("sandbox: no_new_privs on, seccomp FAILED (EINVAL)");
      w.confined.push({ ...want, afterConfigure: w.configured.length, beforeReady: w.ready.length === 0 });
    },
    signalReady: (fd) => w.ready.push(fd),
    watchExitFd: (_fd, onExit) => {
      w.exitFd = onExit;
      return () => {
        w.exitFd = undefined;
      };
    },
    watchPid: (_pid, onGone) => {
      w.pidGone = onGone;
      return () => {
        w.pidGone = undefined;
      };
    },
  };
  return w;
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("runSlirp4netns", () => {
  it("-6 -c: turns DAD off before the ip lines bring the TAP up; a refusal only warns", async () => {
    for (const refuse of [false, true]) {
      const w = world(["-6", "-c", "-r", "3", "77", "tap0"]);
      const order: string[] = [];
      const configure = w.env.configure;
      w.env.configure = async (ns, lines) => {
        order.push("ip");
        await configure?.(ns, lines);
      };
      w.env.sysctls = async (ns, settings) => {
        order.push(`sysctl ${ns.netns} ${settings.map((x) => x.join("=")).join(",")}`);
        if (refuse) throw new Error("EACCES");
      };
      const done = runSlirp4netns(w.env);
      for (let i = 0; i < 10 && w.ready.length === 0; i++) await tick();
      expect(order).toEqual(["sysctl /proc/77/ns/net net/ipv6/conf/tap0/accept_dad=0", "ip"]);
      expect(w.ready).toEqual([3]);
      w.signal?.("SIGTERM");
      expect(await done).toBe(0);
    }
  });

  it("starts, configures, signals ready, and closes on SIGTERM with status 0", async () => {
    const w = world(["-c", "-r", "3", "--mtu", "65520", "77", "tap0"]);
    const done = runSlirp4netns(w.env);
    for (let i = 0; i < 10 && w.ready.length === 0; i++) await tick();
    expect(w.started).toHaveLength(1);
    expect(w.configured[0]?.ns).toEqual({ netns: "/proc/77/ns/net", userns: "/proc/77/ns/user" });
    expect(w.configured[0]?.lines).toContain("addr add 10.0.2.100/24 dev tap0");
    expect(w.ready).toEqual([3]);
    expect(w.closed).toBe(0);
    w.signal?.("SIGTERM");
    expect(await done).toBe(0);
    expect(w.closed).toBe(1);
    expect(w.signal).toBeUndefined();
    expect(w.pidGone).toBeUndefined();
  });

  it("does not join a user namespace that is already ours", async () => {
    const w = world(["-c", "1"]);
    const done = runSlirp4netns(w.env);
    for (let i = 0; i < 10 && w.configured.length === 0; i++) await tick();
    expect(w.configured[0]?.ns).toEqual({ netns: "/proc/1/ns/net", userns: undefined });
    expect((w.started[0]?.netdevs[1] as TapNetdevConfig | undefined)?.userns).toBeUndefined();
    expect(w.started[0]?.netdevs[1]?.type).toBe("tap");
    w.signal?.("SIGINT");
    expect(await done).toBe(0);
  });

  it("exits when the exit fd closes, the target process exits, or the TAP stops", async () => {
    for (const how of ["exit-fd", "pid", "tap"] as const) {
      const w = world(["-e", "4", "5"]);
      const done = runSlirp4netns(w.env);
      for (let i = 0; i < 10 && w.started.length === 0; i++) await tick();
      await tick();
      expect(w.configured).toEqual([]);
      if (how === "exit-fd") w.exitFd?.();
      if (how === "pid") w.pidGone?.();
      if (how === "tap")
        w.tapFailure?.("tap0", Object.assign(new Error("gone"), { code: "EBADFD" }) as NativeError);
      expect(await done).toBe(0);
      expect(w.closed).toBe(1);
      expect(w.exitFd).toBeUndefined();
    }
  });

  it("exits 1 when start-up or --configure fails (closing what started), 2 on a bad command line", async () => {
    const a = world(["1"], { failStart: true });
    expect(await runSlirp4netns(a.env)).toBe(1);
    const b = world(["-c", "-r", "3", "1"], { failConfigure: true });
    expect(await runSlirp4netns(b.env)).toBe(1);
    expect(b.closed).toBe(1);
    expect(b.ready).toEqual([]);
    const c = world(["--mtu=0", "1"]);
    expect(await runSlirp4netns(c.env)).toBe(2);
    expect(c.err.join("")).toBe("usernet slirp4netns: --mtu=0: expected 68..65520 such as --mtu=65520\n");
  });

  it("--enable-sandbox and --enable-seccomp confine after --configure, before the ready fd", async () => {
    const w = world(["-c", "-r", "3", "--enable-sandbox", "--enable-seccomp", "7"]);
    const done = runSlirp4netns(w.env);
    for (let i = 0; i < 10 && w.ready.length === 0; i++) await tick();
    expect(w.confined).toEqual([{ seccomp: true, landlock: true, afterConfigure: 1, beforeReady: true }]);
    expect(w.ready).toEqual([3]);
    w.signal?.("SIGTERM");
    expect(await done).toBe(0);
    const only = world(["--enable-seccomp", "7"]);
    const d2 = runSlirp4netns(only.env);
    for (let i = 0; i < 10 && only.confined.length === 0; i++) await tick();
    expect(only.confined).toMatchObject([{ seccomp: true, landlock: false }]);
    only.signal?.("SIGTERM");
    await d2;
    const none = world(["7"]);
    const d3 = runSlirp4netns(none.env);
    for (let i = 0; i < 10 && none.started.length === 0; i++) await tick();
    await tick();
    expect(none.confined).toEqual([]);
    none.signal?.("SIGTERM");
    await d3;
  });

  it("a sandbox that cannot be applied is a start-up failure: exit 1, no ready byte, closed", async () => {
    const w = world(["-r", "3", "--enable-seccomp", "7"], { failConfine: true });
    expect(await runSlirp4netns(w.env)).toBe(1);
    expect(w.ready).toEqual([]);
    expect(w.closed).toBe(1);
  });

  it("prints help and version on stdout with status 0", async () => {
    const w = world(["--help"]);
    expect(await runSlirp4netns(w.env)).toBe(0);
    expect(w.out.join("")).toBe(slirp4netnsHelpText("9.9.9"));
    expect(w.started).toEqual([]);
  });

  it("is what `usernet slirp4netns` runs", async () => {
    const out: string[] = [];
    const io: CliEnvironment = {
      argv: ["slirp4netns", "--version"],
      env: {},
      stdout: { write: (s: string) => out.push(s) },
      stderr: { write: () => {} },
      start: async () => ({ close: async () => {} }),
      onSignal: () => () => {},
    };
    expect(await runCli(io)).toBe(0);
    expect(out.join("")).toMatch(/^slirp4netns version 1\.2\.0\n/);
  });
});
