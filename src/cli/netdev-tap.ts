/**
 * `-netdev tap`: a Linux TAP device as a hub port (needs the native addon and the
 * right to open /dev/net/tun).
 *
 *   ifname=NAME           interface name, at most 15 bytes (default: the kernel picks tapN)
 *   netns=PATH|NAME       create it inside that network namespace: a path such as
 *                         /proc/PID/ns/net, or the name of one made by `ip netns add`
 *                         (/run/netns/NAME); usernet's extension
 *   userns=PATH           join that user namespace first (rootless); usernet's extension
 *   script=FILE           run `FILE IFNAME` once the device exists (QEMU's ifup script);
 *                         a non-zero exit fails the netdev. no or empty: none.
 *                         Default /etc/qemu-ifup, only when that file exists and the
 *                         TAP is in usernet's own namespace (no netns=): the default
 *                         script configures the namespace it runs in
 *   downscript=FILE       run `FILE IFNAME` before the device goes (on close, also on
 *                         SIGINT/SIGTERM); default /etc/qemu-ifdown, as script=
 *   vnet_hdr=on|off       virtio-net header with checksum offload and TSO (default on:
 *                         the kernel hands over 64 KiB TCP super frames); off: plain frames
 *
 * Addresses, routes, MTU and link state are the caller's to set (`ip`), as with QEMU.
 * QEMU's fd=, fds=, helper=, br=, vhost*= and queues= are refused.
 */
import { resolve } from "node:path";
import type { NetworkScript, TapNetdevConfig } from "../config.js";
import type { OptionSet, OptionSpec } from "./qemu-opts.js";
import { UsageError } from "./usage-error.js";

export const tapSpec: Readonly<Record<string, OptionSpec>> = {
  ifname: { kind: "value", form: "an interface name of 1..15 bytes such as ifname=tap0" },
  netns: {
    kind: "value",
    form: "a namespace path or an `ip netns` name such as netns=/proc/1234/ns/net or netns=ns1",
  },
  userns: { kind: "value", form: "a user namespace path such as userns=/proc/1234/ns/user" },
  script: { kind: "value", form: "a file or no such as script=/etc/qemu-ifup or script=no" },
  downscript: { kind: "value", form: "a file or no such as downscript=/etc/qemu-ifdown or downscript=no" },
  vnet_hdr: { kind: "bool", form: "on or off such as vnet_hdr=off" },
};

const noFd = "not supported: usernet does not take file descriptors from a parent";
export const tapRefused: Readonly<Record<string, string>> = {
  fd: noFd,
  fds: noFd,
  vhostfd: noFd,
  vhostfds: noFd,
  helper: "not supported: usernet runs no helper; open the TAP with ifname=",
  br: "not supported: usernet does not manage bridges",
  vhost: "not supported: vhost-net needs a virtio guest in this process",
  vhostforce: "not supported: vhost-net needs a virtio guest in this process",
  queues: "not supported: multi-queue TAPs are not supported",
  poll_us: "not supported",
  sndbuf: "not supported",
};

/** Linux interface names: 1..15 bytes, no '/', ':' or whitespace, not "." or ".." */
export function isInterfaceName(s: string): boolean {
  return s.length > 0 && Buffer.byteLength(s) <= 15 && s !== "." && s !== ".." && !/[/:\s\p{Cc}]/u.test(s);
}

/** a netns= value as a path: names of `ip netns add` live in /run/netns */
export function netnsPath(s: string): string | undefined {
  if (s === "" || s.includes("\0")) return undefined;
  if (s.startsWith("/")) return s;
  return /^[A-Za-z0-9._-]{1,255}$/.test(s) && s !== "." && s !== ".." ? `/run/netns/${s}` : undefined;
}

export const defaultIfUp = "/etc/qemu-ifup";
export const defaultIfDown = "/etc/qemu-ifdown";

/** script=/downscript= as written: "no" or "" is none, absent is the default (when it exists) */
function readScript(opts: OptionSet, key: string, fallback: string | undefined): NetworkScript | undefined {
  const v = opts.get(key);
  if (v === undefined) return fallback === undefined ? undefined : { path: fallback, ifExists: true };
  if (v === "no" || v === "") return undefined;
  if (v.includes("\0")) return opts.fail(key, v);
  // relative to the working directory, as QEMU's execv would take it
  return { path: resolve(v) };
}

export function buildTapNetdev(opts: OptionSet, id: string, hub: number): TapNetdevConfig {
  const ownNs = !opts.has("netns");
  const script = readScript(opts, "script", ownNs ? defaultIfUp : undefined);
  const downscript = readScript(opts, "downscript", ownNs ? defaultIfDown : undefined);
  const ifname = opts.get("ifname") ?? "";
  if (opts.has("ifname") && !isInterfaceName(ifname)) opts.fail("ifname", ifname);
  const cfg: TapNetdevConfig = { type: "tap", id, hub, ifname };
  if (!opts.bool("vnet_hdr", true)) cfg.offloads = false;
  const ns = opts.get("netns");
  if (ns !== undefined) {
    const path = netnsPath(ns);
    if (path === undefined) return opts.fail("netns", ns);
    cfg.netns = path;
  }
  const userns = opts.get("userns");
  if (userns !== undefined) {
    if (!userns.startsWith("/") || userns.includes("\0")) return opts.fail("userns", userns);
    if (cfg.netns === undefined) throw new UsageError(`${opts.where}: userns= needs netns=`);
    cfg.userns = userns;
  }
  if (script) cfg.script = script;
  if (downscript) cfg.downscript = downscript;
  return cfg;
}
