import { type Ipv6Address, ipv6Of, ipv6WithSuffix, parseIpv6 } from "./wire/ipv6-addr.js";

/**
 * The virtual network one user stack presents, as numbers the stack uses directly.
 * Defaults follow QEMU/libslirp: 10.0.2.0/24, gateway .2, DNS .3, SMB .4, DHCP from .15;
 * on IPv6 fec0::/64, gateway fec0::2, DNS fec0::3 (`ipv6Defaults`).
 */
export interface StackConfig {
  /** network address (uint32) */
  net: number;
  /** netmask (uint32) */
  mask: number;
  /** the gateway, which is also "the host" */
  host: number;
  dns: number;
  /** the SMB server address, answered only when SMB is enabled */
  smb: number | undefined;
  /** further virtual addresses the gateway owns (guestfwd servers) */
  extraAddresses: number[];
  mtu: number;
  /** the IPv4 side (ARP, IPv4); absent: on. Off (QEMU ipv4=off): ARP and IPv4 frames are dropped, counted */
  ipv4?: boolean;
  /** the IPv6 side; absent: off (the CLI turns it on by default, as QEMU does) */
  ipv6?: Ipv6StackConfig;
}

/**
 * The IPv6 side of the virtual network. The gateway answers NDP for `host`, `dns` and
 * the link-local `linkLocal` (fe80::2, libslirp's), sends its router advertisements
 * from `linkLocal`, and announces `prefix`/`prefixLength` for SLAAC (autonomous flag
 * set; SLAAC needs a /64, other lengths are announced for on-link only).
 */
export interface Ipv6StackConfig {
  /** the prefix, host bits clear (QEMU ipv6-prefix=, default fec0::) */
  prefix: Ipv6Address;
  /** 0..128 (QEMU ipv6-prefixlen=, default 64) */
  prefixLength: number;
  /** the gateway, which is also "the host" (QEMU ipv6-host=, default prefix::2) */
  host: Ipv6Address;
  /** the DNS address (QEMU ipv6-dns=, default prefix::3) */
  dns: Ipv6Address;
  /** the gateway's link-local address, source of its RAs and NDP (fe80::2, as libslirp) */
  linkLocal: Ipv6Address;
  /** RA "managed" flag: addresses come from DHCPv6 (set by whoever runs a stateful DHCPv6 server) */
  managed: boolean;
  /** RA "other configuration" flag: DNS and more come from DHCPv6 */
  otherConfig: boolean;
  /** RA RDNSS option naming `dns` (off when nothing answers DNS there) */
  announceDns: boolean;
  /** RA DNSSL option (RFC 8106): the search domains; none: no DNSSL */
  dnsSearch: readonly string[];
}

/** fe80::2, the gateway's link-local address in libslirp. */
export const gatewayLinkLocal: Ipv6Address = ipv6Of([0xfe80, 0, 0, 0, 0, 0, 0, 2]);

/** QEMU's IPv6 defaults for a prefix (fec0::/64 when absent): host prefix::2, DNS prefix::3. */
export function ipv6Defaults(
  prefix: Ipv6Address = parseIpv6("fec0::") as Ipv6Address,
  prefixLength = 64,
): Ipv6StackConfig {
  return {
    prefix,
    prefixLength,
    host: ipv6WithSuffix(prefix, 2),
    dns: ipv6WithSuffix(prefix, 3),
    linkLocal: gatewayLinkLocal,
    managed: false,
    otherConfig: false,
    announceDns: true,
    dnsSearch: [],
  };
}

/** libslirp's pattern for IPv6: 52:56 followed by the address's last four bytes. */
export function virtualMac6(addr: Ipv6Address): Buffer {
  const mac = Buffer.alloc(6);
  mac[0] = 0x52;
  mac[1] = 0x56;
  addr.copy(mac, 2, 12, 16);
  return mac;
}

/** Every IPv6 address the gateway answers NDP for: its link-local, host and DNS addresses. */
export function gatewayAddresses6(c: Ipv6StackConfig): Ipv6Address[] {
  const all = [c.linkLocal, c.host, c.dns];
  return all.filter((a, i) => all.findIndex((b) => b.equals(a)) === i);
}

/** libslirp's pattern: 52:55 followed by the IPv4 address the MAC stands for. */
export function virtualMac(addr: number): Buffer {
  const mac = Buffer.alloc(6);
  mac[0] = 0x52;
  mac[1] = 0x55;
  mac.writeUInt32BE(addr >>> 0, 2);
  return mac;
}

/** Every address the gateway answers ARP for. */
export function gatewayAddresses(c: StackConfig): number[] {
  const all = [c.host, c.dns, ...(c.smb === undefined ? [] : [c.smb]), ...c.extraAddresses];
  return [...new Set(all.map((a) => a >>> 0))];
}
