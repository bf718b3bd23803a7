/**
 * Where a guest's UDP datagram or new TCP connection goes, decided from its
 * destination alone: the routing table of one user netdev, as data. Sans-I/O, and no
 * allocation per lookup (it runs for every guest datagram and connection).
 *
 * Theory of operation
 * - Rows name a service at one (family, address, protocol, port): DHCP at the gateway
 *   and the limited broadcast, DNS at the DNS address, TFTP at the gateway, SMB at the
 *   SMB address, and each guestfwd= server. The first row added for a key wins, so
 *   guestfwd= rows (added first) take their address and port from a built-in service,
 *   as in QEMU.
 * - What no row names is classified by address: a broadcast ("broadcast": only DHCP
 *   listens there), the gateway ("gateway": services with ports of their own choosing,
 *   such as TFTP transfers, then the host's loopback through the NAT), another virtual
 *   address ("no-service": nothing listens; UDP gets a port unreachable, TCP a RST),
 *   and everything else ("outside": the NAT).
 * - Not here: what depends on live state rather than the destination (replies on
 *   hostfwd= flows, a TFTP transfer's port, a connection a service already took);
 *   user-netdev.ts asks those owners, in a fixed order, around this table.
 * - The key is (family, protocol, port) and an address of that family: IPv4 addresses
 *   are numbers, IPv6 addresses their `ipv6Key` strings, each family in rows of its own.
 * - IPv6 (when the stack config has it): DNS at the IPv6 DNS address (UDP and TCP),
 *   DHCPv6 at ff02::1:2 and at the gateway's addresses, port 547 (rows present only
 *   when `services.dhcpv6` says a server runs); the classes are "gateway" (fe80::2 and
 *   the host address), "no-service" (the DNS address without a row), "broadcast" (a
 *   multicast group: nothing but DHCPv6 listens there) and "outside".
 */
import type { StackConfig } from "./config.js";
import { type Ipv6Address, ipv6Key, ipv6ToString, parseIpv6 } from "./wire/ipv6-addr.js";

export type Family = 4 | 6;
export type RouteProto = "udp" | "tcp";
export type UdpService = "dhcp" | "dns" | "tftp";
export type TcpService = "dns" | "smb" | "guestfwd";
/** Destinations that no row names, by address. */
export type AddressClass = "broadcast" | "gateway" | "no-service" | "outside";

export type UdpRoute = UdpService | AddressClass;
export type TcpRoute = TcpService | AddressClass;

export type Route =
  | { family: 4; proto: "udp"; addr: number; port: number; to: UdpService }
  | { family: 4; proto: "tcp"; addr: number; port: number; to: TcpService };

/** The services IPv6 rows name. */
export type Udp6Service = "dhcpv6" | "dns";
export type Tcp6Service = "dns";
export type Udp6Route = Udp6Service | AddressClass;
export type Tcp6Route = Tcp6Service | AddressClass;

/** An IPv6 row: `addr` as text (RFC 5952), for listings. */
export type Route6 =
  | { family: 6; proto: "udp"; addr: string; port: number; to: Udp6Service }
  | { family: 6; proto: "tcp"; addr: string; port: number; to: Tcp6Service };

export const dhcpv6ServerPort = 547;
export const dhcpv6ClientPort = 546;

export const dnsPort = 53;
export const dhcpServerPort = 67;
export const dhcpClientPort = 68;
export const tftpPort = 69;
export const smbPorts: readonly number[] = [445, 139];
const limitedBroadcast = 0xffffffff;

/** Which built-in services a user netdev runs; the table has rows for these only. */
export interface RoutedServices {
  /** DNS at the DNS address (off with slirp4netns --disable-dns) */
  dns: boolean;
  tftp: boolean;
  smb: boolean;
  /** guestfwd= servers and ports */
  guestfwd: readonly { addr: number; port: number }[];
  /** a DHCPv6 server runs (rows for port 547 at ff02::1:2 and the gateway's addresses); absent = none */
  dhcpv6?: boolean;
}

/** The rows of one protocol and port: (address, service) pairs, a handful at most. */
type PortRows<S> = { addr: number; to: S }[];

/** The first row's service for `addr` among `rows`; an indexed loop, nothing allocated. */
function find<S>(rows: PortRows<S> | undefined, addr: number): S | undefined {
  if (rows === undefined) return undefined;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i] as { addr: number; to: S };
    if (r.addr === addr) return r.to;
  }
  return undefined;
}

function addRow<S>(byPort: Map<number, PortRows<S>>, port: number, addr: number, to: S): void {
  const rows = byPort.get(port) ?? [];
  // the first row added for an address and port wins
  if (find(rows, addr) === undefined) rows.push({ addr, to });
  byPort.set(port, rows);
}

function addRow6<S>(byPort: Map<number, { addr: string; to: S }[]>, port: number, addr: string, to: S): void {
  const rows = byPort.get(port) ?? [];
  if (!rows.some((r) => r.addr === addr)) rows.push({ addr, to });
  byPort.set(port, rows);
}

export class RouteTable {
  readonly routes: readonly Route[];
  /** rows by port (a small integer key), then by address */
  private readonly udpRows = new Map<number, PortRows<UdpService>>();
  private readonly tcpRows = new Map<number, PortRows<TcpService>>();
  private readonly host: number;
  private readonly subnetBroadcast: number;
  private readonly virtual: readonly number[];
  /** whether any guestfwd= row exists (an open connection's events then look it up) */
  readonly hasGuestForwards: boolean;
  /** the IPv6 rows (empty when the stack has no IPv6) */
  readonly routes6: readonly Route6[];
  private readonly udp6Rows = new Map<number, { addr: string; to: Udp6Service }[]>();
  private readonly tcp6Rows = new Map<number, { addr: string; to: Tcp6Service }[]>();
  /** ipv6Key of the gateway's own IPv6 addresses → its class */
  private readonly own6 = new Map<string, AddressClass>();

  constructor(c: StackConfig, services: RoutedServices) {
    this.host = c.host >>> 0;
    this.subnetBroadcast = (c.net | ~c.mask) >>> 0;
    // every row's address is one of these, the gateway or the limited broadcast, so an
    // outside destination (the common case) needs no row lookup
    const own = [c.dns, ...(c.smb === undefined ? [] : [c.smb]), ...c.extraAddresses];
    for (const g of services.guestfwd) own.push(g.addr);
    this.virtual = [...new Set(own.map((a) => a >>> 0))].filter((a) => a !== this.host);
    const routes: Route[] = [];
    for (const g of services.guestfwd)
      routes.push({ family: 4, proto: "tcp", addr: g.addr, port: g.port, to: "guestfwd" });
    routes.push({ family: 4, proto: "udp", addr: c.host, port: dhcpServerPort, to: "dhcp" });
    routes.push({ family: 4, proto: "udp", addr: limitedBroadcast, port: dhcpServerPort, to: "dhcp" });
    if (services.dns) {
      routes.push({ family: 4, proto: "udp", addr: c.dns, port: dnsPort, to: "dns" });
      routes.push({ family: 4, proto: "tcp", addr: c.dns, port: dnsPort, to: "dns" });
    }
    if (services.tftp) routes.push({ family: 4, proto: "udp", addr: c.host, port: tftpPort, to: "tftp" });
    if (services.smb && c.smb !== undefined) {
      for (const port of smbPorts) routes.push({ family: 4, proto: "tcp", addr: c.smb, port, to: "smb" });
    }
    for (const r of routes) {
      if (r.proto === "udp") addRow(this.udpRows, r.port, r.addr >>> 0, r.to);
      else addRow(this.tcpRows, r.port, r.addr >>> 0, r.to);
    }
    this.routes = routes;
    this.hasGuestForwards = services.guestfwd.length > 0;

    const routes6: Route6[] = [];
    const v6 = c.ipv6;
    if (v6 !== undefined) {
      this.own6.set(ipv6Key(v6.linkLocal), "gateway");
      this.own6.set(ipv6Key(v6.host), "gateway");
      if (!this.own6.has(ipv6Key(v6.dns))) this.own6.set(ipv6Key(v6.dns), "no-service");
      if (services.dns) {
        routes6.push({ family: 6, proto: "udp", addr: ipv6ToString(v6.dns), port: dnsPort, to: "dns" });
        routes6.push({ family: 6, proto: "tcp", addr: ipv6ToString(v6.dns), port: dnsPort, to: "dns" });
      }
      if (services.dhcpv6) {
        for (const a of ["ff02::1:2", ipv6ToString(v6.linkLocal), ipv6ToString(v6.host)])
          routes6.push({ family: 6, proto: "udp", addr: a, port: dhcpv6ServerPort, to: "dhcpv6" });
      }
      for (const r of routes6) {
        const key = ipv6Key(parseIpv6(r.addr) as Ipv6Address);
        if (r.proto === "udp") addRow6(this.udp6Rows, r.port, key, r.to);
        else addRow6(this.tcp6Rows, r.port, key, r.to);
      }
    }
    this.routes6 = routes6;
  }

  /** Where a guest UDP datagram over IPv6 to `dst`:`port` goes. */
  udp6(dst: Uint8Array, port: number): Udp6Route {
    const cls = this.classify6(dst);
    if (cls === "outside") return cls;
    const key = ipv6Key(dst);
    return this.udp6Rows.get(port)?.find((r) => r.addr === key)?.to ?? cls;
  }

  /** Where a guest TCP connection over IPv6 to `dst`:`port` goes. */
  tcp6(dst: Uint8Array, port: number): Tcp6Route {
    const cls = this.classify6(dst);
    if (cls === "outside") return cls;
    const key = ipv6Key(dst);
    return this.tcp6Rows.get(port)?.find((r) => r.addr === key)?.to ?? cls;
  }

  private classify6(dst: Uint8Array): AddressClass {
    if (dst[0] === 0xff) return "broadcast";
    if (this.own6.size === 0) return "outside";
    return this.own6.get(ipv6Key(dst)) ?? "outside";
  }

  /** Where a guest UDP datagram to `dst`:`port` goes. */
  udp(dst: number, port: number): UdpRoute {
    const a = dst >>> 0;
    const cls = this.classify(a);
    return cls === "outside" ? cls : (find(this.udpRows.get(port), a) ?? cls);
  }

  /** Where a guest TCP connection to `dst`:`port` goes. */
  tcp(dst: number, port: number): TcpRoute {
    const a = dst >>> 0;
    const cls = this.classify(a);
    return cls === "outside" ? cls : (find(this.tcpRows.get(port), a) ?? cls);
  }

  private classify(dst: number): AddressClass {
    if (dst === limitedBroadcast || dst === this.subnetBroadcast) return "broadcast";
    if (dst === this.host) return "gateway";
    // at most a handful of virtual addresses (DNS, SMB, guestfwd servers)
    for (let i = 0; i < this.virtual.length; i++) if (this.virtual[i] === dst) return "no-service";
    return "outside";
  }
}
