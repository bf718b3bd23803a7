/**
 * The routes of the management API, version 1. Each one is a thin translation between
 * HTTP and one facade call; what a route may do is the facade's business.
 *
 *   GET    /v1/status                 version, uptime, hubs, netdevs (with addresses), ports, counters
 *   GET    /v1/hubs                   hubs and their port names
 *   GET    /v1/hubs/:id/ports         one hub's ports with their counters
 *   POST   /v1/hubs/:id/ports         attach a QEMU listener/connector/datagram port or a WebSocket listener (201)
 *   DELETE /v1/ports/:id              close a netdev (by id) or one port (by name) (204)
 *   GET    /v1/hubs/:id/capture       a live pcap stream of the hub (?count=N, ?seconds=S)
 *   GET    /v1/leases                 DHCP leases per user netdev
 *   GET    /v1/flows                  TCP relays, UDP and ICMP NAT flows
 *   GET    /v1/forwards               runtime port forwards
 *   POST   /v1/forwards               add one (201; 409 when it conflicts)
 *   DELETE /v1/forwards/:id           remove one (204)
 *   GET    /metrics                   Prometheus text format
 *   GET    /openapi.json              this API, described
 */

import { createRequire } from "node:module";
import type { FastifyInstance } from "fastify";
import { ApiError, fromFacade } from "./errors.js";
import { createMetrics } from "./metrics.js";
import {
  CaptureQuery,
  errorResponses,
  FlowsView,
  ForwardParams,
  ForwardRequest,
  ForwardView,
  HubParams,
  HubView,
  LeasesView,
  NameParams,
  NetdevView,
  PortRequest,
  PortView,
  StatusView,
} from "./schemas.js";
import type { PortConfig, UsernetService } from "./service.js";

const { Type } = createRequire(import.meta.url)("@sinclair/typebox") as typeof import("@sinclair/typebox");

export interface RouteOptions {
  /** called with a function that stops a capture, so the server can end them when it closes */
  trackCapture(stop: () => void): () => void;
}

const capturesMaxSeconds = 86_400;

export function registerRoutes(app: FastifyInstance, facade: UsernetService, options: RouteOptions): void {
  const hubNumber = (id: string): number => {
    const n = Number(id);
    if (!facade.hubList().some((h) => h.id === n))
      throw new ApiError(404, "not-found", `there is no hub ${id}`);
    return n;
  };
  const forwards = facade.forwards;

  app.get(
    "/v1/status",
    { schema: { summary: "Version, uptime, hubs, netdevs, ports, counters", response: { 200: StatusView } } },
    async () => facade.status(),
  );

  app.get("/v1/hubs", { schema: { summary: "Hubs", response: { 200: Type.Array(HubView) } } }, async () =>
    facade.hubList(),
  );

  app.get<{ Params: { id: string } }>(
    "/v1/hubs/:id/ports",
    {
      schema: {
        summary: "The ports of a hub",
        params: HubParams,
        response: { 200: Type.Array(PortView), 404: errorResponses[404] },
      },
    },
    async (req) => {
      const ports = facade.hubPorts(Number(req.params.id));
      if (!ports) throw new ApiError(404, "not-found", `there is no hub ${req.params.id}`);
      return ports;
    },
  );

  app.post<{ Params: { id: string }; Body: PortRequest }>(
    "/v1/hubs/:id/ports",
    {
      schema: {
        summary:
          "Attach a QEMU listener, connector or datagram port, a VDE, VXLAN or WebSocket port, to a hub",
        params: HubParams,
        body: PortRequest,
        response: { 201: NetdevView, ...errorResponses },
      },
    },
    async (req, reply) => {
      const hub = hubNumber(req.params.id);
      const cfg = portConfig(req.body, hub);
      try {
        const view = await facade.openPort(hub, cfg);
        return reply.code(201).send(view);
      } catch (e) {
        throw fromFacade(e);
      }
    },
  );

  app.delete<{ Params: { id: string } }>(
    "/v1/ports/:id",
    {
      schema: {
        summary: "Close a netdev (by id) or a single port (by name, e.g. a listener's client s0#2)",
        params: NameParams,
        response: { 204: Type.Null(), ...errorResponses },
      },
    },
    async (req, reply) => {
      try {
        await facade.closePort(req.params.id);
      } catch (e) {
        throw fromFacade(e);
      }
      return reply.code(204).send();
    },
  );

  app.get<{ Params: { id: string }; Querystring: CaptureQuery }>(
    "/v1/hubs/:id/capture",
    {
      schema: {
        summary: "A live pcap capture of everything the hub floods; ends when the client disconnects",
        params: HubParams,
        querystring: CaptureQuery,
        // the media type per status: a 404 is a JSON error, not pcap
        response: {
          200: {
            description: "pcap (libpcap 2.4, Ethernet)",
            content: { "application/vnd.tcpdump.pcap": { schema: Type.String() } },
          },
          404: errorResponses[404],
        },
      },
    },
    (req, reply) => {
      const hub = hubNumber(req.params.id);
      const count = req.query.count === undefined ? undefined : Number(req.query.count);
      const seconds = req.query.seconds === undefined ? undefined : Number(req.query.seconds);
      if (seconds !== undefined && (seconds <= 0 || seconds > capturesMaxSeconds)) {
        throw new ApiError(400, "invalid-request", `seconds must be in (0, ${capturesMaxSeconds}]`);
      }
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        "content-type": "application/vnd.tcpdump.pcap",
        "content-disposition": `attachment; filename="hub${hub}.pcap"`,
        "cache-control": "no-store",
      });
      let untrack = () => {};
      try {
        const capture = facade.capture(hub, res, {
          count,
          durationMs: seconds === undefined ? undefined : seconds * 1000,
          onEnd: () => untrack(),
        });
        untrack = options.trackCapture(capture.stop);
        req.log.info({ hub, port: capture.port }, "capture started");
      } catch (e) {
        req.log.error({ err: e }, "capture failed to start");
        res.destroy();
      }
    },
  );

  app.get("/v1/leases", { schema: { summary: "DHCP leases", response: { 200: LeasesView } } }, async () =>
    facade.leases(),
  );

  app.get("/v1/flows", { schema: { summary: "NAT flows", response: { 200: FlowsView } } }, async () =>
    facade.flows(),
  );

  app.get(
    "/v1/forwards",
    { schema: { summary: "Port forwards", response: { 200: Type.Array(ForwardView) } } },
    async () => forwards.list(),
  );

  app.post<{ Body: ForwardRequest }>(
    "/v1/forwards",
    {
      schema: {
        summary: "Add a port forward from the host to a guest",
        body: ForwardRequest,
        response: { 201: ForwardView, ...errorResponses },
      },
    },
    async (req, reply) => {
      const b = req.body;
      try {
        const view = await forwards.add(b.netdev, {
          proto: b.proto ?? "tcp",
          hostAddr: b.hostAddr ?? "",
          hostPort: b.hostPort,
          guestAddr: b.guestAddr ?? "",
          guestPort: b.guestPort,
          preserveSource: b.preserveSource ?? false,
        });
        return reply.code(201).send(view);
      } catch (e) {
        throw fromFacade(e);
      }
    },
  );

  app.delete<{ Params: { id: string } }>(
    "/v1/forwards/:id",
    {
      schema: {
        summary: "Remove a port forward",
        params: ForwardParams,
        response: { 204: Type.Null(), 404: errorResponses[404], 507: errorResponses[507] },
      },
    },
    async (req, reply) => {
      let removed: boolean;
      try {
        removed = await forwards.remove(Number(req.params.id));
      } catch (e) {
        throw fromFacade(e);
      }
      if (!removed) throw new ApiError(404, "not-found", `there is no forward ${req.params.id}`);
      return reply.code(204).send();
    },
  );

  const metrics = createMetrics(facade);
  app.get(
    "/metrics",
    { schema: { summary: "Prometheus metrics", produces: ["text/plain"], response: { 200: Type.String() } } },
    async (_req, reply) => {
      const text = await metrics.metrics();
      return reply.type(metrics.contentType).send(text);
    },
  );

  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
}

/** The request body as the netdev config openNetdev takes ("" id: the facade picks one). */
function portConfig(b: PortRequest, hub: number): PortConfig {
  const id = b.id ?? "";
  switch (b.type) {
    case "stream":
      if (!b.server && b.addr.type === "inet" && b.addr.port === 0) {
        throw new ApiError(400, "invalid-request", "a connecting stream needs a port in 1..65535");
      }
      return { type: "stream", id, hub, server: b.server, addr: b.addr, reconnect: b.reconnect ?? 0 };
    case "socket": {
      if (b.mode !== "listen" && b.addr.port === 0) {
        throw new ApiError(400, "invalid-request", `socket mode ${b.mode} needs addr.port in 1..65535`);
      }
      if (b.mode !== "listen" && b.addr.host === "") {
        throw new ApiError(400, "invalid-request", `socket mode ${b.mode} needs addr.host`);
      }
      const cfg: PortConfig = { type: "socket", id, hub, mode: b.mode, addr: b.addr };
      if (b.localAddr) cfg.localAddr = b.localAddr;
      return cfg;
    }
    case "dgram": {
      if (b.remote.port === 0) throw new ApiError(400, "invalid-request", "remote.port must be in 1..65535");
      const cfg: PortConfig = { type: "dgram", id, hub, remote: b.remote };
      if (b.local) cfg.local = b.local;
      return cfg;
    }
    case "vde": {
      if ("listen" in b) return { type: "vde", id, hub, mode: "listen", dir: b.listen };
      const cfg: PortConfig = { type: "vde", id, hub, mode: "join", dir: b.sock };
      if (b.port) cfg.port = b.port;
      if (b.group !== undefined) cfg.group = b.group;
      if (b.mode !== undefined) cfg.permissions = Number.parseInt(b.mode, 8);
      return cfg;
    }
    case "websocket": {
      if ((b.cert === undefined) !== (b.key === undefined)) {
        throw new ApiError(400, "invalid-request", "cert and key go together");
      }
      const { type: _, id: __, ...rest } = b;
      return {
        ...rest,
        type: "websocket",
        id,
        hub,
        listen: { host: b.listen.host || "0.0.0.0", port: b.listen.port },
        framing: b.framing ?? "raw",
        origins: b.origins ?? [],
      };
    }
    case "vxlan": {
      const dstport = b.dstport ?? 4789;
      if (b.remotes.length === 0 && !b.group) {
        throw new ApiError(400, "invalid-request", "vxlan needs remotes (one or more) or a group");
      }
      if (b.remotes.length > 0 && b.group) {
        throw new ApiError(400, "invalid-request", "vxlan takes remotes or a group, not both");
      }
      const cfg: PortConfig = {
        type: "vxlan",
        id,
        hub,
        vni: b.vni,
        remotes: b.remotes,
        local: { host: b.local.host, port: b.local.port || dstport },
        dstport,
      };
      if (b.group) cfg.group = b.group;
      if (b.dev !== undefined) cfg.dev = b.dev;
      if (b.ageingSeconds !== undefined) cfg.ageingSeconds = b.ageingSeconds;
      if (b.maxMacs !== undefined) cfg.maxMacs = b.maxMacs;
      return cfg;
    }
  }
}
