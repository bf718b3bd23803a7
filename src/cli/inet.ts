/**
 * IPv4 addresses, ports and endpoints as written on the command line.
 *
 * Stricter than QEMU's inet_aton on purpose: only the four-part decimal dotted quad is
 * an address ("10.2" or "0x0a.0.2.2" are not, and a leading zero is refused because
 * inet_aton would read "010" as octal). Ports are plain decimal. Host names are allowed
 * where QEMU resolves names (socket/stream/dgram peers); they are only checked for
 * shape here and resolved by the transport that uses them.
 */

const octet = "(0|[1-9][0-9]{0,2})";
const dottedQuad = new RegExp(`^${octet}\\.${octet}\\.${octet}\\.${octet}$`);

/** dotted quad → unsigned 32-bit number, or undefined */
export function parseIpv4(s: string): number | undefined {
  const m = dottedQuad.exec(s);
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) return undefined;
    n = n * 256 + o;
  }
  return n;
}

export function formatIpv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** decimal port in [min, 65535], or undefined */
export function parsePort(s: string, min = 1): number | undefined {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(s)) return undefined;
  const n = Number(s);
  return n >= min && n <= 65535 ? n : undefined;
}

/** decimal integer in [min, max], or undefined */
export function parseDecimal(s: string, min: number, max: number): number | undefined {
  if (!/^(0|[1-9][0-9]{0,9})$/.test(s)) return undefined;
  const n = Number(s);
  return n >= min && n <= max ? n : undefined;
}

const label = /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/;

/** a DNS name: dot-separated labels of letters, digits, '-' and '_', 253 characters at most */
export function isDomainName(s: string): boolean {
  return s.length > 0 && s.length <= 253 && s.split(".").every((l) => label.test(l));
}

/** an IPv4 dotted quad or a host name; all-numeric names must be valid addresses */
export function isHost(s: string): boolean {
  if (parseIpv4(s) !== undefined) return true;
  if (/^[0-9.]+$/.test(s)) return false;
  return isDomainName(s);
}

export const isMulticast = (a: number): boolean => a >>> 28 === 0xe;

/** prefix length → netmask as unsigned 32-bit number */
export const prefixMask = (prefix: number): number =>
  prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;

/** netmask → prefix length, or undefined when the mask is not contiguous */
export function maskPrefix(mask: number): number | undefined {
  for (let p = 0; p <= 32; p++) if (prefixMask(p) === mask) return p;
  return undefined;
}

/**
 * "HOST:PORT" split at the last colon. An empty host is returned as "" for the caller to
 * default or refuse; undefined when there is no colon, the host is malformed or the
 * port is outside [minPort, 65535].
 */
export function parseHostPort(s: string, minPort = 1): { host: string; port: number } | undefined {
  const colon = s.lastIndexOf(":");
  if (colon < 0) return undefined;
  const host = s.slice(0, colon);
  const port = parsePort(s.slice(colon + 1), minPort);
  if (port === undefined || (host !== "" && !isHost(host))) return undefined;
  return { host, port };
}
