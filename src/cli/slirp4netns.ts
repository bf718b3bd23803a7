/**
 * `usernet slirp4netns [OPTION]... PID|PATH [TAPNAME]`: a drop-in for slirp4netns 1.2,
 * so rootlesskit (`--net=slirp4netns --slirp4netns-binary=...`), Podman and scripts
 * written for slirp4netns get usernet's stack in an unprivileged network namespace.
 *
 * Theory of operation
 * - Arguments are read as slirp4netns reads them (getopt_long: `-r3`, `-r 3`,
 *   `--ready-fd=3`, `--ready-fd 3`, options and operands in any order, `--` ends
 *   options). --help and --version print text in slirp4netns's shape: rootlesskit runs
 *   `--help` and refuses a binary whose output lacks `--netns-type`, and turns features
 *   on by the option names it finds there, so every slirp4netns 1.2 option line is
 *   printed, plus lines saying this is usernet and what it does not do.
 * - The namespace: PID (default, --netns-type=pid) means /proc/PID/ns/net, and the
 *   user namespace /proc/PID/ns/user unless --userns-path says otherwise; PATH
 *   (--netns-type=path) is a netns file, with a user namespace only from
 *   --userns-path. A user namespace that is already ours is not joined (root on the
 *   host, or a namespace without its own user namespace).
 * - Start-up: one `-netdev user` built from --cidr (gateway net+2, DNS net+3, DHCP from
 *   net+15, the --configure address net+100), --mtu, --disable-host-loopback and
 *   --outbound-addr, on a hub with a TAP port created inside the namespace. With
 *   --configure, `nsenter` into the namespace runs `ip` to bring `lo` up and set the
 *   TAP's MAC (--macaddress), MTU, link up, address net+100/prefix and the default route via
 *   the gateway, as slirp4netns does. Then "1" is written to --ready-fd, which is
 *   closed.
 * - Exit: on SIGINT/SIGTERM, when --exit-fd becomes readable or is closed by its other
 *   end, when the target PID has exited (polled each second; the TAP holds a reference
 *   on the namespace, so the namespace itself cannot vanish under it), or when the TAP
 *   stops working: the network is closed and the process exits 0. A failure during start-up exits 1 with one line
 *   on stderr; a bad command line exits 2 (slirp4netns exits 1 for both).
 * - Not in slirp4netns: every bound of -netdev user as --NAME=N (and --NAME-per-guest=N
 *   for the pairs): --max-flows, --udp-max-sockets, --icmp-max-ids, --dns-max-queries,
 *   --tftp-max-sessions, --reasm-max-datagrams, --max-guests-per-port; the same
 *   meaning and defaults (netdev-user.ts boundOptions, README: Bounds); listed in
 *   --help after slirp4netns's own options.
 * - --disable-dns: no DNS at net+3 (queries there get ICMP port unreachable, TCP a RST)
 *   and DHCP offers no DNS server, so the namespace brings its own resolver.
 * - -6, --enable-ipv6: the network is dual-stack with slirp4netns's IPv6 addresses
 *   (fd00::/64, gateway fd00::2, DNS fd00::3; slirp4netns has no option to change
 *   them, nor has this). The namespace gets its address by SLAAC from the gateway's
 *   router advertisements, as with slirp4netns (whose --configure sets nothing for
 *   IPv6); --configure also turns duplicate address detection off on the TAP before
 *   bringing it up (the TAP's link has no other host), so the link-local and SLAAC
 *   addresses are usable at once instead of after a second or two of DAD each.
 * - Not supported, refused with a message: --outbound-addr6, --target-type=bess. --api-socket serves slirp4netns's JSON API (src/api/
 *   slirp4netns-api.ts) on the user netdev's forwards, guest_addr defaulting to net+100.
 *   --enable-sandbox and --enable-seccomp confine the process once the TAP is up,
 *   configured and the API socket listens, before --ready-fd is written
 *   (src/sandbox.ts): --enable-sandbox is no_new_privs and Landlock (files: the
 *   system and usernet itself read-only, nothing else; slirp4netns makes a mount
 *   namespace instead),
 *   --enable-seccomp no_new_privs and the seccomp deny-list. Not possible: exit 1.
 */
import { networkInterfaces } from "node:os";
import type { Config, NetdevConfig, TapNetdevConfig, UserNetdevConfig } from "../config.js";
import { ipv4ToString, parseIpv4, prefixToMask } from "../stack/wire/addr.js";
import { parseDecimal } from "./inet.js";
import { isInterfaceName } from "./netdev-tap.js";
import { boundOptions, defaultUserNetdev, guestsPerPortOption } from "./netdev-user.js";
import { UsageError } from "./usage-error.js";

export interface Slirp4netnsOptions {
  configure: boolean;
  mtu: number;
  /** network address and prefix (1..25, as slirp4netns allows) */
  net: string;
  prefixLength: number;
  hostLoopback: boolean;
  apiSocket?: string;
  netnsType: "pid" | "path";
  /** the PID or PATH operand */
  target: string;
  tapName: string;
  userNsPath?: string;
  readyFd?: number;
  exitFd?: number;
  outboundAddr?: string;
  macAddress?: string;
  /** --disable-dns: no DNS forwarder at net+3 */
  disableDns: boolean;
  /** usernet's bound options (--max-flows, --udp-max-sockets-per-guest, ...) as -netdev user fields */
  bounds: Partial<UserNetdevConfig>;
  /** -6, --enable-ipv6: slirp4netns's IPv6 side (fd00::/64); absent = IPv4 only */
  ipv6?: boolean;
  /** --enable-sandbox: no_new_privs and Landlock once started */
  sandbox: boolean;
  /** --enable-seccomp: no_new_privs and the seccomp filter once started */
  seccomp: boolean;
}

export type Slirp4netnsCommand =
  | { action: "run"; options: Slirp4netnsOptions }
  | { action: "help"; text: string }
  | { action: "version"; text: string };

/** slirp4netns 1.2's own option lines, in its order and spelling (tabs included). */
const optionLines = [
  "-c, --configure          bring up the interface",
  "-e, --exit-fd=FD         specify the FD for terminating slirp4netns",
  "-r, --ready-fd=FD        specify the FD to write to when the network is configured",
  "-m, --mtu=MTU            specify MTU (default=1500, max=65521)",
  "-6, --enable-ipv6        enable IPv6 (experimental)",
  "-a, --api-socket=PATH    specify API socket path",
  "--cidr=CIDR              specify network address CIDR (default=10.0.2.0/24)",
  "--disable-host-loopback  prohibit connecting to 127.0.0.1:* on the host namespace",
  "--netns-type=TYPE \t specify network namespace type ([path|pid], default=pid)",
  "--userns-path=PATH\t specify user namespace path",
  "--enable-sandbox         create a new mount namespace (and drop all caps except CAP_NET_BIND_SERVICE if running as the root)",
  "--enable-seccomp         enable seccomp to limit syscalls (experimental)",
  "--outbound-addr=IPv4     sets outbound ipv4 address to bound to (experimental)",
  "--outbound-addr6=IPv6    sets outbound ipv6 address to bound to (experimental)",
  "--disable-dns            disables 10.0.2.3 (or configured internal ip) to host dns redirect (experimental)",
  "--macaddress=MAC         specify the MAC address of the TAP (only valid with -c)",
  "--target-type=TYPE       specify the target type ([netns|bess], default=netns)",
  "-h, --help               show this help and exit",
  "-v, --version            show version and exit",
];

export function slirp4netnsHelpText(version: string): string {
  return [
    "Usage: slirp4netns [OPTION]... PID|PATH [TAPNAME]",
    "User-mode networking for unprivileged network namespaces.",
    "",
    ...optionLines,
    "",
    `This is usernet ${version} (\`usernet slirp4netns\`), a drop-in for slirp4netns 1.2 built on`,
    "usernet's own TypeScript stack, not libslirp. -6 gives fd00::/64 (gateway fd00::2, DNS",
    "fd00::3) with DHCPv6 too. Not supported: --outbound-addr6, --target-type=bess. --enable-sandbox confines files with Landlock (no mount namespace),",
    "--enable-seccomp denies ptrace, mount, bpf, modules, namespaces and more (EPERM).",
    "--mtu is at most 65520.",
    "",
    "usernet's own options:",
    "--max-flows=N            TCP connections in all, TIME_WAIT not counted (default=65536)",
    "--max-flows-per-guest=N  TCP connections per guest (hub port and MAC) (default=32768)",
    ...boundOptions
      .filter((b) => b.option !== "max-flows")
      .map((b) => `--${b.option}=N, --${b.option}-per-guest=N  (default=${b.total}, ${b.perGuest})`),
    `--${guestsPerPortOption.option}=N  guests (MACs) on the TAP (default=${guestsPerPortOption.default})`,
    "",
  ].join("\n");
}

export function slirp4netnsVersionText(version: string): string {
  return [
    "slirp4netns version 1.2.0",
    `usernet: ${version} (a drop-in for slirp4netns; no libslirp)`,
    "libslirp: none",
    "SLIRP_CONFIG_VERSION_MAX: 4",
    "",
  ].join("\n");
}

interface LongOpt {
  name: string;
  short?: string;
  arg: boolean;
}

const longOpts: LongOpt[] = [
  { name: "configure", short: "c", arg: false },
  { name: "exit-fd", short: "e", arg: true },
  { name: "ready-fd", short: "r", arg: true },
  { name: "mtu", short: "m", arg: true },
  { name: "enable-ipv6", short: "6", arg: false },
  { name: "api-socket", short: "a", arg: true },
  { name: "cidr", arg: true },
  { name: "disable-host-loopback", arg: false },
  { name: "netns-type", arg: true },
  { name: "userns-path", arg: true },
  { name: "enable-sandbox", arg: false },
  { name: "enable-seccomp", arg: false },
  { name: "outbound-addr", arg: true },
  { name: "outbound-addr6", arg: true },
  { name: "disable-dns", arg: false },
  { name: "macaddress", arg: true },
  { name: "target-type", arg: true },
  ...boundOptions.flatMap((b) => [
    { name: b.option, arg: true },
    { name: `${b.option}-per-guest`, arg: true },
  ]),
  { name: guestsPerPortOption.option, arg: true },
  { name: "help", short: "h", arg: false },
  { name: "version", short: "v", arg: false },
];

/** getopt_long's reading: returns options in order (name, value) and the operands */
function getopt(argv: readonly string[]): { opts: [string, string][]; operands: string[] } {
  const opts: [string, string][] = [];
  const operands: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "--") {
      operands.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = eq < 0 ? a.slice(2) : a.slice(2, eq);
      // getopt_long takes any unambiguous prefix; exact names win
      const exact = longOpts.find((o) => o.name === name);
      const prefixed = longOpts.filter((o) => o.name.startsWith(name));
      const o = exact ?? (prefixed.length === 1 ? prefixed[0] : undefined);
      if (!o || name === "") {
        const why = prefixed.length > 1 ? "ambiguous" : "unknown";
        throw new UsageError(`${why} option "${a}" (see usernet slirp4netns --help)`);
      }
      if (!o.arg) {
        if (eq >= 0) throw new UsageError(`--${o.name}: takes no value`);
        opts.push([o.name, ""]);
        // like getopt's caller, help and version act when met, before later mistakes
        if (o.name === "help" || o.name === "version") return { opts, operands };
        continue;
      }
      let v = eq < 0 ? undefined : a.slice(eq + 1);
      if (v === undefined) {
        if (i + 1 >= argv.length) throw new UsageError(`--${o.name}: missing value`);
        v = argv[++i] as string;
      }
      opts.push([o.name, v]);
      continue;
    }
    if (a.startsWith("-") && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const ch = a[j] as string;
        const o = longOpts.find((x) => x.short === ch);
        if (!o) throw new UsageError(`unknown option "-${ch}" (see usernet slirp4netns --help)`);
        if (!o.arg) {
          opts.push([o.name, ""]);
          if (o.name === "help" || o.name === "version") return { opts, operands };
          continue;
        }
        let v = a.slice(j + 1);
        if (v === "") {
          if (i + 1 >= argv.length) throw new UsageError(`-${ch} (--${o.name}): missing value`);
          v = argv[++i] as string;
        }
        opts.push([o.name, v]);
        break;
      }
      continue;
    }
    operands.push(a);
  }
  return { opts, operands };
}

function parseFd(name: string, v: string): number {
  const fd = parseDecimal(v, 0, 2147483647);
  if (fd === undefined) throw new UsageError(`--${name}=${v}: expected a file descriptor number such as 3`);
  return fd;
}

const macForm = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** argv after "slirp4netns" → what to do; throws UsageError */
export function parseSlirp4netnsArgs(argv: readonly string[], version: string): Slirp4netnsCommand {
  const { opts, operands } = getopt(argv);
  if (opts.some(([n]) => n === "help")) return { action: "help", text: slirp4netnsHelpText(version) };
  if (opts.some(([n]) => n === "version"))
    return { action: "version", text: slirp4netnsVersionText(version) };
  const o: Partial<Slirp4netnsOptions> & { cidr?: string } = {};
  let configure = false;
  let hostLoopback = true;
  let disableDns = false;
  let sandbox = false;
  let seccomp = false;
  let netnsType: "pid" | "path" = "pid";
  let mtu = 1500;
  let cidr = "10.0.2.0/24";
  const bounds: Partial<UserNetdevConfig> = {};
  for (const [name, v] of opts) {
    switch (name) {
      case "configure":
        configure = true;
        break;
      case "exit-fd":
        o.exitFd = parseFd(name, v);
        break;
      case "ready-fd":
        o.readyFd = parseFd(name, v);
        break;
      case "mtu": {
        const m = parseDecimal(v, 68, 65520);
        if (m === undefined) throw new UsageError(`--mtu=${v}: expected 68..65520 such as --mtu=65520`);
        mtu = m;
        break;
      }
      case "enable-ipv6":
        o.ipv6 = true;
        break;
      case "outbound-addr6":
        throw new UsageError(`--outbound-addr6=${v}: not supported`);
      case "disable-dns":
        disableDns = true;
        break;
      case "target-type":
        if (v !== "netns") throw new UsageError(`--target-type=${v}: only netns is supported (bess is not)`);
        break;
      case "api-socket":
        if (v === "" || v.includes("\0")) throw new UsageError(`--api-socket=${v}: expected a socket path`);
        o.apiSocket = v;
        break;
      case "cidr":
        cidr = v;
        break;
      case "disable-host-loopback":
        hostLoopback = false;
        break;
      case "netns-type":
        if (v !== "pid" && v !== "path") throw new UsageError(`--netns-type=${v}: expected pid or path`);
        netnsType = v;
        break;
      case "userns-path":
        if (v === "" || v.includes("\0")) throw new UsageError(`--userns-path=${v}: expected a path`);
        o.userNsPath = v;
        break;
      case "enable-sandbox":
        sandbox = true;
        break;
      case "enable-seccomp":
        seccomp = true;
        break;
      case "outbound-addr":
        o.outboundAddr = outboundAddress(v);
        break;
      case "macaddress":
        if (!macForm.test(v))
          throw new UsageError(`--macaddress=${v}: expected a MAC address such as 02:00:00:00:00:01`);
        o.macAddress = v.toLowerCase();
        break;
      default:
        parseBoundOption(bounds, name, v);
    }
  }
  for (const b of boundOptions) {
    const total = bounds[b.field];
    const per = bounds[`${b.field}PerGuest`];
    if (total !== undefined && per !== undefined && per > total)
      throw new UsageError(`--${b.option}-per-guest=${per}: must be at most --${b.option}=${total}`);
  }
  if (o.macAddress !== undefined && !configure)
    throw new UsageError("--macaddress: only valid with -c (--configure)");
  const { net, prefixLength } = parseCidr(cidr);
  if (operands.length < 1 || operands.length > 2) {
    throw new UsageError(
      `expected PID|PATH [TAPNAME], got ${operands.length} operand${operands.length === 1 ? "" : "s"} (see usernet slirp4netns --help)`,
    );
  }
  const target = operands[0] as string;
  if (netnsType === "pid" && parseDecimal(target, 1, 4194304) === undefined)
    throw new UsageError(`PID ${target}: expected a process id (or --netns-type=path with a path)`);
  if (netnsType === "path" && (target === "" || target.includes("\0")))
    throw new UsageError(`PATH ${target}: expected a network namespace path`);
  const tapName = operands[1] ?? "tap0";
  if (!isInterfaceName(tapName))
    throw new UsageError(`TAPNAME ${tapName}: expected an interface name of 1..15 bytes such as tap0`);
  return {
    action: "run",
    options: {
      ...o,
      configure,
      mtu,
      net,
      prefixLength,
      hostLoopback,
      disableDns,
      netnsType,
      target,
      tapName,
      sandbox,
      seccomp,
      bounds,
    },
  };
}

/** One of usernet's bound options (--max-flows=N, --udp-max-sockets-per-guest=N, ...) into `bounds`. */
function parseBoundOption(bounds: Partial<UserNetdevConfig>, name: string, v: string): void {
  if (name === guestsPerPortOption.option) {
    const n = parseDecimal(v, 1, guestsPerPortOption.ceiling);
    if (n === undefined)
      throw new UsageError(
        `--${name}=${v}: expected 1..${guestsPerPortOption.ceiling} such as --${name}=${guestsPerPortOption.default}`,
      );
    bounds.maxGuestsPerPort = n;
    return;
  }
  for (const b of boundOptions) {
    const per = name === `${b.option}-per-guest`;
    if (name !== b.option && !per) continue;
    const n = parseDecimal(v, 1, b.ceiling);
    if (n === undefined)
      throw new UsageError(`--${name}=${v}: expected 1..${b.ceiling} such as --${name}=${b.perGuest}`);
    const field: keyof UserNetdevConfig = per ? `${b.field}PerGuest` : b.field;
    bounds[field] = n;
    return;
  }
}

function parseCidr(s: string): { net: string; prefixLength: number } {
  const form = "--cidr: expected ADDR/PREFIX with a prefix of 1..25 such as --cidr=10.0.2.0/24";
  const slash = s.indexOf("/");
  if (slash < 0) throw new UsageError(`--cidr=${s}: ${form.slice(8)}`);
  const addr = parseIpv4(s.slice(0, slash));
  // slirp4netns allows 1..25: the --configure address is net+100
  const prefix = parseDecimal(s.slice(slash + 1), 1, 25);
  if (addr === undefined || prefix === undefined) throw new UsageError(`--cidr=${s}: ${form.slice(8)}`);
  return { net: ipv4ToString((addr & prefixToMask(prefix)) >>> 0), prefixLength: prefix };
}

/** slirp4netns takes an IPv4 address or an interface name (its first IPv4 address) */
function outboundAddress(v: string): string {
  if (parseIpv4(v) !== undefined) return v;
  if (/^[0-9.]+$/.test(v)) throw new UsageError(`--outbound-addr=${v}: expected an IPv4 address`);
  const found = networkInterfaces()[v]?.find((a) => a.family === "IPv4");
  if (!found)
    throw new UsageError(`--outbound-addr=${v}: not an IPv4 address nor an interface with an IPv4 address`);
  return found.address;
}

/** The addresses slirp4netns uses for a network (its --configure address is net+100). */
export function slirp4netnsAddresses(o: Pick<Slirp4netnsOptions, "net" | "prefixLength">) {
  const n = parseIpv4(o.net) as number;
  const at = (k: number) => ipv4ToString((n + k) >>> 0);
  return { gateway: at(2), dns: at(3), dhcpStart: at(15), guest: at(100) };
}

export const slirp4netnsNetdevIds = { user: "slirp0", tap: "tap0" } as const;

/** The namespace paths to open the TAP in. `ownUserNs` tells whether a path is our own user namespace. */
export function namespacePaths(o: Pick<Slirp4netnsOptions, "netnsType" | "target" | "userNsPath">): {
  netns: string;
  userns: string | undefined;
} {
  if (o.netnsType === "pid") {
    return { netns: `/proc/${o.target}/ns/net`, userns: o.userNsPath ?? `/proc/${o.target}/ns/user` };
  }
  return { netns: o.target, userns: o.userNsPath };
}

/** The usernet Config that does what slirp4netns would: one user netdev and one TAP on hub 0. */
export function slirp4netnsConfig(
  o: Slirp4netnsOptions,
  ns: { netns: string; userns: string | undefined },
  logLevel: Config["logLevel"] = "info",
): Config {
  const a = slirp4netnsAddresses(o);
  const user: UserNetdevConfig = {
    ...defaultUserNetdev(slirp4netnsNetdevIds.user, 0),
    net: o.net,
    prefixLength: o.prefixLength,
    host: a.gateway,
    dns: a.dns,
    dhcpStart: a.dhcpStart,
    smbServer: ipv4ToString(((parseIpv4(o.net) as number) + 4) >>> 0),
    hostLoopback: o.hostLoopback,
    mtu: o.mtu,
  };
  if (o.disableDns) user.dnsForward = false;
  if (o.ipv6) user.ipv6 = slirp4netnsIpv6();
  if (o.outboundAddr !== undefined) user.outboundAddr = o.outboundAddr;
  Object.assign(user, o.bounds);
  const tap: TapNetdevConfig = {
    type: "tap",
    id: slirp4netnsNetdevIds.tap,
    hub: 0,
    ifname: o.tapName,
    netns: ns.netns,
  };
  if (ns.userns !== undefined) tap.userns = ns.userns;
  const netdevs: NetdevConfig[] = [user, tap];
  return { netdevs, logLevel };
}

/** slirp4netns's fixed IPv6 network (slirp4netns.c: fd00::/64, host ::2, DNS ::3). */
export function slirp4netnsIpv6(): NonNullable<UserNetdevConfig["ipv6"]> {
  return { prefix: "fd00::", prefixLength: 64, host: "fd00::2", dns: "fd00::3" };
}

/**
 * The kernel settings --configure makes in the namespace before the TAP comes up,
 * as (path under /proc/sys, value): with -6, no DAD on the TAP (its link has no other
 * host; see the header). Empty without -6.
 */
export function configureSysctls6(o: Pick<Slirp4netnsOptions, "ipv6" | "tapName">): [string, string][] {
  return o.ipv6 ? [[`net/ipv6/conf/${o.tapName}/accept_dad`, "0"]] : [];
}

/**
 * `ip -batch` lines that --configure runs inside the namespace, in slirp4netns's order:
 * `lo` first (slirp4netns brings it up; without it 127.0.0.1 in a container is dead and
 * Podman's rootlessport, which dials the container on 127.0.0.1, cannot forward).
 */
export function configureCommands(o: Slirp4netnsOptions): string[] {
  const a = slirp4netnsAddresses(o);
  const lines: string[] = ["link set dev lo up"];
  if (o.macAddress !== undefined) lines.push(`link set dev ${o.tapName} address ${o.macAddress}`);
  lines.push(`link set dev ${o.tapName} mtu ${o.mtu}`);
  lines.push(`link set dev ${o.tapName} up`);
  lines.push(`addr add ${a.guest}/${o.prefixLength} dev ${o.tapName}`);
  lines.push(`route add default via ${a.gateway} dev ${o.tapName}`);
  return lines;
}
