/**
 * A small structured logger handed to every component that talks to the outside.
 * No global logger: components receive one (or a child) at construction.
 *
 * One format for every line of a process (`--log-format`): "text", one readable line
 * per record (`usernet LEVEL: message key=value ...`, the default, terminal or not, as
 * it always was: scripts and the e2e harness read it), or "json", one object per line
 * (`{"time":ISO,"level":...,"msg":...,...fields}`). The management API's fastify logs
 * through the same logger (src/api/fastify-log.ts), not through its own pino.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFormat = "text" | "json";
export const logFormats: readonly LogFormat[] = ["text", "json"];

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(bindings: Record<string, unknown>): Logger;
}

const order: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Writes one line per record to a stream (stderr by default), as text or JSON. */
export function createLogger(
  level: LogLevel = "info",
  out: { write(s: string): unknown } = process.stderr,
  bindings: Record<string, unknown> = {},
  format: LogFormat = "text",
  now: () => Date = () => new Date(),
): Logger {
  const min = order[level];
  const emit = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (order[lvl] < min) return;
    const all = { ...bindings, ...fields };
    if (format === "json") {
      out.write(`${JSON.stringify({ time: now().toISOString(), level: lvl, msg, ...all })}\n`);
      return;
    }
    const extra = Object.entries(all)
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
      .join(" ");
    out.write(`usernet ${lvl}: ${msg}${extra ? ` ${extra}` : ""}\n`);
  };
  return {
    debug: (m, f) => emit("debug", m, f),
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (b) => createLogger(level, out, { ...bindings, ...b }, format, now),
  };
}

/** A logger that discards everything; for tests. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};

/**
 * Unexpected exceptions: a throw nobody planned for, a rejected promise nobody awaited.
 * They are bugs, so they must not vanish: each is counted (the count is in the API's
 * status, in metrics, and the e2e harness fails a test whose usernet had one) and
 * logged with its stack, once per place and message so a bug on a per-packet path
 * cannot flood the log. The process goes on serving: one broken flow or service should
 * not take every guest's network down.
 *
 * One per process on purpose (unlike loggers): process-level handlers
 * (unhandledRejection, uncaughtException) have no component to hand it to.
 */
export class InternalErrors {
  private count = 0;
  private readonly logged = new Set<string>();

  constructor(private log: Logger) {}

  /** Where the log lines go; the CLI points it at its own logger. */
  setLogger(log: Logger): void {
    this.log = log;
  }

  report(where: string, err: unknown): void {
    this.count++;
    const message = err instanceof Error ? err.message : String(err);
    const key = `${where}\n${message}`;
    // bounded: a bug that makes ever-new messages stops logging, not counting
    if (this.logged.has(key) || this.logged.size >= 256) return;
    this.logged.add(key);
    this.log.error(`internal error in ${where}: ${message}`, {
      count: this.count,
      stack: err instanceof Error && err.stack ? err.stack : "(no stack)",
    });
  }

  /** A rejection handler for a promise that is not awaited: `p.catch(internalErrors.handler("dns reply"))`. */
  handler(where: string): (err: unknown) => void {
    return (err) => this.report(where, err);
  }

  get total(): number {
    return this.count;
  }
}

export const internalErrors = new InternalErrors(createLogger("info"));

/**
 * Host faults: the host refused us something a guest's traffic needed — no file
 * descriptors (EMFILE, ENFILE), no buffer memory (ENOBUFS), an outbound address gone
 * (EADDRNOTAVAIL), a full disk for state or captures (ENOSPC), an upstream resolver
 * that does not answer, a QEMU client that broke its framing. Not bugs (those are
 * InternalErrors) and not the network's ordinary answers (a refused connect, an
 * unreachable host): the guest gets its answer (RST, ICMP, SERVFAIL, nothing) from
 * the component that met the fault, which goes on serving everyone else, and the
 * fault is counted here by `where` and `code` (API status `hostFaults`, metric
 * `usernet_host_faults_total{where,code}`) and logged once per pair, at its first
 * occurrence: one line, not one per packet, at any rate of faults.
 *
 * One per process, like InternalErrors: the same fd limit or disk is behind every
 * netdev's faults.
 */
export class HostFaults {
  private readonly counts = new Map<string, { where: string; code: string; n: number }>();

  constructor(private log: Logger) {}

  setLogger(log: Logger): void {
    this.log = log;
  }

  /**
   * `fields` go into the first occurrence's log line only; `log`, the component's own
   * logger (with its bindings), writes it when given.
   */
  report(where: string, code: string, message: string, fields?: Record<string, unknown>, log?: Logger): void {
    let key = `${where}\n${code}`;
    // bounded: ever-new pairs share one row past 256
    if (!this.counts.has(key) && this.counts.size >= 256) {
      key = "other\nother";
      [where, code] = ["other", "other"];
    }
    const known = this.counts.get(key);
    if (known) {
      known.n++;
      return;
    }
    this.counts.set(key, { where, code, n: 1 });
    (log ?? this.log).warn(
      `host fault in ${where} (${code}): ${message}; further ones are counted, not logged`,
      fields,
    );
  }

  /** Counts a fault whose component logs it itself (e.g. once per failing period). */
  count(where: string, code: string): void {
    this.report(where, code, "", undefined, silentLogger);
  }

  /** Every (where, code) met so far with its count. */
  list(): { where: string; code: string; count: number }[] {
    return [...this.counts.values()].map((c) => ({ where: c.where, code: c.code, count: c.n }));
  }

  get total(): number {
    let n = 0;
    for (const c of this.counts.values()) n += c.n;
    return n;
  }
}

export const hostFaults = new HostFaults(createLogger("info"));
