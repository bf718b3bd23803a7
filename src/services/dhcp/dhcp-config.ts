/**
 * What the DHCP server is told at construction, its defaults, and its checks.
 *
 * Theory of operation
 * - `DhcpServerConfig` holds numbers and strings only (addresses as uint32). Defaults
 *   follow libslirp: router and next-server are the server address, lease 86400 s.
 * - `resolveDhcpConfig` validates once and precomputes what every reply needs (the
 *   encoded option 119, the static lease table). A bad value throws an Error naming the
 *   setting: configuration is not guest input, and the CLI reports it before starting.
 * - `dhcpConfigFromNetdev` maps QEMU's `-netdev user` settings onto this shape.
 */
import type { UserNetdevConfig } from "../../config.js";
import {
  ipv4ToString,
  macToString,
  maskToPrefix,
  parseIpv4,
  parseMac,
  prefixToMask,
} from "../../stack/wire/addr.js";
import { DHCP_SNAME_LENGTH, encodeDomainSearch } from "./dhcp-codec.js";

export interface StaticLease {
  /** "52:54:00:12:34:56" */
  mac: string;
  ip: number;
  /** option 12 for this client, instead of the server-wide `hostname` */
  hostname?: string;
}

export interface DhcpServerConfig {
  /** our address: option 54 and the reply's source (the gateway, 10.0.2.2) */
  serverAddress: number;
  netmask: number;
  /** option 3; default `serverAddress` */
  router?: number;
  /** option 6, in order; empty omits the option */
  dns: number[];
  poolStart: number;
  poolSize: number;
  /** seconds; default 86400 (libslirp's fixed LEASE_TIME) */
  leaseTime?: number;
  /** option 15 */
  domainName?: string;
  /** option 12: the name the guest is told to take (QEMU's `hostname=`) */
  hostname?: string;
  /** option 119 (QEMU's `dnssearch=`) */
  dnsSearch?: string[];
  /** option 26, sent only when not 1500 */
  mtu?: number;
  /** option 66 and the `sname` field */
  tftpServerName?: string;
  /** the `file` field and option 67 */
  bootfile?: string;
  /** `siaddr`; default `serverAddress` (libslirp) */
  nextServer?: number;
  /** QEMU's `restrict=on`: libslirp then leaves out router and DNS */
  restricted?: boolean;
  staticLeases?: StaticLease[];
  /** seconds an offered address stays reserved for the client; default 60 */
  offerHoldTime?: number;
  /** seconds a DECLINEd address is not handed out; default 600 */
  declineHoldTime?: number;
  /**
   * "broadcast" (default, libslirp): every reply to 255.255.255.255.
   * "rfc2131": broadcast if the client set the broadcast flag, else unicast to ciaddr
   * when set, else unicast to yiaddr at chaddr (RFC 2131 4.1); NAK always broadcast.
   */
  replyMode?: "broadcast" | "rfc2131";
}

export interface ResolvedDhcpConfig {
  serverAddress: number;
  netmask: number;
  network: number;
  broadcast: number;
  router: number;
  dns: number[];
  poolStart: number;
  poolSize: number;
  leaseTime: number;
  domainName: string | undefined;
  hostname: string | undefined;
  /** option 119 value, precomputed */
  dnsSearch: Buffer | undefined;
  mtu: number;
  tftpServerName: string | undefined;
  bootfile: string | undefined;
  nextServer: number;
  restricted: boolean;
  /** canonical MAC → static lease */
  staticByMac: Map<string, { ip: number; hostname: string | undefined }>;
  /** addresses of static leases → canonical MAC */
  staticByIp: Map<number, string>;
  offerHoldMs: number;
  declineHoldMs: number;
  replyMode: "broadcast" | "rfc2131";
}

export const DEFAULT_LEASE_TIME = 86400;
export const DEFAULT_OFFER_HOLD_TIME = 60;
export const DEFAULT_DECLINE_HOLD_TIME = 600;

function bad(setting: string, detail: string): never {
  throw new Error(`dhcp: ${setting}: ${detail}`);
}

function checkText(setting: string, v: string | undefined, max = 255): string | undefined {
  if (v === undefined) return undefined;
  if (v.length === 0) bad(setting, "must not be empty");
  if (Buffer.byteLength(v, "latin1") > max || /[^\x20-\xff]/.test(v)) {
    bad(setting, `must be at most ${max} printable characters`);
  }
  return v;
}

function checkSeconds(setting: string, v: number | undefined, dflt: number): number {
  const s = v ?? dflt;
  if (!Number.isInteger(s) || s < 1 || s > 0xfffffffe)
    bad(setting, `must be 1..4294967294 seconds, got ${s}`);
  return s;
}

/** Validates `c` and fills defaults. Throws an Error naming the bad setting. */
export function resolveDhcpConfig(c: DhcpServerConfig): ResolvedDhcpConfig {
  const netmask = c.netmask >>> 0;
  const prefix = maskToPrefix(netmask);
  if (prefix === undefined || prefix > 30) bad("netmask", `not a usable netmask: ${ipv4ToString(netmask)}`);
  const mask = prefixToMask(prefix);
  const network = (c.serverAddress & mask) >>> 0;
  const broadcast = (network | ~mask) >>> 0;
  const inside = (a: number) => (a & mask) >>> 0 === network && a !== network && a !== broadcast;
  if (!inside(c.serverAddress >>> 0)) bad("server address", "must be a host address of its network");

  if (!Number.isInteger(c.poolSize) || c.poolSize < 1)
    bad("pool size", `must be at least 1, got ${c.poolSize}`);
  const poolStart = c.poolStart >>> 0;
  const poolEnd = poolStart + c.poolSize - 1;
  if (poolEnd > 0xffffffff || !inside(poolStart) || !inside(poolEnd)) {
    bad("pool", `${ipv4ToString(poolStart)} + ${c.poolSize} leaves ${ipv4ToString(network)}/${prefix}`);
  }

  const mtu = c.mtu ?? 1500;
  if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535) bad("mtu", `must be 576..65535, got ${mtu}`);

  let dnsSearch: Buffer | undefined;
  if (c.dnsSearch && c.dnsSearch.length > 0) {
    const r = encodeDomainSearch(c.dnsSearch);
    if (!r.ok) bad("dns search", `${c.dnsSearch.join(",")}: ${r.reason}`);
    dnsSearch = r.value;
  }

  const staticByMac = new Map<string, { ip: number; hostname: string | undefined }>();
  const staticByIp = new Map<number, string>();
  for (const s of c.staticLeases ?? []) {
    const mac = parseMac(s.mac);
    if (!mac) bad("static lease", `bad MAC address "${s.mac}"`);
    const key = macToString(mac);
    const ip = s.ip >>> 0;
    if (!inside(ip) || ip === c.serverAddress >>> 0) {
      bad("static lease", `${ipv4ToString(ip)} for ${key} is not a free host address of the network`);
    }
    if (staticByMac.has(key)) bad("static lease", `${key} listed twice`);
    if (staticByIp.has(ip)) bad("static lease", `${ipv4ToString(ip)} given to two clients`);
    staticByMac.set(key, { ip, hostname: checkText("static lease hostname", s.hostname) });
    staticByIp.set(ip, key);
  }

  return {
    serverAddress: c.serverAddress >>> 0,
    netmask: mask,
    network,
    broadcast,
    router: (c.router ?? c.serverAddress) >>> 0,
    dns: c.dns.map((a) => a >>> 0),
    poolStart,
    poolSize: c.poolSize,
    leaseTime: checkSeconds("lease time", c.leaseTime, DEFAULT_LEASE_TIME),
    domainName: checkText("domain name", c.domainName),
    hostname: checkText("hostname", c.hostname),
    dnsSearch,
    mtu,
    tftpServerName: checkText("tftp server name", c.tftpServerName),
    bootfile: checkText("bootfile", c.bootfile),
    nextServer: (c.nextServer ?? c.serverAddress) >>> 0,
    restricted: c.restricted ?? false,
    staticByMac,
    staticByIp,
    offerHoldMs: 1000 * checkSeconds("offer hold time", c.offerHoldTime, DEFAULT_OFFER_HOLD_TIME),
    declineHoldMs: 1000 * checkSeconds("decline hold time", c.declineHoldTime, DEFAULT_DECLINE_HOLD_TIME),
    replyMode: c.replyMode ?? "broadcast",
  };
}

/** The DHCP settings of one `-netdev user`, as libslirp derives them. */
export function dhcpConfigFromNetdev(n: UserNetdevConfig): DhcpServerConfig {
  const addr = (setting: string, s: string): number => {
    const a = parseIpv4(s);
    if (a === undefined) bad(setting, `not an IPv4 address: "${s}"`);
    return a;
  };
  const host = addr("host", n.host);
  const c: DhcpServerConfig = {
    serverAddress: host,
    netmask: prefixToMask(n.prefixLength),
    router: host,
    dns: n.dnsForward === false ? [] : [addr("dns", n.dns)],
    poolStart: addr("dhcpstart", n.dhcpStart),
    poolSize: n.dhcpCount,
    nextServer: host,
    restricted: n.restrict,
    mtu: n.mtu,
  };
  if (n.dnsSearch.length > 0) c.dnsSearch = [...n.dnsSearch];
  if (n.domainName !== undefined) c.domainName = n.domainName;
  if (n.hostname !== undefined) c.hostname = n.hostname;
  if (n.tftpServerName !== undefined) c.tftpServerName = n.tftpServerName;
  if (n.bootfile !== undefined) c.bootfile = n.bootfile;
  return c;
}

/** sname holds at most 63 characters and a NUL; longer names go in option 66 only. */
export const fitsSname = (name: string): boolean => Buffer.byteLength(name, "latin1") < DHCP_SNAME_LENGTH;
