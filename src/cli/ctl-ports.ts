/**
 * `usernet ctl ports add HUB NETDEV`: a `-netdev` value, parsed by the same grammar as
 * the command line, turned into the body of POST /v1/hubs/HUB/ports. The kinds the API
 * can attach at run time are stream, socket, dgram (inet) and vde; user networks and
 * TAPs are refused here with a pointer to the command line. Loaded only for this
 * command (the -netdev grammar is not needed by the other ctl commands).
 */
import type { NetdevConfig } from "../config.js";
import { NetdevList } from "./netdev.js";
import { UsageError } from "./usage-error.js";

export function portRequestBody(netdev: string): Record<string, unknown> {
  const where = `ctl: ports add ${netdev}`;
  let cfg: NetdevConfig;
  try {
    cfg = new NetdevList().add("-netdev", netdev);
  } catch (e) {
    throw new UsageError(`ctl: ports add: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (cfg.hub !== 0) throw new UsageError(`${where}: give the hub as HUB, not hubid=`);
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
      if (cfg.mode === "listen") return { type: "vde", id, listen: cfg.dir };
      return {
        type: "vde",
        id,
        sock: cfg.dir,
        ...(cfg.port !== undefined ? { port: cfg.port } : {}),
        ...(cfg.group !== undefined ? { group: cfg.group } : {}),
        ...(cfg.permissions !== undefined ? { mode: cfg.permissions.toString(8) } : {}),
      };
    default:
      throw new UsageError(
        `${where}: a ${cfg.type} netdev cannot be added at run time; start usernet with it`,
      );
  }
}
