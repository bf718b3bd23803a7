/**
 * fastify's logger, made of the service's own (api/service.ts ApiLog): every line the
 * API writes goes through the one logger of the process, in its format (src/log.ts,
 * --log-format), instead of through fastify's own pino.
 */
import type { ApiLog } from "./service.js";

/** What fastify calls on a `loggerInstance` (pino's shape). */
export interface FastifyLogger {
  level: string;
  fatal(...args: unknown[]): void;
  error(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  info(...args: unknown[]): void;
  debug(...args: unknown[]): void;
  trace(...args: unknown[]): void;
  silent(...args: unknown[]): void;
  child(bindings: Record<string, unknown>): FastifyLogger;
}

/**
 * `log` in pino's shape, for fastify's `loggerInstance`: pino calls are `(msg)` or
 * `(object, msg)`; the object's `req`, `res` and `err` (whole requests, replies,
 * errors) become `req="GET /status"`, `status=200`, `err="message"`; other fields
 * pass as they are. fatal is error and trace is debug.
 */
export function fastifyLogger(
  log: ApiLog,
  level: "debug" | "info" | "warn" | "error",
  bindings: Record<string, unknown> = {},
): FastifyLogger {
  const call = (lvl: "debug" | "info" | "warn" | "error", args: unknown[]) => {
    const [first, second] = args;
    const fields: Record<string, unknown> = { ...bindings };
    let msg = "";
    if (typeof first === "string") msg = first;
    else if (first instanceof Error) {
      msg = typeof second === "string" ? second : first.message;
      fields.err = first.message;
    } else if (typeof first === "object" && first !== null) {
      for (const [k, v] of Object.entries(first)) {
        if (k === "req" && typeof v === "object" && v !== null) {
          const r = v as { method?: string; url?: string };
          fields.req = `${r.method ?? "?"} ${r.url ?? "?"}`;
        } else if (k === "res" && typeof v === "object" && v !== null) {
          fields.status = (v as { statusCode?: number }).statusCode;
        } else if (k === "err" && v instanceof Error) fields.err = v.message;
        else fields[k] = v;
      }
      msg = typeof second === "string" ? second : String((first as { msg?: unknown }).msg ?? "");
    }
    log[lvl](msg, fields);
  };
  return {
    level,
    fatal: (...a) => call("error", a),
    error: (...a) => call("error", a),
    warn: (...a) => call("warn", a),
    info: (...a) => call("info", a),
    debug: (...a) => call("debug", a),
    trace: (...a) => call("debug", a),
    silent: () => {},
    child: (b) => fastifyLogger(log, level, { ...bindings, ...b }),
  };
}
