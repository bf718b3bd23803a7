/**
 * GET /metrics: the service's counters in the Prometheus text format (prom-client).
 *
 * Nothing is counted here: every metric is read from the facade when scraped (a
 * collect callback per metric), so the API adds no work to the data path and there is
 * one source of truth. Counters keep Prometheus's `_total` names and are monotonic as
 * long as the process lives (ports that go away take their series with them).
 *
 * Families:
 *   usernet_info{version}, usernet_uptime_seconds, usernet_internal_errors_total,
 *   usernet_host_faults_total{where,code}     see log.ts
 *   usernet_hub_* {hub}                       frames, bytes, deliveries, drops by reason
 *   usernet_port_* {hub,port,kind,netdev}     rx/tx frames and bytes, drops by reason
 *   usernet_stack_* {netdev}                  frames, ARP/ICMP replies, drops {protocol,reason}
 *   usernet_tcp_*, usernet_flows {netdev,protocol}, usernet_icmp_echo_*
 *   usernet_tcp_flow_limit {netdev,scope}, usernet_tcp_time_wait {netdev}
 *   usernet_bound_limit {netdev,resource,scope}, usernet_bound_refused_total
 *     {netdev,resource}                      the other per-guest and overall bounds
 *   usernet_dhcp_* {netdev}                   messages by type, leases by state, drops
 *   usernet_dhcpv6_* {netdev}                 the same for DHCPv6 (with IPv6 and dhcpv6= on)
 *   usernet_ipv6_neighbours {netdev}          guest IPv6 addresses the stack knows
 *   usernet_dns_* {netdev}                    queries, answers, failures
 *   usernet_tftp_* {netdev}                   transfers by result, refusals
 * A registry per API instance (never prom-client's global one), so two servers or
 * tests do not share series.
 */
import { createRequire } from "node:module";
import type * as Prom from "prom-client";
import type { UsernetService } from "./service.js";

// prom-client is CommonJS: require()d, not imported as ESM (see server.ts)
const { Counter, Gauge, Registry } = createRequire(import.meta.url)("prom-client") as typeof Prom;

type Sample = [labels: Record<string, string | number>, value: number];

/** "ipv4-bad-checksum" → "ipv4": drop reasons start with their protocol */
export const protocolOfReason = (reason: string): string => reason.split("-", 1)[0] || "other";

export function createMetrics(facade: UsernetService): Prom.Registry {
  const registry = new Registry();
  const family = (
    kind: "counter" | "gauge",
    name: string,
    help: string,
    labelNames: string[],
    read: () => Sample[],
  ) => {
    const Metric = kind === "counter" ? Counter : Gauge;
    new Metric({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const [labels, value] of read()) {
          if (kind === "counter") (this as Prom.Counter).inc(labels, value);
          else (this as Prom.Gauge).set(labels, value);
        }
      },
    });
  };
  const counter = (name: string, help: string, labels: string[], read: () => Sample[]) =>
    family("counter", name, help, labels, read);
  const gauge = (name: string, help: string, labels: string[], read: () => Sample[]) =>
    family("gauge", name, help, labels, read);
  const byReason = (base: Record<string, string | number>, r: Record<string, number>): Sample[] =>
    Object.entries(r).map(([reason, n]) => [{ ...base, reason }, n]);

  gauge("usernet_info", "Always 1; the version as a label", ["version"], () => [
    [{ version: facade.status().version }, 1],
  ]);
  gauge("usernet_uptime_seconds", "Seconds since start", [], () => [[{}, facade.status().uptimeSeconds]]);
  counter(
    "usernet_internal_errors_total",
    "Unexpected exceptions (bugs), logged with their stack",
    [],
    () => [[{}, facade.status().internalErrors]],
  );
  counter(
    "usernet_host_faults_total",
    "Host faults survived (EMFILE, ENOBUFS, ENOSPC, a dead DNS upstream, ...), by place and errno",
    ["where", "code"],
    () => facade.status().hostFaults.map((f) => [{ where: f.where, code: f.code }, f.count]),
  );

  // ---- hubs and ports --------------------------------------------------------------
  const hubs = () => facade.hubList();
  gauge("usernet_hub_ports", "Ports attached to a hub", ["hub"], () =>
    hubs().map((h) => [{ hub: h.id }, h.ports.length]),
  );
  for (const [field, name, help] of [
    ["frames", "usernet_hub_frames_total", "Frames received by a hub from its ports"],
    ["bytes", "usernet_hub_bytes_total", "Bytes received by a hub from its ports"],
    ["delivered", "usernet_hub_deliveries_total", "Frame deliveries to ports (one frame to 3 ports = 3)"],
    ["unheard", "usernet_hub_unheard_frames_total", "Frames that arrived with no other port attached"],
  ] as const) {
    counter(name, help, ["hub"], () => hubs().map((h) => [{ hub: h.id }, Number(h.stats[field] ?? 0)]));
  }
  counter("usernet_hub_drops_total", "Frames a hub dropped, by reason", ["hub", "reason"], () =>
    hubs().flatMap((h) => byReason({ hub: h.id }, (h.stats.drops ?? {}) as Record<string, number>)),
  );

  const ports = () => facade.status().ports;
  const portLabels = ["hub", "port", "kind", "netdev"];
  const labelsOf = (p: { hub: number; name: string; kind: string; netdev: string }) => ({
    hub: p.hub,
    port: p.name,
    kind: p.kind,
    netdev: p.netdev,
  });
  for (const [field, name, help] of [
    ["rxFrames", "usernet_port_rx_frames_total", "Frames a port took from its transport to the hub"],
    ["rxBytes", "usernet_port_rx_bytes_total", "Bytes a port took from its transport to the hub"],
    ["txFrames", "usernet_port_tx_frames_total", "Frames a port passed from the hub to its transport"],
    ["txBytes", "usernet_port_tx_bytes_total", "Bytes a port passed from the hub to its transport"],
  ] as const) {
    counter(name, help, portLabels, () => ports().map((p) => [labelsOf(p), p.stats[field]]));
  }
  counter("usernet_port_drops_total", "Frames a port dropped, by reason", [...portLabels, "reason"], () =>
    ports().flatMap((p) => byReason(labelsOf(p), p.stats.drops)),
  );

  // ---- user stacks ------------------------------------------------------------------
  const users = () => facade.userStats();
  const perUser = (name: string, help: string, value: (u: ReturnType<typeof users>[number]) => number) =>
    counter(name, help, ["netdev"], () => users().map((u) => [{ netdev: u.netdev }, value(u)]));
  counter("usernet_stack_frames_total", "Frames through a user stack", ["netdev", "direction"], () =>
    users().flatMap((u) => [
      [{ netdev: u.netdev, direction: "rx" }, u.stack.rxFrames],
      [{ netdev: u.netdev, direction: "tx" }, u.stack.txFrames],
    ]),
  );
  perUser("usernet_stack_arp_replies_total", "ARP replies the gateway sent", (u) => u.stack.arpReplies);
  perUser(
    "usernet_stack_icmp_echo_replies_total",
    "Echo replies the gateway sent",
    (u) => u.stack.echoReplies,
  );
  perUser("usernet_stack_ignored_frames_total", "Well-formed frames meant for another station", (u) =>
    Number(u.stack.ignored),
  );
  counter(
    "usernet_stack_drops_total",
    "Input a user stack, its NAT or its services dropped, by protocol and reason",
    ["netdev", "protocol", "reason"],
    () =>
      users().flatMap((u) =>
        Object.entries(u.drops).map(
          ([reason, n]): Sample => [{ netdev: u.netdev, protocol: protocolOfReason(reason), reason }, n],
        ),
      ),
  );
  perUser("usernet_tcp_connections_opened_total", "Guest TCP connections opened", (u) => u.tcp.opened);
  perUser(
    "usernet_tcp_connections_refused_total",
    "Guest SYNs refused at a table bound",
    (u) => u.tcp.refused,
  );
  gauge(
    "usernet_tcp_flow_limit",
    "TCP connection bounds: in all, per guest address, TIME_WAIT records",
    ["netdev", "scope"],
    () =>
      users().flatMap((u): Sample[] => [
        [{ netdev: u.netdev, scope: "total" }, u.tcpLimits.maxFlows],
        [{ netdev: u.netdev, scope: "per-guest" }, u.tcpLimits.maxFlowsPerGuest],
        [{ netdev: u.netdev, scope: "time-wait" }, u.tcpLimits.maxTimeWait],
      ]),
  );
  gauge(
    "usernet_bound_limit",
    "Bounds on UDP sockets, ping ids, DNS queries, TFTP transfers, reassembly: in all, per guest",
    ["netdev", "resource", "scope"],
    () =>
      users().flatMap((u): Sample[] =>
        Object.entries(u.bounds).flatMap(([resource, b]): Sample[] => [
          [{ netdev: u.netdev, resource, scope: "total" }, b.total],
          [{ netdev: u.netdev, resource, scope: "per-guest" }, b.perGuest],
        ]),
      ),
  );
  counter(
    "usernet_bound_refused_total",
    "Guest requests refused at one of those bounds (UDP and ping: per guest; the total evicts)",
    ["netdev", "resource"],
    () =>
      users().flatMap((u): Sample[] =>
        Object.entries(u.bounds).map(([resource, b]): Sample => [{ netdev: u.netdev, resource }, b.refused]),
      ),
  );
  gauge("usernet_tcp_time_wait", "Guest TCP tuples in TIME_WAIT (no flow slot, no socket)", ["netdev"], () =>
    users().map((u): Sample => [{ netdev: u.netdev }, u.timeWait.now]),
  );
  perUser(
    "usernet_tcp_time_wait_recycled_total",
    "TIME_WAIT records dropped early to make room for newer ones",
    (u) => u.timeWait.recycled,
  );
  perUser("usernet_tcp_resets_total", "RSTs sent for segments of unknown connections", (u) => u.tcp.resets);
  perUser(
    "usernet_tcp_retransmitted_segments_total",
    "TCP segments sent to guests again",
    (u) => u.tcp.retransmittedSegments,
  );
  perUser("usernet_tcp_timeouts_total", "TCP retransmission timer expirations", (u) => u.tcp.timeouts);
  perUser(
    "usernet_tcp_fast_retransmits_total",
    "TCP fast retransmits on a guest's third duplicate ACK",
    (u) => u.tcp.fastRetransmits,
  );
  perUser(
    "usernet_tcp_out_of_order_segments_total",
    "Guest TCP segments held beyond a hole",
    (u) => u.tcp.outOfOrderSegments,
  );
  perUser(
    "usernet_tcp_duplicate_segments_total",
    "Guest TCP segments with nothing new (already received or beyond the window)",
    (u) => u.tcp.duplicateSegments,
  );
  perUser(
    "usernet_tcp_window_probes_total",
    "Probes sent into a guest's zero window",
    (u) => u.tcp.windowProbes,
  );
  counter(
    "usernet_tcp_relay_total",
    "Host connections for guest TCP, by outcome",
    ["netdev", "outcome"],
    () =>
      users().flatMap((u) =>
        Object.entries(u.relay).map(([outcome, n]): Sample => [{ netdev: u.netdev, outcome }, n]),
      ),
  );
  gauge("usernet_flows", "NAT flows open now", ["netdev", "protocol"], () =>
    users().flatMap((u) =>
      Object.entries(u.flows).map(([protocol, n]): Sample => [{ netdev: u.netdev, protocol }, n]),
    ),
  );
  perUser(
    "usernet_icmp_echo_requests_total",
    "Guest pings sent out of ping sockets",
    (u) => u.icmp.echoesSent,
  );
  perUser("usernet_icmp_echo_replies_total", "Ping replies relayed to guests", (u) => u.icmp.repliesReceived);

  // ---- DHCP -------------------------------------------------------------------------
  counter("usernet_dhcp_messages_total", "DHCP replies and events, by type", ["netdev", "type"], () =>
    users().flatMap((u) =>
      (
        [
          "offers",
          "acks",
          "naks",
          "releases",
          "declines",
          "informs",
          "bootp",
          "poolExhausted",
          "saveFailures",
        ] as const
      ).map((t): Sample => [{ netdev: u.netdev, type: t }, u.dhcp[t]]),
    ),
  );
  gauge("usernet_dhcp_leases", "DHCP leases remembered, by state", ["netdev", "state"], () =>
    users().flatMap((u) =>
      Object.entries(u.dhcp.leases).map(([state, n]): Sample => [{ netdev: u.netdev, state }, n]),
    ),
  );
  counter(
    "usernet_dhcp_dropped_total",
    "DHCP messages dropped or ignored, by reason",
    ["netdev", "reason"],
    () =>
      users().flatMap((u) => [
        ...byReason({ netdev: u.netdev }, u.dhcp.malformed),
        ...byReason({ netdev: u.netdev }, u.dhcp.ignored),
      ]),
  );

  // ---- DHCPv6 and IPv6 neighbours ----------------------------------------------------
  counter("usernet_dhcpv6_messages_total", "DHCPv6 messages and events, by kind", ["netdev", "kind"], () =>
    users().flatMap((u) => {
      const d = u.dhcpv6;
      if (!d) return [];
      return (
        [
          "solicits",
          "advertises",
          "requests",
          "renews",
          "rebinds",
          "releases",
          "declines",
          "confirms",
          "informationRequests",
          "replies",
          "noAddrsAvail",
          "saveFailures",
        ] as const
      ).map((k): Sample => [{ netdev: u.netdev, kind: k }, d[k]]);
    }),
  );
  gauge("usernet_dhcpv6_leases", "DHCPv6 leases remembered, by state", ["netdev", "state"], () =>
    users().flatMap((u) =>
      Object.entries(u.dhcpv6?.leases ?? {}).map(([state, n]): Sample => [{ netdev: u.netdev, state }, n]),
    ),
  );
  counter(
    "usernet_dhcpv6_dropped_total",
    "DHCPv6 messages dropped or ignored, by reason",
    ["netdev", "reason"],
    () =>
      users().flatMap((u) =>
        u.dhcpv6
          ? [
              ...byReason({ netdev: u.netdev }, u.dhcpv6.malformed),
              ...byReason({ netdev: u.netdev }, u.dhcpv6.ignored),
            ]
          : [],
      ),
  );
  gauge("usernet_ipv6_neighbours", "Guest IPv6 addresses the stack knows", ["netdev"], () =>
    users().map((u) => [{ netdev: u.netdev }, u.neighbours6]),
  );

  // ---- DNS --------------------------------------------------------------------------
  counter("usernet_dns_messages_total", "DNS forwarder activity, by kind", ["netdev", "kind"], () =>
    users().flatMap((u) =>
      (
        [
          "queries",
          "localAnswers",
          "forwarded",
          "answered",
          "truncated",
          "servfail",
          "formerr",
          "notimp",
          "tcpRetries",
          "dns64",
        ] as const
      ).map((k): Sample => [{ netdev: u.netdev, kind: k }, u.dns[k]]),
    ),
  );
  gauge("usernet_dns_inflight", "DNS queries waiting for an upstream", ["netdev"], () =>
    users().map((u) => [{ netdev: u.netdev }, u.dns.inflight]),
  );
  counter(
    "usernet_dns_dropped_total",
    "DNS queries that got no answer, by reason",
    ["netdev", "reason"],
    () => users().flatMap((u) => byReason({ netdev: u.netdev }, u.dns.dropped)),
  );
  counter(
    "usernet_dns_upstream_failures_total",
    "Failed upstream tries, by reason",
    ["netdev", "reason"],
    () => users().flatMap((u) => byReason({ netdev: u.netdev }, u.dns.upstreamFailures)),
  );

  // ---- TFTP -------------------------------------------------------------------------
  counter("usernet_tftp_transfers_total", "TFTP transfers, by result", ["netdev", "result"], () =>
    users().flatMap((u) =>
      u.tftp
        ? (["started", "completed", "timedOut", "abortedByClient", "failed"] as const).map(
            (r): Sample => [{ netdev: u.netdev, result: r }, u.tftp?.[r] ?? 0],
          )
        : [],
    ),
  );
  gauge("usernet_tftp_active_transfers", "TFTP transfers running now", ["netdev"], () =>
    users().flatMap((u): Sample[] => (u.tftp ? [[{ netdev: u.netdev }, u.tftp.active]] : [])),
  );
  for (const [field, name, help] of [
    ["blocksSent", "usernet_tftp_blocks_sent_total", "TFTP data blocks sent (first sends)"],
    ["bytesSent", "usernet_tftp_bytes_sent_total", "TFTP file bytes sent"],
    ["retransmittedBlocks", "usernet_tftp_retransmitted_blocks_total", "TFTP data blocks sent again"],
    ["unknownTransferId", "usernet_tftp_unknown_transfer_id_total", "TFTP packets for no known transfer"],
  ] as const) {
    counter(name, help, ["netdev"], () =>
      users().flatMap((u): Sample[] => (u.tftp ? [[{ netdev: u.netdev }, Number(u.tftp[field] ?? 0)]] : [])),
    );
  }
  counter(
    "usernet_tftp_refused_total",
    "TFTP requests refused or ignored, by reason",
    ["netdev", "reason"],
    () =>
      users().flatMap((u) =>
        u.tftp
          ? [
              ...byReason({ netdev: u.netdev }, u.tftp.refused),
              ...byReason({ netdev: u.netdev }, u.tftp.ignored),
            ]
          : [],
      ),
  );

  return registry;
}
