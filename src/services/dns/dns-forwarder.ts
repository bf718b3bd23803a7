/**
 * The DNS forwarder behind the guest-visible DNS address (10.0.2.3 by default),
 * sans-I/O: a query message in (the payload of a UDP datagram, or one message of a
 * TCP stream without its length prefix), the answer message out, or nothing.
 *
 * Theory of operation
 * - Guest bytes never throw. Shorter than a header: no answer. A response (QR set)
 *   sent to us: no answer (answering could loop). Opcode other than QUERY: NOTIMP.
 *   Not exactly one question, an unreadable question, or a message dns-packet cannot
 *   decode: FORMERR (header only, the guest's ID). All counted by reason.
 * - Names in the `LocalNames` table are answered here and never leave the host:
 *   A, AAAA (or ANY) in class IN → the name's authoritative A and AAAA records (TTL
 *   `localTtl`, 60 s: the table changes at run time); a type the name has no address
 *   of, or any other type or class → empty NOERROR (NODATA), so an AAAA lookup of an
 *   IPv4-only name fails over to A at once instead of asking upstream.
 * - The forwarder does not care which address family the guest asked at (10.0.2.3 or
 *   fec0::3): the query bytes are the same, and go to the configured upstreams
 *   whatever their family (libslirp answers at fec0::3 only when the host has an IPv6
 *   nameserver).
 * - DNS64 (RFC 6147, with `dns64`, nat64=on): an AAAA query in class IN whose upstream
 *   answer is NOERROR without AAAA records (and not truncated) is asked again for A;
 *   each A record becomes an AAAA under the /96 prefix (RFC 6052 2.2: prefix::a.b.c.d)
 *   with the A record's TTL, CNAMEs of the answer kept, in a response with the guest's
 *   ID and question, sized for the guest like any answer. NXDOMAIN, errors and names
 *   with real AAAA records pass through untouched; local names are never synthesized
 *   (their IPv4 addresses are not reachable through NAT64). Not done for DNS64: PTR
 *   for the prefix (5.3.1), the exclusion of ::ffff:0:0/96 answers (5.1.4), DNSSEC
 *   (answers to DO/CD queries are synthesized like others, unsigned).
 * - Everything else is forwarded: a copy of the guest's bytes (EDNS0 and all, nothing
 *   re-encoded) with a fresh random 16-bit ID (crypto.randomInt), the guest's ID put
 *   back into the answer. Guest UDP queries go to upstream over UDP, guest TCP queries
 *   over TCP. An upstream UDP answer with TC set is asked again over TCP from the same
 *   server; if that fails the truncated answer goes to the guest (which retries over
 *   TCP itself).
 * - Servers are tried in order, each for at most `tryTimeoutMs` (2 s), all together
 *   for at most `queryTimeoutMs` (5 s, from the query's arrival; the last try gets
 *   what is left). A timeout, a transport error or an answer with rcode SERVFAIL or
 *   REFUSED moves on to the next server. The server that answered last is tried
 *   first for `preferForMs` (60 s) after its answer, then the configured order
 *   returns, so a recovered first server is used again. When no server answers:
 *   SERVFAIL with the guest's ID and question, or the last upstream SERVFAIL/REFUSED
 *   answer if there was one (it may carry extended error details). A dead upstream on
 *   this host (its port closed) fails a try at once (ICMP port unreachable on the
 *   connected socket), so its guests get SERVFAIL promptly, not after the timeout.
 *   "No upstream answered" is logged at most once a minute (counted in `servfail` and
 *   `upstreamFailures` per try), and "answers again" once when one does.
 * - Sizes: a UDP answer that came over UDP is relayed as it is (the upstream saw the
 *   guest's own EDNS0 size and set TC itself). An answer fetched over TCP for a UDP
 *   query that exceeds the guest's limit (512, or its EDNS0 payload size if larger)
 *   is cut to header and question with TC set.
 * - Strict matching of responses to queries (ID and question) is the upstream
 *   transport's job; the forwarder still checks that what it got is a response with
 *   its ID and question and counts anything else as an upstream failure.
 * - At most `maxInflight` (256) forwarded queries at once, and `maxInflightPerGuest`
 *   (64) from one guest (the `guest` given to `handle`, its hub port and
 *   MAC, stack/guest-bounds.ts; a query without one counts only in all); more are dropped
 *   unanswered (the guest's resolver retries) and counted "too-many-queries" or
 *   "too-many-queries-per-guest", so one guest's flood leaves the others room.
 * Time: the clock measures the budget and the preference; every wait runs on the
 * injected timers, so tests drive both. Not done: caching (the upstream resolver
 * caches), answers for reverse (PTR) lookups of local addresses, EDNS0 OPT records in
 * answers the forwarder makes itself, DNS over IPv6, DNSSEC validation.
 */
import { randomInt } from "node:crypto";
import { createRequire } from "node:module";
import type { Logger } from "../../log.js";
import { type Clock, systemClock } from "../../stack/clock.js";
import { DropCounters } from "../../stack/drop-counters.js";
import { GuestCounts } from "../../stack/guest-bounds.js";
import { type Ipv6Address, ipv6Copy, ipv6ToString } from "../../stack/wire/ipv6-addr.js";
import { fail, ok, type Result } from "../../stack/wire/result.js";
import {
  DNS_CLASS_IN,
  DNS_UDP_CLASSIC_LIMIT,
  type DnsQuestion,
  DnsRcode,
  DnsType,
  emptyResponse,
  errorResponse,
  isTruncated,
  messageId,
  questionName,
  readHeader,
  readQuestion,
  recordsResponse,
  responseMismatch,
  responseRcode,
  setMessageId,
  truncatedResponse,
} from "./dns-message.js";
import { LocalNames } from "./local-names.js";
import {
  type DnsServerAddress,
  type DnsTransport,
  type DnsUpstream,
  upstreamFailureReason,
} from "./upstream.js";

// dns-packet is CommonJS: require() keeps it from being imported as ESM, which makes
// Node compile its WebAssembly CJS lexer first (about 6 MiB of RSS for the process).
const { decode, encode } = createRequire(import.meta.url)("dns-packet") as typeof import("dns-packet");

/** One-shot timers; `set` returns a function that cancels the timer. */
export interface DnsTimers {
  set(fn: () => void, ms: number): () => void;
}

/** Real timers, unref'ed: a pending DNS try never keeps the process alive. */
export const realDnsTimers: DnsTimers = {
  set(fn, ms) {
    const t = setTimeout(fn, ms);
    t.unref();
    return () => clearTimeout(t);
  },
};

const TYPE_ANY = 255;
const CLASS_ANY = 255;

export interface DnsForwarderOptions {
  upstream: DnsUpstream;
  /** resolvers in the order to try them; may be empty (every forwarded query gets SERVFAIL) */
  servers: readonly DnsServerAddress[];
  logger: Logger;
  localNames?: LocalNames;
  clock?: Clock;
  timers?: DnsTimers;
  /** the whole budget of one forwarded query, ms (5000) */
  queryTimeoutMs?: number;
  /** one try of one server, ms (2000) */
  tryTimeoutMs?: number;
  /** how long the server that answered last is tried first, ms (60000) */
  preferForMs?: number;
  /** TTL of local answers, seconds (60) */
  localTtl?: number;
  /** forwarded queries waiting for upstream at once (256) */
  maxInflight?: number;
  /** forwarded queries from one guest waiting at once (64, at most maxInflight) */
  maxInflightPerGuest?: number;
  /** the source of upstream query IDs (crypto.randomInt by default) */
  randomId?: () => number;
  /** DNS64 (nat64=on): AAAA records synthesized from A under this /96 prefix */
  dns64?: { prefix: Ipv6Address };
}

export interface DnsForwarderStats {
  /** messages handed to `handle` */
  queries: number;
  localAnswers: number;
  /** queries sent upstream */
  forwarded: number;
  /** upstream answers relayed to the guest (including truncated ones) */
  answered: number;
  /** answers for UDP guests cut to the question with TC set */
  truncated: number;
  servfail: number;
  formerr: number;
  notimp: number;
  tcpRetries: number;
  /** AAAA answers synthesized from A records (DNS64) */
  dns64: number;
  inflight: number;
  /** messages that got no answer at all, by reason */
  dropped: Record<string, number>;
  /** failed upstream tries, by reason ("timeout", "connection-refused", "servfail", ...) */
  upstreamFailures: Record<string, number>;
}

type Counter = "queries" | "localAnswers" | "forwarded" | "answered" | "truncated";
type Counted = Counter | "servfail" | "formerr" | "notimp" | "tcpRetries" | "dns64";

export class DnsForwarder {
  readonly localNames: LocalNames;
  private readonly upstream: DnsUpstream;
  private servers: readonly DnsServerAddress[];
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly timers: DnsTimers;
  private readonly queryTimeoutMs: number;
  private readonly tryTimeoutMs: number;
  private readonly preferForMs: number;
  private readonly localTtl: number;
  private readonly inflightByGuest: GuestCounts;
  private readonly randomId: () => number;
  private readonly dns64Prefix: Ipv6Address | undefined;
  private preferred: { servers: readonly DnsServerAddress[]; index: number; until: number } | undefined;
  private inflight = 0;
  private readonly maxInflight: number;
  private lastAllFailedWarning = Number.NEGATIVE_INFINITY;
  /** the last forwarded query got no upstream answer (logged: "answers again" when one does) */
  private allFailing = false;
  private readonly counts: Record<Counted, number> = {
    queries: 0,
    localAnswers: 0,
    forwarded: 0,
    answered: 0,
    truncated: 0,
    servfail: 0,
    formerr: 0,
    notimp: 0,
    tcpRetries: 0,
    dns64: 0,
  };
  private readonly dropped = new DropCounters();
  private readonly failures = new DropCounters();

  constructor(o: DnsForwarderOptions) {
    this.upstream = o.upstream;
    this.servers = [...o.servers];
    this.log = o.logger;
    this.localNames = o.localNames ?? new LocalNames();
    this.clock = o.clock ?? systemClock;
    this.timers = o.timers ?? realDnsTimers;
    this.queryTimeoutMs = o.queryTimeoutMs ?? 5000;
    this.tryTimeoutMs = o.tryTimeoutMs ?? 2000;
    this.preferForMs = o.preferForMs ?? 60_000;
    this.localTtl = o.localTtl ?? 60;
    this.maxInflight = o.maxInflight ?? 256;
    this.inflightByGuest = new GuestCounts({
      max: this.maxInflight,
      perGuest: Math.min(this.maxInflight, o.maxInflightPerGuest ?? 64),
    });
    this.randomId = o.randomId ?? (() => randomInt(0, 0x10000));
    this.dns64Prefix = o.dns64 === undefined ? undefined : ipv6Copy(o.dns64.prefix);
  }

  /** Replaces the upstream list (queries under way finish with the old one). */
  setServers(servers: readonly DnsServerAddress[]): void {
    this.servers = [...servers];
    this.preferred = undefined;
  }

  getServers(): DnsServerAddress[] {
    return this.servers.map((s) => ({ ...s }));
  }

  /**
   * The answer to one guest DNS message, or undefined for none. Never throws. `guest`
   * (its guest id, stack/guest-bounds.ts) is whose per-guest bound the query counts against.
   */
  async handle(query: Buffer, transport: DnsTransport, guest?: number): Promise<Buffer | undefined> {
    this.counts.queries++;
    try {
      return await this.answer(query, transport, guest);
    } catch (e) {
      // Only a bug gets here; the guest's resolver will retry.
      this.dropped.drop("internal-error");
      this.log.error("dns forwarder failed on a query", { error: String(e) });
      return undefined;
    }
  }

  stats(): DnsForwarderStats {
    return {
      ...this.counts,
      inflight: this.inflight,
      dropped: this.dropped.toJSON(),
      upstreamFailures: this.failures.toJSON(),
    };
  }

  /** The bounds in force: forwarded queries waiting in all and per guest. */
  get limits(): { maxInflight: number; maxInflightPerGuest: number } {
    return { maxInflight: this.maxInflight, maxInflightPerGuest: this.inflightByGuest.bounds.perGuest };
  }

  private async answer(query: Buffer, transport: DnsTransport, guest?: number): Promise<Buffer | undefined> {
    const h = readHeader(query);
    if (!h.ok) return this.drop("query-short");
    if (h.value.qr) return this.drop("query-is-response");
    if (h.value.opcode !== 0) {
      this.counts.notimp++;
      return errorResponse(query, DnsRcode.NOTIMP);
    }
    if (h.value.qdcount !== 1) return this.formerr(query, "query-question-count");
    const q = readQuestion(query);
    if (!q.ok) return this.formerr(query, `query-${q.reason}`);
    const limit = udpLimit(query);
    if (!limit.ok) return this.formerr(query, limit.reason);

    const name = questionName(q.value);
    if (name !== undefined && this.localNames.has(name)) {
      this.counts.localAnswers++;
      const { qtype, qclass } = q.value;
      const records: { type: number; data: Buffer }[] = [];
      if (qclass === DNS_CLASS_IN || qclass === CLASS_ANY) {
        const v4 = qtype === DnsType.A || qtype === TYPE_ANY ? this.localNames.lookup(name) : undefined;
        if (v4 !== undefined) records.push({ type: DnsType.A, data: ipv4Bytes(v4) });
        const v6 = qtype === DnsType.AAAA || qtype === TYPE_ANY ? this.localNames.lookup6(name) : undefined;
        if (v6 !== undefined) records.push({ type: DnsType.AAAA, data: v6 });
      }
      return records.length > 0
        ? recordsResponse(query, q.value, records, this.localTtl)
        : emptyResponse(query, q.value, DnsRcode.NOERROR, true);
    }

    if (this.inflight >= this.maxInflight) return this.drop("too-many-queries");
    if (guest !== undefined && this.inflightByGuest.over(guest) === "per-guest") {
      return this.drop("too-many-queries-per-guest");
    }
    this.inflight++;
    if (guest !== undefined) this.inflightByGuest.take(guest);
    try {
      const max = transport === "udp" ? limit.value : Number.POSITIVE_INFINITY;
      const answer = await this.forward(query, q.value, transport, max);
      const prefix = this.dns64Prefix;
      if (prefix === undefined || q.value.qtype !== DnsType.AAAA || q.value.qclass !== DNS_CLASS_IN)
        return answer;
      if (!lacksAaaa(answer)) return answer;
      // RFC 6147 5.1.1: the same name, asked for A
      const aQuery = Buffer.from(query);
      aQuery.writeUInt16BE(DnsType.A, q.value.end - 4);
      const aAnswer = await this.forward(
        aQuery,
        { ...q.value, qtype: DnsType.A },
        transport,
        Number.POSITIVE_INFINITY,
      );
      const synthesized = synthesizeAaaa(aAnswer, query, prefix);
      if (synthesized === undefined) return answer;
      this.counts.dns64++;
      if (synthesized.length > max) {
        this.counts.truncated++;
        return truncatedResponse(synthesized, query, q.value);
      }
      return synthesized;
    } finally {
      this.inflight--;
      if (guest !== undefined) this.inflightByGuest.release(guest);
    }
  }

  private async forward(
    query: Buffer,
    q: DnsQuestion,
    transport: DnsTransport,
    limit: number,
  ): Promise<Buffer> {
    this.counts.forwarded++;
    const guestId = messageId(query);
    // A copy: the ID is rewritten, and the guest's bytes may be a view of a reused frame.
    const packet = Buffer.from(query);
    setMessageId(packet, this.randomId());
    const deadline = this.clock.now() + this.queryTimeoutMs;
    const servers = this.servers;
    let fallback: { response: Buffer; overTcp: boolean } | undefined;

    for (const index of this.order(servers)) {
      const server = servers[index];
      if (server === undefined) continue;
      const first = await this.tryServer(packet, server, transport, deadline);
      if (!first.ok) {
        this.failed(servers, index, first.reason, server, transport);
        continue;
      }
      let response = first.value;
      let overTcp = transport === "tcp";
      if (!overTcp && isTruncated(response)) {
        this.counts.tcpRetries++;
        const again = await this.tryServer(packet, server, "tcp", deadline);
        if (again.ok) {
          response = again.value;
          overTcp = true;
        } else {
          this.failures.drop(`tcp-retry-${again.reason}`);
        }
      }
      const rcode = responseRcode(response);
      if (rcode === DnsRcode.SERVFAIL || rcode === DnsRcode.REFUSED) {
        this.failed(servers, index, rcode === DnsRcode.SERVFAIL ? "servfail" : "refused", server, transport);
        fallback = { response, overTcp };
        continue;
      }
      if (servers === this.servers)
        this.preferred = { servers, index, until: this.clock.now() + this.preferForMs };
      if (this.allFailing) {
        this.allFailing = false;
        this.log.info("a DNS upstream answers again", { server: `${server.host}:${server.port}` });
      }
      return this.toGuest(response, guestId, query, q, overTcp, limit);
    }

    if (fallback !== undefined)
      return this.toGuest(fallback.response, guestId, query, q, fallback.overTcp, limit);
    this.counts.servfail++;
    this.allFailing = true;
    const now = this.clock.now();
    if (now - this.lastAllFailedWarning >= 60_000) {
      this.lastAllFailedWarning = now;
      this.log.warn("no DNS upstream answered; guests get SERVFAIL", {
        servers: servers.map((s) => `${s.host}:${s.port}`),
        failures: this.failures.toJSON(),
      });
    }
    return emptyResponse(query, q, DnsRcode.SERVFAIL);
  }

  /** Server indexes in the order to try: the recently answering one first. */
  private order(servers: readonly DnsServerAddress[]): number[] {
    const all = servers.map((_, i) => i);
    const p = this.preferred;
    if (p === undefined || p.servers !== servers || this.clock.now() >= p.until) return all;
    return [p.index, ...all.filter((i) => i !== p.index)];
  }

  private failed(
    servers: readonly DnsServerAddress[],
    index: number,
    reason: string,
    server: DnsServerAddress,
    transport: DnsTransport,
  ): void {
    this.failures.drop(reason);
    if (this.preferred?.servers === servers && this.preferred.index === index) this.preferred = undefined;
    this.log.debug("dns upstream try failed", { server: `${server.host}:${server.port}`, transport, reason });
  }

  /**
   * One try of one server within what is left of the budget. The forwarder's own timer
   * bounds the wait even if the upstream forgets its timeout.
   */
  private tryServer(
    packet: Buffer,
    server: DnsServerAddress,
    transport: DnsTransport,
    deadline: number,
  ): Promise<Result<Buffer>> {
    const ms = Math.min(this.tryTimeoutMs, deadline - this.clock.now());
    if (ms <= 0) return Promise.resolve(fail("no-time-left"));
    return new Promise((resolve) => {
      let settled = false;
      const settle = (r: Result<Buffer>) => {
        if (settled) return;
        settled = true;
        cancel();
        resolve(r);
      };
      const cancel = this.timers.set(() => settle(fail("timeout")), ms);
      let pending: Promise<Buffer>;
      try {
        pending = this.upstream.query(packet, server, transport, ms);
      } catch (e) {
        pending = Promise.reject(e);
      }
      pending.then(
        (response) => settle(checkResponse(response, packet)),
        (e: unknown) => settle(fail(upstreamFailureReason(e))),
      );
    });
  }

  private toGuest(
    response: Buffer,
    guestId: number,
    query: Buffer,
    q: DnsQuestion,
    overTcp: boolean,
    limit: number,
  ): Buffer {
    setMessageId(response, guestId);
    this.counts.answered++;
    if (overTcp && response.length > limit) {
      this.counts.truncated++;
      return truncatedResponse(response, query, q);
    }
    return response;
  }

  private drop(reason: string): undefined {
    this.dropped.drop(reason);
    return undefined;
  }

  private formerr(query: Buffer, reason: string): Buffer {
    this.counts.formerr++;
    this.dropped.drop(reason);
    return errorResponse(query, DnsRcode.FORMERR);
  }
}

/** The guest's UDP answer limit: 512, or its EDNS0 payload size when larger (RFC 6891 6.2.5). */
function udpLimit(query: Buffer): Result<number> {
  let additionals: ReadonlyArray<{ type: string; udpPayloadSize?: number }> | undefined;
  try {
    additionals = decode(query).additionals as typeof additionals;
  } catch {
    return fail("query-undecodable");
  }
  const opt = additionals?.find((a) => a.type === "OPT");
  return ok(Math.max(DNS_UDP_CLASSIC_LIMIT, opt?.udpPayloadSize ?? 0));
}

function ipv4Bytes(a: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(a >>> 0);
  return b;
}

type Decoded = ReturnType<typeof decode>;

function tryDecode(b: Buffer): Decoded | undefined {
  try {
    return decode(b);
  } catch {
    return undefined;
  }
}

/** An answer DNS64 replaces: NOERROR, not truncated, and no AAAA record in it (RFC 6147 5.1.1). */
function lacksAaaa(answer: Buffer): boolean {
  const h = readHeader(answer);
  if (!h.ok || h.value.rcode !== DnsRcode.NOERROR || h.value.tc) return false;
  const d = tryDecode(answer);
  return d !== undefined && !(d.answers ?? []).some((a) => a.type === "AAAA");
}

/**
 * The guest's AAAA answer made from the upstream's A answer: CNAMEs kept, each A
 * record as an AAAA under the /96 prefix; undefined when there is no A record.
 */
function synthesizeAaaa(aAnswer: Buffer, query: Buffer, prefix: Ipv6Address): Buffer | undefined {
  const h = readHeader(aAnswer);
  if (!h.ok || h.value.rcode !== DnsRcode.NOERROR) return undefined;
  const a = tryDecode(aAnswer);
  const qd = tryDecode(query);
  if (a === undefined || qd === undefined) return undefined;
  const answers = [];
  let any = false;
  for (const rr of a.answers ?? []) {
    if (rr.type === "CNAME") answers.push(rr);
    else if (rr.type === "A" && (rr.class ?? "IN") === "IN" && typeof rr.data === "string") {
      const v4 = rr.data.split(".").map(Number);
      if (v4.length !== 4 || v4.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) continue;
      const six = ipv6Copy(prefix);
      six.set(v4, 12);
      answers.push({
        name: rr.name,
        type: "AAAA" as const,
        class: "IN" as const,
        ttl: rr.ttl ?? 0,
        data: ipv6ToString(six),
      });
      any = true;
    }
  }
  if (!any) return undefined;
  const rd = query.readUInt16BE(2) & 0x0100;
  try {
    return encode({
      id: messageId(query),
      type: "response",
      flags: rd | 0x0080,
      questions: qd.questions ?? [],
      answers,
    });
  } catch {
    return undefined;
  }
}

function checkResponse(response: Buffer, packet: Buffer): Result<Buffer> {
  const mismatch = responseMismatch(response, packet);
  return mismatch === undefined ? ok(response) : fail(mismatch);
}
