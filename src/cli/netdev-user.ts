/**
 * `-netdev user`: one virtual network with QEMU's slirp defaults, checked as QEMU
 * checks it and a little more.
 *
 * Defaults follow net/slirp.c exactly: an address is the network ORed with a fixed
 * offset under the host part of the mask: host = net | (0.0.2.2 & ~mask), dns = .2.3,
 * dhcpstart = .2.15, smbserver and an empty guestfwd server = .2.4. In the usual /24
 * that is net+2, +3, +15, +4; in 10.0.0.0/8 it is still 10.0.2.2. `net=` without a
 * prefix takes QEMU's classful mask (10.x.x.x → /8, 172.16/12, 128-191 → /16,
 * 192.168 → /16, 198.18 → /15, 224+ → /24, otherwise /28), and host bits of `net=`
 * are masked off, both as QEMU does.
 *
 * Stricter than QEMU, because the alternative is a guest that silently misbehaves: a
 * non-contiguous netmask, a prefix outside 4..30, host/dns/smbserver/guestfwd servers
 * on the network or broadcast address or inside the DHCP pool, a pool running past the
 * end of the network, and hostfwd guest addresses outside the network are refused.
 *
 * IPv6 as QEMU: on by default with ipv6-net=fec0::/64 (or ipv6-prefix= and
 * ipv6-prefixlen=, QEMU's spelling; ipv6-net= without a length means /64), host
 * prefix::2, DNS prefix::3 (ipv6-host=, ipv6-dns=, which must lie in the prefix).
 * QEMU's quirk is kept: giving only ipv6=on turns IPv4 off, giving only ipv4=on turns
 * IPv6 off; both off is refused. Stricter than QEMU: host bits of the prefix are
 * cleared (QEMU announces them as given), a prefix length of 0 is refused (QEMU takes
 * it as 64), and ipv6-net= together with ipv6-prefix= is refused.
 *
 * Not in QEMU: `hostfwd-source=preserve|gateway` (default gateway, QEMU's way) says
 * whether forwarded connections reach the guest from the real client's address and
 * port; it applies to the netdev's hostfwd= rules, -redir rules landing on it, and
 * runtime forwards that do not say otherwise.
 */
import type { GuestForward, InetAddress, UserNetdevConfig, UserNetdevIpv6 } from "../config.js";
import { placeProblem as addressPlaceProblem, guestAddressProblem } from "../forward-rule.js";
import { ipv4ToString, maskToPrefix, parseIpv4, prefixToMask } from "../stack/wire/addr.js";
import {
  type Ipv6Address,
  ipv6InPrefix,
  ipv6PrefixOf,
  ipv6ToString,
  ipv6WithSuffix,
  isIpv6Multicast,
  isIpv6Unspecified,
  parseIpv6,
  parseIpv6Cidr,
} from "../stack/wire/ipv6-addr.js";
import { guestfwdForm, hostfwdForm, parseGuestForward, parseHostForward } from "./forwards.js";
import { isDomainName, parseDecimal, parseHostPort } from "./inet.js";
import type { OptionSet, OptionSpec } from "./qemu-opts.js";
import { UsageError } from "./usage-error.js";

const ipForm = (key: string, example: string): OptionSpec => ({
  kind: "value",
  form: `an IPv4 address such as ${key}=${example}`,
});
const boolForm = (key: string, example: "on" | "off"): OptionSpec => ({
  kind: "bool",
  form: `on or off such as ${key}=${example}`,
});

/** the highest max-flows= and max-flows-per-guest= accepted */
export const maxFlowsCeiling = 1_048_576;

type BoundField =
  | "maxFlows"
  | "udpMaxSockets"
  | "icmpMaxIds"
  | "dnsMaxQueries"
  | "tftpMaxSessions"
  | "reasmMaxDatagrams"
  | "bufferMaxBytes";

/**
 * The bounds given as a pair of options: NAME=N in all, NAME-per-guest=N for one guest
 * (see the README's Bounds list). `total` and `perGuest` are the defaults the
 * services apply when the option is absent; they are also the usage examples.
 */
export const boundOptions: readonly {
  option: string;
  field: BoundField;
  ceiling: number;
  total: number;
  perGuest: number;
}[] = [
  { option: "max-flows", field: "maxFlows", ceiling: maxFlowsCeiling, total: 65536, perGuest: 32768 },
  { option: "udp-max-sockets", field: "udpMaxSockets", ceiling: 65536, total: 4096, perGuest: 1024 },
  { option: "icmp-max-ids", field: "icmpMaxIds", ceiling: 65536, total: 1024, perGuest: 64 },
  { option: "dns-max-queries", field: "dnsMaxQueries", ceiling: 65536, total: 256, perGuest: 64 },
  { option: "tftp-max-sessions", field: "tftpMaxSessions", ceiling: 16384, total: 64, perGuest: 8 },
  { option: "reasm-max-datagrams", field: "reasmMaxDatagrams", ceiling: 4096, total: 64, perGuest: 16 },
  {
    option: "buffer-max-bytes",
    field: "bufferMaxBytes",
    ceiling: 2 ** 40,
    total: 512 * 1024 * 1024,
    perGuest: 128 * 1024 * 1024,
  },
];

/** max-guests-per-port=N: guest identities (MACs) one hub port may carry (stack/guest-bounds.ts) */
export const guestsPerPortOption = { option: "max-guests-per-port", ceiling: 65536, default: 64 } as const;

const boundSpecs: Record<string, OptionSpec> = Object.fromEntries(
  boundOptions.flatMap((b) => [
    [b.option, { kind: "value", form: `1..${b.ceiling} such as ${b.option}=${b.total}` }],
    [
      `${b.option}-per-guest`,
      { kind: "value", form: `1..${b.ceiling} such as ${b.option}-per-guest=${b.perGuest}` },
    ],
  ]),
);

export const userSpec: Readonly<Record<string, OptionSpec>> = {
  net: { kind: "value", form: "ADDR[/PREFIX] such as net=10.0.2.0/24" },
  host: ipForm("host", "10.0.2.2"),
  dhcpstart: ipForm("dhcpstart", "10.0.2.15"),
  dhcpcount: { kind: "value", form: "a pool size such as dhcpcount=16" },
  dns: ipForm("dns", "10.0.2.3"),
  dnssearch: { kind: "list", form: "a domain name such as dnssearch=example.com" },
  domainname: { kind: "value", form: "a domain name such as domainname=example.com" },
  hostname: { kind: "value", form: "1 to 255 printable characters such as hostname=guest" },
  restrict: boolForm("restrict", "on"),
  tftp: { kind: "value", form: "a directory such as tftp=/srv/tftp" },
  "tftp-server-name": {
    kind: "value",
    form: "1 to 255 printable characters such as tftp-server-name=10.0.2.2",
  },
  bootfile: { kind: "value", form: "a file name of at most 127 bytes such as bootfile=pxelinux.0" },
  smb: { kind: "value", form: "a directory such as smb=/srv/share" },
  smbserver: ipForm("smbserver", "10.0.2.4"),
  hostfwd: { kind: "list", form: hostfwdForm },
  "hostfwd-source": { kind: "value", form: "preserve or gateway such as hostfwd-source=preserve" },
  guestfwd: { kind: "list", form: guestfwdForm },
  ipv4: boolForm("ipv4", "on"),
  ipv6: boolForm("ipv6", "on"),
  "ipv6-net": { kind: "value", form: "PREFIX[/LEN] such as ipv6-net=fec0::/64" },
  "ipv6-prefix": { kind: "value", form: "an IPv6 prefix such as ipv6-prefix=fec0::" },
  "ipv6-prefixlen": { kind: "value", form: "1..126 such as ipv6-prefixlen=64" },
  "ipv6-host": { kind: "value", form: "an IPv6 address in the prefix such as ipv6-host=fec0::2" },
  "ipv6-dns": { kind: "value", form: "an IPv6 address in the prefix such as ipv6-dns=fec0::3" },
  "dns-upstream": { kind: "list", form: "IP[:PORT] such as dns-upstream=127.0.0.1:5353" },
  nat64: boolForm("nat64", "on"),
  "nat64-prefix": { kind: "value", form: "an IPv6 /96 prefix such as nat64-prefix=64:ff9b::/96" },
  dhcpv6: { kind: "value", form: "stateful, stateless or off such as dhcpv6=stateless" },
  "host-loopback": boolForm("host-loopback", "off"),
  "outbound-addr": ipForm("outbound-addr", "192.0.2.10"),
  mtu: { kind: "value", form: "68..65520 such as mtu=65520" },
  ...boundSpecs,
  [guestsPerPortOption.option]: {
    kind: "value",
    form: `1..${guestsPerPortOption.ceiling} such as ${guestsPerPortOption.option}=${guestsPerPortOption.default}`,
  },
};

export const userRefused: Readonly<Record<string, string>> = {};

/**
 * Which families are on, with QEMU's quirk (net/slirp.c): only ipv6=on given turns IPv4
 * off, only ipv4=on given turns IPv6 off.
 */
function families(opts: OptionSet): { ipv4: boolean; ipv6: boolean } {
  const has4 = opts.has("ipv4");
  const has6 = opts.has("ipv6");
  const v4 = opts.bool("ipv4", true);
  const v6 = opts.bool("ipv6", true);
  const ipv4 = !((has6 && v6 && !has4) || (has4 && !v4));
  const ipv6 = !((has4 && v4 && !has6) || (has6 && !v6));
  if (!ipv4 && !ipv6) {
    throw new UsageError(`${opts.where}: ipv4=off and ipv6=off: at least one of IPv4 and IPv6 must be on`);
  }
  return { ipv4, ipv6 };
}

/** The IPv6 side from ipv6-net= / ipv6-prefix= / ipv6-prefixlen= / ipv6-host= / ipv6-dns=. */
function parseIpv6Side(opts: OptionSet): UserNetdevIpv6 {
  const where = opts.where;
  const net = opts.get("ipv6-net");
  let prefixText = opts.get("ipv6-prefix") ?? "fec0::";
  let lengthText = opts.get("ipv6-prefixlen") ?? "64";
  let lengthKey = "ipv6-prefixlen";
  let prefixKey = "ipv6-prefix";
  if (net !== undefined) {
    if (opts.has("ipv6-prefix") || opts.has("ipv6-prefixlen")) {
      throw new UsageError(
        `${where}: ipv6-net=${net}: give ipv6-net= or ipv6-prefix=/ipv6-prefixlen=, not both`,
      );
    }
    const slash = net.indexOf("/");
    prefixText = slash < 0 ? net : net.slice(0, slash);
    lengthText = slash < 0 ? "64" : net.slice(slash + 1);
    lengthKey = "ipv6-net";
    prefixKey = "ipv6-net";
  }
  const address = parseIpv6(prefixText);
  if (address === undefined) return opts.fail(prefixKey, opts.get(prefixKey) ?? prefixText);
  const length = parseDecimal(lengthText, 1, 126);
  if (length === undefined) {
    return opts.fail(lengthKey, opts.get(lengthKey) ?? lengthText, "prefix length must be 1..126");
  }
  const prefix = ipv6PrefixOf(address, length);
  if (isIpv6Multicast(prefix) || isIpv6Unspecified(prefix)) {
    return opts.fail(prefixKey, opts.get(prefixKey) ?? prefixText, "not a unicast prefix");
  }
  const label = `${ipv6ToString(prefix)}/${length}`;
  const place = (key: string, suffix: number): Ipv6Address => {
    const given = opts.get(key);
    const a = given === undefined ? ipv6WithSuffix(prefix, suffix) : parseIpv6(given);
    if (a === undefined) return opts.fail(key, given ?? "");
    if (!ipv6InPrefix(a, prefix, length)) return opts.fail(key, given ?? "", `must lie in ${label}`);
    if (a.equals(prefix)) return opts.fail(key, given ?? "", `must not be the prefix itself (${label})`);
    return a;
  };
  const host = place("ipv6-host", 2);
  const dns = place("ipv6-dns", 3);
  if (host.equals(dns)) {
    throw new UsageError(
      `${where}: ipv6-dns=${ipv6ToString(dns)}: must differ from ipv6-host=${ipv6ToString(host)}`,
    );
  }
  return {
    prefix: ipv6ToString(prefix),
    prefixLength: length,
    host: ipv6ToString(host),
    dns: ipv6ToString(dns),
  };
}

/** a network as numbers, for placing addresses in it */
interface Network {
  net: number;
  prefix: number;
  mask: number;
  broadcast: number;
}

function network(net: number, prefix: number): Network {
  const mask = prefixToMask(prefix);
  return { net, prefix, mask, broadcast: (net | ~mask) >>> 0 };
}

const cidr = (n: Network) => `${ipv4ToString(n.net)}/${n.prefix}`;

/** QEMU's default for an address: the network ORed with an offset under the mask */
const qemuDefault = (n: Network, offset: number) => (n.net | (offset & ~n.mask)) >>> 0;

/** why `a` cannot be a host on `n`, or undefined when it can */
const placeProblem = (n: Network, a: number) => addressPlaceProblem(n.net, n.prefix, a);

/** QEMU's classful guess when net= has no prefix (net/slirp.c) */
function classfulPrefix(a: number): number {
  if ((a & 0x80000000) === 0) return 8;
  if ((a & 0xfff00000) >>> 0 === 0xac100000) return 12;
  if ((a & 0xc0000000) >>> 0 === 0x80000000) return 16;
  if ((a & 0xffff0000) >>> 0 === 0xc0a80000) return 16;
  if ((a & 0xffff0000) >>> 0 === 0xc6120000) return 15;
  if ((a & 0xe0000000) >>> 0 === 0xe0000000) return 24;
  return 28;
}

function parseNet(opts: OptionSet): Network {
  const v = opts.get("net");
  if (v === undefined) return network(0x0a000200, 24);
  const slash = v.indexOf("/");
  const addr = parseIpv4(slash < 0 ? v : v.slice(0, slash));
  if (addr === undefined) return opts.fail("net", v);
  let prefix: number | undefined;
  if (slash < 0) {
    prefix = classfulPrefix(addr);
  } else {
    const rest = v.slice(slash + 1);
    const mask = parseIpv4(rest);
    if (mask !== undefined) {
      prefix = maskToPrefix(mask);
      if (prefix === undefined)
        return opts.fail("net", v, "netmask must be contiguous, such as 255.255.255.0");
    } else {
      prefix = parseDecimal(rest, 0, 32);
      if (prefix === undefined) return opts.fail("net", v);
    }
  }
  if (prefix < 4 || prefix > 30) {
    return opts.fail("net", v, "prefix must be 4..30 (room for gateway, DNS and guests)");
  }
  return network((addr & prefixToMask(prefix)) >>> 0, prefix);
}

const printable = (s: string, max: number) =>
  s.length > 0 && Buffer.byteLength(s) <= max && /^[\x21-\x7e]+$/.test(s);

export function buildUserNetdev(opts: OptionSet, id: string, hub: number): UserNetdevConfig {
  const where = opts.where;
  const family = families(opts);
  const ipv6Side = family.ipv6 ? parseIpv6Side(opts) : undefined;

  const n = parseNet(opts);
  /** "key=ADDR", marked when the address is the default rather than written */
  const label = (key: string, a: number) => `${key}=${ipv4ToString(a)}${opts.has(key) ? "" : " (default)"}`;
  const place = (key: string, offset: number): number => {
    const given = opts.get(key);
    const a = given === undefined ? qemuDefault(n, offset) : parseIpv4(given);
    if (a === undefined) return opts.fail(key, given ?? "");
    const problem = placeProblem(n, a);
    if (problem) throw new UsageError(`${where}: ${label(key, a)}: ${problem}`);
    return a;
  };
  const host = place("host", 0x0202);
  const dns = place("dns", 0x0203);
  const dhcpStart = place("dhcpstart", 0x020f);
  const smbServer = place("smbserver", 0x0204);
  if (dns === host)
    throw new UsageError(`${where}: ${label("dns", dns)}: must differ from ${label("host", host)}`);
  for (const [other, a] of [
    ["host", host],
    ["dns", dns],
  ] as const) {
    if (smbServer === a) {
      throw new UsageError(`${where}: ${label("smbserver", smbServer)}: must differ from ${label(other, a)}`);
    }
  }

  const countText = opts.get("dhcpcount");
  const dhcpCount = countText === undefined ? 16 : parseDecimal(countText, 1, 65534);
  if (dhcpCount === undefined) return opts.fail("dhcpcount", countText ?? "");
  const poolEnd = dhcpStart + dhcpCount - 1;
  if (poolEnd >= n.broadcast) {
    throw new UsageError(
      `${where}: ${label("dhcpstart", dhcpStart)}: a pool of ${dhcpCount} runs past ` +
        `${ipv4ToString(n.broadcast - 1)}, the last address of ${cidr(n)}`,
    );
  }
  const pool = `${ipv4ToString(dhcpStart)}-${ipv4ToString(poolEnd)}`;
  const inPool = (a: number) => a >= dhcpStart && a <= poolEnd;
  const smb = opts.get("smb");
  const fixed: [string, number][] = [
    ["host", host],
    ["dns", dns],
  ];
  if (smb !== undefined) fixed.push(["smbserver", smbServer]);
  for (const [key, a] of fixed) {
    if (!inPool(a)) continue;
    // blame what the user wrote: the address if they gave it, else the pool they moved
    throw new UsageError(
      opts.has(key)
        ? `${where}: ${label(key, a)}: inside the DHCP pool ${pool}`
        : `${where}: ${label("dhcpstart", dhcpStart)}: the DHCP pool ${pool} holds ${label(key, a)}`,
    );
  }

  const dnsSearch = opts.list("dnssearch");
  for (const d of dnsSearch) if (!isDomainName(d)) opts.fail("dnssearch", d);
  const domainName = opts.get("domainname");
  if (domainName !== undefined && !isDomainName(domainName)) opts.fail("domainname", domainName);
  const hostname = opts.get("hostname");
  if (hostname !== undefined && !printable(hostname, 255)) opts.fail("hostname", hostname);
  const tftpServerName = opts.get("tftp-server-name");
  if (tftpServerName !== undefined && !printable(tftpServerName, 255)) {
    opts.fail("tftp-server-name", tftpServerName);
  }
  const bootfile = opts.get("bootfile");
  if (bootfile !== undefined && !(/^[\x20-\x7e]+$/.test(bootfile) && bootfile.length <= 127)) {
    opts.fail("bootfile", bootfile);
  }
  const tftp = opts.get("tftp");
  if (tftp !== undefined && !/^[^\0]+$/.test(tftp)) opts.fail("tftp", tftp);
  if (smb !== undefined && !/^[^\0]+$/.test(smb)) opts.fail("smb", smb);

  const mtuText = opts.get("mtu");
  const mtu = mtuText === undefined ? 1500 : parseDecimal(mtuText, 68, 65520);
  if (mtu === undefined) return opts.fail("mtu", mtuText ?? "");

  const outboundAddr = opts.get("outbound-addr");
  if (outboundAddr !== undefined && parseIpv4(outboundAddr) === undefined) {
    opts.fail("outbound-addr", outboundAddr);
  }
  const dnsUpstream: InetAddress[] = opts.list("dns-upstream").map((v) => parseDnsUpstream(opts, v));

  const limits = parseBounds(opts);

  const hostfwdSource = opts.get("hostfwd-source");
  if (hostfwdSource !== undefined && hostfwdSource !== "preserve" && hostfwdSource !== "gateway") {
    opts.fail("hostfwd-source", hostfwdSource);
  }

  const cfg: UserNetdevConfig = {
    type: "user",
    id,
    hub,
    net: ipv4ToString(n.net),
    prefixLength: n.prefix,
    host: ipv4ToString(host),
    dhcpStart: ipv4ToString(dhcpStart),
    dhcpCount,
    dns: ipv4ToString(dns),
    dnsSearch,
    restrict: opts.bool("restrict", false),
    smbServer: ipv4ToString(smbServer),
    hostfwd: [],
    guestfwd: [],
    dnsUpstream,
    hostLoopback: opts.bool("host-loopback", true),
    mtu,
  };
  if (!family.ipv4) cfg.ipv4 = false;
  if (ipv6Side !== undefined) cfg.ipv6 = ipv6Side;
  if (domainName !== undefined) cfg.domainName = domainName;
  if (hostname !== undefined) cfg.hostname = hostname;
  if (tftp !== undefined) cfg.tftp = tftp;
  if (tftpServerName !== undefined) cfg.tftpServerName = tftpServerName;
  if (bootfile !== undefined) cfg.bootfile = bootfile;
  if (smb !== undefined) cfg.smb = smb;
  if (outboundAddr !== undefined) cfg.outboundAddr = outboundAddr;
  if (hostfwdSource === "preserve") cfg.preserveSource = true;
  Object.assign(cfg, limits, parseIpv6Services(opts));

  for (const v of opts.list("hostfwd")) {
    const f = parseHostForward(v);
    if (!f.ok) return opts.fail("hostfwd", v, `${f.reason}; expected ${hostfwdForm}`);
    const problem = guestAddressProblem(cfg, f.value.guestAddr);
    if (problem) opts.fail("hostfwd", v, problem);
    cfg.hostfwd.push(f.value);
  }
  for (const v of opts.list("guestfwd")) {
    const f = parseGuestForward(v);
    if (!f.ok) return opts.fail("guestfwd", v, `${f.reason}; expected ${guestfwdForm}`);
    const g: GuestForward = { ...f.value, server: f.value.server || ipv4ToString(qemuDefault(n, 0x0204)) };
    const problem = guestfwdProblem(cfg, g, n, inPool);
    if (problem) opts.fail("guestfwd", v, problem);
    cfg.guestfwd.push(g);
  }
  return cfg;
}

/** dns-upstream=: IPv4[:PORT], IPv6 alone, or [IPv6]:PORT; port 53 when not given. */
function parseDnsUpstream(opts: OptionSet, v: string): InetAddress {
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(v);
  if (bracket) {
    const port = bracket[2] === undefined ? 53 : parseDecimal(bracket[2], 1, 65535);
    const host = bracket[1] as string;
    if (port === undefined || parseIpv6(host) === undefined) return opts.fail("dns-upstream", v);
    return { host: ipv6ToString(parseIpv6(host) as Buffer), port };
  }
  const six = parseIpv6(v);
  if (six !== undefined) return { host: ipv6ToString(six), port: 53 };
  const hp = v.includes(":") ? parseHostPort(v) : { host: v, port: 53 };
  if (!hp || parseIpv4(hp.host) === undefined) return opts.fail("dns-upstream", v);
  return hp;
}

/**
 * The IPv6 services' options: nat64=on|off with nat64-prefix= (a /96: the only length
 * whose embedding is the plain last 32 bits, RFC 6052 2.2), and dhcpv6=.
 */
function parseIpv6Services(opts: OptionSet): Partial<UserNetdevConfig> {
  const out: Partial<UserNetdevConfig> = {};
  const prefixText = opts.get("nat64-prefix");
  if (opts.bool("nat64", false)) {
    let prefix = parseIpv6("64:ff9b::") as Buffer;
    if (prefixText !== undefined) {
      const p = parseIpv6Cidr(prefixText.includes("/") ? prefixText : `${prefixText}/96`);
      if (p === undefined) return opts.fail("nat64-prefix", prefixText);
      if (p.prefix !== 96) return opts.fail("nat64-prefix", prefixText, "only /96 prefixes are supported");
      if (p.address.readUInt32BE(12) !== 0)
        return opts.fail("nat64-prefix", prefixText, "the last 32 bits must be zero");
      prefix = p.address;
    }
    out.nat64Prefix = ipv6ToString(prefix);
  } else if (prefixText !== undefined) {
    opts.fail("nat64-prefix", prefixText, "needs nat64=on");
  }
  const d = opts.get("dhcpv6");
  if (d !== undefined) {
    if (d !== "stateful" && d !== "stateless" && d !== "off") return opts.fail("dhcpv6", d);
    out.dhcpv6 = d;
  }
  return out;
}

/**
 * The bound pairs (boundOptions), such as max-flows= and max-flows-per-guest=: TCP
 * connections in the stack and per guest. Either of a pair may be given alone; the
 * per-guest bound may not exceed the total when both are.
 */
function parseBounds(opts: OptionSet): Partial<UserNetdevConfig> {
  const out: Partial<Record<`${BoundField}${"" | "PerGuest"}`, number>> = {};
  for (const b of boundOptions) {
    const total = opts.get(b.option);
    let n: number | undefined;
    if (total !== undefined) {
      n = parseDecimal(total, 1, b.ceiling);
      if (n === undefined) return opts.fail(b.option, total);
      out[b.field] = n;
    }
    const perOption = `${b.option}-per-guest`;
    const perGuest = opts.get(perOption);
    if (perGuest !== undefined) {
      const m = parseDecimal(perGuest, 1, b.ceiling);
      if (m === undefined) return opts.fail(perOption, perGuest);
      if (n !== undefined && m > n) return opts.fail(perOption, perGuest, `must be at most ${b.option}=${n}`);
      out[`${b.field}PerGuest`] = m;
    }
  }
  const g = opts.get(guestsPerPortOption.option);
  if (g === undefined) return out;
  const maxGuestsPerPort = parseDecimal(g, 1, guestsPerPortOption.ceiling);
  if (maxGuestsPerPort === undefined) return opts.fail(guestsPerPortOption.option, g);
  return { ...out, maxGuestsPerPort };
}

function guestfwdProblem(
  cfg: UserNetdevConfig,
  g: GuestForward,
  n: Network,
  inPool: (a: number) => boolean,
): string | undefined {
  const a = parseIpv4(g.server) ?? 0;
  const place = placeProblem(n, a);
  if (place) return `server ${g.server} ${place}`;
  if (g.server === cfg.host) return `server ${g.server} is the host address`;
  if (g.server === cfg.dns) return `server ${g.server} is the DNS address`;
  if (inPool(a)) return `server ${g.server} is inside the DHCP pool`;
  if (cfg.smb !== undefined && g.server === cfg.smbServer && g.port === 139) {
    return `${g.server}:139 is taken by smb=`;
  }
  if (cfg.guestfwd.some((o) => o.server === g.server && o.port === g.port)) {
    return `${g.server}:${g.port} is forwarded twice`;
  }
  return undefined;
}

/** QEMU's `-netdev user` with nothing but an id and a hub */
/** QEMU's IPv6 side of `-netdev user` when nothing about it is given. */
export function defaultUserIpv6(): UserNetdevIpv6 {
  return { prefix: "fec0::", prefixLength: 64, host: "fec0::2", dns: "fec0::3" };
}

/** The IPv4 side of `-netdev user` with QEMU's defaults; `-netdev user` adds `defaultUserIpv6()`. */
export function defaultUserNetdev(id: string, hub: number): UserNetdevConfig {
  return {
    type: "user",
    id,
    hub,
    net: "10.0.2.0",
    prefixLength: 24,
    host: "10.0.2.2",
    dhcpStart: "10.0.2.15",
    dhcpCount: 16,
    dns: "10.0.2.3",
    dnsSearch: [],
    restrict: false,
    smbServer: "10.0.2.4",
    hostfwd: [],
    guestfwd: [],
    dnsUpstream: [],
    hostLoopback: true,
    mtu: 1500,
  };
}
