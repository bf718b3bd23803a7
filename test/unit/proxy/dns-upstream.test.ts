/**
 * The real upstream transport against small DNS servers started here on 127.0.0.1
 * (never a real resolver).
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createServer, type Server, type Socket } from "node:net";
import * as dnsPacket from "dns-packet";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../../../src/log.js";
import { HostDnsUpstream } from "../../../src/proxy/dns-upstream.js";
import { DnsForwarder } from "../../../src/services/dns/dns-forwarder.js";
import { DnsUpstreamError } from "../../../src/services/dns/upstream.js";

const LOOPBACK = "127.0.0.1";

function query(name: string, id: number, type: dnsPacket.RecordType = "A"): Buffer {
  return dnsPacket.encode({
    type: "query",
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name }],
  });
}

/** An answer to `q` with `n` A records; `id` and `name` overridable to make mismatches. */
function answer(q: Buffer, n = 1, over: { id?: number; name?: string } = {}): Buffer {
  const d = dnsPacket.decode(q);
  const question = d.questions?.[0] ?? { type: "A" as const, name: "x" };
  const name = over.name ?? question.name;
  return dnsPacket.encode({
    type: "response",
    id: over.id ?? d.id ?? 0,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: [{ ...question, name }],
    answers: Array.from({ length: n }, (_, i) => ({
      type: "A" as const,
      name,
      data: `192.0.2.${(i % 250) + 1}`,
    })),
  });
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

type UdpHandler = (msg: Buffer, reply: (b: Buffer) => void) => void;

async function udpServer(
  handle: UdpHandler,
  host = LOOPBACK,
): Promise<{ port: number; received: Buffer[]; sources: number[] }> {
  const sock: UdpSocket = createSocket(host.includes(":") ? "udp6" : "udp4");
  const received: Buffer[] = [];
  const sources: number[] = [];
  sock.on("message", (msg, rinfo) => {
    received.push(msg);
    sources.push(rinfo.port);
    handle(msg, (b) => sock.send(b, rinfo.port, rinfo.address));
  });
  await new Promise<void>((r) => sock.bind(0, host, () => r()));
  cleanups.push(() => new Promise<void>((r) => sock.close(() => r())));
  return { port: sock.address().port, received, sources };
}

type TcpHandler = (msg: Buffer, conn: Socket) => void;

async function tcpServer(handle: TcpHandler): Promise<{ port: number; received: Buffer[] }> {
  const received: Buffer[] = [];
  const conns = new Set<Socket>();
  const server: Server = createServer((conn) => {
    conns.add(conn);
    conn.on("close", () => conns.delete(conn));
    conn.on("error", () => {});
    let buf = Buffer.alloc(0);
    conn.on("data", (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        received.push(Buffer.from(msg));
        handle(Buffer.from(msg), conn);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, LOOPBACK, () => r()));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const c of conns) c.destroy();
        server.close(() => r());
      }),
  );
  const addr = server.address();
  if (addr === null || typeof addr === "string") throw new Error("no port");
  return { port: addr.port, received };
}

const framed = (b: Buffer): Buffer => {
  const f = Buffer.alloc(2 + b.length);
  f.writeUInt16BE(b.length, 0);
  b.copy(f, 2);
  return f;
};

/** A port nothing listens on (TCP and UDP): bound once, then closed. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, LOOPBACK, () => r()));
  const addr = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  if (addr === null || typeof addr === "string") throw new Error("no port");
  return addr.port;
}

const reasonOf = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(DnsUpstreamError);
    return (e as DnsUpstreamError).reason;
  }
  throw new Error("resolved");
};

const upstream = () => {
  const u = new HostDnsUpstream({ logger: silentLogger });
  cleanups.push(() => u.close());
  return u;
};

describe("HostDnsUpstream over UDP", () => {
  it("sends the query and resolves with the answer", async () => {
    const srv = await udpServer((m, reply) => reply(answer(m, 2)));
    const u = upstream();
    const q = query("example.com", 0x1234);
    const r = dnsPacket.decode(await u.query(q, { host: LOOPBACK, port: srv.port }, "udp", 2000));
    expect(r.id).toBe(0x1234);
    expect(r.answers).toHaveLength(2);
    expect(srv.received[0]).toEqual(q);
    expect(u.stats()).toMatchObject({ udpQueries: 1, answered: 1, inflight: 0, failures: {} });
  });

  it("asks an IPv6 upstream (::1) too, with an IPv4 outbound address left out for it", async () => {
    const srv = await udpServer((m, reply) => reply(answer(m, 1)), "::1");
    const u = new HostDnsUpstream({ logger: silentLogger, localAddress: LOOPBACK });
    cleanups.push(() => u.close());
    const r = dnsPacket.decode(
      await u.query(query("six.test", 7), { host: "::1", port: srv.port }, "udp", 2000),
    );
    expect(r.answers).toHaveLength(1);
    expect(srv.received).toHaveLength(1);
  });

  it("uses a fresh source port for every query", async () => {
    const srv = await udpServer((m, reply) => reply(answer(m)));
    const u = upstream();
    for (let i = 0; i < 5; i++)
      await u.query(query("example.com", i), { host: LOOPBACK, port: srv.port }, "udp", 2000);
    expect(new Set(srv.sources).size).toBe(5);
  });

  it("ignores answers with a wrong ID or question and takes the right one after them", async () => {
    const srv = await udpServer((m, reply) => {
      const id = m.readUInt16BE(0);
      reply(answer(m, 1, { id: id ^ 0x8000 }));
      reply(answer(m, 1, { name: "evil.example" }));
      reply(Buffer.from([1, 2, 3]));
      reply(m); // the query itself, QR clear
      setTimeout(() => reply(answer(m, 3)), 20);
    });
    const u = upstream();
    const r = dnsPacket.decode(
      await u.query(query("example.com", 77), { host: LOOPBACK, port: srv.port }, "udp", 2000),
    );
    expect(r.id).toBe(77);
    expect(r.answers).toHaveLength(3);
    expect(u.stats().ignored).toEqual({
      "udp-wrong-id": 1,
      "udp-wrong-question": 1,
      "udp-short": 1,
      "udp-not-a-response": 1,
    });
  });

  it("accepts the question echoed in another case (0x20)", async () => {
    const srv = await udpServer((m, reply) => reply(answer(m, 1, { name: "EXAMPLE.com" })));
    const u = upstream();
    const r = await u.query(query("example.COM", 5), { host: LOOPBACK, port: srv.port }, "udp", 2000);
    expect(dnsPacket.decode(r).questions?.[0]?.name).toBe("EXAMPLE.com");
  });

  it("times out on a server that never answers", async () => {
    const srv = await udpServer(() => {});
    const u = upstream();
    const t0 = performance.now();
    expect(
      await reasonOf(u.query(query("example.com", 1), { host: LOOPBACK, port: srv.port }, "udp", 150)),
    ).toBe("timeout");
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(140);
    expect(took).toBeLessThan(1500);
    expect(srv.received).toHaveLength(1); // no retries
    expect(u.stats()).toMatchObject({ inflight: 0, failures: { "udp-timeout": 1 } });
  });

  it("gives up after too many mismatches", async () => {
    const srv = await udpServer((m, reply) => {
      for (let i = 0; i < 20; i++) reply(answer(m, 1, { id: m.readUInt16BE(0) ^ 1 }));
    });
    const u = new HostDnsUpstream({ logger: silentLogger, maxMismatches: 4 });
    expect(
      await reasonOf(u.query(query("example.com", 1), { host: LOOPBACK, port: srv.port }, "udp", 2000)),
    ).toBe("too-many-mismatches");
  });

  it("fails fast when nothing listens (ICMP port unreachable on a connected socket)", async () => {
    const port = await closedPort();
    const u = upstream();
    expect(await reasonOf(u.query(query("example.com", 1), { host: LOOPBACK, port }, "udp", 2000))).toBe(
      "connection-refused",
    );
  });

  it("binds to the local address it is given", async () => {
    const srv = await udpServer((m, reply) => reply(answer(m)));
    const u = new HostDnsUpstream({ logger: silentLogger, localAddress: LOOPBACK });
    await u.query(query("example.com", 1), { host: LOOPBACK, port: srv.port }, "udp", 2000);
    const bad = new HostDnsUpstream({ logger: silentLogger, localAddress: "192.0.2.99" });
    expect(
      await reasonOf(bad.query(query("example.com", 1), { host: LOOPBACK, port: srv.port }, "udp", 2000)),
    ).toBe("bad-address");
  });

  it("refuses a query too large for UDP", async () => {
    const u = upstream();
    expect(await reasonOf(u.query(Buffer.alloc(70_000), { host: LOOPBACK, port: 9 }, "udp", 100))).toBe(
      "query-too-large",
    );
  });
});

describe("HostDnsUpstream over TCP", () => {
  it("frames the query and reads a large framed answer sent in pieces", async () => {
    const srv = await tcpServer((m, conn) => {
      const f = framed(answer(m, 200));
      conn.write(f.subarray(0, 1));
      setTimeout(() => conn.write(f.subarray(1, 700)), 5);
      setTimeout(() => conn.write(f.subarray(700)), 10);
    });
    const u = upstream();
    const q = query("big.example.com", 0x4321);
    const raw = await u.query(q, { host: LOOPBACK, port: srv.port }, "tcp", 2000);
    expect(raw.length).toBeGreaterThan(512);
    const r = dnsPacket.decode(raw);
    expect(r.id).toBe(0x4321);
    expect(r.answers).toHaveLength(200);
    expect(srv.received).toEqual([q]);
    expect(u.stats()).toMatchObject({ tcpQueries: 1, answered: 1, inflight: 0 });
  });

  it("skips a response with a wrong ID on the same connection", async () => {
    const srv = await tcpServer((m, conn) => {
      conn.write(Buffer.concat([framed(answer(m, 1, { id: m.readUInt16BE(0) + 1 })), framed(answer(m, 4))]));
    });
    const u = upstream();
    const r = dnsPacket.decode(
      await u.query(query("example.com", 9), { host: LOOPBACK, port: srv.port }, "tcp", 2000),
    );
    expect(r.answers).toHaveLength(4);
    expect(u.stats().ignored).toEqual({ "tcp-wrong-id": 1 });
  });

  it("times out on a server that never answers", async () => {
    const srv = await tcpServer(() => {});
    const u = upstream();
    expect(
      await reasonOf(u.query(query("example.com", 1), { host: LOOPBACK, port: srv.port }, "tcp", 150)),
    ).toBe("timeout");
    expect(srv.received).toHaveLength(1);
  });

  it("fails when the server closes before answering", async () => {
    const srv = await tcpServer((_m, conn) => conn.end());
    const u = upstream();
    expect(
      await reasonOf(u.query(query("example.com", 1), { host: LOOPBACK, port: srv.port }, "tcp", 2000)),
    ).toBe("closed-early");
  });

  it("fails at once when nothing listens", async () => {
    const port = await closedPort();
    const u = upstream();
    expect(await reasonOf(u.query(query("example.com", 1), { host: LOOPBACK, port }, "tcp", 2000))).toBe(
      "connection-refused",
    );
  });

  it("bounds the response size", async () => {
    const srv = await tcpServer((m, conn) => conn.write(framed(answer(m, 100))));
    const u = new HostDnsUpstream({ logger: silentLogger, maxResponseBytes: 512 });
    expect(
      await reasonOf(u.query(query("example.com", 1), { host: LOOPBACK, port: srv.port }, "tcp", 2000)),
    ).toBe("response-too-large");
  });

  it("refuses a query the length prefix cannot carry", async () => {
    const u = upstream();
    expect(await reasonOf(u.query(Buffer.alloc(65536), { host: LOOPBACK, port: 9 }, "tcp", 100))).toBe(
      "query-too-large",
    );
  });
});

describe("close", () => {
  it("aborts queries under way", async () => {
    const udp = await udpServer(() => {});
    const tcp = await tcpServer(() => {});
    const u = new HostDnsUpstream({ logger: silentLogger });
    const a = u.query(query("example.com", 1), { host: LOOPBACK, port: udp.port }, "udp", 5000);
    const b = u.query(query("example.com", 2), { host: LOOPBACK, port: tcp.port }, "tcp", 5000);
    await new Promise((r) => setTimeout(r, 50));
    expect(u.stats().inflight).toBe(2);
    u.close();
    expect(await reasonOf(a)).toBe("closed");
    expect(await reasonOf(b)).toBe("closed");
    expect(u.stats().inflight).toBe(0);
  });
});

describe("with the forwarder", () => {
  it("fails over from a dead server and fetches a truncated answer again over TCP", async () => {
    const dead = await closedPort();
    // one live server on one port number for both UDP and TCP, as resolvers are
    const tcp = await tcpServer((m, conn) => conn.write(framed(answer(m, 30))));
    const udp = createSocket("udp4");
    udp.on("message", (m, rinfo) => {
      const tc = Buffer.from(answer(m, 0));
      tc.writeUInt16BE(tc.readUInt16BE(2) | 0x0200, 2);
      udp.send(tc, rinfo.port, rinfo.address);
    });
    await new Promise<void>((r) => udp.bind(tcp.port, LOOPBACK, () => r()));
    cleanups.push(() => new Promise<void>((r) => udp.close(() => r())));

    const fwd = new DnsForwarder({
      upstream: upstream(),
      servers: [
        { host: LOOPBACK, port: dead },
        { host: LOOPBACK, port: tcp.port },
      ],
      logger: silentLogger,
    });
    const small = await fwd.handle(query("example.com", 0x0b0b), "udp");
    const r = dnsPacket.decode(small as Buffer);
    // 30 A records do not fit 512 bytes: the guest gets the question with TC set
    expect(r).toMatchObject({ id: 0x0b0b, flag_tc: true, answers: [] });
    const big = await fwd.handle(query("example.com", 0x0c0c, "A"), "tcp");
    expect(dnsPacket.decode(big as Buffer).answers).toHaveLength(30);
    expect(fwd.stats()).toMatchObject({ tcpRetries: 1, truncated: 1, answered: 2 });
    // the second query went to the server that answered the first one
    expect(fwd.stats().upstreamFailures).toEqual({ "connection-refused": 1 });
    expect(tcp.received.map((m) => m.readUInt16BE(0))).not.toContain(0x0b0b);
  });
});
