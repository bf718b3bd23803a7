/**
 * DHCPv6 message codec (RFC 8415, with RFC 3646 DNS options and RFC 5970 boot file URL).
 *
 * Theory of operation
 * - `decodeDhcpv6` takes the UDP payload of a client/server message: a message type, a
 *   24-bit transaction id and options, each a 2-byte code, a 2-byte length and the value.
 *   Options are kept as a list in wire order (a message may carry several IA_NA); values
 *   are views into the input (copy what must outlive the datagram).
 * - Relay messages (RELAY-FORW/RELAY-REPL, types 12 and 13) have another header; they
 *   decode as "dhcpv6-relay" failures: there is no relay on a user network.
 * - The nested options (IA_NA and its IAADDR, status code) have their own small
 *   decoders and encoders; `encodeDhcpv6` writes options in the given order.
 * - Decoding never throws on guest bytes: short input or an option running past the
 *   end give a Result with a reason ("dhcpv6-too-short", "dhcpv6-option-truncated", ...).
 * - Domain names in option 24 are written uncompressed, as RFC 8415 10 requires.
 * Not done: relay messages, authentication (option 11), reconfigure.
 */
import { fail, ok, type Result } from "../../stack/wire/result.js";

export const DHCPV6_CLIENT_PORT = 546;
export const DHCPV6_SERVER_PORT = 547;
const HEADER_LENGTH = 4;

export const Dhcpv6Type = {
  SOLICIT: 1,
  ADVERTISE: 2,
  REQUEST: 3,
  CONFIRM: 4,
  RENEW: 5,
  REBIND: 6,
  REPLY: 7,
  RELEASE: 8,
  DECLINE: 9,
  RECONFIGURE: 10,
  INFORMATION_REQUEST: 11,
  RELAY_FORW: 12,
  RELAY_REPL: 13,
} as const;

export const Dhcpv6Option = {
  CLIENT_ID: 1,
  SERVER_ID: 2,
  IA_NA: 3,
  IA_TA: 4,
  IAADDR: 5,
  ORO: 6,
  PREFERENCE: 7,
  ELAPSED_TIME: 8,
  STATUS_CODE: 13,
  RAPID_COMMIT: 14,
  DNS_SERVERS: 23,
  DOMAIN_LIST: 24,
  IA_PD: 25,
  INFORMATION_REFRESH_TIME: 32,
  CLIENT_FQDN: 39,
  BOOTFILE_URL: 59,
} as const;

export const Dhcpv6Status = {
  SUCCESS: 0,
  UNSPEC_FAIL: 1,
  NO_ADDRS_AVAIL: 2,
  NO_BINDING: 3,
  NOT_ON_LINK: 4,
  USE_MULTICAST: 5,
  NO_PREFIX_AVAIL: 6,
} as const;

export interface Dhcpv6Opt {
  code: number;
  data: Buffer;
}

export interface Dhcpv6Message {
  type: number;
  /** 24 bits */
  transactionId: number;
  options: Dhcpv6Opt[];
}

/** Options as a list; never throws. */
export function decodeOptions(b: Buffer): Result<Dhcpv6Opt[]> {
  const out: Dhcpv6Opt[] = [];
  let at = 0;
  while (at < b.length) {
    if (at + 4 > b.length) return fail("dhcpv6-option-truncated");
    const code = b.readUInt16BE(at);
    const len = b.readUInt16BE(at + 2);
    if (at + 4 + len > b.length) return fail("dhcpv6-option-truncated");
    out.push({ code, data: b.subarray(at + 4, at + 4 + len) });
    at += 4 + len;
  }
  return ok(out);
}

export function encodeOptions(options: readonly Dhcpv6Opt[]): Buffer {
  const out = Buffer.alloc(optionsLength(options));
  let at = 0;
  for (const o of options) {
    out.writeUInt16BE(o.code, at);
    out.writeUInt16BE(o.data.length, at + 2);
    o.data.copy(out, at + 4);
    at += 4 + o.data.length;
  }
  return out;
}

export function optionsLength(options: readonly Dhcpv6Opt[]): number {
  let n = 0;
  for (const o of options) n += 4 + o.data.length;
  return n;
}

export function decodeDhcpv6(b: Buffer): Result<Dhcpv6Message> {
  if (b.length < HEADER_LENGTH) return fail("dhcpv6-too-short");
  const type = b[0] as number;
  if (type === Dhcpv6Type.RELAY_FORW || type === Dhcpv6Type.RELAY_REPL) return fail("dhcpv6-relay");
  const options = decodeOptions(b.subarray(HEADER_LENGTH));
  if (!options.ok) return options;
  return ok({ type, transactionId: b.readUIntBE(1, 3), options: options.value });
}

export function encodeDhcpv6(m: Dhcpv6Message): Buffer {
  for (const o of m.options) {
    if (o.data.length > 0xffff) throw new RangeError(`dhcpv6 option ${o.code} longer than 65535 bytes`);
  }
  const opts = encodeOptions(m.options);
  const out = Buffer.alloc(HEADER_LENGTH + opts.length);
  out[0] = m.type;
  out.writeUIntBE(m.transactionId & 0xffffff, 1, 3);
  opts.copy(out, HEADER_LENGTH);
  return out;
}

/** The first option with `code`, or undefined. */
export function findOption(options: readonly Dhcpv6Opt[], code: number): Buffer | undefined {
  for (const o of options) if (o.code === code) return o.data;
  return undefined;
}

export function countOption(options: readonly Dhcpv6Opt[], code: number): number {
  let n = 0;
  for (const o of options) if (o.code === code) n++;
  return n;
}

// ---- IA_NA, IAADDR, status code ---------------------------------------------------

export interface IaNa {
  iaid: number;
  t1: number;
  t2: number;
  options: Dhcpv6Opt[];
}

export function decodeIaNa(b: Buffer): Result<IaNa> {
  if (b.length < 12) return fail("dhcpv6-ia-na-too-short");
  const options = decodeOptions(b.subarray(12));
  if (!options.ok) return options;
  return ok({
    iaid: b.readUInt32BE(0),
    t1: b.readUInt32BE(4),
    t2: b.readUInt32BE(8),
    options: options.value,
  });
}

export function encodeIaNa(ia: IaNa): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt32BE(ia.iaid >>> 0, 0);
  head.writeUInt32BE(ia.t1 >>> 0, 4);
  head.writeUInt32BE(ia.t2 >>> 0, 8);
  return Buffer.concat([head, encodeOptions(ia.options)]);
}

export interface IaAddr {
  /** 16 bytes */
  address: Buffer;
  preferred: number;
  valid: number;
  options: Dhcpv6Opt[];
}

export function decodeIaAddr(b: Buffer): Result<IaAddr> {
  if (b.length < 24) return fail("dhcpv6-iaaddr-too-short");
  const options = decodeOptions(b.subarray(24));
  if (!options.ok) return options;
  return ok({
    address: b.subarray(0, 16),
    preferred: b.readUInt32BE(16),
    valid: b.readUInt32BE(20),
    options: options.value,
  });
}

export function encodeIaAddr(a: IaAddr): Buffer {
  if (a.address.length !== 16) throw new RangeError("an IAADDR address is 16 bytes");
  const head = Buffer.alloc(24);
  a.address.copy(head, 0);
  head.writeUInt32BE(a.preferred >>> 0, 16);
  head.writeUInt32BE(a.valid >>> 0, 20);
  return Buffer.concat([head, encodeOptions(a.options)]);
}

export function statusOption(code: number, message = ""): Dhcpv6Opt {
  const data = Buffer.alloc(2 + Buffer.byteLength(message, "utf8"));
  data.writeUInt16BE(code, 0);
  data.write(message, 2, "utf8");
  return { code: Dhcpv6Option.STATUS_CODE, data };
}

export function decodeStatus(b: Buffer): Result<{ code: number; message: string }> {
  if (b.length < 2) return fail("dhcpv6-status-too-short");
  return ok({ code: b.readUInt16BE(0), message: b.toString("utf8", 2) });
}

/** The option codes of an Option Request option (6); an odd length drops the last byte. */
export function decodeOro(b: Buffer | undefined): number[] {
  if (b === undefined) return [];
  const out: number[] = [];
  for (let at = 0; at + 2 <= b.length; at += 2) out.push(b.readUInt16BE(at));
  return out;
}

export const u8 = (v: number): Buffer => Buffer.of(v & 0xff);

export function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

/**
 * A DNS name list, uncompressed (RFC 8415 10, RFC 1035 3.1), for option 24; fails on
 * an empty name or label, a label over 63 bytes or a name over 255.
 */
export function encodeNameList(names: readonly string[]): Result<Buffer> {
  const out: Buffer[] = [];
  for (const raw of names) {
    const name = raw.endsWith(".") ? raw.slice(0, -1) : raw;
    if (name === "") return fail("dns-name-empty");
    let wire = 1;
    for (const label of name.split(".")) {
      const bytes = Buffer.from(label, "latin1");
      if (bytes.length === 0) return fail("dns-label-empty");
      if (bytes.length > 63) return fail("dns-label-too-long");
      wire += 1 + bytes.length;
      out.push(u8(bytes.length), bytes);
    }
    if (wire > 255) return fail("dns-name-too-long");
    out.push(u8(0));
  }
  return ok(Buffer.concat(out));
}

/** The names of an uncompressed name list (option 24); compression pointers are refused. */
export function decodeNameList(b: Buffer): Result<string[]> {
  const names: string[] = [];
  let labels: string[] = [];
  let at = 0;
  while (at < b.length) {
    const len = b[at] as number;
    if (len === 0) {
      if (labels.length === 0) return fail("dns-name-empty");
      names.push(labels.join("."));
      labels = [];
      at++;
      continue;
    }
    if (len > 63) return fail("dns-label-bad");
    if (at + 1 + len > b.length) return fail("dns-name-truncated");
    labels.push(b.toString("latin1", at + 1, at + 1 + len));
    at += 1 + len;
  }
  if (labels.length > 0) return fail("dns-name-truncated");
  return ok(names);
}

/** DUID-LL (RFC 8415 11.4): type 3, hardware type 1 (Ethernet), the MAC. */
export function duidLl(mac: Buffer): Buffer {
  const d = Buffer.alloc(4 + 6);
  d.writeUInt16BE(3, 0);
  d.writeUInt16BE(1, 2);
  mac.copy(d, 4, 0, 6);
  return d;
}
