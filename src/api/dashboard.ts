/**
 * The dashboard: one web page (web/dashboard/: plain HTML, CSS and JS shipped in the
 * package, no build step, nothing from a CDN) over the management API's own routes,
 * and the event stream that keeps it live.
 *
 *   GET /               the page, with its CSS and script inlined (so nothing else needs
 *                       the token in a URL); only on TCP listeners with a token, opened
 *                       as /?token=... (server.ts checks it); a strict CSP with a nonce
 *   GET /v1/events      server-sent events: `state` (status, leases, flows, forwards)
 *                       every `interval` ms (1000; 250..10000) when it changed, `log`
 *                       for each log line as it is written, `log-tail` (the last lines)
 *                       at the start; a comment every 15 s keeps proxies from timing out
 *
 * The page reads the token from its URL, drops it from the address bar and sends it as
 * `Authorization: Bearer` on every request, the event stream included (read with
 * fetch, as EventSource cannot send headers). Forwards are added and removed with
 * POST/DELETE /v1/forwards, a capture is GET /v1/hubs/:id/capture?seconds=N saved as a
 * file. Limits: the flow lists in an event are cut to the 500 largest of each protocol
 * (the totals are in the status); every open stream costs one snapshot per interval.
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { FastifyInstance } from "fastify";
import type { ApiLogTail, UsernetService } from "./service.js";

export interface DashboardOptions {
  /** serve the page at / */
  page: boolean;
  logTail?: ApiLogTail;
  /** registers a stop function the server calls when it closes; returns the unregister function */
  track(stop: () => void): () => void;
}

const assetsDir = new URL("../../web/dashboard/", import.meta.url);
const maxFlowsPerProtocol = 500;
let assets: Promise<{ html: string; css: string; js: string }> | undefined;

const loadAssets = () =>
  (assets ??= Promise.all(
    ["index.html", "style.css", "app.js"].map((f) => readFile(new URL(f, assetsDir), "utf8")),
  ).then(([html, css, js]) => ({ html: html ?? "", css: css ?? "", js: js ?? "" })));

type FlowRow = { toHostBytes?: number; toGuestBytes?: number; txBytes?: number; rxBytes?: number };
const flowBytes = (f: FlowRow) =>
  (f.toHostBytes ?? 0) + (f.toGuestBytes ?? 0) + (f.txBytes ?? 0) + (f.rxBytes ?? 0);
const largest = (rows: object[]) =>
  rows.length <= maxFlowsPerProtocol
    ? rows
    : [...rows]
        .sort((a, b) => flowBytes(b as FlowRow) - flowBytes(a as FlowRow))
        .slice(0, maxFlowsPerProtocol);

export async function registerDashboard(
  app: FastifyInstance,
  facade: UsernetService,
  options: DashboardOptions,
): Promise<void> {
  if (options.page) {
    const { html, css, js } = await loadAssets();
    app.get("/", { schema: { hide: true } }, async (_req, reply) => {
      const nonce = randomBytes(16).toString("base64");
      const page = html
        .replace("/*STYLE*/", () => css)
        .replace("/*SCRIPT*/", () => js)
        .replaceAll("NONCE", nonce);
      return reply
        .type("text/html; charset=utf-8")
        .header(
          "content-security-policy",
          `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
        )
        .header("referrer-policy", "no-referrer")
        .header("cache-control", "no-store")
        .send(page);
    });
  }

  app.get<{ Querystring: { interval?: string } }>(
    "/v1/events",
    {
      schema: {
        summary:
          "Server-sent events: state (status, leases, flows, forwards) when it changes, log lines as they are written",
        querystring: {
          type: "object",
          properties: { interval: { type: "string", pattern: "^[0-9]{1,5}$" } },
          additionalProperties: false,
        },
        response: {
          200: {
            description: "text/event-stream",
            content: { "text/event-stream": { schema: { type: "string" } } },
          },
        },
      },
    },
    (req, reply) => {
      const interval = Math.min(10_000, Math.max(250, Number(req.query.interval ?? 1000)));
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-store",
        "x-accel-buffering": "no",
      });
      const send = (event: string, data: unknown) => {
        res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      };
      let last = "";
      const tick = () => {
        try {
          const flows = facade.flows();
          const state = {
            status: facade.status(),
            leases: facade.leases(),
            flows: { tcp: largest(flows.tcp), udp: largest(flows.udp), icmp: largest(flows.icmp) },
            forwards: facade.forwards.list(),
          };
          const text = JSON.stringify(state);
          if (text === last) return;
          last = text;
          // a slow reader skips states rather than queueing them
          if (res.writableLength > 1 << 20) return;
          res.write(`event: state\ndata: ${JSON.stringify({ at: Date.now(), ...state })}\n\n`);
        } catch (e) {
          facade.internalError("dashboard events", e);
        }
      };
      const tail = options.logTail;
      send("log-tail", tail?.lines() ?? []);
      tick();
      const timer = setInterval(tick, interval);
      const keepAlive = setInterval(() => res.write(": keep-alive\n\n"), 15_000);
      const unsubscribe = tail?.subscribe((line) => {
        if (res.writableLength < 1 << 20) send("log", line);
      });
      let untrack = () => {};
      const stop = () => {
        clearInterval(timer);
        clearInterval(keepAlive);
        unsubscribe?.();
        untrack();
        res.end();
      };
      untrack = options.track(stop);
      res.once("close", stop);
    },
  );
}
