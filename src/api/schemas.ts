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
/** IPv6 text, loosely (forward-rule.ts checks it exactly) */
const ipv6Pattern = "^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$";
const ipOrAny = (description: string) =>
  Type.Union(
    [Type.Literal(""), Type.String({ pattern: ipv4Pattern }), Type.String({ pattern: ipv6Pattern })],
    { description },
  );
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
  guests: Type.Optional(
    Type.Array(Type.Object({ mac: Type.String(), ip: Type.Optional(Type.String()), netdev: Type.String() }), {
      description: "guests whose frames came in through this port (MAC, and address when known)",
    }),
  ),
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
    neighbours: Type.Optional(
      Type.Array(Type.Object({ ip: Type.String(), mac: Type.String() }), {
        description: "the user network's ARP table",
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
    hostAddr: Type.Optional(
      ipOrAny('host address to bind, IPv4 or IPv6; "" (default) = every IPv4 address, "::" = every address'),
    ),
    hostPort: port("host port; 0 = any free port"),
    guestAddr: Type.Optional(
      ipOrAny(
        'guest address, IPv4 or IPv6; "" (default) = the first DHCP address, or for an IPv6 host address the guest\'s first IPv6 address',
      ),
    ),
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
const vdeDir = (description: string) => Type.String({ minLength: 1, maxLength: 100, description });
const id = Type.Optional(Type.String({ pattern: "^[A-Za-z][A-Za-z0-9._-]*$", description: "default: apiN" }));
const hostPort = Type.Object({ host: Type.Union([Type.Literal(""), ipv4("")]), port: port("") }, strict);

const vtep = Type.Object(
  { host: ipv4("IPv4 address"), port: Type.Integer({ minimum: 1, maximum: 65535 }) },
  strict,
);

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
  // two bodies, each with its directory required: joining a switch, or being one
  Type.Object(
    {
      type: Type.Literal("vde"),
      id,
      sock: vdeDir("join the vde_switch whose directory (holding ctl) this is"),
      port: Type.Optional(Type.Integer({ minimum: 0, maximum: 16777215, description: "0 (default) = any" })),
      group: Type.Optional(Type.String({ pattern: "^[A-Za-z0-9_][A-Za-z0-9_.-]*\\$?$" })),
      mode: Type.Optional(Type.String({ pattern: "^[0-7]{1,4}$", description: "octal, default 0700" })),
    },
    strict,
  ),
  Type.Object({ type: Type.Literal("vde"), id, listen: vdeDir("be a VDE switch at this directory") }, strict),
  Type.Object(
    {
      type: Type.Literal("websocket"),
      id,
      listen: hostPort,
      path: Type.Optional(
        Type.String({
          pattern: "^/[A-Za-z0-9._~!$&'()*+;=:@%/-]*$",
          maxLength: 1024,
          description: "default: any",
        }),
      ),
      framing: Type.Optional(
        Type.Union([Type.Literal("raw"), Type.Literal("qemu")], { description: "default raw" }),
      ),
      origins: Type.Optional(
        Type.Array(
          Type.String({ pattern: "^(\\*|[A-Za-z][A-Za-z0-9+.-]*://[^/\\s?#,]+)$", maxLength: 512 }),
          {
            maxItems: 64,
            description: "web page origins allowed to connect (* = any); default none",
          },
        ),
      ),
      tokenFile: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
      cert: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: "PEM file: wss://" })),
      key: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    },
    strict,
  ),
  Type.Object(
    {
      type: Type.Literal("vxlan"),
      id,
      vni: Type.Integer({ minimum: 0, maximum: 16777215 }),
      remotes: Type.Array(vtep, { maxItems: 64, description: "unicast VTEPs that get flooded frames" }),
      group: Type.Optional(vtep),
      dev: Type.Optional(Type.String({ pattern: "^[^/:\\s]{1,15}$", description: "underlay interface" })),
      local: Type.Object({ host: ipv4("bind address; 0.0.0.0 = every address"), port: port("") }, strict),
      dstport: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: "default 4789" })),
      ageingSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400 })),
      maxMacs: Type.Optional(Type.Integer({ minimum: 1, maximum: 1048576 })),
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
