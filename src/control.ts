/**
 * The control facade of a running usernet: what the management API (src/api) and
 * `usernet ctl` may see and do. Read-only views (status, hubs, ports, DHCP leases,
 * NAT flows, counters for metrics), plus the few actions an operator needs: attach a
 * QEMU listener or connector to a hub, remove a port, capture a hub to pcap.
 *
 * Views are plain JSON-able records built at call time from the live objects, so a
 * caller can never reach into (or hold on to) the network's state. Errors meant for the
 * caller are `ControlError`s with a short reason ("not-found", "id-taken",
 * "not-removable", "bind-failed", "unsupported"); the API maps reasons to statuses.
 * Not here: port forwards (the `forwards` facade next to this one in src/usernet.ts).
 */
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import type { HubRegistry, HubStats } from "./hub/hub.js";
import type { Port, PortStats } from "./hub/port.js";
import { internalErrors, type Logger } from "./log.js";
import { formatAddress } from "./ports/address.js";
import { type CaptureEnd, CapturePort, type CaptureSink } from "./ports/capture-port.js";
import type { NetdevHandle, openNetdev, PortNetdevConfig } from "./ports/netdev.js";
import type { IcmpFlowInfo } from "./proxy/icmp-echo.js";
import type { TcpFlowInfo, TcpRelayCounters } from "./proxy/tcp-relay.js";
import type { UdpFlowInfo } from "./proxy/udp-nat.js";
import type { DhcpLeaseInfo, DhcpStats } from "./services/dhcp/dhcp-server.js";
import type { DnsForwarderStats } from "./services/dns/dns-forwarder.js";
import type { TftpStats } from "./services/tftp/tftp-server.js";
import { type Clock, systemClock } from "./stack/clock.js";
import type { TcpFlowTableCounters } from "./stack/tcp/flow-table.js";
import type { TcpEndpointCounters } from "./stack/tcp/tcp-endpoint.js";
import type { TimeWaitCounters } from "./stack/tcp/time-wait.js";
import type { UserStackCounters } from "./stack/user-stack.js";
import type { UserNetdev } from "./user-netdev.js";

export type { DhcpLeaseInfo, IcmpFlowInfo, TcpFlowInfo, UdpFlowInfo };

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

/** One bound pair: its limits and the refusals at either of them since start. */
export interface BoundView {
  total: number;
  perGuest: number;
  refused: number;
}

/**
 * The per-guest and overall bounds besides TCP's (README: Bounds). UDP sockets and
 * ping ids evict the least recently used flow at `total` (not a refusal) and refuse at
 * `perGuest`; reassembly counts per guest; tftpSessions only with tftp=. `guests`:
 * guest identities (hub port and MAC), `total` of them per hub port, each one guest;
 * `refused` counts frames from MACs past that.
 */
export interface UserBounds {
  udpSockets: BoundView;
  icmpIds: BoundView;
  dnsQueries: BoundView;
  tftpSessions?: BoundView;
  reassembly: BoundView;
  /** `refused`: times a guest (or all) reached the budget and got a zero window */
  bufferBytes: BoundView;
  guests: BoundView;
}

export interface UserNetdevCounters {
  stack: UserStackCounters;
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
  hubs: HubView[];
  netdevs: NetdevView[];
  ports: PortView[];
}

export interface LeasesView {
  netdev: string;
  hub: number;
  leases: DhcpLeaseInfo[];
}

export interface FlowsView {
  tcp: (TcpFlowInfo & { netdev: string })[];
  udp: (UdpFlowInfo & { netdev: string })[];
  icmp: (IcmpFlowInfo & { netdev: string })[];
}

/** Everything a user netdev counts, for metrics. */
export interface UserNetdevStats {
  netdev: string;
  hub: number;
  stack: UserStackCounters;
  drops: Record<string, number>;
  tcp: TcpFlowTableCounters & TcpEndpointCounters;
  /** the flow table's bounds */
  tcpLimits: { maxFlows: number; maxFlowsPerGuest: number; maxTimeWait: number };
  bounds: UserBounds;
  /** TIME_WAIT records now, and what happened to them */
  timeWait: TimeWaitCounters & { now: number };
  relay: TcpRelayCounters;
  flows: { tcp: number; udp: number; icmp: number };
  icmp: { echoesSent: number; repliesReceived: number };
  dhcp: DhcpStats & { leases: Record<string, number> };
  dns: DnsForwarderStats;
  tftp?: TftpStats;
}

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
}

export interface ControlParts {
  hubs: HubRegistry;
  users: readonly UserNetdev[];
  /** the open port netdevs; openPort and closePort change it */
  handles: NetdevHandle[];
  log: Logger;
  version: string;
  open: typeof openNetdev;
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
    if (users.includes(port as UserNetdev)) return port.name;
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
  const userBounds = (u: UserNetdev): UserBounds => {
    const drops = u.stats().drops;
    const dns = u.dns.stats().dropped;
    const b: UserBounds = {
      udpSockets: {
        total: u.udpNat.limits.maxFlows,
        perGuest: u.udpNat.limits.maxFlowsPerGuest,
        refused: drops["udp-guest-limit"] ?? 0,
      },
      icmpIds: {
        total: u.icmp.limits.maxFlows,
        perGuest: u.icmp.limits.maxFlowsPerGuest,
        refused: drops["icmp-guest-limit"] ?? 0,
      },
      dnsQueries: {
        total: u.dns.limits.maxInflight,
        perGuest: u.dns.limits.maxInflightPerGuest,
        refused: (dns["too-many-queries"] ?? 0) + (dns["too-many-queries-per-guest"] ?? 0),
      },
      reassembly: {
        total: u.stack.reassemblyLimits.maxDatagrams,
        perGuest: u.stack.reassemblyLimits.maxDatagramsPerSource,
        refused: drops["reasm-source-full"] ?? 0,
      },
      bufferBytes: {
        total: u.stack.buffers?.bounds.max ?? 0,
        perGuest: u.stack.buffers?.bounds.perGuest ?? 0,
        refused: u.stack.buffers?.throttled ?? 0,
      },
      guests: {
        total: u.stack.guests.options.maxPerPort,
        perGuest: 1,
        refused: u.stack.guests.counters.refused,
      },
    };
    if (u.tftp) {
      const refused = u.tftp.stats().refused;
      b.tftpSessions = {
        total: u.tftp.limits.maxTransfers,
        perGuest: u.tftp.limits.maxTransfersPerGuest,
        refused: (refused["tftp-busy"] ?? 0) + (refused["tftp-busy-guest"] ?? 0),
      };
    }
    return b;
  };
  const userFlows = (u: UserNetdev) => ({ tcp: u.tcpRelay.size, udp: u.udpNat.size, icmp: u.icmp.size });
  const userView = (u: UserNetdev): NetdevView => {
    const c = u.config;
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
        maxFlows: u.stack.tcp.table.limits.maxFlows,
        maxFlowsPerGuest: u.stack.tcp.table.limits.maxFlowsPerGuest,
        bounds: userBounds(u),
      },
      counters: {
        stack: { ...u.stack.counters },
        drops: sum(u.stats().drops),
        flows: userFlows(u),
        tcp: { refused: u.stack.tcp.table.counters.refused, timeWait: u.stack.tcp.table.timeWait.size },
        leases: u.dhcp.leases(Date.now()).filter((l) => l.state === "bound" || l.state === "bootp").length,
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
      const now = Date.now();
      return users.map((u) => ({ netdev: u.config.id, hub: u.config.hub, leases: u.dhcp.leases(now) }));
    },

    flows() {
      const now = clock.now();
      const tag = <T>(netdev: string, xs: T[]) => xs.map((x) => ({ ...x, netdev }));
      return {
        tcp: users.flatMap((u) => tag(u.config.id, u.tcpRelay.list())),
        udp: users.flatMap((u) => tag(u.config.id, u.udpNat.list(now))),
        icmp: users.flatMap((u) => tag(u.config.id, u.icmp.list(now))),
      };
    },

    userStats() {
      const now = Date.now();
      return users.map((u) => {
        const leases: Record<string, number> = {};
        for (const l of u.dhcp.leases(now)) leases[l.state] = (leases[l.state] ?? 0) + 1;
        const s: UserNetdevStats = {
          netdev: u.config.id,
          hub: u.config.hub,
          stack: { ...u.stack.counters },
          drops: u.stats().drops,
          tcp: { ...u.stack.tcp.table.counters, ...u.stack.tcpCounters },
          tcpLimits: u.stack.tcp.table.limits,
          bounds: userBounds(u),
          timeWait: { ...u.stack.tcp.table.timeWait.counters, now: u.stack.tcp.table.timeWait.size },
          relay: { ...u.tcpRelay.counters },
          flows: userFlows(u),
          icmp: { echoesSent: u.icmp.echoesSent, repliesReceived: u.icmp.repliesReceived },
          dhcp: { ...u.dhcp.stats(), leases },
          dns: u.dns.stats(),
        };
        if (u.tftp) s.tftp = u.tftp.stats();
        return s;
      });
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
