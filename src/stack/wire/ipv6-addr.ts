/**
 * IPv6 addresses: a 16-byte Buffer (network order), with a string key for maps and the
 * RFC 5952 text form. IPv4 keeps its uint32 numbers (addr.ts): `IpAddress` is either,
 * told apart by `typeof a === "number"`, so the IPv4 paths stay number-only.
 *
 * Why a Buffer and not four uint32s or two bigints: the codecs read addresses out of
 * frames as views (no copy while a frame is handled), the encoders copy 16 bytes with
 * one `copy`, and a Map keyed by address uses `ipv6Key` (eight UTF-16 code units,
 * one flat 16-byte string, built by one String.fromCharCode), which hashes fast and
 * never equals an IPv4 key of the same table (those are shorter). An address that
 * outlives the frame it came from must be copied (`ipv6Copy`): a view would change
 * when the frame's memory is reused.
 *
 * Parsing accepts RFC 4291 text (hex groups, one "::", a trailing dotted quad) and
 * nothing else: no zone ("%eth0"), no brackets, no leading zeros past four digits.
 * Formatting is RFC 5952 §4: lower case, no leading zeros, the longest run of two or
 * more zero groups as "::" (the first of equal runs), and ::ffff:a.b.c.d for IPv4-mapped
 * addresses (§5). Prefix lengths are 0..128.
 */

import { ipv4ToString, parseIpv4 } from "./addr.js";

/** An IPv6 address: 16 bytes in network order. Treat as read-only; copy before keeping a view. */
export type Ipv6Address = Buffer;

/** An address of either family: an IPv4 uint32 or an IPv6 Buffer. */
export type IpAddress = number | Ipv6Address;

export const ipv6AddressLength = 16;

/** :: (the unspecified address). Shared: never write into it. */
export const IPV6_UNSPECIFIED: Ipv6Address = Buffer.alloc(16);
/** ::1 */
export const IPV6_LOOPBACK: Ipv6Address = ipv6Of([0, 0, 0, 0, 0, 0, 0, 1]);
/** ff02::1, all nodes on the link */
export const IPV6_ALL_NODES: Ipv6Address = ipv6Of([0xff02, 0, 0, 0, 0, 0, 0, 1]);
/** ff02::2, all routers on the link */
export const IPV6_ALL_ROUTERS: Ipv6Address = ipv6Of([0xff02, 0, 0, 0, 0, 0, 0, 2]);

/** An address from its eight 16-bit groups. */
export function ipv6Of(groups: readonly number[]): Ipv6Address {
  const a = Buffer.alloc(16);
  for (let i = 0; i < 8; i++) a.writeUInt16BE((groups[i] ?? 0) & 0xffff, i * 2);
  return a;
}

/** A copy of the 16 bytes at `at` of `b` (for an address that outlives its frame). */
export function ipv6Copy(b: Uint8Array, at = 0): Ipv6Address {
  const a = Buffer.allocUnsafe(16);
  a.set(b.subarray(at, at + 16));
  return a;
}

/** A Map key for the address at `at`: eight UTF-16 code units, one per group. */
export function ipv6Key(a: Uint8Array, at = 0): string {
  return String.fromCharCode(
    ((a[at] as number) << 8) | (a[at + 1] as number),
    ((a[at + 2] as number) << 8) | (a[at + 3] as number),
    ((a[at + 4] as number) << 8) | (a[at + 5] as number),
    ((a[at + 6] as number) << 8) | (a[at + 7] as number),
    ((a[at + 8] as number) << 8) | (a[at + 9] as number),
    ((a[at + 10] as number) << 8) | (a[at + 11] as number),
    ((a[at + 12] as number) << 8) | (a[at + 13] as number),
    ((a[at + 14] as number) << 8) | (a[at + 15] as number),
  );
}

/** The address a key from `ipv6Key` stands for. */
export function ipv6FromKey(k: string): Ipv6Address {
  const a = Buffer.allocUnsafe(16);
  for (let i = 0; i < 8; i++) a.writeUInt16BE(k.charCodeAt(i) & 0xffff, i * 2);
  return a;
}

/** Whether the 16 bytes at `aAt` of `a` equal those at `bAt` of `b`; four 32-bit compares. */
export function sameIpv6(a: Uint8Array, b: Uint8Array, aAt = 0, bAt = 0): boolean {
  for (let i = 0; i < 16; i++) if (a[aAt + i] !== b[bAt + i]) return false;
  return true;
}

/** True for :: */
export function isIpv6Unspecified(a: Uint8Array, at = 0): boolean {
  for (let i = 0; i < 16; i++) if (a[at + i] !== 0) return false;
  return true;
}

/** True for ff00::/8 */
export const isIpv6Multicast = (a: Uint8Array, at = 0): boolean => a[at] === 0xff;

/** True for fe80::/10 */
export const isIpv6LinkLocal = (a: Uint8Array, at = 0): boolean =>
  a[at] === 0xfe && ((a[at + 1] as number) & 0xc0) === 0x80;

/** True for ::1 */
export function isIpv6Loopback(a: Uint8Array, at = 0): boolean {
  for (let i = 0; i < 15; i++) if (a[at + i] !== 0) return false;
  return a[at + 15] === 1;
}

/** True for ::ffff:0:0/96 (an IPv4 address written as IPv6). */
export function isIpv4Mapped(a: Uint8Array, at = 0): boolean {
  for (let i = 0; i < 10; i++) if (a[at + i] !== 0) return false;
  return a[at + 10] === 0xff && a[at + 11] === 0xff;
}

/** ::ffff:a.b.c.d for an IPv4 uint32. */
export function ipv4Mapped(v4: number): Ipv6Address {
  const a = Buffer.alloc(16);
  a[10] = 0xff;
  a[11] = 0xff;
  a.writeUInt32BE(v4 >>> 0, 12);
  return a;
}

/** The solicited-node multicast address of `a` (ff02::1:ffXX:XXXX, RFC 4291 §2.7.1). */
export function solicitedNode(a: Uint8Array, at = 0): Ipv6Address {
  const m = ipv6Of([0xff02, 0, 0, 0, 0, 1, 0xff00, 0]);
  m[13] = a[at + 13] as number;
  m[14] = a[at + 14] as number;
  m[15] = a[at + 15] as number;
  return m;
}

/** The Ethernet multicast MAC of an IPv6 multicast address (33:33 + its last four bytes, RFC 2464 §7). */
export function ipv6MulticastMac(a: Uint8Array, at = 0): Buffer {
  const mac = Buffer.allocUnsafe(6);
  mac[0] = 0x33;
  mac[1] = 0x33;
  mac[2] = a[at + 12] as number;
  mac[3] = a[at + 13] as number;
  mac[4] = a[at + 14] as number;
  mac[5] = a[at + 15] as number;
  return mac;
}

/** fe80::/64 with the modified EUI-64 interface id of `mac` (RFC 4291 appendix A). */
export function linkLocalOfMac(mac: Uint8Array): Ipv6Address {
  const a = Buffer.alloc(16);
  a[0] = 0xfe;
  a[1] = 0x80;
  a[8] = (mac[0] as number) ^ 0x02;
  a[9] = mac[1] as number;
  a[10] = mac[2] as number;
  a[11] = 0xff;
  a[12] = 0xfe;
  a[13] = mac[3] as number;
  a[14] = mac[4] as number;
  a[15] = mac[5] as number;
  return a;
}

function checkPrefixLength(len: number): void {
  if (!Number.isInteger(len) || len < 0 || len > 128) {
    throw new RangeError(`IPv6 prefix length must be 0..128, got ${len}`);
  }
}

/** True when `a` lies in prefix/len. Throws RangeError for a length outside 0..128. */
export function ipv6InPrefix(a: Uint8Array, prefix: Uint8Array, len: number, at = 0): boolean {
  checkPrefixLength(len);
  const whole = len >>> 3;
  for (let i = 0; i < whole; i++) if (a[at + i] !== prefix[i]) return false;
  const bits = len & 7;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return (((a[at + whole] as number) ^ (prefix[whole] as number)) & mask) === 0;
}

/** `a` with the bits past `len` cleared (the network of a prefix). */
export function ipv6PrefixOf(a: Uint8Array, len: number): Ipv6Address {
  checkPrefixLength(len);
  const out = Buffer.alloc(16);
  const whole = len >>> 3;
  for (let i = 0; i < whole; i++) out[i] = a[i] as number;
  const bits = len & 7;
  if (bits !== 0) out[whole] = (a[whole] as number) & (0xff << (8 - bits));
  return out;
}

/** The prefix bits of `prefix`/`len` with the interface bits of `iid` (both 16 bytes). */
export function ipv6Join(prefix: Uint8Array, len: number, iid: Uint8Array): Ipv6Address {
  const out = ipv6PrefixOf(prefix, len);
  const whole = len >>> 3;
  const bits = len & 7;
  if (bits !== 0) out[whole] = (out[whole] as number) | ((iid[whole] as number) & (0xff >>> bits));
  for (let i = whole + (bits === 0 ? 0 : 1); i < 16; i++) out[i] = iid[i] as number;
  return out;
}

/** The address `n` past `prefix` in its last 32 bits, as QEMU's defaults (prefix::2, ::3) are made. */
export function ipv6WithSuffix(prefix: Uint8Array, n: number): Ipv6Address {
  const a = ipv6Copy(prefix);
  a.writeUInt32BE((a.readUInt32BE(12) | n) >>> 0, 12);
  return a;
}

const IPV6_HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
const IPV4_TAIL = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;

/** Groups of one side of "::" (empty text: none); undefined when a group is malformed. */
function parseGroups(s: string, allowV4Tail: boolean): number[] | undefined {
  if (s === "") return [];
  const parts = s.split(":");
  const groups: number[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] as string;
    if (allowV4Tail && i === parts.length - 1 && p.includes(".")) {
      const m = IPV4_TAIL.exec(p);
      if (!m) return undefined;
      const o = [1, 2, 3, 4].map((k) => Number(m[k]));
      if (o.some((x) => x > 255)) return undefined;
      groups.push(((o[0] as number) << 8) | (o[1] as number), ((o[2] as number) << 8) | (o[3] as number));
      continue;
    }
    if (!IPV6_HEX_GROUP.test(p)) return undefined;
    groups.push(Number.parseInt(p, 16));
  }
  return groups;
}

/** Parses RFC 4291 text ("fec0::2", "::ffff:10.0.2.15") into a new address; undefined if it is not one. */
export function parseIpv6(s: string): Ipv6Address | undefined {
  if (s.length < 2 || s.length > 45) return undefined;
  const gap = s.indexOf("::");
  let groups: number[];
  if (gap < 0) {
    const g = parseGroups(s, true);
    if (g === undefined || g.length !== 8) return undefined;
    groups = g;
  } else {
    if (s.indexOf("::", gap + 1) >= 0) return undefined;
    const head = parseGroups(s.slice(0, gap), false);
    const tail = parseGroups(s.slice(gap + 2), true);
    if (head === undefined || tail === undefined) return undefined;
    // "::" stands for at least one zero group
    if (head.length + tail.length > 7) return undefined;
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  return ipv6Of(groups);
}

/** RFC 5952 text of the address at `at` of `a`. */
export function ipv6ToString(a: Uint8Array, at = 0): string {
  if (isIpv4Mapped(a, at)) {
    return `::ffff:${a[at + 12]}.${a[at + 13]}.${a[at + 14]}.${a[at + 15]}`;
  }
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(((a[at + i * 2] as number) << 8) | (a[at + i * 2 + 1] as number));
  // the longest run of two or more zero groups, the first of equal ones
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (from: number, to: number) =>
    g
      .slice(from, to)
      .map((x) => x.toString(16))
      .join(":");
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

/** Parses "fec0::/64" (a length is required); the address is returned as written. */
export function parseIpv6Cidr(s: string): { address: Ipv6Address; prefix: number } | undefined {
  const slash = s.indexOf("/");
  if (slash < 0) return undefined;
  const address = parseIpv6(s.slice(0, slash));
  const rest = s.slice(slash + 1);
  if (address === undefined || !/^(0|[1-9]\d{0,2})$/.test(rest)) return undefined;
  const prefix = Number(rest);
  return prefix > 128 ? undefined : { address, prefix };
}

/** Text of an address of either family. */
export function ipToString(a: IpAddress): string {
  return typeof a === "number" ? ipv4ToString(a) : ipv6ToString(a);
}

/** Parses either family's text: a dotted quad gives a number, IPv6 text 16 bytes. */
export function parseIp(s: string): IpAddress | undefined {
  return s.includes(":") ? parseIpv6(s) : parseIpv4(s);
}

/** The family of an address: 4 for a number, 6 for 16 bytes. */
export const familyOf = (a: IpAddress): 4 | 6 => (typeof a === "number" ? 4 : 6);
