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
 * Closing ends live captures and event streams first, so a client cannot hold the close up.
 *
 * Socket activation: sockets systemd passes as "api" (`fds`) replace the configured
 * listeners of their kind (a unix one --api, a TCP one --api-listen); a TCP one needs
 * the token like any TCP listener (requests that arrive over TCP are checked, those
 * over a unix socket are not). Their files and modes are systemd's (`SocketMode=`).
 *
 * The dashboard (dashboard.ts): `--dashboard HOST:PORT` (or a socket named
 * "dashboard") is one more TCP listener with the page and every route, under the
 * API's token when --api-token-file gave one, else a random one made here; its URL
 * with the token (Jupyter's way) is `dashboardUrl`. The TCP API listener serves the
 * page too.
 * Not here: TLS (put a proxy in front, or use the unix socket over ssh), users/roles.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { chmod, mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import type { FastifyInstance } from "fastify";
import { clearStaleSocket } from "../ports/unix-socket.js";
import { registerDashboard } from "./dashboard.js";
import { errorBody, errorHandler } from "./errors.js";
import { fastifyLogger } from "./fastify-log.js";
import { registerRoutes } from "./routes.js";
import type { ApiLog, ApiLogTail, UsernetService } from "./service.js";

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
  /** the dashboard's own TCP listener */
  dashboard?: { host: string; port: number };
  /** listening sockets from systemd named "api" (unix or TCP) */
  fds?: number[];
  /** listening sockets from systemd named "dashboard" */
  dashboardFds?: number[];
}

export type ApiLogLevel = "debug" | "info" | "warn" | "error" | "off";

export interface BuildApiOptions {
  /** required for TCP: the bearer token every request must carry */
  token?: string;
  logLevel?: ApiLogLevel;
  version?: string;
  /** where fastify's pino writes (default stderr) when no `log` is given */
  logStream?: { write(s: string): unknown };
  /** check the token only on requests that arrive over TCP (an activated socket of either kind) */
  tokenOnTcpOnly?: boolean;
  /** serve the dashboard's page at / (TCP listeners) */
  dashboardPage?: boolean;
  /** the log's last lines, for the event stream */
  logTail?: ApiLogTail;
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
    const tcpOnly = options.tokenOnTcpOnly === true;
    app.addHook("onRequest", async (req, reply) => {
      if (tcpOnly && req.socket.remoteAddress === undefined) return;
      let got = req.headers.authorization;
      // the page itself is opened from a URL that carries the token (a browser sends no header)
      if (got === undefined && options.dashboardPage && req.method === "GET" && req.url.startsWith("/?")) {
        const t = new URLSearchParams(req.url.slice(2)).get("token");
        if (t !== null) got = `Bearer ${t}`;
      }
      if (got === undefined || !timingSafeEqual(digest(got), want)) {
        if (options.dashboardPage && req.method === "GET" && req.url.split("?")[0] === "/") {
          return reply
            .code(401)
            .type("text/plain; charset=utf-8")
            .send("usernet dashboard: open the URL with ?token=... that usernet printed at start-up\n");
        }
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
  const track = (stop: () => void) => {
    captures.add(stop);
    return () => captures.delete(stop);
  };
  registerRoutes(app, facade, { trackCapture: track });
  await registerDashboard(app, facade, {
    page: options.dashboardPage === true,
    logTail: options.logTail,
    track,
  });
  await app.ready();
  return app;
}

export interface RunningApi {
  /** "unix:/run/user/1000/usernet/api.sock", "http://127.0.0.1:8080" */
  readonly addresses: string[];
  /** the dashboard's URL with its token, when one listens */
  readonly dashboardUrl?: string;
  close(): Promise<void>;
}

/**
 * Listens on an inherited socket. Not through fastify's listen(), whose start-up log
 * line reads an address a unix socket passed by fd does not have; fastify's close()
 * closes the server all the same.
 */
async function listenOnFd(app: FastifyInstance, fd: number): Promise<void> {
  await app.ready();
  await new Promise<void>((resolve, reject) => {
    app.server.once("error", reject);
    app.server.listen({ fd }, () => {
      app.server.off("error", reject);
      resolve();
    });
  });
}

/** A URL host for a bound address ("" and 0.0.0.0: this machine's loopback). */
function urlHost(host: string): string {
  if (host === "" || host === "0.0.0.0") return "127.0.0.1";
  if (host === "::") return "[::1]";
  return host.includes(":") ? `[${host}]` : host;
}

/** Starts the listeners `config` asks for; rejects (having closed what it opened) when one cannot start. */
export async function startApi(
  config: ApiListeners,
  facade: UsernetService,
  log: ApiLog,
  options: { logLevel?: ApiLogLevel; version?: string; logTail?: ApiLogTail } = {},
): Promise<RunningApi> {
  if (config.listen && !config.token) {
    throw new Error("--api-listen: a TCP API listener needs a token (--api-token-file FILE)");
  }
  const apps: FastifyInstance[] = [];
  const addresses: string[] = [];
  let dashboardUrl: string | undefined;
  const close = async () => {
    await Promise.allSettled(apps.map((a) => a.close()));
  };
  const common = { logLevel: options.logLevel, version: options.version, logTail: options.logTail, log };
  const tcpAddress = (app: FastifyInstance): { host: string; port: number } | undefined => {
    const a = app.server.address();
    return a && typeof a === "object" ? { host: a.address, port: a.port } : undefined;
  };
  try {
    const fds = config.fds ?? [];
    let activatedUnix = false;
    let activatedTcp = false;
    for (const fd of fds) {
      const app = await buildApi(facade, {
        ...common,
        token: config.token,
        tokenOnTcpOnly: true,
        dashboardPage: true,
      });
      apps.push(app);
      await listenOnFd(app, fd);
      const tcp = tcpAddress(app);
      if (tcp) {
        if (!config.token)
          throw new Error("the TCP API socket from systemd (api) needs a token (--api-token-file FILE)");
        activatedTcp = true;
        addresses.push(`http://${urlHost(tcp.host)}:${tcp.port}`);
        log.info(
          `management API on http://${urlHost(tcp.host)}:${tcp.port} (socket from systemd; bearer token required)`,
        );
      } else {
        activatedUnix = true;
        addresses.push(`unix:fd${fd}`);
        log.info(`management API on a unix socket from systemd (fd ${fd})`);
      }
    }
    if (config.socket && !activatedUnix) {
      const path = config.socket;
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      await clearStaleSocket(path, (why) => new Error(`--api ${path}: ${why}`));
      const app = await buildApi(facade, common);
      apps.push(app);
      await app.listen({ path });
      await chmod(path, 0o600);
      addresses.push(`unix:${path}`);
      log.info(`management API on unix socket ${path}`);
    }
    if (config.listen && !activatedTcp) {
      const app = await buildApi(facade, { ...common, token: config.token, dashboardPage: true });
      apps.push(app);
      const host = config.listen.host === "" ? "0.0.0.0" : config.listen.host;
      await app.listen({ host, port: config.listen.port });
      const a = app.server.address();
      const port = a && typeof a === "object" ? a.port : config.listen.port;
      addresses.push(`http://${host}:${port}`);
      log.info(`management API on http://${host}:${port} (bearer token required)`);
    }
    const dashboardFds = config.dashboardFds ?? [];
    if (config.dashboard || dashboardFds.length > 0) {
      const token = config.token ?? randomBytes(24).toString("base64url");
      const targets: ({ fd: number } | { host: string; port: number })[] =
        dashboardFds.length > 0
          ? dashboardFds.map((fd) => ({ fd }))
          : [{ host: config.dashboard?.host || "127.0.0.1", port: config.dashboard?.port ?? 0 }];
      for (const target of targets) {
        const app = await buildApi(facade, { ...common, token, dashboardPage: true });
        apps.push(app);
        if ("fd" in target) await listenOnFd(app, target.fd);
        else await app.listen(target);
        const tcp = tcpAddress(app);
        if (!tcp) throw new Error("the dashboard socket from systemd must be a TCP socket");
        const base = `http://${urlHost(tcp.host)}:${tcp.port}/`;
        addresses.push(base.slice(0, -1));
        dashboardUrl ??= `${base}?token=${token}`;
        log.info(`dashboard on ${base} (open the URL with ?token= that usernet printed)`);
        if (tcp.host !== "127.0.0.1" && tcp.host !== "::1") {
          log.warn(
            `dashboard on ${tcp.host}: whoever can reach it and has the token can change forwards and capture traffic`,
          );
        }
      }
    }
  } catch (e) {
    await close();
    throw e;
  }
  return { addresses, dashboardUrl, close };
}
