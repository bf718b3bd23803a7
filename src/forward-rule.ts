/**
 * The one check of a host-forward rule, wherever the rule comes from: hostfwd= and
 * -redir text (cli/forwards.ts parses the grammar and asks here field by field), the
 * management API and `usernet ctl` (forwards.ts), the state file
 * (proxy/forward-store.ts) and slirp4netns's JSON API (api/slirp4netns-api.ts).
 *
 * Two questions, kept apart because the second needs a network and the first does not:
 * - `forwardFieldProblem` / `checkHostForward`: is each field well formed, as JSON gives
 *   it? proto tcp or udp; addresses a dotted quad, IPv6 text (kept in RFC 5952 form) or
 *   "" (every IPv4 address / the first DHCP address; on an IPv6 host address, the guest's
 *   first IPv6 address the stack learned); host port 0..65535 (0: any free port); guest port 1..65535;
 *   preserveSource absent or a boolean. Fields are checked in the order QEMU's grammar
 *   writes them, so the first problem named is the leftmost one.
 * - `guestAddressProblem`: can the guest address be a guest on this network? Inside it,
 *   neither its network nor its broadcast address, nor the gateway or the DNS address;
 *   an IPv6 one inside the IPv6 prefix (ipv6=on), not its gateway or DNS address.
 *
 * A host listener of one family may forward to a guest address of the other (an IPv6
 * client reaching an IPv4-only guest, or the other way round): the guest sees the
 * connection come from the gateway of the guest's family.
 * The API's JSON schema (api/schemas.ts) describes the same fields for /openapi.json;
 * the facade checks here all the same.
 */
import type { HostForward, UserNetdevConfig } from "./config.js";
import { ipv4ToString, parseIpv4, prefixToMask } from "./stack/wire/addr.js";
import { ipv6InPrefix, ipv6ToString, parseIpv6, sameIpv6 } from "./stack/wire/ipv6-addr.js";

export type HostForwardField = keyof HostForward;

/** a value as a message shows it: quoted, as the user wrote it */
const show = (v: unknown): string => (typeof v === "number" ? `"${v}"` : String(JSON.stringify(v)));

const isPort = (v: unknown, min: number): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= min && v <= 65535;
const isOptionalAddr = (v: unknown): v is string =>
  typeof v === "string" && (v === "" || parseIpv4(v) !== undefined || parseIpv6(v) !== undefined);

/** IPv6 text in its RFC 5952 form (so a rule compares and prints one way); other text as it is */
const canonical = (a: string): string => {
  const six = a.includes(":") ? parseIpv6(a) : undefined;
  return six === undefined ? a : ipv6ToString(six);
};

const fieldChecks: { [K in HostForwardField]-?: (v: unknown) => string | undefined } = {
  proto: (v) => (v === "tcp" || v === "udp" ? undefined : `bad protocol ${show(v)} (tcp or udp)`),
  hostAddr: (v) => (isOptionalAddr(v) ? undefined : `bad host address ${show(v)}`),
  hostPort: (v) => (isPort(v, 0) ? undefined : `bad host port ${show(v)} (0..65535)`),
  guestAddr: (v) => (isOptionalAddr(v) ? undefined : `bad guest address ${show(v)}`),
  guestPort: (v) => (isPort(v, 1) ? undefined : `bad guest port ${show(v)} (1..65535)`),
  preserveSource: (v) =>
    v === undefined || typeof v === "boolean" ? undefined : "preserveSource must be true or false",
};

const fieldOrder = Object.keys(fieldChecks) as HostForwardField[];

/** Why `v` cannot be the `field` of a rule, or undefined. */
export function forwardFieldProblem(field: HostForwardField, v: unknown): string | undefined {
  return fieldChecks[field](v);
}

export type CheckedForward =
  | { ok: true; value: HostForward }
  | { ok: false; field: HostForwardField; reason: string };

/**
 * `v` as a rule (a fresh object holding only the rule's fields), or the first field
 * that is wrong and why. Never throws.
 */
export function checkHostForward(v: unknown): CheckedForward {
  const r = (typeof v === "object" && v !== null ? v : {}) as Record<string, unknown>;
  for (const field of fieldOrder) {
    const reason = fieldChecks[field](r[field]);
    if (reason !== undefined) return { ok: false, field, reason };
  }
  const rule: HostForward = {
    proto: r.proto as HostForward["proto"],
    hostAddr: canonical(r.hostAddr as string),
    hostPort: r.hostPort as number,
    guestAddr: canonical(r.guestAddr as string),
    guestPort: r.guestPort as number,
  };
  if (r.preserveSource !== undefined) rule.preserveSource = r.preserveSource as boolean;
  return { ok: true, value: rule };
}

/** Why address `a` cannot be a host on net/prefix ("not inside net=10.0.2.0/24"), or undefined. */
export function placeProblem(net: number, prefix: number, a: number): string | undefined {
  const mask = prefixToMask(prefix);
  const cidr = `${ipv4ToString(net)}/${prefix}`;
  if ((a & mask) >>> 0 !== net) return `not inside net=${cidr}`;
  if (a === net) return `is the network address of ${cidr}`;
  if (a === (net | ~mask) >>> 0) return `is the broadcast address of ${cidr}`;
  return undefined;
}

export type ForwardNetwork = Pick<UserNetdevConfig, "net" | "prefixLength" | "host" | "dns" | "ipv6">;

/** Why a forward cannot reach `guestAddr` ("" is the first DHCP address: fine) on `n`, or undefined. */
export function guestAddressProblem(n: ForwardNetwork, guestAddr: string): string | undefined {
  if (guestAddr === "") return undefined;
  if (guestAddr.includes(":")) return guestAddress6Problem(n, guestAddr);
  const a = parseIpv4(guestAddr);
  if (a === undefined) return `bad guest address ${show(guestAddr)}`;
  const place = placeProblem(parseIpv4(n.net) ?? 0, n.prefixLength, a);
  if (place) return `guest address ${guestAddr} ${place}`;
  if (guestAddr === n.host) return `guest address ${guestAddr} is the host address`;
  if (guestAddr === n.dns) return `guest address ${guestAddr} is the DNS address`;
  return undefined;
}

function guestAddress6Problem(n: ForwardNetwork, guestAddr: string): string | undefined {
  const a = parseIpv6(guestAddr);
  if (a === undefined) return `bad guest address ${show(guestAddr)}`;
  const v6 = n.ipv6;
  if (v6 === undefined) return `guest address ${guestAddr} is IPv6, but this netdev has ipv6=off`;
  const prefix = parseIpv6(v6.prefix);
  const cidr = `${v6.prefix}/${v6.prefixLength}`;
  if (prefix === undefined || !ipv6InPrefix(a, prefix, v6.prefixLength))
    return `guest address ${guestAddr} not inside ipv6-net=${cidr}`;
  if (sameIpv6(a, prefix)) return `guest address ${guestAddr} is the prefix address of ${cidr}`;
  const host = parseIpv6(v6.host);
  if (host !== undefined && sameIpv6(a, host)) return `guest address ${guestAddr} is the IPv6 host address`;
  const dns = parseIpv6(v6.dns);
  if (dns !== undefined && sameIpv6(a, dns)) return `guest address ${guestAddr} is the IPv6 DNS address`;
  return undefined;
}
