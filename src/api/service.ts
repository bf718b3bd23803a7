/**
 * What the management API needs of the running service, declared here, by the API:
 * the API depends on this interface and on nothing else of usernet, and the
 * composition root (src/usernet.ts) hands it an implementation (src/control.ts and
 * src/forwards.ts). Tests hand the API a fake of the same shape.
 *
 * Views are plain JSON-able data. Where the API only passes a view through to JSON
 * (a lease, a flow, a netdev's addresses) it is typed `object`; where it reads fields
 * (metrics, captures) those fields are named here. Errors the service means for the
 * caller carry a short `reason` ("not-found", "id-taken", "invalid", "conflict", ...);
 * errors.ts maps reasons to statuses.
 */

/** The log lines the API writes (src/log.ts's Logger has this shape). */
export interface ApiLog {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export interface PortStatsView {
  rxFrames: number;
  rxBytes: number;
  txFrames: number;
  txBytes: number;
  drops: Record<string, number>;
}

export interface PortView {
  name: string;
  kind: string;
  hub: number;
  netdev: string;
  description: string;
  stats: PortStatsView;
}

export interface HubView {
  id: number;
  ports: string[];
  stats: { frames: number; bytes: number; delivered: number; unheard: number; drops: Record<string, number> };
}

export interface NetdevView {
  id: string;
  kind: string;
  hub: number;
  description: string;
  address?: string;
  ports: string[];
  user?: object;
  counters?: object;
}

export interface StatusView {
  version: string;
  uptimeSeconds: number;
  internalErrors: number;
  /** host faults survived (EMFILE, EADDRNOTAVAIL, ENOSPC, ...), by place and errno */
  hostFaults: { where: string; code: string; count: number }[];
  hubs: HubView[];
  netdevs: NetdevView[];
  ports: PortView[];
}

export interface LeasesView {
  netdev: string;
  hub: number;
  leases: object[];
  leases6: object[];
  neighbours6: object[];
}

export interface FlowsView {
  tcp: object[];
  udp: object[];
  icmp: object[];
}

type Counts = Readonly<Record<string, number>>;

/** What metrics.ts reads of one user netdev. */
export interface UserStatsView {
  netdev: string;
  hub: number;
  stack: { rxFrames: number; txFrames: number; arpReplies: number; echoReplies: number; ignored: number };
  drops: Counts;
  tcp: {
    opened: number;
    refused: number;
    resets: number;
    retransmittedSegments: number;
    timeouts: number;
    fastRetransmits: number;
    outOfOrderSegments: number;
    duplicateSegments: number;
    windowProbes: number;
  };
  tcpLimits: { maxFlows: number; maxFlowsPerGuest: number; maxTimeWait: number };
  bounds: Readonly<Record<string, { total: number; perGuest: number; refused: number }>>;
  timeWait: { now: number; recycled: number };
  relay: Counts;
  flows: Counts;
  icmp: { echoesSent: number; repliesReceived: number };
  dhcp: {
    offers: number;
    acks: number;
    naks: number;
    releases: number;
    declines: number;
    informs: number;
    bootp: number;
    poolExhausted: number;
    saveFailures: number;
    malformed: Counts;
    ignored: Counts;
    leases: Counts;
  };
  /** with DHCPv6 on */
  dhcpv6?: {
    solicits: number;
    advertises: number;
    requests: number;
    renews: number;
    rebinds: number;
    releases: number;
    declines: number;
    confirms: number;
    informationRequests: number;
    replies: number;
    noAddrsAvail: number;
    saveFailures: number;
    malformed: Counts;
    ignored: Counts;
    leases: Counts;
  };
  /** IPv6 neighbours the stack knows */
  neighbours6: number;
  dns: {
    queries: number;
    localAnswers: number;
    forwarded: number;
    answered: number;
    truncated: number;
    servfail: number;
    formerr: number;
    notimp: number;
    tcpRetries: number;
    dns64: number;
    inflight: number;
    dropped: Counts;
    upstreamFailures: Counts;
  };
  tftp?: {
    active: number;
    started: number;
    completed: number;
    timedOut: number;
    abortedByClient: number;
    failed: number;
    refused: Counts;
    ignored: Counts;
    unknownTransferId: number;
    blocksSent: number;
    bytesSent: number;
    retransmittedBlocks: number;
  };
}

type Inet = { type: "inet"; host: string; port: number };
type HostPort = { host: string; port: number };

/** A QEMU socket/stream/dgram port to open on a hub ("" id: the service picks one). */
export type PortConfig =
  | {
      type: "stream";
      id: string;
      hub: number;
      server: boolean;
      addr: Inet | { type: "unix"; path: string };
      reconnect: number;
    }
  | {
      type: "socket";
      id: string;
      hub: number;
      mode: "listen" | "connect" | "mcast" | "udp";
      addr: HostPort;
      localAddr?: HostPort;
    }
  | { type: "dgram"; id: string; hub: number; local?: Inet; remote: Inet };

/** Where a capture writes its pcap stream (an HTTP response). */
export interface CaptureSink {
  write(chunk: Buffer): boolean;
  end(): void;
  readonly writableLength: number;
  once(event: "close", listener: () => void): unknown;
  off(event: "close", listener: () => void): unknown;
}

export interface CaptureOptions {
  count?: number;
  durationMs?: number;
  onEnd?: (reason: string) => void;
}

export interface CaptureView {
  port: string;
  hub: number;
  /** ends the capture (and the sink) */
  stop(): void;
}

export interface ForwardRule {
  proto: "tcp" | "udp";
  /** "" binds every address */
  hostAddr: string;
  hostPort: number;
  /** "" means the first DHCP address */
  guestAddr: string;
  guestPort: number;
  preserveSource?: boolean;
}

export interface ForwardView {
  id: number;
  netdev: string;
  proto: "tcp" | "udp";
  hostAddr: string;
  hostPort: number;
  guestAddr: string;
  guestPort: number;
  preserveSource: boolean;
  bound?: { address: string; port: number };
  error?: string;
}

/** Port forwards of every user netdev (the slirp4netns API needs only these). */
export interface ForwardsService {
  list(): ForwardView[];
  /** rejects with a reason: "invalid", "conflict", "bind-failed" */
  add(netdevId: string | undefined, rule: ForwardRule): Promise<ForwardView>;
  /** resolves once the removal is on disk; rejects when it could not be written (undone) */
  remove(id: number): Promise<boolean>;
}

export interface UsernetService {
  status(): StatusView;
  hubList(): HubView[];
  /** undefined when there is no such hub */
  hubPorts(hub: number): PortView[] | undefined;
  /** rejects with a reason: "not-found", "id-taken", "unsupported", "bind-failed" */
  openPort(hub: number, cfg: PortConfig): Promise<NetdevView>;
  /** rejects with a reason: "not-found", "not-removable" */
  closePort(id: string): Promise<void>;
  leases(): LeasesView[];
  flows(): FlowsView;
  userStats(): UserStatsView[];
  /** throws with reason "not-found" */
  capture(hub: number, sink: CaptureSink, options?: CaptureOptions): CaptureView;
  readonly forwards: ForwardsService;
  /** an exception no route meant to raise (a bug): counted and logged by the service */
  internalError(where: string, err: unknown): void;
}
