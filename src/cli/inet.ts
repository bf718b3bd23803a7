/**
 * Ports, numbers, host names and HOST:PORT endpoints as written on the command line.
 * Addresses themselves (dotted quads, masks, multicast) are stack/wire/addr.ts's, the
 * one parser for them: stricter than QEMU's inet_aton on purpose ("10.2", "0x0a.0.2.2"
 * and octal-looking "010" are not addresses).
 *
 * Ports are plain decimal. Host names are allowed where QEMU resolves names
 * (socket/stream/dgram peers); they are only checked for shape here and resolved by
 * the transport that uses them.
 */
import { parseIpv4 } from "../stack/wire/addr.js";

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
