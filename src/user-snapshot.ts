/**
 * What one user netdev shows of itself: a snapshot in plain data (counters, flows,
 * leases, bounds), built at call time from its collaborators, so that the control
 * facade (src/control.ts) and through it the API read numbers, never the live objects.
 * Taking one costs a walk over the NAT tables only when the flow lists are asked for.
 */
import type { IcmpEchoNat, IcmpFlowInfo } from "./proxy/icmp-echo.js";
import type { TcpFlowInfo, TcpRelay, TcpRelayCounters } from "./proxy/tcp-relay.js";
import type { UdpFlowInfo, UdpNat } from "./proxy/udp-nat.js";
import type { DhcpLeaseInfo, DhcpServer, DhcpStats } from "./services/dhcp/dhcp-server.js";
import type { Dhcpv6LeaseInfo, Dhcpv6Stats } from "./services/dhcpv6/dhcpv6-server.js";
import type { DnsForwarder, DnsForwarderStats } from "./services/dns/dns-forwarder.js";
import type { TftpServer, TftpStats } from "./services/tftp/tftp-server.js";
import type { TcpFlowTableCounters } from "./stack/tcp/flow-table.js";
import type { TcpEndpointCounters } from "./stack/tcp/tcp-endpoint.js";
import type { TimeWaitCounters } from "./stack/tcp/time-wait.js";
import type { UserStack, UserStackCounters } from "./stack/user-stack.js";
import { macToString } from "./stack/wire/addr.js";
import { ipv6ToString } from "./stack/wire/ipv6-addr.js";
import type { Ipv6Services } from "./user-services6.js";

export type { DhcpLeaseInfo, Dhcpv6LeaseInfo, IcmpFlowInfo, TcpFlowInfo, UdpFlowInfo };

/** A guest IPv6 address the stack has seen, as the API shows it. */
export interface Neighbour6Info {
  address: string;
  mac: string;
  /** ms until the entry is forgotten unless the guest is heard from again */
  expiresInMs: number;
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
export type UserBounds = {
  udpSockets: BoundView;
  icmpIds: BoundView;
  dnsQueries: BoundView;
  tftpSessions?: BoundView;
  reassembly: BoundView;
  /** `refused`: times a guest (or all) reached the buffer budget (zero window, host sockets not read) */
  bufferBytes: BoundView;
  guests: BoundView;
};

export interface FlowLists {
  tcp: TcpFlowInfo[];
  udp: UdpFlowInfo[];
  icmp: IcmpFlowInfo[];
}

export interface UserNetdevSnapshot {
  stack: UserStackCounters;
  /** frames and datagrams dropped, by reason: the port's, the stack's and the NAT's */
  drops: Record<string, number>;
  tcp: TcpFlowTableCounters & TcpEndpointCounters;
  /** the TCP flow table's bounds (max-flows=, max-flows-per-guest=) */
  tcpLimits: { maxFlows: number; maxFlowsPerGuest: number; maxTimeWait: number };
  /** TIME_WAIT records now, and what happened to them */
  timeWait: TimeWaitCounters & { now: number };
  relay: { [K in keyof TcpRelayCounters]: number };
  /** NAT flows open now */
  flows: { tcp: number; udp: number; icmp: number };
  icmp: { echoesSent: number; repliesReceived: number };
  dhcp: DhcpStats;
  /** every lease the DHCP server remembers, at the wall clock's now */
  leases: DhcpLeaseInfo[];
  dns: DnsForwarderStats;
  /** with the IPv6 side and dhcpv6= not off */
  dhcpv6?: Dhcpv6Stats;
  /** every lease the DHCPv6 server remembers, at the wall clock's now */
  leases6: Dhcpv6LeaseInfo[];
  /** the guests' IPv6 addresses the stack knows (its neighbour table) */
  neighbours6: Neighbour6Info[];
  /** with tftp= only */
  tftp?: TftpStats;
  bounds: UserBounds;
  /** the NAT flows themselves, when asked for */
  flowList?: FlowLists;
}

/** The collaborators a snapshot reads. */
export interface SnapshotSources {
  stack: UserStack;
  udpNat: UdpNat;
  icmp: IcmpEchoNat;
  tcpRelay: TcpRelay;
  dhcp: DhcpServer;
  dns: DnsForwarder;
  tftp: TftpServer | undefined;
  /** the IPv6 side's services, when it has one */
  services6?: Ipv6Services | undefined;
  /** the IPv6 neighbour table (address, MAC, until in the stack clock) */
  neighbours6?: () => readonly { address: Buffer; mac: Buffer; until: number }[];
  /** the netdev's drops by reason (its port counters' and its parts') */
  drops: Record<string, number>;
}

export function takeSnapshot(
  s: SnapshotSources,
  at: { now: number; wall: number },
  withFlows: boolean,
): UserNetdevSnapshot {
  const table = s.stack.tcp.table;
  const snap: UserNetdevSnapshot = {
    stack: { ...s.stack.counters },
    drops: s.drops,
    tcp: { ...table.counters, ...s.stack.tcpCounters },
    tcpLimits: { ...table.limits },
    timeWait: { ...table.timeWait.counters, now: table.timeWait.size },
    relay: { ...s.tcpRelay.counters },
    flows: { tcp: s.tcpRelay.size, udp: s.udpNat.size, icmp: s.icmp.size },
    icmp: { echoesSent: s.icmp.echoesSent, repliesReceived: s.icmp.repliesReceived },
    dhcp: s.dhcp.stats(),
    leases: s.dhcp.leases(at.wall),
    dns: s.dns.stats(),
    leases6: s.services6?.leases(at.wall) ?? [],
    neighbours6: (s.neighbours6?.() ?? []).map((n) => ({
      address: ipv6ToString(n.address),
      mac: macToString(n.mac),
      expiresInMs: Math.max(0, Math.round(n.until - at.now)),
    })),
    bounds: boundsOf(s),
  };
  const dhcpv6 = s.services6?.stats();
  if (dhcpv6) snap.dhcpv6 = dhcpv6;
  if (s.tftp) snap.tftp = s.tftp.stats();
  if (withFlows) {
    snap.flowList = { tcp: s.tcpRelay.list(), udp: s.udpNat.list(at.now), icmp: s.icmp.list(at.now) };
  }
  return snap;
}

function boundsOf(s: SnapshotSources): UserBounds {
  const drops = s.drops;
  const dns = s.dns.stats().dropped;
  const b: UserBounds = {
    udpSockets: {
      total: s.udpNat.limits.maxFlows,
      perGuest: s.udpNat.limits.maxFlowsPerGuest,
      refused: drops["udp-guest-limit"] ?? 0,
    },
    icmpIds: {
      total: s.icmp.limits.maxFlows,
      perGuest: s.icmp.limits.maxFlowsPerGuest,
      refused: drops["icmp-guest-limit"] ?? 0,
    },
    dnsQueries: {
      total: s.dns.limits.maxInflight,
      perGuest: s.dns.limits.maxInflightPerGuest,
      refused: (dns["too-many-queries"] ?? 0) + (dns["too-many-queries-per-guest"] ?? 0),
    },
    reassembly: {
      total: s.stack.reassemblyLimits.maxDatagrams,
      perGuest: s.stack.reassemblyLimits.maxDatagramsPerSource,
      refused: drops["reasm-source-full"] ?? 0,
    },
    bufferBytes: {
      total: s.stack.buffers?.bounds.max ?? 0,
      perGuest: s.stack.buffers?.bounds.perGuest ?? 0,
      refused: s.stack.buffers?.throttled ?? 0,
    },
    guests: {
      total: s.stack.guests.options.maxPerPort,
      perGuest: 1,
      refused: s.stack.guests.counters.refused,
    },
  };
  if (s.tftp) {
    const refused = s.tftp.stats().refused;
    b.tftpSessions = {
      total: s.tftp.limits.maxTransfers,
      perGuest: s.tftp.limits.maxTransfersPerGuest,
      refused: (refused["tftp-busy"] ?? 0) + (refused["tftp-busy-guest"] ?? 0),
    };
  }
  return b;
}
