/**
 * A small DNS server for e2e tests: the ONLY upstream a test may give usernet's DNS
 * forwarder (`dns-upstream=127.0.0.1:PORT`), so no query ever reaches a real resolver.
 *
 * Theory of operation
 * - It runs as its own node process inside the test's namespace (on 127.0.0.1:PORT,
 *   or another loopback address with `host`; UDP only: the forwarder asks upstream
 *   over UDP for guest UDP queries), started with `TestDnsServer.start(ns, { port,
 *   records })`. The server code is the small script below, run with `node -e`; it
 *   decodes and encodes with dns-packet.
 * - Answers: an A (or ANY) question for a name in `records` gets its IPv4 addresses
 *   (TTL 30), an AAAA question its IPv6 ones (those with a ":"); any other type, or a
 *   family the name has none of, gets an empty NOERROR; an unknown name gets NXDOMAIN. Names match case-insensitively, without a trailing dot.
 * - "dead" mode: every query is read and counted, none is answered (the forwarder's
 *   timeouts are what is tested).
 * - "truncate" mode: a UDP answer with records comes without them and with TC set; the
 *   server also listens on TCP (same address and port, 2-byte length framing) and
 *   answers there in full.
 * - Every query is printed on stdout as one line `query <id> <type> <name>` (UDP) or
 *   `tcp-query <id> <type> <name>`; the test process counts them from there
 *   (`queries()`). Readiness: the line `listening PORT`.
 * Limits: TCP only in truncate mode, no EDNS0 in answers, one question per query
 * (others get FORMERR).
 */
import { createRequire } from "node:module";
import type { Netns } from "./netns.js";
import type { Proc } from "./proc.js";

export interface DnsServerOptions {
  /** UDP port on 127.0.0.1 inside the namespace; default 5353 */
  port?: number;
  /** the loopback address to listen on; default 127.0.0.1 */
  host?: string;
  /** name → addresses: IPv4 ones answer A questions, IPv6 ones AAAA questions */
  records?: Record<string, string[]>;
  /** never answer (count only) */
  dead?: boolean;
  /** UDP answers with records come truncated (TC, no records); TCP answers in full */
  truncate?: boolean;
  /** default 10 s */
  readyTimeoutMs?: number;
}

export interface DnsQueryLine {
  transport: "udp" | "tcp";
  id: number;
  type: string;
  name: string;
}

// Plain CommonJS so that `node -e` runs it as it is; argv: dns-packet's path, options JSON.
const serverScript = `
const dgram = require("node:dgram");
const packet = require(process.argv[1]);
const opts = JSON.parse(process.argv[2]);
const records = new Map(Object.entries(opts.records).map(([k, v]) => [k.toLowerCase().replace(/\\.$/, ""), v]));
// the answer to one query message, or undefined (undecodable, or dead mode)
function answer(msg, transport) {
  let q;
  try { q = packet.decode(msg); } catch { process.stdout.write("undecodable\\n"); return undefined; }
  const question = (q.questions || [])[0];
  const name = question ? question.name.toLowerCase().replace(/\\.$/, "") : "";
  process.stdout.write((transport === "tcp" ? "tcp-query " : "query ") + q.id + " " + (question ? question.type : "-") + " " + name + "\\n");
  if (opts.dead) return undefined;
  const reply = { type: "response", id: q.id, flags: packet.RECURSION_DESIRED | packet.RECURSION_AVAILABLE | packet.AUTHORITATIVE_ANSWER, questions: q.questions || [], answers: [] };
  if (!question || (q.questions || []).length !== 1) reply.flags |= 1; // FORMERR
  else if (!records.has(name)) reply.flags |= 3; // NXDOMAIN
  else if (question.type === "A" || question.type === "ANY")
    reply.answers = records.get(name).filter((ip) => !ip.includes(":")).map((ip) => ({ type: "A", class: "IN", name: question.name, ttl: 30, data: ip }));
  else if (question.type === "AAAA")
    reply.answers = records.get(name).filter((ip) => ip.includes(":")).map((ip) => ({ type: "AAAA", class: "IN", name: question.name, ttl: 30, data: ip }));
  if (opts.truncate && transport === "udp" && reply.answers.length > 0) {
    reply.answers = [];
    reply.flags |= packet.TRUNCATED_RESPONSE;
  }
  return packet.encode(reply);
}
const sock = dgram.createSocket("udp4");
sock.on("message", (msg, from) => {
  const reply = answer(msg, "udp");
  if (reply) sock.send(reply, from.port, from.address);
});
let waiting = opts.truncate ? 2 : 1;
const listening = () => { if (--waiting === 0) process.stdout.write("listening " + opts.port + "\\n"); };
sock.bind(opts.port, opts.host, listening);
if (opts.truncate) {
  require("node:net").createServer((c) => {
    let buf = Buffer.alloc(0);
    c.on("error", () => {});
    c.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const reply = answer(buf.subarray(2, 2 + buf.readUInt16BE(0)), "tcp");
        buf = buf.subarray(2 + buf.readUInt16BE(0));
        if (reply) c.write(Buffer.concat([Buffer.from([reply.length >> 8, reply.length & 255]), reply]));
      }
    });
  }).listen(opts.port, opts.host, listening);
}
process.on("SIGTERM", () => process.exit(0));
`;

export class TestDnsServer {
  private constructor(
    readonly proc: Proc,
    readonly port: number,
    readonly host: string,
  ) {}

  static async start(ns: Netns, opts: DnsServerOptions = {}): Promise<TestDnsServer> {
    const port = opts.port ?? 5353;
    const dnsPacket = createRequire(import.meta.url).resolve("dns-packet");
    const config = JSON.stringify({
      port,
      host: opts.host ?? "127.0.0.1",
      records: opts.records ?? {},
      dead: opts.dead ?? false,
      truncate: opts.truncate ?? false,
    });
    const proc = ns.spawn(`dns server :${port}`, process.execPath, ["-e", serverScript, dnsPacket, config]);
    const server = new TestDnsServer(proc, port, opts.host ?? "127.0.0.1");
    try {
      await proc.until(`the DNS server listening on ${port}`, opts.readyTimeoutMs ?? 10_000, () =>
        proc.stdout.includes(`listening ${port}\n`) ? true : undefined,
      );
    } catch (e) {
      await proc.kill(1000);
      throw e;
    }
    return server;
  }

  /** the `dns-upstream=` value that points usernet here */
  get upstream(): string {
    return `dns-upstream=${this.host}:${this.port}`;
  }

  /** Every query received so far, in order. */
  queries(): DnsQueryLine[] {
    const out: DnsQueryLine[] = [];
    for (const line of this.proc.stdout.split("\n")) {
      const m = /^(tcp-)?query (\d+) (\S+) (.*)$/.exec(line);
      if (m)
        out.push({
          transport: m[1] ? "tcp" : "udp",
          id: Number(m[2]),
          type: m[3] as string,
          name: m[4] as string,
        });
    }
    return out;
  }

  /** How many queries asked about `name` (any type; over `transport`, else either). */
  count(name: string, transport?: "udp" | "tcp"): number {
    const n = name.toLowerCase().replace(/\.$/, "");
    return this.queries().filter(
      (q) => q.name === n && (transport === undefined || q.transport === transport),
    ).length;
  }

  async close(): Promise<void> {
    await this.proc.kill(2000);
  }
}
