import { fc, test as fcTest } from "@fast-check/vitest";
import * as dnsPacket from "dns-packet";
import { describe, expect, it } from "vitest";
import { silentLogger } from "../../../../src/log.js";
import { DnsForwarder, type DnsTimers } from "../../../../src/services/dns/dns-forwarder.js";
import { LocalNames } from "../../../../src/services/dns/local-names.js";
import {
  type DnsServerAddress,
  type DnsTransport,
  type DnsUpstream,
  DnsUpstreamError,
} from "../../../../src/services/dns/upstream.js";
import type { Clock } from "../../../../src/stack/clock.js";
import { parseIpv6 } from "../../../../src/stack/wire/ipv6-addr.js";

const flush = () => new Promise<void>((r) => setImmediate(r));

/** A clock and timers in one, moved by hand. */
class FakeTime implements Clock, DnsTimers {
  t = 0;
  private timers: Array<{ at: number; fn: () => void }> = [];
  now(): number {
    return this.t;
  }
  set(fn: () => void, ms: number): () => void {
    const e = { at: this.t + ms, fn };
    this.timers.push(e);
    return () => {
      this.timers = this.timers.filter((x) => x !== e);
    };
  }
  get pending(): number {
    return this.timers.length;
  }
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (let i = 0; i < 1000; i++) {
      await flush();
      const next = this.timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!next) break;
      this.timers = this.timers.filter((x) => x !== next);
      this.t = next.at;
      next.fn();
    }
    this.t = end;
    await flush();
  }
}

interface Call {
  packet: Buffer;
  server: string;
  transport: DnsTransport;
  timeoutMs: number;
  at: number;
}

type Behaviour = (packet: Buffer, server: string, transport: DnsTransport) => Promise<Buffer>;

class FakeUpstream implements DnsUpstream {
  calls: Call[] = [];
  constructor(
    private readonly time: FakeTime,
    public behave: Behaviour,
  ) {}
  query(
    packet: Buffer,
    server: DnsServerAddress,
    transport: DnsTransport,
    timeoutMs: number,
  ): Promise<Buffer> {
    const name = `${server.host}:${server.port}`;
    this.calls.push({ packet: Buffer.from(packet), server: name, transport, timeoutMs, at: this.time.now() });
    return this.behave(packet, name, transport);
  }
}

const hang = (): Promise<Buffer> => new Promise(() => {});
const refuse = (): Promise<Buffer> => Promise.reject(new DnsUpstreamError("connection-refused"));

/** A real answer to `packet`: its ID and question, the given records and flags. */
function answer(
  packet: Buffer,
  answers: dnsPacket.Answer[] = [{ type: "A", name: "x", data: "192.0.2.7" }],
  extra: { flags?: number; rcode?: number } = {},
): Buffer {
  const q = dnsPacket.decode(packet);
  return dnsPacket.encode({
    type: "response",
    id: q.id,
    flags:
      (extra.flags ?? 0) | (extra.rcode ?? 0) | dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: q.questions,
    answers: answers.map((a) => ({ ...a, name: q.questions?.[0]?.name ?? "x" })),
  } as dnsPacket.Packet);
}

const manyA = (n: number): dnsPacket.Answer[] =>
  Array.from({ length: n }, (_, i) => ({ type: "A" as const, name: "x", data: `192.0.2.${i % 250}` }));

function query(name: string, type: dnsPacket.RecordType = "A", id = 0x1111, udpPayloadSize?: number): Buffer {
  return dnsPacket.encode({
    type: "query",
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name }],
    ...(udpPayloadSize === undefined
      ? {}
      : { additionals: [{ type: "OPT", name: ".", udpPayloadSize, flags: 0, options: [] }] }),
  } as dnsPacket.Packet);
}

const servers = ["192.0.2.1", "192.0.2.2", "192.0.2.3"].map((host) => ({ host, port: 53 }));

function setup(
  behave: Behaviour = (p) => Promise.resolve(answer(p)),
  opts: { ids?: number[]; dns64?: string } = {},
) {
  const time = new FakeTime();
  const upstream = new FakeUpstream(time, behave);
  const localNames = new LocalNames([["host.usernet.internal", "10.0.2.2"]]);
  let n = 0;
  const ids = opts.ids;
  const fwd = new DnsForwarder({
    upstream,
    servers,
    logger: silentLogger,
    localNames,
    clock: time,
    timers: time,
    ...(ids === undefined ? {} : { randomId: () => ids[n++ % ids.length] ?? 0 }),
    ...(opts.dns64 === undefined ? {} : { dns64: { prefix: parseIpv6(opts.dns64) as Buffer } }),
  });
  return { time, upstream, fwd, localNames };
}

/** Runs `handle` to completion on fake time; returns the answer and when it came. */
async function run(
  s: ReturnType<typeof setup>,
  q: Buffer,
  transport: DnsTransport = "udp",
  budget = 10_000,
): Promise<{ reply: Buffer | undefined; at: number }> {
  let out: { reply: Buffer | undefined; at: number } | undefined;
  void s.fwd.handle(q, transport).then((reply) => {
    out = { reply, at: s.time.now() };
  });
  for (let i = 0; i < budget / 100 && out === undefined; i++) await s.time.advance(100);
  if (out === undefined) throw new Error("no answer within the budget");
  return out;
}

/** dns-packet decodes the rcode too; its type declarations leave it out. */
const decoded = (b: Buffer | undefined): dnsPacket.DecodedPacket & { rcode?: string } => {
  if (b === undefined) throw new Error("no reply");
  return dnsPacket.decode(b);
};

describe("forwarding", () => {
  it("sends a fresh ID upstream and gives the guest its own back", async () => {
    const s = setup(undefined, { ids: [0xabcd] });
    const q = query("example.com", "A", 0x1111);
    const { reply, at } = await run(s, q);
    expect(at).toBe(0);
    expect(s.upstream.calls).toHaveLength(1);
    const sent = s.upstream.calls[0] as Call;
    expect(sent.server).toBe("192.0.2.1:53");
    expect(sent.transport).toBe("udp");
    expect(sent.timeoutMs).toBe(2000);
    expect(sent.packet.readUInt16BE(0)).toBe(0xabcd);
    // the rest of the guest's bytes go out unchanged
    expect(sent.packet.subarray(2)).toEqual(q.subarray(2));
    expect(q.readUInt16BE(0)).toBe(0x1111); // the guest's buffer is not touched
    const r = decoded(reply);
    expect(r.id).toBe(0x1111);
    expect(r.answers?.[0]).toMatchObject({ type: "A", data: "192.0.2.7" });
    expect(s.fwd.stats()).toMatchObject({ queries: 1, forwarded: 1, answered: 1, servfail: 0, inflight: 0 });
  });

  it("draws IDs at random by default", async () => {
    const time = new FakeTime();
    const upstream = new FakeUpstream(time, (p) => Promise.resolve(answer(p)));
    const fwd = new DnsForwarder({ upstream, servers, logger: silentLogger, clock: time, timers: time });
    for (let i = 0; i < 20; i++) {
      const reply = await fwd.handle(query(`n${i}.example.com`, "A", 0), "udp");
      expect(reply?.readUInt16BE(0)).toBe(0);
    }
    const ids = new Set(upstream.calls.map((c) => c.packet.readUInt16BE(0)));
    expect(ids.size).toBeGreaterThan(10);
  });

  it("keeps EDNS0 and other bytes of the guest's query", async () => {
    const s = setup();
    const q = query("example.com", "TXT", 5, 1232);
    await run(s, q);
    const sent = dnsPacket.decode(s.upstream.calls[0]?.packet as Buffer);
    expect(sent.additionals?.[0]).toMatchObject({ type: "OPT", udpPayloadSize: 1232 });
  });

  it("fails over in order: an error at once, a silent server after 2 s", async () => {
    const s = setup((p, server) =>
      server.startsWith("192.0.2.1")
        ? refuse()
        : server.startsWith("192.0.2.2")
          ? hang()
          : Promise.resolve(answer(p)),
    );
    const { reply, at } = await run(s, query("example.com"));
    expect(s.upstream.calls.map((c) => [c.server, c.at])).toEqual([
      ["192.0.2.1:53", 0],
      ["192.0.2.2:53", 0],
      ["192.0.2.3:53", 2000],
    ]);
    expect(at).toBe(2000);
    expect(decoded(reply).answers).toHaveLength(1);
    expect(s.fwd.stats().upstreamFailures).toEqual({ "connection-refused": 1, timeout: 1 });
    expect(s.time.pending).toBe(0); // no timer left behind
  });

  it("prefers the server that answered last, for a while", async () => {
    let firstUp = false;
    const s = setup((p, server) =>
      server.startsWith("192.0.2.3") || (firstUp && server.startsWith("192.0.2.1"))
        ? Promise.resolve(answer(p))
        : refuse(),
    );
    await run(s, query("a.example.com"));
    expect(s.upstream.calls.map((c) => c.server)).toEqual(["192.0.2.1:53", "192.0.2.2:53", "192.0.2.3:53"]);
    firstUp = true;
    s.upstream.calls = [];
    await run(s, query("b.example.com"));
    expect(s.upstream.calls.map((c) => c.server)).toEqual(["192.0.2.3:53"]);
    await s.time.advance(60_000);
    s.upstream.calls = [];
    await run(s, query("c.example.com"));
    expect(s.upstream.calls.map((c) => c.server)).toEqual(["192.0.2.1:53"]);
  });

  it("forgets the preferred server when it fails", async () => {
    let third = true;
    const s = setup((p, server) =>
      server.startsWith("192.0.2.3") ? (third ? Promise.resolve(answer(p)) : refuse()) : refuse(),
    );
    await run(s, query("a.example.com"));
    third = false;
    s.upstream.calls = [];
    await run(s, query("b.example.com"));
    expect(s.upstream.calls.map((c) => c.server)).toEqual(["192.0.2.3:53", "192.0.2.1:53", "192.0.2.2:53"]);
    s.upstream.calls = [];
    await run(s, query("c.example.com"));
    expect(s.upstream.calls.map((c) => c.server)).toEqual(["192.0.2.1:53", "192.0.2.2:53", "192.0.2.3:53"]);
  });

  it("answers SERVFAIL with the guest's ID and question when all fail, within 5 s", async () => {
    const s = setup(() => hang());
    const q = query("Slow.Example.com", "MX", 0x2222);
    const { reply, at } = await run(s, q);
    expect(at).toBe(5000);
    expect(s.upstream.calls.map((c) => [c.server, c.at, c.timeoutMs])).toEqual([
      ["192.0.2.1:53", 0, 2000],
      ["192.0.2.2:53", 2000, 2000],
      ["192.0.2.3:53", 4000, 1000],
    ]);
    const r = decoded(reply);
    expect(r).toMatchObject({ id: 0x2222, type: "response", rcode: "SERVFAIL", answers: [] });
    expect(r.questions).toEqual([{ name: "Slow.Example.com", type: "MX", class: "IN" }]);
    expect(s.fwd.stats()).toMatchObject({ servfail: 1, answered: 0, upstreamFailures: { timeout: 3 } });
  });

  it("answers SERVFAIL at once without servers, and after errors from all", async () => {
    const s = setup(() => refuse());
    const { reply, at } = await run(s, query("example.com"));
    expect(at).toBe(0);
    expect(decoded(reply).rcode).toBe("SERVFAIL");
    s.fwd.setServers([]);
    expect(s.fwd.getServers()).toEqual([]);
    s.upstream.calls = [];
    expect(decoded((await run(s, query("example.com"))).reply).rcode).toBe("SERVFAIL");
    expect(s.upstream.calls).toEqual([]);
  });

  it("moves on from an upstream SERVFAIL or REFUSED, and relays it when nobody does better", async () => {
    const s = setup((p, server) =>
      server.startsWith("192.0.2.1")
        ? Promise.resolve(answer(p, [], { rcode: 2 }))
        : server.startsWith("192.0.2.2")
          ? Promise.resolve(answer(p, [], { rcode: 5 }))
          : Promise.resolve(answer(p)),
    );
    expect(decoded((await run(s, query("example.com", "A", 9))).reply)).toMatchObject({
      id: 9,
      rcode: "NOERROR",
    });
    expect(s.upstream.calls).toHaveLength(3);
    s.upstream.behave = (p) => Promise.resolve(answer(p, [], { rcode: 5 }));
    s.fwd.setServers(servers); // forget the preference
    const r = decoded((await run(s, query("example.com", "A", 10))).reply);
    expect(r).toMatchObject({ id: 10, rcode: "REFUSED" });
    expect(s.fwd.stats().servfail).toBe(0);
    expect(s.fwd.stats().upstreamFailures).toMatchObject({ servfail: 1, refused: 4 });
  });

  it("treats a response that does not match as a failure", async () => {
    const s = setup((p, server) => {
      if (server.startsWith("192.0.2.1")) {
        const r = answer(p);
        r.writeUInt16BE(r.readUInt16BE(0) ^ 1, 0);
        return Promise.resolve(r);
      }
      if (server.startsWith("192.0.2.2"))
        return Promise.resolve(answer(query("other.example.com", "A", p.readUInt16BE(0))));
      return Promise.resolve(answer(p));
    });
    const r = decoded((await run(s, query("example.com", "A", 3))).reply);
    expect(r.id).toBe(3);
    expect(s.fwd.stats().upstreamFailures).toEqual({ "wrong-id": 1, "wrong-question": 1 });
  });

  it("bounds a try even when the upstream ignores its timeout", async () => {
    const s = setup(() => hang());
    s.fwd.setServers([servers[0] as DnsServerAddress]);
    const { reply, at } = await run(s, query("example.com"));
    expect(at).toBe(2000);
    expect(decoded(reply).rcode).toBe("SERVFAIL");
  });

  it("survives an upstream that throws instead of rejecting", async () => {
    const s = setup(() => {
      throw new Error("boom");
    });
    expect(decoded((await run(s, query("example.com"))).reply).rcode).toBe("SERVFAIL");
    expect(s.fwd.stats().upstreamFailures).toEqual({ error: 3 });
  });

  it("drops queries beyond the in-flight bound", async () => {
    const time = new FakeTime();
    const upstream = new FakeUpstream(time, () => hang());
    const fwd = new DnsForwarder({
      upstream,
      servers,
      logger: silentLogger,
      localNames: new LocalNames([["host.usernet.internal", "10.0.2.2"]]),
      clock: time,
      timers: time,
      maxInflight: 2,
    });
    const a = fwd.handle(query("a.example.com"), "udp");
    const b = fwd.handle(query("b.example.com"), "udp");
    expect(await fwd.handle(query("c.example.com"), "udp")).toBeUndefined();
    expect(fwd.stats()).toMatchObject({ inflight: 2, dropped: { "too-many-queries": 1 } });
    // local names still work when upstream is saturated
    expect(await fwd.handle(query("host.usernet.internal"), "udp")).toBeDefined();
    await time.advance(6000);
    expect(decoded(await a).rcode).toBe("SERVFAIL");
    expect(decoded(await b).rcode).toBe("SERVFAIL");
    expect(fwd.stats().inflight).toBe(0);
  });

  it("drops a guest's queries beyond its own bound and still forwards another guest's", async () => {
    const time = new FakeTime();
    const upstream = new FakeUpstream(time, () => hang());
    const fwd = new DnsForwarder({
      upstream,
      servers,
      logger: silentLogger,
      clock: time,
      timers: time,
      maxInflight: 8,
      maxInflightPerGuest: 2,
    });
    const a = fwd.handle(query("a.example.com"), "udp", 15);
    const b = fwd.handle(query("b.example.com"), "udp", 15);
    expect(await fwd.handle(query("c.example.com"), "udp", 15)).toBeUndefined();
    expect(fwd.stats()).toMatchObject({ inflight: 2, dropped: { "too-many-queries-per-guest": 1 } });
    const other = fwd.handle(query("d.example.com"), "udp", 16);
    expect(fwd.stats().inflight).toBe(3);
    expect(fwd.limits).toEqual({ maxInflight: 8, maxInflightPerGuest: 2 });
    await time.advance(6000);
    for (const p of [a, b, other]) expect(decoded(await p).rcode).toBe("SERVFAIL");
    // answered queries give the guest its room back
    const again = fwd.handle(query("e.example.com"), "udp", 15);
    expect(fwd.stats().inflight).toBe(1);
    await time.advance(6000);
    expect(decoded(await again).rcode).toBe("SERVFAIL");
  });
});

describe("sizes and TCP", () => {
  it("asks the same server again over TCP when the UDP answer is truncated", async () => {
    const s = setup((p, _server, transport) =>
      Promise.resolve(
        transport === "udp" ? answer(p, [], { flags: dnsPacket.TRUNCATED_RESPONSE }) : answer(p, manyA(10)),
      ),
    );
    const { reply } = await run(s, query("example.com", "A", 77));
    expect(s.upstream.calls.map((c) => [c.server, c.transport])).toEqual([
      ["192.0.2.1:53", "udp"],
      ["192.0.2.1:53", "tcp"],
    ]);
    const r = decoded(reply);
    expect(r).toMatchObject({ id: 77, flag_tc: false });
    expect(r.answers).toHaveLength(10);
    expect(s.fwd.stats()).toMatchObject({ tcpRetries: 1, truncated: 0 });
  });

  it("cuts a TCP answer to the question with TC when it exceeds the guest's 512", async () => {
    const s = setup((p, _s, transport) =>
      Promise.resolve(
        transport === "udp" ? answer(p, [], { flags: dnsPacket.TRUNCATED_RESPONSE }) : answer(p, manyA(60)),
      ),
    );
    const { reply } = await run(s, query("Big.example.com", "A", 78));
    expect(reply?.length).toBeLessThanOrEqual(512);
    const r = decoded(reply);
    expect(r).toMatchObject({ id: 78, flag_tc: true, answers: [] });
    expect(r.questions).toEqual([{ name: "Big.example.com", type: "A", class: "IN" }]);
    expect(s.fwd.stats().truncated).toBe(1);
  });

  it("gives the whole TCP answer when the guest's EDNS0 size allows it", async () => {
    const s = setup((p, _s, transport) =>
      Promise.resolve(
        transport === "udp" ? answer(p, [], { flags: dnsPacket.TRUNCATED_RESPONSE }) : answer(p, manyA(60)),
      ),
    );
    const { reply } = await run(s, query("big.example.com", "A", 79, 4096));
    expect(reply?.length).toBeGreaterThan(512);
    expect(decoded(reply).answers).toHaveLength(60);
  });

  it("relays the truncated UDP answer when the TCP retry fails", async () => {
    const s = setup((p, _s, transport) =>
      transport === "udp"
        ? Promise.resolve(answer(p, manyA(2), { flags: dnsPacket.TRUNCATED_RESPONSE }))
        : refuse(),
    );
    const r = decoded((await run(s, query("example.com", "A", 80))).reply);
    expect(r).toMatchObject({ id: 80, flag_tc: true });
    expect(s.upstream.calls).toHaveLength(2);
    expect(s.fwd.stats().upstreamFailures).toEqual({ "tcp-retry-connection-refused": 1 });
  });

  it("relays large UDP answers as they are", async () => {
    const s = setup((p) => Promise.resolve(answer(p, manyA(60))));
    const { reply } = await run(s, query("example.com", "A", 81));
    expect(reply?.length).toBeGreaterThan(512);
    expect(decoded(reply).answers).toHaveLength(60);
    expect(s.fwd.stats().tcpRetries).toBe(0);
  });

  it("forwards TCP queries over TCP and never truncates them", async () => {
    const s = setup((p) => Promise.resolve(answer(p, manyA(60))));
    const { reply } = await run(s, query("example.com", "A", 82), "tcp");
    expect(s.upstream.calls.map((c) => c.transport)).toEqual(["tcp"]);
    expect(decoded(reply)).toMatchObject({ id: 82, flag_tc: false });
    expect(decoded(reply).answers).toHaveLength(60);
  });
});

describe("local names", () => {
  it("answers A records itself, in any case, echoing the question as asked", async () => {
    const s = setup();
    const r = decoded((await run(s, query("HoSt.UsErNeT.InTeRnAl", "A", 0x4444))).reply);
    expect(r).toMatchObject({ id: 0x4444, rcode: "NOERROR", flag_aa: true, flag_rd: true });
    expect(r.questions).toEqual([{ name: "HoSt.UsErNeT.InTeRnAl", type: "A", class: "IN" }]);
    expect(r.answers).toEqual([expect.objectContaining({ type: "A", data: "10.0.2.2", ttl: 60 })]);
    expect(s.upstream.calls).toEqual([]);
    expect(s.fwd.stats()).toMatchObject({ localAnswers: 1, forwarded: 0 });
  });

  it("answers other types empty, without upstream", async () => {
    const s = setup();
    for (const type of ["AAAA", "MX", "TXT"] as const) {
      const r = decoded((await run(s, query("host.usernet.internal", type, 5))).reply);
      expect(r).toMatchObject({ id: 5, rcode: "NOERROR", answers: [] });
      expect(r.questions?.[0]?.type).toBe(type);
    }
    expect(s.upstream.calls).toEqual([]);
  });

  it("answers AAAA (and ANY with both) for names with an IPv6 address", async () => {
    const s = setup();
    s.localNames.set6("host.usernet.internal", "fec0::2");
    const r = decoded((await run(s, query("Host.usernet.internal", "AAAA", 9))).reply);
    expect(r).toMatchObject({ id: 9, rcode: "NOERROR", flag_aa: true });
    expect(r.answers).toEqual([expect.objectContaining({ type: "AAAA", data: "fec0::2", ttl: 60 })]);
    const any = decoded(
      (await run(s, query("host.usernet.internal", "ANY" as dnsPacket.RecordType, 10))).reply,
    );
    expect(any.answers?.map((a) => (a as { data?: unknown }).data)).toEqual(["10.0.2.2", "fec0::2"]);
    // a name with only an IPv6 address is local too: A is answered empty
    s.localNames.set6("v6only.usernet.internal", "fec0::99");
    expect(decoded((await run(s, query("v6only.usernet.internal", "A", 11))).reply)).toMatchObject({
      answers: [],
    });
    expect(s.upstream.calls).toEqual([]);
  });

  it("follows changes to the table at run time", async () => {
    const s = setup();
    s.localNames.set("Guest1", "10.0.2.15");
    expect(decoded((await run(s, query("guest1"))).reply).answers?.[0]).toMatchObject({ data: "10.0.2.15" });
    s.localNames.delete("guest1");
    await run(s, query("guest1"));
    expect(s.upstream.calls).toHaveLength(1);
  });

  it("does not match a single label that holds dots", async () => {
    const s = setup();
    const q = query("x", "A", 6);
    const label = Buffer.from("host.usernet.internal");
    const odd = Buffer.concat([
      q.subarray(0, 12),
      Buffer.from([label.length]),
      label,
      Buffer.from([0, 0, 1, 0, 1]),
    ]);
    await run(s, odd);
    expect(s.fwd.stats().localAnswers).toBe(0);
    expect(s.upstream.calls[0]?.packet.subarray(2)).toEqual(odd.subarray(2));
  });
});

describe("malformed queries", () => {
  it("answers nothing to less than a header, or to a response", async () => {
    const s = setup();
    expect((await run(s, Buffer.alloc(11))).reply).toBeUndefined();
    expect((await run(s, answer(query("example.com")))).reply).toBeUndefined();
    expect(s.fwd.stats().dropped).toEqual({ "query-short": 1, "query-is-response": 1 });
  });

  it("answers NOTIMP to other opcodes", async () => {
    const s = setup();
    const q = query("example.com", "A", 12);
    q.writeUInt16BE(q.readUInt16BE(2) | (2 << 11), 2); // STATUS
    const r = decoded((await run(s, q)).reply);
    expect(r).toMatchObject({ id: 12, rcode: "NOTIMP", opcode: "STATUS" });
    expect(s.fwd.stats().notimp).toBe(1);
  });

  it("answers FORMERR with the guest's ID to unreadable questions", async () => {
    const s = setup();
    const q = query("example.com", "A", 13);
    const cases = [
      q.subarray(0, 12), // no question although QDCOUNT is 1
      q.subarray(0, q.length - 2), // cut in QCLASS
      Buffer.concat([q.subarray(0, 12), Buffer.from([0x40, 0x61])]), // label length 64
      (() => {
        const two = Buffer.from(q);
        two.writeUInt16BE(2, 4);
        return two;
      })(),
      (() => {
        const extra = Buffer.from(q);
        extra.writeUInt16BE(1, 6); // says one answer follows, none does
        return extra;
      })(),
    ];
    for (const c of cases) {
      const reply = (await run(s, c)).reply;
      expect(reply?.length).toBe(12);
      expect(decoded(reply)).toMatchObject({ id: 13, rcode: "FORMERR", type: "response" });
    }
    expect(s.fwd.stats().formerr).toBe(cases.length);
    expect(s.upstream.calls).toEqual([]);
  });
});

describe("properties", () => {
  /** An upstream that answers every query at once with its ID and question. */
  const echo: Behaviour = (p) => {
    const r = Buffer.from(p);
    r.writeUInt16BE(r.readUInt16BE(2) | 0x8000, 2);
    return Promise.resolve(r);
  };

  const checkIdAndNoBug = (fwd: DnsForwarder, input: Buffer, reply: Buffer | undefined) => {
    if (reply !== undefined) {
      expect(reply.length).toBeGreaterThanOrEqual(12);
      expect(reply.readUInt16BE(0)).toBe(input.readUInt16BE(0));
      expect(reply.readUInt16BE(2) & 0x8000).toBe(0x8000);
    }
    expect(fwd.stats().dropped["internal-error"]).toBeUndefined();
  };

  fcTest.prop([fc.uint8Array({ maxLength: 600 }), fc.constantFrom<DnsTransport>("udp", "tcp")])(
    "random bytes never throw and keep the guest's ID",
    async (bytes, transport) => {
      const s = setup(echo);
      const input = Buffer.from(bytes);
      const reply = await s.fwd.handle(input, transport);
      checkIdAndNoBug(s.fwd, input, reply);
    },
  );

  const validQuery = fc
    .record({
      id: fc.integer({ min: 0, max: 0xffff }),
      labels: fc.array(fc.stringMatching(/^[a-zA-Z0-9-]{1,12}$/), { minLength: 1, maxLength: 4 }),
      type: fc.constantFrom<dnsPacket.RecordType>("A", "AAAA", "MX", "TXT", "PTR", "SRV"),
      edns: fc.option(fc.integer({ min: 0, max: 0xffff }), { nil: undefined }),
      local: fc.boolean(),
    })
    .map(({ id, labels, type, edns, local }) =>
      query(local ? "Host.usernet.internal" : labels.join("."), type, id, edns),
    );

  fcTest.prop([
    validQuery,
    fc.array(fc.record({ at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }), { maxLength: 6 }),
    fc.nat({ max: 40 }),
  ])("mutated queries never throw and keep the guest's ID", async (q, flips, cut) => {
    const s = setup(echo);
    const input = Buffer.from(q.subarray(0, Math.max(0, q.length - cut)));
    for (const { at, byte } of flips) if (input.length > 0) input[at % input.length] = byte;
    const reply = await s.fwd.handle(input, "udp");
    checkIdAndNoBug(s.fwd, input, reply);
  });

  fcTest.prop([validQuery])("valid queries are always answered", async (q) => {
    const s = setup(echo);
    const reply = await s.fwd.handle(q, "udp");
    expect(reply).toBeDefined();
    checkIdAndNoBug(s.fwd, q, reply);
    expect(s.fwd.stats().formerr).toBe(0);
  });
});

describe("DNS64", () => {
  /** An upstream where "v4only" has A records only, "dual" both, "nx" does not exist. */
  const upstream: Behaviour = (p) => {
    const q = dnsPacket.decode(p).questions?.[0];
    const name = q?.name ?? "";
    if (name.startsWith("nx")) return Promise.resolve(answer(p, [], { rcode: 3 }));
    if (q?.type === "A")
      return Promise.resolve(answer(p, [{ type: "A", name: "x", data: "198.51.100.7", ttl: 30 }]));
    if (name.startsWith("dual"))
      return Promise.resolve(answer(p, [{ type: "AAAA", name: "x", data: "2001:db8::7" }]));
    return Promise.resolve(answer(p, []));
  };

  it("synthesizes AAAA from A under the prefix for a name without AAAA", async () => {
    const s = setup(upstream, { dns64: "64:ff9b::" });
    const q = query("V4only.example", "AAAA", 0x77);
    const r = decoded((await run(s, q)).reply);
    expect(r).toMatchObject({ id: 0x77, rcode: "NOERROR", flag_rd: true, flag_ra: true });
    expect(r.questions).toEqual([{ name: "V4only.example", type: "AAAA", class: "IN" }]);
    expect(r.answers).toEqual([
      expect.objectContaining({ type: "AAAA", data: "64:ff9b::c633:6407", ttl: 30 }),
    ]);
    expect(s.upstream.calls.map((c) => dnsPacket.decode(c.packet).questions?.[0]?.type)).toEqual([
      "AAAA",
      "A",
    ]);
    expect(s.fwd.stats().dns64).toBe(1);
  });

  it("leaves real AAAA answers, NXDOMAIN and local names alone, and does nothing when off", async () => {
    const s = setup(upstream, { dns64: "64:ff9b::" });
    expect(decoded((await run(s, query("dual.example", "AAAA"))).reply).answers?.[0]).toMatchObject({
      data: "2001:db8::7",
    });
    expect(decoded((await run(s, query("nx.example", "AAAA"))).reply).rcode).toBe("NXDOMAIN");
    expect(decoded((await run(s, query("host.usernet.internal", "AAAA"))).reply).answers).toEqual([]);
    expect(s.upstream.calls).toHaveLength(2);
    const off = setup(upstream);
    expect(decoded((await run(off, query("v4only.example", "AAAA"))).reply).answers).toEqual([]);
    expect(off.upstream.calls).toHaveLength(1);
    expect(s.fwd.stats().dns64).toBe(0);
  });
});
