/**
 * outbound-addr6=ADDR (not in QEMU; slirp4netns has --outbound-addr6): the host IPv6
 * address the NAT's outgoing IPv6 sockets bind to, as outbound-addr= is for IPv4. Any
 * unicast IPv6 address is taken here; one the host does not have fails each socket
 * with EADDRNOTAVAIL (a host fault, logged once), as outbound-addr= does.
 */
import type { UserNetdevConfig } from "../config.js";
import { ipv6ToString, isIpv6Multicast, isIpv6Unspecified, parseIpv6 } from "../stack/wire/ipv6-addr.js";
import type { OptionSet } from "./qemu-opts.js";

export function parseOutboundAddr6(opts: OptionSet): Pick<UserNetdevConfig, "outboundAddr6"> {
  const v = opts.get("outbound-addr6");
  if (v === undefined) return {};
  const a = parseIpv6(v);
  if (a === undefined || isIpv6Multicast(a) || isIpv6Unspecified(a)) return opts.fail("outbound-addr6", v);
  return { outboundAddr6: ipv6ToString(a) };
}
