/**
 * BOOTP/DHCP message codec (RFC 951, RFC 2131, RFC 2132, RFC 3396, RFC 3397).
 *
 * Theory of operation
 * - `decodeDhcp` takes the UDP payload and returns a `DhcpMessage`: the fixed 236-byte
 *   BOOTP header, whether the RFC 1048 magic cookie is present, and the options as a
 *   Map from code to value in order of first appearance. A code that appears more than
 *   once is concatenated (RFC 3396: long options are split into several instances). Pad
 *   (0) is skipped, End (255) stops. Option overload (52) is honoured: the `file` field,
 *   then `sname`, are parsed for further options; the raw fields stay available too.
 * - A message without the cookie (plain RFC 951 BOOTP) decodes with no options.
 * - Decoding never throws: short input, a bad `hlen`, or an option running past the end
 *   give a Result with a reason ("dhcp-too-short", "dhcp-bad-hlen",
 *   "dhcp-option-truncated"). Single option values are views into the input (no copy);
 *   keep a copy if they must outlive the datagram.
 * - `encodeDhcp` writes a message, splitting values longer than 255 bytes into several
 *   instances, ending with End and zero-padding to 300 bytes (the RFC 951 minimum that
 *   old BOOTP clients and relays expect; libslirp and ISC dhcpd pad likewise). It never
 *   overloads `sname`/`file`: a caller with too many options decides what to leave out.
 * - Helpers: RFC 1035 name lists for option 119 (with compression, as libslirp does)
 *   and small builders for option values.
 * Not done: option 52 is not produced, relay agent (82) suboptions are kept raw.
 */
import { fail, ok, type Result } from "../../stack/wire/result.js";

/** Field offsets of the fixed BOOTP header. */
const F = {
  op: 0,
  htype: 1,
  hlen: 2,
  hops: 3,
  xid: 4,
  secs: 8,
  flags: 10,
  ciaddr: 12,
  yiaddr: 16,
  siaddr: 20,
  giaddr: 24,
  chaddr: 28,
  sname: 44,
  file: 108,
  cookie: 236,
  options: 240,
} as const;

export const DHCP_HEADER_LENGTH = 236;
export const DHCP_CHADDR_LENGTH = 16;
export const DHCP_SNAME_LENGTH = 64;
export const DHCP_FILE_LENGTH = 128;
/** Smallest BOOTP message (RFC 951: 64-byte vendor area). */
export const BOOTP_MIN_LENGTH = 300;
/** The RFC 1048 magic cookie, 99.130.83.99. */
export const DHCP_MAGIC_COOKIE = 0x63825363;

export const BOOTP_REQUEST = 1;
export const BOOTP_REPLY = 2;
/** The broadcast bit of `flags` (RFC 1542). */
export const DHCP_FLAG_BROADCAST = 0x8000;

/** Option 53 values. */
export const DhcpMessageType = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;

/** Option codes this project reads or writes. */
export const DhcpOption = {
  PAD: 0,
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  DOMAIN_NAME: 15,
  MTU: 26,
  REQUESTED_ADDRESS: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAMETER_LIST: 55,
  MESSAGE: 56,
  MAX_MESSAGE_SIZE: 57,
  RENEWAL_TIME: 58,
  REBINDING_TIME: 59,
  VENDOR_CLASS: 60,
  CLIENT_ID: 61,
  TFTP_SERVER_NAME: 66,
  BOOTFILE: 67,
  DOMAIN_SEARCH: 119,
  END: 255,
} as const;

export interface DhcpMessage {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  /** bit 15 is the broadcast flag; the rest must be zero but are kept as sent */
  flags: number;
  ciaddr: number;
  yiaddr: number;
  siaddr: number;
  giaddr: number;
  /** client hardware address field, 16 bytes (the first `hlen` are meaningful) */
  chaddr: Buffer;
  /** server host name field, 64 bytes, NUL-padded */
  sname: Buffer;
  /** boot file name field, 128 bytes, NUL-padded */
  file: Buffer;
  /** false for plain BOOTP (no RFC 1048 vendor extensions) */
  cookie: boolean;
  /** code → value; repeated codes concatenated; never holds Pad or End */
  options: Map<number, Buffer>;
}

/** Decodes a BOOTP/DHCP message (a UDP payload). Never throws. */
export function decodeDhcp(b: Buffer): Result<DhcpMessage> {
  if (b.length < DHCP_HEADER_LENGTH) return fail("dhcp-too-short");
  const hlen = b[F.hlen] ?? 0;
  if (hlen > DHCP_CHADDR_LENGTH) return fail("dhcp-bad-hlen");
  const m: DhcpMessage = {
    op: b[F.op] ?? 0,
    htype: b[F.htype] ?? 0,
    hlen,
    hops: b[F.hops] ?? 0,
    xid: b.readUInt32BE(F.xid),
    secs: b.readUInt16BE(F.secs),
    flags: b.readUInt16BE(F.flags),
    ciaddr: b.readUInt32BE(F.ciaddr),
    yiaddr: b.readUInt32BE(F.yiaddr),
    siaddr: b.readUInt32BE(F.siaddr),
    giaddr: b.readUInt32BE(F.giaddr),
    chaddr: b.subarray(F.chaddr, F.chaddr + DHCP_CHADDR_LENGTH),
    sname: b.subarray(F.sname, F.sname + DHCP_SNAME_LENGTH),
    file: b.subarray(F.file, F.file + DHCP_FILE_LENGTH),
    cookie: b.length >= F.options && b.readUInt32BE(F.cookie) === DHCP_MAGIC_COOKIE,
    options: new Map(),
  };
  if (!m.cookie) return ok(m);

  const parts = new Map<number, Buffer[]>();
  if (!parseOptionArea(b.subarray(F.options), parts)) return fail("dhcp-option-truncated");
  // RFC 2131 4.1: with overload, the options continue in `file`, then in `sname`.
  const overload = parts.get(DhcpOption.OVERLOAD);
  const mode = overload?.length === 1 && overload[0]?.length === 1 ? overload[0][0] : 0;
  if (mode === 1 || mode === 3) {
    if (!parseOptionArea(m.file, parts)) return fail("dhcp-option-truncated");
  }
  if (mode === 2 || mode === 3) {
    if (!parseOptionArea(m.sname, parts)) return fail("dhcp-option-truncated");
  }
  for (const [code, chunks] of parts) {
    m.options.set(code, chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks));
  }
  return ok(m);
}

/**
 * Collects code → value chunks from one option area. False when an option runs past
 * the end of the area. A missing End is tolerated (the area simply ends).
 */
function parseOptionArea(area: Buffer, parts: Map<number, Buffer[]>): boolean {
  let p = 0;
  while (p < area.length) {
    const code = area[p] as number;
    if (code === DhcpOption.PAD) {
      p++;
      continue;
    }
    if (code === DhcpOption.END) return true;
    if (p + 1 >= area.length) return false;
    const len = area[p + 1] as number;
    const end = p + 2 + len;
    if (end > area.length) return false;
    const value = area.subarray(p + 2, end);
    const list = parts.get(code);
    if (list) list.push(value);
    else parts.set(code, [value]);
    p = end;
  }
  return true;
}

/** Bytes the options of `m` take when encoded, End included (cookie excluded). */
export function dhcpOptionsLength(options: Map<number, Buffer>): number {
  let n = 1;
  for (const value of options.values()) n += optionEncodedLength(value.length);
  return n;
}

/** One option value of `len` bytes as written: split into 255-byte instances. */
export function optionEncodedLength(len: number): number {
  return len === 0 ? 2 : len + 2 * Math.ceil(len / 255);
}

/** Bytes `encodeDhcp` will produce for `m` with the given minimum length. */
export function dhcpEncodingLength(m: DhcpMessage, minLength = BOOTP_MIN_LENGTH): number {
  const body = m.cookie ? F.options + dhcpOptionsLength(m.options) : DHCP_HEADER_LENGTH;
  return Math.max(body, minLength);
}

/**
 * Encodes `m` into a new Buffer, zero-padded to `minLength` (300 by default). Options are
 * written only when `m.cookie` is set. `chaddr`, `sname` and `file` may be shorter than
 * their fields (zero-filled) and are cut to the field size if longer.
 */
export function encodeDhcp(m: DhcpMessage, minLength = BOOTP_MIN_LENGTH): Buffer {
  const out = Buffer.alloc(dhcpEncodingLength(m, minLength));
  out[F.op] = m.op & 0xff;
  out[F.htype] = m.htype & 0xff;
  out[F.hlen] = m.hlen & 0xff;
  out[F.hops] = m.hops & 0xff;
  out.writeUInt32BE(m.xid >>> 0, F.xid);
  out.writeUInt16BE(m.secs & 0xffff, F.secs);
  out.writeUInt16BE(m.flags & 0xffff, F.flags);
  out.writeUInt32BE(m.ciaddr >>> 0, F.ciaddr);
  out.writeUInt32BE(m.yiaddr >>> 0, F.yiaddr);
  out.writeUInt32BE(m.siaddr >>> 0, F.siaddr);
  out.writeUInt32BE(m.giaddr >>> 0, F.giaddr);
  m.chaddr.copy(out, F.chaddr, 0, Math.min(m.chaddr.length, DHCP_CHADDR_LENGTH));
  m.sname.copy(out, F.sname, 0, Math.min(m.sname.length, DHCP_SNAME_LENGTH));
  m.file.copy(out, F.file, 0, Math.min(m.file.length, DHCP_FILE_LENGTH));
  if (!m.cookie) return out;
  out.writeUInt32BE(DHCP_MAGIC_COOKIE, F.cookie);
  let p: number = F.options;
  for (const [code, value] of m.options) p = writeOption(out, p, code, value);
  out[p] = DhcpOption.END;
  return out;
}

/** Writes one option (split into 255-byte instances if long); returns the next offset. */
function writeOption(out: Buffer, at: number, code: number, value: Buffer): number {
  let p = at;
  let v = 0;
  do {
    const n = Math.min(255, value.length - v);
    out[p] = code & 0xff;
    out[p + 1] = n;
    value.copy(out, p + 2, v, v + n);
    p += 2 + n;
    v += n;
  } while (v < value.length);
  return p;
}

// ---- reading option values -------------------------------------------------------

/** Option 53, or undefined when absent or empty (plain BOOTP). */
export function dhcpMessageType(m: DhcpMessage): number | undefined {
  const v = m.options.get(DhcpOption.MESSAGE_TYPE);
  return v && v.length >= 1 ? v[0] : undefined;
}

/** A 4-byte address option; undefined when absent or not exactly 4 bytes. */
export function optionIpv4(m: DhcpMessage, code: number): number | undefined {
  const v = m.options.get(code);
  return v && v.length === 4 ? v.readUInt32BE(0) : undefined;
}

/** A 2-byte option; undefined when absent or not exactly 2 bytes. */
export function optionU16(m: DhcpMessage, code: number): number | undefined {
  const v = m.options.get(code);
  return v && v.length === 2 ? v.readUInt16BE(0) : undefined;
}

/** A NUL-padded field or option as text (latin1, up to the first NUL). */
export function cString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.toString("latin1", 0, nul < 0 ? b.length : nul);
}

// ---- building option values ------------------------------------------------------

export const optU8 = (v: number): Buffer => Buffer.from([v & 0xff]);

export function optU16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v & 0xffff);
  return b;
}

export function optU32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
}

/** One or more IPv4 addresses, 4 bytes each. */
export function optIpv4(...addrs: number[]): Buffer {
  const b = Buffer.alloc(4 * addrs.length);
  addrs.forEach((a, i) => {
    b.writeUInt32BE(a >>> 0, 4 * i);
  });
  return b;
}

/** A text option (NVT ASCII per RFC 2132; written as latin1 bytes, no NUL). */
export const optString = (s: string): Buffer => Buffer.from(s, "latin1");

// ---- RFC 1035 names for option 119 (RFC 3397) --------------------------------------

/**
 * Encodes a domain search list as RFC 1035 names with compression. Pointer offsets are
 * relative to the start of the option value, as RFC 3397 defines for the concatenated
 * option. Names may end in a dot; labels are 1..63 bytes, names at most 255 encoded.
 */
export function encodeDomainSearch(names: readonly string[]): Result<Buffer> {
  const out: number[] = [];
  // lower-cased suffix ("example.com") → offset where it was written
  const seen = new Map<string, number>();
  for (const raw of names) {
    const name = raw.endsWith(".") ? raw.slice(0, -1) : raw;
    if (name === "") return fail("dns-name-empty");
    const labels = name.split(".");
    let wire = 1;
    for (const label of labels) {
      const len = Buffer.byteLength(label, "latin1");
      if (len === 0) return fail("dns-label-empty");
      if (len > 63) return fail("dns-label-too-long");
      wire += 1 + len;
    }
    if (wire > 255) return fail("dns-name-too-long");
    let i = 0;
    for (; i < labels.length; i++) {
      const suffix = labels.slice(i).join(".").toLowerCase();
      const at = seen.get(suffix);
      if (at !== undefined) {
        out.push(0xc0 | (at >> 8), at & 0xff);
        break;
      }
      if (out.length < 0x4000) seen.set(suffix, out.length);
      const bytes = Buffer.from(labels[i] as string, "latin1");
      out.push(bytes.length, ...bytes);
    }
    if (i === labels.length) out.push(0);
  }
  return ok(Buffer.from(out));
}

/** Decodes an option 119 value into names (without trailing dots). Never throws. */
export function decodeDomainSearch(b: Buffer): Result<string[]> {
  const names: string[] = [];
  let p = 0;
  while (p < b.length) {
    const labels: string[] = [];
    let q = p;
    let jumped = false;
    // pointers must go strictly backwards, so at most b.length jumps can happen
    let limit = q;
    let wire = 1;
    for (;;) {
      if (q >= b.length) return fail("dns-name-truncated");
      const len = b[q] as number;
      if (len === 0) {
        if (!jumped) p = q + 1;
        break;
      }
      if ((len & 0xc0) === 0xc0) {
        if (q + 1 >= b.length) return fail("dns-name-truncated");
        const target = ((len & 0x3f) << 8) | (b[q + 1] as number);
        if (target >= limit) return fail("dns-bad-pointer");
        if (!jumped) p = q + 2;
        jumped = true;
        limit = target;
        q = target;
        continue;
      }
      if ((len & 0xc0) !== 0) return fail("dns-bad-label");
      if (q + 1 + len > b.length) return fail("dns-name-truncated");
      wire += 1 + len;
      if (wire > 255) return fail("dns-name-too-long");
      labels.push(b.toString("latin1", q + 1, q + 1 + len));
      q += 1 + len;
    }
    names.push(labels.join("."));
  }
  return ok(names);
}
