import { fc, test } from "@fast-check/vitest";
import { decode, encode, RECURSION_AVAILABLE, RECURSION_DESIRED } from "dns-packet";
import { describe, expect, it, vi } from "vitest";
import { silentLogger } from "../../../src/log.js";
import { dnsOverTcp } from "../../../src/proxy/dns-tcp.js";
import { type LocalStreamPeer, LocalTcpService } from "../../../src/proxy/local-tcp-service.js";
import { DnsForwarder } from "../../../src/services/dns/dns-forwarder.js";
import { LocalNames } from "../../../src/services/dns/local-names.js";
import { FakeGuestTcp } from "./fake-guest-tcp.js";

const framed = (m: Buffer) => {
  const b = Buffer.alloc(2 + m.length);
  b.writeUInt16BE(m.length, 0);
  m.copy(b, 2);
  return b;
};

/** splits a framed stream back into messages */
function unframe(stream: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at + 2 <= stream.length) {
    const len = stream.readUInt16BE(at);
    out.push(stream.subarray(at + 2, at + 2 + len));
    at += 2 + len;
  }
  expect(at).toBe(stream.length);
  return out;
}

/** a resolver the test answers by hand */
function manualResolver() {
  const calls: { query: Buffer; answer: (a: Buffer | undefined) => void }[] = [];
  return {
    calls,
    resolve: (query: Buffer) =>
      new Promise<Buffer | undefined>((r) => {
        calls.push({ query: Buffer.from(query), answer: r });
      }),
  };
}

function connect(
  resolve: (q: Buffer, peer: LocalStreamPeer) => Promise<Buffer | undefined>,
  maxInflight?: number,
  room?: number,
) {
  const svc = new LocalTcpService(
    { name: "dns-tcp", open: dnsOverTcp({ resolve, maxInflight }) },
    silentLogger,
  );
  const c = new FakeGuestTcp(0x0a000203, 53, room);
  svc.event(c, { type: "connect-request" });
  svc.event(c, { type: "established" });
  return { svc, c };
}

const flush = () => new Promise((r) => setImmediate(r));

describe("DNS over TCP", () => {
  it("answers each length-prefixed query, length-prefixed, and closes after guest EOF", async () => {
    const r = manualResolver();
    const { svc, c } = connect(r.resolve);
    const q1 = Buffer.from("query-one");
    const q2 = Buffer.from("q2");
    svc.event(c, { type: "data", data: Buffer.concat([framed(q1), framed(q2)]) });
    expect(r.calls.map((x) => x.query.toString())).toEqual(["query-one", "q2"]);
    expect(c.consumed).toBe(2 + q1.length + 2 + q2.length);
    svc.event(c, { type: "eof" });
    r.calls[1]?.answer(Buffer.from("answer-two"));
    await flush();
    expect(c.shutdowns).toBe(0); // one answer still pending
    r.calls[0]?.answer(Buffer.from("answer-one"));
    await flush();
    // answers go out as they come (RFC 7766 allows any order)
    expect(unframe(c.output()).map(String)).toEqual(["answer-two", "answer-one"]);
    expect(c.shutdowns).toBe(1);
  });

  it("tells the resolver which guest connection a query came on", async () => {
    const peers: number[] = [];
    const { svc, c } = connect(async (_q, peer) => {
      peers.push(peer.guestAddr);
      return undefined;
    });
    svc.event(c, { type: "data", data: framed(Buffer.from("q")) });
    await flush();
    expect(peers).toEqual([c.guestAddr]);
  });

  it("sends nothing for a query without an answer, and keeps serving", async () => {
    const answers = [undefined, Buffer.from("ok")];
    const { svc, c } = connect(async () => answers.shift());
    svc.event(c, {
      type: "data",
      data: Buffer.concat([framed(Buffer.from("bad")), framed(Buffer.from("good"))]),
    });
    await flush();
    expect(unframe(c.output()).map(String)).toEqual(["ok"]);
  });

  it("stops reading at maxInflight queries: the guest's window stays closed until answers come", async () => {
    const r = manualResolver();
    const { svc, c } = connect(r.resolve, 2);
    const qs = ["a", "b", "c", "d"].map((s) => framed(Buffer.from(s)));
    svc.event(c, { type: "data", data: Buffer.concat(qs) });
    expect(r.calls.length).toBe(2);
    expect(c.consumed).toBe(0);
    r.calls[0]?.answer(Buffer.from("A"));
    await flush();
    expect(r.calls.length).toBe(3);
    expect(c.consumed).toBe(0);
    r.calls[1]?.answer(Buffer.from("B"));
    await flush();
    expect(r.calls.length).toBe(4);
    expect(c.consumed).toBe(0);
    r.calls[2]?.answer(Buffer.from("C"));
    await flush();
    expect(c.consumed).toBe(12);
  });

  it("starts no query while the guest is not taking answers", async () => {
    const r = manualResolver();
    const { svc, c } = connect(r.resolve, 16, 3);
    svc.event(c, { type: "data", data: framed(Buffer.from("one")) });
    r.calls[0]?.answer(Buffer.from("a long answer"));
    await flush();
    svc.event(c, { type: "data", data: framed(Buffer.from("two")) });
    expect(r.calls.length).toBe(1);
    c.room = 1000;
    svc.event(c, { type: "writable" });
    expect(r.calls.length).toBe(2);
    expect(unframe(c.output()).map(String)).toEqual(["a long answer"]);
  });

  it("drops a partial message at EOF and ignores answers after the connection is gone", async () => {
    const r = manualResolver();
    const { svc, c } = connect(r.resolve);
    svc.event(c, { type: "data", data: framed(Buffer.from("whole")) });
    svc.event(c, { type: "data", data: Buffer.from([0, 10, 1, 2]) });
    svc.event(c, { type: "reset", reason: "guest" });
    r.calls[0]?.answer(Buffer.from("late"));
    await flush();
    expect(c.output().length).toBe(0);

    const r2 = manualResolver();
    const { svc: svc2, c: c2 } = connect(r2.resolve);
    svc2.event(c2, { type: "data", data: Buffer.from([0, 10, 1, 2]) });
    svc2.event(c2, { type: "eof" });
    expect(r2.calls.length).toBe(0);
    expect(c2.shutdowns).toBe(1);
  });

  test.prop([
    fc.array(fc.uint8Array({ minLength: 0, maxLength: 300 }), { minLength: 1, maxLength: 8 }),
    fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 20 }),
  ])("any split of the stream gives the same queries and answers", async (messages, cuts) => {
    const seen: string[] = [];
    const { svc, c } = connect(async (q) => {
      seen.push(q.toString("hex"));
      return Buffer.concat([Buffer.from("re:"), q]);
    });
    const stream = Buffer.concat(messages.map((m) => framed(Buffer.from(m))));
    let at = 0;
    let i = 0;
    while (at < stream.length) {
      const n = cuts[i++ % cuts.length] ?? 1;
      svc.event(c, { type: "data", data: stream.subarray(at, at + n) });
      at += n;
    }
    svc.event(c, { type: "eof" });
    for (let n = 0; n < 10 && c.shutdowns === 0; n++) await flush();
    expect(c.shutdowns).toBe(1);
    expect(seen).toEqual(messages.map((m) => Buffer.from(m).toString("hex")));
    expect(
      unframe(c.output())
        .map((a) => a.toString("hex"))
        .sort(),
    ).toEqual(
      messages.map((m) => Buffer.concat([Buffer.from("re:"), Buffer.from(m)]).toString("hex")).sort(),
    );
    expect(c.consumed).toBe(stream.length);
  });

  it("carries a real query to the forwarder over TCP, and upstream over TCP too", async () => {
    const transports: string[] = [];
    const upstream = {
      async query(packet: Buffer, _server: unknown, transport: string) {
        transports.push(transport);
        const q = decode(packet);
        return encode({
          type: "response",
          id: q.id,
          flags: RECURSION_DESIRED | RECURSION_AVAILABLE,
          questions: q.questions,
          answers: [{ type: "A", class: "IN", name: "www.example.test", ttl: 30, data: "192.0.2.10" }],
        });
      },
    };
    const localNames = new LocalNames();
    localNames.set("host.usernet.internal", 0x0a000202);
    const dns = new DnsForwarder({
      upstream,
      servers: [{ host: "127.0.0.1", port: 5353 }],
      logger: silentLogger,
      localNames,
    });
    const { svc, c } = connect((q) => dns.handle(q, "tcp"));
    const ask = (id: number, name: string) =>
      framed(encode({ type: "query", id, flags: RECURSION_DESIRED, questions: [{ type: "A", name }] }));
    svc.event(c, {
      type: "data",
      data: Buffer.concat([ask(7, "www.example.test"), ask(8, "host.usernet.internal")]),
    });
    await vi.waitFor(() => expect(unframe(c.output()).length).toBe(2));
    const answers = unframe(c.output()).map((a) => decode(a));
    const byId = new Map(answers.map((a) => [a.id, a]));
    expect(byId.get(7)?.answers?.[0]).toMatchObject({ type: "A", data: "192.0.2.10" });
    expect(byId.get(8)?.answers?.[0]).toMatchObject({ type: "A", data: "10.0.2.2" });
    expect(transports).toEqual(["tcp"]);
  });
});
