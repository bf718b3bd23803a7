/**
 * Raw DNS message helpers: the few header fields and the question section, read and
 * written straight on the bytes, for the forwarder and the upstream transport.
 *
 * Theory of operation
 * - Whole-message decoding is dns-packet's job (the forwarder uses it to validate a
 *   guest's query and read its EDNS0 payload size). What needs to be exact is done
 *   here on the wire form instead: the question is copied byte for byte into answers
 *   we make ourselves (so a resolver's 0x20 case randomisation survives), and
 *   responses are matched to queries by comparing question bytes with ASCII case
 *   folding. dns-packet joins labels with "." and so cannot tell the label "a.b" from
 *   the labels "a" and "b"; a local-name lookup must.
 * - Nothing here throws on guest or upstream bytes: readers return `Result`.
 * - Not done: compression pointers in the question (no sender uses them there: the
 *   question is the first name in a message, so there is nothing earlier to point to).
 */
import { fail, ok, type Result } from "../../stack/wire/result.js";

export const DNS_HEADER_LENGTH = 12;
/** The classic UDP payload limit without EDNS0 (RFC 1035 4.2.1). */
export const DNS_UDP_CLASSIC_LIMIT = 512;
/** The largest message the 2-byte TCP length prefix can carry (RFC 1035 4.2.2). */
export const DNS_TCP_MAX_MESSAGE = 65535;

export const DnsRcode = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export const DnsType = { A: 1, PTR: 12, AAAA: 28, OPT: 41 } as const;
export const DNS_CLASS_IN = 1;

const F = { id: 0, flags: 2, qdcount: 4, ancount: 6, nscount: 8, arcount: 10 } as const;
const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const FLAG_RA = 0x0080;

export interface DnsHeader {
  id: number;
  qr: boolean;
  opcode: number;
  tc: boolean;
  rd: boolean;
  rcode: number;
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
}

export function readHeader(b: Buffer): Result<DnsHeader> {
  if (b.length < DNS_HEADER_LENGTH) return fail("dns-short");
  const flags = b.readUInt16BE(F.flags);
  return ok({
    id: b.readUInt16BE(F.id),
    qr: (flags & FLAG_QR) !== 0,
    opcode: (flags >> 11) & 0xf,
    tc: (flags & FLAG_TC) !== 0,
    rd: (flags & FLAG_RD) !== 0,
    rcode: flags & 0xf,
    qdcount: b.readUInt16BE(F.qdcount),
    ancount: b.readUInt16BE(F.ancount),
    nscount: b.readUInt16BE(F.nscount),
    arcount: b.readUInt16BE(F.arcount),
  });
}

export const messageId = (b: Buffer): number => b.readUInt16BE(F.id);
export const setMessageId = (b: Buffer, id: number): void => {
  b.writeUInt16BE(id & 0xffff, F.id);
};
export const isTruncated = (b: Buffer): boolean => (b.readUInt16BE(F.flags) & FLAG_TC) !== 0;
export const responseRcode = (b: Buffer): number => b.readUInt16BE(F.flags) & 0xf;

/** The first question of a message, located on the wire. */
export interface DnsQuestion {
  /** where the question starts (always 12) and ends (after QTYPE and QCLASS) */
  start: number;
  end: number;
  /** the labels, as views on the message */
  labels: Buffer[];
  qtype: number;
  qclass: number;
}

/** Reads the first question (uncompressed, RFC 1035 limits: labels ≤ 63, name ≤ 255). */
export function readQuestion(b: Buffer): Result<DnsQuestion> {
  let at = DNS_HEADER_LENGTH;
  const labels: Buffer[] = [];
  for (;;) {
    const len = b[at];
    if (len === undefined) return fail("dns-question-short");
    if (len === 0) {
      at += 1;
      break;
    }
    if (len > 63) return fail("dns-question-bad-label");
    if (at + 1 + len > b.length) return fail("dns-question-short");
    labels.push(b.subarray(at + 1, at + 1 + len));
    at += 1 + len;
    if (at - DNS_HEADER_LENGTH > 255) return fail("dns-question-name-too-long");
  }
  if (at + 4 > b.length) return fail("dns-question-short");
  return ok({
    start: DNS_HEADER_LENGTH,
    end: at + 4,
    labels,
    qtype: b.readUInt16BE(at),
    qclass: b.readUInt16BE(at + 2),
  });
}

const lowerByte = (c: number): number => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c);

/**
 * Whether two messages carry the same first question: name equal under ASCII case
 * folding (RFC 4343), type and class equal. Both must have exactly one question.
 */
export function sameQuestion(a: Buffer, b: Buffer): boolean {
  const ha = readHeader(a);
  const hb = readHeader(b);
  if (!ha.ok || !hb.ok || ha.value.qdcount !== 1 || hb.value.qdcount !== 1) return false;
  const qa = readQuestion(a);
  const qb = readQuestion(b);
  if (!qa.ok || !qb.ok) return false;
  const la = qa.value.end - qa.value.start;
  if (la !== qb.value.end - qb.value.start) return false;
  // Length bytes are below 0x41, so folding the name folds only label bytes; QTYPE and
  // QCLASS (the last 4 bytes) compare exactly.
  for (let i = 0; i < la; i++) {
    const x = a[qa.value.start + i] ?? -1;
    const y = b[qb.value.start + i] ?? -2;
    if (i < la - 4 ? lowerByte(x) !== lowerByte(y) : x !== y) return false;
  }
  return true;
}

/**
 * The question's name in lower case with labels joined by ".", or undefined when a
 * label holds a "." or a byte outside printable ASCII (no local name can match it).
 */
export function questionName(q: DnsQuestion): string | undefined {
  let out = "";
  for (const label of q.labels) {
    for (const c of label) if (c <= 0x20 || c >= 0x7f || c === 0x2e) return undefined;
    out += `${out ? "." : ""}${label.toString("latin1").toLowerCase()}`;
  }
  return out;
}

/**
 * A response header for `query`: its ID and opcode, RD copied, QR and RA set (we are
 * the guest's recursive resolver), the rcode and counts given.
 */
function responseHeader(query: Buffer, rcode: number, counts: { qd: number; an: number }, flags = 0): Buffer {
  const h = Buffer.alloc(DNS_HEADER_LENGTH);
  const qflags = query.readUInt16BE(F.flags);
  h.writeUInt16BE(query.readUInt16BE(F.id), F.id);
  h.writeUInt16BE(
    FLAG_QR | (qflags & 0x7800) | (qflags & FLAG_RD) | FLAG_RA | flags | (rcode & 0xf),
    F.flags,
  );
  h.writeUInt16BE(counts.qd, F.qdcount);
  h.writeUInt16BE(counts.an, F.ancount);
  return h;
}

/** A header-only error response (FORMERR, NOTIMP): the query may have no usable question. */
export function errorResponse(query: Buffer, rcode: number): Buffer {
  return responseHeader(query, rcode, { qd: 0, an: 0 });
}

/** A response echoing the query's question (bytes as sent), without records. */
export function emptyResponse(query: Buffer, q: DnsQuestion, rcode: number, authoritative = false): Buffer {
  const h = responseHeader(query, rcode, { qd: 1, an: 0 }, authoritative ? FLAG_AA : 0);
  return Buffer.concat([h, query.subarray(q.start, q.end)]);
}

/** An authoritative answer with one A record; the owner name points at the question. */
export function addressResponse(query: Buffer, q: DnsQuestion, address: number, ttl: number): Buffer {
  const data = Buffer.alloc(4);
  data.writeUInt32BE(address >>> 0);
  return recordsResponse(query, q, [{ type: DnsType.A, data }], ttl);
}

/**
 * An authoritative answer with the given address records (A: 4 bytes, AAAA: 16), each
 * owned by the question's name (a pointer to it).
 */
export function recordsResponse(
  query: Buffer,
  q: DnsQuestion,
  records: readonly { type: number; data: Buffer }[],
  ttl: number,
): Buffer {
  const h = responseHeader(query, DnsRcode.NOERROR, { qd: 1, an: records.length }, FLAG_AA);
  const rrs = records.map((r) => {
    const rr = Buffer.alloc(12 + r.data.length);
    rr.writeUInt16BE(0xc000 | q.start, 0);
    rr.writeUInt16BE(r.type, 2);
    rr.writeUInt16BE(DNS_CLASS_IN, 4);
    rr.writeUInt32BE(ttl >>> 0, 6);
    rr.writeUInt16BE(r.data.length, 10);
    r.data.copy(rr, 12);
    return rr;
  });
  return Buffer.concat([h, query.subarray(q.start, q.end), ...rrs]);
}

/**
 * A response cut down to its header and the question (`q`, read from `query`, which
 * the response answers) with TC set, for a UDP client whose limit the full answer
 * exceeds (RFC 2181 9: the client retries over TCP).
 */
export function truncatedResponse(response: Buffer, query: Buffer, q: DnsQuestion): Buffer {
  const h = Buffer.from(response.subarray(0, DNS_HEADER_LENGTH));
  h.writeUInt16BE(h.readUInt16BE(F.flags) | FLAG_TC, F.flags);
  h.writeUInt16BE(1, F.qdcount);
  h.writeUInt16BE(0, F.ancount);
  h.writeUInt16BE(0, F.nscount);
  h.writeUInt16BE(0, F.arcount);
  return Buffer.concat([h, query.subarray(q.start, q.end)]);
}

/**
 * Why `response` is not the answer to `query`, or undefined when it is: it must be a
 * response with the query's ID and the same question. A header-only error response
 * (no question, rcode not NOERROR) matches by ID alone: that is how servers answer a
 * query they could not parse.
 */
export function responseMismatch(response: Buffer, query: Buffer): string | undefined {
  const h = readHeader(response);
  if (!h.ok) return "short";
  if (!h.value.qr) return "not-a-response";
  if (h.value.id !== messageId(query)) return "wrong-id";
  if (h.value.qdcount === 0 && h.value.rcode !== DnsRcode.NOERROR) return undefined;
  return sameQuestion(response, query) ? undefined : "wrong-question";
}
