import { fc, test as fcTest } from "@fast-check/vitest";
import * as dnsPacket from "dns-packet";
import { describe, expect, it } from "vitest";
import {
  addressResponse,
  DnsRcode,
  emptyResponse,
  errorResponse,
  questionName,
  readHeader,
  readQuestion,
  responseMismatch,
  sameQuestion,
  truncatedResponse,
} from "../../../../src/services/dns/dns-message.js";

const query = (name: string, type: dnsPacket.RecordType = "A", id = 42): Buffer =>
  dnsPacket.encode({ type: "query", id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] });

const unwrap = <T>(r: { ok: true; value: T } | { ok: false; reason: string }): T => {
  if (!r.ok) throw new Error(r.reason);
  return r.value;
};

describe("readHeader / readQuestion", () => {
  it("reads the fields dns-packet wrote", () => {
    const q = query("Example.COM", "AAAA", 0xbeef);
    const h = unwrap(readHeader(q));
    expect(h).toMatchObject({
      id: 0xbeef,
      qr: false,
      opcode: 0,
      rd: true,
      tc: false,
      qdcount: 1,
      ancount: 0,
    });
    const qu = unwrap(readQuestion(q));
    expect(qu.qtype).toBe(28);
    expect(qu.qclass).toBe(1);
    expect(qu.end).toBe(q.length);
    expect(questionName(qu)).toBe("example.com");
  });

  it("refuses short headers and broken questions", () => {
    expect(readHeader(Buffer.alloc(11)).ok).toBe(false);
    const q = query("example.com");
    expect(readQuestion(q.subarray(0, q.length - 1))).toEqual({ ok: false, reason: "dns-question-short" });
    const bad = Buffer.from(q);
    bad[12] = 0xc0; // a compression pointer where the question starts
    expect(readQuestion(bad)).toEqual({ ok: false, reason: "dns-question-bad-label" });
  });

  it("gives no name for a label holding a dot", () => {
    const raw = Buffer.concat([
      query("x").subarray(0, 12),
      Buffer.from([3, 0x61, 0x2e, 0x62, 0, 0, 1, 0, 1]),
    ]);
    expect(questionName(unwrap(readQuestion(raw)))).toBeUndefined();
  });

  fcTest.prop([fc.uint8Array({ maxLength: 300 })])("never throws on any bytes", (bytes) => {
    const b = Buffer.from(bytes);
    readHeader(b);
    const q = readQuestion(b);
    if (q.ok) questionName(q.value);
    sameQuestion(b, b);
    responseMismatch(b, b);
  });
});

describe("matching", () => {
  it("compares names without case, types and classes exactly", () => {
    expect(sameQuestion(query("example.com"), query("eXaMpLe.CoM"))).toBe(true);
    expect(sameQuestion(query("example.com"), query("example.org"))).toBe(false);
    expect(sameQuestion(query("example.com", "A"), query("example.com", "AAAA"))).toBe(false);
    // type 65 (0x0041) and 97 (0x0061) differ only in the "case bit"
    const t65 = query("example.com");
    t65.writeUInt16BE(65, t65.length - 4);
    const t97 = Buffer.from(t65);
    t97.writeUInt16BE(97, t97.length - 4);
    expect(sameQuestion(t65, t97)).toBe(false);
  });

  it("wants a response with the query's ID and question", () => {
    const q = query("example.com", "A", 7);
    const r = (id: number, name: string) =>
      dnsPacket.encode({ type: "response", id, questions: [{ type: "A", name }] });
    expect(responseMismatch(r(7, "EXAMPLE.com"), q)).toBeUndefined();
    expect(responseMismatch(r(8, "example.com"), q)).toBe("wrong-id");
    expect(responseMismatch(r(7, "example.org"), q)).toBe("wrong-question");
    expect(responseMismatch(q, q)).toBe("not-a-response");
    expect(responseMismatch(Buffer.alloc(3), q)).toBe("short");
    // header-only FORMERR from a server matches by ID
    expect(responseMismatch(errorResponse(q, DnsRcode.FORMERR), q)).toBeUndefined();
  });
});

describe("responses we make", () => {
  it("answers one A record for the question as sent", () => {
    const q = query("Host.Usernet.Internal", "A", 99);
    const r = dnsPacket.decode(addressResponse(q, unwrap(readQuestion(q)), 0x0a000202, 60));
    expect(r.id).toBe(99);
    expect(r.type).toBe("response");
    expect(r.flag_aa).toBe(true);
    expect(r.flag_rd).toBe(true);
    expect(r.flag_ra).toBe(true);
    expect(r.questions).toEqual([{ name: "Host.Usernet.Internal", type: "A", class: "IN" }]);
    expect(r.answers).toEqual([
      expect.objectContaining({ name: "Host.Usernet.Internal", type: "A", ttl: 60, data: "10.0.2.2" }),
    ]);
  });

  it("makes empty, error and truncated responses", () => {
    const q = query("example.com", "MX", 5);
    const qu = unwrap(readQuestion(q));
    const e = dnsPacket.decode(emptyResponse(q, qu, DnsRcode.SERVFAIL));
    expect(e).toMatchObject({ id: 5, rcode: "SERVFAIL", answers: [] });
    expect(e.questions).toEqual([{ name: "example.com", type: "MX", class: "IN" }]);
    const f = errorResponse(q, DnsRcode.FORMERR);
    expect(f.length).toBe(12);
    expect(dnsPacket.decode(f)).toMatchObject({ id: 5, rcode: "FORMERR", questions: [] });

    const big = dnsPacket.encode({
      type: "response",
      id: 5,
      questions: [{ type: "MX", name: "example.com" }],
      answers: Array.from({ length: 40 }, (_, i) => ({
        type: "MX" as const,
        name: "example.com",
        data: { preference: i, exchange: `mx${i}.example.com` },
      })),
    });
    const t = truncatedResponse(big, q, qu);
    const d = dnsPacket.decode(t);
    expect(d.flag_tc).toBe(true);
    expect(d.id).toBe(5);
    expect(d.answers).toEqual([]);
    expect(d.questions).toEqual([{ name: "example.com", type: "MX", class: "IN" }]);
  });
});
