/**
 * Neighbor Discovery (RFC 4861) message bodies and options, with RDNSS and DNSSL
 * (RFC 8106).
 *
 * Theory of operation: icmpv6.ts hands over the generic record of types 133..137
 * (`Icmp6Other`: code, rest-of-header word, body); `decodeNdp` checks what RFC 4861
 * §6.1/§7.1 asks of the message itself (code 0, the fixed part present, every option's
 * length non-zero and within the message) and parses the options into one flat record.
 * The IP-level checks (hop limit 255, source address rules) are the caller's: it has the
 * IP header. `encodeNdp` gives back an `Icmp6Other` for `encodeIcmp6`.
 *
 * Options: source/target link-layer address (Ethernet: 6 bytes; a longer field is kept
 * as its first 6), prefix information, MTU, RDNSS, DNSSL; the redirected header and
 * everything else is kept raw in `unknown`. Repeated SLLA/TLLA/MTU options keep the
 * first. DNSSL names are read in DNS wire form without compression (RFC 8106 §5.2);
 * a malformed name list fails the decode.
 *
 * Not handled: SEND (RFC 3971), route information (RFC 4191), captive portal and PREF64
 * options (kept raw).
 */

import { type Icmp6Other, Icmp6Type } from "./icmpv6.js";
import { type Ipv6Address, ipv6Copy } from "./ipv6-addr.js";
import { fail, ok, type Result } from "./result.js";

const u32 = (b: Buffer, i: number): number => b.readUInt32BE(i);

export const NdpOptionType = {
  sourceLinkAddress: 1,
  targetLinkAddress: 2,
  prefixInformation: 3,
  redirectedHeader: 4,
  mtu: 5,
  rdnss: 25,
  dnssl: 31,
} as const;

/** RA flags in the rest-of-header word's second byte. */
export const RaFlag = { managed: 0x80, other: 0x40 } as const;
/** NA flags in the rest-of-header word's first byte. */
export const NaFlag = { router: 0x80, solicited: 0x40, override: 0x20 } as const;
/** Prefix information flags. */
export const PrefixFlag = { onLink: 0x80, autonomous: 0x40 } as const;

/** A lifetime of all ones: forever. */
export const NDP_INFINITE = 0xffffffff;

export interface NdpPrefixInfo {
  prefixLength: number;
  onLink: boolean;
  autonomous: boolean;
  /** seconds */
  validLifetime: number;
  /** seconds */
  preferredLifetime: number;
  prefix: Ipv6Address;
}

export interface NdpRdnss {
  /** seconds */
  lifetime: number;
  servers: Ipv6Address[];
}

export interface NdpDnssl {
  /** seconds */
  lifetime: number;
  domains: string[];
}

export interface NdpOptions {
  sourceLinkAddress?: Buffer | undefined;
  targetLinkAddress?: Buffer | undefined;
  prefixes?: NdpPrefixInfo[] | undefined;
  mtu?: number | undefined;
  rdnss?: NdpRdnss[] | undefined;
  dnssl?: NdpDnssl[] | undefined;
  /** options not parsed: type and the bytes after type and length */
  unknown?: { type: number; data: Buffer }[] | undefined;
}

export interface NdpRouterSolicitation {
  kind: "rs";
  options: NdpOptions;
}

export interface NdpRouterAdvertisement {
  kind: "ra";
  curHopLimit: number;
  managed: boolean;
  other: boolean;
  /** seconds; 0: not a default router */
  routerLifetime: number;
  /** ms; 0: unspecified */
  reachableTime: number;
  /** ms; 0: unspecified */
  retransTimer: number;
  options: NdpOptions;
}

export interface NdpNeighborSolicitation {
  kind: "ns";
  target: Ipv6Address;
  options: NdpOptions;
}

export interface NdpNeighborAdvertisement {
  kind: "na";
  router: boolean;
  solicited: boolean;
  override: boolean;
  target: Ipv6Address;
  options: NdpOptions;
}

export interface NdpRedirect {
  kind: "redirect";
  target: Ipv6Address;
  destination: Ipv6Address;
  options: NdpOptions;
}

export type NdpMessage =
  | NdpRouterSolicitation
  | NdpRouterAdvertisement
  | NdpNeighborSolicitation
  | NdpNeighborAdvertisement
  | NdpRedirect;

const NOT_NDP = fail("ndp-not-ndp");
const BAD_CODE = fail("ndp-bad-code");
const TRUNCATED = fail("ndp-truncated");
const BAD_OPTION = fail("ndp-bad-option-length");
const BAD_DNSSL = fail("ndp-bad-dnssl");

/** Bytes of the fixed part after the 4 rest-of-header bytes, by type. */
const FIXED: Record<number, number> = {
  [Icmp6Type.routerSolicitation]: 0,
  [Icmp6Type.routerAdvertisement]: 8,
  [Icmp6Type.neighborSolicitation]: 16,
  [Icmp6Type.neighborAdvertisement]: 16,
  [Icmp6Type.redirect]: 32,
};

/** Whether an ICMPv6 type is an NDP message this codec reads. */
export const isNdpType = (type: number): boolean => type >= 133 && type <= 137;

/** DNS wire-form names (no compression) at b[start, end); trailing zero bytes are padding. */
function readNames(b: Buffer, start: number, end: number): string[] | undefined {
  const names: string[] = [];
  let i = start;
  while (i < end) {
    if (b[i] === 0) {
      // padding: only zeros may follow
      for (let k = i; k < end; k++) if (b[k] !== 0) return undefined;
      break;
    }
    const labels: string[] = [];
    let length = 0;
    while (true) {
      if (i >= end) return undefined;
      const n = b[i] as number;
      i++;
      if (n === 0) break;
      if (n > 63 || i + n > end) return undefined;
      labels.push(b.toString("latin1", i, i + n));
      length += n + 1;
      if (length > 254) return undefined;
      i += n;
    }
    names.push(labels.join("."));
  }
  return names;
}

/** Appends to one of the list options, creating the list on first use. */
function push<K extends "prefixes" | "rdnss" | "dnssl" | "unknown">(
  o: NdpOptions,
  key: K,
  item: NonNullable<NdpOptions[K]>[number],
): void {
  const list = o[key] as unknown[] | undefined;
  if (list === undefined) (o as Record<string, unknown[]>)[key] = [item];
  else list.push(item);
}

function decodeOptions(b: Buffer, at: number): Result<NdpOptions> {
  const o: NdpOptions = {};
  let i = at;
  while (i < b.length) {
    if (b.length - i < 2) return TRUNCATED;
    const type = b[i] as number;
    const len = (b[i + 1] as number) * 8;
    if (len === 0) return BAD_OPTION;
    if (i + len > b.length) return BAD_OPTION;
    const body = b.subarray(i + 2, i + len);
    switch (type) {
      case NdpOptionType.sourceLinkAddress:
      case NdpOptionType.targetLinkAddress: {
        if (body.length < 6) return BAD_OPTION;
        const mac = body.subarray(0, 6);
        if (type === NdpOptionType.sourceLinkAddress) o.sourceLinkAddress ??= mac;
        else o.targetLinkAddress ??= mac;
        break;
      }
      case NdpOptionType.prefixInformation: {
        if (len !== 32) return BAD_OPTION;
        const flags = body[1] as number;
        push(o, "prefixes", {
          prefixLength: body[0] as number,
          onLink: (flags & PrefixFlag.onLink) !== 0,
          autonomous: (flags & PrefixFlag.autonomous) !== 0,
          validLifetime: u32(body, 2),
          preferredLifetime: u32(body, 6),
          prefix: body.subarray(14, 30),
        });
        break;
      }
      case NdpOptionType.mtu:
        if (len !== 8) return BAD_OPTION;
        o.mtu ??= u32(body, 2);
        break;
      case NdpOptionType.rdnss: {
        // RFC 8106 §5.1: length 3 + 2 per address, at least one address
        if (len < 24 || (len - 8) % 16 !== 0) return BAD_OPTION;
        const servers: Ipv6Address[] = [];
        for (let k = 6; k < body.length; k += 16) servers.push(body.subarray(k, k + 16));
        push(o, "rdnss", { lifetime: u32(body, 2), servers });
        break;
      }
      case NdpOptionType.dnssl: {
        if (len < 16) return BAD_OPTION;
        const domains = readNames(body, 6, body.length);
        if (domains === undefined) return BAD_DNSSL;
        push(o, "dnssl", { lifetime: u32(body, 2), domains });
        break;
      }
      default:
        push(o, "unknown", { type, data: body });
    }
    i += len;
  }
  return ok(o);
}

/** Decodes the NDP message in an ICMPv6 record of types 133..137. */
export function decodeNdp(m: Icmp6Other): Result<NdpMessage> {
  const fixed = FIXED[m.type];
  if (fixed === undefined) return NOT_NDP;
  if (m.code !== 0) return BAD_CODE;
  const b = m.payload;
  if (b.length < fixed) return TRUNCATED;
  const opts = decodeOptions(b, fixed);
  if (!opts.ok) return opts;
  const options = opts.value;
  const restHi = m.rest >>> 24;
  switch (m.type) {
    case Icmp6Type.routerSolicitation:
      return ok({ kind: "rs", options });
    case Icmp6Type.routerAdvertisement: {
      const flags = (m.rest >>> 16) & 0xff;
      return ok({
        kind: "ra",
        curHopLimit: restHi,
        managed: (flags & RaFlag.managed) !== 0,
        other: (flags & RaFlag.other) !== 0,
        routerLifetime: m.rest & 0xffff,
        reachableTime: u32(b, 0),
        retransTimer: u32(b, 4),
        options,
      });
    }
    case Icmp6Type.neighborSolicitation:
      return ok({ kind: "ns", target: b.subarray(0, 16), options });
    case Icmp6Type.neighborAdvertisement:
      return ok({
        kind: "na",
        router: (restHi & NaFlag.router) !== 0,
        solicited: (restHi & NaFlag.solicited) !== 0,
        override: (restHi & NaFlag.override) !== 0,
        target: b.subarray(0, 16),
        options,
      });
    default:
      return ok({ kind: "redirect", target: b.subarray(0, 16), destination: b.subarray(16, 32), options });
  }
}

/** DNS wire form of `names`, each a dotted name of labels of 1..63 bytes. */
function namesBytes(names: readonly string[]): Buffer {
  const parts: Buffer[] = [];
  for (const name of names) {
    for (const label of name.split(".").filter((l) => l.length > 0)) {
      const l = Buffer.from(label, "latin1");
      if (l.length > 63) throw new RangeError(`encodeNdp: DNSSL label over 63 bytes in ${name}`);
      parts.push(Buffer.from([l.length]), l);
    }
    parts.push(Buffer.from([0]));
  }
  return Buffer.concat(parts);
}

const pad8 = (n: number) => (n + 7) & ~7;

function encodeOptions(o: NdpOptions): Buffer[] {
  const out: Buffer[] = [];
  const opt = (type: number, body: Buffer) => {
    const len = pad8(2 + body.length);
    const b = Buffer.alloc(len);
    b[0] = type;
    b[1] = len / 8;
    body.copy(b, 2);
    out.push(b);
  };
  if (o.sourceLinkAddress) opt(NdpOptionType.sourceLinkAddress, o.sourceLinkAddress);
  if (o.targetLinkAddress) opt(NdpOptionType.targetLinkAddress, o.targetLinkAddress);
  if (o.mtu !== undefined) {
    const b = Buffer.alloc(6);
    b.writeUInt32BE(o.mtu >>> 0, 2);
    opt(NdpOptionType.mtu, b);
  }
  for (const p of o.prefixes ?? []) {
    const b = Buffer.alloc(30);
    b[0] = p.prefixLength;
    b[1] = (p.onLink ? PrefixFlag.onLink : 0) | (p.autonomous ? PrefixFlag.autonomous : 0);
    b.writeUInt32BE(p.validLifetime >>> 0, 2);
    b.writeUInt32BE(p.preferredLifetime >>> 0, 6);
    b.set(p.prefix.subarray(0, 16), 14);
    opt(NdpOptionType.prefixInformation, b);
  }
  for (const r of o.rdnss ?? []) {
    const b = Buffer.alloc(6 + 16 * r.servers.length);
    b.writeUInt32BE(r.lifetime >>> 0, 2);
    for (let k = 0; k < r.servers.length; k++) b.set((r.servers[k] as Buffer).subarray(0, 16), 6 + 16 * k);
    opt(NdpOptionType.rdnss, b);
  }
  for (const d of o.dnssl ?? []) {
    const names = namesBytes(d.domains);
    const b = Buffer.alloc(6 + names.length);
    b.writeUInt32BE(d.lifetime >>> 0, 2);
    names.copy(b, 6);
    opt(NdpOptionType.dnssl, b);
  }
  for (const u of o.unknown ?? []) opt(u.type, u.data);
  return out;
}

/**
 * The ICMPv6 record of an NDP message, for `encodeIcmp6`. Options go in a fixed order
 * (SLLA, TLLA, MTU, prefixes, RDNSS, DNSSL, unknown), each padded to 8 bytes.
 */
export function encodeNdp(m: NdpMessage): Icmp6Other {
  const opts = encodeOptions(m.options);
  let type: number;
  let rest = 0;
  let fixed: Buffer;
  switch (m.kind) {
    case "rs":
      type = Icmp6Type.routerSolicitation;
      fixed = Buffer.alloc(0);
      break;
    case "ra":
      type = Icmp6Type.routerAdvertisement;
      rest =
        ((m.curHopLimit & 0xff) * 0x1000000 +
          ((m.managed ? RaFlag.managed : 0) | (m.other ? RaFlag.other : 0)) * 0x10000 +
          (m.routerLifetime & 0xffff)) >>>
        0;
      fixed = Buffer.alloc(8);
      fixed.writeUInt32BE(m.reachableTime >>> 0, 0);
      fixed.writeUInt32BE(m.retransTimer >>> 0, 4);
      break;
    case "ns":
      type = Icmp6Type.neighborSolicitation;
      fixed = ipv6Copy(m.target);
      break;
    case "na":
      type = Icmp6Type.neighborAdvertisement;
      rest =
        ((m.router ? NaFlag.router : 0) |
          (m.solicited ? NaFlag.solicited : 0) |
          (m.override ? NaFlag.override : 0)) *
        0x1000000;
      fixed = ipv6Copy(m.target);
      break;
    default:
      type = Icmp6Type.redirect;
      fixed = Buffer.concat([m.target.subarray(0, 16), m.destination.subarray(0, 16)]);
  }
  return { kind: "other", type, code: 0, rest, payload: Buffer.concat([fixed, ...opts]) };
}
