/**
 * `-netdev vxlan`: a hub port to VXLAN tunnel endpoints (RFC 7348), as Linux's
 * `ip link add NAME type vxlan id N remote IP|group MCAST dev IF local IP dstport P`
 * spells them.
 *
 *   vni=N                 the VXLAN network identifier, 0..16777215 (required)
 *   remote=IP[:PORT]      a unicast VTEP that gets every flooded frame; repeatable;
 *                         PORT defaults to dstport
 *   group=MCAST           a multicast group instead (224.0.0.0/4), port dstport
 *   dev=IF                the underlay interface (joins the group there)
 *   local=IP[:PORT]       where usernet binds (required; 0.0.0.0 = every address); PORT
 *                         defaults to dstport, where Linux peers send
 *   dstport=PORT          the peers' UDP port, default 4789 (IANA). Linux's own default
 *                         is 8472: give `dstport 4789` to `ip link add` (or dstport=8472 here)
 *   ageing=SECONDS        how long a learned MAC lives unseen (default 300, as Linux)
 *   maxaddress=N          learned MACs at most (default 4096; the oldest goes)
 *
 * Addresses are IPv4 literals: no names, no IPv6 underlay.
 */
import type { InetAddress, VxlanNetdevConfig } from "../config.js";
import { isIpv4Multicast, parseIpv4 } from "../stack/wire/addr.js";
import { parseDecimal, parsePort } from "./inet.js";
import { isInterfaceName } from "./netdev-tap.js";
import type { OptionSet, OptionSpec } from "./qemu-opts.js";
import { UsageError } from "./usage-error.js";

export const vxlanSpec: Readonly<Record<string, OptionSpec>> = {
  vni: { kind: "value", form: "a VXLAN network identifier 0..16777215 such as vni=42" },
  remote: {
    kind: "list",
    form: "an IPv4 address with an optional port such as remote=192.0.2.1 or remote=192.0.2.1:4789",
  },
  group: { kind: "value", form: "an IPv4 multicast address such as group=239.1.1.1" },
  dev: { kind: "value", form: "an interface name such as dev=eth0" },
  local: {
    kind: "value",
    form: "an IPv4 address with an optional port such as local=192.0.2.2 or local=0.0.0.0:4789",
  },
  dstport: { kind: "value", form: "a UDP port 1..65535 such as dstport=4789" },
  ageing: { kind: "value", form: "seconds 1..86400 such as ageing=300" },
  maxaddress: { kind: "value", form: "a count 1..1048576 such as maxaddress=4096" },
};

export const vxlanRefused: Readonly<Record<string, string>> = {
  id6: "not supported: usernet's VXLAN underlay is IPv4 only",
  gbp: "not supported: no VXLAN group policy extension",
  gpe: "not supported: no VXLAN-GPE",
};

/** IP or IP:PORT, the port defaulting to `port` */
function endpoint(opts: OptionSet, key: string, value: string, port: number): InetAddress {
  const colon = value.indexOf(":");
  const host = colon < 0 ? value : value.slice(0, colon);
  const p = colon < 0 ? port : parsePort(value.slice(colon + 1));
  if (parseIpv4(host) === undefined || p === undefined) return opts.fail(key, value);
  return { host, port: p };
}

export function buildVxlanNetdev(opts: OptionSet, id: string, hub: number): VxlanNetdevConfig {
  const where = opts.where;
  const vniText = opts.get("vni");
  if (vniText === undefined) throw new UsageError(`${where}: vni= is required, such as vni=42`);
  const vni = parseDecimal(vniText, 0, 0xffffff);
  if (vni === undefined) return opts.fail("vni", vniText);
  const dstText = opts.get("dstport");
  const dstport = dstText === undefined ? 4789 : parsePort(dstText);
  if (dstport === undefined) return opts.fail("dstport", dstText ?? "");

  const remotes = opts.list("remote").map((r) => {
    const e = endpoint(opts, "remote", r, dstport);
    const a = parseIpv4(e.host) as number;
    if (isIpv4Multicast(a) || a === 0)
      opts.fail("remote", r, "expected a unicast address; use group= for multicast");
    return e;
  });
  const groupText = opts.get("group");
  if (groupText === undefined && remotes.length === 0) {
    throw new UsageError(`${where}: remote=IP[:PORT] (repeatable) or group=MCAST is required`);
  }
  if (groupText !== undefined && remotes.length > 0) {
    throw new UsageError(`${where}: give remote= or group=, not both`);
  }
  const cfg: VxlanNetdevConfig = {
    type: "vxlan",
    id,
    hub,
    vni,
    remotes,
    local: { host: "", port: 0 },
    dstport,
  };
  if (groupText !== undefined) {
    const g = parseIpv4(groupText);
    if (g === undefined || !isIpv4Multicast(g)) return opts.fail("group", groupText);
    cfg.group = { host: groupText, port: dstport };
  }
  const dev = opts.get("dev");
  if (dev !== undefined) {
    if (!isInterfaceName(dev)) return opts.fail("dev", dev);
    cfg.dev = dev;
  }
  const localText = opts.get("local");
  if (localText === undefined) {
    throw new UsageError(
      `${where}: local=IP[:PORT] is required (where usernet binds), such as local=192.0.2.2`,
    );
  }
  cfg.local = endpoint(opts, "local", localText, dstport);
  const l = parseIpv4(cfg.local.host) as number;
  if (isIpv4Multicast(l))
    opts.fail("local", localText, "expected a unicast address (the group goes in group=)");
  const ageing = opts.get("ageing");
  if (ageing !== undefined) {
    const s = parseDecimal(ageing, 1, 86400);
    if (s === undefined) return opts.fail("ageing", ageing);
    cfg.ageingSeconds = s;
  }
  const max = opts.get("maxaddress");
  if (max !== undefined) {
    const n = parseDecimal(max, 1, 1048576);
    if (n === undefined) return opts.fail("maxaddress", max);
    cfg.maxMacs = n;
  }
  return cfg;
}
