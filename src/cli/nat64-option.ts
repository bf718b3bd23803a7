/**
 * nat64=on|off and nat64-prefix=PREFIX (a /96, default 64:ff9b::, RFC 6052): a guest's
 * IPv6 traffic to PREFIX::a.b.c.d goes to a.b.c.d over IPv4 (proxy/nat-policy.ts).
 * Only /96 prefixes: the one length whose embedding is the plain last 32 bits (RFC 6052
 * 2.2). Not in QEMU. The same option names and form as the DNS64 side parses.
 */
import type { UserNetdevConfig } from "../config.js";
import { ipv6ToString, parseIpv6Cidr } from "../stack/wire/ipv6-addr.js";
import type { OptionSet, OptionSpec } from "./qemu-opts.js";

export const nat64Spec: Readonly<Record<string, OptionSpec>> = {
  nat64: { kind: "bool", form: "on or off such as nat64=on" },
  "nat64-prefix": { kind: "value", form: "an IPv6 /96 prefix such as nat64-prefix=64:ff9b::/96" },
};

export function parseNat64(opts: OptionSet): Pick<UserNetdevConfig, "nat64Prefix"> {
  const prefixText = opts.get("nat64-prefix");
  if (!opts.bool("nat64", false)) {
    if (prefixText !== undefined) opts.fail("nat64-prefix", prefixText, "needs nat64=on");
    return {};
  }
  if (prefixText === undefined) return { nat64Prefix: "64:ff9b::" };
  const p = parseIpv6Cidr(prefixText.includes("/") ? prefixText : `${prefixText}/96`);
  if (p === undefined) return opts.fail("nat64-prefix", prefixText);
  if (p.prefix !== 96) return opts.fail("nat64-prefix", prefixText, "only /96 prefixes are supported");
  if (p.address.readUInt32BE(12) !== 0)
    return opts.fail("nat64-prefix", prefixText, "the last 32 bits must be zero");
  return { nat64Prefix: ipv6ToString(p.address) };
}
