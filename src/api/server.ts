/**
 * The management API server (fastify): on a unix socket (mode 0600, its directory
 * 0700 when we create it) and/or on TCP, where every request needs
 * `Authorization: Bearer <token>`; a TCP listener without a token is refused at start.
 *
 * One fastify instance per listener (fastify listens once), sharing the facade; the
 * TCP one has the token check. Request validation is strict: unknown fields are
 * errors, bodies are not coerced, bodies over 64 KiB are refused. fastify logs through
 * the service's own logger (fastify-log.ts: one format for every line) at the
 * service's level; per-request lines only at debug.
 * Closing ends live captures first, so a capture client cannot hold the close up.
 * Not here: TLS (put a proxy in front, or use the unix socket over ssh), users/roles.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { chmod, mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import type { FastifyInstance } from "fastify";
import { clearStaleSocket } from "../ports/unix-socket.js";
import { errorBody, errorHandler } from "./errors.js";
import { fastifyLogger } from "./fastify-log.js";
import { registerRoutes } from "./routes.js";
import type { ApiLog, UsernetService } from "./service.js";

// fastify and its plugins are CommonJS: require() spares the process Node's WebAssembly
// CJS lexer, which importing them as ESM compiles first (about 6 MiB of RSS).
const require = createRequire(import.meta.url);
const Fastify: typeof import("fastify") = require("fastify");
const { LogController } = Fastify;
const swagger: typeof import("@fastify/swagger") = require("@fastify/swagger");

/** Where the API listens (src/config.ts's ApiConfig has this shape). */
export interface ApiListeners {
  /** unix socket path (mode 0600) */
  socket?: string;
  /** TCP listener; only together with `token` */
  listen?: { host: string; port: number };
  /** the bearer token TCP clients must send */
  token?: string;
}

export type ApiLogLevel = "debug" | "info" | "warn" | "error" | "off";

export interface BuildApiOptions {
  /** required for TCP: the bearer token every request must carry */
  token?: string;
  logLevel?: ApiLogLevel;
  version?: string;
  /** where fastify's pino writes (default stderr) when no `log` is given */
  logStream?: { write(s: string): unknown };
  /** the service's logger: fastify's lines go through it */
  log?: ApiLog;
}

const digest = (s: string) => createHash("sha256").update(s).digest();

export async function buildApi(
  facade: UsernetService,
  options: BuildApiOptions = {},
): Promise<FastifyInstance> {
  const level = options.logLevel ?? "off";
  const app = Fastify({
    ...(level === "off"
      ? { logger: false }
      : options.log
        ? { loggerInstance: fastifyLogger(options.log, level) }
        : { logger: { level, stream: options.logStream ?? process.stderr } }),
    logController: new LogController({ disableRequestLogging: level !== "debug" }),
    bodyLimit: 64 * 1024,
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: false },
    },
  });
  app.setErrorHandler(errorHandler((where, err) => facade.internalError(where, err)));
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).send(errorBody("not-found", `no route ${req.method} ${req.url.split("?")[0]}`)),
  );

  if (options.token !== undefined) {
    const want = digest(`Bearer ${options.token}`);
    app.addHook("onRequest", async (req, reply) => {
      const got = req.headers.authorization;
      if (got === undefined || !timingSafeEqual(digest(got), want)) {
        return reply
          .code(401)
          .header("www-authenticate", "Bearer")
          .send(errorBody("unauthorized", "this listener needs Authorization: Bearer <token>"));
      }
    });
  }

  const captures = new Set<() => void>();
  app.addHook("preClose", async () => {
    for (const stop of [...captures]) stop();
  });

  await app.register(swagger, {
    openapi: {
      info: {
        title: "usernet management API",
        version: options.version ?? "unknown",
        description:
          "Status, hubs and ports, DHCP leases, NAT flows, port forwards, pcap capture and metrics of a running usernet. Errors are { error: { reason, message } }.",
      },
    },
  });
  registerRoutes(app, facade, {
    trackCapture(stop) {
      captures.add(stop);
      return () => captures.delete(stop);
    },
  });
  await app.ready();
  return app;
}

export interface RunningApi {
  /** "unix:/run/user/1000/usernet/api.sock", "http://127.0.0.1:8080" */
  readonly addresses: string[];
  close(): Promise<void>;
}

/** Starts the listeners `config` asks for; rejects (having closed what it opened) when one cannot start. */
export async function startApi(
  config: ApiListeners,
  facade: UsernetService,
  log: ApiLog,
  options: { logLevel?: ApiLogLevel; version?: string } = {},
): Promise<RunningApi> {
  if (config.listen && !config.token) {
    throw new Error("--api-listen: a TCP API listener needs a token (--api-token-file FILE)");
  }
  const apps: FastifyInstance[] = [];
  const addresses: string[] = [];
  const close = async () => {
    await Promise.allSettled(apps.map((a) => a.close()));
  };
  try {
    if (config.socket) {
      const path = config.socket;
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      await clearStaleSocket(path, (why) => new Error(`--api ${path}: ${why}`));
      const app = await buildApi(facade, { logLevel: options.logLevel, version: options.version, log });
      apps.push(app);
      await app.listen({ path });
      await chmod(path, 0o600);
      addresses.push(`unix:${path}`);
      log.info(`management API on unix socket ${path}`);
    }
    if (config.listen) {
      const app = await buildApi(facade, {
        logLevel: options.logLevel,
        version: options.version,
        token: config.token,
        log,
      });
      apps.push(app);
      const host = config.listen.host === "" ? "0.0.0.0" : config.listen.host;
      await app.listen({ host, port: config.listen.port });
      const a = app.server.address();
      const port = a && typeof a === "object" ? a.port : config.listen.port;
      addresses.push(`http://${host}:${port}`);
      log.info(`management API on http://${host}:${port} (bearer token required)`);
    }
  } catch (e) {
    await close();
    throw e;
  }
  return { addresses, close };
}
