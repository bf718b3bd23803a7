/**
 * WebSocket listener: `-netdev websocket,listen=HOST:PORT`. Browser VMs (v86,
 * JSLinux, jor1k) and container2wasm's `net=delegate=ws://` connect here; each
 * connection becomes a hub port (websocket-port.ts) named "ID#N" (N counts up from 1,
 * never reused), attached on accept and detached when the connection ends.
 *
 * Theory of operation
 * - One HTTP (or, with cert= and key=, HTTPS) server; the upgrade is checked here and
 *   handed to `ws` (noServer mode, no compression, UTF-8 of text messages not checked
 *   since they are ignored anyway). Plain HTTP requests get 426.
 * - Who may attach. Any web page the user opens can make the browser open a WebSocket
 *   to localhost, so a listener that took every upgrade would put every web site on
 *   the virtual LAN with the user's loopback behind the gateway. Browsers always send
 *   an Origin header with a WebSocket upgrade and page scripts cannot forge or drop it,
 *   so:
 *     - an upgrade carrying an Origin is accepted only when that origin is in the
 *       allow-list (origin=, repeatable, compared exactly after lower-casing; "*" lets
 *       every page in and logs a warning). The default list is empty: no web page at
 *       all, until the user names the page that hosts the VM;
 *     - an upgrade without Origin comes from a program, not a page (v86 under Node,
 *       websocat, a Go client): accepted, as a TCP listener would accept it — and like
 *       every TCP listener this one cannot tell local users apart (opening one logs
 *       that warning);
 *     - with token-file=F, every upgrade must also bring the token in F, as the query
 *       parameter `token=` (all a browser's WebSocket can carry) or as
 *       `Authorization: Bearer TOKEN`. Compared in constant time.
 *   path= restricts the request path (the query string is not part of it). Refusals
 *   are answered with 403 (origin), 401 (token), 404 (path) or 503 (too many clients)
 *   and counted.
 * - Bounded: at most `maxClients` (64) at once; a message above `maxPayload` (256 KiB)
 *   closes its connection (ws does that, 1009); a frame above 69632 bytes inside a
 *   smaller message is dropped and counted; each connection's write queue is bounded
 *   (websocket-port.ts).
 * - Certificates and the token are read once, when the listener opens.
 * - No timeouts: an idle VM stays connected as long as it likes.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import { createServer as createHttpServer, type IncomingMessage, type Server } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import type { WebsocketNetdevConfig } from "../config.js";
import type { Hub } from "../hub/hub.js";
import { hostFaults, type Logger } from "../log.js";
import { bindHost, describeError, formatAddress, type InetEndpoint } from "./address.js";
import type { NetdevHandle } from "./netdev-handle.js";
import type { WebsocketFraming } from "./websocket-framing.js";
import { WebsocketPort } from "./websocket-port.js";

export const defaultWebsocketMaxClients = 64;
export const defaultWebsocketMaxPayload = 256 * 1024;

export interface WebsocketListenerOptions {
  /** netdev id; clients are named "ID#N" */
  id: string;
  hub: Hub;
  log: Logger;
  listen: { host: string; port: number };
  framing: WebsocketFraming;
  /** the only request path accepted; undefined = any */
  path?: string;
  /** Origin values accepted ("*" = any); upgrades without Origin are always accepted */
  origins?: readonly string[];
  /** file holding the token clients must present */
  tokenFile?: string;
  /** PEM files: serve wss:// */
  cert?: string;
  key?: string;
  maxClients?: number;
  maxPayload?: number;
  maxQueuedBytes?: number;
}

export interface WebsocketListenerStats {
  accepted: number;
  active: number;
  /** upgrades refused, by reason: "origin", "token", "path", "too-many-clients" */
  refused: Record<string, number>;
}

export class WebsocketListener {
  private readonly clientPorts = new Set<WebsocketPort>();
  private readonly wss: WebSocketServer;
  private readonly log: Logger;
  private readonly maxClients: number;
  private readonly origins: ReadonlySet<string>;
  private readonly anyOrigin: boolean;
  private readonly sockets = new Set<Duplex>();
  private seq = 0;
  private accepted = 0;
  private readonly refused = new Map<string, number>();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly server: Server,
    private readonly options: WebsocketListenerOptions,
    private readonly tokenDigest: Buffer | undefined,
    readonly address: InetEndpoint,
    readonly secure: boolean,
  ) {
    this.log = options.log;
    this.maxClients = options.maxClients ?? defaultWebsocketMaxClients;
    const origins = (options.origins ?? []).map((o) => o.toLowerCase());
    this.anyOrigin = origins.includes("*");
    this.origins = new Set(origins);
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: options.maxPayload ?? defaultWebsocketMaxPayload,
      perMessageDeflate: false,
      clientTracking: false,
      skipUTF8Validation: true,
    });
    server.on("request", (_req, res) => {
      res.writeHead(426, { "content-type": "text/plain", upgrade: "websocket", connection: "close" });
      res.end("usernet: this is a WebSocket endpoint for a virtual NIC\n");
    });
    server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.upgrade(req, socket, head),
    );
    server.on("clientError", (_err, socket) => socket.destroy());
    server.on("error", (err: NodeJS.ErrnoException) =>
      hostFaults.report(
        "websocket-listener-accept",
        err.code ?? "EIO",
        "a client was refused",
        { error: describeError(err) },
        this.log,
      ),
    );
  }

  /** Listens; rejects with an Error naming the address or file when that is impossible. */
  static async open(options: WebsocketListenerOptions): Promise<WebsocketListener> {
    const where = `${bindHost(options.listen.host)}:${options.listen.port}`;
    const fail = (why: string) => new Error(`${options.id}: cannot listen on ${where}: ${why}`);
    const read = async (what: string, file: string) => {
      try {
        return await readFile(file);
      } catch (err) {
        throw new Error(`${options.id}: cannot read the ${what} ${file}: ${describeError(err)}`);
      }
    };
    let tokenDigest: Buffer | undefined;
    if (options.tokenFile !== undefined) {
      const token = (await read("token file", options.tokenFile)).toString("utf8").trim();
      if (token === "") throw new Error(`${options.id}: the token file ${options.tokenFile} is empty`);
      tokenDigest = digest(token);
    }
    if ((options.cert === undefined) !== (options.key === undefined)) {
      throw new Error(`${options.id}: cert= and key= go together`);
    }
    let server: Server;
    if (options.cert !== undefined && options.key !== undefined) {
      const cert = await read("certificate", options.cert);
      const key = await read("key", options.key);
      try {
        server = createHttpsServer({ cert, key }) as unknown as Server;
      } catch (err) {
        throw new Error(`${options.id}: cert=${options.cert} key=${options.key}: ${describeError(err)}`);
      }
    } else server = createHttpServer();
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => reject(fail(describeError(err)));
      server.once("error", onError);
      server.listen({ host: bindHost(options.listen.host), port: options.listen.port }, () => {
        server.off("error", onError);
        resolve();
      });
    });
    const a = server.address();
    const port = a && typeof a === "object" ? a.port : options.listen.port;
    const bound: InetEndpoint = { type: "inet", host: options.listen.host, port };
    const listener = new WebsocketListener(server, options, tokenDigest, bound, options.cert !== undefined);
    const log = listener.log;
    log.info("listening", { url: listener.url(), framing: options.framing });
    const pages = listener.anyOrigin
      ? "EVERY web page"
      : listener.origins.size > 0
        ? `web pages from ${[...listener.origins].join(" ")}`
        : "no web page";
    const who =
      `${options.id}: every local user can connect to ${formatAddress(bound)} and attach to hub ${options.hub.id} ` +
      `(a TCP listener cannot tell users apart); ${pages} may open it in a browser`;
    if (listener.anyOrigin && tokenDigest === undefined) log.warn(`${who}, with no token (origin=*)`);
    else log.warn(`${who}${tokenDigest ? ", each with the token" : ""}`);
    return listener;
  }

  /** ws://HOST:PORT/PATH as a client would write it (0.0.0.0 reached at 127.0.0.1) */
  url(): string {
    const h = this.address.host === "" || this.address.host === "0.0.0.0" ? "127.0.0.1" : this.address.host;
    return `${this.secure ? "wss" : "ws"}://${h}:${this.address.port}${this.options.path ?? "/"}`;
  }

  clients(): readonly WebsocketPort[] {
    return [...this.clientPorts];
  }

  stats(): WebsocketListenerStats {
    return {
      accepted: this.accepted,
      active: this.clientPorts.size,
      refused: Object.fromEntries(this.refused),
    };
  }

  describe(): string {
    if (this.closing) return `closed (was listening on ${this.url()})`;
    const n = this.clientPorts.size;
    const refused = [...this.refused.values()].reduce((a, b) => a + b, 0);
    return (
      `listening on ${this.url()} (${this.options.framing} framing), ${n} client${n === 1 ? "" : "s"}` +
      (refused > 0 ? `, ${refused} refused` : "")
    );
  }

  /** Stops listening, disconnects every client, detaches their ports. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const port of this.clientPorts) this.forget(port);
    // upgraded sockets belong to ws now; server.close() waits for them otherwise
    for (const s of this.sockets) s.destroy();
    this.wss.close();
    await closed;
    this.log.info("listener closed", { url: this.url() });
  }

  private refuse(socket: Duplex, status: number, reason: string, detail: string): void {
    this.refused.set(reason, (this.refused.get(reason) ?? 0) + 1);
    this.log.warn(`upgrade refused: ${detail}`, { reason });
    const text = `${status} ${statusText[status] ?? "Refused"}`;
    socket.once("finish", () => socket.destroy());
    socket.end(`HTTP/1.1 ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on("error", () => socket.destroy());
    if (this.closing || this.options.hub.closed) {
      socket.destroy();
      return;
    }
    const url = new URL(req.url ?? "/", "http://x");
    const origin = req.headers.origin;
    if (this.options.path !== undefined && url.pathname !== this.options.path) {
      return this.refuse(socket, 404, "path", `path ${url.pathname} is not ${this.options.path}`);
    }
    if (origin !== undefined && !this.anyOrigin && !this.origins.has(origin.toLowerCase())) {
      return this.refuse(
        socket,
        403,
        "origin",
        `a page from ${origin} is not allowed (allow it with origin=${origin})`,
      );
    }
    if (this.tokenDigest !== undefined && !this.tokenMatches(req, url)) {
      return this.refuse(socket, 401, "token", "missing or wrong token");
    }
    if (this.clientPorts.size >= this.maxClients) {
      return this.refuse(socket, 503, "too-many-clients", `${this.maxClients} clients are connected`);
    }
    const peer = `${req.socket.remoteAddress}:${req.socket.remotePort}${origin ? ` (${origin})` : ""}`;
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, socket, peer));
  }

  private tokenMatches(req: IncomingMessage, url: URL): boolean {
    const expected = this.tokenDigest as Buffer;
    const auth = req.headers.authorization;
    const bearer = auth?.startsWith("Bearer ") ? auth.slice(7).trim() : undefined;
    const given = url.searchParams.get("token") ?? bearer;
    return given !== undefined && given !== null && timingSafeEqual(digest(given), expected);
  }

  private accept(ws: WebSocket, socket: Duplex, peer: string): void {
    const hub = this.options.hub;
    if (this.closing || hub.closed) {
      ws.terminate();
      return;
    }
    this.accepted++;
    const name = `${this.options.id}#${++this.seq}`;
    this.sockets.add(socket);
    const port = new WebsocketPort(
      name,
      "websocket",
      ws,
      peer,
      {
        framing: this.options.framing,
        maxQueuedBytes: this.options.maxQueuedBytes,
      },
      this.log,
      (reason) => {
        this.sockets.delete(socket);
        if (this.clientPorts.has(port)) {
          this.forget(port);
          this.log.info("client disconnected", { port: name, peer, reason });
        }
      },
    );
    try {
      hub.attach(port);
    } catch (err) {
      this.log.error("cannot attach client to the hub; connection closed", {
        port: name,
        error: describeError(err),
      });
      ws.terminate();
      return;
    }
    this.clientPorts.add(port);
    this.log.info("client connected", { port: name, peer });
  }

  private forget(port: WebsocketPort): void {
    this.clientPorts.delete(port);
    this.options.hub.detach(port);
    port.close();
  }
}

/** `-netdev websocket` as a netdev handle (ports/netdev.ts loads this file only for one) */
export async function openWebsocketNetdev(
  cfg: WebsocketNetdevConfig,
  hub: Hub,
  log: Logger,
  options: { maxClients?: number; maxQueuedBytes?: number } = {},
): Promise<NetdevHandle> {
  const listener = await WebsocketListener.open({
    id: cfg.id,
    hub,
    log,
    listen: cfg.listen,
    framing: cfg.framing,
    path: cfg.path,
    origins: cfg.origins,
    tokenFile: cfg.tokenFile,
    cert: cfg.cert,
    key: cfg.key,
    maxClients: options.maxClients,
    maxQueuedBytes: options.maxQueuedBytes,
  });
  return {
    id: cfg.id,
    kind: "websocket",
    address: listener.address,
    describe: () => listener.describe(),
    ports: () => listener.clients(),
    close: () => listener.close(),
  };
}

const statusText: Record<number, string> = {
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  503: "Service Unavailable",
};

const digest = (s: string): Buffer => createHash("sha256").update(s, "utf8").digest();
