/**
 * `usernet ctl ports add [HUB] NETDEV`: a `-netdev` value, parsed by the same grammar as
 * the command line, turned into the body of POST /v1/hubs/HUB/ports. The hub is HUB
 * when given, else the one the value's hubid= names (default 0). The kinds the API can
 * attach at run time are stream, socket, dgram (inet), vde, vxlan and websocket; user networks
 * and TAPs are refused here with a pointer to the command line. Files are made
 * absolute: usernet does not share ctl's working directory. Loaded only for this
 * command (the -netdev grammar is not needed by the other ctl commands).
 */
import { resolve as resolvePath } from "node:path";
import type { NetdevConfig } from "../config.js";
import { NetdevList } from "./netdev.js";
import { UsageError } from "./usage-error.js";

export interface PortRequest {
  hub: number;
  body: Record<string, unknown>;
}

export function portRequest(netdev: string, hubArg?: string): PortRequest {
  const where = `ctl: ports add ${netdev}`;
  let cfg: NetdevConfig;
  try {
    cfg = new NetdevList().add("-netdev", netdev);
  } catch (e) {
    throw new UsageError(`ctl: ports add: ${e instanceof Error ? e.message : String(e)}`);
  }
  let hub = cfg.hub;
  if (hubArg !== undefined) {
    if (!/^[0-9]{1,9}$/.test(hubArg))
      throw new UsageError("ctl: expected ports add [HUB] NETDEV (HUB a number)");
    if (cfg.hub !== 0) throw new UsageError(`${where}: give the hub once, as HUB or as hubid=`);
    hub = Number(hubArg);
  }
  return { hub, body: portRequestBody(cfg, where) };
}

function portRequestBody(cfg: NetdevConfig, where: string): Record<string, unknown> {
  const id = cfg.id;
  switch (cfg.type) {
    case "stream":
      return { type: "stream", id, server: cfg.server, addr: cfg.addr, reconnect: cfg.reconnect };
    case "socket":
      return {
        type: "socket",
        id,
        mode: cfg.mode,
        addr: cfg.addr,
        ...(cfg.localAddr ? { localAddr: cfg.localAddr } : {}),
      };
    case "dgram":
      if (cfg.remote?.type !== "inet" || (cfg.local !== undefined && cfg.local.type !== "inet"))
        throw new UsageError(`${where}: only inet dgram ports can be added at run time`);
      return { type: "dgram", id, remote: cfg.remote, ...(cfg.local ? { local: cfg.local } : {}) };
    case "vde":
      if (cfg.mode === "listen") return { type: "vde", id, listen: resolvePath(cfg.dir) };
      return {
        type: "vde",
        id,
        sock: resolvePath(cfg.dir),
        ...(cfg.port !== undefined ? { port: cfg.port } : {}),
        ...(cfg.group !== undefined ? { group: cfg.group } : {}),
        ...(cfg.permissions !== undefined ? { mode: cfg.permissions.toString(8) } : {}),
      };
    case "websocket": {
      const { hub: _, ...body } = cfg;
      for (const k of ["tokenFile", "cert", "key"] as const) {
        const f = body[k];
        if (f !== undefined) body[k] = resolvePath(f);
      }
      return body;
    }
    case "vxlan": {
      const { hub: _, ...body } = cfg;
      return body;
    }
    default:
      throw new UsageError(
        `${where}: a ${cfg.type} netdev cannot be added at run time; start usernet with it`,
      );
  }
}
