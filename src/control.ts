/**
 * The control facade of a running usernet: what the management API (src/api) and
 * `usernet ctl` may see and do. Read-only views (status, hubs, ports, DHCP leases,
 * NAT flows, counters for metrics), plus the few actions an operator needs: attach a
 * QEMU listener or connector to a hub, remove a port, capture a hub to pcap.
 *
 * Views are plain JSON-able records built at call time from each netdev's snapshot()
 * (user-snapshot.ts) and the hubs' and ports' stats, so a caller can never reach into
 * (or hold on to) the network's state. The API declares what it needs of this
 * (src/api/service.ts); src/usernet.ts hands this facade to it. Errors meant for the
 * caller are `ControlError`s with a short reason ("not-found", "id-taken",
 * "not-removable", "bind-failed", "unsupported"); the API maps reasons to statuses.
 * Not here: port forwards (the `forwards` facade, src/forwards.ts).
 */
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import type { Hub, HubRegistry, HubStats } from "./hub/hub.js";
import type { Port, PortStats } from "./hub/port.js";
import { hostFaults, internalErrors, type Logger } from "./log.js";
import { formatAddress } from "./ports/address.js";
import { type CaptureEnd, CapturePort, type CaptureSink } from "./ports/capture-port.js";
import type { NetdevHandle, PortNetdevConfig } from "./ports/netdev.js";
import { type Clock, systemClock } from "./stack/clock.js";
import type { UserNetdev } from "./user-netdev.js";
import type {
  BoundView,
  DhcpLeaseInfo,
  Dhcpv6LeaseInfo,
  IcmpFlowInfo,
  Neighbour6Info,
  TcpFlowInfo,
  UdpFlowInfo,
  UserBounds,
  UserNetdevSnapshot,
} from "./user-snapshot.js";

export type { BoundView, DhcpLeaseInfo, IcmpFlowInfo, TcpFlowInfo, UdpFlowInfo, UserBounds };

/** What the facade reads of a user netdev: its configuration and its snapshot. */
export type UserNetdevParts = Pick<UserNetdev, "config" | "name" | "describe" | "snapshot">;

export class ControlError extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = "ControlError";
  }
}

export interface PortView {
  name: string;
  kind: string;
  hub: number;
  /** the netdev that owns the port ("" for one nobody configured, e.g. a capture) */
  netdev: string;
  description: string;
  stats: PortStats;
}

export interface HubView {
  id: number;
  ports: string[];
  stats: HubStats;
}

export interface UserNetdevAddresses {
  net: string;
  prefixLength: number;
  host: string;
  dns: string;
  dhcpStart: string;
  dhcpCount: number;
  mtu: number;
  restrict: boolean;
  hostLoopback: boolean;
  /** TCP connection bounds in force (max-flows=, max-flows-per-guest=) */
  maxFlows: number;
  maxFlowsPerGuest: number;
  /** the other bounds in force, and how often each refused a guest */
  bounds: UserBounds;
}

export interface UserNetdevCounters {
  stack: UserNetdevSnapshot["stack"];
  /** frames and datagrams dropped, by reason, summed */
  drops: number;
  flows: { tcp: number; udp: number; icmp: number };
  /** guest SYNs refused at a flow bound (total); guest TCP tuples in TIME_WAIT now */
  tcp: { refused: number; timeWait: number };
  leases: number;
}

export interface NetdevView {
  id: string;
  /** "user", or the port kind: "stream-listen", "socket-connect", "dgram", ... */
  kind: string;
  hub: number;
  description: string;
  /** listeners: the bound address; datagram ports: the local one */
  address?: string;
  ports: string[];
  user?: UserNetdevAddresses;
  counters?: UserNetdevCounters;
}

export interface StatusView {
  version: string;
  uptimeSeconds: number;
  /** unexpected exceptions (bugs) so far, in the whole process; see log.ts */
  internalErrors: number;
  /** host faults survived so far (EMFILE, ENOSPC, ...), by place and errno; see log.ts */
  hostFaults: { where: string; code: string; count: number }[];
  hubs: HubView[];
  netdevs: NetdevView[];
  ports: PortView[];
}

export interface LeasesView {
  netdev: string;
  hub: number;
  leases: DhcpLeaseInfo[];
  /** DHCPv6 leases (IA_NA bindings) */
  leases6: Dhcpv6LeaseInfo[];
  /** guests' IPv6 addresses as the stack's neighbour table knows them */
  neighbours6: Neighbour6Info[];
}

export interface FlowsView {
  tcp: (TcpFlowInfo & { netdev: string })[];
  udp: (UdpFlowInfo & { netdev: string })[];
  icmp: (IcmpFlowInfo & { netdev: string })[];
}

/** Everything a user netdev counts, for metrics. */
export type UserNetdevStats = Omit<
  UserNetdevSnapshot,
  "leases" | "flowList" | "dhcp" | "leases6" | "neighbours6" | "dhcpv6"
> & {
  netdev: string;
  hub: number;
  dhcp: UserNetdevSnapshot["dhcp"] & { leases: Record<string, number> };
  /** with DHCPv6 on: its counters and leases by state */
  dhcpv6?: NonNullable<UserNetdevSnapshot["dhcpv6"]> & { leases: Record<string, number> };
  /** IPv6 neighbours known now */
  neighbours6: number;
};

export interface CaptureOptions {
  count?: number;
  durationMs?: number;
  maxQueuedBytes?: number;
  onEnd?: (reason: CaptureEnd) => void;
}

export interface CaptureView {
  port: string;
  hub: number;
  /** ends the capture (and the sink) */
  stop(): void;
}

export interface Control {
  status(): StatusView;
  hubList(): HubView[];
  /** undefined when there is no such hub */
  hubPorts(hub: number): PortView[] | undefined;
  /** Attaches a QEMU listener/connector/datagram port to a hub; rejects with ControlError. */
  openPort(hub: number, cfg: PortNetdevConfig): Promise<NetdevView>;
  /** Closes a netdev by id (all its ports) or one port by name (a listener's client, a capture). */
  closePort(id: string): Promise<void>;
  leases(): LeasesView[];
  flows(): FlowsView;
  userStats(): UserNetdevStats[];
  /** Starts a pcap capture of a hub into `sink`; throws ControlError("not-found"). */
  capture(hub: number, sink: CaptureSink, options?: CaptureOptions): CaptureView;
  /** an unexpected exception in a caller (the API): counted and logged as a bug */
  internalError(where: string, err: unknown): void;
}

export interface ControlParts {
  hubs: HubRegistry;
  users: readonly UserNetdevParts[];
  /** the open port netdevs; openPort and closePort change it */
  handles: NetdevHandle[];
  log: Logger;
  version: string;
  /** opens a port netdev on a hub (ports/netdev.ts openNetdev) */
  open(cfg: PortNetdevConfig, hub: Hub, log: Logger): Promise<NetdevHandle>;
  /** the hub of each configured netdev, by id (a connector between connections has no port to tell) */
  configuredHubs?: ReadonlyMap<string, number>;
  clock?: Clock;
}

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

export function createControl(parts: ControlParts): Control {
  const { hubs, users, handles, log } = parts;
  const clock = parts.clock ?? systemClock;
  const startedAt = clock.now();
  const captures = new Map<string, { port: CapturePort; hub: number }>();
  let captureSeq = 0;
  let portSeq = 0;

  const ownerOf = (port: Port): string => {
    if ((users as readonly unknown[]).includes(port)) return port.name;
    for (const h of handles) if (h.ports().includes(port)) return h.id;
    return "";
  };
  const portView = (hub: number, p: Port): PortView => ({
    name: p.name,
    kind: p.kind,
    hub,
    netdev: ownerOf(p),
    description: p.describe(),
    stats: p.stats(),
  });
  const hubView = (id: number): HubView | undefined => {
    const h = hubs.find(id);
    return h && { id, ports: h.ports().map((p) => p.name), stats: h.stats() };
  };
  const hubOfHandle = (h: NetdevHandle): number => {
    for (const hub of hubs.list()) if (h.ports().some((p) => hub.ports().includes(p))) return hub.id;
    return handleHubs.get(h) ?? parts.configuredHubs?.get(h.id) ?? -1;
  };
  // a connector between connections or a listener without clients has no port on the hub
  const handleHubs = new Map<NetdevHandle, number>();

  const handleView = (h: NetdevHandle): NetdevView => {
    const v: NetdevView = {
      id: h.id,
      kind: h.kind,
      hub: hubOfHandle(h),
      description: h.describe(),
      ports: h.ports().map((p) => p.name),
    };
    if (h.address) v.address = formatAddress(h.address);
    return v;
  };
  const live = (l: DhcpLeaseInfo) => l.state === "bound" || l.state === "bootp";
  const userView = (u: UserNetdevParts): NetdevView => {
    const c = u.config;
    const snap = u.snapshot();
    return {
      id: c.id,
      kind: "user",
      hub: c.hub,
      description: u.describe(),
      ports: [u.name],
      user: {
        net: c.net,
        prefixLength: c.prefixLength,
        host: c.host,
        dns: c.dns,
        dhcpStart: c.dhcpStart,
        dhcpCount: c.dhcpCount,
        mtu: c.mtu,
        restrict: c.restrict,
        hostLoopback: c.hostLoopback,
        maxFlows: snap.tcpLimits.maxFlows,
        maxFlowsPerGuest: snap.tcpLimits.maxFlowsPerGuest,
        bounds: snap.bounds,
      },
      counters: {
        stack: snap.stack,
        drops: sum(snap.drops),
        flows: snap.flows,
        tcp: { refused: snap.tcp.refused, timeWait: snap.timeWait.now },
        leases: snap.leases.filter(live).length,
      },
    };
  };
  const allPorts = (): PortView[] => hubs.list().flatMap((h) => h.ports().map((p) => portView(h.id, p)));
  const idTaken = (id: string) =>
    users.some((u) => u.config.id === id) || handles.some((h) => h.id === id) || captures.has(id);

  return {
    status() {
      return {
        version: parts.version,
        uptimeSeconds: Math.round((clock.now() - startedAt) / 10) / 100,
        internalErrors: internalErrors.total,
        hostFaults: hostFaults.list(),
        hubs: hubs.list().map((h) => hubView(h.id) as HubView),
        netdevs: [...users.map(userView), ...handles.map(handleView)],
        ports: allPorts(),
      };
    },

    hubList() {
      return hubs.list().map((h) => hubView(h.id) as HubView);
    },

    hubPorts(id) {
      const h = hubs.find(id);
      return h?.ports().map((p) => portView(id, p));
    },

    async openPort(hub, cfg) {
      const target = hubs.find(hub);
      if (!target || target.closed) throw new ControlError("not-found", `there is no hub ${hub}`);
      let id = cfg.id;
      if (id === "") {
        do id = `api${portSeq++}`;
        while (idTaken(id));
      }
      if (idTaken(id)) throw new ControlError("id-taken", `a netdev or port named ${id} exists already`);
      const config = { ...cfg, id, hub } as PortNetdevConfig;
      if (config.type === "stream" && config.server && config.addr.type === "unix") {
        await mkdir(dirname(config.addr.path), { recursive: true, mode: 0o700 });
      }
      let handle: NetdevHandle;
      try {
        handle = await parts.open(config, target, log);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        const unsupported = /not supported|needs /.test(msg);
        throw new ControlError(unsupported ? "unsupported" : "bind-failed", msg);
      }
      // a second request for the same id may have won while this one was binding
      if (idTaken(id)) {
        await handle.close();
        throw new ControlError("id-taken", `a netdev or port named ${id} exists already`);
      }
      handles.push(handle);
      handleHubs.set(handle, hub);
      log.info(`hub ${hub}: ${id}: ${handle.describe()} (added through the API)`);
      return handleView(handle);
    },

    async closePort(id) {
      if (users.some((u) => u.config.id === id)) {
        throw new ControlError("not-removable", `${id} is a user network; it lives as long as usernet`);
      }
      const i = handles.findIndex((h) => h.id === id);
      const handle = handles[i];
      if (handle) {
        handles.splice(i, 1);
        handleHubs.delete(handle);
        await handle.close();
        log.info(`${id}: closed through the API`);
        return;
      }
      const capture = captures.get(id);
      if (capture) return capture.port.close();
      for (const hub of hubs.list()) {
        const port = hub.ports().find((p) => p.name === id);
        if (port && handles.some((h) => h.ports().includes(port))) {
          hub.detach(port);
          port.close();
          log.info(`${id}: disconnected through the API`);
          return;
        }
      }
      throw new ControlError("not-found", `there is no netdev or port named ${id}`);
    },

    leases() {
      return users.map((u) => {
        const snap = u.snapshot();
        return {
          netdev: u.config.id,
          hub: u.config.hub,
          leases: snap.leases,
          leases6: snap.leases6,
          neighbours6: snap.neighbours6,
        };
      });
    },

    flows() {
      const out: FlowsView = { tcp: [], udp: [], icmp: [] };
      for (const u of users) {
        const netdev = u.config.id;
        const f = u.snapshot({ flows: true }).flowList;
        if (!f) continue;
        for (const x of f.tcp) out.tcp.push({ ...x, netdev });
        for (const x of f.udp) out.udp.push({ ...x, netdev });
        for (const x of f.icmp) out.icmp.push({ ...x, netdev });
      }
      return out;
    },

    userStats() {
      return users.map((u) => {
        const { leases: all, flowList: _, leases6, neighbours6, dhcpv6, ...snap } = u.snapshot();
        const byState = (ls: readonly { state: string }[]) => {
          const out: Record<string, number> = {};
          for (const l of ls) out[l.state] = (out[l.state] ?? 0) + 1;
          return out;
        };
        const s: UserNetdevStats = {
          netdev: u.config.id,
          hub: u.config.hub,
          ...snap,
          dhcp: { ...snap.dhcp, leases: byState(all) },
          neighbours6: neighbours6.length,
        };
        if (dhcpv6) s.dhcpv6 = { ...dhcpv6, leases: byState(leases6) };
        return s;
      });
    },

    internalError(where, err) {
      internalErrors.report(where, err);
    },

    capture(id, sink, options = {}) {
      const hub = hubs.find(id);
      if (!hub || hub.closed) throw new ControlError("not-found", `there is no hub ${id}`);
      let name: string;
      do name = `capture${captureSeq++}`;
      while (idTaken(name));
      const port: CapturePort = new CapturePort({
        name,
        sink,
        count: options.count,
        durationMs: options.durationMs,
        maxQueuedBytes: options.maxQueuedBytes,
        onEnd: (reason) => {
          hub.detach(port);
          captures.delete(name);
          log.info(`hub ${id}: ${name} ended (${reason})`, port.stats().drops);
          options.onEnd?.(reason);
        },
      });
      hub.attach(port);
      captures.set(name, { port, hub: id });
      log.info(`hub ${id}: ${name} started`);
      return { port: name, hub: id, stop: () => port.close() };
    },
  };
}
