/**
 * Request and response schemas of the management API (TypeBox → JSON Schema). Fastify
 * validates requests against them (unknown fields are errors, nothing is coerced in
 * bodies) and @fastify/swagger turns them into /openapi.json.
 */
import { createRequire } from "node:module";
import type { Static } from "@sinclair/typebox";

// require()d for the same reason as fastify (server.ts): its CommonJS build costs less RSS
const { Type } = createRequire(import.meta.url)("@sinclair/typebox") as typeof import("@sinclair/typebox");

const ipv4Pattern =
  "^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$";
const ipv4 = (description: string) => Type.String({ pattern: ipv4Pattern, description });
const ipv4OrAny = (description: string) =>
  Type.Union([Type.Literal(""), Type.String({ pattern: ipv4Pattern })], { description });
const port = (description: string) => Type.Integer({ minimum: 0, maximum: 65535, description });
const strict = { additionalProperties: false } as const;

export const ErrorBody = Type.Object({
  error: Type.Object({
    reason: Type.String({ description: "short kebab-case reason, stable for scripts" }),
    message: Type.String(),
  }),
});

const Stats = Type.Record(Type.String(), Type.Unknown());
const Counts = Type.Record(Type.String(), Type.Number());

export const PortView = Type.Object({
  name: Type.String(),
  kind: Type.String(),
  hub: Type.Integer(),
  netdev: Type.String(),
  description: Type.String(),
  stats: Type.Object({
    rxFrames: Type.Number(),
    rxBytes: Type.Number(),
    txFrames: Type.Number(),
    txBytes: Type.Number(),
    drops: Counts,
  }),
});

export const HubView = Type.Object({
  id: Type.Integer(),
  ports: Type.Array(Type.String()),
  stats: Stats,
});

export const NetdevView = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  hub: Type.Integer(),
  description: Type.String(),
  address: Type.Optional(Type.String()),
  ports: Type.Array(Type.String()),
  user: Type.Optional(Stats),
  counters: Type.Optional(Stats),
});

export const StatusView = Type.Object({
  version: Type.String(),
  uptimeSeconds: Type.Number(),
  internalErrors: Type.Integer(),
  hostFaults: Type.Array(Type.Object({ where: Type.String(), code: Type.String(), count: Type.Integer() })),
  hubs: Type.Array(HubView),
  netdevs: Type.Array(NetdevView),
  ports: Type.Array(PortView),
});

export const LeasesView = Type.Array(
  Type.Object({
    netdev: Type.String(),
    hub: Type.Integer(),
    leases: Type.Array(
      Type.Object({
        mac: Type.String(),
        clientId: Type.Optional(Type.String()),
        ip: Type.String(),
        state: Type.String({ description: "offered, bound, released, bootp or expired" }),
        expiresAt: Type.Number({ description: "ms since the Unix epoch" }),
        hostname: Type.Optional(Type.String()),
        static: Type.Boolean(),
      }),
    ),
    leases6: Type.Array(
      Type.Object({
        mac: Type.String(),
        duid: Type.String({ description: "the client's DUID, hex" }),
        iaid: Type.Integer(),
        ip: Type.String(),
        state: Type.String({ description: "offered, bound, released or expired" }),
        expiresAt: Type.Number({ description: "ms since the Unix epoch" }),
      }),
    ),
    neighbours6: Type.Array(
      Type.Object({
        address: Type.String(),
        mac: Type.String(),
        expiresInMs: Type.Number({ description: "until forgotten unless heard from again" }),
      }),
    ),
  }),
);

const flow = Type.Record(Type.String(), Type.Unknown());
export const FlowsView = Type.Object({
  tcp: Type.Array(flow, { description: "guest, remote, host, state, toHostBytes, toGuestBytes, ageMs" }),
  udp: Type.Array(flow, { description: "guest, lastDestination, tx/rx packets and bytes, ageMs" }),
  icmp: Type.Array(flow, { description: "guest, echoId, lastDestination, echoes, replies, ageMs" }),
});

export const ForwardView = Type.Object({
  id: Type.Integer(),
  netdev: Type.String(),
  proto: Type.Union([Type.Literal("tcp"), Type.Literal("udp")]),
  hostAddr: Type.String(),
  hostPort: Type.Integer(),
  guestAddr: Type.String(),
  guestPort: Type.Integer(),
  preserveSource: Type.Boolean(),
  bound: Type.Optional(Type.Object({ address: Type.String(), port: Type.Integer() })),
  error: Type.Optional(Type.String()),
});

export const ForwardRequest = Type.Object(
  {
    netdev: Type.Optional(Type.String({ minLength: 1, description: "user netdev id; default: the first" })),
    proto: Type.Optional(Type.Union([Type.Literal("tcp"), Type.Literal("udp")], { default: "tcp" })),
    hostAddr: Type.Optional(ipv4OrAny('host address to bind; "" (default) = every address')),
    hostPort: port("host port; 0 = any free port"),
    guestAddr: Type.Optional(ipv4OrAny('guest address; "" (default) = the first DHCP address')),
    guestPort: Type.Integer({ minimum: 1, maximum: 65535 }),
    preserveSource: Type.Optional(Type.Boolean()),
  },
  strict,
);
export type ForwardRequest = Static<typeof ForwardRequest>;

const inet = Type.Object(
  { type: Type.Literal("inet"), host: ipv4("IPv4 address"), port: port("0 = any free port (listeners)") },
  strict,
);
const unix = Type.Object(
  { type: Type.Literal("unix"), path: Type.String({ minLength: 1, maxLength: 107 }) },
  strict,
);
const id = Type.Optional(Type.String({ pattern: "^[A-Za-z][A-Za-z0-9._-]*$", description: "default: apiN" }));
const hostPort = Type.Object({ host: Type.Union([Type.Literal(""), ipv4("")]), port: port("") }, strict);

export const PortRequest = Type.Union([
  Type.Object(
    {
      type: Type.Literal("stream"),
      id,
      server: Type.Boolean(),
      addr: Type.Union([inet, unix]),
      reconnect: Type.Optional(Type.Integer({ minimum: 0, maximum: 86400 })),
    },
    strict,
  ),
  Type.Object(
    {
      type: Type.Literal("socket"),
      id,
      mode: Type.Union([
        Type.Literal("listen"),
        Type.Literal("connect"),
        Type.Literal("mcast"),
        Type.Literal("udp"),
      ]),
      addr: hostPort,
      localAddr: Type.Optional(hostPort),
    },
    strict,
  ),
  Type.Object(
    {
      type: Type.Literal("dgram"),
      id,
      local: Type.Optional(inet),
      remote: inet,
    },
    strict,
  ),
]);
export type PortRequest = Static<typeof PortRequest>;

export const HubParams = Type.Object({
  id: Type.String({ pattern: "^[0-9]{1,9}$", description: "hub number" }),
});
export const NameParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 200 }) });
export const ForwardParams = Type.Object({ id: Type.String({ pattern: "^[0-9]{1,9}$" }) });
export const CaptureQuery = Type.Object(
  {
    count: Type.Optional(Type.String({ pattern: "^[1-9][0-9]{0,8}$", description: "stop after N frames" })),
    seconds: Type.Optional(
      Type.String({ pattern: "^[0-9]{1,6}(\\.[0-9]{1,3})?$", description: "stop after S seconds" }),
    ),
  },
  strict,
);
export type CaptureQuery = Static<typeof CaptureQuery>;

export const errorResponses = {
  400: ErrorBody,
  404: ErrorBody,
  409: ErrorBody,
  507: ErrorBody,
};
