/**
 * Catches two netdevs (or forwards) that would bind the same host socket, so the user
 * gets one clear line at parse time instead of EADDRINUSE from whichever starts
 * second. TCP: listeners of socket/stream and tcp host forwards; UDP: udp host
 * forwards, socket udp= local addresses and dgram local addresses; unix: stream
 * server paths. An empty host or 0.0.0.0 overlaps every address on the same port.
 * Port 0 (any free port) never conflicts. Multicast members share their port by design
 * and are not listed; names ("localhost") are compared as written. The blame goes to
 * what the user wrote rather than to a default it collides with.
 */
import type { HostForward } from "../config.js";
import { formatHostForward } from "./forwards.js";
import type { NetdevEntry } from "./netdev.js";
import { UsageError } from "./usage-error.js";

interface Bind {
  proto: "tcp" | "udp" | "unix";
  /** address, or the path for unix */
  host: string;
  port: number;
  owner: string;
  implicit: boolean;
}

function binds(entries: readonly NetdevEntry[], forwardOwners: ReadonlyMap<HostForward, string>): Bind[] {
  const out: Bind[] = [];
  for (const { config: c, origin, implicit = false } of entries) {
    switch (c.type) {
      case "user":
        for (const f of c.hostfwd) {
          const named = forwardOwners.get(f);
          const owner = named ?? `${origin} hostfwd=${formatHostForward(f)}`;
          out.push({
            proto: f.proto,
            host: f.hostAddr,
            port: f.hostPort,
            owner,
            implicit: named ? false : implicit,
          });
        }
        break;
      case "socket":
        if (c.mode === "listen") out.push({ proto: "tcp", ...c.addr, owner: origin, implicit });
        if (c.mode === "udp" && c.localAddr)
          out.push({ proto: "udp", ...c.localAddr, owner: origin, implicit });
        break;
      case "stream":
        if (c.server && c.addr.type === "inet")
          out.push({ proto: "tcp", ...c.addr, owner: origin, implicit });
        if (c.server && c.addr.type === "unix")
          out.push({ proto: "unix", host: c.addr.path, port: 0, owner: origin, implicit });
        break;
      case "dgram":
        if (c.local?.type === "inet") out.push({ proto: "udp", ...c.local, owner: origin, implicit });
        break;
      case "tap":
        break;
      case "vde":
        if (c.mode === "listen")
          out.push({
            proto: "unix",
            host: `${c.dir.replace(/\/+$/, "")}/ctl`,
            port: 0,
            owner: origin,
            implicit,
          });
        break;
      case "websocket":
        out.push({ proto: "tcp", ...c.listen, owner: origin, implicit });
        break;
      case "vxlan":
        // a group member binds 0.0.0.0 with SO_REUSEADDR: members share the port by design
        if (!c.group) out.push({ proto: "udp", ...c.local, owner: origin, implicit });
        break;
    }
  }
  return out;
}

const wildcard = (h: string) => h === "" || h === "0.0.0.0";

function overlaps(a: Bind, b: Bind): boolean {
  if (a.proto !== b.proto) return false;
  if (a.proto === "unix") return a.host === b.host;
  return a.port !== 0 && a.port === b.port && (a.host === b.host || wildcard(a.host) || wildcard(b.host));
}

const describe = (b: Bind) =>
  b.proto === "unix" ? `unix socket ${b.host}` : `${b.proto} ${b.host || "*"}:${b.port}`;

export function checkBindConflicts(
  entries: readonly NetdevEntry[],
  forwardOwners: ReadonlyMap<HostForward, string> = new Map(),
): void {
  // implicit binds first, so a conflict is reported on the explicit one
  const found = binds(entries, forwardOwners);
  const all = [...found.filter((b) => b.implicit), ...found.filter((b) => !b.implicit)];
  for (let i = 0; i < all.length; i++) {
    const b = all[i] as Bind;
    const a = all.slice(0, i).find((x) => overlaps(x, b));
    if (a) throw new UsageError(`${b.owner}: ${describe(b)} is already taken by ${a.owner}`);
  }
}
