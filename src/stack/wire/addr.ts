/**
 * Address helpers: IPv4 addresses as uint32 numbers (always `>>> 0`, so comparisons and
 * map keys work) and MAC addresses as 6-byte Buffers, with strict text forms.
 *
 * Parsers accept only the canonical forms ("10.0.2.15", "52:54:00:12:34:56" or with
 * dashes) and return undefined otherwise; no inet_aton shorthand ("10.2", octal "010"),
 * which only hides typos. Prefix helpers take a prefix length 0..32.
 */

/** 255.255.255.255, the limited broadcast address. */
export const IPV4_BROADCAST = 0xffffffff;
/** 0.0.0.0 */
export const IPV4_ANY = 0;

/** ff:ff:ff:ff:ff:ff. Shared: never write into it. */
export const BROADCAST_MAC: Buffer = Buffer.alloc(6, 0xff);

/** Dotted-quad text of a uint32 address. */
export function ipv4ToString(a: number): string {
  return `${a >>> 24}.${(a >>> 16) & 0xff}.${(a >>> 8) & 0xff}.${a & 0xff}`;
}

const IPV4_TEXT = /^(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})\.(0|[1-9]\d{0,2})$/;

/** Parses a dotted quad ("10.0.2.15") into a uint32; undefined if it is not one. */
export function parseIpv4(s: string): number | undefined {
  const m = IPV4_TEXT.exec(s);
  if (!m) return undefined;
  let a = 0;
  for (let i = 1; i <= 4; i++) {
    const octet = Number(m[i]);
    if (octet > 255) return undefined;
    a = a * 256 + octet;
  }
  return a;
}

const HEX = "0123456789abcdef";

/** "52:54:00:12:34:56" (lower case) for the six bytes of `mac` starting at `at`. */
export function macToString(mac: Uint8Array, at = 0): string {
  let s = "";
  for (let i = 0; i < 6; i++) {
    const x = mac[at + i] ?? 0;
    s += (i ? ":" : "") + HEX[x >>> 4] + HEX[x & 15];
  }
  return s;
}

const MAC_TEXT = /^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$/;

/** Parses "52:54:00:12:34:56" or "52-54-00-12-34-56" into a new 6-byte Buffer. */
export function parseMac(s: string): Buffer | undefined {
  if (!MAC_TEXT.test(s)) return undefined;
  const out = Buffer.allocUnsafe(6);
  for (let i = 0; i < 6; i++) out[i] = Number.parseInt(s.slice(i * 3, i * 3 + 2), 16);
  return out;
}

/** Whether two MACs are equal: six byte compares, cheaper per frame than Buffer.equals' native call. */
export function sameMac(a: Uint8Array, b: Uint8Array): boolean {
  return a[0] === b[0] && a[1] === b[1] && a[2] === b[2] && a[3] === b[3] && a[4] === b[4] && a[5] === b[5];
}

/** True for ff:ff:ff:ff:ff:ff. */
export function isBroadcastMac(mac: Uint8Array): boolean {
  return (
    mac[0] === 0xff &&
    mac[1] === 0xff &&
    mac[2] === 0xff &&
    mac[3] === 0xff &&
    mac[4] === 0xff &&
    mac[5] === 0xff
  );
}

/** True for group addresses (broadcast included): the I/G bit of the first byte. */
export function isMulticastMac(mac: Uint8Array): boolean {
  return ((mac[0] ?? 0) & 1) === 1;
}

/** The netmask of a prefix length: 24 → 0xffffff00. Throws RangeError outside 0..32. */
export function prefixToMask(prefix: number): number {
  if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) {
    throw new RangeError(`prefix length must be 0..32, got ${prefix}`);
  }
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** The prefix length of a contiguous netmask (0xffffff00 → 24); undefined if not contiguous. */
export function maskToPrefix(mask: number): number | undefined {
  const m = mask >>> 0;
  const inverted = ~m >>> 0;
  // contiguous ones followed by zeros: the inverted mask plus one is a power of two
  if ((inverted & (inverted + 1)) !== 0) return undefined;
  return Math.clz32(inverted);
}

/** True when `addr` lies in network/prefix. */
export function inSubnet(addr: number, network: number, prefix: number): boolean {
  return ((addr ^ network) & prefixToMask(prefix)) === 0;
}

/** The network address (host bits cleared). */
export function networkOf(addr: number, prefix: number): number {
  return (addr & prefixToMask(prefix)) >>> 0;
}

/** The directed broadcast address (host bits set). */
export function broadcastOf(addr: number, prefix: number): number {
  return (addr | ~prefixToMask(prefix)) >>> 0;
}

/** True for 224.0.0.0/4. */
export const isIpv4Multicast = (a: number): boolean => a >>> 28 === 0xe;
/** True for 127.0.0.0/8. */
export const isIpv4Loopback = (a: number): boolean => a >>> 24 === 127;

/**
 * Parses "10.0.2.0/24" or "10.0.2.0/255.255.255.0" (both forms QEMU's `net=` takes).
 * The address is returned as written; `networkOf` clears host bits if wanted.
 */
export function parseCidr(s: string): { address: number; prefix: number } | undefined {
  const slash = s.indexOf("/");
  if (slash < 0) return undefined;
  const address = parseIpv4(s.slice(0, slash));
  if (address === undefined) return undefined;
  const rest = s.slice(slash + 1);
  let prefix: number | undefined;
  if (/^(0|[1-9]\d?)$/.test(rest)) {
    prefix = Number(rest);
    if (prefix > 32) return undefined;
  } else {
    const mask = parseIpv4(rest);
    prefix = mask === undefined ? undefined : maskToPrefix(mask);
  }
  return prefix === undefined ? undefined : { address, prefix };
}
