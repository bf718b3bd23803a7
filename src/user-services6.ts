/**
 * The built-in services of one user netdev on its IPv6 side: DHCPv6 and DNS at the IPv6
 * DNS address (UDP and TCP). The user netdev (user-netdev.ts) asks this first for
 * every guest IPv6 datagram and new IPv6 connection; what is not taken goes to the NAT.
 *
 * Theory of operation
 * - DHCPv6 (services/dhcpv6): client messages to port 547 at the All_DHCP_Relay_Agents_
 *   and_Servers group ff02::1:2 or at one of the gateway's addresses. Replies go from
 *   the gateway's link-local address, port 547, to the client's source address and
 *   port at the MAC the request came from, once a lease change they carry is on disk
 *   (--state-dir, dhcpv6-leases-ID.json), as for DHCPv4. What is offered follows
 *   dhcpv6= (stateful: addresses from prefix::15 on, 256 of them, and DNS; stateless:
 *   DNS and the search list only; off: nothing, DHCPv6 datagrams go to the NAT like
 *   any other), and the stack's RA says the same with its M and O flags
 *   (`raFlags`). An address the stack has seen another MAC use (its neighbour table)
 *   is never handed out.
 * - DNS: UDP and TCP to port 53 at the IPv6 DNS address go to the same forwarder as
 *   the IPv4 DNS address (so the same upstreams, whatever their family, and the same
 *   local names, AAAA included), unless DNS is off (slirp4netns --disable-dns).
 * - Boot file URL (option 59) for tftp= netboot: tftp://[GATEWAY]/BOOTFILE, with
 *   bootfile= and tftp= both given; an http(s):// bootfile= is passed as it is.
 * Not done: TFTP over IPv6 (the URL names the gateway, but only IPv4 TFTP is served).
 */
import type { UserNetdevConfig } from "./config.js";
import { internalErrors, type Logger } from "./log.js";
import type { LocalTcpService } from "./proxy/local-tcp-service.js";
import { DHCPV6_SERVER_PORT, duidLl } from "./services/dhcpv6/dhcpv6-codec.js";
import { type Lease6Store, MemoryLease6Store } from "./services/dhcpv6/dhcpv6-lease.js";
import { FileLease6Store } from "./services/dhcpv6/dhcpv6-lease-file.js";
import { type Dhcpv6LeaseInfo, Dhcpv6Server, type Dhcpv6Stats } from "./services/dhcpv6/dhcpv6-server.js";
import type { DnsForwarder } from "./services/dns/dns-forwarder.js";
import { type Ipv6StackConfig, virtualMac6 } from "./stack/config.js";
import type { GuestTcpConnection } from "./stack/guest-tcp.js";
import type { TcpEvent } from "./stack/tcp/tcp-endpoint.js";
import type { GuestUdp6, UdpToGuest6 } from "./stack/user-stack.js";
import { macToString } from "./stack/wire/addr.js";
import {
  type Ipv6Address,
  ipv6Copy,
  ipv6Key,
  ipv6Of,
  ipv6ToString,
  ipv6WithSuffix,
  sameIpv6,
} from "./stack/wire/ipv6-addr.js";

const allDhcpAgents = ipv6Of([0xff02, 0, 0, 0, 0, 0, 1, 2]);
const dnsPort = 53;
/** the stateful pool: prefix::15 onwards, as 10.0.2.15 is on IPv4 */
const poolOffset = 0x15;
const poolSize = 256;

export type Dhcpv6Mode = NonNullable<UserNetdevConfig["dhcpv6"]>;

/** The RA's M and O flags for what dhcpv6= offers (absent: stateful). */
export function raFlags(mode: Dhcpv6Mode | undefined): { managed: boolean; otherConfig: boolean } {
  const m = mode ?? "stateful";
  return { managed: m === "stateful", otherConfig: m !== "off" };
}

/** What the IPv6 services need of the netdev around them. */
export interface Ipv6ServicesDeps {
  log: Logger;
  /** --state-dir; memory only when absent */
  stateDir?: string | undefined;
  /** wall-clock ms (leases outlive the process) */
  wallClock: () => number;
  /** the netdev's DNS forwarder (shared with IPv4) and its DNS-over-TCP service */
  dns: DnsForwarder;
  dnsTcp: LocalTcpService;
  /** the stack's way to a guest over IPv6 */
  sendUdp6: (d: UdpToGuest6) => void;
  /** the stack's neighbour table now: which MAC uses which address */
  neighbours: () => readonly { address: Ipv6Address; mac: Buffer }[];
  /** whether the netdev is closed (late replies are dropped) */
  closed: () => boolean;
}

export class Ipv6Services {
  readonly dhcp: Dhcpv6Server | undefined;
  private readonly dnsOn: boolean;
  /** the neighbour table as a map, built at most once per DHCPv6 message */
  private neighbourMacs: Map<string, string> | undefined;

  constructor(
    cfg: UserNetdevConfig,
    private readonly v6: Ipv6StackConfig,
    private readonly deps: Ipv6ServicesDeps,
    store?: Lease6Store,
  ) {
    this.dnsOn = cfg.dnsForward !== false;
    const mode = cfg.dhcpv6 ?? "stateful";
    if (mode === "off") return;
    const leases =
      store ??
      (deps.stateDir
        ? new FileLease6Store(deps.stateDir, `dhcpv6-leases-${cfg.id}.json`, deps.log)
        : new MemoryLease6Store());
    const bootfileUrl = bootUrl(cfg, v6.host);
    this.dhcp = new Dhcpv6Server(
      {
        serverDuid: duidLl(virtualMac6(v6.host)),
        prefix: v6.prefix,
        prefixLength: v6.prefixLength,
        stateful: mode === "stateful",
        poolStart: ipv6WithSuffix(v6.prefix, poolOffset),
        poolSize,
        reserved: [v6.host, v6.dns],
        dns: this.dnsOn ? [v6.dns] : [],
        dnsSearch: [...cfg.dnsSearch],
        ...(bootfileUrl === undefined ? {} : { bootfileUrl }),
      },
      leases,
      deps.log.child({ service: "dhcpv6" }),
      (a) => this.usedBy(a),
    );
  }

  /** Takes a guest IPv6 datagram meant for a service here; false: not ours (to the NAT). */
  udp(d: GuestUdp6): boolean {
    if (d.dstPort === DHCPV6_SERVER_PORT && this.dhcp && this.forDhcp(d.dst)) {
      this.toDhcp(this.dhcp, d);
      return true;
    }
    if (d.dstPort === dnsPort && this.dnsOn && sameIpv6(d.dst, this.v6.dns)) {
      this.toDns(d);
      return true;
    }
    return false;
  }

  /** Takes a guest IPv6 connection meant for a service here (DNS over TCP); false: not ours. */
  tcp(conn: GuestTcpConnection, ev: TcpEvent): boolean {
    if (ev.type !== "connect-request") return false;
    const to = conn.remoteAddr6;
    if (!this.dnsOn || conn.remotePort !== dnsPort || to === undefined || !sameIpv6(to, this.v6.dns))
      return false;
    this.deps.dnsTcp.event(conn, ev);
    return true;
  }

  stats(): Dhcpv6Stats | undefined {
    return this.dhcp?.stats();
  }

  leases(wall: number): Dhcpv6LeaseInfo[] {
    return this.dhcp?.leases(wall) ?? [];
  }

  /** Settles when the last lease write is done. */
  flush(): Promise<void> {
    return this.dhcp?.flush() ?? Promise.resolve();
  }

  private forDhcp(dst: Ipv6Address): boolean {
    return sameIpv6(dst, allDhcpAgents) || sameIpv6(dst, this.v6.linkLocal) || sameIpv6(dst, this.v6.host);
  }

  private usedBy(a: Ipv6Address): string | undefined {
    if (this.neighbourMacs === undefined) {
      this.neighbourMacs = new Map();
      for (const n of this.deps.neighbours()) this.neighbourMacs.set(ipv6Key(n.address), macToString(n.mac));
    }
    return this.neighbourMacs.get(ipv6Key(a));
  }

  private toDhcp(dhcp: Dhcpv6Server, d: GuestUdp6): void {
    this.neighbourMacs = undefined;
    const reply = dhcp.handle(d.payload, d.srcMac, this.deps.wallClock());
    this.neighbourMacs = undefined;
    if (!reply) return;
    // the datagram is a view of a frame: keep what the reply needs
    const to = { dst: ipv6Copy(d.src), dstPort: d.srcPort, dstMac: Buffer.from(d.srcMac) };
    const send = () => {
      if (this.deps.closed()) return;
      this.deps.sendUdp6({ src: this.v6.linkLocal, srcPort: DHCPV6_SERVER_PORT, ...to, payload: reply });
    };
    const saved = dhcp.pendingSave();
    if (saved === undefined) send();
    else saved.then(send).catch(internalErrors.handler("a DHCPv6 reply after its lease write"));
  }

  private toDns(d: GuestUdp6): void {
    const to = { dst: ipv6Copy(d.src), dstPort: d.srcPort };
    void this.deps.dns
      .handle(d.payload, "udp", d.guest)
      .then((answer) => {
        if (!answer || this.deps.closed()) return;
        this.deps.sendUdp6({ src: this.v6.dns, srcPort: dnsPort, ...to, payload: answer });
      })
      .catch(internalErrors.handler("a DNS reply to a guest over IPv6"));
  }
}

/** Option 59 for bootfile= (RFC 5970): tftp://[gateway]/FILE with tftp=, an http(s) URL as given. */
function bootUrl(cfg: UserNetdevConfig, host: Ipv6Address): string | undefined {
  const f = cfg.bootfile;
  if (f === undefined) return undefined;
  if (/^https?:\/\//.test(f)) return f;
  if (cfg.tftp === undefined) return undefined;
  return `tftp://[${ipv6ToString(host)}]/${f.replace(/^\/+/, "")}`;
}
